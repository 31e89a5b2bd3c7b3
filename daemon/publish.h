/*
 * publish.h — the daemon's ZeroMQ side: a PUB socket for the message
 * stream and a ROUTER socket answering snapshot and history queries, both
 * driven from the libuv loop thread.
 *
 * Messages (SPEC §5) are two frames, [topic, JSON body].
 *  - topic = "<type>.<run>", e.g. "metrics.olmoe-7b": it starts with the
 *    type, so a subscriber can subscribe to "metrics." for every run it
 *    connects to, or to "" for everything; ZeroMQ matches prefixes, so a
 *    client wanting one run compares the topic exactly.
 *  - every body starts with "type", "seq", "epoch", "run", "time" (Unix
 *    seconds, ms resolution), then the fields the caller gave.
 *  - seq: per daemon process, 1 for the first message, +1 for every message
 *    but heartbeats; a heartbeat carries the seq of the last message sent,
 *    so even an idle stream tells a subscriber what it missed.  seq is not
 *    persisted: results are (journal.h), and a restart starts a new
 *    "epoch" (128 random bits, hex) with seq from 1.  A subscriber that sees
 *    a new epoch re-reads the snapshot instead of reporting a gap; within an
 *    epoch, a jump in seq is a gap.  Gap detection needs every message type
 *    of the run (subscribe to "" or to each type).
 *  - a body over max_message_bytes is not sent; an "error" message takes its
 *    seq instead: {"error": "message too large", "dropped_type", "bytes",
 *    "limit", "step" (if the dropped body had one)}.
 *  - PUB never blocks: at the high-water mark ZeroMQ drops for that
 *    subscriber, who sees the gap in seq.
 *
 * Queries (ROUTER; a DEALER sends [body], a REQ sends ["", body]; the reply
 * uses the same envelope).  Bodies, at most limits.request_bytes (ZeroMQ's
 * MAXMSGSIZE: a larger frame drops the connection without a reply):
 *   {"req": "snapshot", "from"?: step, "to"?: step, "id"?: ...}
 *     -> {"type": "snapshot", "seq", "epoch", "run", "status", "results": [...]}
 *        results are the store's (publish_set_results: latest per step, in
 *        step order) as metrics bodies, each with the seq and time of the
 *        message that carried it (seq 0: none of this epoch); "seq" is the
 *        last seq sent when the snapshot was taken.
 *   {"req": "history", "metric": "pathway_distance", "group": "math",
 *    "from"?: step, "to"?: step, "id"?: ...}
 *     -> {"type": "history", "seq", "epoch", "run", "metric", "group",
 *         "points": [[step, value-or-null], ...]}
 *        value = result.groups[group] followed along the dotted metric path
 *        ("memorized.pathway_distance") in the store, as alerts judge it;
 *        null where absent or not a number.
 *   {"req": "alerts", "resolved"?: n (0 .. 1000, default 20), "id"?: ...}
 *     -> {"type": "alerts", "seq", "epoch", "run", "firing": [...],
 *         "resolved": [...]}
 *        firing: the status object's "alerts" (the firing set), [] without;
 *        resolved: the alerts of the last n "resolved" events of the
 *        journal (publish_set_alerts), oldest first, each an Alertmanager
 *        alert object (status "resolved", labels, annotations, startsAt,
 *        endsAt, fingerprint) with the event's "step"; an alert firing
 *        again since is left out.
 *   anything else -> {"type": "error", "error": "..."}; "id" is echoed.
 *   A reply over limits.reply_bytes becomes an error reply (narrow from/to).
 * Splicing, for a late subscriber: connect and subscribe, wait for the first
 * message (a heartbeat arrives every heartbeat_ms), ask for a snapshot, then
 * drop live messages with seq <= snapshot.seq and apply the rest: no gap,
 * no duplicate.  Waiting for the first message matters: until one arrives
 * the subscription may not have reached the daemon yet.
 * (libgrokwatch asks at once instead, to show the catch-up without waiting
 * for a heartbeat: a message it missed before its subscription was live
 * shows up as a seq gap at the next message or heartbeat, and it asks again.)
 *
 * The loop and ZMQ_FD.  ZeroMQ's ZMQ_FD is not a data fd: it signals that
 * the socket's state *may* have changed, edge-triggered, and it is reset by
 * any zmq call on the socket (a zmq_send included).  So on every wake-up
 * the ROUTER is drained while ZMQ_EVENTS says POLLIN, re-checking after
 * each reply is sent; a burst is cut into batches of 64 requests, and an
 * uv_idle handle (which makes the loop poll without blocking) continues the
 * drain on the next turn, because the fd will not signal again for
 * requests already queued.  The PUB socket's fd is watched too, only so
 * ZMQ_EVENTS is read and ZeroMQ processes subscriptions promptly while the
 * daemon is idle.
 *
 * CURVE: with a secret key file (Z85, 40 characters, trailing white space
 * allowed), both sockets are CURVE servers; a public key file, if given,
 * must match the secret key.  This is encryption plus server
 * authentication: any client that knows the server's public key may
 * connect (no ZAP client allow-list yet).  A non-loopback endpoint without
 * CURVE is refused unless allow_insecure_remote.
 *
 * Threads: everything here runs on the loop thread that owns `loop`; the
 * ZeroMQ context may be shared, the sockets may not.
 */
