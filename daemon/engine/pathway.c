/*
 * pathway.c — pathway strings from routing vectors, and the pathway
 * distance of a set of samples (SPEC §4; the rule is stated in pathway.h).
 *
 * Divided into: the selection of one layer's experts (sort, then the
 * shortest prefix reaching min(tau, total)); the writing of a sample's
 * string into a growing buffer, remembering where each layer's part lies;
 * the pathway set (all samples' strings in one pool); and the distance,
 * which hands whole strings and then each layer's parts to lev_mean_pairs.
 */
#include "engine/pathway.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ranked {
	float w;
	int idx;
};

/* Descending weight, then ascending index: a total order, so qsort's lack
 * of stability does not matter. */
static int by_weight(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	if (x->w != y->w)
		return x->w > y->w ? -1 : 1;
	return (x->idx > y->idx) - (x->idx < y->idx);
}

/* pathway_layer_select with the sample and layer for messages (-1: none). */
static int select_layer(const float *w, int n_experts, double tau, int *order,
			struct ranked *rk, int *ret_kept, int sample, int layer,
			struct gw_err *err)
{
	double total = 0, target, acc = 0;
	int e, kept;

	if (!(tau > 0 && tau <= 1))
		return gw_errf(err, -EINVAL, "\"tau\": %g is outside (0, 1]", tau);
	if (n_experts < 1 || n_experts > PATHWAY_MAX_EXPERTS)
		return gw_errf(err, -EINVAL, "\"gbar\": %d experts, outside 1 .. %d",
			       n_experts, PATHWAY_MAX_EXPERTS);
	for (e = 0; e < n_experts; e++) {
		if (!isfinite(w[e]) || w[e] < 0) {
			char where[64] = "";

			if (sample >= 0)
				snprintf(where, sizeof(where), "sample %d, layer %d, ", sample, layer);
			else if (layer >= 0)
				snprintf(where, sizeof(where), "layer %d, ", layer);
			return gw_errf(err, -EINVAL,
				       "\"gbar\": %sexpert %d: weight %g is not a finite non-negative number",
				       where, e, (double)w[e]);
		}
		rk[e].w = w[e];
		rk[e].idx = e;
	}
	qsort(rk, (size_t)n_experts, sizeof(*rk), by_weight);
	for (e = 0; e < n_experts; e++)
		total += (double)rk[e].w;
	target = tau < total ? tau : total;
	for (kept = 0; kept < n_experts;) {
		acc += (double)rk[kept++].w;
		if (acc >= target)
			break;
	}
	for (e = 0; e < n_experts; e++)
		order[e] = rk[e].idx;
	*ret_kept = kept;
	return 0;
}

int pathway_layer_select(const float *w, int n_experts, double tau, int *order,
			 void *scratch, int *ret_kept, struct gw_err *err)
{
	struct ranked *rk = scratch;
	int r;

	if (n_experts < 1 || n_experts > PATHWAY_MAX_EXPERTS)
		return gw_errf(err, -EINVAL, "\"gbar\": %d experts, outside 1 .. %d",
			       n_experts, PATHWAY_MAX_EXPERTS);
	if (!rk)
		rk = gw_malloc((size_t)n_experts * sizeof(*rk));
	r = select_layer(w, n_experts, tau, order, rk, ret_kept, -1, -1, err);
	if (rk != scratch)
		free(rk);
	return r;
}

/* ---- writing strings ---------------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sbuf_reserve(struct sbuf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return;
	while (b->len + more > b->cap)
		b->cap = b->cap ? 2 * b->cap : 4096;
	b->p = gw_realloc(b->p, b->cap);
}

/* Append decimal v (v < 100000, room reserved by the caller). */
static void put_index(struct sbuf *b, int v)
{
	char tmp[8];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		b->p[b->len++] = tmp[--n];
}

struct scratch {
	struct ranked *rk;
	int *order;
};

/* Append sample's pathway to b (no NUL), recording each layer's offset and
 * length relative to the string's start when lstart is not NULL. */
