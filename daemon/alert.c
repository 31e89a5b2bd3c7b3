/*
 * alert.c — the alert rules and lifecycle declared in alert.h.
 *
 * In order: small helpers (a string builder, RFC 3339 time, the label
 * fingerprint); the detectors built from the options; the walk of a
 * group along the series (pstate_feed is torch's step(), gwalk_run feeds
 * every detector of a group checkpoint by checkpoint and follows the
 * grokking phases), kept between evaluations; the conditions of one
 * evaluation (conds: every alert that could fire, active or not, with its
 * text); the events; the firing set (apply, restore); and evaluate, which
 * diffs the conditions against it.
 */
#include "alert.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "engine/hash.h"
#include "engine/json.h"

/* ---- helpers -------------------------------------------------------------------- */

struct sb {
	char *s;
	size_t n, cap;
};

static void sb_addf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_addf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int w;

	va_start(ap, fmt);
	w = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	GW_BUG_ON(w < 0);
	if (b->n + (size_t)w + 1 > b->cap) {
		b->cap = (b->n + (size_t)w + 1) * 2;
		b->s = gw_realloc(b->s, b->cap);
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
	va_end(ap);
	b->n += (size_t)w;
}

/* The builder's text, handed over (never NULL). */
static char *sb_take(struct sb *b)
{
	char *s = b->s ? b->s : gw_strdup("");

	b->s = NULL;
	b->n = b->cap = 0;
	return s;
}

/* RFC 3339 UTC with milliseconds: "2026-11-30T07:12:28.123Z". */
static void format_time(double t, char out[32])
{
	time_t secs = (time_t)floor(t);
	long ms = lround((t - (double)secs) * 1000.0);
	struct tm tm;
	char date[24];

	if (ms > 999)
		ms = 999;
	if (ms < 0)
		ms = 0;
	if (!gmtime_r(&secs, &tm) || !strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm)) {
		snprintf(out, 32, "%s", "1970-01-01T00:00:00.000Z");
		return;
	}
	snprintf(out, 32, "%.19s.%03ldZ", date, ms);
}

