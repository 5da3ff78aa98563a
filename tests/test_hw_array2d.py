"""Array2D (Amaranth simulator): the steps of a tile on the 2D array against NumPy twins --
BQK over E cycles with the (key, query) mask (causal, M and P edges), the LM MaxValid tree,
SLN with the broadcast RM_new, the SLD tree and the SLNV tree per f -- on non-square arrays
and two number systems."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from fusemax.config import FuseMaxConfig, NUMERICS_PRESETS, preset
from fusemax.hw.array2d import Array2D
from fusemax.sw import numerics as nm

CASES = {
    "rect": preset("rect"),                                                   # 8 x 4, fx16
    "3x5-int8": FuseMaxConfig("3x5-int8", 3, 5, NUMERICS_PRESETS["int8"]()),  # odd rows: uneven trees
}


def _rand(rng, fmt, shape):
    return rng.integers(fmt.min_code, fmt.max_code + 1, shape)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("causal", [False, True])
def test_array2d_tile_steps(name, causal):
    cfg = CASES[name]
    nc = cfg.numerics
    R, C = cfg.rows, cfg.cols
    rng = np.random.default_rng(3 + causal)
    E, F = 5, 3
    q = _rand(rng, nc.q, (E, C)) // 4
    k = _rand(rng, nc.k, (E, R)) // 4
    v = _rand(rng, nc.v, (F, R))
    # tile at m_base, p_base with edges inside: keys past M, queries past P, causal cut
    m_base, p_base = 2 * R, C
    M, P = m_base + R - 1, p_base + C - 1
    if causal:
        M, P = m_base + R - 1, p_base + C + 1  # offset M - P < 0: some keys hidden
    arr = Array2D(cfg)
    out = {}

    async def bench(ctx):
        ctx.set(arr.m_base, m_base)
        ctx.set(arr.p_base, p_base)
        ctx.set(arr.M, M)
        ctx.set(arr.P, P)
        ctx.set(arr.causal, int(causal))
        for e in range(E):
            ctx.set(arr.q_line, [int(x) for x in q[e]])
            ctx.set(arr.kv_line, [int(x) for x in k[e]])
            ctx.set(arr.mac_en, 1)
            ctx.set(arr.mac_first, int(e == 0))
            await ctx.tick()
        ctx.set(arr.mac_en, 0)
        ctx.set(arr.score_en, 1)
        await ctx.tick()
        ctx.set(arr.score_en, 0)
        await ctx.tick()  # LM tree -> root register
        lm = [ctx.get(arr.lm[c]) for c in range(C)]
        lmv = ctx.get(arr.lm_valid)
        out["lm"], out["lmv"] = lm, [(lmv >> c) & 1 for c in range(C)]
        ctx.set(arr.rm, lm)
        ctx.set(arr.rm_valid, lmv)
        ctx.set(arr.exp_start, 1)
        await ctx.tick()
        ctx.set(arr.exp_start, 0)
        for _ in range(nc.exp_cycles):  # exps done, then the SLD tree's root register
            await ctx.tick()
        out["sld"] = [ctx.get(arr.sld[c]) for c in range(C)]
        slnv = []
        for f in range(F + 2):
            if f < F:
                ctx.set(arr.kv_line, [int(x) for x in v[f]])
            ctx.set(arr.mac_en, int(f < F))
            ctx.set(arr.mac_first, 1)
            ctx.set(arr.mac_sel, 1)
            await ctx.tick()
            if f >= 1:  # product registered in the PE, then the tree's root register
                slnv.append([ctx.get(arr.slnv[c]) for c in range(C)])
        out["slnv"] = slnv[:F]

    sim = Simulator(arr)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()

    m_idx = m_base + np.arange(R)
    p_idx = p_base + np.arange(C)
    valid = (m_idx[:, None] < M) & (p_idx[None, :] < P)
    if causal:
        valid &= m_idx[:, None] <= p_idx[None, :] + M - P
    assert valid.any() and not valid.all()
    bqk, _ = nm.requantize(k.T @ q, nc.qk_frac, nc.score, nc.rounding)  # (R, C)
    lmv = valid.any(0)
    lm = np.where(valid, bqk, nc.score.min_code).max(0)
    assert out["lmv"] == [int(x) for x in lmv]
    assert [g for g, ok in zip(out["lm"], lmv) if ok] == [int(x) for x, ok in zip(lm, lmv) if ok]
    sln = nm.exp2(nm.sub(bqk, np.asarray(out["lm"])[None, :]), ~valid | ~lmv[None, :], nc)
    assert out["sld"] == [int(x) for x in sln.sum(0)]
    assert np.array_equal(np.array(out["slnv"]), v @ sln)
