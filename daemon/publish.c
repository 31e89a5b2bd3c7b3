/*
 * publish.c — the ZeroMQ PUB and ROUTER sockets of publish.h, on libuv.
 *
 * In order: set-up (options, CURVE keys, binding, the uv handles); the
 * message stream (body assembly, the size bound, heartbeats); the query
 * side (draining the ROUTER, parsing a request, snapshot and history
 * replies); tear-down through the close callbacks.
 */
#include "publish.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "endpoint.h"
#include "engine/json.h"
#include "engine/step.h"
#include "log.h"
#include "series.h"

#define DRAIN_BATCH 64     /* requests handled per loop turn, at most */
#define DRAIN_SLICE_MS 4   /* and for at most about this long */
#define HANDSHAKE_MS 3000  /* ZMQ_HANDSHAKE_IVL: a peer that says nothing is dropped */
#define FRAMES_MAX 3       /* identity, optional empty delimiter, body */
#define ENDPOINT_MAX 512
#define KEYFILE_MAX 256
#define FIELD_MAX 128      /* bytes of a request's metric, group or id */
#define METRIC_DEPTH 8     /* components of a dotted metric path */

/* A socket monitor counting one socket's connections (max_connections). */
struct guard {
	struct publish *p;
	void *mon;             /* PAIR connected to the monitor's inproc endpoint */
	uv_poll_t poll;
	size_t connections;
	int port;              /* the bound TCP port: only its connections are closed */
	bool warned;
};

struct publish {
	uv_loop_t *loop;
	void *pub, *router;
	uv_poll_t pub_poll, router_poll;
	struct guard guard[2];  /* pub, router */
	size_t max_connections;
	uint64_t refused;
	uv_idle_t drain_idle;
	uv_timer_t heartbeat;
	int open_handles;
	char *run;
	char epoch[33];
	uint64_t seq;
	size_t max_message_bytes, request_bytes, reply_bytes;
	const struct series *results; /* the store (borrowed, read only), or NULL */
	const cJSON *alert_events;    /* the journal's alert events (borrowed), or NULL */
	struct series *sent;          /* per step: {"seq", "time"} of its last metrics message */
	cJSON *status;
	char endpoint[ENDPOINT_MAX], query_endpoint[ENDPOINT_MAX];
	/* Each result's snapshot body as sent, serialized once: a herd of
	 * snapshot requests copies text instead of building and printing every
	 * result for every request.  Sorted by step; an entry is good while
	 * the result's series_gen_at and its last sent seq are the same. */
	struct snap_text *snap;
	size_t n_snap, cap_snap;
	size_t warm_at;        /* snapshot_warm's next index */
	uint64_t warm_version, warm_seq; /* store version and seq when last all cached */
	size_t warm_count;
};

struct snap_text {
	int64_t step;
	uint64_t gen, seq;
	char *text;
	size_t len;
};

/* ---- set-up ------------------------------------------------------------------ */

static int zerr(struct gw_err *err, const char *what, const char *endpoint)
{
	int e = zmq_errno();

	return gw_errf(err, -e, "\"%s\": %s: %s", endpoint, what, zmq_strerror(e));
}

/* Read a Z85 key file: 40 characters, then only white space. */
static int read_key(const char *path, char z85[41], uint8_t bin[32], struct gw_err *err)
{
	char buf[KEYFILE_MAX + 1];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return gw_errf(err, -errno, "\"%s\": %s", path, strerror(errno));
	n = read(fd, buf, KEYFILE_MAX + 1);
	close(fd);
	if (n < 0)
		return gw_errf(err, -errno, "\"%s\": %s", path, strerror(errno));
	while (n > 0 && (unsigned char)buf[n - 1] <= 32)
		n--;
	if (n != 40)
		return gw_errf(err, -EINVAL, "\"%s\": not a Z85 CURVE key (40 characters)", path);
	memcpy(z85, buf, 40);
	z85[40] = 0;
	if (!zmq_z85_decode(bin, z85))
		return gw_errf(err, -EINVAL, "\"%s\": not a Z85 CURVE key (bad character)", path);
	return 0;
}

static int setup_curve(void *pub, void *router, const struct publish_opts *o, struct gw_err *err)
{
	char secret_z85[41], public_z85[41], derived[41];
	uint8_t secret[32], public_[32];
	int one = 1, r;

	if (!zmq_has("curve"))
		return gw_errf(err, -ENOTSUP, "CURVE keys are configured but libzmq lacks CURVE");
	if ((r = read_key(o->curve_secret_file, secret_z85, secret, err)) < 0)
		return r;
	if (o->curve_public_file && *o->curve_public_file) {
		if ((r = read_key(o->curve_public_file, public_z85, public_, err)) < 0)
			return r;
		if (zmq_curve_public(derived, secret_z85) < 0 || strcmp(derived, public_z85))
			return gw_errf(err, -EINVAL, "\"%s\": not the public key of \"%s\"",
				       o->curve_public_file, o->curve_secret_file);
	}
	for (int i = 0; i < 2; i++) {
		void *s = i ? router : pub;

		if (zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof(one)) < 0 ||
		    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, secret, 32) < 0)
			return zerr(err, "CURVE", o->curve_secret_file);
	}
	return 0;
}

static void on_poll(uv_poll_t *h, int status, int events);
static void on_drain_idle(uv_idle_t *h);
static void on_heartbeat(uv_timer_t *h);
static void router_drain(struct publish *p);

/* ---- the connection bound ------------------------------------------------------ */

static int tcp_port(const char *endpoint)
{
	const char *c = strrchr(endpoint, ':');

	return strncmp(endpoint, "tcp://", 6) || !c ? -1 : atoi(c + 1);
}

