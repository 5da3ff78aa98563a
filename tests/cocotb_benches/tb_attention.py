"""cocotb bench for ``fusemax_sim`` (fusemax_top + ext_mem, docs/architecture.md section 7).

The job comes from the JSON file named by ``FUSEMAX_JOB`` (written by
:mod:`fusemax.sim.attention`)::

    {"sched_base": 0, "timeout_cycles": 123456, "results": "/path/results.json",
     "csr_count": 19, "period_ns": 10}

The memory image is loaded by the wrapper itself ($readmemh, plusarg) and dumped on done
($writememh), so Python does no per-cycle work: reset, one start pulse, ``await`` the rising
edge of ``done`` (with a cycle timeout computed from the shape, so a hang fails cleanly), then
read ``error``, ``busy`` and every counter through the CSR port and write the results JSON.
A timeout still writes the results (with ``"timeout": true``) before failing the test.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.handle import Immediate
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, Timer, with_timeout

try:  # cocotb 2.x
    from cocotb.triggers import SimTimeoutError
except ImportError:  # pragma: no cover
    from cocotb.result import SimTimeoutError  # type: ignore


def _job() -> dict:
    path = os.environ.get("FUSEMAX_JOB")
    if not path:
        raise RuntimeError("FUSEMAX_JOB (path of the job JSON) is not set")
    return json.loads(Path(path).read_text())


async def _read_csrs(dut, count: int) -> list[int]:
    values = []
    for addr in range(count):
        dut.csr_addr.value = addr
        await Timer(1, unit="ns")  # combinational read
        values.append(int(dut.csr_data.value))
    return values


@cocotb.test()
async def run_schedule(dut) -> None:
    """Run the schedule in memory once; record flags, counters and timing."""
    job = _job()
    period = int(job.get("period_ns", 10))
    timeout_cycles = int(job["timeout_cycles"])
    results_path = Path(job["results"])

    # The clock toggles in C (GPI), written immediately: an inertial (Deposit) write is applied
    # after a first eval of the time step, so every edge would cost two evals of the model.
    clock = Clock(dut.clk, period, unit="ns", impl="gpi", set_action=Immediate)
    clock.start()
    dut.start.value = 0
    dut.sched_base.value = int(job.get("sched_base", 0))
    dut.csr_addr.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0

    t0 = time.perf_counter()
    timeout = False
    try:
        await with_timeout(RisingEdge(dut.done), timeout_cycles * period, "ns")
    except SimTimeoutError:
        timeout = True
    sim_wall = time.perf_counter() - t0
    await ClockCycles(dut.clk, 2)  # let the wrapper's dump (on done) happen
    await FallingEdge(dut.clk)
    clock.stop()  # read every counter at the same cycle (they only freeze at done)
    csrs = await _read_csrs(dut, int(job.get("csr_count", 19)))
    results = {
        "timeout": timeout,
        "timeout_cycles": timeout_cycles,
        "done": int(dut.done.value),
        "busy": int(dut.busy.value),
        "error": int(dut.error.value),
        "csr": csrs,
        "sim_wall_s": sim_wall,
    }
    results_path.write_text(json.dumps(results, indent=2))
    assert not timeout, (f"done did not rise within {timeout_cycles} cycles (busy={results['busy']}, "
                         f"error={results['error']:#04x}, counters {csrs})")
