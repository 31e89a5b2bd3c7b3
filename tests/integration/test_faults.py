#!/usr/bin/python3
"""test_faults.py — the faults issue 13 found by fault injection, each
reproduced against the real daemon and a real ZeroMQ subscriber.

Crash points (daemon/fault.h): GROKWATCHD_TEST_CRASH_AT=NAME makes the
daemon kill itself with SIGKILL at that point of a checkpoint's life, so a
case can put kill -9 exactly in the window a fault needs.
"""

import json
import os
import re
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


# ---- 4: the previous step's token records outlive a crash before the journal --------
def churn_after_crash():
    dm, root = case(env={"GROKWATCHD_TEST_CRASH_AT": "after-compute:2"})
    dm.start()
    stage = os.path.join(dm.dir, "stage")
    os.makedirs(stage)
    for s in (1000, 2000):
        shutil.copytree(ck(s), os.path.join(stage, "step%d" % s))
    for s in (1000, 2000):
        os.rename(os.path.join(stage, "step%d" % s), os.path.join(root, "step%d" % s))
    rc = wait_exit(dm, 40)
    t.eq(rc, -9, "churn: the daemon died before journaling step 2000")
    t.eq([r["step"] for r in journal_of(dm, "result")], [1000], "churn: step 1000 journaled")
    dm.env.pop("GROKWATCHD_TEST_CRASH_AT")
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    ok = sub.collect(g.n_metrics(2), 40)
    t.ok(ok, "churn: after the restart step 2000 is computed", dm.log())
    out = subprocess.run([g.BIN, "analyze", "--json", "--threads", "1", "--probe", probe,
                          ck(1000), ck(2000)], capture_output=True, text=True)
    ref = [json.loads(l) for l in out.stdout.splitlines()][1].get("churn")
    m2 = [m for m in sub.metrics() if m["step"] == 2000]
    got = m2[0].get("churn") if m2 else None
    t.ok(isinstance(ref, float) and isinstance(got, float) and abs(got - ref) < 1e-9,
         "churn: the recomputed step's churn equals an unkilled run's (%r, analyze %r)"
         % (got, ref), m2 and m2[0].get("churn_note"))
    sub.settle()
    dm.stop()
    kept = sorted(s for s in os.listdir(os.path.join(dm.state, "routing"))
                  if os.path.exists(os.path.join(dm.state, "routing", s, "tokens.safetensors")))
    t.eq(kept, ["2000"], "churn: per-token records kept for the newest step only")
    # Killed after the append and before the old records went: both are on
    # disk; the restart keeps the newest only, and the next step has churn.
    dm.env["GROKWATCHD_TEST_CRASH_AT"] = "after-publish"
    dm.start()
    g.place_atomic(ck(3000), root, "step3000")
    t.eq(wait_exit(dm, 40), -9, "churn: killed after publishing step 3000")
    dm.env.pop("GROKWATCHD_TEST_CRASH_AT")
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    g.place_atomic(ck(4000), root, "step4000")
    ok = sub.collect(lambda ms: any(m.get("step") == 4000 and m["type"] == "metrics"
                                    for m in ms), 40)
    m4 = [m for m in sub.metrics() if m["step"] == 4000]
    t.ok(ok and isinstance(m4[0].get("churn"), float), "churn: the step after has churn",
         dm.log()[-2000:])
    sub.settle()
    kept = sorted(s for s in os.listdir(os.path.join(dm.state, "routing"))
                  if os.path.exists(os.path.join(dm.state, "routing", s, "tokens.safetensors")))
    t.eq(kept, ["4000"], "churn: the records left by the crash were removed")
    t.eq([r["step"] for r in journal_of(dm, "result")], [1000, 2000, 3000, 4000],
         "churn: each step journaled once")
    dm.stop()


