/* test_config.c — the daemon's config table and reader: the shipped file
 * against the table, values, and every refusal with its key path and line. */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../tap.h"
#include "config.h"
#include "engine/metrics.h"

static struct config *parse_ok(const char *text)
{
	struct config *c = NULL;
	struct gw_err e = { "" };
	int r = config_parse("t.json", text, strlen(text), &c, &e);

	if (r != 0)
		tap_fail(__FILE__, __LINE__, "config_parse: %d %s", r, e.msg);
	return c;
}

/* Parse text expected to be refused; returns the message (static). */
static const char *parse_bad(const char *text, int code)
{
	static struct gw_err e;
	struct config *c = (struct config *)&e; /* must stay untouched */
	int r = config_parse("t.json", text, strlen(text), &c, &e);

	CHECK_INT_EQ(r, code);
	CHECK(c == (struct config *)&e);
	return e.msg;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = malloc(1 << 20);
	size_t n;

	if (!f)
		tap_fail(__FILE__, __LINE__, "open %s", path);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static const char *shipped_path(void)
{
	static char path[1024];
	const char *src = getenv("GW_SRC");

	snprintf(path, sizeof(path), "%s/config/grokwatchd.json", src && *src ? src : ".");
	return path;
}

static int count_leaves(const cJSON *n)
{
	int k = 0;

	if (!cJSON_IsObject(n))
		return 1;
	for (const cJSON *c = n->child; c; c = c->next)
		k += count_leaves(c);
	return k;
}

static const cJSON *at_path(const cJSON *root, const char *path)
{
	char buf[256], *p = buf, *dot;
	const cJSON *n = root;

	snprintf(buf, sizeof(buf), "%s", path);
	while (n && (dot = strchr(p, '.'))) {
		*dot = 0;
		n = cJSON_GetObjectItemCaseSensitive(n, p);
		p = dot + 1;
	}
	return n ? cJSON_GetObjectItemCaseSensitive(n, p) : NULL;
}

/* The shipped file and the table agree: every key at its default, no
 * other key, and the file loads. */
static void test_shipped_file_matches_table(void)
{
	char *text = slurp(shipped_path());
	cJSON *root = cJSON_Parse(text);
	struct config *c = NULL;
	struct gw_err e;
	int nkeys = 0;

	CHECK(root != NULL);
	for (const struct config_key *k = config_keys; k->path; k++, nkeys++) {
		const cJSON *v = at_path(root, k->path);

		if (!v)
			tap_fail(__FILE__, __LINE__, "key %s missing from the shipped file", k->path);
		switch (k->type) {
		case CONFIG_STRING:
		case CONFIG_ENUM:
			CHECK(cJSON_IsString(v));
			CHECK_STR_EQ(v->valuestring, k->def_str ? k->def_str : "");
			break;
		case CONFIG_INT:
		case CONFIG_DOUBLE:
			CHECK(cJSON_IsNumber(v));
			if (v->valuedouble != k->def_num)
				tap_fail(__FILE__, __LINE__, "%s: file %.17g, table %.17g", k->path,
					 v->valuedouble, k->def_num);
			break;
		case CONFIG_BOOL:
			CHECK(cJSON_IsBool(v));
			CHECK_INT_EQ(cJSON_IsTrue(v), k->def_num != 0);
			break;
		case CONFIG_STRING_ARRAY: {
			int i = 0;

			CHECK(cJSON_IsArray(v));
			for (; k->def_strv && k->def_strv[i]; i++)
				CHECK_STR_EQ(cJSON_GetArrayItem(v, i)->valuestring, k->def_strv[i]);
			CHECK_INT_EQ(cJSON_GetArraySize(v), i);
			break;
		}
		case CONFIG_OBJECT_ARRAY:
			CHECK(cJSON_IsArray(v));
			CHECK_INT_EQ(cJSON_GetArraySize(v), 0);
			break;
		}
	}
	CHECK_INT_EQ(count_leaves(root), nkeys);
	CHECK_INT_EQ(config_load(shipped_path(), &c, &e), 0);
	/* And the values SPEC.md and the issue name. */
	CHECK_NEAR(c->metrics.tau, 0.7, 0);
	CHECK_INT_EQ(c->metrics.pair_budget, 2000000);
	CHECK_NEAR(c->metrics.delta, 0.05, 0);
	CHECK_STR_EQ(c->publish.endpoint, "tcp://127.0.0.1:5557");
	CHECK_STR_EQ(c->publish.query_endpoint, "tcp://127.0.0.1:5558");
	CHECK_INT_EQ(c->watch.mode, CONFIG_WATCH_AUTO);
	CHECK_INT_EQ(c->limits.journal_bytes, 4294967296LL);
	config_free(c);
	cJSON_Delete(root);
	free(text);
}

static void test_defaults_and_values(void)
{
	struct config *c = parse_ok(
		"{\"run\": \"olmoe-7b\", \"watch\": {\"root\": \"/ckpt\", \"patterns\": [\"iter_{step}\"],\n"
		" \"mode\": \"poll\", \"quiet_period_ms\": 250, \"step_from_trainer_state\": false},\n"
		" \"probe\": {\"format\": \"u32\", \"offset\": 123456789012},\n"
		" \"metrics\": {\"tau\": 0.5, \"epsilon\": 2.5, \"epsilon_groups\": [\n"
		"   {\"group\": \"math\", \"epsilon\": 0.25}, {\"epsilon\": 3, \"group\": \"code\"}]},\n"
		" \"publish\": {\"curve\": {\"server_secret_key_file\": \"/k\"}}}");

	CHECK_STR_EQ(c->run, "olmoe-7b");
	CHECK_STR_EQ(c->watch.root, "/ckpt");
	CHECK_INT_EQ(c->watch.patterns.n, 1);
	CHECK_STR_EQ(c->watch.patterns.v[0], "iter_{step}");
	CHECK_INT_EQ(c->watch.mode, CONFIG_WATCH_POLL);
	CHECK_INT_EQ(c->watch.quiet_period_ms, 250);
	CHECK(!c->watch.step_from_trainer_state);
	CHECK_INT_EQ(c->probe.format, CONFIG_PROBE_U32);
	CHECK_INT_EQ(c->probe.offset, 123456789012LL);
	CHECK_NEAR(c->metrics.tau, 0.5, 0);
	CHECK_NEAR(config_epsilon_for(c, "math"), 0.25, 0);
	CHECK_NEAR(config_epsilon_for(c, "code"), 3, 0);
	CHECK_NEAR(config_epsilon_for(c, "web"), 2.5, 0);
	CHECK_NEAR(c->metrics.memorized_share, 0.2, 0);
	CHECK_NEAR(c->metrics.consistency_floor, 0.05, 0);
	CHECK_STR_EQ(c->publish.curve.server_secret_key_file, "/k");
	/* untouched keys keep their defaults */
	CHECK_INT_EQ(c->probe.sample_length, 512);
	CHECK_STR_EQ(c->state_dir, "/var/lib/grokwatch");
	CHECK_INT_EQ(c->watch.poll_interval_ms, 2000);
	config_free(c);
}

/* metrics.epsilon (and a group's) takes "auto" besides a number; no other
 * word, and no number outside its bounds. */
static void test_epsilon_auto(void)
{
	struct config *c = parse_ok(
		"{\"metrics\": {\"epsilon\": \"auto\", \"memorized_share\": 0.25,\n"
		" \"consistency_floor\": 0.1, \"epsilon_groups\": [{\"group\": \"math\", \"epsilon\": 0.5},\n"
		" {\"group\": \"code\", \"epsilon\": \"auto\"}]}}");

	CHECK(c->metrics.epsilon == METRICS_EPSILON_AUTO);
	CHECK_NEAR(config_epsilon_for(c, "math"), 0.5, 0);
	CHECK(config_epsilon_for(c, "code") == METRICS_EPSILON_AUTO);
	CHECK(config_epsilon_for(c, "web") == METRICS_EPSILON_AUTO);
	CHECK_NEAR(c->metrics.memorized_share, 0.25, 0);
	CHECK_NEAR(c->metrics.consistency_floor, 0.1, 0);
	config_free(c);
	CHECK_STR_EQ(parse_bad("{\"metrics\": {\n\"epsilon\": \"automatic\"}}", -EINVAL),
		     "\"t.json\" line 2: metrics.epsilon: expected a number or \"auto\", got "
		     "\"automatic\"");
	CHECK_STR_EQ(parse_bad("{\"metrics\": {\"epsilon\": -1}}", -EINVAL),
		     "\"t.json\" line 1: metrics.epsilon: -1 is below the minimum 0");
	CHECK_STR_EQ(parse_bad("{\"metrics\": {\"epsilon\": true}}", -EINVAL),
		     "\"t.json\" line 1: metrics.epsilon: expected a number, got a boolean");
	CHECK_STR_EQ(parse_bad("{\"metrics\": {\"epsilon_groups\": [{\"group\": \"m\",\n"
			       "\"epsilon\": \"Auto\"}]}}", -EINVAL),
		     "\"t.json\" line 2: metrics.epsilon_groups[0].epsilon: expected a number or "
		     "\"auto\", got \"Auto\"");
	CHECK_STR_EQ(parse_bad("{\"metrics\": {\"memorized_share\": 0}}", -EINVAL),
		     "\"t.json\" line 1: metrics.memorized_share: 0 is below the minimum 0.001");
	CHECK_STR_EQ(parse_bad("{\"metrics\": {\"consistency_floor\": 1}}", -EINVAL),
		     "\"t.json\" line 1: metrics.consistency_floor: 1 is above the maximum 0.5");
}

/* alerts.alertmanager: URLs, timing, and the auth keys that go together. */
static void test_alertmanager_keys(void)
{
	struct config *c = parse_ok(
		"{\"alerts\": {\"alertmanager\": {\"urls\": [\"http://127.0.0.1:9093\",\n"
		" \"https://am.example/prefix/\"], \"resend_ms\": 2000, \"user\": \"gw\",\n"
		" \"password_file\": \"/etc/pw\"}}}");

	CHECK_INT_EQ(c->alerts.alertmanager.urls.n, 2);
	CHECK_STR_EQ(c->alerts.alertmanager.urls.v[1], "https://am.example/prefix/");
	CHECK_INT_EQ(c->alerts.alertmanager.resend_ms, 2000);
	CHECK_INT_EQ(c->alerts.alertmanager.timeout_ms, 10000);
	CHECK_STR_EQ(c->alerts.alertmanager.user, "gw");
	config_free(c);
	c = parse_ok("{}");
	CHECK_INT_EQ(c->alerts.alertmanager.urls.n, 0);
	CHECK_INT_EQ(c->alerts.alertmanager.resend_ms, 60000);
	config_free(c);
	CHECK_STR_EQ(parse_bad("{\"alerts\": {\"alertmanager\": {\"urls\": [\n"
			       "\"127.0.0.1:9093\"]}}}", -EINVAL),
		     "\"t.json\" line 2: alerts.alertmanager.urls[0]: \"127.0.0.1:9093\" is not an "
		     "http:// or https:// URL");
	CHECK_STR_EQ(parse_bad("{\"alerts\": {\"alertmanager\": {\"urls\": "
			       "[\"http://a/?x=1\"]}}}", -EINVAL),
		     "\"t.json\" line 1: alerts.alertmanager.urls[0]: \"http://a/?x=1\": a base URL "
		     "has no query, fragment or spaces");
	CHECK_STR_EQ(parse_bad("{\"alerts\": {\"alertmanager\": {\"resend_ms\": 10}}}", -EINVAL),
		     "\"t.json\" line 1: alerts.alertmanager.resend_ms: 10 is below the minimum 100");
	CHECK_STR_EQ(parse_bad("{\"alerts\": {\"alertmanager\": {\n\"user\": \"gw\"}}}", -EINVAL),
		     "\"t.json\" line 2: alerts.alertmanager: user and password_file go together");
	CHECK_STR_EQ(parse_bad("{\"alerts\": {\"alertmanager\": {\"user\": \"gw\", \"password_file\": "
			       "\"/p\",\n\"bearer_token_file\": \"/t\"}}}", -EINVAL),
		     "\"t.json\" line 2: alerts.alertmanager.bearer_token_file: not with basic auth "
		     "(user)");
}

static void test_unknown_key_path_and_line(void)
{
	CHECK_STR_EQ(parse_bad("{\n  \"watch\": {\n    \"root\": \"/x\",\n    \"rot\": 1\n  }\n}", -EINVAL),
		     "\"t.json\" line 4: unknown key \"watch.rot\"");
	CHECK_STR_EQ(parse_bad("{\"run\": \"a\",\n\"bogus\": {}}", -EINVAL),
		     "\"t.json\" line 2: unknown key \"bogus\"");
	/* A dotted name is not a way around the nesting. */
	CHECK_STR_EQ(parse_bad("{\"watch.root\": \"/x\"}", -EINVAL),
		     "\"t.json\" line 1: unknown key \"watch.root\"");
	CHECK_STR_EQ(parse_bad("{\"metrics\": {\"epsilon_groups\": [\n{\"group\": \"m\", \"epsilon\": 1,\n"
			       " \"eps\": 2}]}}", -EINVAL),
		     "\"t.json\" line 3: unknown key \"metrics.epsilon_groups[0].eps\"");
	/* A section name used as a leaf, and a leaf used as a section. */
	CHECK_STR_EQ(parse_bad("{\"watch\": 5}", -EINVAL),
		     "\"t.json\" line 1: watch: expected an object, got a number");
	CHECK_STR_EQ(parse_bad("{\"watch\": {\"root\": {\"x\": 1}}}", -EINVAL),
		     "\"t.json\" line 1: watch.root: expected a string, got an object");
}

/* Lines stay right past strings holding braces, quotes, escapes and raw
 * newlines, and after a byte order mark. */
static void test_line_numbers_are_robust(void)
{
	const char *t = "\xEF\xBB\xBF{\"run\": \"r\",\n"
			"\"watch\": {\"root\": \"a{b}[c],\\\"d\\\\\", \"marker\": \"x\\ny\",\n"
			"\n"
			"\"patterns\": [\"step{step}\",\n\"it{step}\"], \"modee\": 1}}";

	CHECK_STR_EQ(parse_bad(t, -EINVAL), "\"t.json\" line 5: unknown key \"watch.modee\"");
	CHECK_STR_EQ(parse_bad("{\"watch\": {\"patterns\": [\"step{step}\",\n\n\"bad\"]}}", -EINVAL),
		     "\"t.json\" line 3: watch.patterns[1]: pattern \"bad\" has no {step}");
}

static void test_wrong_type(void)
{
	CHECK_STR_EQ(parse_bad("{\"watch\": {\n\"quiet_period_ms\": \"5s\"}}", -EINVAL),
		     "\"t.json\" line 2: watch.quiet_period_ms: expected an integer, got a string");
	CHECK_STR_EQ(parse_bad("{\"watch\": {\"quiet_period_ms\": 1.5}}", -EINVAL),
		     "\"t.json\" line 1: watch.quiet_period_ms: expected an integer, got 1.5");
	CHECK_STR_EQ(parse_bad("{\"metrics\": {\"tau\": true}}", -EINVAL),
		     "\"t.json\" line 1: metrics.tau: expected a number, got a boolean");
	CHECK_STR_EQ(parse_bad("{\"watch\": {\"step_from_trainer_state\": 1}}", -EINVAL),
		     "\"t.json\" line 1: watch.step_from_trainer_state: expected true or false, got a number");
	CHECK_STR_EQ(parse_bad("{\"watch\": {\"patterns\": \"step{step}\"}}", -EINVAL),
		     "\"t.json\" line 1: watch.patterns: expected an array, got a string");
	CHECK_STR_EQ(parse_bad("{\"watch\": {\"patterns\": [\"step{step}\", 3]}}", -EINVAL),
		     "\"t.json\" line 1: watch.patterns[1]: expected a string, got a number");
	CHECK_STR_EQ(parse_bad("{\"run\": null}", -EINVAL),
		     "\"t.json\" line 1: run: expected a string, got null");
	CHECK_STR_EQ(parse_bad("[1, 2]", -EINVAL), "\"t.json\" line 1: expected a JSON object, got an array");
}

static void test_out_of_range(void)
{
	CHECK_STR_EQ(parse_bad("{\n\"watch\": {\"quiet_period_ms\": -5}}", -EINVAL),
		     "\"t.json\" line 2: watch.quiet_period_ms: -5 is below the minimum 0");
	CHECK_STR_EQ(parse_bad("{\"metrics\": {\"tau\": 1.5}}", -EINVAL),
		     "\"t.json\" line 1: metrics.tau: 1.5 is above the maximum 1");
	CHECK_STR_EQ(parse_bad("{\"probe\": {\"sample_length\": 0}}", -EINVAL),
		     "\"t.json\" line 1: probe.sample_length: 0 is below the minimum 1");
	CHECK_STR_EQ(parse_bad("{\"metrics\": {\"seed\": 1e300}}", -EINVAL),
		     "\"t.json\" line 1: metrics.seed: 1.0000000000000001e+300 is above the maximum 9007199254740992");
	CHECK_STR_EQ(parse_bad("{\"metrics\": {\"delta\": 1e999}}", -EINVAL),
		     "\"t.json\" line 1: metrics.delta: the number is out of range");
	CHECK_STR_EQ(parse_bad("{\"run\": \"has space\"}", -EINVAL),
		     "\"t.json\" line 1: run: \"has space\" may hold only letters, digits, '.', '_' and '-'");
	CHECK_STR_EQ(parse_bad("{\"probe\": {\"group\": \"\"}}", -EINVAL),
		     "\"t.json\" line 1: probe.group: must not be empty");
	CHECK_STR_EQ(parse_bad("{\"watch\": {\"patterns\": []}}", -EINVAL),
		     "\"t.json\" line 1: watch.patterns: must not be empty");
	CHECK_STR_EQ(parse_bad("{\"watch\": {\"marker\": \"../done\"}}", -EINVAL),
		     "\"t.json\" line 1: watch.marker: \"../done\" must not leave the checkpoint directory");

	/* Bounds on counts and lengths. */
	{
		char big[8192] = "{\"watch\": {\"patterns\": [";
		size_t n = strlen(big);

		for (int i = 0; i < 33; i++)
			n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"s{step}\"", i ? "," : "");
		snprintf(big + n, sizeof(big) - n, "]}}");
		CHECK_STR_EQ(parse_bad(big, -EINVAL),
			     "\"t.json\" line 1: watch.patterns: 33 entries, more than the maximum 32");
	}
}

