"""Causal Flow-Attention on the flow engine, without Verilator: the golden's per-token step,
the compiler's FLOWC / FLOW schedule (segments within one Q block and one K/V chunk, the loads
around them), the schedule executor's model of FLOWC / FLOW (bit for bit the golden
``flowformer_causal_golden``, with its flags), the host part (``rtl_variants.prepare``) and
the refusals."""

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
    FLOW_MAX_N, Shape, compile_attention, compile_schedule, flow_segments,
)
from fusemax.sw.executor import execute
from fusemax.sw.golden import error_stats
from fusemax.sw.patterns import Causal
from fusemax.sw.rtl_variants import NOT_ON_RTL, RTL_VARIANTS, prepare

CASCADE = "flowformer-causal"
TINY = preset("tiny-flow")
CONFIGS = [TINY, preset("small-flow"), preset("rect").replace(name="rect-flow", flow_unit=True),
           preset("wide").replace(name="wide-flow", flow_unit=True)]


def _qkv(B, H, N, E, F, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return tuple(rng.normal(size=s) * scale for s in ((B, H, N, E), (B, H, N, E), (B, H, N, F)))


def _run(cfg, q, k, v, clamp=None):
    prog = compile_attention(cfg, q, k, v, cascade=CASCADE, clamp=clamp)
    ex = execute(cfg, prog.image, prog.sched_base)
    return prog, ex, prog.decode_output(ex.image)


# ------------------------------------------------------------------ the golden's step

def test_step_on_one_sequence_equals_the_golden():
    q, k, v = _qkv(2, 1, 11, 6, 3, seed=1)
    g = G.flowformer_causal_golden(q, k, v, TINY, clamp=5.0)
    nc = TINY.numerics
    xq, xk, vc, _ = G.flow_quantize(q, k, v, nc)
    consts = G.FlowConsts.of(nc, 5.0)
    assert consts.c2 == G.flow_clamp_code(5.0, nc) == round(5 * 1.4426950408889634 * 1024)
    for b in range(2):  # leading dims () instead of (B, H)
        st, cnt = G.FlowState.zeros((), 6, 3), G.new_flow_counters()
        out = [G.flow_token_step(st, xq[b, 0, i], xk[b, 0, i], vc[b, 0, i], i + 1, consts, cnt)
               for i in range(11)]
        assert np.array_equal(np.stack(out), g.out_codes[b, 0])
        assert all(np.array_equal(a, g.state[n][b, 0]) for n, a in st.as_dict().items())
        assert set(cnt) == set(G.FLOW_COUNTERS)


def test_clamp_code_limits():
    nc = TINY.numerics
    assert G.flow_clamp_code(1.0, nc) == 1477
    assert G.flow_clamp_code(22.1, nc) <= nc.score.max_code
    with pytest.raises(FuseMaxError, match="above the score format's largest code 32767"):
        G.flow_clamp_code(22.2, nc)
    for bad in (0, -1.0, float("nan"), float("inf"), None, "x"):
        with pytest.raises(FuseMaxError, match="clamp must be a positive bound"):
            G.flow_clamp_code(bad, nc)
    q, k, v = _qkv(1, 1, 3, 2, 2)
    with pytest.raises(FuseMaxError, match="largest code"):
        G.flowformer_causal_golden(q, k, v, TINY, clamp=30.0)


# ------------------------------------------------------------------ the schedule

@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.name for c in CONFIGS])
@pytest.mark.parametrize("N", [1, 4, 13, 33])
def test_segments_cover_every_token_once_within_a_block_and_a_chunk(cfg, N):
    R, C = cfg.rows, cfg.cols
    B, H = 1, 2
    s = compile_schedule(cfg, Shape(B, H, N, N, 5, 3), cascade=CASCADE, clamp=5.0)
    L = s.layout
    ops = [i.op for i in s.instructions]
    assert ops[:4] == ["HDR", "SHAPE", "MASK", "FLOWC"] and ops[-1] == "END"
    assert s.instructions[2].args == {"M": N, "P": N}
    assert s.instructions[3].args == {"clamp": G.flow_clamp_code(5.0, TINY.numerics)}
    assert "CAUSAL" not in ops and "TILE" not in ops and "AV" not in ops
    assert s.tiles == 0 and s.flow_tokens == B * H * N and s.causal
    assert ops.count("LDQ") == B * H * L.P2 and ops.count("LDKV") == B * H * L.M1
    slot_addr, q_addr, seen = {}, None, {}
    stored = set()
    bh_order = []
    for n, ins in enumerate(s.instructions):
        a = ins.args
        if ins.op == "LDKV":
            slot_addr[a["slot"]] = a["addr"]
        elif ins.op == "LDQ":
            q_addr = a["addr"]
            # LDQ of a new block only after the FLOW that stored the previous one
            prev = [i for i in s.instructions[:n] if i.op == "FLOW"]
            assert not prev or prev[-1].args["store"]
        elif ins.op == "FLOW":
            if a["first"]:
                bh_order.append(len(bh_order))
                t = 0
            bh = bh_order[-1]
            b, h = divmod(bh, H)
            i, j = t // C, t // R
            assert a["q_lane"] == t % C and a["kv_lane"] == t % R
            assert a["q_lane"] + a["count"] <= C and a["kv_lane"] + a["count"] <= R  # one block, one chunk
            assert (t + a["count"] - 1) // C == i and (t + a["count"] - 1) // R == j
            assert q_addr == L.q_addr(b, h, i) and slot_addr[a["slot"]] == L.kv_addr(b, h, j)
            assert a["addr"] == L.out_addr(b, h, i)
            end = t + a["count"]
            assert a["store"] == int(end % C == 0 or end == N)
            if a["store"]:
                stored.add((bh, i))
            for tok in range(t, end):
                seen[(bh, tok)] = seen.get((bh, tok), 0) + 1
            t = end
    assert seen == {(bh, tok): 1 for bh in range(B * H) for tok in range(N)}
    assert stored == {(bh, i) for bh in range(B * H) for i in range(L.P2)}
    assert ops.count("FLOW") == B * H * len(flow_segments(N, R, C))
    assert s.cycle_bound() > 0 and "FLOW" in s.listing() and "causal by construction" in s.listing()


