#!/usr/bin/python3
"""metrics_ref.py — an independent implementation of SPEC §4's metrics, to
check what `grokwatchd analyze --json` prints.

It reads the routing files (with stfile.py, not the C reader), computes in
plain Python/numpy, float64, from the SPEC's words alone:

  - pathways (tau prefix, ties to the lower index) and the mean Levenshtein
    distance over all unordered pairs by the textbook O(nm) dynamic program;
  - the standard error of each set's distance over the choice of samples:
    the delete-one jackknife, each leave-one-out mean recomputed from the
    distance matrix with that sample's row and column removed;
  - consistency: e_l = W_l^T gbar, c_l = cos(e_l, e_{l+1}),
    C_i = 1 - mean(c)/(max(c) + 1e-8), samples with max <= the floor (0.05)
    left out, none at all with fewer than 3 MoE layers;
  - the loss mean, the memorized subset of every step against the latest
    (the paper's rule: loss <= epsilon and within delta of the latest loss
    at EVERY checkpoint from that step to the latest), with epsilon given
    or "auto" (per group, the smallest multiple of 0.1 at which the share
    of its samples with a latest loss at or below it reaches
    --memorized-share, found by walking the grid), the routing health from
    the per-token records, and churn between consecutive steps;

and compares them with the JSON lines `analyze --json` printed, as TAP.

usage: metrics_ref.py ANALYZE_JSONL ROUTING_FILE... [--tau X] [--epsilon X|auto] [--delta X]
                     [--memorized-share X]

ROUTING_FILEs are given in any order; steps come from their metadata.
Exit 0 when everything agrees, 1 otherwise.
"""

import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stfile  # noqa: E402

CONSISTENCY_FLOOR = 0.05  # SPEC §4: C_i undefined at or below it
TOL_COS = 2e-5      # consistency from fp32 sgemm vs float64 here
TOL_LOSS = 1e-6     # a mean of the same float32 losses


def pathway_layer(w, tau):
    order = sorted(range(len(w)), key=lambda e: (-float(w[e]), e))
    total = 0.0
    for e in order:
        total += float(w[e])
    target = min(tau, total)
    acc = 0.0
    kept = []
    for e in order:
        kept.append(e)
        acc += float(w[e])
        if acc >= target:
            break
    return ",".join(str(e) for e in kept)


def pathway(g, tau):
    return "-".join(pathway_layer(g[l], tau) for l in range(g.shape[0]))


def levenshtein(a, b):
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1,
                         prev[j - 1] + (a[i - 1] != b[j - 1]))
        prev = cur
    return prev[len(b)]


def mean_distance(strings):
    """(mean over pairs, pairs, jackknife standard error or None)."""
    n = len(strings)
    if n < 2:
        return None, 0, None
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            d[i, j] = d[j, i] = levenshtein(strings[i], strings[j])
    pairs = n * (n - 1) // 2
    mean = d[np.triu_indices(n, 1)].sum() / pairs
    if n < 3:
        return mean, pairs, None
    loo = []
    for i in range(n):
        keep = [k for k in range(n) if k != i]
        sub = d[np.ix_(keep, keep)]
        loo.append(sub[np.triu_indices(n - 1, 1)].mean())
    loo = np.array(loo)
    se = math.sqrt((n - 1) / n * ((loo - loo.mean()) ** 2).sum())
    return mean, pairs, se


def auto_epsilon(latest_losses, share):
    """The smallest k * 0.1 (k >= 1) at which at least ceil(share * n) of
    the n latest losses are <= it; None when that many are not finite."""
    n = len(latest_losses)
    need = max(1, math.ceil(share * n - 1e-9))
    finite = [x for x in latest_losses if not math.isnan(x)]
    if n == 0 or len(finite) < need:
        return None
    k = 1
    while sum(1 for x in finite if x <= k * 0.1) < need:
        k += 1
    return k * 0.1


def consistency(gbar, routers):
    """Per-sample (C_i or None, mean_l c_l)."""
    if routers is None or gbar.shape[1] < 3:
        return None
    out = []
    for i in range(gbar.shape[0]):
        es = [routers[l].astype(np.float64).T @ gbar[i, l].astype(np.float64)
              for l in range(gbar.shape[1])]
        cs = []
        for l in range(len(es) - 1):
            na, nb = np.linalg.norm(es[l]), np.linalg.norm(es[l + 1])
            cs.append(0.0 if na == 0 or nb == 0 else float(es[l] @ es[l + 1] / (na * nb)))
        mx = max(cs)
        c = None if mx <= CONSISTENCY_FLOOR else 1.0 - (sum(cs) / len(cs)) / (mx + 1e-8)
        out.append((c, sum(cs) / len(cs)))
    return out


