"""Sequential exp2 for x <= 0: range reduction + Horner polynomial on a multiplier.

Computes ``y = 2**x`` (x in the score format, one bit wider: the output of ``Sub``) into the
exp format, bit-exact with :func:`fusemax.sw.numerics.exp2`:

1. ``x = -n + r``: ``n`` = the integer bits (negated), ``r`` = the ``score.frac`` fraction bits
   (unsigned); positive x is clamped to 0.
2. Horner on an unsigned ``exp_frac + 1``-bit register ``h`` (values in [0, 2)):
   ``h = c_d``; ``h = sat(round(h*r >> score.frac) + c_i)`` for i = d−1 .. 0 — ``d`` steps,
   each one multiply + add + round, i.e. one MAC cycle. The first step (by the constant c_d)
   is done in the cycle that samples ``start``.
3. ``y = sat(round(h >> (exp_frac − exp.frac + n)))``: a barrel shift with rounding
   (shift amount saturated at exp_frac + 2, where every result is 0).

The three steps are also available as combinational helpers (``exp2_reduce_hdl``,
``exp2_horner_step_hdl``, ``exp2_output_hdl``) for a PE that runs the Horner steps on its own
MAC instead of instantiating ``Exp2``.

``x_ninf`` marks x = −∞ (the first chunk's PRM, RM_old not valid): ``y = 0``.

Interface (start/busy/done)
---------------------------
start : In(1)       sample ``x``/``x_ninf`` when ``start & ~busy``
x : In(signed(numerics.exp_in_width)), x_ninf : In(1)
busy : Out(1)       high from the cycle after start until done
done : Out(1)       one-cycle pulse; ``y`` is valid from then until the next start completes
y : Out(numerics.exp.shape())

Latency ``d + 1`` cycles (start in cycle 0, done in cycle d + 1; 5 for the default d = 4);
with the ``Sub`` that forms x the exp costs d + 2 = 6 cycles (the paper charges 7). A new
``start`` is accepted in the cycle ``done`` is high, so throughput is one exp per d + 1 cycles.
"""

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fusemax.hw.formats import round_shift_hdl


def exp2_reduce_hdl(x, numerics):
    """Range reduction (combinational): ``x`` (signed, frac score.frac) ->
    ``(r, sh)``: ``r`` the unsigned fraction bits, ``sh`` the final right-shift count
    ``n + exp_frac − exp.frac`` saturated at ``exp_frac + 2``. Positive x is clamped to 0."""
    nc = numerics
    fs = nc.score.frac
    max_shift = nc.exp_frac + 2
    xin = Mux(x > 0, 0, x).as_signed()
    int_part = (xin >> fs) if fs > 0 else xin  # floor(x) <= 0
    n = (-int_part).as_unsigned()
    r = xin[:fs] if fs > 0 else Const(0, 1)
    sh_raw = n + (nc.exp_frac - nc.exp.frac)
    return r, Mux(sh_raw > max_shift, max_shift, sh_raw)[: max_shift.bit_length()]


def exp2_horner_step_hdl(h, r, c, numerics):
    """One Horner step (combinational; one MAC): ``sat(round(h·r / 2^score.frac) + c)`` on the
    unsigned ``exp_frac + 1``-bit register. A PE that runs exp on its own MAC does exactly this."""
    nc = numerics
    hmax = (1 << (nc.exp_frac + 1)) - 1
    t = round_shift_hdl(h * r, nc.score.frac, nc.rounding) + c
    return Mux(t > hmax, hmax, t)[: nc.exp_frac + 1]


def exp2_output_hdl(h, sh, numerics):
    """Final step (combinational): ``sat(round(h / 2^sh))`` into the exp format (h >= 0)."""
    nc = numerics
    ef = nc.exp_frac
    q = h >> sh
    sh_m1 = (sh - 1)[: len(sh)]
    rbit = Mux(sh == 0, 0, (h >> sh_m1)[0])
    sticky = Mux(sh <= 1, 0, (h & ((Const(1, ef + 3) << sh_m1) - 1)[: ef + 1]) != 0)
    if nc.rounding == "nearest_even":
        up = rbit & (sticky | q[0])
    elif nc.rounding == "nearest_away":
        up = rbit
    else:
        up = Const(0, 1)
    y = q + up
    return Mux(y > nc.exp.max_code, nc.exp.max_code, y)


class Exp2(wiring.Component):
    def __init__(self, numerics):
        self.numerics = numerics
        nc = numerics
        self.degree = nc.exp_degree
        self.LATENCY = nc.exp_cycles
        super().__init__({
            "start": In(1),
            "x": In(signed(nc.exp_in_width)),
            "x_ninf": In(1),
            "busy": Out(1),
            "done": Out(1),
            "y": Out(nc.exp.shape()),
        })

    def elaborate(self, platform):
        m = Module()
        nc = self.numerics
        fs = nc.score.frac
        ef = nc.exp_frac
        codes = nc.coefficient_codes()  # c0..cd
        d = nc.exp_degree

        max_shift = ef + 2
        r_in, sh_in = exp2_reduce_hdl(self.x, nc)

        r_reg = Signal(unsigned(max(fs, 1)), name="r")
        sh_reg = Signal(max_shift.bit_length(), name="sh")
        ninf_reg = Signal(name="ninf")
        h = Signal(ef + 1, name="h")
        step = Signal(range(d + 1), name="step")  # Horner steps still to do

        coef = Array([Const(c, ef + 1) for c in codes])  # coef[i] = c_i

        def horner(hv, rv, ci):
            return exp2_horner_step_hdl(hv, rv, ci, nc)

        # The first Horner step, from the constant c_d, happens while loading.
        first = horner(Const(codes[d], ef + 1), r_in, Const(codes[d - 1], ef + 1))
        ysat = exp2_output_hdl(h, sh_reg, nc)

        m.d.sync += self.done.eq(0)
        with m.If(~self.busy):
            with m.If(self.start):
                m.d.sync += [
                    r_reg.eq(r_in),
                    sh_reg.eq(sh_in),
                    ninf_reg.eq(self.x_ninf),
                    h.eq(first),
                    step.eq(d - 1),
                    self.busy.eq(1),
                ]
        with m.Else():
            with m.If(step != 0):
                m.d.sync += [
                    h.eq(horner(h, r_reg, coef[step - 1])),
                    step.eq(step - 1),
                ]
            with m.Else():
                m.d.sync += [
                    self.y.eq(Mux(ninf_reg, 0, ysat)),
                    self.done.eq(1),
                    self.busy.eq(0),
                ]
        return m
