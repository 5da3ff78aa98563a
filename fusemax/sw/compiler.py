"""The compiler: a cascade, a configuration and a workload shape -> a control schedule and the
external-memory image it runs on (docs/architecture.md sections 3-4, docs/schedule.md).

``attention-1pass`` maps onto the hardware (one pass over M, the FuseMax binding of the
2D and 1D arrays), and ``attention-3pass`` as the baseline: per query block its tiles twice,
pass 1 for the global max, then passes 2 and 3 merged by the division reduction from a
``TILE restart`` (``KV_SWEEPS``). ``sigmoid-norm`` and ``sigmoid-nonorm`` run attention-1pass's
tiles after ``MODE sigmoid=1`` (``nonorm`` for the latter; ``CASCADE_MODES``) on a design with
``sigmoid_unit``. ``attention-entropy`` (attention plus each query's entropy H) runs
attention-1pass's tiles after ``MODE entropy=1`` on a design with ``entropy_unit``: every tile
also accumulates RT = Σ SLN·BQK, every AV also stores H (:data:`~fusemax.sw.golden_variants.
ENTROPY_FORMAT` codes, one per query) as one more line after the block's F output lines, so
its output blocks are F + 1 lines (``Layout.out_lines``; :meth:`Program.decode_entropy`).
The attention variants of :mod:`fusemax.sw.rtl_variants` run as attention-1pass on inputs the
host prepares, some with a tile list (``pattern=``).
``flowformer-causal`` (causal Flow-Attention) runs on the flow engine of a design with
``flow_unit``: no tiles, token-serial ``FLOW`` instructions over the same layout (see
:func:`compile_schedule`). The tile mapping is fixed by the configuration:

* **tiling**: M -> M1 x M0 with M0 = ``rows`` (a K/V *chunk*: the keys of one tile), M1 =
  ceil(M / rows); P -> P2 x P1 x P0 with P0 = ``cols``, P1 = 1 (one block of ``cols`` queries is
  resident with its running state), P2 = ceil(P / cols) query blocks. Padding: keys past M are
  masked (the hardware derives it from ``MASK``), query lanes past P are unused.
* **loop order**: b, h, p2, m1 (then p0 || m0 in space). Per (b, h, p2) the schedule is
  ``LDKV k0,0; LDQ; LDKV k1,1; LDKV k2,2; TILE 0; TILE 1; LDKV k3,0; TILE 2; LDKV k4,1; ...; AV``
  -- three K/V slots: while the tile engine runs BQK of chunk j and SLNV of chunk j - 1, chunk
  j + 2 loads into the slot chunk j - 1 frees as its SLNV starts (the LDKV after TILE j waits
  for that), so memory traffic overlaps compute (docs/architecture.md section 5).
* **binding** (``binding=``): ``"fusemax"`` (default) lets the tile engine overlap consecutive
  tiles (the paper's binding); ``"architecture"`` sets every TILE's ``serial`` bit so each tile
  runs alone, one after the other (the paper's +Architecture ablation) -- same instructions,
  same results, more cycles.
* **instruction packing**: a memory line holds ``insns_per_line(mem_lanes)`` instructions
  (1 for 4 lanes, 2 for 8, 4 for 16, 8 for 32 and more), the first in the low bits.
* **causal** (aligned at the end of the key sequence, as with a KV cache: query p sees key m iff
  m <= p + M - P): a tile whose keys are invisible to *every* query of the block is not emitted
  (no LDKV, no TILE). Only trailing chunks of a block can be skipped (key 0 is the first key any
  query sees), and a fully masked tile is an exact identity on the running state (LM invalid ->
  RM unchanged, PRM = 1 exactly, SLD = SLNV = 0; with sigmoid scores SLN = 0 there and PRM = 1
  after a block's first tile, the same), so skipping it changes no bit. A block whose
  queries see no key at all gets no tile: its ``AV first=1`` resets RD (RNV / 0 = 0) and
  writes the divide-by-zero result 0, as the golden does.
* **serial tiles** (``binding="architecture"``): chunk 0 and LDQ of the next block before the
  AV, chunk 1 right before TILE 0, chunk j + 2 after TILE j (docs/schedule.md).

:func:`compile_schedule` gives the instructions and the image layout for a shape;
:func:`compile_attention` also quantizes Q, K, V (the golden's ``quantize_inputs``) and fills the
image.
"""

from __future__ import annotations

import binascii
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from fusemax.config import FuseMaxConfig
from fusemax.errors import FuseMaxError
from fusemax.sw.attention_io import attention_dims, parse_dims
from fusemax.sw import schedule as sf
from fusemax.sw.golden_variants import FLOW_CLAMP, FLOW_MAX_N, flow_clamp_code, flow_quantize

__all__ = ["Shape", "Layout", "Schedule", "Program", "SUPPORTED_CASCADES", "KV_SWEEPS",
           "CASCADE_MODES", "MODE_UNITS", "FLOW_CASCADES", "FLOW_MAX_N", "flow_segments", "parse_shape",
           "check_cascade_mappable", "compile_schedule", "compile_attention", "read_hex",
           "buffer_bytes", "BINDINGS", "hardware_mask", "pattern_chunks"]

#: Sweeps over each block's K/V chunks per cascade the compiler maps: attention-3pass runs pass 1
#: (GM, the running max of a whole 1-pass) and then passes 2 and 3 merged by the division
#: reduction (TILE.restart on the block's first tile of the second sweep: RM = GM stays, RD and
#: RNV sum again with PRM = 1), so two sweeps; the golden is
#: :func:`fusemax.sw.golden.attention_3pass`.
#: flowformer-causal reads each K/V chunk once (by FLOW instructions, not tiles).
KV_SWEEPS = {"attention-1pass": 1, "attention-3pass": 2, "sigmoid-norm": 1, "sigmoid-nonorm": 1,
             "attention-entropy": 1, "flowformer-causal": 1}

#: Cascades that run on the flow engine (``FLOWC``, ``FLOW``; ``config.flow_unit``), not as tiles.
FLOW_CASCADES = ("flowformer-causal",)

#: Cascades the hardware runs (:func:`check_cascade_mappable` gives the reason for the others).
SUPPORTED_CASCADES = tuple(KV_SWEEPS)

#: The ``MODE`` fields of the cascades that need one, emitted after CAUSAL / WINDOW. ``sigmoid``:
#: sigmoid scores with no running max; ``nonorm``: AV = RNV rounded to the output format
#: (golden :func:`fusemax.sw.golden_variants.sigmoid_golden`); both need
#: ``config.sigmoid_unit``. ``entropy``: softmax tiles that also accumulate RT, and AVs that also
#: store the entropy H of their queries as line F of the output block (golden
#: :func:`fusemax.sw.golden_variants.entropy_golden`); needs ``config.entropy_unit``
#: (:data:`MODE_UNITS`). The others run softmax, the state after start, and get no MODE.
CASCADE_MODES = {"sigmoid-norm": {"sigmoid": 1, "nonorm": 0},
                 "sigmoid-nonorm": {"sigmoid": 1, "nonorm": 1},
                 "attention-entropy": {"sigmoid": 0, "nonorm": 0, "entropy": 1}}

#: MODE field -> (the config field of the unit it needs, what that unit is called).
MODE_UNITS = {"sigmoid": ("sigmoid_unit", "the sigmoid unit"),
              "nonorm": ("sigmoid_unit", "the sigmoid unit"),
              "entropy": ("entropy_unit", "the entropy output")}

#: Field limits of the schedule format (from the encoding table, not restated by hand).
_MASK_M_BITS = sf.OPCODES["MASK"].fields["M"][1]
_MASK_P_BITS = sf.OPCODES["MASK"].fields["P"][1]
_ADDR_BITS = sf.OPCODES["LDQ"].fields["addr"][1]
_SHAPE_BITS = sf.OPCODES["SHAPE"].fields["E"][1]
_WINDOW_BITS = sf.OPCODES["WINDOW"].fields["W"][1]


