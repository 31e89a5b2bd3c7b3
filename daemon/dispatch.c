/*
 * dispatch.c — a checkpoint's way through the daemon's loop (daemon.h):
 * the watcher reports it complete, it waits in the queue (queue.h) in step
 * order, a job computes it (job.h), and at the job's end the result goes
 * to the store first (state.h: journal, fsync), then out (publish.h), then
 * the memorized subsets of earlier steps move in the store, then alerts
 * judge the store and hand their transitions to the hooks; failures are
 * retried with their backoff or recorded.  The status object follows
 * every change (status.h).
 *
 * In order: helpers; status; the queue and the job's start; alerts and
 * hooks; a job's end; the watcher's callbacks; start-up restore.
 */
#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "daemon.h"
#include "engine/json.h"
#include "fault.h"
#include "log.h"
#include "status.h"

#define GATHER_MS 20 /* checkpoints that complete together are queued before the first starts */
#define PROGRESS_MIN_MS 200 /* progress messages at most this often (the last one always) */

static const cJSON *group_all(const cJSON *result)
{
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(result, "groups"),
						"all");
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

/* ---- status ---------------------------------------------------------------------- */

static struct status_info status_info_of(const struct daemon *d)
{
	return (struct status_info){
		.stopping = d->stopping,
		.root = d->cfg->watch.root,
		.watch_mode = d->watch ? watch_mode_name(d->watch) : NULL,
		.watch = d->watch,
		.pending = d->watch ? watch_pending(d->watch) : 0,
		.queued = queue_count(d->queue),
		.job = d->job,
		.running_sec = d->job ? (double)(uv_now(&d->loop) - d->job_started) / 1000.0 : 0,
		.results = state_results(d->state),
		.failures = state_failures(d->state),
		.probe_hash = job_ctx_probe(d->ctx) ? job_ctx_probe(d->ctx)->hash : NULL,
		.alerts = d->alerts,
		.am = d->am,
	};
}

/* The status changed: heartbeats and snapshots show it, systemd too. */
void daemon_status_update(struct daemon *d, bool send)
{
	struct status_info in;
	char line[512];

	if (d->closed)
		return;
	in = status_info_of(d);
	publish_set_status(d->pub, status_json(&in));
	if (send) {
		cJSON *b = cJSON_CreateObject();

		cJSON_AddItemToObject(b, "status", status_json(&in));
		publish_send(d->pub, "status", b);
	}
	status_line(&in, line, sizeof(line));
	notify_status(d->notify, "%s", line);
}

static void publish_error(struct daemon *d, int64_t step, const char *checkpoint, const char *msg,
			  cJSON *extra)
{
	cJSON *b = extra ? extra : cJSON_CreateObject();

	if (step >= 0)
		cJSON_AddNumberToObject(b, "step", (double)step);
	if (checkpoint)
		job_add_name(b, checkpoint);
	cJSON_AddStringToObject(b, "error", msg);
	publish_send(d->pub, "error", b);
}

/* ---- the queue and the job's start --------------------------------------------- */

static void on_retry_timer(uv_timer_t *h)
{
	dispatch_next(h->data);
}

void dispatch_on_progress(uv_async_t *h)
{
	struct daemon *d = h->data;
	struct job *j = d->job;
	int done, total;
	uint64_t now = uv_now(&d->loop);
	cJSON *b;

	if (!j || d->closed)
		return;
	done = atomic_load(&j->layers_done);
	total = atomic_load(&j->n_layers);
	if (done < total && now - d->last_progress < PROGRESS_MIN_MS)
		return;
	d->last_progress = now;
	b = cJSON_CreateObject();
	cJSON_AddNumberToObject(b, "step", (double)j->step);
	job_add_name(b, j->name);
	cJSON_AddNumberToObject(b, "layers_done", done);
	cJSON_AddNumberToObject(b, "n_layers", total);
	publish_send(d->pub, "progress", b);
	daemon_status_update(d, false);
}

static void job_done(struct job *j);

