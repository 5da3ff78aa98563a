"""Semantic checks: each error names the problem and points at its line and column."""

import pytest

from fusemax.sw.cascade.check import check_cascade
from fusemax.sw.cascade.syntax import CascadeError, parse_cascade
from fusemax.sw.library import builtin_names, load_cascade

ATTN = """cascade t
input  Q[E,P] stored [P,E]
input  K[E,M] stored [M,E]
input  V[F,M] stored [M,F]
output AV[F,P] stored [P,F] as O
partition M -> M1, M0
param M0 = 4
"""


def check(text):
    return check_cascade(parse_cascade(text, "t.cas"), text)


def error_of(text) -> CascadeError:
    with pytest.raises(CascadeError) as info:
        check(text)
    return info.value


@pytest.mark.parametrize("name", builtin_names())
def test_builtins_check(name):
    checked = load_cascade(name)
    assert checked.cascade.outputs


@pytest.mark.parametrize("body, line, col, message", [
    # unknown tensor, with a suggestion
    ("  QK[m,p] = Q[e,p] * KK[e,m]\n  AV[f,p] = QK[m,p] * V[f,m]", 9, 22,
     "unknown tensor KK; did you mean K?"),
    # a rank used inconsistently: K's first rank is E
    ("  QK[m,p] = Q[e,p] * K[p,m]\n  AV[f,p] = QK[m,p] * V[f,m]", 9, 24,
     "rank used inconsistently: rank 1 of K is E"),
    # the same tensor written with a different number of ranks
    ("  QK[m,p] = Q[e,p] * K[e,m]\n  AV[f,p] = QK[m,p,f] * V[f,m]", 10, 13,
     "shape mismatch: QK has 2 ranks [M,P] but is accessed with 3"),
    # read before written (no cycle)
    ("  AV[f,p] = QK[m,p] * V[f,m]\n  QK[m,p] = Q[e,p] * K[e,m]", 9, 13,
     "QK is read before it is written (it is written at line 10)"),
    # a cycle through two Einsums
    ("  X[m,p] = Y[m,p] * K[e,m]\n  Y[m,p] = X[m,p] + Q[e,p]\n  AV[f,p] = Y[m,p] * V[f,m]", 9, 12,
     "cycle: X -> Y -> X"),
    # a tensor that reads itself outside a running value
    ("  X[m,p] = X[m,p] + Q[e,p] * K[e,m]\n  AV[f,p] = X[m,p] * V[f,m]", 9, 12,
     "cycle: X reads itself"),
    # a coordinate expression with variables of another rank
    ("  BK[e,m1,m0] = K[e, m1*M0+p]\n  AV[f,p] = BK[e,m1,m0] * Q[e,p] * V[f,m1]", 9, 22,
     "its coordinate uses p, which walks rank P"),
    # an unknown function
    ("  QK[m,p] = Q[e,p] * K[e,m]\n  AV[f,p] = expp(QK[m,p]) * V[f,m]", 10, 13,
     "unknown function expp; did you mean exp?"),
    # a function with the wrong number of arguments
    ("  QK[m,p] = Q[e,p] * K[e,m]\n  AV[f,p] = exp(QK[m,p], 1) * V[f,m]", 10, 13,
     "exp takes 1 argument, found 2"),
    # a rank nothing gives a size to
    ("  QK[m,p] = Q[e,p] * K[e,m]\n  X[m,j] = QK[m,p]\n  AV[f,p] = QK[m,p] * V[f,m]", 10, 7,
     "rank J (of variable j) has no size"),
    # a reduce action over an output rank
    ("  QK[m,p] = Q[e,p] * K[e,m] :: \\/_p max(|)\n  AV[f,p] = QK[m,p] * V[f,m]", 9, 32,
     "reduce action over p, but p is not reduced here (it is an output rank)"),
    # an input written
    ("  K[e,m] = Q[e,p]\n  AV[f,p] = K[e,m] * V[f,m] * Q[e,p]", 9, 3, "input K cannot be written"),
    # a tensor written twice
    ("  X[p] = Q[e,p]\n  X[p] = Q[e,p]\n  AV[f,p] = X[p] * V[f,m]", 10, 3,
     "X is written twice (first at line 9)"),
])
def test_semantic_errors(body, line, col, message):
    err = error_of(ATTN + "Extended Einsums:\n" + body + "\n")
    assert message in err.message, err.message
    assert (err.pos.line, err.pos.col) == (line, col), str(err)


