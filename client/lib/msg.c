/*
 * msg.c — messages and histories as the caller sees them: parsing a body,
 * the fixed accessors (type, run, seq, step, groups, values), the generic
 * dotted-path accessors over the JSON, and the history object built from
 * a history reply.  Nothing here talks to a socket.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PATH_PART_MAX 256 /* bytes of one component of a dotted path */
#define SEQ_MAX 9007199254740992ULL /* 2^53: exact in a JSON double */

/* ---- construction ---------------------------------------------------------- */

int gwc_json_uint(const cJSON *v, uint64_t max, uint64_t *ret)
{
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= (double)max) ||
	    v->valuedouble != floor(v->valuedouble))
		return -EINVAL;
	*ret = (uint64_t)v->valuedouble;
	return 0;
}

static const char *field_string(const cJSON *body, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);

	return cJSON_IsString(v) ? v->valuestring : "";
}

int gwc_msg_new(cJSON *body, const char *topic, char *json, struct gw_msg **ret_msg)
{
	struct gw_msg *m = NULL;
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(body, "type");
	const cJSON *t;
	int r = -EINVAL;

	if (!cJSON_IsObject(body) || !cJSON_IsString(type) || !*type->valuestring)
		goto fail;
	r = -ENOMEM;
	if (!(m = calloc(1, sizeof(*m))))
		goto fail;
	m->body = body;
	m->type = type->valuestring;
	m->run = field_string(body, "run");
	m->epoch = field_string(body, "epoch");
	if (gwc_json_uint(cJSON_GetObjectItemCaseSensitive(body, "seq"), SEQ_MAX, &m->seq) < 0)
		m->seq = 0;
	t = cJSON_GetObjectItemCaseSensitive(body, "time");
	m->time = cJSON_IsNumber(t) && isfinite(t->valuedouble) ? t->valuedouble : 0;
	if (topic) {
		m->topic = strdup(topic);
	} else {
		size_t n = strlen(m->type) + strlen(m->run) + 2;

		if ((m->topic = malloc(n)))
			snprintf(m->topic, n, "%s.%s", m->type, m->run);
	}
	if (!m->topic)
		goto fail_m;
	m->json = json ? json : cJSON_PrintUnformatted(body);
	if (!m->json)
		goto fail_m;
	*ret_msg = m;
	return 0;
fail_m:
	free(m->topic);
	free(m);
fail:
	cJSON_Delete(body);
	free(json);
	return r;
}

int gw_msg_parse(const char *topic, const char *body, size_t len, struct gw_msg **ret_msg)
{
	const char *end = NULL;
	cJSON *b;
	char *text;

	if (!topic || !body)
		return -EINVAL;
	if (len > GWC_MSG_MAX)
		return -EMSGSIZE;
	if (memchr(body, 0, len))
		return -EINVAL;
	b = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (!b)
		return -EINVAL; /* cJSON does not tell out-of-memory apart */
	for (const char *c = end; c < body + len; c++)
		if ((unsigned char)*c > 32) {
			cJSON_Delete(b);
			return -EINVAL;
		}
	if (!(text = malloc(len + 1))) {
		cJSON_Delete(b);
		return -ENOMEM;
	}
	memcpy(text, body, len);
	text[len] = 0;
	return gwc_msg_new(b, topic, text, ret_msg);
}

void gw_msg_free(struct gw_msg *m)
{
	if (!m)
		return;
	cJSON_Delete(m->body);
	free(m->topic);
	free(m->json);
	free(m);
}

/* ---- fixed accessors ----------------------------------------------------------- */

const char *gw_msg_topic(const struct gw_msg *m)
{
	return m->topic;
}

const char *gw_msg_type(const struct gw_msg *m)
{
	return m->type;
}

const char *gw_msg_run(const struct gw_msg *m)
{
	return m->run;
}

const char *gw_msg_epoch(const struct gw_msg *m)
{
	return m->epoch;
}

uint64_t gw_msg_seq(const struct gw_msg *m)
{
	return m->seq;
}

double gw_msg_time(const struct gw_msg *m)
{
	return m->time;
}

const char *gw_msg_json(const struct gw_msg *m)
{
	return m->json;
}

int gw_msg_replayed(const struct gw_msg *m)
{
	return m->replayed;
}

