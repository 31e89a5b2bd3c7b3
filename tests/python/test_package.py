#!/usr/bin/python3
"""test_package.py — the grokwatch Python package as a user installs and runs it.

  - Message.trainer: the trainer's own loss and learning rate of a result;
  - `import grokwatch` needs only the standard library, grokwatch.probe only
    numpy: neither pulls in pyzmq, torch or pandas; the version is VERSION's;
  - `pip install --no-build-isolation --no-index ./client/python` into a
    fresh virtual environment (with Debian's site packages) works offline,
    and the installed package imports and runs `python -m grokwatch.trace
    --help` from there;
  - `python3 -m grokwatch.trace`: without transformers, a message naming it
    and the in-job alternative (exit 1); with a stand-in `transformers` (a
    module exposing AutoModelForCausalLM.from_pretrained that returns the
    PyTorch reference in a Hugging Face module tree; the real library is not
    in Debian 12), the routing file lands in the checkpoint directory with the
    step from its name and the engine's routing (gbar within 1e-5); with
    --dtype bfloat16 the model is asked for in bfloat16 (the stand-in rounds
    its weights; the reference computes in fp32) and the daemon reads the file; a progress line on a
    terminal (a pseudo-terminal here) and none into a pipe; usage errors
    exit 2, a missing checkpoint, a bad probe or a probe token beyond the
    vocabulary exit 1 naming the input.
"""
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("GW_SRC", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "reference"))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import stfile  # noqa: E402
from gwtest import BIN, PY, SLOW, Tap  # noqa: E402

FX = os.environ.get("GW_FIXTURES", os.path.join(SRC, "build", "default", "fixtures"))
PROBE = os.path.join(FX, "probe", "probe.jsonl")
PKG = os.path.join(SRC, "client", "python")
tap = Tap()
work = tempfile.mkdtemp(prefix="gwpkg.")


def py(code, env=None, cwd=None):
    e = dict(os.environ, PYTHONPATH=PKG)
    e.update(env or {})
    return subprocess.run([PY, "-c", code], capture_output=True, text=True, env=e,
                          cwd=cwd or work, timeout=300 * SLOW)


# ---- imports
BLOCK = ("import sys\nclass B:\n def find_spec(self, n, *a):\n"
         "  if n.split('.')[0] in ('zmq', 'torch', 'pandas'): raise ImportError('blocked ' + n)\n"
         "sys.meta_path.insert(0, B())\n")
r = py(BLOCK + "import grokwatch, grokwatch.probe\n"
       "p = grokwatch.probe.load(%r)\nprint(grokwatch.__version__, len(p), p.hash)" % PROBE)
with open(os.path.join(SRC, "VERSION")) as f:
    version = f.read().strip()
tap.ok(r.returncode == 0 and r.stdout.split()[:2] == [version, "24"],
       "import grokwatch and grokwatch.probe need neither pyzmq, torch nor pandas; version %s"
       % version, r.stdout + r.stderr)
r = py("import grokwatch; print(grokwatch.Subscriber.__module__, grokwatch.to_dataframe.__module__)")
tap.ok(r.stdout.split() == ["grokwatch.subscribe", "grokwatch.frame"],
       "grokwatch.Subscriber and grokwatch.to_dataframe load on first use", r.stderr)

# ---- the trainer's own figures beside the routing metrics (Message.trainer)
r = py("from grokwatch.subscribe import Message\n"
       "m = Message('metrics.r', {'type': 'metrics', 'step': 20, 'trainer': {'loss': 3.25, "
       "'loss_step': 20, 'learning_rate': 0.0009, 'learning_rate_step': 20, 'x': 'y'}}, '{}')\n"
       "print(m.trainer)\n"
       "print(Message('metrics.r', {'type': 'metrics', 'step': 20}, '{}').trainer)")
