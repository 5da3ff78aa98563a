"""Number formats: one object gives the Amaranth shapes/expressions and the matching NumPy functions.

A format describes how a real number is stored in a hardware register. The golden model
(:mod:`fusemax.sw.golden`) and every operator in :mod:`fusemax.hw.arith` take their widths and
rounding from these objects, so the software twin and the circuit cannot drift apart.

Only two's-complement (or unsigned) fixed point is implemented. :class:`NumberFormat` is the
interface a floating-point format (fp16/bf16) will implement later; code that only needs
``quantize``/``to_float``/``shape`` works with either.

Rounding modes (used wherever a value loses fraction bits; see ``docs/numerics.md``):

``"floor"``
    truncate toward −∞ (drop the low bits of the two's-complement word).
``"nearest_even"``
    round to nearest, ties to even (the default: unbiased, so repeated rescales do not drift).
``"nearest_away"``
    round to nearest, ties away from zero.

All three are a constant add plus one bit of the input before an arithmetic right shift, so
they cost one adder in hardware; :func:`round_shift` (NumPy) and :func:`round_shift_hdl`
(Amaranth) are the twin implementations.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from fusemax.errors import FuseMaxError

ROUNDING_MODES = ("floor", "nearest_even", "nearest_away")


def check_rounding(mode: str) -> str:
    if mode not in ROUNDING_MODES:
        raise FuseMaxError(f"unknown rounding mode {mode!r}; known: {', '.join(ROUNDING_MODES)}")
    return mode


# --------------------------------------------------------------------------------------
# Integer rounding / saturation (NumPy side)
# --------------------------------------------------------------------------------------

def round_shift(v, shift: int, mode: str) -> np.ndarray:
    """Divide the integers ``v`` by ``2**shift`` with rounding ``mode`` (bit-exact twin of
    :func:`round_shift_hdl`). ``shift <= 0`` multiplies exactly by ``2**-shift``."""
    v = np.asarray(v, dtype=np.int64)
    if shift <= 0:
        return v << np.int64(-shift)
    s = np.int64(shift)
    if mode == "floor":
        return v >> s
    half = np.int64(1) << np.int64(shift - 1)
    if mode == "nearest_even":
        return (v + (half - 1) + ((v >> s) & 1)) >> s
    if mode == "nearest_away":
        return (v + half - (v < 0).astype(np.int64)) >> s
    raise FuseMaxError(f"unknown rounding mode {mode!r}; known: {', '.join(ROUNDING_MODES)}")


def wrap(v, width: int, signed: bool = True) -> np.ndarray:
    """Reduce integers to ``width`` bits two's complement (what a register of that width holds)."""
    v = np.asarray(v, dtype=np.int64)
    mask = np.int64((1 << width) - 1)
    u = v & mask
    if signed:
        top = np.int64(1 << (width - 1))
        u = np.where(u >= top, u - np.int64(1 << width), u)
    return u


# --------------------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------------------

