/*
 * run.c — `grokwatchd run -c FILE`: the service's wiring.  One struct
 * daemon (daemon.h) holds everything and reaches every callback through
 * handle->data (STYLE.md habit 7); what happens to a checkpoint on the
 * loop is dispatch.c's, the state directory state.c's, the queue queue.c's,
 * the status object status.c's.
 *
 * In order:
 *   - signals: SIGTERM/SIGINT stop, SIGHUP reloads, the watchdog pings;
 *     shut-down: the running job cancelled (or abandoned after
 *     limits.shutdown_ms), handles closed, uv_loop_close;
 *   - start-up: config, probe, the state directory (journal replay; a
 *     changed probe archives the old series), the routing series restored
 *     from kept vectors, the publisher over the store, alerts and hooks,
 *     sd_notify, timers and signals, the watcher; then cmd_run itself.
 */
#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include <zmq.h>

#include "commands.h"
#include "daemon.h"
#include "fault.h"
#include "engine/file.h"
#include "config.h"
#include "config_opts.h"
#include "engine/probe.h"
#include "log.h"

/* ---- small helpers -------------------------------------------------------------- */

#define FD_RESERVE 256 /* descriptors kept for files, hooks, inotify and libuv */

/* Raise the open file limit to its hard limit, and keep the two endpoints'
 * connections (limits.connections each) under it with FD_RESERVE to
 * spare: connections must never use up the descriptors that checkpoints,
 * the journal and hooks need (EMFILE). */
static size_t connection_bound(size_t want)
{
	struct rlimit rl;
	size_t room;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return want;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	room = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)SIZE_MAX / 2
		       ? want
		       : rl.rlim_cur > 2 * FD_RESERVE ? (size_t)(rl.rlim_cur - FD_RESERVE) / 2 : 16;
	if (want > room) {
		log_warn("limits.connections = %zu lowered to %zu: the open file limit is %llu",
			 want, room, (unsigned long long)rl.rlim_cur);
		return room;
	}
	return want;
}

static int cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

/* ---- signals ------------------------------------------------------------------------ */

static void close_cb(uv_handle_t *h)
{
	(void)h;
}

