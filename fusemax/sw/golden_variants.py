"""Bit-exact fixed-point models of the attention variants, built from the PE operation twins.

Every function here computes integers with the twins of :mod:`fusemax.sw.numerics` (MAC,
max with valid, subtract, requantize, exp2, rescale, divide), in the formats of a
:class:`~fusemax.config.FuseMaxConfig`, like :func:`fusemax.sw.golden.attention_1pass` does for
plain attention; the float64 references of :mod:`fusemax.sw.variants` measure their error.

=========================  ============================================================  ========
function                   what it adds to the FuseMax datapath                          on v1 RTL
=========================  ============================================================  ========
:func:`fusemax_state`      the 1-pass loop, started from a given state, with an optional  --
                           entropy accumulator (the common core)
:func:`softmax1_golden`    state (RM, RD, RNV) = (0 valid, 1.0, 0) before the first chunk  yes (1)
:func:`kv_bias_golden`     state = one chunk holding only the bias key k*, value v* (or 0) yes (1)
:func:`entropy_golden`     RT += round(Σ SLN·BQK) + rescale(RT, PRM) (an RNV-like entry   yes (6)
                           whose "value" is the score); H from RM, RD, RT with a log2 unit
                           (:func:`entropy_codes`)
:func:`local_golden`       the plain golden under a sliding-window mask; only the tiles of yes (2)
                           :func:`~fusemax.sw.patterns.tiles_touched` count as run
:func:`routing_golden`     the plain golden on the gathered layout under a block-diagonal  yes (3)
                           mask, tiles of the diagonal blocks only; the host scatters
:func:`sigmoid_golden`     SN = sigmoid(BQK) from exp2 + divide; RNV (and RD) plain sums   yes (4)
:func:`flowformer_causal_golden`  the causal Flow-Attention recurrence, token by token      yes (5)
                           (:func:`flow_token_step`, one token of it)
:func:`flowformer_golden`  non-causal Flowformer with the causal engine's operations      no
:func:`act_golden`         ACT: pass 1 FuseMax, pass 2 column sums of exp2(BQK − RM)/RD    no
                           and the sink test, pass 3 split accumulators (sink, non-sink)
=========================  ============================================================  ========

(1) With the bias token prepended to K and V as key 0 (``method="prepend"``, what the RTL runs:
:mod:`fusemax.sw.rtl_variants`); that differs from the state form only by where the chunk
boundaries fall (a few output codes by 1 LSB), and equals it bit for bit when ``rows = 1``.
(2) The tile list and ``CAUSAL 1``, ``WINDOW W``. (3) When the cluster size is a multiple of
rows and cols (every tile of the diagonal blocks is full: no mask). (4) On a design with
``sigmoid_unit`` (``MODE``; :mod:`fusemax.hw.arith.sigmoid`). (5) On a design with ``flow_unit``
(``FLOWC``, ``FLOW``: the schedule executor runs :func:`flow_token_step` per token). (6) On a
design with ``entropy_unit`` (``MODE entropy=1``: the RT step on the MAC, the entropy finisher
:mod:`fusemax.hw.entropy`, which runs :func:`entropy_codes`).

New operations, modelled bit-exactly here: :func:`sigmoid_codes` (``Exp2`` of −|x| and one
divide; in the 2D PE with ``sigmoid_unit``) and :func:`log2_codes` (a leading-one detector, a
shift and a Horner polynomial on the mantissa, like ``Exp2``; the
:class:`fusemax.hw.arith.Log2` of the entropy finisher). Divides of other formats than RNV/RD
use the same ``Divider`` twin (:func:`divide_codes`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import numpy as np

from fusemax.config import FuseMaxConfig, NumericsConfig
from fusemax.errors import FuseMaxError
from fusemax.hw.formats import FixedFormat
from fusemax.sw import numerics as nm
from fusemax.sw.attention_io import attention_dims, bias_vector, prepend_bias
from fusemax.sw.golden import (
    LOG2E, GoldenResult, Mask, _chunk, _chunk_exps, _count, _empty_state, _score_chunks,
    attention_1pass, causal_mask, check_saturation, fusemax_state, prepare_inputs,
)
from fusemax.sw.patterns import Pattern, Routing, sliding_window, tiles_touched

__all__ = [
    "VariantGolden", "fusemax_state", "softmax1_golden", "kv_bias_golden", "entropy_golden",
    "local_golden", "routing_golden", "sigmoid_golden", "flowformer_causal_golden",
    "divide_codes", "sigmoid_codes", "log2_codes", "entropy_codes", "entropy_num_format", "LOG2_COEFFS", "LOG2_COEFF_CODES", "ENTROPY_FORMAT",
    "FLOW_FORMAT", "FLOW_CLAMP", "FLOW_MAX_N", "flowformer_golden", "FLOW_COUNTERS", "FlowConsts", "FlowState", "flow_clamp_code",
    "flow_quantize", "flow_token_step", "new_flow_counters",
    "act_golden", "act_codes", "ACT_RINV_FORMAT", "ACT_CSUM_FORMAT", "ACT_GAIN_FORMAT",
    "ACT_NUM_WIDTH", "ACT_SAT_ROLES",
]

#: log2(1 + u) ~ c1 u + ... + c5 u^5 on [0, 1] (max error 1.4e-5), Horner in frac-16 codes.
LOG2_COEFFS = (1.44196561, -0.70966277, 0.41759561, -0.19626941, 0.04638526)
#: Fraction bits of the log2 unit's mantissa, Horner register and result.
LOG2_FRAC = 16
#: :data:`LOG2_COEFFS` as codes with :data:`LOG2_FRAC` fraction bits (the twin's and the unit's).
LOG2_COEFF_CODES = tuple(int(round(c * (1 << LOG2_FRAC))) for c in LOG2_COEFFS)
#: Format of the entropy output H (nats): s16.11, range ±16 (ln 65536 = 11.1).
ENTROPY_FORMAT = FixedFormat(16, 11)
#: Internal format of H in bits (log2 RD + (RM·RD − RT)/RD) before the ln 2 rescale.
ENTROPY_BITS_FORMAT = FixedFormat(32, LOG2_FRAC)
#: 1D state format of the causal Flow-Attention model (SI, SO, KO, QI, CP, KV, DI, DO, QKV).
FLOW_FORMAT = FixedFormat(32, 16)
#: Most tokens of one causal Flow-Attention sequence: the flow engine's KC, QC sums (34 bits,
#: frac exp.frac) of φ <= 1.0 and its token index hold 2^17.
FLOW_MAX_N = 1 << 17
#: Clamp bound of the conserved source (Flow_Attention.py).
FLOW_CLAMP = 1.0


@dataclass
class VariantGolden:
    """What the bit-exact variant models return."""

    name: str
    out: np.ndarray                  #: (B, H, P, F) float64, decoded
    out_codes: np.ndarray            #: (B, H, P, F) int64 output codes
    saturation: dict[str, int]       #: per-role count of saturated values
    div_by_zero: int                 #: divides whose denominator was 0
    config_name: str
    scale: float
    tiles: int = 0                   #: (query block, chunk) tiles run
    tiles_total: int = 0             #: tiles of the dense grid P2 x M1
    extra: dict[str, np.ndarray] = field(default_factory=dict)   #: e.g. H, H_codes
    state: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  #: final RM, RD, RNV, RT

    @classmethod
    def from_golden(cls, name: str, g: GoldenResult, tiles: int, tiles_total: int) -> "VariantGolden":
        """The result of the plain golden (:func:`~fusemax.sw.golden.attention_1pass`) as ``name``."""
        return cls(name, g.out, g.out_codes, g.saturation, g.div_by_zero, g.config_name, g.scale,
                   tiles, tiles_total)


# ------------------------------------------------------------------ operation twins

def divider_shift(num_width: int, num_frac: int, den_width: int, den_frac: int,
                  out: FixedFormat) -> int:
    """The numerator's left shift (negative: the denominator's) of a divider ``s{num_width}.
    {num_frac} / s{den_width}.{den_frac} -> out``; FuseMaxError when the shifted operands
    would not fit the 62 bits of the int64 twin."""
    shift = out.frac + den_frac - num_frac
    if num_width + max(shift, 0) + 2 > 62 or den_width + max(-shift, 0) + 2 > 62:
        raise FuseMaxError(f"divider s{num_width}.{num_frac} / s{den_width}.{den_frac} -> "
                           f"{out.describe()} needs more than 62 bits; use narrower formats")
    return shift


def divide_codes(num, num_frac: int, den, den_frac: int, out: FixedFormat,
                 nc: NumericsConfig, num_width: int = 40, den_width: int = 40):
    """``num / den`` rounded into ``out`` by the ``Divider`` twin (:func:`numerics.divide`) for
    any operand formats: the divider generated for a ``num_width``-bit numerator with
    ``num_frac`` fraction bits, a ``den_width``-bit denominator with ``den_frac``, and the
    quotient format ``out`` (the v1 divider is the case RNV / RD -> out). Returns ``(codes,
    saturated, div_by_zero)``; FuseMaxError when the shifted numerator would not fit int64."""
    shift = divider_shift(num_width, num_frac, den_width, den_frac, out)
    num = np.asarray(num, np.int64)
    if num.size and int(np.abs(num).max()) >= (1 << (num_width - 1)):
        raise FuseMaxError(f"divider numerator exceeds its {num_width} bits")
    unit = SimpleNamespace(div_shift=shift, out=out, rounding=nc.rounding)
    return nm.divide(num, den, unit)


def sigmoid_codes(x2, nc: NumericsConfig, out: FixedFormat | None = None):
    """sigmoid(x) from ``x2 = x·log2(e)`` in the score format: ``t = exp2(−|x2|)`` (the Exp2
    unit), then ``1/(1 + t)`` for x >= 0 and ``t/(1 + t)`` otherwise (one divide). Result in
    ``out`` (default: the exp format, u16.15). Returns ``(codes, saturated)``."""
    out = nc.exp if out is None else out
    x2 = np.asarray(x2, np.int64)
    t = nm.exp2(-np.abs(x2), False, nc)
    one = np.int64(1) << np.int64(nc.exp.frac)
    num = np.where(x2 >= 0, one, t)
    sig, sat, _ = divide_codes(num, nc.exp.frac, one + t, nc.exp.frac, out, nc,
                               num_width=nc.exp.width + 2, den_width=nc.exp.width + 2)
    return sig, sat


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Position of the leading one + 1 of positive int64 codes (0 for 0): a priority encoder."""
    x = np.asarray(x, np.int64)
    n = np.zeros(x.shape, np.int64)
    rest = x.copy()
    for s in (32, 16, 8, 4, 2, 1):
        hit = rest >= (np.int64(1) << np.int64(s))
        n = n + np.where(hit, s, 0)
        rest = np.where(hit, rest >> np.int64(s), rest)
    return np.where(x > 0, n + 1, 0)