# ---- 1: renamed to a same-step name while computing ---------------------------------
def same_step_rename():
    dm, root = case({"watch.quiet_period_ms": 0},
                    env={"GROKWATCHD_TEST_LAYER_DELAY_MS": "400"})
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    g.place_atomic(ck(2000), root, "step2000")
    dm.wait_log(r"step 2000: computing", 20)
    os.rename(os.path.join(root, "step2000"), os.path.join(root, "step2000-moved"))
    ok = sub.collect(g.n_metrics(1), 30)
    t.ok(ok, "same-step rename: the renamed directory is computed", dm.log()[-3000:])
    t.eq([m["checkpoint"] for m in sub.metrics()], ["step2000-moved"],
         "same-step rename: its result names the new directory")
    # Two directories of one step; the first is deleted while it computes.
    g.place_atomic(ck(3000), root, "step3000")
    dm.wait_log(r"step 3000: computing", 20)
    g.place_atomic(ck(3000), root, "step3000-copy")
    dm.wait_log(r"step3000-copy.*another directory", 20)
    shutil.rmtree(os.path.join(root, "step3000"))
    ok = sub.collect(g.n_metrics(2), 30)
    t.ok(ok, "two directories of a step, the first deleted: the second is computed",
         dm.log()[-3000:])
    t.ok(sub.settle(), "same-step: then an idle heartbeat", dm.log()[-2000:])
    t.eq([m["checkpoint"] for m in sub.metrics()], ["step2000-moved", "step3000-copy"],
         "same-step: each step once, from the surviving directory")
    # Both present and the first computes: the second is not computed again.
    g.place_atomic(ck(4000), root, "step4000")
    dm.wait_log(r"step 4000: computing", 20)
    g.place_atomic(ck(4000), root, "step4000-copy")
    ok = sub.collect(g.n_metrics(3), 30)
    t.ok(ok and sub.settle(), "two directories of a step, both kept: computed", dm.log()[-2000:])
    t.eq([r["step"] for r in journal_of(dm, "result")], [2000, 3000, 4000],
         "same-step: the journal holds each step once")
    dm.stop()


# ---- 2: weights rewritten during or after the computation ----------------------------
def overwrite(dst_dir, src_dir):
    """Rewrite dst_dir's weights in place with src_dir's (same size)."""
    with open(os.path.join(src_dir, "model.safetensors"), "rb") as f:
        data = f.read()
    with open(os.path.join(dst_dir, "model.safetensors"), "r+b") as f:
        f.write(data)


def analyze_one(src, name):
    """analyze of src's files under the directory name `name`, alone."""
    d = tempfile.mkdtemp(dir=base)
    shutil.copytree(src, os.path.join(d, name))
    out = subprocess.run([g.BIN, "analyze", "--json", "--threads", "1", "--probe", probe,
                          os.path.join(d, name)], capture_output=True, text=True)
    return json.loads(out.stdout.splitlines()[0])["groups"]["all"]


def same_all(m, ref):
    a = m["groups"]["all"]
    return (abs(a["pathway_distance"] - ref["pathway_distance"]) < 1e-9 and
            abs(a["loss"] - ref["loss"]) < 1e-6)


def changed_checkpoint():
    dm, root = case(env={"GROKWATCHD_TEST_LAYER_DELAY_MS": "400"})
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    g.place_atomic(ck(1000), root, "step1000")
    dm.wait_log(r"step 1000: computing", 20)
    time.sleep(0.2)  # into its first layer: the scenario, not a wait
    overwrite(os.path.join(root, "step1000"), ck(2000))
    ok = sub.collect(g.n_metrics(1), 40)
    t.ok(ok, "changed during its job: a result comes", dm.log()[-3000:])
    t.ok("changed while it was computed" in dm.log(), "changed during its job: the log says so",
         dm.log()[-3000:])
    ref_new = analyze_one(ck(2000), "step1000")
    m = sub.metrics()
    t.ok(m and same_all(m[0], ref_new), "changed during its job: the result is the new weights'",
         (m and m[0]["groups"]["all"], ref_new))
    t.eq([r["step"] for r in journal_of(dm, "result")], [1000],
         "changed during its job: the mixed result was never journaled")
    # Rewritten after its result was recorded: noticed, computed again.
    dm.env.pop("GROKWATCHD_TEST_LAYER_DELAY_MS")
    overwrite(os.path.join(root, "step1000"), ck(3000))
    ok = sub.collect(g.n_metrics(2), 40)
    t.ok(ok, "changed after its result: computed again", dm.log()[-3000:])
    m = sub.metrics()
    ref3 = analyze_one(ck(3000), "step1000")
    t.ok(len(m) == 2 and m[1]["step"] == 1000 and same_all(m[1], ref3) and
         m[1].get("replaced") is True,
         "changed after its result: the new result is the new weights', marked replaced",
         m[1:] and (m[1]["groups"]["all"], m[1].get("replaced"), ref3))
    snap = sub.request({"req": "snapshot"})
    t.ok(len(snap["results"]) == 1 and same_all(snap["results"][0], ref3),
         "changed after its result: the snapshot holds the new result only",
         [r["groups"]["all"]["pathway_distance"] for r in snap["results"]])
    sub.settle()
    dm.stop()
    # Rewritten while the daemon was down: noticed at start-up.
    overwrite(os.path.join(root, "step1000"), ck(4000))
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    ref4 = analyze_one(ck(4000), "step1000")
    ok = sub.collect(lambda ms: any(x["type"] == "metrics" and same_all(x, ref4)
                                    for x in ms), 40)
    t.ok(ok, "changed while stopped: computed again after the restart", dm.log()[-3000:])
    t.ok(sub.settle(), "changed while stopped: then idle", dm.log()[-2000:])
    snap = sub.request({"req": "snapshot"})
    t.ok(len(snap["results"]) == 1 and same_all(snap["results"][0], ref4),
         "changed while stopped: the snapshot holds the newest result only")
    dm.stop()