size_t gw_msg_daemon(const struct gw_msg *m)
{
	return m->daemon;
}

int gw_msg_step(const struct gw_msg *m, int64_t *ret_step)
{
	uint64_t s;

	if (gwc_json_uint(cJSON_GetObjectItemCaseSensitive(m->body, "step"), SEQ_MAX, &s) < 0)
		return -ENOENT;
	*ret_step = (int64_t)s;
	return 0;
}

static const cJSON *groups_of(const struct gw_msg *m)
{
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(m->body, "groups");

	return cJSON_IsObject(g) ? g : NULL;
}

size_t gw_msg_group_count(const struct gw_msg *m)
{
	const cJSON *g = groups_of(m);

	return g ? (size_t)cJSON_GetArraySize(g) : 0;
}

const char *gw_msg_group_name(const struct gw_msg *m, size_t i)
{
	const cJSON *g = groups_of(m), *e;

	if (!g || i > (size_t)INT32_MAX)
		return NULL;
	e = cJSON_GetArrayItem(g, (int)i);
	return e ? e->string : NULL;
}

/* Follow a dotted path from n; NULL if any part is missing. */
static const cJSON *walk(const cJSON *n, const char *path)
{
	char part[PATH_PART_MAX + 1];

	if (!path)
		return NULL;
	while (n && *path) {
		const char *dot = strchr(path, '.');
		size_t len = dot ? (size_t)(dot - path) : strlen(path);

		if (len > PATH_PART_MAX || len == 0)
			return NULL;
		memcpy(part, path, len);
		part[len] = 0;
		if (cJSON_IsObject(n)) {
			n = cJSON_GetObjectItemCaseSensitive(n, part);
		} else if (cJSON_IsArray(n)) {
			char *end;
			unsigned long idx;

			if (part[0] < '0' || part[0] > '9')
				return NULL;
			errno = 0;
			idx = strtoul(part, &end, 10);
			if (*end || errno || idx > (unsigned long)INT32_MAX)
				return NULL;
			n = cJSON_GetArrayItem(n, (int)idx);
		} else {
			return NULL;
		}
		path += len;
		if (*path == '.' && !*++path)
			return NULL; /* a trailing dot */
	}
	return n;
}

static int number_of(const cJSON *n, double *ret_value)
{
	if (!n)
		return -ENOENT;
	if (cJSON_IsNull(n))
		return -ENODATA;
	if (cJSON_IsBool(n)) {
		if (ret_value)
			*ret_value = cJSON_IsTrue(n) ? 1 : 0;
		return 0;
	}
	if (!cJSON_IsNumber(n))
		return -EINVAL;
	if (ret_value)
		*ret_value = n->valuedouble;
	return 0;
}

int gw_msg_value(const struct gw_msg *m, const char *group, const char *metric,
		 double *ret_value)
{
	const cJSON *g = groups_of(m);

	if (!group || !metric || !*metric)
		return -ENOENT;
	g = cJSON_GetObjectItemCaseSensitive(g, group);
	if (!cJSON_IsObject(g))
		return -ENOENT;
	return number_of(walk(g, metric), ret_value);
}

/* ---- generic accessors ------------------------------------------------------------ */

int gw_msg_get_kind(const struct gw_msg *m, const char *path)
{
	const cJSON *n = walk(m->body, path);

	if (!n)
		return -ENOENT;
	if (cJSON_IsNull(n))
		return GW_JSON_NULL;
	if (cJSON_IsBool(n))
		return GW_JSON_BOOL;
	if (cJSON_IsNumber(n))
		return GW_JSON_NUMBER;
	if (cJSON_IsString(n))
		return GW_JSON_STRING;
	if (cJSON_IsArray(n))
		return GW_JSON_ARRAY;
	if (cJSON_IsObject(n))
		return GW_JSON_OBJECT;
	return -ENOENT; /* cJSON_Raw and invalid: never parsed from text */
}

int gw_msg_get_count(const struct gw_msg *m, const char *path)
{
	const cJSON *n = walk(m->body, path);

	if (!n)
		return -ENOENT;
	if (!cJSON_IsArray(n) && !cJSON_IsObject(n))
		return -EINVAL;
	return cJSON_GetArraySize(n);
}

