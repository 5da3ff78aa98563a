"""A functional model of the sequencer: runs a schedule on a memory image, instruction by
instruction, exactly as docs/architecture.md sections 4-6 specify, with the NumPy operator twins
(:mod:`fusemax.sw.numerics`; the sigmoid unit's is
:func:`~fusemax.sw.golden_variants.sigmoid_codes`) -- and nothing from the golden model.

It checks the compiler and the image layout independently of the RTL (its output must equal
``attention_1pass(...).out_codes``), and it tells, when the RTL and the golden disagree, which
side is wrong (it keeps every tile's intermediates on request).

No timing: the result has the counts the hardware's counters 4, 5, 16 and 17 must show
(instructions, tiles, lines read, lines written) and the error flags it must raise.

``MODE`` sets the score function of the tiles that follow (all bits 0 at start). ``sigmoid``
(and ``nonorm``) need ``sigmoid_unit``, ``entropy`` needs ``entropy_unit``, and ``entropy``
with ``sigmoid`` or ``nonorm`` is refused: each stops with ``error.config`` (checked in that
order). With ``entropy = 1`` (attention-entropy) every TILE also updates the per-lane RT
accumulator as :func:`fusemax.sw.golden._chunk` does (RT = requantize(round(Σ SLN·BQK →
rnv.frac) + rescale(RT, PRM)) in the RNV format; its saturation -> ``rnv_saturated``; never
cleared: a block's first tile (PRM = 0) and TILE.restart start it again; a MODE that changes
the entropy bit inside a block, after its first TILE and before its AV, stops with
``error.config``, as in the hardware), and every AV, after the F output lines at ``addr``,
stores one more line at ``addr + F``: lane c the entropy H of query p_base + c
(:func:`~fusemax.sw.golden_variants.entropy_codes` of RM (0 where not valid), RD, RT; s16.11
codes, lanes >= cols zero); its saturation -> ``out_saturated``, RD = 0 ->
``div_by_zero`` (lanes p < P only). Lines written per output block: F + 1.

``FLOWC`` / ``FLOW`` (causal Flow-Attention, a design with ``flow_unit``) run
:func:`~fusemax.sw.golden_variants.flow_token_step` token by token (the operation twins of the
flow engine; the golden's loop body): Q from the Q buffer's lanes, K and V from a K/V slot's
lanes, outputs into an output buffer of F lines x cols lanes (zero at start, never cleared)
that ``store=1`` writes out. Flags: φ and score-format saturation -> ``score_saturated``,
:data:`~fusemax.sw.golden_variants.FLOW_FORMAT` values -> ``rnv_saturated``, the output ->
``out_saturated``, any divide by zero -> ``div_by_zero``. A FLOW whose lanes run past the Q
buffer (q_lane + count > cols) or the K/V slot (kv_lane + count > rows) stops with
``error.shape``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fusemax.config import FuseMaxConfig
from fusemax.errors import FuseMaxError
from fusemax.sw import numerics as nm
from fusemax.sw import schedule as sf
from fusemax.sw.golden_variants import (
    FlowConsts, FlowState, entropy_codes, flow_token_step, new_flow_counters, sigmoid_codes,
)

__all__ = ["ERROR_BITS", "decode_errors", "ExecResult", "execute"]

#: Error flag bit -> name (docs/architecture.md section 6).
ERROR_BITS = {0: "config", 1: "shape", 2: "opcode", 3: "score_saturated", 4: "rd_saturated",
              5: "rnv_saturated", 6: "out_saturated", 7: "div_by_zero"}
_BIT = {name: bit for bit, name in ERROR_BITS.items()}


def decode_errors(bits: int) -> list[str]:
    """Names of the flags set in an 8-bit error word."""
    return [name for bit, name in ERROR_BITS.items() if (int(bits) >> bit) & 1]


@dataclass
class ExecResult:
    image: np.ndarray                   #: the memory image after the run (a copy)
    error: int                          #: sticky error flags (ERROR_BITS)
    instructions: int                   #: executed, END (or the failing one) included
    tiles: int
    lines_read: int                     #: data lines (Q, K/V); instruction fetches not included
    lines_written: int
    stopped_at: int | None = None       #: address of the instruction that stopped the run on an error
    stop_reason: str = ""
    trace: list[dict] | None = field(default=None, repr=False)
    flow_tokens: int = 0                #: tokens the FLOW instructions ran (no hardware counter)

    @property
    def error_flags(self) -> list[str]:
        return decode_errors(self.error)

    @property
    def counts(self) -> dict[str, int]:
        return {"instructions": self.instructions, "tiles": self.tiles,
                "mem_lines_read": self.lines_read, "mem_lines_written": self.lines_written}


def execute(config: FuseMaxConfig, image: np.ndarray, sched_base: int = 0, *,
            trace: bool = False, max_instructions: int = 1 << 40) -> ExecResult:
    """Run the schedule at ``sched_base`` on ``image`` ((lines, mem_lanes) uint16) as the v1
    hardware of ``config`` would. Returns the image after the run, flags and counts."""
    nc = config.numerics
    mode = nc.rounding
    R, C = config.rows, config.cols
    lanes = config.mem_lanes
    img = np.array(image, dtype=np.uint16, copy=True)
    if img.ndim != 2 or img.shape[1] != lanes:
        raise FuseMaxError(f"image must be (lines, {lanes}) for config {config.name}, got {img.shape}")
    n_lines = img.shape[0]
    signed = img.view(np.int16)  # memory words hold sign-extended 16-bit codes
    tag = sf.config_tag(config.digest())
    score_min = np.int64(nc.score.min_code)

    res = ExecResult(img, 0, 0, 0, 0, 0, trace=[] if trace else None)
    E = F = M = P = 0
    causal = False
    window = 0  # WINDOW.W: 0 = off
    sigmoid = nonorm = entropy = False  # MODE
    blk_open = False  # from a block's first TILE to its AV (MODE may not change entropy then)
    one = np.int64(1) << np.int64(nc.exp.frac)  # PRM = 1.0
    one_rd = np.int64(1) << np.int64(nc.rd.frac)  # AV's divisor with nonorm
    shape_ok = False
    qbuf = np.zeros((max(config.max_e, 1), C), np.int64)  # [e, c]
    slots = [None] * sf.KV_SLOTS  # each: (K [E, R], V [F, R]) int64
    per_line = sf.insns_per_line(lanes)
    p_base = p_staged = 0
    RM = np.zeros(C, np.int64)
    RMv = np.zeros(C, bool)
    RD = np.zeros(C, np.int64)
    RNV = np.zeros((C, max(config.max_f, 1)), np.int64)
    RT = np.zeros(C, np.int64)  # MODE entropy: Σ SLN·BQK, rescaled like RNV (RNV codes)
    # the flow engine (FLOWC, FLOW): clamp code, state, token index, output buffer [f, c]
    flow_c2 = 0
    flow_state = None
    flow_i = 0
    obuf = np.zeros((max(config.max_f, 1), C), np.int64)

    def read(addr: int, count: int) -> np.ndarray:
        if addr + count > n_lines:
            raise FuseMaxError(f"read of lines [{addr}, {addr + count}) past the image ({n_lines} lines)")
        res.lines_read += count
        return signed[addr:addr + count].astype(np.int64)

    def store(op: str, at: int, addr: int, codes) -> None:
        """Write the (n, C) output codes as n lines at ``addr`` (lanes >= C zero)."""
        n = len(codes)
        if addr + n > n_lines:
            raise FuseMaxError(f"{op} at line {at} writes [{addr}, {addr + n}) past the image")
        out = np.zeros((n, lanes), np.uint16)
        out[:, :C] = (np.asarray(codes) & 0xFFFF).astype(np.uint16)
        img[addr:addr + n] = out
        res.lines_written += n

    def stop(bit: str, pc: int, why: str) -> ExecResult:  # pc: instruction index
        res.error |= 1 << _BIT[bit]
        res.stopped_at, res.stop_reason = pc // per_line, why
        return res

    def flag(bit: str, cond) -> None:
        if np.any(cond):
            res.error |= 1 << _BIT[bit]

    pc = sched_base * per_line  # instruction index: line pc // per_line, word pc % per_line
    while True:
        if res.instructions >= max_instructions:
            raise FuseMaxError(f"schedule did not reach END within {max_instructions} instructions")
        line, sub = divmod(pc, per_line)
        if line >= n_lines:
            return stop("opcode", pc, f"ran past the end of memory at line {line}")
        word = sum(int(img[line, 4 * sub + w]) << (16 * w) for w in range(4))
        res.instructions += 1
        try:
            ins = sf.decode(word)
        except FuseMaxError:
            return stop("opcode", pc, f"unknown opcode in word {word:016x}")
        op, a = ins.op, ins.args
        first = pc == sched_base * per_line
        if first and op != "HDR":
            return stop("config", pc, f"first instruction is {op}, not HDR")
        if op == "HDR":
            if a["version"] != sf.VERSION or a["tag"] != tag:
                return stop("config", pc, f"HDR version {a['version']} tag {a['tag']:08x}; this "
                            f"design is version {sf.VERSION} tag {tag:08x} ({config.name})")
        elif op == "SHAPE":
            E, F = a["E"], a["F"]
            if not (1 <= E <= config.max_e and 1 <= F <= config.max_f):
                return stop("shape", pc, f"E = {E}, F = {F} outside 1..{config.max_e}, 1..{config.max_f}")
            shape_ok = True
        elif op == "MASK":
            M, P = a["M"], a["P"]
        elif op == "CAUSAL":
            causal = bool(a["enable"])
        elif op == "WINDOW":
            window = a["W"]
        elif op == "MODE":
            if (a["sigmoid"] or a["nonorm"]) and not config.sigmoid_unit:
                return stop("config", pc, f"MODE sigmoid={a['sigmoid']} nonorm={a['nonorm']} on "
                            f"config {config.name}, which has no sigmoid unit")
            if a["entropy"] and not config.entropy_unit:
                return stop("config", pc, f"MODE entropy=1 on config {config.name}, which has no "
                            f"entropy output (entropy_unit)")
            if a["entropy"] and (a["sigmoid"] or a["nonorm"]):
                return stop("config", pc, f"MODE entropy=1 with sigmoid={a['sigmoid']} "
                            f"nonorm={a['nonorm']}: the entropy is that of softmax attention")
            if config.entropy_unit and blk_open and bool(a["entropy"]) != entropy:
                return stop("config", pc, f"MODE entropy={a['entropy']} inside a query block (after "
                            f"its first TILE, before its AV): the block's RT would start from a "
                            f"stale value; put MODE before the block's first TILE")
            sigmoid, nonorm, entropy = bool(a["sigmoid"]), bool(a["nonorm"]), bool(a["entropy"])
        elif op in ("FLOWC", "FLOW") and not config.flow_unit:
            return stop("config", pc, f"{op} on config {config.name}, which has no flow engine "
                        f"(flow_unit)")
        elif op == "FLOWC":
            if a["clamp"] > nc.score.max_code:
                return stop("shape", pc, f"FLOWC clamp code {a['clamp']} > {nc.score.max_code}, the "
                            f"largest score code")
            flow_c2 = a["clamp"]
        elif op in ("LDQ", "LDKV", "TILE", "AV", "FLOW") and not shape_ok:
            return stop("shape", pc, f"{op} before SHAPE")
        elif op == "FLOW" and (a["q_lane"] + a["count"] > C or a["kv_lane"] + a["count"] > R):
            ql, kl, count = a["q_lane"], a["kv_lane"], a["count"]
            return stop("shape", pc, f"FLOW lanes q {ql}..{ql + count - 1}, k/v "
                        f"{kl}..{kl + count - 1} past the Q buffer ({C} lanes) or the K/V "
                        f"slot ({R} lanes)")
        elif op == "LDQ":  # load Q, stage p_base for the block's first TILE (or AV)
            qbuf[:E] = read(a["addr"], E)[:, :C]
            p_staged = a["p_base"]
        elif op in ("LDKV", "TILE", "FLOW") and a["slot"] >= sf.KV_SLOTS:
            return stop("opcode", pc, f"{op} names slot {a['slot']}; there are {sf.KV_SLOTS}")
        if op in ("TILE", "AV") and shape_ok and a["first"]:  # a new query block: empty state
            p_base = p_staged
            RMv[:] = False
            RM[:] = 0
            RD[:] = 0
            RNV[:] = 0  # (RT is not cleared, as in the hardware: a block's first tile in
            # entropy mode restarts it through PRM = 0)
            blk_open = op == "TILE"
        if op == "LDKV":
            kv = read(a["addr"], E + F)
            slots[a["slot"]] = (kv[:E, :R].copy(), kv[E:E + F, :R].copy())
        elif op == "TILE":
            if slots[a["slot"]] is None:
                raise FuseMaxError(f"TILE at line {line} reads slot {a['slot']}, never loaded")
            K, V = slots[a["slot"]]
            m_base = a["m_base"]
            p = p_base + np.arange(C)
            m = m_base + np.arange(R)
            real = p < P  # padding lanes raise no flag
            valid = np.broadcast_to(m[None, :] < M, (C, R))
            if causal:
                valid = valid & (m[None, :] <= (p[:, None] + M - P))
            if window:
                valid = valid & (m[None, :] > (p[:, None] + M - P - window))
            # 1. BQK
            acc = qbuf[:E].T @ K  # (C, R), exact
            bqk, s_sat = nm.requantize(acc, nc.qk_frac, nc.score, mode)
            flag("score_saturated", s_sat & valid & real[:, None])
            # 2. LM; 3. RM, PRM
            lmv = valid.any(1)
            lm = np.where(valid, bqk, score_min).max(1)
            rm_new, rm_new_v = nm.max_valid(RM, RMv, lm, lmv)
            # (TILE.restart: PRM = 0, the sums start again while RM stays)
            prm_zero = ~RMv | bool(a["restart"])
            # 4. SLN; 5. SLD, RD (MODE sigmoid: SLN = sigmoid(BQK), PRM = 1 after the first tile)
            if sigmoid:
                prm = np.where(prm_zero, 0, one)
                sln = np.where(valid, sigmoid_codes(bqk, nc)[0], 0)
            else:
                prm = nm.exp2(nm.sub(RM, rm_new), prm_zero, nc)
                sln = nm.exp2(nm.sub(bqk, rm_new[:, None]), ~valid | ~rm_new_v[:, None], nc)
            sld = sln.sum(1)
            spd, f1 = nm.rescale(RD, prm, nc.exp.frac, nc.rd, mode)
            rd_new, f2 = nm.requantize(nm.round_shift_to(sld, nc.exp.frac, nc.rd.frac, mode) + spd,
                                       nc.rd.frac, nc.rd, mode)
            flag("rd_saturated", (f1 | f2) & real)
            # 6. SLNV, RNV
            slnv = sln @ V[:F].T  # (C, F)
            spnv, f3 = nm.rescale(RNV[:, :F], prm[:, None], nc.exp.frac, nc.rnv, mode)
            rnv_new, f4 = nm.requantize(
                nm.round_shift_to(slnv, nc.exp.frac + nc.v.frac, nc.rnv.frac, mode) + spnv,
                nc.rnv.frac, nc.rnv, mode)
            flag("rnv_saturated", (f3 | f4) & real[:, None])
            # (MODE entropy) SLNQ, RT: one more SLNV step with BQK as the value
            rt_new = RT
            if entropy:
                slnq = (sln * bqk).sum(1)  # exact; masked keys have SLN = 0
                spt, f5 = nm.rescale(RT, prm, nc.exp.frac, nc.rnv, mode)
                rt_new, f6 = nm.requantize(
                    nm.round_shift_to(slnq, nc.exp.frac + nc.score.frac, nc.rnv.frac, mode) + spt,
                    nc.rnv.frac, nc.rnv, mode)
                flag("rnv_saturated", (f5 | f6) & real)
            if res.trace is not None:
                res.trace.append({"pc": pc, "p_base": p_base, "m_base": m_base, "valid": valid.copy(),
                                  "BQK": bqk, "LM": lm, "LM_valid": lmv, "RM_old": RM.copy(),
                                  "RM_old_valid": RMv.copy(), "RM": rm_new, "RM_valid": rm_new_v,
                                  "PRM": prm, "SLN": sln, "SLD": sld, "SPD": spd, "RD": rd_new,
                                  "SLNV": slnv, "SPNV": spnv, "RNV": rnv_new,
                                  **({"SLNQ": slnq, "SPT": spt, "RT": rt_new} if entropy else {})})
            # 7.
            RM, RMv, RD, RT = rm_new, rm_new_v, rd_new, np.array(rt_new)
            RNV[:, :F] = rnv_new
            res.tiles += 1
        elif op == "AV":
            blk_open = False
            # (the normalised sigmoid's epsilon is 0 in RD codes on a design with the unit)
            den = np.full(C, one_rd) if nonorm else RD
            av, s_out, dz = nm.divide(RNV[:, :F], den[:, None], nc)
            real = (p_base + np.arange(C)) < P
            flag("out_saturated", s_out & real[:, None])
            flag("div_by_zero", dz & real[:, None])
            lines = av.T
            if entropy:  # the entropy finisher: H of every lane as line F
                h, h_sat, h_dz = entropy_codes(np.where(RMv, RM, 0), RD, RT, nc)
                flag("out_saturated", h_sat & real)
                flag("div_by_zero", h_dz & real)
                lines = np.concatenate([lines, h[None, :]], axis=0)
            store("AV", line, a["addr"], lines)
        elif op == "FLOW":
            if slots[a["slot"]] is None:
                raise FuseMaxError(f"FLOW at line {line} reads slot {a['slot']}, never loaded")
            ql, kl, count = a["q_lane"], a["kv_lane"], a["count"]
            K, V = slots[a["slot"]]
            if a["first"] or flow_state is None:  # (power-up: the state is 0 too)
                flow_state = FlowState.zeros((), E, F)
                flow_i = 0 if a["first"] else flow_i
            if flow_state.KC.shape[-1] != E or flow_state.KV.shape[-1] != F:
                flow_state = FlowState.zeros((), E, F)  # (SHAPE changed mid-sequence)
            consts = FlowConsts.of(nc, c2=flow_c2)
            counters = new_flow_counters()
            for t in range(count):
                obuf[:F, ql + t] = flow_token_step(flow_state, qbuf[:E, ql + t], K[:E, kl + t],
                                                   V[:F, kl + t], flow_i + 1, consts, counters)
                flow_i += 1
                if res.trace is not None:
                    res.trace.append({"pc": pc, "token": flow_i - 1, "q_lane": ql + t,
                                      "kv_lane": kl + t, "out": obuf[:F, ql + t].copy(),
                                      **{k: v.copy() for k, v in flow_state.as_dict().items()}})
            res.flow_tokens += count
            flag("score_saturated", counters["phi"] + counters["score"])
            flag("rnv_saturated", counters["flow"])
            flag("out_saturated", counters["out"])
            flag("div_by_zero", counters["div_zero"])
            if a["store"]:
                store("FLOW", line, a["addr"], obuf[:F])
        elif op == "END":
            return res
        pc += 1
