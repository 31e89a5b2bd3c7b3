#!/bin/sh
# test_client.sh — the grokwatch tool end to end against gw_testd (the
# daemon's real publisher, scripted): usage and exit codes; tail (catch-up,
# live, --json, --topic, a restart noticed without duplicates); status;
# history (filters, CSV read back with Python's csv module, JSON); plot at
# widths 40 and 120 with several groups, Unicode and ASCII; alerts; bad
# endpoints and a daemon that is down, with the time bounded.
. "$GW_SRC/tests/lib.sh"
PY=${PYTHON:-/usr/bin/python3}
export TZ=UTC
cli() { $GW_WRAP "$GW_CLI" "$@"; }

if [ -z "${GW_TESTD:-}" ] || [ ! -x "$GW_TESTD" ]; then
	echo "not ok 1 - GW_TESTD is not built (run through make check)"
	exit 1
fi

# start_testd NAME SCRIPT [PUB QUERY]: runs gw_testd in the background;
# sets EP (PUB,QUERY) and PID.
start_testd() {
	rm -f "$TMP/$1.ready"
	if [ $# -ge 4 ]; then
		"$GW_TESTD" --run olmoe-test --ready "$TMP/$1.ready" --pub "$3" --query "$4" \
			--lifetime $((60000 * GW_SLOW)) "$2" 2>"$TMP/$1.err" &
	else
		"$GW_TESTD" --run olmoe-test --ready "$TMP/$1.ready" --lifetime $((60000 * GW_SLOW)) "$2" \
			2>"$TMP/$1.err" &
	fi
	PID=$!
	wait_for 10 test -s "$TMP/$1.ready"
	PUB=$(cut -d' ' -f1 "$TMP/$1.ready")
	QUERY=$(cut -d' ' -f2 "$TMP/$1.ready")
	EP="$PUB,$QUERY"
}

# wait_lines FILE N: until FILE has N lines (at most `slow 10` s).
has_lines() { [ "$(cat "$1" 2>/dev/null | wc -l)" -ge "$2" ]; }
wait_lines() { wait_for 10 has_lines "$1" "$2"; }

# result STEP: a result line for the script, values derived from the step.
result() {
	s=$1
	echo "result {\"step\":$s,\"checkpoint\":\"step$s\",\"groups\":{" \
		"\"math\":{\"pathway_distance\":$((s / 10)),\"pathway_consistency\":0.$((s / 100)),\"loss\":$((1000 - s))}," \
		"\"code\":{\"pathway_distance\":$((s / 20)),\"pathway_consistency\":0.5,\"loss\":null}," \
		"\"all\":{\"pathway_distance\":$((s / 5)),\"pathway_consistency\":0.25,\"loss\":2.5}}}"
}

# --- usage and exit codes
cli >/dev/null 2>&1; is $? 2 "no command: exit 2"
cli frobnicate >/dev/null 2>"$TMP/err"; is $? 2 "unknown command: exit 2"
has "$(cat "$TMP/err")" "unknown command 'frobnicate'" "unknown command named"
cli tail --metric x >/dev/null 2>"$TMP/err"; is $? 2 "option of another command: exit 2"
has "$(cat "$TMP/err")" "tail: unknown option '--metric'" "the option is named"
cli history >/dev/null 2>"$TMP/err"; is $? 2 "history without --metric: exit 2"
has "$(cat "$TMP/err")" "--metric is required" "--metric asked for"
cli --timeout 0 status >/dev/null 2>&1; is $? 2 "--timeout 0: exit 2"
cli --timeout 12x status >/dev/null 2>&1; is $? 2 "--timeout 12x: exit 2"
cli plot --metric m --width 10 >/dev/null 2>&1; is $? 2 "--width 10: exit 2"
cli history --metric m --from 5 --to 4 >/dev/null 2>&1; is $? 2 "--from after --to: exit 2"
cli history --metric m --csv --json >/dev/null 2>&1; is $? 2 "--csv with --json: exit 2"
cli -e >/dev/null 2>&1; is $? 2 "-e without a value: exit 2"
cli --help >"$TMP/help"; is $? 0 "--help: exit 0"
cli status --all >/dev/null 2>&1; is $? 2 "status --all: exit 2"
for w in tail status history plot alerts --timeout --endpoint "Exit status"; do
	has "$(cat "$TMP/help")" "$w" "--help mentions $w"
done

# --- the shared library exports the API of grokwatch.h and nothing else
if command -v nm >/dev/null 2>&1 && [ -f "$GW_BUILD/libgrokwatch.so" ]; then
	nm -D --defined-only "$GW_BUILD/libgrokwatch.so" | awk '$2 == "T" {print $3}' | sort >"$TMP/syms"
	sed -n 's/^GW_API [^(]*[ *]\(gw_[a-z_]*\)(.*/\1/p' "$GW_SRC/include/grokwatch.h" | sort >"$TMP/api"
	ok $([ -s "$TMP/api" ] && grep '^gw' "$TMP/syms" | cmp -s - "$TMP/api" && echo 0 || echo 1) \
		"libgrokwatch.so exports exactly the $(wc -l <"$TMP/api") functions of grokwatch.h"
	is "$(grep -c -e '^gwc_' -e '^cJSON' -e '^zmq_' "$TMP/syms")" 0 "no internal or dependency symbol exported"
fi

# --- a daemon with five results, then more on a signal
{
	echo 'status {"watching":"/ckpt/olmoe","queue":1,"job":{"step":600,"progress":0.25}}'
	for s in 100 200 300 400 500; do result $s; done
	echo "waitfile $TMP/go"
	result 600
	echo 'send alert {"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"GrokkingStarted","run":"olmoe-test","group":"math","metric":"pathway_distance"},"annotations":{"summary":"math: loss on a plateau, distance falling"},"startsAt":"2026-11-30T07:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"f1"}]}'
	echo 'send progress {"step":700,"stage":"forward","done":0.5}'
	echo "waitfile $TMP/go2"
	echo 'send alert {"version":"4","status":"resolved","alerts":[{"status":"resolved","labels":{"alertname":"LossPlateau","run":"olmoe-test","group":"code","metric":"loss"},"annotations":{"summary":"code: loss moving again"},"startsAt":"2026-11-30T06:00:00Z","endsAt":"2026-11-30T07:10:00Z","fingerprint":"f2"}]}'
	result 700
	echo 'send progress {"step":800,"stage":"forward","done":0.1}'
} >"$TMP/s1"
start_testd d1 "$TMP/s1"
D1=$PID
EP1=$EP

# tail: a late client sees the five results once each, then the live ones
timeout $(slow 20) $GW_WRAP "$GW_CLI" -e "$EP1" tail --all --count 8 >"$TMP/tail" 2>"$TMP/tail.err" &
TAIL=$!
wait_lines "$TMP/tail" 15
touch "$TMP/go"
wait $TAIL; is $? 0 "tail --count 8: exit 0"
is "$(grep -c ' step ' "$TMP/tail")" 18 "tail: 6 results x 3 groups"
is "$(awk '/ step /{print $5, $6}' "$TMP/tail" | sort | uniq -d | wc -l)" 0 \
	"tail: no (step, group) twice"
has "$(cat "$TMP/tail")" "olmoe-test  step 300  math      distance 30.0000  consistency 0.3000  loss 700.0000" \
	"tail: a line with run, step, group, distance, consistency, loss"
has "$(cat "$TMP/tail")" "step 300  code      distance 15.0000  consistency 0.5000  loss -" \
	"tail: a null loss shows as -"
has "$(grep FIRING "$TMP/tail")" "GrokkingStarted  group math  metric pathway_distance" "tail: the alert"
has "$(grep 'progress:' "$TMP/tail")" "stage=forward" "tail: progress fields"
first=$(grep -n 'step 100 ' "$TMP/tail" | head -1 | cut -d: -f1)
last=$(grep -n 'step 600 ' "$TMP/tail" | head -1 | cut -d: -f1)
ok $([ "$first" -lt "$last" ] && echo 0 || echo 1) "tail: catch-up before live"
grep -q '^20[0-9][0-9]-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]  olmoe-test' "$TMP/tail"
ok $? "tail: lines start with the time"

timeout $(slow 20) $GW_WRAP "$GW_CLI" -e "$EP1" tail --json --count 6 >"$TMP/tail.json" 2>&1
is $? 0 "tail --json: exit 0"
"$PY" - "$TMP/tail.json" <<'PYEOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 6, lines
bodies = [json.loads(l) for l in lines]
assert [b["step"] for b in bodies] == [100, 200, 300, 400, 500, 600], bodies
assert all(b["type"] == "metrics" and b["run"] == "olmoe-test" for b in bodies)
PYEOF
ok $? "tail --json: the six bodies, valid JSON, in step order"

# Alerts and progress are not in snapshots: only a client listening sees them.
# Heartbeats, asked for, show that the subscription has reached the daemon.
$GW_WRAP "$GW_CLI" -e "$EP1" tail --topic alert. --topic progress. --topic heartbeat. \
	>"$TMP/tail.all" 2>&1 &
TAIL=$!
wait_for 20 grep -qs 'heartbeat:' "$TMP/tail.all"
touch "$TMP/go2"
not_heartbeats() { [ "$(grep -vc 'heartbeat:' "$TMP/tail.all")" -ge 2 ]; }
wait_for 20 not_heartbeats
kill -TERM $TAIL
wait $TAIL; is $? 0 "tail: SIGTERM ends it with exit 0"
has "$(grep -m1 'heartbeat:' "$TMP/tail.all")" "status.watching=/ckpt/olmoe" "tail --topic heartbeat.: heartbeats"
grep -v 'heartbeat:' "$TMP/tail.all" >"$TMP/tail.topic"
is "$(wc -l <"$TMP/tail.topic")" 2 "tail --topic: two lines"
has "$(cat "$TMP/tail.topic")" "RESOLVED  LossPlateau  group code  metric loss  since 2026-11-30T06:00:00Z  code: loss moving again" \
	"tail --topic alert.: the resolved alert"
has "$(cat "$TMP/tail.topic")" "progress: step=800 stage=forward done=0.1" "tail --topic progress.: progress"
is "$(grep -c ' step ' "$TMP/tail.topic")" 0 "tail --topic: no metrics"

# --- status
cli -e "$EP1" status >"$TMP/status" 2>&1; is $? 0 "status: exit 0"
has "$(cat "$TMP/status")" "run: olmoe-test" "status: the run"
has "$(cat "$TMP/status")" "watching: /ckpt/olmoe" "status: what it watches"
has "$(cat "$TMP/status")" "    job:
      step: 600
      progress: 0.25" "status: the job, nested"
cli -e "$EP1" status --json >"$TMP/status.json" 2>&1; is $? 0 "status --json: exit 0"
"$PY" -c 'import json,sys; d=json.loads(open(sys.argv[1]).readline()); assert d["status"]["queue"]==1 and d["results"]==[]' \
	"$TMP/status.json"
ok $? "status --json: the status object"

# --- history
cli -e "$EP1" history --metric pathway_distance --group math --from 200 --to 400 >"$TMP/h" 2>&1
is $? 0 "history: exit 0"
is "$(grep -v '^#' "$TMP/h" | awk '{print $1 "=" $2}' | tr '\n' ' ')" "200=20 300=30 400=40 " \
	"history --from --to: the steps and values in range"
cli -e "$EP1" history --metric loss --group code --csv >"$TMP/h.csv" 2>&1
is $? 0 "history --csv: exit 0"
"$PY" - "$TMP/h.csv" <<'PYEOF'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
assert rows[0] == ["run", "group", "metric", "step", "value"], rows[0]
assert len(rows) == 8, rows
for r, step in zip(rows[1:], [100, 200, 300, 400, 500, 600, 700]):
    assert r == ["olmoe-test", "code", "loss", str(step), ""], r
PYEOF
ok $? "history --csv: well-formed, null as an empty field"
cli -e "$EP1" history --metric loss --csv >"$TMP/h2.csv" 2>&1
"$PY" - "$TMP/h2.csv" <<'PYEOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert [float(r["value"]) for r in rows] == [2.5] * 7, rows
assert {r["group"] for r in rows} == {"all"}
PYEOF
ok $? "history: the group defaults to all"
cli -e "$EP1" history --metric pathway_distance --group math --json --to 200 >"$TMP/h.json" 2>&1
"$PY" -c 'import json,sys; d=json.loads(open(sys.argv[1]).readline()); assert d["points"]==[[100,10],[200,20]], d' \
	"$TMP/h.json"
ok $? "history --json: the daemon's points"
cli -e "$EP1" history --metric pathway_distance --group nosuch >"$TMP/h3" 2>&1
is $? 0 "history of an unknown group: exit 0 (no values)"
is "$(grep -v '^#' "$TMP/h3" | awk '{print $2}' | sort -u)" "-" "history of an unknown group: every value -"

# --- plot: widths 40 and 120, three groups, Unicode and ASCII
for w in 40 120; do
	LC_ALL=C.UTF-8 cli -e "$EP1" plot --metric pathway_distance --group math --group code \
		--group all --width $w >"$TMP/plot$w" 2>&1
	is $? 0 "plot --width $w: exit 0"
	"$PY" - "$TMP/plot$w" $w <<'PYEOF'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
w = int(sys.argv[2])
lines = text.splitlines()
assert max(len(l) for l in lines) <= w, [l for l in lines if len(l) > w]
assert lines[0].startswith("pathway_distance"), lines[0]
legend = lines[-1]
for g in ("math", "code", "all"):
    assert g in legend, legend
for m in ("\u25cf", "\u25b2", "\u25a0"):
    assert m in text, m
axis = [l for l in lines if "\u2514" in l]
assert len(axis) == 1
steps = lines[lines.index(axis[0]) + 1].split()
assert steps[0] == "100" and steps[-1] == "700", steps
ylabels = [l.split("\u2524")[0].strip() for l in lines if "\u2524" in l]
assert float(ylabels[0]) == 140 and float(ylabels[-1]) == 5, ylabels
# the chart spans the width: some row reaches the last column
assert any(len(l) == w for l in lines[1:-4]), [len(l) for l in lines]
PYEOF
	ok $? "plot --width $w: fits, labels, three series, legend"
done
LC_ALL=C cli -e "$EP1" plot --metric loss --group math --group all --width 60 --height 6 >"$TMP/plota" 2>&1
is $? 0 "plot in the C locale: exit 0"
LC_ALL=C.UTF-8 cli -e "$EP1" plot --metric loss --group math --group all --width 60 --ascii >"$TMP/plotb" 2>&1
for f in plota plotb; do
	"$PY" -c 'import sys; b=open(sys.argv[1],"rb").read(); assert max(b) < 128 and b.count(b"*") > 3 and b"|" in b' "$TMP/$f"
	ok $? "plot $f: ASCII only"
done
is "$(wc -l <"$TMP/plota")" 11 "plot --height 6: title, 6 rows, axis, steps, label, legend"
cli -e "$EP1" plot --metric loss --group code >"$TMP/plotc" 2>&1
is $? 1 "plot with no values: exit 1"
has "$(cat "$TMP/plotc")" "no value of loss" "plot with no values: said so"

# --- alerts: none held in the snapshot (this daemon does not send them yet)
cli -e "$EP1" alerts >"$TMP/alerts" 2>&1; is $? 0 "alerts: exit 0"
is "$(cat "$TMP/alerts")" "" "alerts: nothing held, nothing live"

# --- two daemons at once
{ result 100; result 900; } >"$TMP/s2"
start_testd d2 "$TMP/s2"
D2=$PID
cli -e "$EP1" -e "$EP" history --metric pathway_distance --csv >"$TMP/h4.csv" 2>&1
is $? 0 "history from two daemons: exit 0"
is "$(grep -c '^olmoe-test,all,' "$TMP/h4.csv")" 9 "history from two daemons: 7 + 2 rows"
LC_ALL=C cli -e "$EP1" -e "$EP" plot --metric pathway_distance --width 50 >"$TMP/plot2" 2>&1
is $? 0 "plot from two daemons: exit 0"
has "$(tail -1 "$TMP/plot2")" "olmoe-test/all" "plot from two daemons: run/group labels"
kill $D2; wait $D2 2>/dev/null

# --- a restart: noticed, and no result shown twice
{ result 100; result 200; echo "waitfile $TMP/stop"; echo exit; } >"$TMP/a"
start_testd ra "$TMP/a"
RA=$PID
RPUB=$PUB
RQUERY=$QUERY
timeout $(slow 20) $GW_WRAP "$GW_CLI" -e "$EP" tail --count 4 >"$TMP/rt" 2>"$TMP/rt.err" &
TAIL=$!
wait_lines "$TMP/rt" 6
touch "$TMP/stop"
wait $RA
{ result 100 | sed 's/^result/restore/'; result 200 | sed 's/^result/restore/'; echo "sleep 300"; result 300; } >"$TMP/b"
start_testd rb "$TMP/b" "$RPUB" "$RQUERY"
RB=$PID
wait $TAIL; is $? 0 "tail across a restart: exit 0"
has "$(cat "$TMP/rt")" "the daemon restarted" "tail: the restart is shown"
is "$(grep -c ' step ' "$TMP/rt")" 9 "tail across a restart: 3 results x 3 groups"
is "$(awk '/ step /{print $5, $6}' "$TMP/rt" | sort | uniq -d | wc -l)" 0 \
	"tail across a restart: nothing twice"
kill $RB; wait $RB 2>/dev/null

# --- CURVE: --server-key FILE
if "$PY" -c 'import zmq, sys; sys.exit(0 if zmq.has("curve") else 1)' 2>/dev/null; then
	"$PY" -c 'import zmq, sys
p, s = zmq.curve_keypair()
open(sys.argv[1], "wb").write(p + b"\n"); open(sys.argv[2], "wb").write(s)' "$TMP/pub.key" "$TMP/sec.key"
	echo "$(result 100)" >"$TMP/sc"
	rm -f "$TMP/c.ready"
	"$GW_TESTD" --run olmoe-test --ready "$TMP/c.ready" --curve-secret "$TMP/sec.key" \
		--lifetime $((30000 * GW_SLOW)) "$TMP/sc" &
	DC=$!
	wait_for 10 test -s "$TMP/c.ready"
	EPC="$(cut -d' ' -f1 "$TMP/c.ready"),$(cut -d' ' -f2 "$TMP/c.ready")"
	cli -e "$EPC" --server-key "$TMP/pub.key" history --metric pathway_distance --group math >"$TMP/out" 2>&1
	is $? 0 "--server-key: history over CURVE"
	has "$(cat "$TMP/out")" "100  10" "--server-key: the value"
	cli -e "$EPC" --timeout 500 status >/dev/null 2>&1
	is $? 1 "CURVE daemon without --server-key: exit 1"
	printf 'short\n' >"$TMP/bad.key"
	cli -e "$EPC" --server-key "$TMP/bad.key" status >/dev/null 2>"$TMP/err"
	is $? 1 "--server-key with a bad key file: exit 1"
	has "$(cat "$TMP/err")" "not a Z85 CURVE key" "the bad key file is named and why"
	kill $DC; wait $DC 2>/dev/null
fi

# --- bad endpoints, and daemons that are down: clear errors, bounded time
cli -e "tcp://127.0.0.1" status >/dev/null 2>"$TMP/err"; is $? 2 "endpoint without a port: exit 2"
has "$(cat "$TMP/err")" "\"tcp://127.0.0.1\": not an endpoint" "the bad endpoint is named"
kill $D1; wait $D1 2>/dev/null
for cmd in "tail" "status" "history --metric loss" "plot --metric loss" "alerts"; do
	start=$(date +%s%N)
	cli -e "$EP1" --timeout 700 $cmd >"$TMP/out" 2>"$TMP/err"
	rc=$?
	ms=$(( ($(date +%s%N) - start) / 1000000 ))
	is $rc 1 "$cmd, daemon down: exit 1"
	has "$(cat "$TMP/err")" "\"${EP1#*,}\": no reply to the" "$cmd, daemon down: the query endpoint named"
	has "$(cat "$TMP/err")" "is grokwatchd running there?" "$cmd, daemon down: a hint"
	ok $([ $ms -lt $((5000 * GW_SLOW)) ] && echo 0 || echo 1) "$cmd, daemon down: gave up in ${ms} ms (timeout 700)"
done

done_testing
