#!/bin/sh
# bench_daemon.sh — the daemon's latency, idle CPU and idle RSS
# (tests/bench/daemon_bench.py says how each is measured).
src=${GW_SRC:-.}
exec "${PYTHON:-/usr/bin/python3}" "$src/tests/bench/daemon_bench.py"
