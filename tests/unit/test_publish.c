/* test_publish.c — the ZeroMQ publisher on a libuv loop, against real
 * SUB, DEALER and REQ sockets in the same process, answering from a result
 * store it borrows (as the daemon's state.h keeps it): order and seq, the
 * snapshot splice, malformed requests, size bounds, bursts of requests (the
 * ZMQ_FD edge), CURVE.  Every test ends with uv_loop_close() == 0. */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>
#include <zmq.h>

#include "../tap.h"
#include "publish.h"

struct fx {
	uv_loop_t loop;
	void *ctx;
	struct publish *p;
	struct series *store; /* the daemon's result store, as state.h keeps it */
	char ep[512], qep[512];
	void *socks[8];
	int nsocks;
};

static struct publish_opts default_opts(void)
{
	struct publish_opts o = {
		.endpoint = "tcp://127.0.0.1:*",
		.query_endpoint = "tcp://127.0.0.1:*",
		.run = "testrun",
		.sndhwm = 10000,
		.max_message_bytes = 65536,
		.request_bytes = 4096,
		.reply_bytes = 1 << 20,
		.heartbeat_ms = 50,
	};
	return o;
}

static void fx_open(struct fx *f, const struct publish_opts *o)
{
	struct gw_err e = { "" };
	int r;

	memset(f, 0, sizeof(*f));
	CHECK_INT_EQ(uv_loop_init(&f->loop), 0);
	f->ctx = zmq_ctx_new();
	r = publish_new(&f->loop, f->ctx, o, &f->p, &e);
	if (r != 0)
		tap_fail(__FILE__, __LINE__, "publish_new: %d %s", r, e.msg);
	CHECK_INT_EQ(publish_endpoint(f->p, false, f->ep, sizeof(f->ep)), 0);
	CHECK_INT_EQ(publish_endpoint(f->p, true, f->qep, sizeof(f->qep)), 0);
	f->store = series_new();
	publish_set_results(f->p, f->store);
}

static void *fx_socket(struct fx *f, int type, const char *connect)
{
	void *s = zmq_socket(f->ctx, type);
	int zero = 0;

	CHECK(s != NULL);
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
	if (type == ZMQ_SUB)
		zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
	if (connect)
		CHECK_INT_EQ(zmq_connect(s, connect), 0);
	f->socks[f->nsocks++] = s;
	return s;
}

