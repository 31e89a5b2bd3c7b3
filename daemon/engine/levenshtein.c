/*
 * levenshtein.c — bit-parallel Levenshtein distance (Myers 1999, Hyyrö's
 * blocked formulation) and the mean over the pairs of a set of strings.
 *
 * The file is divided into:
 *   - patterns: match masks Peq[byte][block] built once per string, over a
 *     compact alphabet (slot 0 is "not in the pattern", an all-zero row);
 *   - the block step, scalar: one pattern against one text;
 *   - the block step in vector lanes: W patterns (W = 2, 4 or 8) against
 *     the same text at once.  Each lane is an independent 64-bit block
 *     computation (blocks are chained by the horizontal delta, not by an
 *     addition carry), so lanes need nothing but 64-bit add, shift and
 *     logic.  The W patterns' masks are interleaved in one table indexed by
 *     the group's alphabet, so one text byte loads one vector per block;
 *   - the pair driver: exact over all pairs (strings sorted by length and
 *     grouped W at a time, each group's table built once per unit and run
 *     against the longer strings, so the pattern is always the shorter
 *     string; a unit is one group against a chunk of TEXT_CHUNK texts), or
 *     a seeded sample of pairs; threads take work from an atomic counter and
 *     keep integer sums, which makes the result independent of scheduling;
 *   - the parts driver (lev_mean_pairs_parts): the same units over strings
 *     cut into parts, every part's sum in one pass;
 *   - the jackknife, when asked: each string's row sum of distances (and,
 *     sampled, its pair count) added with relaxed atomic integer additions,
 *     once per pair, then the leave-one-out means in long double.
 *
 * Why the final column: with Pv/Mv the vertical +1/-1 deltas of the last
 * column, D[m][n] = D[0][n] + sum of deltas = n + popcount(Pv) -
 * popcount(Mv) over rows 1..m.  So the inner loop keeps no score, and rows
 * past m in a partial last block (zero masks) never affect rows above them.
 */
#include "engine/levenshtein.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCKS(len) (((len) + 63) / 64)
#define LANE_ALIGN 64

struct lev_pattern {
	size_t m;            /* pattern length in bytes */
	size_t nb;           /* 64-bit blocks, ceil(m / 64) */
	size_t nslots;       /* alphabet slots, including slot 0 */
	uint16_t map[256];   /* byte -> slot; 0 for bytes not in the pattern */
	uint64_t *peq;       /* [nslots][nb] match masks; row 0 all zero */
	uint8_t *bytes;      /* copy of the pattern */
};

/* ---- patterns ---------------------------------------------------------- */

struct lev_pattern *lev_pattern_new(const uint8_t *s, size_t len)
{
	struct lev_pattern *p;
	size_t i;

	GW_BUG_ON(len > LEV_MAX_LEN);
	GW_BUG_ON(len > 0 && !s);
	p = gw_calloc(1, sizeof(*p));
	p->m = len;
	p->nb = BLOCKS(len);
	p->nslots = 1;
	for (i = 0; i < len; i++)
		if (!p->map[s[i]])
			p->map[s[i]] = (uint16_t)p->nslots++;
	p->peq = gw_calloc(p->nslots * (p->nb ? p->nb : 1), sizeof(uint64_t));
	for (i = 0; i < len; i++)
		p->peq[(size_t)p->map[s[i]] * p->nb + i / 64] |= (uint64_t)1 << (i % 64);
	p->bytes = gw_malloc(len ? len : 1);
	if (len)
		memcpy(p->bytes, s, len);
	return p;
}

void lev_pattern_free(struct lev_pattern *p)
{
	if (!p)
		return;
	free(p->peq);
	free(p->bytes);
	free(p);
}

size_t lev_pattern_len(const struct lev_pattern *p)
{
	return p->m;
}

size_t lev_scratch_words(const struct lev_pattern *p)
{
	return p->nb ? 2 * p->nb : 1;
}

/* ---- scalar block step ------------------------------------------------- */

/* The last column's deltas, summed over rows 1..m. */
static uint64_t column_distance(const uint64_t *pv, const uint64_t *mv, size_t m, size_t n)
{
	int64_t d = (int64_t)n;
	size_t b, full = m / 64;

	for (b = 0; b < full; b++)
		d += __builtin_popcountll(pv[b]) - __builtin_popcountll(mv[b]);
	if (m % 64) {
		uint64_t mask = ((uint64_t)1 << (m % 64)) - 1;

		d += __builtin_popcountll(pv[full] & mask) - __builtin_popcountll(mv[full] & mask);
	}
	GW_BUG_ON(d < 0);
	return (uint64_t)d;
}

/* Patterns of at most 64 bytes: the whole column in two registers. */
static uint64_t distance_word(const struct lev_pattern *p, const uint8_t *t, size_t n)
{
	uint64_t pv = ~(uint64_t)0, mv = 0;
	size_t j;

	for (j = 0; j < n; j++) {
		uint64_t eq = p->peq[p->map[t[j]]];
		uint64_t xv = eq | mv;
		uint64_t xh = (((eq & pv) + pv) ^ pv) | eq;
		uint64_t ph = mv | ~(xh | pv);
		uint64_t mh = pv & xh;

		/* The top row's horizontal delta is +1 (D[0][j] = j). */
		ph = (ph << 1) | 1;
		mh <<= 1;
		pv = mh | ~(xv | ph);
		mv = ph & xv;
	}
	return column_distance(&pv, &mv, p->m, n);
}

