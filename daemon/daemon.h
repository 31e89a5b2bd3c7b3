/*
 * daemon.h — the service's one object (STYLE.md habit 7), shared by the
 * two files of `grokwatchd run`: run.c (start-up, signals, reload,
 * shut-down: the wiring) and dispatch.c (a checkpoint's way through the
 * loop: the watcher's reports, the queue, the job, the store, publishing,
 * alerts and hooks, the status they show).  Private to them; no other
 * module includes it.
 *
 * Threads: the loop thread only, but for what job.h says about the
 * running job.
 */
#ifndef GW_DAEMON_DAEMON_H
#define GW_DAEMON_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "alert.h"
#include "alertmanager.h"
#include "config.h"
#include "hook.h"
#include "job.h"
#include "notify.h"
#include "publish.h"
#include "queue.h"
#include "state.h"
#include "watch.h"

struct daemon {
	uv_loop_t loop;
	const char *config_path;
	struct config *cfg;
	char *run;
	struct state *state;
	void *zctx;
	struct publish *pub;
	struct notify *notify;
	struct watch *watch;
	struct job_ctx *ctx;
	struct alerts *alerts;
	struct hooks *hooks;
	struct alertmanager *am;       /* NULL without alerts.alertmanager.urls */
	struct metrics_epsilon *eps;   /* cfg's epsilon_groups for metrics_opts */
	int threads;

	struct queue *queue;
	struct job *job;               /* the running job, or NULL */
	uint64_t job_started;
	uint64_t last_progress;

	uv_timer_t retry_timer, watchdog_timer, shutdown_timer;
	uv_signal_t sigterm, sigint, sighup;
	uv_async_t progress_async;
	uint64_t watchdog_usec;
	bool stopping, closed, forced;
	int exit_code;
};

/* ---- dispatch.c ---- */

/* The watcher's callbacks (ud: the struct daemon). */
extern const struct watch_callbacks dispatch_watch_callbacks;
/* Start the lowest-step checkpoint whose time has come, unless a job runs
 * or the daemon stops; else arm the retry timer for the next one. */
void dispatch_next(struct daemon *d);
/* The running job's progress (d->progress_async's callback). */
void dispatch_on_progress(uv_async_t *h);
/* A hook ended (hooks_new's callback; ud: the struct daemon). */
void dispatch_on_hook_done(void *ud, const struct hook_report *rep);
/* Judge the store after a change at step `from` (ALERTS_CHANGED_ALL at
 * start-up): each transition journaled, then applied, published and
 * handed to the hooks. */
void dispatch_alerts(struct daemon *d, int64_t from);
/* Start-up: the kept vectors of the store's results back into the routing
 * series, and the store's memorized subsets recomputed as of now. */
void dispatch_restore(struct daemon *d);
/* Start-up, once the hooks exist: run again every hook of a journaled
 * transition that has no delivery record (dispatch.c). */
void dispatch_redeliver(struct daemon *d);
/* Log each hook run a stop is about to interrupt (dispatch.c). */
void dispatch_log_interrupted_hooks(struct daemon *d);
/* The status changed: heartbeats and snapshots show it, systemd too, and
 * with `send` a status message. */
void daemon_status_update(struct daemon *d, bool send);
/* A write to the state directory failed: stop, so that nothing is
 * published that is not on disk; exit status 1. */
void daemon_fatal_stop(struct daemon *d, const char *msg);

/* ---- run.c ---- */

/* Close what is left once no job runs (the loop then ends). */
void daemon_finish_stop(struct daemon *d);

#endif
