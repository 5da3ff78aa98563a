"""``FuseMaxTop(config)``: the accelerator with the flat top-level ports of
docs/architecture.md (memory port, control/status, CSR read port); clk/rst are the default
``sync`` domain's.

Submodules: ``seq`` (:class:`~fusemax.hw.sequencer.Sequencer`), ``memport``
(:class:`~fusemax.hw.memport.MemPort`), ``array2d``, ``array1d``, and the buffers ``qbuf``
(*max_e* lines of *cols* Q' values) and ``kvbuf`` (3 slots of *max_e* K lines + *max_f* V
lines of *rows* values), both ``lib.memory.Memory`` with synchronous reads.
With ``flow_unit`` the flow engine (``flow``), with ``entropy_unit`` the entropy finisher
(``entropy``) sit beside them; their stores share the memory port (the sequencer's AV
stores go first).

Counters (``COUNTERS``, 64 bits, CSR addresses as listed) count while ``busy``; ``start``
clears them, so they stay frozen from ``done`` until the next start.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from fusemax.errors import FuseMaxError
from fusemax.hw.array1d import Array1D
from fusemax.hw.array2d import Array2D
from fusemax.hw.entropy import EntropyUnit
from fusemax.hw.flow import FlowEngine
from fusemax.hw.memport import MemPort, kv_slot_lines
from fusemax.hw.pe2d import operand_widths
from fusemax.hw.sequencer import ACTIVITY, ERROR_BITS, Sequencer
from fusemax.sw.schedule import KV_SLOTS, config_tag

#: CSR address -> counter name (docs/architecture.md section 6).
COUNTERS = ["cycles", "busy_2d", "busy_1d", "stall", "instructions", "tiles",
            "bqk", "lm", "sln", "sld", "slnv", "rm", "prm", "rd", "rnv", "av",
            "mem_reads", "mem_writes", "config_tag", "flow", "entropy"]
#: What each counter counts (docs/architecture.md section 6; the README's table is generated
#: from this).
COUNTER_DOC = {
    "cycles": "cycles from start to done",
    "busy_2d": "cycles the 2D array is busy (OR of its Einsum steps)",
    "busy_1d": "cycles the 1D array is busy (OR of its Einsum steps, including the AV divides)",
    "stall": "cycles the MACs idle because the sequencer waits on memory",
    "instructions": "instructions executed (popped, including one that fails)",
    "tiles": "tiles executed (SLNV stages finished)",
    "bqk": "BQK cycles (2D): E MAC cycles + 1 requantize cycle per tile",
    "lm": "LM cycles (2D column max trees): 1 per tile",
    "sln": "SLN cycles (2D exps): exp_degree + 2 per tile",
    "sld": "SLD cycles (2D column sum trees): 1 per tile",
    "slnv": "SLNV cycles (2D): F MAC cycles + 1 tree cycle per tile",
    "rm": "RM cycles (1D running max): 1 per tile",
    "prm": "PRM cycles (1D exps): exp_degree + 2 per tile",
    "rd": "RD cycles (1D, SPD + RD): 1 per tile",
    "rnv": "RNV cycles (1D, SPNV + RNV): F per tile",
    "av": "AV cycles (1D divides): F + div_cycles + 1 per query block",
    "mem_reads": "memory lines read",
    "mem_writes": "memory lines written",
    "config_tag": "the configuration tag (constant: low 32 bits of the config digest)",
    "flow": "cycles the flow engine is busy (FLOW instructions; 0 without flow_unit)",
    "entropy": "cycles the entropy finisher is busy (MODE entropy; 0 without entropy_unit)",
}
assert list(COUNTER_DOC) == COUNTERS
#: What sets each sticky error flag (``ERROR_BITS``, docs/architecture.md section 6).
ERROR_DOC = {
    "config": "HDR missing or its tag is not this configuration's (stops the run)",
    "shape": "E or F out of range, E > 2^acc_guard_bits, or work before a valid SHAPE (stops)",
    "opcode": "unknown opcode, K/V slot >= 3, or a TILE on a slot never loaded (stops)",
    "score_sat": "a score (BQK) saturated",
    "rd_sat": "the running denominator RD saturated",
    "rnv_sat": "a running numerator RNV saturated",
    "out_sat": "an output AV saturated",
    "div_zero": "a divide by zero (RD = 0) in AV",
}
assert set(ERROR_DOC) == set(ERROR_BITS)
CSR_ADDR_WIDTH = 5


def top_ports(config) -> dict:
    """name -> (direction, width) of FuseMaxTop's ports (clk and rst not included)."""
    aw, lb = config.mem_addr_width, config.mem_line_bits
    return {
        "mem_req_valid": ("out", 1), "mem_req_ready": ("in", 1), "mem_req_we": ("out", 1),
        "mem_req_addr": ("out", aw), "mem_req_wdata": ("out", lb),
        "mem_rsp_valid": ("in", 1), "mem_rsp_data": ("in", lb),
        "start": ("in", 1), "sched_base": ("in", aw), "busy": ("out", 1), "done": ("out", 1),
        "error": ("out", 8), "csr_addr": ("in", CSR_ADDR_WIDTH), "csr_data": ("out", 64),
    }


