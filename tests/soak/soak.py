#!/usr/bin/python3
"""soak.py — `make soak`: grokwatchd under random kills, random faults,
bursts of checkpoints and subscribers coming and going, for minutes.

Epochs until SOAK_SECONDS (default 240) have passed.  Each epoch starts
the daemon, with a probability of a fault: a named crash point
(GROKWATCHD_TEST_CRASH_AT, daemon/fault.h) or a failing system call
(GROKWATCHD_TEST_SYSCALL_FAULT, engine/sys.h: write, fsync, fdatasync,
rename, open, unlink or readdir with EIO, ENOSPC or EMFILE, at a random
call).  Meanwhile bursts of 1 to 8 new checkpoints arrive (renamed in, as
trainers do), and subscribers connect, ask for a snapshot and leave.  The
epoch ends with kill -9 at a random moment, if a fault has not ended it
already.  Then one clean start that runs until idle, and the check:
every checkpoint placed is in the journal exactly once (lost 0,
duplicates 0), the snapshot holds each once, and each result's values
equal those of an unfaulted analyze of the same weights.

Prints one summary line and a JSON line; exits 1 on any loss or duplicate.
"""

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))
import gwtest as g  # noqa: E402

SECONDS = float(os.environ.get("SOAK_SECONDS", "240"))
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
POINTS = ["after-compute", "after-journal", "after-publish", "mid-hook"]
CALLS = [("write", ["EIO", "ENOSPC"]), ("fsync", ["EIO", "ENOSPC"]),
         ("fdatasync", ["EIO", "ENOSPC"]), ("rename", ["EIO", "ENOSPC"]),
         ("open", ["EIO", "EMFILE"]), ("unlink", ["EIO"]), ("readdir", ["EIO"])]


