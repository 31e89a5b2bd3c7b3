/*
 * probe.c — the probe set (probe.h): JSON Lines and raw token memmaps read
 * into samples in named groups, with limits on every size the input
 * controls, and the content hash.
 *
 * Divided into:
 *  - the probe object, its options, and two small open-addressing tables
 *    (group name -> group, (group, id) -> sample) that keep group lookup
 *    and the repeated-id check linear in the number of samples;
 *  - marks and rollback: every add records the probe's sizes first and, on
 *    any failure, frees what it added and rebuilds the tables, so a failed
 *    add leaves the probe as it was;
 *  - name rules shared by both formats (group, id);
 *  - JSON Lines: engine/json.h's scan of each line (NUL, UTF-8, escaped
 *    NUL, a bound on the number of JSON values so cJSON's tree stays small), the
 *    object's fields, and two line splitters over one per-line function —
 *    one streaming a file descriptor through a bounded buffer, one over
 *    memory (the fuzzed entry point);
 *  - memmaps: the range check and chunked pread;
 *  - the vocabulary check and the hash;
 *  - the loader (probe_load), from the options the config and analyze give.
 */
#include "engine/probe.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/hash.h"
#include "engine/json.h"
#include "engine/sha256.h"

#define HASH_TAG "grokwatch-probe-v1"

enum src_kind { SRC_JSONL, SRC_MEMMAP };

/* Open addressing with linear probing; slot[i] is an index into the
 * probe's groups or samples, -1 when empty. */
struct table {
	int *slot;
	uint32_t *hash;
	size_t cap; /* a power of two, or 0 */
	size_t n;
};

struct probe_state {
	struct probe_opts o;   /* effective: zero fields replaced by maxima */
	int cap_samples, cap_groups, cap_sources;
	unsigned char *src_kind;
	int64_t n_tokens;      /* over all samples */
	struct table groups;   /* name -> group index */
	struct table ids;      /* (group, id) -> sample index, non-empty ids */
};

/* ------------------------------------------------------------ the object */

static void opts_defaults(struct probe_opts *o)
{
	if (!o->line_max)
		o->line_max = PROBE_LINE_MAX;
	if (!o->sample_max)
		o->sample_max = PROBE_SAMPLE_MAX;
	if (!o->samples_max)
		o->samples_max = PROBE_SAMPLES_MAX;
}

struct probe *probe_new(void)
{
	struct probe *p = gw_calloc(1, sizeof(*p));

	p->st = gw_calloc(1, sizeof(*p->st));
	opts_defaults(&p->st->o);
	return p;
}

void probe_set_opts(struct probe *p, const struct probe_opts *o)
{
	struct probe_opts n = { 0 };

	if (o) {
		GW_BUG_ON(o->line_max > PROBE_LINE_MAX);
		GW_BUG_ON(o->sample_max < 0 || o->sample_max > PROBE_SAMPLE_MAX);
		GW_BUG_ON(o->samples_max < 0 || o->samples_max > PROBE_SAMPLES_MAX);
		n = *o;
	}
	opts_defaults(&n);
	p->st->o = n;
}

static void table_release(struct table *t)
{
	free(t->slot);
	free(t->hash);
	memset(t, 0, sizeof(*t));
}

void probe_free(struct probe *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->n_samples; i++) {
		free(p->samples[i].tokens);
		free(p->samples[i].id);
	}
	free(p->samples);
	for (int i = 0; i < p->n_groups; i++)
		free(p->groups[i]);
	free(p->groups);
	for (int i = 0; i < p->n_sources; i++)
		free(p->sources[i]);
	free(p->sources);
	if (p->st) {
		free(p->st->src_kind);
		table_release(&p->st->groups);
		table_release(&p->st->ids);
		free(p->st);
	}
	free(p);
}

/* The table keeps 32 bits of the hash: it only needs spread. */
static uint32_t group_hash(const char *name)
{
	return (uint32_t)gw_fnv1a(GW_FNV_BASIS, name, strlen(name));
}

static uint32_t id_hash(int group, const char *id)
{
	uint32_t g = (uint32_t)group;

	return (uint32_t)gw_fnv1a(gw_fnv1a(GW_FNV_BASIS, &g, sizeof(g)), id, strlen(id));
}

/* Index of the slot holding a matching entry, or of the empty slot where
 * it would go.  eq(p, index, key) says whether an entry matches. */
