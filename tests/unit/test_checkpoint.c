/*
 * test_checkpoint.c — checkpoint directories: every generated fixture opens
 * and agrees with the manifest (written by the generator, not by the code
 * under test); sharded lookups go through weight_map only; values read
 * back equal the bytes decoded here independently; completeness; and the
 * bad cases, each a copy of a fixture in the scratch directory damaged one
 * way.
 */
#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "engine/checkpoint.h"

static struct gw_err err;

#define CHECK_MSG(cond, ...) \
	do { if (!(cond)) tap_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)

/* ---- helpers ---------------------------------------------------------- */

static char *slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		tap_fail(__FILE__, __LINE__, "open %s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
		tap_fail(__FILE__, __LINE__, "read %s", path);
	buf[n] = '\0';
	fclose(f);
	if (ret_len)
		*ret_len = (size_t)n;
	return buf;
}

static void spit(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
		tap_fail(__FILE__, __LINE__, "write %s", path);
}

/* Copy a path into a buffer of n bytes (failing the test if it is longer). */
static void pcopy(char *dst, size_t n, const char *src)
{
	size_t len = strlen(src);

	if (len >= n)
		tap_fail(__FILE__, __LINE__, "path too long: %s", src);
	memcpy(dst, src, len + 1);
}

static const char *fixture(const char *name)
{
	static char p[512];

	snprintf(p, sizeof(p), "%s/%s", tap_fixtures(), name);
	return p;
}

/* Copy fixture `name` to the scratch directory; returns the copy's path. */
static const char *copy_fixture(const char *name)
{
	static char dst[512];
	char s[1024], d[1024];
	struct dirent *e;
	DIR *dir;

	snprintf(dst, sizeof(dst), "%s/%s", tap_tmpdir(), name);
	CHECK_INT_EQ(mkdir(dst, 0755), 0);
	dir = opendir(fixture(name));
	CHECK(dir != NULL);
	while ((e = readdir(dir))) {
		size_t n;
		char *buf;

		if (e->d_name[0] == '.')
			continue;
		snprintf(s, sizeof(s), "%s/%s", fixture(name), e->d_name);
		snprintf(d, sizeof(d), "%s/%s", dst, e->d_name);
		buf = slurp(s, &n);
		spit(d, buf, n);
		free(buf);
	}
	closedir(dir);
	return dst;
}

static const char *in(const char *dir, const char *file)
{
	static char p[2048];

	snprintf(p, sizeof(p), "%s/%s", dir, file);
	return p;
}

static cJSON *load_json(const char *path)
{
	char *t = slurp(path, NULL);
	cJSON *j = cJSON_Parse(t);

	free(t);
	if (!j)
		tap_fail(__FILE__, __LINE__, "%s is not JSON", path);
	return j;
}

static void save_json(const char *path, cJSON *j)
{
	char *t = cJSON_Print(j);

	spit(path, t, strlen(t));
	free(t);
	cJSON_Delete(j);
}

/* Set a config.json key to a number (or remove it when NaN). */
static void config_set(const char *dir, const char *key, double v)
{
	cJSON *j = load_json(in(dir, "config.json"));

	cJSON_DeleteItemFromObjectCaseSensitive(j, key);
	if (v == v)
		cJSON_AddNumberToObject(j, key, v);
	save_json(in(dir, "config.json"), j);
}

static int open_err(const char *dir)
{
	struct ckpt *c = NULL;
	int r;

	memset(&err, 0, sizeof(err));
	r = ckpt_open(dir, &c, &err);
	if (r == 0)
		ckpt_free(c);
	return r;
}

static int complete(const char *dir, const char *marker)
{
	memset(&err, 0, sizeof(err));
	return ckpt_check_complete(dir, marker, &err);
}

static void truncate_by(const char *path, off_t n)
{
	struct stat st;

	CHECK_INT_EQ(stat(path, &st), 0);
	CHECK_INT_EQ(truncate(path, st.st_size - n), 0);
}

/* ---- every fixture ----------------------------------------------------- */

static void test_open_every_fixture(void)
{
	cJSON *man = load_json(fixture("manifest.json"));
	const cJSON *list = cJSON_GetObjectItem(man, "checkpoints"), *e;
	int n = 0;

	cJSON_ArrayForEach(e, list) {
		const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
		const char *dtype = cJSON_GetObjectItem(e, "dtype")->valuestring;
		const cJSON *ml = cJSON_GetObjectItem(e, "moe_layers"), *x;
		struct ckpt *c = NULL;
		const struct model_desc *m;
		const struct st_tensor *t;
		struct st_file *f = NULL;
		int k = 0;

		if (ckpt_open(fixture(name), &c, &err) < 0)
			tap_fail(__FILE__, __LINE__, "%s: %s", name, err.msg);
		m = ckpt_model(c);
		CHECK_STR_EQ(m->arch_name, cJSON_GetObjectItem(e, "arch")->valuestring);
		CHECK_INT_EQ(m->vocab, cJSON_GetObjectItem(e, "vocab")->valueint);
		CHECK_INT_EQ(m->hidden, cJSON_GetObjectItem(e, "hidden")->valueint);
		CHECK_INT_EQ(m->n_layers, cJSON_GetObjectItem(e, "n_layers")->valueint);
		CHECK_INT_EQ(m->n_experts, cJSON_GetObjectItem(e, "n_experts")->valueint);
		CHECK_INT_EQ(m->top_k, cJSON_GetObjectItem(e, "top_k")->valueint);
		CHECK_INT_EQ(m->tie_embeddings, cJSON_IsTrue(cJSON_GetObjectItem(e, "tied")));
		CHECK_INT_EQ(ckpt_sharded(c), cJSON_IsTrue(cJSON_GetObjectItem(e, "sharded")));
		CHECK_INT_EQ(m->n_moe_layers, cJSON_GetArraySize(ml));
		cJSON_ArrayForEach(x, ml) {
			CHECK(m->layer_moe[x->valueint]);
			CHECK_INT_EQ(m->moe_layer_index[x->valueint], k++);
		}
		CHECK(ckpt_sharded(c) ? ckpt_file_count(c) > 1 : ckpt_file_count(c) == 1);
		t = ckpt_find(c, "model.embed_tokens.weight", &f);
		CHECK(t != NULL && f != NULL);
		CHECK_STR_EQ(st_dtype_name(t->dtype), dtype);
		CHECK(ckpt_tensor_count(c) > 0);
		CHECK_INT_EQ(complete(fixture(name), NULL), 1);
		ckpt_free(c);
		n++;
	}
	CHECK_INT_EQ(n, 20);
	cJSON_Delete(man);
}

