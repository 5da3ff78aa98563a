"""Iterative restoring divider for AV = RNV / RD (once per output element, in the 1D array).

Bit-exact with :func:`fusemax.sw.numerics.divide`: the exact quotient of ``num`` (RNV format)
by ``den`` (RD format), expressed in the output format, rounded with the config's rounding
mode (sign-correct: magnitudes are divided, and the round bit + remainder decide the
increment), then saturated.

Algorithm: load ``N = 2·|num| << max(s, 0)``, ``D = |den| << max(-s, 0)`` with
``s = out.frac + rd.frac − rnv.frac``; overflow if ``N >= D << Q`` (``Q = out.width + 1``
quotient bits); then ``Q`` restoring steps, one quotient bit per cycle (compare/subtract
``D << i``); finally round (round bit = quotient LSB, sticky = remainder ≠ 0), apply the sign,
saturate. ``den == 0`` gives ``y = 0`` and ``dz = 1`` (``sat = 0``).

Interface (start/busy/done)
---------------------------
start : In(1)             sample ``num``/``den`` when ``start & ~busy``
num : In(numerics.rnv.shape()), den : In(numerics.rd.shape())
busy : Out(1), done : Out(1)  (one-cycle pulse)
y : Out(numerics.out.shape()), sat : Out(1), dz : Out(1)   valid from ``done`` on

Latency ``out.width + 3`` cycles (start in cycle 0, done in cycle out.width + 3: 1 load,
out.width + 1 quotient bits, 1 round/output) = 19 for a 16-bit output. Not pipelined: one
divide per latency per divider (a new ``start`` is accepted in the cycle ``done`` is high).
"""

from types import SimpleNamespace

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fusemax.hw.formats import FixedFormat


def divider_numerics(num: FixedFormat, den: FixedFormat, out: FixedFormat, rounding: str):
    """The numerics a :class:`Divider` / :class:`PipelinedDivider` reads, for any operand
    formats: ``num / den`` rounded into ``out`` (the v1 case is RNV / RD -> out). The twin is
    :func:`fusemax.sw.golden_variants.divide_codes` with ``num_width = num.width`` and
    ``den_width = den.width``."""
    qb = out.width + 1
    return SimpleNamespace(rnv=num, rd=den, out=out, rounding=rounding,
                           div_shift=out.frac + den.frac - num.frac,
                           div_quotient_bits=qb, div_cycles=qb + 2)


def round_quotient_hdl(quo, rem, neg, mode: str):
    """The rounded magnitude of a restoring division's quotient ``quo`` with one extra bit (the
    round bit, its LSB) and remainder ``rem`` (sticky = rem != 0), for a result of sign ``neg``
    (floor rounds a negative magnitude up) under rounding ``mode``."""
    rbit = quo[0]
    q = quo >> 1
    sticky = rem != 0
    if mode == "floor":
        up = neg & (rbit | sticky)
    elif mode == "nearest_even":
        up = rbit & (sticky | q[0])
    else:
        up = rbit
    return q + up


class _DividerBase(wiring.Component):
    """Ports, operand preparation and the final round/sign/saturate step shared by the
    iterative and the pipelined divider (they differ only in how the quotient bits are made)."""

    def __init__(self, numerics):
        self.numerics = numerics
        self.LATENCY = numerics.div_cycles
        super().__init__({
            "start": In(1),
            "num": In(numerics.rnv.shape()),
            "den": In(numerics.rd.shape()),
            "busy": Out(1),
            "done": Out(1),
            "y": Out(numerics.out.shape()),
            "sat": Out(1),
            "dz": Out(1),
        })

    def _operands(self):
        """``(n_in, d_in, n_w, d_w)``: the magnitudes aligned for the quotient bits."""
        nc = self.numerics
        s = nc.div_shift
        num_mag = Mux(self.num < 0, -self.num, self.num).as_unsigned()
        den_mag = Mux(self.den < 0, -self.den, self.den).as_unsigned()
        n_w = nc.rnv.width + max(s, 0) + 1
        d_w = nc.rd.width + max(-s, 0)
        return (num_mag << (max(s, 0) + 1))[:n_w], (den_mag << max(-s, 0))[:d_w], n_w, d_w

    def _result(self, quo, rem, neg, over):
        """``(clipped, too_hi, too_lo)``: round, apply the sign, saturate."""
        nc = self.numerics
        out = nc.out
        mag = round_quotient_hdl(quo, rem, neg, nc.rounding).as_signed()
        val = Mux(neg, -mag, mag)
        hi, lo = out.max_code, out.min_code
        too_hi = val > hi
        too_lo = val < lo
        return Mux(over, Mux(neg, lo, hi), Mux(too_hi, hi, Mux(too_lo, lo, val))), too_hi, too_lo


