/*
 * test_routing_file.c — routing files (routing_file.h): a round trip
 * through routing_file_write, a file written byte by byte here (so the
 * reader is checked against the format, not only against our writer), and
 * every malformed case refused with a message naming the file and the
 * fault.
 */
#include <cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "../tap.h"
#include "engine/routing_file.h"

/* ---- a safetensors file written by hand ----------------------------------- */

#define FX_N 3
#define FX_L 2
#define FX_E 4
#define FX_H 3
#define FX_K 2
#define FX_T 6 /* ntokens 2, 1, 3 */

struct fx {
	float gbar[FX_N][FX_L][FX_E];
	float loss[FX_N];
	int32_t ntok[FX_N];
	float router[FX_L + 1][FX_E][FX_H];
	uint16_t ids[FX_T][FX_L][FX_K];
	float w[FX_T][FX_L][FX_K];
	float ent[FX_T][FX_L];
	float lse[FX_T][FX_L];
	int n_router;          /* router.0 .. router.<n_router-1> written */
	bool tokens;
	const char *skip;      /* a tensor name left out */
	const char *meta[8][2]; /* key, value; value NULL = left out */
	int64_t loss_len;      /* shape of loss */
	const char *gbar_dtype;
	const char *extra;     /* an extra tensor name (F32 [1]) */
};

static void fx_init(struct fx *f)
{
	static const float rows[FX_N][FX_L][FX_E] = {
		{ { .5f, .25f, .125f, .125f }, { 1, 0, 0, 0 } },
		{ { 0, 0, 0, 1 }, { .25f, .25f, .25f, .25f } },
		{ { .1f, .2f, .3f, .4f }, { 0, .5f, .5f, 0 } },
	};

	memset(f, 0, sizeof(*f));
	memcpy(f->gbar, rows, sizeof(rows));
	f->loss[0] = 1.5f, f->loss[1] = NAN, f->loss[2] = 0.25f;
	f->ntok[0] = 2, f->ntok[1] = 1, f->ntok[2] = 3;
	for (int l = 0; l <= FX_L; l++)
		for (int e = 0; e < FX_E; e++)
			for (int h = 0; h < FX_H; h++)
				f->router[l][e][h] = (float)(l * 100 + e * 10 + h) - 7.5f;
	for (int t = 0; t < FX_T; t++) {
		for (int l = 0; l < FX_L; l++) {
			f->ids[t][l][0] = (uint16_t)((t + l) % FX_E);
			f->ids[t][l][1] = (uint16_t)((t + l + 1) % FX_E);
			f->w[t][l][0] = .6f, f->w[t][l][1] = .4f;
			f->ent[t][l] = (float)(t + l) / 8;
			f->lse[t][l] = (float)t - 2;
		}
	}
	f->n_router = FX_L;
	f->tokens = true;
	f->loss_len = FX_N;
	f->gbar_dtype = "F32";
	f->meta[0][0] = "format", f->meta[0][1] = "grokwatch-routing";
	f->meta[1][0] = "version", f->meta[1][1] = "1";
	f->meta[2][0] = "step", f->meta[2][1] = "1200";
	f->meta[3][0] = "groups", f->meta[3][1] = "[\"math\",\"code\",\"math\"]";
	f->meta[4][0] = "ids", f->meta[4][1] = "[\"m1\",\"c1\",\"\"]";
	f->meta[5][0] = "top_k", f->meta[5][1] = "2";
	f->meta[6][0] = "arch", f->meta[6][1] = "OlmoeForCausalLM";
}

static void fx_meta(struct fx *f, const char *key, const char *value)
{
	for (int i = 0; i < 8; i++) {
		if (!f->meta[i][0] || strcmp(f->meta[i][0], key) == 0) {
			f->meta[i][0] = key;
			f->meta[i][1] = value;
			return;
		}
	}
	tap_fail(__FILE__, __LINE__, "fx_meta: full");
}

struct blob {
	unsigned char *p;
	size_t n;
};

