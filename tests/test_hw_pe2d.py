"""PE2D (Amaranth simulator) against the NumPy twins: BQK accumulate + requantize, mask,
SLN = exp2(BQK - RM_new), and the SLN x V products of SLNV, on random values for two number
systems (fx16 and int8); with the sigmoid unit, SLN = sigmoid(BQK) in sigmoid mode, exactly
L cycles after the start, 0 for a masked pair."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from fusemax.config import preset
from fusemax.hw.pe2d import PE2D, operand_widths
from fusemax.sw import numerics as nm
from fusemax.sw.golden_variants import sigmoid_codes

CONFIGS = ["tiny", "small-int8", "tiny-sigmoid"]  # the last: with the unit, softmax mode


def _rand(rng, fmt, n):
    return rng.integers(fmt.min_code, fmt.max_code + 1, n)


async def _bqk(ctx, pe, q, k, valid):
    """BQK on the MAC (E cycles), then the score latch with the mask bit; returns score_sat."""
    for e in range(len(q)):
        ctx.set(pe.q, int(q[e]))
        ctx.set(pe.kv, int(k[e]))
        ctx.set(pe.mac_en, 1)
        ctx.set(pe.mac_first, int(e == 0))
        ctx.set(pe.mac_sel, 0)
        await ctx.tick()
    ctx.set(pe.mac_en, 0)
    ctx.set(pe.valid_in, int(valid))
    ctx.set(pe.score_en, 1)
    sat = ctx.get(pe.score_sat)
    await ctx.tick()
    ctx.set(pe.score_en, 0)
    return sat


@pytest.mark.parametrize("name", CONFIGS)
def test_pe2d_matches_twins(name):
    cfg = preset(name)
    nc = cfg.numerics
    rng = np.random.default_rng(7)
    pe = PE2D(cfg)
    trials = []
    for t in range(12):
        E = int(rng.integers(1, 9))
        F = int(rng.integers(1, 5))
        q = _rand(rng, nc.q, E)
        k = _rand(rng, nc.k, E)
        if t == 0:  # force score saturation
            q[:] = nc.q.max_code
            k[:] = nc.k.max_code
        v = _rand(rng, nc.v, F)
        valid = bool(rng.random() < 0.8)
        rm_valid = bool(rng.random() < 0.9)
        trials.append((q, k, v, valid, rm_valid))
    got = []

    async def bench(ctx):
        for q, k, v, valid, rm_valid in trials:
            sat = await _bqk(ctx, pe, q, k, valid)
            score = ctx.get(pe.score)
            # RM_new: somewhere at or above the score (as in a tile), sometimes exactly equal
            rm = int(min(nc.score.max_code, score + int(rng.integers(0, 3 << nc.score.frac)) * int(rng.random() < 0.7)))
            ctx.set(pe.rm, rm)
            ctx.set(pe.rm_valid, int(rm_valid))
            ctx.set(pe.exp_start, 1)
            await ctx.tick()
            ctx.set(pe.exp_start, 0)
            for _ in range(nc.exp_cycles - 1):
                await ctx.tick()
            assert ctx.get(pe.exp_done) == 1
            sln = ctx.get(pe.sln)
            prods = []
            for f in range(len(v)):
                ctx.set(pe.kv, int(v[f]))
                ctx.set(pe.mac_en, 1)
                ctx.set(pe.mac_first, 1)
                ctx.set(pe.mac_sel, 1)
                await ctx.tick()
                prods.append(ctx.get(pe.prod))
            ctx.set(pe.mac_en, 0)
            got.append((score, sat, rm, sln, prods))

    sim = Simulator(pe)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()

    n_sat = 0
    for (q, k, v, valid, rm_valid), (score, sat, rm, sln, prods) in zip(trials, got):
        want_s, s_flag = nm.requantize(np.dot(q, k), nc.qk_frac, nc.score, nc.rounding)
        assert score == int(want_s)
        assert sat == int(bool(s_flag) and valid)
        n_sat += sat
        want_sln = nm.exp2(nm.sub(score, rm), (not valid) or (not rm_valid), nc)
        assert sln == int(want_sln)
        assert prods == [int(sln) * int(x) for x in v]
    assert n_sat >= 1


def test_operand_widths_hold_both_products():
    for name in ("tiny", "small-int8", "rect"):
        cfg = preset(name)
        nc = cfg.numerics
        w = operand_widths(cfg)
        assert w["acc"] >= nc.qk_acc_width
        assert w["acc"] >= w["prod"] >= nc.exp.width + nc.v.width
        assert w["kv"] == max(nc.k.width, nc.v.width)


def test_pe2d_sigmoid_mode():
    """Sigmoid mode: SLN = sigmoid_codes(score) (0 when masked) at sig_done, L cycles after the
    start, the MAC's SLNV operand is it, and RM plays no part (random RM, RM.valid)."""
    cfg = preset("tiny-sigmoid")
    nc = cfg.numerics
    L = nc.sigmoid_cycles
    rng = np.random.default_rng(3)
    pe = PE2D(cfg)
    trials = [(_rand(rng, nc.q, 4), _rand(rng, nc.k, 4), int(rng.integers(-300, 300)),
               bool(rng.random() < 0.75)) for _ in range(10)]
    got = []

    async def bench(ctx):
        ctx.set(pe.sig_mode, 1)
        for q, k, v, valid in trials:
            await _bqk(ctx, pe, q, k, valid)
            ctx.set(pe.rm, int(rng.integers(nc.score.min_code, nc.score.max_code)))
            ctx.set(pe.rm_valid, int(rng.random() < 0.5))
            ctx.set(pe.exp_start, 1)
            await ctx.tick()
            ctx.set(pe.exp_start, 0)
            ctx.set(pe.valid_in, 0)
            done_at = None
            for t in range(1, L + 2):
                if ctx.get(pe.sig_done):
                    done_at = t
                    break
                await ctx.tick()
            score, sln = ctx.get(pe.score), ctx.get(pe.sln)
            ctx.set(pe.kv, v)
            ctx.set(pe.mac_en, 1)
            ctx.set(pe.mac_first, 1)
            ctx.set(pe.mac_sel, 1)
            await ctx.tick()
            ctx.set(pe.mac_en, 0)
            got.append((done_at, score, sln, ctx.get(pe.prod)))

    sim = Simulator(pe)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for (q, k, v, valid), (done_at, score, sln, prod) in zip(trials, got):
        assert done_at == L
        assert score == int(nm.requantize(np.dot(q, k), nc.qk_frac, nc.score, nc.rounding)[0])
        want = int(sigmoid_codes(score, nc)[0]) if valid else 0
        assert sln == want and prod == want * v
    assert any(not t[3] for t in trials) and any(t[3] for t in trials)
