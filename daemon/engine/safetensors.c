/*
 * safetensors.c — reading and writing safetensors files (SPEC §2).
 *
 * A header is checked in three passes.  engine/json.h's scan walks the raw
 * bytes for what cJSON cannot show us afterwards: invalid UTF-8, raw control
 * bytes and escaped NULs in strings (cJSON would silently cut the name at
 * the NUL), nesting depth, a value count that bounds cJSON's memory, and
 * numbers not spelled as plain integers.  cJSON then parses the text, and
 * the structural pass checks every entry, the names, and that the offsets
 * tile the data exactly.
 *
 * Sections: dtypes; messages; the lexical scan; the header parse; the open
 * file and its reads into fp32; the writer.
 *
 * Integers in a header are taken from cJSON's double, which is exact because
 * the scan has refused every number that is not a plain run of digits and
 * the structural pass refuses values of 2^53 or more.  All offset arithmetic
 * is then in uint64_t far from overflow (offsets < 2^53, N <= 100 MB).
 */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/vec.h"
#include "engine/file.h"
#include "engine/json.h"
#include "engine/safetensors.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
/* Safetensors data is little-endian and the readers hand it out as is. */
#error "safetensors.c assumes a little-endian host"
#endif

/* Offsets, dimensions and sizes stay below 2^53 so that a double holds them
 * exactly; no real file comes near (8 PiB). */
#define ST_UINT_LIMIT (UINT64_C(1) << 53)
/* Deeper than any valid header (object, entry, shape: 3); refused before
 * cJSON recurses. */
#define ST_DEPTH_MAX 8
/* JSON values (cJSON nodes: containers, strings, numbers, literals; keys
 * live in their member's node) a valid header can need: 14 a tensor with 8
 * dimensions, 1 a metadata pair, and the frame.  Bounds cJSON's memory
 * (about 64 bytes a node) however the 100 MB are spent. */
#define ST_VALUES_MAX (14 * ST_TENSORS_MAX + ST_META_MAX + 8)
/* Conversion buffer for F16/BF16 reads: small enough to stay in cache
 * between pread's copy and the conversion. */
#define ST_CHUNK (1u << 20)
/* How much of a name or value a message shows. */
#define CLIP 96

/* ---- dtypes --------------------------------------------------------- */

static const struct {
	const char *name;
	unsigned bits;
} dtypes[ST_DTYPE_COUNT] = {
	[ST_F32] = { "F32", 32 },  [ST_F16] = { "F16", 16 }, [ST_BF16] = { "BF16", 16 },
	[ST_F64] = { "F64", 64 },  [ST_I8] = { "I8", 8 },    [ST_I16] = { "I16", 16 },
	[ST_I32] = { "I32", 32 },  [ST_I64] = { "I64", 64 }, [ST_U8] = { "U8", 8 },
	[ST_U16] = { "U16", 16 },  [ST_U32] = { "U32", 32 }, [ST_U64] = { "U64", 64 },
	[ST_BOOL] = { "BOOL", 8 },
	[ST_F8_E4M3] = { "F8_E4M3", 8 }, [ST_F8_E5M2] = { "F8_E5M2", 8 },
	[ST_F8_E8M0] = { "F8_E8M0", 8 }, [ST_F4] = { "F4", 4 },
	[ST_F6_E2M3] = { "F6_E2M3", 6 }, [ST_F6_E3M2] = { "F6_E3M2", 6 },
	[ST_C64] = { "C64", 64 },
	[ST_OTHER] = { "other", 0 },
};

const char *st_dtype_name(enum st_dtype d)
{
	GW_BUG_ON((unsigned)d >= ST_DTYPE_COUNT);
	return dtypes[d].name;
}

size_t st_dtype_size(enum st_dtype d)
{
	GW_BUG_ON((unsigned)d >= ST_DTYPE_COUNT);
	return dtypes[d].bits % 8 ? 0 : dtypes[d].bits / 8;
}

unsigned st_dtype_bits(enum st_dtype d)
{
	GW_BUG_ON((unsigned)d >= ST_DTYPE_COUNT);
	return dtypes[d].bits;
}

int st_dtype_parse(const char *name, enum st_dtype *ret)
{
	for (int d = 0; d < ST_DTYPE_COUNT; d++) {
		if (d != ST_OTHER && strcmp(name, dtypes[d].name) == 0) {
			*ret = (enum st_dtype)d;
			return 0;
		}
	}
	return -EINVAL;
}

static bool is_float(enum st_dtype d)
{
	return d == ST_F32 || d == ST_F16 || d == ST_BF16 || d == ST_F8_E4M3 || d == ST_F8_E5M2;
}

int st_dtype_readable(enum st_dtype d)
{
	return is_float(d);
}

/* A dtype string this reader does not know: spelled as the format's own
 * are (an upper-case letter, then upper-case letters, digits and '_'), so
 * that a garbled header is still refused. */
static bool other_dtype_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > ST_DTYPE_NAME_MAX)
		return false;
	if (s[0] < 'A' || s[0] > 'Z')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* ---- messages ------------------------------------------------------- */

/*
 * Up to CLIP bytes of s (n bytes, not NUL-terminated) for a message: cut at
 * a character boundary with "..." when longer, control bytes and invalid
 * UTF-8 shown as '?', so a hostile name cannot break the message's line.
 */
static const char *clipn(char *buf, size_t cap, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, i = 0;

	while (i < n) {
		size_t k = p[i] < 0x20 || p[i] == 0x7f ? 0 : json_utf8_seq(p + i, n - i);

		if (o + (k ? k : 1) + 4 > cap || o + (k ? k : 1) > CLIP) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (k) {
			memcpy(buf + o, p + i, k);
			o += k;
			i += k;
		} else {
			buf[o++] = '?';
			i++;
		}
	}
	buf[o] = 0;
	return buf;
}

