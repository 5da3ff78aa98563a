"""Float64 evaluation of cascades against direct, independent formulas."""

import numpy as np
import pytest

from fusemax.sw.attention_io import reference_attention
from fusemax.sw.cascade.check import check_cascade
from fusemax.sw.cascade.syntax import CascadeError, parse_cascade
from fusemax.sw.library import cascade_text, load_cascade
from fusemax.sw.reference import evaluate
from workloads import random_attention

ATTENTION = ["attention-3pass", "attention-2pass", "attention-1pass"]
SHAPES = [  # B, H, M, P, E, F
    (2, 3, 37, 29, 24, 40),
    (1, 1, 1, 1, 1, 1),
    (1, 2, 5, 17, 3, 2),
    (3, 1, 64, 8, 16, 8),
]


def rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.mark.parametrize("name", ATTENTION)
@pytest.mark.parametrize("shape", SHAPES)
def test_attention_cascades_match_softmax(name, shape):
    q, k, v = random_attention(shape)
    result = evaluate(load_cascade(name), {"Q": q, "K": k, "V": v})
    reference = reference_attention(q, k, v, 1 / np.sqrt(shape[4]))
    assert result.outputs["O"].shape == reference.shape
    assert rel_err(result.outputs["O"], reference) < 1e-9
    assert result.empty_outputs == {"O": 0}


@pytest.mark.parametrize("name", ["attention-2pass", "attention-1pass"])
@pytest.mark.parametrize("m0", [1, 3, 8, 37, 100])
def test_chunk_size_does_not_change_the_result(name, m0):
    q, k, v = random_attention((2, 3, 37, 29, 24, 40), seed=1)
    result = evaluate(load_cascade(name), {"Q": q, "K": k, "V": v}, params={"M0": m0})
    assert rel_err(result.outputs["O"], reference_attention(q, k, v, 1 / np.sqrt(24))) < 1e-9


def test_scale_override_and_unbatched_inputs():
    q, k, v = (x[0, 0] for x in random_attention((1, 1, 9, 7, 5, 3), seed=2))
    result = evaluate(load_cascade("attention-1pass"), {"Q": q, "K": k, "V": v}, scale=0.3)
    expected = reference_attention(q[None, None], k[None, None], v[None, None], 0.3)[0, 0]
    assert rel_err(result.outputs["O"], expected) < 1e-9


def test_large_scores_stay_finite():
    q, k, v = random_attention((1, 2, 40, 10, 8, 4), seed=3)
    result = evaluate(load_cascade("attention-1pass"), {"Q": q * 60, "K": k * 60, "V": v})
    assert np.all(np.isfinite(result.outputs["O"]))
    assert rel_err(result.outputs["O"], reference_attention(q * 60, k * 60, v, 1 / np.sqrt(8))) < 1e-9


def test_intermediates_are_what_the_paper_says():
    q, k, v = random_attention((1, 1, 10, 3, 4, 2), seed=4)
    result = evaluate(load_cascade("attention-1pass"), {"Q": q, "K": k, "V": v}, params={"M0": 4})
    rm = result.tensors["RM"]
    assert rm.values.shape == (1, 1, 4, 3)  # M1 + 1 running values
    scores = np.einsum("pe,me->mp", q[0, 0] / 2, k[0, 0])
    assert np.allclose(rm.values[0, 0, 3], scores.max(axis=0))  # the global max at the end
    assert np.isneginf(rm.values[0, 0, 0]).all()
    bqk = result.tensors["BQK"]
    assert not bqk.present[0, 0, 2, 2:].any()  # keys 10 and 11 are padding: empty, not zero
    assert bqk.present[0, 0, 2, :2].all()


@pytest.mark.parametrize("seed", range(3))
def test_pedagogical_cascades_compute_the_same_scalar(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(11), rng.standard_normal(11)
    expected = (a @ b) * a.sum()
    for name in ["pedagogical-1", "pedagogical-2", "pedagogical-3"]:
        z = evaluate(load_cascade(name), {"A": a, "B": b}).outputs["Z"]
        assert abs(z - expected) < 1e-9 * max(1, abs(expected)), name


CAUSAL = cascade_text("attention-1pass")[0].replace(
    "BQK[m1,m0,p] = Q[e,p] * BK[e,m1,m0]",
    "BQK[m1,m0,p] = Q[e,p] * BK[e,m1,m0 : m1*M0+m0 <= p+M-P]")


@pytest.mark.parametrize("m, p", [(37, 29), (16, 16), (5, 5), (40, 1)])
def test_a_filter_gives_causal_attention(m, p):
    assert "m1*M0+m0 <= p+M-P" in CAUSAL
    checked = check_cascade(parse_cascade(CAUSAL), CAUSAL)
    q, k, v = random_attention((2, 1, m, p, 6, 5), seed=5)
    mask = np.arange(m)[None, :] <= np.arange(p)[:, None] + m - p
    result = evaluate(checked, {"Q": q, "K": k, "V": v}, params={"M0": 4})
    assert rel_err(result.outputs["O"], reference_attention(q, k, v, 1 / np.sqrt(6), mask)) < 1e-9


def test_nan_is_an_error_that_names_the_einsum():
    text = """cascade t
input A[K]
output Z
Extended Einsums:
  L[k] = log(A[k])
  Z = L[k]
"""
    checked = check_cascade(parse_cascade(text, "t.cas"), text)
    with pytest.raises(CascadeError, match=r"L\[k\] = log\(A\[k\]\) produced NaN at \[k=1\]") as info:
        evaluate(checked, {"A": np.array([1.0, -1.0, 2.0])})
    assert info.value.pos.line == 5


def test_scale_without_prescale_is_refused():
    with pytest.raises(CascadeError, match="no prescale"):
        evaluate(load_cascade("pedagogical-1"), {"A": np.ones(3), "B": np.ones(3)}, scale=2.0)
