#!/usr/bin/python3
"""test_faults.py — the faults issue 13 found by fault injection, each
reproduced against the real daemon and a real ZeroMQ subscriber.

Crash points (daemon/fault.h): GROKWATCHD_TEST_CRASH_AT=NAME makes the
daemon kill itself with SIGKILL at that point of a checkpoint's life, so a
case can put kill -9 exactly in the window a fault needs.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest as g  # noqa: E402

t = g.Tap()
base = tempfile.mkdtemp(prefix="gwfault.")
gen = os.path.join(base, "gen")
g.gen_series(gen, 4)
probe = os.path.join(gen, "probe.jsonl")
n_case = [0]


def case(extra=None, env=None):
    n_case[0] += 1
    d = os.path.join(base, "case%d" % n_case[0])
    root = os.path.join(d, "ckpt")
    os.makedirs(root)
    return g.Daemon(d, root, probe, extra=extra, env=env), root


def ck(step):
    return os.path.join(gen, "step%d" % step)


def journal_of(dm, kind):
    return [e for e in dm.journal() if e["kind"] == kind]


def wait_exit(dm, timeout=20):
    """Wait for a daemon that kills itself at a crash point."""
    try:
        rc = dm.proc.wait(timeout * g.SLOW)
    except subprocess.TimeoutExpired:
        return None
    dm.logf.close()
    dm.proc = None
    return rc


def drain(sub, seconds):
    """Everything the subscriber can still receive within `seconds`."""
    end = time.time() + seconds
    while time.time() < end:
        m = sub._recv(max(0.01, end - time.time()))
        if m is not None:
            sub._take(m)


def mismatched(src, dst):
    """A complete checkpoint whose config.json does not fit its weights: a
    failure that is not transient (given up at once)."""
    shutil.copytree(src, dst)
    p = os.path.join(dst, "config.json")
    with open(p) as f:
        cfg = json.load(f)
    cfg["intermediate_size"] = cfg["intermediate_size"] + 16
    with open(p, "w") as f:
        json.dump(cfg, f)


def run_case(name, fn):
    try:
        fn()
    except Exception as e:  # a broken case is a failure, not a crash of the file
        t.ok(False, "%s: raised %s" % (name, e.__class__.__name__), str(e))
    finally:
        g.cleanup_all()
    if g.WRAP:
        t.ok(not g.WRAP_ERRORS, "%s: no errors from %s" % (name, g.WRAP[0]),
             "\n".join(g.WRAP_ERRORS))
        del g.WRAP_ERRORS[:]


# ---- 7: "failed" is journaled before it is published ------------------------------
def failed_journal_first():
    dm, root = case(env={"GROKWATCHD_TEST_CRASH_AT": "before-failed-journal"})
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    stage = os.path.join(dm.dir, "tmp-stage")
    mismatched(ck(1000), stage)
    os.rename(stage, os.path.join(root, "step1000"))
    rc = wait_exit(dm)
    t.eq(rc, -9, "failed, journal first: the daemon died at the crash point")
    drain(sub, 0.5)
    early = [m for m in sub.messages if m["type"] == "error" and m.get("failed")]
    t.eq(early, [], "failed, journal first: no \"failed\" published before it is journaled")
    t.eq(journal_of(dm, "failed"), [], "failed, journal first: nothing journaled at the crash")
    sub.close()
    dm.env.pop("GROKWATCHD_TEST_CRASH_AT")
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    ok = sub.collect(lambda ms: any(m["type"] == "error" and m.get("failed") for m in ms), 30)
    t.ok(ok, "failed, journal first: after the restart the step fails and says so", dm.log())
    t.eq([e["step"] for e in journal_of(dm, "failed")], [1000],
         "failed, journal first: the failure is journaled once")
    dm.stop()


CASES = [
    ("failed_journal_first", failed_journal_first),
]

if __name__ == "__main__":
    only = sys.argv[1:]
    for name, fn in CASES:
        if not only or name in only:
            run_case(name, fn)
    g.finish(t, base)
