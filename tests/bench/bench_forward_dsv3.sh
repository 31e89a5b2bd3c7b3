#!/bin/sh
# bench_forward_dsv3.sh — the forward pass on a DeepSeek-V3-shaped model
# (issue 16), measured in one run on this machine so the ratio is the
# figure to quote:
#
#  (a) tokens/s of the whole `grokwatchd analyze` process on the 4-layer
#      model, median of 3, against ref_forward.py bench (PyTorch, batched
#      and padded as Hugging Face runs it, per-expert gather, no_grad, the
#      faster of 1 thread and every CPU), median of 3; target >= 2x.
#  (c) peak RSS of the analyze process at 4 and at 16 layers; memory holds
#      one layer's weights, so 16 layers should cost little more than 4.
#
# The models (gen_fixtures.py --bench --arch deepseek_v3: hidden 512, MLA
# with 8 heads, q_lora_rank 192, kv_lora_rank 128, qk 32 + 32, v 64; 64
# routed experts of 256 in 8 groups keeping 4, top-8, one shared expert, a
# dense first layer of 1024, YaRN; vocab 16384; BF16; 16 samples of 128
# tokens) are kept in $GW_BUILD/bench/.  Before timing, the engine's
# routing file for the 4-layer model is compared with the reference
# (`ref_forward.py compare`), so the figures are of a correct pass.
# Prints a readable summary and JSON lines ({"bench": ...}); exits 1 if a
# measurement could not be made or the pass is wrong (a missed target is
# reported, not failed).
set -u
src=${GW_SRC:-.}
py=${PYTHON:-/usr/bin/python3}
. "$src/tests/bench/forward_lib.sh"
[ -x "$gw" ] || die "$gw is not built"
mkdir -p "$dir" || die "cannot create $dir"
for n in 4 16; do
	bench_model "$dir/dsv3-$n" "$n" deepseek_v3
done
m4="$dir/dsv3-4"
m16="$dir/dsv3-16"
probe="$m4/probe.jsonl"
tokens=$("$py" -c 'import json,sys; print(sum(len(json.loads(l)["tokens"]) for l in open(sys.argv[1]) if l.strip()))' "$probe")

# ---- correctness first
"$gw" analyze "$m4" --probe "$probe" --dump-routing "$tmp/r.st" >/dev/null 2>"$tmp/dump.err" ||
	die "analyze --dump-routing failed: $(cat "$tmp/dump.err")"
"$py" "$src/tests/reference/ref_forward.py" compare "$m4" "$probe" "$tmp/r.st" >"$tmp/cmp" 2>&1 ||
	{ cat "$tmp/cmp"; die "the engine's pass differs from the reference"; }
sed -n '1p' "$tmp/cmp"

# ---- (a) whole-process tokens/s
walls=""
for i in $(seq $reps); do
	timed "$tmp/a$i" "$gw" analyze "$m4" --probe "$probe" ||
		die "analyze run $i failed: $(cat "$tmp/a$i.err")"
	walls="$walls $(cut -d' ' -f1 "$tmp/a$i.time")"
done
wall=$(median $walls)
ours=$(calc "$tokens / $wall")
torch_bench "$m4" "$probe" "$reps"
speed=$(calc "$ours / $torch")
speedl=$(calc "$ours / $torchl")

# ---- (c) peak RSS at 4 and 16 layers
timed "$tmp/r4" "$gw" analyze "$m4" --probe "$probe" || die "RSS run (4 layers) failed"
timed "$tmp/r16" "$gw" analyze "$m16" --probe "$probe" || die "RSS run (16 layers) failed"
rss4=$(cut -d' ' -f2 "$tmp/r4.time")
rss16=$(cut -d' ' -f2 "$tmp/r16.time")
rssr=$(calc "$rss16 / $rss4")

echo
echo "forward pass, DeepSeek-V3-shaped bench model ($tokens tokens, $(nproc) cores," \
	"load $(cut -d' ' -f1 /proc/loadavg)):"
echo "  (a) analyze, whole process: $ours tokens/s (median wall ${wall}s of $reps);"
echo "      PyTorch reference: $torch tokens/s forward only, $torchl with loading"
echo "      speed-up ${speed}x over forward only, ${speedl}x with loading" \
	"(target >= 2x: $(verdict "$speed >= 2"))"
echo "  (c) peak RSS analyze: 4 layers $rss4 KB, 16 layers $rss16 KB, ratio $rssr" \
	"(target <= 1.3: $(verdict "$rssr <= 1.3"))"
echo "{\"bench\": \"forward_dsv3_tokens_per_sec\", \"tokens\": $tokens, \"ours\": $ours," \
	"\"torch_forward\": $torch, \"torch_with_load\": $torchl, \"speedup\": $speed," \
	"\"speedup_with_load\": $speedl, \"target\": 2}"
echo "{\"bench\": \"forward_dsv3_peak_rss\", \"rss4_kb\": $rss4, \"rss16_kb\": $rss16," \
	"\"ratio\": $rssr, \"target\": 1.3}"
