"""Attention variants ("Beyond softmax"): the built-in cascades against float64 references written
from the official code (fusemax.sw.variants), their pass counts, the tile lists of local and
routed attention against brute force, and the bit-exact models against float64 and against
each other where the arithmetic must coincide."""

import json

import numpy as np
import pytest

from fusemax.cli import main
from fusemax.config import FuseMaxConfig, NumericsConfig, preset
from fusemax.errors import FuseMaxError
from fusemax.hw.formats import FixedFormat
from fusemax.sw import golden_variants as G
from fusemax.sw import numerics as nm
from fusemax.sw import variants as V
from fusemax.sw.cascade.check import check_cascade
from fusemax.sw.cascade.syntax import CascadeError, parse_cascade
from fusemax.sw.golden import attention_1pass, causal_mask, error_stats, quantize_inputs
from fusemax.sw.library import load_cascade
from fusemax.sw.passes import analyse_passes
from fusemax.sw.patterns import (
    Band, BlockLocal, Causal, Dense, Routing, sliding_window, tile_plan, tile_stats, tiles_touched,
)
from fusemax.sw.reference import evaluate
from test_sw_reference import rel_err  # tests/ is on sys.path
from workloads import random_attention as rand

# (B, H, M, P, E, F): odd sizes; the last has more queries than keys (causal rows that see nothing)
SHAPES = [(2, 1, 23, 19, 5, 7), (1, 2, 37, 37, 8, 3), (1, 1, 9, 13, 3, 2)]
CHUNKS = [1, 4, 16]


def run(name, arrays, **params):
    return evaluate(load_cascade(name), arrays, params=params or None)


# --------------------------------------------------------------------------- pass counts

PASSES = {
    "attention-softmax1": {"M": 1, "P": 1}, "attention-kbias": {"M": 1, "P": 1},
    "attention-kvbias": {"M": 1, "P": 1}, "sigmoid-nonorm": {"M": 1, "P": 1},
    "sigmoid-norm": {"M": 1, "P": 1}, "attention-entropy": {"M": 1, "P": 1},
    "act-calibration": {"M": 3, "P": 2}, "flowformer": {"M": 2, "P": 2},
    "flowformer-causal": {"M": 1}, "attention-local": {"M": 1, "P": 1},
    "attention-routing": {"M": 1, "P": 1, "C": 1},
}


@pytest.mark.parametrize("name, expected", PASSES.items())
def test_pass_counts(name, expected):
    analysis = analyse_passes(load_cascade(name))
    assert {r: analysis[r].passes for r in expected} == expected


def test_act_needs_the_final_normaliser_then_the_whole_sink_set():
    chain = analyse_passes(load_cascade("act-calibration"))["M"].chain
    assert [(x.number, x.einsum, x.reads) for x in chain] == [(2, "A", "LSE"), (3, "S", "FIRST")]
    assert chain[1].op == "min"


def test_flowformer_reads_keys_and_queries_twice_each():
    """The analysis says 2 passes over M and 2 over P (docs/variants.md explains why the spec's
    3 counts phases that read both). An explicit streaming order K, Q, K, Q -- each phase one
    traversal in chunks of 5 tokens -- computes the official output."""
    q, k, v = (x[0, 0] for x in rand((1, 1, 23, 17, 6, 4), seed=5))
    eps = 1e-6
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    chunks = lambda n: [slice(i, min(n, i + 5)) for i in range(0, n, 5)]  # noqa: E731
    ks = sum(sig(k[c]).sum(0) for c in chunks(23))                          # K pass 1
    qs, qi = 0, 0                                                           # Q pass 1
    for c in chunks(17):
        fq = sig(q[c])
        qs = qs + fq.sum(0)
        qi = qi + (fq / ((fq + eps) @ (ks + eps))[:, None]).sum(0)
    ko, zc, kv = 0, 0, 0                                                    # K pass 2
    for c in chunks(23):
        fk = sig(k[c])
        ko = ko + (fk / ((fk + eps) @ (qs + eps))[:, None]).sum(0)
        ec = np.exp(np.clip((fk + eps) @ (qi + eps), -1, 1))
        zc = zc + ec.sum()
        kv = kv + fk.T @ (v[c] * ec[:, None])
    out = np.zeros((17, 4))                                                 # Q pass 2
    for c in chunks(17):
        fq = sig(q[c])
        si = 1 / ((fq + eps) @ (ks + eps))
        al = sig(((fq + eps) @ (ko + eps)) * 17 / 23)
        out[c] = (fq @ kv) * (si * al * 23 / zc)[:, None]
    assert rel_err(out, V.flow_attention(q, k, v)) < 1e-12


