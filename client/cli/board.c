/*
 * board.c — the bridge's knowledge of its daemons (board.h).
 *
 * In order: columns (a name, its group and metric or its layer, its
 * Prometheus family) found by name with a hint, since results list their
 * values in the same order every time; rows, kept in step order; taking
 * a metrics message apart into a row; alert periods; board_apply for each
 * message type; the memorized columns' refresh; then the two texts, the
 * page's series and the Prometheus exposition.
 *
 * Paths are the dotted paths of gw_msg_get_*: a group whose name holds a
 * '.' cannot be reached that way and is left out (groups are probe-set
 * names such as math, code, web).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "board.h"
#include "emit.h"

#define PATH_MAX_LEN 512
#define ERRORS_KEPT 20
#define WALK_DEPTH 4

enum col_kind { COL_GROUP, COL_LAYER, COL_OVERALL };

struct column {
	char *name;    /* the dotted path in the result */
	char *group;   /* COL_GROUP: the group; COL_LAYER: the layer, in decimal */
	char *metric;  /* COL_GROUP: the path inside the group; else the key */
	char *family;  /* the Prometheus metric name */
	enum col_kind kind;
	bool memo;     /* a memorized-subset value, recomputed at earlier steps */
};

struct row {
	int64_t step;
	double time;
	double *v;     /* nv values, by column index; NaN = absent */
	size_t nv;
	char *text;    /* the row as the series JSON writes it, or NULL; values
			  past nv are left out (the page reads them as null), so
			  columns added later do not make it stale */
	size_t text_len;
};

struct period {
	char fingerprint[40];
	char *alertname, *group, *metric, *summary, *starts_at, *ends_at;
	int64_t from_step, to_step; /* -1 = not known / still firing */
	bool firing;
};

struct run {
	char *endpoint;
	struct gw_daemon_info info;
	char run[128], epoch[64];
	struct column *cols;
	size_t ncols, capcols, hint;
	struct row *rows;
	size_t nrows, caprows;
	struct gw_msg *latest;     /* the result with the highest step */
	struct gw_msg *status;     /* the last message carrying "status" */
	char *status_json;
	char *progress_json;
	char *errors[ERRORS_KEPT]; /* the last error messages, a ring */
	size_t nerrors;
	struct period *alerts;
	size_t nalerts;
};

struct board {
	struct run *runs;
	size_t n;
};

/* ---- small helpers ------------------------------------------------------------------- */

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

static int64_t row_find(const struct run *r, int64_t step, bool *found)
{
	size_t lo = 0, hi = r->nrows;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->rows[mid].step < step)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < r->nrows && r->rows[lo].step == step;
	return (int64_t)lo;
}


/* ---- columns ------------------------------------------------------------------------ */

static void column_release(struct column *c)
{
	free(c->name);
	free(c->group);
	free(c->metric);
	free(c->family);
}

