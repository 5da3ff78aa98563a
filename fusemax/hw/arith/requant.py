"""Round a wide exact value into a number format and saturate (one of the explicit rounding points).

``y = sat(round(x / 2**(from_frac - fmt.frac)))`` with the config's rounding mode; ``sat``
is 1 when the rounded value was clipped (the source of the sticky saturation flags).
Combinational. Ports: x : In(in_shape), y : Out(fmt.shape()), sat : Out(1).
Twin: :func:`fusemax.sw.numerics.requantize`.
"""

from amaranth.hdl import Module, Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fusemax.hw.formats import FixedFormat


class Requant(wiring.Component):
    LATENCY = 0

    def __init__(self, in_shape, from_frac: int, fmt: FixedFormat, mode: str):
        self.in_shape = Shape.cast(in_shape)
        self.from_frac = from_frac
        self.fmt = fmt
        self.mode = mode
        super().__init__({"x": In(self.in_shape), "y": Out(fmt.shape()), "sat": Out(1)})

    def elaborate(self, platform):
        m = Module()
        y, sat = self.fmt.requantize_hdl(self.x, self.from_frac, self.mode)
        m.d.comb += [self.y.eq(y), self.sat.eq(sat)]
        return m
