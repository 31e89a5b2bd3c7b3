#!/usr/bin/python3
"""ref_forward.py — an independent PyTorch reference for grokwatch's forward pass.

It implements the forward pass of OlmoeForCausalLM, MixtralForCausalLM,
Qwen2MoeForCausalLM, Qwen3MoeForCausalLM, DeepseekV3ForCausalLM (multi-head
latent attention, the sigmoid router with correction bias and groups, shared
experts, dense first layers, interleaved RoPE) and Glm4MoeForCausalLM (GQA with
partial RoPE, biases, QK-norm, the same router), with plain RoPE or YaRN, in
fp32, written from the Hugging Face definitions (modeling_*.py,
modeling_rope_utils.py; SPEC §3), sharing no code with the C engine, and
computes per probe sample what the engine records: gbar [L_moe, E] (mean over
tokens of p_t: softmax over ALL experts of the router logits, or for sigmoid
routers s / sum(s) without the bias), the loss (mean next-token NLL in nats over
positions 1..T-1; NaN for a one-token sample) and, per token and MoE layer, the
top-k expert ids (ties to the lower index, groups too), their weights as the
model uses them (renormalized for Mixtral always, for the others when
norm_topk_prob; times routed_scaling_factor for sigmoid routers), router
entropy of p_t, logsumexp of the logits, the full p_t and the choice's margin
(how far from a tie it is).  Each sample runs on its own (positions 0..T-1, no
padding).

Commands (Python: always /usr/bin/python3):

  ref_forward.py run CKPT PROBE OUT.npz
      Write the reference results: gbar [N,L,E], loss [N], ntokens [N],
      topk_ids [T,L,k], topk_w [T,L,k], probs [T,L,E], entropy [T,L], lse [T,L],
      ids [N], groups [N] (T = sum(ntokens), tokens in sample order).

  ref_forward.py compare CKPT PROBE ROUTING [CKPT PROBE ROUTING ...]
      Compare grokwatch routing files (`grokwatchd analyze CKPT --probe PROBE
      --dump-routing ROUTING`) with the reference.  For each triple it prints
      exactly one unnumbered TAP line, "ok - NAME ..." or "not ok - NAME ...",
      where NAME is the checkpoint directory's base name, followed on failure
      by "#" lines naming the worst differences (sample, layer, values).
      Exit status: 0 when every triple passes, 1 when any fails, 2 on a usage
      error.  A triple passes when:
        - the routing file has gbar F32 [N,L,E], loss F32 [N], ntokens I32 [N]
          with N, L, E and ntokens as the reference's, and the per-token
          tensors topk_ids U16 [T,L,k] and topk_w F32 [T,L,k] (entropy and lse
          [T,L] are checked when present; metadata "ids" and "top_k" when
          present; router.<l> when present must equal the checkpoint's router
          weight exactly);
        - |gbar - ref| <= 1e-5 everywhere;
        - loss within 1e-5 relative (both NaN for one-token samples);
        - the top-k sets are identical wherever the reference's choice is
          clear (its k-th and (k+1)-th probabilities, or for sigmoid routers
          both the topk_group-th and next group scores and the k-th and next
          masked choice scores, differ by more than 1e-5), and there the
          weights agree within 1e-5 expert by expert;
        - entropy within 1e-5 and lse within 1e-5 relative (min 1e-5 absolute).
      Give all triples in one call: torch is imported once (a few seconds for
      the 20 fixtures).  Typical use in tests/reference/test_reference.sh:
        for c in olmoe-f32 mixtral-bf16-sharded ...; do
          $GW_WRAP "$GW_BIN" analyze "$GW_FIXTURES/$c" \\
            --probe "$GW_FIXTURES/probe/probe.jsonl" --dump-routing "$TMP/$c.st"
          set -- "$@" "$GW_FIXTURES/$c" "$GW_FIXTURES/probe/probe.jsonl" "$TMP/$c.st"
        done
        "$PYTHON" "$GW_SRC/tests/reference/ref_forward.py" compare "$@"
      (its "ok"/"not ok" lines count as TAP results in tests/run.sh).

  ref_forward.py mutations CKPT PROBE ROUTING [CKPT PROBE ROUTING ...]
      The mutation check: for each of FEATURES (the DeepSeek-V3 family's router,
      experts, latent attention and RoPE details, and YaRN) and every triple
      whose model uses it, compare again with that one feature turned off in
      the reference; one TAP line each, "ok" when the comparison then fails
      (the faithful comparison of the triple must pass), "not ok" when it still
      passes or when no triple uses the feature.  Exit 0 when all are "ok".

  ref_forward.py bench CKPT PROBE [--threads N]
      A batched forward the way Hugging Face runs it (weights loaded and
      widened to fp32 up front, all samples padded into one batch, per-expert
      gather of the routed tokens, torch.no_grad) on N threads; without
      --threads it runs once on 1 thread and once on every CPU this process
      may use, and reports the faster (on a loaded machine OpenMP threads can
      cost more than they give).  Prints one JSON line: {"bench":
      "torch_reference", "tokens", "threads" (of the faster run), "load_sec",
      "forward_sec", "tokens_per_sec" (tokens / forward_sec: the figure to
      compare with), "tokens_per_sec_with_load", "tokens_per_sec_by_threads",
      "loss_mean"}.

PROBE is a JSON Lines file: {"tokens": [...], "group": "...", "id": "..."}.

The file is divided into: configuration (RefConfig), the per-sample model
(RefModel: norms, RoPE, attention, expert blocks), routing (route), the
per-probe driver (reference), the routing-file comparison, the batched
benchmark, and the command line.
"""

import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stfile  # noqa: E402

TOL = 1e-5

# ---------------------------------------------------------------- configuration

ARCHS = {
    "OlmoeForCausalLM": "olmoe", "MixtralForCausalLM": "mixtral",
    "Qwen2MoeForCausalLM": "qwen2_moe", "Qwen3MoeForCausalLM": "qwen3_moe",
    "DeepseekV3ForCausalLM": "deepseek_v3", "Glm4MoeForCausalLM": "glm4_moe",
}
# Defaults of the Hugging Face configuration classes for absent keys.
DEFAULT_EPS = {"olmoe": 1e-5, "mixtral": 1e-5, "qwen2_moe": 1e-6, "qwen3_moe": 1e-6,
               "deepseek_v3": 1e-6, "glm4_moe": 1e-5}
DEFAULT_THETA = {"olmoe": 10000.0, "mixtral": 1e6, "qwen2_moe": 10000.0, "qwen3_moe": 10000.0,
                 "deepseek_v3": 10000.0, "glm4_moe": 10000.0}
