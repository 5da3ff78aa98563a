"""``fusemax model``: the paper's analytical cost model (docs/model.md)."""

from __future__ import annotations

import argparse
from typing import Any

from fusemax.cli import add_command, emit
from fusemax.errors import FuseMaxError

_EXAMPLES = [
    "fusemax model --paper --json",
    "fusemax model --paper --plot model.png",
    "fusemax model --design all --model XLM --seq 1K,64K,1M",
    "fusemax model --design fusemax --array 128 --model BERT --seq 4K",
    "fusemax model --shape B=1,H=4,M=8K,P=8K,E=64,F=64 --design all",
    "fusemax model --config medium --shape B=1,H=1,M=1024,P=1024,E=32,F=32 --causal",
]


def register(subparsers) -> None:
    from fusemax.config import PRESETS
    from fusemax.sw.perfmodel import DESIGNS, MODELS

    p = add_command(
        subparsers, "model",
        help="the paper's analytical cost model: cycles, speedups, utilization, DRAM traffic",
        description="Evaluate the FuseMax paper's cost model (reference 6.3; docs/model.md) for "
        f"the designs {', '.join(DESIGNS)} on the paper's models ({', '.join(MODELS)}; batch 64) "
        "or any --shape, on the paper's hardware (256x256, 940 MHz, 400 GiB/s; 16 MiB buffer "
        "for fusemax/architecture, 32 MiB for flat/unfused/cascade) or another array size. "
        "--paper prints the whole reproduction of the paper's table (every model and length, "
        "speedups vs FLAT and unfused next to the paper's, utilizations, means). --config NAME "
        "--shape ... prints the prediction for one of our RTL configurations (predict_rtl: "
        f"bindings fusemax and architecture). Configs: {', '.join(PRESETS)} or a .json file.",
        example="\n  ".join(_EXAMPLES),
    )
    p.add_argument("--design", default="all", metavar="|".join(DESIGNS) + "|all",
                   help="design(s) to evaluate, comma separated (default all)")
    p.add_argument("--array", default="256", metavar="N|RxC",
                   help="2D array: N for N x N, or ROWSxCOLS (default 256)")
    p.add_argument("--model", default=None, metavar="|".join(MODELS),
                   help="model(s), comma separated (default all four)")
    p.add_argument("--seq", default=None, metavar="1K,4K,...",
                   help="sequence lengths (M = P), K/M suffixes = 2**10 / 2**20 "
                   "(default 1K,4K,16K,64K,256K,1M)")
    p.add_argument("--shape", default=None, metavar="B=..,H=..,M=..,P=..,E=..,F=..",
                   help="a workload instead of --model/--seq (with --config: the RTL shape)")
    p.add_argument("--clock-mhz", type=float, default=None, help="clock (default 940)")
    p.add_argument("--bandwidth-gib", type=float, default=None,
                   help="DRAM bandwidth in GiB/s (default 400)")
    p.add_argument("--buffer-mib", type=float, default=None,
                   help="global buffer in MiB (default 16 for fusemax/architecture, 32 otherwise)")
    p.add_argument("--paper", action="store_true",
                   help="the paper's table: all models and lengths, with the paper's figures and means")
    p.add_argument("--config", default=None, metavar="NAME|FILE.json",
                   help="predict our RTL configuration (needs --shape)")
    p.add_argument("--causal", action="store_true",
                   help="causal mask (query p sees key m iff m <= p + M - P); fully masked tiles skipped")
    p.add_argument("--serial-divider", action="store_true",
                   help="with --config: a divider busy numerics.div_cycles per divide (default: "
                   "pipelined, one divide per cycle per lane, as the RTL's PipelinedDivider)")
    p.add_argument("--plot", default=None, metavar="FILE.png",
                   help="write a PNG of 2D utilization and FuseMax's speedup against sequence length")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_model)


def _array(text: str) -> tuple[int, int]:
    t = str(text).lower().replace(" ", "")
    parts = t.split("x")
    try:
        vals = [int(v) for v in parts]
    except ValueError:
        raise FuseMaxError(f"--array {text!r} must be N or ROWSxCOLS (e.g. 256 or 32x16)") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or min(vals) < 1:
        raise FuseMaxError(f"--array {text!r} must be N or ROWSxCOLS with positive sizes")
    return vals[0], vals[1]


def _designs(text: str) -> list[str]:
    from fusemax.sw.perfmodel import DESIGNS, check_design

    if text == "all":
        return list(DESIGNS)
    return [check_design(d.strip()) for d in text.split(",") if d.strip()]


