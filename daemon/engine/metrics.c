/*
 * metrics.c — routing metrics of one checkpoint (metrics.h states every
 * definition).
 *
 * Divided into: options; grouping samples by name; per-sample consistency
 * (one sgemm a layer, then cosines of consecutive layers); the metrics of
 * sets of samples, each distinct set's distance computed once (and the
 * distance cache that carries them to the republished memorized subsets);
 * routing health and churn from the per-token records; metrics_compute,
 * which ties them together per group; and the JSON.
 */
#include "engine/metrics.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/levenshtein.h"
#include "engine/pathway.h"

/* ---- options -------------------------------------------------------------- */

void metrics_opts_init(struct metrics_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->tau = PATHWAY_TAU_DEFAULT;
	o->pair_budget = LEV_DEFAULT_BUDGET;
	o->epsilon = METRICS_EPSILON_DEFAULT;
	o->delta = METRICS_DELTA_DEFAULT;
	o->memorized_share = METRICS_MEMORIZED_SHARE_DEFAULT;
	o->per_layer = true;
	o->consistency_floor = METRICS_CONSISTENCY_FLOOR;
}

double metrics_epsilon_for(const struct metrics_opts *o, const char *group)
{
	for (int i = 0; i < o->n_eps_groups; i++)
		if (strcmp(o->eps_groups[i].group, group) == 0)
			return o->eps_groups[i].epsilon;
	return o->epsilon;
}

static int by_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static bool epsilon_ok(double e)
{
	return e == METRICS_EPSILON_AUTO || (e >= 0 && isfinite(e));
}

int metrics_opts_check(const struct metrics_opts *o, struct gw_err *err)
{
	if (!(o->tau > 0 && o->tau <= 1))
		return gw_errf(err, -EINVAL, "\"tau\": %g is outside (0, 1]", o->tau);
	if (o->pair_budget < 1 || o->pair_budget > LEV_MAX_BUDGET)
		return gw_errf(err, -EINVAL, "\"pair_budget\": %llu is outside 1 .. %llu",
			       (unsigned long long)o->pair_budget,
			       (unsigned long long)LEV_MAX_BUDGET);
	if (!(o->delta >= 0) || !isfinite(o->delta))
		return gw_errf(err, -EINVAL, "\"delta\": %g is not a finite number >= 0", o->delta);
	if (!epsilon_ok(o->epsilon))
		return gw_errf(err, -EINVAL, "\"epsilon\": %g is neither a number >= 0 nor auto",
			       o->epsilon);
	for (int i = 0; i < o->n_eps_groups; i++)
		if (!epsilon_ok(o->eps_groups[i].epsilon))
			return gw_errf(err, -EINVAL,
				       "\"epsilon\" of group \"%s\": %g is neither a number >= 0 nor auto",
				       o->eps_groups[i].group, o->eps_groups[i].epsilon);
	if (!(o->memorized_share > 0 && o->memorized_share <= 1))
		return gw_errf(err, -EINVAL, "\"memorized_share\": %g is outside (0, 1]",
			       o->memorized_share);
	if (!(o->consistency_floor >= 0 && o->consistency_floor < 1))
		return gw_errf(err, -EINVAL, "\"consistency_floor\": %g is outside [0, 1)",
			       o->consistency_floor);
	return 0;
}

/* ---- epsilon ---------------------------------------------------------------- */

double metrics_epsilon_auto(const float *loss, const int *idx, int n, double share)
{
	double *v, x, k;
	int nf = 0, need;

	if (n <= 0)
		return NAN;
	/* ceil(share * n) without 0.2 * 10 turning into 3 */
	need = (int)ceil(share * n - 1e-9);
	if (need < 1)
		need = 1;
	v = gw_malloc((size_t)n * sizeof(double));
	for (int j = 0; j < n; j++) {
		float l = loss[idx ? idx[j] : j];

		if (isfinite(l))
			v[nf++] = l;
	}
	if (nf < need) {
		free(v);
		return NAN;
	}
	qsort(v, (size_t)nf, sizeof(double), by_double);
	x = v[need - 1];
	free(v);
	/* The smallest k >= 1 with x <= k * 0.1, exactly as the comparison
	 * loss <= epsilon will be made (k * 0.1 in double). */
	k = fmax(1, ceil(x / METRICS_EPSILON_GRID));
	while (k > 1 && (k - 1) * METRICS_EPSILON_GRID >= x)
		k--;
	while (k * METRICS_EPSILON_GRID < x)
		k++;
	return k * METRICS_EPSILON_GRID;
}

