#!/usr/bin/python3
"""serve_bench.py — `grokwatch serve` (issue 17's measurements).

Two stand-in daemons (tests/gw_testd: the real publisher, fed a script)
each hold 1,000 results of 4 groups (math, code, web, all), shaped like an
OLMoE-sized result: 16 MoE layers of 64 experts in its health (the values
vary smoothly over the steps; the template is a real `grokwatchd analyze
--json` result of the demo model, its health widened to 16 x 64).  One
`grokwatch serve` follows both.

1. Page load: headless Chromium (Debian's) opens the page; the time from
   navigation to the page's gw.fullyDrawnAt (every chart and both heatmaps
   drawn from the loaded data), 5 loads, median; target under 1 s.
2. CPU and RSS with 50 live pages: 50 clients do what a page does to the
   bridge (fetch /api/series, then read /events), while each daemon
   publishes a new result every second for 20 s; serve's user+system CPU
   time over the window (/proc/PID/stat) and VmRSS/VmHWM after it.  Its
   peer: the same 20 s with no page, in the same run.  (Clients, not 50
   Chromium tabs: the bridge cannot tell them apart, and 50 renderers do
   not fit this machine.)
3. Bytes per new result: what one page's event stream carried per new
   result (the result event and the memorized refresh that follows it),
   and the latency from the daemon's send time to its arrival at a page.
Medians are quoted.  Prints a summary and one JSON line.
"""

import json
import math
import os
import re
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))
import gwtest as g  # noqa: E402
import browser  # noqa: E402
sys.path.insert(0, here)
from daemon_bench import cpu_seconds, status_kb  # noqa: E402

CLI = os.environ.get("GW_CLI", os.path.join(g.SRC, "build", "default", "grokwatch"))
TESTD = os.environ.get("GW_TESTD", os.path.join(g.SRC, "build", "default", "tests", "gw_testd"))
N_RESULTS, LAYERS, EXPERTS, PAGES, LIVE = 1000, 16, 64, 50, 20


