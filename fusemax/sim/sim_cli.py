"""``fusemax sim``: run a cascade on the generated RTL under Verilator + cocotb and compare."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fusemax.cli import add_command, emit
from fusemax.config import PRESETS, load_config
from fusemax.errors import FuseMaxError


def register(subparsers) -> None:
    p = add_command(
        subparsers, "sim",
        help="simulate a cascade on the generated RTL (Verilator + cocotb) and compare",
        description="Compile the cascade for the inputs' shape, build the configuration's RTL "
        "with Verilator (once per configuration, cached under build/verilator/), run it under "
        "cocotb, and compare the output bit for bit with the golden model and against a float64 "
        "reference. Inputs: an .npz with Q (B,H,P,E), K (B,H,M,E), V (B,H,M,F) (B and H may be "
        "absent). Output: an .npz with O and O_codes (the raw output integers). The report "
        "(--report) holds cycles, per-array busy cycles and utilization, per-Einsum cycles, "
        "memory stalls, on-chip buffer sizes, error flags, the bit-exact verdict, the error "
        "against float64 and the wall times. Exit status 1 if the RTL is not bit-exact or its "
        f"flags differ from the golden's. Configs: {', '.join(PRESETS)} or a config .json file.",
        example="fusemax sim attention-1pass --config small --inputs in.npz --out out.npz "
                "--report report.json",
    )
    p.add_argument("cascade", metavar="CASCADE", help="cascade name (attention-1pass)")
    p.add_argument("--config", required=True, metavar="NAME|FILE.json")
    p.add_argument("--inputs", required=True, metavar="IN.npz")
    p.add_argument("--out", required=True, metavar="OUT.npz")
    p.add_argument("--report", metavar="REPORT.json", help="write the full report as JSON")
    p.add_argument("--waves", metavar="DIR", help="trace (FST, VCD without lz4/zlib) into DIR")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed of the simulation (cocotb) run")
    p.add_argument("--causal", action="store_true",
                   help="causal mask aligned at the end of the keys (query p sees key m <= p + M - P)")
    p.add_argument("--scale", type=float, default=None, help="softmax scale (default 1/sqrt(E))")
    p.add_argument("--mem-ready", type=int, default=100, metavar="PCT",
                   help="memory accepts a request in about PCT %% of the cycles (default 100)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="kill the simulator after this many seconds")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_sim)


def cmd_sim(args: argparse.Namespace) -> int:
    from fusemax.sim.attention import report_json, simulate, summary_text
    from fusemax.sw.attention_io import load_attention_inputs, save_attention_output
    from fusemax.sw.compiler import check_cascade_mappable

    check_cascade_mappable(args.cascade)
    config = load_config(args.config)
    q, k, v, had_batch = load_attention_inputs(args.inputs)
    if args.scale is not None and not (args.scale == args.scale and abs(args.scale) < float("inf")):
        raise FuseMaxError(f"--scale must be a finite number, got {args.scale}")

    from rich.console import Console

    console = Console(stderr=True, log_path=False)
    with console.status(f"fusemax sim: {config.name}", spinner="dots") as status:
        def progress(msg: str) -> None:
            status.update(f"fusemax sim ({config.name}): {msg}")
            console.log(msg)

        report = simulate(config, q, k, v, scale=args.scale, causal=args.causal, waves=args.waves,
                          seed=args.seed, mem_ready_pct=args.mem_ready, progress=progress,
                          timeout_s=args.timeout)
    codes = report["output_codes"]
    if codes is not None:
        save_attention_output(args.out, report["output"], had_batch,
                              extra={"O_codes": codes if had_batch else codes[0, 0]})
    data = report_json(report)
    data["out"] = args.out if codes is not None else None
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(data, indent=2) + "\n")
    emit(args, data, summary_text(report) + (f"\nwrote {args.out}" if codes is not None else ""))
    ok = report["bit_exact"] and report["flags_match"] and not report["timeout"]
    return 0 if ok else 1