static const char *clip(char *buf, size_t cap, const char *s)
{
	return clipn(buf, cap, s, strlen(s));
}

/* "[2, 3]" */
static const char *fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
	size_t o = 0;

	o += (size_t)snprintf(buf, cap, "[");
	for (int i = 0; i < ndim && o < cap; i++)
		o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "",
				      (long long)shape[i]);
	if (o < cap)
		snprintf(buf + o, cap - o, "]");
	return buf;
}

/* A JSON value as it reads in the header, clipped, for a message. */
static const char *fmt_json(char *buf, size_t cap, const cJSON *v)
{
	char *s = cJSON_PrintUnformatted(v);

	if (!s) {
		snprintf(buf, cap, "(a value)");
		return buf;
	}
	clip(buf, cap, s);
	cJSON_free(s);
	return buf;
}

/* ---- the lexical scan ----------------------------------------------- */

/* engine/json.h's scan, its fault in this file's words ("header ..."). */
static int header_scan(const char *what, const char *json, size_t len, struct json_scan *sc,
		       struct gw_err *err)
{
	static const struct json_limits lim = { .depth_max = ST_DEPTH_MAX,
						.values_max = ST_VALUES_MAX };
	char b[CLIP + 8];
	int r = json_scan(json, len, &lim, sc);
	size_t q = sc->string_at;
	/* The string the fault lies in, from after its quote. */
	const char *str = q == SIZE_MAX ? json : json + q + 1;

	json_scan_release(sc);
	if (r == 0)
		return 0;
	switch (sc->fault) {
	case JSON_FAULT_UNTERMINATED:
		return gw_errf(err, -EBADMSG, "\"%s\": header ends inside the string at byte %zu "
			       "(truncated JSON)", what, q);
	case JSON_FAULT_ESCAPED_NUL:
		return gw_errf(err, -EBADMSG, "\"%s\": the string \"%s\" at byte %zu contains a NUL "
			       "(\\u0000)", what, clipn(b, sizeof(b), str, sc->at + 6 - q - 1), q);
	case JSON_FAULT_ESCAPE:
		return gw_errf(err, -EBADMSG, "\"%s\": the string \"%s\" at byte %zu has a \\u "
			       "escape without four hex digits", what,
			       clipn(b, sizeof(b), str, sc->at - q - 1), q);
	case JSON_FAULT_NUL:
	case JSON_FAULT_CONTROL:
		if (q == SIZE_MAX)
			break; /* a NUL outside strings: not JSON */
		return gw_errf(err, -EBADMSG, "\"%s\": the string \"%s\" at byte %zu contains the "
			       "raw control byte 0x%02x", what, clipn(b, sizeof(b), str, sc->at - q - 1),
			       q, sc->byte);
	case JSON_FAULT_UTF8:
		if (q == SIZE_MAX)
			break;
		return gw_errf(err, -EBADMSG, "\"%s\": the string \"%s\" at byte %zu has invalid "
			       "UTF-8 (byte 0x%02x at byte %zu)", what,
			       clipn(b, sizeof(b), str, sc->at - q - 1), q, sc->byte, sc->at);
	case JSON_FAULT_DEPTH:
		return gw_errf(err, -EBADMSG, "\"%s\": header nests deeper than %d levels (at byte "
			       "%zu)", what, ST_DEPTH_MAX, sc->at);
	case JSON_FAULT_VALUES:
		return gw_errf(err, -EBADMSG, "\"%s\": header has more than %d JSON values, more "
			       "than %d tensors and %d metadata entries need", what, ST_VALUES_MAX,
			       ST_TENSORS_MAX, ST_META_MAX);
	case JSON_FAULT_SYNTAX:
	case JSON_FAULT_NONE:
		break;
	}
	/* cJSON would skip a byte order mark; JSON text has none. */
	if (sc->at < len && sc->byte >= 0x80)
		return gw_errf(err, -EBADMSG, "\"%s\": header is not valid JSON (byte 0x%02x at "
			       "byte %zu outside a string)", what, sc->byte, sc->at);
	return 1; /* not JSON: cJSON says where */
}

/* ---- the header ----------------------------------------------------- */

struct st_meta {
	char *key, *value;
};

struct st_header {
	struct st_tensor *t;             /* n of them, by data offsets */
	size_t n;
	const struct st_tensor **by_name; /* n of them, by name */
	struct st_meta *meta;            /* nmeta of them, by key */
	size_t nmeta;
};

void st_header_free(struct st_header *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++) {
		free((char *)h->t[i].name);
		if (h->t[i].dtype == ST_OTHER)
			free((char *)h->t[i].dtype_name);
	}
	for (size_t i = 0; i < h->nmeta; i++) {
		free(h->meta[i].key);
		free(h->meta[i].value);
	}
	free(h->t);
	free(h->by_name);
	free(h->meta);
	free(h);
}

size_t st_header_count(const struct st_header *h)
{
	return h->n;
}

const struct st_tensor *st_header_tensor(const struct st_header *h, size_t i)
{
	GW_BUG_ON(i >= h->n);
	return &h->t[i];
}