static void tensor(cJSON *hdr, struct blob *data, const char *name, const char *dtype,
		   int ndim, const int64_t *shape, const void *bytes, size_t size,
		   const struct fx *f)
{
	cJSON *t, *s, *o;

	if (f->skip && strcmp(f->skip, name) == 0)
		return;
	t = cJSON_AddObjectToObject(hdr, name);
	cJSON_AddStringToObject(t, "dtype", dtype);
	s = cJSON_AddArrayToObject(t, "shape");
	for (int d = 0; d < ndim; d++)
		cJSON_AddItemToArray(s, cJSON_CreateNumber((double)shape[d]));
	o = cJSON_AddArrayToObject(t, "data_offsets");
	cJSON_AddItemToArray(o, cJSON_CreateNumber((double)data->n));
	cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(data->n + size)));
	data->p = realloc(data->p, data->n + size + 1);
	memcpy(data->p + data->n, bytes, size);
	data->n += size;
}

/* Writes the file under the scratch dir; returns its path (static). */
static const char *fx_write(const struct fx *f, const char *fname)
{
	static char path[4096];
	cJSON *hdr = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(hdr, "__metadata__");
	struct blob data = { NULL, 0 };
	int64_t s3[3] = { FX_N, FX_L, FX_E }, s1[1] = { f->loss_len }, n1[1] = { FX_N };
	int64_t sr[2] = { FX_E, FX_H }, st3[3] = { FX_T, FX_L, FX_K }, st2[2] = { FX_T, FX_L };
	int64_t one[1] = { 1 };
	float extra = 0, loss_pad[FX_N + 2] = { 0 };
	char *text, *file;
	size_t hl, total;
	const char *p;

	for (int i = 0; i < 8; i++)
		if (f->meta[i][0] && f->meta[i][1])
			cJSON_AddStringToObject(meta, f->meta[i][0], f->meta[i][1]);
	tensor(hdr, &data, "gbar", f->gbar_dtype,
	       3, s3, f->gbar, strcmp(f->gbar_dtype, "F32") ? sizeof(f->gbar) / 2 : sizeof(f->gbar), f);
	memcpy(loss_pad, f->loss, sizeof(f->loss));
	tensor(hdr, &data, "loss", "F32", 1, s1, loss_pad, (size_t)f->loss_len * 4, f);
	tensor(hdr, &data, "ntokens", "I32", 1, n1, f->ntok, sizeof(f->ntok), f);
	for (int l = 0; l < f->n_router; l++) {
		char name[32];

		snprintf(name, sizeof(name), "router.%d", l);
		tensor(hdr, &data, name, "F32", 2, sr, f->router[l], sizeof(f->router[l]), f);
	}
	if (f->tokens) {
		tensor(hdr, &data, "topk_ids", "U16", 3, st3, f->ids, sizeof(f->ids), f);
		tensor(hdr, &data, "topk_w", "F32", 3, st3, f->w, sizeof(f->w), f);
		tensor(hdr, &data, "entropy", "F32", 2, st2, f->ent, sizeof(f->ent), f);
		tensor(hdr, &data, "lse", "F32", 2, st2, f->lse, sizeof(f->lse), f);
	}
	if (f->extra)
		tensor(hdr, &data, f->extra, "F32", 1, one, &extra, 4, f);
	text = cJSON_PrintUnformatted(hdr);
	hl = strlen(text);
	total = 8 + hl + data.n;
	file = malloc(total);
	for (int i = 0; i < 8; i++)
		file[i] = (char)((uint64_t)hl >> (8 * i));
	memcpy(file + 8, text, hl);
	if (data.n)
		memcpy(file + 8 + hl, data.p, data.n);
	p = tap_write_file(fname, file, total);
	snprintf(path, sizeof(path), "%s", p);
	free(file);
	free(text);
	free(data.p);
	cJSON_Delete(hdr);
	return path;
}

/* ---- reading a hand-written file ------------------------------------------ */

