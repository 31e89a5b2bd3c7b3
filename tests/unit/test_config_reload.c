/*
 * test_config_reload.c — SIGHUP's config_reload: a changed reloadable key
 * reaches its section's apply callback with the new value; a key that needs
 * a restart keeps its running value, calls nothing and is reported; a file
 * that is refused changes nothing.  Also the table's sections: every key
 * has one, and every reloadable key is in a section the daemon can apply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "engine/step.h"
#include "config.h"

#define CALLS_MAX 16

struct rec {
	int calls[CONFIG_SECTIONS];     /* apply callbacks, per section */
	int order[CALLS_MAX], ncalls;   /* sections in call order */
	int64_t quiet_seen, heartbeat_seen;
	int log_level_seen;
	char notes[CALLS_MAX][64];
	bool restart[CALLS_MAX];
	int nnotes;
};

static void rec_call(struct rec *r, enum config_section s)
{
	r->calls[s]++;
	if (r->ncalls < CALLS_MAX)
		r->order[r->ncalls++] = s;
}

static void on_top(void *ud, const struct config *c)
{
	struct rec *r = ud;

	rec_call(r, CONFIG_SECTION_TOP);
	r->log_level_seen = c->log_level;
}

static void on_watch(void *ud, const struct config *c)
{
	struct rec *r = ud;

	rec_call(r, CONFIG_SECTION_WATCH);
	r->quiet_seen = c->watch.quiet_period_ms;
}

static void on_publish(void *ud, const struct config *c)
{
	struct rec *r = ud;

	rec_call(r, CONFIG_SECTION_PUBLISH);
	r->heartbeat_seen = c->publish.heartbeat_ms;
}

static void on_other(void *ud, const struct config *c)
{
	struct rec *r = ud;

	(void)c;
	rec_call(r, CONFIG_SECTION_LIMITS);
}

static void on_note(void *ud, const char *path, bool restart)
{
	struct rec *r = ud;

	if (r->nnotes < CALLS_MAX) {
		snprintf(r->notes[r->nnotes], sizeof(r->notes[0]), "%s", path);
		r->restart[r->nnotes++] = restart;
	}
}

static const config_apply_fn apply[CONFIG_SECTIONS] = {
	[CONFIG_SECTION_TOP] = on_top,
	[CONFIG_SECTION_WATCH] = on_watch,
	[CONFIG_SECTION_PUBLISH] = on_publish,
	[CONFIG_SECTION_LIMITS] = on_other,
};

static struct config *load(const char *name, const char *text)
{
	struct config *c = NULL;
	struct gw_err e = { "" };

	if (config_load(tap_write_file(name, text, strlen(text)), &c, &e) < 0)
		tap_fail(__FILE__, __LINE__, "config_load: %s", e.msg);
	return c;
}

#define BASE "{\"watch\": {\"root\": \"/a\", \"quiet_period_ms\": 100}, "
#define BASE_END "\"publish\": {\"heartbeat_ms\": 1000}}"

/* One reloadable key changed: its section's callback, once, sees it. */
static void test_reloadable_key_applied(void)
{
	struct config *c = load("run.json", BASE BASE_END);
	struct rec r = { .nnotes = 0 };
	struct gw_err e = { "" };
	const char *t = "{\"watch\": {\"root\": \"/a\", \"quiet_period_ms\": 7000}, "
			"\"publish\": {\"heartbeat_ms\": 1000}}";
	const char *p = tap_write_file("new.json", t, strlen(t));

	CHECK_INT_EQ(config_reload(c, p, apply, &r, on_note, &e), 0);
	CHECK_INT_EQ(r.calls[CONFIG_SECTION_WATCH], 1);
	CHECK_INT_EQ(r.quiet_seen, 7000);
	CHECK_INT_EQ(c->watch.quiet_period_ms, 7000);
	CHECK_INT_EQ(r.ncalls, 1); /* no other section's callback */
	CHECK_INT_EQ(r.nnotes, 1);
	CHECK_STR_EQ(r.notes[0], "watch.quiet_period_ms");
	CHECK(!r.restart[0]);
	/* The running config keeps its own path, and the same file again
	 * changes nothing. */
	CHECK_STR_HAS(c->path, "run.json");
	memset(&r, 0, sizeof(r));
	CHECK_INT_EQ(config_reload(c, p, apply, &r, on_note, &e), 0);
	CHECK_INT_EQ(r.ncalls, 0);
	CHECK_INT_EQ(r.nnotes, 0);
	config_free(c);
}

/* Two sections changed (a top-level key and a publish key): each callback
 * once, in section order, after every value is in place. */
static void test_sections_in_order(void)
{
	struct config *c = load("run.json", BASE BASE_END);
	struct rec r = { .nnotes = 0 };
	struct gw_err e = { "" };
	const char *t = "{\"publish\": {\"heartbeat_ms\": 250}, \"log_level\": \"debug\", "
			"\"watch\": {\"root\": \"/a\", \"quiet_period_ms\": 100}, "
			"\"limits\": {\"reply_bytes\": 8192, \"queue_depth\": 3}}";

	CHECK_INT_EQ(config_reload(c, tap_write_file("new.json", t, strlen(t)), apply, &r, on_note,
				   &e), 0);
	CHECK_INT_EQ(r.ncalls, 3);
	CHECK_INT_EQ(r.order[0], CONFIG_SECTION_TOP);
	CHECK_INT_EQ(r.order[1], CONFIG_SECTION_PUBLISH);
	CHECK_INT_EQ(r.order[2], CONFIG_SECTION_LIMITS);
	CHECK_INT_EQ(r.log_level_seen, CONFIG_LOG_DEBUG);
	CHECK_INT_EQ(r.heartbeat_seen, 250);
	CHECK_INT_EQ(c->limits.reply_bytes, 8192);
	CHECK_INT_EQ(c->limits.queue_depth, 3);
	CHECK_INT_EQ(r.nnotes, 4); /* table order */
	CHECK_STR_EQ(r.notes[0], "log_level");
	CHECK_STR_EQ(r.notes[1], "publish.heartbeat_ms");
	CHECK_STR_EQ(r.notes[2], "limits.queue_depth");
	CHECK_STR_EQ(r.notes[3], "limits.reply_bytes");
	config_free(c);
}

