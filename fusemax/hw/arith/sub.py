"""Exact subtract ``y = a - b`` (used for BQK − RM and RM_old − RM_new, the exp arguments).

The result is one bit wider than the wider operand, so it never wraps. Combinational.
Ports: a : In(a_shape), b : In(b_shape), y : Out(signed(max width + 1)).
Twin: :func:`fusemax.sw.numerics.sub`.
"""

from amaranth.hdl import Module, Shape, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class Sub(wiring.Component):
    LATENCY = 0

    def __init__(self, a_shape, b_shape):
        self.a_shape = Shape.cast(a_shape)
        self.b_shape = Shape.cast(b_shape)
        w = max(self.a_shape.width + (not self.a_shape.signed), self.b_shape.width + (not self.b_shape.signed)) + 1
        self.y_width = w
        super().__init__({"a": In(self.a_shape), "b": In(self.b_shape), "y": Out(signed(w))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(self.a - self.b)
        return m
