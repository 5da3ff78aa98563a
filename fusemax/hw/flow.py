"""``FlowEngine(config)``: causal Flow-Attention (Flowformer's ``Flow_Attention_Causal``) on
the RTL, token by token, bit-exact with :func:`fusemax.sw.golden_variants.flowformer_causal_golden`.

Flow-Attention has no P x M score matrix (docs/variants.md, Flowformer): per token i it needs
2E sigmoids, four running E-vectors (KC, QC, KO, QI), a running scalar ZC, an E x F running
state KV, five scalar divides and one per output. None of that maps onto the 2D array's
score/softmax pipeline, so a design with ``flow_unit`` gets this engine beside the arrays. It
reads the Q buffer and the K/V buffer (the sequencer's LDQ/LDKV fill them, in the standard
layout), keeps its state between FLOW instructions, and stores through the memory port.

Per token (ν = i + 1; F = FLOW_FORMAT s32.16; φ in the exp format; ``round`` with the
config's rounding mode, ``sat`` with a flag), in three overlapping processes:

========  =========================================================================================
process   work (cycles for E, F, L = cols lanes, L_s = the sigmoid latency)
========  =========================================================================================
gatherer  Q line e, K line e (the token's lanes) into two pipelined sigmoids (φq, φk -> the PQ, PK
          memories), then V line f into the V memory: E + max(F, L_s) + 2; into one of two banks,
          so tokens t + 1 (and t + 2 once t is done) are gathered while t runs
front     PASS_A: KC += φk, QC += φq (read-modify-write), DI = Σ_e (φq+ε)(KC+ε), DO likewise, one
          element per cycle: E + 1; DIV_S: SI = ν / DI, SO = ν / DO on two bit-serial dividers
          (F format): 36. These depend on the state only through KC, QC, so the front runs token
          t + 1 while the back runs token t
back      PASS_B: KO = sat(KO + round(φk·SO)), QI likewise, CK = Σ (φq+ε)(KO+ε), CSR likewise:
          E + 1; DIV_X: x = CK / (ν ln 2), y = CSR / (ν ln 2) into the score format:
          score.width + 4; EXP: AL = sigmoid(x) (the sequential sigmoid) while EC =
          exp2(clamp(y) − c) (Exp2), ZC += EC, CP = ν·EC / ZC (a divider, F format):
          max(L_s, d + 1 + 35) + 2; KV: per block of L columns, for each e, W = sat(round(φk·CP)),
          KV[e, f] = sat(KV + round(W·V[f])) on L lanes, acc[f] += φq·KV[e, f], then the L sums
          qkv = sat(round(acc)) one per cycle into a pipelined divider AV = qkv·AL / DI (out
          format) whose results land in the output buffer: ceil(F / L)·(E + 1 + L)
========  =========================================================================================

The front and the back share the φ memories' read ports and the dot multipliers: PASS_A waits
while the back is in PASS_B or KV, and the back does not enter KV while PASS_A runs. In the
steady state a token costs the back's phases (PASS_B + DIV_X + EXP + KV + 2), the front's and
the gatherer's work hidden behind them when E + max(F, L_s) + 4 <= DIV_X + EXP (token t + 1's
gather starts when the back finishes token t − 1, and its PASS_A must end before the back
leaves EXP).

The engine's state (the memories, the token index, the clamp, the output buffer) persists
across ``start``: a run must begin its sequences with FLOWC and FLOW ``first = 1``, as the
compiler's schedules do.

The output buffer (F lines of ``cols`` 16-bit lanes, lane = the token's query lane) is
stored, F lines, by FLOW's ``store``. FLOW ``first`` starts a sequence: the state reads as 0
during its first token (no clearing cycles) and ν restarts at 1.

Flags (one-cycle pulses, ORed into the sequencer's sticky error bits): ``score_sat`` (x, y or
a sigmoid saturated), ``rnv_sat`` (an F-format value saturated: DI, DO, SI, SO, KO, QI, CP, W,
KV, qkv), ``out_sat``, ``dz`` (a divide by zero).

Ports: ``cmd_valid``/``cmd`` (a FLOWC or FLOW instruction word, taken when not busy),
``busy``; ``E``/``F``; the buffer read ports (``q_raddr`` -> ``q_rdata`` and ``kv_raddr`` ->
``kv_rdata``, data one cycle after the address, used only while busy); the store request
(``st_valid``/``st_addr``/``st_data``/``st_ready``); the flags.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fusemax.hw.arith.divide import Divider, PipelinedDivider, divider_numerics
from fusemax.hw.arith.exp2 import Exp2
from fusemax.hw.arith.sigmoid import PipelinedSigmoid, Sigmoid
from fusemax.hw.formats import FixedFormat, round_shift_hdl
from fusemax.hw.memport import DIM_W, buffer_addr_widths, kv_slot_lines
from fusemax.hw.pe2d import operand_widths
from fusemax.hw.sequencer import field, opcode_of
from fusemax.sw.golden_variants import FLOW_FORMAT, FLOW_MAX_N, FlowConsts
from fusemax.sw.schedule import OPCODES

#: Token index width: ν = i + 1 up to FLOW_MAX_N (the KC/QC sums are exact up to 2^17 tokens).
NU_W = FLOW_MAX_N.bit_length()
#: Width of KC and QC (exact sums of φ <= 1.0 over at most 2^17 tokens, signed).
KC_W = 34


def flow_memories(config) -> dict[str, tuple[int, int, bool]]:
    """The engine's memories: name -> (bits per line, lines, signed). None of them depends on
    the sequence length; the E x F state dominates (``max_e`` x ceil(max_f / cols) lines of
    ``cols`` F-format words)."""
    nc = config.numerics
    L = config.cols
    nbf = -(-config.max_f // L)
    e = config.max_e
    return {
        "kc": (KC_W, e, True), "qc": (KC_W, e, True),                  # Σ φk, Σ φq
        "ko": (FLOW_FORMAT.width, e, True), "qi": (FLOW_FORMAT.width, e, True),
        # φ and V of this token and the next (two banks: the next token is gathered meanwhile)
        "pq": (nc.exp.width, 2 * e, False), "pk": (nc.exp.width, 2 * e, False),
        "vbuf": (L * nc.v.width, 2 * nbf, False),
        "kvstate": (L * FLOW_FORMAT.width, e * nbf, False),            # KV[e, f]
        "outbuf": (16 * config.cols, config.max_f, False),             # the block's outputs
    }


class FlowEngine(wiring.Component):
    def __init__(self, config):
        self.config = config
        C, R = config.cols, config.rows
        w = operand_widths(config)
        self.q_addr_width, self.kv_addr_width = buffer_addr_widths(config)
        super().__init__({
            "cmd_valid": In(1), "cmd": In(64), "busy": Out(1),
            "E": In(DIM_W), "F": In(DIM_W),
            "q_raddr": Out(self.q_addr_width), "q_rdata": In(C * w["q"]),
            "kv_raddr": Out(self.kv_addr_width), "kv_rdata": In(R * w["kv"]),
            "st_valid": Out(1), "st_addr": Out(config.mem_addr_width), "st_data": Out(16 * C),
            "st_ready": In(1),
            "score_sat": Out(1), "rnv_sat": Out(1), "out_sat": Out(1), "dz": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        nc = cfg.numerics
        mode = nc.rounding
        C, R, L = cfg.cols, cfg.rows, cfg.cols
        w = operand_widths(cfg)
        FF = FLOW_FORMAT
        ef = nc.exp.frac
        sc = nc.score
        # ε in φ codes and in F codes, ln 2 (frac ef: ν ln 2 divides x and y); the clamp code
        # comes with FLOWC
        k = FlowConsts.of(nc, c2=0)
        eps_p, eps_f, ln2 = k.eps_p, k.eps_f, k.ln2
        e_bits = max(1, cfg.max_e.bit_length())
        nbf_max = -(-cfg.max_f // L)
        slot_lines = kv_slot_lines(cfg)
        phw = nc.exp.width  # φ codes (unsigned)

        # ---------------- units ----------------
        m.submodules.sig_q = sig_q = PipelinedSigmoid(nc, tag_width=e_bits + 1)
        m.submodules.sig_k = sig_k = PipelinedSigmoid(nc)
        m.submodules.sig_al = sig_al = Sigmoid(nc)
        m.submodules.exp = exp = Exp2(nc)
        ck_w = max(56, phw + 1 + FF.width + 1 + e_bits + 1)
        nu_fmt = FixedFormat(24, 0)
        m.submodules.div_si = div_si = Divider(divider_numerics(nu_fmt, FixedFormat(40, FF.frac), FF, mode))
        m.submodules.div_so = div_so = Divider(divider_numerics(nu_fmt, FixedFormat(40, FF.frac), FF, mode))
        xn = divider_numerics(FixedFormat(ck_w, ef + FF.frac), FixedFormat(40, ef), sc, mode)
        m.submodules.div_x = div_x = Divider(xn)
        m.submodules.div_y = div_y = Divider(xn)
        m.submodules.div_cp = div_cp = Divider(divider_numerics(FixedFormat(40, ef), FixedFormat(40, ef), FF, mode))
        on = divider_numerics(FixedFormat(FF.width + nc.exp.width + 1, FF.frac + ef), FF, nc.out, mode)
        m.submodules.div_out = div_out = PipelinedDivider(on)

        # ---------------- memories (state and per-token vectors; sync reads) ----------------
        table = flow_memories(cfg)

        def mem(name, gran=None):
            width, depth, sgn = table[name]
            mm = Memory(shape=signed(width) if sgn else unsigned(width), depth=depth, init=[])
            m.submodules[name] = mm
            return mm.read_port(), (mm.write_port(granularity=gran) if gran else mm.write_port())

        kc_r, kc_w = mem("kc")
        qc_r, qc_w = mem("qc")
        ko_r, ko_w = mem("ko")
        qi_r, qi_w = mem("qi")
        pq_r, pq_w = mem("pq")
        pk_r, pk_w = mem("pk")
        vw = nc.v.width
        v_r, v_w = mem("vbuf", vw)
        kv_r, kv_w = mem("kvstate")
        ob_r, ob_w = mem("outbuf", 16)

        # ---------------- instruction fields and registers ----------------
        c = self.cmd
        op = opcode_of(c)
        clamp = Signal(sc.width, name="clamp")
        st_base = Signal(cfg.mem_addr_width, name="st_base")
        slot = Signal(2, name="slot")
        store = Signal(name="store")
        q_lane = Signal(9, name="q_lane")
        kv_lane = Signal(9, name="kv_lane")
        count = Signal(10, name="count")
        t = Signal(10, name="t")            # token within this FLOW
        i = Signal(NU_W, name="i")          # token index in the sequence
        nu = Signal(NU_W, name="nu")
        m.d.comb += nu.eq(i + 1)

        lc = Signal(DIM_W + 1, name="lc")   # loop counter: issue element lc, compute lc - 1
        fb = Signal(DIM_W, name="fb")       # KV phase: block of L columns
        dcnt = Signal(range(L + 1), name="drain")
        got = Signal(DIM_W + 1, name="phi_got")

        di = Signal(FF.shape(), name="DI")
        si = Signal(FF.shape(), name="SI")
        so = Signal(FF.shape(), name="SO")
        zc = Signal(40, name="ZC")
        cp = Signal(FF.shape(), name="CP")
        al = Signal(unsigned(phw), name="AL")
        acc_w = 2 * KC_W + e_bits + 2
        acc_a = Signal(signed(acc_w), name="acc_a")
        acc_b = Signal(signed(acc_w), name="acc_b")
        qacc = [Signal(signed(phw + 1 + FF.width + e_bits + 1), name=f"qacc{l}") for l in range(L)]

        # flags of the phases (f_*), of the φ pipes and of the output divider (which runs
        # while the next token's phases do)
        f_score, f_phi = Signal(name="f_score"), Signal(name="f_phi")
        f_rnv = Signal(name="f_rnv")
        f_out = Signal(name="f_out")
        f_dz, f_dz_out = Signal(name="f_dz"), Signal(name="f_dz_out")
        m.d.comb += [self.score_sat.eq(f_score | f_phi), self.out_sat.eq(f_out)]

        E, F = self.E, self.F
        lane_q = Signal(9, name="lane_q")  # this token's output lane
        m.d.comb += lane_q.eq(q_lane + t)

        # ---------------- the output divider's tags (f, lane) and writes ----------------
        lat = on.div_cycles
        fw = max(1, (cfg.max_f - 1).bit_length())
        lw = max(1, (C - 1).bit_length())
        d_start = Signal(name="dout_start")
        d_tag = Signal(fw + lw, name="dout_tag")
        pipe_v = Signal(lat, name="dout_pipe")
        pipe_t = [Signal(fw + lw, name=f"dout_tag{j}") for j in range(lat)]
        m.d.sync += pipe_v.eq(Cat(d_start, pipe_v[:-1]))
        m.d.sync += pipe_t[0].eq(d_tag)
        for j in range(1, lat):
            m.d.sync += pipe_t[j].eq(pipe_t[j - 1])
        done_tag = pipe_t[lat - 1]
        out_code = Signal(signed(16), name="out_code")  # sign-extended into the 16-bit word
        m.d.comb += out_code.eq(div_out.y)
        m.d.comb += [
            ob_w.addr.eq(done_tag[:fw]),
            ob_w.data.eq(Cat(*[out_code] * C)),
            ob_w.en.eq(Mux(div_out.done, Const(1, C) << done_tag[fw:], 0)),
        ]
        with m.If(div_out.done):
            m.d.comb += [f_out.eq(div_out.sat), f_dz_out.eq(div_out.dz)]
        m.d.comb += [div_out.start.eq(d_start), div_out.den.eq(di)]

        # ---------------- the sigmoid pipes: φ results into PQ and PK ----------------
        # (the tag is the element e and the bank of the token being gathered)
        phi_addr = sig_q.tag_out[:e_bits] + Mux(sig_q.tag_out[e_bits], cfg.max_e, 0)
        m.d.comb += [
            pq_w.addr.eq(phi_addr), pq_w.data.eq(sig_q.y), pq_w.en.eq(sig_q.valid_out),
            pk_w.addr.eq(phi_addr), pk_w.data.eq(sig_k.y), pk_w.en.eq(sig_k.valid_out),
        ]
        with m.If(sig_q.valid_out):
            m.d.sync += got.eq(got + 1)
            m.d.comb += f_phi.eq(sig_q.sat | sig_k.sat)

        # ---------------- the front: PASS_A and DIV_S of token tf (one ahead) ----------------
        # KC, QC, DI, DO, SI, SO depend on the state only through KC and QC, so token t + 1's
        # run while token t is in DIV_X / EXP (the back). The two share the φ memories' read
        # ports and the dot multipliers: PASS_A runs only while the back is not in PASS_B or KV.
        tf = Signal(10, name="front_tok")
        i_f = Signal(NU_W, name="front_i")
        nu_f = Signal(NU_W, name="front_nu")
        m.d.comb += nu_f.eq(i_f + 1)
        lcf = Signal(DIM_W + 1, name="front_lc")
        acc_fa = Signal(signed(acc_w), name="acc_di")
        acc_fb = Signal(signed(acc_w), name="acc_do")
        di_n = Signal(FF.shape(), name="DI_next")
        si_n = Signal(FF.shape(), name="SI_next")
        so_n = Signal(FF.shape(), name="SO_next")
        seq_first = Signal(name="seq_first")   # this FLOW starts a sequence
        first_pend = Signal(name="first_pend")  # FLOW first=1 came with count = 0
        flow_go = Signal(name="flow_go")       # a FLOW with tokens starts (back -> front)
        take = Signal(name="take")             # the back takes the front's token
        f_rnv_f, f_dz_f = Signal(name="f_rnv_front"), Signal(name="f_dz_front")
        m.d.comb += [self.rnv_sat.eq(f_rnv | f_rnv_f), self.dz.eq(f_dz | f_dz_out | f_dz_f)]
        back_ab = Signal(name="back_uses_phi")   # the back is in PASS_B or KV, or entering KV
        bank_f = tf[0]
        bank = t[0]  # the banks of PQ, PK and V token t (the back's) reads

        # ---------------- read addresses ----------------
        rd_e = Signal(DIM_W, name="rd_e")      # the back's element
        rd_f = Signal(DIM_W, name="rd_f")      # the front's element
        in_a = Signal(name="in_pass_a")
        phi_rd = Mux(in_a, rd_f + Mux(bank_f, cfg.max_e, 0), rd_e + Mux(bank, cfg.max_e, 0))
        m.d.comb += [kc_r.addr.eq(rd_f), qc_r.addr.eq(rd_f), ko_r.addr.eq(rd_e), qi_r.addr.eq(rd_e),
                     pq_r.addr.eq(phi_rd), pk_r.addr.eq(phi_rd),
                     kc_w.addr.eq(lcf - 1), qc_w.addr.eq(lcf - 1), ko_w.addr.eq(lc - 1), qi_w.addr.eq(lc - 1)]

        pq1 = pq_r.data
        pk1 = pk_r.data
        first_c = lc == 1   # the back computes element 0

        def fz(v, front=False):
            """The state read ``v``, or 0 on the first token of a sequence."""
            return Mux(seq_first & ((tf if front else t) == 0), 0, v)

        # ---------------- the gatherer: a token's Q, K (-> φ) and V, in the background ----------
        # Token gt of this FLOW: Q line e and K line e (its lanes) into the two sigmoid pipes,
        # then V line f into the V memory, into bank gt[0]; g_ready[b] when bank b is complete,
        # cleared when the back has finished that token. φ does not depend on the state, so
        # tokens t + 1 (and t + 2, once t is done) are gathered while token t runs.
        gt = Signal(10, name="gather_tok")
        g_run = Signal(name="gather_run")
        g_ready = Signal(2, name="gather_ready")
        g_start = Signal(name="gather_start")
        g_set, g_clr = Signal(2, name="gather_set"), Signal(2, name="gather_clr")
        m.d.sync += g_ready.eq((g_ready & ~g_clr) | g_set)
        lane_qg = Signal(9, name="lane_q_gather")
        lane_kvg = Signal(9, name="lane_kv_gather")
        m.d.comb += [lane_qg.eq(q_lane + gt), lane_kvg.eq(kv_lane + gt)]
        q_x = self.q_rdata.word_select(lane_qg[:max(1, (C - 1).bit_length())] if C > 1 else 0, w["q"])[:sc.width].as_signed()
        kv_lane_sel = lane_kvg[:max(1, (R - 1).bit_length())] if R > 1 else 0
        kv_word = self.kv_rdata.word_select(kv_lane_sel, w["kv"])
        k_x = kv_word[:sc.width].as_signed()
        v_x = kv_word[:vw]
        gath = Signal(DIM_W + 1, name="gather_cnt")
        g_v = Signal(name="gather_v")      # the read issued last cycle returns now
        g_e = Signal(DIM_W + 1, name="gather_e")
        m.d.sync += g_e.eq(gath)
        vlane = Signal(range(L), name="v_lane")
        vline = Signal(range(max(nbf_max, 2)), name="v_line")
        # gather token gn once the back has finished token gn - 2 (the bank's previous token)
        gn = Signal(10, name="gather_next")
        m.d.comb += g_start.eq(self.busy & ~g_run & (gn < count) & (gn < t + 2))
        with m.If(g_start):
            m.d.sync += [g_run.eq(1), gt.eq(gn), gn.eq(gn + 1), gath.eq(0), got.eq(0), g_v.eq(0),
                         vlane.eq(0), vline.eq(0)]
        with m.Elif(g_run):
            with m.If(gath < E):
                m.d.comb += [self.q_raddr.eq(gath), self.kv_raddr.eq(slot * slot_lines + gath)]
            with m.Else():
                m.d.comb += self.kv_raddr.eq(slot * slot_lines + cfg.max_e + (gath - E))
            m.d.sync += g_v.eq(gath < E + F)
            with m.If(gath < E + F):
                m.d.sync += gath.eq(gath + 1)
            with m.If(g_v & (g_e < E)):
                m.d.comb += [sig_q.valid_in.eq(1), sig_q.x.eq(q_x), sig_q.tag_in.eq(Cat(g_e[:e_bits], gt[0])),
                             sig_k.valid_in.eq(1), sig_k.x.eq(k_x)]
            with m.If(g_v & (g_e >= E)):
                m.d.comb += [v_w.addr.eq(vline + Mux(gt[0], nbf_max, 0)), v_w.data.eq(Cat(*[v_x] * L)),
                             v_w.en.eq(Const(1, L) << vlane)]
                with m.If(vlane == L - 1):
                    m.d.sync += [vlane.eq(0), vline.eq(vline + 1)]
                with m.Else():
                    m.d.sync += vlane.eq(vlane + 1)
            with m.If((gath == E + F) & ~g_v & (got == E)):
                m.d.comb += g_set.eq(Mux(gt[0], 2, 1))
                m.d.sync += g_run.eq(0)

        # the multipliers of PASS_A, PASS_B and KV, shared: the two dots (PASS_A: (φ+ε)(KC+ε),
        # PASS_B: (φ+ε)(KO+ε)), φk·SO (PASS_B) / φk·CP (KV, for W), φq·SI (PASS_B)
        kc_new, qc_new = Signal(signed(KC_W), name="kc_new"), Signal(signed(KC_W), name="qc_new")
        ko_new, qi_new = Signal(FF.shape(), name="ko_new"), Signal(FF.shape(), name="qi_new")
        in_b, in_kv = Signal(name="in_pass_b"), Signal(name="in_kv")
        dot_a = Signal(signed(phw + KC_W + 4), name="dot_a")
        dot_b = Signal(signed(phw + KC_W + 4), name="dot_b")
        pk_x = Signal(signed(phw + FF.width + 1), name="pk_x")
        pq_si = Signal(signed(phw + FF.width + 1), name="pq_si")
        m.d.comb += [
            dot_a.eq((pq1 + eps_p) * Mux(in_b, ko_new + eps_f, kc_new + eps_p)),
            dot_b.eq((pk1 + eps_p) * Mux(in_b, qi_new + eps_f, qc_new + eps_p)),
            pk_x.eq(pk1 * Mux(in_kv, cp, so)),
            pq_si.eq(pq1 * si),
        ]

        st_ok = Signal(name="st_ok")   # the output line read last cycle is on ob_r.data
        st_go = Signal(name="st_go")

        with m.FSM(name="flow_front") as ffsm:
            with m.State("IDLE"):
                with m.If(flow_go):
                    m.d.sync += tf.eq(0)
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(tf == count):
                    m.next = "IDLE"
                with m.Elif(g_ready.bit_select(bank_f, 1) & ~back_ab):
                    m.d.sync += lcf.eq(0)
                    m.next = "PASS_A"
            # -- KC, QC and the dots DI, DO --
            with m.State("PASS_A"):
                m.d.comb += [in_a.eq(1), rd_f.eq(lcf)]
                with m.If(lcf != 0):
                    m.d.comb += [kc_new.eq(fz(kc_r.data, True) + pk1), qc_new.eq(fz(qc_r.data, True) + pq1),
                                 kc_w.data.eq(kc_new), qc_w.data.eq(qc_new), kc_w.en.eq(1), qc_w.en.eq(1)]
                    m.d.sync += [acc_fa.eq(Mux(lcf == 1, 0, acc_fa) + dot_a),
                                 acc_fb.eq(Mux(lcf == 1, 0, acc_fb) + dot_b)]
                m.d.sync += lcf.eq(lcf + 1)
                with m.If(lcf == E):
                    m.d.sync += lcf.eq(0)
                    m.next = "DIV_S"
            with m.State("DIV_S"):
                di_v, di_s = FF.requantize_hdl(acc_fa, 2 * ef, mode)
                do_v, do_s = FF.requantize_hdl(acc_fb, 2 * ef, mode)
                with m.If(lcf == 0):
                    m.d.comb += [div_si.start.eq(1), div_si.num.eq(nu_f), div_si.den.eq(di_v),
                                 div_so.start.eq(1), div_so.num.eq(nu_f), div_so.den.eq(do_v),
                                 f_rnv_f.eq(di_s | do_s)]
                    m.d.sync += [di_n.eq(di_v), lcf.eq(1)]
                with m.If(div_si.done):
                    m.d.comb += [f_rnv_f.eq(div_si.sat | div_so.sat), f_dz_f.eq(div_si.dz | div_so.dz)]
                    m.d.sync += [si_n.eq(div_si.y), so_n.eq(div_so.y)]
                    m.next = "DONE"
            with m.State("DONE"):
                with m.If(take):
                    m.d.sync += [tf.eq(tf + 1), i_f.eq(i_f + 1)]
                    m.next = "WAIT"

        with m.FSM(name="flow") as fsm:
            with m.State("IDLE"):
                with m.If(self.cmd_valid & (op == OPCODES["FLOWC"].code)):
                    m.d.sync += clamp.eq(field(c, "FLOWC", "clamp"))
                with m.If(self.cmd_valid & (op == OPCODES["FLOW"].code)):
                    m.d.sync += [
                        st_base.eq(field(c, "FLOW", "addr")), slot.eq(field(c, "FLOW", "slot")),
                        store.eq(field(c, "FLOW", "store")), q_lane.eq(field(c, "FLOW", "q_lane")),
                        kv_lane.eq(field(c, "FLOW", "kv_lane")), count.eq(field(c, "FLOW", "count")),
                        t.eq(0), gn.eq(0), self.busy.eq(1),
                        # a sequence started by a FLOW without tokens starts at the next token
                        seq_first.eq(field(c, "FLOW", "first") | first_pend),
                        first_pend.eq((field(c, "FLOW", "first") | first_pend) & (field(c, "FLOW", "count") == 0)),
                    ]
                    with m.If(field(c, "FLOW", "first")):
                        m.d.sync += [i.eq(0), i_f.eq(0)]
                    with m.If(field(c, "FLOW", "count") == 0):
                        m.next = "FINISH"
                    with m.Else():
                        m.d.comb += [flow_go.eq(1), g_clr.eq(3)]
                        m.next = "BWAIT"

            # -- wait for the front's SI, SO, DI of token t --
            with m.State("BWAIT"):
                with m.If(ffsm.ongoing("DONE")):
                    m.d.comb += take.eq(1)
                    m.d.sync += [di.eq(di_n), si.eq(si_n), so.eq(so_n), lc.eq(0)]
                    m.next = "PASS_B"

            # -- KO, QI and the dots CK, CSR --
            with m.State("PASS_B"):
                m.d.comb += [rd_e.eq(lc), back_ab.eq(1)]
                with m.If(lc != 0):
                    ko_v, ko_s = FF.requantize_hdl(
                        fz(ko_r.data) + round_shift_hdl(pk_x, ef, mode), FF.frac, mode)
                    qi_v, qi_s = FF.requantize_hdl(
                        fz(qi_r.data) + round_shift_hdl(pq_si, ef, mode), FF.frac, mode)
                    m.d.comb += [ko_new.eq(ko_v), qi_new.eq(qi_v), ko_w.data.eq(ko_new), qi_w.data.eq(qi_new),
                                 ko_w.en.eq(1), qi_w.en.eq(1), f_rnv.eq(ko_s | qi_s)]
                    m.d.sync += [acc_a.eq(Mux(first_c, 0, acc_a) + dot_a), acc_b.eq(Mux(first_c, 0, acc_b) + dot_b)]
                m.d.sync += lc.eq(lc + 1)
                with m.If(lc == E):
                    m.d.sync += lc.eq(0)
                    m.next = "DIV_X"
            with m.State("DIV_X"):
                den = Signal(40, name="nu_ln2")
                m.d.comb += den.eq(nu * ln2)
                with m.If(lc == 0):
                    m.d.comb += [div_x.start.eq(1), div_x.num.eq(acc_a), div_x.den.eq(den),
                                 div_y.start.eq(1), div_y.num.eq(acc_b), div_y.den.eq(den)]
                    m.d.sync += lc.eq(1)
                with m.If(div_x.done):
                    m.d.comb += [f_score.eq(div_x.sat | div_y.sat), f_dz.eq(div_x.dz | div_y.dz)]
                    yv = div_y.y
                    yc = Mux(yv < -clamp, -clamp, Mux(yv > clamp, clamp, yv))
                    m.d.comb += [sig_al.start.eq(1), sig_al.x.eq(div_x.y),
                                 exp.start.eq(1), exp.x.eq(yc - clamp), exp.x_ninf.eq(0)]
                    m.next = "EXP"

            # -- AL (sigmoid) in parallel with EC, ZC, CP --
            with m.State("EXP"):
                al_done = Signal(name="al_done")
                cp_done = Signal(name="cp_done")
                with m.If(exp.done):
                    zc_new = Signal(40, name="zc_new")
                    m.d.comb += [zc_new.eq(fz(zc) + exp.y),
                                 div_cp.start.eq(1), div_cp.num.eq(nu * exp.y), div_cp.den.eq(zc_new)]
                    m.d.sync += zc.eq(zc_new)
                with m.If(sig_al.done):
                    m.d.comb += f_score.eq(sig_al.sat)
                    m.d.sync += [al.eq(sig_al.y), al_done.eq(1)]
                with m.If(div_cp.done):
                    m.d.comb += [f_rnv.eq(div_cp.sat), f_dz.eq(div_cp.dz)]
                    m.d.sync += [cp.eq(div_cp.y), cp_done.eq(1)]
                # KV needs the φ memories: not while the front is in PASS_A (and the front does
                # not start one in the cycle we leave)
                with m.If(al_done & cp_done):
                    m.d.comb += back_ab.eq(1)
                    with m.If(~in_a):
                        m.d.sync += [al_done.eq(0), cp_done.eq(0), lc.eq(0), fb.eq(0)]
                        m.next = "KV"

            # -- the E x F state on L lanes, block fb of columns at a time --
            with m.State("KV"):
                m.d.comb += [rd_e.eq(lc), kv_r.addr.eq(lc * nbf_max + fb), v_r.addr.eq(fb + Mux(bank, nbf_max, 0)),
                             back_ab.eq(1)]
                with m.If(lc != 0):
                    wv, ws = FF.requantize_hdl(round_shift_hdl(pk_x, ef, mode), FF.frac, mode)
                    wsig = Signal(FF.shape(), name="W")
                    m.d.comb += wsig.eq(wv)
                    news, flags = [], [ws]
                    for l in range(L):
                        old = fz(kv_r.data.word_select(l, FF.width).as_signed())
                        vv = v_r.data.word_select(l, vw).as_signed()
                        nv, ns = FF.requantize_hdl(old + round_shift_hdl(wsig * vv, nc.v.frac, mode),
                                                   FF.frac, mode)
                        ln = Signal(FF.shape(), name=f"kv_new{l}")
                        m.d.comb += ln.eq(nv)
                        news.append(ln)
                        flags.append(ns & (fb * L + l < F))
                        m.d.sync += qacc[l].eq(Mux(first_c, 0, qacc[l]) + pq1 * ln)
                    m.d.comb += [kv_w.addr.eq((lc - 1) * nbf_max + fb), kv_w.data.eq(Cat(*news)),
                                 kv_w.en.eq(1), f_rnv.eq(Cat(*flags).any())]
                m.d.sync += lc.eq(lc + 1)
                with m.If(lc == E):
                    m.d.sync += dcnt.eq(0)
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                # the L column sums, one per cycle, into the output divider
                m.d.comb += back_ab.eq(1)
                f_cur = fb * L + dcnt
                qv, qs = FF.requantize_hdl(Array(qacc)[dcnt], ef + FF.frac, mode)
                m.d.comb += [div_out.num.eq(qv * al), d_start.eq(f_cur < F), f_rnv.eq(qs & (f_cur < F))]
                m.d.comb += d_tag.eq(Cat(f_cur[:fw], lane_q[:lw]))
                m.d.sync += dcnt.eq(dcnt + 1)
                with m.If(dcnt == L - 1):
                    m.d.sync += [fb.eq(fb + 1), lc.eq(0)]
                    with m.If((fb + 1) * L >= F):
                        m.next = "NEXT"
                    with m.Else():
                        m.next = "KV"
            with m.State("NEXT"):
                # token t is done: its φ / V bank is free for token t + 2
                m.d.comb += g_clr.eq(Mux(bank, 2, 1))
                m.d.sync += [t.eq(t + 1), i.eq(i + 1)]
                with m.If(t + 1 == count):
                    m.next = "FINISH"
                with m.Else():
                    m.next = "BWAIT"

            # -- wait for the output divides, then store the output buffer --
            with m.State("FINISH"):
                with m.If(pipe_v == 0):
                    with m.If(store):
                        m.d.sync += [lc.eq(0), st_ok.eq(0)]
                        m.next = "STORE"
                    with m.Else():
                        m.d.sync += self.busy.eq(0)
                        m.next = "IDLE"
            with m.State("STORE"):
                m.d.comb += [st_go.eq(st_ok & self.st_ready),
                             ob_r.addr.eq(Mux(st_go, lc + 1, lc)),
                             self.st_valid.eq(st_ok), self.st_addr.eq(st_base + lc),
                             self.st_data.eq(ob_r.data)]
                m.d.sync += st_ok.eq(1)
                with m.If(st_go):
                    m.d.sync += lc.eq(lc + 1)
                    with m.If(lc == F - 1):
                        m.d.sync += [st_ok.eq(0), self.busy.eq(0)]
                        m.next = "IDLE"
        m.d.comb += [in_b.eq(fsm.ongoing("PASS_B")), in_kv.eq(fsm.ongoing("KV"))]
        return m


__all__ = ["FlowEngine", "flow_memories", "NU_W", "KC_W"]
