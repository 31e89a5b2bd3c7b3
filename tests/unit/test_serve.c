/*
 * test_serve.c — the pieces of `grokwatch serve` that need no network:
 * api.c's request checks (routes, parameters, the one-line reasons),
 * emit.c's numbers and escapes, and board.c: results into rows (a late
 * result in its step's place, a recomputed one replacing its row),
 * status, alert periods from alert messages and from a status's firing
 * set (placed by time), the memorized refresh from a history reply, the
 * page's series JSON (read back with cJSON) and the Prometheus text.
 * Expected values are the ones written into the input messages.
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "../../client/cli/api.h"
#include "../../client/cli/board.h"
#include "../../client/cli/emit.h"
#include "../../client/lib/internal.h"

/* ---- api -------------------------------------------------------------------------- */

static int parse(const char *path, const char *const *kv, struct api_req *q, char *why)
{
	struct api_param p[16] = { { NULL, NULL } };
	size_t n = 0;

	for (; kv && kv[2 * n]; n++)
		p[n] = (struct api_param){ kv[2 * n], kv[2 * n + 1] };
	return api_parse(path, p, n, q, why, 300);
}

static void test_api_routes(void)
{
	struct api_req q;
	char why[300];

	CHECK_INT_EQ(parse("/", NULL, &q, why), 0);
	CHECK_INT_EQ(q.route, API_PAGE);
	CHECK_INT_EQ(parse("/metrics", NULL, &q, why), 0);
	CHECK_INT_EQ(q.route, API_METRICS);
	CHECK_INT_EQ(parse("/events", NULL, &q, why), 0);
	CHECK_INT_EQ(q.route, API_EVENTS);
	CHECK_INT_EQ(parse("/api/history",
			   (const char *const[]){ "metric", "memorized.loss", "group", "math", "from",
						  "10", "to", "20", "run", "r1", NULL },
			   &q, why),
		     0);
	CHECK_INT_EQ(q.route, API_HISTORY);
	CHECK_STR_EQ(q.metric, "memorized.loss");
	CHECK_STR_EQ(q.group, "math");
	CHECK_STR_EQ(q.run, "r1");
	CHECK_INT_EQ(q.from, 10);
	CHECK_INT_EQ(q.to, 20);
	CHECK_INT_EQ(parse("/api/history", (const char *const[]){ "metric", "loss", NULL }, &q, why),
		     0);
	CHECK_STR_EQ(q.group, "all");
	CHECK(q.run == NULL);
	CHECK_INT_EQ(q.from, -1);
	CHECK_INT_EQ(parse("/api/result", (const char *const[]){ "step", "0", NULL }, &q, why), 0);
	CHECK_INT_EQ(q.step, 0);
}