/* Every weight_map entry resolves to the shard the index names. */
static void test_sharded_lookup(void)
{
	const char *names[] = { "olmoe-bf16-sharded", "mixtral-bf16-sharded",
				"qwen2moe-f16-sharded", "qwen3moe-f16-sharded" };

	for (size_t i = 0; i < 4; i++) {
		char path[1024];
		cJSON *idx, *wm, *e;
		struct ckpt *c = NULL;
		size_t total = 0;

		snprintf(path, sizeof(path), "%s/model.safetensors.index.json", fixture(names[i]));
		idx = load_json(path);
		wm = cJSON_GetObjectItem(idx, "weight_map");
		CHECK_INT_EQ(ckpt_open(fixture(names[i]), &c, &err), 0);
		cJSON_ArrayForEach(e, wm) {
			struct st_file *f = NULL;
			const struct st_tensor *t = ckpt_find(c, e->string, &f);
			const char *p;

			CHECK(t != NULL);
			CHECK_STR_EQ(t->name, e->string);
			p = strrchr(st_file_path(f), '/');
			CHECK_STR_EQ(p + 1, e->valuestring);
			total++;
		}
		CHECK_INT_EQ(ckpt_tensor_count(c), total);
		CHECK(ckpt_find(c, "model.layers.99.mlp.gate.weight", NULL) == NULL);
		CHECK(ckpt_find(c, "", NULL) == NULL);
		ckpt_free(c);
		cJSON_Delete(idx);
	}
}

/*
 * A tensor that a shard holds but weight_map does not name is not found:
 * drop a needed one from the index and the open fails naming it.
 */
static void test_lookup_only_through_weight_map(void)
{
	const char *d = copy_fixture("olmoe-bf16-sharded");
	cJSON *idx = load_json(in(d, CKPT_INDEX));

	cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItem(idx, "weight_map"),
						"model.layers.1.mlp.experts.3.up_proj.weight");
	save_json(in(d, CKPT_INDEX), idx);
	CHECK_INT_EQ(open_err(d), -EBADMSG);
	CHECK_STR_HAS(err.msg, "tensor \"model.layers.1.mlp.experts.3.up_proj.weight\" is missing");
}

/* Decode tensor `name` of a single-file fixture from its bytes, here. */
static float *decode(const char *file, const char *name, size_t *ret_n)
{
	size_t len;
	char *buf = slurp(file, &len);
	uint64_t hl = 0;
	cJSON *h, *t, *off, *shape, *s;
	const char *dt;
	size_t n = 1, begin;
	float *out;

	for (int i = 7; i >= 0; i--)
		hl = hl << 8 | (unsigned char)buf[i];
	h = cJSON_ParseWithLength(buf + 8, (size_t)hl);
	t = cJSON_GetObjectItem(h, name);
	CHECK(t != NULL);
	dt = cJSON_GetObjectItem(t, "dtype")->valuestring;
	off = cJSON_GetObjectItem(t, "data_offsets");
	shape = cJSON_GetObjectItem(t, "shape");
	cJSON_ArrayForEach(s, shape)
		n *= (size_t)s->valuedouble;
	begin = 8 + (size_t)hl + (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
	out = malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = (const unsigned char *)buf + begin;

		if (!strcmp(dt, "F32")) {
			memcpy(&out[i], p + 4 * i, 4);
		} else {
			/* BF16 is the high half of an F32. */
			uint32_t u = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;

			CHECK_STR_EQ(dt, "BF16");
			memcpy(&out[i], &u, 4);
		}
	}
	cJSON_Delete(h);
	free(buf);
	*ret_n = n;
	return out;
}

