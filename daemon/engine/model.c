/*
 * model.c — the model description read from a Hugging Face config.json,
 * and the names and shapes of the tensors the forward pass needs (SPEC §3).
 *
 * The file is divided into:
 *   - typed access to the config's top-level keys (each refusal names the
 *     key and what was wrong with it; a key given twice is refused, since
 *     cJSON would take the first and Python's json the last);
 *   - rope_scaling / rope_parameters (plain RoPE or YaRN, with Hugging
 *     Face's defaults and attention factor);
 *   - the architecture table and model_desc_parse, which applies the
 *     defaults of each Hugging Face configuration class and the rules that
 *     follow from it (head_dim, or DeepSeek-V3's latent attention dims;
 *     biases, QK-norm, the sigmoid router's groups and shared experts, the
 *     rotary width, the sparse-layer rule);
 *   - tensor names and shapes per architecture;
 *   - model_tensor_foreach and model_check_tensors over every tensor.
 */
#include "engine/model.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/json.h"

/* ---- typed access to config keys ------------------------------------ */

struct cfg {
	const char *what;
	const cJSON *root;
	struct gw_err *err;
};

/* The value of top-level key `key`, or NULL in *ret when absent.  A key
 * that appears twice is refused. */
static int cfg_get(const struct cfg *c, const char *key, const cJSON **ret)
{
	const cJSON *found = NULL;

	for (const cJSON *it = c->root->child; it; it = it->next) {
		if (!it->string || strcmp(it->string, key) != 0)
			continue;
		if (found)
			return gw_errf(c->err, -EBADMSG, "\"%s\": key \"%s\" appears twice", c->what,
				       key);
		found = it;
	}
	*ret = found;
	return 0;
}

/* Absent (or null when `nullable`) -> def.  Otherwise an integral number in
 * [min, max]. */
static int cfg_int(const struct cfg *c, const char *key, int def, int min, int max,
		   bool nullable, int *ret)
{
	const cJSON *v;
	int64_t n;
	int r;

	if ((r = cfg_get(c, key, &v)) < 0)
		return r;
	if (!v || (nullable && cJSON_IsNull(v))) {
		*ret = def;
		return 0;
	}
	switch (json_int(v, min, max, &n)) {
	case JSON_NUM_OK:
		*ret = (int)n;
		return 0;
	case JSON_NUM_NOT_NUMBER:
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\" must be an integer, not %s",
			       c->what, key, json_kind(v));
	case JSON_NUM_NOT_FINITE:
	case JSON_NUM_NOT_INTEGER:
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\" must be an integer, not %g",
			       c->what, key, v->valuedouble);
	case JSON_NUM_BELOW:
	case JSON_NUM_ABOVE:
		break;
	}
	return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\" is %.0f, outside %d..%d", c->what, key,
		       v->valuedouble, min, max);
}

static int cfg_bool(const struct cfg *c, const char *key, bool def, bool *ret)
{
	const cJSON *v;
	int r;

	if ((r = cfg_get(c, key, &v)) < 0)
		return r;
	if (!v) {
		*ret = def;
		return 0;
	}
	if (!cJSON_IsBool(v))
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\" must be true or false, not %s",
			       c->what, key, json_kind(v));
	*ret = cJSON_IsTrue(v);
	return 0;
}

/* Absent or null -> def.  Otherwise a finite number in (lo, hi]. */
static int cfg_double(const struct cfg *c, const char *key, double def, double lo, double hi,
		      double *ret)
{
	const cJSON *v;
	int r;

	if ((r = cfg_get(c, key, &v)) < 0)
		return r;
	if (!v || cJSON_IsNull(v)) {
		*ret = def;
		return 0;
	}
	if (!cJSON_IsNumber(v))
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\" must be a number, not %s",
			       c->what, key, json_kind(v));
	if (!isfinite(v->valuedouble) || !(v->valuedouble > lo) || !(v->valuedouble <= hi))
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\" is %g, outside (%g, %g]",
			       c->what, key, v->valuedouble, lo, hi);
	*ret = v->valuedouble;
	return 0;
}

/* A number inside a rope dict: absent or null leaves *ret and *seen as
 * they are; otherwise finite and in [lo, hi]. */
static int rope_num(const struct cfg *c, const char *key, const cJSON *obj, const char *field,
		    double lo, double hi, double *ret, bool *seen)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, field);

	if (!t || cJSON_IsNull(t))
		return 0;
	if (!cJSON_IsNumber(t))
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\".%s must be a number, not %s",
			       c->what, key, field, json_kind(t));
	if (!isfinite(t->valuedouble) || t->valuedouble < lo || t->valuedouble > hi)
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\".%s is %g, outside [%g, %g]",
			       c->what, key, field, t->valuedouble, lo, hi);
	*ret = t->valuedouble;
	if (seen)
		*seen = true;
	return 0;
}

/* What rope_scaling / rope_parameters say, before the model applies it. */
struct rope_cfg {
	bool yarn;
	bool has_factor, has_attn_factor, has_orig, has_prf;
	double factor, attn_factor, beta_fast, beta_slow, orig, mscale, mscale_all_dim, prf;
	bool truncate;
};

/*
 * rope_scaling / rope_parameters: null, absent, or an object whose
 * "rope_type" (or older "type") is absent or "default" (plain RoPE) or
 * "yarn" (its fields read here, with Hugging Face's defaults: beta_fast 32
 * and beta_slow 1 where absent or 0, truncate true).  Any other type
 * (linear, dynamic, llama3, longrope, ...) changes the rotary frequencies
 * in ways not implemented and is refused rather than computed wrong.  A
 * dict read later replaces what an earlier one said.
 */
