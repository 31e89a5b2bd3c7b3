#!/bin/sh
# test_analyze.sh — `grokwatchd analyze` end to end: usage, the text and
# JSON outputs, routing files (given, found in a directory, with router
# weights read from the checkpoint beside them), the metrics checked
# against the independent Python implementation in
# tests/reference/metrics_ref.py, the memorized subset over a series whose
# latest checkpoint moves, and bad input.
. "$GW_SRC/tests/lib.sh"
PY=${PYTHON:-/usr/bin/python3}
FX=$GW_FIXTURES
PROBE=$FX/probe/probe.jsonl
gw() { $GW_WRAP "$GW_BIN" "$@"; }

# --- usage
gw analyze >/dev/null 2>&1; is $? 2 "no checkpoint: exit 2"
gw analyze --bogus "$FX/olmoe-f32" >/dev/null 2>"$TMP/err"; is $? 2 "unknown option: exit 2"
has "$(cat "$TMP/err")" "unknown option" "unknown option named"
gw analyze --tau 1.5 --probe "$PROBE" "$FX/olmoe-f32" >/dev/null 2>"$TMP/err"; is $? 2 "tau out of range: exit 2"
has "$(cat "$TMP/err")" "tau" "tau named"
gw analyze --dump-routing "$TMP/x" --probe "$PROBE" "$FX/olmoe-f32" "$FX/olmoe-bf16" >/dev/null 2>&1
is $? 2 "--dump-routing with two checkpoints: exit 2"
gw analyze --help >"$TMP/help"; is $? 0 "--help exits 0"
has "$(cat "$TMP/help")" "--dump-routing FILE" "--help lists --dump-routing"

# --- text output from the forward pass
gw analyze --probe "$PROBE" "$FX/olmoe-f32" >"$TMP/out" 2>"$TMP/err"; is $? 0 "analyze a checkpoint: exit 0"
out=$(cat "$TMP/out")
for g in math code web all; do has "$out" "  $g " "text lists group $g"; done
has "$out" "OlmoeForCausalLM" "text names the architecture"
has "$out" "health: imbalance" "text shows routing health"

# --- every architecture, JSON, checked against the independent metrics
for name in olmoe-bf16-sharded mixtral-f16 qwen2moe-bf16 qwen3moe-f16-sharded dsv3-bf16-sharded \
	glm4moe-f32; do
	gw analyze --probe "$PROBE" --dump-routing "$TMP/$name.st" "$FX/$name" >/dev/null 2>"$TMP/err"
	ok $? "$name: dump routing"
	gw analyze --json "$TMP/$name.st" >"$TMP/$name.json" 2>"$TMP/err"
	ok $? "$name: analyze the routing file --json"
	"$PY" "$GW_SRC/tests/reference/metrics_ref.py" "$TMP/$name.json" "$TMP/$name.st" >"$TMP/ref" 2>&1
	rc=$?
	grep '^not ok' "$TMP/ref" | head -5 | sed 's/^/# /'
	ok $rc "$name: metrics agree with the independent implementation ($(grep -c '^ok' "$TMP/ref") checks)"
done

# --- the DeepSeek-V3 family: the text names it; health's expert load is the
# share of the experts the router chose (bias, groups), not gbar's mass
gw analyze --probe "$PROBE" "$FX/dsv3-f32" >"$TMP/out" 2>"$TMP/err"; is $? 0 "analyze DeepseekV3: exit 0"
has "$(cat "$TMP/out")" "DeepseekV3ForCausalLM" "text names DeepseekV3ForCausalLM"
gw analyze --probe "$PROBE" "$FX/glm4moeplain-f32" >"$TMP/out" 2>"$TMP/err"; is $? 0 "analyze Glm4Moe: exit 0"
has "$(cat "$TMP/out")" "Glm4MoeForCausalLM" "text names Glm4MoeForCausalLM"
"$PY" - "$TMP/dsv3-bf16-sharded.json" "$TMP/dsv3-bf16-sharded.st" <<PYEOF
import json, sys
import numpy as np
sys.path.insert(0, "$GW_SRC/tests/reference")
import stfile
res = json.loads(open(sys.argv[1]).readline())
f = stfile.SafeTensors(sys.argv[2])
ids, gbar = f.raw("topk_ids").astype(np.int64), f.get("gbar")
T, L, k = ids.shape
E = gbar.shape[2]
for l in range(L):
    load = np.bincount(ids[:, l].ravel(), minlength=E) / (T * k)
    got = np.array(res["health"]["layers"][l]["load"])
    assert np.abs(got - load).max() < 1e-6, (l, got, load)
    assert np.abs(got - gbar[:, l].mean(0)).max() > 0.01, "load would equal gbar"
