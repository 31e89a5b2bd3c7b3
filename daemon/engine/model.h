/*
 * model.h — the description of an MoE model, read from a Hugging Face
 * config.json, and the names and shapes of the tensors its forward pass
 * needs (SPEC §3).
 *
 * Supported: OlmoeForCausalLM, MixtralForCausalLM, Qwen2MoeForCausalLM,
 * Qwen3MoeForCausalLM, DeepseekV3ForCausalLM (also Kimi K2, which declares
 * it) and Glm4MoeForCausalLM (by "architectures"[0], else by "model_type").
 * Any other is refused by name.  Defaults for absent keys are those of the
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
 * Each is several times the largest published model of the families
 * (Kimi K2 384 experts, Qwen3-MoE 94 layers, vocabularies up to ~164k,
 * hidden sizes up to 8192, DeepSeek-V3's 128 heads of 192).
 */
#define MODEL_LAYERS_MAX 1024
#define MODEL_EXPERTS_MAX 4096
#define MODEL_VOCAB_MAX (4 * 1024 * 1024)
#define MODEL_HIDDEN_MAX 65536
#define MODEL_HEADS_MAX 1024
#define MODEL_HEAD_DIM_MAX 1024
#define MODEL_INTERMEDIATE_MAX (1024 * 1024)
#define MODEL_QDIM_MAX (4 * MODEL_HIDDEN_MAX) /* n_heads * head_dim */
#define MODEL_LORA_MAX 65536 /* q_lora_rank, kv_lora_rank */

enum model_arch {
	ARCH_OLMOE, ARCH_MIXTRAL, ARCH_QWEN2_MOE, ARCH_QWEN3_MOE,
	ARCH_DEEPSEEK_V3, /* DeepseekV3ForCausalLM: MLA, sigmoid router, shared experts */
	ARCH_GLM4_MOE,    /* Glm4MoeForCausalLM: GQA, partial RoPE, the same router */
};

/* How a layer's router turns logits z into p_t and the top-k (SPEC §3). */
enum model_router {
	ROUTER_SOFTMAX, /* p = softmax(z); top-k of p, renormalized if norm_topk_prob */
	/*
	 * DeepSeek-V3 family: s = sigmoid(z).  The choice is made on
	 * s + e_score_correction_bias: each of n_group groups scores the sum of
	 * its two best, the best topk_group groups are kept, the other experts'
	 * choice scores become 0.0 (not -inf, as Hugging Face does), and the
	 * top-k of those are chosen.  Their weights are s (no bias), divided by
	 * their sum + 1e-20 if norm_topk_prob, times routed_scaling.  The
	 * recorded p_t is s / sum(s) over all experts (no bias).
	 */
	ROUTER_SIGMOID,
};