/* Close an accepted connection past the bound: shutdown makes ZeroMQ see
 * it end and close it itself.  The fd is checked to be a socket on our
 * port first (the event is read after the fact: the fd may be another
 * connection of the same endpoint by now, which is as good). */
static bool refuse(const struct guard *g, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int port;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return false;
	if (ss.ss_family == AF_INET)
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		return false;
	return port == g->port && shutdown(fd, SHUT_RDWR) == 0;
}

static void on_monitor(uv_poll_t *h, int status, int events)
{
	struct guard *g = h->data;
	struct publish *p = g->p;

	(void)status;
	(void)events;
	for (;;) {
		zmq_msg_t m;
		uint16_t ev;
		uint32_t value;
		int more = 0;
		size_t sz = sizeof(more);

		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, g->mon, ZMQ_DONTWAIT) < 0) {
			int zev;

			zmq_msg_close(&m);
			sz = sizeof(zev);
			zmq_getsockopt(g->mon, ZMQ_EVENTS, &zev, &sz); /* re-arms the fd */
			if (zev & ZMQ_POLLIN)
				continue;
			break;
		}
		if (zmq_msg_size(&m) == 6) {
			memcpy(&ev, zmq_msg_data(&m), 2);
			memcpy(&value, (char *)zmq_msg_data(&m) + 2, 4);
			if (ev == ZMQ_EVENT_ACCEPTED) {
				g->connections++;
				if (g->connections > p->max_connections && refuse(g, (int)value)) {
					p->refused++;
					if (!g->warned)
						log_warn("\"%s\": more than %zu connections (limits.connections); closing further ones",
							 g == &p->guard[0] ? p->endpoint : p->query_endpoint,
							 p->max_connections);
					g->warned = true;
				}
			} else if (ev == ZMQ_EVENT_DISCONNECTED && g->connections > 0) {
				g->connections--;
				if (g->connections < p->max_connections / 2)
					g->warned = false;
			}
		}
		zmq_getsockopt(g->mon, ZMQ_RCVMORE, &more, &sz);
		zmq_msg_close(&m);
		while (more) { /* the endpoint frame */
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, g->mon, ZMQ_DONTWAIT) < 0)
				more = 0;
			else
				zmq_getsockopt(g->mon, ZMQ_RCVMORE, &more, &sz);
			zmq_msg_close(&m);
		}
	}
}

static int guard_start(struct publish *p, void *zctx, void *sock, const char *endpoint,
		       struct guard *g, struct gw_err *err)
{
	char addr[64];
	int fd, r;
	size_t sz = sizeof(fd);

	g->p = p;
	g->port = tcp_port(endpoint);
	if (g->port <= 0)
		return 0; /* ipc and inproc endpoints take no file descriptor per peer here */
	snprintf(addr, sizeof(addr), "inproc://gw-guard-%p", (void *)g);
	if (zmq_socket_monitor(sock, addr, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) < 0)
		return zerr(err, "zmq_socket_monitor", endpoint);
	g->mon = zmq_socket(zctx, ZMQ_PAIR);
	if (!g->mon || zmq_connect(g->mon, addr) < 0 ||
	    zmq_getsockopt(g->mon, ZMQ_FD, &fd, &sz) < 0)
		return zerr(err, "monitor", endpoint);
	if ((r = uv_poll_init(p->loop, &g->poll, fd)) < 0)
		return gw_errf(err, r, "uv_poll_init: %s", uv_strerror(r));
	g->poll.data = g;
	p->open_handles++;
	if ((r = uv_poll_start(&g->poll, UV_READABLE, on_monitor)) < 0)
		return gw_errf(err, r, "uv_poll_start: %s", uv_strerror(r));
	/* ZMQ_FD signals edges: take what is pending already, or no edge
	 * ever comes. */
	on_monitor(&g->poll, 0, UV_READABLE);
	return 0;
}

uint64_t publish_refused(const struct publish *p)
{
	return p->refused;
}

static int watch_socket(struct publish *p, void *sock, uv_poll_t *h, struct gw_err *err)
{
	int fd, r;
	size_t sz = sizeof(fd);

	if (zmq_getsockopt(sock, ZMQ_FD, &fd, &sz) < 0)
		return zerr(err, "ZMQ_FD", p->endpoint);
	if ((r = uv_poll_init(p->loop, h, fd)) < 0)
		return gw_errf(err, r, "uv_poll_init: %s", uv_strerror(r));
	h->data = p;
	p->open_handles++;
	if ((r = uv_poll_start(h, UV_READABLE, on_poll)) < 0)
		return gw_errf(err, r, "uv_poll_start: %s", uv_strerror(r));
	return 0;
}

static void free_publish(struct publish *p)
{
	for (int i = 0; i < 2; i++)
		if (p->guard[i].mon)
			zmq_close(p->guard[i].mon);
	if (p->pub)
		zmq_close(p->pub);
	if (p->router)
		zmq_close(p->router);
	series_free(p->sent);
	for (size_t i = 0; i < p->n_snap; i++)
		free(p->snap[i].text);
	free(p->snap);
	cJSON_Delete(p->status);
	free(p->run);
	free(p);
}

int publish_new(uv_loop_t *loop, void *zctx, const struct publish_opts *o,
		struct publish **ret_publish, struct gw_err *err)
{
	struct publish *p;
	uint8_t rnd[16];
	int linger_pub = 1000, linger_router = 0, hwm = o->sndhwm, r;
	/* A connection that has not completed ZeroMQ's handshake by then is
	 * dropped: idle TCP connections cannot hold limits.connections. */
	int handshake_ms = HANDSHAKE_MS;
	int64_t maxmsg = (int64_t)o->request_bytes;
	size_t sz;
	bool curve = o->curve_secret_file && *o->curve_secret_file;

