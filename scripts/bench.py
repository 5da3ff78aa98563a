"""`make bench`: the FuseMax binding on the RTL, per preset, against the models and the baseline.

For each preset (default tiny, small, medium, large) it runs one attention workload
(B=1, H=1, M = --chunks x rows keys, P = --blocks x cols queries, E = F = --dim) through the
whole flow (compile, Verilator, bit-exact check against the golden model) and prints:

* cycles, 2D and 1D utilization (the RTL's own counters) and MAC efficiency (BQK and SLNV MAC
  cycles / cycles: the figure to compare with other hardware);
* the paper's cost model (``predict_rtl``: its FuseMax formula) and the model of our binding
  (``rtl_binding_model``) for the same configuration and shape, with measured / model;
* simulated cycles per second in both run modes (cocotb, and the native C++ harness);
* the +Architecture ablation (every tile serial) measured on the same RTL, and the speedup of
  the FuseMax binding over it, measured and as the two models predict it;
* the 3-pass cascade (``attention-3pass``: a pass for the global max, then passes 2 and 3
  merged) on the same RTL, and the 1-pass cascade's speedup over it, measured and modelled.

Then one long reference run (``--reference``, default medium with M = P = 1024): its 2D
utilization against the paper's steady-state figure for the same array and shape.

Results go to stdout and, as JSON, to ``--json`` (default build/bench.json). The docs record the
figures with this command (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fusemax.config import preset  # noqa: E402
from fusemax.errors import FuseMaxError  # noqa: E402
from fusemax.sim.attention import simulate  # noqa: E402


def _inputs(P: int, M: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((1, 1, P, dim)), rng.standard_normal((1, 1, M, dim)),
            rng.standard_normal((1, 1, M, dim)))


def _measure(cfg, q, k, v, label: str, **kw) -> dict:
    t0 = time.monotonic()
    rep = simulate(cfg, q, k, v, **kw)
    if not rep["bit_exact"] or not rep["flags_match"]:
        raise SystemExit(f"{cfg.name} {label}: the RTL does not match the golden model")
    return {"cycles": rep["cycles"], "util_2d": rep["utilization"]["2d"], "util_1d": rep["utilization"]["1d"],
            "mac_efficiency": rep["mac_efficiency"], "model": rep["model"],
            "sim_cycles_per_s": rep["sim_cycles_per_s"], "wall_s": time.monotonic() - t0}


def run(name: str, chunks: int, blocks: int, dim: int, seed: int) -> dict:
    cfg = preset(name)
    M, P = chunks * cfg.rows, blocks * cfg.cols
    q, k, v = _inputs(P, M, dim, seed)
    out = {"config": name, "rows": cfg.rows, "cols": cfg.cols, "shape": dict(B=1, H=1, M=M, P=P, E=dim, F=dim)}
    runs = {}
    for label, kw in (("native", dict(mode="native")), ("cocotb", dict(mode="cocotb")),
                      ("architecture", dict(mode="native", binding="architecture")),
                      ("three_pass", dict(mode="native", cascade="attention-3pass"))):
        runs[label] = _measure(cfg, q, k, v, label, **kw)
        if label == "cocotb":
            assert runs[label]["cycles"] == runs["native"]["cycles"], "the two run modes disagree on cycles"
    fm, ar, tp = runs["native"], runs["architecture"], runs["three_pass"]
    out.update(runs=runs, paper_util_2d=fm["model"]["paper_model_util_2d"],
               paper_util_2d_steady=fm["model"]["paper_model_util_2d_steady"],
               speedup_vs_architecture=ar["cycles"] / fm["cycles"],
               speedup_vs_architecture_rtl_model=ar["model"]["rtl_model_cycles"] / fm["model"]["rtl_model_cycles"],
               speedup_vs_architecture_paper_model=ar["model"]["paper_model_cycles"] / fm["model"]["paper_model_cycles"],
               speedup_vs_3pass=tp["cycles"] / fm["cycles"],
               speedup_vs_3pass_rtl_model=tp["model"]["rtl_model_cycles"] / fm["model"]["rtl_model_cycles"])
    return out


def reference_point(name: str, M: int, P: int, dim: int, seed: int) -> dict:
    """The issue's reference point: one long run (native harness) against the paper's
    steady-state 2D utilization for the same array and shape."""
    cfg = preset(name)
    q, k, v = _inputs(P, M, dim, seed)
    r = _measure(cfg, q, k, v, "reference", mode="native")
    steady = r["model"]["paper_model_util_2d_steady"]
    return {"config": name, "rows": cfg.rows, "cols": cfg.cols, "shape": dict(B=1, H=1, M=M, P=P, E=dim, F=dim),
            "run": r, "paper_util_2d_steady": steady, "gap_points": 100 * (steady - r["util_2d"])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default="tiny,small,medium,large")
    ap.add_argument("--chunks", type=int, default=64, help="K/V chunks per query block (M = chunks x rows)")
    ap.add_argument("--blocks", type=int, default=2, help="query blocks (P = blocks x cols)")
    ap.add_argument("--dim", type=int, default=32, help="E = F")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", default="medium:1024:1024",
                    help="PRESET:M:P of the long reference run ('' to skip)")
    ap.add_argument("--json", default=str(ROOT / "build" / "bench.json"))
    args = ap.parse_args(argv)
    reference = None
    if args.reference:
        parts = args.reference.split(":")
        if len(parts) != 3 or not all(x.isdigit() and int(x) > 0 for x in parts[1:]):
            ap.error(f"--reference is PRESET:M:P with positive integers M and P, got {args.reference!r}")
        reference = parts[0], int(parts[1]), int(parts[2])
    for name in [n.strip() for n in args.presets.split(",")] + ([reference[0]] if reference else []):
        try:
            preset(name)
        except FuseMaxError as exc:
            ap.error(str(exc))
    results: dict = {"presets": [], "reference": None}
    print(f"fusemax bench: B=1 H=1 M={args.chunks} x rows P={args.blocks} x cols E=F={args.dim}, "
          "fx16, memory latency per config; every run bit-exact with the golden model")
    head = (f"{'config':8s} {'array':>6s} {'cycles':>9s} {'2D %':>6s} {'1D %':>6s} {'MAC %':>6s} "
            f"{'paper 2D %':>10s} {'meas/rtl-model':>14s} {'meas/paper':>10s} {'kcyc/s cocotb':>13s} "
            f"{'kcyc/s native':>13s} {'vs +Arch':>8s} {'(rtl model)':>11s} {'(paper)':>8s} "
            f"{'vs 3-pass':>9s} {'(rtl model)':>11s}")
    print(head)

    def save() -> None:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")

    for name in args.presets.split(","):
        r = run(name.strip(), args.chunks, args.blocks, args.dim, args.seed)
        results["presets"].append(r)
        fm = r["runs"]["native"]
        print(f"{r['config']:8s} {r['rows']:>3d}x{r['cols']:<2d} {fm['cycles']:9d} {100 * fm['util_2d']:6.1f} "
              f"{100 * fm['util_1d']:6.1f} {100 * fm['mac_efficiency']:6.1f} {100 * r['paper_util_2d']:10.1f} "
              f"{fm['model']['measured_over_rtl_model']:14.3f} {fm['model']['measured_over_paper_model']:10.3f} "
              f"{r['runs']['cocotb']['sim_cycles_per_s'] / 1e3:13.0f} {fm['sim_cycles_per_s'] / 1e3:13.0f} "
              f"{r['speedup_vs_architecture']:8.2f} {r['speedup_vs_architecture_rtl_model']:11.2f} "
              f"{r['speedup_vs_architecture_paper_model']:8.2f} {r['speedup_vs_3pass']:9.2f} "
              f"{r['speedup_vs_3pass_rtl_model']:11.2f}", flush=True)
        save()
    if reference:
        name, M, P = reference
        ref = reference_point(name, M, P, args.dim, args.seed)
        results["reference"] = ref
        r = ref["run"]
        print(f"reference: {name} {ref['rows']}x{ref['cols']} M={M} P={P} E=F={args.dim}: {r['cycles']} cycles, "
              f"2D {100 * r['util_2d']:.1f} % (paper's steady state {100 * ref['paper_util_2d_steady']:.1f} %, "
              f"{ref['gap_points']:.1f} points under), MAC {100 * r['mac_efficiency']:.1f} %, "
              f"measured/our model {r['model']['measured_over_rtl_model']:.3f}", flush=True)
        save()
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except FuseMaxError as exc:  # a shape that does not fit, a failed build, ...
        raise SystemExit(f"bench.py: error: {exc}") from None