static char *family_of(const char *prefix, const char *key)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	emit_prom_name(f, prefix, key);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The index of column `name`, added if new.  Returns -ENOMEM, -E2BIG. */
static long column_get(struct run *r, const char *name, enum col_kind kind, const char *group,
		       const char *metric)
{
	struct column c = { 0 };

	if (r->hint < r->ncols && !strcmp(r->cols[r->hint].name, name))
		return (long)r->hint++;
	for (size_t i = 0; i < r->ncols; i++)
		if (!strcmp(r->cols[i].name, name)) {
			r->hint = i + 1;
			return (long)i;
		}
	if (r->ncols >= BOARD_COLUMNS_MAX)
		return -E2BIG;
	if (r->ncols == r->capcols) {
		size_t cap = r->capcols ? r->capcols * 2 : 64;
		struct column *p = realloc(r->cols, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		r->cols = p;
		r->capcols = cap;
	}
	c.kind = kind;
	c.name = strdup(name);
	c.group = xstrdup(group);
	c.metric = strdup(metric);
	c.memo = kind == COL_GROUP && !strncmp(metric, "memorized.", 10);
	c.family = family_of(kind == COL_GROUP ? "grokwatch_" :
			     kind == COL_LAYER ? "grokwatch_layer_" : "grokwatch_health_", metric);
	if (!c.name || !c.group || !c.metric || !c.family) {
		column_release(&c);
		return -ENOMEM;
	}
	r->cols[r->ncols] = c;
	r->hint = r->ncols + 1;
	return (long)r->ncols++;
}

/* ---- a result into a row ------------------------------------------------------------- */

struct cell {
	long col;
	double v;
};

struct cells {
	struct cell *v;
	size_t n, cap;
	int err;
};

static void cells_add(struct cells *cs, long col, double v)
{
	if (cs->err)
		return;
	if (col < 0) {
		if (col == -ENOMEM)
			cs->err = -ENOMEM;
		return; /* -E2BIG: a value beyond the column limit is not kept */
	}
	if (cs->n == cs->cap) {
		size_t cap = cs->cap ? cs->cap * 2 : 128;
		struct cell *p = realloc(cs->v, cap * sizeof(*p));

		if (!p) {
			cs->err = -ENOMEM;
			return;
		}
		cs->v = p;
		cs->cap = cap;
	}
	cs->v[cs->n++] = (struct cell){ col, v };
}

/* Every number under path (not inside arrays), as columns of `kind`;
 * skip = the bytes of path before the metric's own part. */
static void walk(struct run *r, const struct gw_msg *m, const char *path, size_t skip,
		 enum col_kind kind, const char *group, int depth, struct cells *cs)
{
	int n = gw_msg_get_count(m, path);

	for (int i = 0; i < n && !cs->err; i++) {
		const char *key = gw_msg_get_key(m, path, (size_t)i);
		char p[PATH_MAX_LEN];
		double v;
		int kd;

		if (!key || !*key || strchr(key, '.') ||
		    (size_t)snprintf(p, sizeof(p), "%s.%s", path, key) >= sizeof(p))
			continue;
		kd = gw_msg_get_kind(m, p);
		if (kd == GW_JSON_NUMBER && gw_msg_get_number(m, p, &v) == 0)
			cells_add(cs, column_get(r, p, kind, group, p + skip), v);
		else if (kd == GW_JSON_NULL)
			cells_add(cs, column_get(r, p, kind, group, p + skip), NAN);
		else if (kd == GW_JSON_OBJECT && depth < WALK_DEPTH)
			walk(r, m, p, skip, kind, group, depth + 1, cs);
	}
}

static int row_cells(struct run *r, const struct gw_msg *m, struct cells *cs)
{
	int ng = gw_msg_get_count(m, "groups"), nl = gw_msg_get_count(m, "health.layers");
	char p[PATH_MAX_LEN];

	for (int i = 0; i < ng; i++) {
		const char *g = gw_msg_get_key(m, "groups", (size_t)i);

		if (!g || !*g || strchr(g, '.') ||
		    (size_t)snprintf(p, sizeof(p), "groups.%s", g) >= sizeof(p))
			continue;
		walk(r, m, p, strlen(p) + 1, COL_GROUP, g, 0, cs);
	}
	walk(r, m, "health.overall", strlen("health.overall."), COL_OVERALL, NULL, WALK_DEPTH - 1,
	     cs);
	for (int l = 0; l < nl; l++) {
		char layer[24];
		int len = snprintf(p, sizeof(p), "health.layers.%d", l);

		snprintf(layer, sizeof(layer), "%d", l);
		walk(r, m, p, (size_t)len + 1, COL_LAYER, layer, WALK_DEPTH - 1, cs);
	}
	return cs->err;
}

/* Put the row of result m in its step's place (replacing one there). */
static int row_put(struct run *r, const struct gw_msg *m, int64_t step, struct cells *cs)
{
	struct row nr = { step, gw_msg_time(m), NULL, 0, NULL, 0 };
	bool found;
	int64_t at;
	long maxc = -1;

	for (size_t i = 0; i < cs->n; i++)
		maxc = cs->v[i].col > maxc ? cs->v[i].col : maxc;
	nr.nv = (size_t)(maxc + 1);
	if (nr.nv && !(nr.v = malloc(nr.nv * sizeof(double))))
		return -ENOMEM;
	for (size_t i = 0; i < nr.nv; i++)
		nr.v[i] = NAN;
	for (size_t i = 0; i < cs->n; i++)
		nr.v[cs->v[i].col] = cs->v[i].v;
	at = row_find(r, step, &found);
	if (found) {
		free(r->rows[at].v);
		free(r->rows[at].text);
		r->rows[at] = nr;
		return 0;
	}
	if (r->nrows == r->caprows) {
		size_t cap = r->caprows ? r->caprows * 2 : 256;
		struct row *p = realloc(r->rows, cap * sizeof(*p));

		if (!p) {
			free(nr.v);
			return -ENOMEM;
		}
		r->rows = p;
		r->caprows = cap;
	}
	memmove(&r->rows[at + 1], &r->rows[at], (r->nrows - (size_t)at) * sizeof(*r->rows));
	r->rows[at] = nr;
	r->nrows++;
	return 0;
}

static double row_value(const struct row *w, size_t col)
{
	return col < w->nv ? w->v[col] : NAN;
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void period_release(struct period *p)
{
	free(p->alertname);
	free(p->group);
	free(p->metric);
	free(p->summary);
	free(p->starts_at);
	free(p->ends_at);
}

static void run_release(struct run *r)
{
	free(r->endpoint);
	for (size_t i = 0; i < r->ncols; i++)
		column_release(&r->cols[i]);
	free(r->cols);
	for (size_t i = 0; i < r->nrows; i++) {
		free(r->rows[i].v);
		free(r->rows[i].text);
	}
	free(r->rows);
	gw_msg_free(r->latest);
	gw_msg_free(r->status);
	free(r->status_json);
	free(r->progress_json);
	for (size_t i = 0; i < ERRORS_KEPT; i++)
		free(r->errors[i]);
	for (size_t i = 0; i < r->nalerts; i++)
		period_release(&r->alerts[i]);
	free(r->alerts);
}

int board_new(size_t n, const char *const *endpoints, struct board **ret_board)
{
	struct board *b;

	if (n == 0)
		return -EINVAL;
	if (!(b = calloc(1, sizeof(*b))) || !(b->runs = calloc(n, sizeof(*b->runs)))) {
		free(b);
		return -ENOMEM;
	}
	b->n = n;
	for (size_t i = 0; i < n; i++) {
		b->runs[i].info.silent_ms = -1;
		if (!(b->runs[i].endpoint = strdup(endpoints[i]))) {
			board_free(b);
			return -ENOMEM;
		}
	}
	*ret_board = b;
	return 0;
}

void board_free(struct board *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		run_release(&b->runs[i]);
	free(b->runs);
	free(b);
}

void board_set_info(struct board *b, size_t daemon, const struct gw_daemon_info *info)
{
	struct run *r;

	if (daemon >= b->n)
		return;
	r = &b->runs[daemon];
	r->info = *info;
	/* The strings are the client's: keep copies. */
	r->info.pub_endpoint = r->info.query_endpoint = r->info.run = r->info.epoch = NULL;
	if (info->run && *info->run)
		snprintf(r->run, sizeof(r->run), "%s", info->run);
	if (info->epoch && *info->epoch)
		snprintf(r->epoch, sizeof(r->epoch), "%s", info->epoch);
}

size_t board_count(const struct board *b)
{
	return b->n;
}

const char *board_run(const struct board *b, size_t daemon)
{
	return daemon < b->n ? b->runs[daemon].run : "";
}

int board_find_run(const struct board *b, const char *run, size_t *ret_daemon)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->runs[i].run[0] && !strcmp(b->runs[i].run, run)) {
			*ret_daemon = i;
			return 0;
		}
	return -ENOENT;
}

