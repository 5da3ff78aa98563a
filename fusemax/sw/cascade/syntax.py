"""Parser for the cascade language: text -> :class:`~fusemax.sw.cascade.ir.Cascade`.

The language is line oriented; one statement a line, ``#`` starts a comment. Every symbol of the
paper's notation has an ASCII spelling (left) and may be written as in the paper (right):

=========  =========  ==========================================
ASCII      paper      meaning
=========  =========  ==========================================
``*``      ``×`` ``·`` multiply
``/``      ``÷``      divide
``-inf``   ``−∞``     minus infinity
``<>``     ``⋄``      stop condition of an iterative rank
``<=``     ``≤``      comparisons (also ``>=`` ``≥``, ``!=`` ``≠``)
``/\\_k``  ``⋀_k``    map action over rank variable k
``\\/_k``  ``⋁_k``    reduce action over rank variable k
``&``      ``∩``      merge: intersection
``|``      ``∪``      merge: union
``<-``     ``←``      merge: where the right operand is non-zero
``1``      ``𝟙``      merge: pass-through
``->``     ``→``      partition arrow
``exp(x)`` ``e^{x}``  exponential
=========  =========  ==========================================

See the README for the statement forms; :mod:`fusemax.sw.cascade.printer` writes the canonical
text back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fusemax.errors import FuseMaxError
from fusemax.sw.cascade.ir import (
    Access, Action, Bin, Call, Cascade, Comment, Cond, Einsum, Expr, IBin, IExpr, Index, INum,
    ISize, IVar, LhsSlot, Neg, Num, Param, Partition, Pos, Prescale, SizeRef, Slot, Stop,
    TensorDecl,
)

#: Paper glyphs and the ASCII token each one stands for.
UNICODE_TOKENS = {
    "×": "*", "·": "*", "÷": "/", "−": "-", "∞": "inf", "⋄": "<>", "≤": "<=", "≥": ">=",
    "≠": "!=", "⋀": "/\\", "⋁": "\\/", "∩": "&", "∪": "|", "←": "<-", "→": "->", "𝟙": "1",
}
_SYMBOLS = sorted(["::", "->", "<-", "<>", "<=", ">=", "==", "!=", "/\\", "\\/", "[", "]", "(",
                   ")", "{", "}", ",", "=", "+", "-", "*", "/", "^", ":", "<", ">", "&", "|", "_"],
                  key=len, reverse=True)
_NUMBER = re.compile(r"\d+(\.\d*)?([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_SECTIONS = {("Initialization",): "init", ("init",): "init",
             ("Extended", "Einsums"): "extended", ("einsums",): "extended"}
REDUCE_OPS = ("+", "*", "max", "min")
MAP_OPS = ("+", "-", "*", "/", "max", "min")
MERGES = ("&", "|", "<-", "1")
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")


class CascadeError(FuseMaxError):
    """An error in a cascade, located at a line and column, with the offending line shown."""

    def __init__(self, message: str, pos: Pos | None = None, source: str = "<cascade>",
                 text: str | None = None):
        self.message = message
        self.pos = pos
        self.source = source
        where = f"{source}:{pos.line}:{pos.col}" if pos and pos.line else source
        full = f"{where}: {message}"
        if text is not None and pos and pos.line:
            lines = text.splitlines()
            if 0 < pos.line <= len(lines):
                line = lines[pos.line - 1]
                full += f"\n    {line}\n    {' ' * (pos.col - 1)}^"
        super().__init__(full)


@dataclass(frozen=True)
class Token:
    kind: str  # "name", "number", "string", "sym", "word", "end"
    value: str
    pos: Pos

    def __str__(self) -> str:
        return "end of line" if self.kind == "end" else repr(self.value)


def tokenize_line(line: str, lineno: int, source: str, text: str) -> tuple[list[Token], str | None]:
    """Split one line into tokens; returns them and the trailing comment (without ``#``)."""
    tokens: list[Token] = []
    i = 0
    comment = None
    while i < len(line):
        ch = line[i]
        pos = Pos(lineno, i + 1)
        if ch in " \t\r":
            i += 1
        elif ch == "#":
            comment = line[i + 1:].strip()
            break
        elif ch in UNICODE_TOKENS:
            value = UNICODE_TOKENS[ch]
            tokens.append(Token("name" if value == "inf" else "sym", value, pos))
            i += 1
        elif ch == '"':
            end = line.find('"', i + 1)
            if end < 0:
                raise CascadeError("unterminated string: expected a closing \"", pos, source, text)
            tokens.append(Token("string", line[i + 1:end], pos))
            i = end + 1
        elif m := _NUMBER.match(line, i):
            tokens.append(Token("number", m.group(), pos))
            i = m.end()
        elif m := _NAME.match(line, i):
            tokens.append(Token("name", m.group(), pos))
            i = m.end()
        else:
            for sym in _SYMBOLS:
                if line.startswith(sym, i):
                    tokens.append(Token("sym", sym, pos))
                    i += len(sym)
                    break
            else:
                raise CascadeError(f"unexpected character {ch!r}", pos, source, text)
    tokens.append(Token("end", "", Pos(lineno, len(line) + 1)))
    return tokens, comment


class _LineParser:
    """Recursive-descent parser over the tokens of one line."""

    def __init__(self, tokens: list[Token], source: str, text: str):
        self.tokens = tokens
        self.i = 0
        self.source = source
        self.text = text

    # -- helpers -----------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def error(self, message: str, tok: Token | None = None) -> CascadeError:
        return CascadeError(message, (tok or self.tok).pos, self.source, self.text)

    def at(self, *values: str) -> bool:
        return self.tok.kind in ("sym", "name") and self.tok.value in values

    def take(self) -> Token:
        tok = self.tok
        if tok.kind != "end":
            self.i += 1
        return tok

    def expect(self, value: str, what: str | None = None) -> Token:
        if not self.at(value):
            raise self.error(f"expected {what or repr(value)}, found {self.tok}")
        return self.take()

    def expect_name(self, what: str) -> Token:
        if self.tok.kind != "name" or self.tok.value == "inf":
            raise self.error(f"expected {what}, found {self.tok}")
        return self.take()

    def expect_end(self) -> None:
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok} after the end of the statement")

    def expect_rank(self, what: str) -> Token:
        tok = self.expect_name(what)
        if not tok.value[0].isupper():
            raise self.error(f"{what} must be an upper-case rank name, found {tok.value!r}", tok)
        return tok

    # -- index expressions -------------------------------------------------------------
    def iexpr(self) -> IExpr:
        node = self.iterm()
        while self.at("+", "-"):
            op = self.take()
            node = IBin(op.value, node, self.iterm(), op.pos)
        return node

    def iterm(self) -> IExpr:
        node = self.ifactor()
        while self.at("*"):
            op = self.take()
            node = IBin("*", node, self.ifactor(), op.pos)
        return node

    def ifactor(self) -> IExpr:
        tok = self.tok
        if tok.kind == "number":
            if not tok.value.isdigit():
                raise self.error(f"a coordinate must be a whole number, found {tok.value}")
            self.take()
            return INum(int(tok.value), tok.pos)
        if tok.kind == "name" and tok.value != "inf":
            self.take()
            if tok.value[0].isupper():
                return ISize(tok.value, tok.pos)
            return IVar(tok.value, tok.pos)
        if self.at("("):
            self.take()
            node = self.iexpr()
            self.expect(")")
            return node
        raise self.error(f"expected a rank variable, a rank size or a number, found {tok}")

    def cond(self) -> Cond:
        left = self.iexpr()
        if not self.at(*COMPARISONS):
            raise self.error(f"expected a comparison ({' '.join(COMPARISONS)}), found {self.tok}")
        op = self.take()
        return Cond(op.value, left, self.iexpr(), op.pos)

    def slot(self) -> Slot:
        start = self.tok.pos
        expr = self.iexpr()
        filt = None
        if self.at(":"):
            self.take()
            filt = self.cond()
        return Slot(expr, filt, start)

    def lhs_slot(self) -> LhsSlot:
        tok = self.expect_name("a rank variable")
        if not tok.value[0].islower():
            raise self.error(
                f"an output coordinate must be a lower-case rank variable, found {tok.value!r}", tok)
        if self.at("+"):
            self.take()
            num = self.tok
            if num.kind != "number" or num.value != "1":
                raise self.error(f"an iterative rank advances by +1, found +{num.value}", num)
            self.take()
            return LhsSlot(tok.value, 1, None, tok.pos)
        if self.at("="):
            self.take()
            return LhsSlot(tok.value, 0, self.iexpr(), tok.pos)
        return LhsSlot(tok.value, 0, None, tok.pos)

    def bracketed(self, item, what: str) -> tuple:
        self.expect("[", f"'[' to open {what}")
        items = []
        if not self.at("]"):
            items.append(item())
            while self.at(","):
                self.take()
                items.append(item())
        self.expect("]", f"',' or ']' in {what}")
        return tuple(items)

    # -- value expressions -------------------------------------------------------------
    def expr(self, sizes: bool = False) -> Expr:
        node = self.term(sizes)
        while self.at("+", "-"):
            op = self.take()
            node = Bin(op.value, node, self.term(sizes), op.pos)
        return node

    def term(self, sizes: bool) -> Expr:
        node = self.unary(sizes)
        while self.at("*", "/"):
            op = self.take()
            node = Bin(op.value, node, self.unary(sizes), op.pos)
        return node

    def unary(self, sizes: bool) -> Expr:
        if self.at("-"):
            op = self.take()
            operand = self.unary(sizes)
            if isinstance(operand, Num):
                return Num(-operand.value, op.pos)
            return Neg(operand, op.pos)
        return self.primary(sizes)

    def primary(self, sizes: bool) -> Expr:
        tok = self.tok
        if tok.kind == "number":
            self.take()
            return Num(float(tok.value), tok.pos)
        if tok.kind == "name" and tok.value == "inf":
            self.take()
            return Num(float("inf"), tok.pos)
        if self.at("("):
            self.take()
            node = self.expr(sizes)
            self.expect(")", "')'")
            return node
        if tok.kind != "name":
            raise self.error(f"expected a tensor, a number, a function or '(', found {tok}")
        self.take()
        if tok.value == "e" and self.at("^"):  # e^{x} as in the paper
            self.take()
            close = {"{": "}", "(": ")"}.get(self.tok.value if self.tok.kind == "sym" else "")
            if close is None:
                raise self.error(f"expected '{{' or '(' after e^, found {self.tok}")
            self.take()
            arg = self.expr(sizes)
            self.expect(close, repr(close))
            return Call("exp", (arg,), tok.pos)
        if tok.value == "idx" and self.at("("):  # a coordinate used as a value: idx(m+1)
            if sizes:
                raise self.error("a prescale factor may use rank sizes and numbers, not idx(...)",
                                 tok)
            self.take()
            node = self.iexpr()
            self.expect(")", "')' closing idx(...)")
            return Index(node, tok.pos)
        if self.at("("):
            self.take()
            args = [self.expr(sizes)]
            while self.at(","):
                self.take()
                args.append(self.expr(sizes))
            self.expect(")", "',' or ')' closing the arguments")
            return Call(tok.value, tuple(args), tok.pos)
        if self.at("["):
            if sizes:
                raise self.error("a prescale factor may use rank sizes and numbers, not tensors")
            return Access(tok.value, self.bracketed(self.slot, f"the coordinates of {tok.value}"),
                          tok.pos)
        if tok.value[0].islower():
            raise self.error(f"rank variable {tok.value!r} cannot be used as a value here; "
                             f"write idx({tok.value}) for its coordinate", tok)
        if sizes:
            return SizeRef(tok.value, tok.pos)
        return Access(tok.value, (), tok.pos)

    # -- actions -----------------------------------------------------------------------
    def actions(self) -> tuple[Action, ...]:
        out = []
        while self.tok.kind != "end":
            start = self.tok
            if not self.at("/\\", "\\/"):
                raise self.error(f"expected a map (/\\_k or ⋀_k) or reduce (\\/_k or ⋁_k) action, "
                                 f"found {self.tok}")
            kind = "map" if self.take().value == "/\\" else "reduce"
            self.expect("_", "'_' and the rank variable")
            if self.at("{"):
                self.take()
                names = [self.expect_name("a rank variable").value]
                while self.at(","):
                    self.take()
                    names.append(self.expect_name("a rank variable").value)
                self.expect("}")
            else:
                names = [self.expect_name("a rank variable").value]
            op_tok = self.tok
            if op_tok.kind not in ("sym", "name"):
                raise self.error(f"expected an operator after {kind} _{names[0]}, found {op_tok}")
            self.take()
            allowed = REDUCE_OPS if kind == "reduce" else MAP_OPS
            if op_tok.value not in allowed:
                raise self.error(
                    f"{kind} operator must be one of {' '.join(allowed)}, found {op_tok}", op_tok)
            self.expect("(", "'(' and a merge operator")
            merge = self.tok
            if merge.value not in MERGES:
                raise self.error(
                    f"merge operator must be one of & (∩) | (∪) <- (←) 1 (𝟙), found {merge}")
            self.take()
            self.expect(")")
            out.append(Action(kind, tuple(names), op_tok.value, merge.value, start.pos))
        return tuple(out)


