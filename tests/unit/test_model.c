/*
 * test_model.c — config.json to model description, per architecture, and
 * the tensor names and shapes that follow.  The configs are written by hand
 * here; expected values are the Hugging Face configuration classes'
 * defaults (transformers configuration_*.py) and the tensor counts are
 * worked out by hand from the modeling code's module lists.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../tap.h"
#include "engine/model.h"

static struct gw_err err;

static int parse(const char *json, struct model_desc *m)
{
	memset(&err, 0, sizeof(err));
	return model_desc_parse("cfg.json", json, strlen(json), m, &err);
}

/* Parse and expect a refusal with code and a message containing `has`. */
static void refuse(const char *json, int code, const char *has, int line)
{
	struct model_desc m;
	int r = parse(json, &m);

	if (r != code)
		tap_fail(__FILE__, line, "expected %d, got %d (%s) for %s", code, r, err.msg, json);
	if (!strstr(err.msg, has))
		tap_fail(__FILE__, line, "message \"%s\" lacks \"%s\"", err.msg, has);
	if (strncmp(err.msg, "\"cfg.json\": ", 12) != 0)
		tap_fail(__FILE__, line, "message \"%s\" does not name the file first", err.msg);
}
#define REFUSE(json, code, has) refuse(json, code, has, __LINE__)

/* The fixture generator's OLMoE config (gen_fixtures.py), as written. */
static const char olmoe_cfg[] =
	"{\"architectures\": [\"OlmoeForCausalLM\"], \"attention_bias\": false,"
	" \"clip_qkv\": null, \"hidden_act\": \"silu\", \"hidden_size\": 64,"
	" \"intermediate_size\": 32, \"max_position_embeddings\": 512, \"model_type\": \"olmoe\","
	" \"norm_topk_prob\": false, \"num_attention_heads\": 4, \"num_experts\": 8,"
	" \"num_experts_per_tok\": 2, \"num_hidden_layers\": 3, \"num_key_value_heads\": 2,"
	" \"rms_norm_eps\": 1e-05, \"rope_scaling\": null, \"rope_theta\": 10000.0,"
	" \"tie_word_embeddings\": false, \"vocab_size\": 256}";

static void test_olmoe(void)
{
	struct model_desc m;

	CHECK_INT_EQ(parse(olmoe_cfg, &m), 0);
	CHECK_INT_EQ(m.arch, ARCH_OLMOE);
	CHECK_STR_EQ(m.arch_name, "OlmoeForCausalLM");
	CHECK_INT_EQ(m.vocab, 256);
	CHECK_INT_EQ(m.hidden, 64);
	CHECK_INT_EQ(m.n_layers, 3);
	CHECK_INT_EQ(m.n_heads, 4);
	CHECK_INT_EQ(m.n_kv_heads, 2);
	CHECK_INT_EQ(m.head_dim, 16);
	CHECK_INT_EQ(m.n_experts, 8);
	CHECK_INT_EQ(m.top_k, 2);
	CHECK_INT_EQ(m.moe_intermediate, 32);
	CHECK_INT_EQ(m.dense_intermediate, 0);
	CHECK_INT_EQ(m.shared_intermediate, 0);
	CHECK(!m.norm_topk_prob);
	CHECK(!m.qkv_bias && !m.o_bias);
	CHECK_INT_EQ(m.qk_norm, QK_NORM_FULL);
	CHECK(!m.tie_embeddings);
	CHECK_NEAR(m.clip_qkv, 0.0, 0);
	CHECK_NEAR(m.rms_eps, 1e-5, 1e-12);
	CHECK_NEAR(m.rope_theta, 10000.0, 0);
	CHECK_INT_EQ(m.sliding_window, 0);
	CHECK_INT_EQ(m.n_moe_layers, 3);
	for (int i = 0; i < 3; i++) {
		CHECK(m.layer_moe[i]);
		CHECK_INT_EQ(m.moe_layer_index[i], i);
	}
}

static void test_olmoe_defaults(void)
{
	struct model_desc m;

	/* OlmoeConfig(): 50304, 2048, 16 layers, 16 heads, kv = heads, 64
	 * experts top-8 of 2048, eps 1e-5, theta 10000. */
	CHECK_INT_EQ(parse("{\"architectures\": [\"OlmoeForCausalLM\"]}", &m), 0);
	CHECK_INT_EQ(m.vocab, 50304);
	CHECK_INT_EQ(m.hidden, 2048);
	CHECK_INT_EQ(m.n_layers, 16);
	CHECK_INT_EQ(m.n_heads, 16);
	CHECK_INT_EQ(m.n_kv_heads, 16);
	CHECK_INT_EQ(m.head_dim, 128);
	CHECK_INT_EQ(m.n_experts, 64);
	CHECK_INT_EQ(m.top_k, 8);
	CHECK_INT_EQ(m.moe_intermediate, 2048);
	CHECK_NEAR(m.rms_eps, 1e-5, 1e-12);
	CHECK_NEAR(m.rope_theta, 10000.0, 0);
	CHECK(!m.norm_topk_prob);
	CHECK_INT_EQ(m.n_moe_layers, 16);
	/* attention_bias puts a bias on q, k, v and o; clip_qkv is read. */
	CHECK_INT_EQ(parse("{\"model_type\": \"olmoe\", \"attention_bias\": true, "
			   "\"clip_qkv\": 8.0, \"num_key_value_heads\": null}", &m), 0);
	CHECK(m.qkv_bias && m.o_bias);
	CHECK_NEAR(m.clip_qkv, 8.0, 0);
	CHECK_INT_EQ(m.n_kv_heads, 16);
	/* The attribute_map spelling of the expert count. */
	CHECK_INT_EQ(parse("{\"model_type\": \"olmoe\", \"num_local_experts\": 32}", &m), 0);
	CHECK_INT_EQ(m.n_experts, 32);
}

static void test_mixtral(void)
{
	struct model_desc m;

	/* MixtralConfig(): 32000, 4096, 32 layers, 32 heads, 8 KV heads, 8
	 * experts top-2 of 14336, theta 1e6, no sliding window. */
	CHECK_INT_EQ(parse("{\"model_type\": \"mixtral\"}", &m), 0);
	CHECK_INT_EQ(m.arch, ARCH_MIXTRAL);
	CHECK_STR_EQ(m.arch_name, "MixtralForCausalLM");
	CHECK_INT_EQ(m.vocab, 32000);
	CHECK_INT_EQ(m.hidden, 4096);
	CHECK_INT_EQ(m.n_layers, 32);
	CHECK_INT_EQ(m.n_heads, 32);
	CHECK_INT_EQ(m.n_kv_heads, 8);
	CHECK_INT_EQ(m.head_dim, 128);
	CHECK_INT_EQ(m.n_experts, 8);
	CHECK_INT_EQ(m.top_k, 2);
	CHECK_INT_EQ(m.moe_intermediate, 14336);
	CHECK_NEAR(m.rope_theta, 1e6, 0);
	CHECK_NEAR(m.rms_eps, 1e-5, 1e-12);
	CHECK(m.norm_topk_prob); /* always renormalized */
	CHECK_INT_EQ(m.qk_norm, QK_NORM_NONE);
	CHECK(!m.qkv_bias && !m.o_bias);
	CHECK_INT_EQ(m.sliding_window, 0);
	CHECK_INT_EQ(m.n_moe_layers, 32);
	CHECK_INT_EQ(parse("{\"architectures\": [\"MixtralForCausalLM\"], \"hidden_size\": 64, "
			   "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
			   "\"num_local_experts\": 4, \"intermediate_size\": 48, "
			   "\"sliding_window\": 4096, \"head_dim\": 32, "
			   "\"norm_topk_prob\": false}", &m), 0);
	CHECK_INT_EQ(m.n_experts, 4);
	CHECK_INT_EQ(m.moe_intermediate, 48);
	CHECK_INT_EQ(m.sliding_window, 4096);
	CHECK_INT_EQ(m.head_dim, 32);
	CHECK(m.norm_topk_prob); /* Mixtral has no such switch */
}