class NumberFormat(abc.ABC):
    """What every number format offers (fixed point now, fp16/bf16 later).

    Values are carried as integer codes (``np.int64`` arrays on the NumPy side, Amaranth
    ``Value`` objects on the hardware side).
    """

    kind: ClassVar[str]
    width: int  # total bits of one value

    @abc.abstractmethod
    def quantize(self, x, mode: str = "nearest_even") -> tuple[np.ndarray, int]:
        """Float array -> (integer codes, number of values that saturated)."""

    @abc.abstractmethod
    def to_float(self, codes) -> np.ndarray:
        """Integer codes -> float64 values."""

    @abc.abstractmethod
    def shape(self):
        """The Amaranth shape of one value."""

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class FixedFormat(NumberFormat):
    """Two's-complement (``signed=True``) or unsigned fixed point: ``width`` bits, of which
    ``frac`` are fraction bits. The code ``c`` stands for ``c * 2**-frac``.

    ``frac`` may be negative (coarser than integers) or larger than ``width`` (all fraction);
    only ``width >= 1`` (``>= 2`` when signed) and ``width <= 62`` are required so that every
    NumPy computation fits in int64.
    """

    width: int
    frac: int
    signed: bool = True
    kind: ClassVar[str] = "fixed"

    def __post_init__(self):
        if not isinstance(self.width, int) or isinstance(self.width, bool):
            raise FuseMaxError(f"format width must be an integer, got {self.width!r}")
        if not isinstance(self.frac, int) or isinstance(self.frac, bool):
            raise FuseMaxError(f"format frac must be an integer, got {self.frac!r}")
        if self.width < (2 if self.signed else 1):
            raise FuseMaxError(f"format width must be >= {2 if self.signed else 1}, got {self.width}")
        if self.width > 62:
            raise FuseMaxError(f"format width {self.width} > 62 bits is not supported (int64 models)")
        if abs(self.frac) > 62:
            raise FuseMaxError(f"format frac {self.frac} out of range (|frac| <= 62)")

    # ---- description ------------------------------------------------------------
    @property
    def min_code(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> float:
        return 2.0 ** -self.frac

    @property
    def min_value(self) -> float:
        return self.min_code * self.lsb

    @property
    def max_value(self) -> float:
        return self.max_code * self.lsb

    def describe(self) -> str:
        s = "s" if self.signed else "u"
        return f"{s}{self.width}.{self.frac} [{self.min_value:g}, {self.max_value:g}] lsb 2^-{self.frac}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "fixed", "width": self.width, "frac": self.frac, "signed": self.signed}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "FixedFormat":
        d = dict(d)
        kind = d.pop("kind", "fixed")
        if kind != "fixed":
            raise FuseMaxError(f"number format kind {kind!r} is not implemented (only 'fixed')")
        unknown = set(d) - {"width", "frac", "signed"}
        if unknown:
            raise FuseMaxError(f"unknown fixed-format field(s) {sorted(unknown)}")
        try:
            return FixedFormat(int(d["width"]), int(d["frac"]), bool(d.get("signed", True)))
        except KeyError as exc:
            raise FuseMaxError(f"fixed format needs field {exc.args[0]!r}") from None

    # ---- NumPy side ---------------------------------------------------------------
    def saturate(self, codes) -> tuple[np.ndarray, int]:
        """Clip integer codes into range; returns (codes, number clipped)."""
        codes = np.asarray(codes, dtype=np.int64)
        lo, hi = np.int64(self.min_code), np.int64(self.max_code)
        n = int(np.count_nonzero((codes < lo) | (codes > hi)))
        return np.clip(codes, lo, hi), n

    def quantize(self, x, mode: str = "nearest_even") -> tuple[np.ndarray, int]:
        """Float -> codes, rounding with ``mode`` and saturating. NaN is an error."""
        check_rounding(mode)
        x = np.asarray(x, dtype=np.float64)
        if np.isnan(x).any():
            raise FuseMaxError("cannot quantize NaN")
        scaled = np.ldexp(x, self.frac)
        if mode == "floor":
            r = np.floor(scaled)
        elif mode == "nearest_even":
            r = np.rint(scaled)
        else:
            r = np.where(scaled >= 0, np.floor(scaled + 0.5), np.ceil(scaled - 0.5))
        lim = float(1 << 62)
        r = np.clip(r, -lim, lim)
        return self.saturate(r.astype(np.int64))

    def to_float(self, codes) -> np.ndarray:
        return np.ldexp(np.asarray(codes, dtype=np.float64), -self.frac)

    def requantize(self, codes, from_frac: int, mode: str) -> tuple[np.ndarray, int]:
        """Codes with ``from_frac`` fraction bits -> this format (round, then saturate)."""
        return self.saturate(round_shift(codes, from_frac - self.frac, mode))

    # ---- Amaranth side ------------------------------------------------------------
    def shape(self):
        from amaranth.hdl import signed, unsigned

        return signed(self.width) if self.signed else unsigned(self.width)

    def const(self, code: int):
        from amaranth.hdl import Const

        return Const(int(code), self.shape())

    def saturate_hdl(self, value):
        """Amaranth: clip ``value`` into range. Returns ``(expr of self.shape(), overflow bit)``."""
        from amaranth.hdl import Mux

        hi = self.max_code
        lo = self.min_code
        over = value > hi
        under = value < lo
        clipped = Mux(over, hi, Mux(under, lo, value))
        bits = clipped[: self.width]
        return (bits.as_signed() if self.signed else bits), over | under

    def requantize_hdl(self, value, from_frac: int, mode: str):
        """Amaranth twin of :meth:`requantize`: ``(expr, overflow bit)``."""
        return self.saturate_hdl(round_shift_hdl(value, from_frac - self.frac, mode))


def round_shift_hdl(value, shift: int, mode: str):
    """Amaranth twin of :func:`round_shift` (same integer result for every input)."""
    check_rounding(mode)
    if shift <= 0:
        return value << (-shift)
    if mode == "floor":
        return value >> shift
    half = 1 << (shift - 1)
    if mode == "nearest_even":
        if shift < len(value):
            odd = value[shift]
        else:  # bit `shift` of a narrower value is its sign extension
            odd = value[-1] if value.shape().signed else 0
        return (value + (half - 1) + odd) >> shift
    sign = value[-1] if value.shape().signed else 0
    return (value + half - sign) >> shift


def format_from_dict(d: dict[str, Any]) -> NumberFormat:
    """Build a format from its ``to_dict()`` (the JSON form)."""
    if isinstance(d, NumberFormat):
        return d
    if not isinstance(d, dict):
        raise FuseMaxError(f"a number format must be a JSON object, got {d!r}")
    return FixedFormat.from_dict(d)


def parse_format(text: str) -> FixedFormat:
    """``"s16.12"`` -> FixedFormat(16, 12, signed=True); ``"u16.15"`` -> unsigned."""
    t = text.strip()
    if len(t) < 2 or t[0] not in "su" or "." not in t:
        raise FuseMaxError(f"cannot parse format {text!r}; expected e.g. 's16.12' or 'u16.15'")
    try:
        w, f = t[1:].split(".")
        return FixedFormat(int(w), int(f), t[0] == "s")
    except ValueError:
        raise FuseMaxError(f"cannot parse format {text!r}; expected e.g. 's16.12' or 'u16.15'") from None
