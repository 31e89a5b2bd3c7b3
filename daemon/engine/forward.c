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
#include "engine/forward_int.h"

#include <malloc.h>
#include <time.h>

/* ---- bookkeeping ---------------------------------------------------- */



double fw_now_sec(void)
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

void fw_gemm_acc(struct gacc *a, bool transb, int64_t M, int64_t N, int64_t K, float alpha,
		 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
		 int64_t ldc)
{
	double t0;

	if (M == 0 || N == 0)
		return;
	t0 = fw_now_sec();
	cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, (int)M,
		    (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
	a->sec += fw_now_sec() - t0;
	a->flop += 2.0 * (double)M * (double)N * (double)K;
}

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
	fw_gemm_acc(acc, j->transb, m1 - m0, j->N, j->K, j->alpha, j->A + m0 * j->lda, j->lda, j->B,
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
void fw_gemm(struct fwd *f, bool transb, int64_t M, int64_t N, int64_t K, float alpha,
	     const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
	     int64_t ldc)
{
	struct gacc a = { 0, 0 };
	int64_t parts = M / GEMM_MIN_ROWS < f->threads ? M / GEMM_MIN_ROWS : f->threads;

	if (parts > 1) {
		struct gemm_job j = { transb, M, N, K, parts, alpha, beta, A, B, C, lda, ldb, ldc };

		fw_par_units(f, parts, gemm_part, &j);
		return;
	}
	fw_gemm_acc(&a, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
	f->st.gemm_sec += a.sec;
	f->st.gemm_flop += a.flop;
}

/* Y[T, N] = X[T, K] * W[N, K]^T: a linear layer without bias. */
void fw_linear(struct fwd *f, const float *X, int64_t T, int64_t K, const float *W, int64_t N,
	       float *Y)
{
	fw_gemm(f, true, T, N, K, 1.0f, X, K, W, K, 0.0f, Y, N);
}

int fw_cancelled(const struct fwd *f)
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

void fw_par_rows(const struct fwd *f, int64_t n, row_fn fn, void *ud)
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
int fw_unit_threads(const struct fwd *f, int64_t n)
{
	return n < f->threads ? (n < 1 ? 1 : (int)n) : f->threads;
}

void fw_par_units(struct fwd *f, int64_t n, unit_fn fn, void *ud)
{
	struct unit_run run = { .fn = fn, .ud = ud, .n = n };
	int nt = fw_unit_threads(f, n);
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


void fw_amx_split_rows(void *ud, int64_t i0, int64_t i1)
{
	const struct amx_job *j = ud;

	amx_a_split_part(&j->f->ax, j->X, j->ldx, (int)i0, (int)i1);
}

/* C[m, N] = A[m, K] W^T on AMX, rows [0, m) of a, with its time and FLOPs. */
void fw_amx_acc(struct gacc *acc, float *C, int64_t ldc, const struct amx_a *a, int m,
		const struct amx_w *w, int r0)
{
	double t0 = fw_now_sec();

	amx_gemm(C, ldc, a, r0, r0 + m, w);
	acc->sec += fw_now_sec() - t0;
	acc->flop += 2.0 * (double)m * (double)w->N * (double)w->K;
}


static void amx_unit(void *ud, int tid, int64_t u, struct gacc *acc)
{
	const struct amx_job *j = ud;
	int64_t r0 = u * AMX_ROWS, m = j->T - r0 < AMX_ROWS ? j->T - r0 : AMX_ROWS;

	(void)tid;
	fw_amx_acc(acc, j->Y + r0 * j->ldy, j->ldy, &j->f->ax, (int)m, j->w, (int)r0);
}

void fw_linear_amx(struct fwd *f, const float *X, int64_t ldx, int64_t T,
		   const struct amx_w *w, float *Y, int64_t ldy)
{
	struct amx_job j = { f, X, ldx, T, w, Y, ldy };

	amx_a_reserve(&f->ax, (int)T, w->K);
	fw_par_rows(f, T, fw_amx_split_rows, &j);
	fw_par_units(f, (T + AMX_ROWS - 1) / AMX_ROWS, amx_unit, &j);
}


/* ---- row kernels ---------------------------------------------------- */

/*
 * Hugging Face's RMSNorm in fp32: x * rsqrt(mean(x^2) + eps), then times the
 * weight.  The mean is summed in double (torch sums fp32 in a tree; double
 * is at least as close to the exact value).
 */
void fw_rmsnorm_row(const float *x, const float *w, int n, float eps, float *out)
{
	float var = (float)(vec_sumsq(x, n) / n);

	vec_rms_apply(out, x, w, 1.0f / sqrtf(var + eps), n);
}


void fw_norm_rows(void *ud, int64_t i0, int64_t i1)
{
	const struct norm_job *j = ud;

	for (int64_t i = i0; i < i1; i++)
		for (int g = 0; g < j->groups; g++)
			fw_rmsnorm_row(j->x + i * j->ld + (int64_t)g * j->n, j->w, j->n, j->eps,
				       j->out + i * j->ld + (int64_t)g * j->n);
}

void fw_rmsnorm(const struct fwd *f, const float *x, float *out, int64_t rows, int64_t ld,
		int n, int groups, const float *w)
{
	struct norm_job j = { x, out, w, ld, n, groups, (float)f->m->rms_eps };

	fw_par_rows(f, rows, fw_norm_rows, &j);
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

void fw_residual(const struct fwd *f, const float *b)
{
	struct residual_job j = { f->x, f->y, b, f->H };

	fw_par_rows(f, f->T, residual_rows, &j);
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
void fw_rope_apply(const struct fwd *f, float *v, int pos)
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
	double t0 = fw_now_sec(), t1;
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

	if ((r = fw_cancelled(&f)) < 0)
		goto out;
	t1 = fw_now_sec();
	r = embed(&f);
	f.st.embed_sec += fw_now_sec() - t1;
	if (r < 0)
		goto out;
	for (int l = 0; l < f.m->n_layers; l++) {
		if ((r = fw_cancelled(&f)) < 0)
			goto out;
		t1 = fw_now_sec();
		if (f.m->attn == ATTN_MLA)
			r = fw_attention_mla(&f, l, pos);
		else
			r = fw_attention(&f, l, pos);
		f.st.attn_sec += fw_now_sec() - t1;
		if (r < 0)
			goto fail_layer;
		if ((r = fw_cancelled(&f)) < 0)
			goto out;
		t1 = fw_now_sec();
		if (f.m->layer_moe[l])
			r = fw_moe_ffn(&f, l, rt);
		else
			r = fw_dense_ffn(&f, l);
		f.st.ffn_sec += fw_now_sec() - t1;
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
	if ((r = fw_cancelled(&f)) < 0)
		goto out;
	t1 = fw_now_sec();
	r = fw_head(&f, rt);
	f.st.head_sec += fw_now_sec() - t1;
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
	f.st.total_sec = fw_now_sec() - t0;
	if (o && o->stats)
		*o->stats = f.st;
	free(pos);
	routing_free(rt);
	fwd_release(&f);
	pool_free(f.pool);
	malloc_trim(0);
	return r;
}
