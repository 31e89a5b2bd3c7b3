/*
 * query.c — the commands that ask each daemon's query socket (cli.h):
 * status, each daemon's snapshot as an indented tree; history, one metric
 * of one group a step a line (or CSV, or the reply's JSON); plot, the same
 * as a chart of one series per daemon and group (plot.h), with the band of
 * the metric's standard error where the daemon publishes one
 * ("<metric>_se"), and, with --beside, a second chart of a history CSV
 * (csv.h) beside it; drawn in memory and written at once.
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
#include "out.h"
#include "plot.h"

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

int cmd_history(struct gw_client *c, const struct opts *o)
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
		for (size_t k = 0; !o->json && !out_failure() && k < gw_history_count(h); k++) {
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
	if (cols && opts_parse_ll(cols, 1, 100000, &v) == 0)
		return (int)v;
	return 80;
}

static bool utf8_locale(void)
{
	const char *cs = nl_langinfo(CODESET);

	return cs && (!strcmp(cs, "UTF-8") || !strcmp(cs, "utf8"));
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
	struct gw_history *hs[PLOT_SERIES_MAX];
	int64_t *xs[PLOT_SERIES_MAX] = { 0 };
	double *ys[PLOT_SERIES_MAX] = { 0 }, *es[PLOT_SERIES_MAX] = { 0 };
	char labels[PLOT_SERIES_MAX][300], title[400], se_metric[160];
	int width = o->width ? (int)o->width : terminal_width(), status = 0, cw;
	char *chart = NULL, *other = NULL;
	bool side;

	if (width < PLOT_WIDTH_MIN)
		width = PLOT_WIDTH_MIN;
	if (width > PLOT_WIDTH_MAX)
		width = PLOT_WIDTH_MAX;
	/* With --beside: two charts side by side when each gets its minimum
	 * width, else one below the other. */
	side = o->beside && width >= 2 * PLOT_WIDTH_MIN + 2;
	cw = side ? (width - 2) / 2 : width;
	if (nd * ngroups > PLOT_SERIES_MAX) {
		fprintf(stderr, "grokwatch: plot: at most %d series (daemons times groups)\n",
			PLOT_SERIES_MAX);
		return 2;
	}
	/* The standard error the daemon publishes beside a metric, if any. */
	snprintf(se_metric, sizeof(se_metric), "%s_se", o->metric);
	for (size_t i = 0; i < nd; i++)
		for (size_t g = 0; g < ngroups; g++) {
			struct gw_history *h, *he = NULL;
			size_t n;
			bool any_se = false;

			if (gw_client_history(c, i, o->metric, groups[g], o->from, o->to, &h) < 0) {
				fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
				status = 1;
				goto out;
			}
			hs[ns] = h;
			n = gw_history_count(h);
			xs[ns] = malloc((n ? n : 1) * sizeof(int64_t));
			ys[ns] = malloc((n ? n : 1) * sizeof(double));
			es[ns] = malloc((n ? n : 1) * sizeof(double));
			if (!xs[ns] || !ys[ns] || !es[ns]) {
				ns++;
				fprintf(stderr, "grokwatch: out of memory\n");
				status = 1;
				goto out;
			}
			for (size_t k = 0; k < n; k++) {
				if (gw_history_point(h, k, &xs[ns][k], &ys[ns][k]) < 0)
					ys[ns][k] = NAN;
				es[ns][k] = NAN;
			}
			if (!o->no_band && strlen(o->metric) + 3 < sizeof(se_metric)) {
				if (gw_client_history(c, i, se_metric, groups[g], o->from, o->to, &he) < 0) {
					fprintf(stderr, "grokwatch: %s\n", gw_client_error(c));
					status = 1;
					ns++;
					goto out;
				}
				/* The same steps, unless a result landed between the two
				 * queries: then matched by step. */
				for (size_t k = 0, j = 0; k < n; k++) {
					int64_t st;
					double v;

					while (j < gw_history_count(he) &&
					       gw_history_point(he, j, &st, NULL) != -ERANGE && st < xs[ns][k])
						j++;
					if (j < gw_history_count(he) && gw_history_point(he, j, &st, &v) == 0 &&
					    st == xs[ns][k]) {
						es[ns][k] = v;
						any_se = true;
					}
				}
				gw_history_free(he);
			}
			if (nd > 1)
				snprintf(labels[ns], sizeof(labels[ns]), "%s/%s", gw_history_run(h),
					 groups[g]);
			else
				snprintf(labels[ns], sizeof(labels[ns]), "%s", groups[g]);
			s[ns] = (struct plot_series){ labels[ns], n, xs[ns], ys[ns],
						      any_se ? es[ns] : NULL };
			ns++;
		}
	if (nd == 1)
		snprintf(title, sizeof(title), "%s  run %s", o->metric, gw_history_run(hs[0]));
	else
		snprintf(title, sizeof(title), "%s", o->metric);
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
		gw_history_free(hs[k]);
		free(xs[k]);
		free(ys[k]);
		free(es[k]);
	}
	return status;
}
