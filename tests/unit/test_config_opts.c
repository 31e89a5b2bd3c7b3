/*
 * test_config_opts.c — config_opts.h: each module's options read from a
 * config, field by field, with the enum mapping of the plateau detectors
 * and the arrays the conversion allocates (freed by _release, which
 * accepts what it already released).
 */
#include <stdio.h>
#include <string.h>

#include "../tap.h"
#include "config_opts.h"
#include "log.h"

static struct config *parse(const char *text)
{
	struct config *c = NULL;
	struct gw_err e = { "" };

	if (config_parse("t.json", text, strlen(text), &c, &e) < 0)
		tap_fail(__FILE__, __LINE__, "config_parse: %s", e.msg);
	return c;
}

static void test_publish(void)
{
	struct config *c = parse(
		"{\"publish\": {\"endpoint\": \"tcp://127.0.0.1:7001\", \"query_endpoint\": "
		"\"ipc:///tmp/q\", \"sndhwm\": 12, \"max_message_bytes\": 8192, \"heartbeat_ms\": 300, "
		"\"allow_insecure_remote\": true, \"curve\": {\"server_secret_key_file\": \"/s\", "
		"\"server_public_key_file\": \"/p\"}}, "
		"\"limits\": {\"request_bytes\": 1024, \"reply_bytes\": 4096}}");
	struct publish_opts o;

	config_opts_publish(c, "myrun", &o);
	CHECK_STR_EQ(o.endpoint, "tcp://127.0.0.1:7001");
	CHECK_STR_EQ(o.query_endpoint, "ipc:///tmp/q");
	CHECK_STR_EQ(o.run, "myrun");
	CHECK_INT_EQ(o.sndhwm, 12);
	CHECK_INT_EQ(o.max_message_bytes, 8192);
	CHECK_INT_EQ(o.request_bytes, 1024);
	CHECK_INT_EQ(o.reply_bytes, 4096);
	CHECK_INT_EQ(o.heartbeat_ms, 300);
	CHECK_STR_EQ(o.curve_secret_file, "/s");
	CHECK_STR_EQ(o.curve_public_file, "/p");
	CHECK(o.allow_insecure_remote);
	config_free(c);
}

static void test_alerts(void)
{
	struct config *c = parse(
		"{\"alerts\": {\"enabled\": false, \"groups\": [\"math\", \"code\"], "
		"\"loss\": {\"metric\": \"loss\", \"threshold\": 0.5, \"threshold_mode\": \"abs\", "
		"\"patience\": 3, \"cooldown\": 1, \"min_checkpoints\": 4}, "
		"\"distance\": {\"metric\": \"memorized.pathway_distance\"}, "
		"\"plateaus\": [{\"metric\": \"pathway_consistency\", \"mode\": \"max\", "
		"\"threshold\": 0.02, \"threshold_mode\": \"rel\", \"patience\": 6, \"cooldown\": 0, "
		"\"min_checkpoints\": 2}, {\"metric\": \"loss\", \"mode\": \"min\", \"threshold\": 1, "
		"\"threshold_mode\": \"abs\", \"patience\": 0, \"cooldown\": 0, "
		"\"min_checkpoints\": 0}], "
		"\"routing_collapse\": {\"dead_experts\": 2, \"max_imbalance\": 4.5}}}");
	struct alert_opts o;

	config_opts_alerts(c, &o);
	CHECK(!o.enabled);
	CHECK_INT_EQ(o.n_groups, 2);
	CHECK_STR_EQ(o.groups[0], "math");
	CHECK_STR_EQ(o.groups[1], "code");
	CHECK_STR_EQ(o.loss.metric, "loss");
	CHECK_INT_EQ(o.loss.mode, ALERT_MODE_MIN);
	CHECK_NEAR(o.loss.threshold, 0.5, 0);
	CHECK_INT_EQ(o.loss.threshold_mode, ALERT_THRESHOLD_ABS);
	CHECK_INT_EQ(o.loss.patience, 3);
	CHECK_INT_EQ(o.loss.cooldown, 1);
	CHECK_INT_EQ(o.loss.min_checkpoints, 4);
	CHECK_STR_EQ(o.distance.metric, "memorized.pathway_distance");
	CHECK_INT_EQ(o.distance.mode, ALERT_MODE_MIN);
	CHECK_INT_EQ(o.distance.threshold_mode, ALERT_THRESHOLD_REL);
	CHECK_INT_EQ(o.distance.patience, 5);
	CHECK_INT_EQ(o.n_plateaus, 2);
	CHECK_STR_EQ(o.plateaus[0].metric, "pathway_consistency");
	CHECK_INT_EQ(o.plateaus[0].mode, ALERT_MODE_MAX);
	CHECK_INT_EQ(o.plateaus[0].threshold_mode, ALERT_THRESHOLD_REL);
	CHECK_NEAR(o.plateaus[0].threshold, 0.02, 0);
	CHECK_INT_EQ(o.plateaus[0].patience, 6);
	CHECK_INT_EQ(o.plateaus[0].min_checkpoints, 2);
	CHECK_INT_EQ(o.plateaus[1].mode, ALERT_MODE_MIN);
	CHECK_INT_EQ(o.plateaus[1].threshold_mode, ALERT_THRESHOLD_ABS);
	CHECK_INT_EQ(o.dead_experts, 2);
	CHECK_NEAR(o.max_imbalance, 4.5, 0);
	/* The evaluator copies what it needs. */
	alerts_free(alerts_new(&o));
	config_opts_alerts_release(&o);
	CHECK(o.plateaus == NULL);
	CHECK_INT_EQ(o.n_plateaus, 0);
	config_opts_alerts_release(&o);
	config_free(c);
}

