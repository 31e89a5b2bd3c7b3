/*
 * board.h — what `grokwatch serve` knows of the daemons it follows, kept
 * from the messages libgrokwatch hands over, and the texts made from it:
 * the page's series (JSON), the Prometheus exposition, and the events
 * pushed to live pages.
 *
 * Per daemon (a "run"): every result as a row of numbers, one column per
 * numeric value the results carry (columns named by their dotted path in
 * the result: "groups.math.pathway_distance", "groups.all.memorized.loss",
 * "health.overall.imbalance", "health.layers.3.dead_experts"; arrays are
 * not columns), rows in step order, a late result in its step's place; the
 * latest result whole (for expert load in /metrics); the daemon's last
 * status, progress and client-side counters; and alert periods: when each
 * alert fired and resolved, in steps (from the alert messages, which carry
 * the step; an alert already firing when the bridge joined is placed at
 * the last result published before its startsAt, or has no known start).
 *
 * The board holds no reference to the client: the caller feeds it.  A
 * board belongs to one thread at a time (serve holds its lock around every
 * call).  Errors are 0 or a negative errno; -ENOMEM leaves the board as it
 * was before the call.
 */
#ifndef GW_CLI_BOARD_H
#define GW_CLI_BOARD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "grokwatch.h"

#define BOARD_ALERTS_MAX 1000   /* alert periods kept per run; the oldest resolved go first */
#define BOARD_COLUMNS_MAX 20000 /* columns per run; values beyond are not kept */

struct board;

/* A board for n daemons (their endpoints as given to serve, copied).
 * Errors: -ENOMEM, -EINVAL (n is 0). */
int board_new(size_t n, const char *const *endpoints, struct board **ret_board);
void board_free(struct board *b); /* accepts NULL */

/* The client's view of daemon info->index: state, run, epoch, counters. */
void board_set_info(struct board *b, size_t daemon, const struct gw_daemon_info *info);

/*
 * Take one message from gw_client_next.  Metrics results become rows;
 * status, heartbeat, progress, alert, error and resync messages update
 * what they describe.  For each change a live page must see, an event is
 * written to `events` (may be NULL) as Server-Sent Events lines without
 * an id ("event: NAME\ndata: JSON\n\n"): "result" (the run, step, time and
 * every column's value), "status", "progress", "alert" (the period),
 * "daemon_error" (not "error": EventSource uses that name for its own
 * connection errors), "resync".  Errors: -ENOMEM.
 */
int board_apply(struct board *b, const struct gw_msg *m, FILE *events);

/* The (group, metric) pairs of daemon's memorized columns, the ones a new
 * latest result recomputes at every earlier step (SPEC §4): pair i, or
 * -ERANGE past the last.  The strings are borrowed until the next call
 * that changes the board. */
int board_memo_column(const struct board *b, size_t daemon, size_t i, const char **ret_group,
		      const char **ret_metric);

/* Replace a column's values with a history reply's (steps the board has no
 * row for are ignored); each changed value goes into one "memo" event on
 * `events`.  Errors: -ENOMEM. */
int board_apply_history(struct board *b, size_t daemon, const struct gw_history *h,
			FILE *events);

/* The index of the daemon whose run is `run`.  Errors: -ENOENT. */
int board_find_run(const struct board *b, const char *run, size_t *ret_daemon);

/* How many daemons, and daemon i's run ("" until known). */
size_t board_count(const struct board *b);
const char *board_run(const struct board *b, size_t daemon);

/*
 * The page's data, as a JSON array with one object per daemon (all, or
 * only `daemon` when it is not SIZE_MAX): endpoint, run, epoch, state,
 * counters, status, progress, alerts (periods), errors, "columns" (the
 * column names) and "rows" in step order, each [step, time, value...] by
 * column index, null where absent; a row may be shorter than the columns
 * (its missing values are absent).  Not const: each row's text is kept
 * for the next call until the row changes.
 */
void board_series_json(struct board *b, size_t daemon, FILE *f);

/*
 * The Prometheus text exposition of every run's latest result: each
 * numeric group value as a gauge labelled run and group
 * (grokwatch_pathway_distance, grokwatch_memorized_loss, ...), the latest
 * step, overall and per-layer routing health, per layer and expert load,
 * firing alerts (grokwatch_alerts, as Prometheus's ALERTS), and the
 * client's counters per daemon.  Families are written whole, each with
 * # HELP and # TYPE.
 */
void board_prometheus(const struct board *b, FILE *f);

#endif