# ---- 5: names that are not UTF-8 ----------------------------------------------------
def strict_json(raw):
    """Python's json over the bytes as UTF-8, strictly: None if it refuses."""
    try:
        return json.loads(raw.decode("utf-8", errors="strict"))
    except (UnicodeDecodeError, ValueError):
        return None


def raw_request(ep, req, timeout=10):
    import zmq
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(ep)
    s.send(req)
    raw = s.recv() if s.poll(timeout * 1000 * g.SLOW) else None
    s.close()
    return raw


def latin1_names():
    import zmq
    dm, root = case()
    dm.start()
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(dm.pub)
    sub.poll(5000 * g.SLOW)  # the first heartbeat: connected
    name = b"step2000-\xe9t\xe9"
    stage = os.path.join(dm.dir.encode(), b"stage")
    shutil.copytree(ck(2000).encode(), stage)
    os.rename(stage, os.path.join(root.encode(), name))
    bodies, end = [], time.time() + 30 * g.SLOW
    while time.time() < end and not any(b"metrics" in t_ for t_, _ in bodies):
        if sub.poll(500):
            bodies.append(tuple(sub.recv_multipart()))
    t.ok(any(t_.startswith(b"metrics") for t_, _ in bodies),
         "non-UTF-8 name: the checkpoint is computed", dm.log()[-2000:])
    bad = [b for _, b in bodies if strict_json(b) is None]
    t.eq(bad, [], "non-UTF-8 name: every published body is strict JSON in UTF-8")
    m = [strict_json(b) for t_, b in bodies if t_.startswith(b"metrics")]
    t.ok(m and m[0]["checkpoint"] == "step2000-\ufffdt\ufffd" and
         m[0].get("checkpoint_hex") == name.hex(),
         "non-UTF-8 name: U+FFFD for the invalid bytes, and the name's bytes in hex",
         m and {k: m[0].get(k) for k in ("checkpoint", "checkpoint_hex")})
    # Query replies: the snapshot, a request with invalid bytes echoed back.
    snap = raw_request(dm.query, json.dumps({"req": "snapshot"}).encode())
    t.ok(snap is not None and strict_json(snap) is not None,
         "non-UTF-8 name: the snapshot reply is strict JSON", snap and snap[:300])
    for req in (b'{"req": "\xff\xfe", "id": "a"}', b'{"req": "history", "id": "\xe9"}',
                b"\xe9\xe9 not json"):
        rep = raw_request(dm.query, req)
        t.ok(rep is not None and strict_json(rep) is not None,
             "non-UTF-8 request %r: the error reply is strict JSON" % req[:20], rep)
    jl = open(os.path.join(dm.state, "journal.jsonl"), "rb").read()
    t.ok(all(strict_json(line) is not None for line in jl.splitlines()),
         "non-UTF-8 name: every journal line is strict JSON")
    sub.close()
    # After a restart the step is done (not computed again).
    dm.stop()
    dm.start()
    s2 = g.Subscriber(dm.pub, dm.query)
    t.ok(s2.settle(), "non-UTF-8 name: after a restart, idle", dm.log()[-2000:])
    t.eq(g.steps_of(s2.messages), [2000], "non-UTF-8 name: restored, not computed again")
    dm.stop()