static void fx_close(struct fx *f)
{
	for (int i = 0; i < f->nsocks; i++)
		zmq_close(f->socks[i]);
	publish_close(f->p);
	CHECK_INT_EQ(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	CHECK_INT_EQ(uv_loop_close(&f->loop), 0);
	CHECK_INT_EQ(zmq_ctx_term(f->ctx), 0);
	series_free(f->store);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the loop without blocking and wait on `s` in short slices, until a
 * whole message arrives or timeout_ms passes.  Returns the number of
 * frames (at most 3 kept; frames[i] NUL-terminated, malloc'ed), 0 on
 * timeout. */
static int pump_recv(struct fx *f, void *s, char *frames[3], int timeout_ms)
{
	long long end = now_ms() + timeout_ms;

	do {
		zmq_pollitem_t it = { .socket = s, .events = ZMQ_POLLIN };

		uv_run(&f->loop, UV_RUN_NOWAIT);
		if (zmq_poll(&it, 1, 5) == 1) {
			int n = 0, more = 1;

			while (more) {
				zmq_msg_t m;
				size_t sz = sizeof(more);

				zmq_msg_init(&m);
				CHECK(zmq_msg_recv(&m, s, 0) >= 0);
				if (n < 3) {
					frames[n] = malloc(zmq_msg_size(&m) + 1);
					memcpy(frames[n], zmq_msg_data(&m), zmq_msg_size(&m));
					frames[n][zmq_msg_size(&m)] = 0;
				}
				n++;
				zmq_msg_close(&m);
				zmq_getsockopt(s, ZMQ_RCVMORE, &more, &sz);
			}
			return n;
		}
	} while (now_ms() < end);
	return 0;
}

/* Receive one [topic, body] message; returns its parsed body, NULL on
 * timeout; the topic is copied into topic. */
static cJSON *recv_pub(struct fx *f, void *sub, char *topic, size_t tsize, int timeout_ms)
{
	char *fr[3];
	int n = pump_recv(f, sub, fr, timeout_ms);
	cJSON *b;

	if (n == 0)
		return NULL;
	CHECK_INT_EQ(n, 2);
	snprintf(topic, tsize, "%s", fr[0]);
	b = cJSON_Parse(fr[1]);
	CHECK(b != NULL);
	free(fr[0]);
	free(fr[1]);
	return b;
}

/* Skip heartbeats until a heartbeat arrives (the subscription is live). */
static void wait_subscribed(struct fx *f, void *sub)
{
	char topic[128];
	cJSON *b = recv_pub(f, sub, topic, sizeof(topic), 3000);

	CHECK(b != NULL);
	CHECK_STR_EQ(topic, "heartbeat.testrun");
	cJSON_Delete(b);
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsNumber(v))
		tap_fail(__FILE__, __LINE__, "field %s is not a number", k);
	return v->valuedouble;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsString(v))
		tap_fail(__FILE__, __LINE__, "field %s is not a string", k);
	return v->valuestring;
}

/* Next non-heartbeat message. */
static cJSON *recv_msg(struct fx *f, void *sub, char *topic, size_t tsize)
{
	for (;;) {
		cJSON *b = recv_pub(f, sub, topic, tsize, 3000);

		CHECK(b != NULL);
		if (strcmp(str(b, "type"), "heartbeat"))
			return b;
		cJSON_Delete(b);
	}
}

static cJSON *request(struct fx *f, void *dealer, const char *body)
{
	char *fr[3];
	int n;
	cJSON *r;

	CHECK_INT_EQ(zmq_send(dealer, body, strlen(body), 0), (long long)strlen(body));
	n = pump_recv(f, dealer, fr, 3000);
	CHECK_INT_EQ(n, 1);
	r = cJSON_Parse(fr[0]);
	CHECK(r != NULL);
	free(fr[0]);
	return r;
}

static cJSON *result_json(long long step, double dist)
{
	char buf[256];

	snprintf(buf, sizeof(buf),
		 "{\"kind\":\"result\",\"step\":%lld,\"checkpoint\":\"step%lld\",\"groups\":"
		 "{\"math\":{\"pathway_distance\":%g,\"memorized\":{\"pathway_distance\":%g}},"
		 "\"all\":{\"loss\":2}}}",
		 step, step, dist, dist / 2);
	return cJSON_Parse(buf);
}

/* As the daemon does: the result into the store, then sent from there. */
static void publish_result_step(struct fx *f, long long step, double dist)
{
	series_put(f->store, step, result_json(step, dist));
	CHECK(publish_result(f->p, series_get(f->store, step)) > 0);
}

static void test_messages_in_order_with_seq(void)
{
	struct publish_opts o = default_opts();
	struct fx f;
	void *sub;
	char topic[128];
	cJSON *b;

	fx_open(&f, &o);
	CHECK_INT_EQ(strlen(publish_epoch(f.p)), 32);
	sub = fx_socket(&f, ZMQ_SUB, f.ep);
	wait_subscribed(&f, sub);
	for (int i = 1; i <= 50; i++) {
		cJSON *body = cJSON_CreateObject();

		cJSON_AddNumberToObject(body, "step", 100 * i);
		cJSON_AddStringToObject(body, "type", "ignored");
		CHECK_INT_EQ(publish_send(f.p, "progress", body), i);
	}
	for (int i = 1; i <= 50; i++) {
		b = recv_msg(&f, sub, topic, sizeof(topic));
		CHECK_STR_EQ(topic, "progress.testrun");
		CHECK_STR_EQ(str(b, "type"), "progress");
		CHECK_INT_EQ(num(b, "seq"), i);
		CHECK_INT_EQ(num(b, "step"), 100 * i);
		CHECK_STR_EQ(str(b, "run"), "testrun");
		CHECK_STR_EQ(str(b, "epoch"), publish_epoch(f.p));
		CHECK(num(b, "time") > 1.6e9);
		cJSON_Delete(b);
	}
	/* A heartbeat repeats the last seq instead of taking a new one. */
	b = recv_pub(&f, sub, topic, sizeof(topic), 3000);
	CHECK_STR_EQ(topic, "heartbeat.testrun");
	CHECK_INT_EQ(num(b, "seq"), 50);
	CHECK(cJSON_IsObject(cJSON_GetObjectItem(b, "status")));
	cJSON_Delete(b);
	CHECK_INT_EQ(publish_seq(f.p), 50);
	fx_close(&f);
}

static void test_snapshot_carries_seq(void)
{
	struct publish_opts o = default_opts();
	struct fx f;
	void *dealer;
	cJSON *r, *results, *st = cJSON_CreateObject();

	o.heartbeat_ms = 0;
	fx_open(&f, &o);
	dealer = fx_socket(&f, ZMQ_DEALER, f.qep);
	publish_result_step(&f, 30, 3.0);
	publish_result_step(&f, 10, 1.0);
	publish_result_step(&f, 20, 2.0);
	publish_result_step(&f, 10, 1.5); /* replaces step 10 */
	cJSON_AddStringToObject(st, "state", "watching");
	publish_set_status(f.p, st);

	r = request(&f, dealer, "{\"req\":\"snapshot\",\"id\":7}");
	CHECK_STR_EQ(str(r, "type"), "snapshot");
	CHECK_INT_EQ(num(r, "seq"), 4);
	CHECK_INT_EQ(num(r, "id"), 7);
	CHECK_STR_EQ(str(r, "epoch"), publish_epoch(f.p));
	CHECK_STR_EQ(str(cJSON_GetObjectItem(r, "status"), "state"), "watching");
	results = cJSON_GetObjectItem(r, "results");
	CHECK_INT_EQ(cJSON_GetArraySize(results), 3);
	CHECK_INT_EQ(num(cJSON_GetArrayItem(results, 0), "step"), 10);
	CHECK_INT_EQ(num(cJSON_GetArrayItem(results, 0), "seq"), 4);
	CHECK_INT_EQ(num(cJSON_GetArrayItem(results, 1), "step"), 20);
	CHECK_INT_EQ(num(cJSON_GetArrayItem(results, 2), "step"), 30);
	CHECK_INT_EQ(num(cJSON_GetArrayItem(results, 2), "seq"), 1);
	CHECK_STR_EQ(str(cJSON_GetArrayItem(results, 0), "type"), "metrics");
	CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(results, 0), "kind") == NULL);
	cJSON_Delete(r);

	r = request(&f, dealer, "{\"req\":\"snapshot\",\"from\":15,\"to\":25}");
	CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r, "results")), 1);
	cJSON_Delete(r);
	fx_close(&f);
}