	if (!curve && !o->allow_insecure_remote) {
		const char *ep = !endpoint_is_local(o->endpoint) ? o->endpoint
				 : !endpoint_is_local(o->query_endpoint) ? o->query_endpoint
										 : NULL;

		if (ep)
			return gw_errf(err, -EINVAL,
				       "\"%s\": reachable from other hosts and CURVE is off", ep);
	}
	if (o->sndhwm < 1 || o->max_message_bytes < 256 || o->request_bytes < 16 ||
	    o->reply_bytes < 256)
		return gw_errf(err, -EINVAL, "publish options out of range");
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return gw_errf(err, -errno, "getrandom: %s", strerror(errno));

	p = gw_calloc(1, sizeof(*p));
	p->loop = loop;
	p->run = gw_strdup(o->run ? o->run : "");
	for (int i = 0; i < 16; i++)
		snprintf(p->epoch + 2 * i, 3, "%02x", rnd[i]);
	p->max_message_bytes = o->max_message_bytes;
	p->request_bytes = o->request_bytes;
	p->reply_bytes = o->reply_bytes;
	p->sent = series_new();
	p->status = cJSON_CreateObject();
	snprintf(p->endpoint, sizeof(p->endpoint), "%s", o->endpoint);
	snprintf(p->query_endpoint, sizeof(p->query_endpoint), "%s", o->query_endpoint);

	p->pub = zmq_socket(zctx, ZMQ_PUB);
	p->router = zmq_socket(zctx, ZMQ_ROUTER);
	if (!p->pub || !p->router) {
		r = zerr(err, "zmq_socket", o->endpoint);
		goto fail;
	}
	/* Unsent messages to a gone subscriber are dropped after a second;
	 * replies are never worth waiting for at exit. */
	if (zmq_setsockopt(p->pub, ZMQ_SNDHWM, &hwm, sizeof(hwm)) < 0 ||
	    zmq_setsockopt(p->pub, ZMQ_LINGER, &linger_pub, sizeof(linger_pub)) < 0 ||
	    zmq_setsockopt(p->router, ZMQ_SNDHWM, &hwm, sizeof(hwm)) < 0 ||
	    zmq_setsockopt(p->router, ZMQ_LINGER, &linger_router, sizeof(linger_router)) < 0 ||
	    zmq_setsockopt(p->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) < 0 ||
	    zmq_setsockopt(p->pub, ZMQ_HANDSHAKE_IVL, &handshake_ms, sizeof(handshake_ms)) < 0 ||
	    zmq_setsockopt(p->router, ZMQ_HANDSHAKE_IVL, &handshake_ms, sizeof(handshake_ms)) < 0) {
		r = zerr(err, "setsockopt", o->endpoint);
		goto fail;
	}
	if (curve && (r = setup_curve(p->pub, p->router, o, err)) < 0)
		goto fail;
	if (zmq_bind(p->pub, o->endpoint) < 0) {
		r = zerr(err, "bind", o->endpoint);
		goto fail;
	}
	if (zmq_bind(p->router, o->query_endpoint) < 0) {
		r = zerr(err, "bind", o->query_endpoint);
		goto fail;
	}
	sz = sizeof(p->endpoint);
	zmq_getsockopt(p->pub, ZMQ_LAST_ENDPOINT, p->endpoint, &sz);
	sz = sizeof(p->query_endpoint);
	zmq_getsockopt(p->router, ZMQ_LAST_ENDPOINT, p->query_endpoint, &sz);

	/* From here on the struct is freed by the close callbacks. */
	uv_idle_init(loop, &p->drain_idle);
	p->drain_idle.data = p;
	p->open_handles++;
	uv_timer_init(loop, &p->heartbeat);
	p->heartbeat.data = p;
	p->open_handles++;
	p->max_connections = o->max_connections;
	if ((r = watch_socket(p, p->pub, &p->pub_poll, err)) < 0 ||
	    (r = watch_socket(p, p->router, &p->router_poll, err)) < 0 ||
	    (o->max_connections &&
	     ((r = guard_start(p, zctx, p->pub, p->endpoint, &p->guard[0], err)) < 0 ||
	      (r = guard_start(p, zctx, p->router, p->query_endpoint, &p->guard[1], err)) < 0))) {
		publish_close(p);
		return r;
	}
	if (o->heartbeat_ms)
		uv_timer_start(&p->heartbeat, on_heartbeat, o->heartbeat_ms, o->heartbeat_ms);
	*ret_publish = p;
	return 0;
fail:
	free_publish(p);
	return r;
}

/* ---- tear-down ------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
	struct publish *p = h->data;

	if (--p->open_handles == 0)
		free_publish(p);
}

static void on_guard_closed(uv_handle_t *h)
{
	struct publish *p = ((struct guard *)h->data)->p;

	if (--p->open_handles == 0)
		free_publish(p);
}

void publish_close(struct publish *p)
{
	uv_handle_t *hs[4];
	int n = 0;

	if (!p)
		return;
	hs[n++] = (uv_handle_t *)&p->drain_idle;
	hs[n++] = (uv_handle_t *)&p->heartbeat;
	/* A poll handle may not have been initialised if set-up failed. */
	if (p->pub_poll.data == p)
		hs[n++] = (uv_handle_t *)&p->pub_poll;
	if (p->router_poll.data == p)
		hs[n++] = (uv_handle_t *)&p->router_poll;
	for (int i = 0; i < 2; i++)
		if (p->guard[i].poll.data == &p->guard[i])
			uv_close((uv_handle_t *)&p->guard[i].poll, on_guard_closed);
	/* The sockets (whose fds the poll handles watch) close only in the
	 * last callback, after libuv has stopped watching their fds. */
	for (int i = 0; i < n; i++)
		uv_close(hs[i], on_closed);
}