PYEOF
ok $? "DeepseekV3: health load counts the chosen experts, which differ from gbar's mass"

# --- the same numbers from the checkpoint and from its routing file
gw analyze --json --probe "$PROBE" "$FX/qwen3moe-f32" >"$TMP/a.json" 2>/dev/null
gw analyze --probe "$PROBE" --dump-routing "$TMP/q3.st" "$FX/qwen3moe-f32" >/dev/null 2>&1
gw analyze --json "$TMP/q3.st" >"$TMP/b.json" 2>/dev/null
"$PY" - "$TMP/a.json" "$TMP/b.json" <<'PYEOF'
import json, sys
a, b = (json.loads(open(p).readline()) for p in sys.argv[1:3])
for g in a["groups"]:
    for k in ("pathway_distance", "pathway_consistency", "loss", "n_samples"):
        assert a["groups"][g][k] == b["groups"][g][k], (g, k, a["groups"][g][k], b["groups"][g][k])
PYEOF
ok $? "checkpoint and its routing file give the same metrics"
"$PY" -c 'import json, sys; o = json.loads(open(sys.argv[1]).readline()); assert list(o)[0] == "type" and o["type"] == "metrics" and "kind" not in o, list(o)[:3]' "$TMP/a.json"
ok $? "analyze --json labels its object \"type\": \"metrics\", first, and nothing else"

# --- a directory with routing.safetensors but no router tensors: the
# routers come from the checkpoint's weights beside it
mkdir -p "$TMP/step700"
cp "$FX/olmoe-f32/config.json" "$FX/olmoe-f32/model.safetensors" "$TMP/step700/"
gw analyze --probe "$PROBE" --dump-routing "$TMP/full.st" "$FX/olmoe-f32" >/dev/null 2>&1
# no_routers SRC DST: SRC's routing file without its router.<l> tensors and
# its step, so the directory's name and the checkpoint beside it supply them
no_routers() {
	"$PY" - "$1" "$2" <<PYEOF
import sys
sys.path.insert(0, "$GW_SRC/tests/reference")
import stfile
f = stfile.SafeTensors(sys.argv[1])
t = {n: f.raw(n) for n in f.tensors if not n.startswith("router.")}
md = dict(f.metadata)
md.pop("step", None)
stfile.write_file(sys.argv[2], t, md)
PYEOF
}
no_routers "$TMP/full.st" "$TMP/step700/routing.safetensors"
gw analyze --json "$TMP/step700" >"$TMP/c.json" 2>"$TMP/err"; ok $? "routing.safetensors without routers: exit 0"
gw analyze --json "$TMP/full.st" >"$TMP/d.json" 2>/dev/null
"$PY" - "$TMP/c.json" "$TMP/d.json" <<'PYEOF'
import json, sys
c, d = (json.loads(open(p).readline()) for p in sys.argv[1:3])
assert c["step"] == 700, c["step"]
assert c["groups"]["all"]["pathway_consistency"] is not None
assert c["groups"]["all"]["pathway_consistency"] == d["groups"]["all"]["pathway_consistency"]
PYEOF
ok $? "routers read from the checkpoint; step 700 from the directory name"
gw analyze --json --no-per-layer "$TMP/full.st" >"$TMP/e.json" 2>"$TMP/err"; ok $? "--no-per-layer: exit 0"
"$PY" - "$TMP/d.json" "$TMP/e.json" <<'PYEOF'
import json, sys
d, e = (json.loads(open(p).readline()) for p in sys.argv[1:3])
for g in d["groups"]:
    assert len(d["groups"][g]["per_layer_distance"]) > 0, g
    assert e["groups"][g]["per_layer_distance"] is None, g
    assert "per_layer_distance" not in e["groups"][g]["memorized"], g
    for k in ("pathway_distance", "pathway_distance_se", "n_pairs", "pathway_consistency"):
        assert d["groups"][g][k] == e["groups"][g][k], (g, k)
