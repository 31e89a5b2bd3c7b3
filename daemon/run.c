/*
 * run.c — `grokwatchd run -c FILE`: the service.  One struct daemon holds
 * everything and reaches every callback through handle->data (STYLE.md
 * habit 7).
 *
 * The file follows a checkpoint through the daemon:
 *   - start-up: config, probe, journal (replay; a changed probe archives
 *     the old series), the routing series restored from kept vectors,
 *     ZeroMQ publisher with the journal's results, sd_notify, watcher;
 *   - the queue: checkpoints the watcher reports, computed one at a time
 *     in step order, with retries and their backoff;
 *   - a job's end: journal first (fsync), then publish, then the memorized
 *     history of earlier steps, then the next job;
 *   - status: what heartbeats, snapshots and sd_notify STATUS= show;
 *   - signals: SIGTERM/SIGINT stop, SIGHUP reloads, the watchdog pings;
 *   - shut-down: the running job cancelled (or abandoned after
 *     limits.shutdown_ms), handles closed, uv_loop_close.
 */
#include <cblas.h>
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <zmq.h>

#include "alert.h"
#include "commands.h"
#include "engine/file.h"
#include "config.h"
#include "engine/probe.h"
#include "engine/step.h"
#include "hook.h"
#include "job.h"
#include "log.h"
#include "notify.h"
#include "publish.h"
#include "queue.h"
#include "state.h"
#include "status.h"
#include "watch.h"

#define GATHER_MS 20 /* checkpoints that complete together are queued before the first starts */
#define PROGRESS_MIN_MS 200 /* progress messages at most this often (the last one always) */

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

/* ---- small helpers -------------------------------------------------------------- */

static int cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

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

static struct queue_opts queue_opts_of(const struct config *c)
{
	return (struct queue_opts){
		.backoff_ms = (uint64_t)c->jobs.retry_backoff_ms,
		.backoff_max_ms = (uint64_t)c->jobs.retry_backoff_max_ms,
		.max_retries = c->jobs.max_retries,
		.depth = (size_t)c->limits.queue_depth,
	};
}

/* ---- status ---------------------------------------------------------------------- */

static struct status_info status_info_of(const struct daemon *d)
{
	return (struct status_info){
		.stopping = d->stopping,
		.root = d->cfg->watch.root,
		.watch_mode = d->watch ? watch_mode_name(d->watch) : NULL,
		.pending = d->watch ? watch_pending(d->watch) : 0,
		.queued = queue_count(d->queue),
		.job = d->job,
		.running_sec = d->job ? (double)(uv_now(&d->loop) - d->job_started) / 1000.0 : 0,
		.results = state_results(d->state),
		.failures = state_failures(d->state),
		.probe_hash = job_ctx_probe(d->ctx) ? job_ctx_probe(d->ctx)->hash : NULL,
		.alerts = d->alerts,
	};
}

/* The status changed: heartbeats and snapshots show it, systemd too. */
static void status_update(struct daemon *d, bool send)
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
		cJSON_AddStringToObject(b, "checkpoint", checkpoint);
	cJSON_AddStringToObject(b, "error", msg);
	publish_send(d->pub, "error", b);
}

/* ---- the queue ------------------------------------------------------------------- */

static void dispatch(struct daemon *d);
static void finish_stop(struct daemon *d);

static void on_retry_timer(uv_timer_t *h)
{
	dispatch(h->data);
}

static void on_progress(uv_async_t *h)
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
	cJSON_AddStringToObject(b, "checkpoint", j->name);
	cJSON_AddNumberToObject(b, "layers_done", done);
	cJSON_AddNumberToObject(b, "n_layers", total);
	publish_send(d->pub, "progress", b);
	status_update(d, false);
}

static void job_done(struct job *j);

/* Start the lowest-step checkpoint whose retry time has come. */
static void dispatch(struct daemon *d)
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
		status_update(d, false);
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
	status_update(d, true);
}

/* ---- a job's end ----------------------------------------------------------------- */

/* ---- alerts ---------------------------------------------------------------------- */

static void fatal_stop(struct daemon *d, const char *msg);

