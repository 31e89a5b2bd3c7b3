#!/usr/bin/python3
"""test_client_daemon.py — the grokwatch tool and the Python module against the
real `grokwatchd run` (issue 6): live tail, a late client seeing every result
once, a restart noticed with no duplicate, history and CSV checked against the
daemon's journal (written independently of anything the client does), status,
plot at widths 40 and 120, and the daemon down.

The checkpoints are the demo's tiny OLMoE series (tools/demo_series.py).
"""

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest as g  # noqa: E402

sys.path.insert(0, os.path.join(g.SRC, "client", "python"))
import grokwatch  # noqa: E402

CLI = os.environ.get("GW_CLI", os.path.join(g.SRC, "build", "default", "grokwatch"))
t = g.Tap()
base = tempfile.mkdtemp(prefix="gwcli.")
gen = os.path.join(base, "gen")
g.gen_series(gen, 4)
probe = os.path.join(gen, "probe.jsonl")
ENV = dict(os.environ, TZ="UTC", LC_ALL="C.UTF-8")


def cli(*args, timeout=60):
    p = subprocess.run(g.WRAP + [CLI] + list(args), capture_output=True, text=True,
                       timeout=timeout * g.SLOW, env=ENV)
    return p.returncode, p.stdout, p.stderr


def cli_bg(*args):
    out = open(os.path.join(base, "bg%d.out" % time.time_ns()), "w+")
    p = subprocess.Popen(g.WRAP + [CLI] + list(args), stdout=out, stderr=subprocess.STDOUT,
                         text=True, env=ENV)
    return p, out


def read(f):
    f.flush()
    with open(f.name) as r:
        return r.read()


def wait_for(pred, timeout):
    end = time.time() + timeout * g.SLOW
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def wait_exit(proc, timeout):
    """The exit status of a background client, or "hung" (killed) past timeout."""
    try:
        return proc.wait(timeout * g.SLOW)
    except subprocess.TimeoutExpired:
        proc.kill()
        return "hung"


def metric_lines(text):
    return [l for l in text.splitlines() if " step " in l]