/* A subscriber joining late: subscribe, wait for a first message, ask for
 * a snapshot, drop live messages with seq <= snapshot.seq. */
static void test_late_subscriber_splices(void)
{
	struct publish_opts o = default_opts();
	struct fx f;
	void *sub, *dealer;
	int seen[11] = { 0 }, live_seq[16], nlive = 0;
	char topic[128], *fr[3];
	cJSON *snap, *b;
	const cJSON *it;
	long long snap_seq;
	int n;

	fx_open(&f, &o);
	for (int s = 1; s <= 5; s++)
		publish_result_step(&f, s, s);
	sub = fx_socket(&f, ZMQ_SUB, f.ep);
	dealer = fx_socket(&f, ZMQ_DEALER, f.qep);
	wait_subscribed(&f, sub);
	publish_result_step(&f, 6, 6);
	publish_result_step(&f, 7, 7);
	CHECK(zmq_send(dealer, "{\"req\":\"snapshot\"}", 18, 0) == 18);
	publish_result_step(&f, 8, 8); /* before the loop sees the request */
	n = pump_recv(&f, dealer, fr, 3000);
	CHECK_INT_EQ(n, 1);
	snap = cJSON_Parse(fr[0]);
	free(fr[0]);
	snap_seq = (long long)num(snap, "seq");
	CHECK_INT_EQ(snap_seq, 8);
	publish_result_step(&f, 9, 9);
	publish_result_step(&f, 10, 10);

	cJSON_ArrayForEach(it, cJSON_GetObjectItem(snap, "results"))
		seen[(int)num(it, "step")]++;
	while (nlive < 5) {
		b = recv_msg(&f, sub, topic, sizeof(topic));
		CHECK_STR_EQ(topic, "metrics.testrun");
		live_seq[nlive++] = (int)num(b, "seq");
		if (num(b, "seq") > snap_seq)
			seen[(int)num(b, "step")]++;
		cJSON_Delete(b);
	}
	for (int s = 1; s <= 10; s++)
		CHECK_INT_EQ(seen[s], 1);
	/* the live stream was gap-free from the join */
	for (int i = 0; i < nlive; i++)
		CHECK_INT_EQ(live_seq[i], 6 + i);
	cJSON_Delete(snap);
	fx_close(&f);
}

