/*
 * fetch.h — one metric's series from one daemon, for history and plot:
 * checked first against the names the daemon's latest result holds, so a
 * typo is refused with the valid names instead of printing a column of
 * "-".
 *
 * Two kinds of metric.  A group's value ("pathway_distance",
 * "memorized.loss": a dotted path under result.groups[group]) comes from
 * the daemon's history query.  A run's value, a path from the result's
 * root that starts with "health." ("health.overall.imbalance",
 * "health.layers.3.dead_experts") or is "churn", has no group; it comes
 * from a snapshot of the steps asked for.
 */
#ifndef GW_CLI_FETCH_H
#define GW_CLI_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "grokwatch.h"

struct fetch_series {
	char run[128];
	size_t n;
	int64_t *x;    /* steps, increasing */
	double *y;     /* NaN where the value is absent or null */
	char *json;    /* the reply as JSON: the daemon's history reply, or one of
			  the same shape (group null) for a run's value */
};

/* true for a run's value (health.*, churn, trainer.*: the trainer's own
 * loss and learning rate): no group applies. */
bool fetch_is_run_metric(const char *metric);

/*
 * Refuse an unknown metric or group, naming the valid ones: asks daemon i
 * for its latest result.  Returns 0 (known, or the daemon has no result
 * yet to tell), -EINVAL (why[]: "unknown metric 'x' (valid: ...)" or
 * "unknown group 'g' (valid: ...)"), or a query's error (why[] from the
 * client).
 */
int fetch_check(struct gw_client *c, size_t i, const char *metric, const char *const *groups,
		size_t ngroups, char *why, size_t why_size);

/* The series of metric in group (ignored for a run's value) from..to.
 * Errors: the query's (why[] from the client), -ENOMEM. */
int fetch_series(struct gw_client *c, size_t i, const char *metric, const char *group,
		 int64_t from, int64_t to, struct fetch_series *ret, char *why, size_t why_size);

void fetch_series_release(struct fetch_series *s);

#endif