void metrics_epsilons(const struct metrics_opts *o, const char *const *names, int ng,
		      const int *gid, const float *latest, int N, double *eps)
{
	int *idx = NULL;

	for (int g = 0; g < ng; g++) {
		int n = 0;

		eps[g] = metrics_epsilon_for(o, names[g]);
		if (eps[g] != METRICS_EPSILON_AUTO)
			continue;
		if (!idx)
			idx = gw_malloc(((size_t)N + 1) * sizeof(int));
		for (int i = 0; i < N; i++)
			if (gid[i] == g)
				idx[n++] = i;
		eps[g] = metrics_epsilon_auto(latest, idx, n, o->memorized_share);
	}
	free(idx);
}

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- groups --------------------------------------------------------------- */

struct name_ref {
	const char *name;
	int idx;
};

static int by_name_then_index(const void *a, const void *b)
{
	const struct name_ref *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

void metrics_groups(char *const *groups, int n, const char ***ret_names, int *ret_ng,
		    int **ret_gid)
{
	struct name_ref *refs = gw_calloc((size_t)n + 1, sizeof(*refs));
	int *first = gw_calloc((size_t)n + 1, sizeof(int)); /* first sample of each run */
	int *gid = gw_calloc((size_t)n + 1, sizeof(int));
	int *rank = gw_calloc((size_t)n + 1, sizeof(int));
	const char **names;
	int runs = 0, ng = 0;

	for (int i = 0; i < n; i++)
		refs[i] = (struct name_ref){ groups[i] ? groups[i] : "", i };
	qsort(refs, (size_t)n, sizeof(*refs), by_name_then_index);
	/* Each run of equal names starts at its first appearance (ties broken
	 * by index); number the runs in order of that first appearance. */
	for (int i = 0; i < n; i++) {
		if (i == 0 || strcmp(refs[i].name, refs[i - 1].name) != 0)
			first[runs++] = refs[i].idx;
		gid[refs[i].idx] = runs - 1; /* run number for now */
	}
	/* rank[i] = the run whose first sample is i, or -1; walking the
	 * samples in order then meets the runs in order of first appearance. */
	for (int i = 0; i < n; i++)
		rank[i] = -1;
	for (int i = 0; i < runs; i++)
		rank[first[i]] = i;
	names = gw_calloc((size_t)runs + 1, sizeof(*names));
	{
		int *order = gw_calloc((size_t)runs + 1, sizeof(int));

		for (int i = 0; i < n; i++) {
			if (rank[i] >= 0) {
				order[rank[i]] = ng;
				names[ng++] = groups[i] ? groups[i] : "";
			}
		}
		for (int i = 0; i < n; i++)
			gid[i] = order[gid[i]];
		free(order);
	}
	free(refs);
	free(first);
	free(rank);
	*ret_names = names;
	*ret_ng = ng;
	*ret_gid = gid;
}

/* ---- consistency ---------------------------------------------------------- */

void metrics_cons_free(struct metrics_cons *c)
{
	if (!c)
		return;
	free(c->c);
	free(c->adj);
	free(c);
}

/* e[i][:] = W^T gbar[i][l] for every sample: [N,E] (rows strided by L*E in
 * gbar) x [E,H]. */
static void embed_layer(const struct routing *r, int l, float *e)
{
	int N = r->n_samples, E = r->n_experts, H = r->hidden, L = r->n_layers;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, H, E, 1.0f,
		    r->gbar + (size_t)l * (size_t)E, L * E, r->router[l], H, 0.0f, e, H);
}

int metrics_consistency(const struct routing *r, double floor, struct metrics_cons **ret,
			struct gw_err *err)
{
	struct metrics_cons *c = gw_calloc(1, sizeof(*c));
	int N = r->n_samples, L = r->n_layers, H = r->hidden;
	float *a = NULL, *b = NULL;
	double *na = NULL, *nb = NULL, *sum = NULL, *mx = NULL;