# ---- 10: mid-file journal damage: journal check|repair --------------------------------
def journal_repair():
    dm, root = case({"limits.journal_line_bytes": 200000})
    dm.start()
    for s_ in (1000, 2000, 3000):
        g.place_atomic(ck(s_), root, "step%d" % s_)
    dm.wait_log(r"step 3000: done", 60)
    dm.stop()
    jp = os.path.join(dm.state, "journal.jsonl")
    lines = open(jp, "rb").read().splitlines(keepends=True)
    garbage, huge = b"\x00garbage{\n", b'{"kind": "result", "pad": "' + b"x" * 250000 + b'"}\n'
    with open(jp, "wb") as f:
        f.writelines([lines[0], garbage, lines[1], huge] + lines[2:])
    before = open(jp, "rb").read()
    rc = dm.start(wait=False).proc.wait(20 * g.SLOW)
    dm.logf.close()
    dm.proc = None
    log = dm.log()
    t.ok(rc == 1 and "line 2" in log and "grokwatchd journal check" in log and
         "grokwatchd journal repair" in log,
         "damaged journal: start-up stops naming the line and the way out", log[-1500:])
    chk = subprocess.run([g.BIN, "journal", "check", dm.state, "-c", dm.cfg_path],
                         capture_output=True, text=True)
    t.ok(chk.returncode == 1 and "line 2 " in chk.stdout and "line 4 " in chk.stdout and
         "longer than 200000" in chk.stdout and chk.stdout.count("damaged:") == 2,
         "journal check: exit 1, each damaged line named with its fault", chk.stdout + chk.stderr)
    t.eq(open(jp, "rb").read(), before, "journal check: the file is untouched")
    dflt = subprocess.run([g.BIN, "journal", "check", dm.state], capture_output=True, text=True)
    t.ok(dflt.returncode == 1 and dflt.stdout.count("damaged:") == 2 and
         "longer than" not in dflt.stdout and "\"step\" is missing" in dflt.stdout,
         "journal check without -c: the default line limit (the long line judged as JSON)",
         dflt.stdout)
    rep = subprocess.run([g.BIN, "journal", "repair", dm.state, "-c", dm.cfg_path],
                         capture_output=True, text=True)
    t.ok(rep.returncode == 0 and "moved 2 lines" in rep.stdout, "journal repair: moves 2 lines",
         rep.stdout + rep.stderr)
    aside = [f for f in os.listdir(dm.state) if f.startswith("journal-damaged-")]
    t.ok(len(aside) == 1 and open(os.path.join(dm.state, aside[0]), "rb").read() ==
         garbage + huge, "journal repair: the damaged lines, byte for byte, in a dated file",
         aside)
    t.eq(open(jp, "rb").read(), b"".join(lines), "journal repair: every good record kept, in order")
    chk = subprocess.run([g.BIN, "journal", "check", dm.state, "-c", dm.cfg_path],
                         capture_output=True, text=True)
    t.ok(chk.returncode == 0 and "0 damaged" in chk.stdout, "journal check after repair: clean",
         chk.stdout)
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    snap = sub.request({"req": "snapshot"})
    t.eq([r["step"] for r in snap["results"]], [1000, 2000, 3000],
         "after repair: the daemon starts with every result")
    busy = subprocess.run([g.BIN, "journal", "repair", dm.state], capture_output=True, text=True)
    t.ok(busy.returncode == 1 and "stop it first" in busy.stderr,
         "journal repair while the daemon runs: refused", busy.stderr)
    dm.stop()
    bad = [subprocess.run([g.BIN, "journal"] + a, capture_output=True, text=True)
           for a in (["check"], ["fix", dm.state], ["check", os.path.join(dm.dir, "nope")])]
    t.ok(bad[0].returncode == 2 and bad[1].returncode == 2 and bad[2].returncode == 1 and
         "nope/journal.jsonl" in bad[2].stderr,
         "journal: usage errors exit 2, a missing journal is named", [b.stderr for b in bad])


