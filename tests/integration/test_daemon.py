#!/usr/bin/python3
"""test_daemon.py — grokwatchd run against a real ZeroMQ subscriber (issue 5).

Each case starts the real daemon on a temporary watched directory, writes
checkpoints the way trainers do, and checks what a subscriber receives and
what the journal holds.  The checkpoints are the demo's tiny OLMoE series
(tools/demo_series.py).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest as g  # noqa: E402

t = g.Tap()
base = tempfile.mkdtemp(prefix="gwint.")
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


def results(dm):
    return [e for e in dm.journal() if e["kind"] == "result"]


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


# ---- atomic rename, in-place slow write, metrics content -------------------------
def atomic_and_slow():
    dm, root = case()
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    g.place_atomic(ck(1000), root, "step1000")
    ok = sub.collect(g.n_metrics(1), 20)
    t.ok(ok, "atomic rename: a metrics message arrives", dm.log())
    m = sub.metrics()[0] if ok else {}
    t.eq(m.get("step"), 1000, "atomic rename: step from the directory name")
    t.eq(m.get("_topic"), "metrics.test", "topic is metrics.<run>")
    t.eq(m.get("run"), "test", "body carries run")
    t.eq(m.get("checkpoint"), "step1000", "body carries the checkpoint")
    all_ = m.get("groups", {}).get("all", {})
    t.ok(all_.get("n_samples") == 60 and isinstance(all_.get("pathway_distance"), float),
         "metrics body has pathway distance over all 60 samples", json.dumps(all_)[:400])
    for grp in ("math", "code", "web"):
        t.ok(grp in m.get("groups", {}), "group %s published" % grp)
    t.ok("tmp-step1000" not in dm.log() or "new checkpoint directory" not in
         [l for l in dm.log().splitlines() if "tmp-step1000" in l][0],
         "the temporary name is never taken for a checkpoint")
    # slowly in place: 2 s of writing, with 300 ms quiet period
    g.place_slowly(ck(2000), root, "step2000", 2.0)
    ok = sub.collect(g.n_metrics(2), 20)
    t.ok(ok, "slow in-place write: processed", dm.log())
    t.ok(sub.settle(), "slow in-place write: then an idle heartbeat past the result", dm.log())
    t.eq(g.steps_of(sub.messages), [1000, 2000], "slow in-place write: processed once")
    t.eq([r["step"] for r in results(dm)], [1000, 2000], "journal: one result per step")
    # A progress message preceded each metrics message.
    prog = [m for m in sub.messages if m["type"] == "progress"]
    t.ok(any(p["step"] == 2000 and p["layers_done"] == p["n_layers"] for p in prog),
         "progress messages published up to the last layer")
    # The analyze command computes the same numbers (same engine, same order).
    out = subprocess.run([g.BIN, "analyze", "--json", "--threads", "1", "--probe", probe,
                          ck(1000), ck(2000)], capture_output=True, text=True)
    ref = [json.loads(l) for l in out.stdout.splitlines()]
    got = sub.metrics()
    same = all(abs(ref[i]["groups"][gname]["pathway_distance"] -
                   got[i]["groups"][gname]["pathway_distance"]) < 1e-9 and
               abs(ref[i]["groups"][gname]["loss"] - got[i]["groups"][gname]["loss"]) < 1e-6
               for i in range(2) for gname in ("math", "code", "web", "all"))
    t.ok(same, "daemon results equal analyze over the same checkpoints")
    rc = dm.stop()
    t.eq(rc, 0, "SIGTERM: exit status 0")
    t.ok("stopped" in dm.log().splitlines()[-1], "SIGTERM: last log line says stopped")


# ---- poll mode --------------------------------------------------------------------
def poll_mode():
    dm, root = case({"watch.mode": "poll"})
    dm.start()
    t.ok("(poll)" in dm.log(), "poll mode reported at start")
    sub = g.Subscriber(dm.pub, dm.query)
    g.place_slowly(ck(1000), root, "step1000", 1.5)
    g.place_atomic(ck(2000), root, "step2000")
    ok = sub.collect(g.n_metrics(2), 20)
    t.ok(ok, "poll mode: both checkpoints processed", dm.log())
    t.ok(sub.settle(), "poll mode: then an idle heartbeat past the results", dm.log())
    t.eq(sorted(g.steps_of(sub.messages)), [1000, 2000], "poll mode: each processed once")
    dm.stop()


# ---- deleted mid-computation; malformed; late subscriber; two subscribers -----------
def delete_and_malformed():
    dm, root = case(env={"GROKWATCHD_TEST_LAYER_DELAY_MS": "700"})
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    g.place_atomic(ck(1000), root, "step1000")
    dm.wait_log(r"step 1000: computing", 20)
    shutil.rmtree(os.path.join(root, "step1000"))
    dm.wait_log(r"step 1000: .*went away", 20)
    hb = sub.settle()
    t.ok(dm.proc.poll() is None and hb, "deleted mid-computation: daemon still running (an idle "
         "heartbeat after it)", dm.log())
    t.eq(results(dm), [], "deleted mid-computation: no result recorded")
    t.eq([e for e in dm.journal() if e["kind"] == "failed"], [],
         "deleted mid-computation: not recorded as a failure")
    # malformed: weights with trailing garbage (longer than the header says)
    bad = os.path.join(root, "tmp-step2000")
    shutil.copytree(ck(2000), bad)
    with open(os.path.join(bad, "model.safetensors"), "ab") as f:
        f.write(b"garbage")
    os.rename(bad, os.path.join(root, "step2000"))
    ok = sub.collect(lambda ms: any(m["type"] == "error" and m.get("step") == 2000 for m in ms),
                     20)
    t.ok(ok, "malformed checkpoint: an error message", dm.log())
    err = [m for m in sub.messages if m["type"] == "error" and m.get("step") == 2000]
    t.ok(err and "longer than" in err[0]["error"] and "model.safetensors" in err[0]["error"],
         "malformed checkpoint: the error names the file and the fault", err)
    g.place_atomic(ck(3000), root, "step3000")
    ok = sub.collect(g.n_metrics(1), 30)
    t.ok(ok and g.steps_of(sub.messages) == [3000], "after both, the daemon keeps computing",
         dm.log())
    # a late subscriber catches up through the snapshot, and a second one too
    g.place_atomic(ck(4000), root, "step4000")
    late = g.Subscriber(dm.pub, dm.query)
    ok = late.collect(g.n_metrics(2), 30)
    sub.collect(g.n_metrics(2), 30)
    t.ok(ok, "late subscriber: sees both results", dm.log())
    t.ok(late.settle() and sub.settle(), "both subscribers: an idle heartbeat past the results",
         dm.log())
    t.eq(g.steps_of(late.messages), [3000, 4000], "late subscriber: no gap, no duplicate")
    t.eq(g.steps_of(sub.messages), [3000, 4000], "first subscriber: the same results")
    seqs = [m["seq"] for m in late.messages if m["seq"] > late.snapshot_seq]
    t.ok(seqs == sorted(set(seqs)), "late subscriber: live seqs strictly increase", seqs)
    dm.stop()


# ---- kill -9 during a job, then restart ---------------------------------------------
def kill_restart():
    dm, root = case(env={"GROKWATCHD_TEST_LAYER_DELAY_MS": "400"})
    dm.start()
    g.place_atomic(ck(1000), root, "step1000")
    g.place_atomic(ck(2000), root, "step2000")
    dm.wait_log(r"step 2000: done", 40)
    g.place_atomic(ck(3000), root, "step3000")
    dm.wait_log(r"step 3000: computing", 20)
    time.sleep(0.3)  # into its first layer (400 ms each): the scenario, not a wait
    dm.kill9()
    # a torn last line, as a crash mid-write leaves it
    with open(os.path.join(dm.state, "journal.jsonl"), "a") as f:
        f.write('{"kind": "result", "step": 3000, "groups": {')
    before = [r["step"] for r in results(dm)]
    t.eq(before, [1000, 2000], "kill -9: finished steps are in the journal")
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    ok = sub.collect(g.n_metrics(3), 40)
    t.ok(ok, "restart: the interrupted step is computed", dm.log())
    t.ok(sub.settle(), "restart: then an idle heartbeat past the results", dm.log())
    t.eq(g.steps_of(sub.messages), [1000, 2000, 3000], "restart: all steps, once each")
    log = dm.log().split("restored")[-1]
    t.ok("step 1000: computing" not in log and "step 2000: computing" not in log,
         "restart: finished steps are not recomputed")
    t.ok("torn last record" in dm.log(), "restart: the torn record is reported")
    t.eq([r["step"] for r in results(dm)], [1000, 2000, 3000],
         "restart: journal has each step once")
    m3 = [m for m in sub.metrics() if m["step"] == 3000]
    t.ok(m3 and isinstance(m3[0].get("churn"), float),
         "restart: churn of the next step against the kept per-token records",
         m3 and m3[0].get("churn_note"))
    kept = sorted(s for s in os.listdir(os.path.join(dm.state, "routing"))
                  if os.path.exists(os.path.join(dm.state, "routing", s, "tokens.safetensors")))
    t.eq(kept, ["3000"], "per-token records kept for the newest step only")
    dm.stop()


# ---- damaged state files; a changed probe ------------------------------------------
def damaged_state():
    dm, root = case()
    dm.start()
    g.place_atomic(ck(1000), root, "step1000")
    g.place_atomic(ck(2000), root, "step2000")
    dm.wait_log(r"step 2000: done", 40)
    dm.stop()
    rdir = os.path.join(dm.state, "routing")
    with open(os.path.join(rdir, "1000", "consistency.json"), "w") as f:
        f.write('{"c": [0.1, ')
    with open(os.path.join(rdir, "2000", "routing.safetensors"), "r+b") as f:
        f.truncate(100)
    with open(os.path.join(dm.state, "series.json"), "w") as f:
        f.write("garbage")
    dm.start()
    log = dm.log().split("publishing on")[-2]
    t.ok("1000/consistency.json" in log and "2000/routing.safetensors" in log,
         "damaged kept vectors: each named in the log", log)
    t.ok("series.json" in log, "damaged series.json: named in the log", log)
    sub = g.Subscriber(dm.pub, dm.query)
    snap = sub.request({"req": "snapshot"})
    t.eq([r["step"] for r in snap["results"]], [1000, 2000],
         "damaged kept vectors: the results themselves are all served")
    g.place_atomic(ck(3000), root, "step3000")
    t.ok(sub.collect(g.n_metrics(1), 30), "damaged kept vectors: the daemon goes on computing",
         dm.log())
    dm.stop()
    # a different probe set starts a new series and keeps the old one
    other = os.path.join(dm.dir, "probe2.jsonl")
    with open(probe) as f, open(other, "w") as o:
        o.writelines(f.readlines()[:30])
    dm.cfg["probe"]["path"] = other
    dm.write_config()
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    snap = sub.request({"req": "snapshot"})
    prev = [d for d in os.listdir(dm.state) if d.startswith("previous-")]
    t.ok("the probe set changed" in dm.log() and len(prev) == 1,
         "changed probe: a new series, the old one moved aside", dm.log()[-2000:])
    t.ok(os.path.exists(os.path.join(dm.state, prev[0] if prev else "x", "journal.jsonl")),
         "changed probe: the old journal is kept")
    t.ok(sub.collect(g.n_metrics(3), 40) and
         sorted(g.steps_of(sub.messages)) == [1000, 2000, 3000] and
         all(m["groups"]["all"]["n_samples"] == 30 for m in sub.metrics()),
         "changed probe: every checkpoint computed again over the new probe", dm.log()[-2000:])
    dm.stop()


# ---- SIGTERM during a job ------------------------------------------------------------
def stop_during_job():
    dm, root = case(env={"GROKWATCHD_TEST_LAYER_DELAY_MS": "1500"})
    dm.start()
    g.place_atomic(ck(1000), root, "step1000")
    dm.wait_log(r"step 1000: computing", 20)
    t0 = time.time()
    rc = dm.stop()
    took = time.time() - t0
    t.eq(rc, 0, "SIGTERM during a job: exit status 0")
    t.ok(took < 5 * g.SLOW, "SIGTERM during a job: the job stops at its next layer (%.1f s)" % took)
    t.ok("it will be computed after a restart" in dm.log(), "SIGTERM during a job: says so")
    t.eq(results(dm), [], "SIGTERM during a job: no partial result")
    dm.env.pop("GROKWATCHD_TEST_LAYER_DELAY_MS")
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    t.ok(sub.collect(g.n_metrics(1), 30) and g.steps_of(sub.messages) == [1000],
         "after the restart the stopped step is computed", dm.log())
    dm.stop()


# ---- a burst of 20 checkpoints -------------------------------------------------------
def burst():
    dm, root = case()
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    stage = os.path.join(dm.dir, "stage")
    os.makedirs(stage)
    steps = [100 * (i + 1) for i in range(20)]
    order = steps[:]
    order.reverse()
    for s in order:
        shutil.copytree(ck(1000 * (1 + s // 100 % 4)), os.path.join(stage, "step%d" % s))
    for s in order:  # arrive at once, newest first
        os.rename(os.path.join(stage, "step%d" % s), os.path.join(root, "step%d" % s))
    ok = sub.collect(g.n_metrics(20), 90)
    t.ok(ok, "burst: all 20 processed", dm.log())
    t.ok(sub.settle(), "burst: then an idle heartbeat past the results", dm.log())
    t.eq(g.steps_of(sub.messages), steps, "burst: processed in step order")
    dm.stop()


# ---- late older checkpoint -----------------------------------------------------------
def late_older():
    dm, root = case()
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    g.place_atomic(ck(1000), root, "step1000")
    g.place_atomic(ck(3000), root, "step3000")
    sub.collect(g.n_metrics(2), 30)
    g.place_atomic(ck(2000), root, "step2000")
    ok = sub.collect(g.n_metrics(3), 30)
    t.ok(ok, "late older checkpoint: processed", dm.log())
    snap = sub.request({"req": "snapshot"})
    t.eq([r["step"] for r in snap["results"]], [1000, 2000, 3000],
         "late older checkpoint: takes its place in the series")
    hist = sub.request({"req": "history", "metric": "pathway_distance", "group": "math"})
    t.eq([p[0] for p in hist["points"]], [1000, 2000, 3000], "history in step order")
    dm.stop()


# ---- bad config; SIGHUP; sd_notify ------------------------------------------------------
def config_and_signals():
    dm, root = case()
    dm.cfg["metrics"] = {"tau": 2}
    dm.write_config()
    out = subprocess.run(g.WRAP + [g.BIN, "run", "-c", dm.cfg_path], capture_output=True,
                         text=True, timeout=60 * g.SLOW)
    t.ok(out.returncode == 1 and "metrics.tau" in out.stderr,
         "bad config: exit 1 naming the key", out.stderr)
    del dm.cfg["metrics"]
    dm.write_config()

    nsock = os.path.join(dm.dir, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(nsock)
    s.settimeout(0.2)
    got_all = []
    reading = [True]

    def reader():  # like systemd: read every datagram as it comes
        while reading[0]:
            try:
                got_all.append(s.recv(4096).decode())
            except socket.timeout:
                pass

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    dm.env.update({"NOTIFY_SOCKET": nsock, "WATCHDOG_USEC": "400000"})
    dm.start()
    seen = [0]

    def expect(word, timeout=15):
        end = time.time() + timeout * g.SLOW
        while time.time() < end:
            for i in range(seen[0], len(got_all)):
                if word in got_all[i].split("\n"):
                    out = got_all[seen[0]:i + 1]
                    seen[0] = i + 1
                    return out
            time.sleep(0.05)
        return got_all[seen[0]:]

    got = expect("READY=1")
    t.ok(got and "READY=1" in got[-1].split("\n"), "sd_notify: READY=1", got)
    got = expect("WATCHDOG=1")
    t.ok(got and "WATCHDOG=1" in got[-1], "sd_notify: WATCHDOG=1 with WATCHDOG_USEC set", got)
    # SIGHUP: one reloadable change, one that needs a restart
    dm.cfg["log_level"] = "info"
    dm.cfg["watch"]["root"] = root + "-elsewhere"
    dm.write_config()
    dm.proc.send_signal(signal.SIGHUP)
    got = expect("RELOADING=1")
    t.ok(got and any("RELOADING=1" in m and "MONOTONIC_USEC=" in m for m in got),
         "SIGHUP: RELOADING=1 with MONOTONIC_USEC", got)
    got = expect("READY=1")
    t.ok(got and "READY=1" in got[-1].split("\n"), "SIGHUP: READY=1 after the reload", got)
    dm.wait_log(r"watch.root changed; this takes a restart", 10)
    t.ok("log_level changed; applied" in dm.log(), "SIGHUP: says what was applied")
    t.ok("watch.root changed; this takes a restart" in dm.log(),
         "SIGHUP: says what needs a restart")
    with open(dm.cfg_path, "w") as f:
        f.write('{"watch": {"quiet_period_ms": -1}}')
    dm.proc.send_signal(signal.SIGHUP)
    dm.wait_log(r"keeping the running configuration", 10)
    t.ok(dm.proc.poll() is None and "watch.quiet_period_ms" in dm.log(),
         "SIGHUP with a bad config: names the key, keeps running")
    g.place_atomic(ck(1000), root, "step1000")
    dm.wait_log(r"step 1000: done", 30)
    t.ok(True, "after a failed reload the old config still works")
    rc = dm.stop()
    got = expect("STOPPING=1")
    t.ok(got and "STOPPING=1" in got[-1], "sd_notify: STOPPING=1 on SIGTERM", got)
    t.eq(rc, 0, "clean exit after SIGTERM")
    reading[0] = False
    th.join()
    s.close()


# ---- a second daemon on the same state directory; missing root ------------------------
def exclusive_and_waiting():
    dm, root = case()
    shutil.rmtree(root)
    dm.start()
    t.ok("does not exist" in dm.log(), "missing root: reported, daemon waits")
    sub = g.Subscriber(dm.pub, dm.query)
    os.makedirs(root)
    dm.wait_log(r"exists now", 10)
    g.place_atomic(ck(1000), root, "step1000")
    t.ok(sub.collect(g.n_metrics(1), 30), "missing root: watched once it appears", dm.log())
    other = g.Daemon(os.path.join(dm.dir, "second"), root, probe)
    other.cfg["state_dir"] = dm.state
    other.write_config()
    out = subprocess.run(g.WRAP + [g.BIN, "run", "-c", other.cfg_path], capture_output=True,
                         text=True, timeout=60 * g.SLOW)
    t.ok(out.returncode == 1 and "another grokwatchd" in out.stderr,
         "second daemon on the same state directory: refused", out.stderr)
    dm.stop()


# ---- other trainers' formats, names, and what status says is pending ----------------
def pending_and_foreign():
    dm, root = case({"watch.step_from_trainer_state": False})
    stage = os.path.join(dm.dir, "stage")
    os.makedirs(os.path.join(root, "runs"))
    half = os.path.join(root, "step700")
    os.makedirs(half)
    shutil.copy(os.path.join(ck(1000), "config.json"), half)
    with open(os.path.join(ck(1000), "model.safetensors"), "rb") as f:
        data = f.read()
    with open(os.path.join(half, "model.safetensors"), "wb") as f:
        f.write(data[:len(data) // 2])
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    # other trainers' checkpoints, written beside and renamed in
    dcp = os.path.join(stage, "step-300")
    os.makedirs(dcp)
    for fn in (".metadata", "__0_0.distcp"):
        with open(os.path.join(dcp, fn), "wb") as f:
            f.write(b"x" * 64)
    os.rename(dcp, os.path.join(root, "step-300"))
    dcp = os.path.join(root, "step-300")
    ds = os.path.join(stage, "checkpoint-500")
    os.makedirs(os.path.join(ds, "global_step500"))
    shutil.copy(os.path.join(ck(1000), "config.json"), ds)
    with open(os.path.join(ds, "global_step500", "mp_rank_00_model_states.pt"), "wb") as f:
        f.write(b"x")
    os.rename(ds, os.path.join(root, "checkpoint-500"))
    # an HF Trainer checkpoint with its trainer_state.json log (a NaN
    # grad_norm, as Python's json writes it, included)
    hf = os.path.join(stage, "step_2000")
    shutil.copytree(ck(2000), hf)
    with open(os.path.join(hf, "trainer_state.json"), "w") as f:
        f.write('{"global_step": 2000, "log_history": ['
                '{"step": 1990, "loss": 2.5, "learning_rate": 0.0003, "grad_norm": NaN},'
                '{"step": 2000, "eval_loss": 2.9},'
                '{"step": 2010, "loss": 2.4, "learning_rate": 0.00029}]}')
    os.rename(hf, os.path.join(root, "step_2000"))
    t.ok(sub.collect(g.n_metrics(1), 30) and g.steps_of(sub.metrics()) == [2000],
         "step_2000: the new default pattern takes it, and it is computed", dm.log())
    m = sub.metrics()[0] if sub.metrics() else {}
    t.eq(m.get("trainer"), {"loss": 2.5, "loss_step": 1990, "learning_rate": 0.0003,
                            "learning_rate_step": 1990},
         "the trainer's last logged loss and learning rate at or before the step, in the result")
    cli = os.environ.get("GW_CLI", os.path.join(g.SRC, "build", "default", "grokwatch"))
    ep = "%s,%s" % (dm.pub, dm.query)
    out = subprocess.run(g.WRAP + [cli, "-e", ep, "history", "--metric", "trainer.loss"],
                         capture_output=True, text=True, timeout=60 * g.SLOW)
    t.ok(out.returncode == 0 and "2000" in out.stdout and "2.5" in out.stdout,
         "grokwatch history --metric trainer.loss shows it", out.stdout + out.stderr)
    out = subprocess.run(g.WRAP + [cli, "-e", ep, "tail", "--count", "1"],
                         capture_output=True, text=True, timeout=60 * g.SLOW)
    t.ok("trainer  loss 2.5000  learning_rate 0.0003" in out.stdout,
         "grokwatch tail shows the trainer's loss beside the routing metrics",
         out.stdout + out.stderr)
    errs = lambda: [m for m in sub.messages if m["type"] == "error"]
    sub.collect(lambda ms: len([m for m in ms if m["type"] == "error"]) >= 2, 20)
    by = {m.get("checkpoint"): m for m in errs()}
    t.ok("a PyTorch DCP checkpoint" in by.get("step-300", {}).get("error", "") and
         "save Hugging Face safetensors" in by["step-300"]["error"] and
         "write routing files with grokwatch.trace" in by["step-300"]["error"],
         "DCP directory: one error naming the format and the two ways forward",
         json.dumps(errs()))
    t.eq(by.get("step-300", {}).get("step"), 300, "DCP directory: the error carries its step")
    t.ok("a DeepSpeed checkpoint (global_step" in by.get("checkpoint-500", {}).get("error", ""),
         "HF Trainer + DeepSpeed checkpoint-500: named as DeepSpeed", json.dumps(errs()))
    # the trainer writes on into the DCP directory: nothing said again
    with open(os.path.join(dcp, "__1_0.distcp"), "wb") as f:
        f.write(b"y" * 64)
    g.place_atomic(ck(3000), root, "step3000")
    t.ok(sub.collect(g.n_metrics(2), 30), "a later checkpoint is computed", dm.log())
    time.sleep(0.5 * g.SLOW)
    t.eq(len([m for m in errs() if m.get("checkpoint") == "step-300"]), 1,
         "DCP directory: one error, however often it changes")
    t.eq(dm.log().count("step-300\": a PyTorch DCP checkpoint"), 1,
         "DCP directory: logged once")
    t.eq(dm.log().count("runs\": ignored: its name matches none of watch.patterns"), 1,
         "a directory no pattern matches: logged once at info")
    snap = sub.request({"req": "snapshot"})
    pend = {p["checkpoint"]: p for p in snap.get("status", {}).get("pending_dirs", [])}
    t.ok(pend.get("step-300", {}).get("why") == "refused" and
         "PyTorch DCP" in pend["step-300"].get("reason", ""),
         "status: the DCP directory is listed as refused, with what it is", json.dumps(pend))
    t.ok(pend.get("step700", {}).get("why") == "incomplete" and
         "step700/model.safetensors" in pend["step700"].get("reason", "") and
         "not yet complete" in pend["step700"]["reason"],
         "status: the half-written checkpoint is listed with the file and why",
         json.dumps(pend))
    t.ok("step_2000" not in pend and "step3000" not in pend and "runs" not in pend,
         "status: computed and ignored directories are not pending", json.dumps(pend))
    out = subprocess.run(g.WRAP + [g.BIN, "inspect", dcp], capture_output=True, text=True,
                         timeout=60 * g.SLOW)
    t.ok(out.returncode == 1 and "a PyTorch DCP checkpoint" in out.stderr and
         "grokwatch.trace" in out.stderr,
         "inspect: says the same of the DCP directory", out.stderr)
    dm.stop()


for name, fn in [("atomic_and_slow", atomic_and_slow), ("poll_mode", poll_mode),
                 ("delete_and_malformed", delete_and_malformed),
                 ("kill_restart", kill_restart), ("damaged_state", damaged_state),
                 ("stop_during_job", stop_during_job),
                 ("burst", burst), ("late_older", late_older),
                 ("config_and_signals", config_and_signals),
                 ("exclusive_and_waiting", exclusive_and_waiting),
                 ("pending_and_foreign", pending_and_foreign)]:
    if len(sys.argv) < 2 or name in sys.argv[1:]:
        run_case(name, fn)
if not os.environ.get("GW_KEEP"):
    shutil.rmtree(base, ignore_errors=True)
t.done()