def test_the_next_chunk_loads_before_the_current_chunks_flows():
    s = compile_schedule(TINY, Shape(1, 2, 10, 10, 4, 4), cascade=CASCADE)
    ops = [(i.op, i.args.get("addr")) for i in s.instructions]
    L = s.layout
    chunks = [L.kv_addr(b, h, j) for b in range(1) for h in range(2) for j in range(L.M1)]
    loads = [a for op, a in ops if op == "LDKV"]
    assert loads == chunks  # each chunk once, in order
    first_flow = {}
    slot_of = {}
    for n, ins in enumerate(s.instructions):
        if ins.op == "LDKV":
            slot_of[ins.args["slot"]] = ins.args["addr"]
            assert ins.args["slot"] == chunks.index(ins.args["addr"]) % sf.KV_SLOTS
        elif ins.op == "FLOW":
            first_flow.setdefault(slot_of[ins.args["slot"]], n)
    for c, nxt in zip(chunks, chunks[1:]):  # chunk n + 1 is issued before chunk n's first FLOW
        ldkv_at = [n for n, (op, a) in enumerate(ops) if op == "LDKV" and a == nxt][0]
        assert ldkv_at < first_flow[c]


# ------------------------------------------------------------------ the executor

@pytest.mark.parametrize("cfg", CONFIGS, ids=[c.name for c in CONFIGS])
@pytest.mark.parametrize("shape, clamp", [((1, 2, 13, 8, 5), 1.0), ((2, 1, 33, 8, 5), 5.0),
                                          ((1, 1, 6, 3, 7), None)])
def test_executor_equals_the_golden(cfg, shape, clamp):
    B, H, N, E, F = shape
    q, k, v = _qkv(*shape, seed=N + E)
    prog, ex, out = _run(cfg, q, k, v, clamp)
    g = G.flowformer_causal_golden(q, k, v, cfg, **({} if clamp is None else {"clamp": clamp}))
    assert np.array_equal(out, g.out_codes)
    assert ex.error_flags == expected_flags(g) == []
    L = prog.layout
    assert ex.flow_tokens == B * H * N and ex.tiles == 0
    assert ex.lines_written == B * H * L.P2 * F
    assert ex.lines_read == B * H * (L.P2 * E + L.M1 * (E + F))
    assert ex.instructions == len(prog.instructions)
    assert prog.scale == 1.0 and set(prog.input_saturation) == {"q", "k", "v"}
    ref = V.flow_attention_causal(q, k, v, variant={None: "core", 1.0: "core", 5.0: "nlp"}[clamp])
    assert np.max(np.abs(TINY.numerics.out.to_float(out) - ref)) < 5e-3


