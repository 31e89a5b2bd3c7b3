/* test_client.c — the C API of libgrokwatch (grokwatch.h): endpoint specs,
 * message parsing and accessors on good and bad bodies, and the splice
 * against two kinds of server: gw_testd (the real publisher, scripted, as
 * a child process: late join, restart, history, filters) and a raw
 * PUB/ROUTER pair in this process that says exactly what the protocol
 * allows (gaps, duplicates, malformed messages, refused requests, a
 * snapshot with "alerts").  Expected values come from the scripts and the
 * protocol in daemon/publish.h, not from the library. */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "../tap.h"
#include "grokwatch.h"

extern char **environ;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- endpoints ------------------------------------------------------------------ */

static void test_endpoint_parse(void)
{
	char pub[GW_ENDPOINT_MAX], q[GW_ENDPOINT_MAX], big[600];
	static const char *const bad[] = {
		"", "tcp://", "tcp://host", "tcp://host:", "tcp://:5557", "tcp://h:0",
		"tcp://h:65535", "tcp://h:99999999999", "tcp://h:-1", "tcp://h:12x", "tcp://h:05557",
		"ipc:///tmp/x", "host:5557", "tcp://h :5557", "tcp://h:5557,", ",tcp://h:5558",
		"tcp://a:1,tcp://a:1", "tcp://[::1:5557", "tcp://a]:5557", "://x,tcp://a:1",
		"tcp://a:1,b", NULL,
	};

	CHECK_INT_EQ(gw_endpoint_parse("tcp://127.0.0.1:5557", pub, q), 0);
	CHECK_STR_EQ(pub, "tcp://127.0.0.1:5557");
	CHECK_STR_EQ(q, "tcp://127.0.0.1:5558");
	CHECK_INT_EQ(gw_endpoint_parse("tcp://[::1]:65534", pub, q), 0);
	CHECK_STR_EQ(q, "tcp://[::1]:65535");
	CHECK_INT_EQ(gw_endpoint_parse("tcp://gpu-node-3:9", pub, q), 0);
	CHECK_STR_EQ(q, "tcp://gpu-node-3:10");
	CHECK_INT_EQ(gw_endpoint_parse("ipc:///run/gw/pub,ipc:///run/gw/q", pub, q), 0);
	CHECK_STR_EQ(pub, "ipc:///run/gw/pub");
	CHECK_STR_EQ(q, "ipc:///run/gw/q");
	for (int i = 0; bad[i]; i++) {
		snprintf(pub, sizeof(pub), "untouched");
		if (gw_endpoint_parse(bad[i], pub, q) != -EINVAL)
			tap_fail(__FILE__, __LINE__, "\"%s\" accepted", bad[i]);
		CHECK_STR_EQ(pub, "untouched");
	}
	CHECK_INT_EQ(gw_endpoint_parse(NULL, pub, q), -EINVAL);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	memcpy(big, "tcp://", 6);
	CHECK_INT_EQ(gw_endpoint_parse(big, pub, q), -ENAMETOOLONG);
	big[300] = 0;
	CHECK_INT_EQ(gw_endpoint_parse(big, pub, q), -ENAMETOOLONG);
}

/* ---- messages -------------------------------------------------------------------- */

static const char metrics_body[] =
	"{\"type\":\"metrics\",\"seq\":7,\"epoch\":\"e1\",\"run\":\"r\",\"time\":1764489600.25,"
	"\"step\":1200,\"checkpoint\":\"step1200\",\"groups\":{\"math\":{\"pathway_distance\":4.5,"
	"\"loss\":null,\"note\":\"x\",\"memorized\":{\"pathway_distance\":2.25}},\"all\":"
	"{\"pathway_distance\":5}},\"list\":[10,{\"k\":\"v\"}],\"flag\":true}";

