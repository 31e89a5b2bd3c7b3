/*
 * json.c — the strict JSON layer (json.h).
 *
 * In order: the allocator hook; UTF-8; the pre-scan, a state machine over
 * the bytes with an explicit stack of open containers (no recursion, so
 * the depth limit is the caller's and not the C stack's); the fault's
 * words; the parse through cJSON and the line of a node; the typed
 * getters.
 */
#include "engine/json.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/step.h"

/* ---- the allocator ---------------------------------------------------------- */

static void *json_malloc(size_t n)
{
	return gw_malloc(n);
}

void json_init(void)
{
	cJSON_Hooks h = { .malloc_fn = json_malloc, .free_fn = free };

	cJSON_InitHooks(&h);
}

/* ---- UTF-8 -------------------------------------------------------------------- */

size_t json_utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0], lo = 0x80, hi = 0xbf;
	size_t len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0; /* overlong below U+0800 */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90; /* overlong below U+10000 */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

bool json_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0, k; i < n; i += k)
		if (!p[i] || !(k = json_utf8_seq(p + i, n - i)))
			return false;
	return true;
}

char *json_utf8_fix(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), o = 0;
	char *out = gw_malloc(3 * n + 1); /* each byte at most U+FFFD's three */

	for (size_t i = 0, k; i < n; i += k) {
		k = json_utf8_seq(p + i, n - i);
		if (k) {
			memcpy(out + o, s + i, k);
			o += k;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			k = 1;
		}
	}
	out[o] = 0;
	return out;
}

static bool fix_string(char **s)
{
	char *f;

	if (!*s || json_utf8_valid(*s, strlen(*s)))
		return false;
	f = json_utf8_fix(*s);
	cJSON_free(*s);
	/* cJSON frees with its hook (free): hand it a copy it can free. */
	*s = cJSON_malloc(strlen(f) + 1);
	memcpy(*s, f, strlen(f) + 1);
	free(f);
	return true;
}

bool json_utf8_fix_tree(cJSON *node)
{
	bool changed = false;

	for (; node; node = node->next) {
		if (!(node->type & cJSON_StringIsConst))
			changed |= fix_string(&node->string);
		if (cJSON_IsString(node) && !(node->type & cJSON_IsReference))
			changed |= fix_string(&node->valuestring);
		if (node->child)
			changed |= json_utf8_fix_tree(node->child);
	}
	return changed;
}

char *json_print_utf8(cJSON *node)
{
	char *text = cJSON_PrintUnformatted(node);

	if (!text)
		gw_bug(__FILE__, __LINE__, "cJSON_PrintUnformatted failed (out of memory)");
	if (json_utf8_valid(text, strlen(text)))
		return text;
	free(text);
	/* The top node's own key (an item inside a parent) is not printed. */
	if (node->child)
		json_utf8_fix_tree(node->child);
	if (cJSON_IsString(node))
		fix_string(&node->valuestring);
	text = cJSON_PrintUnformatted(node);
	if (!text)
		gw_bug(__FILE__, __LINE__, "cJSON_PrintUnformatted failed (out of memory)");
	return text;
}

/* ---- the pre-scan --------------------------------------------------------------- */

struct sc {
	const unsigned char *s;
	size_t len, i;
	int line;
	const struct json_limits *lim;
	struct json_scan *out;
	size_t lines_cap;
};

static int fault(struct sc *c, enum json_fault f, size_t at, size_t string_at)
{
	struct json_scan *o = c->out;

	o->fault = f;
	o->at = at;
	o->string_at = string_at;
	o->byte = at < c->len ? c->s[at] : 0;
	o->line = c->line;
	return f == JSON_FAULT_VALUES ? -E2BIG : -EBADMSG;
}

/* White space as cJSON sees it (every byte up to 32), but a NUL. */
static int skip_ws(struct sc *c)
{
	while (c->i < c->len && c->s[c->i] <= 32) {
		if (!c->s[c->i])
			return fault(c, JSON_FAULT_NUL, c->i, SIZE_MAX);
		if (c->s[c->i] == '\n')
			c->line++;
		c->i++;
	}
	return 0;
}

static int add_value(struct sc *c, int line)
{
	struct json_scan *o = c->out;

	if (c->lim->values_max && o->values == c->lim->values_max)
		return fault(c, JSON_FAULT_VALUES, c->i, SIZE_MAX);
	if (c->lim->lines) {
		if (o->values == c->lines_cap) {
			c->lines_cap = c->lines_cap ? 2 * c->lines_cap : 64;
			o->lines = gw_realloc(o->lines, c->lines_cap * sizeof(int));
		}
		o->lines[o->values] = line;
	}
	o->values++;
	return 0;
}