void alert_fingerprint(const char *alertname, const char *run, const char *group,
		       const char *metric, char out[17])
{
	/* Label names in byte order, as Prometheus's labelSetToFingerprint. */
	const char *kv[4][2] = {
		{ "alertname", alertname }, { "group", group }, { "metric", metric }, { "run", run },
	};
	uint64_t h = GW_FNV_BASIS;

	/* Each name and value followed by the byte 0xff, which UTF-8 lacks. */
	for (int i = 0; i < 4; i++)
		for (int k = 0; k < 2; k++)
			h = gw_fnv1a(gw_fnv1a(h, kv[i][k], strlen(kv[i][k])), "\xff", 1);
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* ---- detectors -------------------------------------------------------------------- */

struct detector {
	char *metric;
	char **segs; /* the metric path split at its dots */
	char *se_last; /* threshold_mode se: the last segment + "_se" (else NULL) */
	int nsegs;
	int mode, thr_mode;
	double threshold;
	int64_t patience, cooldown, min_checkpoints;
};

/* A detector's state after the checkpoints 0 .. i of the series: torch's
 * (num_bad, cooldown_counter, best) and what the alerts and their text
 * need. */
struct pstate {
	int64_t num_bad, cooldown_counter;
	bool raw;            /* on a plateau, before min_checkpoints */
	int64_t count;       /* values seen */
	bool plateau;        /* on a plateau, and judged (count >= min_checkpoints) */
	double value;        /* the latest value (NaN: none yet) */
	int64_t value_i;     /* its checkpoint */
	double best;
	double best_se;      /* its standard error (threshold_mode se) */
	int64_t best_i;      /* checkpoint of the best value (-1: none) */
	int64_t since_best;  /* values seen after the best */
	int64_t start_i;     /* checkpoint where the current plateau started (-1) */
};

/* One value of the distance in the net-fall window. */
struct dval {
	double x, se;
	int64_t i; /* its checkpoint */
};

/* One judged group's walk, kept between evaluations: the state after
 * checkpoints 0 .. n-1, so that a result with a new latest step costs one
 * step of the walk, not the whole series. */
struct gwalk {
	char *group;
	size_t n;               /* checkpoints walked */
	int64_t last_step;      /* step of checkpoint n-1 */
	struct pstate loss, dist;
	struct pstate *pl;      /* [nplateaus] */
	struct dval *ring;      /* the distance's last patience + 1 values, oldest overwritten */
	int64_t nring;          /* values pushed into it */
	bool grok_last;         /* grokking at checkpoint n-1 */
	int64_t run_start;      /* start of the grokking run that includes n-1 (-1) */
	int64_t g_start, g_end; /* the latest grokking phase (-1: none yet) */
	bool used;              /* judged in the current evaluation */
};

/* The same for routing_collapse: the latest checkpoint with each number. */
struct cwalk {
	size_t n;
	int64_t last_step;
	int64_t found[2]; /* dead_experts, max_imbalance (-1: none) */
};

struct firing {
	char fp[17];
	char *alertname, *run, *group, *metric, *starts_at, *summary, *description;
};

struct alerts {
	bool enabled;
	char **groups;
	int ngroups;
	struct detector loss, dist;
	struct detector *plateaus;
	int nplateaus;
	int64_t dead_experts;
	double max_imbalance;
	struct firing *f;
	size_t nf, capf;
	struct gwalk *walks; /* per judged group, kept between evaluations */
	size_t nwalks;
	struct cwalk collapse;
};

static void detector_init(struct detector *d, const struct alert_detector_opts *p)
{
	const char *s = p->metric;

	d->metric = gw_strdup(s);
	d->nsegs = 1;
	for (const char *c = s; *c; c++)
		d->nsegs += *c == '.';
	d->segs = gw_calloc((size_t)d->nsegs, sizeof(char *));
	for (int i = 0; i < d->nsegs; i++) {
		const char *dot = strchr(s, '.');
		size_t len = dot ? (size_t)(dot - s) : strlen(s);

		d->segs[i] = gw_malloc(len + 1);
		memcpy(d->segs[i], s, len);
		d->segs[i][len] = 0;
		s += len + (dot ? 1 : 0);
	}
	if (p->threshold_mode == ALERT_THRESHOLD_SE) {
		const char *last = d->segs[d->nsegs - 1];
		size_t len = strlen(last);

		d->se_last = gw_malloc(len + 4);
		memcpy(d->se_last, last, len);
		memcpy(d->se_last + len, "_se", 4);
	}
	d->mode = p->mode;
	d->thr_mode = p->threshold_mode;
	d->threshold = p->threshold;
	d->patience = p->patience;
	d->cooldown = p->cooldown;
	d->min_checkpoints = p->min_checkpoints;
}

static void detector_release(struct detector *d)
{
	for (int i = 0; i < d->nsegs; i++)
		free(d->segs[i]);
	free(d->segs);
	free(d->se_last);
	free(d->metric);
}

static void firing_release(struct firing *f)
{
	free(f->alertname);
	free(f->run);
	free(f->group);
	free(f->metric);
	free(f->starts_at);
	free(f->summary);
	free(f->description);
}

struct alerts *alerts_new(const struct alert_opts *o)
{
	struct alerts *a = gw_calloc(1, sizeof(*a));

	GW_BUG_ON(o->loss.mode != ALERT_MODE_MIN || o->distance.mode != ALERT_MODE_MIN);
	a->enabled = o->enabled;
	a->ngroups = o->n_groups;
	a->groups = gw_calloc((size_t)a->ngroups + 1, sizeof(char *));
	for (int i = 0; i < a->ngroups; i++)
		a->groups[i] = gw_strdup(o->groups[i]);
	detector_init(&a->loss, &o->loss);
	detector_init(&a->dist, &o->distance);
	a->nplateaus = o->n_plateaus;
	a->plateaus = gw_calloc((size_t)a->nplateaus + 1, sizeof(struct detector));
	for (int i = 0; i < a->nplateaus; i++)
		detector_init(&a->plateaus[i], &o->plateaus[i]);
	a->dead_experts = o->dead_experts;
	a->max_imbalance = o->max_imbalance;
	return a;
}

void alerts_free(struct alerts *a)
{
	if (!a)
		return;
	for (int i = 0; i < a->ngroups; i++)
		free(a->groups[i]);
	free(a->groups);
	detector_release(&a->loss);
	detector_release(&a->dist);
	for (int i = 0; i < a->nplateaus; i++)
		detector_release(&a->plateaus[i]);
	free(a->plateaus);
	for (size_t i = 0; i < a->nf; i++)
		firing_release(&a->f[i]);
	free(a->f);
	for (size_t i = 0; i < a->nwalks; i++) {
		free(a->walks[i].group);
		free(a->walks[i].pl);
		free(a->walks[i].ring);
	}
	free(a->walks);
	free(a);
}

/* ---- the plateau walk ------------------------------------------------------------- */

/* A group's object (result.groups[group]) followed along d's path: the
 * number, or NaN.  In threshold_mode se, *ret_se is the "<name>_se" beside
 * it, and the value is NaN (skipped) when that is not a finite number. */
static double metric_value_se(const cJSON *gobj, const struct detector *d, double *ret_se)
{
	const cJSON *n = gobj, *parent = NULL, *e;

	*ret_se = NAN;
	for (int i = 0; n && i < d->nsegs; i++) {
		parent = n;
		n = cJSON_GetObjectItemCaseSensitive(n, d->segs[i]);
	}
	if (!cJSON_IsNumber(n) || !isfinite(n->valuedouble))
		return NAN;
	if (!d->se_last)
		return n->valuedouble;
	e = cJSON_GetObjectItemCaseSensitive(parent, d->se_last);
	if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || e->valuedouble < 0)
		return NAN;
	*ret_se = e->valuedouble;
	return n->valuedouble;
}

