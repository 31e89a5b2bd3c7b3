#!/usr/bin/python3
"""test_demo_train.py — `make demo-train` as a short smoke run (tools/demo_train.py
--smoke: two checkpoints of tools/train_tiny_moe.py watched live by a real
grokwatchd), and the pieces its table rests on:

  - the daemon computed every checkpoint the trainer renamed in, none twice,
    and left no temporary directory behind;
  - the trainer's model and the daemon's forward pass are one model: the
    loss of each group over the probe samples, as the trainer computes it
    with its own torch model, equals the daemon's within 1e-5 (the daemon's
    forward pass is held to the Hugging Face reference elsewhere);
  - an auto epsilon was chosen per group, on the 0.1-nat grid, and each
    result carries the distance's standard error;
  - `grokwatch plot --beside` drew both charts;
  - the Pearson and Spearman coefficients match numpy's (Spearman as
    Pearson of ranks, ties averaged, written here from the definition).
"""

import io
import json
import os
import random
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import gwtest as g  # noqa: E402
import demo_train  # noqa: E402


def np_spearman(x, y):
    def rank(v):
        v = np.asarray(v, float)
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(1, len(v) + 1)
        for u in np.unique(v):  # ties: the mean of their ranks
            r[v == u] = r[v == u].mean()
        return r
    return float(np.corrcoef(rank(x), rank(y))[0, 1])


def main():
    tap = g.Tap()
    rng = random.Random(5)
    for n in (3, 7, 40):
        x = [rng.choice([0.1, 0.2, 0.3, rng.random()]) for _ in range(n)]
        y = [rng.random() for _ in range(n)]
        tap.ok(abs(demo_train.pearson(x, y) - float(np.corrcoef(x, y)[0, 1])) < 1e-12,
               "Pearson of %d points as numpy's" % n)
        tap.ok(abs(demo_train.spearman(x, y) - np_spearman(x, y)) < 1e-12,
               "Spearman of %d points (with ties) as Pearson of averaged ranks" % n)
    tap.ok(demo_train.pearson([1, 2], [2, 1]) is None, "fewer than 3 points: no coefficient")
    tap.ok(demo_train.pearson([1, 1, 1], [1, 2, 3]) is None, "a constant: no coefficient")

    work = tempfile.mkdtemp(prefix="gw-demo-train.")
    out = io.StringIO()
    try:
        res = demo_train.run(os.path.join(work, "run"), 3, [], out=out, smoke=True)
    except Exception as e:  # noqa: BLE001 - reported as a failed test
        tap.ok(False, "the smoke run completes", "%s\n%s" % (e, out.getvalue()))
        g.finish(tap, work)
        return
    text = out.getvalue()
    tap.ok(True, "the smoke run completes")
    steps = [r["step"] for r in res["recs"]]
    tap.eq(steps, [20, 40], "two checkpoints trained and logged")
    root = os.path.join(work, "run", "checkpoints")
    tap.eq(sorted(os.listdir(root)), ["step20", "step40"],
           "renamed in, no temporary directory left")
    journal = [json.loads(line) for line in open(os.path.join(work, "run", "state",
                                                              "journal.jsonl"))]
    tap.eq(sorted(r["step"] for r in journal if r.get("kind") == "result"), [20, 40],
           "the daemon computed each checkpoint once")
    worst = 0.0
    for r in res["recs"]:
        for gr, v in r["groups"].items():
            d = res["hist"][(gr, "loss")][r["step"]]
            worst = max(worst, abs(d - v["probe_loss"]) / max(1.0, abs(v["probe_loss"])))
    tap.ok(worst <= 1e-5, "trainer and grokwatchd run one model: group losses agree "
           "(worst relative difference %.2g)" % worst)
    eps = [res["hist"][(gr, "memorized.epsilon")][s] for gr in res["groups"] for s in steps]
    tap.ok(all(e is not None and abs(e * 10 - round(e * 10)) < 1e-9 and e >= 0.1 for e in eps),
           "an auto epsilon per group on the 0.1 grid", eps)
    se = [res["hist"][(gr, "pathway_distance_se")][s] for gr in res["groups"] for s in steps]
    tap.ok(all(v is not None and v > 0 for v in se), "each distance has a standard error", se)
    tap.eq(res["plot_rc"], 0, "grokwatch plot --beside: exit 0")
    tap.ok("pathway_distance" in text and "heldout_accuracy" in text,
           "both charts drawn", text[-3000:])
    tap.eq(len(res["rows"]), 3 * len(demo_train.METRICS), "a table row per group and metric")
    tap.ok(os.path.exists(os.path.join(work, "run", "table.md")), "the table written as markdown")
    tap.eq(res["daemon_rc"], 0, "grokwatchd stopped on SIGTERM with status 0")
    g.finish(tap, work)


if __name__ == "__main__":
    main()
