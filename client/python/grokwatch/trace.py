"""grokwatch.trace — routing files from the training job's own GPUs.

For models a CPU forward pass cannot serve, the routing comes from the job
itself: `write(model, probe, step, out_dir)`, called between training steps,
runs the probe set through the model the job already holds, records each MoE
layer's routing with forward pre-hooks, and writes `routing.safetensors`
(SPEC §5) into the checkpoint directory, where grokwatchd reads it instead of
running the model.  Under torch.distributed every rank computes a contiguous
slice of the probe and rank 0 writes.

    import grokwatch.trace as gt
    probe = gt.load_probe("/data/probe.jsonl")     # the daemon's probe.path
    ...
    if step % 1000 == 0:
        save_checkpoint(model, f"/ckpt/step{step}")
        gt.write(model, probe, step, f"/ckpt/step{step}")

What is recorded (SPEC §3), for every probe sample and MoE layer: the router
logits z = W h computed here in fp32 from the router's input h and weight W
(so any router linear in the hidden state works, whatever its module
returns); p = softmax(z) over all experts, or for sigmoid routers s / sum(s)
with s = sigmoid(z), without the correction bias; gbar, the mean of p over
the sample's tokens; per token the top-k experts and their weights as the
model's rule picks them (ties to the lower index), the entropy of p and
logsumexp(z); and the sample's loss, the mean next-token NLL over positions
1..T-1 from the model's own logits (NaN for a one-token sample).  Samples are
batched with right padding: with causal attention no real position sees a
pad, and only real positions are read, so padding changes nothing.

Routers are found by module name and type (ROUTER_PATTERNS):
  Hugging Face (OLMoE, Mixtral, Qwen2-MoE, Qwen3-MoE, DeepSeek-V3, GLM-4.5)
      ...layers.N.mlp.gate, ...layers.N.block_sparse_moe.gate
  Megatron-Core     ...decoder.layers.N.mlp.router (a TopKRouter)
  torchtitan        ...layers.N.moe.router.gate
through the wrappers DDP, FSDP, torch.compile and activation checkpointing add
to names, or given by the caller as {layer: module or RouterSpec}.

Divided into: errors and the routing rule (RouterSpec, route()); finding
routers (the pattern table and one builder per trainer); RoutingRecorder (the
hooks and a batch's records); the model's side (calling it, its vocabulary,
keeping its state); write() (batches, ranks, the file); the command line.
"""

import argparse
import datetime
import inspect
import json
import os
import re
import sys
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from grokwatch import __version__
from grokwatch import probe as probe_mod
from grokwatch import safetensors as st_mod

__all__ = ["TraceError", "RouterSpec", "RoutingRecorder", "write", "load_probe", "route",
           "find_routers", "ROUTER_PATTERNS", "main"]

ROUTING_NAME = "routing.safetensors"
ROUTING_MAX_TOKENS = 16 * 1024 * 1024   # the daemon's limit on per-token records
ROUTING_MAX_ELEMS = 1 << 31
EXPERTS_MAX = 65535                     # ids are written as U16

load_probe = probe_mod.load


class TraceError(RuntimeError):
    """The trace could not be made; the message says which input and why."""


# ---------------------------------------------------------------- the routing rule

class RouterSpec:
    """One MoE layer's router and the rule its model routes by.

    module      the module whose forward receives the hidden states (the hook
                goes there); its first positional argument is read;
    weight      a callable returning the router weight [E, H] at hook time
                (default: module.weight), so that FSDP's gathered weight is read;
    top_k       experts per token;
    score       "softmax" (p = softmax(z)) or "sigmoid" (s = sigmoid(z),
                p = s / sum(s));
    choice      what the top-k is taken over: "score" (p or s) or "logits" (z,
                Megatron's softmax router without pre-softmax); the bias, when
                there is one, is added to it;
    bias        a callable returning the [E] selection bias at hook time
                (e_score_correction_bias, expert_bias), or None;
    n_group, topk_group, group_k, masked
                group-limited choice: experts in n_group groups, each scored by
                the sum of its group_k best choice values, the topk_group best
                kept (ties to the lower group), the others' choice values
                replaced by `masked` (0.0 in Hugging Face's DeepSeek-V3, -inf in
                Megatron and torchtitan);
    renorm, renorm_eps, scaling
                weights: the chosen experts' scores, divided by their sum plus
                renorm_eps when renorm, times scaling;
    layout      "bt" when the router sees tokens batch-major ([B, T, H] or
                [B*T, H]), "sb" when sequence-major (Megatron's [S, B, H]);
    name        the module's name, for messages.
    """

    def __init__(self, module: torch.nn.Module, top_k: int, score: str = "softmax",
                 renorm: bool = False, scaling: float = 1.0,
                 bias: Optional[Callable[[], Optional[torch.Tensor]]] = None, n_group: int = 1,
                 topk_group: Optional[int] = None, group_k: int = 2, masked: float = 0.0,
                 choice: str = "score", layout: str = "bt", renorm_eps: Optional[float] = None,
                 weight: Optional[Callable[[], torch.Tensor]] = None, name: Optional[str] = None):
        if score not in ("softmax", "sigmoid"):
            raise ValueError("score must be 'softmax' or 'sigmoid', not %r" % (score,))
        if choice not in ("score", "logits"):
            raise ValueError("choice must be 'score' or 'logits', not %r" % (choice,))
        if layout not in ("bt", "sb"):
            raise ValueError("layout must be 'bt' or 'sb', not %r" % (layout,))
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError("top_k must be a positive integer, not %r" % (top_k,))
        self.module = module
        self.top_k = top_k
        self.score = score
        self.renorm = bool(renorm)
        self.renorm_eps = (1e-20 if score == "sigmoid" else 0.0) if renorm_eps is None \
            else float(renorm_eps)
        self.scaling = float(scaling)
        if bias is not None and not callable(bias):
            fixed = bias
            bias = lambda: fixed  # noqa: E731
        self.bias = bias
        self.n_group = int(n_group or 1)
        self.topk_group = int(topk_group if topk_group is not None else self.n_group)
        self.group_k = int(group_k)
        self.masked = float(masked)
        self.choice = choice
        self.layout = layout
        self.weight = weight if weight is not None else (lambda: module.weight)
        self.name = name or type(module).__name__

    def __repr__(self):
        return ("RouterSpec(%r, top_k=%d, score=%r, renorm=%s, scaling=%g, groups=%d/%d, "
                "bias=%s)" % (self.name, self.top_k, self.score, self.renorm, self.scaling,
                              self.topk_group, self.n_group, self.bias is not None))