static double metric_value(const cJSON *gobj, const struct detector *d)
{
	double se;

	return metric_value_se(gobj, d, &se);
}

/* Is x (standard error se) better than best (best_se)?  alert.h's rule. */
static bool is_better(const struct detector *d, double x, double se, double best, double best_se)
{
	double t = d->threshold;

	if (d->thr_mode == ALERT_THRESHOLD_SE)
		t *= isfinite(best) ? sqrt(se * se + best_se * best_se) : 0;
	if (d->mode == ALERT_MODE_MIN)
		return d->thr_mode == ALERT_THRESHOLD_REL ? x < best * (1.0 - t) : x < best - t;
	return d->thr_mode == ALERT_THRESHOLD_REL ? x > best * (1.0 + t) : x > best + t;
}

static void pstate_init(struct pstate *st, const struct detector *d)
{
	memset(st, 0, sizeof(*st));
	st->value = NAN;
	st->value_i = st->best_i = st->start_i = -1;
	st->best = d->mode == ALERT_MODE_MIN ? INFINITY : -INFINITY;
	st->best_se = 0;
}

/* One checkpoint (index i) of the walk: torch's step(x) when the value is
 * there (alert.h has the rule), nothing when it is NaN. */
static void pstate_feed(struct pstate *st, const struct detector *d, double x, double se,
			int64_t i)
{
	bool better, reduce = false;

	if (isnan(x))
		return;
	better = is_better(d, x, se, st->best, st->best_se);
	st->count++;
	st->value = x;
	st->value_i = i;
	if (better) {
		st->best = x;
		st->best_se = se;
		st->best_i = i;
		st->since_best = 0;
		st->num_bad = 0;
	} else {
		st->since_best++;
		st->num_bad++;
	}
	if (st->cooldown_counter > 0) {
		st->cooldown_counter--;
		st->num_bad = 0;
	}
	if (st->num_bad > d->patience) {
		reduce = true;
		st->cooldown_counter = d->cooldown;
		st->num_bad = 0;
	}
	if (reduce && !st->raw)
		st->start_i = i;
	if (reduce)
		st->raw = true;
	else if (better)
		st->raw = false;
	if (!st->raw)
		st->start_i = -1;
	st->plateau = st->raw && st->count >= d->min_checkpoints;
}

static void gwalk_reset(struct gwalk *w, const struct alerts *a)
{
	w->n = 0;
	w->last_step = -1;
	pstate_init(&w->loss, &a->loss);
	pstate_init(&w->dist, &a->dist);
	w->nring = 0;
	for (int k = 0; k < a->nplateaus; k++)
		pstate_init(&w->pl[k], &a->plateaus[k]);
	w->grok_last = false;
	w->run_start = w->g_start = w->g_end = -1;
}

/* May the walk go on from where it stopped?  Only if the checkpoints it
 * walked are still the first n of the series (a late older step shifts
 * them) and the caller says none of them changed. */
static bool walk_valid(size_t n, int64_t last_step, const struct series *s, int64_t changed_from)
{
	return n > 0 && n <= series_count(s) && series_step_at(s, n - 1) == last_step &&
	       changed_from > last_step;
}

/* The distance's net fall (alert.h): is its latest value better, by the
 * detector's threshold, than the value `patience` values earlier?  Those
 * two values into *ret_new and *ret_old (when not NULL), if there are
 * patience + 1 values yet. */
static bool net_fall(const struct gwalk *w, const struct detector *d, const struct dval **ret_new,
		     const struct dval **ret_old)
{
	int64_t k = d->patience + 1;
	const struct dval *nw, *old;

	if (w->nring < k)
		return false;
	nw = &w->ring[(w->nring - 1) % k];
	old = &w->ring[(w->nring - k) % k];
	if (ret_new)
		*ret_new = nw;
	if (ret_old)
		*ret_old = old;
	return is_better(d, nw->x, nw->se, old->x, old->se);
}

