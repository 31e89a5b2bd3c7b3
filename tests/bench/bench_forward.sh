#!/bin/sh
# bench_forward.sh — the forward pass's three performance figures (issue 3),
# measured in one run on this machine so the ratios are the figures to quote:
#
#  (a) tokens/s of the whole `grokwatchd analyze` process on the 4-layer
#      bench model, median of 3, against ref_forward.py bench (PyTorch,
#      batched and padded as Hugging Face runs it, per-expert gather,
#      no_grad, all cores), median of 3; target >= 3x.
#  (b) GFLOP/s achieved inside the engine's products (forward_stats: sgemm,
#      and the AMX products where they run;
#      through `bench_sgemm forward`, median of 3) against cblas_sgemm's own
#      peak on a 2048^3 product (`bench_sgemm peak`, best of 5); target >= 60%.
#  (c) peak RSS of the analyze process at 4 and at 16 layers; target
#      16-layer <= 1.3 x 4-layer, since memory holds one layer.
#  (d) the whole process's wall time against the time its matrix products
#      take at sgemm's peak (their FLOPs / the peak): the fraction of that
#      limit reached end to end; target >= 70% (issue 20).
# On a CPU with AMX-BF16 the engine multiplies BF16 weights on its tiles
# (engine/amx.h) and can pass sgemm's peak; each round then also times
# analyze with GROKWATCH_AMX=0 (all products on sgemm), and (a) and (d)
# are given for that path as well.
# The machine is shared, so (a) and (d) run in rounds: each round measures
# the sgemm peak, our process and the reference one after the other, the
# ratios are taken within the round, and the median ratio is quoted, with
# the load at each round's start.
#
# The bench models (OLMoE-shaped, hidden 512, 64 experts of 256, top-8,
# vocab 16384, BF16; 16 samples of 128 tokens) come from
# gen_fixtures.py --bench and are kept in $GW_BUILD/bench/.
# Where `grokwatchd analyze` fails, (a) and (c) fall back to the engine
# driver `bench_sgemm forward` (a whole process too) and say so.
# Prints a readable summary and JSON lines ({"bench": ...}); exits 1 if a
# measurement could not be made (a missed target is reported, not failed).
set -u
src=${GW_SRC:-.}
py=${PYTHON:-/usr/bin/python3}
. "$src/tests/bench/forward_lib.sh"
sg="$build/tests/bench/bench_sgemm"
[ -x "$sg" ] || die "$sg is not built (make bench builds it)"
mkdir -p "$dir" || die "cannot create $dir"

for n in 4 16; do
	bench_model "$dir/olmoe-$n" "$n"
done
m4="$dir/olmoe-4"
m16="$dir/olmoe-16"
probe="$m4/probe.jsonl"

# ---- (b) the engine's achieved rate inside sgemm, and its FLOPs
engs=""
for i in $(seq $reps); do
	"$sg" forward "$m4" "$probe" >"$tmp/fwd$i" || die "bench_sgemm forward failed"
	engs="$engs $(json "$tmp/fwd$i" gemm_gflops)"
done
cat "$tmp/fwd1"
eng=$(median $engs)
tokens=$(json "$tmp/fwd1" tokens)
gflop=$(json "$tmp/fwd1" gemm_gflop)

# ---- (a) whole-process tokens/s: analyze, or the engine driver, against
# the PyTorch reference, and (d) the whole process against the time its
# matrix products take at sgemm's peak.  The machine is shared: each round
# measures the peak, ours and the reference one after the other, and the
# ratios are taken within a round, then their median.
mode=analyze
if ! timed "$tmp/an" "$gw" analyze "$m4" --probe "$probe"; then
	echo "# grokwatchd analyze failed ($(head -c 200 "$tmp/an.err")); using bench_sgemm forward"
	mode=driver
