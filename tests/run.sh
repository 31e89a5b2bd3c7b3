#!/bin/sh
# run.sh — run test programs, pass their TAP through, count the results.
#
# usage: tests/run.sh [-t SECONDS] [-w] PROGRAM...
#
# A PROGRAM is a unit-test binary, a .sh script (run with sh) or a .py
# script (run with $PYTHON).  Each runs under `timeout`; its "ok" and
# "not ok" lines are counted, and a program that exits non-zero without
# reporting a failure, or reports nothing, counts as one failure.  With -w,
# binaries run under $GW_WRAP (valgrind for `make memcheck`); scripts see
# GW_WRAP in their environment and wrap the programs they start.
# The last line is "N passed, N failed"; the exit status is 1 on any failure.
set -u
timeout=900
wrap=""
while [ $# -gt 0 ]; do
	case "$1" in
	-t) timeout=$2; shift 2 ;;
	-w) wrap=${GW_WRAP:-}; shift ;;
	*) break ;;
	esac
done
[ -n "$wrap" ] || GW_WRAP=""
export GW_WRAP

passed=0
failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT INT TERM

for prog in "$@"; do
	echo "# ---- $prog"
	case "$prog" in
	*.sh) set -- sh "$prog" ;;
	*.py) set -- "${PYTHON:-/usr/bin/python3}" "$prog" ;;
	*) set -- $wrap "$prog" ;;
	esac
	timeout -k 10 "$timeout" "$@" >"$out" 2>&1
	rc=$?
	cat "$out"
	p=$(grep -c '^ok' "$out")
	f=$(grep -c '^not ok' "$out")
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		if [ "$rc" -eq 124 ]; then
			echo "not ok - $prog timed out after ${timeout}s"
		else
			echo "not ok - $prog exited with status $rc"
		fi
		f=1
	elif [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $prog reported no test"
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
