#!/bin/sh
# test_readme.sh — the README documents every config key the daemon has
# (the shipped config/grokwatchd.json, which test_config holds to the key
# table, lists them all), and its quick start names the two commands.
. "$GW_SRC/tests/lib.sh"
readme="$GW_SRC/README.md"
keys=$("$PYTHON" -c '
import json, sys
def walk(o, p=""):
    for k, v in o.items():
        if isinstance(v, dict):
            walk(v, p + k + ".")
        else:
            print(p + k)
walk(json.load(open(sys.argv[1])))' "$GW_SRC/config/grokwatchd.json")
n=0
missing=""
for k in $keys; do
	n=$((n + 1))
	grep -q "^| \`$k\` |" "$readme" || missing="$missing $k"
done
[ "$n" -gt 30 ]; ok $? "the shipped config has $n keys"
is "$missing" "" "every config key has a row in the README's table"
grep -q '^make demo' "$readme"; ok $? "quick start: make demo"
grep -q '^make check' "$readme"; ok $? "quick start: make check"
done_testing