static int append_sample(struct sbuf *b, const float *gbar, int n_layers, int n_experts,
			 double tau, struct scratch *sc, int sample, uint32_t *lstart,
			 uint32_t *llen, struct gw_err *err)
{
	size_t start = b->len;
	int l, k, kept, r;

	if (n_layers < 1 || n_layers > PATHWAY_MAX_LAYERS)
		return gw_errf(err, -EINVAL, "\"gbar\": %d layers, outside 1 .. %d",
			       n_layers, PATHWAY_MAX_LAYERS);
	for (l = 0; l < n_layers; l++) {
		size_t lbegin;

		r = select_layer(gbar + (size_t)l * (size_t)n_experts, n_experts, tau, sc->order,
				 sc->rk, &kept, sample, l, err);
		if (r < 0)
			return r;
		/* at most 5 digits and a separator per expert (E <= 65536) */
		sbuf_reserve(b, (size_t)kept * 6 + 2);
		if (l > 0)
			b->p[b->len++] = '-';
		lbegin = b->len;
		for (k = 0; k < kept; k++) {
			if (k > 0)
				b->p[b->len++] = ',';
			put_index(b, sc->order[k]);
		}
		if (b->len - start > LEV_MAX_LEN) {
			if (sample >= 0)
				return gw_errf(err, -E2BIG, "\"gbar\": sample %d: pathway over %zu bytes",
					       sample, LEV_MAX_LEN);
			return gw_errf(err, -E2BIG, "\"gbar\": pathway over %zu bytes", LEV_MAX_LEN);
		}
		if (lstart) {
			lstart[l] = (uint32_t)(lbegin - start);
			llen[l] = (uint32_t)(b->len - lbegin);
		}
	}
	return 0;
}

static void scratch_init(struct scratch *sc, int n_experts)
{
	size_t e = n_experts > 0 && n_experts <= PATHWAY_MAX_EXPERTS ? (size_t)n_experts : 1;

	sc->rk = gw_malloc(e * sizeof(*sc->rk));
	sc->order = gw_malloc(e * sizeof(*sc->order));
}

static void scratch_release(struct scratch *sc)
{
	free(sc->rk);
	free(sc->order);
}

int pathway_string(const float *gbar, int n_layers, int n_experts, double tau,
		   char **ret_str, size_t *ret_len, struct gw_err *err)
{
	struct sbuf b = { 0 };
	struct scratch sc;
	int r;

	scratch_init(&sc, n_experts);
	r = append_sample(&b, gbar, n_layers, n_experts, tau, &sc, -1, NULL, NULL, err);
	scratch_release(&sc);
	if (r < 0) {
		free(b.p);
		return r;
	}
	sbuf_reserve(&b, 1);
	b.p[b.len] = 0;
	*ret_str = b.p;
	*ret_len = b.len;
	return 0;
}

/* ---- the set -------------------------------------------------------------- */

struct pathway_set {
	int n, n_layers;
	char *pool;          /* the strings, each followed by a NUL */
	size_t *start, *len; /* [n] */
	uint32_t *lstart;    /* [n * L] layer offset within its string */
	uint32_t *llen;      /* [n * L] */
};

int pathway_set_new(const float *gbar, int n_samples, int n_layers, int n_experts,
		    double tau, struct pathway_set **ret_set, struct gw_err *err)
{
	struct pathway_set *ps = NULL;
	struct sbuf b = { 0 };
	struct scratch sc;
	int i, r;

	if (n_samples < 0 || n_samples > LEV_MAX_STRINGS)
		return gw_errf(err, -EINVAL, "\"gbar\": %d samples, outside 0 .. %d",
			       n_samples, LEV_MAX_STRINGS);
	if (n_layers < 1 || n_layers > PATHWAY_MAX_LAYERS)
		return gw_errf(err, -EINVAL, "\"gbar\": %d layers, outside 1 .. %d",
			       n_layers, PATHWAY_MAX_LAYERS);
	if (n_experts < 1 || n_experts > PATHWAY_MAX_EXPERTS)
		return gw_errf(err, -EINVAL, "\"gbar\": %d experts, outside 1 .. %d",
			       n_experts, PATHWAY_MAX_EXPERTS);
	scratch_init(&sc, n_experts);
	ps = gw_calloc(1, sizeof(*ps));
	ps->n = n_samples;
	ps->n_layers = n_layers;
	ps->start = gw_calloc((size_t)n_samples + 1, sizeof(*ps->start));
	ps->len = gw_calloc((size_t)n_samples + 1, sizeof(*ps->len));
	ps->lstart = gw_calloc((size_t)n_samples * (size_t)n_layers + 1, sizeof(*ps->lstart));
	ps->llen = gw_calloc((size_t)n_samples * (size_t)n_layers + 1, sizeof(*ps->llen));
	for (i = 0; i < n_samples; i++) {
		size_t off = (size_t)i * (size_t)n_layers;

		ps->start[i] = b.len;
		r = append_sample(&b, gbar + off * (size_t)n_experts, n_layers, n_experts, tau,
				  &sc, i, ps->lstart + off, ps->llen + off, err);
		if (r < 0)
			goto out;
		ps->len[i] = b.len - ps->start[i];
		sbuf_reserve(&b, 1);
		b.p[b.len++] = 0;
	}
	sbuf_reserve(&b, 1);
	ps->pool = b.p;
	b.p = NULL;
	*ret_set = ps;
	ps = NULL;
	r = 0;
out:
	free(b.p);
	pathway_set_free(ps);
	scratch_release(&sc);
	return r;
}