static void test_history(void)
{
	struct publish_opts o = default_opts();
	struct fx f;
	void *dealer;
	cJSON *r, *pts;

	o.heartbeat_ms = 0;
	fx_open(&f, &o);
	dealer = fx_socket(&f, ZMQ_DEALER, f.qep);
	publish_result_step(&f, 200, 4.0);
	publish_result_step(&f, 100, 5.0);
	publish_result_step(&f, 300, 3.0);
	r = request(&f, dealer, "{\"req\":\"history\",\"metric\":\"pathway_distance\",\"group\":\"math\","
				"\"from\":150}");
	CHECK_STR_EQ(str(r, "type"), "history");
	CHECK_INT_EQ(num(r, "seq"), 3);
	pts = cJSON_GetObjectItem(r, "points");
	CHECK_INT_EQ(cJSON_GetArraySize(pts), 2);
	CHECK_INT_EQ(cJSON_GetArrayItem(cJSON_GetArrayItem(pts, 0), 0)->valuedouble, 200);
	CHECK_NEAR(cJSON_GetArrayItem(cJSON_GetArrayItem(pts, 0), 1)->valuedouble, 4.0, 0);
	CHECK_NEAR(cJSON_GetArrayItem(cJSON_GetArrayItem(pts, 1), 1)->valuedouble, 3.0, 0);
	cJSON_Delete(r);
	r = request(&f, dealer, "{\"req\":\"history\",\"metric\":\"memorized.pathway_distance\","
				"\"group\":\"math\",\"to\":100}");
	pts = cJSON_GetObjectItem(r, "points");
	CHECK_INT_EQ(cJSON_GetArraySize(pts), 1);
	CHECK_NEAR(cJSON_GetArrayItem(cJSON_GetArrayItem(pts, 0), 1)->valuedouble, 2.5, 0);
	cJSON_Delete(r);
	/* absent metric or group: null points, not an error */
	r = request(&f, dealer, "{\"req\":\"history\",\"metric\":\"loss\",\"group\":\"math\"}");
	pts = cJSON_GetObjectItem(r, "points");
	CHECK_INT_EQ(cJSON_GetArraySize(pts), 3);
	CHECK(cJSON_IsNull(cJSON_GetArrayItem(cJSON_GetArrayItem(pts, 0), 1)));
	cJSON_Delete(r);
	fx_close(&f);
}

/* An alert event as the journal holds it (alert.h's shape, trimmed to
 * what the query reads). */
static cJSON *alert_event(const char *status, const char *fp, int step)
{
	char text[512];

	snprintf(text, sizeof(text),
		 "{\"kind\": \"alert\", \"step\": %d, \"status\": \"%s\", \"alerts\": "
		 "[{\"status\": \"%s\", \"labels\": {\"alertname\": \"grokking\"}, "
		 "\"fingerprint\": \"%s\", \"endsAt\": \"e%d\"}]}",
		 step, status, status, fp, step);
	return cJSON_Parse(text);
}

/* The "alerts" query: firing from the status, the last n resolutions of
 * the events, oldest first, without one firing again. */
static void test_alerts_query(void)
{
	struct publish_opts o = default_opts();
	cJSON *events = cJSON_CreateArray(), *r, *st;
	struct fx f;
	void *dealer;
	char *t;

	o.heartbeat_ms = 0;
	fx_open(&f, &o);
	dealer = fx_socket(&f, ZMQ_DEALER, f.qep);
	/* none set yet: two empty arrays */
	r = request(&f, dealer, "{\"req\":\"alerts\"}");
	CHECK_STR_EQ(str(r, "type"), "alerts");
	t = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "firing"));
	CHECK_STR_EQ(t, "[]");
	free(t);
	t = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "resolved"));
	CHECK_STR_EQ(t, "[]");
	free(t);
	cJSON_Delete(r);

	/* a fired, resolved at 200; b fired, resolved at 300, fired again at
	 * 400 (firing now); c resolved at 500, d resolved at 600 */
	cJSON_AddItemToArray(events, alert_event("firing", "a", 100));
	cJSON_AddItemToArray(events, alert_event("resolved", "a", 200));
	cJSON_AddItemToArray(events, alert_event("resolved", "b", 300));
	cJSON_AddItemToArray(events, alert_event("firing", "b", 400));
	cJSON_AddItemToArray(events, alert_event("resolved", "c", 500));
	cJSON_AddItemToArray(events, alert_event("resolved", "d", 600));
	publish_set_alerts(f.p, events);
	st = cJSON_Parse("{\"state\": \"idle\", \"alerts\": [{\"status\": \"firing\", "
			 "\"fingerprint\": \"b\"}]}");
	publish_set_status(f.p, st);
	r = request(&f, dealer, "{\"req\":\"alerts\",\"resolved\":2,\"id\":7}");
	CHECK_STR_EQ(str(r, "type"), "alerts");
	CHECK_INT_EQ(cJSON_GetObjectItem(r, "id")->valueint, 7);
	t = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "firing"));
	CHECK_STR_EQ(t, "[{\"status\":\"firing\",\"fingerprint\":\"b\"}]");
	free(t);
	t = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "resolved"));
	CHECK_STR_EQ(t, "[{\"status\":\"resolved\",\"labels\":{\"alertname\":\"grokking\"},"
			"\"fingerprint\":\"c\",\"endsAt\":\"e500\",\"step\":500},"
			"{\"status\":\"resolved\",\"labels\":{\"alertname\":\"grokking\"},"
			"\"fingerprint\":\"d\",\"endsAt\":\"e600\",\"step\":600}]");
	free(t);
	cJSON_Delete(r);
	/* the default (20) takes all three that are not firing, oldest first;
	 * 0 takes none */
	r = request(&f, dealer, "{\"req\":\"alerts\"}");
	st = cJSON_GetObjectItem(r, "resolved");
	CHECK_INT_EQ(cJSON_GetArraySize(st), 3);
	CHECK_STR_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(st, 0), "fingerprint")->valuestring, "a");
	cJSON_Delete(r);
	r = request(&f, dealer, "{\"req\":\"alerts\",\"resolved\":0}");
	CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r, "resolved")), 0);
	cJSON_Delete(r);
	fx_close(&f);
	cJSON_Delete(events);
}

