"""Attention variants on the RTL (fusemax.sw.rtl_variants, docs/variants.md "On the RTL"):
softmax-1 and the key / key+value bias as a prepended key, the sliding window as a tile list
with ``WINDOW``, routing as the diagonal tiles of the gathered layout.

Without Verilator: the compiler's tile lists equal ``tiles_touched`` and ``WINDOW`` is emitted
(only for a window), patterns the mask cannot express are refused, the schedule executor (the
software model of every instruction, WINDOW included) equals each variant's bit-exact golden,
and bad options give errors naming them. With Verilator (``tiny``, the native harness; one
cocotb run): every mechanism bit-exact against its golden, on shapes that are not multiples of
the array, with the counters the schedule determines."""

from __future__ import annotations

import numpy as np
import pytest

from fusemax.cli import main as fusemax
from fusemax.config import FuseMaxConfig, preset
from fusemax.errors import FuseMaxError
from fusemax.sw import golden_variants as G
from fusemax.sw import variants as V
from fusemax.sw.compiler import Shape, compile_attention, compile_schedule
from fusemax.sw.executor import execute
from fusemax.sw.patterns import Band, Causal, Dense, Routing, sliding_window, tiles_touched
from fusemax.sw.rtl_variants import RTL_VARIANTS, prepare
from workloads import random_attention
from rtl_checks import check_report

TINY = preset("tiny")


def _qkv(B, H, P, M, E, F, seed=0):
    return random_attention((B, H, M, P, E, F), seed)


def _bias(shape, seed=7):
    return np.random.default_rng(seed).normal(size=shape)


# (cascade, (B, H, P, M, E, F), options): P, M not multiples of 4; P = M + 1 (the causal edge),
# P > M (local: queries that see no key), P != M (routing: more queries than keys)
CASES = [
    ("attention-softmax1", (1, 2, 12, 11, 5, 3), {"causal": True}),
    ("attention-softmax1", (1, 1, 9, 14, 5, 3), {}),
    ("attention-kbias", (1, 1, 10, 10, 6, 4), {"causal": True, "k_bias": _bias(6)}),
    ("attention-kvbias", (2, 1, 7, 13, 6, 4),
     {"causal": True, "k_bias": _bias((2, 1, 6)), "v_bias": _bias(4, 8)}),
    ("attention-local", (1, 1, 23, 23, 5, 3), {"window": 6}),
    ("attention-local", (1, 2, 13, 21, 5, 3), {"window": 3}),
    ("attention-local", (1, 1, 21, 13, 5, 3), {"window": 5}),
    ("attention-routing", (1, 2, 32, 32, 6, 4), {"clusters": 4}),
    ("attention-routing", (1, 1, 30, 26, 6, 4), {"clusters": 3, "cluster_size": 8}),
]
IDS = [f"{c}-{'x'.join(map(str, s[2:4]))}" for c, s, _ in CASES]


