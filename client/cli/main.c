/*
 * main.c — the grokwatch tool: follow grokwatchd daemons from a terminal,
 * over the public API of libgrokwatch only (grokwatch.h).
 *
 * In order: options (global ones anywhere on the line, then each
 * command's); the line formats of tail and alerts; the commands tail,
 * status, history, plot and alerts; main.  Exit status: 0 done, 1 a
 * failure (daemon down, timeout, refused request, no data), 2 usage.
 * Errors go to stderr as one line naming the endpoint and what failed.
 */
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
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
#define ENDPOINTS_MAX 64
#define TOPICS_MAX 32
#define GROUPS_MAX PLOT_SERIES_MAX
#define STEP_LAST 999999999999999LL /* the daemon's largest step */

struct opts {
	const char *endpoints[ENDPOINTS_MAX];
	int nendpoints;
	int timeout_ms;
	const char *server_key_file;
	const char *command;
	bool json, csv, ascii, follow, all;
	const char *topics[TOPICS_MAX];
	int ntopics;
	long long count;
	const char *metric;
	const char *groups[GROUPS_MAX];
	int ngroups;
	int64_t from, to;
	int width, height;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: grokwatch [-e ENDPOINT]... [--timeout MS] COMMAND [OPTIONS]\n"
		"\n"
		"Follows grokwatchd daemons: the routing-pathway metrics of MoE pretraining runs.\n"
		"\n"
		"Commands:\n"
		"  tail     one line per result, alert or error, catching up first; --all adds\n"
		"           status and progress [--json] [--topic PREFIX]... [--count N]\n"
		"  status   each daemon's state [--json]\n"
		"  history  --metric M [--group G] [--from STEP] [--to STEP] [--csv|--json]\n"
		"  plot     --metric M [--group G]... [--from STEP] [--to STEP] [--width N]\n"
		"           [--height N] [--ascii]\n"
		"  alerts   firing and recent alerts [--json] [--follow]\n"
		"\n"
		"Options:\n"
		"  -e, --endpoint ENDPOINT  a daemon: tcp://HOST:PORT (queries on PORT+1) or\n"
		"                           PUB,QUERY; repeat for several\n"
		"                           (default %s)\n"
		"  --timeout MS             how long to wait for a daemon (default %d)\n"
		"  --server-key FILE        the daemons' CURVE public key (Z85)\n"
		"  -h, --help               this text\n"
		"\n"
		"Metrics are paths inside a group, e.g. pathway_distance, pathway_consistency,\n"
		"loss, memorized.pathway_distance; groups are the probe set's, plus \"all\".\n"
		"Exit status: 0 ok, 1 failure (daemon down, timeout, refused), 2 usage.\n",
		DEFAULT_ENDPOINT, DEFAULT_TIMEOUT_MS);
}

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

