/*
 * queue.h — the checkpoints waiting to be computed, in step order, with
 * retries and their backoff.  Pure: no libuv, no clock of its own; the
 * caller passes `now` (milliseconds on any monotonic clock, uv_now in the
 * daemon) wherever time matters.
 *
 * One entry per step: {name, path, step}, the failed attempts so far and
 * the time before which it is not tried again.  Entries come out lowest
 * step first among those whose time has come (queue_next), so a burst of
 * checkpoints is computed in step order and a step waiting for its retry
 * does not hold back the others.
 *
 * Retries: attempt k (1-based) that failed is tried again after
 * backoff_ms * 2^(k-1), capped at backoff_max_ms, while k <= max_retries
 * (jobs.retry_backoff_ms, jobs.retry_backoff_max_ms, jobs.max_retries);
 * after that queue_retry gives up and the caller records the failure.
 *
 * Depth: queue_put refuses a new step once `depth` entries wait
 * (limits.queue_depth); a retry puts back an entry the queue held a moment
 * before and is not refused.
 *
 * Alternates: a second directory of a step already queued or computing
 * (renamed to another name of the same step, or copied) is not queued
 * but remembered (queue_alt_put); when the entry or job it stands behind
 * goes without a result, queue_alt_promote queues it in its place, and
 * when the step has its result queue_alt_drop forgets it.
 *
 * Ownership: the queue owns copies of every name and path; entries it
 * hands out (queue_next) are the caller's, released with
 * queue_entry_release.  Threads: one thread (the loop's); nothing is
 * locked.  Allocation failures abort.
 */
#ifndef GW_DAEMON_QUEUE_H
#define GW_DAEMON_QUEUE_H

#include <stddef.h>
#include <stdint.h>

struct queue_opts {
	uint64_t backoff_ms;     /* the first retry's wait */
	uint64_t backoff_max_ms; /* the longest wait */
	int64_t max_retries;     /* retries after the first attempt */
	size_t depth;            /* entries queue_put accepts */
};

struct queue_entry {
	char *name, *path;
	int64_t step;
	int attempts;          /* failed attempts so far */
	uint64_t not_before;   /* `now` before which it is not handed out */
};

struct queue;

struct queue *queue_new(const struct queue_opts *o); /* o copied */
void queue_free(struct queue *q);                    /* accepts NULL */
/* New limits (SIGHUP): they apply to the next put and retry. */
void queue_set_opts(struct queue *q, const struct queue_opts *o);

/*
 * Queue checkpoint `name` at `path` for `step`, due at once, no attempts.
 * Errors: -EEXIST (step already queued, whatever its name: one entry per
 * step), -ENOSPC (depth entries already wait).
 */
int queue_put(struct queue *q, const char *name, const char *path, int64_t step);

/*
 * Attempt `attempt` (1-based) of `step` failed with a transient error:
 * queue it again with its backoff.  Returns 1 when queued, *ret_backoff_ms
 * (if not NULL) the wait from `now`; 0 when the retries are spent (nothing
 * queued); -EEXIST when the step was queued again meanwhile.
 */
int queue_retry(struct queue *q, const char *name, const char *path, int64_t step, int attempt,
		uint64_t now, uint64_t *ret_backoff_ms);

/* As queue_retry, but never giving up: for a failure that ends by itself
 * (a full disk), tried again after the backoff of `attempt` (capped) for
 * as long as it lasts.  1, or -EEXIST. */
int queue_requeue(struct queue *q, const char *name, const char *path, int64_t step, int attempt,
		  uint64_t now, uint64_t *ret_backoff_ms);

/* The wait after failed attempt `attempt` (>= 1), as queue_retry uses it. */
uint64_t queue_backoff(const struct queue *q, int attempt);

/*
 * The lowest-step entry due at `now`: 1 and *ret filled (removed from the
 * queue; release it with queue_entry_release), or 0 when none is due, and
 * then *ret_wait_ms (if not NULL) is how long until the next one is,
 * UINT64_MAX when the queue is empty.
 */
int queue_next(struct queue *q, uint64_t now, struct queue_entry *ret, uint64_t *ret_wait_ms);
void queue_entry_release(struct queue_entry *e);

/* The index of `step`'s entry, or -1. */
long queue_find(const struct queue *q, int64_t step);
/* The index of the entry named `name`, or -1. */
long queue_find_name(const struct queue *q, const char *name);
/* Remove `step`'s entry if its name is `name` (NULL: any name).  Returns
 * 1 if one was removed, else 0. */
int queue_cancel(struct queue *q, int64_t step, const char *name);
/* Remove every entry named `name`.  Returns how many. */
size_t queue_cancel_name(struct queue *q, const char *name);
void queue_clear(struct queue *q);

/*
 * Remember `name` at `path` as another directory of `step`, which is
 * queued or computing from a different directory.  Errors: -EEXIST (name
 * already remembered), -ENOSPC (depth alternates already).
 */
int queue_alt_put(struct queue *q, const char *name, const char *path, int64_t step);
/* The entry or job of `step` went without a result: queue the oldest
 * alternate of step in its place (due at once, no attempts; not refused for
 * depth).  1 when one was queued; 0 when there is none or step is queued. */
int queue_alt_promote(struct queue *q, int64_t step);
/* The directory `name` went away: forget it as an alternate.  How many. */
size_t queue_alt_cancel_name(struct queue *q, const char *name);
/* Step has its result: forget its alternates.  Returns how many; with
 * ret_names, a NULL-terminated array of their names (NULL when none; the
 * caller frees each and the array). */
size_t queue_alt_drop(struct queue *q, int64_t step, char ***ret_names);
size_t queue_alt_count(const struct queue *q);

size_t queue_count(const struct queue *q);
/* The i-th entry in step order (borrowed); i < queue_count. */
const struct queue_entry *queue_at(const struct queue *q, size_t i);

#endif
