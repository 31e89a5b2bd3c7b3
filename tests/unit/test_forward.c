/*
 * test_forward.c — invariants of the forward pass on the fixture checkpoints.
 *
 * The numbers themselves are checked against the independent PyTorch
 * reference by tests/reference/test_reference.sh; here are the properties
 * that hold whatever the weights: probabilities that sum to one, top-k sets
 * that are distinct (and sorted by weight for softmax routers), renormalized
 * (and scaled) weights where the architecture asks, NaN loss for a one-token
 * sample, a sample's results independent of the other samples it is batched
 * with, the same bits from run to run, the progress and cancel hooks, and
 * errors (not crashes) for a checkpoint truncated after it was opened and
 * for a token out of range.  Two routers are also checked on hand-made
 * weights whose decisions are worked out by hand: all-zero softmax logits,
 * and a sigmoid router whose correction biases exercise groups, the
 * two-best group score and the 0.0 mask.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "engine/amx.h"
#include "engine/checkpoint.h"
#include "engine/forward.h"
#include "engine/probe.h"
#include "engine/routing.h"
#include "engine/safetensors.h"

static const char *fixture(const char *name)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "%s/%s", tap_fixtures(), name);
	return buf;
}

static struct ckpt *open_ckpt(const char *name)
{
	struct gw_err err = { "" };
	struct ckpt *c = NULL;
	int r = ckpt_open(fixture(name), &c, &err);

	if (r < 0)
		tap_fail(__FILE__, __LINE__, "ckpt_open %s: %s", name, err.msg);
	return c;
}

static struct probe *open_probe(int vocab)
{
	struct gw_err err = { "" };
	struct probe *p = probe_new();
	int r = probe_add_jsonl(p, fixture("probe/probe.jsonl"), vocab, &err);

	if (r < 0)
		tap_fail(__FILE__, __LINE__, "probe: %s", err.msg);
	probe_finish(p);
	return p;
}

static struct routing *run(const struct ckpt *c, const struct probe *p,
			   const struct forward_opts *o)
{
	struct gw_err err = { "" };
	struct routing *rt = NULL;
	int r = forward_run(c, p, o, &rt, &err);

	if (r < 0)
		tap_fail(__FILE__, __LINE__, "forward_run: %d %s", r, err.msg);
	return rt;
}

/* Every invariant of one routing record against its probe and model. */
static void check_invariants(const struct ckpt *c, const struct probe *p,
			     const struct routing *rt)
{
	const struct model_desc *m = ckpt_model(c);
	int N = rt->n_samples, L = rt->n_layers, E = rt->n_experts, k = rt->top_k;
	bool renorm = m->arch == ARCH_MIXTRAL || m->norm_topk_prob;
	bool sig = m->router == ROUTER_SIGMOID;
	double scale = m->routed_scaling;

	CHECK_INT_EQ(N, p->n_samples);
	CHECK_INT_EQ(L, m->n_moe_layers);
	CHECK_INT_EQ(E, m->n_experts);
	CHECK_INT_EQ(k, m->top_k);
	CHECK_INT_EQ(rt->hidden, m->hidden);
	CHECK(rt->has_tokens);
	for (int i = 0; i < N; i++) {
		CHECK_INT_EQ(rt->ntokens[i], p->samples[i].ntokens);
		CHECK_STR_EQ(rt->groups[i], p->groups[p->samples[i].group]);
		CHECK_STR_EQ(rt->ids[i], p->samples[i].id);
		if (rt->ntokens[i] == 1)
			CHECK(isnan(rt->loss[i]));
		else
			CHECK(isfinite(rt->loss[i]) && rt->loss[i] > 0.0f);
		for (int l = 0; l < L; l++) {
			double s = 0.0;

			for (int e = 0; e < E; e++) {
				float g = rt->gbar[((size_t)i * L + l) * E + e];

				CHECK(g >= 0.0f && g <= 1.0f);
				s += g;
			}
			CHECK_NEAR(s, 1.0, 1e-5);
		}
	}
	for (int64_t t = 0; t < rt->tok_offset[N]; t++) {
		for (int l = 0; l < L; l++) {
			const uint16_t *ids = rt->topk_ids + ((size_t)t * L + l) * k;
			const float *w = rt->topk_w + ((size_t)t * L + l) * k;
			float ent = rt->entropy[(size_t)t * L + l];
			double ws = 0.0;

			for (int j = 0; j < k; j++) {
				CHECK_INT_LT(ids[j], E);
				for (int q = 0; q < j; q++)
					CHECK(ids[q] != ids[j]);
				/* A sigmoid router orders by biased score, not weight. */
				if (j > 0 && !sig)
					CHECK(w[j] <= w[j - 1]);
				CHECK(w[j] > 0.0f);
				ws += w[j];
			}
			if (renorm)
				CHECK_NEAR(ws, scale, 1e-5);
			else if (sig)
				CHECK(ws <= k * scale + 1e-5); /* each sigmoid is below 1 */
			else
				CHECK(ws <= 1.0 + 1e-6);
			/* The top-k of E experts holds at least k/E of the mass. */
			if (!renorm && !sig)
				CHECK(ws >= (double)k / E - 1e-6);
			CHECK(ent >= -1e-6f && ent <= logf((float)E) + 1e-5f);
			CHECK(isfinite(rt->lse[(size_t)t * L + l]));
		}
	}
	for (int l = 0; l < L; l++)
		CHECK(rt->router[l] != NULL);
}