def parse_cascade(text: str, source: str = "<cascade>") -> Cascade:
    """Parse cascade text. Errors are :class:`CascadeError` with line and column.

    Parsing checks the form of each statement; :func:`fusemax.sw.cascade.check.check_cascade`
    checks the meaning (tensors, ranks, order).
    """
    name = None
    title = None
    head_comment = None
    declarations: list = []
    statements: list = []
    section = None  # None until a section header or the first Einsum
    for lineno, line in enumerate(text.splitlines(), start=1):
        tokens, comment = tokenize_line(line, lineno, source, text)
        p = _LineParser(tokens, source, text)
        first = p.tok
        if first.kind == "end":
            if comment is not None:
                where = "header" if section is None else section
                target = declarations if section is None else statements
                target.append(Comment(comment, where, Pos(lineno, line.index("#") + 1)))
            continue
        words = tuple(t.value for t in tokens[:-1] if t.kind == "name")
        if first.kind == "name" and first.value == "cascade" and p.peek().kind != "sym":
            if name is not None:
                raise p.error("a file holds one cascade: a second 'cascade' line", first)
            if statements or declarations and not all(isinstance(d, Comment) for d in declarations):
                raise p.error("'cascade NAME' must be the first statement", first)
            p.take()
            m = _WORD.match(line, p.tok.pos.col - 1)
            if p.tok.kind == "end" or not m:
                raise p.error("expected the cascade's name after 'cascade'")
            name = m.group()
            while p.tok.kind != "end" and p.tok.pos.col - 1 < m.end():
                p.take()
            if p.tok.kind == "string":
                title = p.take().value
            p.expect_end()
            head_comment = comment
            continue
        if name is None:
            raise p.error("a cascade starts with 'cascade NAME \"title\"'", first)
        if (len(tokens) >= 2 and tokens[-2].kind == "sym" and tokens[-2].value == ":"
                and words in _SECTIONS and len(tokens) == len(words) + 2):
            new = _SECTIONS[words]
            if new == "init" and section == "extended":
                raise p.error("the Initialization section must come before Extended Einsums", first)
            if new == section:
                raise p.error(f"a second {' '.join(words)} section header", first)
            section = new
            continue
        if first.kind == "name" and first.value in ("input", "output") and p.peek().kind == "name":
            if section is not None:
                raise p.error(f"'{first.value}' declarations come before the Einsums", first)
            declarations.append(_tensor_decl(p, comment))
        elif first.kind == "name" and first.value == "partition" and p.peek().kind == "name":
            if section is not None:
                raise p.error("'partition' declarations come before the Einsums", first)
            p.take()
            rank = p.expect_rank("the rank to partition")
            p.expect("->", "'->' (or →)")
            outer = p.expect_rank("the outer rank")
            p.expect(",", "',' and the inner rank")
            inner = p.expect_rank("the inner rank")
            p.expect_end()
            declarations.append(Partition(rank.value, outer.value, inner.value, comment, first.pos))
        elif first.kind == "name" and first.value == "param" and p.peek().kind == "name":
            if section is not None:
                raise p.error("'param' declarations come before the Einsums", first)
            p.take()
            pname = p.expect_rank("the parameter's rank name")
            p.expect("=")
            num = p.tok
            if num.kind != "number" or not num.value.isdigit() or int(num.value) == 0:
                raise p.error(f"a parameter is a positive whole number, found {num}")
            p.take()
            p.expect_end()
            declarations.append(Param(pname.value, int(num.value), comment, first.pos))
        elif first.kind == "name" and first.value == "prescale" and p.peek().kind == "name":
            if section is not None:
                raise p.error("'prescale' declarations come before the Einsums", first)
            p.take()
            tname = p.expect_name("the input to prescale")
            if not p.at("by"):
                raise p.error(f"expected 'by' and a factor, found {p.tok}")
            p.take()
            factor = p.expr(sizes=True)
            p.expect_end()
            declarations.append(Prescale(tname.value, factor, comment, first.pos))
        elif first.kind == "sym" and first.value == "<>":
            p.take()
            if p.at(":"):
                p.take()
            cond = p.cond()
            p.expect_end()
            if not isinstance(cond.left, IVar):
                raise CascadeError("a stop condition reads '<> : var >= bound' with the iterative "
                                   "rank variable on the left", cond.left.pos, source, text)
            if cond.op not in (">=", ">"):
                raise CascadeError(f"a stop condition uses >= or >, found {cond.op}", cond.pos,
                                   source, text)
            if section == "init":
                raise p.error("a stop condition belongs to the Extended Einsums", first)
            section = section or "extended"
            statements.append(Stop(cond, comment, first.pos))
        elif first.kind == "name":
            section = section or "extended"
            statements.append(_einsum(p, section, comment))
        else:
            raise p.error(f"expected a declaration, a section header, an Einsum or a stop "
                          f"condition, found {first}", first)
    if name is None:
        raise CascadeError("empty cascade: expected 'cascade NAME \"title\"'", Pos(1, 1), source)
    return Cascade(name, title, tuple(declarations), tuple(statements), head_comment, source)