static void test_read_hand_written(void)
{
	struct fx f;
	struct routing *r = NULL;
	struct gw_err err;
	const char *path;

	fx_init(&f);
	path = fx_write(&f, "hand.safetensors");
	if (routing_file_read(path, &r, &err) < 0)
		tap_fail(__FILE__, __LINE__, "read: %s", err.msg);
	CHECK_INT_EQ(r->n_samples, FX_N);
	CHECK_INT_EQ(r->n_layers, FX_L);
	CHECK_INT_EQ(r->n_experts, FX_E);
	CHECK_INT_EQ(r->hidden, FX_H);
	CHECK_INT_EQ(r->top_k, FX_K);
	CHECK_INT_EQ(r->step, 1200);
	CHECK(r->has_tokens);
	CHECK_INT_EQ(r->tok_offset[FX_N], FX_T);
	CHECK(memcmp(r->gbar, f.gbar, sizeof(f.gbar)) == 0);
	CHECK_NEAR(r->loss[0], 1.5, 0);
	CHECK(isnan(r->loss[1]));
	CHECK_INT_EQ(r->ntokens[2], 3);
	CHECK_STR_EQ(r->groups[0], "math");
	CHECK_STR_EQ(r->groups[1], "code");
	CHECK_STR_EQ(r->ids[1], "c1");
	CHECK_STR_EQ(r->ids[2], "");
	CHECK_STR_EQ(r->arch, "OlmoeForCausalLM");
	CHECK(r->probe_hash == NULL);
	CHECK(r->checkpoint == NULL);
	for (int l = 0; l < FX_L; l++)
		CHECK(memcmp(r->router[l], f.router[l], sizeof(f.router[l])) == 0);
	CHECK(memcmp(r->topk_ids, f.ids, sizeof(f.ids)) == 0);
	CHECK(memcmp(r->topk_w, f.w, sizeof(f.w)) == 0);
	CHECK(memcmp(r->entropy, f.ent, sizeof(f.ent)) == 0);
	CHECK(memcmp(r->lse, f.lse, sizeof(f.lse)) == 0);
	routing_free(r);

	/* Without router and per-token tensors, and without a step. */
	f.n_router = 0;
	f.tokens = false;
	fx_meta(&f, "step", NULL);
	fx_meta(&f, "top_k", NULL);
	path = fx_write(&f, "bare.safetensors");
	if (routing_file_read(path, &r, &err) < 0)
		tap_fail(__FILE__, __LINE__, "read: %s", err.msg);
	CHECK(!r->has_tokens);
	CHECK_INT_EQ(r->hidden, 0);
	CHECK(r->router[0] == NULL);
	CHECK_INT_EQ(r->step, -1);
	CHECK_INT_EQ(r->top_k, 0);
	routing_free(r);
}

/* ---- the round trip ------------------------------------------------------- */

static struct routing *sample_routing(void)
{
	struct fx f;
	struct routing *r = routing_new(FX_N, FX_L, FX_E, FX_K);
	static const char *const g[FX_N] = { "web", "math", "web" };
	static const char *const id[FX_N] = { "w-1", "m\xc3\xa9", "" };

	fx_init(&f);
	memcpy(r->gbar, f.gbar, sizeof(f.gbar));
	memcpy(r->loss, f.loss, sizeof(f.loss));
	memcpy(r->ntokens, f.ntok, sizeof(f.ntok));
	for (int i = 0; i < FX_N; i++) {
		r->groups[i] = gw_strdup(g[i]);
		r->ids[i] = gw_strdup(id[i]);
	}
	r->hidden = FX_H;
	for (int l = 0; l < FX_L; l++) {
		r->router[l] = gw_malloc(sizeof(f.router[l]));
		memcpy(r->router[l], f.router[l], sizeof(f.router[l]));
	}
	routing_alloc_tokens(r);
	memcpy(r->topk_ids, f.ids, sizeof(f.ids));
	memcpy(r->topk_w, f.w, sizeof(f.w));
	memcpy(r->entropy, f.ent, sizeof(f.ent));
	memcpy(r->lse, f.lse, sizeof(f.lse));
	r->step = 77;
	r->probe_hash = gw_strdup("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	r->checkpoint = gw_strdup("/ckpt/step77 \"quoted\"");
	r->arch = gw_strdup("MixtralForCausalLM");
	return r;
}

