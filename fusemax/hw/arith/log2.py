"""Sequential base-2 logarithm for the entropy output: normaliser + Horner polynomial.

Computes ``y = log2(x)`` of a positive fixed-point code ``x`` (``x_width`` bits, ``x_frac``
fraction bits; by default the running denominator RD, ``numerics.rd`` = s36.15) into
``out_frac`` fraction bits (default :data:`~fusemax.sw.golden_variants.LOG2_FRAC` = 16),
bit-exact with :func:`fusemax.sw.golden_variants.log2_codes` (``mode = numerics.rounding``).
``entropy_golden`` needs it once per query at the end of a block: L = log2 RD.

1. **Normalise** (the cycle that samples ``start``): with ``n = x_width − 1`` magnitude bits,
   a logarithmic shifter finds the leading one and shifts it to bit n − 1 at once: stage
   ``s = 2^i`` (i descending) shifts left by s when the top s bits are zero, and that test is
   bit i of the leading-zero count ``lz`` (the priority encoder; the same binary search as the
   twin's ``_bit_length``). The exponent is ``e = k − x_frac`` with ``k = n − 1 − lz``; the
   16 bits after the leading one are the mantissa fraction ``u`` (lower bits truncated, zeros
   below when k < 16, as the twin).
2. **Horner** on a signed register ``h`` (frac 16): ``h = c5``; ``h = round(h·u / 2^16) + c_i``
   for i = 4 .. 1 (one multiply + round + add per cycle, one s18 × u16 multiplier), with the
   coefficient codes ``round(c·2^16)`` of :data:`~fusemax.sw.golden_variants.LOG2_COEFFS` and
   the config's rounding, as the twin. ``h`` is sized from an exhaustive run of the recurrence
   over all 2^16 mantissas (its whole input domain; :func:`log2_horner_bounds`): s18 for
   every rounding mode.
3. **Output**, merged with the last product: ``p = round(h·u / 2^16)`` (log2(1 + u), which
   reaches 65,537/65,536 at the top of the mantissa range, so this is an add, not a
   concatenation), ``y = round((e·2^16 + p) / 2^(16 − out_frac))``. ``y`` has the exact width
   of its range (:attr:`Log2.out`: s22.16 for RD s36.15), so nothing saturates.

``x <= 0`` gives ``y = 0`` (as the twin) and raises ``nonpos``; the caller flags it (in the
entropy an RD of 0 is a divide by zero, whose H is 0).

Why this shape: it is ``Exp2``'s structure (a start/busy/done Horner evaluator on one
multiplier) with the range reduction replaced by the normaliser. The normaliser gets the
start cycle to itself rather than chaining the first (constant) Horner product behind its
~log2(n) mux levels, as ``Exp2`` can do with its directly available fraction bits: the
critical path stays one Horner step, at the price of one cycle that does not matter, since
the log2 runs once per query and block next to the 35-cycle divide of the same entropy step
(D = N / RD into s32.16). The steps are also available as combinational helpers
(``log2_normalize_hdl``, ``log2_product_hdl``, ``log2_output_hdl``) for a PE that runs the
Horner steps on a multiplier of its own.

Interface (start/busy/done, like Exp2)
--------------------------------------
start : In(1)       sample ``x`` when ``start & ~busy``
x : In(signed(x_width))
busy : Out(1)       high from the cycle after start until done
done : Out(1)       one-cycle pulse; ``y``/``nonpos`` are valid from then until the next start
                    completes
y : Out(out.shape()), nonpos : Out(1)

Latency **6** cycles = 1 normalise + 5 products (the last one with the exponent add and the
output rounding): start in cycle 0, done in cycle 6, for every numerics and format (the
degree is fixed by :data:`LOG2_COEFFS`). A new ``start`` is accepted in the cycle ``done``
is high (throughput one log2 per 6 cycles).

Cost (``scripts/log2_cost.py``, the flow of docs/synthesis.md): 2,761 cells, 69 flip-flops,
one multiplier for RD s36.15 (fx16 and int8 alike: same RD format and rounding); the Exp2 is
2,489 cells.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fusemax.config import NumericsConfig
from fusemax.errors import FuseMaxError
from fusemax.hw.formats import FixedFormat, check_rounding, round_shift, round_shift_hdl
from fusemax.sw.golden_variants import LOG2_COEFF_CODES, LOG2_FRAC

#: Fraction bits of the mantissa ``u``, the Horner register and log2(1 + u).
G = LOG2_FRAC


def _signed_bits(v: int) -> int:
    """Bits of the smallest two's-complement register holding ``v``."""
    return (v if v >= 0 else -v - 1).bit_length() + 1