/* ---- the message stream ------------------------------------------------------------ */

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)(ts.tv_nsec / 1000000) / 1000.0;
}

/* A new body: the header fields first (time: `when`), then the fields of
 * `fields` (consumed), minus any it has of the header's own names or
 * "kind". */
static cJSON *assemble_at(struct publish *p, const char *type, uint64_t seq, double when,
			  cJSON *fields)
{
	cJSON *b = cJSON_CreateObject(), *f;

	cJSON_AddStringToObject(b, "type", type);
	cJSON_AddNumberToObject(b, "seq", (double)seq);
	cJSON_AddStringToObject(b, "epoch", p->epoch);
	cJSON_AddStringToObject(b, "run", p->run);
	cJSON_AddNumberToObject(b, "time", when);
	while (fields && (f = fields->child)) {
		cJSON_DetachItemViaPointer(fields, f);
		if (!f->string || !strcmp(f->string, "type") || !strcmp(f->string, "seq") ||
		    !strcmp(f->string, "epoch") || !strcmp(f->string, "run") ||
		    !strcmp(f->string, "time") || !strcmp(f->string, "kind"))
			cJSON_Delete(f);
		else
			cJSON_AddItemToObject(b, f->string, f); /* keeps f's own key copy */
	}
	cJSON_Delete(fields);
	return b;
}

static cJSON *assemble(struct publish *p, const char *type, uint64_t seq, cJSON *fields)
{
	return assemble_at(p, type, seq, now_seconds(), fields);
}

static int send_frames(struct publish *p, const char *type, const char *text, size_t len)
{
	char topic[256];
	int tl = snprintf(topic, sizeof(topic), "%s.%s", type, p->run);

	if (tl < 0 || (size_t)tl >= sizeof(topic))
		tl = (int)strlen(topic);
	if (zmq_send(p->pub, topic, (size_t)tl, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_send(p->pub, text, len, ZMQ_DONTWAIT) < 0)
		return -zmq_errno();
	return 0;
}

/* Serialize and send body (consumed) under `seq`; too large becomes an
 * error message with the same seq.  On success *ret_sent (if not NULL) is
 * the body as sent. */
static int send_body(struct publish *p, const char *type, uint64_t seq, cJSON *body,
		     cJSON **ret_sent)
{
	char *text = json_print_utf8(body);
	size_t len;
	int r;

	len = strlen(text);
	if (len > p->max_message_bytes) {
		cJSON *e = cJSON_CreateObject(), *step = cJSON_GetObjectItemCaseSensitive(body, "step");

		cJSON_AddStringToObject(e, "error", "message too large");
		cJSON_AddStringToObject(e, "dropped_type", type);
		cJSON_AddNumberToObject(e, "bytes", (double)len);
		cJSON_AddNumberToObject(e, "limit", (double)p->max_message_bytes);
		if (cJSON_IsNumber(step))
			cJSON_AddNumberToObject(e, "step", step->valuedouble);
		free(text);
		cJSON_Delete(body);
		body = assemble(p, "error", seq, e);
		type = "error";
		text = json_print_utf8(body);
		len = strlen(text);
		if (ret_sent)
			ret_sent = NULL; /* the result itself was not sent */
	}
	r = send_frames(p, type, text, len);
	free(text);
	if (r == 0 && ret_sent)
		*ret_sent = body;
	else
		cJSON_Delete(body);
	return r;
}

int64_t publish_send(struct publish *p, const char *type, cJSON *body)
{
	uint64_t seq = ++p->seq;
	int r = send_body(p, type, seq, assemble(p, type, seq, body), NULL);

	return r < 0 ? r : (int64_t)seq;
}

static int result_step(const cJSON *result, int64_t *ret_step)
{
	return json_step(cJSON_GetObjectItemCaseSensitive(result, "step"), ret_step);
}

int64_t publish_result(struct publish *p, const cJSON *result)
{
	uint64_t seq;
	cJSON *body, *rec;
	double when;
	int64_t step;
	int r;

	if (result_step(result, &step) < 0)
		return -EINVAL;
	seq = ++p->seq;
	when = now_seconds();
	body = assemble_at(p, "metrics", seq, when, cJSON_Duplicate(result, 1));
	r = send_body(p, "metrics", seq, body, NULL);
	if (r < 0)
		return r;
	/* Recorded even if it went out as "too large": the snapshot shows the
	 * store's result under the seq its message took. */
	rec = cJSON_CreateObject();
	cJSON_AddNumberToObject(rec, "seq", (double)seq);
	cJSON_AddNumberToObject(rec, "time", when);
	series_put(p->sent, step, rec);
	return (int64_t)seq;
}

void publish_set_results(struct publish *p, const struct series *results)
{
	p->results = results;
}

void publish_set_alerts(struct publish *p, const cJSON *events)
{
	p->alert_events = events;
}

#define RESOLVED_DEFAULT 20
#define RESOLVED_MAX 1000

static bool fingerprint_in(const cJSON *alerts, const char *fp)
{
	const cJSON *a;

	cJSON_ArrayForEach(a, alerts) {
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(a, "fingerprint");

		if (cJSON_IsString(f) && !strcmp(f->valuestring, fp))
			return true;
	}
	return false;
}

/* The "alerts" reply's arrays (publish.h): firing from the status, the
 * last n resolutions from the journal's events (a ring of the last n seen
 * in one pass). */
static void alerts_reply(const struct publish *p, cJSON *reply, int64_t n)
{
	const cJSON *firing = cJSON_GetObjectItemCaseSensitive(p->status, "alerts");
	const cJSON **ring = gw_calloc((size_t)n + 1, sizeof(*ring));
	cJSON *res = cJSON_CreateArray(), *fire;
	const cJSON *e;
	int64_t seen = 0;

	fire = cJSON_IsArray(firing) ? cJSON_Duplicate(firing, 1) : cJSON_CreateArray();
	cJSON_AddItemToObject(reply, "firing", fire);
	if (n > 0 && p->alert_events)
		cJSON_ArrayForEach(e, p->alert_events) {
			const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "status");
			const cJSON *al = cJSON_GetArrayItem(
				cJSON_GetObjectItemCaseSensitive(e, "alerts"), 0);
			const cJSON *fp = cJSON_GetObjectItemCaseSensitive(al, "fingerprint");

			if (!cJSON_IsString(st) || strcmp(st->valuestring, "resolved") != 0 ||
			    !cJSON_IsObject(al) || !cJSON_IsString(fp) ||
			    fingerprint_in(fire, fp->valuestring))
				continue;
			ring[seen++ % n] = e;
		}
	for (int64_t k = seen > n ? seen - n : 0; k < seen; k++) {
		const cJSON *ev = ring[k % n];
		const cJSON *step = cJSON_GetObjectItemCaseSensitive(ev, "step");
		cJSON *x = cJSON_Duplicate(
			cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ev, "alerts"), 0), 1);

		if (cJSON_IsNumber(step))
			cJSON_AddNumberToObject(x, "step", step->valuedouble);
		cJSON_AddItemToArray(res, x);
	}
	free(ring);
	cJSON_AddItemToObject(reply, "resolved", res);
}

