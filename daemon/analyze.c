/*
 * analyze.c — `grokwatchd analyze`: the daemon's computation run once, with
 * no daemon, over the checkpoints named on the command line.
 *
 * The file is divided as the work flows:
 *   - options: the command line, into struct analyze_opts;
 *   - sources: each argument becomes routing records, from a routing file
 *     (given directly, or DIR/routing.safetensors) or from the forward pass
 *     over a checkpoint and the probe set; router weights missing from a
 *     routing file are read from the checkpoint beside it;
 *   - metrics: checkpoints in step order, churn against the previous one,
 *     and the memorized subset recomputed against the latest one through a
 *     routing series, exactly as the daemon does;
 *   - output: a per-group table, or one JSON object a checkpoint (--json).
 * Progress goes to stderr when it is a terminal.
 */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "engine/checkpoint.h"
#include "engine/file.h"
#include "engine/forward.h"
#include "engine/levenshtein.h"
#include "engine/metrics.h"
#include "engine/model.h"
#include "engine/probe.h"
#include "engine/routing.h"
#include "engine/routing_file.h"
#include "engine/routing_series.h"
#include "engine/source.h"
#include "engine/step.h"

#define ANALYZE_CKPTS_MAX 10000

struct analyze_opts {
	const char *probe_path;
	int probe_width;          /* 0 = JSON Lines, else 2 or 4 */
	long sample_length, count, offset;
	const char *group;
	const char *dump_path;
	bool json;
	int threads;
	struct metrics_opts m;
};

/* One checkpoint argument and what became of it. */
struct item {
	const char *arg;
	char *name;          /* basename, for display */
	int64_t step;
	const char *source;  /* "forward pass" or "routing file" */
	const char *arch;    /* static or owned by routing */
	struct routing *r;
	struct metrics_result *res;
	cJSON *json;
	double sec;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: grokwatchd analyze [OPTIONS] CKPT...\n"
		"\n"
		"Compute the routing metrics of each checkpoint once, with no daemon.  CKPT is a\n"
		"checkpoint directory (config.json and safetensors weights), a directory holding\n"
		"routing.safetensors (used instead of running the model), or a routing file.\n"
		"Checkpoints are taken in step order (from the name, trainer_state.json or the\n"
		"routing file); churn is against the previous one and the memorized subset\n"
		"against the latest.\n"
		"\n"
		"Options:\n"
		"  --probe FILE          probe set; needed unless every CKPT has routing records\n"
		"  --probe-format FMT    jsonl (default), u16 or u32 (raw token memmap)\n"
		"  --sample-length N     tokens a sample for u16/u32 (default 512)\n"
		"  --count N             samples for u16/u32 (default 64)\n"
		"  --offset N            first token for u16/u32 (default 0)\n"
		"  --group NAME          group of the u16/u32 samples (default \"default\")\n"
		"  --dump-routing FILE   write the routing records of the (single) CKPT\n"
		"  --json                one JSON object a checkpoint, a line each\n"
		"  --tau X               pathway threshold, (0, 1] (default 0.7)\n"
		"  --pair-budget N       exact mean up to N pairs, else sampled (default %llu)\n"
		"  --seed N              seed of the pair sample (default 0: built-in)\n"
		"  --epsilon X           memorization loss threshold in nats (default %g)\n"
		"  --delta X             memorization stability band (default %g)\n"
		"  --threads N           threads (default: all cores)\n"
		"  -h, --help            this text\n"
		"\n"
		"Exit status: 0 success, 1 an input is unusable or the work failed, 2 usage.\n",
		(unsigned long long)LEV_DEFAULT_BUDGET, METRICS_EPSILON_DEFAULT,
		METRICS_DELTA_DEFAULT);
}

static int parse_long(const char *opt, const char *s, long lo, long hi, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "grokwatchd: analyze: %s takes a whole number from %ld to %ld, not '%s'\n",
			opt, lo, hi, s);
		return -1;
	}
	*ret = v;
	return 0;
}

static int parse_double(const char *opt, const char *s, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v)) {
		fprintf(stderr, "grokwatchd: analyze: %s takes a number, not '%s'\n", opt, s);
		return -1;
	}
	*ret = v;
	return 0;
}

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

struct progress {
	const char *name;
	bool tty;
};