def _stable_top(v: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest of each row, descending, ties to the lower index."""
    return torch.sort(v, dim=-1, descending=True, stable=True).indices[:, :k]


def route(z: torch.Tensor, spec: RouterSpec, bias: Optional[torch.Tensor] = None):
    """The routing of fp32 logits z [n, E] by spec's rule: (p [n, E], ids
    [n, k] int64, weights [n, k], entropy [n], logsumexp [n])."""
    n, E = z.shape
    lse = torch.logsumexp(z, dim=-1)
    if spec.score == "softmax":
        logp = z - lse[:, None]
        p = logp.exp()
        ent = -(p * logp).sum(-1)
        score = p
    else:
        s = torch.sigmoid(z)
        p = s / s.sum(-1, keepdim=True)
        ent = -torch.where(p > 0, p * torch.log(p), torch.zeros_like(p)).sum(-1)
        score = s
    choice = z if spec.choice == "logits" else score
    if bias is not None:
        choice = choice + bias.to(device=z.device, dtype=torch.float32)
    G = spec.n_group
    if G > 1 and spec.topk_group < G:
        per = E // G
        grouped = choice.view(n, G, per)
        gscore = grouped.topk(spec.group_k, dim=-1).values.sum(-1)
        keep = torch.zeros(n, G, dtype=torch.bool, device=z.device)
        keep.scatter_(1, _stable_top(gscore, spec.topk_group), True)
        choice = torch.where(keep.repeat_interleave(per, dim=1), choice,
                             torch.full_like(choice, spec.masked))
    ids = _stable_top(choice, spec.top_k)
    w = score.gather(1, ids)
    if spec.renorm:
        w = w / (w.sum(-1, keepdim=True) + spec.renorm_eps)
    if spec.scaling != 1.0:
        w = w * spec.scaling
    return p, ids, w, ent, lse


# ---------------------------------------------------------------- finding routers

# Name components that wrappers insert: DDP's and FSDP's "module" (leading),
# FSDP's and checkpoint_wrapper's inner modules, torch.compile's _orig_mod.
_WRAPPERS = {"_fsdp_wrapped_module", "_checkpoint_wrapped_module", "_orig_mod",
             "_compiled_module"}


def _clean_name(name: str) -> str:
    parts = [p for p in name.split(".") if p not in _WRAPPERS]
    while parts and parts[0] == "module":
        parts = parts[1:]
    return ".".join(parts)


def _get(objs, *names, default=None):
    """The first attribute (or dict key) of `names` found on any of `objs`."""
    for name in names:
        for o in objs:
            if o is None:
                continue
            v = o.get(name) if isinstance(o, dict) else getattr(o, name, None)
            if v is not None:
                return v
    return default


def _model_config(model):
    m = _unwrap(model)
    return getattr(m, "config", None)


def _hf_spec(model, name, module, parent, grandparent):
    """Hugging Face: `gate` is an nn.Linear (the block holds top_k and
    norm_topk_prob) or, from Transformers 5, a *TopKRouter holding them; the
    DeepSeek-V3 family's DeepseekV3TopkRouter / Glm4MoeTopkRouter carry
    e_score_correction_bias and the group settings."""
    cfg = _model_config(model)
    objs = (module, parent, cfg)
    mtype = str(_get((cfg,), "model_type", default="")).lower()
    top_k = _get(objs, "top_k", "num_experts_per_tok")
    if top_k is None:
        raise TraceError("router %r: cannot tell its top-k (no top_k on the module or its "
                         "block, no num_experts_per_tok in model.config); pass "
                         "routers={layer: RouterSpec(...)}" % name)
    sigmoid = (getattr(module, "e_score_correction_bias", None) is not None
               or mtype in ("deepseek_v3", "glm4_moe")
               or _get((module, cfg), "scoring_func") == "sigmoid")
    if sigmoid:
        return RouterSpec(
            module, int(top_k), score="sigmoid",
            renorm=bool(_get(objs, "norm_topk_prob", default=True)),
            scaling=float(_get(objs, "routed_scaling_factor", default=1.0)),
            bias=(lambda: getattr(module, "e_score_correction_bias", None)),
            n_group=int(_get(objs, "n_group", default=1)),
            topk_group=int(_get(objs, "topk_group", default=1)),
            group_k=2, masked=0.0, name=name)
    renorm = _get(objs, "norm_topk_prob")
    if renorm is None:
        renorm = mtype == "mixtral" or "mixtral" in type(parent).__name__.lower() \
            or "mixtral" in type(module).__name__.lower()
    return RouterSpec(module, int(top_k), score="softmax", renorm=bool(renorm), name=name)


def _megatron_spec(model, name, module, parent, grandparent):
    """Megatron-Core's TopKRouter: its weight [E, H] is the router; topk,
    score_function, expert_bias and the config's moe_router_* settings give
    the rule (megatron/core/transformer/moe/moe_utils.py,
    topk_routing_with_score_function); its input is [S, B, H]."""
    cfg = getattr(module, "config", None)
    top_k = _get((module, cfg), "topk", "moe_router_topk")
    score = _get((module, cfg), "score_function", "moe_router_score_function",
                 default="softmax")
    if top_k is None:
        raise TraceError("router %r: a TopKRouter without topk or config.moe_router_topk" % name)
    if _get((module, cfg), "routing_type", "moe_router_load_balancing_type") == "sinkhorn":
        if int(top_k) == 1:
            raise TraceError("router %r: Sinkhorn routing with top-1 (sigmoid weights) is not "
                             "supported" % name)
        return RouterSpec(module, int(top_k), score="softmax", renorm=False, layout="sb",
                          name=name)
    if score not in ("softmax", "sigmoid"):
        raise TraceError("router %r: score function %r is not supported (softmax, sigmoid)"
                         % (name, score))
    groups = _get((cfg,), "moe_router_num_groups")
    group_topk = _get((cfg,), "moe_router_group_topk")
    scaling = _get((cfg,), "moe_router_topk_scaling_factor") or 1.0
    pre = bool(_get((cfg,), "moe_router_pre_softmax", default=False))
    kw = dict(n_group=int(groups or 1), topk_group=int(group_topk or groups or 1),
              group_k=max(1, int(top_k) // int(group_topk)) if group_topk else 2,
              masked=float("-inf"), scaling=float(scaling), layout="sb", name=name)
    if score == "softmax":
        return RouterSpec(module, int(top_k), score="softmax", renorm=not pre,
                          choice="score" if pre else "logits", **kw)
    return RouterSpec(module, int(top_k), score="sigmoid", renorm=int(top_k) > 1,
                      bias=(lambda: getattr(module, "expert_bias", None)), **kw)


def _torchtitan_spec(model, name, module, parent, grandparent):
    """torchtitan: the gate nn.Linear of a TokenChoiceTopKRouter (top_k,
    score_func, route_norm, route_scale, num_expert_groups,
    num_limited_groups) inside a MoE holding expert_bias (expert_bias_E in
    newer versions)."""
    r = parent
    top_k = getattr(r, "top_k", None)
    if top_k is None:
        raise TraceError("router %r: its router module has no top_k" % name)
    score = getattr(r, "score_func", "softmax")
    if score not in ("softmax", "sigmoid"):
        raise TraceError("router %r: score_func %r is not supported" % (name, score))
    groups = getattr(r, "num_expert_groups", None)
    limited = getattr(r, "num_limited_groups", None)
    moe = grandparent
    return RouterSpec(
        module, int(top_k), score=score, renorm=bool(getattr(r, "route_norm", False)),
        renorm_eps=1e-20, scaling=float(getattr(r, "route_scale", 1.0)),
        bias=(lambda: _get((moe,), "expert_bias_E", "expert_bias")),
        n_group=int(groups or 1), topk_group=int(limited or groups or 1), group_k=2,
        masked=float("-inf"), name=name)


# (trainer, name pattern with the layer number as group 1, a type test, builder)
ROUTER_PATTERNS = [
    ("Hugging Face", re.compile(r"(?:^|\.)layers\.(\d+)\.(?:mlp|block_sparse_moe)\.gate$"),
     lambda m: _has_matrix(m), _hf_spec),
    ("Megatron-Core", re.compile(r"(?:^|\.)decoder\.layers\.(\d+)\.mlp\.router$"),
     lambda m: "TopKRouter" in type(m).__name__, _megatron_spec),
    ("torchtitan", re.compile(r"(?:^|\.)layers\.(\d+)\.moe\.router\.gate$"),
     lambda m: isinstance(m, torch.nn.Linear), _torchtitan_spec),
]


def _has_matrix(m) -> bool:
    w = getattr(m, "weight", None)
    return isinstance(w, torch.Tensor)


def _looked_for() -> str:
    return "; ".join("%s: '%s' (%s)" % (t, p.pattern, d) for (t, p, _, _), d in zip(
        ROUTER_PATTERNS, ("a module with a weight [E, H]", "a TopKRouter", "an nn.Linear")))


def find_routers(model: torch.nn.Module) -> List[RouterSpec]:
    """Every MoE router of `model` by name and type, in layer order.  Raises
    TraceError naming what it looked for when it finds none, and when two
    routers claim one layer."""
    mods = dict(model.named_modules())
    found: Dict[int, RouterSpec] = {}
    for raw, module in mods.items():
        name = _clean_name(raw)
        for trainer, pat, is_type, build in ROUTER_PATTERNS:
            m = pat.search(name)
            if not m or not is_type(module):
                continue
            parent_name = raw.rsplit(".", 1)[0] if "." in raw else ""
            parent = mods.get(parent_name)
            grand = mods.get(parent_name.rsplit(".", 1)[0] if "." in parent_name else "")
            layer = int(m.group(1))
            spec = build(model, name, module, parent, grand)
            if layer in found:
                raise TraceError("two routers for layer %d: %r and %r; pass routers={layer: "
                                 "module} to say which" % (layer, found[layer].name, name))
            found[layer] = spec
            break
    if not found:
        raise TraceError("no MoE router found in %s: looked for module names %s; pass "
                         "routers={layer: module} to name them"
                         % (type(_unwrap(model)).__name__, _looked_for()))
    return [found[k] for k in sorted(found)]


def _specs_from_map(model, routers: Mapping) -> List[RouterSpec]:
    names = {id(m): n for n, m in model.named_modules()}
    out = []
    for layer in sorted(routers):
        r = routers[layer]
        if isinstance(r, RouterSpec):
            out.append(r)
            continue
        if not isinstance(r, torch.nn.Module):
            raise TraceError("routers[%r] is %s, not a module or a RouterSpec"
                             % (layer, type(r).__name__))
        name = _clean_name(names[id(r)]) if id(r) in names else "routers[%r]" % (layer,)
        if "TopKRouter" in type(r).__name__ and hasattr(r, "config") and hasattr(r, "topk"):
            out.append(_megatron_spec(model, name, r, None, None))
        else:
            out.append(_hf_spec(model, name, r, None, None))
    if not out:
        raise TraceError("routers is empty: give at least one {layer: module}")
    return out


# ---------------------------------------------------------------- the recorder

class _Batch:
    """Where the tokens of one batch are among the rows a router sees."""

    def __init__(self, lengths: Sequence[int], seq_len: int, device):
        self.B = len(lengths)
        self.T = seq_len
        self.lengths = torch.as_tensor(list(lengths), dtype=torch.int64, device=device)
        pos = torch.arange(seq_len, device=device)
        valid = pos[None, :] < self.lengths[:, None]          # [B, T]
        b, t = torch.nonzero(valid, as_tuple=True)           # sample-major order
        self.rows = {"bt": b * seq_len + t, "sb": t * self.B + b}
        self.sample = b
        self.n = int(b.numel())


class RoutingRecorder:
    """Forward pre-hooks on every MoE router of `model` (found by name and
    type, or given as routers={layer: module or RouterSpec}); between begin()
    and end() each router's input is turned into routing records.

        rec = RoutingRecorder(model)
        with rec:                          # hooks on; off again at exit
            rec.begin(lengths, seq_len)    # the batch's real lengths, padded length
            model(input_ids)
            records = rec.end()            # numpy arrays, tokens in sample order

    Hooks stay on the modules DDP, FSDP or torch.compile wrap, so the recorder
    is made on the wrapped model.  Outside begin()..end() the hooks do nothing.
    """

    def __init__(self, model: torch.nn.Module, routers: Optional[Mapping] = None):
        self.model = model
        self.specs = _specs_from_map(model, routers) if routers is not None else \
            find_routers(model)
        ks = {s.top_k for s in self.specs}
        if len(ks) != 1:
            raise TraceError("routers choose different numbers of experts (%s): a routing file "
                             "holds one top-k" % ", ".join(
                                 "%s: %d" % (s.name, s.top_k) for s in self.specs))
        self.top_k = ks.pop()
        self.n_experts = None
        self.hidden = None
        for s in self.specs:
            w = _weight_or_none(s)
            # FSDP keeps a flat (1-D) shard outside the forward: checked at hook time.
            if w is not None and w.dim() >= 2 and w.numel() > 0:
                self._check_weight(s, w)
        self._handles = []
        self._batch: Optional[_Batch] = None
        self._out: List[Optional[tuple]] = []
        self._error: Optional[BaseException] = None
        self.router_weights: List[Optional[np.ndarray]] = [None] * len(self.specs)
        self.capture_weights = True

    @property
    def n_layers(self) -> int:
        return len(self.specs)

    @property
    def names(self) -> List[str]:
        return [s.name for s in self.specs]

    def _check_weight(self, s: RouterSpec, w: torch.Tensor, hidden: Optional[int] = None):
        if w.dim() != 2:
            raise TraceError("router %r: weight of shape %s, not [experts, hidden]"
                             % (s.name, list(w.shape)))
        E, H = w.shape
        if hidden is not None and H != hidden:
            raise TraceError("router %r: weight of shape %s does not take the hidden size %d of "
                             "its input" % (s.name, [E, H], hidden))
        if self.n_experts is None:
            self.n_experts = E
        if E != self.n_experts:
            raise TraceError("router %r: %d experts, where %r has %d: a routing file holds one "
                             "expert count" % (s.name, E, self.specs[0].name, self.n_experts))
        if self.hidden is None:
            self.hidden = H
        if H != self.hidden:
            raise TraceError("router %r: hidden size %d, where the others have %d"
                             % (s.name, H, self.hidden))
        if E > EXPERTS_MAX:
            raise TraceError("router %r: %d experts, more than the %d a routing file can name"
                             % (s.name, E, EXPERTS_MAX))
        if s.top_k > E:
            raise TraceError("router %r: top-%d of %d experts" % (s.name, s.top_k, E))
        if s.n_group > 1 and (E % s.n_group or not 1 <= s.topk_group <= s.n_group
                              or not 1 <= s.group_k <= E // s.n_group):
            raise TraceError("router %r: %d experts do not split into %d groups keeping %d "
                             "(scored by their best %d)" % (s.name, E, s.n_group, s.topk_group,
                                                            s.group_k))

    # -- hooks ----------------------------------------------------------------

    def attach(self) -> "RoutingRecorder":
        if not self._handles:
            for i, s in enumerate(self.specs):
                self._handles.append(s.module.register_forward_pre_hook(self._hook(i)))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self.attach()

    def __exit__(self, *exc):
        self.detach()

    def _hook(self, i: int):
        def hook(module, args):
            if self._batch is None or self._error is not None:
                return None
            try:
                self._record(i, args)
            except BaseException as e:  # reported by end(), after the forward
                self._error = e
            return None
        return hook

    def begin(self, lengths: Sequence[int], seq_len: int, device=None) -> None:
        """Start a batch of len(lengths) samples padded to seq_len tokens."""
        if not lengths or min(lengths) < 1 or max(lengths) > seq_len:
            raise ValueError("lengths must be 1..seq_len, not %r" % (list(lengths),))
        self._batch = _Batch(lengths, seq_len, device or "cpu")
        self._out = [None] * len(self.specs)
        self._error = None

    def _record(self, i: int, args) -> None:
        s, b = self.specs[i], self._batch
        if not args or not isinstance(args[0], torch.Tensor):
            raise TraceError("router %r was called without a tensor as its first argument"
                             % s.name)
        if self._out[i] is not None:
            raise TraceError("router %r was called twice in one forward pass" % s.name)
        x = args[0].detach()
        H = x.shape[-1]
        w = s.weight().detach()
        self._check_weight(s, w, H)
        layout = s.layout
        if x.dim() == 3:
            if tuple(x.shape[:2]) == (b.B, b.T):
                layout = "bt" if (b.B, b.T) != (b.T, b.B) else layout
            elif tuple(x.shape[:2]) == (b.T, b.B):
                layout = "sb"
        rows = x.reshape(-1, H)
        if rows.shape[0] != b.B * b.T:
            raise TraceError("router %r saw %d tokens, but the batch holds %d x %d: a router "
                             "that sees only part of the tokens (sequence or context "
                             "parallelism) is not supported" % (s.name, rows.shape[0], b.B, b.T))
        idx = b.rows[layout].to(rows.device)
        z = rows.index_select(0, idx).float() @ w.to(device=rows.device, dtype=torch.float32).T
        bias = s.bias() if s.bias is not None else None
        if bias is not None and tuple(bias.shape) != (w.shape[0],):
            raise TraceError("router %r: selection bias of shape %s for %d experts"
                             % (s.name, list(bias.shape), w.shape[0]))
        p, ids, wt, ent, lse = route(z, s, bias)
        gsum = torch.zeros(b.B, p.shape[1], dtype=torch.float32, device=p.device)
        gsum.index_add_(0, b.sample.to(p.device), p)
        self._out[i] = (gsum, ids, wt, ent, lse)
        if self.capture_weights and self.router_weights[i] is None:
            self.router_weights[i] = w.float().cpu().numpy().copy()

    def end(self) -> Dict[str, np.ndarray]:
        """The batch's records: gbar [B, L, E], ntokens [B], and per token (in
        sample order) topk_ids [n, L, k], topk_w [n, L, k], entropy [n, L],
        lse [n, L].  Raises what a hook met, or TraceError for a router the
        forward pass did not call."""
        b, out, err = self._batch, self._out, self._error
        self._batch, self._out, self._error = None, [], None
        if b is None:
            raise RuntimeError("end() without begin()")
        if err is not None:
            raise err
        missing = [self.specs[i].name for i, o in enumerate(out) if o is None]
        if missing:
            raise TraceError("the forward pass did not call the router(s) %s" % ", ".join(
                repr(m) for m in missing))
        lengths = b.lengths.to(out[0][0].device, torch.float32)
        gbar = torch.stack([o[0] for o in out], 1) / lengths[:, None, None]
        return {
            "gbar": gbar.cpu().numpy(),
            "ntokens": b.lengths.cpu().numpy().astype(np.int32),
            "topk_ids": torch.stack([o[1] for o in out], 1).cpu().numpy().astype(np.uint16),
            "topk_w": torch.stack([o[2] for o in out], 1).float().cpu().numpy(),
            "entropy": torch.stack([o[3] for o in out], 1).float().cpu().numpy(),
            "lse": torch.stack([o[4] for o in out], 1).float().cpu().numpy(),
        }


def _weight_or_none(s: RouterSpec):
    try:
        w = s.weight()
    except AttributeError:
        return None
    return w if isinstance(w, torch.Tensor) else None


# ---------------------------------------------------------------- the model's side

def _unwrap(model):
    """The module inside DDP / FSDP / torch.compile wrappers."""
    seen = 0
    while seen < 8:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner
        seen += 1
    return model


def vocab_size(model) -> Optional[int]:
    """The model's vocabulary size: config.vocab_size, the input embedding's
    rows (Hugging Face, torchtitan's tok_embeddings, Megatron's
    embedding.word_embeddings), or model.vocab_size; None if none says."""
    m = _unwrap(model)
    cfg = getattr(m, "config", None)
    v = _get((cfg,), "vocab_size", "padded_vocab_size")
    if isinstance(v, int) and v > 0:
        return v
    emb = None
    get = getattr(m, "get_input_embeddings", None)
    if callable(get):
        try:
            emb = get()
        except (NotImplementedError, AttributeError):
            emb = None
    if emb is None:
        emb = getattr(m, "tok_embeddings", None)
    if emb is None:
        e = getattr(m, "embedding", None)
        emb = getattr(e, "word_embeddings", None)
    n = getattr(emb, "num_embeddings", None)
    if isinstance(n, int) and n > 0:
        return n
    v = getattr(m, "vocab_size", None)
    return v if isinstance(v, int) and v > 0 else None


def default_forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """Call the model as its forward() takes it: Hugging Face style
    (input_ids=, attention_mask=) when it has an attention_mask parameter,
    else model(input_ids) (torchtitan)."""
    try:
        params = inspect.signature(_unwrap(model).forward).parameters
    except (TypeError, ValueError):
        params = {}
    if "attention_mask" in params and "input_ids" in params:
        return model(input_ids=input_ids, attention_mask=attention_mask)
    return model(input_ids)


def _logits(out, B: int, T: int) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        t = out
    elif getattr(out, "logits", None) is not None:
        t = out.logits
    elif isinstance(out, dict) and "logits" in out:
        t = out["logits"]
    elif isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        t = out[0]
    else:
        raise TraceError("the model returned %s, not logits; pass forward= to return logits "
                         "[batch, tokens, vocab]" % type(out).__name__)
    if t.dim() != 3 or tuple(t.shape[:2]) != (B, T):
        raise TraceError("the model returned logits of shape %s for a batch of %d x %d; pass "
                         "forward= to return logits [batch, tokens, vocab]"
                         % (list(t.shape), B, T))
    return t


def _sample_losses(logits: torch.Tensor, ids: torch.Tensor, lengths: Sequence[int]) -> np.ndarray:
    """Mean next-token NLL over positions 1..T-1 of each sample, in fp32
    (NaN for one token).  Each sample's real positions are read in place, a
    few rows at a time: a logsumexp over all of a batch's logits at once
    spends more on faulting in its temporaries than on the exponentials."""
    B, T, V = logits.shape
    rows = max(1, (1 << 20) // max(V, 1))
    sums = torch.zeros(B, dtype=torch.float64, device=logits.device)
    for b, n in enumerate(lengths):
        tgt = ids[b, 1:n]
        for a in range(0, n - 1, rows):
            z = logits[b, a:min(n - 1, a + rows)].float()
            nll = torch.logsumexp(z, dim=-1) - z.gather(1, tgt[a:a + rows, None])[:, 0]
            sums[b] += nll.double().sum()
    s = sums.cpu().numpy()
    out = np.full(B, np.nan, np.float64)
    for b, n in enumerate(lengths):
        if n > 1:
            out[b] = s[b] / (n - 1)
    return out.astype(np.float32)


class _KeptState:
    """Train/eval flags of every module, the RNG states and every buffer,
    restored exactly after the trace (torchtitan's MoE counts tokens in a
    buffer on every forward; dropout and router jitter draw random numbers)."""

    def __init__(self, model):
        self.modes = [(m, m.training) for m in model.modules()]
        self.buffers = [(b, b.detach().clone()) for b in model.buffers()]
        self.cpu_rng = torch.random.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def restore(self):
        for m, mode in self.modes:
            m.training = mode
        with torch.no_grad():
            for b, saved in self.buffers:
                if b.shape == saved.shape:
                    b.copy_(saved)
        torch.random.set_rng_state(self.cpu_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


# ---------------------------------------------------------------- write()

def _model_device(model, device):
    if device is not None:
        return torch.device(device)
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _split(n_batches: int, world: int, rank: int):
    """Rank `rank`'s contiguous run of batches: the first n % world ranks get
    one more."""
    base, extra = divmod(n_batches, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _arch_name(model) -> Optional[str]:
    cfg = _model_config(model)
    archs = _get((cfg,), "architectures")
    if isinstance(archs, (list, tuple)) and archs and isinstance(archs[0], str):
        return archs[0]
    return type(_unwrap(model)).__name__


def _run_slice(model, rec, samples, batches, batch_size, device, forward, pad_id, progress,
               vocab):
    """The records of this rank's batches, concatenated (numpy)."""
    parts = {k: [] for k in ("gbar", "ntokens", "topk_ids", "topk_w", "entropy", "lse", "loss")}
    done = 0
    for start, end in batches:
        chunk = samples[start:end]
        lengths = [len(s.tokens) for s in chunk]
        T = max(lengths)
        ids = torch.full((len(chunk), T), pad_id, dtype=torch.int64)
        mask = torch.zeros((len(chunk), T), dtype=torch.int64)
        for i, s in enumerate(chunk):
            ids[i, :len(s.tokens)] = torch.from_numpy(s.tokens.astype(np.int64))
            mask[i, :len(s.tokens)] = 1
        ids, mask = ids.to(device), mask.to(device)
        rec.begin(lengths, T, device)
        try:
            out = forward(model, ids, mask)
        except BaseException:
            rec._batch = None
            raise
        r = rec.end()
        logits = _logits(out, len(chunk), T)
        if logits.shape[-1] < vocab:
            raise TraceError("the model's logits cover %d entries of its vocabulary of %d: "
                             "gather them across tensor-parallel ranks (Megatron-Core: "
                             "parallel_output=False) or pass forward= returning the full "
                             "logits" % (logits.shape[-1], vocab))
        r["loss"] = _sample_losses(logits, ids, lengths)
        del out, logits
        for k in parts:
            parts[k].append(r[k])
        done += len(chunk)
        if progress is not None:
            progress(done)
    if not parts["gbar"]:
        return None
    return {k: np.concatenate(v) for k, v in parts.items()}