/* The store's i-th result as a snapshot shows it: the metrics body with
 * the seq and time of the message that carried it in this epoch, seq 0
 * (and the time of this answer) for one sent by an earlier epoch. */
static cJSON *snapshot_body(struct publish *p, size_t i, double now)
{
	const cJSON *rec = series_get(p->sent, series_step_at(p->results, i));
	const cJSON *seq = cJSON_GetObjectItemCaseSensitive(rec, "seq");
	const cJSON *when = cJSON_GetObjectItemCaseSensitive(rec, "time");

	return assemble_at(p, "metrics", rec ? (uint64_t)seq->valuedouble : 0,
			   rec ? when->valuedouble : now,
			   cJSON_Duplicate(series_at(p->results, i), 1));
}

/* Whether result i's cached text is current. */
static bool snapshot_cached(const struct publish *p, size_t i)
{
	int64_t step = series_step_at(p->results, i);
	const cJSON *rec = series_get(p->sent, step);
	uint64_t seq = rec ? (uint64_t)cJSON_GetObjectItemCaseSensitive(rec, "seq")->valuedouble : 0;
	size_t k = step_lower_bound(p->snap, p->n_snap, sizeof(*p->snap),
				    offsetof(struct snap_text, step), step);

	return k < p->n_snap && p->snap[k].step == step &&
	       p->snap[k].gen == series_gen_at(p->results, i) && p->snap[k].seq == seq;
}

static bool snapshot_cached_all(const struct publish *p)
{
	size_t n = p->results ? series_count(p->results) : 0;

	for (size_t i = 0; i < n; i++)
		if (!snapshot_cached(p, i))
			return false;
	return true;
}

/* The text of snapshot_body(p, i, now), from the cache or made (and kept). */
static const struct snap_text *snapshot_text(struct publish *p, size_t i, double now)
{
	int64_t step = series_step_at(p->results, i);
	uint64_t gen = series_gen_at(p->results, i);
	const cJSON *rec = series_get(p->sent, step);
	uint64_t seq = rec ? (uint64_t)cJSON_GetObjectItemCaseSensitive(rec, "seq")->valuedouble : 0;
	size_t k = step_lower_bound(p->snap, p->n_snap, sizeof(*p->snap),
				    offsetof(struct snap_text, step), step);
	struct snap_text *c;
	cJSON *body;

	if (k < p->n_snap && p->snap[k].step == step && p->snap[k].gen == gen &&
	    p->snap[k].seq == seq)
		return &p->snap[k];
	if (k == p->n_snap || p->snap[k].step != step) {
		if (p->n_snap == p->cap_snap) {
			p->cap_snap = p->cap_snap ? 2 * p->cap_snap : 64;
			p->snap = gw_realloc(p->snap, p->cap_snap * sizeof(*p->snap));
		}
		memmove(p->snap + k + 1, p->snap + k, (p->n_snap - k) * sizeof(*p->snap));
		p->snap[k] = (struct snap_text){ .step = step };
		p->n_snap++;
	}
	c = &p->snap[k];
	free(c->text);
	body = snapshot_body(p, i, now);
	c->text = json_print_utf8(body);
	c->len = strlen(c->text);
	c->gen = gen;
	c->seq = seq;
	cJSON_Delete(body);
	return c;
}

static bool slice_over(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000 >=
	       DRAIN_SLICE_MS;
}

/* Make the cached text of every result that lacks one, until the slice
 * started at t0 is over.  Whether all are cached now.  A herd of snapshot
 * requests waits in the ROUTER while this runs in slices (after a restart
 * nothing is cached), so no one request makes a thousand texts. */
