/* test_alertmanager.c — the Alertmanager sender on a real libuv loop
 * against a small HTTP server on the same loop (uv_tcp on 127.0.0.1): it
 * answers each POST as the test scripts it (200, 500, or never: a hang),
 * and keeps each request's path, headers, body and arrival time.  Checked:
 * the first POST at once with the firing set; a 500 retried after 0.5 s,
 * then 1 s (the backoff); a hang cut at timeout_ms and retried; the
 * backoff capped at resend_ms; after a 200 the re-send every resend_ms; a
 * resolution sent at once with endsAt and dropped once a POST carrying it
 * succeeded; a firing again taking back a queued resolution; the status
 * object; basic auth from a file; bad options refused; close with a POST
 * in flight.  Every test ends with uv_loop_close() == 0. */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "../tap.h"
#include "alert.h"
#include "alertmanager.h"
#include "engine/json.h"

#define MAX_REQ 32
#define ANSWER_OK 200
#define ANSWER_FAIL 500
#define ANSWER_HANG 0

struct req {
	uint64_t at;   /* uv_now */
	char *head;    /* request line and headers */
	cJSON *body;   /* parsed body (NULL if not JSON) */
};

struct conn {
	uv_tcp_t tcp;
	struct srv *s;
	char *buf;
	size_t len, cap;
	bool done;
	uv_write_t w;
};

struct srv {
	uv_loop_t *loop;
	uv_tcp_t tcp;
	int port;
	int script[MAX_REQ]; /* the answer to request i (past the end: 200) */
	int nscript;
	struct req reqs[MAX_REQ];
	int nreq;
	struct conn *hung[MAX_REQ];
	int nhung;
};

static void conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	free(c->buf);
	free(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct conn *c = h->data;

	(void)hint;
	if (c->cap - c->len < 4096) {
		c->cap = c->cap * 2 + 8192;
		c->buf = realloc(c->buf, c->cap);
	}
	*b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len - 1));
}