static void test_read_f32(void)
{
	const char *cases[][3] = {
		{ "olmoe-f32", "model.safetensors", "model.layers.1.mlp.gate.weight" },
		{ "olmoe-f32", "model.safetensors", "model.norm.weight" },
		{ "olmoe-bf16", "model.safetensors", "model.layers.2.self_attn.k_norm.weight" },
		{ "mixtral-f32", "model.safetensors",
		  "model.layers.0.block_sparse_moe.experts.3.w2.weight" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ckpt *c = NULL;
		char file[1024];
		size_t n;
		float *want, *got;

		snprintf(file, sizeof(file), "%s/%s", fixture(cases[i][0]), cases[i][1]);
		want = decode(file, cases[i][2], &n);
		got = malloc(n * sizeof(float));
		CHECK_INT_EQ(ckpt_open(fixture(cases[i][0]), &c, &err), 0);
		CHECK_INT_EQ(ckpt_read_f32(c, cases[i][2], got, n, &err), 0);
		CHECK(memcmp(want, got, n * sizeof(float)) == 0);
		CHECK_INT_EQ(ckpt_read_f32(c, cases[i][2], got, n - 1, &err), -EINVAL);
		CHECK_STR_HAS(err.msg, "elements");
		CHECK_INT_EQ(ckpt_read_f32(c, "no.such.tensor", got, n, &err), -ENOENT);
		CHECK_STR_HAS(err.msg, "no tensor \"no.such.tensor\"");
		ckpt_free(c);
		free(want);
		free(got);
	}
}

/* ---- completeness ------------------------------------------------------ */

static void test_complete_missing_shard(void)
{
	const char *d = copy_fixture("mixtral-bf16-sharded");
	char shard[256];
	cJSON *idx = load_json(in(d, CKPT_INDEX));

	snprintf(shard, sizeof(shard), "%s",
		 cJSON_GetObjectItem(cJSON_GetObjectItem(idx, "weight_map"),
				     "lm_head.weight")->valuestring);
	cJSON_Delete(idx);
	CHECK_INT_EQ(complete(d, NULL), 1);
	CHECK_INT_EQ(unlink(in(d, shard)), 0);
	CHECK_INT_EQ(complete(d, NULL), 0);
	CHECK_STR_HAS(err.msg, shard);
	CHECK_INT_EQ(open_err(d), -ENOENT);
	CHECK_STR_HAS(err.msg, shard);
	CHECK_STR_HAS(err.msg, "is missing");
}

static void test_complete_truncated_shard(void)
{
	const char *d = copy_fixture("qwen3moe-f16-sharded");
	char p[2048];

	pcopy(p, sizeof(p), in(d, "model-00002-of-00002.safetensors"));
	truncate_by(p, 10);
	CHECK_INT_EQ(complete(d, NULL), 0);
	CHECK_STR_HAS(err.msg, "model-00002-of-00002.safetensors");
	CHECK(open_err(d) < 0);
	CHECK_STR_HAS(err.msg, "model-00002-of-00002.safetensors");
	/* Shorter than the 8-byte length, and header cut short: not yet. */
	CHECK_INT_EQ(truncate(p, 5), 0);
	CHECK_INT_EQ(complete(d, NULL), 0);
	CHECK_INT_EQ(truncate(p, 20), 0);
	CHECK_INT_EQ(complete(d, NULL), 0);
}

static void test_complete_single_file(void)
{
	const char *d = copy_fixture("olmoe-f16");
	char p[2048];
	int fd;

	pcopy(p, sizeof(p), in(d, "model.safetensors"));
	truncate_by(p, 1);
	CHECK_INT_EQ(complete(d, NULL), 0);
	CHECK_STR_HAS(err.msg, "not yet complete");
	/* Longer than declared can never become complete. */
	truncate_by(p, -3);
	CHECK(complete(d, NULL) < 0);
	CHECK_STR_HAS(err.msg, "longer than");
	CHECK_INT_EQ(open_err(d), -EBADMSG);
	CHECK_STR_HAS(err.msg, "model.safetensors");
	/* A header length above 100 MB is malformed, not "not yet". */
	fd = open(p, O_WRONLY);
	CHECK(fd >= 0);
	CHECK_INT_EQ(pwrite(fd, "\xff\xff\xff\xff\x00\x00\x00\x00", 8, 0), 8);
	close(fd);
	CHECK(complete(d, NULL) < 0);
	CHECK_STR_HAS(err.msg, "header length");
	/* A well-sized file whose header is malformed. */
	fd = open(p, O_WRONLY);
	CHECK_INT_EQ(pwrite(fd, "\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":1}         ", 24, 0), 24);
	CHECK_INT_EQ(ftruncate(fd, 24), 0);
	close(fd);
	CHECK(complete(d, NULL) < 0);
	CHECK_STR_HAS(err.msg, "model.safetensors");
}

static void test_complete_marker_config_weights(void)
{
	const char *d = copy_fixture("olmoe-bf16");
	char dd[512];

	pcopy(dd, sizeof(dd), d);
	CHECK_INT_EQ(complete(dd, "DONE"), 0);
	CHECK_STR_HAS(err.msg, "DONE");
	spit(in(dd, "DONE"), "", 0);
	CHECK_INT_EQ(complete(dd, "DONE"), 1);
	CHECK_INT_EQ(unlink(in(dd, "config.json")), 0);
	CHECK_INT_EQ(complete(dd, NULL), 0);
	CHECK_STR_HAS(err.msg, "config.json");
	CHECK_INT_EQ(open_err(dd), -ENOENT);
	CHECK_STR_HAS(err.msg, "no config.json");
	spit(in(dd, "config.json"), "{}", 2);
	CHECK_INT_EQ(unlink(in(dd, "model.safetensors")), 0);
	CHECK_INT_EQ(complete(dd, NULL), 0);
	CHECK_STR_HAS(err.msg, "no model.safetensors");
	CHECK(complete(in(dd, "nonexistent"), NULL) < 0);
}

/* A routing file stands in for the weights: complete on its own, and with
 * config.json beside it only when the weights are complete too. */
static void test_complete_routing_file(void)
{
	const char *src = in(fixture("olmoe-bf16"), "model.safetensors");
	char d[512];
	size_t n;
	char *buf = slurp(src, &n);

	snprintf(d, sizeof(d), "%s/routing-only", tap_tmpdir());
	CHECK_INT_EQ(mkdir(d, 0755), 0);
	CHECK_INT_EQ(complete(d, NULL), 0);
	spit(in(d, "routing.safetensors"), buf, n - 10);
	CHECK_INT_EQ(complete(d, NULL), 0);
	CHECK_STR_HAS(err.msg, "routing.safetensors");
	spit(in(d, "routing.safetensors"), buf, n);
	CHECK_INT_EQ(complete(d, NULL), 1);
	CHECK_INT_EQ(complete(d, "DONE"), 0);
	spit(in(d, "DONE"), "", 0);
	CHECK_INT_EQ(complete(d, "DONE"), 1);
	spit(in(d, "config.json"), "{}", 2);
	CHECK_INT_EQ(complete(d, NULL), 0);
	CHECK_STR_HAS(err.msg, "no model.safetensors");
	spit(in(d, "model.safetensors"), buf, n);
	CHECK_INT_EQ(complete(d, NULL), 1);
	buf = gw_realloc(buf, n + 1);
	buf[n] = 0;
	spit(in(d, "routing.safetensors"), buf, n + 1);
	CHECK(complete(d, NULL) < 0);
	CHECK_STR_HAS(err.msg, "longer than");
	free(buf);
}

/* ---- the index --------------------------------------------------------- */

static void test_index_not_json(void)
{
	const char *d = copy_fixture("olmoe-bf16-sharded");
	char dd[512];

	pcopy(dd, sizeof(dd), d);
	spit(in(dd, CKPT_INDEX), "{\"weight_map\": {\"a\": ", 20);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, CKPT_INDEX "\": not JSON");
	CHECK(complete(dd, NULL) < 0);
	CHECK_STR_HAS(err.msg, "not JSON");
	spit(in(dd, CKPT_INDEX), "[]", 2);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "not a JSON object");
	spit(in(dd, CKPT_INDEX), "{\"metadata\": {}}", 16);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "no \"weight_map\"");
	spit(in(dd, CKPT_INDEX), "{\"weight_map\": []}", 18);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "\"weight_map\" is not an object");
	spit(in(dd, CKPT_INDEX), "{\"weight_map\": {}}", 18);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "weight_map is empty");
	spit(in(dd, CKPT_INDEX), "{\"weight_map\": {\"x\": 3}}", 24);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "weight_map[\"x\"] is not a string");
	spit(in(dd, CKPT_INDEX), "{\"weight_map\": {\"x\": \"a\", \"x\": \"a\"}}", 36);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "names tensor \"x\" twice");
	/* Above the size limit: refused before it is read (a sparse file). */
	CHECK_INT_EQ(truncate(in(dd, CKPT_INDEX), (off_t)CKPT_INDEX_MAX + 1), 0);
	CHECK_INT_EQ(open_err(dd), -EFBIG);
	CHECK_STR_HAS(err.msg, "more than the limit");
}

static void test_index_path_escape(void)
{
	const char *bad[] = { "../model-00001-of-00003.safetensors", "/etc/passwd", "sub/x",
			      "..", ".", "" };
	const char *d = copy_fixture("olmoe-bf16-sharded");
	char dd[512], orig[256];
	cJSON *j;

	pcopy(dd, sizeof(dd), d);
	j = load_json(in(dd, CKPT_INDEX));
	pcopy(orig, sizeof(orig), cJSON_GetObjectItem(cJSON_GetObjectItem(j, "weight_map"),
							       "model.norm.weight")->valuestring);
	cJSON_Delete(j);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cJSON *idx = load_json(in(dd, CKPT_INDEX));
		cJSON *wm = cJSON_GetObjectItem(idx, "weight_map");

		cJSON_ReplaceItemInObjectCaseSensitive(wm, "model.norm.weight",
						       cJSON_CreateString(bad[i]));
		save_json(in(dd, CKPT_INDEX), idx);
		CHECK_INT_EQ(open_err(dd), -EBADMSG);
		CHECK_STR_HAS(err.msg, "is not a plain file name");
		CHECK(complete(dd, NULL) < 0);
		/* Restore for the next case. */
		idx = load_json(in(dd, CKPT_INDEX));
		cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItem(idx, "weight_map"),
						       "model.norm.weight",
						       cJSON_CreateString(orig));
		save_json(in(dd, CKPT_INDEX), idx);
	}
	CHECK_INT_EQ(open_err(dd), 0);
}

