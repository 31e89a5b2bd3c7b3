#!/bin/sh
# test_client.sh — the grokwatch tool end to end against gw_testd (the
# daemon's real publisher, scripted): usage and exit codes; tail (catch-up,
# live, --json, --topic, a restart noticed without duplicates); status;
# history (filters, CSV read back with Python's csv module, JSON); plot at
# widths 40 and 120 with several groups, Unicode and ASCII; alerts; every
# option as --opt VALUE and --opt=VALUE, and each command's --help; a
# reader that goes away (a pipe to head): quiet, exit 0, tail included; bad
# endpoints and a daemon that is down, with the time bounded.
. "$GW_SRC/tests/lib.sh"
PY=${PYTHON:-/usr/bin/python3}
export TZ=UTC
cli() { $GW_WRAP "$GW_CLI" "$@"; }
SLOW=1
[ -n "$GW_WRAP" ] && SLOW=10 # valgrind: everything takes longer

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
		"\"math\":{\"pathway_distance\":$((s / 10)),\"pathway_distance_se\":$((s / 100)),\"pathway_consistency\":0.$((s / 100)),\"loss\":$((1000 - s))}," \
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
is "$(awk 'length > 80' "$TMP/help")" "" "--help: no line over 80 columns"
# Each command's --help: exit 0, its options, nothing over 80 columns.
for c in "tail --all --json --topic --count" "status --json" \
	"history --metric --group --from --to --csv --json" \
	"plot --metric --group --from --to --width --height --ascii --no-band --beside" "alerts --json --follow"; do
	set -- $c
	cmd=$1
	shift
	cli $cmd --help >"$TMP/help.$cmd" 2>&1; is $? 0 "$cmd --help: exit 0"
	cli $cmd -h >"$TMP/h.$cmd" 2>&1
	cmp -s "$TMP/help.$cmd" "$TMP/h.$cmd"; ok $? "$cmd -h: the same text"
	has "$(head -1 "$TMP/help.$cmd")" "usage: grokwatch [OPTIONS] $cmd" "$cmd --help: its usage"
	missing=
	for o in "$@" --help; do
		grep -Eq -- "^  (-[a-z], )?$o( |\$)" "$TMP/help.$cmd" || missing="$missing $o"
	done
	is "$missing" "" "$cmd --help: describes each of its options"
	has "$(cat "$TMP/help.$cmd")" "--server-key" "$cmd --help: names grokwatch's own options"
	is "$(awk 'length > 80' "$TMP/help.$cmd")" "" "$cmd --help: no line over 80 columns"
	missing=
	for o in $(grep -o -- '--[a-z][a-z0-9-]*' "$TMP/help.$cmd" | sort -u); do
		sed 's/\\-/-/g' "$GW_SRC/man/grokwatch.1" | grep -Eq -- "(^|[^a-z-])$o([^a-z0-9-]|\$)" ||
			missing="$missing $o"
	done
	is "$missing" "" "$cmd --help: every option it names is in grokwatch(1)"
