/*
 * fuzz_probe_jsonl.c — libFuzzer target for the probe set's JSON Lines
 * reader (engine/probe.c).
 *
 * Each input is read twice per configuration: from memory
 * (probe_add_jsonl_mem) and streamed from a file (probe_add_jsonl on a
 * memfd through /proc/self/fd), under the default limits and under tiny
 * ones (so the line, sample and sample-count limits and the streaming
 * buffer's refills are reached by short inputs).  Besides "never crash",
 * it checks:
 *  - both readers agree: same return code, same message, same hash;
 *  - a failure leaves the probe empty and names the file first;
 *  - a success holds samples within the limits and the vocabulary, valid
 *    group names, ids unique within their group, and a 64-hex hash.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char memfd_path[64];

static void check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "property failed: %s\n", what);
		abort();
	}
}

static void check_probe(const struct probe *p, const struct probe_opts *o, int vocab)
{
	check(p->n_samples >= 1 && p->n_samples <= o->samples_max, "sample count in limits");
	for (int i = 0; i < p->n_samples; i++) {
		const struct probe_sample *s = &p->samples[i];

		check(s->ntokens >= 1 && s->ntokens <= o->sample_max, "sample length in limits");
		check(s->group >= 0 && s->group < p->n_groups, "group index");
		check(strlen(s->id) < PROBE_ID_MAX, "id length");
		for (int k = 0; k < s->ntokens; k++)
			check(s->tokens[k] >= 0 && (vocab <= 0 || s->tokens[k] < vocab), "token range");
		/* Ids unique within a group (quadratic, but inputs are small). */
		if (s->id[0])
			for (int j = 0; j < i; j++)
				check(p->samples[j].group != s->group ||
				      strcmp(p->samples[j].id, s->id) != 0, "unique ids");
	}
	for (int g = 0; g < p->n_groups; g++) {
		size_t n = strlen(p->groups[g]);

		check(n >= 1 && n < PROBE_GROUP_MAX, "group name length");
		for (size_t i = 0; i < n; i++)
			check((unsigned char)p->groups[g][i] >= 0x20 && p->groups[g][i] != 0x7f,
			      "no control characters in group names");
	}
	check(strlen(p->hash) == 64 && strspn(p->hash, "0123456789abcdef") == 64, "hex hash");
}

static void run(const uint8_t *data, size_t size, const struct probe_opts *o, int vocab)
{
	struct probe *pm = probe_new(), *pf = probe_new();
	struct gw_err em = { "" }, ef = { "" };
	char head[80];
	int rm, rf;

	probe_set_opts(pm, o);
	probe_set_opts(pf, o);
	rm = probe_add_jsonl_mem(pm, memfd_path, (const char *)data, size, vocab, &em);
	rf = probe_add_jsonl(pf, memfd_path, vocab, &ef);
	check(rm == rf, "both readers give the same code");
	check(strcmp(em.msg, ef.msg) == 0, "both readers give the same message");
	if (rm < 0) {
		snprintf(head, sizeof(head), "\"%s\"", memfd_path);
		check(strncmp(em.msg, head, strlen(head)) == 0, "message names the file first");
		check(pm->n_samples == 0 && pm->n_groups == 0 && pm->n_sources == 0,
		      "failure leaves the probe empty");
	} else {
		struct probe_opts eff = *o;

		if (!eff.sample_max)
			eff.sample_max = PROBE_SAMPLE_MAX;
		if (!eff.samples_max)
			eff.samples_max = PROBE_SAMPLES_MAX;
		probe_finish(pm);
		probe_finish(pf);
		check(strcmp(pm->hash, pf->hash) == 0, "both readers give the same hash");
		check(pm->n_samples == pf->n_samples, "both readers give the same samples");
		check_probe(pm, &eff, vocab);
		if (vocab > 0)
			check(probe_check_vocab(pm, vocab, NULL) == 0, "vocab check agrees");
	}
	probe_free(pm);
	probe_free(pf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct probe_opts tiny = { .line_max = 48, .sample_max = 6, .samples_max = 4 };
	static const struct probe_opts defaults = { 0 };

	if (memfd < 0) {
		memfd = memfd_create("fuzz_probe_jsonl", MFD_CLOEXEC);
		check(memfd >= 0, "memfd_create");
		snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
	}
	check(ftruncate(memfd, 0) == 0, "ftruncate");
	check(pwrite(memfd, data, size, 0) == (ssize_t)size, "pwrite");
	run(data, size, &defaults, 0);
	run(data, size, &tiny, 100);
	return 0;
}
