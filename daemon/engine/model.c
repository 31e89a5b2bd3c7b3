/*
 * model.c — the model description read from a Hugging Face config.json,
 * and the names and shapes of the tensors the forward pass needs (SPEC §3).
 *
 * The file is divided into:
 *   - typed access to the config's top-level keys (each refusal names the
 *     key and what was wrong with it; a key given twice is refused, since
 *     cJSON would take the first and Python's json the last);
 *   - the architecture table and model_desc_parse, which applies the
 *     defaults of each Hugging Face configuration class and the rules that
 *     follow from it (head_dim, biases, QK-norm, the sparse-layer rule);
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

/*
 * rope_scaling / rope_parameters: null, absent, or an object whose
 * "rope_type" (or older "type") is absent or "default" mean plain RoPE.
 * Anything else (linear, dynamic, yarn, llama3, ...) changes the rotary
 * frequencies and is refused rather than silently computed wrong.
 */
static int cfg_rope(const struct cfg *c, const char *key, double *theta)
{
	const cJSON *v, *t;
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
	if (t && !cJSON_IsNull(t)) {
		if (!cJSON_IsString(t))
			return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\".rope_type must be a string, "
				       "not %s", c->what, key, json_kind(t));
		if (strcmp(t->valuestring, "default") != 0)
			return gw_errf(c->err, -ENOTSUP, "\"%s\": \"%s\" of type \"%.64s\" is not "
				       "supported (only plain RoPE)", c->what, key, t->valuestring);
	}
	t = cJSON_GetObjectItemCaseSensitive(v, "rope_theta");
	if (t && !cJSON_IsNull(t)) {
		if (!cJSON_IsNumber(t) || !isfinite(t->valuedouble) || !(t->valuedouble > 0))
			return gw_errf(c->err, -EBADMSG, "\"%s\": \"%s\".rope_theta must be a "
				       "positive number", c->what, key);
		*theta = t->valuedouble;
	}
	return 0;
}

/* ---- architectures and parsing --------------------------------------- */

/*
 * Defaults of the Hugging Face configuration classes (transformers'
 * configuration_{olmoe,mixtral,qwen2_moe,qwen3_moe}.py) for the keys that
 * have one.  kv == 0 means "num_attention_heads" (OLMoE, and any class
 * when the key is null).
 */
static const struct arch_info {
	enum model_arch arch;
	const char *name, *model_type;
	int vocab, hidden, layers, heads, kv, experts, top_k;
	int inter;       /* intermediate_size */
	int moe_inter;   /* moe_intermediate_size (Qwen) */
	int shared;      /* shared_expert_intermediate_size (Qwen2-MoE) */
	double eps, theta;
	const char *experts_key, *experts_alias;
} archs[] = {
	{ ARCH_OLMOE, "OlmoeForCausalLM", "olmoe", 50304, 2048, 16, 16, 0, 64, 8, 2048, 0, 0,
	  1e-5, 10000.0, "num_experts", "num_local_experts" },
	{ ARCH_MIXTRAL, "MixtralForCausalLM", "mixtral", 32000, 4096, 32, 32, 8, 8, 2, 14336, 0,
	  0, 1e-5, 1e6, "num_local_experts", "num_experts" },
	{ ARCH_QWEN2_MOE, "Qwen2MoeForCausalLM", "qwen2_moe", 151936, 2048, 24, 16, 16, 60, 4,
	  5632, 1408, 5632, 1e-6, 10000.0, "num_experts", NULL },
	{ ARCH_QWEN3_MOE, "Qwen3MoeForCausalLM", "qwen3_moe", 151936, 2048, 24, 32, 4, 128, 8,
	  6144, 768, 0, 1e-6, 10000.0, "num_experts", "num_local_experts" },
};

#define N_ARCHS (sizeof(archs) / sizeof(archs[0]))
#define SUPPORTED "(OLMoE, Mixtral, Qwen2-MoE, Qwen3-MoE)"

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

