/*
 * config_opts.h — the one place where a struct config becomes the options
 * each module takes.  The modules (alert, hook, publish, queue, watch, log) know nothing of the
 * config file: they take their own options structs; the wiring (run.c)
 * builds those here, and so do tests that start from a config text.
 *
 * Ownership: the options borrow every string from `c`, so `c` must outlive
 * them until the module's constructor has copied them (alerts_new,
 * hooks_new and publish_new all copy).  Arrays the conversion allocates are
 * freed by the matching _release, which accepts a zeroed struct.
 *
 * Threads: pure conversions, any thread.  Allocation failures abort.
 */
#ifndef GW_DAEMON_CONFIG_OPTS_H
#define GW_DAEMON_CONFIG_OPTS_H

#include "alert.h"
#include "alertmanager.h"
#include "config.h"
#include "engine/probe.h"
#include "hook.h"
#include "publish.h"
#include "queue.h"
#include "watch.h"

/* publish.* and limits.{request,reply}_bytes; `run` is the run name
 * (config run, or the one the wiring derived from watch.root). */
void config_opts_publish(const struct config *c, const char *run, struct publish_opts *ret);

/* alerts.* but the hooks; ret->plateaus is allocated. */
void config_opts_alerts(const struct config *c, struct alert_opts *ret);
void config_opts_alerts_release(struct alert_opts *o);

/* alerts.hooks and alerts.hook_*; ret->hooks is allocated. */
void config_opts_hooks(const struct config *c, struct hook_opts *ret);
void config_opts_hooks_release(struct hook_opts *o);

/* alerts.alertmanager.*: nothing is allocated (urls borrows c's array). */
void config_opts_alertmanager(const struct config *c, struct am_opts *ret);

/* probe.*, for probe_load (engine/probe.h); probe.path "" is the caller's
 * to handle (no probe). */
void config_opts_probe(const struct config *c, struct probe_load_opts *ret);

/* jobs.retry_backoff_ms, .retry_backoff_max_ms, .max_retries and
 * limits.queue_depth. */
void config_opts_queue(const struct config *c, struct queue_opts *ret);

/* watch.* and limits.checkpoints; the patterns are borrowed from c. */
void config_opts_watch(const struct config *c, struct watch_opts *ret);

/* log_level as log.h's enum log_level. */
int config_opts_log_level(const struct config *c);

#endif