/* The index says a tensor is in a shard that does not hold it. */
static void test_index_tensor_not_in_shard(void)
{
	const char *d = copy_fixture("qwen2moe-f16-sharded");
	cJSON *idx = load_json(in(d, CKPT_INDEX));
	cJSON *wm = cJSON_GetObjectItem(idx, "weight_map");
	const char *now = cJSON_GetObjectItem(wm, "model.embed_tokens.weight")->valuestring;
	const char *other = strcmp(now, "model-00002-of-00003.safetensors")
				    ? "model-00002-of-00003.safetensors"
				    : "model-00001-of-00003.safetensors";

	cJSON_ReplaceItemInObjectCaseSensitive(wm, "model.embed_tokens.weight",
					       cJSON_CreateString(other));
	save_json(in(d, CKPT_INDEX), idx);
	CHECK_INT_EQ(open_err(d), -EBADMSG);
	CHECK_STR_HAS(err.msg, "tensor \"model.embed_tokens.weight\" is not in shard");
	CHECK_STR_HAS(err.msg, CKPT_INDEX);
	/* A tensor no shard has at all. */
	idx = load_json(in(d, CKPT_INDEX));
	cJSON_AddStringToObject(cJSON_GetObjectItem(idx, "weight_map"), "ghost.weight",
				"model-00001-of-00003.safetensors");
	save_json(in(d, CKPT_INDEX), idx);
	CHECK_INT_EQ(open_err(d), -EBADMSG);
}

/* ---- config.json against the tensors ----------------------------------- */

static void test_config_refusals(void)
{
	const char *d = copy_fixture("olmoe-f32");
	char dd[512];
	size_t n;
	char *orig;

	pcopy(dd, sizeof(dd), d);
	orig = slurp(in(dd, "config.json"), &n);

	/* Unsupported architecture, by name. */
	spit(in(dd, "config.json"), "{\"architectures\": [\"LlamaForCausalLM\"]}", 39);
	CHECK_INT_EQ(open_err(dd), -ENOTSUP);
	CHECK_STR_HAS(err.msg, "config.json\": architecture \"LlamaForCausalLM\" is not supported");
	/* Not JSON. */
	spit(in(dd, "config.json"), "{\"architectures\": ", 18);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "config.json\": not JSON");

	/* Dimensions that disagree with the tensors. */
	spit(in(dd, "config.json"), orig, n);
	config_set(dd, "hidden_size", 128);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "tensor \"model.embed_tokens.weight\" has shape [256, 64], but "
		      "config.json implies [256, 128]");
	spit(in(dd, "config.json"), orig, n);
	config_set(dd, "vocab_size", 300);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "[256, 64], but config.json implies [300, 64]");
	spit(in(dd, "config.json"), orig, n);
	config_set(dd, "intermediate_size", 16);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "experts.0.gate_proj.weight\" has shape [32, 64], but config.json "
		      "implies [16, 64]");
	spit(in(dd, "config.json"), orig, n);
	config_set(dd, "num_hidden_layers", 4);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "\"model.layers.3.input_layernorm.weight\" is missing");
	spit(in(dd, "config.json"), orig, n);
	config_set(dd, "num_experts", 16);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "mlp.gate.weight\" has shape [8, 64], but config.json implies [16, 64]");
	spit(in(dd, "config.json"), orig, n);
	config_set(dd, "num_key_value_heads", 4);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "k_proj.weight\" has shape [32, 64], but config.json implies [64, 64]");

	/* Zero experts, top-k above the expert count. */
	spit(in(dd, "config.json"), orig, n);
	config_set(dd, "num_experts", 0);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "\"num_experts\" is 0");
	spit(in(dd, "config.json"), orig, n);
	config_set(dd, "num_experts_per_tok", 9);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "num_experts_per_tok 9 is above the 8 experts");

	/* A config that is a directory, and one that is too big. */
	CHECK_INT_EQ(unlink(in(dd, "config.json")), 0);
	CHECK_INT_EQ(mkdir(in(dd, "config.json"), 0755), 0);
	CHECK_INT_EQ(open_err(dd), -EINVAL);
	CHECK_STR_HAS(err.msg, "not a regular file");
	CHECK_INT_EQ(rmdir(in(dd, "config.json")), 0);
	spit(in(dd, "config.json"), orig, n);
	CHECK_INT_EQ(truncate(in(dd, "config.json"), CKPT_CONFIG_MAX + 1), 0);
	CHECK_INT_EQ(open_err(dd), -EFBIG);
	CHECK_STR_HAS(err.msg, "more than the limit");
	spit(in(dd, "config.json"), orig, n);
	CHECK_INT_EQ(open_err(dd), 0);
	free(orig);
}

/* Tied embeddings: lm_head.weight is needed exactly when not tied. */
static void test_tied(void)
{
	const char *d = copy_fixture("qwen2moe-bf16");
	cJSON *j = load_json(in(d, "config.json"));

	CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "tie_word_embeddings")));
	cJSON_ReplaceItemInObjectCaseSensitive(j, "tie_word_embeddings", cJSON_CreateFalse());
	save_json(in(d, "config.json"), j);
	CHECK_INT_EQ(open_err(d), -EBADMSG);
	CHECK_STR_HAS(err.msg, "tensor \"lm_head.weight\" is missing");
}

/* A needed tensor of an integer dtype is refused at open. */
static void test_integer_dtype(void)
{
	const char *d = copy_fixture("olmoe-f32");
	char dd[512], p[2048];
	struct st_file *f = NULL;
	const struct st_header *h;
	struct st_write_tensor *w;
	void **bufs;
	size_t n;

	pcopy(dd, sizeof(dd), d);
	pcopy(p, sizeof(p), in(dd, "model.safetensors"));
	CHECK_INT_EQ(st_file_open(p, &f, &err), 0);
	h = st_file_header(f);
	n = st_header_count(h);
	w = calloc(n, sizeof(*w));
	bufs = calloc(n, sizeof(*bufs));
	for (size_t i = 0; i < n; i++) {
		const struct st_tensor *t = st_header_tensor(h, i);

		bufs[i] = malloc(t->end - t->begin + 1);
		CHECK_INT_EQ(st_file_read_raw(f, t, bufs[i], &err), 0);
		w[i].name = t->name;
		w[i].dtype = strcmp(t->name, "model.layers.1.post_attention_layernorm.weight")
				     ? t->dtype : ST_I32;
		w[i].ndim = t->ndim;
		memcpy(w[i].shape, t->shape, sizeof(t->shape));
		w[i].data = bufs[i];
	}
	CHECK_INT_EQ(st_write(in(dd, "new.safetensors"), w, n, NULL, 0, &err), 0);
	CHECK_INT_EQ(rename(in(dd, "new.safetensors"), p), 0);
	CHECK_INT_EQ(open_err(dd), -EBADMSG);
	CHECK_STR_HAS(err.msg, "tensor \"model.layers.1.post_attention_layernorm.weight\" is I32, "
		      "which grokwatch cannot read");
	for (size_t i = 0; i < n; i++)
		free(bufs[i]);
	free(bufs);
	free(w);
	st_file_free(f);
}

