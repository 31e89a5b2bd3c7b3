/*
 * analysis.h — one checkpoint analysed against the series of those before
 * it (SPEC §3–§4): the one pipeline that the daemon's job (job.c, on a pool
 * thread) and `grokwatchd analyze` (a loop over its arguments) both run.
 *
 * A struct analysis owns what lives between checkpoints:
 *   - the probe, or none (then only routing files can be analysed);
 *   - the metric options (struct metrics_opts, copied);
 *   - the routing series (routing_series.h): every step's gbar, loss and
 *     per-sample consistency, for the memorized subset;
 *   - the newest step's routing, kept whole (per-token records included),
 *     for the churn of the step that follows it;
 *   - the distances of the step analysed last (metrics_dcache), so that
 *     step 8 takes that step's memorized subsets from them instead of
 *     computing them a second time.
 *
 * One checkpoint, in order (analysis_run = analysis_load + analysis_add):
 *   1. source_load (source.h): routing file or forward pass, with the
 *      caller's forward_opts for progress and cancel;
 *   2. a routing file of another probe than the analysis's is refused;
 *   3. the per-sample consistency (metrics_consistency);
 *   4. the routing goes into the series at its step (a late older step in
 *      its place; a step seen before replaces the first);
 *   5. the memorized mask at the step against the series' latest, with
 *      each group's epsilon, given or chosen at the latest (SPEC §4);
 *   6. churn against the step just before this one in the series, when
 *      that step's routing is the one kept in memory (so a late older step
 *      has none: its predecessor's per-token records are gone);
 *   7. the metrics and their JSON (metrics_result_json, which carries no
 *      label, plus "source" and "arch"; the caller adds what it measures);
 *   8. when asked, the memorized-subset values of every step against the
 *      new latest one (routing_series_recompute), to republish.
 * A step < 0 (analyze's checkpoints whose step neither the name nor the
 * files tell) skips 4 and 8: its memorized subset is its own (the
 * single-checkpoint rule), its churn is against the checkpoint analysed
 * just before, and it becomes that for the next.
 *
 * Start-up: analysis_put takes a kept step's routing and consistency back
 * into the series, analysis_set_prev makes the newest kept per-token
 * records the previous checkpoint for churn; analysis_memo recomputes the
 * memorized subsets on demand.
 *
 * Errors: 0 or a negative errno with a message in *err naming the input
 * (engine/error.h).  Aborts on out-of-memory.
 * Threads: none of its own, no global state but OpenBLAS's thread count
 * (set from `threads` by the forward pass).  One thread uses an analysis
 * at a time: the daemon's worker while a job runs, the loop otherwise.
 */
#ifndef GW_ENGINE_ANALYSIS_H
#define GW_ENGINE_ANALYSIS_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/forward.h"
#include "engine/metrics.h"
#include "engine/probe.h"
#include "engine/routing.h"
#include "engine/routing_series.h"
#include "engine/source.h"

struct analysis;

/*
 * A new analysis.  probe may be NULL (routing files only); ownership
 * moves here.  m is copied (its eps_groups must outlive the analysis);
 * threads (>= 1) is used for OpenBLAS, the forward pass and the distance.
 * Aborts on out-of-memory; the options are checked by analysis_add
 * (metrics_opts_check).
 */
struct analysis *analysis_new(struct probe *probe, const struct metrics_opts *m, int threads);
void analysis_free(struct analysis *a); /* accepts NULL */

const struct probe *analysis_probe(const struct analysis *a); /* NULL without one */
/* Steps in the series. */
size_t analysis_steps(const struct analysis *a);

/* What one checkpoint gave. */
struct analysis_out {
	/* Owned by the caller (analysis_out_release frees them). */
	cJSON *result;               /* the metrics JSON (above) */
	struct metrics_result *res;  /* the same as numbers, for a table */
	struct metrics_memo *memo;   /* when asked: [n_memo], every step against the latest */
	size_t n_memo;
	/* Borrowed from the analysis until its next analysis_add or
	 * analysis_free: what the daemon keeps on disk. */
	const struct routing *routing;
	const struct metrics_cons *cons;
	/* The routing is now the previous checkpoint for churn (the newest
	 * step so far, or a step < 0): where it has per-token records, they
	 * are the ones to keep for churn after a restart. */
	bool newest;
	enum source_kind source;
};

void analysis_out_release(struct analysis_out *o); /* accepts an all-zero one */

/*
 * Step 1 and 2 above: the routing of `path` (source_load's rules and
 * errors; fo may be NULL, and its threads are replaced by the analysis's).
 * On success *ret is a new routing (routing_free) and *ret_kind its
 * source.  Errors: those of source_load; -ECANCELED when fo->cancel was
 * set by the time the load returned; -EINVAL for a routing of another
 * probe ("\"PATH\": routing records of probe H1, not of the configured
 * probe H2", each hash's first 12 digits).
 */
int analysis_load(const struct analysis *a, const char *path, const struct forward_opts *fo,
		  struct routing **ret, enum source_kind *ret_kind, struct gw_err *err);

/*
 * Steps 3 to 8: analyse r (ownership moves here, also on failure) as
 * checkpoint `name` (NULL: r's own) at `step`, from source `kind`.
 * `memo` asks for step 8.  `what` names the input in messages (a path).
 * Where `what` is a directory whose trainer_state.json logged them
 * (step_trainer_log: at or before step, the last entry when step < 0),
 * the result also carries "trainer": {"loss", "loss_step",
 * "learning_rate", "learning_rate_step"} (each pair only where logged),
 * the trainer's own figures beside the routing metrics.
 * On success *out is filled (release it); on failure it is all zero and
 * the series is as the put left it (a failure after step 4 keeps the step
 * in the series, as a retry replaces it).
 * Errors: -EINVAL (options out of range, a routing whose N, L, E or groups
 * differ from the series', a group named "all"; the message names `what`),
 * -E2BIG (ROUTING_SERIES_MAX steps), those of the distance.
 */
int analysis_add(struct analysis *a, const char *what, struct routing *r, enum source_kind kind,
		 const char *name, int64_t step, bool memo, struct analysis_out *out,
		 struct gw_err *err);

/* analysis_load then analysis_add(a, path, r, kind, name, step, memo). */
int analysis_run(struct analysis *a, const char *path, const char *name, int64_t step,
		 const struct forward_opts *fo, bool memo, struct analysis_out *out,
		 struct gw_err *err);

/* A kept step's routing and consistency (borrowed; r->step >= 0) back
 * into the series.  Errors: those of routing_series_put. */
int analysis_put(struct analysis *a, const struct routing *r, const struct metrics_cons *cons,
		 struct gw_err *err);

/* Make r (ownership moves here) the previous checkpoint for churn. */
void analysis_set_prev(struct analysis *a, struct routing *r);

/* The memorized-subset values of every step in the series against its
 * latest: *ret_memo as routing_series_recompute (no steps: NULL, 0). */
int analysis_memo(const struct analysis *a, struct metrics_memo **ret_memo, size_t *ret_n,
		  struct gw_err *err);

#endif