tap.ok(r.returncode == 0 and r.stdout.splitlines() == [
    "{'loss': 3.25, 'loss_step': 20, 'learning_rate': 0.0009, 'learning_rate_step': 20}",
    "None"], "Message.trainer: the trainer's loss and learning rate, None where not logged",
    r.stdout + r.stderr)

# ---- pip, offline, into a virtual environment
venv = os.path.join(work, "venv")
src_copy = os.path.join(work, "src")
shutil.copytree(PKG, src_copy, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                             "__pycache__"))
r = subprocess.run([PY, "-m", "venv", "--system-site-packages", venv], capture_output=True,
                   text=True)
vpy = os.path.join(venv, "bin", "python")
if r.returncode != 0:
    tap.ok(False, "python3 -m venv works (python3-venv)", r.stderr)
else:
    r = subprocess.run([vpy, "-m", "pip", "install", "--no-build-isolation", "--no-index",
                        "--no-deps", src_copy], capture_output=True, text=True, cwd=work,
                       timeout=300 * SLOW)
    tap.ok(r.returncode == 0, "pip install --no-build-isolation --no-index ./client/python: "
           "installs offline", r.stdout[-1500:] + r.stderr[-1500:])
    r = subprocess.run([vpy, "-c", "import grokwatch.trace as t, grokwatch; "
                        "print(grokwatch.__file__)"], capture_output=True, text=True, cwd=work)
    tap.ok(r.returncode == 0 and r.stdout.startswith(venv),
           "the installed package imports from the environment", r.stdout + r.stderr)
    r = subprocess.run([vpy, "-m", "grokwatch.trace", "--help"], capture_output=True,
                       text=True, cwd=work)
    tap.ok(r.returncode == 0 and "--probe" in r.stdout and "--dtype" in r.stdout,
           "python -m grokwatch.trace --help from the environment", r.stdout + r.stderr)

# ---- the command line
ck = os.path.join(work, "step1234")
shutil.copytree(os.path.join(FX, "olmoe-f32"), ck)
r = subprocess.run([PY, "-m", "grokwatch.trace", ck, "--probe", PROBE], capture_output=True,
                   text=True, env=dict(os.environ, PYTHONPATH=PKG))
tap.ok(r.returncode == 1 and "transformers" in r.stderr and "grokwatch.trace.write" in r.stderr
       and not os.path.exists(os.path.join(ck, "routing.safetensors")),
       "without transformers: exit 1, a message naming it and write()", r.stderr)

stand_in = os.path.join(work, "standin")
os.makedirs(os.path.join(stand_in, "transformers"))
with open(os.path.join(stand_in, "transformers", "__init__.py"), "w") as f:
    f.write('''"""A stand-in for transformers in tests: the PyTorch reference model."""
import os, sys
import torch
sys.path.insert(0, os.path.join(os.environ["GW_SRC"], "tests", "reference"))
import ref_modules


class AutoModelForCausalLM:
    @staticmethod
    def from_pretrained(path, torch_dtype=None):
        """The reference computes in fp32: a bfloat16 load rounds the weights."""
        with open(os.environ["GW_STANDIN_LOG"], "a") as f:
            f.write("%s %s\\n" % (path, torch_dtype))
        m = ref_modules.HFModel(path)
        if torch_dtype is not None:
            m.to(torch_dtype).to(torch.float32)
        return m
''')
LOG = os.path.join(work, "standin.log")
ENV = dict(os.environ, PYTHONPATH=PKG + os.pathsep + stand_in, GW_SRC=SRC, OMP_NUM_THREADS="1",
           GW_STANDIN_LOG=LOG)


def cli(*args, env=ENV):
    return subprocess.run([PY, "-m", "grokwatch.trace"] + list(args), capture_output=True,
                          text=True, env=env, timeout=300 * SLOW)


engine = os.path.join(work, "engine.st")
subprocess.run([BIN, "analyze", ck, "--probe", PROBE, "--dump-routing", engine], check=True,
               capture_output=True)
