/*
 * grokwatch.h — the subscriber library (libgrokwatch): follow one or more
 * grokwatchd daemons, catch up on what they published before you joined,
 * and ask them for the history of a metric.
 *
 * A daemon has two ZeroMQ endpoints: a PUB socket streaming messages
 * (topic "<type>.<run>", JSON body with "type", "seq", "epoch", "run",
 * "time", and for metrics "step" and "groups") and a query socket
 * answering snapshot and history requests.  A client:
 *
 *   struct gw_client *c;
 *   struct gw_msg *m;
 *   int64_t step;
 *   double d;
 *   int r;
 *
 *   if (gw_client_new(&c) < 0 || gw_client_connect(c, "tcp://127.0.0.1:5557") < 0)
 *           return 1;                               // queries go to port 5558
 *   while ((r = gw_client_next(c, 5000, &m)) == 0 || r == -ETIMEDOUT) {
 *           if (r == -ETIMEDOUT)
 *                   continue; // quiet, or a daemon not answering: gw_client_error says which
 *           if (gw_msg_step(m, &step) == 0 &&
 *               gw_msg_value(m, "all", "pathway_distance", &d) == 0)
 *                   printf("%lld %g\n", (long long)step, d);
 *           gw_msg_free(m);
 *   }
 *   fprintf(stderr, "%s\n", gw_client_error(c));    // -EPROTO, -EINTR, -ENOMEM
 *   gw_client_free(c);
 *
 * Catching up (the splice).  On connect the client subscribes to every
 * message of the daemon and asks for a snapshot at once.  It hands over
 * the snapshot's results (metrics messages, in step order, marked
 * gw_msg_replayed), then the live messages with a seq above the
 * snapshot's, so each result is seen once, without a gap.  Within one
 * daemon process (an "epoch") seq grows by one per message and heartbeats
 * carry the last seq sent: a jump means messages were lost (a slow
 * reader, or a subscription ZeroMQ had not yet forwarded when the
 * snapshot was taken), and the client takes a new snapshot and hands over
 * only the results it has not handed over yet.  A new epoch means the
 * daemon restarted: the client takes a new snapshot and again hands over
 * only results it has not seen (a result re-published for a step already
 * handed over, e.g. a checkpoint recomputed after the restart, is new and
 * is handed over).  Either way the caller gets a message of type "resync"
 * first, with "reason": "gap" or "restart".  Only metrics can be
 * recovered: progress, alert and error messages lost in a gap are gone.
 *
 * Errors: every int function returns 0 or a negative errno.  The library
 * never prints; after a failure gw_client_error() holds one line naming
 * the endpoint and what failed.  Output parameters (ret_*) are written
 * only on success.
 *
 * Threads: a gw_client and everything it hands out may be used by one
 * thread at a time (calls on one client must not overlap); different
 * clients may be used in different threads at once.  A gw_msg or
 * gw_history, once handed over, belongs to the caller and is independent
 * of the client (it may be read or freed after gw_client_free, in any
 * thread).  gw_endpoint_parse and gw_msg_parse are thread-safe.
 *
 * No libuv, ZeroMQ or cJSON type appears here; link with -lgrokwatch
 * (pkg-config grokwatch).
 */
#ifndef GROKWATCH_H
#define GROKWATCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GW_API __attribute__((visibility("default")))
#else
#define GW_API
#endif

/* Lengths, including the terminating NUL. */
#define GW_ENDPOINT_MAX 256
#define GW_ERROR_MAX 512

/* Steps: the library's "no bound" for history and snapshot ranges. */
#define GW_STEP_NONE (-1)

struct gw_client;
struct gw_msg;
struct gw_history;

/* ---- endpoints ------------------------------------------------------------ */

/*
 * Split a daemon endpoint spec into its PUB and query endpoints:
 *   "tcp://HOST:PORT"      -> PUB tcp://HOST:PORT, query tcp://HOST:PORT+1
 *   "PUB,QUERY"            -> both given (any ZeroMQ transport, e.g. ipc://)
 * HOST may be a name, an IPv4 address or [IPv6]; PORT is 1 to 65534.
 * Each output buffer must hold GW_ENDPOINT_MAX bytes.
 * Errors: -EINVAL (malformed, or a single non-tcp endpoint), -ENAMETOOLONG.
 */
GW_API int gw_endpoint_parse(const char *spec, char *ret_pub, char *ret_query);

/* ---- the client ------------------------------------------------------------ */

/* A new client with no daemon.  Errors: -ENOMEM, or -errno from ZeroMQ. */
GW_API int gw_client_new(struct gw_client **ret_client);

/* Close every socket and free the client and its undelivered messages.
 * Never blocks (pending requests are dropped).  Accepts NULL. */
GW_API void gw_client_free(struct gw_client *c);

/*
 * Follow one more daemon (endpoint spec as for gw_endpoint_parse) and ask
 * it for a snapshot.  Returns at once: ZeroMQ connects in the background,
 * so a daemon that is down shows only as a timeout later.  Daemons are
 * numbered 0, 1, ... in the order connected.
 * Errors: -EINVAL/-ENAMETOOLONG (spec), -ENOMEM, -E2BIG (more than 64
 * daemons), -errno from ZeroMQ.
 */
