"""The schedule executor (fusemax.sw.executor): the compiled schedule run instruction by
instruction on the memory image reproduces the golden model bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fusemax.config import preset
from fusemax.errors import FuseMaxError
from fusemax.sw.compiler import compile_attention, compile_schedule
from fusemax.sw.executor import decode_errors, execute
from fusemax.sw.golden import attention_1pass, causal_mask
from workloads import random_attention

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
    q, k, v = random_attention(shape, seed, amp)
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
    q, k, v = random_attention(shape, 3)
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


def _sigmoid_config(name):
    return preset("rect").replace(name="rect-sig", sigmoid_unit=True) if name == "rect-sig" else preset(name)


SIGMOID_CASES = [
    ("tiny-sigmoid", (1, 2, 37, 29, 8, 5), False),
    ("tiny-sigmoid", (1, 2, 37, 29, 8, 5), True),
    ("rect-sig", (2, 1, 21, 11, 6, 7), True),      # 8 x 4: non-square
    ("rect-sig", (1, 1, 5, 13, 8, 5), True),       # P > M: queries that see no key
    ("small-sigmoid", (1, 2, 64, 64, 16, 16), False),  # no norm: the s16.12 output saturates
]


@pytest.mark.parametrize("cfg, shape, causal", SIGMOID_CASES)
@pytest.mark.parametrize("cascade", ["sigmoid-norm", "sigmoid-nonorm"])
@pytest.mark.parametrize("binding", ["fusemax", "architecture"])
def test_executor_sigmoid_matches_golden(cfg, shape, causal, cascade, binding):
    """MODE sigmoid=1 (nonorm): the compiled schedule reproduces sigmoid_golden bit for bit,
    with the flags its saturation counts imply; same tiles (and skipped tiles) as attention-1pass,
    MODE right after CAUSAL."""
    from fusemax.sim.attention import expected_flags
    from fusemax.sw.golden_variants import sigmoid_golden

    c = _sigmoid_config(cfg)
    B, H, M, P, E, F = shape
    q, k, v = random_attention(shape, 7)
    prog = compile_attention(c, q, k, v, causal=causal, cascade=cascade, binding=binding)
    one = compile_schedule(c, prog.shape, causal=causal, binding=binding)
    ops = [i.op for i in prog.instructions]
    assert ops[:5] == ["HDR", "SHAPE", "MASK", "CAUSAL", "MODE"] and ops.count("MODE") == 1
    assert ops[5:] == [i.op for i in one.instructions][4:]
    assert prog.instructions[4].args == {"sigmoid": 1, "nonorm": int(cascade == "sigmoid-nonorm")}
    assert (prog.schedule.tiles, prog.schedule.tiles_skipped) == (one.tiles, one.tiles_skipped)
    res = execute(c, prog.image, prog.sched_base)
    gold = sigmoid_golden(q, k, v, c, cascade == "sigmoid-norm", prog.scale, causal)
    out = prog.decode_output(res.image)
    assert np.array_equal(out, gold.out_codes), f"{(out != gold.out_codes).sum()} mismatches"
    assert res.stopped_at is None and res.tiles == prog.schedule.tiles
    assert res.error_flags == expected_flags(gold)


def test_executor_sigmoid_needs_the_unit():
    """A design without sigmoid_unit stops with error.config on MODE sigmoid=1 (here: a
    sigmoid schedule whose HDR was rewritten for tiny, so HDR passes)."""
    from fusemax.sw import schedule as sf

    c = preset("tiny")
    rng = np.random.default_rng(8)
    prog = compile_attention(preset("tiny-sigmoid"), *(rng.normal(size=(1, 1, 4, 4)) for _ in range(3)),
                             cascade="sigmoid-norm")
    img = prog.image.copy()
    word = sf.encode("HDR", version=sf.VERSION, tag=sf.config_tag(c.digest()))
    img[0] = [(word >> (16 * w)) & 0xFFFF for w in range(4)]
    res = execute(c, img, 0)
    mode_at = [i.op for i in prog.instructions].index("MODE")
    assert res.error_flags == ["config"] and res.stopped_at == mode_at and res.tiles == 0
    assert "sigmoid unit" in res.stop_reason
    assert execute(preset("tiny-sigmoid"), prog.image, 0).error_flags == []


@pytest.fixture
def executor_as_rtl(monkeypatch):
    """``simulate`` with the schedule executor standing in for the RTL run (no Verilator)."""
    import fusemax.sim.attention as A
    from fusemax.sw.compiler import buffer_bytes

    runs = []

    def run_program(config, program, **kw):
        ex = execute(config, program.image, program.sched_base)
        counters = {**dict.fromkeys(A.CSR_NAMES, 0), **ex.counts, "cycles": 1000}
        runs.append(program)
        return {"counters": counters, "output_codes": program.decode_output(ex.image),
                "error": ex.error, "timeout": False, "built": False, "mode": kw.get("mode"),
                "sim_cycles_per_s": None, "waves": None, "waves_info": None, "build_dir": "",
                **dict.fromkeys(("verilog_s", "build_s", "run_s", "sim_wall_s"), 0.0)}

    monkeypatch.setattr(A, "run_program", run_program)
    monkeypatch.setattr(A, "design_buffers", buffer_bytes)
    return runs


@pytest.mark.parametrize("cascade", ["sigmoid-norm", "sigmoid-nonorm"])
def test_simulate_sigmoid(executor_as_rtl, cascade):
    """simulate(cascade=sigmoid-*): compiled as that cascade, compared with sigmoid_golden, the
    error against variants.sigmoid_attention, our model's sigmoid entry (no paper formula)."""
    from fusemax.sim.attention import simulate
    from fusemax.sw import variants as V
    from fusemax.sw.golden import error_stats
    from fusemax.sw.perfmodel import rtl_binding_model

    c = preset("small-sigmoid")
    rng = np.random.default_rng(9)
    q, k, v = rng.normal(size=(1, 2, 64, 16)), rng.normal(size=(1, 2, 64, 16)), rng.normal(size=(1, 2, 64, 16))
    r = simulate(c, q, k, v, causal=True, cascade=cascade)
    assert executor_as_rtl[-1].schedule.cascade == cascade
    assert r["bit_exact"] and r["flags_match"] and r["cascade"] == cascade
    assert r["expected_error_flags"] == ([] if cascade == "sigmoid-norm" else ["out_saturated"])
    assert r["score_function"] == executor_as_rtl[-1].schedule.score_function != "softmax"
    ref = V.sigmoid_attention(q, k, v, cascade == "sigmoid-norm", r["scale"], True)
    assert r["error"] == error_stats(r["output"], ref)
    if cascade == "sigmoid-norm":
        assert r["error"]["rel_rms"] < 1e-3
    m = r["model"]
    assert m["paper_model_cycles"] is None and m["cascade"] == cascade
    assert m["rtl_model_cycles"] == rtl_binding_model(c, r["shape"], True)["sigmoid"]["fusemax"]["cycles"]
    with pytest.raises(FuseMaxError, match="sigmoid_unit"):
        simulate(preset("small"), q, k, v, cascade=cascade)


def test_cli_sim_passes_the_cascade(executor_as_rtl, tmp_path, capsys):
    """fusemax sim runs the cascade it names (attention-3pass too) and refuses sigmoid on a
    design without the unit before any run."""
    from fusemax.cli import main as fusemax

    rng = np.random.default_rng(10)
    np.savez(tmp_path / "in.npz", Q=rng.normal(size=(6, 4)), K=rng.normal(size=(13, 4)),
             V=rng.normal(size=(13, 4)))
    base = ["--inputs", str(tmp_path / "in.npz"), "--out", str(tmp_path / "o.npz"), "--json"]
    for cascade, cfg in (("sigmoid-nonorm", "tiny-sigmoid"), ("attention-3pass", "tiny")):
        assert fusemax(["sim", cascade, "--config", cfg, "--causal"] + base) == 0
        assert executor_as_rtl[-1].schedule.cascade == cascade
        assert json.loads(capsys.readouterr().out)["cascade"] == cascade
    n = len(executor_as_rtl)
    assert fusemax(["sim", "sigmoid-norm", "--config", "tiny"] + base) == 2
    assert "needs a design with the sigmoid unit" in capsys.readouterr().err
    assert len(executor_as_rtl) == n