static void test_msg_accessors(void)
{
	struct gw_msg *m;
	int64_t step = -1;
	double v = -1;
	char *j;

	CHECK_INT_EQ(gw_msg_parse("metrics.r", metrics_body, strlen(metrics_body), &m), 0);
	CHECK_STR_EQ(gw_msg_topic(m), "metrics.r");
	CHECK_STR_EQ(gw_msg_type(m), "metrics");
	CHECK_STR_EQ(gw_msg_run(m), "r");
	CHECK_STR_EQ(gw_msg_epoch(m), "e1");
	CHECK_INT_EQ(gw_msg_seq(m), 7);
	CHECK_NEAR(gw_msg_time(m), 1764489600.25, 1e-6);
	CHECK_STR_EQ(gw_msg_json(m), metrics_body);
	CHECK_INT_EQ(gw_msg_replayed(m), 0);
	CHECK_INT_EQ(gw_msg_step(m, &step), 0);
	CHECK_INT_EQ(step, 1200);
	CHECK_INT_EQ(gw_msg_group_count(m), 2);
	CHECK_STR_EQ(gw_msg_group_name(m, 0), "math");
	CHECK_STR_EQ(gw_msg_group_name(m, 1), "all");
	CHECK(gw_msg_group_name(m, 2) == NULL);
	CHECK_INT_EQ(gw_msg_value(m, "math", "pathway_distance", &v), 0);
	CHECK_NEAR(v, 4.5, 0);
	CHECK_INT_EQ(gw_msg_value(m, "math", "memorized.pathway_distance", &v), 0);
	CHECK_NEAR(v, 2.25, 0);
	CHECK_INT_EQ(gw_msg_value(m, "all", "pathway_distance", &v), 0);
	CHECK_NEAR(v, 5, 0);
	v = -1;
	CHECK_INT_EQ(gw_msg_value(m, "math", "loss", &v), -ENODATA);
	CHECK_INT_EQ(gw_msg_value(m, "math", "note", &v), -EINVAL);
	CHECK_INT_EQ(gw_msg_value(m, "code", "loss", &v), -ENOENT);
	CHECK_INT_EQ(gw_msg_value(m, "math", "memorized.loss", &v), -ENOENT);
	CHECK_INT_EQ(gw_msg_value(m, "math", "", &v), -ENOENT);
	CHECK_INT_EQ(gw_msg_value(m, "math", "memorized.", &v), -ENOENT);
	CHECK_NEAR(v, -1, 0); /* untouched on failure */

	CHECK_INT_EQ(gw_msg_get_kind(m, ""), GW_JSON_OBJECT);
	CHECK_INT_EQ(gw_msg_get_kind(m, "list"), GW_JSON_ARRAY);
	CHECK_INT_EQ(gw_msg_get_kind(m, "list.0"), GW_JSON_NUMBER);
	CHECK_INT_EQ(gw_msg_get_kind(m, "flag"), GW_JSON_BOOL);
	CHECK_INT_EQ(gw_msg_get_kind(m, "groups.math.loss"), GW_JSON_NULL);
	CHECK_INT_EQ(gw_msg_get_kind(m, "checkpoint"), GW_JSON_STRING);
	CHECK_INT_EQ(gw_msg_get_kind(m, "list.2"), -ENOENT);
	CHECK_INT_EQ(gw_msg_get_kind(m, "list.x"), -ENOENT);
	CHECK_INT_EQ(gw_msg_get_kind(m, "list.-1"), -ENOENT);
	CHECK_INT_EQ(gw_msg_get_kind(m, "list..0"), -ENOENT);
	CHECK_INT_EQ(gw_msg_get_kind(m, "list.0."), -ENOENT);
	CHECK_INT_EQ(gw_msg_get_kind(m, "checkpoint.x"), -ENOENT);
	CHECK_STR_EQ(gw_msg_get_string(m, "list.1.k"), "v");
	CHECK(gw_msg_get_string(m, "list.0") == NULL);
	CHECK_INT_EQ(gw_msg_get_count(m, "list"), 2);
	CHECK_INT_EQ(gw_msg_get_count(m, "groups"), 2);
	CHECK_INT_EQ(gw_msg_get_count(m, "step"), -EINVAL);
	CHECK_INT_EQ(gw_msg_get_count(m, "nothing"), -ENOENT);
	CHECK_STR_EQ(gw_msg_get_key(m, "groups", 1), "all");
	CHECK(gw_msg_get_key(m, "groups", 2) == NULL);
	CHECK(gw_msg_get_key(m, "list", 0) == NULL);
	CHECK_INT_EQ(gw_msg_get_number(m, "flag", &v), 0);
	CHECK_NEAR(v, 1, 0);
	CHECK_INT_EQ(gw_msg_get_number(m, "list.0", &v), 0);
	CHECK_NEAR(v, 10, 0);
	CHECK_INT_EQ(gw_msg_get_number(m, "groups.math.loss", &v), -ENODATA);
	CHECK_INT_EQ(gw_msg_get_number(m, "run", &v), -EINVAL);
	CHECK_INT_EQ(gw_msg_get_json(m, "list.1", &j), 0);
	CHECK_STR_EQ(j, "{\"k\":\"v\"}");
	free(j);
	CHECK_INT_EQ(gw_msg_get_json(m, "nope", &j), -ENOENT);
	gw_msg_free(m);
	gw_msg_free(NULL);

	/* A minimal body: everything optional reads as absent. */
	CHECK_INT_EQ(gw_msg_parse("x", "{\"type\":\"progress\",\"step\":1.5}", 30, &m), 0);
	CHECK_STR_EQ(gw_msg_run(m), "");
	CHECK_INT_EQ(gw_msg_seq(m), 0);
	CHECK_INT_EQ(gw_msg_step(m, &step), -ENOENT); /* not an integer */
	CHECK_INT_EQ(gw_msg_group_count(m), 0);
	CHECK_INT_EQ(gw_msg_value(m, "all", "loss", &v), -ENOENT);
	gw_msg_free(m);
}

static void test_msg_parse_refuses_bad_bodies(void)
{
	static const char *const bad[] = {
		"", "{", "{\"type\":\"metrics\"", "[1,2]", "\"metrics\"", "42", "null",
		"{\"seq\":1}", "{\"type\":1}", "{\"type\":\"\"}", "{\"type\":\"a\"} x",
		"{\"type\":\"a\"}{}", "{\"type\":\"a\",}", "{'type':'a'}", NULL,
	};
	struct gw_msg *m = (struct gw_msg *)0x1;
	char nul[] = "{\"type\":\"a\"}\0  ";

	for (int i = 0; bad[i]; i++)
		if (gw_msg_parse("t", bad[i], strlen(bad[i]), &m) != -EINVAL)
			tap_fail(__FILE__, __LINE__, "body '%s' accepted", bad[i]);
	CHECK(m == (struct gw_msg *)0x1);
	CHECK_INT_EQ(gw_msg_parse("t", nul, sizeof(nul) - 1, &m), -EINVAL);
	/* Truncated at every length: refused, never read past len. */
	for (size_t n = 0; n < strlen(metrics_body); n++) {
		char *copy = malloc(n ? n : 1);

		memcpy(copy, metrics_body, n);
		CHECK_INT_EQ(gw_msg_parse("t", copy, n, &m), -EINVAL);
		free(copy);
	}
	/* Oversized: refused on the length, before reading. */
	CHECK_INT_EQ(gw_msg_parse("t", "{}", ((size_t)256 << 20) + 1, &m), -EMSGSIZE);
	CHECK_INT_EQ(gw_msg_parse(NULL, "{}", 2, &m), -EINVAL);
	/* Trailing white space is fine. */
	CHECK_INT_EQ(gw_msg_parse("t", "{\"type\":\"a\"} \n", 14, &m), 0);
	gw_msg_free(m);
}

/* ---- gw_testd, the scripted publisher ---------------------------------------------------- */

struct testd {
	pid_t pid;
	char spec[600]; /* "PUB,QUERY" */
	char pub[300], query[300];
};

static const char *testd_curve_secret; /* --curve-secret for the next testd_start */

