/*
 * test_safetensors.c — the safetensors reader and writer.
 *
 * Valid files are written with st_write or by hand (mkfile: a header string
 * and N data bytes) and read back against hand-computed values; every
 * malformed input from SPEC §2 and issue 2 is a file built here, and its
 * test checks the code and that the message names the file and the fault.
 * F16 and BF16 conversions are checked exhaustively against an independent
 * ldexp formula.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"

#define CHECK_MSG(cond, ...) \
	do { if (!(cond)) tap_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#include "engine/safetensors.h"

static struct gw_err err;

/* A file: 8-byte little-endian n, hlen bytes of hdr, then ndata bytes
 * 0, 1, 2, ... (mod 251).  Returns its path (static, one per name slot). */
static const char *mkfile_raw(const char *name, uint64_t n, const char *hdr, size_t hlen,
			      size_t ndata)
{
	static char paths[4][4096];
	static int slot;
	unsigned char *buf = malloc(8 + hlen + ndata);
	char *p = paths[slot++ % 4];

	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)(n >> (8 * i));
	memcpy(buf + 8, hdr, hlen);
	for (size_t i = 0; i < ndata; i++)
		buf[8 + hlen + i] = (unsigned char)(i % 251);
	snprintf(p, 4096, "%s", tap_write_file(name, buf, 8 + hlen + ndata));
	free(buf);
	return p;
}

static const char *mkfile(const char *name, const char *hdr, size_t ndata)
{
	return mkfile_raw(name, strlen(hdr), hdr, strlen(hdr), ndata);
}

/* The file must be refused with -EBADMSG and a message that starts with
 * its quoted path and contains fault. */
static void refused_at(int line, const char *path, const char *fault)
{
	struct st_file *f = NULL;
	char want[4200];
	int r = st_file_open(path, &f, &err);

	if (r != -EBADMSG)
		tap_fail(__FILE__, line, "st_file_open: got %d, expected -EBADMSG (%s)", r, err.msg);
	if (f)
		tap_fail(__FILE__, line, "ret_f written on failure");
	snprintf(want, sizeof(want), "\"%s\": ", path);
	if (strncmp(err.msg, want, strlen(want)) != 0)
		tap_fail(__FILE__, line, "message does not start with the path: \"%s\"", err.msg);
	if (!strstr(err.msg, fault))
		tap_fail(__FILE__, line, "message lacks \"%s\": \"%s\"", fault, err.msg);
}
#define REFUSED(path, fault) refused_at(__LINE__, path, fault)
/* A header (with exactly ndata data bytes) that must be refused. */
#define REFUSED_HDR(hdr, ndata, fault) refused_at(__LINE__, mkfile("bad.safetensors", hdr, ndata), fault)

static struct st_file *open_ok_at(int line, const char *path)
{
	struct st_file *f = NULL;

	if (st_file_open(path, &f, &err) != 0)
		tap_fail(__FILE__, line, "st_file_open(%s): %s", path, err.msg);
	return f;
}
#define OPEN_OK(path) open_ok_at(__LINE__, path)

