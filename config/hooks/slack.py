#!/usr/bin/python3
"""slack.py — a grokwatchd alert hook that posts a readable message to a
Slack incoming webhook: {"text": ...} in Slack's mrkdwn, one alert per
message, e.g.

    :rotating_light: *FIRING* grokking: group math is grokking: loss on a
    plateau while pathway_distance still falls
    run `olmoe-demo`, group `math`, metric `pathway_distance`, step 6000,
    since 2026-11-30T08:13:06.248Z
    > pathway_distance 3.2 at step 6000, ...

(":white_check_mark: *RESOLVED*" when it resolves).  Slack's incoming
webhooks take a JSON body with "text" (https://api.slack.com/messaging/
webhooks); Mattermost and Rocket.Chat incoming webhooks take the same.

  usage: slack.py URL_FILE

URL_FILE holds the webhook URL (https://hooks.slack.com/services/...) on
its first line.  The URL is the secret (anyone who has it can post), so it
is read from a file, never taken in argv, which any local user can see
with ps.  The alert arrives on stdin as grokwatchd hands it to every hook:
an Alertmanager webhook payload (version 4) with one alert.

In grokwatchd.json (hooks run with no shell, the payload on stdin):

  "alerts": {"hooks": [{"alert": "*",
      "argv": ["/usr/local/share/grokwatch/hooks/slack.py",
               "/etc/grokwatch/slack-url"]}]}

Exit status: 0 when Slack answers 2xx; 1 for an HTTP error or no answer
within 20 s (the reason on stderr, which grokwatchd reports as an `error`
message); 2 for a usage error, an unreadable URL file or a payload that is
not an alert.  Python's standard library only.
"""

import json
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 20
TEXT_MAX = 3000  # Slack shows about 4000 characters of text; keep well below


def die(code, msg):
    sys.stderr.write("slack.py: %s\n" % msg)
    sys.exit(code)


def esc(s):
    """Slack's three control characters, escaped as its docs ask."""
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message(payload):
    """The {"text": ...} body for an alert payload; ValueError if it is not one."""
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list) \
            or not payload["alerts"] or not isinstance(payload["alerts"][0], dict):
        raise ValueError("the payload has no \"alerts\" list")
    alert = payload["alerts"][0]
    labels = alert.get("labels") or {}
    ann = alert.get("annotations") or {}
    status = alert.get("status") or payload.get("status") or "?"
    if not isinstance(labels, dict) or "alertname" not in labels:
        raise ValueError("the alert has no labels.alertname")
    firing = status == "firing"
    head = "%s *%s* %s: %s" % (":rotating_light:" if firing else ":white_check_mark:",
                               "FIRING" if firing else "RESOLVED", esc(labels["alertname"]),
                               esc(ann.get("summary", "")))
    where = ", ".join("%s `%s`" % (k, esc(labels[k])) for k in ("run", "group", "metric")
                      if k in labels)
    if isinstance(payload.get("step"), int):
        where += ", step %d" % payload["step"]
    if alert.get("startsAt"):
        where += ", since %s" % esc(alert["startsAt"])
    if not firing and alert.get("endsAt"):
        where += ", until %s" % esc(alert["endsAt"])
    text = head + "\n" + where
    if ann.get("description"):
        text += "\n> " + esc(ann["description"])
    if len(text) > TEXT_MAX:
        text = text[:TEXT_MAX - 1] + "\u2026"
    return {"text": text}


def main(argv):
    if len(argv) != 2 or not argv[1]:
        die(2, "usage: slack.py URL_FILE")
    try:
        with open(argv[1]) as f:
            url = f.readline().strip()
    except OSError as e:
        die(2, "cannot read the URL file \"%s\": %s" % (argv[1], e.strerror))
    if not url.startswith(("https://", "http://")):
        die(2, "the URL file \"%s\" does not start with an http(s) URL" % argv[1])
    try:
        payload = json.loads(sys.stdin.buffer.read().decode("utf-8"))
        body = json.dumps(message(payload)).encode("utf-8")
    except (ValueError, UnicodeDecodeError) as e:
        die(2, "stdin is not an alert payload: %s" % e)
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
            r.read()
    except urllib.error.HTTPError as e:
        die(1, "HTTP %d from the webhook: %s" % (e.code, e.read(200).decode("utf-8", "replace")))
    except (urllib.error.URLError, OSError) as e:
        die(1, "no answer from the webhook: %s" % getattr(e, "reason", e))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
