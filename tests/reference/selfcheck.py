#!/usr/bin/python3
"""selfcheck.py — checks of the fixture generator and the PyTorch reference
that need no C engine; TAP on stdout.  Run by test_ref_selfcheck.sh.

  (a) the generator writes the same bytes on every run;
  (b) every fixture file parses, its tensors have the shapes its config.json
      implies (rules written here, not taken from the generator), sharded
      indexes are complete, and the BF16/F16 variants hold exactly the F32
      variant's weights rounded the way torch rounds them;
  (c) the reference's gbar rows sum to 1, losses are finite for two or more
      tokens and NaN for one, and the precisions of one model agree roughly;
  (d) a second, naive implementation (numpy float64, explicit loops over
      heads, positions, tokens and experts) agrees with the reference's
      batched torch path: one layer's attention for every architecture within
      1e-5, and a whole forward pass (gbar, loss) within 1e-5;
  (e) the top-k and renormalization rules on hand-made logits, and the
      `compare` command accepting a faithful routing file and refusing
      altered ones.

Divided into: TAP helpers, the checks (a)..(e) in order, and main.
"""

import filecmp
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import ref_forward as rf  # noqa: E402
import stfile  # noqa: E402

GEN = os.path.join(SRC, "tests", "fixtures", "gen_fixtures.py")
PY = "/usr/bin/python3"

# ---------------------------------------------------------------- TAP

_n = 0
_failed = 0


def ok(cond, name, diag=None):
    global _n, _failed
    _n += 1
    if cond:
        print("ok %d - %s" % (_n, name))
    else:
        _failed += 1
        print("not ok %d - %s" % (_n, name))
        if diag:
            for line in str(diag).splitlines():
                print("#   " + line)
    sys.stdout.flush()
    return cond


# ---------------------------------------------------------------- (a) determinism

def tree_files(d):
    out = []
    for root, _, files in os.walk(d):
        for f in files:
            out.append(os.path.relpath(os.path.join(root, f), d))
    return sorted(out)


def check_determinism(tmp):
    a, b = os.path.join(tmp, "a"), os.path.join(tmp, "b")
    for d in (a, b):
        r = subprocess.run([PY, GEN, d], capture_output=True, text=True)
        if r.returncode != 0:
            ok(False, "gen_fixtures.py runs", r.stderr)
            return None
    fa, fb = tree_files(a), tree_files(b)
    _, mismatch, errors = filecmp.cmpfiles(a, b, fa, shallow=False)
    ok(fa == fb and not mismatch and not errors and len(fa) == 72,
       "generator is deterministic (%d files, same bytes in two runs)" % len(fa),
       "differ: %s %s" % (mismatch[:5], errors[:5]))
    return a


# ---------------------------------------------------------------- (b) files and shapes

NAMES = ["olmoe-f32", "olmoe-bf16", "olmoe-f16", "olmoe-bf16-sharded", "mixtral-f32",
         "mixtral-f16", "mixtral-bf16-sharded", "qwen2moe-f32", "qwen2moe-bf16",
         "qwen2moe-f16-sharded", "qwen3moe-f32", "qwen3moe-bf16", "qwen3moe-f16-sharded",
         "qwen3moeyarn-f32", "dsv3-f32", "dsv3-bf16-sharded", "dsv3nolora-f32", "glm4moe-f32",
         "glm4moe-bf16", "glm4moeplain-f32"]
SIGMOID = ("deepseek_v3", "glm4_moe")


