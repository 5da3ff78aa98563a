"""cocotb bench for ``fusemax.hw.arith.harness.ArithHarness``: every operator vs its NumPy twin.

The pytest side (tests/test_rtl_arith_ops.py) computes input vectors and the expected outputs
with :mod:`fusemax.sw.numerics` and stores them in an .npz; ``FUSEMAX_TB_JSON`` points at a
JSON ``{"vectors": path, "latency": {"exp": L, "div": L}}``. Each test drives its operator's
``<prefix>_*`` ports and compares bit for bit; a mismatch fails with the first few offenders.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, Timer

CFG = json.loads(open(os.environ["FUSEMAX_TB_JSON"]).read()) if "FUSEMAX_TB_JSON" in os.environ else {}
VEC = dict(np.load(CFG["vectors"])) if CFG else {}


def sval(handle) -> int:
    return int(handle.value.to_signed()) if hasattr(handle.value, "to_signed") else int(handle.value.signed_integer)


def uval(handle) -> int:
    return int(handle.value)


async def start(dut) -> None:
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for name in ("qk_en", "pv_en", "exp_start", "div_start"):
        getattr(dut, name).value = 0
    await ClockCycles(dut.clk, 2)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


def report(name: str, got: list, want: np.ndarray, inputs: dict[str, np.ndarray]) -> None:
    got_a = np.asarray(got, dtype=np.int64)
    bad = np.nonzero(got_a != want)[0]
    if len(bad):
        lines = [f"{name}: {len(bad)} of {len(want)} mismatches"]
        for i in bad[:8]:
            ins = ", ".join(f"{k}={int(v[i])}" for k, v in inputs.items())
            lines.append(f"  #{i}: {ins}: got {int(got_a[i])}, want {int(want[i])}")
        raise AssertionError("\n".join(lines))


@cocotb.test()
async def test_combinational(dut) -> None:
    """MaxValid, Sub, Requant (BQK -> score), Rescale (RD, RNV) on the vector sets."""
    await start(dut)
    specs = [
        ("mx", ["a", "a_valid", "b", "b_valid"], {"y": True, "y_valid": False}),
        ("sub", ["a", "b"], {"y": True}),
        ("rq", ["x"], {"y": True, "sat": False}),
        ("rsd", ["x", "c"], {"y": True, "sat": False}),
        ("rsn", ["x", "c"], {"y": True, "sat": False}),
    ]
    for prefix, ins, outs in specs:
        n = len(VEC[f"{prefix}_{ins[0]}"])
        got = {o: [] for o in outs}
        for i in range(n):
            for p in ins:
                getattr(dut, f"{prefix}_{p}").value = int(VEC[f"{prefix}_{p}"][i])
            await Timer(1, "ns")
            for o, signed in outs.items():
                h = getattr(dut, f"{prefix}_{o}")
                got[o].append(sval(h) if signed else uval(h))
        for o in outs:
            report(f"{prefix}_{o}", got[o], VEC[f"want_{prefix}_{o}"],
                   {p: VEC[f"{prefix}_{p}"] for p in ins})
        dut._log.info("%s: %d vectors match", prefix, n)


@cocotb.test()
async def test_mac(dut) -> None:
    """Both MACs, cycle by cycle, with random en / load_c / c sequences."""
    await start(dut)
    for prefix in ("qk", "pv"):
        n = len(VEC[f"{prefix}_a"])
        got = []
        for i in range(n):
            for p in ("a", "b", "c", "load_c", "en"):
                getattr(dut, f"{prefix}_{p}").value = int(VEC[f"{prefix}_{p}"][i])
            await RisingEdge(dut.clk)
            await FallingEdge(dut.clk)
            got.append(sval(getattr(dut, f"{prefix}_acc")))
        report(f"{prefix}_acc", got, VEC[f"want_{prefix}_acc"],
               {p: VEC[f"{prefix}_{p}"] for p in ("a", "b", "c", "load_c", "en")})
        dut._log.info("%s MAC: %d cycles match", prefix, n)


async def run_sequential(dut, prefix: str, ins: list[str], outs: dict[str, bool], latency: int):
    """start -> done for each vector, back to back; checks the latency of every operation."""
    n = len(VEC[f"{prefix}_{ins[0]}"])
    got = {o: [] for o in outs}
    start_h = getattr(dut, f"{prefix}_start")
    done_h = getattr(dut, f"{prefix}_done")
    for i in range(n):
        for p in ins:
            getattr(dut, f"{prefix}_{p}").value = int(VEC[f"{prefix}_{p}"][i])
        start_h.value = 1
        await RisingEdge(dut.clk)
        start_h.value = 0
        await ClockCycles(dut.clk, latency - 1)
        await FallingEdge(dut.clk)
        assert int(done_h.value) == 1, f"{prefix}: done not high {latency} cycles after start (vector {i})"
        for o, signed in outs.items():
            h = getattr(dut, f"{prefix}_{o}")
            got[o].append(sval(h) if signed else uval(h))
    for o in outs:
        report(f"{prefix}_{o}", got[o], VEC[f"want_{prefix}_{o}"], {p: VEC[f"{prefix}_{p}"] for p in ins})
    dut._log.info("%s: %d operations match, latency %d", prefix, n, latency)


@cocotb.test()
async def test_exp2(dut) -> None:
    """Exp2 over the vector set (the pytest side passes every input of the score difference)."""
    await start(dut)
    await run_sequential(dut, "exp", ["x", "x_ninf"], {"y": False}, CFG["latency"]["exp"])


@cocotb.test()
async def test_divide(dut) -> None:
    """Divider over random and edge-case numerators/denominators (incl. 0, overflow, ties)."""
    await start(dut)
    await run_sequential(dut, "div", ["num", "den"], {"y": True, "sat": False, "dz": False},
                         CFG["latency"]["div"])


@cocotb.test()
async def test_divide_pipelined(dut) -> None:
    """PipelinedDivider: the same vectors one at a time (latency), then streamed one per cycle."""
    await start(dut)
    latency = CFG["latency"]["div"]
    await run_sequential(dut, "divp", ["num", "den"], {"y": True, "sat": False, "dz": False}, latency)
    n = len(VEC["divp_num"])
    got = {"y": [], "sat": [], "dz": []}
    first_done = None
    for cycle in range(n + latency + 2):
        if cycle < n:
            dut.divp_num.value = int(VEC["divp_num"][cycle])
            dut.divp_den.value = int(VEC["divp_den"][cycle])
            dut.divp_start.value = 1
        else:
            dut.divp_start.value = 0
        await RisingEdge(dut.clk)
        await FallingEdge(dut.clk)
        assert int(dut.divp_busy.value) == 0
        if int(dut.divp_done.value):
            first_done = cycle + 1 if first_done is None else first_done
            got["y"].append(sval(dut.divp_y))
            got["sat"].append(uval(dut.divp_sat))
            got["dz"].append(uval(dut.divp_dz))
    assert first_done == latency, f"first result in cycle {first_done}, expected {latency}"
    for o in got:
        report(f"divp_{o} (streamed)", got[o], VEC[f"want_divp_{o}"],
               {p: VEC[f"divp_{p}"] for p in ("num", "den")})
    dut._log.info("divp: %d divides streamed at one per cycle, latency %d", n, latency)