const struct st_tensor *st_header_find(const struct st_header *h, const char *name)
{
	size_t lo = 0, hi = h->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, h->by_name[mid]->name);

		if (c == 0)
			return h->by_name[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const char *st_header_meta(const struct st_header *h, const char *key)
{
	size_t lo = 0, hi = h->nmeta;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, h->meta[mid].key);

		if (c == 0)
			return h->meta[mid].value;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

size_t st_header_meta_count(const struct st_header *h)
{
	return h->nmeta;
}

void st_header_meta_at(const struct st_header *h, size_t i, const char **ret_key,
		       const char **ret_value)
{
	GW_BUG_ON(i >= h->nmeta);
	*ret_key = h->meta[i].key;
	*ret_value = h->meta[i].value;
}

/* Why v is not a non-negative integer below 2^53, or NULL if it is. */
static const char *json_uint(const cJSON *v, uint64_t *ret)
{
	int64_t n;

	switch (json_int(v, 0, (int64_t)ST_UINT_LIMIT - 1, &n)) {
	case JSON_NUM_OK:
		*ret = (uint64_t)n;
		return NULL;
	case JSON_NUM_NOT_NUMBER:
		return "not a number";
	case JSON_NUM_BELOW:
		return "negative";
	case JSON_NUM_NOT_INTEGER:
		return "not an integer";
	case JSON_NUM_NOT_FINITE:
		return v->valuedouble < 0 ? "negative" : "2^53 or more";
	case JSON_NUM_ABOVE:
		break;
	}
	return "2^53 or more";
}

static int cmp_offsets(const void *a, const void *b)
{
	const struct st_tensor *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int cmp_name(const void *a, const void *b)
{
	const struct st_tensor *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

static int cmp_meta(const void *a, const void *b)
{
	const struct st_meta *x = a, *y = b;

	return strcmp(x->key, y->key);
}

static int parse_meta(const char *what, const cJSON *m, struct st_header *h, struct gw_err *err)
{
	char b[CLIP + 8];
	size_t n = 0;
	const cJSON *it;

	if (h->meta)
		return gw_errf(err, -EBADMSG, "\"%s\": \"__metadata__\" appears twice", what);
	if (!cJSON_IsObject(m))
		return gw_errf(err, -EBADMSG, "\"%s\": \"__metadata__\" is %s, not an object", what,
			       json_kind(m));
	cJSON_ArrayForEach(it, m) {
		if (n == ST_META_MAX)
			return gw_errf(err, -EBADMSG, "\"%s\": \"__metadata__\" has more than %d "
				       "entries", what, ST_META_MAX);
		n++;
	}
	h->meta = gw_calloc(n ? n : 1, sizeof(*h->meta));
	cJSON_ArrayForEach(it, m) {
		if (!cJSON_IsString(it))
			return gw_errf(err, -EBADMSG, "\"%s\": __metadata__[\"%s\"] is %s, not a "
				       "string", what, clip(b, sizeof(b), it->string), json_kind(it));
		h->meta[h->nmeta].key = gw_strdup(it->string);
		h->meta[h->nmeta].value = gw_strdup(it->valuestring);
		h->nmeta++;
	}
	qsort(h->meta, h->nmeta, sizeof(*h->meta), cmp_meta);
	for (size_t i = 1; i < h->nmeta; i++)
		if (strcmp(h->meta[i - 1].key, h->meta[i].key) == 0)
			return gw_errf(err, -EBADMSG, "\"%s\": __metadata__ has the key \"%s\" twice",
				       what, clip(b, sizeof(b), h->meta[i].key));
	return 0;
}

/* One tensor entry into t (whose name is already set and checked). */
static int parse_tensor(const char *what, const cJSON *e, uint64_t data_size,
			struct st_tensor *t, struct gw_err *err)
{
	const cJSON *dtype = NULL, *shape = NULL, *offs = NULL, *it;
	char nb[CLIP + 8], jb[CLIP + 8], sb[CLIP + 8];
	const char *name = clip(nb, sizeof(nb), t->name), *why;
	uint64_t nelem = 1, nbytes, v[2];
	int i;

	if (!cJSON_IsObject(e))
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" is %s, not an object", what,
			       name, json_kind(e));
	cJSON_ArrayForEach(it, e) {
		const cJSON **slot = !strcmp(it->string, "dtype") ? &dtype :
				     !strcmp(it->string, "shape") ? &shape :
				     !strcmp(it->string, "data_offsets") ? &offs : NULL;

		if (!slot)
			return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" has the unknown key "
				       "\"%s\"", what, name, clip(jb, sizeof(jb), it->string));
		if (*slot)
			return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" has \"%s\" twice", what,
				       name, it->string);
		*slot = it;
	}

	if (!dtype)
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" has no \"dtype\"", what, name);
	if (!cJSON_IsString(dtype))
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\": \"dtype\" is %s, not a string",
			       what, name, json_kind(dtype));
	if (st_dtype_parse(dtype->valuestring, &t->dtype) == 0) {
		t->dtype_name = dtypes[t->dtype].name;
	} else if (other_dtype_ok(dtype->valuestring)) {
		/* A newer dtype: the checkpoint is still readable, as long as the
		 * model does not need this tensor. */
		t->dtype = ST_OTHER;
		t->dtype_name = gw_strdup(dtype->valuestring);
	} else {
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" has the dtype \"%s\", which is "
			       "not a dtype name", what, name, clip(jb, sizeof(jb), dtype->valuestring));
	}

	if (!shape)
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" has no \"shape\"", what, name);
	if (!cJSON_IsArray(shape))
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\": \"shape\" is %s, not an array",
			       what, name, json_kind(shape));
	i = 0;
	cJSON_ArrayForEach(it, shape) {
		uint64_t d;

		if (i == ST_MAX_DIMS)
			return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\": shape has more than %d "
				       "dimensions", what, name, ST_MAX_DIMS);
		if ((why = json_uint(it, &d)))
			return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\": shape %s has %s, %s, "
				       "not a non-negative integer", what, name,
				       fmt_json(jb, sizeof(jb), shape), fmt_json(sb, sizeof(sb), it),
				       why);
		t->shape[i++] = (int64_t)d;
		if (__builtin_mul_overflow(nelem, d, &nelem))
			return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\": shape %s has 2^64 "
				       "elements or more", what, name, fmt_json(jb, sizeof(jb), shape));
	}
	t->ndim = i;
	t->nelem = nelem;
	/* Bits, then bytes: a packed 4- or 6-bit tensor must fill whole bytes. */
	if (__builtin_mul_overflow(nelem, (uint64_t)dtypes[t->dtype].bits, &nbytes))
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\": %s %s is 2^64 bytes or more",
			       what, name, t->dtype_name, fmt_json(jb, sizeof(jb), shape));
	if (nbytes % 8)
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\": %s %s does not fill whole "
			       "bytes", what, name, t->dtype_name, fmt_json(jb, sizeof(jb), shape));
	nbytes /= 8;

	if (!offs)
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" has no \"data_offsets\"", what,
			       name);
	if (!cJSON_IsArray(offs))
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\": \"data_offsets\" is %s, not "
			       "an array", what, name, json_kind(offs));
	i = 0;
	cJSON_ArrayForEach(it, offs) {
		if (i == 2)
			break;
		if ((why = json_uint(it, &v[i])))
			return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\": data_offsets %s has %s, "
				       "%s, not a non-negative integer", what, name,
				       fmt_json(jb, sizeof(jb), offs), fmt_json(sb, sizeof(sb), it),
				       why);
		i++;
	}
	if (i != 2 || cJSON_GetArraySize(offs) != 2)
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\": data_offsets %s is not "
			       "[begin, end]", what, name, fmt_json(jb, sizeof(jb), offs));
	t->begin = v[0];
	t->end = v[1];
	if (t->begin > t->end)
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\": data_offsets [%llu, %llu] are "
			       "reversed (begin after end)", what, name,
			       (unsigned long long)t->begin, (unsigned long long)t->end);
	if (t->end > data_size)
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\": data_offsets [%llu, %llu] "
			       "reach beyond the %llu bytes of data", what, name,
			       (unsigned long long)t->begin, (unsigned long long)t->end,
			       (unsigned long long)data_size);
	if (t->dtype != ST_OTHER && t->end - t->begin != nbytes)
		return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\": data_offsets [%llu, %llu] do "
			       "not match %s %s (%llu bytes)", what, name,
			       (unsigned long long)t->begin, (unsigned long long)t->end,
			       dtypes[t->dtype].name, fmt_shape(sb, sizeof(sb), t->ndim, t->shape),
			       (unsigned long long)nbytes);
	return 0;
}

