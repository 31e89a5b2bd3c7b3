"""ref_modules.py — the PyTorch reference (ref_forward.RefModel) as nn.Module
trees named and shaped the way the trainers name theirs, for the tests of
grokwatch.trace (client/python/grokwatch/trace.py).

The numbers are RefModel's, layer by layer (the same fp32 forward the C engine
is checked against); what these classes add is the module tree around it, so
that router discovery, forward pre-hooks, DDP wrapping and train/eval flags
meet what they meet in a real job, without downloading any trainer:

  HFModel(ckpt)         Hugging Face: model.layers.N.mlp.gate (Mixtral:
                        model.layers.N.block_sparse_moe.gate), an nn.Linear
                        [E, H] inside a block carrying top_k and norm_topk_prob
                        (OlmoeSparseMoeBlock and the like); for the DeepSeek-V3
                        family a TopkRouter module carrying weight,
                        e_score_correction_bias, top_k, n_group, topk_group,
                        norm_topk_prob and routed_scaling_factor
                        (DeepseekV3TopkRouter, Glm4MoeTopkRouter); model.config
                        is config.json; forward(input_ids, attention_mask) returns
                        an object with .logits.
  MegatronGPTModel(ckpt, pre_softmax)
                        Megatron-Core: decoder.layers.N.mlp.router, a class named
                        TopKRouter with weight, topk, score_function,
                        routing_type, expert_bias and a TransformerConfig-like
                        config (moe_router_topk, moe_router_pre_softmax, ...),
                        called with hidden states [S, B, H] as Megatron's MoE
                        layer calls it; embedding.word_embeddings;
                        forward(input_ids, position_ids, attention_mask) returns
                        logits [B, S, V].
  TorchtitanTransformer(ckpt)
                        torchtitan: layers (a ModuleDict) "N".moe.router.gate, an
                        nn.Linear inside a TokenChoiceTopKRouter (top_k,
                        score_func, route_norm, route_scale, num_expert_groups,
                        num_limited_groups) inside a MoE holding the expert_bias
                        buffer and a tokens_per_expert buffer the forward adds
                        to, as torchtitan's does; tok_embeddings; forward(tokens)
                        returns logits [B, T, V].

Batches are right-padded; the key mask hides padding, so every real position
computes what a one-sample pass computes.  The model's own routing is
RefModel's (the Hugging Face rule of the checkpoint's architecture).  Every
weight is a parameter (frozen; routers trainable with trainable_routers=True,
for the tests that train between traces).
"""

import os
import sys
import types

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_forward as rf  # noqa: E402


class _Routed(rf.RefModel):
    """RefModel whose router logits come from a function (the module tree's)."""

    def __init__(self, ckpt, route_fn):
        super().__init__(ckpt)
        self._route_fn = route_fn

    def router_logits(self, i, x):
        return self._route_fn(i, x)


class Output:
    def __init__(self, logits):
        self.logits = logits


class _Base(nn.Module):
    """The reference's weights as parameters and its batched forward."""

    def __init__(self, ckpt, trainable_routers=False):
        super().__init__()
        object.__setattr__(self, "ref", _Routed(ckpt, self._router_logits))
        self.cfg = self.ref.w.cfg
        self.c = self.ref.c
        self.trainable_routers = trainable_routers
        self.weights = nn.ParameterList()
        self._shared = {}

    def _param(self, name, trainable=False):
        """The checkpoint tensor `name` as a parameter shared with the reference."""
        if name not in self._shared:
            p = nn.Parameter(self.ref.t(name).clone(), requires_grad=trainable)
            self.ref._cache[name] = p
            self._shared[name] = p
        return self._shared[name]

    def _own_all(self):
        for name in self.ref.w.names():
            if name not in self._shared:
                self.weights.append(self._param(name))

    def _router_logits(self, i, x):
        raise NotImplementedError

    def run(self, input_ids, lengths=None):
        """Logits [B, T, V] of right-padded input_ids with real lengths."""
        ids = input_ids
        B, T = ids.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.int64)
        lengths = torch.as_tensor(lengths).to(torch.int64)
        pos = torch.arange(T)
        mask = pos[None, :] > pos[:, None]
        if self.c.sliding_window is not None:
            mask = mask | (pos[:, None] - pos[None, :] >= self.c.sliding_window)
        mask = mask[None, None] | (pos[None, :] >= lengths[:, None])[:, None, None, :]
        self._batch = (B, T)
        # RefModel.hidden without its no_grad, so that training through it works.
        h = rf.RefModel.hidden.__wrapped__(self.ref, ids, mask)
        return h @ self.ref.lm_head().T