# ---------------------------------------------------------------------------------------------
# shapes


@dataclass(frozen=True)
class Shape:
    """A workload: B batches x H heads, M keys, P queries, E = dim of Q/K, F = dim of V."""

    B: int
    H: int
    M: int
    P: int
    E: int
    F: int

    def __post_init__(self):
        for name in ("B", "H", "M", "P", "E", "F"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise FuseMaxError(f"shape {name} must be a positive integer, got {v!r}")
            object.__setattr__(self, name, int(v))

    @classmethod
    def of(cls, shape) -> "Shape":
        """From a Shape, a mapping with keys B,H,M,P,E,F, or a ``"B=1,H=1,..."`` string."""
        if isinstance(shape, Shape):
            return shape
        if isinstance(shape, str):
            return parse_shape(shape)
        if isinstance(shape, Mapping):
            missing = [k for k in ("B", "H", "M", "P", "E", "F") if k not in shape]
            extra = sorted(set(shape) - {"B", "H", "M", "P", "E", "F"})
            if missing or extra:
                raise FuseMaxError(f"a shape needs exactly B, H, M, P, E, F; "
                                   f"missing {missing or 'none'}, unknown {extra or 'none'}")
            return cls(**{k: shape[k] for k in ("B", "H", "M", "P", "E", "F")})
        raise FuseMaxError(f"cannot read a shape from {shape!r}")

    @classmethod
    def of_arrays(cls, q, k, v) -> "Shape":
        B, H, P, E, M, F = attention_dims(*(np.asarray(a) for a in (q, k, v)))
        return cls(B=B, H=H, M=M, P=P, E=E, F=F)

    def as_dict(self) -> dict[str, int]:
        return {"B": self.B, "H": self.H, "M": self.M, "P": self.P, "E": self.E, "F": self.F}

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.as_dict().items())


def parse_shape(text: str) -> Shape:
    """``"B=1,H=2,M=256,P=64,E=64,F=64"`` -> :class:`Shape` (order free, every dim once)."""
    return Shape(**parse_dims(text))


# ---------------------------------------------------------------------------------------------
# cascades


def check_cascade_mappable(cascade: str) -> str:
    """The name of the supported cascade ``cascade`` (a built-in name or a .cas file) is, or
    FuseMaxError naming the cascade and the obstacle."""
    from fusemax.sw.library import load_cascade
    from fusemax.sw.passes import analyse_passes

    if cascade in SUPPORTED_CASCADES:
        return cascade
    checked = load_cascade(cascade)  # FuseMaxError for unknown names / bad files
    if checked.name in SUPPORTED_CASCADES:
        return checked.name
    from fusemax.sw.rtl_variants import RTL_VARIANTS

    if checked.name in RTL_VARIANTS:
        raise FuseMaxError(
            f"cascade {checked.name} runs on the RTL as attention-1pass after the host prepares "
            f"its inputs ({RTL_VARIANTS[checked.name]}): use `fusemax sim {checked.name}` or "
            f"fusemax.sw.rtl_variants; the compiler itself maps attention-1pass")
    passes = analyse_passes(checked)
    roots = set(checked.roots.values())
    if "M" not in roots:
        raise FuseMaxError(
            f"cascade {checked.name} cannot be mapped: it has no key rank M (its ranks: "
            f"{', '.join(sorted(roots)) or 'none'}); the hardware streams keys M through the rows "
            f"of the 2D array and runs only attention-1pass (Q[E,P], K[E,M], V[F,M] -> AV[F,P])")
    m = passes["M"]
    if m.passes > 1:
        why = m.chain[0].describe() if m.chain else "a tensor it reads is complete only after a pass"
        raise FuseMaxError(
            f"cascade {checked.name} cannot be mapped: it needs {m.passes} passes over M ({why}); "
            f"no on-chip structure holds M, and the hardware streams K and V again only for "
            f"attention-3pass, whose passes are attention-1pass's own Einsums with the per-query "
            f"running max kept (docs/variants.md says what {checked.name} would need)")
    raise FuseMaxError(
        f"cascade {checked.name} cannot be mapped: the sequencer binds only the Einsums of "
        f"attention-1pass (BQK, LM, SLN, SLD, SLNV on the 2D array; RM, PRM, SPD, RD, SPNV, RNV, "
        f"AV on the 1D array; attention-3pass runs them twice, sigmoid-norm and sigmoid-nonorm "
        f"with sigmoid scores, attention-entropy with the RT accumulator and the entropy H; "
        f"flowformer-causal runs on the flow engine); {checked.name} is a different "
        f"sequence of Einsums (docs/variants.md names the PE operations it lacks)")


# ---------------------------------------------------------------------------------------------
# layout