/*
 * The offsets, in order, must tile [0, data_size): each tensor begins where
 * the one before it ended.  A zero-size tensor (begin == end, e.g. shape
 * [0]) takes no bytes and fits wherever the running end is, as in the
 * reference implementation; sorting by (begin, end) puts it before a tensor
 * that starts at the same offset, and one that falls inside another
 * tensor's bytes is an overlap.
 */
static int check_tiling(const char *what, const struct st_header *h, uint64_t data_size,
			struct gw_err *err)
{
	char b1[CLIP + 8], b2[CLIP + 8];
	uint64_t at = 0;

	for (size_t i = 0; i < h->n; i++) {
		const struct st_tensor *t = &h->t[i];

		if (t->begin < at)
			return gw_errf(err, -EBADMSG, "\"%s\": tensor \"%s\" at data_offsets "
				       "[%llu, %llu] overlaps tensor \"%s\" at [%llu, %llu]", what,
				       clip(b1, sizeof(b1), t->name), (unsigned long long)t->begin,
				       (unsigned long long)t->end, clip(b2, sizeof(b2), h->t[i - 1].name),
				       (unsigned long long)h->t[i - 1].begin,
				       (unsigned long long)h->t[i - 1].end);
		if (t->begin > at)
			return gw_errf(err, -EBADMSG, "\"%s\": data bytes [%llu, %llu) belong to no "
				       "tensor (a hole before tensor \"%s\")", what,
				       (unsigned long long)at, (unsigned long long)t->begin,
				       clip(b1, sizeof(b1), t->name));
		at = t->end;
	}
	if (at != data_size)
		return gw_errf(err, -EBADMSG, "\"%s\": %llu trailing bytes after the last tensor "
			       "(tensors end at %llu, the data at %llu)", what,
			       (unsigned long long)(data_size - at), (unsigned long long)at,
			       (unsigned long long)data_size);
	return 0;
}

static int parse_root(const char *what, const cJSON *root, uint64_t data_size,
		      struct st_header *h, struct gw_err *err)
{
	char b[CLIP + 8];
	const cJSON *it;
	size_t n = 0;
	int r;

	cJSON_ArrayForEach(it, root)
		if (strcmp(it->string, "__metadata__") != 0)
			n++;
	if (n > ST_TENSORS_MAX)
		return gw_errf(err, -EBADMSG, "\"%s\": header has %zu tensors, above the limit of "
			       "%d", what, n, ST_TENSORS_MAX);
	h->t = gw_calloc(n ? n : 1, sizeof(*h->t));
	cJSON_ArrayForEach(it, root) {
		size_t len = strlen(it->string);
		struct st_tensor *t;

		if (strcmp(it->string, "__metadata__") == 0) {
			if ((r = parse_meta(what, it, h, err)) < 0)
				return r;
			continue;
		}
		if (len == 0)
			return gw_errf(err, -EBADMSG, "\"%s\": a tensor has an empty name", what);
		if (len > ST_NAME_MAX)
			return gw_errf(err, -EBADMSG, "\"%s\": tensor name \"%s\" is %zu bytes, above "
				       "the limit of %d", what, clip(b, sizeof(b), it->string), len,
				       ST_NAME_MAX);
		t = &h->t[h->n++];
		t->name = gw_strdup(it->string);
		if ((r = parse_tensor(what, it, data_size, t, err)) < 0)
			return r;
	}