static void invariants_of(const char *name)
{
	struct ckpt *c = open_ckpt(name);
	struct probe *p = open_probe(ckpt_model(c)->vocab);
	struct routing *rt = run(c, p, NULL);

	check_invariants(c, p, rt);
	routing_free(rt);
	probe_free(p);
	ckpt_free(c);
}

static void test_invariants_olmoe(void)
{
	invariants_of("olmoe-f32");
}

static void test_invariants_mixtral(void)
{
	invariants_of("mixtral-bf16-sharded");
}

static void test_invariants_qwen2moe_tied_dense(void)
{
	invariants_of("qwen2moe-bf16");
}

static void test_invariants_qwen3moe(void)
{
	invariants_of("qwen3moe-f16-sharded");
}

static void test_invariants_deepseek_v3(void)
{
	invariants_of("dsv3-f32");
	invariants_of("dsv3-bf16-sharded");
	invariants_of("dsv3nolora-f32"); /* not renormalized, scaled by 1.5 */
}

static void test_invariants_glm4_moe(void)
{
	invariants_of("glm4moe-bf16");
	invariants_of("glm4moeplain-f32");
}

/* The router weights handed back are the checkpoint's, converted to fp32. */
static void test_router_weights_copied(void)
{
	struct ckpt *c = open_ckpt("olmoe-f32");
	const struct model_desc *m = ckpt_model(c);
	struct probe *p = open_probe(m->vocab);
	struct routing *rt = run(c, p, NULL);
	struct gw_err err = { "" };
	size_t n = (size_t)m->n_experts * (size_t)m->hidden;
	float *w = malloc(n * sizeof(float));
	char name[256];

	CHECK(w != NULL);
	for (int l = 0; l < m->n_layers; l++) {
		int lm = m->moe_layer_index[l];

		if (lm < 0)
			continue;
		CHECK_INT_EQ(model_tensor_name(m, MT_ROUTER, l, 0, name, sizeof(name)), 0);
		CHECK_INT_EQ(ckpt_read_f32(c, name, w, n, &err), 0);
		CHECK(memcmp(w, rt->router[lm], n * sizeof(float)) == 0);
	}
	free(w);
	routing_free(rt);
	probe_free(p);
	ckpt_free(c);
}

/*
 * Batching samples together must not change any sample's result: run one
 * sample alone and compare with its row in the full run.
 */
