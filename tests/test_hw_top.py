"""FuseMaxTop end to end in the Amaranth simulator: real schedules from the compiler on a
Python memory model, compared bit for bit with the golden model (attention_1pass), plus the
sticky flags, the counters, and the generated Verilog / JSON description."""

from __future__ import annotations

import json

import numpy as np
import pytest
from amaranth.hdl import Fragment

from fusemax.config import FuseMaxConfig, NumericsConfig, preset
from fusemax.hw.formats import FixedFormat as FF
from fusemax.hw.sequencer import ERROR_BITS
from fusemax.hw.top import COUNTERS, FuseMaxTop, pysim_run, top_ports
from fusemax.hw.verilog import describe, generate_verilog
from fusemax.sw.compiler import compile_attention
from fusemax.sw.golden import attention_1pass, causal_mask
from fusemax.sw.schedule import config_tag


def _run_case(cfg_name, B, H, P, M, E, F, *, causal=False, seed=0, qscale=1.0, kscale=1.0,
              binding="fusemax", **kw):
    cfg = CUSTOM.get(cfg_name) or preset(cfg_name)
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(B, H, P, E)) * qscale
    k = rng.normal(size=(B, H, M, E)) * kscale
    v = rng.normal(size=(B, H, M, F))
    prog = compile_attention(cfg, q, k, v, causal=causal, binding=binding)
    res = pysim_run(cfg, prog.image.copy(), prog.sched_base, **kw)
    gold = attention_1pass(q, k, v, cfg, mask=causal_mask(P, M) if causal else None)
    out = prog.decode_output(res["image"])
    return cfg, prog, res, gold, out


def _flags(gold):
    want = 0
    if gold.saturation["score"]:
        want |= 1 << ERROR_BITS["score_sat"]
    if gold.saturation["rd"]:
        want |= 1 << ERROR_BITS["rd_sat"]
    if gold.saturation["rnv"]:
        want |= 1 << ERROR_BITS["rnv_sat"]
    if gold.saturation["out"]:
        want |= 1 << ERROR_BITS["out_sat"]
    if gold.div_by_zero:
        want |= 1 << ERROR_BITS["div_zero"]
    return want


#: Unusual configurations: odd array sizes, exp degrees 1 and 2, floor / away rounding, small
#: buffers and address space, memory latency 1.
CUSTOM = {
    "odd5x3-d2": FuseMaxConfig("odd5x3-d2", 5, 3, NumericsConfig(
        name="odd-d2", rounding="floor", exp_degree=2, out=FF(12, 8), score=FF(14, 9)),
        max_e=6, max_f=5, mem_latency=1, mem_addr_width=12),
    "d1": FuseMaxConfig("d1", 4, 4, NumericsConfig(name="d1", exp_degree=1, rounding="nearest_away"),
                        max_e=4, max_f=4),
}