PYEOF
ok $? "--no-per-layer: per_layer_distance null, the rest the same"
mkdir -p "$TMP/step800"
cp "$FX/dsv3nolora-f32/config.json" "$FX/dsv3nolora-f32/model.safetensors" "$TMP/step800/"
gw analyze --probe "$PROBE" --dump-routing "$TMP/nolora.st" "$FX/dsv3nolora-f32" >/dev/null 2>&1
no_routers "$TMP/nolora.st" "$TMP/step800/routing.safetensors"
gw analyze --json "$TMP/step800" >"$TMP/g.json" 2>"$TMP/err"; ok $? "DeepseekV3 routing.safetensors without routers: exit 0"
gw analyze --json "$TMP/nolora.st" >"$TMP/h.json" 2>/dev/null
"$PY" - "$TMP/g.json" "$TMP/h.json" <<'PYEOF'
import json, sys
g, h = (json.loads(open(p).readline()) for p in sys.argv[1:3])
assert g["groups"]["all"]["pathway_consistency"] is not None
assert g["groups"]["all"]["pathway_consistency"] == h["groups"]["all"]["pathway_consistency"]
PYEOF
ok $? "DeepseekV3: routers read from the checkpoint's mlp.gate.weight give the same consistency"

# --- a series whose latest checkpoint moves the memorized subset
"$PY" - "$TMP/full.st" "$TMP" <<PYEOF
import sys
import numpy as np
sys.path.insert(0, "$GW_SRC/tests/reference")
import stfile
f = stfile.SafeTensors(sys.argv[1])
t = {n: f.raw(n) for n in f.tensors}
N = t["loss"].shape[0]
base = np.where(np.arange(N) % 2 == 0, 0.3, 4.0).astype(np.float32)
bump = np.where(np.arange(N) % 4 == 0, 0.01, 0.2).astype(np.float32)
for step, loss in ((100, base + 0.5), (200, base + bump), (300, base), (400, base + bump * 3)):
    t["loss"] = loss.astype(np.float32)
    md = dict(f.metadata)
    md["step"] = str(step)
    stfile.write_file("%s/s%d.st" % (sys.argv[2], step), t, md)
PYEOF
gw analyze --json "$TMP/s300.st" "$TMP/s100.st" "$TMP/s200.st" >"$TMP/s3.json" 2>"$TMP/err"
ok $? "series of three routing files"
"$PY" "$GW_SRC/tests/reference/metrics_ref.py" "$TMP/s3.json" "$TMP/s100.st" "$TMP/s200.st" "$TMP/s300.st" >"$TMP/ref" 2>&1
rc=$?; grep '^not ok' "$TMP/ref" | head -5 | sed 's/^/# /'
ok $rc "memorized subsets (latest 300) agree with the independent implementation"
gw analyze --json "$TMP/s300.st" "$TMP/s100.st" "$TMP/s200.st" "$TMP/s400.st" >"$TMP/s4.json" 2>"$TMP/err"
"$PY" "$GW_SRC/tests/reference/metrics_ref.py" "$TMP/s4.json" "$TMP/s100.st" "$TMP/s200.st" "$TMP/s300.st" "$TMP/s400.st" >"$TMP/ref" 2>&1
rc=$?; grep '^not ok' "$TMP/ref" | head -5 | sed 's/^/# /'
ok $rc "latest moves to 400: memorized history recomputed and agrees"
m300=$("$PY" -c "import json,sys; [print(r['groups']['all']['memorized']['n_samples']) for r in map(json.loads, open(sys.argv[1])) if r['step']==300]" "$TMP/s3.json")
m300b=$("$PY" -c "import json,sys; [print(r['groups']['all']['memorized']['n_samples']) for r in map(json.loads, open(sys.argv[1])) if r['step']==300]" "$TMP/s4.json")
[ "$m300" -gt 0 ] && [ "$m300b" -lt "$m300" ]; ok $? "step 300's memorized subset shrinks when step 400 arrives ($m300 -> $m300b)"