/* ---- layouts real training jobs save (tensor_map.h, fused experts, FP8) -- */

/*
 * A fixture's single file as a list of tensors to rewrite: names, dtypes
 * and data can be changed and tensors added, then written back over the
 * copy.
 */
struct rw {
	char dir[512];
	struct st_write_tensor w[1024];
	void *buf[1024];
	char *name[1024];
	size_t n;
};

static void rw_load(struct rw *x, const char *fixture_name)
{
	struct st_file *f = NULL;
	const struct st_header *h;

	memset(x, 0, sizeof(*x));
	pcopy(x->dir, sizeof(x->dir), copy_fixture(fixture_name));
	CHECK_INT_EQ(st_file_open(in(x->dir, "model.safetensors"), &f, &err), 0);
	h = st_file_header(f);
	CHECK(st_header_count(h) < 900);
	for (size_t i = 0; i < st_header_count(h); i++) {
		const struct st_tensor *t = st_header_tensor(h, i);

		x->buf[i] = malloc(t->end - t->begin + 1);
		CHECK_INT_EQ(st_file_read_raw(f, t, x->buf[i], &err), 0);
		x->name[i] = strdup(t->name);
		x->w[i].name = x->name[i];
		x->w[i].dtype = t->dtype;
		x->w[i].ndim = t->ndim;
		memcpy(x->w[i].shape, t->shape, sizeof(t->shape));
		x->w[i].data = x->buf[i];
	}
	x->n = st_header_count(h);
	st_file_free(f);
}

static struct st_write_tensor *rw_find(struct rw *x, const char *name)
{
	for (size_t i = 0; i < x->n; i++)
		if (x->w[i].name && !strcmp(x->w[i].name, name))
			return &x->w[i];
	return NULL;
}

/* Add a tensor (taking ownership of data, malloc'd). */
static void rw_add(struct rw *x, const char *name, enum st_dtype d, int ndim, int64_t d0,
		   int64_t d1, int64_t d2, void *data)
{
	struct st_write_tensor *w = &x->w[x->n];

	CHECK(x->n < 1023);
	x->name[x->n] = strdup(name);
	x->buf[x->n] = data;
	*w = (struct st_write_tensor){ x->name[x->n], d, ndim, { d0, d1, d2 }, data };
	x->n++;
}

static void rw_rename(struct rw *x, size_t i, const char *name)
{
	free(x->name[i]);
	x->name[i] = strdup(name);
	x->w[i].name = x->name[i];
}

/* Drop tensor i (a NULL name is skipped when written). */
static void rw_drop(struct rw *x, size_t i)
{
	free(x->name[i]);
	x->name[i] = NULL;
	x->w[i].name = NULL;
}

static void rw_save(struct rw *x)
{
	struct st_write_tensor *keep = calloc(x->n, sizeof(*keep));
	size_t k = 0;

	for (size_t i = 0; i < x->n; i++)
		if (x->w[i].name)
			keep[k++] = x->w[i];
	CHECK_INT_EQ(st_write(in(x->dir, "model.safetensors"), keep, k, NULL, 0, &err), 0);
	free(keep);
	for (size_t i = 0; i < x->n; i++) {
		free(x->buf[i]);
		free(x->name[i]);
	}
	x->n = 0;
}

/* Tensor `name` of fixture `fx` (canonical name), read by the engine from
 * the untouched fixture: what a rewritten copy must still give. */
static float *fixture_tensor(const char *fx, const char *name, size_t n)
{
	struct ckpt *c = NULL;
	float *v = malloc(n * sizeof(float));

	CHECK_INT_EQ(ckpt_open(fixture(fx), &c, &err), 0);
	CHECK_INT_EQ(ckpt_read_f32(c, name, v, n, &err), 0);
	ckpt_free(c);
	return v;
}

static void expect_same(struct ckpt *c, const char *fx, const char *name, size_t n)
{
	float *want = fixture_tensor(fx, name, n), *got = calloc(n, sizeof(float));

	CHECK_INT_EQ(ckpt_read_f32(c, name, got, n, &err), 0);
	CHECK_MSG(memcmp(want, got, n * sizeof(float)) == 0, "%s: values differ", name);
	free(want);
	free(got);
}

/* Each wrapper spelling a trainer saves reads as the same model. */
static void test_name_prefixes(void)
{
	static const struct {
		const char *strip, *add;
	} cases[] = {
		{ "", "_orig_mod." },                /* torch.compile */
		{ "", "module." },                   /* DDP */
		{ "model.", "" },                    /* the inner model's state_dict() */
		{ "model.", "module._orig_mod." },   /* both, without "model." */
		{ "", "_orig_mod.module." },
	};

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct rw x;
		struct ckpt *c = NULL;

		rw_load(&x, "olmoe-f32");
		for (size_t i = 0; i < x.n; i++) {
			const char *nm = x.w[i].name;
			char buf[512];

			if (!strncmp(nm, cases[k].strip, strlen(cases[k].strip)))
				nm += strlen(cases[k].strip);
			snprintf(buf, sizeof(buf), "%s%s", cases[k].add, nm);
			rw_rename(&x, i, buf);
		}
		CHECK(rw_find(&x, "model.embed_tokens.weight") == NULL);
		rw_save(&x);
		memset(&err, 0, sizeof(err));
		CHECK_MSG(ckpt_open(x.dir, &c, &err) == 0, "case %zu: %s", k, err.msg);
		if (c) {
			expect_same(c, "olmoe-f32", "model.embed_tokens.weight", 256 * 64);
			expect_same(c, "olmoe-f32", "model.layers.2.mlp.gate.weight", 8 * 64);
			expect_same(c, "olmoe-f32", "model.layers.1.mlp.experts.7.down_proj.weight",
				    64 * 32);
			expect_same(c, "olmoe-f32", "lm_head.weight", 256 * 64);
			CHECK(ckpt_has(c, "model.norm.weight"));
		}
		ckpt_free(c);
		/* the scratch copy's name is reused by the next case */
		CHECK_INT_EQ(unlink(in(x.dir, "model.safetensors")), 0);
		CHECK_INT_EQ(unlink(in(x.dir, "config.json")), 0);
		CHECK_INT_EQ(rmdir(x.dir), 0);
	}
}

/* Two stored tensors for one needed name are refused naming both; for a
 * tensor the model does not use they are left alone. */