def load(path):
    f = stfile.SafeTensors(path)
    md = f.metadata
    r = {
        "path": path,
        "step": int(md["step"]) if "step" in md else -1,
        "gbar": f.get("gbar"),
        "loss": f.get("loss"),
        "ntokens": f.raw("ntokens"),
        "groups": json.loads(md["groups"]),
        "top_k": int(md.get("top_k", 0)),
    }
    L = r["gbar"].shape[1]
    names = f.tensors
    r["routers"] = ([f.get("router.%d" % l) for l in range(L)]
                    if "router.0" in names else None)
    r["topk_ids"] = f.raw("topk_ids") if "topk_ids" in names else None
    r["entropy"] = f.get("entropy") if "entropy" in names else None
    r["lse"] = f.get("lse") if "lse" in names else None
    return r


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, ok, name, detail=""):
        self.n += 1
        print("%s %d - %s" % ("ok" if ok else "not ok", self.n, name))
        if not ok:
            self.failed += 1
            if detail:
                print("#   " + detail)


def near(a, b, tol, rel=False):
    if a is None or b is None:
        return a is None and b is None
    if rel:
        return abs(a - b) <= tol * max(1.0, abs(b))
    return abs(a - b) <= tol


def set_values(r, idx, tau, cons):
    strings = [pathway(r["gbar"][i], tau) for i in idx]
    d, pairs, se = mean_distance(strings)
    losses = [float(r["loss"][i]) for i in idx if not math.isnan(float(r["loss"][i]))]
    v = {"n_samples": len(idx), "pathway_distance": d, "n_pairs": pairs,
         "pathway_distance_se": se,
         "loss": sum(losses) / len(losses) if losses else None}
    if cons is not None and idx:
        cd = [cons[i][0] for i in idx if cons[i][0] is not None]
        v["pathway_consistency"] = sum(cd) / len(cd) if cd else None
        v["adjacent_cosine"] = sum(cons[i][1] for i in idx) / len(idx)
        v["n_undefined"] = sum(1 for i in idx if cons[i][0] is None)
    else:
        v["pathway_consistency"] = None
        v["adjacent_cosine"] = None
    return v


def compare_set(tap, where, got, want):
    tap.check(got.get("n_samples") == want["n_samples"], where + " n_samples",
              "got %r want %r" % (got.get("n_samples"), want["n_samples"]))
    if "epsilon" in want:
        tap.check(near(got.get("epsilon"), want["epsilon"], 1e-12), where + " epsilon",
                  "got %r want %r" % (got.get("epsilon"), want["epsilon"]))
    if want["n_samples"] == 0:
        return
    gd = got.get("pathway_distance")
    tap.check(near(gd, want["pathway_distance"], 1e-9), where + " pathway_distance",
              "got %r want %r" % (gd, want["pathway_distance"]))
    gs = got.get("pathway_distance_se")
    tap.check(near(gs, want["pathway_distance_se"], 1e-9, rel=True),
              where + " pathway_distance_se", "got %r want %r" % (gs, want["pathway_distance_se"]))
    tap.check(near(got.get("loss"), want["loss"], TOL_LOSS, rel=True), where + " loss",
              "got %r want %r" % (got.get("loss"), want["loss"]))
    for k in ("pathway_consistency", "adjacent_cosine"):
        tap.check(near(got.get(k), want[k], TOL_COS), where + " " + k,
                  "got %r want %r" % (got.get(k), want[k]))
    if "n_undefined" in want:
        tap.check(got.get("n_undefined") == want["n_undefined"], where + " n_undefined",
                  "got %r want %r" % (got.get("n_undefined"), want["n_undefined"]))


