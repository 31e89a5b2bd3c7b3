#!/usr/bin/python3
"""test_trace_reference.py — grokwatch.trace on the PyTorch reference model,
against `grokwatchd analyze --dump-routing` on the same checkpoints.

For every fixture checkpoint of $GW_FIXTURES/manifest.json (OLMoE, Mixtral,
Qwen2-MoE, Qwen3-MoE, the DeepSeek-V3 family; F32, BF16, F16, sharded), the
reference model in a Hugging Face module tree (tests/reference/ref_modules.py)
is traced with grokwatch.trace.write in padded batches of 5, and the file is
compared with the engine's: gbar within 1e-5 absolute, loss within 1e-5
relative (NaN for one-token samples in both), identical top-k sets wherever
the reference's choice is not a near tie (its margin above 1e-5, as
ref_forward.py compare judges it) and there the weights within 1e-5, entropy
within 1e-5 and logsumexp within 1e-5 relative; the metadata (probe hash, ids,
groups, top_k, step) equal; the reference's own comparison (ref_forward
compare_one) passes on the traced file; and the daemon reads the traced file
and computes the same metrics from it as from its own.

Then, on a few checkpoints: padding is masked out exactly (a batch of 1 and a
batch of 7 agree; any pad token gives the same bytes); the Megatron-Core and
torchtitan stand-ins (module paths and types as those trainers name them,
Megatron's [S, B, H] router input) give the engine's records; a routers map
gives the discovered routers' file; names under DDP-style wrappers are found;
and the bad inputs: no router, a router of unexpected shape, routers that
disagree, a router the forward does not call, logits of the wrong shape, a
probe token at or beyond the vocabulary, an empty probe, a bad step or
directory, a full disk while writing (no partial file, the old one intact);
and a trace between training steps changes neither the weights, the optimizer
state, the buffers, the RNG nor any module's train flag.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("GW_SRC", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "client", "python"))
sys.path.insert(0, os.path.join(SRC, "tests", "reference"))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import ref_forward as rf  # noqa: E402
import ref_modules as rm  # noqa: E402
import stfile  # noqa: E402
from grokwatch import probe as gp  # noqa: E402
from grokwatch import trace as gt  # noqa: E402
from gwtest import BIN, WRAP, Tap  # noqa: E402

TOL = 1e-5
FX = os.environ.get("GW_FIXTURES", os.path.join(SRC, "build", "default", "fixtures"))
PROBE = os.path.join(FX, "probe", "probe.jsonl")
torch.set_num_threads(1)
tap = Tap()
work = tempfile.mkdtemp(prefix="gwtrace.")
probe = gp.load(PROBE)
samples = rf.read_probe(PROBE)


def dump(name):
    """The engine's routing file of fixture `name` (made once)."""
    out = os.path.join(work, name + ".engine.st")
    if not os.path.exists(out):
        r = subprocess.run(WRAP + [BIN, "analyze", os.path.join(FX, name), "--probe", PROBE,
                                   "--dump-routing", out], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("analyze %s: %s" % (name, r.stderr))
    return stfile.SafeTensors(out)


def outdir(tag):
    d = os.path.join(work, tag)
    os.makedirs(d, exist_ok=True)
    return d


def compare(got, ref_st, ref_out, k):
    """Faults of routing file `got` against the engine's file `ref_st`, with
    the reference's margins `ref_out` deciding where top-k must agree."""
    faults = []
    N, L, E = ref_st.tensors["gbar"][1]
    for name, dtype in (("gbar", "F32"), ("loss", "F32"), ("ntokens", "I32"),
                        ("topk_ids", "U16"), ("topk_w", "F32"), ("entropy", "F32"),
                        ("lse", "F32")):
        if got.tensors.get(name) != ref_st.tensors[name]:
            faults.append("%s is %s, the engine's %s" % (name, got.tensors.get(name),
                                                          ref_st.tensors[name]))
    if faults:
        return faults, {}
    g, r = got.get("gbar").astype(np.float64), ref_st.get("gbar").astype(np.float64)
    figures = {"gbar": float(np.abs(g - r).max())}
    if figures["gbar"] > TOL:
        faults.append("gbar differs by %.3g" % figures["gbar"])
    lg, lr = got.get("loss").astype(np.float64), ref_st.get("loss").astype(np.float64)
    nan = np.isnan(lg) & np.isnan(lr)
    rel = np.where(nan, 0.0, np.abs(lg - lr) / np.maximum(np.abs(lr), 1e-30))
    figures["loss"] = float(np.max(np.where(np.isnan(rel), np.inf, rel)))
    if figures["loss"] > TOL:
        faults.append("loss differs by %.3g relative" % figures["loss"])
    if not np.array_equal(got.get("ntokens"), ref_st.get("ntokens")):
        faults.append("ntokens differ")
    tid, rid = got.get("topk_ids").astype(np.int64), ref_st.get("topk_ids").astype(np.int64)
    same = (np.sort(tid, -1) == np.sort(rid, -1)).all(-1)
    clear = ref_out["margin"] > TOL
    figures["compared"] = "%d/%d" % (clear.sum(), clear.size)
    if (clear & ~same).any():
        faults.append("top-k differs at %d clear token-layers" % (clear & ~same).sum())
    wg = np.zeros((tid.shape[0], L, E))
    np.put_along_axis(wg, tid, got.get("topk_w").astype(np.float64), -1)
    wr = np.zeros_like(wg)
    np.put_along_axis(wr, rid, ref_st.get("topk_w").astype(np.float64), -1)
    dw = np.where(same[..., None], np.abs(wg - wr), 0.0)
    figures["topk_w"] = float(dw.max())
    if figures["topk_w"] > TOL:
        faults.append("top-k weights differ by %.3g" % figures["topk_w"])
    de = np.abs(got.get("entropy").astype(np.float64) - ref_st.get("entropy"))
    if de.max() > TOL:
        faults.append("entropy differs by %.3g" % de.max())
    ls = ref_st.get("lse").astype(np.float64)
    dl = np.abs(got.get("lse") - ls) / np.maximum(np.abs(ls), 1.0)
    if dl.max() > TOL:
        faults.append("logsumexp differs by %.3g relative" % dl.max())
    for key in ("probe_hash", "ids", "groups", "top_k"):
        a, b = got.metadata.get(key), ref_st.metadata.get(key)
        if key in ("ids", "groups") and a is not None and b is not None:
            a, b = json.loads(a), json.loads(b)
        if a != b:
            faults.append("metadata %s: %r, the engine's %r" % (
                key, got.metadata.get(key), ref_st.metadata.get(key)))
    return faults, figures


def analyze_json(path):
    r = subprocess.run(WRAP + [BIN, "analyze", path, "--json"], capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()
    return json.loads(r.stdout.strip().splitlines()[-1]), None


REFS = {}


def reference(name):
    if name not in REFS:
        REFS[name] = rf.reference(rf.RefModel(os.path.join(FX, name)), samples)
    return REFS[name]


with open(os.path.join(FX, "manifest.json")) as f:
    names = [c["name"] for c in json.load(f)["checkpoints"]]
tap.ok(len(names) >= 20, "every fixture checkpoint (%d)" % len(names))

# ---- every architecture, the Hugging Face module tree
worst = {"gbar": 0.0, "loss": 0.0, "topk_w": 0.0}
for name in names:
    model = rm.HFModel(os.path.join(FX, name))
    d = outdir("hf-" + name)
    path = gt.write(model, probe, 1000, d, batch_size=5)
    got = stfile.SafeTensors(path)
    faults, fig = compare(got, dump(name), reference(name), model.c.top_k)
    for k in worst:
        worst[k] = max(worst[k], fig.get(k, 0.0))
    tap.ok(not faults, "%s (%s): the trace matches the engine's routing (gbar %.2g, loss %.2g "
           "rel, top-k at %s)" % (name, model.c.kind, fig.get("gbar", -1), fig.get("loss", -1),
                                  fig.get("compared")), "\n".join(faults))
    rep, _ = rf.compare_one(os.path.join(FX, name), PROBE, path)
    tap.ok(not rep.faults, "%s: ref_forward's own comparison passes on the trace, router.<l> "
           "equal to the checkpoint's" % name, "\n".join(rep.faults))
    mine, err = analyze_json(path)
    theirs, err2 = analyze_json(os.path.join(work, name + ".engine.st"))
    ok = mine is not None and theirs is not None
    if ok:
        for g in theirs["groups"]:
            a, b = mine["groups"][g], theirs["groups"][g]
            for metric in ("pathway_distance", "pathway_consistency", "loss"):
                x, y = a.get(metric), b.get(metric)
                if (x is None) != (y is None) or (x is not None and abs(x - y) > 1e-4 * max(
                        1.0, abs(y))):
                    ok = False
                    err = "%s %s: %r, engine %r" % (g, metric, x, y)
    tap.ok(ok and mine["probe_hash"] == probe.hash and mine["step"] == 1000,
           "%s: grokwatchd reads the trace and computes the engine's metrics from it" % name,
           err or err2)
tap.ok(True, "worst over all fixtures: gbar %.3g, loss %.3g relative, top-k weights %.3g"
       % (worst["gbar"], worst["loss"], worst["topk_w"]))

# ---- padding is masked out exactly
OLMOE = os.path.join(FX, "olmoe-f32")
m = rm.HFModel(OLMOE)
one = stfile.SafeTensors(gt.write(m, probe, 1, outdir("b1"), batch_size=1))
seven = stfile.SafeTensors(gt.write(m, probe, 1, outdir("b7"), batch_size=7))
d = max(float(np.abs(one.get(k).astype(np.float64) - seven.get(k)).max())
        for k in ("gbar", "topk_w", "entropy", "lse"))
tap.ok(d <= TOL and np.array_equal(one.get("topk_ids"), seven.get("topk_ids")),
       "batches of 1 and of 7 (padded) agree: max difference %.3g, same top-k" % d)
pads = [stfile.SafeTensors(gt.write(m, probe, 1, outdir("pad%d" % pad), batch_size=7,
                                    pad_id=pad)) for pad in (0, 255)]
d = max(float(np.abs(pads[0].get(k).astype(np.float64) - pads[1].get(k)).max())
        for k in ("gbar", "loss", "topk_w", "entropy", "lse"))
tap.ok(d <= TOL and np.array_equal(pads[0].get("topk_ids"), pads[1].get("topk_ids")),
       "pad tokens 0 and 255 agree (max difference %.3g: pads routed elsewhere change the "
       "model's expert batch shapes, not what is read)" % d)


class RowWise(torch.nn.Module):
    """Each position's logits from its own token alone (embedding, gate,
    head), so that the real positions are bitwise independent of the pads:
    the pad token's embedding is NaN."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.config = {"vocab_size": 32, "num_experts_per_tok": 2, "model_type": "qwen2_moe",
                       "norm_topk_prob": True}
        self.embed = torch.nn.Embedding(32, 16)
        self.embed.weight.data = torch.randn(32, 16, generator=g)
        self.embed.weight.data[31] = float("nan")
        self.model = torch.nn.Module()
        self.model.layers = torch.nn.ModuleList()
        for _ in range(2):
            layer = torch.nn.Module()
            layer.mlp = torch.nn.Module()
            layer.mlp.gate = torch.nn.Linear(16, 6, bias=False)
            layer.mlp.gate.weight.data = torch.randn(6, 16, generator=g)
            self.model.layers.append(layer)
        self.head = torch.randn(32, 16, generator=g)

    def forward(self, input_ids):
        x = self.embed(input_ids)
        for layer in self.model.layers:
            x = x + 0.1 * torch.tanh(layer.mlp.gate(x)).sum(-1, keepdim=True)
        return x @ self.head.T


rw_probe = gp.Probe()
rw_probe.add_jsonl_bytes("rowwise.jsonl", b"".join(
    b'{"tokens": [%s], "id": "%d"}\n' % (b",".join(b"%d" % ((7 * i + 3 * j) % 31)
                                                    for j in range(n)), i)
    for i, n in enumerate((1, 9, 4, 13, 2, 7, 11))))
rw = RowWise()
recs = {}
for pad, bs in ((0, 7), (31, 7), (31, 3), (0, 1)):
    recs[pad, bs] = stfile.SafeTensors(gt.write(rw, rw_probe, 1, outdir("rw%d-%d" % (pad, bs)),
                                                batch_size=bs, pad_id=pad))
KEYS = ("gbar", "loss", "ntokens", "topk_ids", "topk_w", "entropy", "lse")


def same_bytes(a, b):
    return all(np.array_equal(a.get(k), b.get(k), equal_nan=True) for k in KEYS)


tap.ok(same_bytes(recs[0, 7], recs[31, 7]) and not np.isnan(recs[31, 7].get("gbar")).any(),
       "padding is masked out exactly: NaN pad embeddings give the same records as pad 0")
ROUTING_KEYS = ("gbar", "ntokens", "topk_ids", "topk_w", "entropy", "lse")
dl = float(np.nanmax(np.abs(recs[31, 3].get("loss").astype(np.float64) - recs[0, 7].get("loss"))))
tap.ok(all(np.array_equal(recs[0, 7].get(k), recs[31, 3].get(k)) for k in ROUTING_KEYS)
       and dl <= 1e-6, "  and batches of 3 the same routing records as of 7 (loss within %.2g: "
       "the logsumexp kernel's summation may follow the row's alignment)" % dl)
d = max(float(np.nanmax(np.abs(recs[0, 1].get(k).astype(np.float64) - recs[0, 7].get(k))))
        for k in KEYS)
tap.ok(d <= TOL, "  and batches of 1 within %.3g (the model's own head on another shape)" % d)

# ---- Megatron-Core and torchtitan stand-ins
for name, pre in (("olmoe-f32", True), ("mixtral-f32", False)):
    mg = rm.MegatronGPTModel(os.path.join(FX, name), pre_softmax=pre)
    rec = gt.RoutingRecorder(mg)
    tap.ok(rec.names == ["decoder.layers.%d.mlp.router" % i for i in mg.c.moe_layers]
           and all(s.layout == "sb" for s in rec.specs),
           "Megatron-Core (%s): routers found at decoder.layers.N.mlp.router, [S, B, H] input"
           % name, rec.names)
    fwd = lambda model, ids, mask: model(ids, None, None)  # noqa: E731
    path = gt.write(mg, probe, 5, outdir("mg-" + name), batch_size=5, forward=fwd)
    faults, fig = compare(stfile.SafeTensors(path), dump(name), reference(name), mg.c.top_k)
    tap.ok(not faults, "Megatron-Core stand-in (%s, pre_softmax=%s): the trace matches the "
           "engine's routing" % (name, pre), "\n".join(faults))
for name in ("olmoe-f32", "mixtral-f32", "glm4moeplain-f32"):
    tt = rm.TorchtitanTransformer(os.path.join(FX, name))
    rec = gt.RoutingRecorder(tt)
    tap.ok(rec.names == ["layers.%d.moe.router.gate" % i for i in tt.c.moe_layers],
           "torchtitan (%s): routers found at layers.N.moe.router.gate" % name, rec.names)
    before = [b.clone() for b in tt.buffers()]
    path = gt.write(tt, probe, 5, outdir("tt-" + name), batch_size=5)
    faults, fig = compare(stfile.SafeTensors(path), dump(name), reference(name), tt.c.top_k)
    tap.ok(not faults, "torchtitan stand-in (%s, %s router): the trace matches the engine's "
           "routing" % (name, "sigmoid" if tt.c.sigmoid else "softmax"), "\n".join(faults))
    tap.ok(all(torch.equal(a, b) for a, b in zip(before, tt.buffers())),
           "torchtitan (%s): the tokens_per_expert buffer the forward adds to is restored" % name)

# ---- a routers map, and wrapped names
ref_bytes = open(gt.write(m, probe, 1, outdir("disc"), batch_size=5), "rb").read()
gates = {i: m.gates[i] for i in m.c.moe_layers}
p = gt.write(m, probe, 1, outdir("map"), batch_size=5, routers=gates)
got = open(p, "rb").read()
tap.ok(got.replace(b'"routers":', b"") != b"" and stfile.SafeTensors(p).tensors ==
       stfile.SafeTensors(os.path.join(work, "disc", "routing.safetensors")).tensors and
       np.array_equal(stfile.SafeTensors(p).get("gbar"),
                      stfile.SafeTensors(os.path.join(work, "disc", "routing.safetensors"))
                      .get("gbar")),
       "routers={layer: module} gives the discovered routers' records")


class Wrapper(torch.nn.Module):
    """Names as DDP, FSDP and torch.compile leave them: module._orig_mod...,
    a layer inside _fsdp_wrapped_module / _checkpoint_wrapped_module."""

    def __init__(self, inner):
        super().__init__()
        self.module = torch.nn.Module()
        self.module._orig_mod = inner

    def forward(self, input_ids, attention_mask=None):
        return self.module._orig_mod(input_ids, attention_mask)


wm = rm.HFModel(OLMOE)
layers = wm.model.layers
for i in range(len(layers)):
    outer = torch.nn.Module()
    outer._fsdp_wrapped_module = torch.nn.Module()
    outer._fsdp_wrapped_module._checkpoint_wrapped_module = layers[i]
    layers[i] = outer
rec = gt.RoutingRecorder(Wrapper(wm))
tap.ok(rec.names == ["model.layers.%d.mlp.gate" % i for i in range(3)],
       "routers under DDP / torch.compile / FSDP / checkpoint wrappers are found, named "
       "without the wrappers", rec.names)
p = gt.write(Wrapper(wm), probe, 1, outdir("wrapped"), batch_size=5)
tap.ok(np.array_equal(stfile.SafeTensors(p).get("gbar"),
                      stfile.SafeTensors(os.path.join(work, "disc", "routing.safetensors"))
                      .get("gbar")), "and traced through the wrapper: the same records")


# ---- bad input
def raises(fn, kind, words, name):
    try:
        fn()
    except kind as e:
        msg = str(e)
        return tap.ok(all(w in msg for w in words), name, msg)
    except Exception as e:  # noqa: BLE001
        return tap.ok(False, name, "raised %s: %s" % (type(e).__name__, e))
    return tap.ok(False, name, "no error")


class Plain(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.model = torch.nn.Module()
        self.model.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4)])


raises(lambda: gt.RoutingRecorder(Plain()), gt.TraceError,
       ["no MoE router found in Plain", "layers\\.(\\d+)\\.(?:mlp|block_sparse_moe)\\.gate",
        "decoder\\.layers", "moe\\.router\\.gate", "routers={layer: module}"],
       "a model without routers: the error names every pattern looked for")


def tiny(shapes, top_k=2):
    t = torch.nn.Module()
    t.config = {"num_experts_per_tok": top_k, "model_type": "olmoe", "vocab_size": 16}
    t.model = torch.nn.Module()
    t.model.layers = torch.nn.ModuleList()
    for shape in shapes:
        layer = torch.nn.Module()
        layer.mlp = torch.nn.Module()
        layer.mlp.gate = torch.nn.Linear(1, 1, bias=False)
        layer.mlp.gate.weight = torch.nn.Parameter(torch.zeros(shape))
        t.model.layers.append(layer)
    return t


raises(lambda: gt.RoutingRecorder(tiny([(4, 8, 1)])), gt.TraceError,
       ["model.layers.0.mlp.gate", "weight of shape [4, 8, 1]"],
       "a router weight that is not [experts, hidden] is refused, naming the router")
raises(lambda: gt.RoutingRecorder(tiny([(4, 8), (6, 8)])), gt.TraceError,
       ["model.layers.1.mlp.gate", "6 experts"], "routers with different expert counts")
raises(lambda: gt.RoutingRecorder(tiny([(4, 8)], top_k=5)), gt.TraceError,
       ["top-5 of 4 experts"], "top-k beyond the experts")
bad = rm.HFModel(OLMOE)
spec = gt.find_routers(bad)[0]
spec.weight = lambda: torch.zeros(8, 63)
raises(lambda: gt.write(bad, probe, 1, outdir("bad1"), routers={0: spec}), gt.TraceError,
       ["does not take the hidden size 64"], "a router weight that does not fit its input")
raises(lambda: gt.write(m, probe, 1, outdir("bad2"),
                        forward=lambda mod, ids, mask: torch.zeros(ids.shape + (256,))),
       gt.TraceError, ["did not call the router(s)", "model.layers.0.mlp.gate"],
       "a forward that never calls the routers")
raises(lambda: gt.write(m, probe, 1, outdir("bad3"),
                        forward=lambda mod, ids, mask: mod(ids, mask).logits[:, :-1]),
       gt.TraceError, ["logits of shape"], "logits of the wrong shape")
raises(lambda: gt.write(m, probe, 1, outdir("bad3b"),
                        forward=lambda mod, ids, mask: mod(ids, mask).logits[..., :128]),
       gt.TraceError, ["logits cover 128 entries of its vocabulary of 256",
                       "parallel_output=False"],
       "logits of a vocabulary shard (tensor parallelism) are refused, not read as the whole")
hi = os.path.join(work, "hi.jsonl")
with open(hi, "w") as f:
    f.write('{"tokens": [1, 2]}\n{"tokens": [3, 256]}\n')
raises(lambda: gt.write(m, hi, 1, outdir("bad4")), gp.ProbeError,
       ['hi.jsonl" line 2', "tokens[1] is 256, at or beyond the vocabulary (256)"],
       "a probe token at or beyond the vocabulary, before the model runs")
tap.ok(not os.path.exists(os.path.join(work, "bad4", "routing.safetensors")), "  and no file")
raises(lambda: gt.write(m, gp.Probe(), 1, outdir("bad5")), gt.TraceError,
       ["holds no sample"], "an empty probe")
empty = os.path.join(work, "empty.jsonl")
open(empty, "w").close()
raises(lambda: gt.write(m, empty, 1, outdir("bad5")), gp.ProbeError,
       ["empty.jsonl", "no samples"], "an empty probe file")
raises(lambda: gt.write(m, probe, -3, outdir("bad6")), gt.TraceError, ["step"], "a negative step")
raises(lambda: gt.write(m, probe, 1, os.path.join(work, "nope")), gt.TraceError,
       ["nope", "not a directory"], "a missing directory")

# ---- a full disk while writing: no partial file, the old file intact
FULL = r"""
import os, resource, sys
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
import torch; torch.set_num_threads(1)
import ref_modules
from grokwatch import trace
if sys.argv[5] == "rlimit":
    resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
try:
    trace.write(ref_modules.HFModel(sys.argv[3]), sys.argv[4], 2, sys.argv[6])
    print("WROTE")
except OSError as e:
    print("OSError", e)
"""
mounted = False
full = os.path.join(work, "full")
os.makedirs(full)
if os.geteuid() == 0:
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", full],
                             capture_output=True).returncode == 0
old = b"the old routing file"
with open(os.path.join(full, "routing.safetensors"), "wb") as f:
    f.write(old)
r = subprocess.run([sys.executable, "-c", FULL, os.path.join(SRC, "client", "python"),
                    os.path.join(SRC, "tests", "reference"), OLMOE, PROBE,
                    "tmpfs" if mounted else "rlimit", full], capture_output=True, text=True)
how = "a 24 KiB tmpfs (ENOSPC)" if mounted else "RLIMIT_FSIZE (EFBIG)"
tap.ok("OSError" in r.stdout and os.path.join(full, "routing.safetensors") in r.stdout,
       "full disk (%s): OSError naming the file" % how, r.stdout + r.stderr)
with open(os.path.join(full, "routing.safetensors"), "rb") as f:
    tap.ok(f.read() == old, "  the old file intact")
tap.ok(sorted(os.listdir(full)) == ["routing.safetensors"], "  no temporary file left",
       os.listdir(full))
if mounted:
    subprocess.run(["umount", full])

# ---- between training steps: nothing of the training changes
def train(trace_between):
    torch.manual_seed(3)
    model = rm.HFModel(OLMOE, trainable_routers=True)
    model.model.layers[1].eval()   # a module kept in eval by the job
    # A model that draws random numbers on every forward, in eval too (as
    # router jitter or sampling code may): the trace must not move the stream.
    model.register_forward_pre_hook(lambda mod, args: torch.rand(1) and None)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1,
                          momentum=0.9)
    ids = torch.as_tensor([s.tokens[:8].tolist() + [0] * (8 - min(8, len(s.tokens)))
                           for s in probe.samples[10:14]])
    for step in range(4):
        if step == 2 and trace_between:
            gt.write(model, probe, step, outdir("train"), batch_size=6)
        model.train()
        model.model.layers[1].eval()
        loss = model(ids).logits.float().logsumexp(-1).mean() + torch.rand(()) * 0
        opt.zero_grad()
        loss.backward()
        opt.step()
        modes = [mm.training for mm in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    mom = [opt.state[p]["momentum_buffer"].clone() for p in opt.param_groups[0]["params"]]
    return state, mom, modes, torch.rand(3)


a = train(True)
b = train(False)
tap.ok(all(torch.equal(a[0][k], b[0][k]) for k in b[0]),
       "a trace between training steps: the weights after two more steps are the same")
tap.ok(all(torch.equal(x, y) for x, y in zip(a[1], b[1])), "  and the optimizer's momentum")
tap.ok(torch.equal(a[3], b[3]), "  and the random number stream")
mt = rm.HFModel(OLMOE, trainable_routers=True)
mt.train()
mt.model.layers[0].eval()
flags = [x.training for x in mt.modules()]
w0 = [p.detach().clone() for p in mt.parameters()]
gt.write(mt, probe, 1, outdir("flags"))
tap.ok([x.training for x in mt.modules()] == flags and flags.count(False) == 1 + sum(
    1 for _ in mt.model.layers[0].modules()) - 1,
       "every module's train flag is restored (one submodule kept in eval)")
tap.ok(all(torch.equal(x, y) for x, y in zip(w0, mt.parameters())) and all(
    p.grad is None for p in mt.parameters()), "no parameter changed, no gradient made")

shutil.rmtree(work, ignore_errors=True)
tap.done()