static void written(uv_write_t *w, int status)
{
	struct conn *c = w->data;

	(void)status;
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

/* A whole request in c->buf: record it and answer as scripted. */
static void answer(struct conn *c, const char *hdr_end, size_t clen)
{
	struct srv *s = c->s;
	int i = s->nreq, code = i < s->nscript ? s->script[i] : ANSWER_OK;
	struct req *r = &s->reqs[s->nreq++];
	static char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	static char fail[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n"
			     "Connection: close\r\n\r\nboom";
	uv_buf_t b;

	GW_BUG_ON(s->nreq > MAX_REQ);
	c->done = true;
	r->at = uv_now(s->loop);
	r->head = strndup(c->buf, (size_t)(hdr_end - c->buf));
	r->body = cJSON_ParseWithLength(hdr_end + 4, clen);
	if (code == ANSWER_HANG) {
		s->hung[s->nhung++] = c;
		return;
	}
	b = code == ANSWER_OK ? uv_buf_init(ok, sizeof(ok) - 1) : uv_buf_init(fail, sizeof(fail) - 1);
	c->w.data = c;
	uv_write(&c->w, (uv_stream_t *)&c->tcp, &b, 1, written);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct conn *c = st->data;
	const char *end, *cl;

	(void)b;
	if (n < 0) {
		/* The client went (after a hang, its timeout). */
		for (int i = 0; i < c->s->nhung; i++)
			if (c->s->hung[i] == c)
				c->s->hung[i] = NULL;
		uv_close((uv_handle_t *)&c->tcp, conn_closed);
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = 0;
	if (c->done || !(end = strstr(c->buf, "\r\n\r\n")))
		return;
	cl = strcasestr(c->buf, "Content-Length:");
	if (!cl || cl > end)
		return;
	if (c->len >= (size_t)(end - c->buf) + 4 + strtoul(cl + 15, NULL, 10))
		answer(c, end, strtoul(cl + 15, NULL, 10));
}

static void on_conn(uv_stream_t *st, int status)
{
	struct srv *s = st->data;
	struct conn *c = calloc(1, sizeof(*c));

	CHECK_INT_EQ(status, 0);
	c->s = s;
	uv_tcp_init(s->loop, &c->tcp);
	c->tcp.data = c;
	CHECK_INT_EQ(uv_accept(st, (uv_stream_t *)&c->tcp), 0);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void srv_start(struct srv *s, uv_loop_t *loop)
{
	struct sockaddr_in a;
	struct sockaddr_storage got;
	int len = sizeof(got);

	memset(s, 0, sizeof(*s));
	s->loop = loop;
	uv_tcp_init(loop, &s->tcp);
	s->tcp.data = s;
	uv_ip4_addr("127.0.0.1", 0, &a);
	CHECK_INT_EQ(uv_tcp_bind(&s->tcp, (const struct sockaddr *)&a, 0), 0);
	CHECK_INT_EQ(uv_listen((uv_stream_t *)&s->tcp, 16, on_conn), 0);
	uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&got, &len);
	s->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
}

static void srv_stop(struct srv *s)
{
	for (int i = 0; i < s->nhung; i++)
		if (s->hung[i])
			uv_close((uv_handle_t *)&s->hung[i]->tcp, conn_closed);
	uv_close((uv_handle_t *)&s->tcp, NULL);
	for (int i = 0; i < s->nreq; i++) {
		free(s->reqs[i].head);
		cJSON_Delete(s->reqs[i].body);
	}
}

static void on_tick(uv_timer_t *h)
{
	(void)h; /* only wakes uv_run(UV_RUN_ONCE) up */
}

/* Run the loop until the server has n requests (at most 20 s). */
static void wait_reqs(uv_loop_t *loop, struct srv *s, int n)
{
	uint64_t end = uv_now(loop) + 20000;
	uv_timer_t tick;

	uv_timer_init(loop, &tick);
	uv_timer_start(&tick, on_tick, 50, 50);
	while (s->nreq < n && uv_now(loop) < end) {
		uv_timer_again(&tick);
		uv_run(loop, UV_RUN_ONCE);
		uv_update_time(loop);
	}
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	if (s->nreq < n)
		tap_fail(__FILE__, __LINE__, "%d of %d requests within 20 s", s->nreq, n);
}

/* An alert event for alertname `name` of group math, run r1. */
static cJSON *event(const char *status, const char *name, const char *ends)
{
	char fp[17], text[1024];

	alert_fingerprint(name, "r1", "math", "pathway_distance", fp);
	snprintf(text, sizeof(text),
		 "{\"kind\": \"alert\", \"step\": 600, \"status\": \"%s\", \"alerts\": [{\"status\": "
		 "\"%s\", \"labels\": {\"alertname\": \"%s\", \"run\": \"r1\", \"group\": \"math\", "
		 "\"metric\": \"pathway_distance\"}, \"annotations\": {\"summary\": \"s\", "
		 "\"description\": \"d\"}, \"startsAt\": \"2026-01-01T00:00:00.000Z\", \"endsAt\": "
		 "\"%s\", \"generatorURL\": \"\", \"fingerprint\": \"%s\"}]}",
		 status, status, name, ends, fp);
	return cJSON_Parse(text);
}

static struct alerts *alerts_firing(const char *name)
{
	const struct alert_opts o = {
		.enabled = true,
		.loss = { .metric = "loss", .mode = ALERT_MODE_MIN },
		.distance = { .metric = "pathway_distance", .mode = ALERT_MODE_MIN },
	};
	struct alerts *a = alerts_new(&o);
	struct gw_err e = { "" };
	cJSON *ev = event("firing", name, ALERT_ENDS_FIRING);

	CHECK_INT_EQ(alerts_apply(a, ev, &e), 0);
	cJSON_Delete(ev);
	return a;
}

/* The labels.alertname of each element of a POST body, and whether it has
 * endsAt: "grokking grokking:resolved". */
static void names(const cJSON *body, char *out, size_t size)
{
	const cJSON *x;
	size_t n = 0;

	out[0] = 0;
	cJSON_ArrayForEach(x, body) {
		const cJSON *l = cJSON_GetObjectItem(x, "labels");

		n += (size_t)snprintf(out + n, size - n, "%s%s%s", n ? " " : "",
				      cJSON_GetObjectItem(l, "alertname")->valuestring,
				      cJSON_GetObjectItem(x, "endsAt") ? ":resolved" : "");
	}
}

static const cJSON *target_status(const cJSON *st)
{
	return cJSON_GetArrayItem(st, 0);
}

static void test_retries_backoff_and_resend(void)
{
	uv_loop_t loop;
	struct srv s;
	struct alertmanager *m = NULL;
	struct alerts *a = alerts_firing("grokking");
	struct gw_err e = { "" };
	char url[64], got[256];
	const char *urls[1] = { url };
	cJSON *st, *ev;
	int64_t gap;

	uv_loop_init(&loop);
	srv_start(&s, &loop);
	/* 500, 500, hang, 200, 200 (resend), 200 (the resolution), 200 ... */
	s.script[0] = ANSWER_FAIL;
	s.script[1] = ANSWER_FAIL;
	s.script[2] = ANSWER_HANG;
	s.nscript = 3;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", s.port);
	CHECK_INT_EQ(alertmanager_new(&loop, &(struct am_opts){ .urls = urls, .n_urls = 1,
								 .resend_ms = 1500,
								 .timeout_ms = 400 },
				      a, &m, &e), 0);
	wait_reqs(&loop, &s, 1);
	CHECK_STR_HAS(s.reqs[0].head, "POST /api/v2/alerts HTTP/1.1");
	CHECK_STR_HAS(s.reqs[0].head, "Content-Type: application/json");
	names(s.reqs[0].body, got, sizeof(got));
	CHECK_STR_EQ(got, "grokking");
	/* exactly the PostableAlert fields of a firing alert */
	{
		const cJSON *x = cJSON_GetArrayItem(s.reqs[0].body, 0);

		CHECK_INT_EQ(cJSON_GetArraySize(x), 3);
		CHECK_STR_EQ(cJSON_GetObjectItem(x, "startsAt")->valuestring,
			     "2026-01-01T00:00:00.000Z");
		CHECK_STR_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(x, "labels"), "run")->valuestring,
			     "r1");
		CHECK_STR_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(x, "annotations"),
						 "summary")->valuestring, "s");
	}
	wait_reqs(&loop, &s, 3);
	gap = (int64_t)(s.reqs[1].at - s.reqs[0].at);
	CHECK(gap >= 450 && gap < 1200);
	gap = (int64_t)(s.reqs[2].at - s.reqs[1].at);
	CHECK(gap >= 950 && gap < 1800);
	st = alertmanager_status_json(m);
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(target_status(st), "ok")));
	CHECK_INT_EQ(cJSON_GetObjectItem(target_status(st), "failures")->valueint, 2);
	CHECK_STR_EQ(cJSON_GetObjectItem(target_status(st), "last_error")->valuestring,
		     "HTTP 500: boom");
	CHECK_STR_EQ(cJSON_GetObjectItem(target_status(st), "url")->valuestring,
		     (snprintf(got, sizeof(got), "http://127.0.0.1:%d/api/v2/alerts", s.port), got));
	CHECK(!cJSON_GetObjectItem(target_status(st), "last_ok"));
	cJSON_Delete(st);
	/* the hang: cut at 400 ms, then the backoff (2 s) capped at resend_ms */
	wait_reqs(&loop, &s, 4);
	gap = (int64_t)(s.reqs[3].at - s.reqs[2].at);
	CHECK(gap >= 400 + 1450 && gap < 400 + 2500);
	st = alertmanager_status_json(m);
	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(target_status(st), "ok")));
	CHECK_INT_EQ(cJSON_GetObjectItem(target_status(st), "failures")->valueint, 0);
	CHECK_INT_EQ(cJSON_GetObjectItem(target_status(st), "failed_total")->valueint, 3);
	CHECK_INT_EQ(cJSON_GetObjectItem(target_status(st), "sent")->valueint, 1);
	CHECK(cJSON_IsString(cJSON_GetObjectItem(target_status(st), "last_ok")));
	cJSON_Delete(st);
	/* after a success: the re-send after resend_ms */
	wait_reqs(&loop, &s, 5);
	gap = (int64_t)(s.reqs[4].at - s.reqs[3].at);
	CHECK(gap >= 1450 && gap < 2500);

	/* a resolution: sent at once, with endsAt, beside the firing set
	 * (now empty), then no more once delivered */
	ev = event("resolved", "grokking", "2026-01-01T00:05:00.000Z");
	CHECK_INT_EQ(alerts_apply(a, ev, &e), 0);
	alertmanager_transition(m, ev);
	cJSON_Delete(ev);
	wait_reqs(&loop, &s, 6);
	gap = (int64_t)(s.reqs[5].at - s.reqs[4].at);
	CHECK(gap < 500);
	names(s.reqs[5].body, got, sizeof(got));
	CHECK_STR_EQ(got, "grokking:resolved");
	CHECK_STR_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(s.reqs[5].body, 0), "endsAt")->valuestring,
		     "2026-01-01T00:05:00.000Z");
	wait_reqs(&loop, &s, 7);
	CHECK_INT_EQ(cJSON_GetArraySize(s.reqs[6].body), 0);
	st = alertmanager_status_json(m);
	CHECK_INT_EQ(cJSON_GetObjectItem(target_status(st), "resolved_pending")->valueint, 0);
	cJSON_Delete(st);

	alertmanager_close(m);
	srv_stop(&s);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT_EQ(uv_loop_close(&loop), 0);
	alerts_free(a);
}

