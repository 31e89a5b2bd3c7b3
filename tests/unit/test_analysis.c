/*
 * test_analysis.c — the engine's one pipeline (engine/analysis.h) over a
 * series of hand-made routing files: the memorized subset moves with the
 * latest step, churn is taken only against the step just before, a late
 * older step takes its place without churn, kept routing comes back at
 * start-up, and a routing file of another probe is refused naming both
 * hashes.
 *
 * Each routing: 2 samples of group "g" (2 and 1 tokens), 2 MoE layers,
 * 4 experts, top-1.  Sample 0's loss is what a test gives, sample 1's is
 * 3 nats (never memorized at epsilon 1).  `flip` sets which expert every
 * token picks at layer 0 (1 or 2; layer 1 always picks 0), so churn
 * between two steps is 0 or 0.5 of the token-layer sets.
 */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/analysis.h"
#include "engine/routing_file.h"
#include "../tap.h"

#define HASH_A "aaaaaaaaaaaabbbbbbbbbbbbccccccccccccddddddddddddeeeeeeeeeeeeffff"

static const char *routing_path(int64_t step, float loss0, int flip, const char *hash)
{
	static char path[4096];
	struct routing *r = routing_new(2, 2, 4, 1);
	struct gw_err err = { "" };
	char name[64];

	r->step = step;
	r->loss[0] = loss0;
	r->loss[1] = 3.0f;
	for (int i = 0; i < 2; i++) {
		for (int l = 0; l < 2; l++)
			for (int e = 0; e < 4; e++)
				r->gbar[(i * 2 + l) * 4 + e] = e == (l == 0 ? flip : 0) ? 0.7f : 0.1f;
		r->groups[i] = gw_strdup("g");
		r->ids[i] = gw_strdup(i ? "b" : "a");
	}
	r->ntokens[0] = 2;
	r->ntokens[1] = 1;
	routing_alloc_tokens(r);
	for (int t = 0; t < 3; t++) {
		r->topk_ids[t * 2 + 0] = (uint16_t)flip;
		r->topk_ids[t * 2 + 1] = 0;
		for (int l = 0; l < 2; l++) {
			r->topk_w[t * 2 + l] = 1;
			r->entropy[t * 2 + l] = 1;
			r->lse[t * 2 + l] = 0.5f;
		}
	}
	if (hash)
		r->probe_hash = gw_strdup(hash);
	snprintf(name, sizeof(name), "s%lld-%d.st", (long long)step, flip);
	snprintf(path, sizeof(path), "%s/%s", tap_tmpdir(), name);
	if (routing_file_write(path, r, &err) < 0)
		tap_fail(__FILE__, __LINE__, "routing_file_write: %s", err.msg);
	routing_free(r);
	return path;
}

static struct analysis *new_analysis(struct probe *probe)
{
	struct metrics_opts m;

	metrics_opts_init(&m);
	return analysis_new(probe, &m, 1);
}

/* One step through analysis_run, which must succeed. */
static void run(struct analysis *a, int64_t step, float loss0, int flip, bool memo,
		struct analysis_out *out)
{
	struct gw_err err = { "" };
	int rc = analysis_run(a, routing_path(step, loss0, flip, NULL), NULL, step, NULL, memo, out,
			      &err);

	if (rc != 0)
		tap_fail(__FILE__, __LINE__, "step %lld: %d %s", (long long)step, rc, err.msg);
}

static const cJSON *group_all(const cJSON *result)
{
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(result, "groups"),
						"all");
}

static int memorized_of(const cJSON *result)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(group_all(result), "memorized");

	return (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(m, "n_samples"));
}

/* The memo's "all" set of `step`: its memorized sample count, -1 if the
 * memo has no such step. */
static int memo_count(const struct analysis_out *o, int64_t step)
{
	for (size_t i = 0; i < o->n_memo; i++)
		if (o->memo[i].step == step)
			return o->memo[i].sets[o->memo[i].n_sets - 1].n_samples;
	return -1;
}

static double churn_of(const struct analysis_out *o)
{
	return o->res->churn;
}

