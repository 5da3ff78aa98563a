"""The analytical model (fusemax/sw/perfmodel.py): the paper's table reproduced, invariants,
predict_rtl, bad input, the CLI."""

from __future__ import annotations

import json

import pytest

from fusemax.cli import main
from fusemax.config import preset
from fusemax.errors import FuseMaxError
from fusemax.sw import perfmodel as pm

LABELS = ("1K", "4K", "16K", "64K", "256K", "1M")


@pytest.fixture(scope="module")
def table():
    return pm.paper_table()


def _point(table, model, n):
    return next(p for p in table["points"] if p["model"] == model and p["length"] == n)


# ---- the paper's table -------------------------------------------------------------------


@pytest.mark.parametrize("model", list(pm.MODELS))
@pytest.mark.parametrize("i", range(6), ids=LABELS)
def test_speedup_vs_flat_per_point(table, model, i):
    p = _point(table, model, pm.PAPER_LENGTHS[i])
    assert p["speedup_vs_flat"] == pytest.approx(pm.PAPER_SPEEDUP_VS_FLAT[model][i], rel=0.01)
    # the model reproduces the two-decimal figures themselves
    assert round(p["speedup_vs_flat"], 2) == pm.PAPER_SPEEDUP_VS_FLAT[model][i]


@pytest.mark.parametrize("model", list(pm.MODELS))
@pytest.mark.parametrize("i", range(6), ids=LABELS)
def test_speedup_vs_unfused_per_point(table, model, i):
    p = _point(table, model, pm.PAPER_LENGTHS[i])
    assert p["speedup_vs_unfused"] == pytest.approx(pm.PAPER_SPEEDUP_VS_UNFUSED[model][i], rel=0.01)


def test_means(table):
    assert table["mean_speedup_vs_flat"] == pytest.approx(6.72, rel=0.01)
    assert round(table["mean_speedup_vs_flat"], 1) == 6.7
    assert table["mean_speedup_vs_unfused"] == pytest.approx(10.0, rel=0.01)


@pytest.mark.parametrize("design,model", sorted(pm.PAPER_UTIL))
def test_utilizations(table, design, model):
    for n, (u2, u1) in pm.PAPER_UTIL[(design, model)].items():
        d = _point(table, model, n)["designs"][design]
        assert 100 * d["util_2d"] == pytest.approx(u2, abs=0.06), (design, model, n)
        assert 100 * d["util_1d"] == pytest.approx(u1, abs=0.6), (design, model, n)


def test_headline_utilizations(table):
    bert = lambda n, d: 100 * _point(table, "BERT", n)["designs"][d]["util_2d"]  # noqa: E731
    assert round(bert(1024, "fusemax"), 1) == 89.0
    assert round(bert(4096, "fusemax"), 1) == 96.5
    assert round(bert(2 ** 20, "fusemax"), 1) == 99.3
    assert bert(1024, "flat") == pytest.approx(12.5)
    assert round(bert(1024, "architecture"), 1) == 29.9


def test_worked_example_bert_1k():
    """reference 6.3: U = 12 288 tiles, 154 cycles each, 1 892 352 cycles = 2.013 ms; FLAT 13.39 ms."""
    r = pm.evaluate("fusemax", pm.BERT.workload(1024))
    assert r.tiles == 12288 and r.per_tile_cycles == 154 and r.cycles == 1892352
    assert r.seconds == pytest.approx(0.0020131, rel=1e-4)
    assert pm.evaluate("flat", pm.BERT.workload(1024)).seconds == pytest.approx(0.013386, rel=1e-4)
    assert pm.evaluate("unfused", pm.BERT.workload(1024)).seconds == pytest.approx(0.0218236, rel=1e-4)


def test_dram_traffic_and_p1():
    w = pm.BERT.workload(2 ** 16)
    assert pm.evaluate("fusemax", w).dram_bytes == 38654705664
    assert pm.p1_sizing(pm.BERT.workload(2 ** 20), pm.PAPER_FUSEMAX_HW) == 128
    assert pm.p1_sizing(pm.XLM.workload(2 ** 20), pm.PAPER_FUSEMAX_HW) == 64
    assert pm.evaluate("fusemax", pm.BERT.workload(1024)).dram_bytes == pytest.approx(4.0e8, rel=0.01)
    assert pm.evaluate("fusemax", pm.BERT.workload(2 ** 20)).dram_bytes == pytest.approx(6.8e12, rel=0.01)
    # FLAT with QK and A in DRAM (>= 256K), and unfused: the artifact's bytes
    assert pm.evaluate("flat", pm.BERT.workload(2 ** 18)).dram_bytes == 435458144206848
    assert pm.evaluate("flat", pm.BERT.workload(2 ** 20)).dram_bytes == 6966711832018944
    assert pm.evaluate("unfused", pm.BERT.workload(1024)).dram_bytes == 6845104128
    assert pm.evaluate("unfused", pm.BERT.workload(2 ** 20)).dram_bytes == pytest.approx(6.7589e15, rel=1e-3)
    # XLM at 1M: the artifact's mapper re-read a little more (9.0165e15 B); compulsory is 0.09 % less
    assert pm.evaluate("unfused", pm.XLM.workload(2 ** 20)).dram_bytes == pytest.approx(9.0165e15, rel=2e-3)