def template(work):
    gen = os.path.join(work, "gen")
    g.gen_series(gen, 2)
    out = subprocess.run([g.BIN, "analyze", "--json", "--probe", os.path.join(gen, "probe.jsonl"),
                          os.path.join(gen, "step1000"), os.path.join(gen, "step2000")],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def result_at(tpl, i, run_k):
    """Result i of run run_k: the template's values moved smoothly over i."""
    r = json.loads(json.dumps(tpl))
    f = 0.3 + 0.7 * math.exp(-i / 300.0) + 0.01 * math.sin(i / 7.0 + run_k)
    r["step"] = 1000 * (i + 1)
    r["checkpoint"] = "step%d" % r["step"]
    for gname, gv in r["groups"].items():
        for k in ("pathway_distance", "loss", "pathway_consistency", "adjacent_cosine"):
            if isinstance(gv.get(k), (int, float)):
                gv[k] = gv[k] * f
        gv["per_layer_distance"] = [gv["pathway_distance"] * (0.5 + l / LAYERS) for l in range(LAYERS)]
        m = gv["memorized"]
        m["n_samples"] = int(20 * (1 - f))
        m["pathway_distance"] = gv["pathway_distance"] * 0.8 if m["n_samples"] > 1 else None
    layers = []
    for l in range(LAYERS):
        load = [(1 + 0.5 * math.sin(e * 0.7 + l + i / 50.0)) for e in range(EXPERTS)]
        s = sum(load)
        load = [x / s for x in load]
        layers.append({"load": load, "imbalance": max(load) * EXPERTS, "load_entropy": 0.9 + 0.05 * f,
                       "dead_experts": 0, "router_entropy": 3.5 * f, "z_loss": 40 + 10 * f,
                       "churn": 0.5 * f if i else None})
    r["health"] = {"overall": dict(tpl["health"]["overall"]), "layers": layers}
    r["health"]["overall"]["max_imbalance"] = max(x["imbalance"] for x in layers)
    r["churn"] = 0.5 * f if i else None
    return r


def write_script(path, tpl, run_k, work):
    with open(path, "w") as f:
        f.write("status " + json.dumps({"state": "idle", "pending": 0, "queue": 0, "job": None,
                                         "results": N_RESULTS, "last_step": 1000 * N_RESULTS,
                                         "failures": 0, "alerts": []}) + "\n")
        for i in range(N_RESULTS):
            f.write("restore " + json.dumps(result_at(tpl, i, run_k)) + "\n")
        f.write("heartbeat\n")
        i = N_RESULTS
        for phase in ("go1", "go2"):
            f.write("waitfile %s 600000\n" % os.path.join(work, phase))
            for _ in range(LIVE):
                f.write("sleep 1000\nresult %s\n" % json.dumps(result_at(tpl, i, run_k)))
                i += 1
        f.write("sleep 600000\n")


def http_get(url):
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read()


class Page:
    """What a page does to the bridge: /api/series, then /events."""

    def __init__(self, port):
        self.port = port
        http_get("http://127.0.0.1:%d/api/series" % port)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        self.sock.setblocking(False)
        self.buf = b""
        self.bytes = 0
        self.results = []  # (arrival, send time)

    def read(self):
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        now = time.time()
        self.bytes += len(data)
        self.buf += data
        for m in re.finditer(rb"event: result\r?\ndata: (\{.*?\})\r?\n", self.buf):
            self.results.append((now, json.loads(m.group(1))["time"]))
        self.buf = self.buf[self.buf.rfind(b"\n\n") + 2:] if b"\n\n" in self.buf else self.buf


def main():
    work = tempfile.mkdtemp(prefix="gwservebench.")
    procs = []
    try:
        tpl = template(work)
        eps = []
        for k, run in enumerate(("olmoe-a", "olmoe-b")):
            script = os.path.join(work, "%s.script" % run)
            write_script(script, tpl, k, work)
            ready = os.path.join(work, "%s.ready" % run)
            procs.append(subprocess.Popen([TESTD, "--run", run, "--pub", "tcp://127.0.0.1:*",
                                           "--query", "tcp://127.0.0.1:*", "--heartbeat", "1000",
                                           "--lifetime", "900000", "--ready", ready, script]))
            end = time.time() + 120
            while not (os.path.exists(ready) and open(ready).read().endswith("\n")):
                if time.time() > end:
                    raise RuntimeError("gw_testd did not start")
                time.sleep(0.05)
            eps.append(",".join(open(ready).read().split()))
        log = open(os.path.join(work, "serve.log"), "w+")
        args = [CLI]
        for e in eps:
            args += ["-e", e]
        sv = subprocess.Popen(args + ["serve", "--listen", "127.0.0.1:0"], stdout=log, stderr=subprocess.STDOUT)
        procs.append(sv)
        port = None
        end = time.time() + 60
        while port is None and time.time() < end:
            log.flush()
            m = re.search(r"serving http://127\.0\.0\.1:(\d+)/", open(log.name).read())
            port = int(m.group(1)) if m else None
            time.sleep(0.05)
        base = "http://127.0.0.1:%d" % port
        end = time.time() + 300
        while True:
            runs = json.loads(http_get(base + "/api/series"))["runs"]
            if all(len(r["rows"]) == N_RESULTS for r in runs):
                break
            if time.time() > end:
                raise RuntimeError("the bridge did not catch up")
            time.sleep(0.5)
        series_bytes = len(http_get(base + "/api/series"))

        # 1. Page load to fully drawn.
        loads = []
        with browser.Browser() as b:
            for _ in range(5):
                b.navigate("about:blank")
                b.wait_for("document.readyState == 'complete'", 10)
                b.navigate(base + "/")
                v = b.wait_for("window.gw && gw.fullyDrawnAt", 60)
                if not v:
                    raise RuntimeError("the page was not drawn: " + b.log_text())
                pts = b.eval("gw.charts.pathway_distance.series.reduce((n, s) => n + s.points.length, 0)")
                if pts != 2 * 4 * N_RESULTS:
                    raise RuntimeError("the distance chart holds %s points" % pts)
                loads.append(v)
        load_ms = statistics.median(loads)

        # 2. CPU and RSS: 20 s with no page (the peer), then 20 s with 50.
        def phase(name, pages):
            c0 = cpu_seconds(sv.pid)
            open(os.path.join(work, name), "w").close()
            t0 = time.time()
            sel = selectors.DefaultSelector()
            for p in pages:
                sel.register(p.sock, selectors.EVENT_READ, p)
            while time.time() - t0 < LIVE + 3:
                for key, _ in sel.select(0.2):
                    key.data.read()
            for p in pages:
                sel.unregister(p.sock)
            return cpu_seconds(sv.pid) - c0, time.time() - t0

        cpu0, dur0 = phase("go1", [])
        rss0 = status_kb(sv.pid, "VmRSS")
        pages = [Page(port) for _ in range(PAGES)]
        cpu50, dur50 = phase("go2", pages)
        rss50, hwm = status_kb(sv.pid, "VmRSS"), status_kb(sv.pid, "VmHWM")

        # 3. Bytes and latency per new result.
        per_page = statistics.median(p.bytes / max(1, len(p.results)) for p in pages)
        lat = statistics.median(a - s for p in pages for a, s in p.results) * 1000
        got = statistics.median(len(p.results) for p in pages)
        for p in pages:
            p.sock.close()
        out = {
            "bench": "serve", "results_per_run": N_RESULTS, "runs": 2, "groups": 4,
            "layers": LAYERS, "experts": EXPERTS, "series_json_bytes": series_bytes,
            "page_load_ms": round(load_ms, 1), "page_loads_ms": [round(x, 1) for x in loads],
            "cpu_s_50_pages": round(cpu50, 3), "cpu_s_no_page": round(cpu0, 3), "window_s": round(dur50, 1),
            "rss_kb_no_page": rss0, "rss_kb_50_pages": rss50, "hwm_kb": hwm,
            "bytes_per_result_per_page": round(per_page), "results_seen_per_page": got,
            "latency_ms": round(lat, 1),
        }
        print("page load to fully drawn, %d checkpoints x 4 groups x 2 runs (%.1f MB of series): "
              "%.0f ms median of 5 (target < 1000 ms)" % (N_RESULTS, series_bytes / 1e6, load_ms))
        print("serve CPU over %.0f s with %d live pages: %.2f s (%.1f%% of a core); with none: %.2f s"
              % (dur50, PAGES, cpu50, 100 * cpu50 / dur50, cpu0))
        print("serve RSS: %d KB with no page, %d KB with %d pages (peak %d KB)" % (rss0, rss50, PAGES, hwm))
        print("bytes on a page's event stream per new result: %d (result event and memorized refresh); "
              "latency from the daemon's send to the page: %.1f ms median" % (per_page, lat))
        print(json.dumps(out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
