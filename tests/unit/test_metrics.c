/*
 * test_metrics.c — routing metrics (metrics.h) and the memorized-subset
 * series (routing_series.h) on hand-made routing records.  Every expected
 * value is worked out here by hand (cosines of 2-vectors, loads from a
 * six-entry top-k table) or by the plain O(nm) edit-distance program
 * below, never taken from the code under test.
 */
#include <errno.h>
#include <stdlib.h>

#include "../tap.h"
#include "engine/metrics.h"
#include "engine/pathway.h"
#include "engine/routing.h"
#include "engine/routing_series.h"

/* Plain dynamic program, the independent reference for distances. */
static int dp_lev(const char *a, const char *b)
{
	size_t m = strlen(a), n = strlen(b);
	int d[32][32];

	for (size_t i = 0; i <= m; i++)
		d[i][0] = (int)i;
	for (size_t j = 0; j <= n; j++)
		d[0][j] = (int)j;
	for (size_t i = 1; i <= m; i++) {
		for (size_t j = 1; j <= n; j++) {
			int x = d[i - 1][j] + 1, y = d[i][j - 1] + 1;
			int z = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);

			d[i][j] = x < y ? (x < z ? x : z) : (y < z ? y : z);
		}
	}
	return d[m][n];
}

static void set_row(struct routing *r, int i, int l, const float *w)
{
	memcpy(r->gbar + ((size_t)i * r->n_layers + l) * r->n_experts, w,
	       (size_t)r->n_experts * sizeof(float));
}

/*
 * Four samples, 3 MoE layers, 2 experts, hidden 2.  Router rows (expert
 * embeddings): W0 = [[1,0],[0,1]], W1 = [[-1,0],[0,1]], W2 = [[1,0],[0,1]].
 *   A (g1): g = [1,0] at every layer: e = (1,0), (-1,0), (1,0):
 *           c = -1, -1: max <= 0, undefined; adjacent -1.
 *   B (g1): g = [0,1]: e = (0,1) x3: c = 1, 1: C = 1 - 1/(1 + 1e-8).
 *   C (g2): [1,0], [.5,.5], [0,1]: e = (1,0), (-.5,.5), (0,1):
 *           c0 = -.5/sqrt(.5), c1 = .5/sqrt(.5): mean 0, C = 1.
 *   D (g2): [.5,.5], [0,1], [.25,.75]: e = (.5,.5), (0,1), (.25,.75):
 *           c0 = .5/sqrt(.5), c1 = .75/sqrt(.25^2 + .75^2).
 * Pathways at tau 0.7: A "0-0-0", B "1-1-1", C "0-0,1-1", D "0,1-1-1".
 */
static struct routing *four_samples(void)
{
	struct routing *r = routing_new(4, 3, 2, 1);
	static const float w0[4] = { 1, 0, 0, 1 }, w1[4] = { -1, 0, 0, 1 };
	static const float one0[2] = { 1, 0 }, one1[2] = { 0, 1 }, half[2] = { .5f, .5f },
			   q[2] = { .25f, .75f };
	static const char *const groups[4] = { "g1", "g1", "g2", "g2" };
	static const char *const ids[4] = { "A", "B", "C", "D" };

	r->hidden = 2;
	r->router[0] = gw_malloc(sizeof(w0));
	r->router[1] = gw_malloc(sizeof(w1));
	r->router[2] = gw_malloc(sizeof(w0));
	memcpy(r->router[0], w0, sizeof(w0));
	memcpy(r->router[1], w1, sizeof(w1));
	memcpy(r->router[2], w0, sizeof(w0));
	for (int l = 0; l < 3; l++) {
		set_row(r, 0, l, one0);
		set_row(r, 1, l, one1);
	}
	set_row(r, 2, 0, one0), set_row(r, 2, 1, half), set_row(r, 2, 2, one1);
	set_row(r, 3, 0, half), set_row(r, 3, 1, one1), set_row(r, 3, 2, q);
	for (int i = 0; i < 4; i++) {
		r->groups[i] = gw_strdup(groups[i]);
		r->ids[i] = gw_strdup(ids[i]);
		r->ntokens[i] = 1;
	}
	r->loss[0] = 0.1f, r->loss[1] = NAN, r->loss[2] = 2.0f, r->loss[3] = 0.3f;
	r->step = 1000;
	return r;
}

static double c_of_D(void)
{
	double c0 = 0.5 / sqrt(0.5), c1 = 0.75 / sqrt(0.25 * 0.25 + 0.75 * 0.75);

	return 1 - ((c0 + c1) / 2) / (c1 + 1e-8);
}

static double adj_of_D(void)
{
	return (0.5 / sqrt(0.5) + 0.75 / sqrt(0.25 * 0.25 + 0.75 * 0.75)) / 2;
}

static void test_consistency_per_sample(void)
{
	struct routing *r = four_samples();
	struct metrics_cons *c = NULL;

	CHECK_INT_EQ(metrics_consistency(r, METRICS_CONSISTENCY_FLOOR, &c, NULL), 0);
	CHECK(c->note == NULL);
	CHECK(isnan(c->c[0]));
	CHECK_NEAR(c->adj[0], -1.0, 1e-6);
	CHECK_NEAR(c->c[1], 1 - 1 / (1 + 1e-8), 1e-7);
	CHECK_NEAR(c->adj[1], 1.0, 1e-6);
	CHECK_NEAR(c->c[2], 1.0, 1e-6);
	CHECK_NEAR(c->adj[2], 0.0, 1e-6);
	CHECK_NEAR(c->c[3], c_of_D(), 1e-6);
	CHECK_NEAR(c->adj[3], adj_of_D(), 1e-6);
	metrics_cons_free(c);
	routing_free(r);
}

static const struct metrics_group *group(const struct metrics_result *m, const char *name)
{
	for (int g = 0; g < m->n_groups; g++)
		if (strcmp(m->groups[g].name, name) == 0)
			return &m->groups[g];
	tap_fail(__FILE__, __LINE__, "no group \"%s\"", name);
}

static void test_group_metrics(void)
{
	struct routing *r = four_samples();
	struct metrics_result *m = NULL;
	struct metrics_opts o;
	const struct metrics_group *g1, *g2, *all;
	struct gw_err err;
	double cB = 1 - 1 / (1 + 1e-8);
	const char *p[4] = { "0-0-0", "1-1-1", "0-0,1-1", "0,1-1-1" };
	double dall = 0;

	metrics_opts_init(&o);
	o.epsilon = 0.5;
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &m, &err), 0);
	CHECK_INT_EQ(m->n_groups, 3);
	CHECK_STR_EQ(m->groups[0].name, "g1");
	CHECK_STR_EQ(m->groups[2].name, "all");
	g1 = group(m, "g1"), g2 = group(m, "g2"), all = group(m, "all");

	CHECK_INT_EQ(g1->all.n_samples, 2);
	CHECK_INT_EQ(g1->all.n_undefined, 1);
	CHECK_NEAR(g1->all.pathway_consistency, cB, 1e-7);
	CHECK_NEAR(g1->all.adjacent_cosine, 0.0, 1e-6);
	CHECK_NEAR(g1->all.loss, 0.1, 1e-6);
	CHECK_NEAR(g1->all.pathway_distance, dp_lev(p[0], p[1]), 0);
	CHECK_INT_EQ(g1->all.n_pairs, 1);
	CHECK(!g1->all.sampled);
	for (int l = 0; l < 3; l++)
		CHECK_NEAR(g1->all.per_layer_distance[l], 1.0, 0);

	CHECK_INT_EQ(g2->all.n_undefined, 0);
	CHECK_NEAR(g2->all.pathway_consistency, (1.0 + c_of_D()) / 2, 1e-6);
	CHECK_NEAR(g2->all.adjacent_cosine, (0.0 + adj_of_D()) / 2, 1e-6);
	CHECK_NEAR(g2->all.loss, (2.0 + 0.3) / 2, 1e-6);
	CHECK_NEAR(g2->all.pathway_distance, dp_lev(p[2], p[3]), 0);
	/* layer parts of C and D: "0" / "0,1", "0,1" / "1", "1" / "1" */
	CHECK_NEAR(g2->all.per_layer_distance[0], dp_lev("0", "0,1"), 0);
	CHECK_NEAR(g2->all.per_layer_distance[1], dp_lev("0,1", "1"), 0);
	CHECK_NEAR(g2->all.per_layer_distance[2], 0, 0);

	CHECK_INT_EQ(all->all.n_samples, 4);
	CHECK_INT_EQ(all->all.n_undefined, 1);
	CHECK_NEAR(all->all.pathway_consistency, (cB + 1.0 + c_of_D()) / 3, 1e-6);
	CHECK_NEAR(all->all.adjacent_cosine, (-1 + 1 + 0 + adj_of_D()) / 4, 1e-6);
	CHECK_NEAR(all->all.loss, (0.1 + 2.0 + 0.3) / 3, 1e-6);
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++)
			dall += dp_lev(p[i], p[j]);
	CHECK_NEAR(all->all.pathway_distance, dall / 6, 1e-12);
	CHECK_INT_EQ(all->all.n_pairs, 6);

	/* Memorized, single checkpoint, epsilon 0.5: A (0.1) and D (0.3). */
	CHECK_INT_EQ(g1->memorized.n_samples, 1);
	CHECK(isnan(g1->memorized.pathway_distance));
	CHECK(isnan(g1->memorized.pathway_consistency));
	CHECK_INT_EQ(g1->memorized.n_undefined, 1);
	CHECK_NEAR(g1->memorized.adjacent_cosine, -1, 1e-6);
	CHECK_INT_EQ(g2->memorized.n_samples, 1);
	CHECK_NEAR(g2->memorized.pathway_consistency, c_of_D(), 1e-6);
	CHECK_INT_EQ(all->memorized.n_samples, 2);
	CHECK_NEAR(all->memorized.pathway_distance, dp_lev(p[0], p[3]), 0);
	CHECK_NEAR(all->memorized.loss, 0.2, 1e-6);
	CHECK(m->health == NULL);
	CHECK(m->health_note != NULL);
	CHECK(isnan(m->churn));
	metrics_result_free(m);

	/* A per-group epsilon: g2's 3.0 lets C in too. */
	{
		struct metrics_epsilon eg = { "g2", 3.0 };

		o.eps_groups = &eg;
		o.n_eps_groups = 1;
		CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &m, &err), 0);
		CHECK_INT_EQ(group(m, "g2")->memorized.n_samples, 2);
		CHECK_INT_EQ(group(m, "g1")->memorized.n_samples, 1);
		metrics_result_free(m);
	}
	routing_free(r);
}