/* Start the lowest-step checkpoint whose retry time has come. */
void dispatch_next(struct daemon *d)
{
	struct gw_err err = { "" };
	uint64_t now = uv_now(&d->loop), wait = UINT64_MAX;
	struct queue_entry e;
	char *keep = NULL;
	struct job *j;
	int r;

	if (d->job || d->stopping)
		return;
	if (!queue_next(d->queue, now, &e, &wait)) {
		if (wait != UINT64_MAX)
			uv_timer_start(&d->retry_timer, on_retry_timer, wait, 0);
		daemon_status_update(d, false);
		return;
	}
	r = state_routing_dir(d->state, e.step, &keep, &err);
	if (r < 0)
		log_warn("%s; the routing vectors of step %" PRId64 " will not be kept", err.msg,
			 e.step);
	j = job_new(e.name, e.path, keep, e.step);
	free(keep);
	j->attempt = e.attempts + 1;
	j->ctx = d->ctx;
	j->progress = &d->progress_async;
	j->done = job_done;
	j->data = d;
	queue_entry_release(&e);
	r = job_start(&d->loop, j);
	if (r < 0) {
		log_error("\"%s\": cannot start a job: %s", j->path, uv_strerror(r));
		job_free(j);
		return;
	}
	d->job = j;
	d->job_started = now;
	d->last_progress = 0;
	log_info("step %" PRId64 ": computing \"%s\"%s", j->step, j->path,
		 j->attempt > 1 ? " (retry)" : "");
	daemon_status_update(d, true);
}


/* ---- alerts and hooks ------------------------------------------------------------ */


/* The hook ran to its end: its delivery record, so a restart does not run
 * it again. */
static void record_delivery(struct daemon *d, const struct hook_report *rep)
{
	static const char *const outcomes[] = { "ok", "failed", "timed_out", "not_started" };
	struct gw_err err = { "" };
	cJSON *ev;

	if (rep->delivery <= 0 || d->closed)
		return;
	ev = cJSON_CreateObject();
	cJSON_AddStringToObject(ev, "kind", "delivery");
	cJSON_AddNumberToObject(ev, "alert", (double)(rep->delivery - 1));
	cJSON_AddNumberToObject(ev, "hook", rep->hook);
	cJSON_AddStringToObject(ev, "program", rep->argv[0]);
	cJSON_AddStringToObject(ev, "outcome", outcomes[rep->outcome]);
	if (state_append(d->state, ev, &err) < 0)
		log_error("hook %s: its delivery record: %s; it may run again after a restart",
			  rep->argv[0], err.msg);
	cJSON_Delete(ev);
}

void dispatch_on_hook_done(void *ud, const struct hook_report *rep)
{
	struct daemon *d = ud;
	cJSON *extra;

	record_delivery(d, rep);

	if (rep->out_len)
		log_info("hook %s (%s, %s): stdout: %.*s%s", rep->argv[0], rep->alert, rep->status,
			 (int)rep->out_len, rep->out, rep->out_dropped ? " [truncated]" : "");
	if (rep->err_len)
		log_info("hook %s (%s, %s): stderr: %.*s%s", rep->argv[0], rep->alert, rep->status,
			 (int)rep->err_len, rep->err, rep->err_dropped ? " [truncated]" : "");
	if (rep->outcome == HOOK_OK) {
		log_info("hook %s for %s (%s, group %s) succeeded in %" PRIu64 " ms", rep->argv[0],
			 rep->alert, rep->status, rep->group, rep->elapsed_ms);
		return;
	}
	log_error("hook %s for %s (%s, group %s): %s", rep->argv[0], rep->alert, rep->status,
		  rep->group, rep->reason);
	if (d->closed)
		return;
	extra = cJSON_CreateObject();
	cJSON_AddStringToObject(extra, "hook", rep->argv[0]);
	cJSON_AddStringToObject(extra, "alert", rep->alert);
	cJSON_AddStringToObject(extra, "group", rep->group);
	publish_error(d, rep->step, NULL, rep->reason, extra);
}

/* Hand alert event ev (the K-th of the journal's) to its hooks: all of
 * them (only 0), or hook only - 1 alone, as a redelivery or not. */
static void deliver(struct daemon *d, const cJSON *ev, int64_t k, int only, bool redelivery)
{
	struct gw_err err = { "" };
	struct alert_info info;
	cJSON *body;
	char *text;

	if (alert_event_info(ev, &info, &err) < 0) {
		log_error("alerts: %s", err.msg);
		return;
	}
	body = alert_event_body(ev);
	text = json_print_utf8(body);
	{
		const struct hook_event he = {
			.alert = info.alertname, .run = info.run, .group = info.group,
			.status = info.status, .step = info.step, .payload = text,
			.len = strlen(text), .delivery = k + 1, .only = only,
			.redelivery = redelivery,
		};

		if (hooks_run(d->hooks, &he, &err) < 0) {
			log_error("hooks for %s: %s", info.alertname, err.msg);
			publish_error(d, info.step, NULL, err.msg, NULL);
		}
	}
	fault_point("mid-hook");
	free(text);
	cJSON_Delete(body);
}

