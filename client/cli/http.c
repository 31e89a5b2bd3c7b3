/*
 * http.c — the server of http.h.
 *
 * In order: the listening socket (address parsing, the loopback rule);
 * the event ring; connections (struct http_conn: a plain request, a
 * deferred one, or an event stream) and the access handler that routes
 * them; the stream's content reader; start, stop and the counters.
 *
 * One mutex guards the ring, the stream list and the counters.  A stream
 * with nothing to send is suspended by its reader under the mutex, after
 * setting its `suspended` flag; a broadcast clears the flags under the
 * mutex and resumes those connections after releasing it.  A suspended
 * connection cannot be closed by libmicrohttpd, so one collected for
 * resuming is still there when it is resumed, and the mutex is never held
 * while waiting for libmicrohttpd's own locks from another thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

#define STATUS_KINDS 10

enum conn_kind { CONN_PLAIN, CONN_DEFERRED, CONN_STREAM };

struct http_conn {
	struct http *h;
	struct MHD_Connection *mc;
	enum conn_kind kind;
	/* deferred */
	bool done;
	struct http_reply reply;
	struct http_conn *dnext, *dprev;
	/* stream */
	bool suspended, ping, counted;
	char hello[160];
	size_t hello_len, hello_off;
	uint64_t cursor;      /* id of the next event to send */
	size_t off;           /* bytes of it already sent */
	struct http_conn *next, *prev;
};

struct event {
	uint64_t id;
	char *text;
	size_t len;
};

struct http {
	struct MHD_Daemon *mhd;
	int fd;
	char address[300];
	char instance[24];
	struct http_opts o;
	pthread_mutex_t lock;
	bool stopping;
	/* the ring */
	struct event *ring;
	size_t head, count, bytes;
	uint64_t next_id;
	/* streams and deferred requests */
	struct http_conn *streams, *deferred;
	unsigned nstreams;
	http_handler handler;
	http_defer defer;
	void *cls;
	/* counters */
	unsigned long long by_status[STATUS_KINDS], events_sent, event_bytes, dropped,
		refused_streams;
};

static const int status_codes[STATUS_KINDS] = { 200, 400, 404, 405, 413, 414, 500, 503, 504,
						0 };

static void count_status(struct http *h, int status)
{
	int k = 0;

	while (status_codes[k] && status_codes[k] != status)
		k++;
	pthread_mutex_lock(&h->lock);
	h->by_status[k]++;
	pthread_mutex_unlock(&h->lock);
}

/* ---- the listening socket -------------------------------------------------------------- */

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr) >>
			24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		if (IN6_IS_ADDR_LOOPBACK(a))
			return true;
		if (IN6_IS_ADDR_V4MAPPED(a))
			return a->s6_addr[12] == 127;
	}
	return false;
}

static int listen_on(struct http *h, char *why, size_t size)
{
	char host[256], port[8];
	const char *colon = strrchr(h->o.listen, ':');
	struct addrinfo hints = { 0 }, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	size_t hl;
	int fd = -1, one = 1, r;
	char *end;
	long p;

	if (!colon || colon == h->o.listen || strlen(colon + 1) >= sizeof(port))
		goto bad;
	hl = (size_t)(colon - h->o.listen);
	if (h->o.listen[0] == '[') {
		if (hl < 3 || h->o.listen[hl - 1] != ']')
			goto bad;
		snprintf(host, sizeof(host), "%.*s", (int)(hl - 2), h->o.listen + 1);
	} else if (hl < sizeof(host) && !memchr(h->o.listen, ':', hl)) {
		snprintf(host, sizeof(host), "%.*s", (int)hl, h->o.listen);
	} else {
		goto bad;
	}
	snprintf(port, sizeof(port), "%s", colon + 1);
	p = strtol(port, &end, 10);
	if (!*port || *end || p < 0 || p > 65535)
		goto bad;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(host, port, &hints, &ai)) != 0) {
		snprintf(why, size, "--listen \"%s\": %s", h->o.listen, gai_strerror(r));
		return -EINVAL;
	}
	if (!is_loopback(ai->ai_addr) && !h->o.allow_remote) {
		snprintf(why, size, "--listen \"%s\": not a loopback address; serving other "
				    "hosts needs --allow-remote", h->o.listen);
		freeaddrinfo(ai);
		return -EPERM;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		snprintf(why, size, "--listen \"%s\": %s", h->o.listen, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return r;
	}
	p = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
					     ((struct sockaddr_in *)&ss)->sin_port);
	snprintf(h->address, sizeof(h->address), "%s%s%s:%ld", ai->ai_family == AF_INET6 ? "[" : "",
		 host, ai->ai_family == AF_INET6 ? "]" : "", p);
	freeaddrinfo(ai);
	h->fd = fd;
	return 0;
