/*
 * fetch.c — series for history and plot (fetch.h).  The names a result
 * holds are listed by walking its JSON with gw_msg_get_*: every number or
 * null (not inside arrays) under groups.<g>, health.overall and
 * health.layers.<l>.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "emit.h"
#include "fetch.h"

#define NAMES_MAX 4096

bool fetch_is_run_metric(const char *metric)
{
	return !strncmp(metric, "health.", 7) || !strcmp(metric, "churn") ||
	       !strncmp(metric, "trainer.", 8);
}

static bool is_value(const struct gw_msg *m, const char *path)
{
	int k = gw_msg_get_kind(m, path);

	return k == GW_JSON_NUMBER || k == GW_JSON_NULL;
}

/* Whether the ", "-separated list holds tok. */
static bool has_token(const char *list, const char *tok)
{
	size_t n = strlen(tok);

	for (const char *p = list; (p = strstr(p, tok)); p++)
		if ((p == list || (p >= list + 2 && p[-1] == ' ' && p[-2] == ',')) &&
		    (p[n] == 0 || p[n] == ','))
			return true;
	return false;
}

/* Append to names the value paths under path (relative to skip bytes of
 * it), each once. */
static void list_values(const struct gw_msg *m, const char *path, size_t skip, char *names,
			size_t size, int depth)
{
	int n = gw_msg_get_count(m, path);

	for (int i = 0; i < n && depth < 4; i++) {
		const char *key = gw_msg_get_key(m, path, (size_t)i);
		char p[512];
		size_t len = strlen(names);

		if (!key || strchr(key, '.') ||
		    (size_t)snprintf(p, sizeof(p), "%s.%s", path, key) >= sizeof(p))
			continue;
		if (gw_msg_get_kind(m, p) == GW_JSON_OBJECT) {
			list_values(m, p, skip, names, size, depth + 1);
			continue;
		}
		if (!is_value(m, p))
			continue;
		if (has_token(names, p + skip))
			continue;
		if (len + strlen(p + skip) + 3 < size)
			snprintf(names + len, size - len, "%s%s", len ? ", " : "", p + skip);
	}
}

int fetch_check(struct gw_client *c, size_t i, const char *metric, const char *const *groups,
		size_t ngroups, char *why, size_t why_size)
{
	struct gw_msg *head = NULL, *s = NULL;
	char *names = NULL, p[600];
	double last;
	int r, ng;
	bool known = false;

	if ((r = gw_client_snapshot(c, i, STEP_LAST, GW_STEP_NONE, &head)) < 0) {
		snprintf(why, why_size, "%s", gw_client_error(c));
		return r;
	}
	if (gw_msg_get_number(head, "status.last_step", &last) < 0 || last < 0) {
		r = 0; /* no result yet: nothing to check against */
		goto out;
	}
	if ((r = gw_client_snapshot(c, i, (int64_t)last, (int64_t)last, &s)) < 0) {
		snprintf(why, why_size, "%s", gw_client_error(c));
		goto out;
	}
	if (gw_msg_get_kind(s, "results.0") != GW_JSON_OBJECT) {
		r = 0;
		goto out;
	}
	if (!(names = calloc(1, NAMES_MAX))) {
		r = -ENOMEM;
		snprintf(why, why_size, "out of memory");
		goto out;
	}
	ng = gw_msg_get_count(s, "results.0.groups");
	/* The metric. */
	if (fetch_is_run_metric(metric)) {
		snprintf(p, sizeof(p), "results.0.%s", metric);
		/* The trainer's figures are where trainer_state.json logged
		 * them, perhaps not at the first step. */
		known = is_value(s, p) || !strcmp(metric, "trainer.loss") ||
			!strcmp(metric, "trainer.learning_rate");
	} else {
		for (int g = 0; g < ng && !known; g++) {
			const char *gn = gw_msg_get_key(s, "results.0.groups", (size_t)g);

			snprintf(p, sizeof(p), "results.0.groups.%s.%s", gn ? gn : "", metric);
			known = gn && !strchr(gn, '.') && is_value(s, p);
		}
	}
	if (!known) {
		for (int g = 0; g < ng; g++) {
			const char *gn = gw_msg_get_key(s, "results.0.groups", (size_t)g);

			if (!gn || strchr(gn, '.'))
				continue;
			snprintf(p, sizeof(p), "results.0.groups.%s", gn);
			list_values(s, p, strlen(p) + 1, names, NAMES_MAX, 0);
		}
		list_values(s, "results.0.health.overall", strlen("results.0."), names, NAMES_MAX,
			    0);
		if (gw_msg_get_count(s, "results.0.health.layers") > 0) {
			char layers[2048] = "";

			list_values(s, "results.0.health.layers.0", strlen("results.0.health.layers.0."),
				    layers, sizeof(layers), 0);
			if (strlen(names) + strlen(layers) + 80 < NAMES_MAX)
				snprintf(names + strlen(names), NAMES_MAX - strlen(names),
					 ", health.layers.L.{%s} for L 0 to %d", layers,
					 gw_msg_get_count(s, "results.0.health.layers") - 1);
		}
		if (is_value(s, "results.0.churn"))
			snprintf(names + strlen(names), NAMES_MAX - strlen(names), ", churn");
		snprintf(names + strlen(names), NAMES_MAX - strlen(names),
			 ", trainer.loss, trainer.learning_rate");
		snprintf(why, why_size, "unknown metric '%s' (valid: %s)", metric, names);
		r = -EINVAL;
		goto out;
	}
	/* The groups. */
	for (size_t k = 0; k < ngroups && !fetch_is_run_metric(metric); k++) {
		snprintf(p, sizeof(p), "results.0.groups.%s", groups[k]);
		if (!strchr(groups[k], '.') && gw_msg_get_kind(s, p) == GW_JSON_OBJECT)
			continue;
		names[0] = 0;
		for (int g = 0; g < ng; g++) {
			const char *gn = gw_msg_get_key(s, "results.0.groups", (size_t)g);

			snprintf(names + strlen(names), NAMES_MAX - strlen(names), "%s%s",
				 g ? ", " : "", gn ? gn : "");
		}
		snprintf(why, why_size, "unknown group '%s' (valid: %s)", groups[k], names);
		r = -EINVAL;
		goto out;
	}
	r = 0;
out:
	free(names);
	gw_msg_free(head);
	gw_msg_free(s);
	return r;
}

