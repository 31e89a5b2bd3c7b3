/*
 * json.h — the engine's one strict JSON layer: a pre-scan of the raw text
 * for what cJSON does not check, the parse through cJSON, the line each
 * value starts on, typed getters, and the one UTF-8 validator.
 *
 * cJSON accepts invalid UTF-8, cuts a string at an escaped NUL (\u0000)
 * without a word (and at a \u escape that is not four hex digits, which it
 * reads as U+0000), recurses up to 1000 levels and builds a node of about 64
 * bytes for every value however many the text holds.  json_scan walks the
 * bytes first and refuses each of those (with the limits the caller gives),
 * records the line each value starts on (for messages "file" line N: key:
 * fault) and notes the first number not written as a plain integer (the
 * safetensors header allows no other).  Its grammar accepts everything
 * cJSON accepts (and a little more), so a text it calls not JSON is one
 * cJSON refuses too; json_parse then lets cJSON say where.
 *
 * Values are counted as cJSON builds nodes: every object, array, string,
 * number and literal, but not an object's keys (cJSON keeps a key in its
 * member's node).  Lines are 1-based, in document (pre-)order.
 *
 * Allocation: cJSON's allocator is hooked to gw_malloc/gw_free (which abort
 * on out-of-memory) by json_init, which grokwatchd calls at start-up and the
 * tests that use daemon modules call first.  So in the daemon no cJSON call
 * returns NULL for want of memory: cJSON_Create*, cJSON_Add*ToObject,
 * cJSON_Duplicate and cJSON_Print* need no NULL check (cJSON_Parse* still
 * returns NULL on a syntax error, cJSON_Get* on a missing member).  The
 * client library (client/lib) does not call json_init: it returns -ENOMEM.
 *
 * Errors: json_scan and json_parse return 0, -EBADMSG (not JSON, or a
 * fault of the text) or -E2BIG (more values than the limit).
 * Thread safety: none needed but json_init (call it before any thread).
 */
#ifndef GW_ENGINE_JSON_H
#define GW_ENGINE_JSON_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

#define JSON_DEPTH_MAX 1000 /* cJSON's own nesting limit (CJSON_NESTING_LIMIT) */
#define JSON_EXACT_INT 9007199254740992.0 /* 2^53: every integer up to it is exact */

