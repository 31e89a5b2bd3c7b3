/*
 * serve.c — `grokwatch serve`: the bridge from the daemons' stream to
 * HTTP (cli.h).  The page, /metrics and the page's data are answered from
 * the board (board.h), which the client loop keeps; /api/snapshot,
 * /api/history and /api/result are the daemons' own replies, asked on the
 * client loop's thread for the HTTP thread (http.h's deferred requests),
 * so they hold exactly what the query socket gives.
 *
 * Two threads: the client loop (this file's serve_loop, the tool's main
 * thread, the only one that touches the gw_client) and libmicrohttpd's
 * (the handlers).  `lock` guards the board; `qlock` the queue of deferred
 * requests, which the loop takes at every turn (at most LOOP_MS after a
 * request arrives, as gw_client_next waits no longer).  A new result
 * reaches live pages as soon as the loop receives it; where its daemon
 * recomputed the memorized subsets of earlier steps, the loop asks for
 * those columns' history and sends the values that changed.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "board.h"
#include "cli.h"
#include "http.h"
#include "out.h"
#include "web.h"

#define LOOP_MS 50
#define PING_MS 10000
#define SAY_EVERY_MS 60000
#define QUEUE_MAX 256
#define RING_EVENTS 4096
#define RING_BYTES (16u << 20)
#define REQUEST_BYTES (32u << 10)

struct job {
	struct job *next;
	struct http_conn *conn;
	enum api_route route;
	size_t daemon;
	char metric[API_VALUE_MAX + 1], group[API_VALUE_MAX + 1];
	int64_t from, to, step;
};

struct serve {
	struct gw_client *c;
	struct board *b;
	struct http *http;
	pthread_mutex_t lock, qlock;
	struct job *q_head, **q_tail;
	size_t qn;
	int timeout_ms;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- replies -------------------------------------------------------------------------- */