static size_t table_find(const struct table *t, uint32_t h, const struct probe *p,
			 bool (*eq)(const struct probe *, int, const void *), const void *key)
{
	size_t mask = t->cap - 1, i = h & mask;

	while (t->slot[i] >= 0 && !(t->hash[i] == h && eq(p, t->slot[i], key)))
		i = (i + 1) & mask;
	return i;
}

static void table_put(struct table *t, uint32_t h, int index);

static void table_grow(struct table *t)
{
	struct table old = *t;

	t->cap = old.cap ? old.cap * 2 : 64;
	t->slot = gw_malloc(t->cap * sizeof(*t->slot));
	t->hash = gw_malloc(t->cap * sizeof(*t->hash));
	t->n = 0;
	memset(t->slot, 0xff, t->cap * sizeof(*t->slot)); /* every slot -1 */
	for (size_t i = 0; i < old.cap; i++)
		if (old.slot[i] >= 0)
			table_put(t, old.hash[i], old.slot[i]);
	free(old.slot);
	free(old.hash);
}

/* Insert an entry known to be absent. */
static void table_put(struct table *t, uint32_t h, int index)
{
	size_t i;

	if ((t->n + 1) * 2 > t->cap)
		table_grow(t);
	for (i = h & (t->cap - 1); t->slot[i] >= 0; i = (i + 1) & (t->cap - 1))
		;
	t->slot[i] = index;
	t->hash[i] = h;
	t->n++;
}

static bool group_eq(const struct probe *p, int index, const void *key)
{
	return strcmp(p->groups[index], key) == 0;
}

struct id_key {
	int group;
	const char *id;
};

static bool id_eq(const struct probe *p, int index, const void *key)
{
	const struct id_key *k = key;

	return p->samples[index].group == k->group && strcmp(p->samples[index].id, k->id) == 0;
}

static int group_lookup(const struct probe *p, const char *name)
{
	const struct table *t = &p->st->groups;

	if (!t->cap)
		return -1;
	return t->slot[table_find(t, group_hash(name), p, group_eq, name)];
}

/* The sample already holding (group, id), or -1. */
static int id_lookup(const struct probe *p, int group, const char *id)
{
	const struct table *t = &p->st->ids;
	struct id_key k = { group, id };

	if (!t->cap)
		return -1;
	return t->slot[table_find(t, id_hash(group, id), p, id_eq, &k)];
}

/* ------------------------------------------------------ marks, rollback */

struct mark {
	int n_samples, n_groups, n_sources;
	int64_t n_tokens;
};

static struct mark mark_take(const struct probe *p)
{
	struct mark m = { p->n_samples, p->n_groups, p->n_sources, p->st->n_tokens };

	return m;
}

static void rollback(struct probe *p, const struct mark *m)
{
	struct probe_state *st = p->st;

	for (int i = m->n_samples; i < p->n_samples; i++) {
		free(p->samples[i].tokens);
		free(p->samples[i].id);
	}
	for (int i = m->n_groups; i < p->n_groups; i++)
		free(p->groups[i]);
	for (int i = m->n_sources; i < p->n_sources; i++)
		free(p->sources[i]);
	p->n_samples = m->n_samples;
	p->n_groups = m->n_groups;
	p->n_sources = m->n_sources;
	st->n_tokens = m->n_tokens;
	/* Removal from open addressing is fiddly; failures are rare, so the
	 * tables are rebuilt from what is left. */
	table_release(&st->groups);
	table_release(&st->ids);
	for (int i = 0; i < p->n_groups; i++)
		table_put(&st->groups, group_hash(p->groups[i]), i);
	for (int i = 0; i < p->n_samples; i++)
		if (p->samples[i].id[0])
			table_put(&st->ids, id_hash(p->samples[i].group, p->samples[i].id), i);
}

static int source_add(struct probe *p, const char *name, enum src_kind kind)
{
	struct probe_state *st = p->st;

	if (p->n_sources == st->cap_sources) {
		st->cap_sources = st->cap_sources ? st->cap_sources * 2 : 4;
		p->sources = gw_realloc(p->sources, (size_t)st->cap_sources * sizeof(*p->sources));
		st->src_kind = gw_realloc(st->src_kind, (size_t)st->cap_sources);
	}
	p->sources[p->n_sources] = gw_strdup(name);
	st->src_kind[p->n_sources] = (unsigned char)kind;
	return p->n_sources++;
}

