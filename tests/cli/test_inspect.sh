#!/bin/sh
# test_inspect.sh — `grokwatchd inspect`: every generated checkpoint is
# accepted and described as the fixture manifest says (the manifest is the
# generator's, parsed here with Python's json, independent of the C code);
# single safetensors files are listed with the tensor count Python reads
# from the header; every damaged copy is refused with exit 1 and exactly
# one stderr line naming the file; usage errors exit 2.
. "$GW_SRC/tests/lib.sh"
PY=/usr/bin/python3
FX=$GW_FIXTURES
gw() { $GW_WRAP "$GW_BIN" "$@"; }

# --- usage
gw inspect >/dev/null 2>&1; is $? 2 "no PATH: exit 2"
gw inspect "$FX/olmoe-f32" "$FX/olmoe-bf16" >/dev/null 2>&1; is $? 2 "two PATHs: exit 2"
gw inspect --bogus "$FX/olmoe-f32" >/dev/null 2>"$TMP/err"; is $? 2 "unknown option: exit 2"
has "$(cat "$TMP/err")" "unknown option '--bogus'" "unknown option named"
gw inspect --help >"$TMP/help"; is $? 0 "--help: exit 0"
has "$(cat "$TMP/help")" "usage: grokwatchd inspect [--json] [--all] PATH" "--help shows usage"
has "$(cat "$TMP/help")" "Exit status: 0 usable; 1 unusable" "--help states the exit status"

# --- every fixture, by the manifest
names=$("$PY" -c 'import json,sys; print(" ".join(c["name"] for c in json.load(open(sys.argv[1]))["checkpoints"]))' "$FX/manifest.json")
n=0
for name in $names; do
	n=$((n + 1))
	gw inspect --json "$FX/$name" >"$TMP/$name.json" 2>"$TMP/err"
	is $? 0 "$name: exit 0"
	is "$(cat "$TMP/err")" "" "$name: nothing on stderr"
	"$PY" - "$FX/manifest.json" "$name" "$TMP/$name.json" >"$TMP/cmp" 2>&1 <<'EOF'
import json, sys
man = {c["name"]: c for c in json.load(open(sys.argv[1]))["checkpoints"]}[sys.argv[2]]
got = json.load(open(sys.argv[3]))
bad = []
for k in ("arch", "n_experts", "top_k", "moe_layers", "vocab", "hidden", "n_layers",
          "sharded", "tied"):
    if got.get(k) != man[k]:
        bad.append("%s: got %r, manifest %r" % (k, got.get(k), man[k]))
if sorted(got.get("dtypes") or []) != man["dtypes"]:
    bad.append("dtypes: got %r, manifest %r" % (got.get("dtypes"), man["dtypes"]))
if got.get("complete") is not True:
    bad.append("complete: %r" % got.get("complete"))
if (len(got.get("files", [])) > 1) != man["sharded"]:
    bad.append("files: %r" % got.get("files"))
if bad:
    print("\n".join(bad))
sys.exit(1 if bad else 0)
EOF
	ok $? "$name: --json agrees with the manifest"
	[ -s "$TMP/cmp" ] && sed 's/^/# /' "$TMP/cmp"
done
is "$n" 20 "20 fixtures in the manifest"

# --- text
gw inspect "$FX/qwen2moe-bf16" >"$TMP/out" 2>&1; is $? 0 "text: exit 0"
out=$(cat "$TMP/out")
has "$out" "architecture  Qwen2MoeForCausalLM" "text: architecture"
has "$out" "layers        3 (MoE: 0, 2)" "text: MoE layers"
has "$out" "experts       8, top-2" "text: experts and top-k"
has "$out" "attention     4 heads, 2 KV heads, head_dim 16" "text: heads"
has "$out" "complete      yes" "text: complete"
has "$out" "(tied lm_head)" "text: tied"

