#!/usr/bin/env python3
"""Figures of docs/variants.md: every attention variant's cascade, its pass count, the float64
cascade evaluation against the independent reference, and the bit-exact model's error.

    python scripts/variants_accuracy.py            # the tables (~5 s)
    python scripts/variants_accuracy.py --json     # machine-readable

Reference shape: B = 1, H = 2, P = M = 64, E = F = 16, standard-normal inputs (seed 0), cascade
chunks M0 = 8, bit-exact models on the `small` preset (8 x 8, fx16). Errors are measured
against the float64 references of fusemax.sw.variants (transliterations of the official code),
never against the code under test.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from fusemax.config import FuseMaxConfig, NumericsConfig, preset
from fusemax.hw.formats import FixedFormat
from fusemax.sw import golden_variants as G
from fusemax.sw import variants as V
from fusemax.sw.golden import error_stats
from fusemax.sw.library import load_cascade
from fusemax.sw.passes import analyse_passes
from fusemax.sw.patterns import BlockLocal, Causal, Routing, sliding_window, tile_stats
from fusemax.sw.reference import evaluate

B, H, N, E, F = 1, 2, 64, 16, 16
WINDOW, CLUSTERS, W = 16, 4, 16
M0 = 8


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, H, N, E)), rng.standard_normal((B, H, N, E)),
            rng.standard_normal((B, H, N, F)))


def rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def cascade(name, arrays, out="O", **params):
    checked = load_cascade(name)
    chunked = "M0" in {p.name for p in checked.cascade.params}
    return evaluate(checked, arrays, params={"M0": M0, **params} if chunked else None).outputs[out]


def passes(name):
    return {r: x.passes for r, x in analyse_passes(load_cascade(name)).items() if r in ("M", "P")}


def golden_row(result, ref, out=None):
    """Error of ``out`` (default ``result.out``) against ``ref``, and ``result``'s saturations."""
    err = error_stats(result.out if out is None else out, ref)
    return {"rel_rms": float(f"{err['rel_rms']:.3g}"), "max_abs": float(f"{err['max_abs']:.3g}"),
            "saturated": {k: n for k, n in result.saturation.items() if n}}


def rows():
    q, k, v = inputs()
    rng = np.random.default_rng(1)
    kb, vb = rng.standard_normal((B, H, E)), rng.standard_normal((B, H, F))
    cfg = preset("small")
    out8 = FuseMaxConfig("small-out8", 8, 8, NumericsConfig(out=FixedFormat(16, 8)))
    base = {"Q": q, "K": k, "V": v}
    table = []

    def add(mech, name, ref, cas, golden=None, note=""):
        table.append({"mechanism": mech, "cascade": name, "passes": passes(name),
                      "cascade_vs_reference": float(f"{rel(cas, ref):.2g}"),
                      "golden": golden, "note": note})

    ref = V.softmax1_attention(q, k, v)
    add("softmax-1", "attention-softmax1", ref, cascade("attention-softmax1", base),
        {"state": golden_row(G.softmax1_golden(q, k, v, cfg), ref),
         "prepend": golden_row(G.softmax1_golden(q, k, v, cfg, method="prepend"), ref)})
    ref = V.kv_bias_attention(q, k, v, kb)
    add("key bias (k_bias)", "attention-kbias", ref, cascade("attention-kbias", {**base, "KB": kb}),
        {"state": golden_row(G.kv_bias_golden(q, k, v, kb, None, cfg), ref)})
    ref = V.kv_bias_attention(q, k, v, kb, vb)
    add("key+value bias (kv_bias)", "attention-kvbias", ref,
        cascade("attention-kvbias", {**base, "KB": kb, "VB": vb}),
        {"state": golden_row(G.kv_bias_golden(q, k, v, kb, vb, cfg), ref),
         "prepend": golden_row(G.kv_bias_golden(q, k, v, kb, vb, cfg, method="prepend"), ref)})
    ref = V.sigmoid_attention(q, k, v, False)
    add("sigmoid, no norm", "sigmoid-nonorm", ref, cascade("sigmoid-nonorm", base),
        {"fx16": golden_row(G.sigmoid_golden(q, k, v, cfg, False), ref),
         "out s16.8": golden_row(G.sigmoid_golden(q, k, v, out8, False), ref)},
        "outputs grow like sqrt(M): s16.12 (±8) saturates")
    ref = V.sigmoid_attention(q, k, v, True)
    add("sigmoid, normalised", "sigmoid-norm", ref, cascade("sigmoid-norm", base),
        {"fx16": golden_row(G.sigmoid_golden(q, k, v, cfg, True), ref)})
    ref_h = V.attention_entropy(q, k, eps=0.0)
    ent = G.entropy_golden(q, k, v, cfg)
    add("entropy H (exact)", "attention-entropy", ref_h, cascade("attention-entropy", base, out="H"),
        {"H": golden_row(ent, ref_h, out=ent.extra["H"]),
         "O": golden_row(ent, V.masked_softmax_attention(q, k, v, Causal()))},
        f"official eps=1e-9 form differs by {np.max(np.abs(ref_h - V.attention_entropy(q, k))):.1e}")
    qa, ka, va = inputs(2)
    u = np.ones(E) / np.sqrt(E)
    qa, ka = qa + 2 * u, ka.copy()   # queries share a direction u; keys 0 (BOS) and 9 align
    ka[:, :, 0] += 10 * u
    ka[:, :, 9] += 8 * u
    act = V.act_calibration(qa, ka, va)
    act_g = G.act_golden(qa, ka, va, cfg)
    sinks = [list(map(int, s)) for s in act["sinks"][0]]
    same = sinks == [list(map(int, np.nonzero(s)[0])) for s in act_g.extra["S"][0]]
    add("ACT calibration", "act-calibration", act["out"],
        cascade("act-calibration", {"Q": qa, "K": ka, "V": va}),
        {"fx16": golden_row(act_g, act["out"])},
        f"sink keys found: {sinks} (a sink planted at 0, 9); the golden's: "
        f"{'the same' if same else 'DIFFERENT'}")
    ref = V.flow_attention(q, k, v)
    add("Flowformer, non-causal", "flowformer", ref, cascade("flowformer", base),
        {"fx16": golden_row(G.flowformer_golden(q, k, v, cfg), ref)})
    ref = V.flow_attention_causal(q, k, v)
    add("Flowformer, causal", "flowformer-causal", ref, cascade("flowformer-causal", base),
        {"fx16": golden_row(G.flowformer_causal_golden(q, k, v, cfg), ref)})
    pattern = sliding_window(WINDOW)
    ref = V.masked_softmax_attention(q, k, v, pattern)
    loc = G.local_golden(q, k, v, cfg, window=WINDOW)
    add(f"local, window {WINDOW}", "attention-local", ref, cascade("attention-local", base, W=WINDOW),
        {"fx16": golden_row(loc, ref)}, f"tiles run {loc.tiles} of {loc.tiles_total}")
    mu = np.random.default_rng(3).standard_normal((H, CLUSTERS, E))
    iq, ik = V.route_topw(q, k, mu, W)
    gq, gk, gv = (V.gather_clusters(x, i) for x, i in ((q, iq), (k, ik), (v, ik)))
    ref = V.routing_attention(q, k, v, mu, W)
    routed = V.scatter_mean(cascade("attention-routing", {"Q": gq, "K": gk, "V": gv}), iq, N)
    rg = G.routing_golden(gq, gk, gv, cfg)
    add(f"routing, {CLUSTERS} clusters x {W}", "attention-routing", ref, routed,
        {"fx16": golden_row(rg, ref, out=V.scatter_mean(rg.out, iq, N))},
        f"tiles run {rg.tiles} of {rg.tiles_total} (gathered layout)")
    return table