def test_flat_goes_memory_bound_at_256k():
    for n in pm.PAPER_LENGTHS:
        r = pm.evaluate("flat", pm.BERT.workload(n))
        assert r.bound == ("memory" if n >= 2 ** 18 else "compute"), n
    assert pm.evaluate("flat", pm.BERT.workload(2 ** 18)).seconds == pytest.approx(1013.88, rel=1e-6)
    assert pm.flat_placement(pm.BERT.workload(2 ** 17), pm.PAPER_FLAT_HW) == ("onchip", 0.5)
    for d in ("fusemax", "architecture", "cascade"):
        assert pm.evaluate(d, pm.BERT.workload(2 ** 20)).bound == "compute"


# ---- invariants -------------------------------------------------------------------------


@pytest.mark.parametrize("design", pm.DESIGNS)
@pytest.mark.parametrize("array", [(256, 256), (16, 16), (32, 8), (8, 64)])
def test_invariants(design, array):
    for m in pm.MODELS.values():
        for n in (1024, 65536, 2 ** 20, 3000):
            r = pm.evaluate(design, m.workload(n), pm.paper_hardware(design, *array))
            assert 0 < r.util_2d <= 1 + 1e-12 and 0 < r.util_1d <= 1 + 1e-12
            assert r.cycles >= max(r.busy_2d, r.busy_1d) - 1e-6
            assert r.cycles >= r.compute_cycles - 1e-6 or design == "unfused"
            assert r.busy_2d == pytest.approx(sum(e.cycles for e in r.einsums if e.array == "2D"))


def test_monotone_where_the_paper_says(table):
    for m in pm.MODELS:
        vs_flat = [_point(table, m, n)["speedup_vs_flat"] for n in pm.PAPER_LENGTHS]
        util = [_point(table, m, n)["designs"]["fusemax"]["util_2d"] for n in pm.PAPER_LENGTHS]
        vs_unf = [_point(table, m, n)["speedup_vs_unfused"] for n in pm.PAPER_LENGTHS]
        assert vs_flat == sorted(vs_flat) and util == sorted(util)
        assert all(b >= a * 0.999 for a, b in zip(vs_unf, vs_unf[1:]))  # flat within rounding at the top
    # XLM gains less than the E = F = 64 models (baselines use the 2D array better)
    for n in pm.PAPER_LENGTHS:
        assert _point(table, "XLM", n)["speedup_vs_flat"] < _point(table, "BERT", n)["speedup_vs_flat"]
    # steady state (E+F+9)/(E+F+10) (compute; one block of 256 queries re-streaming K/V for
    # 2**30 keys is memory-bound: 143 cycles of DRAM per 138-cycle tile)
    r = pm.evaluate("fusemax", pm.Workload(1, 1, 2 ** 30, 256, 64, 64))
    assert r.busy_2d / r.compute_cycles == pytest.approx(137 / 138, rel=1e-6)
    assert r.bound == "memory" and r.memory_cycles / r.tiles == pytest.approx(256 * 128 * 2 / r.hardware.bytes_per_cycle)


def test_array_size_scales_compute():
    """The Pareto sweep at 256K (reference 6.4): BERT latency ~1/N^2, 118.3 s at 256^2."""
    w = pm.BERT.workload(2 ** 18)
    secs = {n: pm.evaluate("fusemax", w, pm.paper_hardware("fusemax", n)).seconds for n in (64, 128, 256, 512)}
    assert secs[256] == pytest.approx(118.3, rel=0.01)
    assert secs[128] == pytest.approx(473, rel=0.01) and secs[64] == pytest.approx(1892, rel=0.01)
    assert secs[512] == pytest.approx(29.6, rel=0.02)