void pathway_set_free(struct pathway_set *ps)
{
	if (!ps)
		return;
	free(ps->pool);
	free(ps->start);
	free(ps->len);
	free(ps->lstart);
	free(ps->llen);
	free(ps);
}

int pathway_set_samples(const struct pathway_set *ps)
{
	return ps->n;
}

int pathway_set_layers(const struct pathway_set *ps)
{
	return ps->n_layers;
}

const char *pathway_set_str(const struct pathway_set *ps, int i, size_t *ret_len)
{
	GW_BUG_ON(i < 0 || i >= ps->n);
	if (ret_len)
		*ret_len = ps->len[i];
	return ps->pool + ps->start[i];
}

const char *pathway_set_layer(const struct pathway_set *ps, int i, int l, size_t *ret_len)
{
	size_t k;

	GW_BUG_ON(i < 0 || i >= ps->n || l < 0 || l >= ps->n_layers);
	k = (size_t)i * (size_t)ps->n_layers + (size_t)l;
	*ret_len = ps->llen[k];
	return ps->pool + ps->start[i] + ps->lstart[k];
}

/* ---- distance ------------------------------------------------------------- */

int pathway_distance(const struct pathway_set *ps, const int *samples, int n,
		     const struct lev_pair_opts *opts, struct lev_mean *ret_mean,
		     struct lev_mean *ret_layers, struct gw_err *err)
{
	const uint8_t **s = NULL;
	size_t *len = NULL;
	struct lev_mean mean, *layers = NULL;
	int i, l, r;

	if (n < 0 || n > LEV_MAX_STRINGS)
		return gw_errf(err, -EINVAL, "\"samples\": %d samples, outside 0 .. %d",
			       n, LEV_MAX_STRINGS);
	if (!samples && n != ps->n)
		return gw_errf(err, -EINVAL, "\"samples\": %d samples, but the set has %d", n, ps->n);
	for (i = 0; samples && i < n; i++)
		if (samples[i] < 0 || samples[i] >= ps->n)
			return gw_errf(err, -EINVAL, "\"samples\": index %d is outside 0 .. %d",
				       samples[i], ps->n - 1);
	s = gw_calloc((size_t)n + 1, sizeof(*s));
	len = gw_calloc((size_t)n + 1, sizeof(*len));
	for (i = 0; i < n; i++)
		s[i] = (const uint8_t *)pathway_set_str(ps, samples ? samples[i] : i, &len[i]);
	r = lev_mean_pairs(s, len, (size_t)n, opts, &mean, err);
	if (r < 0)
		goto out;
	if (ret_layers) {
		/* Every layer's strings at once, sample by sample (the
		 * per-layer diagnostic carries no jackknife). */
		size_t L = (size_t)ps->n_layers;
		const uint8_t **ls = gw_calloc((size_t)n * L + 1, sizeof(*ls));
		size_t *ll = gw_calloc((size_t)n * L + 1, sizeof(*ll));

		layers = gw_calloc(L, sizeof(*layers));
		for (i = 0; i < n; i++)
			for (l = 0; l < ps->n_layers; l++)
				ls[(size_t)i * L + (size_t)l] = (const uint8_t *)pathway_set_layer(
					ps, samples ? samples[i] : i, l, &ll[(size_t)i * L + (size_t)l]);
		r = lev_mean_pairs_parts(ls, ll, (size_t)n, L, opts, layers, err);
		free(ls);
		free(ll);
		if (r < 0)
			goto out;
		memcpy(ret_layers, layers, L * sizeof(*layers));
	}
	*ret_mean = mean;
	r = 0;
out:
	free(layers);
	free(s);
	free(len);
	return r;
}