# --- the paper's rule: loss <= epsilon at EVERY checkpoint from t to the
# latest.  Samples 0, 3, 6, ... go 2.0, 0.99, 1.02, 1.00 (epsilon 1: only
# the last counts; checking loss <= epsilon at t alone would take the
# second too); 1, 4, ... stay at 0.5; 2, 5, ... go 1.5, 0.9, 0.95, 0.97.
"$PY" - "$TMP/full.st" "$TMP" <<PYEOF
import sys
import numpy as np
sys.path.insert(0, "$GW_SRC/tests/reference")
import stfile
f = stfile.SafeTensors(sys.argv[1])
t = {n: f.raw(n) for n in f.tensors}
N = t["loss"].shape[0]
traj = [[2.0, 0.99, 1.02, 1.00], [0.5] * 4, [1.5, 0.9, 0.95, 0.97]]
for k, step in enumerate((500, 600, 700, 800)):
    t["loss"] = np.array([traj[i % 3][k] for i in range(N)], np.float32)
    md = dict(f.metadata)
    md["step"] = str(step)
    stfile.write_file("%s/f%d.st" % (sys.argv[2], step), t, md)
PYEOF
gw analyze --json "$TMP/f500.st" "$TMP/f600.st" "$TMP/f700.st" "$TMP/f800.st" >"$TMP/f.json" 2>"$TMP/err"
ok $? "flicker series analysed"
"$PY" "$GW_SRC/tests/reference/metrics_ref.py" "$TMP/f.json" "$TMP/f500.st" "$TMP/f600.st" "$TMP/f700.st" "$TMP/f800.st" >"$TMP/ref" 2>&1
rc=$?; grep '^not ok' "$TMP/ref" | head -5 | sed 's/^/# /'
ok $rc "flicker series: memorized subsets agree with the independent implementation"
counts=$("$PY" -c "import json,sys; print(' '.join(str(r['groups']['all']['memorized']['n_samples']) for r in map(json.loads, open(sys.argv[1]))))" "$TMP/f.json")
n=$("$PY" -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['groups']['all']['n_samples'])" "$TMP/f.json")
a=$(( (n + 1) / 3 )); b=$(( n / 3 )); c=$(( (n + 2) / 3 ))
# 500, 600: the steady ones (at 600 the third kind's .9 is .07 from .97);
# 700: and the third kind; 800: all
is "$counts" "$b $b $((b + n / 3)) $n" "flicker series: no flicker ($counts; $a, $b, $c of each kind)"
gw analyze --json --epsilon auto --memorized-share 0.5 "$TMP/f500.st" "$TMP/f600.st" "$TMP/f700.st" "$TMP/f800.st" >"$TMP/fa.json" 2>"$TMP/err"
ok $? "flicker series with an auto epsilon"
"$PY" "$GW_SRC/tests/reference/metrics_ref.py" "$TMP/fa.json" "$TMP/f500.st" "$TMP/f600.st" "$TMP/f700.st" "$TMP/f800.st" --epsilon auto --memorized-share 0.5 >"$TMP/ref" 2>&1
rc=$?; grep '^not ok' "$TMP/ref" | head -5 | sed 's/^/# /'
ok $rc "auto epsilon and its subsets agree with the independent implementation ($(grep -c '^ok' "$TMP/ref") checks)"
gw analyze --epsilon auto "$TMP/f800.st" >"$TMP/out" 2>"$TMP/err"; ok $? "text output with an auto epsilon"
has "$(cat "$TMP/out")" "epsilon" "text output shows the epsilon column"