	/* Names first: a duplicated entry would otherwise read as an overlap. */
	qsort(h->t, h->n, sizeof(*h->t), cmp_offsets);
	h->by_name = gw_calloc(h->n ? h->n : 1, sizeof(*h->by_name));
	for (size_t i = 0; i < h->n; i++)
		h->by_name[i] = &h->t[i];
	qsort(h->by_name, h->n, sizeof(*h->by_name), cmp_name);
	for (size_t i = 1; i < h->n; i++)
		if (strcmp(h->by_name[i - 1]->name, h->by_name[i]->name) == 0)
			return gw_errf(err, -EBADMSG, "\"%s\": tensor name \"%s\" appears twice",
				       what, clip(b, sizeof(b), h->by_name[i]->name));
	if (!h->meta)
		h->meta = gw_calloc(1, sizeof(*h->meta));
	return check_tiling(what, h, data_size, err);
}

int st_header_parse(const char *what, const char *json, size_t len, uint64_t data_size,
		    struct st_header **ret, struct gw_err *err)
{
	struct st_header *h = NULL;
	cJSON *root = NULL;
	const char *end = NULL;
	char *text = NULL;
	char b[CLIP + 8];
	struct json_scan sc;
	int r, not_json;

	if (len < 2 || len > ST_HEADER_MAX)
		return gw_errf(err, -EBADMSG, "\"%s\": header length %zu is outside 2 .. %u", what,
			       len, ST_HEADER_MAX);
	if ((not_json = header_scan(what, json, len, &sc, err)) < 0)
		return not_json;
	/* cJSON gets a terminated copy, so that no flaw of its own can read
	 * past the caller's bytes. */
	text = gw_malloc(len + 1);
	memcpy(text, json, len);
	text[len] = 0;
	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (!root || not_json) {
		size_t at = root ? sc.at : end && end >= text && end <= text + len ?
			    (size_t)(end - text) : 0;

		r = gw_errf(err, -EBADMSG, "\"%s\": header is not valid JSON (at byte %zu%s)", what,
			    at, at + 1 >= len ? ", truncated" : "");
		goto out;
	}
	/* The writer pads the header with spaces; anything else after the
	 * object is garbage. */
	for (const char *p = end; p < text + len; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
			r = gw_errf(err, -EBADMSG, "\"%s\": header has trailing bytes after the JSON "
				    "at byte %zu", what, (size_t)(p - text));
			goto out;
		}
	}
	if (!cJSON_IsObject(root)) {
		r = gw_errf(err, -EBADMSG, "\"%s\": header is %s, not a JSON object", what,
			    json_kind(root));
		goto out;
	}
	h = gw_calloc(1, sizeof(*h));
	if ((r = parse_root(what, root, data_size, h, err)) < 0)
		goto out;
	if (sc.odd_number != SIZE_MAX) {
		r = gw_errf(err, -EBADMSG, "\"%s\": header number %s at byte %zu is not written as "
			    "a plain integer", what,
			    clipn(b, sizeof(b), json + sc.odd_number, sc.odd_number_len), sc.odd_number);
		goto out;
	}
	*ret = h;
	h = NULL;
	r = 0;
out:
	st_header_free(h);
	cJSON_Delete(root);
	free(text);
	return r;
}

/* ---- the open file -------------------------------------------------- */

struct st_file {
	char *path;
	int fd;
	uint64_t data_start; /* 8 + N */
	uint64_t data_size;
	struct st_header *h;
};

void st_file_free(struct st_file *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	st_header_free(f->h);
	free(f->path);
	free(f);
}

const char *st_file_path(const struct st_file *f)
{
	return f->path;
}

const struct st_header *st_file_header(const struct st_file *f)
{
	return f->h;
}

uint64_t st_file_size(const struct st_file *f)
{
	return f->data_start + (f->h->n ? f->h->t[f->h->n - 1].end : 0);
}

/* n bytes at off; a file that ends early was truncated under us. */
static int read_exact(const char *path, int fd, void *buf, size_t n, uint64_t off,
		      struct gw_err *err)
{
	size_t got = 0;

	while (got < n) {
		size_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
		ssize_t k = pread(fd, (char *)buf + got, want, (off_t)(off + got));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return gw_errf(err, -errno, "\"%s\": read at offset %llu failed: %s", path,
				       (unsigned long long)(off + got), strerror(errno));
		if (k == 0)
			return gw_errf(err, -EIO, "\"%s\": truncated while open (no bytes at offset "
				       "%llu, %zu more expected)", path,
				       (unsigned long long)(off + got), n - got);
		got += (size_t)k;
	}
	return 0;
}

int st_file_open(const char *path, struct st_file **ret, struct gw_err *err)
{
	struct st_file *f = gw_calloc(1, sizeof(*f));
	unsigned char lenb[8];
	char *hdr = NULL;
	struct stat st;
	uint64_t n = 0, size;
	int r;

	f->path = gw_strdup(path);
	/* O_NONBLOCK: a FIFO must not hang the open; no effect on files. */
	f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (f->fd < 0) {
		r = gw_errf(err, -errno, "\"%s\": %s", path, strerror(errno));
		goto out;
	}
	if (fstat(f->fd, &st) < 0) {
		r = gw_errf(err, -errno, "\"%s\": %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = gw_errf(err, -EBADMSG, "\"%s\": not a regular file", path);
		goto out;
	}
	size = (uint64_t)st.st_size;
	if (size == 0) {
		r = gw_errf(err, -EBADMSG, "\"%s\": empty file, not safetensors", path);
		goto out;
	}
	if (size < 8) {
		r = gw_errf(err, -EBADMSG, "\"%s\": %llu bytes, shorter than the 8-byte header "
			    "length", path, (unsigned long long)size);
		goto out;
	}
	if ((r = read_exact(path, f->fd, lenb, 8, 0, err)) < 0)
		goto out;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | lenb[i];
	/* Bounds before any arithmetic: n may be near 2^64. */
	if (n < 2 || n > ST_HEADER_MAX) {
		r = gw_errf(err, -EBADMSG, "\"%s\": header length %llu is outside 2 .. %u", path,
			    (unsigned long long)n, ST_HEADER_MAX);
		goto out;
	}
	if (n > size - 8) {
		r = gw_errf(err, -EBADMSG, "\"%s\": header length %llu exceeds the file size %llu",
			    path, (unsigned long long)n, (unsigned long long)size);
		goto out;
	}
	hdr = gw_malloc((size_t)n);
	if ((r = read_exact(path, f->fd, hdr, (size_t)n, 8, err)) < 0)
		goto out;
	if ((r = st_header_parse(path, hdr, (size_t)n, size - 8 - n, &f->h, err)) < 0)
		goto out;
	f->data_start = 8 + n;
	f->data_size = size - 8 - n;
	*ret = f;
	f = NULL;
	r = 0;
out:
	free(hdr);
	st_file_free(f);
	return r;
}