# --------------------------------------------------------------------------- cascades vs references

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("m0", CHUNKS)
def test_softmax1_and_key_bias(shape, m0):
    q, k, v = rand(shape)
    b, h, e, f = shape[0], shape[1], shape[4], shape[5]
    rng = np.random.default_rng(1)
    kb, vb = rng.standard_normal((b, h, e)), rng.standard_normal((b, h, f))
    out = run("attention-softmax1", {"Q": q, "K": k, "V": v}, M0=m0).outputs["O"]
    assert rel_err(out, V.softmax1_attention(q, k, v)) < 1e-9
    out = run("attention-kbias", {"Q": q, "K": k, "V": v, "KB": kb}, M0=m0).outputs["O"]
    assert rel_err(out, V.kv_bias_attention(q, k, v, kb)) < 1e-9
    out = run("attention-kvbias", {"Q": q, "K": k, "V": v, "KB": kb, "VB": vb}, M0=m0).outputs["O"]
    assert rel_err(out, V.kv_bias_attention(q, k, v, kb, vb)) < 1e-9


def test_softmax1_is_a_zero_bias_key_and_bias_only_rows_give_v_star():
    q, k, v = rand((1, 2, 9, 13, 3, 2), seed=2)
    zero = np.zeros((1, 2, 3))
    assert rel_err(V.softmax1_attention(q, k, v), V.kv_bias_attention(q, k, v, zero)) < 1e-12
    vb = np.array([0.5, -2.0])
    out = V.kv_bias_attention(q, k, v, np.ones(3), vb)
    # P - M = 4 queries see no real key: only the bias token, so their output is v*.
    assert np.allclose(out[:, :, :4], vb) and not np.allclose(out[:, :, 4:], vb)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("normalize", [False, True])
def test_sigmoid_attention(shape, normalize):
    q, k, v = rand(shape, seed=3)
    name = "sigmoid-norm" if normalize else "sigmoid-nonorm"
    for m0 in CHUNKS:
        out = run(name, {"Q": q, "K": k, "V": v}, M0=m0).outputs["O"]
        assert rel_err(out, V.sigmoid_attention(q, k, v, normalize)) < 1e-9


def test_sigmoid_chunks_are_independent():
    """No max, no correction factor: each chunk's contribution is the same whatever came first."""
    q, k, v = rand((1, 1, 12, 12, 4, 3), seed=4)
    whole = V.sigmoid_attention(q, k, v, False, causal=False)
    parts = sum(V.sigmoid_attention(q, k[:, :, s], v[:, :, s], False, causal=False, scale=0.5)
                for s in (slice(8, 12), slice(0, 4), slice(4, 8)))
    assert rel_err(parts, whole) < 1e-12


@pytest.mark.parametrize("shape", SHAPES)
def test_entropy_cascade_matches_the_official_formula(shape):
    q, k, v = rand(shape, seed=6)
    q[:, :, ::3] *= 10  # near-one-hot rows probe the cancellation in RM + log RD - RT/RD
    for m0 in CHUNKS:
        result = run("attention-entropy", {"Q": q, "K": k, "V": v}, M0=m0)
        h = result.outputs["H"]
        assert rel_err(h, V.attention_entropy(q, k, eps=0.0)) < 1e-9
        # official: -nansum(A log(A + 1e-9)); 0 <= A (log(A + eps) - log A) <= eps per key
        official = V.attention_entropy(q, k)
        assert np.all(np.abs(h - official) <= shape[2] * 1e-9)
        assert rel_err(result.outputs["O"], V.masked_softmax_attention(q, k, v, Causal())) < 1e-9


