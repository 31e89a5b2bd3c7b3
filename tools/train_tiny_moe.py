#!/usr/bin/python3
"""train_tiny_moe.py — train a tiny OLMoE on modular arithmetic, on the CPU,
writing checkpoints the way a trainer does, for grokwatchd to watch live.

usage: train_tiny_moe.py --out DIR [options]      train, checkpoints into DIR
       train_tiny_moe.py --write-probe FILE [options]   only the probe set

The tasks (SPEC §4's groups): for a prime p and each operation op of
--ops (add: a + b, sub: a - b, mul: a * b, sq: a^2 + b^2, all mod p), the
sequence [op, a, b, =, c].  The pairs of each operation are split once,
with the seed, into a training set (--train-fraction of them) and a
held-out set, an unordered pair {a, b} and its mirror on the same side, so
that a held-out answer cannot be read off its mirror in training (for the
commutative operations that would pass memorization off as
generalization).  Training is next-token prediction on every position, as
in pretraining (--other-weight scales the loss of the positions before the
answer: a and b are random given what precedes them, so their loss cannot
fall much below ln p and dominates each sample's loss, as grokwatchd
measures it).  Batches of --batch samples, AdamW with strong decoupled
weight decay (6, lr 1e-3: with 4 the model memorizes and does not
generalize within the steps, with 10 it never memorizes), so that the
model memorizes its training pairs first and generalizes later, operation
by operation: in about 3600 steps subtraction and addition reach 0.9
held-out accuracy and multiplication rises later.

The model is OlmoeForCausalLM as Hugging Face defines it (RMSNorm, rotary
attention with full-width QK-norm, a softmax router over all experts with
the top-k weights unrenormalized, SwiGLU experts), in fp32, its tensors
under the Hugging Face names, written with the reference tests' safetensors
writer (tests/reference/stfile.py); grokwatchd runs exactly this model.

Every --every steps it evaluates (training and held-out accuracy of the
answer, per operation, and the training loss) and writes a checkpoint
DIR/step<N>/ (config.json, model.safetensors, trainer_state.json) under a
temporary name, fsynced, then renamed in.  It appends each evaluation to
--log (JSON Lines: step, train_loss, and per group train_acc, heldout_acc,
train_loss and probe_loss, the group's loss over the probe samples as
grokwatchd defines it, for checking that both run one model) and to --csv
(each group's heldout_accuracy in `grokwatch history --csv`'s format, for
`grokwatch plot --beside`).  The probe set (--probe, written before training starts) is
--probe-per-group training samples of each operation, chosen with the
seed.  Everything is deterministic for a seed on one machine.

Python: Debian's /usr/bin/python3 with python3-torch (1.13) and numpy.
"""

import argparse
import json
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "reference"))
import stfile  # noqa: E402  (the project's safetensors reader and writer)

OPS = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "sq": lambda a, b, p: (a * a + b * b) % p,
}


# ---------------------------------------------------------------- data

class Task:
    """Tokens 0..p-1 are numbers, p..p+n_ops-1 the operations, then '='."""

    def __init__(self, p, ops, frac, seed):
        self.p, self.ops = p, list(ops)
        self.eq = p + len(self.ops)
        self.vocab = self.eq + 1
        rng = random.Random(seed)
        self.train, self.heldout = [], []  # (op index, a, b, c)
        for oi, op in enumerate(self.ops):
            pairs = [(a, b) for a in range(p) for b in range(a, p)]
            rng.shuffle(pairs)
            keep = set(pairs[:int(round(frac * len(pairs)))])
            for a in range(p):
                for b in range(p):
                    row = (oi, a, b, OPS[op](a, b, p))
                    (self.train if (min(a, b), max(a, b)) in keep else self.heldout).append(row)

    def tokens(self, rows):
        return torch.tensor([[self.p + o, a, b, self.eq, c] for o, a, b, c in rows],
                            dtype=torch.long)

    def probe(self, per_group, seed):
        """per_group training rows of each operation: [(group, id, tokens)]."""
        rng = random.Random(seed + 1)
        out = []
        for oi, op in enumerate(self.ops):
            rows = [r for r in self.train if r[0] == oi]
            for o, a, b, c in sorted(rng.sample(rows, min(per_group, len(rows)))):
                out.append((op, "%s-%d-%d" % (op, a, b), [self.p + o, a, b, self.eq, c]))
        return out


# ---------------------------------------------------------------- the model

