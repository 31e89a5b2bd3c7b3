/*
 * forward_weights.c — the forward pass's weights: a tensor read as fp32
 * (split by rows over the pass's threads), and struct wmat, a linear
 * layer's weight as fp32 or, where the pass runs on AMX and the checkpoint
 * stores it as BF16, packed into tiles (amx.h), several tensors stacked
 * into one where a layer multiplies them together (q|k|v, gate|up).
 */
#include "engine/forward_int.h"

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
	fw_par_rows(f, nrows, read_rows, &j);
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
int fw_load(struct fwd *f, enum model_tensor kind, int layer, int expert, float *out,
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
	t0 = fw_now_sec();
	{
		int64_t shape[2];
		int ndim = 0;

		if (ckpt_shape(f->c, name, shape, &ndim) == 0 && ndim == 2 &&
		    (uint64_t)shape[0] * (uint64_t)shape[1] == (uint64_t)count)
			r = read_rows_par(f, name, 0, shape[0], shape[1], out);
		else
			r = ckpt_read_f32(f->c, name, out, count, f->err);
	}
	f->st.load_sec += fw_now_sec() - t0;
	if (r < 0)
		return r;
	f->st.load_bytes += (double)count * sizeof(float);
	return 0;
}

/* Allocate and load; NULL in *ret when optional and absent. */
int fw_load_new(struct fwd *f, enum model_tensor kind, int layer, int expert, size_t count,
		bool optional, float **ret)
{
	float *w = gw_malloc(count * sizeof(float));
	int r = fw_load(f, kind, layer, expert, w, count, optional);

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
	t0 = fw_now_sec();
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
	f->st.load_sec += fw_now_sec() - t0;
	f->st.load_bytes += (double)total * (double)K * sizeof(uint16_t);
	return true;
}

void wmat_free(struct wmat *w)
{
	free(w->f);
	amx_w_free(&w->a);
	memset(w, 0, sizeof(*w));
}

/* Tensors kinds[0..n) of layer l (expert e), rows[i] rows of K each,
 * stacked. */
int wmat_load(struct fwd *f, const enum model_tensor *kinds, const int64_t *rows, int n,
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
		r = fw_load(f, kinds[i], l, e, w->f + N * K, (size_t)(rows[i] * K), false);
		if (r < 0) {
			wmat_free(w);
			return r;
		}
		N += rows[i];
	}
	return 0;
}

int wmat_load1(struct fwd *f, enum model_tensor kind, int l, int64_t N, int64_t K,
	       struct wmat *w)
{
	return wmat_load(f, &kind, &N, 1, l, 0, K, w);
}

/* Y[T, N] = X[T, K] W^T, row strides ldx and ldy. */
void wmat_mul(struct fwd *f, const float *X, int64_t ldx, int64_t T, const struct wmat *w,
	      float *Y, int64_t ldy)
{
	if (w->f)
		fw_gemm(f, true, T, w->N, w->K, 1.0f, X, ldx, w->f, w->K, 0.0f, Y, ldy);
	else
		fw_linear_amx(f, X, ldx, T, &w->a, Y, ldy);
}