class Divider(_DividerBase):
    def elaborate(self, platform):
        m = Module()
        qb = self.numerics.div_quotient_bits
        n_in, d_in, n_w, d_w = self._operands()

        rem = Signal(n_w, name="rem")
        dsh = Signal(d_w + qb, name="dsh")  # D << i for the current step i
        quo = Signal(qb, name="quo")
        neg = Signal(name="neg")
        over = Signal(name="over")
        dz = Signal(name="dz_r")
        step = Signal(range(qb + 1), name="step")

        # Final rounding, sign and saturation (from the registers, in the output cycle).
        clipped, too_hi, too_lo = self._result(quo, rem, neg, over)

        m.d.sync += self.done.eq(0)
        with m.If(~self.busy):
            with m.If(self.start):
                m.d.sync += [
                    rem.eq(n_in),
                    dsh.eq(d_in << (qb - 1)),
                    quo.eq(0),
                    neg.eq((self.num < 0) ^ (self.den < 0)),
                    over.eq(n_in >= (d_in << qb)),
                    dz.eq(self.den == 0),
                    step.eq(qb),
                    self.busy.eq(1),
                ]
        with m.Else():
            with m.If(step != 0):
                trial = rem - dsh
                fits = rem >= dsh
                m.d.sync += [
                    rem.eq(Mux(fits, trial, rem)),
                    quo.eq((quo << 1) | fits),
                    dsh.eq(dsh >> 1),
                    step.eq(step - 1),
                ]
            with m.Else():
                m.d.sync += [
                    self.y.eq(Mux(dz, 0, clipped)),
                    self.sat.eq(~dz & (over | too_hi | too_lo)),
                    self.dz.eq(dz),
                    self.done.eq(1),
                    self.busy.eq(0),
                ]
        return m


class PipelinedDivider(_DividerBase):
    """The same divide as :class:`Divider`, unrolled into one stage per quotient bit.

    Same ports, bit-exact results and latency (``out.width + 3``), but it accepts a new
    ``start`` every cycle (``busy`` is always 0): throughput one divide per cycle, as the
    paper's cost model assumes, for ``out.width + 1`` comparator stages of area.
    ``done`` is high in cycle L for the operation started in cycle 0 (results stream out in
    order, one per cycle).
    """

    def elaborate(self, platform):
        m = Module()
        qb = self.numerics.div_quotient_bits
        n_in, d_in, n_w, d_w = self._operands()

        def stage(i):
            return {
                "valid": Signal(name=f"s{i}_valid"),
                "rem": Signal(n_w, name=f"s{i}_rem"),
                "d": Signal(d_w, name=f"s{i}_d"),
                "quo": Signal(qb, name=f"s{i}_quo"),
                "neg": Signal(name=f"s{i}_neg"),
                "over": Signal(name=f"s{i}_over"),
                "dz": Signal(name=f"s{i}_dz"),
            }

        st = [stage(0)]
        m.d.sync += [
            st[0]["valid"].eq(self.start),
            st[0]["rem"].eq(n_in),
            st[0]["d"].eq(d_in),
            st[0]["quo"].eq(0),
            st[0]["neg"].eq((self.num < 0) ^ (self.den < 0)),
            st[0]["over"].eq(n_in >= (d_in << qb)),
            st[0]["dz"].eq(self.den == 0),
        ]
        for i in range(qb):
            prev, cur = st[-1], stage(i + 1)
            dsh = prev["d"] << (qb - 1 - i)
            fits = prev["rem"] >= dsh
            m.d.sync += [
                cur["valid"].eq(prev["valid"]),
                cur["rem"].eq(Mux(fits, prev["rem"] - dsh, prev["rem"])),
                cur["d"].eq(prev["d"]),
                cur["quo"].eq((prev["quo"] << 1) | fits),
                cur["neg"].eq(prev["neg"]),
                cur["over"].eq(prev["over"]),
                cur["dz"].eq(prev["dz"]),
            ]
            st.append(cur)

        last = st[-1]
        clipped, too_hi, too_lo = self._result(last["quo"], last["rem"], last["neg"], last["over"])
        m.d.sync += [
            self.done.eq(last["valid"]),
            self.y.eq(Mux(last["dz"], 0, clipped)),
            self.sat.eq(~last["dz"] & (last["over"] | too_hi | too_lo)),
            self.dz.eq(last["dz"]),
        ]
        m.d.comb += self.busy.eq(0)
        return m