static void test_api_refusals(void)
{
	struct api_req q = { .route = API_PAGE };
	char why[300], big[400];

	CHECK_INT_EQ(parse("/nope", NULL, &q, why), 404);
	CHECK_STR_HAS(why, "no such page");
	CHECK(!strchr(why, '\n'));
	CHECK_INT_EQ(parse("/api/history", NULL, &q, why), 400);
	CHECK_STR_EQ(why, "metric: required");
	CHECK_INT_EQ(parse("/metrics", (const char *const[]){ "x", "1", NULL }, &q, why), 400);
	CHECK_STR_EQ(why, "unknown parameter 'x' (none)");
	/* A name as sent (%0A decodes to a newline) is shown on one line. */
	CHECK_INT_EQ(parse("/metrics", (const char *const[]){ "a\nb", "1", NULL }, &q, why), 400);
	CHECK_STR_EQ(why, "unknown parameter 'a?b' (none)");
	CHECK_INT_EQ(parse("/api/snapshot", (const char *const[]){ "metric", "1", NULL }, &q, why),
		     400);
	CHECK_STR_EQ(why, "unknown parameter 'metric' (run, from, to)");
	CHECK_INT_EQ(parse("/api/snapshot", (const char *const[]){ "from", "1", "from", "2", NULL },
			   &q, why),
		     400);
	CHECK_STR_EQ(why, "from: given twice");
	{
		const char *bads[] = { "", "-1", "+1", "1x", " 1", "1000000000000000",
				       "99999999999999999999", "0x10" };

		for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
			CHECK_INT_EQ(parse("/api/snapshot", (const char *const[]){ "to", bads[i], NULL },
					   &q, why),
				     400);
			CHECK_STR_HAS(why, "to: expected a step");
		}
	}
	CHECK_INT_EQ(parse("/api/snapshot", (const char *const[]){ "from", "9", "to", "3", NULL },
			   &q, why),
		     400);
	CHECK_STR_EQ(why, "from 9 is after to 3");
	{
		const char *bads[] = { "", ".a", "a.", "a..b", "a-b", "a b", "ä" };

		for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
			CHECK_INT_EQ(parse("/api/history",
					   (const char *const[]){ "metric", bads[i], NULL }, &q, why),
				     400);
			CHECK_STR_HAS(why, "metric: expected a dotted path");
		}
	}
	CHECK_INT_EQ(parse("/api/history",
			   (const char *const[]){ "metric", "loss", "group", "a\nb", NULL }, &q, why),
		     400);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	CHECK_INT_EQ(parse("/api/series", (const char *const[]){ "run", big, NULL }, &q, why), 400);
	CHECK_STR_EQ(why, "run: longer than 256 bytes");
	CHECK_INT_EQ(parse("/api/series",
			   (const char *const[]){ "run", "a", "run", "b", "run", "c", "run", "d", "run",
						  "e", "run", "f", "run", "g", "run", "h", "run", "i",
						  NULL },
			   &q, why),
		     400);
	CHECK_STR_EQ(why, "9 parameters; at most 8");
	CHECK_INT_EQ(q.route, API_PAGE); /* untouched on refusal */
}

/* ---- emit ------------------------------------------------------------------------- */

static char *emitted(void (*fn)(FILE *, double), double v)
{
	static char out[64];
	FILE *f = fmemopen(out, sizeof(out), "w");

	fn(f, v);
	fclose(f);
	return out;
}

static void test_emit(void)
{
	char buf[200];
	FILE *f;

	CHECK_STR_EQ(emitted(emit_json_num, 0.1), "0.1");
	CHECK_STR_EQ(emitted(emit_json_num, 6.81578947368421), "6.81578947368421");
	CHECK_STR_EQ(emitted(emit_json_num, 1.0 / 3), "0.3333333333333333");
	CHECK_STR_EQ(emitted(emit_json_num, 0.1 + 0.2), "0.30000000000000004");
	CHECK_STR_EQ(emitted(emit_json_num, 3000), "3000");
	CHECK_STR_EQ(emitted(emit_json_num, NAN), "null");
	CHECK_STR_EQ(emitted(emit_json_num, INFINITY), "null");
	CHECK_STR_EQ(emitted(emit_prom_num, NAN), "NaN");
	CHECK_STR_EQ(emitted(emit_prom_num, -INFINITY), "-Inf");
	CHECK_STR_EQ(emitted(emit_prom_num, 2.5e-300), "2.5e-300");
	f = fmemopen(buf, sizeof(buf), "w");
	emit_json_str(f, "a\"b\\c\nd\x01");
	fputc('|', f);
	emit_prom_label(f, "a\"b\\c\nd");
	fputc('|', f);
	emit_prom_name(f, "grokwatch_", "memorized.loss-x");
	fclose(f);
	CHECK_STR_EQ(buf, "\"a\\\"b\\\\c\\nd\\u0001\"|a\\\"b\\\\c\\nd|grokwatch_memorized_loss_x");
}

/* ---- board ------------------------------------------------------------------------ */

static struct gw_msg *msg(const char *json)
{
	struct gw_msg *m;

	CHECK_INT_EQ(gw_msg_parse("t.r1", json, strlen(json), &m), 0);
	return m;
}