	c->n_samples = N;
	if (L < METRICS_CONSISTENCY_MIN_LAYERS) {
		c->note = L < 2 ? "fewer than 2 MoE layers: no consecutive layers to compare"
				: "2 MoE layers: one adjacent cosine, so C = 1 - c/c = 0 whatever the "
				  "routing; consistency needs at least 3";
		goto done;
	}
	for (int l = 0; l < L; l++) {
		if (H <= 0 || !r->router[l]) {
			c->note = "no router weights";
			goto done;
		}
	}
	if ((int64_t)L * r->n_experts > INT_MAX || N < 0) {
		metrics_cons_free(c);
		return gw_errf(err, -EINVAL, "\"routing\": %d layers of %d experts do not fit BLAS",
			       L, r->n_experts);
	}
	c->c = gw_calloc((size_t)N + 1, sizeof(double));
	c->adj = gw_calloc((size_t)N + 1, sizeof(double));
	if (N == 0)
		goto done;
	a = gw_malloc((size_t)N * (size_t)H * sizeof(float));
	b = gw_malloc((size_t)N * (size_t)H * sizeof(float));
	na = gw_calloc((size_t)N, sizeof(double));
	nb = gw_calloc((size_t)N, sizeof(double));
	sum = gw_calloc((size_t)N, sizeof(double));
	mx = gw_calloc((size_t)N, sizeof(double));
	for (int i = 0; i < N; i++)
		mx[i] = -INFINITY;
	embed_layer(r, 0, a);
	/* Dots and norms through BLAS too: its kernels keep many partial sums
	 * in vector registers (a plain loop in double was a third of the
	 * time); float partial sums over H terms err by ~1e-6 relative. */
	for (int i = 0; i < N; i++) {
		const float *v = a + (size_t)i * (size_t)H;

		na[i] = sqrt(fmax(0.0, (double)cblas_sdot(H, v, 1, v, 1)));
	}
	for (int l = 0; l + 1 < L; l++) {
		float *t;
		double *tn;

		embed_layer(r, l + 1, b);
		for (int i = 0; i < N; i++) {
			const float *x = a + (size_t)i * (size_t)H, *y = b + (size_t)i * (size_t)H;
			double dot = cblas_sdot(H, x, 1, y, 1), cs = 0;

			nb[i] = sqrt(fmax(0.0, (double)cblas_sdot(H, y, 1, y, 1)));
			if (na[i] > 0 && nb[i] > 0)
				cs = dot / (na[i] * nb[i]);
			sum[i] += cs;
			if (cs > mx[i])
				mx[i] = cs;
		}
		t = a, a = b, b = t;
		tn = na, na = nb, nb = tn;
	}
	for (int i = 0; i < N; i++) {
		double mean = sum[i] / (L - 1);

		c->adj[i] = mean;
		c->c[i] = mx[i] > floor ? 1 - mean / (mx[i] + METRICS_EPS_COS) : NAN;
	}
done:
	free(a);
	free(b);
	free(na);
	free(nb);
	free(sum);
	free(mx);
	*ret = c;
	return 0;
}

/* ---- one set -------------------------------------------------------------- */

/* The set metrics of out from its distance (m, and lm [L] or NULL), its
 * samples' consistency and loss. */
static void set_fill(const struct metrics_cons *cons, const float *loss, const int *idx, int n,
		     const struct lev_mean *m, const struct lev_mean *lm, int L,
		     struct metrics_set *out)
{
	struct metrics_set s = { .n_samples = n, .epsilon = NAN };
	double csum = 0, asum = 0, lsum = 0;
	int nc = 0, nl = 0;

	s.pathway_distance = m->mean;
	s.pathway_distance_stderr = m->n_pairs ? m->std_error : NAN;
	s.pathway_distance_se = m->jackknife_se;
	s.n_pairs = m->n_pairs;
	s.sampled = m->sampled;
	if (lm) {
		s.per_layer_distance = gw_calloc((size_t)L, sizeof(double));
		for (int l = 0; l < L; l++)
			s.per_layer_distance[l] = lm[l].mean;
	}
	s.pathway_consistency = s.adjacent_cosine = NAN;
	if (cons && cons->c) {
		for (int j = 0; j < n; j++) {
			double ci = cons->c[idx[j]];

			asum += cons->adj[idx[j]];
			if (isnan(ci)) {
				s.n_undefined++;
				continue;
			}
			csum += ci;
			nc++;
		}
		if (nc)
			s.pathway_consistency = csum / nc;
		if (n)
			s.adjacent_cosine = asum / n;
	}
	for (int j = 0; j < n; j++) {
		if (isfinite(loss[idx[j]])) {
			lsum += loss[idx[j]];
			nl++;
		}
	}
	s.loss = nl ? lsum / nl : NAN;
	*out = s;
}

/* FNV-1a over a set's indices: a set's key among the requests. */
static uint64_t set_hash(const int *idx, int n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (int j = 0; j < n; j++) {
		h ^= (uint64_t)(uint32_t)idx[j];
		h *= 0x100000001b3ULL;
	}
	return h ^ (uint64_t)n;
}

