"""2D processing element PE(r, c): one key (row r) x one query (column c) of a tile.

Built from the arithmetic components of :mod:`fusemax.hw.arith`:

==========  =====================================  ============================================
part        component                              used by
==========  =====================================  ============================================
``mac``     ``Mac(a, kv, acc_width)``              BQK (``a = Q'``, ``b = K``, accumulate over e)
                                                   and SLNV (``a = SLN``, ``b = V[f]``, one
                                                   product per cycle, summed by the column tree)
``rq``      ``Requant(acc, qk_frac, score)``       BQK -> score (latched in ``score``)
``sub``     ``Sub(score, score)``                  BQK - RM_new (the exp argument)
``exp``     ``Exp2(numerics)``                     SLN = exp2(BQK - RM_new), d + 1 cycles
``recip``   ``SigmoidReciprocal`` (``sigmoid_unit``)  sigmoid mode: SLN = sigmoid(BQK) =
                                                   (1 or t) / (1 + t), t = exp2(−|BQK|) on
                                                   ``exp``; L = d + exp.frac + 5 cycles
==========  =====================================  ============================================

Registers of its own: ``score`` (the tile's BQK in the score format) and ``valid`` (the
(key, query) pair is unmasked); with ``entropy_unit`` two more score registers carry the BQK
of the SLN being used (``score_exp`` at the exp's start, ``score_sln`` at its done), for the
RT step (``mac_ent``: ``b = score_sln``, SLN·BQK on the MAC after the F SLNV steps). The MAC is shared by BQK and SLNV (operand ``a`` is muxed by
``mac_sel``); the K and V values arrive on the same row bus ``kv`` (they live in the same
K/V buffer). The column reductions (LM, SLD, SLNV) are in :mod:`fusemax.hw.array2d`.

Interface
---------
q : In(signed)           Q' value of column c (column broadcast bus)
kv : In(signed)          K or V value of row r (row broadcast bus)
mac_en, mac_first, mac_sel : In(1)
                         MAC control: ``mac_first`` starts a new sum (c = 0); ``mac_sel`` 0 =
                         Q'·K (BQK), 1 = SLN·V (SLNV)
score_en : In(1)         latch ``score <= requant(acc)``, ``valid <= valid_in``
valid_in : In(1)         mask(m, p) of this PE (from the array)
rm, rm_valid : In        RM_new of column c (broadcast up the column from 1D PE c)
exp_start : In(1)        start SLN = exp2(score - rm), x_ninf = ~valid | ~rm_valid
score, valid : Out       the latched BQK and its valid flag
score_sat : Out(1)       this cycle's ``score_en`` saturated a valid pair (a pulse)
sln : Out(exp)           SLN (valid from the exp's done until its next start)
exp_done : Out(1)        the exp's done pulse
prod : Out(signed)       the MAC accumulator (SLN·V during SLNV)
sig_mode : In(1)         (``sigmoid_unit`` only) SLN is the sigmoid of the score, 0 for a masked
                         pair; no running max (MODE.sigmoid)
sig_done : Out(1)        (``sigmoid_unit`` only) the sigmoid's done pulse (SLN valid from then)
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fusemax.errors import FuseMaxError
from fusemax.hw.arith import Exp2, Mac, Requant, SigmoidReciprocal, Sub


def _sw(fmt) -> int:
    """Bits of a signed container that holds every code of ``fmt``."""
    return fmt.width + (0 if fmt.signed else 1)


def operand_widths(config) -> dict[str, int]:
    """Widths of the 2D datapath for a config (shared by the PE, the array and the buffers)."""
    nc = config.numerics
    for role in ("q", "k", "v"):
        if not getattr(nc, role).signed:
            raise FuseMaxError(f"numerics.{role} must be signed for the RTL (memory words are sign-extended)")
    kvw = max(nc.k.width, nc.v.width)
    aw = max(_sw(nc.q), _sw(nc.exp))
    # operand b: K, V, and with entropy_unit the score (SLN·BQK)
    bw = max(kvw, nc.score.width) if config.entropy_unit else kvw
    prod_w = _sw(nc.exp) + config.slnv_operand_width  # SLN * V (and SLN * BQK) exactly
    acc_w = max(nc.qk_acc_width, prod_w)
    return {"q": nc.q.width, "kv": kvw, "a": aw, "b": bw, "prod": prod_w, "acc": acc_w}


class PE2D(wiring.Component):
    def __init__(self, config):
        self.config = config
        nc = config.numerics
        w = operand_widths(config)
        self.widths = w
        sig = {"sig_mode": In(1), "sig_done": Out(1)} if config.sigmoid_unit else {}
        if config.entropy_unit:
            sig["mac_ent"] = In(1)
        super().__init__({**sig,
            "q": In(signed(w["q"])),
            "kv": In(signed(w["kv"])),
            "mac_en": In(1),
            "mac_first": In(1),
            "mac_sel": In(1),
            "score_en": In(1),
            "valid_in": In(1),
            "rm": In(nc.score.shape()),
            "rm_valid": In(1),
            "exp_start": In(1),
            "score": Out(nc.score.shape()),
            "valid": Out(1),
            "score_sat": Out(1),
            "sln": Out(nc.exp.shape()),
            "exp_done": Out(1),
            "prod": Out(signed(w["prod"])),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        nc = cfg.numerics
        w = self.widths

        m.submodules.mac = mac = Mac(signed(w["a"]), signed(w["b"]), w["acc"])
        m.submodules.rq = rq = Requant(signed(w["acc"]), nc.qk_frac, nc.score, nc.rounding)
        m.submodules.sub = sub = Sub(nc.score.shape(), nc.score.shape())
        m.submodules.exp = exp = Exp2(nc)

        # SLN: the exp's output, or in sigmoid mode the reciprocal's (see below)
        sln = Signal(nc.exp.shape(), name="sln_value")

        # MAC: BQK (Q' x K, accumulate) or SLNV (SLN x V, one product).
        m.d.comb += [
            mac.a.eq(Mux(self.mac_sel, sln, self.q)),
            mac.c.eq(0),
            mac.load_c.eq(self.mac_first),
            mac.en.eq(self.mac_en),
            self.prod.eq(mac.acc[: w["prod"]]),
        ]

        # BQK -> score, with the (key, query) mask.
        m.d.comb += rq.x.eq(mac.acc)
        with m.If(self.score_en):
            m.d.sync += [self.score.eq(rq.y), self.valid.eq(self.valid_in)]
        m.d.comb += self.score_sat.eq(self.score_en & self.valid_in & rq.sat)
        if cfg.entropy_unit:
            # The RT step multiplies SLN by the BQK it came from; ``score`` already holds the
            # next tile's BQK by then, so the score travels with the exp: taken at its start,
            # made current when the new SLN appears (the exp's done).
            score_x = Signal.like(self.score, name="score_exp")
            score_b = Signal.like(self.score, name="score_sln")
            with m.If(self.exp_start):
                m.d.sync += score_x.eq(self.score)
            with m.If(self.exp_done):
                m.d.sync += score_b.eq(score_x)
            m.d.comb += mac.b.eq(Mux(self.mac_ent, score_b, self.kv))
        else:
            m.d.comb += mac.b.eq(self.kv)

        # SLN = exp2(BQK - RM_new); masked pairs and an empty running max give 0.
        m.d.comb += [
            sub.a.eq(self.score),
            sub.b.eq(self.rm),
            exp.start.eq(self.exp_start),
            self.sln.eq(sln),
            self.exp_done.eq(exp.done),
        ]
        if not cfg.sigmoid_unit:
            m.d.comb += [exp.x.eq(sub.y), exp.x_ninf.eq(~self.valid | ~self.rm_valid), sln.eq(exp.y)]
            return m
        # Sigmoid mode: t = exp2(−|BQK|) on the same Exp2, then SLN = (1 or t) / (1 + t); the
        # mask is sampled at the start (the score register changes before SLN is consumed).
        m.submodules.recip = recip = SigmoidReciprocal(nc)
        neg = self.score < 0
        m.d.comb += [
            exp.x.eq(Mux(self.sig_mode, Mux(neg, self.score, -self.score), sub.y)),
            exp.x_ninf.eq(~self.sig_mode & (~self.valid | ~self.rm_valid)),
            recip.start.eq(self.exp_start & self.sig_mode), recip.neg.eq(neg), recip.zero.eq(~self.valid),
            recip.t.eq(exp.y), recip.t_done.eq(exp.done),
            sln.eq(Mux(self.sig_mode, recip.y, exp.y)),
            self.sig_done.eq(recip.done),
        ]
        return m