def test_entropy_regulariser_penalises_only_outside_the_margin():
    ent = np.array([[[0.1, 2.0, 1.0]]])  # (B=1, H=1, P=3); log 8 = 2.079, margin 0.416
    loss = V.entropy_regularization_loss([ent], [0.5], context_size=8)
    dev = ent - 0.5 * np.log(8)
    expected = 1e-5 * np.sum(dev[np.abs(dev) > 0.2 * np.log(8)] ** 2)
    assert loss == pytest.approx(expected) and loss > 0


def _act_inputs(T, seed, sink=True):
    q, k, v = rand((1, 2, T, T, 6, 5), seed=seed)
    if sink:  # queries share a direction u; key 0 (BOS) and key 9 point along it
        u = np.ones(6) / np.sqrt(6)
        q += 1.5 * u
        k[:, :, 0] += 4 * u
        k[:, :, 9] += 3 * u
    return q, k, v


@pytest.mark.parametrize("T, m0", [(21, 4), (40, 7), (33, 16)])
def test_act_calibration(T, m0):
    q, k, v = _act_inputs(T, seed=T)
    result = run("act-calibration", {"Q": q, "K": k, "V": v}, M0=m0)
    ref = V.act_calibration(q, k, v)
    assert rel_err(result.outputs["O"], ref["out"]) < 1e-9
    found = [[list(np.nonzero(result.tensors["S"].values[b, h])[0]) for h in range(2)] for b in range(1)]
    assert found == [[list(s) for s in row] for row in ref["sinks"]]
    assert any(len(s) for row in ref["sinks"] for s in row)  # the calibration did something
    assert all(0 not in s for row in ref["sinks"] for s in row)  # the first sink is kept
    assert rel_err(result.tensors["ALPHA"].values, ref["alpha"]) < 1e-9


def test_act_without_sinks_is_plain_attention():
    q, k, v = _act_inputs(16, seed=3, sink=False)
    q *= 0.1  # flat rows: no column average above 0.1 except the last keys
    ref = V.act_calibration(q, k, v, threshold=10.0)  # nothing passes
    plain = V.masked_softmax_attention(q, k, v, Causal())
    assert rel_err(ref["out"], plain) < 1e-12


@pytest.mark.parametrize("shape", [(2, 1, 23, 19, 5, 7), (1, 2, 20, 12, 4, 6), (1, 1, 64, 64, 16, 16)])
def test_flowformer(shape):
    q, k, v = rand(shape, seed=7)
    out = run("flowformer", {"Q": q, "K": k, "V": v}).outputs["O"]
    assert rel_err(out, V.flow_attention(q, k, v)) < 1e-9


@pytest.mark.parametrize("n", [1, 16, 33])
def test_flowformer_causal(n):
    q, k, v = rand((2, 1, n, n, 5, 3), seed=8)
    out = run("flowformer-causal", {"Q": q, "K": k, "V": v}).outputs["O"]
    assert rel_err(out, V.flow_attention_causal(q, k, v)) < 1e-9


def test_flowformer_variants():
    q, k, v = rand((1, 2, 30, 30, 8, 4), seed=9)
    core = V.flow_attention(q, k, v)
    assert rel_err(V.flow_attention(q, k, v, "cv"), core) < 1e-4  # only extra 1e-6 terms
    # the conserved source stays below 5 here, so the +-5 and +-10 clamps never bind
    assert rel_err(V.flow_attention_causal(q, k, v, "nlp"), V.flow_attention_causal(q, k, v, "rl")) < 1e-15
    assert rel_err(V.flow_attention_causal(q, k, v, "nlp"), V.flow_attention_causal(q, k, v)) > 1e-6
    assert np.all(np.isfinite(V.flow_attention(q, k, v, "lra")))
    assert rel_err(V.flow_attention(q, k, v, "timeseries"), core) > 1e-6  # the +-1 clamp binds
    with pytest.raises(FuseMaxError, match="causal only"):
        V.flow_attention(q, k, v, "nlp")
    with pytest.raises(FuseMaxError, match="unknown Flowformer variant"):
        V.flow_attention_causal(q, k, v, "nope")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("w", [1, 3, 8, 100])
