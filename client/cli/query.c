/*
 * query.c — the commands that ask each daemon's query socket (cli.h):
 * status, each daemon's snapshot as an indented tree; history, one metric
 * of one group a step a line (or CSV, or the reply's JSON); plot, the same
 * as a chart of one series per daemon and group (plot.h), with the band of
 * the metric's standard error where the daemon publishes one
 * ("<metric>_se"), and, with --beside, a second chart of a history CSV
 * (csv.h) beside it; drawn in memory and written at once, or as an SVG
 * file (svg.h).  Both check the metric and groups against the daemon's
 * latest result first (fetch.h).
 */
#include <errno.h>
#include <langinfo.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"
#include "csv.h"
#include "engine/file.h"
#include "fetch.h"
#include "out.h"
#include "plot.h"
#include "svg.h"

/* ---- status ------------------------------------------------------------------------- */

/* The Alertmanager sender's targets (status.alertmanager): a line each,
 * "URL  ok|FAILING  sent N  failures N in a row (M in all)", then its last
 * error indented below it. */
static void print_alertmanager(const struct gw_msg *m, const char *p, int indent)
{
	int n = gw_msg_get_count(m, p);

	out_printf("%*salertmanager:\n", indent, "");
	for (int k = 0; k < n; k++) {
		char q[600];
		const char *url, *err, *last_ok;
		double ok = 0, sent = 0, fails = 0, total = 0, pend = 0;

#define AT(f) (snprintf(q, sizeof(q), "%s.%d." f, p, k), q)
		url = gw_msg_get_string(m, AT("url"));
		err = gw_msg_get_string(m, AT("last_error"));
		last_ok = gw_msg_get_string(m, AT("last_ok"));
		gw_msg_get_number(m, AT("ok"), &ok);
		gw_msg_get_number(m, AT("sent"), &sent);
		gw_msg_get_number(m, AT("failures"), &fails);
		gw_msg_get_number(m, AT("failed_total"), &total);
		gw_msg_get_number(m, AT("resolved_pending"), &pend);
#undef AT
		out_printf("%*s%s  %s  sent %.0f  failures %.0f in a row (%.0f in all)  "
			   "resolutions pending %.0f  last ok %s\n", indent + 2, "", url ? url : "-",
			   ok ? "ok" : "FAILING", sent, fails, total, pend, last_ok ? last_ok : "never");
		if (err && !ok)
			out_printf("%*slast error: %s\n", indent + 4, "", err);
	}
}

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
		} else if (kind == GW_JSON_ARRAY && !strcmp(key, "alertmanager")) {
			print_alertmanager(m, p, indent);
		} else if (kind == GW_JSON_ARRAY && !strcmp(key, "pending_dirs")) {
			/* Directories not computed yet: one line each, with why. */
			int np = gw_msg_get_count(m, p);

			out_printf("%*spending_dirs: %d%s\n", indent, "", np, np ? ":" : "");
			for (int k = 0; k < np; k++) {
				char q[600];
				const char *name, *why, *reason;

				snprintf(q, sizeof(q), "%s.%d.checkpoint", p, k);
				name = gw_msg_get_string(m, q);
				snprintf(q, sizeof(q), "%s.%d.why", p, k);
				why = gw_msg_get_string(m, q);
				snprintf(q, sizeof(q), "%s.%d.reason", p, k);
				reason = gw_msg_get_string(m, q);
				out_printf("%*s%s  %s: %s\n", indent + 2, "", name ? name : "-",
					   why ? why : "-", reason ? reason : "-");
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

int cmd_status(struct gw_client *c, const struct opts *o)
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

/* Refuse an unknown metric or group before asking for any series. */
static int check_names(struct gw_client *c, const struct opts *o, const char *const *groups,
		       size_t ngroups)
{
	char why[4096];

	if (fetch_is_run_metric(o->metric) && o->groups.n) {
		fprintf(stderr, "grokwatch: --group: %s is a value of the run, not of a group\n",
			o->metric);
		return 2;
	}
	for (size_t i = 0; i < gw_client_daemon_count(c); i++) {
		int r = fetch_check(c, i, o->metric, groups, ngroups, why, sizeof(why));

		if (r == -EINVAL) {
			fprintf(stderr, "grokwatch: %s\n", why);
			return 2;
		}
		if (r < 0) {
			fprintf(stderr, "grokwatch: %s\n", why);
			return 1;
		}
	}
	return 0;
}

int cmd_history(struct gw_client *c, const struct opts *o)
{
	const char *group = o->groups.n ? o->groups.v[0] : "all";
	int status;
	char why[GW_ERROR_MAX];

	if ((status = check_names(c, o, &group, 1)) != 0)
		return status;
	if (fetch_is_run_metric(o->metric))
		group = "-";
	if (o->csv)
		out_printf("run,group,metric,step,value\n");
	for (size_t i = 0; i < gw_client_daemon_count(c); i++) {
		struct fetch_series h;

		if (fetch_series(c, i, o->metric, group, o->from, o->to, &h, why, sizeof(why)) < 0) {
			fprintf(stderr, "grokwatch: %s\n", why);
			status = 1;
			continue;
		}
		if (o->json) {
			out_printf("%s\n", h.json);
		} else if (!o->csv) {
			out_printf("# run %s, group %s, %s: %zu steps\n", h.run, group, o->metric, h.n);
		}
		for (size_t k = 0; !o->json && !out_failure() && k < h.n; k++) {
			if (o->csv) {
				csv_field(h.run);
				out_char(',');
				csv_field(group);
				out_char(',');
				csv_field(o->metric);
				out_printf(",%lld,", (long long)h.x[k]);
				if (!isnan(h.y[k]))
					out_printf("%.17g", h.y[k]);
				out_char('\n');
			} else if (!isnan(h.y[k])) {
				out_printf("%12lld  %.6g\n", (long long)h.x[k], h.y[k]);
			} else {
				out_printf("%12lld  -\n", (long long)h.x[k]);
			}
		}
		fetch_series_release(&h);
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
	if (cols && opts_parse_ll(cols, 1, 100000, &v) == 0)
		return (int)v;
	return 80;
}

static bool utf8_locale(void)
{
	const char *cs = nl_langinfo(CODESET);

	return cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8"));
}

/* The chart as an SVG file, replaced atomically. */
static int write_svg(const char *path, const struct plot_series *s, size_t ns, const char *title)
{
	char *buf = NULL, *dir, *slash;
	size_t len = 0;
	struct gw_err err = { "" };
	FILE *f = open_memstream(&buf, &len);
	int r;

	if (!f)
		return -ENOMEM;
	r = svg_render(f, s, ns, title);
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r == 0) {
		if (!(dir = strdup(path))) {
			free(buf);
			return -ENOMEM;
		}
		slash = strrchr(dir, '/');
		if (slash)
			*slash = 0;
		r = gw_file_write_atomic(slash ? (*dir ? dir : "/") : ".", slash ? slash + 1 : path,
					 buf, len, &err);
		if (r < 0)
			fprintf(stderr, "grokwatch: plot: %s\n", err.msg);
		free(dir);
	}
	free(buf);
	return r == 0 ? 0 : r == -ENODATA || r == -ENOMEM ? r : -EIO;
}

/* Draw series into a new string (*ret, caller frees): 0, or 1 with the
 * message printed. */
static int render(const struct plot_series *s, size_t ns, int width, const struct opts *o,
		  const char *title, const char *what, char **ret)
{
	char *chart = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&chart, &len);
	int r;

	if (!f) {
		fprintf(stderr, "grokwatch: plot: %s\n", strerror(errno));
		return 1;
	}
	r = plot_render(f, s, ns, width, o->height ? (int)o->height : 15,
			o->ascii || !utf8_locale(), title);
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r == -ENODATA)
		fprintf(stderr, "grokwatch: plot: no value of %s in the chosen groups and steps\n", what);
	else if (r < 0)
		fprintf(stderr, "grokwatch: plot: %s\n", strerror(-r));
	if (r < 0) {
		free(chart);
		return 1;
	}
	*ret = chart;
	return 0;
}