def log2_codes(x, x_frac: int, mode: str, out_frac: int = LOG2_FRAC) -> np.ndarray:
    """log2 of positive codes ``x`` (``x_frac`` fraction bits), with ``out_frac`` fraction
    bits: the leading one gives the integer part ``k − x_frac``; the 16 bits after it (dropped
    bits truncated, zeros shifted in) are the mantissa fraction u; log2(1 + u) is the Horner
    polynomial :data:`LOG2_COEFFS` on a signed register, rounded with ``mode`` after each
    product. Codes ``x <= 0`` give 0 (the caller flags them)."""
    x = np.asarray(x, np.int64)
    G = LOG2_FRAC
    k = _bit_length(x) - 1
    pos = x > 0
    k = np.where(pos, k, 0)
    frac_bits = x - np.where(pos, np.int64(1) << k, 0)
    u = np.where(k >= G, frac_bits >> np.maximum(k - G, 0), frac_bits << np.maximum(G - k, 0))
    codes = LOG2_COEFF_CODES
    h = np.full(x.shape, codes[-1], np.int64)
    for c in reversed(codes[:-1]):
        h = nm.round_shift_to(h * u, 2 * G, G, mode) + np.int64(c)
    y = nm.round_shift_to(h * u, 2 * G, G, mode)  # log2(1 + u), frac G
    whole = ((k - x_frac) << np.int64(G)) + y
    return np.where(pos, nm.round_shift_to(whole, G, out_frac, mode), 0)


# ------------------------------------------------------------------ finishing

def _finish(name, state, sat, config, scale, tiles, tiles_total, extra=None) -> VariantGolden:
    nc = config.numerics
    av, s_out, dz = nm.divide(state["RNV"], state["RD"][..., None], nc)
    sat = dict(sat)
    sat["out"] = sat.get("out", 0) + int(np.count_nonzero(s_out))
    check_saturation(nc, sat)
    return VariantGolden(name, nc.out.to_float(av), av, sat, int(np.count_nonzero(dz)),
                         config.name, float(scale), tiles, tiles_total, extra or {}, state)