def test_local_cascade(shape, w):
    q, k, v = rand(shape, seed=10)
    for m0 in CHUNKS:
        out = run("attention-local", {"Q": q, "K": k, "V": v}, M0=m0, W=w).outputs["O"]
        assert rel_err(out, V.masked_softmax_attention(q, k, v, sliding_window(w))) < 1e-9
    if w == 1:  # each query sees only its aligned key: the output is that key's value
        b, h, m, p = shape[:4]
        seen = np.arange(p) + m - p
        ok = seen >= 0
        assert np.allclose(out[:, :, ok], v[:, :, seen[ok]])


@pytest.mark.parametrize("window, causal, exact", [(4, True, False), (4, False, False),
                                                   (4, True, True), (4, False, True),
                                                   (8, True, False)])
def test_local_patterns_match_lucidrains(window, causal, exact):
    q, k, v = rand((1, 2, 32, 32, 6, 5), seed=11)
    official = V.lucidrains_local_attention(q, k, v, window, causal=causal, exact_windowsize=exact)
    if exact:
        pattern = Band(window, 0) if causal else Band(window, window)
    else:
        pattern = BlockLocal(window, 1, 0 if causal else 1, causal)
    assert rel_err(V.masked_softmax_attention(q, k, v, pattern), official) < 1e-12


@pytest.mark.parametrize("n, clusters, w, m0", [(32, 4, 8, 3), (64, 4, 16, 16), (30, 3, 7, 4)])
def test_routing_pipeline(n, clusters, w, m0):
    """Host routing, gather, the cascade per cluster, scatter = KmeansAttention.forward."""
    q, k, v = rand((2, 2, n, n, 8, 6), seed=12)
    mu = np.random.default_rng(13).standard_normal((2, clusters, 8))
    iq, ik = V.route_topw(q, k, mu, w)
    gq, gk, gv = (V.gather_clusters(x, i) for x, i in ((q, iq), (k, ik), (v, ik)))
    out = run("attention-routing", {"Q": gq, "K": gk, "V": gv}, M0=m0).outputs["O"]
    routed = V.scatter_mean(out, iq, n)
    assert rel_err(routed, V.routing_attention(q, k, v, mu, w)) < 1e-9
    counts = np.zeros(n)
    np.add.at(counts, iq[0, 0].ravel(), 1)
    assert np.all(routed[0, 0, counts == 0] == 0)  # tokens no cluster took get 0


# --------------------------------------------------------------------------- tiles

PATTERNS = [Dense(), Causal(), sliding_window(1), sliding_window(5), Band(3, 2), Band(0, 7),
            BlockLocal(4, 1, 0, True), BlockLocal(6, 2, 1, False),
            Routing((5, 0, 9, 6), (4, 7, 3, 6)), Routing.uniform(3, 8, causal=True)]


