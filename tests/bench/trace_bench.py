#!/usr/bin/python3
"""trace_bench.py — grokwatch.trace's two figures (issue 14), for
bench_trace.sh.

  overhead MODEL PROBE [--reps N] [--batch N]
      The PyTorch reference model (tests/reference/ref_modules.py, a Hugging
      Face module tree) over the probe's batches: the plain forward (eval,
      no_grad) against the same forward with the recorder's hooks and the
      per-sample loss from the logits (what write() computes, without the
      file), alternated, N times each, one thread, in CPU seconds of the
      process (wall time on a loaded machine measures the other processes);
      the medians and their ratio.  Also write() whole (records, gather,
      file), median.
  write OUT_DIR [--samples N] [--tokens T] [--layers L] [--experts E]
        [--hidden H] [--top-k K] [--reps N]
      The time to write a routing file of N samples of T tokens at this
      width (router.<l> [E, H] for every layer, the per-token records)
      through the code write() ends with (_assemble_and_write: checks,
      metadata, the atomic safetensors write with fsync), median of N;
      also without the per-token records.  The file's size, and that
      grokwatchd reads it when --check-with names the binary.

Each prints a readable line and one JSON line {"bench": ...}.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types

SRC = os.environ.get("GW_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "client", "python"))
sys.path.insert(0, os.path.join(SRC, "tests", "reference"))
import numpy as np  # noqa: E402
import torch  # noqa: E402

from grokwatch import probe as gp  # noqa: E402
from grokwatch import trace as gt  # noqa: E402


def overhead(a):
    import ref_modules
    torch.set_num_threads(1)
    model = ref_modules.HFModel(a.model)
    model.eval()
    probe = gp.load(a.probe)
    batches = []
    for s in range(0, len(probe), a.batch):
        chunk = probe.samples[s:s + a.batch]
        lengths = [len(x.tokens) for x in chunk]
        T = max(lengths)
        ids = torch.zeros((len(chunk), T), dtype=torch.int64)
        mask = torch.zeros((len(chunk), T), dtype=torch.int64)
        for i, x in enumerate(chunk):
            ids[i, :len(x.tokens)] = torch.from_numpy(x.tokens.astype(np.int64))
            mask[i, :len(x.tokens)] = 1
        batches.append((ids, mask, lengths))
    rec = gt.RoutingRecorder(model)

    # CPU seconds of this (one-threaded) process: on a shared, loaded machine
    # wall time mostly measures the other processes.
    def plain():
        t0 = time.process_time()
        with torch.no_grad():
            for ids, mask, _ in batches:
                model(input_ids=ids, attention_mask=mask)
        return time.process_time() - t0

    # The recorder's own work, timed where it happens: the hooks, end() and
    # the losses.  Its sum over the plain forward's time is the overhead as
    # an account, steadier on a loaded machine than the difference of two
    # noisy totals (reported too).
    spent = [0.0]
    record = rec._record

    def timed_record(i, args):
        t0 = time.process_time()
        try:
            return record(i, args)
        finally:
            spent[0] += time.process_time() - t0

    rec._record = timed_record

    def traced():
        t0 = time.process_time()
        with torch.no_grad(), rec:
            for ids, mask, lengths in batches:
                rec.begin(lengths, ids.shape[1])
                out = model(input_ids=ids, attention_mask=mask)
                t1 = time.process_time()
                rec.end()
                gt._sample_losses(out.logits, ids, lengths)
                spent[0] += time.process_time() - t1
        return time.process_time() - t0

    plain()  # warm-up
    traced()
    tp, tt, own = [], [], []
    for i in range(a.reps):
        # Alternate which goes first, so neither always follows the other.
        if i % 2:
            tp.append(plain())
        spent[0] = 0.0
        tt.append(traced())
        own.append(spent[0])
        if not i % 2:
            tp.append(plain())
    d = tempfile.mkdtemp(prefix="gwtb.")
    tw = []
    for _ in range(a.reps):
        t0 = time.process_time()
        gt.write(model, probe, 1, d, batch_size=a.batch)
        tw.append(time.process_time() - t0)
    os.unlink(os.path.join(d, "routing.safetensors"))
    os.rmdir(d)
    mp, mt, mw = statistics.median(tp), statistics.median(tt), statistics.median(tw)
    mo = statistics.median(own)
    tokens = probe.n_tokens
    print("recorder overhead (CPU seconds, medians of %d): plain forward %.3f s; the "
          "recorder's own work (hooks, records, losses) %.3f s = %.1f%% of it (target <= "
          "10%%); forward with the recorder %.3f s, %+.1f%% as a difference of totals; "
          "write() whole %.3f s (%d samples, %d tokens, %d layers, %d experts, batch %d, 1 "
          "thread)" % (a.reps, mp, mo, 100 * mo / mp, mt, 100 * (mt / mp - 1), mw, len(probe),
                       tokens, rec.n_layers, rec.n_experts, a.batch))
    print(json.dumps({"bench": "trace_overhead", "samples": len(probe), "tokens": tokens,
                      "layers": rec.n_layers, "experts": rec.n_experts, "batch": a.batch,
                      "reps": a.reps, "plain_sec": round(mp, 4), "recorder_sec": round(mo, 4),
                      "overhead": round(mo / mp, 4), "traced_sec": round(mt, 4),
                      "overhead_of_totals": round(mt / mp - 1, 4), "write_sec": round(mw, 4),
                      "target_met": mo / mp <= 0.10}))


def write(a):
    N, T, L, E, H, k = a.samples, a.tokens, a.layers, a.experts, a.hidden, a.top_k
    rng = np.random.default_rng(14)
    g = rng.random((N, L, E), dtype=np.float32)
    g /= g.sum(-1, keepdims=True)
    probe = gp.Probe()
    probe.add_jsonl_bytes("bench.jsonl", b"".join(
        b'{"tokens":[%s],"group":"g%d","id":"s%d"}\n'
        % (b",".join([b"1"] * T), i % 4, i) for i in range(N)))
    probe.finish()
    n = N * T
    part = {
        "gbar": g, "loss": rng.random(N, dtype=np.float32),
        "ntokens": np.full(N, T, np.int32),
        "topk_ids": rng.integers(0, E, (n, L, k), dtype=np.uint16),
        "topk_w": rng.random((n, L, k), dtype=np.float32),
        "entropy": rng.random((n, L), dtype=np.float32),
        "lse": rng.random((n, L), dtype=np.float32),
    }
    rec = types.SimpleNamespace(
        names=["model.layers.%d.mlp.gate" % i for i in range(L)], top_k=k,
        router_weights=[rng.standard_normal((E, H), dtype=np.float32) for _ in range(L)],
        specs=[])
    model = torch.nn.Linear(1, 1)
    out = {}
    for tokens in (True, False):
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            path = gt._assemble_and_write(probe, [part], rec, 1000, a.out_dir, tokens, True,
                                          "bench", model, 1)
            times.append(time.perf_counter() - t0)
        size = os.path.getsize(path)
        out[tokens] = (statistics.median(times), size)
        if tokens and a.check_with:
            t0 = time.perf_counter()
            r = subprocess.run([a.check_with, "analyze", path, "--json"], capture_output=True,
                               text=True)
            out["check"] = (r.returncode == 0, time.perf_counter() - t0, r.stderr.strip())
        os.unlink(path)
    (tw, sw), (tn, sn) = out[True], out[False]
    print("trace write: %d samples x %d tokens, %d layers, %d experts, router.<l> [%d, %d]: "
          "%.3f s for %.1f MB with per-token records (%.0f MB/s), %.3f s for %.1f MB without "
          "(median of %d)" % (N, T, L, E, E, H, tw, sw / 1e6, sw / 1e6 / tw, tn, sn / 1e6,
                              a.reps))
    if "check" in out:
        ok, sec, err = out["check"]
        print("grokwatchd analyze reads it: %s (%.1f s)%s" % ("yes" if ok else "NO", sec,
                                                              "" if ok else ": " + err))
    print(json.dumps({"bench": "trace_write", "samples": N, "tokens_per_sample": T,
                      "layers": L, "experts": E, "hidden": H, "top_k": k, "reps": a.reps,
                      "write_sec": round(tw, 4), "bytes": sw,
                      "write_sec_no_tokens": round(tn, 4), "bytes_no_tokens": sn,
                      "daemon_reads_it": out.get("check", (None,))[0]}))
    return 0 if out.get("check", (True,))[0] else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("model")
    o.add_argument("probe")
    o.add_argument("--reps", type=int, default=5)
    o.add_argument("--batch", type=int, default=8)
    w = sub.add_parser("write")
    w.add_argument("out_dir")
    w.add_argument("--samples", type=int, default=1024)
    w.add_argument("--tokens", type=int, default=512)
    w.add_argument("--layers", type=int, default=16)
    w.add_argument("--experts", type=int, default=64)
    w.add_argument("--hidden", type=int, default=2048)
    w.add_argument("--top-k", type=int, default=8)
    w.add_argument("--reps", type=int, default=3)
    w.add_argument("--check-with", default=None, metavar="GROKWATCHD")
    a = ap.parse_args()
    return overhead(a) or 0 if a.cmd == "overhead" else write(a)


if __name__ == "__main__":
    sys.exit(main())