static void test_json(void)
{
	struct routing *r = four_samples();
	struct metrics_result *m = NULL;
	struct metrics_opts o;
	cJSON *j, *g1, *mem;
	char *text;

	metrics_opts_init(&o);
	o.epsilon = 0.5;
	r->checkpoint = gw_strdup("step1000");
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &m, NULL), 0);
	j = metrics_result_json(m);
	text = cJSON_PrintUnformatted(j);
	tap_note("%s", text);
	/* No label: the publisher adds "type" (test_publish), analyze --json
	 * prints it (test_analyze.sh). */
	CHECK(cJSON_GetObjectItem(j, "type") == NULL);
	CHECK(cJSON_GetObjectItem(j, "kind") == NULL);
	CHECK_NEAR(cJSON_GetObjectItem(j, "step")->valuedouble, 1000, 0);
	CHECK_STR_EQ(cJSON_GetObjectItem(j, "checkpoint")->valuestring, "step1000");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "probe_hash")));
	CHECK_NEAR(cJSON_GetObjectItem(j, "tau")->valuedouble, 0.7, 0);
	g1 = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "groups"), "g1");
	CHECK(cJSON_IsObject(g1));
	CHECK(cJSON_IsObject(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "groups"), "all")));
	CHECK_NEAR(cJSON_GetObjectItem(g1, "pathway_distance")->valuedouble, 3, 0);
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(g1, "sampled")));
	CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(g1, "per_layer_distance")), 3);
	CHECK_NEAR(cJSON_GetObjectItem(g1, "n_undefined")->valuedouble, 1, 0);
	mem = cJSON_GetObjectItem(g1, "memorized");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(mem, "pathway_distance")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(mem, "pathway_consistency")));
	CHECK_NEAR(cJSON_GetObjectItem(mem, "n_samples")->valuedouble, 1, 0);
	CHECK(!cJSON_HasObjectItem(mem, "per_layer_distance"));
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "health")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "churn")));
	CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "churn_note")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "consistency_note")));
	CHECK(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "timings"), "total_sec")));
	free(text);
	cJSON_Delete(j);
	metrics_result_free(m);
	routing_free(r);
}

static void test_one_layer_has_no_consistency(void)
{
	struct routing *r = routing_new(2, 1, 2, 1);
	struct metrics_result *m = NULL;
	struct metrics_opts o;
	cJSON *j;

	for (int i = 0; i < 2; i++) {
		r->gbar[i * 2 + i] = 1;
		r->groups[i] = gw_strdup("x");
		r->ids[i] = gw_strdup("");
	}
	r->hidden = 1;
	r->router[0] = gw_calloc(2, sizeof(float));
	metrics_opts_init(&o);
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &m, NULL), 0);
	CHECK_STR_HAS(m->consistency_note, "fewer than 2 MoE layers");
	CHECK(isnan(m->groups[0].all.pathway_consistency));
	CHECK(isnan(m->groups[0].all.adjacent_cosine));
	CHECK_NEAR(m->groups[0].all.pathway_distance, 1, 0);
	j = metrics_result_json(m);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "groups"),
		"x"), "pathway_consistency")));
	CHECK_STR_HAS(cJSON_GetObjectItem(j, "consistency_note")->valuestring, "fewer than 2");
	cJSON_Delete(j);
	metrics_result_free(m);
	routing_free(r);
}

static void test_no_router_weights(void)
{
	struct routing *r = four_samples();
	struct metrics_cons *c = NULL;

	free(r->router[1]);
	r->router[1] = NULL;
	CHECK_INT_EQ(metrics_consistency(r, METRICS_CONSISTENCY_FLOOR, &c, NULL), 0);
	CHECK_STR_HAS(c->note, "no router weights");
	CHECK(c->c == NULL);
	metrics_cons_free(c);
	routing_free(r);
}

static void test_group_all_refused(void)
{
	struct routing *r = four_samples();
	struct metrics_result *m = NULL;
	struct metrics_opts o;
	struct gw_err err;

	free(r->groups[2]);
	r->groups[2] = gw_strdup("all");
	metrics_opts_init(&o);
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &m, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "\"all\"");
	o.tau = 1.5;
	free(r->groups[2]);
	r->groups[2] = gw_strdup("g2");
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &m, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "tau");
	routing_free(r);
}

static void test_sampled_distance(void)
{
	struct routing *r = four_samples();
	struct metrics_result *m = NULL;
	struct metrics_opts o;

	metrics_opts_init(&o);
	o.pair_budget = 3; /* "all" has 6 pairs: sampled; g1, g2 have 1: exact */
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &m, NULL), 0);
	CHECK(group(m, "all")->all.sampled);
	CHECK_INT_EQ(group(m, "all")->all.n_pairs, 3);
	CHECK(!group(m, "g1")->all.sampled);
	CHECK(group(m, "all")->all.pathway_distance_stderr >= 0);
	metrics_result_free(m);
	routing_free(r);
}

/*
 * Per-token table: samples of 2 and 1 tokens (T = 3), 2 layers, 4 experts,
 * top-2.
 *   layer 0: {0,1} {0,2} {1,0}: counts 3,2,1,0 of 6: load .5, 1/3, 1/6, 0
 *   layer 1: {3,2} {3,2} {1,2}: counts 0,1,3,2:      load 0, 1/6, .5, 1/3
 * Both layers: imbalance .5*4 = 2, one dead expert, the same entropy.
 * entropy: layer 0 .5, 1, 1.5 (mean 1); layer 1 .2, .4, .6 (mean .4)
 * lse:     layer 0 1, 2, 3 (mean square 14/3); layer 1 0, 1, -1 (2/3)
 */
static const uint16_t table_ids[3][2][2] = {
	{ { 0, 1 }, { 3, 2 } },
	{ { 0, 2 }, { 3, 2 } },
	{ { 1, 0 }, { 1, 2 } },
};

static struct routing *tokens_routing(const uint16_t ids[3][2][2])
{
	struct routing *r = routing_new(2, 2, 4, 2);
	static const float ent[3][2] = { { .5f, .2f }, { 1, .4f }, { 1.5f, .6f } };
	static const float lse[3][2] = { { 1, 0 }, { 2, 1 }, { 3, -1 } };

