/* test_state.c — the state directory (state.h): the series archived on a
 * probe change, kept vectors round trip, series.json replaced atomically
 * (a crash leaves old or new), a damaged kept file named in the error, the
 * store's results without labels and their memorized subsets updated in
 * memory only, the previous token record removed. */
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "engine/file.h"
#include "engine/routing_series.h"
#include "state.h"

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char notes[4096];

static void on_note(void *ud, int level, const char *msg)
{
	(void)ud;
	(void)level;
	snprintf(notes + strlen(notes), sizeof(notes) - strlen(notes), "%s\n", msg);
}

static const char *state_path(void)
{
	static char p[512];

	snprintf(p, sizeof(p), "%s/state", tap_tmpdir());
	return p;
}

static struct state *open_state(const char *probe_hash)
{
	const struct state_opts o = { .dir = state_path(), .probe_hash = probe_hash,
				      .note = on_note };
	struct state *s = NULL;
	struct gw_err e = { "" };
	int r = state_open(&o, &s, &e);

	if (r < 0)
		tap_fail(__FILE__, __LINE__, "state_open: %d %s", r, e.msg);
	return s;
}

static char *read_text(const char *rel)
{
	char path[1024], *t = NULL;
	struct gw_err e;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", state_path(), rel);
	if (gw_file_read(path, 1 << 20, &t, &n, &e) < 0)
		return NULL;
	return t;
}

static void append_result(struct state *s, int64_t step, double memo_dist)
{
	char buf[256];
	struct gw_err e = { "" };
	cJSON *r;

	snprintf(buf, sizeof(buf),
		 "{\"step\":%lld,\"groups\":{\"g\":{\"pathway_distance\":1,"
		 "\"memorized\":{\"pathway_distance\":%g}}}}",
		 (long long)step, memo_dist);
	r = cJSON_Parse(buf);
	CHECK_INT_EQ(state_append_result(s, r, &e), 0);
	cJSON_Delete(r);
}

/* N = 2 samples of group "g", L = 1, E = 2. */
static struct routing *point(int64_t step, float l0, float l1)
{
	struct routing *r = routing_new(2, 1, 2, 1);

	r->gbar[0] = 1, r->gbar[3] = 1;
	for (int i = 0; i < 2; i++) {
		r->groups[i] = gw_strdup("g");
		r->ids[i] = gw_strdup(i ? "b" : "a");
		r->ntokens[i] = 1;
	}
	r->loss[0] = l0, r->loss[1] = l1;
	r->step = step;
	return r;
}

static void test_probe_change_archives_series(void)
{
	struct state *s = open_state(HASH_A);
	char *t, *dir = NULL, prev[600] = "";
	struct gw_err e;
	DIR *dd;
	struct dirent *de;

	t = read_text("series.json");
	CHECK_STR_EQ(t, "{\"probe_hash\":\"" HASH_A "\"}");
	free(t);
	append_result(s, 100, 0.5);
	CHECK_INT_EQ(state_routing_dir(s, 100, &dir, &e), 0);
	free(dir);
	state_free(s);

	/* The same probe: the series goes on. */
	s = open_state(HASH_A);
	CHECK_INT_EQ(series_count(state_results(s)), 1);
	state_free(s);
	CHECK(strstr(notes, "probe set changed") == NULL);

	/* Another probe: the old series moves aside, a new one starts. */
	s = open_state(HASH_B);
	CHECK_STR_HAS(notes, "the probe set changed (hash bbbbbbbbbbbb, was aaaaaaaaaaaa)");
	CHECK_INT_EQ(series_count(state_results(s)), 0);
	t = read_text("series.json");
	CHECK_STR_EQ(t, "{\"probe_hash\":\"" HASH_B "\"}");
	free(t);
	dd = opendir(state_path());
	CHECK(dd != NULL);
	while ((de = readdir(dd)))
		if (!strncmp(de->d_name, "previous-aaaaaaaaaaaa-", 22))
			snprintf(prev, sizeof(prev), "%s", de->d_name);
	closedir(dd);
	CHECK(prev[0]);
	{
		char rel[700];

		snprintf(rel, sizeof(rel), "%s/journal.jsonl", prev);
		t = read_text(rel);
		CHECK_STR_HAS(t, "\"step\":100");
		free(t);
		snprintf(rel, sizeof(rel), "%s/series.json", prev);
		t = read_text(rel);
		CHECK_STR_HAS(t, HASH_A);
		free(t);
		snprintf(rel, sizeof(rel), "%s/%s/routing/100", state_path(), prev);
		CHECK(access(rel, F_OK) == 0);
	}
	CHECK(read_text("routing/100/x") == NULL);
	state_free(s);
}

