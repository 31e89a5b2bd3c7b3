/* test_json.c — the strict JSON layer: the pre-scan's faults and limits,
 * lines of values, the parse, and the typed getters. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "engine/json.h"
#include "engine/step.h"

/* Scan text (strlen) with lim; returns the code, fills *s. */
static int scan(const char *text, const struct json_limits *lim, struct json_scan *s)
{
	return json_scan(text, strlen(text), lim, s);
}

static void expect_fault(const char *text, const struct json_limits *lim, int code,
			 enum json_fault f, size_t at, const char *words)
{
	struct json_scan s;
	char buf[256];

	CHECK_INT_EQ(scan(text, lim, &s), code);
	CHECK_INT_EQ(s.fault, f);
	CHECK_INT_EQ(s.at, at);
	CHECK_STR_EQ(json_fault_text(&s, buf, sizeof(buf)), words);
	json_scan_release(&s);
}

static void test_valid(void)
{
	static const char *ok[] = {
		"{}", "[]", "0", "-1.5e3", "\"x\"", "true", "null", " {\"a\": [1, {\"b\": null}]} ",
		"{\"\\u00e9\\\\u0000\": \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}",
	};
	struct json_scan s;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		CHECK_INT_EQ(scan(ok[i], NULL, &s), 0);
		CHECK_INT_EQ(s.fault, JSON_FAULT_NONE);
		json_scan_release(&s);
	}
	/* end is just past the value; what follows is the caller's. */
	CHECK_INT_EQ(json_scan("{} x", 4, NULL, &s), 0);
	CHECK_INT_EQ(s.end, 2);
	CHECK_INT_EQ(s.values, 1);
	CHECK_INT_EQ(scan("{\"a\": [1, 2], \"b\": \"c\"}", NULL, &s), 0);
	CHECK_INT_EQ(s.values, 5); /* keys are not values, as in cJSON */
}

static void test_bad_utf8(void)
{
	/* Overlong '/', overlong 3 and 4 bytes, a surrogate, above U+10FFFF,
	 * a lone continuation, a cut sequence, a byte never in UTF-8. */
	static const char *bad[] = {
		"\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
		"\x80", "\xe2\x82", "\xff",
	};
	char text[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct json_scan s;

		snprintf(text, sizeof(text), "[\"ab%s\"]", bad[i]);
		CHECK_INT_EQ(scan(text, NULL, &s), -EBADMSG);
		CHECK_INT_EQ(s.fault, JSON_FAULT_UTF8);
		CHECK_INT_EQ(s.at, 4);
		CHECK_INT_EQ(s.string_at, 1);
		CHECK(!json_utf8_valid(bad[i], strlen(bad[i])));
	}
	expect_fault("[\"\xed\xa0\x80\"]", NULL, -EBADMSG, JSON_FAULT_UTF8, 2,
		     "invalid UTF-8 at byte offset 2");
	/* A cut sequence at the very end of the text. */
	expect_fault("\"\xe2\x82", NULL, -EBADMSG, JSON_FAULT_UTF8, 1,
		     "invalid UTF-8 at byte offset 1");
	/* Outside strings: invalid is a UTF-8 fault, valid is not JSON. */
	expect_fault("[1, \xff]", NULL, -EBADMSG, JSON_FAULT_UTF8, 4, "invalid UTF-8 at byte offset 4");
	expect_fault("[1, \xc3\xa9]", NULL, -EBADMSG, JSON_FAULT_SYNTAX, 4,
		     "not valid JSON (near byte offset 4)");
	/* The edges that are valid. */
	CHECK(json_utf8_valid("\xed\x9f\xbf\xee\x80\x80\xf4\x8f\xbf\xbf\xc2\x80", 12));
	CHECK(!json_utf8_valid("a\0b", 3));
	CHECK_INT_EQ(json_utf8_seq((const unsigned char *)"\xf0\x90\x80\x80", 4), 4);
	CHECK_INT_EQ(json_utf8_seq((const unsigned char *)"\xf0\x90\x80\x80", 3), 0);
}