/* Hook cJSON's allocator to gw_malloc/gw_free.  Idempotent. */
void json_init(void);

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n) (n >= 1; RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0 if the bytes
 * there are not one. */
size_t json_utf8_seq(const unsigned char *s, size_t n);

/* Whether s[0..n) is valid UTF-8 without a NUL byte. */
bool json_utf8_valid(const char *s, size_t n);

/* A new NUL-terminated copy of s (the caller frees it) in which every byte
 * that does not start a valid UTF-8 sequence is U+FFFD. */
char *json_utf8_fix(const char *s);

/* Every string value and key under node made valid UTF-8 in place
 * (json_utf8_fix).  Returns whether anything changed. */
bool json_utf8_fix_tree(cJSON *node);

/*
 * cJSON_PrintUnformatted(node) that is always valid UTF-8: when a string
 * in node is not, node is fixed in place (json_utf8_fix_tree) and printed
 * again, so strict parsers (Python's json, cJSON with json_scan) accept
 * every text the daemon writes or sends.  Aborts on out-of-memory.
 */
char *json_print_utf8(cJSON *node);

/* ---- the pre-scan ----------------------------------------------------------- */

struct json_limits {
	int depth_max;        /* containers nested deeper: JSON_FAULT_DEPTH; 0: JSON_DEPTH_MAX */
	size_t values_max;    /* more values: JSON_FAULT_VALUES (-E2BIG); 0: no limit */
	bool raw_controls;    /* accept raw bytes 0x01..0x1f in strings, as cJSON does */
	bool bom;             /* skip a UTF-8 byte order mark at the start, as cJSON does */
	bool lines;           /* record the line of each value (json_line) */
};

enum json_fault {
	JSON_FAULT_NONE,
	JSON_FAULT_SYNTAX,       /* not JSON at `at` (cJSON refuses it too) */
	JSON_FAULT_NUL,          /* a raw NUL byte */
	JSON_FAULT_CONTROL,      /* a raw control byte (`byte`) in a string */
	JSON_FAULT_UTF8,         /* invalid UTF-8, in a string or outside one */
	JSON_FAULT_ESCAPED_NUL,  /* \u0000 in a string (at the backslash) */
	JSON_FAULT_ESCAPE,       /* \u not followed by four hex digits (at the backslash) */
	JSON_FAULT_DEPTH,        /* the container opening at `at` is too deep */
	JSON_FAULT_VALUES,       /* the value at `at` is one too many */
	JSON_FAULT_UNTERMINATED, /* the text ends inside the string at string_at */
};

struct json_scan {
	enum json_fault fault;
	size_t at;           /* byte offset of the fault */
	size_t string_at;    /* offset of the opening quote of the string holding
				it, SIZE_MAX when the fault is outside strings */
	unsigned char byte;  /* the byte at `at` (JSON_FAULT_CONTROL, _UTF8, _SYNTAX) */
	int line;            /* line of `at` */
	size_t end;          /* without fault: just past the top-level value */
	size_t values;       /* values seen */
	int depth_max;       /* the limits in effect, for messages */
	size_t values_max;
	size_t odd_number;   /* the first number not written as a plain integer
				(digits, no leading zero, no "-0"), or SIZE_MAX */
	size_t odd_number_len;
	int *lines;          /* `values` of them with limits.lines, else NULL; owned */
};

/* Scan text[0..len) (one JSON value, then anything: the caller checks what
 * follows `end`).  Fills *ret (release with json_scan_release) and returns
 * 0, or -EBADMSG / -E2BIG with ret->fault set. */
int json_scan(const char *text, size_t len, const struct json_limits *lim,
	      struct json_scan *ret);
void json_scan_release(struct json_scan *s);

/* The fault as words for a message, without the input's name:
 * "invalid UTF-8 at byte offset 26", "escaped NUL (\u0000) at byte offset 27",
 * "more than 4100 JSON values", "nests deeper than 8 levels (at byte offset 8)". */
const char *json_fault_text(const struct json_scan *s, char *buf, size_t size);

/* ---- the parse ---------------------------------------------------------------- */

struct json_doc {
	cJSON *root;
	size_t end;           /* cJSON's end of the value: the caller checks what follows */
	struct json_scan scan;
	bool lines_ok;        /* the scan's values are cJSON's nodes, one for one */
};

/*
 * json_scan, then cJSON_ParseWithLengthOpts.  On failure the message reads
 * "\"what\" line N: FAULT" (json_fault_text, or "not valid JSON" at the line
 * where cJSON stopped).  On success *ret holds the tree; release it with
 * json_doc_release.  text need not be NUL-terminated.
 */
int json_parse(const char *what, const char *text, size_t len, const struct json_limits *lim,
	       struct json_doc *ret, struct gw_err *err);
void json_doc_release(struct json_doc *d);

/* The line `node` (a node of d->root) starts on, or 0 if unknown (lines not
 * asked for, or the scan and cJSON disagreed).  Linear in the tree. */
int json_line(const struct json_doc *d, const cJSON *node);

/* Line of byte offset pos in text. */
int json_line_at(const char *text, size_t pos);

/* ---- typed getters ---------------------------------------------------------------- */

/* "an object", "an array", "a string", "a number", "a boolean", "null",
 * "not a value": the one namer of a value's kind for messages. */
const char *json_kind(const cJSON *v);

enum json_num {
	JSON_NUM_OK,
	JSON_NUM_NOT_NUMBER,  /* not a number at all (json_kind says what) */
	JSON_NUM_NOT_FINITE,  /* cJSON maps 1e999 to infinity */
	JSON_NUM_NOT_INTEGER, /* has a fraction (integer getters only) */
	JSON_NUM_BELOW,       /* below min */
	JSON_NUM_ABOVE,       /* above max */
};

/* A number in [min, max], with `integer` also an exact integer: *ret set
 * only on JSON_NUM_OK.  Checked in the order of the enum. */
enum json_num json_number(const cJSON *v, double min, double max, bool integer, double *ret);

/* An exact integer in [min, max] (both within +-2^53; a programming error
 * otherwise). */
enum json_num json_int(const cJSON *v, int64_t min, int64_t max, int64_t *ret);

/* A step: an integer in [0, STEP_MAX] (engine/step.h).  0 or -EINVAL. */
int json_step(const cJSON *v, int64_t *ret);

/* A string member: its text, or NULL when `v` is absent or not a string. */
const char *json_string(const cJSON *v);

#endif
