/*
 * series.c — the step-ordered result store declared in series.h: one
 * sorted array of (step, item) pairs, binary search for every lookup.
 */
#include "series.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/step.h"

struct entry {
	int64_t step;
	cJSON *item;
	uint64_t gen; /* the series' put count when the item was put */
};

struct series {
	struct entry *v;
	size_t n, cap;
	uint64_t puts;
};

struct series *series_new(void)
{
	return gw_calloc(1, sizeof(struct series));
}

void series_free(struct series *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		cJSON_Delete(s->v[i].item);
	free(s->v);
	free(s);
}

size_t series_lower_bound(const struct series *s, int64_t step)
{
	return step_lower_bound(s->v, s->n, sizeof(*s->v), offsetof(struct entry, step), step);
}

int series_put(struct series *s, int64_t step, cJSON *item)
{
	size_t i = series_lower_bound(s, step);

	GW_BUG_ON(!item);
	s->puts++;
	if (i < s->n && s->v[i].step == step) {
		cJSON_Delete(s->v[i].item);
		s->v[i].item = item;
		s->v[i].gen = s->puts;
		return 1;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->v = gw_realloc(s->v, s->cap * sizeof(*s->v));
	}
	memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof(*s->v));
	s->v[i].step = step;
	s->v[i].item = item;
	s->v[i].gen = s->puts;
	s->n++;
	return 0;
}

int series_remove(struct series *s, int64_t step)
{
	size_t i = series_lower_bound(s, step);

	if (i >= s->n || s->v[i].step != step)
		return 0;
	cJSON_Delete(s->v[i].item);
	memmove(s->v + i, s->v + i + 1, (s->n - i - 1) * sizeof(*s->v));
	s->n--;
	return 1;
}

const cJSON *series_get(const struct series *s, int64_t step)
{
	size_t i = series_lower_bound(s, step);

	return i < s->n && s->v[i].step == step ? s->v[i].item : NULL;
}

size_t series_count(const struct series *s)
{
	return s->n;
}

int64_t series_step_at(const struct series *s, size_t i)
{
	GW_BUG_ON(i >= s->n);
	return s->v[i].step;
}

const cJSON *series_at(const struct series *s, size_t i)
{
	GW_BUG_ON(i >= s->n);
	return s->v[i].item;
}

uint64_t series_gen_at(const struct series *s, size_t i)
{
	GW_BUG_ON(i >= s->n);
	return s->v[i].gen;
}

uint64_t series_version(const struct series *s)
{
	return s->puts;
}
