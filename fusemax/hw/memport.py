"""Memory port: one request channel shared by instruction fetch, the Q and K/V loaders and
the output stores (docs/architecture.md section 3).

* **Arbitration** (one request per cycle, fixed priority): store > Q load > instruction
  fetch > K/V load. ``mem_req_valid`` never depends on ``mem_req_ready``.
* **Responses** return in request order; a small tag FIFO (``TAG_DEPTH`` entries: where
  the read goes -- fetch / Q / K-V --, and for K/V its slot and whether it is a chunk's first
  line) records where each outstanding read goes. A read is issued only when the tag FIFO has
  room and its destination can take the data (buffers always can; the instruction prefetch
  buffer by credit), so responses are never refused.
* **Instruction fetch**: a prefetch FIFO of ``FETCH_DEPTH`` memory lines, each holding
  ``insns_per_line`` 64-bit instructions (the first in bits [63:0]), fetched sequentially
  from ``fetch_addr`` after ``fetch_start`` until ``fetch_stop``; the sequencer takes them one
  at a time.
* **Q loader** (``ldq_start``): E reads from ``ldq_addr``; response i writes Q buffer line i.
* **K/V loader** (``ldkv_start``): E + F reads from ``ldkv_addr``; response i writes K/V
  buffer line ``slot·(max_e + max_f) + (i if i < E else max_e + i − E)``. Runs in the
  background. The issue side is free again once its last read is issued (``ldkv_last``, then
  ``ldkv_busy`` low), so the next chunk's reads follow without a gap or the memory latency; ``kv_filling[s]``
  is high from the start of a load into slot s until its last line is written.
* **Stores** (``st_valid``/``st_ready``): one line write, no response.
* ``idle``: no read outstanding and both loaders idle.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from fusemax.sw.schedule import KV_SLOTS, WORD_BITS, insns_per_line

TAG_FETCH, TAG_Q, TAG_KV = 0, 1, 2
FETCH_DEPTH = 4  #: prefetch buffer lines
DIM_W = 16  #: width of E and F (the SHAPE fields)


def kv_slot_lines(config) -> int:
    """Lines of one K/V slot in the K/V buffer: max_e K lines + max_f V lines."""
    return config.max_e + config.max_f


def buffer_addr_widths(config) -> tuple[int, int]:
    """Address widths of the Q buffer (max_e lines) and of the K/V buffer (its three slots)."""
    return (max(1, (config.max_e - 1).bit_length()),
            max(1, (KV_SLOTS * kv_slot_lines(config) - 1).bit_length()))


class MemPort(wiring.Component):
    def __init__(self, config):
        self.config = config
        aw = config.mem_addr_width
        lb = config.mem_line_bits
        self.tag_depth = max(8, config.mem_latency + 4)
        self.q_addr_width, self.kv_addr_width = buffer_addr_widths(config)
        self.insns_per_line = insns_per_line(config.mem_lanes)
        super().__init__({
            "mem_req_valid": Out(1), "mem_req_ready": In(1), "mem_req_we": Out(1),
            "mem_req_addr": Out(aw), "mem_req_wdata": Out(lb),
            "mem_rsp_valid": In(1), "mem_rsp_data": In(lb),
            "E": In(DIM_W), "F": In(DIM_W),
            "fetch_start": In(1), "fetch_addr": In(aw), "fetch_stop": In(1),
            "insn_valid": Out(1), "insn_data": Out(64), "insn_ready": In(1),
            "ldq_start": In(1), "ldq_addr": In(aw), "ldq_busy": Out(1),
            "ldkv_start": In(1), "ldkv_addr": In(aw), "ldkv_slot_in": In(2),
            "ldkv_busy": Out(1), "ldkv_last": Out(1), "kv_filling": Out(KV_SLOTS),
            "st_valid": In(1), "st_addr": In(aw), "st_data": In(lb), "st_ready": Out(1),
            "q_we": Out(1), "q_waddr": Out(self.q_addr_width),
            "kv_we": Out(1), "kv_waddr": Out(self.kv_addr_width),
            "wdata": Out(lb),
            "idle": Out(1),
            "rd_fire": Out(1), "wr_fire": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        aw = cfg.mem_addr_width

        # tag: [1:0] destination, [3:2] K/V slot, [4] first line of a K/V chunk
        m.submodules.tags = tags = SyncFIFO(width=5, depth=self.tag_depth)
        k = self.insns_per_line

        # ---- instruction prefetch FIFO (lines of k instructions) ----
        fifo = Array([Signal(k * WORD_BITS, name=f"ifq{i}") for i in range(FETCH_DEPTH)])
        rptr = Signal(range(FETCH_DEPTH), name="ifq_rptr")
        wptr = Signal(range(FETCH_DEPTH), name="ifq_wptr")
        count = Signal(range(FETCH_DEPTH + 1), name="ifq_count")
        inflight = Signal(range(FETCH_DEPTH + 1), name="fetch_inflight")
        fetch_run = Signal(name="fetch_run")
        fetch_pc = Signal(aw, name="fetch_pc")

        # ---- loaders ----
        q_i = Signal(DIM_W + 1, name="ldq_issued")
        q_r = Signal(DIM_W + 1, name="ldq_returned")
        q_base = Signal(aw, name="ldq_base")
        kv_i = Signal(DIM_W + 2, name="ldkv_issued")
        kv_r = Signal(DIM_W + 2, name="ldkv_returned")
        kv_base = Signal(aw, name="ldkv_base")
        kv_islot = Signal(2, name="ldkv_issue_slot")
        kv_rslot = Signal(2, name="ldkv_rsp_slot")
        kv_total = Signal(DIM_W + 2)
        m.d.comb += kv_total.eq(self.E + self.F)

        # ---- requests ----
        room = tags.w_rdy
        st_req = self.st_valid
        q_req = self.ldq_busy & (q_i < self.E) & room
        f_req = fetch_run & ~self.fetch_stop & (count + inflight < FETCH_DEPTH) & room
        kv_req = self.ldkv_busy & (kv_i < kv_total) & room
        sel_st, sel_q, sel_f, sel_kv = (Signal(name=n) for n in ("sel_st", "sel_q", "sel_f", "sel_kv"))
        m.d.comb += [
            sel_st.eq(st_req),
            sel_q.eq(~st_req & q_req),
            sel_f.eq(~st_req & ~q_req & f_req),
            sel_kv.eq(~st_req & ~q_req & ~f_req & kv_req),
            self.mem_req_valid.eq(sel_st | sel_q | sel_f | sel_kv),
            self.mem_req_we.eq(sel_st),
            self.mem_req_wdata.eq(Mux(sel_st, self.st_data, 0)),
        ]
        with m.If(sel_st):
            m.d.comb += self.mem_req_addr.eq(self.st_addr)
        with m.Elif(sel_q):
            m.d.comb += self.mem_req_addr.eq(q_base + q_i)
        with m.Elif(sel_f):
            m.d.comb += self.mem_req_addr.eq(fetch_pc)
        with m.Elif(sel_kv):
            m.d.comb += self.mem_req_addr.eq(kv_base + kv_i)
        fire = self.mem_req_valid & self.mem_req_ready
        rd_fire = fire & ~sel_st
        m.d.comb += [
            self.st_ready.eq(self.mem_req_ready),
            self.rd_fire.eq(rd_fire),
            self.wr_fire.eq(fire & sel_st),
            tags.w_en.eq(rd_fire),
            tags.w_data.eq(Cat(Mux(sel_q, TAG_Q, Mux(sel_f, TAG_FETCH, TAG_KV))[:2], kv_islot, kv_i == 0)),
        ]
        with m.If(fire & sel_q):
            m.d.sync += q_i.eq(q_i + 1)
        # the next load may start in the cycle the last read of this one issues
        m.d.comb += self.ldkv_last.eq(fire & sel_kv & (kv_i + 1 == kv_total))
        with m.If(fire & sel_kv):
            m.d.sync += kv_i.eq(kv_i + 1)
            with m.If(self.ldkv_last):
                m.d.sync += self.ldkv_busy.eq(0)
        with m.If(fire & sel_f):
            m.d.sync += fetch_pc.eq(fetch_pc + 1)

        # ---- responses ----
        rsp = self.mem_rsp_valid
        tag = tags.r_data[:2]
        tag_slot, tag_first = tags.r_data[2:4], tags.r_data[4]
        m.d.comb += [tags.r_en.eq(rsp), self.wdata.eq(self.mem_rsp_data)]
        rsp_f = rsp & (tag == TAG_FETCH)
        rsp_q = rsp & (tag == TAG_Q)
        rsp_kv = rsp & (tag == TAG_KV)
        slot_lines = kv_slot_lines(cfg)
        # responses of consecutive chunks follow each other: a chunk's first line restarts
        # the line count and names the slot
        r_idx = Mux(tag_first, 0, kv_r)
        r_slot = Mux(tag_first, tag_slot, kv_rslot)
        kv_line = Mux(r_idx < self.E, r_idx, r_idx - self.E + cfg.max_e)
        m.d.comb += [
            self.q_we.eq(rsp_q), self.q_waddr.eq(q_r),
            self.kv_we.eq(rsp_kv),
            self.kv_waddr.eq(r_slot * slot_lines + kv_line),
        ]
        filling = Signal(KV_SLOTS, name="kv_filling_r")
        done_mask = Signal(KV_SLOTS, name="kv_fill_done")
        start_mask = Signal(KV_SLOTS, name="kv_fill_start")
        m.d.comb += [
            done_mask.eq(Mux(rsp_kv & (r_idx + 1 == kv_total), 1 << r_slot, 0)),
            start_mask.eq(Mux(self.ldkv_start, 1 << self.ldkv_slot_in, 0)),
            self.kv_filling.eq(filling),
        ]
        m.d.sync += filling.eq((filling & ~done_mask) | start_mask)
        with m.If(rsp_q):
            m.d.sync += q_r.eq(q_r + 1)
            with m.If(q_r + 1 == self.E):
                m.d.sync += self.ldq_busy.eq(0)
        with m.If(rsp_kv):
            m.d.sync += [kv_r.eq(r_idx + 1), kv_rslot.eq(r_slot)]
        with m.If(self.ldq_start):
            m.d.sync += [q_i.eq(0), q_r.eq(0), q_base.eq(self.ldq_addr), self.ldq_busy.eq(1)]
        with m.If(self.ldkv_start):
            m.d.sync += [kv_i.eq(0), kv_base.eq(self.ldkv_addr), self.ldkv_busy.eq(1),
                         kv_islot.eq(self.ldkv_slot_in)]

        # ---- instruction FIFO ----
        push = rsp_f
        pop = self.insn_valid & self.insn_ready
        head = fifo[rptr]
        if k == 1:
            pop_line = pop
            m.d.comb += self.insn_data.eq(head)
        else:
            sub = Signal(range(k), name="ifq_sub")  # the head instruction within the head line
            words = Array([head[WORD_BITS * i: WORD_BITS * (i + 1)] for i in range(k)])
            pop_line = pop & (sub == k - 1)
            m.d.comb += self.insn_data.eq(words[sub])
            with m.If(pop):
                m.d.sync += sub.eq(Mux(sub == k - 1, 0, sub + 1))
            with m.If(self.fetch_start):
                m.d.sync += sub.eq(0)
        m.d.comb += self.insn_valid.eq(count != 0)
        with m.If(push):
            m.d.sync += [fifo[wptr].eq(self.mem_rsp_data[:k * WORD_BITS]), wptr.eq(wptr + 1)]
        with m.If(pop_line):
            m.d.sync += rptr.eq(rptr + 1)
        m.d.sync += [
            count.eq(count + push - pop_line),
            inflight.eq(inflight + (fire & sel_f) - push),
        ]
        with m.If(self.fetch_stop):
            m.d.sync += fetch_run.eq(0)
        with m.If(self.fetch_start):
            m.d.sync += [fetch_run.eq(1), fetch_pc.eq(self.fetch_addr), rptr.eq(0), wptr.eq(0), count.eq(0)]

        m.d.comb += self.idle.eq(~tags.r_rdy & ~self.ldq_busy & ~self.ldkv_busy & (filling == 0))
        return m