static char *apply(struct board *b, const char *json)
{
	struct gw_msg *m = msg(json);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	CHECK_INT_EQ(board_apply(b, m, f), 0);
	fclose(f);
	gw_msg_free(m);
	return buf;
}

static cJSON *series(struct board *b)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	cJSON *j;

	board_series_json(b, SIZE_MAX, f);
	fclose(f);
	j = cJSON_Parse(buf);
	CHECK(j != NULL);
	free(buf);
	return j;
}

static double num_at(const cJSON *arr, int i)
{
	const cJSON *v = cJSON_GetArrayItem(arr, i);

	CHECK(v != NULL);
	return cJSON_IsNull(v) ? NAN : v->valuedouble;
}

/* Row i's value of column `name` in a run's series ("steps" and "times"
 * for the first two); NaN where the row is shorter; CHECKs the column. */
static double cell(const cJSON *run, const char *name, int i)
{
	const cJSON *cols = cJSON_GetObjectItem(run, "columns");
	const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(run, "rows"), i);
	int k = -1;

	CHECK(row != NULL);
	if (!strcmp(name, "steps"))
		return num_at(row, 0);
	if (!strcmp(name, "times"))
		return num_at(row, 1);
	for (int c = 0; c < cJSON_GetArraySize(cols); c++)
		if (!strcmp(cJSON_GetArrayItem(cols, c)->valuestring, name))
			k = c;
	if (k < 0)
		tap_fail(__FILE__, __LINE__, "no column %s", name);
	return k + 2 < cJSON_GetArraySize(row) ? num_at(row, k + 2) : NAN;
}

static bool has_column(const cJSON *run, const char *name)
{
	const cJSON *cols = cJSON_GetObjectItem(run, "columns");

	for (int c = 0; c < cJSON_GetArraySize(cols); c++)
		if (!strcmp(cJSON_GetArrayItem(cols, c)->valuestring, name))
			return true;
	return false;
}

#define RESULT(step, time, dist, mem, imb) \
	"{\"type\":\"metrics\",\"run\":\"r1\",\"epoch\":\"e\",\"seq\":1,\"time\":" time \
	",\"step\":" step ",\"groups\":{\"math\":{\"pathway_distance\":" dist \
	",\"sampled\":false,\"per_layer_distance\":[1,2],\"memorized\":{\"pathway_distance\":" mem \
	"}},\"all\":{\"pathway_distance\":1.5}},\"health\":{\"overall\":{\"imbalance\":" imb \
	"},\"layers\":[{\"load\":[0.25,0.75],\"dead_experts\":0},{\"load\":[0.5,0.5],\"dead_experts\":1}]}}"

static void test_board_rows(void)
{
	const char *eps[] = { "tcp://127.0.0.1:5557" };
	struct board *b;
	cJSON *j, *r;
	char *ev;

	CHECK_INT_EQ(board_new(1, eps, &b), 0);
	ev = apply(b, RESULT("2000", "100.5", "6.5", "null", "2"));
	CHECK_STR_HAS(ev, "event: result\ndata: {\"daemon\":0,\"run\":\"r1\",\"step\":2000,");
	CHECK_STR_HAS(ev, "\"groups.math.pathway_distance\":6.5");
	CHECK_STR_HAS(ev, "\"groups.math.memorized.pathway_distance\":null");
	CHECK_STR_HAS(ev, "\"health.layers.1.dead_experts\":1");
	CHECK(!strstr(ev, "per_layer_distance") && !strstr(ev, "sampled") && !strstr(ev, "load\""));
	free(ev);
	free(apply(b, RESULT("1000", "90", "9.25", "4", "3")));   /* late, older step */
	free(apply(b, RESULT("3000", "110", "5", "3.5", "1.5")));
	free(apply(b, RESULT("2000", "120", "6.75", "3.75", "2"))); /* recomputed */
	j = series(b);
	r = cJSON_GetArrayItem(j, 0);
	CHECK_STR_EQ(cJSON_GetObjectItem(r, "run")->valuestring, "r1");
	CHECK_INT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(r, "rows")), 3);
	CHECK_INT_EQ(cell(r, "steps", 0), 1000);
	CHECK_INT_EQ(cell(r, "steps", 1), 2000);
	CHECK_INT_EQ(cell(r, "steps", 2), 3000);
	CHECK(cell(r, "times", 1) == 120);
	CHECK(cell(r, "groups.math.pathway_distance", 0) == 9.25);
	CHECK(cell(r, "groups.math.pathway_distance", 1) == 6.75);
	CHECK(cell(r, "groups.math.pathway_distance", 2) == 5);
	CHECK(cell(r, "groups.math.memorized.pathway_distance", 1) == 3.75);
	CHECK(cell(r, "groups.all.pathway_distance", 2) == 1.5);
	CHECK(cell(r, "health.overall.imbalance", 0) == 3);
	CHECK(cell(r, "health.layers.1.dead_experts", 2) == 1);
	CHECK(!has_column(r, "groups.math.sampled"));
	cJSON_Delete(j);
	board_free(b);
}