bad:
	snprintf(why, size, "--listen \"%s\": expected HOST:PORT (127.0.0.1:8470, [::1]:8470)",
		 h->o.listen);
	return -EINVAL;
}

/* ---- the ring ----------------------------------------------------------------------------- */

static uint64_t ring_first_id(const struct http *h)
{
	return h->count ? h->ring[h->head].id : h->next_id;
}

static void ring_drop_oldest(struct http *h)
{
	struct event *e = &h->ring[h->head];

	h->bytes -= e->len;
	free(e->text);
	e->text = NULL;
	h->head = (h->head + 1) % h->o.ring_events;
	h->count--;
}

/* Add one event (text without its id line).  Under the lock. */
static int ring_add(struct http *h, const char *text, size_t len)
{
	char idline[64];
	int il = snprintf(idline, sizeof(idline), "id: %s-%llu\n", h->instance,
			  (unsigned long long)h->next_id);
	char *t = malloc((size_t)il + len);
	struct event *e;

	if (!t)
		return -ENOMEM;
	memcpy(t, idline, (size_t)il);
	memcpy(t + il, text, len);
	while (h->count && (h->count == h->o.ring_events || h->bytes + len > h->o.ring_bytes))
		ring_drop_oldest(h);
	e = &h->ring[(h->head + h->count) % h->o.ring_events];
	e->id = h->next_id++;
	e->text = t;
	e->len = (size_t)il + len;
	h->count++;
	h->bytes += e->len;
	return 0;
}

static const struct event *ring_get(const struct http *h, uint64_t id)
{
	uint64_t first = ring_first_id(h);

	if (id < first || id >= first + h->count)
		return NULL;
	return &h->ring[(h->head + (size_t)(id - first)) % h->o.ring_events];
}

/* Resume the connections collected (outside the lock). */
static void resume_all(struct MHD_Connection **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		MHD_resume_connection(v[i]);
}

/* Clear the suspended flag of every stream; their connections into *ret
 * (malloc'ed), for resume_all after unlocking.  Under the lock. */
static size_t streams_to_wake(struct http *h, bool ping, struct MHD_Connection ***ret)
{
	struct MHD_Connection **v = calloc(h->nstreams + 1, sizeof(*v));
	size_t n = 0;

	for (struct http_conn *c = h->streams; c; c = c->next) {
		if (ping)
			c->ping = true;
		if (c->suspended && v) {
			c->suspended = false;
			v[n++] = c->mc;
		}
	}
	*ret = v;
	return n;
}

int http_broadcast(struct http *h, const char *events, size_t len)
{
	struct MHD_Connection **v;
	size_t n, start = 0;
	int r = 0;

	pthread_mutex_lock(&h->lock);
	/* One ring entry per event: blocks end with an empty line. */
	for (size_t i = 0; i + 1 < len && r == 0; i++)
		if (events[i] == '\n' && events[i + 1] == '\n') {
			r = ring_add(h, events + start, i + 2 - start);
			start = i + 2;
			i++;
		}
	n = streams_to_wake(h, false, &v);
	pthread_mutex_unlock(&h->lock);
	resume_all(v, n);
	free(v);
	return r;
}

void http_ping(struct http *h)
{
	struct MHD_Connection **v;
	size_t n;

	pthread_mutex_lock(&h->lock);
	n = streams_to_wake(h, true, &v);
	pthread_mutex_unlock(&h->lock);
	resume_all(v, n);
	free(v);
}