static int parse_fields(const struct cfg *c, const struct arch_info *a, struct model_desc *m)
{
	bool dense[MODEL_LAYERS_MAX] = { false };
	bool qwen = a->arch == ARCH_QWEN2_MOE || a->arch == ARCH_QWEN3_MOE;
	const cJSON *v;
	const char *ekey;
	int kv, step = 1, hd, r;
	bool flag;

	m->arch = a->arch;
	m->arch_name = a->name;
	if ((r = cfg_int(c, "vocab_size", a->vocab, 1, MODEL_VOCAB_MAX, false, &m->vocab)) < 0 ||
	    (r = cfg_int(c, "hidden_size", a->hidden, 1, MODEL_HIDDEN_MAX, false, &m->hidden)) < 0 ||
	    (r = cfg_int(c, "num_hidden_layers", a->layers, 1, MODEL_LAYERS_MAX, false,
			 &m->n_layers)) < 0 ||
	    (r = cfg_int(c, "num_attention_heads", a->heads, 1, MODEL_HEADS_MAX, false,
			 &m->n_heads)) < 0)
		return r;
	kv = a->kv ? a->kv : m->n_heads;
	if ((r = cfg_get(c, "num_key_value_heads", &v)) < 0)
		return r;
	if (v && cJSON_IsNull(v))
		kv = m->n_heads; /* every class maps None to num_attention_heads */
	if ((r = cfg_int(c, "num_key_value_heads", kv, 1, MODEL_HEADS_MAX, true,
			 &m->n_kv_heads)) < 0)
		return r;

	/* head_dim: the config's where given (all four attention classes read
	 * it with getattr), else hidden_size / num_attention_heads. */
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
	} else if ((r = cfg_bool(c, "norm_topk_prob", false, &m->norm_topk_prob)) < 0) {
		return r;
	}

	/* Feed-forward widths. */
	if (qwen) {
		if ((r = cfg_int(c, "moe_intermediate_size", a->moe_inter, 1,
				 MODEL_INTERMEDIATE_MAX, false, &m->moe_intermediate)) < 0 ||
		    (r = cfg_int(c, "intermediate_size", a->inter, 1, MODEL_INTERMEDIATE_MAX,
				 false, &m->dense_intermediate)) < 0)
			return r;
		if (a->arch == ARCH_QWEN2_MOE &&
		    (r = cfg_int(c, "shared_expert_intermediate_size", a->shared, 0,
				 MODEL_INTERMEDIATE_MAX, false, &m->shared_intermediate)) < 0)
			return r;
	} else if ((r = cfg_int(c, "intermediate_size", a->inter, 1, MODEL_INTERMEDIATE_MAX, false,
				&m->moe_intermediate)) < 0) {
		return r;
	}

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
	case ARCH_MIXTRAL:
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
	m->rope_theta = a->theta;
	if ((r = cfg_rope(c, "rope_scaling", &m->rope_theta)) < 0 ||
	    (r = cfg_rope(c, "rope_parameters", &m->rope_theta)) < 0 ||
	    (r = cfg_double(c, "rope_theta", m->rope_theta, 0.0, HUGE_VAL, &m->rope_theta)) < 0)
		return r;

	/* Which layers route: all of them in OLMoE and Mixtral; in Qwen those
	 * with (i + 1) % decoder_sparse_step == 0 that mlp_only_layers does not
	 * name (Qwen2MoeDecoderLayer / Qwen3MoeDecoderLayer). */
	if (qwen &&
	    ((r = cfg_int(c, "decoder_sparse_step", 1, 1, INT_MAX, false, &step)) < 0 ||
	     (r = cfg_mlp_only(c, m->n_layers, dense)) < 0))
		return r;
	m->n_moe_layers = 0;
	for (int i = 0; i < MODEL_LAYERS_MAX; i++)
		m->moe_layer_index[i] = -1;
	for (int i = 0; i < m->n_layers; i++) {
		m->layer_moe[i] = !qwen || (!dense[i] && (i + 1) % step == 0);
		m->moe_layer_index[i] = m->layer_moe[i] ? m->n_moe_layers++ : -1;
	}
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
	switch (k) {
	case MT_LM_HEAD:
		return !m->tie_embeddings;
	case MT_Q_BIAS:
	case MT_K_BIAS:
	case MT_V_BIAS:
		return m->qkv_bias;
	case MT_O_BIAS:
		return m->o_bias;
	case MT_Q_NORM:
	case MT_K_NORM:
		return m->qk_norm != QK_NORM_NONE;
	case MT_SHARED_GATE:
	case MT_SHARED_UP:
	case MT_SHARED_DOWN:
	case MT_SHARED_EXPERT_GATE:
		return m->arch == ARCH_QWEN2_MOE && m->shared_intermediate > 0;
	case MT_DENSE_GATE:
	case MT_DENSE_UP:
	case MT_DENSE_DOWN:
		return m->arch == ARCH_QWEN2_MOE || m->arch == ARCH_QWEN3_MOE;
	default:
		return (int)k >= 0 && k < MT_COUNT;
	}
}

/* Whether the kind belongs on this layer (MoE-only or dense-only parts). */
static bool kind_on_layer(const struct model_desc *m, enum model_tensor k, int layer)
{
	switch (k) {
	case MT_ROUTER:
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
	case MT_ROUTER: return mix ? "block_sparse_moe.gate.weight" : "mlp.gate.weight";
	/* Mixtral's w1 is the gate, w3 the up and w2 the down projection. */
	case MT_EXPERT_GATE: return mix ? "w1.weight" : "gate_proj.weight";
	case MT_EXPERT_UP: return mix ? "w3.weight" : "up_proj.weight";
	case MT_EXPERT_DOWN: return mix ? "w2.weight" : "down_proj.weight";
	case MT_SHARED_GATE: return "mlp.shared_expert.gate_proj.weight";
	case MT_SHARED_UP: return "mlp.shared_expert.up_proj.weight";
	case MT_SHARED_DOWN: return "mlp.shared_expert.down_proj.weight";
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
	int64_t H = m->hidden, V = m->vocab, d = m->head_dim;
	int64_t q = (int64_t)m->n_heads * d, kv = (int64_t)m->n_kv_heads * d;
	int64_t I = m->moe_intermediate, S = m->shared_intermediate, D = m->dense_intermediate;
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
	case MT_O: a = H; b = q; break;
	case MT_Q_BIAS: a = q; break;
	case MT_K_BIAS: case MT_V_BIAS: a = kv; break;
	/* OLMoE normalizes the whole projection, Qwen3 each head. */
	case MT_Q_NORM: a = m->qk_norm == QK_NORM_FULL ? q : d; break;
	case MT_K_NORM: a = m->qk_norm == QK_NORM_FULL ? kv : d; break;
	case MT_ROUTER: a = m->n_experts; b = H; break;
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