static void test_malformed_requests_get_errors(void)
{
	static const struct {
		const char *req, *error;
	} cases[] = {
		{ "not json", "request: not valid JSON" },
		{ "[1,2]", "request: expected a JSON object" },
		{ "{}", "request: \"req\" is missing or not a string" },
		{ "{\"req\":\"drop_tables\"}", "request: unknown req \"drop_tables\" (snapshot, history or alerts)" },
		{ "{\"req\":\"alerts\",\"resolved\":-1}", "request: \"resolved\" must be an integer from 0 to 1000" },
		{ "{\"req\":\"alerts\",\"resolved\":1001}", "request: \"resolved\" must be an integer from 0 to 1000" },
		{ "{\"req\":\"alerts\",\"resolved\":2.5}", "request: \"resolved\" must be an integer from 0 to 1000" },
		{ "{\"req\":\"alerts\",\"resolved\":\"5\"}", "request: \"resolved\" must be an integer from 0 to 1000" },
		{ "{\"req\":\"alerts\",\"from\":5}", "request: unknown field \"from\"" },
		{ "{\"req\":\"snapshot\",\"limit\":5}", "request: unknown field \"limit\"" },
		{ "{\"req\":\"snapshot\",\"from\":-1}", "request: \"from\" is not a step (an integer in [0, 999999999999999])" },
		{ "{\"req\":\"snapshot\",\"to\":\"x\"}", "request: \"to\" is not a step (an integer in [0, 999999999999999])" },
		{ "{\"req\":\"history\",\"group\":\"math\"}", "request: history needs \"metric\" and \"group\" strings of 1 to 128 bytes" },
		{ "{\"req\":\"snapshot\"} x", "request: text after the JSON object" },
		{ "{\"req\":\"snapshot\",\"id\":[1]}", "request: \"id\" must be a number or a short string" },
		{ "", "request: not valid JSON" },
	};
	struct publish_opts o = default_opts();
	struct fx f;
	void *dealer, *req;
	char *fr[3];
	cJSON *r;

	o.heartbeat_ms = 0;
	fx_open(&f, &o);
	dealer = fx_socket(&f, ZMQ_DEALER, f.qep);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = request(&f, dealer, cases[i].req);
		CHECK_STR_EQ(str(r, "type"), "error");
		CHECK_STR_EQ(str(r, "error"), cases[i].error);
		cJSON_Delete(r);
	}
	/* "id" is echoed on errors too. */
	r = request(&f, dealer, "{\"req\":\"nope\",\"id\":\"abc\"}");
	CHECK_STR_EQ(str(r, "id"), "abc");
	cJSON_Delete(r);
	/* Two body frames. */
	CHECK(zmq_send(dealer, "{}", 2, ZMQ_SNDMORE) == 2);
	CHECK(zmq_send(dealer, "{}", 2, 0) == 2);
	CHECK_INT_EQ(pump_recv(&f, dealer, fr, 3000), 1);
	CHECK_STR_HAS(fr[0], "expected one body frame");
	free(fr[0]);
	/* A REQ socket's envelope (empty delimiter) is answered in kind. */
	req = fx_socket(&f, ZMQ_REQ, f.qep);
	CHECK(zmq_send(req, "{\"req\":\"snapshot\"}", 18, 0) == 18);
	CHECK_INT_EQ(pump_recv(&f, req, fr, 3000), 1);
	CHECK_STR_HAS(fr[0], "\"type\":\"snapshot\"");
	free(fr[0]);
	/* Still serving after all that. */
	r = request(&f, dealer, "{\"req\":\"snapshot\"}");
	CHECK_STR_EQ(str(r, "type"), "snapshot");
	cJSON_Delete(r);
	fx_close(&f);
}