DEFAULT_MAX_POS = {"olmoe": 4096, "mixtral": 4096 * 32, "qwen2_moe": 32768, "qwen3_moe": 32768,
                   "deepseek_v3": 4096, "glm4_moe": 131072}
# DeepseekV3Config / Glm4MoeConfig defaults of the routing keys.
SIGMOID_DEFAULTS = {
    "deepseek_v3": {"n_routed_experts": 256, "num_experts_per_tok": 8, "n_group": 8,
                    "topk_group": 4, "routed_scaling_factor": 2.5, "n_shared_experts": 1,
                    "first_k_dense_replace": 3, "norm_topk_prob": True},
    "glm4_moe": {"n_routed_experts": 128, "num_experts_per_tok": 8, "n_group": 1,
                 "topk_group": 1, "routed_scaling_factor": 1.0, "n_shared_experts": 1,
                 "first_k_dense_replace": 1, "norm_topk_prob": True},
}

# Features a mutation check may turn off (see `mutations`); each names one thing
# the family's definition does that a faithful engine must do too.
FEATURES = (
    "correction_bias",      # add e_score_correction_bias to the choice scores
    "group_limit",          # keep only the topk_group best groups
    "zero_mask",            # dropped groups' scores become 0.0 (off: -inf)
    "norm_topk_prob",       # renormalize the chosen weights
    "routed_scaling",       # multiply them by routed_scaling_factor
    "sigmoid_p",            # p = s / sum(s) (off: softmax of the logits)
    "shared_experts",       # add the shared experts' MLP
    "dense_layers",         # the first first_k_dense_replace layers' dense MLP
    "fused_order",          # fused gate_up_proj: gate rows first (off: up first)
    "block_scales",         # FP8 weights times their weight_scale_inv blocks
    "q_a_layernorm",        # MLA: RMSNorm of the q latent
    "kv_a_layernorm",       # MLA: RMSNorm of the kv latent
    "latent_eps",           # MLA: those two norms' eps is 1e-6 (off: rms_norm_eps)
    "yarn_frequencies",     # YaRN's blended inv_freq (off: plain RoPE frequencies)
    "yarn_attention_factor",  # YaRN's scale of cos and sin
    "yarn_mscale",          # MLA: softmax scale times mscale(factor, mscale_all_dim)^2
    "rope_interleave",      # MLA: rotate pairs (2i, 2i+1) (off: half-split)
    "partial_rotary",       # GLM: rotate only int(head_dim * partial_rotary_factor) dims
    "qk_norm",              # GLM (and Qwen3): per-head RMSNorm of q and k
    "attention_bias",       # the attention projections' biases
)


def yarn_get_mscale(scale, mscale=1.0):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


