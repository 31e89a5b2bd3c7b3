/*
 * forward_ffn.c — the forward pass's feed-forward blocks: the gated MLP
 * (dense layers, shared experts), and the MoE block: the router in fp32
 * with its per-token records (softmax, or the DeepSeek-V3 family's sigmoid
 * with correction bias and groups), the experts as units of work in waves
 * (their tokens gathered from every sample, on AMX where their weights are
 * BF16), and the weighted sum of each token's experts in expert order.
 */
#include "engine/forward_int.h"

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
		fw_par_rows(f, m, swiglu_rows, &j);
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

int fw_dense_ffn(struct fwd *f, int l)
{
	int ni = f->m->dense_intermediate;
	struct wmat wgu = { 0 }, wd = { 0 };
	size_t rows = (size_t)mlp_rows(f->T);
	float *gu = gw_malloc(rows * 2 * (size_t)ni * sizeof(float));
	float *act = gw_malloc(rows * (size_t)ni * sizeof(float));
	float *norm = NULL;
	int r;

	if ((r = fw_load_new(f, MT_FFN_NORM, l, 0, (size_t)f->H, false, &norm)) < 0 ||
	    (r = mlp_load(f, MT_DENSE_GATE, MT_DENSE_UP, MT_DENSE_DOWN, l, ni, &wgu, &wd)) < 0)
		goto out;
	fw_rmsnorm(f, f->x, f->xn, f->T, f->H, f->H, 1, norm);
	mlp(f, f->xn, f->T, &wgu, &wd, ni, gu, act, f->y);
	fw_residual(f, NULL);
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
	     (r = fw_load_new(f, MT_SHARED_EXPERT_GATE, l, 0, H, false, &w->sgate)) < 0))
		return r;
	gu = gw_malloc((size_t)mlp_rows(f->T) * 2 * (size_t)Is * sizeof(float));
	act = gw_malloc((size_t)mlp_rows(f->T) * (size_t)Is * sizeof(float));
	out = gw_malloc(T * H * sizeof(float));
	mlp(f, f->xn, f->T, &w->sgu, &w->sd, Is, gu, act, out);
	if (w->sgate) {
		sg = gw_malloc(T * sizeof(float));
		fw_linear(f, f->xn, f->T, f->H, w->sgate, 1, sg);
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
	t0 = fw_now_sec();
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
	t0 = fw_now_sec() - t0;
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

		fw_amx_acc(acc, b->gu, 2 * (int64_t)ni, &b->ax, (int)m, &b->pgu, (int)r0);
		swiglu_rows(&sj, 0, m);
		amx_a_split(&b->aact, b->act, (int)m, ni, ni);
		fw_amx_acc(acc, out, H, &b->aact, (int)m, &b->pd, 0);
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
	t0 = fw_now_sec();
	if ((r = expert_load(f, MT_EXPERT_GATE, j->l, e, b->wgu, cnt, &err)) < 0 ||
	    (r = expert_load(f, MT_EXPERT_UP, j->l, e, b->wgu + cnt, cnt, &err)) < 0 ||
	    (r = expert_load(f, MT_EXPERT_DOWN, j->l, e, b->wd, cnt, &err)) < 0) {
		job_fail(&j->lock, &j->rc, j->msg, r, &err);
		return;
	}
	t0 = fw_now_sec() - t0;
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

		fw_gemm_acc(acc, true, m, 2 * (int64_t)ni, H, 1.0f, b->X + r0 * H, H, b->wgu, H, 0.0f,
			    b->gu, 2 * (int64_t)ni);
		swiglu_rows(&sj, 0, m);
		fw_gemm_acc(acc, true, m, H, ni, 1.0f, b->act, ni, b->wd, ni, 0.0f, out + r0 * H, H);
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

int fw_moe_ffn(struct fwd *f, int l, struct routing *rt)
{
	const struct model_desc *m = f->m;
	int lm = m->moe_layer_index[l], E = m->n_experts, k = m->top_k, ni = m->moe_intermediate;
	size_t T = (size_t)f->T, H = (size_t)f->H, L = (size_t)rt->n_layers;
	struct moe_w w = { 0 };
	struct router_job rj;
	float *z = NULL, *X = NULL, *gu = NULL, *act = NULL, *out = NULL;
	int64_t *cnt = NULL, *start = NULL, *slot = NULL;
	int r;

	if ((r = fw_load_new(f, MT_FFN_NORM, l, 0, H, false, &w.norm)) < 0 ||
	    (r = fw_load_new(f, MT_ROUTER, l, 0, (size_t)E * H, false, &w.router)) < 0 ||
	    (m->router == ROUTER_SIGMOID &&
	     (r = fw_load_new(f, MT_ROUTER_BIAS, l, 0, (size_t)E, false, &w.bias)) < 0))
		goto out;
	fw_rmsnorm(f, f->x, f->xn, f->T, f->H, f->H, 1, w.norm);

	/* Router: all tokens in one product, then the per-token records. */
	z = gw_malloc(T * (size_t)E * sizeof(float));
	fw_linear(f, f->xn, f->T, f->H, w.router, E, z);
	rj = (struct router_job){ f, rt, z, lm, m->arch == ARCH_MIXTRAL || m->norm_topk_prob,
				  w.bias };
	fw_par_rows(f, f->T, m->router == ROUTER_SIGMOID ? router_sigmoid_rows : router_rows, &rj);
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
		int nt = fw_unit_threads(f, E);
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
			if ((r = fw_cancelled(f)) < 0)
				break;
			fw_par_units(f, e1 - e0, expert_unit, &ej);
			if (ej.rc < 0) {
				r = gw_errf(f->err, ej.rc, "%s", ej.msg);
				break;
			}
			f->st.load_sec += ej.load_sec / nt;
			f->st.load_bytes += ej.load_bytes;
			ej.load_sec = ej.load_bytes = 0;
			sj = (struct scatter_job){ f, rt, by, pos, ej.out, start[e0], L, (size_t)lm,
						   k, e0, e1 };
			fw_par_rows(f, f->T, scatter_rows, &sj);
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
	fw_residual(f, NULL);
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