static void test_nul(void)
{
	static const char raw[] = "{\"a\": \"x\0y\"}";
	static const char ws[] = "[1,\0 2]";
	struct json_scan s;

	expect_fault("{\"a\\u0000b\": 1}", NULL, -EBADMSG, JSON_FAULT_ESCAPED_NUL, 3,
		     "escaped NUL (\\u0000) at byte offset 3");
	/* An escaped backslash before "u0000" is not an escape of NUL. */
	CHECK_INT_EQ(scan("[\"\\\\u0000\"]", NULL, &s), 0);
	/* A \u escape that is not four hex digits: cJSON would read it as
	 * U+0000 and cut the string there, so "ab\u00zzcd" would be "ab". */
	expect_fault("{\"g\": \"ab\\u00zzcd\"}", NULL, -EBADMSG, JSON_FAULT_ESCAPE, 9,
		     "a \\u escape without four hex digits at byte offset 9");
	expect_fault("[\"\\uD800\\u12x4\"]", NULL, -EBADMSG, JSON_FAULT_ESCAPE, 8,
		     "a \\u escape without four hex digits at byte offset 8");
	CHECK_INT_EQ(scan("[\"\\u00e9\\uD83D\\uDE00\\u00FF\"]", NULL, &s), 0);
	/* A cut \u00 is a string that does not end. */
	expect_fault("[\"\\u00", NULL, -EBADMSG, JSON_FAULT_UNTERMINATED, 6,
		     "ends inside the string at byte offset 1");
	CHECK_INT_EQ(json_scan(raw, sizeof(raw) - 1, NULL, &s), -EBADMSG);
	CHECK_INT_EQ(s.fault, JSON_FAULT_NUL);
	CHECK_INT_EQ(s.at, 8);
	CHECK_INT_EQ(s.string_at, 6);
	CHECK_INT_EQ(json_scan(ws, sizeof(ws) - 1, NULL, &s), -EBADMSG);
	CHECK_INT_EQ(s.fault, JSON_FAULT_NUL);
	CHECK_INT_EQ(s.string_at, SIZE_MAX);
}

static void test_controls(void)
{
	struct json_limits raw = { .raw_controls = true };
	struct json_scan s;

	expect_fault("[\"a\tb\"]", NULL, -EBADMSG, JSON_FAULT_CONTROL, 3,
		     "raw control byte 0x09 in a string at byte offset 3");
	CHECK_INT_EQ(scan("[\"a\tb\"]", &raw, &s), 0);
}

static void test_depth(void)
{
	struct json_limits eight = { .depth_max = 8 };
	char deep[2 * JSON_DEPTH_MAX + 8];
	struct json_scan s;

	expect_fault("[[[[[[[[[1]]]]]]]]]", &eight, -EBADMSG, JSON_FAULT_DEPTH, 8,
		     "nests deeper than 8 levels (at byte offset 8)");
	CHECK_INT_EQ(scan("[[[[[[[[1]]]]]]]]", &eight, &s), 0);
	CHECK_INT_EQ(scan("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{}}}}}}}}", &eight, &s), 0);
	CHECK_INT_EQ(scan("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{}}}}}}}}}", &eight,
			  &s), -EBADMSG);
	CHECK_INT_EQ(s.fault, JSON_FAULT_DEPTH);
	/* The default is cJSON's own 1000 levels, exactly. */
	memset(deep, '[', JSON_DEPTH_MAX);
	memset(deep + JSON_DEPTH_MAX, ']', JSON_DEPTH_MAX);
	CHECK_INT_EQ(json_scan(deep, 2 * JSON_DEPTH_MAX, NULL, &s), 0);
	memset(deep, '[', JSON_DEPTH_MAX + 1);
	memset(deep + JSON_DEPTH_MAX + 1, ']', JSON_DEPTH_MAX + 1);
	CHECK_INT_EQ(json_scan(deep, 2 * JSON_DEPTH_MAX + 2, NULL, &s), -EBADMSG);
	CHECK_INT_EQ(s.fault, JSON_FAULT_DEPTH);
	CHECK_INT_EQ(s.at, JSON_DEPTH_MAX);
}

static void test_counts(void)
{
	struct json_limits four = { .values_max = 4 };
	struct json_scan s;

	CHECK_INT_EQ(scan("[1, 2, 3]", &four, &s), 0);
	CHECK_INT_EQ(s.values, 4);
	expect_fault("[1, 2, 3, 4]", &four, -E2BIG, JSON_FAULT_VALUES, 10, "more than 4 JSON values");
	CHECK_INT_EQ(scan("{\"a\": 1, \"b\": 2, \"c\": 3}", &four, &s), 0);
	CHECK_INT_EQ(scan("{\"a\": {}, \"b\": [], \"c\": \"\", \"d\": 0}", &four, &s), -E2BIG);
}

