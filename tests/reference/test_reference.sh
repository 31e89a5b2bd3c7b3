#!/bin/sh
# test_reference.sh — the C engine against the independent PyTorch reference
# (ref_forward.py) on every fixture checkpoint of $GW_FIXTURES/manifest.json:
# for each, `grokwatchd analyze CKPT --probe PROBE --dump-routing OUT` writes
# the routing file; then one `ref_forward.py compare CKPT PROBE OUT ...` run
# (torch is imported once) recomputes every pass in PyTorch and requires
# gbar within 1e-5 absolute, the loss within 1e-5 relative and the same
# top-k sets wherever the choice is not a near tie (the k-th and (k+1)-th
# probabilities, or for the DeepSeek-V3 family's sigmoid routers the group
# and expert choice scores, more than 1e-5 apart).  Its per-checkpoint
# verdicts and error figures are shown.
#
# The layouts of manifest "layouts" (tests/fixtures/gen_fixtures.py) go the
# same way: names under "_orig_mod." or "module." without "model.",
# Transformers v5's fused experts (and Mixtral's router under mlp.gate),
# DeepSeek-V3's FP8 with 128 x 128 block scales and unused tensors of
# dtypes nothing reads.
#
# Then the mutation check (`ref_forward.py mutations`): each feature of the
# DeepSeek-V3 family and YaRN (correction bias, groups, the 0.0 mask,
# renormalization, scaling, p = s / sum(s), shared experts, dense layers,
# MLA's latent norms and their eps, YaRN's frequencies, attention factor and
# mscale, interleaved and partial RoPE, QK-norm, attention biases; the fused
# experts' gate-first order and the FP8 block scales) is turned
# off in the reference, one at a time, for every fixture that uses it, and
# the comparison with the engine's unchanged routing file must then fail:
# proof that the comparison sees each feature.
#
# GW_REF_DUMP, if set, is a command run as `$GW_REF_DUMP CKPT PROBE OUT`
# instead of analyze (for trying the engine through another driver).
. "${GW_SRC:-.}/tests/lib.sh"
src=${GW_SRC:-.}
py=${PYTHON:-/usr/bin/python3}
fx=${GW_FIXTURES:?GW_FIXTURES is not set}
probe="$fx/probe/probe.jsonl"

names=$("$py" -c 'import json,sys
for c in json.load(open(sys.argv[1]))["checkpoints"]: print(c["name"])' "$fx/manifest.json")
ok $? "manifest lists the fixture checkpoints"
[ "$(echo "$names" | wc -w)" -ge 20 ]
ok $? "manifest has every fixture checkpoint ($(echo $names))"
# The layouts other trainers save (names under wrapper prefixes, v5's fused
# experts, FP8 with block scales): the same comparison, and the mutations
# fused_order (gate and up halves swapped) and block_scales.
layouts=$("$py" -c 'import json,sys
for c in json.load(open(sys.argv[1]))["layouts"]: print(c["name"])' "$fx/manifest.json")
ok $? "manifest lists the layouts"
[ "$(echo "$layouts" | wc -w)" -ge 7 ]
ok $? "manifest has every layout ($(echo $layouts))"
names="$names $layouts"

triples=""
for n in $names; do
	out="$TMP/$n.routing.safetensors"
	if [ -n "${GW_REF_DUMP:-}" ]; then
		$GW_REF_DUMP "$fx/$n" "$probe" "$out" >"$TMP/$n.dump.log" 2>&1
	else
		$GW_WRAP "$GW_BIN" analyze "$fx/$n" --probe "$probe" --dump-routing "$out" \
			>"$TMP/$n.dump.log" 2>&1
	fi
	st=$?
	ok $st "$n: engine writes the routing file"
	if [ $st -eq 0 ]; then
		triples="$triples $fx/$n $probe $out"
	else
		sed 's/^/#   /' "$TMP/$n.dump.log"
	fi
done

cmp="$TMP/compare.log"
# shellcheck disable=SC2086
[ -n "$triples" ] && "$py" "$src/tests/reference/ref_forward.py" compare $triples >"$cmp" 2>&1
sed 's/^/# /' "$cmp" 2>/dev/null
for n in $names; do
	grep -q "^ok - $n " "$cmp" 2>/dev/null
	ok $? "$n: gbar, loss and top-k match the PyTorch reference"
done

# Where the CPU has AMX-BF16 the engine multiplies BF16 weights on its
# tiles (engine/amx.h) and the comparison above saw that path; the sgemm
# path (GROKWATCH_AMX=0) then gets the same comparison here.
if grep -qw amx_bf16 /proc/cpuinfo 2>/dev/null && [ -z "${GW_REF_DUMP:-}" ]; then
	triples0=""
	for n in $names; do
		out="$TMP/$n.sgemm.routing.safetensors"
		GROKWATCH_AMX=0 $GW_WRAP "$GW_BIN" analyze "$fx/$n" --probe "$probe" \
			--dump-routing "$out" >"$TMP/$n.dump0.log" 2>&1 &&
			triples0="$triples0 $fx/$n $probe $out"
	done
	cmp0="$TMP/compare0.log"
	# shellcheck disable=SC2086
	[ -n "$triples0" ] && "$py" "$src/tests/reference/ref_forward.py" compare $triples0 \
		>"$cmp0" 2>&1
	for n in $names; do
		grep -q "^ok - $n " "$cmp0" 2>/dev/null
		ok $? "$n: with GROKWATCH_AMX=0 (sgemm), gbar, loss and top-k match the reference"
	done
fi

mut="$TMP/mutations.log"
# shellcheck disable=SC2086
[ -n "$triples" ] && "$py" "$src/tests/reference/ref_forward.py" mutations $triples >"$mut" 2>&1
st=$?
sed 's/^/# /' "$mut" 2>/dev/null
is "$st" 0 "mutation check: every feature turned off in the reference breaks the match"
for f in correction_bias group_limit zero_mask norm_topk_prob routed_scaling sigmoid_p \
	shared_experts dense_layers q_a_layernorm kv_a_layernorm latent_eps yarn_frequencies \
	yarn_attention_factor yarn_mscale rope_interleave partial_rotary qk_norm attention_bias \
	fused_order block_scales; do
	grep -q "^ok - $f off: " "$mut" 2>/dev/null
	ok $? "mutation check: $f off is seen"
done
done_testing
