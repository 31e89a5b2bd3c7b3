/*
 * api.h — the requests `grokwatch serve` answers, as a path and its query
 * parameters checked into a struct api_req, or refused with an HTTP
 * status and a one-line reason.  Pure: no HTTP library, no client, no
 * allocation; any thread.
 *
 *   /  /index.html  /dash.js          the page and its script
 *   /metrics                           Prometheus text exposition
 *   /events                            Server-Sent Events for live pages
 *   /api/series?run=                   the page's data (board.h)
 *   /api/snapshot?run=&from=&to=       the daemon's snapshot reply
 *   /api/history?run=&metric=&group=&from=&to=   the daemon's history reply
 *   /api/result?run=&step=             one result, whole (expert load)
 *
 * run may be left out where the bridge follows one daemon; steps are
 * decimal integers 0 to API_STEP_MAX; metric is a dotted path of
 * [A-Za-z0-9_] words; group defaults to "all".  An unknown or repeated
 * parameter, or a value over API_VALUE_MAX bytes, is refused (400); an
 * unknown path is 404.
 */
#ifndef GW_CLI_API_H
#define GW_CLI_API_H

#include <stddef.h>
#include <stdint.h>

#define API_VALUE_MAX 256
#define API_PATH_MAX 2048
#define API_PARAMS_MAX 8
#define API_STEP_MAX 999999999999999LL

enum api_route {
	API_PAGE,
	API_SCRIPT,
	API_METRICS,
	API_EVENTS,
	API_SERIES,
	API_SNAPSHOT,
	API_HISTORY,
	API_RESULT,
};

struct api_param {
	const char *key, *value;
};

struct api_req {
	enum api_route route;
	const char *run;     /* NULL where not given */
	const char *metric;  /* API_HISTORY */
	const char *group;   /* API_HISTORY, default "all" */
	int64_t from, to;    /* -1 = open end */
	int64_t step;        /* API_RESULT */
};

/*
 * Check a request: its path (without the query) and n parameters
 * (borrowed: the request keeps pointers into them).  Returns 0 with *ret
 * filled, or 404 / 400 with why[] holding the reason (one line, no full
 * stop), e.g. "unknown parameter 'foo' (run, metric, group, from, to)".
 */
int api_parse(const char *path, const struct api_param *p, size_t n, struct api_req *ret,
	      char *why, size_t why_size);

#endif
