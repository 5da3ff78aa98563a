#!/usr/bin/env python3
"""Cycles per tile of the FuseMax binding when the PE's exp takes L cycles instead of d + 1:
what running the Sigmoid unit (L = 24) in place of SLN's exp would cost (docs/variants.md,
"Sigmoid unit (standalone)").

An emulation, not an integration: the real FuseMaxTop in the Amaranth simulator, with every
Exp2 (2D and 1D) wrapped so that its ``done`` and ``y`` come ``L − (d + 1)`` cycles later, and
the sequencer's clobber rule (exps start when ``b_cnt + d >= F + 2``) elaborated with
``d + L − (d + 1)``, i.e. for the longer latency. Nothing in fusemax/ is changed; the sigmoid
arithmetic itself is not run (the outputs are not checked, only the cycles).

    python scripts/sigmoid_tile_timing.py                 # tiny and a 16 x 1 array, L = 5 and 24
    python scripts/sigmoid_tile_timing.py --shapes 8x8 16x16 --latency 24

Per shape E x F: cycles of one query block over 12 and over 24 chunks; the difference / 12 is
the steady-state cost of a tile. ~2 min on a loaded 2-core machine.
"""

from __future__ import annotations

import argparse
import sys
import types

import numpy as np
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring

import fusemax.hw.pe1d as pe1d
import fusemax.hw.pe2d as pe2d
import fusemax.hw.sequencer as seqmod
import fusemax.hw.top as topmod
from fusemax.config import FuseMaxConfig, NumericsConfig, preset
from fusemax.hw.arith.exp2 import Exp2
from fusemax.hw.top import pysim_run
from fusemax.sw.compiler import compile_attention

_ORIG = {"pe2d": pe2d.Exp2, "pe1d": pe1d.Exp2, "seq": topmod.Sequencer}


def _slow_exp2(extra: int):
    class SlowExp2(wiring.Component):
        """Exp2 whose done and y come ``extra`` cycles later (y held from done on)."""

        def __init__(self, numerics):
            self.inner = Exp2(numerics)
            self.LATENCY = self.inner.LATENCY + extra
            super().__init__(dict(self.inner.signature.members))

        def elaborate(self, platform):
            m = Module()
            m.submodules.inner = e = self.inner
            m.d.comb += [e.start.eq(self.start), e.x.eq(self.x), e.x_ninf.eq(self.x_ninf)]
            done, y, pending = e.done, e.y, e.busy
            for i in range(extra):
                nd, ny = Signal(name=f"done_d{i}"), Signal.like(e.y, name=f"y_d{i}")
                m.d.sync += [nd.eq(done), ny.eq(y)]
                pending = pending | nd
                done, y = nd, ny
            held = Signal.like(e.y, name="y_held")
            with m.If(done):
                m.d.sync += held.eq(y)
            m.d.comb += [self.done.eq(done), self.y.eq(Mux(done, y, held)),
                         self.busy.eq(pending & ~done)]
            return m

    return SlowExp2


def _patch(extra: int):
    """Install (extra > 0) or remove (extra = 0) the slower exp and the matching sequencer."""
    if extra == 0:
        pe2d.Exp2, pe1d.Exp2, topmod.Sequencer = _ORIG["pe2d"], _ORIG["pe1d"], _ORIG["seq"]
        return
    slow = _slow_exp2(extra)
    pe2d.Exp2 = pe1d.Exp2 = slow
    src = open(seqmod.__file__).read()
    line = "d = cfg.numerics.exp_degree\n"
    if src.count(line) != 1:
        raise SystemExit("sequencer.py changed: cannot emulate the clobber rule")
    mod = types.ModuleType("sequencer_emulated")
    mod.__file__ = seqmod.__file__
    exec(compile(src.replace(line, f"d = cfg.numerics.exp_degree + {extra}\n"),
                 seqmod.__file__, "exec"), mod.__dict__)
    topmod.Sequencer = mod.Sequencer


def per_tile(cfg: FuseMaxConfig, E: int, F: int, tiles=(12, 24)) -> tuple[float, dict]:
    cyc = {}
    for T in tiles:
        rng = np.random.default_rng(0)
        P, M = cfg.cols, cfg.rows * T
        q, k, v = (rng.normal(size=(1, 1, n, w)) for n, w in ((P, E), (M, E), (M, F)))
        prog = compile_attention(cfg, q, k, v)
        cyc[T] = pysim_run(cfg, prog.image.copy(), prog.sched_base, latency=1)["cycles"]
    return (cyc[tiles[1]] - cyc[tiles[0]]) / (tiles[1] - tiles[0]), cyc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency", type=int, default=24, help="the slower unit's latency L (24)")
    ap.add_argument("--shapes", nargs="*", default=["8x8", "10x10", "12x12", "13x13", "14x14",
                                                    "14x15", "15x15", "16x16"])
    args = ap.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes]
    configs = [preset("tiny"), FuseMaxConfig("r16c1", 16, 1, NumericsConfig())]
    print("| array | E x F | E + F | cycles / tile, exp (L = d + 1) | cycles / tile, L = "
          f"{args.latency} | extra per tile | extra once (24 chunks) |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for cfg in configs:
        base = cfg.numerics.exp_cycles
        for E, F in shapes:
            got = {}
            for L in (base, args.latency):
                _patch(L - base)
                got[L] = per_tile(cfg, E, F)
            _patch(0)
            (b, bc), (s, sc) = got[base], got[args.latency]
            once = (sc[24] - bc[24]) - 24 * (s - b)
            print(f"| {cfg.rows}x{cfg.cols} (`{cfg.name}`) | {E}x{F} | {E + F} | {b:.2f} | {s:.2f} | "
                  f"{s - b:+.2f} | {once:+.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