def _dist():
    d = torch.distributed
    if d.is_available() and d.is_initialized():
        return d
    return None


def write(model: torch.nn.Module, probe: Union[probe_mod.Probe, str], step: Optional[int],
          out_dir: str, *, routers: Optional[Mapping] = None,
          recorder: Optional[RoutingRecorder] = None, batch_size: int = 8,
          forward: Optional[Callable] = None, vocab: Optional[int] = None, pad_id: int = 0,
          device=None, tokens: bool = True, router_weights: bool = True,
          timeout: float = 600.0, checkpoint: Optional[str] = None,
          progress: Optional[Callable[[int, int], None]] = None) -> Optional[str]:
    """Trace `probe` through `model` and write out_dir/routing.safetensors.

    Call it between training steps, on every rank when torch.distributed is
    initialized: each rank runs a contiguous run of the probe's batches of
    `batch_size` samples and rank 0 gathers the records (over a gloo group of
    its own, whatever the job's backend, with `timeout` seconds for every
    exchange) and writes the file atomically.  The model runs in eval mode
    under torch.no_grad(); every module's train flag, every buffer and the RNG
    states are restored after, and no parameter is touched.

    probe       a Probe (grokwatch.probe.load) or the path of a JSON Lines probe;
    step        the checkpoint's step (None: left out of the file);
    forward     forward(model, input_ids, attention_mask) -> logits [B, T, V]
                (or an output with .logits); default_forward by default;
    vocab       the vocabulary size the probe is checked against (default:
                from the model, vocab_size());
    tokens      write the per-token records (top-k, weights, entropy,
                logsumexp) the daemon's routing health and churn need;
    router_weights  write router.<l> (pathway consistency needs them unless the
                directory holds a Hugging Face checkpoint with the routers);
    progress    called as progress(samples_done_here, samples_here).

    Returns the file's path on the writing rank, None on the others.  Raises
    TraceError (or probe.ProbeError) on every rank when any rank failed: no
    file is written then, and an existing one is left as it was.
    """
    if isinstance(probe, str):
        probe = probe_mod.load(probe)
    if not probe.hash:
        probe.finish()
    if len(probe) == 0:
        raise TraceError("the probe set holds no sample")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1, not %r" % (batch_size,))
    d = _dist()
    rank, world = (d.get_rank(), d.get_world_size()) if d else (0, 1)
    group = None
    if d is not None:
        group = d.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout))
    try:
        return _write(model, probe, step, out_dir, routers, recorder, batch_size, forward, vocab,
                      pad_id, device, tokens, router_weights, checkpoint, progress, d, group,
                      rank, world, timeout)
    finally:
        if group is not None:
            try:
                d.destroy_process_group(group)
            except Exception:  # a broken group after a failed rank: nothing to free
                pass


