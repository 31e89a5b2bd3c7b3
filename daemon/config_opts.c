/*
 * config_opts.c — struct config to module options (config_opts.h), one
 * function per module: publish, alerts (their detectors and the enum
 * mapping), hooks, the queue, the probe loader's options.
 */
#include "config_opts.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

void config_opts_publish(const struct config *c, const char *run, struct publish_opts *ret)
{
	*ret = (struct publish_opts){
		.endpoint = c->publish.endpoint,
		.query_endpoint = c->publish.query_endpoint,
		.run = run,
		.sndhwm = (int)c->publish.sndhwm,
		.max_message_bytes = (size_t)c->publish.max_message_bytes,
		.request_bytes = (size_t)c->limits.request_bytes,
		.reply_bytes = (size_t)c->limits.reply_bytes,
		.heartbeat_ms = (uint64_t)c->publish.heartbeat_ms,
		.curve_secret_file = c->publish.curve.server_secret_key_file,
		.curve_public_file = c->publish.curve.server_public_key_file,
		.allow_insecure_remote = c->publish.allow_insecure_remote,
		.max_connections = (size_t)c->limits.connections,
	};
}

static struct alert_detector_opts detector(const struct config_plateau *p, int mode)
{
	/* By the config's enum index (config.h). */
	static const enum alert_threshold_mode modes[] = {
		[CONFIG_THRESHOLD_REL] = ALERT_THRESHOLD_REL,
		[CONFIG_THRESHOLD_ABS] = ALERT_THRESHOLD_ABS,
		[CONFIG_THRESHOLD_SE] = ALERT_THRESHOLD_SE,
	};

	return (struct alert_detector_opts){
		.metric = p->metric,
		.mode = mode == CONFIG_PLATEAU_MAX ? ALERT_MODE_MAX : ALERT_MODE_MIN,
		.threshold = p->threshold,
		.threshold_mode = modes[p->threshold_mode],
		.patience = p->patience,
		.cooldown = p->cooldown,
		.min_checkpoints = p->min_checkpoints,
	};
}

void config_opts_alerts(const struct config *c, struct alert_opts *ret)
{
	const struct config_plateau *pl = c->alerts.plateaus.v;
	struct alert_detector_opts *v =
		gw_calloc((size_t)c->alerts.plateaus.n + 1, sizeof(*v));

	for (int i = 0; i < c->alerts.plateaus.n; i++)
		v[i] = detector(&pl[i], pl[i].mode);
	*ret = (struct alert_opts){
		.enabled = c->alerts.enabled,
		.groups = (const char *const *)c->alerts.groups.v,
		.n_groups = c->alerts.groups.n,
		/* alerts.loss and alerts.distance are judged falling (alert.h). */
		.loss = detector(&c->alerts.loss, CONFIG_PLATEAU_MIN),
		.distance = detector(&c->alerts.distance, CONFIG_PLATEAU_MIN),
		.plateaus = v,
		.n_plateaus = c->alerts.plateaus.n,
		.dead_experts = c->alerts.collapse_dead_experts,
		.max_imbalance = c->alerts.collapse_max_imbalance,
	};
}

void config_opts_alerts_release(struct alert_opts *o)
{
	free((void *)o->plateaus);
	o->plateaus = NULL;
	o->n_plateaus = 0;
}

void config_opts_hooks(const struct config *c, struct hook_opts *ret)
{
	const struct config_hook *h = c->alerts.hooks.v;
	struct hook_spec *v = gw_calloc((size_t)c->alerts.hooks.n + 1, sizeof(*v));

	for (int i = 0; i < c->alerts.hooks.n; i++)
		v[i] = (struct hook_spec){ .alert = h[i].alert,
					   .argv = (const char *const *)h[i].argv.v,
					   .argc = h[i].argv.n };
	*ret = (struct hook_opts){
		.hooks = v,
		.n_hooks = c->alerts.hooks.n,
		.timeout_ms = (uint64_t)c->alerts.hook_timeout_ms,
		.kill_grace_ms = (uint64_t)c->alerts.hook_kill_grace_ms,
		.concurrency = (int)c->alerts.hook_concurrency,
		.queue = (size_t)c->alerts.hook_queue,
		.output_bytes = (size_t)c->alerts.hook_output_bytes,
	};
}

void config_opts_alertmanager(const struct config *c, struct am_opts *ret)
{
	*ret = (struct am_opts){
		.urls = (const char *const *)c->alerts.alertmanager.urls.v,
		.n_urls = c->alerts.alertmanager.urls.n,
		.resend_ms = (uint64_t)c->alerts.alertmanager.resend_ms,
		.timeout_ms = (uint64_t)c->alerts.alertmanager.timeout_ms,
		.user = c->alerts.alertmanager.user,
		.password_file = c->alerts.alertmanager.password_file,
		.bearer_token_file = c->alerts.alertmanager.bearer_token_file,
		.ca_file = c->alerts.alertmanager.ca_file,
	};
}

void config_opts_hooks_release(struct hook_opts *o)
{
	free((void *)o->hooks);
	o->hooks = NULL;
	o->n_hooks = 0;
}

void config_opts_probe(const struct config *c, struct probe_load_opts *ret)
{
	static const enum probe_format formats[] = {
		[CONFIG_PROBE_JSONL] = PROBE_FORMAT_JSONL,
		[CONFIG_PROBE_U16] = PROBE_FORMAT_U16,
		[CONFIG_PROBE_U32] = PROBE_FORMAT_U32,
	};

	*ret = (struct probe_load_opts){
		.path = c->probe.path,
		.format = formats[c->probe.format],
		.length = (int)c->probe.sample_length,
		.count = (int)c->probe.count,
		.offset = c->probe.offset,
		.group = c->probe.group,
	};
}

void config_opts_queue(const struct config *c, struct queue_opts *ret)
{
	*ret = (struct queue_opts){
		.backoff_ms = (uint64_t)c->jobs.retry_backoff_ms,
		.backoff_max_ms = (uint64_t)c->jobs.retry_backoff_max_ms,
		.max_retries = c->jobs.max_retries,
		.depth = (size_t)c->limits.queue_depth,
	};
}

/* The enums are spelled out, not cast: config.h's order is the table's
 * (what the file may say), watch.h's and log.h's are their modules'. */
static int watch_mode(int mode)
{
	switch (mode) {
	case CONFIG_WATCH_EVENTS: return WATCH_EVENTS;
	case CONFIG_WATCH_POLL: return WATCH_POLL;
	default: return WATCH_AUTO;
	}
}

void config_opts_watch(const struct config *c, struct watch_opts *ret)
{
	*ret = (struct watch_opts){
		.root = c->watch.root,
		.patterns = (const char *const *)c->watch.patterns.v,
		.step_from_trainer_state = c->watch.step_from_trainer_state,
		.marker = c->watch.marker,
		.quiet_ms = (uint64_t)c->watch.quiet_period_ms,
		.mode = watch_mode(c->watch.mode),
		.poll_ms = (uint64_t)c->watch.poll_interval_ms,
		.max_entries = (size_t)c->limits.checkpoints,
	};
}

int config_opts_log_level(const struct config *c)
{
	switch (c->log_level) {
	case CONFIG_LOG_ERROR: return LOG_LVL_ERROR;
	case CONFIG_LOG_WARN: return LOG_LVL_WARN;
	case CONFIG_LOG_DEBUG: return LOG_LVL_DEBUG;
	default: return LOG_LVL_INFO;
	}
}
