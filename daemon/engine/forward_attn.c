/*
 * forward_attn.c — the forward pass's attention blocks: grouped-query
 * attention (q|k|v in one product, QK-norm, bias, RoPE) and DeepSeek-V3's
 * multi-head latent attention, which builds the same q|k|v rows with one
 * key per head, so that one per-sample causal attention (each head of
 * each sample a unit of work) and o_proj serve both.
 */
#include "engine/forward_int.h"

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
	if ((r = fw_load_new(f, MT_ATTN_NORM, l, 0, H, false, &a->norm)) < 0 ||
	    (r = wmat_load(f, qkv, rq, 3, l, 0, (int64_t)H, &a->qkv)) < 0 ||
	    (r = wmat_load1(f, MT_O, l, (int64_t)H, (int64_t)q, &a->o)) < 0 ||
	    (r = fw_load_new(f, MT_O_BIAS, l, 0, H, true, &a->bo)) < 0 ||
	    (r = fw_load_new(f, MT_Q_BIAS, l, 0, q, true, &b[0])) < 0 ||
	    (r = fw_load_new(f, MT_K_BIAS, l, 0, kv, true, &b[1])) < 0 ||
	    (r = fw_load_new(f, MT_V_BIAS, l, 0, kv, true, &b[2])) < 0)
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
		if ((r = fw_load_new(f, MT_Q_NORM, l, 0, q, false, &a->qn)) < 0 ||
		    (r = fw_load_new(f, MT_K_NORM, l, 0, kv, false, &a->kn)) < 0)
			goto out;
	} else if (m->qk_norm == QK_NORM_HEAD) {
		if ((r = fw_load_new(f, MT_Q_NORM, l, 0, (size_t)f->dq, false, &a->qn)) < 0 ||
		    (r = fw_load_new(f, MT_K_NORM, l, 0, (size_t)f->dq, false, &a->kn)) < 0)
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
			fw_rmsnorm_row(q, j->a->qn, f->qdim, eps, q);
			fw_rmsnorm_row(k, j->a->kn, f->kdim, eps, k);
		} else if (m->qk_norm == QK_NORM_HEAD) {
			/* Qwen3, GLM: each head over head_dim, before RoPE. */
			for (int h = 0; h < f->nh; h++)
				fw_rmsnorm_row(q + h * d, j->a->qn, d, eps, q + h * d);
			for (int h = 0; h < f->nkv; h++)
				fw_rmsnorm_row(k + h * d, j->a->kn, d, eps, k + h * d);
		}
		if (m->clip_qkv > 0) {
			/* OLMoE clamps after the norm, q, k and v alike. */
			for (int i = 0; i < f->qkvdim; i++)
				q[i] = fminf(fmaxf(q[i], -clip), clip);
		}
		for (int h = 0; h < f->nh; h++)
			fw_rope_apply(f, q + h * d, j->pos[t]);
		for (int h = 0; h < f->nkv; h++)
			fw_rope_apply(f, k + h * d, j->pos[t]);
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

		fw_gemm_acc(acc, true, nq, nk, dq, scale, Q + (int64_t)i0 * ld, ld,
			    K + (int64_t)k0 * ld, ld, 0.0f, S, nk);
		attn_softmax(S, nq, nk, i0, k0, window);
		fw_gemm_acc(acc, false, nq, dv, nk, 1.0f, S, nk, V + (int64_t)k0 * ld, ld, 0.0f,
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
	int nt = fw_unit_threads(f, units), r;
	float *S[THREADS_MAX];
	struct attn_job j = { f, S };

	if ((r = fw_cancelled(f)) < 0)
		return r;
	for (int i = 0; i < nt; i++)
		S[i] = gw_malloc((size_t)ATTN_QBLOCK * (size_t)f->max_len * sizeof(float));
	fw_par_units(f, units, attn_unit, &j);
	for (int i = 0; i < nt; i++)
		free(S[i]);
	wmat_mul(f, f->att, f->odim, f->T, wo, f->y, f->H);
	fw_residual(f, bo);
	return 0;
}

