/*
 * routing_series.h — every checkpoint's routing vectors of one probe, kept
 * so that the memorized subset (SPEC §4; the rule is in metrics.h) can be
 * found again, and its pathway metrics recomputed for every checkpoint,
 * whenever a new latest checkpoint moves it — with no forward pass.
 *
 * Per step the series keeps a copy of gbar and loss and the per-sample
 * consistency (struct metrics_cons), computed once from that checkpoint's
 * router weights when the step is put.  Consistency is a per-sample number
 * that depends neither on the subset nor on tau, so keeping it instead of
 * the router weights saves L*E*H floats a step (8 MB for OLMoE) and the
 * sgemm on every recomputation.  gbar is kept whole because the pathway
 * strings depend on tau.  Memory: about N*L*E*4 bytes a step.
 *
 * Steps are kept in increasing order; a late checkpoint with an older step
 * is inserted in its place, and a second put of a step replaces the first.
 * (Named routing_series, not series: daemon/series.h is the daemon's
 * store of JSON results.)
 *
 * Thread safety: none; one thread uses a series at a time.
 */
#ifndef GW_ENGINE_ROUTING_SERIES_H
#define GW_ENGINE_ROUTING_SERIES_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/metrics.h"
#include "engine/routing.h"

#define ROUTING_SERIES_MAX 100000 /* steps (as limits.checkpoints) */

struct routing_series;

struct routing_series *routing_series_new(void);
void routing_series_free(struct routing_series *s); /* accepts NULL */

/*
 * Put checkpoint r (r->step >= 0) with its per-sample consistency `cons`
 * (from metrics_consistency(r); may be NULL, then computed here with the
 * default floor, METRICS_CONSISTENCY_FLOOR).  Copies
 * what it keeps; r and cons stay the caller's.  The first put fixes N, L,
 * E and the samples' groups; later ones must match them.
 * Returns 1 if it replaced the step, 0 if the step is new.
 * Errors: -EINVAL (step < 0, N/L/E or groups differing from the series,
 * a cons of another N; message says which), -E2BIG (ROUTING_SERIES_MAX
 * steps already and the step is new).
 */
int routing_series_put(struct routing_series *s, const struct routing *r,
		       const struct metrics_cons *cons, struct gw_err *err);

size_t routing_series_count(const struct routing_series *s);
/* Step of the i-th checkpoint (increasing); i < count. */
int64_t routing_series_step_at(const struct routing_series *s, size_t i);
/* Index of `step`, or -1. */
long routing_series_find(const struct routing_series *s, int64_t step);
/* Samples of the series (0 before the first put). */
int routing_series_samples(const struct routing_series *s);

/* Distinct groups of the series (0 before the first put), in order of
 * first appearance: the order of routing_series_memorized's epsilons. */
int routing_series_groups(const struct routing_series *s);

/*
 * The memorized mask at the i-th checkpoint against the series' latest
 * one (metrics.h states the rule, and how epsilon is chosen):
 * mask[0 .. N) set true or false, and, when eps is not NULL,
 * eps[0 .. routing_series_groups) the epsilon of each group.  i < count.
 */
void routing_series_memorized(const struct routing_series *s, size_t i,
			      const struct metrics_opts *o, bool *mask, double *eps);

/*
 * The memorized-subset metrics of every checkpoint, against the current
 * latest one.  memo[i] is for the i-th step; its sets[] are in the series'
 * group order (first appearance), then "all", each with its epsilon.
 */
struct metrics_memo {
	int64_t step;
	int n_sets;
	const char *const *names; /* [n_sets], owned by the series */
	struct metrics_set *sets; /* [n_sets], owned by the memo */
};

/*
 * Recompute the above for every step.  On success *ret_memo is a new
 * array of *ret_n memos (routing_series_memo_free).  Incremental: each
 * step keeps its sets with a hash of what they came from (samples,
 * epsilon, tau, delta), and only a set whose subset or epsilon moved with
 * the new latest step is computed again (with a fixed epsilon, a step's
 * memorized samples change only when a sample's loss at the latest step
 * ends its run), so a long series costs the pathway rule and distance of
 * the few sets that changed, not of every step.
 * Errors: those of the pathway rule and the distance (-EINVAL).
 */
int routing_series_recompute(struct routing_series *s, const struct metrics_opts *o,
			     struct metrics_memo **ret_memo, size_t *ret_n, struct gw_err *err);
/* The same, each step's sets computed once (a group holding every sample
 * is `all`), and the step metrics_dcache_step(cache) taking the
 * distances cache holds (cache may be NULL; it must be keyed to the
 * routing the series holds for that step, and o the same options). */
int routing_series_recompute_cached(struct routing_series *s, const struct metrics_opts *o,
				    struct metrics_dcache *cache, struct metrics_memo **ret_memo,
				    size_t *ret_n, struct gw_err *err);
void routing_series_memo_free(struct metrics_memo *memo, size_t n); /* accepts NULL */

/* Whether routing_series_memo_apply(obj, memo) would change obj: a
 * comparison of the small "memorized" objects, not a copy of obj. */
bool routing_series_memo_differs(const cJSON *obj, const struct metrics_memo *memo);

/*
 * Replace the "memorized" object of every group of a metrics JSON object
 * (metrics_result_json's) by memo's values, for republishing a checkpoint
 * whose memorized subset has moved.  Groups of obj without a set in memo
 * are left as they are.  Returns 0, or -EINVAL when obj is not a metrics
 * object or its "step" differs from memo's.
 */
int routing_series_memo_apply(cJSON *obj, const struct metrics_memo *memo);

#endif