static uint64_t distance_blocks(const struct lev_pattern *p, const uint8_t *t, size_t n,
				uint64_t *scratch)
{
	uint64_t *pvs = scratch, *mvs = scratch + p->nb;
	size_t nb = p->nb, b, j;

	for (b = 0; b < nb; b++) {
		pvs[b] = ~(uint64_t)0;
		mvs[b] = 0;
	}
	for (j = 0; j < n; j++) {
		const uint64_t *eqr = p->peq + (size_t)p->map[t[j]] * nb;
		uint64_t hp = 1, hn = 0;  /* horizontal delta entering the block */

		for (b = 0; b < nb; b++) {
			uint64_t pv = pvs[b], mv = mvs[b];
			uint64_t eq = eqr[b];
			uint64_t xv = eq | mv;
			uint64_t xh, ph, mh, ohp, ohn;

			eq |= hn;
			xh = (((eq & pv) + pv) ^ pv) | eq;
			ph = mv | ~(xh | pv);
			mh = pv & xh;
			ohp = ph >> 63;
			ohn = mh >> 63;
			ph = (ph << 1) | hp;
			mh = (mh << 1) | hn;
			pvs[b] = mh | ~(xv | ph);
			mvs[b] = ph & xv;
			hp = ohp;
			hn = ohn;
		}
	}
	return column_distance(pvs, mvs, p->m, n);
}

uint64_t lev_distance(const struct lev_pattern *p, const uint8_t *t, size_t n,
		      uint64_t *scratch)
{
	GW_BUG_ON(n > 0 && !t);
	if (p->m == 0)
		return n;
	if (p->nb == 1)
		return distance_word(p, t, n);
	return distance_blocks(p, t, n, scratch);
}

uint64_t lev_distance2(const struct lev_pattern *a, const struct lev_pattern *b,
		       uint64_t *scratch)
{
	if (a->m <= b->m)
		return lev_distance(a, b->bytes, b->m, scratch);
	return lev_distance(b, a->bytes, a->m, scratch);
}

uint64_t lev_distance_bytes(const uint8_t *a, size_t m, const uint8_t *b, size_t n)
{
	struct lev_pattern *pa = lev_pattern_new(a, m);
	struct lev_pattern *pb = lev_pattern_new(b, n);
	size_t words = lev_scratch_words(pa) > lev_scratch_words(pb) ?
		lev_scratch_words(pa) : lev_scratch_words(pb);
	uint64_t *scratch = gw_malloc(words * sizeof(uint64_t));
	uint64_t d = lev_distance2(pa, pb, scratch);

	free(scratch);
	lev_pattern_free(pa);
	lev_pattern_free(pb);
	return d;
}

/* ---- the block step in vector lanes ------------------------------------- */

/*
 * lanes(table, gmap, nb, t, n, state): run W patterns against text t.
 * table is [slot][block][lane] (slot 0 all zero), gmap maps a byte to its
 * slot, state receives Pv[block][lane] then Mv[block][lane] (2 * nb * W
 * words, LANE_ALIGN-aligned).  The same step as distance_blocks, lane-wise.
 * GCC's and clang's vector extensions give 64-bit lanes with add, shifts and
 * logic; the function is compiled for the instruction set named in ATTR and
 * chosen at run time.
 */
typedef void (*lanes_fn)(const uint64_t *table, const uint16_t *gmap, size_t nb,
			 const uint8_t *t, size_t n, uint64_t *state);

#define LEV_LANES(NAME, W, ATTR)                                                  \
ATTR static void NAME(const uint64_t *restrict table, const uint16_t *restrict gmap, \
		      size_t nb, const uint8_t *restrict t, size_t n,                  \
		      uint64_t *restrict state)                                        \
{                                                                                 \
	typedef uint64_t V __attribute__((vector_size(8 * (W))));                 \
	V *pvs = (V *)state, *mvs = pvs + nb;                                     \
	const V *tab = (const V *)table;                                          \
	const V zero = { 0 }, one = zero + 1;                                     \
	size_t b, j;                                                              \
                                                                                  \
	if (nb == 1) {                                                            \
		V pv = ~zero, mv = zero;                                          \
		for (j = 0; j < n; j++) {                                         \
			V eq = tab[gmap[t[j]]];                                   \
			V xv = eq | mv;                                           \
			V xh = (((eq & pv) + pv) ^ pv) | eq;                      \
			V ph = mv | ~(xh | pv);                                   \
			V mh = pv & xh;                                           \
			ph = (ph << 1) | one;                                     \
			mh = mh << 1;                                             \
			pv = mh | ~(xv | ph);                                     \
			mv = ph & xv;                                             \
		}                                                                 \
		pvs[0] = pv;                                                      \
		mvs[0] = mv;                                                      \
		return;                                                           \
	}                                                                         \
	for (b = 0; b < nb; b++) {                                                \
		pvs[b] = ~zero;                                                   \
		mvs[b] = zero;                                                    \
	}                                                                         \
	for (j = 0; j < n; j++) {                                                 \
		const V *eqr = tab + (size_t)gmap[t[j]] * nb;                     \
		V hp = one, hn = zero;                                            \
		for (b = 0; b < nb; b++) {                                        \
			V pv = pvs[b], mv = mvs[b], eq = eqr[b];                  \
			V xv = eq | mv;                                           \
			V xh, ph, mh, ohp, ohn;                                   \
			eq |= hn;                                                 \
			xh = (((eq & pv) + pv) ^ pv) | eq;                        \
			ph = mv | ~(xh | pv);                                     \
			mh = pv & xh;                                             \
			ohp = ph >> 63;                                           \
			ohn = mh >> 63;                                           \
			ph = (ph << 1) | hp;                                      \
			mh = (mh << 1) | hn;                                      \
			pvs[b] = mh | ~(xv | ph);                                 \
			mvs[b] = ph & xv;                                         \
			hp = ohp;                                                 \
			hn = ohn;                                                 \
		}                                                                 \
	}                                                                         \
}