static void testd_start(struct testd *t, const char *name, const char *script, const char *pub,
			const char *query)
{
	const char *bin = getenv("GW_TESTD");
	char ready[600], spath[512], buf[700];
	char *argv[16];
	int n = 0;
	FILE *f;
	long long end;

	if (!bin)
		tap_fail(__FILE__, __LINE__, "GW_TESTD is not set (run through make check)");
	snprintf(spath, sizeof(spath), "%s", tap_write_file(name, script, strlen(script)));
	snprintf(ready, sizeof(ready), "%s.ready", spath);
	unlink(ready);
	argv[n++] = (char *)bin;
	argv[n++] = (char *)"--ready";
	argv[n++] = ready;
	argv[n++] = (char *)"--lifetime";
	argv[n++] = (char *)"30000";
	argv[n++] = (char *)"--run";
	argv[n++] = (char *)"olmoe-test";
	if (testd_curve_secret) {
		argv[n++] = (char *)"--curve-secret";
		argv[n++] = (char *)testd_curve_secret;
	}
	if (pub) {
		argv[n++] = (char *)"--pub";
		argv[n++] = (char *)pub;
		argv[n++] = (char *)"--query";
		argv[n++] = (char *)query;
	}
	argv[n++] = spath;
	argv[n] = NULL;
	CHECK_INT_EQ(posix_spawn(&t->pid, bin, NULL, NULL, argv, environ), 0);
	end = now_ms() + 10000;
	while (!(f = fopen(ready, "r"))) {
		if (now_ms() > end)
			tap_fail(__FILE__, __LINE__, "gw_testd did not start");
		usleep(5000);
	}
	CHECK(fgets(buf, sizeof(buf), f) != NULL);
	fclose(f);
	CHECK_INT_EQ(sscanf(buf, "%299s %299s", t->pub, t->query), 2);
	snprintf(t->spec, sizeof(t->spec), "%s,%s", t->pub, t->query);
}