	for (int i = 0; i < 2; i++) {
		for (int l = 0; l < 2; l++)
			r->gbar[(i * 2 + l) * 4 + l] = 1;
		r->groups[i] = gw_strdup("g");
		r->ids[i] = gw_strdup("");
	}
	r->ntokens[0] = 2, r->ntokens[1] = 1;
	routing_alloc_tokens(r);
	memcpy(r->topk_ids, ids, sizeof(table_ids));
	memcpy(r->entropy, ent, sizeof(ent));
	memcpy(r->lse, lse, sizeof(lse));
	for (int i = 0; i < 12; i++)
		r->topk_w[i] = 0.5f;
	return r;
}

static void test_health(void)
{
	struct routing *r = tokens_routing(table_ids);
	struct metrics_result *m = NULL;
	struct metrics_opts o;
	const struct metrics_health *h;
	double H = -(0.5 * log(0.5) + (1.0 / 3) * log(1.0 / 3) + (1.0 / 6) * log(1.0 / 6)) / log(4.0);
	cJSON *j, *hj;

	metrics_opts_init(&o);
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &m, NULL), 0);
	h = m->health;
	CHECK(h != NULL);
	CHECK_NEAR(h->layers[0].load[0], 0.5, 1e-12);
	CHECK_NEAR(h->layers[0].load[1], 1.0 / 3, 1e-12);
	CHECK_NEAR(h->layers[0].load[2], 1.0 / 6, 1e-12);
	CHECK_NEAR(h->layers[0].load[3], 0, 0);
	CHECK_NEAR(h->layers[1].load[2], 0.5, 1e-12);
	CHECK_NEAR(h->layers[1].load[3], 1.0 / 3, 1e-12);
	for (int l = 0; l < 2; l++) {
		CHECK_NEAR(h->layers[l].imbalance, 2.0, 1e-12);
		CHECK_NEAR(h->layers[l].load_entropy, H, 1e-12);
		CHECK_INT_EQ(h->layers[l].dead_experts, 1);
	}
	CHECK_NEAR(h->layers[0].router_entropy, 1.0, 1e-6);
	CHECK_NEAR(h->layers[1].router_entropy, 0.4, 1e-6);
	CHECK_NEAR(h->layers[0].z_loss, 14.0 / 3, 1e-6);
	CHECK_NEAR(h->layers[1].z_loss, 2.0 / 3, 1e-6);
	CHECK_NEAR(h->imbalance, 2.0, 1e-12);
	CHECK_NEAR(h->max_imbalance, 2.0, 1e-12);
	CHECK_NEAR(h->load_entropy, H, 1e-12);
	CHECK_INT_EQ(h->dead_experts, 2);
	CHECK_NEAR(h->router_entropy, 0.7, 1e-6);
	CHECK_NEAR(h->z_loss, (14.0 / 3 + 2.0 / 3) / 2, 1e-6);
	CHECK_STR_HAS(m->churn_note, "no previous checkpoint");
	j = metrics_result_json(m);
	hj = cJSON_GetObjectItem(j, "health");
	CHECK_NEAR(cJSON_GetObjectItem(cJSON_GetObjectItem(hj, "overall"), "dead_experts")->valuedouble,
		   2, 0);
	CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(hj, "layers")), 2);
	CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(
		cJSON_GetArrayItem(cJSON_GetObjectItem(hj, "layers"), 1), "load")), 4);
	cJSON_Delete(j);
	metrics_result_free(m);
	routing_free(r);
}

/*
 * Previous checkpoint: layer 0 token 0 {0,3} (changed), token 1 {0,3}
 * (changed), token 2 {0,1} (the same set in another order: unchanged);
 * layer 1 token 1 {2,1} (changed).  3 of 6 changed; layer 0 2/3, layer 1 1/3.
 */
static void test_churn(void)
{
	static const uint16_t prev_ids[3][2][2] = {
		{ { 0, 3 }, { 3, 2 } },
		{ { 0, 3 }, { 2, 1 } },
		{ { 0, 1 }, { 1, 2 } },
	};
	struct routing *r = tokens_routing(table_ids), *p = tokens_routing(prev_ids);
	struct metrics_result *m = NULL;
	struct metrics_opts o;

	metrics_opts_init(&o);
	CHECK_INT_EQ(metrics_compute(r, p, NULL, NULL, &o, &m, NULL), 0);
	CHECK(m->churn_note == NULL);
	CHECK_NEAR(m->churn, 0.5, 1e-12);
	CHECK_NEAR(m->health->layers[0].churn, 2.0 / 3, 1e-12);
	CHECK_NEAR(m->health->layers[1].churn, 1.0 / 3, 1e-12);
	metrics_result_free(m);

	/* Against itself: nothing changed. */
	CHECK_INT_EQ(metrics_compute(r, r, NULL, NULL, &o, &m, NULL), 0);
	CHECK_NEAR(m->churn, 0, 0);
	metrics_result_free(m);
	routing_free(p);

	/* Another probe shape: null with a reason. */
	p = tokens_routing(prev_ids);
	p->ntokens[0] = 1, p->ntokens[1] = 2;
	CHECK_INT_EQ(metrics_compute(r, p, NULL, NULL, &o, &m, NULL), 0);
	CHECK(isnan(m->churn));
	CHECK_STR_HAS(m->churn_note, "token counts");
	metrics_result_free(m);
	routing_free(p);
	routing_free(r);
}

/* Series: N = 2 samples in group "g", L = 1, E = 2; pathways "0" and "1". */
static struct routing *series_point(int64_t step, float loss0, float loss1)
{
	struct routing *r = routing_new(2, 1, 2, 1);

	r->gbar[0] = 1, r->gbar[3] = 1;
	for (int i = 0; i < 2; i++) {
		r->groups[i] = gw_strdup("g");
		r->ids[i] = gw_strdup("");
		r->ntokens[i] = 1;
	}
	r->loss[0] = loss0, r->loss[1] = loss1;
	r->step = step;
	return r;
}

static int put(struct routing_series *s, int64_t step, float l0, float l1)
{
	struct routing *r = series_point(step, l0, l1);
	int rc = routing_series_put(s, r, NULL, NULL);

	routing_free(r);
	return rc;
}

/* The recompute is incremental (sets cached per step): after every put,
 * in and out of order, its values equal those of a fresh series given the
 * same puts, whose first recompute computes every set. */