LEV_LANES(lanes2, 2, )
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LEV_X86 1
LEV_LANES(lanes4_avx2, 4, __attribute__((target("avx2"))))
LEV_LANES(lanes8_avx512, 8, __attribute__((target("avx512f"))))
#endif

/* Resolve opts->kernel to a lane width (1 = scalar) and function. */
static int pick_kernel(int want, lanes_fn *ret_fn)
{
#ifdef LEV_X86
	bool avx2, avx512;

	__builtin_cpu_init();
	avx2 = __builtin_cpu_supports("avx2");
	avx512 = __builtin_cpu_supports("avx512f");
#endif
	if (want == LEV_KERNEL_SCALAR) {
		*ret_fn = NULL;
		return 1;
	}
	if (want == LEV_KERNEL_LANES2) {
		*ret_fn = lanes2;
		return 2;
	}
#ifdef LEV_X86
	/* Eight lanes measured 2.4x four on the development machine (single
	 * core, 700-byte pathways), so auto prefers them. */
	if ((want == LEV_KERNEL_LANES8 || want == LEV_KERNEL_AUTO) && avx512) {
		*ret_fn = lanes8_avx512;
		return 8;
	}
	if ((want == LEV_KERNEL_LANES4 || want == LEV_KERNEL_AUTO ||
	     want == LEV_KERNEL_LANES8) && avx2) {
		*ret_fn = lanes4_avx2;
		return 4;
	}
#endif
	*ret_fn = lanes2;
	return 2;
}

static void *aligned_or_die(size_t bytes)
{
	void *p;

	bytes = (bytes + LANE_ALIGN - 1) / LANE_ALIGN * LANE_ALIGN;
	p = aligned_alloc(LANE_ALIGN, bytes ? bytes : LANE_ALIGN);
	if (!p)
		gw_bug(__FILE__, __LINE__, "out of memory");
	return p;
}

/* ---- pair sampling ------------------------------------------------------ */

#define GOLDEN 0x9E3779B97F4A7C15ULL

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static uint64_t splitmix64(uint64_t *state)
{
	*state += GOLDEN;
	return mix64(*state);
}

/* Exactly uniform on [0, bound): reject the 2^64 mod bound lowest draws so
 * the rest is a whole number of copies of [0, bound). */
static uint64_t uniform(uint64_t *state, uint64_t bound)
{
	uint64_t floor_ = (0 - bound) % bound;

	for (;;) {
		uint64_t x = splitmix64(state);

		if (x >= floor_)
			return x % bound;
	}
}

static void sample_pair(uint64_t seed, uint64_t k, uint64_t n, size_t *ret_i, size_t *ret_j)
{
	uint64_t st = mix64(seed ^ (k * GOLDEN));
	uint64_t i = uniform(&st, n), j = uniform(&st, n - 1);

	if (j >= i)
		j++;
	*ret_i = (size_t)i;
	*ret_j = (size_t)j;
}

/* ---- the pair driver ---------------------------------------------------- */

struct job {
	const uint8_t *const *s;
	const size_t *len;
	size_t n;
	int width;                  /* lanes; 1 = scalar */
	lanes_fn lanes;
	bool sampled;
	uint64_t seed, budget;
	const uint32_t *order;      /* strings by length, then index */
	struct lev_pattern **pats;  /* scalar and sampled modes */
	size_t units;               /* work units to hand out */
	/* Exact lanes and parts modes: unit u is lane group ugroup[u]
	 * against the texts at positions ustart[u] .. uend[u]-1. */
	uint32_t *ugroup, *ustart, *uend;
	/* Parts mode (lev_mean_pairs_parts): string i's part p is
	 * s[i * parts + p]; each worker's sums go to psum[worker][p]. */
	size_t parts;
	uint64_t *psum;
	size_t max_nb;              /* most blocks of any string */
	atomic_size_t next;
	/* For the jackknife (NULL without): per string, the sum of the
	 * distances of its pairs and (sampled) their number. */
	_Atomic uint64_t *rows, *rcount;
};