static void sample_independent_of_batch(const char *name)
{
	struct ckpt *c = open_ckpt(name);
	const struct model_desc *m = ckpt_model(c);
	struct probe *all = open_probe(m->vocab);
	struct routing *ra = run(c, all, NULL);
	int pick = -1;

	/* The longest sample exercises the most attention rows. */
	for (int i = 0; i < all->n_samples; i++)
		if (pick < 0 || all->samples[i].ntokens > all->samples[pick].ntokens)
			pick = i;
	{
		const struct probe_sample *s = &all->samples[pick];
		char line[65536];
		size_t len = 0;
		struct probe *one = probe_new();
		struct gw_err err = { "" };
		struct routing *r1;
		int L = ra->n_layers, E = ra->n_experts, k = ra->top_k;

		len += (size_t)snprintf(line + len, sizeof(line) - len, "{\"tokens\": [");
		for (int t = 0; t < s->ntokens; t++)
			len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%d",
						t ? ", " : "", s->tokens[t]);
		len += (size_t)snprintf(line + len, sizeof(line) - len,
					"], \"group\": \"g\", \"id\": \"x\"}\n");
		CHECK(len < sizeof(line));
		CHECK_INT_EQ(probe_add_jsonl(one, tap_write_file("one.jsonl", line, len),
					     m->vocab, &err), 0);
		probe_finish(one);
		r1 = run(c, one, NULL);
		CHECK_NEAR(r1->loss[0], ra->loss[pick], 1e-5 * fabs(ra->loss[pick]));
		for (int l = 0; l < L; l++)
			for (int e = 0; e < E; e++)
				CHECK_NEAR(r1->gbar[(size_t)l * E + e],
					   ra->gbar[((size_t)pick * L + l) * E + e], 1e-6);
		for (int t = 0; t < s->ntokens; t++)
			for (int j = 0; j < L * k; j++)
				CHECK_NEAR(r1->topk_w[(size_t)t * L * k + j],
					   ra->topk_w[(size_t)(ra->tok_offset[pick] + t) * L * k + j],
					   1e-5);
		routing_free(r1);
		probe_free(one);
	}
	routing_free(ra);
	probe_free(all);
	ckpt_free(c);
}

static void test_sample_independent_of_batch(void)
{
	sample_independent_of_batch("qwen2moe-f32");
	sample_independent_of_batch("dsv3-f32");    /* MLA */
	sample_independent_of_batch("glm4moe-f32"); /* partial RoPE, QK-norm */
}

/*
 * Two runs with the same thread count give the same bits (the engine's own
 * reductions run in a fixed order); OpenBLAS partitions products by thread
 * count, which may move the last bits, so 1 and 2 threads agree closely.
 */
static void test_deterministic_and_thread_stable(void)
{
	struct ckpt *c = open_ckpt("olmoe-bf16");
	struct probe *p = open_probe(ckpt_model(c)->vocab);
	struct forward_opts o1 = { .threads = 1 }, o2 = { .threads = 2 };
	struct routing *a = run(c, p, &o2), *b = run(c, p, &o2), *s = run(c, p, &o1);
	size_t N = (size_t)a->n_samples, L = (size_t)a->n_layers, E = (size_t)a->n_experts;
	size_t T = (size_t)a->tok_offset[N], k = (size_t)a->top_k;

	CHECK(memcmp(a->gbar, b->gbar, N * L * E * sizeof(float)) == 0);
	CHECK(memcmp(a->topk_ids, b->topk_ids, T * L * k * sizeof(uint16_t)) == 0);
	CHECK(memcmp(a->topk_w, b->topk_w, T * L * k * sizeof(float)) == 0);
	CHECK(memcmp(a->entropy, b->entropy, T * L * sizeof(float)) == 0);
	CHECK(memcmp(a->lse, b->lse, T * L * sizeof(float)) == 0);
	for (size_t i = 0; i < N; i++) {
		CHECK(isnan(a->loss[i]) ? isnan(b->loss[i]) : a->loss[i] == b->loss[i]);
		if (!isnan(a->loss[i]))
			CHECK_NEAR(s->loss[i], a->loss[i], 1e-5 * a->loss[i]);
	}
	for (size_t i = 0; i < N * L * E; i++)
		CHECK_NEAR(s->gbar[i], a->gbar[i], 1e-6);
	routing_free(a);
	routing_free(b);
	routing_free(s);
	probe_free(p);
	ckpt_free(c);
}

/* The products with BF16 weights on AMX tiles (engine/amx.h) and on sgemm
 * give the same routing within the reference's tolerances (both are held
 * to the PyTorch reference by tests/reference/test_reference.sh). */
static void test_amx_and_sgemm_agree(void)
{
	struct ckpt *c;
	struct probe *p;
	struct forward_opts oa = { .threads = 2 }, os = { .threads = 2, .no_amx = true };
	struct routing *a, *s;
	size_t N, L, E;

	if (!amx_usable()) {
		tap_note("no AMX here: the pass runs on sgemm only (skipped)");
		return;
	}
	c = open_ckpt("olmoe-bf16");
	p = open_probe(ckpt_model(c)->vocab);
	a = run(c, p, &oa);
	s = run(c, p, &os);
	N = (size_t)a->n_samples, L = (size_t)a->n_layers, E = (size_t)a->n_experts;
	for (size_t i = 0; i < N * L * E; i++)
		CHECK_NEAR(a->gbar[i], s->gbar[i], 1e-5);
	for (size_t i = 0; i < N; i++)
		if (!isnan(s->loss[i]))
			CHECK_NEAR(a->loss[i], s->loss[i], 1e-5 * s->loss[i]);
	routing_free(a);
	routing_free(s);
	probe_free(p);
	ckpt_free(c);
}