static void test_qwen2_moe(void)
{
	struct model_desc m;

	/* Qwen2MoeConfig(): 151936, 2048, 24 layers, 16 heads, 16 KV heads, 60
	 * experts top-4 of 1408, dense 5632, shared 5632, eps 1e-6, q/k/v bias. */
	CHECK_INT_EQ(parse("{\"architectures\": [\"Qwen2MoeForCausalLM\"]}", &m), 0);
	CHECK_INT_EQ(m.arch, ARCH_QWEN2_MOE);
	CHECK_INT_EQ(m.vocab, 151936);
	CHECK_INT_EQ(m.hidden, 2048);
	CHECK_INT_EQ(m.n_layers, 24);
	CHECK_INT_EQ(m.n_heads, 16);
	CHECK_INT_EQ(m.n_kv_heads, 16);
	CHECK_INT_EQ(m.head_dim, 128);
	CHECK_INT_EQ(m.n_experts, 60);
	CHECK_INT_EQ(m.top_k, 4);
	CHECK_INT_EQ(m.moe_intermediate, 1408);
	CHECK_INT_EQ(m.dense_intermediate, 5632);
	CHECK_INT_EQ(m.shared_intermediate, 5632);
	CHECK_NEAR(m.rms_eps, 1e-6, 1e-13);
	CHECK_NEAR(m.rope_theta, 10000.0, 0);
	CHECK(m.qkv_bias);
	CHECK(!m.o_bias);
	CHECK(!m.norm_topk_prob);
	CHECK_INT_EQ(m.qk_norm, QK_NORM_NONE);
	CHECK_INT_EQ(m.n_moe_layers, 24);
	CHECK_INT_EQ(parse("{\"model_type\": \"qwen2_moe\", \"qkv_bias\": false, "
			   "\"use_sliding_window\": false, \"sliding_window\": 512}", &m), 0);
	CHECK(!m.qkv_bias);
	CHECK_INT_EQ(m.sliding_window, 0);
}

static void test_qwen3_moe(void)
{
	struct model_desc m;

	/* Qwen3MoeConfig(): 32 heads, 4 KV heads, 128 experts top-8 of 768,
	 * dense 6144, per-head QK-norm, norm_topk_prob false. */
	CHECK_INT_EQ(parse("{\"model_type\": \"qwen3_moe\"}", &m), 0);
	CHECK_INT_EQ(m.arch, ARCH_QWEN3_MOE);
	CHECK_STR_EQ(m.arch_name, "Qwen3MoeForCausalLM");
	CHECK_INT_EQ(m.n_heads, 32);
	CHECK_INT_EQ(m.n_kv_heads, 4);
	CHECK_INT_EQ(m.head_dim, 64);
	CHECK_INT_EQ(m.n_experts, 128);
	CHECK_INT_EQ(m.top_k, 8);
	CHECK_INT_EQ(m.moe_intermediate, 768);
	CHECK_INT_EQ(m.dense_intermediate, 6144);
	CHECK_INT_EQ(m.shared_intermediate, 0);
	CHECK_INT_EQ(m.qk_norm, QK_NORM_HEAD);
	CHECK(!m.norm_topk_prob);
	CHECK(!m.qkv_bias);
	/* The fixture's shape: head_dim 32 is not hidden / heads = 16. */
	CHECK_INT_EQ(parse("{\"architectures\": [\"Qwen3MoeForCausalLM\"], \"hidden_size\": 64, "
			   "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
			   "\"head_dim\": 32, \"num_experts\": 8, \"num_experts_per_tok\": 2, "
			   "\"moe_intermediate_size\": 32, \"intermediate_size\": 96, "
			   "\"num_hidden_layers\": 3, \"mlp_only_layers\": [1], "
			   "\"norm_topk_prob\": true, \"rope_theta\": 1000000.0}", &m), 0);
	CHECK_INT_EQ(m.head_dim, 32);
	CHECK(m.norm_topk_prob);
	CHECK_NEAR(m.rope_theta, 1e6, 0);
	CHECK_INT_EQ(m.n_moe_layers, 2);
	CHECK(m.layer_moe[0] && !m.layer_moe[1] && m.layer_moe[2]);
	CHECK_INT_EQ(m.moe_layer_index[0], 0);
	CHECK_INT_EQ(m.moe_layer_index[1], -1);
	CHECK_INT_EQ(m.moe_layer_index[2], 1);
}

static void test_sparse_step(void)
{
	struct model_desc m;

	/* 6 layers, step 2: (i + 1) % 2 == 0 for i = 1, 3, 5; layer 3 dense. */
	CHECK_INT_EQ(parse("{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 6, "
			   "\"decoder_sparse_step\": 2, \"mlp_only_layers\": [3]}", &m), 0);
	CHECK_INT_EQ(m.n_moe_layers, 2);
	{
		const int idx[6] = { -1, 0, -1, -1, -1, 1 };

		for (int i = 0; i < 6; i++) {
			CHECK_INT_EQ(m.layer_moe[i], idx[i] >= 0);
			CHECK_INT_EQ(m.moe_layer_index[i], idx[i]);
		}
	}
	/* Step 3 over 7 layers: layers 2 and 5. */
	CHECK_INT_EQ(parse("{\"model_type\": \"qwen3_moe\", \"num_hidden_layers\": 7, "
			   "\"decoder_sparse_step\": 3, \"mlp_only_layers\": null}", &m), 0);
	CHECK_INT_EQ(m.n_moe_layers, 2);
	CHECK(m.layer_moe[2] && m.layer_moe[5] && !m.layer_moe[0] && !m.layer_moe[6]);
	/* OLMoE and Mixtral ignore both keys. */
	CHECK_INT_EQ(parse("{\"model_type\": \"olmoe\", \"num_hidden_layers\": 4, "
			   "\"decoder_sparse_step\": 2, \"mlp_only_layers\": [0]}", &m), 0);
	CHECK_INT_EQ(m.n_moe_layers, 4);
}

static void test_rope(void)
{
	struct model_desc m;

	CHECK_INT_EQ(parse("{\"model_type\": \"olmoe\", \"rope_parameters\": "
			   "{\"rope_type\": \"default\", \"rope_theta\": 500000.0}}", &m), 0);
	CHECK_NEAR(m.rope_theta, 500000.0, 0);
	CHECK_INT_EQ(parse("{\"model_type\": \"mixtral\", \"rope_scaling\": "
			   "{\"type\": \"default\"}}", &m), 0);
	CHECK_NEAR(m.rope_theta, 1e6, 0);
	/* A top-level rope_theta wins over rope_parameters. */
	CHECK_INT_EQ(parse("{\"model_type\": \"olmoe\", \"rope_theta\": 20000, "
			   "\"rope_parameters\": {\"rope_theta\": 30000}}", &m), 0);
	CHECK_NEAR(m.rope_theta, 20000.0, 0);
}

static void test_refuse_architecture(void)
{
	struct model_desc m;

	CHECK_INT_EQ(parse("{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\"}",
			   &m), -ENOTSUP);
	CHECK_STR_EQ(err.msg, "\"cfg.json\": architecture \"LlamaForCausalLM\" is not supported "
		     "(OLMoE, Mixtral, Qwen2-MoE, Qwen3-MoE, DeepSeek-V3, GLM-4.5 MoE)");
	REFUSE("{\"model_type\": \"llama\"}", -ENOTSUP, "model_type \"llama\" is not supported");
	/* architectures[0] decides even when model_type would be supported. */
	REFUSE("{\"architectures\": [\"DeepseekV2ForCausalLM\"], \"model_type\": \"olmoe\"}",
	       -ENOTSUP, "\"DeepseekV2ForCausalLM\" is not supported");
	REFUSE("{\"hidden_size\": 64}", -EBADMSG, "neither \"architectures\" nor \"model_type\"");
	REFUSE("{\"architectures\": \"OlmoeForCausalLM\"}", -EBADMSG,
	       "\"architectures\" must be an array");
	REFUSE("{\"architectures\": [7]}", -EBADMSG, "\"architectures\"[0] must be a string");
	REFUSE("{\"model_type\": 3}", -EBADMSG, "\"model_type\" must be a string");
}

static void test_refuse_experts(void)
{
	REFUSE("{\"model_type\": \"olmoe\", \"num_experts\": 0}", -EBADMSG,
	       "\"num_experts\" is 0");
	REFUSE("{\"model_type\": \"mixtral\", \"num_local_experts\": 0}", -EBADMSG,
	       "\"num_local_experts\" is 0");
	REFUSE("{\"model_type\": \"qwen3_moe\", \"num_experts\": 8, \"num_experts_per_tok\": 9}",
	       -EBADMSG, "num_experts_per_tok 9 is above the 8 experts");
	REFUSE("{\"model_type\": \"olmoe\", \"num_experts_per_tok\": 0}", -EBADMSG,
	       "\"num_experts_per_tok\" is 0, outside 1..");
	REFUSE("{\"model_type\": \"olmoe\", \"num_experts\": 5000}", -EBADMSG,
	       "\"num_experts\" is 5000, outside 0..4096");
	REFUSE("{\"model_type\": \"olmoe\", \"num_experts\": -3}", -EBADMSG,
	       "\"num_experts\" is -3");
	/* Every layer dense: nothing routes. */
	REFUSE("{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 2, "
	       "\"mlp_only_layers\": [0, 1]}", -ENOTSUP, "no layer is an MoE layer");
	REFUSE("{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 2, "
	       "\"decoder_sparse_step\": 3}", -ENOTSUP, "no layer is an MoE layer");
	REFUSE("{\"model_type\": \"qwen2_moe\", \"decoder_sparse_step\": 0}", -EBADMSG,
	       "\"decoder_sparse_step\" is 0");
	REFUSE("{\"model_type\": \"qwen2_moe\", \"num_hidden_layers\": 4, "
	       "\"mlp_only_layers\": [4]}", -EBADMSG, "\"mlp_only_layers\"[0] is 4, not a layer");
	REFUSE("{\"model_type\": \"qwen2_moe\", \"mlp_only_layers\": [\"1\"]}", -EBADMSG,
	       "\"mlp_only_layers\"[0] must be an integer");
	REFUSE("{\"model_type\": \"qwen2_moe\", \"mlp_only_layers\": 1}", -EBADMSG,
	       "\"mlp_only_layers\" must be an array");
}