static void test_board_memo(void)
{
	const char *eps[] = { "e0" };
	const char *rep = "{\"type\":\"history\",\"run\":\"r1\",\"metric\":\"memorized.pathway_distance\","
			  "\"group\":\"math\",\"points\":[[1000,4],[2000,2.5],[3000,null],[9000,1]]}";
	struct board *b;
	struct gw_history *h;
	const char *g, *m;
	cJSON *reply = cJSON_Parse(rep), *j, *r;
	char why[100], *buf = NULL;
	size_t len = 0;
	FILE *f;

	CHECK_INT_EQ(board_new(1, eps, &b), 0);
	free(apply(b, RESULT("1000", "90", "9", "4", "3")));
	free(apply(b, RESULT("2000", "91", "8", "3", "3")));
	free(apply(b, RESULT("3000", "92", "7", "2", "3")));
	CHECK_INT_EQ(board_memo_column(b, 0, 0, &g, &m), 0);
	CHECK_STR_EQ(g, "math");
	CHECK_STR_EQ(m, "memorized.pathway_distance");
	CHECK_INT_EQ(board_memo_column(b, 0, 1, &g, &m), -ERANGE);
	j = series(b); /* row texts kept, then changed by the refresh */
	cJSON_Delete(j);
	CHECK_INT_EQ(gwc_history_new(reply, rep, &h, why, sizeof(why)), 0);
	f = open_memstream(&buf, &len);
	CHECK_INT_EQ(board_apply_history(b, 0, h, f), 0);
	fclose(f);
	/* 1000 unchanged; 2000 and 3000 changed; 9000 has no row. */
	CHECK_STR_EQ(buf, "event: memo\ndata: {\"daemon\":0,\"run\":\"r1\",\"column\":"
			  "\"groups.math.memorized.pathway_distance\",\"points\":[[2000,2.5],"
			  "[3000,null]]}\n\n");
	free(buf);
	j = series(b);
	r = cJSON_GetArrayItem(j, 0);
	CHECK(cell(r, "groups.math.memorized.pathway_distance", 0) == 4);
	CHECK(cell(r, "groups.math.memorized.pathway_distance", 1) == 2.5);
	CHECK(isnan(cell(r, "groups.math.memorized.pathway_distance", 2)));
	cJSON_Delete(j);
	cJSON_Delete(reply);
	gw_history_free(h);
	board_free(b);
}

#define ALERT(status, step, ends) \
	"{\"type\":\"alert\",\"run\":\"r1\",\"step\":" step ",\"status\":\"" status "\"," \
	"\"alerts\":[{\"status\":\"" status "\",\"labels\":{\"alertname\":\"grokking\"," \
	"\"run\":\"r1\",\"group\":\"math\",\"metric\":\"pathway_distance\"},\"annotations\":" \
	"{\"summary\":\"s\"},\"startsAt\":\"2026-01-01T00:00:00.000Z\",\"endsAt\":\"" ends "\"," \
	"\"fingerprint\":\"00000000000000aa\"}]}"

