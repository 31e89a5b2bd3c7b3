#!/usr/bin/python3
"""test_trace_dist.py — grokwatch.trace under torch.distributed, gloo on the
CPU, ranks started as torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT; Debian's torch 1.13 cannot run torch.distributed.run under
Python 3.11).

On the reference OLMoE model and a probe of 23 samples: two ranks write a
file byte for byte equal to one process's, with batches that split unevenly
(5 batches of 5 over 2 ranks: 15 and 8 samples), three ranks with 3 batches
of 10, 10 and 3, and a model wrapped in DistributedDataParallel.  A rank
whose forward raises: every rank reports a TraceError naming it, no file is
written and the old one stays.  A rank whose process exits, and a rank that
hangs: rank 0 reports a TraceError within the timeout given to write().
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("GW_SRC", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
from gwtest import PY, SLOW, Tap, free_port  # noqa: E402

FX = os.environ.get("GW_FIXTURES", os.path.join(SRC, "build", "default", "fixtures"))
CKPT = os.path.join(FX, "olmoe-f32")
WORKER = os.path.join(HERE, "trace_worker.py")
tap = Tap()
work = tempfile.mkdtemp(prefix="gwdist.")
probe = os.path.join(work, "probe23.jsonl")
with open(os.path.join(FX, "probe", "probe.jsonl")) as f:
    lines = [ln for ln in f if ln.strip()]
with open(probe, "w") as f:
    f.writelines(lines[:23])


def run(world, batch, mode="ok", timeout=60, tag=None, limit=120):
    """Start `world` ranks (or one plain process for world 0); their outputs."""
    out = os.path.join(work, tag or "w%d-b%d-%s" % (world, batch, mode), "step5")
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, GW_SRC=SRC, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    procs = []
    port = free_port()
    for r in range(max(world, 1)):
        e = dict(env)
        if world:
            e.update(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world),
                     MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen(
            [PY, WORKER, CKPT, probe, out, str(batch), mode, str(timeout)], env=e,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    res = []
    end = time.time() + limit * SLOW
    for p in procs:
        try:
            o, _ = p.communicate(timeout=max(1, end - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            o, _ = p.communicate()
            o += "\n(killed by the test)"
        res.append((p.returncode, o))
    return out, res


def result(o):
    for ln in o.splitlines():
        if ln.startswith("RESULT "):
            return ln[7:]
    return "no result: " + o[-600:]


def seconds(o):
    for ln in o.splitlines():
        if ln.startswith("SECONDS "):
            return float(ln.split()[1])
    return None


def read(path):
    with open(path, "rb") as f:
        return f.read()


one, res = run(0, 5, tag="single")
tap.ok(result(res[0][1]).startswith("wrote"), "one process writes the trace", res[0][1])
ref = read(os.path.join(one, "routing.safetensors"))

for world, batch, mode, what in ((2, 5, "ok", "2 ranks, batches of 5 (15 and 8 samples)"),
                                 (3, 10, "ok", "3 ranks, batches of 10 (10, 10 and 3)"),
                                 (2, 5, "ddp", "2 ranks, the model in DistributedDataParallel")):
    out, res = run(world, batch, mode)
    r = [result(o) for _, o in res]
    tap.ok(r[0].startswith("wrote") and all(x == "none" for x in r[1:]),
           "%s: rank 0 writes, the others return None" % what, "\n".join(o for _, o in res))
    path = os.path.join(out, "routing.safetensors")
    same = os.path.exists(path) and read(path) == read(os.path.join(one, "routing.safetensors")) \
        if batch == 5 else None
    if batch != 5:
        _, r1 = run(0, batch, tag="single-b%d" % batch)
        same = read(path) == read(os.path.join(work, "single-b%d" % batch, "step5",
                                               "routing.safetensors"))
    tap.ok(same, "%s: the file equals one process's, byte for byte" % what)

# A failing rank: errors everywhere, no file, the old one intact.
out = os.path.join(work, "raise", "step5")
os.makedirs(out)
with open(os.path.join(out, "routing.safetensors"), "wb") as f:
    f.write(b"old")
t0 = time.time()
out, res = run(2, 5, "raise", timeout=30 * SLOW, tag="raise")
r = [result(o) for _, o in res]
tap.ok(all(x.startswith("TraceError") and "rank 1: RuntimeError: an injected fault" in x
           for x in r), "a rank whose forward raises: a TraceError on every rank naming it",
       "\n".join(r))
tap.ok(read(os.path.join(out, "routing.safetensors")) == b"old" and
       sorted(os.listdir(out)) == ["routing.safetensors"], "  no file written, the old one intact")
tap.ok(time.time() - t0 < 60 * SLOW, "  and no wait for the timeout (%.1f s)" % (time.time() - t0))

for mode, what in (("exit", "a rank whose process exits"), ("hang", "a rank that hangs")):
    out, res = run(2, 5, mode, timeout=8 * SLOW, tag=mode, limit=60)
    r0 = result(res[0][1])
    s = seconds(res[0][1])
    tap.ok(r0.startswith("TraceError") and "no routing file written" in r0,
           "%s: rank 0 reports a TraceError" % what, res[0][1][-800:])
    tap.ok(s is not None and s < 8 * SLOW + 30, "  within the timeout of %d s (%s s)"
           % (8 * SLOW, s))
    tap.ok(not os.path.exists(os.path.join(out, "routing.safetensors")), "  no file")

shutil.rmtree(work, ignore_errors=True)
tap.done()