static int cfg_rope(const struct cfg *c, const char *key, double *theta, struct rope_cfg *rc)
{
	const cJSON *v, *t;
	double x;
	int r;

	if ((r = cfg_get(c, key, &v)) < 0)
		return r;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsObject(v))
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\" must be an object or null, not %s",
			       c->what, key, json_kind(v));
	t = cJSON_GetObjectItemCaseSensitive(v, "rope_type");
	if (!t)
		t = cJSON_GetObjectItemCaseSensitive(v, "type");
	*rc = (struct rope_cfg){ .beta_fast = 32.0, .beta_slow = 1.0, .truncate = true,
				 .prf = rc->prf, .has_prf = rc->has_prf };
	if (t && !cJSON_IsNull(t)) {
		if (!cJSON_IsString(t))
			return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\".rope_type must be a string, "
				       "not %s", c->what, key, json_kind(t));
		if (!strcmp(t->valuestring, "yarn"))
			rc->yarn = true;
		else if (strcmp(t->valuestring, "default") != 0)
			return gw_errf(c->err, -ENOTSUP, "\"%s\": \"%s\" of type \"%.64s\" is not "
				       "supported (only \"default\" and \"yarn\")", c->what, key,
				       t->valuestring);
	}
	t = cJSON_GetObjectItemCaseSensitive(v, "rope_theta");
	if (t && !cJSON_IsNull(t)) {
		if (!cJSON_IsNumber(t) || !isfinite(t->valuedouble) || !(t->valuedouble > 0))
			return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\".rope_theta must be a "
				       "positive number", c->what, key);
		*theta = t->valuedouble;
	}
	/* Transformers v5 keeps partial_rotary_factor here too. */
	if ((r = rope_num(c, key, v, "partial_rotary_factor", 0.0, 1.0, &rc->prf,
			  &rc->has_prf)) < 0)
		return r;
	if (!rc->yarn)
		return 0;
	if ((r = rope_num(c, key, v, "factor", 0.0, 1e6, &rc->factor, &rc->has_factor)) < 0 ||
	    (r = rope_num(c, key, v, "attention_factor", 0.0, 1e6, &rc->attn_factor,
			  &rc->has_attn_factor)) < 0 ||
	    (r = rope_num(c, key, v, "original_max_position_embeddings", 1.0, (double)INT_MAX,
			  &rc->orig, &rc->has_orig)) < 0 ||
	    (r = rope_num(c, key, v, "mscale", -1e6, 1e6, &rc->mscale, NULL)) < 0 ||
	    (r = rope_num(c, key, v, "mscale_all_dim", -1e6, 1e6, &rc->mscale_all_dim, NULL)) < 0)
		return r;
	if (!rc->has_factor || !(rc->factor > 0))
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\" of type \"yarn\" needs a positive "
			       "factor", c->what, key);
	if (rc->has_attn_factor && !(rc->attn_factor > 0))
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\".attention_factor must be positive",
			       c->what, key);
	if (rc->has_orig && rc->orig != floor(rc->orig))
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\".original_max_position_embeddings "
			       "must be an integer", c->what, key);
	/* Hugging Face reads these as `get(...) or default`: 0 means the default. */
	x = 0.0;
	if ((r = rope_num(c, key, v, "beta_fast", 0.0, 1e6, &x, NULL)) < 0)
		return r;
	if (x > 0)
		rc->beta_fast = x;
	x = 0.0;
	if ((r = rope_num(c, key, v, "beta_slow", 0.0, 1e6, &x, NULL)) < 0)
		return r;
	if (x > 0)
		rc->beta_slow = x;
	t = cJSON_GetObjectItemCaseSensitive(v, "truncate");
	if (t && !cJSON_IsNull(t)) {
		if (!cJSON_IsBool(t))
			return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\".truncate must be true or "
				       "false, not %s", c->what, key, json_kind(t));
		rc->truncate = cJSON_IsTrue(t);
	}
	return 0;
}

/* YaRN's attention scale for a factor (Hugging Face's get_mscale). */
static double yarn_mscale(double factor, double mscale)
{
	return factor <= 1.0 ? 1.0 : 0.1 * mscale * log(factor) + 1.0;
}

/* ---- architectures and parsing --------------------------------------- */

/*
 * Defaults of the Hugging Face configuration classes (transformers'
 * configuration_{olmoe,mixtral,qwen2_moe,qwen3_moe,deepseek_v3,glm4_moe}.py)
 * for the keys that have one.  kv == 0 means "num_attention_heads" (OLMoE,
 * DeepSeek-V3, and any class when the key is null); hidden / heads is the
 * head_dim where none is given.
 */
static const struct arch_info {
	enum model_arch arch;
	const char *name, *model_type;
	int vocab, hidden, layers, heads, kv, experts, top_k;
	int inter;       /* intermediate_size */
	int moe_inter;   /* moe_intermediate_size (Qwen, DeepSeek-V3, GLM) */
	int shared;      /* shared_expert_intermediate_size (Qwen2-MoE); n_shared_experts */
	double eps, theta;
	const char *experts_key, *experts_alias;
	int max_pos;     /* max_position_embeddings */
	bool norm_topk;  /* norm_topk_prob */
	/* DeepSeek-V3 family: n_group, topk_group, first_k_dense_replace,
	 * routed_scaling_factor, partial_rotary_factor. */
	int n_group, topk_group, first_dense;
	double scaling, prf;
} archs[] = {
	{ .arch = ARCH_OLMOE, .name = "OlmoeForCausalLM", .model_type = "olmoe", .vocab = 50304,
	  .hidden = 2048, .layers = 16, .heads = 16, .kv = 0, .experts = 64, .top_k = 8,
	  .inter = 2048, .eps = 1e-5, .theta = 10000.0, .experts_key = "num_experts",
	  .experts_alias = "num_local_experts", .max_pos = 4096 },
	{ .arch = ARCH_MIXTRAL, .name = "MixtralForCausalLM", .model_type = "mixtral",
	  .vocab = 32000, .hidden = 4096, .layers = 32, .heads = 32, .kv = 8, .experts = 8,
	  .top_k = 2, .inter = 14336, .eps = 1e-5, .theta = 1e6,
	  .experts_key = "num_local_experts", .experts_alias = "num_experts",
	  .max_pos = 4096 * 32 },
	{ .arch = ARCH_QWEN2_MOE, .name = "Qwen2MoeForCausalLM", .model_type = "qwen2_moe",
	  .vocab = 151936, .hidden = 2048, .layers = 24, .heads = 16, .kv = 16, .experts = 60,
	  .top_k = 4, .inter = 5632, .moe_inter = 1408, .shared = 5632, .eps = 1e-6,
	  .theta = 10000.0, .experts_key = "num_experts", .max_pos = 32768 },
	{ .arch = ARCH_QWEN3_MOE, .name = "Qwen3MoeForCausalLM", .model_type = "qwen3_moe",
	  .vocab = 151936, .hidden = 2048, .layers = 24, .heads = 32, .kv = 4, .experts = 128,
	  .top_k = 8, .inter = 6144, .moe_inter = 768, .eps = 1e-6, .theta = 10000.0,
	  .experts_key = "num_experts", .experts_alias = "num_local_experts", .max_pos = 32768 },
	{ .arch = ARCH_DEEPSEEK_V3, .name = "DeepseekV3ForCausalLM", .model_type = "deepseek_v3",
	  .vocab = 129280, .hidden = 7168, .layers = 61, .heads = 128, .kv = 0, .experts = 256,
	  .top_k = 8, .inter = 18432, .moe_inter = 2048, .shared = 1, .eps = 1e-6,
	  .theta = 10000.0, .experts_key = "n_routed_experts",
	  .experts_alias = "num_local_experts", .max_pos = 4096, .norm_topk = true,
	  .n_group = 8, .topk_group = 4, .first_dense = 3, .scaling = 2.5, .prf = 1.0 },
	{ .arch = ARCH_GLM4_MOE, .name = "Glm4MoeForCausalLM", .model_type = "glm4_moe",
	  .vocab = 151552, .hidden = 4096, .layers = 46, .heads = 96, .kv = 8, .experts = 128,
	  .top_k = 8, .inter = 10944, .moe_inter = 1408, .shared = 1, .eps = 1e-5,
	  .theta = 10000.0, .experts_key = "n_routed_experts",
	  .experts_alias = "num_local_experts", .max_pos = 131072, .norm_topk = true,
	  .n_group = 1, .topk_group = 1, .first_dense = 1, .scaling = 1.0, .prf = 0.5 },
};