static void on_progress(void *ud, int done, int total)
{
	struct progress *p = ud;

	if (!p->tty)
		return;
	fprintf(stderr, "\r\033[Kanalyze: %s: layer %d/%d", p->name, done, total);
	if (done == total)
		fprintf(stderr, "\r\033[K");
	fflush(stderr);
}

/* Load or compute the routing of one argument (source.h picks the source). */
static int item_load(struct item *it, const struct analyze_opts *o, struct probe **probe,
		     struct gw_err *err)
{
	struct progress pr = { .name = it->name, .tty = isatty(STDERR_FILENO) };
	struct forward_opts fo = { .progress = on_progress, .ud = &pr, .threads = o->threads };
	enum source_kind kind;
	int rc;

	rc = source_load(it->arg, *probe, &fo, &it->r, &kind, err);
	if (rc < 0)
		return rc;
	it->source = source_kind_name(kind);
	it->arch = it->r->arch;
	if (it->r->step >= 0) {
		it->step = it->r->step;
	} else if (step_from_name(it->name, step_default_patterns, &it->step) < 0) {
		int64_t s;

		if (is_dir(it->arg) && step_from_trainer_state(it->arg, &s, NULL) == 0)
			it->step = s;
	}
	it->r->step = it->step;
	return 0;
}

static int cmp_item(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	/* Unknown steps (-1) keep their place after the known ones. */
	if ((x->step < 0) != (y->step < 0))
		return x->step < 0 ? 1 : -1;
	return (x->step > y->step) - (x->step < y->step);
}

static void print_num(double v, int width, int prec)
{
	if (isnan(v))
		printf(" %*s", width, "-");
	else
		printf(" %*.*f", width, prec, v);
}

static void print_text(const struct item *it)
{
	const struct metrics_result *m = it->res;

	printf("%s", it->name);
	if (it->step >= 0)
		printf("  step %lld", (long long)it->step);
	printf("  (%s, %s, %d samples, %d MoE layers, %.2f s)\n", it->arch ? it->arch : "?",
	       it->source, it->r->n_samples, it->r->n_layers, it->sec);
	printf("  %-12s %5s %9s %10s %11s %8s  %9s %10s\n", "group", "n", "loss", "distance",
	       "consistency", "adj_cos", "memorized", "mem_dist");
	for (int g = 0; g < m->n_groups; g++) {
		const struct metrics_group *gr = &m->groups[g];

		printf("  %-12s %5d", gr->name, gr->all.n_samples);
		print_num(gr->all.loss, 9, 4);
		print_num(gr->all.pathway_distance, 10, 3);
		print_num(gr->all.pathway_consistency, 11, 4);
		print_num(gr->all.adjacent_cosine, 8, 4);
		printf("  %9d", gr->memorized.n_samples);
		print_num(gr->memorized.pathway_distance, 10, 3);
		if (gr->all.sampled)
			printf("  (sampled %llu pairs, se %.3f)", (unsigned long long)gr->all.n_pairs,
			       gr->all.pathway_distance_stderr);
		printf("\n");
	}
	if (m->consistency_note)
		printf("  consistency: %s\n", m->consistency_note);
	if (m->health)
		printf("  health: imbalance %.3f (max %.3f), load entropy %.3f, dead experts %d, "
		       "router entropy %.3f, z-loss %.3f\n",
		       m->health->imbalance, m->health->max_imbalance, m->health->load_entropy,
		       m->health->dead_experts, m->health->router_entropy, m->health->z_loss);
	else if (m->health_note)
		printf("  health: %s\n", m->health_note);
	if (!isnan(m->churn))
		printf("  churn: %.4f of token-layer top-k sets changed\n", m->churn);
}

/*
 * Show the memorized-subset values of `memo` (recomputed against the
 * latest checkpoint) in the item's JSON and table.  The table borrows the
 * memo's sets; cmd_analyze clears them before freeing the result.
 */
static void memo_use(struct item *it, const struct metrics_memo *memo)
{
	routing_series_memo_apply(it->json, memo);
	for (int g = 0; g < it->res->n_groups; g++)
		for (int s = 0; s < memo->n_sets; s++)
			if (!strcmp(it->res->groups[g].name, memo->names[s])) {
				free(it->res->groups[g].memorized.per_layer_distance);
				it->res->groups[g].memorized = memo->sets[s];
			}
}

