"""Waves of RTL runs (fusemax.sim.waves) and the Einsum timeline (fusemax.sim.timeline).

The first part needs no simulator: a synthetic VCD with the simulation wrapper's hierarchy
(written with pyvcd) checks the GTKWave layout, the activity sampling and the plots. The second
part (``verilator``) runs ``fusemax sim --waves`` on ``tiny`` with small shapes: the dump and
its layout, every trace of the layout in the dump, the cycle window, the scope limit, and the
timeline's per-Einsum cycles against the RTL's own counters.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from fusemax.config import preset
from fusemax.hw.sequencer import ACTIVITY
from fusemax.errors import FuseMaxError
from fusemax.sim import waves as wv
from fusemax.sim.timeline import gantt, read_activity, utilization_plot
from fusemax.sw.schedule import encode, mnemonic
from workloads import random_attention

# ---------------------------------------------------------------------------------------------
# helpers


def _no_absolute_paths(gtkw: Path) -> None:
    text = gtkw.read_text()
    assert str(gtkw.parent.resolve()) not in text
    for line in text.splitlines():
        if line.startswith("[dumpfile]"):
            assert not line.split(None, 1)[1].strip('"').startswith("/"), line
        if line.startswith("^"):
            assert not line.split(None, 1)[1].startswith("/"), line
        assert not re.search(r"(^|\s|\")/(tmp|home|work|usr)/", line), line


def _traces_exist(gtkw: Path, dump: Path) -> list[str]:
    """Every trace of the save file is a signal of the dump, a vector named with its full bit
    range (GTKWave drops a vector named without one, or with another width)."""
    h = wv.Hierarchy(dump)
    refs = wv.gtkw_traces(gtkw)
    assert refs, "the layout names no trace"
    names = []
    for ref in refs:
        name, width = wv.split_trace_ref(ref)
        assert name in h.vars, f"trace {ref} of {gtkw.name} not in {dump.name}"
        bits = h.vars[name].bitwidth
        assert width == (bits if bits > 1 else None), f"{ref}: the dump's {name} has {bits} bits"
        names.append(name)
    return names


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A VCD shaped like a fusemax_sim dump: 4 reset cycles, a start pulse, 30 busy cycles."""
    from vcd import VCDWriter

    d = tmp_path_factory.mktemp("synthetic")
    path = d / "dump.vcd"
    rng = np.random.default_rng(3)
    n_pre, n_busy, n_post = 4, 30, 3
    pattern = {n: rng.random(n_pre + n_busy + n_post) < 0.4 for n in ACTIVITY}
    words = [encode("HDR", tag=0x1234, version=1), encode("AV", addr=7), encode("END")]
    with open(path, "w") as f, VCDWriter(f, timescale="1 ps", date="today") as w:
        top = "fusemax_sim"
        clk = w.register_var(top, "clk", "wire", size=1)
        start = w.register_var(top, "start", "wire", size=1)
        busy = w.register_var(top, "busy", "wire", size=1)
        done = w.register_var(top, "done", "wire", size=1)
        err = w.register_var(top, "error", "wire", size=8)
        cyc = w.register_var(top, "waves_cycle", "reg", size=64)
        mreq = w.register_var(top, "mem_req_valid", "wire", size=1)
        maddr = w.register_var(top, "mem_req_addr", "wire", size=20)
        seq = f"{top}.dut.seq"
        insn = w.register_var(seq, "cur_insn", "reg", size=64)
        state = w.register_var(seq, "seq_state", "reg", size=4)
        acts = {n: w.register_var(seq, n, "wire", size=1) for n in ACTIVITY}
        lane = f"{top}.dut.array1d.lane_c0"
        rm = w.register_var(lane, "rm", "wire", size=16)
        rd = w.register_var(lane, "rd", "wire", size=36)
        pe = f"{top}.dut.array2d.pe_r1_c0"
        score = w.register_var(pe, "score", "wire", size=16)
        sln = w.register_var(pe, "sln", "wire", size=16)
        valid = w.register_var(pe, "valid", "wire", size=1)
        period = 10_000
        for k in range(n_pre + n_busy + n_post):
            t = k * period
            c = k - n_pre  # the edge at k = n_pre samples start: cycle 0 follows it
            w.change(clk, t, 1)
            w.change(cyc, t, c if c >= 0 else (1 << 64) - 1)
            w.change(busy, t, int(0 <= c < n_busy))
            w.change(done, t, int(c >= n_busy))
            w.change(err, t, 0)
            w.change(mreq, t, k % 2)
            w.change(maddr, t, k)
            w.change(insn, t, words[k % 3])
            w.change(state, t, k % 3)
            w.change(rm, t, k)
            w.change(rd, t, 3 * k)
            w.change(score, t, k)
            w.change(sln, t, k)
            w.change(valid, t, 1)
            for n, var in acts.items():
                w.change(var, t, int(pattern[n][k]))
            w.change(start, t + period // 2, int(k == n_pre - 1))
            w.change(clk, t + period // 2, 0)
    # what the counters would count: active and busy during cycles 0 .. n_busy - 1
    k_busy = [k for k in range(n_pre + n_busy + n_post) if 0 <= k - n_pre < n_busy]
    expect = {n[4:].upper(): int(sum(pattern[n][k] for k in k_busy)) for n in ACTIVITY}
    return path, expect, n_busy, words


# ---------------------------------------------------------------------------------------------
# without a simulator


def test_parse_window():
    assert wv.parse_window("100:500") == (100, 500)
    assert wv.parse_window("100:") == (100, None)
    assert wv.parse_window(":500") == (0, 500)
    assert wv.parse_window(None) is None
    for bad in ("500", "5:5", "9:3", "-1:4", "a:b"):
        with pytest.raises(FuseMaxError):
            wv.parse_window(bad)


_VERILOG = """
module leaf(input wire clk);
  reg [63:0] cur_insn;
endmodule
module lane(input wire clk);
endmodule
module \\fusemax_top.array1d (input wire clk);
  lane lane_c0 (.clk(clk));
  lane lane_c1 (.clk(clk));
endmodule
module fusemax_top(input wire clk);
  leaf seq (.clk(clk));
  \\fusemax_top.array1d  array1d (.clk(clk));
endmodule
module ext_mem #(parameter AW = 4) (input wire clk);
endmodule
module fusemax_sim(input wire clk);
  fusemax_top dut (.clk(clk));
  ext_mem #(.AW(20), .DW(64)) mem (.clk(clk));
endmodule
"""


def test_instance_paths_and_scopes():
    paths = wv.instance_paths(_VERILOG)
    assert set(paths) == {"fusemax_sim", "fusemax_sim.dut", "fusemax_sim.mem", "fusemax_sim.dut.seq",
                          "fusemax_sim.dut.array1d", "fusemax_sim.dut.array1d.lane_c0",
                          "fusemax_sim.dut.array1d.lane_c1"}
    assert wv.sequencer_path(_VERILOG) == "fusemax_sim.dut.seq"
    assert wv.resolve_scopes(_VERILOG, wv.WaveOptions("x")) == ""
    got = wv.resolve_scopes(_VERILOG, wv.WaveOptions("x", scopes=("array1d.lane_c*:1",)))
    assert got.split(",") == ["fusemax_sim:1", "fusemax_sim.dut.seq:1",
                              "fusemax_sim.dut.array1d.lane_c0:1", "fusemax_sim.dut.array1d.lane_c1:1"]
    assert wv.resolve_scopes(_VERILOG, wv.WaveOptions("x", depth=3)).split(",")[0] == "fusemax_sim:3"
    # * stays within one level, ** crosses levels
    assert wv.resolve_scopes(_VERILOG, wv.WaveOptions("x", scopes=("array1*",))).split(",")[2:] == [
        "fusemax_sim.dut.array1d:99"]
    assert wv.resolve_scopes(_VERILOG, wv.WaveOptions("x", scopes=("**_c1",))).split(",")[2:] == [
        "fusemax_sim.dut.array1d.lane_c1:99"]
    with pytest.raises(FuseMaxError, match="matches no instance"):
        wv.resolve_scopes(_VERILOG, wv.WaveOptions("x", scopes=("nosuch",)))
    args = wv.plusargs(wv.WaveOptions("x", window=(10, 20)), Path("d/dump.fst"), _VERILOG)
    assert "+fusemax_waves_from=10" in args and "+fusemax_waves_to=20" in args
    assert all(not a.startswith("+fusemax_waves_scopes") for a in args)


def test_layout_of_a_synthetic_dump(synthetic, tmp_path):
    dump, _, _, words = synthetic
    info = wv.write_gtkw(dump, preset("tiny"), tmp_path)
    gtkw = Path(info["gtkw"])
    names = _traces_exist(gtkw, dump)
    _no_absolute_paths(gtkw)
    text = gtkw.read_text()
    assert '[dumpfile] "' in text and "dump.vcd" in text
    assert {"control", "sequencer", "activity", "memory port", "1D lanes", "2D rows"} <= set(info["groups"])
    assert "fusemax_sim.dut.seq.act_slnv" in names and "fusemax_sim.dut.array1d.lane_c0.rd" in names
    # the instruction filter: every traced word -> its mnemonic
    filt = (tmp_path / info["filters"]["insn"]).read_text()
    for word in words:
        assert f"{word:016x} {mnemonic(word)}\n" in filt, filt
    # fixed point: RM is a score (s16:10): Fixed Point Shift by 10 before it
    lines = text.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.endswith("lane_c0.rm[15:0]"))
    assert "s16:10" in lines[i]
    assert any(ln == "[fpshift_count] 10" for ln in lines[:i])


def test_activity_and_plots_of_a_synthetic_dump(synthetic, tmp_path):
    dump, expect, n_busy, _ = synthetic
    act = read_activity(dump)
    assert act.busy_cycles() == expect
    assert int(act.busy.sum()) == n_busy
    info = gantt(act, tmp_path / "tl.png", window=(5, 20), title="synthetic")
    assert info["window"] == [5, 20] and (tmp_path / "tl.png").stat().st_size > 5000
    u = utilization_plot(preset("tiny"), "B=1,H=1,M=64,P=64,E=8,F=8", tmp_path / "u.png",
                         lengths=[16, 64, 256], arrays=[4, 8],
                         measured=[{"rows": 4, "cols": 4, "shape": {"M": 64, "P": 64}, "util_2d": 0.5,
                                    "util_1d": 0.4}])
    assert (tmp_path / "u.png").stat().st_size > 5000
    assert u["measured"] == {"length_panel": 1, "array_panel": 1}
    assert 0 < u["by_length"]["256"]["fusemax"]["2d"] <= 1


def test_finish_records_the_last_run(synthetic, tmp_path, monkeypatch):
    dump, _, _, _ = synthetic
    monkeypatch.setattr(wv, "last_record_dir", lambda: tmp_path / "rec")
    out = tmp_path / "run"
    out.mkdir()
    (out / "dump.vcd").write_bytes(dump.read_bytes())
    info = wv.finish(wv.WaveOptions(out), out / "dump.vcd", None)
    assert (tmp_path / "rec" / "last").read_text().strip() == str(out.resolve())
    assert json.loads((out / "waves.json").read_text())["gtkw"] == info["gtkw"]
    assert wv.last_run()["dir"] == str(out.resolve())


# ---------------------------------------------------------------------------------------------
# on the RTL

SHAPE = (1, 1, 16, 4, 4, 4)  # B, H, M, P, E, F: 4 tiles on tiny


def _inputs(seed=0):
    return random_attention(SHAPE, seed)


@pytest.fixture(scope="module")
def rtl_runs(tmp_path_factory):
    pytest.importorskip("fusemax.hw.verilog", reason="the hardware generator is not available")
    from fusemax.sim.attention import simulate

    d = tmp_path_factory.mktemp("rtl_waves")
    q, k, v = _inputs()
    cfg = preset("tiny")
    full = simulate(cfg, q, k, v, waves=wv.WaveOptions(d / "full", record=False))
    window = (20, 50)
    win = simulate(cfg, q, k, v, waves=wv.WaveOptions(d / "win", window=window, record=False))
    scoped = simulate(cfg, q, k, v, waves=wv.WaveOptions(d / "scoped", scopes=("array1d.lane_c0",),
                                                         record=False))
    return {"full": full, "win": win, "scoped": scoped, "window": window, "dir": d}


@pytest.mark.verilator
def test_waves_run_writes_dump_and_layout(rtl_runs):
    r = rtl_runs["full"]
    assert r["bit_exact"], r["first_mismatches"]
    dump = Path(r["waves"])
    assert dump.is_file() and dump.name == wv.dump_name()
    gtkw = Path(r["waves_info"]["gtkw"])
    assert gtkw.parent == dump.parent
    names = _traces_exist(gtkw, dump)
    _no_absolute_paths(gtkw)
    assert any(n.endswith(".cur_insn") for n in names) and any(n.endswith(".act_bqk") for n in names)
    filt = (dump.parent / r["waves_info"]["filters"]["insn"]).read_text()
    assert re.search(r"^[0-9a-f]{16} HDR ", filt, re.M) and re.search(r"^[0-9a-f]{16} TILE ", filt, re.M)


_GTKWAVE_TCL = """set n [gtkwave::getTotalNumTraces]
puts "fusemax-traces $n"
for {set i 0} {$i < $n} {incr i} { puts "fusemax-name [gtkwave::getTraceNameFromIndex $i]" }
gtkwave::/File/Quit
"""


@pytest.mark.verilator
def test_gtkwave_loads_every_trace_of_the_layout(rtl_runs, tmp_path):
    """GTKWave itself (headless, under xvfb-run; skipped where either is missing) opens the
    demo-style dump with its save file and shows every trace of it: the traces plus a begin
    and an end marker per group. (A vector named without its bit range would be dropped.)"""
    import shutil
    import subprocess

    if not (shutil.which("gtkwave") and shutil.which("xvfb-run")):
        pytest.skip("gtkwave or xvfb-run not installed (scripts/setup.sh installs them as root)")
    r = rtl_runs["full"]
    gtkw = Path(r["waves_info"]["gtkw"])
    tcl = tmp_path / "count.tcl"
    tcl.write_text(_GTKWAVE_TCL)
    run = subprocess.run(["xvfb-run", "-a", "gtkwave", "-S", str(tcl), Path(r["waves"]).name, gtkw.name],
                         cwd=gtkw.parent, capture_output=True, text=True, timeout=120)
    m = re.search(r"^fusemax-traces (\d+)$", run.stdout, re.M)
    assert m, run.stdout[-2000:] + run.stderr[-2000:]
    groups = len(r["waves_info"]["groups"]) if "groups" in r["waves_info"] else None
    lines = gtkw.read_text().splitlines()
    markers = sum(1 for ln in lines if ln.startswith("-"))  # group begin/end lines
    assert int(m.group(1)) == len(wv.gtkw_traces(gtkw)) + markers, (groups, markers)
    # the names GTKWave shows: the fixed-point aliases whole (GTKWave cuts a name at its last '.')
    shown = re.findall(r"^fusemax-name (.*)$", run.stdout, re.M)
    assert "lane 0 RM [score s16:10]" in shown, shown[:60]


@pytest.mark.verilator
def test_timeline_matches_the_rtl_counters(rtl_runs, tmp_path):
    r = rtl_runs["full"]
    act = read_activity(r["waves"])
    assert act.busy_cycles() == {k: int(v) for k, v in r["einsum_cycles"].items()}
    assert act.array_busy() == {"2d": r["counters"]["busy_2d"], "1d": r["counters"]["busy_1d"]}
    assert int((act.busy & (act.cycles >= 0)).sum()) == r["counters"]["cycles"]
    info = gantt(act, tmp_path / "timeline.png")
    assert (tmp_path / "timeline.png").stat().st_size > 10000
    assert info["einsum_cycles"] == act.busy_cycles()


@pytest.mark.verilator
def test_window_limits_the_dumped_cycles(rtl_runs):
    full, win = rtl_runs["full"], rtl_runs["win"]
    lo, hi = rtl_runs["window"]
    assert win["bit_exact"] and win["cycles"] == full["cycles"]
    h = wv.Hierarchy(win["waves"])
    cyc_var = next(v for n, v in h.vars.items() if n.endswith(".waves_cycle"))
    clk_var = next(v for n, v in h.vars.items() if n == "fusemax_sim.clk")
    ch = wv.signal_changes(h, {"cycle": cyc_var, "clk": clk_var})
    cycles = sorted(set(ch["cycle"][1]))
    assert cycles == list(range(lo, hi)), cycles
    times, values = ch["clk"]
    rising = [t for t, x in zip(times, values) if x == 1]
    period = rising[1] - rising[0]
    assert max(times) - min(times) < (hi - lo) * period
    # the same cycles have the same values in the full dump: the window is a cut of it
    a_full, a_win = read_activity(full["waves"]).window(lo, hi), read_activity(win["waves"])
    assert list(a_win.cycles) == list(range(lo, hi))
    for name in a_full.act:
        assert np.array_equal(a_full.act[name], a_win.act[name]), name
    assert Path(win["waves"]).stat().st_size < Path(full["waves"]).stat().st_size


@pytest.mark.verilator
def test_scope_limits_the_hierarchy(rtl_runs):
    r = rtl_runs["scoped"]
    h = wv.Hierarchy(r["waves"])
    lanes = [s.full for s in h.with_vars("rm", "rd")]
    assert [s.rsplit(".", 1)[1] for s in lanes] == ["lane_c0"], lanes
    assert not h.with_vars("score", "sln", "valid"), "2D PEs were dumped"
    assert h.first("cur_insn") is not None  # the overview stays
    _traces_exist(Path(r["waves_info"]["gtkw"]), Path(r["waves"]))
    act = read_activity(r["waves"])
    assert act.busy_cycles() == {k: int(v) for k, v in r["einsum_cycles"].items()}


@pytest.mark.verilator
def test_cli_waves_and_timeline(tmp_path, monkeypatch):
    pytest.importorskip("fusemax.hw.verilog", reason="the hardware generator is not available")
    from fusemax.cli import main

    monkeypatch.setattr(wv, "last_record_dir", lambda: tmp_path / "rec")
    q, k, v = _inputs(1)
    np.savez(tmp_path / "in.npz", Q=q, K=k, V=v)
    wdir, png = tmp_path / "w", tmp_path / "tl.png"
    rc = main(["sim", "attention-1pass", "--config", "tiny", "--inputs", str(tmp_path / "in.npz"),
               "--out", str(tmp_path / "o.npz"), "--report", str(tmp_path / "r.json"),
               "--waves", str(wdir), "--waves-depth", "1", "--timeline", str(png)])
    assert rc == 0
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["timeline"]["matches_counters"] is True
    assert png.stat().st_size > 10000 and (wdir / "waves.gtkw").is_file()
    assert (tmp_path / "rec" / "last").read_text().strip() == str(wdir.resolve())
    assert main(["timeline", str(wdir), "--out", str(tmp_path / "t2.png"), "--window", "0:40",
                 "--report", str(tmp_path / "r.json")]) == 0
    assert main(["utilization", "--config", "tiny", "--shape", "B=1,H=1,M=16,P=4,E=4,F=4",
                 "--out", str(tmp_path / "u.png"), "--lengths", "16,64", "--arrays", "4,8",
                 "--measured", str(tmp_path / "r.json")]) == 0
