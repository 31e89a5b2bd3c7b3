/*
 * test_pathway.c — pathway strings for hand-made routing vectors (expected
 * strings worked out by hand from SPEC §4 and the rule in pathway.h), the
 * set's per-layer parts, and the pathway distance against a dynamic program
 * written here.
 */
#include <errno.h>
#include <stdlib.h>

#include "../tap.h"
#include "../lev_dp.h"
#include "engine/pathway.h"

/* One sample's pathway, or the test fails. */
static char *path_of(const float *gbar, int n_layers, int n_experts, double tau)
{
	struct gw_err err = { "" };
	char *s = NULL;
	size_t len = 0;

	if (pathway_string(gbar, n_layers, n_experts, tau, &s, &len, &err) != 0)
		tap_fail(__FILE__, __LINE__, "pathway_string: %s", err.msg);
	CHECK_INT_EQ(len, strlen(s));
	return s;
}

#define CHECK_PATH(gbar, L, E, tau, want) do { \
	char *_p = path_of(gbar, L, E, tau); \
	CHECK_STR_EQ(_p, want); \
	free(_p); \
} while (0)

static void test_spec_example(void)
{
	/* 3 layers, 13 experts; the kept weights of each layer, the rest of
	 * the mass spread evenly and smaller than any kept weight. */
	float g[3][13];
	int e;

	for (e = 0; e < 13; e++) {
		g[0][e] = 0.25f / 10;   /* 0.4 + 0.2 + 0.15 kept */
		g[1][e] = 0.2f / 11;    /* 0.5 + 0.3 */
		g[2][e] = 0.2f / 11;    /* 0.6 + 0.2 */
	}
	g[0][3] = 0.4f, g[0][1] = 0.2f, g[0][5] = 0.15f;
	g[1][12] = 0.5f, g[1][0] = 0.3f;
	g[2][9] = 0.6f, g[2][1] = 0.2f;
	CHECK_PATH(&g[0][0], 3, 13, 0.7, "3,1,5-12,0-9,1");
	CHECK_PATH(&g[0][0], 3, 13, PATHWAY_TAU_DEFAULT, "3,1,5-12,0-9,1");
}

static void test_all_equal_weights(void)
{
	const float q[4] = { 0.25f, 0.25f, 0.25f, 0.25f };
	float t[10];
	int e;

	/* ties go to the lower index; 0.25 + 0.25 + 0.25 = 0.75 >= 0.7 */
	CHECK_PATH(q, 1, 4, 0.7, "0,1,2");
	CHECK_PATH(q, 1, 4, 0.5, "0,1");
	CHECK_PATH(q, 1, 4, 1.0, "0,1,2,3");
	/* 0.1f is 0.100000001490116...: six of them sum to 0.6000000089,
	 * seven to 0.7000000104 > 0.7 */
	for (e = 0; e < 10; e++)
		t[e] = 0.1f;
	CHECK_PATH(t, 1, 10, 0.7, "0,1,2,3,4,5,6");
}

static void test_prefix_hitting_tau_exactly(void)
{
	/* 0.5 + 0.25 = 0.75 exactly, in float and double: it reaches tau */
	const float w[4] = { 0.25f, 0.5f, 0.125f, 0.125f };

	CHECK_PATH(w, 1, 4, 0.75, "1,0");
	CHECK_PATH(w, 1, 4, 0.5, "1");
	CHECK_PATH(w, 1, 4, 0.875, "1,0,2");
	/* just above 0.75 needs the third */
	CHECK_PATH(w, 1, 4, 0.7500001, "1,0,2");
}

static void test_tau_one(void)
{
	const float w[4] = { 0.5f, 0.0f, 0.25f, 0.25f };
	/* 0.9f + 0.1f = 0.99999997765 in double: short of 1 by rounding */
	const float r[3] = { 0.1f, 0.9f, 0.0f };
	/* a row short of tau: every nonzero expert, no zero one */
	const float s[4] = { 0.3f, 0.2f, 0.0f, 0.1f };

	CHECK_PATH(w, 1, 4, 1.0, "0,2,3");
	CHECK_PATH(r, 1, 3, 1.0, "1,0");
	CHECK_PATH(s, 1, 4, 0.7, "0,1,3");
}

static void test_single_expert_and_zero_rows(void)
{
	const float one[3] = { 1.0f, 1.0f, 1.0f };
	const float zero[4] = { 0, 0, 0, 0 };
	const float negzero[2] = { -0.0f, 0.0f };
	const float last[3] = { 0, 0, 1.0f };

	CHECK_PATH(one, 1, 1, 0.7, "0");
	CHECK_PATH(one, 3, 1, 1.0, "0-0-0");
	CHECK_PATH(zero, 1, 4, 0.7, "0");     /* at least one expert */
	CHECK_PATH(zero, 2, 2, 1.0, "0-0");
	CHECK_PATH(negzero, 1, 2, 0.7, "0");  /* -0 ties with 0 */
	CHECK_PATH(last, 1, 3, 0.7, "2");
	CHECK_PATH(last, 1, 3, 1.0, "2");
}

