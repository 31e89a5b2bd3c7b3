#!/usr/bin/python3
"""test_memo_store.py — one result store (issue 12, item 2): when a new
latest checkpoint moves the memorized subset, the recomputed values are what
history serves AND what alerts judge, so a plateau alert on
`memorized.pathway_distance` agrees with the history a client reads.

The demo's six checkpoints with metrics.epsilon = 6 (the demo's losses are
about 6, so some samples count as memorized and the subset moves as later
checkpoints arrive); a plateau rule on memorized.pathway_distance with
patience 2, judged for group math.  The expected firing set is computed here
from the served history with torch's ReduceLROnPlateau rule (alert.h), and
must be the daemon's, live and after a restart.
"""

import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest as g  # noqa: E402

METRIC = "memorized.pathway_distance"
RULE = {"metric": METRIC, "mode": "min", "threshold": 0.0, "threshold_mode": "abs",
        "patience": 2, "cooldown": 0, "min_checkpoints": 2}
GROUPS = ["math", "all"]


def on_plateau(values, rule):
    """alert.h's plateau rule at the latest value (abs threshold, mode min)."""
    best, num_bad, cooldown, plateau, seen = math.inf, 0, 0, False, 0
    for x in values:
        if x is None:
            continue
        seen += 1
        if x < best - rule["threshold"]:
            best, num_bad, plateau = x, 0, False
        else:
            num_bad += 1
        if cooldown > 0:
            cooldown, num_bad = cooldown - 1, 0
        if num_bad > rule["patience"]:
            plateau, cooldown, num_bad = True, rule["cooldown"], 0
    return plateau and seen >= rule["min_checkpoints"]


def expected(sub):
    want, points = set(), {}
    for grp in GROUPS:
        h = sub.request({"req": "history", "metric": METRIC, "group": grp})
        points[grp] = h["points"]
        if on_plateau([p[1] for p in h["points"]], RULE):
            want.add(grp)
    return want, points


def firing(sub):
    snap = sub.request({"req": "snapshot"})
    return {a["labels"]["group"] for a in snap["status"].get("alerts", [])
            if a["labels"]["alertname"] == "plateau" and a["labels"]["metric"] == METRIC}


t = g.Tap()
base = tempfile.mkdtemp(prefix="gwmemo.")
try:
    gen = os.path.join(base, "gen")
    g.gen_series(gen, 6)
    root = os.path.join(base, "ckpt")
    os.makedirs(root)
    dm = g.Daemon(base, root, os.path.join(gen, "probe.jsonl"), extra={
        "metrics.epsilon": 6.0,
        "alerts.groups": GROUPS,
        "alerts.plateaus": [RULE],
        "alerts.routing_collapse": {"dead_experts": 0, "max_imbalance": 0}})
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    for k in range(1, 7):
        g.place_atomic(os.path.join(gen, "step%d000" % k), root, "step%d000" % k)
        t.ok(sub.collect(g.n_metrics(k), 30 * g.SLOW), "step %d000 computed" % k, dm.log())
    journal = {e["step"]: e for e in dm.journal() if e["kind"] == "result"}
    want, points = expected(sub)
    stale = [journal[p[0]]["groups"]["math"]["memorized"]["pathway_distance"]
             for p in points["math"]]
    t.ok(stale != [p[1] for p in points["math"]],
         "the memorized subset moved: history differs from the values first journaled",
         json.dumps({"history": points["math"], "journal": stale}))
    t.ok("math" in want, "the served history of math is on a plateau", json.dumps(points))
    t.eq(firing(sub), want, "the plateau alerts judged the values history serves")
    sub.close()
    t.eq(dm.stop(), 0, "stopped cleanly")

    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    want2, points2 = expected(sub)
    t.eq(points2, points, "restart: history recomputed the same way")
    t.eq(firing(sub), want2, "restart: the alerts judge the recomputed values too")
    sub.close()
    t.eq(dm.stop(), 0, "stopped cleanly after the restart")
except Exception as e:  # a broken run is a failure, not a crash of the file
    t.ok(False, "raised %s" % e.__class__.__name__, str(e))
g.finish(t, base)
