"""Typed IR of a cascade of extended Einsums.

A cascade is an ordered list of Einsums (``TENSOR[slots] = expression :: actions``) plus the
declarations that give them meaning: which tensors are inputs and outputs, how a rank is
partitioned (M -> M1, M0), parameters (tile sizes), prescales (1/√E folded into Q) and the stop
conditions (``⋄``) of iterative ranks. Every node records where it came from (line, column) so
that later stages can point at the source.

Naming follows the paper: an upper-case name is a rank *and* its size (``M0``); its lower-case
twin is the variable that walks it (``m0``). Tensors are upper-case names followed by ``[...]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True)
class Pos:
    """A place in the cascade text: 1-based line and column."""

    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


NOWHERE = Pos(0, 0)


# ---------------------------------------------------------------- index (integer) expressions

@dataclass(frozen=True)
class IVar:
    """A rank variable such as ``m0``; it walks the rank ``M0``."""

    name: str
    pos: Pos = field(default=NOWHERE, compare=False)

    @property
    def rank(self) -> str:
        return rank_of(self.name)


@dataclass(frozen=True)
class INum:
    value: int
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class ISize:
    """The size of a rank used as a number (``M0`` in ``m1*M0+m0``, ``M1`` as last coordinate)."""

    rank: str
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class IBin:
    op: str  # one of + - *
    left: "IExpr"
    right: "IExpr"
    pos: Pos = field(default=NOWHERE, compare=False)


IExpr = Union[IVar, INum, ISize, IBin]


@dataclass(frozen=True)
class Cond:
    """A comparison of index expressions, used by filters and stop conditions."""

    op: str  # one of < <= > >= == !=
    left: IExpr
    right: IExpr
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Slot:
    """One coordinate of a tensor access: an index expression, optionally filtered.

    ``A[k : k <= i]`` has ``expr = k`` and ``filter = (k <= i)``: only the coordinates for which
    the condition holds take part; the others are empty.
    """

    expr: IExpr
    filter: Cond | None = None
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class LhsSlot:
    """One coordinate of an Einsum's output.

    ``m1`` walks the rank; ``m1+1`` writes the next element of an iterative rank (``offset=1``);
    ``m1=0`` writes one fixed coordinate (``fixed`` holds the coordinate expression).
    """

    var: str
    offset: int = 0
    fixed: IExpr | None = None
    pos: Pos = field(default=NOWHERE, compare=False)

    @property
    def rank(self) -> str:
        return rank_of(self.var)


# ---------------------------------------------------------------- value expressions

@dataclass(frozen=True)
class Access:
    """A read of a tensor; a scalar tensor has no slots (``Y``)."""

    tensor: str
    slots: tuple[Slot, ...]
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Num:
    value: float
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Call:
    """A unary or n-ary map operator: ``exp(x)``, ``max(a, b)``, ``sigmoid(x)``..."""

    fn: str
    args: tuple["Expr", ...]
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Bin:
    op: str  # one of + - * /
    left: "Expr"
    right: "Expr"
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Neg:
    operand: "Expr"
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class SizeRef:
    """A rank size used as a value (only in prescale expressions, e.g. ``1/sqrt(E)``)."""

    rank: str
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Index:
    """A coordinate used as a value: ``idx(m+1)`` is the number m + 1 at each point of the
    iteration space, ``idx(M-m)`` the keys from m to the end, ``idx(P)`` a rank size. The
    variables it names are walked by the Einsum like those of its tensor reads."""

    expr: IExpr
    pos: Pos = field(default=NOWHERE, compare=False)


Expr = Union[Access, Num, Call, Bin, Neg, SizeRef, Index]


# ---------------------------------------------------------------- statements

@dataclass(frozen=True)
class Action:
    """A map or reduce action of the EDGE notation: ``⋁_m0 max(∪)`` is
    ``Action("reduce", ("m0",), "max", "|")``."""

    kind: str  # "map" or "reduce"
    vars: tuple[str, ...]
    op: str  # + * max min / - ...
    merge: str  # & (∩), | (∪), <- (←), 1 (𝟙)
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Einsum:
    tensor: str
    lhs: tuple[LhsSlot, ...]
    rhs: Expr
    actions: tuple[Action, ...] = ()
    section: str = "extended"  # "init" or "extended"
    comment: str | None = None
    pos: Pos = field(default=NOWHERE, compare=False)

    def reduce_op(self, var: str) -> str:
        """The operator that reduces ``var`` (``+`` unless an action says otherwise)."""
        for action in self.actions:
            if action.kind == "reduce" and var in action.vars:
                return action.op
        return "+"


@dataclass(frozen=True)
class Stop:
    """``⋄ : m1 >= M1``: the iterative rank walked by ``var`` stops when ``cond`` holds."""

    cond: Cond
    comment: str | None = None
    pos: Pos = field(default=NOWHERE, compare=False)

    @property
    def var(self) -> str:
        assert isinstance(self.cond.left, IVar)
        return self.cond.left.name


@dataclass(frozen=True)
class Comment:
    """A comment line kept for the pretty-printer."""

    text: str
    section: str = "header"
    pos: Pos = field(default=NOWHERE, compare=False)


Statement = Union[Einsum, Stop, Comment]


# ---------------------------------------------------------------- declarations

@dataclass(frozen=True)
class TensorDecl:
    """``input Q[E,P] stored [P,E]`` or ``output AV[F,P] stored [P,F] as O``.

    ``ranks`` is the order the Einsums index the tensor in; ``stored`` the order of the array in
    files (defaults to ``ranks``); ``alias`` the array's name in files (defaults to the tensor's).
    """

    role: str  # "input" or "output"
    name: str
    ranks: tuple[str, ...]
    stored: tuple[str, ...] | None = None
    alias: str | None = None
    comment: str | None = None
    pos: Pos = field(default=NOWHERE, compare=False)

    @property
    def file_name(self) -> str:
        return self.alias or self.name

    @property
    def file_ranks(self) -> tuple[str, ...]:
        return self.stored if self.stored is not None else self.ranks


@dataclass(frozen=True)
class Partition:
    """``partition M -> M1, M0``: coordinate m = m1·M0 + m0, with M1 = ⌈M / M0⌉."""

    rank: str
    outer: str
    inner: str
    comment: str | None = None
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Param:
    """``param M0 = 16``: a rank size chosen by the user (a tile size), overridable."""

    name: str
    value: int
    comment: str | None = None
    pos: Pos = field(default=NOWHERE, compare=False)


@dataclass(frozen=True)
class Prescale:
    """``prescale Q by 1/sqrt(E)``: multiply an input by a factor before the cascade runs.

    This is how the attention scale is folded into Q (free in hardware); ``--scale`` overrides
    the factor.
    """

    tensor: str
    factor: Expr
    comment: str | None = None
    pos: Pos = field(default=NOWHERE, compare=False)


Declaration = Union[TensorDecl, Partition, Param, Prescale, Comment]


@dataclass(frozen=True)
class Cascade:
    name: str
    title: str | None
    declarations: tuple[Declaration, ...]
    statements: tuple[Statement, ...]
    comment: str | None = None
    source: str = field(default="<cascade>", compare=False)

    # Convenience views ------------------------------------------------------------------
    @property
    def inputs(self) -> tuple[TensorDecl, ...]:
        return tuple(d for d in self.declarations if isinstance(d, TensorDecl) and d.role == "input")

    @property
    def outputs(self) -> tuple[TensorDecl, ...]:
        return tuple(d for d in self.declarations if isinstance(d, TensorDecl) and d.role == "output")

    @property
    def partitions(self) -> tuple[Partition, ...]:
        return tuple(d for d in self.declarations if isinstance(d, Partition))

    @property
    def params(self) -> tuple[Param, ...]:
        return tuple(d for d in self.declarations if isinstance(d, Param))

    @property
    def prescales(self) -> tuple[Prescale, ...]:
        return tuple(d for d in self.declarations if isinstance(d, Prescale))

    @property
    def einsums(self) -> tuple[Einsum, ...]:
        return tuple(s for s in self.statements if isinstance(s, Einsum))

    @property
    def stops(self) -> tuple[Stop, ...]:
        return tuple(s for s in self.statements if isinstance(s, Stop))


def rank_of(var: str) -> str:
    """The rank a variable walks: ``m0`` -> ``M0``."""
    return var.upper()


def ivars(expr: IExpr | Cond | None) -> list[str]:
    """Variables in an index expression or condition, in order of appearance, once each."""
    out: list[str] = []

    def walk(node) -> None:
        if isinstance(node, IVar):
            if node.name not in out:
                out.append(node.name)
        elif isinstance(node, IBin):
            walk(node.left)
            walk(node.right)
        elif isinstance(node, Cond):
            walk(node.left)
            walk(node.right)

    walk(expr)
    return out


def isizes(expr: IExpr | Cond | None) -> list[ISize]:
    """Rank sizes named in an index expression or condition."""
    out: list[ISize] = []

    def walk(node) -> None:
        if isinstance(node, ISize):
            out.append(node)
        elif isinstance(node, (IBin, Cond)):
            walk(node.left)
            walk(node.right)

    walk(expr)
    return out


def accesses(expr: Expr) -> list[Access]:
    """Every tensor access in a value expression, left to right."""
    if isinstance(expr, Access):
        return [expr]
    if isinstance(expr, Bin):
        return accesses(expr.left) + accesses(expr.right)
    if isinstance(expr, Neg):
        return accesses(expr.operand)
    if isinstance(expr, Call):
        return [a for arg in expr.args for a in accesses(arg)]
    return []


def index_values(expr: Expr) -> list[Index]:
    """Every coordinate used as a value (``idx(...)``) in a value expression, left to right."""
    if isinstance(expr, Index):
        return [expr]
    if isinstance(expr, Bin):
        return index_values(expr.left) + index_values(expr.right)
    if isinstance(expr, Neg):
        return index_values(expr.operand)
    if isinstance(expr, Call):
        return [i for arg in expr.args for i in index_values(arg)]
    return []


def slot_vars(slot: Slot) -> list[str]:
    """Variables a slot walks (its expression), without those only in its filter."""
    return ivars(slot.expr)