CASES = [
    # config, B, H, P, M, E, F, options
    ("tiny", 1, 1, 5, 7, 3, 2, {}),                                  # not multiples of 4x4
    ("rect-int8", 2, 1, 3, 11, 4, 5, {}),                              # 8 x 4, int8, B = 2, E != F
    ("wide", 1, 2, 9, 6, 3, 2, {"latency": 7, "ready_prob": 0.6}),   # 4 x 8, H = 2, back-pressure
    ("tiny", 1, 1, 6, 4, 2, 3, {"causal": True}),                    # causal, P > M: empty rows
    ("rect", 1, 1, 4, 13, 2, 2, {"causal": True, "latency": 1}),     # causal, P < M
    ("tiny", 1, 1, 3, 5, 1, 1, {}),                                  # E = F = 1
    ("odd5x3-d2", 1, 2, 4, 12, 6, 5, {"causal": True}),              # E = max_e, F = max_f
    ("d1", 1, 1, 5, 9, 4, 1, {}),
    ("rect", 1, 1, 5, 30, 3, 4, {"binding": "architecture"}),        # +Architecture: serial tiles
    ("odd5x3-d2", 1, 1, 4, 23, 2, 1, {"binding": "architecture", "ready_prob": 0.7}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-B{c[1]}H{c[2]}P{c[3]}M{c[4]}E{c[5]}F{c[6]}"
                         + "".join(f"-{k}" for k in c[7]))
def test_top_matches_golden(case):
    name, B, H, P, M, E, F, opts = case
    opts = dict(opts)
    causal = opts.pop("causal", False)
    binding = opts.get("binding", "fusemax")
    cfg, prog, res, gold, out = _run_case(name, B, H, P, M, E, F, causal=causal, **opts)
    assert np.array_equal(out, gold.out_codes), f"\nRTL {out.ravel()}\ngolden {gold.out_codes.ravel()}"
    assert res["error"] == _flags(gold)
    c = res["counters"]
    words = prog.schedule.words
    n_tiles = sum(1 for ins in prog.instructions if ins.op == "TILE")
    n_av = sum(1 for ins in prog.instructions if ins.op == "AV")
    d = cfg.numerics.exp_cycles - 1
    assert c["instructions"] == len(words)
    assert c["tiles"] == n_tiles
    assert c["bqk"] == n_tiles * (E + 1)
    assert c["lm"] == c["rm"] == c["sld"] == c["rd"] == n_tiles
    assert c["sln"] == c["prm"] == n_tiles * (d + 2)
    assert c["slnv"] == n_tiles * (F + 1)
    assert c["rnv"] == n_tiles * F
    assert c["av"] == n_av * (F + cfg.numerics.div_cycles + 1)
    assert c["mem_writes"] == n_av * F
    assert c["mem_reads"] >= n_av * E + n_tiles * (E + F) + prog.layout.sched_lines
    assert c["config_tag"] == config_tag(cfg.digest())
    assert c["cycles"] >= max(c["busy_2d"], c["busy_1d"], c["stall"])
    # per tile: E MACs + score, LM, exps (d + 2, the SLD tree registers in their done cycle),
    # SLNV (F MACs + tree); the FuseMax binding overlaps the exps of one tile with the SLNV of
    # the one before, so the 2D array's busy cycles lie between the MAC cycles and the serial sum
    assert n_tiles * (E + F) <= c["busy_2d"] <= n_tiles * (E + F + d + 5)
    if binding == "architecture":  # one tile at a time: RM and the cycle before SLNV are idle
        assert c["busy_2d"] == n_tiles * (E + F + d + 5) - (n_tiles - n_av)
    parts_1d = c["rm"] + c["prm"] + c["rd"] + c["rnv"] + c["av"]
    assert max(c["prm"] + c["rm"], c["rnv"]) <= c["busy_1d"] <= parts_1d
    if binding == "architecture":  # nothing overlaps on the 1D array either
        assert c["busy_1d"] == parts_1d
    assert c["cycles"] in (res["cycles"], res["cycles"] + 1)


def test_top_saturation_flags_match_golden():
    # huge Q': scores saturate (counted only for valid pairs and real queries)
    cfg, prog, res, gold, out = _run_case("tiny", 1, 1, 3, 5, 4, 2, qscale=40.0, kscale=6.0, seed=5)
    assert gold.saturation["score"] > 0
    assert np.array_equal(out, gold.out_codes)
    assert res["error"] == _flags(gold)


def test_verilog_deterministic_and_described():
    cfg = preset("tiny")
    a, b = generate_verilog(cfg), generate_verilog(cfg)
    assert a == b
    assert "module fusemax_top(" in a
    assert "/work/" not in a and "/home/" not in a and "src =" not in a
    desc = describe(cfg)
    json.dumps(desc)
    names = {p["name"]: (p["direction"], p["width"]) for p in desc["ports"]}
    assert names.pop("clk") == ("in", 1) and names.pop("rst") == ("in", 1)
    assert names == {n: tuple(v) for n, v in top_ports(cfg).items()}
    for n, (d, w) in top_ports(cfg).items():  # the Verilog really has them, with those widths
        decl = f"{'input' if d == 'in' else 'output'} {f'[{w - 1}:0] ' if w > 1 else ''}{n};"
        assert decl in a, decl
    assert desc["csr"]["counters"] == {n: i for i, n in enumerate(COUNTERS)}
    assert desc["error_bits"]["div_zero"] == 7
    top_module = a[a.index("module fusemax_top("):]
    top_module = top_module[: top_module.index("endmodule")]
    for name in desc["debug"]["activity"].values():  # per-Einsum activity wires at the top
        assert f"wire {name};" in top_module, name
    assert "reg [63:0] cur_insn" in a
    assert "seq_state" in a and desc["debug"]["fsm_states"]["IDLE"] == 0
    top = FuseMaxTop(cfg)
    sig = top.signature.members
    Fragment.get(top, None)
    assert set(sig) == set(top_ports(cfg))


def test_dedupe_modules_keeps_every_instance():
    import re

    from amaranth.back import verilog as amaranth_verilog

    from fusemax.hw.verilog import dedupe_modules

    raw = amaranth_verilog.convert(FuseMaxTop(preset("rect")), name="fusemax_top", emit_src=False)
    ded = dedupe_modules(raw)
    assert dedupe_modules(ded) == ded
    inst = re.compile(r"^  (\\\S+|\w+) +(\S+) \($", re.M)
    mod = re.compile(r"^module (\\\S+|\w+)[ (]", re.M)

    def tree(text):
        """instance path -> the module body's size class, walking from fusemax_top"""
        bodies = {}
        for m in mod.finditer(text):
            end = text.index("\nendmodule", m.start())
            bodies[m.group(1)] = text[m.start():end]
        paths = []

        def walk(name, path):
            for i in inst.finditer(bodies[name]):
                assert i.group(1) in bodies, f"{path}: module {i.group(1)} missing"
                paths.append(f"{path}.{i.group(2)}")
                walk(i.group(1), f"{path}.{i.group(2)}")

        walk("fusemax_top", "fusemax_top")
        return sorted(paths), len(bodies)

    p_raw, n_raw = tree(raw)
    p_ded, n_ded = tree(ded)
    assert p_raw == p_ded  # the same instance hierarchy (waveform scopes)
    assert n_ded < n_raw / 4 and len(ded) < len(raw) / 2


@pytest.mark.slow
def test_large_preset_elaborates():
    """The largest preset (32 x 32) elaborates: no Python recursion through 1024-term ORs."""
    Fragment.get(FuseMaxTop(preset("large")), None)
