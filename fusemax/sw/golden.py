"""Bit-exact NumPy model of FuseMax's 1-pass attention (Cascade 5, Einsums 39–56).

:func:`attention_1pass` computes exactly the integers the RTL must produce for a
:class:`~fusemax.config.FuseMaxConfig`, using only the operator twins in
:mod:`fusemax.sw.numerics`. :func:`reference_attention` is the independent float64 answer
(direct stable softmax) used to measure the error.

Order of evaluation (the hardware's): for b, h, for each block of ``cols`` queries, for each
chunk m1 of ``rows`` keys. Queries never interact, so this model evaluates all (b, h, query)
lanes of one chunk at once (vectorized) and loops only over m1 — the values are the same as
the tile-by-tile order because every quantity is per query. Per chunk:

=========  ===========================================================  =================
Einsum     computation (integer codes)                                  rounding point?
=========  ===========================================================  =================
BQK (44)   exact Σ_e Q'·K, then round to ``score``                      yes (score)
LM (45)    max over the chunk's *unmasked* keys (valid flag)            no
RM (46)    max_valid(RM, LM)                                            no
SLN (47)   exp2(BQK − RM_new); masked keys give 0                       yes (exp)
SLD (48)   exact Σ_m0 SLN                                               no
SLNV (49)  exact Σ_m0 SLN·V                                             no
PRM (50)   exp2(RM_old − RM_new); 0 while RM_old is not valid (−∞)      yes (exp)
SPD (51)   round(RD·PRM) in ``rd``                                      yes (rd)
RD (52)    sat(round(SLD to rd.frac) + SPD)                             only if rd.frac < exp.frac
SPNV (53)  round(RNV·PRM) in ``rnv``                                    yes (rnv)
RNV (54)   sat(round(SLNV to rnv.frac) + SPNV)                          yes (rnv)
AV (55)    divide(RNV, RD) in ``out``                                   yes (out)
=========  ===========================================================  =================

Every sum is exact, so the result does not depend on the order in which the hardware
reduces over e or m0. Keys past M in the last chunk, and keys a mask hides, are *masked*:
they take no part in LM and contribute 0 to SLD/SLNV (they are not "score 0").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fusemax.config import FORMAT_ROLES, FuseMaxConfig
from fusemax.errors import FuseMaxError
from fusemax.sw import numerics as nm
from fusemax.sw.attention_io import attention_dims
from fusemax.sw.attention_io import reference_attention  # noqa: F401  (re-exported)

LOG2E = 1.0 / math.log(2.0)

#: A mask maps (query indices (P,), key indices (r,)) to a bool (P, r) array: True = the
#: query sees the key. Applied per chunk, so it never materializes a P x M array.
Mask = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Work per group of chunks (elements of the largest temporary), bounding memory to ~100 MB.
_BLOCK_ELEMS = 1 << 22

#: Saturation counters the golden reports (the RTL's sticky flags have the same meaning).
SAT_ROLES = ("q", "k", "v", "score", "rd", "rnv", "out")


def causal_mask(P: int, M: int) -> Mask:
    """Causal mask aligned at the end of the key sequence: query p sees key m iff m <= p + M - P."""
    off = M - P

    def mask(p_idx: np.ndarray, m_idx: np.ndarray) -> np.ndarray:
        return m_idx[None, :] <= (p_idx[:, None] + off)

    return mask


@dataclass
class GoldenResult:
    """What :func:`attention_1pass` returns."""

    out: np.ndarray                 #: (B, H, P, F) float64, decoded from the output format
    out_codes: np.ndarray           #: (B, H, P, F) int64 output codes (what the RTL writes)
    saturation: dict[str, int]      #: per-role count of saturated values (SAT_ROLES)
    div_by_zero: int                #: outputs whose denominator RD was 0 (all keys masked)
    config_name: str
    scale: float
    chunks: int                     #: number of m1 chunks (ceil(M / rows))
    trace: list[dict[str, np.ndarray]] | None = field(default=None, repr=False)
    inputs: dict[str, np.ndarray] | None = field(default=None, repr=False)  #: quantized Q', K, V codes

    def trace_arrays(self) -> dict[str, np.ndarray]:
        """The trace stacked over chunks: ``name -> (chunks, B, H, P, ...)`` integer arrays.
        Per-key tensors (``valid``, ``BQK``, ``SLN``) of a short last chunk are padded with 0
        (``valid`` False) to the chunk size."""
        if not self.trace:
            raise FuseMaxError("no trace recorded; run attention_1pass(..., trace=True)")
        width = max(t["BQK"].shape[-1] for t in self.trace)
        out = {}
        for key in self.trace[0]:
            parts = [np.asarray(t[key]) for t in self.trace]
            if key in ("valid", "BQK", "SLN"):
                parts = [np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, width - a.shape[-1])]) for a in parts]
            out[key] = np.stack(parts)
        return out


def quantize_inputs(q, k, v, config: FuseMaxConfig, scale: float):
    """Quantize the float inputs: ``Q' = Q·scale·log2(e)`` (folding the softmax scale and the
    change to base 2 into Q, as the compiler does), K and V as given; round to nearest even,
    saturate. Returns ``(qc, kc, vc, {"q": n, "k": n, "v": n})``."""
    nc = config.numerics
    qc, nq = nc.q.quantize(np.asarray(q, np.float64) * (scale * LOG2E), "nearest_even")
    kc, nk = nc.k.quantize(k, "nearest_even")
    vc, nv = nc.v.quantize(v, "nearest_even")
    return qc, kc, vc, {"q": nq, "k": nk, "v": nv}


def prepare_inputs(q, k, v, config: FuseMaxConfig, scale: float | None):
    """The checks and quantization every bit-exact model starts with: ``q``, ``k``, ``v`` as
    4-D float64 (:func:`~fusemax.sw.attention_io.attention_dims` names what disagrees), E
    within the BQK accumulator's guard bits, ``scale`` (any real number) as a Python float,
    defaulted to 1/sqrt(E) and finite, then :func:`quantize_inputs`. Returns ``(qc, kc, vc,
    sat, scale, (B, H, P, E, M, F))``; ``sat`` holds every role of :data:`SAT_ROLES` (0 but
    for q, k, v)."""
    q = np.asarray(q, np.float64)
    k = np.asarray(k, np.float64)
    v = np.asarray(v, np.float64)
    B, H, P, E, M, F = attention_dims(q, k, v)
    nc = config.numerics
    if E > (1 << nc.acc_guard_bits):
        raise FuseMaxError(f"E = {E} exceeds 2**acc_guard_bits = {1 << nc.acc_guard_bits}: "
                           f"the BQK accumulator would not hold the exact sum")
    scale = 1.0 / math.sqrt(E) if scale is None else float(scale)
    if not np.isfinite(scale):
        raise FuseMaxError(f"scale must be finite, got {scale}")
    qc, kc, vc, sat = quantize_inputs(q, k, v, config, scale)
    sat.update({r: 0 for r in SAT_ROLES if r not in sat})
    return qc, kc, vc, sat, scale, (B, H, P, E, M, F)


def check_saturation(nc, sat: dict[str, int], config_name: str | None = None) -> None:
    """FuseMaxError naming the saturated roles when the overflow policy is 'error' (the
    message names the config when ``config_name`` is given)."""
    if nc.overflow == "error":
        bad = {r: n for r, n in sat.items() if n}
        if bad:
            where = "" if config_name is None else f" in config {config_name!r}"
            raise FuseMaxError(f"saturation{where} (overflow policy 'error'): {bad}")


def attention_1pass(q, k, v, config: FuseMaxConfig, scale: float | None = None,
                    mask: Mask | None = None, trace: bool = False) -> GoldenResult:
    """Bit-exact 1-pass attention. ``q`` (B,H,P,E), ``k`` (B,H,M,E), ``v`` (B,H,M,F) floats.

    ``scale`` defaults to 1/sqrt(E). ``mask`` (see :data:`Mask`, e.g. :func:`causal_mask`)
    hides (query, key) pairs. ``trace=True`` records every chunk's integer intermediates
    (BQK, LM, RM, SLN, SLD, SLNV, PRM, SPD, RD, SPNV, RNV, with the valid flags) in
    ``result.trace[m1]``; the tile (b, h, p-block i, m1) is ``[..., i*cols:(i+1)*cols, ...]``.
    """
    qc, kc, vc, sat, scale, (B, H, P, E, M, F) = prepare_inputs(q, k, v, config, scale)
    nc = config.numerics
    mode = nc.rounding
    R = config.rows
    chunks = -(-M // R)

    RM = np.zeros((B, H, P), np.int64)
    RMv = np.zeros((B, H, P), bool)
    RD = np.zeros((B, H, P), np.int64)
    RNV = np.zeros((B, H, P, F), np.int64)
    p_idx = np.arange(P)
    score_min = np.int64(nc.score.min_code)
    sentinel = np.iinfo(np.int64).min
    records: list[dict[str, np.ndarray]] | None = [] if trace else None
    # Chunks are processed in groups of G: everything that does not depend on RD/RNV (BQK,
    # LM, the running max, SLN, SLD, SLNV, PRM) is computed for the whole group at once; only
    # the RD/RNV recurrence (with its rounding) steps chunk by chunk. Same values as one
    # chunk at a time, in far fewer NumPy calls.
    G = max(1, min(chunks, _BLOCK_ELEMS // max(1, B * H * P * R * max(E, F, 1) // 8)))

    for g0 in range(0, chunks, G):
        ng = min(G, chunks - g0)
        lo, hi = g0 * R, min(M, (g0 + ng) * R)
        width = ng * R
        kt, vt = kc[:, :, lo:hi, :], vc[:, :, lo:hi, :]
        if hi - lo < width:  # keys past M: masked lanes of the last chunk
            kt = np.concatenate([kt, np.zeros((B, H, width - (hi - lo), E), np.int64)], axis=2)
            vt = np.concatenate([vt, np.zeros((B, H, width - (hi - lo), F), np.int64)], axis=2)
        valid = np.zeros((P, width), bool)
        if mask is None:
            valid[:, : hi - lo] = True
        else:
            vm = np.asarray(mask(p_idx, np.arange(lo, hi)), bool)
            if vm.shape != (P, hi - lo):
                raise FuseMaxError(f"mask returned shape {vm.shape}, expected {(P, hi - lo)}")
            valid[:, : hi - lo] = vm
        valid4 = np.broadcast_to(valid.reshape(P, ng, R), (B, H, P, ng, R))

        # (44) BQK: exact dot product over e, one rounding to the score format.
        bqk_exact = qc @ np.swapaxes(kt, -1, -2)  # (B,H,P,width) int64, exact
        bqk, s_flag = nm.requantize(bqk_exact, nc.qk_frac, nc.score, mode)
        bqk = bqk.reshape(B, H, P, ng, R)
        sat["score"] += int(np.count_nonzero(s_flag.reshape(B, H, P, ng, R) & valid4))
        # (45) LM over unmasked keys; (46) RM = running max_valid (a prefix max over chunks).
        lmv = valid4.any(-1)
        lm = np.where(valid4, bqk, score_min).max(-1)  # (B,H,P,ng)
        seq = np.concatenate([np.where(RMv, RM, sentinel)[..., None], np.where(lmv, lm, sentinel)], -1)
        seq_v = np.logical_or.accumulate(np.concatenate([RMv[..., None], lmv], -1), axis=-1)
        rm_all = np.where(seq_v, np.maximum.accumulate(seq, axis=-1), 0)  # invalid RM reads 0
        rm_old, rm_old_v = rm_all[..., :-1], seq_v[..., :-1]
        rm_new, rm_new_v = rm_all[..., 1:], seq_v[..., 1:]
        # (47) SLN = exp2(BQK − RM_new); masked keys contribute nothing.
        sln = nm.exp2(nm.sub(bqk, rm_new[..., None]), ~valid4 | ~rm_new_v[..., None], nc)
        # (48), (49): exact sums over m0.
        sld = sln.sum(-1)  # (B,H,P,ng)
        slnv = np.swapaxes(sln, 2, 3) @ vt.reshape(B, H, ng, R, F)  # (B,H,ng,P,F)
        # (50) PRM = exp2(RM_old − RM_new), 0 while RM_old is −∞.
        prm = nm.exp2(nm.sub(rm_old, rm_new), ~rm_old_v, nc)  # (B,H,P,ng)
        sld_rd = nm.round_shift_to(sld, nc.exp.frac, nc.rd.frac, mode)
        slnv_r = nm.round_shift_to(slnv, nc.exp.frac + nc.v.frac, nc.rnv.frac, mode)

        for g in range(ng):
            # (51), (52)
            spd, f1 = nm.rescale(RD, prm[..., g], nc.exp.frac, nc.rd, mode)
            rd_new, f2 = nm.requantize(sld_rd[..., g] + spd, nc.rd.frac, nc.rd, mode)
            # (53), (54)
            spnv, f3 = nm.rescale(RNV, prm[..., g, None], nc.exp.frac, nc.rnv, mode)
            rnv_new, f4 = nm.requantize(slnv_r[:, :, g] + spnv, nc.rnv.frac, nc.rnv, mode)
            if f1.any() or f2.any():
                sat["rd"] += int(np.count_nonzero(f1 | f2))
            if f3.any() or f4.any():
                sat["rnv"] += int(np.count_nonzero(f3 | f4))
            if records is not None:
                r_g = min(R, M - (g0 + g) * R)
                records.append({
                    "m1": np.int64(g0 + g), "valid": valid4[..., g, :r_g].copy(),
                    "BQK": bqk[..., g, :r_g], "LM": lm[..., g], "LM_valid": lmv[..., g],
                    "RM_old": rm_old[..., g], "RM_old_valid": rm_old_v[..., g],
                    "RM": rm_new[..., g], "RM_valid": rm_new_v[..., g], "SLN": sln[..., g, :r_g],
                    "SLD": sld[..., g], "SLNV": slnv[:, :, g], "PRM": prm[..., g], "SPD": spd,
                    "RD": rd_new, "SPNV": spnv, "RNV": rnv_new,
                })
            RD, RNV = rd_new, rnv_new
        RM, RMv = rm_new[..., -1], rm_new_v[..., -1]

    return _finish_av(RNV, RD, sat, config, scale, chunks, (qc, kc, vc), records)


# ------------------------------------------------------------------ the 1-pass core on whole chunks
# (the 3-pass golden and the variants of fusemax.sw.golden_variants start it from a given state)

def _empty_state(B, H, P, F):
    return {"RM": np.zeros((B, H, P), np.int64), "RMv": np.zeros((B, H, P), bool),
            "RD": np.zeros((B, H, P), np.int64), "RNV": np.zeros((B, H, P, F), np.int64),
            "RT": np.zeros((B, H, P), np.int64)}


def _chunk_exps(state, bqk, valid, nc):
    """Einsums 45-49 of one chunk for every lane: ``(rm_new, rm_new_valid, sln, prm)`` from the
    state's RM, the score codes ``bqk`` (B,H,P,r) and ``valid`` (broadcastable to it)."""
    valid = np.broadcast_to(valid, bqk.shape)
    lmv = valid.any(-1)
    lm = np.where(valid, bqk, np.int64(nc.score.min_code)).max(-1)
    rm_new, rm_new_v = nm.max_valid(state["RM"], state["RMv"], lm, lmv)
    rm_new = np.where(rm_new_v, rm_new, 0)
    sln = nm.exp2(nm.sub(bqk, rm_new[..., None]), ~valid | ~rm_new_v[..., None], nc)
    prm = nm.exp2(nm.sub(state["RM"], rm_new), ~state["RMv"], nc)
    return rm_new, rm_new_v, sln, prm


