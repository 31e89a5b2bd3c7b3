/*
 * routing_series.c — the step-ordered store of routing vectors behind the
 * memorized-subset history (routing_series.h; the rule is in metrics.h).
 *
 * Divided into: the store (a sorted array of entries, binary search,
 * insertion moving the tail); the memorized mask; and the recomputation of
 * every step's memorized metrics, with its JSON patch.
 */
#include "engine/routing_series.h"
#include "engine/hash.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pathway.h"
#include "engine/step.h"

struct entry {
	int64_t step;
	float *gbar, *loss;
	struct metrics_cons cons; /* c/adj owned; note static */
	/* The memorized sets last computed for this step ([ng + 1], or NULL),
	 * each with a hash of what it was computed from (the sample subset,
	 * its epsilon, the options): a recompute after a new latest step
	 * computes only the sets whose subset moved (routing_series_recompute). */
	uint64_t *mkey;
	struct metrics_set *mset;
};

struct routing_series {
	size_t n, cap;
	struct entry *e;
	int N, L, E;
	char **groups;      /* [N], owned copies */
	const char **names; /* distinct groups, first appearance, then "all";
			     * borrowed from groups (and a literal) */
	int ng;             /* distinct groups (names has ng + 1) */
	int *gid;           /* [N] */
	/* The last recompute's inputs: each sample's first memorized index and
	 * each set's epsilon, over memo_n steps ending at memo_last.  When
	 * the next recompute finds the same steps (plus one appended), a step
	 * whose subsets cannot have moved reuses its sets without looking. */
	size_t *memo_t0;    /* [N] */
	double *memo_eps;   /* [ng + 1] */
	size_t memo_n;
	int64_t memo_last;
	double memo_tau, memo_delta;
};

struct routing_series *routing_series_new(void)
{
	return gw_calloc(1, sizeof(struct routing_series));
}

static void entry_release(struct entry *e)
{
	free(e->mkey);
	free(e->mset);
	free(e->gbar);
	free(e->loss);
	free(e->cons.c);
	free(e->cons.adj);
}

void routing_series_free(struct routing_series *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		entry_release(&s->e[i]);
	free(s->e);
	for (int i = 0; s->groups && i < s->N; i++)
		free(s->groups[i]);
	free(s->groups);
	free(s->names);
	free(s->gid);
	free(s->memo_t0);
	free(s->memo_eps);
	free(s);
}

size_t routing_series_count(const struct routing_series *s)
{
	return s->n;
}

int64_t routing_series_step_at(const struct routing_series *s, size_t i)
{
	GW_BUG_ON(i >= s->n);
	return s->e[i].step;
}

int routing_series_samples(const struct routing_series *s)
{
	return s->groups ? s->N : 0;
}

/* First index whose step is >= step. */
static size_t lower_bound(const struct routing_series *s, int64_t step)
{
	return step_lower_bound(s->e, s->n, sizeof(*s->e), offsetof(struct entry, step), step);
}

long routing_series_find(const struct routing_series *s, int64_t step)
{
	size_t i = lower_bound(s, step);

	return i < s->n && s->e[i].step == step ? (long)i : -1;
}

