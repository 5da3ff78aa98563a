"""The one configuration object that drives every artifact (Verilog, compiler, golden, testbench).

:class:`FuseMaxConfig` is a frozen dataclass: array shape (``rows`` = keys per tile M0,
``cols`` = queries per tile P0) plus a :class:`NumericsConfig` (number format per role,
rounding, saturation policy, exp polynomial). Later issues add fields (buffer sizes, ...) by
appending dataclass fields **with defaults**; ``to_json``/``from_json`` and ``digest`` pick them
up automatically, and JSON written before a field existed still loads.

Presets (``PRESETS``, :func:`preset`):

=================  ======  ======  ==========================================================
name               rows    cols    numerics
=================  ======  ======  ==========================================================
``tiny``           4       4       ``fx16``: 16-bit Q/K/V/score/exp/output, wide RD/RNV
``small``          8       8       ``fx16``
``medium``         16      16      ``fx16``
``large``          32      32      ``fx16``
``rect``           8       4       ``fx16`` (non-square: 8 keys x 4 queries per tile)
``wide``           4       8       ``fx16`` (non-square: 4 keys x 8 queries per tile)
``<size>-int8``    as size         ``int8``: 8-bit Q/K/V inputs, every other role as ``fx16``
``tiny-sigmoid``   4       4       ``fx16``, with the sigmoid unit (``sigmoid_unit``) for the
``small-sigmoid``  8       8       sigmoid attention cascades
``tiny-flow``      4       4       ``fx16``, with the Flow-Attention engine (``flow_unit``) for
``small-flow``     8       8       the causal Flowformer cascade
``tiny-entropy``   4       4       ``fx16``, with the entropy output (``entropy_unit``) for
``small-entropy``  8       8       the attention-entropy cascade
=================  ======  ======  ==========================================================

The numerics are documented in ``docs/numerics.md``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from fusemax.errors import FuseMaxError
from fusemax.hw.formats import ROUNDING_MODES, FixedFormat, format_from_dict

#: Saturation policies. ``saturate``: clip to the format and count (the hardware behaviour;
#: the RTL raises a sticky flag per role). ``error``: the golden model raises FuseMaxError on the
#: first saturation (for checking that a workload is in range); the hardware still saturates.
OVERFLOW_POLICIES = ("saturate", "error")

#: Roles that carry a number format, in data-flow order.
FORMAT_ROLES = ("q", "k", "v", "score", "exp", "rd", "rnv", "out")

#: Built-in exp2 polynomials: p(r) = 1 + c1 r + ... + cd r^d ~ 2^r on [0, 1), fitted for
#: minimum maximum relative error with c0 = 1 fixed (so 2^0 is exactly 1). Max relative error
#: of the real-valued polynomial: d=1 4.2e-2, 2 2.2e-3, 3 9.5e-5, 4 3.3e-6, 5 9.3e-8, 6 2.3e-9.
EXP2_COEFFS: dict[int, tuple[float, ...]] = {
    1: (0.937925105753,),
    2: (0.664354369514, 0.332508515095),
    3: (0.695199090207, 0.227223438201, 0.0774520338353),
    4: (0.693042564226, 0.241311446052, 0.0521664748083, 0.0134754061633),
    5: (0.693151326087, 0.240163066977, 0.0558068233244, 0.00900622204168, 0.00187244792567),
    6: (0.693147046344, 0.240229343427, 0.0554848926409, 0.00967656970431, 0.0012455080395,
        0.000216637127554),
}

def _fields_to_dict(obj) -> dict[str, Any]:
    """A dataclass as JSON-ready data: nested formats/configs by their own ``to_dict``,
    tuples as lists."""
    d: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        val = getattr(obj, f.name)
        if hasattr(val, "to_dict"):
            d[f.name] = val.to_dict()
        elif isinstance(val, tuple):
            d[f.name] = list(val)
        else:
            d[f.name] = val
    return d


_FMT_DOC = {
    "q": "query input Q' = Q * scale * log2(e) (the compiler folds the softmax scale and log2(e) into Q)",
    "k": "key input K",
    "v": "value input V",
    "score": "BQK after rounding (log2 units); also LM and RM",
    "exp": "exp2 output: SLN and PRM, values in [0, 1]",
    "rd": "running denominator RD (and SPD)",
    "rnv": "running numerator x V, RNV (and SPNV)",
    "out": "attention output AV = RNV / RD",
}


@dataclass(frozen=True)
class NumericsConfig:
    """Number formats and arithmetic choices of the datapath.

    Fields
    ------
    name : str
        Name of the number system (``fx16``, ``int8``: the ``numerics`` of the presets).
    q, k, v : FixedFormat
        Input formats. Q is quantized *after* multiplying by ``scale * log2(e)``, so BQK is a
        score in log2 units and exp is a base-2 exponential.
    score : FixedFormat
        BQK rounded from the exact dot product (frac ``q.frac + k.frac``); LM and RM share it.
    exp : FixedFormat
        exp2 output (SLN, PRM); must represent 1.0 (the row maximum gives exactly 1).
    rd, rnv : FixedFormat
        Running denominator and numerator accumulators (sized so that M = 65 536 keys cannot
        overflow with the default formats; otherwise they saturate and count).
    out : FixedFormat
        Output of the final divide.
    rounding : str
        ``nearest_even`` (default), ``nearest_away`` or ``floor``; applied at every rounding
        point (score, exp steps, SLNV->RNV, rescales, divide). Input quantization on the host
        is round-to-nearest-even always.
    overflow : str
        ``saturate`` (clip and count) or ``error`` (golden raises on the first saturation).
    exp_degree : int
        Degree d of the exp2 fraction polynomial: d Horner MAC steps + 1 shift/round step.
    exp_coeffs : tuple of float or None
        c1..cd of p(r) = 1 + c1 r + ... + cd r^d; None selects :data:`EXP2_COEFFS`[d].
    exp_frac : int
        Fraction bits of the Horner accumulator (an unsigned ``exp_frac + 1``-bit register
        holding values in [0, 2)); coefficients are rounded to it.
    acc_guard_bits : int
        The BQK accumulator has ``q.width + k.width + acc_guard_bits`` bits, which holds the
        exact dot product for E <= 2**acc_guard_bits.
    """

    name: str = "fx16"
    q: FixedFormat = FixedFormat(16, 12)
    k: FixedFormat = FixedFormat(16, 12)
    v: FixedFormat = FixedFormat(16, 12)
    score: FixedFormat = FixedFormat(16, 10)
    exp: FixedFormat = FixedFormat(16, 15, signed=False)
    rd: FixedFormat = FixedFormat(36, 15)
    rnv: FixedFormat = FixedFormat(40, 16)
    out: FixedFormat = FixedFormat(16, 12)
    rounding: str = "nearest_even"
    overflow: str = "saturate"
    exp_degree: int = 4
    exp_coeffs: tuple[float, ...] | None = None
    exp_frac: int = 16
    acc_guard_bits: int = 8

    def __post_init__(self):
        for role in FORMAT_ROLES:
            f = getattr(self, role)
            if not isinstance(f, FixedFormat):
                raise FuseMaxError(f"numerics.{role} must be a FixedFormat, got {type(f).__name__}")
        if self.rounding not in ROUNDING_MODES:
            raise FuseMaxError(f"numerics.rounding {self.rounding!r} unknown; known: {', '.join(ROUNDING_MODES)}")
        if self.overflow not in OVERFLOW_POLICIES:
            raise FuseMaxError(f"numerics.overflow {self.overflow!r} unknown; known: {', '.join(OVERFLOW_POLICIES)}")
        if not isinstance(self.exp_degree, int) or not 1 <= self.exp_degree <= 8:
            raise FuseMaxError(f"numerics.exp_degree must be an integer in 1..8, got {self.exp_degree!r}")
        if self.exp_coeffs is None:
            if self.exp_degree not in EXP2_COEFFS:
                raise FuseMaxError(f"no built-in exp2 coefficients for degree {self.exp_degree}; "
                                   f"give numerics.exp_coeffs (built-in degrees: {sorted(EXP2_COEFFS)})")
        else:
            object.__setattr__(self, "exp_coeffs", tuple(float(c) for c in self.exp_coeffs))
            if len(self.exp_coeffs) != self.exp_degree:
                raise FuseMaxError(f"numerics.exp_coeffs has {len(self.exp_coeffs)} values, "
                                   f"exp_degree {self.exp_degree} needs {self.exp_degree} (c1..cd)")
            if any(not (0.0 <= c < 2.0) for c in self.exp_coeffs):
                raise FuseMaxError("numerics.exp_coeffs must lie in [0, 2) (the Horner register is unsigned, < 2)")
        if not isinstance(self.exp_frac, int) or not 1 <= self.exp_frac <= 30:
            raise FuseMaxError(f"numerics.exp_frac must be an integer in 1..30, got {self.exp_frac!r}")
        if self.exp.frac > self.exp_frac:
            raise FuseMaxError(f"numerics.exp has {self.exp.frac} fraction bits but the Horner register "
                               f"only exp_frac = {self.exp_frac}; need exp.frac <= exp_frac")
        if self.exp.max_value < 1.0:
            raise FuseMaxError(f"numerics.exp format {self.exp.describe()} cannot represent 1.0")
        if not isinstance(self.acc_guard_bits, int) or not 0 <= self.acc_guard_bits <= 24:
            raise FuseMaxError(f"numerics.acc_guard_bits must be in 0..24, got {self.acc_guard_bits!r}")
        # int64 headroom of the NumPy twins (and sane hardware).
        checks = {
            "BQK accumulator (q.width + k.width + acc_guard_bits)": self.qk_acc_width,
            "RNV x PRM product": self.rnv.width + self.exp.width + 1,
            "RD x PRM product": self.rd.width + self.exp.width + 1,
            "divider numerator": self.div_num_width,
            "exp Horner product": self.exp_frac + 1 + self.score.frac + 1,
        }
        for what, w in checks.items():
            if w > 62:
                raise FuseMaxError(f"{what} needs {w} bits > 62; use narrower formats")

    # ---- derived quantities --------------------------------------------------------
    def coefficients(self) -> tuple[float, ...]:
        """c1..cd as floats (the built-in table when ``exp_coeffs`` is None)."""
        return self.exp_coeffs if self.exp_coeffs is not None else EXP2_COEFFS[self.exp_degree]

    def coefficient_codes(self) -> tuple[int, ...]:
        """Horner constants as integers with ``exp_frac`` fraction bits: (c0, c1, ..., cd), c0 = 1."""
        return (1 << self.exp_frac,) + tuple(int(round(c * (1 << self.exp_frac))) for c in self.coefficients())

    @property
    def qk_acc_width(self) -> int:
        return self.q.width + self.k.width + self.acc_guard_bits

    @property
    def qk_frac(self) -> int:
        return self.q.frac + self.k.frac

    @property
    def exp_in_width(self) -> int:
        """Width of BQK - RM (the exp argument): one bit more than the score."""
        return self.score.width + 1

    @property
    def exp_cycles(self) -> int:
        """Cycles of one exp2 (start to done): exp_degree Horner MAC steps + 1 shift/round."""
        return self.exp_degree + 1

    @property
    def div_shift(self) -> int:
        """AV = RNV / RD: numerator is RNV << div_shift (negative: RD << -div_shift)."""
        return self.out.frac + self.rd.frac - self.rnv.frac

    @property
    def div_num_width(self) -> int:
        return self.rnv.width + max(self.div_shift, 0) + 2

    @property
    def div_quotient_bits(self) -> int:
        """Quotient bits the divider develops: out.width + 1 (one of them the round bit)."""
        return self.out.width + 1

    @property
    def div_cycles(self) -> int:
        """Divider latency, start sampled -> done: 1 load + div_quotient_bits + 1 round/output
        step = out.width + 3 (19 for a 16-bit output)."""
        return self.div_quotient_bits + 2

    @property
    def sigmoid_cycles(self) -> int:
        """Latency of the sigmoid unit (``fusemax.hw.arith.Sigmoid``, the default exp-format
        output), start -> done: the Exp2 (exp_cycles), exp.frac + 2 quotient bits, 1 load and
        1 round/output step = d + exp.frac + 5 (24 for fx16 and int8)."""
        return self.exp_cycles + self.exp.frac + 4

    @property
    def sigmoid_eps_code(self) -> int:
        """The normalised sigmoid attention's epsilon, ``w / (w.sum(-1) + 1e-8)`` (Attention-Sink),
        in RD codes: 0 for ``rd.frac`` < 26 (every preset). The golden divides by RD + this; a
        design with ``sigmoid_unit`` divides by RD alone, so it needs this to be 0."""
        return int(round(1e-8 * (1 << self.rd.frac)))

    def to_dict(self) -> dict[str, Any]:
        return _fields_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NumericsConfig":
        if not isinstance(d, dict):
            raise FuseMaxError(f"numerics must be a JSON object, got {d!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise FuseMaxError(f"unknown numerics field(s) {sorted(unknown)}; known: {sorted(names)}")
        kw: dict[str, Any] = {}
        for key, val in d.items():
            if key in FORMAT_ROLES:
                kw[key] = format_from_dict(val)
            elif key == "exp_coeffs":
                kw[key] = None if val is None else tuple(val)
            else:
                kw[key] = val
        return cls(**kw)

    def describe(self) -> str:
        lines = [f"numerics {self.name}: rounding {self.rounding}, overflow {self.overflow}"]
        for role in FORMAT_ROLES:
            lines.append(f"  {role:6s} {getattr(self, role).describe():40s} {_FMT_DOC[role]}")
        lines.append(f"  exp2: degree {self.exp_degree} Horner on an unsigned {self.exp_frac + 1}-bit "
                     f"register (frac {self.exp_frac}), {self.exp_cycles} cycles")
        return "\n".join(lines)


def _fx16() -> NumericsConfig:
    return NumericsConfig()


def _int8() -> NumericsConfig:
    return NumericsConfig(
        name="int8",
        q=FixedFormat(8, 6),
        k=FixedFormat(8, 5),
        v=FixedFormat(8, 5),
    )


#: Named number systems (the ``numerics`` column of the preset table).
NUMERICS_PRESETS = {"fx16": _fx16, "int8": _int8}


@dataclass(frozen=True)
class FuseMaxConfig:
    """A FuseMax instance: ``rows`` x ``cols`` 2D array (rows = keys per tile M0, cols =
    queries per tile P0) with a 1D array of ``cols`` PEs, and its numerics.

    Add fields with defaults only (JSON written earlier must keep loading).
    """

    #: Name of the configuration (a preset's name; names build directories and reports).
    name: str
    #: Rows of the 2D array = keys per tile (M0); also the lanes of a K/V buffer line.
    rows: int
    #: Columns of the 2D array = queries per tile (P0) = PEs of the 1D array.
    cols: int
    #: Number formats and arithmetic choices (:class:`NumericsConfig`, docs/numerics.md).
    numerics: NumericsConfig = field(default_factory=NumericsConfig)
    #: Largest E the Q buffer and a K chunk hold (lines per query block / per chunk).
    max_e: int = 64
    #: Largest F a V chunk and the RNV register file of each 1D PE hold.
    max_f: int = 64
    #: External memory address width, in lines of ``mem_lanes`` 16-bit words.
    mem_addr_width: int = 20
    #: Read latency of the simulation memory model, cycles (>= 1).
    mem_latency: int = 4
    #: Give every 2D PE a sigmoid reciprocal (``fusemax.hw.arith.SigmoidReciprocal``, sharing
    #: the PE's Exp2) and the 1D PEs a no-max mode, for the sigmoid attention cascades
    #: (``sigmoid-norm``, ``sigmoid-nonorm``; schedule instruction ``MODE``). +542
    #: cells per 2D PE (+10 %; docs/synthesis.md); off by default.
    sigmoid_unit: bool = False
    #: Add the Flow-Attention engine (``fusemax.hw.flow.FlowEngine``) for the causal
    #: Flowformer cascade (``flowformer-causal``; schedule instructions ``FLOWC``, ``FLOW``): a
    #: token-serial unit beside the arrays, ``cols`` lanes wide for its E x F state; +105,900
    #: cells and 18,720 bytes of memory on ``tiny`` (+52 %; docs/synthesis.md). Needs Q and K
    #: words as wide as the score format (the host stores x·log2(e) in score codes); off by
    #: default.
    flow_unit: bool = False
    #: Add the entropy output for the ``attention-entropy`` cascade (schedule ``MODE
    #: entropy=1``): two more score registers per 2D PE and one more MAC step per tile
    #: (RT += SLN·BQK, F + 1 cycles of SLNV), an RT entry in each 1D PE's register file, and
    #: one entropy finisher (``fusemax.hw.entropy.EntropyUnit``: log2, multiplier, divider)
    #: that computes H per query at the end of a block and stores it as line F of the
    #: block's output (docs/variants.md); +15,465 cells on ``tiny`` (+7.6 %;
    #: docs/synthesis.md); off by default.
    entropy_unit: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise FuseMaxError("config name must be a non-empty string")
        for attr in ("rows", "cols"):
            v = getattr(self, attr)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise FuseMaxError(f"config {attr} must be a positive integer, got {v!r}")
            if v > 4096:
                raise FuseMaxError(f"config {attr} = {v} is larger than supported (4096)")
        if not isinstance(self.numerics, NumericsConfig):
            raise FuseMaxError("config numerics must be a NumericsConfig")
        limits = {"max_e": (1, 4096), "max_f": (1, 4096), "mem_addr_width": (8, 26),
                  "mem_latency": (1, 64)}
        if not isinstance(self.sigmoid_unit, bool):
            raise FuseMaxError(f"config sigmoid_unit must be true or false, got {self.sigmoid_unit!r}")
        if self.sigmoid_unit and self.numerics.sigmoid_eps_code:
            raise FuseMaxError(
                f"config sigmoid_unit with numerics.rd {self.numerics.rd.describe()}: the normalised "
                f"sigmoid's epsilon 1e-8 is {self.numerics.sigmoid_eps_code} RD codes, and the 1D PE "
                f"divides by RD alone (exact for rd.frac < 26)")
        if not isinstance(self.entropy_unit, bool):
            raise FuseMaxError(f"config entropy_unit must be true or false, got {self.entropy_unit!r}")
        if self.entropy_unit:
            self._check_entropy_numerics()
        if not isinstance(self.flow_unit, bool):
            raise FuseMaxError(f"config flow_unit must be true or false, got {self.flow_unit!r}")
        if self.flow_unit:
            if max(self.rows, self.cols) > 512:
                raise FuseMaxError(
                    f"config flow_unit with a {self.rows} x {self.cols} array: FLOW's lane fields "
                    f"are 9 bits, so rows and cols must be at most 512")
            n = self.numerics
            for role in ("q", "k"):
                if getattr(n, role).width < n.score.width:
                    raise FuseMaxError(
                        f"config flow_unit: numerics.{role} is {getattr(n, role).width} bits but the "
                        f"flow engine reads score codes ({n.score.describe()}) from the {role.upper()} "
                        f"buffer; give {role} at least {n.score.width} bits (e.g. the fx16 numerics)")
        for attr, (lo, hi) in limits.items():
            v = getattr(self, attr)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise FuseMaxError(f"config {attr} must be an integer in {lo}..{hi}, got {v!r}")
        for role in ("q", "k", "v", "out"):
            width = getattr(self.numerics, role).width
            if width > 16:
                raise FuseMaxError(f"numerics.{role} is {width} bits; memory words are 16 bits, "
                                   f"so inputs and outputs must be at most 16 bits wide")
        n = self.numerics
        if n.exp.width + self.slnv_operand_width + 1 + self.row_bits > 62:
            raise FuseMaxError("SLNV column sum too wide for the int64 model; narrow exp/v or rows")

    def _check_entropy_numerics(self) -> None:
        from fusemax.sw.golden_variants import check_entropy_numerics  # (it imports this module)

        try:
            check_entropy_numerics(self.numerics)
        except FuseMaxError as e:
            raise FuseMaxError(f"config {self.name} with entropy_unit: {e}") from None

    # ---- derived widths of the column reductions ------------------------------------
    @property
    def row_bits(self) -> int:
        """Extra bits a sum over the ``rows`` keys of a tile needs."""
        return max(1, math.ceil(math.log2(self.rows))) if self.rows > 1 else 0

    @property
    def sld_width(self) -> int:
        """SLD = exact sum over m0 of SLN (signed, frac numerics.exp.frac)."""
        return self.numerics.exp.width + 1 + self.row_bits

    @property
    def slnv_operand_width(self) -> int:
        """Bits of the second MAC operand of the SLNV step: V, and with ``entropy_unit`` also
        the score (the RT step multiplies SLN by BQK)."""
        n = self.numerics
        return max(n.v.width, n.score.width) if self.entropy_unit else n.v.width

    @property
    def slnv_width(self) -> int:
        """SLNV = exact sum over m0 of SLN * V (signed, frac exp.frac + v.frac); with
        ``entropy_unit`` it also carries SLNQ = sum of SLN * BQK (frac exp.frac + score.frac)."""
        n = self.numerics
        return n.exp.width + 1 + self.slnv_operand_width + self.row_bits

    @property
    def mem_lanes(self) -> int:
        """16-bit words per external memory line: one lane per row or column."""
        return max(self.rows, self.cols)

    @property
    def mem_line_bits(self) -> int:
        return 16 * self.mem_lanes

    # ---- serialization ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _fields_to_dict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FuseMaxConfig":
        if not isinstance(d, dict):
            raise FuseMaxError(f"a config must be a JSON object, got {type(d).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(d) - set(fields)
        if unknown:
            raise FuseMaxError(f"unknown config field(s) {sorted(unknown)}; known: {sorted(fields)}")
        missing = [n for n, f in fields.items() if n not in d and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise FuseMaxError(f"config is missing field(s) {missing}")
        kw: dict[str, Any] = {}
        for key, val in d.items():
            f = fields[key]
            default = f.default if f.default is not dataclasses.MISSING else (
                f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
            if hasattr(type(default), "from_dict") and isinstance(val, dict):
                kw[key] = type(default).from_dict(val)
            elif isinstance(default, tuple) and isinstance(val, list):
                kw[key] = tuple(val)
            else:
                kw[key] = val
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> "FuseMaxConfig":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FuseMaxError(f"config JSON does not parse: {exc}") from None
        return cls.from_dict(d)

    def digest(self) -> str:
        """Stable 16-hex-digit hash of everything in the config (keys Verilator build caches).

        Independent of dict order and of Python's hash seed; equal configs give equal digests.
        """
        canon = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canon.encode()).hexdigest()[:16]

    def replace(self, **changes) -> "FuseMaxConfig":
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        return (f"config {self.name}: {self.rows} rows (keys/tile) x {self.cols} cols (queries/tile)\n"
                + self.numerics.describe())


_SIZES = {"tiny": (4, 4), "small": (8, 8), "medium": (16, 16), "large": (32, 32), "rect": (8, 4),
          "wide": (4, 8)}


def _build_presets() -> dict[str, FuseMaxConfig]:
    out: dict[str, FuseMaxConfig] = {}
    for size, (r, c) in _SIZES.items():
        out[size] = FuseMaxConfig(size, r, c, NUMERICS_PRESETS["fx16"]())
    for size, (r, c) in _SIZES.items():
        out[f"{size}-int8"] = FuseMaxConfig(f"{size}-int8", r, c, NUMERICS_PRESETS["int8"]())
    for size in ("tiny", "small"):
        out[f"{size}-sigmoid"] = out[size].replace(name=f"{size}-sigmoid", sigmoid_unit=True)
        out[f"{size}-flow"] = out[size].replace(name=f"{size}-flow", flow_unit=True)
        out[f"{size}-entropy"] = out[size].replace(name=f"{size}-entropy", entropy_unit=True)
    return out


#: Named configurations (see the module docstring).
PRESETS: dict[str, FuseMaxConfig] = _build_presets()


def preset(name: str) -> FuseMaxConfig:
    """The preset called ``name``; FuseMaxError listing the known names otherwise."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise FuseMaxError(f"unknown config preset {name!r}; known presets: {', '.join(PRESETS)}") from None


def load_config(name_or_path: str) -> FuseMaxConfig:
    """A preset name, or a path to a JSON file written by :meth:`FuseMaxConfig.to_json`."""
    if name_or_path in PRESETS:
        return PRESETS[name_or_path]
    if name_or_path.endswith(".json"):
        try:
            with open(name_or_path) as fh:
                return FuseMaxConfig.from_json(fh.read())
        except OSError as exc:
            raise FuseMaxError(f"cannot read config file {name_or_path!r}: {exc.strerror}") from None
    return preset(name_or_path)
