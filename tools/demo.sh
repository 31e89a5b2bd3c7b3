#!/bin/sh
# demo.sh — `make demo`: grokwatchd watching a short, generated training run
# (tools/demo_watch.py), printing each metrics message as a subscriber
# receives it, then stopping by itself.  Cleans up after itself.
set -eu
src=${GW_SRC:-.}
py=${PYTHON:-/usr/bin/python3}
dir=$(mktemp -d "${TMPDIR:-/tmp}/grokwatch-demo.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM
"$py" "$src/tools/demo_watch.py" "$dir"