static bool snapshot_warm(struct publish *p, const struct timespec *t0)
{
	size_t n = p->results ? series_count(p->results) : 0;
	double now = now_seconds();

	if (!p->results || (p->warm_version == series_version(p->results) &&
			    p->warm_seq == p->seq && p->warm_count == n))
		return true;
	for (; p->warm_at < n; p->warm_at++) {
		snapshot_text(p, p->warm_at, now);
		if (slice_over(t0)) {
			p->warm_at++;
			return p->warm_at >= n && snapshot_cached_all(p);
		}
	}
	/* Results replaced since (a memorized subset moved, a rewrite): look
	 * once more from the start. */
	if (!snapshot_cached_all(p)) {
		p->warm_at = 0;
		return false;
	}
	p->warm_version = series_version(p->results);
	p->warm_seq = p->seq;
	p->warm_count = n;
	return true;
}

/* Drop cached texts of steps no longer in the store (a series archived):
 * the cache never outgrows the store. */
static void snapshot_prune(struct publish *p)
{
	size_t w = 0;

	if (!p->results || p->n_snap <= series_count(p->results))
		return;
	for (size_t k = 0; k < p->n_snap; k++) {
		if (series_get(p->results, p->snap[k].step))
			p->snap[w++] = p->snap[k];
		else
			free(p->snap[k].text);
	}
	p->n_snap = w;
}

void publish_set_status(struct publish *p, cJSON *status)
{
	cJSON_Delete(p->status);
	p->status = status ? status : cJSON_CreateObject();
}

int publish_heartbeat(struct publish *p)
{
	cJSON *f = cJSON_CreateObject();

	cJSON_AddItemToObject(f, "status", cJSON_Duplicate(p->status, 1));
	return send_body(p, "heartbeat", p->seq, assemble(p, "heartbeat", p->seq, f), NULL);
}

static void on_heartbeat(uv_timer_t *h)
{
	publish_heartbeat(h->data);
}

void publish_set_heartbeat(struct publish *p, uint64_t heartbeat_ms)
{
	if (heartbeat_ms)
		uv_timer_start(&p->heartbeat, on_heartbeat, heartbeat_ms, heartbeat_ms);
	else
		uv_timer_stop(&p->heartbeat);
}

void publish_set_reply_bytes(struct publish *p, size_t reply_bytes)
{
	p->reply_bytes = reply_bytes;
}

uint64_t publish_seq(const struct publish *p)
{
	return p->seq;
}

const char *publish_epoch(const struct publish *p)
{
	return p->epoch;
}

int publish_endpoint(const struct publish *p, bool query, char *buf, size_t size)
{
	const char *e = query ? p->query_endpoint : p->endpoint;

	if (strlen(e) >= size)
		return -ENOSPC;
	memcpy(buf, e, strlen(e) + 1);
	return 0;
}

/* ---- queries -------------------------------------------------------------------------- */

static cJSON *error_reply(const char *msg)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddStringToObject(r, "type", "error");
	cJSON_AddStringToObject(r, "error", msg);
	return r;
}

static cJSON *reply_header(struct publish *p, const char *type)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddStringToObject(r, "type", type);
	cJSON_AddNumberToObject(r, "seq", (double)p->seq);
	cJSON_AddStringToObject(r, "epoch", p->epoch);
	cJSON_AddStringToObject(r, "run", p->run);
	return r;
}

static int get_bound(const cJSON *req, const char *name, int64_t def, int64_t *ret, char *why,
		     size_t why_size)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);

	if (!v) {
		*ret = def;
		return 0;
	}
	if (json_step(v, ret) < 0) {
		snprintf(why, why_size, "\"%s\" is not a step (an integer in [0, %lld])", name,
			 (long long)STEP_MAX);
		return -EINVAL;
	}
	return 0;
}

static const cJSON *metric_value(const cJSON *body, const char *group, const char *metric)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(body, "groups"), group);
	char part[FIELD_MAX + 1];
	const char *m = metric;

	for (int depth = 0; n && *m && depth < METRIC_DEPTH; depth++) {
		const char *dot = strchr(m, '.');
		size_t len = dot ? (size_t)(dot - m) : strlen(m);

		if (len > FIELD_MAX)
			return NULL;
		memcpy(part, m, len);
		part[len] = 0;
		n = cJSON_GetObjectItemCaseSensitive(n, part);
		m += len + (dot ? 1 : 0);
	}
	return n && !*m && cJSON_IsNumber(n) ? n : NULL;
}

static bool is_field(const char *name, const char *const *allowed)
{
	for (int i = 0; allowed[i]; i++)
		if (!strcmp(name, allowed[i]))
			return true;
	return false;
}

/* A snapshot's results, spliced into the reply as cached text (below). */
struct splice {
	bool on;
	size_t i, end; /* indices into the store */
};

/* Answer one request body; always returns a reply object.  A snapshot's
 * reply comes without its "results": sp says which, for handle_request. */