struct dentry {
	int *idx;
	int n;
	uint64_t h;
	struct lev_mean m;
	struct lev_mean *lm;     /* [L] or NULL */
};

struct metrics_dcache {
	int64_t step;
	size_t n, cap;
	struct dentry *e;
};

struct metrics_dcache *metrics_dcache_new(void)
{
	struct metrics_dcache *c = gw_calloc(1, sizeof(*c));

	c->step = -1;
	return c;
}

void metrics_dcache_reset(struct metrics_dcache *c, int64_t step)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->e[i].idx);
		free(c->e[i].lm);
	}
	c->n = 0;
	c->step = step;
}

void metrics_dcache_free(struct metrics_dcache *c)
{
	if (!c)
		return;
	metrics_dcache_reset(c, -1);
	free(c->e);
	free(c);
}

int64_t metrics_dcache_step(const struct metrics_dcache *c)
{
	return c->step;
}

static const struct dentry *dcache_find(const struct metrics_dcache *c, const int *idx, int n,
					uint64_t h, bool layers)
{
	for (size_t i = 0; c && i < c->n; i++) {
		const struct dentry *e = &c->e[i];

		if (e->h == h && e->n == n && (!layers || e->lm) &&
		    (n == 0 || !memcmp(e->idx, idx, (size_t)n * sizeof(int))))
			return e;
	}
	return NULL;
}

static void dcache_add(struct metrics_dcache *c, const int *idx, int n, uint64_t h,
		       const struct lev_mean *m, const struct lev_mean *lm, int L)
{
	struct dentry *e;

	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 8;
		c->e = gw_realloc(c->e, c->cap * sizeof(*c->e));
	}
	e = &c->e[c->n++];
	e->idx = gw_malloc(((size_t)n + 1) * sizeof(int));
	memcpy(e->idx, idx, (size_t)n * sizeof(int));
	e->n = n;
	e->h = h;
	e->m = *m;
	e->lm = NULL;
	if (lm) {
		e->lm = gw_malloc((size_t)L * sizeof(*lm));
		memcpy(e->lm, lm, (size_t)L * sizeof(*lm));
	}
}

int metrics_sets_compute(const struct pathway_set *ps, const struct metrics_cons *cons,
			 const float *loss, struct metrics_set_req *req, int nreq,
			 const struct metrics_opts *o, int *ret_distinct, struct gw_err *err)
{
	return metrics_sets_compute_cached(ps, cons, loss, req, nreq, o, NULL, ret_distinct, err);
}

int metrics_sets_compute_cached(const struct pathway_set *ps, const struct metrics_cons *cons,
				const float *loss, struct metrics_set_req *req, int nreq,
				const struct metrics_opts *o, struct metrics_dcache *cache,
				int *ret_distinct, struct gw_err *err)
{
	struct lev_pair_opts lo = { .budget = o->pair_budget, .seed = o->seed,
				    .threads = o->threads, .jackknife = true };
	int L = pathway_set_layers(ps), rc = 0, distinct = 0;
	int *src = gw_calloc((size_t)nreq + 1, sizeof(int));
	bool *layers = gw_calloc((size_t)nreq + 1, sizeof(bool));
	uint64_t *h = gw_calloc((size_t)nreq + 1, sizeof(uint64_t));
	struct lev_mean *m = gw_calloc((size_t)nreq + 1, sizeof(*m));
	struct lev_mean **lm = gw_calloc((size_t)nreq + 1, sizeof(*lm));

	/* Each request's source: the first request with the same index
	 * sequence, which computes the per-layer distances when any of its
	 * copies asks for them. */
	for (int q = 0; q < nreq; q++) {
		req[q].sec = 0;
		h[q] = set_hash(req[q].idx, req[q].n);
		src[q] = q;
		for (int p = 0; p < q; p++) {
			if (src[p] == p && h[p] == h[q] && req[p].n == req[q].n &&
			    (req[q].n == 0 ||
			     !memcmp(req[p].idx, req[q].idx, (size_t)req[q].n * sizeof(int)))) {
				src[q] = p;
				break;
			}
		}
		layers[src[q]] |= req[q].layers;
	}
	for (int q = 0; q < nreq && rc == 0; q++) {
		if (src[q] != q)
			continue;
		const struct dentry *e = dcache_find(cache, req[q].idx, req[q].n, h[q], layers[q]);
		double t0 = now_sec();

		if (layers[q])
			lm[q] = gw_calloc((size_t)L, sizeof(**lm));
		if (e) {
			m[q] = e->m;
			if (lm[q])
				memcpy(lm[q], e->lm, (size_t)L * sizeof(**lm));
			continue;
		}
		distinct++;
		rc = pathway_distance(ps, req[q].idx, req[q].n, &lo, &m[q], lm[q], err);
		req[q].sec = now_sec() - t0;
		if (rc == 0 && cache)
			dcache_add(cache, req[q].idx, req[q].n, h[q], &m[q], lm[q], L);
	}
	for (int q = 0; q < nreq && rc == 0; q++)
		set_fill(cons, loss, req[q].idx, req[q].n, &m[src[q]],
			 req[q].layers ? lm[src[q]] : NULL, L, req[q].out);
	if (rc == 0 && ret_distinct)
		*ret_distinct = distinct;
	for (int q = 0; q < nreq; q++)
		free(lm[q]);
	free(lm);
	free(m);
	free(h);
	free(layers);
	free(src);
	return rc;
}