/* ---- alert periods ----------------------------------------------------------------------- */

/* Seconds since the epoch of an RFC 3339 UTC time ("...Z"), or NAN. */
static double rfc3339_seconds(const char *s)
{
	struct tm tm = { 0 };
	double frac = 0;
	int n = 0;

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			 &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		return NAN;
	if (s[n] == '.')
		frac = strtod(s + n, NULL);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (double)timegm(&tm) + frac;
}

/* The step of the last result published at or before time t, or -1. */
static int64_t step_at_time(const struct run *r, double t)
{
	int64_t best = -1;
	double best_t = -INFINITY;

	if (!isfinite(t))
		return -1;
	/* startsAt is the evaluation just after the result went out, both
	 * from the daemon's clock, in milliseconds. */
	for (size_t i = 0; i < r->nrows; i++)
		if (r->rows[i].time > 0 && r->rows[i].time <= t + 0.0005 &&
		    r->rows[i].time >= best_t) {
			best_t = r->rows[i].time;
			best = r->rows[i].step;
		}
	return best;
}

static struct period *period_firing(struct run *r, const char *fingerprint)
{
	for (size_t i = r->nalerts; i-- > 0;)
		if (r->alerts[i].firing && !strcmp(r->alerts[i].fingerprint, fingerprint))
			return &r->alerts[i];
	return NULL;
}

static struct period *period_add(struct run *r)
{
	struct period *p;

	if (r->nalerts == BOARD_ALERTS_MAX) {
		/* Make room: the oldest resolved period, else the oldest. */
		size_t k = 0;

		for (size_t i = 0; i < r->nalerts; i++)
			if (!r->alerts[i].firing) {
				k = i;
				break;
			}
		period_release(&r->alerts[k]);
		memmove(&r->alerts[k], &r->alerts[k + 1], (r->nalerts - k - 1) * sizeof(*p));
		r->nalerts--;
	} else {
		p = realloc(r->alerts, (r->nalerts + 1) * sizeof(*p));
		if (!p)
			return NULL;
		r->alerts = p;
	}
	p = &r->alerts[r->nalerts];
	memset(p, 0, sizeof(*p));
	p->from_step = p->to_step = -1;
	return p;
}