def _grid(B, H, P, M, config):
    """Tiles of the dense grid: (batch, head, query block, chunk)."""
    return B * H * -(-P // config.cols) * -(-M // config.rows)


def _bias_state(qc, bias_key, bias_value, config: FuseMaxConfig, sat) -> dict:
    """The state after one chunk that holds only the bias token (every query sees it):
    ``bias_key`` score codes (B,H,P) (already requantized), ``bias_value`` codes (B,H,F)."""
    B, H, P, _ = qc.shape
    F = bias_value.shape[-1]
    new, flags = _chunk(_empty_state(B, H, P, F), bias_key[..., None], np.ones((P, 1), bool),
                        bias_value[:, :, None, :], config.numerics, False)
    _count(flags, sat)
    return new


def softmax1_golden(q, k, v, config: FuseMaxConfig, scale=None, causal: bool = True,
                    method: str = "state") -> VariantGolden:
    """softmax-1, bit-exact. ``method="state"``: the running state starts at RM = 0 (valid),
    RD = 1.0, RNV = 0 (the cascade attention-softmax1). ``method="prepend"``: the v1 hardware's
    way: a zero key with a zero value prepended to K and V (its score is exactly 0) and the
    plain golden :func:`~fusemax.sw.golden.attention_1pass` run on M + 1 keys."""
    zeros_e = np.zeros(np.shape(q)[:2] + (np.shape(q)[-1],))
    zeros_f = np.zeros(np.shape(v)[:2] + (np.shape(v)[-1],))
    r = kv_bias_golden(q, k, v, zeros_e, zeros_f, config, scale, causal, method)
    r.name = f"softmax1 ({method})"
    return r


def kv_bias_golden(q, k, v, k_bias, v_bias, config: FuseMaxConfig, scale=None,
                   causal: bool = True, method: str = "state") -> VariantGolden:
    """Softmax with a learned key k* (``k_bias`` (B,H,E)) and value v* (``v_bias`` (B,H,F), or
    None for 0), bit-exact. ``method="state"``: the state before the first chunk is that of a
    chunk holding only the bias token (RM = round(q'·k*), RD = 1.0, RNV = round(v*)), as the
    cascades attention-kbias / attention-kvbias say. ``method="prepend"``: k*, v* prepended as
    key 0 and the plain golden run on M + 1 keys (what the v1 RTL can run today; with its
    end-aligned causal mask every query sees key 0 when P <= M + 1)."""
    q4, k4, v4 = (np.asarray(x, np.float64) for x in (q, k, v))
    B, H, P, E, M, F = attention_dims(q4, k4, v4)
    if method == "prepend":
        k1, v1 = prepend_bias(k4, v4, k_bias, v_bias)
        off = M - P

        def mask(p, m):  # the bias (key 0) for everyone; key j + 1 as key j of the causal mask
            return (m[None, :] == 0) | (m[None, :] - 1 <= p[:, None] + off) if causal else \
                np.ones((len(p), len(m)), bool)

        g = attention_1pass(q4, k1, v1, config, scale, mask=mask)
        return VariantGolden.from_golden("kv_bias (prepend)", g, *[_grid(B, H, P, M + 1, config)] * 2)
    kb = bias_vector("k_bias", k_bias, B, H, E)
    vb = np.zeros((B, H, F)) if v_bias is None else bias_vector("v_bias", v_bias, B, H, F)
    if method != "state":
        raise FuseMaxError(f"method must be 'state' or 'prepend', got {method!r}")
    qc, kc, vc, sat, scale, _ = prepare_inputs(q4, k4, v4, config, scale)
    nc = config.numerics
    kbc, nk = nc.k.quantize(kb, "nearest_even")
    vbc, nv = nc.v.quantize(vb, "nearest_even")
    sat["k"] += nk
    sat["v"] += nv
    s_bias, s_flag = nm.requantize(np.einsum("bhpe,bhe->bhp", qc, kbc), nc.qk_frac, nc.score,
                                   nc.rounding)
    sat["score"] = int(np.count_nonzero(s_flag))
    init = _bias_state(qc, s_bias, vbc, config, sat)
    mask = causal_mask(P, M) if causal else None
    state, sat2 = fusemax_state(qc, kc, vc, config, mask, init)
    for r, n in sat2.items():
        sat[r] = sat.get(r, 0) + n
    grid = _grid(B, H, P, M, config)
    return _finish("kv_bias (state)", state, sat, config, scale, grid, grid)


# ------------------------------------------------------------------ entropy

def entropy_num_format(nc: NumericsConfig) -> tuple[FixedFormat, int, int]:
    """``(format, product shift, RT shift)`` of N = RM·RD − RT: the fraction is the finer of
    RM·RD's (score.frac + rd.frac) and RT's (rnv.frac), the width holds either term shifted
    to it, plus the sign of the difference (53 bits for every preset)."""
    f_n = max(nc.score.frac + nc.rd.frac, nc.rnv.frac)
    sh_prod, sh_rt = f_n - nc.score.frac - nc.rd.frac, f_n - nc.rnv.frac
    width = max(nc.score.width + nc.rd.width + sh_prod, nc.rnv.width + sh_rt) + 1
    return FixedFormat(width, f_n), sh_prod, sh_rt


def check_entropy_numerics(nc: NumericsConfig) -> None:
    """FuseMaxError unless the entropy finisher's divide N / RD into
    :data:`ENTROPY_BITS_FORMAT` fits these numerics (see :func:`divider_shift`)."""
    fmt, _, _ = entropy_num_format(nc)
    try:
        divider_shift(fmt.width, fmt.frac, nc.rd.width, nc.rd.frac, ENTROPY_BITS_FORMAT)
    except FuseMaxError as e:
        short = {r: f"s{f.width}.{f.frac}" for r, f in (("score", nc.score), ("rd", nc.rd),
                                                        ("rnv", nc.rnv))}
        raise FuseMaxError(f"the entropy output divides N = RM·RD − RT (from score "
                           f"{short['score']}, rd {short['rd']}, rnv {short['rnv']}) by RD: "
                           f"{e}") from None


def entropy_codes(rm, rd, rt, nc: NumericsConfig):
    """The entropy H of each query from its final state (the entropy finisher's operations):
    ``rm`` running max (score codes; 0 where it is not valid), ``rd`` running denominator
    (RD codes), ``rt`` the RT accumulator (RNV codes). N = RM·RD − RT (exact,
    :func:`entropy_num_format`), D = divide(N, RD) into :data:`ENTROPY_BITS_FORMAT`, L = log2(RD)
    (:func:`log2_codes`), H₂ = L + D in bits, H = round(H₂·round(ln 2·2^exp.frac)) in
    :data:`ENTROPY_FORMAT` nats; 0 where RD = 0. Returns ``(h, saturated, div_by_zero)``
    (``saturated`` excludes the divides by zero)."""
    mode = nc.rounding
    rm, rd, rt = (np.asarray(x, np.int64) for x in (rm, rd, rt))
    fmt, sh_prod, sh_rt = entropy_num_format(nc)
    num = ((rm * rd) << np.int64(sh_prod)) - (rt << np.int64(sh_rt))
    bits = ENTROPY_BITS_FORMAT
    d, f1, dz = divide_codes(num, fmt.frac, rd, nc.rd.frac, bits, nc, num_width=fmt.width,
                             den_width=nc.rd.width)
    lg = log2_codes(rd, nc.rd.frac, mode, bits.frac)
    h2, f2 = nm.requantize(lg + d, bits.frac, bits, mode)
    ln2 = np.int64(round(math.log(2.0) * (1 << nc.exp.frac)))
    h, f3 = nm.requantize(h2 * ln2, bits.frac + nc.exp.frac, ENTROPY_FORMAT, mode)
    return np.where(dz, 0, h), (f1 | f2 | f3) & ~dz, dz


def entropy_golden(q, k, v, config: FuseMaxConfig, scale=None, causal: bool = True,
                   mask: Mask | None = None) -> VariantGolden:
    """Attention and its entropy in one pass, bit-exact (the cascade attention-entropy).

    RT[m1+1] = sat(round(Σ_m0 SLN·BQK → rnv.frac) + rescale(RT, PRM)) in the RNV format (an
    extra RNV entry whose value is the score itself). After the last chunk, per query (1D):
    N = RM·RD − RT (exact), D = divide(N, RD), L = log2(RD) (:func:`log2_codes`), H₂ = L + D
    in bits (:data:`ENTROPY_BITS_FORMAT`), H = round(H₂·ln 2) in :data:`ENTROPY_FORMAT` nats
    (a rescale by the constant ln 2). ``extra["H"]`` (B,H,P) floats, ``extra["H_codes"]``.
    ``mask`` replaces the causal mask when given."""
    qc, kc, vc, sat, scale, (B, H, P, E, M, F) = prepare_inputs(q, k, v, config, scale)
    nc = config.numerics
    if mask is None and causal:
        mask = causal_mask(P, M)
    state, sat2 = fusemax_state(qc, kc, vc, config, mask, entropy=True)
    sat.update(sat2)
    rm = np.where(state["RMv"], state["RM"], 0)
    h, h_sat, dz = entropy_codes(rm, state["RD"], state["RT"], nc)
    sat["entropy"] = int(np.count_nonzero(h_sat))
    grid = _grid(B, H, P, M, config)
    r = _finish("entropy", state, sat, config, scale, grid, grid,
                {"H": ENTROPY_FORMAT.to_float(h), "H_codes": h})
    r.div_by_zero += int(np.count_nonzero(dz))
    return r


# ------------------------------------------------------------------ local and routing

def local_golden(q, k, v, config: FuseMaxConfig, window: int | None = None, scale=None,
                 pattern: Pattern | None = None, skip_tiles: bool = True) -> VariantGolden:
    """Local attention, bit-exact: the plain 1-pass arithmetic under ``pattern`` (default the
    causal :func:`~fusemax.sw.patterns.sliding_window` of ``window`` keys), running only the
    tiles the pattern touches when ``skip_tiles`` (the skipped tiles would leave every bit of
    the state unchanged, so the result is :func:`~fusemax.sw.golden.attention_1pass` under the
    pattern's mask either way; ``tiles`` counts what runs)."""
    q4, k4, v4 = (np.asarray(x, np.float64) for x in (q, k, v))
    B, H, P, E, M, F = attention_dims(q4, k4, v4)
    if pattern is None:
        if window is None:
            raise FuseMaxError("local_golden needs a window or a pattern")
        pattern = sliding_window(window)
    # the policy is applied below, as for every variant, once the output is counted too
    saturating = replace(config, numerics=replace(config.numerics, overflow="saturate"))
    g = attention_1pass(q4, k4, v4, saturating, scale, mask=pattern.mask(P, M))
    check_saturation(config.numerics, g.saturation)
    grid = _grid(B, H, P, M, config)
    tiles = len(tiles_touched(pattern, M, P, config.rows, config.cols)) * B * H if skip_tiles \
        else grid
    return VariantGolden.from_golden("local", g, tiles, grid)


def routing_golden(qg, kg, vg, config: FuseMaxConfig, scale=None, causal: bool = False,
                   skip_tiles: bool = True) -> VariantGolden:
    """Routed attention on gathered clusters ``qg`` (B,H,C,w,E), ``kg``, ``vg`` (B,H,C,w',·),
    bit-exact: the clusters laid out one after another (the flat gathered layout), the plain
    1-pass arithmetic under the block-diagonal :class:`~fusemax.sw.patterns.Routing` mask,
    only the tiles of the diagonal blocks. ``out`` is (B,H,C,w,F); the host scatters it
    (:func:`fusemax.sw.variants.scatter_mean`). With w a multiple of ``rows`` the chunks
    never straddle two clusters and this equals running each cluster on its own."""
    qg, kg, vg = (np.asarray(x, np.float64) for x in (qg, kg, vg))
    if qg.ndim != 5 or kg.ndim != 5 or vg.ndim != 5:
        raise FuseMaxError(f"gathered arrays are (B, H, C, w, dim); got Q {qg.shape}, "
                           f"K {kg.shape}, V {vg.shape}")
    B, H, C, W, E = qg.shape
    Wk = kg.shape[3]
    if kg.shape[2] != C or vg.shape[2] != C:
        raise FuseMaxError(f"Q has {C} clusters but K has {kg.shape[2]} and V {vg.shape[2]}")
    pattern = Routing((W,) * C, (Wk,) * C, causal)
    flat = lambda x: x.reshape(x.shape[0], x.shape[1], C * x.shape[3], x.shape[4])  # noqa: E731
    r = local_golden(flat(qg), flat(kg), flat(vg), config, scale=scale, pattern=pattern,
                     skip_tiles=skip_tiles)
    r.name = "routing"
    F = vg.shape[4]
    r.out = r.out.reshape(B, H, C, W, F)
    r.out_codes = r.out_codes.reshape(B, H, C, W, F)
    return r


# ------------------------------------------------------------------ sigmoid attention

def sigmoid_golden(q, k, v, config: FuseMaxConfig, normalize: bool, scale=None,
                   causal: bool = True) -> VariantGolden:
    """Sigmoid attention, bit-exact (the cascades sigmoid-nonorm, sigmoid-norm). Per chunk:
    BQK as in FuseMax (log2 units), SN = :func:`sigmoid_codes` (BQK) in the exp format (0 for
    hidden keys), RNV = sat(RNV + round(Σ SN·V → rnv.frac)); normalised: RD = sat(RD +
    round(Σ SN → rd.frac)) and AV = divide(RNV, RD + round(1e-8)), else AV = round(RNV → out).
    No max, no rescale. RD is summed (its saturation counted) without the norm too: the
    hardware's ``MODE sigmoid=1 nonorm=1`` does."""
    qc, kc, vc, sat, scale, (B, H, P, E, M, F) = prepare_inputs(q, k, v, config, scale)
    nc = config.numerics
    mode = nc.rounding
    mask = causal_mask(P, M) if causal else None
    rd = np.zeros((B, H, P), np.int64)
    rnv = np.zeros((B, H, P, F), np.int64)
    sat["sigmoid"] = 0
    for bqk, s_flag, valid, vt in _score_chunks(qc, kc, vc, config, mask):
        sat["score"] += int(np.count_nonzero(s_flag & valid))
        sn, f0 = sigmoid_codes(bqk, nc)
        sn = np.where(valid, sn, 0)
        sat["sigmoid"] += int(np.count_nonzero(f0 & valid))
        snv_r = nm.round_shift_to(sn @ vt, nc.exp.frac + nc.v.frac, nc.rnv.frac, mode)
        rnv, f1 = nm.requantize(rnv + snv_r, nc.rnv.frac, nc.rnv, mode)
        sat["rnv"] += int(np.count_nonzero(f1))
        sd_r = nm.round_shift_to(sn.sum(-1), nc.exp.frac, nc.rd.frac, mode)
        rd, f2 = nm.requantize(rd + sd_r, nc.rd.frac, nc.rd, mode)
        sat["rd"] += int(np.count_nonzero(f2))
    dz = np.zeros(rnv.shape, bool)
    if normalize:
        eps = np.int64(nc.sigmoid_eps_code)
        av, s_out, dz = nm.divide(rnv, (rd + eps)[..., None], nc)
    else:
        av, s_out = nm.requantize(rnv, nc.rnv.frac, nc.out, mode)
    sat["out"] = int(np.count_nonzero(s_out))
    check_saturation(nc, sat)
    return VariantGolden(f"sigmoid ({'norm' if normalize else 'no norm'})", nc.out.to_float(av),
                         av, sat, int(np.count_nonzero(dz)), config.name, float(scale),
                         *[_grid(B, H, P, M, config)] * 2, {},
                         {"RD": rd, "RNV": rnv})


# ------------------------------------------------------------------ causal Flow-Attention

#: Saturation / error categories of the Flow-Attention step (:func:`flow_token_step`): ``phi``
#: the sigmoids (φq, φk, AL), ``score`` the divides into the score format (AL's and the
#: conserved source's arguments), ``flow`` every value in :data:`FLOW_FORMAT`, ``out`` the
#: output divide; ``div_zero`` counts divides by zero.
FLOW_COUNTERS = ("phi", "score", "flow", "out", "div_zero")


def flow_clamp_code(clamp: float, numerics: NumericsConfig) -> int:
    """The clamp code c2 = round(clamp·log2(e)·2^score.frac): the bound ±c·log2(e) of the
    conserved source in score codes (``FLOWC clamp``). FuseMaxError when ``clamp`` is not a
    positive finite number, when c2 exceeds the score format's largest code, or when
    2·c2 >= 2^score.width (y − c2, with y in [−c2, c2], must fit the Exp2's
    score.width + 1-bit input)."""
    try:
        c = float(clamp)
    except (TypeError, ValueError):
        raise FuseMaxError(f"clamp must be a positive bound, got {clamp!r}") from None
    if not (c > 0 and math.isfinite(c)):
        raise FuseMaxError(f"clamp must be a positive bound, got {clamp!r}")
    sc = numerics.score
    c2 = int(round(c * LOG2E * (1 << sc.frac)))
    if c2 > sc.max_code:
        raise FuseMaxError(
            f"clamp {c:g} is {c2} score codes (c·log2(e)·2^{sc.frac}), above the score format's "
            f"largest code {sc.max_code} ({sc.describe()}): the largest clamp is "
            f"{sc.max_code / (1 << sc.frac) / LOG2E:.4g}")
    if 2 * c2 >= (1 << sc.width):
        raise FuseMaxError(
            f"clamp {c:g} is {c2} score codes: y − c2 (down to −2·c2 = {-2 * c2}) does not fit the "
            f"Exp2's {sc.width + 1}-bit input (2·c2 must be < 2^{sc.width})")
    return c2


@dataclass(frozen=True)
class FlowConsts:
    """The constants of one Flow-Attention run: the numerics, the clamp code ``c2``
    (:func:`flow_clamp_code`), ln 2 in exp codes and ε in the exp and flow formats."""

    nc: NumericsConfig
    c2: int
    ln2: int
    eps_p: int
    eps_f: int

    @classmethod
    def of(cls, numerics: NumericsConfig, clamp: float = FLOW_CLAMP, eps: float = 1e-6,
           c2: int | None = None) -> "FlowConsts":
        """From a clamp bound (or directly from a clamp code ``c2``, as FLOWC holds it)."""
        ef = numerics.exp.frac
        if c2 is None:
            c2 = flow_clamp_code(clamp, numerics)
        return cls(numerics, int(c2), int(round(math.log(2.0) * (1 << ef))),
                   int(round(eps * (1 << ef))), int(round(eps * (1 << FLOW_FORMAT.frac))))


@dataclass
class FlowState:
    """The running state of causal Flow-Attention for any leading dims ``lead`` (e.g. (B, H),
    or () for one sequence): KC, QC (exact sums of φk, φq, frac exp.frac), KO, QI
    (:data:`FLOW_FORMAT`), ZC (exact sum of EC) and the E x F state KV (FLOW_FORMAT)."""

    KC: np.ndarray   #: (..., E)
    QC: np.ndarray   #: (..., E)
    KO: np.ndarray   #: (..., E)
    QI: np.ndarray   #: (..., E)
    ZC: np.ndarray   #: (...)
    KV: np.ndarray   #: (..., E, F)

    @classmethod
    def zeros(cls, lead: tuple, E: int, F: int) -> "FlowState":
        lead = tuple(lead)
        z = lambda *s: np.zeros(lead + s, np.int64)  # noqa: E731
        return cls(z(E), z(E), z(E), z(E), z(), z(E, F))

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"KC": self.KC, "QC": self.QC, "KO": self.KO, "QI": self.QI, "ZC": self.ZC,
                "KV": self.KV}