#define N_ARCHS (sizeof(archs) / sizeof(archs[0]))
#define SUPPORTED "(OLMoE, Mixtral, Qwen2-MoE, Qwen3-MoE, DeepSeek-V3, GLM-4.5 MoE)"

static bool arch_sigmoid(enum model_arch a)
{
	return a == ARCH_DEEPSEEK_V3 || a == ARCH_GLM4_MOE;
}

static int find_arch(const struct cfg *c, const struct arch_info **ret)
{
	const cJSON *a, *mt;
	int r;

	if ((r = cfg_get(c, "architectures", &a)) < 0 || (r = cfg_get(c, "model_type", &mt)) < 0)
		return r;
	if (a && !cJSON_IsNull(a) && !cJSON_IsArray(a))
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"architectures\" must be an array, not %s",
			       c->what, json_kind(a));
	if (a && cJSON_IsArray(a) && a->child) {
		const cJSON *n = a->child;

		if (!cJSON_IsString(n))
			return gw_errf(c->err, -EBADMSG, "\"%s\": \"architectures\"[0] must be a "
				       "string, not %s", c->what, json_kind(n));
		for (size_t i = 0; i < N_ARCHS; i++)
			if (!strcmp(n->valuestring, archs[i].name)) {
				*ret = &archs[i];
				return 0;
			}
		return gw_errf(c->err, -ENOTSUP, "\"%s\": architecture \"%.128s\" is not supported "
			       SUPPORTED, c->what, n->valuestring);
	}
	if (!mt || cJSON_IsNull(mt))
		return gw_errf(c->err, -EBADMSG, "\"%s\": neither \"architectures\" nor "
			       "\"model_type\" names the architecture", c->what);
	if (!cJSON_IsString(mt))
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"model_type\" must be a string, not %s",
			       c->what, json_kind(mt));
	for (size_t i = 0; i < N_ARCHS; i++)
		if (!strcmp(mt->valuestring, archs[i].model_type)) {
			*ret = &archs[i];
			return 0;
		}
	return gw_errf(c->err, -ENOTSUP, "\"%s\": model_type \"%.128s\" is not supported "
		       SUPPORTED, c->what, mt->valuestring);
}

/* Qwen's mlp_only_layers: null/absent = none; else layer indices. */
static int cfg_mlp_only(const struct cfg *c, int n_layers, bool *dense)
{
	const cJSON *v;
	int64_t l;
	int i = 0, r;

	if ((r = cfg_get(c, "mlp_only_layers", &v)) < 0)
		return r;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsArray(v))
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"mlp_only_layers\" must be an array, "
			       "not %s", c->what, json_kind(v));
	for (const cJSON *e = v->child; e; e = e->next, i++) {
		enum json_num k = json_int(e, 0, n_layers - 1, &l);

		if (k == JSON_NUM_NOT_NUMBER || k == JSON_NUM_NOT_FINITE || k == JSON_NUM_NOT_INTEGER)
			return gw_errf(c->err, -EBADMSG, "\"%s\": \"mlp_only_layers\"[%d] must be "
				       "an integer", c->what, i);
		if (k != JSON_NUM_OK)
			return gw_errf(c->err, -EBADMSG, "\"%s\": \"mlp_only_layers\"[%d] is %.0f, "
				       "not a layer (0..%d)", c->what, i, e->valuedouble, n_layers - 1);
		dense[l] = true;
	}
	return 0;
}

static int cfg_hidden_act(const struct cfg *c)
{
	const cJSON *v;
	int r;

	if ((r = cfg_get(c, "hidden_act", &v)) < 0)
		return r;
	if (!v)
		return 0;
	if (!cJSON_IsString(v))
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"hidden_act\" must be a string, not %s",
			       c->what, json_kind(v));
	if (strcmp(v->valuestring, "silu") != 0)
		return gw_errf(c->err, -ENOTSUP, "\"%s\": hidden_act \"%.64s\" is not supported "
			       "(only \"silu\")", c->what, v->valuestring);
	return 0;
}

/* A string key that, where present, must have one value (keys only
 * DeepSeek's own modeling code reads, refused rather than ignored). */
static int cfg_only_string(const struct cfg *c, const char *key, const char *want)
{
	const cJSON *v;
	int r;

	if ((r = cfg_get(c, key, &v)) < 0)
		return r;
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v))
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\" must be a string, not %s", c->what,
			       key, json_kind(v));
	if (strcmp(v->valuestring, want) != 0)
		return gw_errf(c->err, -ENOTSUP, "\"%s\": %s \"%.64s\" is not supported (only "
			       "\"%s\", as Hugging Face's class computes)", c->what, key,
			       v->valuestring, want);
	return 0;
}

/* GQA heads: head_dim from the config where given (every attention class
 * reads it with getattr), else hidden_size / num_attention_heads. */
static int parse_gqa_heads(const struct cfg *c, struct model_desc *m)
{
	const cJSON *v;
	int hd, r;

	if ((r = cfg_get(c, "head_dim", &v)) < 0)
		return r;
	if (!v || cJSON_IsNull(v)) {
		if (m->hidden % m->n_heads != 0)
			return gw_errf(c->err, -EBADMSG, "\"%s\": hidden_size %d is not divisible by "
				       "num_attention_heads %d", c->what, m->hidden, m->n_heads);
		hd = m->hidden / m->n_heads;
	} else if ((r = cfg_int(c, "head_dim", 0, 1, MODEL_HEAD_DIM_MAX, false, &hd)) < 0) {
		return r;
	}
	m->head_dim = hd;
	if (hd > MODEL_HEAD_DIM_MAX || hd % 2 != 0)
		return gw_errf(c->err, -EBADMSG, "\"%s\": head_dim %d is %s", c->what, hd,
			       hd % 2 ? "odd (RoPE rotates pairs)" : "too large");
	if ((long)m->n_heads * hd > MODEL_QDIM_MAX)
		return gw_errf(c->err, -EBADMSG, "\"%s\": num_attention_heads x head_dim = %ld is "
			       "above %d", c->what, (long)m->n_heads * hd, MODEL_QDIM_MAX);
	if (m->n_heads % m->n_kv_heads != 0)
		return gw_errf(c->err, -EBADMSG, "\"%s\": num_attention_heads %d is not a multiple "
			       "of num_key_value_heads %d", c->what, m->n_heads, m->n_kv_heads);
	m->attn = ATTN_GQA;
	m->attn_scale = pow((double)hd, -0.5);
	return 0;
}