class FuseMaxTop(wiring.Component):
    def __init__(self, config):
        if config.mem_line_bits < 64:
            raise FuseMaxError(f"config {config.name}: a memory line of {config.mem_lanes} 16-bit words "
                               f"cannot hold a 64-bit instruction; need max(rows, cols) >= 4")
        self.config = config
        sig = {}
        for name, (d, width) in top_ports(config).items():
            sig[name] = (In if d == "in" else Out)(width)
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        R, C = cfg.rows, cfg.cols
        w = operand_widths(cfg)

        m.submodules.seq = seq = Sequencer(cfg)
        m.submodules.memport = mp = MemPort(cfg)
        m.submodules.array2d = a2 = Array2D(cfg)
        m.submodules.array1d = a1 = Array1D(cfg)
        m.submodules.qbuf = qbuf = Memory(shape=unsigned(C * w["q"]), depth=cfg.max_e, init=[])
        m.submodules.kvbuf = kvbuf = Memory(shape=unsigned(R * w["kv"]), depth=KV_SLOTS * kv_slot_lines(cfg), init=[])
        q_rd, q_wr = qbuf.read_port(), qbuf.write_port()
        kv_rd, kv_wr = kvbuf.read_port(), kvbuf.write_port()

        # ---- memory port <-> top-level ports ----
        m.d.comb += [
            self.mem_req_valid.eq(mp.mem_req_valid), mp.mem_req_ready.eq(self.mem_req_ready),
            self.mem_req_we.eq(mp.mem_req_we), self.mem_req_addr.eq(mp.mem_req_addr),
            self.mem_req_wdata.eq(mp.mem_req_wdata),
            mp.mem_rsp_valid.eq(self.mem_rsp_valid), mp.mem_rsp_data.eq(self.mem_rsp_data),
        ]

        # ---- buffer writes (from memory responses: the low bits of each 16-bit lane) ----
        lane = lambda i, width: mp.wdata[16 * i: 16 * i + width]  # noqa: E731
        m.d.comb += [
            q_wr.en.eq(mp.q_we), q_wr.addr.eq(mp.q_waddr),
            q_wr.data.eq(Cat(*[lane(c, w["q"]) for c in range(C)])),
            kv_wr.en.eq(mp.kv_we), kv_wr.addr.eq(mp.kv_waddr),
            kv_wr.data.eq(Cat(*[lane(r, w["kv"]) for r in range(R)])),
            a2.q_line.eq(q_rd.data), a2.kv_line.eq(kv_rd.data),
        ]
        st_valid, st_addr, st_data = seq.st_valid, seq.st_addr, None  # the flow engine's, muxed in below
        sat_in = {"score_sat": a2.score_sat, "rd_sat": a1.rd_sat, "rnv_sat": a1.rnv_sat,
                  "out_sat": a1.out_sat, "dz": a1.dz}
        flow_busy = Const(0, 1)
        if cfg.flow_unit:
            # the flow engine reads the buffers and stores while the arrays are idle
            m.submodules.flow = fe = FlowEngine(cfg)
            flow_busy = fe.busy
            m.d.comb += [
                fe.cmd_valid.eq(seq.flow_cmd), fe.cmd.eq(mp.insn_data), seq.flow_busy.eq(fe.busy),
                fe.E.eq(seq.E), fe.F.eq(seq.F), fe.q_rdata.eq(q_rd.data), fe.kv_rdata.eq(kv_rd.data),
                q_rd.addr.eq(Mux(fe.busy, fe.q_raddr, seq.q_raddr)),
                kv_rd.addr.eq(Mux(fe.busy, fe.kv_raddr, seq.kv_raddr)),
                fe.st_ready.eq(mp.st_ready),
            ]
            st_valid = seq.st_valid | fe.st_valid
            st_addr = Mux(fe.busy, fe.st_addr, seq.st_addr)
            st_data = fe.st_data
            for name in ("score_sat", "rnv_sat", "out_sat", "dz"):
                sat_in[name] = sat_in[name] | getattr(fe, name)
        else:
            m.d.comb += [q_rd.addr.eq(seq.q_raddr), kv_rd.addr.eq(seq.kv_raddr)]

        ent_busy = Const(0, 1)
        ent_store = None
        if cfg.entropy_unit:
            # the entropy finisher takes RM, RD, RT after AV's divides and stores H on its own;
            # the AV's stores go first
            m.submodules.entropy = eu = EntropyUnit(cfg)
            ent_busy = eu.busy
            m.d.comb += [
                eu.cap.eq(seq.ent_cap), eu.rm.eq(a1.rm), eu.rd.eq(a1.rd), eu.rt.eq(a1.rf_rdata),
                eu.p_base.eq(seq.av_p_base), eu.P.eq(seq.P), eu.addr.eq(seq.ent_addr),
                seq.ent_busy.eq(eu.busy), eu.st_ready.eq(mp.st_ready & ~st_valid),
                a2.mac_ent.eq(seq.mac_ent), a1.rt_sel.eq(seq.rt_sel),
            ]
            ent_store = eu.st_valid & ~st_valid
            st_valid, st_addr = st_valid | eu.st_valid, Mux(ent_store, eu.st_addr, st_addr)
            for name in ("out_sat", "dz"):
                sat_in[name] = sat_in[name] | getattr(eu, name)
        # ---- sequencer <-> memport ----
        m.d.comb += [
            seq.start.eq(self.start), seq.sched_base.eq(self.sched_base),
            self.busy.eq(seq.busy), self.done.eq(seq.done), self.error.eq(seq.error),
            mp.E.eq(seq.E), mp.F.eq(seq.F),
            mp.fetch_start.eq(seq.fetch_start), mp.fetch_addr.eq(seq.fetch_addr),
            mp.fetch_stop.eq(seq.fetch_stop),
            seq.insn_valid.eq(mp.insn_valid), seq.insn_data.eq(mp.insn_data), mp.insn_ready.eq(seq.insn_ready),
            mp.ldq_start.eq(seq.ldq_start), mp.ldq_addr.eq(seq.ldq_addr), seq.ldq_busy.eq(mp.ldq_busy),
            mp.ldkv_start.eq(seq.ldkv_start), mp.ldkv_addr.eq(seq.ldkv_addr), mp.ldkv_slot_in.eq(seq.ldkv_slot),
            seq.ldkv_busy.eq(mp.ldkv_busy), seq.ldkv_last.eq(mp.ldkv_last), seq.kv_filling.eq(mp.kv_filling),
            mp.st_valid.eq(st_valid), mp.st_addr.eq(st_addr), seq.st_ready.eq(mp.st_ready),
            seq.mem_idle.eq(mp.idle),
        ]
        # store data: lane c = output code of column c (written back over RNV[f], sign-extended)
        out_lanes = []
        for c in range(C):
            s = Signal(16, name=f"st_lane{c}")
            m.d.comb += s.eq(a1.rf_rdata[c][:16])
            out_lanes.append(s)
        pad = Const(0, 16 * (cfg.mem_lanes - C))
        line = Cat(*out_lanes, pad)
        if st_data is not None:
            line = Mux(flow_busy, Cat(st_data, pad), line)
        if ent_store is not None:
            line = Mux(ent_store, Cat(eu.st_data, pad), line)
        m.d.comb += mp.st_data.eq(line)

        # ---- sequencer <-> arrays ----
        m.d.comb += [
            a2.mac_en.eq(seq.mac_en), a2.mac_first.eq(seq.mac_first), a2.mac_sel.eq(seq.mac_sel),
            a2.score_en.eq(seq.score_en), a2.exp_start.eq(seq.exp2d_start),
            a2.m_base.eq(seq.m_base), a2.p_base.eq(seq.p_base), a2.M.eq(seq.M), a2.P.eq(seq.P),
            a2.causal.eq(seq.causal), a2.window.eq(seq.window),
            a2.rm.eq(a1.rm_new), a2.rm_valid.eq(a1.rm_new_valid),
            a1.lm.eq(a2.lm), a1.lm_valid.eq(a2.lm_valid), a1.sld.eq(a2.sld), a1.slnv.eq(a2.slnv),
            a1.p_base.eq(seq.p_base), a1.av_p_base.eq(seq.av_p_base), a1.P.eq(seq.P),
            a1.reset_state.eq(seq.reset_state), a1.reset_rm.eq(seq.reset_rm), a1.rm_en.eq(seq.rm_en), a1.exp_start.eq(seq.exp1d_start), a1.prm_zero.eq(seq.prm_zero),
            a1.rd_en.eq(seq.rd_en), a1.rf_raddr.eq(seq.rf_raddr), a1.rnv_we.eq(seq.rnv_we),
            a1.rnv_waddr.eq(seq.rnv_waddr), a1.rm_commit.eq(seq.rm_commit), a1.div_start.eq(seq.div_start),
            a1.wb_sel.eq(seq.wb_sel),
            seq.div_done.eq(a1.div_done),
            seq.score_sat.eq(sat_in["score_sat"]), seq.rd_sat.eq(sat_in["rd_sat"]),
            seq.rnv_sat.eq(sat_in["rnv_sat"]), seq.out_sat.eq(sat_in["out_sat"]), seq.dz.eq(sat_in["dz"]),
        ]
        if cfg.sigmoid_unit:
            # sigmoid mode: the 1D exp does not run; the 2D sigmoids' done times SLN and PRM
            m.d.comb += [
                a2.sig_mode.eq(seq.sig_mode), a1.sig_mode.eq(seq.sig_mode), a1.nonorm.eq(seq.nonorm),
                a1.sln_done.eq(a2.sig_done), seq.exp_done.eq(a1.exp_done | a2.sig_done),
            ]
        else:
            m.d.comb += seq.exp_done.eq(a1.exp_done)

        # ---- counters ----
        busy_2d = Signal(name="busy_2d")
        busy_1d = Signal(name="busy_1d")
        m.d.comb += [
            busy_2d.eq(Cat(*[getattr(seq, a) for a, arr in ACTIVITY.items() if arr == "2d"]).any()),
            busy_1d.eq(Cat(*[getattr(seq, a) for a, arr in ACTIVITY.items() if arr == "1d"]).any()),
        ]
        events = {
            "cycles": 1, "busy_2d": busy_2d, "busy_1d": busy_1d, "stall": seq.stall,
            "instructions": seq.insn_fire, "tiles": seq.tile_fire,
            "bqk": seq.act_bqk, "lm": seq.act_lm, "sln": seq.act_sln, "sld": seq.act_sld,
            "slnv": seq.act_slnv, "rm": seq.act_rm, "prm": seq.act_prm, "rd": seq.act_rd,
            "rnv": seq.act_rnv, "av": seq.act_av,
            "mem_reads": mp.rd_fire, "mem_writes": mp.wr_fire, "flow": flow_busy,
            "entropy": ent_busy,
        }
        regs = []
        for name in COUNTERS:
            if name == "config_tag":
                regs.append(Const(config_tag(cfg.digest()), 64))
                continue
            r = Signal(64, name=f"ctr_{name}")
            with m.If(seq.clear):
                m.d.sync += r.eq(0)
            with m.Elif(seq.busy & events[name]):
                m.d.sync += r.eq(r + 1)
            regs.append(r)
        with m.Switch(self.csr_addr):
            for i, r in enumerate(regs):
                with m.Case(i):
                    m.d.comb += self.csr_data.eq(r)
            with m.Default():
                m.d.comb += self.csr_data.eq(0)
        return m