def _exchange(d, group, rank, world, what, timeout):
    """Every rank's `what` (small, picklable), or TraceError after a rank
    left or the timeout passed."""
    got = [None] * world
    try:
        d.all_gather_object(got, what, group=group)
    except Exception as e:
        raise TraceError("rank %d of %d: the ranks could not agree within %g s (a rank failed "
                         "or left: %s); no routing file written" % (rank, world, timeout, e)) \
            from None
    return got


def _write(model, probe, step, out_dir, routers, rec, batch_size, forward, vocab, pad_id, device,
           tokens, router_weights, checkpoint, progress, d, group, rank, world, timeout):
    nb = (len(probe) + batch_size - 1) // batch_size
    b0, b1 = _split(nb, world, rank)
    mine = [(i * batch_size, min(len(probe), (i + 1) * batch_size)) for i in range(b0, b1)]
    here = sum(e - s for s, e in mine)
    error = None
    result = None
    own_rec = rec is None
    kept = None
    try:
        if step is not None and (not isinstance(step, int) or step < 0):
            raise TraceError("step must be a non-negative integer or None, not %r" % (step,))
        if not os.path.isdir(out_dir):
            raise TraceError('"%s": not a directory' % out_dir)
        v = vocab if vocab is not None else vocab_size(model)
        if v is None:
            raise TraceError("cannot tell the model's vocabulary size; pass vocab=")
        probe.check_vocab(v)
        if rec is None:
            rec = RoutingRecorder(model, routers)
        rec.capture_weights = router_weights and rank == 0
        rec.router_weights = [None] * rec.n_layers
        dev = _model_device(model, device)
        fwd = forward or default_forward
        kept = _KeptState(model)
        model.eval()
        with torch.no_grad(), rec:
            result = _run_slice(model, rec, probe.samples, mine, batch_size, dev, fwd, pad_id,
                                (lambda n: progress(n, here)) if progress else None, v)
    except BaseException as e:
        if d is None:
            raise
        error = e
    finally:
        if kept is not None:
            kept.restore()
        if own_rec and rec is not None:
            rec.detach()
    if d is not None:
        status = _exchange(d, group, rank, world,
                           None if error is None else "%s: %s" % (type(error).__name__, error),
                           timeout)
        failed = [(r, s) for r, s in enumerate(status) if s is not None]
        if failed:
            msg = "; ".join("rank %d: %s" % rs for rs in failed)
            raise TraceError("rank %d of %d: the trace failed on %s; no routing file written"
                             % (rank, world, msg)) from error
        parts = [None] * world if rank == 0 else None
        try:
            d.gather_object(result, parts, dst=0, group=group)
        except Exception as e:
            raise TraceError("rank %d of %d: gathering the records failed (%s); no routing file "
                             "written" % (rank, world, e)) from None
    else:
        parts = [result]
    path = None
    error = None
    if rank == 0:
        try:
            path = _assemble_and_write(probe, parts, rec, step, out_dir, tokens, router_weights,
                                       checkpoint, model, world)
        except BaseException as e:
            if d is None:
                raise
            error = e
    if d is not None:
        status = _exchange(d, group, rank, world,
                           None if error is None else "%s: %s" % (type(error).__name__, error),
                           timeout)
        if status[0] is not None:
            raise TraceError("rank %d of %d: rank 0 could not write the routing file: %s"
                             % (rank, world, status[0])) from error
    return path