const char *gw_msg_get_key(const struct gw_msg *m, const char *path, size_t i)
{
	const cJSON *n = walk(m->body, path), *e;

	if (!cJSON_IsObject(n) || i > (size_t)INT32_MAX)
		return NULL;
	e = cJSON_GetArrayItem(n, (int)i);
	return e ? e->string : NULL;
}

const char *gw_msg_get_string(const struct gw_msg *m, const char *path)
{
	const cJSON *n = walk(m->body, path);

	return cJSON_IsString(n) ? n->valuestring : NULL;
}

int gw_msg_get_number(const struct gw_msg *m, const char *path, double *ret_value)
{
	return number_of(walk(m->body, path), ret_value);
}

int gw_msg_get_json(const struct gw_msg *m, const char *path, char **ret_json)
{
	const cJSON *n = walk(m->body, path);
	char *s;

	if (!n)
		return -ENOENT;
	if (!(s = cJSON_PrintUnformatted(n)))
		return -ENOMEM;
	*ret_json = s;
	return 0;
}

/* ---- history ---------------------------------------------------------------------- */

struct gw_history {
	char *json, *run, *metric, *group;
	size_t n;
	int64_t *steps;
	double *values;
	unsigned char *known; /* 0 where the value was null */
};

void gw_history_free(struct gw_history *h)
{
	if (!h)
		return;
	free(h->json);
	free(h->run);
	free(h->metric);
	free(h->group);
	free(h->steps);
	free(h->values);
	free(h->known);
	free(h);
}

int gwc_history_new(const cJSON *reply, const char *text, struct gw_history **ret_history,
		    char *why, size_t why_size)
{
	const cJSON *pts = cJSON_GetObjectItemCaseSensitive(reply, "points"), *p;
	const char *run = field_string(reply, "run"), *metric = field_string(reply, "metric");
	const char *group = field_string(reply, "group");
	struct gw_history *h;
	size_t n, i = 0;
	int64_t prev = -1;

	if (!cJSON_IsArray(pts)) {
		snprintf(why, why_size, "history reply without a \"points\" array");
		return -EPROTO;
	}
	n = (size_t)cJSON_GetArraySize(pts);
	if (!(h = calloc(1, sizeof(*h))))
		return -ENOMEM;
	h->json = strdup(text);
	h->run = strdup(run);
	h->metric = strdup(metric);
	h->group = strdup(group);
	h->steps = malloc((n ? n : 1) * sizeof(*h->steps));
	h->values = malloc((n ? n : 1) * sizeof(*h->values));
	h->known = malloc(n ? n : 1);
	if (!h->json || !h->run || !h->metric || !h->group || !h->steps || !h->values ||
	    !h->known) {
		gw_history_free(h);
		return -ENOMEM;
	}
	cJSON_ArrayForEach(p, pts) {
		const cJSON *s = cJSON_GetArrayItem(p, 0), *v = cJSON_GetArrayItem(p, 1);
		uint64_t step;

		if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) != 2 ||
		    gwc_json_uint(s, SEQ_MAX, &step) < 0 || (int64_t)step <= prev ||
		    !(cJSON_IsNull(v) || cJSON_IsNumber(v))) {
			snprintf(why, why_size, "history reply: point %zu is not [step, number|null] "
				 "in increasing step order", i);
			gw_history_free(h);
			return -EPROTO;
		}
		prev = (int64_t)step;
		h->steps[i] = (int64_t)step;
		h->known[i] = cJSON_IsNumber(v);
		h->values[i] = h->known[i] ? v->valuedouble : NAN;
		i++;
	}
	h->n = i;
	*ret_history = h;
	return 0;
}

const char *gw_history_run(const struct gw_history *h)
{
	return h->run;
}

const char *gw_history_metric(const struct gw_history *h)
{
	return h->metric;
}

const char *gw_history_group(const struct gw_history *h)
{
	return h->group;
}

const char *gw_history_json(const struct gw_history *h)
{
	return h->json;
}

size_t gw_history_count(const struct gw_history *h)
{
	return h->n;
}

int gw_history_point(const struct gw_history *h, size_t i, int64_t *ret_step, double *ret_value)
{
	if (i >= h->n)
		return -ERANGE;
	if (ret_step)
		*ret_step = h->steps[i];
	if (!h->known[i])
		return -ENODATA;
	if (ret_value)
		*ret_value = h->values[i];
	return 0;
}