static void test_ties_to_lower_index(void)
{
	const float a[4] = { 0.1f, 0.4f, 0.1f, 0.4f };
	/* 0.4f + 0.3f = 0.70000002 >= 0.7: the tie at the cut keeps 1, not 2 */
	const float b[3] = { 0.4f, 0.3f, 0.3f };
	int order[4], kept = 0;

	CHECK_PATH(a, 1, 4, 0.7, "1,3");
	CHECK_PATH(a, 1, 4, 0.85, "1,3,0");
	CHECK_PATH(b, 1, 3, 0.7, "0,1");
	CHECK_INT_EQ(pathway_layer_select(a, 4, 0.85, order, NULL, &kept, NULL), 0);
	CHECK_INT_EQ(kept, 3);
	CHECK_INT_EQ(order[0], 1);
	CHECK_INT_EQ(order[1], 3);
	CHECK_INT_EQ(order[2], 0);
	CHECK_INT_EQ(order[3], 2);
}

static void test_multi_digit_indices(void)
{
	float w[2][120];
	int e;

	for (e = 0; e < 120; e++)
		w[0][e] = w[1][e] = 0.001f;
	w[0][12] = 0.5f, w[0][10] = 0.3f;
	w[1][119] = 0.35f, w[1][100] = 0.3f, w[1][7] = 0.2f;
	CHECK_PATH(&w[0][0], 2, 120, 0.7, "12,10-119,100,7");
}