/* The group's index, created if new; -E2BIG past PROBE_GROUPS_MAX. */
static int group_get(struct probe *p, const char *name)
{
	struct probe_state *st = p->st;
	int g = group_lookup(p, name);

	if (g >= 0)
		return g;
	if (p->n_groups >= PROBE_GROUPS_MAX)
		return -E2BIG;
	if (p->n_groups == st->cap_groups) {
		st->cap_groups = st->cap_groups ? st->cap_groups * 2 : 8;
		p->groups = gw_realloc(p->groups, (size_t)st->cap_groups * sizeof(*p->groups));
	}
	p->groups[p->n_groups] = gw_strdup(name);
	table_put(&st->groups, group_hash(name), p->n_groups);
	return p->n_groups++;
}

/* Append a sample; takes ownership of tokens and id (both heap).  The
 * caller has checked the limits and the id. */
static void sample_push(struct probe *p, int32_t *tokens, int n, int group, char *id, int src,
			int64_t where)
{
	struct probe_state *st = p->st;
	struct probe_sample *s;

	if (p->n_samples == st->cap_samples) {
		st->cap_samples = st->cap_samples ? st->cap_samples * 2 : 64;
		p->samples = gw_realloc(p->samples, (size_t)st->cap_samples * sizeof(*p->samples));
	}
	s = &p->samples[p->n_samples];
	s->tokens = tokens;
	s->ntokens = n;
	s->group = group;
	s->id = id;
	s->src = src;
	s->where = where;
	if (id[0])
		table_put(&st->ids, id_hash(group, id), p->n_samples);
	st->n_tokens += n;
	p->n_samples++;
}

/* Where a sample came from, for messages: `"file" line 12` or `"file"`. */
static void sample_place(const struct probe *p, int i, char *buf, size_t size)
{
	const struct probe_sample *s = &p->samples[i];

	if (p->st->src_kind[s->src] == SRC_JSONL)
		snprintf(buf, size, "\"%s\" line %lld", p->sources[s->src], (long long)s->where);
	else
		snprintf(buf, size, "\"%s\" token %lld", p->sources[s->src], (long long)s->where);
}

/* ------------------------------------------------------------ name rules */

/* Whether name is acceptable as a group (1 .. PROBE_GROUP_MAX - 1 bytes)
 * or an id (0 .. PROBE_ID_MAX - 1 bytes): no control characters either,
 * since both end up in messages, JSON and file names.  If not, the fault
 * goes to why ("is empty", ...). */
static bool name_ok(const char *s, size_t max, bool empty_ok, char *why, size_t size)
{
	size_t n = strlen(s);

	if (n == 0 && !empty_ok) {
		snprintf(why, size, "is empty");
		return false;
	}
	if (n >= max) {
		snprintf(why, size, "is %zu bytes, longer than %zu", n, max - 1);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			snprintf(why, size, "holds a control character (byte %zu)", i);
			return false;
		}
	return true;
}

/* ------------------------------------------------------------ JSON Lines */

struct jl {
	struct probe *p;
	const char *name;
	int src;
	int vocab;
	int64_t line;        /* 1-based number of the line being read */
	struct gw_err *err;
};

