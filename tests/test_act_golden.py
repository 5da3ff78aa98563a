"""The bit-exact ACT (attention calibration) model, fusemax.sw.golden_variants.act_golden,
against the float64 transliteration of the official code (fusemax.sw.variants.act_calibration)
and against the plain causal golden; the sink set is derived here again from a float64
softmax, independently of both."""

import numpy as np
import pytest

from fusemax.config import FuseMaxConfig, NumericsConfig, preset
from fusemax.errors import FuseMaxError
from fusemax.sw import golden_variants as G
from fusemax.sw import variants as V
from fusemax.sw.golden import attention_1pass, causal_mask, error_stats
from workloads import random_attention as rand  # tests/ is on sys.path

TAU, BETA = 0.1, 0.4
TILE7 = FuseMaxConfig("tile7", 7, 7)  # the spec's tile 7 (variants.md 3.5)
CONFIGS = {"tile7": TILE7, "small": preset("small"), "tiny": preset("tiny")}
U = np.ones(8) / np.sqrt(8)


def act_inputs(T, seed, trailing=False):
    """B=1, H=2, E=8, F=6. Queries share a direction u; key 0 (BOS) and key 9 point along it,
    so key 0 is the first sink (kept) and key 9 a calibrated one. ``trailing``: the last key
    too, so that the last query's weight on itself (its alpha, divided by T − m = 1) crosses
    tau."""
    q, k, v = rand((1, 2, T, T, 8, 6), seed=seed)
    q += 1.5 * U
    k[:, :, 0] += 4 * U
    k[:, :, 9] += 3 * U
    if trailing:
        ql = q[:, :, T - 1]  # raise the last query's score on its own key by 6
        k[:, :, T - 1] += 6 * np.sqrt(8) * ql / np.sum(ql * ql, -1, keepdims=True)
    return q, k, v


def reference_sinks(q, k, tau=TAU):
    """alpha[m] = column sum of the causal float64 softmax / (T − m); S0 = alpha > tau; S = S0
    without its first index. Returns (S as a bool (B,H,T) array, alpha, column sums)."""
    T, E = q.shape[2], q.shape[3]
    s = np.einsum("bhpe,bhme->bhpm", q, k) / np.sqrt(E)
    s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    csum = a.sum(axis=2)
    alpha = csum / np.arange(T, 0, -1)
    s0 = alpha > tau
    sinks = np.zeros_like(s0)
    for b, h in np.ndindex(s0.shape[:2]):
        idx = np.nonzero(s0[b, h])[0][1:]
        sinks[b, h, idx] = True
    return sinks, alpha, csum


