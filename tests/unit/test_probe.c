/*
 * test_probe.c — the probe set: JSON Lines and memmaps read into samples,
 * the hash, and every bad input refused with its message.
 *
 * Expected samples come from the files the tests write by hand (or from the
 * fixture generator's documented lengths and a plain little-endian decode
 * of the memmaps); expected hashes come from Python's json and hashlib
 * computing the serialization documented in probe.h independently.  Each
 * bad JSON Lines input is run through both readers (the streaming file
 * reader and the in-memory one) and must give the same message, with the
 * probe left as it was.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "engine/probe.h"

#define PYTHON "/usr/bin/python3"

/* ---------------------------------------------------------------- helpers */

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	CHECK(d != NULL);
	return d;
}

static char *write_text(const char *name, const char *text)
{
	return xstrdup(tap_write_file(name, text, strlen(text)));
}

static struct probe *load_jsonl(const char *path, int vocab)
{
	struct probe *p = probe_new();
	struct gw_err err = { "" };
	int r = probe_add_jsonl(p, path, vocab, &err);

	if (r != 0)
		tap_fail(__FILE__, __LINE__, "probe_add_jsonl(\"%s\") = %d: %s", path, r, err.msg);
	probe_finish(p);
	return p;
}

static const char *fixture(const char *rel)
{
	static char path[1024];

	snprintf(path, sizeof(path), "%s/%s", tap_fixtures(), rel);
	return path;
}

static const char *group_of(const struct probe *p, int i)
{
	return p->groups[p->samples[i].group];
}

/*
 * Feed text to both readers with the given limits; both must fail with
 * `code` and the message "\"<name>\"" + tail, and leave the probe empty.
 */
static void expect_fail_opts(const char *text, size_t len, int vocab,
			     const struct probe_opts *o, int code, const char *tail)
{
	struct gw_err err = { "" };
	struct probe *p = probe_new();
	char *path = xstrdup(tap_write_file("bad.jsonl", text, len));
	char want[GW_ERR_MAX + 600];
	int r;

	probe_set_opts(p, o);
	r = probe_add_jsonl(p, path, vocab, &err);
	snprintf(want, sizeof(want), "\"%s\"%s", path, tail);
	CHECK_STR_EQ(err.msg, want);
	CHECK_INT_EQ(r, code);
	CHECK_INT_EQ(p->n_samples, 0);
	CHECK_INT_EQ(p->n_groups, 0);
	CHECK_INT_EQ(p->n_sources, 0);

	memset(&err, 0, sizeof(err));
	r = probe_add_jsonl_mem(p, "mem.jsonl", text, len, vocab, &err);
	snprintf(want, sizeof(want), "\"mem.jsonl\"%s", tail);
	CHECK_STR_EQ(err.msg, want);
	CHECK_INT_EQ(r, code);
	CHECK_INT_EQ(p->n_samples, 0);
	CHECK_INT_EQ(p->n_groups, 0);
	probe_free(p);
	free(path);
}

static void expect_fail(const char *text, int vocab, int code, const char *tail)
{
	expect_fail_opts(text, strlen(text), vocab, NULL, code, tail);
}

/* Run a Python script (written to the scratch dir) with arguments; return
 * its first output line, or NULL when Python is missing (a TAP note). */
static char *python_line(const char *script, const char *args)
{
	static char out[512];
	char cmd[4096];
	char *sp;
	FILE *f;

	if (access(PYTHON, X_OK) != 0) {
		tap_note("skip: %s is missing", PYTHON);
		return NULL;
	}
	sp = write_text("check.py", script);
	snprintf(cmd, sizeof(cmd), "%s %s %s", PYTHON, sp, args);
	free(sp);
	f = popen(cmd, "r");
	CHECK(f != NULL);
	if (!fgets(out, sizeof(out), f))
		out[0] = 0;
	CHECK_INT_EQ(pclose(f), 0);
	out[strcspn(out, "\n")] = 0;
	return out;
}

/* The serialization of probe.h, written again from its description. */
static const char PY_HASH_JSONL[] =
	"import hashlib, json, struct, sys\n"
	"h = hashlib.sha256(b'grokwatch-probe-v1\\0')\n"
	"for path in sys.argv[1:]:\n"
	"    for line in open(path, encoding='utf-8-sig'):\n"
	"        if not line.strip():\n"
	"            continue\n"
	"        o = json.loads(line)\n"
	"        g = o.get('group', 'default')\n"
	"        i = o.get('id', '')\n"
	"        i = str(i) if isinstance(i, int) else i\n"
	"        t = [int(x) for x in o['tokens']]\n"
	"        h.update(g.encode() + b'\\0' + i.encode() + b'\\0')\n"
	"        h.update(struct.pack('<I', len(t)) + struct.pack('<%dI' % len(t), *t))\n"
	"print(h.hexdigest())\n";

static const char PY_HASH_MEMMAP[] =
	"import hashlib, struct, sys\n"
	"path, width, length, count, offset, group = sys.argv[1:7]\n"
	"width, length, count, offset = int(width), int(length), int(count), int(offset)\n"
	"data = open(path, 'rb').read()\n"
	"fmt = '<H' if width == 2 else '<I'\n"
	"h = hashlib.sha256(b'grokwatch-probe-v1\\0')\n"
	"for i in range(count):\n"
	"    first = offset + i * length\n"
	"    t = [struct.unpack_from(fmt, data, (first + k) * width)[0] for k in range(length)]\n"
	"    h.update(group.encode() + b'\\0' + ('memmap:%d' % first).encode() + b'\\0')\n"
	"    h.update(struct.pack('<I', length) + struct.pack('<%dI' % length, *t))\n"
	"print(h.hexdigest())\n";

/* ------------------------------------------------------------ good input */

static const char GOOD[] =
	"\xef\xbb\xbf{\"tokens\": [1, 2, 3], \"group\": \"math\", \"id\": \"m1\", \"text\": \"1+1\"}\n"
	"\n"
	"   \t\n"
	"{\"id\": 42, \"tokens\": [7], \"group\": \"code\", \"meta\": {\"a\": [1, {\"b\": null}]}}\r\n"
	"{\"tokens\": [2147483647, 0, 65535, 65536]}\n"
	"{\"tokens\": [5, 6], \"group\": \"math\"}\n"
	"{\"tokens\": [9, 8, 7], \"group\": \"caf\xc3\xa9\", \"id\": \"\xe2\x82\xac-1\"}\n"
	"{\"tokens\": [4.0, 3e0], \"group\": \"math\", \"id\": -3}";