r = cli(ck, "--probe", PROBE, "--batch", "5", "--device", "cpu")
out = os.path.join(ck, "routing.safetensors")
ok = r.returncode == 0 and os.path.exists(out)
tap.ok(ok and "wrote %s" % out in r.stdout and r.stderr == "",
       "python3 -m grokwatch.trace CKPT --probe FILE writes CKPT/routing.safetensors; no "
       "progress line into a pipe", r.stdout + r.stderr)
if ok:
    got, want = stfile.SafeTensors(out), stfile.SafeTensors(engine)
    d = float(np.abs(got.get("gbar").astype(np.float64) - want.get("gbar")).max())
    tap.ok(d <= 1e-5 and got.metadata.get("step") == "1234" and
           got.metadata.get("probe_hash") == want.metadata.get("probe_hash"),
           "  the engine's routing (gbar within %.2g), step 1234 from the name, the probe hash"
           % d, got.metadata)
r = cli(ck, "--probe", PROBE, "--dtype", "bfloat16", "--step", "7", "--no-tokens")
a = subprocess.run([BIN, "analyze", out, "--json"], capture_output=True, text=True)
st = stfile.SafeTensors(out) if r.returncode == 0 else None
tap.ok(r.returncode == 0 and a.returncode == 0 and st.metadata.get("step") == "7" and
       "topk_ids" not in st.tensors and open(LOG).read().split()[-1] == "torch.bfloat16",
       "--dtype bfloat16 --step 7 --no-tokens: a file grokwatchd reads", r.stderr + a.stderr)

# A progress line on a terminal.
pid, fd = pty.fork()
if pid == 0:
    os.execve(PY, [PY, "-m", "grokwatch.trace", ck, "--probe", PROBE, "--batch", "4"], ENV)
buf = b""
while True:
    ready, _, _ = select.select([fd], [], [], 300 * SLOW)
    if not ready:
        break
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    buf += chunk
_, status = os.waitpid(pid, 0)
text = buf.decode(errors="replace")
tap.ok(os.WEXITSTATUS(status) == 0 and re.search(r"\rgrokwatch\.trace: 24/24 samples", text)
       and "\rgrokwatch.trace: 4/24 samples" in text,
       "on a terminal: a progress line, batch by batch", text[-500:])

if not __import__("torch").cuda.is_available():
    r = cli(ck, "--probe", PROBE, "--device", "cuda")
    tap.ok(r.returncode == 1 and "--device cuda, but torch sees no GPU" in r.stderr,
           "--device cuda without a GPU: exit 1 saying so", r.stderr)
r = cli(ck, "--probe", PROBE, "--batch", "0")
tap.ok(r.returncode == 2 and "--batch" in r.stderr, "--batch 0: usage error, exit 2", r.stderr)
r = cli(os.path.join(work, "nope"), "--probe", PROBE)
tap.ok(r.returncode == 1 and "nope" in r.stderr and "config.json" in r.stderr,
       "a missing checkpoint: exit 1 naming it", r.stderr)
badp = os.path.join(work, "bad.jsonl")
with open(badp, "w") as f:
    f.write('{"tokens": [1, 2]}\n{"tokens": [1, "x"]}\n')
r = cli(ck, "--probe", badp)
tap.ok(r.returncode == 1 and 'bad.jsonl" line 2: tokens[1] is the string "x"' in r.stderr,
       "a bad probe: exit 1 naming the file and line", r.stderr)
with open(badp, "w") as f:
    f.write('{"tokens": [1, 2]}\n{"tokens": [1, 300]}\n')
before = open(out, "rb").read()
r = cli(ck, "--probe", badp)
tap.ok(r.returncode == 1 and "at or beyond the vocabulary (256)" in r.stderr and
       open(out, "rb").read() == before,
       "a probe token beyond the vocabulary: exit 1, the old file kept", r.stderr)

shutil.rmtree(work, ignore_errors=True)
tap.done()