def main():
    rnd = random.Random(SEED)
    base = tempfile.mkdtemp(prefix="gwsoak.")
    gen = os.path.join(base, "gen")
    g.gen_series(gen, 4)
    probe = os.path.join(gen, "probe.jsonl")
    ref = {}
    out = subprocess.run([g.BIN, "analyze", "--json", "--threads", "1", "--probe", probe] +
                         [os.path.join(gen, "step%d000" % k) for k in range(1, 5)],
                         capture_output=True, text=True, check=True)
    for k, line in enumerate(out.stdout.splitlines()):
        ref[k] = json.loads(line)["groups"]["all"]["pathway_distance"]
    root = os.path.join(base, "ckpt")
    stage = os.path.join(base, "stage")
    os.makedirs(root)
    os.makedirs(stage)
    hook = os.path.join(base, "hook.sh")
    with open(hook, "w") as f:
        f.write("#!/bin/sh\ncat > /dev/null\n")
    os.chmod(hook, 0o755)
    dm = g.Daemon(os.path.join(base, "d"), root, probe, extra={
        "log_level": "info", "watch.quiet_period_ms": 100, "publish.heartbeat_ms": 200,
        "jobs.max_retries": 2, "jobs.retry_backoff_ms": 100,
        "alerts.hooks": [{"alert": "*", "argv": [hook]}]})
    placed = {}  # step -> which of the four checkpoints (for the reference values)
    stats = {"epochs": 0, "kills": 0, "crash_points": 0, "syscall_faults": 0,
             "faults_injected": 0, "subscribers": 0, "snapshots": 0, "seed": SEED}
    t_end = time.time() + SECONDS
    next_step = 10
    try:
        while time.time() < t_end:
            stats["epochs"] += 1
            dm.env.pop("GROKWATCHD_TEST_CRASH_AT", None)
            dm.env.pop("GROKWATCHD_TEST_SYSCALL_FAULT", None)
            u = rnd.random()
            if u < 0.3:
                dm.env["GROKWATCHD_TEST_CRASH_AT"] = "%s:%d" % (rnd.choice(POINTS),
                                                                rnd.randint(1, 4))
                stats["crash_points"] += 1
            elif u < 0.6:
                call, errs = rnd.choice(CALLS)
                dm.env["GROKWATCHD_TEST_SYSCALL_FAULT"] = "%s:%s:%d:%d" % (
                    call, rnd.choice(errs), rnd.randint(1, 40), rnd.randint(1, 3))
                stats["syscall_faults"] += 1
            before = dm.log().count("injected fault") if os.path.exists(dm.log_path) else 0
            dm.start(wait=False)
            epoch_end = time.time() + rnd.uniform(1.0, 6.0)
            subs = []
            while time.time() < epoch_end and dm.proc.poll() is None:
                r = rnd.random()
                if r < 0.3:
                    k = rnd.randint(1, 8)
                    names = []
                    for _ in range(k):
                        which = rnd.randint(0, 3)
                        name = "step%d" % next_step
                        d = os.path.join(stage, name)
                        os.mkdir(d)
                        src = os.path.join(gen, "step%d000" % (which + 1))
                        for fn in os.listdir(src):
                            os.link(os.path.join(src, fn), os.path.join(d, fn))
                        placed[next_step] = which
                        names.append(name)
                        next_step += 10
                    for name in names:
                        os.rename(os.path.join(stage, name), os.path.join(root, name))
                elif r < 0.6:
                    m = re.findall(r"publishing on (\S+), queries on (\S+),", dm.log())
                    if m and len(subs) < 20:
                        try:
                            subs.append(g.Subscriber(m[-1][0], m[-1][1], timeout=1))
                            stats["subscribers"] += 1
                            stats["snapshots"] += 1
                        except (TimeoutError, ValueError):
                            pass
                elif subs:
                    subs.pop(rnd.randrange(len(subs))).close()
                time.sleep(rnd.uniform(0.02, 0.3))
            for s in subs:
                s.close()
            if dm.proc.poll() is None:
                dm.kill9()
                stats["kills"] += 1
            else:
                dm.logf.close()
                dm.proc = None
            stats["faults_injected"] += dm.log().count("injected fault") - before
        # The clean run: everything placed is computed.
        dm.env.pop("GROKWATCHD_TEST_CRASH_AT", None)
        dm.env.pop("GROKWATCHD_TEST_SYSCALL_FAULT", None)
        dm.start()
        sub = g.Subscriber(dm.pub, dm.query, timeout=10)
        want = sorted(placed)
        end = time.time() + 300
        snap = []
        while time.time() < end:
            snap = sub.request({"req": "snapshot"}, 20)["results"]
            if sorted(r["step"] for r in snap) == want:
                break
            time.sleep(0.5)
        sub.settle(60)
        snap = sub.request({"req": "snapshot"}, 20)["results"]
        dm.stop()
        journal = [e["step"] for e in dm.journal() if e["kind"] == "result"]
        steps = [r["step"] for r in snap]
        lost = sorted(set(want) - set(steps))
        dup_journal = len(journal) - len(set(journal))
        dup_snap = len(steps) - len(set(steps))
        wrong = [r["step"] for r in snap if r["step"] in placed and
                 abs(r["groups"]["all"]["pathway_distance"] - ref[placed[r["step"]]]) > 1e-9]
        stats.update({"checkpoints": len(want), "results": len(set(steps)), "lost": len(lost),
                      "duplicates": dup_journal + dup_snap, "wrong_values": len(wrong),
                      "seconds": SECONDS, "load": open("/proc/loadavg").read().split()[0]})
    finally:
        g.cleanup_all()
    print("# soak (seed %d, %.0f s, load %s): %d epochs, %d kills (kill -9), %d crash points, "
          "%d syscall faults set (%d calls failed), %d subscribers, %d checkpoints, results "
          "lost: %d, duplicates: %d, wrong values: %d"
          % (SEED, SECONDS, stats["load"], stats["epochs"], stats["kills"],
             stats["crash_points"], stats["syscall_faults"], stats["faults_injected"],
             stats["subscribers"], stats["checkpoints"], stats["lost"], stats["duplicates"],
             stats["wrong_values"]))
    print(json.dumps(dict(stats, soak=True)))
    bad = stats["lost"] or stats["duplicates"] or stats["wrong_values"]
    if bad:
        print("# soak FAILED; the state is kept in %s" % base)
        sys.exit(1)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