/* The chart of FILE's series (csv.h) for --beside, over the steps from..to;
 * 0 with *ret, or 1 with the message printed. */
static int render_beside(const struct opts *o, int width, char **ret)
{
	struct csv_table *t = NULL;
	struct plot_series s[CSV_SERIES_MAX];
	char err[600], labels[CSV_SERIES_MAX][300], title[400] = "";
	size_t tl = 0;
	bool many_runs = false;
	int status;

	if (csv_read(o->beside, &t, err, sizeof(err)) < 0) {
		fprintf(stderr, "grokwatch: plot: --beside %s\n", err);
		return 1;
	}
	for (size_t k = 0; k < t->n; k++)
		many_runs |= strcmp(t->s[k].run, t->s[0].run) != 0;
	for (size_t k = 0; k < t->n; k++) {
		const struct csv_series *c = &t->s[k];
		size_t a = 0, b = c->n;

		/* Only the steps asked for. */
		while (a < b && o->from >= 0 && c->x[a] < o->from)
			a++;
		while (b > a && o->to >= 0 && c->x[b - 1] > o->to)
			b--;
		snprintf(labels[k], sizeof(labels[k]), "%s%s%s", many_runs ? c->run : "",
			 many_runs ? "/" : "", c->group);
		s[k] = (struct plot_series){ labels[k], b - a, c->x + a, c->y + a, NULL };
		/* The metrics, once each, for the title. */
		{
			bool seen = false;

			for (size_t j = 0; j < k; j++)
				seen |= !strcmp(t->s[j].metric, c->metric);
			if (!seen && tl + 1 < sizeof(title)) {
				snprintf(title + tl, sizeof(title) - tl, "%s%s", tl ? ", " : "",
					 c->metric);
				tl = strlen(title);
			}
		}
	}
	if (t->n == 0) {
		fprintf(stderr, "grokwatch: plot: --beside \"%s\": no records\n", o->beside);
		csv_table_free(t);
		return 1;
	}
	status = render(s, t->n, width, o, title, o->beside, ret);
	csv_table_free(t);
	return status;
}

