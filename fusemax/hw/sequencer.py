"""The sequencer: executes the control schedule (docs/architecture.md sections 4-6).

Instructions are decoded with the field table of :mod:`fusemax.sw.schedule` (``OPCODES``);
no bit position is written here. One instruction executes at a time, in order; the only
background activity is a K/V load (LDKV), tracked by a two-slot scoreboard:
``loaded[s]`` is set when an LDKV to slot s is issued, and slot s is *ready* when it is
loaded and the K/V loader is not filling it. LDKV waits while the loader is busy (TILEs are
blocking, so no TILE can be reading the slot an LDKV overwrites). A TILE on a slot that was
never loaded is a malformed schedule: ``error.opcode``, stop.

Instructions are decoded and executed straight from the head of the prefetch FIFO (state
FETCH, one cycle for the simple ones) and popped into ``cur_insn`` when they complete.

TILE micro-sequence (state: cycles), d = exp_degree:

==========  ===================  ======================================================
state       cycles               work
==========  ===================  ======================================================
(FETCH)     1                    decode TILE, check the slot scoreboard
T_BQK       E                    read Q/K line e (sync read); MAC one cycle later
T_BQK2      1                    last MAC
T_SCORE     1                    score <= requant(acc), valid <= mask   (BQK)
T_LM        1                    LM tree -> root register               (LM)
T_RM        1                    rm_new <= max_valid(RM, LM)            (RM)
T_EXP       1                    start SLN (2D) and PRM (1D) exps       (SLN, PRM)
T_EXPW      d - 1                wait; V line 0 is read in the last cycle of the wait
T_SLNV      F                    read V line f; pipeline: MAC SLN·V (its first one in the
                                 exps' done cycle, when the SLD tree registers), tree ->
                                 root + RNV read, RNV update; RD update after done
==========  ===================  ======================================================

The last two SLNV stages drain behind the next instructions (``pipe_busy`` holds back the
instructions that would disturb them: SHAPE, MASK, LDQ, AV, END). With the LDKV that
precedes it, a tile costs E + F + d + 6 cycles in the steady state (138 for E = F = 64, d = 4).

AV: F cycles reading RNV[f] and starting one divide per cycle on each lane's pipelined
divider; the results are written back over RNV[f] in their done cycles (div_cycles later);
then F line stores, one per cycle (memory permitting): F + div_cycles + 2 + F cycles.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fusemax.hw.array2d import MASK_W
from fusemax.hw.memport import DIM_W, kv_slot_lines
from fusemax.sw.schedule import OPCODE_LO, OPCODE_WIDTH, OPCODES, VERSION, config_tag

#: Error flag bits (docs/architecture.md section 6).
ERROR_BITS = {"config": 0, "shape": 1, "opcode": 2, "score_sat": 3, "rd_sat": 4, "rnv_sat": 5,
              "out_sat": 6, "div_zero": 7}

#: Activity signals (one per Einsum step) and the array each belongs to.
ACTIVITY = {"act_bqk": "2d", "act_lm": "2d", "act_sln": "2d", "act_sld": "2d", "act_slnv": "2d",
            "act_rm": "1d", "act_prm": "1d", "act_rd": "1d", "act_rnv": "1d", "act_av": "1d"}


def field(word, op: str, name: str):
    """Slice of instruction ``word`` holding field ``name`` of opcode ``op`` (from OPCODES)."""
    lo, width = OPCODES[op].fields[name]
    return word[lo: lo + width]


def opcode_of(word):
    return word[OPCODE_LO: OPCODE_LO + OPCODE_WIDTH]


def fsm_states(config) -> dict[str, int]:
    """The sequencer FSM's state encoding (the value of ``seq.seq_state`` per state name)."""
    from amaranth.hdl import Fragment

    seq = Sequencer(config)
    Fragment.get(seq, None)
    return dict(seq.fsm_encoding)