def _assemble_and_write(probe, parts, rec, step, out_dir, tokens, router_weights, checkpoint,
                        model, world) -> str:
    parts = [p for p in parts if p is not None]
    r = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    N = len(probe)
    if r["gbar"].shape[0] != N:
        raise TraceError("records of %d samples for a probe of %d" % (r["gbar"].shape[0], N))
    want = np.array([len(s.tokens) for s in probe.samples], np.int32)
    if not np.array_equal(r["ntokens"], want):
        raise TraceError("the ranks' records are not in probe order")
    T = int(want.sum())
    tensors = {"gbar": r["gbar"].astype(np.float32), "loss": r["loss"].astype(np.float32),
               "ntokens": want}
    if tokens:
        if T > ROUTING_MAX_TOKENS:
            raise TraceError("%d probe tokens, more than the %d a routing file's per-token "
                             "records may hold; pass tokens=False" % (T, ROUTING_MAX_TOKENS))
        for k in ("topk_ids", "topk_w", "entropy", "lse"):
            tensors[k] = r[k]
        if tensors["topk_ids"].size >= ROUTING_MAX_ELEMS:
            raise TraceError("per-token records of %d elements, more than a routing file "
                             "takes; pass tokens=False" % tensors["topk_ids"].size)
    if router_weights:
        for l, w in enumerate(rec.router_weights):
            if w is None:
                raise TraceError("router %r: its weight was not seen" % rec.specs[l].name)
            tensors["router.%d" % l] = w.astype(np.float32)
    meta = {
        "format": "grokwatch-routing",
        "version": "1",
        "groups": json.dumps([s.group for s in probe.samples], ensure_ascii=False,
                             separators=(",", ":")),
        "ids": json.dumps([s.id for s in probe.samples], ensure_ascii=False,
                          separators=(",", ":")),
        "top_k": str(rec.top_k),
        "probe_hash": probe.hash,
        "checkpoint": checkpoint or os.path.basename(os.path.normpath(out_dir)),
        "writer": "grokwatch.trace %s" % __version__,
        "routers": json.dumps(rec.names, separators=(",", ":")),
    }
    arch = _arch_name(model)
    if arch:
        meta["arch"] = arch[:4000]
    if step is not None:
        meta["step"] = str(int(step))
    path = os.path.join(out_dir, ROUTING_NAME)
    st_mod.write(path, tensors, meta)
    return path