/* DeepSeek-V3's multi-head latent attention (DeepseekV3Attention). */
static int parse_mla(const struct cfg *c, struct model_desc *m)
{
	const cJSON *v;
	int hd, r;
	bool flag;

	if ((r = cfg_get(c, "q_lora_rank", &v)) < 0)
		return r;
	if (v && cJSON_IsNull(v))
		m->q_lora_rank = 0; /* null: a plain q_proj */
	else if ((r = cfg_int(c, "q_lora_rank", 1536, 1, MODEL_LORA_MAX, false,
			      &m->q_lora_rank)) < 0)
		return r;
	if ((r = cfg_int(c, "kv_lora_rank", 512, 1, MODEL_LORA_MAX, false, &m->kv_lora_rank)) < 0 ||
	    (r = cfg_int(c, "qk_rope_head_dim", 64, 2, MODEL_HEAD_DIM_MAX, false,
			 &m->qk_rope_dim)) < 0 ||
	    (r = cfg_int(c, "qk_nope_head_dim", 128, 0, MODEL_HEAD_DIM_MAX, false,
			 &m->qk_nope_dim)) < 0 ||
	    (r = cfg_int(c, "v_head_dim", 128, 1, MODEL_HEAD_DIM_MAX, false, &m->v_head_dim)) < 0 ||
	    (r = cfg_bool(c, "rope_interleave", true, &m->rope_interleave)) < 0 ||
	    (r = cfg_bool(c, "attention_bias", false, &flag)) < 0)
		return r;
	if (m->qk_rope_dim % 2 != 0)
		return gw_errf(c->err, -EBADMSG, "\"%s\": qk_rope_head_dim %d is odd (RoPE rotates "
			       "pairs)", c->what, m->qk_rope_dim);
	hd = m->qk_nope_dim + m->qk_rope_dim;
	if (hd > MODEL_HEAD_DIM_MAX)
		return gw_errf(c->err, -EBADMSG, "\"%s\": qk_nope_head_dim + qk_rope_head_dim = %d "
			       "is above %d", c->what, hd, MODEL_HEAD_DIM_MAX);
	if ((long)m->n_heads * hd > MODEL_QDIM_MAX ||
	    (long)m->n_heads * (m->qk_nope_dim + m->v_head_dim) > MODEL_QDIM_MAX)
		return gw_errf(c->err, -EBADMSG, "\"%s\": num_attention_heads x head dims is above "
			       "%d", c->what, MODEL_QDIM_MAX);
	/* Every head has its own key and value; repeat_kv by heads / kv heads
	 * fails in Hugging Face's class unless the two are equal. */
	if (m->n_kv_heads != m->n_heads)
		return gw_errf(c->err, -ENOTSUP, "\"%s\": num_key_value_heads %d differs from "
			       "num_attention_heads %d, which multi-head latent attention cannot "
			       "use", c->what, m->n_kv_heads, m->n_heads);
	/* DeepseekV3Config sets head_dim = qk_rope_head_dim for the rotary
	 * embedding; another value would not fit the rotary key. */
	if ((r = cfg_get(c, "head_dim", &v)) < 0)
		return r;
	if (v && !cJSON_IsNull(v) && (!cJSON_IsNumber(v) || v->valuedouble != m->qk_rope_dim))
		return gw_errf(c->err, -ENOTSUP, "\"%s\": head_dim must equal qk_rope_head_dim %d "
			       "in DeepSeek-V3", c->what, m->qk_rope_dim);
	m->attn = ATTN_MLA;
	m->head_dim = hd;
	m->o_bias = flag; /* also q_a_proj's and kv_a_proj_with_mqa's */
	m->mla_eps = 1e-6;
	m->attn_scale = pow((double)hd, -0.5);
	return 0;
}

/* The DeepSeek-V3 family's router and experts (DeepseekV3TopkRouter,
 * DeepseekV3MoE; Glm4Moe's copies of them). */
static int parse_sigmoid_router(const struct cfg *c, const struct arch_info *a,
				struct model_desc *m)
{
	int n_shared, freq, r;

	if ((r = cfg_int(c, "n_group", a->n_group, 1, MODEL_EXPERTS_MAX, false, &m->n_group)) < 0 ||
	    (r = cfg_int(c, "topk_group", a->topk_group, 1, MODEL_EXPERTS_MAX, false,
			 &m->topk_group)) < 0 ||
	    (r = cfg_double(c, "routed_scaling_factor", a->scaling, 0.0, 1e6,
			    &m->routed_scaling)) < 0 ||
	    (r = cfg_int(c, "n_shared_experts", a->shared, 0, 1024, false, &n_shared)) < 0 ||
	    (r = cfg_int(c, "moe_layer_freq", 1, 0, INT_MAX, false, &freq)) < 0 ||
	    (r = cfg_only_string(c, "scoring_func", "sigmoid")) < 0 ||
	    (r = cfg_only_string(c, "topk_method", "noaux_tc")) < 0)
		return r;
	if (freq != 1)
		return gw_errf(c->err, -ENOTSUP, "\"%s\": moe_layer_freq %d is not supported "
			       "(Hugging Face's class makes every layer from first_k_dense_replace "
			       "on an MoE layer)", c->what, freq);
	if (m->n_experts % m->n_group != 0 || m->n_experts / m->n_group < 2)
		return gw_errf(c->err, -EBADMSG, "\"%s\": n_group %d does not split the %d experts "
			       "into equal groups of at least two", c->what, m->n_group, m->n_experts);
	if (m->topk_group > m->n_group)
		return gw_errf(c->err, -EBADMSG, "\"%s\": topk_group %d is above n_group %d",
			       c->what, m->topk_group, m->n_group);
	if ((long)m->moe_intermediate * n_shared > MODEL_INTERMEDIATE_MAX)
		return gw_errf(c->err, -EBADMSG, "\"%s\": moe_intermediate_size x n_shared_experts "
			       "is above %d", c->what, MODEL_INTERMEDIATE_MAX);
	m->router = ROUTER_SIGMOID;
	m->shared_intermediate = m->moe_intermediate * n_shared;
	m->shared_gated = false;
	return 0;
}

/*
 * Rotary width and YaRN, after the attention is known.  rope_dim: MLA's
 * qk_rope_head_dim; GLM's int(head_dim * partial_rotary_factor); the whole
 * head elsewhere (a partial factor other than 1 is refused there, since
 * those classes rotate the whole head).  YaRN's attention factor scales
 * cos and sin in every class; DeepSeek-V3 also multiplies its softmax
 * scale by mscale(factor, mscale_all_dim)^2.
 */
