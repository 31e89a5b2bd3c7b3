/*
 * watch.h — the checkpoint watcher: finds checkpoint directories under the
 * watched root and says when each is complete (SPEC §2).
 *
 * Which entries count.  A directory directly under the root whose name is
 * not temporary (watch_name_is_temporary: trainers write "tmp-checkpoint-500"
 * or "step1000.tmp" and rename it when done) and matches one of the name
 * patterns (step.h) is a checkpoint of that step.  With
 * step_from_trainer_state, a directory no pattern matches counts too once
 * its trainer_state.json gives a global_step.  Files and other names are
 * ignored, each directory so ignored logged once at info (note()); at most
 * max_entries entries are tracked.
 *
 * When a checkpoint is reported.  After nothing under it has changed for
 * the quiet period and ckpt_check_complete (checkpoint.h) says it is
 * complete: ready() is called once.  A checkpoint that can never be
 * complete as it stands (malformed) gets bad() and is looked at again only
 * after it changes; one of another trainer's format (checkpoint.h's
 * -ENOTSUP) gets bad() once for as long as the refusal reads the same.  One that vanishes after ready() gets gone(), so a
 * queued or running job can be dropped.  Steps the caller already has
 * (is_done) are not reported, unless the files they were computed from
 * change: every poll interval a sweep compares the ckpt_signature
 * (checkpoint.h) of up to 16 computed checkpoints, in turn, with the one
 * their result was computed from (watch_done's, or the done_sig callback's
 * at start-up, so a rewrite while the daemon was down is seen too); one
 * that differs is pending again and reported once quiet and complete.
 *
 * Two ways of noticing change:
 *  - events: uv_fs_event (inotify) on the root, for checkpoints appearing,
 *    being renamed or deleted, and on each checkpoint still pending, for
 *    files written inside it.  Every event restarts that checkpoint's
 *    quiet timer, so it is judged quiet_ms after its last change and an
 *    idle daemon wakes for nothing.  Changes below a checkpoint's first
 *    level raise no event; the size checks of completeness cover the
 *    weights, which trainers write at the first level.
 *  - poll: a timer every poll_ms reads the root and, for each pending
 *    checkpoint, a signature of every file under it (two levels deep: name,
 *    size, mtime, inode).  A checkpoint is quiet when its signature has not
 *    changed for quiet_ms.  uv_fs_poll is not used: it compares the stat of
 *    one path, and a file growing inside a directory does not change the
 *    directory's stat.
 *  auto picks poll when statfs(2) says the root is on NFS, Lustre, FUSE,
 *  CIFS/SMB, GPFS, Ceph, 9p, AFS or similar (inotify sees only local
 *  changes there), and events otherwise; any failure to start an inotify
 *  watch (the per-user watch limit, say) falls back to poll with a note.
 *  A root that does not exist yet is waited for, checked every poll_ms.
 *
 * Ownership: watch_new copies the options it keeps.  Callbacks run on the
 * loop thread; they may call watch_done / watch_failed but not
 * watch_close.  The struct is freed in the last close callback after
 * watch_close, so run the loop once more (STYLE.md habit 2).
 * Only the loop thread may call anything here.
 */
#ifndef GW_DAEMON_WATCH_H
#define GW_DAEMON_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "engine/error.h"

enum watch_mode { WATCH_AUTO, WATCH_EVENTS, WATCH_POLL };

struct watch_opts {
	const char *root;
	const char *const *patterns; /* NULL-terminated */
	bool step_from_trainer_state;
	const char *marker;          /* NULL or "" = none */
	uint64_t quiet_ms;
	int mode;                    /* enum watch_mode */
	uint64_t poll_ms;
	size_t max_entries;
};

struct watch_callbacks {
	/* Complete and quiet: compute it.  `path` is root/name. */
	void (*ready)(void *ud, const char *name, const char *path, int64_t step);
	/* A checkpoint already reported ready is gone (deleted or renamed). */
	void (*gone)(void *ud, const char *name, int64_t step);
	/* Malformed as it stands: code and message from ckpt_check_complete. */
	void (*bad)(void *ud, const char *name, int64_t step, int code, const char *msg);
	/* Whether the caller has a result for step already. */
	bool (*is_done)(void *ud, int64_t step);
	/* The ckpt_signature that step's result was computed from (given to
	 * watch_done then), or 0 if unknown.  May be NULL. */
	uint64_t (*done_sig)(void *ud, int64_t step);
	/* Something worth a log line: level as log.h, one line of text. */
	void (*note)(void *ud, int level, const char *msg);
	/* What watch_pending_foreach would list changed (may be NULL). */
	void (*changed)(void *ud);
};

struct watch;

/*
 * Start watching: scan the root now (checkpoints found are judged after
 * their quiet period), then watch as the mode says.
 * Errors: -EINVAL (no root, no patterns, a zero poll interval), -errno from
 * starting the libuv handles.
 */
int watch_new(uv_loop_t *loop, const struct watch_opts *o, const struct watch_callbacks *cb,
	      void *ud, struct watch **ret_watch, struct gw_err *err);
void watch_close(struct watch *w); /* accepts NULL */

/* The caller has the result of `name`, computed from files whose
 * ckpt_signature was `sig` (0: take the files as they are now): it is
 * reported again only if they change (below). */
void watch_done(struct watch *w, const char *name, uint64_t sig);
/* `name` changed while it was computed: pending again, judged once quiet
 * and reported again when complete. */
void watch_recheck(struct watch *w, const char *name);
/* The caller gave up on `name` (failed for good): look again only when it
 * changes. */
void watch_failed(struct watch *w, const char *name);
/* Change the quiet period (SIGHUP). */
void watch_set_quiet(struct watch *w, uint64_t quiet_ms);

/* "events" or "poll" (what auto chose, or the fallback), or "waiting"
 * while the root does not exist. */
const char *watch_mode_name(const struct watch *w);
/* Checkpoints seen but not yet complete. */
size_t watch_pending(const struct watch *w);
/*
 * Every directory seen and not computed yet (pending, or refused until it
 * changes), in name order, with why: `why` one of "quiet" (its quiet
 * period is running), "incomplete" (reason: which file and why),
 * "no_step" (no step in its name and no trainer_state.json),
 * "refused" (another trainer's format, foreign.h: reason says which and
 * the ways forward; published once), "malformed" (reason from
 * ckpt_check_complete or the trainer_state.json parse).  step is -1 when
 * not known.  Strings are valid only during the call.
 */
typedef void (*watch_pending_fn)(void *ud, const char *name, int64_t step, const char *why,
				 const char *reason);
void watch_pending_foreach(const struct watch *w, watch_pending_fn fn, void *ud);

/* Whether a directory name is one trainers use while writing: leading
 * '.', a "tmp"/"temp" prefix, or a ".tmp", ".temp", ".part", ".partial",
 * ".incomplete" or "~" ending (case-insensitive). */
bool watch_name_is_temporary(const char *name);

#endif
