"""All PE operators of one configuration side by side, with flat prefixed ports.

Used to test every operator against its NumPy twin in one Verilator build per configuration
(tests/test_rtl_arith_ops.py), and handy for a synthesis smoke test of the arithmetic.
Each operator's port ``p`` appears as ``<prefix>_<p>``:

======  ===============================================  ======================================
prefix  operator                                         formats
======  ===============================================  ======================================
qk      ``Mac(q, k, qk_acc_width)``                      BQK multiply-accumulate
pv      ``Mac(exp, v, slnv_width)``                      SLNV multiply-accumulate
mx      ``MaxValid(score)``                              LM / RM
sub     ``Sub(score, score)``                            BQK − RM, RM_old − RM_new
rq      ``Requant(signed(qk_acc_width), qk_frac, score)`` BQK -> score
rsd     ``Rescale(rd, exp)``                             SPD = RD·PRM
rsn     ``Rescale(rnv, exp)``                            SPNV = RNV·PRM
exp     ``Exp2(numerics)``                               SLN, PRM
div     ``Divider(numerics)``                            AV = RNV / RD
divp    ``PipelinedDivider(numerics)``                   AV = RNV / RD, one per cycle
======  ===============================================  ======================================
"""

from __future__ import annotations

from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from fusemax.hw.arith.divide import Divider, PipelinedDivider
from fusemax.hw.arith.exp2 import Exp2
from fusemax.hw.arith.mac import Mac
from fusemax.hw.arith.maxv import MaxValid
from fusemax.hw.arith.requant import Requant
from fusemax.hw.arith.rescale import Rescale
from fusemax.hw.arith.sub import Sub


_FACTORIES = {
    "qk": lambda c, nc: Mac(nc.q.shape(), nc.k.shape(), nc.qk_acc_width),
    "pv": lambda c, nc: Mac(nc.exp.shape(), nc.v.shape(), c.slnv_width),
    "mx": lambda c, nc: MaxValid(nc.score.shape()),
    "sub": lambda c, nc: Sub(nc.score.shape(), nc.score.shape()),
    "rq": lambda c, nc: Requant(signed(nc.qk_acc_width), nc.qk_frac, nc.score, nc.rounding),
    "rsd": lambda c, nc: Rescale(nc.rd, nc.exp, nc.rounding),
    "rsn": lambda c, nc: Rescale(nc.rnv, nc.exp, nc.rounding),
    "exp": lambda c, nc: Exp2(nc),
    "div": lambda c, nc: Divider(nc),
    "divp": lambda c, nc: PipelinedDivider(nc),
}


def make_operator(config, prefix: str):
    """The harness operator called ``prefix`` (see the table above) for a FuseMaxConfig."""
    return _FACTORIES[prefix](config, config.numerics)


def operators(config) -> dict:
    """All the harness's operators for a FuseMaxConfig, by port prefix."""
    return {prefix: make_operator(config, prefix) for prefix in _FACTORIES}


class ArithHarness(wiring.Component):
    def __init__(self, config):
        self.config = config
        self.ops = operators(config)
        members = {}
        for prefix, op in self.ops.items():
            for name, member in op.signature.members.items():
                members[f"{prefix}_{name}"] = (In if member.flow == wiring.In else Out)(member.shape)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for prefix, op in self.ops.items():
            m.submodules[prefix] = op
            for name, member in op.signature.members.items():
                outer = getattr(self, f"{prefix}_{name}")
                inner = getattr(op, name)
                if member.flow == wiring.In:
                    m.d.comb += inner.eq(outer)
                else:
                    m.d.comb += outer.eq(inner)
        return m


# --------------------------------------------------------------------------------------
# Test vectors with expected outputs from the NumPy twins
# --------------------------------------------------------------------------------------

def _rand_signed(rng, width: int, n: int):
    """Signed ``width``-bit values with magnitudes spread over every bit length, plus extremes."""
    import numpy as np

    bits = rng.integers(0, width, n)
    mag = (rng.integers(0, 1 << 62, n) & ((np.int64(1) << bits.astype(np.int64)) - 1)) | \
        np.where(bits > 0, np.int64(1) << np.maximum(bits - 1, 0).astype(np.int64), 0)
    val = np.where(rng.random(n) < 0.5, -mag, mag)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    edge = np.array([lo, hi, 0, 1, -1, lo + 1, hi - 1], np.int64)
    val[: len(edge)] = edge[: min(len(edge), n)]
    return np.clip(val, lo, hi)


def _rand_unsigned(rng, width: int, n: int):
    import numpy as np

    return np.minimum(np.abs(_rand_signed(rng, width + 1, n)), (1 << width) - 1)