static void test_series_file_old_or_new(void)
{
	struct state *s = open_state(HASH_A);
	char path[600], *t;
	FILE *f;

	state_free(s);
	/* A crash while writing the new series.json leaves its temporary: the
	 * old file is what counts, and the temporary is removed. */
	snprintf(path, sizeof(path), "%s/.series.json.tmp", state_path());
	f = fopen(path, "w");
	fputs("{\"probe_hash\":\"" HASH_B, f);
	fclose(f);
	s = open_state(HASH_A);
	CHECK(strstr(notes, "probe set changed") == NULL);
	CHECK(access(path, F_OK) < 0);
	t = read_text("series.json");
	CHECK_STR_EQ(t, "{\"probe_hash\":\"" HASH_A "\"}");
	free(t);
	state_free(s);
	/* No probe_hash in it: taken as this probe's, written anew. */
	snprintf(path, sizeof(path), "%s/series.json", state_path());
	f = fopen(path, "w");
	fputs("garbage", f);
	fclose(f);
	s = open_state(HASH_A);
	CHECK_STR_HAS(notes, "series.json\": no probe_hash in it");
	t = read_text("series.json");
	CHECK_STR_EQ(t, "{\"probe_hash\":\"" HASH_A "\"}");
	free(t);
	state_free(s);
}

static void test_kept_vectors_round_trip(void)
{
	struct state *s = open_state(NULL);
	struct routing *r = point(300, 0.25f, NAN), *back = NULL;
	struct metrics_cons cons = { .n_samples = 2 }, *cback = NULL;
	double c[2] = { 0.5, NAN }, adj[2] = { 0.25, -1 };
	struct gw_err e = { "" };
	char *dir = NULL;

	cons.c = c;
	cons.adj = adj;
	CHECK_INT_EQ(state_routing_dir(s, 300, &dir, &e), 0);
	CHECK_INT_EQ(state_keep(dir, r, &cons, &e), 0);
	CHECK_INT_EQ(state_read_kept(s, 300, &back, &cback, &e), 0);
	CHECK_INT_EQ(back->step, 300);
	CHECK_INT_EQ(back->n_samples, 2);
	CHECK_INT_EQ(back->n_experts, 2);
	CHECK(memcmp(back->gbar, r->gbar, 4 * sizeof(float)) == 0);
	CHECK_NEAR(back->loss[0], 0.25, 0);
	CHECK(isnan(back->loss[1]));
	CHECK_STR_EQ(back->groups[1], "g");
	CHECK_STR_EQ(back->ids[1], "b");
	CHECK(!back->has_tokens);
	CHECK_INT_EQ(cback->n_samples, 2);
	CHECK_NEAR(cback->c[0], 0.5, 0);
	CHECK(isnan(cback->c[1]));
	CHECK_NEAR(cback->adj[1], -1, 0);
	routing_free(back);
	metrics_cons_free(cback);

	/* Without router weights: the note comes back, no numbers. */
	cons = (struct metrics_cons){ .n_samples = 2, .note = "no router weights" };
	CHECK_INT_EQ(state_keep(dir, r, &cons, &e), 0);
	CHECK_INT_EQ(state_read_kept(s, 300, &back, &cback, &e), 0);
	CHECK(cback->c == NULL);
	CHECK_STR_EQ(cback->note, "no router weights");
	routing_free(back);
	metrics_cons_free(cback);
	routing_free(r);
	free(dir);
	state_free(s);
}

static void test_damaged_kept_file_named(void)
{
	struct state *s = open_state(NULL);
	struct routing *r = point(5, 1, 2), *back = NULL;
	struct metrics_cons cons = { .n_samples = 2 }, *cback = NULL;
	double c[2] = { 1, 2 };
	struct gw_err e = { "" };
	char *dir = NULL, path[700];
	FILE *f;

	cons.c = cons.adj = c;
	CHECK_INT_EQ(state_routing_dir(s, 5, &dir, &e), 0);
	CHECK_INT_EQ(state_keep(dir, r, &cons, &e), 0);
	snprintf(path, sizeof(path), "%s/consistency.json", dir);
	f = fopen(path, "w");
	fputs("{\"c\": [0.1, ", f);
	fclose(f);
	CHECK_INT_EQ(state_read_kept(s, 5, &back, &cback, &e), -EBADMSG);
	CHECK_STR_HAS(e.msg, "routing/5/consistency.json\": not a JSON object");
	f = fopen(path, "w");
	fputs("{\"c\": [0.1], \"adj\": [1, 2]}", f);
	fclose(f);
	CHECK_INT_EQ(state_read_kept(s, 5, &back, &cback, &e), -EBADMSG);
	CHECK_STR_HAS(e.msg, "routing/5/consistency.json\": expected an array of 2 numbers");
	snprintf(path, sizeof(path), "%s/routing.safetensors", dir);
	CHECK_INT_EQ(truncate(path, 20), 0);
	CHECK(state_read_kept(s, 5, &back, &cback, &e) < 0);
	CHECK_STR_HAS(e.msg, "routing/5/routing.safetensors");
	CHECK(back == NULL && cback == NULL);
	/* Nothing kept at all. */
	CHECK_INT_EQ(state_read_kept(s, 6, &back, &cback, &e), -ENOENT);
	CHECK_STR_HAS(e.msg, "routing/6/routing.safetensors");
	routing_free(r);
	free(dir);
	state_free(s);
}