static int same_bits(float a, float b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

static off_t file_size(const char *path)
{
	struct stat st;

	CHECK_INT_EQ(stat(path, &st), 0);
	return st.st_size;
}

/* ---- valid files ---------------------------------------------------- */

static void test_round_trip(void)
{
	const float w[6] = { 1.5f, -2.25f, 0.0f, 3e-5f, -1e10f, 7.0f };
	/* BF16 1.0, -2.0, 3.140625 and F16 1.0, -2.0, 1365/4096, 2^-24, by
	 * hand from the bit layouts. */
	const uint16_t b[3] = { 0x3f80, 0xc000, 0x4049 };
	const uint16_t h[4] = { 0x3c00, 0xc000, 0x3555, 0x0001 };
	const int32_t ids[2] = { -7, 123456 };
	const struct st_write_tensor t[] = {
		{ "w", ST_F32, 2, { 2, 3 }, w },
		{ "model.b", ST_BF16, 1, { 3 }, b },
		{ "h", ST_F16, 2, { 2, 2 }, h },
		{ "ids", ST_I32, 1, { 2 }, ids },
	};
	const struct st_write_meta m[] = { { "format", "pt" }, { "step", "1000" } };
	const char want_hdr[] =
		"{\"__metadata__\":{\"format\":\"pt\",\"step\":\"1000\"},"
		"\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
		"\"model.b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[24,30]},"
		"\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[30,38]},"
		"\"ids\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[38,46]}}";
	size_t hl = sizeof(want_hdr) - 1, padded = (hl + 7) / 8 * 8;
	char path[4096], text[4200];
	struct st_file *f;
	const struct st_header *hd;
	const struct st_tensor *x;
	float out[6];
	int32_t raw[2];
	unsigned char lenb[8];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/rt.safetensors", tap_tmpdir());
	CHECK_INT_EQ(st_write(path, t, 4, m, 2, &err), 0);

	/* The bytes on disk, against a header written by hand. */
	CHECK_INT_EQ(file_size(path), 8 + padded + 46);
	fp = fopen(path, "rb");
	CHECK(fp);
	CHECK_INT_EQ(fread(lenb, 1, 8, fp), 8);
	CHECK_INT_EQ(lenb[0] | lenb[1] << 8, padded);
	CHECK_INT_EQ(fread(text, 1, padded, fp), padded);
	fclose(fp);
	CHECK(memcmp(text, want_hdr, hl) == 0);
	for (size_t i = hl; i < padded; i++)
		CHECK_INT_EQ(text[i], ' ');

	f = OPEN_OK(path);
	hd = st_file_header(f);
	CHECK_STR_EQ(st_file_path(f), path);
	CHECK_INT_EQ(st_file_size(f), file_size(path));
	CHECK_INT_EQ(st_header_count(hd), 4);
	/* In data-offset order. */
	CHECK_STR_EQ(st_header_tensor(hd, 0)->name, "w");
	CHECK_STR_EQ(st_header_tensor(hd, 1)->name, "model.b");
	CHECK_STR_EQ(st_header_tensor(hd, 2)->name, "h");
	CHECK_STR_EQ(st_header_tensor(hd, 3)->name, "ids");
	CHECK(st_header_find(hd, "nope") == NULL);

	x = st_header_find(hd, "w");
	CHECK(x == st_header_tensor(hd, 0));
	CHECK_INT_EQ(x->dtype, ST_F32);
	CHECK_INT_EQ(x->ndim, 2);
	CHECK_INT_EQ(x->shape[0], 2);
	CHECK_INT_EQ(x->shape[1], 3);
	CHECK_INT_EQ(x->nelem, 6);
	CHECK_INT_EQ(x->begin, 0);
	CHECK_INT_EQ(x->end, 24);
	CHECK_INT_EQ(st_file_read_f32(f, x, out, &err), 0);
	for (int i = 0; i < 6; i++)
		CHECK(same_bits(out[i], w[i]));

	x = st_header_find(hd, "model.b");
	CHECK_INT_EQ(x->dtype, ST_BF16);
	CHECK_INT_EQ(x->begin, 24);
	CHECK_INT_EQ(st_file_read_f32(f, x, out, &err), 0);
	CHECK(same_bits(out[0], 1.0f));
	CHECK(same_bits(out[1], -2.0f));
	CHECK(same_bits(out[2], 3.140625f));

	x = st_header_find(hd, "h");
	CHECK_INT_EQ(x->dtype, ST_F16);
	CHECK_INT_EQ(st_file_read_f32(f, x, out, &err), 0);
	CHECK(same_bits(out[0], 1.0f));
	CHECK(same_bits(out[1], -2.0f));
	CHECK(same_bits(out[2], 1365.0f / 4096.0f));
	CHECK(same_bits(out[3], 0x1p-24f));

	x = st_header_find(hd, "ids");
	CHECK_INT_EQ(x->dtype, ST_I32);
	CHECK_INT_EQ(st_file_read_f32(f, x, out, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "tensor \"ids\" is I32, not F32, F16, BF16, F8_E4M3 or F8_E5M2");
	CHECK_INT_EQ(st_file_read_raw(f, x, raw, &err), 0);
	CHECK_INT_EQ(raw[0], -7);
	CHECK_INT_EQ(raw[1], 123456);
	st_file_free(f);

	/* No temporary file is left behind. */
	snprintf(text, sizeof(text), "%s/.rt.safetensors.tmp", tap_tmpdir());
	CHECK(access(text, F_OK) < 0);
}

static void test_read_rows(void)
{
	float w[12], out[12];
	uint16_t b[8];
	const struct st_write_tensor t[] = {
		{ "w", ST_F32, 2, { 4, 3 }, w },
		{ "b", ST_BF16, 3, { 4, 1, 2 }, b },
		{ "s", ST_F32, 0, { 0 }, w },
		{ "i", ST_U8, 1, { 3 }, "abc" },
	};
	char path[4096];
	struct st_file *f;
	const struct st_header *h;

	for (int i = 0; i < 12; i++)
		w[i] = (float)(i * 10);
	for (int i = 0; i < 8; i++)
		b[i] = (uint16_t)(0x4000 + i * 0x80); /* the exponent field steps at 0x80: 2^(1 + i) */
	snprintf(path, sizeof(path), "%s/rows.safetensors", tap_tmpdir());
	CHECK_INT_EQ(st_write(path, t, 4, NULL, 0, &err), 0);
	f = OPEN_OK(path);
	h = st_file_header(f);

	CHECK_INT_EQ(st_file_read_rows_f32(f, st_header_find(h, "w"), 1, 2, out, &err), 0);
	for (int i = 0; i < 6; i++)
		CHECK(same_bits(out[i], (float)(30 + 10 * i)));
	CHECK_INT_EQ(st_file_read_rows_f32(f, st_header_find(h, "w"), 3, 1, out, &err), 0);
	CHECK(same_bits(out[0], 90.0f) && same_bits(out[2], 110.0f));
	/* An empty range at the end is fine. */
	CHECK_INT_EQ(st_file_read_rows_f32(f, st_header_find(h, "w"), 4, 0, out, &err), 0);

	/* Rows of 2: rows 2 and 3 are elements 4 .. 7, 2^5 .. 2^8. */
	CHECK_INT_EQ(st_file_read_rows_f32(f, st_header_find(h, "b"), 2, 2, out, &err), 0);
	CHECK(same_bits(out[0], 32.0f));
	CHECK(same_bits(out[3], 256.0f));

	CHECK_INT_EQ(st_file_read_rows_f32(f, st_header_find(h, "w"), 3, 2, out, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, path);
	CHECK_STR_HAS(err.msg, "tensor \"w\": rows [3, 3 + 2) are outside its 4 rows");
	CHECK_INT_EQ(st_file_read_rows_f32(f, st_header_find(h, "w"), -1, 1, out, &err), -EINVAL);
	CHECK_INT_EQ(st_file_read_rows_f32(f, st_header_find(h, "w"), 0, -1, out, &err), -EINVAL);
	CHECK_INT_EQ(st_file_read_rows_f32(f, st_header_find(h, "w"), 5, 0, out, &err), -EINVAL);
	CHECK_INT_EQ(st_file_read_rows_f32(f, st_header_find(h, "w"), 1, INT64_MAX, out, &err),
		     -EINVAL);
	CHECK_INT_EQ(st_file_read_rows_f32(f, st_header_find(h, "s"), 0, 1, out, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "tensor \"s\" is a scalar");
	CHECK_INT_EQ(st_file_read_rows_f32(f, st_header_find(h, "i"), 0, 1, out, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "is U8, not F32");
	st_file_free(f);
}

/* A BF16 tensor bigger than the reader's conversion buffer, so that the
 * chunk loop runs several times and ends on a partial chunk. */
static void test_read_chunked(void)
{
	size_t n = 1500001;
	uint16_t *b = malloc(n * 2);
	float *out = malloc(n * 4);
	struct st_write_tensor t = { "big", ST_BF16, 2, { 1, (int64_t)n }, b };
	char path[4096];
	struct st_file *f;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint16_t)(i * 7919u);
	snprintf(path, sizeof(path), "%s/big.safetensors", tap_tmpdir());
	CHECK_INT_EQ(st_write(path, &t, 1, NULL, 0, &err), 0);
	f = OPEN_OK(path);
	CHECK_INT_EQ(st_file_read_f32(f, st_header_tensor(st_file_header(f), 0), out, &err), 0);
	for (size_t i = 0; i < n; i++) {
		uint32_t u;

		memcpy(&u, &out[i], 4);
		if (u != (uint32_t)b[i] << 16)
			tap_fail(__FILE__, __LINE__, "element %zu: 0x%08x", i, u);
	}
	st_file_free(f);
	free(b);
	free(out);
}

static void test_metadata(void)
{
	const struct st_write_meta m[] = { { "zeta", "1" }, { "alpha", "[\"a\",\"b\"]" },
					   { "", "empty key" } };
	const float x = 1;
	const struct st_write_tensor t = { "x", ST_F32, 0, { 0 }, &x };
	const char *k, *v, *p;
	char path[4096];
	struct st_file *f;
	const struct st_header *h;

	snprintf(path, sizeof(path), "%s/m.safetensors", tap_tmpdir());
	CHECK_INT_EQ(st_write(path, &t, 1, m, 3, &err), 0);
	f = OPEN_OK(path);
	h = st_file_header(f);
	CHECK_INT_EQ(st_header_meta_count(h), 3);
	CHECK_STR_EQ(st_header_meta(h, "zeta"), "1");
	CHECK_STR_EQ(st_header_meta(h, "alpha"), "[\"a\",\"b\"]");
	CHECK_STR_EQ(st_header_meta(h, ""), "empty key");
	CHECK(st_header_meta(h, "beta") == NULL);
	/* In key order. */
	st_header_meta_at(h, 0, &k, &v);
	CHECK_STR_EQ(k, "");
	st_header_meta_at(h, 1, &k, &v);
	CHECK_STR_EQ(k, "alpha");
	st_header_meta_at(h, 2, &k, &v);
	CHECK_STR_EQ(k, "zeta");
	CHECK_STR_EQ(v, "1");
	st_file_free(f);

	/* Without metadata, and with an empty metadata object. */
	p = mkfile("nm.safetensors", "{\"x\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
	f = OPEN_OK(p);
	CHECK_INT_EQ(st_header_meta_count(st_file_header(f)), 0);
	CHECK(st_header_meta(st_file_header(f), "format") == NULL);
	st_file_free(f);
	f = OPEN_OK(mkfile("em.safetensors", "{\"__metadata__\":{}}", 0));
	CHECK_INT_EQ(st_header_meta_count(st_file_header(f)), 0);
	CHECK_INT_EQ(st_header_count(st_file_header(f)), 0);
	st_file_free(f);
}

/* The smallest file: "{}" and no data.  Padding after the object is
 * whitespace of any kind; whitespace before it is JSON's own. */
static void test_minimal_and_padding(void)
{
	const char *pad =
		" \n{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}\t\r\n   ";
	struct st_file *f = OPEN_OK(mkfile("min.safetensors", "{}", 0));

	CHECK_INT_EQ(st_header_count(st_file_header(f)), 0);
	CHECK_INT_EQ(st_file_size(f), 10);
	st_file_free(f);
	f = OPEN_OK(mkfile("pad.safetensors", pad, 1));
	CHECK_INT_EQ(st_file_size(f), 8 + strlen(pad) + 1);
	st_file_free(f);
}

/* Shape [] is a scalar of one element; shape [0] and [3, 0] take no bytes
 * (begin == end) and fit wherever the running end is: first, between two
 * tensors, last, and two at the same offset. */
static void test_scalar_and_zero_size(void)
{
	const char *hdr =
		"{\"z0\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
		"\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
		"\"z1\":{\"dtype\":\"F16\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
		"\"z2\":{\"dtype\":\"BF16\",\"shape\":[0,5],\"data_offsets\":[4,4]},"
		"\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
		"\"z3\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[6,6]}}";
	struct st_file *f = OPEN_OK(mkfile("zs.safetensors", hdr, 6));
	const struct st_header *h = st_file_header(f);
	const struct st_tensor *t;
	float out[2] = { -1, -1 };
	unsigned char expect[4] = { 0, 1, 2, 3 };
	float want;

	CHECK_INT_EQ(st_header_count(h), 6);
	CHECK_STR_EQ(st_header_tensor(h, 0)->name, "z0");
	CHECK_STR_EQ(st_header_tensor(h, 1)->name, "s");
	CHECK_STR_EQ(st_header_tensor(h, 2)->name, "z1");
	CHECK_STR_EQ(st_header_tensor(h, 3)->name, "z2");
	CHECK_STR_EQ(st_header_tensor(h, 5)->name, "z3");
	t = st_header_find(h, "s");
	CHECK_INT_EQ(t->ndim, 0);
	CHECK_INT_EQ(t->nelem, 1);
	CHECK_INT_EQ(st_file_read_f32(f, t, out, &err), 0);
	memcpy(&want, expect, 4);
	CHECK(same_bits(out[0], want));
	t = st_header_find(h, "z1");
	CHECK_INT_EQ(t->nelem, 0);
	CHECK_INT_EQ(st_file_read_f32(f, t, out, &err), 0);
	CHECK_INT_EQ(st_file_read_rows_f32(f, t, 1, 2, out, &err), 0);
	CHECK_INT_EQ(st_file_read_rows_f32(f, st_header_find(h, "z2"), 0, 0, out, &err), 0);
	CHECK_INT_EQ(st_file_read_raw(f, st_header_find(h, "z3"), out, &err), 0);
	st_file_free(f);

	/* A zero-size tensor inside another's bytes is an overlap. */
	REFUSED_HDR("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
		    "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2]}}", 4,
		    "tensor \"z\" at data_offsets [2, 2] overlaps tensor \"a\" at [0, 4]");
	/* And one past the data reaches beyond it. */
	REFUSED_HDR("{\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[5,5]}}", 4,
		    "reach beyond the 4 bytes of data");
}

/* Every name the format allows: escapes decoded, UTF-8, and a backslash
 * followed by "u0000" (which is not a NUL). */
static void test_names(void)
{
	const char *hdr =
		"{\"a\\\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
		"\"caf\xc3\xa9 \xf0\x9f\x98\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]},"
		"\"x\\\\u0000\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,3]},"
		"\"\\u00e9\\ud83d\\ude00\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[3,4]}}";
	struct st_file *f = OPEN_OK(mkfile("names.safetensors", hdr, 4));
	const struct st_header *h = st_file_header(f);

	CHECK(st_header_find(h, "a\"b"));
	CHECK(st_header_find(h, "caf\xc3\xa9 \xf0\x9f\x98\x80"));
	CHECK(st_header_find(h, "x\\u0000"));
	CHECK(st_header_find(h, "\xc3\xa9\xf0\x9f\x98\x80"));
	st_file_free(f);
}

/* The tensor count limit: 100,000 accepted, one more refused. */
static void test_too_many_tensors(void)
{
	size_t cap = 64 * (ST_TENSORS_MAX + 2), o = 0;
	char *hdr = malloc(cap);
	struct st_file *f;

	o += (size_t)snprintf(hdr + o, cap - o, "{");
	for (int i = 0; i < ST_TENSORS_MAX; i++)
		o += (size_t)snprintf(hdr + o, cap - o,
				      "%s\"t%d\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}",
				      i ? "," : "", i);
	snprintf(hdr + o, cap - o, "}");
	f = OPEN_OK(mkfile("max.safetensors", hdr, 0));
	CHECK_INT_EQ(st_header_count(st_file_header(f)), ST_TENSORS_MAX);
	CHECK(st_header_find(st_file_header(f), "t99999"));
	st_file_free(f);
	snprintf(hdr + o, cap - o,
		 ",\"one_more\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}");
	REFUSED(mkfile("over.safetensors", hdr, 0), "100001 tensors, above the limit of 100000");
	free(hdr);
}

static void test_name_too_long_or_empty(void)
{
	char hdr[4096], name[ST_NAME_MAX + 2];
	struct st_file *f;

	memset(name, 'n', ST_NAME_MAX);
	name[ST_NAME_MAX] = 0;
	snprintf(hdr, sizeof(hdr), "{\"%s\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}",
		 name);
	f = OPEN_OK(mkfile("long.safetensors", hdr, 0));
	st_file_free(f);
	memset(name, 'n', ST_NAME_MAX + 1);
	name[ST_NAME_MAX + 1] = 0;
	snprintf(hdr, sizeof(hdr), "{\"%s\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}",
		 name);
	REFUSED_HDR(hdr, 0, "is 1025 bytes, above the limit of 1024");
	REFUSED_HDR("{\"\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0,
		    "a tensor has an empty name");
}

/* ---- the length field ------------------------------------------------ */

static void test_empty_file(void)
{
	REFUSED(tap_write_file("empty.safetensors", "", 0), "empty file");
}

static void test_shorter_than_8_bytes(void)
{
	REFUSED(tap_write_file("five.safetensors", "\x02\x00\x00\x00\x00", 5),
		"5 bytes, shorter than the 8-byte header length");
}

static void test_header_length_beyond_file(void)
{
	REFUSED(mkfile_raw("beyond.safetensors", 4096, "{}", 2, 90),
		"header length 4096 exceeds the file size 100");
	/* One byte too many. */
	REFUSED(mkfile_raw("beyond1.safetensors", 3, "{}", 2, 0),
		"header length 3 exceeds the file size 10");
}

static void test_header_length_above_100mb(void)
{
	REFUSED(mkfile_raw("huge.safetensors", ST_HEADER_MAX + 1, "{}", 2, 0),
		"header length 100000001 is outside 2 .. 100000000");
	/* At the limit it is the file size that refuses it. */
	REFUSED(mkfile_raw("limit.safetensors", ST_HEADER_MAX, "{}", 2, 0),
		"header length 100000000 exceeds the file size 10");
}

static void test_header_length_near_2_64(void)
{
	/* 8 + N would wrap to 0 and 7; N itself near INT64_MAX. */
	REFUSED(mkfile_raw("wrap0.safetensors", UINT64_MAX - 7, "{}", 2, 0),
		"header length 18446744073709551608 is outside");
	REFUSED(mkfile_raw("wrap7.safetensors", UINT64_MAX, "{}", 2, 0),
		"header length 18446744073709551615 is outside");
	REFUSED(mkfile_raw("i64.safetensors", (uint64_t)INT64_MAX + 1, "{}", 2, 0),
		"header length 9223372036854775808 is outside");
}

static void test_header_length_below_2(void)
{
	REFUSED(mkfile_raw("n0.safetensors", 0, "{}", 2, 0), "header length 0 is outside 2 ..");
	REFUSED(mkfile_raw("n1.safetensors", 1, "{}", 2, 0), "header length 1 is outside 2 ..");
}

/* ---- the JSON -------------------------------------------------------- */

static void test_not_json(void)
{
	REFUSED_HDR("hello world!", 0, "header is not valid JSON (at byte 0)");
	REFUSED_HDR("{'a': 1}", 0, "not valid JSON");
	/* A byte order mark, which cJSON alone would skip. */
	REFUSED_HDR("\xef\xbb\xbf{}", 0, "not valid JSON (byte 0xef at byte 0 outside a string)");
	/* Raw NUL bytes instead of space padding. */
	REFUSED(mkfile_raw("nulpad.safetensors", 8, "{}\0\0\0\0\0\0", 8, 0),
		"trailing bytes after the JSON at byte 2");
}

static void test_not_an_object(void)
{
	REFUSED_HDR("[1, 2]", 0, "header is an array, not a JSON object");
	REFUSED_HDR("\"string\"", 0, "header is a string, not a JSON object");
	REFUSED_HDR("12", 0, "header is a number, not a JSON object");
	REFUSED_HDR("null", 0, "header is null, not a JSON object");
}

static void test_truncated_json(void)
{
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]", 0, "not valid JSON");
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]", 0, "truncated");
	REFUSED_HDR("{\"w\":{\"dty", 0, "header ends inside the string at byte 6 (truncated JSON)");
	REFUSED_HDR("{\"w\\u00", 0, "truncated JSON");
	REFUSED_HDR("{\"w\\", 0, "truncated JSON");
}

static void test_trailing_garbage(void)
{
	REFUSED_HDR("{}x", 0, "trailing bytes after the JSON at byte 2");
	REFUSED_HDR("{} {}", 0, "trailing bytes after the JSON at byte 3");
}

static void test_nested_100000_deep(void)
{
	size_t depth = 100000;
	char *hdr = malloc(2 * depth + 16);

	memset(hdr, '[', depth);
	memset(hdr + depth, ']', depth);
	hdr[2 * depth] = 0;
	REFUSED_HDR(hdr, 0, "header nests deeper than 8 levels (at byte 8)");
	/* Inside an object, as a tensor entry. */
	memcpy(hdr, "{\"a\":", 5);
	memset(hdr + 5, '{', depth);
	hdr[5 + depth] = 0;
	REFUSED_HDR(hdr, 0, "header nests deeper than 8 levels");
	free(hdr);
}

/* More JSON values than any valid header holds, refused before cJSON
 * builds them. */
static void test_too_many_values(void)
{
	size_t n = 2100000;
	char *hdr = malloc(2 * n + 16);

	memcpy(hdr, "{\"a\":[", 6);
	for (size_t i = 0; i < n; i++)
		memcpy(hdr + 6 + 2 * i, "0,", 2);
	memcpy(hdr + 6 + 2 * n - 1, "]}", 3);
	REFUSED_HDR(hdr, 0, "JSON values");
	free(hdr);
}

static void test_nul_in_name(void)
{
	/* cJSON would hand back the name cut short to "a". */
	REFUSED_HDR("{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0,
		    "the string \"a\\u0000\" at byte 1 contains a NUL (\\u0000)");
	/* And a \u escape that is not four hex digits, which cJSON reads
	 * as U+0000: the name would be "a". */
	REFUSED_HDR("{\"a\\u00zzb\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0,
		    "the string \"a\" at byte 1 has a \\u escape without four hex digits");
	/* And a raw NUL byte. */
	REFUSED(mkfile_raw("rawnul.safetensors", 9, "{\"a\0b\":1}", 9, 0),
		"contains the raw control byte 0x00");
	REFUSED_HDR("{\"a\nb\":1}", 0, "contains the raw control byte 0x0a");
	/* In a metadata value too: the string would be silently cut. */
	REFUSED_HDR("{\"__metadata__\":{\"k\":\"v\\u0000w\"}}", 0, "contains a NUL");
}

static void test_invalid_utf8_in_name(void)
{
	static const char *bad[] = {
		"\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82",
		"\x80", "\xc3(",
	};
	char hdr[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(hdr, sizeof(hdr),
			 "{\"ok%s\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", bad[i]);
		REFUSED_HDR(hdr, 0, "the string \"ok\" at byte 1 has invalid UTF-8");
	}
	/* An escaped lone surrogate is refused by the JSON parse. */
	REFUSED_HDR("{\"\\ud800\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0,
		    "not valid JSON");
}

/* ---- the entries ----------------------------------------------------- */

static void test_entry_not_an_object(void)
{
	REFUSED_HDR("{\"w\":[1]}", 0, "tensor \"w\" is an array, not an object");
	REFUSED_HDR("{\"w\":\"F32\"}", 0, "tensor \"w\" is a string, not an object");
}

static void test_missing_dtype(void)
{
	REFUSED_HDR("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
		    "tensor \"w\" has no \"dtype\"");
}

/*
 * Dtypes newer than the reader's use: the format's own (F8_E8M0, packed F4
 * and F6) are sized in bits; a name the reader has never seen is accepted
 * with its bytes unchecked, so that a tensor the model does not use never
 * rejects the file; reading either as fp32 is refused naming the dtype.
 * A dtype that is not spelled like one is refused.
 */
static void test_unknown_dtype(void)
{
	const char *hdr =
		"{\"a\":{\"dtype\":\"F8_E8M0\",\"shape\":[3],\"data_offsets\":[0,3]},"
		"\"b\":{\"dtype\":\"F4\",\"shape\":[2,3],\"data_offsets\":[3,6]},"
		"\"c\":{\"dtype\":\"F6_E2M3\",\"shape\":[4],\"data_offsets\":[6,9]},"
		"\"d\":{\"dtype\":\"MXFP9_X\",\"shape\":[5],\"data_offsets\":[9,11]}}";
	struct st_file *f = NULL;
	const struct st_tensor *t;
	float out[8];
	const char *p = mkfile("new.safetensors", hdr, 11);

	CHECK_INT_EQ(st_file_open(p, &f, &err), 0);
	if (f) {
		CHECK_INT_EQ(st_file_header(f) ? st_header_count(st_file_header(f)) : 0, 4);
		t = st_header_find(st_file_header(f), "a");
		CHECK_INT_EQ(t->dtype, ST_F8_E8M0);
		t = st_header_find(st_file_header(f), "b");
		CHECK_INT_EQ(t->dtype, ST_F4);
		t = st_header_find(st_file_header(f), "d");
		CHECK_INT_EQ(t->dtype, ST_OTHER);
		CHECK_STR_EQ(t->dtype_name, "MXFP9_X");
		CHECK_INT_EQ(st_file_read_f32(f, t, out, &err), -EINVAL);
		CHECK_STR_HAS(err.msg, "tensor \"d\" is MXFP9_X, not F32, F16, BF16, F8_E4M3 or "
			      "F8_E5M2");
		t = st_header_find(st_file_header(f), "a");
		CHECK_INT_EQ(st_file_read_f32(f, t, out, &err), -EINVAL);
		CHECK_STR_HAS(err.msg, "tensor \"a\" is F8_E8M0, not");
	}
	st_file_free(f);
	REFUSED_HDR("{\"w\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2,
		    "tensor \"w\": F4 [3] does not fill whole bytes");
	REFUSED_HDR("{\"w\":{\"dtype\":\"F8_E8M0\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4,
		    "do not match F8_E8M0 [3] (3 bytes)");
	REFUSED_HDR("{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
		    "has the dtype \"f32\", which is not a dtype name");
	REFUSED_HDR("{\"w\":{\"dtype\":\"F8 E4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
		    "not a dtype name");
	REFUSED_HDR("{\"w\":{\"dtype\":\"\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
		    "not a dtype name");
	REFUSED_HDR("{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
		    "tensor \"w\": \"dtype\" is a number, not a string");
}

static void test_unknown_or_repeated_key(void)
{
	REFUSED_HDR("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":1}}", 1,
		    "tensor \"w\" has the unknown key \"x\"");
	REFUSED_HDR("{\"w\":{\"dtype\":\"U8\",\"dtype\":\"F32\",\"shape\":[1],"
		    "\"data_offsets\":[0,1]}}", 1, "tensor \"w\" has \"dtype\" twice");
}

static void test_shape_negative(void)
{
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}}", 8,
		    "tensor \"w\": shape [2,-1] has -1, negative, not a non-negative integer");
	/* -0 is zero, but no writer spells it so. */
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[-0],\"data_offsets\":[0,0]}}", 0,
		    "header number -0 at byte 29 is not written as a plain integer");
}