def _tensor_decl(p: _LineParser, comment: str | None) -> TensorDecl:
    role = p.take()
    name = p.expect_name("a tensor name")
    if not name.value[0].isupper():
        raise p.error(f"tensor names are upper-case, found {name.value!r}", name)
    ranks = ()
    if p.at("["):  # a scalar has no ranks
        ranks = p.bracketed(lambda: p.expect_rank("a rank name"), f"the ranks of {name.value}")
    stored = alias = None
    while p.tok.kind != "end":
        if p.at("stored"):
            p.take()
            stored = p.bracketed(lambda: p.expect_rank("a rank name"),
                                 f"the stored order of {name.value}")
        elif p.at("as"):
            p.take()
            alias = p.expect_name("the array's name in files").value
        else:
            raise p.error(f"expected 'stored [...]', 'as NAME' or end of line, found {p.tok}")
    return TensorDecl(role.value, name.value, tuple(t.value for t in ranks),
                      tuple(t.value for t in stored) if stored else None, alias, comment, role.pos)


def _einsum(p: _LineParser, section: str, comment: str | None) -> Einsum:
    name = p.take()
    if not name.value[0].isupper():
        raise p.error(f"an Einsum writes an upper-case tensor, found {name.value!r}", name)
    lhs: tuple[LhsSlot, ...] = ()
    if p.at("["):
        lhs = p.bracketed(p.lhs_slot, f"the coordinates of {name.value}")
    p.expect("=", "'=' after the output tensor")
    rhs = p.expr()
    actions: tuple[Action, ...] = ()
    if p.at("::"):
        p.take()
        actions = p.actions()
    p.expect_end()
    return Einsum(name.value, lhs, rhs, actions, section, comment, name.pos)