/* ---- reads into fp32 ------------------------------------------------ */

/*
 * IEEE half to single, exactly: normal numbers rebias the exponent,
 * subnormals (and zero) are m * 2^-24, which a float holds exactly, and
 * infinities and NaNs keep their payload (a quiet NaN stays quiet).
 */
static inline uint32_t f16_bits(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, em = h & 0x7fff, bits;

	if (em >= 0x7c00) {
		bits = 0x7f800000 | (em & 0x3ff) << 13;
	} else if (em >= 0x0400) {
		bits = (em << 13) + ((uint32_t)(127 - 15) << 23);
	} else {
		float v = (float)em * 0x1p-24f;

		memcpy(&bits, &v, sizeof(bits));
	}
	return sign | bits;
}

float st_f16_to_f32(uint16_t h)
{
	uint32_t b = f16_bits(h);
	float f;

	memcpy(&f, &b, sizeof(f));
	return f;
}

/*
 * The 8-bit floats, exactly.  E4M3 ("fn"): bias 7, subnormals m * 2^-9,
 * no infinities, S.1111.111 the only NaN, 448 the largest.  E5M2: bias 15,
 * subnormals m * 2^-16, exponent 31 infinity (m 0) or NaN, as IEEE half
 * (whose top byte it is).
 */
float st_f8e4m3_to_f32(uint8_t b)
{
	int e = b >> 3 & 0xf, m = b & 7;
	float v;

	if (e == 0xf && m == 7)
		v = NAN;
	else if (e == 0)
		v = ldexpf((float)m, -9);
	else
		v = ldexpf((float)(8 + m), e - 7 - 3);
	return b & 0x80 ? -v : v;
}

float st_f8e5m2_to_f32(uint8_t b)
{
	return st_f16_to_f32((uint16_t)(b << 8));
}

float st_bf16_to_f32(uint16_t b)
{
	uint32_t u = (uint32_t)b << 16;
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

void st_convert_f32(enum st_dtype d, const void *src, float *dst, size_t n)
{
	const unsigned char *s = src;

	switch (d) {
	case ST_F32:
		memcpy(dst, src, n * sizeof(float));
		break;
	case ST_BF16:
		vec_bf16_to_f32(dst, src, n);
		break;
	case ST_F16:
		for (size_t i = 0; i < n; i++) {
			uint32_t u = f16_bits((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));

			memcpy(&dst[i], &u, sizeof(u));
		}
		break;
	case ST_F8_E4M3:
	case ST_F8_E5M2: {
		/* A table of the 256 values per call: cheap beside any tensor
		 * worth reading, and no shared state between threads. */
		float tab[256];

		for (int b = 0; b < 256; b++)
			tab[b] = d == ST_F8_E4M3 ? st_f8e4m3_to_f32((uint8_t)b)
						 : st_f8e5m2_to_f32((uint8_t)b);
		for (size_t i = 0; i < n; i++)
			dst[i] = tab[s[i]];
		break;
	}
	default:
		GW_BUG_ON(!is_float(d));
	}
}

static void check_owned(const struct st_file *f, const struct st_tensor *t)
{
	GW_BUG_ON(!f || !t);
	GW_BUG_ON(t < f->h->t || t >= f->h->t + f->h->n);
}

/* Elements [e0, e0 + n) of t as fp32. */
static int read_elems(struct st_file *f, const struct st_tensor *t, uint64_t e0, uint64_t n,
		      float *out, struct gw_err *err)
{
	size_t es = st_dtype_size(t->dtype), cap;
	uint64_t off = f->data_start + t->begin + e0 * es;
	unsigned char small[16384], *buf = small;
	char b[CLIP + 8];
	int r = 0;

	if (!is_float(t->dtype))
		return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\" is %s, not F32, F16, BF16, "
			       "F8_E4M3 or F8_E5M2", f->path, clip(b, sizeof(b), t->name),
			       t->dtype_name);
	if (e0 > t->nelem || n > t->nelem - e0)
		return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\": elements [%llu, %llu + %llu) "
			       "are outside its %llu", f->path, clip(b, sizeof(b), t->name),
			       (unsigned long long)e0, (unsigned long long)e0, (unsigned long long)n,
			       (unsigned long long)t->nelem);
	if (n == 0)
		return 0;
	if (t->dtype == ST_F32)
		return read_exact(f->path, f->fd, out, (size_t)n * 4, off, err);
	cap = sizeof(small);
	if (n * es > cap) {
		cap = n * es < ST_CHUNK ? (size_t)(n * es) : ST_CHUNK;
		buf = gw_malloc(cap);
	}
	for (uint64_t done = 0; done < n;) {
		size_t k = n - done < cap / es ? (size_t)(n - done) : cap / es;

		if ((r = read_exact(f->path, f->fd, buf, k * es, off + done * es, err)) < 0)
			break;
		st_convert_f32(t->dtype, buf, out + done, k);
		done += k;
	}
	if (buf != small)
		free(buf);
	return r;
}

