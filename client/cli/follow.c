/*
 * follow.c — the commands that follow the daemons' stream (cli.h): tail,
 * the alerts firing now (asked of each daemon, marked as already firing),
 * then one line per result, alert or error; and alerts, the firing and the
 * recently resolved alerts the daemons hold (their journals', through the
 * "alerts" query), then those that arrive.
 *
 * In order: the line formats of messages (metrics, alerts, resyncs,
 * errors, status, anything else as name=value pairs); the follow loop
 * both commands run, which catches up first and ends at a count, a signal,
 * the end of the catch-up or a reader that has gone; tail; alerts.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "out.h"

/* ---- line formats ------------------------------------------------------------------ */

static void fmt_time(double t, char *buf, size_t size)
{
	time_t s = (time_t)t;
	struct tm tm;

	if (t <= 0 || !localtime_r(&s, &tm) || !strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, size, "%-19s", "-");
}

static void fmt_num(char *buf, size_t size, const struct gw_msg *m, const char *group,
		    const char *metric)
{
	double v;

	if (gw_msg_value(m, group, metric, &v) == 0)
		snprintf(buf, size, "%.4f", v);
	else
		snprintf(buf, size, "-");
}

static void print_metrics(const struct gw_msg *m, const char *when)
{
	int64_t step;
	char stepbuf[32];
	size_t n = gw_msg_group_count(m);

	if (gw_msg_step(m, &step) == 0)
		snprintf(stepbuf, sizeof(stepbuf), "%lld", (long long)step);
	else
		snprintf(stepbuf, sizeof(stepbuf), "-");
	for (size_t i = 0; i < n; i++) {
		const char *g = gw_msg_group_name(m, i);
		char d[32], cs[32], l[32];

		fmt_num(d, sizeof(d), m, g, "pathway_distance");
		fmt_num(cs, sizeof(cs), m, g, "pathway_consistency");
		fmt_num(l, sizeof(l), m, g, "loss");
		out_printf("%s  %s  step %s  %-8s  distance %s  consistency %s  loss %s\n", when,
			   gw_msg_run(m), stepbuf, g, d, cs, l);
	}
	if (n == 0)
		out_printf("%s  %s  step %s  (no groups)\n", when, gw_msg_run(m), stepbuf);
	/* The trainer's own loss and learning rate, where trainer_state.json
	 * logged them (grokwatchd's "trainer"). */
	if (gw_msg_get_kind(m, "trainer") == GW_JSON_OBJECT) {
		double l, lr;
		bool hl = gw_msg_get_number(m, "trainer.loss", &l) == 0;
		bool hlr = gw_msg_get_number(m, "trainer.learning_rate", &lr) == 0;

		out_printf("%s  %s  step %s  trainer  ", when, gw_msg_run(m), stepbuf);
		if (hl)
			out_printf("loss %.4f", l);
		if (hlr)
			out_printf("%slearning_rate %.4g", hl ? "  " : "", lr);
		out_printf("\n");
	}
}

/* Print the alerts of an Alertmanager-shaped object at path ("" = root),
 * or the alert at path itself if it has labels.  Returns the number
 * printed. */
static int print_alerts_at(const struct gw_msg *m, const char *path, const char *when)
{
	char p[256], q[320];
	int n, printed = 0;

	snprintf(p, sizeof(p), "%s%salerts", path, *path ? "." : "");
	n = gw_msg_get_count(m, p);
	if (n < 0) {
		/* A single alert. */
		snprintf(p, sizeof(p), "%s", path);
		n = 1;
		snprintf(q, sizeof(q), "%s%slabels", p, *p ? "." : "");
		if (gw_msg_get_kind(m, q) != GW_JSON_OBJECT)
			return 0;
	}
	for (int i = 0; i < n; i++) {
		char a[300];
		const char *status, *name, *group, *metric, *summary, *starts, *ends;
		char k[360];

		if (gw_msg_get_kind(m, p) == GW_JSON_ARRAY)
			snprintf(a, sizeof(a), "%s.%d", p, i);
		else
			snprintf(a, sizeof(a), "%s", p);
#define FIELD(f) (snprintf(k, sizeof(k), "%s%s" f, a, *a ? "." : ""), gw_msg_get_string(m, k))
		status = FIELD("status");
		name = FIELD("labels.alertname");
		group = FIELD("labels.group");
		metric = FIELD("labels.metric");
		summary = FIELD("annotations.summary");
		starts = FIELD("startsAt");
		ends = FIELD("endsAt");
#undef FIELD
		if (status && !strcmp(status, "resolved"))
			out_printf("%s  %s  RESOLVED  %s  group %s  metric %s  since %s  until %s  %s\n",
				   when, gw_msg_run(m)[0] ? gw_msg_run(m) : "-", name ? name : "-",
				   group ? group : "-", metric ? metric : "-", starts ? starts : "-",
				   ends ? ends : "-", summary ? summary : "");
		else
			out_printf("%s  %s  FIRING  %s  group %s  metric %s  since %s  %s\n", when,
				   gw_msg_run(m)[0] ? gw_msg_run(m) : "-", name ? name : "-",
				   group ? group : "-", metric ? metric : "-", starts ? starts : "-",
				   summary ? summary : "");
		printed++;
	}
	return printed;
}

