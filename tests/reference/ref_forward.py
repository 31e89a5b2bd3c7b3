#!/usr/bin/python3
"""ref_forward.py — an independent PyTorch reference for grokwatch's forward pass.

It implements the forward pass of OlmoeForCausalLM, MixtralForCausalLM,
Qwen2MoeForCausalLM and Qwen3MoeForCausalLM in fp32, written from the Hugging
Face definitions (SPEC §3), sharing no code with the C engine, and computes
per probe sample what the engine records: gbar [L_moe, E] (mean over tokens of
softmax over ALL experts of the router logits), the loss (mean next-token NLL
in nats over positions 1..T-1; NaN for a one-token sample) and, per token and
MoE layer, the top-k expert ids (ties to the lower index), their weights as the
model uses them (renormalized for Mixtral always, for the others when
norm_topk_prob), router entropy, logsumexp of the logits and the full
probability vector.  Each sample runs on its own (positions 0..T-1, no padding).

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
        - the top-k sets are identical wherever the reference's k-th and
          (k+1)-th probabilities differ by more than 1e-5, and there the
          weights agree within 1e-5 expert by expert;
        - entropy within 1e-5 and lse within 1e-5 relative (min 1e-5 absolute).
      Give all triples in one call: torch is imported once (a few seconds for
      the 13 fixtures).  Typical use in tests/reference/test_reference.sh:
        for c in olmoe-f32 mixtral-bf16-sharded ...; do
          $GW_WRAP "$GW_BIN" analyze "$GW_FIXTURES/$c" \\
            --probe "$GW_FIXTURES/probe/probe.jsonl" --dump-routing "$TMP/$c.st"
          set -- "$@" "$GW_FIXTURES/$c" "$GW_FIXTURES/probe/probe.jsonl" "$TMP/$c.st"
        done
        "$PYTHON" "$GW_SRC/tests/reference/ref_forward.py" compare "$@"
      (its "ok"/"not ok" lines count as TAP results in tests/run.sh).

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
}
# Defaults of the Hugging Face configuration classes for absent keys.
DEFAULT_EPS = {"olmoe": 1e-5, "mixtral": 1e-5, "qwen2_moe": 1e-6, "qwen3_moe": 1e-6}
DEFAULT_THETA = {"olmoe": 10000.0, "mixtral": 1e6, "qwen2_moe": 10000.0, "qwen3_moe": 10000.0}


class RefConfig:
    """What the forward pass needs from config.json."""

    def __init__(self, cfg):
        archs = cfg.get("architectures") or []
        if archs and archs[0] in ARCHS:
            self.kind = ARCHS[archs[0]]
        elif cfg.get("model_type") in ARCHS.values():
            self.kind = cfg["model_type"]
        else:
            raise ValueError("unsupported architecture %r" % (archs[:1] or cfg.get("model_type")))
        k = self.kind
        self.vocab = cfg["vocab_size"]
        self.hidden = cfg["hidden_size"]
        self.n_layers = cfg["num_hidden_layers"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads") or self.n_heads
        if k in ("mixtral", "qwen3_moe") and cfg.get("head_dim"):
            self.head_dim = cfg["head_dim"]
        else:
            self.head_dim = self.hidden // self.n_heads
        self.n_experts = cfg["num_local_experts"] if k == "mixtral" else cfg["num_experts"]
        self.top_k = cfg["num_experts_per_tok"]
        self.renorm = True if k == "mixtral" else bool(cfg.get("norm_topk_prob", False))
        self.eps = float(cfg.get("rms_norm_eps", DEFAULT_EPS[k]))
        theta = cfg.get("rope_theta")
        if theta is None and isinstance(cfg.get("rope_parameters"), dict):
            theta = cfg["rope_parameters"].get("rope_theta")
        self.theta = float(theta if theta is not None else DEFAULT_THETA[k])
        rs = cfg.get("rope_scaling") or cfg.get("rope_parameters") or {}
        if rs.get("rope_type", rs.get("type", "default")) not in ("default", None):
            raise ValueError("rope scaling %r is not implemented" % rs)
        self.tied = bool(cfg.get("tie_word_embeddings", False))
        self.clip_qkv = cfg.get("clip_qkv") if k == "olmoe" else None
        # q/k/v (and o) biases, per the attention classes.
        if k == "qwen2_moe":
            self.qkv_bias, self.o_bias = bool(cfg.get("qkv_bias", True)), False
        elif k in ("olmoe", "qwen3_moe"):
            self.qkv_bias = self.o_bias = bool(cfg.get("attention_bias", False))
        else:
            self.qkv_bias = self.o_bias = False
        self.qk_norm = {"olmoe": "full", "qwen3_moe": "head"}.get(k)
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
        else:
            self.moe_layers = list(range(self.n_layers))
            self.moe_inter = cfg["intermediate_size"]
            self.dense_inter = None
        self.shared = cfg.get("shared_expert_intermediate_size", 0) if k == "qwen2_moe" else 0
        if not 0 < self.top_k <= self.n_experts:
            raise ValueError("top_k %d with %d experts" % (self.top_k, self.n_experts))


# ---------------------------------------------------------------- model

def rms_norm(x, w, eps):
    """x * rsqrt(mean(x^2) + eps) * w over the last axis, fp32."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_cos_sin(T, d, theta, dtype=torch.float32):
    """cos, sin [T, d] for positions 0..T-1; inv_freq = theta^(-2i/d), half-split."""
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).to(dtype) / d))
    freqs = torch.arange(T, dtype=dtype)[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def route(logits, top_k, renorm):
    """Router decision for logits [T, E] (torch, fp32).

    Returns probs [T,E] (softmax over all experts), ids [T,k] int64 (descending
    probability, ties to the lower index) and weights [T,k] (renormalized to
    sum 1 when `renorm`)."""
    probs = torch.softmax(logits, dim=-1)
    # A stable sort of -p keeps equal probabilities in index order.
    order = np.argsort(-probs.detach().cpu().numpy(), axis=-1, kind="stable")[:, :top_k]
    ids = torch.from_numpy(np.ascontiguousarray(order)).to(torch.int64)
    w = torch.gather(probs, -1, ids)
    if renorm:
        w = w / w.sum(-1, keepdim=True)
    return probs, ids, w


class RefModel:
    """The model's weights (torch fp32) and a per-sample forward pass."""

    def __init__(self, ckpt_dir, dtype=torch.float32):
        self.w = stfile.Weights(ckpt_dir)
        self.c = RefConfig(self.w.cfg)
        self.dtype = dtype
        self._cache = {}

    def t(self, name):
        if name not in self._cache:
            self._cache[name] = torch.from_numpy(np.array(self.w.get(name))).to(self.dtype)
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

    def attention(self, i, x):
        """Self-attention of layer i on normed hidden states x [T, H] of one sample."""
        c = self.c
        T = x.shape[0]
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
        q = q.view(T, c.n_heads, hd)
        k = k.view(T, c.n_kv, hd)
        v = v.view(T, c.n_kv, hd)
        if c.qk_norm == "head":  # Qwen3: per head over head_dim
            q = rms_norm(q, self.t(p + "q_norm.weight"), c.eps)
            k = rms_norm(k, self.t(p + "k_norm.weight"), c.eps)
        q, k, v = (a.transpose(0, 1) for a in (q, k, v))  # [heads, T, hd]
        cos, sin = rope_cos_sin(T, hd, c.theta, self.dtype)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = c.n_heads // c.n_kv
        k = k.repeat_interleave(rep, dim=0)
        v = v.repeat_interleave(rep, dim=0)
        s = (q @ k.transpose(1, 2)) / math.sqrt(hd)
        pos = torch.arange(T)
        mask = pos[None, :] > pos[:, None]
        if c.sliding_window is not None:
            mask = mask | (pos[:, None] - pos[None, :] >= c.sliding_window)
        s = s.masked_fill(mask, float("-inf"))
        a = torch.softmax(s, dim=-1) @ v  # [heads, T, hd]
        a = a.transpose(0, 1).reshape(T, c.n_heads * hd)
        return self.lin(a, p + "o_proj", c.o_bias)

    def ffn(self, x, gate, up, down):
        return self.lin(torch.nn.functional.silu(self.lin(x, gate)) * self.lin(x, up), down)

    def expert(self, i, e, x):
        c = self.c
        if c.kind == "mixtral":
            p = "model.layers.%d.block_sparse_moe.experts.%d." % (i, e)
            return self.ffn(x, p + "w1", p + "w3", p + "w2")
        p = "model.layers.%d.mlp.experts.%d." % (i, e)
        return self.ffn(x, p + "gate_proj", p + "up_proj", p + "down_proj")

    def router_name(self, i):
        if self.c.kind == "mixtral":
            return "model.layers.%d.block_sparse_moe.gate.weight" % i
        return "model.layers.%d.mlp.gate.weight" % i

    def moe(self, i, x):
        """MoE block of layer i on x [T, H]: (output, router logits [T, E])."""
        c = self.c
        z = x @ self.t(self.router_name(i)).T
        _, ids, w = route(z, c.top_k, c.renorm)
        out = torch.zeros_like(x)
        for e in range(c.n_experts):
            tok, slot = torch.nonzero(ids == e, as_tuple=True)
            if tok.numel() == 0:
                continue
            y = self.expert(i, e, x[tok]) * w[tok, slot][:, None]
            out.index_add_(0, tok, y)
        if c.kind == "qwen2_moe" and c.shared:
            p = "model.layers.%d.mlp." % i
            sh = self.ffn(x, p + "shared_expert.gate_proj", p + "shared_expert.up_proj",
                          p + "shared_expert.down_proj")
            out = out + torch.sigmoid(self.lin(x, p + "shared_expert_gate")) * sh
        return out, z

    def dense(self, i, x):
        p = "model.layers.%d.mlp." % i
        return self.ffn(x, p + "gate_proj", p + "up_proj", p + "down_proj")

    @torch.no_grad()
    def forward(self, tokens):
        """One sample: (logits [T, V], [router logits [T, E] per MoE layer])."""
        c = self.c
        ids = torch.as_tensor(np.asarray(tokens, dtype=np.int64))
        h = self.t("model.embed_tokens.weight")[ids]
        zs = []
        for i in range(c.n_layers):
            p = "model.layers.%d." % i
            h = h + self.attention(i, rms_norm(h, self.t(p + "input_layernorm.weight"), c.eps))
            x = rms_norm(h, self.t(p + "post_attention_layernorm.weight"), c.eps)
            if i in c.moe_layers:
                y, z = self.moe(i, x)
                zs.append(z)
            else:
                y = self.dense(i, x)
            h = h + y
        h = rms_norm(h, self.t("model.norm.weight"), c.eps)
        return h @ self.lm_head().T, zs


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
    ids, ws, ps, ent, lse = [], [], [], [], []
    for s, (toks, _, _) in enumerate(samples):
        if max(toks) >= c.vocab or min(toks) < 0:
            raise ValueError("sample %d: token id outside the vocabulary" % s)
        logits, zs = model.forward(toks)
        loss[s] = sample_loss(logits, toks)
        ntok[s] = len(toks)
        per = [route(z.float(), k, c.renorm) for z in zs]
        probs = torch.stack([p for p, _, _ in per], 1)  # [T, L, E]
        gbar[s] = probs.mean(0).numpy()
        ps.append(probs.numpy())
        ids.append(torch.stack([i for _, i, _ in per], 1).numpy())
        ws.append(torch.stack([w for _, _, w in per], 1).numpy())
        zl = torch.stack([z.float() for z in zs], 1)
        lse.append(torch.logsumexp(zl, -1).numpy())
        logp = torch.log_softmax(zl, -1)
        ent.append(-(probs * logp).sum(-1).numpy())
    return {
        "gbar": gbar, "loss": loss, "ntokens": ntok,
        "topk_ids": np.concatenate(ids).astype(np.int64),
        "topk_w": np.concatenate(ws).astype(np.float32),
        "probs": np.concatenate(ps).astype(np.float32),
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


def compare_one(ckpt, probe, routing_path):
    """Check one routing file against the reference; a Report."""
    rep = Report()
    model = RefModel(ckpt)
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
    """Top-k sets where the reference's k-th and (k+1)-th probabilities are
    more than TOL apart; weights expert by expert where the sets agree."""
    probs = ref["probs"]
    srt = -np.sort(-probs, axis=-1)
    if k < E:
        clear = (srt[..., k - 1] - srt[..., k]) > TOL
    else:
        clear = np.ones(probs.shape[:2], bool)
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


def cmd_compare(args):
    if len(args) == 0 or len(args) % 3:
        print("usage: ref_forward.py compare CKPT PROBE ROUTING [CKPT PROBE ROUTING ...]",
              file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    failed = 0
    for j in range(0, len(args), 3):
        ckpt, probe, routing = args[j:j + 3]
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


# ---------------------------------------------------------------- bench

class BatchedModel:
    """The batched forward Hugging Face runs: one padded batch [B, T], fp32
    weights loaded up front, per-expert gather of routed tokens."""

    def __init__(self, ckpt):
        self.ref = RefModel(ckpt)
        self.c = self.ref.c
        for name in self.ref.w.names():  # load and widen everything, as from_pretrained does
            self.ref.t(name)

    @torch.no_grad()
    def forward(self, batch, lengths):
        r, c = self.ref, self.c
        B, T = batch.shape
        H, hd = c.hidden, c.head_dim
        h = r.t("model.embed_tokens.weight")[batch]  # [B, T, H]
        pos = torch.arange(T)
        causal = pos[None, :] > pos[:, None]
        pad = pos[None, :] >= lengths[:, None]  # [B, T] keys beyond the sample
        mask = causal[None, None] | pad[:, None, None, :]
        cos, sin = rope_cos_sin(T, hd, c.theta)
        for i in range(c.n_layers):
            p = "model.layers.%d." % i
            x = rms_norm(h, r.t(p + "input_layernorm.weight"), c.eps)
            a = p + "self_attn."
            q = r.lin(x, a + "q_proj", c.qkv_bias)
            k = r.lin(x, a + "k_proj", c.qkv_bias)
            v = r.lin(x, a + "v_proj", c.qkv_bias)
            if c.qk_norm == "full":
                q = rms_norm(q, r.t(a + "q_norm.weight"), c.eps)
                k = rms_norm(k, r.t(a + "k_norm.weight"), c.eps)
            q = q.view(B, T, c.n_heads, hd)
            k = k.view(B, T, c.n_kv, hd)
            v = v.view(B, T, c.n_kv, hd)
            if c.qk_norm == "head":
                q = rms_norm(q, r.t(a + "q_norm.weight"), c.eps)
                k = rms_norm(k, r.t(a + "k_norm.weight"), c.eps)
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            rep = c.n_heads // c.n_kv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
            s = (q @ k.transpose(2, 3)) / math.sqrt(hd)
            s = s.masked_fill(mask, float("-inf"))
            o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, c.n_heads * hd)
            h = h + r.lin(o, a + "o_proj", c.o_bias)
            x = rms_norm(h, r.t(p + "post_attention_layernorm.weight"), c.eps).view(B * T, H)
            if i in c.moe_layers:
                z = x @ r.t(r.router_name(i)).T
                probs = torch.softmax(z, -1)
                w, sel = torch.topk(probs, c.top_k, -1)
                if c.renorm:
                    w = w / w.sum(-1, keepdim=True)
                y = torch.zeros_like(x)
                for e in range(c.n_experts):
                    tok, slot = torch.where(sel == e)
                    if tok.numel():
                        y.index_add_(0, tok, r.expert(i, e, x[tok]) * w[tok, slot, None])
                if c.kind == "qwen2_moe" and c.shared:
                    m = p + "mlp."
                    y = y + torch.sigmoid(r.lin(x, m + "shared_expert_gate")) * r.ffn(
                        x, m + "shared_expert.gate_proj", m + "shared_expert.up_proj",
                        m + "shared_expert.down_proj")
            else:
                y = r.dense(i, x)
            h = h + y.view(B, T, H)
        h = rms_norm(h, r.t("model.norm.weight"), c.eps)
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
        print("usage: ref_forward.py run|compare|bench ... (--help for more)", file=sys.stderr)
        return 2
    if argv[1] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    cmd = {"run": cmd_run, "compare": cmd_compare, "bench": cmd_bench}.get(argv[1])
    if cmd is None:
        print("ref_forward.py: unknown command %r (run, compare, bench; --help)" % argv[1],
              file=sys.stderr)
        return 2
    return cmd(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
