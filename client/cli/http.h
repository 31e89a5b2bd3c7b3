/*
 * http.h — the HTTP side of `grokwatch serve`, over libmicrohttpd: one
 * listening socket, the requests checked by api.h, and the event streams
 * of live pages.
 *
 * Threads.  libmicrohttpd runs one thread of its own (epoll), which calls
 * the handler; the caller's thread (serve's client loop) feeds events with
 * http_broadcast and answers deferred requests with http_complete.  A
 * handler that needs the client (a query to a daemon) defers: it keeps the
 * struct http_conn, the connection is suspended, and the reply goes out
 * when http_complete hands it over, from any thread.
 *
 * Limits.  At most max_connections connections at once (more wait in the
 * kernel's backlog), of which at most max_streams event streams; a
 * connection idle for idle_timeout_s seconds is closed (an event stream
 * gets a comment line every ping, so a reading page is never idle); the
 * request line and headers of one request fit in request_bytes (larger is
 * refused by libmicrohttpd with 431 or 414); a request with a body or a
 * method other than GET and HEAD is refused (413, 405).
 *
 * Event streams.  Every broadcast event gets an id "INSTANCE-N" (INSTANCE
 * new each start) and is kept in a ring of ring_events events and
 * ring_bytes bytes.  A stream reads from the ring at its own pace; one so
 * far behind that its next event has left the ring (a page that does not
 * read) is closed, and counted.  A new stream first gets "retry: 1000" and
 * an event "hello" ({"instance", "resumed"}): resumed is true when its
 * Last-Event-ID named an event still in the ring, and the stream goes on
 * from the one after; else it starts at the next new event, and the page
 * reloads its data.
 */
#ifndef GW_CLI_HTTP_H
#define GW_CLI_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "api.h"

struct http;
struct http_conn;

struct http_opts {
	const char *listen;         /* "HOST:PORT"; PORT 0 = any free port */
	bool allow_remote;          /* a non-loopback address is refused without it */
	unsigned max_connections;
	unsigned max_streams;
	unsigned idle_timeout_s;
	size_t request_bytes;
	size_t ring_events, ring_bytes;
};

/* A reply.  body is malloc'ed and moves to the server when handed over;
 * a status other than 200 sends body (or a generic line) as text. */
struct http_reply {
	int status;
	const char *type;    /* Content-Type, a static string */
	char *body;
	size_t len;
};

/* Called on the server's thread for each request api_parse accepted but
 * /events: returns 0 with *reply filled, or 1 to defer it, after which
 * the connection is suspended and defer() gets the request (whose strings
 * stay valid only during the call) and the conn to complete. */
typedef int (*http_handler)(void *cls, const struct api_req *req, struct http_reply *reply);
typedef void (*http_defer)(void *cls, const struct api_req *req, struct http_conn *conn);

/*
 * Listen and serve.  Errors (why[] says what, naming the address):
 * -EINVAL (not HOST:PORT), -EPERM (not a loopback address and
 * !allow_remote), -errno of resolving, socket, bind or listen, -EIO
 * (libmicrohttpd would not start), -ENOMEM.
 */
int http_start(const struct http_opts *o, http_handler handler, http_defer defer, void *cls,
	       struct http **ret, char *why, size_t why_size);

/* The address listened on, "HOST:PORT" with the port bound. */
const char *http_address(const struct http *h);

/* Stop: every event stream ends, deferred requests not yet completed get
 * 503, the thread is joined, everything freed.  Accepts NULL.  The caller
 * must not call http_complete after it. */
void http_stop(struct http *h);

/* Hand over a deferred request's reply (any thread; takes reply->body). */
void http_complete(struct http *h, struct http_conn *c, struct http_reply *reply);

/* Add events ("event: ...\ndata: ...\n\n" blocks, one or more) to the ring
 * and wake every stream.  Errors: -ENOMEM (nothing added). */
int http_broadcast(struct http *h, const char *events, size_t len);

/* A comment line on every stream: keeps a reading page's connection
 * active, and finds the closed ones. */
void http_ping(struct http *h);

/* The server's counters, as Prometheus text (requests by status, streams
 * open, events sent, streams dropped for lagging). */
void http_prometheus(struct http *h, FILE *f);

/* This server's instance (into instance, size bytes) and the number of
 * the next event it will broadcast: a text made from state that every
 * event before it had already changed holds them all. */
void http_event_position(struct http *h, char *instance, size_t size, unsigned long long *ret);

/* Bytes of event data written to streams so far (for the benchmark). */
unsigned long long http_event_bytes(struct http *h);

#endif