static void row_add(const struct job *job, size_t i, uint64_t d, uint64_t pairs)
{
	atomic_fetch_add_explicit(&job->rows[i], d, memory_order_relaxed);
	if (job->rcount)
		atomic_fetch_add_explicit(&job->rcount[i], pairs, memory_order_relaxed);
}

/* Sums of the distances and of their squares (128 bits). */
struct acc {
	uint64_t sum, sq_lo, sq_hi;
};

struct worker {
	struct job *job;
	pthread_t thread;
	bool started;
	struct acc acc;   /* written once, when the worker ends */
	uint64_t *psum;   /* parts mode: [parts] sums, the caller frees */
};

/* qsort order of 64-bit keys.  The exact driver's keys are length << 32 |
 * index (length <= 2^20, index < 2^24): by length, then index; the sampled
 * driver's are text << 24 | pattern. */
static int by_key(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Sampled pairs are drawn and sorted a chunk at a time; large enough that
 * a string is the text of several pairs of a chunk for sets of a few
 * thousand strings, so those pairs share lanes. */
#define SAMPLE_CHUNK 65536

/* A worker's buffers: allocated once per call (the lane table grows when a
 * group needs more, which is per group, not per pair). */
struct wbuf {
	uint64_t *table;
	size_t cap;
	uint64_t *state;   /* lanes' Pv/Mv, or scalar scratch */
	uint64_t *keys;    /* sampled: one chunk's pairs */
};

static void add_distance(struct acc *acc, uint64_t d)
{
	uint64_t sq = d * d;   /* d <= 2^20, so no overflow */

	acc->sum += d;
	acc->sq_lo += sq;
	if (acc->sq_lo < sq)
		acc->sq_hi++;
}

/* The group alphabet of nlanes patterns: gmap (byte -> slot, slot 0 for
 * bytes in none of them), *ret_nslots; returns the blocks per lane. */
static size_t lanes_map(const uint8_t *const *strs, const size_t *lens, size_t nlanes,
			uint16_t *gmap, size_t *ret_nslots)
{
	size_t k, i, nb = 0, nslots = 1;

	memset(gmap, 0, 256 * sizeof(*gmap));
	for (k = 0; k < nlanes; k++) {
		if (BLOCKS(lens[k]) > nb)
			nb = BLOCKS(lens[k]);
		for (i = 0; i < lens[k]; i++)
			if (!gmap[strs[k][i]])
				gmap[strs[k][i]] = (uint16_t)nslots++;
	}
	*ret_nslots = nslots;
	return nb ? nb : 1;   /* all lanes empty: one block of zero masks */
}

/* Interleave the masks of nlanes patterns into dst ([slot][block][lane],
 * nslots * nb * W words, slot 0 all zero). */
static void lanes_fill(const uint8_t *const *strs, const size_t *lens, size_t nlanes, size_t W,
		       const uint16_t *gmap, size_t nb, size_t nslots, uint64_t *dst)
{
	memset(dst, 0, nslots * nb * W * sizeof(uint64_t));
	for (size_t k = 0; k < nlanes; k++)
		for (size_t i = 0; i < lens[k]; i++)
			dst[((size_t)gmap[strs[k][i]] * nb + i / 64) * W + k] |=
				(uint64_t)1 << (i % 64);
}

/* wb->table with room for `words` words (its contents are lost). */
static void table_reserve(struct wbuf *wb, size_t words)
{
	if (words > wb->cap) {
		free(wb->table);
		wb->table = aligned_or_die(words * sizeof(uint64_t));
		wb->cap = words;
	}
}

/* The interleaved masks of nlanes patterns in wb->table, filling gmap;
 * returns the blocks per lane. */
static size_t lanes_table(const uint8_t *const *strs, const size_t *lens, size_t nlanes,
			  size_t W, uint16_t *gmap, struct wbuf *wb)
{
	size_t nslots, nb = lanes_map(strs, lens, nlanes, gmap, &nslots);

	table_reserve(wb, nslots * nb * W);
	lanes_fill(strs, lens, nlanes, W, gmap, nb, nslots, wb->table);
	return nb;
}

/* column_distance on lane k of the interleaved state. */
static uint64_t lane_distance(const uint64_t *state, size_t nb, size_t W, size_t k,
			      size_t m, size_t n)
{
	int64_t d = (int64_t)n;
	size_t b;

	for (b = 0; b < m / 64; b++)
		d += __builtin_popcountll(state[b * W + k]) -
		     __builtin_popcountll(state[(nb + b) * W + k]);
	if (m % 64) {
		uint64_t mask = ((uint64_t)1 << (m % 64)) - 1;

		d += __builtin_popcountll(state[b * W + k] & mask) -
		     __builtin_popcountll(state[(nb + b) * W + k] & mask);
	}
	GW_BUG_ON(d < 0);
	return (uint64_t)d;
}

/* Exact, scalar: unit u is sorted position u against every later one. */
static void run_scalar_unit(const struct job *job, struct acc *acc, size_t u, struct wbuf *wb)
{
	const struct lev_pattern *p = job->pats[job->order[u]];
	uint64_t own = 0;
	size_t t;

	for (t = u + 1; t < job->n; t++) {
		uint32_t o = job->order[t];
		uint64_t d = lev_distance(p, job->s[o], job->len[o], wb->state);

		own += d;
		if (job->rows)
			row_add(job, o, d, 0);
	}
	acc->sum += own;
	if (job->rows)
		row_add(job, job->order[u], own, 0);
}

/* Exact, lanes: unit u is the group of sorted positions g*W .. g*W+W-1
 * (g = ugroup[u]), run against the later positions ustart[u] ..
 * uend[u]-1; lane k counts for text position t only when t > g*W + k, so
 * each pair is counted once.  A group's texts are split over several
 * units so that the threads share the work evenly at every size. */
static void run_lanes_unit(const struct job *job, struct acc *acc, size_t u, struct wbuf *wb)
{
	size_t W = (size_t)job->width, first = job->ugroup[u] * W, k, t, nb;
	size_t nlanes = job->n - first < W ? job->n - first : W;
	size_t lens[8] = { 0 };
	const uint8_t *strs[8] = { 0 };
	uint16_t gmap[256];
	uint64_t own[8] = { 0 };

	for (k = 0; k < nlanes; k++) {
		strs[k] = job->s[job->order[first + k]];
		lens[k] = job->len[job->order[first + k]];
	}
	nb = lanes_table(strs, lens, nlanes, W, gmap, wb);
	for (t = job->ustart[u]; t < job->uend[u]; t++) {
		uint32_t o = job->order[t];
		uint64_t text = 0;

		job->lanes(wb->table, gmap, nb, job->s[o], job->len[o], wb->state);
		for (k = 0; k < nlanes && first + k < t; k++) {
			uint64_t d = lane_distance(wb->state, nb, W, k, lens[k], job->len[o]);

			own[k] += d;
			text += d;
		}
		acc->sum += text;
		if (job->rows)
			row_add(job, o, text, 0);
	}
	/* A lane's own pairs with the later lanes of its group were added to
	 * those lanes as texts above; add each lane's share of this unit. */
	for (k = 0; job->rows && k < nlanes; k++)
		row_add(job, job->order[first + k], own[k], 0);
}

/* Parts mode: as run_lanes_unit, over the strings in index order, for
 * every part; the lane tables of all parts are built once per unit (the
 * masks of each sample's part, interleaved for its group), gmaps [P][256],
 * nbs and toff [P] are the worker's. */
static void run_parts_unit(const struct job *job, uint64_t *psum, size_t u, struct wbuf *wb,
			   uint16_t *gmaps, size_t *nbs, size_t *toff)
{
	size_t W = (size_t)job->width, P = job->parts, first = job->ugroup[u] * W, k, t, p;
	size_t nlanes = job->n - first < W ? job->n - first : W;
	size_t lens[8] = { 0 }, nslots, words = 0;
	const uint8_t *strs[8] = { 0 };

	for (p = 0; p < P; p++) {
		for (k = 0; k < nlanes; k++) {
			strs[k] = job->s[(first + k) * P + p];
			lens[k] = job->len[(first + k) * P + p];
		}
		nbs[p] = lanes_map(strs, lens, nlanes, gmaps + p * 256, &nslots);
		toff[p] = words;
		/* each part's table starts on a vector boundary (W words) */
		words += nslots * nbs[p] * W;
	}
	table_reserve(wb, words);
	for (p = 0; p < P; p++) {
		for (k = 0; k < nlanes; k++) {
			strs[k] = job->s[(first + k) * P + p];
			lens[k] = job->len[(first + k) * P + p];
		}
		nslots = ((p + 1 < P ? toff[p + 1] : words) - toff[p]) / (nbs[p] * W);
		lanes_fill(strs, lens, nlanes, W, gmaps + p * 256, nbs[p], nslots,
			   wb->table + toff[p]);
	}
	for (t = job->ustart[u]; t < job->uend[u]; t++) {
		for (p = 0; p < P; p++) {
			const uint8_t *ts = job->s[t * P + p];
			size_t tl = job->len[t * P + p];
			uint64_t sum = 0;

			job->lanes(wb->table + toff[p], gmaps + p * 256, nbs[p], ts, tl, wb->state);
			for (k = 0; k < nlanes && first + k < t; k++)
				sum += lane_distance(wb->state, nbs[p], W, k,
						     job->len[(first + k) * P + p], tl);
			psum[p] += sum;
		}
	}
}

/* Sampled: unit u is pairs u*SAMPLE_CHUNK .. +SAMPLE_CHUNK-1.  Each pair is
 * oriented (pattern the shorter string, by length then index), the chunk
 * sorted by text, and up to W pairs with the same text share the lanes. */
static void run_sampled_unit(const struct job *job, struct acc *acc, size_t u, struct wbuf *wb)
{
	size_t W = (size_t)job->width, cnt, a, b, k;
	uint64_t first = u * (uint64_t)SAMPLE_CHUNK, end = first + SAMPLE_CHUNK;
	const uint8_t *strs[8];
	size_t lens[8];
	uint16_t gmap[256];

	if (end > job->budget)
		end = job->budget;
	cnt = (size_t)(end - first);
	for (k = 0; k < cnt; k++) {
		size_t i, j, x;

		sample_pair(job->seed, first + k, job->n, &i, &j);
		if (job->len[j] < job->len[i] || (job->len[j] == job->len[i] && j < i)) {
			x = i;
			i = j;
			j = x;
		}
		wb->keys[k] = (uint64_t)j << 24 | i;   /* n <= 2^24 */
	}
	qsort(wb->keys, cnt, sizeof(*wb->keys), by_key);
	for (a = 0; a < cnt; a = b) {
		size_t t = (size_t)(wb->keys[a] >> 24), nb;

		for (b = a + 1; b < cnt && b - a < W && (size_t)(wb->keys[b] >> 24) == t; b++)
			;
		if (b - a == 1) {
			size_t i = (size_t)(wb->keys[a] & 0xFFFFFF);
			uint64_t d = lev_distance(job->pats[i], job->s[t], job->len[t], wb->state);

			add_distance(acc, d);
			if (job->rows) {
				row_add(job, i, d, 1);
				row_add(job, t, d, 1);
			}
			continue;
		}
		for (k = 0; k < b - a; k++) {
			size_t i = (size_t)(wb->keys[a + k] & 0xFFFFFF);

			strs[k] = job->s[i];
			lens[k] = job->len[i];
		}
		nb = lanes_table(strs, lens, b - a, W, gmap, wb);
		job->lanes(wb->table, gmap, nb, job->s[t], job->len[t], wb->state);
		for (k = 0; k < b - a; k++) {
			uint64_t d = lane_distance(wb->state, nb, W, k, lens[k], job->len[t]);

			add_distance(acc, d);
			if (job->rows) {
				row_add(job, (size_t)(wb->keys[a + k] & 0xFFFFFF), d, 1);
				row_add(job, t, d, 1);
			}
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct job *job = w->job;
	size_t W = (size_t)job->width, P = job->parts, u;
	struct wbuf wb = { 0 };
	/* on this thread's stack, so the workers share no cache line */
	struct acc acc = { 0, 0, 0 };
	uint64_t *psum = NULL;
	uint16_t *gmaps = NULL;
	size_t *nbs = NULL, *toff = NULL;

	wb.state = aligned_or_die(2 * job->max_nb * W * sizeof(uint64_t) + 64);
	if (job->sampled)
		wb.keys = gw_malloc(SAMPLE_CHUNK * sizeof(*wb.keys));
	if (P) {
		psum = gw_calloc(P, sizeof(*psum));
		gmaps = gw_malloc(P * 256 * sizeof(*gmaps));
		nbs = gw_malloc(P * sizeof(*nbs));
		toff = gw_malloc(P * sizeof(*toff));
	}
	for (;;) {
		u = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
		if (u >= job->units)
			break;
		if (P)
			run_parts_unit(job, psum, u, &wb, gmaps, nbs, toff);
		else if (job->sampled)
			run_sampled_unit(job, &acc, u, &wb);
		else if (W == 1)
			run_scalar_unit(job, &acc, u, &wb);
		else
			run_lanes_unit(job, &acc, u, &wb);
	}
	w->acc = acc;
	w->psum = psum;
	free(gmaps);
	free(nbs);
	free(toff);
	free(wb.table);
	free(wb.state);
	free(wb.keys);
	return NULL;
}

/* lev_mean's jackknife_se from the row sums (levenshtein.h), in long
 * double: the leave-one-out means differ in their last digits. */
static double jackknife(const struct job *job, uint64_t total, uint64_t n_pairs)
{
	size_t n = job->n;
	long double *d = gw_malloc(n * sizeof(*d)), mean = 0, ss = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t pi = job->rcount ? atomic_load(&job->rcount[i]) : (uint64_t)(n - 1);

		if (pi >= n_pairs) {
			free(d);
			return NAN;
		}
		d[i] = (long double)(total - atomic_load(&job->rows[i])) / (long double)(n_pairs - pi);
		mean += d[i];
	}
	mean /= (long double)n;
	for (size_t i = 0; i < n; i++)
		ss += (d[i] - mean) * (d[i] - mean);
	free(d);
	return (double)sqrtl(ss * (long double)(n - 1) / (long double)n);
}

static int online_cpus(void)
{
	long c = sysconf(_SC_NPROCESSORS_ONLN);

	return c < 1 ? 1 : c > LEV_MAX_THREADS ? LEV_MAX_THREADS : (int)c;
}

/* Texts a unit of the exact lanes and parts modes takes at most: a group
 * of W patterns meets its texts in chunks, so that there are many units at
 * every size (600 strings of 8 lanes: ~375 units, not 75 of falling size)
 * and the threads finish together; a chunk is large enough that building
 * the group's lane table is a small part of the unit. */
#define TEXT_CHUNK 64

/* The units of the exact lanes and parts modes: for each lane group g,
 * the later positions g*W+1 .. n-1 in chunks of TEXT_CHUNK. */
static void lane_units(struct job *job)
{
	size_t W = (size_t)job->width, groups = (job->n + W - 1) / W, g, t, u = 0, cap = 0;

	for (g = 0; g < groups; g++)
		cap += (job->n - g * W - 1 + TEXT_CHUNK - 1) / TEXT_CHUNK;
	job->ugroup = gw_malloc((cap + 1) * sizeof(*job->ugroup));
	job->ustart = gw_malloc((cap + 1) * sizeof(*job->ustart));
	job->uend = gw_malloc((cap + 1) * sizeof(*job->uend));
	for (g = 0; g < groups; g++)
		for (t = g * W + 1; t < job->n; t += TEXT_CHUNK) {
			job->ugroup[u] = (uint32_t)g;
			job->ustart[u] = (uint32_t)t;
			job->uend[u] = (uint32_t)(t + TEXT_CHUNK < job->n ? t + TEXT_CHUNK : job->n);
			u++;
		}
	job->units = u;
}

static size_t thread_count(int threads)
{
	return (size_t)(threads > 0 ? (threads > LEV_MAX_THREADS ? LEV_MAX_THREADS : threads)
				    : online_cpus());
}

/* Run the job's units on nthreads threads (the caller's one of them) and
 * return the workers, joined: the caller sums and frees them. */
static struct worker *run_job(struct job *job, size_t nthreads)
{
	struct worker *ws;
	size_t i;

	if (nthreads > job->units)
		nthreads = job->units;
	if (nthreads == 0)
		nthreads = 1;
	ws = gw_calloc(nthreads + 1, sizeof(*ws));
	for (i = 0; i < nthreads; i++)
		ws[i].job = job;
	/* The calling thread is worker 0; a thread that fails to start leaves
	 * its share to the others. */
	for (i = 1; i < nthreads; i++)
		ws[i].started = pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) == 0;
	worker_main(&ws[0]);
	for (i = 1; i < nthreads; i++)
		if (ws[i].started)
			pthread_join(ws[i].thread, NULL);
	ws[nthreads].job = NULL;   /* the end mark */
	return ws;
}

static void job_release(struct job *job)
{
	if (job->pats)
		for (size_t i = 0; i < job->n; i++)
			lev_pattern_free(job->pats[i]);
	free(job->pats);
	free((void *)job->order);
	free(job->rows);
	free(job->rcount);
	free(job->ugroup);
	free(job->ustart);
	free(job->uend);
}

/* The options with their defaults filled in, and the limits checked over
 * n strings s/len (max_nb: the most blocks of any). */
static int check_input(const uint8_t *const *s, const size_t *len, size_t n,
		       const struct lev_pair_opts *opts, struct lev_pair_opts *ret_o,
		       size_t *ret_max_nb, struct gw_err *err)
{
	struct lev_pair_opts o = { 0 };
	size_t i, max_nb = 0;

	if (opts)
		o = *opts;
	if (o.budget == 0)
		o.budget = LEV_DEFAULT_BUDGET;
	if (o.seed == 0)
		o.seed = LEV_DEFAULT_SEED;
	if (n > LEV_MAX_STRINGS)
		return gw_errf(err, -EINVAL, "\"strings\": %zu strings, over the limit of %d",
			       n, LEV_MAX_STRINGS);
	if (o.budget > LEV_MAX_BUDGET)
		return gw_errf(err, -EINVAL, "\"budget\": %llu pairs, over the limit of %llu",
			       (unsigned long long)o.budget, (unsigned long long)LEV_MAX_BUDGET);
	for (i = 0; i < n; i++) {
		if (len[i] > LEV_MAX_LEN)
			return gw_errf(err, -EINVAL, "\"string %zu\": %zu bytes, over the limit of %zu",
				       i, len[i], LEV_MAX_LEN);
		if (len[i] > 0 && !s[i])
			return gw_errf(err, -EINVAL, "\"string %zu\": NULL with length %zu", i, len[i]);
		if (BLOCKS(len[i]) > max_nb)
			max_nb = BLOCKS(len[i]);
	}
	*ret_o = o;
	*ret_max_nb = max_nb ? max_nb : 1;
	return 0;
}

int lev_mean_pairs(const uint8_t *const *s, const size_t *len, size_t n,
		   const struct lev_pair_opts *opts, struct lev_mean *ret_mean,
		   struct gw_err *err)
{
	struct lev_pair_opts o;
	struct job job;
	struct worker *ws = NULL;
	struct lev_mean res = { 0 };
	uint64_t all_pairs, sum = 0, sq_lo = 0, sq_hi = 0;
	size_t i;
	int rc;

	memset(&job, 0, sizeof(job));
	rc = check_input(s, len, n, opts, &o, &job.max_nb, err);
	if (rc < 0)
		return rc;
	res.jackknife_se = NAN;
	all_pairs = n < 2 ? 0 : (uint64_t)n * (n - 1) / 2;
	if (all_pairs == 0) {
		res.mean = NAN;
		*ret_mean = res;
		return 0;
	}
	job.s = s;
	job.len = len;
	job.n = n;
	job.seed = o.seed;
	job.budget = o.budget;
	job.sampled = all_pairs > o.budget;
	job.width = pick_kernel(o.kernel, &job.lanes);
	atomic_init(&job.next, 0);

	if (o.jackknife && n >= 3) {
		job.rows = gw_calloc(n, sizeof(*job.rows));
		if (job.sampled)
			job.rcount = gw_calloc(n, sizeof(*job.rcount));
	}
	if (job.sampled || job.width == 1) {
		job.pats = gw_calloc(n, sizeof(*job.pats));
		for (i = 0; i < n; i++)
			job.pats[i] = lev_pattern_new(s[i], len[i]);
	}
	if (job.sampled) {
		job.units = (size_t)((o.budget + SAMPLE_CHUNK - 1) / SAMPLE_CHUNK);
	} else {
		uint32_t *order = gw_malloc(n * sizeof(*order));
		uint64_t *keys = gw_malloc(n * sizeof(*keys));

		for (i = 0; i < n; i++)
			keys[i] = (uint64_t)len[i] << 32 | i;
		qsort(keys, n, sizeof(*keys), by_key);
		for (i = 0; i < n; i++)
			order[i] = (uint32_t)keys[i];
		free(keys);
		job.order = order;
		if (job.width == 1)
			job.units = n;
		else
			lane_units(&job);
	}

	ws = run_job(&job, thread_count(o.threads));
	for (i = 0; ws[i].job; i++) {
		sum += ws[i].acc.sum;
		sq_lo += ws[i].acc.sq_lo;
		sq_hi += ws[i].acc.sq_hi + (sq_lo < ws[i].acc.sq_lo);
	}

	res.sampled = job.sampled;
	res.n_pairs = job.sampled ? o.budget : all_pairs;
	res.total = sum;
	res.mean = (double)sum / (double)res.n_pairs;
	if (job.sampled && res.n_pairs > 1) {
		long double nn = (long double)res.n_pairs;
		long double sq = (long double)sq_hi * 18446744073709551616.0L + (long double)sq_lo;
		long double var = (sq - (long double)sum * (long double)sum / nn) / (nn - 1);

		res.std_error = var > 0 ? (double)sqrtl(var / nn) : 0.0;
	}
	if (job.rows)
		res.jackknife_se = jackknife(&job, sum, res.n_pairs);
	*ret_mean = res;
	job_release(&job);
	free(ws);
	return 0;
}

int lev_mean_pairs_parts(const uint8_t *const *s, const size_t *len, size_t n, size_t parts,
			 const struct lev_pair_opts *opts, struct lev_mean *ret_means,
			 struct gw_err *err)
{
	struct lev_pair_opts o;
	struct job job;
	struct worker *ws;
	uint64_t all_pairs, *sum;
	size_t i, p;
	int rc;

	memset(&job, 0, sizeof(job));
	if (parts == 0 || parts > LEV_MAX_PARTS)
		return gw_errf(err, -EINVAL, "\"parts\": %zu, outside 1 .. %d", parts, LEV_MAX_PARTS);
	if (n > LEV_MAX_STRINGS)
		return gw_errf(err, -EINVAL, "\"strings\": %zu strings, over the limit of %d",
			       n, LEV_MAX_STRINGS);
	rc = check_input(s, len, n * parts, opts, &o, &job.max_nb, err);
	if (rc < 0)
		return rc;
	o.jackknife = false;
	all_pairs = n < 2 ? 0 : (uint64_t)n * (n - 1) / 2;
	job.width = pick_kernel(o.kernel, &job.lanes);
	if (all_pairs == 0 || all_pairs > o.budget || job.width == 1) {
		/* Sampled (the same pairs for every part), scalar, or no pairs:
		 * one part at a time. */
		const uint8_t **ps = gw_calloc(n + 1, sizeof(*ps));
		size_t *pl = gw_calloc(n + 1, sizeof(*pl));

		for (p = 0; p < parts; p++) {
			for (i = 0; i < n; i++) {
				ps[i] = s[i * parts + p];
				pl[i] = len[i * parts + p];
			}
			rc = lev_mean_pairs(ps, pl, n, &o, &ret_means[p], err);
			if (rc < 0)
				break;
		}
		free(ps);
		free(pl);
		return rc;
	}
	job.s = s;
	job.len = len;
	job.n = n;
	job.parts = parts;
	atomic_init(&job.next, 0);
	lane_units(&job);
	ws = run_job(&job, thread_count(o.threads));
	sum = gw_calloc(parts, sizeof(*sum));
	for (i = 0; ws[i].job; i++) {
		for (p = 0; p < parts; p++)
			sum[p] += ws[i].psum[p];
		free(ws[i].psum);
	}
	for (p = 0; p < parts; p++) {
		struct lev_mean m = { .n_pairs = all_pairs, .total = sum[p], .jackknife_se = NAN };

		m.mean = (double)sum[p] / (double)all_pairs;
		ret_means[p] = m;
	}
	free(sum);
	job_release(&job);
	free(ws);
	return 0;
}