int metrics_set_compute(const struct pathway_set *ps, const struct metrics_cons *cons,
			const float *loss, const int *idx, int n, const struct metrics_opts *o,
			bool layers, struct metrics_set *out, struct gw_err *err)
{
	struct metrics_set_req req = { .idx = idx, .n = n, .layers = layers, .out = out };

	return metrics_sets_compute(ps, cons, loss, &req, 1, o, NULL, err);
}

/* ---- health and churn ----------------------------------------------------- */

static void health_free(struct metrics_health *h)
{
	if (!h)
		return;
	for (int l = 0; l < h->n_layers; l++)
		free(h->layers[l].load);
	free(h->layers);
	free(h);
}

static struct metrics_health *health_compute(const struct routing *r)
{
	struct metrics_health *h = gw_calloc(1, sizeof(*h));
	size_t L = (size_t)r->n_layers, E = (size_t)r->n_experts, k = (size_t)r->top_k;
	size_t T = (size_t)r->tok_offset[r->n_samples];
	uint64_t *count = gw_calloc(L * E, sizeof(uint64_t));
	double *ent = gw_calloc(L, sizeof(double)), *z = gw_calloc(L, sizeof(double));

	h->n_layers = (int)L;
	h->n_experts = (int)E;
	h->layers = gw_calloc(L, sizeof(*h->layers));
	for (size_t t = 0; t < T; t++) {
		for (size_t l = 0; l < L; l++) {
			const uint16_t *ids = r->topk_ids + (t * L + l) * k;
			double lse = r->lse[t * L + l];

			for (size_t j = 0; j < k; j++)
				count[l * E + ids[j]]++;
			ent[l] += r->entropy[t * L + l];
			z[l] += lse * lse;
		}
	}
	h->max_imbalance = 0;
	for (size_t l = 0; l < L; l++) {
		struct metrics_layer_health *lh = &h->layers[l];
		double total = (double)T * (double)k, mxl = 0, hl = 0;

		lh->load = gw_calloc(E, sizeof(double));
		for (size_t e = 0; e < E; e++) {
			double p = total > 0 ? (double)count[l * E + e] / total : 0;

			lh->load[e] = p;
			if (p > mxl)
				mxl = p;
			if (p > 0)
				hl -= p * log(p);
			if (count[l * E + e] == 0)
				lh->dead_experts++;
		}
		lh->imbalance = total > 0 ? mxl * (double)E : NAN;
		lh->load_entropy = E > 1 && total > 0 ? hl / log((double)E) : NAN;
		lh->router_entropy = T ? ent[l] / (double)T : NAN;
		lh->z_loss = T ? z[l] / (double)T : NAN;
		lh->churn = NAN;
		h->imbalance += lh->imbalance;
		h->load_entropy += lh->load_entropy;
		h->router_entropy += lh->router_entropy;
		h->z_loss += lh->z_loss;
		h->dead_experts += lh->dead_experts;
		if (lh->imbalance > h->max_imbalance)
			h->max_imbalance = lh->imbalance;
	}
	h->imbalance /= (double)L;
	h->load_entropy /= (double)L;
	h->router_entropy /= (double)L;
	h->z_loss /= (double)L;
	free(count);
	free(ent);
	free(z);
	return h;
}

static void sort_small(uint16_t *v, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		uint16_t x = v[i];
		size_t j = i;

		while (j > 0 && v[j - 1] > x) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
}