int fw_attention(struct fwd *f, int l, const int32_t *pos)
{
	struct attn_w a;
	struct qkv_job qj;
	int r;

	if ((r = attn_w_load(f, l, &a)) < 0)
		return r;
	fw_rmsnorm(f, f->x, f->xn, f->T, f->H, f->H, 1, a.norm);
	wmat_mul(f, f->xn, f->H, f->T, &a.qkv, f->qkv, f->qkvdim);
	qj = (struct qkv_job){ f, &a, pos };
	fw_par_rows(f, f->T, qkv_rows, &qj);
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
	if ((r = fw_load_new(f, MT_ATTN_NORM, l, 0, (size_t)H, false, &a->norm)) < 0 ||
	    (r = wmat_load1(f, MT_KV_A, l, ka, H, &a->wkva)) < 0 ||
	    (r = fw_load_new(f, MT_KV_A_BIAS, l, 0, (size_t)ka, true, &a->bkva)) < 0 ||
	    (r = fw_load_new(f, MT_KV_A_NORM, l, 0, (size_t)kvr, false, &a->kvan)) < 0 ||
	    (r = wmat_load1(f, MT_KV_B, l, nh * (m->qk_nope_dim + f->dv), kvr, &a->wkvb)) < 0 ||
	    (r = wmat_load1(f, MT_O, l, H, f->odim, &a->wo)) < 0 ||
	    (r = fw_load_new(f, MT_O_BIAS, l, 0, (size_t)H, true, &a->bo)) < 0)
		goto out;
	if (qr == 0)
		r = wmat_load1(f, MT_Q, l, f->qdim, H, &a->wq);
	else if ((r = wmat_load1(f, MT_Q_A, l, qr, H, &a->wqa)) < 0 ||
		 (r = fw_load_new(f, MT_Q_A_BIAS, l, 0, (size_t)qr, true, &a->bqa)) < 0 ||
		 (r = fw_load_new(f, MT_Q_A_NORM, l, 0, (size_t)qr, false, &a->qan)) < 0)
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
			fw_rope_apply(f, q + (int64_t)h * dq + dn, j->pos[t]);
		memcpy(kr, j->ckv + t * ka + m->kv_lora_rank, (size_t)dr * sizeof(float));
		fw_rope_apply(f, kr, j->pos[t]);
		for (int h = 0; h < f->nh; h++) {
			memcpy(k + (int64_t)h * dq, kvb + h * kb, (size_t)dn * sizeof(float));
			memcpy(k + (int64_t)h * dq + dn, kr, (size_t)dr * sizeof(float));
			memcpy(v + (int64_t)h * dv, kvb + h * kb + dn, (size_t)dv * sizeof(float));
		}
	}
}

int fw_attention_mla(struct fwd *f, int l, const int32_t *pos)
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
	fw_rmsnorm(f, f->x, f->xn, T, H, (int)H, 1, a.norm);
	if (qr == 0) {
		wmat_mul(f, f->xn, H, T, &a.wq, f->qkv, f->qkvdim);
	} else {
		struct norm_job nj;

		qa = gw_malloc((size_t)T * (size_t)qr * sizeof(float));
		wmat_mul(f, f->xn, H, T, &a.wqa, qa, qr);
		add_bias(qa, T, qr, qr, a.bqa);
		nj = (struct norm_job){ qa, qa, a.qan, qr, (int)qr, 1, (float)m->mla_eps };
		fw_par_rows(f, T, fw_norm_rows, &nj);
		wmat_mul(f, qa, qr, T, &a.wqb, f->qkv, f->qkvdim);
	}
	ckv = gw_malloc((size_t)T * (size_t)ka * sizeof(float));
	wmat_mul(f, f->xn, H, T, &a.wkva, ckv, ka);
	add_bias(ckv, T, ka, ka, a.bkva);
	{
		/* kv_a_layernorm over the latent part, in place (the rotary
		 * key's dims after it are left as they are). */
		struct norm_job nj = { ckv, ckv, a.kvan, ka, (int)kvr, 1, (float)m->mla_eps };

		fw_par_rows(f, T, fw_norm_rows, &nj);
	}
	kvb = gw_malloc((size_t)T * (size_t)kb * sizeof(float));
	wmat_mul(f, ckv, ka, T, &a.wkvb, kvb, kb);
	mj = (struct mla_job){ f, ckv, kvb, pos };
	fw_par_rows(f, T, mla_rows, &mj);
	r = attn_finish(f, &a.wo, a.bo);
	free(qa);
	free(ckv);
	free(kvb);
	mla_w_release(&a);
	return r;
}