def expected_shapes_sigmoid(cfg):
    """{name: shape} of a DeepseekV3ForCausalLM / Glm4MoeForCausalLM from
    config.json, by the modules of modeling_deepseek_v3.py / modeling_glm4_moe.py
    (plus DeepSeek's multi-token-prediction tensors beyond the last layer)."""
    mt, H, V = cfg["model_type"], cfg["hidden_size"], cfg["vocab_size"]
    nh, E = cfg["num_attention_heads"], cfg["n_routed_experts"]
    b = cfg["attention_bias"]
    out = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,), "lm_head.weight": (V, H)}
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        a = p + "self_attn."
        out[p + "input_layernorm.weight"] = out[p + "post_attention_layernorm.weight"] = (H,)
        if mt == "deepseek_v3":
            r, kr = cfg["q_lora_rank"], cfg["kv_lora_rank"]
            qk = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
            if r is None:
                out[a + "q_proj.weight"] = (nh * qk, H)
            else:
                out[a + "q_a_proj.weight"], out[a + "q_a_layernorm.weight"] = (r, H), (r,)
                out[a + "q_b_proj.weight"] = (nh * qk, r)
                if b:
                    out[a + "q_a_proj.bias"] = (r,)
            out[a + "kv_a_proj_with_mqa.weight"] = (kr + cfg["qk_rope_head_dim"], H)
            out[a + "kv_a_layernorm.weight"] = (kr,)
            out[a + "kv_b_proj.weight"] = (nh * (cfg["qk_nope_head_dim"] + cfg["v_head_dim"]), kr)
            out[a + "o_proj.weight"] = (H, nh * cfg["v_head_dim"])
            if b:
                out[a + "kv_a_proj_with_mqa.bias"] = (kr + cfg["qk_rope_head_dim"],)
                out[a + "o_proj.bias"] = (H,)
        else:
            hd, nkv = cfg.get("head_dim", H // nh), cfg["num_key_value_heads"]
            out[a + "q_proj.weight"], out[a + "o_proj.weight"] = (nh * hd, H), (H, nh * hd)
            out[a + "k_proj.weight"] = out[a + "v_proj.weight"] = (nkv * hd, H)
            if b:
                out[a + "q_proj.bias"] = (nh * hd,)
                out[a + "k_proj.bias"] = out[a + "v_proj.bias"] = (nkv * hd,)
            if cfg["use_qk_norm"]:
                out[a + "q_norm.weight"] = out[a + "k_norm.weight"] = (hd,)
        m = p + "mlp."
        if i < cfg["first_k_dense_replace"]:
            I = cfg["intermediate_size"]
            out[m + "gate_proj.weight"] = out[m + "up_proj.weight"] = (I, H)
            out[m + "down_proj.weight"] = (H, I)
            continue
        I = cfg["moe_intermediate_size"]
        S = I * cfg["n_shared_experts"]
        out[m + "gate.weight"], out[m + "gate.e_score_correction_bias"] = (E, H), (E,)
        for e in range(E):
            x = m + "experts.%d." % e
            out[x + "gate_proj.weight"] = out[x + "up_proj.weight"] = (I, H)
            out[x + "down_proj.weight"] = (H, I)
        x = m + "shared_experts."
        out[x + "gate_proj.weight"] = out[x + "up_proj.weight"] = (S, H)
        out[x + "down_proj.weight"] = (H, S)
    for j in range(cfg.get("num_nextn_predict_layers", 0)):
        p = "model.layers.%d." % (cfg["num_hidden_layers"] + j)
        out[p + "enorm.weight"] = out[p + "hnorm.weight"] = (H,)
        out[p + "eh_proj.weight"] = (H, 2 * H)
    return out


def expected_shapes(cfg):
    """{name: shape} from config.json alone, by the Hugging Face module shapes."""
    mt = cfg["model_type"]
    if mt in SIGMOID:
        return expected_shapes_sigmoid(cfg)
    H, V, nh, nkv = (cfg["hidden_size"], cfg["vocab_size"], cfg["num_attention_heads"],
                     cfg["num_key_value_heads"])
    hd = cfg["head_dim"] if mt == "qwen3_moe" else H // nh
    out = {"model.embed_tokens.weight": (V, H), "model.norm.weight": (H,)}
    if not cfg["tie_word_embeddings"]:
        out["lm_head.weight"] = (V, H)
    for i in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % i
        out[p + "input_layernorm.weight"] = (H,)
        out[p + "post_attention_layernorm.weight"] = (H,)
        for n, s in (("q_proj", (nh * hd, H)), ("k_proj", (nkv * hd, H)),
                     ("v_proj", (nkv * hd, H)), ("o_proj", (H, nh * hd))):
            out[p + "self_attn.%s.weight" % n] = s
        if mt == "qwen2_moe":
            out[p + "self_attn.q_proj.bias"] = (nh * hd,)
            out[p + "self_attn.k_proj.bias"] = (nkv * hd,)
            out[p + "self_attn.v_proj.bias"] = (nkv * hd,)
        if mt == "olmoe":
            out[p + "self_attn.q_norm.weight"] = (H,)
            out[p + "self_attn.k_norm.weight"] = (H // nh * nkv,)
        if mt == "qwen3_moe":
            out[p + "self_attn.q_norm.weight"] = (hd,)
            out[p + "self_attn.k_norm.weight"] = (hd,)
        if mt == "mixtral":
            E, I = cfg["num_local_experts"], cfg["intermediate_size"]
            out[p + "block_sparse_moe.gate.weight"] = (E, H)
            for e in range(E):
                x = p + "block_sparse_moe.experts.%d." % e
                out[x + "w1.weight"], out[x + "w3.weight"], out[x + "w2.weight"] = (I, H), (I, H), (H, I)
            continue
        dense = mt != "olmoe" and (i in cfg["mlp_only_layers"] or (i + 1) % cfg["decoder_sparse_step"])
        if dense:
            I = cfg["intermediate_size"]
            out[p + "mlp.gate_proj.weight"], out[p + "mlp.up_proj.weight"] = (I, H), (I, H)
            out[p + "mlp.down_proj.weight"] = (H, I)
            continue
        E = cfg["num_experts"]
        I = cfg["intermediate_size"] if mt == "olmoe" else cfg["moe_intermediate_size"]
        out[p + "mlp.gate.weight"] = (E, H)
        for e in range(E):
            x = p + "mlp.experts.%d." % e
            out[x + "gate_proj.weight"], out[x + "up_proj.weight"] = (I, H), (I, H)
            out[x + "down_proj.weight"] = (H, I)
        if mt == "qwen2_moe":
            S = cfg["shared_expert_intermediate_size"]
            x = p + "mlp.shared_expert."
            out[x + "gate_proj.weight"], out[x + "up_proj.weight"] = (S, H), (S, H)
            out[x + "down_proj.weight"] = (H, S)
            out[p + "mlp.shared_expert_gate.weight"] = (1, H)
    return out


# Tensor counts worked out by hand from the brief's fixture description and the
# generator's docstring (per layer: norms, attention, MLP; plus embed, norm, head).
HAND_COUNTS = {"olmoe": 3 * (2 + 4 + 2 + 1 + 8 * 3) + 3,
               "mixtral": 3 * (2 + 4 + 1 + 4 * 3) + 3,
               "qwen2_moe": 2 * (2 + 4 + 3 + 1 + 8 * 3 + 3 + 1) + (2 + 4 + 3 + 3) + 3,
               "qwen3_moe": 2 * (2 + 4 + 2 + 1 + 8 * 3) + (2 + 4 + 2 + 3) + 3,
               # MLA with q LoRA: 7 attention tensors; 2 MoE layers of router, bias,
               # 16 x 3 experts, 3 shared; 1 dense layer; 3 MTP tensors.
               "dsv3": 3 * (2 + 7) + 2 * (2 + 16 * 3 + 3) + 3 + 3 + 3,
               # plain q_proj with kv_a and o biases: 7; 3 MoE layers of 8 experts.
               "dsv3nolora": 3 * (2 + 7) + 3 * (2 + 8 * 3 + 3) + 3,
               # q/k/v/o, 3 biases, 2 QK norms; 2 MoE layers, 1 dense.
               "glm4moe": 3 * (2 + 4 + 3 + 2) + 2 * (2 + 8 * 3 + 3) + 3 + 3,
               "glm4moeplain": 3 * (2 + 4) + 2 * (2 + 8 * 3 + 3) + 3 + 3}


def check_files(fx):
    with open(os.path.join(fx, "manifest.json")) as f:
        man = json.load(f)
    ok([c["name"] for c in man["checkpoints"]] == NAMES,
       "manifest lists the %d checkpoints" % len(NAMES))
    dtypes = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}
    for ent in man["checkpoints"]:
        d = os.path.join(fx, ent["name"])
        faults = []
        try:
            w = stfile.Weights(d)
        except (OSError, ValueError, KeyError, stfile.FormatError) as e:
            ok(False, "%s parses" % ent["name"], e)
            continue
        cfg = w.cfg
        exp = expected_shapes(cfg)
        mt = cfg["model_type"]
        family = ent["name"].split("-")[0] if mt in SIGMOID else mt
        n_hand = HAND_COUNTS[family] - (1 if cfg["tie_word_embeddings"] else 0)
        if len(exp) != n_hand:
            faults.append("shape rules give %d tensors, hand count %d" % (len(exp), n_hand))
        if sorted(w.names()) != sorted(exp):
            faults.append("names differ: extra %s missing %s" % (
                sorted(set(w.names()) - set(exp))[:3], sorted(set(exp) - set(w.names()))[:3]))
        for n in w.names():
            if n in exp and tuple(w.shape(n)) != exp[n]:
                faults.append("%s is %s, expected %s" % (n, w.shape(n), exp[n]))
            # The correction bias stays F32 in every variant, as released
            # DeepSeek-V3 and GLM-4.5 checkpoints keep it.
            want_dt = "F32" if n.endswith("e_score_correction_bias") else ent["dtype"]
            if w.dtype(n) != want_dt:
                faults.append("%s is %s, expected %s" % (n, w.dtype(n), want_dt))
        if ent["dtypes"] != sorted({ent["dtype"]} | ({"F32"} if mt in SIGMOID else set())):
            faults.append("manifest dtypes %s" % ent["dtypes"])
        if dtypes[cfg["torch_dtype"]] != ent["dtype"]:
            faults.append("torch_dtype %s for %s" % (cfg["torch_dtype"], ent["dtype"]))
        index, files = stfile.checkpoint_files(d)
        if ent["sharded"] != (index is not None) or (index is not None and not 2 <= len(files) <= 3):
            faults.append("sharding: index %s, %d files" % (index is not None, len(files)))
        if index is not None:
            size = sum(int(np.prod(w.shape(n))) * (4 if w.dtype(n) == "F32" else 2) for n in w.names())
            if index["metadata"]["total_size"] != size:
                faults.append("total_size %s, tensors hold %d" % (index["metadata"]["total_size"], size))
            for k, fn in enumerate(sorted(files)):
                if os.path.basename(fn) != "model-%05d-of-%05d.safetensors" % (k + 1, len(files)):
                    faults.append("shard name %s" % fn)
        for fn in files:
            with open(fn, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
            st = stfile.SafeTensors(fn)
            if n % 8 or st.metadata != {"format": "pt"}:
                faults.append("%s: header length %d, metadata %s" % (fn, n, st.metadata))
        E = cfg.get("num_local_experts", cfg.get("num_experts", cfg.get("n_routed_experts")))
        if mt in SIGMOID:
            moe = [i for i in range(3) if i >= cfg["first_k_dense_replace"]]
        else:
            moe = [0, 2] if mt.startswith("qwen") else [0, 1, 2]
        want = {"arch": cfg["architectures"][0], "vocab": 256, "hidden": 64, "n_layers": 3,
                "n_experts": E, "top_k": 4 if ent["name"].startswith("dsv3-") else 2,
                "tied": ent["name"] == "qwen2moe-bf16", "moe_layers": moe}
        for k, v in want.items():
            if ent[k] != v:
                faults.append("manifest %s = %s, expected %s" % (k, ent[k], v))
        if cfg["tie_word_embeddings"] != want["tied"]:
            faults.append("tie_word_embeddings %s" % cfg["tie_word_embeddings"])
        ok(not faults, "%s: %d tensors parse with the shapes config.json implies" % (ent["name"], len(exp)),
           "\n".join(faults[:8]))

    # Same model at several precisions: rounding as torch rounds.
    conv = {"BF16": torch.bfloat16, "F16": torch.float16}
    for ent in man["checkpoints"]:
        if ent["dtype"] == "F32":
            continue
        base = os.path.join(fx, ent["name"].split("-")[0] + "-f32")
        w32, w = stfile.Weights(base), stfile.Weights(os.path.join(fx, ent["name"]))
        bad = []
        for n in w.names():
            want_v = torch.from_numpy(w32.get(n))
            if w.dtype(n) != "F32":
                want_v = want_v.to(conv[ent["dtype"]]).float()
            want_v = want_v.numpy()
            if not np.array_equal(w.get(n), want_v):
                bad.append(n)
        ok(not bad, "%s holds the F32 weights rounded to %s exactly" % (ent["name"], ent["dtype"]),
           "differ: %s" % bad[:4])

    # The probes.
    lines = open(os.path.join(fx, "probe", "probe.jsonl")).read().splitlines()
    objs = [json.loads(s) for s in lines]
    lens = [len(o["tokens"]) for o in objs]
    toks = [t for o in objs for t in o["tokens"]]
    ok(20 <= len(objs) <= 30 and {o["group"] for o in objs} == {"math", "code", "web"}
       and 1 in lens and 2 in lens and max(lens) == 40 and any(n % 2 for n in lens if n > 2)
       and all(isinstance(t, int) and 0 <= t < 256 for t in toks)
       and len({o["id"] for o in objs}) == len(objs),
       "probe.jsonl: %d samples, groups math/code/web, lengths 1, 2, odd, up to 40" % len(objs),
       "lengths %s" % lens)
    u16 = np.fromfile(os.path.join(fx, "probe", "tokens.u16"), dtype="<u2")
    u32 = np.fromfile(os.path.join(fx, "probe", "tokens.u32"), dtype="<u4")
    ok(u16.size == 4096 and np.array_equal(u16.astype(np.uint32), u32) and u32.max() < 256
       and len(np.unique(u32)) > 200,
       "tokens.u16 and tokens.u32 hold the same 4096 ids below 256")
    return man, objs


# ---------------------------------------------------------------- (c) reference sanity

def check_reference(fx, man, samples):
    probe = os.path.join(fx, "probe", "probe.jsonl")
    results = {}
    for ent in man["checkpoints"]:
        r = rf.reference(rf.RefModel(os.path.join(fx, ent["name"])), rf.read_probe(probe))
        results[ent["name"]] = r
        L = len(ent["moe_layers"])
        sums = r["gbar"].sum(-1)
        one = r["ntokens"] == 1
        ok(r["gbar"].shape == (len(samples), L, ent["n_experts"])
           and np.abs(sums - 1).max() < 1e-5 and (r["gbar"] >= 0).all(),
           "%s: gbar [%d,%d,%d], every row sums to 1" % ((ent["name"],) + r["gbar"].shape),
           "max |sum-1| %g" % np.abs(sums - 1).max())
        ok(np.isnan(r["loss"][one]).all() and np.isfinite(r["loss"][~one]).all()
           and (r["loss"][~one] > 0).all() and one.sum() == 1
           and 3.0 < np.nanmean(r["loss"]) < 12.0,
           "%s: loss finite and positive for T>=2, NaN for T=1 (mean %.3f)"
           % (ent["name"], np.nanmean(r["loss"])), "loss %s" % r["loss"])
        # Per-token records agree with gbar.
        ends = np.cumsum(r["ntokens"])
        mean = np.stack([r["probs"][e - n:e].mean(0) for e, n in zip(ends, r["ntokens"])])
        ok(np.abs(mean - r["gbar"]).max() < 1e-6 and r["topk_ids"].shape[0] == ends[-1],
           "%s: per-token probabilities average to gbar" % ent["name"])
    # The precisions of one model give about the same routing (catches byte-order and
    # dtype decoding faults; rounding weights to 8 or 11 bits moves little).
    for name in NAMES:
        base = name.split("-")[0] + "-f32"
        if name == base or name == "qwen2moe-bf16":  # tied: a different model
            continue
        a, b = results[name], results[base]
        dg = np.abs(a["gbar"] - b["gbar"]).max()
        dl = np.nanmax(np.abs(a["loss"] - b["loss"]) / b["loss"])
        ok(dg < 0.08 and dl < 0.03, "%s is close to %s (gbar %.3g, loss rel %.3g)" % (name, base, dg, dl))
    return results


# ---------------------------------------------------------------- (d) a naive second implementation

class Naive:
    """float64, one vector at a time, from config.json and the tensor names."""

    def __init__(self, d):
        self.w = stfile.Weights(d)
        c = self.c = self.w.cfg
        self.mt = c["model_type"]
        self.H, self.nh = c["hidden_size"], c["num_attention_heads"]
        self.nkv = c.get("num_key_value_heads", self.nh)
        self.hd = c["head_dim"] if self.mt in ("qwen3_moe", "glm4_moe") and "head_dim" in c \
            else self.H // self.nh
        self.eps = c["rms_norm_eps"]
        self.theta = c["rope_theta"]
        self.sig = self.mt in SIGMOID
        self.E = c.get("num_local_experts") or c.get("num_experts") or c.get("n_routed_experts")
        self.k = c["num_experts_per_tok"]
        self.rd = self.hd  # rotary dims of a head
        self.interleave = False
        self.scale = self.hd ** -0.5
        if self.mt == "deepseek_v3":
            self.dn, self.dr, self.dv = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
            self.rd = self.dr
            self.scale = (self.dn + self.dr) ** -0.5
            self.interleave = c.get("rope_interleave", True)
        if self.mt == "glm4_moe":
            self.rd = int(self.hd * c.get("partial_rotary_factor", 0.5))
        ys = c.get("rope_scaling") or {}
        self.yarn = ys.get("rope_type", ys.get("type")) == "yarn"
        self.rope_scale = 1.0
        if self.yarn:
            f = ys["factor"]

            def msc(m):
                return 1.0 if f <= 1 else 0.1 * m * math.log(f) + 1.0
            if ys.get("mscale") and ys.get("mscale_all_dim"):
                self.rope_scale = msc(ys["mscale"]) / msc(ys["mscale_all_dim"])
            else:
                self.rope_scale = msc(1.0)
            if self.mt == "deepseek_v3" and ys.get("mscale_all_dim"):
                self.scale *= msc(ys["mscale_all_dim"]) ** 2
            orig = ys.get("original_max_position_embeddings") or c["max_position_embeddings"]
            lo = math.floor(self.rd * math.log(orig / ((ys.get("beta_fast") or 32) * 2 * math.pi))
                            / (2 * math.log(self.theta)))
            hi = math.ceil(self.rd * math.log(orig / ((ys.get("beta_slow") or 1) * 2 * math.pi))
                           / (2 * math.log(self.theta)))
            self.yarn_lo, self.yarn_hi, self.yarn_f = max(lo, 0), min(hi, self.rd - 1), f
        self._m = {}

    def W(self, n):
        if n not in self._m:
            self._m[n] = self.w.get(n).astype(np.float64)
        return self._m[n]

    def rms(self, x, w, eps=None):
        return x / math.sqrt(float(np.mean(x * x)) + (self.eps if eps is None else eps)) * w

    def freq(self, j):
        """Angle per position of rotary pair j."""
        f = self.theta ** (-2.0 * j / self.rd)
        if not self.yarn:
            return f
        lo, hi = self.yarn_lo, self.yarn_hi
        ramp = min(max((j - lo) / ((hi - lo) or 0.001), 0.0), 1.0)
        return f / self.yarn_f * ramp + f * (1 - ramp)

    def rope(self, u, pos):
        """Rotate the first rd dims of u (pairs (j, j+rd/2), or (2j, 2j+1)
        written to j and j+rd/2 when interleaved); the rest pass."""
        rd, out = self.rd, np.array(u, dtype=np.float64)
        for j in range(rd // 2):
            ang = pos * self.freq(j)
            a, b = (u[2 * j], u[2 * j + 1]) if self.interleave else (u[j], u[j + rd // 2])
            out[j] = (a * math.cos(ang) - b * math.sin(ang)) * self.rope_scale
            out[j + rd // 2] = (b * math.cos(ang) + a * math.sin(ang)) * self.rope_scale
        return out

    def heads(self, i, X):
        """Per token: q heads, k heads, v heads (lists of vectors), GQA."""
        p = "model.layers.%d.self_attn." % i
        hd = self.hd
        bias = self.mt == "qwen2_moe" or (self.mt == "glm4_moe" and self.c["attention_bias"])
        Q, K, V = [], [], []
        for t in range(len(X)):
            q = self.W(p + "q_proj.weight") @ X[t]
            k = self.W(p + "k_proj.weight") @ X[t]
            v = self.W(p + "v_proj.weight") @ X[t]
            if bias:
                q, k, v = (q + self.W(p + "q_proj.bias"), k + self.W(p + "k_proj.bias"),
                           v + self.W(p + "v_proj.bias"))
            if self.mt == "olmoe":
                q, k = self.rms(q, self.W(p + "q_norm.weight")), self.rms(k, self.W(p + "k_norm.weight"))
            qh = [q[h * hd:(h + 1) * hd] for h in range(self.nh)]
            kh = [k[h * hd:(h + 1) * hd] for h in range(self.nkv)]
            vh = [v[h * hd:(h + 1) * hd] for h in range(self.nkv)]
            if self.mt == "qwen3_moe" or (self.mt == "glm4_moe" and self.c["use_qk_norm"]):
                qh = [self.rms(u, self.W(p + "q_norm.weight")) for u in qh]
                kh = [self.rms(u, self.W(p + "k_norm.weight")) for u in kh]
            Q.append([self.rope(u, t) for u in qh])
            K.append([self.rope(u, t) for u in kh])
            V.append(vh)
        group = self.nh // self.nkv
        return Q, [[K[t][h // group] for h in range(self.nh)] for t in range(len(X))], \
            [[V[t][h // group] for h in range(self.nh)] for t in range(len(X))]

    def heads_mla(self, i, X):
        """Per token: q, k, v heads of DeepSeek-V3's latent attention."""
        p = "model.layers.%d.self_attn." % i
        c, dn, dv = self.c, self.dn, self.dv
        b = c["attention_bias"]
        Q, K, V = [], [], []
        for t in range(len(X)):
            x = X[t]
            if c["q_lora_rank"]:
                qa = self.W(p + "q_a_proj.weight") @ x + (self.W(p + "q_a_proj.bias") if b else 0)
                q = self.W(p + "q_b_proj.weight") @ self.rms(qa, self.W(p + "q_a_layernorm.weight"), 1e-6)
            else:
                q = self.W(p + "q_proj.weight") @ x
            ckv = self.W(p + "kv_a_proj_with_mqa.weight") @ x + (
                self.W(p + "kv_a_proj_with_mqa.bias") if b else 0)
            r = c["kv_lora_rank"]
            kv = self.W(p + "kv_b_proj.weight") @ self.rms(ckv[:r], self.W(p + "kv_a_layernorm.weight"), 1e-6)
            krot = self.rope(ckv[r:], t)
            qd = dn + self.dr
            Q.append([np.concatenate((q[h * qd:h * qd + dn], self.rope(q[h * qd + dn:(h + 1) * qd], t)))
                      for h in range(self.nh)])
            K.append([np.concatenate((kv[h * (dn + dv):h * (dn + dv) + dn], krot)) for h in range(self.nh)])
            V.append([kv[h * (dn + dv) + dn:(h + 1) * (dn + dv)] for h in range(self.nh)])
        return Q, K, V

    def attention(self, i, X):
        p = "model.layers.%d.self_attn." % i
        T = len(X)
        Q, K, V = self.heads_mla(i, X) if self.mt == "deepseek_v3" else self.heads(i, X)
        dv = len(V[0][0])
        out = np.zeros((T, self.nh * dv))
        for h in range(self.nh):
            for t in range(T):
                s = [float(Q[t][h] @ K[j][h]) * self.scale for j in range(t + 1)]
                m = max(s)
                e = [math.exp(x - m) for x in s]
                z = sum(e)
                acc = np.zeros(dv)
                for j in range(t + 1):
                    acc += e[j] / z * V[j][h]
                out[t, h * dv:(h + 1) * dv] = acc
        o = [self.W(p + "o_proj.weight") @ out[t] for t in range(T)]
        if self.mt in ("olmoe", "deepseek_v3") and self.c.get("attention_bias"):
            o = [u + self.W(p + "o_proj.bias") for u in o]
        return np.stack(o)

    def ffn(self, x, g, u, d):
        a = self.W(g) @ x
        return self.W(d) @ (a / (1 + np.exp(-a)) * (self.W(u) @ x))

    def is_moe(self, i):
        if self.sig:
            return i >= self.c["first_k_dense_replace"]
        if self.mt in ("olmoe", "mixtral"):
            return True
        return i not in self.c["mlp_only_layers"] and (i + 1) % self.c["decoder_sparse_step"] == 0

    def choose(self, i, z):
        """(chosen experts, their weights, p) for one token's logits z."""
        c = self.c
        if not self.sig:
            e = np.exp(z - z.max())
            pr = e / e.sum()
            top = sorted(range(self.E), key=lambda j: (-pr[j], j))[:self.k]
            wt = [pr[j] for j in top]
            if self.mt == "mixtral" or c.get("norm_topk_prob"):
                wt = [v / sum(wt) for v in wt]
            return top, wt, pr
        s = 1 / (1 + np.exp(-z))
        b = self.W("model.layers.%d.mlp.gate.e_score_correction_bias" % i)
        ch = s + b
        G = c["n_group"]
        per = self.E // G
        gsc = [sum(sorted(ch[g * per:(g + 1) * per])[-2:]) for g in range(G)]
        kept = sorted(range(G), key=lambda g: (-gsc[g], g))[:c["topk_group"]]
        masked = [ch[j] if j // per in kept else 0.0 for j in range(self.E)]
        top = sorted(range(self.E), key=lambda j: (-masked[j], j))[:self.k]
        wt = [s[j] for j in top]
        if c["norm_topk_prob"]:
            wt = [v / (sum(wt) + 1e-20) for v in wt]
        return top, [v * c["routed_scaling_factor"] for v in wt], s / s.sum()

    def mlp(self, i, x):
        """(output, probabilities or None) for one token."""
        p = "model.layers.%d." % i
        if not self.is_moe(i):
            return self.ffn(x, p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight",
                            p + "mlp.down_proj.weight"), None
        blk = p + ("block_sparse_moe." if self.mt == "mixtral" else "mlp.")
        top, wt, pr = self.choose(i, self.W(blk + "gate.weight") @ x)
        y = np.zeros(self.H)
        for j, wj in zip(top, wt):
            x_ = blk + "experts.%d." % j
            if self.mt == "mixtral":
                y += wj * self.ffn(x, x_ + "w1.weight", x_ + "w3.weight", x_ + "w2.weight")
            else:
                y += wj * self.ffn(x, x_ + "gate_proj.weight", x_ + "up_proj.weight",
                                   x_ + "down_proj.weight")
        if self.mt == "qwen2_moe":
            sg = float(self.W(blk + "shared_expert_gate.weight")[0] @ x)
            y += 1 / (1 + math.exp(-sg)) * self.ffn(
                x, blk + "shared_expert.gate_proj.weight", blk + "shared_expert.up_proj.weight",
                blk + "shared_expert.down_proj.weight")
        if self.sig:
            y += self.ffn(x, blk + "shared_experts.gate_proj.weight",
                          blk + "shared_experts.up_proj.weight", blk + "shared_experts.down_proj.weight")
        return y, pr

    def forward(self, toks):
        """(loss, gbar [L, E]) of one sample."""
        Hs = self.W("model.embed_tokens.weight")[toks].copy()
        gbar = []
        for i in range(self.c["num_hidden_layers"]):
            p = "model.layers.%d." % i
            X = np.stack([self.rms(h, self.W(p + "input_layernorm.weight")) for h in Hs])
            Hs = Hs + self.attention(i, X)
            probs = []
            for t in range(len(toks)):
                y, pr = self.mlp(i, self.rms(Hs[t], self.W(p + "post_attention_layernorm.weight")))
                Hs[t] = Hs[t] + y
                if pr is not None:
                    probs.append(pr)
            if probs:
                gbar.append(np.mean(probs, 0))
        head = self.W("lm_head.weight") if "lm_head.weight" in self.w else self.W("model.embed_tokens.weight")
        nll = []
        for t in range(len(toks) - 1):
            lg = head @ self.rms(Hs[t], self.W("model.norm.weight"))
            m = lg.max()
            nll.append(m + math.log(np.exp(lg - m).sum()) - lg[toks[t + 1]])
        return (float(np.mean(nll)) if nll else float("nan")), np.array(gbar)


def check_naive(fx, samples, results):
    # One layer's attention, every architecture, on a 9-token sample.
    toks = next(o["tokens"] for o in samples if len(o["tokens"]) == 9)
    causal = torch.arange(9)[None, :] > torch.arange(9)[:, None]
    for name in ("olmoe-f32", "mixtral-f32", "qwen2moe-f32", "qwen3moe-f32", "qwen3moeyarn-f32",
                 "dsv3-f32", "dsv3nolora-f32", "glm4moe-f32", "glm4moeplain-f32"):
        d = os.path.join(fx, name)
        nv, ref = Naive(d), rf.RefModel(d)
        layer = 1
        emb = ref.t("model.embed_tokens.weight")[torch.as_tensor(toks)]
        x = rf.rms_norm(emb, ref.t("model.layers.%d.input_layernorm.weight" % layer), ref.c.eps)
        got = ref.attention(layer, x[None], causal[None, None])[0].numpy()
        want = nv.attention(layer, x.numpy().astype(np.float64))
        diff = np.abs(got - want).max()
        ok(diff < 1e-5 and np.abs(want).max() > 0.1,
           "%s: layer %d attention, batched torch fp32 vs naive float64 loops (max diff %.2g)"
           % (name, layer, diff))
    # Whole forward passes: naive float64 against the reference's recorded results.
    probe_samples = [o["tokens"] for o in samples]
    for name in ("olmoe-f32", "mixtral-bf16-sharded", "qwen2moe-f32", "qwen2moe-bf16",
                 "qwen3moe-f16-sharded", "qwen3moeyarn-f32", "dsv3-f32", "dsv3-bf16-sharded",
                 "dsv3nolora-f32", "glm4moe-f32", "glm4moeplain-f32"):
        nv = Naive(os.path.join(fx, name))
        r = results[name]
        worst_g = worst_l = 0.0
        for s in (1, 4, 11):  # lengths 2, 7, 19
            loss, gbar = nv.forward(probe_samples[s])
            worst_g = max(worst_g, float(np.abs(gbar - r["gbar"][s]).max()))
            worst_l = max(worst_l, abs(loss - r["loss"][s]) / abs(loss))
        ok(worst_g < 1e-5 and worst_l < 1e-5,
           "%s: whole forward, reference vs naive float64 (gbar %.2g, loss rel %.2g)"
           % (name, worst_g, worst_l))


# ---------------------------------------------------------------- (e) routing rules and compare

def check_route():
    z = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4]]))
    for renorm, want in ((False, [0.4, 0.3]), (True, [4 / 7, 3 / 7])):
        p, ids, w, _ = rf.route(z, 2, renorm)
        ok(ids.tolist() == [[3, 2]] and np.allclose(w.numpy(), [want], atol=1e-7)
           and np.allclose(p.numpy(), [[0.1, 0.2, 0.3, 0.4]], atol=1e-7),
           "route: top-2 of p=(.1,.2,.3,.4) is [3,2] with weights %s (renorm %s)" % (want, renorm))
    _, ids, w, margin = rf.route(torch.tensor([[0.0, 1.0, 1.0, 0.0]]), 2, False)
    e = math.e / (2 * math.e + 2)
    ok(ids.tolist() == [[1, 2]] and np.allclose(w.numpy(), [[e, e]], atol=1e-7),
       "route: tied top pair [1,2] in index order")
    ok(margin[0] > 0.1, "route: a tie inside the top-k leaves a clear margin at k")
    _, ids, w, margin = rf.route(torch.tensor([[1.0, 0.0, 1.0, 1.0]]), 2, True)
    ok(ids.tolist() == [[0, 2]] and np.allclose(w.numpy(), [[0.5, 0.5]], atol=1e-7),
       "route: three-way tie keeps the two lowest indices, renormalized to 1/2 each")
    ok(margin[0] == 0, "route: a tie across k has margin 0 (not compared)")
    _, ids, _, _ = rf.route(torch.zeros(1, 6), 1, False)
    ok(ids.tolist() == [[0]], "route: all equal -> expert 0")
    # The architectures' rules from their configs.
    rules = {"OlmoeForCausalLM": ({"norm_topk_prob": False}, False),
             "MixtralForCausalLM": ({"norm_topk_prob": False}, True),
             "Qwen2MoeForCausalLM": ({}, False),
             "Qwen3MoeForCausalLM": ({"norm_topk_prob": True}, True)}
    base = {"vocab_size": 8, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
            "num_experts": 4, "num_local_experts": 4, "num_experts_per_tok": 2,
            "intermediate_size": 4, "moe_intermediate_size": 4}
    for arch, (extra, want) in rules.items():
        c = rf.RefConfig(dict(base, architectures=[arch], **extra))
        ok(c.renorm == want, "%s renormalizes top-k: %s" % (arch, want))
    try:
        rf.RefConfig(dict(base, architectures=["LlamaForCausalLM"], model_type="llama"))
        refused = False
    except ValueError:
        refused = True
    ok(refused, "RefConfig refuses LlamaForCausalLM")
    check_route_sigmoid()


def check_route_sigmoid():
    """The sigmoid router on logits 0 (s = 1/2) with hand-made biases, as in
    test_forward.c's sigmoid_router_by_hand: 16 experts, 4 groups keep 2,
    top-4, renormalized and scaled by 2.5."""
    cfg = {"architectures": ["DeepseekV3ForCausalLM"], "vocab_size": 8, "hidden_size": 8,
           "num_hidden_layers": 2, "num_attention_heads": 2, "n_routed_experts": 16,
           "num_experts_per_tok": 4, "n_group": 4, "topk_group": 2, "first_k_dense_replace": 0,
           "moe_intermediate_size": 4, "intermediate_size": 8}
    c = rf.RefConfig(cfg)
    ok(c.sigmoid and c.renorm and c.scaling == 2.5 and c.shared == 4 and c.moe_layers == [0, 1],
       "RefConfig: DeepSeek-V3 defaults (renormalized, scaling 2.5, one shared expert)")
    base = [-0.6] * 4 + [0.3, -0.7, -0.8, 0.2]
    z = torch.zeros(1, 16)
    for tail, want, what in ((([-0.6, -0.7, -0.9, -0.9]), [12, 4, 7, 0],
                              "dropped groups' 0.0 beats negative kept scores; ties to expert 0"),
                             (([0.1, -0.2, -0.9, -0.9]), [4, 7, 8, 9],
                              "groups ranked by the sum of their two best, not the best")):
        bias = torch.tensor(base + tail + [0.55, -0.9, -0.9, -0.9])
        p, ids, w, margin = rf.route_sigmoid(z, bias, c)
        ok(ids.tolist() == [want] and np.allclose(w.numpy(), 0.625, atol=1e-7)
           and np.allclose(p.numpy(), 1 / 16, atol=1e-8),
           "route_sigmoid: %s -> %s, weights 0.625, p 1/16" % (what, want),
           "ids %s w %s" % (ids.tolist(), w.tolist()))
    # One group kept out of... none: n_group 1 keeps all; not renormalized.
    c1 = rf.RefConfig(dict(cfg, n_group=1, topk_group=1, norm_topk_prob=False,
                           routed_scaling_factor=1.0))
    zz = torch.tensor([[2.0, -1.0, 0.5, 3.0] * 4])
    _, ids, w, _ = rf.route_sigmoid(zz, torch.zeros(16), c1)
    s3 = 1 / (1 + math.exp(-3.0))
    ok(ids.tolist() == [[3, 7, 11, 15]] and np.allclose(w.numpy(), s3, atol=1e-7),
       "route_sigmoid: one group, no renormalization: the four sigmoid(3) experts, weight s")
    try:
        rf.RefConfig(dict(cfg, moe_layer_freq=2))
        refused = False
    except ValueError:
        refused = True
    ok(refused, "RefConfig refuses moe_layer_freq 2")


def routing_tensors(model, ref):
    t = {"gbar": ref["gbar"].astype(np.float32), "loss": ref["loss"].astype(np.float32),
         "ntokens": ref["ntokens"].astype(np.int32),
         "topk_ids": ref["topk_ids"].astype(np.uint16), "topk_w": ref["topk_w"].astype(np.float32),
         "entropy": ref["entropy"], "lse": ref["lse"]}
    for j, li in enumerate(model.c.moe_layers):
        t["router.%d" % j] = model.w.get(model.router_name(li))
    meta = {"format": "grokwatch-routing", "version": "1", "step": "-1",
            "groups": json.dumps(ref["groups"].tolist()), "ids": json.dumps(ref["ids"].tolist()),
            "top_k": str(model.c.top_k)}
    return t, meta


def check_compare(fx, tmp, results):
    probe = os.path.join(fx, "probe", "probe.jsonl")
    name = "olmoe-f32"
    ckpt = os.path.join(fx, name)
    model = rf.RefModel(ckpt)
    ref = results[name]
    good, meta = routing_tensors(model, ref)
    k, E = model.c.top_k, model.c.n_experts
    srt = -np.sort(-ref["probs"], -1)
    gap = srt[..., k - 1] - srt[..., k]
    t0, l0 = np.unravel_index(np.argmax(gap), gap.shape)  # a clearly decided token-layer
    outsider = int(np.argsort(-ref["probs"][t0, l0], kind="stable")[k])

    def variant(label, change, expect_ok, needle=None):
        t = {n: np.array(a, copy=True) for n, a in good.items()}
        m = dict(meta)
        change(t, m)
        path = os.path.join(tmp, "routing-%d.safetensors" % _n)
        stfile.write_file(path, t, m)
        rep, _ = rf.compare_one(ckpt, probe, path)
        text = "\n".join(rep.faults)
        passed = (not rep.faults) if expect_ok else (bool(rep.faults) and (needle is None or needle in text))
        ok(passed, "compare: %s -> %s" % (label, "accepted" if expect_ok else "refused"), text or "no fault")

    def bump(name_, idx, delta):
        def f(t, m):
            t[name_][idx] += delta
        return f

    def put(name_, idx, value):
        def f(t, m):
            t[name_][idx] = value
        return f

    def drop(*names):
        def f(t, m):
            for n in names:
                del t[n]
        return f

    def swap_order(t, m):  # same set in another order: still the same decision
        t["topk_ids"][t0, l0] = t["topk_ids"][t0, l0][::-1]
        t["topk_w"][t0, l0] = t["topk_w"][t0, l0][::-1]

    def other_set(t, m):
        t["topk_ids"][t0, l0, k - 1] = outsider

    def reorder_ids(t, m):
        ids = json.loads(m["ids"])
        ids[0], ids[1] = ids[1], ids[0]
        m["ids"] = json.dumps(ids)

    variant("the reference's own numbers", lambda t, m: None, True)
    variant("gbar off by 4e-6", bump("gbar", (3, 1, 2), 4e-6), True)
    variant("gbar off by 3e-5", bump("gbar", (3, 1, 2), 3e-5), False, "gbar[sample 3")
    variant("top-k ids in another order", swap_order, True)
    variant("a different top-k set where the choice is clear", other_set, False, "top-k [sample")
    variant("a top-k weight off by 1e-4", bump("topk_w", (t0, l0, 0), 1e-4), False, "topk_w")
    variant("loss off by 3e-5 relative", lambda t, m: t["loss"].__setitem__(5, t["loss"][5] * (1 + 3e-5)),
            False, "loss[sample 5")
    variant("a number as the one-token sample's loss", put("loss", 0, 5.0), False, "loss[sample 0")
    variant("NaN loss for a long sample", put("loss", 7, np.nan), False, "loss[sample 7")
    variant("wrong ntokens", put("ntokens", 2, 4), False, "ntokens[2]")
    variant("no per-token records", drop("topk_ids", "topk_w", "entropy", "lse"), False, "topk_ids")
    variant("entropy off by 1e-3", bump("entropy", (4, 0), 1e-3), False, "entropy[")
    variant("router weight changed", bump("router.1", (0, 0), 1e-3), False, "router.1")
    variant("samples out of order (metadata ids)", reorder_ids, False, "metadata ids")
    variant("gbar stored as F64", lambda t, m: t.__setitem__("gbar", t["gbar"].astype(np.float64)),
            False, "gbar is F64")

    # The command line: one TAP line per triple, exit 1 when one fails.
    goodp, badp = os.path.join(tmp, "good.safetensors"), os.path.join(tmp, "bad.safetensors")
    stfile.write_file(goodp, good, meta)
    bad = dict(good, gbar=good["gbar"] + np.float32(1e-3))
    stfile.write_file(badp, bad, meta)
    cli = os.path.join(HERE, "ref_forward.py")
    r = subprocess.run([PY, cli, "compare", ckpt, probe, goodp], capture_output=True, text=True)
    ok(r.returncode == 0 and re.search(r"^ok - olmoe-f32 ", r.stdout, re.M),
       "ref_forward.py compare: faithful file -> exit 0 and 'ok - olmoe-f32'", r.stdout + r.stderr)
    r = subprocess.run([PY, cli, "compare", ckpt, probe, goodp, ckpt, probe, badp],
                       capture_output=True, text=True)
    tap = [s for s in r.stdout.splitlines() if re.match(r"(not )?ok ", s)]
    ok(r.returncode == 1 and len(tap) == 2 and tap[0].startswith("ok - ")
       and tap[1].startswith("not ok - olmoe-f32") and "gbar[sample" in r.stdout,
       "ref_forward.py compare: one good and one bad triple -> two TAP lines, exit 1", r.stdout + r.stderr)
    r = subprocess.run([PY, cli, "compare", ckpt, probe], capture_output=True, text=True)
    ok(r.returncode == 2, "ref_forward.py compare with two arguments -> usage, exit 2")


def check_batched(fx, samples, results):
    """The benchmark's padded batch computes the same losses as one sample at a time."""
    for name in ("olmoe-f32", "mixtral-f32", "qwen2moe-bf16", "qwen3moe-f32", "dsv3-f32",
                 "dsv3nolora-f32", "glm4moe-f32"):
        m = rf.BatchedModel(os.path.join(fx, name))
        toks = [o["tokens"] for o in samples]
        batch = torch.zeros(len(toks), max(map(len, toks)), dtype=torch.int64)
        for b, t in enumerate(toks):
            batch[b, :len(t)] = torch.as_tensor(t)
        lengths = torch.as_tensor([len(t) for t in toks])
        loss = m.forward(batch, lengths).numpy()
        want = results[name]["loss"]
        keep = lengths.numpy() > 1
        d = np.abs(loss[keep] - want[keep]) / want[keep]
        ok(d.max() < 1e-5, "%s: bench's padded batch gives the per-sample losses (rel %.2g)" % (name, d.max()))


def main():
    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp(prefix="gwref.")
    try:
        fx = check_determinism(tmp)
        if fx is None:
            print("1..%d" % _n)
            return 1
        man, samples = check_files(fx)
        results = check_reference(fx, man, samples)
        check_naive(fx, samples, results)
        check_route()
        check_compare(fx, tmp, results)
        check_batched(fx, samples, results)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % _n)
    return 1 if _failed else 0


if __name__ == "__main__":
    sys.exit(main())
