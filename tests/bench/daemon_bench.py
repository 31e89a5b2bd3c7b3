#!/usr/bin/python3
"""daemon_bench.py — grokwatchd as a service (issue 5's measurements).

1. Latency: ten tiny OLMoE checkpoints renamed into the watched directory
   one at a time; for each, the time from the rename (the checkpoint is
   complete at that instant) to its metrics message at a subscriber, minus
   the configured quiet period.  The job's own compute time (compute_sec in
   the body) is reported beside it: the rest is the daemon's overhead
   (events, completeness check, journal fsync, publishing).
2. Idle CPU: the daemon's user+system CPU time over 60 idle seconds in
   events mode (default 5 s heartbeat), from /proc/PID/stat; and over 20 s
   in poll mode (2 s interval) for comparison.
3. Idle RSS: VmRSS and VmHWM from /proc/PID/status after the ten results.
Medians are quoted.  Prints a summary and one JSON line.
"""

import json
import os
import shutil
import statistics
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))
import gwtest as g  # noqa: E402

QUIET_MS = 500
N = 10
IDLE_S = float(os.environ.get("GW_BENCH_IDLE_SECONDS", "60"))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def main():
    base = tempfile.mkdtemp(prefix="gwbench.")
    gen = os.path.join(base, "gen")
    g.gen_series(gen, 2)
    out = {"bench": "daemon"}
    try:
        root = os.path.join(base, "ckpt")
        os.makedirs(root)
        dm = g.Daemon(os.path.join(base, "events"), root, os.path.join(gen, "probe.jsonl"),
                      extra={"log_level": "info", "watch.quiet_period_ms": QUIET_MS,
                             "publish.heartbeat_ms": 5000, "threads.blas": 1})
        dm.start()
        sub = g.Subscriber(dm.pub, dm.query, timeout=10)
        lat, comp = [], []
        for i in range(N):
            name = "step%d" % (1000 * (i + 1))
            tmp = os.path.join(root, "tmp-" + name)
            shutil.copytree(os.path.join(gen, "step%d" % (1000 * (1 + i % 2))), tmp)
            t0 = time.time()
            os.rename(tmp, os.path.join(root, name))
            if not sub.collect(g.n_metrics(i + 1), 60):
                print("bench: no metrics message for %s" % name)
                return 1
            t1 = time.time()
            m = sub.metrics()[i]
            lat.append((t1 - t0) * 1000 - QUIET_MS)
            comp.append(m["compute_sec"] * 1000)
        out["latency_ms_median"] = statistics.median(lat)
        out["compute_ms_median"] = statistics.median(comp)
        out["overhead_ms_median"] = statistics.median([a - b for a, b in zip(lat, comp)])
        pid = dm.proc.pid
        time.sleep(2)
        out["idle_rss_kb"] = status_kb(pid, "VmRSS")
        out["peak_rss_kb"] = status_kb(pid, "VmHWM")
        c0 = cpu_seconds(pid)
        time.sleep(IDLE_S)
        out["idle_cpu_ms_events"] = (cpu_seconds(pid) - c0) * 1000
        out["idle_seconds_events"] = IDLE_S
        sub.close()
        dm.stop()

        root2 = os.path.join(base, "ckpt2")
        os.makedirs(root2)
        for i in range(N):
            shutil.copytree(os.path.join(gen, "step1000"), os.path.join(root2, "step%d" % i))
        dp = g.Daemon(os.path.join(base, "poll"), root2, os.path.join(gen, "probe.jsonl"),
                      extra={"log_level": "info", "watch.mode": "poll",
                             "watch.poll_interval_ms": 2000, "watch.quiet_period_ms": 0,
                             "publish.heartbeat_ms": 5000, "threads.blas": 1})
        dp.start()
        sp = g.Subscriber(dp.pub, dp.query, timeout=10)
        sp.collect(g.n_metrics(N), 60)
        time.sleep(2)
        c0 = cpu_seconds(dp.proc.pid)
        time.sleep(IDLE_S / 3)
        out["idle_cpu_ms_poll"] = (cpu_seconds(dp.proc.pid) - c0) * 1000
        out["idle_seconds_poll"] = IDLE_S / 3
        sp.close()
        dp.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print("daemon latency, complete -> metrics message, after the %d ms quiet period "
          "(median of %d): %.1f ms, of which the job's compute %.1f ms; overhead %.1f ms" %
          (QUIET_MS, N, out["latency_ms_median"], out["compute_ms_median"],
           out["overhead_ms_median"]))
    print("daemon idle CPU, events mode: %.0f ms over %.0f s (%.4f%% of one core)" %
          (out["idle_cpu_ms_events"], IDLE_S, out["idle_cpu_ms_events"] / IDLE_S / 10))
    print("daemon idle CPU, poll mode (2 s interval, %d checkpoints): %.0f ms over %.0f s" %
          (N, out["idle_cpu_ms_poll"], IDLE_S / 3))
    print("daemon RSS when idle: %d KB (peak %d KB)" % (out["idle_rss_kb"], out["peak_rss_kb"]))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        g.cleanup_all()
