"""Pass analysis: the paper's taxonomy must come out of the code, with its reasons."""

import pytest

from fusemax.sw.cascade.check import check_cascade
from fusemax.sw.cascade.syntax import parse_cascade
from fusemax.sw.library import load_cascade
from fusemax.sw.passes import analyse_passes, passes_json

ATTN = """cascade t
input  Q[E,P] stored [P,E]
input  K[E,M] stored [M,E]
input  V[F,M] stored [M,F]
output AV[F,P] stored [P,F] as O
"""


def passes_of(checked):
    return {rank: r.passes for rank, r in analyse_passes(checked).items()}


@pytest.mark.parametrize("name, rank, expected", [
    ("pedagogical-1", "K", 2),
    ("pedagogical-2", "K", 1),
    ("pedagogical-3", "K", 1),
    ("attention-3pass", "M", 3),
    ("attention-2pass", "M", 2),
    ("attention-1pass", "M", 1),
])
def test_paper_taxonomy(name, rank, expected):
    assert passes_of(load_cascade(name))[rank] == expected


@pytest.mark.parametrize("name", ["attention-3pass", "attention-2pass", "attention-1pass"])
def test_attention_needs_one_pass_over_the_other_ranks(name):
    passes = passes_of(load_cascade(name))
    assert passes["P"] == passes["E"] == passes["F"] == 1


def test_the_3pass_chain_names_the_max_then_the_sum():
    chain = analyse_passes(load_cascade("attention-3pass"))["M"].chain
    assert [(x.number, x.einsum, x.reads, x.op) for x in chain] == [
        (2, "SN", "GM", "max"), (3, "A", "SD", "a sum")]
    assert "GM (line 10) reduces over m with max" in chain[0].describe()


def test_the_1pass_cascade_has_no_extra_pass_and_fuses_everything_on_m():
    m = analyse_passes(load_cascade("attention-1pass"))["M"]
    assert m.chain == []
    assert set(m.einsum_pass.values()) == {1}
    assert "AV" not in m.einsum_pass  # it reads only the final running values


def test_naive_softmax_without_max_is_two_pass():
    text = ATTN + """Extended Einsums:
  QK[m,p] = Q[e,p] * K[e,m]
  SN[m,p] = exp(QK[m,p])
  SD[p] = SN[m,p]
  A[m,p] = SN[m,p] / SD[p]
  AV[f,p] = A[m,p] * V[f,m]
"""
    checked = check_cascade(parse_cascade(text), text)
    assert passes_of(checked)["M"] == 2


def test_division_deferred_is_still_one_extra_pass_per_global_reduction():
    # Dividing after multiplying by V (paper 3.2) removes the third pass of Cascade 4.
    text = ATTN + """Extended Einsums:
  QK[m,p] = Q[e,p] * K[e,m]
  GM[p] = QK[m,p] :: \\/_m max(|)
  SN[m,p] = exp(QK[m,p] - GM[p])
  SD[p] = SN[m,p]
  SNV[f,p] = SN[m,p] * V[f,m]
  AV[f,p] = SNV[f,p] / SD[p]
"""
    checked = check_cascade(parse_cascade(text), text)
    assert passes_of(checked)["M"] == 2


def test_json_shape():
    checked = load_cascade("attention-3pass")
    data = passes_json(checked, analyse_passes(checked))
    assert data["cascade"] == "attention-3pass"
    assert data["passes"] == {"E": 1, "P": 1, "M": 3, "F": 1}
    assert [x["number"] for x in data["why"]["M"]] == [2, 3]