/* One Alertmanager alert object at path of m (a message or a status). */
static struct period *period_from(struct run *r, const struct gw_msg *m, const char *path,
				  int64_t step, bool from_status)
{
	char k[PATH_MAX_LEN];
	const char *status, *fp;
	struct period *p;
	bool firing;

#define F(name) (snprintf(k, sizeof(k), "%s." name, path), gw_msg_get_string(m, k))
	status = F("status");
	fp = F("fingerprint");
	if (!fp || strlen(fp) >= sizeof(p->fingerprint))
		return NULL;
	firing = !status || strcmp(status, "resolved");
	p = period_firing(r, fp);
	if (p && firing)
		return p; /* known, and still firing */
	if (!p) {
		if (!(p = period_add(r)))
			return NULL;
		snprintf(p->fingerprint, sizeof(p->fingerprint), "%s", fp);
		p->alertname = xstrdup(F("labels.alertname"));
		p->group = xstrdup(F("labels.group"));
		p->metric = xstrdup(F("labels.metric"));
		p->summary = xstrdup(F("annotations.summary"));
		p->starts_at = xstrdup(F("startsAt"));
		p->ends_at = xstrdup("");
		p->from_step = firing && !from_status ? step :
			       step_at_time(r, rfc3339_seconds(p->starts_at));
		p->firing = true;
		r->nalerts++;
		if (!p->alertname || !p->group || !p->metric || !p->summary || !p->starts_at ||
		    !p->ends_at)
			return NULL;
	}
	if (!firing) {
		p->firing = false;
		p->to_step = step;
		free(p->ends_at);
		p->ends_at = xstrdup(F("endsAt"));
	}
#undef F
	return p;
}

static void period_json(const struct period *p, FILE *f)
{
	fputs("{\"alertname\":", f);
	emit_json_str(f, p->alertname ? p->alertname : "");
	fputs(",\"group\":", f);
	emit_json_str(f, p->group ? p->group : "");
	fputs(",\"metric\":", f);
	emit_json_str(f, p->metric ? p->metric : "");
	fputs(",\"summary\":", f);
	emit_json_str(f, p->summary ? p->summary : "");
	fprintf(f, ",\"firing\":%s,\"startsAt\":", p->firing ? "true" : "false");
	emit_json_str(f, p->starts_at ? p->starts_at : "");
	fputs(",\"endsAt\":", f);
	emit_json_str(f, p->ends_at ? p->ends_at : "");
	fputs(",\"fingerprint\":", f);
	emit_json_str(f, p->fingerprint);
	fputs(",\"from_step\":", f);
	if (p->from_step >= 0)
		fprintf(f, "%lld", (long long)p->from_step);
	else
		fputs("null", f);
	fputs(",\"to_step\":", f);
	if (p->to_step >= 0)
		fprintf(f, "%lld", (long long)p->to_step);
	else
		fputs("null", f);
	fputc('}', f);
}

/* ---- board_apply ------------------------------------------------------------------------ */

static void event_head(FILE *f, const char *name, size_t daemon, const struct run *r)
{
	fprintf(f, "event: %s\ndata: {\"daemon\":%zu,\"run\":", name, daemon);
	emit_json_str(f, r->run);
}

static int apply_result(struct board *b, struct run *r, size_t d, const struct gw_msg *m,
			FILE *events)
{
	struct cells cs = { 0 };
	struct gw_msg *copy = NULL;
	int64_t step;
	int err;

	if (gw_msg_step(m, &step) < 0)
		return 0; /* a result without a step cannot be placed */
	(void)b;
	if ((err = row_cells(r, m, &cs)) == 0 && (err = row_put(r, m, step, &cs)) == 0) {
		int64_t latest;

		if (!r->latest || gw_msg_step(r->latest, &latest) < 0 || step >= latest) {
			const char *json = gw_msg_json(m);

			err = gw_msg_parse(gw_msg_topic(m), json, strlen(json), &copy);
			if (err == 0) {
				gw_msg_free(r->latest);
				r->latest = copy;
			}
		}
	}
	if (err == 0 && events) {
		event_head(events, "result", d, r);
		fprintf(events, ",\"step\":%lld,\"time\":", (long long)step);
		emit_json_num(events, gw_msg_time(m));
		fputs(",\"values\":{", events);
		for (size_t i = 0; i < cs.n; i++) {
			if (i)
				fputc(',', events);
			emit_json_str(events, r->cols[cs.v[i].col].name);
			fputc(':', events);
			emit_json_num(events, cs.v[i].v);
		}
		fputs("}}\n\n", events);
	}
	free(cs.v);
	return err == -E2BIG ? 0 : err;
}

