#!/usr/bin/python3
"""test_serve.py — `grokwatch serve` against the real `grokwatchd run` (issue
17), with real components on loopback, each started here:

- Prometheus (Debian's `prometheus`, scraping every second) reads /metrics
  while the daemon computes checkpoints; its series, read back through its
  HTTP API, are compared with the daemon's journal, and `promtool check
  metrics` checks the exposition.
- The page in headless Chromium (Debian's `chromium`, over the DevTools
  protocol): the charts hold the journal's points (memorized values: the
  daemon's own history replies), a new checkpoint appears live without a
  reload, an alert shades its period, a daemon restart and a bridge restart
  are survived; screenshots go to build/.
- Bad requests (unknown paths, huge and malformed queries, a body, 500 idle
  connections, an event stream never read) leave the bridge serving others.

The checkpoints are the demo's tiny OLMoE series (tools/demo_series.py).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest as g  # noqa: E402
import browser  # noqa: E402

CLI = os.environ.get("GW_CLI", os.path.join(g.SRC, "build", "default", "grokwatch"))
BUILD = os.path.join(g.SRC, "build")
t = g.Tap()
base = tempfile.mkdtemp(prefix="gwserve.")
gen = os.path.join(base, "gen")
g.gen_series(gen, 6)
probe = os.path.join(gen, "probe.jsonl")
GROUPS = ["math", "code", "web", "all"]


def wait_for(pred, timeout, step=0.05):
    end = time.time() + timeout * g.SLOW
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def http(url, timeout=10, method="GET", data=None, headers=None):
    """(status, body text) of one request; status 0 where none came."""
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout * g.SLOW) as r:
            return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace"), dict(e.headers)
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e), {}


class Serve:
    """`grokwatch serve`, started (under $GW_WRAP) and stopped here."""

    def __init__(self, endpoints, port=0, extra=()):
        self.out = open(os.path.join(base, "serve%d.log" % time.time_ns()), "w+")
        args = []
        for e in endpoints:
            args += ["-e", e]
        self.proc = subprocess.Popen(g.WRAP + [CLI] + args + [
            "serve", "--listen", "127.0.0.1:%d" % port] + list(extra),
            stdout=self.out, stderr=subprocess.STDOUT)
        m = wait_for(lambda: re.search(r"serving http://127\.0\.0\.1:(\d+)/", self.log()), 20)
        if not m:
            raise RuntimeError("serve did not start:\n" + self.log())
        self.port = int(m.group(1))
        self.url = "http://127.0.0.1:%d" % self.port

    def log(self):
        self.out.flush()
        with open(self.out.name, errors="replace") as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        try:
            rc = self.proc.wait(30 * g.SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "hung"
        if g.WRAP and rc == 99:
            g.WRAP_ERRORS.append(self.log())
        return rc


class Prometheus:
    def __init__(self, target):
        self.dir = os.path.join(base, "prom")
        os.makedirs(self.dir, exist_ok=True)
        self.port = g.free_port()
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: grokwatch\n    static_configs:\n"
                    "      - targets: ['%s']\n" % target)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.proc = subprocess.Popen([
            "prometheus", "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
            "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=debug"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.api = "http://127.0.0.1:%d/api/v1/" % self.port
        self.started = time.time()
        if not wait_for(lambda: http(self.api + "status/buildinfo", 2)[0] == 200, 60):
            raise RuntimeError("prometheus did not start")

    def query(self, q):
        st, body, _ = http(self.api + "query?" + urllib.parse.urlencode({"query": q}))
        if st != 200:
            return None
        return json.loads(body)["data"]["result"]

    def log_text(self):
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()[-3000:]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def results_of(dm):
    return {e["step"]: e for e in dm.journal() if e.get("kind") == "result"}


def page_steps(b):
    return b.eval("gw.runs.length ? gw.runs[0].steps : []")


def check_page_against(b, dm, sub, label):
    """The page's chart points against the journal (and memorized values
    against the daemon's own history replies)."""
    journal = results_of(dm)
    charts = b.eval("JSON.stringify(gw.charts)")
    charts = json.loads(charts)
    ok, bad = True, []
    for key in ("pathway_distance", "pathway_consistency", "loss"):
        for s in charts[key]["series"]:
            for step, v in s["points"]:
                want = journal[step]["groups"][s["group"]][key]
                if v != want:
                    ok = False
                    bad.append((key, s["group"], step, v, want))
            want_steps = [st for st in sorted(journal)
                          if journal[st]["groups"][s["group"]][key] is not None]
            if [p[0] for p in s["points"]] != want_steps:
                ok = False
                bad.append((key, s["group"], "steps", [p[0] for p in s["points"]], want_steps))
    t.ok(ok, "%s: distance, consistency and loss charts hold the journal's points" % label, bad)
    ok, bad = True, []
    for key in ("memorized.pathway_distance", "memorized.n_samples"):
        for s in charts[key]["series"]:
            rep = sub.request({"req": "history", "metric": key, "group": s["group"]})
            want = [[st, v] for st, v in rep["points"] if v is not None]
            if s["points"] != want:
                ok = False
                bad.append((key, s["group"], s["points"], want))
    t.ok(ok, "%s: memorized charts hold the daemon's history values" % label, bad)