GW_API int gw_client_connect(struct gw_client *c, const char *endpoint);

/*
 * Hand over only messages whose topic ("<type>.<run>") starts with
 * `prefix`; several calls add alternatives.  With no filter every message
 * but heartbeats is handed over; heartbeats only through a filter that
 * matches them ("" or "heartbeat.").  Synthetic messages have the topic
 * "resync.<run>".  Filtering happens in the client: it always receives
 * every message, which gap detection needs.
 * Errors: -ENOMEM, -ENAMETOOLONG (over 255 bytes), -E2BIG (over 32 filters).
 */
GW_API int gw_client_subscribe(struct gw_client *c, const char *prefix);

/* How long a query (snapshot, history) may wait for its reply, default
 * 5000 ms; values below 1 are taken as 1. */
GW_API void gw_client_set_timeout(struct gw_client *c, int timeout_ms);

/*
 * CURVE: the daemon's public key (40 Z85 characters) for the daemons
 * connected after this call; the client uses a fresh key pair of its own.
 * NULL turns CURVE off again.  Errors: -EINVAL (not a Z85 key), -ENOTSUP
 * (libzmq without CURVE).
 */
GW_API int gw_client_set_server_key(struct gw_client *c, const char *z85);

/*
 * Wait up to timeout_ms (0 = do not wait, negative = no limit) for the
 * next message from any daemon, after the catch-up described above.
 * The message belongs to the caller (gw_msg_free).
 * Errors: -ETIMEDOUT (nothing to hand over in time; gw_client_error says
 * which daemons have not answered their snapshot request, if any),
 * -EPROTO (a daemon refused the snapshot request: the error names it and
 * gives the daemon's reason; that daemon is then left out), -ENOMEM,
 * -EINTR (a signal arrived), -ENOTCONN (no daemon connected).
 */
GW_API int gw_client_next(struct gw_client *c, int timeout_ms, struct gw_msg **ret_msg);

/* One line about the last failure, naming the endpoint ("" if none). */
GW_API const char *gw_client_error(const struct gw_client *c);

/* ---- daemons --------------------------------------------------------------- */

enum gw_daemon_state {
	GW_DAEMON_SYNCING = 1, /* snapshot asked for, not answered */
	GW_DAEMON_LIVE = 2,    /* caught up, following the stream */
	GW_DAEMON_FAILED = 3,  /* refused the snapshot request */
};

struct gw_daemon_info {
	const char *pub_endpoint;   /* borrowed from the client */
	const char *query_endpoint;
	const char *run;            /* "" until the daemon answered */
	const char *epoch;          /* "" until the daemon answered */
	enum gw_daemon_state state;
	uint64_t seq;               /* last seq applied */
	int64_t silent_ms;          /* since its last message or reply; -1 = never heard */
	uint64_t received;          /* messages received */
	uint64_t gaps;              /* resyncs after a gap */
	uint64_t restarts;          /* resyncs after a new epoch */
	uint64_t malformed;         /* messages dropped as malformed */
};

GW_API size_t gw_client_daemon_count(const struct gw_client *c);

/* Fill *ret_info for daemon i; the strings stay valid until the next call
 * on the client.  Errors: -ERANGE (no such daemon). */
GW_API int gw_client_daemon_info(const struct gw_client *c, size_t i,
				 struct gw_daemon_info *ret_info);

/* ---- queries (block up to the client's timeout) ------------------------------- */

/*
 * Ask daemon i for the history of `metric` (a dotted path inside a
 * group's values, e.g. "pathway_distance" or "memorized.loss") in `group`
 * ("all" for every sample), for steps from..to (GW_STEP_NONE = open end).
 * Live messages arriving meanwhile are kept for gw_client_next.
 * Errors: -ERANGE (no daemon i), -EINVAL (empty or over 128-byte metric
 * or group, from > to), -ETIMEDOUT (no reply), -EPROTO (the daemon
 * answered with an error or a malformed reply; see gw_client_error),
 * -ENOMEM.
 */
GW_API int gw_client_history(struct gw_client *c, size_t i, const char *metric, const char *group,
			     int64_t from, int64_t to, struct gw_history **ret_history);

/*
 * Ask daemon i for a snapshot of the results for steps from..to
 * (GW_STEP_NONE = open end; from > every step gives just the header and
 * "status").  The reply comes back as a message of type "snapshot" to read
 * with the gw_msg_get_* accessors ("status", "results", "alerts" if the
 * daemon sends them).  It does not change what gw_client_next hands over.
 * Errors as for gw_client_history.
 */
GW_API int gw_client_snapshot(struct gw_client *c, size_t i, int64_t from, int64_t to,
			      struct gw_msg **ret_snapshot);

/*
 * Ask daemon i for its alerts: the firing ones and the last `resolved`
 * (0 .. 1000) resolutions of its journal, oldest first, leaving out an
 * alert firing again since.  The reply comes back as a message of type
 * "alerts" with arrays "firing" and "resolved" of Alertmanager alert
 * objects (status, labels, annotations, startsAt, endsAt, fingerprint;
 * a resolved one also "step"), read with the gw_msg_get_* accessors.
 * Errors as for gw_client_history (-EINVAL for `resolved` out of range).
 */
