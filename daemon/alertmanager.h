/*
 * alertmanager.h — the daemon's native sender to Prometheus Alertmanager
 * (API v2): the firing alerts POSTed to <url>/api/v2/alerts as
 * PostableAlerts, re-sent every resend_ms, and each resolution sent with
 * its endsAt until a POST carrying it succeeds.
 *
 * Design.  One target per configured URL, each on its own: at most one
 * POST in flight, a uv timer for the next one.  A POST carries every alert
 * firing at the moment it is built (read from the struct alerts, whose
 * firing set alerts_restore rebuilt from the journal, so a restart or an
 * unreachable Alertmanager loses nothing) and the target's resolutions not
 * yet delivered.  The body is a JSON array of
 *   {"labels": {alertname, run, group, metric},
 *    "annotations": {summary, description}, "startsAt"}
 * for a firing alert (no endsAt: Alertmanager then keeps it for its
 * resolve_timeout after each POST, which is why it is re-sent), and the
 * same with "endsAt" (the time it resolved, in the past) for a resolution.
 * After a 2xx answer the next POST is due after resend_ms, or at once when
 * something changed meanwhile; after a failure (no connection, a timeout
 * of timeout_ms, any other status) it is logged, counted in the status,
 * and retried after 0.5 s, 1 s, 2 s, ... at most resend_ms.  Undelivered
 * resolutions are kept up to AM_RESOLVED_MAX per target (the oldest are
 * dropped, with a warning: Alertmanager resolves those itself after its
 * resolve_timeout, as nothing re-sends them).
 *
 * Transfers run in libcurl's multi interface driven by the daemon's libuv
 * loop (CURLMOPT_SOCKETFUNCTION onto uv_poll handles, CURLMOPT_TIMERFUNCTION
 * onto one uv timer), so nothing blocks the loop; name resolution is
 * libcurl's threaded resolver.  TLS certificates are always verified
 * (ca_file, or libcurl's default bundle).
 *
 * Threads: the loop thread only.  Allocation failures abort.
 */
#ifndef GW_DAEMON_ALERTMANAGER_H
#define GW_DAEMON_ALERTMANAGER_H

#include <cJSON.h>
#include <stdint.h>
#include <uv.h>

#include "alert.h"
#include "engine/error.h"

#define AM_RESOLVED_MAX 10000 /* undelivered resolutions kept per target */
#define AM_RESTORE_MAX 100    /* resolutions alertmanager_restore queues */
#define AM_BACKOFF_MIN_MS 500

struct am_opts {
	const char *const *urls;       /* [n_urls] base URLs; "/api/v2/alerts" is appended */
	int n_urls;
	uint64_t resend_ms, timeout_ms;
	const char *user;              /* basic auth, with password_file; NULL or "" = none */
	const char *password_file;
	const char *bearer_token_file; /* NULL or "" = none */
	const char *ca_file;           /* NULL or "" = libcurl's default */
	/* Called (when not NULL) after each POST ends, so the status can be
	 * shown again; not after alertmanager_close. */
	void (*changed)(void *ud);
	void *ud;
};

struct alertmanager;

/*
 * A sender on `loop` for the firing set of `alerts` (borrowed: it must
 * outlive the sender) to every URL of o (copied).  Reads the password or
 * token file now.  The first POST to each target goes out at once (the
 * firing set as restored, with nothing resolved).
 * Errors: -EINVAL for no URL; a file's read error (its message names it);
 * -ENOMEM/-EIO when libcurl cannot start.
 */
int alertmanager_new(uv_loop_t *loop, const struct am_opts *o, const struct alerts *alerts,
		     struct alertmanager **ret, struct gw_err *err);

/*
 * A transition was applied to the firing set: `event` is the journaled
 * alert event (borrowed; alert.h's shape).  A resolution is queued for
 * every target; a firing takes back a queued resolution of the same
 * alert.  Either way each idle target POSTs at once, and a busy one right
 * after its POST ends.
 */
void alertmanager_transition(struct alertmanager *m, const cJSON *event);

/*
 * Start-up: queue, for every target, the resolutions of the journal's
 * alert events (borrowed: journal_alerts' array) whose alert did not fire
 * again after, at most the last AM_RESTORE_MAX.  Which of them a previous
 * run delivered is not recorded, so they go once more (Alertmanager takes
 * a resolution it already has, or never had, without harm); one that was
 * not delivered before a restart is not lost.
 */
void alertmanager_restore(struct alertmanager *m, const cJSON *events);

/*
 * The targets as a new cJSON array (caller frees), for the status:
 * [{"url", "ok": the last POST succeeded (false before any), "sent": POSTs
 *   that succeeded, "failures": failed POSTs in a row, "failed_total",
 *   "last_error": its message (absent when none yet), "last_ok": RFC 3339
 *   time of the last success (absent when none), "resolved_pending"}].
 */
cJSON *alertmanager_status_json(const struct alertmanager *m);

/* Abort the POSTs in flight, close the handles; the memory goes when the
 * last handle's close callback has run (accepts NULL).  Undelivered
 * resolutions are dropped (a warning says how many). */
void alertmanager_close(struct alertmanager *m);

#endif