static int parse_args(int argc, char **argv, struct analyze_opts *o)
{
	enum { O_PROBE = 256, O_FMT, O_LEN, O_COUNT, O_OFFSET, O_GROUP, O_DUMP, O_JSON, O_TAU,
	       O_BUDGET, O_SEED, O_EPS, O_DELTA, O_THREADS };
	static const struct option longopts[] = {
		{ "probe", required_argument, NULL, O_PROBE },
		{ "probe-format", required_argument, NULL, O_FMT },
		{ "sample-length", required_argument, NULL, O_LEN },
		{ "count", required_argument, NULL, O_COUNT },
		{ "offset", required_argument, NULL, O_OFFSET },
		{ "group", required_argument, NULL, O_GROUP },
		{ "dump-routing", required_argument, NULL, O_DUMP },
		{ "json", no_argument, NULL, O_JSON },
		{ "tau", required_argument, NULL, O_TAU },
		{ "pair-budget", required_argument, NULL, O_BUDGET },
		{ "seed", required_argument, NULL, O_SEED },
		{ "epsilon", required_argument, NULL, O_EPS },
		{ "delta", required_argument, NULL, O_DELTA },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long v;
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			exit(0);
		case O_PROBE: o->probe_path = optarg; break;
		case O_FMT:
			if (!strcmp(optarg, "jsonl"))
				o->probe_width = 0;
			else if (!strcmp(optarg, "u16"))
				o->probe_width = 2;
			else if (!strcmp(optarg, "u32"))
				o->probe_width = 4;
			else {
				fprintf(stderr, "grokwatchd: analyze: --probe-format is jsonl, u16 or u32, not '%s'\n",
					optarg);
				return -1;
			}
			break;
		case O_LEN:
			if (parse_long("--sample-length", optarg, 1, PROBE_SAMPLE_MAX, &o->sample_length))
				return -1;
			break;
		case O_COUNT:
			if (parse_long("--count", optarg, 1, PROBE_SAMPLES_MAX, &o->count))
				return -1;
			break;
		case O_OFFSET:
			if (parse_long("--offset", optarg, 0, LONG_MAX, &o->offset))
				return -1;
			break;
		case O_GROUP: o->group = optarg; break;
		case O_DUMP: o->dump_path = optarg; break;
		case O_JSON: o->json = true; break;
		case O_TAU:
			if (parse_double("--tau", optarg, &o->m.tau))
				return -1;
			break;
		case O_BUDGET:
			if (parse_long("--pair-budget", optarg, 1, (long)LEV_MAX_BUDGET, &v))
				return -1;
			o->m.pair_budget = (uint64_t)v;
			break;
		case O_SEED:
			if (parse_long("--seed", optarg, 0, LONG_MAX, &v))
				return -1;
			o->m.seed = (uint64_t)v;
			break;
		case O_EPS:
			if (parse_double("--epsilon", optarg, &o->m.epsilon))
				return -1;
			break;
		case O_DELTA:
			if (parse_double("--delta", optarg, &o->m.delta))
				return -1;
			break;
		case O_THREADS:
			if (parse_long("--threads", optarg, 1, 256, &v))
				return -1;
			o->threads = (int)v;
			o->m.threads = (int)v;
			break;
		default:
			if (optopt && optopt < 256)
				fprintf(stderr, "grokwatchd: analyze: unknown option '-%c'\n", optopt);
			else
				fprintf(stderr, "grokwatchd: analyze: unknown option or missing value in '%s'\n",
					argv[optind - 1]);
			return -1;
		}
	}
	return 0;
}

static int load_probe(const struct analyze_opts *o, struct probe **ret, struct gw_err *err)
{
	struct probe *p = probe_new();
	int rc;

	if (o->probe_width)
		rc = probe_add_memmap(p, o->probe_path, o->probe_width, (int)o->sample_length,
				      (int)o->count, o->offset, o->group, 0, err);
	else
		rc = probe_add_jsonl(p, o->probe_path, 0, err);
	if (rc < 0) {
		probe_free(p);
		return rc;
	}
	probe_finish(p);
	*ret = p;
	return 0;
}