# ---- 11: directories that are not checkpoints, in poll mode ---------------------------
def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def not_checkpoints():
    n = 2000
    dm, root = case({"watch.mode": "poll", "watch.poll_interval_ms": 200,
                     "limits.checkpoints": 5000})
    for i in range(n):
        os.mkdir(os.path.join(root, "step%d-notes" % (i + 1)))
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    time.sleep(2)  # the first judgements: the scenario, not a wait
    c0, t0 = cpu_seconds(dm.proc.pid), time.time()
    time.sleep(5)
    used = (cpu_seconds(dm.proc.pid) - c0) / (time.time() - t0)
    print("# %d non-checkpoint directories, poll 200 ms: %.3f s CPU per s (load %s)"
          % (n, used, open("/proc/loadavg").read().split()[0]))
    t.ok(used < 0.05 * g.SLOW, "2000 non-checkpoint directories cost little CPU in poll mode "
         "(%.3f s per s)" % used)
    # One of them becomes a checkpoint: it changed, so it is looked at again.
    d = os.path.join(root, "step7-notes")
    for fn in os.listdir(ck(1000)):
        shutil.copy(os.path.join(ck(1000), fn), d)
    ok = sub.collect(g.n_metrics(1), 30)
    t.ok(ok and g.steps_of(sub.messages) == [7], "a classified directory that changes is computed",
         dm.log()[-2000:])
    hb = sub.settle()
    t.ok(hb and hb["status"].get("pending", n) == 0, "they are not counted pending",
         hb and hb["status"].get("pending"))
    dm.stop()


# ---- 11: a full disk is waited out, on the retry backoff ------------------------------
def full_disk():
    # Write 1 is series.json at start-up; from the 2nd on, 8 writes fail:
    # the job's kept vectors, then the journal's append, over several tries.
    dm, root = case({"jobs.max_retries": 1},
                    env={"GROKWATCHD_TEST_SYSCALL_FAULT": "write:ENOSPC:2:8"})
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    g.place_atomic(ck(1000), root, "step1000")
    ok = sub.collect(g.n_metrics(1), 60)
    t.ok(ok, "full disk: computed once space returns, past max_retries", dm.log()[-3000:])
    errs = [m for m in sub.messages if m["type"] == "error"]
    t.ok(len(errs) >= 2 and all(e.get("waiting_for_space") and e.get("retry_in_ms") for e in errs)
         and not any(e.get("failed") for e in errs),
         "full disk: each try says it waits for space, none says failed", errs)
    t.eq(journal_of(dm, "failed"), [], "full disk: no failure journaled")
    t.eq([r["step"] for r in journal_of(dm, "result")], [1000], "full disk: the result journaled")
    t.ok(dm.log().count("injected fault") == 8, "full disk: all 8 faults were met",
         dm.log().count("injected fault"))
    t.ok(sub.settle() and dm.proc.poll() is None, "full disk: the daemon runs on, idle")
    dm.stop()


# ---- the fault matrix: every call of the seam, failed once, at two points ------------
MATRIX = [("write", "EIO", 2), ("write", "ENOSPC", 5), ("write", "EIO", 9),
          ("fsync", "EIO", 2), ("fsync", "ENOSPC", 4), ("fdatasync", "EIO", 1),
          ("fdatasync", "ENOSPC", 2), ("rename", "EIO", 2), ("rename", "ENOSPC", 3),
          ("open", "EMFILE", 1), ("open", "EMFILE", 3), ("open", "EIO", 5),
          ("unlink", "EIO", 1), ("readdir", "EIO", 3), ("readdir", "EIO", 30, "poll")]


