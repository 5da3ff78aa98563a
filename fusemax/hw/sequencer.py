"""The sequencer: executes the control schedule (docs/architecture.md sections 4-6).

Instructions are decoded with the field table of :mod:`fusemax.sw.schedule` (``OPCODES``);
no bit position is written here. Instructions are decoded and executed from the head of the
prefetch FIFO (state FETCH) and popped into ``cur_insn`` when they issue. The loaders (LDQ,
LDKV, in the memory port), the **tile engine** (TILE) and the AV run in the background; the
tile engine pipelines tiles the way the FuseMax binding does (the paper's section V,
"Binding"):

Every tile t passes through four stages; the MAC of every 2D PE is shared by two of them:

======  ==========================================================================  =========
stage   work                                                                        array
======  ==========================================================================  =========
A       BQK: E cycles reading Q line e and K line e; the MAC one cycle behind       2D MAC
X       score <= requant(acc) (age 1), LM tree (age 2), RM_new (age 3); waits to    2D, 1D
        start the exps (SLN on every 2D PE, PRM on every lane) at age >= 4
Z       the exps run (d + 1 cycles); RM <= RM_new as they start; RD update after    2D exp, 1D
B       SLNV: F cycles reading V line f; the MAC (SLN·V), the column tree, the       2D MAC, 1D
        RNV update (SPNV + RNV) two and three cycles later
======  ==========================================================================  =========

The engine runs A of tile t and then B of tile t − 1 back to back on the MAC (an *epoch*),
so the exps of tile t run while the MAC does tile t − 1's SLNV and the 1D array its RNV
updates: in the steady state a tile costs E + F cycles and the MAC never waits. The exps
of tile t start as late as they must (their results replace SLN and PRM of tile t − 1,
which B of tile t − 1 still reads), as early as they can (age 4). A new A starts only when
the previous tile's exps have started (so RM and the score register are free). TILE's
``serial`` bit runs a tile alone: nothing overlaps it (the +Architecture ablation). TILE's
``restart`` bit makes the tile's PRM 0 (``prm_zero`` with the exps' start), so RD and RNV start
again from this tile's SLD and SLNV while RM stays: the second pass of the 3-pass cascade.

Slots: three K/V slots; ``loaded[s]`` is set when an LDKV to s issues, a slot is *ready*
when loaded and not filling; ``slot_busy[s]`` from the TILE that reads s until its B starts
(its K lines are read by then and V line f is read before the next load can write it).
LDKV waits while the loader's issue side is busy or its slot is busy. A TILE on a slot that
was never loaded is a malformed schedule: ``error.opcode``, stop.

LDQ loads the Q buffer in the background (it waits only while a tile is in stage A, the Q
buffer's one reader) and stages p_base. The first TILE of a block (``first``) waits for the
tile engine to drain, resets RM.valid (``reset_rm``; RD needs no clearing: while RM is not
valid PRM = 0, so the first RD update writes SLD alone) and makes the staged p_base current;
the AV of a block without tiles waits for everything, resets RM.valid and RD and takes the
staged p_base. SHAPE, MASK, CAUSAL, WINDOW, MODE, AV and END wait until the tile engine and AV are
done. On a design with ``flow_unit``, FLOWC and FLOW go to the flow engine (``flow_cmd``) once
everything is idle (FLOW also waits for the Q buffer and its K/V slot); FLOW is blocking: no
instruction issues while the engine runs. A FLOW before SHAPE, or whose tokens run past the
buffers' lanes (q_lane + count > cols, kv_lane + count > rows), or a FLOWC clamp code above
score.max_code, stops with ``error.shape``; on
a never-loaded slot with ``error.opcode``; FLOWC/FLOW on a design without the engine with
``error.config``. CAUSAL and WINDOW set the mask's ``causal`` and ``window`` (W, 0 = off; both cleared by
``start``). MODE sets ``sig_mode`` and ``nonorm`` (sigmoid attention; cleared by ``start``) on
a design with ``sigmoid_unit``; elsewhere a MODE with a bit set stops with ``error.config``.
In sigmoid mode the exps' done is the 2D sigmoids' (L = d + exp.frac + 5 cycles after the
start, not d + 1), and the clobber rule below counts with L.

On a design with ``entropy_unit``, MODE's ``entropy`` bit sets ``ent_mode`` (cleared by
``start``; with ``sigmoid`` or ``nonorm``, or on a design without the unit: ``error.config``).
In entropy mode stage B has one more step after V line F − 1, the **RT step** (``mac_ent``:
the MAC multiplies SLN by the BQK it came from, the column tree sums SLNQ, and the 1D lanes
update register-file entry F, RT, with SLNQ's round shift, ``rt_sel``): F + 1 cycles per tile.
AV reads entry F once more after its F divide reads (no divide); the cycle after, ``ent_cap``
hands every lane's RM, RD and RT to the entropy finisher (``fusemax.hw.entropy``), which
stores H at line F of the block (``ent_addr``) on its own, beside the next block's tiles
(serial ones too). The finisher's ``busy`` counts as busy for everything that waits for idle
(the next AV, SHAPE ..., END). RT is never cleared: a block's first tile restarts it (PRM = 0),
so MODE entropy=1 must precede the block's first TILE: a MODE that changes the entropy bit
inside a block (after its first TILE, before its AV; ``blk_open``) stops with ``error.config``.

AV runs in the background (``av_div``, ``av_st``): F cycles reading RNV[f] and starting one
divide per cycle on each lane's pipelined divider; the results are written back over RNV[f]
in their done cycles and each line is stored once it has been read back after its
write-back: F + max(F, div_cycles + 1) + 1 cycles. Meanwhile the next block's tiles run
stages A and X; their exps wait until the divides are issued (they update RD, the divisor)
and stage B until the stores are done (B uses the register file's one read port). Its flags
are masked with the lanes of its own block (``av_p_base``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fusemax.hw.array2d import MASK_W
from fusemax.hw.memport import DIM_W, buffer_addr_widths, kv_slot_lines
from fusemax.hw.pe1d import rf_addr_width
from fusemax.sw.schedule import KV_SLOTS, OPCODE_LO, OPCODE_WIDTH, OPCODES, VERSION, config_tag

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
        self.q_addr_width, self.kv_addr_width = buffer_addr_widths(config)
        fw = rf_addr_width(config)
        sig = {
            "start": In(1), "sched_base": In(aw),
            "busy": Out(1), "done": Out(1), "error": Out(8), "clear": Out(1),
            "fetch_start": Out(1), "fetch_addr": Out(aw), "fetch_stop": Out(1),
            "insn_valid": In(1), "insn_data": In(64), "insn_ready": Out(1),
            "E": Out(DIM_W), "F": Out(DIM_W),
            "ldq_start": Out(1), "ldq_addr": Out(aw), "ldq_busy": In(1),
            "ldkv_start": Out(1), "ldkv_addr": Out(aw), "ldkv_slot": Out(2),
            "ldkv_busy": In(1), "ldkv_last": In(1), "kv_filling": In(KV_SLOTS),
            "st_valid": Out(1), "st_addr": Out(aw), "st_ready": In(1),
            "mem_idle": In(1),
            "q_raddr": Out(self.q_addr_width), "kv_raddr": Out(self.kv_addr_width),
            "mac_en": Out(1), "mac_first": Out(1), "mac_sel": Out(1),
            "score_en": Out(1), "exp2d_start": Out(1),
            "m_base": Out(MASK_W["m_base"]), "p_base": Out(MASK_W["p_base"]),
            "M": Out(MASK_W["M"]), "P": Out(MASK_W["P"]), "causal": Out(1),
            "window": Out(MASK_W["window"]),
            "reset_state": Out(1), "reset_rm": Out(1), "av_p_base": Out(MASK_W["p_base"]),
            "rm_en": Out(1), "exp1d_start": Out(1), "prm_zero": Out(1), "rd_en": Out(1),
            "rf_raddr": Out(fw), "rnv_we": Out(1), "rnv_waddr": Out(fw),
            "rm_commit": Out(1), "div_start": Out(1), "wb_sel": Out(1),
            "exp_done": In(1), "div_done": In(1),
            "score_sat": In(1), "rd_sat": In(1), "rnv_sat": In(1), "out_sat": In(1), "dz": In(1),
            "stall": Out(1), "insn_fire": Out(1), "tile_fire": Out(1),
            "cur_insn": Out(64),
        }
        if config.sigmoid_unit:
            sig.update({"sig_mode": Out(1), "nonorm": Out(1)})
        if config.entropy_unit:
            # entropy mode: the RT step (mac_ent, rt_sel), the finisher's capture and address
            sig.update({"ent_mode": Out(1), "mac_ent": Out(1), "rt_sel": Out(1),
                        "ent_cap": Out(1), "ent_addr": Out(aw), "ent_busy": In(1)})
        if config.flow_unit:
            # FLOWC/FLOW go to the flow engine (it takes insn_data when flow_cmd is high)
            sig.update({"flow_cmd": Out(1), "flow_busy": In(1)})
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

        cnt = Signal(DIM_W, name="av_cnt")
        loaded = Signal(KV_SLOTS, name="kv_loaded")
        slot_busy = Signal(KV_SLOTS, name="kv_slot_busy")
        seen_hdr = Signal(name="seen_hdr")
        # entropy designs: a block is open from its first TILE to its AV (MODE may not change
        # the entropy bit then: the block's RT would start from a stale register-file entry)
        blk_open = Signal(name="blk_open")
        shape_ok = Signal(name="shape_ok")
        st_base = Signal(aw, name="av_base")
        p_next = Signal.like(self.p_base, name="p_base_staged")
        err = Signal(8, name="err")
        m.d.comb += self.error.eq(err)

        w = self.insn_data
        op = opcode_of(w)
        pop = Signal(name="insn_pop")
        m.d.comb += [self.insn_ready.eq(pop), self.insn_fire.eq(pop)]
        with m.If(pop):
            m.d.sync += self.cur_insn.eq(w)

        # ---------------- the tile engine ----------------
        # stage A (BQK issue), X (score, LM, RM; waiting for the exps), Z (exps running or
        # done; waiting for B), B (SLNV issue); p1 (MAC) -> p2 (tree, RNV read) -> p3 (RNV write)
        a_run, a_cnt, a_slot, a_ser = Signal(name="a_run"), Signal(DIM_W, name="a_cnt"), Signal(2, name="a_slot"), Signal(name="a_serial")
        x_val, x_age, x_slot, x_ser = Signal(name="x_valid"), Signal(3, name="x_age"), Signal(2, name="x_slot"), Signal(name="x_serial")
        z_val, z_rdy, z_slot, z_ser = Signal(name="z_valid"), Signal(name="z_ready"), Signal(2, name="z_slot"), Signal(name="z_serial")
        b_run, b_cnt, b_slot, b_ser = Signal(name="b_run"), Signal(DIM_W, name="b_cnt"), Signal(2, name="b_slot"), Signal(name="b_serial")
        # the exps run while a tile is in Z and not ready (no register of their own)
        exp_run = Signal(name="exp_run")
        m.d.comb += exp_run.eq(z_val & ~z_rdy)
        # TILE.restart travels with its tile to the exps' start (PRM = 0 there)
        a_rst, x_rst = Signal(name="a_restart"), Signal(name="x_restart")

        iss, iss_first, iss_sel = Signal(name="iss"), Signal(name="iss_first"), Signal(name="iss_sel")
        # the RT step (entropy mode): one more SLNV step after V line F - 1, b = the score
        ent = self.ent_mode if cfg.entropy_unit else Const(0, 1)
        iss_ent, p1_ent, p2_ent, p3_ent = (Signal(name=n) for n in ("iss_ent", "p1_ent", "p2_ent", "p3_ent"))
        m.d.sync += [p1_ent.eq(iss_ent), p2_ent.eq(p1_ent), p3_ent.eq(p2_ent)]
        p1, p1_first, p1_sel = Signal(name="p1"), Signal(name="p1_first"), Signal(name="p1_sel")
        p2, p3 = Signal(name="p2"), Signal(name="p3")
        p1_f, p2_f, p3_f = (Signal(DIM_W, name=n) for n in ("p1_f", "p2_f", "p3_f"))
        m.d.sync += [p1.eq(iss), p1_first.eq(iss_first), p1_sel.eq(iss_sel), p1_f.eq(b_cnt),
                     p2.eq(p1 & p1_sel), p2_f.eq(p1_f), p3.eq(p2), p3_f.eq(p2_f)]
        rd_pend = Signal(name="rd_pend")
        m.d.sync += rd_pend.eq(self.exp_done)
        m.d.comb += self.rd_en.eq(rd_pend)

        a_last = a_run & (a_cnt == self.E - 1)
        b_steps = Signal.like(self.F, name="b_steps")  # SLNV steps per tile: F (+ 1: RT)
        m.d.comb += b_steps.eq(self.F + ent)
        b_last = b_run & (b_cnt == b_steps - 1)
        # the MAC is free for a new A or B from the next cycle on
        eng_free = (~a_run | a_last) & (~b_run | b_last)
        sln_ready = z_val & (z_rdy | self.exp_done)
        # AV (background, below) owns the RNV register file's read port and RD until it is done
        av_div, av_st = Signal(name="av_div"), Signal(name="av_st")
        av_busy = av_div | av_st
        go_b = Signal(name="go_b")
        m.d.comb += go_b.eq(eng_free & sln_ready & ~av_busy)

        # the exps of the tile in X: RM_new is ready (age >= 4), the exp units are free, the
        # tile in Z has moved on to B, and SLN/PRM of the tile in B are not needed any more
        # when the new values appear (d + 1 cycles after the start)
        # (d + 1 cycles for the exp; L for the sigmoid: new_after = latency - 1)
        new_after = d
        if cfg.sigmoid_unit:
            new_after = Mux(self.sig_mode, cfg.numerics.sigmoid_cycles - 1, d)
        if d >= 2:
            drain_ok = 1
        else:
            drain_ok = ~p1 | (self.sig_mode if cfg.sigmoid_unit else 0)
        clobber_ok = Mux(b_run, b_cnt + new_after >= b_steps + 2, drain_ok)
        exp_go = Signal(name="exp_go")
        # (and RD, which they update, is not read by AV's divides any more)
        m.d.comb += exp_go.eq(x_val & (x_age >= 4) & ~z_val & clobber_ok & ~av_div)
        m.d.comb += [self.exp2d_start.eq(exp_go), self.exp1d_start.eq(exp_go), self.rm_commit.eq(exp_go),
                     self.prm_zero.eq(exp_go & x_rst),
                     self.score_en.eq(x_val & (x_age == 1)), self.rm_en.eq(x_val & (x_age == 3))]

        # a serial tile (or a tile after one) runs alone
        ser_hold = (a_run & a_ser) | (x_val & x_ser) | (z_val & z_ser) | (b_run & b_ser & ~b_last)
        eng_quiet = ~a_run & ~x_val & ~z_val & (~b_run | b_last)
        # a new A only once the previous tile has started its exps (RM and the score
        # register are then free): no tile in A, stage X empty or emptying this cycle
        x_free = ~a_run & (~x_val | exp_go)

        # issue
        with m.If(a_run):
            m.d.comb += [self.q_raddr.eq(a_cnt), self.kv_raddr.eq(a_slot * slot_lines + a_cnt),
                         iss.eq(1), iss_first.eq(a_cnt == 0)]
            m.d.sync += a_cnt.eq(a_cnt + 1)
        with m.Elif(b_run):
            # (the RT step reads no V line: it repeats line F - 1's address, inside the slot)
            ent_step = ent & (b_cnt == self.F)
            m.d.comb += [self.kv_raddr.eq(b_slot * slot_lines + cfg.max_e + b_cnt - ent_step),
                         iss.eq(1), iss_first.eq(1), iss_sel.eq(1), iss_ent.eq(ent_step)]
            m.d.sync += b_cnt.eq(b_cnt + 1)
        with m.If(a_last):
            m.d.sync += [a_run.eq(0), x_val.eq(1), x_age.eq(0), x_slot.eq(a_slot), x_ser.eq(a_ser), x_rst.eq(a_rst)]
        with m.If(b_last):
            m.d.sync += b_run.eq(0)
        m.d.comb += self.tile_fire.eq(b_last)
        with m.If(x_val & (x_age != 7)):
            m.d.sync += x_age.eq(x_age + 1)
        with m.If(exp_go):
            m.d.sync += [z_val.eq(1), z_rdy.eq(0), z_slot.eq(x_slot), z_ser.eq(x_ser)]
            with m.If(~a_last):
                m.d.sync += x_val.eq(0)
        with m.If(z_val & self.exp_done):
            m.d.sync += z_rdy.eq(1)
        with m.If(go_b):
            m.d.sync += [b_run.eq(1), b_cnt.eq(0), b_slot.eq(z_slot), b_ser.eq(z_ser)]
            with m.If(~exp_go):
                m.d.sync += z_val.eq(0)

        # slot scoreboard
        set_loaded = Signal(KV_SLOTS, name="kv_set_loaded")
        set_busy = Signal(KV_SLOTS, name="kv_set_busy")
        clr_busy = Signal(KV_SLOTS, name="kv_clr_busy")
        m.d.comb += clr_busy.eq(Mux(go_b, 1 << z_slot, 0))
        m.d.sync += [loaded.eq(loaded | set_loaded), slot_busy.eq((slot_busy & ~clr_busy) | set_busy)]

        # AV: divide issue (RNV[f] read in cycle t, divider start in t + 1), writeback
        av_last = Signal(name="av_read_last")   # the last register-file read of the divide phase
        av_rt = Signal(name="av_read_rt")       # entropy mode: that read is RT (no divide)
        m.d.comb += [av_rt.eq(ent & (cnt == self.F)), av_last.eq(cnt == self.F - 1 + ent)]
        m.d.sync += self.div_start.eq(av_div & ~av_rt)
        wb_cnt = Signal(DIM_W, name="av_wb_cnt")
        st_ok = Signal(name="av_st_ok")
        rf_raddr_av = Signal.like(self.rf_raddr, name="rf_raddr_av")
        m.d.comb += [
            self.mac_en.eq(p1), self.mac_first.eq(p1_first), self.mac_sel.eq(p1_sel),
            self.rf_raddr.eq(Mux(av_busy, rf_raddr_av, p2_f)),
            self.rnv_we.eq(p3 | self.div_done),
            self.rnv_waddr.eq(Mux(self.div_done, wb_cnt, p3_f)),
            self.wb_sel.eq(self.div_done),
        ]
        eng_busy = Signal(name="engine_busy")
        m.d.comb += eng_busy.eq(a_run | x_val | z_val | b_run | p1 | p2 | p3 | rd_pend)
        flow_busy = self.flow_busy if cfg.flow_unit else Const(0, 1)
        ent_busy = self.ent_busy if cfg.entropy_unit else Const(0, 1)
        all_busy = Signal(name="all_busy")
        m.d.comb += all_busy.eq(eng_busy | av_busy | flow_busy | ent_busy)

        slot_f = field(w, "TILE", "slot")
        ser_f = field(w, "TILE", "serial")
        first_f = field(w, "TILE", "first")
        restart_f = field(w, "TILE", "restart")
        av_first_f = field(w, "AV", "first")
        kv_slot_f = field(w, "LDKV", "slot")
        ready = Signal(KV_SLOTS, name="kv_ready")
        m.d.comb += ready.eq(loaded & ~self.kv_filling)

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
                    m.d.sync += [err.eq(0), self.done.eq(0), self.busy.eq(1), seen_hdr.eq(0), av_div.eq(0), av_st.eq(0),
                                 shape_ok.eq(0), loaded.eq(0), slot_busy.eq(0), self.causal.eq(0), self.window.eq(0),
                                 self.M.eq(0), self.P.eq(0), self.cur_insn.eq(0)]
                    if cfg.sigmoid_unit:
                        m.d.sync += [self.sig_mode.eq(0), self.nonorm.eq(0)]
                    if cfg.entropy_unit:
                        m.d.sync += [self.ent_mode.eq(0), blk_open.eq(0)]
                    m.next = "FETCH"

            with m.State("FETCH"):
                with m.If(~self.insn_valid):
                    pass
                if cfg.flow_unit:
                    with m.Elif(flow_busy):
                        pass  # FLOW is blocking: nothing issues while the flow engine runs
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
                    with m.Elif(~all_busy & ~self.ldkv_busy & (self.kv_filling == 0) & ~self.ldq_busy):
                        m.d.comb += pop.eq(1)
                        m.d.sync += [self.E.eq(e), self.F.eq(f), shape_ok.eq(1)]
                with m.Elif(op == OPCODES["MASK"].code):
                    with m.If(~all_busy):
                        m.d.comb += pop.eq(1)
                        m.d.sync += [self.M.eq(field(w, "MASK", "M")), self.P.eq(field(w, "MASK", "P"))]
                with m.Elif(op == OPCODES["CAUSAL"].code):
                    with m.If(~all_busy):
                        m.d.comb += pop.eq(1)
                        m.d.sync += self.causal.eq(field(w, "CAUSAL", "enable"))
                with m.Elif(op == OPCODES["WINDOW"].code):
                    with m.If(~all_busy):
                        m.d.comb += pop.eq(1)
                        m.d.sync += self.window.eq(field(w, "WINDOW", "W"))
                with m.Elif(op == OPCODES["MODE"].code):
                    sig_f, nonorm_f = field(w, "MODE", "sigmoid"), field(w, "MODE", "nonorm")
                    ent_f = field(w, "MODE", "entropy")
                    with m.If((sig_f | nonorm_f) & int(not cfg.sigmoid_unit)):
                        fail("config")  # no sigmoid unit
                    with m.Elif(ent_f & (int(not cfg.entropy_unit) | sig_f | nonorm_f)):
                        fail("config")  # no entropy unit, or entropy of sigmoid scores
                    if cfg.entropy_unit:  # (no constant Elif elsewhere: Verilator's CASEOVERLAP)
                        with m.Elif(blk_open & (ent_f != ent)):
                            fail("config")  # the entropy bit changed inside a block
                    with m.Elif(~all_busy):
                        m.d.comb += pop.eq(1)
                        if cfg.sigmoid_unit:
                            m.d.sync += [self.sig_mode.eq(sig_f), self.nonorm.eq(nonorm_f)]
                        if cfg.entropy_unit:
                            m.d.sync += self.ent_mode.eq(ent_f)
                with m.Elif((op == OPCODES["FLOWC"].code) | (op == OPCODES["FLOW"].code)):
                    fslot = field(w, "FLOW", "slot")
                    if not cfg.flow_unit:
                        fail("config")  # no flow engine
                    else:
                        lanes_over = ((field(w, "FLOW", "q_lane") + field(w, "FLOW", "count") > cfg.cols)
                                      | (field(w, "FLOW", "kv_lane") + field(w, "FLOW", "count") > cfg.rows))
                        clamp_over = field(w, "FLOWC", "clamp") > cfg.numerics.score.max_code
                        with m.If((op == OPCODES["FLOW"].code) & (~shape_ok | lanes_over)):
                            fail("shape")  # before SHAPE, or tokens beyond the buffers' lanes
                        with m.Elif((op == OPCODES["FLOWC"].code) & clamp_over):
                            fail("shape")  # a clamp code the score format cannot hold
                        with m.Elif((op == OPCODES["FLOW"].code) & ((fslot >= KV_SLOTS) | ~loaded.bit_select(fslot, 1))):
                            fail("opcode")
                        with m.Elif(~all_busy & ((op == OPCODES["FLOWC"].code)
                                                 | (ready.bit_select(fslot, 1) & ~self.ldq_busy))):
                            m.d.comb += [pop.eq(1), self.flow_cmd.eq(1)]
                        with m.Else():
                            m.d.comb += exec_wait.eq(~all_busy)  # waiting for its loads
                with m.Elif(op == OPCODES["LDQ"].code):
                    # the Q buffer is read only by stage A
                    with m.If(~shape_ok):
                        fail("shape")
                    with m.Elif(~a_run & ~self.ldq_busy):
                        m.d.comb += [pop.eq(1), self.ldq_start.eq(1), self.ldq_addr.eq(field(w, "LDQ", "addr"))]
                        m.d.sync += p_next.eq(field(w, "LDQ", "p_base"))
                    with m.Else():
                        m.d.comb += exec_wait.eq(~a_run)
                with m.Elif(op == OPCODES["LDKV"].code):
                    with m.If(~shape_ok):
                        fail("shape")
                    with m.Elif(kv_slot_f >= KV_SLOTS):
                        fail("opcode")
                    with m.Elif((self.ldkv_busy & ~self.ldkv_last) | slot_busy.bit_select(kv_slot_f, 1)):
                        m.d.comb += exec_wait.eq(self.ldkv_busy)
                    with m.Else():
                        m.d.comb += [pop.eq(1), self.ldkv_start.eq(1), self.ldkv_addr.eq(field(w, "LDKV", "addr")),
                                     self.ldkv_slot.eq(kv_slot_f), set_loaded.eq(1 << kv_slot_f)]
                with m.Elif(op == OPCODES["TILE"].code):
                    with m.If(~shape_ok):
                        fail("shape")
                    with m.Elif((slot_f >= KV_SLOTS) | ~loaded.bit_select(slot_f, 1)):
                        fail("opcode")
                    with m.Elif(~ready.bit_select(slot_f, 1) | self.ldq_busy):
                        m.d.comb += exec_wait.eq(eng_free & ~go_b)
                    with m.Elif(eng_free & ~go_b & x_free & ~ser_hold & (~ser_f | (eng_quiet & ~av_busy))
                                & (~first_f | ~eng_busy)):
                        m.d.comb += [pop.eq(1), set_busy.eq(1 << slot_f), self.reset_rm.eq(first_f)]
                        m.d.sync += [a_run.eq(1), a_cnt.eq(0), a_slot.eq(slot_f), a_ser.eq(ser_f), a_rst.eq(restart_f),
                                     self.m_base.eq(field(w, "TILE", "m_base"))]
                        with m.If(first_f):
                            m.d.sync += self.p_base.eq(p_next)
                            if cfg.entropy_unit:
                                m.d.sync += blk_open.eq(1)
                with m.Elif(op == OPCODES["AV"].code):
                    with m.If(~shape_ok):
                        fail("shape")
                    with m.Elif(~all_busy & ~(av_first_f & self.ldq_busy)):
                        m.d.comb += [pop.eq(1), self.reset_state.eq(av_first_f)]
                        if cfg.entropy_unit:
                            m.d.sync += blk_open.eq(0)
                        m.d.sync += [st_base.eq(field(w, "AV", "addr")), cnt.eq(0), wb_cnt.eq(0), av_div.eq(1),
                                     self.av_p_base.eq(Mux(av_first_f, p_next, self.p_base))]
                        with m.If(av_first_f):
                            m.d.sync += self.p_base.eq(p_next)
                with m.Elif(op == OPCODES["END"].code):
                    with m.If(~all_busy):
                        m.d.comb += pop.eq(1)
                        m.next = "STOP"
                with m.Else():
                    fail("opcode")

            # ---------------- END / error: stop fetching, drain reads, done ----------------
            with m.State("STOP"):
                m.d.comb += self.fetch_stop.eq(1)
                with m.If(self.mem_idle & ~all_busy):
                    m.d.sync += [self.done.eq(1), self.busy.eq(0)]
                    m.next = "IDLE"

        # ---------------- AV, in the background ----------------
        # The next block's tiles may run stages A and X meanwhile (TILE.first resets only
        # RM.valid); their exps wait for the divides to be issued (RD), their B for the
        # stores (the register file).
        with m.If(av_div):      # read RNV[f], start divide f one cycle later
            m.d.comb += rf_raddr_av.eq(cnt)
            m.d.sync += [cnt.eq(cnt + 1), st_ok.eq(0)]
            with m.If(av_last):
                m.d.sync += [cnt.eq(0), av_div.eq(0), av_st.eq(1)]
        with m.If(av_st):
            # results are written back over RNV[f] as they finish (wb_cnt of them so far);
            # line f is stored from the register file once it was read after its write-back
            # (the read port is not transparent: data one cycle after the address)
            st_go = Signal(name="av_st_go")
            m.d.comb += [st_go.eq(st_ok & self.st_ready),
                         rf_raddr_av.eq(Mux(st_go, cnt + 1, cnt)),
                         self.st_valid.eq(st_ok), self.st_addr.eq(st_base + cnt)]
            m.d.sync += st_ok.eq(rf_raddr_av < wb_cnt)
            with m.If(st_go):
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == self.F - 1):
                    m.d.sync += av_st.eq(0)

        # divider writeback into the RNV register files
        with m.If(self.div_done):
            m.d.sync += wb_cnt.eq(wb_cnt + 1)

        if cfg.entropy_unit:
            # the register file's RT arrives the cycle after its read: the finisher takes it
            # with RM and RD (AV's first store cycle), and stores H at line F of the block
            ent_cap = Signal(name="ent_cap_next")
            m.d.sync += ent_cap.eq(av_div & av_rt)
            m.d.comb += [self.mac_ent.eq(p1_ent), self.rt_sel.eq(p3_ent), self.ent_cap.eq(ent_cap),
                         self.ent_addr.eq(st_base + self.F)]

        #: FSM state name -> encoding of ``seq_state`` (for waveform translation filters)
        self.fsm_encoding = dict(fsm.encoding)
        on = fsm.ongoing
        exp_busy = Signal(name="exp_busy")
        m.d.comb += exp_busy.eq(exp_go | exp_run)
        m.d.comb += [
            self.act_bqk.eq((p1 & ~p1_sel) | self.score_en),
            self.act_lm.eq(x_val & (x_age == 2)),
            self.act_sln.eq(exp_busy),
            self.act_sld.eq(self.exp_done),
            self.act_slnv.eq((p1 & p1_sel) | p2),
            self.act_rm.eq(self.rm_en),
            self.act_prm.eq(exp_busy),
            self.act_rd.eq(self.rd_en),
            self.act_rnv.eq(p3),
            self.act_av.eq(av_div | (av_st & (wb_cnt != self.F))),
            # the MACs idle while the sequencer waits on memory
            self.stall.eq((exec_wait & ~a_run & ~b_run) | (av_st & st_ok & ~self.st_ready & ~a_run & ~b_run)
                          | (on("FETCH") & ~self.insn_valid & ~all_busy) | (on("STOP") & ~self.mem_idle)),
        ]
        return m