def health(r):
    ids = r["topk_ids"]
    if ids is None:
        return None
    T, L, k = ids.shape
    E = r["gbar"].shape[2]
    layers = []
    for l in range(L):
        cnt = np.bincount(ids[:, l, :].reshape(-1).astype(np.int64), minlength=E)
        load_ = cnt / float(T * k)
        nz = load_[load_ > 0]
        layers.append({
            "imbalance": float(load_.max() * E),
            "load_entropy": float(-(nz * np.log(nz)).sum() / math.log(E)),
            "dead_experts": int((cnt == 0).sum()),
            "router_entropy": float(r["entropy"][:, l].astype(np.float64).mean()),
            "z_loss": float((r["lse"][:, l].astype(np.float64) ** 2).mean()),
        })
    return layers


def churn(prev, cur):
    a, b = prev["topk_ids"], cur["topk_ids"]
    if a is None or b is None or a.shape != b.shape:
        return None
    sa = np.sort(a, axis=2)
    sb = np.sort(b, axis=2)
    return float((sa != sb).any(axis=2).mean())


def main(argv):
    args = argv[1:]
    tau, eps, delta, share = 0.7, 1.0, 0.05, 0.2
    files = []
    i = 0
    while i < len(args):
        if args[i] in ("--tau", "--epsilon", "--delta", "--memorized-share"):
            v = args[i + 1]
            if args[i] == "--tau":
                tau = float(v)
            elif args[i] == "--epsilon":
                eps = v if v == "auto" else float(v)
            elif args[i] == "--delta":
                delta = float(v)
            else:
                share = float(v)
            i += 2
        else:
            files.append(args[i])
            i += 1
    if len(files) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(files[0]) as f:
        results = [json.loads(line) for line in f if line.strip()]
    routs = sorted((load(p) for p in files[1:]), key=lambda r: r["step"])
    tap = Tap()
    tap.check(len(results) == len(routs), "one JSON line per checkpoint",
              "%d lines, %d routing files" % (len(results), len(routs)))
    by_step = {(-1 if res.get("step") is None else res["step"]): res for res in results}
    latest = routs[-1]
    # Each group's epsilon, against the latest checkpoint.
    geps = {}
    for g in set(latest["groups"]):
        if eps == "auto":
            geps[g] = auto_epsilon([float(latest["loss"][s]) for s in range(len(latest["groups"]))
                                    if latest["groups"][s] == g], share)
        else:
            geps[g] = eps
    for pos, r in enumerate(routs):
        res = by_step.get(r["step"])
        name = "step %d" % r["step"]
        tap.check(res is not None, name + " present")
        if res is None:
            continue
        N = r["gbar"].shape[0]
        cons = consistency(r["gbar"], r["routers"])
        groups = []
        for g in r["groups"]:
            if g not in groups:
                groups.append(g)
        # Memorized at this step against the latest (SPEC §4): at every
        # checkpoint from here to the latest, loss <= epsilon and within
        # delta of the latest loss.
        later = routs[pos:]
        memo = []
        for s in range(N):
            e = geps[r["groups"][s]]
            ok = e is not None
            for q in later:
                lq, ll = float(q["loss"][s]), float(latest["loss"][s])
                if math.isnan(lq) or math.isnan(ll) or lq > e or abs(lq - ll) > delta:
                    ok = False
            memo.append(ok)
        for g in groups + ["all"]:
            idx = [s for s in range(N) if g == "all" or r["groups"][s] == g]
            got = res["groups"].get(g, {})
            compare_set(tap, "%s group %s" % (name, g), got, set_values(r, idx, tau, cons))
            midx = [s for s in idx if memo[s]]
            want = set_values(r, midx, tau, cons)
            if g == "all":
                es = set(geps.values())
                want["epsilon"] = es.pop() if len(es) == 1 else None
            else:
                want["epsilon"] = geps[g]
            compare_set(tap, "%s group %s memorized" % (name, g), got.get("memorized", {}), want)
        hl = health(r)
        if hl is not None:
            got_layers = (res.get("health") or {}).get("layers") or []
            tap.check(len(got_layers) == len(hl), name + " health layers")
            for l, (gl, wl) in enumerate(zip(got_layers, hl)):
                for k, v in wl.items():
                    tap.check(near(gl.get(k), v, 1e-5, rel=True), "%s health layer %d %s" % (name, l, k),
                              "got %r want %r" % (gl.get(k), v))
        want_churn = churn(routs[pos - 1], r) if pos > 0 else None
        tap.check(near(res.get("churn"), want_churn, 1e-9), name + " churn",
                  "got %r want %r" % (res.get("churn"), want_churn))
    print("1..%d" % tap.n)
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
