/*
 * hook.h — the programs grokwatchd runs on alert transitions
 * (alerts.hooks), on the libuv loop, never blocking it.
 *
 * A hook is an argv list, run with uv_spawn and no shell, for every
 * transition of the alert it names ("*" = every alert), in config order.
 * The child gets:
 *   stdin   the payload (the transition's body, alert.h), then EOF;
 *   env     GROKWATCH_ALERT, GROKWATCH_RUN, GROKWATCH_GROUP, GROKWATCH_STEP
 *           (decimal; empty when unknown), GROKWATCH_STATUS ("firing" or
 *           "resolved"), GROKWATCH_REDELIVERY=1 when the run is a
 *           redelivery after a restart, and PATH (the daemon's, or
 *           "/usr/local/bin:/usr/bin:/bin"); nothing else;
 *   stdout, stderr   pipes read by the daemon: the first output_bytes of
 *           each are kept, the rest read and counted as dropped;
 *   its own session and process group (UV_PROCESS_DETACHED), so that the
 *           signals below reach everything it started.
 * argv[0] without a '/' is looked up in that PATH.
 *
 * Lifecycle of one run.  At most `concurrency` hooks run at once; further
 * runs wait in a FIFO queue of at most `queue` runs, and a transition whose
 * runs do not all fit is refused whole (-EAGAIN).  A run still going after
 * timeout_ms gets SIGTERM (its process group), and kill_grace_ms later
 * SIGKILL.  A run is over when its process has exited and both output
 * pipes reached EOF; if a pipe stays open after the exit (something the
 * hook left running in the background), its process group gets SIGKILL and
 * the pipes are closed kill_grace_ms after the exit.  Then
 * its handles close, and in the last close callback the done callback gets
 * a report, the run is freed, and the next queued run starts.  The done
 * callback is always called from the loop, never from hooks_run; it may
 * call hooks_run, and hooks_close.
 *
 * Outcomes (struct hook_report): HOOK_OK (exit status 0); HOOK_FAILED
 * (non-zero exit status, or a signal the daemon did not send); HOOK_TIMED_OUT
 * (killed at the timeout; term_signal says by which signal it died);
 * HOOK_NOT_STARTED (uv_spawn failed: spawn_error, e.g. -ENOENT for a
 * missing program, -EACCES for one that is not executable).  For every
 * outcome but HOOK_OK, `reason` is one line naming the hook and the fault,
 * for the daemon's `error` message, e.g.
 *   hook "/usr/local/bin/page" for grokking exited with status 3
 *   hook "/nope" for grokking could not start: no such file or directory
 *   hook "/bin/slow" for grokking timed out after 30000 ms and was killed by signal 15
 *
 * SIGPIPE: a hook that exits without reading its stdin makes the daemon's
 * write fail with EPIPE, which is expected and ignored; but the process
 * must ignore SIGPIPE for that (the daemon does, for ZeroMQ too).
 * hooks_new refuses to start otherwise.
 *
 * Threads: everything here runs on the thread that runs `loop`.
 */
#ifndef GW_DAEMON_HOOK_H
#define GW_DAEMON_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "engine/error.h"

/* One hook: the alert whose transitions run it ("*" = every alert), and
 * the program with its arguments. */
struct hook_spec {
	const char *alert;
	const char *const *argv; /* [argc], argv[0] the program */
	int argc;                /* >= 1 */
};

struct hook_opts {
	const struct hook_spec *hooks; /* [n_hooks], copied by hooks_new */
	int n_hooks;
	uint64_t timeout_ms;     /* >= 1 */
	uint64_t kill_grace_ms;  /* >= 1 */
	int concurrency;         /* >= 1 */
	size_t queue;            /* runs waiting; 0 = none wait */
	size_t output_bytes;     /* kept of stdout and of stderr, each */
};

/* One transition, as hooks_run needs it (all borrowed for the call). */
struct hook_event {
	const char *alert, *run, *group, *status;
	int64_t step;        /* -1 = unknown */
	const char *payload; /* stdin, len bytes */
	size_t len;
	/* Delivery records (the daemon's journal): a number given back in
	 * each report (0: none); `only` k > 0 runs the hook of index k - 1
	 * alone (0: every hook naming the alert); a redelivery after a
	 * restart has GROKWATCH_REDELIVERY=1 in the child's environment. */
	int64_t delivery;
	int only;
	bool redelivery;
};

enum hook_outcome { HOOK_OK, HOOK_FAILED, HOOK_TIMED_OUT, HOOK_NOT_STARTED };

/* What the done callback gets.  Everything is borrowed for the call. */
struct hook_report {
	const char *alert, *run, *group, *status;
	int64_t step;
	const char *const *argv; /* NULL-terminated */
	enum hook_outcome outcome;
	const char *reason;      /* NULL for HOOK_OK */
	int64_t exit_status;     /* when it exited */
	int term_signal;         /* 0, or the signal that ended it */
	int spawn_error;         /* HOOK_NOT_STARTED: negative errno */
	const char *out, *err;   /* captured stdout / stderr, NUL-terminated */
	size_t out_len, err_len;
	uint64_t out_dropped, err_dropped; /* bytes read past output_bytes */
	uint64_t elapsed_ms;     /* from the spawn to the end of the run */
	int64_t delivery;        /* the event's */
	int hook;                /* the hook's index in hook_opts.hooks */
};

typedef void (*hook_done_cb)(void *ud, const struct hook_report *rep);

struct hooks;

/*
 * A hook runner on `loop` (borrowed) with options o (copied); done(ud, rep)
 * is called once per run.  Errors: -EINVAL (an option out of range, a hook
 * with an empty argv, or SIGPIPE not ignored).
 */
int hooks_new(uv_loop_t *loop, const struct hook_opts *o, hook_done_cb done, void *ud,
	      struct hooks **ret_hooks, struct gw_err *err);

/*
 * Start (or queue) every hook for ev->alert.  Returns the number of runs
 * started or queued (0 when no hook names the alert).
 * Errors: -EAGAIN (the runs do not all fit under the concurrency bound and
 * in the queue; none is queued).
 */
int hooks_run(struct hooks *h, const struct hook_event *ev, struct gw_err *err);

/* The indices (into hook_opts.hooks) of the hooks a transition of
 * `alert` runs, at most max of them into ret_idx; returns how many. */
int hooks_match(const struct hooks *h, const char *alert, int *ret_idx, int max);
/* argv[0] of hook i, or NULL when there is no such hook. */
const char *hooks_program(const struct hooks *h, int i);
/* Call fn for each run started and not reported (running true) and each
 * queued run: what a stop now would interrupt.  Returns how many. */
size_t hooks_pending(const struct hooks *h,
		     void (*fn)(void *ud, const char *program, const char *alert, int64_t step,
				bool running),
		     void *ud);

size_t hooks_running(const struct hooks *h); /* runs started and not yet reported */
size_t hooks_queued(const struct hooks *h);

/*
 * Shut down: queued runs are dropped, running ones get SIGKILL (their
 * process group); no callback is called any more.  Each run's handles close
 * once its process has been reaped, and the runner is freed in the last
 * close callback (at once when nothing runs): run the loop until it ends.
 * Accepts NULL.  Nothing may be called on h afterwards.
 */
void hooks_close(struct hooks *h);

#endif
