"""cocotb bench for the runner smoke design (``SmokeAccumulator`` in tests/test_sim_runner.py).

Ports: ``clk``, ``rst``, ``a``, ``b`` (``SMOKE_WIDTH`` bits), ``en``, ``clear``;
``sum`` = registered ``a + b``; ``acc`` (32 bits) accumulates ``a`` when ``en``, cleared by
``clear`` (``clear`` wins). Config comes from the environment (``SMOKE_WIDTH``, ``SMOKE_N``,
``SMOKE_CYCLES``), as it would for a real bench via a JSON path.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, Timer

PERIOD_NS = 10
WIDTH = int(os.environ.get("SMOKE_WIDTH", "16"))
N_RANDOM = int(os.environ.get("SMOKE_N", "400"))
N_CYCLES = int(os.environ.get("SMOKE_CYCLES", "1000000"))
MASK32 = (1 << 32) - 1


async def start(dut) -> None:
    """Start the (GPI) clock and hold reset for two cycles."""
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.a.value = 0
    dut.b.value = 0
    dut.en.value = 0
    dut.clear.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


@cocotb.test()
async def test_random_inputs(dut) -> None:
    """A few hundred random cycles checked against a Python model, cycle by cycle."""
    await start(dut)
    rng = random.Random(int(os.environ.get("COCOTB_RANDOM_SEED", "1")))
    exp_sum, exp_acc = 0, 0
    for i in range(N_RANDOM):
        a, b = rng.getrandbits(WIDTH), rng.getrandbits(WIDTH)
        en, clear = int(rng.random() < 0.7), int(rng.random() < 0.05)
        dut.a.value, dut.b.value, dut.en.value, dut.clear.value = a, b, en, clear
        await FallingEdge(dut.clk)  # the rising edge in between latched the inputs
        exp_sum = a + b
        exp_acc = 0 if clear else (exp_acc + a) & MASK32 if en else exp_acc
        got_sum, got_acc = int(dut.sum.value), int(dut.acc.value)
        assert got_sum == exp_sum, f"cycle {i}: sum {got_sum} != {a} + {b}"
        assert got_acc == exp_acc, f"cycle {i}: acc {got_acc} != {exp_acc}"


@cocotb.test()
async def test_throughput(dut) -> None:
    """Simulated cycles/s, written to throughput.json.

    ``idle``: Python sleeps on one ``Timer`` while the GPI clock runs (how benches should wait
    for ``done``); ``per_edge``: Python wakes on every rising edge (``ClockCycles``).
    """
    await start(dut)
    dut.a.value, dut.en.value = 3, 1
    t0 = time.perf_counter()
    await Timer(N_CYCLES * PERIOD_NS, unit="ns")  # from a falling edge to a falling edge
    idle = N_CYCLES / (time.perf_counter() - t0)
    assert int(dut.acc.value) == (3 * N_CYCLES) & MASK32, int(dut.acc.value)

    n_edge = max(N_CYCLES // 10, 1)
    t0 = time.perf_counter()
    await ClockCycles(dut.clk, n_edge)
    per_edge = n_edge / (time.perf_counter() - t0)
    await FallingEdge(dut.clk)
    assert int(dut.acc.value) == (3 * (N_CYCLES + n_edge)) & MASK32, int(dut.acc.value)

    dut._log.info("cycles/s: %.0f with Python idle, %.0f waking per edge", idle, per_edge)
    Path("throughput.json").write_text(
        json.dumps({"cycles": N_CYCLES, "cycles_per_s": idle, "per_edge_cycles_per_s": per_edge})
    )


@cocotb.test(skip=True)  # only runs when selected by name (run_cocotb(..., testcase=...))
async def test_expected_failure(dut) -> None:
    """Fails on purpose: proves a cocotb assertion reaches pytest as AssertionError."""
    await start(dut)
    dut.a.value, dut.b.value = 2, 2
    await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    assert int(dut.sum.value) == 5, "deliberate failure: 2 + 2 != 5"
