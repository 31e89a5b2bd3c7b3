#!/usr/bin/python3
"""test_alertmanager.py — the daemon's native Alertmanager sender (issue 18)
against a real Prometheus Alertmanager (Debian's prometheus-alertmanager)
on loopback, with a 10 s resolve_timeout:

- the alerts the daemon fires appear in Alertmanager's /api/v2/alerts with
  the daemon's labels and the same fingerprint;
- they stay while firing past the resolve timeout (the re-send works);
- they resolve when the daemon resolves them (a restart under another run
  name resolves every alert of the old run);
- Alertmanager stopped: the daemon logs the failures and shows them in its
  status, keeps answering, and once Alertmanager is back the alerts are
  there again (nothing lost);
- a second target that answers 500, then hangs: retried with a bounded
  backoff, logged, shown in the status, and it holds up neither the loop
  nor the real Alertmanager;
- a bearer token from a file reaches the server;
- resolutions a target never took go out again after a restart (from the
  journal);
- https: verified against alerts.alertmanager.ca_file, refused without it.
"""

import http.server
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest as g  # noqa: E402

AM_BIN = "/usr/bin/prometheus-alertmanager"
RESEND_MS = 2000
RESOLVE_TIMEOUT = 10

t = g.Tap()
base = tempfile.mkdtemp(prefix="gwam.")
am_proc = None


def am_start(port, workdir):
    """Alertmanager on 127.0.0.1:port, clustering off, resolve_timeout 10 s."""
    cfg = os.path.join(workdir, "alertmanager.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  resolve_timeout: %ds\n"
                "route:\n  receiver: nowhere\n"
                "receivers:\n  - name: nowhere\n" % RESOLVE_TIMEOUT)
    log = open(os.path.join(workdir, "alertmanager.log"), "ab")
    p = subprocess.Popen([AM_BIN, "--config.file=" + cfg,
                          "--storage.path=" + os.path.join(workdir, "amdata"),
                          "--web.listen-address=127.0.0.1:%d" % port,
                          "--cluster.listen-address="],
                         stdout=log, stderr=log)
    end = time.time() + 30 * g.SLOW
    while time.time() < end:
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % port, timeout=2).read()
            return p
        except OSError:
            time.sleep(0.1)
    p.kill()
    raise TimeoutError("alertmanager did not start on port %d" % port)


def am_stop(p):
    p.terminate()
    p.wait(30)


def am_alerts(port):
    """Alertmanager's active alerts: {fingerprint: alert}."""
    with urllib.request.urlopen("http://127.0.0.1:%d/api/v2/alerts" % port, timeout=5) as r:
        return {a["fingerprint"]: a for a in json.load(r)}


def wait_until(cond, timeout):
    end = time.time() + timeout * g.SLOW
    while time.time() < end:
        try:
            v = cond()
        except OSError:
            v = None
        if v:
            return v
        time.sleep(0.2)
    return None


class Tls(http.server.BaseHTTPRequestHandler):
    """An https Alertmanager stand-in: keeps each body, answers 200."""
    posts = []

    def do_POST(self):
        Tls.posts.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


class Bad(http.server.BaseHTTPRequestHandler):
    """A failing Alertmanager: 500 for the first three POSTs, then hangs
    (reads the body and never answers) until released."""
    posts = []
    release = threading.Event()

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(n)
        Bad.posts.append((time.time(), self.path, self.headers.get("Authorization"), body))
        if len(Bad.posts) <= 3:
            self.send_response(500)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"boom\n")
            return
        Bad.release.wait(60)

    def log_message(self, *a):
        pass


def firing_of(snap):
    return {a["fingerprint"]: a for a in snap["status"].get("alerts", [])}