restart_window = (0, 0)


def main():
    global restart_window
    root = os.path.join(base, "ckpt")
    os.makedirs(root)
    pub, query = "tcp://127.0.0.1:%d" % g.free_port(), "tcp://127.0.0.1:%d" % g.free_port()
    dm = g.Daemon(os.path.join(base, "d"), root, probe, name="olmoe-serve", extra={
        "publish.endpoint": pub, "publish.query_endpoint": query,
        "alerts.routing_collapse": {"dead_experts": 0, "max_imbalance": 1.0}})
    dm.start()
    ep = "%s,%s" % (pub, query)
    ck = lambda s: os.path.join(gen, "step%d" % s)  # noqa: E731
    n_results = lambda n: lambda: len(results_of(dm)) >= n  # noqa: E731
    for s in (1000, 2000):
        g.place_atomic(ck(s), root, "step%d" % s)
        t.ok(wait_for(n_results(s // 1000), 60), "daemon computed step %d" % s, dm.log()[-2000:])

    sv = Serve([ep])
    t.ok(True, "serve started on %s" % sv.url)
    alert_line = ('grokwatch_alerts{alertname="routing_collapse",alertstate="firing",group="all",'
                  'metric="max_imbalance",run="olmoe-serve"} 1')
    # The firing set comes with the daemon's first heartbeat.
    wait_for(lambda: alert_line in http(sv.url + "/metrics")[1], 20)
    st, body, hdr = http(sv.url + "/metrics")
    t.eq(st, 200, "/metrics: 200")
    t.eq(hdr.get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8",
         "/metrics: the text format's content type")
    prom_file = os.path.join(base, "metrics.txt")
    with open(prom_file, "w") as f:
        f.write(body)
    p = subprocess.run(["promtool", "check", "metrics"], stdin=open(prom_file), capture_output=True,
                       text=True)
    t.ok(p.returncode == 0, "promtool check metrics accepts /metrics", p.stdout + p.stderr)
    t.ok(alert_line in body, "/metrics: the firing alert", body[-3000:])
    t.ok(re.search(r'^grokwatch_expert_load\{run="olmoe-serve",layer="0",expert="0"\} ', body, re.M),
         "/metrics: expert load per layer and expert")

    prom = Prometheus("127.0.0.1:%d" % sv.port)
    sub = g.Subscriber(pub, query)
    with browser.Browser() as b:
        b.navigate(sv.url + "/")
        t.ok(b.wait_for("window.gw && gw.drawn > 0 && gw.runs.length && gw.runs[0].steps.length == 2 "
                        "&& gw.charts.loss", 30), "page: drawn with 2 results", b.log_text())
        check_page_against(b, dm, sub, "page")
        bands = b.eval("JSON.stringify(gw.charts.pathway_distance.bands)")
        alerts = [e for e in dm.journal() if e.get("kind") == "alert"]
        fired = [a["step"] for a in alerts if a["status"] == "firing" and
                 a["alerts"][0]["labels"]["metric"] == "max_imbalance"]
        t.ok(fired and any(x["alertname"] == "routing_collapse" and x["from"] == fired[0] and x["firing"]
                           for x in json.loads(bands)),
             "page: the firing routing_collapse alert shades its period from the step it fired at",
             "bands %s, journal %s" % (bands, fired))
        reloads = b.eval("gw.reloads")

        # A new checkpoint appears live, without a reload.
        g.place_atomic(ck(3000), root, "step3000")
        t.ok(wait_for(n_results(3), 60), "daemon computed step 3000")
        t.ok(b.wait_for("gw.runs[0].steps.includes(3000) && gw.charts.loss.series[0].points.length == 3", 20),
             "page: step 3000 appeared live", b.eval("JSON.stringify(gw.runs[0].steps)"))
        t.eq(b.eval("gw.reloads"), reloads, "page: no reload for a new result")
        b.wait_for("false", 0.5)  # the memorized refresh that follows a new latest step
        check_page_against(b, dm, sub, "page after a live result")
        os.makedirs(BUILD, exist_ok=True)
        b.screenshot(os.path.join(BUILD, "serve-dashboard.png"))

        # Prometheus saw steps 1000..3000 with the journal's values.
        t.ok(wait_for(lambda: (prom.query('grokwatch_step{run="olmoe-serve"}') or [{"value": [0, "0"]}])[0]
                      ["value"][1] == "3000", 30), "prometheus: scraped step 3000")

        # The daemon restarts; the page follows.
        dm.stop()
        dm.start()
        g.place_atomic(ck(4000), root, "step4000")
        t.ok(wait_for(n_results(4), 60), "restarted daemon computed step 4000")
        t.ok(b.wait_for("gw.runs[0].steps.includes(4000)", 30), "page: step 4000 after a daemon restart",
             b.eval("JSON.stringify(gw.runs[0].steps)"))
        steps = page_steps(b)
        t.eq(steps, sorted(set(steps)), "page: no step twice after the daemon restart")
        sub.close()
        sub = g.Subscriber(pub, query)
        check_page_against(b, dm, sub, "page after a daemon restart")
        # The README's picture: the top of the page, small.
        b.screenshot(os.path.join(BUILD, "serve-dashboard-small.png"), clip=(0, 0, 1280, 1000),
                     scale=0.6)

        t.ok(wait_for(lambda: (prom.query('grokwatch_step{run="olmoe-serve"}') or [{"value": [0, "0"]}])
                      [0]["value"][1] == "4000", 30), "prometheus: scraped step 4000")

        # The bridge restarts on the same port; the page reconnects by itself.
        port = sv.port
        down = time.time()
        t.eq(sv.stop(), 0, "serve: SIGTERM ends it with status 0")
        sv = Serve([ep], port=port)
        restart_window = (down - 1, time.time() + 1)
        g.place_atomic(ck(5000), root, "step5000")
        t.ok(wait_for(n_results(5), 60), "daemon computed step 5000")
        t.ok(b.wait_for("gw.runs.length && gw.runs[0].steps.includes(5000)", 30),
             "page: reconnected to the restarted bridge and shows step 5000",
             b.eval("JSON.stringify(gw.runs.map(r => r.steps))"))
        check_page_against(b, dm, sub, "page after a bridge restart")
        t.eq(b.console_errors(), [], "page: no script errors")
        b.screenshot(os.path.join(BUILD, "serve-dashboard-after-restarts.png"))

    # Prometheus against the journal: every sample of every group's distance
    # and loss, paired with grokwatch_step by timestamp.
    t.ok(wait_for(lambda: (prom.query('grokwatch_step{run="olmoe-serve"}') or [{"value": [0, "0"]}])[0]
                  ["value"][1] == "5000", 30), "prometheus: scraped step 5000")
    journal = results_of(dm)
    steps_by_ts = {}
    for r in prom.query('grokwatch_step{run="olmoe-serve"}[10m]') or []:
        for ts, v in r["values"]:
            steps_by_ts[ts] = int(float(v))
    ups = [(ts, v) for r in prom.query('up[10m]') or [] for ts, v in r["values"]]
    failed = [ts for ts, v in ups if v != "1" and not restart_window[0] <= ts <= restart_window[1]]
    t.ok(len(ups) >= 3 and not failed,
         "prometheus: every scrape of /metrics succeeded but while the bridge restarted (%d of %d)"
         % (len([1 for _, v in ups if v == "1"]), len(ups)),
         "%s restart %s\n%s" % (ups, restart_window, prom.log_text()))
    t.ok(set(steps_by_ts.values()) >= {3000, 4000, 5000},
         "prometheus: steps 3000, 4000 and 5000 each scraped (%d scrapes)" % len(steps_by_ts),
         sorted(set(steps_by_ts.values())))
    ok, n, bad = True, 0, []
    for metric in ("pathway_distance", "loss", "pathway_consistency"):
        for r in prom.query('grokwatch_%s{run="olmoe-serve"}[10m]' % metric) or []:
            grp = r["metric"]["group"]
            for ts, v in r["values"]:
                step = steps_by_ts.get(ts)
                if step is None:
                    continue
                n += 1
                if float(v) != journal[step]["groups"][grp][metric]:
                    ok = False
                    bad.append((metric, grp, step, v, journal[step]["groups"][grp][metric]))
    t.ok(ok and n >= 3 * 4 * 3, "prometheus: %d samples of distance, loss and consistency equal the "
         "journal's values at their step" % n, (bad[:10], sorted(steps_by_ts.items())[:40]))
    # The shipped Grafana dashboard's queries, against what was scraped.
    with open(os.path.join(g.SRC, "config", "grafana", "grokwatch.json")) as f:
        dash = json.load(f)
    exprs = [tg["expr"] for p in dash["panels"] for tg in p["targets"]]
    exprs += [a["expr"] for a in dash["annotations"]["list"]]
    # A query may find nothing only where /metrics declares its family but
    # has no value yet (the memorized subset is empty early in a run).
    families = set(re.findall(r"^# TYPE (\S+) ", http(sv.url + "/metrics")[1], re.M))
    empty = [e for e in exprs
             if not prom.query(e.replace("$run", "olmoe-serve").replace("$group", ".*")) and
             not set(re.findall(r"grokwatch_\w+", e)) <= families]
    t.ok(exprs and not empty, "grafana dashboard: each of its %d queries finds series (or a family "
         "/metrics declares)" % len(exprs), empty)
    al = prom.query('grokwatch_alerts{alertname="routing_collapse",alertstate="firing"}')
    t.ok(al and al[0]["metric"]["run"] == "olmoe-serve", "prometheus: the firing alert series", al)
    prom.stop()

    cli_cases(ep, dm)
    two_runs(ep, dm)
    bad_requests(sv, dm, root, ck, n_results)
    t.eq(sv.stop(), 0, "serve: stops with status 0 after the bad requests")
    dm.stop()


def cli(*args):
    p = subprocess.run(g.WRAP + [CLI] + list(args), capture_output=True, text=True,
                       timeout=60 * g.SLOW, env=dict(os.environ, LC_ALL="C.UTF-8"))
    return p.returncode, p.stdout, p.stderr


def cli_cases(ep, dm):
    """Issue 17 item 5: plot --svg, unknown names refused, health.* charted."""
    import xml.etree.ElementTree as ET
    journal = results_of(dm)
    rc, so, se = cli("-e", ep, "history", "--metric", "pathway_distanc")
    t.ok(rc == 2 and "unknown metric 'pathway_distanc'" in se and "pathway_distance," in se and
         "memorized.loss" in se and "health.overall.imbalance" in se and so == "",
         "history: an unknown metric is refused with the valid names", se)
    rc, so, se = cli("-e", ep, "plot", "--metric", "loss", "--group", "math", "--group", "mth")
    t.ok(rc == 2 and "unknown group 'mth' (valid: math, code, web, all)" in se,
         "plot: an unknown group is refused with the valid names", se)
    rc, so, se = cli("-e", ep, "history", "--metric", "health.overall.imbalance", "--csv")
    rows = [l.split(",") for l in so.splitlines()[1:]]
    t.ok(rc == 0 and rows and all(float(r[4]) == journal[int(r[3])]["health"]["overall"]["imbalance"]
                                  for r in rows) and [int(r[3]) for r in rows] == sorted(journal),
         "history: health.overall.imbalance, the journal's values at every step", so + se)
    rc, so, se = cli("-e", ep, "history", "--metric", "health.layers.1.dead_experts", "--group", "math")
    t.ok(rc == 2 and "not of a group" in se, "history: --group with a run's value is refused", se)
    svg = os.path.join(base, "out", "chart.svg")
    os.makedirs(os.path.dirname(svg))
    rc, so, se = cli("-e", ep, "plot", "--metric", "pathway_distance", "--group", "math",
                     "--group", "all", "--svg", svg)
    ok = rc == 0 and so == ""
    try:
        root = ET.parse(svg).getroot()
        ns = "{http://www.w3.org/2000/svg}"
        lines = root.findall(".//%spolyline" % ns)
        texts = [x.text for x in root.iter("%stext" % ns)]
        ok = ok and len(lines) == 2 and all(len(l.get("points").split()) == len(journal) for l in lines)
        ok = ok and "math" in texts and "all" in texts and any("pathway_distance" in (x or "") for x in texts)
    except (ET.ParseError, OSError) as e:
        ok, texts = False, str(e)
    t.ok(ok, "plot --svg: an SVG with a line per group through every step, and the legend", se)
    rc, so, se = cli("-e", ep, "plot", "--metric", "health.overall.router_entropy", "--svg", svg)
    t.ok(rc == 0 and ET.parse(svg).getroot().findall(".//{http://www.w3.org/2000/svg}polyline"),
         "plot --svg: health.overall.router_entropy charted", se)
    rc, so, se = cli("-e", ep, "plot", "--metric", "loss", "--svg", os.path.join(base, "nodir", "x.svg"))
    t.ok(rc == 1 and "nodir" in se, "plot --svg into a missing directory: exit 1 naming it", se)


def two_runs(ep, dm):
    """A second run (the stand-in daemon, replaying two results) on the same
    charts as the first; the run's card shows its firing alert; the listen
    address is refused unless loopback or --allow-remote."""
    journal = results_of(dm)
    script = os.path.join(base, "second.script")
    with open(script, "w") as f:
        for st in (1000, 2000):
            r = {k: v for k, v in journal[st].items() if k != "kind"}
            r["groups"]["math"]["pathway_distance"] = st / 1000.0
            f.write("restore %s\n" % json.dumps(r))
        f.write("heartbeat\nsleep 600000\n")
    ready = os.path.join(base, "second.ready")
    td = subprocess.Popen([os.environ.get("GW_TESTD", os.path.join(g.SRC, "build", "default", "tests",
                                                                      "gw_testd")),
                           "--run", "second-run", "--pub", "tcp://127.0.0.1:*", "--query",
                           "tcp://127.0.0.1:*", "--heartbeat", "300", "--ready", ready, script])
    try:
        t.ok(wait_for(lambda: os.path.exists(ready) and open(ready).read().endswith("\n"), 20),
             "the stand-in daemon of a second run started")
        sv2 = Serve([ep, ",".join(open(ready).read().split())])
        with browser.Browser() as b:
            b.navigate(sv2.url + "/")
            t.ok(b.wait_for("window.gw && gw.runs.length == 2 && gw.runs[1].steps.length == 2 && "
                            "gw.charts.pathway_distance", 30), "page: two runs loaded")
            b.wait_for("false", 0.3)
            series = json.loads(b.eval("JSON.stringify(gw.charts.pathway_distance.series)"))
            math2 = [x["points"] for x in series if x["run"] == "second-run" and x["group"] == "math"]
            t.ok({x["run"] for x in series} == {"olmoe-serve", "second-run"} and
                 math2 == [[[1000, 1.0], [2000, 2.0]]],
                 "page: both runs on one chart, each with its own values", series)
            card = b.eval("document.querySelector('#runs').innerText")
            t.ok("FIRING routing_collapse" in card and "second-run" in card and "pending" in card,
                 "page: each run's status card, the firing alert in it", card)
            st, body, _ = http(sv2.url + "/api/history?metric=loss")
            t.ok(st == 400 and "run: required" in body and "olmoe-serve" in body,
                 "/api/history without run, two runs: 400 naming them", body)
            st, body, _ = http(sv2.url + "/api/history?metric=pathway_distance&group=math&run=second-run")
            t.ok(st == 200 and json.loads(body)["points"] == [[1000, 1.0], [2000, 2.0]],
                 "/api/history?run= asks that run's daemon", body[:300])
        t.eq(sv2.stop(), 0, "the second bridge stops with status 0")
    finally:
        td.terminate()
        td.wait()
    for addr in ("0.0.0.0:0", "[::]:0"):
        p = subprocess.run(g.WRAP + [CLI, "-e", ep, "serve", "--listen", addr], capture_output=True,
                           text=True, timeout=30 * g.SLOW)
        t.ok(p.returncode == 2 and "not a loopback address" in p.stderr and "--allow-remote" in p.stderr,
             "serve --listen %s without --allow-remote: refused, exit 2" % addr, p.stderr)
    p = subprocess.run(g.WRAP + [CLI, "-e", ep, "serve", "--listen", "localhost"], capture_output=True,
                       text=True, timeout=30 * g.SLOW)
    t.ok(p.returncode == 2 and "expected HOST:PORT" in p.stderr, "serve --listen without a port: exit 2",
         p.stderr)


def bad_requests(sv, dm, root, ck, n_results):
    u = sv.url
    st, body, _ = http(u + "/nope")
    t.ok(st == 404 and body.count("\n") == 1 and "no such page" in body, "404 with a one-line reason", body)
    st, body, _ = http(u + "/api/history?metric=loss&bogus=1")
    t.ok(st == 400 and "unknown parameter 'bogus'" in body and body.count("\n") == 1,
         "400: unknown parameter, one line", body)
    st, body, _ = http(u + "/api/history?metric=loss&from=abc")
    t.ok(st == 400 and "from: expected a step" in body, "400: malformed step", body)
    st, body, _ = http(u + "/api/history?metric=a..b")
    t.ok(st == 400 and "metric:" in body, "400: malformed metric", body)
    st, body, _ = http(u + "/api/history")
    t.ok(st == 400 and "metric: required" in body, "400: missing metric", body)
    st, body, _ = http(u + "/api/history?metric=loss&from=9&to=3")
    t.ok(st == 400 and "after" in body, "400: from after to", body)
    st, body, _ = http(u + "/api/history?metric=loss&run=nosuchrun")
    t.ok(st == 404 and "no run 'nosuchrun'" in body, "404: unknown run, the runs named", body)
    st, body, _ = http(u + "/api/history?metric=" + "x" * 100000)
    t.ok(st in (400, 414, 431), "a 100 KB query is refused (%d)" % st, body[:200])
    st, body, _ = http(u + "/metrics", method="POST", data=b"x" * 1000)
    t.ok(st in (405, 413), "a POST with a body is refused (%d)" % st, body)
    st, body, _ = http(u + "/api/result?step=999999")
    t.ok(st == 404 and "no result at step 999999" in body, "404: no result at that step", body)
    st, body, _ = http(u + "/api/history?metric=pathway_distance&group=math&from=2000&to=3000")
    rep = json.loads(body) if st == 200 else {}
    journal = results_of(dm)
    t.ok(st == 200 and rep.get("points") == [[s, journal[s]["groups"]["math"]["pathway_distance"]]
                                             for s in (2000, 3000)],
         "/api/history: the daemon's values for from..to", body[:300])
    st, body, _ = http(u + "/api/snapshot?from=1000&to=1000")
    rep = json.loads(body) if st == 200 else {}
    t.ok(st == 200 and [r["step"] for r in rep.get("results", [])] == [1000] and "status" in rep,
         "/api/snapshot: the daemon's snapshot for from..to", body[:300])
    raw = socket.create_connection(("127.0.0.1", sv.port))
    raw.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Junk: " + b"a" * 200000 + b"\r\n\r\n")
    try:
        resp = raw.recv(200)
    except OSError:
        resp = b""
    raw.close()
    t.ok(resp == b"" or resp.startswith(b"HTTP/1.1 4"), "200 KB of headers: refused", resp)
    raw = socket.create_connection(("127.0.0.1", sv.port))
    raw.sendall(b"\x16\x03\x01garbage not http\r\n\r\n")
    try:
        resp = raw.recv(200)
    except OSError:
        resp = b""
    raw.close()
    t.ok(resp == b"" or resp.startswith(b"HTTP/1.1 4"), "a request that is not HTTP: refused", resp)

    # 500 idle connections and one event stream that is never read.
    idle = []
    for _ in range(500):
        s = socket.create_connection(("127.0.0.1", sv.port))
        idle.append(s)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", sv.port))
    stuck.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.time()
    st, body, _ = http(u + "/metrics", timeout=10)
    t.ok(st == 200 and "grokwatch_step" in body,
         "/metrics answered beside 500 idle connections (%.2f s)" % (time.time() - t0))
    # A reading stream still gets a new result while the stuck one holds on.
    reader = socket.create_connection(("127.0.0.1", sv.port))
    reader.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    reader.settimeout(60 * g.SLOW)
    got = b""
    # The stream is live once its hello arrives: a result sent before that
    # is the snapshot's, not the stream's, so place the checkpoint after it.
    end = time.time() + 30 * g.SLOW
    while b"event: hello" not in got and time.time() < end:
        try:
            chunk = reader.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        got += chunk
    t.ok(b"event: hello" in got, "the reading event stream says hello", got[:200])
    g.place_atomic(ck(6000), root, "step6000")
    t.ok(wait_for(n_results(6), 60), "daemon computed step 6000")
    end = time.time() + 30 * g.SLOW
    why = "timed out"
    # Wait for the result event itself: progress events for step 6000 carry
    # "step":6000 too, and come first.
    step6000 = re.compile(rb'event: result\ndata: [^\n]*"step":6000')
    while not step6000.search(got) and time.time() < end:
        try:
            chunk = reader.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            why = "closed by the bridge"
            break
        got += chunk
    t.ok(b"event: hello" in got and step6000.search(got),
         "a reading event stream got step 6000 beside a stream never read",
         "%s after %d bytes: %r ... %r\n%s" % (why, len(got), got[:200], got[-600:], sv.log()[-2000:]))
    reader.close()
    def series_has_6000():
        st, body, _ = http(u + "/api/series", timeout=10)
        return st == 200 and json.loads(body)["runs"][0]["rows"][-1][0] == 6000

    t.ok(wait_for(series_has_6000, 30), "/api/series answered beside them, with step 6000")
    for s in idle:
        s.close()
    stuck.close()
    st, body, _ = http(u + "/metrics")
    m = re.search(r"^grokwatch_serve_http_requests_total\{code=\"404\"\} (\d+)", body, re.M)
    t.ok(st == 200 and m and int(m.group(1)) >= 3, "/metrics counts the refused requests", body[-1500:])


try:
    main()
except Exception as e:  # a broken case is a failure, not a crash of the file
    import traceback
    t.ok(False, "raised %s" % e.__class__.__name__, traceback.format_exc())
finally:
    g.finish(t, base)
