/*
 * queue.c — the step-ordered queue of queue.h: one array sorted by step
 * (a queue holds at most limits.queue_depth entries, so a linear insertion
 * is cheap), then the backoff rule, then taking the next due entry, then
 * finding and cancelling.
 */
#include "queue.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

struct queue {
	struct queue_opts o;
	struct queue_entry *v; /* sorted by step, one entry per step */
	size_t n, cap;
	struct queue_entry *alt; /* other directories of a queued or running step */
	size_t n_alt, cap_alt;
};

struct queue *queue_new(const struct queue_opts *o)
{
	struct queue *q = gw_calloc(1, sizeof(*q));

	q->o = *o;
	return q;
}

void queue_entry_release(struct queue_entry *e)
{
	free(e->name);
	free(e->path);
	e->name = e->path = NULL;
}

void queue_clear(struct queue *q)
{
	for (size_t i = 0; i < q->n; i++)
		queue_entry_release(&q->v[i]);
	q->n = 0;
	for (size_t i = 0; i < q->n_alt; i++)
		queue_entry_release(&q->alt[i]);
	q->n_alt = 0;
}

void queue_free(struct queue *q)
{
	if (!q)
		return;
	queue_clear(q);
	free(q->v);
	free(q->alt);
	free(q);
}

void queue_set_opts(struct queue *q, const struct queue_opts *o)
{
	q->o = *o;
}

static void remove_at(struct queue *q, size_t i)
{
	queue_entry_release(&q->v[i]);
	memmove(q->v + i, q->v + i + 1, (q->n - i - 1) * sizeof(*q->v));
	q->n--;
}

static int insert(struct queue *q, const char *name, const char *path, int64_t step, int attempts,
		  uint64_t not_before)
{
	size_t i = 0;

	while (i < q->n && q->v[i].step < step)
		i++;
	if (i < q->n && q->v[i].step == step)
		return -EEXIST;
	if (q->n == q->cap) {
		q->cap = q->cap ? 2 * q->cap : 16;
		q->v = gw_realloc(q->v, q->cap * sizeof(*q->v));
	}
	memmove(q->v + i + 1, q->v + i, (q->n - i) * sizeof(*q->v));
	q->v[i] = (struct queue_entry){ gw_strdup(name), gw_strdup(path), step, attempts,
					not_before };
	q->n++;
	return 0;
}

int queue_put(struct queue *q, const char *name, const char *path, int64_t step)
{
	if (queue_find(q, step) >= 0)
		return -EEXIST;
	if (q->n >= q->o.depth)
		return -ENOSPC;
	return insert(q, name, path, step, 0, 0);
}

/* ---- retries ----------------------------------------------------------------------- */

uint64_t queue_backoff(const struct queue *q, int attempt)
{
	uint64_t b = q->o.backoff_ms;

	GW_BUG_ON(attempt < 1);
	for (int k = 1; k < attempt && b < q->o.backoff_max_ms; k++)
		b *= 2;
	return b > q->o.backoff_max_ms ? q->o.backoff_max_ms : b;
}

int queue_retry(struct queue *q, const char *name, const char *path, int64_t step, int attempt,
		uint64_t now, uint64_t *ret_backoff_ms)
{
	uint64_t b;
	int r;

	if (attempt > q->o.max_retries)
		return 0;
	b = queue_backoff(q, attempt);
	r = insert(q, name, path, step, attempt, now + b);
	if (r < 0)
		return r;
	if (ret_backoff_ms)
		*ret_backoff_ms = b;
	return 1;
}

int queue_requeue(struct queue *q, const char *name, const char *path, int64_t step, int attempt,
		  uint64_t now, uint64_t *ret_backoff_ms)
{
	uint64_t b = queue_backoff(q, attempt < 1 ? 1 : (attempt > 64 ? 64 : attempt));
	int r = insert(q, name, path, step, attempt, now + b);

	if (r < 0)
		return r;
	if (ret_backoff_ms)
		*ret_backoff_ms = b;
	return 1;
}

/* ---- the next entry ---------------------------------------------------------------- */