# --- text, the DeepSeek-V3 family
gw inspect "$FX/dsv3-bf16-sharded" >"$TMP/out" 2>&1; is $? 0 "DeepseekV3 text: exit 0"
out=$(cat "$TMP/out")
has "$out" "architecture  DeepseekV3ForCausalLM" "DeepseekV3 text: architecture"
has "$out" "layers        3 (MoE: 1-2)" "DeepseekV3 text: first_k_dense_replace 1"
has "$out" "experts       16, top-4 renormalized, sigmoid router with correction bias (4 groups, keep 2, scaling 2.5)" "DeepseekV3 text: router"
has "$out" "shared expert 32" "DeepseekV3 text: two shared experts as one MLP of 32"
has "$out" "attention     latent (MLA), 4 heads, q_lora_rank 24, kv_lora_rank 16, qk 8 + 8 rotary, v 12" "DeepseekV3 text: MLA"
has "$out" "rope          theta 10000, 8 dims interleaved, YaRN factor 4 over 128 positions" "DeepseekV3 text: RoPE"
has "$out" "dtypes        F32, BF16" "DeepseekV3 text: BF16 weights, F32 correction bias"
gw inspect "$FX/glm4moe-f32" >"$TMP/out" 2>&1; is $? 0 "Glm4Moe text: exit 0"
out=$(cat "$TMP/out")
has "$out" "attention     4 heads, 2 KV heads, head_dim 24" "Glm4Moe text: GQA"
has "$out" "rope          theta 10000, 12 dims, YaRN factor 2 over 256 positions" "Glm4Moe text: partial RoPE"