def as_lists(mask):
    return [[list(map(int, np.nonzero(m)[0])) for m in row] for row in mask]


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("T, seed", [(40, 0), (40, 1), (64, 0), (64, 2)])
def test_act_golden_matches_the_official_calibration(T, seed, cfg):
    q, k, v = act_inputs(T, seed)
    config = CONFIGS[cfg]
    ref = V.act_calibration(q, k, v)
    sinks, alpha, csum = reference_sinks(q, k)
    # the test data keeps every alpha away from tau, so the fixed-point decision is well posed
    assert np.min(np.abs(alpha - TAU)) > 1e-3
    assert as_lists(sinks) == [[list(map(int, s)) for s in row] for row in ref["sinks"]]
    assert sinks.any()  # something is calibrated

    r = G.act_golden(q, k, v, config)
    assert np.array_equal(r.extra["S"], sinks)
    first = [[int(np.nonzero(a > TAU)[0][0]) for a in row] for row in alpha]
    assert r.extra["FIRST"].tolist() == first
    # column sums: 2^-25 per query from the rounding, plus the exp's error
    assert np.max(np.abs(r.extra["CSUM"] - csum)) < 1e-3  # measured <= 4e-4
    err = error_stats(r.out, ref["out"])
    assert err["rel_rms"] < 1e-3  # measured 1.7e-4 .. 2.9e-4 (output lsb 2^-12)
    assert err["max_abs"] < 2e-3  # measured <= 6.7e-4
    assert not any(r.saturation.values()) and r.div_by_zero == 0
    assert r.tiles_total == 3 * 2 * -(-T // config.rows) * -(-T // config.cols)


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("T", [40, 64])
def test_a_trailing_key_crosses_tau(T, cfg):
    q, k, v = act_inputs(T, seed=T + 1, trailing=True)
    ref = V.act_calibration(q, k, v)
    sinks, alpha, _ = reference_sinks(q, k)
    assert (alpha[..., T - 1] > TAU).all() and sinks[:, :, T - 1].all()
    assert np.min(np.abs(alpha - TAU)) > 1e-3
    r = G.act_golden(q, k, v, CONFIGS[cfg])
    assert np.array_equal(r.extra["S"], sinks)
    assert r.extra["S"][:, :, T - 1].all()
    assert error_stats(r.out, ref["out"])["rel_rms"] < 1e-3


def test_column_sums_and_reciprocals_against_float64():
    """Pass 2's intermediates: CSUM (u48.24 codes) against the column sums of the float64
    causal softmax, RINV (u32.30) against 1 / RD of the golden's pass-1 state, the output codes
    inside the output format."""
    q, k, v = act_inputs(40, seed=0)
    cfg = preset("small")
    a = G.act_golden(q, k, v, cfg)
    _, _, csum = reference_sinks(q, k)
    got = G.ACT_CSUM_FORMAT.to_float(a.extra["CSUM_codes"])
    assert np.array_equal(a.extra["CSUM"], got)
    # the quantized inputs and the exp polynomial (4e-4 measured; a column sums <= 40 weights)
    assert np.max(np.abs(got - csum)) < 2e-3, np.max(np.abs(got - csum))
    assert abs(got.sum() - 2 * 40) < 1e-3  # every row of the map sums to 1 (2 heads, T = 40)
    rd = G.FixedFormat(cfg.numerics.rd.width, cfg.numerics.rd.frac).to_float(a.state["RD"])
    rinv = G.ACT_RINV_FORMAT.to_float(a.extra["RINV_codes"])
    assert np.all(np.abs(rinv * rd - 1.0) <= rd * 2.0 ** -31)  # 1/RD rounded to 30 bits
    out = cfg.numerics.out
    assert a.out_codes.shape == (1, 2, 40, 6)
    assert out.min_code <= a.out_codes.min() and a.out_codes.max() <= out.max_code


@pytest.mark.parametrize("cfg", CONFIGS)
def test_without_sinks_it_is_the_plain_causal_golden_bit_for_bit(cfg):
    """S empty: pass 3's RD and RN are pass 1's RD and RNV (the same operations), SS = RS = 0,
    so the gain is exactly 1.0, N = RN·2^15 and the output divide rounds the same quotient."""
    config = CONFIGS[cfg]
    q, k, v = act_inputs(40, seed=0)
    plain = attention_1pass(q, k, v, config, mask=causal_mask(40, 40))
    r = G.act_golden(q, k, v, config, tau=10.0)  # no column average reaches 10
    assert not r.extra["S"].any() and np.array_equal(r.out_codes, plain.out_codes)
    assert r.tiles == 2 * r.tiles_total // 3  # pass 3 is not needed
    assert error_stats(r.out, V.act_calibration(q, k, v, threshold=10.0)["out"])["rel_rms"] < 1e-3
    # with sinks: the rows before the first sink (row 0 among them) see none, SS = 0 there,
    # and are plain attention bit for bit; the later rows are calibrated
    r = G.act_golden(q, k, v, config)
    for h in range(2):
        s = np.nonzero(r.extra["S"][0, h])[0]
        assert len(s) and np.all(r.state["SS"][0, h, : s[0]] == 0)
        assert np.array_equal(r.out_codes[0, h, : s[0]], plain.out_codes[0, h, : s[0]])
        assert np.all(r.state["SS"][0, h, s[0]:] > 0)
        assert not np.array_equal(r.out_codes[0, h, s[0]:], plain.out_codes[0, h, s[0]:])
    assert np.array_equal(r.out_codes[0, :, 0], plain.out_codes[0, :, 0])


def test_a_single_strong_column_is_first_and_not_calibrated():
    q, k, v = rand((1, 2, 24, 24, 8, 6), seed=7)
    q += 1.5 * U
    k[:, :, 0] += 4 * U  # only the BOS column: S0 = {0} (and maybe trailing keys)
    sinks, alpha, _ = reference_sinks(q, k)
    r = G.act_golden(q, k, v, preset("small"))
    assert np.array_equal(r.extra["S"], sinks)
    assert (r.extra["FIRST"] == 0).all() and not r.extra["S"][..., 0].any()


def test_a_sink_with_nearly_all_the_mass_saturates_the_gain_and_says_so():
    q, k, v = rand((1, 1, 40, 40, 8, 6), seed=11)
    q += 3 * U
    k[:, :, 0] += 3 * U
    k[:, :, 5] += 8 * U  # key 5 takes > 99 % of most later rows
    cfg = preset("small")
    r = G.act_golden(q, k, v, cfg)
    assert r.extra["S"][0, 0].tolist() == [m == 5 for m in range(40)]
    # g = (RD − β·SS) / (RD − SS) with 15 fraction bits saturates iff its code rounds above
    # 2^23 − 1: 2·(RD·2^15 − β_c·SS) >= (2^24 − 1)·NS, in exact integers
    beta_c = round(BETA * 2 ** 15)
    rd, ss = (r.state[n][0, 0].astype(object) for n in ("RD", "SS"))
    expected = sum(int(2 * (d * 2 ** 15 - beta_c * s) >= (2 ** 24 - 1) * (d - s)) for d, s in zip(rd, ss))
    assert expected > 0 and r.saturation["gain"] == expected
    strict = FuseMaxConfig("small-error", 8, 8, NumericsConfig(overflow="error"))
    with pytest.raises(FuseMaxError, match="gain"):
        G.act_golden(q, k, v, strict)


def test_rounding_modes_keep_the_sink_set():
    q, k, v = act_inputs(40, seed=1)
    ref = V.act_calibration(q, k, v)
    sinks, _, _ = reference_sinks(q, k)
    for mode in ("floor", "nearest_away"):
        cfg = FuseMaxConfig(f"small-{mode}", 8, 8, NumericsConfig(rounding=mode))
        r = G.act_golden(q, k, v, cfg)
        assert np.array_equal(r.extra["S"], sinks)
        assert error_stats(r.out, ref["out"])["rel_rms"] < 2e-3


def test_bad_inputs_are_refused():
    cfg = preset("small")
    q, k, v = rand((1, 1, 12, 10, 4, 3))
    with pytest.raises(FuseMaxError, match="P = 10 queries but M = 12 keys"):
        G.act_golden(q, k, v, cfg)
    q, k, v = rand((1, 1, 10, 10, 4, 3))
    with pytest.raises(FuseMaxError, match="causal"):
        G.act_golden(q, k, v, cfg, causal=False)
    with pytest.raises(FuseMaxError, match=r"beta must be in \[0, 1\]"):
        G.act_golden(q, k, v, cfg, beta=1.5)
    with pytest.raises(FuseMaxError, match="tau must be finite"):
        G.act_golden(q, k, v, cfg, tau=float("nan"))
    with pytest.raises(FuseMaxError, match="does not fit"):
        G.act_golden(q, k, v, cfg, tau=1e30)