struct hook_state {
	int calls;
	int last;
	int n_layers;
	bool in_order;
	int cancel_after; /* set the flag after this many calls; 0 never */
	atomic_int flag;
};

static void on_progress(void *ud, int done, int n)
{
	struct hook_state *h = ud;

	h->calls++;
	if (done != h->last + 1 || n != h->n_layers)
		h->in_order = false;
	h->last = done;
	if (h->cancel_after && h->calls == h->cancel_after)
		atomic_store(&h->flag, 1);
}

static void test_progress_once_per_layer(void)
{
	struct ckpt *c = open_ckpt("mixtral-f32");
	struct probe *p = open_probe(ckpt_model(c)->vocab);
	struct hook_state h = { .n_layers = ckpt_model(c)->n_layers, .in_order = true };
	struct forward_opts o = { .progress = on_progress, .ud = &h, .cancel = &h.flag };
	struct routing *rt;

	atomic_init(&h.flag, 0);
	rt = run(c, p, &o);
	CHECK_INT_EQ(h.calls, ckpt_model(c)->n_layers);
	CHECK_INT_EQ(h.last, ckpt_model(c)->n_layers);
	CHECK(h.in_order);
	routing_free(rt);
	probe_free(p);
	ckpt_free(c);
}

static void test_cancel_before_start(void)
{
	struct ckpt *c = open_ckpt("olmoe-f32");
	struct probe *p = open_probe(ckpt_model(c)->vocab);
	atomic_int flag;
	struct forward_opts o = { .cancel = &flag };
	struct routing *rt = NULL;
	struct gw_err err = { "" };

	atomic_init(&flag, 1);
	CHECK_INT_EQ(forward_run(c, p, &o, &rt, &err), -ECANCELED);
	CHECK(rt == NULL);
	CHECK_STR_HAS(err.msg, "cancel");
	probe_free(p);
	ckpt_free(c);
}

static void test_cancel_between_layers(void)
{
	struct ckpt *c = open_ckpt("qwen3moe-f32");
	struct probe *p = open_probe(ckpt_model(c)->vocab);
	struct hook_state h = { .n_layers = ckpt_model(c)->n_layers, .in_order = true,
				.cancel_after = 1 };
	struct forward_opts o = { .progress = on_progress, .ud = &h, .cancel = &h.flag };
	struct routing *rt = NULL;
	struct gw_err err = { "" };

	atomic_init(&h.flag, 0);
	CHECK_INT_EQ(forward_run(c, p, &o, &rt, &err), -ECANCELED);
	CHECK(rt == NULL);
	CHECK_INT_EQ(h.calls, 1);
	probe_free(p);
	ckpt_free(c);
}