def _chunk(state, bqk, valid, vt, nc, entropy: bool):
    """One chunk of Einsums 45-54 (and the entropy accumulator) for every lane; ``bqk`` (B,H,P,r)
    score codes, ``valid`` broadcastable to it, ``vt`` (B,H,r,F) value codes. Returns the new
    state (the caller keeps the old one in lanes that skip the tile)."""
    mode = nc.rounding
    rm_new, rm_new_v, sln, prm = _chunk_exps(state, bqk, valid, nc)
    sld = sln.sum(-1)
    slnv = sln @ vt
    sld_rd = nm.round_shift_to(sld, nc.exp.frac, nc.rd.frac, mode)
    slnv_r = nm.round_shift_to(slnv, nc.exp.frac + nc.v.frac, nc.rnv.frac, mode)
    spd, f1 = nm.rescale(state["RD"], prm, nc.exp.frac, nc.rd, mode)
    rd_new, f2 = nm.requantize(sld_rd + spd, nc.rd.frac, nc.rd, mode)
    spnv, f3 = nm.rescale(state["RNV"], prm[..., None], nc.exp.frac, nc.rnv, mode)
    rnv_new, f4 = nm.requantize(slnv_r + spnv, nc.rnv.frac, nc.rnv, mode)
    new = {"RM": rm_new, "RMv": rm_new_v, "RD": rd_new, "RNV": rnv_new, "RT": state["RT"]}
    flags = {"rd": f1 | f2, "rnv": f3 | f4}
    if entropy:
        slnq = (sln * bqk).sum(-1)  # exact; masked keys have SLN = 0
        slnq_r = nm.round_shift_to(slnq, nc.exp.frac + nc.score.frac, nc.rnv.frac, mode)
        spt, f5 = nm.rescale(state["RT"], prm, nc.exp.frac, nc.rnv, mode)
        new["RT"], f6 = nm.requantize(slnq_r + spt, nc.rnv.frac, nc.rnv, mode)
        flags["rt"] = f5 | f6
    return new, flags