/* ZMQ_FD is edge-triggered: 300 requests queued before the loop runs
 * arrive with one wake-up at most, and all must be answered. */
static void test_burst_of_requests_all_answered(void)
{
	struct publish_opts o = default_opts();
	struct fx f;
	void *dealer;
	char *fr[3];
	int got = 0;

	o.heartbeat_ms = 0;
	fx_open(&f, &o);
	dealer = fx_socket(&f, ZMQ_DEALER, f.qep);
	publish_result_step(&f, 1, 1);
	for (int i = 0; i < 300; i++) {
		char buf[64];
		int n = snprintf(buf, sizeof(buf), "{\"req\":\"snapshot\",\"id\":%d}", i);

		CHECK(zmq_send(dealer, buf, (size_t)n, 0) == n);
	}
	while (got < 300) {
		cJSON *r;

		if (pump_recv(&f, dealer, fr, 3000) != 1)
			tap_fail(__FILE__, __LINE__, "only %d of 300 replies", got);
		r = cJSON_Parse(fr[0]);
		CHECK_INT_EQ(num(r, "id"), got);
		cJSON_Delete(r);
		free(fr[0]);
		got++;
	}
	fx_close(&f);
}

static void test_size_bounds(void)
{
	struct publish_opts o = default_opts();
	struct fx f;
	void *sub, *dealer, *big_dealer;
	char topic[128], *fr[3], *pad;
	cJSON *b, *body, *r;

	o.max_message_bytes = 4096;
	o.request_bytes = 256;
	o.reply_bytes = 2048;
	fx_open(&f, &o);
	sub = fx_socket(&f, ZMQ_SUB, f.ep);
	dealer = fx_socket(&f, ZMQ_DEALER, f.qep);
	big_dealer = fx_socket(&f, ZMQ_DEALER, f.qep);
	wait_subscribed(&f, sub);

	pad = malloc(5001);
	memset(pad, 'x', 5000);
	pad[5000] = 0;
	body = cJSON_CreateObject();
	cJSON_AddNumberToObject(body, "step", 42);
	cJSON_AddStringToObject(body, "pad", pad);
	CHECK_INT_EQ(publish_send(f.p, "progress", body), 1);
	CHECK_INT_EQ(publish_send(f.p, "progress", NULL), 2);
	b = recv_msg(&f, sub, topic, sizeof(topic));
	CHECK_STR_EQ(topic, "error.testrun");
	CHECK_STR_EQ(str(b, "error"), "message too large");
	CHECK_STR_EQ(str(b, "dropped_type"), "progress");
	CHECK_INT_EQ(num(b, "seq"), 1);
	CHECK_INT_EQ(num(b, "step"), 42);
	CHECK_INT_EQ(num(b, "limit"), 4096);
	CHECK(num(b, "bytes") > 5000);
	cJSON_Delete(b);
	b = recv_msg(&f, sub, topic, sizeof(topic));
	CHECK_STR_EQ(topic, "progress.testrun");
	CHECK_INT_EQ(num(b, "seq"), 2);
	cJSON_Delete(b);

	/* A request over request_bytes: ZeroMQ drops that peer, no reply... */
	CHECK(zmq_send(big_dealer, pad, 1000, 0) == 1000);
	CHECK_INT_EQ(pump_recv(&f, big_dealer, fr, 300), 0);
	/* ...and everyone else is still served. */
	r = request(&f, dealer, "{\"req\":\"snapshot\"}");
	CHECK_STR_EQ(str(r, "type"), "snapshot");
	cJSON_Delete(r);

	/* A reply over reply_bytes is refused with an error reply. */
	for (int s = 1; s <= 20; s++)
		publish_result_step(&f, s, s);
	r = request(&f, dealer, "{\"req\":\"snapshot\"}");
	CHECK_STR_EQ(str(r, "type"), "error");
	CHECK_STR_HAS(str(r, "error"), "over the limit of 2048; narrow from/to");
	cJSON_Delete(r);
	/* ...and keeps the request's id, so the client can match it. */
	r = request(&f, dealer, "{\"req\":\"snapshot\",\"id\":\"q7\"}");
	CHECK_STR_EQ(str(r, "type"), "error");
	CHECK_STR_EQ(str(r, "id"), "q7");
	cJSON_Delete(r);
	r = request(&f, dealer, "{\"req\":\"history\",\"metric\":\"m\",\"group\":\"all\",\"id\":9}");
	CHECK_INT_EQ(num(r, "id"), 9);
	cJSON_Delete(r);
	r = request(&f, dealer, "{\"req\":\"snapshot\",\"from\":20}");
	CHECK_STR_EQ(str(r, "type"), "snapshot");
	cJSON_Delete(r);
	free(pad);
	fx_close(&f);
}

