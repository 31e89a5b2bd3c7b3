#!/bin/sh
# bench_trace.sh — grokwatch.trace's figures (issue 14), in one run:
#
#  (a) the recorder's overhead against the same model's plain forward over
#      the same batches: the PyTorch reference model of the 4-layer OLMoE
#      bench model (hidden 512, 64 experts of 256, top-8, vocab 16384; 16
#      samples of 128 tokens in batches of 8) on one thread, plain forward
#      and forward with the hooks and the per-sample loss alternated (which
#      goes first alternates), median of 6 each in CPU seconds of the
#      process; the figure is the recorder's own work (hooks, records,
#      losses, timed where they run) over the plain forward, and the
#      difference of the two totals is shown beside it; target: at most 10%
#      on the CPU.
#  (b) the time to write a trace of 1,024 samples at OLMoE width: 16 layers,
#      64 experts, router.<l> [64, 2048], top-8, 512 tokens a sample (the
#      daemon's default probe.sample_length), per-token records included
#      (~470 MB) and left out, atomically with fsync, median of 3; the file
#      checked by `grokwatchd analyze` once.
# Prints a readable summary and JSON lines; exits 1 if a measurement could
# not be made (a missed target is reported, not failed).  No GPU is measured
# here: the GPU figures need a machine with one (README, Performance).
set -u
src=${GW_SRC:-.}
py=${PYTHON:-/usr/bin/python3}
. "$src/tests/bench/forward_lib.sh"
mkdir -p "$dir" || die "cannot create $dir"
bench_model "$dir/olmoe-4" 4
"$py" "$src/tests/bench/trace_bench.py" overhead "$dir/olmoe-4" "$dir/olmoe-4/probe.jsonl" \
	--reps 6 --batch 8 >"$tmp/over" 2>"$tmp/over.err" || die "overhead: $(tail -3 "$tmp/over.err")"
cat "$tmp/over"
mkdir -p "$tmp/w"
"$py" "$src/tests/bench/trace_bench.py" write "$tmp/w" --check-with "$gw" >"$tmp/write" \
	2>"$tmp/write.err" || { cat "$tmp/write"; die "write: $(tail -3 "$tmp/write.err")"; }
cat "$tmp/write"
over=$(json "$tmp/over" overhead)
echo "# recorder overhead $(calc "100 * $over")% (target <= 10%: $(verdict "$over <= 0.10"))"