done
# Unknown options, values where none is taken, missing values: exit 2, named.
cli status --bogus >/dev/null 2>"$TMP/err"; is $? 2 "status --bogus: exit 2"
has "$(cat "$TMP/err")" "status: unknown option '--bogus'" "status --bogus: named"
cli status --bogus=1 >/dev/null 2>"$TMP/err"; is $? 2 "status --bogus=1: exit 2"
has "$(cat "$TMP/err")" "status: unknown option '--bogus'" "status --bogus=1: named without its value"
cli alerts -x >/dev/null 2>"$TMP/err"; is $? 2 "alerts -x: exit 2"
has "$(cat "$TMP/err")" "alerts: unknown option '-x'" "alerts -x: named"
cli --json status >/dev/null 2>"$TMP/err"; is $? 2 "--json before the command: exit 2"
has "$(cat "$TMP/err")" "option '--json' before the command, or unknown" "--json before the command: named"
for c in "status --json=yes" "alerts --follow=1" "tail --all=1" "plot --metric m --ascii=no"; do
	cli $c >/dev/null 2>"$TMP/err"; is $? 2 "$c: exit 2"
	o=${c##* }
	has "$(cat "$TMP/err")" "option '${o%%=*}' takes no value" "$c: named"
done
for c in "tail --count" "tail --topic" "history --metric" "history --metric m --group" \
	"history --metric m --from" "history --metric m --to" "plot --metric m --width" \
	"plot --metric m --height" "status --timeout" "status --server-key" "status --endpoint" \
	"status -e" "--timeout"; do
	cli $c >/dev/null 2>"$TMP/err"; is $? 2 "$c (no value): exit 2"
	has "$(cat "$TMP/err")" "option '${c##* }' needs a value" "$c (no value): named"
done
cli tail --count=0 >/dev/null 2>"$TMP/err"; is $? 2 "tail --count=0: exit 2"
has "$(cat "$TMP/err")" "--count '0'" "tail --count=0: the option and value named"
cli --timeout=12x status >/dev/null 2>"$TMP/err"; is $? 2 "--timeout=12x: exit 2"
has "$(cat "$TMP/err")" "--timeout '12x'" "--timeout=12x: the option and value named"
cli history --metric=m --csv --json >/dev/null 2>&1; is $? 2 "--metric=m --csv --json: exit 2"
cli plot --metric=m --width=10 >/dev/null 2>&1; is $? 2 "--width=10: exit 2"
cli history --metric=m --from=5 --to=4 >/dev/null 2>&1; is $? 2 "--from=5 --to=4: exit 2"
cli history --metric=m --group=a --group=b >/dev/null 2>"$TMP/err"; is $? 2 "history, two --group: exit 2"
has "$(cat "$TMP/err")" "history: one --group" "history, two --group: said so"
cli status extra >/dev/null 2>"$TMP/err"; is $? 2 "an argument after the command: exit 2"
has "$(cat "$TMP/err")" "unexpected argument 'extra'" "the argument is named"

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
has "$(cat "$TMP/tail.topic")" "RESOLVED  LossPlateau  group code  metric loss  since 2026-11-30T06:00:00Z  until 2026-11-30T07:10:00Z  code: loss moving again" \
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
axis = [l for l in lines if "\u2514" in l]
legend = " ".join(lines[lines.index(axis[0]) + 3:])
for g in ("math", "code", "all"):
    assert g in legend, legend
assert "\u00b11 standard error" in legend, legend
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

# --- plot: the band of pathway_distance_se (math: 10 +- 1 .. 70 +- 7)
LC_ALL=C.UTF-8 cli -e "$EP1" plot --metric pathway_distance --group math --width 60 >"$TMP/band" 2>&1
is $? 0 "plot with a standard error: exit 0"
LC_ALL=C.UTF-8 cli -e "$EP1" plot --metric pathway_distance --group math --width 60 --no-band \
	>"$TMP/noband" 2>&1
is $? 0 "plot --no-band: exit 0"
LC_ALL=C cli -e "$EP1" plot --metric pathway_distance --group math --width 60 >"$TMP/banda" 2>&1
"$PY" - "$TMP/band" "$TMP/noband" "$TMP/banda" <<'PYEOF'
import sys
band, noband, banda = (open(p, encoding="utf-8").read() for p in sys.argv[1:4])
def ylabels(text, tick):
    return [float(l.split(tick)[0]) for l in text.splitlines() if tick in l]
# the band widens the range to 70 + 7 and 10 - 1
assert ylabels(band, "\u2524")[0] == 77 and ylabels(band, "\u2524")[-1] == 9, ylabels(band, "\u2524")
assert "\u00b7" in band and "\u00b11 standard error" in band
assert ylabels(noband, "\u2524")[0] == 70 and ylabels(noband, "\u2524")[-1] == 10
assert "\u00b7" not in noband and "standard error" not in noband
rows = [l for l in banda.splitlines() if "|" in l or "+" in l.split()[0:1]]
assert ":" in "".join(l.split("|", 1)[-1] for l in banda.splitlines()[1:-4]), banda
assert "+-1 standard error" in banda and max(banda.encode()) < 128
# around each point the shade lies above and below the line: at the last
# column (step 700: 70 +- 7) the top rows are shaded, not empty
PYEOF
ok $? "plot: a band of one standard error, under the line, in the legend; none with --no-band"

# --- plot --beside: a history CSV drawn beside the chart (or below it)
cat >"$TMP/acc.csv" <<'EOF2'
run,group,metric,step,value
demo,math,heldout_accuracy,100,0.1
demo,math,heldout_accuracy,300,0.5
"demo","math","heldout_accuracy",700,0.9
demo,code,heldout_accuracy,100,0.05
demo,code,heldout_accuracy,400,
demo,code,heldout_accuracy,700,0.25
EOF2
LC_ALL=C.UTF-8 cli -e "$EP1" plot --metric pathway_distance --group math --width 100 \
	--beside "$TMP/acc.csv" >"$TMP/side" 2>&1
is $? 0 "plot --beside: exit 0"
LC_ALL=C.UTF-8 cli -e "$EP1" plot --metric pathway_distance --group math --width 50 \
	--beside "$TMP/acc.csv" >"$TMP/below" 2>&1
is $? 0 "plot --beside, narrow: exit 0"
"$PY" - "$TMP/side" "$TMP/below" <<'PYEOF'
import sys
side, below = (open(p, encoding="utf-8").read().splitlines() for p in sys.argv[1:3])
assert max(len(l) for l in side) <= 100, [len(l) for l in side]
assert side[0].startswith("pathway_distance") and "heldout_accuracy" in side[0][49:], side[0]
assert sum("\u2514" in l for l in side) == 1 and side[[("\u2514" in l) for l in side].index(True)].count("\u2514") == 2
legend = " ".join(side[-3:])
assert "math" in legend and "code" in legend, legend
# the right chart's y range is the accuracies'
right = [l[51:] for l in side if "\u2524" in l[51:]]
assert float(right[0].split("\u2524")[0]) == 0.9 and float(right[-1].split("\u2524")[0]) == 0.05, right
assert max(len(l) for l in below) <= 50
titles = [l for l in below if l.startswith("pathway_distance") or l.startswith("heldout_accuracy")]
assert len(titles) == 2, titles
PYEOF
ok $? "plot --beside: side by side at 100 columns, one below the other at 50"
LC_ALL=C.UTF-8 cli -e "$EP1" plot --metric loss --width 80 --beside "$TMP/h2.csv" >"$TMP/side2" 2>&1
is $? 0 "plot --beside takes what history --csv wrote"
has "$(head -1 "$TMP/side2")" "loss" "history --csv read back: its metric in the title"
cli -e "$EP1" plot --metric loss --beside "$TMP/absent.csv" >"$TMP/err" 2>&1
is $? 1 "plot --beside a missing file: exit 1"
has "$(cat "$TMP/err")" "--beside \"$TMP/absent.csv\": No such file" "the missing file is named"
printf 'run,group,metric,step,value\nr,g,m,1,0.5\nr,g,m,x,0.5\n' >"$TMP/bad.csv"
cli -e "$EP1" plot --metric loss --beside "$TMP/bad.csv" >"$TMP/err" 2>&1
is $? 1 "plot --beside a bad file: exit 1"
has "$(cat "$TMP/err")" "\"$TMP/bad.csv\" line 3: step \"x\" is not an integer" "the line and the fault named"
printf 'step,value\n1,2\n' >"$TMP/bad2.csv"
cli -e "$EP1" plot --metric loss --beside "$TMP/bad2.csv" >"$TMP/err" 2>&1
has "$(cat "$TMP/err")" "line 1: 2 fields, expected 5" "another CSV's header refused"
printf 'run,group,metric,step,value\nr,g,m,5,1\nr,g,m,5,2\n' >"$TMP/bad3.csv"
cli -e "$EP1" plot --metric loss --beside "$TMP/bad3.csv" >"$TMP/err" 2>&1
has "$(cat "$TMP/err")" "line 3: step 5 of r/g/m after step 5: steps must increase" "a repeated step refused"
printf 'run,group,metric,step,value\n"r,g,m,5,1\n' >"$TMP/bad4.csv"
cli -e "$EP1" plot --metric loss --beside "$TMP/bad4.csv" >"$TMP/err" 2>&1
has "$(cat "$TMP/err")" "line 2: field 1: a quote that is never closed" "an open quote refused"
cli -e "$EP1" plot --metric loss --beside "$TMP" >"$TMP/err" 2>&1
has "$(cat "$TMP/err")" "not a regular file" "a directory refused"

# --- alerts: none held in the snapshot (this daemon does not send them yet)
cli -e "$EP1" alerts >"$TMP/alerts" 2>&1; is $? 0 "alerts: exit 0"
is "$(cat "$TMP/alerts")" "" "alerts: nothing held, nothing live"

# --- every option as --opt VALUE and as --opt=VALUE: the same output
same() { # NAME ARGS-WITH-SPACES ARGS-WITH-EQUALS (each one word, split here)
	cli $2 >"$TMP/sp" 2>&1; r1=$?
	cli $3 >"$TMP/eq" 2>&1; r2=$?
	is "$r1:$r2" "0:0" "$1: both forms exit 0"
	cmp -s "$TMP/sp" "$TMP/eq" && [ -s "$TMP/sp" ]; ok $? "$1: both forms print the same"
}
same "--timeout, --endpoint" "--timeout 2000 --endpoint $EP1 status" \
	"--timeout=2000 --endpoint=$EP1 status"
same "-e, global options after the command" "status -e $EP1 --timeout 2000" \
	"status -e$EP1 --timeout=2000"
same "tail --count --topic" "-e $EP1 tail --count 3 --topic metrics. --json" \
	"-e $EP1 tail --count=3 --topic=metrics. --json"
is "$(wc -l <"$TMP/eq")" 3 "tail --count=3: three lines"
same "tail --all --count" "-e $EP1 tail --all --count 2" "-e $EP1 tail --all --count=2"
same "history --metric --group --from --to" \
	"-e $EP1 history --metric pathway_distance --group math --from 200 --to 400" \
	"-e $EP1 history --metric=pathway_distance --group=math --from=200 --to=400"
is "$(grep -v '^#' "$TMP/eq" | awk '{print $1 "=" $2}' | tr '\n' ' ')" "200=20 300=30 400=40 " \
	"history --from=200 --to=400: the steps in range"
same "plot --metric --group --width --height" \
	"-e $EP1 plot --metric loss --group math --group all --width 40 --height 6 --ascii" \
	"-e $EP1 plot --metric=loss --group=math --group=all --width=40 --height=6 --ascii"
is "$(awk 'length > 40' "$TMP/eq")" "" "plot --width=40: no line over 40 columns"
is "$(wc -l <"$TMP/eq")" 11 "plot --height=6: title, 6 rows, axis, steps, label, legend"

# --- a reader that goes away: the next write ends the command, quietly, exit 0
{
	# Status lines (300 kB) that do not fit in a pipe, so head is gone first.
	"$PY" -c 'import json; print("status " + json.dumps({"k%05d" % i: "v" * 90 for i in range(3000)}))'
	echo 'result {"step":100,"checkpoint":"step100","groups":{"all":{"pathway_distance":1}}}'
	echo "waitfile $TMP/go3"
	echo 'result {"step":200,"checkpoint":"step200","groups":{"all":{"pathway_distance":2}}}'
	echo "waitfile $TMP/go4"
	echo 'result {"step":300,"checkpoint":"step300","groups":{"all":{"pathway_distance":3}}}'
} >"$TMP/s3"
start_testd d3 "$TMP/s3"
D3=$PID
EP3=$EP
{ cli -e "$EP3" status 2>"$TMP/pipe.err"; echo $? >"$TMP/pipe.rc"; } | head -1 >"$TMP/pipe.out"
is "$(cat "$TMP/pipe.rc")" 0 "status | head -1: exit 0"
is "$(cat "$TMP/pipe.err")" "" "status | head -1: nothing on stderr"
is "$(cat "$TMP/pipe.out")" "${EP3%,*}" "status | head -1: the first line"
{ cli -e "$EP3" status --json 2>"$TMP/pipe.err"; echo $? >"$TMP/pipe.rc"; } | head -c 10 >/dev/null
is "$(cat "$TMP/pipe.rc"):$(cat "$TMP/pipe.err")" "0:" "status --json | head -c 10: exit 0, quiet"
# tail: head takes the one catch-up line and exits; tail runs on until it
# writes the next result, and then ends at once.  (A named pipe, so that
# the test knows when head has gone.)
mkfifo "$TMP/fifo"
timeout $((20 * SLOW)) $GW_WRAP "$GW_CLI" -e "$EP3" tail >"$TMP/fifo" 2>"$TMP/pipe.err" &
TAIL=$!
head -n 1 <"$TMP/fifo" >"$TMP/pipe.out" &
HEAD=$!
wait $HEAD
has "$(cat "$TMP/pipe.out")" "step 100  all" "tail | head -n 1: the first line"
sleep 0.3
kill -0 $TAIL 2>/dev/null; ok $? "tail | head -n 1: tail waits for the next result"
start=$(date +%s%N)
touch "$TMP/go3"
wait $TAIL
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
is $rc 0 "tail | head -n 1: exit 0"
is "$(cat "$TMP/pipe.err")" "" "tail | head -n 1: nothing on stderr"
ok $([ $ms -lt $((3000 * SLOW)) ] && echo 0 || echo 1) \
	"tail | head -n 1: ended ${ms} ms after the next result was published"
# Another failure to write is an error, naming stdout, and ends tail too.
if [ -w /dev/full ]; then
	cli -e "$EP3" status >/dev/full 2>"$TMP/err"; is $? 1 "status >/dev/full: exit 1"
	has "$(cat "$TMP/err")" "stdout: No space left on device" "status >/dev/full: stdout named"
	timeout $((20 * SLOW)) $GW_WRAP "$GW_CLI" -e "$EP3" tail >/dev/full 2>"$TMP/err" &
	TAIL=$!
	touch "$TMP/go4"
	wait $TAIL; is $? 1 "tail >/dev/full: exit 1 at its first write"
	has "$(cat "$TMP/err")" "stdout: No space left on device" "tail >/dev/full: stdout named"
fi
kill $D3; wait $D3 2>/dev/null

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
	cli -e "$EPC" --server-key="$TMP/pub.key" history --metric pathway_distance --group math >"$TMP/out" 2>&1
	is $? 0 "--server-key=FILE: history over CURVE"
	has "$(cat "$TMP/out")" "100  10" "--server-key=FILE: the value"
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
