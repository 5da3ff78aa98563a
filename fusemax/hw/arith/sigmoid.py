"""Sequential sigmoid for sigmoid attention: ``Exp2`` of −|x| then a bit-serial reciprocal.

Computes ``y = sigmoid(x)`` from ``x = x'·log2(e)`` in the score format (a BQK code), bit-exact
with :func:`fusemax.sw.golden_variants.sigmoid_codes`:

1. ``t = exp2(−|x|)`` in the exp format, by an :class:`~fusemax.hw.arith.exp2.Exp2` submodule
   (d + 1 cycles);
2. ``y = round(num / (1 + t))`` in the output format (default: the exp format), ``num = 1``
   for x >= 0 and ``num = t`` otherwise: the exact quotient correctly rounded with the config's
   rounding mode (round bit + sticky remainder), as the ``Divider`` twin does.

The quotient ``Q = floor(num·2^(s+1) / D)`` (``s = out.frac``, ``D = 1 + t`` in exp codes)
has ``s + 2`` bits (``num <= D`` always, equal only for x >= 0 with t = 0, so ``Q <=
2^(s+1)``: nothing overflows). Restoring long division develops it one bit per cycle:
``r = num``; per step ``fits = r >= D``, ``r = (fits ? r − D : r) << 1``, ``Q = 2Q + fits``:
one subtractor/comparator and a mux on ``exp.width + 2`` bits, no multiplier. The divisor is
not copied: it is ``one + exp.y`` (the Exp2's output register holds ``t`` until its next
start, which cannot come while this unit is busy). Then ``y = sat(Q/2 + up)``, ``up`` from
the round bit ``Q[0]``, the sticky bit ``r != 0`` and the rounding mode; ``sat`` flags ``y >
out.max_code`` (never for the default exp-format output, which holds 1.0).

Why bit-serial and not Newton–Raphson: NR needs a seed table, a ~17 × 17 multiplier for two
or three iterations and, for the correctly rounded (bit-exact) quotient, one more multiply to
check the remainder. The PE's MAC cannot lend it: in the FuseMax binding it is busy every
cycle (BQK of one tile, SLNV of the other) while the exps run (docs/architecture.md
section 5), and the Exp2's Horner multiplier is only ``(exp_frac + 1) × score.frac`` bits
wide. So NR would bring its own multiplier, about the size of the PE's MAC (2,496 cells),
whereas this divider and its control are 493 cells (docs/variants.md, "Sigmoid unit"); its
longer latency hides behind the MACs when E + F >= L + 5.

Interface (start/busy/done, like Exp2)
--------------------------------------
start : In(1)       sample ``x`` when ``start & ~busy``
x : In(signed(numerics.score.width))
busy : Out(1)       high from the cycle after start until done
done : Out(1)       one-cycle pulse; ``y``/``sat`` are valid from then until the next start
                    completes
y : Out(out.shape()), sat : Out(1)

Latency ``(d + 1) + (out.frac + 2) + 2`` cycles = ``d + out.frac + 5`` (start in cycle 0; the
Exp2 is done in cycle d + 1 and the divider loads then; out.frac + 2 quotient bits; one
round/output cycle; done in cycle L): **24** for the default d = 4 and the u16.15 output
(fx16 and int8 numerics alike: they share the score and exp formats). A new ``start`` is
accepted in the cycle ``done`` is high (throughput one sigmoid per L cycles).
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fusemax.errors import FuseMaxError
from fusemax.hw.arith.divide import round_quotient_hdl
from fusemax.hw.arith.exp2 import Exp2


def quotient_bits_for(out) -> int:
    """Quotient bits developed for the output format ``out``: ``out.frac + 2`` (the round bit
    included); FuseMaxError for ``out.frac < 0``."""
    if out.frac < 0:
        raise FuseMaxError(f"Sigmoid: output format {out.describe()} needs frac >= 0")
    return out.frac + 2


class SigmoidReciprocal(wiring.Component):
    """The sigmoid's second half on an Exp2 it does not own: ``y = round(num / (1 + t))``.

    ``start`` (with the Exp2's start) samples ``neg`` (x < 0: num = t, else 1) and ``zero``
    (the result is 0: a masked key); the division starts at ``t_done`` (the Exp2's done) from
    ``t`` (its output register, which must hold until ``done``). ``done`` comes
    ``quotient_bits + 2`` cycles after ``t_done``; ``y``/``sat`` hold until the next result.
    The 2D PE uses it with its own Exp2 (docs/variants.md, sigmoid attention);
    :class:`Sigmoid` wraps it with an Exp2 of its own.
    """

    def __init__(self, numerics, out=None):
        self.numerics = numerics
        self.out = numerics.exp if out is None else out
        self.quotient_bits = quotient_bits_for(self.out)
        super().__init__({
            "start": In(1), "neg": In(1), "zero": In(1),
            "t": In(numerics.exp.shape()), "t_done": In(1),
            "busy": Out(1), "done": Out(1),
            "y": Out(self.out.shape()), "sat": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        nc, out = self.numerics, self.out
        ef = nc.exp.frac
        qb = self.quotient_bits
        one = 1 << ef
        tw = nc.exp.width - int(nc.exp.signed)  # magnitude bits of t (t >= 0)
        dw = max(tw, ef + 1) + 1                # D = one + t
        rw = dw + 1                             # r < 2D

        pos = Signal(name="pos")          # x >= 0: numerator 1, else t
        zero = Signal(name="zero_r")      # the result is 0 (masked)
        div = Signal(name="div")          # dividing (the exp is done)
        step = Signal(range(qb + 1), name="step")
        r = Signal(rw, name="r")
        quo = Signal(qb, name="quo")

        t = self.t.as_unsigned()[:tw]
        den = (t + one)[:dw]
        fits = r >= den
        yv = round_quotient_hdl(quo, r, 0, nc.rounding)  # the quotient is never negative
        too_hi = yv > out.max_code

        m.d.sync += self.done.eq(0)
        with m.If(~self.busy):
            with m.If(self.start):
                m.d.sync += [pos.eq(~self.neg), zero.eq(self.zero), self.busy.eq(1)]
        with m.Elif(~div):
            with m.If(self.t_done):
                m.d.sync += [
                    r.eq(Mux(pos, one, t)),
                    quo.eq(0),
                    step.eq(qb),
                    div.eq(1),
                ]
        with m.Elif(step != 0):
            m.d.sync += [
                r.eq(Mux(fits, r - den, r) << 1),
                quo.eq((quo << 1) | fits),
                step.eq(step - 1),
            ]
        with m.Else():
            m.d.sync += [
                self.y.eq(Mux(zero, 0, Mux(too_hi, out.max_code, yv))),
                self.sat.eq(~zero & too_hi),
                self.done.eq(1),
                self.busy.eq(0),
                div.eq(0),
            ]
        return m


class Sigmoid(wiring.Component):
    def __init__(self, numerics, out=None):
        self.numerics = numerics
        self.out = numerics.exp if out is None else out
        self.quotient_bits = quotient_bits_for(self.out)
        self.LATENCY = numerics.exp_cycles + self.quotient_bits + 2
        super().__init__({
            "start": In(1),
            "x": In(signed(numerics.score.width)),
            "busy": Out(1),
            "done": Out(1),
            "y": Out(self.out.shape()),
            "sat": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.exp = exp = Exp2(self.numerics)
        m.submodules.recip = recip = SigmoidReciprocal(self.numerics, self.out)
        go = self.start & ~self.busy
        # exp2(−|x|): −|x| fits the Exp2's one-bit-wider input (−2^(w−1) included)
        m.d.comb += [
            exp.start.eq(go),
            exp.x.eq(Mux(self.x < 0, self.x, -self.x)),
            exp.x_ninf.eq(0),
            recip.start.eq(go), recip.neg.eq(self.x < 0), recip.zero.eq(0),
            recip.t.eq(exp.y), recip.t_done.eq(exp.done),
            self.busy.eq(recip.busy), self.done.eq(recip.done),
            self.y.eq(recip.y), self.sat.eq(recip.sat),
        ]
        return m
