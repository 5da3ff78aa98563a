"""Max of two values that may each be absent (the running max starts at −∞ = not valid).

``y = b if b_valid and (not a_valid or b > a) else a``; ``y_valid = a_valid | b_valid``.
Combinational (latency 0); register in the PE as needed.

Ports: a, b : In(shape); a_valid, b_valid : In(1); y : Out(shape); y_valid : Out(1).
Twin: :func:`fusemax.sw.numerics.max_valid`.
"""

from amaranth.hdl import Module, Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class MaxValid(wiring.Component):
    LATENCY = 0

    def __init__(self, shape):
        self.shape = Shape.cast(shape)
        super().__init__({
            "a": In(self.shape), "a_valid": In(1),
            "b": In(self.shape), "b_valid": In(1),
            "y": Out(self.shape), "y_valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        take_b = self.b_valid & (~self.a_valid | (self.b > self.a))
        with m.If(take_b):
            m.d.comb += self.y.eq(self.b)
        with m.Else():
            m.d.comb += self.y.eq(self.a)
        m.d.comb += self.y_valid.eq(self.a_valid | self.b_valid)
        return m
