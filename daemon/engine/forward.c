/*
 * forward.c — the MoE forward pass in fp32 on the CPU (SPEC §3), following
 * the Hugging Face modeling code of OLMoE, Mixtral, Qwen2-MoE, Qwen3-MoE,
 * DeepSeek-V3 (and Kimi K2) and GLM-4.5 MoE.
 *
 * The pass is layer-major: the embeddings of every probe token (all samples
 * concatenated, T x H) are built first; then each decoder layer loads its
 * weights, runs every token through attention (per sample, causal) and the
 * feed-forward block (dense, or routed experts with every expert's tokens
 * from all samples in one product), and frees them; last the final norm and
 * the lm_head, in vocabulary slices, give each sample's loss.
 *
 * The products: a weight stored as BF16 is multiplied on AMX tiles where
 * the CPU has them (engine/amx.h: its values packed as stored, the
 * activations split into three BF16 parts, fp32 accuracy), everything
 * else by single-threaded sgemm on fp32 copies.  The threads are the
 * pass's pool (engine/pool.h), started once; the loops between products
 * run in sixteen lanes where the CPU has AVX-512 (engine/vec.h).
 *
 * The file is divided into:
 *   - bookkeeping: timing, the sgemm wrapper that counts FLOPs and splits
 *     a product of many rows over the threads, the fork-join loop for the
 *     row-wise work that is not a product, and units of work (an attention
 *     head of a sample, an expert, a slice of the vocabulary) handed to the
 *     threads one at a time, each on one core; the AMX product of a whole
 *     layer's rows;
 *   - row kernels: RMSNorm, the residual add, RoPE tables (plain or YaRN)
 *     and rotation (half-split or DeepSeek's interleaved pairs, over the
 *     whole head or GLM's rotary part);
 *   - weight loading (one tensor at a time, converted to fp32, or packed
 *     for AMX: struct wmat);
 *   - the attention blocks (grouped-query, and DeepSeek-V3's multi-head
 *     latent attention, both ending in one per-sample causal attention),
 *     the gated MLP (dense layers, experts, shared experts), the MoE block
 *     with its router records (softmax, or the DeepSeek-V3 family's sigmoid
 *     with correction bias and groups), and the head with the loss;
 *   - forward_run, which drives them.
 * Reductions whose order could change a result (gbar, the scatter-add of
 * experts, the loss) run in a fixed order (each token's expert outputs
 * added in expert order, the head's slices folded in slice order) and the
 * row loops and units split only independent rows, so two runs give the
 * same bits whatever the threads.  OpenBLAS runs one thread during the
 * pass (its idle workers spin in sched_yield between products, which on a
 * machine with as many threads as cores took a core from the engine's own
 * loops).
 */
#include "engine/forward.h"

#include <cblas.h>
#include <errno.h>
#include <stdatomic.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/amx.h"
#include "engine/model.h"
#include "engine/pool.h"
#include "engine/vec.h"
#include "engine/safetensors.h"

#define ATTN_QBLOCK 64      /* query rows per block of attention scores */
#define HEAD_SLICE 512      /* vocabulary rows of the lm_head a unit of work */
#define HEAD_ROWS 1024       /* token rows of a logits tile (HEAD_ROWS x HEAD_SLICE) */
#define PAR_MIN_ROWS 64     /* below this a row loop stays on one thread */
#define MLP_ROWS 2048       /* token rows per gated-MLP product (bounds scratch) */
#define GEMM_MIN_ROWS 64    /* rows of a product part on one thread */
#define EXPERT_OUT_FLOATS (4 * 1024 * 1024) /* expert output rows held between two scatter-adds */
#define THREADS_MAX 256
#define FWD_MMAP_THRESHOLD (32 << 20) /* malloc: blocks below this from the heap (glibc's most) */
#define FWD_TRIM_THRESHOLD (1 << 30)   /* malloc: free heap kept up to this */

/* ---- bookkeeping ---------------------------------------------------- */

/* fmaxf is a library call at -O2 (it must handle NaN); the hot loops here
 * want a compare the compiler can vectorize.  A NaN anywhere still ends up
 * in the result through the exponentials that follow. */
static inline float max_f(float a, float b)
{
	return a > b ? a : b;
}

struct fwd {
	const struct ckpt *c;
	const struct model_desc *m;
	const struct probe *p;
	const atomic_int *cancel;
	struct pool *pool;  /* the pass's threads (threads of them) */
	bool amx;           /* BF16 weights' products on AMX tiles (amx.h) */
	struct amx_a ax;    /* linear_amx's split of its input */
	struct forward_stats st;
	struct gw_err *err;
	int threads;

	int64_t T;          /* tokens over all samples */
	int64_t *off;       /* [N+1] first token of each sample */
	int max_len;        /* longest sample */
	int H, nh, nkv;     /* hidden, heads, KV heads (MLA: one per head) */
	int dq, dv;         /* q/k and v dims of a head (equal in GQA) */
	int rd;             /* rotary dims of a head */
	int qdim, kdim, vdim, qkvdim, odim; /* nh*dq, nkv*dq, nkv*dv, their sum, nh*dv */

