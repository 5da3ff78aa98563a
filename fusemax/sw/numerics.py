"""Bit-exact NumPy twins of the operators in :mod:`fusemax.hw.arith`.

Every function works on integer codes (``np.int64`` arrays, any shape, broadcasting) and
returns exactly what the matching Amaranth component produces. The formats and rounding come
from a :class:`fusemax.config.NumericsConfig`; nothing here knows about attention (that is
:mod:`fusemax.sw.golden`).

=================  ====================================  ===============================
operator           function here                         component (fusemax.hw.arith.*)
=================  ====================================  ===============================
multiply-add       :func:`mac`                           ``mac.Mac``
max with valid     :func:`max_valid`                     ``maxu.MaxValid``
subtract           :func:`sub`                           ``sub.Sub``
round + saturate   :func:`requantize`                    ``requant.Requant``
exp2               :func:`exp2`                          ``exp2.Exp2``
rescale (x * c)    :func:`rescale`                       ``rescale.Rescale``
divide             :func:`divide`                        ``divide.Divider``
=================  ====================================  ===============================
"""

from __future__ import annotations

import numpy as np

from fusemax.hw.formats import FixedFormat, round_shift, wrap

__all__ = ["round_shift_to", "mac", "max_valid", "sub", "requantize", "exp2", "exp2_split", "rescale", "divide"]


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def mac(a, b, c, acc_width: int | None = None) -> np.ndarray:
    """``c + a * b``, exact; wrapped to ``acc_width`` bits (two's complement) when given,
    which is what the hardware register holds (configs size it so that it never wraps)."""
    y = _i64(c) + _i64(a) * _i64(b)
    return wrap(y, acc_width) if acc_width is not None else y


def max_valid(a, a_valid, b, b_valid) -> tuple[np.ndarray, np.ndarray]:
    """Max of two values that each may be absent (−∞). Returns ``(y, y_valid)``.

    ``y = b`` if ``b_valid and (not a_valid or b > a)`` else ``a``; ``y_valid = a_valid or
    b_valid``. (With neither valid, ``y`` is ``a``, a don't-care the hardware also produces.)
    """
    a, b = _i64(a), _i64(b)
    av, bv = np.asarray(a_valid, bool), np.asarray(b_valid, bool)
    take_b = bv & (~av | (b > a))
    return np.where(take_b, b, a), av | bv


def sub(a, b) -> np.ndarray:
    """``a - b``, exact (the result needs one bit more than the wider operand)."""
    return _i64(a) - _i64(b)


def round_shift_to(codes, from_frac: int, to_frac: int, mode: str) -> np.ndarray:
    """Change the fraction bits of exact codes (rounding when bits are dropped; no saturation)."""
    return round_shift(codes, from_frac - to_frac, mode)