static void test_token_record_newest_only(void)
{
	struct state *s = open_state(NULL);
	struct gw_err e = { "" };
	struct routing *back = NULL;
	char *d1 = NULL, *d2 = NULL, p1[700], p2[700];

	for (int k = 0; k < 2; k++) {
		struct routing *r = point(k ? 20 : 10, 1, 2);
		char **dir = k ? &d2 : &d1;

		r->ntokens[0] = r->ntokens[1] = 1;
		routing_alloc_tokens(r);
		CHECK_INT_EQ(state_routing_dir(s, r->step, dir, &e), 0);
		CHECK_INT_EQ(state_keep_tokens(*dir, r, &e), 0);
		state_tokens_kept(s, r->step);
		routing_free(r);
	}
	snprintf(p1, sizeof(p1), "%s/tokens.safetensors", d1);
	snprintf(p2, sizeof(p2), "%s/tokens.safetensors", d2);
	CHECK(access(p1, F_OK) < 0);
	CHECK(access(p2, F_OK) == 0);
	state_free(s);
	/* After a restart, the record read back is the one to replace. */
	s = open_state(NULL);
	CHECK_INT_EQ(state_read_tokens(s, 10, &back, &e), -ENOENT);
	CHECK_INT_EQ(state_read_tokens(s, 20, &back, &e), 0);
	CHECK_INT_EQ(back->step, 20);
	CHECK(back->has_tokens);
	routing_free(back);
	state_tokens_kept(s, 30);
	CHECK(access(p2, F_OK) < 0);
	free(d1);
	free(d2);
	state_free(s);
}

static void test_store_and_memo_in_memory(void)
{
	struct state *s = open_state(NULL);
	struct metrics_set sets[2] = { 0 };
	static const char *const names[2] = { "g", "all" };
	struct metrics_memo memo[3];
	int64_t lowest = 0;
	char *t;
	const cJSON *res;

	append_result(s, 100, 0.5);
	append_result(s, 200, 0.5);
	append_result(s, 300, 0.5);
	/* The store holds results without the journal's label; the file marks
	 * its lines. */
	res = state_result(s, 200);
	CHECK(res != NULL);
	CHECK(cJSON_GetObjectItem(res, "kind") == NULL);
	t = read_text("journal.jsonl");
	CHECK_STR_HAS(t, "{\"kind\":\"result\",\"step\":200,");
	free(t);

	for (int i = 0; i < 2; i++) {
		sets[i].n_samples = 1;
		sets[i].pathway_distance = 0.125;
		sets[i].pathway_distance_stderr = NAN;
		sets[i].loss = 1;
		sets[i].pathway_consistency = NAN;
		sets[i].adjacent_cosine = NAN;
	}
	for (int i = 0; i < 3; i++)
		memo[i] = (struct metrics_memo){ .step = 100 * (i + 1), .n_sets = 2,
						 .names = names, .sets = sets };
	/* 300 is the step just computed: left alone. */
	CHECK_INT_EQ(state_memo_apply(s, memo, 3, 300, &lowest), 2);
	CHECK_INT_EQ(lowest, 100);
	CHECK_NEAR(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
			   state_result(s, 200), "groups"), "g"), "memorized"), "pathway_distance")
			   ->valuedouble, 0.125, 0);
	CHECK_NEAR(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
			   state_result(s, 300), "groups"), "g"), "memorized"), "pathway_distance")
			   ->valuedouble, 0.5, 0);
	/* The same values again change nothing. */
	CHECK_INT_EQ(state_memo_apply(s, memo, 3, 300, &lowest), 0);
	CHECK(lowest == INT64_MAX);
	/* On disk, each result stays as first written. */
	t = read_text("journal.jsonl");
	CHECK(strstr(t, "0.125") == NULL);
	free(t);
	state_free(s);
	s = open_state(NULL);
	CHECK_NEAR(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(
			   state_result(s, 200), "groups"), "g"), "memorized"), "pathway_distance")
			   ->valuedouble, 0.5, 0);
	state_free(s);
}

static void test_second_open_busy(void)
{
	struct state *s = open_state(NULL), *s2 = NULL;
	const struct state_opts o = { .dir = state_path() };
	struct gw_err e = { "" };

	CHECK_INT_EQ(state_open(&o, &s2, &e), -EBUSY);
	CHECK_STR_HAS(e.msg, "another grokwatchd is using this state directory");
	CHECK(s2 == NULL);
	state_free(s);
	state_free(NULL);
}

static const struct tap_test tests[] = {
	{ "probe_change_archives_series", test_probe_change_archives_series },
	{ "series_file_old_or_new", test_series_file_old_or_new },
	{ "kept_vectors_round_trip", test_kept_vectors_round_trip },
	{ "damaged_kept_file_named", test_damaged_kept_file_named },
	{ "token_record_newest_only", test_token_record_newest_only },
	{ "store_and_memo_in_memory", test_store_and_memo_in_memory },
	{ "second_open_busy", test_second_open_busy },
	{ NULL, NULL },
};
TAP_MAIN(tests)
