/*
 * notify.h — the systemd notification protocol (sd_notify) without
 * libsystemd: one datagram per state change to the AF_UNIX socket named by
 * $NOTIFY_SOCKET ("/path" or "@abstract-name").
 *
 * The daemon sends READY=1 once it serves, STATUS=... as it works,
 * RELOADING=1 (with MONOTONIC_USEC, as Type=notify-reload wants) when it
 * re-reads its config on SIGHUP and READY=1 after, STOPPING=1 on the way
 * out, and WATCHDOG=1 at half the interval notify_watchdog_usec gives.
 *
 * Ownership: notify_new reads $NOTIFY_SOCKET, opens the socket and unsets
 * the variable, so programs the daemon runs (alert hooks) do not inherit
 * it.  Without $NOTIFY_SOCKET every send is a no-op returning 0.
 * Threads: a send is one sendto(2); any thread may call, but the daemon
 * sends from the loop thread.
 */
#ifndef GW_DAEMON_NOTIFY_H
#define GW_DAEMON_NOTIFY_H

#include <stdint.h>

#include "engine/error.h"

struct notify;

/* Set up from $NOTIFY_SOCKET.  Errors: -EINVAL (the variable names no
 * usable AF_UNIX address), -errno from socket(2). */
int notify_new(struct notify **ret_notify, struct gw_err *err);
void notify_free(struct notify *n); /* accepts NULL */

/* Send `state` (one or more "KEY=VALUE" lines) as is, never blocking.
 * 0 or -errno (-EAGAIN when the receiver's queue is full). */
int notify_send(struct notify *n, const char *state);

int notify_ready(struct notify *n);
int notify_reloading(struct notify *n); /* RELOADING=1 and MONOTONIC_USEC= */
int notify_stopping(struct notify *n);
int notify_watchdog(struct notify *n);
/* STATUS=<text>; newlines in text become spaces (one line, as systemd
 * shows it). */
int notify_status(struct notify *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The watchdog interval systemd asks for, from $WATCHDOG_USEC, honoured
 * only if $WATCHDOG_PID is unset or names this process.  *ret_usec is 0
 * when there is no watchdog.  -EINVAL if a variable is set but not a
 * positive decimal number.  Send WATCHDOG=1 every ret_usec / 2.
 */
int notify_watchdog_usec(uint64_t *ret_usec, struct gw_err *err);

#endif
