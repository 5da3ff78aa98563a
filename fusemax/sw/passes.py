"""How many passes over each rank a cascade needs, for every mapping, and why (paper §III).

A pass over a rank R is one traversal of an R fiber. An Einsum that walks R can run in the same
traversal as the Einsums it reads from element by element, so they fuse. But when it reads a
tensor that only exists once a *whole* R fiber has been seen (a reduction over R: a global max,
a sum), it cannot start before that traversal is over: it needs one more pass. Partitioned
ranks (M -> M1, M0) count as R, and a running value (``RM[m1+1] = max(RM[m1], ...)``) is read
element by element, which is how the 1-pass cascade escapes the extra passes.

For each tensor, ``level`` is the pass in which it is produced (0: it does not depend on R at
all). An Einsum that walks R runs in pass max(1, level of what it reads element-wise, 1 + level
of what it reads whole); the count for R is the highest such pass. The chain of reads that
pushes the count up is reported, Einsum by Einsum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fusemax.sw.cascade.check import CheckedCascade, einsum_vars
from fusemax.sw.cascade.ir import Einsum, accesses, ivars, rank_of


@dataclass
class ExtraPass:
    """Why an Einsum cannot run before pass ``number``."""

    number: int
    einsum: str
    line: int
    reads: str  # the tensor it needs whole
    producer: str  # the Einsum that completes that tensor at the end of pass number - 1
    producer_line: int
    reduces: list[str]  # the R variables the producer reduces over (empty: it is derived)
    op: str  # the producer's reduction operator

    def describe(self) -> str:
        how = (f"{self.producer} (line {self.producer_line}) reduces over "
               f"{', '.join(self.reduces)} with {self.op}" if self.reduces else
               f"{self.producer} (line {self.producer_line}) is derived from such a result")
        return (f"pass {self.number}: {self.einsum} (line {self.line}) reads {self.reads} "
                f"whole, which is complete only after pass {self.number - 1}: {how}")


@dataclass
class RankPasses:
    rank: str
    passes: int
    einsum_pass: dict[str, int] = field(default_factory=dict)  # Einsum output -> its pass
    chain: list[ExtraPass] = field(default_factory=list)


def analyse_passes(checked: CheckedCascade) -> dict[str, RankPasses]:
    """Pass counts for every input rank of ``checked`` (partitioned ranks fold into their root)."""
    roots = sorted(set(checked.roots.values()), key=list(checked.roots.values()).index)
    return {root: _rank_passes(checked, root) for root in roots}


def _rank_passes(checked: CheckedCascade, root: str) -> RankPasses:
    family = {r for r, base in checked.roots.items() if base == root}
    statements = checked.cascade.statements
    einsums = [(i, s) for i, s in enumerate(statements) if isinstance(s, Einsum)]
    level: dict[str, int] = {}
    why: dict[int, ExtraPass | None] = {}
    run_pass: dict[int, int] = {}

    def walks(var_names) -> bool:
        return any(rank_of(v) in family for v in var_names)

    changed = True
    while changed:  # running values read their own earlier steps: iterate to a fixed point
        changed = False
        for i, s in einsums:
            traverses = walks(einsum_vars(s))
            need = 1 if traverses else 0
            reason = None
            for a in accesses(s.rhs):
                t_level = level.get(a.tensor, 0)
                if a.tensor == s.tensor:
                    continue
                elementwise = any(walks(ivars(slot.expr)) for slot in a.slots)
                if elementwise:
                    candidate = max(t_level, 1)
                else:
                    candidate = t_level + 1 if traverses else t_level
                if candidate > need:
                    need = candidate
                    reason = (a.tensor, t_level) if not elementwise and traverses else None
            if run_pass.get(i) != need:
                run_pass[i] = need
                changed = True
            if level.get(s.tensor, 0) < need:
                level[s.tensor] = need
                changed = True
            why[i] = _extra(checked, s, reason, need, family) if reason else None

    result = RankPasses(root, max([run_pass[i] for i, s in einsums
                                   if walks(einsum_vars(s))], default=0))
    result.einsum_pass = {s.tensor: run_pass[i] for i, s in einsums if walks(einsum_vars(s))}
    chain: list[ExtraPass] = []
    for number in range(2, result.passes + 1):
        first = next((why[i] for i, s in einsums
                      if run_pass[i] == number and why[i] is not None), None)
        if first is not None:
            chain.append(first)
    result.chain = chain
    return result


def _extra(checked: CheckedCascade, s: Einsum, reason, need: int, family) -> ExtraPass:
    tensor, t_level = reason
    statements = checked.cascade.statements
    writers = [statements[j] for j in checked.tensors[tensor].writers]
    producer = writers[-1]
    lhs = {slot.var for slot in producer.lhs}
    reduces = [v for v in einsum_vars(producer) if v not in lhs and rank_of(v) in family]
    op = producer.reduce_op(reduces[0]) if reduces else ""
    op = {"+": "a sum", "max": "max", "min": "min", "*": "a product"}.get(op, op)
    return ExtraPass(need, s.tensor, s.pos.line, tensor, producer.tensor, producer.pos.line,
                     reduces, op)


def passes_json(checked: CheckedCascade, analysis: dict[str, RankPasses]) -> dict:
    return {
        "cascade": checked.name,
        "passes": {rank: r.passes for rank, r in analysis.items()},
        "einsum_pass": {rank: r.einsum_pass for rank, r in analysis.items()},
        "why": {rank: [vars(x) | {"text": x.describe()} for x in r.chain]
                for rank, r in analysis.items()},
    }