static void test_shape_fractional(void)
{
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,1.5],\"data_offsets\":[0,12]}}", 12,
		    "tensor \"w\": shape [2,1.5] has 1.5, not an integer");
	/* Integral values spelled otherwise: the reference reader refuses them
	 * too, and a double could not tell 3000000000000000.1 from 3e15. */
	REFUSED_HDR("{\"w\":{\"dtype\":\"U8\",\"shape\":[2.0],\"data_offsets\":[0,2]}}", 2,
		    "header number 2.0 at byte 28 is not written as a plain integer");
	REFUSED_HDR("{\"w\":{\"dtype\":\"U8\",\"shape\":[1e1],\"data_offsets\":[0,10]}}", 10,
		    "header number 1e1 at byte 28 is not written as a plain integer");
	REFUSED_HDR("{\"w\":{\"dtype\":\"U8\",\"shape\":[02],\"data_offsets\":[0,2]}}", 2,
		    "header number 02 at byte 28 is not written as a plain integer");
	REFUSED_HDR("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4.0]}}", 4,
		    "header number 4.0");
}

static void test_shape_overflowing(void)
{
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[1e30],\"data_offsets\":[0,4]}}", 4,
		    "has 1e+30, 2^53 or more, not a non-negative integer");
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[9007199254740992],\"data_offsets\":[0,4]}}",
		    4, "2^53 or more");
	REFUSED_HDR("{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],"
		    "\"data_offsets\":[0,4]}}", 4, "has 2^64 elements or more");
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,1073741824],"
		    "\"data_offsets\":[0,4]}}", 4,
		    "tensor \"w\": F32 [4294967296,1073741824] is 2^64 bytes or more");
	/* No overflow, but nowhere near the data. */
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4],\"data_offsets\":[0,4]}}",
		    4, "do not match F32 [4294967296, 4] (68719476736 bytes)");
	REFUSED_HDR("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
		    "\"data_offsets\":[0,1]}}", 1, "shape has more than 8 dimensions");
}