int queue_next(struct queue *q, uint64_t now, struct queue_entry *ret, uint64_t *ret_wait_ms)
{
	uint64_t wait = UINT64_MAX;

	for (size_t i = 0; i < q->n; i++) {
		if (q->v[i].not_before <= now) {
			*ret = q->v[i];
			memmove(q->v + i, q->v + i + 1, (q->n - i - 1) * sizeof(*q->v));
			q->n--;
			return 1;
		}
		if (q->v[i].not_before - now < wait)
			wait = q->v[i].not_before - now;
	}
	if (ret_wait_ms)
		*ret_wait_ms = wait;
	return 0;
}

/* ---- finding and cancelling ---------------------------------------------------------- */

long queue_find(const struct queue *q, int64_t step)
{
	for (size_t i = 0; i < q->n; i++)
		if (q->v[i].step == step)
			return (long)i;
	return -1;
}

long queue_find_name(const struct queue *q, const char *name)
{
	for (size_t i = 0; i < q->n; i++)
		if (!strcmp(q->v[i].name, name))
			return (long)i;
	return -1;
}

int queue_cancel(struct queue *q, int64_t step, const char *name)
{
	long i = queue_find(q, step);

	if (i < 0 || (name && strcmp(q->v[i].name, name)))
		return 0;
	remove_at(q, (size_t)i);
	return 1;
}

size_t queue_cancel_name(struct queue *q, const char *name)
{
	size_t k = 0;
	long i;

	while ((i = queue_find_name(q, name)) >= 0) {
		remove_at(q, (size_t)i);
		k++;
	}
	return k;
}

/* ---- alternates ------------------------------------------------------------------------ */

static long alt_find_name(const struct queue *q, const char *name)
{
	for (size_t i = 0; i < q->n_alt; i++)
		if (!strcmp(q->alt[i].name, name))
			return (long)i;
	return -1;
}

static void alt_remove_at(struct queue *q, size_t i)
{
	queue_entry_release(&q->alt[i]);
	memmove(q->alt + i, q->alt + i + 1, (q->n_alt - i - 1) * sizeof(*q->alt));
	q->n_alt--;
}

int queue_alt_put(struct queue *q, const char *name, const char *path, int64_t step)
{
	if (alt_find_name(q, name) >= 0)
		return -EEXIST;
	if (q->n_alt >= q->o.depth)
		return -ENOSPC;
	if (q->n_alt == q->cap_alt) {
		q->cap_alt = q->cap_alt ? 2 * q->cap_alt : 8;
		q->alt = gw_realloc(q->alt, q->cap_alt * sizeof(*q->alt));
	}
	q->alt[q->n_alt++] = (struct queue_entry){ gw_strdup(name), gw_strdup(path), step, 0, 0 };
	return 0;
}

int queue_alt_promote(struct queue *q, int64_t step)
{
	for (size_t i = 0; i < q->n_alt; i++) {
		if (q->alt[i].step != step)
			continue;
		if (queue_find(q, step) >= 0)
			return 0;
		/* Not refused for depth: it stands in for an entry just gone. */
		insert(q, q->alt[i].name, q->alt[i].path, step, 0, 0);
		alt_remove_at(q, i);
		return 1;
	}
	return 0;
}

size_t queue_alt_cancel_name(struct queue *q, const char *name)
{
	long i = alt_find_name(q, name);

	if (i < 0)
		return 0;
	alt_remove_at(q, (size_t)i);
	return 1;
}

size_t queue_alt_drop(struct queue *q, int64_t step, char ***ret_names)
{
	char **names = NULL;
	size_t k = 0;

	for (size_t i = q->n_alt; i-- > 0;) {
		if (q->alt[i].step != step)
			continue;
		if (ret_names) {
			names = gw_realloc(names, (k + 2) * sizeof(*names));
			names[k] = q->alt[i].name;
			names[k + 1] = NULL;
			q->alt[i].name = NULL;
		}
		k++;
		alt_remove_at(q, (size_t)i);
	}
	if (ret_names)
		*ret_names = names;
	return k;
}

size_t queue_alt_count(const struct queue *q)
{
	return q->n_alt;
}

size_t queue_count(const struct queue *q)
{
	return q->n;
}

const struct queue_entry *queue_at(const struct queue *q, size_t i)
{
	GW_BUG_ON(i >= q->n);
	return &q->v[i];
}