static void test_name_ambiguous(void)
{
	struct rw x;
	struct st_write_tensor *w;
	float *extra;

	rw_load(&x, "olmoe-f32");
	extra = calloc(4, sizeof(float));
	rw_add(&x, "extra.weight", ST_F32, 1, 4, 0, 0, extra);
	extra = calloc(4, sizeof(float));
	rw_add(&x, "module.model.extra.weight", ST_F32, 1, 4, 0, 0, extra);
	rw_save(&x);
	CHECK_INT_EQ(open_err(x.dir), 0);

	CHECK_INT_EQ(unlink(in(x.dir, "model.safetensors")), 0);
	CHECK_INT_EQ(unlink(in(x.dir, "config.json")), 0);
	CHECK_INT_EQ(rmdir(x.dir), 0);
	rw_load(&x, "olmoe-f32");
	w = rw_find(&x, "model.layers.1.input_layernorm.weight");
	extra = malloc(64 * sizeof(float));
	memcpy(extra, w->data, 64 * sizeof(float));
	rw_add(&x, "_orig_mod.model.layers.1.input_layernorm.weight", ST_F32, 1, 64, 0, 0, extra);
	rw_save(&x);
	CHECK_INT_EQ(open_err(x.dir), -EBADMSG);
	CHECK_STR_HAS(err.msg, "tensors \"_orig_mod.model.layers.1.input_layernorm.weight\" and "
		      "\"model.layers.1.input_layernorm.weight\" are both "
		      "\"model.layers.1.input_layernorm.weight\"");
}

/*
 * Fused experts as Transformers v5 keeps them: gate_up_proj [E, 2I, H]
 * (each expert's gate rows, then its up rows) and down_proj [E, H, I],
 * built here by stacking the per-expert tensors; Mixtral's router under
 * v5's "mlp.gate".  Every expert reads back as the per-expert file gave.
 */
static void fuse(struct rw *x, const char *fx, const char *moe, const char *g, const char *u,
		 const char *dn, int L, int E, int I, int H, bool swap)
{
	for (int l = 0; l < L; l++) {
		float *gu = malloc((size_t)E * 2 * I * H * sizeof(float));
		float *down = malloc((size_t)E * H * I * sizeof(float));
		char nm[256];

		for (int e = 0; e < E; e++) {
			const char *part[3] = { g, u, dn };

			for (int k = 0; k < 3; k++) {
				struct st_write_tensor *w;
				float *dst;

				snprintf(nm, sizeof(nm), "model.layers.%d.%s.experts.%d.%s.weight", l,
					 moe, e, part[k]);
				w = rw_find(x, nm);
				CHECK_MSG(w != NULL, "%s: no %s", fx, nm);
				if (k == 2)
					dst = down + (size_t)e * H * I;
				else
					dst = gu + ((size_t)e * 2 * I + (size_t)((k == 1) ^ swap) * I) * H;
				memcpy(dst, w->data, (size_t)I * H * sizeof(float));
				rw_drop(x, (size_t)(w - x->w));
			}
		}
		snprintf(nm, sizeof(nm), "model.layers.%d.mlp.experts.gate_up_proj", l);
		rw_add(x, nm, ST_F32, 3, E, 2 * I, H, gu);
		snprintf(nm, sizeof(nm), "model.layers.%d.mlp.experts.down_proj", l);
		rw_add(x, nm, ST_F32, 3, E, H, I, down);
	}
}

static void test_fused_experts(void)
{
	struct rw x;
	struct ckpt *c = NULL;
	char nm[256], want[256];

	rw_load(&x, "olmoe-f32");
	fuse(&x, "olmoe-f32", "mlp", "gate_proj", "up_proj", "down_proj", 3, 8, 32, 64, false);
	rw_save(&x);
	CHECK_INT_EQ(ckpt_open(x.dir, &c, &err), 0);
	for (int l = 0; l < 3 && c; l++)
		for (int e = 0; e < 8; e++) {
			snprintf(nm, sizeof(nm), "model.layers.%d.mlp.experts.%d.gate_proj.weight", l, e);
			expect_same(c, "olmoe-f32", nm, 32 * 64);
			snprintf(nm, sizeof(nm), "model.layers.%d.mlp.experts.%d.up_proj.weight", l, e);
			expect_same(c, "olmoe-f32", nm, 32 * 64);
			snprintf(nm, sizeof(nm), "model.layers.%d.mlp.experts.%d.down_proj.weight", l, e);
			expect_same(c, "olmoe-f32", nm, 64 * 32);
		}
	ckpt_free(c);
	c = NULL;

	/* Mixtral, v5 names: router under mlp.gate, experts fused under mlp. */
	rw_load(&x, "mixtral-f32");
	fuse(&x, "mixtral-f32", "block_sparse_moe", "w1", "w3", "w2", 3, 4, 48, 64, false);
	for (int l = 0; l < 3; l++) {
		snprintf(nm, sizeof(nm), "model.layers.%d.block_sparse_moe.gate.weight", l);
		snprintf(want, sizeof(want), "model.layers.%d.mlp.gate.weight", l);
		CHECK(rw_find(&x, nm) != NULL);
		rw_rename(&x, (size_t)(rw_find(&x, nm) - x.w), want);
	}
	rw_save(&x);
	CHECK_INT_EQ(ckpt_open(x.dir, &c, &err), 0);
	for (int l = 0; l < 3 && c; l++) {
		snprintf(nm, sizeof(nm), "model.layers.%d.block_sparse_moe.gate.weight", l);
		expect_same(c, "mixtral-f32", nm, 4 * 64);
		for (int e = 0; e < 4; e++) {
			snprintf(nm, sizeof(nm), "model.layers.%d.block_sparse_moe.experts.%d.w1.weight",
				 l, e);
			expect_same(c, "mixtral-f32", nm, 48 * 64);
			snprintf(nm, sizeof(nm), "model.layers.%d.block_sparse_moe.experts.%d.w3.weight",
				 l, e);
			expect_same(c, "mixtral-f32", nm, 48 * 64);
			snprintf(nm, sizeof(nm), "model.layers.%d.block_sparse_moe.experts.%d.w2.weight",
				 l, e);
			expect_same(c, "mixtral-f32", nm, 64 * 48);
		}
	}
	ckpt_free(c);
}

/* A fused tensor of the wrong shape is refused naming it and the shape
 * config.json implies; a fused layer with down_proj missing names the
 * first expert tensor it lacks. */
static void test_fused_refusals(void)
{
	struct rw x;
	struct st_write_tensor *w;

	rw_load(&x, "olmoe-f32");
	fuse(&x, "olmoe-f32", "mlp", "gate_proj", "up_proj", "down_proj", 3, 8, 32, 64, false);
	w = rw_find(&x, "model.layers.1.mlp.experts.down_proj");
	w->ndim = 3;
	w->shape[0] = 8;
	w->shape[1] = 32; /* [E, I, H]: the transposed layout */
	w->shape[2] = 64;
	rw_save(&x);
	CHECK_INT_EQ(open_err(x.dir), -EBADMSG);
	CHECK_STR_HAS(err.msg, "fused tensor \"model.layers.1.mlp.experts.down_proj\" is not "
		      "[8, 64, 32] as config.json implies");
}

