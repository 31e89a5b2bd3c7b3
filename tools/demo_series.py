#!/usr/bin/python3
"""demo_series.py — a short series of tiny OLMoE checkpoints whose routing
becomes structured over training, for `make demo`.

usage: demo_series.py OUTDIR [STEPS]

Writes OUTDIR/probe.jsonl (60 samples in groups math, code, web, each group
drawing mostly from its own band of the vocabulary) and OUTDIR/stepN/ for
N in 1000, 2000, ... (STEPS checkpoints, default 6), each a complete Hugging
Face checkpoint (config.json, model.safetensors, trainer_state.json).

What changes from step to step stands in for what training does: the token
embeddings drift toward one direction per vocabulary band and every MoE
router toward rows that send each band to its own pair of experts, by a
fraction that grows and then saturates.  So the samples of a group come to
share their pathways (pathway distance falls and then plateaus), which is
the signal grokwatch watches for.  Everything is seeded: the same bytes
every run.
"""

import json
import os
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "fixtures"))
import gen_fixtures as gf  # noqa: E402

GROUPS = ("math", "code", "web")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = argv[1]
    steps = int(argv[2]) if len(argv) > 2 else 6
    os.makedirs(out, exist_ok=True)
    cfg = gf.arch_config("olmoe", "F32", False)
    H, V, E = cfg["hidden_size"], cfg["vocab_size"], cfg["num_experts"]
    base = dict(gf.gen_weights("olmoe", cfg))
    rng = np.random.Generator(np.random.PCG64(3001))
    band = V // len(GROUPS)
    dirs = rng.standard_normal((len(GROUPS), H)).astype(np.float32)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)

    # Target embeddings: each token near its band's direction.
    emb0 = base["model.embed_tokens.weight"]
    tok_band = np.minimum(np.arange(V) // band, len(GROUPS) - 1)
    emb1 = 2.0 * dirs[tok_band] + 0.3 * emb0
    # Target routers: experts 2g, 2g+1 answer band g; the rest stay random.
    rows = np.zeros((E, H), dtype=np.float32)
    for g in range(len(GROUPS)):
        rows[2 * g] = 6.0 * dirs[g]
        rows[2 * g + 1] = 5.0 * dirs[g]

    with open(os.path.join(out, "probe.jsonl"), "w") as f:
        lengths = [int(n) for n in rng.integers(12, 40, size=60)]
        f.write(gf.probe_lines(rng, lengths, V))

    for s in range(steps):
        step = 1000 * (s + 1)
        a = np.float32(1.0 - 0.5 ** (1.5 * s))  # 0, .65, .875, ... : grows, then saturates
        d = os.path.join(out, "step%d" % step)
        os.makedirs(d, exist_ok=True)
        w = dict(base)
        w["model.embed_tokens.weight"] = (1 - a) * emb0 + a * emb1
        for l in range(cfg["num_hidden_layers"]):
            name = "model.layers.%d.mlp.gate.weight" % l
            w[name] = (1 - a) * base[name] + a * (rows + 0.2 * base[name])
        tensors = [(n, np.ascontiguousarray(w[n], dtype=np.float32)) for n in base]
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        gf.write_safetensors(os.path.join(d, "model.safetensors"), tensors, "F32")
        with open(os.path.join(d, "trainer_state.json"), "w") as f:
            json.dump({"global_step": step}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