static void test_refuse_types(void)
{
	REFUSE("{\"model_type\": \"olmoe\", \"hidden_size\": \"64\"}", -EBADMSG,
	       "\"hidden_size\" must be an integer, not a string");
	REFUSE("{\"model_type\": \"olmoe\", \"hidden_size\": 64.5}", -EBADMSG,
	       "\"hidden_size\" must be an integer, not 64.5");
	REFUSE("{\"model_type\": \"olmoe\", \"vocab_size\": true}", -EBADMSG,
	       "\"vocab_size\" must be an integer, not a boolean");
	REFUSE("{\"model_type\": \"olmoe\", \"vocab_size\": null}", -EBADMSG,
	       "\"vocab_size\" must be an integer, not null");
	REFUSE("{\"model_type\": \"olmoe\", \"num_hidden_layers\": [3]}", -EBADMSG,
	       "\"num_hidden_layers\" must be an integer, not an array");
	REFUSE("{\"model_type\": \"olmoe\", \"norm_topk_prob\": \"yes\"}", -EBADMSG,
	       "\"norm_topk_prob\" must be true or false, not a string");
	REFUSE("{\"model_type\": \"olmoe\", \"tie_word_embeddings\": 1}", -EBADMSG,
	       "\"tie_word_embeddings\" must be true or false, not a number");
	REFUSE("{\"model_type\": \"olmoe\", \"rms_norm_eps\": \"1e-5\"}", -EBADMSG,
	       "\"rms_norm_eps\" must be a number, not a string");
	REFUSE("{\"model_type\": \"olmoe\", \"rms_norm_eps\": 0}", -EBADMSG,
	       "\"rms_norm_eps\" is 0");
	REFUSE("{\"model_type\": \"olmoe\", \"rope_theta\": -1}", -EBADMSG, "\"rope_theta\" is -1");
	/* 1e400 overflows to infinity in the parser: not finite. */
	REFUSE("{\"model_type\": \"olmoe\", \"rope_theta\": 1e400}", -EBADMSG,
	       "\"rope_theta\" is inf");
	REFUSE("{\"model_type\": \"olmoe\", \"hidden_size\": 1e10}", -EBADMSG,
	       "\"hidden_size\" is 10000000000, outside 1..65536");
	REFUSE("{\"model_type\": \"olmoe\", \"num_hidden_layers\": 1025}", -EBADMSG,
	       "\"num_hidden_layers\" is 1025, outside 1..1024");
	REFUSE("{\"model_type\": \"olmoe\", \"vocab_size\": 100000000}", -EBADMSG,
	       "\"vocab_size\" is 100000000");
	REFUSE("{\"model_type\": \"olmoe\", \"clip_qkv\": \"8\"}", -EBADMSG,
	       "\"clip_qkv\" must be a number");
	REFUSE("{\"model_type\": \"olmoe\", \"hidden_size\": 64, \"hidden_size\": 128}", -EBADMSG,
	       "key \"hidden_size\" appears twice");
	REFUSE("{\"model_type\": \"mixtral\", \"sliding_window\": \"4096\"}", -EBADMSG,
	       "\"sliding_window\" must be an integer");
}

static void test_refuse_heads(void)
{
	REFUSE("{\"model_type\": \"olmoe\", \"hidden_size\": 65, \"num_attention_heads\": 4}",
	       -EBADMSG, "hidden_size 65 is not divisible by num_attention_heads 4");
	REFUSE("{\"model_type\": \"olmoe\", \"hidden_size\": 64, \"num_attention_heads\": 4, "
	       "\"num_key_value_heads\": 3}", -EBADMSG,
	       "num_attention_heads 4 is not a multiple of num_key_value_heads 3");
	REFUSE("{\"model_type\": \"olmoe\", \"hidden_size\": 64, \"num_attention_heads\": 4, "
	       "\"num_key_value_heads\": 8}", -EBADMSG, "not a multiple of num_key_value_heads 8");
	REFUSE("{\"model_type\": \"olmoe\", \"num_attention_heads\": 0}", -EBADMSG,
	       "\"num_attention_heads\" is 0");
	REFUSE("{\"model_type\": \"qwen3_moe\", \"head_dim\": 31}", -EBADMSG, "head_dim 31 is odd");
	REFUSE("{\"model_type\": \"qwen3_moe\", \"head_dim\": 0}", -EBADMSG, "\"head_dim\" is 0");
	/* head_dim given: hidden need not divide (Qwen3's case). */
	{
		struct model_desc m;

		CHECK_INT_EQ(parse("{\"model_type\": \"qwen3_moe\", \"hidden_size\": 60, "
				   "\"num_attention_heads\": 8, \"num_key_value_heads\": 4, "
				   "\"head_dim\": 16}", &m), 0);
		CHECK_INT_EQ(m.head_dim, 16);
	}
}

static void test_refuse_features(void)
{
	REFUSE("{\"model_type\": \"olmoe\", \"rope_scaling\": {\"rope_type\": \"dynamic\", "
	       "\"factor\": 4.0}}", -ENOTSUP, "\"rope_scaling\" of type \"dynamic\" is not supported "
	       "(only \"default\" and \"yarn\")");
	REFUSE("{\"model_type\": \"mixtral\", \"rope_scaling\": {\"type\": \"linear\"}}", -ENOTSUP,
	       "of type \"linear\"");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"rope_scaling\": {\"type\": \"longrope\"}}",
	       -ENOTSUP, "of type \"longrope\"");
	REFUSE("{\"model_type\": \"glm4_moe\", \"head_dim\": 16, \"rope_scaling\": "
	       "{\"rope_type\": \"llama3\", \"factor\": 8}}", -ENOTSUP, "of type \"llama3\"");
	REFUSE("{\"model_type\": \"olmoe\", \"rope_parameters\": {\"rope_type\": \"llama3\"}}",
	       -ENOTSUP, "\"rope_parameters\" of type \"llama3\"");
	REFUSE("{\"model_type\": \"olmoe\", \"rope_scaling\": 2}", -EBADMSG,
	       "\"rope_scaling\" must be an object or null");
	REFUSE("{\"model_type\": \"olmoe\", \"hidden_act\": \"gelu\"}", -ENOTSUP,
	       "hidden_act \"gelu\" is not supported");
	REFUSE("{\"model_type\": \"qwen2_moe\", \"use_sliding_window\": true}", -ENOTSUP,
	       "use_sliding_window");
	REFUSE("{\"model_type\": \"qwen3_moe\", \"use_sliding_window\": true}", -ENOTSUP,
	       "use_sliding_window");
}

/* ---- the DeepSeek-V3 family ------------------------------------------- */

/* The fixture generator's dsv3 config (gen_fixtures.py), as written. */
static const char dsv3_cfg[] =
	"{\"architectures\": [\"DeepseekV3ForCausalLM\"], \"attention_bias\": false,"
	" \"first_k_dense_replace\": 1, \"head_dim\": 8, \"hidden_act\": \"silu\","
	" \"hidden_size\": 64, \"intermediate_size\": 48, \"kv_lora_rank\": 16,"
	" \"max_position_embeddings\": 512, \"model_type\": \"deepseek_v3\","
	" \"moe_intermediate_size\": 16, \"moe_layer_freq\": 1, \"n_group\": 4,"
	" \"n_routed_experts\": 16, \"n_shared_experts\": 2, \"norm_topk_prob\": true,"
	" \"num_attention_heads\": 4, \"num_experts_per_tok\": 4, \"num_hidden_layers\": 3,"
	" \"num_key_value_heads\": 4, \"num_nextn_predict_layers\": 1, \"q_lora_rank\": 24,"
	" \"qk_nope_head_dim\": 8, \"qk_rope_head_dim\": 8, \"rms_norm_eps\": 1e-06,"
	" \"rope_scaling\": {\"beta_fast\": 32, \"beta_slow\": 1, \"factor\": 4.0, \"mscale\": 1.0,"
	" \"mscale_all_dim\": 0.8, \"original_max_position_embeddings\": 128, \"type\": \"yarn\"},"
	" \"rope_theta\": 10000.0, \"routed_scaling_factor\": 2.5, \"scoring_func\": \"sigmoid\","
	" \"tie_word_embeddings\": false, \"topk_group\": 2, \"topk_method\": \"noaux_tc\","
	" \"v_head_dim\": 12, \"vocab_size\": 256}";

