#!/bin/sh
# test_config_docs.sh — the shipped config/grokwatchd.json, the README's key
# table and grokwatchd.json(5)'s KEYS section are what the daemon's config
# table generates (`grokwatchd config --dump json|markdown|man`, put in place
# by `make docs`).  tools/config_docs.py --check holds them equal; the test
# also shows that it fails on a copy of the tree where each file is changed
# in one line, and that the dumps themselves behave (usage, a JSON the
# daemon's own reader accepts with every key at its default).
. "$GW_SRC/tests/lib.sh"
gw() { $GW_WRAP "$GW_BIN" "$@"; }
docs() { "$PYTHON" "$GW_SRC/tools/config_docs.py" "$@"; }

# --- the three files are what the table generates
docs --check "$GW_BIN" "$GW_SRC" >"$TMP/out" 2>&1
ok $? "the shipped config, README table and man page KEYS equal the table's dumps"
[ -s "$TMP/out" ] && sed 's/^/# /' "$TMP/out"

# --- each dump on its own (under GW_WRAP for make memcheck)
for f in json markdown man; do
	gw config --dump "$f" >"$TMP/dump.$f"; is $? 0 "config --dump $f: exit 0"
done
cmp -s "$TMP/dump.json" "$GW_SRC/config/grokwatchd.json"; ok $? "--dump json is the shipped file"
grep -qxF "$(sed -n 4p "$TMP/dump.markdown")" "$GW_SRC/README.md"
ok $? "--dump markdown's first row is in the README"
"$PYTHON" -c '
import json, sys
def walk(o, p=""):
    for k, v in o.items():
        if isinstance(v, dict): walk(v, p + k + ".")
        else: print(p + k)
walk(json.load(open(sys.argv[1])))' "$TMP/dump.json" >"$TMP/keys"
awk 'prev == ".TP" && $0 !~ /^\.B / { bad = 1 } { prev = $0 } END { exit bad }' "$TMP/dump.man"
ok $? "--dump man: every .TP entry starts with its .B path line"
is "$(grep -c '^\.TP$' "$TMP/dump.man")" \
	"$(( $(wc -l <"$TMP/keys") + $(grep -c '^\.B [a-z_.]*\[\]\.' "$TMP/dump.man") ))" \
	"--dump man: an entry per key of --dump json and per object-array field"
is "$(wc -l <"$TMP/keys" | tr -d ' ')" "$(grep -c '^| `' "$TMP/dump.markdown")" \
	"--dump json and --dump markdown list the same number of keys"
"$PYTHON" - "$TMP/dump.json" "$TMP" >"$TMP/full.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["watch"]["root"] = sys.argv[2]
json.dump(c, sys.stdout)
PY
gw run --check -c "$TMP/full.json" >/dev/null 2>"$TMP/err"
ok $? "the daemon accepts --dump json (with watch.root set)"

# --- usage
gw config >/dev/null 2>&1; is $? 2 "config without --dump: exit 2"
gw config --dump yaml >/dev/null 2>"$TMP/err"; is $? 2 "config --dump yaml: exit 2"
has "$(cat "$TMP/err")" "--dump takes json, markdown or man, not 'yaml'" "bad format named"
gw config --help >"$TMP/help"; is $? 0 "config --help: exit 0"
has "$(cat "$TMP/help")" "usage: grokwatchd config --dump json|markdown|man" "--help shows usage"
gw --help | grep -q '^  config '; ok $? "grokwatchd --help lists config"

# --- the check fails on each file changed by one line, and --write mends it
mkdir -p "$TMP/src/config" "$TMP/src/man"
cp "$GW_SRC/config/grokwatchd.json" "$TMP/src/config/"
cp "$GW_SRC/README.md" "$TMP/src/"
cp "$GW_SRC/man/grokwatchd.json.5" "$TMP/src/man/"
docs --check "$GW_BIN" "$TMP/src" >/dev/null 2>&1; ok $? "the copy checks clean"
sed -i 's/"quiet_period_ms": 5000/"quiet_period_ms": 5001/' "$TMP/src/config/grokwatchd.json"
sed -i 's/^| `watch.quiet_period_ms` | `5000` | yes |/| `watch.quiet_period_ms` | `5000` |  |/' \
	"$TMP/src/README.md"
sed -i 's/^Nothing under a checkpoint may change for this long before it is read\.$/Hand-edited./' \
	"$TMP/src/man/grokwatchd.json.5"
docs --check "$GW_BIN" "$TMP/src" >"$TMP/out" 2>&1; is $? 1 "a changed copy fails the check"
for f in config/grokwatchd.json README.md man/grokwatchd.json.5; do
	has "$(cat "$TMP/out")" "$f differs from" "the check names $f"
done
docs --write "$GW_BIN" "$TMP/src" >/dev/null 2>&1; ok $? "--write puts the generated text back"
docs --check "$GW_BIN" "$TMP/src" >/dev/null 2>&1; ok $? "and then the copy checks clean"
cmp -s "$TMP/src/README.md" "$GW_SRC/README.md"; ok $? "--write leaves the README's other text alone"
done_testing
