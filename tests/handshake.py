"""The start/busy/done handshake of the multi-cycle arithmetic units (Exp2, Sigmoid), shared by
their tests."""

from amaranth.sim import Simulator


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
