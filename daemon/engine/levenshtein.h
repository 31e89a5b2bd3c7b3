/*
 * levenshtein.h — exact unit-cost Levenshtein distance over bytes, and the
 * mean distance over the unordered pairs of a set of strings (SPEC §4,
 * "pathway distance").
 *
 * The distance is computed with the bit-parallel algorithm of Myers (1999)
 * in the blocked formulation of Hyyrö (2003): the pattern's column of the
 * dynamic-programming matrix is held as 64-bit words of vertical +1/-1
 * deltas, one word a block of 64 pattern bytes, and each text byte advances
 * every block with a dozen word operations, the horizontal delta at a
 * block's last row carried into the next block.  A pattern of at most 64
 * bytes uses one word.  Every block is computed for every text byte (no
 * band, no early exit), so every distance is exact; the distance comes from
 * the last column, D[m][n] = n + (+1 deltas) - (-1 deltas).
 *
 * A pattern's match masks (Peq) are built once by lev_pattern_new and then
 * reused against any number of texts; lev_distance allocates nothing (the
 * caller passes scratch).  The set driver, lev_mean_pairs, runs several
 * patterns at a time in the lanes of a vector register (8 with AVX-512F, 4
 * with AVX2, 2 otherwise), on several threads: for the exact mean, the
 * strings are sorted by length and each group of W builds its interleaved
 * masks once and meets every longer string as the text, in chunks of texts
 * so that the threads share many units of work at every size; for a
 * sample, pairs with the same text share the lanes.  The shorter string of
 * a pair is always the pattern.  Nothing is allocated per pair.
 * lev_mean_pairs_parts does the same for strings cut into parts (a
 * pathway's layers), every part's mean in one pass over the pairs.
 *
 * Thread safety: a struct lev_pattern is read-only after lev_pattern_new and
 * may be shared by threads; scratch may not.  lev_mean_pairs starts and
 * joins its own threads and touches no global state.
 */
#ifndef GW_ENGINE_LEVENSHTEIN_H
#define GW_ENGINE_LEVENSHTEIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

/* Longest string accepted anywhere here (bytes).  Distances and their
 * squares then fit comfortably in the 64-bit and 128-bit sums used. */
#define LEV_MAX_LEN ((size_t)1 << 20)
/* Most strings in one set, and most pairs in one sample. */
#define LEV_MAX_STRINGS (1 << 24)
#define LEV_MAX_BUDGET ((uint64_t)1 << 32)
#define LEV_MAX_THREADS 256
/* Most parts of a string for lev_mean_pairs_parts (as PATHWAY_MAX_LAYERS). */
#define LEV_MAX_PARTS 4096

#define LEV_DEFAULT_BUDGET ((uint64_t)2000000)
#define LEV_DEFAULT_SEED ((uint64_t)0x67726f6b77617463ULL)

struct lev_pattern;

/* Build the match masks of pattern s[0..len) (len <= LEV_MAX_LEN; s may be
 * NULL when len is 0).  The bytes are copied; the caller keeps s.  Aborts on
 * out-of-memory. */
struct lev_pattern *lev_pattern_new(const uint8_t *s, size_t len);
void lev_pattern_free(struct lev_pattern *p); /* accepts NULL */
size_t lev_pattern_len(const struct lev_pattern *p);

/* 64-bit words of scratch lev_distance needs for pattern p (at least 1). */
size_t lev_scratch_words(const struct lev_pattern *p);

/* The Levenshtein distance between pattern p and text t[0..n) (t may be NULL
 * when n is 0), exact.  scratch holds lev_scratch_words(p) words; nothing is
 * allocated.  Cost is n * ceil(m / 64) block steps, so the faster choice is
 * the longer string as the text: lev_distance2 makes that choice. */
uint64_t lev_distance(const struct lev_pattern *p, const uint8_t *t, size_t n,
		      uint64_t *scratch);

/* Distance between two prepared strings, using the shorter one (a on equal
 * length) as the pattern and the other's stored bytes as the text.  scratch holds
 * max(lev_scratch_words(a), lev_scratch_words(b)) words. */
uint64_t lev_distance2(const struct lev_pattern *a, const struct lev_pattern *b,
		       uint64_t *scratch);

/* Convenience for tests and one-off use: builds a pattern and allocates. */
uint64_t lev_distance_bytes(const uint8_t *a, size_t m, const uint8_t *b, size_t n);

/* Options of the pair driver.  Zero-initialised means the defaults: */
struct lev_pair_opts {
	uint64_t budget;  /* most pairs computed; 0 = LEV_DEFAULT_BUDGET */
	uint64_t seed;    /* sampling seed; 0 = LEV_DEFAULT_SEED */
	int threads;      /* <= 0: online CPUs; capped at LEV_MAX_THREADS */
	int kernel;       /* LEV_KERNEL_*: 0 = fastest this CPU has; the
			   * others exist so tests and benchmarks can compare
			   * them (one the CPU lacks falls back to auto) */
	bool jackknife;   /* also the jackknife standard error (below) */
};