static void test_shape_not_integers(void)
{
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", 16,
		    "tensor \"w\": \"shape\" is a number, not an array");
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"4\"],\"data_offsets\":[0,16]}}", 16,
		    "shape [\"4\"] has \"4\", not a number");
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", 16,
		    "tensor \"w\" has no \"shape\"");
}

static void test_offsets_as_strings(void)
{
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[\"0\",\"16\"]}}", 16,
		    "tensor \"w\": data_offsets [\"0\",\"16\"] has \"0\", not a number");
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":\"0-16\"}}", 16,
		    "\"data_offsets\" is a string, not an array");
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16,16]}}", 16,
		    "data_offsets [0,16,16] is not [begin, end]");
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", 16,
		    "data_offsets [0] is not [begin, end]");
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", 16,
		    "tensor \"w\" has no \"data_offsets\"");
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,-16]}}", 16,
		    "has -16, negative");
}

static void test_offsets_reversed(void)
{
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", 16,
		    "tensor \"w\": data_offsets [16, 0] are reversed (begin after end)");
}

static void test_offsets_beyond_data(void)
{
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12,
		    "tensor \"w\": data_offsets [0, 16] reach beyond the 12 bytes of data");
	REFUSED_HDR("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[9007199254740000,"
		    "9007199254740016]}}", 16, "reach beyond the 16 bytes of data");
}

