#!/bin/sh
# run.sh — `make bench`: run every benchmark binary given as an argument and
# every tests/bench/bench_*.sh script, one after another (never in parallel:
# they measure this machine).  Each prints a readable summary and JSON lines
# ("{"bench": ...}"); all output is also kept in build/bench.log.
# Benchmarks compare against their peer in the same run, because the
# machine is shared and noisy: the ratio is the figure to quote.
set -u
src=${GW_SRC:-.}
log="$src/build/bench.log"
mkdir -p "$src/build"
: >"$log"
status=0
echo "# machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$log"
for b in "$@" "$src"/tests/bench/bench_*.sh; do
	[ -e "$b" ] || continue
	echo "# ---- $b" | tee -a "$log"
	rcf=$(mktemp)
	{
		case "$b" in
		*.sh) sh "$b" ;;
		*) "$b" ;;
		esac
		echo $? >"$rcf"
	} 2>&1 | tee -a "$log"
	[ "$(cat "$rcf")" = 0 ] || { status=1; echo "# $b failed" | tee -a "$log"; }
	rm -f "$rcf"
done
echo "# results kept in $log"
exit $status