static void test_bad_enum(void)
{
	CHECK_STR_EQ(parse_bad("{\"watch\": {\"mode\": \"inotify\"}}", -EINVAL),
		     "\"t.json\" line 1: watch.mode: \"inotify\" is not one of auto, events, poll");
	CHECK_STR_EQ(parse_bad("{\"probe\": {\"format\": \"U16\"}}", -EINVAL),
		     "\"t.json\" line 1: probe.format: \"U16\" is not one of jsonl, u16, u32");
}

static void test_not_json_names_line(void)
{
	CHECK_STR_EQ(parse_bad("{\n  \"run\": \"a\"\n  \"state_dir\": \"/s\"\n}", -EINVAL),
		     "\"t.json\" line 3: not valid JSON");
	CHECK_STR_EQ(parse_bad("{\n\"run\": \"a\",\n}", -EINVAL), "\"t.json\" line 3: not valid JSON");
	CHECK_STR_EQ(parse_bad("{\"run\": \"a\"}\n\n{}", -EINVAL),
		     "\"t.json\" line 3: text after the end of the JSON object");
	CHECK_STR_EQ(parse_bad("// comment\n{}", -EINVAL), "\"t.json\" line 1: not valid JSON");
	{
		static const char with_nul[] = "{\"run\":\n\"a\0b\"}";
		struct gw_err e;
		struct config *c = NULL;

		CHECK_INT_EQ(config_parse("t.json", with_nul, sizeof(with_nul) - 1, &c, &e), -EINVAL);
		CHECK_STR_EQ(e.msg, "\"t.json\" line 2: a NUL byte");
	}
}

