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

#define MODEL_LAYERS_MAX 1024
#define MODEL_EXPERTS_MAX 4096

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

/* Parse config.json text; `what` names it in messages. */
int model_desc_parse(const char *what, const char *json, size_t len,
		     struct model_desc *ret, struct gw_err *err);

/*
 * Tensor names.  kind is one of the MT_* below; layer and expert are used
 * where they apply.  Writes the Hugging Face name of the tensor into buf.
 * Returns 0, or -ENOENT if this model has no such tensor (e.g. a bias it
 * does not use).
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
/* Expected shape of a tensor (ndim 1 or 2) for this model. */
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

#endif
