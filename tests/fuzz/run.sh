#!/bin/sh
# run.sh — run every libFuzzer target for $GW_FUZZ_SECONDS seconds over its
# committed seed corpus (tests/fuzz/corpus/NAME), as TAP: one test a target.
# New inputs go to a scratch copy; a crash leaves its input in build/fuzz/.
set -u
src=${GW_SRC:-.}
secs=${GW_FUZZ_SECONDS:-15}
n=0
failed=0
for bin in "$src"/build/fuzz/fuzz_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	n=$((n + 1))
	work=$(mktemp -d)
	log="$src/build/fuzz/$name.log"
	if "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
		-artifact_prefix="$src/build/fuzz/$name-" -print_final_stats=1 \
		"$work" "$src/tests/fuzz/corpus/$name" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		echo "ok $n - $name: ${runs:-?} executions in ${secs}s, no finding"
	else
		echo "not ok $n - $name: finding (log $log)"
		tail -n 30 "$log" | sed 's/^/# /'
		failed=$((failed + 1))
	fi
	rm -rf "$work"
done
echo "1..$n"
[ "$failed" -eq 0 ]