/* A key that needs a restart: reported, running value kept, no callback;
 * a NULL callback (jobs) still gets its section's values updated. */
static void test_restart_key_reported(void)
{
	struct config *c = load("run.json", BASE BASE_END);
	struct rec r = { .nnotes = 0 };
	struct gw_err e = { "" };
	const char *t = "{\"watch\": {\"root\": \"/b\", \"quiet_period_ms\": 100, "
			"\"patterns\": [\"ck-{step}\"]}, \"publish\": {\"heartbeat_ms\": 1000}, "
			"\"jobs\": {\"max_retries\": 9}, "
			"\"alerts\": {\"hooks\": [{\"alert\": \"*\", \"argv\": [\"/bin/true\"]}]}}";

	CHECK_INT_EQ(config_reload(c, tap_write_file("new.json", t, strlen(t)), apply, &r, on_note,
				   &e), 3);
	CHECK_INT_EQ(r.ncalls, 0);
	CHECK_STR_EQ(c->watch.root, "/a");
	{
		size_t ndef = 0; /* the defaults, kept: a restart key is not applied */

		while (step_default_patterns[ndef])
			ndef++;
		CHECK_INT_EQ(c->watch.patterns.n, ndef);
		CHECK_STR_EQ(c->watch.patterns.v[0], step_default_patterns[0]);
	}
	CHECK_INT_EQ(c->alerts.hooks.n, 0);
	CHECK_INT_EQ(c->jobs.max_retries, 9);
	CHECK_INT_EQ(r.nnotes, 4);
	CHECK_STR_EQ(r.notes[0], "watch.root");
	CHECK(r.restart[0]);
	CHECK_STR_EQ(r.notes[1], "watch.patterns");
	CHECK(r.restart[1]);
	CHECK_STR_EQ(r.notes[2], "jobs.max_retries");
	CHECK(!r.restart[2]);
	CHECK_STR_EQ(r.notes[3], "alerts.hooks");
	CHECK(r.restart[3]);
	config_free(c);
}

/* A refused or missing file: the error, and nothing changed. */
static void test_broken_file_changes_nothing(void)
{
	struct config *c = load("run.json", BASE BASE_END);
	struct config *same = load("run2.json", BASE BASE_END);
	struct rec r = { .nnotes = 0 };
	struct gw_err e = { "" };
	const char *t = "{\"watch\": {\"root\": \"/b\", \"quiet_period_ms\": 9},\n"
			"\"log_level\": \"loud\"}";

	CHECK_INT_EQ(config_reload(c, tap_write_file("bad.json", t, strlen(t)), apply, &r, on_note,
				   &e), -EINVAL);
	CHECK_STR_HAS(e.msg, "line 2: log_level: \"loud\" is not one of");
	CHECK_INT_EQ(config_diff(c, same, NULL, NULL), 0);
	CHECK_INT_EQ(c->watch.quiet_period_ms, 100);
	CHECK_INT_EQ(r.ncalls, 0);
	CHECK_INT_EQ(r.nnotes, 0);
	CHECK_INT_EQ(config_reload(c, "/nonexistent/grokwatchd.json", apply, &r, on_note, &e),
		     -ENOENT);
	CHECK_INT_EQ(config_diff(c, same, NULL, NULL), 0);
	CHECK_INT_EQ(r.ncalls + r.nnotes, 0);
	config_free(c);
	config_free(same);
}

/* Every key is in a section; every reloadable key is in one the daemon
 * applies (run.c's callbacks: top, watch, publish, limits) or reads live
 * (jobs). */
static void test_sections_of_table(void)
{
	int per[CONFIG_SECTIONS] = { 0 };

	for (const struct config_key *k = config_keys; k->path; k++) {
		enum config_section s = config_key_section(k);
		const char *name = config_sections[s].name;

		per[s]++;
		if (*name)
			CHECK(!strncmp(k->path, name, strlen(name)) && k->path[strlen(name)] == '.');
		else
			CHECK(!strchr(k->path, '.'));
		if (k->reload)
			CHECK(s == CONFIG_SECTION_TOP || s == CONFIG_SECTION_WATCH ||
			      s == CONFIG_SECTION_PUBLISH || s == CONFIG_SECTION_LIMITS ||
			      s == CONFIG_SECTION_JOBS);
	}
	for (int i = 0; i < CONFIG_SECTIONS; i++)
		CHECK(per[i] > 0);
	CHECK_INT_EQ(config_key_section(&config_keys[0]), CONFIG_SECTION_TOP);
}

static const struct tap_test tests[] = {
	{ "reloadable_key_applied", test_reloadable_key_applied },
	{ "sections_in_order", test_sections_in_order },
	{ "restart_key_reported", test_restart_key_reported },
	{ "broken_file_changes_nothing", test_broken_file_changes_nothing },
	{ "sections_of_table", test_sections_of_table },
	{ NULL, NULL },
};

TAP_MAIN(tests)
