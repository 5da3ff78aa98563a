"""`make demo`: the main job on a default configuration, shown step by step.

1. the 1-pass attention cascade (FuseMax's Cascade 5) as the paper writes it;
2. the pass analysis that separates the 3-, 2- and 1-pass attention cascades, with reasons;
3. float64 evaluation of the three cascades against a direct softmax, on odd shapes;
4. the bit-exact hardware-arithmetic model (golden) on the default preset, with its error;
5. the generated RTL (2D + 1D PE arrays, sequencer) running the compiled schedule under
   Verilator + cocotb: cycles, utilization, bit-exact verdict and error;
6. the analytical model's prediction for the same run;
7. what a hardware engineer looks at, on preset 'tiny' (fast): the waves of a run (FST), a
   GTKWave layout made from the dump's hierarchy, the Einsum timeline and the utilization plot.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fusemax.cli import main as fusemax  # noqa: E402
from fusemax.sw.attention_io import reference_attention  # noqa: E402
from fusemax.sw.library import load_cascade  # noqa: E402
from fusemax.sw.reference import evaluate  # noqa: E402

PRESET = "small"
SHAPE = dict(B=2, H=3, M=37, P=29, E=24, F=40)
#: The RTL run: long enough that the steady state shows (M = 16 x rows keys).
SIM_SHAPE = dict(B=1, H=2, M=128, P=16, E=32, F=32)
#: The waves run on 'tiny': a few tiles, so the timeline shows them interleave.
WAVES_SHAPE = dict(B=1, H=1, M=32, P=8, E=8, F=8)


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 74 - len(text)))


def run(*argv: str) -> None:
    print(f"$ fusemax {' '.join(argv)}")
    code = fusemax(list(argv))
    if code:
        raise SystemExit(code)


def main() -> int:
    banner("1. The 1-pass attention cascade (paper notation)")
    run("cascade", "show", "attention-1pass", "--unicode")

    banner("2. Passes over each rank, and the reads that force them")
    run("cascade", "list")
    for name in ("attention-3pass", "attention-2pass", "attention-1pass"):
        run("cascade", "passes", name)

    banner("3. Float64 evaluation against softmax(scale*QK^T)V")
    rng = np.random.default_rng(0)
    b, h, m, p, e, f = (SHAPE[k] for k in "BHMPEF")
    q, k, v = (rng.standard_normal(s) for s in ((b, h, p, e), (b, h, m, e), (b, h, m, f)))
    direct = reference_attention(q, k, v, 1 / np.sqrt(e))
    print(f"shape {SHAPE}, random standard-normal Q, K, V")
    for name in ("attention-3pass", "attention-2pass", "attention-1pass"):
        t0 = time.perf_counter()
        out = evaluate(load_cascade(name), {"Q": q, "K": k, "V": v}).outputs["O"]
        err = np.max(np.abs(out - direct)) / np.max(np.abs(direct))
        print(f"  {name:<16} max relative error {err:.1e}  ({time.perf_counter() - t0:.2f} s)")

    banner(f"4. Bit-exact hardware arithmetic (golden) on preset '{PRESET}'")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "in.npz"
        np.savez(inputs, Q=q, K=k, V=v)
        run("golden", "--config", PRESET, "--inputs", str(inputs), "--out", str(Path(tmp) / "o.npz"))

        banner(f"5. The RTL on preset '{PRESET}' under Verilator + cocotb")
        b, h, m, p, e, f = (SIM_SHAPE[k] for k in "BHMPEF")
        q, k, v = (rng.standard_normal(s) for s in ((b, h, p, e), (b, h, m, e), (b, h, m, f)))
        sim_in = Path(tmp) / "sim_in.npz"
        np.savez(sim_in, Q=q, K=k, V=v)
        print(f"shape {SIM_SHAPE}; the first run generates Verilog and builds it (cached after)")
        run("sim", "attention-1pass", "--config", PRESET, "--inputs", str(sim_in),
            "--out", str(Path(tmp) / "sim_out.npz"))

        banner("6. The paper's cost model for the same configuration and shape")
        shape = ",".join(f"{key}={val}" for key, val in SIM_SHAPE.items())
        run("model", "--config", PRESET, "--shape", shape)

        banner("7. Waves, a GTKWave layout and the Einsum timeline (preset 'tiny')")
        waves_demo(Path(tmp), rng)
    return 0


def waves_demo(tmp: Path, rng) -> None:
    """A small run on 'tiny' with --waves and --timeline; prints where everything is."""
    from fusemax.sim.runner import build_root

    b, h, m, p, e, f = (WAVES_SHAPE[k] for k in "BHMPEF")
    q, k, v = (rng.standard_normal(s) for s in ((b, h, p, e), (b, h, m, e), (b, h, m, f)))
    inputs = tmp / "waves_in.npz"
    np.savez(inputs, Q=q, K=k, V=v)
    wdir = build_root() / "demo" / "waves"
    print(f"shape {WAVES_SHAPE}; the first waves run builds a traced model (cached after)")
    run("sim", "attention-1pass", "--config", "tiny", "--inputs", str(inputs),
        "--out", str(tmp / "waves_out.npz"), "--report", str(wdir / "report.json"),
        "--waves", str(wdir), "--timeline", str(wdir / "timeline.png"))
    shape = ",".join(f"{key}={val}" for key, val in WAVES_SHAPE.items())
    run("utilization", "--config", "tiny", "--shape", shape, "--out", str(wdir / "utilization.png"),
        "--measured", str(wdir / "report.json"), "--lengths", "16,32,64,128,256,1024,4096")
    print(f"\nwaves:       {wdir / 'dump.fst'} (or dump.vcd without FST support)")
    print(f"layout:      {wdir / 'waves.gtkw'} (+ insn.filter, fsm.filter)")
    print(f"timeline:    {wdir / 'timeline.png'}")
    print(f"utilization: {wdir / 'utilization.png'}")
    print("open them:   scripts/waves.sh   (GTKWave with the layout; prints the command if it is "
          "not installed)")


if __name__ == "__main__":
    raise SystemExit(main())