static void test_syntax(void)
{
	static const char *bad[] = { "", "   ", "[1,]", "{\"a\" 1}", "{1: 2}", "[1 2]", "{\"a\":}",
				     "[", "{\"a\":1,}", "]", "[}", "\xef\xbb\xbf{}" };
	struct json_limits bom = { .bom = true };
	struct json_scan s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cJSON *c = cJSON_ParseWithLength(bad[i], strlen(bad[i]));

		CHECK_INT_EQ(scan(bad[i], NULL, &s), -EBADMSG);
		CHECK_INT_EQ(s.fault, JSON_FAULT_SYNTAX);
		/* What the scan calls not JSON, cJSON refuses too (but the
		 * byte order mark, which cJSON skips and limits.bom allows). */
		CHECK(c == NULL || i == sizeof(bad) / sizeof(bad[0]) - 1);
		cJSON_Delete(c);
	}
	CHECK_INT_EQ(scan("\xef\xbb\xbf{}", &bom, &s), 0);
	expect_fault("\"abc", NULL, -EBADMSG, JSON_FAULT_UNTERMINATED, 4,
		     "ends inside the string at byte offset 0");
}

static void test_lines(void)
{
	static const char text[] = "{\n\"a\": 1,\n\"b\":\n  [2,\n   3],\n\"c\": \"x\ny\",\n\"d\": 4}";
	struct json_limits lim = { .lines = true, .raw_controls = true };
	struct json_doc d;
	struct gw_err err;

	CHECK_INT_EQ(json_parse("t.json", text, sizeof(text) - 1, &lim, &d, &err), 0);
	CHECK(d.lines_ok);
	CHECK_INT_EQ(json_line(&d, d.root), 1);
	CHECK_INT_EQ(json_line(&d, cJSON_GetObjectItem(d.root, "a")), 2);
	/* An object's member starts where its key does. */
	CHECK_INT_EQ(json_line(&d, cJSON_GetObjectItem(d.root, "b")), 3);
	CHECK_INT_EQ(json_line(&d, cJSON_GetArrayItem(cJSON_GetObjectItem(d.root, "b"), 0)), 4);
	CHECK_INT_EQ(json_line(&d, cJSON_GetArrayItem(cJSON_GetObjectItem(d.root, "b"), 1)), 5);
	CHECK_INT_EQ(json_line(&d, cJSON_GetObjectItem(d.root, "c")), 6);
	/* A newline inside a string counts. */
	CHECK_INT_EQ(json_line(&d, cJSON_GetObjectItem(d.root, "d")), 8);
	CHECK_INT_EQ(json_line(&d, NULL), 0);
	json_doc_release(&d);
	CHECK_INT_EQ(json_line_at("a\nb\nc", 4), 3);
}

static void test_parse_errors(void)
{
	struct json_limits lim = { .lines = true };
	struct json_doc d;
	struct gw_err err;

	CHECK_INT_EQ(json_parse("f.json", "{\n\"a\": \"\xc0\xaf\"}", 13, &lim, &d, &err), -EBADMSG);
	CHECK_STR_EQ(err.msg, "\"f.json\" line 2: invalid UTF-8 at byte offset 8");
	CHECK(d.root == NULL);
	CHECK_INT_EQ(json_parse("f.json", "{\n\n\"a\": tru}", 12, &lim, &d, &err), -EBADMSG);
	CHECK_STR_EQ(err.msg, "\"f.json\" line 3: not valid JSON");
	CHECK_INT_EQ(json_parse("f.json", "{\n\"a\": 1,\n}", 11, &lim, &d, &err), -EBADMSG);
	CHECK_STR_EQ(err.msg, "\"f.json\" line 3: not valid JSON");
	/* Not NUL-terminated: only len bytes are read. */
	CHECK_INT_EQ(json_parse("f.json", "[1]]", 3, &lim, &d, &err), 0);
	CHECK_INT_EQ(d.end, 3);
	json_doc_release(&d);
}

