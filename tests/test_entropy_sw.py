"""Attention with its entropy (``attention-entropy``, ``MODE entropy=1``, a design with
``entropy_unit``) without Verilator: the compiler's schedule and layout (output blocks of
F + 1 lines, the last one the entropy H of the block's queries), the schedule executor's model
of the RT accumulator and the entropy finisher (bit for bit
:func:`~fusemax.sw.golden_variants.entropy_golden`: outputs, H codes and error flags), MODE's
config errors, the host part (``rtl_variants.prepare``), ``simulate`` with the executor
standing in for the RTL, and the CLI."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fusemax.cli import main as fusemax
from fusemax.config import preset
from fusemax.errors import FuseMaxError
from fusemax.hw.formats import FixedFormat
from fusemax.sim.attention import expected_flags
from fusemax.sw import golden_variants as G
from fusemax.sw import schedule as sf
from fusemax.sw import variants as V
from fusemax.sw.compiler import (
    CASCADE_MODES, SUPPORTED_CASCADES, Shape, check_cascade_mappable, compile_attention,
    compile_schedule,
)
from fusemax.sw.executor import execute
from fusemax.sw.golden import error_stats
from fusemax.sw.patterns import sliding_window
from fusemax.sw.rtl_variants import NOT_ON_RTL, RTL_VARIANTS, prepare
from workloads import random_attention

CASCADE = "attention-entropy"
TINY = preset("tiny-entropy")
CONFIGS = [TINY, preset("small-entropy"),
           preset("rect").replace(name="rect-entropy", entropy_unit=True)]  # 8 rows x 4 cols
#: RNV (and so RT) in s20.16 (+-8): RT = sum of A·score saturates, the outputs do not
NARROW = TINY.replace(name="tiny-entropy-rnv20",
                      numerics=replace(TINY.numerics, rnv=FixedFormat(20, 16)))


def _qkv(B, H, P, M, E, F, seed=0, amp=1.0):
    return random_attention((B, H, M, P, E, F), seed, amp)


def _run(cfg, shape, causal, binding="fusemax", seed=0, amp=1.0, trace=False):
    """Compile and execute attention-entropy; returns (program, executor result, golden)."""
    q, k, v = _qkv(*shape, seed=seed, amp=amp)
    prog = compile_attention(cfg, q, k, v, causal=causal, cascade=CASCADE, binding=binding)
    res = execute(cfg, prog.image, prog.sched_base, trace=trace)
    gold = G.entropy_golden(q, k, v, cfg, prog.scale, causal)
    return prog, res, gold


def _image(config, words, lines=8):
    """A memory image holding the instruction ``words`` from line 0 (1 per line for 4 lanes)."""
    k = sf.insns_per_line(config.mem_lanes)
    return sf.pack_words(words, config.mem_lanes, max(lines, -(-len(words) // k)))


def _header(config):
    return [sf.encode("HDR", version=sf.VERSION, tag=sf.config_tag(config.digest())),
            sf.encode("SHAPE", E=4, F=4)]


# ------------------------------------------------------------------ the executor = the golden

# (B, H, P, M, E, F): not multiples of the arrays; P > M (causal: queries, and whole blocks,
# that see no key); M > P
SHAPES = [(1, 1, 13, 13, 5, 3), (1, 2, 7, 21, 5, 3), (2, 1, 10, 6, 4, 3), (1, 1, 1, 1, 1, 1)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.name for c in CONFIGS])
@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "dense"])
def test_executor_equals_entropy_golden(cfg, shape, causal):
    B, H, P, M, E, F = shape
    prog, res, gold = _run(cfg, shape, causal, seed=P + M)
    out, h = prog.decode_output(res.image), prog.decode_entropy(res.image)
    assert np.array_equal(out, gold.out_codes), f"{np.count_nonzero(out != gold.out_codes)} outputs"
    assert np.array_equal(h, gold.extra["H_codes"]), f"{np.count_nonzero(h != gold.extra['H_codes'])} H"
    assert res.stopped_at is None and res.error_flags == expected_flags(gold)
    assert res.instructions == len(prog.instructions) and res.tiles == prog.schedule.tiles
    L = prog.layout
    assert L.out_lines == F + 1 and res.lines_written == B * H * L.P2 * (F + 1)
    assert res.lines_read == B * H * L.P2 * E + prog.schedule.tiles * (E + F)
    # the tiles are attention-1pass's: same count, same skipped ones
    one = compile_schedule(cfg, prog.shape, causal=causal)
    assert (prog.schedule.tiles, prog.schedule.tiles_skipped) == (one.tiles, one.tiles_skipped)
    # the outputs are attention-1pass's, the entropy close to the exact one
    if P > 1 or M > 1:
        ref = V.attention_entropy(*_qkv(*shape, seed=P + M)[:2], prog.scale, causal, eps=0.0)
        assert error_stats(G.ENTROPY_FORMAT.to_float(h), ref)["max_abs"] < 5e-3


@pytest.mark.parametrize("binding", ["fusemax", "architecture"])
def test_executor_entropy_both_bindings_and_the_trace(binding):
    prog, res, gold = _run(TINY, (1, 1, 9, 14, 5, 3), True, binding, trace=True)
    assert np.array_equal(prog.decode_entropy(res.image), gold.extra["H_codes"])
    assert np.array_equal(prog.decode_output(res.image), gold.out_codes)
    tiles = [t for t in res.trace if "BQK" in t]
    assert len(tiles) == prog.schedule.tiles and all({"SLNQ", "SPT", "RT"} <= set(t) for t in tiles)
    # the last tile of the last block holds the golden's final RT of those queries
    assert np.array_equal(tiles[-1]["RT"][:1], gold.state["RT"][0, 0, 8:9])


def test_block_that_sees_no_key_stores_h_zero_and_flags_div_by_zero():
    """Causal, P = 10 > M = 6: queries 0..3 see no key; block 0 (queries 0..3) gets no tile,
    its AV (first=1) resets the state: H = 0, RD = 0 -> div_by_zero. Head 1's first block must
    not store head 0's H."""
    prog, res, gold = _run(TINY, (1, 2, 10, 6, 4, 3), True)
    avs = [i for i in prog.instructions if i.op == "AV"]
    assert avs[0].args["first"] == 1 and avs[3].args["first"] == 1
    h = prog.decode_entropy(res.image)
    assert np.array_equal(h, gold.extra["H_codes"])
    assert not np.any(h[:, :, :4]) and np.all(h[:, :, 5:] > 0)
    assert "div_by_zero" in res.error_flags and gold.div_by_zero > 0
    # the H line of the empty block: every lane 0 (lanes past cols too)
    a = prog.layout.h_addr(0, 1, 0)
    assert not np.any(res.image[a])


