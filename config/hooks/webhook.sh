#!/bin/sh
# webhook.sh — a grokwatchd alert hook that POSTs the alert, exactly as it
# arrives on stdin, to a URL with curl.  The body is the payload Alertmanager
# SENDS to its webhook receivers (webhook_config, version 4, one alert), so
# a receiver written for Alertmanager's webhooks takes it unchanged.  It is
# NOT what Alertmanager itself takes in: its /api/v2/alerts wants a list of
# PostableAlerts and answers this with 400; for Alertmanager set
# alerts.alertmanager.urls instead (the daemon sends and re-sends natively).
# For Slack, use slack.py beside this file.
#
#   usage: webhook.sh URL [HEADER_FILE]
#
# HEADER_FILE, if given, holds extra request headers, one "Name: value" a
# line (e.g. "Authorization: Bearer ..."), read by curl itself so that a
# secret never appears in argv, which any local user can see with ps.
#
# In grokwatchd.json (hooks run with no shell and an environment of
# GROKWATCH_ALERT, GROKWATCH_RUN, GROKWATCH_GROUP, GROKWATCH_STEP,
# GROKWATCH_STATUS and PATH only, so the URL is an argument):
#
#   "alerts": {"hooks": [{"alert": "*",
#       "argv": ["/usr/local/share/grokwatch/hooks/webhook.sh",
#                "https://hooks.example.org/grokwatch"]}]}
#
# Exit status: curl's (0 on a 2xx reply; 22 for an HTTP error, 28 for a
# timeout, ...), or 2 for a usage error.  grokwatchd reports a non-zero
# status, with what curl printed on stderr, as an `error` message.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then
	echo "usage: webhook.sh URL [HEADER_FILE]" >&2
	exit 2
fi
url=$1
headers=${2-}
if [ -n "$headers" ] && [ ! -r "$headers" ]; then
	echo "webhook.sh: cannot read the header file \"$headers\"" >&2
	exit 2
fi

# --fail: an HTTP error is a failure; --data-binary @-: stdin byte for byte;
# no retry here: keep the hook shorter than grokwatchd's hook_timeout_ms.
if [ -n "$headers" ]; then
	exec curl --fail --silent --show-error --max-time 20 \
		-H 'Content-Type: application/json' -H "@$headers" \
		--data-binary @- --url "$url"
fi
exec curl --fail --silent --show-error --max-time 20 \
	-H 'Content-Type: application/json' \
	--data-binary @- --url "$url"
