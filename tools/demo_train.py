#!/usr/bin/python3
"""demo_train.py — `make demo-train`: grokwatchd watching a real training run
live, and how well its metrics track held-out accuracy.

usage: demo_train.py [--seed N] [--work DIR] [--keep] [--smoke] [--json] [--memorized-acc X]
                     [-- TRAIN_OPTIONS...]
       demo_train.py --table-from WORK/series.json [--memorized-acc X]

Writes the probe set (training samples of each operation), starts
`grokwatchd run` on an empty checkpoint directory (epsilon "auto", as the
paper chooses it), then runs tools/train_tiny_moe.py, which trains a tiny
OLMoE on modular arithmetic on the CPU and renames each checkpoint into
that directory; the daemon computes each one as it lands.  When training
ends and the daemon has every checkpoint, it prints

  - `grokwatch plot` of the pathway distance per operation (with its band
    of one standard error), the held-out accuracy beside it;
  - the correlation table: for each operation and each metric, Pearson's r
    and Spearman's rho with held-out accuracy over all checkpoints and
    over those after memorization (the operation's training accuracy at
    least 0.99, or --memorized-acc), with the training loss as the
    baseline, as the paper's Table 1 does;
  - the alerts the daemon raised (grokking, plateaus), with their steps;
  - the wall time, and the machine's load before and after.

The table is also written to WORK/table.md, the per-checkpoint numbers to
WORK/series.json (--table-from computes the table again from it, with
another --memorized-acc); --json ends with one line {"bench": "demo_train", ...}
holding the wall time and the table (tests/bench/bench_demo_train.sh).
--smoke trains a few steps only (make check runs it
through tests/integration/test_demo_train.py).  Environment: GW_BIN,
GW_CLI, GW_SRC and PYTHON as the Makefile's TEST_ENV sets them.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("GW_SRC", os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import gwtest as g  # noqa: E402

CLI = os.environ.get("GW_CLI", os.path.join(SRC, "build", "default", "grokwatch"))
PY = os.environ.get("PYTHON", "/usr/bin/python3")
TRAIN = os.path.join(SRC, "tools", "train_tiny_moe.py")

# Rows of the table: (label, where the value comes from).
METRICS = [
    ("pathway_distance", "daemon"),
    ("memorized.pathway_distance", "daemon"),
    ("pathway_consistency", "daemon"),
    ("memorized.pathway_consistency", "daemon"),
    ("loss (probe, grokwatchd)", "daemon:loss"),
    ("training loss (baseline)", "trainer"),
]
SMOKE = ["--steps", "40", "--every", "20", "--batch", "32", "--probe-per-group", "12"]
MEMORIZED_ACC = 0.99
# The memorization rule's delta (SPEC §4: default 0.05).  This toy's
# per-sample losses move by a median 0.05 nats, 0.15 to 0.2 at the 90th
# percentile, from one checkpoint to the next late in training (two of the
# four predicted positions are random draws; the answer flips between
# right and wrong); with 0.05 few samples stay memorized over more than a
# checkpoint or two.
DELTA = 0.2


# ---------------------------------------------------------------- statistics

def pearson(x, y):
    n = len(x)
    if n < 3:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def ranks(v):
    """Ranks 1..n, ties sharing the mean of their ranks."""
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(x, y):
    return pearson(ranks(x), ranks(y)) if len(x) >= 3 else None


def fmt(v):
    return "   -  " if v is None else "%+.3f" % v


# ---------------------------------------------------------------- the run

def correlations(series, memorized_acc):
    """The table's rows, (group, metric, r, rho, n over all checkpoints, r,
    rho, n over those with training accuracy >= memorized_acc), and the
    same as markdown lines."""
    rows = []
    for gr, sr in series.items():
        steps = sr["step"]
        post = [i for i, a in enumerate(sr["train_acc"]) if a >= memorized_acc]
        for label, _ in METRICS:
            res = []
            for sel in (range(len(steps)), post):
                pts = [(sr[label][i], sr["heldout_acc"][i]) for i in sel
                       if sr[label][i] is not None]
                xs, ys = [p[0] for p in pts], [p[1] for p in pts]
                res += [pearson(xs, ys), spearman(xs, ys), len(xs)]
            rows.append((gr, label) + tuple(res))
    table = ["| group | metric | Pearson r (all) | Spearman rho (all) | n | "
             "Pearson r (memorized) | Spearman rho (memorized) | n |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for gr, label, p1, s1, n1, p2, s2, n2 in rows:
        table.append("| %s | %s | %s | %s | %d | %s | %s | %d |" % (
            gr, label, fmt(p1), fmt(s1), n1, fmt(p2), fmt(s2), n2))
    return rows, table


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def cli(args, ep, **kw):
    return subprocess.run([CLI, "-e", ep] + args, **kw)


def wait_all(sub, steps, timeout):
    """Until the daemon's history has a loss at every checkpoint step."""
    end = time.time() + timeout * g.SLOW
    while time.time() < end:
        r = sub.request({"req": "history", "metric": "loss", "group": "all"})
        have = {s for s, v in r.get("points", []) if v is not None}
        if steps <= have:
            return True
        time.sleep(0.5)
    return False