/* Walk `group` on to the end of the series. */
static void gwalk_run(struct gwalk *w, const struct alerts *a, const struct series *s,
		      int64_t changed_from)
{
	size_t n = series_count(s);

	if (!walk_valid(w->n, w->last_step, s, changed_from))
		gwalk_reset(w, a);
	for (size_t i = w->n; i < n; i++) {
		const cJSON *g = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(series_at(s, i), "groups"), w->group);
		bool grok;
		double x, se;

		x = metric_value_se(g, &a->loss, &se);
		pstate_feed(&w->loss, &a->loss, x, se, (int64_t)i);
		x = metric_value_se(g, &a->dist, &se);
		pstate_feed(&w->dist, &a->dist, x, se, (int64_t)i);
		if (!isnan(x))
			w->ring[w->nring++ % (a->dist.patience + 1)] =
				(struct dval){ .x = x, .se = se, .i = (int64_t)i };
		for (int k = 0; k < a->nplateaus; k++) {
			x = metric_value_se(g, &a->plateaus[k], &se);
			pstate_feed(&w->pl[k], &a->plateaus[k], x, se, (int64_t)i);
		}
		grok = w->loss.plateau && w->dist.count >= a->dist.min_checkpoints &&
		       net_fall(w, &a->dist, NULL, NULL);
		if (grok) {
			if (w->run_start < 0)
				w->run_start = (int64_t)i;
			w->g_start = w->run_start;
			w->g_end = (int64_t)i;
		} else {
			w->run_start = -1;
		}
		w->grok_last = grok;
	}
	w->n = n;
	w->last_step = n ? series_step_at(s, n - 1) : -1;
}

/* ---- conditions -------------------------------------------------------------------- */

/* An alert that could fire at the latest step, with its text. */
struct cond {
	const char *alertname; /* static */
	char *group, *metric;
	bool active;
	char *summary, *description;
};

struct conds {
	struct cond *v;
	size_t n, cap;
};

static void conds_add(struct conds *c, const char *alertname, const char *group,
		      const char *metric, bool active, char *summary, char *description)
{
	struct cond *x;

	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 16;
		c->v = gw_realloc(c->v, c->cap * sizeof(*c->v));
	}
	x = &c->v[c->n++];
	x->alertname = alertname;
	x->group = gw_strdup(group);
	x->metric = gw_strdup(metric);
	x->active = active;
	x->summary = summary;
	x->description = description;
}

static void conds_release(struct conds *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].group);
		free(c->v[i].metric);
		free(c->v[i].summary);
		free(c->v[i].description);
	}
	free(c->v);
}

static const struct cond *conds_find(const struct conds *c, const char *alertname,
				     const char *group, const char *metric)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->v[i].alertname, alertname) && !strcmp(c->v[i].group, group) &&
		    !strcmp(c->v[i].metric, metric))
			return &c->v[i];
	return NULL;
}

static long long step_of(const struct series *s, int64_t i)
{
	return (long long)series_step_at(s, (size_t)i);
}

static const char *const threshold_mode_name[] = {
	[ALERT_THRESHOLD_REL] = "rel", [ALERT_THRESHOLD_ABS] = "abs", [ALERT_THRESHOLD_SE] = "se",
};

/* The numbers of one detector's state, e.g. "loss 2.33 at step 1200, best
 * 2.31 at step 700, 5 checkpoints since without an improvement beyond 0.01
 * rel (patience 3, cooldown 0); on a plateau since step 1100". */
static void describe(struct sb *b, const struct detector *d, const struct pstate *st,
		     const struct series *s)
{
	if (st->count == 0) {
		sb_addf(b, "%s: no value yet", d->metric);
		return;
	}
	sb_addf(b, "%s %.6g at step %lld, best %.6g at step %lld, %lld checkpoints since without "
		"an improvement beyond %g %s (patience %lld, cooldown %lld); ", d->metric, st->value,
		step_of(s, st->value_i), st->best, step_of(s, st->best_i), (long long)st->since_best,
		d->threshold, threshold_mode_name[d->thr_mode],
		(long long)d->patience, (long long)d->cooldown);
	if (st->count < d->min_checkpoints)
		sb_addf(b, "not judged before %lld checkpoints (%lld so far)",
			(long long)d->min_checkpoints, (long long)st->count);
	else if (st->plateau)
		sb_addf(b, "on a plateau since step %lld", step_of(s, st->start_i));
	else
		sb_addf(b, "not on a plateau");
}

static char *plateau_summary(const struct detector *d, const char *group)
{
	struct sb b = { 0 };

	sb_addf(&b, "%s of group %s is on a plateau", d->metric, group);
	return sb_take(&b);
}

/* The net fall behind grokking: "; net fall over 2 checkpoints: 15 at
 * step 600 against 17 at step 400 (needs beyond 0.01 rel)". */
static void describe_fall(struct sb *b, const struct gwalk *w, const struct detector *d,
			  const struct series *s)
{
	const struct dval *nw = NULL, *old = NULL;
	bool fall;

	if (w->nring < d->patience + 1) {
		sb_addf(b, "; no net fall judged before %lld values (%lld so far)",
			(long long)d->patience + 1, (long long)w->nring);
		return;
	}
	fall = net_fall(w, d, &nw, &old);
	sb_addf(b, "; %s over %lld checkpoints: %.6g at step %lld against %.6g at step %lld "
		"(a fall beyond %g %s counts)", fall ? "net fall" : "no net fall",
		(long long)d->patience, nw->x, step_of(s, nw->i), old->x, step_of(s, old->i),
		d->threshold, threshold_mode_name[d->thr_mode]);
}