static int apply_status(struct run *r, size_t d, const struct gw_msg *m, FILE *events)
{
	struct gw_msg *copy;
	const char *json = gw_msg_json(m);
	char *st;
	int err, na;

	if (gw_msg_get_json(m, "status", &st) < 0)
		return 0;
	if (r->status_json && !strcmp(st, r->status_json)) {
		free(st);
		return 0;
	}
	if ((err = gw_msg_parse(gw_msg_topic(m), json, strlen(json), &copy)) < 0) {
		free(st);
		return err;
	}
	gw_msg_free(r->status);
	r->status = copy;
	free(r->status_json);
	r->status_json = st;
	/* Alerts firing at the daemon: periods for those not seen firing;
	 * and a period still open here whose alert the daemon no longer
	 * holds lost its resolution in a gap: closed at the latest step. */
	na = gw_msg_get_count(m, "status.alerts");
	for (int i = 0; i < na; i++) {
		char p[64];

		snprintf(p, sizeof(p), "status.alerts.%d", i);
		period_from(r, m, p, -1, true);
	}
	for (size_t k = 0; na >= 0 && k < r->nalerts; k++) {
		struct period *per = &r->alerts[k];
		bool held = false;

		for (int i = 0; per->firing && i < na && !held; i++) {
			char p[64];
			const char *fp;

			snprintf(p, sizeof(p), "status.alerts.%d.fingerprint", i);
			fp = gw_msg_get_string(m, p);
			held = fp && !strcmp(fp, per->fingerprint);
		}
		if (per->firing && !held) {
			per->firing = false;
			per->to_step = r->nrows ? r->rows[r->nrows - 1].step : -1;
		}
	}
	if (events) {
		event_head(events, "status", d, r);
		fprintf(events, ",\"status\":%s,\"alerts\":[", st);
		for (size_t i = 0; i < r->nalerts; i++) {
			if (i)
				fputc(',', events);
			period_json(&r->alerts[i], events);
		}
		fputs("]}\n\n", events);
	}
	return 0;
}

static int apply_alert(struct run *r, size_t d, const struct gw_msg *m, FILE *events)
{
	double stepd = -1;
	int n = gw_msg_get_count(m, "alerts");

	gw_msg_get_number(m, "step", &stepd);
	for (int i = 0; i < n; i++) {
		char p[64];
		struct period *per;

		snprintf(p, sizeof(p), "alerts.%d", i);
		per = period_from(r, m, p, (int64_t)stepd, false);
		if (per && events) {
			event_head(events, "alert", d, r);
			fputs(",\"alert\":", events);
			period_json(per, events);
			fputs("}\n\n", events);
		}
	}
	return 0;
}

static int keep_text(char **slot, const struct gw_msg *m)
{
	char *s = strdup(gw_msg_json(m));

	if (!s)
		return -ENOMEM;
	free(*slot);
	*slot = s;
	return 0;
}

int board_apply(struct board *b, const struct gw_msg *m, FILE *events)
{
	size_t d = gw_msg_daemon(m);
	const char *type = gw_msg_type(m);
	struct run *r;

	if (d >= b->n)
		return 0;
	r = &b->runs[d];
	if (gw_msg_run(m)[0])
		snprintf(r->run, sizeof(r->run), "%s", gw_msg_run(m));
	if (gw_msg_epoch(m)[0])
		snprintf(r->epoch, sizeof(r->epoch), "%s", gw_msg_epoch(m));
	if (!strcmp(type, "metrics"))
		return apply_result(b, r, d, m, events);
	if (!strcmp(type, "status") || !strcmp(type, "heartbeat"))
		return apply_status(r, d, m, events);
	if (!strcmp(type, "alert"))
		return apply_alert(r, d, m, events);
	if (!strcmp(type, "progress")) {
		if (keep_text(&r->progress_json, m) < 0)
			return -ENOMEM;
		if (events) {
			event_head(events, "progress", d, r);
			fprintf(events, ",\"progress\":%s}\n\n", r->progress_json);
		}
		return 0;
	}
	if (!strcmp(type, "error")) {
		if (keep_text(&r->errors[r->nerrors % ERRORS_KEPT], m) < 0)
			return -ENOMEM;
		if (events) {
			event_head(events, "daemon_error", d, r);
			fprintf(events, ",\"error\":%s}\n\n",
				r->errors[r->nerrors % ERRORS_KEPT]);
		}
		r->nerrors++;
		return 0;
	}
	if (!strcmp(type, "resync") && events) {
		const char *reason = gw_msg_get_string(m, "reason");

		event_head(events, "resync", d, r);
		fputs(",\"reason\":", events);
		emit_json_str(events, reason ? reason : "");
		fputs("}\n\n", events);
	}
	return 0;
}

/* ---- memorized columns ------------------------------------------------------------------ */

int board_memo_column(const struct board *b, size_t daemon, size_t i, const char **ret_group,
		      const char **ret_metric)
{
	const struct run *r;

	if (daemon >= b->n)
		return -ERANGE;
	r = &b->runs[daemon];
	for (size_t c = 0; c < r->ncols; c++)
		if (r->cols[c].memo && i-- == 0) {
			*ret_group = r->cols[c].group;
			*ret_metric = r->cols[c].metric;
			return 0;
		}
	return -ERANGE;
}