@lru_cache(maxsize=None)
def log2_horner_bounds(mode: str) -> dict[str, int]:
    """Exact ranges of the Horner register ``h`` and of log2(1 + u) ``p`` (frac 16) for
    rounding ``mode``, from the recurrence run over every mantissa u in [0, 2^16)."""
    check_rounding(mode)
    codes = LOG2_COEFF_CODES
    u = np.arange(1 << G, dtype=np.int64)
    h = np.full(u.shape, codes[-1], np.int64)
    lo, hi = codes[-1], codes[-1]
    for c in reversed(codes[:-1]):
        h = round_shift(h * u, G, mode) + np.int64(c)
        lo, hi = min(lo, int(h.min())), max(hi, int(h.max()))
    p = round_shift(h * u, G, mode)
    return {"h_min": lo, "h_max": hi, "p_min": int(p.min()), "p_max": int(p.max())}


def log2_normalize_hdl(x, x_width: int, x_frac: int):
    """Normalisation (combinational): ``x`` (signed ``x_width`` bits) -> ``(u, e, nonpos)``:
    ``u`` the 16 mantissa bits after the leading one, ``e = k − x_frac`` (signed, k the
    leading one's position), ``nonpos = x <= 0`` (u and e are then meaningless)."""
    n = x_width - 1
    v = x.as_unsigned()[:n]
    zs = []
    for i in reversed(range((n - 1).bit_length())):  # 2^stages > n - 1 >= lz
        s = 1 << i
        z = v[n - s:] == 0
        v = Mux(z, (v << s)[:n], v)
        zs.append(z)
    lz = Cat(*reversed(zs))  # bit i: stage 2^i shifted
    if n - 1 >= G:
        u = v[n - 1 - G: n - 1]
    elif n > 1:
        u = Cat(Const(0, G - (n - 1)), v[: n - 1])
    else:
        u = Const(0, G)
    c = n - 1 - x_frac
    c = Const(c, signed(_signed_bits(c)))
    e = c - lz if len(lz) else c
    return u, e, x <= 0


def log2_product_hdl(h, u, mode: str):
    """The multiply of every Horner step (combinational; the one multiplier and its
    rounding): ``round(h·u / 2^16)``, frac 16; a Horner step adds the next coefficient to it.
    A PE that runs the log2 on a multiplier of its own does this."""
    return round_shift_hdl(h * u, G, mode)


def log2_output_hdl(p, e, mode: str, out_frac: int):
    """Last step (combinational) from the last product ``p = round(h·u / 2^16)``:
    ``round((e·2^16 + p) / 2^(16 − out_frac))`` (a left shift when out_frac > 16); the caller
    truncates to the output width."""
    return round_shift_hdl((e << G) + p, G - out_frac, mode)