static cJSON *num(double v)
{
	return cJSON_CreateNumber(v);
}

static void test_integers(void)
{
	cJSON *a = num(9007199254740992.0), *b = num(9007199254740993.0), *c = num(-3);
	cJSON *f = num(1.5), *s = cJSON_CreateString("7"), *inf = num(INFINITY);
	int64_t v = 42;

	CHECK_INT_EQ(json_int(a, 0, (int64_t)JSON_EXACT_INT, &v), JSON_NUM_OK);
	CHECK_INT_EQ(v, 9007199254740992LL);
	/* 2^53 + 1 is not a double: cJSON's value is 2^53 again, within. */
	CHECK_INT_EQ(json_int(b, 0, (int64_t)JSON_EXACT_INT, &v), JSON_NUM_OK);
	CHECK_INT_EQ(json_int(a, 0, (int64_t)JSON_EXACT_INT - 1, &v), JSON_NUM_ABOVE);
	CHECK_INT_EQ(json_int(c, 0, 10, &v), JSON_NUM_BELOW);
	CHECK_INT_EQ(json_int(c, -3, 10, &v), JSON_NUM_OK);
	CHECK_INT_EQ(v, -3);
	v = 42;
	CHECK_INT_EQ(json_int(f, 0, 10, &v), JSON_NUM_NOT_INTEGER);
	CHECK_INT_EQ(json_int(s, 0, 10, &v), JSON_NUM_NOT_NUMBER);
	CHECK_INT_EQ(json_int(inf, 0, 10, &v), JSON_NUM_NOT_FINITE);
	CHECK_INT_EQ(json_int(NULL, 0, 10, &v), JSON_NUM_NOT_NUMBER);
	CHECK_INT_EQ(v, 42); /* untouched on failure */
	cJSON_Delete(a), cJSON_Delete(b), cJSON_Delete(c), cJSON_Delete(f), cJSON_Delete(s);
	cJSON_Delete(inf);
}

static void test_steps(void)
{
	cJSON *zero = num(0), *max = num((double)STEP_MAX), *over = num((double)STEP_MAX + 1);
	cJSON *neg = num(-1), *half = num(10.5);
	int64_t v = 7;

	CHECK_INT_EQ(json_step(zero, &v), 0);
	CHECK_INT_EQ(v, 0);
	CHECK_INT_EQ(json_step(max, &v), 0);
	CHECK_INT_EQ(v, STEP_MAX);
	CHECK_INT_EQ(json_step(over, &v), -EINVAL);
	CHECK_INT_EQ(json_step(neg, &v), -EINVAL);
	CHECK_INT_EQ(json_step(half, &v), -EINVAL);
	CHECK_INT_EQ(json_step(NULL, &v), -EINVAL);
	CHECK_INT_EQ(v, STEP_MAX);
	cJSON_Delete(zero), cJSON_Delete(max), cJSON_Delete(over), cJSON_Delete(neg);
	cJSON_Delete(half);
}

static void test_bounded_numbers(void)
{
	cJSON *x = num(0.5), *t = cJSON_CreateTrue();
	double v = -1;

	CHECK_INT_EQ(json_number(x, 0, 1, false, &v), JSON_NUM_OK);
	CHECK_NEAR(v, 0.5, 0);
	CHECK_INT_EQ(json_number(x, 0.5, 0.5, false, &v), JSON_NUM_OK);
	CHECK_INT_EQ(json_number(x, 0.6, 1, false, &v), JSON_NUM_BELOW);
	CHECK_INT_EQ(json_number(x, 0, 0.4, false, &v), JSON_NUM_ABOVE);
	CHECK_INT_EQ(json_number(x, 0, 1, true, &v), JSON_NUM_NOT_INTEGER);
	CHECK_INT_EQ(json_number(t, 0, 1, false, &v), JSON_NUM_NOT_NUMBER);
	cJSON_Delete(x), cJSON_Delete(t);
}

