"""End to end on the RTL: compile -> fusemax_top under Verilator + cocotb -> bit-exact with the
golden model (fusemax.sim.attention.simulate). Each configuration is built once (cached by the
runner); the shapes are small so the default tier stays fast. ``--runslow`` adds M = 65 536."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusemax.config import preset
from fusemax.sw.compiler import buffer_bytes, compile_attention, hex_lines, read_hex
from workloads import random_attention
from rtl_checks import check_report

pytestmark = pytest.mark.verilator


_inputs = random_attention


def _check(report, expect_flags=None):
    check_report(report, expect_flags)
    assert report["cycles"] > 0
    assert 0 < report["utilization"]["2d"] <= 1 and 0 < report["utilization"]["1d"] <= 1
    assert sum(report["einsum_cycles"].values()) > 0


def _sim(cfg, shape, causal=False, **kw):
    hw = pytest.importorskip("fusemax.hw.verilog", reason="the hardware generator is not committed yet")
    del hw
    from fusemax.sim.attention import simulate

    q, k, v = _inputs(shape, seed=kw.pop("seed", 0), amp=kw.pop("amp", 1.0))
    return simulate(preset(cfg), q, k, v, causal=causal, **kw)


# --- the wrapper and bench on a stand-in design (no dependency on the hardware generator) -------

_STUB = """
module fusemax_top(input wire clk, input wire rst, input wire start, input wire [19:0] sched_base,
  output reg busy, output reg done, output wire [7:0] error, input wire [4:0] csr_addr,
  output wire [63:0] csr_data, output reg mem_req_valid, input wire mem_req_ready,
  output reg mem_req_we, output reg [19:0] mem_req_addr, output reg [63:0] mem_req_wdata,
  input wire mem_rsp_valid, input wire [63:0] mem_rsp_data);
  // reads the line at sched_base, writes its complement to the next line, raises done
  reg [63:0] cyc; reg [2:0] st; reg [63:0] word;
  assign error = word[63:58] == 6'h01 ? 8'h00 : 8'h01;
  assign csr_data = csr_addr == 0 ? cyc : {59'd0, csr_addr};
  always @(posedge clk) begin
    if (rst) begin st <= 0; busy <= 0; done <= 0; mem_req_valid <= 0; mem_req_we <= 0; cyc <= 0; end
    else begin
      if (busy) cyc <= cyc + 1;
      case (st)
      0: if (start) begin busy <= 1; done <= 0; cyc <= 0; mem_req_valid <= 1; mem_req_we <= 0;
                          mem_req_addr <= sched_base; st <= 1; end
      1: if (mem_req_ready) begin mem_req_valid <= 0; st <= 2; end
      2: if (mem_rsp_valid) begin word <= mem_rsp_data; mem_req_valid <= 1; mem_req_we <= 1;
                                  mem_req_addr <= sched_base + 1; mem_req_wdata <= ~mem_rsp_data; st <= 3; end
      3: if (mem_req_ready) begin mem_req_valid <= 0; mem_req_we <= 0; st <= 4; end
      4: begin busy <= 0; done <= 1; st <= 0; end
      endcase
    end
  end
endmodule
"""


@pytest.mark.parametrize("ready_pct", [100, 30])
def test_wrapper_and_bench_on_a_stub(tmp_path, ready_pct):
    from fusemax.sim.runner import run_cocotb
    from fusemax.sim.wrapper import wrapper_verilog

    c = preset("tiny")
    img = np.zeros((8, 4), np.uint16)
    img[2] = [0x1234, 0x5678, 0x0001, 0x0400]  # an HDR word
    (tmp_path / "image.hex").write_text(hex_lines(img))
    job = {"sched_base": 2, "timeout_cycles": 1000, "results": str(tmp_path / "res.json")}
    (tmp_path / "job.json").write_text(json.dumps(job))
    run_cocotb(None, name="fusemax_sim", test_module="tests.cocotb_benches.tb_attention",
               verilog=_STUB + wrapper_verilog(c), test_dir_name=f"stub-{ready_pct}",
               extra_env={"FUSEMAX_JOB": str(tmp_path / "job.json")},
               plusargs=[f"+fusemax_image={tmp_path}/image.hex", f"+fusemax_dump={tmp_path}/dump.hex",
                         "+fusemax_dump_lo=1", "+fusemax_dump_hi=5", f"+fusemax_ready_pct={ready_pct}"])
    res = json.loads((tmp_path / "res.json").read_text())
    assert not res["timeout"] and res["done"] == 1 and res["error"] == 0
    assert res["csr"][1:] == list(range(1, 19))
    assert res["csr"][0] >= c.mem_latency
    dump = read_hex(tmp_path / "dump.hex", 4)
    want = img[1:5].copy()
    want[2] = ~img[2]  # line 3 = the complement of line 2
    assert np.array_equal(dump, want)


# --- the real design ---------------------------------------------------------------------------


@pytest.mark.parametrize("cfg, shape", [
    ("tiny", (1, 1, 9, 6, 4, 3)),
    ("small", (1, 1, 20, 11, 8, 6)),
    ("medium", (1, 1, 40, 20, 16, 12)),
    ("rect", (1, 1, 19, 9, 6, 5)),      # 8 rows x 4 cols
    ("wide", (1, 1, 9, 19, 5, 6)),      # 4 rows x 8 cols
    ("tiny-int8", (1, 1, 11, 6, 8, 4)),
])
def test_presets_bit_exact(cfg, shape):
    _check(_sim(cfg, shape))


def test_odd_shape_not_multiples_of_the_array():
    r = _sim("small", (1, 1, 37, 29, 24, 40))
    _check(r)
    assert r["tiling"]["M1"] == 5 and r["tiling"]["P2"] == 4


def test_batch_and_heads():
    _check(_sim("tiny", (2, 3, 10, 5, 6, 4), seed=1))


@pytest.mark.parametrize("cfg, shape", [
    ("rect", (1, 2, 37, 29, 8, 5)),   # P <= M-ish: some blocks skip tiles
    ("wide", (1, 1, 6, 29, 8, 5)),    # P > M: queries that see no key (divide by zero)
    ("tiny", (1, 1, 30, 7, 4, 6)),    # M > P (KV cache)
])
def test_causal(cfg, shape):
    r = _sim(cfg, shape, causal=True, seed=2)
    _check(r)
    assert r["tiling"]["tiles_skipped"] > 0 or shape[2] <= 4


@pytest.mark.parametrize("cfg, shape, causal, kw", [
    ("tiny", (1, 2, 21, 7, 4, 5), False, {"mode": "native"}),
    ("rect", (1, 1, 37, 13, 8, 5), True, {"mode": "native", "binding": "architecture"}),
    ("tiny", (1, 1, 13, 6, 4, 3), True, {"mem_ready_pct": 40}),   # cocotb, back-pressure
])
def test_3pass_cascade(cfg, shape, causal, kw):
    """attention-3pass (pass 1: GM; passes 2-3 merged from TILE.restart) bit-exact with its
    golden; twice the tiles of the 1-pass."""
    r = _sim(cfg, shape, causal=causal, cascade="attention-3pass", seed=6, **kw)
    _check(r)
    assert r["cascade"] == "attention-3pass"
    one = _sim(cfg, shape, causal=causal, seed=6, **kw)
    assert r["tiling"]["tiles"] == 2 * one["tiling"]["tiles"]
    assert r["cycles"] > one["cycles"]


def test_memory_back_pressure():
    r = _sim("tiny", (1, 1, 21, 5, 4, 5), mem_ready_pct=35, seed=3)
    _check(r)
    assert r["stall_cycles"] > 0


def test_saturation_flags():
    r = _sim("tiny", (1, 1, 8, 4, 16, 4), amp=6.0, scale=4.0, seed=4)
    _check(r)
    assert "score_saturated" in r["error_flags"]


def test_schedule_for_another_config_raises_config_flag():
    pytest.importorskip("fusemax.hw.verilog", reason="the hardware generator is not committed yet")
    from fusemax.sim.attention import run_program

    q, k, v = _inputs((1, 1, 8, 4, 4, 4))
    prog = compile_attention(preset("tiny-int8"), q, k, v)  # same lanes, another digest
    raw = run_program(preset("tiny"), prog, timeout_cycles=20_000)
    assert not raw["timeout"] and raw["done"] == 1
    assert raw["error"] & 1, raw["error"]
    assert raw["counters"]["tiles"] == 0
    assert raw["counters"]["config_tag"] == int(preset("tiny").digest(), 16) & 0xFFFF_FFFF


@pytest.mark.slow
def test_long_sequence_65536_keys_on_tiny(record_property):
    c = preset("tiny")
    r_short = _sim("tiny", (1, 1, 256, 4, 8, 8), seed=6)
    _check(r_short)
    r = _sim("tiny", (1, 1, 65536, 4, 8, 8), seed=7, timeout_s=3600)
    _check(r)
    assert r["buffer_bytes"] == r_short["buffer_bytes"] == buffer_bytes(c)
    assert r["config_digest"] == r_short["config_digest"]
    assert r["build_dir"] == r_short["build_dir"]  # the very same Verilator model runs both
    assert r["tiling"]["tiles"] == 16384
    for key in ("cycles", "sim_cycles_per_s"):
        record_property(key, r[key])
    record_property("wall_s", r["wall_s"]["total"])
    record_property("utilization_2d", r["utilization"]["2d"])
    print(f"\nM=65536 tiny: {r['cycles']} cycles, 2D {100 * r['utilization']['2d']:.1f} %, "
          f"1D {100 * r['utilization']['1d']:.1f} %, {r['wall_s']['total']:.1f} s wall, "
          f"{r['sim_cycles_per_s'] / 1e3:.0f} k cycles/s")


def test_cli_sim(tmp_path, capsys):
    pytest.importorskip("fusemax.hw.verilog", reason="the hardware generator is not committed yet")
    from fusemax.cli import main as fusemax
    from fusemax.sw.golden import attention_1pass, causal_mask

    rng = np.random.default_rng(8)
    q, k, v = rng.normal(size=(7, 8)), rng.normal(size=(11, 8)), rng.normal(size=(11, 3))
    np.savez(tmp_path / "in.npz", Q=q, K=k, V=v)
    rc = fusemax(["sim", "attention-1pass", "--config", "tiny", "--inputs", str(tmp_path / "in.npz"),
                  "--out", str(tmp_path / "out.npz"), "--report", str(tmp_path / "r.json"),
                  "--causal", "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    report = json.loads((tmp_path / "r.json").read_text())
    assert printed["bit_exact"] and report["bit_exact"] and report["causal"]
    for key in ("cycles", "busy", "utilization", "einsum_cycles", "stall_cycles", "buffer_bytes",
                "error_flags", "error", "wall_s", "sim_cycles_per_s"):
        assert key in report, key
    gold = attention_1pass(q[None, None], k[None, None], v[None, None], preset("tiny"),
                           mask=causal_mask(7, 11))
    out = np.load(tmp_path / "out.npz")
    assert out["O"].shape == (7, 3)
    assert np.array_equal(out["O_codes"], gold.out_codes[0, 0])


def test_cli_sim_refuses_unmappable_cascade(tmp_path, capsys):
    from fusemax.cli import main as fusemax

    rng = np.random.default_rng(9)
    np.savez(tmp_path / "in.npz", Q=rng.normal(size=(4, 4)), K=rng.normal(size=(4, 4)),
             V=rng.normal(size=(4, 4)))
    assert fusemax(["sim", "attention-2pass", "--config", "tiny", "--inputs", str(tmp_path / "in.npz"),
                    "--out", str(tmp_path / "o.npz")]) == 2
    assert "attention-2pass cannot be mapped" in capsys.readouterr().err


def test_timeout_is_reported_not_hung():
    pytest.importorskip("fusemax.hw.verilog", reason="the hardware generator is not committed yet")
    from fusemax.sim.attention import run_program

    q, k, v = _inputs((1, 1, 64, 4, 8, 8))
    prog = compile_attention(preset("tiny"), q, k, v)
    raw = run_program(preset("tiny"), prog, timeout_cycles=40)  # far too few cycles
    assert raw["timeout"] and raw["output_codes"] is None and raw["busy"] == 1
    assert "did not rise within 40 cycles" in raw["failure"]
