"""Sigmoid attention on the RTL (``sigmoid_unit``, schedule ``MODE``; docs/variants.md, "On the
RTL"): the 2D PEs' sigmoid (the Exp2 of −|BQK| and a bit-serial reciprocal), the 1D PEs'
no-max mode (PRM 0 on a block's first tile, then 1) and AV as RNV / RD (normalised) or RNV / 1
(no norm), bit for bit against :func:`fusemax.sw.golden_variants.sigmoid_golden`, with its
saturation and divide-by-zero flags, on shapes that are not multiples of the array, causal and
not, both bindings; E + F below and above the sigmoid's hiding point (E + F >= L + 5)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fusemax.config import preset
from fusemax.hw.formats import FixedFormat
from fusemax.sim.attention import simulate
from workloads import random_attention
from rtl_checks import check_report

SIG = preset("tiny-sigmoid")
#: the unnormalised sum grows with M: an output format with more integer bits (docs/variants.md)
SIG_WIDE = SIG.replace(name="tiny-sigmoid-s16.8", numerics=replace(SIG.numerics, out=FixedFormat(16, 8)))


def _qkv(B, H, P, M, E, F, seed=0):
    return random_attention((B, H, M, P, E, F), seed)


# (config, cascade, (B, H, P, M, E, F), causal, binding)
CASES = [
    (SIG, "sigmoid-norm", (1, 2, 12, 11, 5, 3), True, "fusemax"),
    (SIG, "sigmoid-norm", (1, 1, 9, 14, 5, 3), False, "fusemax"),
    (SIG, "sigmoid-norm", (1, 1, 10, 6, 4, 3), True, "fusemax"),      # P > M: queries see no key
    (SIG_WIDE, "sigmoid-nonorm", (2, 1, 7, 13, 6, 4), True, "fusemax"),
    # head 1's first block sees no key: its AV (first=1) must store 0, not head 0's RNV
    (SIG_WIDE, "sigmoid-nonorm", (1, 2, 10, 6, 4, 3), True, "fusemax"),
    (SIG_WIDE, "sigmoid-nonorm", (1, 1, 9, 10, 5, 3), False, "architecture"),
    (SIG, "sigmoid-nonorm", (1, 1, 5, 30, 5, 3), False, "fusemax"),    # 4 V: saturates s16.12
    (SIG, "sigmoid-norm", (1, 1, 6, 18, 16, 14), True, "fusemax"),    # E + F = 30: hidden
]
IDS = [f"{c}-{cfg.name}-{'x'.join(map(str, s[2:4]))}-{'causal' if ca else 'dense'}-{b}"
       for cfg, c, s, ca, b in CASES]


@pytest.mark.verilator
@pytest.mark.parametrize("cfg, cascade, shape, causal, binding", CASES, ids=IDS)
def test_sigmoid_bit_exact_on_the_rtl(cfg, cascade, shape, causal, binding):
    q, k, v = _qkv(*shape)
    saturating = cascade == "sigmoid-nonorm" and cfg is SIG
    if saturating:
        v = 4 * v
    r = simulate(cfg, q, k, v, cascade=cascade, causal=causal, binding=binding, mode="native")
    check_report(r)
    assert r["cascade"] == cascade
    err = r["error"]
    if saturating:
        assert r["saturation"]["out"] > 0 and "out_saturated" in r["error_flags"]
    else:
        assert err["rel_rms"] < 5e-3, err
    if shape[2] > shape[3] and causal:  # queries that see no key: output 0
        assert not np.any(r["output_codes"][:, :, : shape[2] - shape[3]])
        assert (r["div_by_zero"] > 0) == (cascade == "sigmoid-norm")  # RD = 0 vs a divide by 1


@pytest.mark.verilator
def test_softmax_unchanged_on_the_sigmoid_design():
    """The same design runs plain attention (MODE 0) bit-exactly, and as fast as ``tiny``."""
    q, k, v = _qkv(1, 1, 9, 14, 5, 3)
    r = simulate(SIG, q, k, v, causal=True, mode="native")
    check_report(r)
    base = simulate(preset("tiny"), q, k, v, causal=True, mode="native")
    assert r["cycles"] == base["cycles"]
