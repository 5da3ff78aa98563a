"""PE1D (Amaranth simulator) against the NumPy twins over several tiles of random inputs:
RM = max_valid(RM, LM), PRM = exp2(RM_old - RM_new), RD = sat(rs(SLD) + RD·PRM),
RNV[f] = sat(rs(SLNV) + RNV[f]·PRM) in the register file, then AV = RNV[f] / RD on the
divider; flags (saturation, divide by zero) masked by lane_ok. Three number systems,
including int8 and a narrow one that saturates RD/RNV."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from fusemax.config import FuseMaxConfig, NumericsConfig, preset
from fusemax.hw.formats import FixedFormat as FF
from fusemax.hw.pe1d import PE1D
from fusemax.sw import numerics as nm

CASES = {
    "tiny": preset("tiny"),
    "small-int8": preset("small-int8"),
    "tiny-sigmoid": preset("tiny-sigmoid"),  # the sigmoid unit's design, softmax mode
    "narrow": FuseMaxConfig("narrow", 4, 4, NumericsConfig(name="narrow", rd=FF(14, 12), rnv=FF(14, 9),
                                                           rounding="nearest_away"), max_f=8),
}


async def _rm_and_exps(ctx, pe, nc, lm, lmv, prm_zero=0):
    """RM_new from LM (rm_en), then PRM's exp (exp_start, with prm_zero) up to its done cycle."""
    ctx.set(pe.lm, lm)
    ctx.set(pe.lm_valid, lmv)
    ctx.set(pe.rm_en, 1)
    await ctx.tick()
    ctx.set(pe.rm_en, 0)
    ctx.set(pe.exp_start, 1)
    ctx.set(pe.prm_zero, prm_zero)
    await ctx.tick()
    ctx.set(pe.exp_start, 0)
    ctx.set(pe.prm_zero, 0)
    for _ in range(nc.exp_cycles - 1):
        await ctx.tick()


def _run(cfg, tiles, F, lane_ok, rng, av_ok=None, restart=()):
    nc = cfg.numerics
    pe = PE1D(cfg)
    got = {"rd": [], "rnv": [], "av": [], "flags": []}

    async def bench(ctx):
        ctx.set(pe.lane_ok, int(lane_ok))
        ctx.set(pe.av_lane_ok, int(lane_ok if av_ok is None else av_ok))
        ctx.set(pe.reset_state, 1)
        await ctx.tick()
        ctx.set(pe.reset_state, 0)
        for t, (lm, lmv, sld, slnv) in enumerate(tiles):
            await _rm_and_exps(ctx, pe, nc, lm, lmv, int(t in restart))
            assert ctx.get(pe.exp_done) == 1
            ctx.set(pe.sld, sld)
            ctx.set(pe.rd_en, 1)
            rd_sat = ctx.get(pe.rd_sat)
            await ctx.tick()
            ctx.set(pe.rd_en, 0)
            got["rd"].append(ctx.get(pe.rd))
            rnv_sat = 0
            for f in range(F):
                ctx.set(pe.rf_raddr, f)
                await ctx.tick()
                ctx.set(pe.slnv, int(slnv[f]))
                ctx.set(pe.rnv_we, 1)
                ctx.set(pe.rnv_waddr, f)
                rnv_sat |= ctx.get(pe.rnv_sat)
                await ctx.tick()
                ctx.set(pe.rnv_we, 0)
            got["flags"].append((rd_sat, rnv_sat))
            ctx.set(pe.rm_commit, 1)
            await ctx.tick()
            ctx.set(pe.rm_commit, 0)
            rnv = []
            for f in range(F):
                ctx.set(pe.rf_raddr, f)
                await ctx.tick()
                rnv.append(ctx.get(pe.rf_rdata))
            got["rnv"].append(rnv)
        # AV: one divide per cycle on the pipelined divider, results written back over RNV[f]
        ctx.set(pe.rf_raddr, 0)
        await ctx.tick()
        flags = []
        for t in range(F + nc.div_cycles + 1):
            ctx.set(pe.rf_raddr, min(t + 1, F - 1))
            ctx.set(pe.div_start, int(t < F))
            done = ctx.get(pe.div_done)
            ctx.set(pe.wb_sel, done)
            ctx.set(pe.rnv_we, done)
            ctx.set(pe.rnv_waddr, len(flags))
            if done:
                flags.append((ctx.get(pe.out_sat), ctx.get(pe.dz)))
            await ctx.tick()
        ctx.set(pe.div_start, 0)
        ctx.set(pe.rnv_we, 0)
        assert len(flags) == F
        for f in range(F):
            ctx.set(pe.rf_raddr, f)
            await ctx.tick()
            got["av"].append((ctx.get(pe.rf_rdata), *flags[f]))

    sim = Simulator(pe)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("lane_ok, av_ok", [(True, True), (False, False), (True, False), (False, True)])