int routing_series_put(struct routing_series *s, const struct routing *r,
		       const struct metrics_cons *cons, struct gw_err *err)
{
	struct metrics_cons *own = NULL;
	struct entry e = { .step = r->step };
	size_t N = (size_t)r->n_samples, G = N * (size_t)r->n_layers * (size_t)r->n_experts;
	size_t at;
	int rc;

	if (r->step < 0)
		return gw_errf(err, -EINVAL, "\"routing\": step unknown; a series needs a step");
	if (s->groups) {
		if (r->n_samples != s->N || r->n_layers != s->L || r->n_experts != s->E)
			return gw_errf(err, -EINVAL, "\"routing\" of step %" PRId64 ": N=%d L=%d E=%d, "
				       "but the series has N=%d L=%d E=%d", r->step, r->n_samples,
				       r->n_layers, r->n_experts, s->N, s->L, s->E);
		for (int i = 0; i < s->N; i++)
			if (strcmp(r->groups[i] ? r->groups[i] : "", s->groups[i]) != 0)
				return gw_errf(err, -EINVAL, "\"routing\" of step %" PRId64 ": sample %d "
					       "is in group \"%s\", in the series \"%s\"", r->step, i,
					       r->groups[i] ? r->groups[i] : "", s->groups[i]);
	}
	if (cons && cons->n_samples != r->n_samples)
		return gw_errf(err, -EINVAL, "\"consistency\": computed for %d samples, the routing "
			       "has %d", cons->n_samples, r->n_samples);
	at = lower_bound(s, r->step);
	if (!(at < s->n && s->e[at].step == r->step) && s->n >= ROUTING_SERIES_MAX)
		return gw_errf(err, -E2BIG, "\"series\": already %d steps", ROUTING_SERIES_MAX);
	if (!cons) {
		rc = metrics_consistency(r, METRICS_CONSISTENCY_FLOOR, &own, err);
		if (rc < 0)
			return rc;
		cons = own;
	}
	e.gbar = gw_malloc((G ? G : 1) * sizeof(float));
	memcpy(e.gbar, r->gbar, G * sizeof(float));
	e.loss = gw_malloc((N ? N : 1) * sizeof(float));
	memcpy(e.loss, r->loss, N * sizeof(float));
	e.cons.n_samples = r->n_samples;
	e.cons.note = cons->note;
	if (cons->c) {
		e.cons.c = gw_malloc((N ? N : 1) * sizeof(double));
		e.cons.adj = gw_malloc((N ? N : 1) * sizeof(double));
		memcpy(e.cons.c, cons->c, N * sizeof(double));
		memcpy(e.cons.adj, cons->adj, N * sizeof(double));
	}
	metrics_cons_free(own);

	if (!s->groups) {
		s->N = r->n_samples, s->L = r->n_layers, s->E = r->n_experts;
		s->groups = gw_calloc(N + 1, sizeof(char *));
		for (size_t i = 0; i < N; i++)
			s->groups[i] = gw_strdup(r->groups[i] ? r->groups[i] : "");
		metrics_groups(s->groups, s->N, &s->names, &s->ng, &s->gid);
		s->names = gw_realloc(s->names, ((size_t)s->ng + 1) * sizeof(char *));
		s->names[s->ng] = "all";
	}
	if (at < s->n && s->e[at].step == r->step) {
		entry_release(&s->e[at]);
		s->e[at] = e;
		return 1;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->e = gw_realloc(s->e, s->cap * sizeof(*s->e));
	}
	memmove(&s->e[at + 1], &s->e[at], (s->n - at) * sizeof(*s->e));
	s->e[at] = e;
	s->n++;
	return 0;
}

int routing_series_groups(const struct routing_series *s)
{
	return s->groups ? s->ng : 0;
}

/* Each group's epsilon against the latest checkpoint (metrics.h). */
static void epsilons(const struct routing_series *s, const struct metrics_opts *o, double *eps)
{
	metrics_epsilons(o, s->names, s->ng, s->gid, s->e[s->n - 1].loss, s->N, eps);
}

/* The first index t0 from which sample j is memorized: its loss is finite,
 * at most eps and within delta of its latest value at every checkpoint
 * t0 .. latest (latest + 1, never, when even the latest fails). */
static size_t memorized_from(const struct routing_series *s, int j, double eps, double delta)
{
	size_t t = s->n;
	double ref = s->e[s->n - 1].loss[j];

	while (t > 0) {
		double x = s->e[t - 1].loss[j];

		if (!isfinite(x) || !(x <= eps) || fabs(x - ref) > delta)
			break;
		t--;
	}
	return t;
}

void routing_series_memorized(const struct routing_series *s, size_t i,
			      const struct metrics_opts *o, bool *mask, double *ret_eps)
{
	double *eps = gw_calloc((size_t)s->ng + 1, sizeof(double));

	GW_BUG_ON(i >= s->n);
	epsilons(s, o, eps);
	for (int j = 0; j < s->N; j++)
		mask[j] = i >= memorized_from(s, j, eps[s->gid[j]], o->delta);
	if (ret_eps)
		memcpy(ret_eps, eps, (size_t)s->ng * sizeof(double));
	free(eps);
}

void routing_series_memo_free(struct metrics_memo *memo, size_t n)
{
	if (!memo)
		return;
	for (size_t i = 0; i < n; i++)
		free(memo[i].sets);
	free(memo);
}

