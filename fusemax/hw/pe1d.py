"""1D processing element (lane c): the running state of query c of the resident block.

State: ``RM`` + ``RM.valid`` (running max), ``rm_new`` + valid (this tile's RM, broadcast up
column c), ``RD`` (running denominator), and ``RNV[f]`` for f < *max_f* in a register file
(``lib.memory.Memory``, synchronous read). Built from the arith components:

=========  =========================================  =================================
part       component                                  Einsums
=========  =========================================  =================================
``mx``     ``MaxValid(score)``                        RM_new = max_valid(RM, LM)
``sub``    ``Sub(score, score)``                      RM_old - RM_new
``exp``    ``Exp2``                                   PRM = exp2(RM_old - RM_new), d + 1 cycles
``rsd``    ``Rescale(rd, exp)``, ``rqd`` Requant      SPD = RD·PRM; RD = sat(rs(SLD) + SPD)
``rsn``    ``Rescale(rnv, exp)``, ``rqn`` Requant     SPNV = RNV·PRM; RNV = sat(rs(SLNV) + SPNV)
``div``    ``PipelinedDivider``                       AV = RNV[f] / RD, out.width + 3 cycles
=========  =========================================  =================================

(rs = the exact fraction change ``round_shift`` of :mod:`fusemax.hw.formats`.)

No RNV or RD clearing is needed at the first tile of a block (TILE.first clears RM.valid only):
while RM is not valid, PRM = 0, so SPNV = RNV·0 = 0 and SPD = RD·0 = 0, and the first tile
overwrites every RNV[f], f < F, and RD.

Controls: ``reset_state`` (RM.valid = 0, RD = 0: AV.first of a block without tiles),
``reset_rm`` (RM.valid = 0 only: TILE.first, which may issue while the previous block's AV
still divides by RD; RD need not be cleared, see above), ``prm_zero`` (with ``exp_start``:
this PRM is 0, so the sums restart while RM stays: TILE.restart), ``rm_en`` (latch rm_new
from ``lm``), ``exp_start`` (PRM), ``rd_en`` (RD update from ``sld``), ``rf_raddr`` (RNV read
address; data one cycle later), ``rnv_we`` + ``rnv_waddr`` (RNV update from ``slnv`` and the
read data), ``rm_commit`` (RM = rm_new), ``div_start`` (num = read data, den = RD; one
divide per cycle on a ``PipelinedDivider``), ``wb_sel`` (the register file's write data is
the divider's output: AV results overwrite RNV[f] and are stored to memory from there).
Flag outputs are pulses already masked with ``lane_ok`` (query p < P); the divider's flags
(``out_sat``, ``dz``) with ``av_lane_ok``, the lane's validity for the block whose AV runs
(the next block's tiles may already have changed ``lane_ok``).

With ``entropy_unit`` (``MODE entropy``): the register file has one more entry, RT (entry F),
updated by the tile's last SLNV step like RNV[f] (SPT = RT·PRM; RT = sat(rs(SLNQ) + SPT)) but
with SLNQ = Σ SLN·BQK's own round shift (``rt_sel``: exp.frac + score.frac -> rnv.frac);
its saturation is ``rnv_sat``. AV reads it once after the divides (the entropy finisher takes
it with RM and RD).

With ``sigmoid_unit`` (sigmoid attention, ``MODE``): ``sig_mode`` makes PRM 0 for a block's
first tile and 1.0 after it (no max: RD and RNV are plain sums), taken at the exps' start
(RM.valid before the commit, ``prm_zero``) and applied at ``sln_done`` (the 2D sigmoids' done,
so PRM changes when SLN does; the 1D exp does not run); ``nonorm`` makes AV divide by 1.0
(RNV rounded to the output format) instead of by RD, and the AV of a block without tiles
(``reset_state``) divides 0, not the register file's stale RNV. The normalised sigmoid's
epsilon is 0 in RD codes (``NumericsConfig.sigmoid_eps_code``; the config refuses the unit
otherwise).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fusemax.hw.arith import Exp2, MaxValid, PipelinedDivider, Requant, Rescale, Sub
from fusemax.hw.formats import round_shift_hdl


def rf_width(config) -> int:
    """Bits of an RNV register-file entry: RNV codes, and the output codes AV writes back."""
    return max(config.numerics.rnv.width, config.numerics.out.width)


def rf_depth(config) -> int:
    """Entries of the RNV register file: RNV[f] for f < max_f, and with ``entropy_unit`` the
    entropy accumulator RT (entry F of the running F)."""
    return config.max_f + int(config.entropy_unit)


def rf_addr_width(config) -> int:
    """Bits of a register-file address (the sequencer's RNV counters use the same width)."""
    return max(1, (rf_depth(config) - 1).bit_length())


class PE1D(wiring.Component):
    def __init__(self, config):
        self.config = config
        nc = config.numerics
        fw = rf_addr_width(config)
        sig = {"sig_mode": In(1), "nonorm": In(1), "sln_done": In(1)} if config.sigmoid_unit else {}
        if config.entropy_unit:
            sig["rt_sel"] = In(1)
        super().__init__({**sig,
            "lm": In(nc.score.shape()), "lm_valid": In(1),
            "sld": In(signed(config.sld_width)),
            "slnv": In(signed(config.slnv_width)),
            "lane_ok": In(1), "av_lane_ok": In(1),
            "reset_state": In(1), "reset_rm": In(1),
            "rm_en": In(1),
            "exp_start": In(1), "prm_zero": In(1),
            "rd_en": In(1),
            "rf_raddr": In(fw),
            "rnv_we": In(1),
            "rnv_waddr": In(fw),
            "rm_commit": In(1),
            "div_start": In(1),
            "wb_sel": In(1),
            "rm": Out(nc.score.shape()), "rm_valid": Out(1),
            "rm_new": Out(nc.score.shape()), "rm_new_valid": Out(1),
            "prm": Out(nc.exp.shape()),
            "exp_done": Out(1),
            "rd": Out(nc.rd.shape()),
            "rf_rdata": Out(signed(rf_width(config))),
            "div_done": Out(1),
            "rd_sat": Out(1), "rnv_sat": Out(1), "out_sat": Out(1), "dz": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        nc = cfg.numerics
        mode = nc.rounding

        m.submodules.mx = mx = MaxValid(nc.score.shape())
        m.submodules.sub = sub = Sub(nc.score.shape(), nc.score.shape())
        m.submodules.exp = exp = Exp2(nc)
        m.submodules.rsd = rsd = Rescale(nc.rd, nc.exp, mode)
        m.submodules.rsn = rsn = Rescale(nc.rnv, nc.exp, mode)
        m.submodules.div = div = PipelinedDivider(nc)
        m.submodules.rnv_rf = rf = Memory(shape=signed(rf_width(cfg)), depth=rf_depth(cfg), init=[])
        rport = rf.read_port()
        wport = rf.write_port()

        # RM_new = max_valid(RM, LM)
        m.d.comb += [mx.a.eq(self.rm), mx.a_valid.eq(self.rm_valid), mx.b.eq(self.lm), mx.b_valid.eq(self.lm_valid)]
        with m.If(self.rm_en):
            m.d.sync += [self.rm_new.eq(mx.y), self.rm_new_valid.eq(mx.y_valid)]
        with m.If(self.rm_commit):
            m.d.sync += [self.rm.eq(self.rm_new), self.rm_valid.eq(self.rm_new_valid)]

        # PRM = exp2(RM_old - RM_new), 0 while RM_old is -inf or when the sums restart
        # (``prm_zero`` with ``exp_start``: TILE.restart).
        prm = Signal(nc.exp.shape(), name="prm_value")
        den = Signal.like(self.rd, name="div_den")
        m.d.comb += [
            sub.a.eq(self.rm), sub.b.eq(self.rm_new),
            exp.x.eq(sub.y), exp.x_ninf.eq(~self.rm_valid | self.prm_zero),
            self.prm.eq(prm), self.exp_done.eq(exp.done),
        ]
        num = Signal.like(rport.data, name="div_num")
        if cfg.sigmoid_unit:
            # sigmoid mode: PRM = 1.0 unless the block's first tile (RM not valid yet) or a
            # restart, decided at the exps' start and applied with the 2D's SLN
            one_next, one = Signal(name="prm_one_next"), Signal(name="prm_one")
            with m.If(self.exp_start):
                m.d.sync += one_next.eq(self.rm_valid & ~self.prm_zero)
            with m.If(self.sln_done):
                m.d.sync += one.eq(one_next)
            # a block without tiles (reset_state) has no sums: its AV divides 0 (by RD = 0, or
            # by 1.0 with nonorm, where the stale RNV would otherwise come out)
            empty = Signal(name="av_empty")
            with m.If(self.reset_state):
                m.d.sync += empty.eq(1)
            with m.Elif(self.exp_start):
                m.d.sync += empty.eq(0)
            m.d.comb += [
                exp.start.eq(self.exp_start & ~self.sig_mode),
                prm.eq(Mux(self.sig_mode, Mux(one, 1 << nc.exp.frac, 0), exp.y)),
                den.eq(Mux(self.nonorm, 1 << nc.rd.frac, self.rd)),
                num.eq(Mux(empty, 0, rport.data)),
            ]
        else:
            m.d.comb += [exp.start.eq(self.exp_start), prm.eq(exp.y), den.eq(self.rd),
                         num.eq(rport.data)]

        # RD = sat(round_shift(SLD, exp.frac -> rd.frac) + RD·PRM)
        sld_rd = round_shift_hdl(self.sld, nc.exp.frac - nc.rd.frac, mode)
        m.d.comb += [rsd.x.eq(self.rd), rsd.c.eq(prm)]
        rd_sum = Signal(signed(max(len(sld_rd), nc.rd.width) + 1), name="rd_sum")
        m.d.comb += rd_sum.eq(sld_rd + rsd.y)
        m.submodules.rqd = rqd = Requant(rd_sum.shape(), nc.rd.frac, nc.rd, mode)
        m.d.comb += rqd.x.eq(rd_sum)
        with m.If(self.reset_state):
            m.d.sync += [self.rd.eq(0), self.rm_valid.eq(0)]
        with m.Elif(self.rd_en):
            m.d.sync += self.rd.eq(rqd.y)
        with m.If(self.reset_rm):
            m.d.sync += self.rm_valid.eq(0)
        m.d.comb += self.rd_sat.eq(self.rd_en & self.lane_ok & (rsd.sat | rqd.sat))

        # RNV[f] = sat(round_shift(SLNV, exp.frac + v.frac -> rnv.frac) + RNV[f]·PRM)
        m.d.comb += [rport.addr.eq(self.rf_raddr), self.rf_rdata.eq(rport.data)]
        slnv_r = round_shift_hdl(self.slnv, nc.exp.frac + nc.v.frac - nc.rnv.frac, mode)
        if cfg.entropy_unit:
            # the RT step: SLNQ = sum of SLN·BQK has frac exp.frac + score.frac
            slnq_r = round_shift_hdl(self.slnv, nc.exp.frac + nc.score.frac - nc.rnv.frac, mode)
            slnv_r = Mux(self.rt_sel, slnq_r, slnv_r)
        m.d.comb += [rsn.x.eq(rport.data), rsn.c.eq(prm)]
        rnv_sum = Signal(signed(max(len(slnv_r), nc.rnv.width) + 1), name="rnv_sum")
        m.d.comb += rnv_sum.eq(slnv_r + rsn.y)
        m.submodules.rqn = rqn = Requant(rnv_sum.shape(), nc.rnv.frac, nc.rnv, mode)
        m.d.comb += [
            rqn.x.eq(rnv_sum),
            wport.en.eq(self.rnv_we), wport.addr.eq(self.rnv_waddr),
            wport.data.eq(Mux(self.wb_sel, div.y, rqn.y)),
            self.rnv_sat.eq(self.rnv_we & ~self.wb_sel & self.lane_ok & (rsn.sat | rqn.sat)),
        ]

        # AV = RNV[f] / RD on a pipelined divider (one divide per cycle); each result is
        # written back over RNV[f] (sign-extended) in its done cycle (``wb_sel``).
        m.d.comb += [
            div.num.eq(num), div.den.eq(den), div.start.eq(self.div_start),
            self.div_done.eq(div.done),
            self.out_sat.eq(div.done & self.av_lane_ok & div.sat), self.dz.eq(div.done & self.av_lane_ok & div.dz),
        ]
        return m