static cJSON *answer(struct publish *p, const char *body, size_t len, struct splice *sp)
{
	static const char *const snapshot_fields[] = { "req", "id", "from", "to", NULL };
	static const char *const alerts_fields[] = { "req", "id", "resolved", NULL };
	static const char *const history_fields[] = { "req", "id", "from", "to", "metric", "group",
						      NULL };
	char why[256];
	const char *end = NULL;
	cJSON *req, *reply = NULL;
	const cJSON *kind, *id = NULL, *f;
	const char *const *allowed;
	int64_t from, to;
	size_t i, n;

	if (len > p->request_bytes)
		return error_reply("request too large");
	if (memchr(body, 0, len))
		return error_reply("request: a NUL byte");
	req = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (!req)
		return error_reply("request: not valid JSON");
	for (const char *c = end; c < body + len; c++)
		if ((unsigned char)*c > 32) {
			reply = error_reply("request: text after the JSON object");
			goto out;
		}
	if (!cJSON_IsObject(req)) {
		reply = error_reply("request: expected a JSON object");
		goto out;
	}
	kind = cJSON_GetObjectItemCaseSensitive(req, "req");
	id = cJSON_GetObjectItemCaseSensitive(req, "id");
	if (id && !(cJSON_IsNumber(id) || (cJSON_IsString(id) && strlen(id->valuestring) <= FIELD_MAX))) {
		reply = error_reply("request: \"id\" must be a number or a short string");
		id = NULL;
		goto out;
	}
	if (!cJSON_IsString(kind)) {
		reply = error_reply("request: \"req\" is missing or not a string");
		goto out;
	}
	if (!strcmp(kind->valuestring, "snapshot")) {
		allowed = snapshot_fields;
	} else if (!strcmp(kind->valuestring, "history")) {
		allowed = history_fields;
	} else if (!strcmp(kind->valuestring, "alerts")) {
		allowed = alerts_fields;
	} else {
		snprintf(why, sizeof(why),
			 "request: unknown req \"%.64s\" (snapshot, history or alerts)",
			 kind->valuestring);
		reply = error_reply(why);
		goto out;
	}
	cJSON_ArrayForEach(f, req)
		if (!is_field(f->string, allowed)) {
			snprintf(why, sizeof(why), "request: unknown field \"%.64s\"", f->string);
			reply = error_reply(why);
			goto out;
		}
	if (get_bound(req, "from", 0, &from, why, sizeof(why)) < 0 ||
	    get_bound(req, "to", STEP_MAX, &to, why, sizeof(why)) < 0) {
		char msg[300];

		snprintf(msg, sizeof(msg), "request: %s", why);
		reply = error_reply(msg);
		goto out;
	}
	if (allowed == alerts_fields) {
		const cJSON *nr = cJSON_GetObjectItemCaseSensitive(req, "resolved");
		double v = RESOLVED_DEFAULT;

		if (nr) {
			if (!cJSON_IsNumber(nr) || nr->valuedouble < 0 || nr->valuedouble > RESOLVED_MAX ||
			    nr->valuedouble != floor(nr->valuedouble)) {
				reply = error_reply("request: \"resolved\" must be an integer from 0 "
						    "to 1000");
				goto out;
			}
			v = nr->valuedouble;
		}
		reply = reply_header(p, "alerts");
		alerts_reply(p, reply, (int64_t)v);
		goto out;
	}
	n = p->results ? series_count(p->results) : 0;
	i = p->results ? series_lower_bound(p->results, from) : 0;
	if (allowed == snapshot_fields) {
		reply = reply_header(p, "snapshot");
		cJSON_AddItemToObject(reply, "status", cJSON_Duplicate(p->status, 1));
		sp->on = true;
		sp->i = i;
		for (; i < n && series_step_at(p->results, i) <= to; i++)
			;
		sp->end = i;
	} else {
		const cJSON *metric = cJSON_GetObjectItemCaseSensitive(req, "metric");
		const cJSON *group = cJSON_GetObjectItemCaseSensitive(req, "group");
		cJSON *arr;

		if (!cJSON_IsString(metric) || !*metric->valuestring ||
		    strlen(metric->valuestring) > FIELD_MAX || !cJSON_IsString(group) ||
		    !*group->valuestring || strlen(group->valuestring) > FIELD_MAX) {
			reply = error_reply("request: history needs \"metric\" and \"group\" strings "
					    "of 1 to 128 bytes");
			goto out;
		}
		reply = reply_header(p, "history");
		cJSON_AddStringToObject(reply, "metric", metric->valuestring);
		cJSON_AddStringToObject(reply, "group", group->valuestring);
		arr = cJSON_AddArrayToObject(reply, "points");
		for (; i < n && series_step_at(p->results, i) <= to; i++) {
			const cJSON *v = metric_value(series_at(p->results, i), group->valuestring,
						      metric->valuestring);
			cJSON *pt = cJSON_CreateArray();

			cJSON_AddItemToArray(pt, cJSON_CreateNumber((double)series_step_at(p->results, i)));
			cJSON_AddItemToArray(pt, v ? cJSON_CreateNumber(v->valuedouble) : cJSON_CreateNull());
			cJSON_AddItemToArray(arr, pt);
		}
	}
out:
	if (id)
		cJSON_AddItemToObject(reply, "id", cJSON_Duplicate(id, 1));
	cJSON_Delete(req);
	return reply;
}

static void free_text(void *data, void *hint)
{
	(void)hint;
	free(data);
}

/* The snapshot reply's text: reply (its header and status) with the
 * cached text of results [sp->i, sp->end) spliced in as "results", and
 * its id last.  NULL (its id detached into *ret_id) when it would be over
 * reply_bytes; *ret_len is the length it has or would have. */
static char *splice_snapshot(struct publish *p, cJSON *reply, const struct splice *sp,
			     cJSON **ret_id, size_t *ret_len)
{
	static const char key[] = ",\"results\":[";
	cJSON *id = cJSON_DetachItemFromObjectCaseSensitive(reply, "id");
	char *head = json_print_utf8(reply), *idt = id ? json_print_utf8(id) : NULL, *out, *w;
	size_t hl = strlen(head) - 1, len, idl = idt ? strlen(idt) + 6 : 0; /* ,"id": */
	double now = now_seconds();

	snapshot_prune(p);
	len = hl + sizeof(key) - 1 + 2; /* ] } */
	for (size_t i = sp->i; i < sp->end; i++)
		len += snapshot_text(p, i, now)->len + (i > sp->i);
	len += idl;
	*ret_len = len;
	if (len > p->reply_bytes) {
		free(head);
		free(idt);
		*ret_id = id;
		return NULL;
	}
	w = out = gw_malloc(len + 1);
	memcpy(w, head, hl);
	w += hl;
	memcpy(w, key, sizeof(key) - 1);
	w += sizeof(key) - 1;
	for (size_t i = sp->i; i < sp->end; i++) {
		const struct snap_text *t = snapshot_text(p, i, now);

		if (i > sp->i)
			*w++ = ',';
		memcpy(w, t->text, t->len);
		w += t->len;
	}
	*w++ = ']';
	if (idt) {
		memcpy(w, ",\"id\":", 6);
		memcpy(w + 6, idt, idl - 6);
		w += idl;
	}
	*w++ = '}';
	*w = 0;
	GW_BUG_ON((size_t)(w - out) != len);
	free(head);
	free(idt);
	cJSON_Delete(id);
	*ret_id = NULL;
	return out;
}

