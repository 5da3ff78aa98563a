"""The sequencer (through FuseMaxTop in the Amaranth simulator) on hand-built schedules:
header/config check, shape limits, unknown opcodes, a TILE on a never-loaded slot, MODE on a
design without the sigmoid unit (or the entropy unit), MODE entropy with sigmoid, MODE changing
the entropy bit inside a block, FLOWC/FLOW on a design without the flow engine; every
error stops the run with ``done`` and exactly one sticky flag, and the next ``start``
clears flags and counters. All schedules run back to back in one simulation."""

from __future__ import annotations

import numpy as np

from fusemax.config import preset
from fusemax.hw.sequencer import ERROR_BITS, field, max_e_effective, opcode_of
from fusemax.hw.top import pysim_session
from fusemax.sw.schedule import OPCODE_LO, OPCODES, VERSION, config_tag, encode, pack_words

CFG = preset("tiny")
TAG = config_tag(CFG.digest())
HDR = encode("HDR", version=VERSION, tag=TAG)
SHAPE = encode("SHAPE", E=2, F=2)
END = encode("END")

# (name, schedule, expected error flag or None, instructions executed)
CASES = [
    ("ok", [HDR, SHAPE, encode("MASK", M=1, P=1), encode("CAUSAL", enable=1),
            encode("WINDOW", W=3), END], None, 6),
    ("tag", [encode("HDR", version=VERSION, tag=TAG ^ 1), SHAPE, END], "config", 1),
    ("version", [encode("HDR", version=VERSION + 1, tag=TAG), SHAPE, END], "config", 1),
    ("no-hdr", [SHAPE, HDR, END], "config", 1),
    ("E0", [HDR, encode("SHAPE", E=0, F=2), END], "shape", 2),
    ("F0", [HDR, encode("SHAPE", E=2, F=0), END], "shape", 2),
    ("E-big", [HDR, encode("SHAPE", E=max_e_effective(CFG) + 1, F=2), END], "shape", 2),
    ("F-big", [HDR, encode("SHAPE", E=2, F=CFG.max_f + 1), END], "shape", 2),
    ("ldq-before-shape", [HDR, encode("LDQ", addr=10), END], "shape", 2),
    ("opcode-08", [HDR, SHAPE, 0x08 << OPCODE_LO, END], "opcode", 3),  # 0x06 MODE, 0x07 FLOWC
    # a design without the sigmoid unit: MODE 0 is a no-op, any mode bit a config error
    ("mode-off", [HDR, SHAPE, encode("MODE"), END], None, 4),
    ("mode-sigmoid", [HDR, SHAPE, encode("MODE", sigmoid=1), END], "config", 3),
    ("mode-nonorm", [HDR, SHAPE, encode("MODE", nonorm=1), END], "config", 3),
    ("mode-entropy", [HDR, SHAPE, encode("MODE", entropy=1), END], "config", 3),
    # a design without the flow engine: FLOWC and FLOW are config errors
    ("flowc", [HDR, SHAPE, encode("FLOWC", clamp=100), END], "config", 3),
    ("flow", [HDR, SHAPE, encode("FLOW", count=1), END], "config", 3),
    ("opcode-00", [HDR, SHAPE, 0, END], "opcode", 3),
    ("tile-unloaded", [HDR, SHAPE, encode("TILE", slot=1), END], "opcode", 3),
    ("ok-again", [HDR, SHAPE, END], None, 3),
]


def test_schedules_back_to_back():
    run_cases(CFG, CASES)


def test_mode_bits_on_a_design_with_both_units():
    """Sigmoid and entropy units: each MODE alone runs, entropy with sigmoid or nonorm is a
    config error (the entropy of sigmoid scores is not defined)."""
    cfg = preset("tiny").replace(name="tiny-both", sigmoid_unit=True, entropy_unit=True)
    hdr = encode("HDR", version=VERSION, tag=config_tag(cfg.digest()))
    run_cases(cfg, [
        ("entropy", [hdr, SHAPE, encode("MODE", entropy=1), END], None, 4),
        ("sigmoid", [hdr, SHAPE, encode("MODE", sigmoid=1, nonorm=1), END], None, 4),
        ("entropy-sigmoid", [hdr, SHAPE, encode("MODE", entropy=1, sigmoid=1), END], "config", 3),
        ("entropy-nonorm", [hdr, SHAPE, encode("MODE", entropy=1, nonorm=1), END], "config", 3),
    ], hdr)