def test_rt_saturation_raises_rnv_saturated_and_h_saturation_out_saturated():
    """RT in s20.16: with standard-normal inputs only RT saturates ("rt" -> rnv_saturated);
    with larger scores H saturates too ("entropy" -> out_saturated) while O does not."""
    prog, res, gold = _run(NARROW, (1, 1, 9, 21, 6, 3), True, seed=3)
    assert gold.saturation["rt"] > 0 and gold.saturation["rnv"] == gold.saturation["out"] == 0
    assert res.error_flags == expected_flags(gold) == ["rnv_saturated"]
    assert np.array_equal(prog.decode_entropy(res.image), gold.extra["H_codes"])
    prog, res, gold = _run(NARROW, (1, 1, 9, 21, 6, 3), True, seed=3, amp=3.0)
    assert gold.saturation["entropy"] > 0 and gold.saturation["out"] == 0
    assert "out_saturated" in expected_flags(gold)
    assert res.error_flags == expected_flags(gold)
    assert np.array_equal(prog.decode_entropy(res.image), gold.extra["H_codes"])
    assert np.array_equal(prog.decode_output(res.image), gold.out_codes)


def test_padding_lanes_raise_no_flag():
    """Query lanes past P compute too but flag nothing: with P = 5 the last block has 3 padding
    lanes; large Q codes written into them saturate their RT (s20.16) and H -- which shows
    once MASK says P = 8 -- and must not show with P = 5."""
    prog, res, gold = _run(NARROW, (1, 1, 5, 7, 4, 3), False, seed=11)
    img = prog.image.copy()
    L = prog.layout
    k0 = img[L.kv_addr(0, 0, 0):L.kv_addr(0, 0, 0) + 4, 0].view(np.int16)  # key 0's K codes
    a = L.q_addr(0, 0, 1)
    img[a:a + 4, 1:4] = np.where(k0 >= 0, 0x7E00, 0x8200)[:, None]  # +-7.9 along key 0: score > 8
    bad = execute(NARROW, img)
    assert bad.error_flags == res.error_flags == expected_flags(gold) == []
    assert np.array_equal(prog.decode_entropy(bad.image), gold.extra["H_codes"])
    assert [i.op for i in prog.instructions][2] == "MASK"
    img[2] = _image(NARROW, [sf.encode("MASK", M=7, P=8)])[0]
    assert {"rnv_saturated", "out_saturated"} <= set(execute(NARROW, img).error_flags)