int st_file_read_f32(struct st_file *f, const struct st_tensor *t, float *out,
		     struct gw_err *err)
{
	check_owned(f, t);
	return read_elems(f, t, 0, t->nelem, out, err);
}

int st_file_read_rows_f32(struct st_file *f, const struct st_tensor *t, int64_t row0,
			  int64_t nrows, float *out, struct gw_err *err)
{
	char b[CLIP + 8];
	uint64_t row = 1;

	check_owned(f, t);
	if (t->ndim < 1)
		return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\" is a scalar, it has no rows",
			       f->path, clip(b, sizeof(b), t->name));
	if (row0 < 0 || nrows < 0 || row0 > t->shape[0] || nrows > t->shape[0] - row0)
		return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\": rows [%lld, %lld + %lld) are "
			       "outside its %lld rows", f->path, clip(b, sizeof(b), t->name),
			       (long long)row0, (long long)row0, (long long)nrows,
			       (long long)t->shape[0]);
	/* The trailing product, not nelem / shape[0], so that shape [0, 5]
	 * still has rows of 5. */
	for (int i = 1; i < t->ndim; i++)
		row *= (uint64_t)t->shape[i];
	return read_elems(f, t, (uint64_t)row0 * row, (uint64_t)nrows * row, out, err);
}

int st_file_read_elems_f32(struct st_file *f, const struct st_tensor *t, uint64_t e0,
			   uint64_t n, float *out, struct gw_err *err)
{
	check_owned(f, t);
	return read_elems(f, t, e0, n, out, err);
}

int st_file_read_elems_raw(struct st_file *f, const struct st_tensor *t, uint64_t e0,
			   uint64_t n, void *out, struct gw_err *err)
{
	size_t es;
	char b[CLIP + 8];

	check_owned(f, t);
	es = st_dtype_size(t->dtype);
	if (es == 0 || e0 > t->nelem || n > t->nelem - e0)
		return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\": elements [%llu, %llu + %llu) "
			       "are outside its %llu (or its dtype %s has no byte size)", f->path,
			       clip(b, sizeof(b), t->name), (unsigned long long)e0,
			       (unsigned long long)e0, (unsigned long long)n,
			       (unsigned long long)t->nelem, t->dtype_name);
	return read_exact(f->path, f->fd, out, (size_t)(n * es), f->data_start + t->begin + e0 * es,
			  err);
}

int st_file_read_raw(struct st_file *f, const struct st_tensor *t, void *out,
		     struct gw_err *err)
{
	check_owned(f, t);
	return read_exact(f->path, f->fd, out, (size_t)(t->end - t->begin),
			  f->data_start + t->begin, err);
}

/* ---- the writer ----------------------------------------------------- */

static int cmp_write_name(const void *a, const void *b)
{
	const struct st_write_tensor *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

static int cmp_write_key(const void *a, const void *b)
{
	const struct st_write_meta *const *x = a, *const *y = b;

	return strcmp((*x)->key, (*y)->key);
}

/* Inputs a reader would refuse, refused before anything is written. */
static int write_check(const char *path, const struct st_write_tensor *tensors, size_t n,
		       const struct st_write_meta *meta, size_t nmeta, uint64_t *sizes,
		       struct gw_err *err)
{
	const struct st_write_tensor **by_name = NULL;
	const struct st_write_meta **keys = NULL;
	uint64_t total = 0;
	char b[CLIP + 8];
	int r = -EINVAL;

	if (n > ST_TENSORS_MAX || nmeta > ST_META_MAX)
		return gw_errf(err, -EINVAL, "\"%s\": %zu tensors and %zu metadata entries, above "
			       "the limits of %d and %d", path, n, nmeta, ST_TENSORS_MAX,
			       ST_META_MAX);
	for (size_t i = 0; i < n; i++) {
		const struct st_write_tensor *t = &tensors[i];
		uint64_t nelem = 1;

		if (!t->name || !*t->name || strlen(t->name) > ST_NAME_MAX || !json_utf8_valid(t->name, strlen(t->name)) ||
		    strcmp(t->name, "__metadata__") == 0)
			return gw_errf(err, -EINVAL, "\"%s\": tensor %zu has the name \"%s\": empty, "
				       "above %d bytes, not UTF-8 or reserved", path, i,
				       t->name ? clip(b, sizeof(b), t->name) : "(null)",
				       ST_NAME_MAX);
		clip(b, sizeof(b), t->name);
		if ((unsigned)t->dtype >= ST_DTYPE_COUNT)
			return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\" has the dtype %d", path, b,
				       (int)t->dtype);
		if (t->ndim < 0 || t->ndim > ST_MAX_DIMS)
			return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\" has %d dimensions, not "
				       "0 .. %d", path, b, t->ndim, ST_MAX_DIMS);
		for (int d = 0; d < t->ndim; d++)
			if (t->shape[d] < 0 || (uint64_t)t->shape[d] >= ST_UINT_LIMIT ||
			    __builtin_mul_overflow(nelem, (uint64_t)t->shape[d], &nelem))
				return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\" has a dimension "
					       "that is negative or too large", path, b);
		if (st_dtype_size(t->dtype) == 0)
			return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\" is %s, which is not "
				       "written here", path, b, dtypes[t->dtype].name);
		if (__builtin_mul_overflow(nelem, st_dtype_size(t->dtype), &sizes[i]) ||
		    sizes[i] >= ST_UINT_LIMIT || (total += sizes[i]) >= ST_UINT_LIMIT)
			return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\" takes the data past 2^53 "
				       "bytes", path, b);
		if (sizes[i] && !t->data)
			return gw_errf(err, -EINVAL, "\"%s\": tensor \"%s\" has no data", path, b);
	}
	for (size_t i = 0; i < nmeta; i++)
		if (!meta[i].key || !meta[i].value || !json_utf8_valid(meta[i].key, strlen(meta[i].key)) ||
		    !json_utf8_valid(meta[i].value, strlen(meta[i].value)))
			return gw_errf(err, -EINVAL, "\"%s\": metadata entry %zu is missing or not "
				       "UTF-8", path, i);

	by_name = gw_calloc(n ? n : 1, sizeof(*by_name));
	for (size_t i = 0; i < n; i++)
		by_name[i] = &tensors[i];
	qsort(by_name, n, sizeof(*by_name), cmp_write_name);
	for (size_t i = 1; i < n; i++) {
		if (strcmp(by_name[i - 1]->name, by_name[i]->name) == 0) {
			r = gw_errf(err, -EINVAL, "\"%s\": tensor name \"%s\" appears twice", path,
				    clip(b, sizeof(b), by_name[i]->name));
			goto out;
		}
	}
	keys = gw_calloc(nmeta ? nmeta : 1, sizeof(*keys));
	for (size_t i = 0; i < nmeta; i++)
		keys[i] = &meta[i];
	qsort(keys, nmeta, sizeof(*keys), cmp_write_key);
	for (size_t i = 1; i < nmeta; i++) {
		if (strcmp(keys[i - 1]->key, keys[i]->key) == 0) {
			r = gw_errf(err, -EINVAL, "\"%s\": metadata key \"%s\" appears twice", path,
				    clip(b, sizeof(b), keys[i]->key));
			goto out;
		}
	}
	r = 0;