/* Share of (token, layer) pairs whose top-k set changed; per layer into
 * h->layers[l].churn when h is not NULL.  NULL note on success. */
static const char *churn_compute(const struct routing *r, const struct routing *prev,
				 struct metrics_health *h, double *ret)
{
	size_t L, k, T;
	uint64_t changed = 0, *per = NULL;
	uint16_t a[256], b[256];

	if (!prev)
		return "no previous checkpoint";
	if (!r->has_tokens)
		return "no per-token records in this checkpoint";
	if (!prev->has_tokens)
		return "no per-token records in the previous checkpoint";
	if (r->probe_hash && prev->probe_hash && strcmp(r->probe_hash, prev->probe_hash) != 0)
		return "the previous checkpoint was run over another probe";
	if (r->n_samples != prev->n_samples || r->n_layers != prev->n_layers ||
	    r->n_experts != prev->n_experts || r->top_k != prev->top_k ||
	    (size_t)r->top_k > sizeof(a) / sizeof(a[0]))
		return "the previous checkpoint's routing has other dimensions (N, L, E or k)";
	for (int i = 0; i < r->n_samples; i++)
		if (r->ntokens[i] != prev->ntokens[i])
			return "the previous checkpoint's samples have other token counts";
	L = (size_t)r->n_layers, k = (size_t)r->top_k, T = (size_t)r->tok_offset[r->n_samples];
	per = gw_calloc(L, sizeof(uint64_t));
	for (size_t t = 0; t < T; t++) {
		for (size_t l = 0; l < L; l++) {
			memcpy(a, r->topk_ids + (t * L + l) * k, k * sizeof(uint16_t));
			memcpy(b, prev->topk_ids + (t * L + l) * k, k * sizeof(uint16_t));
			sort_small(a, k);
			sort_small(b, k);
			if (memcmp(a, b, k * sizeof(uint16_t)) != 0) {
				changed++;
				per[l]++;
			}
		}
	}
	*ret = T && L ? (double)changed / ((double)T * (double)L) : NAN;
	for (size_t l = 0; h && l < L; l++)
		h->layers[l].churn = T ? (double)per[l] / (double)T : NAN;
	free(per);
	return NULL;
}

/* ---- the whole checkpoint ------------------------------------------------- */

void metrics_result_free(struct metrics_result *m)
{
	if (!m)
		return;
	for (int g = 0; g < m->n_groups; g++) {
		free(m->groups[g].name);
		free(m->groups[g].all.per_layer_distance);
		free(m->groups[g].memorized.per_layer_distance);
	}
	free(m->groups);
	free(m->checkpoint);
	free(m->probe_hash);
	health_free(m->health);
	free(m);
}

double metrics_common_epsilon(const double *eps, int ng)
{
	for (int g = 1; g < ng; g++)
		if (!(eps[g] == eps[0]) && !(isnan(eps[g]) && isnan(eps[0])))
			return NAN;
	return ng ? eps[0] : NAN;
}

int metrics_compute(const struct routing *r, const struct routing *prev,
		    const struct metrics_cons *cons, const struct metrics_memorized *memorized,
		    const struct metrics_opts *o, struct metrics_result **ret, struct gw_err *err)
{
	return metrics_compute_cached(r, prev, cons, memorized, o, NULL, ret, err);
}

int metrics_compute_cached(const struct routing *r, const struct routing *prev,
			   const struct metrics_cons *cons,
			   const struct metrics_memorized *memorized, const struct metrics_opts *o,
			   struct metrics_dcache *cache, struct metrics_result **ret,
			   struct gw_err *err)
{
	struct metrics_result *m = gw_calloc(1, sizeof(*m));
	struct metrics_cons *own = NULL;
	struct pathway_set *ps = NULL;
	const char **names = NULL;
	struct metrics_set_req *req = NULL;
	int *gid = NULL, *idx = NULL, ng = 0, N = r->n_samples, rc;
	double t0 = now_sec(), t1, *eps = NULL;

	rc = metrics_opts_check(o, err);
	if (rc < 0)
		goto out;
	for (int i = 0; i < N; i++) {
		if (r->groups[i] && strcmp(r->groups[i], "all") == 0) {
			rc = gw_errf(err, -EINVAL, "\"groups\": sample %d is in a group called \"all\", "
				     "the name reserved for every sample", i);
			goto out;
		}
	}
	if (cons && cons->n_samples != N) {
		rc = gw_errf(err, -EINVAL, "\"consistency\": computed for %d samples, the routing "
			     "has %d", cons->n_samples, N);
		goto out;
	}
	m->step = r->step;
	m->checkpoint = r->checkpoint ? gw_strdup(r->checkpoint) : NULL;
	m->probe_hash = r->probe_hash ? gw_strdup(r->probe_hash) : NULL;
	m->tau = o->tau;
	m->n_layers = r->n_layers;
	m->churn = NAN;