static void test_jsonl_groups_ids(void)
{
	char *path = write_text("good.jsonl", GOOD);
	struct probe *p = load_jsonl(path, 0);

	CHECK_INT_EQ(p->n_samples, 6);
	CHECK_INT_EQ(p->n_groups, 4);
	CHECK_STR_EQ(p->groups[0], "math");
	CHECK_STR_EQ(p->groups[1], "code");
	CHECK_STR_EQ(p->groups[2], "default");
	CHECK_STR_EQ(p->groups[3], "caf\xc3\xa9");
	CHECK_INT_EQ(p->n_sources, 1);
	CHECK_STR_EQ(p->sources[0], path);

	CHECK_STR_EQ(group_of(p, 0), "math");
	CHECK_STR_EQ(p->samples[0].id, "m1");
	CHECK_INT_EQ(p->samples[0].ntokens, 3);
	CHECK_INT_EQ(p->samples[0].tokens[2], 3);
	CHECK_INT_EQ(p->samples[0].where, 1);

	CHECK_STR_EQ(group_of(p, 1), "code");
	CHECK_STR_EQ(p->samples[1].id, "42");
	CHECK_INT_EQ(p->samples[1].where, 4);

	CHECK_STR_EQ(group_of(p, 2), "default");
	CHECK_STR_EQ(p->samples[2].id, "");
	CHECK_INT_EQ(p->samples[2].ntokens, 4);
	CHECK_INT_EQ(p->samples[2].tokens[0], 2147483647);
	CHECK_INT_EQ(p->samples[2].tokens[3], 65536);

	CHECK_STR_EQ(group_of(p, 3), "math");
	CHECK_STR_EQ(p->samples[3].id, "");
	CHECK_STR_EQ(p->samples[4].id, "\xe2\x82\xac-1");
	CHECK_STR_EQ(group_of(p, 5), "math");
	CHECK_STR_EQ(p->samples[5].id, "-3");
	CHECK_INT_EQ(p->samples[5].tokens[0], 4);
	CHECK_INT_EQ(p->samples[5].tokens[1], 3);
	CHECK_INT_EQ(p->samples[5].where, 8);
	CHECK_INT_EQ(strlen(p->hash), 64);
	probe_free(p);
	free(path);
}

/* The generator writes 24 samples with these lengths, groups math, code,
 * web in turn, ids <group>-<nn> (tests/fixtures/gen_fixtures.py). */
static void test_fixture_jsonl(void)
{
	static const int lengths[24] = { 1, 2, 3, 5, 7, 8, 9, 11, 13, 16, 17, 19,
					 21, 23, 24, 25, 27, 29, 31, 32, 33, 35, 39, 40 };
	static const char *const groups[3] = { "math", "code", "web" };
	struct probe *p = load_jsonl(fixture("probe/probe.jsonl"), 256);

	CHECK_INT_EQ(p->n_samples, 24);
	CHECK_INT_EQ(p->n_groups, 3);
	for (int i = 0; i < 24; i++) {
		char id[32];

		snprintf(id, sizeof(id), "%s-%02d", groups[i % 3], i / 3);
		CHECK_INT_EQ(p->samples[i].ntokens, lengths[i]);
		CHECK_STR_EQ(group_of(p, i), groups[i % 3]);
		CHECK_STR_EQ(p->samples[i].id, id);
		CHECK_INT_EQ(p->samples[i].where, i + 1);
	}
	probe_free(p);
}

static void test_hash_against_python(void)
{
	char *a = write_text("a.jsonl", GOOD), args[2048];
	struct probe *p = load_jsonl(a, 0), *f;
	struct gw_err err;
	const char *want;

	snprintf(args, sizeof(args), "'%s'", a);
	if (!(want = python_line(PY_HASH_JSONL, args)))
		goto out;
	CHECK_STR_EQ(p->hash, want);

	/* Two files in one probe: the samples in order, files concatenated. */
	f = probe_new();
	CHECK_INT_EQ(probe_add_jsonl(f, fixture("probe/probe.jsonl"), 256, &err), 0);
	CHECK_INT_EQ(probe_add_jsonl(f, a, 0, &err), 0);
	probe_finish(f);
	snprintf(args, sizeof(args), "'%s' '%s'", fixture("probe/probe.jsonl"), a);
	CHECK_STR_EQ(f->hash, python_line(PY_HASH_JSONL, args));
	probe_free(f);
out:
	probe_free(p);
	free(a);
}

static void test_hash_content_not_path(void)
{
	char *a = write_text("a.jsonl", GOOD), *b, *c, *d, *e;
	struct probe *pa, *pb, *pc, *pd, *pe, *pm = probe_new();
	char *text = xstrdup(GOOD), *hit;
	struct gw_err err;

	b = write_text("other-name.jsonl", GOOD);
	pa = load_jsonl(a, 0);
	pb = load_jsonl(b, 0);
	CHECK_STR_EQ(pa->hash, pb->hash);
	CHECK_INT_EQ(probe_add_jsonl_mem(pm, "anything", GOOD, strlen(GOOD), 0, &err), 0);
	probe_finish(pm);
	CHECK_STR_EQ(pm->hash, pa->hash);
	probe_finish(pm); /* stable: finishing again changes nothing */
	CHECK_STR_EQ(pm->hash, pa->hash);

	/* One token changed: [5, 6] -> [5, 7]. */
	hit = strstr(text, "[5, 6]");
	CHECK(hit != NULL);
	hit[4] = '7';
	c = write_text("c.jsonl", text);
	pc = load_jsonl(c, 0);
	CHECK(strcmp(pc->hash, pa->hash) != 0);
	hit[4] = '6';

	/* A group renamed. */
	hit = strstr(text, "\"code\"");
	memcpy(hit, "\"cod3\"", 6);
	d = write_text("d.jsonl", text);
	pd = load_jsonl(d, 0);
	CHECK(strcmp(pd->hash, pa->hash) != 0);
	memcpy(hit, "\"code\"", 6);

	/* Formatting is not content: spaces removed, unknown keys dropped. */
	e = write_text("e.jsonl",
		       "{\"tokens\":[1,2,3],\"group\":\"math\",\"id\":\"m1\"}\n"
		       "{\"id\":\"42\",\"tokens\":[7],\"group\":\"code\"}\n"
		       "{\"tokens\":[2147483647,0,65535,65536],\"group\":\"default\"}\n"
		       "{\"tokens\":[5,6],\"group\":\"math\",\"id\":\"\"}\n"
		       "{\"tokens\":[9,8,7],\"group\":\"caf\xc3\xa9\",\"id\":\"\xe2\x82\xac-1\"}\n"
		       "{\"tokens\":[4,3],\"group\":\"math\",\"id\":\"-3\"}\n");
	pe = load_jsonl(e, 0);
	CHECK_STR_EQ(pe->hash, pa->hash);

	/* A later add clears the hash until the next finish. */
	CHECK_INT_EQ(probe_add_jsonl(pe, fixture("probe/probe.jsonl"), 256, &err), 0);
	CHECK_STR_EQ(pe->hash, "");
	probe_finish(pe);
	CHECK(strcmp(pe->hash, pa->hash) != 0);

	probe_free(pa);
	probe_free(pb);
	probe_free(pc);
	probe_free(pd);
	probe_free(pe);
	probe_free(pm);
	free(a);
	free(b);
	free(c);
	free(d);
	free(e);
	free(text);
}

/* The order of samples is content too: gbar rows follow it. */
static void test_hash_depends_on_order(void)
{
	char *a = write_text("a.jsonl", "{\"tokens\": [1]}\n{\"tokens\": [2]}\n");
	char *b = write_text("b.jsonl", "{\"tokens\": [2]}\n{\"tokens\": [1]}\n");
	struct probe *pa = load_jsonl(a, 0), *pb = load_jsonl(b, 0);

	CHECK(strcmp(pa->hash, pb->hash) != 0);
	probe_free(pa);
	probe_free(pb);
	free(a);
	free(b);
}

