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

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fusemax.errors import FuseMaxError
from fusemax.hw.arith.divide import round_quotient_hdl
from fusemax.hw.arith.exp2 import Exp2, exp2_horner_step_hdl, exp2_output_hdl, exp2_reduce_hdl


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


class PipelinedSigmoid(wiring.Component):
    """The same sigmoid as :class:`Sigmoid`, fully pipelined: a new ``x`` every cycle.

    What: ``y = sigmoid(x)`` from ``x = x'·log2(e)`` in the score format, bit-exact with
    :func:`fusemax.sw.golden_variants.sigmoid_codes` (and with :class:`Sigmoid`): ``t =
    exp2(−|x|)`` then ``y = round(num / (1 + t))``, ``num = 1`` for x >= 0 and ``t``
    otherwise, saturated to ``out`` (``sat`` flags it).

    Why: a flow engine needs 2E sigmoids per token, one per cycle; the sequential
    :class:`Sigmoid` delivers one per LATENCY cycles. This unit unrolls both of its loops
    into pipeline stages built from the same combinational helpers, so it never stalls.

    Stages (``d = exp_degree``, ``qb = out.frac + 2`` quotient bits), as :class:`Sigmoid`
    runs them sequentially:

    * 1: range reduction of −|x| (``exp2_reduce_hdl``) and the first Horner step (by the
      constant c_d, ``exp2_horner_step_hdl``); 2 .. d: one Horner step each (constant c_i, one
      multiplier per stage); d + 1: ``exp2_output_hdl`` (t, the Exp2's output);
    * d + 2: division load (``r = num``, ``D = 1 + t``, carried down the pipe); then one
      stage per quotient bit (restoring: ``fits = r >= D``, ``r = (fits ? r − D : r) << 1``,
      the quotient growing by one bit per stage); the last stage rounds
      (``round_quotient_hdl``) and saturates into the output registers.

    Latency ``LATENCY = (d + 1) + qb + 2 = d + out.frac + 5`` cycles, equal to
    ``Sigmoid.LATENCY`` (**24** for the default numerics, d = 4 and the u16.15 output): an
    ``x`` presented with ``valid_in`` in cycle 0 comes out with ``valid_out`` in cycle
    LATENCY. Throughput one sigmoid per cycle, results in input order; bubbles
    (``valid_in = 0``) travel through as ``valid_out = 0`` cycles. ``y``/``sat``/``tag_out``
    are meaningful when ``valid_out`` is high and hold the last result otherwise. ``tag_in``
    travels with its ``x`` (e.g. the destination of the result).

    Cost (default numerics ``preset("tiny")``, tag_width 0, the Yosys flow of
    docs/synthesis.md via :func:`fusemax.hw.synth.synthesize_component`): **8,386 cells**,
    940 flip-flops, 3 multipliers (17 × 10 bits, Horner stages 2 .. d; stage 1 multiplies by
    the constant c_d, which folds away), against 2,965 cells, 114 flip-flops and 1 multiplier
    for the sequential :class:`Sigmoid`: about 2.8x the area for 24x the throughput (24
    sequential units would be ~71,000 cells). Most of the flip-flops carry the remainder and
    the divisor down the qb division stages. Measured (~5 s) with::

        .venv/bin/python -c "from fusemax.config import preset; \\
        from fusemax.hw.arith.sigmoid import PipelinedSigmoid; \\
        from fusemax.hw.synth import synthesize_component; \\
        print(synthesize_component(PipelinedSigmoid(preset('tiny').numerics), \\
        'sigmoid_pipe')['total'])"

    Ports (no busy/ready)
    ---------------------
    valid_in : In(1), x : In(signed(numerics.score.width)), tag_in : In(tag_width) (only if
    tag_width > 0); valid_out : Out(1), y : Out(out.shape()), sat : Out(1), tag_out :
    Out(tag_width) (only if tag_width > 0).
    """

    def __init__(self, numerics, out=None, tag_width: int = 0):
        self.numerics = numerics
        self.out = numerics.exp if out is None else out
        try:
            self.quotient_bits = quotient_bits_for(self.out)
            if not isinstance(tag_width, int) or tag_width < 0:
                raise FuseMaxError(f"PipelinedSigmoid: tag_width must be an integer >= 0, "
                                   f"got {tag_width!r}")
        except FuseMaxError:
            self._MustUse__silence = True  # not built: no "created but never used" warning
            raise
        self.tag_width = tag_width
        self.LATENCY = numerics.exp_cycles + self.quotient_bits + 2
        members = {"valid_in": In(1), "x": In(signed(numerics.score.width))}
        if tag_width:
            members["tag_in"] = In(tag_width)
        members.update({"valid_out": Out(1), "y": Out(self.out.shape()), "sat": Out(1)})
        if tag_width:
            members["tag_out"] = Out(tag_width)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        nc, out = self.numerics, self.out
        fs, ef, d = nc.score.frac, nc.exp_frac, nc.exp_degree
        qb = self.quotient_bits
        codes = nc.coefficient_codes()  # c0..cd
        one = 1 << nc.exp.frac
        tw = nc.exp.width - int(nc.exp.signed)  # magnitude bits of t (t >= 0)
        dw = max(tw, ef + 1) + 1                # D = one + t
        rw = dw + 1                             # r < 2D
        shw = (ef + 2).bit_length()
        tgw = self.tag_width

        def regs(i, **shapes):
            """The pipeline registers of stage ``i`` (valid, tag and ``shapes``)."""
            s = {"valid": Signal(name=f"s{i}_valid")}
            if tgw:
                s["tag"] = Signal(tgw, name=f"s{i}_tag")
            for k, shape in shapes.items():
                s[k] = Signal(shape, name=f"s{i}_{k}")
            return s

        def advance(prev, cur, **values):
            """``cur <= prev`` for valid/tag, ``cur[k] <= values[k]``."""
            m.d.sync += cur["valid"].eq(prev["valid"])
            if tgw:
                m.d.sync += cur["tag"].eq(prev["tag"])
            m.d.sync += [cur[k].eq(v) for k, v in values.items()]

        src = {"valid": self.valid_in}
        if tgw:
            src["tag"] = self.tag_in

        # Stage 1: exp2(−|x|) range reduction (−|x| needs one more bit: −2^(w−1) included)
        # and the first Horner step, by the constant c_d.
        neg_abs = Mux(self.x < 0, self.x, -self.x)
        r_in, sh_in = exp2_reduce_hdl(neg_abs, nc)
        cur = regs(1, pos=1, r=unsigned(max(fs, 1)), sh=shw, h=ef + 1)
        first = exp2_horner_step_hdl(Const(codes[d], ef + 1), r_in, Const(codes[d - 1], ef + 1), nc)
        advance(src, cur, pos=self.x >= 0, r=r_in, sh=sh_in, h=first)

        # Stages 2 .. d: the other Horner steps, c_{d-2} .. c_0.
        for i in range(2, d + 1):
            prev, cur = cur, regs(i, pos=1, r=unsigned(max(fs, 1)), sh=shw, h=ef + 1)
            h = exp2_horner_step_hdl(prev["h"], prev["r"], Const(codes[d - i], ef + 1), nc)
            advance(prev, cur, pos=prev["pos"], r=prev["r"], sh=prev["sh"], h=h)

        # Stage d + 1: the exp output t = sat(round(h >> sh)).
        prev, cur = cur, regs(d + 1, pos=1, t=nc.exp.shape())
        advance(prev, cur, pos=prev["pos"], t=exp2_output_hdl(prev["h"], prev["sh"], nc))

        # Stage d + 2: the division load: r = num, D = 1 + t.
        prev, cur = cur, regs(d + 2, r=rw, den=dw)
        t = prev["t"].as_unsigned()[:tw]
        advance(prev, cur, r=Mux(prev["pos"], one, t), den=(t + one)[:dw])

        # Stages d + 3 .. d + 2 + qb: one quotient bit each (the quotient has i bits after
        # stage d + 2 + i).
        for i in range(1, qb + 1):
            prev, cur = cur, regs(d + 2 + i, r=rw, den=dw, quo=i)
            fits = prev["r"] >= prev["den"]
            quo = fits if i == 1 else Cat(fits, prev["quo"])
            advance(prev, cur, r=Mux(fits, prev["r"] - prev["den"], prev["r"]) << 1,
                    den=prev["den"], quo=quo)

        # Stage d + 3 + qb = LATENCY: round, saturate, output (held while not valid).
        yv = round_quotient_hdl(cur["quo"], cur["r"], 0, nc.rounding)  # never negative
        too_hi = yv > out.max_code
        m.d.sync += self.valid_out.eq(cur["valid"])
        with m.If(cur["valid"]):
            m.d.sync += [self.y.eq(Mux(too_hi, out.max_code, yv)), self.sat.eq(too_hi)]
            if tgw:
                m.d.sync += self.tag_out.eq(cur["tag"])
        return m