static void test_duplicate_key(void)
{
	CHECK_STR_EQ(parse_bad("{\"watch\": {\n\"root\": \"/a\",\n\"mode\": \"poll\",\n\"root\": \"/b\"}}", -EINVAL),
		     "\"t.json\" line 4: duplicate key \"watch.root\" (first on line 2)");
	CHECK_STR_EQ(parse_bad("{\"watch\": {}, \"run\": \"x\",\n\"watch\": {}}", -EINVAL),
		     "\"t.json\" line 2: duplicate key \"watch\" (first on line 1)");
	CHECK_STR_EQ(parse_bad("{\"metrics\": {\"epsilon_groups\": [{\"group\": \"m\", \"epsilon\": 1},\n"
			       "{\"group\": \"m\", \"epsilon\": 2}]}}", -EINVAL),
		     "\"t.json\" line 2: metrics.epsilon_groups[1]: group \"m\" is also entry 0");
	CHECK_STR_EQ(parse_bad("{\"metrics\": {\"epsilon_groups\": [\n{\"group\": \"m\"}]}}", -EINVAL),
		     "\"t.json\" line 2: metrics.epsilon_groups[0]: \"epsilon\" is missing");
}

static void test_files(void)
{
	struct config *c = NULL;
	struct gw_err e;
	char path[600], *big;

	snprintf(path, sizeof(path), "%s/absent.json", tap_tmpdir());
	CHECK_INT_EQ(config_load(path, &c, &e), -ENOENT);
	CHECK_STR_HAS(e.msg, "absent.json\": No such file or directory");
	CHECK(c == NULL);

	CHECK_INT_EQ(config_load(tap_write_file("empty.json", "", 0), &c, &e), -EINVAL);
	CHECK_STR_HAS(e.msg, "empty.json\": is empty");
	CHECK_INT_EQ(config_load(tap_write_file("blank.json", " \n\t\n", 4), &c, &e), -EINVAL);
	CHECK_STR_HAS(e.msg, "blank.json\": is empty");

	big = malloc(CONFIG_FILE_MAX + 1);
	memset(big, ' ', CONFIG_FILE_MAX + 1);
	big[0] = '{';
	big[CONFIG_FILE_MAX] = '}';
	CHECK_INT_EQ(config_load(tap_write_file("big.json", big, CONFIG_FILE_MAX + 1), &c, &e), -EFBIG);
	CHECK_STR_HAS(e.msg, "big.json\": 1048577 bytes, more than the limit of 1048576");
	/* ...and exactly at the limit it is fine. */
	big[CONFIG_FILE_MAX - 1] = '}';
	CHECK_INT_EQ(config_load(tap_write_file("max.json", big, CONFIG_FILE_MAX), &c, &e), 0);
	config_free(c);
	free(big);

	CHECK_INT_EQ(config_load(tap_tmpdir(), &c, &e), -EINVAL);
	CHECK_STR_HAS(e.msg, "not a regular file");

	CHECK_INT_EQ(config_load(tap_write_file("bad.json", "{\n\n\"x\": 1}", 10), &c, &e), -EINVAL);
	CHECK_STR_HAS(e.msg, "/bad.json\" line 3: unknown key \"x\"");
}