def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class TinyOlmoe(torch.nn.Module):
    """OlmoeForCausalLM in fp32; the experts of a layer stacked for speed."""

    def __init__(self, vocab, hidden, layers, heads, experts, top_k, inter, init_scale, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        H, E, I = hidden, experts, inter

        def lin(*shape):
            return torch.nn.Parameter(torch.randn(*shape, generator=g) * (init_scale /
                                                                           math.sqrt(shape[-1])))

        def ones(n):
            return torch.nn.Parameter(torch.ones(n))

        self.cfg = dict(vocab=vocab, hidden=H, layers=layers, heads=heads, experts=E,
                        top_k=top_k, inter=I, eps=1e-5, theta=10000.0)
        self.embed = torch.nn.Parameter(torch.randn(vocab, H, generator=g) * (0.2 * init_scale))
        self.q, self.k, self.v, self.o = (torch.nn.ParameterList([lin(H, H) for _ in range(layers)])
                                          for _ in range(4))
        self.q_norm, self.k_norm, self.in_norm, self.post_norm = (
            torch.nn.ParameterList([ones(H) for _ in range(layers)]) for _ in range(4))
        self.gate = torch.nn.ParameterList([lin(E, H) for _ in range(layers)])
        self.w_gate = torch.nn.ParameterList([lin(E, I, H) for _ in range(layers)])
        self.w_up = torch.nn.ParameterList([lin(E, I, H) for _ in range(layers)])
        self.w_down = torch.nn.ParameterList([lin(E, H, I) for _ in range(layers)])
        self.norm = ones(H)
        self.lm_head = lin(vocab, H)

    def forward(self, x):
        """Logits [B, T, V] and the load-balancing loss, for tokens [B, T]."""
        c = self.cfg
        B, T = x.shape
        H, E, I, nh = c["hidden"], c["experts"], c["inter"], c["heads"]
        hd = H // nh
        inv = 1.0 / (c["theta"] ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        fr = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]
        emb = torch.cat((fr, fr), -1)
        cos, sin = emb.cos(), emb.sin()
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        h = self.embed[x]
        aux = 0.0
        for l in range(c["layers"]):
            a = rms_norm(h, self.in_norm[l], c["eps"])
            q = rms_norm(a @ self.q[l].T, self.q_norm[l], c["eps"])
            k = rms_norm(a @ self.k[l].T, self.k_norm[l], c["eps"])
            v = a @ self.v[l].T
            q, k, v = (t.view(B, T, nh, hd).transpose(1, 2) for t in (q, k, v))
            q = q * cos + torch.cat((-q[..., hd // 2:], q[..., :hd // 2]), -1) * sin
            k = k * cos + torch.cat((-k[..., hd // 2:], k[..., :hd // 2]), -1) * sin
            # T is 4 or 5: products by broadcasting beat batched matmuls
            s = (q[:, :, :, None, :] * k[:, :, None, :, :]).sum(-1) / math.sqrt(hd)
            s = s.masked_fill(causal, float("-inf")).softmax(-1)
            att = (s[..., None] * v[:, :, None, :, :]).sum(-2).transpose(1, 2).reshape(B, T, H)
            h = h + att @ self.o[l].T
            a = rms_norm(h, self.post_norm[l], c["eps"]).reshape(B * T, H)
            p = (a @ self.gate[l].T).softmax(-1)
            top = p.topk(c["top_k"], -1)
            w = torch.zeros_like(p).scatter(-1, top.indices, top.values)  # not renormalized
            g = (a @ self.w_gate[l].reshape(E * I, H).T).view(B * T, E, I)
            u = (a @ self.w_up[l].reshape(E * I, H).T).view(B * T, E, I)
            act = F.silu(g) * u * w[:, :, None]
            h = h + (act.reshape(B * T, E * I) @
                     self.w_down[l].permute(0, 2, 1).reshape(E * I, H)).view(B, T, H)
            aux = aux + E * ((w > 0).float().mean(0) * p.mean(0)).sum()
        h = rms_norm(h, self.norm, c["eps"])
        return h @ self.lm_head.T, aux

    def hf_tensors(self):
        """[(Hugging Face name, fp32 tensor)] in model order."""
        out = [("model.embed_tokens.weight", self.embed)]
        for l in range(self.cfg["layers"]):
            p = "model.layers.%d." % l
            out += [(p + "input_layernorm.weight", self.in_norm[l]),
                    (p + "self_attn.q_proj.weight", self.q[l]),
                    (p + "self_attn.k_proj.weight", self.k[l]),
                    (p + "self_attn.v_proj.weight", self.v[l]),
                    (p + "self_attn.o_proj.weight", self.o[l]),
                    (p + "self_attn.q_norm.weight", self.q_norm[l]),
                    (p + "self_attn.k_norm.weight", self.k_norm[l]),
                    (p + "post_attention_layernorm.weight", self.post_norm[l]),
                    (p + "mlp.gate.weight", self.gate[l])]
            for e in range(self.cfg["experts"]):
                x = p + "mlp.experts.%d." % e
                out += [(x + "gate_proj.weight", self.w_gate[l][e]),
                        (x + "up_proj.weight", self.w_up[l][e]),
                        (x + "down_proj.weight", self.w_down[l][e])]
        out += [("model.norm.weight", self.norm), ("lm_head.weight", self.lm_head)]
        return [(n, t.detach().float().contiguous()) for n, t in out]

    def hf_config(self):
        c = self.cfg
        return {
            "architectures": ["OlmoeForCausalLM"], "model_type": "olmoe",
            "attention_bias": False, "attention_dropout": 0.0, "clip_qkv": None,
            "hidden_act": "silu", "hidden_size": c["hidden"], "initializer_range": 0.02,
            "intermediate_size": c["inter"], "max_position_embeddings": 16,
            "norm_topk_prob": False, "num_attention_heads": c["heads"],
            "num_experts": c["experts"], "num_experts_per_tok": c["top_k"],
            "num_hidden_layers": c["layers"], "num_key_value_heads": c["heads"],
            "output_router_logits": False, "rms_norm_eps": c["eps"], "rope_scaling": None,
            "rope_theta": c["theta"], "router_aux_loss_coef": 0.01,
            "tie_word_embeddings": False, "torch_dtype": "float32",
            "transformers_version": "4.51.0", "use_cache": True, "vocab_size": c["vocab"],
        }


# ---------------------------------------------------------------- files

def write_safetensors(path, tensors):
    """F32 tensors through the reference tests' writer (stfile.write_file:
    tensors in name order, the header padded to 8 bytes), then fsynced."""
    stfile.write_file(path, {n: t.numpy().astype("<f4") for n, t in tensors}, {"format": "pt"})
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(root, step, model):
    """root/step<step>/, written as tmp-step<step> and renamed in."""
    final = os.path.join(root, "step%d" % step)
    tmp = os.path.join(root, "tmp-step%d" % step)
    os.makedirs(tmp)
    write_json(os.path.join(tmp, "config.json"), model.hf_config())
    write_safetensors(os.path.join(tmp, "model.safetensors"), model.hf_tensors())
    write_json(os.path.join(tmp, "trainer_state.json"), {"global_step": step})
    fsync_dir(tmp)
    os.rename(tmp, final)
    fsync_dir(root)


def write_probe(path, task, per_group, seed):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for group, sid, toks in task.probe(per_group, seed):
            f.write(json.dumps({"tokens": toks, "group": group, "id": sid}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


# ---------------------------------------------------------------- training

@torch.no_grad()
def probe_loss(model, task, probe):
    """Per group, the mean over the probe's samples of each sample's mean
    next-token loss over positions 1..T-1: what grokwatchd computes as a
    group's loss, from this model (a check that it runs the same model)."""
    x = torch.tensor([t for _, _, t in probe], dtype=torch.long)
    lo, _ = model(x[:, :-1])
    per = F.cross_entropy(lo.reshape(-1, task.vocab), x[:, 1:].reshape(-1),
                          reduction="none").view(len(probe), -1).mean(1)
    out = {}
    for op in task.ops:
        v = [float(per[i]) for i, (g, _, _) in enumerate(probe) if g == op]
        out[op] = sum(v) / len(v)
    return out


@torch.no_grad()
def evaluate(model, task, xtr, otr, xte, ote, other_weight):
    """Per group: train and held-out accuracy of the answer, training loss
    (the objective, over the whole training set)."""
    lo, _ = model(xtr[:, :-1])
    lt, _ = model(xte[:, :-1])
    ltr = F.cross_entropy(lo.reshape(-1, task.vocab), xtr[:, 1:].reshape(-1),
                          reduction="none").view(-1, 4)
    obj = ltr[:, 3] + other_weight * ltr[:, :3].mean(1)
    tra = (lo[:, 3].argmax(-1) == xtr[:, 4]).float()
    tea = (lt[:, 3].argmax(-1) == xte[:, 4]).float()
    groups = {}
    for oi, op in enumerate(task.ops):
        groups[op] = {"train_acc": float(tra[otr == oi].mean()),
                      "heldout_acc": float(tea[ote == oi].mean()),
                      "train_loss": float(obj[otr == oi].mean())}
    return float(obj.mean()), groups


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="checkpoint directory (the daemon's watch.root)")
    ap.add_argument("--write-probe", metavar="FILE", help="write the probe set and exit")
    ap.add_argument("--probe", metavar="FILE", help="also write the probe set here first")
    ap.add_argument("--log", metavar="FILE", help="evaluations as JSON Lines")
    ap.add_argument("--csv", metavar="FILE", help="accuracies in history --csv's format")
    ap.add_argument("--run", default="tiny-moe", help="run name in the CSV")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--p", type=int, default=23, help="the modulus (default 23)")
    ap.add_argument("--ops", default="add,sub,mul", help="operations, comma-separated")
    ap.add_argument("--train-fraction", type=float, default=0.85)
    ap.add_argument("--steps", type=int, default=3600)
    ap.add_argument("--every", type=int, default=120, help="steps between checkpoints")
    ap.add_argument("--batch", type=int, default=256, help="samples a step; 0 = all")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=6.0)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--other-weight", type=float, default=1.0)
    ap.add_argument("--init-scale", type=float, default=1.0)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--inter", type=int, default=64)
    ap.add_argument("--probe-per-group", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    a = ap.parse_args(argv)
    bad = [o for o in a.ops.split(",") if o not in OPS]
    if bad or not a.ops:
        ap.error("--ops: %r: known operations are %s" % (bad, ", ".join(OPS)))
    if a.p < 3 or any(a.p % d == 0 for d in range(2, int(a.p ** 0.5) + 1)):
        ap.error("--p: %d is not a prime >= 3" % a.p)
    if not 0 < a.train_fraction < 1:
        ap.error("--train-fraction: %g is not in (0, 1)" % a.train_fraction)
    if a.hidden % a.heads or (a.hidden // a.heads) % 2:
        ap.error("--hidden %d: not a multiple of 2 x --heads" % a.hidden)
    if not 0 < a.top_k <= a.experts:
        ap.error("--top-k %d: not in 1 .. --experts" % a.top_k)
    if not a.out and not a.write_probe:
        ap.error("--out or --write-probe is required")
    return a


def main(argv):
    a = parse_args(argv[1:])
    torch.set_num_threads(a.threads)
    task = Task(a.p, a.ops.split(","), a.train_fraction, a.seed)
    if a.write_probe or a.probe:
        write_probe(a.write_probe or a.probe, task, a.probe_per_group, a.seed)
        if a.write_probe:
            return 0
    if os.path.exists(a.out) and os.listdir(a.out):
        print("train_tiny_moe: %r: not empty; give a new directory" % a.out, file=sys.stderr)
        return 1
    os.makedirs(a.out, exist_ok=True)
    xtr, xte = task.tokens(task.train), task.tokens(task.heldout)
    otr = torch.tensor([r[0] for r in task.train])
    ote = torch.tensor([r[0] for r in task.heldout])
    model = TinyOlmoe(task.vocab, a.hidden, a.layers, a.heads, a.experts, a.top_k, a.inter,
                      a.init_scale, a.seed)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    keep = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": keep, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.98))
    g = torch.Generator().manual_seed(a.seed + 2)
    probe = task.probe(a.probe_per_group, a.seed)
    logf = open(a.log, "w") if a.log else None
    csvf = open(a.csv, "w") if a.csv else None
    if csvf:
        csvf.write("run,group,metric,step,value\n")
    t0 = time.time()
    print("train_tiny_moe: %d training and %d held-out pairs of %s mod %d; %d steps, a "
          "checkpoint every %d" % (len(task.train), len(task.heldout), a.ops, a.p, a.steps,
                                   a.every), flush=True)
    for step in range(a.steps + 1):
        if step % a.every == 0:
            loss, groups = evaluate(model, task, xtr, otr, xte, ote, a.other_weight)
            if step > 0:
                save_checkpoint(a.out, step, model)
            for op, v in probe_loss(model, task, probe).items():
                groups[op]["probe_loss"] = v
            rec = {"step": step, "train_loss": loss, "groups": groups,
                   "sec": round(time.time() - t0, 2)}
            if logf:
                logf.write(json.dumps(rec) + "\n")
                logf.flush()
            if csvf and step > 0:
                for op, v in groups.items():
                    csvf.write("%s,%s,heldout_accuracy,%d,%.6g\n" % (a.run, op, step,
                                                                     v["heldout_acc"]))
                csvf.flush()
            print("step %5d  %5.0f s  loss %.3f  %s" % (
                step, time.time() - t0, loss, "  ".join(
                    "%s %.2f/%.2f" % (op, v["train_acc"], v["heldout_acc"])
                    for op, v in groups.items())), flush=True)
        if step == a.steps:
            break
        for gr in opt.param_groups:
            gr["lr"] = a.lr * min(1.0, (step + 1) / max(1, a.warmup))
        xb = xtr[torch.randint(0, len(xtr), (a.batch,), generator=g)] if a.batch else xtr
        logits, aux = model(xb[:, :-1])
        lp = F.cross_entropy(logits.reshape(-1, task.vocab), xb[:, 1:].reshape(-1),
                             reduction="none").view(-1, 4)
        loss = lp[:, 3].mean() + a.other_weight * lp[:, :3].mean() + 0.01 * aux
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    for f in (logf, csvf):
        if f:
            f.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
