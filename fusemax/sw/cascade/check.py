"""Meaning of a parsed cascade: tensors, ranks, order, iteration; and the errors when it has none.

:func:`check_cascade` walks the statements in order and refuses, with line and column:

* an unknown tensor (with the closest known name), an unknown function;
* a rank used inconsistently (``K[p, m]`` when K's first rank is E) or with a coordinate whose
  variables belong to another rank; a tensor accessed with the wrong number of ranks;
* a tensor read before it is written, a cycle (a chain of Einsums that feed back into themselves
  without going through an iterative rank), a tensor written twice, an input written;
* an iterative rank without a stop condition, a stop condition for a rank nobody iterates, a
  running value read before it has an initial value;
* a rank whose size nothing gives (not a dimension of an input, a partition or a param).

The result, :class:`CheckedCascade`, is what the pass analysis, the evaluator and the compiler
read.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

from fusemax.sw.cascade.ir import (
    Access, Bin, Call, Cascade, Cond, Einsum, Expr, IBin, IExpr, INum, ISize, IVar, Neg, Num,
    Pos, SizeRef, Slot, Stop, accesses, index_values, isizes, ivars, rank_of,
)
from fusemax.sw.cascade.syntax import CascadeError

#: Map operators the evaluator knows, with their number of arguments (None: two or more).
FUNCTIONS: dict[str, int | None] = {
    "exp": 1, "exp2": 1, "log": 1, "log2": 1, "sqrt": 1, "recip": 1, "sigmoid": 1, "tanh": 1,
    "abs": 1, "relu": 1, "max": None, "min": None,
    "clamp": 3,   # clamp(x, lo, hi) = min(max(x, lo), hi), empty where x is
    "step": 1,    # step(x) = 1 where x > 0, else 0 (comparisons: step(a - b) is a > b)
    "select": 3,  # select(c, a, b) = a where c != 0, else b
}


@dataclass
class TensorInfo:
    """What the cascade says of one tensor."""

    name: str
    ranks: tuple[str, ...]
    role: str  # "input", "output" or "intermediate"
    pos: Pos
    iterative: frozenset[str] = frozenset()  # ranks written at var+1: extent is size + 1
    writers: list[int] = field(default_factory=list)  # statement indices

    def extent(self, rank: str, sizes: dict[str, int]) -> int:
        return sizes[rank] + (1 if rank in self.iterative else 0)


@dataclass
class CheckedCascade:
    cascade: Cascade
    tensors: dict[str, TensorInfo]
    roots: dict[str, str]  # rank -> the input rank it was partitioned from (itself if none)
    stops: dict[str, Stop]  # iterative variable -> its stop condition
    phase: dict[int, str]  # statement index -> "init", "pre", "loop" or "post"

    @property
    def name(self) -> str:
        return self.cascade.name

    def einsum_vars(self, s: Einsum) -> list[str]:
        """The variables an Einsum walks: its output's, then those only its operands have."""
        return einsum_vars(s)

    def sizes(self, dims: dict[str, int], params: dict[str, int] | None = None) -> dict[str, int]:
        """Every rank's size, from the input dimensions ``dims`` and the params (overridable)."""
        sizes = dict(dims)
        given = {p.name: p.value for p in self.cascade.params}
        for name, value in (params or {}).items():
            if name not in given:
                known = ", ".join(given) or "none"
                raise CascadeError(f"unknown param {name} (this cascade's params: {known})",
                                   None, self.cascade.source)
            if value <= 0:
                raise CascadeError(f"param {name} must be positive, got {value}", None,
                                   self.cascade.source)
            given[name] = value
        sizes.update(given)
        for part in self.cascade.partitions:
            sizes[part.outer] = math.ceil(sizes[part.rank] / sizes[part.inner])
        return sizes


def einsum_vars(s: Einsum) -> list[str]:
    """The variables an Einsum walks: its output's, then those of its tensor reads, then those
    only its coordinate values (``idx(m)``) name."""
    out = [slot.var for slot in s.lhs if slot.fixed is None]
    exprs = [slot.expr for access in accesses(s.rhs) for slot in access.slots]
    for expr in exprs + [index.expr for index in index_values(s.rhs)]:
        for v in ivars(expr):
            if v not in out:
                out.append(v)
    return out


