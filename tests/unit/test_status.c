/* test_status.c — the status object and STATUS= line (status.h): idle
 * and computing, the last five failures, the optional fields. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "../tap.h"
#include "status.h"

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	if (!cJSON_IsNumber(v))
		tap_fail(__FILE__, __LINE__, "field %s is not a number", k);
	return v->valuedouble;
}

static void test_idle(void)
{
	struct series *res = series_new(), *fail = series_new();
	struct status_info in = { .root = "/ck", .results = res, .failures = fail };
	char line[256];
	cJSON *s = status_json(&in);

	CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(s, "state")), "idle");
	CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(s, "watch_mode")), "none");
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(s, "job")));
	CHECK(cJSON_IsNull(cJSON_GetObjectItem(s, "last_step")));
	CHECK_INT_EQ(num(s, "results"), 0);
	CHECK(cJSON_GetObjectItem(s, "probe_hash") == NULL);
	CHECK(cJSON_GetObjectItem(s, "alerts") == NULL);
	status_line(&in, line, sizeof(line));
	CHECK_STR_EQ(line, "watching /ck (-); 0 results, 0 failed");
	cJSON_Delete(s);
	series_free(res);
	series_free(fail);
}

static void test_computing_with_failures(void)
{
	struct series *res = series_new(), *fail = series_new();
	struct job *j = job_new("step30", "/ck/step30", NULL, 30);
	struct status_info in = {
		.root = "/ck", .watch_mode = "events", .pending = 2, .queued = 3, .job = j,
		.running_sec = 1.5, .results = res, .failures = fail, .probe_hash = "abc",
	};
	char line[256];
	const cJSON *f;
	cJSON *s;

	series_put(res, 10, cJSON_Parse("{\"step\":10}"));
	series_put(res, 20, cJSON_Parse("{\"step\":20}"));
	for (int k = 1; k <= 7; k++) {
		char buf[64];

		snprintf(buf, sizeof(buf), "{\"step\":%d,\"reason\":\"r%d\"}", k, k);
		series_put(fail, k, cJSON_Parse(buf));
	}
	atomic_store(&j->layers_done, 1);
	atomic_store(&j->n_layers, 4);
	s = status_json(&in);
	CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(s, "state")), "computing");
	CHECK_INT_EQ(num(s, "pending"), 2);
	/* No watcher given: an empty list of pending directories. */
	CHECK(cJSON_IsArray(cJSON_GetObjectItem(s, "pending_dirs")) &&
	      cJSON_GetArraySize(cJSON_GetObjectItem(s, "pending_dirs")) == 0);
	CHECK_INT_EQ(num(s, "queue"), 3);
	CHECK_INT_EQ(num(cJSON_GetObjectItem(s, "job"), "step"), 30);
	CHECK_INT_EQ(num(cJSON_GetObjectItem(s, "job"), "layers_done"), 1);
	CHECK_NEAR(num(cJSON_GetObjectItem(s, "job"), "running_sec"), 1.5, 0);
	CHECK_INT_EQ(num(s, "last_step"), 20);
	CHECK_INT_EQ(num(s, "failures"), 7);
	f = cJSON_GetObjectItem(s, "failed");
	CHECK_INT_EQ(cJSON_GetArraySize(f), 5);
	CHECK_INT_EQ(num(cJSON_GetArrayItem(f, 0), "step"), 3);
	CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(f, 4), "reason")),
		     "r7");
	CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(s, "probe_hash")), "abc");
	status_line(&in, line, sizeof(line));
	CHECK_STR_EQ(line, "computing step 30 (layer 1/4); 3 queued, 2 results");
	in.stopping = true;
	cJSON_Delete(s);
	s = status_json(&in);
	CHECK_STR_EQ(cJSON_GetStringValue(cJSON_GetObjectItem(s, "state")), "stopping");
	cJSON_Delete(s);
	job_free(j);
	series_free(res);
	series_free(fail);
}

static const struct tap_test tests[] = {
	{ "idle", test_idle },
	{ "computing_with_failures", test_computing_with_failures },
	{ NULL, NULL },
};
TAP_MAIN(tests)