/* An independent E4M3 decoder for the test: the value table built by
 * walking the representable numbers upwards from zero. */
static float e4m3_walk(uint8_t b)
{
	float v = 0.0f, step = 0x1p-9f; /* subnormal spacing */
	int code = b & 0x7f;

	for (int k = 0; k < code; k++) {
		/* Codes 0..15 are 2^-9 apart (subnormals, then the first
		 * binade, [2^-6, 2^-5)); each later binade of 8 doubles it. */
		if (k >= 16 && k % 8 == 0)
			step *= 2.0f;
		v += step;
	}
	if (code == 0x7f)
		v = NAN;
	return b & 0x80 ? -v : v;
}

/*
 * FP8 weights with 128 x 128 block scales: the embedding [256, 64] as
 * F8_E4M3 with weight_scale_inv [2, 1] (two row blocks), every byte value
 * but NaN's; read back, row by row and whole, as decoded * its block's
 * scale.  An F8_E8M0 tensor the model does not use is no obstacle; one it
 * uses is refused naming tensor and dtype.
 */
static void test_fp8_block_scales(void)
{
	struct rw x;
	struct ckpt *c = NULL;
	struct st_write_tensor *w;
	uint8_t *q = malloc(256 * 64);
	float *sc = malloc(2 * sizeof(float)), *got = malloc(256 * 64 * sizeof(float));
	uint8_t *e8 = malloc(16);

	for (int i = 0; i < 256 * 64; i++) {
		q[i] = (uint8_t)(i * 7 + i / 64);
		if ((q[i] & 0x7f) == 0x7f)
			q[i] = 0x38; /* 1.0 rather than NaN */
	}
	sc[0] = 0.5f;
	sc[1] = 3.0f;
	memset(e8, 127, 16);
	rw_load(&x, "olmoe-f32");
	w = rw_find(&x, "model.embed_tokens.weight");
	rw_drop(&x, (size_t)(w - x.w));
	rw_add(&x, "model.embed_tokens.weight", ST_F8_E4M3, 2, 256, 64, 0, q);
	rw_add(&x, "model.embed_tokens.weight_scale_inv", ST_F32, 2, 2, 1, 0, sc);
	rw_add(&x, "model.extra.scales", ST_F8_E8M0, 1, 16, 0, 0, e8);
	rw_save(&x);
	CHECK_INT_EQ(ckpt_open(x.dir, &c, &err), 0);
	if (c) {
		uint8_t *qq = malloc(256 * 64);
		size_t bad = 0;

		for (int i = 0; i < 256 * 64; i++) {
			qq[i] = (uint8_t)(i * 7 + i / 64);
			if ((qq[i] & 0x7f) == 0x7f)
				qq[i] = 0x38;
		}
		CHECK_INT_EQ(ckpt_read_f32(c, "model.embed_tokens.weight", got, 256 * 64, &err), 0);
		for (int i = 0; i < 256 * 64; i++)
			bad += got[i] != e4m3_walk(qq[i]) * (i / 64 < 128 ? 0.5f : 3.0f);
		CHECK_INT_EQ(bad, 0);
		CHECK_INT_EQ(ckpt_read_rows_f32(c, "model.embed_tokens.weight", 127, 2, got, &err), 0);
		for (int i = 0; i < 128; i++)
			bad += got[i] != e4m3_walk(qq[127 * 64 + i]) * (i < 64 ? 0.5f : 3.0f);
		CHECK_INT_EQ(bad, 0);
		free(qq);
	}
	ckpt_free(c);
	c = NULL;

	/* A scale of the wrong shape: refused naming it. */
	CHECK_INT_EQ(unlink(in(x.dir, "model.safetensors")), 0);
	CHECK_INT_EQ(unlink(in(x.dir, "config.json")), 0);
	CHECK_INT_EQ(rmdir(x.dir), 0);
	rw_load(&x, "olmoe-f32");
	w = rw_find(&x, "model.embed_tokens.weight");
	rw_drop(&x, (size_t)(w - x.w));
	q = calloc(256 * 64, 1);
	sc = calloc(1, sizeof(float));
	rw_add(&x, "model.embed_tokens.weight", ST_F8_E4M3, 2, 256, 64, 0, q);
	rw_add(&x, "model.embed_tokens.weight_scale_inv", ST_F32, 2, 1, 1, 0, sc);
	rw_save(&x);
	CHECK_INT_EQ(open_err(x.dir), -EBADMSG);
	CHECK_STR_HAS(err.msg, "scale tensor \"model.embed_tokens.weight_scale_inv\" is not [2, 1]");

	/* A needed tensor of a dtype not read here. */
	CHECK_INT_EQ(unlink(in(x.dir, "model.safetensors")), 0);
	CHECK_INT_EQ(unlink(in(x.dir, "config.json")), 0);
	CHECK_INT_EQ(rmdir(x.dir), 0);
	rw_load(&x, "olmoe-f32");
	w = rw_find(&x, "model.norm.weight");
	rw_drop(&x, (size_t)(w - x.w));
	rw_add(&x, "model.norm.weight", ST_F8_E8M0, 1, 64, 0, 0, calloc(64, 1));
	rw_save(&x);
	CHECK_INT_EQ(open_err(x.dir), -EBADMSG);
	CHECK_STR_HAS(err.msg, "tensor \"model.norm.weight\" is F8_E8M0, which grokwatch cannot "
		      "read");
	free(got);
}

/* Another trainer's checkpoint: refused naming the format and the two
 * ways forward (foreign.h), by ckpt_open (inspect) as by the watcher's
 * completeness check. */