static void test_memo_moves_with_latest(void)
{
	struct analysis *a = new_analysis(NULL);
	struct analysis_out o;

	run(a, 100, 0.5f, 1, true, &o);
	CHECK_INT_EQ(memorized_of(o.result), 1);
	CHECK_INT_EQ(o.n_memo, 1);
	CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o.result, "source")),
		     "routing file");
	CHECK(cJSON_GetObjectItemCaseSensitive(o.result, "arch") != NULL);
	CHECK(cJSON_GetObjectItemCaseSensitive(o.result, "type") == NULL);
	CHECK(cJSON_GetObjectItemCaseSensitive(o.result, "kind") == NULL);
	analysis_out_release(&o);

	/* Sample 0 stays at 0.5: memorized at 100 and 200. */
	run(a, 200, 0.52f, 1, true, &o);
	CHECK_INT_EQ(memorized_of(o.result), 1);
	CHECK_INT_EQ(o.n_memo, 2);
	CHECK_INT_EQ(memo_count(&o, 100), 1);
	CHECK_INT_EQ(memo_count(&o, 200), 1);
	analysis_out_release(&o);

	/* Its loss moves by more than delta at 300: memorized only at 300. */
	run(a, 300, 0.9f, 1, true, &o);
	CHECK_INT_EQ(memorized_of(o.result), 1);
	CHECK_INT_EQ(o.n_memo, 3);
	CHECK_INT_EQ(memo_count(&o, 100), 0);
	CHECK_INT_EQ(memo_count(&o, 200), 0);
	CHECK_INT_EQ(memo_count(&o, 300), 1);
	analysis_out_release(&o);

	/* Without asking, no memo; on demand, the same as the last one. */
	run(a, 400, 0.91f, 1, false, &o);
	CHECK_INT_EQ(o.n_memo, 0);
	CHECK(o.memo == NULL);
	analysis_out_release(&o);
	{
		struct metrics_memo *memo = NULL;
		size_t n = 0;

		CHECK_INT_EQ(analysis_memo(a, &memo, &n, NULL), 0);
		CHECK_INT_EQ(n, 4);
		CHECK_INT_EQ(memo[0].step, 100);
		CHECK_INT_EQ(memo[0].sets[memo[0].n_sets - 1].n_samples, 0);
		CHECK_INT_EQ(memo[2].sets[memo[2].n_sets - 1].n_samples, 1);
		CHECK_INT_EQ(memo[3].sets[memo[3].n_sets - 1].n_samples, 1);
		routing_series_memo_free(memo, n);
	}
	analysis_free(a);
}

static void test_churn_only_against_step_before(void)
{
	struct analysis *a = new_analysis(NULL);
	struct analysis_out o;

	run(a, 100, 0.5f, 1, false, &o);
	CHECK(isnan(churn_of(&o)));
	CHECK_STR_EQ(o.res->churn_note, "no previous checkpoint");
	CHECK(o.newest);
	CHECK(o.routing && o.routing->has_tokens && o.routing->step == 100);
	CHECK(o.cons != NULL);
	analysis_out_release(&o);

	/* Every token moves to another expert at layer 0: half the sets. */
	run(a, 200, 0.5f, 2, false, &o);
	CHECK_NEAR(churn_of(&o), 0.5, 1e-12);
	CHECK(o.newest);
	analysis_out_release(&o);

	run(a, 300, 0.5f, 2, false, &o);
	CHECK_NEAR(churn_of(&o), 0.0, 1e-12);
	analysis_out_release(&o);

	/* A step skipped over: 500's step before is 300, the kept one. */
	run(a, 500, 0.5f, 1, false, &o);
	CHECK_NEAR(churn_of(&o), 0.5, 1e-12);
	analysis_out_release(&o);
	analysis_free(a);
}

static void test_late_older_step(void)
{
	struct analysis *a = new_analysis(NULL);
	struct analysis_out o;

	run(a, 100, 0.5f, 1, false, &o);
	analysis_out_release(&o);
	run(a, 300, 0.9f, 2, false, &o);
	analysis_out_release(&o);

	/* 200 arrives late: in its place in the series, judged against the
	 * latest (300, where sample 0's loss is 0.9: not memorized at 200,
	 * where it is 0.5), no churn (100's per-token records are gone), and
	 * not the newest. */
	run(a, 200, 0.5f, 1, true, &o);
	CHECK_INT_EQ(analysis_steps(a), 3);
	CHECK_INT_EQ(memorized_of(o.result), 0);
	CHECK(isnan(churn_of(&o)));
	CHECK(!o.newest);
	CHECK(o.routing != NULL && o.routing->step == 200);
	CHECK_INT_EQ(o.n_memo, 3);
	CHECK_INT_EQ(o.memo[1].step, 200);
	CHECK_INT_EQ(memo_count(&o, 300), 1);
	analysis_out_release(&o);

	/* The next step's churn is still against 300, the newest. */
	run(a, 400, 0.9f, 2, false, &o);
	CHECK_NEAR(churn_of(&o), 0.0, 1e-12);
	CHECK(o.newest);
	analysis_out_release(&o);
	analysis_free(a);
}