@dataclass(frozen=True)
class Layout:
    """Where everything sits in external memory (line addresses; docs/architecture.md §3).

    The schedule occupies lines [sched_base, sched_base + sched_lines), ``insns_per_line``
    instructions per line; then for every (b, h),
    in order, P2 Q blocks of E lines, M1 K/V chunks of E + F lines, P2 output blocks of
    ``out_lines`` lines: F output lines, and with ``MODE entropy=1`` (attention-entropy) one
    more, line F, holding the entropy H of the block's queries (lane c: query p_base + c).
    """

    config_name: str
    shape: Shape
    rows: int
    cols: int
    mem_lanes: int
    sched_base: int
    sched_lines: int
    data_base: int
    out_lines: int = 0  #: lines per output block: F (0 gives F), or F + 1 with the entropy H

    def __post_init__(self):
        if self.out_lines == 0:
            object.__setattr__(self, "out_lines", self.shape.F)
        if self.out_lines not in (self.shape.F, self.shape.F + 1):
            raise FuseMaxError(f"an output block holds F = {self.shape.F} lines (F + 1 with the "
                               f"entropy H), not {self.out_lines}")

    @property
    def has_entropy(self) -> bool:
        """Whether each output block ends with the H line (``MODE entropy=1``)."""
        return self.out_lines == self.shape.F + 1

    @property
    def P2(self) -> int:
        return -(-self.shape.P // self.cols)

    @property
    def M1(self) -> int:
        return -(-self.shape.M // self.rows)

    @property
    def chunk_lines(self) -> int:
        return self.shape.E + self.shape.F

    @property
    def bh_lines(self) -> int:
        s = self.shape
        return self.P2 * s.E + self.M1 * (s.E + s.F) + self.P2 * self.out_lines

    def bh_base(self, b: int, h: int) -> int:
        return self.data_base + (b * self.shape.H + h) * self.bh_lines

    def q_addr(self, b: int, h: int, i: int) -> int:
        return self.bh_base(b, h) + i * self.shape.E

    def kv_addr(self, b: int, h: int, j: int) -> int:
        return self.bh_base(b, h) + self.P2 * self.shape.E + j * self.chunk_lines

    def out_addr(self, b: int, h: int, i: int) -> int:
        s = self.shape
        return self.bh_base(b, h) + self.P2 * s.E + self.M1 * self.chunk_lines + i * self.out_lines

    def h_addr(self, b: int, h: int, i: int) -> int:
        """The H line of output block ``i`` (line F of the block; only with the entropy H)."""
        if not self.has_entropy:
            raise FuseMaxError("this layout has no entropy line (the schedule has no MODE entropy=1)")
        return self.out_addr(b, h, i) + self.shape.F

    @property
    def n_lines(self) -> int:
        return self.data_base + self.shape.B * self.shape.H * self.bh_lines

    @property
    def output_range(self) -> tuple[int, int]:
        """[lo, hi): the smallest line range holding every output block (H lines included)."""
        s = self.shape
        return self.out_addr(0, 0, 0), self.out_addr(s.B - 1, s.H - 1, self.P2 - 1) + self.out_lines

    def regions(self) -> list[dict]:
        """Every region, in address order: kind, b, h, index, addr, lines, and what it holds
        (kinds: schedule, Q, KV, out (F lines), H (the entropy line after each output block,
        only with ``MODE entropy=1``))."""
        s = self.shape
        out = [{"kind": "schedule", "addr": self.sched_base, "lines": self.sched_lines}]
        for b in range(s.B):
            for h in range(s.H):
                for i in range(self.P2):
                    out.append({"kind": "Q", "b": b, "h": h, "index": i, "addr": self.q_addr(b, h, i),
                                "lines": s.E, "queries": [i * self.cols, min(s.P, (i + 1) * self.cols)]})
                for j in range(self.M1):
                    out.append({"kind": "KV", "b": b, "h": h, "index": j, "addr": self.kv_addr(b, h, j),
                                "lines": self.chunk_lines,
                                "keys": [j * self.rows, min(s.M, (j + 1) * self.rows)]})
                for i in range(self.P2):
                    queries = [i * self.cols, min(s.P, (i + 1) * self.cols)]
                    out.append({"kind": "out", "b": b, "h": h, "index": i, "addr": self.out_addr(b, h, i),
                                "lines": s.F, "queries": queries})
                    if self.has_entropy:
                        out.append({"kind": "H", "b": b, "h": h, "index": i,
                                    "addr": self.h_addr(b, h, i), "lines": 1, "queries": queries})
        return out

    def as_dict(self, regions: bool = False) -> dict:
        d = {"config": self.config_name, "shape": self.shape.as_dict(), "rows": self.rows,
             "cols": self.cols, "mem_lanes": self.mem_lanes, "M1": self.M1, "P2": self.P2, "P1": 1,
             "sched_base": self.sched_base, "sched_lines": self.sched_lines,
             "data_base": self.data_base, "bh_lines": self.bh_lines, "n_lines": self.n_lines,
             "out_lines": self.out_lines, "entropy_line": self.has_entropy,
             "output_range": list(self.output_range)}
        if regions:
            d["regions"] = self.regions()
        return d


def visible_chunks(shape: Shape, rows: int, cols: int, i: int, causal: bool) -> int:
    """How many leading K/V chunks query block ``i`` needs (all M1 unless causal)."""
    M1 = -(-shape.M // rows)
    if not causal:
        return M1
    p_max = min((i + 1) * cols, shape.P) - 1
    last_key = min(shape.M - 1, p_max + shape.M - shape.P)
    return 0 if last_key < 0 else last_key // rows + 1


def hardware_mask(pattern) -> tuple[bool, int]:
    """``(causal, window)``: the ``CAUSAL`` enable and ``WINDOW`` W whose mask, on the tiles
    ``pattern`` touches, can equal it (:func:`pattern_chunks` checks that it does). The
    hardware's mask is m < M, p < P, m <= p + M - P (causal) and m > p + M - P - W (W > 0)."""
    from fusemax.sw import patterns as pt

    if isinstance(pattern, pt.Dense):
        return False, 0
    if isinstance(pattern, pt.Causal):
        return True, 0
    if isinstance(pattern, pt.Band) and pattern.after == 0:
        return True, pattern.before + 1   # sliding_window(W) = Band(W - 1, 0)
    if isinstance(pattern, (pt.Routing, pt.BlockLocal)):
        return bool(pattern.causal), 0    # exact when no tile straddles two clusters / windows
    raise FuseMaxError(
        f"pattern {pattern!r} needs a mask the hardware does not have: MASK, CAUSAL and WINDOW "
        f"give key m < M, m <= p + M - P and m > p + M - P - W (with skipped tiles)")


def pattern_chunks(pattern, shape: Shape, rows: int, cols: int) -> tuple[bool, int, list[list[int]]]:
    """How the hardware runs ``pattern`` exactly: ``(causal, window, chunks)``, where
    ``chunks[i]`` lists the K/V chunks query block ``i`` runs (the tiles of
    :func:`~fusemax.sw.patterns.tiles_touched`). Every other tile holds no visible pair, so
    skipping it changes no bit; on every tile that runs, the hardware's mask (:func:`hardware_mask`)
    must show each real query exactly the keys the pattern shows it, else FuseMaxError names
    the first tile and query where they differ (e.g. a routing cluster or a local window
    that is not a multiple of rows and cols, so that a tile straddles two of them)."""
    from fusemax.sw.patterns import tile_plan_with_ranges

    s = shape
    causal, window = hardware_mask(pattern)
    if window >= 1 << _WINDOW_BITS:
        raise FuseMaxError(f"window W = {window} does not fit the WINDOW instruction (< 2^{_WINDOW_BITS})")
    plan, lo, hi = tile_plan_with_ranges(pattern, s.M, s.P, rows, cols)
    P2 = -(-s.P // cols)
    chunks: list[list[int]] = [[] for _ in range(P2)]
    for i, j, _ in plan:
        chunks[i].append(j)
    d = np.arange(s.P, dtype=np.int64) + (s.M - s.P)
    hw_lo = np.clip(d - window + 1, 0, s.M) if window else np.zeros(s.P, np.int64)
    hw_hi = np.clip(d + 1, 0, s.M) if causal else np.full(s.P, s.M, np.int64)
    for i, js in enumerate(chunks):
        if not js:
            continue
        q = slice(i * cols, min(s.P, (i + 1) * cols))
        k0 = np.asarray(js, np.int64) * rows
        k1 = np.minimum(s.M, k0 + rows)

        def seen(a, b):  # the keys of each tile each query sees, as [lo, hi) (empty: 0, 0)
            x, y = np.maximum(a[q, None], k0[None]), np.minimum(b[q, None], k1[None])
            return np.where(y > x, x, 0), np.where(y > x, y, 0)

        (pl, ph), (hl, hh) = seen(lo, hi), seen(hw_lo, hw_hi)
        bad = np.argwhere((pl != hl) | (ph != hh))
        if len(bad):
            c, t = bad[0]
            p = i * cols + int(c)
            what = (f"CAUSAL {int(causal)}" + (f", WINDOW {window}" if window else ""))
            raise FuseMaxError(
                f"pattern {pattern!r} does not run exactly on a {rows} x {cols} array: in the "
                f"tile of keys {k0[t]}..{k1[t] - 1} x queries {q.start}..{q.stop - 1}, query {p} "
                f"sees keys [{pl[c, t]}, {ph[c, t]}) but the hardware's mask ({what}) gives "
                f"[{hl[c, t]}, {hh[c, t]}) (a tile must not straddle two clusters or windows: "
                f"their sizes must be multiples of rows = {rows} and cols = {cols})")
    return causal, window, chunks


# ---------------------------------------------------------------------------------------------
# schedules


@dataclass
class Schedule:
    """The instructions (and a comment for each) for a shape, with its memory layout."""

    config: FuseMaxConfig
    shape: Shape
    causal: bool
    instructions: list[sf.Instruction]
    comments: list[str]
    layout: Layout
    cascade: str = "attention-1pass"
    tiles: int = 0
    tiles_skipped: int = 0
    binding: str = "fusemax"
    window: int = 0                 #: WINDOW's W (0: no window lower bound)
    pattern: str | None = None      #: repr of the attention pattern the tile list came from
    mode: dict = field(default_factory=dict)  #: the MODE fields emitted ({}: none, softmax)
    flow_tokens: int = 0            #: tokens the FLOW instructions run (flowformer-causal)
    flow_clamp: float | None = None  #: the clamp bound c (flowformer-causal; FLOWC holds c2)
    flow_clamp_code: int | None = None  #: c2 = round(c·log2(e)·2^score.frac)

    @property
    def is_flow(self) -> bool:
        """Whether this schedule runs the flow engine (FLOWC, FLOW) instead of tiles."""
        return self.cascade in FLOW_CASCADES

    @property
    def entropy(self) -> bool:
        """Whether the tiles also accumulate RT and every AV stores the entropy H (``MODE
        entropy=1``, attention-entropy): output blocks of F + 1 lines."""
        return bool(self.mode.get("entropy"))

    @property
    def score_function(self) -> str:
        """What the tiles compute: ``softmax``, ``softmax, entropy H``, ``sigmoid, normalised``
        or ``sigmoid, no norm`` (``flow`` for the flow engine's cascade)."""
        if self.is_flow:
            return "flow"
        if not self.mode.get("sigmoid"):
            return "softmax, entropy H" if self.entropy else "softmax"
        return "sigmoid, no norm" if self.mode.get("nonorm") else "sigmoid, normalised"

    @property
    def insns_per_line(self) -> int:
        return sf.insns_per_line(self.layout.mem_lanes)

    def insn_addr(self, n: int) -> str:
        """Where instruction ``n`` sits: ``line`` or ``line.slot`` when lines hold several."""
        k = self.insns_per_line
        line = self.layout.sched_base + n // k
        return f"{line:08x}" if k == 1 else f"{line:08x}.{n % k}"

    @property
    def words(self) -> list[int]:
        return [ins.word for ins in self.instructions]

    @property
    def sched_base(self) -> int:
        return self.layout.sched_base

    @property
    def output_range(self) -> tuple[int, int]:
        return self.layout.output_range

    def to_bytes(self) -> bytes:
        """The schedule words as little-endian uint64 (the ``-o sched.bin`` file)."""
        return np.asarray(self.words, dtype="<u8").tobytes()

    def listing(self) -> str:
        """One line per instruction: address, hex word, mnemonic, and what it touches."""
        L, s = self.layout, self.shape
        if self.is_flow:
            return self._listing(self._flow_head())
        head = [
            f"; fusemax schedule v{sf.VERSION}: {self.cascade} ({self.binding} binding) on config {self.config.name} "
            f"({self.config.rows} rows x {self.config.cols} cols, digest {self.config.digest()}, "
            f"tag {sf.config_tag(self.config.digest()):08x})",
            f"; shape {s}{', causal (query p sees key m <= p + M - P)' if self.causal else ''}"
            + (f", window W = {self.window} (query p sees key m > p + M - P - W)" if self.window else "")
            + (f"; pattern {self.pattern}" if self.pattern else "")
            + (f"; scores: {self.score_function} (MODE)" if self.mode else ""),
            f"; tiling: M1 = ceil({s.M}/{L.rows}) = {L.M1} chunks of M0 = {L.rows} keys; "
            f"P2 = ceil({s.P}/{L.cols}) = {L.P2} blocks of P1 x P0 = 1 x {L.cols} queries; "
            f"{self.tiles} tiles" + (f" ({self.tiles_skipped} fully masked tiles skipped)"
                                     if self.tiles_skipped else ""),
            f"; memory: {L.n_lines} lines of {L.mem_lanes} x 16 bits; schedule at "
            f"[{L.sched_base}, {L.sched_base + L.sched_lines}) ({self.insns_per_line} per line); outputs in "
            f"[{L.output_range[0]}, {L.output_range[1]})"
            + (f", blocks of F + 1 = {L.out_lines} lines (line {s.F}: H of each query, s16.11 nats)"
               if L.has_entropy else ""),
        ]
        return self._listing(head)

    def _flow_head(self) -> list[str]:
        L, s = self.layout, self.shape
        return [
            f"; fusemax schedule v{sf.VERSION}: {self.cascade} (flow engine) on config {self.config.name} "
            f"({self.config.rows} rows x {self.config.cols} cols, digest {self.config.digest()}, "
            f"tag {sf.config_tag(self.config.digest()):08x})",
            f"; shape {s}; causal by construction (token i sees tokens 0..i; no mask); clamp "
            f"c = {self.flow_clamp:g} (c2 = {self.flow_clamp_code} score codes)",
            f"; tokens: N = {s.M} per (b, h), {self.flow_tokens} in all, in FLOW segments within one "
            f"Q block of {L.cols} queries and one K/V chunk of {L.rows} keys; {L.P2} Q blocks, "
            f"{L.M1} chunks per (b, h)",
            f"; memory: {L.n_lines} lines of {L.mem_lanes} x 16 bits; schedule at "
            f"[{L.sched_base}, {L.sched_base + L.sched_lines}) ({self.insns_per_line} per line); outputs in "
            f"[{L.output_range[0]}, {L.output_range[1]})",
        ]

    def _listing(self, head: list[str]) -> str:
        L, s = self.layout, self.shape
        lines = list(head) + [";", "; addr     word              instruction"]
        for n, (ins, note) in enumerate(zip(self.instructions, self.comments)):
            text = f"{self.insn_addr(n):<10s} {ins.word:016x}  {str(ins):<34s}"
            lines.append(f"{text} ; {note}" if note else text.rstrip())
        lines.append(";")
        lines.append("; regions (line address, lines):")
        for r in L.regions()[1:]:
            where = f"b{r['b']} h{r['h']}"
            if r["kind"] == "KV":
                what = f"K/V chunk {r['index']}: keys {r['keys'][0]}..{r['keys'][1] - 1} (K lines 0..{s.E - 1}, V lines {s.E}..{s.E + s.F - 1})"
            elif r["kind"] == "H":
                what = (f"entropy H of output block {r['index']}: queries "
                        f"{r['queries'][0]}..{r['queries'][1] - 1}")
            else:
                what = (f"{'Q block' if r['kind'] == 'Q' else 'output block'} {r['index']}: "
                        f"queries {r['queries'][0]}..{r['queries'][1] - 1}")
            lines.append(f";   {r['addr']:08x} {r['lines']:6d}  {where} {what}")
        return "\n".join(lines) + "\n"

    def cycle_bound(self) -> int:
        """A generous upper bound on the cycles a correct design needs (for hang detection).
        Flow schedules: per token 4·(E + F) + 400 + 2·E·ceil(F/cols) + 8·(div + exp cycles) +
        F·(div cycles + 2), plus the loads, the stores and the instructions; a bound, not a
        model of the flow engine."""
        c, n = self.config, self.config.numerics
        s = self.shape
        lat = c.mem_latency + 4
        if self.is_flow:
            token = (4 * (s.E + s.F) + 400 + 2 * s.E * -(-s.F // c.cols)
                     + 8 * (n.div_cycles + n.exp_cycles) + s.F * (n.div_cycles + 2))
            L = self.layout
            loads = s.B * s.H * (L.P2 * (s.E + lat) + L.M1 * (s.E + s.F + lat) + L.P2 * (s.F + lat))
            est = self.flow_tokens * token + loads + len(self.instructions) * (lat + 4)
            return 4 * est + 10_000
        tile = s.E + s.F + 2 * n.exp_cycles + 4 * (c.row_bits + 4) + 32 + int(self.entropy)
        load = (s.E + s.F) + lat
        av = s.F * (n.div_cycles + 2) + s.F + lat + 16
        if self.entropy:  # the entropy finisher per block, and the H line
            from fusemax.hw.entropy import finisher_cycles

            av += finisher_cycles(c) + lat + 16
        ldq = s.E + lat
        blocks = s.B * s.H * self.layout.P2
        est = self.tiles * (tile + load) + blocks * (av + ldq) + len(self.instructions) * (lat + 4)
        return 4 * est + 10_000


#: Bindings the compiler emits (see the module docstring).
BINDINGS = ("fusemax", "architecture")


def _start_schedule(config: FuseMaxConfig, s: Shape, n_instr: int, sched_base: int,
                    out_lines: int = 0):
    """The layout of a schedule of ``n_instr`` instructions with output blocks of ``out_lines``
    lines (0: F) (FuseMaxError when the image does not fit the address space), its instruction
    and note lists, and ``emit(op, note, **fields)`` (range-checked), with HDR and SHAPE
    emitted."""
    rows, cols = config.rows, config.cols
    P2, M1 = -(-s.P // cols), -(-s.M // rows)
    n_lines = -(-n_instr // sf.insns_per_line(config.mem_lanes))
    layout = Layout(config.name, s, rows, cols, config.mem_lanes, sched_base, n_lines,
                    sched_base + n_lines, out_lines)
    if layout.n_lines > (1 << config.mem_addr_width):
        raise FuseMaxError(
            f"the memory image needs {layout.n_lines} lines (schedule {n_instr}, "
            f"{s.B * s.H} x (Q {P2}x{s.E} + K/V {M1}x{s.E + s.F} + output {P2}x{layout.out_lines})) but config "
            f"{config.name} addresses 2^{config.mem_addr_width} = {1 << config.mem_addr_width} lines "
            f"(mem_addr_width {config.mem_addr_width}); use a smaller B, H or M, or a config with a "
            f"wider mem_addr_width")

    ins: list[sf.Instruction] = []
    notes: list[str] = []

    def emit(op: str, note: str = "", **args: int) -> None:
        sf.encode(op, **args)  # range-check now, with the instruction's name in the error
        ins.append(sf.Instruction(op, dict(args)))
        notes.append(note)

    digest = config.digest()
    emit("HDR", f"schedule format v{sf.VERSION}, config {config.name} (digest {digest})",
         version=sf.VERSION, tag=sf.config_tag(digest))
    emit("SHAPE", f"E = {s.E} (Q, K), F = {s.F} (V)", E=s.E, F=s.F)
    return layout, ins, notes, emit


def compile_schedule(config: FuseMaxConfig, shape, causal: bool = False,
                     cascade: str = "attention-1pass", sched_base: int = 0,
                     binding: str = "fusemax", pattern=None, clamp: float | None = None) -> Schedule:
    """The control schedule and memory layout of ``cascade`` for ``shape`` on ``config``;
    ``binding`` is ``"fusemax"`` or ``"architecture"`` (every tile serial).

    ``pattern`` (a :mod:`fusemax.sw.patterns` pattern, instead of ``causal``): run only the
    tiles it touches (:func:`~fusemax.sw.patterns.tiles_touched`), with the mask
    (``CAUSAL``, ``WINDOW``) of :func:`pattern_chunks`, which checks that the result is exact.

    ``flowformer-causal`` (a design with ``flow_unit``; ``clamp`` the bound c of the conserved
    source, default :data:`~fusemax.sw.golden_variants.FLOW_CLAMP`): see :func:`_compile_flow`.

    The cascades of :data:`CASCADE_MODES` get their ``MODE`` after CAUSAL / WINDOW and need the
    unit of :data:`MODE_UNITS`; ``attention-entropy`` (``MODE sigmoid=0 nonorm=0 entropy=1``)
    lays out output blocks of F + 1 lines (line F: the H of the block's queries).

    Raises FuseMaxError naming the obstacle when the shape does not fit the configuration.
    """
    if binding not in BINDINGS:
        raise FuseMaxError(f"unknown binding {binding!r}; known: {', '.join(BINDINGS)}")
    serial = int(binding == "architecture")
    cascade = check_cascade_mappable(cascade)  # the reason if not (a .cas file: its name)
    if cascade in FLOW_CASCADES:
        return _compile_flow(config, shape, causal, cascade, sched_base, binding, pattern, clamp)
    if clamp is not None:
        raise FuseMaxError(f"clamp is an option of {', '.join(FLOW_CASCADES)}, not of {cascade}")
    mode = CASCADE_MODES.get(cascade, {})
    for name, on in mode.items():
        unit, what = MODE_UNITS[name]
        if on and not getattr(config, unit):
            from fusemax.config import PRESETS

            with_unit = [n for n, c in PRESETS.items() if getattr(c, unit)]
            raise FuseMaxError(
                f"cascade {cascade} needs a design with {what} (config {unit} = "
                f"true, e.g. the presets {', '.join(with_unit)}); config {config.name} has none (its "
                f"hardware would stop with error.config on MODE {name}=1)")
    entropy = bool(mode.get("entropy"))
    shape = Shape.of(shape)
    _check_fits(config, shape)
    rows, cols = config.rows, config.cols
    s = shape
    P2, M1 = -(-s.P // cols), -(-s.M // rows)
    if pattern is None:
        window = 0
        chunk_lists = [list(range(visible_chunks(s, rows, cols, i, causal))) for i in range(P2)]
    else:
        if causal:
            raise FuseMaxError("give causal=True or a pattern, not both (Causal() is the causal pattern)")
        causal, window, chunk_lists = pattern_chunks(pattern, s, rows, cols)
    sweeps = KV_SWEEPS[cascade]
    per_sweep = [len(c) for c in chunk_lists]
    chunk_lists = [c * sweeps for c in chunk_lists]  # the chunks each block runs, in order
    tiles_per_block = [len(c) for c in chunk_lists]
    n_tiles = s.B * s.H * sum(tiles_per_block)
    n_instr = (4 + int(window > 0) + int(bool(mode))
               + s.B * s.H * sum(2 + 2 * t for t in tiles_per_block) + 1)
    layout, ins, notes, emit = _start_schedule(config, s, n_instr, sched_base,
                                               s.F + 1 if entropy else s.F)
    emit("MASK", f"M = {s.M} keys, P = {s.P} queries", M=s.M, P=s.P)
    emit("CAUSAL", "causal: query p sees key m <= p + M - P" if causal else "no causal mask",
         enable=int(causal))
    if window:
        emit("WINDOW", f"window: query p sees key m > p + M - P - {window}", W=window)
    if entropy:
        emit("MODE", f"{cascade}: softmax scores; every tile also accumulates RT = sum of "
             f"SLN·BQK (F + 1 SLNV steps), every AV also stores the entropy H of its queries "
             f"(s16.11 nats) as line F = {s.F} of the output block", **mode)
    elif mode:
        emit("MODE", f"{cascade}: sigmoid scores, no running max (PRM = 0 on a block's first "
             f"tile, 1 after), AV = " + ("RNV rounded to the output format" if mode["nonorm"]
                                         else "RNV / RD"), **mode)
    skipped = 0
    chunk = 0  # chunks loaded so far: slots rotate across blocks

    def slot_of(n: int) -> int:
        return n % sf.KV_SLOTS

    blocks = []
    for b in range(s.B):
        for h in range(s.H):
            for i in range(P2):
                where = f"b{b} h{h} block {i}"
                p_lo, p_hi = i * cols, min(s.P, (i + 1) * cols)
                T = tiles_per_block[i]
                skipped += sweeps * (M1 - per_sweep[i])
                blocks.append((b, h, i, where, p_lo, p_hi, T))
    # Per block: chunk 0, LDQ and chunks 1, 2 (serial tiles: chunk 0 and LDQ) are issued before
    # the previous block's AV, so they overlap its drain and divides.
    def ldkv(block, base: int, j: int) -> None:
        """Chunk j of ``block``, whose first chunk is the ``base``-th loaded overall."""
        b, h, i, where = block[:4]
        c = chunk_lists[i][j]
        emit("LDKV", f"{where}: K/V chunk {c} (keys {c * rows}..{min(s.M, (c + 1) * rows) - 1}) "
             f"-> slot {slot_of(base + j)}", addr=layout.kv_addr(b, h, c), slot=slot_of(base + j))

    def block_loads(block, base: int, note: str = "") -> None:
        """Chunk 0 of ``block``, its Q block, then (unless tiles are serial) its chunks 1 and
        2. Chunk 0 goes before LDQ: LDQ waits while the previous block's last BQK reads the Q
        buffer, and the in-order issue would leave the memory port idle behind it."""
        b, h, i, where, p_lo, p_hi, T = block
        if T:
            ldkv(block, base, 0)
        emit("LDQ", f"{where}: Q of queries {p_lo}..{p_hi - 1}{note}", addr=layout.q_addr(b, h, i), p_base=p_lo)
        for j in range(1, 1 if serial else min(T, sf.KV_SLOTS)):
            ldkv(block, base, j)

    for n, block in enumerate(blocks):
        b, h, i, where, p_lo, p_hi, T = block
        base = chunk
        if n == 0:
            block_loads(block, base)
        if serial and T > 1:
            ldkv(block, base, 1)
        for j in range(T):
            c = chunk_lists[i][j]
            restart = int(sweeps > 1 and j == per_sweep[i])
            what = ("; first of the block: reset RM" if j == 0 else "") + (
                "; pass 2: RM = GM stays, the sums restart" if restart else "")
            if sweeps > 1 and j == 0:
                what += "; pass 1: GM = the running max"
            emit("TILE", f"{where}: tile m1 = {c}, keys {c * rows}..{min(s.M, (c + 1) * rows) - 1} "
                 f"x queries {p_lo}..{p_hi - 1}" + what,
                 slot=slot_of(base + j), m_base=c * rows, serial=serial, first=int(j == 0),
                 restart=restart)
            # chunk j + 2 goes into the slot of chunk j - 1, free once its SLNV starts (serial
            # tiles: chunk 1 goes right before TILE 0, so an LDKV never waits for the loader
            # while a TILE behind it could run)
            if j + 2 < T and (serial or j >= 1):
                ldkv(block, base, j + 2)
        chunk += T
        # the next block's loads go before this block's AV, which they overlap -- unless this
        # block has no tile: its AV takes the staged p_base, so the next LDQ must wait
        # (serial tiles: only chunk 0 and LDQ, see above)
        has_next = n + 1 < len(blocks)
        if has_next and T > 0:
            block_loads(blocks[n + 1], chunk, " (staged for its first TILE)")
        note = f"{where}: divide, store output of queries {p_lo}..{p_hi - 1}" + (
            f" and their entropy H (line {layout.out_lines - 1})" if entropy else "")
        if per_sweep[i] < M1:
            gone = M1 - per_sweep[i]
            note += (f" ({'causal' if pattern is None else 'pattern'}: {gone} masked "
                     f"tile{'s' if gone != 1 else ''} skipped{' per pass' if sweeps > 1 else ''}"
                     + (", no key visible: reset the state first: RD = 0, output 0"
                        + (", H 0" if entropy else "") if T == 0 else "") + ")")
        emit("AV", note, addr=layout.out_addr(b, h, i), first=int(T == 0))
        if has_next and T == 0:
            block_loads(blocks[n + 1], chunk, " (staged for its first TILE)")
    emit("END", "wait for stores, raise done")
    assert len(ins) == n_instr
    return Schedule(config, s, bool(causal), ins, notes, layout, cascade=cascade,
                    tiles=n_tiles, tiles_skipped=skipped, binding=binding, window=window,
                    pattern=None if pattern is None else repr(pattern), mode=dict(mode))


def flow_segments(N: int, rows: int, cols: int) -> list[tuple[int, int]]:
    """The FLOW segments [t, t_end) of a sequence of ``N`` tokens: each within one Q block of
    ``cols`` queries and one K/V chunk of ``rows`` keys (t_end = the next multiple of cols or
    of rows above t, at most N)."""
    out, t = [], 0
    while t < N:
        t_end = min(N, (t // cols + 1) * cols, (t // rows + 1) * rows)
        out.append((t, t_end))
        t = t_end
    return out


def _flow_refusals(config: FuseMaxConfig, s: Shape, cascade: str, binding: str, pattern) -> None:
    if not config.flow_unit:
        from fusemax.config import PRESETS

        with_unit = [n for n, c in PRESETS.items() if c.flow_unit]
        raise FuseMaxError(
            f"cascade {cascade} needs a design with the flow engine (config flow_unit = true, "
            f"e.g. the presets {', '.join(with_unit)}); config {config.name} has none (its "
            f"hardware would stop with error.config on FLOWC)")
    if s.P != s.M:
        raise FuseMaxError(f"{cascade} needs P = M (one sequence of N tokens: query i and key i "
                           f"are token i), got P = {s.P}, M = {s.M}")
    if pattern is not None:
        raise FuseMaxError(f"{cascade} takes no attention pattern: it is causal by construction "
                           f"(token i sees tokens 0..i through running sums; the flow engine has "
                           f"no mask)")
    if binding != "fusemax":
        raise FuseMaxError(f"{cascade} has no tile binding to choose (binding {binding!r}): the "
                           f"flow engine runs its tokens one after the other")
    if s.M > FLOW_MAX_N:
        raise FuseMaxError(
            f"{cascade}: N = {s.M} tokens exceeds {FLOW_MAX_N} = 2^17: the flow engine's running "
            f"sums KC, QC (34-bit registers, 15 fraction bits) hold sums of values up to 1.0 "
            f"and its token index is 18 bits, so at most 2^17 tokens fit")


def _compile_flow(config: FuseMaxConfig, shape, causal: bool, cascade: str, sched_base: int,
                  binding: str, pattern, clamp: float | None) -> Schedule:
    """The schedule of causal Flow-Attention (a design with ``flow_unit``).

    ``HDR, SHAPE, MASK (M = P = N), FLOWC clamp=c2``, then per (b, h) the tokens t = 0..N-1 in
    the segments of :func:`flow_segments`. At a segment start, ``LDQ`` of Q block t // cols when
    t % cols == 0 (after the FLOW that stored the previous block), ``LDKV`` of chunk t // rows
    when t % rows == 0 and it is not loaded yet; before each chunk's first FLOW, the next chunk
    (of this or the next (b, h)) loads into the next slot (n % 3 for the n-th chunk loaded), in
    the background while the FLOWs run. ``FLOW addr=out block, slot, first = (t == 0),
    store = (the segment ends the Q block or the sequence), q_lane = t % cols, kv_lane = t % rows,
    count``. The layout is the standard one (Q blocks of cols queries, K/V chunks of rows keys,
    output blocks of F lines). The causal flag is not used (no CAUSAL instruction: the cascade
    is causal by construction), so either value is accepted."""
    s = Shape.of(shape)
    _flow_refusals(config, s, cascade, binding, pattern)
    _check_fits(config, s)
    c = FLOW_CLAMP if clamp is None else clamp
    c2 = flow_clamp_code(c, config.numerics)  # <= score.max_code < 2^15: fits FLOWC's field
    rows, cols = config.rows, config.cols
    N = s.M
    P2, M1 = -(-N // cols), -(-N // rows)
    segs = flow_segments(N, rows, cols)
    n_instr = 4 + s.B * s.H * (P2 + M1 + len(segs)) + 1
    layout, ins, notes, emit = _start_schedule(config, s, n_instr, sched_base)
    emit("MASK", f"N = M = P = {N} tokens", M=N, P=N)
    emit("FLOWC", f"clamp c = {c:g}: c2 = round(c·log2(e)·2^{config.numerics.score.frac}) = {c2} "
         f"score codes", clamp=c2)
    chunks = [(b, h, j) for b in range(s.B) for h in range(s.H) for j in range(M1)]
    slot_of: dict[tuple[int, int, int], int] = {}  # chunk -> slot, once its LDKV is emitted

    def ldkv(n: int, why: str = "") -> None:
        b, h, j = chunks[n]
        slot_of[chunks[n]] = n % sf.KV_SLOTS
        emit("LDKV", f"b{b} h{h}: K/V chunk {j} (keys {j * rows}..{min(N, (j + 1) * rows) - 1}) -> "
             f"slot {n % sf.KV_SLOTS}{why}", addr=layout.kv_addr(b, h, j), slot=n % sf.KV_SLOTS)

    for b in range(s.B):
        for h in range(s.H):
            for t, t_end in segs:
                i, j = t // cols, t // rows
                where = f"b{b} h{h}"
                if t % cols == 0:
                    p_hi = min(N, (i + 1) * cols)
                    emit("LDQ", f"{where}: Q block {i} (queries {i * cols}..{p_hi - 1})",
                         addr=layout.q_addr(b, h, i), p_base=i * cols)
                if t % rows == 0:
                    n = (b * s.H + h) * M1 + j
                    if (b, h, j) not in slot_of:
                        ldkv(n)
                    if n + 1 < len(chunks) and chunks[n + 1] not in slot_of:
                        ldkv(n + 1, " (prefetch: loads while the FLOWs before its first use run)")
                store = int(t_end % cols == 0 or t_end == N)
                what = (("; first: reset the state, token index 0" if t == 0 else "")
                        + (f"; store output block {i} (queries {i * cols}..{min(N, (i + 1) * cols) - 1})"
                           if store else ""))
                emit("FLOW", f"{where}: tokens {t}..{t_end - 1} (Q lanes {t % cols}.., K/V lanes "
                     f"{t % rows}..){what}", addr=layout.out_addr(b, h, i), slot=slot_of[(b, h, j)],
                     first=int(t == 0), store=store, q_lane=t % cols, kv_lane=t % rows,
                     count=t_end - t)
    emit("END", "wait for stores, raise done")
    assert len(ins) == n_instr, (len(ins), n_instr)
    return Schedule(config, s, True, ins, notes, layout, cascade=cascade, tiles=0,
                    tiles_skipped=0, binding=binding, flow_tokens=s.B * s.H * N,
                    flow_clamp=float(c), flow_clamp_code=c2)


def _check_fits(config: FuseMaxConfig, s: Shape) -> None:
    c, n = config, config.numerics
    if c.mem_lanes * 16 < sf.WORD_BITS:
        raise FuseMaxError(
            f"config {c.name} has {c.mem_lanes}-lane memory lines ({16 * c.mem_lanes} bits): a "
            f"schedule instruction needs {sf.WORD_BITS} bits, so rows or cols must be >= 4")
    if s.E > c.max_e:
        raise FuseMaxError(f"E = {s.E} exceeds the Q buffer of config {c.name} (max_e = {c.max_e}); "
                           f"the Q block and each K chunk hold max_e lines")
    if s.F > c.max_f:
        raise FuseMaxError(f"F = {s.F} exceeds the V buffer and RNV register file of config "
                           f"{c.name} (max_f = {c.max_f})")
    if s.E > (1 << n.acc_guard_bits):
        raise FuseMaxError(f"E = {s.E} exceeds 2**acc_guard_bits = {1 << n.acc_guard_bits} of config "
                           f"{c.name}: the BQK accumulator would not hold the exact dot product")
    if max(s.E, s.F) >= (1 << _SHAPE_BITS):
        raise FuseMaxError(f"E or F >= 2^{_SHAPE_BITS} does not fit the SHAPE instruction")
    if s.M >= (1 << _MASK_M_BITS):
        raise FuseMaxError(f"M = {s.M} keys does not fit the MASK instruction (< 2^{_MASK_M_BITS})")
    if s.P >= (1 << _MASK_P_BITS):
        raise FuseMaxError(f"P = {s.P} queries does not fit the MASK instruction (< 2^{_MASK_P_BITS})")


# ---------------------------------------------------------------------------------------------
# programs: schedule + filled image


@dataclass
class Program:
    """A compiled workload: the schedule, the memory image it runs on, and how to read it back."""

    schedule: Schedule
    image: np.ndarray  #: (n_lines, mem_lanes) uint16
    scale: float
    input_saturation: dict[str, int] = field(default_factory=dict)

    @property
    def config(self) -> FuseMaxConfig:
        return self.schedule.config

    @property
    def shape(self) -> Shape:
        return self.schedule.shape

    @property
    def causal(self) -> bool:
        return self.schedule.causal

    @property
    def instructions(self) -> list[sf.Instruction]:
        return self.schedule.instructions

    @property
    def layout(self) -> Layout:
        return self.schedule.layout

    @property
    def sched_base(self) -> int:
        return self.schedule.sched_base

    @property
    def output_range(self) -> tuple[int, int]:
        return self.schedule.output_range

    def listing(self) -> str:
        return self.schedule.listing()

    def _codes(self, image: np.ndarray, base: int) -> np.ndarray:
        """The image (or a dump starting at line ``base``) as sign-extended 16-bit codes,
        checked to cover the output range."""
        L = self.layout
        img = np.asarray(image)
        if img.ndim != 2 or img.shape[1] != L.mem_lanes:
            raise FuseMaxError(f"image must be (lines, {L.mem_lanes}), got {img.shape}")
        lo, hi = L.output_range
        if base > lo or base + img.shape[0] < hi:
            raise FuseMaxError(f"image lines [{base}, {base + img.shape[0]}) do not cover the "
                               f"outputs [{lo}, {hi})")
        return img.astype(np.uint16).view(np.int16).astype(np.int64)

    def decode_output(self, image: np.ndarray, base: int = 0) -> np.ndarray:
        """Output codes (B, H, P, F) int64 from an image (or a dump whose first row is line
        ``base``, e.g. the ``output_range`` dump)."""
        L, s = self.layout, self.shape
        codes = self._codes(image, base)
        out = np.zeros((s.B, s.H, L.P2 * L.cols, s.F), np.int64)
        for b in range(s.B):
            for h in range(s.H):
                for i in range(L.P2):
                    a = L.out_addr(b, h, i) - base
                    out[b, h, i * L.cols:(i + 1) * L.cols, :] = codes[a:a + s.F, :L.cols].T
        return out[:, :, :s.P, :]

    @property
    def has_entropy(self) -> bool:
        """Whether the program stores the entropy H (``MODE entropy=1``, attention-entropy)."""
        return self.layout.has_entropy

    def decode_entropy(self, image: np.ndarray, base: int = 0) -> np.ndarray:
        """The entropy codes H (B, H, P) int64 (:data:`~fusemax.sw.golden_variants.ENTROPY_FORMAT`,
        s16.11 nats) from an image or a dump starting at line ``base``: lane c of line F of
        output block i is query i·cols + c. FuseMaxError when the schedule stores no H."""
        L, s = self.layout, self.shape
        if not L.has_entropy:
            raise FuseMaxError(f"the schedule ({self.schedule.cascade}) stores no entropy H; "
                               f"attention-entropy (MODE entropy=1) does")
        codes = self._codes(image, base)
        out = np.zeros((s.B, s.H, L.P2 * L.cols), np.int64)
        for b in range(s.B):
            for h in range(s.H):
                for i in range(L.P2):
                    out[b, h, i * L.cols:(i + 1) * L.cols] = codes[L.h_addr(b, h, i) - base, :L.cols]
        return out[:, :, :s.P]

    def hex_text(self) -> str:
        return hex_lines(self.image)

    def write_hex(self, path) -> Path:
        """The image in ``$readmemh`` format: one line of mem_lanes*4 hex digits per memory
        line, lane 0 rightmost."""
        path = Path(path)
        path.write_text(self.hex_text())
        return path


def hex_lines(image: np.ndarray) -> str:
    img = np.ascontiguousarray(np.asarray(image, np.uint16)[:, ::-1]).astype(">u2")
    lanes = img.shape[1]
    hx = binascii.hexlify(img.tobytes())
    rows = np.frombuffer(hx, dtype=f"S{lanes * 4}")
    return (b"\n".join(rows) + b"\n").decode("ascii") if len(rows) else ""


def read_hex(path_or_text, lanes: int) -> np.ndarray:
    """Parse ``$writememh`` / ``$readmemh`` text into (lines, lanes) uint16 (lane 0 = low bits).
    ``//`` comments are skipped; ``@addr`` markers are not supported (contiguous dumps only)."""
    text = path_or_text
    if isinstance(path_or_text, Path) or (isinstance(path_or_text, str) and "\n" not in path_or_text
                                          and Path(path_or_text).is_file()):
        text = Path(path_or_text).read_text()
    digits = lanes * 4
    rows = []
    for line in text.splitlines():
        line = line.split("//", 1)[0].strip()
        if not line:
            continue
        for word in line.split():
            if word.startswith("@"):
                raise FuseMaxError("address markers (@...) in a memory dump are not supported")
            word = word.replace("_", "").lower()
            if any(ch in "xz" for ch in word):
                word = re.sub("[xz]", "0", word)
            if len(word) > digits:
                word = word[-digits:]
            rows.append(word.rjust(digits, "0"))
    if not rows:
        return np.zeros((0, lanes), np.uint16)
    raw = np.frombuffer(bytes.fromhex("".join(rows)), dtype=">u2").reshape(len(rows), lanes)
    return np.ascontiguousarray(raw[:, ::-1]).astype(np.uint16)


def compile_attention(config: FuseMaxConfig, q, k, v, scale: float | None = None,
                      causal: bool = False, cascade: str = "attention-1pass",
                      binding: str = "fusemax", pattern=None, clamp: float | None = None) -> Program:
    """Compile attention of float ``q`` (B,H,P,E), ``k`` (B,H,M,E), ``v`` (B,H,M,F) for
    ``config``: the schedule plus the memory image with the quantized inputs (Q' = Q * scale *
    log2(e), as the golden's ``quantize_inputs``). ``scale`` defaults to 1/sqrt(E).
    ``pattern``: see :func:`compile_schedule`.

    ``flowformer-causal``: Q and K as x·log2(e) in the score format, V in the v format (the
    golden's :func:`~fusemax.sw.golden_variants.flow_quantize`); Flowformer has no 1/sqrt(E)
    scale, so ``scale`` must be None or 1 (the program's scale is 1.0); ``clamp`` the bound of
    the conserved source."""
    from fusemax.sw.golden import quantize_inputs

    q = np.asarray(q, np.float64)
    k = np.asarray(k, np.float64)
    v = np.asarray(v, np.float64)
    shape = Shape.of_arrays(q, k, v)
    sched = compile_schedule(config, shape, causal=causal, cascade=cascade, binding=binding,
                             pattern=pattern, clamp=clamp)
    if sched.is_flow:
        if scale is not None and scale != 1.0:
            raise FuseMaxError(f"{sched.cascade} has no score scale (Flowformer has no 1/sqrt(E)); "
                               f"got scale = {scale}")
        for name, a in (("Q", q), ("K", k), ("V", v)):
            if not np.all(np.isfinite(a)):
                raise FuseMaxError(f"{name} holds NaN or Inf")
        xq, xk, vc, sat = flow_quantize(q, k, v, config.numerics)
        return Program(sched, build_image(sched, xq, xk, vc), 1.0, sat)
    if scale is None:
        scale = 1.0 / math.sqrt(shape.E)
    if not np.isfinite(scale):
        raise FuseMaxError(f"scale must be finite, got {scale}")
    qc, kc, vc, sat = quantize_inputs(q, k, v, config, scale)
    image = build_image(sched, qc, kc, vc)
    return Program(sched, image, float(scale), {r: int(n) for r, n in sat.items()})


def build_image(sched: Schedule, qc, kc, vc) -> np.ndarray:
    """The memory image of ``sched`` with the quantized codes ``qc``, ``kc``, ``vc``."""
    L, s = sched.layout, sched.shape
    rows, cols, lanes = L.rows, L.cols, L.mem_lanes
    img = np.zeros((L.n_lines, lanes), np.uint16)
    img[L.sched_base:L.sched_base + L.sched_lines] = sf.pack_words(sched.words, lanes, L.sched_lines)

    def u16(a):
        return (np.asarray(a, np.int64) & 0xFFFF).astype(np.uint16)

    qc, kc, vc = u16(qc), u16(kc), u16(vc)
    P2, M1 = L.P2, L.M1
    # pad P to P2*cols and M to M1*rows with zeros, then place whole regions with reshapes
    qp = np.zeros((s.B, s.H, P2 * cols, s.E), np.uint16)
    qp[:, :, :s.P] = qc
    kp = np.zeros((s.B, s.H, M1 * rows, s.E), np.uint16)
    kp[:, :, :s.M] = kc
    vp = np.zeros((s.B, s.H, M1 * rows, s.F), np.uint16)
    vp[:, :, :s.M] = vc
    for b in range(s.B):
        for h in range(s.H):
            base = L.bh_base(b, h)
            # Q blocks: (P2, E lines, cols lanes)
            qb = qp[b, h].reshape(P2, cols, s.E).transpose(0, 2, 1)
            img[base:base + P2 * s.E, :cols] = qb.reshape(P2 * s.E, cols)
            kvb = np.concatenate([kp[b, h].reshape(M1, rows, s.E).transpose(0, 2, 1),
                                  vp[b, h].reshape(M1, rows, s.F).transpose(0, 2, 1)], axis=1)
            a = L.kv_addr(b, h, 0)
            img[a:a + M1 * (s.E + s.F), :rows] = kvb.reshape(M1 * (s.E + s.F), rows)
    return img


def buffer_bytes(config: FuseMaxConfig) -> dict[str, int]:
    """On-chip storage of a configuration in bytes (none of it depends on M):
    Q buffer (max_e x cols Q' values), the three K/V slots (max_e K + max_f V lines of rows
    values each), the RNV register files (max_f per 1D PE, + the RT entry with ``entropy_unit``)
    and the RM (+ valid) / RD state; with ``entropy_unit``, the entropy finisher's capture
    registers (:mod:`fusemax.hw.entropy`); with ``flow_unit``, the flow engine's memories
    (:func:`fusemax.hw.flow.flow_memories`)."""
    from fusemax.hw.pe1d import rf_depth

    n = config.numerics
    bits = {
        "q_buffer": config.max_e * config.cols * n.q.width,
        "kv_buffer": sf.KV_SLOTS * (config.max_e * config.rows * n.k.width + config.max_f * config.rows * n.v.width),
        "rnv_regfile": config.cols * rf_depth(config) * n.rnv.width,
        "rm_rd_state": config.cols * (n.score.width + 1 + n.rd.width),
    }
    if config.entropy_unit:  # the finisher's copy of every lane's RM, RD, RT and the H line
        bits["entropy_capture"] = config.cols * (n.score.width + n.rd.width + n.rnv.width + 16)
    if config.flow_unit:  # the flow engine's state and per-token vectors
        from fusemax.hw.flow import flow_memories

        bits["flow_engine"] = sum(w * d for w, d, _ in flow_memories(config).values())
    out = {k: -(-v // 8) for k, v in bits.items()}
    out["total"] = sum(out.values())
    return out


def iter_words(data: bytes) -> Iterable[int]:
    """Words of a ``sched.bin`` file (little-endian uint64)."""
    if len(data) % 8:
        raise FuseMaxError(f"a schedule file holds whole 64-bit words; got {len(data)} bytes")
    return (int(w) for w in np.frombuffer(data, dtype="<u8"))