/* Judge the series after a change at step `from` (ALERTS_CHANGED_ALL at
 * start-up): each transition journaled (with the hooks it runs), then
 * applied, published and handed to the hooks. */
void dispatch_alerts(struct daemon *d, int64_t from)
{
	struct gw_err err = { "" };
	cJSON *tr = NULL, *ev;
	uv_timeval64_t tv;

	if (!d->alerts)
		return;
	uv_gettimeofday(&tv);
	if (alerts_evaluate(d->alerts, state_results(d->state), from, d->run,
			    (double)tv.tv_sec + tv.tv_usec * 1e-6, &tr, &err) < 0) {
		log_error("alerts: %s", err.msg);
		return;
	}
	cJSON_ArrayForEach(ev, tr) {
		struct alert_info info;
		int idx[JOURNAL_HOOKS_MAX], n = 0;
		int64_t k;

		if (d->hooks && alert_event_info(ev, &info, &err) == 0)
			n = hooks_match(d->hooks, info.alertname, idx, JOURNAL_HOOKS_MAX);
		if (n > 0)
			cJSON_AddItemToObject(ev, "hooks", cJSON_CreateIntArray(idx, n));
		if (state_append(d->state, ev, &err) < 0) {
			daemon_fatal_stop(d, err.msg);
			break;
		}
		k = cJSON_GetArraySize(state_alerts(d->state)) - 1;
		if (alerts_apply(d->alerts, ev, &err) < 0 || alert_event_info(ev, &info, &err) < 0) {
			log_error("alerts: %s", err.msg);
			continue;
		}
		log_warn("alert %s %s: run %s, group %s, metric %s, step %" PRId64, info.alertname,
			 info.status, info.run, info.group, info.metric, info.step);
		publish_send(d->pub, "alert", alert_event_body(ev));
		alertmanager_transition(d->am, ev);
		if (n > 0)
			deliver(d, ev, k, 0, false);
	}
	cJSON_Delete(tr);
}

static void log_interrupted(void *ud, const char *program, const char *alert, int64_t step,
			    bool running)
{
	(void)ud;
	log_warn("hook %s for %s (step %" PRId64 ") %s by the stop; it runs again after a restart",
		 program, alert, step, running ? "killed" : "dropped from the queue");
}

void dispatch_log_interrupted_hooks(struct daemon *d)
{
	if (d->hooks)
		hooks_pending(d->hooks, log_interrupted, d);
}

/* At start-up: every hook of a journaled transition with no delivery
 * record ran to no end (a stop or a crash interrupted it, or it never
 * started): run it again, GROKWATCH_REDELIVERY=1 in its environment. */
void dispatch_redeliver(struct daemon *d)
{
	const cJSON *alerts = state_alerts(d->state), *ev;
	int64_t k = -1;
	size_t n = 0;

	if (!d->hooks)
		return;
	cJSON_ArrayForEach(ev, alerts) {
		const cJSON *hooks = cJSON_GetObjectItemCaseSensitive(ev, "hooks"), *h;

		k++;
		cJSON_ArrayForEach(h, hooks) {
			int i = cJSON_IsNumber(h) ? (int)h->valuedouble : -1;
			const char *prog = hooks_program(d->hooks, i);

			if (i < 0 || state_delivered(d->state, k, i))
				continue;
			if (!prog) {
				log_warn("alert event %" PRId64 ": its hook %d is no longer configured; not redelivered",
					 k, i);
				continue;
			}
			log_info("hook %s for alert event %" PRId64 " did not run to its end; running it again",
				 prog, k);
			deliver(d, ev, k, i + 1, true);
			n++;
		}
	}
	if (n)
		log_info("redelivering %zu interrupted hook run%s", n, n == 1 ? "" : "s");
}

/* ---- a job's end ------------------------------------------------------------------ */

/* Step's entry or job went without a result: queue another directory of
 * the same step in its place, if one waits in reserve. */
