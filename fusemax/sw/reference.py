"""Float64 evaluation of any checked cascade: the reference every other model is held against.

Tensors are dense arrays plus a *presence* mask, as in a fibertree where some coordinates are
empty. A coordinate is empty when it lies outside the tensor (the padded keys of the last
chunk, ``K[e, m1*M0+m0]`` with m >= M), when a filter rejects it (``A[k : k <= i]``), or when
nothing wrote it. Emptiness propagates by the merge operator of each map:

* ``+``, ``max``, ``min`` merge by union (∪): an empty operand is the identity;
* ``-``, ``*`` and functions (``exp``...) merge by intersection (∩): empty if any operand is;
* ``/`` merges by ← : empty where the divisor is empty *or zero* (so Cascade 3's first step,
  RY[1]/RY[0] with RY[0] = 0, drops out exactly as the paper's notation says);
* ``−∞ − y = −∞`` for every y, −∞ included: −∞ is the running max that has seen no key yet,
  so its correction factor e^{RM[m1] − RM[m1+1]} is 0 even while RM[m1+1] is still −∞ (a
  chunk whose keys a mask hides entirely), as the hardware's valid flag makes it;
* ``idx(m+1)`` is the coordinate as a number (always present);
* ``clamp``, ``step``, ``select`` and the other functions merge by intersection;
* reductions skip empty coordinates; a reduction over nothing is empty.

Every batch dimension (B, H) rides along in front of each tensor. Iterative ranks run step by
step (the loop of the ⋄ condition); everything else is vectorised over its whole iteration space.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from fusemax.sw.cascade.check import (
    CheckedCascade, einsum_vars, evaluate_cond, evaluate_index, evaluate_scalar,
)
from fusemax.sw.cascade.ir import (
    Access, Bin, Call, Einsum, Expr, Index, Neg, Num, SizeRef, rank_of,
)
from fusemax.sw.cascade.printer import format_einsum
from fusemax.sw.cascade.syntax import CascadeError

_FUNCTIONS = {
    "exp": np.exp, "exp2": np.exp2, "log": np.log, "log2": np.log2, "sqrt": np.sqrt,
    "recip": lambda x: 1.0 / x, "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)), "tanh": np.tanh,
    "abs": np.abs, "relu": lambda x: np.maximum(x, 0.0),
    "step": lambda x: (np.asarray(x) > 0).astype(np.float64),
}
_REDUCE_IDENTITY = {"+": 0.0, "*": 1.0, "max": -np.inf, "min": np.inf}
_REDUCE = {"+": np.sum, "*": np.prod, "max": np.max, "min": np.min}


def apply_function(fn: str, args: list):
    """Apply a map function by name (the ones :data:`check.FUNCTIONS` lists)."""
    if fn == "max":
        return functools.reduce(np.maximum, args)  # operands may broadcast against each other
    if fn == "min":
        return functools.reduce(np.minimum, args)
    if fn == "clamp":
        return np.minimum(np.maximum(args[0], args[1]), args[2])
    if fn == "select":
        return np.where(np.asarray(args[0]) != 0, args[1], args[2])
    return _FUNCTIONS[fn](args[0])


@dataclass
class Tensor:
    """A tensor's values and which of its coordinates hold one (batch dimensions first)."""

    values: np.ndarray
    present: np.ndarray


@dataclass
class Evaluation:
    """The result of :func:`evaluate`."""

    outputs: dict[str, np.ndarray]  # by file name (alias), in stored order, batch first
    empty_outputs: dict[str, int]  # how many output coordinates nothing wrote (filled with 0)
    tensors: dict[str, Tensor]  # every tensor, in cascade rank order
    sizes: dict[str, int]