/* Close what is left once no job runs. */
void daemon_finish_stop(struct daemon *d)
{
	if (d->closed)
		return;
	d->closed = true;
	if (d->queue)
		queue_clear(d->queue);
	watch_close(d->watch);
	d->watch = NULL;
	dispatch_log_interrupted_hooks(d);
	hooks_close(d->hooks);
	d->hooks = NULL;
	alertmanager_close(d->am);
	d->am = NULL;
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
	daemon_status_update(d, true);
	if (d->job) {
		atomic_store(&d->job->cancel, 1);
		uv_timer_start(&d->shutdown_timer, on_shutdown_timer,
			       (uint64_t)d->cfg->limits.shutdown_ms, 0);
		return;
	}
	daemon_finish_stop(d);
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

/* The apply callbacks of config_reload, by section: each hands its
 * section's reloadable keys to the module that holds them (jobs.* and
 * limits.queue_depth to the queue).  limits.shutdown_ms needs none: it is
 * read from d->cfg where used. */
static void apply_top(void *ud, const struct config *c)
{
	(void)ud;
	log_set_level(config_opts_log_level(c));
}

static void apply_watch(void *ud, const struct config *c)
{
	struct daemon *d = ud;

	if (d->watch)
		watch_set_quiet(d->watch, (uint64_t)c->watch.quiet_period_ms);
}

static void apply_publish(void *ud, const struct config *c)
{
	struct daemon *d = ud;

	publish_set_heartbeat(d->pub, (uint64_t)c->publish.heartbeat_ms);
}

static void apply_jobs(void *ud, const struct config *c)
{
	struct daemon *d = ud;
	struct queue_opts qo;

	config_opts_queue(c, &qo);
	queue_set_opts(d->queue, &qo);
}

static void apply_limits(void *ud, const struct config *c)
{
	struct daemon *d = ud;

	publish_set_reply_bytes(d->pub, (size_t)c->limits.reply_bytes);
	apply_jobs(d, c);
}

static void reload(struct daemon *d)
{
	static const config_apply_fn apply[CONFIG_SECTIONS] = {
		[CONFIG_SECTION_TOP] = apply_top,
		[CONFIG_SECTION_WATCH] = apply_watch,
		[CONFIG_SECTION_PUBLISH] = apply_publish,
		[CONFIG_SECTION_JOBS] = apply_jobs,
		[CONFIG_SECTION_LIMITS] = apply_limits,
	};
	struct gw_err err = { "" };
	int restart;

	notify_reloading(d->notify);
	log_info("SIGHUP: reading \"%s\" again", d->config_path);
	restart = config_reload(d->cfg, d->config_path, apply, d, on_diff, &err);
	if (restart < 0) {
		log_error("%s; keeping the running configuration", err.msg);
		notify_ready(d->notify);
		return;
	}
	if (restart > 0)
		log_warn("config: %d change%s wait%s for a restart", restart, restart == 1 ? "" : "s",
			 restart == 1 ? "s" : "");
	notify_ready(d->notify);
	daemon_status_update(d, true);
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
	struct probe_load_opts o;

	*ret = NULL;
	if (!c->probe.path[0])
		return 0;
	config_opts_probe(c, &o);
	return probe_load(&o, ret, err);
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

/* A POST to an Alertmanager ended: heartbeats and snapshots show it. */
static void on_am_changed(void *ud)
{
	daemon_status_update(ud, false);
}

static int set_up(struct daemon *d, struct gw_err *err)
{
	struct metrics_opts m;
	struct probe *probe = NULL;
	struct publish_opts po;
	struct watch_opts wo;
	int r;

	if (!d->cfg->watch.root[0])
		return gw_errf(err, -EINVAL, "\"%s\": watch.root is not set", d->config_path);
	{
		struct queue_opts qo;

		config_opts_queue(d->cfg, &qo);
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
	m.memorized_share = d->cfg->metrics.memorized_share;
	m.consistency_floor = d->cfg->metrics.consistency_floor;
	m.per_layer = d->cfg->metrics.per_layer_distance;
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
	config_opts_publish(d->cfg, d->run, &po);
	po.max_connections = connection_bound(po.max_connections);
	r = publish_new(&d->loop, d->zctx, &po, &d->pub, err);
	if (r < 0)
		return r;
	publish_set_results(d->pub, state_results(d->state));
	publish_set_alerts(d->pub, state_alerts(d->state));
	dispatch_restore(d);

	{
		struct alert_opts ao;

		config_opts_alerts(d->cfg, &ao);
		d->alerts = alerts_new(&ao);
		config_opts_alerts_release(&ao);
	}
	if (alerts_restore(d->alerts, state_alerts(d->state), err) < 0)
		log_warn("alerts in the journal: %s; they may be sent again", err->msg);
	{
		struct hook_opts ho;

		config_opts_hooks(d->cfg, &ho);
		r = hooks_new(&d->loop, &ho, dispatch_on_hook_done, d, &d->hooks, err);
		config_opts_hooks_release(&ho);
		if (r < 0)
			return r;
	}
	if (d->cfg->alerts.alertmanager.urls.n > 0) {
		struct am_opts amo;

		config_opts_alertmanager(d->cfg, &amo);
		amo.changed = on_am_changed;
		amo.ud = d;
		if ((r = alertmanager_new(&d->loop, &amo, d->alerts, &d->am, err)) < 0)
			return r;
		alertmanager_restore(d->am, state_alerts(d->state));
	}
	dispatch_redeliver(d);
	dispatch_alerts(d, ALERTS_CHANGED_ALL);

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
	uv_async_init(&d->loop, &d->progress_async, dispatch_on_progress);
	d->retry_timer.data = d->watchdog_timer.data = d->shutdown_timer.data = d;
	d->sigterm.data = d->sigint.data = d->sighup.data = d->progress_async.data = d;
	uv_signal_start(&d->sigterm, on_stop_signal, SIGTERM);
	uv_signal_start(&d->sigint, on_stop_signal, SIGINT);
	uv_signal_start(&d->sighup, on_hup, SIGHUP);
	if (d->watchdog_usec)
		uv_timer_start(&d->watchdog_timer, on_watchdog, d->watchdog_usec / 2000 + 1,
			       d->watchdog_usec / 2000 + 1);

	config_opts_watch(d->cfg, &wo);
	return watch_new(&d->loop, &wo, &dispatch_watch_callbacks, d, &d->watch, err);
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
	log_set_level(config_opts_log_level(d.cfg));
	if (fault_init(&err) < 0) {
		fprintf(stderr, "grokwatchd: %s\n", err.msg);
		config_free(d.cfg);
		return 1;
	}
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
			daemon_finish_stop(&d);
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
		daemon_status_update(&d, true);
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
