"""The start/busy/done handshake of the multi-cycle arithmetic units (Exp2, Sigmoid, Log2), shared
by their tests, and a bank runner that pushes many codes through side-by-side copies."""

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from amaranth.sim import Simulator


def used(component):
    """Elaborate once (as a build would), so Amaranth does not warn about an unused component."""
    from amaranth.hdl import Fragment

    Fragment.get(component, None)
    return component


class _Bank(wiring.Component):
    """``units`` (start/x/done/y components) sharing one start."""

    def __init__(self, units):
        self.units = units
        super().__init__({"start": In(1)})

    def elaborate(self, platform):
        m = Module()
        for i, u in enumerate(self.units):
            m.submodules[f"u{i}"] = u
            m.d.comb += u.start.eq(self.start)
        return m


def run_bank(make_unit, xs, lanes: int, flag: str, pad: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(y, flag)`` of ``lanes`` units from ``make_unit()`` for every code in ``xs`` (padded
    with ``pad`` to a multiple of ``lanes``), one batch per LATENCY cycles; asserts that
    ``done`` rises exactly LATENCY cycles after ``start`` (not before) in every unit."""
    xs = np.asarray(xs, np.int64)
    xin = np.concatenate([xs, np.full((-len(xs)) % lanes, pad, np.int64)])
    dut = _Bank([make_unit() for _ in range(lanes)])
    lat = dut.units[0].LATENCY
    ys, flags = [], []

    async def bench(ctx):
        for j in range(0, len(xin), lanes):
            for u, x in zip(dut.units, xin[j: j + lanes]):
                ctx.set(u.x, int(x))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            await ctx.tick().repeat(lat - 2)
            assert not any(ctx.get(u.done) for u in dut.units), "done before LATENCY"
            await ctx.tick()
            assert all(ctx.get(u.done) for u in dut.units), f"done not {lat} cycles after start"
            ys.extend(ctx.get(u.y) for u in dut.units)
            flags.extend(ctx.get(getattr(u, flag)) for u in dut.units)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    n = len(xs)
    return np.array(ys[:n], np.int64), np.array(flags[:n], bool)


def back_to_back(dut, xs: list[int]) -> list[int]:
    """Run ``xs`` through ``dut`` with ``start`` held high: busy from the cycle after start
    until done, start ignored while busy, a new start accepted in the done cycle (one result
    per ``dut.LATENCY`` cycles); after start falls, done and busy stay low and y holds. Returns
    the results; asserts the handshake."""
    got = []

    async def bench(ctx):
        ctx.set(dut.x, xs[0])
        ctx.set(dut.start, 1)
        assert ctx.get(dut.busy) == 0
        await ctx.tick()
        ctx.set(dut.x, xs[1])  # start still high while busy: must be ignored
        for _ in range(dut.LATENCY - 1):
            assert ctx.get(dut.busy) == 1 and ctx.get(dut.done) == 0
            await ctx.tick()
        for x in xs[1:]:
            assert ctx.get(dut.done) == 1 and ctx.get(dut.busy) == 0
            got.append(ctx.get(dut.y))
            ctx.set(dut.x, x)  # start is still 1: accepted in the done cycle
            await ctx.tick()
            for _ in range(dut.LATENCY - 1):
                assert ctx.get(dut.done) == 0
                await ctx.tick()
        got.append(ctx.get(dut.y))
        ctx.set(dut.start, 0)
        await ctx.tick()
        assert ctx.get(dut.done) == 0 and ctx.get(dut.busy) == 0 and ctx.get(dut.y) == got[-1]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got