/* What a memorized set is computed from: its samples, epsilon and tau. */
static uint64_t memo_key(const int *idx, int n, double eps, const struct metrics_opts *o)
{
	uint64_t h = gw_fnv1a(GW_FNV_BASIS, &n, sizeof(n));

	h = gw_fnv1a(h, idx, (size_t)n * sizeof(*idx));
	h = gw_fnv1a(h, &eps, sizeof(eps));
	h = gw_fnv1a(h, &o->tau, sizeof(o->tau));
	h = gw_fnv1a(h, &o->delta, sizeof(o->delta));
	return h | 1;
}

int routing_series_recompute(struct routing_series *s, const struct metrics_opts *o,
			     struct metrics_memo **ret_memo, size_t *ret_n, struct gw_err *err)
{
	return routing_series_recompute_cached(s, o, NULL, ret_memo, ret_n, err);
}

int routing_series_recompute_cached(struct routing_series *s, const struct metrics_opts *o,
				    struct metrics_dcache *cache, struct metrics_memo **ret_memo,
				    size_t *ret_n, struct gw_err *err)
{
	struct metrics_memo *memo = gw_calloc(s->n + 1, sizeof(*memo));
	size_t *t0 = gw_calloc((size_t)s->N + 1, sizeof(size_t));
	/* the groups' subsets (N in all), then all's */
	int *idx = gw_calloc(2 * (size_t)s->N + 1, sizeof(int));
	struct metrics_set_req *req = gw_calloc((size_t)s->ng + 1, sizeof(*req));
	int *req_g = gw_calloc((size_t)s->ng + 1, sizeof(int));
	uint64_t *req_key = gw_calloc((size_t)s->ng + 1, sizeof(uint64_t));
	double *eps = gw_calloc((size_t)s->ng + 2, sizeof(double));
	struct pathway_set *ps = NULL;
	size_t done = 0;
	long *moved = NULL, running = 0;
	bool *eps_moved = NULL, known;
	int rc;

	rc = metrics_opts_check(o, err);
	if (rc < 0)
		goto out;
	if (s->n) {
		epsilons(s, o, eps);
		eps[s->ng] = metrics_common_epsilon(eps, s->ng); /* "all" */
	}
	for (int j = 0; j < s->N; j++)
		t0[j] = memorized_from(s, j, eps[s->gid[j]], o->delta);
	/* Which steps' subsets may have moved since the last recompute: for a
	 * sample whose first memorized index went from a to b, the steps in
	 * [min, max); every step, unless the series is the last one's with at
	 * most one step appended at its end (positions unmoved). */
	moved = gw_calloc(s->n + 1, sizeof(*moved));
	eps_moved = gw_calloc((size_t)s->ng + 1, sizeof(*eps_moved));
	known = s->n && s->memo_t0 && s->memo_n && s->memo_n <= s->n &&
		s->n - s->memo_n <= 1 && s->e[s->memo_n - 1].step == s->memo_last &&
		s->memo_tau == o->tau && s->memo_delta == o->delta;
	if (known) {
		for (int j = 0; j < s->N; j++) {
			size_t a = s->memo_t0[j] < s->memo_n ? s->memo_t0[j] : s->n;
			size_t b = t0[j] < s->n ? t0[j] : s->n;

			if (a != b) {
				moved[a < b ? a : b]++;
				moved[a < b ? b : a]--;
			}
		}
		for (int g = 0; g <= s->ng; g++)
			eps_moved[g] = memcmp(&eps[g], &s->memo_eps[g], sizeof(double)) != 0;
	}
	for (size_t i = 0; i < s->n; i++, done++) {
		struct entry *e = &s->e[i];
		/* The step whose distances `cache` holds is computed through it,
		 * and what comes out is not kept (the cache is the caller's). */
		struct metrics_dcache *dc = cache && metrics_dcache_step(cache) == e->step ? cache
											    : NULL;
		bool unmoved;
		int nreq = 0;

		running += moved[i];
		unmoved = known && running == 0 && e->mkey && !dc;
		memo[i].step = e->step;
		memo[i].names = s->names;
		memo[i].n_sets = s->ng + 1;
		memo[i].sets = gw_calloc((size_t)s->ng + 1, sizeof(struct metrics_set));
		if (!e->mkey) {
			e->mkey = gw_calloc((size_t)s->ng + 1, sizeof(*e->mkey));
			e->mset = gw_calloc((size_t)s->ng + 1, sizeof(*e->mset));
		}
		for (int g = 0, *gi = idx; g <= s->ng; g++) {
			int n = 0;
			uint64_t key;

			if (unmoved && !eps_moved[g] && e->mkey[g]) {
				memo[i].sets[g] = e->mset[g];
				continue;
			}
			for (int j = 0; j < s->N; j++)
				if ((g == s->ng || s->gid[j] == g) && i >= t0[j])
					gi[n++] = j;
			key = memo_key(gi, n, eps[g], o);
			if (!dc && e->mkey[g] == key) {
				/* The same samples as last time: the same values (a
				 * memorized set has no per-layer array to own). */
				memo[i].sets[g] = e->mset[g];
				continue;
			}
			req[nreq] = (struct metrics_set_req){ .idx = gi, .n = n, .out = &memo[i].sets[g] };
			req_g[nreq] = g;
			req_key[nreq++] = key;
			gi += n;
		}
		if (nreq) {
			rc = pathway_set_new(e->gbar, s->N, s->L, s->E, o->tau, &ps, err);
			if (rc < 0) {
				gw_err_prefix(err, rc, "step %" PRId64, e->step);
				done++;
				goto out;
			}
			rc = metrics_sets_compute_cached(ps, &e->cons, e->loss, req, nreq, o, dc, NULL,
							 err);
			if (rc < 0) {
				done++;
				goto out;
			}
		}
		for (int k = 0; k < nreq; k++) {
			int g = req_g[k];

			memo[i].sets[g].epsilon = eps[g];
			GW_BUG_ON(memo[i].sets[g].per_layer_distance);
			e->mkey[g] = dc ? 0 : req_key[k];
			e->mset[g] = memo[i].sets[g];
		}
		pathway_set_free(ps);
		ps = NULL;
	}
	*ret_memo = memo;
	*ret_n = s->n;
	memo = NULL;
	if (s->n) {
		if (!s->memo_t0) {
			s->memo_t0 = gw_calloc((size_t)s->N + 1, sizeof(size_t));
			s->memo_eps = gw_calloc((size_t)s->ng + 2, sizeof(double));
		}
		memcpy(s->memo_t0, t0, (size_t)s->N * sizeof(size_t));
		memcpy(s->memo_eps, eps, ((size_t)s->ng + 1) * sizeof(double));
		s->memo_n = s->n;
		s->memo_last = s->e[s->n - 1].step;
		s->memo_tau = o->tau;
		s->memo_delta = o->delta;
	}
	rc = 0;
out:
	if (rc < 0)
		s->memo_n = 0; /* half done: the next one looks at every set */
	pathway_set_free(ps);
	routing_series_memo_free(memo, done);
	free(moved);
	free(eps_moved);
	free(t0);
	free(idx);
	free(req);
	free(req_g);
	free(req_key);
	free(eps);
	return rc;
}