def new_flow_counters() -> dict[str, int]:
    """Counters for :func:`flow_token_step`: every :data:`FLOW_COUNTERS` entry at 0."""
    return {name: 0 for name in FLOW_COUNTERS}


def _flow_ops(nc: NumericsConfig, counters: dict[str, int]):
    """``(div, req)``: the divide (:func:`divide_codes`, its saturations counted under ``role``,
    divides by zero under ``div_zero``) and the requantize into :data:`FLOW_FORMAT` (counted
    under ``flow``) of the Flow-Attention models."""

    def div(num, nf, den, df, fmt, role, nw=40, dw=40):
        r, s, z = divide_codes(num, nf, den, df, fmt, nc, nw, dw)
        counters[role] += int(np.count_nonzero(s))
        counters["div_zero"] += int(np.count_nonzero(z))
        return r

    def req(x, frac, fmt=FLOW_FORMAT):
        r, s = nm.requantize(x, frac, fmt, nc.rounding)
        counters["flow"] += int(np.count_nonzero(s))
        return r

    return div, req


def flow_token_step(state: FlowState, xq_t, xk_t, v_t, nu, consts: FlowConsts,
                    counters: dict[str, int]) -> np.ndarray:
    """One token of causal Flow-Attention (the loop body of :func:`flowformer_causal_golden`):
    ``xq_t``, ``xk_t`` (..., E) the token's x·log2(e) in score codes, ``v_t`` (..., F) its value
    codes, ``nu`` = i + 1 (the token index + 1; a scalar or broadcastable to the leading dims).
    Updates ``state`` (new arrays, same shapes) and ``counters`` (:data:`FLOW_COUNTERS`; saturated
    values and divides by zero) in place; returns the token's F output codes (..., F) in the
    out format."""
    nc = consts.nc
    mode = nc.rounding
    FF = FLOW_FORMAT
    ef = nc.exp.frac
    eps_p, eps_f = np.int64(consts.eps_p), np.int64(consts.eps_f)
    c2 = np.int64(consts.c2)
    nu = np.asarray(nu, np.int64)
    div, req = _flow_ops(nc, counters)

    pq, f1 = sigmoid_codes(np.asarray(xq_t, np.int64), nc)
    pk, f2 = sigmoid_codes(np.asarray(xk_t, np.int64), nc)
    counters["phi"] += int(np.count_nonzero(f1) + np.count_nonzero(f2))
    vt = np.asarray(v_t, np.int64)
    st = state
    st.KC = st.KC + pk
    st.QC = st.QC + pq
    DI = req(((pq + eps_p) * (st.KC + eps_p)).sum(-1), 2 * ef)
    DO = req(((pk + eps_p) * (st.QC + eps_p)).sum(-1), 2 * ef)
    nu_b = np.broadcast_to(nu, DI.shape)
    SI = div(nu_b, 0, DI, FF.frac, FF, "flow", nw=24)
    SO = div(nu_b, 0, DO, FF.frac, FF, "flow", nw=24)
    st.KO = req(st.KO + nm.round_shift_to(pk * SO[..., None], ef + FF.frac, FF.frac, mode), FF.frac)
    st.QI = req(st.QI + nm.round_shift_to(pq * SI[..., None], ef + FF.frac, FF.frac, mode), FF.frac)
    CK = ((pq + eps_p) * (st.KO + eps_f)).sum(-1)    # frac ef + FF.frac, exact
    CSR = ((pk + eps_p) * (st.QI + eps_f)).sum(-1)
    den = nu_b * np.int64(consts.ln2)                # nu * ln 2, frac ef
    x_al = div(CK, ef + FF.frac, den, ef, nc.score, "score", nw=56, dw=40)
    al, f3 = sigmoid_codes(x_al, nc)
    counters["phi"] += int(np.count_nonzero(f3))
    y = div(CSR, ef + FF.frac, den, ef, nc.score, "score", nw=56, dw=40)
    y = np.minimum(np.maximum(y, -c2), c2)           # clamp (max, min)
    ec = nm.exp2(nm.sub(y, c2), False, nc)           # e^(CS - c), exp format
    st.ZC = st.ZC + ec
    CP = div(nu_b * ec, ef, st.ZC, ef, FF, "flow", nw=40, dw=40)
    W = req(nm.round_shift_to(pk * CP[..., None], ef + FF.frac, FF.frac, mode), FF.frac)
    st.KV = req(st.KV + nm.round_shift_to(W[..., None] * vt[..., None, :], FF.frac + nc.v.frac,
                                          FF.frac, mode), FF.frac)
    qkv = req((pq[..., None] * st.KV).sum(-2), ef + FF.frac)
    return div(qkv * al[..., None], FF.frac + ef, DI[..., None], FF.frac, nc.out, "out",
               nw=FF.width + nc.exp.width + 1, dw=FF.width)


