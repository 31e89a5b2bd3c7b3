#!/usr/bin/python3
"""test_slack_hook.py — config/hooks/slack.py against a local HTTP receiver
(Python's http.server standing in for Slack's incoming webhook): the body is
what Slack's documented format takes (a JSON object whose "text" is a
string, mrkdwn with &, < and > escaped), readable (status, alert name,
summary, run, group, metric, step, description), sent as JSON; an HTTP
error is exit 1 with the status on stderr; usage errors, an unreadable URL
file and a payload that is not an alert are exit 2 with nothing sent.
"""

import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest as g  # noqa: E402

HOOK = os.path.join(g.SRC, "config", "hooks", "slack.py")
t = g.Tap()
base = tempfile.mkdtemp(prefix="gwslack.")
reqs = []


class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        reqs.append((self.path, self.headers.get("Content-Type"), body))
        code = 200 if self.path.startswith("/services/") else 500
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok" if code == 200 else b"no")

    def log_message(self, *a):
        pass


def run(args, stdin):
    p = subprocess.run([g.PY, HOOK] + args, input=stdin, capture_output=True, timeout=30)
    return p.returncode, p.stderr.decode()


def event(status, desc="pathway_distance 3.2 at step 6000 < 3.5 & falling"):
    return json.dumps({
        "version": "4", "status": status, "step": 6000, "receiver": "grokwatch",
        "alerts": [{"status": status,
                    "labels": {"alertname": "grokking", "run": "olmoe-demo", "group": "math",
                               "metric": "pathway_distance"},
                    "annotations": {"summary": "group math is grokking: loss on a plateau "
                                               "while pathway_distance still falls",
                                    "description": desc},
                    "startsAt": "2026-11-30T08:13:06.248Z",
                    "endsAt": "0001-01-01T00:00:00Z" if status == "firing"
                    else "2026-11-30T09:00:00.000Z",
                    "fingerprint": "d380ba7f62118c1f"}]}).encode()


try:
    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    urlf = os.path.join(base, "url")
    with open(urlf, "w") as f:
        f.write("http://127.0.0.1:%d/services/T000/B000/XXXX\n" % port)

    rc, err = run([urlf], event("firing"))
    t.eq((rc, err), (0, ""), "firing: exit 0, nothing on stderr")
    t.eq(len(reqs), 1, "one POST")
    path, ctype, body = reqs[-1]
    t.eq(path, "/services/T000/B000/XXXX", "to the URL read from the file")
    t.ok(ctype.startswith("application/json"), "sent as JSON", ctype)
    msg = json.loads(body)
    t.ok(isinstance(msg, dict) and set(msg) == {"text"} and isinstance(msg["text"], str),
         "the body is Slack's {\"text\": string}", msg)
    text = msg["text"]
    for want in (":rotating_light: *FIRING* grokking: group math is grokking: loss on a plateau "
                 "while pathway_distance still falls",
                 "run `olmoe-demo`, group `math`, metric `pathway_distance`, step 6000, "
                 "since 2026-11-30T08:13:06.248Z",
                 "\n> pathway_distance 3.2 at step 6000 &lt; 3.5 &amp; falling"):
        t.ok(want in text, "the text has %r" % want[:40], text)
    t.ok("<" not in text.replace("&lt;", "") and "&gt;" not in text,
         "Slack's control characters escaped", text)

    rc, err = run([urlf], event("resolved", "back <b>up</b>"))
    t.eq(rc, 0, "resolved: exit 0")
    text = json.loads(reqs[-1][2])["text"]
    t.ok(text.startswith(":white_check_mark: *RESOLVED* grokking:") and
         "until 2026-11-30T09:00:00.000Z" in text and "&lt;b&gt;up&lt;/b&gt;" in text,
         "a resolution says so, with its end", text)

    # errors
    bad = os.path.join(base, "bad-url")
    with open(bad, "w") as f:
        f.write("http://127.0.0.1:%d/other\n" % port)
    rc, err = run([bad], event("firing"))
    t.eq(rc, 1, "HTTP 500: exit 1")
    t.ok("HTTP 500" in err, "stderr names the status", err)
    n = len(reqs)
    rc, err = run([], event("firing"))
    t.ok(rc == 2 and "usage: slack.py URL_FILE" in err, "no argument: usage, exit 2", (rc, err))
    rc, err = run([os.path.join(base, "nonexistent")], event("firing"))
    t.ok(rc == 2 and "cannot read the URL file" in err, "missing URL file: exit 2", (rc, err))
    notes = os.path.join(base, "notes")
    with open(notes, "w") as f:
        f.write("not a url\n")
    rc, err = run([notes], event("firing"))
    t.ok(rc == 2 and "does not start with an http(s) URL" in err, "not a URL: exit 2", (rc, err))
    for what, payload in (("truncated", event("firing")[:50]), ("empty", b""),
                          ("not UTF-8", b"\xff\xfe"), ("no alerts", b'{"alerts": []}'),
                          ("no labels", b'{"alerts": [{"status": "firing"}]}'),
                          ("an array", b"[1]")):
        rc, err = run([urlf], payload)
        t.ok(rc == 2 and "stdin is not an alert payload" in err,
             "%s payload: exit 2 with the reason" % what, (rc, err))
    t.eq(len(reqs), n, "nothing sent after a usage or payload error")
    srv.shutdown()
except Exception as e:
    t.ok(False, "raised %s" % e.__class__.__name__, str(e))
finally:
    g.finish(t, base)