static void test_foreign_formats(void)
{
	char d[512];

	pcopy(d, sizeof(d), in(tap_tmpdir(), "step-100"));
	CHECK_INT_EQ(mkdir(d, 0755), 0);
	spit(in(d, ".metadata"), "x", 1);
	spit(in(d, "__0_0.distcp"), "x", 1);
	CHECK_INT_EQ(open_err(d), -ENOTSUP);
	CHECK_STR_HAS(err.msg, "step-100\": a PyTorch DCP checkpoint (.metadata and *.distcp, as "
		      "torchtitan writes), not a Hugging Face checkpoint; grokwatch cannot read it: "
		      "save Hugging Face safetensors (save_pretrained: config.json and "
		      "model.safetensors), or write routing files with grokwatch.trace");
	CHECK_INT_EQ(complete(d, NULL), -ENOTSUP);
	CHECK_STR_HAS(err.msg, "a PyTorch DCP checkpoint");

	/* HF Trainer with DeepSpeed: config.json, no weights, global_step<N>/. */
	pcopy(d, sizeof(d), in(tap_tmpdir(), "checkpoint-5"));
	CHECK_INT_EQ(mkdir(d, 0755), 0);
	spit(in(d, "config.json"), "{}", 2);
	CHECK_INT_EQ(complete(d, NULL), 0); /* not yet: weights may follow */
	CHECK_INT_EQ(mkdir(in(d, "global_step5"), 0755), 0);
	spit(in(d, "global_step5/mp_rank_00_model_states.pt"), "x", 1);
	CHECK_INT_EQ(complete(d, NULL), -ENOTSUP);
	CHECK_STR_HAS(err.msg, "a DeepSpeed checkpoint (global_step*/*_model_states.pt");
	CHECK_INT_EQ(open_err(d), -EBADMSG); /* config.json "{}" is read first */

	/* pytorch_model.bin alone, with a good config. */
	pcopy(d, sizeof(d), copy_fixture("olmoe-f32"));
	CHECK_INT_EQ(unlink(in(d, "model.safetensors")), 0);
	spit(in(d, "pytorch_model.bin"), "x", 1);
	CHECK_INT_EQ(open_err(d), -ENOTSUP);
	CHECK_STR_HAS(err.msg, "PyTorch pickle weights only (pytorch_model.bin)");
	CHECK_INT_EQ(complete(d, NULL), -ENOTSUP);

	/* Megatron's mp_rank_* and its torch_dist; OLMo-core's model_and_optim. */
	pcopy(d, sizeof(d), in(tap_tmpdir(), "iter_0000010"));
	CHECK_INT_EQ(mkdir(d, 0755), 0);
	CHECK_INT_EQ(mkdir(in(d, "mp_rank_00"), 0755), 0);
	CHECK_INT_EQ(open_err(d), -ENOTSUP);
	CHECK_STR_HAS(err.msg, "a Megatron-LM checkpoint (mp_rank_*/)");
	pcopy(d, sizeof(d), in(tap_tmpdir(), "iter_0000020"));
	CHECK_INT_EQ(mkdir(d, 0755), 0);
	spit(in(d, "__0_0.distcp"), "x", 1);
	spit(in(d, "common.pt"), "x", 1);
	CHECK_INT_EQ(open_err(d), -ENOTSUP);
	CHECK_STR_HAS(err.msg, "a Megatron-LM checkpoint (torch_dist");
	pcopy(d, sizeof(d), in(tap_tmpdir(), "step30"));
	CHECK_INT_EQ(mkdir(d, 0755), 0);
	CHECK_INT_EQ(mkdir(in(d, "model_and_optim"), 0755), 0);
	spit(in(d, "model_and_optim/.metadata"), "x", 1);
	CHECK_INT_EQ(complete(d, NULL), -ENOTSUP);
	CHECK_STR_HAS(err.msg, "an OLMo-core checkpoint");
	/* Nothing recognizable: still "not yet". */
	pcopy(d, sizeof(d), in(tap_tmpdir(), "step40"));
	CHECK_INT_EQ(mkdir(d, 0755), 0);
	spit(in(d, "optimizer.pt"), "x", 1);
	CHECK_INT_EQ(complete(d, NULL), 0);
	CHECK_STR_HAS(err.msg, "no config.json yet");
}

static void test_not_a_checkpoint(void)
{
	CHECK_INT_EQ(open_err(fixture("nonexistent")), -ENOENT);
	CHECK_STR_HAS(err.msg, "nonexistent\": No such file");
	CHECK_INT_EQ(open_err(fixture("manifest.json")), -ENOTDIR);
	CHECK_STR_HAS(err.msg, "not a directory");
	CHECK_INT_EQ(open_err(tap_tmpdir()), -ENOENT);
	CHECK_STR_HAS(err.msg, "no config.json");
}

/* The signature of what a computation reads: the weights and config, not
 * what a trainer adds beside them. */
static void test_signature(void)
{
	char d[512];
	uint64_t a = 0, b = 0;

	snprintf(d, sizeof(d), "%s/sig", tap_tmpdir());
	CHECK_INT_EQ(mkdir(d, 0755), 0);
	spit(in(d, "config.json"), "{}", 2);
	spit(in(d, "model.safetensors"), "0123456789", 10);
	CHECK_INT_EQ(ckpt_signature(d, &a), 0);
	CHECK(a != 0);
	CHECK_INT_EQ(ckpt_signature(d, &b), 0);
	CHECK(a == b);
	spit(in(d, "optimizer.pt"), "x", 1);
	spit(in(d, "trainer_state.json"), "{}", 2);
	CHECK_INT_EQ(ckpt_signature(d, &b), 0);
	CHECK(a == b);
	usleep(30 * 1000); /* past the file system's time stamp granularity */
	spit(in(d, "model.safetensors"), "abcdefghij", 10); /* same size, rewritten */
	CHECK_INT_EQ(ckpt_signature(d, &b), 0);
	CHECK(a != b);
	a = b;
	spit(in(d, "model-00002-of-00002.safetensors"), "y", 1);
	CHECK_INT_EQ(ckpt_signature(d, &b), 0);
	CHECK(a != b);
	a = b;
	usleep(30 * 1000);
	spit(in(d, "config.json"), "[]", 2);
	CHECK_INT_EQ(ckpt_signature(d, &b), 0);
	CHECK(a != b);
	snprintf(d, sizeof(d), "%s/no-such-dir", tap_tmpdir());
	CHECK_INT_EQ(ckpt_signature(d, &b), -ENOENT);
}

static const struct tap_test tests[] = {
	{ "signature", test_signature },
	{ "open_every_fixture", test_open_every_fixture },
	{ "name_prefixes", test_name_prefixes },
	{ "name_ambiguous", test_name_ambiguous },
	{ "fused_experts", test_fused_experts },
	{ "fused_refusals", test_fused_refusals },
	{ "fp8_block_scales", test_fp8_block_scales },
	{ "foreign_formats", test_foreign_formats },
	{ "sharded_lookup", test_sharded_lookup },
	{ "lookup_only_through_weight_map", test_lookup_only_through_weight_map },
	{ "read_f32", test_read_f32 },
	{ "complete_missing_shard", test_complete_missing_shard },
	{ "complete_truncated_shard", test_complete_truncated_shard },
	{ "complete_single_file", test_complete_single_file },
	{ "complete_marker_config_weights", test_complete_marker_config_weights },
	{ "complete_routing_file", test_complete_routing_file },
	{ "index_not_json", test_index_not_json },
	{ "index_path_escape", test_index_path_escape },
	{ "index_tensor_not_in_shard", test_index_tensor_not_in_shard },
	{ "config_refusals", test_config_refusals },
	{ "tied", test_tied },
	{ "integer_dtype", test_integer_dtype },
	{ "not_a_checkpoint", test_not_a_checkpoint },
	{ NULL, NULL },
};

TAP_MAIN(tests)