class _Evaluator:
    def __init__(self, checked: CheckedCascade, sizes: dict[str, int], batch: tuple[int, ...]):
        self.c = checked
        self.sizes = sizes
        self.batch = batch
        self.nb = len(batch)
        self.store: dict[str, Tensor] = {}

    def extents(self, name: str) -> tuple[int, ...]:
        info = self.c.tensors[name]
        return tuple(info.extent(rank, self.sizes) for rank in info.ranks)

    # -- reading -----------------------------------------------------------------------
    def gather(self, access: Access, env: dict, nvars: int) -> tuple[np.ndarray, np.ndarray]:
        tensor = self.store[access.tensor]
        shape1 = (1,) * nvars
        if not access.slots:
            return (tensor.values.reshape(self.batch + shape1),
                    tensor.present.reshape(self.batch + shape1))
        index = []
        valid = np.ones(shape1, dtype=bool)
        for slot, extent in zip(access.slots, self.extents(access.tensor)):
            idx = np.asarray(evaluate_index(slot.expr, env, self.sizes))
            idx = idx.reshape(idx.shape if idx.ndim == nvars else shape1)
            ok = (idx >= 0) & (idx < extent)
            if slot.filter is not None:
                ok = ok & np.asarray(evaluate_cond(slot.filter, env, self.sizes))
            valid = valid & ok
            index.append(np.clip(idx, 0, extent - 1))
        key = (Ellipsis,) + tuple(index)
        return tensor.values[key], tensor.present[key] & valid

    def value(self, expr: Expr, env: dict, nvars: int):
        if isinstance(expr, Access):
            return self.gather(expr, env, nvars)
        if isinstance(expr, Num):
            return np.float64(expr.value), np.bool_(True)
        if isinstance(expr, SizeRef):
            return np.float64(self.sizes[expr.rank]), np.bool_(True)
        if isinstance(expr, Index):
            value = np.asarray(evaluate_index(expr.expr, env, self.sizes), dtype=np.float64)
            return value, np.bool_(True)
        if isinstance(expr, Neg):
            v, p = self.value(expr.operand, env, nvars)
            return -v, p
        if isinstance(expr, Bin):
            a, pa = self.value(expr.left, env, nvars)
            b, pb = self.value(expr.right, env, nvars)
            if expr.op == "+":
                return np.where(pa, a, 0.0) + np.where(pb, b, 0.0), pa | pb
            if expr.op == "-":  # −∞ − y = −∞: the empty running max (see the module doc)
                return np.where(np.isneginf(a), -np.inf, a - b), pa & pb
            if expr.op == "*":
                return a * b, pa & pb
            nonzero = b != 0
            return a / np.where(nonzero, b, 1.0), pa & pb & nonzero
        assert isinstance(expr, Call)
        args = [self.value(arg, env, nvars) for arg in expr.args]
        if expr.fn in ("max", "min"):
            fill = -np.inf if expr.fn == "max" else np.inf
            vals = [np.where(p, v, fill) for v, p in args]
            pres = args[0][1]
            for _, p in args[1:]:
                pres = pres | p
            return apply_function(expr.fn, vals), pres
        pres = args[0][1]
        for _, p in args[1:]:
            pres = pres & p
        return apply_function(expr.fn, [v for v, _ in args]), pres

    # -- one Einsum --------------------------------------------------------------------
    def run(self, index: int, s: Einsum, fixed: dict[str, int]) -> None:
        allvars = [v for v in einsum_vars(s) if v not in fixed]
        nvars = len(allvars)
        lhs_vars = [slot.var for slot in s.lhs if slot.fixed is None and slot.var not in fixed]
        reduced = [v for v in allvars if v not in lhs_vars]
        env: dict = dict(fixed)
        for axis, v in enumerate(allvars):
            shape = [1] * nvars
            shape[axis] = self.sizes[rank_of(v)]
            env[v] = np.arange(shape[axis]).reshape(shape)
        full = self.batch + tuple(self.sizes[rank_of(v)] for v in allvars)

        # Empty coordinates may hold inf - inf or log(0): they are masked, and NaN where a value
        # is present is reported below, so NumPy's own warnings would only be noise.
        with np.errstate(all="ignore"):
            fast = self.sum_of_products(s, env, allvars, lhs_vars, reduced)
            if fast is not None:
                vals, pres = fast
            else:
                vals, pres = self.value(s.rhs, env, nvars)
                vals = np.broadcast_to(vals, full)
                pres = np.broadcast_to(pres, full)
                for v in reversed(reduced):
                    axis = self.nb + allvars.index(v)
                    op = s.reduce_op(v)
                    vals = _REDUCE[op](np.where(pres, vals, _REDUCE_IDENTITY[op]), axis=axis)
                    pres = pres.any(axis=axis)

        if s.tensor not in self.store:
            shape = self.batch + self.extents(s.tensor)
            self.store[s.tensor] = Tensor(np.zeros(shape), np.zeros(shape, dtype=bool))
        target = self.store[s.tensor]
        key = []
        for slot in s.lhs:
            if slot.fixed is not None:
                key.append(int(evaluate_index(slot.fixed, {}, self.sizes)))
            elif slot.var in fixed:
                key.append(fixed[slot.var] + slot.offset)
            else:
                shape = [1] * len(lhs_vars)
                shape[lhs_vars.index(slot.var)] = self.sizes[rank_of(slot.var)]
                key.append(np.arange(shape[lhs_vars.index(slot.var)]).reshape(shape))
        key_t = (Ellipsis,) + tuple(key)
        out_shape = self.batch + tuple(self.sizes[rank_of(v)] for v in lhs_vars)
        vals = np.broadcast_to(vals, out_shape)
        pres = np.broadcast_to(pres, out_shape)
        bad = np.isnan(vals) & pres
        if bad.any():
            where = [int(i) for i in np.argwhere(bad)[0]]
            coords = ", ".join(f"{v}={c}" for v, c in zip(lhs_vars, where[self.nb:]))
            loop = ", ".join(f"{v}={i}" for v, i in fixed.items())
            raise CascadeError(
                f"{format_einsum(s)} produced NaN at "
                f"[{', '.join(x for x in (loop, coords) if x)}] (batch {where[:self.nb]})",
                s.pos, self.c.cascade.source)
        target.values[key_t] = np.where(pres, vals, 0.0)
        target.present[key_t] = pres

    def sum_of_products(self, s: Einsum, env: dict, allvars, lhs_vars, reduced):
        """Contract a product of operands summed over the reduced ranks with ``np.einsum``,
        so QKᵀ-like Einsums never materialise their whole iteration space."""
        factors: list[Expr] = []

        def flatten(e: Expr) -> bool:
            if isinstance(e, Bin) and e.op == "*":
                return flatten(e.left) and flatten(e.right)
            if isinstance(e, (Access, Num)):
                factors.append(e)
                return True
            return False

        if not reduced or not flatten(s.rhs) or any(s.reduce_op(v) != "+" for v in reduced):
            return None
        letters = "abcdefghijklmnopqrstuvwxyz"
        batch_letters = "".join(letters[i] for i in range(self.nb))
        var_letters = letters[self.nb:self.nb + len(allvars)]
        scalar = 1.0
        operands, masks, subs = [], [], []
        for f in factors:
            if isinstance(f, Num):
                scalar *= f.value
                continue
            vals, pres = np.broadcast_arrays(*self.gather(f, env, len(allvars)))
            keep = [i for i in range(len(allvars)) if vals.shape[self.nb + i] != 1 or
                    self.sizes[rank_of(allvars[i])] == 1]
            squeeze = tuple(self.nb + i for i in range(len(allvars)) if i not in keep)
            operands.append(np.where(pres, vals, 0.0).squeeze(axis=squeeze))
            masks.append(pres.astype(np.float64).squeeze(axis=squeeze))
            subs.append(batch_letters + "".join(var_letters[i] for i in keep))
        out_sub = batch_letters + "".join(var_letters[allvars.index(v)] for v in lhs_vars)
        present_letters = set("".join(subs))
        out_sub_used = "".join(ch for ch in out_sub if ch in present_letters)
        spec = ",".join(subs) + "->" + out_sub_used
        vals = np.einsum(spec, *operands, optimize=True) * scalar
        pres = np.einsum(spec, *masks, optimize=True) > 0
        shape = self.batch + tuple(self.sizes[rank_of(v)] if var_letters[allvars.index(v)]
                                   in present_letters else 1 for v in lhs_vars)
        return vals.reshape(shape), pres.reshape(shape)