static uint32_t le(const uint8_t *b, int width)
{
	return width == 2 ? (uint32_t)b[0] | (uint32_t)b[1] << 8 :
	       (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint8_t *slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	CHECK(f != NULL);
	CHECK_INT_EQ(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	CHECK(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	CHECK(buf != NULL);
	CHECK_INT_EQ(fread(buf, 1, (size_t)n, f), n);
	fclose(f);
	*ret_len = (size_t)n;
	return buf;
}

/* Both fixture memmaps hold the same 4096 ids: the same window of each
 * gives the same samples, ids and hash, equal to a plain decode. */
static void test_memmap_u16_u32(void)
{
	struct probe *p16 = probe_new(), *p32 = probe_new();
	struct gw_err err = { "" };
	const int length = 37, count = 50;
	const int64_t offset = 1000;
	char path16[1024], path32[1024], args[2048];
	uint8_t *raw;
	size_t rawlen;
	const char *want;

	snprintf(path16, sizeof(path16), "%s", fixture("probe/tokens.u16"));
	snprintf(path32, sizeof(path32), "%s", fixture("probe/tokens.u32"));
	CHECK_INT_EQ(probe_add_memmap(p16, path16, 2, length, count, offset, "web", 256, &err), 0);
	CHECK_INT_EQ(probe_add_memmap(p32, path32, 4, length, count, offset, "web", 256, &err), 0);
	probe_finish(p16);
	probe_finish(p32);
	raw = slurp(path16, &rawlen);
	CHECK_INT_EQ(rawlen, 4096 * 2);
	CHECK_INT_EQ(p16->n_samples, count);
	CHECK_INT_EQ(p32->n_samples, count);
	CHECK_INT_EQ(p16->n_groups, 1);
	CHECK_STR_EQ(p16->groups[0], "web");
	for (int i = 0; i < count; i++) {
		char id[64];

		snprintf(id, sizeof(id), "memmap:%d", (int)offset + i * length);
		CHECK_STR_EQ(p16->samples[i].id, id);
		CHECK_STR_EQ(p32->samples[i].id, id);
		CHECK_INT_EQ(p16->samples[i].ntokens, length);
		CHECK_INT_EQ(p16->samples[i].where, offset + i * length);
		for (int k = 0; k < length; k++) {
			int64_t t = offset + (int64_t)i * length + k;

			CHECK_INT_EQ(p16->samples[i].tokens[k], le(raw + 2 * t, 2));
			CHECK_INT_EQ(p32->samples[i].tokens[k], p16->samples[i].tokens[k]);
		}
	}
	CHECK_STR_EQ(p16->hash, p32->hash);
	snprintf(args, sizeof(args), "'%s' 4 %d %d %lld web", path32, length, count,
		 (long long)offset);
	if ((want = python_line(PY_HASH_MEMMAP, args)))
		CHECK_STR_EQ(p32->hash, want);
	free(raw);
	probe_free(p16);
	probe_free(p32);
}

/* The whole file as samples, the last token included; default group. */
static void test_memmap_whole_file(void)
{
	uint8_t data[4 * 6];
	struct probe *p = probe_new();
	struct gw_err err = { "" };
	const char *path;

	for (int i = 0; i < 6; i++) {
		uint32_t v = 0x01020304u * (uint32_t)(i + 1) & 0x7fffffff;

		data[4 * i] = (uint8_t)v;
		data[4 * i + 1] = (uint8_t)(v >> 8);
		data[4 * i + 2] = (uint8_t)(v >> 16);
		data[4 * i + 3] = (uint8_t)(v >> 24);
	}
	path = tap_write_file("six.u32", data, sizeof(data));
	CHECK_INT_EQ(probe_add_memmap(p, path, 4, 3, 2, 0, NULL, 0, &err), 0);
	CHECK_INT_EQ(p->n_samples, 2);
	CHECK_STR_EQ(p->groups[0], "default");
	CHECK_INT_EQ(p->samples[1].tokens[2], 0x01020304 * 6 & 0x7fffffff);
	CHECK_INT_EQ(p->samples[0].tokens[0], 0x01020304);
	probe_free(p);
}

/* A big memmap read through chunks: a range crossing several
 * PROBE_READ_CHUNK boundaries (u16 tokens: 512 Ki tokens a chunk). */
static void test_memmap_chunks(void)
{
	const int n = 1300000;
	uint16_t *data = malloc((size_t)n * 2);
	struct probe *p = probe_new();
	struct gw_err err = { "" };
	const char *path;

	CHECK(data != NULL);
	for (int i = 0; i < n; i++) {
		uint32_t v = (uint32_t)i * 2654435761u >> 16;

		((uint8_t *)data)[2 * i] = (uint8_t)v;
		((uint8_t *)data)[2 * i + 1] = (uint8_t)(v >> 8);
	}
	path = tap_write_file("big.u16", data, (size_t)n * 2);
	CHECK_INT_EQ(probe_add_memmap(p, path, 2, 1000, 1290, 7777, "g", 0, &err), 0);
	for (int i = 0; i < 1290; i += 97)
		for (int k = 0; k < 1000; k += 13) {
			uint32_t t = 7777u + (uint32_t)i * 1000u + (uint32_t)k;

			CHECK_INT_EQ(p->samples[i].tokens[k], (t * 2654435761u >> 16) & 0xffff);
		}
	probe_free(p);
	free(data);
}

/* A failed add leaves everything as it was: samples, groups, sources, the
 * hash and the id index (an id of the failed add is free afterwards). */
static void test_failed_add_rolls_back(void)
{
	char *a = write_text("a.jsonl", "{\"tokens\": [1], \"group\": \"g\", \"id\": \"x\"}\n");
	char *bad = write_text("bad.jsonl",
			       "{\"tokens\": [1], \"group\": \"h\", \"id\": \"y\"}\n"
			       "{\"tokens\": [2], \"group\": \"g\", \"id\": \"z\"}\n"
			       "{\"tokens\": []}\n");
	char *ok = write_text("ok.jsonl",
			      "{\"tokens\": [3], \"group\": \"g\", \"id\": \"z\"}\n"
			      "{\"tokens\": [4], \"group\": \"h\", \"id\": \"y\"}\n");
	struct probe *p = load_jsonl(a, 0);
	char hash[65];
	struct gw_err err;

	memcpy(hash, p->hash, sizeof(hash));
	CHECK_INT_EQ(probe_add_jsonl(p, bad, 0, &err), -EBADMSG);
	CHECK_INT_EQ(p->n_samples, 1);
	CHECK_INT_EQ(p->n_groups, 1);
	CHECK_INT_EQ(p->n_sources, 1);
	CHECK_STR_EQ(p->hash, hash);
	CHECK_INT_EQ(probe_add_memmap(p, fixture("probe/tokens.u16"), 2, 10, 10, 4090, "h", 0, &err),
		     -EINVAL);
	CHECK_INT_EQ(p->n_groups, 1);
	CHECK_INT_EQ(probe_add_jsonl(p, ok, 0, &err), 0);
	CHECK_INT_EQ(p->n_samples, 3);
	CHECK_INT_EQ(p->n_groups, 2);
	CHECK_STR_EQ(p->groups[1], "h");
	CHECK_STR_EQ(p->sources[1], ok);
	CHECK_INT_EQ(p->samples[2].tokens[0], 4);
	probe_free(p);
	free(a);
	free(bad);
	free(ok);
}

/* probe_check_vocab names file and line, or file and token index. */
static void test_check_vocab_later(void)
{
	char *a = write_text("a.jsonl", "{\"tokens\": [1, 2]}\n\n{\"tokens\": [3, 300, 4]}\n");
	struct probe *p = load_jsonl(a, 0), *m = probe_new();
	struct gw_err err = { "" };
	uint8_t data[8] = { 1, 0, 2, 0, 44, 1, 3, 0 }; /* 1, 2, 300, 3 */
	char want[1200], *u16;

	CHECK_INT_EQ(probe_check_vocab(p, 301, &err), 0);
	CHECK_INT_EQ(probe_check_vocab(p, 300, &err), -EBADMSG);
	snprintf(want, sizeof(want),
		 "\"%s\" line 3: tokens[1] is 300, at or beyond the vocabulary (300)", a);
	CHECK_STR_EQ(err.msg, want);

	u16 = xstrdup(tap_write_file("v.u16", data, sizeof(data)));
	CHECK_INT_EQ(probe_add_memmap(m, u16, 2, 2, 1, 1, "g", 0, &err), 0);
	CHECK_INT_EQ(probe_check_vocab(m, 256, &err), -EBADMSG);
	snprintf(want, sizeof(want),
		 "\"%s\": token 2 is 300, at or beyond the vocabulary (256)", u16);
	CHECK_STR_EQ(err.msg, want);
	probe_free(p);
	probe_free(m);
	free(a);
	free(u16);
}

/* ------------------------------------------------- bad JSON Lines input */

static void test_bad_token_at_vocab(void)
{
	expect_fail("{\"tokens\": [1, 2]}\n{\"tokens\": [0, 256]}\n", 256, -EBADMSG,
		    " line 2: tokens[1] is 256, at or beyond the vocabulary (256)");
}

static void test_bad_token_beyond_vocab(void)
{
	expect_fail("{\"tokens\": [1, 2, 3, 4, 5, 6, 7, 70000]}\n", 50304, -EBADMSG,
		    " line 1: tokens[7] is 70000, at or beyond the vocabulary (50304)");
}

static void test_bad_token_fraction(void)
{
	expect_fail("{\"tokens\": [1, 1.5]}\n", 0, -EBADMSG,
		    " line 1: tokens[1] is 1.5, not an integer");
}

static void test_bad_token_string(void)
{
	expect_fail("{\"tokens\": [\"7\"]}\n", 0, -EBADMSG,
		    " line 1: tokens[0] is the string \"7\", not an integer");
}

static void test_bad_token_bool(void)
{
	expect_fail("{\"tokens\": [3, true]}\n", 0, -EBADMSG,
		    " line 1: tokens[1] is true, not an integer");
}

static void test_bad_token_null_and_array(void)
{
	expect_fail("{\"tokens\": [null]}\n", 0, -EBADMSG,
		    " line 1: tokens[0] is null, not an integer");
	expect_fail("{\"tokens\": [1, [2]]}\n", 0, -EBADMSG,
		    " line 1: tokens[1] is an array, not an integer");
}

static void test_bad_token_negative(void)
{
	expect_fail("{\"tokens\": [5, -1]}\n", 0, -EBADMSG, " line 1: tokens[1] is -1, negative");
}

static void test_bad_token_beyond_int32(void)
{
	expect_fail("{\"tokens\": [2147483648]}\n", 0, -EBADMSG,
		    " line 1: tokens[0] is 2147483648, beyond the 32-bit range");
	expect_fail("{\"tokens\": [1e999]}\n", 0, -EBADMSG,
		    " line 1: tokens[0] is inf, beyond the 32-bit range");
}

static void test_bad_empty_tokens(void)
{
	expect_fail("{\"tokens\": [1]}\n{\"tokens\": [], \"group\": \"g\"}\n", 0, -EBADMSG,
		    " line 2: \"tokens\" is empty");
}

static void test_bad_missing_tokens(void)
{
	expect_fail("{\"group\": \"g\", \"text\": \"hello\"}\n", 0, -EBADMSG,
		    " line 1: no \"tokens\" field");
	/* Keys are case-sensitive. */
	expect_fail("{\"Tokens\": [1]}\n", 0, -EBADMSG, " line 1: no \"tokens\" field");
}

static void test_bad_tokens_not_array(void)
{
	expect_fail("{\"tokens\": \"1 2 3\"}\n", 0, -EBADMSG,
		    " line 1: \"tokens\" is a string, not an array");
}

static void test_bad_not_object(void)
{
	expect_fail("[1, 2, 3]\n", 0, -EBADMSG, " line 1: not a JSON object but an array");
	expect_fail("\n\n17\n", 0, -EBADMSG, " line 3: not a JSON object but a number");
}

static void test_bad_not_json(void)
{
	expect_fail("{\"tokens\": [1]}\n{tokens: [1]}\n", 0, -EBADMSG,
		    " line 2: not valid JSON (near byte offset 2)");
}

static void test_bad_text_after_value(void)
{
	expect_fail("{\"tokens\": [1]} {\"tokens\": [2]}\n", 0, -EBADMSG,
		    " line 1: text after the JSON value at byte offset 16");
}

static void test_last_line_without_newline(void)
{
	const char *text = "{\"tokens\": [1]}\n{\"tokens\": [2, 3]}";
	char *path = write_text("t.jsonl", text);
	struct probe *p = load_jsonl(path, 0);

	CHECK_INT_EQ(p->n_samples, 2);
	CHECK_INT_EQ(p->samples[1].ntokens, 2);
	CHECK_INT_EQ(p->samples[1].tokens[1], 3);
	probe_free(p);
	free(path);
}

static void test_bad_last_line_cut(void)
{
	expect_fail("{\"tokens\": [1]}\n{\"tokens\": [2, 3", 0, -EBADMSG,
		    " line 2: not valid JSON (near byte offset 15); the file ends without a newline, "
		    "so this line may be cut short");
}

static void test_bad_line_too_long(void)
{
	struct probe_opts o = { .line_max = 40 };
	/* Line 2 is exactly 40 bytes (accepted), line 3 is 41. */
	const char *text = "{\"tokens\": [1]}\n"
			   "{\"tokens\": [1, 2, 3, 4, 5, 6, 7, 8, 10]}\n"
			   "{\"tokens\": [1, 2, 3, 4, 5, 6, 7, 8, 100]}\n";

	CHECK_INT_EQ(strlen("{\"tokens\": [1, 2, 3, 4, 5, 6, 7, 8, 10]}"), 40);
	expect_fail_opts(text, strlen(text), 0, &o, -E2BIG, " line 3: longer than 40 bytes");
	/* The last line, without a newline, counts the same. */
	expect_fail_opts(text, strlen(text) - 1, 0, &o, -E2BIG, " line 3: longer than 40 bytes");
}

/* At the default limit, through the streaming reader: a line of
 * PROBE_LINE_MAX + 1 bytes is refused without being held whole. */
static void test_bad_line_too_long_default(void)
{
	size_t n = PROBE_LINE_MAX + 2;
	char *text = malloc(n), want[1200];
	struct probe *p = probe_new();
	struct gw_err err;
	char *path;

	CHECK(text != NULL);
	memset(text, ' ', n);
	memcpy(text + 20, "{\"tokens\": [1]}", 15);
	text[n - 1] = '\n';
	path = xstrdup(tap_write_file("long.jsonl", text, n));
	CHECK_INT_EQ(probe_add_jsonl(p, path, 0, &err), -E2BIG);
	snprintf(want, sizeof(want), "\"%s\" line 1: longer than %u bytes", path, PROBE_LINE_MAX);
	CHECK_STR_EQ(err.msg, want);
	/* One byte less is a valid (blank-padded) line. */
	text[n - 2] = '\n';
	free(path);
	path = xstrdup(tap_write_file("long.jsonl", text, n - 1));
	CHECK_INT_EQ(probe_add_jsonl(p, path, 0, &err), 0);
	CHECK_INT_EQ(p->n_samples, 1);
	probe_free(p);
	free(text);
	free(path);
}

static void test_bad_sample_too_long(void)
{
	struct probe_opts o = { .sample_max = 4 };
	const char *text = "{\"tokens\": [1, 2, 3, 4]}\n{\"tokens\": [1, 2, 3, 4, 5]}\n";

	expect_fail_opts(text, strlen(text), 0, &o, -E2BIG,
			 " line 2: 5 tokens, more than the limit of 4 a sample");
}

static void test_bad_sample_too_long_default(void)
{
	size_t cap = 8 * (PROBE_SAMPLE_MAX + 1) + 32, n = 0;
	char *text = malloc(cap), tail[128];

	CHECK(text != NULL);
	n += (size_t)snprintf(text + n, cap - n, "{\"tokens\": [0");
	for (int i = 1; i <= PROBE_SAMPLE_MAX; i++)
		n += (size_t)snprintf(text + n, cap - n, ",%d", i % 10);
	n += (size_t)snprintf(text + n, cap - n, "]}\n");
	CHECK(n < cap);
	snprintf(tail, sizeof(tail), " line 1: %d tokens, more than the limit of %d a sample",
		 PROBE_SAMPLE_MAX + 1, PROBE_SAMPLE_MAX);
	expect_fail(text, 0, -E2BIG, tail);
	free(text);
}

static void test_bad_too_many_samples(void)
{
	struct probe_opts o = { .samples_max = 3 };
	const char *text = "{\"tokens\": [1]}\n{\"tokens\": [2]}\n\n{\"tokens\": [3]}\n"
			   "{\"tokens\": [4]}\n";
	struct probe *p = probe_new();
	struct gw_err err = { "" };

	expect_fail_opts(text, strlen(text), 0, &o, -E2BIG,
			 " line 5: more than 3 samples in the probe");
	/* The limit is over the probe, not one file; memmaps count too. */
	probe_set_opts(p, &o);
	CHECK_INT_EQ(probe_add_jsonl_mem(p, "m", "{\"tokens\": [1]}\n{\"tokens\": [1]}", 31, 0,
					 &err), 0);
	CHECK_INT_EQ(probe_add_jsonl_mem(p, "m", "{\"tokens\": [1]}\n{\"tokens\": [1]}", 31, 0,
					 &err), -E2BIG);
	CHECK_STR_EQ(err.msg, "\"m\" line 2: more than 3 samples in the probe");
	CHECK_INT_EQ(probe_add_memmap(p, fixture("probe/tokens.u16"), 2, 4, 2, 0, "g", 0, &err),
		     -E2BIG);
	CHECK_STR_HAS(err.msg, "2 samples; the probe holds 2 and takes at most 3");
	CHECK_INT_EQ(p->n_samples, 2);
	probe_free(p);
}

static void test_bad_group_type(void)
{
	expect_fail("{\"tokens\": [1], \"group\": 5}\n", 0, -EBADMSG,
		    " line 1: \"group\" is a number, not a string");
	expect_fail("{\"tokens\": [1], \"group\": [\"math\"]}\n", 0, -EBADMSG,
		    " line 1: \"group\" is an array, not a string");
}

static void test_bad_group_empty(void)
{
	expect_fail("{\"tokens\": [1], \"group\": \"\"}\n", 0, -EBADMSG, " line 1: \"group\" is empty");
}

static void test_bad_group_too_long(void)
{
	char text[512], name[PROBE_GROUP_MAX + 1], tail[128];

	memset(name, 'g', PROBE_GROUP_MAX);
	name[PROBE_GROUP_MAX] = 0;
	snprintf(text, sizeof(text), "{\"tokens\": [1], \"group\": \"%s\"}\n", name);
	snprintf(tail, sizeof(tail), " line 1: \"group\" is %d bytes, longer than %d",
		 PROBE_GROUP_MAX, PROBE_GROUP_MAX - 1);
	expect_fail(text, 0, -EBADMSG, tail);
	/* One byte less is fine. */
	name[PROBE_GROUP_MAX - 1] = 0;
	snprintf(text, sizeof(text), "{\"tokens\": [1], \"group\": \"%s\"}\n", name);
	{
		struct probe *p = probe_new();
		struct gw_err err;

		CHECK_INT_EQ(probe_add_jsonl_mem(p, "m", text, strlen(text), 0, &err), 0);
		CHECK_INT_EQ(strlen(p->groups[0]), PROBE_GROUP_MAX - 1);
		probe_free(p);
	}
}

static void test_bad_group_control(void)
{
	expect_fail("{\"tokens\": [1], \"group\": \"a\\tb\"}\n", 0, -EBADMSG,
		    " line 1: \"group\" holds a control character (byte 1)");
}

static void test_bad_id(void)
{
	expect_fail("{\"tokens\": [1], \"id\": 1.5}\n", 0, -EBADMSG,
		    " line 1: \"id\" is 1.5, not an integer of at most 2^53");
	expect_fail("{\"tokens\": [1], \"id\": {\"a\": 1}}\n", 0, -EBADMSG,
		    " line 1: \"id\" is an object, not a string or an integer");
	expect_fail("{\"tokens\": [1], \"id\": 18014398509481984}\n", 0, -EBADMSG,
		    " line 1: \"id\" is 18014398509481984, not an integer of at most 2^53");
}

static void test_bad_id_too_long(void)
{
	char text[1024], id[PROBE_ID_MAX + 1], tail[128];

	memset(id, 'i', PROBE_ID_MAX);
	id[PROBE_ID_MAX] = 0;
	snprintf(text, sizeof(text), "{\"tokens\": [1], \"id\": \"%s\"}\n", id);
	snprintf(tail, sizeof(tail), " line 1: \"id\" is %d bytes, longer than %d", PROBE_ID_MAX,
		 PROBE_ID_MAX - 1);
	expect_fail(text, 0, -EBADMSG, tail);
}

static void test_bad_duplicate_id(void)
{
	const char *text = "{\"tokens\": [1], \"group\": \"a\", \"id\": \"s1\"}\n"
			   "{\"tokens\": [1], \"group\": \"b\", \"id\": \"s1\"}\n"
			   "{\"tokens\": [2], \"group\": \"a\"}\n"
			   "{\"tokens\": [2], \"group\": \"a\"}\n"
			   "{\"tokens\": [3], \"group\": \"a\", \"id\": \"s1\"}\n";
	char want[1200];
	char *path = xstrdup(tap_write_file("bad.jsonl", text, strlen(text)));
	struct probe *p = probe_new();
	struct gw_err err;

	/* Same id in another group, and samples without ids: fine; the same
	 * id again in group a: refused, naming the first. */
	CHECK_INT_EQ(probe_add_jsonl(p, path, 0, &err), -EBADMSG);
	snprintf(want, sizeof(want),
		 "\"%s\" line 5: id \"s1\" repeats in group \"a\" (first at \"%s\" line 1)", path,
		 path);
	CHECK_STR_EQ(err.msg, want);
	CHECK_INT_EQ(p->n_samples, 0);
	probe_free(p);
	free(path);
}

/* An integer id and the string of its digits are the same id. */
static void test_bad_duplicate_id_int_and_string(void)
{
	const char *text = "{\"tokens\": [1], \"id\": 7}\n{\"tokens\": [1], \"id\": \"7\"}\n";
	struct probe *p = probe_new();
	struct gw_err err;

	CHECK_INT_EQ(probe_add_jsonl_mem(p, "m", text, strlen(text), 0, &err), -EBADMSG);
	CHECK_STR_EQ(err.msg, "\"m\" line 2: id \"7\" repeats in group \"default\" "
			      "(first at \"m\" line 1)");
	probe_free(p);
}

static void test_bad_duplicate_key(void)
{
	expect_fail("{\"tokens\": [1], \"tokens\": [2]}\n", 0, -EBADMSG,
		    " line 1: key \"tokens\" given twice");
}

static void test_bad_nul_byte(void)
{
	static const char text[] = "{\"tokens\": [1]}\n{\"tokens\": [1], \"text\": \"a\0b\"}\n";

	expect_fail_opts(text, sizeof(text) - 1, 0, NULL, -EBADMSG,
			 " line 2: NUL byte at byte offset 26");
}

static void test_bad_escaped_nul(void)
{
	expect_fail("{\"tokens\": [1], \"group\": \"a\\u0000b\"}\n", 0, -EBADMSG,
		    " line 1: escaped NUL (\\u0000) at byte offset 27");
}

static void test_bad_utf8(void)
{
	/* An overlong '/', a lone continuation byte, a surrogate, a cut sequence. */
	expect_fail("{\"tokens\": [1], \"group\": \"\xc0\xaf\"}\n", 0, -EBADMSG,
		    " line 1: invalid UTF-8 at byte offset 26");
	expect_fail("{\"tokens\": [1], \"text\": \"\x80\"}\n", 0, -EBADMSG,
		    " line 1: invalid UTF-8 at byte offset 25");
	expect_fail("{\"tokens\": [1], \"text\": \"\xed\xa0\x80\"}\n", 0, -EBADMSG,
		    " line 1: invalid UTF-8 at byte offset 25");
	expect_fail("{\"tokens\": [1]}\n{\"tokens\": [1], \"text\": \"\xe2\x82\"}\n", 0, -EBADMSG,
		    " line 2: invalid UTF-8 at byte offset 25");
	/* A lone surrogate escape is refused by the JSON parser. */
	expect_fail("{\"tokens\": [1], \"id\": \"\\ud800\"}\n", 0, -EBADMSG,
		    " line 1: not valid JSON (near byte offset 23)");
}

static void test_bad_too_many_values(void)
{
	struct probe_opts o = { .sample_max = 2 };
	size_t cap = 3 * 4200 + 64, n = 0;
	char *text = malloc(cap);

	/* Tokens are within the limit, but "junk" holds 4200 values: refused
	 * before the parser builds a tree for them. */
	CHECK(text != NULL);
	n += (size_t)snprintf(text + n, cap - n, "{\"tokens\": [1], \"junk\": [0");
	for (int i = 1; i < 4200; i++)
		n += (size_t)snprintf(text + n, cap - n, ",0");
	n += (size_t)snprintf(text + n, cap - n, "]}\n");
	expect_fail_opts(text, n, 0, &o, -E2BIG, " line 1: more than 4100 JSON values in one line");
	free(text);
}

static void test_bad_empty_file(void)
{
	expect_fail("", 0, -EBADMSG, ": no samples (the file is empty or blank)");
	expect_fail("\n  \n\r\n", 0, -EBADMSG, ": no samples (the file is empty or blank)");
}

static void test_bad_missing_file(void)
{
	struct probe *p = probe_new();
	struct gw_err err;
	char want[1200];

	snprintf(want, sizeof(want), "%s/nope.jsonl", tap_tmpdir());
	CHECK_INT_EQ(probe_add_jsonl(p, want, 0, &err), -ENOENT);
	CHECK_STR_HAS(err.msg, "nope.jsonl\": No such file or directory");
	CHECK_INT_EQ(probe_add_memmap(p, want, 2, 1, 1, 0, NULL, 0, &err), -ENOENT);
	CHECK_STR_HAS(err.msg, "nope.jsonl\": No such file or directory");
	CHECK_INT_EQ(p->n_sources, 0);
	probe_free(p);
}

static void test_bad_directory(void)
{
	struct probe *p = probe_new();
	struct gw_err err;
	char want[1200];

	CHECK_INT_EQ(probe_add_jsonl(p, tap_tmpdir(), 0, &err), -EISDIR);
	snprintf(want, sizeof(want), "\"%s\": is a directory, not a file", tap_tmpdir());
	CHECK_STR_EQ(err.msg, want);
	CHECK_INT_EQ(probe_add_memmap(p, tap_tmpdir(), 2, 1, 1, 0, NULL, 0, &err), -EISDIR);
	CHECK_STR_EQ(err.msg, want);
	probe_free(p);
}

/* Test hook: cut the file to a given size once it is open. */
static void truncate_hook(const char *path, void *arg)
{
	CHECK_INT_EQ(truncate(path, *(off_t *)arg), 0);
}

static void append_hook(const char *path, void *arg)
{
	FILE *f = fopen(path, "ab");

	(void)arg;
	CHECK(f != NULL);
	fputs("{\"tokens\": [9]}\n", f);
	fclose(f);
}

static void test_bad_jsonl_truncated_while_read(void)
{
	off_t cut = 20;
	struct probe_opts o = { .after_stat = truncate_hook, .hook_arg = &cut };
	char *path = write_text("t.jsonl", "{\"tokens\": [1, 2]}\n{\"tokens\": [3, 4]}\n");
	struct probe *p = probe_new();
	struct gw_err err;
	char want[1200];

	probe_set_opts(p, &o);
	CHECK_INT_EQ(probe_add_jsonl(p, path, 0, &err), -EIO);
	snprintf(want, sizeof(want), "\"%s\": the file changed while being read "
		 "(38 bytes when opened, 20 read)", path);
	CHECK_STR_EQ(err.msg, want);
	CHECK_INT_EQ(p->n_samples, 0);
	probe_free(p);
	free(path);
}

static void test_bad_jsonl_grew_while_read(void)
{
	struct probe_opts o = { .after_stat = append_hook };
	char *path = write_text("t.jsonl", "{\"tokens\": [1, 2]}\n");
	struct probe *p = probe_new();
	struct gw_err err;
	char want[1200];

	probe_set_opts(p, &o);
	CHECK_INT_EQ(probe_add_jsonl(p, path, 0, &err), -EIO);
	snprintf(want, sizeof(want), "\"%s\": the file grew while being read "
		 "(19 bytes when opened)", path);
	CHECK_STR_EQ(err.msg, want);
	probe_free(p);
	free(path);
}

/* -------------------------------------------------------- bad memmaps */

static char *write_u16(const char *name, int n)
{
	uint8_t *data = calloc((size_t)n + 1, 2);
	char *path;

	CHECK(data != NULL);
	for (int i = 0; i < n; i++)
		data[2 * i] = (uint8_t)(i % 200);
	path = xstrdup(tap_write_file(name, data, (size_t)n * 2));
	free(data);
	return path;
}

static void expect_memmap_fail(const char *path, int width, int length, int count,
			       int64_t offset, const char *group, int vocab, int code,
			       const char *tail)
{
	struct probe *p = probe_new();
	struct gw_err err = { "" };
	char want[1200];

	CHECK_INT_EQ(probe_add_memmap(p, path, width, length, count, offset, group, vocab, &err),
		     code);
	snprintf(want, sizeof(want), "\"%s\"%s", path, tail);
	CHECK_STR_EQ(err.msg, want);
	CHECK_INT_EQ(p->n_samples, 0);
	CHECK_INT_EQ(p->n_groups, 0);
	CHECK_INT_EQ(p->n_sources, 0);
	probe_free(p);
}

static void test_bad_memmap_size(void)
{
	char *path = xstrdup(tap_write_file("odd.u16", "abcde", 5));

	expect_memmap_fail(path, 2, 1, 1, 0, NULL, 0, -EBADMSG,
			   ": size 5 bytes is not a multiple of the token width 2");
	free(path);
	path = xstrdup(tap_write_file("six.u32", "abcdef", 6));
	expect_memmap_fail(path, 4, 1, 1, 0, NULL, 0, -EBADMSG,
			   ": size 6 bytes is not a multiple of the token width 4");
	free(path);
}

static void test_bad_memmap_range(void)
{
	char *path = write_u16("r.u16", 100);
	struct probe *p = probe_new();
	struct gw_err err;

	/* 100 tokens: 10 x 10 from 0 fits exactly, from 1 does not. */
	CHECK_INT_EQ(probe_add_memmap(p, path, 2, 10, 10, 0, NULL, 0, &err), 0);
	expect_memmap_fail(path, 2, 10, 10, 1, NULL, 0, -EINVAL,
			   ": 10 samples of 10 tokens from token 1 reach beyond the end "
			   "of its 100 tokens");
	expect_memmap_fail(path, 2, 1, 1, 100, NULL, 0, -EINVAL,
			   ": 1 samples of 1 tokens from token 100 reach beyond the end "
			   "of its 100 tokens");
	expect_memmap_fail(path, 2, 1, 1, INT64_MAX, NULL, 0, -EINVAL,
			   ": 1 samples of 1 tokens from token 9223372036854775807 reach "
			   "beyond the end of its 100 tokens");
	probe_free(p);
	free(path);
}

static void test_bad_memmap_args(void)
{
	char *path = write_u16("a.u16", 100);
	char tail[256];

	expect_memmap_fail(path, 3, 1, 1, 0, NULL, 0, -EINVAL, ": token width 3, not 2 or 4");
	expect_memmap_fail(path, 8, 1, 1, 0, NULL, 0, -EINVAL, ": token width 8, not 2 or 4");
	snprintf(tail, sizeof(tail), ": sample length 0 is outside 1..%d", PROBE_SAMPLE_MAX);
	expect_memmap_fail(path, 2, 0, 1, 0, NULL, 0, -EINVAL, tail);
	snprintf(tail, sizeof(tail), ": sample length %d is outside 1..%d", PROBE_SAMPLE_MAX + 1,
		 PROBE_SAMPLE_MAX);
	expect_memmap_fail(path, 2, PROBE_SAMPLE_MAX + 1, 1, 0, NULL, 0, -E2BIG, tail);
	snprintf(tail, sizeof(tail), ": 0 samples; the probe holds 0 and takes at most %d",
		 PROBE_SAMPLES_MAX);
	expect_memmap_fail(path, 2, 1, 0, 0, NULL, 0, -EINVAL, tail);
	snprintf(tail, sizeof(tail), ": %d samples; the probe holds 0 and takes at most %d",
		 PROBE_SAMPLES_MAX + 1, PROBE_SAMPLES_MAX);
	expect_memmap_fail(path, 2, 1, PROBE_SAMPLES_MAX + 1, 0, NULL, 0, -E2BIG, tail);
	expect_memmap_fail(path, 2, 1, 1, -1, NULL, 0, -EINVAL, ": negative offset -1");
	expect_memmap_fail(path, 2, 1, 1, 0, "", 0, -EINVAL, ": group name is empty");
	expect_memmap_fail(path, 2, 1, 1, 0, "a\nb", 0, -EINVAL,
			   ": group name holds a control character (byte 1)");
	snprintf(tail, sizeof(tail), ": %d tokens would make more than %d in the probe",
		 PROBE_SAMPLE_MAX * 4096, PROBE_TOKENS_MAX);
	expect_memmap_fail(path, 2, PROBE_SAMPLE_MAX, 4096, 0, NULL, 0, -E2BIG, tail);
	free(path);
}

static void test_bad_memmap_vocab(void)
{
	char *path = write_u16("v.u16", 300); /* token i is i % 200 */

	/* Tokens 150.. of the file, vocab 180: token 180 (value 180) is the
	 * first at or beyond it. */
	expect_memmap_fail(path, 2, 10, 5, 150, "g", 180, -EBADMSG,
			   ": token 180 is 180, at or beyond the vocabulary (180)");
	free(path);
}

static void test_bad_memmap_u32_beyond_int32(void)
{
	uint8_t data[8] = { 1, 0, 0, 0, 0, 0, 0, 0x80 };
	char *path = xstrdup(tap_write_file("big.u32", data, sizeof(data)));

	expect_memmap_fail(path, 4, 2, 1, 0, NULL, 0, -EBADMSG,
			   ": token 1 is 2147483648, beyond the 32-bit range");
	free(path);
}

static void test_bad_memmap_truncated_while_read(void)
{
	off_t cut = 100;
	struct probe_opts o = { .after_stat = truncate_hook, .hook_arg = &cut };
	char *path = write_u16("t.u16", 1000);
	struct probe *p = probe_new();
	struct gw_err err;
	char want[1200];

	probe_set_opts(p, &o);
	CHECK_INT_EQ(probe_add_memmap(p, path, 2, 100, 5, 10, NULL, 0, &err), -EIO);
	snprintf(want, sizeof(want), "\"%s\": the file shrank while being read (no data at "
		 "byte 100; 2000 bytes when opened)", path);
	CHECK_STR_EQ(err.msg, want);
	CHECK_INT_EQ(p->n_samples, 0);
	probe_free(p);
	free(path);
}

static void test_bad_memmap_duplicate_window(void)
{
	char *path = write_u16("d.u16", 100);
	struct probe *p = probe_new();
	struct gw_err err;
	char want[1200];

	CHECK_INT_EQ(probe_add_memmap(p, path, 2, 10, 3, 0, "g", 0, &err), 0);
	CHECK_INT_EQ(probe_add_memmap(p, path, 2, 10, 3, 0, "h", 0, &err), 0);
	CHECK_INT_EQ(probe_add_memmap(p, path, 2, 10, 3, 20, "g", 0, &err), -EBADMSG);
	snprintf(want, sizeof(want), "\"%s\": id \"memmap:20\" repeats in group \"g\"", path);
	CHECK_STR_EQ(err.msg, want);
	CHECK_INT_EQ(p->n_samples, 6);
	probe_free(p);
	free(path);
}

/* probe_load: each format from its options, finished (hashed); the same
 * samples as the add calls give; a fault named as the add names it. */
static void test_probe_load(void)
{
	static const char jsonl[] = "{\"tokens\": [1, 2, 3], \"group\": \"math\"}\n";
	const uint16_t u16[6] = { 1, 2, 3, 4, 5, 6 };
	const uint32_t u32[6] = { 1, 2, 3, 4, 5, 6 };
	struct probe_load_opts o = { .length = 2, .count = 2, .offset = 1, .group = "web" };
	struct probe *p = NULL;
	struct gw_err err = { "" };
	char *path = xstrdup(tap_write_file("p.jsonl", jsonl, strlen(jsonl)));

	o.path = path;
	o.format = PROBE_FORMAT_JSONL;
	CHECK_INT_EQ(probe_load(&o, &p, &err), 0);
	CHECK_INT_EQ(p->n_samples, 1);
	CHECK_STR_EQ(p->groups[0], "math");
	CHECK_INT_EQ(strlen(p->hash), 64);
	probe_free(p);
	free(path);

	path = xstrdup(tap_write_file("p.u16", u16, sizeof(u16)));
	o.path = path;
	o.format = PROBE_FORMAT_U16;
	CHECK_INT_EQ(probe_load(&o, &p, &err), 0);
	CHECK_INT_EQ(p->n_samples, 2);
	CHECK_INT_EQ(p->samples[0].tokens[0], 2);
	CHECK_INT_EQ(p->samples[1].tokens[1], 5);
	CHECK_STR_EQ(p->groups[0], "web");
	CHECK_INT_EQ(strlen(p->hash), 64);
	probe_free(p);
	p = NULL;
	o.count = 3;
	CHECK_INT_EQ(probe_load(&o, &p, &err) < 0, 1);
	CHECK(p == NULL);
	CHECK_STR_HAS(err.msg, "p.u16");
	free(path);

	path = xstrdup(tap_write_file("p.u32", u32, sizeof(u32)));
	o.path = path;
	o.format = PROBE_FORMAT_U32;
	o.count = 2;
	CHECK_INT_EQ(probe_load(&o, &p, &err), 0);
	CHECK_INT_EQ(p->samples[1].tokens[0], 4);
	probe_free(p);
	free(path);
}

static const struct tap_test tests[] = {
	{ "jsonl_groups_ids", test_jsonl_groups_ids },
	{ "fixture_jsonl", test_fixture_jsonl },
	{ "hash_against_python", test_hash_against_python },
	{ "hash_content_not_path", test_hash_content_not_path },
	{ "hash_depends_on_order", test_hash_depends_on_order },
	{ "memmap_u16_u32", test_memmap_u16_u32 },
	{ "memmap_whole_file", test_memmap_whole_file },
	{ "memmap_chunks", test_memmap_chunks },
	{ "failed_add_rolls_back", test_failed_add_rolls_back },
	{ "check_vocab_later", test_check_vocab_later },
	{ "last_line_without_newline", test_last_line_without_newline },
	{ "bad_token_at_vocab", test_bad_token_at_vocab },
	{ "bad_token_beyond_vocab", test_bad_token_beyond_vocab },
	{ "bad_token_fraction", test_bad_token_fraction },
	{ "bad_token_string", test_bad_token_string },
	{ "bad_token_bool", test_bad_token_bool },
	{ "bad_token_null_and_array", test_bad_token_null_and_array },
	{ "bad_token_negative", test_bad_token_negative },
	{ "bad_token_beyond_int32", test_bad_token_beyond_int32 },
	{ "bad_empty_tokens", test_bad_empty_tokens },
	{ "bad_missing_tokens", test_bad_missing_tokens },
	{ "bad_tokens_not_array", test_bad_tokens_not_array },
	{ "bad_not_object", test_bad_not_object },
	{ "bad_not_json", test_bad_not_json },
	{ "bad_text_after_value", test_bad_text_after_value },
	{ "bad_last_line_cut", test_bad_last_line_cut },
	{ "bad_line_too_long", test_bad_line_too_long },
	{ "bad_line_too_long_default", test_bad_line_too_long_default },
	{ "bad_sample_too_long", test_bad_sample_too_long },
	{ "bad_sample_too_long_default", test_bad_sample_too_long_default },
	{ "bad_too_many_samples", test_bad_too_many_samples },
	{ "bad_group_type", test_bad_group_type },
	{ "bad_group_empty", test_bad_group_empty },
	{ "bad_group_too_long", test_bad_group_too_long },
	{ "bad_group_control", test_bad_group_control },
	{ "bad_id", test_bad_id },
	{ "bad_id_too_long", test_bad_id_too_long },
	{ "bad_duplicate_id", test_bad_duplicate_id },
	{ "bad_duplicate_id_int_and_string", test_bad_duplicate_id_int_and_string },
	{ "bad_duplicate_key", test_bad_duplicate_key },
	{ "bad_nul_byte", test_bad_nul_byte },
	{ "bad_escaped_nul", test_bad_escaped_nul },
	{ "bad_utf8", test_bad_utf8 },
	{ "bad_too_many_values", test_bad_too_many_values },
	{ "bad_empty_file", test_bad_empty_file },
	{ "bad_missing_file", test_bad_missing_file },
	{ "bad_directory", test_bad_directory },
	{ "bad_jsonl_truncated_while_read", test_bad_jsonl_truncated_while_read },
	{ "bad_jsonl_grew_while_read", test_bad_jsonl_grew_while_read },
	{ "bad_memmap_size", test_bad_memmap_size },
	{ "bad_memmap_range", test_bad_memmap_range },
	{ "bad_memmap_args", test_bad_memmap_args },
	{ "bad_memmap_vocab", test_bad_memmap_vocab },
	{ "bad_memmap_u32_beyond_int32", test_bad_memmap_u32_beyond_int32 },
	{ "bad_memmap_truncated_while_read", test_bad_memmap_truncated_while_read },
	{ "bad_memmap_duplicate_window", test_bad_memmap_duplicate_window },
	{ "probe_load", test_probe_load },
	{ NULL, NULL },
};
TAP_MAIN(tests)