enum {
	LEV_KERNEL_AUTO = 0,
	LEV_KERNEL_SCALAR,   /* one pair at a time, 64-bit words */
	LEV_KERNEL_LANES2,   /* two patterns a step (portable vectors) */
	LEV_KERNEL_LANES4,   /* four (x86-64 AVX2) */
	LEV_KERNEL_LANES8,   /* eight (x86-64 AVX-512F) */
};

/*
 * The mean over unordered pairs {i, j}, i != j, of the distance between
 * strings i and j.
 *
 * Exact when the set has at most `budget` pairs: every pair once, and
 * `total` is the exact sum.  Otherwise `budget` pairs are drawn uniformly
 * WITH replacement (independent draws, so the textbook standard error
 * applies): pair k (k = 0 .. budget-1) uses its own splitmix64 stream whose
 * state starts at mix64(seed ^ (k * 0x9E3779B97F4A7C15)), mix64 being
 * splitmix64's output function; from it i is uniform on [0, n) and j
 * uniform on [0, n-1), j incremented when j >= i.  A uniform draw on
 * [0, b) takes the next output x, rejects x < 2^64 mod b and returns
 * x mod b, so it is exactly uniform.  The same seed, n and budget give the same pairs, so
 * per-layer means (see pathway.h) are taken over the same pairs as the
 * whole-string mean.
 *
 * std_error is the standard error of the sampled mean, sqrt(s^2 / budget)
 * with s^2 the sample variance (n - 1 denominator); it is 0 for an exact
 * mean, which has no sampling error.  With fewer than two strings there
 * are no pairs: n_pairs 0 and mean NaN.
 *
 * jackknife_se (only with opts->jackknife; NaN otherwise) is the standard
 * error of the mean over the choice of the STRINGS, by the delete-one
 * jackknife: with R_i the sum of the distances of the pairs computed that
 * involve string i and P_i their number (n - 1 for an exact mean; for a
 * sample, the draws of such pairs, repeats counted), the mean without
 * string i is D_i = (total - R_i) / (n_pairs - P_i), and
 *   jackknife_se = sqrt((n - 1) / n * sum_i (D_i - mean_j D_j)^2).
 * NaN with fewer than 3 strings (or if some D_i has no pairs left).  For
 * a sample it is the jackknife of the sampled estimator, whose own pair
 * noise std_error states.  Costs two integer arrays of n and a few
 * atomic additions per pair.
 *
 * Results do not depend on the thread count: every distance is an integer
 * and the per-thread sums are integers, added exactly.
 */
struct lev_mean {
	double mean;
	double std_error;
	double jackknife_se;
	uint64_t n_pairs;     /* pairs the mean is over (sampled: budget) */
	uint64_t total;       /* sum of the distances of those pairs */
	bool sampled;
};

/*
 * Strings are s[i][0 .. len[i]) for i < n (n <= LEV_MAX_STRINGS, each len
 * <= LEV_MAX_LEN); they are read only during the call.  opts may be NULL.
 * Errors: -EINVAL for a size over a limit (err names it).  Failure to start
 * a thread is not an error: the work is shared by the threads that started
 * and the calling thread, with the same result.
 */
int lev_mean_pairs(const uint8_t *const *s, const size_t *len, size_t n,
		   const struct lev_pair_opts *opts, struct lev_mean *ret_mean,
		   struct gw_err *err);

/*
 * The mean over pairs, part by part, of n strings of `parts` parts each:
 * part p of string i is s[i * parts + p][0 .. len[i * parts + p]).
 * ret_means[p] (parts of them) is exactly what lev_mean_pairs gives for the
 * n strings' part p, without the jackknife (jackknife_se NaN whatever
 * opts asks): the same pairs (all of them, or the same sample for every
 * part), the same totals.  When every pair is computed, the parts of a pair
 * are taken together: each lane group's masks of every part are built once
 * per unit of work and the threads are started once, not once a part
 * (a pathway's layers, ~42 bytes each at OLMoE's size, fit one 64-bit
 * word each: the work per pair and part is small, so what is paid per call
 * and per table matters).  Sampled, or with the scalar kernel, it is lev_mean_pairs
 * once a part.  Errors: as lev_mean_pairs (the string index is i * parts +
 * p), and -EINVAL for parts outside 1 .. LEV_MAX_PARTS.
 */
int lev_mean_pairs_parts(const uint8_t *const *s, const size_t *len, size_t n, size_t parts,
			 const struct lev_pair_opts *opts, struct lev_mean *ret_means,
			 struct gw_err *err);

#endif