ITER = ATTN + """Initialization:
  RM[m1=0,p] = -inf
Extended Einsums:
  BQK[m1,m0,p] = Q[e,p] * K[e, m1*M0+m0]
  LM[m1,p] = BQK[m1,m0,p] :: \\/_m0 max(|)
  RM[m1+1,p] = max(RM[m1,p], LM[m1,p])
  AV[f,p] = RM[M1,p] * V[f,m]
"""


def test_a_valid_iterative_cascade_checks():
    checked = check(ITER + "  <> : m1 >= M1\n")
    assert checked.tensors["RM"].iterative == {"M1"}
    assert set(checked.stops) == {"m1"}


def test_iterative_rank_without_stop_condition():
    err = error_of(ITER)
    assert "iterative rank M1 (written at m1+1) has no stop condition" in err.message
    assert "'<> : m1 >= M1'" in err.message
    assert (err.pos.line, err.pos.col) == (13, 6)


def test_stop_condition_for_a_rank_nobody_iterates():
    err = error_of(ITER + "  <> : m1 >= M1\n  <> : p >= P\n")
    assert "no Einsum iterates p" in err.message
    assert err.pos.line == 16


def test_running_value_without_initial_value():
    text = ITER.replace("  RM[m1=0,p] = -inf\n", "") + "  <> : m1 >= M1\n"
    err = error_of(text)
    assert "RM[m1] is read at m1=0 but RM has no initial value" in err.message
    assert err.pos.line == 12


def test_next_value_read_before_it_is_written():
    text = ITER.replace("  AV[f,p] = RM[M1,p] * V[f,m]\n",
                        "  X[m1,p] = RM[m1+1,p]\n  AV[f,p] = RM[M1,p] * V[f,m]\n")
    text = text.replace("  LM[m1,p]", "  Y[m1,p] = RM[m1+1,p]\n  LM[m1,p]")
    err = error_of(text + "  <> : m1 >= M1\n")
    assert "RM[m1+1] is read before the Einsum that writes it" in err.message


@pytest.mark.parametrize("header, message", [
    ("cascade t\ninput A[K]\ninput A[K]\noutput Z\n", "tensor A is declared twice"),
    ("cascade t\ninput A[K] stored [J]\noutput Z\n", "must list the ranks [K]"),
    ("cascade t\ninput A[K,K]\noutput Z\n", "names a rank twice"),
    ("cascade t\ninput A[K]\ninput B[K] as A\noutput Z\n", "stored under the name A"),
    ("cascade t\ninput A[K]\npartition M -> M1, M0\nparam M0 = 2\noutput Z\n",
     "no input has a rank M"),
    ("cascade t\ninput A[K]\npartition K -> K1, K0\noutput Z\n", "needs a 'param K0 = N' line"),
    ("cascade t\ninput A[K]\nprescale B by 2\noutput Z\n", "no input is named B"),
    ("cascade t\ninput A[K]\noutput Z\n", "output Z is never written"),
])
def test_declaration_errors(header, message):
    with pytest.raises(CascadeError, match=__import__("re").escape(message)):
        check(header)


def test_phases_of_the_1pass_cascade():
    checked = load_cascade("attention-1pass")
    by_tensor = {}
    for i, phase in checked.phase.items():
        by_tensor.setdefault(checked.cascade.statements[i].tensor, set()).add(phase)
    assert by_tensor["BK"] == {"init"}
    assert by_tensor["RM"] == {"init", "loop"}
    assert by_tensor["BQK"] == {"loop"}
    assert by_tensor["AV"] == {"post"}


def test_sizes_follow_the_partition_and_params():
    checked = load_cascade("attention-1pass")
    sizes = checked.sizes({"E": 24, "P": 29, "M": 37, "F": 40})
    assert sizes["M0"] == 16 and sizes["M1"] == 3
    sizes = checked.sizes({"E": 24, "P": 29, "M": 37, "F": 40}, {"M0": 5})
    assert sizes["M1"] == 8
    with pytest.raises(CascadeError, match="unknown param X"):
        checked.sizes({"E": 1, "P": 1, "M": 1, "F": 1}, {"X": 2})
    with pytest.raises(CascadeError, match="must be positive"):
        checked.sizes({"E": 1, "P": 1, "M": 1, "F": 1}, {"M0": 0})