out:
	free(by_name);
	free(keys);
	return r;
}

/* cJSON would print 1e15 as "1e+15", which readers (ours included) refuse
 * in a shape or offset; so numbers go in as raw digits. */
static cJSON *raw_uint(uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
	return cJSON_CreateRaw(num);
}

static char *build_header(const struct st_write_tensor *tensors, size_t n,
			  const struct st_write_meta *meta, size_t nmeta, const uint64_t *sizes)
{
	cJSON *root = cJSON_CreateObject();
	uint64_t off = 0;
	char *json;

	if (nmeta) {
		cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");

		for (size_t i = 0; i < nmeta; i++)
			cJSON_AddStringToObject(m, meta[i].key, meta[i].value);
	}
	for (size_t i = 0; i < n; i++) {
		const struct st_write_tensor *t = &tensors[i];
		cJSON *e = cJSON_CreateObject(), *sh = cJSON_CreateArray(), *of = cJSON_CreateArray();

		cJSON_AddStringToObject(e, "dtype", dtypes[t->dtype].name);
		for (int d = 0; d < t->ndim; d++)
			cJSON_AddItemToArray(sh, raw_uint((uint64_t)t->shape[d]));
		cJSON_AddItemToObject(e, "shape", sh);
		cJSON_AddItemToArray(of, raw_uint(off));
		cJSON_AddItemToArray(of, raw_uint(off + sizes[i]));
		cJSON_AddItemToObject(e, "data_offsets", of);
		cJSON_AddItemToObject(root, t->name, e);
		off += sizes[i];
	}
	/* An allocation that failed above leaves the header short of an item;
	 * st_write's own parse of the result catches that. */
	json = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return json;
}

int st_write(const char *path, const struct st_write_tensor *tensors, size_t n,
	     const struct st_write_meta *meta, size_t nmeta, struct gw_err *err)
{
	uint64_t *sizes = gw_calloc(n ? n : 1, sizeof(*sizes)), total = 0;
	struct st_header *check = NULL;
	char *json = NULL, *hdr = NULL, *dir = NULL;
	struct gw_piece *pieces = NULL;
	const char *slash;
	unsigned char lenb[8];
	size_t len, padded;
	int r;

	if ((r = write_check(path, tensors, n, meta, nmeta, sizes, err)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		total += sizes[i];
	if (!(json = build_header(tensors, n, meta, nmeta, sizes))) {
		r = gw_errf(err, -ENOMEM, "\"%s\": out of memory for the header", path);
		goto out;
	}
	/* Padded with spaces to a multiple of 8, as the reference writer does,
	 * so that the data starts aligned. */
	len = strlen(json);
	padded = (len + 7) & ~(size_t)7;
	if (padded > ST_HEADER_MAX) {
		r = gw_errf(err, -EINVAL, "\"%s\": the header would be %zu bytes, above the limit "
			    "of %u", path, padded, ST_HEADER_MAX);
		goto out;
	}
	hdr = gw_malloc(padded);
	memcpy(hdr, json, len);
	memset(hdr + len, ' ', padded - len);
	/* Never write a file the reader refuses. */
	if ((r = st_header_parse(path, hdr, padded, total, &check, err)) < 0)
		goto out;
	for (int i = 0; i < 8; i++)
		lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));

	/* Header and tensors in one atomic replace (engine/file.h). */
	pieces = gw_calloc(n + 2, sizeof(*pieces));
	pieces[0] = (struct gw_piece){ lenb, 8 };
	pieces[1] = (struct gw_piece){ hdr, padded };
	for (size_t i = 0; i < n; i++)
		pieces[i + 2] = (struct gw_piece){ tensors[i].data, (size_t)sizes[i] };
	slash = strrchr(path, '/');
	dir = slash ? gw_strdup(path) : gw_strdup(".");
	if (slash)
		dir[slash == path ? 1 : slash - path] = 0;
	r = gw_file_write_atomicv(dir, slash ? slash + 1 : path, pieces, n + 2, 0644, err);
out:
	free(pieces);
	free(dir);
	st_header_free(check);
	cJSON_free(json);
	free(hdr);
	free(sizes);
	return r;
}