# ------------------------------------------------------------------ MODE's errors


def test_mode_entropy_on_a_design_without_the_unit_stops_with_config():
    c = preset("tiny")
    res = execute(c, _image(c, _header(c) + [sf.encode("MODE", entropy=1), sf.encode("END")]))
    assert res.error_flags == ["config"] and res.stopped_at == 2
    assert "entropy_unit" in res.stop_reason
    # MODE 0 is a no-op there
    res = execute(c, _image(c, _header(c) + [sf.encode("MODE"), sf.encode("END")]))
    assert res.error_flags == [] and res.instructions == 4


def test_mode_entropy_with_sigmoid_or_nonorm_stops_with_config():
    both = preset("tiny").replace(name="tiny-sigmoid-entropy", sigmoid_unit=True, entropy_unit=True)
    for fields in ({"sigmoid": 1}, {"nonorm": 1}, {"sigmoid": 1, "nonorm": 1}):
        words = _header(both) + [sf.encode("MODE", entropy=1, **fields), sf.encode("END")]
        res = execute(both, _image(both, words))
        assert res.error_flags == ["config"] and res.stopped_at == 2, fields
        assert "entropy" in res.stop_reason and "sigmoid unit" not in res.stop_reason
        # the sigmoid modes alone and the entropy alone run
        for ok in (fields, {"entropy": 1}):
            words = _header(both) + [sf.encode("MODE", **ok), sf.encode("END")]
            assert execute(both, _image(both, words)).error_flags == []
    # on a design with the entropy output only, MODE sigmoid=1 entropy=1 is refused for the
    # missing sigmoid unit first (the hardware's order)
    res = execute(TINY, _image(TINY, _header(TINY) + [sf.encode("MODE", sigmoid=1, entropy=1),
                                                      sf.encode("END")]))
    assert res.error_flags == ["config"] and "sigmoid unit" in res.stop_reason


def test_compiled_entropy_schedule_on_a_design_without_the_unit():
    """An entropy schedule whose HDR was rewritten for tiny: tiny stops at MODE."""
    c = preset("tiny")
    prog = compile_attention(TINY, *_qkv(1, 1, 4, 4, 4, 4), cascade=CASCADE)
    img = prog.image.copy()
    img[0] = _image(c, _header(c)[:1])[0]
    res = execute(c, img, 0)
    mode_at = [i.op for i in prog.instructions].index("MODE")
    assert res.error_flags == ["config"] and res.stopped_at == mode_at and res.tiles == 0
    assert execute(TINY, prog.image, 0).error_flags == []


# ------------------------------------------------------------------ the compiler and the layout


def test_entropy_cascade_is_mappable_and_emits_mode():
    assert CASCADE in SUPPORTED_CASCADES and check_cascade_mappable(CASCADE) == CASCADE
    assert CASCADE_MODES[CASCADE] == {"sigmoid": 0, "nonorm": 0, "entropy": 1}
    shape = Shape(1, 2, 13, 6, 4, 3)
    s = compile_schedule(TINY, shape, causal=True, cascade=CASCADE, binding="architecture")
    one = compile_schedule(TINY, shape, causal=True, binding="architecture")
    assert [i.op for i in s.instructions[:5]] == ["HDR", "SHAPE", "MASK", "CAUSAL", "MODE"]
    assert s.instructions[4].args == {"sigmoid": 0, "nonorm": 0, "entropy": 1}
    assert [i.op for i in s.instructions].count("MODE") == 1
    rest = s.instructions[:4] + s.instructions[5:]
    assert [i.op for i in rest] == [i.op for i in one.instructions]
    assert [(i.op, i.args) for i in rest if i.op == "TILE"] == [
        (i.op, i.args) for i in one.instructions if i.op == "TILE"]
    assert s.mode == {"sigmoid": 0, "nonorm": 0, "entropy": 1} and s.entropy and not one.entropy
    assert s.score_function == "softmax, entropy H" and one.score_function == "softmax"
    text = s.listing()
    assert "MODE sigmoid=0 nonorm=0 entropy=1" in text and "scores: softmax, entropy H (MODE)" in text
    assert "entropy H of output block 1" in text and "blocks of F + 1 = 4 lines" in text
    # the output blocks are one line longer: AV addresses step by F + 1
    avs = [i.args["addr"] for i in s.instructions if i.op == "AV"]
    assert avs == [s.layout.out_addr(0, h, i) for h in range(2) for i in range(2)]
    assert np.all(np.diff(avs) == [4, 4 + s.layout.bh_lines - 8, 4])
    # with a pattern: MODE after WINDOW
    w = compile_schedule(TINY, shape, cascade=CASCADE, pattern=sliding_window(5))
    assert [i.op for i in w.instructions[3:6]] == ["CAUSAL", "WINDOW", "MODE"]