static int apply_rope(const struct cfg *c, const struct arch_info *a, const struct rope_cfg *rc,
		      struct model_desc *m)
{
	double prf = rc->has_prf ? rc->prf : a->prf ? a->prf : 1.0;

	if (m->attn == ATTN_MLA) {
		m->rope_dim = m->qk_rope_dim;
	} else if (a->arch == ARCH_GLM4_MOE) {
		m->rope_dim = (int)(m->head_dim * prf);
	} else {
		m->rope_dim = m->head_dim;
	}
	if (a->arch != ARCH_GLM4_MOE && prf != 1.0)
		return gw_errf(c->err, -ENOTSUP, "\"%s\": partial_rotary_factor %g is not supported "
			       "for %s (its class rotates the whole head)", c->what, prf, a->name);
	if (m->rope_dim < 2 || m->rope_dim % 2 != 0)
		return gw_errf(c->err, -EBADMSG, "\"%s\": the rotary width %d (head_dim %d x "
			       "partial_rotary_factor %g) is not a positive even number", c->what,
			       m->rope_dim, m->head_dim, prf);
	m->rope_attn_factor = 1.0;
	if (!rc->yarn)
		return 0;
	/* YaRN's correction range divides by log(rope_theta). */
	if (!(m->rope_theta > 1.0))
		return gw_errf(c->err, -EBADMSG, "\"%s\": rope_theta %g with YaRN must be above 1",
			       c->what, m->rope_theta);
	m->yarn = true;
	m->yarn_factor = rc->factor;
	m->yarn_beta_fast = rc->beta_fast;
	m->yarn_beta_slow = rc->beta_slow;
	m->yarn_truncate = rc->truncate;
	m->yarn_orig_max_pos = rc->has_orig ? rc->orig : (double)m->max_position_embeddings;
	if (rc->has_attn_factor)
		m->rope_attn_factor = rc->attn_factor;
	else if (rc->mscale != 0.0 && rc->mscale_all_dim != 0.0)
		m->rope_attn_factor = yarn_mscale(rc->factor, rc->mscale) /
				      yarn_mscale(rc->factor, rc->mscale_all_dim);
	else
		m->rope_attn_factor = yarn_mscale(rc->factor, 1.0);
	if (m->attn == ATTN_MLA && rc->mscale_all_dim != 0.0) {
		double ms = yarn_mscale(rc->factor, rc->mscale_all_dim);

		m->attn_scale *= ms * ms;
	}
	return 0;
}