static bool promote_alternate(struct daemon *d, int64_t step)
{
	if (!queue_alt_promote(d->queue, step))
		return false;
	log_info("step %" PRId64 ": \"%s\" is queued in its place", step,
		 queue_at(d->queue, (size_t)queue_find(d->queue, step))->path);
	return true;
}

/* Step has its result (done) or failed for good: the directories kept in
 * reserve for it are finished with, as far as the watcher goes. */
static void settle_alternates(struct daemon *d, int64_t step, bool done)
{
	char **names = NULL;

	queue_alt_drop(d->queue, step, &names);
	for (size_t i = 0; names && names[i]; i++) {
		if (d->watch) {
			if (done)
				watch_done(d->watch, names[i], 0);
			else
				watch_failed(d->watch, names[i]);
		}
		free(names[i]);
	}
	free(names);
}

static void log_result(const struct job *j)
{
	const cJSON *all = group_all(j->result);

	log_info("step %" PRId64 ": done in %.2f s (%s): pathway distance %.3f, consistency %.4f, loss %.4f over %d samples",
		 j->step, j->sec,
		 cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j->result, "source")),
		 num(all, "pathway_distance"), num(all, "pathway_consistency"), num(all, "loss"),
		 (int)num(all, "n_samples"));
}

void daemon_fatal_stop(struct daemon *d, const char *msg)
{
	log_error("%s; stopping so that nothing is published that is not on disk", msg);
	d->exit_code = 1;
	if (!d->stopping) {
		d->stopping = true;
		notify_stopping(d->notify);
		watch_close(d->watch);
		d->watch = NULL;
	}
}

/* Failures of the machine, not of the checkpoint, that end by themselves
 * (a full disk, file descriptors used up): waited out, never given up. */
static bool space_failure(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT || rc == -EMFILE || rc == -ENFILE;
}

static void job_failed(struct daemon *d, struct job *j)
{
	int64_t max = d->cfg->jobs.max_retries;
	bool transient = job_error_transient(j->rc);
	cJSON *extra = cJSON_CreateObject();
	struct gw_err err = { "" };
	uint64_t backoff = 0;
	int r;

	cJSON_AddNumberToObject(extra, "attempt", j->attempt);
	if (space_failure(j->rc) &&
	    queue_requeue(d->queue, j->name, j->path, j->step, j->attempt, uv_now(&d->loop),
			  &backoff) == 1) {
		/* Not a failure of the checkpoint: tried again on the backoff for
		 * as long as the disk is full, never given up. */
		log_warn("step %" PRId64 ": %s; waiting for %s, tried again in %" PRIu64 " ms",
			 j->step, j->err.msg,
			 j->rc == -EMFILE || j->rc == -ENFILE ? "file descriptors" : "space", backoff);
		cJSON_AddNumberToObject(extra, "retry_in_ms", (double)backoff);
		cJSON_AddBoolToObject(extra, j->rc == -EMFILE || j->rc == -ENFILE
						     ? "waiting_for_descriptors" : "waiting_for_space", true);
		publish_error(d, j->step, j->name, j->err.msg, extra);
		return;
	}
	if (transient && queue_retry(d->queue, j->name, j->path, j->step, j->attempt,
				     uv_now(&d->loop), &backoff) == 1) {
		log_warn("step %" PRId64 ": %s; retry %d of %" PRId64 " in %" PRIu64 " ms", j->step,
			 j->err.msg, j->attempt, max, backoff);
		cJSON_AddNumberToObject(extra, "retry_in_ms", (double)backoff);
		publish_error(d, j->step, j->name, j->err.msg, extra);
		return;
	}
	log_error("step %" PRId64 ": %s; giving up after %d attempt%s", j->step, j->err.msg,
		  j->attempt, j->attempt == 1 ? "" : "s");
	/* Journal first: a "failed" subscribers saw must survive a crash. */
	{
		cJSON *ev = cJSON_CreateObject();

		cJSON_AddStringToObject(ev, "kind", "failed");
		cJSON_AddNumberToObject(ev, "step", (double)j->step);
		job_add_name(ev, j->name);
		cJSON_AddStringToObject(ev, "reason", j->err.msg);
		cJSON_AddNumberToObject(ev, "attempts", j->attempt);
		fault_point("before-failed-journal");
		r = state_append(d->state, ev, &err);
		cJSON_Delete(ev);
		if (r < 0) {
			cJSON_Delete(extra);
			daemon_fatal_stop(d, err.msg);
			return;
		}
	}
	cJSON_AddBoolToObject(extra, "failed", true);
	publish_error(d, j->step, j->name, j->err.msg, extra);
	settle_alternates(d, j->step, false);
	if (d->watch)
		watch_failed(d->watch, j->name);
}

