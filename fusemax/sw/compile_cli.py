"""``fusemax compile``: a cascade, a configuration and a shape -> the control schedule."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fusemax.cli import add_command, emit
from fusemax.config import PRESETS, load_config
from fusemax.sw.compiler import BINDINGS


def register(subparsers) -> None:
    p = add_command(
        subparsers, "compile",
        help="compile a cascade for a configuration and a shape into a control schedule",
        description="Map a cascade onto a configuration for a workload shape (tiling M1 = "
        "ceil(M/rows) chunks of rows keys, P2 = ceil(P/cols) blocks of cols queries, loop order "
        "b, h, p2, m1) and write the control schedule: 64-bit instructions, little-endian "
        "(docs/architecture.md section 4, docs/schedule.md). The listing shows every "
        "instruction with its address, word, fields and the memory region it touches. "
        "attention-1pass maps onto the hardware, and attention-3pass as the baseline (each "
        "block's tiles twice: pass 1 for the global max, then passes 2 and 3 merged); "
        "sigmoid-norm and sigmoid-nonorm run attention-1pass's tiles with sigmoid scores (MODE; "
        "a config with the sigmoid unit, e.g. tiny-sigmoid); attention-entropy runs them with "
        "MODE entropy=1: the tiles also accumulate RT, each output block gets one more line, "
        "the entropy H of its queries (a config with the entropy output, e.g. tiny-entropy); "
        "flowformer-causal (causal "
        "Flow-Attention, P = M) runs token by token on the flow engine (FLOWC, FLOW; a config "
        "with the flow unit, e.g. tiny-flow; --clamp c, the bound of the conserved source, "
        "default 1; causal by construction, --causal changes nothing); other cascades get the "
        "reason. "
        "--causal masks keys after each query, aligned at the end of the key sequence (query p "
        "sees key m iff m <= p + M - P) and skips tiles no query of a block can see. "
        f"Configs: {', '.join(PRESETS)} or a config .json file.",
        example="fusemax compile attention-1pass --config small --shape "
                "B=1,H=2,M=256,P=64,E=64,F=64 -o sched.bin --listing -\n  "
                "fusemax compile sigmoid-norm --causal --config tiny-sigmoid --shape "
                "B=1,H=1,M=37,P=29,E=8,F=8 --listing -\n  "
                "fusemax compile attention-entropy --causal --config tiny-entropy --shape "
                "B=1,H=1,M=13,P=13,E=5,F=3 --listing -\n  "
                "fusemax compile flowformer-causal --clamp 5 --config tiny-flow --shape "
                "B=1,H=1,M=13,P=13,E=8,F=5 --listing -",
    )
    p.add_argument("cascade", metavar="CASCADE",
                   help="cascade name (attention-1pass, attention-3pass, sigmoid-norm, "
                        "sigmoid-nonorm, attention-entropy, flowformer-causal) or .cas file")
    p.add_argument("--config", required=True, metavar="NAME|FILE.json")
    p.add_argument("--shape", required=True, metavar="B=..,H=..,M=..,P=..,E=..,F=..",
                   help="workload shape: batches, heads, keys, queries, Q/K dim, V dim")
    p.add_argument("--causal", action="store_true", help="causal mask (end-aligned)")
    p.add_argument("--binding", choices=BINDINGS, default="fusemax",
                   help="fusemax: tiles overlap (default); architecture: every TILE serial (the "
                        "+Architecture ablation)")
    p.add_argument("--clamp", type=float, default=None, metavar="C",
                   help="flowformer-causal: bound of the conserved source (default 1; Flowformer's "
                        "per-task bounds are 1, 5 (NLP) and 10 (RL))")
    p.add_argument("-o", "--out", metavar="SCHED.bin", help="write the schedule words here")
    p.add_argument("--listing", metavar="FILE|-", help="write the readable listing (- = stdout)")
    p.add_argument("--json", action="store_true", help="print a JSON summary (with the layout)")
    p.set_defaults(func=cmd_compile)


def cmd_compile(args: argparse.Namespace) -> int:
    from fusemax.sw.compiler import parse_shape, compile_schedule

    config = load_config(args.config)
    shape = parse_shape(args.shape)
    sched = compile_schedule(config, shape, causal=args.causal, cascade=args.cascade,
                             binding=args.binding, clamp=args.clamp)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_bytes(sched.to_bytes())
    listing = sched.listing()
    if args.listing and args.listing != "-":
        Path(args.listing).parent.mkdir(parents=True, exist_ok=True)
        Path(args.listing).write_text(listing)
    elif args.listing == "-":
        sys.stdout.write(listing)
        if not args.json:
            return 0
    L = sched.layout
    summary = {
        "cascade": sched.cascade,
        "config": config.name,
        "config_digest": config.digest(),
        "shape": shape.as_dict(),
        "causal": sched.causal,
        "score_function": sched.score_function,
        "entropy": sched.entropy,
        "instructions": len(sched.instructions),
        "tiles": sched.tiles,
        "tiles_skipped": sched.tiles_skipped,
        "tiling": {"M0": L.rows, "M1": L.M1, "P0": L.cols, "P1": 1, "P2": L.P2},
        "layout": L.as_dict(),
        "out": args.out,
        "listing": args.listing,
    }
    if sched.is_flow:
        summary.update({"flow_tokens": sched.flow_tokens, "clamp": sched.flow_clamp,
                        "clamp_code": sched.flow_clamp_code})
    text = (f"{sched.cascade} on {config.name} ({shape}{', causal' if sched.causal else ''}): "
            f"{len(sched.instructions)} instructions, "
            + (f"{sched.flow_tokens} tokens on the flow engine (clamp {sched.flow_clamp:g}, "
               f"c2 = {sched.flow_clamp_code})" if sched.is_flow else f"{sched.tiles} tiles")
            + (f" ({sched.tiles_skipped} masked tiles skipped)" if sched.tiles_skipped else "")
            + f"; M1 = {L.M1} chunks x M0 = {L.rows} keys, P2 = {L.P2} blocks x P0 = {L.cols} "
            f"queries; image {L.n_lines} lines"
            + (f"; output blocks of F + 1 = {L.out_lines} lines (line {shape.F}: the entropy H)"
               if sched.entropy else "")
            + (f"; wrote {args.out}" if args.out else "")
            + (f", listing {args.listing}" if args.listing and args.listing != "-" else ""))
    emit(args, summary, text)
    return 0