static int parse_fields(const struct cfg *c, const struct arch_info *a, struct model_desc *m)
{
	bool dense[MODEL_LAYERS_MAX] = { false };
	bool qwen = a->arch == ARCH_QWEN2_MOE || a->arch == ARCH_QWEN3_MOE;
	bool ds = arch_sigmoid(a->arch);
	struct rope_cfg rc = { 0 };
	const cJSON *v;
	const char *ekey;
	int kv, step = 1, first_dense = 0, r;
	bool flag;

	m->arch = a->arch;
	m->arch_name = a->name;
	if ((r = cfg_int(c, "vocab_size", a->vocab, 1, MODEL_VOCAB_MAX, false, &m->vocab)) < 0 ||
	    (r = cfg_int(c, "hidden_size", a->hidden, 1, MODEL_HIDDEN_MAX, false, &m->hidden)) < 0 ||
	    (r = cfg_int(c, "num_hidden_layers", a->layers, 1, MODEL_LAYERS_MAX, false,
			 &m->n_layers)) < 0 ||
	    (r = cfg_int(c, "num_attention_heads", a->heads, 1, MODEL_HEADS_MAX, false,
			 &m->n_heads)) < 0 ||
	    (r = cfg_int(c, "max_position_embeddings", a->max_pos, 1, INT_MAX, false,
			 &m->max_position_embeddings)) < 0)
		return r;
	kv = a->kv ? a->kv : m->n_heads;
	if ((r = cfg_get(c, "num_key_value_heads", &v)) < 0)
		return r;
	if (v && cJSON_IsNull(v))
		kv = m->n_heads; /* every class maps None to num_attention_heads */
	if ((r = cfg_int(c, "num_key_value_heads", kv, 1, MODEL_HEADS_MAX, true,
			 &m->n_kv_heads)) < 0)
		return r;
	if ((r = a->arch == ARCH_DEEPSEEK_V3 ? parse_mla(c, m) : parse_gqa_heads(c, m)) < 0)
		return r;

	/* Experts and routing. */
	/* The classes' attribute_map lets either spelling set the count. */
	if ((r = cfg_get(c, a->experts_key, &v)) < 0)
		return r;
	ekey = !v && a->experts_alias ? a->experts_alias : a->experts_key;
	if ((r = cfg_int(c, ekey, a->experts, 0, MODEL_EXPERTS_MAX, false, &m->n_experts)) < 0)
		return r;
	if (m->n_experts == 0)
		return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\" is 0: a model without experts has "
			       "no routing to watch", c->what, ekey);
	if ((r = cfg_int(c, "num_experts_per_tok", a->top_k, 1, MODEL_EXPERTS_MAX, false,
			 &m->top_k)) < 0)
		return r;
	if (m->top_k > m->n_experts)
		return gw_errf(c->err, -EBADMSG, "\"%s\": num_experts_per_tok %d is above the %d "
			       "experts", c->what, m->top_k, m->n_experts);
	if (a->arch == ARCH_MIXTRAL) {
		m->norm_topk_prob = true; /* Mixtral always renormalizes its top-k */
	} else if ((r = cfg_bool(c, "norm_topk_prob", a->norm_topk, &m->norm_topk_prob)) < 0) {
		return r;
	}
	m->router = ROUTER_SOFTMAX;
	m->n_group = m->topk_group = 1;
	m->routed_scaling = 1.0;

	/* Feed-forward widths. */
	if (qwen || ds) {
		if ((r = cfg_int(c, "moe_intermediate_size", a->moe_inter, 1,
				 MODEL_INTERMEDIATE_MAX, false, &m->moe_intermediate)) < 0 ||
		    (r = cfg_int(c, "intermediate_size", a->inter, 1, MODEL_INTERMEDIATE_MAX,
				 false, &m->dense_intermediate)) < 0)
			return r;
		if (a->arch == ARCH_QWEN2_MOE) {
			if ((r = cfg_int(c, "shared_expert_intermediate_size", a->shared, 0,
					 MODEL_INTERMEDIATE_MAX, false,
					 &m->shared_intermediate)) < 0)
				return r;
			m->shared_gated = m->shared_intermediate > 0;
		}
	} else if ((r = cfg_int(c, "intermediate_size", a->inter, 1, MODEL_INTERMEDIATE_MAX, false,
				&m->moe_intermediate)) < 0) {
		return r;
	}
	if (ds && (r = parse_sigmoid_router(c, a, m)) < 0)
		return r;

	/* Attention details. */
	switch (a->arch) {
	case ARCH_OLMOE:
	case ARCH_QWEN3_MOE:
		if ((r = cfg_bool(c, "attention_bias", false, &flag)) < 0)
			return r;
		m->qkv_bias = m->o_bias = flag;
		m->qk_norm = a->arch == ARCH_OLMOE ? QK_NORM_FULL : QK_NORM_HEAD;
		break;
	case ARCH_QWEN2_MOE:
		if ((r = cfg_bool(c, "qkv_bias", true, &m->qkv_bias)) < 0)
			return r;
		break;
	case ARCH_GLM4_MOE:
		/* Glm4MoeAttention: q/k/v biases by attention_bias, o_proj none;
		 * use_qk_norm is a per-head RMSNorm with rms_norm_eps. */
		if ((r = cfg_bool(c, "attention_bias", false, &m->qkv_bias)) < 0 ||
		    (r = cfg_bool(c, "use_qk_norm", false, &flag)) < 0)
			return r;
		m->qk_norm = flag ? QK_NORM_HEAD : QK_NORM_NONE;
		break;
	case ARCH_MIXTRAL:
	case ARCH_DEEPSEEK_V3:
		break;
	}
	if (a->arch == ARCH_OLMOE &&
	    (r = cfg_double(c, "clip_qkv", 0.0, 0.0, HUGE_VAL, &m->clip_qkv)) < 0)
		return r;
	if (a->arch == ARCH_MIXTRAL) {
		if ((r = cfg_int(c, "sliding_window", 0, 0, INT_MAX, true, &m->sliding_window)) < 0)
			return r;
	} else if (qwen) {
		if ((r = cfg_bool(c, "use_sliding_window", false, &flag)) < 0)
			return r;
		if (flag)
			return gw_errf(c->err, -ENOTSUP, "\"%s\": use_sliding_window true is not "
				       "supported", c->what);
	}
	if ((r = cfg_bool(c, "tie_word_embeddings", false, &m->tie_embeddings)) < 0 ||
	    (r = cfg_double(c, "rms_norm_eps", a->eps, 0.0, 1.0, &m->rms_eps)) < 0 ||
	    (r = cfg_hidden_act(c)) < 0)
		return r;

	/* RoPE: transformers v5's rope_parameters, then v4's rope_scaling (which
	 * v5 takes first when both are set), then a top-level rope_theta. */
	m->rope_theta = a->theta;
	if ((r = cfg_double(c, "partial_rotary_factor", a->prf ? a->prf : 1.0, 0.0, 1.0,
			    &rc.prf)) < 0)
		return r;
	if ((r = cfg_get(c, "partial_rotary_factor", &v)) < 0)
		return r;
	rc.has_prf = v && !cJSON_IsNull(v);
	if ((r = cfg_rope(c, "rope_parameters", &m->rope_theta, &rc)) < 0 ||
	    (r = cfg_rope(c, "rope_scaling", &m->rope_theta, &rc)) < 0 ||
	    (r = cfg_double(c, "rope_theta", m->rope_theta, 0.0, HUGE_VAL, &m->rope_theta)) < 0 ||
	    (r = apply_rope(c, a, &rc, m)) < 0)
		return r;

	/* Which layers route: all of them in OLMoE and Mixtral; in Qwen those
	 * with (i + 1) % decoder_sparse_step == 0 that mlp_only_layers does not
	 * name (Qwen2MoeDecoderLayer / Qwen3MoeDecoderLayer); in the DeepSeek-V3
	 * family those from first_k_dense_replace on. */
	if (qwen &&
	    ((r = cfg_int(c, "decoder_sparse_step", 1, 1, INT_MAX, false, &step)) < 0 ||
	     (r = cfg_mlp_only(c, m->n_layers, dense)) < 0))
		return r;
	if (ds && (r = cfg_int(c, "first_k_dense_replace", a->first_dense, 0, INT_MAX, false,
			       &first_dense)) < 0)
		return r;
	m->n_moe_layers = 0;
	for (int i = 0; i < MODEL_LAYERS_MAX; i++)
		m->moe_layer_index[i] = -1;
	for (int i = 0; i < m->n_layers; i++) {
		if (qwen)
			m->layer_moe[i] = !dense[i] && (i + 1) % step == 0;
		else
			m->layer_moe[i] = i >= first_dense;
		m->moe_layer_index[i] = m->layer_moe[i] ? m->n_moe_layers++ : -1;
	}
	if (m->n_moe_layers == 0 && ds)
		return gw_errf(c->err, -ENOTSUP, "\"%s\": no layer is an MoE layer "
			       "(first_k_dense_replace %d of %d layers)", c->what, first_dense,
			       m->n_layers);
	if (m->n_moe_layers == 0)
		return gw_errf(c->err, -ENOTSUP, "\"%s\": no layer is an MoE layer "
			       "(decoder_sparse_step %d, mlp_only_layers)", c->what, step);
	return 0;
}

int model_desc_parse(const char *what, const char *json, size_t len, struct model_desc *ret,
		     struct gw_err *err)
{
	struct model_desc *m = gw_calloc(1, sizeof(*m));
	const char *end = NULL;
	cJSON *root = NULL;
	struct cfg c;
	int r;

	if (!json || len == 0) {
		r = gw_errf(err, -EBADMSG, "\"%s\": empty file", what);
		goto out;
	}
	root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
	if (!root) {
		size_t at = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;

		r = gw_errf(err, -EBADMSG, "\"%s\": not JSON (error at byte %zu)", what, at);
		goto out;
	}
	/* cJSON stops after the first value; anything but white space after
	 * it (a second object, a NUL, garbage) makes the file not JSON. */
	for (const char *p = end; p < json + len; p++)
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
			r = gw_errf(err, -EBADMSG, "\"%s\": not JSON (trailing data at byte %zu)",
				    what, (size_t)(p - json));
			goto out;
		}
	if (!cJSON_IsObject(root)) {
		r = gw_errf(err, -EBADMSG, "\"%s\": not a JSON object but %s", what, json_kind(root));
		goto out;
	}
	c = (struct cfg){ what, root, err };
	{
		const struct arch_info *a = NULL;

		if ((r = find_arch(&c, &a)) < 0 || (r = parse_fields(&c, a, m)) < 0)
			goto out;
	}
	*ret = *m;
	r = 0;
out:
	cJSON_Delete(root);
	free(m);
	return r;
}

/* ---- tensor names and shapes ----------------------------------------- */

static bool kind_is_layer(enum model_tensor k)
{
	return k != MT_EMBED && k != MT_FINAL_NORM && k != MT_LM_HEAD;
}