/* Hugging Face's yarn_get_mscale, written out for the expected values. */
static double mscale_of(double factor, double mscale)
{
	return factor <= 1.0 ? 1.0 : 0.1 * mscale * log(factor) + 1.0;
}

static void test_deepseek_v3(void)
{
	struct model_desc m;

	CHECK_INT_EQ(parse(dsv3_cfg, &m), 0);
	CHECK_INT_EQ(m.arch, ARCH_DEEPSEEK_V3);
	CHECK_STR_EQ(m.arch_name, "DeepseekV3ForCausalLM");
	CHECK_INT_EQ(m.attn, ATTN_MLA);
	CHECK_INT_EQ(m.q_lora_rank, 24);
	CHECK_INT_EQ(m.kv_lora_rank, 16);
	CHECK_INT_EQ(m.qk_nope_dim, 8);
	CHECK_INT_EQ(m.qk_rope_dim, 8);
	CHECK_INT_EQ(m.v_head_dim, 12);
	CHECK_INT_EQ(m.head_dim, 16);
	CHECK_INT_EQ(m.rope_dim, 8);
	CHECK(m.rope_interleave); /* absent: DeepseekV3Config's default */
	CHECK_NEAR(m.mla_eps, 1e-6, 0);
	CHECK(!m.qkv_bias && !m.o_bias);
	CHECK_INT_EQ(m.qk_norm, QK_NORM_NONE);
	CHECK_INT_EQ(m.router, ROUTER_SIGMOID);
	CHECK_INT_EQ(m.n_experts, 16);
	CHECK_INT_EQ(m.top_k, 4);
	CHECK_INT_EQ(m.n_group, 4);
	CHECK_INT_EQ(m.topk_group, 2);
	CHECK(m.norm_topk_prob);
	CHECK_NEAR(m.routed_scaling, 2.5, 0);
	CHECK_INT_EQ(m.moe_intermediate, 16);
	CHECK_INT_EQ(m.dense_intermediate, 48);
	CHECK_INT_EQ(m.shared_intermediate, 32); /* 16 x 2 shared experts, one MLP */
	CHECK(!m.shared_gated);
	/* first_k_dense_replace 1: layer 0 dense, 1 and 2 MoE; the MTP layer
	 * (num_nextn_predict_layers) is not a layer here. */
	CHECK_INT_EQ(m.n_layers, 3);
	CHECK_INT_EQ(m.n_moe_layers, 2);
	CHECK(!m.layer_moe[0] && m.layer_moe[1] && m.layer_moe[2]);
	CHECK_INT_EQ(m.moe_layer_index[0], -1);
	CHECK_INT_EQ(m.moe_layer_index[2], 1);
	/* YaRN: factor 4 over 128 original positions; attention factor
	 * mscale(4, 1) / mscale(4, 0.8); softmax scale 16^-0.5 mscale(4, 0.8)^2. */
	CHECK(m.yarn);
	CHECK_NEAR(m.yarn_factor, 4.0, 0);
	CHECK_NEAR(m.yarn_orig_max_pos, 128.0, 0);
	CHECK_NEAR(m.yarn_beta_fast, 32.0, 0);
	CHECK_NEAR(m.yarn_beta_slow, 1.0, 0);
	CHECK(m.yarn_truncate);
	CHECK_NEAR(m.rope_attn_factor, (0.1 * log(4.0) + 1) / (0.08 * log(4.0) + 1), 1e-15);
	CHECK_NEAR(m.attn_scale, 0.25 * pow(0.08 * log(4.0) + 1, 2), 1e-15);
	CHECK_NEAR(m.rms_eps, 1e-6, 0);
	CHECK_INT_EQ(m.max_position_embeddings, 512);
}

static void test_deepseek_v3_defaults(void)
{
	struct model_desc m;

	/* DeepseekV3Config(): 129280, 7168, 61 layers, 128 heads (and 128 KV
	 * heads), 256 experts top-8 in 8 groups keeping 4, 2048 per expert, one
	 * shared, 18432 dense for the first 3 layers, q_lora 1536, kv_lora 512,
	 * qk 128 + 64, v 128, scaling 2.5, renormalized, eps 1e-6. */
	CHECK_INT_EQ(parse("{\"architectures\": [\"DeepseekV3ForCausalLM\"]}", &m), 0);
	CHECK_INT_EQ(m.vocab, 129280);
	CHECK_INT_EQ(m.hidden, 7168);
	CHECK_INT_EQ(m.n_layers, 61);
	CHECK_INT_EQ(m.n_heads, 128);
	CHECK_INT_EQ(m.n_kv_heads, 128);
	CHECK_INT_EQ(m.n_experts, 256);
	CHECK_INT_EQ(m.top_k, 8);
	CHECK_INT_EQ(m.n_group, 8);
	CHECK_INT_EQ(m.topk_group, 4);
	CHECK_INT_EQ(m.moe_intermediate, 2048);
	CHECK_INT_EQ(m.shared_intermediate, 2048);
	CHECK_INT_EQ(m.dense_intermediate, 18432);
	CHECK_INT_EQ(m.n_moe_layers, 58);
	CHECK(!m.layer_moe[2] && m.layer_moe[3]);
	CHECK_INT_EQ(m.q_lora_rank, 1536);
	CHECK_INT_EQ(m.kv_lora_rank, 512);
	CHECK_INT_EQ(m.head_dim, 192);
	CHECK_INT_EQ(m.v_head_dim, 128);
	CHECK_INT_EQ(m.rope_dim, 64);
	CHECK(m.rope_interleave);
	CHECK(m.norm_topk_prob);
	CHECK_NEAR(m.routed_scaling, 2.5, 0);
	CHECK_NEAR(m.rms_eps, 1e-6, 0);
	CHECK_NEAR(m.rope_theta, 10000.0, 0);
	CHECK(!m.yarn);
	CHECK_NEAR(m.rope_attn_factor, 1.0, 0);
	CHECK_NEAR(m.attn_scale, 1.0 / sqrt(192.0), 1e-15);
	CHECK_INT_EQ(m.max_position_embeddings, 4096);

	/* DeepSeek-V3's released YaRN: factor 40, mscale = mscale_all_dim = 1,
	 * so cos and sin are unscaled and the softmax scale grows by
	 * mscale(40, 1)^2.  q_lora_rank null is a plain q_proj.  Kimi K2 names
	 * itself kimi_k2 but declares this class. */
	CHECK_INT_EQ(parse("{\"architectures\": [\"DeepseekV3ForCausalLM\"], "
			   "\"model_type\": \"kimi_k2\", \"q_lora_rank\": null, "
			   "\"n_routed_experts\": 384, \"n_group\": 1, \"topk_group\": 1, "
			   "\"max_position_embeddings\": 163840, \"rope_scaling\": {\"beta_fast\": 32, "
			   "\"beta_slow\": 1, \"factor\": 40, \"mscale\": 1.0, \"mscale_all_dim\": 1.0, "
			   "\"original_max_position_embeddings\": 4096, \"type\": \"yarn\"}}", &m), 0);
	CHECK_INT_EQ(m.q_lora_rank, 0);
	CHECK_INT_EQ(m.n_experts, 384);
	CHECK_NEAR(m.rope_attn_factor, 1.0, 1e-15);
	CHECK_NEAR(m.attn_scale, pow(192.0, -0.5) * pow(mscale_of(40, 1.0), 2), 1e-15);
	CHECK_NEAR(m.yarn_orig_max_pos, 4096.0, 0);
	/* No mscale_all_dim: the softmax scale is plain, and the attention
	 * factor mscale(factor); no original length: max_position_embeddings. */
	CHECK_INT_EQ(parse("{\"model_type\": \"deepseek_v3\", \"rope_scaling\": "
			   "{\"rope_type\": \"yarn\", \"factor\": 8, \"beta_fast\": 0}}", &m), 0);
	CHECK_NEAR(m.attn_scale, pow(192.0, -0.5), 1e-15);
	CHECK_NEAR(m.rope_attn_factor, mscale_of(8, 1.0), 1e-15);
	CHECK_NEAR(m.yarn_orig_max_pos, 4096.0, 0);
	CHECK_NEAR(m.yarn_beta_fast, 32.0, 0); /* `or 32`: 0 means the default */
	/* attention_factor given wins; truncate read. */
	CHECK_INT_EQ(parse("{\"model_type\": \"deepseek_v3\", \"rope_interleave\": false, "
			   "\"attention_bias\": true, \"rope_scaling\": {\"rope_type\": \"yarn\", "
			   "\"factor\": 8, \"attention_factor\": 0.5, \"truncate\": false}}", &m), 0);
	CHECK_NEAR(m.rope_attn_factor, 0.5, 0);
	CHECK(!m.yarn_truncate);
	CHECK(!m.rope_interleave);
	CHECK(m.o_bias && !m.qkv_bias);
}

