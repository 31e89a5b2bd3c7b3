/*
 * journal.h — the daemon's durable history, in the state directory.
 *
 * Its part of the state directory (state.h has the whole layout):
 *   journal.jsonl      append-only JSON Lines, one event a line:
 *                        {"kind": "result", "step": N, ...}   a checkpoint's metrics
 *                        {"kind": "failed", "step": N, "reason": "...", "attempts": K}
 *                        {"kind": "alert", ..., "hooks": [I, ...]}   a transition,
 *                          with the indices of the hooks it runs
 *                        {"kind": "delivery", "alert": K, "hook": I, ...}
 *                          hook I of the K-th alert event (0-based) ran to
 *                          its end (whatever its outcome)
 *   NAME               state files, replaced whole by journal_write_state
 *                      (gw_file_write_atomic)
 *   routing/STEP/      one directory per step for kept routing vectors
 *                      (what goes in them: state.h)
 *
 * Durability: journal_append returns only after the line and its newline
 * are written and fdatasync'ed, so a result the daemon publishes after
 * the append survives a crash or power loss.  A record counts only with its
 * newline: on open, a last line with no newline, or whose JSON is invalid,
 * is a write torn by a crash; it is ignored and the file is truncated to
 * the end of the last good line, so the next append starts on a clean line.
 * An invalid line anywhere else is corruption, refused with the file and
 * the line number (never skipped: silently losing history is worse than
 * stopping).  If fdatasync itself fails the journal refuses every further
 * append (-EIO): after a failed fsync the kernel may have dropped the dirty
 * pages, and retrying would report success for data that is not on disk.
 *
 * Replay folds the events into memory: the latest result per step, without
 * its "kind" (the label marks lines on disk; results in memory are the
 * engine's metrics objects as they are) (a
 * second result for a step replaces the first; a late older step takes its
 * place in step order), failures (a later result for the step clears its
 * failure), and alerts in order.  Memory is bounded by the file size limit.
 *
 * Exclusivity: the journal holds an flock on journal.jsonl; a second
 * daemon on the same state directory gets -EBUSY.
 *
 * Owner: state.c alone opens the journal (state.h); nothing else writes the
 * state directory.
 *
 * Threads: a journal belongs to one thread (the daemon's loop thread);
 * nothing here is locked.  Calls block on disk I/O (an append is one write
 * and one fdatasync, a few milliseconds), which the daemon accepts on the
 * loop for results that arrive minutes apart.
 */
#ifndef GW_DAEMON_JOURNAL_H
#define GW_DAEMON_JOURNAL_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "series.h"

#define JOURNAL_FILE "journal.jsonl"
#define JOURNAL_STATE_NAME_MAX 64
#define JOURNAL_HOOKS_MAX 1024 /* hook indices in delivery records */

struct journal_limits {
	size_t line_bytes;   /* longest record, newline included (limits.journal_line_bytes) */
	uint64_t file_bytes; /* largest journal file (limits.journal_bytes) */
};

struct journal;

/*
 * Open (creating if needed, one level: the parent must exist) the state
 * directory `dir`, replay journal.jsonl, repair a torn tail, and remove
 * leftover temporary state files.  lim may be NULL for the defaults
 * (16 MiB lines, 4 GiB file).
 * Errors: -EBUSY (another process holds the journal), -EBADMSG (a corrupt
 * line: message names the file and line), -EFBIG (file over the limit, or a
 * line over the line limit), -errno from the file system.
 */
int journal_open(const char *dir, const struct journal_limits *lim, struct journal **ret_journal,
		 struct gw_err *err);
void journal_free(struct journal *j); /* accepts NULL; releases the lock */

/*
 * Append one event (borrowed; the journal keeps its own copy), durably.
 * The event must be an object with "kind" "result", "failed", "alert" or
 * "delivery" (integer "alert" >= 0 and "hook" in [0, JOURNAL_HOOKS_MAX));
 * result and failed need an integer "step" in [0, STEP_MAX]; failed needs a
 * string "reason" and may carry an integer "attempts" >= 1 (default 1).
 * Errors: -EINVAL (event malformed), -EFBIG (line or file over its limit),
 * -EIO (journal broken by an earlier failed sync), -errno (write/sync;
 * a partly written line is truncated away before returning).
 */
int journal_append(struct journal *j, const cJSON *event, struct gw_err *err);

/* Append a result (borrowed: a metrics object without "kind"), as
 * journal_append, the line marked {"kind": "result", ...}. */
int journal_append_result(struct journal *j, const cJSON *result, struct gw_err *err);