/* " name=value" for every scalar under path (depth < 4), the names
 * relative to the first `skip` bytes of the path. */
static void print_scalars(const struct gw_msg *m, const char *path, size_t skip, int depth)
{
	int n = gw_msg_get_count(m, path);

	for (int i = 0; n > 0 && i < n && depth < 4; i++) {
		const char *key = gw_msg_get_key(m, path, (size_t)i);
		char p[512];
		double v;
		const char *s;

		if (!key || strchr(key, '.'))
			continue;
		if (!*path && (!strcmp(key, "type") || !strcmp(key, "seq") || !strcmp(key, "epoch") ||
			       !strcmp(key, "run") || !strcmp(key, "time")))
			continue;
		snprintf(p, sizeof(p), "%s%s%s", path, *path ? "." : "", key);
		switch (gw_msg_get_kind(m, p)) {
		case GW_JSON_STRING:
			s = gw_msg_get_string(m, p);
			out_printf(" %s=%s", p + skip, s);
			break;
		case GW_JSON_NUMBER:
		case GW_JSON_BOOL:
			gw_msg_get_number(m, p, &v);
			out_printf(" %s=%.10g", p + skip, v);
			break;
		case GW_JSON_OBJECT:
			print_scalars(m, p, skip, depth + 1);
			break;
		default:
			break;
		}
	}
}

static void print_event(const struct gw_msg *m, bool json)
{
	const char *type = gw_msg_type(m);
	char when[64];

	if (json) {
		out_printf("%s\n", gw_msg_json(m));
		return;
	}
	fmt_time(gw_msg_time(m), when, sizeof(when));
	if (!strcmp(type, "metrics")) {
		print_metrics(m, when);
	} else if (!strcmp(type, "alert")) {
		if (!print_alerts_at(m, "", when))
			out_printf("%s  %s  alert (no alerts in the message)\n", when,
				   gw_msg_run(m));
	} else if (!strcmp(type, "resync")) {
		const char *reason = gw_msg_get_string(m, "reason");

		if (reason && !strcmp(reason, "restart"))
			out_printf("%s  %s  the daemon restarted (epoch %s); caught up from its "
				   "snapshot\n",
				   when, gw_msg_run(m), gw_msg_epoch(m));
		else
			out_printf("%s  %s  messages were lost; caught up from a snapshot\n", when,
				   gw_msg_run(m));
	} else if (!strcmp(type, "error")) {
		const char *e = gw_msg_get_string(m, "error");

		out_printf("%s  %s  error: %s", when, gw_msg_run(m), e ? e : "(no text)");
		print_scalars(m, "", 0, 0);
		out_printf("\n");
	} else if (!strcmp(type, "status") && gw_msg_get_kind(m, "status") == GW_JSON_OBJECT) {
		out_printf("%s  %s  status:", when, gw_msg_run(m));
		print_scalars(m, "status", strlen("status."), 0);
		out_printf("\n");
	} else {
		out_printf("%s  %s  %s:", when, gw_msg_run(m), type);
		print_scalars(m, "", 0, 0);
		out_printf("\n");
	}
}

/* ---- tail and alerts ----------------------------------------------------------------- */

#define ALERTS_RESOLVED_SHOWN 20 /* recent resolutions `alerts` shows per daemon */

/* The alerts a reply holds in the array at `base`, if any: a line each,
 * `when` marking where they come from, or with json each alert object. */
static void print_held_alerts(const struct gw_msg *s, const char *base, bool json,
			      const char *when)
{
	int n = gw_msg_get_count(s, base);

	for (int k = 0; k < n; k++) {
		char p[48], *j;

		snprintf(p, sizeof(p), "%s.%d", base, k);
		if (!json) {
			print_alerts_at(s, p, when);
		} else if (gw_msg_get_json(s, p, &j) == 0) {
			out_printf("%s\n", j);
			free(j);
		}
	}
}

static bool all_live(struct gw_client *c)
{
	struct gw_daemon_info in;

	for (size_t i = 0; i < gw_client_daemon_count(c); i++)
		if (gw_client_daemon_info(c, i, &in) < 0 || in.state == GW_DAEMON_SYNCING)
			return false;
	return true;
}

/*
 * Hand messages to show() until: count reached (count >= 0), the catch-up
 * is done and !follow, a signal, or a write to stdout failed (its reader
 * has gone: the end, quietly; main reports any other failure).  A daemon
 * that has not answered its snapshot request within the timeout is a
 * failure at start-up; later the client waits through restarts.  Returns
 * the exit status.
 */