static void test_board_alerts(void)
{
	const char *eps[] = { "e0" };
	struct board *b;
	cJSON *j, *al, *a;
	char *ev, *buf = NULL;
	size_t len = 0;
	FILE *f;
	/* 2026-01-01T00:00:10.000Z is 1767225610. */
	const char *status =
		"{\"type\":\"heartbeat\",\"run\":\"r1\",\"status\":{\"state\":\"idle\",\"pending\":2,"
		"\"queue\":1,\"failures\":3,\"alerts\":[{\"status\":\"firing\",\"labels\":"
		"{\"alertname\":\"routing_collapse\",\"run\":\"r1\",\"group\":\"all\",\"metric\":"
		"\"max_imbalance\"},\"annotations\":{\"summary\":\"x\"},\"startsAt\":"
		"\"2026-01-01T00:00:10.000Z\",\"endsAt\":\"0001-01-01T00:00:00Z\",\"fingerprint\":"
		"\"00000000000000bb\"}]}}";

	CHECK_INT_EQ(board_new(1, eps, &b), 0);
	free(apply(b, RESULT("1000", "1767225609.5", "9", "4", "3")));
	free(apply(b, RESULT("2000", "1767225610.0", "8", "3", "3")));
	free(apply(b, RESULT("3000", "1767225611.0", "7", "2", "3")));
	ev = apply(b, ALERT("firing", "2000", "0001-01-01T00:00:00Z"));
	CHECK_STR_HAS(ev, "event: alert\n");
	CHECK_STR_HAS(ev, "\"from_step\":2000,\"to_step\":null");
	free(ev);
	ev = apply(b, ALERT("resolved", "3000", "2026-01-01T00:01:00.000Z"));
	CHECK_STR_HAS(ev, "\"from_step\":2000,\"to_step\":3000");
	free(ev);
	ev = apply(b, status);
	CHECK_STR_HAS(ev, "event: status\n");
	free(ev);
	ev = apply(b, status); /* unchanged: no event */
	CHECK_STR_EQ(ev, "");
	free(ev);
	j = series(b);
	al = cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "alerts");
	CHECK_INT_EQ(cJSON_GetArraySize(al), 2);
	a = cJSON_GetArrayItem(al, 0);
	CHECK_STR_EQ(cJSON_GetObjectItem(a, "alertname")->valuestring, "grokking");
	CHECK(cJSON_IsFalse(cJSON_GetObjectItem(a, "firing")));
	a = cJSON_GetArrayItem(al, 1);
	CHECK_STR_EQ(cJSON_GetObjectItem(a, "alertname")->valuestring, "routing_collapse");
	/* Placed at the last result published at or before startsAt. */
	CHECK_INT_EQ(cJSON_GetObjectItem(a, "from_step")->valueint, 2000);
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(a, "to_step")));
	cJSON_Delete(j);

	/* A firing period whose alert the status no longer holds (its
	 * resolution lost in a gap) is closed at the latest step. */
	free(apply(b, ALERT("firing", "3000", "0001-01-01T00:00:00Z")));
	ev = apply(b, "{\"type\":\"heartbeat\",\"run\":\"r1\",\"status\":{\"state\":\"idle\","
		      "\"pending\":2,\"queue\":1,\"failures\":3,\"alerts\":[]}}");
	CHECK_STR_HAS(ev, "\"alertname\":\"grokking\",\"group\":\"math\",\"metric\":"
			  "\"pathway_distance\",\"summary\":\"s\",\"firing\":false");
	CHECK_STR_HAS(ev, "\"from_step\":3000,\"to_step\":3000");
	CHECK(!strstr(ev, "\"firing\":true"));
	free(ev);
	free(apply(b, status));

	f = open_memstream(&buf, &len);
	board_prometheus(b, f);
	fclose(f);
	CHECK_STR_HAS(buf, "# TYPE grokwatch_step gauge\ngrokwatch_step{run=\"r1\",endpoint=\"e0\"} "
			   "3000\n");
	CHECK_STR_HAS(buf, "# TYPE grokwatch_pathway_distance gauge\n"
			   "grokwatch_pathway_distance{run=\"r1\",group=\"math\"} 7\n"
			   "grokwatch_pathway_distance{run=\"r1\",group=\"all\"} 1.5\n");
	CHECK_STR_HAS(buf, "grokwatch_memorized_pathway_distance{run=\"r1\",group=\"math\"} 2\n");
	CHECK_STR_HAS(buf, "grokwatch_health_imbalance{run=\"r1\"} 3\n");
	CHECK_STR_HAS(buf, "grokwatch_layer_dead_experts{run=\"r1\",layer=\"1\"} 1\n");
	CHECK_STR_HAS(buf, "grokwatch_expert_load{run=\"r1\",layer=\"0\",expert=\"1\"} 0.75\n");
	CHECK_STR_HAS(buf, "grokwatch_alerts{alertname=\"routing_collapse\",alertstate=\"firing\","
			   "group=\"all\",metric=\"max_imbalance\",run=\"r1\"} 1\n");
	CHECK(!strstr(buf, "alertname=\"grokking\"")); /* resolved */
	CHECK_STR_HAS(buf, "grokwatch_daemon_pending{run=\"r1\",endpoint=\"e0\"} 2\n");
	CHECK_STR_HAS(buf, "grokwatch_daemon_failures{run=\"r1\",endpoint=\"e0\"} 3\n");
	/* Each family once, its samples together. */
	CHECK(strstr(buf, "# TYPE grokwatch_pathway_distance gauge") ==
	      strstr(buf, "# TYPE grokwatch_pathway_distance "));
	free(buf);
	board_free(b);
}