def _is_next(expr: IExpr, var: str) -> bool:
    """Whether a coordinate reads ``var+1``."""
    return (isinstance(expr, IBin) and expr.op == "+" and isinstance(expr.left, IVar)
            and expr.left.name == var and isinstance(expr.right, INum) and expr.right.value == 1)


def check_cascade(cascade: Cascade, text: str | None = None) -> CheckedCascade:
    """Check a parsed cascade; ``text`` (its source) lets errors show the offending line."""
    src = cascade.source

    def fail(message: str, pos: Pos | None) -> CascadeError:
        return CascadeError(message, pos, src, text)

    tensors: dict[str, TensorInfo] = {}
    roots: dict[str, str] = {}
    sized: set[str] = set()
    for decl in cascade.inputs + cascade.outputs:
        if decl.name in tensors:
            raise fail(f"tensor {decl.name} is declared twice (first at line "
                       f"{tensors[decl.name].pos.line})", decl.pos)
        if decl.stored is not None and sorted(decl.stored) != sorted(decl.ranks):
            raise fail(f"stored order [{','.join(decl.stored)}] of {decl.name} must list the ranks "
                       f"[{','.join(decl.ranks)}] in some order", decl.pos)
        if len(set(decl.ranks)) != len(decl.ranks):
            raise fail(f"tensor {decl.name} names a rank twice", decl.pos)
        tensors[decl.name] = TensorInfo(decl.name, decl.ranks, decl.role, decl.pos)
        if decl.role == "input":
            for rank in decl.ranks:
                roots[rank] = rank
                sized.add(rank)
    aliases = [d.file_name for d in cascade.inputs + cascade.outputs]
    for name in set(aliases):
        if aliases.count(name) > 1:
            decl = [d for d in cascade.inputs + cascade.outputs if d.file_name == name][1]
            raise fail(f"two declared tensors are stored under the name {name}", decl.pos)
    for param in cascade.params:
        if param.name in sized and param.name not in [p.inner for p in cascade.partitions]:
            raise fail(f"param {param.name} names a rank that an input already sizes", param.pos)
        sized.add(param.name)
    for part in cascade.partitions:
        if part.rank not in roots:
            raise fail(f"partition of {part.rank}: no input has a rank {part.rank}", part.pos)
        if part.inner not in {p.name for p in cascade.params}:
            raise fail(f"partition {part.rank} -> {part.outer}, {part.inner}: the inner size "
                       f"{part.inner} needs a 'param {part.inner} = N' line", part.pos)
        if part.outer in sized and part.outer != part.inner:
            raise fail(f"partition outer rank {part.outer} is already sized elsewhere", part.pos)
        roots[part.outer] = roots[part.inner] = roots[part.rank]
        sized.update((part.outer, part.inner))
    for pre in cascade.prescales:
        if pre.tensor not in tensors or tensors[pre.tensor].role != "input":
            raise fail(f"prescale {pre.tensor}: no input is named {pre.tensor}", pre.pos)
        _check_prescale(pre.factor, sized, fail)

    # Iterative variables and their stop conditions.
    iterative: dict[str, Pos] = {}
    for s in cascade.einsums:
        for slot in s.lhs:
            if slot.offset:
                iterative.setdefault(slot.var, slot.pos)
    stops: dict[str, Stop] = {}
    for stop in cascade.stops:
        if stop.var in stops:
            raise fail(f"a second stop condition for {stop.var}", stop.pos)
        if stop.var not in iterative:
            raise fail(f"stop condition for {stop.var}, but no Einsum iterates {stop.var} "
                       f"(writes X[{stop.var}+1])", stop.pos)
        for size in isizes(stop.cond.right):
            if size.rank not in sized:
                raise fail(f"stop bound uses {size.rank}, a rank with no size", size.pos)
        stops[stop.var] = stop
    for var, pos in iterative.items():
        if var not in stops:
            raise fail(f"iterative rank {rank_of(var)} (written at {var}+1) has no stop condition;"
                       f" add a line '<> : {var} >= {rank_of(var)}'", pos)

    def check_rank_size(var: str, pos: Pos) -> None:
        if rank_of(var) not in sized:
            raise fail(f"rank {rank_of(var)} (of variable {var}) has no size: it is not a rank of "
                       f"an input, a partition or a param", pos)

    def check_index_sizes(exprs: list, pos: Pos) -> None:
        """Every rank size and every variable's rank in the coordinate expressions is sized."""
        for size in [size for expr in exprs for size in isizes(expr)]:
            if size.rank not in sized:
                raise fail(f"{size.rank} has no size: it is not a rank of an input, a partition "
                           f"or a param", size.pos)
        for v in [v for expr in exprs for v in ivars(expr)]:
            check_rank_size(v, pos)

    def check_slot(tensor: TensorInfo, i: int, slot: Slot, pos: Pos) -> None:
        rank = tensor.ranks[i]
        check_index_sizes([slot.expr, slot.filter], slot.pos)
        if isinstance(slot.expr, IVar) or _is_next(slot.expr, rank.lower()):
            var = slot.expr.name if isinstance(slot.expr, IVar) else rank.lower()
            if rank_of(var) != rank:
                raise fail(f"rank used inconsistently: rank {i + 1} of {tensor.name} is {rank} "
                           f"(line {tensor.pos.line}) but {var} walks rank {rank_of(var)}",
                           slot.pos)
        else:
            for v in ivars(slot.expr):
                if roots.get(rank_of(v), rank_of(v)) != roots.get(rank, rank):
                    raise fail(f"rank {i + 1} of {tensor.name} is {rank}, but its coordinate uses "
                               f"{v}, which walks rank {rank_of(v)}", slot.pos)

    # Statements in order.
    statements = cascade.statements
    writers_of: dict[str, list[int]] = {}
    for i, s in enumerate(statements):
        if isinstance(s, Einsum):
            writers_of.setdefault(s.tensor, []).append(i)

    def deps(i: int) -> set[str]:
        return {a.tensor for a in accesses(statements[i].rhs)}

    def chain(start: str, target: str) -> list[str] | None:
        """A path of writes from ``start`` back to ``target`` (for cycle messages)."""
        seen: set[str] = set()
        stack = [(start, [start])]
        while stack:
            name, path = stack.pop()
            if name == target and len(path) > 1:
                return path
            if name in seen:
                continue
            seen.add(name)
            for j in writers_of.get(name, []):
                for d in deps(j):
                    stack.append((d, path + [d]))
        return None

    # Which ranks of each tensor are iterative, known before the walk reaches the recurrence.
    iterative_ranks: dict[str, set[str]] = {}
    for s in cascade.einsums:
        for slot in s.lhs:
            if slot.offset:
                iterative_ranks.setdefault(s.tensor, set()).add(rank_of(slot.var))

    written: set[str] = set()
    next_written: set[str] = set()
    initialised: set[str] = set()
    for i, s in enumerate(statements):
        if not isinstance(s, Einsum):
            continue
        # The output.
        info = tensors.get(s.tensor)
        if info is not None and info.role == "input":
            raise fail(f"input {s.tensor} cannot be written", s.pos)
        lhs_vars = [slot.var for slot in s.lhs]
        for slot in s.lhs:
            check_rank_size(slot.var, slot.pos)
            if slot.fixed is not None:
                for size in isizes(slot.fixed):
                    if size.rank not in sized:
                        raise fail(f"{size.rank} has no size", size.pos)
                if ivars(slot.fixed):
                    raise fail("a fixed output coordinate is a number or a rank size", slot.pos)
        if len(set(lhs_vars)) != len(lhs_vars):
            raise fail(f"{s.tensor} names a rank variable twice", s.pos)
        ranks = tuple(rank_of(v) for v in lhs_vars)
        offsets = frozenset(rank_of(slot.var) for slot in s.lhs if slot.offset)
        if info is None:
            info = tensors[s.tensor] = TensorInfo(s.tensor, ranks, "intermediate", s.pos)
        elif len(info.ranks) != len(ranks):
            raise fail(f"shape mismatch: {s.tensor} has {len(info.ranks)} ranks "
                       f"[{','.join(info.ranks)}] (line {info.pos.line}) but {len(ranks)} here",
                       s.pos)
        for k, (want, got) in enumerate(zip(info.ranks, ranks)):
            if want != got:
                raise fail(f"rank used inconsistently: rank {k + 1} of {s.tensor} is {want} "
                           f"(line {info.pos.line}) but {s.lhs[k].var} walks rank {got}",
                           s.lhs[k].pos)
        fixed = any(slot.fixed is not None for slot in s.lhs)
        if s.tensor in written:
            # Allowed: several initial values (fixed coordinates), then one recurrence (v+1).
            earlier_all_fixed = all(any(sl.fixed is not None for sl in statements[j].lhs)
                                    for j in info.writers)
            if not (earlier_all_fixed and (fixed or offsets)):
                raise fail(f"{s.tensor} is written twice (first at line "
                           f"{statements[info.writers[0]].pos.line})", s.pos)
        info.iterative = info.iterative | offsets
        info.writers.append(i)

        # The operands.
        for a in accesses(s.rhs):
            tinfo = tensors.get(a.tensor)
            if tinfo is None and a.tensor not in writers_of:
                known = sorted(tensors) + sorted(set(writers_of) - set(tensors))
                close = difflib.get_close_matches(a.tensor, known, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise fail(f"unknown tensor {a.tensor}{hint}", a.pos)
            if a.tensor == s.tensor:
                ok = offsets and any(
                    isinstance(sl.expr, IVar) and rank_of(sl.expr.name) in offsets
                    for sl in a.slots)
                if not ok:
                    raise fail(f"cycle: {s.tensor} reads itself; a running value reads "
                               f"{s.tensor}[v] and writes {s.tensor}[v+1]", a.pos)
            elif tinfo is None or (tinfo.role != "input" and a.tensor not in written):
                later = writers_of[a.tensor][0]
                loop = chain(a.tensor, s.tensor)
                if loop is not None:
                    path = " -> ".join([s.tensor] + loop)
                    raise fail(f"cycle: {path} (each reads the next)", a.pos)
                raise fail(f"{a.tensor} is read before it is written (it is written at line "
                           f"{statements[later].pos.line})", a.pos)
            tinfo = tensors[a.tensor]
            if len(a.slots) != len(tinfo.ranks):
                raise fail(f"shape mismatch: {a.tensor} has {len(tinfo.ranks)} ranks "
                           f"[{','.join(tinfo.ranks)}] but is accessed with {len(a.slots)}", a.pos)
            for k, slot in enumerate(a.slots):
                check_slot(tinfo, k, slot, a.pos)
                rank = tinfo.ranks[k]
                running = iterative_ranks.get(a.tensor, set())
                if rank in running and a.tensor != s.tensor:
                    if _is_next(slot.expr, rank.lower()) and a.tensor not in next_written:
                        raise fail(f"{a.tensor}[{rank.lower()}+1] is read before the Einsum that "
                                   f"writes it", slot.pos)
                if (isinstance(slot.expr, IVar) and rank_of(slot.expr.name) in running
                        and a.tensor not in initialised):
                    raise fail(f"{a.tensor}[{slot.expr.name}] is read at {slot.expr.name}=0 but "
                               f"{a.tensor} has no initial value; add '{a.tensor}[{slot.expr.name}"
                               f"=0, ...] = ...' under Initialization:", slot.pos)
        for index in index_values(s.rhs):
            check_index_sizes([index.expr], index.pos)
        _check_calls(s.rhs, fail)
        rhs_only = [v for v in einsum_vars(s) if v not in lhs_vars]
        for action in s.actions:
            for v in action.vars:
                if action.kind == "reduce" and v not in rhs_only:
                    raise fail(f"reduce action over {v}, but {v} is not reduced here (it is "
                               f"{'an output rank' if v in lhs_vars else 'not a rank of the operands'})",
                               action.pos)
                if action.kind == "map" and v not in einsum_vars(s):
                    raise fail(f"map action over {v}, which no operand has", action.pos)
        written.add(s.tensor)
        if offsets:
            next_written.add(s.tensor)
        if fixed:
            initialised.add(s.tensor)

    for out in cascade.outputs:
        if not tensors[out.name].writers:
            raise fail(f"output {out.name} is never written", out.pos)
        if tensors[out.name].iterative:
            raise fail(f"output {out.name} is a running value; write its final element to "
                       f"another tensor", out.pos)

    phase = _phases(cascade, tensors, stops)
    return CheckedCascade(cascade, tensors, roots, stops, phase)


def _phases(cascade: Cascade, tensors: dict[str, TensorInfo], stops: dict[str, Stop]) -> dict[int, str]:
    """When each Einsum runs: once at the start ("init"), before the iterative loop ("pre"), in
    it ("loop", once per step), or after it ("post")."""
    phase: dict[int, str] = {}
    loop_tensors: set[str] = set()
    for i, s in enumerate(cascade.statements):
        if not isinstance(s, Einsum):
            continue
        if s.section == "init":
            phase[i] = "init"
        elif any(v in stops for v in einsum_vars(s)):
            phase[i] = "loop"
            loop_tensors.add(s.tensor)
        else:
            phase[i] = "pre"
    # Whatever reads a loop result (directly or not) runs after the loop.
    changed = True
    while changed:
        changed = False
        for i, s in enumerate(cascade.statements):
            if phase.get(i) == "pre" and any(a.tensor in loop_tensors for a in accesses(s.rhs)):
                phase[i] = "post"
                loop_tensors.add(s.tensor)
                changed = True
    return phase


def _check_calls(expr: Expr, fail) -> None:
    if isinstance(expr, Call):
        arity = FUNCTIONS.get(expr.fn, -1)
        if arity == -1:
            close = difflib.get_close_matches(expr.fn, FUNCTIONS, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise fail(f"unknown function {expr.fn}{hint} (known: {', '.join(FUNCTIONS)})",
                       expr.pos)
        if arity is None and len(expr.args) < 2:
            raise fail(f"{expr.fn} takes two or more arguments", expr.pos)
        if arity is not None and len(expr.args) != arity:
            raise fail(f"{expr.fn} takes {arity} argument{'s' if arity > 1 else ''}, "
                       f"found {len(expr.args)}", expr.pos)
        for arg in expr.args:
            _check_calls(arg, fail)
    elif isinstance(expr, Bin):
        _check_calls(expr.left, fail)
        _check_calls(expr.right, fail)
    elif isinstance(expr, Neg):
        _check_calls(expr.operand, fail)


def _check_prescale(expr: Expr, sized: set[str], fail) -> None:
    if isinstance(expr, SizeRef):
        if expr.rank not in sized:
            raise fail(f"{expr.rank} has no size", expr.pos)
    elif isinstance(expr, Call):
        _check_calls(expr, fail)
        for arg in expr.args:
            _check_prescale(arg, sized, fail)
    elif isinstance(expr, Bin):
        _check_prescale(expr.left, sized, fail)
        _check_prescale(expr.right, sized, fail)
    elif isinstance(expr, Neg):
        _check_prescale(expr.operand, sized, fail)


def evaluate_index(expr: IExpr, env: dict, sizes: dict[str, int]):
    """Evaluate an index expression; ``env`` maps variables to ints or integer arrays."""
    if isinstance(expr, IVar):
        return env[expr.name]
    if isinstance(expr, INum):
        return expr.value
    if isinstance(expr, ISize):
        return sizes[expr.rank]
    left = evaluate_index(expr.left, env, sizes)
    right = evaluate_index(expr.right, env, sizes)
    if expr.op == "+":
        return left + right
    if expr.op == "-":
        return left - right
    return left * right


def evaluate_cond(cond: Cond, env: dict, sizes: dict[str, int]):
    left = evaluate_index(cond.left, env, sizes)
    right = evaluate_index(cond.right, env, sizes)
    return {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b, "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b}[cond.op](left, right)


def evaluate_scalar(expr: Expr, sizes: dict[str, int]) -> float:
    """Evaluate a prescale factor (numbers, rank sizes, functions)."""
    import numpy as np

    from fusemax.sw.reference import apply_function

    if isinstance(expr, Num):
        return expr.value
    if isinstance(expr, SizeRef):
        return float(sizes[expr.rank])
    if isinstance(expr, Neg):
        return -evaluate_scalar(expr.operand, sizes)
    if isinstance(expr, Bin):
        a, b = evaluate_scalar(expr.left, sizes), evaluate_scalar(expr.right, sizes)
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else math.inf}[expr.op]
    assert isinstance(expr, Call)
    args = [np.float64(evaluate_scalar(a, sizes)) for a in expr.args]
    return float(apply_function(expr.fn, args))
