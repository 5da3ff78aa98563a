"""The schedule executor (fusemax.sw.executor): the compiled schedule run instruction by
instruction on the memory image reproduces the golden model bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from fusemax.config import preset
from fusemax.sw.compiler import compile_attention
from fusemax.sw.executor import decode_errors, execute
from fusemax.sw.golden import attention_1pass, causal_mask

CASES = [
    ("tiny", (1, 1, 8, 4, 4, 4), False),
    ("tiny", (1, 1, 1, 1, 1, 1), False),
    ("small", (2, 3, 37, 29, 24, 40), False),
    ("small", (2, 3, 37, 29, 24, 40), True),
    ("medium", (1, 1, 40, 17, 16, 8), True),
    ("rect", (1, 2, 37, 29, 8, 5), True),
    ("wide", (1, 1, 5, 29, 8, 5), True),     # P > M: queries that see no key
    ("wide", (1, 2, 70, 9, 6, 7), True),     # M > P: KV-cache style
    ("small-int8", (1, 2, 33, 10, 12, 16), False),
]


def run(cfg, shape, causal, seed=0, scale=None, amp=1.0):
    c = preset(cfg)
    B, H, M, P, E, F = shape
    rng = np.random.default_rng(seed)
    q = amp * rng.normal(size=(B, H, P, E))
    k = amp * rng.normal(size=(B, H, M, E))
    v = rng.normal(size=(B, H, M, F))
    prog = compile_attention(c, q, k, v, scale=scale, causal=causal)
    res = execute(c, prog.image, prog.sched_base)
    gold = attention_1pass(q, k, v, c, scale=scale, mask=causal_mask(P, M) if causal else None)
    return c, prog, res, gold


@pytest.mark.parametrize("cfg, shape, causal", CASES)
def test_executor_matches_golden(cfg, shape, causal):
    c, prog, res, gold = run(cfg, shape, causal)
    out = prog.decode_output(res.image)
    assert np.array_equal(out, gold.out_codes), f"{(out != gold.out_codes).sum()} mismatches"
    assert res.stopped_at is None
    assert res.instructions == len(prog.instructions)
    assert res.tiles == prog.schedule.tiles
    B, H, M, P, E, F = shape
    assert res.lines_written == B * H * prog.layout.P2 * F
    assert res.lines_read == B * H * prog.layout.P2 * E + prog.schedule.tiles * (E + F)
    want = set()
    if gold.div_by_zero:
        want.add("div_by_zero")
    assert set(res.error_flags) == want


def test_executor_saturation_flags():
    # large inputs with a small scale factor overflow nothing; big amplitudes saturate the score
    c, prog, res, gold = run("tiny", (1, 1, 8, 4, 16, 4), False, amp=6.0, scale=4.0)
    assert gold.saturation["score"] > 0
    assert "score_saturated" in res.error_flags
    assert np.array_equal(prog.decode_output(res.image), gold.out_codes)


def test_executor_refuses_other_config():
    c = preset("tiny")
    rng = np.random.default_rng(3)
    prog = compile_attention(preset("tiny-int8"), rng.normal(size=(1, 1, 4, 4)),
                             rng.normal(size=(1, 1, 4, 4)), rng.normal(size=(1, 1, 4, 4)))
    res = execute(c, prog.image, prog.sched_base)
    assert res.error_flags == ["config"] and res.stopped_at == 0 and res.tiles == 0


def test_executor_bad_opcode_and_shape():
    c = preset("tiny")
    rng = np.random.default_rng(4)
    prog = compile_attention(c, rng.normal(size=(1, 1, 4, 4)), rng.normal(size=(1, 1, 4, 4)),
                             rng.normal(size=(1, 1, 4, 4)))
    img = prog.image.copy()
    img[4] = [0, 0, 0, 0x3E << 10]  # opcode 0x3E at bits [63:58]
    res = execute(c, img, 0)
    assert res.error_flags == ["opcode"] and res.stopped_at == 4
    img = prog.image.copy()
    img[1, 0] = 65  # SHAPE E = 65 > max_e
    assert execute(c, img, 0).error_flags == ["shape"]


def test_decode_errors():
    assert decode_errors(0) == []
    assert decode_errors(0b1000_0001) == ["config", "div_by_zero"]


def test_golden_cli_causal(tmp_path, capsys):
    from fusemax.cli import main as fusemax

    rng = np.random.default_rng(5)
    q, k, v = rng.normal(size=(6, 4)), rng.normal(size=(9, 4)), rng.normal(size=(9, 3))
    np.savez(tmp_path / "in.npz", Q=q, K=k, V=v)
    assert fusemax(["golden", "--config", "tiny", "--inputs", str(tmp_path / "in.npz"),
                    "--out", str(tmp_path / "o.npz"), "--causal"]) == 0
    assert "causal" in capsys.readouterr().out
    gold = attention_1pass(q[None, None], k[None, None], v[None, None], preset("tiny"),
                           mask=causal_mask(6, 9))
    assert np.array_equal(np.load(tmp_path / "o.npz")["O_codes"], gold.out_codes[0, 0])


@pytest.mark.parametrize("cfg, shape, causal", [CASES[0], CASES[3], CASES[5], CASES[6], CASES[8]])
@pytest.mark.parametrize("binding", ["fusemax", "architecture"])
def test_executor_3pass_matches_golden(cfg, shape, causal, binding):
    """attention-3pass: every block runs its tiles twice, the second pass from TILE.restart;
    the schedule reproduces attention_3pass bit for bit."""
    from fusemax.sw.golden import attention_3pass

    c = preset(cfg)
    B, H, M, P, E, F = shape
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(B, H, P, E)), rng.normal(size=(B, H, M, E)), rng.normal(size=(B, H, M, F))
    prog = compile_attention(c, q, k, v, causal=causal, cascade="attention-3pass", binding=binding)
    one = compile_attention(c, q, k, v, causal=causal, binding=binding)
    assert prog.schedule.tiles == 2 * one.schedule.tiles
    assert prog.schedule.tiles_skipped == 2 * one.schedule.tiles_skipped
    restarts = [i for i in prog.instructions if i.op == "TILE" and i.args["restart"]]
    assert len(restarts) == sum(1 for i in one.instructions if i.op == "TILE" and i.args["first"])
    res = execute(c, prog.image, prog.sched_base)
    gold = attention_3pass(q, k, v, c, mask=causal_mask(P, M) if causal else None)
    assert np.array_equal(prog.decode_output(res.image), gold.out_codes)
    assert res.stopped_at is None and res.tiles == prog.schedule.tiles