int cmd_plot(struct gw_client *c, const struct opts *o)
{
	static const char *const all_group[1] = { "all" };
	const char *const *groups = o->groups.n ? o->groups.v : all_group;
	size_t ngroups = o->groups.n ? (size_t)o->groups.n : 1;
	size_t nd = gw_client_daemon_count(c), ns = 0;
	struct plot_series s[PLOT_SERIES_MAX];
	struct fetch_series fs[PLOT_SERIES_MAX];
	double *es[PLOT_SERIES_MAX] = { 0 };
	char labels[PLOT_SERIES_MAX][300], title[400], why[GW_ERROR_MAX], se_metric[160];
	int width = o->width ? (int)o->width : terminal_width(), status, cw;
	bool run_metric = fetch_is_run_metric(o->metric), side;
	char *chart = NULL, *other = NULL;

	if (o->svg_file && o->beside) {
		fprintf(stderr, "grokwatch: plot: --beside draws in the terminal; not with --svg\n");
		return 2;
	}
	if (width < PLOT_WIDTH_MIN)
		width = PLOT_WIDTH_MIN;
	if (width > PLOT_WIDTH_MAX)
		width = PLOT_WIDTH_MAX;
	/* With --beside: two charts side by side when each gets its minimum
	 * width, else one below the other. */
	side = o->beside && width >= 2 * PLOT_WIDTH_MIN + 2;
	cw = side ? (width - 2) / 2 : width;
	if (run_metric)
		ngroups = 1;
	if (nd * ngroups > PLOT_SERIES_MAX) {
		fprintf(stderr, "grokwatch: plot: at most %d series (daemons times groups)\n",
			PLOT_SERIES_MAX);
		return 2;
	}
	if ((status = check_names(c, o, groups, run_metric ? 0 : ngroups)) != 0)
		return status;
	/* The standard error the daemon publishes beside a metric, if any. */
	snprintf(se_metric, sizeof(se_metric), "%s_se", o->metric);
	for (size_t i = 0; i < nd; i++)
		for (size_t g = 0; g < ngroups; g++) {
			bool any_se = false;

			if (fetch_series(c, i, o->metric, groups[g], o->from, o->to, &fs[ns], why,
					 sizeof(why)) < 0) {
				fprintf(stderr, "grokwatch: %s\n", why);
				status = 1;
				goto out;
			}
			if (run_metric)
				snprintf(labels[ns], sizeof(labels[ns]), "%s", fs[ns].run);
			else if (nd > 1)
				snprintf(labels[ns], sizeof(labels[ns]), "%s/%s", fs[ns].run, groups[g]);
			else
				snprintf(labels[ns], sizeof(labels[ns]), "%s", groups[g]);
			ns++;
			if (!run_metric && !o->no_band && strlen(o->metric) + 3 < sizeof(se_metric)) {
				struct fetch_series se;
				struct fetch_series *v = &fs[ns - 1];

				if (fetch_series(c, i, se_metric, groups[g], o->from, o->to, &se, why,
						 sizeof(why)) < 0) {
					fprintf(stderr, "grokwatch: %s\n", why);
					status = 1;
					goto out;
				}
				es[ns - 1] = malloc((v->n ? v->n : 1) * sizeof(double));
				if (!es[ns - 1]) {
					fetch_series_release(&se);
					fprintf(stderr, "grokwatch: out of memory\n");
					status = 1;
					goto out;
				}
				/* The same steps, unless a result landed between the two
				 * queries: then matched by step. */
				for (size_t k = 0, j = 0; k < v->n; k++) {
					es[ns - 1][k] = NAN;
					while (j < se.n && se.x[j] < v->x[k])
						j++;
					if (j < se.n && se.x[j] == v->x[k] && !isnan(se.y[j])) {
						es[ns - 1][k] = se.y[j];
						any_se = true;
					}
				}
				fetch_series_release(&se);
			}
			s[ns - 1] = (struct plot_series){ labels[ns - 1], fs[ns - 1].n, fs[ns - 1].x,
							  fs[ns - 1].y, any_se ? es[ns - 1] : NULL };
		}
	if (nd == 1)
		snprintf(title, sizeof(title), "%s  run %s", o->metric, fs[0].run);
	else
		snprintf(title, sizeof(title), "%s", o->metric);
	if (o->svg_file) {
		int r = write_svg(o->svg_file, s, ns, title);

		if (r == -ENODATA)
			fprintf(stderr, "grokwatch: plot: no value of %s in the chosen groups and steps\n",
				o->metric);
		else if (r < 0 && r != -EIO) /* -EIO: said by write_svg */
			fprintf(stderr, "grokwatch: plot: %s\n", strerror(-r));
		status = r < 0 ? 1 : 0;
		goto out;
	}
	/* Drawn in memory, then written as one checked write. */
	if ((status = render(s, ns, cw, o, title, o->metric, &chart)) != 0)
		goto out;
	if (o->beside && (status = render_beside(o, cw, &other)) != 0)
		goto out;
	if (side) {
		char *both = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&both, &len);

		if (!f || plot_beside(f, chart, cw, width - 2 * cw, other) < 0 || fclose(f) != 0) {
			fprintf(stderr, "grokwatch: plot: out of memory\n");
			status = 1;
			free(both);
			goto out;
		}
		out_bytes(both, len);
		free(both);
	} else {
		out_str(chart);
		if (other) {
			out_char('\n');
			out_str(other);
		}
	}
out:
	free(chart);
	free(other);
	for (size_t k = 0; k < ns; k++) {
		fetch_series_release(&fs[k]);
		free(es[k]);
	}
	return status;
}