def test_compile_refuses_a_design_without_the_entropy_unit():
    with pytest.raises(FuseMaxError, match=r"entropy_unit = true, e\.g\. the presets "
                                           r"tiny-entropy, small-entropy\); config tiny has none"):
        compile_schedule(preset("tiny"), Shape(1, 1, 8, 8, 4, 4), cascade=CASCADE)
    with pytest.raises(FuseMaxError, match="sigmoid_unit"):  # and the sigmoid cascades still need theirs
        compile_schedule(TINY, Shape(1, 1, 8, 8, 4, 4), cascade="sigmoid-norm")


def test_config_refuses_numerics_the_finisher_cannot_divide():
    """N = RM·RD − RT grows with rd: an rd of 44 bits needs a 61-bit numerator shifted into
    s32.16, past the divider's 62 bits; the config says so when it is made, not at run time.
    The same numerics without the unit are fine."""
    wide = replace(TINY.numerics, rd=FixedFormat(44, 15))
    with pytest.raises(FuseMaxError, match=r"tiny-entropy with entropy_unit: the entropy output "
                                           r"divides N = RM·RD − RT \(from score s16\.10, rd "
                                           r"s44\.15, rnv s40\.16\) by RD: divider s61\.25 / s44\.15"):
        TINY.replace(numerics=wide)
    assert preset("tiny").replace(numerics=wide).numerics.rd.width == 44
    G.check_entropy_numerics(TINY.numerics)  # the presets pass


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.name for c in CONFIGS])
def test_layout_has_an_h_line_per_output_block(cfg):
    shape = Shape(2, 3, 37, 29, 6, 5)
    s = compile_schedule(cfg, shape, cascade=CASCADE)
    plain = compile_schedule(cfg, shape)
    L, P = s.layout, plain.layout
    assert (L.out_lines, P.out_lines) == (6, 5) and L.has_entropy and not P.has_entropy
    assert L.bh_lines == P.bh_lines + L.P2
    regs = sorted(L.regions(), key=lambda r: r["addr"])
    end = 0
    for r in regs:
        assert r["addr"] == end, r
        end = r["addr"] + r["lines"]
    assert end == L.n_lines
    hs = [r for r in regs if r["kind"] == "H"]
    outs = [r for r in regs if r["kind"] == "out"]
    assert len(hs) == len(outs) == 2 * 3 * L.P2 and all(r["lines"] == 1 for r in hs)
    for o, h in zip(outs, hs):
        assert h["addr"] == o["addr"] + 5 == L.h_addr(h["b"], h["h"], h["index"])
        assert h["queries"] == o["queries"]
    lo, hi = L.output_range
    assert lo == L.out_addr(0, 0, 0) and hi == L.h_addr(1, 2, L.P2 - 1) + 1
    d = L.as_dict(regions=True)
    assert d["out_lines"] == 6 and d["entropy_line"] and d["output_range"] == [lo, hi]
    assert not P.as_dict()["entropy_line"] and "H" not in {r["kind"] for r in P.regions()}
    with pytest.raises(FuseMaxError, match="no entropy line"):
        P.h_addr(0, 0, 0)