static void test_remote_endpoint_needs_curve(void)
{
	struct config *c;

	CHECK_STR_EQ(parse_bad("{\"publish\": {\n\"endpoint\": \"tcp://*:5557\"}}", -EINVAL),
		     "\"t.json\" line 2: publish.endpoint: \"tcp://*:5557\" is reachable from other hosts "
		     "and CURVE is off; set publish.curve.server_secret_key_file, or "
		     "publish.allow_insecure_remote to publish in clear text");
	CHECK_STR_HAS(parse_bad("{\"publish\": {\"query_endpoint\": \"tcp://10.0.0.1:1\"}}", -EINVAL),
		      "line 1: publish.query_endpoint: \"tcp://10.0.0.1:1\" is reachable");
	c = parse_ok("{\"publish\": {\"endpoint\": \"tcp://*:5557\", \"allow_insecure_remote\": true}}");
	config_free(c);
	c = parse_ok("{\"publish\": {\"endpoint\": \"tcp://0.0.0.0:5557\", "
		     "\"curve\": {\"server_secret_key_file\": \"/etc/k\"}}}");
	config_free(c);
	CHECK_STR_HAS(parse_bad("{\"publish\": {\"endpoint\": \"udp://x:1\"}}", -EINVAL),
		      "publish.endpoint: \"udp://x:1\" is not a tcp://HOST:PORT or ipc://PATH endpoint");
	CHECK_STR_HAS(parse_bad("{\"publish\": {\"query_endpoint\": \"tcp://127.0.0.1:5557\"}}", -EINVAL),
		      "publish.query_endpoint: \"tcp://127.0.0.1:5557\" is also publish.endpoint");
	CHECK_STR_HAS(parse_bad("{\"publish\": {\"curve\": {\"server_public_key_file\": \"/p\"}}}", -EINVAL),
		      "set without publish.curve.server_secret_key_file");
	CHECK_STR_HAS(parse_bad("{\"jobs\": {\"retry_backoff_ms\": 9000, \"retry_backoff_max_ms\": 10}}", -EINVAL),
		      "jobs.retry_backoff_max_ms: 10 is less than jobs.retry_backoff_ms 9000");
}