static int scan_string(struct sc *c)
{
	size_t start = c->i;

	c->i++;
	for (;;) {
		unsigned char b;
		size_t k;

		if (c->i >= c->len)
			return fault(c, JSON_FAULT_UNTERMINATED, c->len, start);
		b = c->s[c->i];
		if (b == '"') {
			c->i++;
			return 0;
		}
		if (b == '\\') {
			if (c->i + 1 >= c->len)
				return fault(c, JSON_FAULT_UNTERMINATED, c->len, start);
			if (c->s[c->i + 1] == 'u' && c->i + 6 <= c->len) {
				if (!memcmp(c->s + c->i + 2, "0000", 4))
					return fault(c, JSON_FAULT_ESCAPED_NUL, c->i, start);
				/* cJSON reads a \u escape whose four bytes are not
				 * all hex digits as U+0000, cutting the string
				 * there without a word. */
				for (k = 2; k < 6; k++)
					if (!isxdigit(c->s[c->i + k]))
						return fault(c, JSON_FAULT_ESCAPE, c->i, start);
			}
			/* A NUL or a non-ASCII byte after the backslash is
			 * looked at as itself (and the escape is invalid). */
			c->i += c->s[c->i + 1] && c->s[c->i + 1] < 0x80 ? 2 : 1;
			if (c->s[c->i - 1] == '\n')
				c->line++;
			continue;
		}
		if (!b)
			return fault(c, JSON_FAULT_NUL, c->i, start);
		if (b < 0x20 && !c->lim->raw_controls)
			return fault(c, JSON_FAULT_CONTROL, c->i, start);
		if (b == '\n')
			c->line++;
		if (!(k = json_utf8_seq(c->s + c->i, c->len - c->i)))
			return fault(c, JSON_FAULT_UTF8, c->i, start);
		c->i += k;
	}
}

static bool is_delim(unsigned char b)
{
	return b <= 32 || b == ',' || b == ':' || b == '[' || b == ']' || b == '{' || b == '}' ||
	       b == '"';
}

static bool is_digit(unsigned char b)
{
	return b >= '0' && b <= '9';
}

/* A number or a literal: every byte up to a delimiter (cJSON checks the
 * spelling).  A byte >= 0x80 cannot be in either: invalid UTF-8 is a fault,
 * valid UTF-8 a syntax error at c->i (1). */
static int scan_token(struct sc *c)
{
	struct json_scan *o = c->out;
	size_t start = c->i, d;
	bool plain;

	while (c->i < c->len && !is_delim(c->s[c->i])) {
		if (c->s[c->i] >= 0x80)
			return json_utf8_seq(c->s + c->i, c->len - c->i) ? 1 :
			       fault(c, JSON_FAULT_UTF8, c->i, SIZE_MAX);
		c->i++;
	}
	if (c->i == start)
		return 1;
	if (c->s[start] != '-' && !is_digit(c->s[start]))
		return 0;
	d = start + (c->s[start] == '-');
	plain = d < c->i && !(c->s[d] == '0' && (c->i - d > 1 || d > start));
	for (size_t k = d; plain && k < c->i; k++)
		plain = is_digit(c->s[k]);
	if (!plain && o->odd_number == SIZE_MAX) {
		o->odd_number = start;
		o->odd_number_len = c->i - start;
	}
	return 0;
}

/*
 * After a syntax error: the rest of the text read by bytes alone (strings,
 * openings and closings, tokens), so that a fault the caller must name
 * (bad UTF-8, a NUL, too deep, too many values) is found in text that is
 * not JSON too, as before cJSON is asked where the syntax error is.
 */
static int lex_rest(struct sc *c, int depth)
{
	int r;

	while (c->i < c->len) {
		unsigned char b = c->s[c->i];
		size_t k;

		if (b == '"') {
			if ((r = add_value(c, c->line)) < 0 || (r = scan_string(c)) < 0)
				return r;
		} else if (b == '{' || b == '[') {
			if ((r = add_value(c, c->line)) < 0)
				return r;
			if (depth == c->out->depth_max)
				return fault(c, JSON_FAULT_DEPTH, c->i, SIZE_MAX);
			depth++;
			c->i++;
		} else if (b == '}' || b == ']') {
			depth -= depth > 0;
			c->i++;
		} else if (b <= 32) {
			if ((r = skip_ws(c)) < 0)
				return r;
		} else if (b == ',' || b == ':') {
			c->i++;
		} else if (b >= 0x80) {
			if (!(k = json_utf8_seq(c->s + c->i, c->len - c->i)))
				return fault(c, JSON_FAULT_UTF8, c->i, SIZE_MAX);
			c->i += k;
		} else {
			if ((r = add_value(c, c->line)) < 0)
				return r;
			while (c->i < c->len && !is_delim(c->s[c->i]) && c->s[c->i] < 0x80)
				c->i++;
		}
	}
	return 0;
}