static void on_hook_done(void *ud, const struct hook_report *rep)
{
	struct daemon *d = ud;
	cJSON *extra;

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

/* Judge the series after a change at step `from` (ALERTS_CHANGED_ALL at
 * start-up): each transition journaled, then applied, published and handed
 * to the hooks. */
static void evaluate_alerts(struct daemon *d, int64_t from)
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
		cJSON *body;
		char *text;

		if (state_append(d->state, ev, &err) < 0) {
			fatal_stop(d, err.msg);
			break;
		}
		if (alerts_apply(d->alerts, ev, &err) < 0 || alert_event_info(ev, &info, &err) < 0) {
			log_error("alerts: %s", err.msg);
			continue;
		}
		log_warn("alert %s %s: run %s, group %s, metric %s, step %" PRId64, info.alertname,
			 info.status, info.run, info.group, info.metric, info.step);
		body = alert_event_body(ev);
		text = cJSON_PrintUnformatted(body);
		publish_send(d->pub, "alert", body);
		if (d->hooks) {
			const struct hook_event he = {
				.alert = info.alertname, .run = info.run, .group = info.group,
				.status = info.status, .step = info.step, .payload = text,
				.len = strlen(text),
			};

			if (hooks_run(d->hooks, &he, &err) < 0) {
				log_error("hooks for %s: %s", info.alertname, err.msg);
				publish_error(d, info.step, NULL, err.msg, NULL);
			}
		}
		free(text);
	}
	cJSON_Delete(tr);
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

static void fatal_stop(struct daemon *d, const char *msg)
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

static void job_failed(struct daemon *d, struct job *j)
{
	int64_t max = d->cfg->jobs.max_retries;
	bool transient = job_error_transient(j->rc);
	cJSON *extra = cJSON_CreateObject();
	struct gw_err err = { "" };

	uint64_t backoff = 0;

	cJSON_AddNumberToObject(extra, "attempt", j->attempt);
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
	cJSON_AddBoolToObject(extra, "failed", true);
	publish_error(d, j->step, j->name, j->err.msg, extra);
	{
		cJSON *ev = cJSON_CreateObject();

		cJSON_AddStringToObject(ev, "kind", "failed");
		cJSON_AddNumberToObject(ev, "step", (double)j->step);
		cJSON_AddStringToObject(ev, "checkpoint", j->name);
		cJSON_AddStringToObject(ev, "reason", j->err.msg);
		cJSON_AddNumberToObject(ev, "attempts", j->attempt);
		if (state_append(d->state, ev, &err) < 0)
			fatal_stop(d, err.msg);
		cJSON_Delete(ev);
	}
	if (d->watch)
		watch_failed(d->watch, j->name);
}

static void job_done(struct job *j)
{
	struct daemon *d = j->data;
	struct gw_err err = { "" };
	int64_t seq;

	d->job = NULL;
	if (j->rc == 0) {
		if (j->kept_tokens)
			state_tokens_kept(d->state, j->step);
		if (state_append_result(d->state, j->result, &err) < 0) {
			fatal_stop(d, err.msg);
		} else {
			int64_t from = j->step, lowest;

			seq = publish_result(d->pub, state_result(d->state, j->step));
			if (seq < 0)
				log_warn("step %" PRId64 ": publishing failed: %s", j->step,
					 zmq_strerror((int)-seq));
			/* The memorized subsets of earlier steps moved with it: the
			 * store's, which alerts, snapshots and history all read. */
			if (state_memo_apply(d->state, j->memo, j->n_memo, j->step, &lowest) &&
			    lowest < from)
				from = lowest;
			log_result(j);
			evaluate_alerts(d, from);
			if (d->watch)
				watch_done(d->watch, j->name);
		}
	} else if (j->gone || (j->rc == -ECANCELED && !d->stopping)) {
		log_info("step %" PRId64 ": \"%s\" went away; abandoned", j->step, j->path);
	} else if (d->stopping) {
		log_info("step %" PRId64 ": stopped (%s); it will be computed after a restart", j->step,
			 j->err.msg);
	} else {
		job_failed(d, j);
	}
	job_free(j);
	if (d->stopping) {
		finish_stop(d);
		return;
	}
	status_update(d, true);
	dispatch(d);
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
		log_warn("\"%s\": step %" PRId64 " is already queued from another directory; ignored",
			 path, step);
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
	status_update(d, false);
}