def requantize(codes, from_frac: int, fmt: FixedFormat, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Round ``codes`` (``from_frac`` fraction bits) into ``fmt`` and saturate.

    Returns ``(codes in fmt, saturated flags)`` elementwise (the flag is the component's
    ``sat`` output; the golden sums it into its per-role counts).
    """
    r = round_shift(codes, from_frac - fmt.frac, mode)
    lo, hi = np.int64(fmt.min_code), np.int64(fmt.max_code)
    sat = (r < lo) | (r > hi)
    return np.clip(r, lo, hi), sat


def exp2_split(x, score_frac: int) -> tuple[np.ndarray, np.ndarray]:
    """Range reduction of ``x <= 0`` (frac ``score_frac``): ``x = -n + r`` with integer
    ``n >= 0`` and ``r`` in [0, 1) as an unsigned ``score_frac``-bit fraction. Positive ``x``
    is clamped to 0."""
    x = np.minimum(_i64(x), 0)
    n = -(x >> np.int64(score_frac))
    r = x & np.int64((1 << score_frac) - 1)
    return n, r


def exp2(x, x_ninf, numerics) -> np.ndarray:
    """``2**x`` for ``x <= 0`` in the score format; result codes in ``numerics.exp``.

    ``x_ninf`` (bool, broadcastable) marks x = −∞ (the empty running max): the result is 0.
    Algorithm (bit-exact with ``hw.arith.exp2.Exp2``):

    1. ``x = -n + r`` (``n`` integer, ``r`` in [0, 1) with ``fs = score.frac`` bits);
    2. Horner on an unsigned ``exp_frac + 1``-bit register ``h``: ``h = c_d``; then for
       ``i = d-1 .. 0``: ``h = sat(round(h * r / 2**fs) + c_i)`` (``exp_degree`` MAC steps);
    3. ``y = sat(round(h / 2**(exp_frac - exp.frac + n)))`` (one shift/round step).

    Rounding is ``numerics.rounding`` throughout; ``c_0 = 1`` exactly, so ``2**0 = 1``.
    """
    nc = numerics
    fs = nc.score.frac
    ef = nc.exp_frac
    codes = nc.coefficient_codes()  # (c0, c1, ..., cd)
    n, r = exp2_split(x, fs)
    hmax = np.int64((1 << (ef + 1)) - 1)
    h = np.full(np.broadcast(n).shape, codes[-1], dtype=np.int64)
    for ci in reversed(codes[:-1]):
        h = np.clip(round_shift(h * r, fs, nc.rounding) + np.int64(ci), 0, hmax)
    shift = np.minimum(n + (ef - nc.exp.frac), ef + 2)
    y = _round_shift_var(h, shift, nc.rounding)
    y = np.clip(y, nc.exp.min_code, nc.exp.max_code)
    return np.where(np.asarray(x_ninf, bool), np.int64(0), y)


def _round_shift_var(v, shift, mode: str) -> np.ndarray:
    """:func:`round_shift` of non-negative ``v`` with a per-element shift ``0 <= shift < 62``
    (the exp's final barrel shift; twin of the round bit / sticky logic in ``Exp2``)."""
    v = _i64(v)
    s = np.broadcast_to(_i64(shift), v.shape)
    q = v >> s
    if mode == "floor":
        return q
    sm1 = np.maximum(s - 1, 0)
    rbit = np.where(s == 0, 0, (v >> sm1) & 1)
    sticky = np.where(s <= 1, False, (v & ((np.int64(1) << sm1) - 1)) != 0)
    if mode == "nearest_even":
        up = (rbit == 1) & (sticky | ((q & 1) == 1))
    else:
        up = rbit == 1
    return q + up.astype(np.int64)


def rescale(x, c, c_frac: int, fmt: FixedFormat, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """``x * c`` rounded back to ``x``'s format (``c`` has ``c_frac`` fraction bits, c <= 1).

    Returns ``(codes in fmt, saturated flags)``; with ``c <= 1`` nothing saturates.
    """
    return requantize(_i64(x) * _i64(c), c_frac + fmt.frac, fmt, mode)


def divide(num, den, numerics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AV = RNV / RD in the output format. ``num`` in ``numerics.rnv``, ``den`` in ``numerics.rd``.

    Exact quotient rounded with ``numerics.rounding`` (sign-correct: floor rounds toward −∞),
    then saturated. Returns ``(codes, saturated, div_by_zero)``; ``den == 0`` gives 0 and sets
    ``div_by_zero``. Bit-exact with ``hw.arith.divide.Divider``.
    """
    nc = numerics
    num, den = _i64(num), _i64(den)
    num, den = np.broadcast_arrays(num, den)
    s = nc.div_shift
    N = np.abs(num) << np.int64(max(s, 0))
    D = np.abs(den) << np.int64(max(-s, 0))
    neg = (num < 0) != (den < 0)
    dz = den == 0
    Dsafe = np.where(dz, 1, D)
    qb = nc.out.width + 1  # quotient bits incl. one round bit
    qext = (2 * N) // Dsafe
    rem = (2 * N) - qext * Dsafe
    over = qext >= (np.int64(1) << np.int64(qb))
    rbit = qext & 1
    q = qext >> 1
    sticky = rem != 0
    if nc.rounding == "floor":
        up = neg & ((rbit == 1) | sticky)
    elif nc.rounding == "nearest_even":
        up = (rbit == 1) & (sticky | ((q & 1) == 1))
    else:
        up = rbit == 1
    mag = q + up.astype(np.int64)
    val = np.where(neg, -mag, mag)
    hi, lo = np.int64(nc.out.max_code), np.int64(nc.out.min_code)
    val = np.where(over, np.where(neg, lo, hi), val)
    sat = over | (val > hi) | (val < lo)
    val = np.clip(val, lo, hi)
    val = np.where(dz, 0, val)
    sat = sat & ~dz
    return val, sat, dz