def _narrow_score():
    n = TINY.numerics
    return TINY.replace(name="narrow-flow", numerics=replace(n, score=FixedFormat(16, 15)))


@pytest.mark.parametrize("case", ["div_zero", "score", "flow"])
def test_executor_flags_follow_the_golden(case):
    if case == "div_zero":  # phi = 0 everywhere: DI = DO = 0
        cfg, clamp = TINY, 1.0
        q = k = np.full((1, 1, 6, 4), -30.0)
        v = np.ones((1, 1, 6, 3))
    elif case == "score":  # conserved sink ~ 1: x·log2(e) ~ 1.44 > the s16.15 score range
        cfg, clamp = _narrow_score(), 0.5
        q, k, v = _qkv(1, 1, 12, 4, 3)
    else:  # DI = E·i with phi = 1: beyond s32.16 after 512 tokens of E = 64
        cfg, clamp = preset("small-flow"), 1.0
        q = k = np.full((1, 1, 520, 64), 20.0)
        v = np.ones((1, 1, 520, 1))
    prog, ex, out = _run(cfg, q, k, v, clamp)
    g = G.flowformer_causal_golden(q, k, v, cfg, clamp)
    assert np.array_equal(out, g.out_codes)
    want = {"div_zero": "div_by_zero", "score": "score_saturated", "flow": "rnv_saturated"}[case]
    assert ex.error_flags == expected_flags(g) == [want]


def _image(cfg, words):
    """A memory image with one instruction per line (4-lane lines) and zeros after it."""
    img = np.zeros((64, cfg.mem_lanes), np.uint16)
    for n, w in enumerate(words):
        for i in range(4):
            img[n, i] = (w >> (16 * i)) & 0xFFFF
    return img


def _hdr(cfg):
    return sf.encode("HDR", version=sf.VERSION, tag=sf.config_tag(cfg.digest()))


def test_executor_stops_on_flow_without_the_engine_and_on_bad_lanes():
    plain = preset("tiny")
    for op, args in (("FLOWC", {"clamp": 1477}), ("FLOW", {"count": 1})):
        ex = execute(plain, _image(plain, [_hdr(plain), sf.encode("SHAPE", E=2, F=2),
                                           sf.encode(op, **args), sf.encode("END")]))
        assert ex.error_flags == ["config"] and ex.stopped_at == 2
        assert "no flow engine" in ex.stop_reason
    words = [_hdr(TINY), sf.encode("SHAPE", E=2, F=2), sf.encode("LDQ", addr=40),
             sf.encode("LDKV", addr=50, slot=0), sf.encode("FLOW", q_lane=2, kv_lane=0, count=3),
             sf.encode("END")]
    ex = execute(TINY, _image(TINY, words))
    assert ex.error_flags == ["shape"] and ex.stopped_at == 4 and "past the Q buffer" in ex.stop_reason


def test_output_buffer_keeps_stale_lanes_and_the_state_runs_across_flows():
    """A partial last block stores the buffer's other lanes as they were (never cleared); two
    FLOWs with first = 0 continue the token index."""
    q, k, v = _qkv(1, 1, 6, 3, 2, seed=9)
    prog, ex, out = _run(TINY, q, k, v)
    L = prog.layout
    a0, a1 = L.out_addr(0, 0, 0), L.out_addr(0, 0, 1)
    blk0 = ex.image[a0:a0 + 2, :4].view(np.int16)
    blk1 = ex.image[a1:a1 + 2, :4].view(np.int16)
    assert np.array_equal(blk1[:, 2:], blk0[:, 2:])  # lanes 2, 3: tokens 2, 3 of block 0
    assert np.array_equal(out, G.flowformer_causal_golden(q, k, v, TINY).out_codes)


# ------------------------------------------------------------------ refusals

