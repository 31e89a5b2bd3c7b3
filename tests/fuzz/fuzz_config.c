/*
 * fuzz_config.c — libFuzzer target for the config.json reader
 * (model_desc_parse).  Besides "never crash", every accepted description
 * must satisfy what the forward pass relies on: positive dimensions within
 * the limits, heads divisible by KV heads, an even head_dim (MLA: an even
 * rotary part, one key per head), an even rotary width within the head,
 * top-k within the experts, groups that split the experts (sigmoid
 * routers), finite positive scales, YaRN's parameters in range, at least
 * one MoE layer and a consistent layer -> MoE index map; and, for small
 * models, every tensor name fits and every shape is positive.  A failed
 * parse must leave the output untouched.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_tensor(void *ud, enum model_tensor kind, int layer, int expert,
			const char *name)
{
	const struct model_desc *m = ud;
	int64_t s[2];
	int nd;

	(void)layer;
	(void)expert;
	if (!name[0] || model_tensor_shape(m, kind, s, &nd) != 0 || nd < 1 || nd > 2 ||
	    s[0] <= 0 || (nd == 2 && s[1] <= 0))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model_desc m, untouched;
	struct gw_err err;
	int moe = 0;

	memset(&m, 0xa5, sizeof(m));
	memcpy(&untouched, &m, sizeof(m));
	if (model_desc_parse("fuzz.json", (const char *)data, size, &m, &err) < 0) {
		if (memcmp(&m, &untouched, sizeof(m)) != 0 || strncmp(err.msg, "\"fuzz.json\": ", 13))
			abort();
		return 0;
	}
	if (m.vocab < 1 || m.vocab > MODEL_VOCAB_MAX || m.hidden < 1 || m.hidden > MODEL_HIDDEN_MAX ||
	    m.n_layers < 1 || m.n_layers > MODEL_LAYERS_MAX || m.n_heads < 1 ||
	    m.n_kv_heads < 1 || m.n_heads % m.n_kv_heads != 0 || m.head_dim < 2 ||
	    m.head_dim > MODEL_HEAD_DIM_MAX || m.n_experts < 1 ||
	    m.n_experts > MODEL_EXPERTS_MAX || m.top_k < 1 || m.top_k > m.n_experts ||
	    m.moe_intermediate < 1 || !(m.rms_eps > 0) || !(m.rope_theta > 0) ||
	    m.n_moe_layers < 1 || m.clip_qkv < 0 || m.sliding_window < 0)
		abort();
	if (m.attn == ATTN_MLA ? (m.qk_rope_dim % 2 != 0 || m.n_kv_heads != m.n_heads ||
				  m.head_dim != m.qk_nope_dim + m.qk_rope_dim ||
				  m.rope_dim != m.qk_rope_dim || m.kv_lora_rank < 1 ||
				  m.v_head_dim < 1 || m.q_lora_rank < 0)
			       : (m.attn != ATTN_GQA || m.head_dim % 2 != 0))
		abort();
	if (m.rope_dim < 2 || m.rope_dim % 2 != 0 || m.rope_dim > m.head_dim ||
	    !(m.attn_scale > 0) || !isfinite(m.attn_scale) || !(m.rope_attn_factor > 0) ||
	    !isfinite(m.rope_attn_factor))
		abort();
	if (m.yarn && (!(m.yarn_factor > 0) || !(m.yarn_orig_max_pos >= 1) ||
		       !(m.yarn_beta_fast > 0) || !(m.yarn_beta_slow > 0) || !(m.rope_theta > 1)))
		abort();
	if (m.router == ROUTER_SIGMOID &&
	    (m.n_group < 1 || m.n_experts % m.n_group != 0 || m.n_experts / m.n_group < 2 ||
	     m.topk_group < 1 || m.topk_group > m.n_group || !(m.routed_scaling > 0)))
		abort();
	if (m.shared_intermediate < 0 || (m.shared_gated && m.shared_intermediate < 1))
		abort();
	for (int i = 0; i < m.n_layers; i++) {
		if (m.layer_moe[i] != (m.moe_layer_index[i] >= 0))
			abort();
		if (m.layer_moe[i] && m.moe_layer_index[i] != moe++)
			abort();
		if (!m.layer_moe[i] && m.dense_intermediate < 1)
			abort();
	}
	if (moe != m.n_moe_layers)
		abort();
	/* Walking every tensor is O(layers x experts); keep it to small models
	 * so each input stays fast. */
	if ((long)m.n_layers * m.n_experts <= 4096)
		model_tensor_foreach(&m, check_tensor, &m);
	return 0;
}