static void test_offsets_size_mismatch(void)
{
	const char *p = mkfile("x.safetensors",
			       "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12);
	char want[4200];
	struct st_file *f = NULL;

	CHECK_INT_EQ(st_file_open(p, &f, &err), -EBADMSG);
	snprintf(want, sizeof(want), "\"%s\": tensor \"w\": data_offsets [0, 12] do not match F32 "
		 "[2, 2] (16 bytes)", p);
	CHECK_STR_EQ(err.msg, want);
}

static void test_offsets_overlapping(void)
{
	REFUSED_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
		    "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24,
		    "tensor \"b\" at data_offsets [8, 24] overlaps tensor \"a\" at [0, 16]");
	/* Two tensors on the same bytes. */
	REFUSED_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
		    "\"b\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16,
		    "tensor \"b\" at data_offsets [0, 16] overlaps tensor \"a\" at [0, 16]");
}

static void test_offsets_hole(void)
{
	REFUSED_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,24]}}", 24,
		    "data bytes [8, 16) belong to no tensor (a hole before tensor \"b\")");
	/* A hole at the start. */
	REFUSED_HDR("{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
		    "data bytes [0, 4) belong to no tensor");
}

static void test_trailing_bytes(void)
{
	REFUSED_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12,
		    "4 trailing bytes after the last tensor (tensors end at 8, the data at 12)");
	REFUSED_HDR("{}", 1, "1 trailing bytes after the last tensor");
}