static void reply_error(struct http_reply *rep, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_error(struct http_reply *rep, int status, const char *fmt, ...)
{
	va_list ap;
	char buf[600];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	rep->status = status;
	rep->type = "text/plain; charset=utf-8";
	rep->body = strdup(buf);
	rep->len = rep->body ? strlen(rep->body) : 0;
}

static void reply_copy(struct http_reply *rep, const char *type, const char *data, size_t len)
{
	rep->type = type;
	rep->body = malloc(len ? len : 1);
	rep->len = len;
	rep->status = rep->body ? 200 : 500;
	if (rep->body)
		memcpy(rep->body, data, len);
}

/* The body of an open_memstream as the reply, or 500. */
static void reply_mem(struct http_reply *rep, const char *type, FILE *f, char **buf, size_t *len)
{
	if (fclose(f) != 0) {
		free(*buf);
		reply_error(rep, 500, "out of memory");
		return;
	}
	rep->status = 200;
	rep->type = type;
	rep->body = *buf;
	rep->len = *len;
}

/* The daemon a request names: its run, or the only one.  Under lock. */
static int pick_daemon(struct serve *s, const struct api_req *req, size_t *ret,
		       struct http_reply *rep)
{
	size_t n = board_count(s->b);
	char names[400] = "";

	if (req->run) {
		if (board_find_run(s->b, req->run, ret) == 0)
			return 0;
	} else if (n == 1) {
		*ret = 0;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
			 i ? ", " : "", board_run(s->b, i)[0] ? board_run(s->b, i) : "(unknown)");
	if (req->run)
		reply_error(rep, 404, "no run '%.128s' (runs: %s)", req->run, names);
	else
		reply_error(rep, 400, "run: required: this bridge follows %zu runs (%s)", n, names);
	return -1;
}

/* ---- the HTTP thread's handlers -------------------------------------------------------- */

static int on_request(void *cls, const struct api_req *req, struct http_reply *rep)
{
	struct serve *s = cls;
	char *buf = NULL, inst[32];
	size_t len = 0, d = SIZE_MAX;
	unsigned long long next;
	FILE *f;

	switch (req->route) {
	case API_PAGE:
		reply_copy(rep, "text/html; charset=utf-8", web_index_html, web_index_html_len);
		return 0;
	case API_SCRIPT:
		reply_copy(rep, "text/javascript; charset=utf-8", web_dash_js, web_dash_js_len);
		return 0;
	case API_METRICS:
		if (!(f = open_memstream(&buf, &len))) {
			reply_error(rep, 500, "out of memory");
			return 0;
		}
		pthread_mutex_lock(&s->lock);
		board_prometheus(s->b, f);
		pthread_mutex_unlock(&s->lock);
		http_prometheus(s->http, f);
		reply_mem(rep, "text/plain; version=0.0.4; charset=utf-8", f, &buf, &len);
		return 0;
	case API_SERIES:
		pthread_mutex_lock(&s->lock);
		if (req->run && pick_daemon(s, req, &d, rep) < 0) {
			pthread_mutex_unlock(&s->lock);
			return 0;
		}
		if (!(f = open_memstream(&buf, &len))) {
			pthread_mutex_unlock(&s->lock);
			reply_error(rep, 500, "out of memory");
			return 0;
		}
		/* Under the board's lock, which every change takes before its
		 * event goes out: the events before this number are in it. */
		http_event_position(s->http, inst, sizeof(inst), &next);
		fprintf(f, "{\"instance\":\"%s\",\"event_id\":%llu,\"runs\":", inst, next);
		board_series_json(s->b, d, f);
		fputs("}", f);
		pthread_mutex_unlock(&s->lock);
		reply_mem(rep, "application/json", f, &buf, &len);
		return 0;
	case API_SNAPSHOT:
	case API_HISTORY:
	case API_RESULT:
		pthread_mutex_lock(&s->lock);
		if (pick_daemon(s, req, &d, rep) < 0) {
			pthread_mutex_unlock(&s->lock);
			return 0;
		}
		pthread_mutex_unlock(&s->lock);
		pthread_mutex_lock(&s->qlock);
		if (s->qn >= QUEUE_MAX) {
			pthread_mutex_unlock(&s->qlock);
			reply_error(rep, 503, "%d queries waiting for the daemons; try again later",
				    QUEUE_MAX);
			return 0;
		}
		s->qn++; /* a place for defer() */
		pthread_mutex_unlock(&s->qlock);
		return 1;
	case API_EVENTS:
		break;
	}
	reply_error(rep, 500, "no handler");
	return 0;
}

static void on_defer(void *cls, const struct api_req *req, struct http_conn *conn)
{
	struct serve *s = cls;
	struct job *j = calloc(1, sizeof(*j));
	struct http_reply rep = { 0 };
	size_t d = 0;

	pthread_mutex_lock(&s->lock);
	if (pick_daemon(s, req, &d, &rep) < 0) {
		pthread_mutex_unlock(&s->lock);
		free(j);
		j = NULL;
	} else {
		pthread_mutex_unlock(&s->lock);
	}
	if (!j) {
		pthread_mutex_lock(&s->qlock);
		s->qn--;
		pthread_mutex_unlock(&s->qlock);
		if (!rep.status)
			reply_error(&rep, 500, "out of memory");
		http_complete(s->http, conn, &rep);
		return;
	}
	j->conn = conn;
	j->route = req->route;
	j->daemon = d;
	snprintf(j->metric, sizeof(j->metric), "%s", req->metric ? req->metric : "");
	snprintf(j->group, sizeof(j->group), "%s", req->group ? req->group : "all");
	j->from = req->from;
	j->to = req->to;
	j->step = req->step;
	pthread_mutex_lock(&s->qlock);
	*s->q_tail = j;
	s->q_tail = &j->next;
	pthread_mutex_unlock(&s->qlock);
}

/* ---- the client loop's side -------------------------------------------------------------- */

static void query_error(struct serve *s, struct http_reply *rep, int r)
{
	if (r == -ETIMEDOUT)
		reply_error(rep, 504, "%s", gw_client_error(s->c));
	else if (r == -ENOMEM)
		reply_error(rep, 500, "out of memory");
	else
		reply_error(rep, 502, "%s", gw_client_error(s->c));
}

static void run_job(struct serve *s, struct job *j)
{
	struct http_reply rep = { 0 };
	struct gw_history *h;
	struct gw_msg *m;
	char *json;
	int r;

	switch (j->route) {
	case API_HISTORY:
		r = gw_client_history(s->c, j->daemon, j->metric, j->group, j->from, j->to, &h);
		if (r < 0) {
			query_error(s, &rep, r);
			break;
		}
		reply_copy(&rep, "application/json", gw_history_json(h),
			   strlen(gw_history_json(h)));
		gw_history_free(h);
		break;
	case API_SNAPSHOT:
	case API_RESULT:
		if (j->route == API_RESULT)
			j->from = j->to = j->step;
		r = gw_client_snapshot(s->c, j->daemon, j->from, j->to, &m);
		if (r < 0) {
			query_error(s, &rep, r);
			break;
		}
		if (j->route == API_SNAPSHOT) {
			reply_copy(&rep, "application/json", gw_msg_json(m), strlen(gw_msg_json(m)));
		} else if (gw_msg_get_json(m, "results.0", &json) == 0) {
			rep = (struct http_reply){ 200, "application/json", json, strlen(json) };
		} else {
			reply_error(&rep, 404, "run '%s' has no result at step %lld", gw_msg_run(m),
				    (long long)j->step);
		}
		gw_msg_free(m);
		break;
	default:
		reply_error(&rep, 500, "no handler");
		break;
	}
	http_complete(s->http, j->conn, &rep);
}

static void run_jobs(struct serve *s)
{
	for (;;) {
		struct job *j;

		pthread_mutex_lock(&s->qlock);
		j = s->q_head;
		if (j) {
			s->q_head = j->next;
			if (!s->q_head)
				s->q_tail = &s->q_head;
			s->qn--;
		}
		pthread_mutex_unlock(&s->qlock);
		if (!j)
			return;
		run_job(s, j);
		free(j);
	}
}

/* Send what an update of the board wrote to live pages. */
static void broadcast(struct serve *s, FILE *f, char **buf, size_t *len)
{
	if (fclose(f) == 0 && *len)
		http_broadcast(s->http, *buf, *len);
	free(*buf);
}

/* After daemon d's new latest result: the memorized columns of every
 * earlier step, as the daemon now has them. */
static void refresh_memo(struct serve *s, size_t d)
{
	for (size_t i = 0;; i++) {
		char group[API_VALUE_MAX + 1], metric[API_VALUE_MAX + 1];
		const char *g, *mt;
		struct gw_history *h;
		char *buf = NULL;
		size_t len = 0;
		FILE *f;
		int r;

		pthread_mutex_lock(&s->lock);
		r = board_memo_column(s->b, d, i, &g, &mt);
		if (r == 0) {
			snprintf(group, sizeof(group), "%s", g);
			snprintf(metric, sizeof(metric), "%s", mt);
		}
		pthread_mutex_unlock(&s->lock);
		if (r < 0)
			return;
		if (gw_client_history(s->c, d, metric, group, GW_STEP_NONE, GW_STEP_NONE, &h) < 0)
			return; /* the next result tries again */
		if ((f = open_memstream(&buf, &len))) {
			pthread_mutex_lock(&s->lock);
			board_apply_history(s->b, d, h, f);
			pthread_mutex_unlock(&s->lock);
			broadcast(s, f, &buf, &len);
		}
		gw_history_free(h);
	}
}

static void board_infos(struct serve *s)
{
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < gw_client_daemon_count(s->c); i++) {
		struct gw_daemon_info in;

		if (gw_client_daemon_info(s->c, i, &in) == 0)
			board_set_info(s->b, i, &in);
	}
	pthread_mutex_unlock(&s->lock);
}

