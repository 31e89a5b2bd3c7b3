/*
 * api.c — the request checks of api.h: a table of routes, each with the
 * parameters it takes and which of them it requires, then one pass over
 * the parameters that reads each into the request.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

enum { P_RUN = 1, P_METRIC = 2, P_GROUP = 4, P_FROM = 8, P_TO = 16, P_STEP = 32 };

static const char *const param_names[] = { "run", "metric", "group", "from", "to", "step" };
#define NPARAMS (sizeof(param_names) / sizeof(param_names[0]))

static const struct route {
	const char *path;
	enum api_route route;
	unsigned takes, needs;
} routes[] = {
	{ "/", API_PAGE, 0, 0 },
	{ "/index.html", API_PAGE, 0, 0 },
	{ "/dash.js", API_SCRIPT, 0, 0 },
	{ "/metrics", API_METRICS, 0, 0 },
	{ "/events", API_EVENTS, 0, 0 },
	{ "/api/series", API_SERIES, P_RUN, 0 },
	{ "/api/snapshot", API_SNAPSHOT, P_RUN | P_FROM | P_TO, 0 },
	{ "/api/history", API_HISTORY, P_RUN | P_METRIC | P_GROUP | P_FROM | P_TO, P_METRIC },
	{ "/api/result", API_RESULT, P_RUN | P_STEP, P_STEP },
};

static void names_of(unsigned set, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = 0;
	for (size_t i = 0; i < NPARAMS; i++)
		if (set & (1u << i) && len < size)
			len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? ", " : "",
						param_names[i]);
	if (!len)
		snprintf(buf, size, "none");
}

/* At most 64 bytes of a name the client sent, control characters as '?',
 * for a one-line reason. */
static const char *shown(const char *s, char *buf, size_t size)
{
	size_t i = 0;

	for (; s && s[i] && i + 1 < size && i < 64; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	buf[i] = 0;
	return buf;
}

static int step_of(const char *key, const char *s, int64_t *ret, char *why, size_t size)
{
	char *end;
	long long v;

	errno = 0;
	v = (*s >= '0' && *s <= '9') ? strtoll(s, &end, 10) : -1;
	if (v < 0 || errno || *end || v > API_STEP_MAX) {
		snprintf(why, size, "%s: expected a step, 0 to %lld", key, API_STEP_MAX);
		return 400;
	}
	*ret = v;
	return 0;
}

static bool metric_ok(const char *s)
{
	bool word = false;

	for (; *s; s++) {
		char c = *s;

		if (c == '.') {
			if (!word)
				return false;
			word = false;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '_') {
			word = true;
		} else {
			return false;
		}
	}
	return word;
}

static bool text_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

int api_parse(const char *path, const struct api_param *p, size_t n, struct api_req *ret,
	      char *why, size_t why_size)
{
	const struct route *rt = NULL;
	struct api_req q = { .from = -1, .to = -1, .step = -1, .group = "all" };
	unsigned seen = 0;
	char names[128], k_shown[72];
	int r;

	if (strlen(path) > API_PATH_MAX) {
		snprintf(why, why_size, "path longer than %d bytes", API_PATH_MAX);
		return 414;
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (!strcmp(routes[i].path, path))
			rt = &routes[i];
	if (!rt) {
		snprintf(why, why_size, "no such page (/, /metrics, /events, /api/series, "
					"/api/snapshot, /api/history, /api/result)");
		return 404;
	}
	q.route = rt->route;
	if (n > API_PARAMS_MAX) {
		snprintf(why, why_size, "%zu parameters; at most %d", n, API_PARAMS_MAX);
		return 400;
	}
	names_of(rt->takes, names, sizeof(names));
	for (size_t i = 0; i < n; i++) {
		const char *k = p[i].key, *v = p[i].value ? p[i].value : "";
		size_t id = NPARAMS;

		for (size_t j = 0; j < NPARAMS; j++)
			if (k && !strcmp(k, param_names[j]))
				id = j;
		if (id == NPARAMS || !(rt->takes & (1u << id))) {
			snprintf(why, why_size, "unknown parameter '%s' (%s)",
				 shown(k, k_shown, sizeof(k_shown)), names);
			return 400;
		}
		if (seen & (1u << id)) {
			snprintf(why, why_size, "%s: given twice", k);
			return 400;
		}
		seen |= 1u << id;
		if (strlen(v) > API_VALUE_MAX) {
			snprintf(why, why_size, "%s: longer than %d bytes", k, API_VALUE_MAX);
			return 400;
		}
		switch (1u << id) {
		case P_RUN:
		case P_GROUP:
			if (!text_ok(v)) {
				snprintf(why, why_size, "%s: empty or holds a control character", k);
				return 400;
			}
			if (id == 0)
				q.run = v;
			else
				q.group = v;
			break;
		case P_METRIC:
			if (!metric_ok(v) || strlen(v) > 128) {
				snprintf(why, why_size,
					 "metric: expected a dotted path of letters, digits and _ "
					 "(pathway_distance, memorized.loss), at most 128 bytes");
				return 400;
			}
			q.metric = v;
			break;
		case P_FROM:
			if ((r = step_of(k, v, &q.from, why, why_size)) != 0)
				return r;
			break;
		case P_TO:
			if ((r = step_of(k, v, &q.to, why, why_size)) != 0)
				return r;
			break;
		case P_STEP:
			if ((r = step_of(k, v, &q.step, why, why_size)) != 0)
				return r;
			break;
		}
	}
	for (size_t j = 0; j < NPARAMS; j++)
		if ((rt->needs & (1u << j)) && !(seen & (1u << j))) {
			snprintf(why, why_size, "%s: required", param_names[j]);
			return 400;
		}
	if (q.from >= 0 && q.to >= 0 && q.from > q.to) {
		snprintf(why, why_size, "from %lld is after to %lld", (long long)q.from,
			 (long long)q.to);
		return 400;
	}
	*ret = q;
	return 0;
}