__all__ = ["FuseMaxTop", "COUNTERS", "COUNTER_DOC", "ERROR_BITS", "ERROR_DOC", "top_ports", "CSR_ADDR_WIDTH"]


# --------------------------------------------------------------------------------------
# Amaranth-simulator run with a Python memory model (for quick tests on tiny shapes)
# --------------------------------------------------------------------------------------

def pysim_run(config, image, sched_base: int = 0, **kw) -> dict:
    """Run ``FuseMaxTop(config)`` in the Amaranth simulator on a memory ``image``
    ((lines, mem_lanes) uint16, updated in place by the stores) from ``sched_base``.
    Keywords as :func:`pysim_session`. Returns ``{"cycles": ..., "error": int,
    "counters": {name: value}, "image": image}``."""
    res = pysim_session(config, image, [sched_base], **kw)[0]
    res["image"] = image
    return res


def pysim_session(config, image, bases, *, latency: int | None = None, ready_prob: float = 1.0,
                  seed: int = 0, max_cycles: int = 200_000, vcd: str | None = None) -> list[dict]:
    """Run the schedules at line addresses ``bases`` one after another (start, wait for done,
    read the counters, next start) in one simulation of ``FuseMaxTop(config)``.

    The memory model answers reads in order after ``latency`` cycles (default
    ``config.mem_latency``) and accepts a request with probability ``ready_prob`` per cycle.
    Returns one ``{"cycles", "error", "counters"}`` dict per run.
    """
    import random
    from collections import deque

    import numpy as np
    from amaranth.sim import Simulator

    L = config.mem_latency if latency is None else latency
    lanes = config.mem_lanes
    img = image
    if np.ndim(img) != 2 or img.shape[1] != lanes:
        raise FuseMaxError(f"image must be (lines, {lanes}), got {np.shape(img)}")
    rng = random.Random(seed)
    dut = FuseMaxTop(config)
    results: list[dict] = []

    def line_int(a: int) -> int:
        if a >= img.shape[0]:
            return 0
        v = 0
        for i, x in enumerate(img[a]):
            v |= int(x) << (16 * i)
        return v

    async def bench(ctx):
        pending: deque = deque()
        for base in bases:
            ctx.set(dut.sched_base, base)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycle = 0
            while True:
                if pending and pending[0][0] <= cycle:
                    _, data = pending.popleft()
                    ctx.set(dut.mem_rsp_valid, 1)
                    ctx.set(dut.mem_rsp_data, data)
                else:
                    ctx.set(dut.mem_rsp_valid, 0)
                ready = 1 if ready_prob >= 1.0 else int(rng.random() < ready_prob)
                ctx.set(dut.mem_req_ready, ready)
                if ready and ctx.get(dut.mem_req_valid):
                    addr = ctx.get(dut.mem_req_addr)
                    if ctx.get(dut.mem_req_we):
                        wd = ctx.get(dut.mem_req_wdata)
                        if addr >= img.shape[0]:
                            raise AssertionError(f"store to line {addr} outside the image ({img.shape[0]} lines)")
                        img[addr] = [(wd >> (16 * i)) & 0xFFFF for i in range(lanes)]
                    else:
                        pending.append((cycle + L, line_int(addr)))
                if ctx.get(dut.done):
                    break
                cycle += 1
                if cycle > max_cycles:
                    raise AssertionError(f"FuseMaxTop did not finish within {max_cycles} cycles")
                await ctx.tick()
            if pending:
                raise AssertionError("done with memory reads still outstanding")
            counters = {}
            for i, name in enumerate(COUNTERS):
                ctx.set(dut.csr_addr, i)
                counters[name] = ctx.get(dut.csr_data)
            results.append({"cycles": cycle, "error": ctx.get(dut.error), "counters": counters,
                            "busy": ctx.get(dut.busy)})
            ctx.set(dut.mem_rsp_valid, 0)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return results