	t1 = now_sec();
	if (!cons) {
		rc = metrics_consistency(r, o->consistency_floor, &own, err);
		if (rc < 0)
			goto out;
		cons = own;
	}
	m->consistency_note = cons->note;
	m->sec.consistency = now_sec() - t1;

	t1 = now_sec();
	rc = pathway_set_new(r->gbar, N, r->n_layers, r->n_experts, o->tau, &ps, err);
	if (rc < 0)
		goto out;
	metrics_groups(r->groups, N, &names, &ng, &gid);
	if (memorized && memorized->n_groups != ng) {
		rc = gw_errf(err, -EINVAL, "\"memorized\": epsilons of %d groups, the routing has %d",
			     memorized->n_groups, ng);
		goto out;
	}
	eps = gw_calloc((size_t)ng + 1, sizeof(double));
	if (memorized)
		memcpy(eps, memorized->epsilon, (size_t)ng * sizeof(double));
	else
		metrics_epsilons(o, names, ng, gid, r->loss, N, eps);
	m->n_groups = ng + 1;
	m->groups = gw_calloc((size_t)ng + 1, sizeof(*m->groups));
	/* Every set's samples first (request 2g: group g's, 2g+1: its
	 * memorized subset; g = ng is `all`), then the distinct ones computed
	 * once each. */
	idx = gw_calloc(4 * ((size_t)N + 1), sizeof(int)); /* groups, all: 2N; subsets <= 2N */
	req = gw_calloc(2 * ((size_t)ng + 1), sizeof(*req));
	for (int g = 0, *gi = idx; g <= ng; g++) {
		struct metrics_group *G = &m->groups[g];
		int *mi, n = 0, nm = 0;

		G->name = gw_strdup(g < ng ? names[g] : "all");
		for (int i = 0; i < N; i++)
			if (g == ng || gid[i] == g)
				gi[n++] = i;
		mi = gi + n;
		for (int j = 0; j < n; j++) {
			int i = gi[j];

			/* Without a series the checkpoint is its own latest: the
			 * rule reduces to loss <= epsilon. */
			if (memorized ? memorized->mask[i]
				      : isfinite(r->loss[i]) && r->loss[i] <= eps[gid[i]])
				mi[nm++] = i;
		}
		req[2 * g] = (struct metrics_set_req){ .idx = gi, .n = n, .layers = o->per_layer,
						       .out = &G->all };
		req[2 * g + 1] = (struct metrics_set_req){ .idx = mi, .n = nm, .out = &G->memorized };
		gi = mi + nm;
	}
	rc = metrics_sets_compute_cached(ps, cons, r->loss, req, 2 * (ng + 1), o, cache, NULL, err);
	if (rc < 0)
		goto out;
	for (int g = 0; g <= ng; g++) {
		m->groups[g].memorized.epsilon = g < ng ? eps[g] : metrics_common_epsilon(eps, ng);
		m->sec.memorized += req[2 * g + 1].sec;
	}
	m->sec.pathways = now_sec() - t1 - m->sec.memorized;

	t1 = now_sec();
	if (r->has_tokens && r->top_k > 0)
		m->health = health_compute(r);
	else
		m->health_note = "no per-token records (a routing file without them)";
	m->churn_note = churn_compute(r, prev, m->health, &m->churn);
	m->sec.health = now_sec() - t1;
	m->sec.total = now_sec() - t0;
	*ret = m;
	m = NULL;
	rc = 0;
out:
	metrics_result_free(m);
	metrics_cons_free(own);
	pathway_set_free(ps);
	free(names);
	free(gid);
	free(idx);
	free(req);
	free(eps);
	return rc;
}

/* ---- JSON ----------------------------------------------------------------- */