bool routing_series_memo_differs(const cJSON *obj, const struct metrics_memo *memo)
{
	const cJSON *groups = cJSON_GetObjectItemCaseSensitive(obj, "groups");

	for (int g = 0; g < memo->n_sets; g++) {
		const cJSON *go = cJSON_GetObjectItemCaseSensitive(groups, memo->names[g]);
		cJSON *m;
		bool same;

		if (!cJSON_IsObject(go))
			continue;
		m = metrics_memorized_json(&memo->sets[g]);
		same = cJSON_Compare(m, cJSON_GetObjectItemCaseSensitive(go, "memorized"), 1);
		cJSON_Delete(m);
		if (!same)
			return true;
	}
	return false;
}

int routing_series_memo_apply(cJSON *obj, const struct metrics_memo *memo)
{
	cJSON *step = cJSON_GetObjectItemCaseSensitive(obj, "step");
	cJSON *groups = cJSON_GetObjectItemCaseSensitive(obj, "groups");

	if (!cJSON_IsNumber(step) || !cJSON_IsObject(groups) ||
	    step->valuedouble != (double)memo->step)
		return -EINVAL;
	for (int g = 0; g < memo->n_sets; g++) {
		cJSON *go = cJSON_GetObjectItemCaseSensitive(groups, memo->names[g]);
		cJSON *m;

		if (!cJSON_IsObject(go))
			continue;
		m = metrics_memorized_json(&memo->sets[g]);
		if (cJSON_HasObjectItem(go, "memorized"))
			cJSON_ReplaceItemInObjectCaseSensitive(go, "memorized", m);
		else
			cJSON_AddItemToObject(go, "memorized", m);
	}
	return 0;
}