/* Receive one whole multi-part request (keeping at most FRAMES_MAX
 * frames, discarding the rest) and send its reply.  Returns 0, or -1 if
 * nothing could be received. */
static int handle_request(struct publish *p)
{
	zmq_msg_t f[FRAMES_MAX];
	int n = 0, more = 1, extra = 0, body = -1;
	bool delim = false;
	struct splice sp = { false, 0, 0 };
	cJSON *reply, *id = NULL;
	char *text = NULL;
	size_t len;

	while (more) {
		zmq_msg_t tmp, *m = n < FRAMES_MAX ? &f[n] : &tmp;
		size_t sz = sizeof(more);

		zmq_msg_init(m);
		if (zmq_msg_recv(m, p->router, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(m);
			if (n == 0)
				return -1;
			break; /* cannot happen: frames of a message arrive together */
		}
		if (zmq_getsockopt(p->router, ZMQ_RCVMORE, &more, &sz) < 0)
			more = 0;
		if (m == &tmp) {
			zmq_msg_close(m);
			extra++;
		} else {
			n++;
		}
	}
	/* f[0] is the peer's identity, added by ROUTER. */
	if (n == 2 && !extra)
		body = 1;
	else if (n == 3 && !extra && zmq_msg_size(&f[1]) == 0)
		body = 2, delim = true;
	/* An empty body from a DEALER ([id, ""]) is a bad request, not a REQ
	 * envelope: only [id, "", body] is answered with a delimiter. */
	if (n == 3 && zmq_msg_size(&f[1]) == 0)
		delim = true;
	if (body < 0)
		reply = error_reply("request: expected one body frame");
	else
		reply = answer(p, zmq_msg_data(&f[body]), zmq_msg_size(&f[body]), &sp);
	if (sp.on) {
		text = splice_snapshot(p, reply, &sp, &id, &len);
	} else {
		text = json_print_utf8(reply);
		len = strlen(text);
		if (len > p->reply_bytes) {
			id = cJSON_DetachItemFromObjectCaseSensitive(reply, "id");
			free(text);
			text = NULL;
		}
	}
	if (!text) {
		char msg[200];

		snprintf(msg, sizeof(msg), "reply of %zu bytes is over the limit of %zu; narrow from/to",
			 len, p->reply_bytes);
		cJSON_Delete(reply);
		reply = error_reply(msg);
		if (id) /* the client matches replies by it */
			cJSON_AddItemToObject(reply, "id", id);
		text = json_print_utf8(reply);
		len = strlen(text);
	}
	/* ROUTER drops replies to unknown or full peers instead of blocking. */
	if (n >= 1) {
		zmq_send(p->router, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), ZMQ_SNDMORE | ZMQ_DONTWAIT);
		zmq_msg_t m;

		if (delim)
			zmq_send(p->router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
		/* The text goes to ZeroMQ as it is (a snapshot is megabytes): it
		 * frees it once sent. */
		if (zmq_msg_init_data(&m, text, len, free_text, NULL) == 0) {
			text = NULL;
			if (zmq_msg_send(&m, p->router, ZMQ_DONTWAIT) < 0)
				zmq_msg_close(&m);
		}
	}
	free(text);
	cJSON_Delete(reply);
	for (int i = 0; i < n; i++)
		zmq_msg_close(&f[i]);
	return 0;
}

static void router_drain(struct publish *p)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!snapshot_warm(p, &t0)) {
		/* Requests wait in the ROUTER; the loop goes on meanwhile. */
		uv_idle_start(&p->drain_idle, on_drain_idle);
		return;
	}
	for (int handled = 0; handled < DRAIN_BATCH; handled++) {
		int events = 0;
		size_t sz = sizeof(events);

		/* Re-read ZMQ_EVENTS after every reply: the send may have
		 * consumed the edge that announced the next request. */
		if (zmq_getsockopt(p->router, ZMQ_EVENTS, &events, &sz) < 0 ||
		    !(events & ZMQ_POLLIN) || handle_request(p) < 0) {
			uv_idle_stop(&p->drain_idle);
			return;
		}
		/* A herd of snapshot requests (every subscriber after a
		 * restart) must not hold the loop: heartbeats, results and the
		 * watcher go between slices of DRAIN_SLICE_MS. */
		if (slice_over(&t0))
			break;
	}
	/* More may be queued and the fd will not say so again: continue on
	 * the next loop turn, after other work has had its go. */
	uv_idle_start(&p->drain_idle, on_drain_idle);
}

static void on_drain_idle(uv_idle_t *h)
{
	router_drain(h->data);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct publish *p = h->data;

	(void)status;
	(void)events;
	if (h == &p->router_poll) {
		router_drain(p);
	} else {
		int ev;
		size_t sz = sizeof(ev);

		/* Reading ZMQ_EVENTS makes ZeroMQ process pending commands
		 * (new subscribers, subscriptions) and re-arms the fd. */
		zmq_getsockopt(p->pub, ZMQ_EVENTS, &ev, &sz);
	}
}