static int follow_loop(struct gw_client *c, const struct opts *o, bool follow, long long count,
		       int (*show)(const struct gw_msg *, const struct opts *))
{
	struct timespec t0;
	long long shown = 0;
	bool started = false;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!cli_interrupted && (count < 0 || shown < count)) {
		struct gw_msg *m;
		struct timespec t1;
		int r = gw_client_next(c, 200, &m);
		long long elapsed;

		if (r == 0) {
			shown += show(m, o);
			gw_msg_free(m);
			if (out_flush() < 0)
				break;
			continue;
		}
		if (r == -EINTR)
			break;
		if (r == -EPROTO) {
			fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
			return 1;
		}
		if (r != -ETIMEDOUT) {
			fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
			return 1;
		}
		if (!started && all_live(c))
			started = true;
		if (started && !follow)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		elapsed = (t1.tv_sec - t0.tv_sec) * 1000LL + (t1.tv_nsec - t0.tv_nsec) / 1000000;
		if (!started && elapsed >= o->timeout_ms) {
			/* The timeout's error names the daemons not answering. */
			fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
			return 1;
		}
	}
	return 0;
}

static int show_event(const struct gw_msg *m, const struct opts *o)
{
	print_event(m, o->json);
	return 1;
}

/* The alerts each daemon holds: the "alerts" query's arrays ("firing",
 * and "resolved" when resolved > 0), each alert on a line marked `mark`
 * (with --json the reply once, as received).  Returns 0 or 1 (a daemon
 * did not answer; the message is printed). */
static int print_daemon_alerts(struct gw_client *c, const struct opts *o, int resolved,
			       const char *firing_mark, const char *resolved_mark)
{
	int status = 0;

	for (size_t i = 0; i < gw_client_daemon_count(c); i++) {
		struct gw_msg *s;

		if (gw_client_alerts(c, i, resolved, &s) < 0) {
			fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
			status = 1;
			continue;
		}
		if (o->json) {
			/* The reply once, as received, when it has anything to show. */
			if (gw_msg_get_count(s, "firing") > 0 ||
			    (resolved > 0 && gw_msg_get_count(s, "resolved") > 0))
				out_printf("%s\n", gw_msg_json(s));
		} else {
			if (resolved > 0)
				print_held_alerts(s, "resolved", false, resolved_mark);
			print_held_alerts(s, "firing", false, firing_mark);
		}
		gw_msg_free(s);
		if (out_flush() < 0)
			break;
	}
	return status;
}

/* Does tail show alert messages (the default topics, or a topic that
 * alert messages match)? */
static bool tail_shows_alerts(const struct opts *o)
{
	if (!o->topics.n)
		return true;
	for (int i = 0; i < o->topics.n; i++)
		if (!strncmp("alert.", o->topics.v[i], strlen(o->topics.v[i])) ||
		    !strncmp(o->topics.v[i], "alert.", 6))
			return true;
	return false;
}

int cmd_tail(struct gw_client *c, const struct opts *o)
{
	/* By default the events a person watches for; --all adds the
	 * daemon's status and progress messages. */
	static const char *const events[] = { "metrics.", "alert.", "error.", "resync.",
					       "progress.", "status.", NULL };
	const char *const *topics = o->topics.n ? o->topics.v : events;

	for (int i = 0; o->topics.n ? i < o->topics.n : topics[i] != NULL; i++) {
		if (!o->topics.n && !o->all && i >= 4)
			break;
		if (gw_client_subscribe(c, topics[i]) < 0) {
			fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
			return 1;
		}
	}
	/* A late tail would otherwise never hear of what fired before it
	 * started: the firing alerts first, marked as such. */
	if (tail_shows_alerts(o) && print_daemon_alerts(c, o, 0, "(already firing)", NULL) != 0)
		return 1;
	return follow_loop(c, o, true, o->count, show_event);
}

static int show_alert(const struct gw_msg *m, const struct opts *o)
{
	char when[64];

	if (strcmp(gw_msg_type(m), "alert"))
		return 0;
	if (o->json) {
		out_printf("%s\n", gw_msg_json(m));
		return 1;
	}
	fmt_time(gw_msg_time(m), when, sizeof(when));
	return print_alerts_at(m, "", when) > 0;
}

int cmd_alerts(struct gw_client *c, const struct opts *o)
{
	/* What the daemons hold: the recently resolved (oldest first), then
	 * the firing, each alert a line (--json: each alert object a line). */
	int status = 0;

	for (size_t i = 0; i < gw_client_daemon_count(c); i++) {
		struct gw_msg *s;

		if (gw_client_alerts(c, i, ALERTS_RESOLVED_SHOWN, &s) < 0) {
			fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
			status = 1;
			continue;
		}
		print_held_alerts(s, "resolved", o->json, "(resolved at the daemon)");
		print_held_alerts(s, "firing", o->json, "(firing at the daemon)");
		gw_msg_free(s);
		if (out_flush() < 0)
			return status;
	}
	if (status)
		return status;
	/* Then the alert messages of the live stream. */
	if (gw_client_subscribe(c, "alert.") < 0) {
		fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
		return 1;
	}
	return follow_loop(c, o, o->follow, -1, show_alert);
}

