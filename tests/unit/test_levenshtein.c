/*
 * test_levenshtein.c — the bit-parallel distance and the pair driver against
 * a plain O(nm) dynamic program written here, on random strings over small
 * and full alphabets and at the block edges (63, 64, 65, 127, 128, 129 and
 * 2,000 bytes); the sampling scheme against its documented definition,
 * re-implemented here; and independence from the thread count and kernel.
 */
#include <errno.h>
#include <stdlib.h>

#include "../tap.h"
#include "../lev_dp.h"
#include "engine/levenshtein.h"

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_state = 0x1234567887654321ULL;

static uint64_t rnd(void)
{
	/* xorshift64*: independent of the code under test */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static size_t rnd_below(size_t n)
{
	return (size_t)(rnd() % n);
}

static const char PATHWAY_ALPHABET[] = "0123456789,-";

/* Fill s with len bytes over an alphabet: 0 = pathway, 1 = "ab",
 * 2 = all 256 byte values. */
static void rnd_string(uint8_t *s, size_t len, int alphabet)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (alphabet == 0)
			s[i] = (uint8_t)PATHWAY_ALPHABET[rnd_below(12)];
		else if (alphabet == 1)
			s[i] = (uint8_t)('a' + rnd_below(2));
		else
			s[i] = (uint8_t)rnd_below(256);
	}
}

