#!/usr/bin/env python3
"""The attention variants on the RTL (docs/variants.md, "On the RTL"): every mechanism the v1
RTL runs, with dense and causal attention on the same shape, under Verilator.

    python scripts/variants_rtl.py              # the table (a few seconds; a first build 1-2 min)
    python scripts/variants_rtl.py --json       # machine-readable
    python scripts/variants_rtl.py --config tiny --n 64

Reference shape: B = 1, H = 1, P = M = N = 256, E = F = 16, standard-normal inputs (seed 0), bias
vectors standard normal (seed 1), sliding window W = 64, routing 4 clusters of 64 (k-means
centroids from ``kmeans_init_means``, seed 0), the `small` preset (8 x 8, fx16; for the sigmoid
cascades `small-sigmoid`, with the sigmoid unit; for causal Flow-Attention `small-flow`, with the
flow engine; for attention with its entropy `small-entropy`, with the entropy output), the native
harness (``simulate(..., mode="native")``). Every run is checked bit for bit against its golden
(``bit-exact``; for attention-entropy the output O and the entropy H); the error is the
mechanism's output (routing: scattered back) against the float64 reference of
fusemax/sw/variants.py (RMS relative to the reference's RMS, and max abs), for the entropy H
also H against the exact entropy (``attention_entropy(eps=0)``, nats).
"cycles vs dense" divides by the dense (non-causal) attention on N x N.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fusemax.config import load_config  # noqa: E402
from fusemax.hw.formats import FixedFormat  # noqa: E402
from fusemax.sim.attention import simulate  # noqa: E402
from fusemax.sw import golden_variants as G  # noqa: E402
from fusemax.sw import variants as V  # noqa: E402
from fusemax.sw.golden import error_stats  # noqa: E402
from fusemax.sw.library import load_cascade  # noqa: E402
from fusemax.sw.passes import analyse_passes  # noqa: E402
from fusemax.sw.patterns import Causal, Dense  # noqa: E402
from fusemax.sw.rtl_variants import NOT_ON_RTL  # noqa: E402


#: Names of the mechanisms that do not run on the RTL (as in docs/variants.md).
LABELS = {"act-calibration": "ACT calibration",
          "flowformer": "Flowformer, non-causal", "flowformer-causal": "Flowformer, causal"}


def passes(name: str) -> str:
    p = {r: x.passes for r, x in analyse_passes(load_cascade(name)).items()}
    return f"{p.get('M', '-')} / {p.get('P', '-')}"


def runs(args) -> list[dict]:
    cfg = load_config(args.config)
    N, E, F = args.n, args.e, args.e
    rng = np.random.default_rng(args.seed)
    q, k, v = (rng.standard_normal((1, 1, N, E)), rng.standard_normal((1, 1, N, E)),
               rng.standard_normal((1, 1, N, F)))
    brng = np.random.default_rng(args.seed + 1)
    kb, vb = brng.standard_normal(E), brng.standard_normal(F)
    jobs = [
        ("dense attention", "attention-1pass", {}, V.masked_softmax_attention(q, k, v, Dense())),
        ("causal attention", "attention-1pass", {"causal": True},
         V.masked_softmax_attention(q, k, v, Causal())),
        ("softmax-1 (causal)", "attention-softmax1", {"causal": True}, None),
        ("key bias k_bias (causal)", "attention-kbias", {"causal": True, "k_bias": kb}, None),
        ("key+value bias kv_bias (causal)", "attention-kvbias",
         {"causal": True, "k_bias": kb, "v_bias": vb}, None),
        (f"local, sliding window {args.window}", "attention-local", {"window": args.window}, None),
        (f"routing, {args.clusters} clusters x {N // args.clusters}", "attention-routing",
         {"clusters": args.clusters}, None),
        ("sigmoid, no norm (causal)", "sigmoid-nonorm", {"causal": True}, None),
        ("sigmoid, normalised (causal)", "sigmoid-norm", {"causal": True}, None),
        ("attention + entropy H (causal)", "attention-entropy", {"causal": True}, None),
        ("Flowformer, causal (clamp 1)", "flowformer-causal", {}, None),
    ]
    # the sigmoid cascades need the sigmoid unit (small -> the small-sigmoid preset's design);
    # the unnormalised sum grows with N: its output format gets 4 more integer bits (s16.8)
    scfg = cfg if cfg.sigmoid_unit else cfg.replace(name=f"{cfg.name}-sigmoid", sigmoid_unit=True)
    wide = replace(scfg.numerics, out=FixedFormat(16, scfg.numerics.out.frac - 4))
    # causal Flow-Attention runs on the flow engine (small -> the small-flow preset's design)
    fcfg = cfg if cfg.flow_unit else cfg.replace(name=f"{cfg.name}-flow", flow_unit=True)
    # the entropy H runs on the entropy output (small -> the small-entropy preset's design)
    ecfg = cfg if cfg.entropy_unit else cfg.replace(name=f"{cfg.name}-entropy", entropy_unit=True)
    configs = {"flowformer-causal": fcfg, "attention-entropy": ecfg, "sigmoid-norm": scfg,
               "sigmoid-nonorm": scfg.replace(name=f"{scfg.name}-{wide.out.describe().split()[0]}",
                                              numerics=wide)}
    out = []
    for label, cascade, opts, ref in jobs:
        print(f"running {label} ...", file=sys.stderr)
        run_cfg = configs.get(cascade, cfg)
        r = simulate(run_cfg, q, k, v, cascade=cascade, mode="native", **opts)
        if not (r["bit_exact"] and r["flags_match"]) or r["timeout"]:
            raise SystemExit(f"{label}: not bit-exact on the RTL: {r['mismatches']} mismatches, "
                             f"flags {r['error_flags']} (expected {r['expected_error_flags']})")
        # the float64 reference of fusemax/sw/variants.py (simulate's own for the variants)
        err = error_stats(r["output"], ref) if ref is not None else r["error"]
        var = r.get("variant")
        t = r["tiling"]
        out.append({
            "mechanism": label + (f" on {run_cfg.name}" if run_cfg is not cfg else ""), "cascade": cascade, "passes": passes(cascade), "runs_on_rtl": True,
            "config": run_cfg.name,
            "bit_exact": r["bit_exact"], "cycles": r["cycles"], "util_2d": r["utilization"]["2d"],
            "util_flow": r["utilization"].get("flow"),
            "tiles_run": t["tiles"],
            "tiles_total": var["tiles_total"] if var else t["P2"] * t["M1"],
            "rtl_shape": r["shape"], "host": var["how"] if var else "",
            "error_rel_rms": err["rel_rms"], "error_max_abs": err["max_abs"],
            "wall_sim_s": r["wall_s"]["sim"],
        })
        if "entropy" in r:  # the entropy H against the exact entropy (nats)
            h = r["entropy"]["error"]
            out[-1].update({"entropy_bit_exact": r["entropy"]["bit_exact"],
                            "error_h_rel_rms": h["rel_rms"], "error_h_max_abs": h["max_abs"],
                            "util_entropy": r["utilization"].get("entropy")})
    dense = out[0]["cycles"]
    for row in out:
        row["cycles_vs_dense"] = row["cycles"] / dense
    # softmax-1 / bias: the prepended key (what runs) against the state form of the cascades
    for row, fn in ((out[2], lambda m: G.softmax1_golden(q, k, v, cfg, method=m)),
                    (out[3], lambda m: G.kv_bias_golden(q, k, v, kb, None, cfg, method=m)),
                    (out[4], lambda m: G.kv_bias_golden(q, k, v, kb, vb, cfg, method=m))):
        d = np.abs(fn("state").out_codes - fn("prepend").out_codes)
        row["prepend_vs_state"] = {"codes_differ": int(np.count_nonzero(d)), "of": int(d.size),
                                   "max_lsb": int(d.max())}
    for cascade, missing in NOT_ON_RTL.items():
        out.append({"mechanism": LABELS[cascade], "cascade": cascade, "passes": passes(cascade),
                    "runs_on_rtl": False, "missing": missing})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="small", help="preset or config .json (default small)")
    ap.add_argument("--n", type=int, default=256, help="P = M = N (default 256)")
    ap.add_argument("--e", type=int, default=16, help="E = F (default 16)")
    ap.add_argument("--window", type=int, default=64, help="sliding window W (default 64)")
    ap.add_argument("--clusters", type=int, default=4, help="routing clusters (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()
    rows = runs(args)
    if args.json:
        print(json.dumps({"config": args.config, "N": args.n, "E": args.e, "F": args.e,
                          "window": args.window, "clusters": args.clusters, "rows": rows}, indent=1))
        return 0
    print(f"B=1 H=1 P=M={args.n} E=F={args.e}, seed {args.seed}, config {args.config}, native "
          f"harness; every RTL run bit-exact with its golden\n")
    print("| mechanism | cascade | passes M / P | runs on RTL | cycles | 2D utilization | cycles vs "
          "dense | tiles run / total | error vs float64 (rel RMS, max abs) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if not r["runs_on_rtl"]:
            print(f"| {r['mechanism']} | `{r['cascade']}` | {r['passes']} | no | — | — | — | — | — |")
            continue
        print(f"| {r['mechanism']} | `{r['cascade']}` | {r['passes']} | yes (bit-exact) | "
              f"{r['cycles']} | {100 * r['util_2d']:.1f} %"
              + (f" (flow engine busy {100 * r['util_flow']:.1f} %)" if r.get("util_flow") else "")
              + f" | {r['cycles_vs_dense']:.3f} | "
              + (f"— (no tiles: {args.n} tokens) | " if r.get("util_flow") else
                 f"{r['tiles_run']} / {r['tiles_total']} | ")
              + ("O " if "error_h_rel_rms" in r else "")
              + f"{r['error_rel_rms']:.2g}, {r['error_max_abs']:.2g}"
              + (f"; H {r['error_h_rel_rms']:.2g}, {r['error_h_max_abs']:.2g} nats"
                 if "error_h_rel_rms" in r else "") + " |")
    print()
    for r in rows:
        if "prepend_vs_state" in r:
            d = r["prepend_vs_state"]
            print(f"{r['cascade']}: the prepended key (RTL) vs the state form: {d['codes_differ']} "
                  f"of {d['of']} output codes differ, by at most {d['max_lsb']} LSB")
    for r in rows:
        if not r["runs_on_rtl"]:
            print(f"{r['cascade']}: the v1 RTL lacks {r['missing']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