# ---------------------------------------------------------------- Hugging Face

class SparseMoeBlock(nn.Module):
    """OlmoeSparseMoeBlock / Qwen2MoeSparseMoeBlock / MixtralSparseMoeBlock:
    the block holds top_k (and norm_topk_prob but in Mixtral) and the gate."""

    def __init__(self, gate, top_k, norm_topk_prob=None):
        super().__init__()
        self.gate = gate
        self.top_k = top_k
        if norm_topk_prob is not None:
            self.norm_topk_prob = norm_topk_prob


class TopkRouter(nn.Module):
    """DeepseekV3TopkRouter / Glm4MoeTopkRouter's attributes."""

    def __init__(self, weight, bias, c):
        super().__init__()
        self.weight = weight
        self.register_buffer("e_score_correction_bias", bias)
        self.top_k = c.top_k
        self.n_routed_experts = c.n_experts
        self.n_group = c.n_group
        self.topk_group = c.topk_group
        self.norm_topk_prob = c.renorm
        self.routed_scaling_factor = c.scaling

    def forward(self, x):
        return x @ self.weight.T


class HFModel(_Base):
    def __init__(self, ckpt, trainable_routers=False):
        super().__init__(ckpt, trainable_routers)
        c = self.c
        self.config = types.SimpleNamespace(**self.cfg)
        self.model = nn.Module()
        self.model.layers = nn.ModuleList()
        self.gates = {}
        for i in range(c.n_layers):
            layer = nn.Module()
            if i in c.moe_layers:
                w = self._param(self.ref.router_name(i), trainable_routers)
                if c.sigmoid:
                    bname = "model.layers.%d.mlp.gate.e_score_correction_bias" % i
                    gate = TopkRouter(w, self.ref.t(bname).clone(), c)
                    self.ref._cache[bname] = gate.e_score_correction_bias
                    self._shared[bname] = gate.e_score_correction_bias
                    block = nn.Module()
                    block.gate = gate
                else:
                    gate = nn.Linear(c.hidden, c.n_experts, bias=False)
                    gate.weight = w
                    block = SparseMoeBlock(gate, c.top_k,
                                           None if c.kind == "mixtral" else c.renorm)
                setattr(layer, "block_sparse_moe" if c.kind == "mixtral" else "mlp", block)
                self.gates[i] = gate
            else:
                layer.mlp = nn.Module()  # a dense MLP: no gate
            self.model.layers.append(layer)
        self._own_all()

    def _router_logits(self, i, x):
        return self.gates[i](x)

    def get_input_embeddings(self):
        return nn.Embedding(self.c.vocab, 1)  # only its size is read

    def forward(self, input_ids, attention_mask=None):
        lengths = attention_mask.sum(1) if attention_mask is not None else None
        return Output(self.run(input_ids, lengths))


# ---------------------------------------------------------------- Megatron-Core

class TransformerConfig(types.SimpleNamespace):
    """The moe_router_* fields of megatron.core's TransformerConfig."""


class TopKRouter(nn.Module):
    def __init__(self, weight, config, expert_bias=None):
        super().__init__()
        self.config = config
        self.weight = weight
        self.topk = config.moe_router_topk
        self.score_function = config.moe_router_score_function
        self.routing_type = config.moe_router_load_balancing_type
        if expert_bias is not None:
            self.register_buffer("expert_bias", expert_bias)
        else:
            self.expert_bias = None

    def forward(self, input):
        """input [S, B, H] -> logits [S, B, E] (Megatron's gating)."""
        return input @ self.weight.T