def brute_tiles(pattern, M, P, rows, cols):
    mask = pattern.dense(P, M)
    out = []
    for i in range(-(-P // cols)):
        for j in range(-(-M // rows)):
            block = mask[i * cols:(i + 1) * cols, j * rows:(j + 1) * rows]
            if block.any():
                out.append((i, j, "full" if block.all() else "partial"))
    return out


@pytest.mark.parametrize("pattern", PATTERNS, ids=repr)
@pytest.mark.parametrize("rows, cols", [(1, 1), (4, 4), (3, 5), (8, 2)])
def test_tiles_touched_is_exactly_the_tiles_with_a_visible_pair(pattern, rows, cols):
    if isinstance(pattern, Routing):
        P, M = sum(pattern.q_sizes), sum(pattern.k_sizes)
        sizes = [(P, M)]
    elif isinstance(pattern, BlockLocal):
        sizes = [(24, 24), (23, 23)]
    else:
        sizes = [(24, 24), (13, 29), (29, 13)]
    for P, M in sizes:
        assert tile_plan(pattern, M, P, rows, cols) == brute_tiles(pattern, M, P, rows, cols)
        tiles = tiles_touched(pattern, M, P, rows, cols)
        stats = tile_stats(pattern, M, P, rows, cols)
        assert stats["touched"] == len(tiles) == stats["full"] + stats["partial"]
        assert stats["skipped_fraction"] == pytest.approx(1 - len(tiles) / stats["tiles"])
        assert stats["scores_kept"] == int(pattern.dense(P, M).sum())


def test_tile_counts_of_the_routing_transformer_configs():
    """docs: variants.md §5.6 enumerated these for N = 8192 (pg19/enwik8 8k)."""
    n, t = 8192, 256
    local = BlockLocal(256, 1, 0, True)  # block 256, one block of flange, causal
    assert len(tiles_touched(local, n, n, t, t)) == 63
    assert len(tiles_touched(Causal(), n, n, t, t)) == 528
    assert len(tiles_touched(Routing.uniform(16, 512), n, n, t, t)) == 16 * 4
    assert len(tiles_touched(Routing.uniform(16, 512, causal=True), n, n, t, t)) == 16 * 3


def test_pattern_errors():
    with pytest.raises(FuseMaxError, match="window must be an integer >= 1"):
        sliding_window(0)
    with pytest.raises(FuseMaxError, match="self-attention"):
        tiles_touched(BlockLocal(4), 16, 12, 4, 4)
    with pytest.raises(FuseMaxError, match="gathers 12 queries"):
        tiles_touched(Routing.uniform(3, 4), 16, 16, 4, 4)
    with pytest.raises(FuseMaxError, match="cannot look forward"):
        BlockLocal(4, 1, 1, causal=True)
    with pytest.raises(FuseMaxError, match="rows must be"):
        tiles_touched(Causal(), 16, 16, 0, 4)
    with pytest.raises(FuseMaxError, match="2 query clusters but 3 key clusters"):
        Routing((1, 2), (1, 2, 3))


# --------------------------------------------------------------------------- bit-exact models

CFG = preset("small")  # 8 x 8, fx16


@pytest.mark.parametrize("causal", [False, True])
def test_the_core_loop_is_the_plain_golden(causal):
    q, k, v = rand((2, 1, 45, 37, 16, 8), seed=20)
    mask = causal_mask(37, 45) if causal else None
    g = attention_1pass(q, k, v, CFG, mask=mask)
    qc, kc, vc, _ = quantize_inputs(q, k, v, CFG, 1 / 4)
    state, sat = G.fusemax_state(qc, kc, vc, CFG, mask)
    r = G._finish("core", state, sat, CFG, 0.25, 0, 0)
    assert np.array_equal(r.out_codes, g.out_codes)


def test_bias_state_equals_the_prepended_key_when_chunks_hold_one_key():
    q, k, v = rand((1, 2, 20, 17, 8, 4), seed=21)
    rng = np.random.default_rng(22)
    kb, vb = rng.standard_normal((1, 2, 8)), rng.standard_normal((1, 2, 4))
    one = FuseMaxConfig("rows1", 1, 4)
    a = G.kv_bias_golden(q, k, v, kb, vb, one, method="state")
    b = G.kv_bias_golden(q, k, v, kb, vb, one, method="prepend")
    assert np.array_equal(a.out_codes, b.out_codes)
    s = G.softmax1_golden(q, k, v, one)
    t = G.softmax1_golden(q, k, v, one, method="prepend")
    assert np.array_equal(s.out_codes, t.out_codes)


@pytest.mark.parametrize("method", ["state", "prepend"])
def test_softmax1_and_bias_goldens_are_accurate(method):
    q, k, v = rand((1, 2, 64, 64, 16, 16), seed=23)
    rng = np.random.default_rng(24)
    kb, vb = rng.standard_normal((1, 2, 16)), rng.standard_normal((1, 2, 16))
    r = G.softmax1_golden(q, k, v, CFG, method=method)
    assert error_stats(r.out, V.softmax1_attention(q, k, v))["rel_rms"] < 1.5e-3  # measured ~3e-4
    r = G.kv_bias_golden(q, k, v, kb, vb, CFG, method=method)
    assert error_stats(r.out, V.kv_bias_attention(q, k, v, kb, vb))["rel_rms"] < 1.5e-3
    assert not any(r.saturation.values())


def test_entropy_golden():
    q, k, v = rand((1, 2, 64, 64, 16, 16), seed=25)
    r = G.entropy_golden(q, k, v, CFG)
    ref_h = V.attention_entropy(q, k, eps=0.0)
    err = error_stats(r.extra["H"], ref_h)
    assert err["max_abs"] < 2e-3  # measured ~5e-4 nats (H's lsb is 2^-11)
    assert error_stats(r.out, V.masked_softmax_attention(q, k, v, Causal()))["rel_rms"] < 1.5e-3
    # the output is the plain causal golden's, bit for bit: RT only adds a register
    plain = attention_1pass(q, k, v, CFG, mask=causal_mask(64, 64))
    assert np.array_equal(r.out_codes, plain.out_codes)


def test_entropy_golden_of_queries_that_see_nothing_is_zero():
    q, k, v = rand((1, 1, 5, 9, 4, 2), seed=26)
    r = G.entropy_golden(q, k, v, CFG)
    assert np.all(r.extra["H"][..., :4] == 0) and r.div_by_zero >= 4


@pytest.mark.parametrize("window", [1, 9, 24])
def test_local_golden_skips_tiles_without_changing_a_bit(window):
    q, k, v = rand((1, 2, 45, 37, 16, 8), seed=27)
    skip = G.local_golden(q, k, v, CFG, window=window)
    full = G.local_golden(q, k, v, CFG, window=window, skip_tiles=False)
    assert np.array_equal(skip.out_codes, full.out_codes)
    assert skip.tiles == 2 * len(tiles_touched(sliding_window(window), 45, 37, 8, 8))
    assert skip.tiles < full.tiles == full.tiles_total
    mask = sliding_window(window).mask(37, 45)
    assert np.array_equal(skip.out_codes, attention_1pass(q, k, v, CFG, mask=mask).out_codes)
    ref = V.masked_softmax_attention(q, k, v, sliding_window(window))
    assert error_stats(skip.out, ref)["rel_rms"] < 1.5e-3


def test_routing_golden_is_the_per_cluster_golden():
    n, c, w = 64, 4, 16
    q, k, v = rand((1, 2, n, n, 8, 6), seed=28)
    mu = np.random.default_rng(29).standard_normal((2, c, 8))
    iq, ik = V.route_topw(q, k, mu, w)
    gq, gk, gv = (V.gather_clusters(x, i) for x, i in ((q, iq), (k, ik), (v, ik)))
    r = G.routing_golden(gq, gk, gv, CFG)
    per = attention_1pass(gq.reshape(1, 2 * c, w, 8), gk.reshape(1, 2 * c, w, 8),
                          gv.reshape(1, 2 * c, w, 6), CFG)
    assert np.array_equal(r.out_codes.reshape(per.out_codes.shape), per.out_codes)
    assert r.tiles == 2 * c * (w // 8) ** 2 and r.tiles_total == 2 * (n // 8) ** 2
    routed = V.scatter_mean(r.out, iq, n)
    assert error_stats(routed, V.routing_attention(q, k, v, mu, w))["rel_rms"] < 1.5e-3


@pytest.mark.parametrize("normalize", [False, True])
def test_sigmoid_golden(normalize):
    q, k, v = rand((1, 2, 64, 64, 16, 16), seed=30)
    cfg = CFG
    if not normalize:  # unnormalised outputs grow like sqrt(M): a wider output range
        cfg = FuseMaxConfig("small-out8", 8, 8, NumericsConfig(out=FixedFormat(16, 8)))
    r = G.sigmoid_golden(q, k, v, cfg, normalize)
    assert r.saturation["out"] == 0
    bound = 3e-3 if normalize else 5e-3
    assert error_stats(r.out, V.sigmoid_attention(q, k, v, normalize))["rel_rms"] < bound


def test_sigmoid_without_normalisation_saturates_the_default_output_and_says_so():
    q, k, v = rand((1, 1, 64, 64, 16, 16), seed=31)
    r = G.sigmoid_golden(q, k, v, CFG, False)
    ref = V.sigmoid_attention(q, k, v, False)
    assert r.saturation["out"] == int(np.count_nonzero(np.abs(ref) > CFG.numerics.out.max_value))


@pytest.mark.parametrize("n", [1, 33, 64])
def test_flowformer_causal_golden(n):
    q, k, v = rand((1, 2, n, n, 16, 8), seed=32)
    r = G.flowformer_causal_golden(q, k, v, CFG)
    ref = V.flow_attention_causal(q, k, v)
    assert error_stats(r.out, ref)["rel_rms"] < 2e-3  # measured ~3e-4
    assert not any(r.saturation.values()) and r.div_by_zero == 0


def test_operation_twins():
    nc = CFG.numerics
    x = np.arange(-(1 << 15), 1 << 15, 7, dtype=np.int64)  # score codes, log2 units
    sig, sat = G.sigmoid_codes(x, nc)
    ref = 1 / (1 + np.exp2(-x / 1024.0))
    assert not sat.any() and np.max(np.abs(nc.exp.to_float(sig) - ref)) < 1e-4
    codes = np.unique(np.geomspace(1, 2 ** 40, 5000).astype(np.int64))
    lg = G.log2_codes(codes, 15, nc.rounding)
    # polynomial 1.4e-5 + mantissa truncated to 16 bits (1.44 * 2^-16) + Horner rounding
    assert np.max(np.abs(lg / 2 ** 16 - (np.log2(codes) - 15))) < 1.4e-5 + 1.45 * 2 ** -16 + 2 ** -16
    q, s, z = G.divide_codes(np.array([7, -7, 5]), 4, np.array([2, 2, 0]), 0, FixedFormat(16, 8), nc)
    assert list(q) == [56, -56, 0] and list(z) == [False, False, True]  # 7/16 / 2 = 56/256
    with pytest.raises(FuseMaxError, match="62 bits"):
        G.divide_codes(np.array([1]), 0, np.array([1]), 40, FixedFormat(16, 30), nc, 40, 40)


def test_goldens_refuse_bad_inputs():
    q, k, v = rand((1, 1, 6, 5, 4, 3))
    with pytest.raises(FuseMaxError, match="P = M"):
        G.flowformer_causal_golden(q, k, v, CFG)
    with pytest.raises(FuseMaxError, match="needs a window or a pattern"):
        G.local_golden(q, k, v, CFG)
    with pytest.raises(FuseMaxError, match="method must be"):
        G.kv_bias_golden(q, k, v, np.zeros(4), None, CFG, method="nope")
    with pytest.raises(FuseMaxError, match=r"gathered arrays are \(B, H, C, w, dim\)"):
        G.routing_golden(q, k, v, CFG)
    with pytest.raises(FuseMaxError, match=r"k_bias must have shape \(4,\)"):
        G.kv_bias_golden(q, k, v, np.zeros(5), None, CFG)


def test_references_refuse_bad_inputs():
    q, k, v = rand((1, 1, 6, 5, 4, 3))
    with pytest.raises(FuseMaxError, match="P = M"):
        V.flow_attention_causal(q, k, v)
    with pytest.raises(FuseMaxError, match="T x T"):
        V.act_calibration(q, k, v)
    with pytest.raises(FuseMaxError, match=r"k_bias must have shape \(E,\) = \(4,\)"):
        V.kv_bias_attention(q, k, v, np.zeros(3))
    with pytest.raises(FuseMaxError, match="Q has E = 4 but K has E = 2"):
        V.sigmoid_attention(q, k[..., :2], v, True)
    with pytest.raises(FuseMaxError, match="holds NaN"):
        V.softmax1_attention(q * np.nan, k, v)
    with pytest.raises(FuseMaxError, match="window 9 must be in"):
        V.route_topw(q, k, np.ones((2, 4)), 9)
    with pytest.raises(FuseMaxError, match="divisible by window size"):
        V.lucidrains_local_attention(q[:, :, :, :], k[:, :, :5], v[:, :, :5], 2)


# --------------------------------------------------------------------------- the language

HEAD = "cascade t\ninput A[K]\noutput Z[K]\n"


def test_idx_clamp_step_select():
    text = HEAD + ("Extended Einsums:\n"
                   "  Z[k] = clamp(A[k], -1, 1) + step(A[k] - 0.5) * idx(K-k) + select(A[k], 2, 3)\n")
    checked = check_cascade(parse_cascade(text, "t.cas"), text)
    a = np.array([-2.0, 0.0, 0.7, 3.0])
    z = evaluate(checked, {"A": a}).outputs["Z"]
    expected = np.clip(a, -1, 1) + (a > 0.5) * (4 - np.arange(4)) + np.where(a != 0, 2, 3)
    assert np.array_equal(z, expected)


def test_an_all_hidden_chunk_leaves_the_running_state_alone():
    """With the window, early chunks are hidden entirely from late queries: RM stays -inf
    and the correction factor e^(-inf - -inf) is 0, not NaN."""
    q, k, v = rand((1, 1, 40, 6, 4, 3), seed=40)
    result = run("attention-local", {"Q": q, "K": k, "V": v}, M0=4, W=3)
    rm = result.tensors["RM"].values[0, 0]
    assert np.isneginf(rm[5]).all()  # after 5 chunks (keys 0-19) no query has seen a key
    assert np.all(result.tensors["PRM"].values[0, 0, :9] == 0)


@pytest.mark.parametrize("text, message", [
    ("  Z[k] = A[k] * clamp(A[k], 1)", "clamp takes 3 arguments, found 2"),
    ("  Z[k] = idx(J) * A[k]", "J has no size"),
    ("  Z[k] = k * A[k]", "write idx(k) for its coordinate"),
])
def test_language_errors(text, message):
    full = HEAD + "Extended Einsums:\n" + text + "\n"
    with pytest.raises(CascadeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_cascade(parse_cascade(full, "t.cas"), full)


def test_idx_is_refused_in_a_prescale():
    text = "cascade t\ninput A[K]\noutput Z\nprescale A by idx(K)\nExtended Einsums:\n  Z = A[k]\n"
    with pytest.raises(CascadeError, match="not idx"):
        parse_cascade(text)


# --------------------------------------------------------------------------- CLI

def test_cli_lists_shows_and_counts_every_variant(capsys):
    assert main(["cascade", "list", "--json"]) == 0
    rows = {r["name"]: r["passes"] for r in json.loads(capsys.readouterr().out)}
    for name, expected in PASSES.items():
        assert {r: rows[name][r] for r in expected} == expected
        assert main(["cascade", "show", name]) == 0
        assert capsys.readouterr().out.startswith(f"cascade {name} ")
        assert main(["cascade", "passes", name, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["passes"]["M"] == expected["M"]


def test_cli_eval_with_a_bias_key(capsys, tmp_path):
    q, k, v = (x[0, 0] for x in rand((1, 1, 11, 7, 4, 3), seed=41))
    kb = np.linspace(-1, 1, 4)
    np.savez(tmp_path / "in.npz", Q=q, K=k, V=v, KB=kb)
    assert main(["cascade", "eval", "attention-kbias", "--inputs", str(tmp_path / "in.npz"),
                 "--out", str(tmp_path / "out.npz"), "--param", "M0=3"]) == 0
    out = np.load(tmp_path / "out.npz")["O"]
    assert rel_err(out, V.kv_bias_attention(q, k, v, kb)) < 1e-9
    np.savez(tmp_path / "bad.npz", Q=q, K=k, V=v)
    assert main(["cascade", "eval", "attention-kbias", "--inputs", str(tmp_path / "bad.npz"),
                 "--out", str(tmp_path / "o.npz")]) == 2
    assert "missing array(s) KB" in capsys.readouterr().err


def test_numerics_twins_used_are_the_hardware_ones():
    """sigmoid_codes is Exp2 of -|x| and the Divider: at x = 0 exactly 1/2."""
    nc = CFG.numerics
    half, _ = G.sigmoid_codes(np.array([0]), nc)
    assert half[0] == 1 << (nc.exp.frac - 1)
    assert nm.exp2(np.array([0]), False, nc)[0] == 1 << nc.exp.frac