def flowformer_golden(q, k, v, config: FuseMaxConfig, clamp: float | None = FLOW_CLAMP,
                      eps: float = 1e-6) -> VariantGolden:
    """Non-causal Flow-Attention (``Flow_Attention``; the cascade ``flowformer``), bit-exact,
    with the operations and formats of :func:`flow_token_step` (no hardware runs it: it needs
    whole-sequence sums first, docs/variants.md). P and M may differ. ``clamp`` = None for the
    unclamped variants (TimeSeries). Per (b, h):

    ====  ==========================================================================
    φ     φq (P, E), φk (M, E) = :func:`sigmoid_codes`
    KS    KS = Σ_m φk, QS = Σ_p φq (exact)
    DI    DI[p] = round(Σ_e (φq + ε)(KS + ε) → F), DO[m] likewise; SI = 1 / DI, SO = 1 / DO → F
    KO    KO = sat(Σ_m round(φk·SO → F)), QI = sat(Σ_p round(φq·SI → F))
    AL    AL[p] = sigmoid(divide(Σ_e (φq + ε)(KO + ε), round(ln 2·M/P)) in the score format)
    EC    y[m] = clamp(divide(Σ_e (φk + ε)(QI + ε), ln 2), ±c2); EC = exp2(y − max_m y)
    CP    CP[m] = divide(M·EC, Σ_m EC) → F  (competition: softmax over M, times M)
    KV    W = round(φk·CP → F); KV = sat(Σ_m round(W·V → F))  (E x F)
    AV    AV = divide(round(Σ_e φq·KV → F)·AL, DI) → out  (= AL·(φq·SI)·KV)
    ====  ==========================================================================
    """
    q4, k4, v4 = (np.asarray(x, np.float64) for x in (q, k, v))
    B, H, P, E, M, F = attention_dims(q4, k4, v4)
    nc = config.numerics
    mode = nc.rounding
    FF = FLOW_FORMAT
    ef = nc.exp.frac
    consts = FlowConsts.of(nc, FLOW_CLAMP if clamp is None else clamp, eps)
    eps_p, eps_f = np.int64(consts.eps_p), np.int64(consts.eps_f)
    xq, xk, vc, nin = flow_quantize(q4, k4, v4, nc)
    counters = new_flow_counters()
    div, req = _flow_ops(nc, counters)
    pq, f1 = sigmoid_codes(xq, nc)                       # (B, H, P, E)
    pk, f2 = sigmoid_codes(xk, nc)                       # (B, H, M, E)
    counters["phi"] += int(np.count_nonzero(f1) + np.count_nonzero(f2))
    KS, QS = pk.sum(2), pq.sum(2)                        # (B, H, E), exact
    DI = req(((pq + eps_p) * (KS[:, :, None] + eps_p)).sum(-1), 2 * ef)   # (B, H, P)
    DO = req(((pk + eps_p) * (QS[:, :, None] + eps_p)).sum(-1), 2 * ef)   # (B, H, M)
    SI = div(np.ones_like(DI), 0, DI, FF.frac, FF, "flow", nw=24)
    SO = div(np.ones_like(DO), 0, DO, FF.frac, FF, "flow", nw=24)
    KO = req(nm.round_shift_to(pk * SO[..., None], ef + FF.frac, FF.frac, mode).sum(2), FF.frac)
    QI = req(nm.round_shift_to(pq * SI[..., None], ef + FF.frac, FF.frac, mode).sum(2), FF.frac)
    CK = ((pq + eps_p) * (KO[:, :, None] + eps_f)).sum(-1)   # frac ef + F.frac, exact
    CSR = ((pk + eps_p) * (QI[:, :, None] + eps_f)).sum(-1)
    ratio = np.int64((M * consts.ln2 + P // 2) // P)        # ln 2 · M / P, frac ef
    x_al = div(CK, ef + FF.frac, np.broadcast_to(ratio, CK.shape), ef, nc.score, "score", nw=56)
    al, f3 = sigmoid_codes(x_al, nc)
    counters["phi"] += int(np.count_nonzero(f3))
    y = div(CSR, ef + FF.frac, np.broadcast_to(np.int64(consts.ln2), CSR.shape), ef, nc.score,
            "score", nw=56)
    if clamp is not None:
        y = np.minimum(np.maximum(y, -np.int64(consts.c2)), np.int64(consts.c2))
    ec = nm.exp2(nm.sub(y, y.max(-1, keepdims=True)), False, nc)   # e^(CS - max CS)
    ZC = ec.sum(-1, keepdims=True)
    CP = div(np.int64(M) * ec, ef, np.broadcast_to(ZC, ec.shape), ef, FF, "flow")
    W = req(nm.round_shift_to(pk * CP[..., None], ef + FF.frac, FF.frac, mode), FF.frac)  # (B,H,M,E)
    KV = req(nm.round_shift_to(W[..., :, None] * vc[..., None, :], FF.frac + nc.v.frac, FF.frac,
                               mode).sum(2), FF.frac)                                       # (B,H,E,F)
    qkv = req((pq[..., :, None] * KV[:, :, None]).sum(-2), ef + FF.frac)                  # (B,H,P,F)
    out = div(qkv * al[..., None], FF.frac + ef, DI[..., None], FF.frac, nc.out, "out",
              nw=FF.width + nc.exp.width + 1, dw=FF.width)
    sat = dict(nin)
    sat.update({r: counters[r] for r in ("phi", "flow", "score", "out")})
    check_saturation(nc, sat)
    return VariantGolden("flowformer", nc.out.to_float(out), out, sat, counters["div_zero"],
                         config.name, 1.0, 0, 0, {}, {"KO": KO, "QI": QI, "KV": KV})


def flow_quantize(q, k, v, numerics: NumericsConfig):
    """The host's quantization of causal Flow-Attention's inputs: ``(xq, xk, vc, saturated)``
    with x' = x·log2(e) for Q and K in the score format (nearest even; the sigmoid's Exp2
    works in base 2), V in the v format; ``saturated`` counts per role q, k, v. No 1/sqrt(E)
    scale: Flowformer has none."""
    q4, k4, v4 = (np.asarray(x, np.float64) for x in (q, k, v))
    xq, nq = numerics.score.quantize(q4 * LOG2E, "nearest_even")
    xk, nk = numerics.score.quantize(k4 * LOG2E, "nearest_even")
    vc, nv = numerics.v.quantize(v4, "nearest_even")
    return xq, xk, vc, {"q": int(nq), "k": int(nk), "v": int(nv)}


def flowformer_causal_golden(q, k, v, config: FuseMaxConfig, clamp: float = FLOW_CLAMP,
                             eps: float = 1e-6) -> VariantGolden:
    """Causal Flow-Attention (Flow_Attention_Causal), bit-exact, token by token (the cascade
    flowformer-causal). Inputs: x' = x·log2(e) for Q and K in the score format (the sigmoid's
    Exp2 works in base 2; :func:`flow_quantize`), V in the v format. ``F`` =
    :data:`FLOW_FORMAT` (s32.16); φ in the exp format (u16.15); ν = i + 1. Per token, for every
    (b, h) at once (:func:`flow_token_step`, which the schedule executor runs for ``FLOW``):

    ====  ==========================================================================
    φ     φq, φk = :func:`sigmoid_codes` (Exp2 + divide)
    KC    KC += φk, QC += φq (exact sums, frac 15)
    DI    DI = round(Σ_e (φq + ε)(KC + ε) → F), DO likewise (exact dot, one rounding)
    SI    SI = divide(ν, DI) → F, SO = divide(ν, DO) → F  (incoming/outgoing · normal)
    KO    KO = sat(KO + round(φk·SO → F)), QI = sat(QI + round(φq·SI → F))
    AL    AL = sigmoid(divide(Σ_e (φq + ε)(KO + ε), ν·ln 2) in the score format)
    EC    y = clamp(divide(Σ_e (φk + ε)(QI + ε), ν·ln 2), ±c2) with c2 =
          :func:`flow_clamp_code` (c·log2 e); EC = exp2(y − c2) = e^(CS − c) (the constant
          e^c cancels in CP)
    ZC    ZC += EC (exact, frac 15)
    CP    CP = divide(ν·EC, ZC) → F
    KV    W = round(φk·CP → F); KV = sat(KV + round(W·V → F))  (E x F state)
    AV    AV = divide(round(Σ_e φq·KV → F)·AL, DI) → out  (= AL·(φq·SI/ν)·KV, SI/ν = 1/DI)
    ====  ==========================================================================

    ε = 1e-6 is rounded to each operand's fraction bits (0 at 15 and 16 bits: its effect,
    ~1e-6 relative, is below the formats' resolution). Saturation roles: q, k, v (inputs),
    phi, score, flow, out (:data:`FLOW_COUNTERS`).
    """
    q4, k4, v4 = (np.asarray(x, np.float64) for x in (q, k, v))
    B, H, P, E, M, F = attention_dims(q4, k4, v4)
    if P != M:
        raise FuseMaxError(f"causal Flow-Attention needs P = M (one sequence), got P = {P}, M = {M}")
    nc = config.numerics
    consts = FlowConsts.of(nc, clamp, eps)
    xq, xk, vc, nin = flow_quantize(q4, k4, v4, nc)
    counters = new_flow_counters()
    state = FlowState.zeros((B, H), E, F)
    out = np.zeros((B, H, M, F), np.int64)
    for i in range(M):
        out[:, :, i] = flow_token_step(state, xq[:, :, i], xk[:, :, i], vc[:, :, i], i + 1,
                                       consts, counters)
    sat = dict(nin)
    sat.update({r: counters[r] for r in ("phi", "flow", "score", "out")})
    check_saturation(nc, sat)
    return VariantGolden("flowformer-causal", nc.out.to_float(out), out, sat,
                         counters["div_zero"], config.name, 1.0, M * B * H, M * B * H, {},
                         state.as_dict())


# ------------------------------------------------------------------ ACT (attention calibration)

#: Reciprocal 1/RD of each query's final denominator (pass 2; one 1D divide per query, then a
#: multiply per score instead of a divide): u32.30, range [0, 4) (RD >= 1 up to rounding, so
#: 1/RD <= 1); its relative error is at most 2^-31·RD (1.5e-8 at RD = 64).
ACT_RINV_FORMAT = FixedFormat(32, 30, signed=False)
#: Column sums CSUM[m] = Σ_p A[p,m] of the normalised map (pass 2): u48.24. Each product
#: A·(1/RD) is rounded once to 24 fraction bits (error <= 2^-25 per query), then summed
#: exactly; CSUM[m] <= (queries that see key m) <= P, so the 24 integer bits hold P < 2^24
#: queries (larger P saturates and is counted under ``csum``). τ is a code of the same format.
ACT_CSUM_FORMAT = FixedFormat(48, 24, signed=False)
#: Gain g = (RD − β·SS) / (RD − SS) of the non-sink weights (pass 3 finisher, one divide per
#: query): u23.15, range [1, 256) for β in [0, 1]; β is a code with the same 15 fraction bits
#: (0.4 -> 13107/2^15). 23 bits so that the product RN·g of an ``rnv``-format numerator (s40)
#: fits a signed 63-bit product (the int64 twin); its value is bounded anyway (RN·g/2^15 ~
#: (RN/NS)·(RD − β·SS) <= max|V|·RD). g saturates (counted under ``gain``) only at a sink
#: share SS/RD >= 255/(256 − β) (99.77 % of a query's mass at β = 0.4). Its rounding adds at
#: most max|V|·(NS/RD)·2^-16 to an output.
ACT_GAIN_FORMAT = FixedFormat(23, 15, signed=False)
#: Width of the output divide's numerator N = RN·g + β·RS (exact, fraction bits rnv.frac +
#: ACT_GAIN_FORMAT.frac): the widest numerator the ``Divider`` twin takes with no left shift
#: (60 + 2 guard bits = 62); saturation is counted under ``num``.
ACT_NUM_WIDTH = 60
#: Saturation roles of :func:`act_golden` beyond :data:`~fusemax.sw.golden.SAT_ROLES`.
ACT_SAT_ROLES = ("rinv", "csum", "ss", "rs", "gain", "num")


def _act_chunk(state, bqk, valid, vt, sink, nc):
    """One chunk of pass 3 (the split-accumulator FuseMax) for every lane: ``bqk`` (B,H,P,r)
    score codes, ``valid`` broadcastable to it, ``vt`` (B,H,r,F) value codes, ``sink``
    (B,H,r) the keys' S bits. The running max, SLN and PRM are :func:`~fusemax.sw.golden._chunk`'s;
    SLN is split by the key's bit into the sink part (SS, RS) and the rest (RN); RD sums both.
    RD, SS (rd format) and RN, RS (rnv format) are each rounded and rescaled by the same PRM
    exactly as RD and RNV are (so with no sink RD and RN are the plain golden's, bit for bit).
    Returns ``(new state, saturation flags per role)``."""
    mode = nc.rounding
    rm_new, rm_new_v, sln, prm = _chunk_exps(state, bqk, valid, nc)
    sln_s = np.where(sink[:, :, None, :], sln, 0)   # the select on the key's S bit
    sln_n = sln - sln_s
    new = {"RM": rm_new, "RMv": rm_new_v}
    flags = {}
    for name, role, part in (("RD", "rd", sln), ("SS", "ss", sln_s)):
        part_r = nm.round_shift_to(part.sum(-1), nc.exp.frac, nc.rd.frac, mode)
        spd, f1 = nm.rescale(state[name], prm, nc.exp.frac, nc.rd, mode)
        new[name], f2 = nm.requantize(part_r + spd, nc.rd.frac, nc.rd, mode)
        flags[role] = f1 | f2
    for name, role, part in (("RN", "rnv", sln_n), ("RS", "rs", sln_s)):
        part_r = nm.round_shift_to(part @ vt, nc.exp.frac + nc.v.frac, nc.rnv.frac, mode)
        spnv, f3 = nm.rescale(state[name], prm[..., None], nc.exp.frac, nc.rnv, mode)
        new[name], f4 = nm.requantize(part_r + spnv, nc.rnv.frac, nc.rnv, mode)
        flags[role] = f3 | f4
    return new, flags


def act_codes(rd, ss, rn, rs, beta_code: int, nc: NumericsConfig):
    """The ACT output finisher (1D, per query, then per output element) from the final pass-3
    state: ``rd``, ``ss`` (B,H,P) rd codes, ``rn``, ``rs`` (B,H,P,F) rnv codes, β as a code
    with ``ACT_GAIN_FORMAT.frac`` fraction bits.

    NS = RD − SS (exact); G = (RD·2^gf − β·SS) exact (frac rd.frac + gf); g = divide(G, NS)
    into :data:`ACT_GAIN_FORMAT`; N = RN·g + RS·β exact (frac rnv.frac + gf), saturated to
    :data:`ACT_NUM_WIDTH` bits; OUT = divide(N, RD) into ``out``. With SS = 0 (no sink, or row
    0, which sees key 0 only and key 0 is never a sink), g = 1.0 exactly and N = RN·2^gf, so
    OUT is the rounded quotient RN / RD of the plain divide, bit for bit. NS = 0 (every
    non-sink weight underflowed) gives g = 0 (counted as a divide by zero): the redistributed
    mass is lost. Returns ``(out codes, {role: saturated flags}, divide-by-zero count)``."""
    gf = ACT_GAIN_FORMAT.frac
    rd, ss = np.asarray(rd, np.int64), np.asarray(ss, np.int64)
    rn, rs = np.asarray(rn, np.int64), np.asarray(rs, np.int64)
    beta = np.int64(beta_code)
    ns = nm.sub(rd, ss)
    g_num = nm.sub(rd << np.int64(gf), ss * beta)
    w = nc.rd.width + gf + 2
    g, f_g, dz_g = divide_codes(g_num, nc.rd.frac + gf, ns, nc.rd.frac, ACT_GAIN_FORMAT, nc,
                                num_width=w, den_width=nc.rd.width + 1)
    num_fmt = FixedFormat(ACT_NUM_WIDTH, nc.rnv.frac + gf)
    num, f_n = nm.requantize(rn * g[..., None] + rs * beta, num_fmt.frac, num_fmt, nc.rounding)
    out, f_o, dz_o = divide_codes(num, num_fmt.frac, np.broadcast_to(rd[..., None], num.shape),
                                  nc.rd.frac, nc.out, nc, num_width=ACT_NUM_WIDTH,
                                  den_width=nc.rd.width)
    flags = {"gain": f_g, "num": f_n, "out": f_o}
    return out, flags, int(np.count_nonzero(dz_g)) + int(np.count_nonzero(dz_o))


def act_golden(q, k, v, config: FuseMaxConfig, scale=None, causal: bool = True,
               beta: float = 0.4, tau: float = 0.1) -> VariantGolden:
    """ACT attention calibration (GATECH-EIC/ACT ``atten_process_eval``; the cascade
    act-calibration), bit-exact, as three dense passes over the chunks of ``config.rows`` keys
    of the causal T x T map (P = M = T; every lane of a chunk at once, like
    :func:`fusemax_state`). Reference: :func:`fusemax.sw.variants.act_calibration`.

    =======  =================================================================================
    pass 1   the plain FuseMax 1-pass (:func:`fusemax_state`): final RM (score codes), RD
    pass 2   RINV = divide(1, RD) per query (:data:`ACT_RINV_FORMAT`); per chunk A = exp2(BQK −
             RM) (exp format; hidden keys 0), CSUM[m] = sat(Σ_p round(A·RINV → 24 frac bits))
             (:data:`ACT_CSUM_FORMAT`; addends >= 0, so saturating once equals saturating each
             add); S0[m] = CSUM[m] > τ_c·(T − m) with τ_c = round(τ·2^24) (α > τ without a
             per-key divide: T − m is the number of queries that see key m); FIRST = the
             lowest m in S0 (a min-index reduce); S = S0 without FIRST
    pass 3   the split-accumulator FuseMax (:func:`_act_chunk`): RD, SS (sink weights, rd
             format), RN (non-sink numerator), RS (sink numerator; rnv format), all rescaled
             by the same PRM; then :func:`act_codes`: OUT = (RN·g + β·RS) / RD with g = (RD −
             β·SS) / (RD − SS) (:data:`ACT_GAIN_FORMAT`)
    =======  =================================================================================

    Row 0 (A'[0,0] = 1 in the official code) needs nothing: key 0 is never in S (it is FIRST
    or not in S0), so SS[0] = 0 and row 0 is plain attention, = V[0]. When S is empty,
    pass 3's RD, RN are pass 1's RD, RNV and OUT equals :func:`~fusemax.sw.golden.attention_1pass`
    (causal) bit for bit (see :func:`act_codes`), so a head without sinks needs no pass 3:
    ``tiles`` counts 2 passes of the grid per (b, h), plus 1 where S is non-empty
    (``tiles_total`` = 3 passes). β (in [0, 1]) and τ are turned into codes once.

    Accuracy: the redistribution multiplies the non-sink weights by g = 1 + (1 − β)·SS/NS,
    and those weights carry the exp format's absolute precision (2^-16 of the row max), so a
    row whose sinks take nearly all of its mass (NS a few hundred rd codes) loses accuracy in
    proportion to g, well before g saturates: an inherent limit of a fixed-point A, not of
    the finisher's formats.

    Saturation: q, k, v and score (every pass's BQK, summed as the sticky flags would), rd
    (passes 1 and 3), rnv (RNV, RN), out, and :data:`ACT_SAT_ROLES`. ``div_by_zero`` counts the
    reciprocal, gain and output divides by zero. ``extra``: ``S`` (B,H,T) bool sink bits,
    ``FIRST`` (B,H) (−1: S0 empty), ``CSUM_codes`` (B,H,T), ``CSUM`` (floats), ``RINV_codes``
    (B,H,T). ``state``: the final RD, SS, RN, RS, RM of pass 3.
    """
    if not causal:
        raise FuseMaxError("ACT calibrates the causal T x T prefill map (atten_process_eval); "
                           "causal=False is not the official computation")
    beta, tau = float(beta), float(tau)
    if not (0.0 <= beta <= 1.0):
        raise FuseMaxError(f"ACT's beta must be in [0, 1] (it damps the sink columns), got {beta}")
    if not math.isfinite(tau):
        raise FuseMaxError(f"ACT's threshold tau must be finite, got {tau}")
    qc, kc, vc, sat, scale, (B, H, P, E, M, F) = prepare_inputs(q, k, v, config, scale)
    if P != M:
        raise FuseMaxError(f"ACT calibrates the T x T self-attention map: P = {P} queries but "
                           f"M = {M} keys")
    nc = config.numerics
    mode = nc.rounding
    if nc.rnv.width + ACT_GAIN_FORMAT.width > 63:
        raise FuseMaxError(f"ACT's product RN·g needs rnv.width + {ACT_GAIN_FORMAT.width} <= 63 "
                           f"bits; rnv is {nc.rnv.describe()}")
    T = M
    cf = ACT_CSUM_FORMAT.frac
    tau_code = int(round(tau * (1 << cf)))
    if abs(tau_code) * T >= (1 << 62):
        raise FuseMaxError(f"ACT's threshold tau = {tau} times T = {T} does not fit the compare")
    beta_code = int(round(beta * (1 << ACT_GAIN_FORMAT.frac)))
    mask = causal_mask(P, M)
    for role in ACT_SAT_ROLES:
        sat[role] = 0

    # pass 1: plain FuseMax, for each query's final max RM and denominator RD
    first, sat1 = fusemax_state(qc, kc, vc, config, mask)
    for role, n in sat1.items():
        sat[role] += n
    rm, rm_v, rd = first["RM"], first["RMv"], first["RD"]

    # pass 2: column sums of the normalised map, the sink test, FIRST and S
    one = np.ones_like(rd)
    rinv, f_r, dz_r = divide_codes(one, 0, rd, nc.rd.frac, ACT_RINV_FORMAT, nc, num_width=2,
                                   den_width=nc.rd.width)
    sat["rinv"] += int(np.count_nonzero(f_r))
    csum = np.zeros((B, H, M), np.int64)
    R = config.rows
    for j, (bqk, s_flag, valid, _vt) in enumerate(_score_chunks(qc, kc, vc, config, mask)):
        sat["score"] += int(np.count_nonzero(s_flag & valid))
        a = nm.exp2(nm.sub(bqk, rm[..., None]), ~valid | ~rm_v[..., None], nc)
        prob = nm.round_shift_to(a * rinv[..., None], nc.exp.frac + ACT_RINV_FORMAT.frac, cf, mode)
        csum[:, :, j * R: j * R + bqk.shape[-1]] += prob.sum(axis=2)
    csum, f_c = nm.requantize(csum, cf, ACT_CSUM_FORMAT, mode)
    sat["csum"] += int(np.count_nonzero(f_c))
    seen_by = np.arange(T, 0, -1, dtype=np.int64)           # T − m queries see key m
    s0 = csum > np.int64(tau_code) * seen_by
    has = s0.any(-1)
    first_idx = np.where(has, np.argmax(s0, axis=-1), -1)  # the lowest index in S0
    sinks = s0 & (np.arange(M)[None, None, :] != first_idx[..., None])

    # pass 3: split accumulators under the same running max and PRM, then the finisher
    state = {"RM": np.zeros((B, H, P), np.int64), "RMv": np.zeros((B, H, P), bool),
             "RD": np.zeros((B, H, P), np.int64), "SS": np.zeros((B, H, P), np.int64),
             "RN": np.zeros((B, H, P, F), np.int64), "RS": np.zeros((B, H, P, F), np.int64)}
    for j, (bqk, s_flag, valid, vt) in enumerate(_score_chunks(qc, kc, vc, config, mask)):
        sat["score"] += int(np.count_nonzero(s_flag & valid))
        state, flags = _act_chunk(state, bqk, valid, vt, sinks[:, :, j * R: j * R + bqk.shape[-1]], nc)
        _count(flags, sat)
    out, flags, dz = act_codes(state["RD"], state["SS"], state["RN"], state["RS"], beta_code, nc)
    _count(flags, sat)
    check_saturation(nc, sat, config.name)
    grid_bh = _grid(1, 1, P, M, config)
    tiles = int(B * H * 2 * grid_bh + np.count_nonzero(sinks.any(-1)) * grid_bh)
    extra = {"S": sinks, "FIRST": first_idx, "CSUM_codes": csum,
             "CSUM": ACT_CSUM_FORMAT.to_float(csum), "RINV_codes": rinv}
    return VariantGolden("act", nc.out.to_float(out), out, sat,
                         int(np.count_nonzero(dz_r)) + dz, config.name, float(scale), tiles,
                         3 * B * H * grid_bh, extra,
                         {k_: state[k_] for k_ in ("RM", "RD", "SS", "RN", "RS")})