def run_cases(cfg, cases, hdr=HDR):
    stride = 16
    img = np.zeros((stride * len(cases), cfg.mem_lanes), np.uint16)
    for n, (_, words, _, _) in enumerate(cases):
        words = words + [hdr] * (stride - len(words))  # nothing after a failure may run
        img[n * stride:(n + 1) * stride] = pack_words(words, cfg.mem_lanes)
    results = pysim_session(cfg, img, [n * stride for n in range(len(cases))], max_cycles=2000)
    for (name, _, bit, n_insn), res in zip(cases, results):
        want = 0 if bit is None else 1 << ERROR_BITS[bit]
        assert res["error"] == want, name
        assert res["counters"]["instructions"] == n_insn, name
        assert res["counters"]["tiles"] == 0 and res["counters"]["busy_2d"] == 0, name
        assert res["busy"] == 0, name
        assert res["counters"]["cycles"] < 60, name


def test_decode_helpers_follow_the_field_table():
    from amaranth.hdl import Const

    w = Const(encode("TILE", slot=1, m_base=12345), 64)
    lo, width = OPCODES["TILE"].fields["m_base"]
    sl = field(w, "TILE", "m_base")
    assert (sl.start, sl.stop) == (lo, lo + width)
    op = opcode_of(w)
    assert (op.start, op.stop) == (OPCODE_LO, 64)


def test_mode_inside_an_entropy_block_stops_with_config():
    """On an entropy design a MODE that changes the entropy bit between a block's first TILE and
    its AV stops with ``error.config`` (the block's RT would start from a stale register-file
    entry); the same MODE repeated, or a change after the AV, runs. The schedule executor
    agrees, instruction for instruction."""
    from fusemax.sw.executor import decode_errors, execute

    cfg = preset("tiny-entropy")
    hdr = encode("HDR", version=VERSION, tag=config_tag(cfg.digest()))
    stride = 64  # case n at lines [64n, 64n + 64): schedule, then K/V at +40, Q at +50, out +60

    def case(n, mode_early, *tail):
        b = n * stride
        return ([hdr, SHAPE, encode("MASK", M=4, P=4)] + [encode("MODE", entropy=1)] * mode_early
                + [encode("LDKV", addr=b + 40, slot=0), encode("LDQ", addr=b + 50, p_base=0),
                   encode("TILE", first=1, slot=0)]
                + [encode("AV", addr=b + 60) if t == "AV" else t for t in tail] + [END])

    cases = [  # (name, schedule, expected flag, instructions executed)
        ("off-inside", case(0, 1, encode("MODE"), "AV"), "config", 8),
        ("same-inside", case(1, 1, encode("MODE", entropy=1), "AV"), None, 10),
        ("off-after-av", case(2, 1, "AV", encode("MODE")), None, 10),
        ("on-inside", case(3, 0, encode("MODE", entropy=1), "AV"), "config", 7),
    ]
    img = np.zeros((stride * len(cases), cfg.mem_lanes), np.uint16)
    for n, (_, words, _, _) in enumerate(cases):
        img[n * stride:n * stride + len(words)] = pack_words(words, cfg.mem_lanes)
        img[n * stride + 40:n * stride + 50] = np.arange(10 * cfg.mem_lanes).reshape(10, -1) % 7
    results = pysim_session(cfg, img.copy(), [n * stride for n in range(len(cases))],
                            max_cycles=5000)
    for n, ((name, _, bit, n_insn), res) in enumerate(zip(cases, results)):
        ex = execute(cfg, img.copy(), n * stride)
        want = [] if bit is None else [bit]
        assert decode_errors(res["error"]) == want and ex.error_flags == want, name
        assert res["counters"]["instructions"] == ex.instructions == n_insn, name
        if bit:
            assert "inside a query block" in ex.stop_reason
            assert ex.stopped_at == n * stride + n_insn - 1