def _tiles(sched):
    """(query block, chunk) of every TILE, from the instructions (first=1 opens a block)."""
    out, block = [], -1
    blocks = [i.args["p_base"] for i in sched.instructions if i.op == "LDQ"]
    p_of = iter(blocks)
    for ins in sched.instructions:
        if ins.op == "TILE":
            if ins.args["first"]:
                block = next(p_of)
            out.append((block // sched.layout.cols, ins.args["m_base"] // sched.layout.rows))
        elif ins.op == "AV" and ins.args["first"]:
            next(p_of)
    return out


# ------------------------------------------------------------------ the compiler (no Verilator)

@pytest.mark.parametrize("cfg, pattern, M, P", [
    (TINY, sliding_window(6), 23, 23), (TINY, sliding_window(3), 21, 13),
    (TINY, sliding_window(5), 13, 21), (preset("rect"), sliding_window(9), 30, 17),
    (TINY, Routing.uniform(4, 8), 32, 32), (preset("wide"), Routing.uniform(2, 8), 16, 16),
])
def test_compiler_runs_the_tiles_touched_and_emits_window(cfg, pattern, M, P):
    s = compile_schedule(cfg, Shape(1, 1, M, P, 4, 3), pattern=pattern)
    want = tiles_touched(pattern, M, P, cfg.rows, cfg.cols)
    assert _tiles(s) == want and s.tiles == len(want)
    assert s.tiles_skipped == -(-P // cfg.cols) * -(-M // cfg.rows) - len(want)
    ops = [i.op for i in s.instructions]
    # the K/V chunk each TILE reads was loaded from that chunk's region
    loaded = {}
    for ins in s.instructions:
        if ins.op == "LDKV":
            loaded[ins.args["slot"]] = ins.args["addr"]
        elif ins.op == "TILE":
            j = ins.args["m_base"] // cfg.rows
            assert loaded[ins.args["slot"]] == s.layout.kv_addr(0, 0, j)
    causal = s.instructions[ops.index("CAUSAL")].args["enable"]
    if isinstance(pattern, Band):
        assert ops[3:5] == ["CAUSAL", "WINDOW"] and causal == 1
        assert s.instructions[4].args == {"W": pattern.before + 1} and s.window == pattern.before + 1
    else:
        assert "WINDOW" not in ops and causal == 0 and s.window == 0
    assert "; pattern " in s.listing()
    assert len(ops) == 5 + int("WINDOW" in ops) + 2 * ops.count("AV") + 2 * s.tiles


def test_dense_and_causal_patterns_give_the_plain_schedules():
    shape = Shape(2, 1, 21, 13, 5, 3)
    for pattern, causal in ((Dense(), False), (Causal(), True)):
        a = compile_schedule(TINY, shape, causal=causal)
        b = compile_schedule(TINY, shape, pattern=pattern)
        assert a.words == b.words and b.window == 0 and b.pattern == repr(pattern)
        assert "WINDOW" not in [i.op for i in a.instructions]


def test_patterns_the_mask_cannot_express_are_refused():
    shape = Shape(1, 1, 24, 24, 4, 4)
    with pytest.raises(FuseMaxError, match="straddle two clusters"):
        compile_schedule(TINY, shape, pattern=Routing.uniform(4, 6))
    with pytest.raises(FuseMaxError, match="needs a mask the hardware does not have"):
        compile_schedule(TINY, shape, pattern=Band(3, 2))
    with pytest.raises(FuseMaxError, match="not both"):
        compile_schedule(TINY, shape, causal=True, pattern=sliding_window(4))
    with pytest.raises(FuseMaxError, match="runs on the RTL as attention-1pass after the host"):
        compile_schedule(TINY, shape, cascade="attention-local")


# ------------------------------------------------------------------ the executor (no Verilator)

@pytest.mark.parametrize("cascade, shape, opts", CASES, ids=IDS)
def test_executor_equals_the_variant_golden(cascade, shape, opts):
    B, H, P, M, E, F = shape
    q, k, v = _qkv(*shape)
    run = prepare(cascade, q, k, v, rows=TINY.rows, cols=TINY.cols, **opts)
    prog = compile_attention(TINY, run.q, run.k, run.v, causal=run.causal, pattern=run.pattern)
    gold = run.golden(TINY, prog.scale)
    ex = execute(TINY, prog.image, prog.sched_base)
    out = prog.decode_output(ex.image)
    assert np.array_equal(out, run.golden_codes(gold))
    assert ex.tiles == prog.schedule.tiles
    assert ("div_by_zero" in ex.error_flags) == bool(gold.div_by_zero)
    fin = run.finish(TINY.numerics.out.to_float(out))
    assert fin.shape == (B, H, P, F)
    assert np.max(np.abs(fin - run.reference(prog.scale))) < 5e-3


def test_executor_window_on_a_rectangular_array():
    cfg = FuseMaxConfig("r3x5", 3, 5)
    q, k, v = _qkv(1, 1, 17, 22, 4, 3, seed=3)
    for w in (1, 4, 30):
        prog = compile_attention(cfg, q, k, v, pattern=sliding_window(w))
        out = prog.decode_output(execute(cfg, prog.image).image)
        assert np.array_equal(out, G.local_golden(q, k, v, cfg, window=w).out_codes), w


def test_prepended_key_differs_from_the_state_form_by_at_most_one_lsb():
    q, k, v = _qkv(1, 2, 40, 40, 8, 8, seed=5)
    kb, vb = _bias((1, 2, 8)), _bias((1, 2, 8), 9)
    a = G.kv_bias_golden(q, k, v, kb, vb, TINY, method="state").out_codes
    b = G.kv_bias_golden(q, k, v, kb, vb, TINY, method="prepend").out_codes
    assert 0 < np.count_nonzero(a != b) < a.size // 20 and np.max(np.abs(a - b)) <= 1


def test_kmeans_init_means():
    q, k, _ = _qkv(2, 3, 20, 24, 6, 4, seed=11)
    mu = V.kmeans_init_means(q, k, 4, seed=1)
    assert mu.shape == (3, 4, 6) and np.allclose(np.linalg.norm(mu, axis=-1), 1.0)
    assert np.array_equal(mu, V.kmeans_init_means(q, k, 4, seed=1))
    with pytest.raises(FuseMaxError, match="clusters must be in 1..88"):
        V.kmeans_init_means(q, k, 89)


@pytest.mark.parametrize("cascade, shape, opts, msg", [
    ("attention-local", (1, 1, 8, 8, 4, 4), {}, "needs the window W"),
    ("attention-local", (1, 1, 8, 8, 4, 4), {"window": 0}, "window must be an integer >= 1"),
    ("attention-local", (1, 1, 8, 8, 4, 4), {"window": 2, "clusters": 2},
     "takes no clusters .clusters is for attention-routing"),
    ("attention-routing", (1, 1, 8, 8, 4, 4), {}, "needs the number of clusters"),
    ("attention-routing", (1, 1, 24, 24, 4, 4), {"clusters": 4},
     "cluster_size w = 6 must be a multiple of rows = 4 and cols = 4"),
    ("attention-routing", (1, 1, 24, 24, 4, 4), {"clusters": 2, "cluster_size": 28},
     "exceeds min.P, M. = 24"),
    ("attention-routing", (1, 1, 8, 8, 4, 4), {"clusters": 2, "causal": True}, "non-causal"),
    ("attention-routing", (1, 1, 8, 8, 4, 4), {"clusters": 2, "means": np.ones((3, 4))},
     r"means must be \(C, E\) = \(2, 4\)"),
    ("attention-kbias", (1, 1, 8, 8, 4, 4), {}, "needs the bias key k_bias"),
    ("attention-kvbias", (1, 1, 8, 8, 4, 4), {"k_bias": np.ones(4)}, "needs the bias value v_bias"),
    ("attention-kbias", (1, 1, 8, 8, 4, 4), {"k_bias": np.ones(3)}, "k_bias must have shape"),
    ("attention-softmax1", (1, 1, 8, 8, 4, 4), {"k_bias": np.ones(4)}, "takes no k_bias"),
    ("attention-softmax1", (1, 1, 10, 8, 4, 4), {"causal": True}, r"needs P <= M \+ 1"),
])
def test_bad_options_are_named(cascade, shape, opts, msg):
    q, k, v = _qkv(*shape)
    with pytest.raises(FuseMaxError, match=msg):
        prepare(cascade, q, k, v, rows=4, cols=4, **opts)


def test_simulate_refuses_variant_options_for_plain_attention():
    from fusemax.sim.attention import simulate

    q, k, v = _qkv(1, 1, 4, 4, 4, 4)
    with pytest.raises(FuseMaxError, match="window: options of the attention variants"):
        simulate(TINY, q, k, v, window=3)


def test_cli_names_bad_variant_options_before_building(tmp_path, capsys):
    q, k, v = _qkv(1, 1, 24, 24, 4, 4)
    np.savez(tmp_path / "in.npz", Q=q[0, 0], K=k[0, 0], V=v[0, 0])
    base = ["sim", "--config", "tiny", "--inputs", str(tmp_path / "in.npz"), "--out",
            str(tmp_path / "o.npz"), "--native"]
    for argv, msg in [
        (["attention-local"], "needs the window W"),
        (["attention-local", "--window", "0"], "window must be an integer >= 1, got 0"),
        (["attention-routing", "--clusters", "4"], "cluster_size w = 6 must be a multiple"),
        (["attention-kbias"], "needs the bias key k_bias"),
        (["attention-1pass", "--clusters", "2"], "clusters: options of the attention variants"),
        (["sigmoid-norm"], "sigmoid-norm needs a design with the sigmoid unit"),
        (["flowformer"], "flowformer cannot be mapped"),
    ]:
        assert fusemax(base[:1] + argv + base[1:]) == 2, argv
        assert msg in capsys.readouterr().err, argv
    assert not (tmp_path / "o.npz").exists()


# ------------------------------------------------------------------ on the RTL (Verilator)

def _sim(cascade, shape, opts, **kw):
    pytest.importorskip("fusemax.hw.verilog", reason="the hardware generator is not available")
    from fusemax.sim.attention import simulate

    return simulate(TINY, *_qkv(*shape), cascade=cascade, **opts, **kw)


@pytest.mark.verilator
@pytest.mark.parametrize("cascade, shape, opts", CASES, ids=IDS)
def test_variant_bit_exact_on_the_rtl(cascade, shape, opts):
    r = _sim(cascade, shape, opts, mode="native")
    check_report(r)
    var = r["variant"]
    assert r["cascade"] == cascade and var["tiles_run"] == r["counters"]["tiles"]
    assert r["output"].shape == shape[:3] + (shape[5],)
    assert r["golden_error"]["max_abs"] < 5e-3
    if cascade == "attention-local":
        assert var["window"] == opts["window"] and r["causal"]
    if cascade in ("attention-local", "attention-routing"):
        assert var["tiles_skipped_fraction"] > 0.3 and r["model"] is None


@pytest.mark.verilator
def test_local_under_cocotb_equals_native():
    shape, opts = (1, 1, 18, 18, 5, 3), {"window": 7}
    c = _sim("attention-local", shape, opts)
    n = _sim("attention-local", shape, opts, mode="native")
    check_report(c)
    assert c["mode"] == "cocotb" and np.array_equal(c["output_codes"], n["output_codes"])
    assert c["cycles"] == n["cycles"]


@pytest.mark.verilator
def test_cli_sim_routing_writes_the_scattered_output_and_the_indices(tmp_path, capsys):
    pytest.importorskip("fusemax.hw.verilog", reason="the hardware generator is not available")
    q, k, v = _qkv(1, 1, 32, 32, 6, 4, seed=4)
    np.savez(tmp_path / "in.npz", Q=q[0, 0], K=k[0, 0], V=v[0, 0])
    rc = fusemax(["sim", "attention-routing", "--clusters", "2", "--config", "tiny", "--inputs",
                  str(tmp_path / "in.npz"), "--out", str(tmp_path / "o.npz"), "--native"])
    text = capsys.readouterr().out
    assert rc == 0 and "bit-exact with the golden model (routing)" in text
    assert "tiles run 32 of 64" in text
    out = np.load(tmp_path / "o.npz")
    assert out["O"].shape == (32, 4) and out["O_codes"].shape == (32, 4)
    assert out["index_q"].shape == out["index_k"].shape == (2, 16)
    mu = V.kmeans_init_means(q, k, 2)
    assert np.abs(out["O"] - V.routing_attention(q, k, v, mu, 16)[0, 0]).max() < 5e-3
    assert set(RTL_VARIANTS) >= {"attention-routing", "attention-local"}
