"""Parser and printer: round trips, the paper's glyphs, and syntax errors with their positions."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusemax.sw.cascade.ir import Access, Bin, Call, IBin, INum, ISize, IVar, Neg, Num, Slot
from fusemax.sw.cascade.printer import format_cascade, format_expr
from fusemax.sw.cascade.syntax import CascadeError, parse_cascade
from fusemax.sw.library import builtin_names, cascade_text

HEADER = "cascade t\ninput A[K]\ninput B[K]\noutput Z\n"


@pytest.mark.parametrize("name", builtin_names())
@pytest.mark.parametrize("unicode", [False, True])
def test_builtin_round_trip(name, unicode):
    text, source = cascade_text(name)
    cascade = parse_cascade(text, source)
    printed = format_cascade(cascade, unicode=unicode)
    again = parse_cascade(printed)
    assert again == cascade
    assert format_cascade(again, unicode=unicode) == printed


def test_paper_glyphs_parse_like_ascii():
    ascii_text = HEADER + "Extended Einsums:\n  Y = A[k] * B[k] :: \\/_k +(|) /\\_k *(&)\n  Z = Y * A[k]\n"
    paper_text = HEADER + "Extended Einsums:\n  Y = A[k] × B[k] :: ⋁_k +(∪) ⋀_k ×(∩)\n  Z = Y · A[k]\n"
    assert parse_cascade(ascii_text) == parse_cascade(paper_text)


def test_e_power_is_exp_and_e_is_still_a_rank_variable():
    text = ("cascade t\ninput Q[E,P]\noutput S[E,P]\n"
            "Extended Einsums:\n  S[e,p] = e^{Q[e,p] - 1} + Q[e,p]\n")
    einsum = parse_cascade(text).einsums[0]
    assert einsum.rhs.left == Call("exp", (Bin("-", Access("Q", (Slot(IVar("e")), Slot(IVar("p")))),
                                               Num(1.0)),))


def test_the_1pass_cascade_reads_as_in_the_paper():
    cascade = parse_cascade(*cascade_text("attention-1pass"))
    lm = next(e for e in cascade.einsums if e.tensor == "LM")
    assert lm.reduce_op("m0") == "max"
    rm = next(e for e in cascade.einsums if e.tensor == "RM" and e.lhs[0].offset == 1)
    assert rm.rhs.fn == "max"
    bk = cascade.einsums[0]
    assert bk.rhs.slots[1].expr == IBin("+", IBin("*", IVar("m1"), ISize("M0")), IVar("m0"))
    assert [s.var for s in cascade.stops] == ["m1"]


# -- printing of expressions: a property test over random trees -------------------------------

names = st.sampled_from(["A", "B", "Y"])
leaves = st.one_of(
    st.builds(lambda n: Access(n, (Slot(IVar("k")),)), names),
    st.builds(lambda v: Num(float(v)), st.integers(-3, 9)),
    st.builds(lambda v: Num(v), st.sampled_from([0.5, 2.25, float("inf"), float("-inf")])),
)
exprs = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(Bin, st.sampled_from(["+", "-", "*", "/"]), inner, inner),
        st.builds(lambda x: Neg(x) if not isinstance(x, Num) else x, inner),
        st.builds(lambda f, a: Call(f, (a,)), st.sampled_from(["exp", "sigmoid", "log"]), inner),
        st.builds(lambda a, b: Call("max", (a, b)), inner, inner),
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(exprs, st.booleans())
def test_expression_printing_round_trips(expr, unicode):
    text = HEADER + f"Extended Einsums:\n  Z[k] = {format_expr(expr, unicode=unicode)}\n"
    parsed = parse_cascade(text).einsums[0].rhs
    assert format_expr(parsed) == format_expr(expr)


@pytest.mark.parametrize("expr, text", [
    (Bin("-", Num(1.0), Bin("-", Num(2.0), Num(3.0))), "1 - (2 - 3)"),
    (Bin("-", Bin("-", Num(1.0), Num(2.0)), Num(3.0)), "1 - 2 - 3"),
    (Bin("*", Bin("+", Num(1.0), Num(2.0)), Num(3.0)), "(1 + 2) * 3"),
    (Bin("/", Num(1.0), Bin("*", Num(2.0), Num(3.0))), "1 / (2 * 3)"),
    (Bin("+", Num(1.0), Num(-2.0)), "1 + (-2)"),
])
def test_minimal_parentheses(expr, text):
    assert format_expr(expr) == text


# -- syntax errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("body, line, col, message", [
    ("  Y = A[k] $ B[k]", 6, 12, "unexpected character '$'"),
    ("  Y A[k]", 6, 5, "expected '=' after the output tensor"),
    ("  Y = A[k] * ", 6, 14, "expected a tensor, a number"),
    ("  Y = A[k, ", 6, 12, "expected a rank variable"),
    ("  Y = A[k] :: \\/_k avg(|)", 6, 20, "reduce operator must be one of"),
    ("  Y = A[k] :: \\/_k +(x)", 6, 22, "merge operator must be one of"),
    ("  Y = A[k] :: +", 6, 15, "expected a map"),
    ("  Y[k+2] = A[k]", 6, 7, "advances by +1"),
    ("  Y[K] = A[k]", 6, 5, "lower-case rank variable"),
    ("  y = A[k]", 6, 3, "upper-case tensor"),
    ("  <> : k < K", 6, 10, "uses >= or >"),
    ("  <> : K >= k", 6, 8, "iterative rank variable on the left"),
    ("  Y = k * A[k]", 6, 7, "rank variable 'k' cannot be used as a value"),
    ("  Y = A[k] * B[k]\ninput C[K]", 7, 1, "come before the Einsums"),
    ("  Y = max(A[k], B[k]", 6, 21, "',' or ')' closing the arguments"),
])
def test_syntax_errors_point_at_the_problem(body, line, col, message):
    text = HEADER + "Extended Einsums:\n" + body + "\n"
    with pytest.raises(CascadeError) as info:
        parse_cascade(text, "t.cas")
    err = info.value
    assert message in err.message
    assert (err.pos.line, err.pos.col) == (line, col)
    assert str(err).startswith(f"t.cas:{line}:{col}: ")
    assert "^" in str(err)  # the offending line is shown with a caret


@pytest.mark.parametrize("text, message", [
    ("", "empty cascade"),
    ("input A[K]\n", "starts with 'cascade NAME"),
    ("cascade a\ncascade b\n", "a file holds one cascade"),
    ("cascade a\nparam M0 = 0\n", "positive whole number"),
    ("cascade a\npartition M -> m1, M0\n", "upper-case rank name"),
    ("cascade a\nprescale Q 1/sqrt(E)\n", "expected 'by'"),
    ("cascade a\nprescale Q by Q[e]\n", "rank sizes and numbers, not tensors"),
    ("cascade a\ninput A[K] stored K\n", "'[' to open"),
    ('cascade a "unterminated\n', "unterminated string"),
    ("cascade a\nExtended Einsums:\nInitialization:\n", "must come before Extended"),
])
def test_header_errors(text, message):
    with pytest.raises(CascadeError, match=re.escape(message)):
        parse_cascade(text)


def test_comments_survive_the_round_trip():
    text = HEADER + "# about Y\nExtended Einsums:\n  # first\n  Y = A[k] * B[k]  # (1)\n  Z = Y * A[k]\n"
    cascade = parse_cascade(text)
    printed = format_cascade(cascade)
    assert "# about Y" in printed and "# first" in printed and "# (1)" in printed
    assert parse_cascade(printed) == cascade


def test_index_expressions_keep_their_structure():
    text = ("cascade t\ninput K[M]\noutput Y[M1,M0]\npartition M -> M1, M0\nparam M0 = 4\n"
            "Extended Einsums:\n  Y[m1,m0] = K[(m1+1)*M0-m0-1]\n")
    cascade = parse_cascade(text)
    assert parse_cascade(format_cascade(cascade)) == cascade
    assert "K[(m1+1)*M0-m0-1]" in format_cascade(cascade)
    assert cascade.einsums[0].rhs.slots[0].expr.right == INum(1)
