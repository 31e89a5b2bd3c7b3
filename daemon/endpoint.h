/*
 * endpoint.h — what the daemon knows about a ZeroMQ endpoint string without
 * opening it: whether it has the form the config accepts, and whether it
 * reaches this host only.
 *
 * Two owners need the same answers: the config reader refuses a remote
 * endpoint without CURVE, naming the key and line; the publisher refuses it
 * again when it binds, whoever built its options.  Both ask here, so the two
 * can never disagree.  config.c's fuzz target #includes endpoint.c with it.
 *
 * Threads: pure functions of their argument, any thread.
 */
#ifndef GW_DAEMON_ENDPOINT_H
#define GW_DAEMON_ENDPOINT_H

#include <stdbool.h>

#include "engine/error.h"

/* 0 for "tcp://HOST:PORT" or "ipc://PATH"; -EINVAL, with a message quoting
 * the value, for anything else. */
int endpoint_check(const char *endpoint, struct gw_err *err);

/* True if an endpoint reaches this host only: ipc://, inproc://, tcp:// on
 * 127.0.0.0/8, [::1] or localhost.  Everything else (including the
 * wildcard "*" and interface names) counts as remote. */
bool endpoint_is_local(const char *endpoint);

#endif