def fault_matrix():
    steps = [1000, 2000, 3000]
    out = subprocess.run([g.BIN, "analyze", "--json", "--threads", "1", "--probe", probe] +
                         [ck(s_) for s_ in steps], capture_output=True, text=True)
    ref = {r["step"]: r["groups"]["all"] for r in map(json.loads, out.stdout.splitlines())}
    cells = []
    for call, err, nth, *mode in MATRIX:
        spec = "%s:%s:%d:1" % (call, err, nth)
        dm, root = case({"watch.mode": mode[0]} if mode else None,
                        env={"GROKWATCHD_TEST_SYSCALL_FAULT": spec})
        dm.start(wait=False)
        sub = None
        try:
            dm.wait_log(r"publishing on", 10)
            m = re.findall(r"publishing on (\S+), queries on (\S+),", dm.log())
            if m:
                sub = g.Subscriber(m[-1][0], m[-1][1], snapshot=False)
        except (TimeoutError, ValueError):
            pass
        stage = os.path.join(dm.dir, "stage")
        os.makedirs(stage)
        for s_ in steps:
            shutil.copytree(ck(s_), os.path.join(stage, "step%d" % s_))
        for s_ in steps:
            os.rename(os.path.join(stage, "step%d" % s_), os.path.join(root, "step%d" % s_))
        end = time.time() + 30 * g.SLOW
        while sub and time.time() < end and dm.proc.poll() is None:
            if sub.collect(g.n_metrics(3), 0.5) and sub.settle(2):
                break
        if dm.proc.poll() is None:
            dm.stop()
        else:
            dm.logf.close()
            dm.proc = None
        published = [x["step"] for x in (sub.metrics() if sub else [])]
        if sub:
            sub.close()
        journaled = [r["step"] for r in journal_of(dm, "result")]
        early = [x for x in published if x not in journaled]
        met = dm.log().count("injected fault")
        # Restart without the fault: everything comes, once.
        dm.env.pop("GROKWATCHD_TEST_SYSCALL_FAULT")
        dm.start()
        s2 = g.Subscriber(dm.pub, dm.query)
        s2.collect(lambda ms: sorted(set(x["step"] for x in ms if x["type"] == "metrics"))
                   == steps, 40)
        s2.settle()
        snap = s2.request({"req": "snapshot"})["results"]
        s2.close()
        dm.stop()
        final = [r["step"] for r in journal_of(dm, "result")]
        same = all(abs(r["groups"]["all"]["pathway_distance"] -
                       ref[r["step"]]["pathway_distance"]) < 1e-9 for r in snap)
        ok = (not early and sorted(final) == steps and len(final) == len(set(final)) and
              [r["step"] for r in snap] == steps and same and met == 1)
        cells.append((spec, ok))
        t.ok(ok, "fault %s: met %d time, nothing published before it was journaled, after a "
             "restart every step once with the reference values" % (spec, met),
             "published %r journaled %r final %r snapshot %r same %r\n%s"
             % (published, journaled, final, [r["step"] for r in snap], same, dm.log()[-2500:]))
    print("# fault matrix: %d cells, %d passed" % (len(cells), sum(ok for _, ok in cells)))


# ---- 6: hooks run to completion at least once ----------------------------------------
def all_delivered(dm):
    """(transitions with hooks, missing (alert index, hook) deliveries)."""
    alerts = [e for e in dm.journal() if e["kind"] == "alert"]
    done = {(e["alert"], e["hook"]) for e in dm.journal() if e["kind"] == "delivery"}
    want = {(k, h) for k, a in enumerate(alerts) for h in a.get("hooks", [])}
    return want, want - done


def wait_delivered(dm, timeout=30):
    end = time.time() + timeout * g.SLOW
    while time.time() < end:
        want, missing = all_delivered(dm)
        if want and not missing:
            return True
        time.sleep(0.1)
    return False


def hook_case(env=None):
    dm, root = case(env=env)
    out = os.path.join(dm.dir, "hook.out")
    hook = os.path.join(dm.dir, "hook.sh")
    with open(hook, "w") as f:
        f.write('#!/bin/sh\nsleep 1.5\n'
                'echo "$GROKWATCH_ALERT $GROKWATCH_GROUP $GROKWATCH_STATUS $GROKWATCH_STEP '
                'r=$GROKWATCH_REDELIVERY" >> "%s"\n' % out)
    os.chmod(hook, 0o755)
    dm.cfg.setdefault("alerts", {})["hooks"] = [{"alert": "routing_collapse", "argv": [hook]}]
    dm.write_config()
    return dm, root, out


def hook_lines(out):
    return open(out).read().splitlines() if os.path.exists(out) else []


