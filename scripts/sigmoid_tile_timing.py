#!/usr/bin/env python3
"""What sigmoid attention costs in cycles on the RTL against softmax, on the same design
(``sigmoid_unit``; docs/variants.md section 5, "Sigmoid unit"), in the Amaranth simulator.

    python scripts/sigmoid_tile_timing.py                 # both tables (~3 min, 2-core machine)
    python scripts/sigmoid_tile_timing.py --shapes 8x8 16x16 --no-runs

* **Per tile**: one query block over 12 and over 24 chunks (memory latency 1), for ``tiny-sigmoid`` and a 16 x 1
  array with the unit; the difference / 12 is the steady-state cost of a tile, for
  ``attention-1pass`` (exp, d + 1 cycles) and ``sigmoid-norm`` (the sigmoid, L cycles), and the
  once-per-run extra at 24 chunks.
* **Runs** (``tiny-sigmoid``, its memory latency, P = 16, M = 64 unless given): whole runs of both cascades, and the
  sigmoid runs against our model (``rtl_binding_model``'s ``sigmoid`` entry).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from fusemax.config import FuseMaxConfig, NumericsConfig, preset
from fusemax.hw.top import pysim_run
from fusemax.sw.compiler import compile_attention
from fusemax.sw.perfmodel import rtl_binding_model

SIG = preset("tiny-sigmoid")
#: whole runs: (P, M, E, F, causal, binding)
RUNS = [(16, 64, 16, 16, False, "fusemax"), (16, 64, 12, 12, False, "fusemax"),
        (16, 64, 8, 8, False, "fusemax"), (32, 64, 16, 16, True, "fusemax"),
        (16, 32, 8, 8, False, "architecture")]


def cycles(cfg: FuseMaxConfig, cascade: str, P, M, E, F, causal=False, binding="fusemax",
           latency=None) -> int:
    """Cycles of one run (memory read latency ``latency``, default the config's)."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(1, 1, n, w)) for n, w in ((P, E), (M, E), (M, F)))
    prog = compile_attention(cfg, q, k, v, causal=causal, cascade=cascade, binding=binding)
    r = pysim_run(cfg, prog.image.copy(), prog.sched_base, latency=latency or cfg.mem_latency)
    if r["error"]:
        raise SystemExit(f"{cascade} on {cfg.name}: error flags {r['error']:#x}")
    return r["cycles"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", nargs="*", default=["8x8", "10x10", "12x12", "13x13", "14x14",
                                                    "14x15", "15x15", "16x16"])
    ap.add_argument("--no-runs", action="store_true", help="only the per-tile table")
    args = ap.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes]
    L = SIG.numerics.sigmoid_cycles
    configs = [SIG, FuseMaxConfig("r16c1-sigmoid", 16, 1, NumericsConfig(), sigmoid_unit=True)]
    print(f"| array | E x F | E + F | cycles / tile, exp (d + 1 = {SIG.numerics.exp_cycles}) | "
          f"cycles / tile, sigmoid (L = {L}) | extra per tile | extra once (24 chunks) |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for cfg in configs:
        for E, F in shapes:
            per, at24 = {}, {}
            for cascade in ("attention-1pass", "sigmoid-norm"):
                c12, c24 = (cycles(cfg, cascade, cfg.cols, cfg.rows * T, E, F, latency=1) for T in (12, 24))
                per[cascade], at24[cascade] = (c24 - c12) / 12, c24
            b, s = per["attention-1pass"], per["sigmoid-norm"]
            once = (at24["sigmoid-norm"] - at24["attention-1pass"]) - 24 * (s - b)
            print(f"| {cfg.rows}x{cfg.cols} (`{cfg.name}`) | {E}x{F} | {E + F} | {b:.2f} | "
                  f"{s:.2f} | {s - b:+.2f} | {once:+.0f} |", flush=True)
    if args.no_runs:
        return 0
    print(f"\n| P, M, E, F | causal | binding | softmax cycles | sigmoid cycles | sigmoid / our model |")
    print("|---|---|---|--:|--:|--:|")
    for P, M, E, F, causal, binding in RUNS:
        soft = cycles(SIG, "attention-1pass", P, M, E, F, causal, binding)
        sig = cycles(SIG, "sigmoid-norm", P, M, E, F, causal, binding)
        model = rtl_binding_model(SIG, dict(B=1, H=1, P=P, M=M, E=E, F=F), causal)
        print(f"| {P}, {M}, {E}, {F} | {'yes' if causal else 'no'} | {binding} | {soft} | {sig} | "
              f"{sig / model['sigmoid'][binding]['cycles']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