	float *x;           /* [T, H] the residual stream */
	float *xn;          /* [T, H] the normalized stream */
	float *y;           /* [T, H] a block's output */
	float *qkv;         /* [T, qkvdim] q | k | v of every token */
	float *att;         /* [T, odim] attention output before o_proj */
	float *rope_cos, *rope_sin; /* [max_len, rd/2], times YaRN's attention factor */
};

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * C[M,N] = alpha * A[M,K] * op(B) + beta * C, row-major.  transb says B is
 * [N,K] (a weight in Hugging Face's [out, in] layout) rather than [K,N].
 * Every matrix product of the pass goes through here, so the FLOP count and
 * time in BLAS are exact.
 */
/* Time and FLOPs inside sgemm, kept per thread in the parallel units. */
struct gacc {
	double sec, flop;
};

static void gemm_acc(struct gacc *a, bool transb, int64_t M, int64_t N, int64_t K, float alpha,
		     const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
		     int64_t ldc)
{
	double t0;

	if (M == 0 || N == 0)
		return;
	t0 = now_sec();
	cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, (int)M,
		    (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
	a->sec += now_sec() - t0;
	a->flop += 2.0 * (double)M * (double)N * (double)K;
}

static void par_units(struct fwd *f, int64_t n, void (*fn)(void *, int, int64_t, struct gacc *),
		      void *ud);

/* One product split by rows of A and C into as many parts as threads. */
struct gemm_job {
	bool transb;
	int64_t M, N, K, parts;
	float alpha, beta;
	const float *A, *B;
	float *C;
	int64_t lda, ldb, ldc;
};

static void gemm_part(void *ud, int tid, int64_t u, struct gacc *acc)
{
	const struct gemm_job *j = ud;
	int64_t m0 = j->M * u / j->parts, m1 = j->M * (u + 1) / j->parts;

	(void)tid;
	gemm_acc(acc, j->transb, m1 - m0, j->N, j->K, j->alpha, j->A + m0 * j->lda, j->lda, j->B,
		 j->ldb, j->beta, j->C + m0 * j->ldc, j->ldc);
}

/*
 * Every product of the pass outside the units of work.  OpenBLAS runs one
 * thread for the whole pass (forward_run sets it): a product of many rows
 * is split by rows over the engine's threads instead, each part on one
 * core.  OpenBLAS's own threads, once woken, spin in sched_yield for a
 * while after each product, and on a machine with as many threads as cores
 * that spinning took a core from the engine's row loops and units (a fifth
 * of the pass's CPU samples were sched_yield).  A row's values do not
 * depend on the split: each C element is the same dot product in the same
 * blocked order.
 */
static void gemm(struct fwd *f, bool transb, int64_t M, int64_t N, int64_t K, float alpha,
		 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
		 int64_t ldc)
{
	struct gacc a = { 0, 0 };
	int64_t parts = M / GEMM_MIN_ROWS < f->threads ? M / GEMM_MIN_ROWS : f->threads;

	if (parts > 1) {
		struct gemm_job j = { transb, M, N, K, parts, alpha, beta, A, B, C, lda, ldb, ldc };

		par_units(f, parts, gemm_part, &j);
		return;
	}
	gemm_acc(&a, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
	f->st.gemm_sec += a.sec;
	f->st.gemm_flop += a.flop;
}

/* Y[T, N] = X[T, K] * W[N, K]^T: a linear layer without bias. */
static void linear(struct fwd *f, const float *X, int64_t T, int64_t K, const float *W, int64_t N,
		   float *Y)
{
	gemm(f, true, T, N, K, 1.0f, X, K, W, K, 0.0f, Y, N);
}

static int cancelled(const struct fwd *f)
{
	if (f->cancel && atomic_load(f->cancel))
		return gw_errf(f->err, -ECANCELED, "forward pass cancelled");
	return 0;
}

/*
 * Fork-join over rows [0, n): fn(ud, i0, i1) on contiguous chunks, one per
 * thread of the pass's pool.  Each row's result depends on that row only,
 * so the split does not change any value.
 */
typedef void (*row_fn)(void *ud, int64_t i0, int64_t i1);

struct par_job {
	row_fn fn;
	void *ud;
	int64_t n;
	int nt;
};

static void par_thread(void *arg, int tid)
{
	const struct par_job *j = arg;

	j->fn(j->ud, j->n * tid / j->nt, j->n * (tid + 1) / j->nt);
}

static void par_rows(const struct fwd *f, int64_t n, row_fn fn, void *ud)
{
	int nt = f->threads;

	if (nt > n / PAR_MIN_ROWS)
		nt = (int)(n / PAR_MIN_ROWS);
	if (nt <= 1) {
		fn(ud, 0, n);
		return;
	}
	pool_run(f->pool, nt, par_thread, &(struct par_job){ fn, ud, n, nt });
}

/*
 * Units of work [0, n) on the pool's threads, each taking the next unit
 * from a counter: fn(ud, tid, u, acc), tid < the threads used.  Many small
 * products (a sample's attention head, one expert) are faster on one core
 * each, side by side, than each spread over every core: OpenBLAS runs one
 * thread for the pass (forward_run), so each unit's sgemm runs on the
 * thread that calls it, and the work between products (softmax,
 * conversion, gather) is spread over the threads too.  A unit's results
 * depend on that unit only.  The sgemm FLOPs are added to the stats, and
 * the sgemm time as the mean over the threads of each one's time in sgemm
 * (they run at once).
 */
typedef void (*unit_fn)(void *ud, int tid, int64_t u, struct gacc *acc);

struct unit_run {
	unit_fn fn;
	void *ud;
	int64_t n;
	atomic_llong next;
	struct {
		struct gacc a;
	} __attribute__((aligned(64))) acc[THREADS_MAX]; /* a cache line each */
};

static void unit_main(void *arg, int tid)
{
	struct unit_run *run = arg;
	int64_t u;

	while ((u = atomic_fetch_add(&run->next, 1)) < run->n)
		run->fn(run->ud, tid, u, &run->acc[tid].a);
}

/* How many threads par_units uses for n units. */
static int unit_threads(const struct fwd *f, int64_t n)
{
	return n < f->threads ? (n < 1 ? 1 : (int)n) : f->threads;
}

static void par_units(struct fwd *f, int64_t n, unit_fn fn, void *ud)
{
	struct unit_run run = { .fn = fn, .ud = ud, .n = n };
	int nt = unit_threads(f, n);
	double sec = 0;

	if (n <= 0)
		return;
	pool_run(f->pool, nt, unit_main, &run);
	for (int i = 0; i < nt; i++) {
		f->st.gemm_flop += run.acc[i].a.flop;
		sec += run.acc[i].a.sec;
	}
	f->st.gemm_sec += sec / nt;
}

/*
 * Y[T, N] = X[T, K] W^T on AMX (W packed, N = w->N; row strides ldx and
 * ldy): X split into BF16 parts by the pass's threads, then the product
 * in units of AMX_ROWS rows.
 */
#define AMX_ROWS 256

struct amx_job {
	struct fwd *f;
	const float *X;
	int64_t ldx, T;
	const struct amx_w *w;
	float *Y;
	int64_t ldy;
};

static void amx_split_rows(void *ud, int64_t i0, int64_t i1)
{
	const struct amx_job *j = ud;

	amx_a_split_part(&j->f->ax, j->X, j->ldx, (int)i0, (int)i1);
}

static void amx_acc(struct gacc *acc, float *C, int64_t ldc, const struct amx_a *a, int m,
		    const struct amx_w *w, int r0);

static void amx_unit(void *ud, int tid, int64_t u, struct gacc *acc)
{
	const struct amx_job *j = ud;
	int64_t r0 = u * AMX_ROWS, m = j->T - r0 < AMX_ROWS ? j->T - r0 : AMX_ROWS;

	(void)tid;
	amx_acc(acc, j->Y + r0 * j->ldy, j->ldy, &j->f->ax, (int)m, j->w, (int)r0);
}

static void linear_amx(struct fwd *f, const float *X, int64_t ldx, int64_t T,
		       const struct amx_w *w, float *Y, int64_t ldy)
{
	struct amx_job j = { f, X, ldx, T, w, Y, ldy };

	amx_a_reserve(&f->ax, (int)T, w->K);
	par_rows(f, T, amx_split_rows, &j);
	par_units(f, (T + AMX_ROWS - 1) / AMX_ROWS, amx_unit, &j);
}

/* Pack the BF16 rows of tensors kinds[0..n) (rows[i] rows each, K
 * columns) stacked into w; false (nothing read) when one is not stored as
 * plain BF16, or AMX is off. */
static bool pack_bf16(struct fwd *f, const enum model_tensor *kinds, const int64_t *rows, int n,
		      int l, int e, int64_t K, struct amx_w *w, int *rc)
{
	char name[ST_NAME_MAX];
	int64_t total = 0;
	uint16_t *raw;
	double t0;

	*rc = 0;
	if (!f->amx)
		return false;
	for (int i = 0; i < n; i++) {
		int64_t shape[2];
		int nd = 0;

		if (model_tensor_name(f->m, kinds[i], l, e, name, sizeof(name)) < 0 ||
		    !ckpt_bf16(f->c, name) || ckpt_shape(f->c, name, shape, &nd) < 0 ||
		    shape[0] != rows[i] || shape[1] != K)
			return false;
		total += rows[i];
	}
	t0 = now_sec();
	raw = gw_malloc((size_t)total * (size_t)K * sizeof(uint16_t));
	total = 0;
	for (int i = 0; i < n; i++) {
		model_tensor_name(f->m, kinds[i], l, e, name, sizeof(name));
		if ((*rc = ckpt_read_rows_bf16(f->c, name, 0, rows[i], raw + total * K, f->err)) < 0)
			break;
		total += rows[i];
	}
	if (*rc == 0)
		amx_w_pack(w, raw, (int)total, (int)K);
	free(raw);
	f->st.load_sec += now_sec() - t0;
	f->st.load_bytes += (double)total * (double)K * sizeof(uint16_t);
	return true;
}

/* ---- row kernels ---------------------------------------------------- */

/*
 * Hugging Face's RMSNorm in fp32: x * rsqrt(mean(x^2) + eps), then times the
 * weight.  The mean is summed in double (torch sums fp32 in a tree; double
 * is at least as close to the exact value).
 */
static void rmsnorm_row(const float *x, const float *w, int n, float eps, float *out)
{
	float var = (float)(vec_sumsq(x, n) / n);

	vec_rms_apply(out, x, w, 1.0f / sqrtf(var + eps), n);
}

struct norm_job {
	const float *x;
	float *out;
	const float *w;
	int64_t ld;  /* row stride of x and out */
	int n;       /* width normed */
	int groups;  /* groups of n per row (heads for per-head norm) */
	float eps;
};

static void norm_rows(void *ud, int64_t i0, int64_t i1)
{
	const struct norm_job *j = ud;

	for (int64_t i = i0; i < i1; i++)
		for (int g = 0; g < j->groups; g++)
			rmsnorm_row(j->x + i * j->ld + (int64_t)g * j->n, j->w, j->n, j->eps,
				    j->out + i * j->ld + (int64_t)g * j->n);
}

static void rmsnorm(const struct fwd *f, const float *x, float *out, int64_t rows, int64_t ld,
		    int n, int groups, const float *w)
{
	struct norm_job j = { x, out, w, ld, n, groups, (float)f->m->rms_eps };

	par_rows(f, rows, norm_rows, &j);
}

/* x += y (+ b, added to y first, as y + b then the sum) over the rows,
 * on the pass's threads: the residual connection after a block. */
struct residual_job {
	float *x, *y;
	const float *b;   /* [H] or NULL */
	int64_t H;
};

static void residual_rows(void *ud, int64_t i0, int64_t i1)
{
	const struct residual_job *j = ud;

	for (int64_t t = i0; t < i1; t++) {
		if (j->b)
			vec_axpy(j->y + t * j->H, j->b, 1.0f, j->H);
		vec_axpy(j->x + t * j->H, j->y + t * j->H, 1.0f, j->H);
	}
}

static void residual(const struct fwd *f, const float *b)
{
	struct residual_job j = { f->x, f->y, b, f->H };

	par_rows(f, f->T, residual_rows, &j);
}

/*
 * inv_freq as Hugging Face builds it in fp32 over the rotary width rd:
 * 1 / theta^((2i)/rd), or with YaRN (_compute_yarn_parameters) a blend,
 * per frequency, of that ("extrapolation") and it divided by the factor
 * ("interpolation"), by a linear ramp between the dims that beta_fast and
 * beta_slow rotations at the original context length reach (computed in
 * double, floored and ceiled when truncate is set, clamped to [0, rd-1]).
 */
static void rope_inv_freq(const struct model_desc *m, int rd, float *inv)
{
	int half = rd / 2;
	float theta = (float)m->rope_theta;
	double lo = 0.0, hi = 0.0;

	if (m->yarn) {
		double base = log(m->rope_theta), two_pi = 6.283185307179586; /* 2 pi */

		lo = rd * log(m->yarn_orig_max_pos / (m->yarn_beta_fast * two_pi)) / (2.0 * base);
		hi = rd * log(m->yarn_orig_max_pos / (m->yarn_beta_slow * two_pi)) / (2.0 * base);
		if (m->yarn_truncate) {
			lo = floor(lo);
			hi = ceil(hi);
		}
		lo = lo > 0.0 ? lo : 0.0;
		hi = hi < rd - 1 ? hi : rd - 1;
		if (lo == hi)
			hi += 0.001; /* as Hugging Face avoids a zero-width ramp */
	}
	for (int i = 0; i < half; i++) {
		float pos = powf(theta, (float)(2 * i) / (float)rd);
		float ramp, extra;

		if (!m->yarn) {
			inv[i] = 1.0f / pos;
			continue;
		}
		ramp = ((float)i - (float)lo) / (float)(hi - lo);
		ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
		extra = 1.0f - ramp; /* the extrapolation share */
		inv[i] = 1.0f / ((float)m->yarn_factor * pos) * (1.0f - extra) + 1.0f / pos * extra;
	}
}

/* cos and sin of pos * inv_freq for every position, times YaRN's
 * attention factor (1 without YaRN), as the rotary embedding returns them. */
static void rope_tables(struct fwd *f)
{
	int half = f->rd / 2;
	float scale = (float)f->m->rope_attn_factor;
	float *inv = gw_malloc((size_t)half * sizeof(float));

	rope_inv_freq(f->m, f->rd, inv);
	f->rope_cos = gw_malloc((size_t)f->max_len * (size_t)half * sizeof(float));
	f->rope_sin = gw_malloc((size_t)f->max_len * (size_t)half * sizeof(float));
	for (int i = 0; i < half; i++)
		for (int t = 0; t < f->max_len; t++) {
			float a = (float)t * inv[i];

			f->rope_cos[(size_t)t * half + i] = cosf(a) * scale;
			f->rope_sin[(size_t)t * half + i] = sinf(a) * scale;
		}
	free(inv);
}

/*
 * x*cos + rotate_half(x)*sin on the first rd dims of v at position pos; the
 * rest pass (GLM's partial rotary).  Pairs are (i, i + rd/2); with
 * interleave (DeepSeek-V3's rope_interleave) they are (2i, 2i+1), and the
 * result is written half-split, as Hugging Face's view-transpose-reshape
 * does before the same rotation (q and k alike, so their products agree).
 */
static void rope_apply(const struct fwd *f, float *v, int pos)
{
	int half = f->rd / 2;
	const float *c = f->rope_cos + (size_t)pos * half;
	const float *s = f->rope_sin + (size_t)pos * half;

	if (f->m->rope_interleave) {
		float tmp[MODEL_HEAD_DIM_MAX];

		memcpy(tmp, v, (size_t)f->rd * sizeof(float));
		for (int i = 0; i < half; i++) {
			float a = tmp[2 * i], b = tmp[2 * i + 1];

			v[i] = a * c[i] - b * s[i];
			v[i + half] = b * c[i] + a * s[i];
		}
		return;
	}
	for (int i = 0; i < half; i++) {
		float a = v[i], b = v[i + half];

		v[i] = a * c[i] - b * s[i];
		v[i + half] = b * c[i] + a * s[i];
	}
}

/* ---- weights -------------------------------------------------------- */

/*
 * Rows [row0, row0 + nrows) of tensor t as fp32 into out, split over the
 * engine's threads (reading and converting BF16/F16 is a tenth of the
 * pass on one core).  Each part is read into its own rows; the first
 * failure is the result.
 */
struct read_job {
	const struct ckpt *c;
	const char *name;
	int64_t row0, row_len;
	float *out;
	pthread_mutex_t lock;
	int rc;
	struct gw_err err;
};

static void read_rows(void *ud, int64_t i0, int64_t i1)
{
	struct read_job *j = ud;
	struct gw_err err = { "" };
	int r = ckpt_read_rows_f32(j->c, j->name, j->row0 + i0, i1 - i0, j->out + i0 * j->row_len,
				   &err);

	if (r < 0) {
		pthread_mutex_lock(&j->lock);
		if (j->rc == 0) {
			j->rc = r;
			j->err = err;
		}
		pthread_mutex_unlock(&j->lock);
	}
}

/* Rows [row0, row0 + nrows) of the 2-D tensor `name` (rows of row_len
 * floats), through ckpt_read_rows_f32 (reads from several threads at once
 * are fine). */
static int read_rows_par(const struct fwd *f, const char *name, int64_t row0, int64_t nrows,
			 int64_t row_len, float *out)
{
	struct read_job j = { .c = f->c, .name = name, .row0 = row0, .row_len = row_len,
			      .out = out };

	pthread_mutex_init(&j.lock, NULL);
	/* par_rows keeps PAR_MIN_ROWS rows a thread: at least 64 rows of a
	 * weight matrix, so small tensors stay on one thread. */
	par_rows(f, nrows, read_rows, &j);
	pthread_mutex_destroy(&j.lock);
	if (j.rc < 0 && f->err)
		*f->err = j.err;
	return j.rc;
}

/*
 * Read tensor `kind` (of this layer and expert) as fp32 into out, which
 * holds exactly `count` floats.  -ENOENT (quietly, err untouched) when the
 * model has no such tensor and `optional` is set.
 */
static int load(struct fwd *f, enum model_tensor kind, int layer, int expert, float *out,
		size_t count, bool optional)
{
	char name[ST_NAME_MAX];
	double t0;
	int r;

	r = model_tensor_name(f->m, kind, layer, expert, name, sizeof(name));
	if (r == -ENOENT && optional)
		return -ENOENT;
	if (r < 0)
		return gw_errf(f->err, r, "\"%s\": no name for tensor kind %d of layer %d",
			       ckpt_dir(f->c), (int)kind, layer);
	if (optional && !ckpt_has(f->c, name))
		return -ENOENT;
	t0 = now_sec();
	{
		int64_t shape[2];
		int ndim = 0;

		if (ckpt_shape(f->c, name, shape, &ndim) == 0 && ndim == 2 &&
		    (uint64_t)shape[0] * (uint64_t)shape[1] == (uint64_t)count)
			r = read_rows_par(f, name, 0, shape[0], shape[1], out);
		else
			r = ckpt_read_f32(f->c, name, out, count, f->err);
	}
	f->st.load_sec += now_sec() - t0;
	if (r < 0)
		return r;
	f->st.load_bytes += (double)count * sizeof(float);
	return 0;
}

/* Allocate and load; NULL in *ret when optional and absent. */
static int load_new(struct fwd *f, enum model_tensor kind, int layer, int expert, size_t count,
		    bool optional, float **ret)
{
	float *w = gw_malloc(count * sizeof(float));
	int r = load(f, kind, layer, expert, w, count, optional);

	if (r < 0) {
		free(w);
		if (r == -ENOENT && optional) {
			*ret = NULL;
			return 0;
		}
		return r;
	}
	*ret = w;
	return 0;
}

/*
 * A weight [N, K] of a linear layer: its fp32 values (f), or, where the
 * pass runs on AMX and the checkpoint stores it as BF16, packed into tiles
 * (a).  Several tensors may be stacked into one (q|k|v, gate|up).
 */
struct wmat {
	float *f;
	struct amx_w a;
	int64_t N, K;
};

static void wmat_free(struct wmat *w)
{
	free(w->f);
	amx_w_free(&w->a);
	memset(w, 0, sizeof(*w));
}

/* Tensors kinds[0..n) of layer l (expert e), rows[i] rows of K each,
 * stacked. */
static int wmat_load(struct fwd *f, const enum model_tensor *kinds, const int64_t *rows, int n,
		     int l, int e, int64_t K, struct wmat *w)
{
	int64_t N = 0;
	int r;

	memset(w, 0, sizeof(*w));
	for (int i = 0; i < n; i++)
		N += rows[i];
	w->N = N;
	w->K = K;
	if (pack_bf16(f, kinds, rows, n, l, e, K, &w->a, &r))
		return r;
	w->f = gw_malloc((size_t)N * (size_t)K * sizeof(float));
	N = 0;
	for (int i = 0; i < n; i++) {
		r = load(f, kinds[i], l, e, w->f + N * K, (size_t)(rows[i] * K), false);
		if (r < 0) {
			wmat_free(w);
			return r;
		}
		N += rows[i];
	}
	return 0;
}

static int wmat_load1(struct fwd *f, enum model_tensor kind, int l, int64_t N, int64_t K,
		      struct wmat *w)
{
	return wmat_load(f, &kind, &N, 1, l, 0, K, w);
}

/* Y[T, N] = X[T, K] W^T, row strides ldx and ldy. */
static void wmat_mul(struct fwd *f, const float *X, int64_t ldx, int64_t T, const struct wmat *w,
		     float *Y, int64_t ldy)
{
	if (w->f)
		gemm(f, true, T, w->N, w->K, 1.0f, X, ldx, w->f, w->K, 0.0f, Y, ldy);
	else
		linear_amx(f, X, ldx, T, &w->a, Y, ldy);
}

/* ---- attention ------------------------------------------------------ */

struct attn_w {
	float *norm;     /* [H] input_layernorm */
	struct wmat qkv; /* [qkvdim, H]: q_proj, k_proj, v_proj stacked */
	float *bqkv;     /* [qkvdim] or NULL */
	struct wmat o;   /* [H, odim] */
	float *bo;       /* [H] or NULL */
	float *qn, *kn;  /* q_norm, k_norm or NULL */
};

static void attn_w_release(struct attn_w *a)
{
	wmat_free(&a->qkv);
	wmat_free(&a->o);
	free(a->norm);
	free(a->bqkv);
	free(a->bo);
	free(a->qn);
	free(a->kn);
	memset(a, 0, sizeof(*a));
}

static int attn_w_load(struct fwd *f, int l, struct attn_w *a)
{
	const struct model_desc *m = f->m;
	size_t H = (size_t)f->H, q = (size_t)f->qdim, kv = (size_t)f->kdim;
	float *b[3] = { NULL, NULL, NULL };
	int r;

	static const enum model_tensor qkv[3] = { MT_Q, MT_K, MT_V };
	const int64_t rq[3] = { (int64_t)q, (int64_t)kv, (int64_t)kv };

	memset(a, 0, sizeof(*a));
	if ((r = load_new(f, MT_ATTN_NORM, l, 0, H, false, &a->norm)) < 0 ||
	    (r = wmat_load(f, qkv, rq, 3, l, 0, (int64_t)H, &a->qkv)) < 0 ||
	    (r = wmat_load1(f, MT_O, l, (int64_t)H, (int64_t)q, &a->o)) < 0 ||
	    (r = load_new(f, MT_O_BIAS, l, 0, H, true, &a->bo)) < 0 ||
	    (r = load_new(f, MT_Q_BIAS, l, 0, q, true, &b[0])) < 0 ||
	    (r = load_new(f, MT_K_BIAS, l, 0, kv, true, &b[1])) < 0 ||
	    (r = load_new(f, MT_V_BIAS, l, 0, kv, true, &b[2])) < 0)
		goto out;
	if (b[0] || b[1] || b[2]) {
		/* Biases come as a set or not at all in every supported model;
		 * a missing one reads as zero, as an absent bias does. */
		a->bqkv = gw_calloc((size_t)f->qkvdim, sizeof(float));
		if (b[0])
			memcpy(a->bqkv, b[0], q * sizeof(float));
		if (b[1])
			memcpy(a->bqkv + q, b[1], kv * sizeof(float));
		if (b[2])
			memcpy(a->bqkv + q + kv, b[2], kv * sizeof(float));
	}
	if (m->qk_norm == QK_NORM_FULL) {
		if ((r = load_new(f, MT_Q_NORM, l, 0, q, false, &a->qn)) < 0 ||
		    (r = load_new(f, MT_K_NORM, l, 0, kv, false, &a->kn)) < 0)
			goto out;
	} else if (m->qk_norm == QK_NORM_HEAD) {
		if ((r = load_new(f, MT_Q_NORM, l, 0, (size_t)f->dq, false, &a->qn)) < 0 ||
		    (r = load_new(f, MT_K_NORM, l, 0, (size_t)f->dq, false, &a->kn)) < 0)
			goto out;
	}
	r = 0;
out:
	free(b[0]);
	free(b[1]);
	free(b[2]);
	if (r < 0)
		attn_w_release(a);
	return r;
}

/* Per token: bias, QK-norm, clip, RoPE on the q|k|v rows (in place). */
struct qkv_job {
	struct fwd *f;
	const struct attn_w *a;
	const int32_t *pos; /* position of each token in its sample */
};

static void qkv_rows(void *ud, int64_t i0, int64_t i1)
{
	const struct qkv_job *j = ud;
	struct fwd *f = j->f;
	const struct model_desc *m = f->m;
	float eps = (float)m->rms_eps, clip = (float)m->clip_qkv;
	int d = f->dq;

	for (int64_t t = i0; t < i1; t++) {
		float *q = f->qkv + t * f->qkvdim, *k = q + f->qdim;

		if (j->a->bqkv)
			for (int i = 0; i < f->qkvdim; i++)
				q[i] += j->a->bqkv[i];
		if (m->qk_norm == QK_NORM_FULL) {
			/* OLMoE: over the whole projection, before the split into heads. */
			rmsnorm_row(q, j->a->qn, f->qdim, eps, q);
			rmsnorm_row(k, j->a->kn, f->kdim, eps, k);
		} else if (m->qk_norm == QK_NORM_HEAD) {
			/* Qwen3, GLM: each head over head_dim, before RoPE. */
			for (int h = 0; h < f->nh; h++)
				rmsnorm_row(q + h * d, j->a->qn, d, eps, q + h * d);
			for (int h = 0; h < f->nkv; h++)
				rmsnorm_row(k + h * d, j->a->kn, d, eps, k + h * d);
		}
		if (m->clip_qkv > 0) {
			/* OLMoE clamps after the norm, q, k and v alike. */
			for (int i = 0; i < f->qkvdim; i++)
				q[i] = fminf(fmaxf(q[i], -clip), clip);
		}
		for (int h = 0; h < f->nh; h++)
			rope_apply(f, q + h * d, j->pos[t]);
		for (int h = 0; h < f->nkv; h++)
			rope_apply(f, k + h * d, j->pos[t]);
	}
}

/*
 * Causal softmax of a block of score rows in place: row r is query position
 * i0 + r, columns are key positions k0 .. k0 + nk - 1; keys after the query
 * or outside the sliding window get probability 0.
 */
static void attn_softmax(float *S, int nq, int nk, int i0, int k0, int window)
{
	for (int r = 0; r < nq; r++) {
		float *s = S + (size_t)r * nk;
		int i = i0 + r;
		int lo = window > 0 && i - window + 1 > k0 ? i - window + 1 - k0 : 0;
		int hi = i - k0 + 1; /* columns [lo, hi) are visible */
		float mx = vec_max(s + lo, hi - lo);

		vec_scale(s + lo, 1.0f / vec_exp_sub(s + lo, hi - lo, mx), hi - lo);
		memset(s, 0, (size_t)lo * sizeof(float));
		memset(s + hi, 0, (size_t)(nk - hi) * sizeof(float));
	}
}

/*
 * Attention of one head of one sample, tokens [t0, t0 + n): query rows in
 * blocks, scores = attn_scale * Q_h K_g^T over the visible keys, softmax,
 * then P V_g into the head's columns of f->att.  Q, K, V are read in place
 * from the q|k|v rows (row stride qkvdim; q and k heads of dq dims, v heads
 * of dv); GQA maps head h to KV head h / (nh / nkv), as repeat_kv does.
 * S is ATTN_QBLOCK x max_len floats of scratch.
 */
static void attn_head(const struct fwd *f, int64_t t0, int n, int h, float *S, struct gacc *acc)
{
	int rep = f->nh / f->nkv, window = f->m->sliding_window, dq = f->dq, dv = f->dv;
	float scale = (float)f->m->attn_scale;
	int64_t ld = f->qkvdim;
	int g = h / rep;
	const float *Q = f->qkv + t0 * ld + (int64_t)h * dq;
	const float *K = f->qkv + t0 * ld + f->qdim + (int64_t)g * dq;
	const float *V = f->qkv + t0 * ld + f->qdim + f->kdim + (int64_t)g * dv;
	float *O = f->att + t0 * f->odim + (int64_t)h * dv;

	for (int i0 = 0; i0 < n; i0 += ATTN_QBLOCK) {
		int nq = n - i0 < ATTN_QBLOCK ? n - i0 : ATTN_QBLOCK;
		int k0 = window > 0 && i0 - window + 1 > 0 ? i0 - window + 1 : 0;
		int nk = i0 + nq - k0;

		gemm_acc(acc, true, nq, nk, dq, scale, Q + (int64_t)i0 * ld, ld,
			 K + (int64_t)k0 * ld, ld, 0.0f, S, nk);
		attn_softmax(S, nq, nk, i0, k0, window);
		gemm_acc(acc, false, nq, dv, nk, 1.0f, S, nk, V + (int64_t)k0 * ld, ld, 0.0f,
			 O + (int64_t)i0 * f->odim, f->odim);
	}
}

/* Unit u of the attention: head u % nh of sample u / nh, on thread tid's
 * scratch. */
struct attn_job {
	const struct fwd *f;
	float **S;
};

static void attn_unit(void *ud, int tid, int64_t u, struct gacc *acc)
{
	const struct attn_job *j = ud;
	const struct fwd *f = j->f;
	int i = (int)(u / f->nh), h = (int)(u % f->nh);

	attn_head(f, f->off[i], f->p->samples[i].ntokens, h, j->S[tid], acc);
}

/* Every sample's causal attention over f->qkv, each (sample, head) a unit
 * of work on the engine's threads, then o_proj (and its bias) added to the
 * residual stream. */
static int attn_finish(struct fwd *f, const struct wmat *wo, const float *bo)
{
	int64_t units = (int64_t)f->p->n_samples * f->nh;
	int nt = unit_threads(f, units), r;
	float *S[THREADS_MAX];
	struct attn_job j = { f, S };

	if ((r = cancelled(f)) < 0)
		return r;
	for (int i = 0; i < nt; i++)
		S[i] = gw_malloc((size_t)ATTN_QBLOCK * (size_t)f->max_len * sizeof(float));
	par_units(f, units, attn_unit, &j);
	for (int i = 0; i < nt; i++)
		free(S[i]);
	wmat_mul(f, f->att, f->odim, f->T, wo, f->y, f->H);
	residual(f, bo);
	return 0;
}

static int attention(struct fwd *f, int l, const int32_t *pos)
{
	struct attn_w a;
	struct qkv_job qj;
	int r;

	if ((r = attn_w_load(f, l, &a)) < 0)
		return r;
	rmsnorm(f, f->x, f->xn, f->T, f->H, f->H, 1, a.norm);
	wmat_mul(f, f->xn, f->H, f->T, &a.qkv, f->qkv, f->qkvdim);
	qj = (struct qkv_job){ f, &a, pos };
	par_rows(f, f->T, qkv_rows, &qj);
	r = attn_finish(f, &a.o, a.bo);
	attn_w_release(&a);
	return r;
}

/*
 * DeepSeek-V3's multi-head latent attention (DeepseekV3Attention).  Per
 * token: q from q_proj, or q_b_proj(q_a_layernorm(q_a_proj x)); ckv =
 * kv_a_proj_with_mqa x, whose first kv_lora_rank dims, normed by
 * kv_a_layernorm, go through kv_b_proj to each head's nope key and value,
 * and whose last qk_rope dims are one rotary key every head shares.  The
 * q|k|v rows are then laid out as for GQA with nkv = nh (each head's key is
 * its nope part then the shared rotary part; q likewise), so the same
 * per-sample attention runs, with head dims dq for scores and dv for values.
 */
struct mla_w {
	float *norm;                  /* [H] input_layernorm */
	struct wmat wq;               /* q_proj [nh*dq, H], when q_lora_rank is 0 */
	struct wmat wqa, wqb;         /* q_a_proj [qr, H], q_b_proj [nh*dq, qr] */
	float *bqa, *qan;             /* q_a_proj's bias, q_a_layernorm */
	struct wmat wkva;             /* kv_a_proj_with_mqa [kvr+dr, H] */
	float *bkva, *kvan;           /* its bias, kv_a_layernorm */
	struct wmat wkvb;             /* kv_b_proj [nh*(dn+dv), kvr] */
	struct wmat wo;               /* o_proj [H, nh*dv] */
	float *bo;                    /* its bias */
};

static void mla_w_release(struct mla_w *a)
{
	free(a->norm);
	wmat_free(&a->wq);
	wmat_free(&a->wqa);
	wmat_free(&a->wqb);
	free(a->bqa);
	free(a->qan);
	wmat_free(&a->wkva);
	free(a->bkva);
	free(a->kvan);
	wmat_free(&a->wkvb);
	wmat_free(&a->wo);
	free(a->bo);
	memset(a, 0, sizeof(*a));
}

static int mla_w_load(struct fwd *f, int l, struct mla_w *a)
{
	const struct model_desc *m = f->m;
	int64_t H = f->H, nh = f->nh, qr = m->q_lora_rank;
	int64_t kvr = m->kv_lora_rank, ka = kvr + m->qk_rope_dim;
	int r;

	memset(a, 0, sizeof(*a));
	if ((r = load_new(f, MT_ATTN_NORM, l, 0, (size_t)H, false, &a->norm)) < 0 ||
	    (r = wmat_load1(f, MT_KV_A, l, ka, H, &a->wkva)) < 0 ||
	    (r = load_new(f, MT_KV_A_BIAS, l, 0, (size_t)ka, true, &a->bkva)) < 0 ||
	    (r = load_new(f, MT_KV_A_NORM, l, 0, (size_t)kvr, false, &a->kvan)) < 0 ||
	    (r = wmat_load1(f, MT_KV_B, l, nh * (m->qk_nope_dim + f->dv), kvr, &a->wkvb)) < 0 ||
	    (r = wmat_load1(f, MT_O, l, H, f->odim, &a->wo)) < 0 ||
	    (r = load_new(f, MT_O_BIAS, l, 0, (size_t)H, true, &a->bo)) < 0)
		goto out;
	if (qr == 0)
		r = wmat_load1(f, MT_Q, l, f->qdim, H, &a->wq);
	else if ((r = wmat_load1(f, MT_Q_A, l, qr, H, &a->wqa)) < 0 ||
		 (r = load_new(f, MT_Q_A_BIAS, l, 0, (size_t)qr, true, &a->bqa)) < 0 ||
		 (r = load_new(f, MT_Q_A_NORM, l, 0, (size_t)qr, false, &a->qan)) < 0)
		goto out;
	else
		r = wmat_load1(f, MT_Q_B, l, f->qdim, qr, &a->wqb);
out:
	if (r < 0)
		mla_w_release(a);
	return r;
}

/* Add a bias to every row of X [n, w] (row stride ld). */
static void add_bias(float *X, int64_t n, int64_t w, int64_t ld, const float *b)
{
	if (!b)
		return;
	for (int64_t t = 0; t < n; t++)
		for (int64_t i = 0; i < w; i++)
			X[t * ld + i] += b[i];
}

/* Per token: RoPE on each head's rotary q part and on the shared rotary
 * key, then each head's key (nope | rope) and value into the q|k|v row. */
struct mla_job {
	struct fwd *f;
	const float *ckv;   /* [T, kvr + dr] kv_a_proj_with_mqa output */
	const float *kvb;   /* [T, nh*(dn+dv)] kv_b_proj output */
	const int32_t *pos;
};

static void mla_rows(void *ud, int64_t i0, int64_t i1)
{
	const struct mla_job *j = ud;
	struct fwd *f = j->f;
	const struct model_desc *m = f->m;
	int dn = m->qk_nope_dim, dr = m->qk_rope_dim, dq = f->dq, dv = f->dv;
	int64_t ka = m->kv_lora_rank + dr, kb = (int64_t)dn + dv;
	float kr[MODEL_HEAD_DIM_MAX];

	for (int64_t t = i0; t < i1; t++) {
		float *q = f->qkv + t * f->qkvdim, *k = q + f->qdim, *v = k + f->kdim;
		const float *kvb = j->kvb + t * f->nh * kb;

		for (int h = 0; h < f->nh; h++)
			rope_apply(f, q + (int64_t)h * dq + dn, j->pos[t]);
		memcpy(kr, j->ckv + t * ka + m->kv_lora_rank, (size_t)dr * sizeof(float));
		rope_apply(f, kr, j->pos[t]);
		for (int h = 0; h < f->nh; h++) {
			memcpy(k + (int64_t)h * dq, kvb + h * kb, (size_t)dn * sizeof(float));
			memcpy(k + (int64_t)h * dq + dn, kr, (size_t)dr * sizeof(float));
			memcpy(v + (int64_t)h * dv, kvb + h * kb + dn, (size_t)dv * sizeof(float));
		}
	}
}

static int attention_mla(struct fwd *f, int l, const int32_t *pos)
{
	const struct model_desc *m = f->m;
	int64_t T = f->T, H = f->H, qr = m->q_lora_rank, kvr = m->kv_lora_rank;
	int64_t ka = kvr + m->qk_rope_dim, kb = (int64_t)f->nh * (m->qk_nope_dim + f->dv);
	float *qa = NULL, *ckv = NULL, *kvb = NULL;
	struct mla_w a;
	struct mla_job mj;
	int r;

	if ((r = mla_w_load(f, l, &a)) < 0)
		return r;
	rmsnorm(f, f->x, f->xn, T, H, (int)H, 1, a.norm);
	if (qr == 0) {
		wmat_mul(f, f->xn, H, T, &a.wq, f->qkv, f->qkvdim);
	} else {
		struct norm_job nj;

		qa = gw_malloc((size_t)T * (size_t)qr * sizeof(float));
		wmat_mul(f, f->xn, H, T, &a.wqa, qa, qr);
		add_bias(qa, T, qr, qr, a.bqa);
		nj = (struct norm_job){ qa, qa, a.qan, qr, (int)qr, 1, (float)m->mla_eps };
		par_rows(f, T, norm_rows, &nj);
		wmat_mul(f, qa, qr, T, &a.wqb, f->qkv, f->qkvdim);
	}
	ckv = gw_malloc((size_t)T * (size_t)ka * sizeof(float));
	wmat_mul(f, f->xn, H, T, &a.wkva, ckv, ka);
	add_bias(ckv, T, ka, ka, a.bkva);
	{
		/* kv_a_layernorm over the latent part, in place (the rotary
		 * key's dims after it are left as they are). */
		struct norm_job nj = { ckv, ckv, a.kvan, ka, (int)kvr, 1, (float)m->mla_eps };

		par_rows(f, T, norm_rows, &nj);
	}
	kvb = gw_malloc((size_t)T * (size_t)kb * sizeof(float));
	wmat_mul(f, ckv, ka, T, &a.wkvb, kvb, kb);
	mj = (struct mla_job){ f, ckv, kvb, pos };
	par_rows(f, T, mla_rows, &mj);
	r = attn_finish(f, &a.wo, a.bo);
	free(qa);
	free(ckv);
	free(kvb);
	mla_w_release(&a);
	return r;
}

/* ---- feed-forward --------------------------------------------------- */

/* Over rows of width 2*ni (gate then up): out = silu(gate) * up, packed to
 * a row stride of ni in out. */
struct swiglu_job {
	const float *gu;
	float *out;
	int ni;
};

static void swiglu_rows(void *ud, int64_t i0, int64_t i1)
{
	const struct swiglu_job *j = ud;

	for (int64_t t = i0; t < i1; t++) {
		const float *g = j->gu + t * 2 * j->ni;

		vec_swiglu(j->out + t * j->ni, g, g + j->ni, j->ni);
	}
}

/*
 * A gated MLP over n rows of X: out[n, H] = down(silu(gate(X)) * up(X)).
 * wgu is [2*ni, H] (gate rows then up rows) so gate and up are one product.
 * Rows go MLP_ROWS at a time, so the scratch gu [MLP_ROWS, 2*ni] and act
 * [MLP_ROWS, ni] stay bounded however many tokens a layer has (a dense
 * FFN can be many times wider than the hidden size); mlp_rows(n) is the
 * row count the scratch must hold.
 */
static int64_t mlp_rows(int64_t n)
{
	return n < MLP_ROWS ? n : MLP_ROWS;
}

static void mlp(struct fwd *f, const float *X, int64_t n, const struct wmat *wgu,
		const struct wmat *wdown, int ni, float *gu, float *act, float *out)
{
	for (int64_t r0 = 0; r0 < n; r0 += MLP_ROWS) {
		int64_t m = n - r0 < MLP_ROWS ? n - r0 : MLP_ROWS;
		struct swiglu_job j = { gu, act, ni };

		wmat_mul(f, X + r0 * f->H, f->H, m, wgu, gu, 2 * (int64_t)ni);
		par_rows(f, m, swiglu_rows, &j);
		wmat_mul(f, act, ni, m, wdown, out + r0 * f->H, f->H);
	}
}

/* Load gate and up (stacked) and down of an MLP. */
static int mlp_load(struct fwd *f, enum model_tensor gate, enum model_tensor up,
		    enum model_tensor down, int l, int ni, struct wmat *wgu, struct wmat *wdown)
{
	const enum model_tensor gu[2] = { gate, up };
	const int64_t rows[2] = { ni, ni };
	int r;

	if ((r = wmat_load(f, gu, rows, 2, l, 0, f->H, wgu)) < 0)
		return r;
	return wmat_load1(f, down, l, f->H, ni, wdown);
}

static int dense_ffn(struct fwd *f, int l)
{
	int ni = f->m->dense_intermediate;
	struct wmat wgu = { 0 }, wd = { 0 };
	size_t rows = (size_t)mlp_rows(f->T);
	float *gu = gw_malloc(rows * 2 * (size_t)ni * sizeof(float));
	float *act = gw_malloc(rows * (size_t)ni * sizeof(float));
	float *norm = NULL;
	int r;

	if ((r = load_new(f, MT_FFN_NORM, l, 0, (size_t)f->H, false, &norm)) < 0 ||
	    (r = mlp_load(f, MT_DENSE_GATE, MT_DENSE_UP, MT_DENSE_DOWN, l, ni, &wgu, &wd)) < 0)
		goto out;
	rmsnorm(f, f->x, f->xn, f->T, f->H, f->H, 1, norm);
	mlp(f, f->xn, f->T, &wgu, &wd, ni, gu, act, f->y);
	residual(f, NULL);
	r = 0;
out:
	free(norm);
	wmat_free(&wgu);
	wmat_free(&wd);
	free(gu);
	free(act);
	return r;
}

/*
 * Router records of one token: p = softmax(z) over all E experts in fp32
 * (max subtracted), entropy of p and logsumexp(z) (in double, then stored
 * as float), the top-k by probability with ties to the lower index, and
 * their weights, renormalized where the architecture says.  z is replaced
 * by p.
 */
struct router_job {
	struct fwd *f;
	struct routing *r;
	float *z;      /* [T, E] logits, becomes p */
	int lm;        /* MoE layer index */
	bool renorm;
	const float *bias; /* [E] e_score_correction_bias (sigmoid routers) */
};

/* Insert (e, val) into the descending list ids/val of n (< cap or not)
 * entries, keeping at most cap; strict > keeps the lower index first among
 * equal values.  Returns the new count. */
static int topk_insert(uint16_t *ids, float *vals, int n, int cap, int e, float val)
{
	int pos = n;

	while (pos > 0 && val > vals[pos - 1])
		pos--;
	if (pos >= cap)
		return n;
	for (int q = (n < cap ? n : cap - 1); q > pos; q--) {
		ids[q] = ids[q - 1];
		vals[q] = vals[q - 1];
	}
	ids[pos] = (uint16_t)e;
	vals[pos] = val;
	return n < cap ? n + 1 : n;
}

/* logsumexp(z) over E logits, in double. */
static double logsumexp(const float *z, int E)
{
	float mx = -INFINITY;
	double s = 0.0;

	for (int e = 0; e < E; e++)
		mx = max_f(mx, z[e]);
	for (int e = 0; e < E; e++)
		s += exp((double)z[e] - mx);
	return mx + log(s);
}

static void router_rows(void *ud, int64_t i0, int64_t i1)
{
	const struct router_job *j = ud;
	const struct routing *rt = j->r;
	int E = rt->n_experts, k = rt->top_k, L = rt->n_layers;

	for (int64_t t = i0; t < i1; t++) {
		float *z = j->z + t * E, psum;
		uint16_t *ids = rt->topk_ids + ((size_t)t * L + j->lm) * k;
		float *w = rt->topk_w + ((size_t)t * L + j->lm) * k;
		double pz = 0.0, ls = logsumexp(z, E);
		int nsel = 0;

		for (int e = 0; e < E; e++) {
			double lp = (double)z[e] - ls;
			double pe = exp(lp);

			pz += pe * lp;
			z[e] = (float)pe;
		}
		rt->entropy[(size_t)t * L + j->lm] = (float)-pz;
		rt->lse[(size_t)t * L + j->lm] = (float)ls;
		for (int e = 0; e < E; e++)
			nsel = topk_insert(ids, w, nsel, k, e, z[e]);
		if (j->renorm) {
			psum = 0.0f;
			for (int q = 0; q < k; q++)
				psum += w[q];
			for (int q = 0; q < k; q++)
				w[q] /= psum;
		}
	}
}

/*
 * The DeepSeek-V3 family's router for one token (DeepseekV3TopkRouter,
 * Glm4MoeMoE.route_tokens_to_experts): s = sigmoid(z); the choice scores
 * s + bias; each group's score the sum of its two best choice scores; the
 * best topk_group groups kept (ties to the lower group); the other
 * experts' choice scores set to 0.0 (Hugging Face's masked_fill, not
 * -inf: a kept expert whose biased score is negative loses to them); the
 * top-k of those (ties to the lower index), in that order, weighted by
 * their s, divided by their sum + 1e-20 if norm_topk_prob, times
 * routed_scaling_factor.  Recorded p = s / sum(s) over all experts,
 * without the bias (SPEC §3), its entropy, and logsumexp(z).  z becomes p.
 */
static void router_sigmoid_rows(void *ud, int64_t i0, int64_t i1)
{
	const struct router_job *j = ud;
	const struct routing *rt = j->r;
	const struct model_desc *m = j->f->m;
	int E = rt->n_experts, k = rt->top_k, L = rt->n_layers;
	int G = m->n_group, per = E / G, tg = m->topk_group;
	float *s = gw_malloc((size_t)E * sizeof(float));
	float *choice = gw_malloc((size_t)E * sizeof(float));
	float *gscore = gw_malloc((size_t)G * sizeof(float));
	float *gval = gw_malloc((size_t)G * sizeof(float));
	uint16_t *gids = gw_malloc((size_t)G * sizeof(uint16_t));
	bool *keep = gw_malloc((size_t)G * sizeof(bool));
	float scaling = (float)m->routed_scaling;

	for (int64_t t = i0; t < i1; t++) {
		float *z = j->z + t * E, *val;
		uint16_t *ids = rt->topk_ids + ((size_t)t * L + j->lm) * k;
		float *w = rt->topk_w + ((size_t)t * L + j->lm) * k;
		double ssum = 0.0, pz = 0.0;
		int nsel = 0;

		rt->lse[(size_t)t * L + j->lm] = (float)logsumexp(z, E);
		for (int e = 0; e < E; e++) {
			s[e] = 1.0f / (1.0f + expf(-z[e]));
			ssum += s[e];
			choice[e] = s[e] + j->bias[e];
		}
		for (int e = 0; e < E; e++) {
			double pe = s[e] / ssum;

			if (pe > 0.0)
				pz += pe * log(pe);
			z[e] = (float)pe;
		}
		rt->entropy[(size_t)t * L + j->lm] = (float)-pz;

		for (int g = 0; g < G; g++) {
			const float *c = choice + (size_t)g * per;
			float a = c[0] > c[1] ? c[0] : c[1], b = c[0] > c[1] ? c[1] : c[0];

			for (int e = 2; e < per; e++) {
				if (c[e] > a) {
					b = a;
					a = c[e];
				} else if (c[e] > b) {
					b = c[e];
				}
			}
			gscore[g] = a + b;
			keep[g] = false;
		}
		for (int g = 0, n = 0; g < G; g++)
			n = topk_insert(gids, gval, n, tg, g, gscore[g]);
		for (int q = 0; q < tg; q++)
			keep[gids[q]] = true;
		/* The top-k by masked choice score; w holds those scores until
		 * they are replaced by the weights below. */
		val = w;
		for (int e = 0; e < E; e++)
			nsel = topk_insert(ids, val, nsel, k, e, keep[e / per] ? choice[e] : 0.0f);
		for (int q = 0; q < k; q++)
			w[q] = s[ids[q]];
		if (j->renorm) {
			float sum = 0.0f;

			for (int q = 0; q < k; q++)
				sum += w[q];
			sum += 1e-20f;
			for (int q = 0; q < k; q++)
				w[q] /= sum;
		}
		for (int q = 0; q < k; q++)
			w[q] *= scaling;
	}
	free(s);
	free(choice);
	free(gscore);
	free(gval);
	free(gids);
	free(keep);
}

struct moe_w {
	float *norm;    /* [H] post_attention_layernorm */
	float *router;  /* [E, H] */
	float *bias;    /* [E] e_score_correction_bias, or NULL */
	float *wgu;     /* [2I, H] one expert's gate|up */
	float *wd;      /* [H, ni] one expert's down */
	struct wmat sgu, sd;    /* shared expert's gate|up and down, or none */
	float *sgate;           /* Qwen2-MoE's shared expert gate, or NULL */
};

static void moe_w_release(struct moe_w *w)
{
	free(w->norm);
	free(w->router);
	free(w->bias);
	free(w->wgu);
	free(w->wd);
	wmat_free(&w->sgu);
	wmat_free(&w->sd);
	free(w->sgate);
}

/* Add the shared expert into f->y: mlp(x), times sigmoid(x . gate) in
 * Qwen2-MoE (DeepSeek-V3's and GLM's shared experts are ungated). */
static int shared_expert(struct fwd *f, int l, struct moe_w *w)
{
	int Is = f->m->shared_intermediate;
	size_t T = (size_t)f->T, H = (size_t)f->H;
	float *gu, *act, *out, *sg = NULL;
	int r;

	if ((r = mlp_load(f, MT_SHARED_GATE, MT_SHARED_UP, MT_SHARED_DOWN, l, Is, &w->sgu,
			  &w->sd)) < 0 ||
	    (f->m->shared_gated &&
	     (r = load_new(f, MT_SHARED_EXPERT_GATE, l, 0, H, false, &w->sgate)) < 0))
		return r;
	gu = gw_malloc((size_t)mlp_rows(f->T) * 2 * (size_t)Is * sizeof(float));
	act = gw_malloc((size_t)mlp_rows(f->T) * (size_t)Is * sizeof(float));
	out = gw_malloc(T * H * sizeof(float));
	mlp(f, f->xn, f->T, &w->sgu, &w->sd, Is, gu, act, out);
	if (w->sgate) {
		sg = gw_malloc(T * sizeof(float));
		linear(f, f->xn, f->T, f->H, w->sgate, 1, sg);
	}
	for (size_t t = 0; t < T; t++) {
		float g = sg ? 1.0f / (1.0f + expf(-sg[t])) : 1.0f;

		for (size_t i = 0; i < H; i++)
			f->y[t * H + i] += sg ? g * out[t * H + i] : out[t * H + i];
	}
	free(gu);
	free(act);
	free(out);
	free(sg);
	return 0;
}

/*
 * The experts of a wave as units of work (par_units): unit u is expert
 * order[u0 + u] (a wave's experts longest first, so the last units to
 * finish are short), on thread tid's scratch, into its rows of out (row
 * start[e] - start[e0] onward for expert e of the wave's first expert e0).
 * A failure is kept in rc and msg (the first one), and the load time and
 * bytes added under the lock.
 */
struct expert_buf {
	float *wgu, *wd, *X, *gu, *act;  /* a thread's */
	/* The AMX path: the weights' BF16 values, packed, and the split rows. */
	uint16_t *raw;
	int64_t *rows;
	struct amx_w pgu, pd;
	struct amx_a ax, aact;
};

struct expert_job {
	struct fwd *f;
	int l, ni, k, e0, u0;
	size_t L;
	const int64_t *slot, *start;
	const int *order;                  /* the wave's experts, longest first */
	struct expert_buf b[THREADS_MAX];
	float *out;                        /* the wave's output rows */
	pthread_mutex_t lock;
	int rc;
	char msg[GW_ERR_MAX];
	double load_sec, load_bytes;
};

static int expert_load(struct fwd *f, enum model_tensor kind, int l, int e, float *out,
		       size_t count, struct gw_err *err)
{
	char name[ST_NAME_MAX];
	int r = model_tensor_name(f->m, kind, l, e, name, sizeof(name));

	if (r < 0)
		return gw_errf(err, r, "\"%s\": no name for tensor kind %d of layer %d",
			       ckpt_dir(f->c), (int)kind, l);
	return ckpt_read_f32(f->c, name, out, count, err);
}

/* Keep a unit's first failure (with its message) in the job. */
static void job_fail(pthread_mutex_t *lock, int *rc, char *msg, int r, const struct gw_err *err)
{
	pthread_mutex_lock(lock);
	if (*rc == 0) {
		*rc = r;
		snprintf(msg, GW_ERR_MAX, "%s", err->msg);
	}
	pthread_mutex_unlock(lock);
}

/* C[m, N] = A[m, K] W^T on AMX, rows [0, m) of a, with its time and FLOPs. */
static void amx_acc(struct gacc *acc, float *C, int64_t ldc, const struct amx_a *a, int m,
		    const struct amx_w *w, int r0)
{
	double t0 = now_sec();

	amx_gemm(C, ldc, a, r0, r0 + m, w);
	acc->sec += now_sec() - t0;
	acc->flop += 2.0 * (double)m * (double)w->N * (double)w->K;
}

/*
 * expert_unit on AMX, where the expert's three weights are stored as BF16:
 * their values read without conversion and packed into tiles, the tokens'
 * rows split into BF16 parts straight from the normed stream (the gather).
 * False when a weight is stored otherwise (expert_unit then reads fp32).
 */
static bool expert_unit_amx(struct expert_job *j, struct expert_buf *b, int e, int64_t n,
			    struct gacc *acc)
{
	struct fwd *f = j->f;
	int ni = j->ni, H = f->H;
	size_t cnt = (size_t)ni * (size_t)H;
	char ng[ST_NAME_MAX], nu[ST_NAME_MAX], nd[ST_NAME_MAX];
	struct gw_err err = { "" };
	double t0;
	int r;

	if (model_tensor_name(f->m, MT_EXPERT_GATE, j->l, e, ng, sizeof(ng)) < 0 ||
	    model_tensor_name(f->m, MT_EXPERT_UP, j->l, e, nu, sizeof(nu)) < 0 ||
	    model_tensor_name(f->m, MT_EXPERT_DOWN, j->l, e, nd, sizeof(nd)) < 0 ||
	    !ckpt_bf16(f->c, ng) || !ckpt_bf16(f->c, nu) || !ckpt_bf16(f->c, nd))
		return false;
	t0 = now_sec();
	if ((r = ckpt_read_rows_bf16(f->c, ng, 0, ni, b->raw, &err)) < 0 ||
	    (r = ckpt_read_rows_bf16(f->c, nu, 0, ni, b->raw + cnt, &err)) < 0) {
		job_fail(&j->lock, &j->rc, j->msg, r, &err);
		return true;
	}
	amx_w_pack(&b->pgu, b->raw, 2 * ni, H);
	if ((r = ckpt_read_rows_bf16(f->c, nd, 0, H, b->raw, &err)) < 0) {
		job_fail(&j->lock, &j->rc, j->msg, r, &err);
		return true;
	}
	amx_w_pack(&b->pd, b->raw, H, ni);
	t0 = now_sec() - t0;
	pthread_mutex_lock(&j->lock);
	j->load_sec += t0;
	j->load_bytes += 3.0 * (double)cnt * sizeof(uint16_t);
	pthread_mutex_unlock(&j->lock);
	for (int64_t q = 0; q < n; q++)
		b->rows[q] = j->slot[j->start[e] + q] / ((int64_t)j->k * (int64_t)j->L);
	amx_a_split_rows(&b->ax, f->xn, b->rows, (int)n, H, H);
	for (int64_t r0 = 0; r0 < n; r0 += MLP_ROWS) {
		int64_t m = n - r0 < MLP_ROWS ? n - r0 : MLP_ROWS;
		struct swiglu_job sj = { b->gu, b->act, ni };
		float *out = j->out + (j->start[e] - j->start[j->e0] + r0) * H;

		amx_acc(acc, b->gu, 2 * (int64_t)ni, &b->ax, (int)m, &b->pgu, (int)r0);
		swiglu_rows(&sj, 0, m);
		amx_a_split(&b->aact, b->act, (int)m, ni, ni);
		amx_acc(acc, out, H, &b->aact, (int)m, &b->pd, 0);
	}
	return true;
}

static void expert_unit(void *ud, int tid, int64_t u, struct gacc *acc)
{
	struct expert_job *j = ud;
	struct fwd *f = j->f;
	struct expert_buf *b = &j->b[tid];
	int e = j->order[j->u0 + u], ni = j->ni;
	int64_t n = j->start[e + 1] - j->start[e], H = f->H;
	float *out = j->out + (j->start[e] - j->start[j->e0]) * H;
	size_t cnt = (size_t)ni * (size_t)H;
	struct gw_err err = { "" };
	double t0;
	int r;

	if (n == 0)
		return;
	if (f->amx && expert_unit_amx(j, b, e, n, acc))
		return;
	t0 = now_sec();
	if ((r = expert_load(f, MT_EXPERT_GATE, j->l, e, b->wgu, cnt, &err)) < 0 ||
	    (r = expert_load(f, MT_EXPERT_UP, j->l, e, b->wgu + cnt, cnt, &err)) < 0 ||
	    (r = expert_load(f, MT_EXPERT_DOWN, j->l, e, b->wd, cnt, &err)) < 0) {
		job_fail(&j->lock, &j->rc, j->msg, r, &err);
		return;
	}
	t0 = now_sec() - t0;
	pthread_mutex_lock(&j->lock);
	j->load_sec += t0;
	j->load_bytes += 3.0 * (double)cnt * sizeof(float);
	pthread_mutex_unlock(&j->lock);
	for (int64_t q = 0; q < n; q++) {
		size_t t = (size_t)j->slot[j->start[e] + q] / ((size_t)j->k * j->L);

		memcpy(b->X + q * H, f->xn + t * (size_t)H, (size_t)H * sizeof(float));
	}
	for (int64_t r0 = 0; r0 < n; r0 += MLP_ROWS) {
		int64_t m = n - r0 < MLP_ROWS ? n - r0 : MLP_ROWS;
		struct swiglu_job sj = { b->gu, b->act, ni };

		gemm_acc(acc, true, m, 2 * (int64_t)ni, H, 1.0f, b->X + r0 * H, H, b->wgu, H, 0.0f,
			 b->gu, 2 * (int64_t)ni);
		swiglu_rows(&sj, 0, m);
		gemm_acc(acc, true, m, H, ni, 1.0f, b->act, ni, b->wd, ni, 0.0f, out + r0 * H, H);
	}
}

/*
 * y[t] += weight * out[row] for every assignment of tokens [i0, i1) to an
 * expert of the wave [e0, e1): a token's assignments in expert order (its
 * k records sorted by expert, by), so every token's sum is the same
 * whatever the waves and threads.
 */
struct scatter_job {
	struct fwd *f;
	const struct routing *rt;
	const int64_t *by;      /* [T, k] a token's assignments t*k + j, experts ascending */
	const int64_t *pos;     /* [T*k] an assignment's row in the expert order */
	const float *out;       /* the wave's rows, from row pos0 */
	int64_t pos0;
	size_t L, lm;
	int k, e0, e1;
};

static void scatter_rows(void *ud, int64_t i0, int64_t i1)
{
	const struct scatter_job *j = ud;
	size_t H = (size_t)j->f->H, k = (size_t)j->k;

	for (int64_t t = i0; t < i1; t++) {
		float *y = j->f->y + (size_t)t * H;

		for (size_t i = 0; i < k; i++) {
			size_t a = (size_t)j->by[(size_t)t * k + i];
			size_t rec = ((size_t)t * j->L + j->lm) * k + a % k;
			int e = j->rt->topk_ids[rec];
			const float *o;
			float wt;

			if (e < j->e0)
				continue;
			if (e >= j->e1)
				break; /* the rest are later experts */
			wt = j->rt->topk_w[rec];
			o = j->out + (size_t)(j->pos[a] - j->pos0) * H;
			vec_axpy(y, o, wt, (int64_t)H);
		}
	}
}

static int moe_ffn(struct fwd *f, int l, struct routing *rt)
{
	const struct model_desc *m = f->m;
	int lm = m->moe_layer_index[l], E = m->n_experts, k = m->top_k, ni = m->moe_intermediate;
	size_t T = (size_t)f->T, H = (size_t)f->H, L = (size_t)rt->n_layers;
	struct moe_w w = { 0 };
	struct router_job rj;
	float *z = NULL, *X = NULL, *gu = NULL, *act = NULL, *out = NULL;
	int64_t *cnt = NULL, *start = NULL, *slot = NULL;
	int r;

	if ((r = load_new(f, MT_FFN_NORM, l, 0, H, false, &w.norm)) < 0 ||
	    (r = load_new(f, MT_ROUTER, l, 0, (size_t)E * H, false, &w.router)) < 0 ||
	    (m->router == ROUTER_SIGMOID &&
	     (r = load_new(f, MT_ROUTER_BIAS, l, 0, (size_t)E, false, &w.bias)) < 0))
		goto out;
	rmsnorm(f, f->x, f->xn, f->T, f->H, f->H, 1, w.norm);

	/* Router: all tokens in one product, then the per-token records. */
	z = gw_malloc(T * (size_t)E * sizeof(float));
	linear(f, f->xn, f->T, f->H, w.router, E, z);
	rj = (struct router_job){ f, rt, z, lm, m->arch == ARCH_MIXTRAL || m->norm_topk_prob,
				  w.bias };
	par_rows(f, f->T, m->router == ROUTER_SIGMOID ? router_sigmoid_rows : router_rows, &rj);
	for (int i = 0; i < f->p->n_samples; i++) {
		float *g = rt->gbar + ((size_t)i * L + (size_t)lm) * (size_t)E;
		int n = f->p->samples[i].ntokens;

		for (int e = 0; e < E; e++) {
			double s = 0.0;

			for (int64_t t = f->off[i]; t < f->off[i + 1]; t++)
				s += z[t * E + e];
			g[e] = (float)(s / n);
		}
	}
	rt->router[lm] = w.router;
	w.router = NULL;

	/* Group the (token, slot) assignments by expert, tokens in order. */
	cnt = gw_calloc((size_t)E, sizeof(int64_t));
	start = gw_calloc((size_t)E + 1, sizeof(int64_t));
	slot = gw_malloc(T * (size_t)k * sizeof(int64_t));
	for (size_t a = 0; a < T * (size_t)k; a++) {
		size_t t = a / (size_t)k, j = a % (size_t)k;

		cnt[rt->topk_ids[(t * L + (size_t)lm) * (size_t)k + j]]++;
	}
	for (int e = 0; e < E; e++)
		start[e + 1] = start[e] + cnt[e];
	memset(cnt, 0, (size_t)E * sizeof(int64_t));
	for (size_t a = 0; a < T * (size_t)k; a++) {
		size_t t = a / (size_t)k, j = a % (size_t)k;
		int e = rt->topk_ids[(t * L + (size_t)lm) * (size_t)k + j];

		slot[start[e] + cnt[e]++] = (int64_t)((t * L + (size_t)lm) * (size_t)k + j);
	}

	/* The experts in waves of contiguous expert ranges whose output rows
	 * fit EXPERT_OUT_FLOATS (an expert larger than that is a wave of its
	 * own).  In a wave each expert is a unit of work on one core (its
	 * weights read and converted, its tokens gathered from every sample,
	 * one product for gate|up and one for down), taken longest first;
	 * then the wave's outputs are added to y weighted, each token's
	 * experts in order (as Hugging Face's index_add_ loop does), so the
	 * sums are the same whatever the thread count. */
	memset(f->y, 0, T * H * sizeof(float));
	{
		int nt = unit_threads(f, E);
		int64_t most = 0, cap;
		int *order = gw_malloc((size_t)E * sizeof(int));
		int64_t *pos = gw_malloc(T * (size_t)k * sizeof(int64_t));
		int64_t *by = gw_malloc(T * (size_t)k * sizeof(int64_t));
		struct expert_job ej = { .f = f, .l = l, .ni = ni, .k = k, .L = L, .slot = slot,
					 .start = start, .order = order };

		for (int64_t p = 0; p < (int64_t)(T * (size_t)k); p++) {
			size_t rec = (size_t)slot[p];

			pos[(rec / (L * (size_t)k)) * (size_t)k + rec % (size_t)k] = p;
		}
		/* A token's assignments by expert: insertion sort of k. */
		for (size_t t = 0; t < T; t++) {
			int64_t *bt = by + t * (size_t)k;
			const uint16_t *id = rt->topk_ids + (t * L + (size_t)lm) * (size_t)k;

			for (int i = 0; i < k; i++) {
				int q = i;

				while (q > 0 && id[bt[q - 1] % k] > id[i]) {
					bt[q] = bt[q - 1];
					q--;
				}
				bt[q] = (int64_t)(t * (size_t)k) + i;
			}
		}
		pthread_mutex_init(&ej.lock, NULL);
		r = 0;
		for (int e = 0; e < E; e++)
			if (start[e + 1] - start[e] > most)
				most = start[e + 1] - start[e];
		cap = EXPERT_OUT_FLOATS / (int64_t)H > most ? EXPERT_OUT_FLOATS / (int64_t)H : most;
		if (cap > start[E])
			cap = start[E];
		for (int i = 0; i < nt; i++) {
			ej.b[i].wgu = gw_malloc(2 * (size_t)ni * H * sizeof(float));
			ej.b[i].wd = gw_malloc((size_t)ni * H * sizeof(float));
			ej.b[i].X = gw_malloc(((size_t)most + 1) * H * sizeof(float));
			ej.b[i].gu = gw_malloc(((size_t)mlp_rows(most) + 1) * 2 * (size_t)ni *
					       sizeof(float));
			ej.b[i].act = gw_malloc(((size_t)mlp_rows(most) + 1) * (size_t)ni *
						sizeof(float));
			if (f->amx) {
				ej.b[i].raw = gw_malloc(2 * (size_t)ni * H * sizeof(uint16_t));
				ej.b[i].rows = gw_malloc(((size_t)most + 1) * sizeof(int64_t));
			}
		}
		ej.out = gw_malloc(((size_t)cap + 1) * H * sizeof(float));
		for (int e0 = 0, e1; e0 < E && r == 0; e0 = e1) {
			struct scatter_job sj;

			for (e1 = e0 + 1; e1 < E && start[e1 + 1] - start[e0] <= cap; e1++)
				;
			/* The wave's experts longest first (ties by expert). */
			for (int e = e0; e < e1; e++) {
				int q = e - e0;

				while (q > 0 && start[order[q - 1] + 1] - start[order[q - 1]] <
							start[e + 1] - start[e]) {
					order[q] = order[q - 1];
					q--;
				}
				order[q] = e;
			}
			ej.e0 = e0;
			ej.u0 = 0;
			ej.rc = 0;
			if ((r = cancelled(f)) < 0)
				break;
			par_units(f, e1 - e0, expert_unit, &ej);
			if (ej.rc < 0) {
				r = gw_errf(f->err, ej.rc, "%s", ej.msg);
				break;
			}
			f->st.load_sec += ej.load_sec / nt;
			f->st.load_bytes += ej.load_bytes;
			ej.load_sec = ej.load_bytes = 0;
			sj = (struct scatter_job){ f, rt, by, pos, ej.out, start[e0], L, (size_t)lm,
						   k, e0, e1 };
			par_rows(f, f->T, scatter_rows, &sj);
		}
		for (int i = 0; i < nt; i++) {
			free(ej.b[i].wgu);
			free(ej.b[i].wd);
			free(ej.b[i].X);
			free(ej.b[i].gu);
			free(ej.b[i].act);
			free(ej.b[i].raw);
			free(ej.b[i].rows);
			amx_w_free(&ej.b[i].pgu);
			amx_w_free(&ej.b[i].pd);
			amx_a_free(&ej.b[i].ax);
			amx_a_free(&ej.b[i].aact);
		}
		free(ej.out);
		free(order);
		free(pos);
		free(by);
		pthread_mutex_destroy(&ej.lock);
		if (r < 0)
			goto out;
	}
	if (m->shared_intermediate > 0 && (r = shared_expert(f, l, &w)) < 0)
		goto out;
	residual(f, NULL);
	r = 0;
out:
	free(z);
	free(X);
	free(gu);
	free(act);
	free(out);
	free(cnt);
	free(start);
	free(slot);
	moe_w_release(&w);
	return r;
}

/* ---- head and loss -------------------------------------------------- */

/*
 * The vocabulary head as units of work: unit u is vocabulary rows
 * [u*HEAD_SLICE, ...) of the lm_head.  A unit reads and converts its rows
 * into its thread's buffer, then, HEAD_ROWS token rows at a time, takes
 * their logits for the slice in one product (a tile that stays in the
 * core's cache) and folds each row into the slice's max and sum of
 * exponentials (and the label's logit, when the label is in the slice).
 * The slices' partials are combined per row in slice order afterwards, so
 * the loss does not depend on the threads, and the logits never need more
 * than a tile a thread.
 */
struct head_job {
	struct fwd *f;
	const char *name;      /* the lm_head (or tied embedding) tensor */
	const float *Xl;       /* [n, H] the rows that predict a next token */
	const int32_t *label;  /* [n] */
	int64_t n, V;
	float *W[THREADS_MAX], *Z[THREADS_MAX]; /* a thread's slice and tile */
	/* The AMX path: Xl split once, a thread's BF16 slice and its tiles. */
	const struct amx_a *ax;
	uint16_t *raw[THREADS_MAX];
	struct amx_w pw[THREADS_MAX];
	float *mx;             /* [slices, n] a slice's max logit of each row */
	double *sum;           /* [slices, n] its sum of exp(logit - max) */
	float *target;         /* [n] the label's logit */
	pthread_mutex_t lock;
	int rc;
	struct gw_err err;
	double load_sec;
};

static void head_unit(void *ud, int tid, int64_t u, struct gacc *acc)
{
	struct head_job *j = ud;
	int64_t H = j->f->H, v0 = u * HEAD_SLICE, cnt = j->V - v0 < HEAD_SLICE ? j->V - v0 : HEAD_SLICE;
	float *W = j->W[tid], *Z = j->Z[tid];
	struct gw_err err = { "" };
	double t0 = now_sec();
	int r = j->ax ? ckpt_read_rows_bf16(j->f->c, j->name, v0, cnt, j->raw[tid], &err)
		      : ckpt_read_rows_f32(j->f->c, j->name, v0, cnt, W, &err);

	t0 = now_sec() - t0;
	pthread_mutex_lock(&j->lock);
	j->load_sec += t0;
	if (r < 0 && j->rc == 0) {
		j->rc = r;
		j->err = err;
	}
	pthread_mutex_unlock(&j->lock);
	if (r < 0)
		return;
	if (j->ax)
		amx_w_pack(&j->pw[tid], j->raw[tid], (int)cnt, (int)H);
	for (int64_t r0 = 0; r0 < j->n; r0 += HEAD_ROWS) {
		int64_t m = j->n - r0 < HEAD_ROWS ? j->n - r0 : HEAD_ROWS;

		if (j->ax)
			amx_acc(acc, Z, cnt, j->ax, (int)m, &j->pw[tid], (int)r0);
		else
			gemm_acc(acc, true, m, cnt, H, 1.0f, j->Xl + r0 * H, H, W, H, 0.0f, Z,
				 cnt);
		for (int64_t i = 0; i < m; i++) {
			const float *z = Z + i * cnt;
			int64_t row = r0 + i, lab = j->label[row];
			float bm = vec_max(z, cnt);

			j->mx[u * j->n + row] = bm;
			j->sum[u * j->n + row] = vec_sum_exp(z, cnt, bm);
			if (lab >= v0 && lab < v0 + cnt)
				j->target[row] = z[lab - v0];
		}
	}
}

/* Per row: the slices' partials into the first slice's, in slice order
 * (the running max and the sum rescaled to it). */
struct head_fold {
	float *mx;
	double *sum;
	int64_t n, slices;
};

static void head_fold_rows(void *ud, int64_t i0, int64_t i1)
{
	const struct head_fold *j = ud;

	for (int64_t i = i0; i < i1; i++) {
		float m = j->mx[i];
		double s = j->sum[i];

		for (int64_t u = 1; u < j->slices; u++) {
			float bm = j->mx[u * j->n + i];
			double bs = j->sum[u * j->n + i];

			if (bm > m) {
				s = s * exp((double)m - bm) + bs;
				m = bm;
			} else {
				s += bs * exp((double)bm - m);
			}
		}
		j->mx[i] = m;
		j->sum[i] = s;
	}
}

/*
 * Final norm, then the lm_head over the tokens that have a next token (see
 * head_unit); the loss of a sample is the mean over its positions 1..n-1
 * of logsumexp(logits) - logit[next token].
 */
static int head(struct fwd *f, struct routing *rt)
{
	const struct model_desc *m = f->m;
	size_t H = (size_t)f->H;
	int64_t n = f->T - f->p->n_samples, V = m->vocab, row = 0, slices;
	float *norm = NULL, *Xl = NULL, *mx = NULL, *target = NULL;
	double *sum = NULL;
	int32_t *label = NULL;
	bool tw;
	int64_t shape[2];
	int ndim = 0, nt;
	char name[ST_NAME_MAX];
	struct head_job hj;
	int r;

	if ((r = load_new(f, MT_FINAL_NORM, 0, 0, H, false, &norm)) < 0)
		goto out;
	rmsnorm(f, f->x, f->xn, f->T, f->H, f->H, 1, norm);
	if (n == 0)
		goto loss;

	/* The rows that predict a next token, and their labels. */
	Xl = gw_malloc((size_t)n * H * sizeof(float));
	label = gw_malloc((size_t)n * sizeof(int32_t));
	for (int i = 0; i < f->p->n_samples; i++) {
		const struct probe_sample *s = &f->p->samples[i];

		memcpy(Xl + (size_t)row * H, f->xn + (size_t)f->off[i] * H,
		       (size_t)(s->ntokens - 1) * H * sizeof(float));
		for (int t = 0; t + 1 < s->ntokens; t++, row++)
			label[row] = s->tokens[t + 1];
	}

	/* Tied embeddings: the lm_head is embed_tokens when the config ties
	 * them or no lm_head.weight is stored. */
	tw = false;
	if (!m->tie_embeddings && model_tensor_name(m, MT_LM_HEAD, 0, 0, name, sizeof(name)) == 0)
		tw = ckpt_shape(f->c, name, shape, &ndim) == 0;
	if (!tw && model_tensor_name(m, MT_EMBED, 0, 0, name, sizeof(name)) == 0)
		tw = ckpt_shape(f->c, name, shape, &ndim) == 0;
	if (!tw) {
		r = gw_errf(f->err, -ENOENT, "\"%s\": no lm_head or embedding tensor",
			    ckpt_dir(f->c));
		goto out;
	}
	if (ndim != 2 || shape[0] != V || shape[1] != (int64_t)H) {
		r = gw_errf(f->err, -EBADMSG, "\"%s\": tensor \"%s\" is not [%d, %d]",
			    ckpt_dir(f->c), name, m->vocab, f->H);
		goto out;
	}
	if ((r = cancelled(f)) < 0)
		goto out;
	slices = (V + HEAD_SLICE - 1) / HEAD_SLICE;
	mx = gw_malloc((size_t)(slices * n) * sizeof(float));
	sum = gw_malloc((size_t)(slices * n) * sizeof(double));
	target = gw_malloc((size_t)n * sizeof(float));
	for (int64_t i = 0; i < n; i++)
		target[i] = NAN;
	hj = (struct head_job){ .f = f, .name = name, .Xl = Xl, .label = label, .n = n, .V = V,
				.mx = mx, .sum = sum, .target = target };
	nt = unit_threads(f, slices);
	if (f->amx && ckpt_bf16(f->c, name)) {
		/* Into the pass's split buffer (the layers' is no longer needed),
		 * by the pass's threads. */
		struct amx_job aj = { .f = f, .X = Xl, .ldx = (int64_t)H, .T = n };

		amx_a_reserve(&f->ax, (int)n, (int)H);
		par_rows(f, n, amx_split_rows, &aj);
		hj.ax = &f->ax;
	}
	for (int i = 0; i < nt; i++) {
		if (hj.ax)
			hj.raw[i] = gw_malloc((size_t)HEAD_SLICE * H * sizeof(uint16_t));
		else
			hj.W[i] = gw_malloc((size_t)HEAD_SLICE * H * sizeof(float));
		hj.Z[i] = gw_malloc((size_t)HEAD_ROWS * HEAD_SLICE * sizeof(float));
	}
	pthread_mutex_init(&hj.lock, NULL);
	par_units(f, slices, head_unit, &hj);
	pthread_mutex_destroy(&hj.lock);
	for (int i = 0; i < nt; i++) {
		free(hj.W[i]);
		free(hj.Z[i]);
		free(hj.raw[i]);
		amx_w_free(&hj.pw[i]);
	}
	f->st.load_sec += hj.load_sec / nt;
	f->st.load_bytes += (double)V * (double)H * sizeof(float);
	if (hj.rc < 0) {
		if (f->err)
			*f->err = hj.err;
		r = hj.rc;
		goto out;
	}
	par_rows(f, n, head_fold_rows, &(struct head_fold){ mx, sum, n, slices });

loss:
	row = 0;
	for (int i = 0; i < f->p->n_samples; i++) {
		int len = f->p->samples[i].ntokens;
		double nll = 0.0;

		if (len < 2)
			continue; /* stays NaN: no next token to predict */
		for (int t = 0; t + 1 < len; t++, row++)
			nll += (double)mx[row] + log(sum[row]) - (double)target[row];
		rt->loss[i] = (float)(nll / (len - 1));
	}
	r = 0;
out:
	free(norm);
	free(Xl);
	free(mx);
	free(sum);
	free(target);
	free(label);
	return r;
}

/* ---- the pass ------------------------------------------------------- */

static int embed(struct fwd *f)
{
	int64_t shape[2];
	int ndim = 0;
	char name[ST_NAME_MAX];
	int r;

	if ((r = model_tensor_name(f->m, MT_EMBED, 0, 0, name, sizeof(name))) < 0 ||
	    ckpt_shape(f->c, name, shape, &ndim) < 0)
		return gw_errf(f->err, -ENOENT, "\"%s\": no embedding tensor", ckpt_dir(f->c));
	if (ndim != 2 || shape[0] != f->m->vocab || shape[1] != f->H)
		return gw_errf(f->err, -EBADMSG, "\"%s\": tensor \"%s\" is not [%d, %d]",
			       ckpt_dir(f->c), name, f->m->vocab, f->H);
	for (int i = 0; i < f->p->n_samples; i++) {
		const struct probe_sample *s = &f->p->samples[i];

		for (int t = 0; t < s->ntokens; t++) {
			float *row = f->x + (size_t)(f->off[i] + t) * (size_t)f->H;

			if ((r = ckpt_read_rows_f32(f->c, name, s->tokens[t], 1, row, f->err)) < 0)
				return r;
		}
	}
	return 0;
}

static void fwd_release(struct fwd *f)
{
	amx_a_free(&f->ax);
	free(f->off);
	free(f->x);
	free(f->xn);
	free(f->y);
	free(f->qkv);
	free(f->att);
	free(f->rope_cos);
	free(f->rope_sin);
}

static int setup(struct fwd *f, struct gw_err *err)
{
	const struct model_desc *m = f->m;
	const struct probe *p = f->p;
	size_t T;
	int r;

	if (p->n_samples <= 0)
		return gw_errf(err, -EINVAL, "the probe set has no samples");
	if ((r = probe_check_vocab(p, m->vocab, err)) < 0)
		return r;
	if (m->n_heads <= 0 || m->n_kv_heads <= 0 || m->n_heads % m->n_kv_heads != 0 ||
	    m->head_dim <= 0 || m->rope_dim < 2 || m->rope_dim % 2 != 0 ||
	    m->rope_dim > (m->attn == ATTN_MLA ? m->qk_rope_dim : m->head_dim) ||
	    (m->attn == ATTN_MLA && m->n_kv_heads != m->n_heads) ||
	    m->n_experts > UINT16_MAX + 1 || m->top_k <= 0 || m->top_k > m->n_experts ||
	    (m->router == ROUTER_SIGMOID &&
	     (m->n_group <= 0 || m->n_experts % m->n_group != 0 || m->n_experts / m->n_group < 2 ||
	      m->topk_group <= 0 || m->topk_group > m->n_group)))
		return gw_errf(err, -EINVAL, "\"%s\": unsupported shape (heads %d, kv heads %d, "
			       "head_dim %d, rotary %d, experts %d, top-k %d, groups %d of %d)",
			       ckpt_dir(f->c), m->n_heads, m->n_kv_heads, m->head_dim, m->rope_dim,
			       m->n_experts, m->top_k, m->topk_group, m->n_group);
	f->off = gw_malloc(((size_t)p->n_samples + 1) * sizeof(int64_t));
	f->off[0] = 0;
	for (int i = 0; i < p->n_samples; i++) {
		int n = p->samples[i].ntokens;

		if (n <= 0 || n > PROBE_SAMPLE_MAX)
			return gw_errf(err, -EINVAL, "probe sample %d has %d tokens", i, n);
		f->off[i + 1] = f->off[i] + n;
		if (f->off[i + 1] > FORWARD_TOKENS_MAX)
			return gw_errf(err, -EINVAL, "the probe set has more than %d tokens",
				       FORWARD_TOKENS_MAX);
		if (n > f->max_len)
			f->max_len = n;
	}
	f->T = f->off[p->n_samples];
	f->H = m->hidden;
	f->nh = m->n_heads;
	f->nkv = m->n_kv_heads;
	f->dq = m->head_dim;
	f->dv = m->attn == ATTN_MLA ? m->v_head_dim : m->head_dim;
	f->rd = m->rope_dim;
	f->qdim = f->nh * f->dq;
	f->kdim = f->nkv * f->dq;
	f->vdim = f->nkv * f->dv;
	f->odim = f->nh * f->dv;
	f->qkvdim = f->qdim + f->kdim + f->vdim;
	T = (size_t)f->T;
	f->x = gw_malloc(T * (size_t)f->H * sizeof(float));
	f->xn = gw_malloc(T * (size_t)f->H * sizeof(float));
	f->y = gw_malloc(T * (size_t)f->H * sizeof(float));
	f->qkv = gw_malloc(T * (size_t)f->qkvdim * sizeof(float));
	f->att = gw_malloc(T * (size_t)f->odim * sizeof(float));
	rope_tables(f);
	return 0;
}

static struct routing *routing_for(const struct fwd *f)
{
	const struct model_desc *m = f->m;
	struct routing *rt = routing_new(f->p->n_samples, m->n_moe_layers, m->n_experts, m->top_k);

	rt->hidden = m->hidden;
	rt->arch = gw_strdup(m->arch_name);
	rt->checkpoint = gw_strdup(ckpt_dir(f->c));
	if (f->p->hash[0])
		rt->probe_hash = gw_strdup(f->p->hash);
	for (int i = 0; i < f->p->n_samples; i++) {
		const struct probe_sample *s = &f->p->samples[i];

		rt->ntokens[i] = s->ntokens;
		rt->groups[i] = gw_strdup(f->p->groups[s->group]);
		rt->ids[i] = gw_strdup(s->id ? s->id : "");
	}
	routing_alloc_tokens(rt);
	return rt;
}

/* OpenBLAS's own, exported by its pthread and OpenMP builds alike; weak,
 * so another BLAS without it still links. */
extern int blas_thread_shutdown_(void) __attribute__((weak));

void forward_blas_rest(void)
{
	if (blas_thread_shutdown_)
		blas_thread_shutdown_();
}

int forward_run(const struct ckpt *c, const struct probe *p, const struct forward_opts *o,
		struct routing **ret, struct gw_err *err)
{
	struct fwd f = { 0 };
	struct routing *rt = NULL;
	int32_t *pos = NULL;
	double t0 = now_sec(), t1;
	int r, blas;

	f.c = c;
	f.m = ckpt_model(c);
	f.p = p;
	f.err = err;
	f.cancel = o ? o->cancel : NULL;
	blas = openblas_get_num_threads();
	f.threads = o && o->threads > 0 ? o->threads : blas;
	/* One OpenBLAS thread for the pass: the engine splits the products
	 * (gemm above); the count it had is restored at the end.  Set only
	 * when it differs: each set starts OpenBLAS's workers again
	 * (forward_blas_rest). */
	if (blas != 1)
		openblas_set_num_threads(1);
	if (f.threads < 1)
		f.threads = 1;
	if (f.threads > THREADS_MAX)
		f.threads = THREADS_MAX;
	/* The pass frees and allocates the same large buffers layer after
	 * layer; glibc would map and unmap each one, and the page faults of
	 * mapping them again were a twentieth of the pass.  Large blocks come
	 * from the heap and are kept for the next layer, and what is free is
	 * handed back at the end (malloc_trim). */
	mallopt(M_MMAP_THRESHOLD, FWD_MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, FWD_TRIM_THRESHOLD);
	f.pool = pool_new(f.threads);
	f.amx = !(o && o->no_amx) && amx_usable();
	f.threads = pool_threads(f.pool);
	if ((r = setup(&f, err)) < 0)
		goto out;
	f.st.tokens = f.T;
	rt = routing_for(&f);
	pos = gw_malloc((size_t)f.T * sizeof(int32_t));
	for (int i = 0; i < p->n_samples; i++)
		for (int t = 0; t < p->samples[i].ntokens; t++)
			pos[f.off[i] + t] = t;

	if ((r = cancelled(&f)) < 0)
		goto out;
	t1 = now_sec();
	r = embed(&f);
	f.st.embed_sec += now_sec() - t1;
	if (r < 0)
		goto out;
	for (int l = 0; l < f.m->n_layers; l++) {
		if ((r = cancelled(&f)) < 0)
			goto out;
		t1 = now_sec();
		if (f.m->attn == ATTN_MLA)
			r = attention_mla(&f, l, pos);
		else
			r = attention(&f, l, pos);
		f.st.attn_sec += now_sec() - t1;
		if (r < 0)
			goto fail_layer;
		if ((r = cancelled(&f)) < 0)
			goto out;
		t1 = now_sec();
		if (f.m->layer_moe[l])
			r = moe_ffn(&f, l, rt);
		else
			r = dense_ffn(&f, l);
		f.st.ffn_sec += now_sec() - t1;
		if (r < 0)
			goto fail_layer;
		if (l + 1 < f.m->n_layers && o && o->progress)
			o->progress(o->ud, l + 1, f.m->n_layers);
		continue;
fail_layer:
		if (r != -ECANCELED)
			gw_err_prefix(err, r, "layer %d", l);
		goto out;
	}
	if ((r = cancelled(&f)) < 0)
		goto out;
	t1 = now_sec();
	r = head(&f, rt);
	f.st.head_sec += now_sec() - t1;
	if (r < 0)
		goto out;
	if (o && o->progress)
		o->progress(o->ud, f.m->n_layers, f.m->n_layers);
	*ret = rt;
	rt = NULL;
	r = 0;
out:
	if (blas != 1)
		openblas_set_num_threads(blas);
	f.st.total_sec = now_sec() - t0;
	if (o && o->stats)
		*o->stats = f.st;
	free(pos);
	routing_free(rt);
	fwd_release(&f);
	pool_free(f.pool);
	malloc_trim(0);
	return r;
}