static void test_restore_is_not_sent(void)
{
	struct publish_opts o = default_opts();
	struct fx f;
	void *dealer;
	cJSON *r, *res = result_json(5, 1.0);

	o.heartbeat_ms = 0;
	fx_open(&f, &o);
	dealer = fx_socket(&f, ZMQ_DEALER, f.qep);
	/* Replayed from the journal: in the store, never sent. */
	series_put(f.store, 5, res);
	res = cJSON_Parse("{\"kind\":\"result\"}");
	CHECK_INT_EQ(publish_result(f.p, res), -EINVAL);
	cJSON_Delete(res);
	CHECK_INT_EQ(publish_seq(f.p), 0);
	r = request(&f, dealer, "{\"req\":\"snapshot\"}");
	CHECK_INT_EQ(num(r, "seq"), 0);
	CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r, "results")), 1);
	CHECK_INT_EQ(num(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "results"), 0), "seq"), 0);
	cJSON_Delete(r);
	fx_close(&f);
}

/* The store changes under the publisher (the memorized subset
 * recomputed): history and snapshots serve what it holds now, the
 * snapshot's entry still under the seq of the message that carried it. */
static void test_answers_from_the_store(void)
{
	struct publish_opts o = default_opts();
	struct fx f;
	void *dealer;
	cJSON *r, *res;

	o.heartbeat_ms = 0;
	fx_open(&f, &o);
	dealer = fx_socket(&f, ZMQ_DEALER, f.qep);
	publish_result_step(&f, 10, 4.0);
	publish_result_step(&f, 20, 3.0);
	series_put(f.store, 10, result_json(10, 1.0)); /* memorized 0.5 now, was 2 */
	r = request(&f, dealer, "{\"req\":\"history\",\"metric\":\"memorized.pathway_distance\","
				"\"group\":\"math\"}");
	CHECK_NEAR(cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "points"), 0), 1)
			   ->valuedouble, 0.5, 0);
	cJSON_Delete(r);
	r = request(&f, dealer, "{\"req\":\"snapshot\"}");
	res = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "results"), 0);
	CHECK_INT_EQ(num(res, "seq"), 1);
	CHECK_STR_EQ(str(res, "type"), "metrics");
	CHECK_STR_EQ(str(res, "epoch"), publish_epoch(f.p));
	CHECK(num(res, "time") > 1.6e9);
	CHECK_NEAR(num(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(res, "groups"),
								 "math"), "memorized"),
		       "pathway_distance"), 0.5, 0);
	cJSON_Delete(r);
	/* Without a store: no results, not a crash. */
	publish_set_results(f.p, NULL);
	r = request(&f, dealer, "{\"req\":\"snapshot\"}");
	CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r, "results")), 0);
	cJSON_Delete(r);
	fx_close(&f);
}

static void test_insecure_remote_refused(void)
{
	struct publish_opts o = default_opts();
	struct publish *p = NULL;
	struct gw_err e;
	uv_loop_t loop;
	void *ctx = zmq_ctx_new();

	uv_loop_init(&loop);
	o.endpoint = "tcp://*:0";
	CHECK_INT_EQ(publish_new(&loop, ctx, &o, &p, &e), -EINVAL);
	CHECK_STR_EQ(e.msg, "\"tcp://*:0\": reachable from other hosts and CURVE is off");
	CHECK(p == NULL);
	/* A port in use is reported with ZeroMQ's errno. */
	{
		struct fx f;
		struct publish_opts o2 = default_opts();

		fx_open(&f, &o2);
		o2.endpoint = f.ep;
		CHECK_INT_EQ(publish_new(&loop, ctx, &o2, &p, &e), -EADDRINUSE);
		CHECK_STR_HAS(e.msg, "bind: Address already in use");
		fx_close(&f);
	}
	CHECK_INT_EQ(uv_loop_close(&loop), 0);
	CHECK_INT_EQ(zmq_ctx_term(ctx), 0);
}