def test_decode_entropy_reads_the_h_lines_of_a_dump():
    """decode_entropy of a dump of the output range (base = its first line); lane c of block
    i's H line is query i·cols + c; sign-extended; a program without H refuses."""
    q, k, v = _qkv(1, 1, 11, 9, 4, 3)
    prog = compile_attention(TINY, q, k, v, cascade=CASCADE)
    img = prog.image.copy()
    L = prog.layout
    for i in range(L.P2):
        img[L.h_addr(0, 0, i), :4] = [(-(4 * i + c) - 1) & 0xFFFF for c in range(4)]
    lo, hi = prog.output_range
    h = prog.decode_entropy(img[lo:hi], base=lo)
    assert np.array_equal(h[0, 0], -(np.arange(11) + 1)) and h.shape == (1, 1, 11)
    assert np.array_equal(h, prog.decode_entropy(img))
    with pytest.raises(FuseMaxError, match="do not cover"):
        prog.decode_entropy(img[lo:hi - 1], base=lo)
    plain = compile_attention(preset("tiny"), q, k, v)
    with pytest.raises(FuseMaxError, match="stores no entropy H"):
        plain.decode_entropy(plain.image)


# ------------------------------------------------------------------ host part, simulate, CLI


def test_prepare_entropy():
    assert CASCADE in RTL_VARIANTS and CASCADE not in NOT_ON_RTL
    assert "MODE entropy=1" in RTL_VARIANTS[CASCADE]
    q, k, v = _qkv(1, 2, 9, 11, 5, 3)
    run = prepare(CASCADE, q, k, v, causal=True, rows=4, cols=4)
    assert run.compile_cascade == CASCADE and run.causal and run.pattern is None
    assert set(run.extra_outputs) == {"entropy"}
    x = run.extra_outputs["entropy"]
    prog = compile_attention(TINY, run.q, run.k, run.v, causal=True, cascade=run.compile_cascade)
    res = execute(TINY, prog.image)
    g = run.golden(TINY, prog.scale)
    assert np.array_equal(prog.decode_output(res.image), run.golden_codes(g))
    assert np.array_equal(x.decode(prog, res.image, 0), g.extra[x.golden_key])
    assert np.max(np.abs(g.out - run.reference(prog.scale))) < 5e-3
    assert np.max(np.abs(x.to_float(g.extra[x.golden_key]) - x.reference(prog.scale))) < 5e-3
    with pytest.raises(FuseMaxError, match="takes no window"):
        prepare(CASCADE, q, k, v, rows=4, cols=4, window=3)


def _executor_as_rtl(monkeypatch, corrupt_h: bool = False):
    """``simulate`` with the schedule executor standing in for the RTL run (no Verilator);
    ``corrupt_h`` flips one bit of the first H line in the dump. The executor and the golden
    share ``entropy_codes``, so tests on this stand-in check simulate's plumbing, the RT
    accumulation, the layout and the flags, not the finisher's arithmetic (that is
    tests/test_hw_entropy.py's, against the unit, and tests/test_rtl_entropy.py's)."""
    import fusemax.sim.attention as A
    from fusemax.sw.compiler import buffer_bytes

    def run_program(config, program, **kw):
        ex = execute(config, program.image, program.sched_base)
        lo, hi = program.output_range
        dump = ex.image[lo:hi].copy()
        if corrupt_h:
            dump[program.layout.h_addr(0, 0, 0) - lo, 1] ^= 1
        counters = {**dict.fromkeys(A.CSR_NAMES, 0), **ex.counts, "cycles": 1000,
                    "busy_2d": 800, "entropy": 50,
                    "mem_lines_read": ex.lines_read + program.layout.sched_lines,
                    "config_tag": sf.config_tag(config.digest())}
        return {"counters": counters, "output_codes": program.decode_output(dump, lo),
                "output_dump": dump, "output_base": lo,
                "error": ex.error, "timeout": False, "built": False, "mode": kw.get("mode"),
                "sim_cycles_per_s": None, "waves": None, "waves_info": None, "build_dir": "",
                **dict.fromkeys(("verilog_s", "build_s", "run_s", "sim_wall_s"), 0.0)}

    monkeypatch.setattr(A, "run_program", run_program)
    monkeypatch.setattr(A, "design_buffers", buffer_bytes)
    return A


