/*
 * series.h — a step-ordered series of JSON results, the latest per step.
 *
 * The journal keeps the daemon's one store of results in one (state.h:
 * alerts, snapshots and history read it; the publisher only borrows it);
 * it also holds the failures.  Results arrive in any step order (a late
 * checkpoint with an older step takes its place in the series), and a
 * second result for a step replaces the first.  Lookups are by binary search; an insertion
 * moves the tail of the array, which for the ~1e5 checkpoints of a long
 * run is cheap next to a forward pass.
 *
 * Ownership: the series owns every cJSON put into it.  Not thread safe;
 * the daemon uses a series from the loop thread only.
 */
#ifndef GW_DAEMON_SERIES_H
#define GW_DAEMON_SERIES_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>

struct series;

struct series *series_new(void);
void series_free(struct series *s); /* accepts NULL; frees every item */

/* Put `item` (ownership moves to the series) as the result of `step`,
 * replacing and freeing any earlier one.  Returns 1 if it replaced one,
 * 0 if the step is new. */
int series_put(struct series *s, int64_t step, cJSON *item);

/* Remove the result of `step`, if any (freed).  Returns 1 if removed. */
int series_remove(struct series *s, int64_t step);

/* The result of `step`, or NULL.  Borrowed: valid until the next put or
 * remove of that step. */
const cJSON *series_get(const struct series *s, int64_t step);

/* Number of steps, and the i-th (0 <= i < count) in increasing step order. */
size_t series_count(const struct series *s);
int64_t series_step_at(const struct series *s, size_t i);
const cJSON *series_at(const struct series *s, size_t i);
/* A number that changes whenever the i-th item is replaced (no two puts
 * of a series share one): what a cache of the item keys on. */
uint64_t series_gen_at(const struct series *s, size_t i);
/* A number that changes with every put (removals aside). */
uint64_t series_version(const struct series *s);

/* Index of the first step >= `step` (series_count if none). */
size_t series_lower_bound(const struct series *s, int64_t step);

#endif
