#!/usr/bin/python3
"""history_bench.py — grokwatchd with a long history (issue 13 items 8 and 9,
issue 20 item 4).

1. Growth: N checkpoints (default 3,000) made of routing files (no forward
   pass: the demo's four steps' routing records, hard-linked, cycled), fed
   in batches of 100.  For the 1st, 10th, 300th, 1,000th and Nth result:
   the job's compute time (compute_sec in the body, median of the five
   results around it) and the daemon's VmRSS when it was journaled; and
   RSS per result between the 300th and the Nth.
2. Herd: at 1,000 results, 200 DEALER clients each ask for a snapshot at
   once; the time until every reply is in (and the median one: the Python
   clients parsing 4 MB each account for most of it), and the longest gap
   between heartbeats (sent every 100 ms; the daemon's own time stamps)
   while the replies come, minus 100 ms: the longest loop stall.
Prints a summary and one JSON line ({"bench": "history", ...}).
Environment: GW_BENCH_HISTORY_N (default 3000).
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import zmq

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))
import gwtest as g  # noqa: E402

N = int(os.environ.get("GW_BENCH_HISTORY_N", "3000"))
HERD_AT, CLIENTS, BATCH = 1000, 200, 100


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def herd(dm, n_results):
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"heartbeat")
    sub.connect(dm.pub)
    sub.poll(5000)
    sub.recv_multipart()
    beats, stop = [], [False]

    def listen():
        # The daemon's own send time of each heartbeat (ms resolution), not
        # when this thread got it: the clients parsing megabytes hold the GIL.
        while not stop[0]:
            if sub.poll(50):
                beats.append(json.loads(sub.recv_multipart()[1])["time"])

    th = threading.Thread(target=listen)
    th.start()
    time.sleep(0.5)
    socks = []
    for _ in range(CLIENTS):
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.setsockopt(zmq.RCVHWM, 0)
        d.connect(dm.query)
        socks.append(d)
    time.sleep(0.5)
    t0 = time.monotonic()
    t0_wall = time.time()
    for d in socks:
        d.send(b'{"req": "snapshot"}')
    poller = zmq.Poller()
    for d in socks:
        poller.register(d, zmq.POLLIN)
    done, lat, ok = set(), [], 0
    while len(done) < CLIENTS and time.monotonic() - t0 < 120:
        for d, _ in poller.poll(1000):
            rep = json.loads(d.recv())
            lat.append(time.monotonic() - t0)
            ok += rep.get("type") == "snapshot" and len(rep.get("results", [])) == n_results
            poller.unregister(d)
            done.add(d)
    time.sleep(0.5)
    stop[0] = True
    th.join()
    t_end = t0_wall + (max(lat) if lat else 0)
    gaps = [b - a for a, b in zip(beats, beats[1:]) if b >= t0_wall - 0.2 and a <= t_end + 0.2]
    for d in socks:
        d.close()
    sub.close()
    return {"herd_all_s": max(lat) if lat else None, "herd_median_s": statistics.median(lat)
            if lat else None, "herd_complete": ok, "stall_ms": (max(gaps) - 0.1) * 1000
            if gaps else None}


def main():
    base = tempfile.mkdtemp(prefix="gwhist.")
    gen = os.path.join(base, "gen")
    g.gen_series(gen, 4)
    probe = os.path.join(gen, "probe.jsonl")
    routing = []
    for k in range(1, 5):
        p = os.path.join(base, "r%d.safetensors" % k)
        subprocess.run([g.BIN, "analyze", "--probe", probe, "--dump-routing", p,
                        os.path.join(gen, "step%d000" % k)], check=True,
                       stdout=subprocess.DEVNULL)
        routing.append(p)
    root = os.path.join(base, "ckpt")
    stage = os.path.join(base, "stage")
    os.makedirs(root)
    os.makedirs(stage)
    dm = g.Daemon(os.path.join(base, "d"), root, probe,
                  extra={"log_level": "info", "watch.quiet_period_ms": 50,
                         "publish.heartbeat_ms": 100, "limits.queue_depth": 100000,
                         "alerts.enabled": False})
    out = {"bench": "history", "n": N, "load": open("/proc/loadavg").read().split()[0]}
    marks = sorted({1, 10, 300, 1000, N})
    rss, comp = {}, {}
    try:
        dm.start()
        sub = g.Subscriber(dm.pub, dm.query, timeout=10)
        done = 0
        while done < N:
            k = min(BATCH, N - done)
            for i in range(done, done + k):
                d = os.path.join(stage, "step%d" % ((i + 1) * 10))
                os.mkdir(d)
                os.link(routing[i % 4], os.path.join(d, "routing.safetensors"))
            for i in range(done, done + k):
                name = "step%d" % ((i + 1) * 10)
                os.rename(os.path.join(stage, name), os.path.join(root, name))
            # one result at a time, so each mark's RSS is read when it is reached
            while len(sub.metrics()) < done + k:
                if not sub.collect(g.n_metrics(len(sub.metrics()) + 1), 120):
                    raise TimeoutError("stuck at %d results" % len(sub.metrics()))
                n = len(sub.metrics())
                if n in marks:
                    rss[n] = status_kb(dm.proc.pid, "VmRSS")
            done += k
            if done == HERD_AT:
                out.update(herd(dm, HERD_AT))
        ms = sub.metrics()
        for m in marks:
            around = [x["compute_sec"] for x in ms[max(0, m - 3):m + 2]]
            comp[m] = statistics.median(around) * 1000
        out["compute_ms"] = {str(m): round(comp[m], 2) for m in marks}
        out["rss_kb"] = {str(m): rss.get(m) for m in marks}
        if rss.get(300) and rss.get(N) and N > 300:
            out["rss_per_result_kb"] = round((rss[N] - rss[300]) / (N - 300), 2)
        out["compute_ratio_last_to_10th"] = round(comp[N] / comp[10], 2)
        sub.close()
        dm.stop()
    finally:
        g.cleanup_all()
        shutil.rmtree(base, ignore_errors=True)
    print("# long history, %d checkpoints (load %s):" % (N, out["load"]))
    for m in marks:
        print("#   result %5d: compute %.2f ms, RSS %s kB" % (m, comp.get(m, float("nan")),
                                                          rss.get(m)))
    print("#   RSS per result (300th to %dth): %s kB; compute %dth / 10th: %s"
          % (N, out.get("rss_per_result_kb"), N, out.get("compute_ratio_last_to_10th")))
    print("#   herd of %d snapshots over %d results: all replies in %s s (median %s s), "
          "%s complete; longest loop stall %s ms"
          % (CLIENTS, HERD_AT, out.get("herd_all_s"), out.get("herd_median_s"),
             out.get("herd_complete"), out.get("stall_ms")))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