struct seen {
	char keys[8][64];
	bool restart[8];
	int n;
};

static void on_change(void *ud, const char *path, bool restart)
{
	struct seen *s = ud;

	if (s->n < 8) {
		snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", path);
		s->restart[s->n++] = restart;
	}
}

static void test_diff(void)
{
	struct config *a = parse_ok("{\"watch\": {\"root\": \"/a\", \"quiet_period_ms\": 100}}");
	struct config *b = parse_ok("{\"log_level\": \"debug\", \"watch\": {\"root\": \"/b\", "
				    "\"quiet_period_ms\": 100}, \"metrics\": {\"epsilon_groups\": "
				    "[{\"group\": \"m\", \"epsilon\": 1}]}}");
	struct config *a2 = parse_ok("{\"watch\": {\"quiet_period_ms\": 100, \"root\": \"/a\"}}");
	struct seen s = { .n = 0 };

	CHECK_INT_EQ(config_diff(a, a2, on_change, &s), 0);
	CHECK_INT_EQ(s.n, 0);
	CHECK_INT_EQ(config_diff(a, b, on_change, &s), 2);
	CHECK_INT_EQ(s.n, 3);
	CHECK_STR_EQ(s.keys[0], "log_level");
	CHECK(!s.restart[0]);
	CHECK_STR_EQ(s.keys[1], "watch.root");
	CHECK(s.restart[1]);
	CHECK_STR_EQ(s.keys[2], "metrics.epsilon_groups");
	CHECK(s.restart[2]);
	config_free(a);
	config_free(a2);
	config_free(b);
}

