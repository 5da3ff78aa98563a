"""Multiply-accumulate: the PE's one multiplier and adder.

``acc <= (load_c ? c : acc) + a * b`` on each cycle with ``en``; exact (no rounding) in an
``acc_width``-bit two's-complement register, so any summation order gives the same bits
(configs size ``acc_width`` so the exact sum never wraps; if it does, it wraps like the twin).

Ports
-----
a : In(a_shape), b : In(b_shape)       operands (signed or unsigned)
c : In(signed(acc_width))              addend used instead of ``acc`` when ``load_c``
load_c : In(1)                         1: start a new sum from ``c`` (c = 0 clears)
en : In(1)                             update the accumulator this cycle
acc : Out(signed(acc_width))           registered result, latency 1

Twin: :func:`fusemax.sw.numerics.mac` (``mac(a, b, c_or_acc, acc_width)``).
"""

from amaranth.hdl import Module, Mux, Shape, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class Mac(wiring.Component):
    LATENCY = 1

    def __init__(self, a_shape, b_shape, acc_width: int):
        self.a_shape = Shape.cast(a_shape)
        self.b_shape = Shape.cast(b_shape)
        self.acc_width = acc_width
        super().__init__({
            "a": In(self.a_shape),
            "b": In(self.b_shape),
            "c": In(signed(acc_width)),
            "load_c": In(1),
            "en": In(1),
            "acc": Out(signed(acc_width)),
        })

    def elaborate(self, platform):
        m = Module()
        base = Mux(self.load_c, self.c, self.acc)
        with m.If(self.en):
            m.d.sync += self.acc.eq(base + self.a * self.b)
        return m
