/*
 * main.c — the grokwatch tool: follow grokwatchd daemons from a terminal,
 * over the public API of libgrokwatch only (grokwatch.h).
 *
 * In order: checked output (every write to stdout goes through out_*, which
 * keeps the first failure: a reader that has gone, EPIPE, ends the command
 * quietly at that write; any other failure is an error naming stdout);
 * connecting; the line formats of tail and alerts; the commands tail,
 * status, history, plot and alerts; the command table, from which --help,
 * each COMMAND --help and getopt_long's tables are made, and the parsing
 * of the line against it; main.  A new command is a handler and one row of
 * the table.  Exit status: 0 done, 1 a failure (daemon down, timeout,
 * refused request, no data, stdout unwritable), 2 usage.  Errors go to
 * stderr as one line naming the endpoint and what failed.
 */
#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "grokwatch.h"
#include "plot.h"

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:5557"
#define DEFAULT_TIMEOUT_MS 5000
#define LIST_MAX 64 /* the most of any repeatable option */
#define ENDPOINTS_MAX 64
#define TOPICS_MAX 32
#define GROUPS_MAX PLOT_SERIES_MAX
#define STEP_LAST 999999999999999LL /* the daemon's largest step */
#define STR(x) #x
#define XSTR(x) STR(x)

struct strlist {
	const char *v[LIST_MAX];
	int n;
};

struct cmd;