static void test_curve(void)
{
	char pub_z85[41], sec_z85[41], cpub[41], csec[41], spath[600], ppath[600], other[41],
		osec[41], topic[128];
	struct publish_opts o = default_opts();
	struct fx f;
	void *plain, *sec;
	struct gw_err e;
	struct publish *p = NULL;
	cJSON *b;

	if (!zmq_has("curve")) {
		tap_note("libzmq without CURVE: skipped");
		return;
	}
	CHECK_INT_EQ(zmq_curve_keypair(pub_z85, sec_z85), 0);
	CHECK_INT_EQ(zmq_curve_keypair(cpub, csec), 0);
	CHECK_INT_EQ(zmq_curve_keypair(other, osec), 0);
	snprintf(spath, sizeof(spath), "%s", tap_write_file("server.key", sec_z85, 40));
	snprintf(ppath, sizeof(ppath), "%s", tap_write_file("server.pub", other, 40));

	/* Wrong public key, and a malformed key file, are refused. */
	{
		uv_loop_t loop;
		void *ctx = zmq_ctx_new();

		uv_loop_init(&loop);
		o.curve_secret_file = spath;
		o.curve_public_file = ppath;
		CHECK_INT_EQ(publish_new(&loop, ctx, &o, &p, &e), -EINVAL);
		CHECK_STR_HAS(e.msg, "server.pub\": not the public key of");
		o.curve_secret_file = tap_write_file("short.key", "abc\n", 4);
		o.curve_public_file = NULL;
		CHECK_INT_EQ(publish_new(&loop, ctx, &o, &p, &e), -EINVAL);
		CHECK_STR_HAS(e.msg, "short.key\": not a Z85 CURVE key (40 characters)");
		CHECK_INT_EQ(uv_loop_close(&loop), 0);
		zmq_ctx_term(ctx);
	}

	{
		char line[42];

		memcpy(line, pub_z85, 40);
		line[40] = '\n';
		snprintf(ppath, sizeof(ppath), "%s", tap_write_file("server.pub", line, 41));
	}
	o.curve_secret_file = spath;
	o.curve_public_file = ppath;
	o.endpoint = "tcp://*:0"; /* remote is fine with CURVE */
	fx_open(&f, &o);
	plain = fx_socket(&f, ZMQ_SUB, NULL);
	sec = fx_socket(&f, ZMQ_SUB, NULL);
	CHECK_INT_EQ(zmq_setsockopt(sec, ZMQ_CURVE_SERVERKEY, pub_z85, 40), 0);
	CHECK_INT_EQ(zmq_setsockopt(sec, ZMQ_CURVE_PUBLICKEY, cpub, 40), 0);
	CHECK_INT_EQ(zmq_setsockopt(sec, ZMQ_CURVE_SECRETKEY, csec, 40), 0);
	{
		/* f.ep is "tcp://0.0.0.0:PORT"; connect over loopback. */
		char ep[128];
		const char *port = strrchr(f.ep, ':');

		snprintf(ep, sizeof(ep), "tcp://127.0.0.1%s", port);
		CHECK_INT_EQ(zmq_connect(sec, ep), 0);
		CHECK_INT_EQ(zmq_connect(plain, ep), 0);
	}
	b = recv_pub(&f, sec, topic, sizeof(topic), 3000);
	CHECK(b != NULL);
	CHECK_STR_EQ(topic, "heartbeat.testrun");
	cJSON_Delete(b);
	/* The plain subscriber fails the handshake and hears nothing. */
	CHECK(recv_pub(&f, plain, topic, sizeof(topic), 300) == NULL);
	fx_close(&f);
}

static const struct tap_test tests[] = {
	{ "messages_in_order_with_seq", test_messages_in_order_with_seq },
	{ "snapshot_carries_seq", test_snapshot_carries_seq },
	{ "late_subscriber_splices", test_late_subscriber_splices },
	{ "history", test_history },
	{ "alerts_query", test_alerts_query },
	{ "malformed_requests_get_errors", test_malformed_requests_get_errors },
	{ "burst_of_requests_all_answered", test_burst_of_requests_all_answered },
	{ "size_bounds", test_size_bounds },
	{ "restore_is_not_sent", test_restore_is_not_sent },
	{ "answers_from_the_store", test_answers_from_the_store },
	{ "insecure_remote_refused", test_insecure_remote_refused },
	{ "curve", test_curve },
	{ NULL, NULL },
};
TAP_MAIN_DAEMON(tests)
