"""``fusemax timeline`` (the Einsums on the arrays over time, from a waveform dump) and
``fusemax utilization`` (utilization against sequence length and array size: the model and
measured runs); see :mod:`fusemax.sim.timeline`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fusemax.cli import add_command, emit
from fusemax.errors import FuseMaxError


def register(subparsers) -> None:
    p = add_command(
        subparsers, "timeline",
        help="Gantt chart of the Einsums on the 2D and 1D arrays, cycle by cycle, from a waves dump",
        description="Read a dump written by `fusemax sim --waves DIR` (DIR/dump.fst or .vcd; any "
        "dump that holds the sequencer's act_* signals, busy and clk), sample every Einsum's "
        "activity once per cycle the way the RTL counters do, and draw one row per Einsum (2D "
        "array: BQK, LM, SLN, SLD, SLNV; 1D array: RM, PRM, RD, RNV, AV), in the style of the "
        "FuseMax paper's figure 4. Cycles count from the start pulse. Prints the per-Einsum busy "
        "cycles and the arrays' utilization in the window; with --report (the run's `fusemax sim "
        "--report` file) also checks them against the RTL's counters (for a dump of the whole run).",
        example="fusemax timeline build/waves/run/dump.fst --out timeline.png --window 0:300",
    )
    p.add_argument("dump", metavar="DUMP", help="waveform dump (or the --waves directory)")
    p.add_argument("--out", required=True, metavar="PNG")
    p.add_argument("--window", default=None, metavar="START:END",
                   help="cycles to draw, from the start pulse (default: all dumped)")
    p.add_argument("--title", default=None, help="chart title")
    p.add_argument("--report", default=None, metavar="REPORT.json",
                   help="the run's report: compare the dump's per-Einsum cycles with its counters")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_timeline)

    q = add_command(
        subparsers, "utilization",
        help="2D/1D utilization against sequence length and array size: the model and measured runs",
        description="Plot the analytical model's prediction for the RTL (fusemax.sw.perfmodel, as "
        "`fusemax model --config`: bindings fusemax and architecture, memory never the bound) of "
        "the 2D and 1D arrays' utilization against the sequence length (keys M, with the shape's "
        "B, H, P, E, F) on the configuration's array, and against the array size N x N at the "
        "shape. --measured adds the utilization of RTL runs (their `fusemax sim --report` files): "
        "on the length panel when their array, P, E and F match, on the array panel when their "
        "M, P, E and F match.",
        example="fusemax utilization --config tiny --shape B=1,H=1,M=256,P=256,E=16,F=16 "
                "--out util.png --measured r64.json,r256.json",
    )
    q.add_argument("--config", required=True, metavar="NAME|FILE.json")
    q.add_argument("--shape", required=True, metavar="B=..,H=..,M=..,P=..,E=..,F=..",
                   help="the workload (M: the array panel's length)")
    q.add_argument("--out", required=True, metavar="PNG")
    q.add_argument("--lengths", default=None, metavar="N,N,...",
                   help="key counts M (K suffix = 1024; default powers of two up to 64K)")
    q.add_argument("--arrays", default=None, metavar="N,N,...",
                   help="array sizes N (N x N; default 4,8,...,256)")
    q.add_argument("--measured", default=None, metavar="REPORT.json[,...]",
                   help="`fusemax sim --report` files to plot as measured points")
    q.add_argument("--causal", action="store_true", help="causal mask (fully masked tiles skipped)")
    q.add_argument("--json", action="store_true", help="print the plotted numbers as JSON")
    q.set_defaults(func=cmd_utilization)


def _dump_path(text: str) -> Path:
    p = Path(text)
    if p.is_dir():
        for name in ("dump.fst", "dump.vcd"):
            if (p / name).is_file():
                return p / name
        raise FuseMaxError(f"{p} holds no dump.fst or dump.vcd")
    return p


def cmd_timeline(args: argparse.Namespace) -> int:
    from fusemax.sim.timeline import gantt, read_activity
    from fusemax.sim.waves import parse_window

    window = parse_window(args.window)
    act = read_activity(_dump_path(args.dump))
    info = gantt(act, args.out, window=window, title=args.title)
    lines = [f"wrote {args.out}: cycles {info['window'][0]}..{info['window'][1] - 1}",
             "busy cycles per Einsum: " + ", ".join(f"{k} {v}" for k, v in info["einsum_cycles"].items()),
             f"utilization: 2D {100 * info['utilization']['2d']:.1f} %, "
             f"1D {100 * info['utilization']['1d']:.1f} %"]
    code = 0
    if args.report:
        try:
            rep = json.loads(Path(args.report).read_text())
            want = {k: int(v) for k, v in rep["einsum_cycles"].items()}
        except (OSError, ValueError, KeyError) as exc:
            raise FuseMaxError(f"cannot read einsum_cycles from {args.report}: {exc}") from None
        diff = act.counter_diff(want)
        info["counters"] = want
        info["matches_counters"] = not diff
        if not diff:
            lines.append("the dump's per-Einsum cycles equal the RTL counters of the report")
        else:
            lines.append(f"MISMATCH with the report's counters (dump, counter): {diff} "
                         "(a windowed or limited dump covers only part of the run)")
            code = 1
    emit(args, info, "\n".join(lines))
    return code


def cmd_utilization(args: argparse.Namespace) -> int:
    from fusemax.config import load_config
    from fusemax.sim.timeline import load_measured, utilization_plot
    from fusemax.sw.perfmodel import parse_length, parse_shape

    config = load_config(args.config)
    shape = parse_shape(args.shape)

    def ints(text: str | None, what: str) -> list[int] | None:
        if not text:
            return None
        return [parse_length(t.strip(), what) for t in text.split(",") if t.strip()]

    measured = load_measured([m for m in (args.measured or "").split(",") if m.strip()])
    info = utilization_plot(config, shape, args.out, lengths=ints(args.lengths, "--lengths"),
                            arrays=ints(args.arrays, "--arrays"), measured=measured,
                            causal=args.causal)
    text = [f"wrote {args.out}"]
    for n, v in info["by_length"].items():
        text.append(f"  M={n:>7}: " + "; ".join(f"{b} 2D {100 * u['2d']:.1f} % 1D {100 * u['1d']:.1f} %"
                                                 for b, u in v.items()))
    text.append(f"measured points: {info['measured']['length_panel']} on the length panel, "
                f"{info['measured']['array_panel']} on the array panel")
    emit(args, info, "\n".join(text))
    return 0
