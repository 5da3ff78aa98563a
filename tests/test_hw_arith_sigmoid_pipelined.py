"""Pipelined sigmoid (``fusemax.hw.arith.sigmoid.PipelinedSigmoid``) in the Amaranth simulator
against :func:`fusemax.sw.golden_variants.sigmoid_codes`, bit for bit: codes streamed one per
cycle (extremes, codes near 0, random; every fx16 code), with and without bubbles in
``valid_in``; results in order, each with its tag, exactly ``LATENCY`` (= ``Sigmoid.LATENCY``)
cycles after its input; other numerics and output formats."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from handshake import used as _used

from fusemax.config import FuseMaxConfig, NumericsConfig, preset
from fusemax.hw.arith import PipelinedSigmoid, Sigmoid
from fusemax.hw.formats import FixedFormat as FF
from fusemax.sw.golden_variants import sigmoid_codes


def stream(dut, xs, valid) -> list[tuple[int, int, int, int]]:
    """Drive ``dut`` with ``valid[c]`` in cycle c (the next code of ``xs`` when set, tag = its
    index mod 2^tag_width); returns ``(cycle, y, sat, tag)`` for every cycle ``valid_out`` is
    high. Between inputs, ``x`` carries junk (it must be ignored)."""
    lat, tw = dut.LATENCY, dut.tag_width
    seen = []

    async def bench(ctx):
        k = 0
        junk = np.random.default_rng(1)
        lo, hi = -(1 << (len(dut.x) - 1)), (1 << (len(dut.x) - 1)) - 1
        for c in range(len(valid) + lat + 2):
            v = c < len(valid) and valid[c]
            ctx.set(dut.valid_in, int(v))
            ctx.set(dut.x, int(xs[k]) if v else int(junk.integers(lo, hi + 1)))
            if tw:
                ctx.set(dut.tag_in, k % (1 << tw) if v else (1 << tw) - 1 - k % (1 << tw))
            k += int(v)
            if ctx.get(dut.valid_out):
                seen.append((c, ctx.get(dut.y), ctx.get(dut.sat),
                             ctx.get(dut.tag_out) if tw else 0))
            await ctx.tick()
        assert k == len(xs)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return seen


def check(numerics, xs, out=None, tag_width=6, valid=None) -> int:
    """Stream ``xs`` (one per cycle, or per ``valid``); assert bit-exact results, in order,
    with their tags, exactly LATENCY cycles after their inputs."""
    xs = np.asarray(xs, np.int64)
    valid = np.ones(len(xs), bool) if valid is None else np.asarray(valid, bool)
    assert valid.sum() == len(xs)
    dut = PipelinedSigmoid(numerics, out, tag_width=tag_width)
    assert dut.LATENCY == _used(Sigmoid(numerics, out)).LATENCY
    seen = stream(dut, xs, valid)
    want, want_sat = sigmoid_codes(xs, numerics, out)
    in_cycles = np.nonzero(valid)[0]
    assert len(seen) == len(xs), f"{len(seen)} results for {len(xs)} inputs"
    bad = []
    for i, (c, y, sat, tag) in enumerate(seen):
        assert c == in_cycles[i] + dut.LATENCY, f"result {i} in cycle {c}, input in {in_cycles[i]}"
        if tag_width:
            assert tag == i % (1 << tag_width), f"result {i}: tag {tag}"
        if y != want[i] or bool(sat) != bool(want_sat[i]):
            bad.append(f"x={int(xs[i])}: got {y}/{bool(sat)}, "
                       f"want {int(want[i])}/{bool(want_sat[i])}")
    assert not bad, "; ".join(bad[:8])
    return len(xs)


def sample_scores(nc: NumericsConfig, n: int, seed: int) -> np.ndarray:
    """Extremes (min, max, 0, ±1 and neighbours), codes near 0, then uniform random codes."""
    w, fs = nc.score.width, nc.score.frac
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    edge = np.array([lo, hi, 0, 1, -1, lo + 1, hi - 1, 2, -2, lo, hi, 0], np.int64)
    near = np.arange(-(4 << fs), (4 << fs) + 1, max(1, (8 << fs) // (n // 4)))
    rnd = np.random.default_rng(seed).integers(lo, hi + 1, n - len(near) - len(edge))
    return np.concatenate([edge, near, rnd]).astype(np.int64)


def test_ports_and_latency():
    nc = preset("tiny").numerics
    p = _used(PipelinedSigmoid(nc))
    assert p.LATENCY == _used(Sigmoid(nc)).LATENCY == nc.exp_degree + nc.exp.frac + 5 == 24
    assert set(p.signature.members) == {"valid_in", "x", "valid_out", "y", "sat"}
    t = _used(PipelinedSigmoid(nc, tag_width=5))
    assert set(t.signature.members) == {"valid_in", "x", "tag_in", "valid_out", "y", "sat",
                                        "tag_out"}
    assert len(t.tag_in) == len(t.tag_out) == 5 and len(t.x) == nc.score.width
    out = FF(12, 11, signed=False)
    q = _used(PipelinedSigmoid(NumericsConfig(exp_degree=6), out))
    assert q.LATENCY == _used(Sigmoid(NumericsConfig(exp_degree=6), out)).LATENCY == 7 + 13 + 2


def test_back_to_back_fx16():
    """One code per cycle, no bubbles: extremes, near 0 and random (default fx16 numerics)."""
    nc = preset("tiny").numerics
    assert check(nc, sample_scores(nc, 600, seed=11)) == 600


def test_fx16_every_score_code_streamed():
    """All 65 536 score codes of the default numerics, one per cycle (about 8 s)."""
    nc = preset("tiny").numerics
    w = nc.score.width
    assert check(nc, np.arange(-(1 << (w - 1)), 1 << (w - 1)), tag_width=8) == 1 << 16


def test_random_bubbles():
    """Random gaps in valid_in (about 1 in 3 cycles idle, runs of idles too): results still
    line up with their inputs and tags, LATENCY cycles later."""
    nc = preset("tiny-int8").numerics
    xs = sample_scores(nc, 300, seed=12)
    rng = np.random.default_rng(13)
    valid = []
    while sum(valid) < len(xs):
        valid.extend([0] * int(rng.integers(1, 5)) if rng.random() < 0.25 else [1])
    assert check(nc, xs, tag_width=3, valid=valid) == 300


OTHER = {
    # rounding, degree, output format: floor + degree 5 + narrower score + signed 12.8 output
    "floor-d5": (NumericsConfig(name="floor-d5", rounding="floor", exp_degree=5, out=FF(12, 8),
                                score=FF(14, 9)), FF(12, 8)),
    # nearest_away + degree 3 into u8.8, which cannot hold 1.0 (saturates, sat flagged)
    "away-d3": (NumericsConfig(name="away-d3", rounding="nearest_away", exp_degree=3, exp_frac=14,
                               exp=FF(15, 14, signed=False)), FF(8, 8, signed=False)),
    # signed exp format, degree 6, u12.11 output
    "signed-exp-d6": (NumericsConfig(name="signed-exp-d6", exp=FF(17, 15), exp_frac=15,
                                     exp_degree=6), FF(12, 11, signed=False)),
}


@pytest.mark.parametrize("key", sorted(OTHER))
def test_other_numerics(key):
    nc, out = OTHER[key]
    FuseMaxConfig(key, 4, 4, nc)  # a valid configuration
    xs = sample_scores(nc, 256, seed=3)
    assert check(nc, xs, out, tag_width=2) == 256
    if key == "away-d3":
        assert sigmoid_codes(xs, nc, out)[1].any()  # the sat flag was exercised


def test_bad_arguments():
    from fusemax.errors import FuseMaxError

    nc = preset("tiny").numerics
    with pytest.raises(FuseMaxError, match="frac >= 0"):
        PipelinedSigmoid(nc, FF(8, -1))
    with pytest.raises(FuseMaxError, match="tag_width"):
        PipelinedSigmoid(nc, tag_width=-1)