static void test_duplicate_names(void)
{
	REFUSED_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		    "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16,
		    "tensor name \"a\" appears twice");
	/* Same name once escaped: the same tensor after decoding. */
	REFUSED_HDR("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
		    "\"\\u0061\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16,
		    "tensor name \"a\" appears twice");
	REFUSED_HDR("{\"__metadata__\":{},\"__metadata__\":{}}", 0,
		    "\"__metadata__\" appears twice");
	REFUSED_HDR("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0,
		    "__metadata__ has the key \"k\" twice");
}

static void test_metadata_not_strings(void)
{
	REFUSED_HDR("{\"__metadata__\":{\"format\":\"pt\",\"step\":1000}}", 0,
		    "__metadata__[\"step\"] is a number, not a string");
	REFUSED_HDR("{\"__metadata__\":{\"a\":[\"x\"]}}", 0, "__metadata__[\"a\"] is an array");
	REFUSED_HDR("{\"__metadata__\":{\"a\":null}}", 0, "__metadata__[\"a\"] is null");
	REFUSED_HDR("{\"__metadata__\":\"pt\"}", 0, "\"__metadata__\" is a string, not an object");
}

/* A hostile name does not break the message: control bytes shown as '?'
 * and long names cut. */
static void test_message_clips_names(void)
{
	char hdr[4096], name[901];

	REFUSED_HDR("{\"a\\nb\":{\"dtype\":\"f8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0,
		    "tensor \"a?b\" has the dtype \"f8\", which is not a dtype name");
	memset(name, 'q', 900);
	name[900] = 0;
	snprintf(hdr, sizeof(hdr), "{\"%s\":{\"dtype\":\"f8\",\"shape\":[0],\"data_offsets\":[0,0]}}",
		 name);
	REFUSED_HDR(hdr, 0, "qqq...\" has the dtype \"f8\", which is not a dtype name");
}

/* st_header_parse on its own: the length bounds and data_size. */
static void test_header_parse_direct(void)
{
	const char *h = "{\"w\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,6]}}";
	struct st_header *hd = NULL;

	CHECK_INT_EQ(st_header_parse("mem", h, strlen(h), 6, &hd, &err), 0);
	CHECK_INT_EQ(st_header_count(hd), 1);
	CHECK_INT_EQ(st_header_find(hd, "w")->nelem, 3);
	st_header_free(hd);
	hd = NULL;
	CHECK_INT_EQ(st_header_parse("mem", h, strlen(h), 7, &hd, &err), -EBADMSG);
	CHECK_STR_HAS(err.msg, "\"mem\": 1 trailing bytes");
	CHECK_INT_EQ(st_header_parse("mem", h, strlen(h), 5, &hd, &err), -EBADMSG);
	CHECK_STR_HAS(err.msg, "\"mem\": tensor \"w\": data_offsets [0, 6] reach beyond");
	CHECK_INT_EQ(st_header_parse("mem", h, 1, 6, &hd, &err), -EBADMSG);
	CHECK_STR_HAS(err.msg, "\"mem\": header length 1 is outside 2 .. 100000000");
	/* The length is honoured: the same text cut short is truncated. */
	CHECK_INT_EQ(st_header_parse("mem", h, strlen(h) - 1, 6, &hd, &err), -EBADMSG);
	CHECK_STR_HAS(err.msg, "not valid JSON");
	CHECK(hd == NULL);
	st_header_free(NULL);
}

/* ---- the file system ------------------------------------------------- */

static void test_open_errors(void)
{
	char p[4096];
	struct st_file *f = NULL;

	snprintf(p, sizeof(p), "%s/missing.safetensors", tap_tmpdir());
	CHECK_INT_EQ(st_file_open(p, &f, &err), -ENOENT);
	CHECK_STR_HAS(err.msg, p);
	CHECK_STR_HAS(err.msg, "No such file or directory");
	CHECK_INT_EQ(st_file_open(tap_tmpdir(), &f, &err), -EBADMSG);
	CHECK_STR_HAS(err.msg, "not a regular file");
	snprintf(p, sizeof(p), "%s/fifo", tap_tmpdir());
	CHECK_INT_EQ(mkfifo(p, 0600), 0);
	CHECK_INT_EQ(st_file_open(p, &f, &err), -EBADMSG); /* and does not hang */
	CHECK_STR_HAS(err.msg, "not a regular file");
	snprintf(p, sizeof(p), "%s", mkfile("secret.safetensors", "{}", 0));
	CHECK_INT_EQ(chmod(p, 0), 0);
	if (geteuid() != 0) {
		CHECK_INT_EQ(st_file_open(p, &f, &err), -EACCES);
		CHECK_STR_HAS(err.msg, p);
		CHECK_STR_HAS(err.msg, "Permission denied");
	} else {
		tap_note("running as root: the permission check is not testable");
	}
	CHECK(f == NULL);
}

/* Truncated after open: pread sees the end of the file and the read fails
 * with "truncated", where a mapping would have died of SIGBUS. */
static void test_truncated_while_open(void)
{
	static float w[1024];
	static uint16_t b[1024];
	const struct st_write_tensor t[] = {
		{ "w", ST_F32, 2, { 32, 32 }, w },
		{ "b", ST_BF16, 1, { 1024 }, b },
	};
	char path[4096];
	struct st_file *f;
	const struct st_header *h;
	float out[1024];

	snprintf(path, sizeof(path), "%s/cut.safetensors", tap_tmpdir());
	CHECK_INT_EQ(st_write(path, t, 2, NULL, 0, &err), 0);
	f = OPEN_OK(path);
	h = st_file_header(f);
	CHECK_INT_EQ(truncate(path, (off_t)(st_file_size(f) - 2048 - 1000)), 0);
	CHECK_INT_EQ(st_file_read_f32(f, st_header_find(h, "w"), out, &err), -EIO);
	CHECK_STR_HAS(err.msg, path);
	CHECK_STR_HAS(err.msg, "truncated while open");
	CHECK_INT_EQ(st_file_read_rows_f32(f, st_header_find(h, "w"), 31, 1, out, &err), -EIO);
	CHECK_STR_HAS(err.msg, "truncated");
	/* The first rows are still there. */
	CHECK_INT_EQ(st_file_read_rows_f32(f, st_header_find(h, "w"), 0, 2, out, &err), 0);
	CHECK_INT_EQ(st_file_read_f32(f, st_header_find(h, "b"), out, &err), -EIO);
	CHECK_STR_HAS(err.msg, "truncated");
	CHECK_INT_EQ(st_file_read_raw(f, st_header_find(h, "b"), out, &err), -EIO);
	CHECK_STR_HAS(err.msg, "truncated");
	CHECK_INT_EQ(truncate(path, 0), 0);
	CHECK_INT_EQ(st_file_read_raw(f, st_header_find(h, "w"), out, &err), -EIO);
	CHECK_STR_HAS(err.msg, "truncated");
	st_file_free(f);
}

/* ---- the writer's refusals ------------------------------------------- */