static void job_done(struct job *j)
{
	struct daemon *d = j->data;
	struct gw_err err = { "" };
	int64_t seq;
	int r;

	d->job = NULL;
	if (j->rc == 0) {
		bool replaced = state_is_done(d->state, j->step);
		char sig[17];

		/* What it was computed from, so that a rewrite of the files, even
		 * while the daemon is down, is noticed (watch.h). */
		snprintf(sig, sizeof(sig), "%016" PRIx64, j->sig);
		cJSON_AddStringToObject(j->result, "checkpoint_signature", sig);
		if (replaced)
			cJSON_AddBoolToObject(j->result, "replaced", true);
		fault_point("after-compute");
		r = state_append_result(d->state, j->result, &err);
		if (r < 0 && space_failure(r) && !d->stopping) {
			/* The line was taken back (journal.h): nothing is on disk
			 * or sent; computed again when there is space. */
			j->rc = r;
			j->err = err;
			job_failed(d, j);
		} else if (r < 0) {
			daemon_fatal_stop(d, err.msg);
		} else {
			int64_t from = j->step, lowest;

			fault_point("after-journal");
			seq = publish_result(d->pub, state_result(d->state, j->step));
			fault_point("after-publish");
			/* Only now that the journal has the new step may the earlier
			 * step's token records go: a crash before the append recomputes
			 * this step, and its churn needs them. */
			if (j->kept_tokens)
				state_tokens_kept(d->state, j->step);
			if (seq < 0)
				log_warn("step %" PRId64 ": publishing failed: %s", j->step,
					 zmq_strerror((int)-seq));
			/* The memorized subsets of earlier steps moved with it: the
			 * store's, which alerts, snapshots and history all read. */
			if (state_memo_apply(d->state, j->memo, j->n_memo, j->step, &lowest) &&
			    lowest < from)
				from = lowest;
			log_result(j);
			if (replaced)
				log_warn("step %" PRId64 ": this result replaces the earlier one (\"%s\" was rewritten)",
					 j->step, j->path);
			dispatch_alerts(d, from);
			if (d->watch)
				watch_done(d->watch, j->name, j->sig);
			settle_alternates(d, j->step, true);
		}
	} else if (j->rc == -ESTALE && !j->gone) {
		log_warn("step %" PRId64 ": %s; discarded, computed again once quiet", j->step,
			 j->err.msg);
		if (d->watch)
			watch_recheck(d->watch, j->name);
	} else if (j->gone || (j->rc == -ECANCELED && !d->stopping)) {
		log_info("step %" PRId64 ": \"%s\" went away; abandoned", j->step, j->path);
		promote_alternate(d, j->step);
	} else if (d->stopping) {
		log_info("step %" PRId64 ": stopped (%s); it will be computed after a restart", j->step,
			 j->err.msg);
	} else {
		job_failed(d, j);
	}
	job_free(j);
	if (d->stopping) {
		daemon_finish_stop(d);
		return;
	}
	daemon_status_update(d, true);
	dispatch_next(d);
}

/* ---- the watcher's callbacks ----------------------------------------------------- */

static void on_ready(void *ud, const char *name, const char *path, int64_t step)
{
	struct daemon *d = ud;
	int r;

	if (d->stopping)
		return;
	if (d->job && d->job->step == step)
		r = -EEXIST;
	else
		r = queue_put(d->queue, name, path, step);
	if (r == -EEXIST) {
		/* Kept in reserve: if the other directory goes (renamed to this
		 * one, or deleted) before its result, this one is computed. */
		r = queue_alt_put(d->queue, name, path, step);
		log_warn("\"%s\": step %" PRId64 " is queued or computing from another directory; %s",
			 path, step,
			 r == 0 ? "this one is computed if that one goes without a result"
				: "ignored");
		return;
	}
	if (r == -ENOSPC) {
		log_error("\"%s\": the queue is full (limits.queue_depth = %" PRId64 "); not computed",
			  path, d->cfg->limits.queue_depth);
		publish_error(d, step, name, "queue full", NULL);
		if (d->watch)
			watch_failed(d->watch, name);
		return;
	}
	log_info("step %" PRId64 ": \"%s\" is complete; queued", step, path);
	/* Not at once: checkpoints arriving together (a burst, a restart's
	 * scan) become complete within milliseconds of each other, and the
	 * lowest step should go first. */
	if (!d->job)
		uv_timer_start(&d->retry_timer, on_retry_timer, GATHER_MS, 0);
	daemon_status_update(d, false);
}

