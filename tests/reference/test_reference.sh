#!/bin/sh
# test_reference.sh — the C engine against the independent PyTorch reference
# (ref_forward.py) on every fixture checkpoint of $GW_FIXTURES/manifest.json:
# for each, `grokwatchd analyze CKPT --probe PROBE --dump-routing OUT` writes
# the routing file; then one `ref_forward.py compare CKPT PROBE OUT ...` run
# (torch is imported once) recomputes every pass in PyTorch and requires
# gbar within 1e-5 absolute, the loss within 1e-5 relative and the same
# top-k sets wherever the k-th and (k+1)-th probabilities differ by more
# than 1e-5.  Its per-checkpoint verdicts and error figures are shown.
#
# GW_REF_DUMP, if set, is a command run as `$GW_REF_DUMP CKPT PROBE OUT`
# instead of analyze (for trying the engine through another driver).
. "${GW_SRC:-.}/tests/lib.sh"
src=${GW_SRC:-.}
py=${PYTHON:-/usr/bin/python3}
fx=${GW_FIXTURES:?GW_FIXTURES is not set}
probe="$fx/probe/probe.jsonl"

names=$("$py" -c 'import json,sys
for c in json.load(open(sys.argv[1]))["checkpoints"]: print(c["name"])' "$fx/manifest.json")
ok $? "manifest lists the fixture checkpoints"
[ "$(echo "$names" | wc -w)" -ge 13 ]
ok $? "manifest has every fixture checkpoint ($(echo $names))"

triples=""
for n in $names; do
	out="$TMP/$n.routing.safetensors"
	if [ -n "${GW_REF_DUMP:-}" ]; then
		$GW_REF_DUMP "$fx/$n" "$probe" "$out" >"$TMP/$n.dump.log" 2>&1
	else
		$GW_WRAP "$GW_BIN" analyze "$fx/$n" --probe "$probe" --dump-routing "$out" \
			>"$TMP/$n.dump.log" 2>&1
	fi
	st=$?
	ok $st "$n: engine writes the routing file"
	if [ $st -eq 0 ]; then
		triples="$triples $fx/$n $probe $out"
	else
		sed 's/^/#   /' "$TMP/$n.dump.log"
	fi
done

cmp="$TMP/compare.log"
# shellcheck disable=SC2086
[ -n "$triples" ] && "$py" "$src/tests/reference/ref_forward.py" compare $triples >"$cmp" 2>&1
sed 's/^/# /' "$cmp" 2>/dev/null
for n in $names; do
	grep -q "^ok - $n " "$cmp" 2>/dev/null
	ok $? "$n: gbar, loss and top-k match the PyTorch reference"
done
done_testing