/* Which command takes which option. */
static bool takes(const char *cmd, const char *opt)
{
	static const struct {
		const char *opt, *cmds;
	} table[] = {
		{ "--json", " tail status history alerts " },
		{ "--csv", " history " },
		{ "--topic", " tail " },
		{ "--all", " tail " },
		{ "--count", " tail " },
		{ "--metric", " history plot " },
		{ "--group", " history plot " },
		{ "--from", " history plot " },
		{ "--to", " history plot " },
		{ "--width", " plot " },
		{ "--height", " plot " },
		{ "--ascii", " plot " },
		{ "--follow", " alerts " },
	};
	char word[32];

	snprintf(word, sizeof(word), " %s ", cmd);
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (!strcmp(opt, table[i].opt))
			return strstr(table[i].cmds, word) != NULL;
	return false;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	long long v;

	memset(o, 0, sizeof(*o));
	o->timeout_ms = DEFAULT_TIMEOUT_MS;
	o->from = o->to = GW_STEP_NONE;
	o->count = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			return 1;
		if (a[0] != '-') {
			if (o->command)
				return usage_error("unexpected argument '%s'", a);
			if (strcmp(a, "tail") && strcmp(a, "status") && strcmp(a, "history") &&
			    strcmp(a, "plot") && strcmp(a, "alerts"))
				return usage_error("unknown command '%s'", a);
			o->command = a;
			continue;
		}
		/* Options with a value. */
		if (!strcmp(a, "-e") || !strcmp(a, "--endpoint") || !strcmp(a, "--timeout") ||
		    !strcmp(a, "--server-key") || !strcmp(a, "--topic") || !strcmp(a, "--count") ||
		    !strcmp(a, "--metric") || !strcmp(a, "--group") || !strcmp(a, "--from") ||
		    !strcmp(a, "--to") || !strcmp(a, "--width") || !strcmp(a, "--height")) {
			if (!val)
				return usage_error("option '%s' needs a value", a);
			i++;
		}
		if (!strcmp(a, "-e") || !strcmp(a, "--endpoint")) {
			if (o->nendpoints == ENDPOINTS_MAX)
				return usage_error("more than %d endpoints", ENDPOINTS_MAX);
			o->endpoints[o->nendpoints++] = val;
		} else if (!strcmp(a, "--timeout")) {
			if (parse_ll(val, 1, 86400000, &v) < 0)
				return usage_error("--timeout '%s': expected milliseconds, 1 to 86400000",
						   val);
			o->timeout_ms = (int)v;
		} else if (!strcmp(a, "--server-key")) {
			o->server_key_file = val;
		} else if (!o->command) {
			return usage_error("option '%s' before the command, or unknown", a);
		} else if (!takes(o->command, a)) {
			return usage_error("%s: unknown option '%s'", o->command, a);
		} else if (!strcmp(a, "--json")) {
			o->json = true;
		} else if (!strcmp(a, "--csv")) {
			o->csv = true;
		} else if (!strcmp(a, "--ascii")) {
			o->ascii = true;
		} else if (!strcmp(a, "--follow")) {
			o->follow = true;
		} else if (!strcmp(a, "--all")) {
			o->all = true;
		} else if (!strcmp(a, "--topic")) {
			if (o->ntopics == TOPICS_MAX)
				return usage_error("more than %d --topic", TOPICS_MAX);
			o->topics[o->ntopics++] = val;
		} else if (!strcmp(a, "--count")) {
			if (parse_ll(val, 1, 1000000000, &v) < 0)
				return usage_error("--count '%s': expected a positive number", val);
			o->count = v;
		} else if (!strcmp(a, "--metric")) {
			if (!*val || strlen(val) > 128)
				return usage_error("--metric: expected 1 to 128 bytes");
			o->metric = val;
		} else if (!strcmp(a, "--group")) {
			if (!*val || strlen(val) > 128)
				return usage_error("--group: expected 1 to 128 bytes");
			if (o->ngroups == GROUPS_MAX)
				return usage_error("more than %d --group", GROUPS_MAX);
			o->groups[o->ngroups++] = val;
		} else if (!strcmp(a, "--from") || !strcmp(a, "--to")) {
			if (parse_ll(val, 0, STEP_LAST, &v) < 0)
				return usage_error("%s '%s': expected a step, 0 to %lld", a, val,
						   STEP_LAST);
			*(a[2] == 'f' ? &o->from : &o->to) = v;
		} else if (!strcmp(a, "--width")) {
			if (parse_ll(val, PLOT_WIDTH_MIN, PLOT_WIDTH_MAX, &v) < 0)
				return usage_error("--width '%s': expected %d to %d columns", val,
						   PLOT_WIDTH_MIN, PLOT_WIDTH_MAX);
			o->width = (int)v;
		} else if (!strcmp(a, "--height")) {
			if (parse_ll(val, 3, 200, &v) < 0)
				return usage_error("--height '%s': expected 3 to 200 rows", val);
			o->height = (int)v;
		}
	}
	if (!o->command)
		return usage_error("no command (tail, status, history, plot or alerts)");
	if ((!strcmp(o->command, "history") || !strcmp(o->command, "plot")) && !o->metric)
		return usage_error("%s: --metric is required", o->command);
	if (!strcmp(o->command, "history") && o->ngroups > 1)
		return usage_error("history: one --group");
	if (o->json && o->csv)
		return usage_error("history: --csv or --json, not both");
	if (o->from >= 0 && o->to >= 0 && o->from > o->to)
		return usage_error("--from %lld is after --to %lld", (long long)o->from,
				   (long long)o->to);
	if (o->nendpoints == 0)
		o->endpoints[o->nendpoints++] = DEFAULT_ENDPOINT;
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
	gw_client_set_timeout(c, o->timeout_ms);
	if (o->server_key_file &&
	    (read_key(o->server_key_file, key) < 0 || gw_client_set_server_key(c, key) < 0)) {
		if (gw_client_error(c)[0])
			fprintf(stderr, "grokwatch: \"%s\": %s\n", o->server_key_file,
				gw_client_error(c));
		gw_client_free(c);
		return NULL;
	}
	for (int i = 0; i < o->nendpoints; i++)
		if ((r = gw_client_connect(c, o->endpoints[i])) < 0) {
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
		printf("%s  %s  step %s  %-8s  distance %s  consistency %s  loss %s\n", when,
		       gw_msg_run(m), stepbuf, g, d, cs, l);
	}
	if (n == 0)
		printf("%s  %s  step %s  (no groups)\n", when, gw_msg_run(m), stepbuf);
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
		printf("%s  %s  %s  %s  group %s  metric %s  since %s  %s\n", when,
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
			printf(" %s=%s", p + skip, s);
			break;
		case GW_JSON_NUMBER:
		case GW_JSON_BOOL:
			gw_msg_get_number(m, p, &v);
			printf(" %s=%.10g", p + skip, v);
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
		printf("%s\n", gw_msg_json(m));
		return;
	}
	fmt_time(gw_msg_time(m), when, sizeof(when));
	if (!strcmp(type, "metrics")) {
		print_metrics(m, when);
	} else if (!strcmp(type, "alert")) {
		if (!print_alerts_at(m, "", when))
			printf("%s  %s  alert (no alerts in the message)\n", when, gw_msg_run(m));
	} else if (!strcmp(type, "resync")) {
		const char *reason = gw_msg_get_string(m, "reason");

		if (reason && !strcmp(reason, "restart"))
			printf("%s  %s  the daemon restarted (epoch %s); caught up from its snapshot\n",
			       when, gw_msg_run(m), gw_msg_epoch(m));
		else
			printf("%s  %s  messages were lost; caught up from a snapshot\n", when,
			       gw_msg_run(m));
	} else if (!strcmp(type, "error")) {
		const char *e = gw_msg_get_string(m, "error");

		printf("%s  %s  error: %s", when, gw_msg_run(m), e ? e : "(no text)");
		print_scalars(m, "", 0, 0);
		printf("\n");
	} else if (!strcmp(type, "status") && gw_msg_get_kind(m, "status") == GW_JSON_OBJECT) {
		printf("%s  %s  status:", when, gw_msg_run(m));
		print_scalars(m, "status", strlen("status."), 0);
		printf("\n");
	} else {
		printf("%s  %s  %s:", when, gw_msg_run(m), type);
		print_scalars(m, "", 0, 0);
		printf("\n");
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
 * is done and !follow, or a signal.  A daemon that has not answered its
 * snapshot request within the timeout is a failure at start-up; later the
 * client waits through restarts.  Returns the exit status.
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
			fflush(stdout);
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
	const char *const *topics = o->ntopics ? o->topics : events;

	for (int i = 0; o->ntopics ? i < o->ntopics : topics[i] != NULL; i++) {
		if (!o->ntopics && !o->all && i >= 4)
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
		printf("%s\n", gw_msg_json(m));
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
			printf("%s\n", j);
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

			printf("%*salerts: %d firing%s\n", indent, "", na, na ? ":" : "");
			for (int k = 0; k < na; k++) {
				char q[600];
				const char *name, *group, *metric;

				snprintf(q, sizeof(q), "%s.%d.labels.alertname", p, k);
				name = gw_msg_get_string(m, q);
				snprintf(q, sizeof(q), "%s.%d.labels.group", p, k);
				group = gw_msg_get_string(m, q);
				snprintf(q, sizeof(q), "%s.%d.labels.metric", p, k);
				metric = gw_msg_get_string(m, q);
				printf("%*s%s  group %s  metric %s\n", indent + 2, "", name ? name : "-",
				       group ? group : "-", metric ? metric : "-");
			}
		} else if (kind == GW_JSON_OBJECT && indent < 8) {
			printf("%*s%s:\n", indent, "", key);
			print_status_tree(m, p, indent + 2);
		} else if (kind == GW_JSON_STRING) {
			printf("%*s%s: %s\n", indent, "", key, gw_msg_get_string(m, p));
		} else if (kind > 0 && gw_msg_get_json(m, p, &j) == 0) {
			printf("%*s%s: %s\n", indent, "", key, j);
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
			printf("%s\n", gw_msg_json(s));
		} else {
			gw_msg_get_number(s, "seq", &seq);
			printf("%s\n  run: %s\n  epoch: %s\n  messages sent: %.0f\n", in.pub_endpoint,
			       gw_msg_run(s), gw_msg_epoch(s), seq);
			if (gw_msg_get_count(s, "status") > 0) {
				printf("  status:\n");
				print_status_tree(s, "status", 4);
			} else {
				printf("  status: (none reported)\n");
			}
		}
		gw_msg_free(s);
	}
	return status;
}