def test_causal_tile_count():
    w = pm.Workload(1, 1, 64, 64, 16, 16)
    assert pm.count_tiles(w, 8, 8) == 64
    assert pm.count_tiles(w, 8, 8, causal=True) == 36  # lower triangle incl. the diagonal
    # more keys than queries (KV cache): every query sees the leading M - P keys
    w2 = pm.Workload(1, 1, 96, 32, 16, 16)
    assert pm.count_tiles(w2, 8, 8, causal=True) == sum(min(12, (i * 8 + 7 + 64) // 8 + 1) for i in range(4))
    # brute force on a rectangular tiling
    for M, P, r, c in [(50, 30, 8, 4), (30, 50, 4, 8), (17, 17, 4, 4)]:
        brute = sum(1 for i in range(-(-P // c)) for j in range(-(-M // r))
                    if any(m <= p + M - P for m in range(j * r, min(M, (j + 1) * r))
                           for p in range(i * c, min(P, (i + 1) * c))))
        assert pm.count_tiles(pm.Workload(1, 1, M, P, 4, 4), r, c, causal=True) == brute


# ---- predict_rtl ------------------------------------------------------------------------


def test_predict_rtl_medium():
    pred = pm.predict_rtl(preset("medium"), "B=1,H=1,M=1024,P=1024,E=32,F=32")
    assert pred["tiles"] == 64 * 64 and pred["sln_prm_cycles"] == preset("medium").numerics.exp_cycles + 1
    fm, arch = pred["bindings"]["fusemax"], pred["bindings"]["architecture"]
    x = pred["sln_prm_cycles"]
    # steady state: (E + F + x + 2) / (max(E, F) + 1 + 1 + x + 1 + F)  ~ 98.6 % (issue 5)
    assert fm["util_2d_steady"] == pytest.approx((64 + x + 2) / (33 + 1 + x + 1 + 32))
    assert round(100 * fm["util_2d_steady"], 1) == 98.6
    div = 1  # pipelined divider (the default): one divide per cycle per lane
    a_v = 1 * 1 * 64 * 32 * div
    assert fm["cycles"] == max(4096 * 33, 4096 * 33 + a_v) + 4096 * (1 + x + 1 + 32)
    assert arch["cycles"] == max(4096 * 33, 4096 + a_v) + 4096 * (16 + 1 + x + 1 + 64)
    assert fm["util_1d"] == pytest.approx(1.0)
    assert arch["util_2d"] < fm["util_2d"] <= 1
    assert "fill" in pred["note"] and "divider" in pred["note"] and "memory" in pred["note"]


@pytest.mark.parametrize("name", ["tiny", "small", "large", "rect", "wide", "small-int8"])
def test_predict_rtl_presets(name):
    cfg = preset(name)
    pred = pm.predict_rtl(name, {"B": 2, "H": 1, "M": 8 * cfg.rows, "P": 4 * cfg.cols, "E": 16, "F": 16})
    assert pred["rows"] == cfg.rows and pred["cols"] == cfg.cols and pred["tiles"] == 2 * 8 * 4
    assert pred["div_cycles"] == 1 and "pipelined" in pred["divider"]
    for b in pm.RTL_BINDINGS:
        r = pred["bindings"][b]
        assert 0 < r["util_2d"] <= 1 and 0 < r["util_1d"] <= 1
        assert r["cycles"] >= pred["tiles"] * (16 + 16 + pred["sln_prm_cycles"] + 2)
    serial = pm.predict_rtl(cfg, "B=2,H=1,M=64,P=64,E=16,F=16", pipelined_divider=False)
    assert serial["div_cycles"] == cfg.numerics.div_cycles
    assert serial["av_divide_cycles"] == 2 * -(-64 // cfg.cols) * 16 * cfg.numerics.div_cycles
    assert (serial["bindings"]["fusemax"]["cycles"]
            >= pm.predict_rtl(cfg, "B=2,H=1,M=64,P=64,E=16,F=16")["bindings"]["fusemax"]["cycles"])


def test_predict_rtl_causal_and_compiler_agree():
    from fusemax.sw.compiler import compile_schedule, parse_shape

    shape = parse_shape("B=1,H=2,M=40,P=24,E=8,F=8")
    sched = compile_schedule(preset("small"), shape, causal=True)
    pred = pm.predict_rtl(preset("small"), shape, causal=True)
    assert pred["tiles"] == sched.tiles and pred["tiles_skipped"] == sched.tiles_skipped


def test_rtl_binding_model_sigmoid():
    """The sigmoid entry: per tile max(E + F + 2/k, Ls + 1) (docs/variants.md section 5: 25
    cycles on tiny at E = F = 8, the port's E + F + 2 at E = F = 14), Ls = the unit's latency."""
    from fusemax.hw.arith.sigmoid import Sigmoid

    cfg = preset("tiny-sigmoid")
    assert cfg.numerics.sigmoid_cycles == Sigmoid(cfg.numerics).LATENCY == 24
    for ef, tile in ((8, 25), (14, 30)):
        m = pm.rtl_binding_model(cfg, f"B=1,H=1,M=96,P=4,E={ef},F={ef}")
        sig, soft = m["sigmoid"]["fusemax"], m["bindings"]["fusemax"]
        assert sig["per_tile_cycles"] == tile and sig["tiles_run"] == soft["tiles_run"]
        assert sig["start_cycles"] == soft["start_cycles"] + 24 - 5
        arch = m["sigmoid"]["architecture"]
        assert arch["per_tile_cycles"] == m["bindings"]["architecture"]["per_tile_cycles"] + 24 - 5


# ---- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda: pm.model("GPT"),
    lambda: pm.Workload(1, 1, -5, 64, 16, 16),
    lambda: pm.Workload(1, 1, 64, 64, 0, 16),
    lambda: pm.Hardware(rows=0),
    lambda: pm.paper_hardware("fusemax", 0),
    lambda: pm.Hardware(clock_hz=-1.0),
    lambda: pm.evaluate("tpu", pm.BERT.workload(1024)),
    lambda: pm.parse_shape("B=1,H=1,M=64"),
    lambda: pm.parse_shape("B=1,H=1,M=64,P=64,E=16,F=16,Z=3"),
    lambda: pm.parse_length("-4K"),
    lambda: pm.predict_rtl("nosuchconfig", "B=1,H=1,M=64,P=64,E=16,F=16"),
    lambda: pm.evaluate("fusemax", "B=1,H=1,M=4,P=4,E=4,F=4", "not hardware"),
    lambda: pm.Workload.of(3.5),
])
def test_bad_input(call):
    with pytest.raises(FuseMaxError):
        call()


@pytest.mark.parametrize("argv,msg", [
    (["model", "--model", "GPT"], "unknown model"),
    (["model", "--array", "0"], "positive"),
    (["model", "--seq=-1K"], "positive"),
    (["model", "--design", "tpu"], "unknown design"),
    (["model", "--shape", "B=1,H=1,M=-64,P=64,E=16,F=16"], "positive"),
    (["model", "--config", "small"], "--shape"),
])
def test_cli_errors(capsys, argv, msg):
    assert main(argv) == 2
    assert msg in capsys.readouterr().err


# ---- CLI --------------------------------------------------------------------------------


def test_cli_paper_json(capsys):
    assert main(["model", "--paper", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["points"]) == 24
    assert out["mean_speedup_vs_flat"] == pytest.approx(6.72, rel=0.01)
    p = out["points"][0]
    assert set(p["designs"]) == set(pm.DESIGNS)
    assert {"cycles", "seconds", "util_2d", "util_1d"} <= set(p["designs"]["fusemax"])


def test_cli_text_and_rtl(capsys):
    assert main(["model", "--paper", "--model", "BERT", "--seq", "1K"]) == 0
    out = capsys.readouterr().out
    assert "6.65" in out and "89.0/100.0" in out
    assert main(["model", "--config", "medium", "--shape", "B=1,H=1,M=1024,P=1024,E=32,F=32",
                 "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    assert set(pred["bindings"]) == {"fusemax", "architecture"}
    assert main(["model", "--design", "fusemax,flat", "--array", "32x16", "--model", "XLM",
                 "--seq", "1K"]) == 0
    assert "fusemax" in capsys.readouterr().out
    assert main(["model", "--shape", "B=1,H=2,M=4K,P=4K,E=64,F=64", "--causal", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 5


def test_cli_plot(tmp_path, capsys):
    png = tmp_path / "m.png"
    assert main(["model", "--paper", "--model", "BERT,XLM", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_help_has_example(capsys):
    with pytest.raises(SystemExit):
        main(["model", "--help"])
    assert "example:\n  fusemax model" in capsys.readouterr().out


@pytest.mark.parametrize("n,fractions", [(2 ** 20, (46.4, 0.7, 5.1, 0.7, 46.4)),
                                         (1024, (41.6, 0.6, 4.5, 0.6, 41.6))])
def test_fusemax_2d_time_per_einsum(n, fractions):
    """Fraction of FuseMax's time the 2D array spends on QK, LM, SLN, SLD, SLNV (BERT; Fig. 7)."""
    r = pm.evaluate("fusemax", pm.BERT.workload(n))
    got = {e.name: 100 * e.cycles / r.cycles for e in r.einsums if e.array == "2D"}
    for name, ref in zip(("QK", "LM", "SLN", "SLD", "SLNV"), fractions):
        assert got[name] == pytest.approx(ref, abs=0.06), name


def test_docs_table_is_the_cli_output(capsys):
    """docs/model.md shows the table `fusemax model --paper` prints, verbatim."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "model.md").read_text(encoding="utf-8")
    blocks = text.split("```")[1::2]
    block = next(b for b in blocks if b.lstrip("\n").startswith("FuseMax paper table"))
    assert main(["model", "--paper"]) == 0
    assert capsys.readouterr().out == block.lstrip("\n")