/* Replace step's result in memory only (ownership of `result` moves here):
 * for the recomputed memorized subsets, which the file keeps as first
 * written.  The step must have a result. */
void journal_set_result(struct journal *j, int64_t step, cJSON *result);

/* The latest result for a step (the journal's copy without its "kind",
 * borrowed until the next append), or NULL. */
const cJSON *journal_result(const struct journal *j, int64_t step);
bool journal_is_done(const struct journal *j, int64_t step);
/* All results, latest per step, in step order (borrowed). */
const struct series *journal_results(const struct journal *j);

/* Failed steps with no later result, in step order: each item is the
 * failed event (with "reason" and "attempts"), borrowed. */
const struct series *journal_failures(const struct journal *j);
/* Convenience: the failure of `step`: 0 and its reason (borrowed) and
 * attempt count, or -ENOENT. */
int journal_failure(const struct journal *j, int64_t step, const char **ret_reason,
		    int *ret_attempts);

/* Alerts in journal order (a borrowed cJSON array). */
const cJSON *journal_alerts(const struct journal *j);
/* Whether a delivery record says hook `hook` of the alert event at index
 * `alert` of journal_alerts ran to its end. */
bool journal_delivered(const struct journal *j, int64_t alert, int hook);

/* Bytes of torn tail removed by journal_open (0 if none), for the log. */
uint64_t journal_torn_bytes(const struct journal *j);
/* Current size of journal.jsonl in bytes. */
uint64_t journal_size(const struct journal *j);
/* The state directory (borrowed). */
const char *journal_dir(const struct journal *j);

/*
 * Replace state file `name` (letters, digits, '.', '_', '-'; not starting
 * with '.'; at most JOURNAL_STATE_NAME_MAX bytes) with `len` bytes of
 * `text`: write ".NAME.tmp", fsync, rename over NAME, fsync the directory.
 * A crash leaves either the old or the new file, never a mix; a leftover
 * ".NAME.tmp" is ignored by readers and removed by the next journal_open.
 */
int journal_write_state(struct journal *j, const char *name, const char *text, size_t len,
			struct gw_err *err);

/* Read state file `name` (at most `max` bytes) into a new NUL-terminated
 * buffer the caller frees, by gw_file_read: -ENOENT if absent, -EFBIG if
 * over max, -EINVAL if not a regular file, -EAGAIN if it changed while
 * read. */
int journal_read_state(const struct journal *j, const char *name, size_t max, char **ret_text,
		       size_t *ret_len, struct gw_err *err);

/* The directory for `step`'s routing files, DIR/routing/STEP, created (and
 * its creation synced) if needed.  *ret_path is new; the caller frees it. */
int journal_routing_dir(struct journal *j, int64_t step, char **ret_path, struct gw_err *err);

/* ---- check and repair, with no daemon running (grokwatchd journal) ---- */

/* Called for each damaged line (damaged true) and for a torn last record
 * (false): msg names the file, the line, its byte offset and length, and
 * the fault. */
typedef void (*journal_report_fn)(void *ud, bool damaged, const char *msg);

struct journal_check_out {
	uint64_t lines;   /* lines in the file */
	uint64_t damaged; /* invalid or over-long lines before the last */
	uint64_t torn;    /* a torn last record (0 or 1) */
	uint64_t moved;   /* journal_repair: lines moved aside */
};

/*
 * Judge every line of DIR/journal.jsonl as journal_open's replay would,
 * without stopping at the first damaged one, and report each (lim NULL or
 * zero fields: the defaults).  Reads only; takes no lock.  Errors: -errno
 * of opening or mapping the file, -EFBIG (file over lim->file_bytes).
 */
int journal_check(const char *dir, const struct journal_limits *lim, journal_report_fn report,
		  void *ud, struct journal_check_out *out, struct gw_err *err);

/*
 * journal_check, then, if any line is damaged or torn: every such line is
 * written to DIR/journal-damaged-YYYYmmddTHHMMSSZ.jsonl (UTC; one line
 * each, a newline added where it had none) and journal.jsonl is replaced
 * by its good lines, in order, each durably (gw_file_write_atomicv: the
 * aside file first, so a crash loses no byte).  Holds the journal's lock
 * throughout: -EBUSY while a daemon runs on DIR.  *ret_aside (if not NULL)
 * is the new file's path (the caller frees it), NULL when nothing moved.
 */
int journal_repair(const char *dir, const struct journal_limits *lim, journal_report_fn report,
		   void *ud, struct journal_check_out *out, char **ret_aside, struct gw_err *err);

#endif