class RefConfig:
    """What the forward pass needs from config.json.  `off` is a set of FEATURES
    to leave out (for the mutation check); normally empty."""

    def __init__(self, cfg, off=()):
        archs = cfg.get("architectures") or []
        if archs and archs[0] in ARCHS:
            self.kind = ARCHS[archs[0]]
        elif cfg.get("model_type") in ARCHS.values():
            self.kind = cfg["model_type"]
        else:
            raise ValueError("unsupported architecture %r" % (archs[:1] or cfg.get("model_type")))
        self.off = set(off)
        unknown = self.off - set(FEATURES)
        if unknown:
            raise ValueError("unknown features %s" % sorted(unknown))
        k = self.kind
        self.sigmoid = k in SIGMOID_DEFAULTS
        self.vocab = cfg["vocab_size"]
        self.hidden = cfg["hidden_size"]
        self.n_layers = cfg["num_hidden_layers"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads") or self.n_heads
        self.max_pos = cfg.get("max_position_embeddings", DEFAULT_MAX_POS[k])
        if k in ("mixtral", "qwen3_moe", "glm4_moe") and cfg.get("head_dim"):
            self.head_dim = cfg["head_dim"]
        else:
            self.head_dim = self.hidden // self.n_heads
        if self.sigmoid:
            d = SIGMOID_DEFAULTS[k]
            g = lambda key: cfg.get(key, d[key])  # noqa: E731
            self.n_experts = cfg.get("n_routed_experts", cfg.get("num_local_experts",
                                                                 d["n_routed_experts"]))
            self.top_k = g("num_experts_per_tok")
            self.n_group, self.topk_group = g("n_group"), g("topk_group")
            self.scaling = float(g("routed_scaling_factor"))
            self.renorm = bool(g("norm_topk_prob"))
            first = g("first_k_dense_replace")
            self.moe_layers = [i for i in range(self.n_layers) if i >= first]
            self.moe_inter = cfg["moe_intermediate_size"]
            self.dense_inter = cfg["intermediate_size"]
            self.shared = self.moe_inter * g("n_shared_experts")
            if cfg.get("moe_layer_freq", 1) != 1:
                raise ValueError("moe_layer_freq %r is not implemented" % cfg["moe_layer_freq"])
        elif k == "mixtral":
            self.n_experts = cfg["num_local_experts"]
        else:
            self.n_experts = cfg["num_experts"]
        if not self.sigmoid:
            self.top_k = cfg["num_experts_per_tok"]
            self.renorm = True if k == "mixtral" else bool(cfg.get("norm_topk_prob", False))
            self.scaling = 1.0
        self.eps = float(cfg.get("rms_norm_eps", DEFAULT_EPS[k]))
        theta = cfg.get("rope_theta")
        if theta is None and isinstance(cfg.get("rope_parameters"), dict):
            theta = cfg["rope_parameters"].get("rope_theta")
        self.theta = float(theta if theta is not None else DEFAULT_THETA[k])
        rs = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
        rtype = rs.get("rope_type", rs.get("type")) or "default"
        if rtype not in ("default", "yarn"):
            raise ValueError("rope scaling %r is not implemented" % rs)
        self.tied = bool(cfg.get("tie_word_embeddings", False))
        self.clip_qkv = cfg.get("clip_qkv") if k == "olmoe" else None
        # Biases, per the attention classes.
        self.mla = k == "deepseek_v3"
        bias = bool(cfg.get("attention_bias", False))
        if k == "qwen2_moe":
            self.qkv_bias, self.o_bias = bool(cfg.get("qkv_bias", True)), False
        elif k in ("olmoe", "qwen3_moe"):
            self.qkv_bias = self.o_bias = bias
        elif k == "glm4_moe":
            self.qkv_bias, self.o_bias = bias, False
        elif self.mla:
            self.qkv_bias, self.o_bias = False, bias  # and q_a_proj, kv_a_proj_with_mqa
        else:
            self.qkv_bias = self.o_bias = False
        self.latent_bias = self.mla and bias
        if "attention_bias" in self.off:
            self.qkv_bias = self.o_bias = self.latent_bias = False
        self.qk_norm = {"olmoe": "full", "qwen3_moe": "head"}.get(k)
        if k == "glm4_moe" and cfg.get("use_qk_norm", False):
            self.qk_norm = "head"
        if "qk_norm" in self.off:
            self.qk_norm = None
        self.sliding_window = None
        if k == "mixtral" and cfg.get("sliding_window"):
            self.sliding_window = int(cfg["sliding_window"])
        if k in ("qwen2_moe", "qwen3_moe") and cfg.get("use_sliding_window"):
            raise ValueError("use_sliding_window is not implemented")
        if k in ("qwen2_moe", "qwen3_moe"):
            step = cfg.get("decoder_sparse_step", 1)
            only = cfg.get("mlp_only_layers") or []
            self.moe_layers = [i for i in range(self.n_layers)
                               if i not in only and self.n_experts > 0 and (i + 1) % step == 0]
            self.moe_inter = cfg["moe_intermediate_size"]
            self.dense_inter = cfg.get("intermediate_size")
        elif not self.sigmoid:
            self.moe_layers = list(range(self.n_layers))
            self.moe_inter = cfg["intermediate_size"]
            self.dense_inter = None
        if k == "qwen2_moe":
            self.shared = cfg.get("shared_expert_intermediate_size", 0)
        elif not self.sigmoid:
            self.shared = 0
        self.shared_gated = k == "qwen2_moe"
        if "shared_experts" in self.off:
            self.shared = 0
        if not 0 < self.top_k <= self.n_experts:
            raise ValueError("top_k %d with %d experts" % (self.top_k, self.n_experts))

        # Attention dims and RoPE.  MLA (DeepseekV3Attention): q/k heads of
        # qk_nope + qk_rope dims, v heads of v_head_dim; the rotary embedding's
        # dim is qk_rope_head_dim (the config's head_dim) and its pairs are
        # interleaved when rope_interleave (the class default).  GLM rotates
        # int(head_dim * partial_rotary_factor) dims of each head.
        self.interleave = False
        if self.mla:
            self.q_lora = cfg.get("q_lora_rank", 1536)
            self.kv_lora = cfg.get("kv_lora_rank", 512)
            self.dn = cfg.get("qk_nope_head_dim", 128)
            self.dr = cfg.get("qk_rope_head_dim", 64)
            self.dv = cfg.get("v_head_dim", 128)
            self.head_dim = self.dn + self.dr
            self.rope_dim = self.dr
            self.interleave = bool(cfg.get("rope_interleave", True))
            if "rope_interleave" in self.off:
                self.interleave = not self.interleave
        elif k == "glm4_moe":
            prf = rs.get("partial_rotary_factor", cfg.get("partial_rotary_factor", 0.5))
            self.rope_dim = int(self.head_dim * prf)
            if "partial_rotary" in self.off:
                self.rope_dim = self.head_dim
        else:
            self.rope_dim = self.head_dim
        self.scale = self.head_dim ** -0.5
        self.yarn = rtype == "yarn"
        self.attn_factor = 1.0
        if self.yarn:
            self.factor = float(rs["factor"])
            self.orig_max_pos = rs.get("original_max_position_embeddings") or self.max_pos
            self.beta_fast = rs.get("beta_fast") or 32
            self.beta_slow = rs.get("beta_slow") or 1
            self.truncate = rs.get("truncate", True)
            ms, msa = rs.get("mscale"), rs.get("mscale_all_dim")
            af = rs.get("attention_factor")
            if af is None:
                if ms and msa:
                    af = yarn_get_mscale(self.factor, ms) / yarn_get_mscale(self.factor, msa)
                else:
                    af = yarn_get_mscale(self.factor)
            if "yarn_attention_factor" not in self.off:
                self.attn_factor = float(af)
            if self.mla and rs.get("mscale_all_dim", 0) and "yarn_mscale" not in self.off:
                self.scale = self.scale * yarn_get_mscale(self.factor, rs["mscale_all_dim"]) ** 2
            if "yarn_frequencies" in self.off:
                self.yarn = False

    def has(self, feature):
        """Whether this model uses `feature` at all (so turning it off can matter)."""
        f = feature
        if f in ("correction_bias", "sigmoid_p", "routed_scaling"):
            return self.sigmoid and (f != "routed_scaling" or self.scaling != 1.0)
        if f == "group_limit":
            return self.sigmoid and self.topk_group < self.n_group
        if f == "zero_mask":
            return self.sigmoid and self.topk_group < self.n_group
        if f == "norm_topk_prob":
            return self.sigmoid and self.renorm
        if f == "shared_experts":
            return self.sigmoid and self.shared > 0
        if f == "dense_layers":
            return self.sigmoid and len(self.moe_layers) < self.n_layers
        if f == "q_a_layernorm":
            return self.mla and bool(self.q_lora)
        if f == "kv_a_layernorm":
            return self.mla
        if f == "latent_eps":
            return self.mla and self.eps != 1e-6
        if f in ("yarn_frequencies", "yarn_attention_factor", "yarn_mscale"):
            return self.yarn and (f != "yarn_attention_factor" or self.attn_factor != 1.0) and (
                f != "yarn_mscale" or self.mla)
        if f == "rope_interleave":
            return self.mla and self.interleave
        if f == "partial_rotary":
            return self.kind == "glm4_moe" and self.rope_dim < self.head_dim
        if f == "qk_norm":
            return self.kind == "glm4_moe" and self.qk_norm is not None
        if f == "attention_bias":
            return self.sigmoid and (self.qkv_bias or self.o_bias or self.latent_bias)
        if f == "fused_order":
            return getattr(self, "fused", False)
        if f == "block_scales":
            return getattr(self, "scaled", False)
        return False


# ---------------------------------------------------------------- model

def rms_norm(x, w, eps):
    """x * rsqrt(mean(x^2) + eps) * w over the last axis, fp32."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def inv_freq(c):
    """The rotary embedding's inverse frequencies over c.rope_dim dims, fp32:
    theta^(-2i/dim), or YaRN's per-frequency blend of those (extrapolation)
    and those divided by the factor (interpolation), along a linear ramp
    between the dims reached by beta_fast and beta_slow rotations at the
    original context length."""
    dim = c.rope_dim
    pos_freqs = c.theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)
    if not c.yarn:
        return 1.0 / pos_freqs
    extrap = 1.0 / pos_freqs
    interp = 1.0 / (c.factor * pos_freqs)

    def corr_dim(rotations):
        return dim * math.log(c.orig_max_pos / (rotations * 2 * math.pi)) / (2 * math.log(c.theta))

    low, high = corr_dim(c.beta_fast), corr_dim(c.beta_slow)
    if c.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    extrap_share = 1 - ramp
    return interp * (1 - extrap_share) + extrap * extrap_share


def rope_cos_sin(T, c):
    """cos, sin [T, rope_dim] for positions 0..T-1 (the frequencies twice,
    half-split), times YaRN's attention factor."""
    inv = inv_freq(c)
    freqs = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * c.attn_factor, emb.sin() * c.attn_factor


def apply_rope(x, cos, sin, c):
    """Rotate the first rope_dim dims of x [..., T, d] (the rest pass); with
    c.interleave the pairs (2i, 2i+1) are first gathered half-split."""
    rd = cos.shape[-1]
    rot, rest = x[..., :rd], x[..., rd:]
    if c.interleave:
        rot = rot.reshape(*rot.shape[:-1], rd // 2, 2).transpose(-1, -2).reshape(rot.shape)
    rot = rot * cos + rotate_half(rot) * sin
    return torch.cat((rot, rest), dim=-1)


def stable_top(values, k):
    """Indices [rows, k] of the k largest of each row (numpy), descending,
    ties to the lower index."""
    order = np.argsort(-values, axis=-1, kind="stable")[:, :k]
    return torch.from_numpy(np.ascontiguousarray(order)).to(torch.int64)


def route(logits, top_k, renorm):
    """Softmax router decision for logits [T, E] (torch, fp32).

    Returns probs [T,E] (softmax over all experts), ids [T,k] int64 (descending
    probability, ties to the lower index), weights [T,k] (renormalized to
    sum 1 when `renorm`) and margin [T] (k-th minus (k+1)-th probability:
    where it is small the choice is a near tie)."""
    probs = torch.softmax(logits, dim=-1)
    pn = probs.detach().cpu().numpy()
    ids = stable_top(pn, top_k)
    w = torch.gather(probs, -1, ids)
    if renorm:
        w = w / w.sum(-1, keepdim=True)
    return probs, ids, w, top_gap(pn, top_k)


def top_gap(values, k):
    """k-th minus (k+1)-th largest of each row (inf where k covers the row)."""
    if k >= values.shape[-1]:
        return np.full(values.shape[:-1], np.inf)
    srt = -np.sort(-values, axis=-1)
    return srt[..., k - 1] - srt[..., k]


def route_sigmoid(logits, bias, c):
    """The DeepSeek-V3 family's router for logits [T, E] (DeepseekV3TopkRouter):
    s = sigmoid(z); the choice scores s + bias; per group of E / n_group the sum
    of its two best choice scores; the topk_group best groups kept (ties to the
    lower group); the others' choice scores set to 0.0; the top-k of those (ties
    to the lower index) weighted by s, divided by their sum + 1e-20 when
    norm_topk_prob, times routed_scaling_factor.  The recorded p is s / sum(s)
    over all experts, without the bias.  Returns p, ids, weights, and the
    margin: the smaller of the group choice's and the expert choice's gap."""
    off = c.off
    s = torch.sigmoid(logits)
    T, E = s.shape
    if "sigmoid_p" in off:
        p = torch.softmax(logits, dim=-1)
    else:
        p = s / s.sum(-1, keepdim=True)
    choice = s if "correction_bias" in off else s + bias
    G = c.n_group
    gs = choice.view(T, G, E // G).topk(2, dim=-1).values.sum(-1)
    gsn = gs.numpy()
    tg = G if "group_limit" in off else c.topk_group
    keep = torch.zeros(T, G)
    keep.scatter_(1, stable_top(gsn, tg), 1.0)
    keep = keep.repeat_interleave(E // G, dim=1).bool()
    masked = choice.masked_fill(~keep, float("-inf") if "zero_mask" in off else 0.0)
    mn = masked.numpy()
    ids = stable_top(mn, c.top_k)
    w = s.gather(1, ids)
    if c.renorm and "norm_topk_prob" not in off:
        w = w / (w.sum(-1, keepdim=True) + 1e-20)
    if "routed_scaling" not in off:
        w = w * c.scaling
    margin = np.minimum(top_gap(gsn, tg), top_gap(mn, c.top_k))
    return p, ids, w, margin


def is_fused(w):
    """Whether a checkpoint stores its experts fused (Transformers v5)."""
    return any(n.endswith(".mlp.experts.gate_up_proj") for n in w.names())


def is_scaled(w):
    """Whether a checkpoint has block-scaled FP8 weights."""
    return any(n.endswith(".weight_scale_inv") for n in w.names())


class RefModel:
    """The model's weights (torch fp32) and its forward pass, over a batch
    [B, T] with a key mask (one sample at a time: B = 1, causal mask)."""

    def __init__(self, ckpt_dir, dtype=torch.float32, off=()):
        self.w = stfile.Weights(ckpt_dir)
        self.c = RefConfig(self.w.cfg, off)
        self.c.fused = is_fused(self.w)
        self.c.scaled = is_scaled(self.w)
        self.dtype = dtype
        self._cache = {}

    def t(self, name):
        if name not in self._cache:
            a = self.w.get(name, scales="block_scales" not in self.c.off)
            self._cache[name] = torch.from_numpy(np.array(a)).to(self.dtype)
        return self._cache[name]

    def has(self, name):
        return name in self.w

    def lm_head(self):
        if self.has("lm_head.weight"):
            return self.t("lm_head.weight")
        if self.c.tied:
            return self.t("model.embed_tokens.weight")
        raise KeyError("%s: lm_head.weight missing and tie_word_embeddings is false" % self.w.dir)

    def lin(self, x, name, bias=False):
        y = x @ self.t(name + ".weight").T
        if bias:
            y = y + self.t(name + ".bias")
        return y

    def sdpa(self, q, k, v, mask):
        """softmax(scale q k^T, masked) v for q, k, v [B, heads, T, d]."""
        s = (q @ k.transpose(-1, -2)) * self.c.scale
        s = s.masked_fill(mask, float("-inf"))
        return torch.softmax(s, dim=-1) @ v

    def attention(self, i, x, mask):
        """Self-attention of layer i on normed hidden states x [B, T, H];
        mask [B, 1, T, T] is True where a query may not see a key."""
        c = self.c
        if c.mla:
            return self.attention_mla(i, x, mask)
        B, T, _ = x.shape
        p = "model.layers.%d.self_attn." % i
        q = self.lin(x, p + "q_proj", c.qkv_bias)
        k = self.lin(x, p + "k_proj", c.qkv_bias)
        v = self.lin(x, p + "v_proj", c.qkv_bias)
        if c.qk_norm == "full":  # OLMoE: over the full projected width, before the head split
            q = rms_norm(q, self.t(p + "q_norm.weight"), c.eps)
            k = rms_norm(k, self.t(p + "k_norm.weight"), c.eps)
        if c.clip_qkv is not None:
            q, k, v = (a.clamp(-c.clip_qkv, c.clip_qkv) for a in (q, k, v))
        hd = c.head_dim
        q = q.view(B, T, c.n_heads, hd)
        k = k.view(B, T, c.n_kv, hd)
        v = v.view(B, T, c.n_kv, hd)
        if c.qk_norm == "head":  # Qwen3, GLM: per head over head_dim, before RoPE
            q = rms_norm(q, self.t(p + "q_norm.weight"), c.eps)
            k = rms_norm(k, self.t(p + "k_norm.weight"), c.eps)
        q, k, v = (a.transpose(1, 2) for a in (q, k, v))  # [B, heads, T, hd]
        cos, sin = rope_cos_sin(T, c)
        q, k = apply_rope(q, cos, sin, c), apply_rope(k, cos, sin, c)
        rep = c.n_heads // c.n_kv
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        a = self.sdpa(q, k, v, mask).transpose(1, 2).reshape(B, T, c.n_heads * hd)
        return self.lin(a, p + "o_proj", c.o_bias)

    def attention_mla(self, i, x, mask):
        """DeepSeek-V3's multi-head latent attention on x [B, T, H]."""
        c = self.c
        B, T, _ = x.shape
        p = "model.layers.%d.self_attn." % i
        # DeepseekV3RMSNorm's own default eps: the class builds these two
        # without rms_norm_eps.
        eps = c.eps if "latent_eps" in c.off else 1e-6
        if c.q_lora:
            qa = self.lin(x, p + "q_a_proj", c.latent_bias)
            if "q_a_layernorm" not in c.off:
                qa = rms_norm(qa, self.t(p + "q_a_layernorm.weight"), eps)
            q = self.lin(qa, p + "q_b_proj")
        else:
            q = self.lin(x, p + "q_proj")
        q = q.view(B, T, c.n_heads, c.dn + c.dr).transpose(1, 2)
        q_pass, q_rot = q[..., :c.dn], q[..., c.dn:]
        ckv = self.lin(x, p + "kv_a_proj_with_mqa", c.latent_bias)
        latent, k_rot = ckv[..., :c.kv_lora], ckv[..., c.kv_lora:]
        if "kv_a_layernorm" not in c.off:
            latent = rms_norm(latent, self.t(p + "kv_a_layernorm.weight"), eps)
        kv = self.lin(latent, p + "kv_b_proj").view(B, T, c.n_heads, c.dn + c.dv).transpose(1, 2)
        k_pass, v = kv[..., :c.dn], kv[..., c.dn:]
        k_rot = k_rot.view(B, 1, T, c.dr)
        cos, sin = rope_cos_sin(T, c)
        q_rot, k_rot = apply_rope(q_rot, cos, sin, c), apply_rope(k_rot, cos, sin, c)
        q = torch.cat((q_pass, q_rot), dim=-1)
        k = torch.cat((k_pass, k_rot.expand(B, c.n_heads, T, c.dr)), dim=-1)
        a = self.sdpa(q, k, v, mask).transpose(1, 2).reshape(B, T, c.n_heads * c.dv)
        return self.lin(a, p + "o_proj", c.o_bias)

    def ffn(self, x, gate, up, down):
        return self.lin(torch.nn.functional.silu(self.lin(x, gate)) * self.lin(x, up), down)

    def expert(self, i, e, x):
        c = self.c
        if c.kind == "mixtral" and self.has(
                "model.layers.%d.block_sparse_moe.experts.%d.w1.weight" % (i, e)):
            p = "model.layers.%d.block_sparse_moe.experts.%d." % (i, e)
            return self.ffn(x, p + "w1", p + "w3", p + "w2")
        p = "model.layers.%d.mlp.experts." % i
        if self.has(p + "%d.gate_proj.weight" % e):
            p += "%d." % e
            return self.ffn(x, p + "gate_proj", p + "up_proj", p + "down_proj")
        # Transformers v5's fused experts (conversion_mapping.py: the experts
        # stacked on dim 0, then gate and up concatenated on dim 1):
        # gate_up_proj [E, 2I, H], down_proj [E, H, I].
        gu = self.t(p + "gate_up_proj")[e]
        inter = gu.shape[0] // 2
        gate, up = gu[:inter], gu[inter:]
        if "fused_order" in c.off:
            gate, up = up, gate
        h = torch.nn.functional.silu(x @ gate.T) * (x @ up.T)
        return h @ self.t(p + "down_proj")[e].T

    def router_name(self, i):
        if self.c.kind == "mixtral":
            old = "model.layers.%d.block_sparse_moe.gate.weight" % i
            # Transformers v5 renames ".block_sparse_moe.gate" to ".mlp.gate".
            return old if self.has(old) else "model.layers.%d.mlp.gate.weight" % i
        return "model.layers.%d.mlp.gate.weight" % i

    def route(self, i, z):
        """Routing of layer i for logits z [N, E]: (p, ids, weights, margin)."""
        c = self.c
        if c.sigmoid:
            bias = self.t("model.layers.%d.mlp.gate.e_score_correction_bias" % i)
            return route_sigmoid(z, bias, c)
        return route(z, c.top_k, c.renorm)

    def router_logits(self, i, x):
        """Layer i's router logits for tokens x [N, H] (tests/reference/ref_modules.py
        routes this through a module, so that hooks on it see x)."""
        return x @ self.t(self.router_name(i)).T

    def moe(self, i, x):
        """MoE block of layer i on tokens x [N, H]: (output, router logits [N, E], route)."""
        c = self.c
        z = self.router_logits(i, x)
        r = self.route(i, z)
        _, ids, w, _ = r
        out = torch.zeros_like(x)
        for e in range(c.n_experts):
            tok, slot = torch.nonzero(ids == e, as_tuple=True)
            if tok.numel() == 0:
                continue
            y = self.expert(i, e, x[tok]) * w[tok, slot][:, None]
            out.index_add_(0, tok, y)
        p = "model.layers.%d.mlp." % i
        if c.shared and c.shared_gated:  # Qwen2-MoE: a sigmoid-gated shared expert
            sh = self.ffn(x, p + "shared_expert.gate_proj", p + "shared_expert.up_proj",
                          p + "shared_expert.down_proj")
            out = out + torch.sigmoid(self.lin(x, p + "shared_expert_gate")) * sh
        elif c.shared:  # DeepSeek-V3, GLM: one ungated MLP of moe_inter * n_shared_experts
            out = out + self.ffn(x, p + "shared_experts.gate_proj", p + "shared_experts.up_proj",
                                 p + "shared_experts.down_proj")
        return out, z, r

    def dense(self, i, x):
        if "dense_layers" in self.c.off:
            return torch.zeros_like(x)
        p = "model.layers.%d.mlp." % i
        return self.ffn(x, p + "gate_proj", p + "up_proj", p + "down_proj")

    @torch.no_grad()
    def hidden(self, ids, mask, per_layer=None):
        """Final normed hidden states [B, T, H] of token ids [B, T]; per_layer(z,
        route) is called with each MoE layer's logits and routing (all B*T tokens)."""
        c = self.c
        B, T = ids.shape
        h = self.t("model.embed_tokens.weight")[ids]
        for i in range(c.n_layers):
            p = "model.layers.%d." % i
            h = h + self.attention(i, rms_norm(h, self.t(p + "input_layernorm.weight"), c.eps), mask)
            x = rms_norm(h, self.t(p + "post_attention_layernorm.weight"), c.eps).view(B * T, -1)
            if i in c.moe_layers:
                y, z, r = self.moe(i, x)
                if per_layer is not None:
                    per_layer(z, r)
            else:
                y = self.dense(i, x)
            h = h + y.view(B, T, -1)
        return rms_norm(h, self.t("model.norm.weight"), c.eps)

    def forward(self, tokens):
        """One sample: (logits [T, V], [(router logits [T, E], route) per MoE layer])."""
        ids = torch.as_tensor(np.asarray(tokens, dtype=np.int64))[None]
        T = ids.shape[1]
        pos = torch.arange(T)
        mask = (pos[None, :] > pos[:, None])
        if self.c.sliding_window is not None:
            mask = mask | (pos[:, None] - pos[None, :] >= self.c.sliding_window)
        layers = []
        h = self.hidden(ids, mask[None, None], lambda z, r: layers.append((z, r)))
        return h[0] @ self.lm_head().T, layers


def sample_loss(logits, tokens):
    """Mean next-token NLL (nats) over positions 1..T-1; NaN for T == 1."""
    if len(tokens) < 2:
        return float("nan")
    tgt = torch.as_tensor(np.asarray(tokens[1:], dtype=np.int64))
    return float(torch.nn.functional.cross_entropy(logits[:-1].float(), tgt, reduction="mean"))


# ---------------------------------------------------------------- driver

def read_probe(path):
    """[(tokens, group, id)] from a JSON Lines probe, in file order."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            o = json.loads(line)
            toks = o["tokens"]
            if not toks or not all(isinstance(t, int) for t in toks):
                raise ValueError("%s line %d: bad tokens" % (path, n))
            out.append((toks, o.get("group", "default"), o.get("id", "")))
    return out


def reference(model, samples):
    """Run every sample; the dict described under `run`."""
    c = model.c
    L, E, k = len(c.moe_layers), c.n_experts, c.top_k
    N = len(samples)
    gbar = np.zeros((N, L, E), np.float32)
    loss = np.zeros(N, np.float32)
    ntok = np.zeros(N, np.int32)
    ids, ws, ps, ent, lse, margin = [], [], [], [], [], []
    for s, (toks, _, _) in enumerate(samples):
        if max(toks) >= c.vocab or min(toks) < 0:
            raise ValueError("sample %d: token id outside the vocabulary" % s)
        logits, layers = model.forward(toks)
        loss[s] = sample_loss(logits, toks)
        ntok[s] = len(toks)
        probs = torch.stack([r[0] for _, r in layers], 1)  # [T, L, E]
        gbar[s] = probs.mean(0).numpy()
        ps.append(probs.numpy())
        ids.append(torch.stack([r[1] for _, r in layers], 1).numpy())
        ws.append(torch.stack([r[2] for _, r in layers], 1).numpy())
        margin.append(np.stack([r[3] for _, r in layers], 1))
        zl = torch.stack([z.float() for z, _ in layers], 1)
        lse.append(torch.logsumexp(zl, -1).numpy())
        if c.sigmoid and "sigmoid_p" not in c.off:
            logp = torch.log(probs.clamp_min(1e-45))  # p = s / sum(s)
        else:
            logp = torch.log_softmax(zl, -1)
        ent.append(-(probs * logp).sum(-1).numpy())
    return {
        "gbar": gbar, "loss": loss, "ntokens": ntok,
        "topk_ids": np.concatenate(ids).astype(np.int64),
        "topk_w": np.concatenate(ws).astype(np.float32),
        "probs": np.concatenate(ps).astype(np.float32),
        "margin": np.concatenate(margin).astype(np.float64),
        "entropy": np.concatenate(ent).astype(np.float32),
        "lse": np.concatenate(lse).astype(np.float32),
        "ids": np.array([i for _, _, i in samples]),
        "groups": np.array([g for _, g, _ in samples]),
        "moe_layers": np.array(c.moe_layers, np.int32),
    }


# ---------------------------------------------------------------- compare

class Report:
    def __init__(self):
        self.faults = []
        self.notes = []

    def fail(self, msg):
        self.faults.append(msg)

    def note(self, msg):
        self.notes.append(msg)


def _worst(diff, n=3):
    """Indices of the n largest entries of an array (NaN counts as largest)."""
    d = np.where(np.isnan(diff), np.inf, diff).ravel()
    order = np.argsort(-d, kind="stable")[:n]
    return [np.unravel_index(j, diff.shape) for j in order if d[j] > 0]


def compare_one(ckpt, probe, routing_path, off=()):
    """Check one routing file against the reference (with the FEATURES in
    `off` left out of it); a Report and the model."""
    rep = Report()
    model = RefModel(ckpt, off=off)
    samples = read_probe(probe)
    ref = reference(model, samples)
    c = model.c
    N, L, E, k = ref["gbar"].shape + (c.top_k,)
    st = stfile.SafeTensors(routing_path)
    names = st.tensors

    def want(name, dtype, shape):
        if name not in names:
            rep.fail("routing file has no %s" % name)
            return None
        dt, sh = names[name]
        if dt != dtype or tuple(sh) != tuple(shape):
            rep.fail("%s is %s %s, expected %s %s" % (name, dt, list(sh), dtype, list(shape)))
            return None
        return st.get(name)

    md = st.metadata
    if md.get("format") != "grokwatch-routing":
        rep.fail("metadata format is %r, expected 'grokwatch-routing'" % md.get("format"))
    if "ids" in md:
        got_ids = json.loads(md["ids"])
        if got_ids != [s[2] for s in samples]:
            rep.fail("metadata ids differ from the probe's (sample order?): %s..." % got_ids[:4])
    if "top_k" in md and str(md["top_k"]) != str(k):
        rep.fail("metadata top_k is %s, expected %d" % (md["top_k"], k))

    ntok = want("ntokens", "I32", (N,))
    if ntok is not None and not np.array_equal(ntok, ref["ntokens"]):
        s = int(np.nonzero(ntok != ref["ntokens"])[0][0])
        rep.fail("ntokens[%d] = %d, expected %d" % (s, ntok[s], ref["ntokens"][s]))
        return rep, model
    gbar = want("gbar", "F32", (N, L, E))
    if gbar is not None:
        d = np.abs(gbar.astype(np.float64) - ref["gbar"])
        rep.note("gbar max |diff| %.3g" % np.nanmax(np.where(np.isnan(d), np.inf, d)))
        if not (d <= TOL).all():
            for s, l, e in _worst(d):
                rep.fail("gbar[sample %d (%s)][layer %d][expert %d] = %.8g, reference %.8g"
                         % (s, samples[s][2], l, e, gbar[s, l, e], ref["gbar"][s, l, e]))
    loss = want("loss", "F32", (N,))
    if loss is not None:
        r = ref["loss"].astype(np.float64)
        g = loss.astype(np.float64)
        both_nan = np.isnan(r) & np.isnan(g)
        rel = np.where(both_nan, 0.0, np.abs(g - r) / np.maximum(np.abs(r), 1e-30))
        rep.note("loss max rel diff %.3g" % np.nanmax(np.where(np.isnan(rel), np.inf, rel)))
        if not (rel <= TOL).all():
            for (s,) in _worst(rel):
                rep.fail("loss[sample %d (%s), %d tokens] = %.8g, reference %.8g"
                         % (s, samples[s][2], ref["ntokens"][s], g[s], r[s]))

    T = int(ref["ntokens"].sum())
    tid = want("topk_ids", "U16", (T, L, k))
    tw = want("topk_w", "F32", (T, L, k))
    if tid is not None and tw is not None:
        check_tokens(rep, ref, samples, tid.astype(np.int64), tw, k, E)
    for name, atol, relt in (("entropy", TOL, 0.0), ("lse", TOL, TOL)):
        if name not in names:
            continue
        a = want(name, "F32", (T, L))
        if a is None:
            continue
        r = ref[name].astype(np.float64)
        d = np.abs(a - r)
        lim = np.maximum(atol, relt * np.abs(r))
        rep.note("%s max |diff| %.3g" % (name, d.max() if d.size else 0.0))
        if not (d <= lim).all():
            for t, l in _worst(d - lim):
                s, pos = token_owner(ref["ntokens"], t)
                rep.fail("%s[sample %d token %d][layer %d] = %.8g, reference %.8g"
                         % (name, s, pos, l, a[t, l], r[t, l]))
    for j, li in enumerate(c.moe_layers):
        name = "router.%d" % j
        if name in names:
            want_w = model.w.get(model.router_name(li))
            got = want(name, "F32", want_w.shape)
            if got is not None and not np.array_equal(got, want_w):
                rep.fail("%s differs from %s" % (name, model.router_name(li)))
    return rep, model


def token_owner(ntokens, t):
    ends = np.cumsum(ntokens)
    s = int(np.searchsorted(ends, t, side="right"))
    return s, int(t - (ends[s] - ntokens[s]))


def check_tokens(rep, ref, samples, tid, tw, k, E):
    """Top-k sets where the reference's choice is clear (its margin, the gap
    between the k-th and (k+1)-th probability, or for sigmoid routers the
    smaller of the gaps at the group and at the expert choice, is above TOL);
    weights expert by expert where the sets agree."""
    probs = ref["probs"]
    clear = ref["margin"] > TOL
    rid = ref["topk_ids"]
    same = (np.sort(tid, -1) == np.sort(rid, -1)).all(-1)
    bad = clear & ~same
    rep.note("top-k sets compared at %d of %d token-layers" % (clear.sum(), clear.size))
    for t, l in list(zip(*np.nonzero(bad)))[:3]:
        s, pos = token_owner(ref["ntokens"], t)
        rep.fail("top-k [sample %d (%s) token %d][layer %d] = %s, reference %s (probs %s)"
                 % (s, samples[s][2], pos, l, tid[t, l].tolist(), rid[t, l].tolist(),
                    np.round(probs[t, l, rid[t, l]], 6).tolist()))
    if bad.sum() > 3:
        rep.fail("... %d token-layers with a different top-k set" % bad.sum())
    if (tid >= E).any():
        rep.fail("topk_ids holds an expert id >= %d" % E)
        return
    # Weights, matched by expert id, where the sets agree.
    wref = np.zeros(probs.shape, np.float64)
    np.put_along_axis(wref, rid, ref["topk_w"], -1)
    wgot = np.zeros(probs.shape, np.float64)
    np.put_along_axis(wgot, tid, tw.astype(np.float64), -1)
    d = np.where(same[..., None], np.abs(wgot - wref), 0.0)
    rep.note("topk_w max |diff| %.3g" % (d.max() if d.size else 0.0))
    if not (d <= TOL).all():
        for t, l, e in _worst(d):
            s, pos = token_owner(ref["ntokens"], t)
            rep.fail("topk_w [sample %d token %d][layer %d] expert %d = %.8g, reference %.8g"
                     % (s, pos, l, e, wgot[t, l, e], wref[t, l, e]))


def triples_of(cmd, args):
    """[(CKPT, PROBE, ROUTING)] from the command line, or None after a usage line."""
    if len(args) == 0 or len(args) % 3:
        print("usage: ref_forward.py %s CKPT PROBE ROUTING [CKPT PROBE ROUTING ...]" % cmd,
              file=sys.stderr)
        return None
    return [tuple(args[j:j + 3]) for j in range(0, len(args), 3)]


def cmd_compare(args):
    triples = triples_of("compare", args)
    if triples is None:
        return 2
    torch.set_num_threads(1)
    failed = 0
    for ckpt, probe, routing in triples:
        name = os.path.basename(os.path.normpath(ckpt))
        try:
            rep, model = compare_one(ckpt, probe, routing)
        except (OSError, ValueError, KeyError, stfile.FormatError) as e:
            print("not ok - %s: reference comparison could not run: %s" % (name, e))
            failed += 1
            continue
        what = "%s (%s) matches the reference" % (name, model.c.kind)
        if rep.faults:
            failed += 1
            print("not ok - %s: %d differences from the reference" % (name, len(rep.faults)))
            for m in rep.faults:
                print("#   " + m)
        else:
            print("ok - " + what)
        for m in rep.notes:
            print("#   " + m)
    return 1 if failed else 0


def mutation_one(t, feature, faithful):
    """One TAP line: does turning `feature` off in the reference make triple t
    fail the comparison?  1 if not (or if t fails without it), else 0."""
    name = os.path.basename(os.path.normpath(t[0]))
    try:
        if t not in faithful:
            faithful[t] = not compare_one(*t)[0].faults
        rep, _ = compare_one(*t, off=(feature,))
    except (OSError, ValueError, KeyError, stfile.FormatError) as e:
        print("not ok - %s off: %s: comparison could not run: %s" % (feature, name, e))
        return 1
    if not faithful[t]:
        print("not ok - %s off: %s does not match the faithful reference to begin with"
              % (feature, name))
        return 1
    if not rep.faults:
        print("not ok - %s off: %s still matches: the comparison cannot see this feature"
              % (feature, name))
        return 1
    print("ok - %s off: %s no longer matches (%d differences; %s)"
          % (feature, name, len(rep.faults), rep.faults[0]))
    return 0


def cmd_mutations(args):
    triples = triples_of("mutations", args)
    if triples is None:
        return 2
    torch.set_num_threads(1)
    configs, faithful = {}, {}
    failed = 0
    for t in triples:
        try:
            w = stfile.Weights(t[0])
            configs[t] = RefConfig(w.cfg)
            configs[t].fused = is_fused(w)
            configs[t].scaled = is_scaled(w)
        except (OSError, ValueError, KeyError, stfile.FormatError) as e:
            print("not ok - %s: cannot read its config: %s" % (t[0], e))
            failed += 1
    for feature in FEATURES:
        using = [t for t in triples if t in configs and configs[t].has(feature)]
        if not using:
            print("not ok - %s off: no checkpoint given uses it" % feature)
            failed += 1
        for t in using:
            failed += mutation_one(t, feature, faithful)
    return 1 if failed else 0


# ---------------------------------------------------------------- bench

class BatchedModel:
    """The batched forward Hugging Face runs: one padded batch [B, T], fp32
    weights loaded up front, per-expert gather of routed tokens; RefModel's
    own layers with a causal and padding mask."""

    def __init__(self, ckpt):
        self.ref = RefModel(ckpt)
        self.c = self.ref.c
        for name in self.ref.w.names():  # load and widen everything, as from_pretrained does
            self.ref.t(name)

    @torch.no_grad()
    def forward(self, batch, lengths):
        r, c = self.ref, self.c
        B, T = batch.shape
        pos = torch.arange(T)
        causal = pos[None, :] > pos[:, None]
        if c.sliding_window is not None:
            causal = causal | (pos[:, None] - pos[None, :] >= c.sliding_window)
        pad = pos[None, :] >= lengths[:, None]  # [B, T] keys beyond the sample
        mask = causal[None, None] | pad[:, None, None, :]
        h = r.hidden(batch, mask)
        logits = h @ r.lm_head().T  # [B, T, V]
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, c.vocab), batch[:, 1:].reshape(-1), reduction="none").view(B, T - 1)
        valid = pos[None, 1:] < lengths[:, None]
        return (nll * valid).sum(1) / (lengths - 1).clamp(min=1)


def cmd_bench(args):
    threads = None
    if "--threads" in args:
        j = args.index("--threads")
        try:
            threads = int(args[j + 1])
        except (IndexError, ValueError):
            threads = 0
        args = args[:j] + args[j + 2:]
        if threads < 1:
            print("ref_forward.py: --threads needs a positive integer", file=sys.stderr)
            return 2
    if len(args) != 2:
        print("usage: ref_forward.py bench CKPT PROBE [--threads N]", file=sys.stderr)
        return 2
    ncpu = len(os.sched_getaffinity(0))
    # Without --threads, run on one thread and on every CPU and keep the faster:
    # on a shared, loaded machine torch's OpenMP threads can wait on each other
    # for longer than the work takes, and the reference must not look slower
    # than it is.
    counts = [threads] if threads else sorted({1, ncpu})
    samples = read_probe(args[1])
    t0 = time.perf_counter()
    m = BatchedModel(args[0])
    load = time.perf_counter() - t0
    T = max(len(s[0]) for s in samples)
    batch = torch.zeros(len(samples), T, dtype=torch.int64)
    for b, (toks, _, _) in enumerate(samples):
        batch[b, :len(toks)] = torch.as_tensor(toks)
    lengths = torch.as_tensor([len(s[0]) for s in samples])
    tokens = int(lengths.sum())
    m.forward(batch[:1, :8], torch.clamp(lengths[:1], max=8))  # warm-up
    per = {}
    loss = None
    for n in counts:
        torch.set_num_threads(n)
        t1 = time.perf_counter()
        loss = m.forward(batch, lengths)
        per[n] = time.perf_counter() - t1
    best = min(per, key=per.get)
    fwd = per[best]
    print(json.dumps({
        "bench": "torch_reference", "tokens": tokens, "threads": best,
        "load_sec": round(load, 4), "forward_sec": round(fwd, 4),
        "tokens_per_sec": round(tokens / fwd, 2),
        "tokens_per_sec_with_load": round(tokens / (fwd + load), 2),
        "tokens_per_sec_by_threads": {str(n): round(tokens / t, 2) for n, t in per.items()},
        "loss_mean": float(loss[lengths > 1].mean()),
    }))
    return 0


# ---------------------------------------------------------------- command line

def cmd_run(args):
    if len(args) != 3:
        print("usage: ref_forward.py run CKPT PROBE OUT.npz", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    model = RefModel(args[0])
    out = reference(model, read_probe(args[1]))
    np.savez(args[2], **out)
    return 0


def main(argv):
    if len(argv) < 2:
        print("usage: ref_forward.py run|compare|mutations|bench ... (--help for more)",
              file=sys.stderr)
        return 2
    if argv[1] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    cmd = {"run": cmd_run, "compare": cmd_compare, "mutations": cmd_mutations,
           "bench": cmd_bench}.get(argv[1])
    if cmd is None:
        print("ref_forward.py: unknown command %r (run, compare, mutations, bench; --help)"
              % argv[1], file=sys.stderr)
        return 2
    return cmd(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