def _hardware(args, design: str):
    from fusemax.sw.perfmodel import MiB, paper_hardware

    rows, cols = _array(args.array)
    hw = paper_hardware(design, rows, cols)
    changes: dict[str, Any] = {}
    if args.clock_mhz is not None:
        changes["clock_hz"] = args.clock_mhz * 1e6
    if args.bandwidth_gib is not None:
        changes["dram_bytes_per_s"] = args.bandwidth_gib * 2 ** 30
    if args.buffer_mib is not None:
        if not args.buffer_mib > 0:
            raise FuseMaxError(f"--buffer-mib must be positive, got {args.buffer_mib}")
        changes["buffer_bytes"] = int(args.buffer_mib * MiB)
    return hw.replace(**changes) if changes else hw


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}"


def cmd_model(args: argparse.Namespace) -> int:
    from fusemax.sw import perfmodel as pm

    if args.config is not None:
        return _cmd_rtl(args)
    if args.serial_divider:
        raise FuseMaxError("--serial-divider applies to --config predictions only")
    designs = _designs(args.design)
    if args.shape is not None:
        if args.paper or args.model or args.seq:
            raise FuseMaxError("--shape replaces --model/--seq/--paper; give one or the other")
        w = pm.parse_shape(args.shape)
        res = [pm.evaluate(d, w, _hardware(args, d), causal=args.causal) for d in designs]
        lines = [f"workload B={w.B} H={w.H} M={w.M} P={w.P} E={w.E} F={w.F}"
                 f"{' causal' if args.causal else ''}, array {args.array}",
                 _header()]
        lines += [_row(r) for r in res]
        emit(args, {"workload": w.as_dict(), "causal": bool(args.causal),
                    "results": [r.as_dict() for r in res]}, "\n".join(lines))
        if args.plot:
            raise FuseMaxError("--plot needs a sweep over lengths (--model/--seq or --paper), not --shape")
        return 0
    if args.causal:
        raise FuseMaxError("--causal applies to --shape or --config only")
    models = [m.strip() for m in args.model.split(",")] if args.model else list(pm.MODELS)
    models = [pm.model(m).name for m in models]
    lengths = ([pm.parse_length(s, "--seq length") for s in args.seq.split(",") if s.strip()]
               if args.seq else list(pm.PAPER_LENGTHS))
    custom_hw = any(v is not None for v in (args.clock_mhz, args.bandwidth_gib, args.buffer_mib))
    rows, cols = _array(args.array)
    if args.paper and not custom_hw:
        table = pm.paper_table(models, lengths, rows, cols)
        text = _paper_text(table, rows, cols)
        if args.plot:
            _plot(table, args.plot)
            text += f"\nwrote {args.plot}"
        emit(args, table, text)
        return 0
    # a sweep of the chosen designs
    points = []
    lines = [f"array {rows}x{cols}", "model  length " + _header()]
    for m in models:
        for n in lengths:
            w = pm.model(m).workload(n)
            res = {d: pm.evaluate(d, w, _hardware(args, d)) for d in designs}
            pt: dict[str, Any] = {"model": m, "length": n, "label": pm.length_label(n),
                                  "designs": {d: r.as_dict(einsums=False) for d, r in res.items()}}
            if "fusemax" in res:
                for base in ("flat", "unfused"):
                    if base in res:
                        pt[f"speedup_vs_{base}"] = res[base].cycles / res["fusemax"].cycles
            points.append(pt)
            for d, r in res.items():
                lines.append(f"{m:6s} {pm.length_label(n):6s} " + _row(r))
    result = {"array": [rows, cols], "points": points}
    text = "\n".join(lines)
    if args.plot:
        _plot({"points": [_plot_point(p) for p in points]}, args.plot)
        text += f"\nwrote {args.plot}"
    emit(args, result, text)
    return 0


def _plot_point(p: dict) -> dict:
    return {"model": p["model"], "length": p["length"], "label": p["label"],
            "designs": {d: {"util_2d": r["util_2d"]} for d, r in p["designs"].items()},
            **{k: v for k, v in p.items() if k.startswith("speedup_vs_")}}


def _header() -> str:
    return (f"{'design':13s} {'cycles':>12s} {'seconds':>11s} {'cyc/tile':>9s} {'2D %':>6s} "
            f"{'1D %':>6s} {'DRAM bytes':>11s} {'bound':>7s}")


def _row(r) -> str:
    return (f"{r.design:13s} {r.cycles:12.4g} {r.seconds:11.4g} {r.per_tile_cycles:9.2f} "
            f"{_pct(r.util_2d):>6s} {_pct(r.util_1d):>6s} {r.dram_bytes:11.3g} {r.bound:>7s}")