static void write_refused_at(int line, const struct st_write_tensor *t, size_t n,
			     const struct st_write_meta *m, size_t nm, const char *fault)
{
	char path[4096], tmp[4200];
	int r;

	snprintf(path, sizeof(path), "%s/w.safetensors", tap_tmpdir());
	r = st_write(path, t, n, m, nm, &err);
	if (r != -EINVAL)
		tap_fail(__FILE__, line, "st_write: got %d, expected -EINVAL (%s)", r, err.msg);
	if (!strstr(err.msg, path) || !strstr(err.msg, fault))
		tap_fail(__FILE__, line, "message lacks the path or \"%s\": \"%s\"", fault, err.msg);
	snprintf(tmp, sizeof(tmp), "%s/.w.safetensors.tmp", tap_tmpdir());
	if (access(path, F_OK) == 0 || access(tmp, F_OK) == 0)
		tap_fail(__FILE__, line, "a file was written");
}
#define WRITE_REFUSED(t, n, m, nm, fault) write_refused_at(__LINE__, t, n, m, nm, fault)

static void test_write_refuses(void)
{
	const float d[4] = { 0 };
	struct st_write_tensor t[2] = { { "a", ST_F32, 1, { 2 }, d }, { "b", ST_F32, 1, { 2 }, d } };
	struct st_write_meta m[2] = { { "k", "v" }, { "k", "w" } };

	t[1].name = "a";
	WRITE_REFUSED(t, 2, NULL, 0, "tensor name \"a\" appears twice");
	t[1].name = "";
	WRITE_REFUSED(t, 2, NULL, 0, "tensor 1 has the name \"\"");
	t[1].name = "__metadata__";
	WRITE_REFUSED(t, 2, NULL, 0, "reserved");
	t[1].name = "bad\xff";
	WRITE_REFUSED(t, 2, NULL, 0, "not UTF-8");
	t[1].name = "b";
	t[1].shape[0] = -2;
	WRITE_REFUSED(t, 2, NULL, 0, "tensor \"b\" has a dimension that is negative or too large");
	t[1].shape[0] = 2;
	t[1].ndim = 9;
	WRITE_REFUSED(t, 2, NULL, 0, "tensor \"b\" has 9 dimensions, not 0 .. 8");
	t[1].ndim = 3;
	t[1].shape[1] = INT64_C(1) << 40;
	t[1].shape[2] = INT64_C(1) << 40;
	WRITE_REFUSED(t, 2, NULL, 0, "negative or too large");
	t[1].ndim = 1;
	t[1].data = NULL;
	WRITE_REFUSED(t, 2, NULL, 0, "tensor \"b\" has no data");
	t[1].data = d;
	t[1].dtype = ST_DTYPE_COUNT;
	{
		char want[64];

		snprintf(want, sizeof(want), "tensor \"b\" has the dtype %d", (int)ST_DTYPE_COUNT);
		WRITE_REFUSED(t, 2, NULL, 0, want);
	}
	t[1].dtype = ST_F4;
	WRITE_REFUSED(t, 2, NULL, 0, "tensor \"b\" is F4, which is not written here");
	t[1].dtype = ST_F32;
	WRITE_REFUSED(t, 2, m, 2, "metadata key \"k\" appears twice");
	m[1].key = "j";
	m[1].value = NULL;
	WRITE_REFUSED(t, 2, m, 2, "metadata entry 1 is missing or not UTF-8");
}

/* ---- conversions ----------------------------------------------------- */

/* F16 by its definition: (-1)^s * m * 2^-24 for exponent 0, else
 * (-1)^s * (1024 + m) * 2^(e - 25), the top exponent for inf and NaN. */
static void test_f16_exhaustive(void)
{
	CHECK(same_bits(st_f16_to_f32(0x3c00), 1.0f));
	CHECK(same_bits(st_f16_to_f32(0x0001), 0x1p-24f));
	CHECK(same_bits(st_f16_to_f32(0x03ff), 1023 * 0x1p-24f));
	CHECK(same_bits(st_f16_to_f32(0x0400), 0x1p-14f));
	CHECK(same_bits(st_f16_to_f32(0x7c00), INFINITY));
	CHECK(same_bits(st_f16_to_f32(0xfc00), -INFINITY));
	CHECK(isnan(st_f16_to_f32(0x7e00)));
	CHECK(same_bits(st_f16_to_f32(0x8000), -0.0f));
	CHECK(same_bits(st_f16_to_f32(0x0000), 0.0f));
	CHECK(same_bits(st_f16_to_f32(0x7bff), 65504.0f));
	CHECK(same_bits(st_f16_to_f32(0xc000), -2.0f));
	CHECK(same_bits(st_f16_to_f32(0x3555), 0.333251953125f));

	for (uint32_t x = 0; x < 65536; x++) {
		uint16_t h = (uint16_t)x;
		int s = h >> 15, e = h >> 10 & 31, m = h & 1023;
		float got = st_f16_to_f32(h), want;
		uint32_t gb;
		uint16_t le = (uint16_t)x, buf[3];
		float conv[3];

		memcpy(&gb, &got, 4);
		if (e == 31 && m) {
			/* NaN: sign and payload kept, so a quiet NaN stays quiet. */
			if (!isnan(got) || (int)(gb >> 31) != s || (gb >> 23 & 0xff) != 0xff ||
			    (gb >> 13 & 0x3ff) != (uint32_t)m || (gb & 0x1fff) != 0)
				tap_fail(__FILE__, __LINE__, "0x%04x -> 0x%08x", h, gb);
		} else {
			double v = e == 31 ? INFINITY : e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);

			want = (float)(s ? -v : v);
			if (!same_bits(got, want))
				tap_fail(__FILE__, __LINE__, "0x%04x -> %.9g, expected %.9g", h,
					 (double)got, (double)want);
		}
		/* The array conversion agrees, from an unaligned source. */
		memcpy((char *)buf + 1, &le, 2);
		st_convert_f32(ST_F16, (char *)buf + 1, conv, 1);
		if (!same_bits(conv[0], got))
			tap_fail(__FILE__, __LINE__, "st_convert_f32 0x%04x differs", h);
	}
}

/* BF16 is the top half of F32: check against its own definition. */
static void test_bf16_exhaustive(void)
{
	CHECK(same_bits(st_bf16_to_f32(0x3f80), 1.0f));
	CHECK(same_bits(st_bf16_to_f32(0x7f80), INFINITY));
	CHECK(same_bits(st_bf16_to_f32(0xff80), -INFINITY));
	CHECK(isnan(st_bf16_to_f32(0x7fc0)));
	CHECK(same_bits(st_bf16_to_f32(0x0001), 0x1p-133f));

	for (uint32_t x = 0; x < 65536; x++) {
		int s = x >> 15, e = x >> 7 & 255, m = x & 127;
		float got = st_bf16_to_f32((uint16_t)x), conv;

		if (e == 255 && m) {
			CHECK(isnan(got));
		} else {
			double v = e == 255 ? INFINITY : e == 0 ? ldexp(m, -133) : ldexp(128 + m, e - 134);

			if (!same_bits(got, (float)(s ? -v : v)))
				tap_fail(__FILE__, __LINE__, "0x%04x -> %.9g", x, (double)got);
		}
		st_convert_f32(ST_BF16, &x, &conv, 1);
		CHECK(same_bits(conv, got));
	}
}