# ---------------------------------------------------------------- the command line

_STEP_PATTERNS = [re.compile(p) for p in (r"^step(\d+)$", r"^step(\d+)-.*$",
                                          r"^checkpoint-(\d+)$", r"^iter_(\d+)$",
                                          r"^global_step(\d+)$")]


def step_of(ckpt_dir: str) -> Optional[int]:
    """The step of a checkpoint directory, as the daemon's default patterns
    and trainer_state.json's global_step give it; None when neither does."""
    base = os.path.basename(os.path.normpath(ckpt_dir))
    for p in _STEP_PATTERNS:
        m = p.match(base)
        if m:
            return int(m.group(1))
    try:
        with open(os.path.join(ckpt_dir, "trainer_state.json")) as f:
            g = json.load(f).get("global_step")
        if isinstance(g, int) and g >= 0:
            return g
    except (OSError, ValueError, AttributeError):
        pass
    return None


class _Progress:
    def __init__(self, stream, total):
        self.stream, self.total, self.t0 = stream, total, time.monotonic()

    def __call__(self, done, _here=None):
        el = time.monotonic() - self.t0
        self.stream.write("\rgrokwatch.trace: %d/%d samples, %.1f s" % (done, self.total, el))
        self.stream.flush()

    def finish(self):
        self.stream.write("\n")
        self.stream.flush()


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python3 -m grokwatch.trace",
        description="Write CKPT_DIR/routing.safetensors from a Hugging Face checkpoint "
                    "directory through transformers, on a GPU or the CPU; under torchrun every "
                    "rank takes a slice of the probe and rank 0 writes.")
    ap.add_argument("ckpt", metavar="CKPT_DIR", help="Hugging Face checkpoint directory")
    ap.add_argument("--probe", required=True, metavar="FILE", help="probe set (as probe.path)")
    ap.add_argument("--probe-format", choices=probe_mod.FORMATS, default="jsonl",
                    help="jsonl (default), or u16 / u32 token memmaps")
    ap.add_argument("--sample-length", type=int, default=512, metavar="N",
                    help="tokens a sample, memmaps (default 512)")
    ap.add_argument("--count", type=int, default=64, metavar="N",
                    help="samples cut from a memmap (default 64)")
    ap.add_argument("--offset", type=int, default=0, metavar="N",
                    help="first token of the first sample, memmaps (default 0)")
    ap.add_argument("--group", default=None, help="group of memmap samples (default 'default')")
    ap.add_argument("--device", default=None,
                    help="cuda, cuda:N or cpu (default: cuda when available, under torchrun "
                         "cuda:LOCAL_RANK)")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                    help="weights and activations (the router logits are fp32 either way)")
    ap.add_argument("--batch", type=int, default=8, metavar="N", help="samples a batch (8)")
    ap.add_argument("--step", type=int, default=None, metavar="N",
                    help="the step (default: from the directory name or trainer_state.json)")
    ap.add_argument("--no-tokens", action="store_true",
                    help="leave out the per-token records (routing health and churn)")
    a = ap.parse_args(argv)
    prog = "grokwatch.trace"
    if a.batch < 1:
        ap.error("--batch must be at least 1")
    if a.step is not None and a.step < 0:
        ap.error("--step must be non-negative")
    try:
        import transformers  # noqa: F401
    except Exception as e:  # noqa: BLE001 (a broken installation raises anything)
        if not isinstance(e, ImportError):
            print("%s: the transformers package fails to import: %s: %s"
                  % (prog, type(e).__name__, e), file=sys.stderr)
            return 1
        print("%s: this command loads Hugging Face checkpoints through the transformers "
              "package, which is not installed here (pip install transformers); from a "
              "training job call grokwatch.trace.write(model, probe, step, out_dir) instead"
              % prog, file=sys.stderr)
        return 1
    if not os.path.isdir(a.ckpt) or not os.path.exists(os.path.join(a.ckpt, "config.json")):
        print('%s: "%s": not a Hugging Face checkpoint directory (no config.json)'
              % (prog, a.ckpt), file=sys.stderr)
        return 1
    try:
        probe = probe_mod.load(a.probe, a.probe_format, a.sample_length, a.count, a.offset,
                               a.group)
    except probe_mod.ProbeError as e:
        print("%s: %s" % (prog, e), file=sys.stderr)
        return 1
    dist_env = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    device = a.device
    if device is None:
        if torch.cuda.is_available():
            device = "cuda:%s" % os.environ.get("LOCAL_RANK", "0")
        else:
            device = "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("%s: --device %s, but torch sees no GPU" % (prog, device), file=sys.stderr)
        return 1
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    started_pg = False
    if dist_env and int(os.environ["WORLD_SIZE"]) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        started_pg = True
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    dtype = torch.float32 if a.dtype == "float32" else torch.bfloat16
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(a.ckpt, torch_dtype=dtype)
        model.to(device)
    except Exception as e:  # transformers raises many kinds
        print('%s: "%s": cannot load the model: %s' % (prog, a.ckpt, e), file=sys.stderr)
        return 1
    bar = _Progress(sys.stderr, len(probe)) if rank == 0 and sys.stderr.isatty() else None
    step = a.step if a.step is not None else step_of(a.ckpt)
    try:
        path = write(model, probe, step, a.ckpt, batch_size=a.batch, device=device,
                     tokens=not a.no_tokens, progress=bar)
    except (TraceError, probe_mod.ProbeError, OSError) as e:
        if bar:
            bar.finish()
        print("%s: %s" % (prog, e), file=sys.stderr)
        return 1
    except Exception as e:  # the model's own forward pass failed
        if bar:
            bar.finish()
        print('%s: "%s": the model\'s forward pass failed: %s: %s'
              % (prog, a.ckpt, type(e).__name__, e), file=sys.stderr)
        return 1
    finally:
        if started_pg:
            torch.distributed.destroy_process_group()
    if bar:
        bar.finish()
    if path:
        print("%s: wrote %s (%d samples, step %s, probe %s)"
              % (prog, path, len(probe), "unknown" if step is None else step, probe.hash[:12]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