def evaluate(checked: CheckedCascade, inputs: dict[str, np.ndarray], *,
             params: dict[str, int] | None = None, scale: float | None = None) -> Evaluation:
    """Evaluate ``checked`` in float64.

    ``inputs`` maps each input's *file name* to an array in its *stored* order with the same
    leading batch dimensions on every array (use :func:`bind_inputs` to check files).
    ``scale`` replaces the factor of every ``prescale`` statement.
    """
    cascade = checked.cascade
    dims: dict[str, int] = {}
    batch: tuple[int, ...] | None = None
    arrays: dict[str, np.ndarray] = {}
    for decl in cascade.inputs:
        array = np.asarray(inputs[decl.file_name], dtype=np.float64)
        nb = array.ndim - len(decl.ranks)
        if batch is None:
            batch = array.shape[:nb]
        perm = [decl.file_ranks.index(r) for r in decl.ranks]
        arrays[decl.name] = array.transpose(tuple(range(nb)) + tuple(nb + p for p in perm))
        for rank, size in zip(decl.file_ranks, array.shape[nb:]):
            dims[rank] = size
    batch = batch or ()
    sizes = checked.sizes(dims, params)
    ev = _Evaluator(checked, sizes, batch)
    for name, array in arrays.items():
        for pre in cascade.prescales:
            if pre.tensor == name:
                factor = scale if scale is not None else evaluate_scalar(pre.factor, sizes)
                array = array * factor
        ev.store[name] = Tensor(array, np.ones(array.shape, dtype=bool))
    if scale is not None and not cascade.prescales:
        raise CascadeError(f"cascade {cascade.name} has no prescale statement for --scale to "
                           f"replace", None, cascade.source)

    statements = cascade.statements
    order = [(i, statements[i]) for i in sorted(checked.phase)]
    for i, s in order:
        if checked.phase[i] in ("init", "pre"):
            ev.run(i, s, {})
    loop = [(i, s) for i, s in order if checked.phase[i] == "loop"]
    if loop:
        if len(checked.stops) != 1:
            raise CascadeError("the evaluator runs one iterative rank per cascade; this one has "
                               f"{len(checked.stops)}", None, cascade.source)
        (var, stop), = checked.stops.items()
        bound = int(evaluate_index(stop.cond.right, {}, sizes)) + (1 if stop.cond.op == ">" else 0)
        for step in range(bound):
            for i, s in loop:
                ev.run(i, s, {var: step})
    for i, s in order:
        if checked.phase[i] == "post":
            ev.run(i, s, {})

    outputs: dict[str, np.ndarray] = {}
    empty: dict[str, int] = {}
    for decl in cascade.outputs:
        t = ev.store[decl.name]
        perm = [decl.ranks.index(r) for r in decl.file_ranks]
        nb = len(batch)
        axes = tuple(range(nb)) + tuple(nb + p for p in perm)
        outputs[decl.file_name] = np.where(t.present, t.values, 0.0).transpose(axes)
        empty[decl.file_name] = int((~t.present).sum())
    return Evaluation(outputs, empty, ev.store, sizes)
