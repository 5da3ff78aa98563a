"""The paper's analytical cost model (FuseMax, MICRO 2024, section VI; reference/fusemax.md 6.3).

Designs (:data:`DESIGNS`):

``fusemax``       the 1-pass cascade with the FuseMax binding (+Binding): both arrays busy every
                  cycle, tiles software-pipelined and interleaved.
``architecture``  +Architecture: FuseMax's arrays and Einsum-to-array assignment, one tile at a
                  time (no interleaving): every tile waits for the array's fill and drain.
``cascade``       +Cascade: the 1-pass cascade on FLAT's hardware (only QK and SLNV on the 2D
                  array; every softmax Einsum on the 1D array, exp on FLAT's 1-cycle exp unit).
``flat``          FLAT: fused QK / AV on the 2D array, the 3-pass softmax on the 1D array
                  (max, exp-subtract, sum, divide, one element per 1D PE per cycle); the score
                  rows live on chip while they fit, else QK and A go to DRAM.
``unfused``       QK, 3-pass softmax and AV as separate phases, each writing its output to DRAM;
                  the phases run one after another.

Everything is counted in *tiles*: a tile is ``rows`` keys x ``cols`` queries (the paper's
M0 x P0 = 256 x 256). With ``U`` = number of tiles = B*H*ceil(M/rows)*ceil(P/cols) and
``A_V`` = B*H*ceil(P/cols)*F*div (the AV divides: F per query, one divider per 1D lane, ``div``
cycles each), the per-tile costs in cycles are (x = exp + 1 for the subtract):

* 2D: QK E, LM 1, SLN x, SLD 1, SLNV F;
* 1D: RM 1, PRM x, SPD 1, RD 1, SPNV F, RNV F; AV (A_V in total).

and the designs combine them (reference 6.3; checked against the artifact's numbers)::

    fusemax       max(U(E+1), U(F+1) + A_V) + U*1 + U*max(x+1, x+1) + U*F
    architecture  max(U(E+1), U + A_V) + U*fill_drain + U + U*(x+1) + max(U*F, 2U*F)
    cascade       max(U(E+F), U(rows*(1 + x_flat + 1) + 1 + x_flat + 1 + F + 1 + F) + A_V)
    flat          max(memory, U(E+F), U*4*rows)
    unfused       sum over the phases QK, softmax, AV of max(phase memory, phase compute)

with ``fill_drain = (rows + cols) / 2`` (= N on the paper's N x N array) and ``x_flat`` = 2
(FLAT's 1-cycle exp unit + subtract). Every design except FLAT and unfused is
``max(compute, memory)`` with memory = DRAM bytes / bandwidth (never the bound at the paper's
configuration). The model ignores kernel fill/drain, edge tiles (a partial tile costs a full
one), the latency (not the throughput) of the column reductions and of the divider, port
conflicts and K/V / Q swap overheads; every Einsum is 100 % busy while it runs.

Entry points: :func:`evaluate` (one design, one workload, one hardware), :func:`paper_table`
(the reproduction of the paper's table), :func:`predict_rtl` (our RTL configurations).
See ``docs/model.md``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fusemax.errors import FuseMaxError
from fusemax.sw.attention_io import parse_dims, parse_length  # noqa: F401  (parse_length re-exported)

#: Design names, in the order the tables print them.
DESIGNS = ("fusemax", "flat", "unfused", "cascade", "architecture")

_DESIGN_TITLES = {
    "fusemax": "FuseMax (+Binding)",
    "flat": "FLAT",
    "unfused": "unfused",
    "cascade": "+Cascade",
    "architecture": "+Architecture",
}

MiB = 2 ** 20


# ---------------------------------------------------------------------------------------------
# inputs


def _posint(what: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        try:
            import numpy as np  # noqa: PLC0415  (NumPy integers are fine)

            if isinstance(v, np.integer):
                v = int(v)
        except ImportError:  # pragma: no cover
            pass
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise FuseMaxError(f"{what} must be a positive integer, got {v!r}")
    return v


def _posnum(what: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0) or math.isinf(v):
        raise FuseMaxError(f"{what} must be a positive finite number, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class Workload:
    """One attention workload.

    Fields
    ------
    B, H : int
        Batch and heads (outer loops; every (b, h) is an independent attention).
    M, P : int
        Keys and queries (sequence length; M = P for self-attention).
    E, F : int
        Head dimension of Q/K and of V.
    name : str
        Label for tables (e.g. ``"BERT 1K"``).
    """

    B: int
    H: int
    M: int
    P: int
    E: int
    F: int
    name: str = ""

    def __post_init__(self):
        for k in ("B", "H", "M", "P", "E", "F"):
            object.__setattr__(self, k, _posint(f"workload {k}", getattr(self, k)))

    @classmethod
    def of(cls, shape: Any) -> "Workload":
        """A Workload from a Workload, an object with B,H,M,P,E,F attributes (the compiler's
        Shape), a mapping, or a ``"B=1,H=2,M=64,P=64,E=16,F=16"`` string."""
        if isinstance(shape, Workload):
            return shape
        if isinstance(shape, str):
            return parse_shape(shape)
        if isinstance(shape, Mapping):
            missing = [k for k in "BHMPEF" if k not in shape]
            extra = sorted(set(shape) - set("BHMPEF") - {"name"})
            if missing or extra:
                raise FuseMaxError(f"a shape needs exactly B, H, M, P, E, F; missing "
                                   f"{missing or 'none'}, unknown {extra or 'none'}")
            return cls(**{k: shape[k] for k in "BHMPEF"}, name=str(shape.get("name", "")))
        if all(hasattr(shape, k) for k in "BHMPEF"):
            return cls(*(getattr(shape, k) for k in "BHMPEF"))
        raise FuseMaxError(f"cannot read a workload shape from {shape!r}")

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in "BHMPEF"}


def parse_shape(text: str) -> Workload:
    """``"B=64,H=12,M=1K,P=1K,E=64,F=64"`` -> Workload (K/M suffixes are powers of two)."""
    return Workload.of(parse_dims(text))


def length_label(n: int) -> str:
    """4096 -> ``"4K"``, 1048576 -> ``"1M"``."""
    if n % 2 ** 20 == 0:
        return f"{n // 2 ** 20}M"
    if n % 2 ** 10 == 0:
        return f"{n // 2 ** 10}K"
    return str(n)


@dataclass(frozen=True)
class Hardware:
    """The machine a design runs on.

    Fields
    ------
    rows, cols : int
        2D array: ``rows`` keys (M0) x ``cols`` queries (P0) per tile; the 1D array has ``cols``
        PEs, one per query column.
    clock_hz : float
        Clock (paper: 940 MHz).
    dram_bytes_per_s : float
        DRAM bandwidth (paper: 400 * 2**30 B/s).
    buffer_bytes : int
        Global buffer (paper: 16 MiB for FuseMax / +Architecture, 32 MiB for FLAT / unfused /
        +Cascade, which run on FLAT's hardware).
    exp_cycles : int
        Cycles of one exp on a MAC-based PE (paper: 6 MAC steps); SLN and PRM cost
        ``exp_cycles + 1`` (the subtraction).
    div_cycles : int
        Cycles a 1D lane's divider is busy per divide (paper: 1, pipelined; our RTL: the
        divider's latency, it is not pipelined).
    flat_exp_cycles : int
        FLAT's dedicated exp unit (1 element per cycle); used by +Cascade, FLAT and unfused.
    word_bytes : int
        Bytes per value in DRAM and in the buffer (paper: 2).
    flat_offchip_row_tile : int
        Query rows per block when FLAT keeps QK and A in DRAM (the artifact's mapping at
        >= 256K tokens: row granularity, 1024 rows).
    name : str
        Label.
    """

    rows: int = 256
    cols: int = 256
    clock_hz: float = 940e6
    dram_bytes_per_s: float = 400 * 2 ** 30
    buffer_bytes: int = 16 * MiB
    exp_cycles: int = 6
    div_cycles: int = 1
    flat_exp_cycles: int = 1
    word_bytes: int = 2
    flat_offchip_row_tile: int = 1024
    name: str = ""

    def __post_init__(self):
        for k in ("rows", "cols", "buffer_bytes", "exp_cycles", "div_cycles", "flat_exp_cycles",
                  "word_bytes", "flat_offchip_row_tile"):
            object.__setattr__(self, k, _posint(f"hardware {k}", getattr(self, k)))
        for k in ("clock_hz", "dram_bytes_per_s"):
            object.__setattr__(self, k, _posnum(f"hardware {k}", getattr(self, k)))

    @property
    def bytes_per_cycle(self) -> float:
        return self.dram_bytes_per_s / self.clock_hz

    @property
    def fill_drain(self) -> float:
        """Cycles a tile waits for the 2D array's fill and drain without interleaving
        (+Architecture): N on the paper's N x N array, (rows + cols) / 2 in general."""
        return (self.rows + self.cols) / 2

    def replace(self, **changes) -> "Hardware":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The paper's FuseMax hardware (256 x 256, 940 MHz, 400 * 2**30 B/s, 16 MiB buffer).
PAPER_FUSEMAX_HW = Hardware(name="paper FuseMax (16 MiB)")
#: FLAT's cloud configuration as the paper models it (32 MiB buffer); also unfused and +Cascade.
PAPER_FLAT_HW = Hardware(buffer_bytes=32 * MiB, name="paper FLAT cloud (32 MiB)")


def paper_hardware(design: str, rows: int = 256, cols: int | None = None) -> Hardware:
    """The paper's hardware for ``design`` (FLAT's 32 MiB buffer for flat / unfused / cascade),
    optionally with another array size."""
    check_design(design)
    base = PAPER_FUSEMAX_HW if design in ("fusemax", "architecture") else PAPER_FLAT_HW
    return base.replace(rows=_posint("array rows", rows), cols=_posint("array cols", cols or rows))


@dataclass(frozen=True)
class Model:
    """A transformer's attention layer as the paper evaluates it (reference 6.1)."""

    name: str
    H: int
    E: int
    F: int
    B: int = 64

    def workload(self, seq: int) -> Workload:
        """Self-attention at ``seq`` tokens: M = P = seq."""
        return Workload(self.B, self.H, seq, seq, self.E, self.F, name=f"{self.name} {length_label(seq)}")


#: The paper's four models (batch 64).
BERT = Model("BERT", H=12, E=64, F=64)
TRXL = Model("TrXL", H=16, E=64, F=64)
T5 = Model("T5", H=8, E=64, F=64)
XLM = Model("XLM", H=16, E=128, F=128)
MODELS: dict[str, Model] = {m.name: m for m in (BERT, TRXL, T5, XLM)}
#: The paper's sequence lengths.
PAPER_LENGTHS = tuple(2 ** k for k in (10, 12, 14, 16, 18, 20))


def model(name: str) -> Model:
    for key, m in MODELS.items():
        if key.lower() == str(name).lower():
            return m
    raise FuseMaxError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")


def check_design(design: str) -> str:
    if design not in DESIGNS:
        raise FuseMaxError(f"unknown design {design!r}; known designs: {', '.join(DESIGNS)}")
    return design


# ---------------------------------------------------------------------------------------------
# results


@dataclass
class EinsumCost:
    """Cycles one Einsum keeps its array busy, summed over every tile."""

    name: str
    array: str  # "2D", "1D" or "DRAM" (an unfused phase's memory time)
    cycles: float
    per_tile: float


@dataclass
class Result:
    """What the model says about one design on one workload and hardware.

    Fields
    ------
    design, workload, hardware
        The inputs.
    tiles : int
        U = B*H*ceil(M/rows)*ceil(P/cols) (computed tiles; causal skipping counted).
    einsums : list of EinsumCost
        Per-Einsum busy cycles on their array.
    busy_2d, busy_1d : float
        Array-cycles each array is busy (sum of its Einsums).
    compute_cycles : float
        Compute latency as the design's binding composes the Einsums.
    memory_cycles : float
        DRAM bytes / bandwidth, in cycles (for unfused, the sum of its phases' memory times).
    cycles : float
        Total latency in cycles; ``seconds`` = cycles / clock.
    bound : str
        ``"compute"`` or ``"memory"``.
    dram_bytes : float
        DRAM traffic.
    p1 : int or None
        Query blocks of ``cols`` queries resident at once (FuseMax-style designs' P1 rule).
    util_2d, util_1d : float
        busy / (cycles) for each array (each PE of an array equally busy).
    notes : list of str
        How this point was computed (memory-bound, spilled, off-chip, ...).
    """

    design: str
    workload: Workload
    hardware: Hardware
    tiles: int
    einsums: list[EinsumCost]
    busy_2d: float
    busy_1d: float
    compute_cycles: float
    memory_cycles: float
    cycles: float
    dram_bytes: float
    p1: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.cycles / self.hardware.clock_hz

    @property
    def bound(self) -> str:
        return "memory" if self.memory_cycles > self.compute_cycles else "compute"

    @property
    def per_tile_cycles(self) -> float:
        return self.cycles / self.tiles

    @property
    def util_2d(self) -> float:
        return self.busy_2d / self.cycles

    @property
    def util_1d(self) -> float:
        return self.busy_1d / self.cycles

    def as_dict(self, einsums: bool = True) -> dict[str, Any]:
        d = {
            "design": self.design,
            "workload": {**self.workload.as_dict(), "name": self.workload.name},
            "hardware": self.hardware.name or f"{self.hardware.rows}x{self.hardware.cols}",
            "tiles": self.tiles,
            "cycles": self.cycles,
            "per_tile_cycles": self.per_tile_cycles,
            "seconds": self.seconds,
            "compute_cycles": self.compute_cycles,
            "memory_cycles": self.memory_cycles,
            "bound": self.bound,
            "dram_bytes": self.dram_bytes,
            "p1": self.p1,
            "util_2d": self.util_2d,
            "util_1d": self.util_1d,
            "notes": list(self.notes),
        }
        if einsums:
            d["einsums"] = [dataclasses.asdict(e) for e in self.einsums]
        return d


# ---------------------------------------------------------------------------------------------
# the model


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def count_tiles(w: Workload, rows: int, cols: int, causal: bool = False) -> int:
    """Tiles of ``rows`` keys x ``cols`` queries to compute. Causal (query p sees key m iff
    m <= p + M - P): a tile is skipped when no key in it is visible to any query in it."""
    M1, P2 = _ceil(w.M, rows), _ceil(w.P, cols)
    if not causal:
        return w.B * w.H * M1 * P2
    per_bh = 0
    for i in range(P2):
        p_max = min((i + 1) * cols, w.P) - 1
        last_key = min(w.M - 1, p_max + w.M - w.P)
        per_bh += 0 if last_key < 0 else last_key // rows + 1
    return w.B * w.H * per_bh


def p1_sizing(w: Workload, hw: Hardware) -> int:
    """The P1 rule (reference 5.3): query blocks of ``cols`` queries kept resident.

    available = buffer - word*rows*(E+F) (one K and one V chunk; the artifact's 2*256*(E+F) B);
    per query (E + 1 + 1 + F) words (Q, RM, RD, RNV); P1 = min(available // (per_query * cols),
    P2), rounded down to a divisor of P2 = ceil(P / cols). At least 1 (a buffer that cannot hold
    one block is reported by :func:`evaluate` as a note, not an error).
    """
    P2 = _ceil(w.P, hw.cols)
    avail = hw.buffer_bytes - hw.word_bytes * hw.rows * (w.E + w.F)
    per_block = (w.E + 2 + w.F) * hw.word_bytes * hw.cols
    p1 = max(1, min(avail // per_block if avail > 0 else 0, P2))
    while P2 % p1:
        p1 -= 1
    return p1


def fusemax_dram_bytes(w: Workload, hw: Hardware, p1: int | None = None) -> float:
    """DRAM traffic of the 1-pass designs (reference 5.3):
    word * B*H * [P*E + P*F + ceil(P / (P1*cols)) * M * (E + F)] (Q read, AV written once; K and
    V read once per resident query block)."""
    p1 = p1_sizing(w, hw) if p1 is None else p1
    return hw.word_bytes * w.B * w.H * (w.P * (w.E + w.F) + _ceil(w.P, p1 * hw.cols) * w.M * (w.E + w.F))


def evaluate(design: str, w: Any, hw: Hardware | None = None, causal: bool = False) -> Result:
    """The cost model of ``design`` for workload ``w`` on ``hw`` (default: the paper's hardware
    for that design).

    ``causal``: only the tiles with a visible key are computed (:func:`count_tiles`); the AV
    divides and the DRAM traffic are not reduced (an upper bound for the baselines)."""
    check_design(design)
    w = Workload.of(w)
    hw = paper_hardware(design) if hw is None else hw
    if not isinstance(hw, Hardware):
        raise FuseMaxError(f"hardware must be a Hardware, got {type(hw).__name__}")
    U = count_tiles(w, hw.rows, hw.cols, causal)
    if U == 0:
        raise FuseMaxError(f"workload {w.as_dict()} computes no tile (every key masked)")
    P2 = _ceil(w.P, hw.cols)
    A_V = w.B * w.H * P2 * w.F * hw.div_cycles
    return {"fusemax": _fusemax, "architecture": _architecture, "cascade": _cascade,
            "flat": _flat, "unfused": _unfused}[design](w, hw, U, A_V)


def _e(name: str, array: str, cycles: float, U: int) -> EinsumCost:
    return EinsumCost(name, array, float(cycles), float(cycles) / U)


def _fusemax_einsums(w: Workload, hw: Hardware, U: int, A_V: float) -> list[EinsumCost]:
    x = hw.exp_cycles + 1
    return [
        _e("QK", "2D", U * w.E, U), _e("LM", "2D", U, U), _e("SLN", "2D", U * x, U),
        _e("SLD", "2D", U, U), _e("SLNV", "2D", U * w.F, U),
        _e("RM", "1D", U, U), _e("PRM", "1D", U * x, U), _e("SPD", "1D", U, U),
        _e("RD", "1D", U, U), _e("SPNV", "1D", U * w.F, U), _e("RNV", "1D", U * w.F, U),
        _e("AV", "1D", A_V, U),
    ]


def _busy(einsums: list[EinsumCost], array: str) -> float:
    return sum(e.cycles for e in einsums if e.array == array)


def _one_pass(design: str, w: Workload, hw: Hardware, U: int, A_V: float, einsums, compute) -> Result:
    p1 = p1_sizing(w, hw)
    traffic = fusemax_dram_bytes(w, hw, p1)
    mem = traffic / hw.bytes_per_cycle
    notes = []
    if hw.buffer_bytes < hw.word_bytes * (hw.rows * (w.E + w.F) + hw.cols * (w.E + w.F + 2)):
        notes.append("buffer too small for one K/V chunk and one query block; P1 = 1 assumed")
    if mem > compute:
        notes.append("memory-bound")
    return Result(design, w, hw, U, einsums, _busy(einsums, "2D"), _busy(einsums, "1D"),
                  float(compute), float(mem), float(max(compute, mem)), float(traffic), p1, notes)


def _fusemax(w, hw, U, A_V) -> Result:
    x = hw.exp_cycles + 1
    # Epoch: {QK, LM} on 2D against {RNV, RD} + the AV divides on 1D; RM (1D) alone; {SLN, SLD}
    # against {PRM, SPD}; SLNV against SPNV (reference 5.4 / 6.3).
    compute = (max(U * (w.E + 1), U * (w.F + 1) + A_V) + U * 1 + U * max(x + 1, x + 1)
               + U * w.F)
    return _one_pass("fusemax", w, hw, U, A_V, _fusemax_einsums(w, hw, U, A_V), compute)


def _architecture(w, hw, U, A_V) -> Result:
    x = hw.exp_cycles + 1
    compute = (max(U * (w.E + 1), U + A_V) + U * hw.fill_drain + U + U * (x + 1)
               + max(U * w.F, 2 * U * w.F))
    return _one_pass("architecture", w, hw, U, A_V, _fusemax_einsums(w, hw, U, A_V), compute)


def _cascade(w, hw, U, A_V) -> Result:
    xf = hw.flat_exp_cycles + 1
    r = hw.rows  # elements of a tile per 1D PE: rows*cols / cols
    einsums = [
        _e("QK", "2D", U * w.E, U), _e("SLNV", "2D", U * w.F, U),
        _e("LM", "1D", U * r, U), _e("RM", "1D", U, U), _e("PRM", "1D", U * xf, U),
        _e("SPD", "1D", U, U), _e("SPNV", "1D", U * w.F, U), _e("SLN", "1D", U * r * xf, U),
        _e("SLD", "1D", U * r, U), _e("RD", "1D", U, U), _e("RNV", "1D", U * w.F, U),
        _e("AV", "1D", A_V, U),
    ]
    compute = max(_busy(einsums, "2D"), _busy(einsums, "1D"))
    return _one_pass("cascade", w, hw, U, A_V, einsums, compute)


def _softmax3_einsums(w, hw, U) -> list[EinsumCost]:
    r = hw.rows
    # FLAT's dedicated exp unit is pipelined: one exp-subtract per element per cycle.
    return [_e("M", "1D", U * r, U), _e("SN", "1D", U * r, U), _e("SD", "1D", U * r, U),
            _e("A", "1D", U * r, U)]


def flat_placement(w: Workload, hw: Hardware) -> tuple[str, float]:
    """Where FLAT keeps the score rows: ``("onchip", spill)`` or ``("offchip", 1.0)``.

    FLAT's finest legal granularity is a block of ``cols`` query rows whose full score rows
    (cols * M words) must be on chip for the 3-pass softmax. If they fit, nothing spills; if
    up to half of them spill, FLAT spills that fraction (the artifact: 50 % at 128K, BERT);
    beyond that QK and A live in DRAM (the artifact's mapping from 256K on).
    """
    need = hw.cols * w.M * hw.word_bytes
    if need <= hw.buffer_bytes:
        return "onchip", 0.0
    spill = 1.0 - hw.buffer_bytes / need
    if spill <= 0.5:
        return "onchip", spill
    return "offchip", 1.0


def _flat(w, hw, U, A_V) -> Result:
    einsums = [_e("QK", "2D", U * w.E, U), _e("AV", "2D", U * w.F, U)] + _softmax3_einsums(w, hw, U)
    bh, wb = w.B * w.H, hw.word_bytes
    where, spill = flat_placement(w, hw)
    notes = []
    if where == "offchip":
        R = hw.flat_offchip_row_tile
        # QK written, read by the max pass, A written, read by AV: 4 M*P; Q and AV once; K and
        # V once per block of R query rows.
        words = 4 * w.M * w.P + w.P * (w.E + w.F) + _ceil(w.P, R) * w.M * (w.E + w.F)
        notes.append(f"QK and A in DRAM (score rows of {hw.cols} queries need "
                     f"{hw.cols * w.M * wb / MiB:.0f} MiB), row blocks of {R} queries")
    else:
        # Q, K, V read and AV written once per block of cols queries' K/V re-read; the spilled
        # fraction of the score rows is written and read back by each of the passes after QK.
        words = w.P * (w.E + w.F) + _ceil(w.P, hw.cols) * w.M * (w.E + w.F)
        if spill:
            words += 4 * spill * w.M * w.P
            notes.append(f"{spill:.0%} of the score rows spilled to DRAM")
    traffic = wb * bh * words
    mem = traffic / hw.bytes_per_cycle
    compute = max(_busy(einsums, "2D"), _busy(einsums, "1D"))
    if mem > compute:
        notes.append("memory-bound")
    return Result("flat", w, hw, U, einsums, _busy(einsums, "2D"), _busy(einsums, "1D"),
                  float(compute), float(mem), float(max(compute, mem)), float(traffic), None, notes)


def _unfused(w, hw, U, A_V) -> Result:
    bh, wb, bpc = w.B * w.H, hw.word_bytes, hw.bytes_per_cycle
    sm = _softmax3_einsums(w, hw, U)
    # Phase traffic: each operand read once, each output written once (what the artifact's
    # mapper reached); the softmax reads QK and writes A. If a score row does not fit in the
    # buffer, the spilled fraction is re-read by the second and third passes.
    spill = max(0.0, 1.0 - hw.buffer_bytes / (w.M * wb))
    qk_words = w.P * w.E + w.M * w.E + w.M * w.P
    sm_words = (2 + 2 * spill) * w.M * w.P
    av_words = w.M * w.P + w.M * w.F + w.P * w.F
    phases = [("QK", "2D", U * w.E, qk_words), ("softmax", "1D", _busy(sm, "1D"), sm_words),
              ("AV", "2D", U * w.F, av_words)]
    einsums = [_e("QK", "2D", U * w.E, U)] + sm + [_e("AV", "2D", U * w.F, U)]
    total, mem_total, comp_total, notes = 0.0, 0.0, 0.0, []
    for name, _arr, comp, words in phases:
        mem = wb * bh * words / bpc
        einsums.append(_e(f"{name} (DRAM)", "DRAM", mem, U))
        total += max(comp, mem)
        mem_total += mem
        comp_total += comp
        notes.append(f"{name} phase {'memory' if mem > comp else 'compute'}-bound")
    if spill:
        notes.append(f"{spill:.0%} of each score row spilled")
    traffic = wb * bh * (qk_words + sm_words + av_words)
    r = Result("unfused", w, hw, U, einsums, _busy(einsums, "2D"), _busy(einsums, "1D"),
               float(comp_total), float(mem_total), float(total), float(traffic), None, notes)
    return r


# ---------------------------------------------------------------------------------------------
# the paper's table

#: Reference per-point values (reference/fusemax.md 6.4), for the tests and docs/model.md.
PAPER_SPEEDUP_VS_FLAT = {
    "BERT": (6.65, 7.21, 7.37, 7.41, 8.57, 8.57),
    "XLM": (3.44, 3.74, 3.82, 3.84, 4.58, 4.58),
}
PAPER_SPEEDUP_VS_UNFUSED = {
    "BERT": (10.84, 11.38, 11.53, 11.56, 11.58, 11.58),
    "XLM": (5.84, 5.96, 6.00, 6.00, 6.02, 6.01),
}
for _m in ("TrXL", "T5"):
    PAPER_SPEEDUP_VS_FLAT[_m] = PAPER_SPEEDUP_VS_FLAT["BERT"]
    PAPER_SPEEDUP_VS_UNFUSED[_m] = PAPER_SPEEDUP_VS_UNFUSED["BERT"]
#: Means over the 24 (model, length) points: arithmetic (reference: 6.72 and 10.0).
PAPER_MEAN_VS_FLAT = 6.72
PAPER_MEAN_VS_UNFUSED = 10.0
#: (design, model) -> {length: (2D %, 1D %)} from the reference's utilization table.
PAPER_UTIL = {
    ("unfused", "BERT"): {1024: (7.7, 61), 65536: (8.0, 64), 2 ** 20: (8.0, 64)},
    ("unfused", "XLM"): {1024: (14.7, 59), 65536: (16.0, 64), 2 ** 20: (16.0, 64)},
    ("flat", "BERT"): {1024: (12.5, 100), 65536: (12.5, 100), 2 ** 20: (10.8, 86.5)},
    ("flat", "XLM"): {1024: (25, 100), 65536: (25, 100), 2 ** 20: (21.0, 84.0)},
    ("cascade", "BERT"): {1024: (10.9, 100), 65536: (11.1, 100), 2 ** 20: (11.1, 100)},
    ("cascade", "XLM"): {1024: (19.4, 100), 65536: (19.9, 100), 2 ** 20: (19.9, 100)},
    ("architecture", "BERT"): {1024: (29.9, 33.6), 65536: (29.9, 30.2), 2 ** 20: (29.9, 30.1)},
    ("architecture", "XLM"): {1024: (40.8, 45.8), 65536: (40.8, 41.0), 2 ** 20: (40.8, 40.9)},
    ("fusemax", "BERT"): {1024: (89.0, 100), 4096: (96.5, 100), 16384: (98.6, 100),
                          65536: (99.1, 100), 2 ** 18: (99.2, 100), 2 ** 20: (99.3, 100)},
    ("fusemax", "XLM"): {1024: (88.9, 100), 65536: (99.4, 100), 2 ** 20: (99.6, 100)},
}


def paper_table(models: list[str] | None = None, lengths: list[int] | None = None,
                rows: int = 256, cols: int | None = None) -> dict[str, Any]:
    """Every design on every (model, length) at the paper's hardware (array size selectable),
    with FuseMax's speedups vs FLAT and unfused, the ablations' speedups vs FLAT and the
    arithmetic means over the points."""
    ms = [model(m) for m in (models or list(MODELS))]
    ls = list(lengths or PAPER_LENGTHS)
    points = []
    for m in ms:
        for n in ls:
            w = m.workload(n)
            res = {d: evaluate(d, w, paper_hardware(d, rows, cols)) for d in DESIGNS}
            fm = res["fusemax"]
            pt = {
                "model": m.name, "length": n, "label": length_label(n),
                "designs": {d: {"cycles": r.cycles, "seconds": r.seconds, "bound": r.bound,
                                "dram_bytes": r.dram_bytes, "util_2d": r.util_2d,
                                "util_1d": r.util_1d, "per_tile_cycles": r.per_tile_cycles,
                                "p1": r.p1, "notes": r.notes}
                            for d, r in res.items()},
                "speedup_vs_flat": res["flat"].cycles / fm.cycles,
                "speedup_vs_unfused": res["unfused"].cycles / fm.cycles,
                "ablation_vs_flat": {d: res["flat"].cycles / res[d].cycles
                                     for d in ("cascade", "architecture")},
            }
            paper_f = PAPER_SPEEDUP_VS_FLAT.get(m.name)
            if paper_f and n in PAPER_LENGTHS and rows == 256 and (cols or rows) == 256:
                i = PAPER_LENGTHS.index(n)
                pt["paper_vs_flat"] = paper_f[i]
                pt["paper_vs_unfused"] = PAPER_SPEEDUP_VS_UNFUSED[m.name][i]
            points.append(pt)
    mean = lambda k: sum(p[k] for p in points) / len(points)  # noqa: E731
    return {
        "hardware": {d: paper_hardware(d, rows, cols).as_dict() for d in DESIGNS},
        "points": points,
        "mean_speedup_vs_flat": mean("speedup_vs_flat"),
        "mean_speedup_vs_unfused": mean("speedup_vs_unfused"),
        "paper_mean_vs_flat": PAPER_MEAN_VS_FLAT,
        "paper_mean_vs_unfused": PAPER_MEAN_VS_UNFUSED,
    }


# ---------------------------------------------------------------------------------------------
# our RTL

RTL_BINDINGS = ("fusemax", "architecture")

RTL_MODEL_IGNORES = [
    "fill and drain of the arrays at the start and end of the kernel and of every (b, h) and "
    "query block (the fusemax binding assumes steady state throughout)",
    "edge tiles: a partial tile (M or P not a multiple of rows / cols) costs a full tile",
    "latencies: the column reductions, the exp pipeline and the divider's result latency "
    "(only the divider's occupancy, div cycles per divide per lane, is charged)",
    "memory: loads of Q, K and V and stores of the output (DRAM is taken as never the bound)",
    "causal: a partially masked tile costs a full tile; fully masked tiles cost nothing",
]


def rtl_hardware(config: Any, pipelined_divider: bool = True) -> Hardware:
    """The model's Hardware for a FuseMaxConfig: rows x cols, exp = numerics.exp_cycles, the
    divider busy 1 cycle per divide when pipelined (the RTL's ``PipelinedDivider``), else
    numerics.div_cycles. Clock, bandwidth and buffer are nominal (the RTL report uses cycles
    only)."""
    n = config.numerics
    return Hardware(rows=config.rows, cols=config.cols, exp_cycles=n.exp_cycles,
                    div_cycles=1 if pipelined_divider else n.div_cycles,
                    name=f"config {config.name}")


def _rtl_config(config: Any):
    """A FuseMaxConfig from a config or a preset name / config file."""
    from fusemax.config import FuseMaxConfig, load_config

    if isinstance(config, str):
        config = load_config(config)
    if not isinstance(config, FuseMaxConfig):
        raise FuseMaxError(f"config must be a FuseMaxConfig or a preset name, got {type(config).__name__}")
    return config


def predict_rtl(config: Any, shape: Any, causal: bool = False, pipelined_divider: bool = True) -> dict:
    """The model's prediction for our RTL: ``config`` (a FuseMaxConfig or preset name) running
    ``shape`` (Workload, compiler Shape, mapping or ``"B=..,H=..,..."``).

    For each binding in :data:`RTL_BINDINGS` (``fusemax``: the paper's steady-state epoch formula;
    ``architecture``: one tile at a time, each waiting (rows + cols) / 2 cycles for fill/drain):
    cycles, per-tile cycles, 2D and 1D utilization, and ``util_2d_steady`` (the per-tile
    steady state with the AV divides amortized away, i.e. M -> infinity).

    The divider: one per 1D lane. ``pipelined_divider=True`` (default; the RTL's 1D PEs use
    ``PipelinedDivider``) charges one cycle per divide, its latency ignored;
    ``pipelined_divider=False`` charges ``numerics.div_cycles`` per divide (a serial divider).
    """
    config = _rtl_config(config)
    w = Workload.of(shape)
    hw = rtl_hardware(config, pipelined_divider)
    U = count_tiles(w, hw.rows, hw.cols, causal)
    x = hw.exp_cycles + 1
    out: dict[str, Any] = {
        "config": config.name, "rows": hw.rows, "cols": hw.cols, "shape": w.as_dict(),
        "causal": bool(causal), "tiles": U,
        "tiles_skipped": count_tiles(w, hw.rows, hw.cols) - U,
        "exp_cycles": hw.exp_cycles, "sln_prm_cycles": x, "div_cycles": hw.div_cycles,
        "divider": ("one per 1D lane, pipelined (1 divide/cycle; its latency of "
                    f"{config.numerics.div_cycles} cycles ignored)" if pipelined_divider else
                    f"one per 1D lane, not pipelined ({config.numerics.div_cycles} cycles per divide)"),
        "av_divide_cycles": w.B * w.H * _ceil(w.P, hw.cols) * w.F * hw.div_cycles,
        "bindings": {},
        "ignores": list(RTL_MODEL_IGNORES),
        "rtl_binding": rtl_binding_model(config, w, causal),
    }
    out["note"] = "model ignores: " + "; ".join(RTL_MODEL_IGNORES)
    if U == 0:
        for b in RTL_BINDINGS:
            out["bindings"][b] = {"cycles": float(out["av_divide_cycles"]), "per_tile_cycles": None,
                                  "util_2d": 0.0, "util_1d": 1.0 if out["av_divide_cycles"] else 0.0,
                                  "util_2d_steady": None}
        return out
    steady_tile = {"fusemax": max(w.E + 1, w.F + 1) + 1 + (x + 1) + w.F,
                   "architecture": (w.E + 1) + hw.fill_drain + 1 + (x + 1) + 2 * w.F}
    busy2d_tile = w.E + w.F + x + 2
    for b in RTL_BINDINGS:
        r = evaluate(b, w, hw, causal)
        cyc = r.compute_cycles  # memory is ignored for the RTL (see RTL_MODEL_IGNORES)
        out["bindings"][b] = {
            "cycles": cyc,
            "per_tile_cycles": cyc / U,
            "util_2d": r.busy_2d / cyc,
            "util_1d": r.busy_1d / cyc,
            "util_2d_steady": busy2d_tile / steady_tile[b],
            "formula": ("max(U(E+1), U(F+1) + A_V) + U + U(x+1) + U*F" if b == "fusemax" else
                        "max(U(E+1), U + A_V) + U(rows+cols)/2 + U + U(x+1) + 2U*F"),
        }
    return out


def rtl_binding_model(config: Any, shape: Any, causal: bool = False) -> dict:
    """Cycles of our RTL's own binding (docs/architecture.md section 5), derived from the design,
    next to which ``predict_rtl`` puts the paper's formula. Not fitted to measurements.

    * **fusemax**: an epoch runs BQK of tile t (E MAC cycles) and SLNV of tile t - 1 (F MAC
      cycles) back to back on the same MACs; LM, RM, the exps (SLN, PRM), SLD and RD run beside
      them. The one memory port carries E + F K/V lines and 2 instructions (TILE, LDKV) per
      tile, ``k`` instructions per line, so a tile costs E + F + 2/k cycles: the port, not the
      MACs, sets the pace. Per query block the port also carries the Q block (E lines), the
      output (F lines) and LDQ and AV (2/k lines), and it waits one load round trip (L + 1):
      the chunk after the first three of a block loads into the slot its first tile frees when
      its SLNV starts, which the background AV delays. The AV itself (F divide issues, then F
      stores that follow the write-backs) overlaps the next block's first BQKs. Once per run,
      the first Q block and the first two K/V chunks must arrive before the steady state
      (E + 2(E + F) lines and two memory latencies).
    * **attention-3pass** (``three_pass``): every block runs its tiles twice (pass 1 for the
      global max, then passes 2 and 3 merged), so 2U tiles at the binding's per-tile cost and
      the same per-block and start-up terms (Q, output, AV once per block).
    * **sigmoid-norm, sigmoid-nonorm** (``sigmoid``): the 2D PEs' sigmoids (latency Ls =
      ``numerics.sigmoid_cycles``, 24) replace SLN's exps (d + 1); docs/variants.md section 5
      ("Sigmoid unit"): stage Z holds one tile and a tile's SLNV starts the cycle after its
      sigmoids are done, so a tile costs max(E + F + 2/k, Ls + 1), and once per run the last
      tile's SLNV waits Ls - (d + 1) cycles more. Serial tiles: E + F + Ls + 5. Exact where the
      sigmoids hide (E + F >= Ls + 5) or set the pace (E + F + 2/k <= Ls + 1); in between the
      emulation of that section measured up to 2.3 cycles per tile more than the model.
    * **architecture** (every TILE ``serial``): a tile runs alone: E (BQK) + 5 (score, LM, RM)
      + d + 1 (exps) + F (SLNV) = E + F + d + 6 cycles, more than its E + F lines, so the
      MACs set the pace and each chunk loads behind the previous tile. Per block: the RNV
      pipeline drains (3), the AV runs alone (F + max(F, div_cycles + 1) + 1) and the next
      TILE and the AV each take a cycle to issue; once per run the first chunk and Q arrive
      (E + F + E lines, two memory latencies).
    """
    from fusemax.sw.schedule import insns_per_line

    config = _rtl_config(config)
    w = Workload.of(shape)
    n = config.numerics
    d, L = n.exp_degree, config.mem_latency
    k = insns_per_line(config.mem_lanes)
    U = count_tiles(w, config.rows, config.cols, causal)
    blocks = w.B * w.H * _ceil(w.P, config.cols)
    av = w.F + max(w.F, n.div_cycles + 1) + 1
    ls = n.sigmoid_cycles
    terms = {
        "fusemax": {"tile": max(w.E + w.F + 2 / k, d + 7), "block": w.E + w.F + 2 / k + L + 1,
                    "start": w.E + 2 * (w.E + w.F) + 2 * (L + 1)},
        "architecture": {"tile": w.E + w.F + d + 6, "block": av + 5,
                         "start": 2 * w.E + w.F + 2 * (L + 1)},
    }
    sigmoid = {"fusemax": {**terms["fusemax"], "tile": max(w.E + w.F + 2 / k, ls + 1),
                           "start": terms["fusemax"]["start"] + ls - (d + 1)},
               "architecture": {**terms["architecture"], "tile": w.E + w.F + ls + 5}}
    out = {"tiles": U, "blocks": blocks, "insns_per_line": k, "av_cycles": av,
           "sigmoid_cycles": ls, "bindings": {}, "three_pass": {}, "sigmoid": {}}
    for b, t0 in terms.items():
        for key, passes, t in (("bindings", 1, t0), ("three_pass", 2, t0), ("sigmoid", 1, sigmoid[b])):
            cyc = t["start"] + blocks * t["block"] + passes * U * t["tile"]
            out[key][b] = {"cycles": cyc, "per_tile_cycles": t["tile"], "block_overhead": t["block"],
                           "start_cycles": t["start"], "tiles_run": passes * U,
                           "mac_efficiency": passes * U * (w.E + w.F) / cyc if cyc else 0.0}
    return out


__all__ = [
    "rtl_binding_model", "DESIGNS", "Workload", "Hardware", "Model", "Result", "EinsumCost", "MODELS", "BERT", "TRXL",
    "T5", "XLM", "PAPER_LENGTHS", "PAPER_FUSEMAX_HW", "PAPER_FLAT_HW", "paper_hardware", "evaluate",
    "count_tiles", "p1_sizing", "fusemax_dram_bytes", "flat_placement", "paper_table",
    "predict_rtl", "rtl_hardware", "parse_shape", "parse_length", "length_label", "model",
]