/* Start-up: kept steps back into the series, the newest one's routing
 * as the previous for churn; the next step continues the series. */
static void test_restore(void)
{
	struct analysis *a = new_analysis(NULL);
	struct analysis_out o;
	struct routing *r = NULL;
	struct metrics_cons *cons = NULL;
	struct gw_err err = { "" };

	for (int64_t step = 100; step <= 200; step += 100) {
		CHECK_INT_EQ(routing_file_read(routing_path(step, 0.5f, 1, NULL), &r, &err), 0);
		CHECK_INT_EQ(metrics_consistency(r, METRICS_CONSISTENCY_FLOOR, &cons, &err), 0);
		CHECK_INT_EQ(analysis_put(a, r, cons, &err), 0);
		metrics_cons_free(cons);
		if (step == 200)
			analysis_set_prev(a, r);
		else
			routing_free(r);
	}
	CHECK_INT_EQ(analysis_steps(a), 2);
	run(a, 300, 0.5f, 2, true, &o);
	CHECK_NEAR(churn_of(&o), 0.5, 1e-12);
	CHECK_INT_EQ(o.n_memo, 3);
	CHECK_INT_EQ(memo_count(&o, 100), 1);
	analysis_out_release(&o);
	analysis_free(a);
}

static void test_other_probe_refused(void)
{
	static const char jsonl[] = "{\"tokens\": [1, 2], \"group\": \"g\", \"id\": \"a\"}\n"
				    "{\"tokens\": [3], \"group\": \"g\", \"id\": \"b\"}\n";
	struct probe *p = probe_new();
	struct analysis *a;
	struct analysis_out o;
	struct gw_err err = { "" };
	char mine[13];
	int rc;

	CHECK_INT_EQ(probe_add_jsonl_mem(p, "probe.jsonl", jsonl, strlen(jsonl), 0, &err), 0);
	probe_finish(p);
	snprintf(mine, sizeof(mine), "%.12s", p->hash);
	a = new_analysis(p);
	CHECK(analysis_probe(a) == p);

	rc = analysis_run(a, routing_path(100, 0.5f, 1, HASH_A), NULL, 100, NULL, true, &o, &err);
	CHECK_INT_EQ(rc, -EINVAL);
	CHECK_STR_HAS(err.msg, "s100-1.st");
	CHECK_STR_HAS(err.msg, "aaaaaaaaaaaa");
	CHECK_STR_HAS(err.msg, mine);
	CHECK(o.result == NULL);
	CHECK_INT_EQ(analysis_steps(a), 0);

	/* The probe's own routing, and one that names no probe, are taken. */
	rc = analysis_run(a, routing_path(100, 0.5f, 1, p->hash), NULL, 100, NULL, true, &o, &err);
	CHECK_INT_EQ(rc, 0);
	analysis_out_release(&o);
	rc = analysis_run(a, routing_path(200, 0.5f, 1, NULL), NULL, 200, NULL, true, &o, &err);
	CHECK_INT_EQ(rc, 0);
	CHECK_INT_EQ(analysis_steps(a), 2);
	analysis_out_release(&o);
	analysis_free(a);
}

/* A series' dimensions and groups are fixed by its first step: another's
 * is refused naming the input, and the series stays as it was. */
static void test_other_shape_refused(void)
{
	struct analysis *a = new_analysis(NULL);
	struct analysis_out o;
	struct routing *r = routing_new(1, 2, 4, 1);
	struct gw_err err = { "" };
	int rc;

	run(a, 100, 0.5f, 1, false, &o);
	analysis_out_release(&o);
	for (int l = 0; l < 2; l++)
		r->gbar[l * 4] = 1;
	r->groups[0] = gw_strdup("g");
	r->ids[0] = gw_strdup("");
	rc = analysis_add(a, "odd.st", r, SOURCE_ROUTING_FILE, "odd", 200, true, &o, &err);
	CHECK_INT_EQ(rc, -EINVAL);
	CHECK_STR_HAS(err.msg, "\"odd.st\"");
	CHECK_INT_EQ(analysis_steps(a), 1);
	CHECK(o.result == NULL && o.routing == NULL);
	analysis_free(a);
}

static const struct tap_test tests[] = {
	{ "memorized subset moves with the latest step", test_memo_moves_with_latest },
	{ "churn only against the step just before", test_churn_only_against_step_before },
	{ "a late older step", test_late_older_step },
	{ "kept routing back at start-up", test_restore },
	{ "a routing file of another probe is refused", test_other_probe_refused },
	{ "a routing of other dimensions is refused", test_other_shape_refused },
	{ NULL, NULL },
};

TAP_MAIN(tests)