/* The group-level conditions from its walk: each plateau detector,
 * grokking and generalization_saturated. */
static void group_conds(const struct alerts *a, const struct series *s, const struct gwalk *w,
			struct conds *out)
{
	const char *group = w->group;
	const struct pstate *L = &w->loss, *D = &w->dist;
	struct sb b = { 0 }, sum = { 0 };

	for (int k = 0; k < a->nplateaus; k++) {
		const struct detector *d = &a->plateaus[k];

		describe(&b, d, &w->pl[k], s);
		conds_add(out, ALERT_PLATEAU, group, d->metric, w->pl[k].plateau,
			  plateau_summary(d, group), sb_take(&b));
	}

	sb_addf(&b, "%s of group %s: ", a->loss.metric, group);
	describe(&b, &a->loss, L, s);
	sb_addf(&b, ". %s: ", a->dist.metric);
	describe(&b, &a->dist, D, s);
	if (L->best_i >= 0) {
		const cJSON *g = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(series_at(s, (size_t)L->best_i), "groups"),
			group);
		double v = metric_value(g, &a->dist);

		if (!isnan(v))
			sb_addf(&b, ", %.6g at step %lld when the loss last improved", v,
				step_of(s, L->best_i));
	}
	describe_fall(&b, w, &a->dist, s);
	sb_addf(&sum, "group %s is grokking: %s on a plateau while %s still falls", group,
		a->loss.metric, a->dist.metric);
	conds_add(out, ALERT_GROKKING, group, a->dist.metric, w->grok_last, sb_take(&sum),
		  sb_take(&b));

	/* Saturation and grokking exclude each other: a net fall at the
	 * latest checkpoint (a spike `patience` values back) is grokking
	 * still, even on a plateau of the best value. */
	describe(&b, &a->dist, D, s);
	if (w->g_end >= 0)
		sb_addf(&b, "; grokking from step %lld to step %lld", step_of(s, w->g_start),
			step_of(s, w->g_end));
	else
		sb_addf(&b, "; no grokking phase before");
	sb_addf(&sum, "group %s: generalization saturated, %s on a plateau after grokking", group,
		a->dist.metric);
	conds_add(out, ALERT_SATURATED, group, a->dist.metric,
		  D->plateau && w->g_end >= 0 && !w->grok_last,
		  sb_take(&sum), sb_take(&b));
}

static double overall_number(const cJSON *result, const char *name)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(result, "health");

	n = cJSON_GetObjectItemCaseSensitive(n, "overall");
	n = cJSON_GetObjectItemCaseSensitive(n, name);
	return cJSON_IsNumber(n) && isfinite(n->valuedouble) ? n->valuedouble : NAN;
}

/* routing_collapse, at the latest result that has the number; only the
 * checkpoints after those walked before are searched (walk_valid). */
static void collapse_conds(struct alerts *a, const struct series *s, int64_t changed_from,
			   struct conds *out)
{
	static const char *const names[2] = { "dead_experts", "max_imbalance" };
	struct cwalk *w = &a->collapse;
	size_t n = series_count(s);

	if (!walk_valid(w->n, w->last_step, s, changed_from)) {
		w->n = 0;
		w->found[0] = w->found[1] = -1;
	}
	for (int k = 0; k < 2; k++)
		for (size_t i = n; i > w->n; i--)
			if (!isnan(overall_number(series_at(s, i - 1), names[k]))) {
				w->found[k] = (int64_t)i - 1;
				break;
			}
	w->n = n;
	w->last_step = n ? series_step_at(s, n - 1) : -1;

	for (int k = 0; k < 2; k++) {
		struct sb sum = { 0 }, desc = { 0 };
		double v = NAN, bound = k == 0 ? (double)a->dead_experts : a->max_imbalance;
		size_t i = (size_t)(w->found[k] + 1);
		bool active;

		if (bound <= 0)
			continue;
		if (i > 0)
			v = overall_number(series_at(s, i - 1), names[k]);
		if (i == 0) {
			sb_addf(&desc, "health.overall.%s: no value yet", names[k]);
			active = false;
		} else {
			double imb = overall_number(series_at(s, i - 1), "imbalance");

			active = k == 0 ? v >= bound : v > bound;
			sb_addf(&desc, "health.overall at step %lld: %s %.6g (%s %.6g), imbalance %.6g",
				(long long)series_step_at(s, i - 1), names[k], v,
				k == 0 ? "alert at" : "alert above", bound, imb);
		}
		if (k == 0)
			sb_addf(&sum, "routing collapse: %.6g dead experts", v);
		else
			sb_addf(&sum, "routing collapse: max imbalance %.6g above %.6g", v, bound);
		conds_add(out, ALERT_COLLAPSE, "all", names[k], active, sb_take(&sum), sb_take(&desc));
	}
}