/* ---- the event stream's reader -------------------------------------------------------------- */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct http_conn *c = cls;
	struct http *h = c->h;
	size_t n = 0;

	(void)pos;
	pthread_mutex_lock(&h->lock);
	if (h->stopping) {
		pthread_mutex_unlock(&h->lock);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	if (c->hello_off < c->hello_len) {
		n = c->hello_len - c->hello_off < max ? c->hello_len - c->hello_off : max;
		memcpy(buf, c->hello + c->hello_off, n);
		c->hello_off += n;
	}
	while (n < max) {
		const struct event *e = ring_get(h, c->cursor);
		size_t k;

		if (!e) {
			if (c->cursor < ring_first_id(h)) {
				/* The page fell behind by a whole ring: it reconnects
				 * and reloads. */
				h->dropped++;
				pthread_mutex_unlock(&h->lock);
				return n ? (ssize_t)n : MHD_CONTENT_READER_END_WITH_ERROR;
			}
			break;
		}
		k = e->len - c->off < max - n ? e->len - c->off : max - n;
		memcpy(buf + n, e->text + c->off, k);
		n += k;
		c->off += k;
		h->event_bytes += k;
		if (c->off == e->len) {
			c->cursor++;
			c->off = 0;
			h->events_sent++;
		}
	}
	if (n == 0 && c->ping && max >= 2) {
		memcpy(buf, ":\n", 2);
		n = 2;
	}
	c->ping = false;
	if (n == 0) {
		c->suspended = true;
		MHD_suspend_connection(c->mc);
	}
	pthread_mutex_unlock(&h->lock);
	return (ssize_t)n;
}

/* ---- connections --------------------------------------------------------------------------- */

static int reply_text(struct MHD_Connection *mc, struct http *h, int status, const char *text)
{
	char buf[512];
	int len = snprintf(buf, sizeof(buf), "%s\n", text);
	struct MHD_Response *resp =
		MHD_create_response_from_buffer((size_t)len, buf, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result r;

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	r = MHD_queue_response(mc, (unsigned)status, resp);
	MHD_destroy_response(resp);
	count_status(h, status);
	return r;
}

static int reply_send(struct MHD_Connection *mc, struct http *h, struct http_reply *rep)
{
	struct MHD_Response *resp;
	enum MHD_Result r;

	if (rep->status != 200 || !rep->body) {
		int st = rep->status ? rep->status : 500;
		int res = reply_text(mc, h, st, rep->body ? rep->body : "internal error");

		free(rep->body);
		rep->body = NULL;
		return res;
	}
	resp = MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(rep->body);
		rep->body = NULL;
		return MHD_NO;
	}
	rep->body = NULL;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rep->type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (!strncmp(rep->type, "text/html", 9))
		MHD_add_response_header(resp, "Content-Security-Policy",
					"default-src 'self'; style-src 'self' 'unsafe-inline'");
	r = MHD_queue_response(mc, (unsigned)rep->status, resp);
	MHD_destroy_response(resp);
	count_status(h, rep->status);
	return r;
}

struct params {
	struct api_param v[API_PARAMS_MAX + 1];
	size_t n;
};

static enum MHD_Result param_cb(void *cls, enum MHD_ValueKind kind, const char *key,
				const char *value)
{
	struct params *p = cls;

	(void)kind;
	if (p->n < API_PARAMS_MAX + 1)
		p->v[p->n] = (struct api_param){ key, value };
	p->n++;
	return MHD_YES;
}

/* Where a stream starts: after the event its Last-Event-ID names, if this
 * instance's and still in the ring.  Under the lock. */
static bool stream_resume_from(struct http *h, struct MHD_Connection *mc, uint64_t *ret)
{
	const char *last = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Last-Event-ID");
	size_t il = strlen(h->instance);
	unsigned long long id;
	char *end;

	if (!last || strncmp(last, h->instance, il) || last[il] != '-')
		return false;
	errno = 0;
	id = strtoull(last + il + 1, &end, 10);
	if (errno || *end || id + 1 < ring_first_id(h) || id + 1 > h->next_id)
		return false;
	*ret = id + 1;
	return true;
}