GW_API int gw_client_alerts(struct gw_client *c, size_t i, int resolved,
			    struct gw_msg **ret_alerts);

/* ---- history ----------------------------------------------------------------- */

GW_API void gw_history_free(struct gw_history *h); /* accepts NULL */
GW_API const char *gw_history_run(const struct gw_history *h);
GW_API const char *gw_history_metric(const struct gw_history *h);
GW_API const char *gw_history_group(const struct gw_history *h);
GW_API const char *gw_history_json(const struct gw_history *h); /* the reply as received */
GW_API size_t gw_history_count(const struct gw_history *h);
/* Point i (in step order): 0 with step and value; -ENODATA with only the
 * step where the value is null (absent at that step); -ERANGE past the end.
 * ret_value may be NULL. */
GW_API int gw_history_point(const struct gw_history *h, size_t i, int64_t *ret_step,
			    double *ret_value);

/* ---- messages ----------------------------------------------------------------- */

/*
 * Parse one message as received: topic (NUL-terminated) and body (len
 * bytes, JSON).  The body must be a JSON object with a string "type"; at
 * most 256 MiB.  Messages from gw_client_next have been through this.
 * Errors: -EINVAL (not a JSON object, no "type", text after the JSON, a
 * NUL byte), -EMSGSIZE, -ENOMEM.
 */
GW_API int gw_msg_parse(const char *topic, const char *body, size_t len,
			struct gw_msg **ret_msg);

GW_API void gw_msg_free(struct gw_msg *m); /* accepts NULL */

GW_API const char *gw_msg_topic(const struct gw_msg *m);
GW_API const char *gw_msg_type(const struct gw_msg *m);  /* "metrics", "heartbeat", ... */
GW_API const char *gw_msg_run(const struct gw_msg *m);   /* "" if absent */
GW_API const char *gw_msg_epoch(const struct gw_msg *m); /* "" if absent */
GW_API uint64_t gw_msg_seq(const struct gw_msg *m);      /* 0 if absent */
GW_API double gw_msg_time(const struct gw_msg *m);       /* Unix seconds; 0 if absent */
/* The raw JSON body (for a replayed result, the result as the snapshot
 * held it, re-serialized). */
GW_API const char *gw_msg_json(const struct gw_msg *m);
/* 1 if the message came from a snapshot rather than the live stream. */
GW_API int gw_msg_replayed(const struct gw_msg *m);
/* Index of the daemon it came from (0 for gw_msg_parse). */
GW_API size_t gw_msg_daemon(const struct gw_msg *m);

/* The checkpoint step.  Errors: -ENOENT (no integer "step"). */
GW_API int gw_msg_step(const struct gw_msg *m, int64_t *ret_step);

/* Groups of a metrics message ("all" included), in the body's order. */
GW_API size_t gw_msg_group_count(const struct gw_msg *m);
GW_API const char *gw_msg_group_name(const struct gw_msg *m, size_t i); /* NULL past the end */

/*
 * The value of `metric` (dotted path, e.g. "memorized.pathway_distance")
 * in `group`.  Errors: -ENOENT (no such group or metric), -ENODATA (null:
 * not defined at this step), -EINVAL (not a number).
 */
GW_API int gw_msg_value(const struct gw_msg *m, const char *group, const char *metric,
			double *ret_value);

/*
 * Any field, by a dotted path from the body's root: object keys, and
 * decimal indexes into arrays ("alerts.0.labels.alertname"); "" is the
 * root.  Keys holding a '.' cannot be reached this way (use gw_msg_value
 * for groups).
 */
enum gw_json_kind {
	GW_JSON_NULL = 1,
	GW_JSON_BOOL,
	GW_JSON_NUMBER,
	GW_JSON_STRING,
	GW_JSON_ARRAY,
	GW_JSON_OBJECT,
};
/* The kind at path, or -ENOENT. */
GW_API int gw_msg_get_kind(const struct gw_msg *m, const char *path);
/* Number of members of the array or object at path, or -ENOENT, -EINVAL
 * (not an array or object). */
GW_API int gw_msg_get_count(const struct gw_msg *m, const char *path);
/* Key of member i of the object at path; NULL if none. */
GW_API const char *gw_msg_get_key(const struct gw_msg *m, const char *path, size_t i);
/* The string at path (borrowed from m), or NULL if absent or not a string. */
GW_API const char *gw_msg_get_string(const struct gw_msg *m, const char *path);
/* The number (or bool, as 0/1) at path.  Errors: -ENOENT, -ENODATA (null),
 * -EINVAL (another kind). */
GW_API int gw_msg_get_number(const struct gw_msg *m, const char *path, double *ret_value);
/* The value at path as JSON text (malloc'ed, the caller frees it).
 * Errors: -ENOENT, -ENOMEM. */
GW_API int gw_msg_get_json(const struct gw_msg *m, const char *path, char **ret_json);

#ifdef __cplusplus
}
#endif

#endif
