#!/bin/sh
# bench_serve.sh — grokwatch serve: page load to fully drawn, CPU and RSS
# with 50 live pages, bytes per new result (tests/bench/serve_bench.py says
# how each is measured).
src=${GW_SRC:-.}
exec "${PYTHON:-/usr/bin/python3}" "$src/tests/bench/serve_bench.py"