static void test_memorized_incremental(void)
{
	struct routing_series *s = routing_series_new();
	struct metrics_opts o;
	uint32_t x = 12345;
	float l0[40], l1[40];

	metrics_opts_init(&o);
	o.epsilon = 0.5;
	o.delta = 0.05;
	for (int k = 0; k < 40; k++) {
		x = x * 1103515245u + 12345u;
		l0[k] = (float)((x >> 8) % 1000) / 1000.0f;
		x = x * 1103515245u + 12345u;
		l1[k] = (float)((x >> 8) % 1000) / 1500.0f;
	}
	for (int k = 0; k < 40; k++) {
		/* every 7th arrives late, older than the newest */
		int64_t step = k % 7 == 6 ? 10 * k - 35 : 10 * k;
		struct routing_series *fresh = routing_series_new();
		struct metrics_memo *a = NULL, *b = NULL;
		size_t na = 0, nb = 0;

		CHECK(put(s, step, l0[k], l1[k]) >= 0);
		for (int q = 0; q <= k; q++)
			CHECK(put(fresh, q % 7 == 6 ? 10 * q - 35 : 10 * q, l0[q], l1[q]) >= 0);
		CHECK_INT_EQ(routing_series_recompute(s, &o, &a, &na, NULL), 0);
		CHECK_INT_EQ(routing_series_recompute(fresh, &o, &b, &nb, NULL), 0);
		CHECK_INT_EQ(na, nb);
		for (size_t i = 0; i < na; i++)
			for (int g = 0; g < a[i].n_sets; g++) {
				const struct metrics_set *u = &a[i].sets[g], *v = &b[i].sets[g];

				CHECK_INT_EQ(u->n_samples, v->n_samples);
				CHECK(memcmp(&u->pathway_distance, &v->pathway_distance, sizeof(double)) == 0);
				CHECK(memcmp(&u->loss, &v->loss, sizeof(double)) == 0);
				CHECK(memcmp(&u->epsilon, &v->epsilon, sizeof(double)) == 0);
				CHECK(memcmp(&u->pathway_distance_se, &v->pathway_distance_se,
					     sizeof(double)) == 0);
			}
		routing_series_memo_free(a, na);
		routing_series_memo_free(b, nb);
		routing_series_free(fresh);
	}
	/* A step put again (its checkpoint rewritten), the newest and an
	 * older one: the same as a cold series given the final puts. */
	for (int r = 0; r < 2; r++) {
		int64_t step = r ? 190 : 390;
		struct routing_series *fresh = routing_series_new();
		struct metrics_memo *a = NULL, *b = NULL;
		size_t na = 0, nb = 0;

		CHECK_INT_EQ(put(s, step, 0.05f, 0.04f), 1);
		for (int q = 0; q < 40; q++) {
			int64_t st = q % 7 == 6 ? 10 * q - 35 : 10 * q;

			if (st == 390 || (r && st == 190))
				CHECK(put(fresh, st, 0.05f, 0.04f) >= 0);
			else
				CHECK(put(fresh, st, l0[q], l1[q]) >= 0);
		}
		CHECK_INT_EQ(routing_series_recompute(s, &o, &a, &na, NULL), 0);
		CHECK_INT_EQ(routing_series_recompute(fresh, &o, &b, &nb, NULL), 0);
		CHECK_INT_EQ(na, nb);
		for (size_t i = 0; i < na; i++)
			for (int g = 0; g < a[i].n_sets; g++) {
				CHECK_INT_EQ(a[i].sets[g].n_samples, b[i].sets[g].n_samples);
				CHECK(memcmp(&a[i].sets[g].pathway_distance, &b[i].sets[g].pathway_distance,
					     sizeof(double)) == 0);
				CHECK(memcmp(&a[i].sets[g].loss, &b[i].sets[g].loss, sizeof(double)) == 0);
			}
		routing_series_memo_free(a, na);
		routing_series_memo_free(b, nb);
		routing_series_free(fresh);
	}
	routing_series_free(s);
}

static void test_memorized_series(void)
{
	struct routing_series *s = routing_series_new();
	struct metrics_opts o;
	struct metrics_memo *memo = NULL;
	size_t n = 0;
	bool mask[2];
	long i200;

	metrics_opts_init(&o);
	o.epsilon = 0.5;
	o.delta = 0.05;
	/* sample 0: 1.0, .30, .32 (then .60 at 400); sample 1: .9, .2, .21 (.22) */
	CHECK_INT_EQ(put(s, 100, 1.0f, 0.9f), 0);
	CHECK_INT_EQ(put(s, 300, 0.32f, 0.21f), 0);
	CHECK_INT_EQ(put(s, 200, 0.30f, 0.2f), 0);
	CHECK_INT_EQ(routing_series_count(s), 3);
	CHECK_INT_EQ(routing_series_step_at(s, 1), 200);
	i200 = routing_series_find(s, 200);
	CHECK_INT_EQ(i200, 1);

	/* latest 300: both memorized at 200 (within .05 of .32 and .21), none at 100 */
	routing_series_memorized(s, 1, &o, mask, NULL);
	CHECK(mask[0] && mask[1]);
	routing_series_memorized(s, 0, &o, mask, NULL);
	CHECK(!mask[0] && !mask[1]);
	CHECK_INT_EQ(routing_series_recompute(s, &o, &memo, &n, NULL), 0);
	CHECK_INT_EQ(n, 3);
	CHECK_INT_EQ(memo[1].step, 200);
	CHECK_INT_EQ(memo[1].n_sets, 2);
	CHECK_STR_EQ(memo[1].names[1], "all");
	CHECK_INT_EQ(memo[1].sets[1].n_samples, 2);
	CHECK_NEAR(memo[1].sets[1].pathway_distance, 1, 0);
	CHECK_NEAR(memo[1].sets[1].loss, (0.30 + 0.2) / 2, 1e-6);
	CHECK_INT_EQ(memo[0].sets[1].n_samples, 0);
	routing_series_memo_free(memo, n);

	/* Step 400 arrives: sample 0's loss rose to .60 (> epsilon, and .30 is
	 * not within .05 of it): no longer memorized anywhere. */
	CHECK_INT_EQ(put(s, 400, 0.60f, 0.22f), 0);
	routing_series_memorized(s, 1, &o, mask, NULL);
	CHECK(!mask[0] && mask[1]);
	CHECK_INT_EQ(routing_series_recompute(s, &o, &memo, &n, NULL), 0);
	CHECK_INT_EQ(n, 4);
	CHECK_INT_EQ(memo[1].sets[1].n_samples, 1);
	CHECK(isnan(memo[1].sets[1].pathway_distance));
	CHECK_INT_EQ(memo[1].sets[1].n_pairs, 0);
	CHECK_NEAR(memo[1].sets[1].loss, 0.2, 1e-6);
	CHECK_INT_EQ(memo[2].sets[1].n_samples, 1); /* 300 */
	CHECK_INT_EQ(memo[3].sets[1].n_samples, 1); /* 400: sample 1 only */
	CHECK_INT_EQ(memo[3].sets[0].n_samples, 1); /* group "g" the same */
	routing_series_memo_free(memo, n);

	/* A late older step 250 with sample 1's loss at .9 breaks its
	 * stability from 200, not from 300. */
	CHECK_INT_EQ(put(s, 250, 0.31f, 0.9f), 0);
	CHECK_INT_EQ(routing_series_count(s), 5);
	CHECK_INT_EQ(routing_series_step_at(s, 0), 100);
	CHECK_INT_EQ(routing_series_step_at(s, 1), 200);
	CHECK_INT_EQ(routing_series_step_at(s, 2), 250);
	CHECK_INT_EQ(routing_series_step_at(s, 3), 300);
	CHECK_INT_EQ(routing_series_step_at(s, 4), 400);
	routing_series_memorized(s, 1, &o, mask, NULL);
	CHECK(!mask[0] && !mask[1]);
	routing_series_memorized(s, 3, &o, mask, NULL);
	CHECK(!mask[0] && mask[1]);

	/* Replacing 250 with a steady loss restores it. */
	CHECK_INT_EQ(put(s, 250, 0.31f, 0.21f), 1);
	CHECK_INT_EQ(routing_series_count(s), 5);
	routing_series_memorized(s, 1, &o, mask, NULL);
	CHECK(!mask[0] && mask[1]);
	routing_series_free(s);
}

static void test_memo_apply(void)
{
	struct routing_series *s = routing_series_new();
	struct routing *r = series_point(200, 0.30f, 0.2f);
	struct metrics_result *m = NULL;
	struct metrics_memo *memo = NULL;
	struct metrics_opts o;
	struct metrics_memorized mem;
	bool mask[2];
	double eps[1];
	size_t n;
	cJSON *j, *jm;

	metrics_opts_init(&o);
	o.epsilon = 0.5;
	CHECK_INT_EQ(routing_series_put(s, r, NULL, NULL), 0);
	CHECK_INT_EQ(put(s, 300, 0.32f, 0.21f), 0);
	routing_series_memorized(s, 0, &o, mask, eps);
	mem = (struct metrics_memorized){ mask, eps, 1 };
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, &mem, &o, &m, NULL), 0);
	j = metrics_result_json(m);
	jm = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "groups"), "all"),
				  "memorized");
	CHECK_NEAR(cJSON_GetObjectItem(jm, "n_samples")->valuedouble, 2, 0);

	CHECK_INT_EQ(put(s, 400, 0.60f, 0.22f), 0);
	CHECK_INT_EQ(routing_series_recompute(s, &o, &memo, &n, NULL), 0);
	CHECK_INT_EQ(routing_series_memo_apply(j, &memo[0]), 0);
	jm = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "groups"), "all"),
				  "memorized");
	CHECK_NEAR(cJSON_GetObjectItem(jm, "n_samples")->valuedouble, 1, 0);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(jm, "pathway_distance")));
	jm = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "groups"), "g"),
				  "memorized");
	CHECK_NEAR(cJSON_GetObjectItem(jm, "n_samples")->valuedouble, 1, 0);
	CHECK_INT_EQ(routing_series_memo_apply(j, &memo[1]), -EINVAL); /* step 300 */
	routing_series_memo_free(memo, n);
	cJSON_Delete(j);
	metrics_result_free(m);
	routing_free(r);
	routing_series_free(s);
}

