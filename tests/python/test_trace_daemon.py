#!/usr/bin/python3
"""test_trace_daemon.py — a real grokwatchd watching a directory where
traces land, with a real ZeroMQ subscriber (tests/integration/gwtest.py).

Three checkpoints of one tiny OLMoE model (the fixture olmoe-f32) arrive:
  step1000       the Hugging Face checkpoint with routing.safetensors written
                 beside it by grokwatch.trace.write (from the PyTorch reference
                 in a Hugging Face module tree), the directory renamed in whole;
  step2000       the same checkpoint without a trace: the daemon's own forward;
  iter_0003000   a Megatron-style directory (mp_rank_00/model_optim_rng.pt, no
                 Hugging Face files) where the trace of the Megatron-Core
                 stand-in lands in place, after the directory appeared.
The daemon computes all three into one series (the probe hash of its status
is the traces'), says which came from a routing file, and publishes for the
traced step the metrics its own forward pass gives for the same checkpoint
(`grokwatchd analyze`): every group's distance, consistency, adjacent cosine,
loss and count, and the routing health; and the churn from the trace of
step 1000 to its own forward pass of the same weights at step 2000 is 0.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("GW_SRC", os.path.join(HERE, "..", ".."))
for p in ("client/python", "tests/reference", "tests/integration"):
    sys.path.insert(0, os.path.join(SRC, p))
import torch  # noqa: E402

import gwtest  # noqa: E402
import ref_modules as rm  # noqa: E402
from grokwatch import probe as gp  # noqa: E402
from grokwatch import trace as gt  # noqa: E402

torch.set_num_threads(1)
FX = os.environ.get("GW_FIXTURES", os.path.join(SRC, "build", "default", "fixtures"))
CKPT = os.path.join(FX, "olmoe-f32")
PROBE = os.path.join(FX, "probe", "probe.jsonl")
tap = gwtest.Tap()
work = tempfile.mkdtemp(prefix="gwtraced.")
root = os.path.join(work, "ckpt")
os.makedirs(root)
probe = gp.load(PROBE)

d = gwtest.Daemon(work, root, PROBE, name="traced")
d.start()
sub = gwtest.Subscriber(d.pub, d.query)

# step1000: checkpoint and trace, renamed in whole.
tmp = os.path.join(root, "tmp-step1000")
shutil.copytree(CKPT, tmp)
gt.write(rm.HFModel(tmp), probe, 1000, tmp, batch_size=8, checkpoint="step1000")
os.rename(tmp, os.path.join(root, "step1000"))
tap.ok(sub.collect(gwtest.n_metrics(1), 60), "step1000 (checkpoint + trace): a result",
       d.log()[-2000:])
gwtest.place_atomic(CKPT, root, "step2000")
tap.ok(sub.collect(gwtest.n_metrics(2), 60), "step2000 (checkpoint alone): a result")

# iter_0003000: a Megatron directory first, the trace lands in it later.
meg = os.path.join(root, "iter_0003000")
os.makedirs(os.path.join(meg, "mp_rank_00"))
with open(os.path.join(meg, "mp_rank_00", "model_optim_rng.pt"), "wb") as f:
    f.write(b"\0" * 4096)
mg = rm.MegatronGPTModel(CKPT, pre_softmax=True)
gt.write(mg, probe, 3000, meg, batch_size=8, forward=lambda m, ids, mask: m(ids, None, None))
tap.ok(sub.collect(lambda msgs: 3000 in gwtest.steps_of(msgs), 60),
       "iter_0003000 (a Megatron directory, the trace landing in place): a result",
       d.log()[-2000:])
hb = sub.settle()
tap.ok(hb is not None, "the daemon settles")

byst = {m["step"]: m for m in sub.metrics()}
tap.eq(sorted(byst), [1000, 2000, 3000], "one result per step, no other")
tap.eq([byst[s].get("source") for s in (1000, 2000, 3000)],
       ["routing file", "forward pass", "routing file"], "sources: the traces, then its own pass")
status = sub.request({"req": "snapshot"})["status"]
tap.eq(status.get("probe_hash"), probe.hash, "the daemon's probe hash is the traces'")
tap.ok(all(byst[s].get("probe_hash") == probe.hash for s in byst),
       "every result carries that probe hash: one series")
hist = sub.request({"req": "history", "metric": "pathway_distance", "group": "all"})
tap.eq([p[0] for p in hist.get("points", [])], [1000, 2000, 3000],
       "the history holds the three steps in one series")

r = subprocess.run(gwtest.WRAP + [gwtest.BIN, "analyze", CKPT, "--probe", PROBE, "--json"],
                   capture_output=True, text=True)
own = json.loads(r.stdout.strip().splitlines()[-1])


def close(a, b, rel=1e-4):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= rel * max(1.0, abs(b))


for step in (1000, 3000):
    m = byst[step]
    bad = []
    for g, want in own["groups"].items():
        got = m["groups"].get(g, {})
        for k in ("pathway_distance", "pathway_consistency", "adjacent_cosine", "loss",
                  "n_samples"):
            if not close(got.get(k), want.get(k)):
                bad.append("%s %s: %r, its own pass %r" % (g, k, got.get(k), want.get(k)))
    for k in ("max_imbalance", "load_entropy", "dead_experts", "router_entropy", "z_loss"):
        a, b = m["health"]["overall"].get(k), own["health"]["overall"].get(k)
        if not close(a, b):
            bad.append("health %s: %r, its own pass %r" % (k, a, b))
    tap.ok(not bad, "step %d: the metrics of the trace are those of the daemon's own forward "
           "pass of the checkpoint" % step, "\n".join(bad))
tap.eq(byst[2000].get("churn"), 0.0,
       "churn from the traced step 1000 to the forward pass of the same weights: 0")

sub.close()
tap.eq(d.stop(), 0, "the daemon stops cleanly")
gwtest.finish(tap, work)