# --- a single safetensors file
f=$FX/olmoe-f32/model.safetensors
count=$("$PY" -c 'import json,struct,sys
b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]
print(len([k for k in json.loads(b[8:8+n]) if k!="__metadata__"]))' "$f")
gw inspect --json "$f" >"$TMP/file.json" 2>"$TMP/err"; is $? 0 "file --json: exit 0"
got=$("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["kind"], j["tensors"], len(j["tensor_list"]), j["dtypes"])' "$TMP/file.json")
is "$got" "safetensors $count $count ['F32']" "file --json: every tensor listed"
gw inspect "$f" >"$TMP/out" 2>&1; is $? 0 "file text: exit 0"
has "$(cat "$TMP/out")" "tensors   $count" "file text: count"
has "$(cat "$TMP/out")" "more (--all or --json lists them)" "file text: long list cut"
has "$(cat "$TMP/out")" "  F32   [8, 64]          model.layers.0.mlp.gate.weight" "file text: a tensor's dtype and shape"
gw inspect --all "$f" | grep -c 'model\.' >"$TMP/c"; is "$(cat "$TMP/c")" "$count" "file --all: every tensor"

# --- refusals: one line on stderr naming the file, exit 1
refuse() { # refuse PATH NEEDLE NAME
	gw inspect "$1" >"$TMP/out" 2>"$TMP/err"
	is $? 1 "$3: exit 1"
	is "$(wc -l <"$TMP/err" | tr -d ' ')" 1 "$3: one line on stderr"
	has "$(cat "$TMP/err")" "grokwatchd: inspect: " "$3: prefixed"
	has "$(cat "$TMP/err")" "$2" "$3: names the file and the fault"
	is "$(cat "$TMP/out")" "" "$3: nothing on stdout"
}
fresh() { rm -rf "$TMP/$2"; cp -r "$FX/$1" "$TMP/$2"; }
edit_json() { # edit_json FILE PYTHON-STATEMENTS-ON-j
	"$PY" -c 'import json,sys
j=json.load(open(sys.argv[1]))
exec(sys.argv[2])
json.dump(j,open(sys.argv[1],"w"))' "$1" "$2"
}

refuse "$TMP/nothing" "\"$TMP/nothing\": No such file or directory" "missing path"

fresh olmoe-bf16-sharded s1
rm "$TMP/s1/model-00002-of-00003.safetensors"
refuse "$TMP/s1" "model-00002-of-00003.safetensors\": shard named by model.safetensors.index.json is missing" "missing shard"

fresh mixtral-bf16-sharded s2
shard=$(cd "$TMP/s2" && ls model-0000*.safetensors | tail -1)
"$PY" -c 'import os,sys; p=sys.argv[1]; os.truncate(p, os.path.getsize(p)-7)' "$TMP/s2/$shard"
refuse "$TMP/s2" "$shard\"" "truncated shard"

fresh qwen2moe-f16-sharded s3
edit_json "$TMP/s3/model.safetensors.index.json" '
w=j["weight_map"]; cur=w["model.norm.weight"]
w["model.norm.weight"]=[s for s in sorted(set(w.values())) if s!=cur][0]'
refuse "$TMP/s3" "model.safetensors.index.json\": tensor \"model.norm.weight\" is not in shard" "index names a tensor its shard lacks"

fresh qwen3moe-f16-sharded s4
printf '{"weight_map": {' >"$TMP/s4/model.safetensors.index.json"
refuse "$TMP/s4" "model.safetensors.index.json\": not JSON" "index not JSON"

fresh olmoe-bf16-sharded s5
edit_json "$TMP/s5/model.safetensors.index.json" 'j["weight_map"]["model.norm.weight"]="../olmoe-bf16/model.safetensors"'
refuse "$TMP/s5" "is not a plain file name" "index shard escaping the directory"

fresh olmoe-f32 c1
rm "$TMP/c1/config.json"
refuse "$TMP/c1" "\"$TMP/c1\": no config.json" "missing config.json"

fresh olmoe-f32 c2
edit_json "$TMP/c2/config.json" 'j["architectures"]=["LlamaForCausalLM"]; j["model_type"]="llama"'
refuse "$TMP/c2" "config.json\": architecture \"LlamaForCausalLM\" is not supported (OLMoE, Mixtral, Qwen2-MoE, Qwen3-MoE, DeepSeek-V3, GLM-4.5 MoE)" "unsupported config"

fresh dsv3-f32 d1
edit_json "$TMP/d1/config.json" 'j["moe_layer_freq"]=2'
refuse "$TMP/d1" "config.json\": moe_layer_freq 2 is not supported" "DeepSeek moe_layer_freq 2"

fresh glm4moe-f32 d2
edit_json "$TMP/d2/config.json" 'j["rope_scaling"]={"rope_type": "dynamic", "factor": 2.0}'
refuse "$TMP/d2" "config.json\": \"rope_scaling\" of type \"dynamic\" is not supported (only \"default\" and \"yarn\")" "rope scaling other than yarn"

fresh dsv3-f32 d3
"$PY" - "$TMP/d3/model.safetensors" <<PYEOF
import sys
sys.path.insert(0, "$GW_SRC/tests/reference")
import stfile
f = stfile.SafeTensors(sys.argv[1])
t = {n: f.raw(n) for n in f.tensors if n != "model.layers.2.mlp.gate.e_score_correction_bias"}
stfile.write_file(sys.argv[1], t, dict(f.metadata))
PYEOF
refuse "$TMP/d3" "tensor \"model.layers.2.mlp.gate.e_score_correction_bias\" is missing" "DeepSeek correction bias missing"

fresh olmoe-f32 c3
printf 'not json' >"$TMP/c3/config.json"
refuse "$TMP/c3" "config.json\": not JSON" "config not JSON"

fresh mixtral-f16 c4
edit_json "$TMP/c4/config.json" 'j["hidden_size"]=128'
refuse "$TMP/c4" "\"$TMP/c4\": tensor \"model.embed_tokens.weight\" has shape [256, 64], but config.json implies [256, 128]" "config dims disagree with tensors"

fresh qwen3moe-bf16 c5
edit_json "$TMP/c5/config.json" 'j["num_experts"]=0'
refuse "$TMP/c5" "config.json\": \"num_experts\" is 0" "zero experts"

fresh qwen2moe-f32 c6
edit_json "$TMP/c6/config.json" 'j["num_experts_per_tok"]=9'
refuse "$TMP/c6" "config.json\": num_experts_per_tok 9 is above the 8 experts" "top-k above the expert count"

fresh mixtral-f32 c7
edit_json "$TMP/c7/config.json" 'j["hidden_size"]="64"'
refuse "$TMP/c7" "config.json\": \"hidden_size\" must be an integer, not a string" "config key of the wrong type"

fresh olmoe-f16 c8
rm "$TMP/c8/model.safetensors"
refuse "$TMP/c8" "no model.safetensors or model.safetensors.index.json" "no weights"

# Single files: empty, under 8 bytes, header length beyond the file,
# header not JSON, trailing bytes.
: >"$TMP/empty.safetensors"
refuse "$TMP/empty.safetensors" "empty.safetensors\"" "empty file"
printf 'abc' >"$TMP/short.safetensors"
refuse "$TMP/short.safetensors" "short.safetensors\"" "fewer than 8 bytes"
"$PY" -c 'import struct,sys; open(sys.argv[1],"wb").write(struct.pack("<Q",4096)+b"{}")' "$TMP/long.safetensors"
refuse "$TMP/long.safetensors" "long.safetensors\"" "header length beyond the file"
"$PY" -c 'import struct,sys; open(sys.argv[1],"wb").write(struct.pack("<Q",4)+b"{{{{")' "$TMP/nj.safetensors"
refuse "$TMP/nj.safetensors" "nj.safetensors\"" "header not JSON"
cp "$FX/olmoe-f32/model.safetensors" "$TMP/trail.safetensors"; printf 'xx' >>"$TMP/trail.safetensors"
refuse "$TMP/trail.safetensors" "trail.safetensors\"" "trailing bytes"
fresh olmoe-f32 t1
"$PY" -c 'import os,sys; p=sys.argv[1]; os.truncate(p, os.path.getsize(p)-1)' "$TMP/t1/model.safetensors"
refuse "$TMP/t1" "model.safetensors\"" "truncated single file"

# The layouts other trainers save (manifest "layouts") are described, and
# FP8 with dtypes nothing reads in unused tensors; other trainers' formats
# are refused by name with the ways forward.
"$GW_BIN" inspect "$FX/dsv3fp8" >"$TMP/fp8.txt" 2>&1
ok $? "FP8 with block scales and unused F8_E8M0/F4/unknown dtypes: described"
grep -q "dtypes        F32, F8_E4M3, F8_E5M2, F8_E8M0, F4, other" "$TMP/fp8.txt"
ok $? "FP8: its dtypes listed"
"$GW_BIN" inspect --all "$FX/dsv3fp8/model.safetensors" | grep -q "MXFP9_X \[5\] *model.extra.future"
ok $? "an unknown dtype is shown as the file spells it"
for n in olmoe-compiled-f32 qwen3moe-ddp-bare-bf16 olmoe-fused-f32 mixtral-fused-bf16 \
	qwen2moe-fused-f16-sharded dsv3-fused-f32; do
	"$GW_BIN" inspect "$FX/$n" >/dev/null 2>&1
	ok $? "$n: described"
done
mkdir -p "$TMP/step-300"
: >"$TMP/step-300/.metadata"
: >"$TMP/step-300/__0_0.distcp"
refuse "$TMP/step-300" "step-300\": a PyTorch DCP checkpoint (.metadata and *.distcp, as torchtitan writes), not a Hugging Face checkpoint; grokwatch cannot read it: save Hugging Face safetensors (save_pretrained: config.json and model.safetensors), or write routing files with grokwatch.trace" "a DCP checkpoint"
fresh olmoe-f32 p1
rm "$TMP/p1/model.safetensors"
: >"$TMP/p1/pytorch_model.bin"
refuse "$TMP/p1" "PyTorch pickle weights only (pytorch_model.bin), which grokwatch does not load" "pytorch_model.bin alone"

done_testing
