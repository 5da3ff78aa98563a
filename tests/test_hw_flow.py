"""The flow engine (``fusemax.hw.flow.FlowEngine``) through FuseMaxTop in the Amaranth
simulator: compiled flowformer-causal schedules on a Python memory model, compared bit for
bit with :func:`~fusemax.sw.golden_variants.flowformer_causal_golden`, with its error flags
and counters; square and non-square arrays, token counts that are not multiples of the array,
E != F, two heads, clamps 1 and 5, other numerics; and the sequencer's checks of FLOW."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fusemax.config import FuseMaxConfig, NumericsConfig, preset
from fusemax.hw.formats import FixedFormat as FF
from fusemax.hw.sequencer import ERROR_BITS
from fusemax.hw.top import pysim_run, pysim_session
from fusemax.sw.compiler import compile_attention
from fusemax.sw.golden_variants import flowformer_causal_golden
from fusemax.sw.schedule import VERSION, config_tag, encode, pack_words
from tests.workloads import random_attention

#: Flow designs beyond the presets: non-square arrays, and odd numerics (floor rounding, a
#: degree-2 exp, a 14-bit score, a 12-bit output) on a 5 x 3 array with small buffers.
CONFIGS = {
    "tiny-flow": preset("tiny-flow"),
    "rect-flow": preset("rect").replace(name="rect-flow", flow_unit=True),
    "wide-flow": preset("wide").replace(name="wide-flow", flow_unit=True),
    "odd5x3-flow": FuseMaxConfig("odd5x3-flow", 5, 3, NumericsConfig(
        name="odd-d2", rounding="floor", exp_degree=2, out=FF(12, 8), score=FF(14, 9)),
        max_e=6, max_f=5, mem_latency=1, mem_addr_width=12, flow_unit=True),
    # outputs in s16.14 (|out| < 2): large V saturates them
    "narrow-out-flow": preset("tiny-flow").replace(
        name="narrow-out-flow", numerics=replace(preset("tiny").numerics, name="out2", out=FF(16, 14))),
}


def _flags(g) -> int:
    """The sticky error bits the golden's saturation counts imply (the engine's mapping)."""
    s = g.saturation
    want = 0
    if s["phi"] or s["score"]:
        want |= 1 << ERROR_BITS["score_sat"]
    if s["flow"]:
        want |= 1 << ERROR_BITS["rnv_sat"]
    if s["out"]:
        want |= 1 << ERROR_BITS["out_sat"]
    if g.div_by_zero:
        want |= 1 << ERROR_BITS["div_zero"]
    return want


def _run(cfg_name, B, H, N, E, F, *, clamp=1.0, seed=0, vamp=1.0):
    cfg = CONFIGS[cfg_name]
    q, k, v = random_attention((B, H, N, N, E, F), seed=seed)
    v = v * vamp
    prog = compile_attention(cfg, q, k, v, cascade="flowformer-causal", clamp=clamp)
    res = pysim_run(cfg, prog.image.copy(), prog.sched_base, max_cycles=400_000)
    gold = flowformer_causal_golden(q, k, v, cfg, clamp=clamp)
    return cfg, prog, res, gold, prog.decode_output(res["image"])


def test_small_case_bit_exact_and_counters():
    cfg, prog, res, gold, out = _run("tiny-flow", 1, 1, 6, 4, 3)
    np.testing.assert_array_equal(out, gold.out_codes)
    assert res["error"] == 0 == _flags(gold)
    c = res["counters"]
    # the arrays stay idle; the engine is busy for most of the run
    assert c["busy_2d"] == 0 and c["tiles"] == 0
    assert 0.8 * c["cycles"] < c["flow"] < c["cycles"]
    # every Q, K/V line is read once (plus the schedule), every output line written once
    assert c["mem_writes"] == 2 * 3  # 2 output blocks of F = 3 lines


@pytest.mark.parametrize("cfg_name,B,H,N,E,F,clamp", [
    ("tiny-flow", 1, 2, 9, 8, 5, 5.0),      # two heads, blocks and chunks crossed
    ("rect-flow", 1, 1, 11, 3, 6, 1.0),     # 8 rows x 4 cols: FLOW segments of 4 and 8 tokens
    ("wide-flow", 1, 1, 13, 5, 9, 1.0),     # 4 x 8, F = 9 > 8 lanes: two column blocks
    ("odd5x3-flow", 2, 1, 8, 6, 5, 1.0),    # 5 x 3, floor rounding, degree 2, E = max_e
    ("tiny-flow", 1, 1, 9, 60, 3, 1.0),     # PASS_A (E + 1) outlasts DIV_X + EXP: KV waits for it
])
def test_sweep_bit_exact(cfg_name, B, H, N, E, F, clamp):
    cfg, prog, res, gold, out = _run(cfg_name, B, H, N, E, F, clamp=clamp)
    np.testing.assert_array_equal(out, gold.out_codes)
    assert res["error"] == _flags(gold)


def test_saturation_flags_match_the_golden():
    # large V on s16.14 outputs: some outputs saturate and the flag says so
    cfg, prog, res, gold, out = _run("narrow-out-flow", 1, 1, 7, 4, 5, vamp=4.0, seed=3)
    assert gold.saturation["out"] > 0
    np.testing.assert_array_equal(out, gold.out_codes)
    assert res["error"] == _flags(gold)


def test_sequencer_checks_flow():
    cfg = CONFIGS["tiny-flow"]
    hdr = encode("HDR", version=VERSION, tag=config_tag(cfg.digest()))
    shape = encode("SHAPE", E=2, F=2)
    end = encode("END")
    cases = [  # (schedule, expected flag or None)
        ([hdr, encode("FLOWC", clamp=1477), end], None),
        ([hdr, encode("FLOW", slot=0, count=1), end], "shape"),           # before SHAPE
        ([hdr, shape, encode("FLOW", slot=1, count=1), end], "opcode"),   # slot never loaded
        ([hdr, shape, encode("FLOW", slot=3, count=1), end], "opcode"),   # no slot 3
        ([hdr, shape, encode("FLOW", q_lane=2, count=3), end], "shape"),  # past the 4 Q lanes
        ([hdr, shape, encode("FLOW", kv_lane=4, count=1), end], "shape"), # past the 4 K/V lanes
        ([hdr, encode("FLOWC", clamp=cfg.numerics.score.max_code + 1), end], "shape"),  # too big
        ([hdr, shape, encode("FLOW", slot=3, q_lane=2, count=3), end], "shape"),  # lanes first
    ]
    stride = 8
    img = np.zeros((stride * len(cases), cfg.mem_lanes), np.uint16)
    for n, (words, _) in enumerate(cases):
        img[n * stride:(n + 1) * stride] = pack_words(words + [hdr] * (stride - len(words)),
                                                      cfg.mem_lanes)
    results = pysim_session(cfg, img, [n * stride for n in range(len(cases))], max_cycles=2000)
    for (_, bit), res in zip(cases, results):
        assert res["error"] == (0 if bit is None else 1 << ERROR_BITS[bit])
        assert res["counters"]["flow"] == 0


def test_empty_first_flow_starts_the_sequence():
    """FLOW first=1 with count = 0 starts the sequence for the next FLOW (hardware = executor):
    head 1's first FLOW is split into an empty one with first=1 and the real one with first=0."""
    from fusemax.sw.executor import execute
    from fusemax.sw.schedule import Instruction

    cfg = CONFIGS["tiny-flow"]
    q, k, v = random_attention((1, 2, 4, 4, 3, 2), seed=7)
    prog = compile_attention(cfg, q, k, v, cascade="flowformer-causal")
    sched = prog.schedule
    ins = list(sched.instructions)
    n = [j for j, x in enumerate(ins) if x.op == "FLOW" and x.args["first"]][1]  # head 1's
    args = dict(ins[n].args)
    ins[n] = Instruction("FLOW", dict(args, first=0))
    ins.insert(n, Instruction("FLOW", dict(args, count=0, store=0)))
    ins = [x for x in ins if x.op != "MASK"]  # keep the length (the flow engine ignores MASK)
    words = [x.word for x in ins]
    img = prog.image.copy()
    L = sched.layout
    img[L.sched_base:L.sched_base + L.sched_lines] = pack_words(words, L.mem_lanes, L.sched_lines)
    ex = execute(cfg, img.copy(), prog.sched_base)
    res = pysim_run(cfg, img, prog.sched_base)
    assert res["error"] == 0 == ex.error
    gold = flowformer_causal_golden(q, k, v, cfg)
    np.testing.assert_array_equal(prog.decode_output(img), gold.out_codes)
    np.testing.assert_array_equal(prog.decode_output(ex.image), gold.out_codes)