@pytest.mark.parametrize("cfg, shape, kw, msg", [
    (preset("tiny"), (1, 1, 8, 8, 4, 4), {}, "needs a design with the flow engine .config "
     "flow_unit = true, e.g. the presets tiny-flow, small-flow"),
    (TINY, (1, 1, 8, 7, 4, 4), {}, "needs P = M"),
    (TINY, (1, 1, 8, 8, 4, 4), {"pattern": Causal()}, "takes no attention pattern"),
    (TINY, (1, 1, 8, 8, 4, 4), {"binding": "architecture"}, "no tile binding"),
    (TINY, (1, 1, 8, 8, 4, 4), {"clamp": 25.0}, "above the score format's largest code"),
    (TINY, (1, 1, 8, 8, 4, 4), {"clamp": -1.0}, "clamp must be a positive bound"),
    (TINY, (1, 1, FLOW_MAX_N + 1, FLOW_MAX_N + 1, 4, 4), {}, "exceeds 131072 = 2.17: the flow "
     "engine's running sums KC, QC \\(34-bit registers, 15 fraction bits\\)"),
    (TINY, (1, 1, 8, 8, 65, 4), {}, "exceeds the Q buffer"),
])
def test_refusals_name_the_problem(cfg, shape, kw, msg):
    B, H, M, P, E, F = shape
    with pytest.raises(FuseMaxError, match=msg):
        compile_schedule(cfg, Shape(B, H, M, P, E, F), cascade=CASCADE, **kw)


def test_causal_flag_is_accepted_either_way_and_other_options_are_refused():
    shape = Shape(1, 1, 9, 9, 4, 4)
    a = compile_schedule(TINY, shape, cascade=CASCADE, causal=True)
    b = compile_schedule(TINY, shape, cascade=CASCADE, causal=False)
    assert a.words == b.words
    with pytest.raises(FuseMaxError, match="clamp is an option of flowformer-causal"):
        compile_schedule(TINY, shape, clamp=1.0)
    q, k, v = _qkv(1, 1, 9, 4, 4)
    with pytest.raises(FuseMaxError, match="has no score scale"):
        compile_attention(TINY, q, k, v, scale=0.5, cascade=CASCADE)


# ------------------------------------------------------------------ host part and CLI

def test_rtl_variant_host_part():
    assert CASCADE in RTL_VARIANTS and CASCADE not in NOT_ON_RTL
    q, k, v = _qkv(1, 2, 10, 4, 3, seed=4)
    run = prepare(CASCADE, q, k, v, rows=4, cols=4, clamp=5)
    assert run.compile_cascade == CASCADE and run.compile_options == {"clamp": 5.0}
    prog = compile_attention(TINY, run.q, run.k, run.v, causal=run.causal,
                             cascade=run.compile_cascade, **run.compile_options)
    out = prog.decode_output(execute(TINY, prog.image).image)
    g = run.golden(TINY, prog.scale)
    assert np.array_equal(out, run.golden_codes(g))
    assert np.max(np.abs(run.finish(g.out) - run.reference(prog.scale))) < 5e-3
    with pytest.raises(FuseMaxError, match=r"clamp must be one of Flowformer's bounds 1 \(core\)"):
        prepare(CASCADE, q, k, v, rows=4, cols=4, clamp=2.0)
    with pytest.raises(FuseMaxError, match="takes no window"):
        prepare(CASCADE, q, k, v, rows=4, cols=4, window=3)
    with pytest.raises(FuseMaxError, match="takes no clamp"):
        prepare("attention-local", q, k, v, rows=4, cols=4, window=3, clamp=1.0)


def test_cli_compile_and_sim_refusals(tmp_path, capsys):
    assert fusemax(["compile", CASCADE, "--clamp", "5", "--config", "tiny-flow", "--shape",
                    "B=1,H=1,M=13,P=13,E=8,F=5", "--listing", "-"]) == 0
    text = capsys.readouterr().out
    assert "FLOWC clamp=7387" in text and text.count("FLOW addr=") == 4
    assert fusemax(["compile", CASCADE, "--config", "tiny", "--shape",
                    "B=1,H=1,M=13,P=13,E=8,F=5"]) == 2
    assert "flow_unit" in capsys.readouterr().err
    q, k, v = _qkv(1, 1, 8, 4, 4)
    np.savez(tmp_path / "in.npz", Q=q[0, 0], K=k[0, 0], V=v[0, 0])
    base = ["sim", CASCADE, "--config", "tiny-flow", "--inputs", str(tmp_path / "in.npz"), "--out",
            str(tmp_path / "o.npz"), "--native"]
    for extra, msg in [(["--clamp", "3"], "clamp must be one of"),
                       (["--window", "2"], "takes no window")]:
        assert fusemax(base + extra) == 2
        assert msg in capsys.readouterr().err
    assert fusemax(["sim", "attention-1pass", "--clamp", "1"] + base[2:]) == 2
    assert "clamp: options of the attention variants" in capsys.readouterr().err
    assert not (tmp_path / "o.npz").exists()