static bool kind_is_expert(enum model_tensor k)
{
	return k == MT_EXPERT_GATE || k == MT_EXPERT_UP || k == MT_EXPERT_DOWN;
}

/* Whether this model has tensors of this kind at all (ignoring layers). */
static bool kind_exists(const struct model_desc *m, enum model_tensor k)
{
	bool mla = m->attn == ATTN_MLA, qlora = mla && m->q_lora_rank > 0;

	switch (k) {
	case MT_LM_HEAD:
		return !m->tie_embeddings;
	case MT_Q:
		return !qlora;
	case MT_K:
	case MT_V:
		return !mla;
	case MT_Q_BIAS:
	case MT_K_BIAS:
	case MT_V_BIAS:
		return m->qkv_bias;
	case MT_O_BIAS:
		return m->o_bias;
	case MT_Q_NORM:
	case MT_K_NORM:
		return m->qk_norm != QK_NORM_NONE;
	case MT_Q_A:
	case MT_Q_A_NORM:
	case MT_Q_B:
		return qlora;
	case MT_Q_A_BIAS:
		return qlora && m->o_bias; /* attention_bias sets all three */
	case MT_KV_A:
	case MT_KV_A_NORM:
	case MT_KV_B:
		return mla;
	case MT_KV_A_BIAS:
		return mla && m->o_bias;
	case MT_ROUTER_BIAS:
		return m->router == ROUTER_SIGMOID;
	case MT_SHARED_GATE:
	case MT_SHARED_UP:
	case MT_SHARED_DOWN:
		return m->shared_intermediate > 0;
	case MT_SHARED_EXPERT_GATE:
		return m->shared_gated;
	case MT_DENSE_GATE:
	case MT_DENSE_UP:
	case MT_DENSE_DOWN:
		return m->dense_intermediate > 0;
	default:
		return (int)k >= 0 && k < MT_COUNT;
	}
}

/* Whether the kind belongs on this layer (MoE-only or dense-only parts). */
static bool kind_on_layer(const struct model_desc *m, enum model_tensor k, int layer)
{
	switch (k) {
	case MT_ROUTER:
	case MT_ROUTER_BIAS:
	case MT_EXPERT_GATE:
	case MT_EXPERT_UP:
	case MT_EXPERT_DOWN:
	case MT_SHARED_GATE:
	case MT_SHARED_UP:
	case MT_SHARED_DOWN:
	case MT_SHARED_EXPERT_GATE:
		return m->layer_moe[layer];
	case MT_DENSE_GATE:
	case MT_DENSE_UP:
	case MT_DENSE_DOWN:
		return !m->layer_moe[layer];
	default:
		return true;
	}
}

/* The name after "model.layers.<i>." */
static const char *layer_suffix(const struct model_desc *m, enum model_tensor k)
{
	bool mix = m->arch == ARCH_MIXTRAL;
	/* DeepseekV3MoE and Glm4MoeMoE name theirs shared_experts. */
	bool ds = m->router == ROUTER_SIGMOID;

	switch (k) {
	case MT_ATTN_NORM: return "input_layernorm.weight";
	case MT_FFN_NORM: return "post_attention_layernorm.weight";
	case MT_Q: return "self_attn.q_proj.weight";
	case MT_K: return "self_attn.k_proj.weight";
	case MT_V: return "self_attn.v_proj.weight";
	case MT_O: return "self_attn.o_proj.weight";
	case MT_Q_BIAS: return "self_attn.q_proj.bias";
	case MT_K_BIAS: return "self_attn.k_proj.bias";
	case MT_V_BIAS: return "self_attn.v_proj.bias";
	case MT_O_BIAS: return "self_attn.o_proj.bias";
	case MT_Q_NORM: return "self_attn.q_norm.weight";
	case MT_K_NORM: return "self_attn.k_norm.weight";
	case MT_Q_A: return "self_attn.q_a_proj.weight";
	case MT_Q_A_BIAS: return "self_attn.q_a_proj.bias";
	case MT_Q_A_NORM: return "self_attn.q_a_layernorm.weight";
	case MT_Q_B: return "self_attn.q_b_proj.weight";
	case MT_KV_A: return "self_attn.kv_a_proj_with_mqa.weight";
	case MT_KV_A_BIAS: return "self_attn.kv_a_proj_with_mqa.bias";
	case MT_KV_A_NORM: return "self_attn.kv_a_layernorm.weight";
	case MT_KV_B: return "self_attn.kv_b_proj.weight";
	case MT_ROUTER: return mix ? "block_sparse_moe.gate.weight" : "mlp.gate.weight";
	case MT_ROUTER_BIAS: return "mlp.gate.e_score_correction_bias";
	/* Mixtral's w1 is the gate, w3 the up and w2 the down projection. */
	case MT_EXPERT_GATE: return mix ? "w1.weight" : "gate_proj.weight";
	case MT_EXPERT_UP: return mix ? "w3.weight" : "up_proj.weight";
	case MT_EXPERT_DOWN: return mix ? "w2.weight" : "down_proj.weight";
	case MT_SHARED_GATE:
		return ds ? "mlp.shared_experts.gate_proj.weight" : "mlp.shared_expert.gate_proj.weight";
	case MT_SHARED_UP:
		return ds ? "mlp.shared_experts.up_proj.weight" : "mlp.shared_expert.up_proj.weight";
	case MT_SHARED_DOWN:
		return ds ? "mlp.shared_experts.down_proj.weight" : "mlp.shared_expert.down_proj.weight";
	case MT_SHARED_EXPERT_GATE: return "mlp.shared_expert_gate.weight";
	case MT_DENSE_GATE: return "mlp.gate_proj.weight";
	case MT_DENSE_UP: return "mlp.up_proj.weight";
	case MT_DENSE_DOWN: return "mlp.down_proj.weight";
	default: return NULL;
	}
}

