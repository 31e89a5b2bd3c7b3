#!/bin/sh
# bench_history.sh — the daemon over a long history: compute and RSS per
# checkpoint up to 3,000 results, and a herd of 200 snapshots at 1,000
# (tests/bench/history_bench.py says how each is measured).
src=${GW_SRC:-.}
exec "${PYTHON:-/usr/bin/python3}" "$src/tests/bench/history_bench.py"
