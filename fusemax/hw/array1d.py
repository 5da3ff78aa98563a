"""The 1D array: one :class:`~fusemax.hw.pe1d.PE1D` per column (``lane_c{c}``).

Inputs come from the 2D array's tree roots (``lm``, ``sld``, ``slnv``); ``rm_new`` goes back
up the columns. Controls are broadcast to every lane; ``lane_ok[c]`` = (p_base + c < P) masks
the flags of padding lanes, ``av_lane_ok[c]`` = (av_p_base + c < P) the divider's flags (the
block whose AV runs). With ``entropy_unit``, ``rt_sel`` goes to every lane and each lane's RM
and RD come out (``rm``, ``rd``) for the entropy finisher. ``exp_done``/``div_done`` and the flag outputs are ORs over the lanes
(all lanes run in lock step).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from fusemax.hw.array2d import MASK_W
from fusemax.hw.pe1d import PE1D, rf_addr_width, rf_width


class Array1D(wiring.Component):
    def __init__(self, config):
        self.config = config
        nc = config.numerics
        C = config.cols
        fw = rf_addr_width(config)
        sig = {"sig_mode": In(1), "nonorm": In(1), "sln_done": In(1)} if config.sigmoid_unit else {}
        if config.entropy_unit:  # RT's round shift; the final RM and RD for the entropy finisher
            sig.update({"rt_sel": In(1), "rm": Out(data.ArrayLayout(nc.score.shape(), C)),
                        "rd": Out(data.ArrayLayout(nc.rd.shape(), C))})
        super().__init__({**sig,
            "lm": In(data.ArrayLayout(nc.score.shape(), C)),
            "lm_valid": In(C),
            "sld": In(data.ArrayLayout(signed(config.sld_width), C)),
            "slnv": In(data.ArrayLayout(signed(config.slnv_width), C)),
            "p_base": In(MASK_W["p_base"]), "av_p_base": In(MASK_W["p_base"]), "P": In(MASK_W["P"]),
            "reset_state": In(1), "reset_rm": In(1), "rm_en": In(1), "exp_start": In(1), "prm_zero": In(1),
            "rd_en": In(1),
            "rf_raddr": In(fw), "rnv_we": In(1), "rnv_waddr": In(fw),
            "rm_commit": In(1), "div_start": In(1), "wb_sel": In(1),
            "rm_new": Out(data.ArrayLayout(nc.score.shape(), C)),
            "rm_new_valid": Out(C),
            "rf_rdata": Out(data.ArrayLayout(signed(rf_width(config)), C)),
            "exp_done": Out(1), "div_done": Out(1),
            "rd_sat": Out(1), "rnv_sat": Out(1), "out_sat": Out(1), "dz": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        C = self.config.cols
        lanes = [PE1D(self.config) for _ in range(C)]
        flags = {"rd_sat": [], "rnv_sat": [], "out_sat": [], "dz": []}
        for c, pe in enumerate(lanes):
            m.submodules[f"lane_c{c}"] = pe
            m.d.comb += [
                pe.lm.eq(self.lm[c]), pe.lm_valid.eq(self.lm_valid[c]),
                pe.sld.eq(self.sld[c]), pe.slnv.eq(self.slnv[c]),
                pe.lane_ok.eq(self.p_base + c < self.P), pe.av_lane_ok.eq(self.av_p_base + c < self.P),
                pe.reset_state.eq(self.reset_state), pe.reset_rm.eq(self.reset_rm), pe.rm_en.eq(self.rm_en),
                pe.exp_start.eq(self.exp_start), pe.prm_zero.eq(self.prm_zero), pe.rd_en.eq(self.rd_en),
                pe.rf_raddr.eq(self.rf_raddr), pe.rnv_we.eq(self.rnv_we),
                pe.rnv_waddr.eq(self.rnv_waddr), pe.rm_commit.eq(self.rm_commit),
                pe.div_start.eq(self.div_start), pe.wb_sel.eq(self.wb_sel),
                self.rm_new[c].eq(pe.rm_new), self.rm_new_valid[c].eq(pe.rm_new_valid),
                self.rf_rdata[c].eq(pe.rf_rdata),
            ]
            if self.config.sigmoid_unit:
                m.d.comb += [pe.sig_mode.eq(self.sig_mode), pe.nonorm.eq(self.nonorm),
                             pe.sln_done.eq(self.sln_done)]
            if self.config.entropy_unit:
                m.d.comb += [pe.rt_sel.eq(self.rt_sel), self.rm[c].eq(pe.rm), self.rd[c].eq(pe.rd)]
            for k in flags:
                flags[k].append(getattr(pe, k))
        m.d.comb += [getattr(self, k).eq(Cat(*v).any()) for k, v in flags.items()]
        # all lanes run in lock step; ORing every lane's done (rather than taking lane 0's)
        # keeps the lane instances identical
        m.d.comb += [self.exp_done.eq(Cat(*[pe.exp_done for pe in lanes]).any()),
                     self.div_done.eq(Cat(*[pe.div_done for pe in lanes]).any())]
        return m