def test_simulate_with_the_executor_as_rtl(monkeypatch):
    """simulate(cascade=flowformer-causal) end to end with the executor standing in for the RTL:
    compiled with the clamp, compared with the golden on the P real queries, flags and counters
    as the schedule implies, error against flow_attention_causal, the summary text."""
    import fusemax.sim.attention as A
    from fusemax.sw.compiler import buffer_bytes
    from rtl_checks import check_report

    def run_program(config, program, **kw):
        ex = execute(config, program.image, program.sched_base)
        counters = {**dict.fromkeys(A.CSR_NAMES, 0), **ex.counts, "cycles": 1000,
                    "mem_lines_read": ex.lines_read + program.layout.sched_lines, "flow_busy": 900,
                    "config_tag": sf.config_tag(config.digest())}
        return {"counters": counters, "output_codes": program.decode_output(ex.image),
                "error": ex.error, "timeout": False, "built": False, "mode": kw.get("mode"),
                "sim_cycles_per_s": None, "waves": None, "waves_info": None, "build_dir": "",
                **dict.fromkeys(("verilog_s", "build_s", "run_s", "sim_wall_s"), 0.0)}

    monkeypatch.setattr(A, "run_program", run_program)
    monkeypatch.setattr(A, "design_buffers", buffer_bytes)
    q, k, v = _qkv(1, 2, 11, 6, 3, seed=5)
    r = A.simulate(TINY, q, k, v, cascade=CASCADE, clamp=5, mode="native")
    check_report(r)
    assert r["cascade"] == CASCADE and r["causal"] and r["scale"] == 1.0 and r["model"] is None
    assert r["variant"]["clamp"] == 5.0 and r["variant"]["flow_tokens"] == 22
    assert r["busy"]["flow"] == 900 and r["tiling"]["flow_tokens"] == 22
    assert r["golden_error"]["max_abs"] < 5e-3 and r["error"] == r["golden_error"]
    text = A.summary_text(r)
    assert "22 tokens on the flow engine" in text and "flow engine busy 900" in text
    assert "bit-exact with the golden model (flowformer-causal)" in text


# ---------------------------------------------------------------- non-causal golden

@pytest.mark.parametrize("P,M,E,F,variant,clamp", [
    (12, 20, 4, 6, "core", 1.0),        # P != M: a wrong P/M factor would show
    (64, 64, 16, 16, "core", 1.0),      # the clamp binds for part of the keys
    (64, 64, 16, 16, "timeseries", None),
    (33, 17, 8, 5, "timeseries", None),
])
def test_flowformer_golden_against_float64(P, M, E, F, variant, clamp):
    rng = np.random.default_rng(P + M)
    q, k, v = (rng.standard_normal((1, 2, P, E)), rng.standard_normal((1, 2, M, E)),
               rng.standard_normal((1, 2, M, F)))
    g = G.flowformer_golden(q, k, v, preset("small"), clamp=clamp)
    ref = V.flow_attention(q, k, v, variant)
    err = error_stats(g.out, ref)
    assert err["rel_rms"] < 2e-3 and err["max_abs"] < 1e-3, err
    assert g.out_codes.shape == (1, 2, P, F) and g.div_by_zero == 0
    assert not any(g.saturation.values())


def test_flowformer_golden_clamp_matters():
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((1, 1, 64, 16)) for _ in range(3))
    clamped = G.flowformer_golden(q, k, v, preset("small"), clamp=1.0)
    free = G.flowformer_golden(q, k, v, preset("small"), clamp=None)
    # the ±1 clamp binds on some keys: the outputs differ, each closer to its own reference
    assert not np.array_equal(clamped.out_codes, free.out_codes)
    for g, variant, other in ((clamped, "core", "timeseries"), (free, "timeseries", "core")):
        own = np.abs(g.out - V.flow_attention(q, k, v, variant)).max()
        assert own < np.abs(g.out - V.flow_attention(q, k, v, other)).max()
