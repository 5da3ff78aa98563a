"""Causal Flow-Attention on the RTL under Verilator (``flow_unit``, schedule ``FLOWC``/``FLOW``;
docs/variants.md, "On the RTL"): ``simulate(..., cascade="flowformer-causal")`` on the
``tiny-flow`` design, bit for bit against
:func:`~fusemax.sw.golden_variants.flowformer_causal_golden` with its flags and the counters
the schedule implies; token counts that are not multiples of the array, two heads and two
batches, E != F, the per-task clamps 1 and 5. (The Amaranth-simulator tests of the engine,
including non-square arrays and other numerics, are in test_hw_flow.py.)"""

from __future__ import annotations

import pytest

from fusemax.config import preset
from fusemax.sim.attention import simulate
from rtl_checks import check_report
from workloads import random_attention

FLOW = preset("tiny-flow")


@pytest.mark.verilator
@pytest.mark.parametrize("B,H,N,E,F,clamp", [
    (1, 2, 21, 8, 6, 1.0),
    (2, 1, 10, 16, 5, 5.0),
    (1, 1, 7, 3, 17, 1.0),   # F = 17: five blocks of 4 lanes, the last one partial
])
def test_flowformer_causal_bit_exact_on_the_rtl(B, H, N, E, F, clamp):
    q, k, v = random_attention((B, H, N, N, E, F), seed=N)
    r = simulate(FLOW, q, k, v, cascade="flowformer-causal", clamp=clamp, mode="native")
    check_report(r)
    assert r["cascade"] == "flowformer-causal"
    assert r["counters"]["busy_2d"] == 0 and r["counters"]["flow_busy"] > 0.8 * r["cycles"]
    assert r["error"]["rel_rms"] < 5e-3, r["error"]