static void on_gone(void *ud, const char *name, int64_t step)
{
	struct daemon *d = ud;

	queue_alt_cancel_name(d->queue, name);
	if (queue_cancel(d->queue, step, name)) {
		log_info("step %" PRId64 ": \"%s\" went away before it was computed", step, name);
		if (promote_alternate(d, step) && !d->job)
			uv_timer_start(&d->retry_timer, on_retry_timer, GATHER_MS, 0);
		daemon_status_update(d, false);
	}
	if (d->job && !strcmp(d->job->name, name)) {
		log_info("step %" PRId64 ": \"%s\" went away; cancelling its job", step, name);
		d->job->gone = true;
		atomic_store(&d->job->cancel, 1);
	}
}

static void on_bad(void *ud, const char *name, int64_t step, int code, const char *msg)
{
	struct daemon *d = ud;

	/* Another trainer's format (checkpoint.h): the watcher says it once,
	 * and the message already names the directory and the ways forward. */
	if (code == -ENOTSUP)
		log_error("%s", msg);
	else
		log_error("%s (checkpoint \"%s\" skipped until it changes)", msg, name);
	publish_error(d, step, name, msg, NULL);
}

static bool on_is_done(void *ud, int64_t step)
{
	struct daemon *d = ud;

	return state_is_done(d->state, step);
}

static uint64_t on_done_sig(void *ud, int64_t step)
{
	struct daemon *d = ud;
	const char *hex = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
		state_result(d->state, step), "checkpoint_signature"));
	char *end;
	uint64_t v;

	if (!hex || strlen(hex) != 16)
		return 0;
	v = strtoull(hex, &end, 16);
	return *end ? 0 : v;
}

static void on_note(void *ud, int level, const char *msg)
{
	(void)ud;
	log_msg(level, "%s", msg);
}

static void on_watch_changed(void *ud)
{
	struct daemon *d = ud;

	if (d->watch)
		daemon_status_update(d, false);
}

/* ---- start-up ------------------------------------------------------------------------ */

/* Results replayed from the journal: their kept routing vectors back into
 * the routing series, then the store's memorized subsets as of now (the
 * publisher reads the store itself). */
void dispatch_restore(struct daemon *d)
{
	const struct series *res = state_results(d->state);
	struct metrics_memo *memo = NULL;
	struct gw_err err = { "" };
	size_t n = series_count(res), n_memo = 0, kept = 0;

	for (size_t i = 0; i < n; i++) {
		int64_t step = series_step_at(res, i);
		struct metrics_cons *cons = NULL;
		struct routing *r = NULL;

		if (state_read_kept(d->state, step, &r, &cons, &err) == 0 &&
		    job_ctx_put(d->ctx, r, cons, &err) == 0)
			kept++;
		else
			log_warn("step %" PRId64 ": %s; its memorized subset will not be recomputed",
				 step, err.msg);
		routing_free(r);
		metrics_cons_free(cons);
	}
	if (n) {
		struct routing *r = NULL;
		int64_t last = series_step_at(res, n - 1);

		if (state_read_tokens(d->state, last, &r, &err) == 0)
			job_ctx_set_prev(d->ctx, r);
		else
			log_info("step %" PRId64 ": no per-token records kept (%s); the next checkpoint has no churn",
				 last, err.msg);
	}
	if (kept && job_ctx_memo(d->ctx, &memo, &n_memo, &err) == 0)
		state_memo_apply(d->state, memo, n_memo, -1, NULL);
	else if (kept)
		log_warn("recomputing the memorized subsets: %s", err.msg);
	routing_series_memo_free(memo, n_memo);
	if (n)
		log_info("restored %zu results from \"%s\" (last step %" PRId64 ")", n,
			 state_dir(d->state), series_step_at(res, n - 1));
}

const struct watch_callbacks dispatch_watch_callbacks = {
	.ready = on_ready, .gone = on_gone, .bad = on_bad, .is_done = on_is_done,
	.done_sig = on_done_sig, .note = on_note, .changed = on_watch_changed,
};