def _paper_text(table: dict, rows: int, cols: int) -> str:
    from fusemax.sw.perfmodel import DESIGNS

    short = {"fusemax": "FuseMax", "flat": "FLAT", "unfused": "unfused", "cascade": "+Casc",
             "architecture": "+Arch"}
    out = [f"FuseMax paper table, {rows}x{cols} array, 940 MHz, 400 GiB/s "
           "(16 MiB buffer FuseMax/+Arch, 32 MiB FLAT/unfused/+Casc); batch 64",
           f"{'model':5s} {'len':>4s} {'FuseMax s':>10s} {'vs FLAT':>8s} {'paper':>6s} "
           f"{'vs unf':>7s} {'paper':>6s} {'+Casc':>6s} {'+Arch':>6s}   2D/1D %: "
           + "  ".join(f"{short[d]:>11s}" for d in DESIGNS)]
    for p in table["points"]:
        d = p["designs"]
        pf = f"{p['paper_vs_flat']:.2f}" if "paper_vs_flat" in p else "-"
        pu = f"{p['paper_vs_unfused']:.2f}" if "paper_vs_unfused" in p else "-"
        utils = "  ".join(f"{100 * d[k]['util_2d']:5.1f}/{100 * d[k]['util_1d']:5.1f}" for k in DESIGNS)
        out.append(f"{p['model']:5s} {p['label']:>4s} {d['fusemax']['seconds']:10.4g} "
                   f"{p['speedup_vs_flat']:8.2f} {pf:>6s} {p['speedup_vs_unfused']:7.2f} {pu:>6s} "
                   f"{p['ablation_vs_flat']['cascade']:6.2f} {p['ablation_vs_flat']['architecture']:6.2f}"
                   f"             {utils}")
    out.append(f"mean speedup vs FLAT {table['mean_speedup_vs_flat']:.2f} (paper "
               f"{table['paper_mean_vs_flat']}), vs unfused {table['mean_speedup_vs_unfused']:.2f} "
               f"(paper {table['paper_mean_vs_unfused']}); arithmetic means over {len(table['points'])} points")
    return "\n".join(out)


def _plot(table: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fusemax.sw.perfmodel import DESIGNS

    points = table["points"]
    models = list(dict.fromkeys(p["model"] for p in points))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = ["-", "--", ":", "-."]
    for mi, m in enumerate(models):
        pts = [p for p in points if p["model"] == m]
        xs = [p["length"] for p in pts]
        for d in DESIGNS:
            if d in pts[0]["designs"]:
                ax1.plot(xs, [100 * p["designs"][d]["util_2d"] for p in pts], styles[mi % 4],
                         marker="o", ms=3, label=f"{d} ({m})", color=f"C{DESIGNS.index(d)}")
        for bi, base in enumerate(("flat", "unfused")):
            key = f"speedup_vs_{base}"
            if key in pts[0]:
                ax2.plot(xs, [p[key] for p in pts], styles[mi % 4], marker="o", ms=3,
                         color=f"C{bi}", label=f"vs {base} ({m})")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length (M = P)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    ax1.set_ylabel("2D array utilization (%)")
    ax1.set_ylim(0, 105)
    ax1.set_title("2D utilization")
    ax2.set_ylabel("FuseMax attention speedup (x)")
    ax2.set_title("FuseMax speedup")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise FuseMaxError(f"cannot write {path!r}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def _cmd_rtl(args: argparse.Namespace) -> int:
    from fusemax.sw.perfmodel import predict_rtl

    if args.shape is None:
        raise FuseMaxError("--config needs --shape B=..,H=..,M=..,P=..,E=..,F=..")
    if args.paper or args.model or args.seq or args.plot:
        raise FuseMaxError("--config predicts one RTL run; --paper/--model/--seq/--plot do not apply")
    pred = predict_rtl(args.config, args.shape, causal=args.causal,
                       pipelined_divider=not args.serial_divider)
    s = pred["shape"]
    lines = [f"config {pred['config']} ({pred['rows']}x{pred['cols']}), B={s['B']} H={s['H']} "
             f"M={s['M']} P={s['P']} E={s['E']} F={s['F']}{' causal' if pred['causal'] else ''}: "
             f"{pred['tiles']} tiles ({pred['tiles_skipped']} skipped), SLN/PRM {pred['sln_prm_cycles']} "
             f"cycles; divider {pred['divider']}"]
    for b, r in pred["bindings"].items():
        if r["per_tile_cycles"] is None:
            lines.append(f"  {b:13s} no tile to compute; {r['cycles']:.0f} divide cycles")
            continue
        lines.append(f"  {b:13s} {r['cycles']:12.0f} cycles  {r['per_tile_cycles']:8.2f}/tile  "
                     f"2D {_pct(r['util_2d'])} %  1D {_pct(r['util_1d'])} %  "
                     f"(steady-state 2D {_pct(r['util_2d_steady'])} %)")
    lines.append("  ignores: " + "; ".join(pred["ignores"]))
    emit(args, pred, "\n".join(lines))
    return 0
