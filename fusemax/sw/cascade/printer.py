"""Pretty-printer: IR -> canonical cascade text that parses back to the same IR.

``format_cascade(c)`` writes ASCII; ``format_cascade(c, unicode=True)`` writes the paper's glyphs
(×, ⋁_m0 max(∪), ⋄, −∞, ≥). Both parse back to an equal :class:`Cascade`.
"""

from __future__ import annotations

import math

from fusemax.sw.cascade.ir import (
    Access, Action, Bin, Call, Cascade, Comment, Cond, Einsum, Expr, IBin, IExpr, Index, INum,
    ISize, IVar, LhsSlot, Neg, Num, Param, Partition, Prescale, SizeRef, Slot, Stop, TensorDecl,
)

_GLYPHS = {"*": "×", "/": "÷", "<>": "⋄", "<=": "≤", ">=": "≥", "!=": "≠", "/\\": "⋀",
           "\\/": "⋁", "&": "∩", "|": "∪", "<-": "←", "->": "→", "-": "−"}
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


class _Printer:
    def __init__(self, unicode: bool):
        self.unicode = unicode

    def sym(self, s: str) -> str:
        return _GLYPHS.get(s, s) if self.unicode else s

    # -- index expressions -----------------------------------------------------------
    def iexpr(self, e: IExpr, prec: int = 0) -> str:
        if isinstance(e, IVar):
            return e.name
        if isinstance(e, INum):
            return str(e.value)
        if isinstance(e, ISize):
            return e.rank
        assert isinstance(e, IBin)
        p = _PREC[e.op]
        # Left-associative: the right operand needs parentheses at equal precedence.
        text = f"{self.iexpr(e.left, p)}{self.sym(e.op) if e.op != '*' else '*'}" \
               f"{self.iexpr(e.right, p + 1)}"
        return f"({text})" if p < prec else text

    def cond(self, c: Cond) -> str:
        return f"{self.iexpr(c.left)} {self.sym(c.op)} {self.iexpr(c.right)}"

    def slot(self, s: Slot) -> str:
        text = self.iexpr(s.expr)
        return f"{text} : {self.cond(s.filter)}" if s.filter is not None else text

    def lhs_slot(self, s: LhsSlot) -> str:
        if s.offset:
            return f"{s.var}+{s.offset}"
        if s.fixed is not None:
            return f"{s.var}={self.iexpr(s.fixed)}"
        return s.var

    # -- value expressions -----------------------------------------------------------
    def num(self, value: float) -> str:
        if math.isinf(value):
            inf = "∞" if self.unicode else "inf"
            return inf if value > 0 else f"{self.sym('-')}{inf}"
        if value == int(value) and abs(value) < 1e15:
            text = str(int(value))
        else:
            text = repr(value)
        return text.replace("-", self.sym("-"), 1) if value < 0 else text

    def expr(self, e: Expr, prec: int = 0) -> str:
        if isinstance(e, Access):
            if not e.slots:
                return e.tensor
            return f"{e.tensor}[{', '.join(self.slot(s) for s in e.slots)}]"
        if isinstance(e, Num):
            text = self.num(e.value)
            return f"({text})" if e.value < 0 and prec > 0 else text
        if isinstance(e, SizeRef):
            return e.rank
        if isinstance(e, Index):
            return f"idx({self.iexpr(e.expr)})"
        if isinstance(e, Call):
            if self.unicode and e.fn == "exp" and len(e.args) == 1:
                return f"e^{{{self.expr(e.args[0])}}}"
            return f"{e.fn}({', '.join(self.expr(a) for a in e.args)})"
        if isinstance(e, Neg):
            text = f"{self.sym('-')}{self.expr(e.operand, 3)}"
            return f"({text})" if prec > 0 else text
        assert isinstance(e, Bin)
        p = _PREC[e.op]
        text = f"{self.expr(e.left, p)} {self.sym(e.op)} {self.expr(e.right, p + 1)}"
        return f"({text})" if p < prec else text

    def action(self, a: Action) -> str:
        head = self.sym("/\\" if a.kind == "map" else "\\/")
        names = a.vars[0] if len(a.vars) == 1 else "{" + ",".join(a.vars) + "}"
        op = a.op if a.op in ("max", "min") else self.sym(a.op)
        merge = "𝟙" if self.unicode and a.merge == "1" else self.sym(a.merge)
        return f"{head}_{names} {op}({merge})"

    # -- statements ------------------------------------------------------------------
    def einsum(self, s: Einsum) -> str:
        lhs = s.tensor + (f"[{', '.join(self.lhs_slot(x) for x in s.lhs)}]" if s.lhs else "")
        text = f"{lhs} = {self.expr(s.rhs)}"
        if s.actions:
            text += " :: " + " ".join(self.action(a) for a in s.actions)
        return text

    def declaration(self, d) -> str:
        if isinstance(d, TensorDecl):
            text = f"{d.role:<6} {d.name}" + (f"[{','.join(d.ranks)}]" if d.ranks else "")
            if d.stored is not None:
                text += f" stored [{','.join(d.stored)}]"
            if d.alias:
                text += f" as {d.alias}"
            return text
        if isinstance(d, Partition):
            return f"partition {d.rank} {self.sym('->')} {d.outer}, {d.inner}"
        if isinstance(d, Param):
            return f"param {d.name} = {d.value}"
        assert isinstance(d, Prescale)
        return f"prescale {d.tensor} by {self.expr(d.factor)}"

    def stop(self, s: Stop) -> str:
        return f"{self.sym('<>')} : {self.cond(s.cond)}"


def _with_comment(text: str, comment: str | None, width: int) -> str:
    if comment is None:
        return text
    return f"{text:<{width}}  # {comment}" if comment else f"{text:<{width}}  #"


def format_expr(e: Expr, unicode: bool = False) -> str:
    return _Printer(unicode).expr(e)


def format_einsum(s: Einsum, unicode: bool = False) -> str:
    return _Printer(unicode).einsum(s)


def format_cascade(c: Cascade, unicode: bool = False) -> str:
    """Canonical text of a cascade; comments are kept where they were."""
    pr = _Printer(unicode)
    out: list[str] = []
    head = f"cascade {c.name}" + (f' "{c.title}"' if c.title is not None else "")
    out.append(_with_comment(head, c.comment, 0) if c.comment is not None else head)

    decl_lines = [(pr.declaration(d), d.comment) if not isinstance(d, Comment) else (None, d.text)
                  for d in c.declarations]
    width = max((len(t) for t, _ in decl_lines if t is not None), default=0)
    for text, comment in decl_lines:
        out.append(f"# {comment}" if text is None else _with_comment(text, comment, width))

    for section, header in (("init", "Initialization:"), ("extended", "Extended Einsums:")):
        items = [s for s in c.statements
                 if (s.section if isinstance(s, (Einsum, Comment)) else "extended") == section]
        if not items:
            continue
        rendered = []
        for s in items:
            if isinstance(s, Comment):
                rendered.append((None, s.text))
            elif isinstance(s, Einsum):
                rendered.append((pr.einsum(s), s.comment))
            else:
                rendered.append((pr.stop(s), s.comment))
        width = max((len(t) for t, _ in rendered if t is not None), default=0)
        out.append("")
        out.append(header)
        for text, comment in rendered:
            out.append(f"  # {comment}" if text is None else "  " + _with_comment(text, comment, width))
    return "\n".join(out) + "\n"