static void test_series_refuses_mismatch(void)
{
	struct routing_series *s = routing_series_new();
	struct routing *r = series_point(100, 1, 1);
	struct gw_err err;

	CHECK_INT_EQ(routing_series_put(s, r, NULL, &err), 0);
	free(r->groups[1]);
	r->groups[1] = gw_strdup("h");
	r->step = 200;
	CHECK_INT_EQ(routing_series_put(s, r, NULL, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "sample 1");
	r->step = -1;
	CHECK_INT_EQ(routing_series_put(s, r, NULL, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "step");
	routing_free(r);
	r = routing_new(3, 1, 2, 1);
	r->step = 5;
	for (int i = 0; i < 3; i++)
		r->groups[i] = gw_strdup("g");
	CHECK_INT_EQ(routing_series_put(s, r, NULL, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "N=3");
	routing_free(r);
	routing_series_free(s);
}

/* n samples of group "g" (1 layer, 2 experts) with the given losses. */
static int put_losses(struct routing_series *s, int64_t step, const float *loss, int n,
		      const char *const *groups)
{
	struct routing *r = routing_new(n, 1, 2, 1);
	int rc;

	for (int i = 0; i < n; i++) {
		r->gbar[i * 2 + i % 2] = 1;
		r->groups[i] = gw_strdup(groups ? groups[i] : "g");
		r->ids[i] = gw_strdup("");
		r->ntokens[i] = 1;
		r->loss[i] = loss[i];
	}
	r->step = step;
	rc = routing_series_put(s, r, NULL, NULL);
	routing_free(r);
	return rc;
}

static int count_true(const bool *m, int n)
{
	int c = 0;

	for (int i = 0; i < n; i++)
		c += m[i];
	return c;
}

/*
 * The example: one sample's losses are 2.0, 0.99, 1.02, 1.00 at
 * four checkpoints, three others stay at 0.5; epsilon 1, delta 0.05.  A
 * rule that looked at loss <= epsilon at t alone (and stability within
 * delta) counts 3, 4, 3, 4: the sample flickers in at 0.99 and out at
 * 1.02.  The paper's rule needs loss <= epsilon at every checkpoint from t
 * to the latest: at the second and third checkpoints 1.02 follows, so it
 * is memorized only at the last: 3, 3, 3, 4.
 */
static void test_memorized_rule_no_flicker(void)
{
	struct routing_series *s = routing_series_new();
	static const float traj[4] = { 2.0f, 0.99f, 1.02f, 1.00f };
	struct metrics_memo *memo = NULL;
	struct metrics_opts o;
	bool mask[4];
	size_t n = 0;
	const int want[4] = { 3, 3, 3, 4 };

	metrics_opts_init(&o);
	o.epsilon = 1.0;
	o.delta = 0.05;
	for (int t = 0; t < 4; t++) {
		float l[4] = { 0.5f, 0.5f, 0.5f, traj[t] };

		CHECK_INT_EQ(put_losses(s, 100 * (t + 1), l, 4, NULL), 0);
	}
	CHECK_INT_EQ(routing_series_recompute(s, &o, &memo, &n, NULL), 0);
	CHECK_INT_EQ(n, 4);
	for (int t = 0; t < 4; t++) {
		routing_series_memorized(s, (size_t)t, &o, mask, NULL);
		CHECK_INT_EQ(count_true(mask, 4), want[t]);
		CHECK_INT_EQ(memo[t].sets[1].n_samples, want[t]);
		CHECK_NEAR(memo[t].sets[0].epsilon, 1.0, 0);
	}
	routing_series_memo_free(memo, n);

	/* Once memorized, memorized at every later checkpoint: a fifth
	 * checkpoint at 1.01 (> epsilon) takes it out everywhere. */
	{
		float l[4] = { 0.5f, 0.5f, 0.5f, 1.01f };

		CHECK_INT_EQ(put_losses(s, 500, l, 4, NULL), 0);
		for (int t = 0; t < 5; t++) {
			routing_series_memorized(s, (size_t)t, &o, mask, NULL);
			CHECK_INT_EQ(count_true(mask, 4), 3);
		}
	}
	routing_series_free(s);
}

/* Auto epsilon against hand-sorted losses. */
static void test_epsilon_auto(void)
{
	/* finite, sorted: .05 .3 .5 .6 .75 .9 1.5 2 3 (nine of ten) */
	static const float l[10] = { 0.9f, 0.5f, 2.0f, NAN, 0.05f, 0.75f, 1.5f, 0.3f, 3.0f, 0.6f };
	static const float tiny[3] = { 0.001f, 0.002f, 5.0f };
	static const int idx[3] = { 1, 4, 9 }; /* .5 .05 .6 */

	/* share .3: the 3rd smallest, 0.5, is exactly on the grid (5 * 0.1
	 * is 0.5 in double) */
	CHECK_NEAR(metrics_epsilon_auto(l, NULL, 10, 0.3), 0.5, 0);
	/* .2: the 2nd, 0.3f = 0.300000012 is above 3 * 0.1 (0.30000000000000004
	 * in double): loss <= 0.3 would leave it out, so 0.4 */
	CHECK_NEAR(metrics_epsilon_auto(l, NULL, 10, 0.2), 0.4, 1e-15);
	/* .5: the 5th, 0.75: 0.8 */
	CHECK_NEAR(metrics_epsilon_auto(l, NULL, 10, 0.5), 0.8, 1e-15);
	/* .9: the 9th, 3.0: 3.0 */
	CHECK_NEAR(metrics_epsilon_auto(l, NULL, 10, 0.9), 3.0, 1e-15);
	CHECK(3.0f <= metrics_epsilon_auto(l, NULL, 10, 0.9));
	/* .95: ten needed, nine finite */
	CHECK(isnan(metrics_epsilon_auto(l, NULL, 10, 0.95)));
	/* 0.2 * 10 is 2, not 3 */
	CHECK_NEAR(metrics_epsilon_auto(l, NULL, 10, 0.2), metrics_epsilon_auto(l, NULL, 10, 0.15),
		   0);
	/* the grid starts at 0.1 */
	CHECK_NEAR(metrics_epsilon_auto(tiny, NULL, 3, 0.5), 0.1, 1e-15);
	/* a subset: .05 .5 .6, share .5 -> the 2nd, 0.5 */
	CHECK_NEAR(metrics_epsilon_auto(l, idx, 3, 0.5), 0.5, 0);
	CHECK(isnan(metrics_epsilon_auto(l, NULL, 0, 0.2)));
}

/*
 * Auto epsilon in a series: it is chosen at the latest checkpoint and
 * moves with it.  Group "a" (auto, share 0.4: 2 of 5) and group "b" (1.0
 * given), delta 0.05.
 *   a at 100: .05 .15 .50 .9 2    b at every step: .5 .5 1.5 .2 3
 *   a at 200: .05 .12 .45 .9 2
 *   a at 300: .05 .35 .25 .9 2
 * Latest 200: a's 2nd smallest is .12: epsilon 0.2; memorized at 200:
 * .05, .12 (2); at 100: .05 and .15 (<= .2, within .05 of .12): 2.
 * b: .5 .5 .2 memorized everywhere (3).  all: 5, 5; epsilons differ, so
 * all's is null.
 * Latest 300: a's 2nd smallest .25: epsilon 0.3; at 300: .05 .25 (2); at
 * 200: .05 only (.12 is .23 from .35; .45 > .3): 1; at 100: 1.
 */
static void test_epsilon_auto_series(void)
{
	static const char *const grp[10] = { "a", "a", "a", "a", "a", "b", "b", "b", "b", "b" };
	static const float a1[5] = { 0.05f, 0.15f, 0.5f, 0.9f, 2.0f },
			   a2[5] = { 0.05f, 0.12f, 0.45f, 0.9f, 2.0f },
			   a3[5] = { 0.05f, 0.35f, 0.25f, 0.9f, 2.0f },
			   b[5] = { 0.5f, 0.5f, 1.5f, 0.2f, 3.0f };
	const float *const as[3] = { a1, a2, a3 };
	struct routing_series *s = routing_series_new();
	struct metrics_epsilon eb = { "b", 1.0 };
	struct metrics_memo *memo = NULL;
	struct metrics_opts o;
	bool mask[10];
	double eps[2];
	size_t n = 0;

	metrics_opts_init(&o);
	o.epsilon = METRICS_EPSILON_AUTO;
	o.memorized_share = 0.4;
	o.eps_groups = &eb;
	o.n_eps_groups = 1;
	for (int t = 0; t < 2; t++) {
		float l[10];

		memcpy(l, as[t], sizeof(a1));
		memcpy(l + 5, b, sizeof(b));
		CHECK_INT_EQ(put_losses(s, 100 * (t + 1), l, 10, grp), 0);
	}
	CHECK_INT_EQ(routing_series_groups(s), 2);
	routing_series_memorized(s, 1, &o, mask, eps);
	CHECK_NEAR(eps[0], 0.2, 1e-15);
	CHECK_NEAR(eps[1], 1.0, 0);
	CHECK_INT_EQ(count_true(mask, 5), 2);
	CHECK_INT_EQ(count_true(mask + 5, 5), 3);
	routing_series_memorized(s, 0, &o, mask, NULL);
	CHECK_INT_EQ(count_true(mask, 5), 2);
	CHECK_INT_EQ(routing_series_recompute(s, &o, &memo, &n, NULL), 0);
	CHECK_INT_EQ(memo[0].sets[2].n_samples, 5);
	CHECK_NEAR(memo[0].sets[0].epsilon, 0.2, 1e-15);
	CHECK_NEAR(memo[0].sets[1].epsilon, 1.0, 0);
	CHECK(isnan(memo[0].sets[2].epsilon));
	routing_series_memo_free(memo, n);

	{
		float l[10];

		memcpy(l, a3, sizeof(a3));
		memcpy(l + 5, b, sizeof(b));
		CHECK_INT_EQ(put_losses(s, 300, l, 10, grp), 0);
	}
	CHECK_INT_EQ(routing_series_recompute(s, &o, &memo, &n, NULL), 0);
	CHECK_INT_EQ(n, 3);
	CHECK_INT_EQ(memo[2].sets[0].n_samples, 2);
	CHECK_INT_EQ(memo[1].sets[0].n_samples, 1);
	CHECK_INT_EQ(memo[0].sets[0].n_samples, 1);
	for (size_t t = 0; t < 3; t++) {
		CHECK_NEAR(memo[t].sets[0].epsilon, 0.3, 1e-15);
		CHECK_INT_EQ(memo[t].sets[1].n_samples, 3);
	}
	routing_series_memo_free(memo, n);

	/* Both groups auto with the same result: all carries it.  b's 2nd
	 * smallest is .5: 0.5; a's (share .4) .25: 0.3.  Share .2 (1 of 5):
	 * a .05 -> 0.1, b .2 -> 0.2; share .6 (3 of 5): a .35 -> 0.4, b .5 ->
	 * 0.5.  Make them meet: share .2 with b's .2 lowered is not needed;
	 * instead give a an epsilon equal to b's auto one. */
	o.n_eps_groups = 0;
	o.memorized_share = 0.4;
	routing_series_memorized(s, 2, &o, mask, eps);
	CHECK_NEAR(eps[0], 0.3, 1e-15);
	CHECK_NEAR(eps[1], 0.5, 0);
	{
		struct metrics_epsilon ea = { "a", 0.5 };

		o.eps_groups = &ea;
		o.n_eps_groups = 1;
		CHECK_INT_EQ(routing_series_recompute(s, &o, &memo, &n, NULL), 0);
		CHECK_NEAR(memo[2].sets[2].epsilon, 0.5, 0);
		routing_series_memo_free(memo, n);
	}
	routing_series_free(s);
}

/* Without a series (analyze of one checkpoint), the checkpoint is its own
 * latest: auto epsilon from its losses, published with the subset. */
static void test_epsilon_auto_single(void)
{
	struct routing *r = four_samples(); /* g1: .1, NaN; g2: 2.0, .3 */
	struct metrics_result *m = NULL;
	struct metrics_opts o;
	cJSON *j, *mem;

	metrics_opts_init(&o);
	o.epsilon = METRICS_EPSILON_AUTO;
	o.memorized_share = 0.5; /* 1 of 2 */
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &m, NULL), 0);
	/* 0.1f is 0.100000001, above 0.1 in double: 0.2 */
	CHECK_NEAR(group(m, "g1")->memorized.epsilon, 0.2, 1e-15);
	CHECK_INT_EQ(group(m, "g1")->memorized.n_samples, 1);
	CHECK_NEAR(group(m, "g2")->memorized.epsilon, 0.4, 1e-15); /* 0.3f > 0.3 */
	CHECK_INT_EQ(group(m, "g2")->memorized.n_samples, 1);
	CHECK(isnan(group(m, "all")->memorized.epsilon));
	CHECK(isnan(group(m, "all")->all.epsilon));
	j = metrics_result_json(m);
	mem = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "groups"), "g2"),
				  "memorized");
	CHECK_NEAR(cJSON_GetObjectItem(mem, "epsilon")->valuedouble, 0.4, 1e-15);
	mem = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "groups"), "all"),
				  "memorized");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(mem, "epsilon")));
	CHECK(!cJSON_HasObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "groups"), "g2"),
				   "epsilon"));
	cJSON_Delete(j);
	metrics_result_free(m);
	/* share 1: g1 has one finite loss of two: no epsilon, none memorized */
	o.memorized_share = 1;
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &m, NULL), 0);
	CHECK(isnan(group(m, "g1")->memorized.epsilon));
	CHECK_INT_EQ(group(m, "g1")->memorized.n_samples, 0);
	CHECK_NEAR(group(m, "g2")->memorized.epsilon, 2.0, 1e-15);
	metrics_result_free(m);
	routing_free(r);
}