/* The groups to judge: alert.h "Groups". */
static void judged_groups(const struct alerts *a, const struct series *s, const char ***ret_v,
			  int *ret_n)
{
	const cJSON *groups = cJSON_GetObjectItemCaseSensitive(series_at(s, series_count(s) - 1),
							       "groups");
	const cJSON *g;
	const char **v;
	int n = 0, others = 0;

	if (a->ngroups > 0) {
		v = gw_calloc((size_t)a->ngroups, sizeof(char *));
		for (int i = 0; i < a->ngroups; i++)
			v[i] = a->groups[i];
		*ret_v = v;
		*ret_n = a->ngroups;
		return;
	}
	if (cJSON_IsObject(groups))
		cJSON_ArrayForEach(g, groups)
			if (g->string && strcmp(g->string, "all") != 0)
				others++;
	v = gw_calloc((size_t)cJSON_GetArraySize(groups) + 1, sizeof(char *));
	if (cJSON_IsObject(groups))
		cJSON_ArrayForEach(g, groups)
			if (g->string && (strcmp(g->string, "all") != 0 || others != 1))
				v[n++] = g->string;
	*ret_v = v;
	*ret_n = n;
}

/* ---- events ------------------------------------------------------------------------ */

static void add(cJSON *o, const char *key, cJSON *item)
{
	/* Cannot fail: cJSON allocates through gw_malloc (engine/json.h). */
	cJSON_AddItemToObject(o, key, item);
}

static cJSON *labels_json(const char *alertname, const char *run, const char *group,
			  const char *metric)
{
	cJSON *l = cJSON_CreateObject();

	add(l, "alertname", cJSON_CreateString(alertname));
	add(l, "run", cJSON_CreateString(run));
	add(l, "group", cJSON_CreateString(group));
	add(l, "metric", cJSON_CreateString(metric));
	return l;
}

static cJSON *annotations_json(const char *summary, const char *description)
{
	cJSON *o = cJSON_CreateObject();

	add(o, "summary", cJSON_CreateString(summary));
	add(o, "description", cJSON_CreateString(description));
	return o;
}

static cJSON *alert_json(const char *status, const char *alertname, const char *run,
			 const char *group, const char *metric, const char *fp, const char *summary,
			 const char *description, const char *starts_at, const char *ends_at)
{
	cJSON *al = cJSON_CreateObject();

	add(al, "status", cJSON_CreateString(status));
	add(al, "labels", labels_json(alertname, run, group, metric));
	add(al, "annotations", annotations_json(summary, description));
	add(al, "startsAt", cJSON_CreateString(starts_at));
	add(al, "endsAt", cJSON_CreateString(ends_at));
	add(al, "generatorURL", cJSON_CreateString(""));
	add(al, "fingerprint", cJSON_CreateString(fp));
	return al;
}

static cJSON *event_json(int64_t step, cJSON *alert /* consumed */)
{
	cJSON *e = cJSON_CreateObject(), *arr = cJSON_CreateArray();
	const cJSON *al_labels = cJSON_GetObjectItemCaseSensitive(alert, "labels");
	const cJSON *al_ann = cJSON_GetObjectItemCaseSensitive(alert, "annotations");
	const char *fp = cJSON_GetObjectItemCaseSensitive(alert, "fingerprint")->valuestring;
	const char *status = cJSON_GetObjectItemCaseSensitive(alert, "status")->valuestring;
	char key[32];

	snprintf(key, sizeof(key), "grokwatch:%.16s", fp);
	add(e, "kind", cJSON_CreateString("alert"));
	add(e, "step", cJSON_CreateNumber((double)step));
	add(e, "version", cJSON_CreateString("4"));
	add(e, "groupKey", cJSON_CreateString(key));
	add(e, "truncatedAlerts", cJSON_CreateNumber(0));
	add(e, "status", cJSON_CreateString(status));
	add(e, "receiver", cJSON_CreateString("grokwatch"));
	add(e, "groupLabels", cJSON_CreateObject());
	add(e, "commonLabels", cJSON_Duplicate(al_labels, 1));
	add(e, "commonAnnotations", cJSON_Duplicate(al_ann, 1));
	add(e, "externalURL", cJSON_CreateString(""));
	cJSON_AddItemToArray(arr, alert);
	add(e, "alerts", arr);
	return e;
}

static const char *str_at(const cJSON *o, const char *key)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsString(n) ? n->valuestring : NULL;
}