/* A syntax error at c->i: the first fault of lex_rest, or this one. */
static int syntax(struct sc *c, int depth)
{
	size_t at = c->i;
	int line = c->line, r;

	if ((r = lex_rest(c, depth)) < 0)
		return r;
	c->line = line;
	return fault(c, JSON_FAULT_SYNTAX, at, SIZE_MAX);
}

enum state { VALUE, VALUE_OR_CLOSE, KEY, KEY_OR_CLOSE, COLON, NEXT };

int json_scan(const char *text, size_t len, const struct json_limits *lim, struct json_scan *ret)
{
	static const struct json_limits none;
	unsigned char open[JSON_DEPTH_MAX + 1];
	struct sc c = { .s = (const unsigned char *)text, .len = len, .line = 1, .out = ret };
	enum state st = VALUE;
	int depth = 0, key_line = 0, r;

	c.lim = lim ? lim : &none;
	memset(ret, 0, sizeof(*ret));
	ret->depth_max = c.lim->depth_max ? c.lim->depth_max : JSON_DEPTH_MAX;
	ret->values_max = c.lim->values_max;
	ret->odd_number = SIZE_MAX;
	ret->string_at = SIZE_MAX;
	GW_BUG_ON(ret->depth_max < 1 || ret->depth_max > JSON_DEPTH_MAX);
	if (c.lim->bom && len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		c.i = 3;
	for (;;) {
		unsigned char b;

		if ((r = skip_ws(&c)) < 0)
			return r;
		if (c.i >= len)
			return syntax(&c, depth);
		b = c.s[c.i];
		switch (st) {
		case KEY_OR_CLOSE:
			if (b == '}')
				goto close;
			/* fall through */
		case KEY:
			if (b != '"')
				goto syntax;
			key_line = c.line;
			if ((r = scan_string(&c)) < 0)
				return r;
			st = COLON;
			continue;
		case COLON:
			if (b != ':')
				goto syntax;
			c.i++;
			st = VALUE;
			continue;
		case NEXT:
			if (b == ',') {
				c.i++;
				st = open[depth] == '{' ? KEY : VALUE;
				continue;
			}
			if (b == (open[depth] == '{' ? '}' : ']'))
				goto close;
			goto syntax;
		case VALUE_OR_CLOSE:
			if (b == ']')
				goto close;
			/* fall through */
		case VALUE:
			if (b == '}' || b == ']' || b == ',' || b == ':')
				goto syntax;
			if ((r = add_value(&c, key_line ? key_line : c.line)) < 0)
				return r;
			key_line = 0;
			if (b == '{' || b == '[') {
				if (depth == ret->depth_max)
					return fault(&c, JSON_FAULT_DEPTH, c.i, SIZE_MAX);
				open[++depth] = b;
				c.i++;
				st = b == '{' ? KEY_OR_CLOSE : VALUE_OR_CLOSE;
				continue;
			}
			if ((r = b == '"' ? scan_string(&c) : scan_token(&c)) < 0)
				return r;
			if (r > 0)
				goto syntax;
			goto done;
		}
	close:
		c.i++;
		depth--;
	done:
		if (depth == 0) {
			ret->end = c.i;
			return 0;
		}
		st = NEXT;
		continue;
	syntax:
		return syntax(&c, depth);
	}
}

void json_scan_release(struct json_scan *s)
{
	free(s->lines);
	s->lines = NULL;
}

const char *json_fault_text(const struct json_scan *s, char *buf, size_t size)
{
	switch (s->fault) {
	case JSON_FAULT_NONE:
		snprintf(buf, size, "no fault");
		break;
	case JSON_FAULT_SYNTAX:
		snprintf(buf, size, "not valid JSON (near byte offset %zu)", s->at);
		break;
	case JSON_FAULT_NUL:
		snprintf(buf, size, "NUL byte at byte offset %zu", s->at);
		break;
	case JSON_FAULT_CONTROL:
		snprintf(buf, size, "raw control byte 0x%02x in a string at byte offset %zu", s->byte,
			 s->at);
		break;
	case JSON_FAULT_UTF8:
		snprintf(buf, size, "invalid UTF-8 at byte offset %zu", s->at);
		break;
	case JSON_FAULT_ESCAPED_NUL:
		snprintf(buf, size, "escaped NUL (\\u0000) at byte offset %zu", s->at);
		break;
	case JSON_FAULT_ESCAPE:
		snprintf(buf, size, "a \\u escape without four hex digits at byte offset %zu", s->at);
		break;
	case JSON_FAULT_DEPTH:
		snprintf(buf, size, "nests deeper than %d levels (at byte offset %zu)", s->depth_max,
			 s->at);
		break;
	case JSON_FAULT_VALUES:
		snprintf(buf, size, "more than %zu JSON values", s->values_max);
		break;
	case JSON_FAULT_UNTERMINATED:
		snprintf(buf, size, "ends inside the string at byte offset %zu", s->string_at);
		break;
	}
	return buf;
}

/* ---- the parse ---------------------------------------------------------------------- */

int json_line_at(const char *text, size_t pos)
{
	int line = 1;

	for (size_t i = 0; i < pos; i++)
		if (text[i] == '\n')
			line++;
	return line;
}

static size_t count_nodes(const cJSON *node)
{
	size_t n = 1;

	for (const cJSON *c = node->child; c; c = c->next)
		n += count_nodes(c);
	return n;
}

int json_parse(const char *what, const char *text, size_t len, const struct json_limits *lim,
	       struct json_doc *ret, struct gw_err *err)
{
	const char *end = NULL;
	char msg[GW_ERR_MAX / 2];
	int r;

	memset(ret, 0, sizeof(*ret));
	r = json_scan(text, len, lim, &ret->scan);
	if (r < 0 && ret->scan.fault != JSON_FAULT_SYNTAX) {
		r = gw_errf(err, r, "\"%s\" line %d: %s", what, ret->scan.line,
			    json_fault_text(&ret->scan, msg, sizeof(msg)));
		goto fail;
	}
	ret->root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!ret->root || r < 0) {
		/* Where cJSON stopped; where the scan did if cJSON took it. */
		size_t pos = !ret->root && end && end >= text && end <= text + len ?
			     (size_t)(end - text) : ret->root ? ret->scan.at : len;

		r = gw_errf(err, -EBADMSG, "\"%s\" line %d: not valid JSON", what,
			    json_line_at(text, pos));
		goto fail;
	}
	ret->end = (size_t)(end - text);
	ret->lines_ok = ret->scan.lines && ret->scan.values == count_nodes(ret->root);
	return 0;
fail:
	json_doc_release(ret);
	return r;
}