/*
 * The 8-bit floats against the OCP 8-bit floating point specification's own
 * figures: E4M3 max normal 448 (S.1111.110), min normal 2^-6, min
 * subnormal 2^-9, S.1111.111 NaN and no infinity; E5M2 max normal 57344,
 * min subnormal 2^-16, infinities S.11111.00.  Then every code: strictly
 * increasing magnitude over the non-NaN codes, the sign bit only negating,
 * and the array conversion agreeing.
 */
static void test_f8(void)
{
	static const struct {
		uint8_t b;
		float e4m3, e5m2;
	} anchors[] = {
		{ 0x00, 0.0f, 0.0f },         { 0x01, 0x1p-9f, 0x1p-16f },
		{ 0x07, 7 * 0x1p-9f, 1.75f * 0x1p-14f }, { 0x08, 0x1p-6f, 0x1p-13f },
		{ 0x38, 1.0f, 0.5f },         { 0x3c, 1.5f, 1.0f },
		{ 0x40, 2.0f, 2.0f },         { 0x7b, 0x1.6p+8f, 57344.0f },
		{ 0x7e, 448.0f, NAN },        { 0x7c, 384.0f, INFINITY },
		{ 0xb8, -1.0f, -0.5f },       { 0xfe, -448.0f, NAN },
	};
	float prev4 = -1.0f, prev5 = -1.0f;

	for (size_t i = 0; i < sizeof(anchors) / sizeof(anchors[0]); i++) {
		float a = st_f8e4m3_to_f32(anchors[i].b), b = st_f8e5m2_to_f32(anchors[i].b);

		if (!same_bits(a, anchors[i].e4m3))
			tap_fail(__FILE__, __LINE__, "E4M3 0x%02x -> %.9g, expected %.9g",
				 anchors[i].b, (double)a, (double)anchors[i].e4m3);
		if (isnan(anchors[i].e5m2) ? !isnan(b) : !same_bits(b, anchors[i].e5m2))
			tap_fail(__FILE__, __LINE__, "E5M2 0x%02x -> %.9g, expected %.9g",
				 anchors[i].b, (double)b, (double)anchors[i].e5m2);
	}
	CHECK(isnan(st_f8e4m3_to_f32(0x7f)) && isnan(st_f8e4m3_to_f32(0xff)));
	CHECK(isnan(st_f8e5m2_to_f32(0x7d)) && isnan(st_f8e5m2_to_f32(0xff)));
	CHECK(same_bits(st_f8e4m3_to_f32(0x80), -0.0f));
	CHECK(same_bits(st_f8e5m2_to_f32(0xfc), -INFINITY));
	for (int b = 0; b < 128; b++) {
		float a = st_f8e4m3_to_f32((uint8_t)b), e = st_f8e5m2_to_f32((uint8_t)b);
		uint8_t u = (uint8_t)b;
		float conv[2];

		if (b != 0x7f) {
			CHECK_MSG(a > prev4 && same_bits(st_f8e4m3_to_f32((uint8_t)(b | 0x80)), -a),
				  "E4M3 0x%02x", b);
			prev4 = a;
		}
		if (b <= 0x7c) {
			CHECK_MSG(e > prev5 && same_bits(st_f8e5m2_to_f32((uint8_t)(b | 0x80)), -e),
				  "E5M2 0x%02x", b);
			prev5 = e;
		}
		st_convert_f32(ST_F8_E4M3, &u, &conv[0], 1);
		st_convert_f32(ST_F8_E5M2, &u, &conv[1], 1);
		CHECK((isnan(a) && isnan(conv[0])) || same_bits(conv[0], a));
		CHECK((isnan(e) && isnan(conv[1])) || same_bits(conv[1], e));
	}
}

static void test_dtypes(void)
{
	enum st_dtype d;

	CHECK_INT_EQ(st_dtype_parse("BF16", &d), 0);
	CHECK_INT_EQ(d, ST_BF16);
	CHECK_INT_EQ(st_dtype_size(d), 2);
	CHECK_STR_EQ(st_dtype_name(ST_BOOL), "BOOL");
	CHECK_INT_EQ(st_dtype_size(ST_I64), 8);
	CHECK_INT_EQ(st_dtype_size(ST_U8), 1);
	CHECK_INT_EQ(st_dtype_parse("bf16", &d), -EINVAL);
	CHECK_INT_EQ(d, ST_BF16);
}

static const struct tap_test tests[] = {
	{ "round_trip", test_round_trip },
	{ "read_rows", test_read_rows },
	{ "read_chunked", test_read_chunked },
	{ "metadata", test_metadata },
	{ "minimal_and_padding", test_minimal_and_padding },
	{ "scalar_and_zero_size", test_scalar_and_zero_size },
	{ "names", test_names },
	{ "too_many_tensors", test_too_many_tensors },
	{ "name_too_long_or_empty", test_name_too_long_or_empty },
	{ "empty_file", test_empty_file },
	{ "shorter_than_8_bytes", test_shorter_than_8_bytes },
	{ "header_length_beyond_file", test_header_length_beyond_file },
	{ "header_length_above_100mb", test_header_length_above_100mb },
	{ "header_length_near_2_64", test_header_length_near_2_64 },
	{ "header_length_below_2", test_header_length_below_2 },
	{ "not_json", test_not_json },
	{ "not_an_object", test_not_an_object },
	{ "truncated_json", test_truncated_json },
	{ "trailing_garbage", test_trailing_garbage },
	{ "nested_100000_deep", test_nested_100000_deep },
	{ "too_many_values", test_too_many_values },
	{ "nul_in_name", test_nul_in_name },
	{ "invalid_utf8_in_name", test_invalid_utf8_in_name },
	{ "entry_not_an_object", test_entry_not_an_object },
	{ "missing_dtype", test_missing_dtype },
	{ "unknown_dtype", test_unknown_dtype },
	{ "unknown_or_repeated_key", test_unknown_or_repeated_key },
	{ "shape_negative", test_shape_negative },
	{ "shape_fractional", test_shape_fractional },
	{ "shape_overflowing", test_shape_overflowing },
	{ "shape_not_integers", test_shape_not_integers },
	{ "offsets_as_strings", test_offsets_as_strings },
	{ "offsets_reversed", test_offsets_reversed },
	{ "offsets_beyond_data", test_offsets_beyond_data },
	{ "offsets_size_mismatch", test_offsets_size_mismatch },
	{ "offsets_overlapping", test_offsets_overlapping },
	{ "offsets_hole", test_offsets_hole },
	{ "trailing_bytes", test_trailing_bytes },
	{ "duplicate_names", test_duplicate_names },
	{ "metadata_not_strings", test_metadata_not_strings },
	{ "message_clips_names", test_message_clips_names },
	{ "header_parse_direct", test_header_parse_direct },
	{ "open_errors", test_open_errors },
	{ "truncated_while_open", test_truncated_while_open },
	{ "write_refuses", test_write_refuses },
	{ "f16_exhaustive", test_f16_exhaustive },
	{ "f8", test_f8 },
	{ "bf16_exhaustive", test_bf16_exhaustive },
	{ "dtypes", test_dtypes },
	{ NULL, NULL },
};
TAP_MAIN(tests)