static void test_hooks(void)
{
	struct config *c = parse(
		"{\"alerts\": {\"hooks\": [{\"alert\": \"grokking\", \"argv\": [\"/bin/echo\", \"a\", "
		"\"b\"]}, {\"alert\": \"*\", \"argv\": [\"page\"]}], \"hook_kill_grace_ms\": 9, "
		"\"hook_concurrency\": 2}}");
	struct hook_opts o;

	config_opts_hooks(c, &o);
	CHECK_INT_EQ(o.n_hooks, 2);
	CHECK_STR_EQ(o.hooks[0].alert, "grokking");
	CHECK_INT_EQ(o.hooks[0].argc, 3);
	CHECK_STR_EQ(o.hooks[0].argv[0], "/bin/echo");
	CHECK_STR_EQ(o.hooks[0].argv[2], "b");
	CHECK(o.hooks[0].argv[3] == NULL);
	CHECK_STR_EQ(o.hooks[1].alert, "*");
	CHECK_INT_EQ(o.hooks[1].argc, 1);
	CHECK_STR_EQ(o.hooks[1].argv[0], "page");
	CHECK_INT_EQ(o.timeout_ms, 30000);
	CHECK_INT_EQ(o.kill_grace_ms, 9);
	CHECK_INT_EQ(o.concurrency, 2);
	CHECK_INT_EQ(o.queue, 256);
	CHECK_INT_EQ(o.output_bytes, 65536);
	config_opts_hooks_release(&o);
	CHECK(o.hooks == NULL);
	CHECK_INT_EQ(o.n_hooks, 0);
	config_free(c);
}

static void test_queue(void)
{
	struct config *c = parse(
		"{\"jobs\": {\"retry_backoff_ms\": 250, \"retry_backoff_max_ms\": 9000, "
		"\"max_retries\": 4}, \"limits\": {\"queue_depth\": 77}}");
	struct queue_opts o;

	config_opts_queue(c, &o);
	CHECK_INT_EQ(o.backoff_ms, 250);
	CHECK_INT_EQ(o.backoff_max_ms, 9000);
	CHECK_INT_EQ(o.max_retries, 4);
	CHECK_INT_EQ(o.depth, 77);
	config_free(c);
}

static void test_watch(void)
{
	struct config *c = parse(
		"{\"watch\": {\"root\": \"/ck\", \"patterns\": [\"iter_{step}\", \"s{step}\"], "
		"\"step_from_trainer_state\": false, \"marker\": \"DONE\", "
		"\"quiet_period_ms\": 1234, \"mode\": \"poll\", \"poll_interval_ms\": 750}, "
		"\"limits\": {\"checkpoints\": 99}}");
	struct watch_opts o;

	config_opts_watch(c, &o);
	CHECK_STR_EQ(o.root, "/ck");
	CHECK_STR_EQ(o.patterns[0], "iter_{step}");
	CHECK_STR_EQ(o.patterns[1], "s{step}");
	CHECK(o.patterns[2] == NULL);
	CHECK(!o.step_from_trainer_state);
	CHECK_STR_EQ(o.marker, "DONE");
	CHECK_INT_EQ(o.quiet_ms, 1234);
	CHECK_INT_EQ(o.mode, WATCH_POLL);
	CHECK_INT_EQ(o.poll_ms, 750);
	CHECK_INT_EQ(o.max_entries, 99);
	config_free(c);

	c = parse("{\"watch\": {\"root\": \"/ck\", \"mode\": \"events\"}}");
	config_opts_watch(c, &o);
	CHECK_INT_EQ(o.mode, WATCH_EVENTS);
	config_free(c);
	c = parse("{\"watch\": {\"root\": \"/ck\"}}");
	config_opts_watch(c, &o);
	CHECK_INT_EQ(o.mode, WATCH_AUTO);
	config_free(c);
}

static void test_log_level(void)
{
	static const struct { const char *name; int level; } cases[] = {
		{ "error", LOG_LVL_ERROR }, { "warn", LOG_LVL_WARN },
		{ "info", LOG_LVL_INFO }, { "debug", LOG_LVL_DEBUG },
	};
	char text[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config *c;

		snprintf(text, sizeof(text), "{\"log_level\": \"%s\"}", cases[i].name);
		c = parse(text);
		CHECK_INT_EQ(config_opts_log_level(c), cases[i].level);
		config_free(c);
	}
}

static const struct tap_test tests[] = {
	{ "publish", test_publish },
	{ "alerts", test_alerts },
	{ "hooks", test_hooks },
	{ "queue", test_queue },
	{ "watch", test_watch },
	{ "log_level", test_log_level },
	{ NULL, NULL },
};

TAP_MAIN(tests)