def harness_vectors(config, n: int = 500, seed: int = 0, exp_inputs=None) -> dict:
    """Input vectors for every harness operator and the expected outputs (``want_<port>``),
    computed with :mod:`fusemax.sw.numerics`. ``exp_inputs``: the exp's x values (default: a
    seeded sample including both ends of the range; pass ``exp_all_inputs(config)`` for all)."""
    import numpy as np

    from fusemax.hw.formats import wrap
    from fusemax.sw import numerics as nm

    nc = config.numerics
    rng = np.random.default_rng(seed)
    v: dict[str, np.ndarray] = {}
    mode = nc.rounding

    # MaxValid / Sub on score codes (with many equal pairs)
    sw = nc.score.width
    a, b = _rand_signed(rng, sw, n), _rand_signed(rng, sw, n)
    b[::7] = a[::7]
    v["mx_a"], v["mx_b"] = a, b
    v["mx_a_valid"], v["mx_b_valid"] = rng.integers(0, 2, n), rng.integers(0, 2, n)
    y, yv = nm.max_valid(a, v["mx_a_valid"], b, v["mx_b_valid"])
    v["want_mx_y"], v["want_mx_y_valid"] = y, yv.astype(np.int64)
    v["sub_a"], v["sub_b"] = _rand_signed(rng, sw, n), _rand_signed(rng, sw, n)
    v["want_sub_y"] = nm.sub(v["sub_a"], v["sub_b"])

    # Requant BQK -> score: full range plus exact ties around the rounding point
    x = _rand_signed(rng, nc.qk_acc_width, n)
    sh = nc.qk_frac - nc.score.frac
    if sh > 0:
        k = _rand_signed(rng, nc.score.width + 1, n // 4)
        ties = (k << np.int64(sh)) + (np.int64(1) << np.int64(sh - 1)) + rng.integers(-1, 2, n // 4)
        x[n // 2: n // 2 + n // 4] = ties
    v["rq_x"] = wrap(x, nc.qk_acc_width)
    v["want_rq_y"], s = nm.requantize(v["rq_x"], nc.qk_frac, nc.score, mode)
    v["want_rq_sat"] = s.astype(np.int64)

    # Rescale RD * PRM and RNV * PRM (c mostly <= 1, some > 1 to exercise saturation)
    for pre, fmt in (("rsd", nc.rd), ("rsn", nc.rnv)):
        xv = _rand_signed(rng, fmt.width, n)
        c = rng.integers(0, (1 << nc.exp.frac) + 1, n)
        c[::5] = _rand_unsigned(rng, nc.exp.width - nc.exp.signed, n)[::5]
        c[:3] = [0, 1 << nc.exp.frac, nc.exp.max_code]
        v[f"{pre}_x"], v[f"{pre}_c"] = xv, c
        y, s = nm.rescale(xv, c, nc.exp.frac, fmt, mode)
        v[f"want_{pre}_y"], v[f"want_{pre}_sat"] = y, s.astype(np.int64)

    # MACs: sequences of cycles
    for pre, fa, fb, width in (("qk", nc.q, nc.k, nc.qk_acc_width),
                               ("pv", nc.exp, nc.v, config.slnv_width)):
        ra = _rand_signed(rng, fa.width, n) if fa.signed else _rand_unsigned(rng, fa.width, n)
        rb = _rand_signed(rng, fb.width, n) if fb.signed else _rand_unsigned(rng, fb.width, n)
        c = _rand_signed(rng, width, n)
        load = (rng.random(n) < 0.15).astype(np.int64)
        en = (rng.random(n) < 0.85).astype(np.int64)
        acc, want = 0, []
        for i in range(n):
            if en[i]:
                acc = int(nm.mac(ra[i], rb[i], c[i] if load[i] else acc, width))
            want.append(acc)
        v.update({f"{pre}_a": ra, f"{pre}_b": rb, f"{pre}_c": c, f"{pre}_load_c": load, f"{pre}_en": en,
                  f"want_{pre}_acc": np.array(want, np.int64)})

    # Exp2
    if exp_inputs is None:
        w = nc.exp_in_width
        lo = -(1 << (w - 1))
        exp_inputs = np.concatenate([
            np.array([0, -1, lo, lo + 1, 1, 5, (1 << (w - 1)) - 1], np.int64),
            -rng.integers(0, 1 << nc.score.width, n),
            -np.arange(0, 8 << nc.score.frac, max(1, (8 << nc.score.frac) // n)),
        ])
    xs = np.asarray(exp_inputs, np.int64)
    ninf = (rng.random(len(xs)) < 0.05).astype(np.int64)
    v["exp_x"], v["exp_x_ninf"] = xs, ninf
    v["want_exp_y"] = nm.exp2(xs, ninf.astype(bool), nc)

    # Divider: random, ties, zero denominators, overflow
    num = _rand_signed(rng, nc.rnv.width, n)
    den = np.abs(_rand_signed(rng, nc.rd.width, n))
    den[::9] = -den[::9]
    den[::11] = 0
    # realistic: |num| <= den * max|V| / scaling
    m = n // 3
    den[m: 2 * m] = rng.integers(1 << nc.rd.frac, 1 << min(nc.rd.width - 2, nc.rd.frac + 10), m)
    num[m: 2 * m] = (rng.uniform(-1, 1, m) * nc.out.max_value * den[m: 2 * m]
                     * 2.0 ** (nc.rnv.frac - nc.rd.frac)).astype(np.int64)
    s_ = nc.div_shift
    if s_ >= 0:  # exact ties: num / den * 2**s = k + 1/2
        t = rng.integers(1, 1 << 8, n // 6)
        kq = rng.integers(-(1 << (nc.out.width - 2)), 1 << (nc.out.width - 2), n // 6)
        dd = t << np.int64(s_ + 1)
        nn = t * (2 * kq + 1)
        den[2 * m: 2 * m + n // 6], num[2 * m: 2 * m + n // 6] = dd, nn
    v["div_num"], v["div_den"] = num, den
    y, s, dz = nm.divide(num, den, nc)
    v["want_div_y"], v["want_div_sat"], v["want_div_dz"] = y, s.astype(np.int64), dz.astype(np.int64)
    for key in [k for k in v if k.startswith("div_") or k.startswith("want_div_")]:
        v[key.replace("div_", "divp_")] = v[key]
    return v


def exp_all_inputs(config):
    """Every exp argument x = BQK − RM <= 0 of the score format (2**score.width values),
    plus the most negative code of the one-bit-wider input and a few positive (clamped) ones."""
    import numpy as np

    w = config.numerics.score.width
    return np.concatenate([np.arange(-(1 << w) + 1, 1, dtype=np.int64),
                           np.array([-(1 << w), 1, 7, (1 << w) - 1], np.int64)])


# --------------------------------------------------------------------------------------
# Amaranth-simulator drivers (the quick twin of tests/cocotb_benches/tb_arith_ops.py)
# --------------------------------------------------------------------------------------

#: Ports of each harness prefix: (inputs, outputs) — outputs listed are compared.
PORTS = {
    "mx": (["a", "a_valid", "b", "b_valid"], ["y", "y_valid"]),
    "sub": (["a", "b"], ["y"]),
    "rq": (["x"], ["y", "sat"]),
    "rsd": (["x", "c"], ["y", "sat"]),
    "rsn": (["x", "c"], ["y", "sat"]),
    "qk": (["a", "b", "c", "load_c", "en"], ["acc"]),
    "pv": (["a", "b", "c", "load_c", "en"], ["acc"]),
    "exp": (["x", "x_ninf"], ["y"]),
    "div": (["num", "den"], ["y", "sat", "dz"]),
    "divp": (["num", "den"], ["y", "sat", "dz"]),
}


def pysim_check(op, prefix: str, vectors: dict, limit: int | None = None) -> int:
    """Drive operator ``op`` (one of :func:`operators`) with ``vectors[prefix_*]`` under the
    Amaranth simulator and compare with ``vectors[want_prefix_*]``; AssertionError listing
    mismatches. Returns the number of vectors checked."""
    import numpy as np
    from amaranth.sim import Simulator

    ins, outs = PORTS[prefix]
    n = len(vectors[f"{prefix}_{ins[0]}"]) if limit is None else min(limit, len(vectors[f"{prefix}_{ins[0]}"]))
    got = {o: [] for o in outs}
    kind = "mac" if prefix in ("qk", "pv") else "seq" if prefix in ("exp", "div", "divp") else "comb"
    latency = getattr(op, "LATENCY", 0)

    async def bench(ctx):
        for i in range(n):
            for p in ins:
                ctx.set(getattr(op, p), int(vectors[f"{prefix}_{p}"][i]))
            if kind == "mac":
                await ctx.tick()
            elif kind == "seq":
                ctx.set(op.start, 1)
                await ctx.tick()
                ctx.set(op.start, 0)
                for _ in range(latency - 1):
                    await ctx.tick()
                assert ctx.get(op.done) == 1, f"{prefix}: done not high {latency} cycles after start"
            for o in outs:
                got[o].append(ctx.get(getattr(op, o)))

    sim = Simulator(op)
    if kind != "comb":
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    errors = []
    for o in outs:
        want = np.asarray(vectors[f"want_{prefix}_{o}"][:n], np.int64)
        g = np.asarray(got[o], np.int64)
        for i in np.nonzero(g != want)[0][:8]:
            args = ", ".join(f"{p}={int(vectors[f'{prefix}_{p}'][i])}" for p in ins)
            errors.append(f"{prefix}_{o} #{i}: {args}: got {int(g[i])}, want {int(want[i])}")
    if errors:
        raise AssertionError("\n".join(errors))
    return n
