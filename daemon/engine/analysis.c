/*
 * analysis.c — one checkpoint analysed against the series (analysis.h
 * states the steps and the rules).
 *
 * Divided into: the object (probe, options, series, the previous
 * checkpoint's routing and the last one analysed, lent to the caller);
 * loading a checkpoint's routing (source_load and the probe check);
 * analysing it (consistency, series, mask, churn, metrics, JSON, memo);
 * and taking kept routing back at start-up.
 */
#include "engine/analysis.h"

#include <errno.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/step.h"

struct analysis {
	struct probe *probe;
	struct metrics_opts m;
	int threads;
	struct routing_series *series;
	struct routing *prev;           /* the previous checkpoint for churn, or NULL */
	/* The last analysed routing and consistency when it did not become
	 * prev, kept so that analysis_out can lend them. */
	struct routing *last;
	struct metrics_cons *last_cons;
	/* The distances of the step analysed last, for the memorized subsets
	 * recomputed against the latest (metrics.h). */
	struct metrics_dcache *cache;
};

struct analysis *analysis_new(struct probe *probe, const struct metrics_opts *m, int threads)
{
	struct analysis *a = gw_calloc(1, sizeof(*a));

	GW_BUG_ON(threads < 1);
	a->probe = probe;
	a->m = *m;
	a->m.threads = threads;
	a->threads = threads;
	a->series = routing_series_new();
	a->cache = metrics_dcache_new();
	return a;
}

static void drop_last(struct analysis *a)
{
	routing_free(a->last);
	a->last = NULL;
	metrics_cons_free(a->last_cons);
	a->last_cons = NULL;
}

void analysis_free(struct analysis *a)
{
	if (!a)
		return;
	drop_last(a);
	probe_free(a->probe);
	routing_series_free(a->series);
	routing_free(a->prev);
	metrics_dcache_free(a->cache);
	free(a);
}

const struct probe *analysis_probe(const struct analysis *a)
{
	return a->probe;
}

size_t analysis_steps(const struct analysis *a)
{
	return routing_series_count(a->series);
}

void analysis_out_release(struct analysis_out *o)
{
	cJSON_Delete(o->result);
	metrics_result_free(o->res);
	routing_series_memo_free(o->memo, o->n_memo);
	memset(o, 0, sizeof(*o));
}

/* ---- loading ------------------------------------------------------------------ */

int analysis_load(const struct analysis *a, const char *path, const struct forward_opts *fo,
		  struct routing **ret, enum source_kind *ret_kind, struct gw_err *err)
{
	struct forward_opts o = { 0 };
	struct routing *r = NULL;
	enum source_kind kind;
	int rc;

	if (fo)
		o = *fo;
	o.threads = a->threads;
	rc = source_load(path, a->probe, &o, &r, &kind, err);
	if (rc < 0)
		return rc;
	if (o.cancel && atomic_load(o.cancel)) {
		routing_free(r);
		return gw_errf(err, -ECANCELED, "\"%s\": cancelled", path);
	}
	if (a->probe && r->probe_hash && strcmp(r->probe_hash, a->probe->hash)) {
		rc = gw_errf(err, -EINVAL,
			     "\"%s\": routing records of probe %.12s, not of the configured probe %.12s",
			     path, r->probe_hash, a->probe->hash);
		routing_free(r);
		return rc;
	}
	*ret = r;
	*ret_kind = kind;
	return 0;
}

/* ---- analysing ------------------------------------------------------------------ */

/* The routing to take churn against for r at `step`: the kept previous
 * one when it is the series' step just before (idx is step's index), or,
 * for a step < 0, whatever was analysed before. */
static const struct routing *churn_base(const struct analysis *a, int64_t step, long idx)
{
	if (!a->prev)
		return NULL;
	if (step < 0)
		return a->prev;
	if (idx > 0 && routing_series_step_at(a->series, (size_t)idx - 1) == a->prev->step)
		return a->prev;
	return NULL;
}

/* The trainer's own loss and learning rate at the step, beside the routing
 * metrics, where the directory's trainer_state.json logged them.  Its
 * absence or a fault in it costs the result nothing but these. */
static void add_trainer_log(cJSON *result, const char *path, int64_t step)
{
	struct trainer_log t;
	struct stat st;
	cJSON *o;

	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    step_trainer_log(path, step >= 0 ? step : INT64_MAX, &t, NULL) < 0)
		return;
	o = cJSON_AddObjectToObject(result, "trainer");
	if (t.loss_step >= 0) {
		cJSON_AddNumberToObject(o, "loss", t.loss);
		cJSON_AddNumberToObject(o, "loss_step", (double)t.loss_step);
	}
	if (t.lr_step >= 0) {
		cJSON_AddNumberToObject(o, "learning_rate", t.lr);
		cJSON_AddNumberToObject(o, "learning_rate_step", (double)t.lr_step);
	}
}