/* While the target fails, a resolution stays queued and goes with every
 * retry; a firing again of the same alert takes it back. */
static void test_resolution_kept_until_delivered(void)
{
	uv_loop_t loop;
	struct srv s;
	struct alertmanager *m = NULL;
	struct alerts *a = alerts_firing("plateau");
	struct gw_err e = { "" };
	char url[64], got[256];
	const char *urls[1] = { url };
	cJSON *ev;

	uv_loop_init(&loop);
	srv_start(&s, &loop);
	for (int i = 0; i < 4; i++)
		s.script[i] = ANSWER_FAIL;
	s.nscript = 4;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", s.port);
	CHECK_INT_EQ(alertmanager_new(&loop, &(struct am_opts){ .urls = urls, .n_urls = 1,
								 .resend_ms = 600,
								 .timeout_ms = 1000 },
				      a, &m, &e), 0);
	ev = event("resolved", "grokking", "2026-01-01T00:05:00.000Z");
	alertmanager_transition(m, ev);
	cJSON_Delete(ev);
	wait_reqs(&loop, &s, 3);
	for (int i = 0; i < 3; i++) {
		names(s.reqs[i].body, got, sizeof(got));
		CHECK_STR_EQ(got, "plateau grokking:resolved");
	}
	/* grokking fires again: its queued resolution is taken back */
	ev = event("firing", "grokking", ALERT_ENDS_FIRING);
	CHECK_INT_EQ(alerts_apply(a, ev, &e), 0);
	alertmanager_transition(m, ev);
	cJSON_Delete(ev);
	wait_reqs(&loop, &s, 5);
	names(s.reqs[4].body, got, sizeof(got));
	CHECK_STR_EQ(got, "plateau grokking");
	alertmanager_close(m);
	srv_stop(&s);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT_EQ(uv_loop_close(&loop), 0);
	alerts_free(a);
}