static void test_kinds(void)
{
	cJSON *o = cJSON_CreateObject(), *a = cJSON_CreateArray(), *s = cJSON_CreateString("x");
	cJSON *n = num(1), *b = cJSON_CreateFalse(), *z = cJSON_CreateNull();

	CHECK_STR_EQ(json_kind(o), "an object");
	CHECK_STR_EQ(json_kind(a), "an array");
	CHECK_STR_EQ(json_kind(s), "a string");
	CHECK_STR_EQ(json_kind(n), "a number");
	CHECK_STR_EQ(json_kind(b), "a boolean");
	CHECK_STR_EQ(json_kind(z), "null");
	CHECK_STR_EQ(json_kind(NULL), "not a value");
	CHECK_STR_EQ(json_string(s), "x");
	CHECK(json_string(n) == NULL);
	cJSON_Delete(o), cJSON_Delete(a), cJSON_Delete(s), cJSON_Delete(n), cJSON_Delete(b);
	cJSON_Delete(z);
}

static void test_plain_integers(void)
{
	static const struct {
		const char *text;
		size_t at, len;
	} odd[] = {
		{ "[1, 2.0]", 4, 3 }, { "[1e1]", 1, 3 }, { "[02]", 1, 2 }, { "[-0]", 1, 2 },
		{ "[0, -5, 10, 0.5]", 12, 3 },
	};
	struct json_scan s;

	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		CHECK_INT_EQ(scan(odd[i].text, NULL, &s), 0);
		CHECK_INT_EQ(s.odd_number, odd[i].at);
		CHECK_INT_EQ(s.odd_number_len, odd[i].len);
	}
	CHECK_INT_EQ(scan("[0, -5, 10, 123456789]", NULL, &s), 0);
	CHECK_INT_EQ(s.odd_number, SIZE_MAX);
}

/* With the hook, cJSON allocates through gw_malloc (no NULL to check). */
static void test_hooked(void)
{
	cJSON *o = cJSON_CreateObject();
	char *p;

	cJSON_AddNumberToObject(o, "a", 1);
	p = cJSON_PrintUnformatted(o);
	CHECK_STR_EQ(p, "{\"a\":1}");
	cJSON_free(p);
	cJSON_Delete(o);
}

/* Invalid bytes become U+FFFD, in strings and keys, at any depth; valid
 * text is left alone. */
static void test_utf8_fix(void)
{
	char *f = json_utf8_fix("step2000-\xe9t\xe9");
	cJSON *o;
	char *text;

	CHECK_STR_EQ(f, "step2000-\xef\xbf\xbdt\xef\xbf\xbd");
	free(f);
	f = json_utf8_fix("caf\xc3\xa9 \xf0\x9f\x98\x80");
	CHECK_STR_EQ(f, "caf\xc3\xa9 \xf0\x9f\x98\x80");
	free(f);
	f = json_utf8_fix("\xc3"); /* truncated sequence */
	CHECK_STR_EQ(f, "\xef\xbf\xbd");
	free(f);
	f = json_utf8_fix("\xed\xa0\x80"); /* a surrogate: three bytes, three U+FFFD */
	CHECK_STR_EQ(f, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	free(f);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "ok", "fine");
	cJSON_AddItemToObject(cJSON_AddObjectToObject(o, "deep"), "k\xff",
			      cJSON_CreateString("v\xfe"));
	cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "a"), cJSON_CreateString("\x80"));
	text = json_print_utf8(o);
	CHECK(json_utf8_valid(text, strlen(text)));
	CHECK_STR_EQ(text, "{\"ok\":\"fine\",\"deep\":{\"k\xef\xbf\xbd\":\"v\xef\xbf\xbd\"},"
			   "\"a\":[\"\xef\xbf\xbd\"]}");
	free(text);
	CHECK(!json_utf8_fix_tree(o->child)); /* fixed already */
	cJSON_Delete(o);
}

static const struct tap_test tests[] = {
	{ "utf8_fix", test_utf8_fix },
	{ "valid", test_valid },
	{ "bad_utf8", test_bad_utf8 },
	{ "nul", test_nul },
	{ "controls", test_controls },
	{ "depth", test_depth },
	{ "counts", test_counts },
	{ "syntax", test_syntax },
	{ "lines", test_lines },
	{ "parse_errors", test_parse_errors },
	{ "integers", test_integers },
	{ "steps", test_steps },
	{ "bounded_numbers", test_bounded_numbers },
	{ "kinds", test_kinds },
	{ "plain_integers", test_plain_integers },
	{ "hooked", test_hooked },
	{ NULL, NULL },
};

TAP_MAIN_DAEMON(tests)