static int take(struct serve *s, struct gw_msg *m)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int r;

	if (!f)
		return -ENOMEM;
	/* A resync makes pages load everything again: with the counters
	 * that count it. */
	if (!strcmp(gw_msg_type(m), "resync"))
		board_infos(s);
	pthread_mutex_lock(&s->lock);
	r = board_apply(s->b, m, f);
	pthread_mutex_unlock(&s->lock);
	broadcast(s, f, &buf, &len);
	if (r == 0 && !strcmp(gw_msg_type(m), "metrics") && !gw_msg_replayed(m))
		refresh_memo(s, gw_msg_daemon(m));
	return r;
}

static bool all_live(struct gw_client *c)
{
	for (size_t i = 0; i < gw_client_daemon_count(c); i++) {
		struct gw_daemon_info in;

		if (gw_client_daemon_info(c, i, &in) < 0 || in.state != GW_DAEMON_LIVE)
			return false;
	}
	return true;
}

static int serve_loop(struct serve *s)
{
	long long last_ping = now_ms(), last_info = 0, said_ms = 0, waiting_since = 0;
	char said[GW_ERROR_MAX] = "";
	bool live = false;

	while (!cli_interrupted) {
		struct gw_msg *m;
		int r = gw_client_next(s->c, LOOP_MS, &m);

		if (r == 0) {
			r = take(s, m);
			gw_msg_free(m);
			if (r == -ENOMEM) {
				fprintf(stderr, "grokwatch: serve: out of memory\n");
				return 1;
			}
		} else if (r == -EINTR) {
			break;
		} else if (r == -ETIMEDOUT || r == -EPROTO) {
			/* A daemon down, slow or refusing: said once it has lasted
			 * --timeout, then once a minute while it lasts (the message
			 * counts the milliseconds waited); the bridge goes on serving
			 * what it has. */
			const char *e = gw_client_error(s->c);

			if (r == -ETIMEDOUT && all_live(s->c)) {
				said_ms = 0; /* only quiet */
				waiting_since = 0;
			} else if (!waiting_since) {
				waiting_since = now_ms(); /* said after --timeout */
			} else if (*e && (r == -EPROTO || now_ms() - waiting_since >= s->timeout_ms) &&
				   (!said_ms || now_ms() - said_ms >= SAY_EVERY_MS ||
				    (r == -EPROTO && strcmp(e, said)))) {
				fprintf(stderr, "grokwatch: serve: %s\n", e);
				snprintf(said, sizeof(said), "%s", e);
				said_ms = now_ms();
			}
		} else {
			fprintf(stderr, "grokwatch: serve: %s\n", gw_client_error(s->c));
			return 1;
		}
		run_jobs(s);
		if (now_ms() - last_info >= 500) {
			board_infos(s);
			last_info = now_ms();
			/* A catch-up parses whole snapshots (tens of MB for long
			 * runs) and frees them: give that memory back once every
			 * daemon is live again, not at the next peak. */
			if (all_live(s->c) != live) {
				live = !live;
				if (live)
					malloc_trim(0);
			}
		}
		if (now_ms() - last_ping >= PING_MS) {
			http_ping(s->http);
			last_ping = now_ms();
		}
	}
	return 0;
}

