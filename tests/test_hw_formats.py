"""Fixed-point formats: rounding modes against exact rational arithmetic, quantization,
saturation, and the Amaranth expressions against the NumPy functions."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from fusemax.errors import FuseMaxError
from fusemax.hw.formats import (ROUNDING_MODES, FixedFormat, format_from_dict, parse_format,
                                round_shift, round_shift_hdl, wrap)

MODES = ROUNDING_MODES


def exact_round(fr: Fraction, mode: str) -> int:
    """Independent reference: round a rational number to an integer."""
    fl = math.floor(fr)
    if mode == "floor":
        return fl
    diff = fr - fl
    if diff < Fraction(1, 2):
        return fl
    if diff > Fraction(1, 2):
        return fl + 1
    if mode == "nearest_even":
        return fl if fl % 2 == 0 else fl + 1
    return fl + 1 if fr > 0 else fl  # ties away from zero


@pytest.mark.parametrize("mode", MODES)
def test_round_shift_exact(mode):
    vals = np.arange(-300, 301, dtype=np.int64)
    for s in range(0, 6):
        got = round_shift(vals, s, mode)
        want = [exact_round(Fraction(int(v), 1 << s), mode) for v in vals]
        assert got.tolist() == want, (mode, s)
    # negative shift = exact left shift
    assert round_shift(vals, -3, mode).tolist() == (vals * 8).tolist()


@pytest.mark.parametrize("mode", MODES)
def test_round_shift_large_values(mode):
    rng = np.random.default_rng(1)
    vals = rng.integers(-(1 << 50), 1 << 50, 2000)
    for s in (1, 11, 27, 40):
        got = round_shift(vals, s, mode)
        want = [exact_round(Fraction(int(v), 1 << s), mode) for v in vals]
        assert got.tolist() == want


def test_quantize_and_saturate():
    f = FixedFormat(8, 4)
    assert (f.min_code, f.max_code) == (-128, 127)
    codes, n = f.quantize([0.0, 0.03125, 0.09375, -0.03125, 7.96875, 100.0, -100.0])
    # 0.5 lsb ties -> even; 1.5 lsb -> 2; 127.5 -> 128 saturates; +-saturation counted
    assert codes.tolist() == [0, 0, 2, 0, 127, 127, -128]
    assert n == 3
    codes, _ = f.quantize([0.03125, -0.03125], "nearest_away")
    assert codes.tolist() == [1, -1]
    codes, _ = f.quantize([0.06, -0.01], "floor")
    assert codes.tolist() == [0, -1]
    assert f.to_float(codes).tolist() == [0.0, -0.0625]
    u = FixedFormat(8, 8, signed=False)
    assert u.quantize([-1.0, 0.5, 2.0])[0].tolist() == [0, 128, 255]
    with pytest.raises(FuseMaxError, match="NaN"):
        f.quantize([np.nan])


def test_requantize_and_wrap():
    f = FixedFormat(8, 2)
    codes, n = f.requantize(np.array([4, 5, 6, 7, 1 << 12, -(1 << 12)]), 3, "nearest_even")
    assert codes.tolist() == [2, 2, 3, 4, 127, -128] and n == 2
    assert wrap(np.array([128, -129, 255]), 8).tolist() == [-128, 127, -1]
    assert wrap(np.array([256, -1]), 8, signed=False).tolist() == [0, 255]


def test_format_text_and_dict():
    assert parse_format("s16.12") == FixedFormat(16, 12)
    assert parse_format("u16.15") == FixedFormat(16, 15, signed=False)
    with pytest.raises(FuseMaxError):
        parse_format("q16")
    f = FixedFormat(36, 15)
    assert format_from_dict(f.to_dict()) == f
    assert "s36.15" in f.describe()


class _RoundHarness(wiring.Component):
    def __init__(self, width, sgn, shift, mode, fmt):
        self.shift, self.mode, self.fmt = shift, mode, fmt
        super().__init__({"x": In(signed(width) if sgn else unsigned(width)),
                          "r": Out(signed(width + 2)), "y": Out(fmt.shape()), "sat": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.r.eq(round_shift_hdl(self.x, self.shift, self.mode))
        y, sat = self.fmt.requantize_hdl(self.x, self.shift + self.fmt.frac, self.mode)
        m.d.comb += [self.y.eq(y), self.sat.eq(sat)]
        return m


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sgn, width, shift, fmt", [
    (True, 10, 3, FixedFormat(6, 0)),
    (True, 7, 9, FixedFormat(4, 1)),        # shift wider than the value
    (False, 9, 2, FixedFormat(6, 0, signed=False)),
    (True, 8, 0, FixedFormat(6, 2)),
])
def test_hdl_rounding_matches_numpy(mode, sgn, width, shift, fmt):
    """Exhaustive over every input of a small width."""
    dut = _RoundHarness(width, sgn, shift, mode, fmt)
    xs = range(-(1 << (width - 1)), 1 << (width - 1)) if sgn else range(0, 1 << width)
    got_r, got_y, got_s = [], [], []

    async def bench(ctx):
        for x in xs:
            ctx.set(dut.x, x)
            got_r.append(ctx.get(dut.r))
            got_y.append(ctx.get(dut.y))
            got_s.append(ctx.get(dut.sat))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    xa = np.array(list(xs), np.int64)
    assert got_r == round_shift(xa, shift, mode).tolist()
    want_y, _ = fmt.requantize(xa, shift + fmt.frac, mode)
    assert got_y == want_y.tolist()
    r = round_shift(xa, shift, mode)
    assert got_s == ((r < fmt.min_code) | (r > fmt.max_code)).astype(int).tolist()


# ---- property tests (hypothesis) against exact rational arithmetic -----------------------


@settings(max_examples=300, deadline=None)
@given(v=st.integers(-(1 << 60), (1 << 60) - 1), s=st.integers(0, 40), mode=st.sampled_from(MODES))
def test_round_shift_property(v, s, mode):
    assert int(round_shift(np.array([v]), s, mode)[0]) == exact_round(Fraction(v, 1 << s), mode)


@settings(max_examples=300, deadline=None)
@given(x=st.floats(-300, 300, allow_nan=False), mode=st.sampled_from(MODES),
       width=st.integers(2, 20), frac=st.integers(-4, 18))
def test_quantize_property(x, mode, width, frac):
    f = FixedFormat(width, frac)
    code, n = f.quantize(np.array([x]), mode)
    want = exact_round(Fraction(x) * Fraction(2) ** frac, mode)
    clipped = min(max(want, f.min_code), f.max_code)
    assert int(code[0]) == clipped and n == int(clipped != want)