static void check_equal(const struct routing *a, const struct routing *b)
{
	size_t N = (size_t)a->n_samples, L = (size_t)a->n_layers, E = (size_t)a->n_experts;

	CHECK_INT_EQ(b->n_samples, a->n_samples);
	CHECK_INT_EQ(b->n_layers, a->n_layers);
	CHECK_INT_EQ(b->n_experts, a->n_experts);
	CHECK_INT_EQ(b->top_k, a->top_k);
	CHECK_INT_EQ(b->hidden, a->hidden);
	CHECK_INT_EQ(b->step, a->step);
	CHECK(memcmp(b->gbar, a->gbar, N * L * E * sizeof(float)) == 0);
	for (size_t i = 0; i < N; i++) {
		CHECK(memcmp(&b->loss[i], &a->loss[i], sizeof(float)) == 0 ||
		      (isnan(a->loss[i]) && isnan(b->loss[i])));
		CHECK_INT_EQ(b->ntokens[i], a->ntokens[i]);
		CHECK_STR_EQ(b->groups[i], a->groups[i]);
		CHECK_STR_EQ(b->ids[i], a->ids[i]);
	}
	for (size_t l = 0; l < L; l++) {
		CHECK((a->router[l] == NULL) == (b->router[l] == NULL));
		if (a->router[l])
			CHECK(memcmp(b->router[l], a->router[l],
				     E * (size_t)a->hidden * sizeof(float)) == 0);
	}
	CHECK_INT_EQ(b->has_tokens, a->has_tokens);
	if (a->has_tokens) {
		size_t T = (size_t)a->tok_offset[N], k = (size_t)a->top_k;

		CHECK_INT_EQ(b->tok_offset[N], a->tok_offset[N]);
		CHECK(memcmp(b->topk_ids, a->topk_ids, T * L * k * 2) == 0);
		CHECK(memcmp(b->topk_w, a->topk_w, T * L * k * 4) == 0);
		CHECK(memcmp(b->entropy, a->entropy, T * L * 4) == 0);
		CHECK(memcmp(b->lse, a->lse, T * L * 4) == 0);
	}
#define SAME_STR(x) do { \
	CHECK((a->x == NULL) == (b->x == NULL)); \
	if (a->x) CHECK_STR_EQ(b->x, a->x); \
} while (0)
	SAME_STR(probe_hash);
	SAME_STR(checkpoint);
	SAME_STR(arch);
#undef SAME_STR
}

static void test_round_trip(void)
{
	struct routing *r = sample_routing(), *back = NULL;
	struct gw_err err;
	char path[4096];

	snprintf(path, sizeof(path), "%s/rt.safetensors", tap_tmpdir());
	if (routing_file_write(path, r, &err) < 0)
		tap_fail(__FILE__, __LINE__, "write: %s", err.msg);
	if (routing_file_read(path, &back, &err) < 0)
		tap_fail(__FILE__, __LINE__, "read: %s", err.msg);
	check_equal(r, back);
	routing_free(back);

	/* Without the optional parts. */
	for (int l = 0; l < FX_L; l++) {
		free(r->router[l]);
		r->router[l] = NULL;
	}
	r->hidden = 0;
	free(r->probe_hash), free(r->checkpoint), free(r->arch);
	r->probe_hash = r->checkpoint = r->arch = NULL;
	r->step = -1;
	free(r->topk_ids), free(r->topk_w), free(r->entropy), free(r->lse), free(r->tok_offset);
	r->topk_ids = NULL, r->topk_w = NULL, r->entropy = NULL, r->lse = NULL;
	r->tok_offset = NULL;
	r->has_tokens = false;
	if (routing_file_write(path, r, &err) < 0)
		tap_fail(__FILE__, __LINE__, "write: %s", err.msg);
	if (routing_file_read(path, &back, &err) < 0)
		tap_fail(__FILE__, __LINE__, "read: %s", err.msg);
	check_equal(r, back);
	routing_free(back);
	routing_free(r);
}