/* ---- history and plot ------------------------------------------------------------------- */

static void csv_field(const char *s)
{
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, stdout);
		return;
	}
	putchar('"');
	for (; *s; s++) {
		if (*s == '"')
			putchar('"');
		putchar(*s);
	}
	putchar('"');
}

static int cmd_history(struct gw_client *c, const struct opts *o)
{
	const char *group = o->ngroups ? o->groups[0] : "all";
	int status = 0;

	if (o->csv)
		printf("run,group,metric,step,value\n");
	for (size_t i = 0; i < gw_client_daemon_count(c); i++) {
		struct gw_history *h;

		if (gw_client_history(c, i, o->metric, group, o->from, o->to, &h) < 0) {
			fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
			status = 1;
			continue;
		}
		if (o->json) {
			printf("%s\n", gw_history_json(h));
		} else if (!o->csv) {
			printf("# run %s, group %s, %s: %zu steps\n", gw_history_run(h), group,
			       o->metric, gw_history_count(h));
		}
		for (size_t k = 0; !o->json && k < gw_history_count(h); k++) {
			int64_t step;
			double v;
			int r = gw_history_point(h, k, &step, &v);

			if (o->csv) {
				csv_field(gw_history_run(h));
				putchar(',');
				csv_field(group);
				putchar(',');
				csv_field(o->metric);
				printf(",%lld,", (long long)step);
				if (r == 0)
					printf("%.17g", v);
				putchar('\n');
			} else if (r == 0) {
				printf("%12lld  %.6g\n", (long long)step, v);
			} else {
				printf("%12lld  -\n", (long long)step);
			}
		}
		gw_history_free(h);
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
	const char *const *groups = o->ngroups ? o->groups : all_group;
	size_t ngroups = o->ngroups ? (size_t)o->ngroups : 1, nd = gw_client_daemon_count(c), ns = 0;
	struct plot_series s[PLOT_SERIES_MAX];
	struct gw_history *hs[PLOT_SERIES_MAX];
	int64_t *xs[PLOT_SERIES_MAX] = { 0 };
	double *ys[PLOT_SERIES_MAX] = { 0 };
	char labels[PLOT_SERIES_MAX][300], title[400];
	int width = o->width ? o->width : terminal_width(), status = 0, r;

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
	r = plot_render(stdout, s, ns, width, o->height ? o->height : 15,
			o->ascii || !utf8_locale(), title);
	if (r == -ENODATA) {
		fprintf(stderr, "grokwatch: plot: no value of %s in the chosen groups and steps\n",
			o->metric);
		status = 1;
	} else if (r < 0) {
		fprintf(stderr, "grokwatch: plot: %s\n", strerror(-r));
		status = 1;
	}
out:
	for (size_t k = 0; k < ns; k++) {
		gw_history_free(hs[k]);
		free(xs[k]);
		free(ys[k]);
	}
	return status;
}

/* ---- main --------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct gw_client *c;
	struct opts o;
	int r;

	setlocale(LC_CTYPE, "");
	r = parse_args(argc, argv, &o);
	if (r == 1) {
		usage(stdout);
		return 0;
	}
	if (r)
		return r;
	/* No SA_RESTART: a signal ends the wait in gw_client_next. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!(c = open_client(&o, &r)))
		return r;
	if (!strcmp(o.command, "tail"))
		r = cmd_tail(c, &o);
	else if (!strcmp(o.command, "status"))
		r = cmd_status(c, &o);
	else if (!strcmp(o.command, "history"))
		r = cmd_history(c, &o);
	else if (!strcmp(o.command, "plot"))
		r = cmd_plot(c, &o);
	else
		r = cmd_alerts(c, &o);
	gw_client_free(c);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "grokwatch: writing the output: %s\n", strerror(errno));
		return 1;
	}
	return r;
}
