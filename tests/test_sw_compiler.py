"""The compiler (fusemax.sw.compiler) and ``fusemax compile``: tiling, order, causal skipping,
layout, image contents, hex files and the errors for shapes and cascades that do not map."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusemax.cli import main as fusemax
from fusemax.config import preset
from fusemax.errors import FuseMaxError
from fusemax.sw import schedule as sf
from fusemax.sw.compiler import (Shape, compile_attention, compile_schedule, parse_shape, read_hex,
                                 visible_chunks, buffer_bytes)
from workloads import random_attention


def ops(sched):
    return [i.op for i in sched.instructions]


def test_parse_shape():
    assert parse_shape("B=1,H=2,M=256,P=64,E=32,F=16") == Shape(1, 2, 256, 64, 32, 16)
    assert parse_shape(" f=3, e=4 ,P=5,M=6,H=1,B=2") == Shape(2, 1, 6, 5, 4, 3)
    for bad, what in [("B=1,H=1", "lacks M, P, E, F"), ("B=1,B=2,H=1,M=1,P=1,E=1,F=1", "twice"),
                      ("B=1,H=1,M=x,P=1,E=1,F=1", "cannot read"), ("Q=1", "unknown dimension"),
                      ("", "empty"), ("B=0,H=1,M=1,P=1,E=1,F=1", "positive")]:
        with pytest.raises(FuseMaxError, match=what):
            parse_shape(bad)


def test_schedule_order_three_slots():
    c = preset("tiny")
    s = compile_schedule(c, Shape(1, 1, 4 * 5, 4, 4, 4))
    # chunk j + 2 loads after TILE j (j >= 1), into the slot of chunk j - 1
    # chunk 0 goes before LDQ (LDQ may wait for the previous block's last BQK)
    assert ops(s) == ["HDR", "SHAPE", "MASK", "CAUSAL", "LDKV", "LDQ", "LDKV", "LDKV", "TILE", "TILE",
                      "LDKV", "TILE", "LDKV", "TILE", "TILE", "AV", "END"]
    tiles = [i.args for i in s.instructions if i.op == "TILE"]
    assert [t["slot"] for t in tiles] == [0, 1, 2, 0, 1]
    assert [t["m_base"] for t in tiles] == [0, 4, 8, 12, 16]
    assert [t["serial"] for t in tiles] == [0] * 5
    loads = [i.args for i in s.instructions if i.op == "LDKV"]
    assert [l["slot"] for l in loads] == [0, 1, 2, 0, 1]
    assert [l["addr"] for l in loads] == [s.layout.kv_addr(0, 0, j) for j in range(5)]
    hdr = s.instructions[0].args
    assert hdr == {"tag": sf.config_tag(c.digest()), "version": sf.VERSION}
    assert s.instructions[1].args == {"E": 4, "F": 4}
    # a slot is reloaded only after the TILE one after the tile that last read it
    last_tile_of_slot = {}
    n_tile = 0
    for ins in s.instructions:
        if ins.op == "TILE":
            last_tile_of_slot[ins.args["slot"]] = n_tile
            n_tile += 1
        elif ins.op == "LDKV" and ins.args["slot"] in last_tile_of_slot:
            assert n_tile >= last_tile_of_slot[ins.args["slot"]] + 2


def test_architecture_binding_sets_serial():
    c = preset("tiny")
    fm = compile_schedule(c, Shape(1, 2, 13, 6, 4, 4))
    ar = compile_schedule(c, Shape(1, 2, 13, 6, 4, 4), binding="architecture")
    # the same instructions; serial tiles: only chunk 0 and LDQ of the next block before the
    # AV, chunk 1 right before TILE 0, chunk j + 2 after TILE j
    assert sorted(ops(fm)) == sorted(ops(ar))
    assert all(i.args["serial"] == 1 for i in ar.instructions if i.op == "TILE")
    one = compile_schedule(c, Shape(1, 1, 13, 6, 4, 4), binding="architecture")
    block = ["LDKV", "TILE", "LDKV", "TILE", "LDKV", "TILE", "TILE"]
    assert ops(one)[4:] == ["LDKV", "LDQ"] + block + ["LDKV", "LDQ", "AV"] + block + ["AV", "END"]
    with pytest.raises(FuseMaxError, match="unknown binding"):
        compile_schedule(c, Shape(1, 1, 4, 4, 4, 4), binding="flat")


@pytest.mark.parametrize("name", ["tiny", "small", "medium", "large"])
def test_instructions_packed_per_line(name):
    c = preset(name)
    s = compile_schedule(c, Shape(1, 1, 3 * c.rows + 1, c.cols, 4, 4))
    k = sf.insns_per_line(c.mem_lanes)
    assert k == min(8, c.mem_lanes // 4)
    assert s.layout.sched_lines == -(-len(s.instructions) // k)
    img = compile_attention(c, *_rand_qkv(s.shape)).image
    for n, ins in enumerate(s.instructions):
        line, sub = divmod(n, k)
        word = sum(int(img[line, 4 * sub + w]) << (16 * w) for w in range(4))
        assert word == ins.word


def test_pack_words_pads_and_refuses_too_few_lines():
    words = [sf.encode("SHAPE", E=e, F=1) for e in range(1, 6)]  # 5 words, 2 per 8-lane line
    img = sf.pack_words(words, 8, lines=4)
    assert img.shape == (4, 8) and img.dtype == np.uint16 and not img[3:].any()
    assert [sf.decode(sum(int(img[n // 2, 4 * (n % 2) + w]) << (16 * w) for w in range(4))).args["E"]
            for n in range(5)] == [1, 2, 3, 4, 5]
    assert not img[2, 4:].any()  # the slot past the last word
    with pytest.raises(FuseMaxError, match="5 instructions need 3 lines of 8 lanes, not 2"):
        sf.pack_words(words, 8, lines=2)


def _rand_qkv(s):
    return random_attention((s.B, s.H, s.M, s.P, s.E, s.F))


def test_single_chunk_and_counts():
    c = preset("small")
    s = compile_schedule(c, Shape(2, 3, 5, 20, 8, 8))
    # per block: LDKV, LDQ, TILE, AV -- the next block's LDKV and LDQ before this block's AV
    assert ops(s)[4:11] == ["LDKV", "LDQ", "TILE", "LDKV", "LDQ", "AV", "TILE"]
    firsts = [i.args["first"] for i in s.instructions if i.op == "TILE"]
    assert firsts == [1] * 18
    assert len(s.instructions) == 4 + 6 * 3 * 4 + 1 and s.tiles == 18
    assert s.layout.M1 == 1 and s.layout.P2 == 3


def test_layout_regions_do_not_overlap():
    c = preset("rect")
    s = compile_schedule(c, Shape(2, 3, 37, 29, 24, 40))
    regs = sorted(s.layout.regions(), key=lambda r: r["addr"])
    end = 0
    for r in regs:
        assert r["addr"] == end, r
        end = r["addr"] + r["lines"]
    assert end == s.layout.n_lines
    assert s.layout.M1 == 5 and s.layout.P2 == 8
    lo, hi = s.output_range
    assert lo == s.layout.out_addr(0, 0, 0) and hi == s.layout.out_addr(1, 2, 7) + 40


def test_causal_skips_fully_masked_tiles():
    c = preset("tiny")
    # M = P = 16: block i sees chunks 0..i
    s = compile_schedule(c, Shape(1, 1, 16, 16, 4, 4), causal=True)
    assert [visible_chunks(s.shape, 4, 4, i, True) for i in range(4)] == [1, 2, 3, 4]
    assert s.tiles == 10 and s.tiles_skipped == 6
    assert s.instructions[3].args == {"enable": 1}
    # P > M: the first queries see no key at all -> a block with no tile
    s2 = compile_schedule(c, Shape(1, 1, 3, 12, 4, 4), causal=True)
    assert [visible_chunks(s2.shape, 4, 4, i, True) for i in range(3)] == [0, 0, 1]
    assert ops(s2)[4:] == ["LDQ", "AV", "LDQ", "AV", "LDKV", "LDQ", "TILE", "AV", "END"]
    # M > P (KV cache): every block sees the first chunks
    s3 = compile_schedule(c, Shape(1, 1, 40, 4, 4, 4), causal=True)
    assert s3.tiles == 10


def test_image_contents():
    c = preset("rect")  # 8 rows, 4 cols, 8 lanes
    B, H, M, P, E, F = 1, 2, 11, 6, 3, 5
    q, k, v = random_attention((B, H, M, P, E, F))
    prog = compile_attention(c, q, k, v)
    from fusemax.sw.golden import quantize_inputs
    qc, kc, vc, _ = quantize_inputs(q, k, v, c, prog.scale)
    img = prog.image.view(np.int16).astype(np.int64)
    L = prog.layout
    assert img.shape == (L.n_lines, 8)
    # two schedule words per 8-lane line: lanes 0..3 and 4..7; the padding after END is 0
    words = prog.schedule.words
    for n, w in enumerate(words):
        assert sum(int(prog.image[n // 2, 4 * (n % 2) + j]) << (16 * j) for j in range(4)) == w
    if len(words) % 2:
        assert not prog.image[len(words) // 2, 4:].any()
    for h in range(H):
        for i in range(L.P2):
            blk = img[L.q_addr(0, h, i):L.q_addr(0, h, i) + E]
            for c_ in range(4):
                p = i * 4 + c_
                want = qc[0, h, p] if p < P else np.zeros(E)
                assert np.array_equal(blk[:, c_], want)
            assert not blk[:, 4:].any()
        for j in range(L.M1):
            a = L.kv_addr(0, h, j)
            for r in range(8):
                m = j * 8 + r
                assert np.array_equal(img[a:a + E, r], kc[0, h, m] if m < M else np.zeros(E))
                assert np.array_equal(img[a + E:a + E + F, r], vc[0, h, m] if m < M else np.zeros(F))


def test_hex_roundtrip(tmp_path):
    c = preset("tiny")
    rng = np.random.default_rng(1)
    prog = compile_attention(c, rng.normal(size=(1, 1, 5, 4)), rng.normal(size=(1, 1, 9, 4)),
                             rng.normal(size=(1, 1, 9, 2)))
    path = prog.write_hex(tmp_path / "img.hex")
    lines = path.read_text().splitlines()
    assert len(lines) == prog.layout.n_lines and all(len(x) == 16 for x in lines)
    assert int(lines[0], 16) == prog.schedule.words[0]  # lane 0 rightmost
    assert np.array_equal(read_hex(path, 4), prog.image)
    assert np.array_equal(read_hex("// comment\n" + "\n".join(lines[:3]) + "\n", 4), prog.image[:3])


def test_decode_output_from_dump():
    c = preset("wide")
    rng = np.random.default_rng(2)
    prog = compile_attention(c, rng.normal(size=(2, 1, 11, 4)), rng.normal(size=(2, 1, 9, 4)),
                             rng.normal(size=(2, 1, 9, 3)))
    img = prog.image.copy()
    L = prog.layout
    want = rng.integers(-3000, 3000, size=(2, 1, 11, 3))
    for b in range(2):
        for i in range(L.P2):
            for f in range(3):
                for c_ in range(8):
                    p = i * 8 + c_
                    img[L.out_addr(b, 0, i) + f, c_] = np.uint16(want[b, 0, p, f] & 0xFFFF) if p < 11 else 77
    lo, hi = prog.output_range
    assert np.array_equal(prog.decode_output(img), want)
    assert np.array_equal(prog.decode_output(img[lo:hi], base=lo), want)
    with pytest.raises(FuseMaxError, match="do not cover"):
        prog.decode_output(img[lo + 1:hi], base=lo + 1)


@pytest.mark.parametrize("shape, msg", [
    (Shape(1, 1, 8, 8, 80, 8), r"E = 80 exceeds the Q buffer of config medium \(max_e = 64\)"),
    (Shape(1, 1, 8, 8, 8, 65), r"F = 65 exceeds the V buffer .* \(max_f = 64\)"),
    (Shape(64, 1, 65536, 8, 8, 8), r"image needs \d+ lines .* 2\^20 = 1048576 lines"),
])
def test_shapes_that_do_not_map(shape, msg):
    with pytest.raises(FuseMaxError, match=msg):
        compile_schedule(preset("medium"), shape)


def test_small_lines_cannot_hold_instructions():
    c = preset("tiny").replace(name="t2", rows=2, cols=2)
    with pytest.raises(FuseMaxError, match="needs 64 bits"):
        compile_schedule(c, Shape(1, 1, 4, 4, 4, 4))


@pytest.mark.parametrize("cascade, msg", [
    ("attention-2pass", r"attention-2pass cannot be mapped: it needs 2 passes over M"),
    ("pedagogical-1", r"pedagogical-1 cannot be mapped: it has no key rank M"),
    ("no-such-cascade", r"no built-in cascade"),
])
def test_cascades_that_do_not_map(cascade, msg):
    with pytest.raises(FuseMaxError, match=msg):
        compile_schedule(preset("tiny"), Shape(1, 1, 4, 4, 4, 4), cascade=cascade)


def test_same_design_any_m():
    c = preset("tiny")
    a = compile_schedule(c, Shape(1, 1, 256, 4, 8, 8))
    b = compile_schedule(c, Shape(1, 1, 65536, 4, 8, 8))
    assert a.instructions[0] == b.instructions[0]  # same config tag: same hardware
    assert b.tiles == 16384
    assert buffer_bytes(c) == buffer_bytes(c)  # a function of the config only
    assert buffer_bytes(c)["q_buffer"] == 64 * 4 * 2


def test_cli_compile(tmp_path, capsys):
    out, lst = tmp_path / "s.bin", tmp_path / "s.lst"
    rc = fusemax(["compile", "attention-1pass", "--config", "small", "--shape",
                  "B=1,H=2,M=37,P=29,E=24,F=40", "--causal", "-o", str(out), "--listing", str(lst),
                  "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    sched = compile_schedule(preset("small"), Shape(1, 2, 37, 29, 24, 40), causal=True)
    words = np.frombuffer(out.read_bytes(), dtype="<u8")
    assert [int(w) for w in words] == sched.words
    assert summary["instructions"] == len(words) and summary["tiling"]["M1"] == 5
    text = lst.read_text()
    assert "HDR" in text and "K/V chunk 4" in text and "causal" in text
    assert len([x for x in text.splitlines() if not x.startswith(";")]) == len(words)


def test_cli_compile_errors(capsys):
    assert fusemax(["compile", "attention-1pass", "--config", "small", "--shape", "B=1,H=1"]) == 2
    assert "lacks M, P, E, F" in capsys.readouterr().err
    assert fusemax(["compile", "attention-1pass", "--config", "medium", "--shape",
                    "B=1,H=1,M=8,P=8,E=80,F=8"]) == 2
    assert "E = 80 exceeds the Q buffer of config medium (max_e = 64)" in capsys.readouterr().err
    assert fusemax(["compile", "attention-2pass", "--config", "tiny", "--shape",
                    "B=1,H=1,M=8,P=8,E=8,F=8"]) == 2
    assert "attention-2pass cannot be mapped" in capsys.readouterr().err


def test_cli_listing_stdout(capsys):
    assert fusemax(["compile", "attention-1pass", "--config", "tiny", "--shape",
                    "B=1,H=1,M=8,P=4,E=4,F=4", "--listing", "-"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"; fusemax schedule v{sf.VERSION}")
    assert "TILE serial=0 first=0 restart=0 slot=1 m_base=4" in out


def test_3pass_from_a_cas_file_runs_two_sweeps(tmp_path):
    """A .cas file holding attention-3pass compiles as attention-3pass (by the cascade's name,
    not the path): every block's tiles twice, the second sweep from TILE.restart."""
    from fusemax.sw.library import cascade_text

    cas = tmp_path / "mine.cas"
    cas.write_text(cascade_text("attention-3pass")[0])
    c = preset("tiny")
    s = compile_schedule(c, Shape(1, 1, 13, 6, 4, 4), cascade=str(cas))
    one = compile_schedule(c, Shape(1, 1, 13, 6, 4, 4))
    assert s.cascade == "attention-3pass" and s.tiles == 2 * one.tiles
    assert [i.args["restart"] for i in s.instructions if i.op == "TILE"] == ([0] * 4 + [1] + [0] * 3) * 2