static int alloc_points(struct fetch_series *s, size_t n)
{
	s->x = malloc((n ? n : 1) * sizeof(*s->x));
	s->y = malloc((n ? n : 1) * sizeof(*s->y));
	return s->x && s->y ? 0 : -ENOMEM;
}

/* A run's value from a snapshot of from..to, with a history-shaped JSON. */
static int run_series(struct gw_client *c, size_t i, const char *metric, int64_t from, int64_t to,
		      struct fetch_series *s, char *why, size_t why_size)
{
	struct gw_msg *m;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int r, n;

	if ((r = gw_client_snapshot(c, i, from, to, &m)) < 0) {
		snprintf(why, why_size, "%s", gw_client_error(c));
		return r;
	}
	n = gw_msg_get_count(m, "results");
	snprintf(s->run, sizeof(s->run), "%s", gw_msg_run(m));
	if (alloc_points(s, n > 0 ? (size_t)n : 0) < 0 || !(f = open_memstream(&buf, &len))) {
		gw_msg_free(m);
		snprintf(why, why_size, "out of memory");
		return -ENOMEM;
	}
	fputs("{\"type\":\"history\",\"run\":", f);
	emit_json_str(f, gw_msg_run(m));
	fputs(",\"metric\":", f);
	emit_json_str(f, metric);
	fputs(",\"group\":null,\"points\":[", f);
	for (int k = 0; k < n; k++) {
		char p[600];
		double step, v;

		snprintf(p, sizeof(p), "results.%d.step", k);
		if (gw_msg_get_number(m, p, &step) < 0)
			continue;
		snprintf(p, sizeof(p), "results.%d.%s", k, metric);
		if (gw_msg_get_number(m, p, &v) < 0)
			v = NAN;
		s->x[s->n] = (int64_t)step;
		s->y[s->n] = v;
		fprintf(f, "%s[%lld,", s->n ? "," : "", (long long)step);
		emit_json_num(f, v);
		fputc(']', f);
		s->n++;
	}
	fputs("]}", f);
	gw_msg_free(m);
	if (fclose(f) != 0) {
		free(buf);
		snprintf(why, why_size, "out of memory");
		return -ENOMEM;
	}
	s->json = buf;
	return 0;
}

int fetch_series(struct gw_client *c, size_t i, const char *metric, const char *group,
		 int64_t from, int64_t to, struct fetch_series *ret, char *why, size_t why_size)
{
	struct fetch_series s = { .n = 0 };
	struct gw_history *h;
	size_t n;
	int r;

	if (fetch_is_run_metric(metric)) {
		r = run_series(c, i, metric, from, to, &s, why, why_size);
		if (r < 0)
			fetch_series_release(&s);
		else
			*ret = s;
		return r;
	}
	if ((r = gw_client_history(c, i, metric, group, from, to, &h)) < 0) {
		snprintf(why, why_size, "%s", gw_client_error(c));
		return r;
	}
	n = gw_history_count(h);
	snprintf(s.run, sizeof(s.run), "%s", gw_history_run(h));
	if (alloc_points(&s, n) < 0 || !(s.json = strdup(gw_history_json(h)))) {
		gw_history_free(h);
		fetch_series_release(&s);
		snprintf(why, why_size, "out of memory");
		return -ENOMEM;
	}
	for (size_t k = 0; k < n; k++)
		if (gw_history_point(h, k, &s.x[k], &s.y[k]) < 0)
			s.y[k] = NAN;
	s.n = n;
	gw_history_free(h);
	*ret = s;
	return 0;
}

void fetch_series_release(struct fetch_series *s)
{
	free(s->x);
	free(s->y);
	free(s->json);
	s->x = NULL;
	s->y = NULL;
	s->json = NULL;
}