/* Wait for it to exit (its script ends in "exit"), or stop it. */
static void testd_stop(struct testd *t, bool kill_it)
{
	int st;

	if (kill_it)
		kill(t->pid, SIGTERM);
	CHECK_INT_EQ(waitpid(t->pid, &st, 0), t->pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Append s to the string in dst (size bytes); the test fails if it does not fit. */
static void append(char *dst, size_t size, const char *s)
{
	size_t len = strlen(dst);

	if (len + strlen(s) >= size)
		tap_fail(__FILE__, __LINE__, "script buffer too small");
	memcpy(dst + len, s, strlen(s) + 1);
}

static const char *result_line(long long step, double dist)
{
	static char buf[512];

	snprintf(buf, sizeof(buf),
		 "result {\"step\":%lld,\"checkpoint\":\"step%lld\",\"groups\":{\"math\":"
		 "{\"pathway_distance\":%g,\"loss\":%g},\"all\":{\"pathway_distance\":%g,"
		 "\"loss\":null}}}\n",
		 step, step, dist, dist / 10, dist + 1);
	return buf;
}

/* The next message, failing the test after timeout_ms. */
static struct gw_msg *next_msg(struct gw_client *c, int timeout_ms)
{
	struct gw_msg *m = NULL;
	int r = gw_client_next(c, timeout_ms, &m);

	if (r != 0)
		tap_fail(__FILE__, __LINE__, "gw_client_next: %d %s", r, gw_client_error(c));
	return m;
}

static int64_t step_of(const struct gw_msg *m)
{
	int64_t s = -1;

	CHECK_INT_EQ(gw_msg_step(m, &s), 0);
	return s;
}

static void expect_metrics(struct gw_client *c, int64_t step, double dist, int replayed)
{
	struct gw_msg *m = next_msg(c, 5000);
	double v;

	CHECK_STR_EQ(gw_msg_type(m), "metrics");
	CHECK_STR_EQ(gw_msg_topic(m), "metrics.olmoe-test");
	CHECK_INT_EQ(step_of(m), step);
	CHECK_INT_EQ(gw_msg_value(m, "math", "pathway_distance", &v), 0);
	CHECK_NEAR(v, dist, 1e-12);
	CHECK_INT_EQ(gw_msg_replayed(m), replayed);
	gw_msg_free(m);
}

static void expect_quiet(struct gw_client *c, int ms)
{
	struct gw_msg *m = NULL;
	int r = gw_client_next(c, ms, &m);

	if (r == 0)
		tap_fail(__FILE__, __LINE__, "unexpected message %s", gw_msg_json(m));
	CHECK_INT_EQ(r, -ETIMEDOUT);
}

static void test_late_client_sees_all_once(void)
{
	char script[4096] = "", marker[600];
	struct testd t;
	struct gw_client *c;
	struct gw_daemon_info in;

	snprintf(marker, sizeof(marker), "%s/go", tap_tmpdir());
	for (int i = 1; i <= 5; i++)
		append(script, sizeof(script), result_line(100 * i, i));
	snprintf(script + strlen(script), sizeof(script) - strlen(script), "waitfile %s\n%s",
		 marker, result_line(600, 6));
	snprintf(script + strlen(script), sizeof(script) - strlen(script), "sleep 200\n%s",
		 result_line(700, 7));
	testd_start(&t, "late.script", script, NULL, NULL);

	CHECK_INT_EQ(gw_client_new(&c), 0);
	CHECK_INT_EQ(gw_client_connect(c, t.spec), 0);
	CHECK_INT_EQ(gw_client_daemon_count(c), 1);
	for (int i = 1; i <= 5; i++)
		expect_metrics(c, 100 * i, i, 1);
	CHECK_INT_EQ(gw_client_daemon_info(c, 0, &in), 0);
	CHECK_INT_EQ(in.state, GW_DAEMON_LIVE);
	CHECK_STR_EQ(in.run, "olmoe-test");
	CHECK_INT_EQ(strlen(in.epoch), 32);
	CHECK_STR_EQ(in.pub_endpoint, t.pub);
	CHECK_INT_EQ(gw_client_daemon_info(c, 1, &in), -ERANGE);
	/* Then live, each once; heartbeats (every 100 ms) are not handed over. */
	fclose(fopen(marker, "w"));
	expect_metrics(c, 600, 6, 0);
	/* A zero wait still reads what has arrived. */
	for (long long end = now_ms() + 5000;; usleep(10000)) {
		struct gw_msg *m;
		int r = gw_client_next(c, 0, &m);

		CHECK(now_ms() < end);
		if (r == 0) {
			CHECK_INT_EQ(step_of(m), 700);
			gw_msg_free(m);
			break;
		}
		CHECK_INT_EQ(r, -ETIMEDOUT);
	}
	expect_quiet(c, 400);
	CHECK_INT_EQ(gw_client_daemon_info(c, 0, &in), 0);
	CHECK_INT_EQ(in.seq, 7);
	CHECK_INT_EQ(in.gaps + in.restarts + in.malformed, 0);
	CHECK(in.silent_ms >= 0 && in.silent_ms < 1000);
	gw_client_free(c);
	testd_stop(&t, true);
}

static void test_restart_resumes_without_duplicates(void)
{
	char s1[4096] = "", s2[4096] = "", marker[600], pub[300], query[300];
	struct testd a, b;
	struct gw_client *c;
	struct gw_msg *m;
	struct gw_daemon_info in;
	char epoch1[64];

	snprintf(marker, sizeof(marker), "%s/stop", tap_tmpdir());
	append(s1, sizeof(s1), result_line(100, 1));
	append(s1, sizeof(s1), result_line(200, 2));
	snprintf(s1 + strlen(s1), sizeof(s1) - strlen(s1), "waitfile %s\nexit\n", marker);
	testd_start(&a, "a.script", s1, NULL, NULL);
	snprintf(pub, sizeof(pub), "%s", a.pub);
	snprintf(query, sizeof(query), "%s", a.query);

	CHECK_INT_EQ(gw_client_new(&c), 0);
	CHECK_INT_EQ(gw_client_connect(c, a.spec), 0);
	expect_metrics(c, 100, 1, 1);
	expect_metrics(c, 200, 2, 1);
	CHECK_INT_EQ(gw_client_daemon_info(c, 0, &in), 0);
	snprintf(epoch1, sizeof(epoch1), "%s", in.epoch);
	fclose(fopen(marker, "w"));
	testd_stop(&a, false);

	/* The restarted daemon restores 100 and 200 from its journal, and
	 * computes 300 and a late 150. */
	snprintf(s2, sizeof(s2), "restore%s", result_line(100, 1) + 6);
	snprintf(s2 + strlen(s2), sizeof(s2) - strlen(s2), "restore%s", result_line(200, 2) + 6);
	append(s2, sizeof(s2), "sleep 300\n");
	append(s2, sizeof(s2), result_line(300, 3));
	append(s2, sizeof(s2), result_line(150, 1.5));
	testd_start(&b, "b.script", s2, pub, query);
	m = next_msg(c, 5000);
	CHECK_STR_EQ(gw_msg_type(m), "resync");
	CHECK_STR_EQ(gw_msg_get_string(m, "reason"), "restart");
	CHECK_STR_EQ(gw_msg_get_string(m, "previous_epoch"), epoch1);
	CHECK(strcmp(gw_msg_epoch(m), epoch1) != 0);
	CHECK_STR_EQ(gw_msg_topic(m), "resync.olmoe-test");
	gw_msg_free(m);
	/* 300 may come in the snapshot or live, depending on timing; either
	 * way once, and 100 and 200 not again. */
	m = next_msg(c, 5000);
	CHECK_INT_EQ(step_of(m), 300);
	gw_msg_free(m);
	m = next_msg(c, 5000);
	CHECK_INT_EQ(step_of(m), 150);
	gw_msg_free(m);
	expect_quiet(c, 400);
	CHECK_INT_EQ(gw_client_daemon_info(c, 0, &in), 0);
	CHECK_INT_EQ(in.restarts, 1);
	gw_client_free(c);
	testd_stop(&b, true);
}

static void test_history_and_snapshot_queries(void)
{
	char script[4096] = "";
	struct testd t;
	struct gw_client *c;
	struct gw_history *h;
	struct gw_msg *s;
	int64_t step;
	double v;

	append(script, sizeof(script), "status {\"watching\":\"/ckpt\",\"queue\":2}\n");
	for (int i = 1; i <= 6; i++)
		append(script, sizeof(script), result_line(10 * i, i));
	testd_start(&t, "hist.script", script, NULL, NULL);
	CHECK_INT_EQ(gw_client_new(&c), 0);
	CHECK_INT_EQ(gw_client_connect(c, t.spec), 0);

	CHECK_INT_EQ(gw_client_history(c, 0, "pathway_distance", "math", 20, 40, &h), 0);
	CHECK_STR_EQ(gw_history_run(h), "olmoe-test");
	CHECK_STR_EQ(gw_history_metric(h), "pathway_distance");
	CHECK_STR_EQ(gw_history_group(h), "math");
	CHECK_INT_EQ(gw_history_count(h), 3);
	for (size_t i = 0; i < 3; i++) {
		CHECK_INT_EQ(gw_history_point(h, i, &step, &v), 0);
		CHECK_INT_EQ(step, 20 + 10 * (int64_t)i);
		CHECK_NEAR(v, 2 + (double)i, 1e-12);
	}
	CHECK_INT_EQ(gw_history_point(h, 3, &step, &v), -ERANGE);
	CHECK_STR_HAS(gw_history_json(h), "\"type\":\"history\"");
	gw_history_free(h);
	/* Open ends; a null value; no such group: points without values. */
	CHECK_INT_EQ(gw_client_history(c, 0, "loss", "all", GW_STEP_NONE, 30, &h), 0);
	CHECK_INT_EQ(gw_history_count(h), 3);
	CHECK_INT_EQ(gw_history_point(h, 0, &step, &v), -ENODATA);
	CHECK_INT_EQ(step, 10);
	gw_history_free(h);
	CHECK_INT_EQ(gw_client_history(c, 0, "loss", "math", 50, GW_STEP_NONE, &h), 0);
	CHECK_INT_EQ(gw_history_count(h), 2);
	CHECK_INT_EQ(gw_history_point(h, 1, &step, &v), 0);
	CHECK_INT_EQ(step, 60);
	CHECK_NEAR(v, 0.6, 1e-12);
	gw_history_free(h);
	/* Refused here, before any request. */
	CHECK_INT_EQ(gw_client_history(c, 0, "", "math", -1, -1, &h), -EINVAL);
	CHECK_INT_EQ(gw_client_history(c, 0, "loss", NULL, -1, -1, &h), -EINVAL);
	CHECK_INT_EQ(gw_client_history(c, 0, "loss", "math", 5, 4, &h), -EINVAL);
	CHECK_INT_EQ(gw_client_history(c, 0, "loss", "math", -2, 4, &h), -EINVAL);
	CHECK_INT_EQ(gw_client_history(c, 1, "loss", "math", -1, -1, &h), -ERANGE);
	/* Refused by the daemon: a step past its limit. */
	CHECK_INT_EQ(gw_client_history(c, 0, "loss", "math", 1000000000000000LL, -1, &h), -EPROTO);
	CHECK_STR_HAS(gw_client_error(c), t.query);
	CHECK_STR_HAS(gw_client_error(c), "not a step");

	CHECK_INT_EQ(gw_client_snapshot(c, 0, 40, GW_STEP_NONE, &s), 0);
	CHECK_STR_EQ(gw_msg_type(s), "snapshot");
	CHECK_INT_EQ(gw_msg_get_count(s, "results"), 3);
	CHECK_STR_EQ(gw_msg_get_string(s, "status.watching"), "/ckpt");
	CHECK_INT_EQ(gw_msg_get_number(s, "results.0.step", &v), 0);
	CHECK_NEAR(v, 40, 0);
	CHECK_INT_EQ(gw_msg_get_kind(s, "alerts"), -ENOENT);
	gw_msg_free(s);
	/* The queries did not disturb the splice. */
	for (int i = 1; i <= 6; i++)
		expect_metrics(c, 10 * i, i, 1);
	expect_quiet(c, 300);
	gw_client_free(c);
	testd_stop(&t, true);
}

static void test_filters(void)
{
	char script[4096] = "", marker[600];
	struct testd t;
	struct gw_client *c;
	struct gw_msg *m;

	snprintf(marker, sizeof(marker), "%s/go", tap_tmpdir());
	snprintf(script, sizeof(script),
		 "%swaitfile %s\nsend progress {\"step\":200,\"done\":0.5}\n"
		 "send alert {\"version\":\"4\",\"status\":\"firing\",\"alerts\":[]}\n",
		 result_line(100, 1), marker);
	append(script, sizeof(script), result_line(200, 2));
	testd_start(&t, "filter.script", script, NULL, NULL);
	CHECK_INT_EQ(gw_client_new(&c), 0);
	CHECK_INT_EQ(gw_client_subscribe(c, "alert."), 0);
	CHECK_INT_EQ(gw_client_subscribe(c, "heartbeat.olmoe-test"), 0);
	CHECK_INT_EQ(gw_client_connect(c, t.spec), 0);
	/* The replayed metrics are filtered out; heartbeats come through. */
	m = next_msg(c, 3000);
	CHECK_STR_EQ(gw_msg_type(m), "heartbeat");
	CHECK_INT_EQ(gw_msg_get_kind(m, "status"), GW_JSON_OBJECT);
	gw_msg_free(m);
	fclose(fopen(marker, "w"));
	for (;;) {
		m = next_msg(c, 3000);
		if (strcmp(gw_msg_type(m), "heartbeat"))
			break;
		gw_msg_free(m);
	}
	CHECK_STR_EQ(gw_msg_type(m), "alert");
	CHECK_INT_EQ(gw_msg_seq(m), 3);
	gw_msg_free(m);
	gw_client_free(c);
	testd_stop(&t, true);

	CHECK_INT_EQ(gw_client_new(&c), 0);
	for (int i = 0; i < 32; i++)
		CHECK_INT_EQ(gw_client_subscribe(c, "x"), 0);
	CHECK_INT_EQ(gw_client_subscribe(c, "x"), -E2BIG);
	CHECK_INT_EQ(gw_client_next(c, 0, &m), -ENOTCONN);
	gw_client_free(c);
}

/* ---- a raw server: exactly the protocol, under the test's control -------------------------- */

struct raw {
	void *ctx, *pub, *router;
	char spec[600];
	char epoch[40];
};

static void raw_open(struct raw *r, const char *epoch)
{
	char pub[256], q[256];
	size_t sz;
	int zero = 0;

	r->ctx = zmq_ctx_new();
	r->pub = zmq_socket(r->ctx, ZMQ_PUB);
	r->router = zmq_socket(r->ctx, ZMQ_ROUTER);
	zmq_setsockopt(r->pub, ZMQ_LINGER, &zero, sizeof(zero));
	zmq_setsockopt(r->router, ZMQ_LINGER, &zero, sizeof(zero));
	CHECK_INT_EQ(zmq_bind(r->pub, "tcp://127.0.0.1:*"), 0);
	CHECK_INT_EQ(zmq_bind(r->router, "tcp://127.0.0.1:*"), 0);
	sz = sizeof(pub);
	zmq_getsockopt(r->pub, ZMQ_LAST_ENDPOINT, pub, &sz);
	sz = sizeof(q);
	zmq_getsockopt(r->router, ZMQ_LAST_ENDPOINT, q, &sz);
	snprintf(r->spec, sizeof(r->spec), "%s,%s", pub, q);
	snprintf(r->epoch, sizeof(r->epoch), "%s", epoch);
}

static void raw_close(struct raw *r)
{
	zmq_close(r->pub);
	zmq_close(r->router);
	CHECK_INT_EQ(zmq_ctx_term(r->ctx), 0);
}

static void raw_send(struct raw *r, const char *topic, const char *body)
{
	CHECK(zmq_send(r->pub, topic, strlen(topic), ZMQ_SNDMORE) >= 0);
	CHECK(zmq_send(r->pub, body, strlen(body), 0) >= 0);
}

static const char *raw_metrics(struct raw *r, long long seq, long long step)
{
	static char buf[512];

	snprintf(buf, sizeof(buf),
		 "{\"type\":\"metrics\",\"seq\":%lld,\"epoch\":\"%s\",\"run\":\"raw\",\"time\":1,"
		 "\"step\":%lld,\"groups\":{\"all\":{\"pathway_distance\":%lld}}}",
		 seq, r->epoch, step, step);
	return buf;
}

static void raw_heartbeat(struct raw *r, long long seq)
{
	char buf[256];

	snprintf(buf, sizeof(buf),
		 "{\"type\":\"heartbeat\",\"seq\":%lld,\"epoch\":\"%s\",\"run\":\"raw\",\"time\":1,"
		 "\"status\":{}}", seq, r->epoch);
	raw_send(r, "heartbeat.raw", buf);
}

/* Pump the client until the raw server has a request; answer it with
 * reply_fmt (a printf format taking the request's id). */
static void raw_answer(struct raw *r, struct gw_client *c, const char *expect_req,
		       const char *reply)
{
	long long end = now_ms() + 5000;

	for (;;) {
		zmq_pollitem_t it = { .socket = r->router, .events = ZMQ_POLLIN };
		struct gw_msg *m;

		if (zmq_poll(&it, 1, 0) == 1) {
			char id[256], body[4096], out[16384], *idpos;
			int idlen = zmq_recv(r->router, id, sizeof(id), 0);
			int n = zmq_recv(r->router, body, sizeof(body) - 1, 0);
			cJSON *req;
			double reqid;

			CHECK(idlen > 0 && n > 0);
			body[n] = 0;
			req = cJSON_Parse(body);
			CHECK(req != NULL);
			CHECK_STR_EQ(cJSON_GetObjectItem(req, "req")->valuestring, expect_req);
			reqid = cJSON_GetObjectItem(req, "id")->valuedouble;
			cJSON_Delete(req);
			/* "@ID@" in reply becomes the request's id. */
			idpos = strstr(reply, "@ID@");
			CHECK(idpos != NULL);
			snprintf(out, sizeof(out), "%.*s%.0f%s", (int)(idpos - reply), reply, reqid,
				 idpos + 4);
			CHECK(zmq_send(r->router, id, (size_t)idlen, ZMQ_SNDMORE) >= 0);
			CHECK(zmq_send(r->router, out, strlen(out), 0) >= 0);
			return;
		}
		if (now_ms() > end)
			tap_fail(__FILE__, __LINE__, "no %s request", expect_req);
		if (gw_client_next(c, 10, &m) == 0)
			tap_fail(__FILE__, __LINE__, "message before the reply: %s", gw_msg_json(m));
	}
}

static void test_gap_resyncs_once_each(void)
{
	struct raw r;
	struct gw_client *c;
	struct gw_msg *m;
	struct gw_daemon_info in;
	char snap[8192];

	raw_open(&r, "epochA");
	CHECK_INT_EQ(gw_client_new(&c), 0);
	CHECK_INT_EQ(gw_client_connect(c, r.spec), 0);
	snprintf(snap, sizeof(snap),
		 "{\"type\":\"snapshot\",\"seq\":2,\"epoch\":\"epochA\",\"run\":\"raw\",\"status\":{},"
		 "\"id\":@ID@,\"results\":[%s,", raw_metrics(&r, 1, 10));
	snprintf(snap + strlen(snap), sizeof(snap) - strlen(snap), "%s]}", raw_metrics(&r, 2, 20));
	raw_answer(&r, c, "snapshot", snap);
	CHECK_INT_EQ(step_of(m = next_msg(c, 2000)), 10);
	gw_msg_free(m);
	CHECK_INT_EQ(step_of(m = next_msg(c, 2000)), 20);
	gw_msg_free(m);

	/* Wait until the subscription is through: heartbeats at seq 2. */
	for (long long end = now_ms() + 3000; gw_client_daemon_info(c, 0, &in) == 0 &&
					      in.received == 0;) {
		CHECK(now_ms() < end);
		raw_heartbeat(&r, 2);
		expect_quiet(c, 20);
	}
	/* Malformed messages are dropped and counted, nothing else. */
	raw_send(&r, "metrics.raw", "{\"type\":\"metrics\",");
	raw_send(&r, "metrics.raw", "{\"type\":\"metrics\",\"seq\":3}"); /* no epoch */
	CHECK(zmq_send(r.pub, "x", 1, 0) == 1);                          /* one frame */
	raw_send(&r, "metrics.raw", raw_metrics(&r, 3, 30));
	raw_send(&r, "metrics.raw", raw_metrics(&r, 3, 30)); /* a duplicate */
	CHECK_INT_EQ(step_of(m = next_msg(c, 2000)), 30);
	gw_msg_free(m);
	expect_quiet(c, 100);
	CHECK_INT_EQ(gw_client_daemon_info(c, 0, &in), 0);
	CHECK_INT_EQ(in.malformed, 3);

	/* seq 4 and 5 lost: 6 shows the gap; the new snapshot holds 4, 5, 6. */
	raw_send(&r, "metrics.raw", raw_metrics(&r, 6, 60));
	snprintf(snap, sizeof(snap),
		 "{\"type\":\"snapshot\",\"seq\":6,\"epoch\":\"epochA\",\"run\":\"raw\",\"status\":{},"
		 "\"id\":@ID@,\"results\":[%s,", raw_metrics(&r, 1, 10));
	snprintf(snap + strlen(snap), sizeof(snap) - strlen(snap), "%s,", raw_metrics(&r, 3, 30));
	snprintf(snap + strlen(snap), sizeof(snap) - strlen(snap), "%s,", raw_metrics(&r, 4, 40));
	snprintf(snap + strlen(snap), sizeof(snap) - strlen(snap), "%s,", raw_metrics(&r, 5, 50));
	snprintf(snap + strlen(snap), sizeof(snap) - strlen(snap), "%s]}", raw_metrics(&r, 6, 60));
	raw_answer(&r, c, "snapshot", snap);
	m = next_msg(c, 2000);
	CHECK_STR_EQ(gw_msg_type(m), "resync");
	CHECK_STR_EQ(gw_msg_get_string(m, "reason"), "gap");
	gw_msg_free(m);
	for (int s = 40; s <= 60; s += 10) {
		CHECK_INT_EQ(step_of(m = next_msg(c, 2000)), s);
		CHECK_INT_EQ(gw_msg_replayed(m), 1);
		gw_msg_free(m);
	}
	/* A heartbeat ahead of what was seen is a gap too. */
	raw_heartbeat(&r, 7);
	raw_answer(&r, c, "snapshot",
		   "{\"type\":\"snapshot\",\"seq\":7,\"epoch\":\"epochA\",\"run\":\"raw\","
		   "\"status\":{},\"id\":@ID@,\"results\":[]}");
	m = next_msg(c, 2000);
	CHECK_STR_EQ(gw_msg_type(m), "resync");
	gw_msg_free(m);
	expect_quiet(c, 100);
	CHECK_INT_EQ(gw_client_daemon_info(c, 0, &in), 0);
	CHECK_INT_EQ(in.gaps, 2);
	CHECK_INT_EQ(in.seq, 7);
	CHECK_INT_EQ(in.state, GW_DAEMON_LIVE);
	gw_client_free(c);
	raw_close(&r);
}

/* Answer one request on the raw server's ROUTER from another thread, for
 * the calls that block (the main thread does not touch the router then). */
struct responder {
	struct raw *r;
	const char *reply;
	pthread_t th;
};

static void *respond(void *arg)
{
	struct responder *rs = arg;
	zmq_pollitem_t it = { .socket = rs->r->router, .events = ZMQ_POLLIN };
	char id[256], body[4096], out[16384];
	const char *idpos = strstr(rs->reply, "@ID@");
	int idlen, n;
	cJSON *req;

	if (zmq_poll(&it, 1, 5000) != 1)
		return NULL;
	idlen = zmq_recv(rs->r->router, id, sizeof(id), 0);
	n = zmq_recv(rs->r->router, body, sizeof(body) - 1, 0);
	if (idlen <= 0 || n <= 0)
		return NULL;
	body[n] = 0;
	req = cJSON_Parse(body);
	snprintf(out, sizeof(out), "%.*s%.0f%s", (int)(idpos - rs->reply), rs->reply,
		 cJSON_GetObjectItem(req, "id")->valuedouble, idpos + 4);
	cJSON_Delete(req);
	zmq_send(rs->r->router, id, (size_t)idlen, ZMQ_SNDMORE);
	zmq_send(rs->r->router, out, strlen(out), 0);
	return NULL;
}

static void test_snapshot_alerts_and_refusals(void)
{
	struct raw r;
	struct gw_client *c;
	struct gw_msg *m, *s = (struct gw_msg *)0x1;
	struct gw_history *h = (struct gw_history *)0x1;
	struct responder rs;
	long long t0;

	raw_open(&r, "epochB");
	CHECK_INT_EQ(gw_client_new(&c), 0);
	gw_client_set_timeout(c, 300);
	CHECK_INT_EQ(gw_client_connect(c, r.spec), 0);
	raw_answer(&r, c, "snapshot",
		   "{\"type\":\"snapshot\",\"seq\":0,\"epoch\":\"epochB\",\"run\":\"raw\","
		   "\"status\":{},\"id\":@ID@,\"results\":[]}");
	expect_quiet(c, 50);

	/* A snapshot with "alerts" (Alertmanager-shaped), as the daemon will send. */
	gw_client_set_timeout(c, 3000);
	rs = (struct responder){ .r = &r, .reply =
		"{\"type\":\"snapshot\",\"seq\":0,\"epoch\":\"epochB\",\"run\":\"raw\","
		"\"status\":{\"queue\":1},\"id\":@ID@,\"results\":[],\"alerts\":[{\"version\":\"4\","
		"\"status\":\"firing\",\"alerts\":[{\"status\":\"firing\",\"labels\":"
		"{\"alertname\":\"Plateau\",\"group\":\"math\"}}]}]}" };
	CHECK_INT_EQ(pthread_create(&rs.th, NULL, respond, &rs), 0);
	CHECK_INT_EQ(gw_client_snapshot(c, 0, 5, GW_STEP_NONE, &s), 0);
	pthread_join(rs.th, NULL);
	CHECK_STR_EQ(gw_msg_get_string(s, "alerts.0.alerts.0.labels.alertname"), "Plateau");
	CHECK_INT_EQ(gw_msg_get_count(s, "alerts"), 1);
	gw_msg_free(s);

	/* No reply: the call ends at the timeout, and the late reply is dropped. */
	gw_client_set_timeout(c, 300);
	s = (struct gw_msg *)0x1;
	t0 = now_ms();
	CHECK_INT_EQ(gw_client_snapshot(c, 0, -1, -1, &s), -ETIMEDOUT);
	CHECK(now_ms() - t0 < 1000);
	CHECK(s == (struct gw_msg *)0x1);
	CHECK_STR_HAS(gw_client_error(c), "no reply to the snapshot request within 300 ms");
	raw_answer(&r, c, "snapshot",
		   "{\"type\":\"snapshot\",\"seq\":0,\"epoch\":\"epochB\",\"run\":\"raw\","
		   "\"status\":{},\"id\":@ID@,\"results\":[]}");
	expect_quiet(c, 100);

	/* History: refused, and malformed. */
	gw_client_set_timeout(c, 3000);
	rs = (struct responder){ .r = &r, .reply = "{\"type\":\"error\",\"error\":\"request: bad\",\"id\":@ID@}" };
	CHECK_INT_EQ(pthread_create(&rs.th, NULL, respond, &rs), 0);
	CHECK_INT_EQ(gw_client_history(c, 0, "loss", "all", -1, -1, &h), -EPROTO);
	pthread_join(rs.th, NULL);
	CHECK_STR_HAS(gw_client_error(c), "refused the history request: request: bad");
	rs = (struct responder){ .r = &r, .reply = "{\"type\":\"history\",\"id\":@ID@,\"points\":[[2,1],[1,2]]}" };
	CHECK_INT_EQ(pthread_create(&rs.th, NULL, respond, &rs), 0);
	CHECK_INT_EQ(gw_client_history(c, 0, "loss", "all", -1, -1, &h), -EPROTO);
	pthread_join(rs.th, NULL);
	CHECK_STR_HAS(gw_client_error(c), "increasing step order");
	rs = (struct responder){ .r = &r, .reply = "{\"type\":\"history\",\"id\":@ID@,\"points\":[[1,\"x\"]]}" };
	CHECK_INT_EQ(pthread_create(&rs.th, NULL, respond, &rs), 0);
	CHECK_INT_EQ(gw_client_history(c, 0, "loss", "all", -1, -1, &h), -EPROTO);
	pthread_join(rs.th, NULL);
	rs = (struct responder){ .r = &r, .reply = "{\"type\":\"history\",\"id\":@ID@}" };
	CHECK_INT_EQ(pthread_create(&rs.th, NULL, respond, &rs), 0);
	CHECK_INT_EQ(gw_client_history(c, 0, "loss", "all", -1, -1, &h), -EPROTO);
	pthread_join(rs.th, NULL);
	CHECK(h == (struct gw_history *)0x1);
	gw_client_free(c);
	raw_close(&r);

	/* The splice's snapshot refused: reported once, naming the endpoint. */
	raw_open(&r, "epochC");
	CHECK_INT_EQ(gw_client_new(&c), 0);
	CHECK_INT_EQ(gw_client_connect(c, r.spec), 0);
	raw_answer(&r, c, "snapshot",
		   "{\"type\":\"error\",\"error\":\"reply of 9 bytes is over the limit\",\"id\":@ID@}");
	m = (struct gw_msg *)0x1;
	CHECK_INT_EQ(gw_client_next(c, 500, &m), -EPROTO);
	CHECK_STR_HAS(gw_client_error(c), "refused the snapshot request: reply of 9 bytes");
	CHECK_STR_HAS(gw_client_error(c), "tcp://127.0.0.1:");
	CHECK_INT_EQ(gw_client_next(c, 50, &m), -ETIMEDOUT);
	CHECK(m == (struct gw_msg *)0x1);
	gw_client_free(c);
	raw_close(&r);
}

static void test_daemon_down_times_out(void)
{
	struct gw_client *c;
	struct gw_msg *m;
	struct gw_history *h;
	struct gw_daemon_info in;
	struct raw r;
	char spec[600];
	long long t0;

	/* A port nobody listens on: bind and close one to find it. */
	raw_open(&r, "x");
	snprintf(spec, sizeof(spec), "%s", r.spec);
	raw_close(&r);
	CHECK_INT_EQ(gw_client_new(&c), 0);
	gw_client_set_timeout(c, 200);
	CHECK_INT_EQ(gw_client_connect(c, spec), 0);
	CHECK_INT_EQ(gw_client_connect(c, "tcp://nowhere"), -EINVAL);
	CHECK_STR_HAS(gw_client_error(c), "\"tcp://nowhere\": not an endpoint");
	t0 = now_ms();
	CHECK_INT_EQ(gw_client_next(c, 300, &m), -ETIMEDOUT);
	CHECK(now_ms() - t0 >= 290 && now_ms() - t0 < 1500);
	CHECK_STR_HAS(gw_client_error(c), "no reply to the snapshot request");
	CHECK_STR_HAS(gw_client_error(c), strchr(spec, ',') + 1);
	CHECK_INT_EQ(gw_client_daemon_info(c, 0, &in), 0);
	CHECK_INT_EQ(in.state, GW_DAEMON_SYNCING);
	CHECK_INT_EQ(in.silent_ms, -1);
	t0 = now_ms();
	CHECK_INT_EQ(gw_client_history(c, 0, "loss", "all", -1, -1, &h), -ETIMEDOUT);
	CHECK(now_ms() - t0 < 1500);
	CHECK_STR_HAS(gw_client_error(c), "history request within 200 ms");
	t0 = now_ms();
	CHECK_INT_EQ(gw_client_next(c, 0, &m), -ETIMEDOUT);
	CHECK(now_ms() - t0 < 100);
	gw_client_free(c);
	gw_client_free(NULL);
	CHECK_INT_EQ(gw_client_new(&c), 0);
	CHECK_INT_EQ(gw_client_set_server_key(c, "short"), -EINVAL);
	CHECK_INT_EQ(gw_client_set_server_key(c, NULL), 0);
	gw_client_free(c);
}

static void test_curve(void)
{
	char pub[41], sec[41], script[1024] = "", keyfile[600];
	struct testd t;
	struct gw_client *c;
	struct gw_history *h;
	struct gw_msg *m;

	if (!zmq_has("curve")) {
		tap_note("libzmq without CURVE: nothing to test");
		return;
	}
	CHECK_INT_EQ(zmq_curve_keypair(pub, sec), 0);
	snprintf(keyfile, sizeof(keyfile), "%s", tap_write_file("server.key", sec, 40));
	testd_curve_secret = keyfile;
	append(script, sizeof(script), result_line(100, 1));
	testd_start(&t, "curve.script", script, NULL, NULL);
	testd_curve_secret = NULL;

	/* With the server's key: the splice and a query work. */
	CHECK_INT_EQ(gw_client_new(&c), 0);
	CHECK_INT_EQ(gw_client_set_server_key(c, pub), 0);
	CHECK_INT_EQ(gw_client_connect(c, t.spec), 0);
	expect_metrics(c, 100, 1, 1);
	CHECK_INT_EQ(gw_client_history(c, 0, "pathway_distance", "math", -1, -1, &h), 0);
	CHECK_INT_EQ(gw_history_count(h), 1);
	gw_history_free(h);
	gw_client_free(c);

	/* Without it, or with another key: no answer, in bounded time. */
	for (int k = 0; k < 2; k++) {
		char other[41], osec[41];

		CHECK_INT_EQ(gw_client_new(&c), 0);
		gw_client_set_timeout(c, 300);
		if (k == 1) {
			CHECK_INT_EQ(zmq_curve_keypair(other, osec), 0);
			CHECK_INT_EQ(gw_client_set_server_key(c, other), 0);
		}
		CHECK_INT_EQ(gw_client_connect(c, t.spec), 0);
		CHECK_INT_EQ(gw_client_next(c, 400, &m), -ETIMEDOUT);
		gw_client_free(c);
	}
	testd_stop(&t, true);
}

static const struct tap_test tests[] = {
	{ "endpoint_parse", test_endpoint_parse },
	{ "msg_accessors", test_msg_accessors },
	{ "msg_parse_refuses_bad_bodies", test_msg_parse_refuses_bad_bodies },
	{ "late_client_sees_all_once", test_late_client_sees_all_once },
	{ "restart_resumes_without_duplicates", test_restart_resumes_without_duplicates },
	{ "history_and_snapshot_queries", test_history_and_snapshot_queries },
	{ "filters", test_filters },
	{ "gap_resyncs_once_each", test_gap_resyncs_once_each },
	{ "snapshot_alerts_and_refusals", test_snapshot_alerts_and_refusals },
	{ "daemon_down_times_out", test_daemon_down_times_out },
	{ "curve", test_curve },
	{ NULL, NULL },
};
TAP_MAIN(tests)
