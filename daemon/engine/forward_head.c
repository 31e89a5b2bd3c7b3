/*
 * forward_head.c — the final norm, the vocabulary head in slices with the
 * softmax folded over each cached tile of logits, and each sample's loss.
 */
#include "engine/forward_int.h"

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
	double t0 = fw_now_sec();
	int r = j->ax ? ckpt_read_rows_bf16(j->f->c, j->name, v0, cnt, j->raw[tid], &err)
		      : ckpt_read_rows_f32(j->f->c, j->name, v0, cnt, W, &err);

	t0 = fw_now_sec() - t0;
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
			fw_amx_acc(acc, Z, cnt, j->ax, (int)m, &j->pw[tid], (int)r0);
		else
			fw_gemm_acc(acc, true, m, cnt, H, 1.0f, j->Xl + r0 * H, H, W, H, 0.0f, Z,
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
int fw_head(struct fwd *f, struct routing *rt)
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

	if ((r = fw_load_new(f, MT_FINAL_NORM, 0, 0, H, false, &norm)) < 0)
		goto out;
	fw_rmsnorm(f, f->x, f->xn, f->T, f->H, f->H, 1, norm);
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
	if ((r = fw_cancelled(f)) < 0)
		goto out;
	slices = (V + HEAD_SLICE - 1) / HEAD_SLICE;
	mx = gw_malloc((size_t)(slices * n) * sizeof(float));
	sum = gw_malloc((size_t)(slices * n) * sizeof(double));
	target = gw_malloc((size_t)n * sizeof(float));
	for (int64_t i = 0; i < n; i++)
		target[i] = NAN;
	hj = (struct head_job){ .f = f, .name = name, .Xl = Xl, .label = label, .n = n, .V = V,
				.mx = mx, .sum = sum, .target = target };
	nt = fw_unit_threads(f, slices);
	if (f->amx && ckpt_bf16(f->c, name)) {
		/* Into the pass's split buffer (the layers' is no longer needed),
		 * by the pass's threads. */
		struct amx_job aj = { .f = f, .X = Xl, .ldx = (int64_t)H, .T = n };

		amx_a_reserve(&f->ax, (int)n, (int)H);
		fw_par_rows(f, n, fw_amx_split_rows, &aj);
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
	fw_par_units(f, slices, head_unit, &hj);
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
	fw_par_rows(f, n, head_fold_rows, &(struct head_fold){ mx, sum, n, slices });

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
