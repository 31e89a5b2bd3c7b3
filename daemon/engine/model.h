/*
 * model.h — the description of an MoE model, read from a Hugging Face
 * config.json, and the names and shapes of the tensors its forward pass
 * needs (SPEC §3).
 *
 * Supported: OlmoeForCausalLM, MixtralForCausalLM, Qwen2MoeForCausalLM,
 * Qwen3MoeForCausalLM (by "architectures"[0], else by "model_type").  Any
 * other is refused by name.  Defaults for absent keys are those of the
 * Hugging Face configuration classes.
 */
#ifndef GW_ENGINE_MODEL_H
#define GW_ENGINE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

/*
 * Limits on what a config.json may ask for, so a hostile or mistyped file
 * cannot make the engine allocate absurd amounts before a tensor is read.
 * Each is several times the largest published model of the four families
 * (OLMoE 64 experts, Qwen3-MoE 128 experts and 94 layers, vocabularies up
 * to ~152k, hidden sizes up to 8192).
 */
#define MODEL_LAYERS_MAX 1024
#define MODEL_EXPERTS_MAX 4096
#define MODEL_VOCAB_MAX (4 * 1024 * 1024)
#define MODEL_HIDDEN_MAX 65536
#define MODEL_HEADS_MAX 1024
#define MODEL_HEAD_DIM_MAX 1024
#define MODEL_INTERMEDIATE_MAX (1024 * 1024)
#define MODEL_QDIM_MAX (4 * MODEL_HIDDEN_MAX) /* n_heads * head_dim */

enum model_arch { ARCH_OLMOE, ARCH_MIXTRAL, ARCH_QWEN2_MOE, ARCH_QWEN3_MOE };

enum model_qk_norm {
	QK_NORM_NONE,
	QK_NORM_FULL, /* OLMoE: RMSNorm over all heads' q (n_heads*head_dim) and k */
	QK_NORM_HEAD, /* Qwen3-MoE: RMSNorm per head over head_dim */
};

struct model_desc {
	enum model_arch arch;
	const char *arch_name;  /* "OlmoeForCausalLM", ... (static) */
	int vocab;
	int hidden;
	int n_layers;
	int n_heads, n_kv_heads, head_dim;
	int n_experts, top_k;
	int moe_intermediate;    /* per-expert FFN width */
	int dense_intermediate;  /* FFN width of dense layers (Qwen2/3-MoE) */
	int shared_intermediate; /* Qwen2-MoE shared expert, 0 if none */
	bool norm_topk_prob;     /* renormalize the top-k weights */
	bool qkv_bias;           /* Qwen2-MoE q/k/v bias */
	bool o_bias;             /* attention output bias (OLMoE attention_bias) */
	enum model_qk_norm qk_norm;
	bool tie_embeddings;
	double clip_qkv;         /* OLMoE clip_qkv; 0 = none */
	double rms_eps;
	double rope_theta;
	int sliding_window;      /* 0 = none */
	bool layer_moe[MODEL_LAYERS_MAX]; /* which layers are MoE */
	int n_moe_layers;
	int moe_layer_index[MODEL_LAYERS_MAX]; /* layer -> MoE index, or -1 */
};

/*
 * Parse config.json text (len bytes, need not be NUL-terminated); `what`
 * names it in messages.  The architecture comes from "architectures"[0],
 * else "model_type"; absent keys take the defaults of the Hugging Face
 * configuration class of that architecture (transformers' OlmoeConfig,
 * MixtralConfig, Qwen2MoeConfig, Qwen3MoeConfig).
 *
 * Refused with -EBADMSG and a message naming `what` and the key: text that
 * is not one JSON object; a key of the wrong type; an integer that is not
 * integral or outside its limit above; zero experts; top-k above the
 * expert count; heads that do not divide the hidden size (when head_dim is
 * absent) or KV heads that do not divide the heads; an odd head_dim; a
 * non-finite or non-positive rms_norm_eps / rope_theta; a duplicated key.
 * Refused with -ENOTSUP: another architecture (named), rope scaling other
 * than none/"default", a hidden_act other than "silu", Qwen's
 * use_sliding_window, a model with no MoE layer.
 *
 * *ret is written only on success.  Thread-safe: no state of its own
 * (cJSON records a failed parse's position in a global that nothing here
 * reads).
 */
int model_desc_parse(const char *what, const char *json, size_t len,
		     struct model_desc *ret, struct gw_err *err);

/*
 * Tensor names.  kind is one of the MT_* below; layer and expert are used
 * where they apply.  Writes the Hugging Face name of the tensor into buf.
 * Returns 0, or -ENOENT if this model has no such tensor (e.g. a bias it
 * does not use, lm_head when the embeddings are tied, a router on a dense
 * layer), -EINVAL for a layer or expert out of range, -ENAMETOOLONG if
 * buf is too small.
 */
enum model_tensor {
	MT_EMBED, MT_FINAL_NORM, MT_LM_HEAD,
	MT_ATTN_NORM, MT_FFN_NORM,
	MT_Q, MT_K, MT_V, MT_O, MT_Q_BIAS, MT_K_BIAS, MT_V_BIAS, MT_O_BIAS,
	MT_Q_NORM, MT_K_NORM,
	MT_ROUTER,
	MT_EXPERT_GATE, MT_EXPERT_UP, MT_EXPERT_DOWN,
	MT_SHARED_GATE, MT_SHARED_UP, MT_SHARED_DOWN, MT_SHARED_EXPERT_GATE,
	MT_DENSE_GATE, MT_DENSE_UP, MT_DENSE_DOWN,
	MT_COUNT
};
int model_tensor_name(const struct model_desc *m, enum model_tensor kind, int layer,
		      int expert, char *buf, size_t len);
/* Expected shape of a tensor (ndim 1 or 2) for this model; the same on
 * every layer.  0, or -ENOENT as for model_tensor_name. */
int model_tensor_shape(const struct model_desc *m, enum model_tensor kind,
		       int64_t shape[2], int *ret_ndim);

/*
 * Check every tensor the forward pass needs: present (lookup returns its
 * dims) with the expected shape.  `lookup` returns 0 and fills ndim/shape,
 * or -ENOENT.  Messages name the checkpoint (`what`) and the tensor.
 */
typedef int (*model_lookup_fn)(void *ud, const char *name, int *ret_ndim,
			       int64_t ret_shape[8]);
int model_check_tensors(const struct model_desc *m, const char *what,
			model_lookup_fn lookup, void *ud, struct gw_err *err);

/*
 * Call fn for every tensor the forward pass needs, in a fixed order
 * (embedding, then layer by layer, then final norm and lm_head), with its
 * name; stop at and return the first negative return of fn, else 0.  The
 * name is valid only during the call.
 */
typedef int (*model_tensor_fn)(void *ud, enum model_tensor kind, int layer, int expert,
			       const char *name);
int model_tensor_foreach(const struct model_desc *m, model_tensor_fn fn, void *ud);

#endif