enum model_attn {
	ATTN_GQA, /* q/k/v/o projections, n_kv_heads shared by head groups */
	ATTN_MLA, /* DeepSeek-V3's multi-head latent attention (fields mla_*) */
};

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
	int dense_intermediate;  /* FFN width of dense layers (Qwen, DeepSeek-V3, GLM) */
	/* Shared expert width, 0 if none: Qwen2-MoE's shared_expert_intermediate_size
	 * (gated by sigmoid(shared_expert_gate . x)), or DeepSeek-V3's and GLM's
	 * moe_intermediate_size * n_shared_experts (one ungated MLP). */
	int shared_intermediate;
	bool shared_gated;       /* Qwen2-MoE's shared_expert_gate */
	bool norm_topk_prob;     /* renormalize the top-k weights */
	enum model_router router;
	int n_group, topk_group; /* ROUTER_SIGMOID's groups (1, 1 = no limit) */
	double routed_scaling;   /* ROUTER_SIGMOID's routed_scaling_factor; 1 otherwise */
	bool qkv_bias;           /* q/k/v bias (Qwen2-MoE qkv_bias; attention_bias elsewhere) */
	bool o_bias;             /* attention output bias (OLMoE, DeepSeek-V3 attention_bias) */
	enum model_qk_norm qk_norm;
	bool tie_embeddings;
	double clip_qkv;         /* OLMoE clip_qkv; 0 = none */
	double rms_eps;
	int sliding_window;      /* 0 = none */

	/*
	 * Attention.  ATTN_GQA: head_dim is q's, k's and v's per head.  ATTN_MLA
	 * (DeepSeek-V3): q per head is qk_nope then qk_rope dims (head_dim, the
	 * sum), from q_proj or, when q_lora_rank > 0, from q_b_proj(
	 * q_a_layernorm(q_a_proj x)); kv_a_proj_with_mqa x gives kv_lora_rank
	 * latent dims (normed by kv_a_layernorm, then kv_b_proj gives each head's
	 * qk_nope key dims and v_head_dim value dims) and qk_rope dims of one
	 * rotary key shared by every head.  The two latent norms use mla_eps
	 * (1e-6: HF builds them without rms_norm_eps).
	 */
	enum model_attn attn;
	int q_lora_rank;         /* 0 = plain q_proj */
	int kv_lora_rank, qk_nope_dim, qk_rope_dim, v_head_dim;
	double mla_eps;
	double attn_scale;       /* softmax scale: head_dim^-0.5, times YaRN's mscale^2 (MLA) */

	/*
	 * RoPE: the first rope_dim dims of each head (q and k; MLA: the
	 * qk_rope part) rotate, the rest pass (GLM's partial_rotary_factor).
	 * Half-split pairs (i, i + rope_dim/2), or, with rope_interleave
	 * (DeepSeek-V3), pairs (2i, 2i+1) written out half-split.
	 * inv_freq[i] = rope_theta^(-2i/rope_dim), or YaRN's blend of it and
	 * inv_freq / yarn_factor over a ramp between the dims that beta_fast
	 * and beta_slow rotations at yarn_orig_max_pos reach (floored and
	 * ceiled when yarn_truncate); cos and sin are scaled by rope_attn_factor.
	 */
	double rope_theta;
	int rope_dim;
	bool rope_interleave;
	bool yarn;
	double yarn_factor, yarn_beta_fast, yarn_beta_slow, yarn_orig_max_pos;
	bool yarn_truncate;
	double rope_attn_factor; /* 1 without YaRN */
	int max_position_embeddings;
	bool layer_moe[MODEL_LAYERS_MAX]; /* which layers are MoE */
	int n_moe_layers;
	int moe_layer_index[MODEL_LAYERS_MAX]; /* layer -> MoE index, or -1 */
};

/*
 * Parse config.json text (len bytes, need not be NUL-terminated); `what`
 * names it in messages.  The architecture comes from "architectures"[0],
 * else "model_type"; absent keys take the defaults of the Hugging Face
 * configuration class of that architecture (transformers' OlmoeConfig,
 * MixtralConfig, Qwen2MoeConfig, Qwen3MoeConfig, DeepseekV3Config,
 * Glm4MoeConfig).  A layer of DeepSeek-V3 or GLM is MoE exactly when its
 * index is at least first_k_dense_replace; multi-token-prediction layers
 * (num_nextn_predict_layers) lie beyond num_hidden_layers and are not read.
 *
 * Refused with -EBADMSG and a message naming `what` and the key: text that
 * is not one JSON object; a key of the wrong type; an integer that is not
 * integral or outside its limit above; zero experts; top-k above the
 * expert count; heads that do not divide the hidden size (when head_dim is
 * absent) or KV heads that do not divide the heads; an odd head_dim; a
 * non-finite or non-positive rms_norm_eps / rope_theta; a duplicated key;
 * n_group not dividing the experts into groups of at least two, topk_group
 * outside 1..n_group, or fewer experts in topk_group groups than top-k;
 * a YaRN rope_scaling without a positive factor; a rotary width that is
 * odd or zero.
 * Refused with -ENOTSUP: another architecture (named), rope scaling other
 * than none/"default"/"yarn", a hidden_act other than "silu", Qwen's
 * use_sliding_window, a model with no MoE layer, DeepSeek's moe_layer_freq
 * other than 1, scoring_func other than "sigmoid" or topk_method other
 * than "noaux_tc" (keys only DeepSeek's own code reads, which Hugging
 * Face's class would silently compute differently), a DeepSeek-V3
 * num_key_value_heads other than num_attention_heads or head_dim other
 * than qk_rope_head_dim, and a partial_rotary_factor other than 1 outside
 * GLM (Hugging Face's classes fail on both).
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
	/* MLA (DeepSeek-V3): q_a_proj (+bias with attention_bias), q_a_layernorm,
	 * q_b_proj, kv_a_proj_with_mqa (+bias), kv_a_layernorm, kv_b_proj. */
	MT_Q_A, MT_Q_A_BIAS, MT_Q_A_NORM, MT_Q_B,
	MT_KV_A, MT_KV_A_BIAS, MT_KV_A_NORM, MT_KV_B,
	MT_ROUTER,
	MT_ROUTER_BIAS, /* e_score_correction_bias [E] (ROUTER_SIGMOID) */
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
