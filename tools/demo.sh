#!/bin/sh
# demo.sh — `make demo`: generate a short training run's worth of tiny OLMoE
# checkpoints (tools/demo_series.py) in a temporary directory, and have
# grokwatchd compute the routing metrics of every one of them, printing
# per step and group the loss, pathway distance and consistency.  Cleans up
# after itself.
set -eu
src=${GW_SRC:-.}
bin=${GW_BIN:-$src/build/default/grokwatchd}
py=${PYTHON:-/usr/bin/python3}
dir=$(mktemp -d "${TMPDIR:-/tmp}/grokwatch-demo.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

echo "demo: writing 6 checkpoints of a tiny OLMoE model (steps 1000..6000) to $dir"
"$py" "$src/tools/demo_series.py" "$dir" 6
echo "demo: grokwatchd analyze --probe probe.jsonl step1000 ... step6000"
echo
"$bin" analyze --probe "$dir/probe.jsonl" "$dir"/step*
echo
echo "demo: the routers became structured over the run: each group's pathway distance fell"
echo "demo: and then levelled off, the signal grokwatch watches for.  Done."