def test_simulate_entropy_with_the_executor_as_rtl(monkeypatch):
    """simulate(cascade=attention-entropy) end to end: O and H bit for bit, the flags (queries
    that see no key: div_by_zero), the counters (F + 1 lines per block), H's error against the
    exact entropy, our model with E + F + 1 per tile, the summary."""
    from rtl_checks import check_report

    A = _executor_as_rtl(monkeypatch)
    q, k, v = _qkv(1, 2, 10, 7, 5, 3, seed=4)
    r = A.simulate(TINY, q, k, v, causal=True, cascade=CASCADE, mode="native")
    check_report(r, expect_flags=["div_by_zero"])
    assert r["cascade"] == CASCADE and r["score_function"] == "softmax, entropy H"
    h = r["entropy"]
    assert h["bit_exact"] and h["mismatches"] == 0 and h["first_mismatches"] == []
    assert h["golden_error"] == h["error"] and h["error"]["max_abs"] < 5e-3
    assert r["expected_counters"]["mem_lines_written"] == 2 * 3 * 4
    assert r["busy"]["entropy"] == 50 and r["utilization"]["entropy"] == 0.05
    gold = G.entropy_golden(q, k, v, TINY, r["scale"], True)
    assert np.array_equal(r["extra_arrays"]["H_codes"], gold.extra["H_codes"])
    assert np.array_equal(r["extra_arrays"]["H"], gold.extra["H"])
    assert r["error"]["max_abs"] < 5e-3  # O against the causal softmax attention
    m = r["model"]
    assert m["paper_model_cycles"] is None and m["cascade"] == CASCADE and m["rtl_model_cycles"] > 0
    text = A.summary_text(r)
    assert "bit-exact with the golden model (entropy)" in text
    assert "entropy H (50 finisher cycles): bit-exact with the golden model; error vs float64" in text
    data = A.report_json(r)
    assert "extra_arrays" not in data and data["entropy"]["bit_exact"]


def test_simulate_entropy_reports_a_wrong_h(monkeypatch):
    A = _executor_as_rtl(monkeypatch, corrupt_h=True)
    q, k, v = _qkv(1, 1, 9, 9, 4, 3, seed=2)
    r = A.simulate(TINY, q, k, v, cascade=CASCADE)
    assert r["mismatches"] == 0 and not r["bit_exact"] and r["flags_match"]
    h = r["entropy"]
    assert not h["bit_exact"] and h["mismatches"] == 1 and h["first_mismatches"][0]["index"] == [0, 0, 1]
    assert "the RTL deviates" in r["executor"]["verdict"]
    text = A.summary_text(r)
    assert "output bit-exact with the golden model, but not its other outputs" in text
    assert "NOT bit-exact: 1 mismatching H codes" in text


def test_simulate_refuses_a_design_without_the_unit(monkeypatch):
    A = _executor_as_rtl(monkeypatch)
    with pytest.raises(FuseMaxError, match="entropy_unit"):
        A.simulate(preset("tiny"), *_qkv(1, 1, 4, 4, 4, 4), cascade=CASCADE)


def test_cli_compile_and_sim(monkeypatch, tmp_path, capsys):
    args = ["compile", CASCADE, "--causal", "--shape", "B=1,H=1,M=13,P=13,E=5,F=3", "--config"]
    assert fusemax(args + ["tiny-entropy", "--listing", "-"]) == 0
    text = capsys.readouterr().out
    assert "MODE sigmoid=0 nonorm=0 entropy=1" in text and text.count("AV addr=") == 4
    assert fusemax(args + ["tiny-entropy", "--json"]) == 0
    import json

    summary = json.loads(capsys.readouterr().out)
    assert summary["entropy"] and summary["layout"]["out_lines"] == 4
    assert summary["score_function"] == "softmax, entropy H"
    assert fusemax(args + ["tiny"]) == 2
    assert "needs a design with the entropy output" in capsys.readouterr().err
    _executor_as_rtl(monkeypatch)
    q, k, v = _qkv(1, 1, 9, 9, 4, 3, seed=1)
    np.savez(tmp_path / "in.npz", Q=q[0, 0], K=k[0, 0], V=v[0, 0])
    rc = fusemax(["sim", CASCADE, "--causal", "--config", "tiny-entropy", "--inputs",
                  str(tmp_path / "in.npz"), "--out", str(tmp_path / "o.npz"), "--native"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "entropy H (50 finisher cycles): bit-exact with the golden model" in text
    out = np.load(tmp_path / "o.npz")
    gold = G.entropy_golden(q, k, v, TINY, 0.5, True)
    assert out["O"].shape == (9, 3) and out["H"].shape == out["H_codes"].shape == (9,)
    assert np.array_equal(out["H_codes"], gold.extra["H_codes"][0, 0])