def run(work, seed, train_args, out=sys.stdout, smoke=False, memorized_acc=MEMORIZED_ACC):
    """The whole demo in `work`; returns a dict of what it measured."""
    def say(*a):
        print(*a, file=out, flush=True)

    t0 = time.time()
    load0 = open("/proc/loadavg").read().split()[:3]
    root = os.path.join(work, "checkpoints")
    probe = os.path.join(work, "probe.jsonl")
    log = os.path.join(work, "train.jsonl")
    csv = os.path.join(work, "heldout.csv")
    os.makedirs(root)
    args = ["--seed", str(seed), "--run", "tiny-moe-seed%d" % seed] + (SMOKE if smoke else []) + \
        list(train_args)
    subprocess.run([PY, TRAIN, "--write-probe", probe] + args, check=True)
    dm = g.Daemon(work, root, probe, name="tiny-moe-seed%d" % seed,
                  extra={"log_level": "info", "watch.quiet_period_ms": 200,
                         "publish.heartbeat_ms": 1000, "threads.blas": 1,
                         "metrics.epsilon": "auto", "metrics.delta": DELTA,
                         "alerts.loss.patience": 3, "alerts.loss.min_checkpoints": 4,
                         "alerts.distance.patience": 3, "alerts.distance.min_checkpoints": 4})
    dm.start()
    ep = "%s,%s" % (dm.pub, dm.query)
    say("demo-train: grokwatchd run -c %s, watching %s (log %s)" % (dm.cfg_path, root,
                                                                    dm.log_path))
    say("demo-train: memorized as the paper rules, epsilon \"auto\" (20%% of each group at the "
        "latest checkpoint), delta %g" % DELTA)
    say("demo-train: training (tools/train_tiny_moe.py %s)" % " ".join(args))
    sub = g.Subscriber(dm.pub, dm.query)
    try:
        tr = subprocess.Popen([PY, TRAIN, "--out", root, "--log", log, "--csv", csv] + args,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in tr.stdout:
            say("  " + line.rstrip())
        if tr.wait() != 0:
            raise RuntimeError("train_tiny_moe.py exited with status %d" % tr.returncode)
        t_train = time.time() - t0
        recs = [r for r in read_log(log) if r["step"] > 0]
        steps = {r["step"] for r in recs}
        if not wait_all(sub, steps, 120):
            raise RuntimeError("grokwatchd did not compute every checkpoint within 120 s; "
                               "its log: %s" % dm.log_path)
        t_daemon = time.time() - t0
        groups = list(recs[0]["groups"])
        hist = {}
        for gr in groups:
            for m in ("pathway_distance", "memorized.pathway_distance", "pathway_consistency",
                      "memorized.pathway_consistency", "loss", "pathway_distance_se",
                      "memorized.epsilon", "memorized.n_samples"):
                r = sub.request({"req": "history", "metric": m, "group": gr})
                hist[(gr, m)] = {s: v for s, v in r["points"]}
        say("")
        cmd = ["plot", "--metric", "pathway_distance", "--width", "124", "--height", "14",
               "--beside", csv]
        for gr in groups:
            cmd += ["--group", gr]
        say("$ grokwatch %s" % " ".join(cmd))
        p = cli(cmd, ep, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        say(p.stdout.rstrip())
        plot_rc = p.returncode
        events = [e for e in dm.journal() if e.get("kind") == "alert"]
    finally:
        sub.sub.close()
        rc = dm.stop()
    wall = time.time() - t0
    load1 = open("/proc/loadavg").read().split()[:3]

    # Per group and checkpoint: held-out and training accuracy, and each
    # metric of the table.
    series = {}
    for gr in groups:
        steps = sorted(r["step"] for r in recs)
        by = {r["step"]: r["groups"][gr] for r in recs}
        series[gr] = {"step": steps, "heldout_acc": [by[s]["heldout_acc"] for s in steps],
                      "train_acc": [by[s]["train_acc"] for s in steps]}
        for label, src in METRICS:
            if src == "trainer":
                series[gr][label] = [by[s]["train_loss"] for s in steps]
            else:
                m = src.split(":")[1] if ":" in src else label
                series[gr][label] = [hist[(gr, m)].get(s) for s in steps]
    rows, table = correlations(series, memorized_acc)
    say("")
    say("Correlation with held-out accuracy, per operation, over all checkpoints and over")
    say("those after memorization (the operation's training accuracy >= %.2f):" % memorized_acc)
    say("")
    say("  %-5s %-30s %8s %8s %4s   %8s %8s %4s" % ("group", "metric", "r all", "rho all", "n",
                                                 "r mem", "rho mem", "n"))
    for gr, label, p1, s1, n1, p2, s2, n2 in rows:
        say("  %-5s %-30s %8s %8s %4d   %8s %8s %4d" % (gr, label, fmt(p1), fmt(s1), n1,
                                                      fmt(p2), fmt(s2), n2))
    say("")
    if events:
        say("Alerts grokwatchd raised (journal):")
        for e in events:
            a = e["alerts"][0]
            say("  step %-6s %-8s %-26s group %-4s metric %s" % (
                e.get("step"), e["status"], a["labels"]["alertname"], a["labels"]["group"],
                a["labels"]["metric"]))
    else:
        say("Alerts grokwatchd raised: none")
    say("")
    say("demo-train: %d checkpoints; training %.0f s, all computed %.0f s after the start, "
        "%.0f s in all; load %s before, %s after; grokwatchd stopped with status %s" % (
            len(recs), t_train, t_daemon, wall, " ".join(load0), " ".join(load1), rc))
    with open(os.path.join(work, "table.md"), "w") as f:
        f.write("\n".join(table) + "\n")
    with open(os.path.join(work, "series.json"), "w") as f:
        json.dump(series, f, indent=1)
    return {"recs": recs, "hist": hist, "rows": rows, "plot_rc": plot_rc, "wall": wall,
            "daemon_rc": rc, "events": events, "groups": groups, "table": table}


def main(argv):
    seed, work, keep, smoke, as_json, train, macc = 1, None, False, False, False, [], MEMORIZED_ACC
    table_from = None
    args = argv[1:]
    if "--" in args:
        train = args[args.index("--") + 1:]
        args = args[:args.index("--")]
    i = 0
    while i < len(args):
        if args[i] == "--seed" and i + 1 < len(args):
            seed = int(args[i + 1])
            i += 2
        elif args[i] == "--work" and i + 1 < len(args):
            work = args[i + 1]
            i += 2
        elif args[i] == "--keep":
            keep, i = True, i + 1
        elif args[i] == "--smoke":
            smoke, i = True, i + 1
        elif args[i] == "--json":
            as_json, i = True, i + 1
        elif args[i] == "--memorized-acc" and i + 1 < len(args):
            macc = float(args[i + 1])
            i += 2
        elif args[i] == "--table-from" and i + 1 < len(args):
            table_from = args[i + 1]
            i += 2
        else:
            print(__doc__, file=sys.stderr)
            return 2
    if table_from:
        with open(table_from) as f:
            print("\n".join(correlations(json.load(f), macc)[1]))
        return 0
    own = work is None
    if own:
        work = tempfile.mkdtemp(prefix="grokwatch-demo-train.")
    elif os.path.exists(work) and os.listdir(work):
        print("demo-train: %r is not empty" % work, file=sys.stderr)
        return 1
    else:
        os.makedirs(work, exist_ok=True)
    try:
        res = run(work, seed, train, smoke=smoke, memorized_acc=macc)
        if as_json:
            print(json.dumps({
                "bench": "demo_train", "seed": seed, "wall_sec": round(res["wall"], 1),
                "memorized_acc": macc,
                "checkpoints": len(res["recs"]),
                "load": open("/proc/loadavg").read().split()[:3],
                "final_heldout_acc": {gr: res["recs"][-1]["groups"][gr]["heldout_acc"]
                                      for gr in res["groups"]},
                "rows": [dict(zip(("group", "metric", "pearson_all", "spearman_all", "n_all",
                                   "pearson_memorized", "spearman_memorized", "n_memorized"), r))
                         for r in res["rows"]]}))
        if own and keep:
            print("demo-train: kept %s" % work)
    finally:
        g.cleanup_all()
        if own and not keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
