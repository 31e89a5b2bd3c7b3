#!/bin/sh
# test_webhook_hook.sh — config/hooks/webhook.sh against a local HTTP
# server (Python's http.server): the payload on stdin arrives as the POST
# body byte for byte with its content type and the headers of a header
# file; an HTTP error is a non-zero exit with curl's message on stderr;
# usage errors exit 2.
. "$GW_SRC/tests/lib.sh"
PY=/usr/bin/python3
HOOK=$GW_SRC/config/hooks/webhook.sh

if ! command -v curl >/dev/null 2>&1; then
	echo "# curl is not installed: skipped"
	echo "1..0 # SKIP no curl"
	exit 0
fi

# The server: POST /ok answers 200, anything else 500; each request's
# body and headers are written to $TMP/req.N.body and $TMP/req.N.headers.
"$PY" - "$TMP" >"$TMP/server.log" 2>&1 <<'PYEOF' &
import http.server, sys, os
d = sys.argv[1]
n = [0]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n[0] += 1
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(os.path.join(d, "req.%d.body" % n[0]), "wb") as f:
            f.write(body)
        with open(os.path.join(d, "req.%d.headers" % n[0]), "w") as f:
            for k, v in self.headers.items():
                f.write("%s: %s\n" % (k.lower(), v))
        code = 200 if self.path == "/ok" else 500
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
with open(os.path.join(d, "port.tmp"), "w") as f:
    f.write(str(s.server_address[1]))
os.rename(os.path.join(d, "port.tmp"), os.path.join(d, "port"))
s.serve_forever()
PYEOF
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$TMP"' EXIT
wait_for 5 test -s "$TMP/port"
port=$(cat "$TMP/port")

# A payload with every byte value, newlines and a NUL.
"$PY" -c 'import sys; sys.stdout.buffer.write(b"{\"version\":\"4\"}\n" + bytes(range(256)) * 40)' >"$TMP/payload"

sh "$HOOK" "http://127.0.0.1:$port/ok" <"$TMP/payload" >"$TMP/out" 2>"$TMP/err"
is $? 0 "2xx reply: exit 0"
is "$(cat "$TMP/err")" "" "nothing on stderr"
cmp -s "$TMP/payload" "$TMP/req.1.body"; ok $? "the body is the payload byte for byte"
has "$(cat "$TMP/req.1.headers")" "content-type: application/json" "JSON content type"

printf 'Authorization: Bearer s3cret\nX-Grokwatch: yes\n' >"$TMP/hdr"
echo '{}' | sh "$HOOK" "http://127.0.0.1:$port/ok" "$TMP/hdr" >/dev/null 2>&1
is $? 0 "with a header file: exit 0"
has "$(cat "$TMP/req.2.headers")" "authorization: Bearer s3cret" "header file sent"
has "$(cat "$TMP/req.2.headers")" "x-grokwatch: yes" "every header of the file sent"
is "$(cat "$TMP/req.2.body")" "{}" "body with a header file"

echo '{}' | sh "$HOOK" "http://127.0.0.1:$port/fail" >/dev/null 2>"$TMP/err"
is $? 22 "HTTP 500: curl's exit status 22"
has "$(cat "$TMP/err")" "500" "stderr names the HTTP status"

sh "$HOOK" </dev/null >/dev/null 2>"$TMP/err"; is $? 2 "no URL: exit 2"
has "$(cat "$TMP/err")" "usage: webhook.sh URL [HEADER_FILE]" "usage on stderr"
sh "$HOOK" "" </dev/null >/dev/null 2>&1; is $? 2 "empty URL: exit 2"
sh "$HOOK" a b c </dev/null >/dev/null 2>&1; is $? 2 "three arguments: exit 2"
sh "$HOOK" "http://127.0.0.1:$port/ok" "$TMP/nonexistent" </dev/null >/dev/null 2>"$TMP/err"
is $? 2 "missing header file: exit 2"
has "$(cat "$TMP/err")" "cannot read the header file" "missing header file named"
[ ! -e "$TMP/req.4.body" ]; ok $? "no request after a usage error"

done_testing