/* Restored resolutions (the journal's events) and basic auth from a file;
 * a close with the POST hanging leaves nothing behind. */
static void test_restore_auth_and_close_in_flight(void)
{
	uv_loop_t loop;
	struct srv s;
	struct alertmanager *m = NULL;
	struct alerts *a = alerts_firing("plateau");
	struct gw_err e = { "" };
	char url[64], got[256], pw[] = "/tmp/gw_am_pw.XXXXXX";
	const char *urls[1] = { url };
	cJSON *events = cJSON_CreateArray();
	FILE *f;
	int fd;

	uv_loop_init(&loop);
	srv_start(&s, &loop);
	s.script[0] = ANSWER_HANG;
	s.nscript = 1;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", s.port);
	fd = mkstemp(pw);
	CHECK(fd >= 0);
	f = fdopen(fd, "w");
	fputs("open sesame\n", f);
	fclose(f);
	/* grokking fired and resolved; code fired, resolved, fired again */
	cJSON_AddItemToArray(events, event("firing", "grokking", ALERT_ENDS_FIRING));
	cJSON_AddItemToArray(events, event("resolved", "grokking", "2026-01-01T00:05:00.000Z"));
	cJSON_AddItemToArray(events, event("resolved", "code", "2026-01-01T00:06:00.000Z"));
	cJSON_AddItemToArray(events, event("firing", "code", ALERT_ENDS_FIRING));
	CHECK_INT_EQ(alertmanager_new(&loop, &(struct am_opts){ .urls = urls, .n_urls = 1,
								 .resend_ms = 60000,
								 .timeout_ms = 60000,
								 .user = "gw", .password_file = pw },
				      a, &m, &e), 0);
	alertmanager_restore(m, events);
	wait_reqs(&loop, &s, 1);
	names(s.reqs[0].body, got, sizeof(got));
	CHECK_STR_EQ(got, "plateau grokking:resolved");
	/* "gw:open sesame" in base64 */
	CHECK_STR_HAS(s.reqs[0].head, "Authorization: Basic Z3c6b3BlbiBzZXNhbWU=");
	/* the POST hangs (60 s timeout): close now */
	alertmanager_close(m);
	srv_stop(&s);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_INT_EQ(uv_loop_close(&loop), 0);
	alerts_free(a);
	cJSON_Delete(events);
	unlink(pw);
}