int alert_event_info(const cJSON *event, struct alert_info *ret, struct gw_err *err)
{
	const cJSON *alerts = cJSON_GetObjectItemCaseSensitive(event, "alerts");
	const cJSON *al = cJSON_GetArrayItem(alerts, 0);
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(al, "labels");
	const cJSON *step = cJSON_GetObjectItemCaseSensitive(event, "step");
	struct alert_info in = { 0 };

	if (!cJSON_IsObject(event) || !cJSON_IsArray(alerts) || cJSON_GetArraySize(alerts) != 1 ||
	    !cJSON_IsObject(al))
		return gw_errf(err, -EINVAL, "alert event: \"alerts\" is not an array of one object");
	in.alertname = str_at(labels, "alertname");
	in.run = str_at(labels, "run");
	in.group = str_at(labels, "group");
	in.metric = str_at(labels, "metric");
	in.status = str_at(al, "status");
	in.fingerprint = str_at(al, "fingerprint");
	if (!in.alertname || !in.run || !in.group || !in.metric)
		return gw_errf(err, -EINVAL,
			       "alert event: labels alertname, run, group and metric must be strings");
	if (!in.status || (strcmp(in.status, "firing") != 0 && strcmp(in.status, "resolved") != 0))
		return gw_errf(err, -EINVAL, "alert event: status is not \"firing\" or \"resolved\"");
	if (!in.fingerprint)
		return gw_errf(err, -EINVAL, "alert event: \"fingerprint\" is missing");
	in.step = -1;
	if (step) {
		if (json_step(step, &in.step) < 0)
			return gw_errf(err, -EINVAL, "alert event: \"step\" is not an integer >= 0");
	}
	*ret = in;
	return 0;
}

cJSON *alert_event_body(const cJSON *event)
{
	cJSON *b = cJSON_Duplicate(event, 1);

	cJSON_DeleteItemFromObjectCaseSensitive(b, "kind");
	return b;
}

/* ---- the firing set ------------------------------------------------------------------ */

static ssize_t firing_find(const struct alerts *a, const char *fp)
{
	for (size_t i = 0; i < a->nf; i++)
		if (!strcmp(a->f[i].fp, fp))
			return (ssize_t)i;
	return -1;
}

int alerts_apply(struct alerts *a, const cJSON *event, struct gw_err *err)
{
	const cJSON *al, *ann;
	struct alert_info in;
	struct firing f;
	const char *starts, *kind = str_at(event, "kind");
	char fp[17];
	ssize_t i;
	int r;

	if (!kind || strcmp(kind, "alert") != 0)
		return gw_errf(err, -EINVAL, "alert event: \"kind\" is not \"alert\"");
	if ((r = alert_event_info(event, &in, err)) < 0)
		return r;
	al = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(event, "alerts"), 0);
	alert_fingerprint(in.alertname, in.run, in.group, in.metric, fp);
	if (strcmp(fp, in.fingerprint) != 0)
		return gw_errf(err, -EINVAL,
			       "alert event: fingerprint \"%.32s\" does not match its labels (%s)",
			       in.fingerprint, fp);
	i = firing_find(a, fp);
	if (!strcmp(in.status, "resolved")) {
		if (i >= 0) {
			firing_release(&a->f[i]);
			memmove(&a->f[i], &a->f[i + 1], (a->nf - (size_t)i - 1) * sizeof(*a->f));
			a->nf--;
		}
		return 0;
	}
	if (!(starts = str_at(al, "startsAt")))
		return gw_errf(err, -EINVAL, "alert event: \"startsAt\" is missing");
	if (i < 0 && a->nf >= ALERT_FIRING_MAX)
		return gw_errf(err, -E2BIG, "alert event: more than %d alerts firing",
			       ALERT_FIRING_MAX);
	ann = cJSON_GetObjectItemCaseSensitive(al, "annotations");
	memset(&f, 0, sizeof(f));
	memcpy(f.fp, fp, sizeof(f.fp));
	f.alertname = gw_strdup(in.alertname);
	f.run = gw_strdup(in.run);
	f.group = gw_strdup(in.group);
	f.metric = gw_strdup(in.metric);
	f.starts_at = gw_strdup(starts);
	f.summary = gw_strdup(str_at(ann, "summary") ? str_at(ann, "summary") : "");
	f.description = gw_strdup(str_at(ann, "description") ? str_at(ann, "description") : "");
	if (i >= 0) {
		firing_release(&a->f[i]);
		a->f[i] = f;
		return 0;
	}
	if (a->nf == a->capf) {
		a->capf = a->capf ? 2 * a->capf : 16;
		a->f = gw_realloc(a->f, a->capf * sizeof(*a->f));
	}
	a->f[a->nf++] = f;
	return 0;
}

int alerts_restore(struct alerts *a, const cJSON *events, struct gw_err *err)
{
	const cJSON *e;
	int i = 0, r;

	if (!cJSON_IsArray(events))
		return gw_errf(err, -EINVAL, "alert events: not an array");
	cJSON_ArrayForEach(e, events) {
		if ((r = alerts_apply(a, e, err)) < 0)
			return gw_err_prefix(err, r, "alert event %d", i);
		i++;
	}
	return 0;
}