/* ---- each distinct set computed once ------------------------------------ */

static uint64_t shr_state = 0x5eed5eed5eed5eedULL;

static double shr_uniform(void)
{
	uint64_t z = (shr_state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* n samples, 5 layers, 12 experts, random rows; groups[i % ngroups];
 * every loss `loss`. */
static struct routing *random_routing(int n, int ngroups, float loss)
{
	static const char *const names[3] = { "math", "code", "web" };
	struct routing *r = routing_new(n, 5, 12, 2);

	for (size_t k = 0; k < (size_t)n * 5; k++) {
		float *g = r->gbar + k * 12;
		double sum = 0;

		for (int e = 0; e < 12; e++) {
			g[e] = (float)exp(4 * shr_uniform());
			sum += g[e];
		}
		for (int e = 0; e < 12; e++)
			g[e] = (float)(g[e] / sum);
	}
	for (int i = 0; i < n; i++) {
		r->groups[i] = gw_strdup(names[i % ngroups]);
		r->ids[i] = gw_strdup("");
		r->ntokens[i] = 1;
		r->loss[i] = loss;
	}
	r->step = 10;
	return r;
}

/* Every field, bit for bit (NaN equal to NaN). */
static void check_same_set(const struct metrics_set *a, const struct metrics_set *b, int L)
{
#define SAME(x) CHECK((a->x == b->x) || (isnan((double)a->x) && isnan((double)b->x)))
	SAME(n_samples);
	SAME(pathway_distance);
	SAME(pathway_distance_stderr);
	SAME(pathway_distance_se);
	SAME(n_pairs);
	SAME(sampled);
	SAME(pathway_consistency);
	SAME(adjacent_cosine);
	SAME(n_undefined);
	SAME(loss);
#undef SAME
	CHECK((a->per_layer_distance == NULL) == (b->per_layer_distance == NULL));
	for (int l = 0; a->per_layer_distance && b->per_layer_distance && l < L; l++)
		CHECK(a->per_layer_distance[l] == b->per_layer_distance[l]);
}

/* The set of samples of group g (ng: all), memorized ones only when mem. */
static int set_of(const struct routing *r, const char *name, bool mem, double eps, int *idx)
{
	int n = 0;

	for (int i = 0; i < r->n_samples; i++)
		if ((!name || !strcmp(r->groups[i], name)) &&
		    (!mem || (isfinite(r->loss[i]) && r->loss[i] <= eps)))
			idx[n++] = i;
	return n;
}

/*
 * The shared computation equals the separate one: metrics_compute (which
 * computes each distinct set once) against metrics_set_compute called for
 * every set on its own, exact and sampled, one group (group = all, every
 * sample memorized: one distinct set of four) and three (each memorized
 * subset its group; `all` and its memorized subset the same).
 */
static void check_shared_equals_separate(int n, int ngroups, uint64_t budget)
{
	struct routing *r = random_routing(n, ngroups, 0.5f);
	struct metrics_result *m = NULL;
	struct metrics_opts o;
	struct pathway_set *ps = NULL;
	struct metrics_cons *cons = NULL;
	int *idx = calloc((size_t)n, sizeof(int));

	CHECK(idx);
	metrics_opts_init(&o);
	o.pair_budget = budget;
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &m, NULL), 0);
	CHECK_INT_EQ(metrics_consistency(r, o.consistency_floor, &cons, NULL), 0);
	CHECK_INT_EQ(pathway_set_new(r->gbar, n, 5, 12, o.tau, &ps, NULL), 0);
	CHECK_INT_EQ(m->n_groups, ngroups + 1);
	for (int g = 0; g < m->n_groups; g++) {
		const struct metrics_group *G = &m->groups[g];
		const char *name = strcmp(G->name, "all") ? G->name : NULL;
		struct metrics_set one, mone;
		int k = set_of(r, name, false, 1.0, idx);

		CHECK_INT_EQ(metrics_set_compute(ps, cons, r->loss, idx, k, &o, true, &one, NULL), 0);
		check_same_set(&G->all, &one, 5);
		k = set_of(r, name, true, 1.0, idx);
		CHECK_INT_EQ(k, G->all.n_samples);   /* every sample memorized */
		CHECK_INT_EQ(metrics_set_compute(ps, cons, r->loss, idx, k, &o, false, &mone, NULL), 0);
		check_same_set(&G->memorized, &mone, 5);
		CHECK(G->memorized.per_layer_distance == NULL);
		free(one.per_layer_distance);
	}
	if (budget < (uint64_t)n * (uint64_t)(n - 1) / 2)
		CHECK(m->groups[m->n_groups - 1].all.sampled);
	metrics_result_free(m);
	pathway_set_free(ps);
	metrics_cons_free(cons);
	free(idx);
	routing_free(r);
}