def hooks_redelivered():
    # A stop while the hooks run: each interrupted run logged, run again
    # after the restart with GROKWATCH_REDELIVERY=1.
    dm, root, out = hook_case()
    dm.start()
    for s_ in (1000, 2000, 3000, 4000):
        g.place_atomic(ck(s_), root, "step%d" % s_)
    dm.wait_log(r"alert routing_collapse firing", 40)
    dm.stop()
    killed = dm.log().count("by the stop; it runs again after a restart")
    want, missing = all_delivered(dm)
    t.ok(killed >= 1 and killed == len(missing) and want,
         "SIGTERM mid-hook: a log line for each interrupted hook (%d)" % killed, dm.log()[-2000:])
    t.eq(hook_lines(out), [], "SIGTERM mid-hook: the killed hooks wrote nothing")
    dm.start()
    ok = wait_delivered(dm)
    t.ok(ok, "after the restart every journaled transition's hook ran to its end",
         (all_delivered(dm), dm.log()[-2000:]))
    lines = hook_lines(out)
    t.ok(len(lines) == len(want) and all(l.endswith("r=1") for l in lines),
         "the redelivered runs, once each, with GROKWATCH_REDELIVERY=1", lines)
    dm.stop()
    dm.start()
    time.sleep(2.5)  # a redelivery would have run by now: the scenario, not a wait
    t.eq(len(hook_lines(out)), len(want), "a second restart redelivers nothing")
    dm.stop()
    # kill -9 while a hook runs (crash point mid-hook): redelivered too.
    dm2, root2, out2 = hook_case(env={"GROKWATCHD_TEST_CRASH_AT": "mid-hook"})
    dm2.start()
    for s_ in (1000, 2000, 3000, 4000):
        g.place_atomic(ck(s_), root2, "step%d" % s_)
    t.eq(wait_exit(dm2, 40), -9, "kill -9 mid-hook: the daemon died with the hook running")
    dm2.env.pop("GROKWATCHD_TEST_CRASH_AT")
    dm2.start()
    ok = wait_delivered(dm2)
    lines = hook_lines(out2)
    t.ok(ok and any(l.endswith("r=1") for l in lines),
         "kill -9 mid-hook: redelivered after the restart (at least once)", (lines, dm2.log()[-1500:]))
    dm2.stop()


# ---- crash points: kill -9 at each, restart, compare with an unkilled run --------------
CRASH_POINTS = [("GROKWATCHD_TEST_CRASH_AT", "after-compute:2"),
                ("GROKWATCHD_TEST_CRASH_AT", "after-journal:2"),
                ("GROKWATCHD_TEST_CRASH_AT", "after-publish:3"),
                ("GROKWATCHD_TEST_CRASH_AT", "mid-hook"),
                ("GROKWATCHD_TEST_SYSCALL_FAULT", "rename:KILL:6")]


def crash_run(env):
    """Steps 1000-4000 in one burst, with a hook on routing_collapse; killed
    where env says (if it does), then restarted; returns what the run
    ends with: results, snapshot steps, hook deliveries, whether killed."""
    dm, root = case(env=env)
    out = os.path.join(dm.dir, "hook.out")
    hook = os.path.join(dm.dir, "hook.sh")
    with open(hook, "w") as f:
        f.write('#!/bin/sh\necho "$GROKWATCH_ALERT $GROKWATCH_GROUP $GROKWATCH_STATUS '
                '$GROKWATCH_STEP" >> "%s"\n' % out)
    os.chmod(hook, 0o755)
    dm.cfg.setdefault("alerts", {})["hooks"] = [{"alert": "routing_collapse", "argv": [hook]}]
    dm.write_config()
    dm.start()
    stage = os.path.join(dm.dir, "stage")
    os.makedirs(stage)
    steps = [1000, 2000, 3000, 4000]
    for s_ in steps:
        shutil.copytree(ck(s_), os.path.join(stage, "step%d" % s_))
    for s_ in steps:
        os.rename(os.path.join(stage, "step%d" % s_), os.path.join(root, "step%d" % s_))
    killed = False
    if env:
        killed = wait_exit(dm, 40) == -9
        for k in env:
            dm.env.pop(k)
        dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    sub.collect(lambda ms: len(sub.request({"req": "snapshot"})["results"]) == 4, 40)
    sub.settle()
    wait_delivered(dm, 20)
    snap = sub.request({"req": "snapshot"})["results"]
    dm.stop()
    res = [(r["step"], round(r["groups"]["all"]["pathway_distance"], 9),
            round(r["groups"]["all"]["loss"], 9)) for r in journal_of(dm, "result")]
    alerts = [(a["labels"]["alertname"] if "labels" in a else a.get("alertname"), a.get("status"))
              for a in journal_of(dm, "alert")]
    return {"results": res, "snapshot": [r["step"] for r in snap],
            "hooks": sorted(set(hook_lines(out))), "alerts": len(alerts),
            "missing": all_delivered(dm)[1]}, killed, dm


