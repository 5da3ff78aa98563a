"""The entropy finisher: H of every query of a block from its final RM, RD and RT.

``attention-entropy`` (``MODE entropy=1``, a design with ``entropy_unit``) adds the running sum
RT = Σ SLN·BQK to each 1D lane (docs/variants.md); at the end of a block the entropy of query
p, in nats, is

    H = ln 2 · (log2 RD + (RM·RD − RT) / RD)

(the 1-pass identity of the reference's section 4.2, in base 2: the scores are x·log2 e).
Bit-exact with :func:`fusemax.sw.golden_variants.entropy_codes`:

* ``N = RM·RD − RT``, exact (``entropy_num_format``: 53 bits, frac ``max(score.frac + rd.frac,
  rnv.frac)`` for the presets): one multiplier;
* ``D = N / RD`` into :data:`~fusemax.sw.golden_variants.ENTROPY_BITS_FORMAT` (s32.16) on an
  iterative :class:`~fusemax.hw.arith.Divider` built for these formats
  (:func:`~fusemax.hw.arith.divide.divider_numerics`), while a :class:`~fusemax.hw.arith.Log2`
  computes ``L = log2 RD`` beside it;
* ``H₂ = sat(L + D)`` in s32.16, ``H = sat(round(H₂ · round(ln 2 · 2^exp.frac)))`` in
  :data:`~fusemax.sw.golden_variants.ENTROPY_FORMAT` (s16.11); 0 where RD = 0 (a divide by
  zero, flagged ``dz``).

One unit serves all ``cols`` lanes, one lane after another: the sequencer's AV reads RT from
the register files after its divides and raises ``cap``; the unit takes every lane's RM, RD and
RT (and which lanes hold real queries) at once, so the lanes are free for the next block at
once, computes the lanes in turn (``cols · (L + 3) + 1`` cycles from ``cap`` to the store, L = 35
the s32.16 divider's latency: 8 · 38 + 1 = 305 on ``small``; :func:`finisher_cycles`) and
stores the block's H as one memory line (lane c = query p_base + c) at ``addr`` (the output
block's line F). Meanwhile the next block's tiles run; its AV waits for the unit (``busy``).
Why shared rather than per lane: a block lasts (M / rows)·(E + F + 1) cycles, more than the
unit needs once a block has ten tiles on ``small`` with E = F = 16 (M ≥ 80: 10 · 33 > 305),
and a per-lane divider, log2 and 16 × 36 multiplier would cost about 8× the cells for no gain
in that regime.

Interface
---------
cap : In(1)                 take ``rm``, ``rd``, ``rt``, ``addr`` and the lanes' validity
                            (``p_base + c < P``) and start (ignored while ``busy``)
rm, rd, rt : In(arrays)     per lane: the final RM (score codes), RD, RT (register-file word)
p_base, P : In              the block's first query and the query count (flags of real lanes)
addr : In(mem_addr_width)   where H goes
busy : Out(1)               from ``cap`` until the H line is stored
st_valid, st_addr, st_data : Out; st_ready : In   one store (``st_data`` = cols 16-bit lanes)
out_sat, dz : Out(1)        one-cycle pulses: H of a real query saturated (``ENTROPY`` formats
                            or the divide) / its RD was 0
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fusemax.hw.arith import Divider, Log2, Requant
from fusemax.hw.arith.divide import divider_numerics
from fusemax.hw.array2d import MASK_W
from fusemax.hw.pe1d import rf_width
from fusemax.sw.golden_variants import ENTROPY_BITS_FORMAT, ENTROPY_FORMAT, entropy_num_format


def entropy_formats(numerics) -> dict:
    """The finisher's formats: ``num`` (N = RM·RD − RT, :func:`~fusemax.sw.golden_variants.
    entropy_num_format`), ``bits`` (D, H₂), ``out`` (H) and the constants ``ln2`` (code),
    the shifts of RM·RD and RT into N's fraction."""
    num, sh_prod, sh_rt = entropy_num_format(numerics)
    return {"num": num, "bits": ENTROPY_BITS_FORMAT, "out": ENTROPY_FORMAT,
            "ln2": round(math.log(2.0) * (1 << numerics.exp.frac)),
            "sh_prod": sh_prod, "sh_rt": sh_rt}


def finisher_cycles(config) -> int:
    """Cycles from the AV's capture to the H line's store (memory ready): one lane after
    another, START, the divide (``div_cycles`` of its :func:`divider_numerics`; the Log2 beside
    it is shorter), the result latched, FINISH; then the store: ``cols · (div + 3) + 1``
    (35-cycle divides for every preset: 305 on ``small``)."""
    nc = config.numerics
    fm = entropy_formats(nc)
    div = divider_numerics(fm["num"], nc.rd, fm["bits"], nc.rounding).div_cycles
    return config.cols * (div + 3) + 1


class EntropyUnit(wiring.Component):
    def __init__(self, config):
        self.config = config
        nc = config.numerics
        C = config.cols
        super().__init__({
            "cap": In(1),
            "rm": In(data.ArrayLayout(nc.score.shape(), C)),
            "rd": In(data.ArrayLayout(nc.rd.shape(), C)),
            "rt": In(data.ArrayLayout(signed(rf_width(config)), C)),
            "p_base": In(MASK_W["p_base"]), "P": In(MASK_W["P"]),
            "addr": In(config.mem_addr_width),
            "busy": Out(1),
            "st_valid": Out(1), "st_addr": Out(config.mem_addr_width), "st_data": Out(16 * C),
            "st_ready": In(1),
            "out_sat": Out(1), "dz": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        nc = cfg.numerics
        mode = nc.rounding
        C = cfg.cols
        fm = entropy_formats(nc)
        bits, out = fm["bits"], fm["out"]

        m.submodules.div = div = Divider(divider_numerics(fm["num"], nc.rd, bits, mode))
        m.submodules.log2 = lg = Log2(nc, nc.rd.width, nc.rd.frac, bits.frac)

        # the captured block: per lane RM, RD, RT, real query; the results H
        rm_r = Array(Signal(nc.score.shape(), name=f"rm_l{c}") for c in range(C))
        rd_r = Array(Signal(nc.rd.shape(), name=f"rd_l{c}") for c in range(C))
        rt_r = Array(Signal(signed(rf_width(cfg)), name=f"rt_l{c}") for c in range(C))
        ok_r = Signal(C, name="lane_real")
        h_r = [Signal(out.shape(), name=f"h_l{c}") for c in range(C)]
        h_arr = Array(h_r)
        lane = Signal(range(max(C, 2)), name="lane")

        # N = RM·RD − RT of the current lane (exact)
        num = Signal(fm["num"].shape(), name="num")
        m.d.comb += num.eq((rm_r[lane] * rd_r[lane] << fm["sh_prod"]) - (rt_r[lane] << fm["sh_rt"]))
        m.d.comb += [div.num.eq(num), div.den.eq(rd_r[lane]), lg.x.eq(rd_r[lane])]

        # results of the lane: D and its flags at the divider's done, L at the log2's
        d_v, d_sat, d_dz = Signal.like(div.y, name="d"), Signal(name="d_sat"), Signal(name="d_dz")
        l_v = Signal.like(lg.y, name="l")
        got_d, got_l = Signal(name="got_d"), Signal(name="got_l")
        with m.If(div.done):
            m.d.sync += [d_v.eq(div.y), d_sat.eq(div.sat), d_dz.eq(div.dz), got_d.eq(1)]
        with m.If(lg.done):
            m.d.sync += [l_v.eq(lg.y), got_l.eq(1)]

        # H₂ = sat(L + D); H = sat(round(H₂·ln2)), 0 on a divide by zero
        s = Signal(signed(max(len(l_v), len(d_v)) + 1), name="h2_sum")
        m.d.comb += s.eq(l_v + d_v)
        m.submodules.rq_bits = rq_bits = Requant(s.shape(), bits.frac, bits, mode)
        m.d.comb += rq_bits.x.eq(s)
        prod = Signal(signed(bits.width + fm["ln2"].bit_length() + 1), name="h2_ln2")
        m.d.comb += prod.eq(rq_bits.y * Const(fm["ln2"], signed(fm["ln2"].bit_length() + 1)))
        m.submodules.rq_out = rq_out = Requant(prod.shape(), bits.frac + nc.exp.frac, out, mode)
        m.d.comb += rq_out.x.eq(prod)

        real = ok_r.bit_select(lane, 1)
        words = [Signal(signed(16), name=f"st_lane{c}") for c in range(C)]  # sign-extended
        m.d.comb += [w.eq(h) for w, h in zip(words, h_r)]
        m.d.comb += self.st_data.eq(Cat(*words))

        with m.FSM(name="ent"):
            with m.State("IDLE"):
                with m.If(self.cap):
                    m.d.sync += [self.busy.eq(1), lane.eq(0), self.st_addr.eq(self.addr),
                                 ok_r.eq(Cat(*[self.p_base + c < self.P for c in range(C)]))]
                    for c in range(C):
                        m.d.sync += [rm_r[c].eq(self.rm[c]), rd_r[c].eq(self.rd[c]),
                                     rt_r[c].eq(self.rt[c])]
                    m.next = "START"
            with m.State("START"):
                m.d.comb += [div.start.eq(1), lg.start.eq(1)]
                m.d.sync += [got_d.eq(0), got_l.eq(0)]
                m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(got_d & got_l):
                    m.next = "FINISH"
            with m.State("FINISH"):
                m.d.sync += h_arr[lane].eq(Mux(d_dz, 0, rq_out.y))
                m.d.comb += [self.out_sat.eq(real & ~d_dz & (d_sat | rq_bits.sat | rq_out.sat)),
                             self.dz.eq(real & d_dz)]
                with m.If(lane == C - 1):
                    m.d.sync += self.st_valid.eq(1)
                    m.next = "STORE"
                with m.Else():
                    m.d.sync += lane.eq(lane + 1)
                    m.next = "START"
            with m.State("STORE"):
                with m.If(self.st_ready):
                    m.d.sync += [self.st_valid.eq(0), self.busy.eq(0)]
                    m.next = "IDLE"
        return m
