"""Attention with its entropy on the RTL under Verilator (``entropy_unit``, schedule ``MODE
entropy=1``; docs/variants.md, "On the RTL"): ``simulate(..., cascade="attention-entropy")`` on
the ``tiny-entropy`` design, the outputs O and the entropy H of every query (line F of each
output block) bit for bit against :func:`~fusemax.sw.golden_variants.entropy_golden`, with
its flags and the counters the schedule implies (F + 1 lines written per block); shapes that
are not multiples of the array, causal and not, both bindings, blocks whose queries see no key
(H = 0, div_by_zero), saturated scores. (The executor's model of the same contract, without
Verilator, is tested in test_entropy_sw.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from fusemax.config import preset
from fusemax.sim.attention import simulate
from rtl_checks import check_report
from workloads import random_attention

ENT = preset("tiny-entropy")
CASCADE = "attention-entropy"

# ((B, H, P, M, E, F), causal, binding, amplitude of Q and K)
CASES = [
    ((1, 2, 13, 13, 5, 3), True, "fusemax", 1.0),
    ((1, 1, 7, 21, 5, 3), False, "fusemax", 1.0),
    ((2, 1, 10, 6, 4, 3), True, "fusemax", 1.0),     # P > M: blocks that see no key
    ((1, 1, 9, 10, 5, 3), True, "architecture", 1.0),
    ((1, 1, 6, 9, 4, 3), False, "fusemax", 4.0),     # saturated scores
]
IDS = [f"{'x'.join(map(str, s[2:4]))}-{'causal' if c else 'dense'}-{b}-amp{a:g}"
       for s, c, b, a in CASES]


def _check_entropy(r, shape, causal):
    check_report(r)
    B, H, P, M, E, F = shape
    h = r["entropy"]
    assert h["bit_exact"], (h["mismatches"], h["first_mismatches"])
    assert r["cascade"] == CASCADE and r["score_function"] == "softmax, entropy H"
    assert r["expected_counters"]["mem_lines_written"] == B * H * -(-P // ENT.cols) * (F + 1)
    assert 0 < r["counters"]["entropy"] < r["cycles"]
    assert r["extra_arrays"]["H_codes"].shape == (B, H, P)
    if causal and P > M:  # queries that see no key: output 0, H 0, a divide by zero
        assert not np.any(r["output_codes"][:, :, : P - M])
        assert not np.any(r["extra_arrays"]["H_codes"][:, :, : P - M])
        assert "div_by_zero" in r["error_flags"]


@pytest.mark.verilator
@pytest.mark.parametrize("shape, causal, binding, amp", CASES, ids=IDS)
def test_entropy_bit_exact_on_the_rtl(shape, causal, binding, amp):
    B, H, P, M, E, F = shape
    q, k, v = random_attention((B, H, M, P, E, F), seed=P + M, amp=amp)
    r = simulate(ENT, q, k, v, causal=causal, cascade=CASCADE, binding=binding, mode="native")
    _check_entropy(r, shape, causal)
    if amp > 1:
        assert "score_saturated" in r["error_flags"]
    else:
        assert r["error"]["rel_rms"] < 5e-3, r["error"]
        assert r["entropy"]["error"]["max_abs"] < 5e-3, r["entropy"]["error"]


@pytest.mark.verilator
def test_softmax_unchanged_on_the_entropy_design():
    """The same design runs plain attention (no MODE) bit-exactly, F lines per block, and its
    entropy finisher stays idle."""
    q, k, v = random_attention((1, 1, 14, 9, 5, 3), seed=3)
    r = simulate(ENT, q, k, v, causal=True, mode="native")
    check_report(r)
    assert "entropy" not in r and r["counters"]["entropy"] == 0
    assert r["expected_counters"]["mem_lines_written"] == 3 * 3


@pytest.mark.verilator
def test_entropy_under_cocotb_equals_native():
    shape = (1, 1, 9, 11, 4, 3)
    B, H, P, M, E, F = shape
    q, k, v = random_attention((B, H, M, P, E, F), seed=5)
    c = simulate(ENT, q, k, v, causal=True, cascade=CASCADE)
    _check_entropy(c, shape, True)
    n = simulate(ENT, q, k, v, causal=True, cascade=CASCADE, mode="native")
    assert c["mode"] == "cocotb" and c["cycles"] == n["cycles"]
    assert np.array_equal(c["extra_arrays"]["H_codes"], n["extra_arrays"]["H_codes"])