static void test_refuses_bad_input(void)
{
	const float ok[2] = { 0.5f, 0.5f };
	float bad[2][2] = { { 0.5f, 0.5f }, { 0.5f, -0.25f } };
	struct pathway_set *ps = NULL;
	struct gw_err err;
	char *s = NULL;
	size_t len;

	CHECK_INT_EQ(pathway_string(ok, 1, 2, 0.0, &s, &len, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "\"tau\": 0 is outside (0, 1]");
	CHECK_INT_EQ(pathway_string(ok, 1, 2, 1.5, &s, &len, &err), -EINVAL);
	CHECK_INT_EQ(pathway_string(ok, 1, 2, NAN, &s, &len, &err), -EINVAL);
	CHECK_INT_EQ(pathway_string(ok, 0, 2, 0.7, &s, &len, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "0 layers");
	CHECK_INT_EQ(pathway_string(ok, 1, 0, 0.7, &s, &len, &err), -EINVAL);
	CHECK(s == NULL);
	CHECK_INT_EQ(pathway_set_new(&bad[0][0], 2, 1, 2, 0.7, &ps, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "\"gbar\": sample 1, layer 0, expert 1: weight -0.25 is not a finite");
	bad[1][1] = NAN;
	CHECK_INT_EQ(pathway_set_new(&bad[0][0], 1, 2, 2, 0.7, &ps, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "sample 0, layer 1, expert 1: weight nan");
	CHECK(ps == NULL);
}

/* ---- sets and distance ----------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static double rnd01(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* Random routing rows: skewed positive weights normalised to 1. */
static float *random_gbar(int n, int L, int E)
{
	float *g = malloc((size_t)n * L * E * sizeof(float));
	int i, e;

	CHECK(g);
	for (i = 0; i < n * L; i++) {
		double sum = 0;

		for (e = 0; e < E; e++) {
			double u = rnd01();

			g[i * E + e] = (float)(u * u * u * u);
			sum += g[i * E + e];
		}
		for (e = 0; e < E; e++)
			g[i * E + e] = (float)(g[i * E + e] / sum);
	}
	return g;
}

static uint64_t dp_distance(const void *a, size_t m, const void *b, size_t n)
{
	size_t *prev = malloc((n + 1) * sizeof(size_t)), *cur = malloc((n + 1) * sizeof(size_t));
	size_t d;

	CHECK(prev && cur);
	d = lev_dp(a, m, b, n, prev, cur);
	free(prev);
	free(cur);
	return d;
}

/* The set's strings equal pathway_string's, and its layer parts are the
 * '-'-separated fields of the string. */
static void test_set_strings_and_layers(void)
{
	const int n = 12, L = 5, E = 24;
	float *g = random_gbar(n, L, E);
	struct pathway_set *ps = NULL;
	int i, l;

	CHECK_INT_EQ(pathway_set_new(g, n, L, E, 0.7, &ps, NULL), 0);
	CHECK_INT_EQ(pathway_set_samples(ps), n);
	CHECK_INT_EQ(pathway_set_layers(ps), L);
	for (i = 0; i < n; i++) {
		char *want = path_of(g + (size_t)i * L * E, L, E, 0.7);
		size_t len;
		const char *got = pathway_set_str(ps, i, &len), *field = want;

		CHECK_STR_EQ(got, want);
		CHECK_INT_EQ(len, strlen(want));
		for (l = 0; l < L; l++) {
			const char *dash = strchr(field, '-');
			size_t flen = dash ? (size_t)(dash - field) : strlen(field), pl;
			const char *part = pathway_set_layer(ps, i, l, &pl);

			CHECK_INT_EQ(pl, flen);
			CHECK(memcmp(part, field, flen) == 0);
			field = dash ? dash + 1 : field + flen;
		}
		free(want);
	}
	pathway_set_free(ps);
	free(g);
}

/* pathway_distance and its per-layer means equal the DP's over all pairs,
 * for all samples and for a subset. */
static void test_distance_matches_dp(void)
{
	const int n = 40, L = 4, E = 30;
	const int subset[5] = { 3, 17, 0, 39, 22 };
	float *g = random_gbar(n, L, E);
	struct pathway_set *ps = NULL;
	struct lev_mean all, layers[4], sub, sublayers[4];
	uint64_t total = 0, ltotal[4] = { 0 }, stotal = 0;
	int i, j, l;

	CHECK_INT_EQ(pathway_set_new(g, n, L, E, 0.7, &ps, NULL), 0);
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++) {
			size_t a, b;
			const char *x = pathway_set_str(ps, i, &a), *y = pathway_set_str(ps, j, &b);

			total += dp_distance(x, a, y, b);
			for (l = 0; l < L; l++) {
				x = pathway_set_layer(ps, i, l, &a);
				y = pathway_set_layer(ps, j, l, &b);
				ltotal[l] += dp_distance(x, a, y, b);
			}
		}
	for (i = 0; i < 5; i++)
		for (j = i + 1; j < 5; j++) {
			size_t a, b;
			const char *x = pathway_set_str(ps, subset[i], &a);
			const char *y = pathway_set_str(ps, subset[j], &b);

			stotal += dp_distance(x, a, y, b);
		}
	CHECK_INT_EQ(pathway_distance(ps, NULL, n, NULL, &all, layers, NULL), 0);
	CHECK(!all.sampled);
	CHECK_INT_EQ(all.n_pairs, n * (n - 1) / 2);
	CHECK_INT_EQ(all.total, total);
	CHECK_NEAR(all.mean, (double)total / (n * (n - 1) / 2), 1e-12);
	for (l = 0; l < L; l++) {
		CHECK_INT_EQ(layers[l].total, ltotal[l]);
		CHECK_INT_EQ(layers[l].n_pairs, n * (n - 1) / 2);
	}
	CHECK_INT_EQ(pathway_distance(ps, subset, 5, NULL, &sub, sublayers, NULL), 0);
	CHECK_INT_EQ(sub.n_pairs, 10);
	CHECK_INT_EQ(sub.total, stotal);
	pathway_set_free(ps);
	free(g);
}

static void test_distance_sampled_and_errors(void)
{
	const int n = 200, L = 3, E = 16;
	float *g = random_gbar(n, L, E);
	struct pathway_set *ps = NULL;
	struct lev_mean exact, s, el[3], sl[3];
	struct lev_pair_opts o = { .budget = 5000 };
	const int badidx[2] = { 0, 200 };
	struct gw_err err;
	int l;

	CHECK_INT_EQ(pathway_set_new(g, n, L, E, 0.7, &ps, NULL), 0);
	CHECK_INT_EQ(pathway_distance(ps, NULL, n, NULL, &exact, el, NULL), 0);
	CHECK_INT_EQ(pathway_distance(ps, NULL, n, &o, &s, sl, NULL), 0);
	CHECK(!exact.sampled && s.sampled);
	CHECK_INT_EQ(s.n_pairs, 5000);
	CHECK(fabs(s.mean - exact.mean) <= 3 * s.std_error);
	for (l = 0; l < L; l++) {
		CHECK(sl[l].sampled);
		CHECK_INT_EQ(sl[l].n_pairs, 5000);
		CHECK(fabs(sl[l].mean - el[l].mean) <= 3 * sl[l].std_error);
	}
	CHECK_INT_EQ(pathway_distance(ps, badidx, 2, NULL, &s, NULL, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "\"samples\": index 200 is outside 0 .. 199");
	CHECK_INT_EQ(pathway_distance(ps, NULL, 5, NULL, &s, NULL, &err), -EINVAL);
	pathway_set_free(ps);
	free(g);
}

static const struct tap_test tests[] = {
	{ "spec_example", test_spec_example },
	{ "all_equal_weights", test_all_equal_weights },
	{ "prefix_hitting_tau_exactly", test_prefix_hitting_tau_exactly },
	{ "tau_one", test_tau_one },
	{ "single_expert_and_zero_rows", test_single_expert_and_zero_rows },
	{ "ties_to_lower_index", test_ties_to_lower_index },
	{ "multi_digit_indices", test_multi_digit_indices },
	{ "refuses_bad_input", test_refuses_bad_input },
	{ "set_strings_and_layers", test_set_strings_and_layers },
	{ "distance_matches_dp", test_distance_matches_dp },
	{ "distance_sampled_and_errors", test_distance_sampled_and_errors },
	{ NULL, NULL },
};
TAP_MAIN(tests)
