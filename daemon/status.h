/*
 * status.h — the daemon's status, as heartbeats, snapshots and "status"
 * messages show it (status_json) and as systemd's STATUS= line reads
 * (status_line).  Built from a struct status_info the caller fills from
 * its modules, so this module owns only the shape of the object (SPEC §5,
 * publish.h) and holds no state.
 *
 * The object: {"state": "idle" | "computing" | "stopping", "root",
 * "watch_mode" ("none" without a watcher), "pending", "pending_dirs": every
 * directory the watcher has seen and not computed, in name order, at most
 * STATUS_PENDING_SHOWN of them [{"checkpoint", "step" (null when not
 * known), "why" ("quiet", "incomplete", "no_step", "refused",
 * "malformed"), "reason"}] (watch.h) and, when there are more,
 * "pending_dirs_more": how many were left out; "queue", "job": null
 * | {"step", "checkpoint", "attempt", "layers_done", "n_layers",
 * "running_sec"}, "results", "last_step" (null when none), "failures",
 * "failed": the last 5 failures [{"step", "reason"}], "probe_hash" (when a
 * probe is configured), "alerts" (the firing alerts, with alerts on),
 * "alertmanager" (with alerts.alertmanager.urls: each target's sending,
 * alertmanager_status_json)}.
 *
 * Threads: the loop thread (it reads the job's progress atomics).
 * Allocation failures abort.
 */
#ifndef GW_DAEMON_STATUS_H
#define GW_DAEMON_STATUS_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "alert.h"
#include "alertmanager.h"
#include "job.h"
#include "series.h"
#include "watch.h"

#define STATUS_PENDING_SHOWN 100

struct status_info {
	bool stopping;
	const char *root;
	const char *watch_mode;        /* NULL without a watcher */
	const struct watch *watch;     /* NULL without a watcher */
	size_t pending, queued;
	const struct job *job;         /* the running job, or NULL */
	double running_sec;            /* how long it has run */
	const struct series *results;  /* the store (state_results) */
	const struct series *failures; /* state_failures */
	const char *probe_hash;        /* NULL without a probe */
	const struct alerts *alerts;   /* NULL with alerts off */
	const struct alertmanager *am; /* NULL without the sender */
};

/* A new status object (caller frees). */
cJSON *status_json(const struct status_info *in);

/* The STATUS= line into buf (always NUL-terminated, cut to size). */
void status_line(const struct status_info *in, char *buf, size_t size);

#endif