static void test_shared_equals_separate(void)
{
	check_shared_equals_separate(70, 1, LEV_DEFAULT_BUDGET);
	check_shared_equals_separate(70, 3, LEV_DEFAULT_BUDGET);
	check_shared_equals_separate(90, 1, 1000);   /* sampled */
	check_shared_equals_separate(90, 3, 500);
}

/* metrics_sets_compute counts what it computed: equal sequences once,
 * with per-layer distances when any copy asks for them. */
static void test_sets_computed_once(void)
{
	struct routing *r = random_routing(30, 1, 0.5f);
	struct pathway_set *ps = NULL;
	struct metrics_opts o;
	int a[30], b[10], c[10], distinct = -1;
	struct metrics_set out[5];
	struct metrics_set_req req[5];

	metrics_opts_init(&o);
	CHECK_INT_EQ(pathway_set_new(r->gbar, 30, 5, 12, o.tau, &ps, NULL), 0);
	for (int i = 0; i < 30; i++)
		a[i] = i;
	for (int i = 0; i < 10; i++)
		b[i] = c[i] = 2 * i;
	req[0] = (struct metrics_set_req){ .idx = a, .n = 30, .out = &out[0] };
	req[1] = (struct metrics_set_req){ .idx = b, .n = 10, .out = &out[1] };
	req[2] = (struct metrics_set_req){ .idx = a, .n = 30, .layers = true, .out = &out[2] };
	req[3] = (struct metrics_set_req){ .idx = c, .n = 10, .out = &out[3] };
	req[4] = (struct metrics_set_req){ .idx = a, .n = 29, .out = &out[4] };
	CHECK_INT_EQ(metrics_sets_compute(ps, NULL, r->loss, req, 5, &o, &distinct, NULL), 0);
	CHECK_INT_EQ(distinct, 3);
	CHECK(out[0].per_layer_distance == NULL && out[2].per_layer_distance != NULL);
	check_same_set(&out[1], &out[3], 5);
	CHECK(out[0].pathway_distance == out[2].pathway_distance);
	CHECK_INT_EQ(out[4].n_pairs, 29 * 28 / 2);
	free(out[2].per_layer_distance);
	pathway_set_free(ps);
	routing_free(r);
}

/*
 * The memorized subsets republished against the latest step take that
 * step's distances from the cache metrics_compute_cached filled: equal to
 * the uncached recompute; and the cache is really read (a cache holding
 * another routing's value for the step gives that value back).
 */
static void test_recompute_takes_cache(void)
{
	struct routing *r = random_routing(40, 1, 0.5f), *other = random_routing(40, 1, 0.5f);
	struct routing_series *s = routing_series_new();
	struct metrics_dcache *cache = metrics_dcache_new();
	struct metrics_cons *cons = NULL;
	struct metrics_result *m = NULL;
	struct metrics_memo *plain = NULL, *cached = NULL;
	struct pathway_set *ps = NULL;
	struct metrics_opts o;
	struct metrics_set fake;
	struct metrics_set_req req;
	int idx[40];
	size_t n1 = 0, n2 = 0;
	bool mask[40];
	double eps[1];
	struct metrics_memorized mem = { mask, eps, 1 };

	metrics_opts_init(&o);
	CHECK_INT_EQ(metrics_consistency(r, o.consistency_floor, &cons, NULL), 0);
	CHECK(routing_series_put(s, r, cons, NULL) >= 0);
	routing_series_memorized(s, 0, &o, mask, eps);
	metrics_dcache_reset(cache, 10);
	CHECK_INT_EQ(metrics_compute_cached(r, NULL, cons, &mem, &o, cache, &m, NULL), 0);
	CHECK_INT_EQ(m->groups[1].memorized.n_samples, 40);
	CHECK_INT_EQ(routing_series_recompute(s, &o, &plain, &n1, NULL), 0);
	CHECK_INT_EQ(routing_series_recompute_cached(s, &o, cache, &cached, &n2, NULL), 0);
	CHECK_INT_EQ(n1, 1);
	CHECK_INT_EQ(n2, 1);
	for (int g = 0; g < plain[0].n_sets; g++)
		check_same_set(&plain[0].sets[g], &cached[0].sets[g], 5);
	check_same_set(&plain[0].sets[1], &m->groups[1].memorized, 5);
	routing_series_memo_free(cached, n2);

	/* Another routing's distance put in the cache for the same step. */
	for (int i = 0; i < 40; i++)
		idx[i] = i;
	metrics_dcache_reset(cache, 10);
	CHECK_INT_EQ(pathway_set_new(other->gbar, 40, 5, 12, o.tau, &ps, NULL), 0);
	req = (struct metrics_set_req){ .idx = idx, .n = 40, .out = &fake };
	CHECK_INT_EQ(metrics_sets_compute_cached(ps, NULL, other->loss, &req, 1, &o, cache, NULL,
						 NULL), 0);
	CHECK(fake.pathway_distance != plain[0].sets[1].pathway_distance);
	CHECK_INT_EQ(routing_series_recompute_cached(s, &o, cache, &cached, &n2, NULL), 0);
	CHECK(cached[0].sets[1].pathway_distance == fake.pathway_distance);
	routing_series_memo_free(cached, n2);
	/* keyed to another step: not read */
	metrics_dcache_reset(cache, 11);
	CHECK_INT_EQ(routing_series_recompute_cached(s, &o, cache, &cached, &n2, NULL), 0);
	CHECK(cached[0].sets[1].pathway_distance == plain[0].sets[1].pathway_distance);
	routing_series_memo_free(cached, n2);

	routing_series_memo_free(plain, n1);
	pathway_set_free(ps);
	metrics_result_free(m);
	metrics_cons_free(cons);
	metrics_dcache_free(cache);
	routing_series_free(s);
	routing_free(r);
	routing_free(other);
}

/* per_layer off: no per-layer distances, null in the JSON, the rest the
 * same. */