int board_apply_history(struct board *b, size_t daemon, const struct gw_history *h,
			FILE *events)
{
	char name[PATH_MAX_LEN];
	struct run *r;
	size_t col = SIZE_MAX, changed = 0;

	if (daemon >= b->n)
		return 0;
	r = &b->runs[daemon];
	snprintf(name, sizeof(name), "groups.%s.%s", gw_history_group(h), gw_history_metric(h));
	for (size_t c = 0; c < r->ncols; c++)
		if (!strcmp(r->cols[c].name, name))
			col = c;
	if (col == SIZE_MAX)
		return 0;
	for (size_t i = 0; i < gw_history_count(h); i++) {
		int64_t step;
		double v = NAN, old;
		bool found;
		int64_t at;
		struct row *w;

		if (gw_history_point(h, i, &step, &v) == -ERANGE)
			break;
		at = row_find(r, step, &found);
		if (!found)
			continue;
		w = &r->rows[at];
		old = row_value(w, col);
		if (old == v || (isnan(old) && isnan(v)))
			continue;
		if (col >= w->nv) {
			double *p = realloc(w->v, (col + 1) * sizeof(double));

			if (!p)
				return -ENOMEM;
			for (size_t k = w->nv; k <= col; k++)
				p[k] = NAN;
			w->v = p;
			w->nv = col + 1;
		}
		w->v[col] = v;
		free(w->text);
		w->text = NULL;
		if (events) {
			if (changed++ == 0) {
				event_head(events, "memo", daemon, r);
				fputs(",\"column\":", events);
				emit_json_str(events, name);
				fputs(",\"points\":[", events);
			} else {
				fputc(',', events);
			}
			fprintf(events, "[%lld,", (long long)step);
			emit_json_num(events, v);
			fputc(']', events);
		}
	}
	if (changed && events)
		fputs("]}\n\n", events);
	return 0;
}

/* ---- the page's series ------------------------------------------------------------------- */

static const char *state_name(enum gw_daemon_state s)
{
	switch (s) {
	case GW_DAEMON_SYNCING:
		return "syncing";
	case GW_DAEMON_LIVE:
		return "live";
	case GW_DAEMON_FAILED:
		return "failed";
	}
	return "unknown";
}

static void run_json(struct run *r, size_t d, FILE *f)
{
	fprintf(f, "{\"daemon\":%zu,\"endpoint\":", d);
	emit_json_str(f, r->endpoint);
	fputs(",\"run\":", f);
	emit_json_str(f, r->run);
	fputs(",\"epoch\":", f);
	emit_json_str(f, r->epoch);
	fprintf(f, ",\"state\":\"%s\",\"received\":%llu,\"gaps\":%llu,\"restarts\":%llu,"
		   "\"malformed\":%llu,\"silent_ms\":%lld",
		state_name(r->info.state), (unsigned long long)r->info.received,
		(unsigned long long)r->info.gaps, (unsigned long long)r->info.restarts,
		(unsigned long long)r->info.malformed, (long long)r->info.silent_ms);
	fprintf(f, ",\"status\":%s,\"progress\":%s,\"alerts\":[",
		r->status_json ? r->status_json : "null",
		r->progress_json ? r->progress_json : "null");
	for (size_t i = 0; i < r->nalerts; i++) {
		if (i)
			fputc(',', f);
		period_json(&r->alerts[i], f);
	}
	fputs("],\"errors\":[", f);
	for (size_t i = 0, k = 0; i < ERRORS_KEPT; i++) {
		/* Oldest first. */
		const char *e = r->errors[(r->nerrors + i) % ERRORS_KEPT];

		if (e)
			fprintf(f, "%s%s", k++ ? "," : "", e);
	}
	fputs("],\"columns\":[", f);
	for (size_t c = 0; c < r->ncols; c++) {
		if (c)
			fputc(',', f);
		emit_json_str(f, r->cols[c].name);
	}
	/* Rows, each [step, time, value...]: formatting a number exactly is
	 * most of the cost, so each row's text is kept until it changes. */
	fputs("],\"rows\":[", f);
	for (size_t i = 0; i < r->nrows; i++) {
		struct row *w = &r->rows[i];

		if (i)
			fputc(',', f);
		if (!w->text) {
			FILE *rf = open_memstream(&w->text, &w->text_len);

			if (rf) {
				fprintf(rf, "[%lld,", (long long)w->step);
				emit_json_num(rf, w->time);
				for (size_t c = 0; c < w->nv; c++) {
					fputc(',', rf);
					emit_json_num(rf, w->v[c]);
				}
				fputc(']', rf);
				if (fclose(rf) != 0) {
					free(w->text);
					w->text = NULL;
				}
			}
			if (!w->text) {
				fputs("[]", f); /* out of memory: the fclose of f fails too */
				continue;
			}
		}
		fwrite(w->text, 1, w->text_len, f);
	}
	fputs("]}", f);
}

void board_series_json(struct board *b, size_t daemon, FILE *f)
{
	bool first = true;

	fputc('[', f);
	for (size_t d = 0; d < b->n; d++) {
		if (daemon != SIZE_MAX && d != daemon)
			continue;
		if (!first)
			fputc(',', f);
		first = false;
		run_json(&b->runs[d], d, f);
	}
	fputc(']', f);
}

/* ---- Prometheus ---------------------------------------------------------------------------- */