/* A GLM-4.5-shaped config (its released values), and the fixtures' GLM. */
static void test_glm4_moe(void)
{
	struct model_desc m;

	CHECK_INT_EQ(parse("{\"architectures\": [\"Glm4MoeForCausalLM\"], \"attention_bias\": true,"
			   " \"first_k_dense_replace\": 3, \"head_dim\": 128, \"hidden_size\": 5120,"
			   " \"intermediate_size\": 12288, \"max_position_embeddings\": 131072,"
			   " \"moe_intermediate_size\": 1536, \"n_group\": 1, \"n_routed_experts\": 160,"
			   " \"n_shared_experts\": 1, \"norm_topk_prob\": true,"
			   " \"num_attention_heads\": 96, \"num_experts_per_tok\": 8,"
			   " \"num_hidden_layers\": 92, \"num_key_value_heads\": 8,"
			   " \"num_nextn_predict_layers\": 1, \"partial_rotary_factor\": 0.5,"
			   " \"rms_norm_eps\": 1e-05, \"rope_scaling\": null, \"rope_theta\": 1000000,"
			   " \"routed_scaling_factor\": 2.5, \"topk_group\": 1, \"use_qk_norm\": true,"
			   " \"vocab_size\": 151552}", &m), 0);
	CHECK_INT_EQ(m.arch, ARCH_GLM4_MOE);
	CHECK_INT_EQ(m.attn, ATTN_GQA);
	CHECK_INT_EQ(m.head_dim, 128);
	CHECK_INT_EQ(m.rope_dim, 64);
	CHECK(!m.rope_interleave);
	CHECK(m.qkv_bias && !m.o_bias);
	CHECK_INT_EQ(m.qk_norm, QK_NORM_HEAD);
	CHECK_INT_EQ(m.router, ROUTER_SIGMOID);
	CHECK_INT_EQ(m.n_experts, 160);
	CHECK_INT_EQ(m.shared_intermediate, 1536);
	CHECK_INT_EQ(m.dense_intermediate, 12288);
	CHECK_INT_EQ(m.n_moe_layers, 89);
	CHECK_NEAR(m.attn_scale, 1.0 / sqrt(128.0), 1e-15);
	CHECK_NEAR(m.routed_scaling, 2.5, 0);

	/* Glm4MoeConfig() defaults (head_dim given, as hidden 4096 / 96 heads
	 * is not whole): 128 experts top-8, one group, 1408 per expert, one
	 * shared, the first layer dense, scaling 1, partial rotary 0.5, no
	 * QK-norm, no biases, eps 1e-5. */
	CHECK_INT_EQ(parse("{\"model_type\": \"glm4_moe\", \"head_dim\": 128}", &m), 0);
	CHECK_INT_EQ(m.vocab, 151552);
	CHECK_INT_EQ(m.n_layers, 46);
	CHECK_INT_EQ(m.n_heads, 96);
	CHECK_INT_EQ(m.n_kv_heads, 8);
	CHECK_INT_EQ(m.n_experts, 128);
	CHECK_INT_EQ(m.top_k, 8);
	CHECK_INT_EQ(m.n_group, 1);
	CHECK_INT_EQ(m.topk_group, 1);
	CHECK_INT_EQ(m.moe_intermediate, 1408);
	CHECK_INT_EQ(m.shared_intermediate, 1408);
	CHECK_INT_EQ(m.dense_intermediate, 10944);
	CHECK_INT_EQ(m.n_moe_layers, 45);
	CHECK(!m.layer_moe[0]);
	CHECK_NEAR(m.routed_scaling, 1.0, 0);
	CHECK(m.norm_topk_prob);
	CHECK_INT_EQ(m.rope_dim, 64);
	CHECK_INT_EQ(m.qk_norm, QK_NORM_NONE);
	CHECK(!m.qkv_bias && !m.o_bias);
	CHECK_NEAR(m.rms_eps, 1e-5, 0);
	CHECK_INT_EQ(m.max_position_embeddings, 131072);
	/* partial_rotary_factor from transformers v5's rope_parameters; YaRN
	 * without mscale: cos and sin scaled by mscale(factor). */
	CHECK_INT_EQ(parse("{\"model_type\": \"glm4_moe\", \"hidden_size\": 64, "
			   "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"rope_parameters\": {\"rope_type\": \"yarn\", "
			   "\"factor\": 2.0, \"partial_rotary_factor\": 0.25, \"rope_theta\": 500.0}}",
			   &m), 0);
	CHECK_INT_EQ(m.head_dim, 16);
	CHECK_INT_EQ(m.rope_dim, 4);
	CHECK_NEAR(m.rope_theta, 500.0, 0);
	CHECK_NEAR(m.rope_attn_factor, 0.1 * log(2.0) + 1.0, 1e-15);
	CHECK_NEAR(m.attn_scale, 0.25, 1e-15);
}

/* YaRN in the other families: frequencies and the cos/sin factor, never
 * the softmax scale (only DeepseekV3Attention reads mscale_all_dim). */
static void test_yarn_other_archs(void)
{
	struct model_desc m;

	CHECK_INT_EQ(parse("{\"model_type\": \"qwen3_moe\", \"head_dim\": 32, \"rope_scaling\": "
			   "{\"rope_type\": \"yarn\", \"factor\": 4.0, "
			   "\"original_max_position_embeddings\": 32768, \"mscale_all_dim\": 1.0}}",
			   &m), 0);
	CHECK(m.yarn);
	CHECK_NEAR(m.rope_attn_factor, mscale_of(4.0, 1.0), 1e-15);
	CHECK_NEAR(m.attn_scale, pow(32.0, -0.5), 1e-15);
	CHECK_INT_EQ(m.rope_dim, 32);
	CHECK_INT_EQ(parse("{\"model_type\": \"olmoe\", \"rope_scaling\": {\"type\": \"yarn\", "
			   "\"factor\": 2}}", &m), 0);
	CHECK(m.yarn);
	CHECK_NEAR(m.yarn_orig_max_pos, 4096.0, 0); /* OlmoeConfig's max_position_embeddings */
	/* A default-typed rope_scaling after a yarn rope_parameters: v5 takes
	 * rope_scaling. */
	CHECK_INT_EQ(parse("{\"model_type\": \"olmoe\", \"rope_parameters\": {\"rope_type\": "
			   "\"yarn\", \"factor\": 2}, \"rope_scaling\": {\"rope_type\": \"default\"}}",
			   &m), 0);
	CHECK(!m.yarn);
}