def test_pe1d_matches_twins(name, lane_ok, av_ok):
    """Five tiles (tile 1 fully masked, tile 3 restarts the sums: PRM = 0 with RM kept), then
    AV; the tiles' flags follow lane_ok, the divider's av_lane_ok."""
    cfg = CASES[name]
    nc = cfg.numerics
    mode = nc.rounding
    rng = np.random.default_rng(11)
    F = 4
    tiles = []
    for t in range(5):
        lmv = int(t != 1 and rng.random() < 0.9)  # tile 1: every key masked
        lm = int(rng.integers(nc.score.min_code, nc.score.max_code + 1)) // 8
        sld_max = cfg.rows << nc.exp.frac
        sld = int(rng.integers(0, sld_max)) if lmv else 0
        lim = 1 << (cfg.slnv_width - 2)
        slnv = rng.integers(-lim, lim, F) if lmv else np.zeros(F, np.int64)
        if name == "narrow":
            slnv = slnv * 0 + lim - 1  # push RNV to saturation
        tiles.append((lm, lmv, sld, slnv))
    got = _run(cfg, tiles, F, lane_ok, rng, av_ok, restart=(3,))

    RM, RMv, RD, RNV = 0, False, 0, np.zeros(F, np.int64)
    any_rd, any_rnv = False, False
    for i, (lm, lmv, sld, slnv) in enumerate(tiles):
        rm_new, rm_new_v = nm.max_valid(RM, RMv, lm, bool(lmv))
        prm = nm.exp2(nm.sub(RM, rm_new), not RMv or i == 3, nc)
        spd, f1 = nm.rescale(RD, prm, nc.exp.frac, nc.rd, mode)
        RD, f2 = nm.requantize(nm.round_shift_to(sld, nc.exp.frac, nc.rd.frac, mode) + spd, nc.rd.frac, nc.rd, mode)
        spnv, f3 = nm.rescale(RNV, prm, nc.exp.frac, nc.rnv, mode)
        RNV, f4 = nm.requantize(nm.round_shift_to(slnv, nc.exp.frac + nc.v.frac, nc.rnv.frac, mode) + spnv,
                                nc.rnv.frac, nc.rnv, mode)
        RM, RMv = int(rm_new), bool(rm_new_v)
        assert got["rd"][i] == int(RD), f"tile {i}"
        assert got["rnv"][i] == [int(x) for x in RNV], f"tile {i}"
        assert got["flags"][i] == (int(lane_ok and bool(f1 | f2)), int(lane_ok and bool((f3 | f4).any())))
        any_rd |= bool(f1 | f2)
        any_rnv |= bool((f3 | f4).any())
    av, s, dz = nm.divide(RNV, RD, nc)
    assert [g[0] for g in got["av"]] == [int(x) for x in av]
    assert [g[1] for g in got["av"]] == [int(av_ok and x) for x in s]
    assert [g[2] for g in got["av"]] == [int(av_ok and x) for x in dz]
    if name == "narrow":
        assert any_rnv and any_rd


def test_reset_rm_keeps_rd_and_the_next_tile_overwrites_it():
    """TILE.first's reset_rm clears RM.valid only: RD keeps its value (the previous block's AV
    may still divide by it), and the next tile's PRM = 0 makes RD = rs(SLD) as if cleared."""
    cfg = CASES["tiny"]
    nc = cfg.numerics
    pe = PE1D(cfg)
    sld1, sld2 = 3 << nc.exp.frac, 5 << (nc.exp.frac - 1)
    seen = {}

    async def tile(ctx, lm, sld):
        await _rm_and_exps(ctx, pe, nc, lm, 1)
        ctx.set(pe.sld, sld)
        ctx.set(pe.rd_en, 1)
        await ctx.tick()
        ctx.set(pe.rd_en, 0)
        ctx.set(pe.rm_commit, 1)
        await ctx.tick()
        ctx.set(pe.rm_commit, 0)

    async def bench(ctx):
        ctx.set(pe.reset_state, 1)
        await ctx.tick()
        ctx.set(pe.reset_state, 0)
        await tile(ctx, 40, sld1)
        seen["rd1"], seen["valid1"] = ctx.get(pe.rd), ctx.get(pe.rm_valid)
        ctx.set(pe.reset_rm, 1)
        await ctx.tick()
        ctx.set(pe.reset_rm, 0)
        seen["rd_after"], seen["valid_after"] = ctx.get(pe.rd), ctx.get(pe.rm_valid)
        await tile(ctx, -70, sld2)
        seen["rd2"] = ctx.get(pe.rd)

    sim = Simulator(pe)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    rs = lambda x: int(nm.round_shift_to(x, nc.exp.frac, nc.rd.frac, nc.rounding))  # noqa: E731
    assert seen["rd1"] == rs(sld1) != 0 and seen["valid1"] == 1
    assert seen["rd_after"] == seen["rd1"] and seen["valid_after"] == 0
    assert seen["rd2"] == rs(sld2) != seen["rd1"]