static int jl_fail(struct jl *j, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int jl_fail(struct jl *j, int code, const char *fmt, ...)
{
	char what[GW_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return gw_errf(j->err, code, "\"%s\" line %lld: %s", j->name, (long long)j->line, what);
}

/*
 * A line's bytes go through json_scan before cJSON sees them: NUL bytes,
 * invalid UTF-8 and the escape \u0000 inside a string (cJSON would cut the
 * string there without a word) are refused, and so is a line of more JSON
 * values than values_max, before cJSON builds a node of ~64 bytes for each.
 * Raw control bytes in strings pass, as cJSON lets them.
 */
static int jl_scan(struct jl *j, const char *line, size_t n, size_t values_max, size_t *ret_at)
{
	const struct json_limits lim = { .values_max = values_max, .raw_controls = true };
	struct json_scan sc;
	char words[128];
	int r = json_scan(line, n, &lim, &sc);

	json_scan_release(&sc);
	if (r == 0)
		return 0;
	/* Not JSON: cJSON says where (1: if it takes the line, the scan's place). */
	if (sc.fault == JSON_FAULT_SYNTAX || sc.fault == JSON_FAULT_UNTERMINATED) {
		*ret_at = sc.at;
		return 1;
	}
	return jl_fail(j, r, "%s%s", json_fault_text(&sc, words, sizeof(words)),
		       sc.fault == JSON_FAULT_VALUES ? " in one line" : "");
}

/* As json_kind, but a boolean shows as itself ("tokens[1] is true"). */
static const char *kind(const cJSON *v)
{
	return cJSON_IsTrue(v) ? "true" : cJSON_IsFalse(v) ? "false" : json_kind(v);
}

/* Token i of a "tokens" array into *ret, or an error naming it. */
static int jl_token(struct jl *j, const cJSON *v, int i, int32_t *ret)
{
	int64_t t;
	double d;

	if (!cJSON_IsNumber(v)) {
		const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
		bool show = s && strlen(s) <= 16;

		for (size_t k = 0; show && s[k]; k++)
			show = s[k] >= 0x20 && s[k] < 0x7f && s[k] != '"' && s[k] != '\\';
		if (show)
			return jl_fail(j, -EBADMSG, "tokens[%d] is the string \"%s\", not an integer",
				       i, s);
		return jl_fail(j, -EBADMSG, "tokens[%d] is %s, not an integer", i, kind(v));
	}
	d = v->valuedouble;
	switch (json_int(v, 0, INT32_MAX, &t)) {
	case JSON_NUM_OK:
		break;
	case JSON_NUM_NOT_INTEGER:
		return jl_fail(j, -EBADMSG, "tokens[%d] is %.17g, not an integer", i, d);
	case JSON_NUM_BELOW:
		return jl_fail(j, -EBADMSG, "tokens[%d] is %.17g, negative", i, d);
	case JSON_NUM_NOT_FINITE: /* cJSON maps 1e999 to inf */
		return jl_fail(j, -EBADMSG, "tokens[%d] is %g, beyond the 32-bit range", i, d);
	default:
		return jl_fail(j, -EBADMSG, "tokens[%d] is %.17g, beyond the 32-bit range", i, d);
	}
	if (j->vocab > 0 && t >= j->vocab)
		return jl_fail(j, -EBADMSG, "tokens[%d] is %d, at or beyond the vocabulary (%d)", i,
			       (int)t, j->vocab);
	*ret = (int32_t)t;
	return 0;
}

/* The "id" field as text into buf (PROBE_ID_MAX bytes). */
static int jl_id(struct jl *j, const cJSON *v, char *buf)
{
	char why[128];

	if (cJSON_IsString(v)) {
		if (!name_ok(v->valuestring, PROBE_ID_MAX, true, why, sizeof(why)))
			return jl_fail(j, -EBADMSG, "\"id\" %s", why);
		memcpy(buf, v->valuestring, strlen(v->valuestring) + 1);
		return 0;
	}
	if (cJSON_IsNumber(v)) {
		int64_t n;

		if (json_int(v, -(int64_t)JSON_EXACT_INT, (int64_t)JSON_EXACT_INT, &n) == JSON_NUM_OK) {
			snprintf(buf, PROBE_ID_MAX, "%lld", (long long)n);
			return 0;
		}
		return jl_fail(j, -EBADMSG, "\"id\" is %.17g, not an integer of at most 2^53",
			       v->valuedouble);
	}
	return jl_fail(j, -EBADMSG, "\"id\" is %s, not a string or an integer", kind(v));
}

/* The fields of one parsed line, turned into a sample. */
static int jl_object(struct jl *j, const cJSON *root)
{
	struct probe *p = j->p;
	const struct probe_opts *o = &p->st->o;
	const cJSON *tokens = NULL, *group = NULL, *id = NULL, *v;
	char idbuf[PROBE_ID_MAX] = "";
	const char *gname = "default";
	char why[128];
	int32_t *toks = NULL;
	int n, g, r, i, prev;

	if (!cJSON_IsObject(root))
		return jl_fail(j, -EBADMSG, "not a JSON object but %s", kind(root));
	cJSON_ArrayForEach(v, root) {
		const cJSON **slot = !strcmp(v->string, "tokens") ? &tokens :
				     !strcmp(v->string, "group") ? &group :
				     !strcmp(v->string, "id") ? &id : NULL;

		if (!slot)
			continue; /* unknown keys ("text", "metadata", ...) are data's business */
		if (*slot)
			return jl_fail(j, -EBADMSG, "key \"%s\" given twice", v->string);
		*slot = v;
	}
	if (!tokens)
		return jl_fail(j, -EBADMSG, "no \"tokens\" field");
	if (!cJSON_IsArray(tokens))
		return jl_fail(j, -EBADMSG, "\"tokens\" is %s, not an array", kind(tokens));
	if (group) {
		if (!cJSON_IsString(group))
			return jl_fail(j, -EBADMSG, "\"group\" is %s, not a string", kind(group));
		gname = group->valuestring;
		if (!name_ok(gname, PROBE_GROUP_MAX, false, why, sizeof(why)))
			return jl_fail(j, -EBADMSG, "\"group\" %s", why);
	}
	if (id && (r = jl_id(j, id, idbuf)) < 0)
		return r;
	n = cJSON_GetArraySize(tokens);
	if (n == 0)
		return jl_fail(j, -EBADMSG, "\"tokens\" is empty");
	if (n > o->sample_max)
		return jl_fail(j, -E2BIG, "%d tokens, more than the limit of %d a sample", n,
			       o->sample_max);
	if (p->n_samples >= o->samples_max)
		return jl_fail(j, -E2BIG, "more than %d samples in the probe", o->samples_max);
	if (p->st->n_tokens + n > PROBE_TOKENS_MAX)
		return jl_fail(j, -E2BIG, "more than %d tokens in the probe", PROBE_TOKENS_MAX);
	g = group_lookup(p, gname);
	if (g >= 0 && idbuf[0] && (prev = id_lookup(p, g, idbuf)) >= 0) {
		char where[GW_ERR_MAX / 2];

		sample_place(p, prev, where, sizeof(where));
		return jl_fail(j, -EBADMSG, "id \"%s\" repeats in group \"%s\" (first at %s)", idbuf,
			       gname, where);
	}
	toks = gw_malloc((size_t)n * sizeof(*toks));
	i = 0;
	cJSON_ArrayForEach(v, tokens) {
		if ((r = jl_token(j, v, i, &toks[i])) < 0)
			goto out;
		i++;
	}
	if ((g = group_get(p, gname)) < 0) {
		r = jl_fail(j, g, "more than %d groups in the probe", PROBE_GROUPS_MAX);
		goto out;
	}
	sample_push(p, toks, n, g, gw_strdup(idbuf), j->src, j->line);
	toks = NULL;
	r = 0;
out:
	free(toks);
	return r;
}

static bool is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/* One line, without its LF.  unterminated: the last line of a file that
 * does not end in a newline (a hint for the message if it does not parse). */
static int jl_line(struct jl *j, const char *s, size_t n, bool unterminated)
{
	const struct probe_opts *o = &j->p->st->o;
	const char *end = NULL;
	size_t bad_at = 0;
	cJSON *root;
	int r, bad;

	if (j->line == 1 && n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
		s += 3;
		n -= 3;
	}
	if (is_blank(s, n))
		return 0;
	/* Room for the tokens of a full sample and as much again of other
	 * fields, plus some slack for metadata. */
	if ((bad = jl_scan(j, s, n, 2 * (size_t)o->sample_max + 4096, &bad_at)) < 0)
		return bad;
	root = cJSON_ParseWithLengthOpts(s, n, &end, 0);
	if (!root || bad) {
		size_t at = root ? bad_at : end && end >= s && end <= s + n ? (size_t)(end - s) : 0;

		cJSON_Delete(root);
		/* cJSON's position is approximate (often one byte on). */
		return jl_fail(j, -EBADMSG, "not valid JSON (near byte offset %zu)%s", at,
			       unterminated ? "; the file ends without a newline, "
					      "so this line may be cut short" : "");
	}
	for (; end < s + n; end++)
		if (*end != ' ' && *end != '\t' && *end != '\r') {
			r = jl_fail(j, -EBADMSG, "text after the JSON value at byte offset %zu",
				    (size_t)(end - s));
			goto out;
		}
	r = jl_object(j, root);
out:
	cJSON_Delete(root);
	return r;
}

static void jl_begin(struct probe *p, struct jl *j, const char *name, int vocab,
		    struct gw_err *err)
{
	j->p = p;
	j->name = name;
	j->vocab = vocab;
	j->line = 0;
	j->err = err;
	j->src = source_add(p, name, SRC_JSONL);
}

/* After the last line: refuse a file without samples, keep or undo. */
static int jl_end(struct jl *j, const struct mark *m, int r)
{
	if (r == 0 && j->p->n_samples == m->n_samples)
		r = gw_errf(j->err, -EBADMSG, "\"%s\": no samples (the file is empty or blank)",
			    j->name);
	if (r < 0)
		rollback(j->p, m);
	else
		j->p->hash[0] = 0;
	return r;
}

int probe_add_jsonl_mem(struct probe *p, const char *name, const char *data, size_t len,
			int vocab, struct gw_err *err)
{
	size_t line_max = p->st->o.line_max, at = 0;
	struct mark m = mark_take(p);
	struct jl j;
	int r = 0;

	jl_begin(p, &j, name, vocab, err);
	while (at < len) {
		const char *nl = memchr(data + at, '\n', len - at);
		size_t n = nl ? (size_t)(nl - (data + at)) : len - at;

		j.line++;
		if (n > line_max) {
			r = jl_fail(&j, -E2BIG, "longer than %zu bytes", line_max);
			break;
		}
		if ((r = jl_line(&j, data + at, n, !nl)) < 0)
			break;
		at += n + (nl ? 1 : 0);
	}
	return jl_end(&j, &m, r);
}

/*
 * Stream fd through a buffer of at most line_max + 1 bytes (a longest line
 * and its LF): lines are handed to jl_line as they complete, the remainder
 * moved to the front before the next read.  A regular file must yield
 * exactly the size fstat gave: fewer or more bytes mean a writer is at
 * work, and a probe read half-old, half-new would hash as neither.
 */
static int jl_stream(struct jl *j, int fd, bool regular, int64_t size)
{
	size_t line_max = j->p->st->o.line_max, limit = line_max + 1;
	size_t cap = limit < 65536 ? limit : 65536, start = 0, scan = 0, end = 0;
	char *buf = gw_malloc(cap);
	int64_t total = 0;
	bool eof = false;
	int r = 0;

	for (;;) {
		char *nl = memchr(buf + scan, '\n', end - scan);

		if (nl) {
			j->line++;
			if ((r = jl_line(j, buf + start, (size_t)(nl - (buf + start)), false)) < 0)
				goto out;
			start = scan = (size_t)(nl - buf) + 1;
			continue;
		}
		scan = end;
		if (end - start > line_max) {
			j->line++;
			r = jl_fail(j, -E2BIG, "longer than %zu bytes", line_max);
			goto out;
		}
		if (eof) {
			if (regular && total != size) {
				r = gw_errf(j->err, -EIO, "\"%s\": the file changed while being read "
					    "(%lld bytes when opened, %lld read)", j->name,
					    (long long)size, (long long)total);
				goto out;
			}
			if (end > start) {
				j->line++;
				r = jl_line(j, buf + start, end - start, true);
			}
			goto out;
		}
		if (start) {
			memmove(buf, buf + start, end - start);
			end -= start;
			scan -= start;
			start = 0;
		}
		if (end == cap) {
			cap = cap * 2 < limit ? cap * 2 : limit;
			buf = gw_realloc(buf, cap);
		}
		ssize_t got = read(fd, buf + end, cap - end);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			r = gw_errf(j->err, -errno, "\"%s\": read: %s", j->name, strerror(errno));
			goto out;
		}
		eof = got == 0;
		end += (size_t)got;
		total += got;
		if (regular && total > size) {
			r = gw_errf(j->err, -EIO, "\"%s\": the file grew while being read "
				    "(%lld bytes when opened)", j->name, (long long)size);
			goto out;
		}
	}
out:
	free(buf);
	return r;
}

/* Open a file for reading and refuse a directory.  ret_size is -1 for a
 * file that is not regular (a pipe: streamed without a size check). */
static int open_input(const char *path, int *ret_fd, int64_t *ret_size, struct gw_err *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return gw_errf(err, -errno, "\"%s\": %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		int r = gw_errf(err, -errno, "\"%s\": %s", path, strerror(errno));

		close(fd);
		return r;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		return gw_errf(err, -EISDIR, "\"%s\": is a directory, not a file", path);
	}
	*ret_fd = fd;
	*ret_size = S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
	return 0;
}