def _count(flags, sat):
    """Add the saturation flags of one chunk to the per-role counts."""
    for role, f in flags.items():
        sat[role] = sat.get(role, 0) + int(np.count_nonzero(f))


def _score_chunks(qc, kc, vc, config: FuseMaxConfig, mask: Mask | None):
    """Per chunk of ``config.rows`` keys: ``(bqk, s_flag, valid, vt)`` -- the score codes
    (B,H,P,r) with their saturation flags, the (P, r) mask (checked for shape) and the value
    codes (B,H,r,F)."""
    P, M = qc.shape[2], kc.shape[2]
    nc = config.numerics
    R = config.rows
    p_idx = np.arange(P)
    for j in range(-(-M // R)):
        lo, hi = j * R, min(M, (j + 1) * R)
        kt, vt = kc[:, :, lo:hi, :], vc[:, :, lo:hi, :]
        valid = np.ones((P, hi - lo), bool)
        if mask is not None:
            valid = np.asarray(mask(p_idx, np.arange(lo, hi)), bool)
            if valid.shape != (P, hi - lo):
                raise FuseMaxError(f"mask returned shape {valid.shape}, expected {(P, hi - lo)}")
        bqk, s_flag = nm.requantize(qc @ np.swapaxes(kt, -1, -2), nc.qk_frac, nc.score, nc.rounding)
        yield bqk, s_flag, valid, vt


def fusemax_state(qc, kc, vc, config: FuseMaxConfig, mask: Mask | None = None, init=None,
                  entropy: bool = False):
    """The 1-pass loop on quantized codes ``qc`` (B,H,P,E), ``kc`` (B,H,M,E), ``vc`` (B,H,M,F),
    chunk by chunk, every lane of a chunk at once (bit-identical to
    :func:`fusemax.sw.golden.attention_1pass` when ``init`` is None).

    ``init`` -- the state before the first chunk (dict of RM, RMv, RD, RNV codes), default
    empty. ``entropy`` -- also run the RT accumulator. Returns ``(state, saturation)``.
    """
    B, H, P, E = qc.shape
    F = vc.shape[3]
    nc = config.numerics
    state = _empty_state(B, H, P, F) if init is None else {**_empty_state(B, H, P, F), **init}
    sat: dict[str, int] = {"score": 0, "rd": 0, "rnv": 0}
    for bqk, s_flag, valid, vt in _score_chunks(qc, kc, vc, config, mask):
        sat["score"] += int(np.count_nonzero(s_flag & valid))
        state, flags = _chunk(state, bqk, valid, vt, nc, entropy)
        _count(flags, sat)
    return state, sat


def _finish_av(RNV, RD, sat: dict[str, int], config: FuseMaxConfig, scale: float, chunks: int,
               inputs, trace=None) -> GoldenResult:
    """(55) AV: one divide per output element, after the saturation check; the result."""
    nc = config.numerics
    check_saturation(nc, sat, config.name)
    av, s_out, dz = nm.divide(RNV, RD[..., None], nc)
    sat["out"] += int(np.count_nonzero(s_out))
    if nc.overflow == "error" and sat["out"]:
        raise FuseMaxError(f"output saturated in {sat['out']} elements (overflow policy 'error')")
    qc, kc, vc = inputs
    return GoldenResult(
        out=nc.out.to_float(av), out_codes=av, saturation={r: int(sat[r]) for r in SAT_ROLES},
        div_by_zero=int(np.count_nonzero(dz)), config_name=config.name, scale=float(scale),
        chunks=chunks, trace=trace, inputs={"Q": qc, "K": kc, "V": vc},
    )


def attention_3pass(q, k, v, config: FuseMaxConfig, scale: float | None = None,
                    mask: Mask | None = None, trace: bool = False) -> GoldenResult:
    """Bit-exact 3-pass attention (Cascade 4) as the RTL runs it: pass 1 over all chunks finds
    GM[p], the max of every visible score (the running max of a whole 1-pass, whose sums the
    hardware computes and discards); passes 2 and 3 run merged (the division reduction,
    Einsums 31-32, which the paper notes applies to the 3-pass cascade too): per chunk SLN =
    exp2(BQK - GM), RD and RNV summed with PRM = 1 (RM = GM throughout), then one divide per
    output. Saturation counts are those of both passes (the RTL's flags are sticky).
    ``trace`` is not supported (FuseMaxError): attention_1pass traces the chunks' intermediates."""
    if trace:
        raise FuseMaxError("the 3-pass golden records no intermediates; trace attention-1pass instead")

    qc, kc, vc, sat, scale, (B, H, P, E, M, F) = prepare_inputs(q, k, v, config, scale)
    first, sat1 = fusemax_state(qc, kc, vc, config, mask)
    state, sat2 = fusemax_state(qc, kc, vc, config, mask, init={"RM": first["RM"], "RMv": first["RMv"]})
    for role in ("score", "rd", "rnv"):
        sat[role] += sat1[role] + sat2[role]
    return _finish_av(state["RNV"], state["RD"], sat, config, scale, -(-M // config.rows), (qc, kc, vc))


def error_stats(out: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """max abs, RMS, and RMS relative to the reference's RMS."""
    err = np.asarray(out, np.float64) - np.asarray(ref, np.float64)
    rms = float(np.sqrt(np.mean(err ** 2)))
    ref_rms = float(np.sqrt(np.mean(np.asarray(ref, np.float64) ** 2)))
    return {"max_abs": float(np.max(np.abs(err))), "rms": rms, "ref_rms": ref_rms,
            "rel_rms": rms / ref_rms if ref_rms > 0 else float("nan")}


#: Cascades that have a golden model: name -> function(q, k, v, config, scale=, mask=, trace=)
#: -> GoldenResult.
GOLDEN_CASCADES: dict[str, Callable[..., GoldenResult]] = {"attention-1pass": attention_1pass,
                                                           "attention-3pass": attention_3pass}


def golden_for(cascade: str) -> Callable[..., GoldenResult]:
    try:
        return GOLDEN_CASCADES[cascade]
    except KeyError:
        raise FuseMaxError(f"no golden model for cascade {cascade!r}; cascades with a golden: "
                           f"{', '.join(GOLDEN_CASCADES)}") from None


__all__ = ["attention_1pass", "attention_3pass", "fusemax_state", "reference_attention", "error_stats", "causal_mask", "quantize_inputs",
           "prepare_inputs", "check_saturation",
           "GoldenResult", "GOLDEN_CASCADES", "golden_for", "SAT_ROLES", "FORMAT_ROLES", "LOG2E"]
