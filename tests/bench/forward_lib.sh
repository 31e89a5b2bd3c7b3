# forward_lib.sh — shared by the forward-pass benchmarks (bench_forward.sh,
# bench_forward_dsv3.sh), sourced after they set src and py: the build
# paths (build, gw, dir for the bench models), a scratch directory (tmp,
# removed on exit), reps; generating a bench model once (kept in
# $build/bench/), reading figures from JSON lines, medians, arithmetic,
# and timing a whole process.
build=${GW_BUILD:-build/default}
case "$build" in /*) ;; *) build="$src/$build" ;; esac
gw=${GW_BIN:-$build/grokwatchd}
dir="$build/bench"
reps=3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gwbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

die() { echo "$(basename "$0" .sh): $*" >&2; exit 1; }

# bench_model DIR LAYERS [ARCH]: gen_fixtures.py --bench into DIR unless it
# is there already and newer than the generator.
bench_model() {
	if [ ! -f "$1/.stamp" ] || [ "$src/tests/fixtures/gen_fixtures.py" -nt "$1/.stamp" ]; then
		rm -rf "$1"
		"$py" "$src/tests/fixtures/gen_fixtures.py" --bench "$1" --layers "$2" \
			${3:+--arch "$3"} >/dev/null || die "gen_fixtures.py --bench $1 --layers $2 failed"
		touch "$1/.stamp"
	fi
}

# json FILE KEY: the value of KEY in the last {"bench": ...} line of FILE.
json() {
	"$py" -c 'import json,sys
v=None
for l in open(sys.argv[1]):
    l=l.strip()
    if l.startswith("{"):
        d=json.loads(l)
        if sys.argv[2] in d: v=d[sys.argv[2]]
print(v)' "$1" "$2"
}
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
calc() { "$py" -c "print('%.4g' % ($1))"; }
verdict() { if "$py" -c "import sys; sys.exit(0 if $1 else 1)"; then echo met; else echo MISSED; fi; }

# timed OUT CMD...: run CMD under /usr/bin/time; wall seconds (from the
# clock in nanoseconds: time's own has two decimals) and max RSS (KB) go to
# OUT.time as "wall rss".
timed() {
	out=$1
	shift
	t0=$(date +%s%N)
	/usr/bin/time -f '%M' -o "$out.rss" "$@" >"$out" 2>"$out.err"
	st=$?
	t1=$(date +%s%N)
	echo "$(( (t1 - t0) / 1000000 )) $(tail -1 "$out.rss")" |
		awk '{ printf "%.3f %s\n", $1 / 1000, $2 }' >"$out.time"
	return $st
}

# torch_bench MODEL PROBE REPS: ref_forward.py bench REPS times; sets
# torch (median tokens/s, forward only) and torchl (median with loading).
torch_bench() {
	tf=""
	tfl=""
	for i in $(seq "$3"); do
		"$py" "$src/tests/reference/ref_forward.py" bench "$1" "$2" >"$tmp/t$i" 2>"$tmp/t$i.err" ||
			die "ref_forward.py bench failed: $(tail -3 "$tmp/t$i.err")"
		tf="$tf $(json "$tmp/t$i" tokens_per_sec)"
		tfl="$tfl $(json "$tmp/t$i" tokens_per_sec_with_load)"
	done
	torch=$(median $tf)
	torchl=$(median $tfl)
}