static void test_refuse_deepseek(void)
{
	REFUSE("{\"model_type\": \"deepseek_v3\", \"moe_layer_freq\": 2}", -ENOTSUP,
	       "moe_layer_freq 2 is not supported");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"scoring_func\": \"softmax\"}", -ENOTSUP,
	       "scoring_func \"softmax\" is not supported");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"topk_method\": \"greedy\"}", -ENOTSUP,
	       "topk_method \"greedy\" is not supported");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"n_routed_experts\": 12, \"n_group\": 8}",
	       -EBADMSG, "n_group 8 does not split the 12 experts");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"n_routed_experts\": 8, \"n_group\": 8}",
	       -EBADMSG, "groups of at least two");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"n_group\": 4, \"topk_group\": 5}", -EBADMSG,
	       "topk_group 5 is above n_group 4");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"topk_group\": 0}", -EBADMSG,
	       "\"topk_group\" is 0");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"num_attention_heads\": 4, "
	       "\"num_key_value_heads\": 2}", -ENOTSUP, "num_key_value_heads 2 differs");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"head_dim\": 128}", -ENOTSUP,
	       "head_dim must equal qk_rope_head_dim 64");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"qk_rope_head_dim\": 63}", -EBADMSG,
	       "qk_rope_head_dim 63 is odd");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"q_lora_rank\": 0}", -EBADMSG,
	       "\"q_lora_rank\" is 0");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"kv_lora_rank\": \"512\"}", -EBADMSG,
	       "\"kv_lora_rank\" must be an integer");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"routed_scaling_factor\": 0}", -EBADMSG,
	       "\"routed_scaling_factor\" is 0");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"rope_interleave\": 1}", -EBADMSG,
	       "\"rope_interleave\" must be true or false");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"num_hidden_layers\": 3, "
	       "\"first_k_dense_replace\": 3}", -ENOTSUP,
	       "no layer is an MoE layer (first_k_dense_replace 3 of 3 layers)");
	REFUSE("{\"model_type\": \"deepseek_v3\", \"partial_rotary_factor\": 0.5}", -ENOTSUP,
	       "partial_rotary_factor 0.5 is not supported for DeepseekV3ForCausalLM");
	REFUSE("{\"model_type\": \"olmoe\", \"partial_rotary_factor\": 0.5}", -ENOTSUP,
	       "partial_rotary_factor 0.5 is not supported for OlmoeForCausalLM");
	REFUSE("{\"model_type\": \"glm4_moe\", \"head_dim\": 16, \"partial_rotary_factor\": 0.34}",
	       -EBADMSG, "the rotary width 5 (head_dim 16 x partial_rotary_factor 0.34) is not a "
	       "positive even number");
	REFUSE("{\"model_type\": \"glm4_moe\", \"head_dim\": 16, \"partial_rotary_factor\": 0}",
	       -EBADMSG, "\"partial_rotary_factor\" is 0");
	REFUSE("{\"model_type\": \"glm4_moe\", \"head_dim\": 16, \"use_qk_norm\": \"yes\"}",
	       -EBADMSG, "\"use_qk_norm\" must be true or false");
	REFUSE("{\"model_type\": \"olmoe\", \"rope_scaling\": {\"rope_type\": \"yarn\"}}", -EBADMSG,
	       "\"rope_scaling\" of type \"yarn\" needs a positive factor");
	REFUSE("{\"model_type\": \"olmoe\", \"rope_scaling\": {\"rope_type\": \"yarn\", "
	       "\"factor\": \"4\"}}", -EBADMSG, "\"rope_scaling\".factor must be a number, not a string");
	REFUSE("{\"model_type\": \"olmoe\", \"rope_scaling\": {\"rope_type\": \"yarn\", "
	       "\"factor\": 4, \"beta_fast\": -1}}", -EBADMSG, "\"rope_scaling\".beta_fast is -1");
	REFUSE("{\"model_type\": \"olmoe\", \"rope_scaling\": {\"rope_type\": \"yarn\", "
	       "\"factor\": 4, \"original_max_position_embeddings\": 100.5}}", -EBADMSG,
	       "original_max_position_embeddings must be an integer");
	REFUSE("{\"model_type\": \"olmoe\", \"rope_scaling\": {\"rope_type\": \"yarn\", "
	       "\"factor\": 4, \"truncate\": 0}}", -EBADMSG, "\"rope_scaling\".truncate must be true");
	REFUSE("{\"model_type\": \"olmoe\", \"rope_parameters\": {\"rope_type\": \"yarn\", "
	       "\"factor\": 4, \"attention_factor\": 0}}", -EBADMSG,
	       "\"rope_parameters\".attention_factor must be positive");
	REFUSE("{\"model_type\": \"olmoe\", \"rope_theta\": 1, \"rope_scaling\": {\"rope_type\": "
	       "\"yarn\", \"factor\": 4}}", -EBADMSG, "rope_theta 1 with YaRN must be above 1");
}

static void test_refuse_json(void)
{
	struct model_desc m;

	memset(&m, 0x5a, sizeof(m));
	REFUSE("", -EBADMSG, "empty");
	REFUSE("{\"model_type\": \"olmoe\"", -EBADMSG, "not JSON");
	REFUSE("{\"model_type\": \"olmoe\"} {}", -EBADMSG, "trailing data at byte 24");
	REFUSE("[\"olmoe\"]", -EBADMSG, "not a JSON object but an array");
	REFUSE("\"olmoe\"", -EBADMSG, "not a JSON object but a string");
	REFUSE("{\"model_type\": \"olm\\u00", -EBADMSG, "not JSON");
	/* A NUL inside the given length is not white space. */
	CHECK_INT_EQ(model_desc_parse("cfg.json", "{\"model_type\": \"olmoe\"}\0", 25, &m, &err),
		     -EBADMSG);
	CHECK_STR_HAS(err.msg, "trailing data");
	/* Nothing written on failure. */
	CHECK_INT_EQ(m.vocab, 0x5a5a5a5a);
}

/* ---- tensor names and shapes ------------------------------------------ */

static char *name_of(const struct model_desc *m, enum model_tensor k, int l, int e)
{
	static char buf[256];
	int r = model_tensor_name(m, k, l, e, buf, sizeof(buf));

	if (r < 0)
		snprintf(buf, sizeof(buf), "error %d", r);
	return buf;
}

static void check_shape(const struct model_desc *m, enum model_tensor k, int64_t a, int64_t b,
			int line)
{
	int64_t s[2] = { -1, -1 };
	int nd = -1, r = model_tensor_shape(m, k, s, &nd);

	if (r != 0 || nd != (b ? 2 : 1) || s[0] != a || (b && s[1] != b))
		tap_fail(__FILE__, line, "kind %d: r %d ndim %d shape [%lld, %lld], expected "
			 "[%lld, %lld]", (int)k, r, nd, (long long)s[0], (long long)s[1],
			 (long long)a, (long long)b);
}
#define SHAPE(m, k, a, b) check_shape(m, k, a, b, __LINE__)

static int count_fn(void *ud, enum model_tensor kind, int layer, int expert, const char *name)
{
	(void)kind;
	(void)layer;
	(void)expert;
	(void)name;
	(*(int *)ud)++;
	return 0;
}

static int count(const struct model_desc *m)
{
	int n = 0;

	CHECK_INT_EQ(model_tensor_foreach(m, count_fn, &n), 0);
	return n;
}

static void test_names_olmoe(void)
{
	struct model_desc m;
	char small[8];

	CHECK_INT_EQ(parse(olmoe_cfg, &m), 0);
	CHECK_STR_EQ(name_of(&m, MT_EMBED, 0, 0), "model.embed_tokens.weight");
	CHECK_STR_EQ(name_of(&m, MT_FINAL_NORM, 0, 0), "model.norm.weight");
	CHECK_STR_EQ(name_of(&m, MT_LM_HEAD, 0, 0), "lm_head.weight");
	CHECK_STR_EQ(name_of(&m, MT_ATTN_NORM, 2, 0), "model.layers.2.input_layernorm.weight");
	CHECK_STR_EQ(name_of(&m, MT_FFN_NORM, 0, 0),
		     "model.layers.0.post_attention_layernorm.weight");
	CHECK_STR_EQ(name_of(&m, MT_Q, 1, 0), "model.layers.1.self_attn.q_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_O, 1, 0), "model.layers.1.self_attn.o_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_Q_NORM, 1, 0), "model.layers.1.self_attn.q_norm.weight");
	CHECK_STR_EQ(name_of(&m, MT_K_NORM, 1, 0), "model.layers.1.self_attn.k_norm.weight");
	CHECK_STR_EQ(name_of(&m, MT_ROUTER, 0, 0), "model.layers.0.mlp.gate.weight");
	CHECK_STR_EQ(name_of(&m, MT_EXPERT_GATE, 2, 7),
		     "model.layers.2.mlp.experts.7.gate_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_EXPERT_UP, 2, 7), "model.layers.2.mlp.experts.7.up_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_EXPERT_DOWN, 0, 0),
		     "model.layers.0.mlp.experts.0.down_proj.weight");
	/* Not in this model, or out of range. */
	CHECK_INT_EQ(model_tensor_name(&m, MT_Q_BIAS, 0, 0, small, sizeof(small)), -ENOENT);
	CHECK_INT_EQ(model_tensor_name(&m, MT_SHARED_GATE, 0, 0, small, sizeof(small)), -ENOENT);
	CHECK_INT_EQ(model_tensor_name(&m, MT_DENSE_UP, 0, 0, small, sizeof(small)), -ENOENT);
	CHECK_INT_EQ(model_tensor_name(&m, MT_Q, 3, 0, small, sizeof(small)), -EINVAL);
	CHECK_INT_EQ(model_tensor_name(&m, MT_Q, -1, 0, small, sizeof(small)), -EINVAL);
	CHECK_INT_EQ(model_tensor_name(&m, MT_EXPERT_UP, 0, 8, small, sizeof(small)), -EINVAL);
	CHECK_INT_EQ(model_tensor_name(&m, MT_COUNT, 0, 0, small, sizeof(small)), -EINVAL);
	CHECK_INT_EQ(model_tensor_name(&m, MT_Q, 0, 0, small, sizeof(small)), -ENAMETOOLONG);
	/* Shapes: H 64, 4 heads of 16, 2 KV heads, 8 experts of 32. */
	SHAPE(&m, MT_EMBED, 256, 64);
	SHAPE(&m, MT_LM_HEAD, 256, 64);
	SHAPE(&m, MT_FINAL_NORM, 64, 0);
	SHAPE(&m, MT_Q, 64, 64);
	SHAPE(&m, MT_K, 32, 64);
	SHAPE(&m, MT_V, 32, 64);
	SHAPE(&m, MT_O, 64, 64);
	SHAPE(&m, MT_Q_NORM, 64, 0);
	SHAPE(&m, MT_K_NORM, 32, 0);
	SHAPE(&m, MT_ROUTER, 8, 64);
	SHAPE(&m, MT_EXPERT_GATE, 32, 64);
	SHAPE(&m, MT_EXPERT_UP, 32, 64);
	SHAPE(&m, MT_EXPERT_DOWN, 64, 32);
	/* Per layer: 2 norms, q k v o, q/k norm, router, 8 x 3 experts; then
	 * embed, final norm, lm_head. */
	CHECK_INT_EQ(count(&m), 3 * (2 + 4 + 2 + 1 + 8 * 3) + 3);
}