int model_tensor_name(const struct model_desc *m, enum model_tensor kind, int layer, int expert,
		      char *buf, size_t len)
{
	int n;

	if ((int)kind < 0 || kind >= MT_COUNT)
		return -EINVAL;
	if (!kind_exists(m, kind))
		return -ENOENT;
	if (kind_is_layer(kind)) {
		if (layer < 0 || layer >= m->n_layers)
			return -EINVAL;
		if (!kind_on_layer(m, kind, layer))
			return -ENOENT;
	}
	if (kind_is_expert(kind) && (expert < 0 || expert >= m->n_experts))
		return -EINVAL;
	switch (kind) {
	case MT_EMBED:
		n = snprintf(buf, len, "model.embed_tokens.weight");
		break;
	case MT_FINAL_NORM:
		n = snprintf(buf, len, "model.norm.weight");
		break;
	case MT_LM_HEAD:
		n = snprintf(buf, len, "lm_head.weight");
		break;
	case MT_EXPERT_GATE:
	case MT_EXPERT_UP:
	case MT_EXPERT_DOWN:
		n = snprintf(buf, len, "model.layers.%d.%s.experts.%d.%s", layer,
			     m->arch == ARCH_MIXTRAL ? "block_sparse_moe" : "mlp", expert,
			     layer_suffix(m, kind));
		break;
	default:
		n = snprintf(buf, len, "model.layers.%d.%s", layer, layer_suffix(m, kind));
		break;
	}
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int model_tensor_shape(const struct model_desc *m, enum model_tensor kind, int64_t shape[2],
		       int *ret_ndim)
{
	int64_t H = m->hidden, V = m->vocab, d = m->head_dim, nh = m->n_heads;
	int64_t q = nh * d, kv = (int64_t)m->n_kv_heads * d;
	int64_t I = m->moe_intermediate, S = m->shared_intermediate, D = m->dense_intermediate;
	int64_t qr = m->q_lora_rank, kvr = m->kv_lora_rank, dr = m->qk_rope_dim;
	int64_t o = m->attn == ATTN_MLA ? nh * m->v_head_dim : q; /* o_proj's input */
	int64_t a = 0, b = 0; /* b == 0: one dimension */

	if ((int)kind < 0 || kind >= MT_COUNT)
		return -EINVAL;
	if (!kind_exists(m, kind))
		return -ENOENT;
	switch (kind) {
	case MT_EMBED: case MT_LM_HEAD: a = V; b = H; break;
	case MT_FINAL_NORM: case MT_ATTN_NORM: case MT_FFN_NORM: case MT_O_BIAS: a = H; break;
	case MT_Q: a = q; b = H; break;
	case MT_K: case MT_V: a = kv; b = H; break;
	case MT_O: a = H; b = o; break;
	case MT_Q_BIAS: a = q; break;
	case MT_K_BIAS: case MT_V_BIAS: a = kv; break;
	/* OLMoE normalizes the whole projection, Qwen3 and GLM each head. */
	case MT_Q_NORM: a = m->qk_norm == QK_NORM_FULL ? q : d; break;
	case MT_K_NORM: a = m->qk_norm == QK_NORM_FULL ? kv : d; break;
	case MT_Q_A: a = qr; b = H; break;
	case MT_Q_A_BIAS: case MT_Q_A_NORM: a = qr; break;
	case MT_Q_B: a = q; b = qr; break;
	case MT_KV_A: a = kvr + dr; b = H; break;
	case MT_KV_A_BIAS: a = kvr + dr; break;
	case MT_KV_A_NORM: a = kvr; break;
	case MT_KV_B: a = nh * (m->qk_nope_dim + m->v_head_dim); b = kvr; break;
	case MT_ROUTER: a = m->n_experts; b = H; break;
	case MT_ROUTER_BIAS: a = m->n_experts; break;
	case MT_EXPERT_GATE: case MT_EXPERT_UP: a = I; b = H; break;
	case MT_EXPERT_DOWN: a = H; b = I; break;
	case MT_SHARED_GATE: case MT_SHARED_UP: a = S; b = H; break;
	case MT_SHARED_DOWN: a = H; b = S; break;
	case MT_SHARED_EXPERT_GATE: a = 1; b = H; break;
	case MT_DENSE_GATE: case MT_DENSE_UP: a = D; b = H; break;
	case MT_DENSE_DOWN: a = H; b = D; break;
	default: return -EINVAL;
	}
	shape[0] = a;
	shape[1] = b;
	*ret_ndim = b ? 2 : 1;
	return 0;
}

/* ---- every tensor ---------------------------------------------------- */

static int visit(const struct model_desc *m, enum model_tensor k, int layer, int expert,
		 model_tensor_fn fn, void *ud)
{
	char name[256];
	int r = model_tensor_name(m, k, layer, expert, name, sizeof(name));

	if (r == -ENOENT)
		return 0;
	/* Layers and experts are in range and names fit: a failure here is a
	 * model_desc that model_desc_parse did not make. */
	GW_BUG_ON(r < 0);
	return fn(ud, k, layer, expert, name);
}

int model_tensor_foreach(const struct model_desc *m, model_tensor_fn fn, void *ud)
{
	int r;

	if ((r = visit(m, MT_EMBED, 0, 0, fn, ud)) < 0)
		return r;
	for (int l = 0; l < m->n_layers; l++)
		for (int k = MT_ATTN_NORM; k < MT_COUNT; k++) {
			int ne = kind_is_expert((enum model_tensor)k) ? m->n_experts : 1;

			for (int e = 0; e < ne; e++)
				if ((r = visit(m, (enum model_tensor)k, l, e, fn, ud)) < 0)
					return r;
		}
	if ((r = visit(m, MT_FINAL_NORM, 0, 0, fn, ud)) < 0 ||
	    (r = visit(m, MT_LM_HEAD, 0, 0, fn, ud)) < 0)
		return r;
	return 0;
}

struct check {
	const struct model_desc *m;
	const char *what;
	model_lookup_fn lookup;
	void *ud;
	struct gw_err *err;
};

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
	size_t n = 0;

	n += (size_t)snprintf(buf, len, "[");
	for (int i = 0; i < ndim && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%lld", i ? ", " : "",
				      (long long)shape[i]);
	if (n < len)
		snprintf(buf + n, len - n, "]");
}

static int check_one(void *ud, enum model_tensor kind, int layer, int expert, const char *name)
{
	struct check *c = ud;
	int64_t want[2], got[8] = { 0 };
	int wn, gn = 0, r;
	char ws[64], gs[256];

	(void)layer;
	(void)expert;
	if ((r = model_tensor_shape(c->m, kind, want, &wn)) < 0)
		return gw_errf(c->err, r, "\"%s\": no shape for tensor \"%s\"", c->what, name);
	r = c->lookup(c->ud, name, &gn, got);
	if (r == -ENOENT)
		return gw_errf(c->err, -EBADMSG, "\"%s\": tensor \"%s\" is missing", c->what, name);
	if (r < 0)
		return gw_errf(c->err, r, "\"%s\": tensor \"%s\" cannot be used", c->what, name);
	if (gn == wn && got[0] == want[0] && (wn == 1 || got[1] == want[1]))
		return 0;
	shape_str(ws, sizeof(ws), wn, want);
	shape_str(gs, sizeof(gs), gn < 0 ? 0 : gn > 8 ? 8 : gn, got);
	return gw_errf(c->err, -EBADMSG, "\"%s\": tensor \"%s\" has shape %s, but config.json "
		       "implies %s", c->what, name, gs, ws);
}

int model_check_tensors(const struct model_desc *m, const char *what, model_lookup_fn lookup,
			void *ud, struct gw_err *err)
{
	struct check c = { m, what, lookup, ud, err };
	int r = model_tensor_foreach(m, check_one, &c);

	return r;
}