def test_cli_golden_3pass(tmp_path, capsys):
    rng = np.random.default_rng(4)
    np.savez(tmp_path / "in.npz", Q=rng.normal(size=(6, 4)), K=rng.normal(size=(13, 4)), V=rng.normal(size=(13, 4)))
    args = ["golden", "--cascade", "attention-3pass", "--config", "tiny", "--inputs", str(tmp_path / "in.npz"),
            "--out", str(tmp_path / "o.npz")]
    assert fusemax(args) == 0
    assert fusemax(args + ["--intermediates", str(tmp_path / "x.npz")]) == 2
    assert "records no intermediates" in capsys.readouterr().err


@pytest.mark.parametrize("cascade, nonorm", [("sigmoid-norm", 0), ("sigmoid-nonorm", 1)])
def test_sigmoid_cascades_emit_mode(cascade, nonorm):
    """sigmoid-*: attention-1pass's schedule with MODE after CAUSAL / WINDOW; a design without
    the sigmoid unit is refused, naming the field and the presets."""
    from fusemax.sw.patterns import sliding_window

    c, shape = preset("tiny-sigmoid"), Shape(1, 2, 13, 6, 4, 4)
    s = compile_schedule(c, shape, causal=True, cascade=cascade, binding="architecture")
    one = compile_schedule(c, shape, causal=True, binding="architecture")
    assert [i.op for i in s.instructions[:5]] == ["HDR", "SHAPE", "MASK", "CAUSAL", "MODE"]
    assert s.instructions[4].args == {"sigmoid": 1, "nonorm": nonorm}
    rest = s.instructions[:4] + s.instructions[5:]  # the data one line further on
    assert [(i.op, i.args) for i in rest if i.op == "TILE"] == [
        (i.op, i.args) for i in one.instructions if i.op == "TILE"]
    assert [i.op for i in rest] == [i.op for i in one.instructions] and s.tiles == one.tiles
    assert s.mode == {"sigmoid": 1, "nonorm": nonorm} and one.mode == {}
    assert s.score_function == ("sigmoid, no norm" if nonorm else "sigmoid, normalised")
    assert one.score_function == "softmax" and f"scores: {s.score_function} (MODE)" in s.listing()
    w = compile_schedule(c, shape, cascade=cascade, pattern=sliding_window(5))
    assert [i.op for i in w.instructions[3:6]] == ["CAUSAL", "WINDOW", "MODE"]
    with pytest.raises(FuseMaxError, match=r"sigmoid_unit = true, e\.g\. the presets "
                                           r"tiny-sigmoid, small-sigmoid\); config tiny has none"):
        compile_schedule(preset("tiny"), shape, cascade=cascade)


def test_cli_compile_sigmoid(capsys):
    args = ["compile", "sigmoid-nonorm", "--shape", "B=1,H=1,M=8,P=4,E=4,F=4", "--json", "--config"]
    assert fusemax(args + ["tiny-sigmoid"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cascade"] == "sigmoid-nonorm" and summary["score_function"] == "sigmoid, no norm"
    assert fusemax(args + ["tiny"]) == 2
    assert "needs a design with the sigmoid unit" in capsys.readouterr().err