/* HELP lines of the values the daemon documents (SPEC §4); others get a
 * line naming their path. */
static const struct {
	const char *metric, *help;
} helps[] = {
	{ "pathway_distance", "Mean pairwise edit distance of the group's routing pathways "
			      "(lower: more shared routing)" },
	{ "pathway_distance_stderr", "Standard error of the pathway distance" },
	{ "pathway_consistency", "Mean pathway consistency C_i of the group's samples" },
	{ "adjacent_cosine", "Mean cosine between routing embeddings of adjacent MoE layers" },
	{ "loss", "Mean next-token loss of the group's samples, nats" },
	{ "n_samples", "Samples in the group" },
	{ "n_pairs", "Sample pairs the pathway distance was computed over" },
	{ "n_undefined", "Samples whose consistency is undefined" },
	{ "imbalance", "Expert load imbalance, max over mean" },
	{ "max_imbalance", "Largest per-layer expert load imbalance" },
	{ "load_entropy", "Normalized entropy of the expert load" },
	{ "dead_experts", "Experts that received no top-k assignment" },
	{ "router_entropy", "Mean router entropy over tokens" },
	{ "z_loss", "Mean router z-loss, logsumexp(z)^2" },
	{ "churn", "Share of token-layer top-k sets changed since the previous checkpoint" },
};

static void help_line(FILE *f, const struct column *c)
{
	const char *key = c->metric, *scope;

	if (c->kind == COL_GROUP && !strncmp(key, "memorized.", 10))
		key += 10;
	scope = c->kind == COL_GROUP ? (c->memo ? " (memorized subset), latest step" :
					", latest step") :
		c->kind == COL_LAYER ? " per MoE layer, latest step" : " over all MoE layers, "
									"latest step";
	fprintf(f, "# HELP %s ", c->family);
	for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++)
		if (!strcmp(helps[i].metric, key)) {
			fprintf(f, "%s%s\n", helps[i].help, scope);
			return;
		}
	fprintf(f, "The result's %s%s\n", c->name, scope);
}

static void labels_run(FILE *f, const struct run *r)
{
	fputs("{run=\"", f);
	emit_prom_label(f, r->run[0] ? r->run : r->endpoint);
	fputc('"', f);
}

static void prom_columns(const struct board *b, FILE *f)
{
	/* Families in order of first appearance, each written whole. */
	for (size_t d = 0; d < b->n; d++)
		for (size_t c = 0; c < b->runs[d].ncols; c++) {
			const struct column *col = &b->runs[d].cols[c];
			bool seen = false;

			for (size_t d2 = 0; d2 <= d && !seen; d2++)
				for (size_t c2 = 0; c2 < (d2 == d ? c : b->runs[d2].ncols); c2++)
					if (!strcmp(b->runs[d2].cols[c2].family, col->family)) {
						seen = true;
						break;
					}
			if (seen)
				continue;
			help_line(f, col);
			fprintf(f, "# TYPE %s gauge\n", col->family);
			for (size_t d2 = d; d2 < b->n; d2++) {
				const struct run *r = &b->runs[d2];

				if (!r->nrows)
					continue;
				for (size_t c2 = 0; c2 < r->ncols; c2++) {
					const struct column *k = &r->cols[c2];
					double v = row_value(&r->rows[r->nrows - 1], c2);

					if (strcmp(k->family, col->family) || isnan(v))
						continue;
					fputs(k->family, f);
					labels_run(f, r);
					if (k->kind != COL_OVERALL) {
						fputs(k->kind == COL_GROUP ? ",group=\"" : ",layer=\"",
						      f);
						emit_prom_label(f, k->group);
						fputc('"', f);
					}
					fputs("} ", f);
					emit_prom_num(f, v);
					fputc('\n', f);
				}
			}
		}
}

static void prom_load(const struct board *b, FILE *f)
{
	bool head = false;

	for (size_t d = 0; d < b->n; d++) {
		const struct run *r = &b->runs[d];
		int nl = r->latest ? gw_msg_get_count(r->latest, "health.layers") : 0;

		for (int l = 0; l < nl; l++) {
			char p[96];
			int ne;

			snprintf(p, sizeof(p), "health.layers.%d.load", l);
			ne = gw_msg_get_count(r->latest, p);
			for (int e = 0; e < ne; e++) {
				char q[128];
				double v;

				snprintf(q, sizeof(q), "%s.%d", p, e);
				if (gw_msg_get_number(r->latest, q, &v) < 0)
					continue;
				if (!head) {
					fputs("# HELP grokwatch_expert_load Share of the layer's top-k "
					      "assignments that went to the expert, latest step\n"
					      "# TYPE grokwatch_expert_load gauge\n", f);
					head = true;
				}
				fputs("grokwatch_expert_load", f);
				labels_run(f, r);
				fprintf(f, ",layer=\"%d\",expert=\"%d\"} ", l, e);
				emit_prom_num(f, v);
				fputc('\n', f);
			}
		}
	}
}