void json_doc_release(struct json_doc *d)
{
	cJSON_Delete(d->root);
	d->root = NULL;
	json_scan_release(&d->scan);
}

/* Pre-order index of target under node; *i counts the nodes before it. */
static bool node_index(const cJSON *node, const cJSON *target, size_t *i)
{
	if (node == target)
		return true;
	(*i)++;
	for (const cJSON *c = node->child; c; c = c->next)
		if (node_index(c, target, i))
			return true;
	return false;
}

int json_line(const struct json_doc *d, const cJSON *node)
{
	size_t i = 0;

	if (!d->lines_ok || !node || !node_index(d->root, node, &i) || i >= d->scan.values)
		return 0;
	return d->scan.lines[i];
}

/* ---- typed getters -------------------------------------------------------------------- */

const char *json_kind(const cJSON *v)
{
	if (cJSON_IsObject(v))
		return "an object";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsNull(v))
		return "null";
	return "not a value";
}

enum json_num json_number(const cJSON *v, double min, double max, bool integer, double *ret)
{
	double d;

	if (!cJSON_IsNumber(v))
		return JSON_NUM_NOT_NUMBER;
	d = v->valuedouble;
	if (!isfinite(d))
		return JSON_NUM_NOT_FINITE;
	if (integer && d != floor(d))
		return JSON_NUM_NOT_INTEGER;
	if (d < min)
		return JSON_NUM_BELOW;
	if (d > max)
		return JSON_NUM_ABOVE;
	*ret = d;
	return JSON_NUM_OK;
}

enum json_num json_int(const cJSON *v, int64_t min, int64_t max, int64_t *ret)
{
	enum json_num r;
	double d;

	GW_BUG_ON(min < -(int64_t)JSON_EXACT_INT || max > (int64_t)JSON_EXACT_INT || min > max);
	if ((r = json_number(v, (double)min, (double)max, true, &d)) == JSON_NUM_OK)
		*ret = (int64_t)d;
	return r;
}

int json_step(const cJSON *v, int64_t *ret)
{
	return json_int(v, 0, STEP_MAX, ret) == JSON_NUM_OK ? 0 : -EINVAL;
}

const char *json_string(const cJSON *v)
{
	return cJSON_IsString(v) ? v->valuestring : NULL;
}