static void test_write_refuses(void)
{
	struct routing *r = sample_routing();
	struct gw_err err;
	char path[4096];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/bad.safetensors", tap_tmpdir());
	free(r->groups[1]);
	r->groups[1] = gw_strdup("all");
	CHECK_INT_EQ(routing_file_write(path, r, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, path);
	CHECK_STR_HAS(err.msg, "\"all\"");
	free(r->groups[1]);
	r->groups[1] = gw_strdup("math");
	r->gbar[0] = 0.9f; /* row 0 of sample 0 now sums to 1.4 */
	CHECK_INT_EQ(routing_file_write(path, r, &err), -EINVAL);
	CHECK_STR_HAS(err.msg, "sums to");
	fp = fopen(path, "rb");
	CHECK(fp == NULL); /* nothing written */
	routing_free(r);
}

/* ---- malformed files ------------------------------------------------------ */

/* Write f, read it, expect -EBADMSG and a message naming the file that
 * contains `fault`. */
static void refused(const struct fx *f, const char *fault, int line)
{
	struct routing *r = NULL;
	struct gw_err err;
	char name[64], want[4200];
	const char *path;
	int rc;

	snprintf(name, sizeof(name), "bad%d.safetensors", line);
	path = fx_write(f, name);
	rc = routing_file_read(path, &r, &err);
	if (rc != -EBADMSG) {
		routing_free(r);
		tap_fail(__FILE__, line, "expected -EBADMSG for \"%s\", got %d (%s)", fault, rc,
			 rc < 0 ? err.msg : "accepted");
	}
	snprintf(want, sizeof(want), "\"%s\": ", path);
	if (strncmp(err.msg, want, strlen(want)) != 0 || !strstr(err.msg, fault))
		tap_fail(__FILE__, line, "message \"%s\" should start with %s and contain \"%s\"",
			 err.msg, want, fault);
	tap_note("refused: %s", err.msg);
}

#define REFUSED(f, fault) refused(f, fault, __LINE__)

static void test_bad_metadata(void)
{
	struct fx f;

	fx_init(&f), fx_meta(&f, "format", "grokwatch-routinG");
	REFUSED(&f, "metadata \"format\" is \"grokwatch-routinG\"");
	fx_init(&f), fx_meta(&f, "format", NULL);
	REFUSED(&f, "\"format\" missing");
	fx_init(&f), fx_meta(&f, "version", "2");
	REFUSED(&f, "\"version\" is \"2\"");
	fx_init(&f), fx_meta(&f, "step", "12a");
	REFUSED(&f, "\"step\" is \"12a\", not a decimal integer");
	fx_init(&f), fx_meta(&f, "step", "-1");
	REFUSED(&f, "not a decimal integer");
	fx_init(&f), fx_meta(&f, "top_k", "3");
	REFUSED(&f, "\"top_k\" is 3, but topk_ids has k = 2");
	fx_init(&f), fx_meta(&f, "top_k", NULL);
	REFUSED(&f, "\"top_k\" missing");
	fx_init(&f), fx_meta(&f, "probe_hash", "ABC");
	REFUSED(&f, "probe_hash");
}

static void test_bad_groups_ids(void)
{
	struct fx f;

	fx_init(&f), fx_meta(&f, "groups", "[\"math\",\"code\"]");
	REFUSED(&f, "\"groups\" has 2 entries, expected 3");
	fx_init(&f), fx_meta(&f, "ids", "[\"a\",\"b\",\"c\",\"d\"]");
	REFUSED(&f, "\"ids\" has 4 entries, expected 3");
	fx_init(&f), fx_meta(&f, "groups", "{\"math\": 3}");
	REFUSED(&f, "\"groups\" is not a JSON array");
	fx_init(&f), fx_meta(&f, "groups", "math,code,math");
	REFUSED(&f, "\"groups\" is not valid JSON");
	fx_init(&f), fx_meta(&f, "groups", "[\"math\",2,\"x\"]");
	REFUSED(&f, "\"groups\" entry 1 is not a string");
	fx_init(&f), fx_meta(&f, "groups", "[\"math\",\"\",\"x\"]");
	REFUSED(&f, "\"groups\" entry 1 has 0 bytes");
	fx_init(&f), fx_meta(&f, "groups", "[\"math\",\"all\",\"x\"]");
	REFUSED(&f, "reserved");
	fx_init(&f), fx_meta(&f, "ids", "[\"a\",\"b\\u0000c\",\"c\"]");
	REFUSED(&f, "NUL");
	fx_init(&f), fx_meta(&f, "groups", NULL);
	REFUSED(&f, "\"groups\" missing");
	fx_init(&f), fx_meta(&f, "ids", NULL);
	REFUSED(&f, "\"ids\" missing");
}

static void test_bad_shapes(void)
{
	struct fx f;

	fx_init(&f), f.loss_len = FX_N + 1;
	REFUSED(&f, "tensor \"loss\" has shape [4], expected [3]");
	fx_init(&f), f.skip = "gbar";
	REFUSED(&f, "tensor \"gbar\" missing");
	fx_init(&f), f.gbar_dtype = "F16";
	REFUSED(&f, "\"gbar\" has dtype F16, expected F32");
	fx_init(&f), f.extra = "gbar2";
	REFUSED(&f, "unexpected tensor \"gbar2\"");
	fx_init(&f), f.extra = "router.01";
	REFUSED(&f, "router.<layer>");
}

static void test_bad_router(void)
{
	struct fx f;

	fx_init(&f), f.n_router = 1;
	REFUSED(&f, "tensor \"router.1\" missing");
	fx_init(&f), f.n_router = 3;
	REFUSED(&f, "\"router.2\" names layer 2, but gbar has 2 layers");
	fx_init(&f), f.router[1][2][1] = INFINITY;
	REFUSED(&f, "router.1 element [2, 1] is not finite");
}

static void test_bad_tokens(void)
{
	static const char *const names[4] = { "topk_ids", "topk_w", "entropy", "lse" };
	struct fx f;

	for (int j = 0; j < 4; j++) {
		fx_init(&f), f.skip = names[j];
		REFUSED(&f, "all four or none");
	}
	fx_init(&f), f.ids[4][1][0] = FX_E;
	REFUSED(&f, "topk_ids of token 4, layer 1, slot 0 is 4, not below E = 4");
	fx_init(&f), f.ntok[1] = 2; /* sum 7, T 6 */
	REFUSED(&f, "T = 6 tokens, but ntokens sum to 7");
	fx_init(&f), f.ntok[1] = 0;
	REFUSED(&f, "ntokens of sample 1 is 0");
	fx_init(&f), f.tokens = false, f.ntok[1] = -3;
	REFUSED(&f, "ntokens of sample 1 is -3");
	fx_init(&f), f.lse[2][0] = NAN;
	REFUSED(&f, "lse of token 2, layer 0 is not finite");
}

static void test_bad_values(void)
{
	struct fx f;

	fx_init(&f), f.gbar[2][1][1] = 0.6f; /* 0, .6, .5, 0 */
	REFUSED(&f, "gbar row of sample 2, layer 1 sums to 1.1");
	fx_init(&f), f.gbar[1][0][3] = NAN;
	REFUSED(&f, "gbar of sample 1, layer 0, expert 3 is nan");
	fx_init(&f), f.gbar[0][1][0] = 1.5f, f.gbar[0][1][1] = -0.5f;
	REFUSED(&f, "expert 1 is -0.5");
	fx_init(&f), f.loss[2] = -INFINITY;
	REFUSED(&f, "loss of sample 2 is -inf");

	/* Within tolerance is accepted. */
	{
		struct routing *r = NULL;
		struct gw_err err;

		fx_init(&f), f.gbar[0][0][0] = 0.5009f;
		if (routing_file_read(fx_write(&f, "tol.safetensors"), &r, &err) < 0)
			tap_fail(__FILE__, __LINE__, "read: %s", err.msg);
		routing_free(r);
	}
}

static void test_not_a_file(void)
{
	struct routing *r = NULL;
	struct gw_err err;
	char path[4096];

	snprintf(path, sizeof(path), "%s/missing.safetensors", tap_tmpdir());
	CHECK_INT_EQ(routing_file_read(path, &r, &err), -ENOENT);
	CHECK_STR_HAS(err.msg, path);
}

static void test_meta_strings(void)
{
	char **v = NULL;
	int n = 0;
	struct gw_err err;

	CHECK_INT_EQ(routing_meta_strings("x", "k", "[\"a\",\"b\\\\u0000\"]", -1, 0, 10, &n, &v,
					  &err), 0);
	CHECK_INT_EQ(n, 2);
	CHECK_STR_EQ(v[1], "b\\u0000");
	free(v[0]), free(v[1]), free(v);
	CHECK_INT_EQ(routing_meta_strings("x", "k", "[\"abc\"]", 1, 0, 2, &n, &v, &err), -EBADMSG);
	CHECK_STR_HAS(err.msg, "3 bytes, outside 0 .. 2");
	CHECK_INT_EQ(routing_meta_strings("x", "k", "[\"\\ud800\"]", 1, 0, 9, &n, &v, &err),
		     -EBADMSG);
	CHECK_INT_EQ(routing_meta_strings("x", "k", "[] x", 0, 0, 9, &n, &v, &err), -EBADMSG);
	CHECK_STR_HAS(err.msg, "not valid JSON");
}

static const struct tap_test tests[] = {
	{ "read_hand_written", test_read_hand_written },
	{ "round_trip", test_round_trip },
	{ "write_refuses", test_write_refuses },
	{ "bad_metadata", test_bad_metadata },
	{ "bad_groups_ids", test_bad_groups_ids },
	{ "bad_shapes", test_bad_shapes },
	{ "bad_router", test_bad_router },
	{ "bad_tokens", test_bad_tokens },
	{ "bad_values", test_bad_values },
	{ "not_a_file", test_not_a_file },
	{ "meta_strings", test_meta_strings },
	{ NULL, NULL },
};
TAP_MAIN(tests)