static void prom_run_gauge(const struct board *b, FILE *f, const char *name, const char *type,
			   const char *help, double (*get)(const struct run *, bool *))
{
	bool head = false;

	for (size_t d = 0; d < b->n; d++) {
		const struct run *r = &b->runs[d];
		bool ok = true;
		double v = get(r, &ok);

		if (!ok)
			continue;
		if (!head) {
			fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
			head = true;
		}
		fputs(name, f);
		labels_run(f, r);
		fputs(",endpoint=\"", f);
		emit_prom_label(f, r->endpoint);
		fputs("\"} ", f);
		emit_prom_num(f, v);
		fputc('\n', f);
	}
}

static double get_step(const struct run *r, bool *ok)
{
	*ok = r->nrows > 0;
	return *ok ? (double)r->rows[r->nrows - 1].step : 0;
}

static double get_results(const struct run *r, bool *ok)
{
	*ok = true;
	return (double)r->nrows;
}

static double get_received(const struct run *r, bool *ok)
{
	*ok = true;
	return (double)r->info.received;
}

static double get_gaps(const struct run *r, bool *ok)
{
	*ok = true;
	return (double)r->info.gaps;
}

static double get_restarts(const struct run *r, bool *ok)
{
	*ok = true;
	return (double)r->info.restarts;
}

static double get_malformed(const struct run *r, bool *ok)
{
	*ok = true;
	return (double)r->info.malformed;
}

static double get_live(const struct run *r, bool *ok)
{
	*ok = true;
	return r->info.state == GW_DAEMON_LIVE;
}

static double status_number(const struct run *r, const char *path, bool *ok)
{
	double v = 0;

	*ok = r->status && gw_msg_get_number(r->status, path, &v) == 0;
	return v;
}

static double get_pending(const struct run *r, bool *ok)
{
	return status_number(r, "status.pending", ok);
}

static double get_queue(const struct run *r, bool *ok)
{
	return status_number(r, "status.queue", ok);
}

static double get_failures(const struct run *r, bool *ok)
{
	return status_number(r, "status.failures", ok);
}

static void prom_alerts(const struct board *b, FILE *f)
{
	bool head = false;

	for (size_t d = 0; d < b->n; d++) {
		const struct run *r = &b->runs[d];

		for (size_t i = 0; i < r->nalerts; i++) {
			const struct period *p = &r->alerts[i];

			if (!p->firing)
				continue;
			if (!head) {
				fputs("# HELP grokwatch_alerts Alerts firing at the daemon, as "
				      "Prometheus's ALERTS series\n# TYPE grokwatch_alerts gauge\n",
				      f);
				head = true;
			}
			fputs("grokwatch_alerts{alertname=\"", f);
			emit_prom_label(f, p->alertname);
			fputs("\",alertstate=\"firing\",group=\"", f);
			emit_prom_label(f, p->group);
			fputs("\",metric=\"", f);
			emit_prom_label(f, p->metric);
			fputs("\",run=\"", f);
			emit_prom_label(f, r->run[0] ? r->run : r->endpoint);
			fputs("\"} 1\n", f);
		}
	}
}

void board_prometheus(const struct board *b, FILE *f)
{
	prom_run_gauge(b, f, "grokwatch_step", "gauge", "Step of the run's latest result",
		       get_step);
	prom_run_gauge(b, f, "grokwatch_results", "gauge", "Results the bridge holds for the run",
		       get_results);
	prom_columns(b, f);
	prom_load(b, f);
	prom_alerts(b, f);
	prom_run_gauge(b, f, "grokwatch_daemon_pending", "gauge",
		       "Checkpoints found and not yet computed, from the daemon's status",
		       get_pending);
	prom_run_gauge(b, f, "grokwatch_daemon_queue", "gauge",
		       "Checkpoints queued for computing, from the daemon's status", get_queue);
	prom_run_gauge(b, f, "grokwatch_daemon_failures", "gauge",
		       "Checkpoints recorded as failed, from the daemon's status", get_failures);
	prom_run_gauge(b, f, "grokwatch_serve_daemon_live", "gauge",
		       "1 while the bridge follows the daemon's stream caught up, else 0",
		       get_live);
	prom_run_gauge(b, f, "grokwatch_serve_messages_total", "counter",
		       "Messages the bridge received from the daemon", get_received);
	prom_run_gauge(b, f, "grokwatch_serve_gaps_total", "counter",
		       "Resyncs after a gap in the daemon's seq", get_gaps);
	prom_run_gauge(b, f, "grokwatch_serve_restarts_total", "counter",
		       "Resyncs after the daemon restarted (a new epoch)", get_restarts);
	prom_run_gauge(b, f, "grokwatch_serve_malformed_total", "counter",
		       "Messages from the daemon dropped as malformed", get_malformed);
}