def max_e_effective(config) -> int:
    """Largest E the hardware accepts: the Q/K buffers' max_e, and the exact-BQK bound."""
    return min(config.max_e, 1 << config.numerics.acc_guard_bits)


class Sequencer(wiring.Component):
    def __init__(self, config):
        self.config = config
        aw = config.mem_addr_width
        self.q_addr_width = max(1, (config.max_e - 1).bit_length())
        self.kv_addr_width = max(1, (2 * kv_slot_lines(config) - 1).bit_length())
        fw = max(1, (config.max_f - 1).bit_length())
        sig = {
            "start": In(1), "sched_base": In(aw),
            "busy": Out(1), "done": Out(1), "error": Out(8), "clear": Out(1),
            "fetch_start": Out(1), "fetch_addr": Out(aw), "fetch_stop": Out(1),
            "insn_valid": In(1), "insn_data": In(64), "insn_ready": Out(1),
            "E": Out(DIM_W), "F": Out(DIM_W),
            "ldq_start": Out(1), "ldq_addr": Out(aw), "ldq_busy": In(1),
            "ldkv_start": Out(1), "ldkv_addr": Out(aw), "ldkv_slot": Out(1),
            "ldkv_busy": In(1), "ldkv_cur_slot": In(1),
            "st_valid": Out(1), "st_addr": Out(aw), "st_ready": In(1),
            "mem_idle": In(1),
            "q_raddr": Out(self.q_addr_width), "kv_raddr": Out(self.kv_addr_width),
            "mac_en": Out(1), "mac_first": Out(1), "mac_sel": Out(1),
            "score_en": Out(1), "exp2d_start": Out(1),
            "m_base": Out(MASK_W["m_base"]), "p_base": Out(MASK_W["p_base"]),
            "M": Out(MASK_W["M"]), "P": Out(MASK_W["P"]), "causal": Out(1),
            "reset_state": Out(1), "rm_en": Out(1), "exp1d_start": Out(1), "rd_en": Out(1),
            "rf_raddr": Out(fw), "rnv_we": Out(1), "rnv_waddr": Out(fw),
            "rm_commit": Out(1), "div_start": Out(1), "wb_sel": Out(1),
            "exp_done": In(1), "div_done": In(1),
            "score_sat": In(1), "rd_sat": In(1), "rnv_sat": In(1), "out_sat": In(1), "dz": In(1),
            "stall": Out(1), "insn_fire": Out(1), "tile_fire": Out(1),
            "cur_insn": Out(64),
        }
        for name in ACTIVITY:
            sig[name] = Out(1)
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        aw = cfg.mem_addr_width
        slot_lines = kv_slot_lines(cfg)
        tag = config_tag(cfg.digest())

        d = cfg.numerics.exp_degree
        cnt = Signal(DIM_W, name="step_cnt")
        slot = Signal(name="tile_slot")
        loaded = Signal(2, name="kv_loaded")
        seen_hdr = Signal(name="seen_hdr")
        shape_ok = Signal(name="shape_ok")
        st_base = Signal(aw, name="av_base")
        err = Signal(8, name="err")
        m.d.comb += self.error.eq(err)

        # The instruction at the head of the prefetch FIFO is decoded and executed in FETCH;
        # it is popped (and latched in cur_insn) when it completes or fails.
        w = self.insn_data
        op = opcode_of(w)
        pop = Signal(name="insn_pop")
        m.d.comb += [self.insn_ready.eq(pop), self.insn_fire.eq(pop)]
        with m.If(pop):
            m.d.sync += self.cur_insn.eq(w)

        # issue -> p1 (MAC) -> p2 (SLNV tree, RNV read) -> p3 (RNV write) pipeline tags
        iss, iss_first, iss_sel = Signal(name="iss"), Signal(name="iss_first"), Signal(name="iss_sel")
        p1, p1_first, p1_sel = Signal(name="p1"), Signal(name="p1_first"), Signal(name="p1_sel")
        p2, p3 = Signal(name="p2"), Signal(name="p3")
        p1_f, p2_f, p3_f = (Signal(DIM_W, name=n) for n in ("p1_f", "p2_f", "p3_f"))
        m.d.sync += [p1.eq(iss), p1_first.eq(iss_first), p1_sel.eq(iss_sel), p1_f.eq(cnt),
                     p2.eq(p1 & p1_sel), p2_f.eq(p1_f), p3.eq(p2), p3_f.eq(p2_f)]
        # RD is updated the cycle after the exps finish (the SLD tree's root is then valid)
        rd_pend = Signal(name="rd_pend")
        m.d.sync += rd_pend.eq(self.exp_done)
        m.d.comb += self.rd_en.eq(rd_pend)
        # AV: divide issue (RNV[f] read in cycle t, divider start in t + 1), writeback
        av_iss = Signal(name="av_iss")
        m.d.sync += self.div_start.eq(av_iss)
        wb_cnt = Signal(DIM_W, name="av_wb_cnt")
        in_av = Signal(name="in_av")
        self.rf_raddr_av = Signal.like(self.rf_raddr, name="rf_raddr_av")
        m.d.comb += [
            self.mac_en.eq(p1), self.mac_first.eq(p1_first), self.mac_sel.eq(p1_sel),
            self.rf_raddr.eq(Mux(in_av, self.rf_raddr_av, p2_f)),
            self.rnv_we.eq(p3 | self.div_done),
            self.rnv_waddr.eq(Mux(self.div_done, wb_cnt, p3_f)),
            self.wb_sel.eq(self.div_done),
        ]
        pipe_busy = Signal(name="pipe_busy")
        m.d.comb += pipe_busy.eq(p1 | p2 | p3 | rd_pend | self.exp_done)
        slot_base = Mux(slot, slot_lines, 0)

        ready = [loaded[s] & ~(self.ldkv_busy & (self.ldkv_cur_slot == s)) for s in range(2)]
        slot_f = field(w, "TILE", "slot")
        tile_ready = Mux(slot_f, ready[1], ready[0])

        # sticky saturation / divide flags (pulses from the arrays, watched while running)
        sat = Cat(*[Const(0, 1)] * 3, self.score_sat, self.rd_sat, self.rnv_sat, self.out_sat, self.dz)
        set_err = Signal(8, name="set_err")
        m.d.sync += err.eq(err | set_err | Mux(self.busy, sat, 0))

        def fail(bit):
            m.d.comb += [set_err.eq(1 << ERROR_BITS[bit]), pop.eq(1)]
            m.next = "STOP"

        exec_wait = Signal(name="exec_wait")

        with m.FSM(name="seq") as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += [self.clear.eq(1), self.fetch_start.eq(1), self.fetch_addr.eq(self.sched_base)]
                    m.d.sync += [err.eq(0), self.done.eq(0), self.busy.eq(1), seen_hdr.eq(0),
                                 shape_ok.eq(0), loaded.eq(0), self.causal.eq(0), self.M.eq(0),
                                 self.P.eq(0), self.cur_insn.eq(0)]
                    m.next = "FETCH"

            with m.State("FETCH"):
                with m.If(~self.insn_valid):
                    pass
                with m.Elif(~seen_hdr & (op != OPCODES["HDR"].code)):
                    fail("config")
                with m.Elif(op == OPCODES["HDR"].code):
                    with m.If((field(w, "HDR", "version") != VERSION) | (field(w, "HDR", "tag") != tag)):
                        fail("config")
                    with m.Else():
                        m.d.comb += pop.eq(1)
                        m.d.sync += seen_hdr.eq(1)
                with m.Elif(op == OPCODES["SHAPE"].code):
                    e, f = field(w, "SHAPE", "E"), field(w, "SHAPE", "F")
                    with m.If((e == 0) | (e > max_e_effective(cfg)) | (f == 0) | (f > cfg.max_f)):
                        fail("shape")
                    with m.Elif(~pipe_busy):
                        m.d.comb += pop.eq(1)
                        m.d.sync += [self.E.eq(e), self.F.eq(f), shape_ok.eq(1)]
                with m.Elif(op == OPCODES["MASK"].code):
                    with m.If(~pipe_busy):
                        m.d.comb += pop.eq(1)
                        m.d.sync += [self.M.eq(field(w, "MASK", "M")), self.P.eq(field(w, "MASK", "P"))]
                with m.Elif(op == OPCODES["CAUSAL"].code):
                    m.d.comb += pop.eq(1)
                    m.d.sync += self.causal.eq(field(w, "CAUSAL", "enable"))
                with m.Elif(op == OPCODES["LDQ"].code):
                    with m.If(~shape_ok):
                        fail("shape")
                    with m.Elif(~pipe_busy):
                        m.d.comb += [pop.eq(1), self.ldq_start.eq(1), self.ldq_addr.eq(field(w, "LDQ", "addr")),
                                     self.reset_state.eq(1)]
                        m.d.sync += self.p_base.eq(field(w, "LDQ", "p_base"))
                        m.next = "LDQ_WAIT"
                with m.Elif(op == OPCODES["LDKV"].code):
                    with m.If(~shape_ok):
                        fail("shape")
                    with m.Elif(self.ldkv_busy):
                        m.d.comb += exec_wait.eq(1)
                    with m.Else():
                        s = field(w, "LDKV", "slot")
                        m.d.comb += [pop.eq(1), self.ldkv_start.eq(1), self.ldkv_addr.eq(field(w, "LDKV", "addr")),
                                     self.ldkv_slot.eq(s)]
                        m.d.sync += loaded.eq(loaded | Mux(s, 2, 1))
                with m.Elif(op == OPCODES["TILE"].code):
                    with m.If(~shape_ok):
                        fail("shape")
                    with m.Elif(~Mux(slot_f, loaded[1], loaded[0])):
                        fail("opcode")
                    with m.Elif(~tile_ready):
                        m.d.comb += exec_wait.eq(1)
                    with m.Else():
                        m.d.comb += pop.eq(1)
                        m.d.sync += [slot.eq(slot_f), self.m_base.eq(field(w, "TILE", "m_base")), cnt.eq(0)]
                        m.next = "T_BQK"
                with m.Elif(op == OPCODES["AV"].code):
                    with m.If(~shape_ok):
                        fail("shape")
                    with m.Elif(~pipe_busy):
                        m.d.comb += pop.eq(1)
                        m.d.sync += [st_base.eq(field(w, "AV", "addr")), cnt.eq(0), wb_cnt.eq(0)]
                        m.next = "A_DIV"
                with m.Elif(op == OPCODES["END"].code):
                    with m.If(~pipe_busy):
                        m.d.comb += pop.eq(1)
                        m.next = "STOP"
                with m.Else():
                    fail("opcode")

            with m.State("LDQ_WAIT"):
                with m.If(~self.ldq_busy):
                    m.next = "FETCH"

            # ---------------- TILE ----------------
            with m.State("T_BQK"):
                m.d.comb += [self.q_raddr.eq(cnt), self.kv_raddr.eq(slot_base + cnt),
                             iss.eq(1), iss_first.eq(cnt == 0)]
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == self.E - 1):
                    m.next = "T_BQK2"
            with m.State("T_BQK2"):
                m.next = "T_SCORE"
            with m.State("T_SCORE"):
                m.d.comb += self.score_en.eq(1)
                m.next = "T_LM"
            with m.State("T_LM"):
                m.next = "T_RM"
            with m.State("T_RM"):
                m.d.comb += self.rm_en.eq(1)
                m.next = "T_EXP"
            with m.State("T_EXP"):
                # exps start now and finish in cycle d + 1; V line 0 is read in cycle d so that
                # its MAC (SLN x V) falls in the done cycle, when SLN is valid.
                m.d.comb += [self.exp2d_start.eq(1), self.exp1d_start.eq(1)]
                m.d.sync += cnt.eq(0)
                m.next = "T_SLNV" if d == 1 else "T_EXPW"
            with m.State("T_EXPW"):
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == d - 2):
                    m.d.sync += cnt.eq(0)
                    m.next = "T_SLNV"
            with m.State("T_SLNV"):
                m.d.comb += [self.kv_raddr.eq(slot_base + cfg.max_e + cnt),
                             iss.eq(1), iss_first.eq(1), iss_sel.eq(1)]
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == self.F - 1):
                    # the last MAC, the tree and the RNV update drain behind the next
                    # instructions (pipe_busy holds back AV, LDQ, SHAPE, MASK and END)
                    m.d.comb += [self.rm_commit.eq(1), self.tile_fire.eq(1)]
                    m.next = "FETCH"

            # ---------------- AV ----------------
            with m.State("A_DIV"):      # read RNV[f], start divide f one cycle later
                m.d.comb += [in_av.eq(1), self.rf_raddr_av.eq(cnt), av_iss.eq(1)]
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == self.F - 1):
                    m.next = "A_WB"
            with m.State("A_WB"):       # results are written back into RNV[f] as they finish
                m.d.comb += [in_av.eq(1), self.rf_raddr_av.eq(0)]
                m.d.sync += cnt.eq(0)
                with m.If(wb_cnt == self.F):
                    m.next = "A_ST"
            with m.State("A_ST"):       # one line per cycle from the register files
                with m.If(self.st_ready):
                    m.d.comb += self.rf_raddr_av.eq(cnt + 1)
                with m.Else():
                    m.d.comb += self.rf_raddr_av.eq(cnt)
                m.d.comb += [in_av.eq(1), self.st_valid.eq(1), self.st_addr.eq(st_base + cnt)]
                with m.If(self.st_ready):
                    m.d.sync += cnt.eq(cnt + 1)
                    with m.If(cnt == self.F - 1):
                        m.next = "FETCH"

            # ---------------- END / error: stop fetching, drain reads, done ----------------
            with m.State("STOP"):
                m.d.comb += self.fetch_stop.eq(1)
                with m.If(self.mem_idle):
                    m.d.sync += [self.done.eq(1), self.busy.eq(0)]
                    m.next = "IDLE"

        # divider writeback into the RNV register files
        with m.If(self.div_done):
            m.d.sync += wb_cnt.eq(wb_cnt + 1)

        #: FSM state name -> encoding of ``seq_state`` (for waveform translation filters)
        self.fsm_encoding = dict(fsm.encoding)
        on = fsm.ongoing
        # the exps run from their start (T_EXP) to their done cycle, which falls in T_SLNV
        exp_busy = Signal(name="exp_busy")
        exp_run = Signal(name="exp_run")
        with m.If(self.exp1d_start):
            m.d.sync += exp_run.eq(1)
        with m.Elif(self.exp_done):
            m.d.sync += exp_run.eq(0)
        m.d.comb += exp_busy.eq(self.exp1d_start | exp_run)
        m.d.comb += [
            self.act_bqk.eq((p1 & ~p1_sel) | self.score_en),
            self.act_lm.eq(on("T_LM")),
            self.act_sln.eq(exp_busy),
            self.act_sld.eq(self.exp_done),
            self.act_slnv.eq((p1 & p1_sel) | p2),
            self.act_rm.eq(self.rm_en),
            self.act_prm.eq(exp_busy),
            self.act_rd.eq(self.rd_en),
            self.act_rnv.eq(p3),
            self.act_av.eq(on("A_DIV") | on("A_WB")),
            self.stall.eq(exec_wait | on("LDQ_WAIT") | (on("A_ST") & ~self.st_ready)
                          | (on("FETCH") & ~self.insn_valid & ~pipe_busy) | (on("STOP") & ~self.mem_idle)),
        ]
        return m