static void test_names_mixtral(void)
{
	struct model_desc m;

	CHECK_INT_EQ(parse("{\"model_type\": \"mixtral\", \"vocab_size\": 256, \"hidden_size\": 64, "
			   "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
			   "\"num_hidden_layers\": 3, \"num_local_experts\": 4, "
			   "\"intermediate_size\": 48, \"tie_word_embeddings\": true}", &m), 0);
	CHECK_STR_EQ(name_of(&m, MT_ROUTER, 1, 0), "model.layers.1.block_sparse_moe.gate.weight");
	CHECK_STR_EQ(name_of(&m, MT_EXPERT_GATE, 1, 3),
		     "model.layers.1.block_sparse_moe.experts.3.w1.weight");
	CHECK_STR_EQ(name_of(&m, MT_EXPERT_UP, 1, 3),
		     "model.layers.1.block_sparse_moe.experts.3.w3.weight");
	CHECK_STR_EQ(name_of(&m, MT_EXPERT_DOWN, 1, 3),
		     "model.layers.1.block_sparse_moe.experts.3.w2.weight");
	CHECK_STR_EQ(name_of(&m, MT_LM_HEAD, 0, 0), "error -2"); /* tied */
	CHECK_STR_EQ(name_of(&m, MT_Q_NORM, 0, 0), "error -2");
	SHAPE(&m, MT_EXPERT_GATE, 48, 64);
	SHAPE(&m, MT_EXPERT_DOWN, 64, 48);
	SHAPE(&m, MT_ROUTER, 4, 64);
	/* Tied: no lm_head. */
	CHECK_INT_EQ(count(&m), 3 * (2 + 4 + 1 + 4 * 3) + 2);
}

static void test_names_qwen2(void)
{
	struct model_desc m;

	CHECK_INT_EQ(parse("{\"model_type\": \"qwen2_moe\", \"vocab_size\": 256, "
			   "\"hidden_size\": 64, \"num_attention_heads\": 4, "
			   "\"num_key_value_heads\": 2, \"num_hidden_layers\": 3, "
			   "\"num_experts\": 8, \"num_experts_per_tok\": 2, "
			   "\"moe_intermediate_size\": 32, \"intermediate_size\": 96, "
			   "\"shared_expert_intermediate_size\": 48, \"mlp_only_layers\": [1]}",
			   &m), 0);
	CHECK_STR_EQ(name_of(&m, MT_Q_BIAS, 0, 0), "model.layers.0.self_attn.q_proj.bias");
	CHECK_STR_EQ(name_of(&m, MT_K_BIAS, 0, 0), "model.layers.0.self_attn.k_proj.bias");
	CHECK_STR_EQ(name_of(&m, MT_V_BIAS, 0, 0), "model.layers.0.self_attn.v_proj.bias");
	CHECK_STR_EQ(name_of(&m, MT_O_BIAS, 0, 0), "error -2");
	CHECK_STR_EQ(name_of(&m, MT_SHARED_GATE, 0, 0),
		     "model.layers.0.mlp.shared_expert.gate_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_SHARED_UP, 2, 0),
		     "model.layers.2.mlp.shared_expert.up_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_SHARED_DOWN, 2, 0),
		     "model.layers.2.mlp.shared_expert.down_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_SHARED_EXPERT_GATE, 2, 0),
		     "model.layers.2.mlp.shared_expert_gate.weight");
	CHECK_STR_EQ(name_of(&m, MT_DENSE_GATE, 1, 0), "model.layers.1.mlp.gate_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_DENSE_UP, 1, 0), "model.layers.1.mlp.up_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_DENSE_DOWN, 1, 0), "model.layers.1.mlp.down_proj.weight");
	/* The dense layer has no router or experts; MoE layers no dense MLP. */
	CHECK_STR_EQ(name_of(&m, MT_ROUTER, 1, 0), "error -2");
	CHECK_STR_EQ(name_of(&m, MT_SHARED_GATE, 1, 0), "error -2");
	CHECK_STR_EQ(name_of(&m, MT_DENSE_GATE, 0, 0), "error -2");
	SHAPE(&m, MT_Q_BIAS, 64, 0);
	SHAPE(&m, MT_K_BIAS, 32, 0);
	SHAPE(&m, MT_SHARED_GATE, 48, 64);
	SHAPE(&m, MT_SHARED_DOWN, 64, 48);
	SHAPE(&m, MT_SHARED_EXPERT_GATE, 1, 64);
	SHAPE(&m, MT_DENSE_GATE, 96, 64);
	SHAPE(&m, MT_DENSE_DOWN, 64, 96);
	SHAPE(&m, MT_EXPERT_UP, 32, 64);
	/* MoE layers: 2 norms, 4 proj, 3 biases, router, 24 experts, 3 shared,
	 * shared gate; the dense layer: 2 + 4 + 3 + 3. */
	CHECK_INT_EQ(count(&m), 2 * (2 + 4 + 3 + 1 + 8 * 3 + 3 + 1) + (2 + 4 + 3 + 3) + 3);
}

static void test_names_qwen3(void)
{
	struct model_desc m;

	CHECK_INT_EQ(parse("{\"model_type\": \"qwen3_moe\", \"vocab_size\": 256, "
			   "\"hidden_size\": 64, \"num_attention_heads\": 4, "
			   "\"num_key_value_heads\": 2, \"head_dim\": 32, \"num_hidden_layers\": 3, "
			   "\"num_experts\": 8, \"num_experts_per_tok\": 2, "
			   "\"moe_intermediate_size\": 32, \"intermediate_size\": 96, "
			   "\"mlp_only_layers\": [1]}", &m), 0);
	SHAPE(&m, MT_Q, 128, 64);
	SHAPE(&m, MT_K, 64, 64);
	SHAPE(&m, MT_O, 64, 128);
	SHAPE(&m, MT_Q_NORM, 32, 0);
	SHAPE(&m, MT_K_NORM, 32, 0);
	CHECK_STR_EQ(name_of(&m, MT_Q_BIAS, 0, 0), "error -2");
	CHECK_STR_EQ(name_of(&m, MT_SHARED_GATE, 0, 0), "error -2");
	CHECK_INT_EQ(count(&m), 2 * (2 + 4 + 2 + 1 + 8 * 3) + (2 + 4 + 2 + 3) + 3);
}