static void test_bad_options(void)
{
	uv_loop_t loop;
	struct alertmanager *m = (struct alertmanager *)&loop;
	struct alerts *a = alerts_firing("plateau");
	struct gw_err e = { "" };
	const char *urls[1] = { "http://127.0.0.1:9" };
	char url[512];

	uv_loop_init(&loop);
	CHECK_INT_EQ(alertmanager_new(&loop, &(struct am_opts){ .n_urls = 0, .resend_ms = 1000,
								 .timeout_ms = 1000 },
				      a, &m, &e), -EINVAL);
	CHECK_STR_EQ(e.msg, "alerts.alertmanager.urls: empty");
	CHECK_INT_EQ(alertmanager_new(&loop, &(struct am_opts){ .urls = urls, .n_urls = 1,
								 .resend_ms = 1000, .timeout_ms = 1000,
								 .user = "gw",
								 .password_file = "/nonexistent/pw" },
				      a, &m, &e), -ENOENT);
	CHECK_STR_HAS(e.msg, "alerts.alertmanager.password_file: ");
	CHECK_STR_HAS(e.msg, "/nonexistent/pw");
	CHECK(alertmanager_new(&loop, &(struct am_opts){ .urls = urls, .n_urls = 1,
							  .resend_ms = 1000, .timeout_ms = 1000,
							  .bearer_token_file = "/dev/null" },
			       a, &m, &e) < 0);
	CHECK_STR_HAS(e.msg, "alerts.alertmanager.bearer_token_file: \"/dev/null\": not a regular "
			     "file");
	{
		char tok[] = "/tmp/gw_am_tok.XXXXXX";
		int fd = mkstemp(tok);
		const struct am_opts o = { .urls = urls, .n_urls = 1, .resend_ms = 1000,
					   .timeout_ms = 1000, .bearer_token_file = tok };

		CHECK(fd >= 0);
		CHECK_INT_EQ(write(fd, "\n", 1), 1);
		close(fd);
		CHECK_INT_EQ(alertmanager_new(&loop, &o, a, &m, &e), -EINVAL);
		snprintf(url, sizeof(url), "alerts.alertmanager.bearer_token_file: \"%s\" is empty "
			 "or holds a NUL", tok);
		CHECK_STR_EQ(e.msg, url);
		fd = open(tok, O_WRONLY | O_TRUNC);
		CHECK_INT_EQ(write(fd, "one\ntwo\n", 8), 8);
		close(fd);
		CHECK_INT_EQ(alertmanager_new(&loop, &o, a, &m, &e), -EINVAL);
		CHECK_STR_HAS(e.msg, "holds more than one line");
		unlink(tok);
	}
	CHECK(m == (struct alertmanager *)&loop); /* untouched on error */
	alertmanager_close(NULL);
	CHECK_INT_EQ(uv_loop_close(&loop), 0);
	alerts_free(a);
}

static const struct tap_test tests[] = {
	{ "retries_backoff_and_resend", test_retries_backoff_and_resend },
	{ "resolution_kept_until_delivered", test_resolution_kept_until_delivered },
	{ "restore_auth_and_close_in_flight", test_restore_auth_and_close_in_flight },
	{ "bad_options", test_bad_options },
	{ NULL, NULL },
};

TAP_MAIN_DAEMON(tests)