int cmd_analyze(int argc, char **argv)
{
	struct analyze_opts o = {
		.sample_length = 512, .count = 64, .offset = 0, .group = "default",
	};
	struct routing_series *series = NULL;
	struct metrics_memo *memo = NULL;
	struct item *items = NULL;
	struct probe *probe = NULL;
	size_t n_memo = 0;
	struct gw_err err = { "" };
	int n, rc = 1;
	long nproc = sysconf(_SC_NPROCESSORS_ONLN);

	metrics_opts_init(&o.m);
	o.threads = nproc > 0 ? (int)nproc : 1;
	o.m.threads = o.threads;
	if (parse_args(argc, argv, &o) < 0) {
		fprintf(stderr, "Try 'grokwatchd analyze --help'.\n");
		return 2;
	}
	n = argc - optind;
	if (n < 1) {
		usage(stderr);
		return 2;
	}
	if (n > ANALYZE_CKPTS_MAX) {
		fprintf(stderr, "grokwatchd: analyze: at most %d checkpoints at once\n", ANALYZE_CKPTS_MAX);
		return 2;
	}
	if (o.dump_path && n != 1) {
		fprintf(stderr, "grokwatchd: analyze: --dump-routing takes exactly one checkpoint\n");
		return 2;
	}
	if (metrics_opts_check(&o.m, &err) < 0) {
		fprintf(stderr, "grokwatchd: analyze: %s\n", err.msg);
		return 2;
	}
	if (o.probe_path && load_probe(&o, &probe, &err) < 0)
		goto fail;

	items = gw_calloc((size_t)n, sizeof(*items));
	for (int i = 0; i < n; i++) {
		double t0 = now_sec();

		items[i].arg = argv[optind + i];
		items[i].name = gw_path_base(items[i].arg);
		items[i].step = -1;
		if (item_load(&items[i], &o, &probe, &err) < 0)
			goto fail;
		items[i].sec = now_sec() - t0;
	}
	if (o.dump_path && routing_file_write(o.dump_path, items[0].r, &err) < 0)
		goto fail;

	qsort(items, (size_t)n, sizeof(*items), cmp_item);
	series = routing_series_new();
	for (int i = 0; i < n; i++) {
		const struct routing *prev = i > 0 ? items[i - 1].r : NULL;
		struct metrics_cons *cons = NULL;
		double t0 = now_sec();

		if (metrics_consistency(items[i].r, &cons, &err) < 0)
			goto fail;
		if (items[i].step >= 0 && routing_series_put(series, items[i].r, cons, &err) < 0) {
			metrics_cons_free(cons);
			goto fail;
		}
		rc = metrics_compute(items[i].r, prev, cons, NULL, &o.m, &items[i].res, &err);
		metrics_cons_free(cons);
		rc = rc < 0 ? 1 : 0;
		if (rc) {
			gw_err_prefix(&err, -EINVAL, "\"%s\"", items[i].arg);
			goto fail;
		}
		items[i].sec += now_sec() - t0;
		items[i].json = metrics_result_json(items[i].res);
	}
	/* The memorized subset is judged against the latest checkpoint. */
	if (routing_series_count(series) > 0) {
		if (routing_series_recompute(series, &o.m, &memo, &n_memo, &err) < 0)
			goto fail;
		for (size_t j = 0; j < n_memo; j++)
			for (int i = 0; i < n; i++)
				if (items[i].step == memo[j].step)
					memo_use(&items[i], &memo[j]);
	}
	for (int i = 0; i < n; i++) {
		if (o.json) {
			char *s = cJSON_PrintUnformatted(items[i].json);

			puts(s);
			free(s);
		} else {
			print_text(&items[i]);
			if (i + 1 < n)
				printf("\n");
		}
	}
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "grokwatchd: analyze: %s\n", err.msg);
	rc = 1;
out:
	if (memo) {
		/* The sets were shown through res->groups: only the memo owns them. */
		for (int i = 0; items && i < n; i++)
			if (items[i].res)
				for (int g = 0; g < items[i].res->n_groups; g++)
					memset(&items[i].res->groups[g].memorized, 0,
					       sizeof(struct metrics_set));
		routing_series_memo_free(memo, n_memo);
	}
	for (int i = 0; items && i < n; i++) {
		free(items[i].name);
		routing_free(items[i].r);
		metrics_result_free(items[i].res);
		cJSON_Delete(items[i].json);
	}
	free(items);
	routing_series_free(series);
	probe_free(probe);
	return rc;
}