static void on_gone(void *ud, const char *name, int64_t step)
{
	struct daemon *d = ud;

	if (queue_cancel(d->queue, step, name)) {
		log_info("step %" PRId64 ": \"%s\" went away before it was computed", step, name);
		status_update(d, false);
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

	(void)code;
	log_error("%s (checkpoint \"%s\" skipped until it changes)", msg, name);
	publish_error(d, step, name, msg, NULL);
}

static bool on_is_done(void *ud, int64_t step)
{
	struct daemon *d = ud;

	return state_is_done(d->state, step);
}

static void on_note(void *ud, int level, const char *msg)
{
	(void)ud;
	log_msg(level, "%s", msg);
}

/* ---- signals ------------------------------------------------------------------------ */

static void close_cb(uv_handle_t *h)
{
	(void)h;
}

/* Close what is left once no job runs. */
static void finish_stop(struct daemon *d)
{
	if (d->closed)
		return;
	d->closed = true;
	if (d->queue)
		queue_clear(d->queue);
	watch_close(d->watch);
	d->watch = NULL;
	hooks_close(d->hooks);
	d->hooks = NULL;
	publish_close(d->pub);
	d->pub = NULL;
	uv_close((uv_handle_t *)&d->retry_timer, close_cb);
	uv_close((uv_handle_t *)&d->watchdog_timer, close_cb);
	uv_close((uv_handle_t *)&d->shutdown_timer, close_cb);
	uv_close((uv_handle_t *)&d->sigterm, close_cb);
	uv_close((uv_handle_t *)&d->sigint, close_cb);
	uv_close((uv_handle_t *)&d->sighup, close_cb);
	uv_close((uv_handle_t *)&d->progress_async, close_cb);
}

static void on_shutdown_timer(uv_timer_t *h)
{
	struct daemon *d = h->data;

	log_warn("step %" PRId64 ": the job did not stop within %" PRId64 " ms; abandoning it",
		 d->job->step, d->cfg->limits.shutdown_ms);
	d->forced = true;
	uv_stop(&d->loop);
}

static void stop(struct daemon *d, const char *why)
{
	if (d->stopping)
		return;
	log_info("%s: stopping", why);
	d->stopping = true;
	notify_stopping(d->notify);
	watch_close(d->watch);
	d->watch = NULL;
	status_update(d, true);
	if (d->job) {
		atomic_store(&d->job->cancel, 1);
		uv_timer_start(&d->shutdown_timer, on_shutdown_timer,
			       (uint64_t)d->cfg->limits.shutdown_ms, 0);
		return;
	}
	finish_stop(d);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
	stop(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_diff(void *ud, const char *path, bool needs_restart)
{
	(void)ud;
	if (needs_restart)
		log_warn("config: %s changed; this takes a restart (the running value stays)", path);
	else
		log_info("config: %s changed; applied", path);
}

static void reload(struct daemon *d)
{
	struct config *n = NULL;
	struct gw_err err = { "" };
	struct config *c = d->cfg;
	int restart;

	notify_reloading(d->notify);
	log_info("SIGHUP: reading \"%s\" again", d->config_path);
	if (config_load(d->config_path, &n, &err) < 0) {
		log_error("%s; keeping the running configuration", err.msg);
		notify_ready(d->notify);
		return;
	}
	restart = config_diff(c, n, on_diff, d);
	/* Apply exactly the keys the table marks reloadable. */
	c->log_level = n->log_level;
	log_set_level(c->log_level);
	c->watch.quiet_period_ms = n->watch.quiet_period_ms;
	if (d->watch)
		watch_set_quiet(d->watch, (uint64_t)c->watch.quiet_period_ms);
	c->publish.heartbeat_ms = n->publish.heartbeat_ms;
	publish_set_heartbeat(d->pub, (uint64_t)c->publish.heartbeat_ms);
	c->jobs = n->jobs;
	c->limits.queue_depth = n->limits.queue_depth;
	{
		const struct queue_opts qo = queue_opts_of(c);

		queue_set_opts(d->queue, &qo);
	}
	c->limits.reply_bytes = n->limits.reply_bytes;
	publish_set_reply_bytes(d->pub, (size_t)c->limits.reply_bytes);
	c->limits.shutdown_ms = n->limits.shutdown_ms;
	config_free(n);
	if (restart > 0)
		log_warn("config: %d change%s wait%s for a restart", restart, restart == 1 ? "" : "s",
			 restart == 1 ? "s" : "");
	notify_ready(d->notify);
	status_update(d, true);
}

static void on_hup(uv_signal_t *h, int signum)
{
	(void)signum;
	reload(h->data);
}

static void on_watchdog(uv_timer_t *h)
{
	struct daemon *d = h->data;

	notify_watchdog(d->notify);
}

/* ---- start-up ----------------------------------------------------------------------- */

static int load_probe(const struct config *c, struct probe **ret, struct gw_err *err)
{
	struct probe *p;
	int r;

	*ret = NULL;
	if (!c->probe.path[0])
		return 0;
	p = probe_new();
	if (c->probe.format == CONFIG_PROBE_JSONL)
		r = probe_add_jsonl(p, c->probe.path, 0, err);
	else
		r = probe_add_memmap(p, c->probe.path, c->probe.format == CONFIG_PROBE_U16 ? 2 : 4,
				     (int)c->probe.sample_length, (int)c->probe.count,
				     c->probe.offset, c->probe.group, 0, err);
	if (r < 0) {
		probe_free(p);
		return r;
	}
	probe_finish(p);
	*ret = p;
	return 0;
}

static void on_state_note(void *ud, int level, const char *msg)
{
	(void)ud;
	log_msg(level, "%s", msg);
}

static int open_state(struct daemon *d, const struct probe *probe, struct gw_err *err)
{
	const struct state_opts so = {
		.dir = d->cfg->state_dir,
		.lim = {
			.line_bytes = (size_t)d->cfg->limits.journal_line_bytes,
			.file_bytes = (uint64_t)d->cfg->limits.journal_bytes,
		},
		.probe_hash = probe ? probe->hash : NULL,
		.note = on_state_note,
	};

	return state_open(&so, &d->state, err);
}

/* Results replayed from the journal: their routing vectors back into the
 * series, then into the publisher with the memorized subset as of now. */
static void restore(struct daemon *d)
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

static void usage(FILE *f)
{
	fprintf(f,
		"usage: grokwatchd run -c FILE [--check]\n"
		"\n"
		"Run the service in the foreground: watch the checkpoint directory, compute each\n"
		"complete checkpoint's routing metrics, keep them in the state directory, and\n"
		"publish them over ZeroMQ.  Every setting is in the JSON config FILE (see\n"
		"config/grokwatchd.json for every key at its default).\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE   the config file (required)\n"
		"  --check             read and check the config and the probe set, then exit\n"
		"  -h, --help          this text\n"
		"\n"
		"Signals: SIGTERM or SIGINT stop cleanly; SIGHUP reads the config again and says\n"
		"which changes need a restart.  Under systemd (Type=notify) it reports READY=1,\n"
		"STATUS=, RELOADING=1, STOPPING=1 and WATCHDOG=1 through $NOTIFY_SOCKET.\n"
		"\n"
		"Exit status: 0 stopped cleanly, 1 a config, probe, state or endpoint problem\n"
		"(the message names it), 2 usage.\n");
}

static int set_up(struct daemon *d, struct gw_err *err)
{
	struct metrics_opts m;
	struct probe *probe = NULL;
	struct publish_opts po;
	struct watch_opts wo;
	const struct watch_callbacks cb = {
		.ready = on_ready, .gone = on_gone, .bad = on_bad, .is_done = on_is_done,
		.note = on_note,
	};
	int r;

	if (!d->cfg->watch.root[0])
		return gw_errf(err, -EINVAL, "\"%s\": watch.root is not set", d->config_path);
	{
		const struct queue_opts qo = queue_opts_of(d->cfg);

		d->queue = queue_new(&qo);
	}
	if (!d->cfg->probe.path[0])
		log_warn("probe.path is not set: only checkpoints holding routing.safetensors can be computed");
	r = load_probe(d->cfg, &probe, err);
	if (r < 0)
		return r;
	d->run = d->cfg->run[0] ? gw_strdup(d->cfg->run) : gw_path_base(d->cfg->watch.root);
	d->threads = d->cfg->threads.blas > 0 ? (int)d->cfg->threads.blas
					      : (cpus() > 1 ? cpus() - 1 : 1);
	openblas_set_num_threads(d->threads);

	metrics_opts_init(&m);
	m.tau = d->cfg->metrics.tau;
	m.pair_budget = (uint64_t)d->cfg->metrics.pair_budget;
	m.seed = (uint64_t)d->cfg->metrics.seed;
	m.epsilon = d->cfg->metrics.epsilon;
	m.delta = d->cfg->metrics.delta;
	d->eps = gw_calloc((size_t)d->cfg->metrics.epsilon_groups.n + 1, sizeof(*d->eps));
	for (int i = 0; i < d->cfg->metrics.epsilon_groups.n; i++) {
		const struct config_epsilon *e =
			(const struct config_epsilon *)d->cfg->metrics.epsilon_groups.v + i;

		d->eps[i].group = e->group;
		d->eps[i].epsilon = e->epsilon;
	}
	m.eps_groups = d->eps;
	m.n_eps_groups = d->cfg->metrics.epsilon_groups.n;
	if ((r = metrics_opts_check(&m, err)) < 0) {
		probe_free(probe);
		return r;
	}
	r = open_state(d, probe, err);
	if (r < 0) {
		probe_free(probe);
		return r;
	}
	d->ctx = job_ctx_new(probe, &m, d->threads);

	d->zctx = zmq_ctx_new();
	if (!d->zctx)
		return gw_errf(err, -errno, "zmq_ctx_new: %s", zmq_strerror(errno));
	po = (struct publish_opts){
		.endpoint = d->cfg->publish.endpoint,
		.query_endpoint = d->cfg->publish.query_endpoint,
		.run = d->run,
		.sndhwm = (int)d->cfg->publish.sndhwm,
		.max_message_bytes = (size_t)d->cfg->publish.max_message_bytes,
		.request_bytes = (size_t)d->cfg->limits.request_bytes,
		.reply_bytes = (size_t)d->cfg->limits.reply_bytes,
		.heartbeat_ms = (uint64_t)d->cfg->publish.heartbeat_ms,
		.curve_secret_file = d->cfg->publish.curve.server_secret_key_file,
		.curve_public_file = d->cfg->publish.curve.server_public_key_file,
		.allow_insecure_remote = d->cfg->publish.allow_insecure_remote,
	};
	r = publish_new(&d->loop, d->zctx, &po, &d->pub, err);
	if (r < 0)
		return r;
	publish_set_results(d->pub, state_results(d->state));
	restore(d);

	d->alerts = alerts_new(d->cfg);
	if (alerts_restore(d->alerts, state_alerts(d->state), err) < 0)
		log_warn("alerts in the journal: %s; they may be sent again", err->msg);
	{
		struct hook_opts ho;

		hook_opts_from_config(&ho, d->cfg);
		r = hooks_new(&d->loop, &ho, on_hook_done, d, &d->hooks, err);
		if (r < 0)
			return r;
	}
	evaluate_alerts(d, ALERTS_CHANGED_ALL);

	r = notify_new(&d->notify, err);
	if (r < 0)
		return r;
	r = notify_watchdog_usec(&d->watchdog_usec, err);
	if (r < 0)
		return r;

	uv_timer_init(&d->loop, &d->retry_timer);
	uv_timer_init(&d->loop, &d->watchdog_timer);
	uv_timer_init(&d->loop, &d->shutdown_timer);
	uv_signal_init(&d->loop, &d->sigterm);
	uv_signal_init(&d->loop, &d->sigint);
	uv_signal_init(&d->loop, &d->sighup);
	uv_async_init(&d->loop, &d->progress_async, on_progress);
	d->retry_timer.data = d->watchdog_timer.data = d->shutdown_timer.data = d;
	d->sigterm.data = d->sigint.data = d->sighup.data = d->progress_async.data = d;
	uv_signal_start(&d->sigterm, on_stop_signal, SIGTERM);
	uv_signal_start(&d->sigint, on_stop_signal, SIGINT);
	uv_signal_start(&d->sighup, on_hup, SIGHUP);
	if (d->watchdog_usec)
		uv_timer_start(&d->watchdog_timer, on_watchdog, d->watchdog_usec / 2000 + 1,
			       d->watchdog_usec / 2000 + 1);

	wo = (struct watch_opts){
		.root = d->cfg->watch.root,
		.patterns = (const char *const *)d->cfg->watch.patterns.v,
		.step_from_trainer_state = d->cfg->watch.step_from_trainer_state,
		.marker = d->cfg->watch.marker,
		.quiet_ms = (uint64_t)d->cfg->watch.quiet_period_ms,
		.mode = d->cfg->watch.mode,
		.poll_ms = (uint64_t)d->cfg->watch.poll_interval_ms,
		.max_entries = (size_t)d->cfg->limits.checkpoints,
	};
	return watch_new(&d->loop, &wo, &cb, d, &d->watch, err);
}

int cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon d = { .exit_code = 0 };
	struct gw_err err = { "" };
	bool check = false;
	char ep[512] = "", qep[512] = "";
	int c, r;

	/* Hooks write to pipes that may close early; a write there must be an
	 * error, not the end of the daemon. */
	signal(SIGPIPE, SIG_IGN);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': d.config_path = optarg; break;
		case 'k': check = true; break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "grokwatchd: run: unknown option or missing value in '%s'\n",
				argv[optind - 1]);
			fprintf(stderr, "Try 'grokwatchd run --help'.\n");
			return 2;
		}
	}
	if (!d.config_path || optind < argc) {
		usage(stderr);
		return 2;
	}
	if (config_load(d.config_path, &d.cfg, &err) < 0) {
		fprintf(stderr, "grokwatchd: %s\n", err.msg);
		return 1;
	}
	log_set_level(d.cfg->log_level);
	if (check) {
		struct probe *p = NULL;

		r = d.cfg->watch.root[0] ? load_probe(d.cfg, &p, &err)
					 : gw_errf(&err, -EINVAL, "\"%s\": watch.root is not set",
						   d.config_path);
		if (r == 0)
			printf("\"%s\": configuration is valid%s%s\n", d.config_path,
			       p ? "; probe hash " : "", p ? p->hash : "");
		else
			fprintf(stderr, "grokwatchd: %s\n", err.msg);
		probe_free(p);
		config_free(d.cfg);
		return r < 0 ? 1 : 0;
	}

	uv_loop_init(&d.loop);
	r = set_up(&d, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		d.exit_code = 1;
		d.stopping = true;
		if (d.pub && !d.closed) {
			/* Handles that were started must close before the loop. */
			finish_stop(&d);
		} else {
			publish_close(d.pub);
			d.pub = NULL;
			watch_close(d.watch);
			d.watch = NULL;
		}
	} else {
		publish_endpoint(d.pub, false, ep, sizeof(ep));
		publish_endpoint(d.pub, true, qep, sizeof(qep));
		log_info("run \"%s\": watching \"%s\" (%s), publishing on %s, queries on %s, state in \"%s\"",
			 d.run, d.cfg->watch.root, watch_mode_name(d.watch), ep, qep,
			 d.cfg->state_dir);
		status_update(&d, true);
		notify_ready(d.notify);
	}
	uv_run(&d.loop, UV_RUN_DEFAULT);
	if (d.forced) {
		/* A job still runs on the pool: the journal is durable, so leave
		 * without waiting for it. */
		state_free(d.state);
		log_info("stopped (job abandoned)");
		_exit(d.exit_code);
	}
	r = uv_loop_close(&d.loop);
	if (r < 0) {
		log_error("uv_loop_close: %s", uv_strerror(r));
		d.exit_code = 1;
	}
	if (d.zctx)
		zmq_ctx_term(d.zctx);
	notify_free(d.notify);
	state_free(d.state);
	job_ctx_free(d.ctx);
	alerts_free(d.alerts);
	queue_free(d.queue);
	free(d.eps);
	free(d.run);
	log_info("stopped");
	config_free(d.cfg);
	return d.exit_code;
}
