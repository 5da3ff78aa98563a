"""The entropy finisher (``fusemax.hw.entropy.EntropyUnit``) in the Amaranth simulator against
:func:`fusemax.sw.golden_variants.entropy_codes`, bit for bit: the stored H line, the
saturation and divide-by-zero pulses (real lanes only), the store address and the timing
(cols · (div_cycles + 3) + 1 cycles from capture to the store), for realistic states (RM,
RD, RT of real attention rows from the golden's 1-pass core), edge states (RD = 0, RD = 1
code, one-hot rows, saturating RT) and several array widths and numerics."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from fusemax.config import preset
from fusemax.hw.entropy import EntropyUnit, entropy_formats, finisher_cycles
from fusemax.sw.golden import causal_mask, fusemax_state, prepare_inputs
from fusemax.sw.golden_variants import entropy_codes


def run_unit(cfg, blocks, p_base=0, P=None, addr=77, ready_every=1):
    """Capture each (rm, rd, rt) block of ``cols`` lanes and collect what the unit does:
    [(h codes, sat pulses per lane, dz pulses per lane, store addr, cycles)]."""
    C = cfg.cols
    P = C if P is None else P
    dut = EntropyUnit(cfg)
    results = []

    async def bench(ctx):
        for rm, rd, rt in blocks:
            for c in range(C):
                ctx.set(dut.rm[c], int(rm[c]))
                ctx.set(dut.rd[c], int(rd[c]))
                ctx.set(dut.rt[c], int(rt[c]))
            ctx.set(dut.p_base, p_base)
            ctx.set(dut.P, P)
            ctx.set(dut.addr, addr)
            ctx.set(dut.cap, 1)
            await ctx.tick()
            ctx.set(dut.cap, 0)
            sat, dz, cycles = [], [], 1
            period = (finisher_cycles(cfg) - 1) // C  # a lane's cycles; FINISH is the last
            while True:
                lane = (cycles - 1) // period  # the lane whose FINISH this cycle may be
                if ctx.get(dut.out_sat):
                    sat.append(lane)
                if ctx.get(dut.dz):
                    dz.append(lane)
                ready = int(cycles % ready_every == 0)
                ctx.set(dut.st_ready, ready)
                if ctx.get(dut.st_valid) and ready:
                    word = ctx.get(dut.st_data)
                    h = [(word >> (16 * c)) & 0xFFFF for c in range(C)]
                    h = [x - (1 << 16) if x >= 1 << 15 else x for x in h]
                    st_addr = ctx.get(dut.st_addr)
                    await ctx.tick()
                    assert not ctx.get(dut.busy)
                    results.append((np.array(h), sat, dz, st_addr, cycles))
                    break
                # a lane's flags come in its FINISH cycle, the last of its period
                await ctx.tick()
                cycles += 1
                assert cycles < 100 * C * 40

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


def golden_state(cfg, P, M, E=4, F=3, seed=0, causal=True, gain=1.0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((1, 1, P, E)) * gain
    k = rng.standard_normal((1, 1, M, E))
    v = rng.standard_normal((1, 1, M, F))
    qc, kc, vc, _, _, _ = prepare_inputs(q, k, v, cfg, None)
    st, _ = fusemax_state(qc, kc, vc, cfg, causal_mask(P, M) if causal else None, entropy=True)
    rm = np.where(st["RMv"], st["RM"], 0)[0, 0]
    return rm, st["RD"][0, 0], st["RT"][0, 0]


def check_blocks(cfg, rm, rd, rt, P_real=None):
    C = cfg.cols
    n = -(-len(rm) // C)
    pad = n * C - len(rm)
    rm, rd, rt = (np.concatenate([x, np.zeros(pad, np.int64)]) for x in (rm, rd, rt))
    blocks = [(rm[i * C:(i + 1) * C], rd[i * C:(i + 1) * C], rt[i * C:(i + 1) * C]) for i in range(n)]
    got = run_unit(cfg, blocks, P=C if P_real is None else P_real)
    h_want, sat_want, dz_want = entropy_codes(rm, rd, rt, cfg.numerics)
    # per lane: start, the divide (bits.width + 3 cycles), its result latched, finish
    cyc = cfg.cols * (entropy_formats(cfg.numerics)["bits"].width + 3 + 3) + 1
    assert finisher_cycles(cfg) == cyc  # the model's figure (fusemax.sim.attention)
    for i, (h, sat, dz, addr, cycles) in enumerate(got):
        lanes = slice(i * C, (i + 1) * C)
        assert np.array_equal(h, h_want[lanes]), (i, h, h_want[lanes])
        real = np.arange(C) < (C if P_real is None else P_real)
        assert sat == list(np.flatnonzero(sat_want[lanes] & real)), (i, sat)
        assert dz == list(np.flatnonzero(dz_want[lanes] & real)), (i, dz)
        assert addr == 77
        assert cycles == cyc, (cycles, cyc)
    return got


@pytest.mark.parametrize("name", ["tiny-entropy", "small-entropy"])
def test_real_rows_bit_exact(name):
    cfg = preset(name)
    rm, rd, rt = golden_state(cfg, P=cfg.cols * 2, M=2 * cfg.cols + 3)
    assert np.all(rd > 0)
    check_blocks(cfg, rm, rd, rt)


def test_peaked_rows_and_empty_rows():
    """Near-one-hot rows (logits × 10: H near 0, RM·RD and RT cancel) and rows with no visible
    key (causal P > M: RD = 0, H = 0 and a divide-by-zero pulse)."""
    cfg = preset("tiny-entropy")
    rm, rd, rt = golden_state(cfg, P=8, M=5, gain=10.0, seed=3)
    assert np.any(rd == 0) and np.any(rd > 0)
    got = check_blocks(cfg, rm, rd, rt)
    assert sum(len(g[2]) for g in got) == int(np.count_nonzero(rd == 0))


def test_edge_states_and_padding_lanes():
    """Extreme codes: RD = 1 code, the largest RD, RT at the RNV format's ends (H saturates in
    s32.16 / s16.11), negative RM; lanes past P raise no pulse."""
    cfg = preset("tiny-entropy")
    nc = cfg.numerics
    rm = np.array([0, nc.score.max_code, nc.score.min_code, -5], np.int64)
    rd = np.array([1, nc.rd.max_code, 1 << nc.rd.frac, 0], np.int64)
    rt = np.array([nc.rnv.min_code, nc.rnv.max_code, 12345, 7], np.int64)
    h, sat, dz = entropy_codes(rm, rd, rt, nc)
    assert sat.any() and dz.any()
    check_blocks(cfg, rm, rd, rt)
    check_blocks(cfg, rm, rd, rt, P_real=2)


def test_wide_array_and_int8_numerics():
    cfg = preset("wide-int8").replace(name="wide-int8-entropy", entropy_unit=True)
    rm, rd, rt = golden_state(cfg, P=cfg.cols, M=9, E=5, F=2, seed=5)
    check_blocks(cfg, rm, rd, rt)


def test_store_waits_for_ready():
    """The H line stays valid until the memory port takes it (AV's stores go first)."""
    cfg = preset("tiny-entropy")
    rm, rd, rt = golden_state(cfg, P=4, M=6, seed=7)
    fast = run_unit(cfg, [(rm, rd, rt)])
    slow = run_unit(cfg, [(rm, rd, rt)], ready_every=5)
    assert np.array_equal(fast[0][0], slow[0][0])
    assert slow[0][4] >= fast[0][4]


# ------------------------------------------------------------------ the whole design

def _run_top(cfg, P, M, E, F, causal, seed=0, cascade="attention-entropy", H=2):
    from fusemax.hw.top import pysim_run
    from fusemax.sw.compiler import compile_attention

    rng = np.random.default_rng(seed)
    q = rng.standard_normal((1, H, P, E))
    k = rng.standard_normal((1, H, M, E))
    v = rng.standard_normal((1, H, M, F))
    prog = compile_attention(cfg, q, k, v, causal=causal, cascade=cascade)
    img = prog.image.copy()
    res = pysim_run(cfg, img, prog.sched_base, max_cycles=100_000)
    return (q, k, v), prog, img, res


@pytest.mark.parametrize("name,P,M,E,F,causal", [
    ("tiny-entropy", 13, 13, 5, 3, True),     # not multiples of the array
    ("tiny-entropy", 9, 5, 4, 6, True),       # causal P > M: rows without keys (H = 0, dz)
    ("tiny-entropy", 7, 21, 3, 4, False),
    ("rect-entropy", 6, 11, 2, 5, True),      # non-square 8 x 4
])
def test_top_runs_attention_entropy_bit_exact(name, P, M, E, F, causal):
    """FuseMaxTop on compiled attention-entropy schedules: outputs, H and the error flags equal
    :func:`~fusemax.sw.golden_variants.entropy_golden`; the entropy counter is nonzero."""
    from fusemax.sim.attention import expected_flags
    from fusemax.sw.executor import decode_errors
    from fusemax.sw.golden_variants import entropy_golden

    cfg = preset(name) if name != "rect-entropy" else preset("rect").replace(
        name=name, entropy_unit=True)
    (q, k, v), prog, img, res = _run_top(cfg, P, M, E, F, causal)
    g = entropy_golden(q, k, v, cfg, causal=causal)
    assert np.array_equal(prog.decode_output(img), g.out_codes)
    assert np.array_equal(prog.decode_entropy(img), g.extra["H_codes"])
    assert decode_errors(res["error"]) == expected_flags(g)
    assert res["counters"]["entropy"] > 0
    L = prog.layout
    assert res["counters"]["mem_writes"] == 2 * L.P2 * (F + 1)


def test_entropy_design_runs_plain_attention_as_tiny():
    """Without MODE entropy the design is plain FuseMax: the same codes and cycles as ``tiny``
    (the RT step and the finisher cost nothing when off)."""
    a = _run_top(preset("tiny-entropy"), 10, 11, 3, 4, True, cascade="attention-1pass")
    b = _run_top(preset("tiny"), 10, 11, 3, 4, True, cascade="attention-1pass")
    assert np.array_equal(a[1].decode_output(a[2]), b[1].decode_output(b[2]))
    assert a[3]["cycles"] == b[3]["cycles"] and a[3]["counters"]["entropy"] == 0