/* The alerts section: defaults, nested object arrays (a string array inside
 * each hook), and the refusals of its checks. */
static void test_alerts(void)
{
	struct config *c = config_new_defaults();
	const struct config_plateau *pl;
	const struct config_hook *h;

	CHECK(c->alerts.enabled);
	CHECK_STR_EQ(c->alerts.loss.metric, "loss");
	CHECK_STR_EQ(c->alerts.distance.metric, "pathway_distance");
	CHECK_INT_EQ(c->alerts.loss.mode, CONFIG_PLATEAU_MIN);
	CHECK_INT_EQ(c->alerts.distance.threshold_mode, CONFIG_THRESHOLD_REL);
	CHECK_INT_EQ(c->alerts.loss.patience, 5);
	CHECK_INT_EQ(c->alerts.hooks.n, 0);
	CHECK_INT_EQ(c->alerts.hook_concurrency, 4);
	config_free(c);

	c = parse_ok("{\"alerts\": {\"distance\": {\"metric\": \"memorized.pathway_distance\",\n"
		     " \"threshold_mode\": \"abs\", \"threshold\": 0.5},\n"
		     " \"plateaus\": [{\"metric\": \"pathway_consistency\", \"mode\": \"max\",\n"
		     "  \"threshold\": 0.02, \"threshold_mode\": \"abs\", \"patience\": 3,\n"
		     "  \"cooldown\": 1, \"min_checkpoints\": 4}],\n"
		     " \"hooks\": [{\"alert\": \"grokking\", \"argv\": [\"/bin/echo\", \"a b\", \"\"]},\n"
		     "  {\"alert\": \"*\", \"argv\": [\"hook\"]}]}}");
	CHECK_STR_EQ(c->alerts.distance.metric, "memorized.pathway_distance");
	CHECK_INT_EQ(c->alerts.distance.threshold_mode, CONFIG_THRESHOLD_ABS);
	CHECK_NEAR(c->alerts.distance.threshold, 0.5, 0);
	CHECK_INT_EQ(c->alerts.distance.patience, 5);
	CHECK_INT_EQ(c->alerts.plateaus.n, 1);
	pl = c->alerts.plateaus.v;
	CHECK_STR_EQ(pl->metric, "pathway_consistency");
	CHECK_INT_EQ(pl->mode, CONFIG_PLATEAU_MAX);
	CHECK_INT_EQ(pl->threshold_mode, CONFIG_THRESHOLD_ABS);
	CHECK_NEAR(pl->threshold, 0.02, 0);
	CHECK_INT_EQ(pl->patience, 3);
	CHECK_INT_EQ(pl->cooldown, 1);
	CHECK_INT_EQ(pl->min_checkpoints, 4);
	CHECK_INT_EQ(c->alerts.hooks.n, 2);
	h = c->alerts.hooks.v;
	CHECK_STR_EQ(h[0].alert, "grokking");
	CHECK_INT_EQ(h[0].argv.n, 3);
	CHECK_STR_EQ(h[0].argv.v[0], "/bin/echo");
	CHECK_STR_EQ(h[0].argv.v[1], "a b");
	CHECK_STR_EQ(h[0].argv.v[2], "");
	CHECK_STR_EQ(h[1].alert, "*");
	CHECK_STR_EQ(h[1].argv.v[0], "hook");
	config_free(c);

	/* threshold_mode se: only for a metric with a standard error */
	c = parse_ok("{\"alerts\": {\"distance\": {\"metric\": \"memorized.pathway_distance\",\n"
		     " \"threshold_mode\": \"se\", \"threshold\": 2}}}");
	CHECK_INT_EQ(c->alerts.distance.threshold_mode, CONFIG_THRESHOLD_SE);
	config_free(c);
	CHECK_STR_EQ(parse_bad("{\"alerts\": {\"loss\": {\n\"threshold_mode\": \"se\"}}}", -EINVAL),
		     "\"t.json\" line 2: alerts.loss.threshold_mode: \"se\" needs a metric with a "
		     "standard error (pathway_distance, memorized.pathway_distance); \"loss\" has none");
	CHECK_STR_HAS(parse_bad("{\"alerts\": {\"plateaus\": [{\"metric\": \"pathway_consistency\", "
				"\"mode\": \"max\", \"threshold\": 2, \"threshold_mode\": \"se\", "
				"\"patience\": 1, \"cooldown\": 0, \"min_checkpoints\": 0}]}}", -EINVAL),
		      "alerts.plateaus[0].threshold_mode: \"se\" needs a metric with a standard error");
	CHECK_STR_EQ(parse_bad("{\"alerts\": {\"loss\": {\n\"metric\": \"loss..x\"}}}", -EINVAL),
		     "\"t.json\" line 2: alerts.loss.metric: \"loss..x\" is not a metric path "
		     "(names of letters, digits and '_' joined by dots)");
	CHECK_STR_HAS(parse_bad("{\"alerts\": {\"loss\": {\"metric\": \"loss.\"}}}", -EINVAL),
		      "is not a metric path (empty name)");
	CHECK_STR_HAS(parse_bad("{\"alerts\": {\"loss\": {\"metric\": \".loss\"}}}", -EINVAL),
		      "is not a metric path");
	CHECK_STR_HAS(parse_bad("{\"alerts\": {\"loss\": {\"mode\": \"min\"}}}", -EINVAL),
		      "unknown key \"alerts.loss.mode\"");
	CHECK_STR_EQ(parse_bad("{\"alerts\": {\"loss\": {\"patience\": -1}}}", -EINVAL),
		     "\"t.json\" line 1: alerts.loss.patience: -1 is below the minimum 0");
	CHECK_STR_EQ(parse_bad("{\"alerts\": {\"plateaus\": [\n{\"metric\": \"loss\", \"mode\": "
			       "\"max\"}]}}", -EINVAL),
		     "\"t.json\" line 2: alerts.plateaus[0]: \"threshold\" is missing");
	CHECK_STR_HAS(parse_bad("{\"alerts\": {\"plateaus\": [{\"metric\": \"loss\", \"mode\": "
				"\"down\", \"threshold\": 0, \"threshold_mode\": \"rel\", \"patience\": 1, "
				"\"cooldown\": 0, \"min_checkpoints\": 0}]}}", -EINVAL),
		      "alerts.plateaus[0].mode: \"down\" is not one of min, max");
	CHECK_STR_EQ(parse_bad("{\"alerts\": {\"hooks\": [\n{\"alert\": \"grok\", \"argv\": [\"/x\"]}]}}",
			       -EINVAL),
		     "\"t.json\" line 2: alerts.hooks[0].alert: \"grok\" is not an alert name (plateau, "
		     "grokking, generalization_saturated, routing_collapse, or * for all)");
	CHECK_STR_HAS(parse_bad("{\"alerts\": {\"hooks\": [{\"alert\": \"*\", \"argv\": []}]}}",
				-EINVAL),
		      "alerts.hooks[0].argv: must not be empty");
	CHECK_STR_EQ(parse_bad("{\"alerts\": {\"hooks\": [{\"alert\": \"*\", \"argv\": [\"/x\"]},\n"
			       "{\"alert\": \"*\", \"argv\": [\"\", \"a\"]}]}}", -EINVAL),
		     "\"t.json\" line 2: alerts.hooks[1].argv[0]: the program must not be empty");
	CHECK_STR_HAS(parse_bad("{\"alerts\": {\"hooks\": [{\"alert\": \"*\"}]}}", -EINVAL),
		      "alerts.hooks[0]: \"argv\" is missing");
	CHECK_STR_HAS(parse_bad("{\"alerts\": {\"hooks\": [{\"alert\": \"*\", \"argv\": [1]}]}}",
				-EINVAL),
		      "alerts.hooks[0].argv[0]: expected a string, got a number");
	CHECK_STR_EQ(parse_bad("{\"alerts\": {\"loss\": {\n\"threshold\": 1}}}", -EINVAL),
		     "\"t.json\" line 2: alerts.loss.threshold: 1 must be below 1 with threshold_mode rel");
	CHECK_STR_HAS(parse_bad("{\"alerts\": {\"distance\": {\"threshold\": 2.5}}}", -EINVAL),
		      "alerts.distance.threshold: 2.5 must be below 1 with threshold_mode rel");
	c = parse_ok("{\"alerts\": {\"distance\": {\"threshold\": 2.5, \"threshold_mode\": \"abs\"}}}");
	config_free(c);
	CHECK_STR_HAS(parse_bad("{\"alerts\": {\"plateaus\": [{\"metric\": \"loss\", \"mode\": "
				"\"min\", \"threshold\": 1, \"threshold_mode\": \"rel\", \"patience\": 1, "
				"\"cooldown\": 0, \"min_checkpoints\": 0}]}}", -EINVAL),
		      "alerts.plateaus[0].threshold: 1 must be below 1 with mode min");
	CHECK_STR_HAS(parse_bad("{\"alerts\": {\"hook_concurrency\": 0}}", -EINVAL),
		      "alerts.hook_concurrency: 0 is below the minimum 1");
}

static const struct tap_test tests[] = {
	{ "shipped_file_matches_table", test_shipped_file_matches_table },
	{ "defaults_and_values", test_defaults_and_values },
	{ "epsilon_auto", test_epsilon_auto },
	{ "alertmanager_keys", test_alertmanager_keys },
	{ "unknown_key_path_and_line", test_unknown_key_path_and_line },
	{ "line_numbers_are_robust", test_line_numbers_are_robust },
	{ "wrong_type", test_wrong_type },
	{ "out_of_range", test_out_of_range },
	{ "bad_enum", test_bad_enum },
	{ "not_json_names_line", test_not_json_names_line },
	{ "duplicate_key", test_duplicate_key },
	{ "files", test_files },
	{ "remote_endpoint_needs_curve", test_remote_endpoint_needs_curve },
	{ "diff", test_diff },
	{ "alerts", test_alerts },
	{ NULL, NULL },
};
TAP_MAIN_DAEMON(tests)