/* The parsed line: every option of every command, set through the table. */
struct opts {
	struct strlist endpoints;
	long long timeout_ms;
	const char *server_key_file;
	const struct cmd *cmd;
	bool json, csv, ascii, follow, all;
	struct strlist topics, groups;
	long long count;
	const char *metric;
	long long from, to, width, height;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* ---- output ---------------------------------------------------------------------- */

/* The first failure writing to stdout, 0 or a negative errno; once set,
 * nothing more is written.  Global as stdout is: it belongs to the
 * stream, not to a command. */
static int out_error;

static void out_failed(void)
{
	if (!out_error)
		out_error = errno ? -errno : -EIO;
}

__attribute__((format(printf, 1, 2)))
static void out_printf(const char *fmt, ...)
{
	va_list ap;

	if (out_error)
		return;
	va_start(ap, fmt);
	errno = 0;
	if (vprintf(fmt, ap) < 0)
		out_failed();
	va_end(ap);
}

static void out_bytes(const void *buf, size_t len)
{
	if (out_error || !len)
		return;
	errno = 0;
	if (fwrite(buf, 1, len, stdout) != len)
		out_failed();
}

static void out_str(const char *s)
{
	out_bytes(s, strlen(s));
}

static void out_char(char c)
{
	out_bytes(&c, 1);
}

/* Flush stdout.  Returns 0, or the first failure: -EPIPE when its reader
 * has gone (the caller stops, quietly), another negative errno else. */
static int out_flush(void)
{
	if (out_error)
		return out_error;
	errno = 0;
	if (fflush(stdout) != 0)
		out_failed();
	return out_error;
}

/* The exit status of a command that returned `status`, once stdout is
 * flushed: unchanged if all was written or the reader went away (EPIPE);
 * 1, with the message, for another failure. */
static int out_finish(int status)
{
	int r = out_flush();

	if (r == 0 || r == -EPIPE)
		return status;
	fprintf(stderr, "grokwatch: cannot write to stdout: %s\n", strerror(-r));
	return 1;
}

static int parse_ll(const char *s, long long min, long long max, long long *ret)
{
	char *end;
	long long v;

	if (!s || !*s || *s == ' ' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end || errno || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* ---- connecting ------------------------------------------------------------------ */

static int read_key(const char *path, char key[41])
{
	FILE *f = fopen(path, "r");
	char buf[128];
	size_t n;

	if (!f) {
		fprintf(stderr, "grokwatch: \"%s\": %s\n", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	while (n > 0 && (unsigned char)buf[n - 1] <= 32)
		n--;
	if (n != 40) {
		fprintf(stderr, "grokwatch: \"%s\": not a Z85 CURVE key (40 characters)\n", path);
		return -1;
	}
	memcpy(key, buf, 40);
	key[40] = 0;
	return 0;
}

/* The client, connected; NULL with the message printed and *ret_status
 * set (2 for an endpoint that is not one, 1 otherwise). */
static struct gw_client *open_client(const struct opts *o, int *ret_status)
{
	struct gw_client *c;
	char key[41];
	int r;

	*ret_status = 1;

	if ((r = gw_client_new(&c)) < 0) {
		fprintf(stderr, "grokwatch: cannot create a client: %s\n", strerror(-r));
		return NULL;
	}
	gw_client_set_timeout(c, (int)o->timeout_ms);
	if (o->server_key_file &&
	    (read_key(o->server_key_file, key) < 0 || gw_client_set_server_key(c, key) < 0)) {
		if (gw_client_error(c)[0])
			fprintf(stderr, "grokwatch: \"%s\": %s\n", o->server_key_file,
				gw_client_error(c));
		gw_client_free(c);
		return NULL;
	}
	for (int i = 0; i < o->endpoints.n; i++)
		if ((r = gw_client_connect(c, o->endpoints.v[i])) < 0) {
			fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
			if (r == -EINVAL || r == -ENAMETOOLONG)
				*ret_status = 2;
			gw_client_free(c);
			return NULL;
		}
	return c;
}

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
		const char *status, *name, *group, *metric, *summary, *starts;
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
#undef FIELD
		out_printf("%s  %s  %s  %s  group %s  metric %s  since %s  %s\n", when,
			   gw_msg_run(m)[0] ? gw_msg_run(m) : "-",
			   status && !strcmp(status, "resolved") ? "RESOLVED" : "FIRING",
			   name ? name : "-", group ? group : "-", metric ? metric : "-",
			   starts ? starts : "-", summary ? summary : "");
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
	while (!interrupted && (count < 0 || shown < count)) {
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

static int cmd_tail(struct gw_client *c, const struct opts *o)
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

/* The alerts a snapshot holds in the array at `base`, if any. */
static void print_held_alerts(const struct gw_msg *s, const char *base, bool json)
{
	int n = gw_msg_get_count(s, base);

	for (int k = 0; k < n; k++) {
		char p[48], *j;

		snprintf(p, sizeof(p), "%s.%d", base, k);
		if (!json) {
			print_alerts_at(s, p, "(firing at the daemon)");
		} else if (gw_msg_get_json(s, p, &j) == 0) {
			out_printf("%s\n", j);
			free(j);
		}
	}
}

static int cmd_alerts(struct gw_client *c, const struct opts *o)
{
	int status = 0;

	/* What the daemons hold as firing: in the status object (grokwatchd
	 * run today) or a top-level "alerts" array. */
	for (size_t i = 0; i < gw_client_daemon_count(c); i++) {
		struct gw_msg *s;

		if (gw_client_snapshot(c, i, STEP_LAST, GW_STEP_NONE, &s) < 0) {
			fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
			status = 1;
			continue;
		}
		print_held_alerts(s, "status.alerts", o->json);
		print_held_alerts(s, "alerts", o->json);
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

/* ---- status ------------------------------------------------------------------------- */

static void print_status_tree(const struct gw_msg *m, const char *path, int indent)
{
	int n = gw_msg_get_count(m, path);

	for (int i = 0; i < n; i++) {
		char p[512], *j;
		const char *key = gw_msg_get_key(m, path, (size_t)i);
		int kind;

		if (!key)
			continue;
		snprintf(p, sizeof(p), "%s.%s", path, key);
		kind = strchr(key, '.') ? -ENOENT : gw_msg_get_kind(m, p);
		if (kind == GW_JSON_ARRAY && !strcmp(key, "alerts")) {
			/* Firing alerts: one line each, not their JSON. */
			int na = gw_msg_get_count(m, p);

			out_printf("%*salerts: %d firing%s\n", indent, "", na, na ? ":" : "");
			for (int k = 0; k < na; k++) {
				char q[600];
				const char *name, *group, *metric;

				snprintf(q, sizeof(q), "%s.%d.labels.alertname", p, k);
				name = gw_msg_get_string(m, q);
				snprintf(q, sizeof(q), "%s.%d.labels.group", p, k);
				group = gw_msg_get_string(m, q);
				snprintf(q, sizeof(q), "%s.%d.labels.metric", p, k);
				metric = gw_msg_get_string(m, q);
				out_printf("%*s%s  group %s  metric %s\n", indent + 2, "",
					   name ? name : "-", group ? group : "-",
					   metric ? metric : "-");
			}
		} else if (kind == GW_JSON_OBJECT && indent < 8) {
			out_printf("%*s%s:\n", indent, "", key);
			print_status_tree(m, p, indent + 2);
		} else if (kind == GW_JSON_STRING) {
			out_printf("%*s%s: %s\n", indent, "", key, gw_msg_get_string(m, p));
		} else if (kind > 0 && gw_msg_get_json(m, p, &j) == 0) {
			out_printf("%*s%s: %s\n", indent, "", key, j);
			free(j);
		}
	}
}

static int cmd_status(struct gw_client *c, const struct opts *o)
{
	int status = 0;

	for (size_t i = 0; i < gw_client_daemon_count(c); i++) {
		struct gw_daemon_info in;
		struct gw_msg *s;
		double seq = 0;

		gw_client_daemon_info(c, i, &in);
		if (gw_client_snapshot(c, i, STEP_LAST, GW_STEP_NONE, &s) < 0) {
			fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
			status = 1;
			continue;
		}
		if (o->json) {
			out_printf("%s\n", gw_msg_json(s));
		} else {
			gw_msg_get_number(s, "seq", &seq);
			out_printf("%s\n  run: %s\n  epoch: %s\n  messages sent: %.0f\n",
				   in.pub_endpoint, gw_msg_run(s), gw_msg_epoch(s), seq);
			if (gw_msg_get_count(s, "status") > 0) {
				out_printf("  status:\n");
				print_status_tree(s, "status", 4);
			} else {
				out_printf("  status: (none reported)\n");
			}
		}
		gw_msg_free(s);
		if (out_flush() < 0)
			break;
	}
	return status;
}

/* ---- history and plot ------------------------------------------------------------------- */

static void csv_field(const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		out_str(s);
		return;
	}
	out_char('"');
	for (; *s; s++) {
		if (*s == '"')
			out_char('"');
		out_char(*s);
	}
	out_char('"');
}

static int cmd_history(struct gw_client *c, const struct opts *o)
{
	const char *group = o->groups.n ? o->groups.v[0] : "all";
	int status = 0;

	if (o->csv)
		out_printf("run,group,metric,step,value\n");
	for (size_t i = 0; i < gw_client_daemon_count(c); i++) {
		struct gw_history *h;

		if (gw_client_history(c, i, o->metric, group, o->from, o->to, &h) < 0) {
			fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
			status = 1;
			continue;
		}
		if (o->json) {
			out_printf("%s\n", gw_history_json(h));
		} else if (!o->csv) {
			out_printf("# run %s, group %s, %s: %zu steps\n", gw_history_run(h), group,
				   o->metric, gw_history_count(h));
		}
		for (size_t k = 0; !o->json && !out_error && k < gw_history_count(h); k++) {
			int64_t step;
			double v;
			int r = gw_history_point(h, k, &step, &v);

			if (o->csv) {
				csv_field(gw_history_run(h));
				out_char(',');
				csv_field(group);
				out_char(',');
				csv_field(o->metric);
				out_printf(",%lld,", (long long)step);
				if (r == 0)
					out_printf("%.17g", v);
				out_char('\n');
			} else if (r == 0) {
				out_printf("%12lld  %.6g\n", (long long)step, v);
			} else {
				out_printf("%12lld  -\n", (long long)step);
			}
		}
		gw_history_free(h);
		if (out_flush() < 0)
			break;
	}
	return status;
}

static int terminal_width(void)
{
	struct winsize ws;
	const char *cols = getenv("COLUMNS");
	long long v;

	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	if (cols && parse_ll(cols, 1, 100000, &v) == 0)
		return (int)v;
	return 80;
}

static bool utf8_locale(void)
{
	const char *cs = nl_langinfo(CODESET);

	return cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8"));
}

static int cmd_plot(struct gw_client *c, const struct opts *o)
{
	static const char *const all_group[1] = { "all" };
	const char *const *groups = o->groups.n ? o->groups.v : all_group;
	size_t ngroups = o->groups.n ? (size_t)o->groups.n : 1;
	size_t nd = gw_client_daemon_count(c), ns = 0;
	struct plot_series s[PLOT_SERIES_MAX];
	struct gw_history *hs[PLOT_SERIES_MAX];
	int64_t *xs[PLOT_SERIES_MAX] = { 0 };
	double *ys[PLOT_SERIES_MAX] = { 0 };
	char labels[PLOT_SERIES_MAX][300], title[400];
	int width = o->width ? (int)o->width : terminal_width(), status = 0, r;
	char *chart = NULL;
	size_t chart_len = 0;
	FILE *f;

	if (width < PLOT_WIDTH_MIN)
		width = PLOT_WIDTH_MIN;
	if (width > PLOT_WIDTH_MAX)
		width = PLOT_WIDTH_MAX;
	if (nd * ngroups > PLOT_SERIES_MAX) {
		fprintf(stderr, "grokwatch: plot: at most %d series (daemons times groups)\n",
			PLOT_SERIES_MAX);
		return 2;
	}
	for (size_t i = 0; i < nd; i++)
		for (size_t g = 0; g < ngroups; g++) {
			struct gw_history *h;
			size_t n;

			if (gw_client_history(c, i, o->metric, groups[g], o->from, o->to, &h) < 0) {
				fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
				status = 1;
				goto out;
			}
			hs[ns] = h;
			n = gw_history_count(h);
			xs[ns] = malloc((n ? n : 1) * sizeof(int64_t));
			ys[ns] = malloc((n ? n : 1) * sizeof(double));
			if (!xs[ns] || !ys[ns]) {
				ns++;
				fprintf(stderr, "grokwatch: out of memory\n");
				status = 1;
				goto out;
			}
			for (size_t k = 0; k < n; k++)
				if (gw_history_point(h, k, &xs[ns][k], &ys[ns][k]) < 0)
					ys[ns][k] = NAN;
			if (nd > 1)
				snprintf(labels[ns], sizeof(labels[ns]), "%s/%s", gw_history_run(h),
					 groups[g]);
			else
				snprintf(labels[ns], sizeof(labels[ns]), "%s", groups[g]);
			s[ns] = (struct plot_series){ labels[ns], n, xs[ns], ys[ns] };
			ns++;
		}
	if (nd == 1)
		snprintf(title, sizeof(title), "%s  run %s", o->metric, gw_history_run(hs[0]));
	else
		snprintf(title, sizeof(title), "%s", o->metric);
	/* Drawn in memory, then written as one checked write. */
	if (!(f = open_memstream(&chart, &chart_len))) {
		fprintf(stderr, "grokwatch: plot: %s\n", strerror(errno));
		status = 1;
		goto out;
	}
	r = plot_render(f, s, ns, width, o->height ? (int)o->height : 15,
			o->ascii || !utf8_locale(), title);
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r == 0)
		out_bytes(chart, chart_len);
	if (r == -ENODATA) {
		fprintf(stderr, "grokwatch: plot: no value of %s in the chosen groups and steps\n",
			o->metric);
		status = 1;
	} else if (r < 0) {
		fprintf(stderr, "grokwatch: plot: %s\n", strerror(-r));
		status = 1;
	}
out:
	free(chart);
	for (size_t k = 0; k < ns; k++) {
		gw_history_free(hs[k]);
		free(xs[k]);
		free(ys[k]);
	}
	return status;
}

/* ---- the command table ----------------------------------------------------------- */

enum opt_kind {
	OPT_FLAG,   /* sets a bool */
	OPT_INT,    /* a long long, min to max */
	OPT_STRING, /* a const char *, its length min to max bytes (max 0: any) */
	OPT_LIST,   /* adds to a struct strlist, at most nmax times */
	OPT_HELP,   /* prints the help of the command (or of grokwatch) */
};

/* One option, as getopt_long, the parser and --help see it. */
struct opt_def {
	const char *name;  /* the long name, without "--" */
	char letter;       /* the short one, or 0 */
	enum opt_kind kind;
	size_t off;        /* the field of struct opts it sets */
	long long min, max;
	int nmax;          /* OPT_LIST: how many times it may be given */
	bool required;     /* a usage error without it */
	const char *arg;   /* the value's name in --help; NULL takes no value */
	const char *unit;  /* OPT_INT: what the number counts, for its error */
	const char *help;  /* a line (wrapped to the terminal's 80 columns) */
};

/* A command, as git's cmd_struct: its name, handler, a line for
 * `grokwatch --help`, its options (ending with a NULL name), and the
 * usage checks across them. */
struct cmd {
	const char *name;
	int (*run)(struct gw_client *c, const struct opts *o);
	const char *summary;
	const struct opt_def *opts;
	int (*check)(const struct opts *o); /* 0, or 2 with the message printed */
};

#define OFF(field) offsetof(struct opts, field)
#define O_FLAG(n, field, h) { .name = n, .kind = OPT_FLAG, .off = OFF(field), .help = h }
#define O_JSON(h) O_FLAG("json", json, h)
#define O_METRIC                                                                              \
	{ .name = "metric", .kind = OPT_STRING, .off = OFF(metric), .min = 1, .max = 128,       \
	  .required = true, .arg = "M",                                                        \
	  .help = "the metric, a dotted path in a group's result: pathway_distance, "          \
		  "pathway_consistency, loss, memorized.pathway_distance, ... (required)" }
#define O_GROUP(nm, h)                                                                        \
	{ .name = "group", .kind = OPT_LIST, .off = OFF(groups), .min = 1, .max = 128,          \
	  .nmax = nm, .arg = "G", .help = h }
#define O_STEP(n, field, h)                                                                   \
	{ .name = n, .kind = OPT_INT, .off = OFF(field), .min = 0, .max = STEP_LAST,            \
	  .arg = "STEP", .unit = "a step", .help = h }
#define O_END { .name = NULL }

static const struct opt_def global_opts[] = {
	{ .name = "endpoint", .letter = 'e', .kind = OPT_LIST, .off = OFF(endpoints),
	  .nmax = ENDPOINTS_MAX, .arg = "ENDPOINT",
	  .help = "a daemon: tcp://HOST:PORT (queries on PORT+1) or PUB,QUERY; repeat for "
		  "several (default " DEFAULT_ENDPOINT ")" },
	{ .name = "timeout", .kind = OPT_INT, .off = OFF(timeout_ms), .min = 1, .max = 86400000,
	  .arg = "MS", .unit = "milliseconds",
	  .help = "how long to wait for a daemon (default " XSTR(DEFAULT_TIMEOUT_MS) ")" },
	{ .name = "server-key", .kind = OPT_STRING, .off = OFF(server_key_file), .arg = "FILE",
	  .help = "the daemons' CURVE public key (Z85)" },
	{ .name = "help", .letter = 'h', .kind = OPT_HELP,
	  .help = "this text; grokwatch COMMAND --help for a command's" },
	O_END,
};

/* --help after a command: it is global_opts' --help, described for it. */
static const struct opt_def cmd_help_opts[] = {
	{ .name = "help", .letter = 'h', .kind = OPT_HELP, .help = "this text" },
	O_END,
};

static const struct opt_def tail_opts[] = {
	O_FLAG("all", all, "status and progress messages too"),
	O_JSON("each message's JSON body, one a line"),
	{ .name = "topic", .kind = OPT_LIST, .off = OFF(topics), .nmax = TOPICS_MAX,
	  .arg = "PREFIX",
	  .help = "only messages whose topic (TYPE.RUN) starts with PREFIX, such as metrics. "
		  "or alert.myrun; repeat for several" },
	{ .name = "count", .kind = OPT_INT, .off = OFF(count), .min = 1, .max = 1000000000,
	  .arg = "N", .unit = "a number of events", .help = "stop after N events" },
	O_END,
};

static const struct opt_def status_opts[] = {
	O_JSON("each daemon's snapshot as JSON, one a line"),
	O_END,
};

static const struct opt_def history_opts[] = {
	O_METRIC,
	O_GROUP(1, "the probe group (default all)"),
	O_STEP("from", from, "the first step, inclusive"),
	O_STEP("to", to, "the last step, inclusive"),
	O_FLAG("csv", csv, "run,group,metric,step,value lines under a header"),
	O_JSON("the daemon's reply as JSON"),
	O_END,
};

static const struct opt_def plot_opts[] = {
	O_METRIC,
	O_GROUP(GROUPS_MAX, "a probe group, one series each; repeat for several (default all)"),
	O_STEP("from", from, "the first step, inclusive"),
	O_STEP("to", to, "the last step, inclusive"),
	{ .name = "width", .kind = OPT_INT, .off = OFF(width), .min = PLOT_WIDTH_MIN,
	  .max = PLOT_WIDTH_MAX, .arg = "N", .unit = "columns",
	  .help = "the chart's width in columns (default: the terminal's)" },
	{ .name = "height", .kind = OPT_INT, .off = OFF(height), .min = 3, .max = 200,
	  .arg = "N", .unit = "rows", .help = "the chart's height in rows (default 15)" },
	O_FLAG("ascii", ascii, "ASCII only (the default outside a UTF-8 locale)"),
	O_END,
};

static const struct opt_def alerts_opts[] = {
	O_JSON("each alert as JSON, one a line"),
	O_FLAG("follow", follow, "keep following the stream after the catch-up"),
	O_END,
};

static int check_steps(const struct opts *o);
static int check_history(const struct opts *o);

static const struct cmd commands[] = {
	{ "tail", cmd_tail, "one line per result, alert or error, catching up first", tail_opts,
	  NULL },
	{ "status", cmd_status, "each daemon's state", status_opts, NULL },
	{ "history", cmd_history, "one metric of one group, one step a line", history_opts,
	  check_history },
	{ "plot", cmd_plot, "one metric as a chart in the terminal, a line per group", plot_opts,
	  check_steps },
	{ "alerts", cmd_alerts, "firing and recent alerts, then those that arrive", alerts_opts,
	  NULL },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* ---- help ------------------------------------------------------------------------ */

#define HELP_COLUMNS 80
#define HELP_NBSP '\037' /* a space help_wrap does not break at */

/* Print text's words after column col (what is already on the line),
 * the first after a space if space, breaking lines before HELP_COLUMNS and
 * starting each new one at column indent; ends the line. */
static void help_wrap(const char *text, int col, int indent, bool space)
{
	for (const char *p = text; *p;) {
		int len = (int)strcspn(p, " ");

		if (col > indent && col + space + len > HELP_COLUMNS) {
			out_printf("\n%*s", indent, "");
			col = indent;
		} else if (space) {
			out_char(' ');
			col++;
		}
		for (int i = 0; i < len; i++)
			out_char(p[i] == HELP_NBSP ? ' ' : p[i]);
		col += len;
		p += len;
		space = *p == ' ';
		p += strspn(p, " ");
	}
	out_char('\n');
}

/* "[--name ARG]..." for a synopsis (the short name where there is one). */
static void opt_synopsis(const struct opt_def *d, char *buf, size_t size)
{
	char name[64];

	if (d->letter)
		snprintf(name, sizeof(name), "-%c", d->letter);
	else
		snprintf(name, sizeof(name), "--%s", d->name);
	snprintf(buf, size, "%s%s%s%s%s%s", d->required ? "" : "[", name, d->arg ? "\037" : "",
		 d->arg ? d->arg : "", d->required ? "" : "]",
		 d->kind == OPT_LIST && d->nmax > 1 ? "..." : "");
}

/* The synopses of a table's options (but --help), one string. */
static void synopsis(const struct opt_def *opts, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = 0;
	for (const struct opt_def *d = opts; d->name && n + 1 < size; d++) {
		if (d->kind == OPT_HELP)
			continue;
		if (n)
			buf[n++] = ' ';
		opt_synopsis(d, buf + n, size - n);
		n += strlen(buf + n);
	}
}

/* "  -e, --endpoint ENDPOINT  help...", the help from column col. */
static int opt_label(const struct opt_def *d, char *buf, size_t size)
{
	char letter[8] = "";

	if (d->letter)
		snprintf(letter, sizeof(letter), "-%c, ", d->letter);
	return snprintf(buf, size, "  %s--%s%s%s", letter, d->name, d->arg ? " " : "",
			d->arg ? d->arg : "");
}

/* The options of tables a and b (b may be NULL), their help aligned. */
static void help_options(const struct opt_def *a, const struct opt_def *b)
{
	char label[128];
	int col = 0;

	for (const struct opt_def *tab = a; tab; tab = tab == a ? b : NULL)
		for (const struct opt_def *d = tab; d->name; d++) {
			int n = opt_label(d, label, sizeof(label));

			if (n + 2 > col)
				col = n + 2;
		}
	for (const struct opt_def *tab = a; tab; tab = tab == a ? b : NULL)
		for (const struct opt_def *d = tab; d->name; d++) {
			int n = opt_label(d, label, sizeof(label));

			out_printf("%s%*s", label, col - n, "");
			help_wrap(d->help, col, col, false);
		}
}

static void help_print(const struct cmd *cmd)
{
	char syn[1024];
	int col;

	if (cmd) {
		synopsis(cmd->opts, syn, sizeof(syn));
		col = (int)strlen("usage: grokwatch [OPTIONS] ") + (int)strlen(cmd->name);
		out_printf("usage: grokwatch [OPTIONS] %s", cmd->name);
		help_wrap(syn, col, (int)strlen("usage: grokwatch "), true);
		out_printf("\n");
		help_wrap(cmd->summary, 0, 0, false);
		out_printf("\nOptions:\n");
		help_options(cmd->opts, cmd_help_opts);
		out_printf("\n");
		synopsis(global_opts, syn, sizeof(syn));
		out_printf("OPTIONS are grokwatch's own, anywhere on the line (grokwatch --help):");
		help_wrap(syn, HELP_COLUMNS, 2, true);
		return;
	}
	synopsis(global_opts, syn, sizeof(syn));
	out_printf("usage: grokwatch");
	help_wrap(strcat(syn, " COMMAND\037[OPTIONS]"), (int)strlen("usage: grokwatch"),
		  (int)strlen("usage: grokwatch "), true);
	out_printf("\nFollows grokwatchd daemons: the routing-pathway metrics of MoE pretraining "
		   "runs.\n\nCommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		out_printf("  %-9s", commands[i].name);
		help_wrap(commands[i].summary, 11, 11, false);
		synopsis(commands[i].opts, syn, sizeof(syn));
		out_printf("%*s", 11, "");
		help_wrap(syn, 11, 11, false);
	}
	out_printf("\nOptions:\n");
	help_options(global_opts, NULL);
	out_printf("\n"
		   "Metrics are paths inside a group, e.g. pathway_distance, pathway_consistency,\n"
		   "loss, memorized.pathway_distance; groups are the probe set's, plus \"all\".\n"
		   "A value follows its option or an equals sign: --timeout 2000, --timeout=2000.\n"
		   "Exit status: 0 ok, 1 failure (daemon down, timeout, refused), 2 usage.\n");
}

/* ---- parsing --------------------------------------------------------------------- */

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("grokwatch: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(see grokwatch --help)\n", stderr);
	return 2;
}

static int check_steps(const struct opts *o)
{
	if (o->from >= 0 && o->to >= 0 && o->from > o->to)
		return usage_error("--from %lld is after --to %lld", o->from, o->to);
	return 0;
}

static int check_history(const struct opts *o)
{
	if (o->json && o->csv)
		return usage_error("history: --csv or --json, not both");
	return check_steps(o);
}

/* Set what option d says from val (NULL for a flag).  Returns 0, or 2
 * with the message printed. */
static int opt_set(const struct opt_def *d, const char *val, struct opts *o)
{
	char *field = (char *)o + d->off;
	const char *cmd = o->cmd ? o->cmd->name : "grokwatch";
	long long v;
	size_t len = val ? strlen(val) : 0;

	if ((d->kind == OPT_STRING || d->kind == OPT_LIST) && d->max &&
	    (len < (size_t)d->min || len > (size_t)d->max))
		return usage_error("--%s: expected %lld to %lld bytes", d->name, d->min, d->max);
	switch (d->kind) {
	case OPT_FLAG:
		*(bool *)field = true;
		break;
	case OPT_INT:
		if (parse_ll(val, d->min, d->max, &v) < 0)
			return usage_error("--%s '%s': expected %s, %lld to %lld", d->name, val,
					   d->unit, d->min, d->max);
		*(long long *)field = v;
		break;
	case OPT_STRING:
		*(const char **)field = val;
		break;
	case OPT_LIST: {
		struct strlist *l = (struct strlist *)(void *)field;

		if (l->n == d->nmax)
			return d->nmax == 1 ? usage_error("%s: one --%s", cmd, d->name)
					    : usage_error("more than %d --%s", d->nmax, d->name);
		l->v[l->n++] = val;
		break;
	}
	case OPT_HELP:
		break;
	}
	return 0;
}

#define LONGOPTS_MAX 32

/* getopt_long's tables for the options of a and b (b may be NULL). */
struct getopt_tables {
	const struct opt_def *defs[LONGOPTS_MAX];
	struct option lo[LONGOPTS_MAX + 1];
	char shorts[2 * LONGOPTS_MAX + 3];
	int n;
};

static void tables_build(struct getopt_tables *t, const char *prefix, const struct opt_def *a,
			 const struct opt_def *b)
{
	size_t ns;

	memset(t, 0, sizeof(*t));
	snprintf(t->shorts, sizeof(t->shorts), "%s", prefix);
	ns = strlen(t->shorts);
	for (const struct opt_def *tab = a; tab; tab = tab == a ? b : NULL)
		for (const struct opt_def *d = tab; d->name; d++) {
			if (t->n == LONGOPTS_MAX) {
				fprintf(stderr, "%s:%d: more than %d options: raise LONGOPTS_MAX\n",
					__FILE__, __LINE__, LONGOPTS_MAX);
				abort();
			}
			t->defs[t->n] = d;
			t->lo[t->n] = (struct option){ d->name,
						       d->arg ? required_argument : no_argument,
						       NULL, d->letter ? d->letter : 256 + t->n };
			t->n++;
			if (d->letter) {
				t->shorts[ns++] = d->letter;
				if (d->arg)
					t->shorts[ns++] = ':';
			}
		}
	t->shorts[ns] = 0;
}

static const struct opt_def *tables_find(const struct getopt_tables *t, int c)
{
	if (c >= 256 && c - 256 < t->n)
		return t->defs[c - 256];
	for (int i = 0; i < t->n; i++)
		if (t->defs[i]->letter && t->defs[i]->letter == c)
			return t->defs[i];
	return NULL;
}

/* The usage error for getopt_long's '?' or ':' on argv[optind - 1]. */
static int getopt_error(const struct getopt_tables *t, int c, char **argv, const char *where)
{
	const char *a = argv[optind - 1];
	const struct opt_def *d = optopt ? tables_find(t, optopt) : NULL;
	char name[128];
	int matches = 0;

	if (c == ':' && d && !strncmp(a, "--", 2))
		return usage_error("option '--%s' needs a value", d->name);
	if (c == ':')
		return usage_error("option '%s' needs a value", a);
	if (optopt && optopt < 256 && !d)
		snprintf(name, sizeof(name), "-%c", optopt);
	else
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(a, "="), a);
	if (d && !strncmp(name, "--", 2))
		return usage_error("option '--%s' takes no value", d->name);
	for (int i = 0; !strncmp(name, "--", 2) && i < t->n; i++)
		matches += !strncmp(t->lo[i].name, name + 2, strlen(name + 2));
	if (matches > 1)
		return usage_error("%s%soption '%s' is ambiguous", where ? where : "",
				   where ? ": " : "", name);
	if (!where)
		return usage_error("option '%s' before the command, or unknown", name);
	return usage_error("%s: unknown option '%s'", where, name);
}

/* Runs getopt_long over argv with tables t, setting o.  Returns 0 at the
 * first argument that is not an option (optind), 1 for --help, 2 for a
 * usage error (printed). */
static int parse_with(const struct getopt_tables *t, int argc, char **argv, struct opts *o,
		      const char *where)
{
	int c, r;

	opterr = 0;
	optind = 0; /* glibc: start afresh, on a new argv */
	while ((c = getopt_long(argc, argv, t->shorts, t->lo, NULL)) != -1) {
		const struct opt_def *d = c == '?' || c == ':' ? NULL : tables_find(t, c);

		if (!d)
			return getopt_error(t, c, argv, where);
		if (d->kind == OPT_HELP)
			return 1;
		if ((r = opt_set(d, d->arg ? optarg : NULL, o)) != 0)
			return r;
	}
	return 0;
}

/* The line into o: grokwatch's options, the command, then its options and
 * grokwatch's again.  Returns 0, 1 for --help (o->cmd says whose), or 2
 * for a usage error, printed. */
static int parse_args(int argc, char **argv, struct opts *o)
{
	struct getopt_tables t;
	char names[128] = "";
	int r, at;

	memset(o, 0, sizeof(*o));
	o->timeout_ms = DEFAULT_TIMEOUT_MS;
	o->from = o->to = GW_STEP_NONE;
	o->count = -1;

	/* Up to the command ('+': stop at the first argument not an option). */
	tables_build(&t, "+:", global_opts, NULL);
	if ((r = parse_with(&t, argc, argv, o, NULL)) != 0)
		return r;
	at = optind;
	if (at == argc) {
		for (size_t i = 0; i < NCOMMANDS; i++)
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
				 commands[i].name,
				 i + 2 < NCOMMANDS ? ", " : i + 2 == NCOMMANDS ? " or " : "");
		return usage_error("no command (%s)", names);
	}
	for (size_t i = 0; i < NCOMMANDS && !o->cmd; i++)
		if (!strcmp(argv[at], commands[i].name))
			o->cmd = &commands[i];
	if (!o->cmd)
		return usage_error("unknown command '%s'", argv[at]);

	/* The rest, the command's name as its argv[0]. */
	tables_build(&t, ":", o->cmd->opts, global_opts);
	if ((r = parse_with(&t, argc - at, argv + at, o, o->cmd->name)) != 0)
		return r;
	if (optind < argc - at)
		return usage_error("unexpected argument '%s'", argv[at + optind]);
	for (const struct opt_def *d = o->cmd->opts; d->name; d++) {
		char *field = (char *)o + d->off;
		bool given = true; /* flags and numbers have defaults */

		if (d->kind == OPT_LIST)
			given = ((struct strlist *)(void *)field)->n > 0;
		else if (d->kind == OPT_STRING)
			given = *(const char **)field != NULL;
		if (d->required && !given)
			return usage_error("%s: --%s is required", o->cmd->name, d->name);
	}
	if (o->cmd->check && (r = o->cmd->check(o)) != 0)
		return r;
	if (o->endpoints.n == 0)
		o->endpoints.v[o->endpoints.n++] = DEFAULT_ENDPOINT;
	return 0;
}

/* ---- main ------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct gw_client *c;
	struct opts o;
	int r;

	setlocale(LC_CTYPE, "");
	/* A reader that has gone shows as EPIPE at the next write. */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	r = parse_args(argc, argv, &o);
	if (r == 1) {
		help_print(o.cmd);
		return out_finish(0);
	}
	if (r)
		return r;
	/* No SA_RESTART: a signal ends the wait in gw_client_next. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (!(c = open_client(&o, &r)))
		return r;
	r = o.cmd->run(c, &o);
	gw_client_free(c);
	return out_finish(r);
}