static cJSON *num(double v)
{
	return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *str_or_null(const char *s)
{
	return s ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static void add(cJSON *obj, const char *key, cJSON *item)
{
	/* Cannot fail: cJSON allocates through gw_malloc (engine/json.h). */
	cJSON_AddItemToObject(obj, key, item);
}

cJSON *metrics_set_json(const struct metrics_set *s, int n_layers)
{
	cJSON *o = cJSON_CreateObject();

	add(o, "pathway_distance", num(s->pathway_distance));
	add(o, "pathway_distance_se", num(s->pathway_distance_se));
	add(o, "pathway_distance_stderr", num(s->pathway_distance_stderr));
	add(o, "n_pairs", cJSON_CreateNumber((double)s->n_pairs));
	add(o, "sampled", cJSON_CreateBool(s->sampled));
	add(o, "pathway_consistency", num(s->pathway_consistency));
	add(o, "adjacent_cosine", num(s->adjacent_cosine));
	add(o, "n_undefined", cJSON_CreateNumber(s->n_undefined));
	add(o, "loss", num(s->loss));
	add(o, "n_samples", cJSON_CreateNumber(s->n_samples));
	if (s->per_layer_distance) {
		cJSON *a = cJSON_CreateArray();

		for (int l = 0; a && l < n_layers; l++)
			cJSON_AddItemToArray(a, num(s->per_layer_distance[l]));
		add(o, "per_layer_distance", a);
	} else if (n_layers > 0) {
		add(o, "per_layer_distance", cJSON_CreateNull());   /* not computed */
	}
	return o;
}

cJSON *metrics_memorized_json(const struct metrics_set *s)
{
	cJSON *o = metrics_set_json(s, 0);

	add(o, "epsilon", num(s->epsilon));
	return o;
}

static cJSON *layer_json(const struct metrics_layer_health *lh, int E)
{
	cJSON *o = cJSON_CreateObject(), *load = cJSON_CreateArray();

	for (int e = 0; e < E; e++)
		cJSON_AddItemToArray(load, num(lh->load[e]));
	add(o, "load", load);
	add(o, "imbalance", num(lh->imbalance));
	add(o, "load_entropy", num(lh->load_entropy));
	add(o, "dead_experts", cJSON_CreateNumber(lh->dead_experts));
	add(o, "router_entropy", num(lh->router_entropy));
	add(o, "z_loss", num(lh->z_loss));
	add(o, "churn", num(lh->churn));
	return o;
}

cJSON *metrics_result_json(const struct metrics_result *m)
{
	cJSON *o = cJSON_CreateObject(), *groups = cJSON_CreateObject(), *t = cJSON_CreateObject();

	add(o, "step", m->step >= 0 ? cJSON_CreateNumber((double)m->step) : cJSON_CreateNull());
	add(o, "checkpoint", str_or_null(m->checkpoint));
	add(o, "probe_hash", str_or_null(m->probe_hash));
	add(o, "tau", cJSON_CreateNumber(m->tau));
	for (int g = 0; g < m->n_groups; g++) {
		const struct metrics_group *G = &m->groups[g];
		cJSON *go = metrics_set_json(&G->all, m->n_layers);

		add(go, "memorized", metrics_memorized_json(&G->memorized));
		add(groups, G->name, go);
	}
	add(o, "groups", groups);
	add(o, "consistency_note", str_or_null(m->consistency_note));
	if (m->health) {
		cJSON *h = cJSON_CreateObject(), *ov = cJSON_CreateObject(),
		      *layers = cJSON_CreateArray();

		add(ov, "imbalance", num(m->health->imbalance));
		add(ov, "max_imbalance", num(m->health->max_imbalance));
		add(ov, "load_entropy", num(m->health->load_entropy));
		add(ov, "dead_experts", cJSON_CreateNumber(m->health->dead_experts));
		add(ov, "router_entropy", num(m->health->router_entropy));
		add(ov, "z_loss", num(m->health->z_loss));
		add(ov, "churn", num(m->churn));
		add(h, "overall", ov);
		for (int l = 0; l < m->health->n_layers; l++)
			cJSON_AddItemToArray(layers, layer_json(&m->health->layers[l],
								m->health->n_experts));
		add(h, "layers", layers);
		add(o, "health", h);
	} else {
		add(o, "health", cJSON_CreateNull());
	}
	add(o, "health_note", str_or_null(m->health_note));
	add(o, "churn", num(m->churn));
	add(o, "churn_note", str_or_null(m->churn_note));
	add(t, "pathways_sec", cJSON_CreateNumber(m->sec.pathways));
	add(t, "consistency_sec", cJSON_CreateNumber(m->sec.consistency));
	add(t, "memorized_sec", cJSON_CreateNumber(m->sec.memorized));
	add(t, "health_sec", cJSON_CreateNumber(m->sec.health));
	add(t, "total_sec", cJSON_CreateNumber(m->sec.total));
	add(o, "timings", t);
	return o;
}