def main():
    root = os.path.join(base, "ckpt")
    os.makedirs(root)
    pub, query = "tcp://127.0.0.1:%d" % g.free_port(), "tcp://127.0.0.1:%d" % g.free_port()
    dm = g.Daemon(os.path.join(base, "d"), root, probe, name="olmoe-tiny",
                  extra={"publish.endpoint": pub, "publish.query_endpoint": query})
    dm.start()
    ep = "%s,%s" % (pub, query)
    ck = lambda s: os.path.join(gen, "step%d" % s)  # noqa: E731
    n_results = lambda n: lambda: len([e for e in dm.journal() if e["kind"] == "result"]) >= n  # noqa: E731

    # tail, started first, shows results as they come
    tail, out = cli_bg("-e", ep, "tail", "--count", "2")  # status and progress not counted
    time.sleep(1 * g.SLOW)
    g.place_atomic(ck(1000), root, "step1000")
    t.ok(wait_for(n_results(1), 60), "the daemon computed step 1000", dm.log()[-2000:])
    g.place_atomic(ck(2000), root, "step2000")
    t.ok(wait_for(n_results(2), 60), "the daemon computed step 2000", dm.log()[-2000:])
    rc = wait_exit(tail, 30)
    text = read(out)
    t.eq(rc, 0, "tail --count 2 against the daemon: exit 0")
    lines = metric_lines(text)
    t.eq(sorted({l.split()[4] for l in lines}), ["1000", "2000"], "tail: steps 1000 and 2000")
    t.eq(sorted({l.split()[5] for l in lines}), ["all", "code", "math", "web"],
         "tail: a line per group")
    t.ok(all("distance " in l and "consistency " in l and "loss " in l and " olmoe-tiny " in l
             for l in lines), "tail: distance, consistency and loss on each line", text)
    t.ok("progress:" not in text and "status:" not in text,
         "tail: no progress or status lines without --all", text)

    # a late client sees both once, then a restart: resync, no duplicate
    tail, out = cli_bg("-e", ep, "tail", "--topic", "metrics.", "--topic", "resync.",
                       "--count", "4")
    t.ok(wait_for(lambda: len(metric_lines(read(out))) >= 8, 20), "late tail: caught up",
         read(out))
    dm.stop()
    dm.start()
    g.place_atomic(ck(3000), root, "step3000")
    t.ok(wait_for(n_results(3), 60), "the restarted daemon computed step 3000", dm.log()[-2000:])
    rc = wait_exit(tail, 30)
    text = read(out)
    t.eq(rc, 0, "tail across a restart: exit 0")
    lines = metric_lines(text)
    keys = [(l.split()[4], l.split()[5]) for l in lines]
    t.eq(len(keys), len(set(keys)), "tail across a restart: no (step, group) twice")
    t.eq(sorted({k[0] for k in keys}), ["1000", "2000", "3000"], "tail across a restart: all steps")
    t.ok("the daemon restarted" in text, "tail across a restart: the restart is shown", text)

    # history, CSV, against the journal
    journal = {e["step"]: e for e in dm.journal() if e["kind"] == "result"}
    rc, so, se = cli("-e", ep, "history", "--metric", "pathway_distance", "--group", "math", "--csv")
    t.eq(rc, 0, "history --csv: exit 0")
    rows = list(csv.DictReader(io.StringIO(so)))
    t.eq([int(r["step"]) for r in rows], [1000, 2000, 3000], "history --csv: the steps")
    t.ok(all(float(r["value"]) == journal[int(r["step"])]["groups"]["math"]["pathway_distance"]
             for r in rows), "history --csv: the journal's values, exactly", so)
    rc, so, se = cli("-e", ep, "history", "--metric", "memorized.pathway_distance", "--from",
                     "2000", "--to", "2000")
    t.eq(rc, 0, "history --from --to: exit 0")
    t.eq([l.split()[0] for l in so.splitlines() if not l.startswith("#")], ["2000"],
         "history --from 2000 --to 2000: one step")

    # status
    rc, so, se = cli("-e", ep, "status")
    t.eq(rc, 0, "status: exit 0")
    t.ok("run: olmoe-tiny" in so and "root: " + root in so and "last_step: 3000" in so,
         "status: run, watched root, last step", so)

    # plot at 40 and 120 with several groups
    for w in (40, 120):
        rc, so, se = cli("-e", ep, "plot", "--metric", "pathway_distance", "--group", "math",
                         "--group", "code", "--group", "web", "--width", str(w))
        lines = so.splitlines()
        # the legend: the lines after the x axis's "step" (it wraps at the
        # width; the band of the standard error has an entry of its own)
        legend = " ".join(lines[[l.strip() for l in lines].index("step") + 1:]) if lines else ""
        t.ok(rc == 0 and max(len(l) for l in lines) <= w and "math" in legend and
             "web" in legend and "standard error" in legend,
             "plot --width %d: fits and has the legend" % w, so + se)

    # the Python module, on the same daemon
    with grokwatch.Subscriber([ep]) as sub:
        got = list(sub.messages(1500))
        t.eq([m.step for m in got if m.type == "metrics"], [1000, 2000, 3000],
             "python: every result once, in step order")
        h = sub.history("pathway_distance", "all")
        t.eq([s for s, _ in h], [1000, 2000, 3000], "python: history")
        t.eq(sub.status().get("last_step"), 3000, "python: status")

    # alerts: the daemon's firing alerts (status.alerts), none here
    rc, so, se = cli("-e", ep, "alerts")
    t.eq(rc, 0, "alerts: exit 0")

    # down
    dm.stop()
    t0 = time.time()
    rc, so, se = cli("-e", ep, "--timeout", "500", "status")
    t.eq(rc, 1, "status, daemon down: exit 1")
    t.ok(query in se and "no reply" in se, "status, daemon down: the endpoint named", se)
    t.ok(time.time() - t0 < 5 * g.SLOW, "status, daemon down: bounded time")


