"""exp2: accuracy of the bit-exact model against float64 over its whole input range, and the
Amaranth component against the model (strided subset in the default tier; every input with
``-m slow`` here and under Verilator in tests/test_rtl_arith_ops.py)."""

from __future__ import annotations

import numpy as np
import pytest

from fusemax.config import NumericsConfig, preset
from fusemax.hw.arith.harness import exp_all_inputs, make_operator, pysim_check
from fusemax.sw import numerics as nm


def all_x(nc: NumericsConfig) -> np.ndarray:
    """Every representable exp argument x <= 0 (difference of two score codes)."""
    return np.arange(-(1 << nc.score.width) + 1, 1, dtype=np.int64)


@pytest.mark.parametrize("name", ["tiny", "small-int8"])
def test_exp2_error_vs_float64(name):
    nc = preset(name).numerics
    x = all_x(nc)
    y = nc.exp.to_float(nm.exp2(x, False, nc))
    ref = np.exp2(x * 2.0 ** -nc.score.frac)  # float64 truth
    err = np.abs(y - ref)
    assert err.max() <= 1.0 * nc.exp.lsb  # within one output LSB everywhere (measured 0.77)
    assert np.sqrt(np.mean(err ** 2)) <= 0.2 * nc.exp.lsb  # ~ rounding noise (ideal 0.154)
    assert (err / ref)[ref >= 0.5].max() <= 5e-5
    assert y[-1] == 1.0  # 2**0 is exactly 1 (the row maximum)
    assert (np.diff(y) >= 0).all()  # monotonic
    assert (y[ref < nc.exp.lsb / 2 * 0.999] == 0).all()


@pytest.mark.parametrize("degree, bound_lsb", [(3, 3.5), (4, 1.0), (5, 1.0), (6, 1.0)])
def test_exp2_degree_tradeoff(degree, bound_lsb):
    nc = NumericsConfig(exp_degree=degree)
    x = all_x(nc)[::7]
    err = np.abs(nc.exp.to_float(nm.exp2(x, False, nc)) - np.exp2(x * 2.0 ** -nc.score.frac))
    assert err.max() <= bound_lsb * nc.exp.lsb
    assert nc.exp_cycles == degree + 1


def test_exp2_special_inputs():
    nc = preset("tiny").numerics
    # -inf flag -> 0 whatever x is; positive x clamps to 0 -> 1.0
    assert nm.exp2(np.array([0, -5, 100]), np.array([True, True, True]), nc).tolist() == [0, 0, 0]
    one = 1 << nc.exp.frac
    assert nm.exp2(np.array([1, 1000]), False, nc).tolist() == [one, one]
    # integer arguments are exact powers of two (r = 0 -> polynomial = 1)
    xs = -np.arange(0, 16) * (1 << nc.score.frac)
    assert nm.exp2(xs, False, nc).tolist() == [one >> k for k in range(16)]


@pytest.mark.parametrize("name", ["tiny", "small-int8"])
def test_exp2_component_subset(name):
    cfg = preset(name)
    x = exp_all_inputs(cfg)[::41]
    ninf = np.zeros(len(x), np.int64)
    ninf[::13] = 1
    vec = {"exp_x": x, "exp_x_ninf": ninf, "want_exp_y": nm.exp2(x, ninf.astype(bool), cfg.numerics)}
    assert pysim_check(make_operator(cfg, "exp"), "exp", vec) == len(x)


@pytest.mark.slow
def test_exp2_component_exhaustive_pysim():
    cfg = preset("tiny")
    x = exp_all_inputs(cfg)
    vec = {"exp_x": x, "exp_x_ninf": np.zeros(len(x), np.int64),
           "want_exp_y": nm.exp2(x, False, cfg.numerics)}
    assert pysim_check(make_operator(cfg, "exp"), "exp", vec) == len(x)