# --- options that are config keys: refused as the config refuses them, in
# its words, and taken where it takes them
mkdir -p "$TMP/root"
while IFS='|' read -r opt key json arg; do
	sec=${key%%.*}; name=${key#*.}
	printf '{"watch": {"root": "%s"}, "%s": {"%s": %s}}\n' "$TMP/root" "$sec" "$name" "$json" >"$TMP/bounds.json"
	gw run -c "$TMP/bounds.json" --check >/dev/null 2>"$TMP/cerr"; crc=$?
	gw analyze --json "$opt" "$arg" "$TMP/s100.st" >/dev/null 2>"$TMP/aerr"; arc=$?
	if [ $crc -eq 0 ]; then
		is $arc 0 "$opt '$arg': taken, as $key $json is"
	else
		is $arc 2 "$opt '$arg': refused (exit 2), as $key $json is"
		want=$(sed -n "s/.*$key: //p" "$TMP/cerr"); got=$(sed -n "s/.*$opt: $key: //p" "$TMP/aerr")
		[ -n "$want" ] && [ "$want" = "$got" ]; ok $? "$opt '$arg': in the config's words ('$got')"
	fi
done <<'CASES'
--tau|metrics.tau|0|0
--tau|metrics.tau|1.5|1.5
--tau|metrics.tau|0.5|0.5
--tau|metrics.tau|1e999|1e999
--pair-budget|metrics.pair_budget|0|0
--pair-budget|metrics.pair_budget|2.5|2.5
--pair-budget|metrics.pair_budget|1000|1000
--pair-budget|metrics.pair_budget|4294967296|4294967296
--pair-budget|metrics.pair_budget|4294967297|4294967297
--seed|metrics.seed|-1|-1
--seed|metrics.seed|1.5|1.5
--seed|metrics.seed|9007199254740992|9007199254740992
--epsilon|metrics.epsilon|-0.1|-0.1
--epsilon|metrics.epsilon|101|101
--epsilon|metrics.epsilon|0.5|0.5
--epsilon|metrics.epsilon|"auto"|auto
--epsilon|metrics.epsilon|"Auto"|Auto
--delta|metrics.delta|-1|-1
--delta|metrics.delta|0.1|0.1
--memorized-share|metrics.memorized_share|0|0
--memorized-share|metrics.memorized_share|0.25|0.25
--memorized-share|metrics.memorized_share|1.5|1.5
--consistency-floor|metrics.consistency_floor|-0.1|-0.1
--consistency-floor|metrics.consistency_floor|0.1|0.1
--consistency-floor|metrics.consistency_floor|0.9|0.9
--threads|threads.blas|2000|2000
--threads|threads.blas|0|0
--threads|threads.blas|2|2
--sample-length|probe.sample_length|0|0
--sample-length|probe.sample_length|40000|40000
--count|probe.count|0|0
--offset|probe.offset|-1|-1
--offset|probe.offset|5|5
--group|probe.group|""|
--group|probe.group|"math"|math
--probe-format|probe.format|"u8"|u8
--probe-format|probe.format|"u16"|u16
CASES

# --- with --probe, a routing file of another probe is refused, naming both
"$PY" - "$TMP/s100.st" "$TMP/other.st" <<PYEOF
import sys
sys.path.insert(0, "$GW_SRC/tests/reference")
import stfile
f = stfile.SafeTensors(sys.argv[1])
md = dict(f.metadata)
md["probe_hash"] = "a" * 64
stfile.write_file(sys.argv[2], {n: f.raw(n) for n in f.tensors}, md)
PYEOF
gw analyze --probe "$PROBE" "$TMP/other.st" >/dev/null 2>"$TMP/err"; is $? 1 "routing file of another probe: exit 1"
has "$(cat "$TMP/err")" "routing records of probe aaaaaaaaaaaa, not of the configured probe" "both probes named"
gw analyze --probe "$PROBE" "$TMP/s100.st" >/dev/null 2>"$TMP/err"; ok $? "routing file of the same probe: taken"

# --- bad input
gw analyze --probe "$PROBE" "$TMP/nonexistent" >/dev/null 2>"$TMP/err"; is $? 1 "missing checkpoint: exit 1"
has "$(cat "$TMP/err")" "nonexistent" "missing checkpoint named"
gw analyze "$FX/olmoe-f32" >/dev/null 2>"$TMP/err"; is $? 1 "checkpoint without routing and no probe: exit 1"
has "$(cat "$TMP/err")" "no probe set (--probe" "the missing probe is explained"
printf '{"tokens": [1, 2, 3]}\n{"tokens": [1, 999]}\n' >"$TMP/bad.jsonl"
gw analyze --probe "$TMP/bad.jsonl" "$FX/olmoe-f32" >/dev/null 2>"$TMP/err"; is $? 1 "token beyond the vocabulary: exit 1"
has "$(cat "$TMP/err")" "bad.jsonl" "bad probe file named"
printf 'not a safetensors file' >"$TMP/junk.st"
gw analyze "$TMP/junk.st" >/dev/null 2>"$TMP/err"; is $? 1 "junk routing file: exit 1"
has "$(cat "$TMP/err")" "junk.st" "junk routing file named"
[ "$(wc -l <"$TMP/err")" -eq 1 ]; ok $? "one line of error"

done_testing