int analysis_add(struct analysis *a, const char *what, struct routing *r, enum source_kind kind,
		 const char *name, int64_t step, bool memo, struct analysis_out *out,
		 struct gw_err *err)
{
	struct analysis_out o = { .source = kind };
	struct metrics_cons *cons = NULL;
	struct metrics_memorized mem = { 0 };
	const struct routing *prev;
	bool *mask = NULL;
	double *eps = NULL;
	long idx = -1;
	int rc;

	memset(out, 0, sizeof(*out));
	drop_last(a);
	r->step = step;
	if (name) {
		free(r->checkpoint);
		r->checkpoint = gw_strdup(name);
	}
	rc = metrics_opts_check(&a->m, err);
	if (rc < 0)
		goto fail;
	rc = metrics_consistency(r, a->m.consistency_floor, &cons, err);
	if (rc < 0)
		goto fail;
	if (step >= 0) {
		rc = routing_series_put(a->series, r, cons, err);
		if (rc < 0)
			goto fail;
		idx = routing_series_find(a->series, step);
		mask = gw_malloc(((size_t)r->n_samples + 1) * sizeof(bool));
		mem.n_groups = routing_series_groups(a->series);
		eps = gw_calloc((size_t)mem.n_groups + 1, sizeof(double));
		routing_series_memorized(a->series, (size_t)idx, &a->m, mask, eps);
		mem.mask = mask;
		mem.epsilon = eps;
	}
	prev = churn_base(a, step, idx);
	/* The series holds r's routing at `step` now: the distances computed
	 * here serve the memorized subsets recomputed for it (step 8). */
	metrics_dcache_reset(a->cache, step);
	rc = metrics_compute_cached(r, prev, cons, step >= 0 ? &mem : NULL, &a->m,
				    step >= 0 ? a->cache : NULL, &o.res, err);
	if (rc < 0)
		goto fail;
	o.result = metrics_result_json(o.res);
	cJSON_AddStringToObject(o.result, "source", source_kind_name(kind));
	cJSON_AddStringToObject(o.result, "arch", r->arch ? r->arch : "");
	add_trainer_log(o.result, what, step);
	if (memo && step >= 0) {
		rc = routing_series_recompute_cached(a->series, &a->m, a->cache, &o.memo,
						     &o.n_memo, err);
		if (rc < 0)
			goto fail;
	}
	/* The newest step becomes the previous checkpoint of the next one. */
	/* (A step computed again, its checkpoint rewritten, replaces itself.) */
	o.newest = step < 0 || !a->prev || a->prev->step <= step;
	if (o.newest) {
		routing_free(a->prev);
		a->prev = r;
	} else {
		a->last = r;
	}
	a->last_cons = cons;
	o.routing = r;
	o.cons = cons;
	free(mask);
	free(eps);
	*out = o;
	return 0;
fail:
	gw_err_prefix(err, rc, "\"%s\"", what);
	free(mask);
	free(eps);
	metrics_cons_free(cons);
	routing_free(r);
	analysis_out_release(&o);
	return rc;
}

int analysis_run(struct analysis *a, const char *path, const char *name, int64_t step,
		 const struct forward_opts *fo, bool memo, struct analysis_out *out,
		 struct gw_err *err)
{
	struct routing *r = NULL;
	enum source_kind kind;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = analysis_load(a, path, fo, &r, &kind, err);
	if (rc < 0)
		return rc;
	return analysis_add(a, path, r, kind, name, step, memo, out, err);
}

/* ---- kept routing, at start-up ---------------------------------------------------- */

int analysis_put(struct analysis *a, const struct routing *r, const struct metrics_cons *cons,
		 struct gw_err *err)
{
	int rc = routing_series_put(a->series, r, cons, err);

	if (r->step == metrics_dcache_step(a->cache))
		metrics_dcache_reset(a->cache, -1);   /* that step's routing was replaced */
	return rc > 0 ? 0 : rc;
}

void analysis_set_prev(struct analysis *a, struct routing *r)
{
	routing_free(a->prev);
	a->prev = r;
}

int analysis_memo(const struct analysis *a, struct metrics_memo **ret_memo, size_t *ret_n,
		  struct gw_err *err)
{
	if (routing_series_count(a->series) == 0) {
		*ret_memo = NULL;
		*ret_n = 0;
		return 0;
	}
	return routing_series_recompute_cached(a->series, &a->m, a->cache, ret_memo, ret_n, err);
}