def crash_points():
    ref, _, _ = crash_run(None)
    t.ok(len(ref["results"]) == 4 and ref["hooks"], "unkilled run: 4 results and hook deliveries",
         ref)
    for var, point in CRASH_POINTS:
        got, killed, dm = crash_run({var: point})
        t.ok(killed, "crash at %s: killed there" % point, dm.log()[-1500:])
        t.eq(got, ref, "crash at %s: after the restart, journal, snapshot and hook deliveries "
             "equal the unkilled run's" % point)


# ---- 3: file descriptor exhaustion ------------------------------------------------------
def fd_exhaustion():
    import resource
    import socket

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, 300))

    dm, root = case()
    dm.logf = open(dm.log_path, "ab")
    dm.proc = subprocess.Popen(g.WRAP + [g.BIN, "run", "-c", dm.cfg_path], stdout=dm.logf,
                               stderr=dm.logf, env=dm.env, preexec_fn=low_limit)
    g.RUNNING.append(dm)
    dm.wait_log(r"publishing on (\S+), queries on (\S+),", 20)
    dm.pub, dm.query = re.findall(r"publishing on (\S+), queries on (\S+),", dm.log())[-1]
    host, port = dm.pub[len("tcp://"):].rsplit(":", 1)
    qhost, qport = dm.query[len("tcp://"):].rsplit(":", 1)
    socks = []
    for i in range(400):
        s_ = socket.socket()
        s_.connect((host, int(port)) if i % 2 else (qhost, int(qport)))
        socks.append(s_)
    time.sleep(1)
    c0, t0 = cpu_seconds(dm.proc.pid), time.time()
    time.sleep(2)
    used = (cpu_seconds(dm.proc.pid) - c0) / (time.time() - t0)
    print("# 400 connections at an open file limit of 300: %.3f s CPU per s (load %s)"
          % (used, open("/proc/loadavg").read().split()[0]))
    t.ok(used < 0.1 * g.SLOW, "400 connections at a limit of 300 fds: no busy loop (%.3f s/s)"
         % used)
    t.ok("limits.connections = 1024 lowered" in dm.log() and "closing further ones" in dm.log(),
         "the bound is lowered under the fd limit, and connections past it closed",
         dm.log()[-1500:])
    sub = g.Subscriber(dm.pub, dm.query, timeout=10)
    t.ok(sub.request({"req": "snapshot"}, 10)["type"] == "snapshot",
         "with 400 idle connections open, queries are answered (idle ones dropped after the handshake interval)")
    g.place_atomic(ck(1000), root, "step1000")
    t.ok(sub.collect(g.n_metrics(1), 30), "with 400 idle connections open, a checkpoint is computed",
         dm.log()[-1500:])
    for s_ in socks:
        s_.close()
    sub.close()
    dm.stop()
    # A completeness check that met EMFILE is looked at again, not skipped.
    dm2, root2 = case(env={"GROKWATCHD_TEST_SYSCALL_FAULT": "open:EMFILE:3:1"})
    dm2.start()
    sub = g.Subscriber(dm2.pub, dm2.query)
    g.place_atomic(ck(1000), root2, "step1000")
    t.ok(sub.collect(g.n_metrics(1), 30) and "Too many open files" in dm2.log(),
         "a checkpoint whose check met EMFILE is computed", dm2.log()[-1500:])
    dm2.stop()


CASES = [
    ("fd_exhaustion", fd_exhaustion),
    ("crash_points", crash_points),
    ("hooks_redelivered", hooks_redelivered),
    ("fault_matrix", fault_matrix),
    ("full_disk", full_disk),
    ("not_checkpoints", not_checkpoints),
    ("journal_repair", journal_repair),
    ("latin1_names", latin1_names),
    ("changed_checkpoint", changed_checkpoint),
    ("same_step_rename", same_step_rename),
    ("churn_after_crash", churn_after_crash),
    ("failed_journal_first", failed_journal_first),
]

if __name__ == "__main__":
    only = sys.argv[1:]
    for name, fn in CASES:
        if not only or name in only:
            run_case(name, fn)
    g.finish(t, base)