try:
    gen = os.path.join(base, "gen")
    g.gen_series(gen, 6)
    root = os.path.join(base, "ckpt")
    os.makedirs(root)
    port = g.free_port()
    am_proc = am_start(port, base)
    bad = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Bad)
    bad.daemon_threads = True
    threading.Thread(target=bad.serve_forever, daemon=True).start()
    bad_url = "http://127.0.0.1:%d/" % bad.server_address[1]
    token = os.path.join(base, "token")
    with open(token, "w") as f:
        f.write("s3cret-token\n")
    am_url = "http://127.0.0.1:%d" % port
    extra = {
        "alerts.loss": {"patience": 1, "min_checkpoints": 2, "threshold": 0.01},
        "alerts.distance": {"patience": 1, "min_checkpoints": 2, "threshold": 0.05},
        "alerts.routing_collapse": {"dead_experts": 0, "max_imbalance": 0},
        "alerts.alertmanager": {"urls": [am_url, bad_url], "resend_ms": RESEND_MS,
                                "timeout_ms": 1500, "bearer_token_file": token},
    }
    dm = g.Daemon(base, root, os.path.join(gen, "probe.jsonl"), extra=extra)
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    for k in range(1, 7):
        g.place_atomic(os.path.join(gen, "step%d000" % k), root, "step%d000" % k)
        t.ok(sub.collect(g.n_metrics(k), 30), "step %d000 computed" % k, dm.log())
    t.ok(sub.settle(), "an idle heartbeat past the last result", dm.log())
    firing = firing_of(sub.request({"req": "snapshot"}))
    t.ok(len(firing) > 0, "the daemon has firing alerts", dm.log())

    # 1. the firing alerts in Alertmanager, same labels, same fingerprints
    got = wait_until(lambda: (set(am_alerts(port)) == set(firing)) and am_alerts(port), 10)
    t.ok(got, "Alertmanager lists exactly the daemon's firing alerts (by fingerprint)",
         (sorted(firing), sorted(am_alerts(port))))
    got = got or {}
    t.ok(all(got[fp]["labels"] == a["labels"] and
             got[fp]["annotations"]["summary"] == a["annotations"]["summary"] and
             got[fp]["status"]["state"] == "active" for fp, a in firing.items() if fp in got),
         "with the daemon's labels and summary, active", json.dumps(list(got.values())[:1]))

    # 2. still there past resolve_timeout: the re-send works
    time.sleep(RESOLVE_TIMEOUT + 3)
    now = am_alerts(port)
    t.eq(sorted(now), sorted(firing), "still firing in Alertmanager past its resolve_timeout")
    ends = [a["endsAt"] for a in now.values()]
    t.ok(all(e > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) for e in ends),
         "their endsAt is in the future (renewed by each re-send)", ends)

    # 3. the failing target: 500s logged, then the hang timed out, retried
    # with a bounded backoff, shown in the status, while the loop answers
    t.ok(wait_until(lambda: len(Bad.posts) >= 5, 20), "the failing target is retried",
         len(Bad.posts))
    log = dm.log()
    t.ok("HTTP 500: boom" in log, "a 500 is logged with the answer", log[-2000:])
    t.ok(wait_until(lambda: "Timeout was reached" in dm.log() or
                    "timed out" in dm.log(), 10), "a hang is logged as a timeout",
         dm.log()[-2000:])
    gaps = [b[0] - a[0] for a, b in zip(Bad.posts, Bad.posts[1:])]
    t.ok(all(gp < (RESEND_MS + 1500) / 1000.0 + 1.5 * g.SLOW for gp in gaps),
         "retries are spaced at most resend_ms (plus the timeout) apart", gaps)
    t0 = time.time()
    snap = sub.request({"req": "snapshot"})
    t.ok(time.time() - t0 < 2 * g.SLOW, "the daemon answers while a POST hangs",
         time.time() - t0)
    st = {x["url"]: x for x in snap["status"].get("alertmanager", [])}
    badst = st.get(bad_url.rstrip("/") + "/api/v2/alerts", {})
    t.ok(badst.get("ok") is False and badst.get("failed_total", 0) >= 3 and
         badst.get("last_error"), "status shows the failing target", st)
    goodst = st.get(am_url + "/api/v2/alerts", {})
    t.ok(goodst.get("ok") is True and goodst.get("sent", 0) >= 2 and goodst.get("failures") == 0,
         "status shows the real Alertmanager fine", st)
    cli = subprocess.run([os.environ.get("GW_CLI", os.path.join(g.SRC, "build", "default",
                                                                "grokwatch")),
                          "-e", "%s,%s" % (dm.pub, dm.query), "status"],
                         capture_output=True, text=True, timeout=30 * g.SLOW)
    t.ok(cli.returncode == 0 and
         "alertmanager:\n      %s/api/v2/alerts  ok  sent " % am_url in cli.stdout and
         "%sapi/v2/alerts  FAILING  sent 0  failures " % bad_url in cli.stdout and
         "        last error: " in cli.stdout,
         "grokwatch status: a line per target, the failing one with its last error",
         cli.stdout + cli.stderr)
    t.ok(all(p[1] == "/api/v2/alerts" and p[2] == "Bearer s3cret-token" for p in Bad.posts),
         "POSTs go to /api/v2/alerts with the bearer token from the file",
         [(p[1], p[2]) for p in Bad.posts[:2]])
    body = json.loads(Bad.posts[-1][3])
    t.ok(isinstance(body, list) and body and
         all(set(a) - {"endsAt"} == {"labels", "annotations", "startsAt"} for a in body) and
         sorted(a["labels"]["alertname"] + a["labels"]["group"] for a in body
                if "endsAt" not in a) ==
         sorted(a["labels"]["alertname"] + a["labels"]["group"] for a in firing.values()),
         "the body is a list of PostableAlerts (labels, annotations, startsAt; endsAt for "
         "resolutions not yet delivered there), every firing alert", body)
    Bad.release.set()

    # 4. Alertmanager down (its alerts are in memory only: they are gone
    # when it stops), failures logged; back up: the re-send restores them
    am_stop(am_proc)
    n_fail = dm.log().count('POST "%s/api/v2/alerts" failed' % am_url)
    t.ok(wait_until(lambda: dm.log().count('POST "%s/api/v2/alerts" failed' % am_url) > n_fail,
                    10), "Alertmanager down: the failure is logged", dm.log()[-1500:])
    snap = sub.request({"req": "snapshot"})
    st = {x["url"]: x for x in snap["status"].get("alertmanager", [])}
    t.ok(st.get(am_url + "/api/v2/alerts", {}).get("failures", 0) >= 1,
         "and shown in the status", st)
    am_proc = am_start(port, base)
    got = wait_until(lambda: set(am_alerts(port)) == set(firing), 15)
    t.ok(got, "Alertmanager back: every firing alert is there again", dm.log()[-1500:])
    t.ok(wait_until(lambda: "succeeded again after" in dm.log(), 5),
         "the recovery is logged")
    sub.close()
    t.eq(dm.stop(), 0, "stopped cleanly")

    # 5. a restart under another run name resolves the old run's alerts:
    # they leave Alertmanager's active list, the new run's arrive
    dm.cfg["run"] = "test2"
    dm.write_config()
    dm.start()
    sub = g.Subscriber(dm.pub, dm.query)
    t.ok(sub.settle(), "restart as run test2", dm.log())
    firing2 = firing_of(sub.request({"req": "snapshot"}))
    t.ok(firing2 and all(a["labels"]["run"] == "test2" for a in firing2.values()),
         "the new run's alerts fire", firing2)
    got = wait_until(lambda: set(am_alerts(port)) == set(firing2), 15)
    t.ok(got, "Alertmanager: the old run's alerts resolved, the new run's active",
         (sorted(firing2), sorted(am_alerts(port))))
    # the resolutions as sent (the failing target keeps being sent them):
    # every alert of run test, each resolved last in the journal (the
    # restart's, and those before it, restored from the journal)
    last = {}
    for e in dm.journal():
        if e["kind"] == "alert" and e["alerts"][0]["labels"]["run"] == "test":
            a = e["alerts"][0]
            last[a["labels"]["alertname"] + "/" + a["labels"]["group"]] = e["status"]
    want_res = sorted(k for k, v in last.items() if v == "resolved")
    t.ok(set(a["labels"]["alertname"] + "/" + a["labels"]["group"] for a in firing.values()) <=
         set(want_res), "the journal holds the restart's resolutions", (want_res, firing))
    n0 = len(Bad.posts)
    wait_until(lambda: len(Bad.posts) > n0, 10)
    body = json.loads(Bad.posts[-1][3])
    res = [a for a in body if "endsAt" in a]
    t.eq(sorted(a["labels"]["alertname"] + "/" + a["labels"]["group"] for a in res), want_res,
         "each resolution is sent, until delivered")
    t.ok(all(a["labels"]["run"] == "test" and a["endsAt"] >= a["startsAt"] for a in res),
         "each with run test and an endsAt", res)
    sub.close()
    t.eq(dm.stop(), 0, "stopped cleanly after the restart")

    # 6. another restart, nothing changes: the journal's resolutions (which
    # the failing target never took) go out again from the first POST on
    n0 = len(Bad.posts)
    dm.start()
    t.ok(wait_until(lambda: len(Bad.posts) > n0, 10), "restart: the failing target is posted to")
    body = json.loads(Bad.posts[n0][3])
    res = [a for a in body if "endsAt" in a]
    t.eq(sorted(a["labels"]["alertname"] + "/" + a["labels"]["group"] for a in res), want_res,
         "restart: the undelivered resolutions, restored from the journal, in the first POST")
    got = wait_until(lambda: set(am_alerts(port)) == set(firing2), 10)
    t.ok(got, "restart: Alertmanager still holds exactly the firing alerts")
    t.eq(dm.stop(), 0, "stopped cleanly after the second restart")

    # 7. TLS through libcurl: an https target whose certificate (self-signed
    # for 127.0.0.1) is verified against alerts.alertmanager.ca_file; the
    # same target without ca_file fails verification, logged
    cert, key = os.path.join(base, "cert.pem"), os.path.join(base, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    Tls.posts = []
    tls = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tls)
    tls.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
    threading.Thread(target=tls.serve_forever, daemon=True).start()
    tls_url = "https://127.0.0.1:%d" % tls.server_address[1]
    dm.cfg["alerts"]["alertmanager"] = {"urls": [tls_url], "resend_ms": RESEND_MS,
                                        "timeout_ms": 3000, "ca_file": cert}
    dm.write_config()
    dm.start()
    t.ok(wait_until(lambda: Tls.posts, 15), "https with ca_file: the POST arrives", dm.log()[-1500:])
    body = json.loads(Tls.posts[0]) if Tls.posts else []
    t.eq(sorted(a["labels"]["alertname"] + a["labels"]["group"] for a in body
                if "endsAt" not in a),
         sorted(a["labels"]["alertname"] + a["labels"]["group"] for a in firing2.values()),
         "https: the firing alerts")
    t.eq(dm.stop(), 0, "stopped cleanly (https)")
    del dm.cfg["alerts"]["alertmanager"]["ca_file"]
    dm.write_config()
    n0 = len(Tls.posts)
    dm.start()
    t.ok(wait_until(lambda: re.search(r'POST "%s/api/v2/alerts" failed \(1 in a row\): '
                                      r'(SSL peer certificate|Peer certificate|SSL certificate)'
                                      % re.escape(tls_url), dm.log()), 15),
         "https without ca_file: the self-signed certificate is refused, logged",
         dm.log()[-1500:])
    t.eq(len(Tls.posts), n0, "nothing was posted over an unverified connection")
    t.eq(dm.stop(), 0, "stopped cleanly (unverified https)")
    tls.shutdown()
    bad.shutdown()
except Exception as e:
    t.ok(False, "raised %s" % e.__class__.__name__, str(e))
finally:
    if am_proc and am_proc.poll() is None:
        am_proc.kill()
        am_proc.wait()
    g.finish(t, base)