#ifndef GW_DAEMON_PUBLISH_H
#define GW_DAEMON_PUBLISH_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "engine/error.h"
#include "series.h"

struct publish_opts {
	const char *endpoint;       /* PUB bind endpoint; "tcp://127.0.0.1:*" picks a port */
	const char *query_endpoint; /* ROUTER bind endpoint */
	const char *run;            /* run name, in topics and bodies */
	int sndhwm;
	size_t max_message_bytes;
	size_t request_bytes;
	size_t reply_bytes;
	uint64_t heartbeat_ms;      /* 0 = no heartbeat timer */
	const char *curve_secret_file; /* NULL or "" = CURVE off */
	const char *curve_public_file; /* NULL or "" = not checked */
	bool allow_insecure_remote;
	/* Connections each socket keeps (0: no bound): a connection past it is
	 * closed as soon as ZeroMQ reports it accepted (a socket monitor), so
	 * that connections cannot use up the file descriptors the daemon
	 * needs (limits.connections). */
	size_t max_connections;
};

struct publish;

/*
 * Create both sockets in `zctx` (borrowed; must outlive the publisher),
 * bind them, and start watching them on `loop`.
 * Errors: -EINVAL (bad options, insecure remote endpoint, bad key file),
 * -ENOTSUP (CURVE asked for but libzmq lacks it), -zmq_errno() from
 * socket/bind (e.g. -EADDRINUSE), -errno reading key files.
 */
int publish_new(uv_loop_t *loop, void *zctx, const struct publish_opts *o,
		struct publish **ret_publish, struct gw_err *err);

/*
 * Stop and close: the uv handles close, and in their last close callback
 * the sockets are closed and the publisher freed; so run the loop once more
 * after this.  Accepts NULL.  Nothing may be called on p afterwards.
 */
void publish_close(struct publish *p);

/* Connections closed so far for being over max_connections. */
uint64_t publish_refused(const struct publish *p);

/*
 * Send one message of `type` (metrics, progress, alert, status, error)
 * with the fields of `body` (ownership moves here; NULL = no fields;
 * "type"/"seq"/"epoch"/"run"/"time" in it are replaced).  Returns the seq
 * used (> 0), or -zmq_errno() if ZeroMQ refused the send.
 */
int64_t publish_send(struct publish *p, const char *type, cJSON *body);

/*
 * The result store snapshots and history answer from: a borrowed, read-only
 * view (state_results: the daemon's one store, state.h), which must outlive
 * the publisher or be replaced; NULL (the start) answers with no results.
 * Results in it are metrics objects without "type"; the publisher adds the
 * header as it answers.
 */
void publish_set_results(struct publish *p, const struct series *results);

/* The journal's alert events the "alerts" query answers from (borrowed,
 * read-only: a cJSON array, state_alerts; it may grow between calls). */
void publish_set_alerts(struct publish *p, const cJSON *events);

/*
 * Publish a result (borrowed: the store's entry for its step, put there
 * after the journal append succeeded) as a "metrics" message, and remember
 * the seq and time it went out under: snapshots show the store's result
 * for that step with them (seq 0 for a step no message of this epoch
 * carried, e.g. one replayed from the journal at start-up; a memorized
 * subset recomputed in the store since keeps the seq of the message that
 * carried the step).  Returns the seq, -EINVAL without an integer "step",
 * or -zmq_errno().
 */
int64_t publish_result(struct publish *p, const cJSON *result);

/* Replace the status object shown in heartbeats and snapshots (ownership
 * moves here). */
void publish_set_status(struct publish *p, cJSON *status);

/* On SIGHUP: a new heartbeat interval (0 = none), a new reply limit. */
void publish_set_heartbeat(struct publish *p, uint64_t heartbeat_ms);
void publish_set_reply_bytes(struct publish *p, size_t reply_bytes);

/* Send a heartbeat now (the timer does this every heartbeat_ms). */
int publish_heartbeat(struct publish *p);

uint64_t publish_seq(const struct publish *p);     /* last seq sent, 0 before any */
const char *publish_epoch(const struct publish *p); /* 32 hex digits */

/* The endpoint actually bound (after a "*" port): query = false for PUB,
 * true for ROUTER.  Copies into buf; 0 or -ENOSPC. */
int publish_endpoint(const struct publish *p, bool query, char *buf, size_t size);

#endif