class Log2(wiring.Component):
    """``log2(x)`` for positive codes ``x`` (signed ``x_width`` bits, ``x_frac`` fraction
    bits; default the RD format of ``numerics``) into ``out_frac`` fraction bits; see the
    module docstring. ``LATENCY`` = 6, ``out`` the output format."""

    LATENCY = len(LOG2_COEFF_CODES) + 1

    def __init__(self, numerics, x_width: int | None = None, x_frac: int | None = None,
                 out_frac: int = LOG2_FRAC):
        try:
            if not isinstance(numerics, NumericsConfig):
                raise FuseMaxError(f"Log2 needs a NumericsConfig, got {type(numerics).__name__}")
            x_width = numerics.rd.width if x_width is None else x_width
            x_frac = numerics.rd.frac if x_frac is None else x_frac
            self.x_format, self.out = self.formats_for(x_width, x_frac, out_frac,
                                                       numerics.rounding)
        except FuseMaxError:
            self._MustUse__silence = True  # not built: no "created but never used" warning
            raise
        self.numerics = numerics
        b = log2_horner_bounds(numerics.rounding)
        self.h_width = max(_signed_bits(b["h_min"]), _signed_bits(b["h_max"]))
        super().__init__({
            "start": In(1),
            "x": In(signed(x_width)),
            "busy": Out(1),
            "done": Out(1),
            "y": Out(self.out.shape()),
            "nonpos": Out(1),
        })

    @staticmethod
    def formats_for(x_width, x_frac, out_frac, mode: str = "nearest_even"):
        """``(x format, output format)`` of a unit, the output exactly as wide as the range
        of results; FuseMaxError for parameters that cannot work (x narrower than 2 bits or
        wider than the twin's int64 codes allow, non-integers, an output wider than 62 bits)."""
        for what, v in (("x_width", x_width), ("x_frac", x_frac), ("out_frac", out_frac)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
                raise FuseMaxError(f"Log2: {what} must be an integer, got {v!r}")
        x_width, x_frac, out_frac = int(x_width), int(x_frac), int(out_frac)
        if not 2 <= x_width <= 62:
            raise FuseMaxError(f"Log2: x_width {x_width} out of range: a signed input needs 2 to "
                               f"62 bits (the twin works on int64 codes)")
        if abs(x_frac) > 62 or abs(out_frac) > 62:
            raise FuseMaxError(f"Log2: x_frac {x_frac} / out_frac {out_frac} out of range "
                               f"(|frac| <= 62)")
        b = log2_horner_bounds(mode)

        def to_out(v):  # round_shift_to(v, 16, out_frac) on Python ints (|v| < 2^24 here)
            if out_frac >= G:
                return v << (out_frac - G)
            return int(round_shift(np.int64(v), G - out_frac, mode))

        lo = to_out((-x_frac << G) + b["p_min"])  # k = 0 (x = 1): the smallest result
        hi = to_out(((x_width - 2 - x_frac) << G) + b["p_max"])  # k = x_width − 2, largest p
        width = max(2, _signed_bits(min(lo, 0)), _signed_bits(max(hi, 0)))
        if width > 62:
            raise FuseMaxError(f"Log2: the result of log2(s{x_width}.{x_frac}) with {out_frac} "
                               f"fraction bits needs {width} bits > 62; use a smaller out_frac")
        return FixedFormat(x_width, x_frac), FixedFormat(width, out_frac)

    def elaborate(self, platform):
        m = Module()
        mode = self.numerics.rounding
        xf, out = self.x_format, self.out
        codes = LOG2_COEFF_CODES  # c1..c5
        d = len(codes)

        u_in, e_in, nonpos_in = log2_normalize_hdl(self.x, xf.width, xf.frac)
        u = Signal(unsigned(G), name="u")
        e = Signal(range(-xf.frac, xf.width - 1 - xf.frac), name="e")  # k − x_frac, k <= n − 1
        nonpos = Signal(name="nonpos_r")
        h = Signal(signed(self.h_width), name="h")
        step = Signal(range(d), name="step")  # Horner steps with a constant still to do

        coef = Array([Const(c, signed(self.h_width)) for c in codes[:-1]])  # coef[i] = c_(i+1)
        # one multiplier, shared by the steps and the output (|p| <= |h|: p fits h's width)
        p = Signal(signed(self.h_width), name="p")
        m.d.comb += p.eq(log2_product_hdl(h, u, mode))
        yout = log2_output_hdl(p, e, mode, out.frac)

        m.d.sync += self.done.eq(0)
        with m.If(~self.busy):
            with m.If(self.start):
                m.d.sync += [
                    u.eq(u_in),
                    e.eq(e_in),
                    nonpos.eq(nonpos_in),
                    h.eq(codes[-1]),
                    step.eq(d - 1),
                    self.busy.eq(1),
                ]
        with m.Else():
            with m.If(step != 0):
                m.d.sync += [h.eq(p + coef[step - 1]), step.eq(step - 1)]
            with m.Else():
                m.d.sync += [
                    self.y.eq(Mux(nonpos, 0, yout[: out.width].as_signed())),
                    self.nonpos.eq(nonpos),
                    self.done.eq(1),
                    self.busy.eq(0),
                ]
        return m