size_t alerts_firing_count(const struct alerts *a)
{
	return a->nf;
}

cJSON *alerts_firing_json(const struct alerts *a)
{
	cJSON *arr = cJSON_CreateArray();

	for (size_t i = 0; i < a->nf; i++) {
		const struct firing *f = &a->f[i];

		cJSON_AddItemToArray(arr, alert_json("firing", f->alertname, f->run, f->group,
						     f->metric, f->fp, f->summary, f->description,
						     f->starts_at, ALERT_ENDS_FIRING));
	}
	return arr;
}

/* ---- evaluate ------------------------------------------------------------------------ */

/* The walk of `group`, kept or new (marked used). */
static struct gwalk *walk_for(struct alerts *a, const char *group)
{
	struct gwalk *w;

	for (size_t i = 0; i < a->nwalks; i++)
		if (!strcmp(a->walks[i].group, group)) {
			a->walks[i].used = true;
			return &a->walks[i];
		}
	a->walks = gw_realloc(a->walks, (a->nwalks + 1) * sizeof(*a->walks));
	w = &a->walks[a->nwalks++];
	memset(w, 0, sizeof(*w));
	w->group = gw_strdup(group);
	w->pl = gw_calloc((size_t)a->nplateaus + 1, sizeof(struct pstate));
	w->ring = gw_calloc((size_t)a->dist.patience + 1, sizeof(struct dval));
	w->used = true;
	return w;
}

/* Forget the walks of groups no longer judged, so memory follows the
 * groups of the latest result. */
static void walks_prune(struct alerts *a)
{
	size_t j = 0;

	for (size_t i = 0; i < a->nwalks; i++) {
		if (!a->walks[i].used) {
			free(a->walks[i].group);
			free(a->walks[i].pl);
			free(a->walks[i].ring);
			continue;
		}
		a->walks[i].used = false;
		a->walks[j++] = a->walks[i];
	}
	a->nwalks = j;
}

int alerts_evaluate(struct alerts *a, const struct series *results, int64_t changed_from,
		    const char *run, double now, cJSON **ret_transitions, struct gw_err *err)
{
	struct conds cs = { 0 };
	const char **groups = NULL;
	int ngroups = 0;
	cJSON *out;
	char now_s[32];
	int64_t step;

	if (!run || !*run)
		return gw_errf(err, -EINVAL, "alerts: the run name is empty");
	out = cJSON_CreateArray();
	if (!a->enabled || series_count(results) == 0) {
		*ret_transitions = out;
		return 0;
	}
	step = series_step_at(results, series_count(results) - 1);
	format_time(now, now_s);

	judged_groups(a, results, &groups, &ngroups);
	for (int g = 0; g < ngroups; g++)
		walk_for(a, groups[g]); /* first, as walk_for may move the array */
	for (size_t i = 0; i < a->nwalks; i++)
		if (a->walks[i].used) {
			gwalk_run(&a->walks[i], a, results, changed_from);
			group_conds(a, results, &a->walks[i], &cs);
		}
	walks_prune(a);
	collapse_conds(a, results, changed_from, &cs);

	/* Resolutions: firing alerts whose condition no longer holds. */
	for (size_t i = 0; i < a->nf; i++) {
		const struct firing *f = &a->f[i];
		const struct cond *c = conds_find(&cs, f->alertname, f->group, f->metric);
		struct sb b = { 0 };
		char *desc;

		if (c && c->active && !strcmp(f->run, run))
			continue;
		if (!c)
			sb_addf(&b, "resolved at step %lld: no longer judged (group or detector absent)",
				(long long)step);
		else if (strcmp(f->run, run) != 0)
			sb_addf(&b, "resolved at step %lld: the run is now \"%s\"", (long long)step, run);
		else
			sb_addf(&b, "resolved at step %lld: %s", (long long)step, c->description);
		desc = sb_take(&b);
		cJSON_AddItemToArray(out, event_json(step, alert_json("resolved", f->alertname,
								      f->run, f->group, f->metric,
								      f->fp, f->summary, desc,
								      f->starts_at, now_s)));
		free(desc);
	}
	/* Firings: active conditions not firing yet. */
	for (size_t i = 0; i < cs.n; i++) {
		const struct cond *c = &cs.v[i];
		char fp[17];

		if (!c->active)
			continue;
		alert_fingerprint(c->alertname, run, c->group, c->metric, fp);
		if (firing_find(a, fp) >= 0)
			continue;
		cJSON_AddItemToArray(out, event_json(step, alert_json("firing", c->alertname, run,
								      c->group, c->metric, fp,
								      c->summary, c->description,
								      now_s, ALERT_ENDS_FIRING)));
	}
	conds_release(&cs);
	free(groups);
	*ret_transitions = out;
	return 0;
}