static int start_stream(struct http *h, struct MHD_Connection *mc, struct http_conn *c)
{
	struct MHD_Response *resp;
	enum MHD_Result r;
	bool resumed;

	pthread_mutex_lock(&h->lock);
	if (h->nstreams >= h->o.max_streams) {
		h->refused_streams++;
		pthread_mutex_unlock(&h->lock);
		return reply_text(mc, h, 503, "too many event streams open; try again later");
	}
	resumed = stream_resume_from(h, mc, &c->cursor);
	if (!resumed)
		c->cursor = h->next_id;
	c->hello_len = (size_t)snprintf(c->hello, sizeof(c->hello),
					"retry: 1000\nevent: hello\ndata: {\"instance\":\"%s\","
					"\"resumed\":%s,\"next\":%llu}\n\n",
					h->instance, resumed ? "true" : "false",
					(unsigned long long)c->cursor);
	c->kind = CONN_STREAM;
	c->counted = true;
	c->next = h->streams;
	if (h->streams)
		h->streams->prev = c;
	h->streams = c;
	h->nstreams++;
	pthread_mutex_unlock(&h->lock);

	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, c, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	r = MHD_queue_response(mc, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	count_status(h, 200);
	return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct http_conn *c = *con_cls;
	struct params ps = { .n = 0 };
	struct api_req req;
	struct http_reply rep = { 0 };
	char why[300];
	int st;

	(void)version;
	(void)upload_data;
	if (c) {
		/* Called again: a deferred reply was completed (or a body
		 * arrives, which the first call refused already). */
		if (c->kind == CONN_DEFERRED && c->done) {
			rep = c->reply;
			c->reply.body = NULL;
			c->kind = CONN_PLAIN;
			return reply_send(mc, h, &rep);
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (!(c = calloc(1, sizeof(*c))))
		return MHD_NO;
	c->h = h;
	c->mc = mc;
	*con_cls = c;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply_text(mc, h, 405, "only GET and HEAD are served");
	if (MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH) ||
	    MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
		return reply_text(mc, h, 413, "a request body is not accepted");
	MHD_get_connection_values(mc, MHD_GET_ARGUMENT_KIND, param_cb, &ps);
	st = api_parse(url, ps.v, ps.n < API_PARAMS_MAX + 1 ? ps.n : API_PARAMS_MAX + 1, &req, why,
		       sizeof(why));
	if (st)
		return reply_text(mc, h, st, why);
	if (req.route == API_EVENTS)
		return start_stream(h, mc, c);
	if (h->handler(h->cls, &req, &rep) == 0)
		return reply_send(mc, h, &rep);
	/* Suspended before the request goes to another thread, so that
	 * thread's resume always follows the suspend. */
	c->kind = CONN_DEFERRED;
	pthread_mutex_lock(&h->lock);
	c->dnext = h->deferred;
	if (h->deferred)
		h->deferred->dprev = c;
	h->deferred = c;
	pthread_mutex_unlock(&h->lock);
	MHD_suspend_connection(mc);
	h->defer(h->cls, &req, c);
	return MHD_YES;
}

static void unlink_deferred(struct http *h, struct http_conn *c)
{
	if (c->dprev)
		c->dprev->dnext = c->dnext;
	else if (h->deferred == c)
		h->deferred = c->dnext;
	if (c->dnext)
		c->dnext->dprev = c->dprev;
	c->dnext = c->dprev = NULL;
}

void http_complete(struct http *h, struct http_conn *c, struct http_reply *reply)
{
	struct MHD_Connection *mc;

	pthread_mutex_lock(&h->lock);
	if (c->kind != CONN_DEFERRED || c->done) {
		/* Answered already (at shutdown): drop this reply. */
		pthread_mutex_unlock(&h->lock);
		free(reply->body);
		reply->body = NULL;
		return;
	}
	c->reply = *reply;
	reply->body = NULL;
	c->done = true;
	unlink_deferred(h, c);
	mc = c->mc;
	pthread_mutex_unlock(&h->lock);
	MHD_resume_connection(mc);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http *h = cls;
	struct http_conn *c = *con_cls;

	(void)mc;
	(void)toe;
	if (!c)
		return;
	pthread_mutex_lock(&h->lock);
	if (c->counted) {
		if (c->prev)
			c->prev->next = c->next;
		else
			h->streams = c->next;
		if (c->next)
			c->next->prev = c->prev;
		h->nstreams--;
	}
	if (c->kind == CONN_DEFERRED && !c->done)
		unlink_deferred(h, c);
	pthread_mutex_unlock(&h->lock);
	free(c->reply.body);
	free(c);
	*con_cls = NULL;
}

/* ---- start and stop ------------------------------------------------------------------------ */

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	fputs("grokwatch: serve: http: ", stderr);
	vfprintf(stderr, fmt, ap);
	if (!*fmt || fmt[strlen(fmt) - 1] != '\n')
		fputc('\n', stderr);
}

int http_start(const struct http_opts *o, http_handler handler, http_defer defer, void *cls,
	       struct http **ret, char *why, size_t why_size)
{
	struct http *h = calloc(1, sizeof(*h));
	struct timespec ts;
	int r;

	if (!h) {
		snprintf(why, why_size, "out of memory");
		return -ENOMEM;
	}
	h->handler = handler;
	h->defer = defer;
	h->cls = cls;
	h->o = *o;
	h->fd = -1;
	pthread_mutex_init(&h->lock, NULL);
	if (!h->o.ring_events)
		h->o.ring_events = 1;
	if (!(h->ring = calloc(h->o.ring_events, sizeof(*h->ring)))) {
		snprintf(why, why_size, "out of memory");
		http_stop(h);
		return -ENOMEM;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(h->instance, sizeof(h->instance), "%llx",
		 (unsigned long long)ts.tv_sec * 1000003ULL ^ (unsigned long long)ts.tv_nsec ^
			 ((unsigned long long)getpid() << 32));
	if ((r = listen_on(h, why, why_size)) < 0) {
		http_stop(h);
		return r;
	}
	h->mhd = MHD_start_daemon(
		MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0,
		NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, h->fd,
		MHD_OPTION_CONNECTION_LIMIT, o->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
		o->idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->request_bytes,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
	if (!h->mhd) {
		snprintf(why, why_size, "\"%s\": libmicrohttpd would not start", h->address);
		http_stop(h);
		return -EIO;
	}
	*ret = h;
	return 0;
}

const char *http_address(const struct http *h)
{
	return h->address;
}

void http_stop(struct http *h)
{
	struct MHD_Connection **v;
	size_t n = 0;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	n = streams_to_wake(h, false, &v);
	pthread_mutex_unlock(&h->lock);
	resume_all(v, n);
	free(v);
	/* Deferred requests still waiting get 503. */
	for (;;) {
		struct http_conn *c;
		struct http_reply rep = { 503, NULL, NULL, 0 };

		pthread_mutex_lock(&h->lock);
		c = h->deferred;
		pthread_mutex_unlock(&h->lock);
		if (!c)
			break;
		rep.body = strdup("the bridge is stopping");
		rep.len = rep.body ? strlen(rep.body) : 0;
		http_complete(h, c, &rep);
	}
	if (h->mhd)
		MHD_stop_daemon(h->mhd);
	else if (h->fd >= 0)
		close(h->fd);
	while (h->ring && h->count)
		ring_drop_oldest(h);
	free(h->ring);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void http_prometheus(struct http *h, FILE *f)
{
	pthread_mutex_lock(&h->lock);
	fputs("# HELP grokwatch_serve_http_requests_total HTTP requests answered, by status\n"
	      "# TYPE grokwatch_serve_http_requests_total counter\n", f);
	for (int k = 0; k < STATUS_KINDS; k++)
		if (status_codes[k])
			fprintf(f, "grokwatch_serve_http_requests_total{code=\"%d\"} %llu\n",
				status_codes[k], h->by_status[k]);
		else
			fprintf(f, "grokwatch_serve_http_requests_total{code=\"other\"} %llu\n",
				h->by_status[k]);
	fprintf(f, "# HELP grokwatch_serve_event_streams Live pages connected to /events\n"
		   "# TYPE grokwatch_serve_event_streams gauge\n"
		   "grokwatch_serve_event_streams %u\n"
		   "# HELP grokwatch_serve_events_sent_total Events written to live pages\n"
		   "# TYPE grokwatch_serve_events_sent_total counter\n"
		   "grokwatch_serve_events_sent_total %llu\n"
		   "# HELP grokwatch_serve_event_bytes_total Bytes of events written to live pages\n"
		   "# TYPE grokwatch_serve_event_bytes_total counter\n"
		   "grokwatch_serve_event_bytes_total %llu\n"
		   "# HELP grokwatch_serve_streams_dropped_total Event streams closed for falling a "
		   "whole ring behind\n"
		   "# TYPE grokwatch_serve_streams_dropped_total counter\n"
		   "grokwatch_serve_streams_dropped_total %llu\n"
		   "# HELP grokwatch_serve_streams_refused_total Event streams refused at the "
		   "limit\n"
		   "# TYPE grokwatch_serve_streams_refused_total counter\n"
		   "grokwatch_serve_streams_refused_total %llu\n",
		h->nstreams, h->events_sent, h->event_bytes, h->dropped, h->refused_streams);
	pthread_mutex_unlock(&h->lock);
}

void http_event_position(struct http *h, char *instance, size_t size, unsigned long long *ret)
{
	pthread_mutex_lock(&h->lock);
	snprintf(instance, size, "%s", h->instance);
	*ret = h->next_id;
	pthread_mutex_unlock(&h->lock);
}

unsigned long long http_event_bytes(struct http *h)
{
	unsigned long long n;

	pthread_mutex_lock(&h->lock);
	n = h->event_bytes;
	pthread_mutex_unlock(&h->lock);
	return n;
}