fi
runner() {
	if [ "$mode" = analyze ]; then
		timed "$1" "$gw" analyze "$2" --probe "$probe"
	else
		timed "$1" "$sg" forward "$2" "$probe"
	fi
}
amx=0
grep -qw amx_bf16 /proc/cpuinfo 2>/dev/null && [ "$mode" = analyze ] && amx=1
walls="" peaks="" torchs="" torchls="" speeds="" speedls="" limfs="" fracs="" loads=""
walls0="" speeds0="" fracs0=""
for i in $(seq $reps); do
	loads="$loads [$(cut -d' ' -f1 /proc/loadavg)]"
	"$sg" peak 2048 >"$tmp/peak$i" || die "bench_sgemm peak failed"
	pk=$(json "$tmp/peak$i" gflops_best)
	runner "$tmp/a$i" "$m4" || die "$mode run $i failed: $(cat "$tmp/a$i.err")"
	w=$(cut -d' ' -f1 "$tmp/a$i.time")
	if [ $amx = 1 ]; then
		GROKWATCH_AMX=0 timed "$tmp/z$i" "$gw" analyze "$m4" --probe "$probe" ||
			die "analyze with GROKWATCH_AMX=0 failed: $(cat "$tmp/z$i.err")"
		w0=$(cut -d' ' -f1 "$tmp/z$i.time")
	fi
	"$py" "$src/tests/reference/ref_forward.py" bench "$m4" "$probe" >"$tmp/t$i" 2>"$tmp/t$i.err" ||
		die "ref_forward.py bench failed: $(tail -3 "$tmp/t$i.err")"
	tf=$(json "$tmp/t$i" tokens_per_sec)
	tfl=$(json "$tmp/t$i" tokens_per_sec_with_load)
	walls="$walls $w"
	peaks="$peaks $pk"
	torchs="$torchs $tf"
	torchls="$torchls $tfl"
	speeds="$speeds $(calc "$tokens / $w / $tf")"
	speedls="$speedls $(calc "$tokens / $w / $tfl")"
	limfs="$limfs $(calc "$gflop / $pk")"
	fracs="$fracs $(calc "$gflop / $pk / $w")"
	if [ $amx = 1 ]; then
		walls0="$walls0 $w0"
		speeds0="$speeds0 $(calc "$tokens / $w0 / $tf")"
		fracs0="$fracs0 $(calc "$gflop / $pk / $w0")"
	fi
done
cat "$tmp/peak1"
wall=$(median $walls)
peak=$(median $peaks)
ours=$(calc "$tokens / $wall")
torch=$(median $torchs)
torchl=$(median $torchls)
speed=$(median $speeds)
speedl=$(median $speedls)
limit=$(median $limfs)
e2e=$(median $fracs)
frac=$(calc "$eng / $peak")

# ---- (c) peak RSS at 4 and 16 layers
runner "$tmp/r4" "$m4" || die "RSS run (4 layers) failed"
runner "$tmp/r16" "$m16" || die "RSS run (16 layers) failed"
rss4=$(cut -d' ' -f2 "$tmp/r4.time")
rss16=$(cut -d' ' -f2 "$tmp/r16.time")
rssr=$(calc "$rss16 / $rss4")

echo
echo "forward pass, OLMoE-shaped bench model ($tokens tokens, $(nproc) cores):"
echo "  (a) $mode, whole process: $ours tokens/s (median wall ${wall}s of $reps);"
echo "      PyTorch reference: $torch tokens/s forward only, $torchl with loading"
echo "      speed-up ${speed}x over forward only, ${speedl}x with loading" \
	"(target >= 3x: $(verdict "$speed >= 3"))"
echo "  (b) the engine's products (on AMX where the weights are BF16 and the CPU has it, else" \
	"sgemm) $eng GFLOP/s (median of $reps) vs cblas_sgemm peak $peak GFLOP/s =" \
	"$(calc "100 * $frac")% (target >= 60%: $(verdict "$frac >= 0.6"))"
echo "  (d) the whole process against its $gflop GFLOP of matrix products at the same round's" \
	"sgemm peak ($limit s): $(calc "100 * $e2e")% of that limit (target >= 70%:" \
	"$(verdict "$e2e >= 0.7")); load at each round's start:$loads"
if [ $amx = 1 ]; then
	wall0=$(median $walls0)
	echo "  (a, d) with GROKWATCH_AMX=0 (every product on sgemm): median wall ${wall0}s," \
		"$(calc "$tokens / $wall0") tokens/s, $(median $speeds0)x PyTorch's forward," \
		"$(calc "100 * $(median $fracs0)")% of the limit"
	echo "{\"bench\": \"forward_end_to_end_sgemm\", \"wall_sec\": $wall0," \
		"\"speedup\": $(median $speeds0), \"fraction\": $(median $fracs0)}"
fi
echo "  (c) peak RSS $mode: 4 layers $rss4 KB, 16 layers $rss16 KB, ratio $rssr" \
	"(target <= 1.3: $(verdict "$rssr <= 1.3"))"
echo "{\"bench\": \"forward_tokens_per_sec\", \"mode\": \"$mode\", \"tokens\": $tokens," \
	"\"ours\": $ours, \"torch_forward\": $torch, \"torch_with_load\": $torchl," \
	"\"speedup\": $speed, \"speedup_with_load\": $speedl, \"target\": 3}"
echo "{\"bench\": \"forward_gemm_efficiency\", \"engine_gflops\": $eng," \
	"\"peak_gflops\": $peak, \"fraction\": $frac, \"target\": 0.6}"
echo "{\"bench\": \"forward_peak_rss\", \"mode\": \"$mode\", \"rss4_kb\": $rss4," \
	"\"rss16_kb\": $rss16, \"ratio\": $rssr, \"target\": 1.3}"
echo "{\"bench\": \"forward_end_to_end\", \"mode\": \"$mode\", \"gemm_gflop\": $gflop," \
	"\"limit_sec\": $limit, \"wall_sec\": $wall, \"fraction\": $e2e, \"target\": 0.7," \
	"\"load\": \"$loads\"}"