def tile_rows():
    out = []
    for label, pattern, n, t in [
        (f"sliding window {WINDOW}", sliding_window(WINDOW), N, 8),
        (f"routing {CLUSTERS} x {W}", Routing.uniform(CLUSTERS, W), N, 8),
        ("causal", Causal(), 8192, 256),
        ("local block 256, 1 back (pg19 8k)", BlockLocal(256, 1, 0, True), 8192, 256),
        ("routing 16 x 512 (pg19 8k)", Routing.uniform(16, 512), 8192, 256),
        ("routing 16 x 512, causal", Routing.uniform(16, 512, causal=True), 8192, 256),
        ("sliding window 1024", sliding_window(1024), 8192, 256),
    ]:
        s = tile_stats(pattern, n, n, t, t)
        out.append({"pattern": label, "N": n, "tile": t, "touched": s["touched"], "tiles": s["tiles"],
                    "partial": s["partial"], "skipped": round(s["skipped_fraction"], 4),
                    "scores_kept": round(s["scores_fraction"], 4)})
    return out


def fmt_golden(g):
    if g is None:
        return "no"
    return "; ".join(f"{k}: {v['rel_rms']:.2g} rel RMS, {v['max_abs']:.2g} max"
                     + (f" (saturated {v['saturated']})" if v["saturated"] else "")
                     for k, v in g.items())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    table, tiles = rows(), tile_rows()
    if args.json:
        print(json.dumps({"variants": table, "tiles": tiles}, indent=1))
        return
    print(f"B={B} H={H} P=M={N} E={E} F={F}, seed 0, M0={M0}, golden on preset small (8x8, fx16)\n")
    print("| mechanism | cascade | passes M / P | cascade vs float64 reference | bit-exact golden: error vs float64 | note |")
    print("|---|---|---|---|---|---|")
    for r in table:
        p = r["passes"]
        print(f"| {r['mechanism']} | `{r['cascade']}` | {p.get('M', '-')} / {p.get('P', '-')} | "
              f"{r['cascade_vs_reference']:.1e} | {fmt_golden(r['golden'])} | {r['note']} |")
    print("\n| pattern | N | tile | tiles touched | of | partial | skipped | scores kept |")
    print("|---|---|---|---|---|---|---|---|")
    for t in tiles:
        print(f"| {t['pattern']} | {t['N']} | {t['tile']} | {t['touched']} | {t['tiles']} | "
              f"{t['partial']} | {100 * t['skipped']:.1f}% | {100 * t['scores_kept']:.1f}% |")


if __name__ == "__main__":
    main()
