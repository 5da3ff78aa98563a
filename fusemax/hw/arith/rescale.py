"""Rescale by a correction factor: ``y = sat(round(x * c / 2**c_fmt.frac))`` in ``x``'s format.

Used for SPD = RD·PRM and SPNV = RNV·PRM (c = PRM in the exp format, 0 <= c <= 1, so the
result never grows and ``sat`` stays 0 unless c > 1 is fed). Combinational (the 1D PE may
register it or run it on its MAC). Ports: x : In(fmt.shape()), c : In(c_fmt.shape()),
y : Out(fmt.shape()), sat : Out(1). Twin: :func:`fusemax.sw.numerics.rescale`.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fusemax.hw.formats import FixedFormat


class Rescale(wiring.Component):
    LATENCY = 0

    def __init__(self, fmt: FixedFormat, c_fmt: FixedFormat, mode: str):
        self.fmt = fmt
        self.c_fmt = c_fmt
        self.mode = mode
        super().__init__({"x": In(fmt.shape()), "c": In(c_fmt.shape()), "y": Out(fmt.shape()), "sat": Out(1)})

    def elaborate(self, platform):
        m = Module()
        y, sat = self.fmt.requantize_hdl(self.x * self.c, self.fmt.frac + self.c_fmt.frac, self.mode)
        m.d.comb += [self.y.eq(y), self.sat.eq(sat)]
        return m
