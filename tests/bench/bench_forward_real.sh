#!/bin/sh
# bench_forward_real.sh — the forward pass at OLMoE-1B-7B's true width
# (issue 20, item 3): hidden 2048, 16 heads, 64 experts of 1024, top-8,
# vocab 50304, QK-norm, BF16, with 2 layers, over 64 samples of 512 tokens
# (32,768 tokens).  The weights are random (gen_fixtures.py --bench --arch
# olmoe_1b7b, 2.1 GB, kept in $GW_BUILD/bench/; nothing is downloaded).
#
# Measured, median of $reps runs of the engine driver `bench_sgemm forward`
# (a whole process; its stats split the time by phase), with the machine's
# load before and after:
#   - seconds per decoder layer (attention + MoE block, each including the
#     reading and conversion of its weights), the head with the loss, and
#     the whole pass;
#   - GFLOP/s: the pass's matrix-product FLOPs over its whole time, and
#     inside sgemm; against `bench_sgemm peak 2048` in the same run;
#   - peak RSS of the process.
# Projected from those figures (printed as projections, never measured):
#   - a checkpoint of the real model (16 layers) over 256 samples of 512
#     tokens on this machine: every phase scales linearly with the number
#     of samples (attention is within a sample, so its cost per sample does
#     not change; the experts' and the head's products grow with the
#     tokens), and the per-layer time with the number of layers: 16 layers
#     x 4 x (seconds per layer) + 4 x (head) + 4 x (embeddings).  The
#     weights' reading does not grow with the tokens, so this over-states
#     the time by at most 3 x the measured loading;
#   - the same checkpoint on a 16-core and a 64-core node: this machine's
#     core-seconds (projected seconds x its cores) divided by the node's
#     cores, i.e. the same speed per core and perfect scaling, which a real
#     node gives only approximately (memory bandwidth per core, OpenBLAS's
#     scaling); stated as such.
# Prints a readable summary and one JSON line {"bench": "forward_real", ...}.
set -u
src=${GW_SRC:-.}
py=${PYTHON:-/usr/bin/python3}
. "$src/tests/bench/forward_lib.sh"
sg="$build/tests/bench/bench_sgemm"
[ -x "$sg" ] || die "$sg is not built (make bench builds it)"
mkdir -p "$dir" || die "cannot create $dir"
model="$dir/olmoe-1b7b-2"
layers=2
bench_model "$model" "$layers" olmoe_1b7b
probe="$model/probe.jsonl"
load0=$(cut -d' ' -f1-3 /proc/loadavg)

"$sg" peak 2048 >"$tmp/peak" || die "bench_sgemm peak failed"
peak=$(json "$tmp/peak" gflops_best)
totals="" layer="" head="" embed="" load="" flop="" gsec="" rss=""
for i in $(seq $reps); do
	timed "$tmp/f$i" "$sg" forward "$model" "$probe" || die "bench_sgemm forward failed: $(cat "$tmp/f$i.err")"
	totals="$totals $(json "$tmp/f$i" total_sec)"
	layer="$layer $(calc "($(json "$tmp/f$i" attn_sec) + $(json "$tmp/f$i" ffn_sec)) / $layers")"
	head="$head $(json "$tmp/f$i" head_sec)"
	embed="$embed $(json "$tmp/f$i" embed_sec)"
	load="$load $(json "$tmp/f$i" load_sec)"
	gsec="$gsec $(json "$tmp/f$i" gemm_sec)"
	rss="$rss $(cut -d' ' -f2 "$tmp/f$i.time")"
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
flop=$(json "$tmp/f1" gemm_gflop)
tokens=$(json "$tmp/f1" tokens)
total=$(median $totals)
layer=$(median $layer)
head=$(median $head)
embed=$(median $embed)
load=$(median $load)
gsec=$(median $gsec)
rss=$(median $rss)
gflops=$(calc "$flop / $total")
gflops_in=$(calc "$flop / $gsec")
cores=$(nproc)
proj=$(calc "16 * 4 * $layer + 4 * $head + 4 * $embed")
coresec=$(calc "$proj * $cores")

echo "forward pass at OLMoE-1B-7B width, $layers layers, $tokens tokens (64 x 512), $cores cores," \
	"load $load0 -> $load1 (median of $reps):"
echo "  measured: $total s the pass; $layer s per layer; head and loss $head s;" \
	"weights read and converted $load s in all"
echo "  measured: $flop GFLOP of matrix products: $gflops GFLOP/s over the whole pass," \
	"$gflops_in inside sgemm; cblas_sgemm peak $peak GFLOP/s;" \
	"peak RSS $rss KB"
echo "  PROJECTED (not measured): 16 layers over 256 x 512 tokens on this machine $proj s" \
	"($coresec core-seconds); on a 16-core node $(calc "$coresec / 16") s," \
	"on a 64-core node $(calc "$coresec / 64") s (same speed per core, perfect scaling)"
echo "{\"bench\": \"forward_real\", \"layers\": $layers, \"tokens\": $tokens, \"cores\": $cores," \
	"\"reps\": $reps, \"total_sec\": $total, \"layer_sec\": $layer, \"head_sec\": $head," \
	"\"embed_sec\": $embed, \"load_sec\": $load, \"gemm_gflop\": $flop," \
	"\"gflops\": $gflops, \"gflops_in_sgemm\": $gflops_in, \"peak_gflops\": $peak," \
	"\"maxrss_kb\": $rss, \"projected_16l_256x512_sec\": $proj," \
	"\"projected_core_sec\": $coresec, \"projected_16core_sec\": $(calc "$coresec / 16")," \
	"\"projected_64core_sec\": $(calc "$coresec / 64"), \"load_before\": \"$load0\"," \
	"\"load_after\": \"$load1\"}"