class MegatronGPTModel(_Base):
    def __init__(self, ckpt, pre_softmax):
        super().__init__(ckpt)
        c = self.c
        if c.sigmoid and c.n_group > 1:
            raise ValueError("the stand-in serves softmax routers and ungrouped sigmoid ones")
        cfg = TransformerConfig(
            num_moe_experts=c.n_experts, hidden_size=c.hidden, moe_router_topk=c.top_k,
            moe_router_score_function="sigmoid" if c.sigmoid else "softmax",
            moe_router_pre_softmax=pre_softmax, moe_router_num_groups=None,
            moe_router_group_topk=None,
            moe_router_topk_scaling_factor=c.scaling if c.sigmoid else None,
            moe_router_load_balancing_type="aux_loss")
        self.embedding = nn.Module()
        self.embedding.word_embeddings = nn.Module()
        self.embedding.word_embeddings.num_embeddings = c.vocab
        self.decoder = nn.Module()
        self.decoder.layers = nn.ModuleList()
        self.routers = {}
        for i in range(c.n_layers):
            layer = nn.Module()
            layer.mlp = nn.Module()
            if i in c.moe_layers:
                bias = None
                if c.sigmoid:
                    bias = self._param("model.layers.%d.mlp.gate.e_score_correction_bias" % i)
                    bias = bias.detach().clone()
                    self.ref._cache["model.layers.%d.mlp.gate.e_score_correction_bias" % i] = bias
                layer.mlp.router = TopKRouter(self._param(self.ref.router_name(i)), cfg, bias)
                self.routers[i] = layer.mlp.router
            self.decoder.layers.append(layer)
        self._own_all()

    def _router_logits(self, i, x):
        B, T = self._batch
        sb = x.view(B, T, -1).transpose(0, 1).contiguous()  # Megatron's [S, B, H]
        return self.routers[i](sb).transpose(0, 1).reshape(B * T, -1)

    def forward(self, input_ids, position_ids, attention_mask, lengths=None):
        return self.run(input_ids, lengths)


# ---------------------------------------------------------------- torchtitan

class TokenChoiceTopKRouter(nn.Module):
    def __init__(self, gate, c):
        super().__init__()
        self.gate = gate
        self.num_experts = c.n_experts
        self.num_expert_groups = None
        self.num_limited_groups = None
        self.top_k = c.top_k
        self.score_func = "sigmoid" if c.sigmoid else "softmax"
        self.route_norm = c.renorm
        self.route_scale = c.scaling


class MoE(nn.Module):
    def __init__(self, router, n_experts, bias):
        super().__init__()
        self.router = router
        self.register_buffer("expert_bias", bias)
        self.register_buffer("tokens_per_expert", torch.zeros(n_experts))


class TorchtitanTransformer(_Base):
    def __init__(self, ckpt):
        super().__init__(ckpt)
        c = self.c
        if c.sigmoid and c.n_group > 1:
            raise ValueError("the stand-in serves softmax routers and ungrouped sigmoid ones")
        self.tok_embeddings = nn.Embedding(c.vocab, c.hidden)
        self.tok_embeddings.weight = self._param("model.embed_tokens.weight")
        self.layers = nn.ModuleDict()
        self.moes = {}
        for i in range(c.n_layers):
            block = nn.Module()
            if i in c.moe_layers:
                gate = nn.Linear(c.hidden, c.n_experts, bias=False)
                gate.weight = self._param(self.ref.router_name(i))
                bias = None
                if c.sigmoid:
                    bname = "model.layers.%d.mlp.gate.e_score_correction_bias" % i
                    bias = self.ref.t(bname).clone()
                    self.ref._cache[bname] = bias
                block.moe = MoE(TokenChoiceTopKRouter(gate, c), c.n_experts, bias)
                if c.sigmoid:
                    self.ref._cache[bname] = block.moe.expert_bias
                self.moes[i] = block.moe
            else:
                block.feed_forward = nn.Module()
            self.layers[str(i)] = block
        self._own_all()

    def _router_logits(self, i, x):
        moe = self.moes[i]
        with torch.no_grad():
            moe.tokens_per_expert += x.shape[0] / moe.tokens_per_expert.numel()
        return moe.router.gate(x)

    def forward(self, tokens, lengths=None):
        return self.run(tokens, lengths)