static void test_per_layer_off(void)
{
	struct routing *r = random_routing(20, 2, 0.5f);
	struct metrics_result *on = NULL, *off = NULL;
	struct metrics_opts o;
	cJSON *j, *all;

	metrics_opts_init(&o);
	CHECK(o.per_layer);
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &on, NULL), 0);
	o.per_layer = false;
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &off, NULL), 0);
	for (int g = 0; g < on->n_groups; g++) {
		CHECK(on->groups[g].all.per_layer_distance != NULL);
		CHECK(off->groups[g].all.per_layer_distance == NULL);
		CHECK(on->groups[g].all.pathway_distance == off->groups[g].all.pathway_distance);
		CHECK(on->groups[g].all.pathway_distance_se == off->groups[g].all.pathway_distance_se);
	}
	j = metrics_result_json(off);
	all = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "groups"), "all");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(all, "per_layer_distance")));
	CHECK(!cJSON_HasObjectItem(cJSON_GetObjectItem(all, "memorized"), "per_layer_distance"));
	cJSON_Delete(j);
	metrics_result_free(on);
	metrics_result_free(off);
	routing_free(r);
}

static void test_opts_check(void)
{
	struct metrics_opts o;
	struct metrics_epsilon eg = { "math", -0.5 };
	struct gw_err err;

	metrics_opts_init(&o);
	CHECK_NEAR(o.memorized_share, 0.2, 0);
	CHECK_NEAR(o.consistency_floor, 0.05, 0);
	CHECK_INT_EQ(metrics_opts_check(&o, &err), 0);
	o.epsilon = METRICS_EPSILON_AUTO;
	CHECK_INT_EQ(metrics_opts_check(&o, &err), 0);
	o.epsilon = -0.5;
	CHECK_INT_EQ(metrics_opts_check(&o, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "\"epsilon\": -0.5 is neither");
	o.epsilon = NAN;
	CHECK_INT_EQ(metrics_opts_check(&o, &err), -EINVAL);
	o.epsilon = 1;
	o.eps_groups = &eg;
	o.n_eps_groups = 1;
	CHECK_INT_EQ(metrics_opts_check(&o, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "group \"math\"");
	o.n_eps_groups = 0;
	o.memorized_share = 0;
	CHECK_INT_EQ(metrics_opts_check(&o, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "memorized_share");
	o.memorized_share = 1;
	CHECK_INT_EQ(metrics_opts_check(&o, &err), 0);
	o.consistency_floor = 1;
	CHECK_INT_EQ(metrics_opts_check(&o, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "consistency_floor");
}

/*
 * The floor.  One sample whose routing vector is expert 0 at all three
 * layers, so e_l is row 0 of W_l, set here to unit vectors at angles 0,
 * a = acos(0.04) and a + acos(0.01): c_0 = 0.04, c_1 = 0.01.  max c 0.04
 * is below the default floor 0.05: C undefined (its ratio would be
 * 1 - 0.025/0.04); with a floor of 0.03 it is defined.
 */
static struct routing *low_cosine(void)
{
	struct routing *r = routing_new(1, 3, 2, 1);
	double a = acos(0.04), b = a + acos(0.01);
	const double ang[3] = { 0, a, b };

	r->hidden = 2;
	for (int l = 0; l < 3; l++) {
		r->router[l] = gw_calloc(4, sizeof(float));
		r->router[l][0] = (float)cos(ang[l]);
		r->router[l][1] = (float)sin(ang[l]);
		r->gbar[l * 2] = 1;
	}
	r->groups[0] = gw_strdup("g");
	r->ids[0] = gw_strdup("");
	r->ntokens[0] = 1;
	r->loss[0] = 0.1f;
	return r;
}

static void test_consistency_floor(void)
{
	struct routing *r = low_cosine();
	struct metrics_cons *c = NULL;
	struct metrics_result *m = NULL;
	struct metrics_opts o;

	CHECK_INT_EQ(metrics_consistency(r, METRICS_CONSISTENCY_FLOOR, &c, NULL), 0);
	CHECK(isnan(c->c[0]));
	CHECK_NEAR(c->adj[0], 0.025, 1e-6);
	metrics_cons_free(c);
	CHECK_INT_EQ(metrics_consistency(r, 0.03, &c, NULL), 0);
	CHECK_NEAR(c->c[0], 1 - 0.025 / (0.04 + 1e-8), 1e-4);
	metrics_cons_free(c);
	/* and through the options */
	metrics_opts_init(&o);
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &m, NULL), 0);
	CHECK_INT_EQ(m->groups[0].all.n_undefined, 1);
	CHECK(isnan(m->groups[0].all.pathway_consistency));
	CHECK_NEAR(m->groups[0].all.adjacent_cosine, 0.025, 1e-6);
	metrics_result_free(m);
	o.consistency_floor = 0.03;
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &m, NULL), 0);
	CHECK_INT_EQ(m->groups[0].all.n_undefined, 0);
	CHECK_NEAR(m->groups[0].all.pathway_consistency, 1 - 0.025 / 0.04, 1e-4);
	metrics_result_free(m);
	routing_free(r);
}

/* Two MoE layers: one cosine, C = 1 - c/c = 0 for every sample; the
 * metric does not exist, and the note says so. */
static void test_two_layers_have_no_consistency(void)
{
	struct routing *r = routing_new(2, 2, 2, 1);
	struct metrics_result *m = NULL;
	struct metrics_opts o;

	r->hidden = 2;
	for (int l = 0; l < 2; l++) {
		r->router[l] = gw_calloc(4, sizeof(float));
		r->router[l][0] = 1, r->router[l][3] = 1;
	}
	for (int i = 0; i < 2; i++) {
		r->gbar[i * 4 + i] = 1;
		r->gbar[i * 4 + 2 + i] = 1;
		r->groups[i] = gw_strdup("x");
		r->ids[i] = gw_strdup("");
	}
	metrics_opts_init(&o);
	CHECK_INT_EQ(metrics_compute(r, NULL, NULL, NULL, &o, &m, NULL), 0);
	CHECK_STR_HAS(m->consistency_note, "2 MoE layers");
	CHECK_STR_HAS(m->consistency_note, "at least 3");
	CHECK(isnan(m->groups[0].all.pathway_consistency));
	CHECK(isnan(m->groups[0].all.adjacent_cosine));
	metrics_result_free(m);
	routing_free(r);
}

static void test_groups_first_appearance(void)
{
	static char web[] = "web", math[] = "math", code[] = "code";
	char *g[6] = { web, math, web, code, math, code };
	const char **names;
	int ng, *gid;

	metrics_groups(g, 6, &names, &ng, &gid);
	CHECK_INT_EQ(ng, 3);
	CHECK_STR_EQ(names[0], "web");
	CHECK_STR_EQ(names[1], "math");
	CHECK_STR_EQ(names[2], "code");
	CHECK_INT_EQ(gid[0], 0);
	CHECK_INT_EQ(gid[1], 1);
	CHECK_INT_EQ(gid[2], 0);
	CHECK_INT_EQ(gid[3], 2);
	CHECK_INT_EQ(gid[4], 1);
	CHECK_INT_EQ(gid[5], 2);
	free(names);
	free(gid);
}

static const struct tap_test tests[] = {
	{ "consistency_per_sample", test_consistency_per_sample },
	{ "group_metrics", test_group_metrics },
	{ "json", test_json },
	{ "one_layer_has_no_consistency", test_one_layer_has_no_consistency },
	{ "no_router_weights", test_no_router_weights },
	{ "group_all_refused", test_group_all_refused },
	{ "sampled_distance", test_sampled_distance },
	{ "health", test_health },
	{ "churn", test_churn },
	{ "memorized_series", test_memorized_series },
	{ "memorized_incremental", test_memorized_incremental },
	{ "memo_apply", test_memo_apply },
	{ "series_refuses_mismatch", test_series_refuses_mismatch },
	{ "memorized_rule_no_flicker", test_memorized_rule_no_flicker },
	{ "epsilon_auto", test_epsilon_auto },
	{ "epsilon_auto_series", test_epsilon_auto_series },
	{ "epsilon_auto_single", test_epsilon_auto_single },
	{ "opts_check", test_opts_check },
	{ "consistency_floor", test_consistency_floor },
	{ "two_layers_have_no_consistency", test_two_layers_have_no_consistency },
	{ "groups_first_appearance", test_groups_first_appearance },
	{ "shared_equals_separate", test_shared_equals_separate },
	{ "sets_computed_once", test_sets_computed_once },
	{ "recompute_takes_cache", test_recompute_takes_cache },
	{ "per_layer_off", test_per_layer_off },
	{ NULL, NULL },
};
TAP_MAIN_DAEMON(tests)