static void test_board_two_runs(void)
{
	const char *eps[] = { "e0", "e1" };
	const char *r2 = "{\"type\":\"metrics\",\"run\":\"r2\",\"step\":5,\"groups\":{\"code\":"
			 "{\"pathway_distance\":0.5}}}";
	struct board *b;
	struct gw_msg *m;
	char *buf = NULL;
	size_t len = 0, d;
	FILE *f;

	CHECK_INT_EQ(board_new(2, eps, &b), 0);
	free(apply(b, RESULT("1000", "1", "9", "4", "3")));
	/* gw_msg_parse's messages are daemon 0: make one daemon 1's. */
	m = msg(r2);
	m->daemon = 1;
	f = open_memstream(&buf, &len);
	CHECK_INT_EQ(board_apply(b, m, f), 0);
	fclose(f);
	free(buf);
	gw_msg_free(m);
	CHECK_INT_EQ(board_find_run(b, "r2", &d), 0);
	CHECK_INT_EQ(d, 1);
	CHECK_INT_EQ(board_find_run(b, "r3", &d), -ENOENT);
	buf = NULL;
	f = open_memstream(&buf, &len);
	board_prometheus(b, f);
	fclose(f);
	CHECK_STR_HAS(buf, "grokwatch_pathway_distance{run=\"r1\",group=\"math\"} 9\n"
			   "grokwatch_pathway_distance{run=\"r1\",group=\"all\"} 1.5\n"
			   "grokwatch_pathway_distance{run=\"r2\",group=\"code\"} 0.5\n");
	free(buf);
	board_free(b);
}

static const struct tap_test tests[] = {
	{ "api_routes", test_api_routes },
	{ "api_refusals", test_api_refusals },
	{ "emit", test_emit },
	{ "board_rows", test_board_rows },
	{ "board_memo", test_board_memo },
	{ "board_alerts", test_board_alerts },
	{ "board_two_runs", test_board_two_runs },
	{ NULL, NULL },
};

TAP_MAIN(tests)
