#!/usr/bin/env python3
"""Accuracy figures of the fixed-point numerics (recorded in docs/numerics.md).

    python scripts/accuracy.py            # everything (~15 s)
    python scripts/accuracy.py --quick    # skip the M = 65 536 runs
    python scripts/accuracy.py --json     # machine-readable

Every error is measured against float64 (direct stable softmax(scale·QKᵀ)V, and exact 2**x),
never against the code under test. Inputs: standard-normal Q, K, V, seed 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np

from fusemax.config import NumericsConfig, preset
from fusemax.sw import numerics as nm
from fusemax.sw.golden import attention_1pass, error_stats, reference_attention


def normal(seed, B, H, P, M, E, F):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, H, P, E)), rng.standard_normal((B, H, M, E)),
            rng.standard_normal((B, H, M, F)))


def attention_case(config, P, M, E, F, seed=0, B=1, H=1):
    q, k, v = normal(seed, B, H, P, M, E, F)
    t0 = time.perf_counter()
    r = attention_1pass(q, k, v, config)
    secs = time.perf_counter() - t0
    err = error_stats(r.out, reference_attention(q, k, v))
    return {"config": config.name, "numerics": config.numerics.name, "shape": dict(B=B, H=H, P=P, M=M, E=E, F=F),
            **{k: float(f"{v:.4g}") for k, v in err.items()},
            "saturation": r.saturation, "div_by_zero": r.div_by_zero, "seconds": round(secs, 2)}


def internal_case(config, P, M, E, F, seed=0):
    """Error of RNV / RD computed exactly from the final integer state (the divide without the
    output format's rounding): what the datapath loses before the last rounding point."""
    q, k, v = normal(seed, 1, 1, P, M, E, F)
    r = attention_1pass(q, k, v, config, trace=True)
    nc = config.numerics
    last = r.trace[-1]
    exact_div = nc.rnv.to_float(last["RNV"]) / nc.rd.to_float(last["RD"])[..., None]
    err = error_stats(exact_div, reference_attention(q, k, v))
    return {"config": config.name + " RNV/RD", "shape": dict(B=1, H=1, P=P, M=M, E=E, F=F),
            **{k: float(f"{v:.4g}") for k, v in err.items()}, "saturation": r.saturation, "seconds": None}


def exp_case(nc: NumericsConfig):
    x = np.arange(-(1 << nc.score.width) + 1, 1, dtype=np.int64)
    y = nc.exp.to_float(nm.exp2(x, False, nc))
    ref = np.exp2(x * 2.0 ** -nc.score.frac)
    err = np.abs(y - ref)
    ideal = np.abs(nc.exp.to_float(nc.exp.quantize(ref)[0]) - ref)
    rel = err / ref
    return {"degree": nc.exp_degree, "horner_bits": nc.exp_frac + 1, "cycles": nc.exp_cycles,
            "inputs": int(len(x)), "max_abs": float(f"{err.max():.4g}"),
            "max_abs_lsb": round(float(err.max() / nc.exp.lsb), 3),
            "rms_lsb": round(float(np.sqrt(np.mean(err ** 2)) / nc.exp.lsb), 3),
            "ideal_rms_lsb": round(float(np.sqrt(np.mean(ideal ** 2)) / nc.exp.lsb), 3),
            "correctly_rounded": round(float(np.mean(err <= ideal + 1e-18)), 4),
            "max_rel_y_ge_0.5": float(f"{rel[ref >= 0.5].max():.3g}"),
            "max_rel_y_ge_2^-6": float(f"{rel[ref >= 2 ** -6].max():.3g}"),
            "max_rel_y_ge_lsb": float(f"{rel[ref >= nc.exp.lsb].max():.3g}")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="skip the M = 65 536 runs")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict = {}

    base = preset("medium")
    out["config"] = base.to_dict()
    out["attention_fx16"] = [attention_case(preset(n), 256, 256, 64, 64) for n in ("tiny", "medium", "large")]
    out["attention_fx16_before_output_rounding"] = internal_case(base, 256, 256, 64, 64)
    out["attention_int8"] = [attention_case(preset(n), 256, 256, 64, 64) for n in ("small-int8", "medium-int8")]
    out["exp2"] = [exp_case(dataclasses.replace(base.numerics, exp_degree=d)) for d in (3, 4, 5, 6)]
    if not args.quick:
        out["long_tiny"] = attention_case(preset("tiny"), 256, 65536, 64, 64)
        # worst case for the accumulators: every score equal -> SLN = 1 for all keys, RD = M
        cfg = preset("tiny")
        M = 65536
        vmax = cfg.numerics.v.max_value
        t0 = time.perf_counter()
        r = attention_1pass(np.zeros((1, 1, 4, 64)), np.ones((1, 1, M, 64)), np.full((1, 1, M, 64), vmax), cfg)
        out["long_tiny_worst_case"] = {"M": M, "V": vmax, "out_exact": bool(np.all(r.out == vmax)),
                                       "saturation": r.saturation, "seconds": round(time.perf_counter() - t0, 2)}

    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(base.numerics.describe())
    print("\n1-pass attention vs float64 (standard normal, seed 0):")
    rows = out["attention_fx16"] + [out["attention_fx16_before_output_rounding"]] + out["attention_int8"]
    if "long_tiny" in out:
        rows.append(out["long_tiny"])
    print(f"  {'config':20s} {'P':>5s} {'M':>6s} {'E=F':>4s} {'rel RMS':>9s} {'RMS':>9s} {'max abs':>9s}  saturated  time")
    for r in rows:
        s = r["shape"]
        sat = sum(r["saturation"].values())
        print(f"  {r['config']:20s} {s['P']:5d} {s['M']:6d} {s['E']:4d} {r['rel_rms']:9.3g} {r['rms']:9.3g} "
              f"{r['max_abs']:9.3g}  {sat:9d}  " + (f"{r['seconds']:.2f} s" if r["seconds"] is not None else "-"))
    print("\nexp2 alone, every input x = BQK − RM of the s16.10 score difference, output u16.15:")
    print(f"  {'deg':>3s} {'cycles':>6s} {'max abs':>9s} {'(lsb)':>6s} {'rms lsb':>7s} {'ideal':>6s} "
          f"{'exact':>6s} {'rel y>=.5':>9s} {'rel y>=2^-6':>11s}")
    for e in out["exp2"]:
        print(f"  {e['degree']:3d} {e['cycles']:6d} {e['max_abs']:9.3g} {e['max_abs_lsb']:6.3f} {e['rms_lsb']:7.3f} "
              f"{e['ideal_rms_lsb']:6.3f} {e['correctly_rounded']:6.3f} {e['max_rel_y_ge_0.5']:9.3g} "
              f"{e['max_rel_y_ge_2^-6']:11.3g}")
    if "long_tiny_worst_case" in out:
        w = out["long_tiny_worst_case"]
        print(f"\nworst case for RD/RNV on tiny: M = {w['M']} equal scores, V = {w['V']}: output exact: "
              f"{w['out_exact']}, saturated: {sum(w['saturation'].values())}, {w['seconds']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