static void test_names_deepseek_v3(void)
{
	struct model_desc m;

	CHECK_INT_EQ(parse(dsv3_cfg, &m), 0);
	CHECK_STR_EQ(name_of(&m, MT_Q_A, 1, 0), "model.layers.1.self_attn.q_a_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_Q_A_NORM, 1, 0),
		     "model.layers.1.self_attn.q_a_layernorm.weight");
	CHECK_STR_EQ(name_of(&m, MT_Q_B, 1, 0), "model.layers.1.self_attn.q_b_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_KV_A, 0, 0),
		     "model.layers.0.self_attn.kv_a_proj_with_mqa.weight");
	CHECK_STR_EQ(name_of(&m, MT_KV_A_NORM, 0, 0),
		     "model.layers.0.self_attn.kv_a_layernorm.weight");
	CHECK_STR_EQ(name_of(&m, MT_KV_B, 0, 0), "model.layers.0.self_attn.kv_b_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_ROUTER_BIAS, 2, 0),
		     "model.layers.2.mlp.gate.e_score_correction_bias");
	CHECK_STR_EQ(name_of(&m, MT_SHARED_UP, 2, 0),
		     "model.layers.2.mlp.shared_experts.up_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_DENSE_GATE, 0, 0), "model.layers.0.mlp.gate_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_EXPERT_DOWN, 1, 15),
		     "model.layers.1.mlp.experts.15.down_proj.weight");
	/* No q_proj with a q LoRA, no k/v projections, no biases, no shared
	 * expert gate, no router on the dense layer. */
	CHECK_STR_EQ(name_of(&m, MT_Q, 1, 0), "error -2");
	CHECK_STR_EQ(name_of(&m, MT_K, 1, 0), "error -2");
	CHECK_STR_EQ(name_of(&m, MT_Q_A_BIAS, 1, 0), "error -2");
	CHECK_STR_EQ(name_of(&m, MT_SHARED_EXPERT_GATE, 1, 0), "error -2");
	CHECK_STR_EQ(name_of(&m, MT_ROUTER_BIAS, 0, 0), "error -2");
	SHAPE(&m, MT_Q_A, 24, 64);
	SHAPE(&m, MT_Q_A_NORM, 24, 0);
	SHAPE(&m, MT_Q_B, 4 * 16, 24);
	SHAPE(&m, MT_KV_A, 16 + 8, 64);
	SHAPE(&m, MT_KV_A_NORM, 16, 0);
	SHAPE(&m, MT_KV_B, 4 * (8 + 12), 16);
	SHAPE(&m, MT_O, 64, 4 * 12);
	SHAPE(&m, MT_ROUTER, 16, 64);
	SHAPE(&m, MT_ROUTER_BIAS, 16, 0);
	SHAPE(&m, MT_SHARED_GATE, 32, 64);
	SHAPE(&m, MT_SHARED_DOWN, 64, 32);
	SHAPE(&m, MT_DENSE_UP, 48, 64);
	/* Per layer 2 norms and 7 attention tensors (q_a, q_a_norm, q_b, kv_a,
	 * kv_a_norm, kv_b, o); MoE layers router, bias, 16 x 3 experts, 3
	 * shared; the dense layer 3; embed, final norm, lm_head. */
	CHECK_INT_EQ(count(&m), 3 * (2 + 7) + 2 * (2 + 16 * 3 + 3) + 3 + 3);

	/* q_lora_rank null and attention_bias: a plain q_proj (never biased),
	 * biases on kv_a_proj_with_mqa and o_proj. */
	CHECK_INT_EQ(parse("{\"model_type\": \"deepseek_v3\", \"q_lora_rank\": null, "
			   "\"attention_bias\": true, \"num_hidden_layers\": 2, "
			   "\"first_k_dense_replace\": 0, \"n_routed_experts\": 8, \"n_group\": 2, "
			   "\"topk_group\": 1, \"num_experts_per_tok\": 2}", &m), 0);
	CHECK_STR_EQ(name_of(&m, MT_Q, 0, 0), "model.layers.0.self_attn.q_proj.weight");
	CHECK_STR_EQ(name_of(&m, MT_Q_A, 0, 0), "error -2");
	CHECK_STR_EQ(name_of(&m, MT_Q_BIAS, 0, 0), "error -2");
	CHECK_STR_EQ(name_of(&m, MT_KV_A_BIAS, 0, 0),
		     "model.layers.0.self_attn.kv_a_proj_with_mqa.bias");
	CHECK_STR_EQ(name_of(&m, MT_O_BIAS, 0, 0), "model.layers.0.self_attn.o_proj.bias");
	SHAPE(&m, MT_Q, 128 * 192, 7168);
	SHAPE(&m, MT_KV_A_BIAS, 512 + 64, 0);
	/* Per layer 2 norms, 5 attention weights and 2 biases, router and
	 * bias, 8 x 3 experts, 3 shared. */
	CHECK_INT_EQ(count(&m), 2 * (2 + 5 + 2 + 2 + 8 * 3 + 3) + 3);
}

static void test_names_glm4_moe(void)
{
	struct model_desc m;

	CHECK_INT_EQ(parse("{\"model_type\": \"glm4_moe\", \"vocab_size\": 256, \"hidden_size\": 64,"
			   " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 24,"
			   " \"num_hidden_layers\": 3, \"n_routed_experts\": 8, \"n_group\": 2,"
			   " \"num_experts_per_tok\": 2, \"moe_intermediate_size\": 16,"
			   " \"intermediate_size\": 48, \"attention_bias\": true,"
			   " \"use_qk_norm\": true}", &m), 0);
	SHAPE(&m, MT_Q, 96, 64);
	SHAPE(&m, MT_K, 48, 64);
	SHAPE(&m, MT_O, 64, 96);
	SHAPE(&m, MT_Q_BIAS, 96, 0);
	SHAPE(&m, MT_V_BIAS, 48, 0);
	SHAPE(&m, MT_Q_NORM, 24, 0);
	SHAPE(&m, MT_SHARED_UP, 16, 64);
	CHECK_STR_EQ(name_of(&m, MT_O_BIAS, 0, 0), "error -2"); /* o_proj has none */
	CHECK_STR_EQ(name_of(&m, MT_KV_A, 0, 0), "error -2");
	CHECK_STR_EQ(name_of(&m, MT_SHARED_GATE, 1, 0),
		     "model.layers.1.mlp.shared_experts.gate_proj.weight");
	/* Per layer 2 norms, 4 projections, 3 biases, 2 QK norms; MoE layers
	 * router, bias, 8 x 3 experts, 3 shared; the dense layer 3. */
	CHECK_INT_EQ(count(&m), 3 * (2 + 4 + 3 + 2) + 2 * (2 + 8 * 3 + 3) + 3 + 3);
}

/* A lookup over a small table, for model_check_tensors. */
struct fake {
	const struct model_desc *m;
	const char *drop;      /* pretend this one is absent */
	const char *bend;      /* report this one with shape[0] + 1 */
};

static int fake_lookup(void *ud, const char *name, int *ret_ndim, int64_t ret_shape[8])
{
	const struct fake *f = ud;
	char buf[256];

	if (f->drop && !strcmp(name, f->drop))
		return -ENOENT;
	for (int k = 0; k < MT_COUNT; k++)
		for (int l = 0; l < f->m->n_layers; l++)
			for (int e = 0; e < f->m->n_experts; e++) {
				int64_t s[2];
				int nd;

				if (model_tensor_name(f->m, (enum model_tensor)k, l, e, buf,
						      sizeof(buf)) < 0 || strcmp(buf, name) != 0)
					continue;
				CHECK_INT_EQ(model_tensor_shape(f->m, (enum model_tensor)k, s, &nd), 0);
				*ret_ndim = nd;
				ret_shape[0] = s[0] + (f->bend && !strcmp(name, f->bend));
				ret_shape[1] = s[1];
				return 0;
			}
	return -ENOENT;
}

static void test_check_tensors(void)
{
	struct model_desc m;
	struct fake f = { &m, NULL, NULL };

	CHECK_INT_EQ(parse(olmoe_cfg, &m), 0);
	CHECK_INT_EQ(model_check_tensors(&m, "ckpt", fake_lookup, &f, &err), 0);
	f.drop = "model.layers.2.mlp.experts.5.up_proj.weight";
	CHECK_INT_EQ(model_check_tensors(&m, "ckpt", fake_lookup, &f, &err), -EBADMSG);
	CHECK_STR_EQ(err.msg, "\"ckpt\": tensor \"model.layers.2.mlp.experts.5.up_proj.weight\" "
		     "is missing");
	f.drop = NULL;
	f.bend = "model.layers.1.self_attn.k_norm.weight";
	CHECK_INT_EQ(model_check_tensors(&m, "ckpt", fake_lookup, &f, &err), -EBADMSG);
	CHECK_STR_EQ(err.msg, "\"ckpt\": tensor \"model.layers.1.self_attn.k_norm.weight\" has "
		     "shape [33], but config.json implies [32]");
	f.bend = "model.layers.0.mlp.gate.weight";
	CHECK_INT_EQ(model_check_tensors(&m, "ckpt", fake_lookup, &f, &err), -EBADMSG);
	CHECK_STR_HAS(err.msg, "has shape [9, 64], but config.json implies [8, 64]");
}

static const struct tap_test tests[] = {
	{ "olmoe", test_olmoe },
	{ "olmoe_defaults", test_olmoe_defaults },
	{ "mixtral", test_mixtral },
	{ "qwen2_moe", test_qwen2_moe },
	{ "qwen3_moe", test_qwen3_moe },
	{ "sparse_step", test_sparse_step },
	{ "rope", test_rope },
	{ "refuse_architecture", test_refuse_architecture },
	{ "refuse_experts", test_refuse_experts },
	{ "refuse_types", test_refuse_types },
	{ "refuse_heads", test_refuse_heads },
	{ "refuse_features", test_refuse_features },
	{ "deepseek_v3", test_deepseek_v3 },
	{ "deepseek_v3_defaults", test_deepseek_v3_defaults },
	{ "glm4_moe", test_glm4_moe },
	{ "yarn_other_archs", test_yarn_other_archs },
	{ "refuse_deepseek", test_refuse_deepseek },
	{ "refuse_json", test_refuse_json },
	{ "names_olmoe", test_names_olmoe },
	{ "names_mixtral", test_names_mixtral },
	{ "names_qwen2", test_names_qwen2 },
	{ "names_qwen3", test_names_qwen3 },
	{ "names_deepseek_v3", test_names_deepseek_v3 },
	{ "names_glm4_moe", test_names_glm4_moe },
	{ "check_tensors", test_check_tensors },
	{ NULL, NULL },
};

TAP_MAIN(tests)