/* Room for every connection: the descriptor limit raised to its hard
 * limit where the connections need more than the soft one. */
static unsigned fd_room(unsigned want)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)want + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return want;
	if (rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < need) {
		unsigned fit = rl.rlim_cur > 128 ? (unsigned)(rl.rlim_cur - 64) : 64;

		fprintf(stderr, "grokwatch: serve: --max-connections %u lowered to %u (the limit "
				"on open files is %llu)\n",
			want, fit, (unsigned long long)rl.rlim_cur);
		return fit;
	}
	return want;
}

int cmd_serve(struct gw_client *c, const struct opts *o)
{
	struct serve s = { .c = c, .timeout_ms = (int)o->timeout_ms };
	struct http_opts ho = {
		.listen = o->listen ? o->listen : SERVE_DEFAULT_LISTEN,
		.allow_remote = o->allow_remote,
		.max_connections = o->max_connections ? (unsigned)o->max_connections : 1000,
		.max_streams = o->max_streams ? (unsigned)o->max_streams : 200,
		.idle_timeout_s = o->idle_timeout ? (unsigned)o->idle_timeout : 30,
		.request_bytes = REQUEST_BYTES,
		.ring_events = RING_EVENTS,
		.ring_bytes = RING_BYTES,
	};
	const char *eps[OPT_LIST_MAX];
	char why[600];
	int r, status;

	for (int i = 0; i < o->endpoints.n; i++)
		eps[i] = o->endpoints.v[i];
	ho.max_connections = fd_room(ho.max_connections);
	if (ho.max_streams > ho.max_connections)
		ho.max_streams = ho.max_connections;
	pthread_mutex_init(&s.lock, NULL);
	pthread_mutex_init(&s.qlock, NULL);
	s.q_tail = &s.q_head;
	/* Every message, heartbeats too: they carry the daemon's status. */
	if ((r = gw_client_subscribe(c, "")) < 0) {
		fprintf(stderr, "grokwatch: serve: %s\n", gw_client_error(c));
		status = 1;
		goto out;
	}
	if ((r = board_new((size_t)o->endpoints.n, eps, &s.b)) < 0) {
		fprintf(stderr, "grokwatch: serve: %s\n", strerror(-r));
		status = 1;
		goto out;
	}
	if ((r = http_start(&ho, on_request, on_defer, &s, &s.http, why, sizeof(why))) < 0) {
		fprintf(stderr, "grokwatch: serve: %s\n", why);
		status = r == -EPERM || r == -EINVAL ? 2 : 1;
		goto out;
	}
	out_printf("serving http://%s/ (%d daemon%s)\n", http_address(s.http), o->endpoints.n,
		   o->endpoints.n == 1 ? "" : "s");
	out_flush(); /* a reader that has gone does not stop the bridge */
	status = serve_loop(&s);
	/* Queries still queued are answered before the server stops. */
	run_jobs(&s);
out:
	http_stop(s.http);
	/* A request deferred while the server stopped was answered by it. */
	while (s.q_head) {
		struct job *j = s.q_head;

		s.q_head = j->next;
		free(j);
	}
	board_free(s.b);
	pthread_mutex_destroy(&s.lock);
	pthread_mutex_destroy(&s.qlock);
	return status;
}