/* Mutate a copy so pairs are also close, not only unrelated. */
static size_t rnd_mutate(uint8_t *dst, const uint8_t *src, size_t len, size_t cap, int alphabet)
{
	size_t i, out = 0;

	for (i = 0; i < len && out < cap; i++) {
		int op = (int)rnd_below(10);

		if (op == 0)
			continue;  /* delete */
		if (op == 1) {
			rnd_string(dst + out++, 1, alphabet);  /* substitute */
			continue;
		}
		if (op == 2 && out + 1 < cap)
			rnd_string(dst + out++, 1, alphabet);  /* insert */
		dst[out++] = src[i];
	}
	return out;
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

/* Compare both orientations of the bit-parallel distance with the DP. */
static void check_pair(const uint8_t *a, size_t m, const uint8_t *b, size_t n)
{
	struct lev_pattern *pa = lev_pattern_new(a, m), *pb = lev_pattern_new(b, n);
	uint64_t scratch[2 * 40];
	uint64_t want = dp_distance(a, m, b, n);

	CHECK(lev_scratch_words(pa) <= 80 && lev_scratch_words(pb) <= 80);
	/* pattern a, text b and the other way round: symmetric */
	if (lev_distance(pa, b, n, scratch) != want || lev_distance(pb, a, m, scratch) != want)
		tap_fail(__FILE__, __LINE__, "lengths %zu, %zu: got %llu and %llu, DP %llu", m, n,
			 (unsigned long long)lev_distance(pa, b, n, scratch),
			 (unsigned long long)lev_distance(pb, a, m, scratch),
			 (unsigned long long)want);
	CHECK_INT_EQ(lev_distance2(pa, pb, scratch), want);
	CHECK_INT_EQ(lev_distance(pa, a, m, scratch), 0);
	lev_pattern_free(pa);
	lev_pattern_free(pb);
}

/* ---- the distance -------------------------------------------------------- */

/* 100,000 random pairs of 0..140 bytes (one and three blocks), a third
 * near-copies, over the three alphabets. */
static void test_random_pairs_match_dp(void)
{
	uint8_t a[160], b[160];
	int k;

	for (k = 0; k < 100000; k++) {
		int alphabet = k % 3;
		size_t m = rnd_below(141), n;

		rnd_string(a, m, alphabet);
		if (k % 3 == 1)
			n = rnd_mutate(b, a, m, sizeof(b), alphabet);
		else {
			n = rnd_below(141);
			rnd_string(b, n, alphabet);
		}
		check_pair(a, m, b, n);
	}
}

/* Every pair of the block-edge lengths, several times over each alphabet. */
static void test_block_edges_match_dp(void)
{
	static const size_t lens[] = { 0, 1, 2, 63, 64, 65, 127, 128, 129, 191, 192, 193 };
	size_t nl = sizeof(lens) / sizeof(lens[0]), x, y;
	uint8_t a[200], b[200];
	int rep, alphabet;

	for (rep = 0; rep < 20; rep++)
		for (alphabet = 0; alphabet < 3; alphabet++)
			for (x = 0; x < nl; x++)
				for (y = 0; y < nl; y++) {
					rnd_string(a, lens[x], alphabet);
					if (rep % 2 && lens[x] == lens[y]) {
						/* one substitution: distance 0 or 1 */
						memcpy(b, a, lens[y]);
						if (lens[y])
							rnd_string(b + rnd_below(lens[y]), 1, alphabet);
					} else
						rnd_string(b, lens[y], alphabet);
					check_pair(a, lens[x], b, lens[y]);
				}
}

/* 2,000 bytes (32 blocks) against long and short strings. */
static void test_long_strings_match_dp(void)
{
	static const size_t other[] = { 2000, 1999, 2048, 1000, 64, 65, 0, 1 };
	uint8_t *a = malloc(2100), *b = malloc(2100);
	int k;

	CHECK(a && b);
	for (k = 0; k < 24; k++) {
		int alphabet = k % 3;
		size_t n = other[k % 8];

		rnd_string(a, 2000, alphabet);
		if (k % 4 == 3)
			n = rnd_mutate(b, a, 2000, 2100, alphabet);
		else
			rnd_string(b, n, alphabet);
		check_pair(a, 2000, b, n);
	}
	free(a);
	free(b);
}

/* Hand-computed values, so the DP itself is checked too. */
static void test_known_values(void)
{
	CHECK_INT_EQ(lev_distance_bytes((const uint8_t *)"kitten", 6, (const uint8_t *)"sitting", 7), 3);
	CHECK_INT_EQ(lev_distance_bytes((const uint8_t *)"", 0, (const uint8_t *)"abc", 3), 3);
	CHECK_INT_EQ(lev_distance_bytes((const uint8_t *)"abc", 3, NULL, 0), 3);
	CHECK_INT_EQ(lev_distance_bytes(NULL, 0, NULL, 0), 0);
	CHECK_INT_EQ(lev_distance_bytes((const uint8_t *)"3,1,5-12,0", 10,
					(const uint8_t *)"3,1-12,0,9", 10), 4);
	CHECK_INT_EQ(dp_distance((const uint8_t *)"kitten", 6, (const uint8_t *)"sitting", 7), 3);
	CHECK_INT_EQ(dp_distance((const uint8_t *)"3,1,5-12,0", 10,
				 (const uint8_t *)"3,1-12,0,9", 10), 4);
}

/* ---- the pair driver ----------------------------------------------------- */

struct set {
	size_t n;
	uint8_t **s;
	size_t *len;
};

static struct set make_set(size_t n, size_t maxlen, int alphabet)
{
	struct set st = { n, calloc(n, sizeof(uint8_t *)), calloc(n, sizeof(size_t)) };
	size_t i;

	CHECK(st.s && st.len);
	for (i = 0; i < n; i++) {
		st.s[i] = malloc(maxlen + 1);
		CHECK(st.s[i]);
		if (i > 0 && i % 4 == 0)   /* some close relatives */
			st.len[i] = rnd_mutate(st.s[i], st.s[i - 1], st.len[i - 1], maxlen, alphabet);
		else {
			st.len[i] = rnd_below(maxlen + 1);
			rnd_string(st.s[i], st.len[i], alphabet);
		}
	}
	return st;
}

static void free_set(struct set *st)
{
	size_t i;

	for (i = 0; i < st->n; i++)
		free(st->s[i]);
	free(st->s);
	free(st->len);
}

static struct lev_mean mean_of(const struct set *st, uint64_t budget, int threads, int kernel)
{
	struct lev_pair_opts o = { .budget = budget, .threads = threads, .kernel = kernel };
	struct lev_mean mean;
	struct gw_err err = { "" };

	if (lev_mean_pairs((const uint8_t *const *)st->s, st->len, st->n, &o, &mean, &err) != 0)
		tap_fail(__FILE__, __LINE__, "lev_mean_pairs: %s", err.msg);
	return mean;
}

/* Exact mean over every pair equals the DP's, for every kernel and thread
 * count (strings of 0..300 bytes: up to five blocks, lanes of unequal
 * length, a last group that is not full). */
static void test_exact_mean_matches_dp(void)
{
	struct set st = make_set(67, 300, 0);
	uint64_t total = 0;
	size_t i, j;
	int kernel, threads;

	st.len[5] = 0;   /* an empty string among them */
	for (i = 0; i < st.n; i++)
		for (j = i + 1; j < st.n; j++)
			total += dp_distance(st.s[i], st.len[i], st.s[j], st.len[j]);
	for (kernel = LEV_KERNEL_AUTO; kernel <= LEV_KERNEL_LANES8; kernel++)
		for (threads = 1; threads <= 3; threads++) {
			struct lev_mean m = mean_of(&st, 0, threads, kernel);

			CHECK(!m.sampled);
			CHECK_INT_EQ(m.n_pairs, 67 * 66 / 2);
			CHECK_INT_EQ(m.total, total);
			CHECK_NEAR(m.mean, (double)total / (67.0 * 66 / 2), 1e-12);
			CHECK_NEAR(m.std_error, 0, 0);
		}
	free_set(&st);
}

/* Full byte range and single-block strings through the lane kernels. */
static void test_exact_mean_bytes_short(void)
{
	struct set st = make_set(41, 70, 2);
	uint64_t total = 0;
	size_t i, j;
	int kernel;

	for (i = 0; i < st.n; i++)
		for (j = i + 1; j < st.n; j++)
			total += dp_distance(st.s[i], st.len[i], st.s[j], st.len[j]);
	for (kernel = LEV_KERNEL_AUTO; kernel <= LEV_KERNEL_LANES8; kernel++)
		CHECK_INT_EQ(mean_of(&st, 0, 2, kernel).total, total);
	free_set(&st);
}

/* The documented sampling scheme, written again from the header. */
static uint64_t doc_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static uint64_t doc_uniform(uint64_t *st, uint64_t bound)
{
	for (;;) {
		uint64_t x;

		*st += 0x9E3779B97F4A7C15ULL;
		x = doc_mix(*st);
		if (x >= (0 - bound) % bound)
			return x % bound;
	}
}

static void test_sampled_pairs_follow_documented_scheme(void)
{
	/* 4005 pairs > budget 1000; strings up to 150 bytes (three blocks) */
	struct set st = make_set(90, 150, 0);
	struct lev_mean m = mean_of(&st, 1000, 2, 0);
	uint64_t k, total = 0, seed = LEV_DEFAULT_SEED;
	double sum = 0, sq = 0, var;
	int kernel;

	CHECK(m.sampled);
	CHECK_INT_EQ(m.n_pairs, 1000);
	for (k = 0; k < 1000; k++) {
		uint64_t s = doc_mix(seed ^ (k * 0x9E3779B97F4A7C15ULL));
		uint64_t i = doc_uniform(&s, st.n), j = doc_uniform(&s, st.n - 1);
		uint64_t d;

		if (j >= i)
			j++;
		d = dp_distance(st.s[i], st.len[i], st.s[j], st.len[j]);
		total += d;
		sum += (double)d;
		sq += (double)d * (double)d;
	}
	CHECK_INT_EQ(m.total, total);
	var = (sq - sum * sum / 1000) / 999;
	CHECK_NEAR(m.std_error, sqrt(var / 1000), 1e-9);
	/* each string is the text of ~11 pairs: lanes are shared */
	for (kernel = LEV_KERNEL_SCALAR; kernel <= LEV_KERNEL_LANES8; kernel++) {
		struct lev_mean mk = mean_of(&st, 1000, 1, kernel);

		CHECK_INT_EQ(mk.total, total);
		CHECK(mk.std_error == m.std_error);
	}
	free_set(&st);
}

/* The sampled mean lies within three standard errors of the exact mean,
 * and does not depend on the thread count. */
static void test_sampled_mean_within_three_se(void)
{
	struct set st = make_set(400, 120, 0);   /* 79,800 pairs */
	struct lev_mean exact = mean_of(&st, 100000, 2, 0);
	struct lev_mean s1 = mean_of(&st, 20000, 1, 0);
	struct lev_mean s2 = mean_of(&st, 20000, 2, 0);
	struct lev_mean other_seed;
	struct lev_pair_opts o = { .budget = 20000, .seed = 42, .threads = 2 };

	CHECK(!exact.sampled);
	CHECK_INT_EQ(exact.n_pairs, 79800);
	CHECK(s1.sampled);
	CHECK(s1.std_error > 0);
	tap_note("exact %.4f sampled %.4f se %.4f", exact.mean, s1.mean, s1.std_error);
	CHECK(fabs(s1.mean - exact.mean) <= 3 * s1.std_error);
	CHECK_INT_EQ(s1.total, s2.total);
	CHECK(s1.mean == s2.mean && s1.std_error == s2.std_error);
	CHECK_INT_EQ(lev_mean_pairs((const uint8_t *const *)st.s, st.len, st.n, &o, &other_seed, NULL), 0);
	CHECK(other_seed.total != s1.total);   /* the seed is used */
	CHECK(fabs(other_seed.mean - exact.mean) <= 3 * other_seed.std_error);
	free_set(&st);
}

/* The jackknife written plainly from its definition: for each string i,
 * the mean distance over the pairs that do not involve it, recomputed
 * from scratch; then sqrt((n-1)/n * sum (D_i - mean D)^2).  Pairs are the
 * (i, j) of pi/pj (every unordered pair once, or the draws of a sample). */
static double direct_jackknife(const struct set *st, const size_t *pi, const size_t *pj,
			       size_t npairs)
{
	size_t n = st->n, i, k;
	double *d = calloc(n, sizeof(double)), mean = 0, ss = 0;

	CHECK(d);
	for (i = 0; i < n; i++) {
		double sum = 0;
		size_t cnt = 0;

		for (k = 0; k < npairs; k++) {
			if (pi[k] == i || pj[k] == i)
				continue;
			sum += (double)dp_distance(st->s[pi[k]], st->len[pi[k]], st->s[pj[k]],
						   st->len[pj[k]]);
			cnt++;
		}
		CHECK(cnt > 0);
		d[i] = sum / (double)cnt;
		mean += d[i];
	}
	mean /= (double)n;
	for (i = 0; i < n; i++)
		ss += (d[i] - mean) * (d[i] - mean);
	free(d);
	return sqrt(ss * (double)(n - 1) / (double)n);
}

static struct lev_mean jack_of(const struct set *st, uint64_t budget, int threads, int kernel)
{
	struct lev_pair_opts o = { .budget = budget, .threads = threads, .kernel = kernel,
				   .jackknife = true };
	struct lev_mean mean;
	struct gw_err err = { "" };

	if (lev_mean_pairs((const uint8_t *const *)st->s, st->len, st->n, &o, &mean, &err) != 0)
		tap_fail(__FILE__, __LINE__, "lev_mean_pairs: %s", err.msg);
	return mean;
}

/* The exact mean's jackknife over the strings, for every kernel and
 * thread count (lanes groups of unequal length, a last group not full). */
static void test_jackknife_exact_matches_direct(void)
{
	struct set st = make_set(23, 140, 0);
	size_t pi[23 * 22 / 2], pj[23 * 22 / 2], np = 0, i, j;
	double want;
	int kernel, threads;

	for (i = 0; i < st.n; i++)
		for (j = i + 1; j < st.n; j++)
			pi[np] = i, pj[np++] = j;
	want = direct_jackknife(&st, pi, pj, np);
	tap_note("exact mean %.4f, jackknife se %.6f", mean_of(&st, 0, 1, 0).mean, want);
	CHECK(want > 0);
	for (kernel = LEV_KERNEL_AUTO; kernel <= LEV_KERNEL_LANES8; kernel++)
		for (threads = 1; threads <= 3; threads++) {
			struct lev_mean m = jack_of(&st, 0, threads, kernel);

			CHECK(!m.sampled);
			CHECK_NEAR(m.jackknife_se, want, 1e-9 * want);
		}
	/* Not asked for: NaN, and the rest unchanged. */
	CHECK(isnan(mean_of(&st, 0, 2, 0).jackknife_se));
	CHECK_INT_EQ(mean_of(&st, 0, 2, 0).total, jack_of(&st, 0, 2, 0).total);
	free_set(&st);
}

/* A sample's jackknife over the pairs it drew (the documented scheme). */
static void test_jackknife_sampled_matches_direct(void)
{
	struct set st = make_set(30, 90, 0);   /* 435 pairs > budget 300 */
	size_t pi[300], pj[300];
	uint64_t k, seed = LEV_DEFAULT_SEED;
	double want;
	int kernel;

	for (k = 0; k < 300; k++) {
		uint64_t s = doc_mix(seed ^ (k * 0x9E3779B97F4A7C15ULL));
		uint64_t i = doc_uniform(&s, st.n), j = doc_uniform(&s, st.n - 1);

		if (j >= i)
			j++;
		pi[k] = (size_t)i, pj[k] = (size_t)j;
	}
	want = direct_jackknife(&st, pi, pj, 300);
	for (kernel = LEV_KERNEL_AUTO; kernel <= LEV_KERNEL_LANES8; kernel++) {
		struct lev_mean m = jack_of(&st, 300, 2, kernel);

		CHECK(m.sampled);
		CHECK_NEAR(m.jackknife_se, want, 1e-9 * want);
	}
	free_set(&st);
}

/* Three strings "a", "ab", "abcd": distances 1, 3, 2.  Leaving out "a"
 * leaves 2, "ab" leaves 3, "abcd" leaves 1: mean 2, squares 0 + 1 + 1,
 * se = sqrt(2/3 * 2) = sqrt(4/3).  Two strings: NaN. */
static void test_jackknife_by_hand(void)
{
	const uint8_t *s[3] = { (const uint8_t *)"a", (const uint8_t *)"ab",
				(const uint8_t *)"abcd" };
	size_t len[3] = { 1, 2, 4 };
	struct lev_pair_opts o = { .jackknife = true };
	struct lev_mean m;

	CHECK_INT_EQ(lev_mean_pairs(s, len, 3, &o, &m, NULL), 0);
	CHECK_NEAR(m.mean, 2, 0);
	CHECK_NEAR(m.jackknife_se, sqrt(4.0 / 3), 1e-15);
	CHECK_INT_EQ(lev_mean_pairs(s, len, 2, &o, &m, NULL), 0);
	CHECK(isnan(m.jackknife_se));
}

static void test_thread_count_does_not_matter(void)
{
	struct set st = make_set(150, 400, 1);
	struct lev_mean a = mean_of(&st, 0, 1, 0), b = mean_of(&st, 0, 2, 0);
	struct lev_mean c = mean_of(&st, 0, 7, 0), d = mean_of(&st, 0, 0, 0);

	CHECK_INT_EQ(a.total, b.total);
	CHECK_INT_EQ(a.total, c.total);
	CHECK_INT_EQ(a.total, d.total);
	CHECK(a.mean == b.mean);
	free_set(&st);
}

/*
 * The parts driver: n strings of P parts each (part lengths 0..maxlen, so
 * one block and several), every part's total equal to the DP's sum over
 * all pairs, for every kernel and thread count; and, sampled, equal to
 * lev_mean_pairs on that part's strings (the same pairs).
 */
static void check_parts(size_t n, size_t P, size_t maxlen)
{
	struct set st = make_set(n * P, maxlen, 1);
	struct lev_mean *m = calloc(P, sizeof(*m));
	uint64_t *want = calloc(P, sizeof(*want));
	struct gw_err err = { "" };
	static const int kernels[] = { LEV_KERNEL_AUTO, LEV_KERNEL_SCALAR, LEV_KERNEL_LANES2,
				       LEV_KERNEL_LANES4, LEV_KERNEL_LANES8 };

	CHECK(m && want);
	for (size_t p = 0; p < P; p++)
		for (size_t i = 0; i < n; i++)
			for (size_t j = i + 1; j < n; j++)
				want[p] += dp_distance(st.s[i * P + p], st.len[i * P + p],
						       st.s[j * P + p], st.len[j * P + p]);
	for (size_t k = 0; k < sizeof(kernels) / sizeof(kernels[0]); k++) {
		for (int threads = 1; threads <= 3; threads++) {
			struct lev_pair_opts o = { .threads = threads, .kernel = kernels[k],
						   .jackknife = true };

			if (lev_mean_pairs_parts((const uint8_t *const *)st.s, st.len, n, P, &o, m,
						 &err) != 0)
				tap_fail(__FILE__, __LINE__, "lev_mean_pairs_parts: %s", err.msg);
			for (size_t p = 0; p < P; p++) {
				CHECK_INT_EQ(m[p].total, want[p]);
				CHECK_INT_EQ(m[p].n_pairs, n * (n - 1) / 2);
				CHECK(!m[p].sampled);
				CHECK(isnan(m[p].jackknife_se));
				CHECK(m[p].mean == (double)want[p] / (double)(n * (n - 1) / 2));
			}
		}
	}
	if (n >= 3) {
		struct lev_pair_opts o = { .budget = n * (n - 1) / 4, .threads = 2 };
		const uint8_t **ps = calloc(n, sizeof(*ps));
		size_t *pl = calloc(n, sizeof(*pl));

		CHECK(ps && pl);
		CHECK_INT_EQ(lev_mean_pairs_parts((const uint8_t *const *)st.s, st.len, n, P, &o, m,
						  &err), 0);
		for (size_t p = 0; p < P; p++) {
			struct lev_mean one;

			for (size_t i = 0; i < n; i++) {
				ps[i] = st.s[i * P + p];
				pl[i] = st.len[i * P + p];
			}
			CHECK_INT_EQ(lev_mean_pairs(ps, pl, n, &o, &one, &err), 0);
			CHECK(m[p].sampled && one.sampled);
			CHECK_INT_EQ(m[p].total, one.total);
			CHECK(m[p].std_error == one.std_error);
		}
		free(ps);
		free(pl);
	}
	free(m);
	free(want);
	free_set(&st);
}

static void test_parts_match_dp(void)
{
	check_parts(37, 5, 50);     /* one word a part, a last group not full */
	check_parts(29, 3, 200);    /* up to four blocks a part */
	check_parts(2, 4, 70);
	check_parts(9, 1, 90);
}

static void test_parts_degenerate(void)
{
	const uint8_t *s[4] = { (const uint8_t *)"ab", (const uint8_t *)"c",
				(const uint8_t *)"ab", NULL };
	size_t len[4] = { 2, 1, 2, 0 };
	struct lev_mean m[2];
	struct gw_err err;

	CHECK_INT_EQ(lev_mean_pairs_parts(s, len, 1, 2, NULL, m, NULL), 0);
	CHECK_INT_EQ(m[0].n_pairs, 0);
	CHECK(isnan(m[0].mean) && isnan(m[1].mean));
	CHECK_INT_EQ(lev_mean_pairs_parts(s, len, 2, 2, NULL, m, NULL), 0);
	CHECK_INT_EQ(m[0].total, 0);
	CHECK_INT_EQ(m[1].total, 1);
	CHECK_INT_EQ(lev_mean_pairs_parts(s, len, 2, 0, NULL, m, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "\"parts\"");
	len[3] = 5;
	CHECK_INT_EQ(lev_mean_pairs_parts(s, len, 2, 2, NULL, m, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "\"string 3\": NULL with length 5");
}

static void test_degenerate_sets_and_limits(void)
{
	const uint8_t *one[1] = { (const uint8_t *)"abc" };
	const uint8_t *two[2] = { (const uint8_t *)"abc", NULL };
	size_t lens[2] = { 3, 0 }, big[2] = { 3, LEV_MAX_LEN + 1 };
	struct lev_mean m;
	struct lev_pair_opts o = { .budget = LEV_MAX_BUDGET + 1 };
	struct gw_err err;

	CHECK_INT_EQ(lev_mean_pairs(one, lens, 1, NULL, &m, NULL), 0);
	CHECK_INT_EQ(m.n_pairs, 0);
	CHECK(isnan(m.mean));
	CHECK_INT_EQ(lev_mean_pairs(two, lens, 2, NULL, &m, NULL), 0);
	CHECK_INT_EQ(m.n_pairs, 1);
	CHECK_INT_EQ(m.total, 3);
	CHECK_INT_EQ(lev_mean_pairs(two, big, 2, NULL, &m, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "\"string 1\": 1048577 bytes, over the limit");
	CHECK_INT_EQ(lev_mean_pairs(two, lens, 2, &o, &m, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "\"budget\"");
}

static const struct tap_test tests[] = {
	{ "known_values", test_known_values },
	{ "random_pairs_match_dp", test_random_pairs_match_dp },
	{ "block_edges_match_dp", test_block_edges_match_dp },
	{ "long_strings_match_dp", test_long_strings_match_dp },
	{ "exact_mean_matches_dp", test_exact_mean_matches_dp },
	{ "exact_mean_bytes_short", test_exact_mean_bytes_short },
	{ "sampled_pairs_follow_documented_scheme", test_sampled_pairs_follow_documented_scheme },
	{ "sampled_mean_within_three_se", test_sampled_mean_within_three_se },
	{ "jackknife_exact_matches_direct", test_jackknife_exact_matches_direct },
	{ "jackknife_sampled_matches_direct", test_jackknife_sampled_matches_direct },
	{ "jackknife_by_hand", test_jackknife_by_hand },
	{ "thread_count_does_not_matter", test_thread_count_does_not_matter },
	{ "degenerate_sets_and_limits", test_degenerate_sets_and_limits },
	{ "parts_match_dp", test_parts_match_dp },
	{ "parts_degenerate", test_parts_degenerate },
	{ NULL, NULL },
};
TAP_MAIN(tests)