int probe_add_jsonl(struct probe *p, const char *path, int vocab, struct gw_err *err)
{
	struct mark m = mark_take(p);
	int64_t size;
	struct jl j;
	int fd, r;

	if ((r = open_input(path, &fd, &size, err)) < 0)
		return r;
	if (p->st->o.after_stat)
		p->st->o.after_stat(path, p->st->o.hook_arg);
	jl_begin(p, &j, path, vocab, err);
	r = jl_stream(&j, fd, size >= 0, size);
	close(fd);
	return jl_end(&j, &m, r);
}

/* --------------------------------------------------------------- memmaps */

/* Read exactly n bytes at off; a short read means the file shrank. */
static int read_at(int fd, const char *path, void *buf, size_t n, int64_t off, int64_t size,
		   struct gw_err *err)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + (int64_t)got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return gw_errf(err, -errno, "\"%s\": read at byte %lld: %s", path,
				       (long long)(off + (int64_t)got), strerror(errno));
		if (r == 0)
			return gw_errf(err, -EIO, "\"%s\": the file shrank while being read (no data "
				       "at byte %lld; %lld bytes when opened)", path,
				       (long long)(off + (int64_t)got), (long long)size);
		got += (size_t)r;
	}
	return 0;
}

int probe_add_memmap(struct probe *p, const char *path, int width, int length, int count,
		     int64_t offset, const char *group, int vocab, struct gw_err *err)
{
	const struct probe_opts *o = &p->st->o;
	struct mark m = mark_take(p);
	const char *gname = group ? group : "default";
	char why[128];
	int64_t size, ntok, need, pos = 0;
	uint8_t *buf = NULL;
	int fd = -1, g, r, src;

	if (width != 2 && width != 4)
		return gw_errf(err, -EINVAL, "\"%s\": token width %d, not 2 or 4", path, width);
	if (length < 1 || length > o->sample_max)
		return gw_errf(err, length < 1 ? -EINVAL : -E2BIG,
			       "\"%s\": sample length %d is outside 1..%d", path, length,
			       o->sample_max);
	if (count < 1 || count > o->samples_max - p->n_samples)
		return gw_errf(err, count < 1 ? -EINVAL : -E2BIG,
			       "\"%s\": %d samples; the probe holds %d and takes at most %d", path,
			       count, p->n_samples, o->samples_max);
	if (offset < 0)
		return gw_errf(err, -EINVAL, "\"%s\": negative offset %lld", path,
			       (long long)offset);
	if (!name_ok(gname, PROBE_GROUP_MAX, false, why, sizeof(why)))
		return gw_errf(err, -EINVAL, "\"%s\": group name %s", path, why);
	need = (int64_t)count * length;
	if (p->st->n_tokens + need > PROBE_TOKENS_MAX)
		return gw_errf(err, -E2BIG, "\"%s\": %lld tokens would make more than %d in the probe",
			       path, (long long)need, PROBE_TOKENS_MAX);
	if ((r = open_input(path, &fd, &size, err)) < 0)
		return r;
	if (size < 0) {
		r = gw_errf(err, -EINVAL, "\"%s\": not a regular file", path);
		goto out;
	}
	if (size % width) {
		r = gw_errf(err, -EBADMSG, "\"%s\": size %lld bytes is not a multiple of the token "
			    "width %d", path, (long long)size, width);
		goto out;
	}
	ntok = size / width;
	if (offset > ntok || need > ntok - offset) {
		r = gw_errf(err, -EINVAL, "\"%s\": %d samples of %d tokens from token %lld reach "
			    "beyond the end of its %lld tokens", path, count, length,
			    (long long)offset, (long long)ntok);
		goto out;
	}
	if (o->after_stat)
		o->after_stat(path, o->hook_arg);
	src = source_add(p, path, SRC_MEMMAP);
	if ((g = group_get(p, gname)) < 0) {
		r = gw_errf(err, g, "\"%s\": more than %d groups in the probe", path,
			    PROBE_GROUPS_MAX);
		goto out;
	}
	for (int i = 0; i < count; i++) {
		int64_t first = offset + (int64_t)i * length;
		char id[PROBE_ID_MAX];

		snprintf(id, sizeof(id), "memmap:%lld", (long long)first);
		if (id_lookup(p, g, id) >= 0) {
			r = gw_errf(err, -EBADMSG, "\"%s\": id \"%s\" repeats in group \"%s\"", path,
				    id, gname);
			goto out;
		}
		sample_push(p, gw_malloc((size_t)length * sizeof(int32_t)), length, g,
			    gw_strdup(id), src, first);
	}
	/* The samples are consecutive, so the range is read front to back in
	 * chunks and token k of the range lands in sample k / length. */
	buf = gw_malloc(PROBE_READ_CHUNK);
	while (pos < need) {
		int64_t n = need - pos < PROBE_READ_CHUNK / width ? need - pos : PROBE_READ_CHUNK / width;

		if ((r = read_at(fd, path, buf, (size_t)n * (size_t)width, (offset + pos) * width, size,
				 err)) < 0)
			goto out;
		for (int64_t k = 0; k < n; k++, pos++) {
			const uint8_t *b = buf + k * width;
			uint32_t v = width == 2 ? (uint32_t)b[0] | (uint32_t)b[1] << 8 :
				     (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
				     (uint32_t)b[3] << 24;

			if (v > INT32_MAX) {
				r = gw_errf(err, -EBADMSG, "\"%s\": token %lld is %u, beyond the 32-bit "
					    "range", path, (long long)(offset + pos), v);
				goto out;
			}
			if (vocab > 0 && v >= (uint32_t)vocab) {
				r = gw_errf(err, -EBADMSG, "\"%s\": token %lld is %u, at or beyond the "
					    "vocabulary (%d)", path, (long long)(offset + pos), v,
					    vocab);
				goto out;
			}
			p->samples[m.n_samples + pos / length].tokens[pos % length] = (int32_t)v;
		}
	}
	r = 0;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	if (r < 0)
		rollback(p, &m);
	else
		p->hash[0] = 0;
	return r;
}

/* ------------------------------------------------------- vocab and hash */

int probe_check_vocab(const struct probe *p, int vocab, struct gw_err *err)
{
	GW_BUG_ON(vocab <= 0);
	for (int i = 0; i < p->n_samples; i++) {
		const struct probe_sample *s = &p->samples[i];

		for (int k = 0; k < s->ntokens; k++) {
			if (s->tokens[k] < vocab)
				continue;
			if (p->st->src_kind[s->src] == SRC_JSONL)
				return gw_errf(err, -EBADMSG, "\"%s\" line %lld: tokens[%d] is %d, at or "
					       "beyond the vocabulary (%d)", p->sources[s->src],
					       (long long)s->where, k, s->tokens[k], vocab);
			return gw_errf(err, -EBADMSG, "\"%s\": token %lld is %d, at or beyond the "
				       "vocabulary (%d)", p->sources[s->src],
				       (long long)(s->where + k), s->tokens[k], vocab);
		}
	}
	return 0;
}

static void put_u32(uint8_t *b, uint32_t v)
{
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
	b[2] = (uint8_t)(v >> 16);
	b[3] = (uint8_t)(v >> 24);
}

void probe_finish(struct probe *p)
{
	uint8_t buf[4 * 1024], digest[SHA256_DIGEST_LEN];
	struct sha256 h;

	sha256_init(&h);
	sha256_update(&h, HASH_TAG, sizeof(HASH_TAG)); /* with its NUL */
	for (int i = 0; i < p->n_samples; i++) {
		const struct probe_sample *s = &p->samples[i];
		const char *g = p->groups[s->group];
		int k = 0;

		sha256_update(&h, g, strlen(g) + 1);
		sha256_update(&h, s->id, strlen(s->id) + 1);
		put_u32(buf, (uint32_t)s->ntokens);
		sha256_update(&h, buf, 4);
		while (k < s->ntokens) {
			size_t n = 0;

			for (; k < s->ntokens && n < sizeof(buf); k++, n += 4)
				put_u32(buf + n, (uint32_t)s->tokens[k]);
			sha256_update(&h, buf, n);
		}
	}
	sha256_final(&h, digest);
	sha256_hex(digest, p->hash);
}

/* ---- the loader ------------------------------------------------------------ */

int probe_load(const struct probe_load_opts *o, struct probe **ret, struct gw_err *err)
{
	struct probe *p = probe_new();
	int rc;

	if (o->format == PROBE_FORMAT_JSONL)
		rc = probe_add_jsonl(p, o->path, 0, err);
	else
		rc = probe_add_memmap(p, o->path, o->format == PROBE_FORMAT_U16 ? 2 : 4, o->length,
				      o->count, o->offset, o->group, 0, err);
	if (rc < 0) {
		probe_free(p);
		return rc;
	}
	probe_finish(p);
	*ret = p;
	return 0;
}
