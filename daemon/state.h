/*
 * state.h — the one owner of the daemon's state directory.  Nothing else
 * writes there: run.c, job.c and the publisher ask this module.
 *
 * Layout of STATE (state.dir):
 *   journal.jsonl          the append-only log (journal.h: its format,
 *                          fsync rule, replay and lock; used only here)
 *   series.json            {"probe_hash": H}: the probe the series is of
 *   routing/STEP/          the kept vectors of each computed step:
 *     routing.safetensors  gbar, loss, ntokens, groups and ids (no per-token
 *                          records, no router matrices)
 *     consistency.json     {"c": [...], "adj": [...]} (or {"note": ...}):
 *                          the per-sample consistency, which needs the
 *                          router matrices and so cannot be recomputed
 *     tokens.safetensors   only for the newest step: the same with per-token
 *                          records, for the churn of the next checkpoint
 *   previous-H12-T/        an older series, moved aside when the probe
 *                          changed (its journal.jsonl, routing/, series.json)
 * Every file but the journal is replaced whole by gw_file_write_atomic
 * (engine/file.h), so a crash leaves the old or the new file.
 *
 * One series per directory: state_open with a probe hash other than the
 * one in series.json moves the old series to previous-<hash prefix>-<unix
 * time>/ and starts an empty one.  Without a probe (routing files only) the
 * series is not tied to one here (job.c refuses a routing file of another
 * probe).
 *
 * The result store.  state_results is the daemon's one store of results:
 * the latest per step, in step order, each a metrics object as the engine
 * made it (no "type" or "kind": the journal marks its lines "kind":
 * "result" on disk, the publisher adds "type" as it sends).  Alerts judge
 * it, the publisher answers snapshot and history from it (a borrowed
 * view), status counts it.  state_memo_apply updates the memorized subset
 * of its results in memory only: the journal keeps each result as first
 * written, and a restart recomputes the memorized subsets the same way.
 *
 * Kept vectors round trip as the engine's types: state_keep writes a
 * struct routing and its struct metrics_cons, state_read_kept gives them
 * back; the caller puts them into the engine's routing series.  This
 * module never touches a routing series.
 *
 * Threads: a struct state belongs to the loop thread, with one exception:
 * state_keep and state_keep_tokens touch no struct state and write only
 * inside the step directory given (made by state_routing_dir on the loop
 * thread before the job starts), and no other code writes that directory
 * while a job runs (jobs run one at a time), so the worker calls them.
 * Removing the previous step's token record (state_tokens_kept) is the
 * loop's, after the journal append of the job's result: until the new
 * step is durable, a crash recomputes it, and its churn needs them.
 *
 * Errors: 0 or -errno, with a message in *err naming the file.
 */
#ifndef GW_DAEMON_STATE_H
#define GW_DAEMON_STATE_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/metrics.h"
#include "engine/routing.h"
#include "engine/routing_series.h"
#include "journal.h"
#include "series.h"

#define STATE_SERIES_FILE "series.json"
#define STATE_ROUTING_KEEP "routing.safetensors"
#define STATE_CONS_FILE "consistency.json"
#define STATE_TOKENS_KEEP "tokens.safetensors"

struct state_opts {
	const char *dir;                  /* the state directory (its parent must exist) */
	struct journal_limits lim;        /* zero: journal.h's defaults */
	const char *probe_hash;           /* NULL: no probe configured */
	/* What the log should say (a torn journal tail, a probe change, an
	 * unreadable series.json); level a log.h enum log_level.  May be NULL. */
	void (*note)(void *ud, int level, const char *msg);
	void *ud;
};

struct state;

/*
 * Open the state directory: the journal (replayed; results lose their
 * "kind" in memory), then series.json against o->probe_hash: absent, it
 * is written; another hash, the old series is moved aside and a fresh one
 * started; without a probe_hash in it, it is taken as this probe's and
 * written anew.  Errors: those of journal_open (-EBUSY: "another grokwatchd
 * is using this state directory"), of moving the old series, of writing
 * series.json.
 */
int state_open(const struct state_opts *o, struct state **ret_state, struct gw_err *err);
void state_free(struct state *s); /* accepts NULL; releases the journal's lock */

const char *state_dir(const struct state *s);

/* ---- the journal and the result store (loop thread) ---- */

/* Append a result (borrowed; a metrics object with an integer "step" and
 * no label) durably, then make it the step's entry in the store.  Errors
 * as journal_append. */
int state_append_result(struct state *s, const cJSON *result, struct gw_err *err);
/* Append a failed or alert event (borrowed; with its "kind"), as
 * journal_append. */
int state_append(struct state *s, const cJSON *event, struct gw_err *err);

/* The store (borrowed; valid until state_free; items change with
 * state_append_result and state_memo_apply). */
const struct series *state_results(const struct state *s);
const cJSON *state_result(const struct state *s, int64_t step);
bool state_is_done(const struct state *s, int64_t step);
const struct series *state_failures(const struct state *s);
const cJSON *state_alerts(const struct state *s);
bool state_delivered(const struct state *s, int64_t alert, int hook); /* journal_delivered */

/*
 * The memorized subsets of every step moved with a new latest one: put
 * memo[i]'s values into the store's result of memo[i].step (in memory;
 * steps without a result, and `except`, are left alone).  Returns the
 * number of results whose values changed, and *ret_lowest (if not NULL)
 * the lowest such step (INT64_MAX when none): what alerts must judge again
 * from.
 */
size_t state_memo_apply(struct state *s, const struct metrics_memo *memo, size_t n,
			int64_t except, int64_t *ret_lowest);

/* ---- kept vectors ---- */

/* STATE/routing/STEP, created (and its creation synced) if needed; a new
 * string the caller frees.  Loop thread. */
int state_routing_dir(struct state *s, int64_t step, char **ret_path, struct gw_err *err);

/* Write r (without router matrices and per-token records) and cons into
 * dir, as routing.safetensors and consistency.json.  Any thread (above). */
int state_keep(const char *dir, const struct routing *r, const struct metrics_cons *cons,
	       struct gw_err *err);
/* Write r with its per-token records as dir/tokens.safetensors.  Any
 * thread (above); then state_tokens_kept on the loop thread. */
int state_keep_tokens(const char *dir, const struct routing *r, struct gw_err *err);
/* step's token record is now the newest: the one kept before it (if of
 * another step) is removed.  Loop thread. */
void state_tokens_kept(struct state *s, int64_t step);

/*
 * Read step's kept vectors back: *ret_r (routing_free) with r->step set,
 * *ret_cons (metrics_cons_free; n_samples of r; a "no router weights" note
 * when none were kept).  Errors: those of reading the routing file, and
 * -EBADMSG for a consistency.json that is not what state_keep writes; the
 * message names the file.
 */
int state_read_kept(struct state *s, int64_t step, struct routing **ret_r,
		    struct metrics_cons **ret_cons, struct gw_err *err);
/* Read step's token record (*ret_r, routing_free; r->step set) and take it
 * as the newest kept one; any other step's token record (left by a crash
 * after the journal append that superseded it) is removed.  -ENOENT when
 * there is none. */
int state_read_tokens(struct state *s, int64_t step, struct routing **ret_r,
		      struct gw_err *err);

#endif