def alerts_case():
    """A daemon whose routing-collapse alert fires at once: alerts and tail see it."""
    root = os.path.join(base, "ckpt2")
    os.makedirs(root)
    dm = g.Daemon(os.path.join(base, "d2"), root, probe, name="olmoe-alerts", extra={
        "alerts.routing_collapse": {"dead_experts": 0, "max_imbalance": 1.0}})
    dm.start()
    ep = "%s,%s" % (dm.pub, dm.query)
    tail, out = cli_bg("-e", ep, "tail", "--topic", "alert.", "--count", "1")
    time.sleep(1 * g.SLOW)
    g.place_atomic(os.path.join(gen, "step1000"), root, "step1000")
    rc = wait_exit(tail, 60)
    text = read(out)
    t.eq(rc, 0, "tail --topic alert.: an alert arrived")
    t.ok("FIRING" in text and "olmoe-alerts" in text and "metric " in text,
         "tail: the alert line (status, name, group, metric)", text)
    rc, so, se = cli("-e", ep, "alerts")
    t.eq(rc, 0, "alerts: exit 0")
    t.ok("(firing at the daemon)" in so and "FIRING" in so, "alerts: the firing alert held by the daemon",
         so + se)
    rc, so, se = cli("-e", ep, "status")
    t.ok(rc == 0 and "alerts: 1 firing:" in so and
         "routing_collapse  group all  metric max_imbalance" in so,
         "status: the firing alert, one line", so + se)
    rc, so, se = cli("-e", ep, "alerts", "--json")
    ok = True
    try:
        for line in so.splitlines():
            a = json.loads(line)
            ok = ok and a["status"] == "firing" and "alertname" in a["labels"]
    except (ValueError, KeyError):
        ok = False
    t.ok(rc == 0 and so and ok, "alerts --json: one alert object per line", so + se)

    # a late tail: the firing alert first, marked, then the catch-up
    rc, so, se = cli("-e", ep, "tail", "--count", "1")
    lines = so.splitlines()
    t.ok(rc == 0 and lines and lines[0].startswith("(already firing)  olmoe-alerts  FIRING  "
                                                   "routing_collapse  group all  metric "
                                                   "max_imbalance") and
         "step 1000" in "\n".join(lines[1:]),
         "tail: the firing alert first, marked as already firing, then the results", so + se)
    rc, so, se = cli("-e", ep, "tail", "--topic", "metrics.", "--count", "1")
    t.ok(rc == 0 and "already firing" not in so, "tail --topic metrics.: no alert lines", so)
    dm.stop()

    # resolved by a restart with a higher bound: alerts shows it as recently
    # resolved (from the daemon's journal), with when it ended
    dm.cfg["alerts"]["routing_collapse"]["max_imbalance"] = 1e9
    dm.write_config()
    dm.start()
    ep = "%s,%s" % (dm.pub, dm.query)
    rc, so, se = cli("-e", ep, "alerts")
    t.ok(rc == 0 and "(resolved at the daemon)  olmoe-alerts  RESOLVED  routing_collapse  group "
         "all  metric max_imbalance  since " in so and "  until " in so and "FIRING" not in so,
         "alerts: the resolved alert, from the journal", so + se)
    rc, so, se = cli("-e", ep, "tail", "--count", "1")
    t.ok(rc == 0 and "already firing" not in so, "tail: nothing firing, no alert line", so)
    dm.stop()


try:
    main()
    alerts_case()
except Exception as e:  # a broken case is a failure, not a crash of the file
    import traceback
    t.ok(False, "raised %s" % e.__class__.__name__, traceback.format_exc())
finally:
    g.finish(t, base)