static void join(char *out, size_t n, const char *dir, const char *name)
{
	int k = snprintf(out, n, "%s/%s", dir, name);

	CHECK(k > 0 && (size_t)k < n);
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t n;

	CHECK(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		CHECK(write(out, buf, (size_t)n) == n);
	CHECK(n == 0);
	close(in);
	close(out);
}

/*
 * A checkpoint whose weights file is truncated after ckpt_open validated it
 * (a trainer rotating checkpoints): an error that names the file, no crash.
 */
static void test_truncated_after_open(void)
{
	char dir[4096], src[4096], dst[4096];
	struct ckpt *c = NULL;
	struct probe *p;
	struct routing *rt = NULL;
	struct gw_err err = { "" };
	struct stat stt;
	int r;

	join(dir, sizeof(dir), tap_tmpdir(), "ck");
	CHECK_INT_EQ(mkdir(dir, 0755), 0);
	join(src, sizeof(src), fixture("olmoe-bf16"), "config.json");
	join(dst, sizeof(dst), dir, "config.json");
	copy_file(src, dst);
	join(src, sizeof(src), fixture("olmoe-bf16"), "model.safetensors");
	join(dst, sizeof(dst), dir, "model.safetensors");
	copy_file(src, dst);
	CHECK_INT_EQ(ckpt_open(dir, &c, &err), 0);
	p = open_probe(ckpt_model(c)->vocab);
	CHECK_INT_EQ(stat(dst, &stt), 0);
	/* Keep the header and the first tensors: the loss of later layers'
	 * weights must be noticed wherever it falls. */
	CHECK_INT_EQ(truncate(dst, stt.st_size / 2), 0);
	r = forward_run(c, p, NULL, &rt, &err);
	CHECK(r < 0);
	CHECK(r != -ECANCELED);
	CHECK(rt == NULL);
	CHECK_STR_HAS(err.msg, "model.safetensors");
	tap_note("truncated: %d %s", r, err.msg);
	probe_free(p);
	ckpt_free(c);
}

static void test_token_out_of_vocab(void)
{
	static const char line[] = "{\"tokens\": [3, 300, 4], \"group\": \"g\"}\n";
	struct ckpt *c = open_ckpt("olmoe-f32");
	struct probe *p = probe_new();
	struct routing *rt = NULL;
	struct gw_err err = { "" };

	/* vocab 0: the probe loader does not check, forward_run must. */
	CHECK_INT_EQ(probe_add_jsonl(p, tap_write_file("oov.jsonl", line, sizeof(line) - 1), 0,
				     &err), 0);
	probe_finish(p);
	CHECK(forward_run(c, p, NULL, &rt, &err) < 0);
	CHECK(rt == NULL);
	CHECK_STR_HAS(err.msg, "300");
	probe_free(p);
	ckpt_free(c);
}

static void test_stats_count_work(void)
{
	struct ckpt *c = open_ckpt("olmoe-f32");
	const struct model_desc *m = ckpt_model(c);
	struct probe *p = open_probe(m->vocab);
	struct forward_stats st;
	struct forward_opts o = { .stats = &st };
	struct routing *rt = run(c, p, &o);
	int64_t T = 0, lab = 0;
	double lower;

	for (int i = 0; i < p->n_samples; i++) {
		T += p->samples[i].ntokens;
		lab += p->samples[i].ntokens - 1;
	}
	CHECK_INT_EQ(st.tokens, T);
	/* At least the products every token must go through: q/k/v/o, the
	 * router, k experts of three matrices each, and the lm_head on the
	 * tokens that have a next one. */
	lower = 2.0 * (double)T * m->n_layers *
		((double)m->hidden * (2 * m->n_heads + 2 * m->n_kv_heads) * m->head_dim +
		 (double)m->hidden * m->n_experts +
		 3.0 * m->top_k * (double)m->hidden * m->moe_intermediate) +
		2.0 * (double)lab * m->vocab * m->hidden;
	CHECK(st.gemm_flop >= lower);
	CHECK(st.gemm_flop <= lower * 1.5);
	CHECK(st.gemm_sec > 0 && st.gemm_sec <= st.total_sec);
	CHECK(st.load_bytes > 0);
	routing_free(rt);
	probe_free(p);
	ckpt_free(c);
}

/*
 * A copy of fixture `name` in tmp/`dir`, every tensor stored as F32, with
 * edit(ud, model, tensor name, data) applied to each tensor first; opened.
 */
typedef void (*edit_fn)(void *ud, const struct model_desc *m, const char *name, float *data,
			size_t n);

static struct ckpt *copy_fixture(const char *name, const char *dir_name, edit_fn edit, void *ud)
{
	struct ckpt *c = open_ckpt(name), *z = NULL;
	const struct model_desc *m = ckpt_model(c);
	struct st_file *f = ckpt_file_at(c, 0);
	const struct st_header *h = st_file_header(f);
	size_t n = st_header_count(h);
	struct st_write_tensor *wt = calloc(n, sizeof(*wt));
	float **data = calloc(n, sizeof(float *));
	struct gw_err err = { "" };
	char dir[4096], src[4096], dst[4096];

	CHECK(wt && data);
	CHECK_INT_EQ(ckpt_file_count(c), 1);
	for (size_t i = 0; i < n; i++) {
		const struct st_tensor *t = st_header_tensor(h, i);

		data[i] = malloc(t->nelem * sizeof(float));
		CHECK(data[i] != NULL);
		CHECK_INT_EQ(st_file_read_f32(f, t, data[i], &err), 0);
		edit(ud, m, t->name, data[i], t->nelem);
		wt[i] = (struct st_write_tensor){ .name = t->name, .dtype = ST_F32, .ndim = t->ndim,
						  .data = data[i] };
		memcpy(wt[i].shape, t->shape, sizeof(t->shape));
	}
	join(dir, sizeof(dir), tap_tmpdir(), dir_name);
	CHECK_INT_EQ(mkdir(dir, 0755), 0);
	join(src, sizeof(src), fixture(name), "config.json");
	join(dst, sizeof(dst), dir, "config.json");
	copy_file(src, dst);
	join(dst, sizeof(dst), dir, "model.safetensors");
	CHECK_INT_EQ(st_write(dst, wt, n, NULL, 0, &err), 0);
	CHECK_INT_EQ(ckpt_open(dir, &z, &err), 0);
	for (size_t i = 0; i < n; i++)
		free(data[i]);
	free(data);
	free(wt);
	ckpt_free(c);
	return z;
}

/* Whether `name` is tensor `kind` of some layer. */
static bool is_kind(const struct model_desc *m, enum model_tensor kind, const char *name)
{
	char buf[256];

	for (int l = 0; l < m->n_layers; l++)
		if (model_tensor_name(m, kind, l, 0, buf, sizeof(buf)) == 0 && !strcmp(buf, name))
			return true;
	return false;
}

static void zero_routers(void *ud, const struct model_desc *m, const char *name, float *data,
			 size_t n)
{
	(void)ud;
	if (is_kind(m, MT_ROUTER, name))
		memset(data, 0, n * sizeof(float));
}

/*
 * A routing record made from all-zero router logits (so p_t = 1/E exactly,
 * entropy = lse = log E) whose top-k at MoE layer l are want_ids[l*k ..]
 * with weight want_w each, for every token.
 */
static void check_by_hand(const struct routing *rt, const uint16_t *want_ids, double want_w)
{
	int E = rt->n_experts, k = rt->top_k, L = rt->n_layers;

	for (size_t i = 0; i < (size_t)rt->n_samples * L * E; i++)
		CHECK_NEAR(rt->gbar[i], 1.0 / E, 1e-7);
	for (int64_t t = 0; t < rt->tok_offset[rt->n_samples]; t++)
		for (int l = 0; l < L; l++) {
			CHECK_NEAR(rt->entropy[t * L + l], log((double)E), 1e-6);
			CHECK_NEAR(rt->lse[t * L + l], log((double)E), 1e-6);
			for (int j = 0; j < k; j++) {
				CHECK_INT_EQ(rt->topk_ids[((size_t)t * L + l) * k + j],
					     want_ids[l * k + j]);
				CHECK_NEAR(rt->topk_w[((size_t)t * L + l) * k + j], want_w, 1e-6);
			}
		}
}

/*
 * A copy of olmoe-f32 with every router weight zero: every logit is 0, so
 * p_t is exactly uniform.  By hand: gbar = 1/E, entropy = lse = log E, and
 * with all probabilities tied the top-k are experts 0 .. k-1 (ties to the
 * lower index) with weights 1/E (OLMoE does not renormalize).
 */
static void test_zero_router_ties_to_lower_index(void)
{
	struct ckpt *z = copy_fixture("olmoe-f32", "zero", zero_routers, NULL);
	const struct model_desc *m = ckpt_model(z);
	struct probe *p = open_probe(m->vocab);
	struct routing *rt = run(z, p, NULL);
	int k = m->top_k, L = rt->n_layers;
	uint16_t *want = malloc((size_t)L * k * sizeof(uint16_t));

	CHECK(want != NULL);
	for (int i = 0; i < L * k; i++)
		want[i] = (uint16_t)(i % k);
	check_by_hand(rt, want, 1.0 / m->n_experts);
	free(want);
	routing_free(rt);
	probe_free(p);
	ckpt_free(z);
}

/*
 * Correction biases for dsv3-f32's 16 experts in 4 groups (keep 2, top-4),
 * per MoE layer.  With every router weight zero, s = sigmoid(0) = 1/2 for
 * every expert, so the choice scores are 1/2 + bias; a group scores the sum
 * of its best two.
 * MoE layer 0:
 *   group 0 (experts 0-3)   -0.1 each                  -0.2
 *   group 1 (experts 4-7)   0.8, -0.2, -0.3, 0.7        1.5  kept
 *   group 2 (experts 8-11)  -0.1, -0.2, -0.4, -0.4     -0.3
 *   group 3 (experts 12-15) 1.05, -0.4, -0.4, -0.4      0.65 kept
 *   Masked: 12 (1.05), 4 (0.8), 7 (0.7); then the 0.0 of the dropped
 *   groups beats every negative kept score (with -inf, expert 5 would
 *   come fourth), and of those tied zeros expert 0 has the lowest index.
 * MoE layer 1: as layer 0 but group 2 is 0.6, 0.3, -0.4, -0.4 (0.9): kept
 *   with group 1 by the sum of the best two, although group 3 holds the
 *   best single score; top-4 = 4, 7, 8, 9.
 * Weights: s = 1/2 each, renormalized to 1/4, times routed_scaling_factor
 * 2.5 = 0.625.  p = s / sum(s) = 1/16 for every expert.
 */
static const float hand_bias[2][16] = {
	{ -0.6f, -0.6f, -0.6f, -0.6f, 0.3f, -0.7f, -0.8f, 0.2f,
	  -0.6f, -0.7f, -0.9f, -0.9f, 0.55f, -0.9f, -0.9f, -0.9f },
	{ -0.6f, -0.6f, -0.6f, -0.6f, 0.3f, -0.7f, -0.8f, 0.2f,
	  0.1f, -0.2f, -0.9f, -0.9f, 0.55f, -0.9f, -0.9f, -0.9f },
};
static const uint16_t hand_want[2][4] = { { 12, 4, 7, 0 }, { 4, 7, 8, 9 } };

static void hand_router(void *ud, const struct model_desc *m, const char *name, float *data,
			size_t n)
{
	char buf[256];

	(void)ud;
	if (is_kind(m, MT_ROUTER, name))
		memset(data, 0, n * sizeof(float));
	for (int l = 0; l < m->n_layers; l++)
		if (model_tensor_name(m, MT_ROUTER_BIAS, l, 0, buf, sizeof(buf)) == 0 &&
		    !strcmp(buf, name)) {
			CHECK_INT_EQ(n, 16);
			memcpy(data, hand_bias[m->moe_layer_index[l]], sizeof(hand_bias[0]));
		}
}

static void test_sigmoid_router_by_hand(void)
{
	struct ckpt *z = copy_fixture("dsv3-f32", "sigmoid", hand_router, NULL);
	const struct model_desc *m = ckpt_model(z);
	struct probe *p = open_probe(m->vocab);
	struct routing *rt = run(z, p, NULL);
	int E = m->n_experts, k = m->top_k, L = rt->n_layers;

	CHECK_INT_EQ(L, 2);
	CHECK_INT_EQ(E, 16);
	CHECK_INT_EQ(k, 4);
	CHECK_INT_EQ(m->n_group, 4);
	CHECK_INT_EQ(m->topk_group, 2);
	CHECK_NEAR(m->routed_scaling, 2.5, 0);
	check_by_hand(rt, &hand_want[0][0], 0.625);
	routing_free(rt);
	probe_free(p);
	ckpt_free(z);
}

static const struct tap_test tests[] = {
	{ "invariants_olmoe", test_invariants_olmoe },
	{ "invariants_mixtral", test_invariants_mixtral },
	{ "invariants_qwen2moe_tied_dense", test_invariants_qwen2moe_tied_dense },
	{ "invariants_qwen3moe", test_invariants_qwen3moe },
	{ "invariants_deepseek_v3", test_invariants_deepseek_v3 },
	{ "invariants_glm4_moe", test_invariants_glm4_moe },
	{ "router_weights_copied", test_router_weights_copied },
	{ "sample_independent_of_batch", test_sample_independent_of_batch },
	{ "deterministic_and_thread_stable", test_deterministic_and_thread_stable },
	{ "amx_and_sgemm_agree", test_amx_and_sgemm_agree },
	{ "progress_once_per_layer", test_progress_once_per_layer },
	{ "cancel_before_start", test_cancel_before_start },
	{ "cancel_between_layers", test_cancel_between_layers },
	{ "truncated_after_open", test_truncated_after_open },
	{ "token_out_of_vocab", test_token_out_of_vocab },
	{ "stats_count_work", test_stats_count_work },
	{ "zero_router_ties_to_lower_index", test_zero_router_ties_to_lower_index },
	{ "sigmoid_router_by_hand", test_sigmoid_router_by_hand },
	{ NULL, NULL },
};
TAP_MAIN(tests)
