"""``fusemax verilog``: write the generated Verilog and its JSON description for a config."""

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
        subparsers, "verilog",
        help="generate the accelerator's Verilog (fusemax_top.v) and its JSON description",
        description="Generate Verilog for a configuration: DIR/fusemax_top.v (module fusemax_top, "
        "deterministic, no absolute paths) and DIR/fusemax_top.json (ports with widths and "
        "directions, parameters, buffer sizes, memory image layout, counters, error bits). "
        "Progress goes to stderr (a new configuration takes Amaranth a while; the result is cached "
        f"under build/verilog/). Configs: {', '.join(PRESETS)} or a config .json file.",
        example="fusemax verilog --config tiny -o build/rtl-tiny",
    )
    p.add_argument("--config", required=True, metavar="NAME|FILE.json", help="configuration preset or JSON file")
    p.add_argument("-o", "--out-dir", required=True, metavar="DIR", help="output directory (created)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_verilog)


def cmd_verilog(args: argparse.Namespace) -> int:
    from fusemax.hw.verilog import TOP_NAME, cached_verilog, describe

    config = load_config(args.config)
    out = Path(args.out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FuseMaxError(f"cannot create {out}: {exc.strerror}") from None
    t0 = time.monotonic()
    print(f"fusemax verilog: generating Verilog for {config.name} ({config.rows}x{config.cols}; "
          f"Amaranth, cached under build/verilog/)...", file=sys.stderr, flush=True)
    text = cached_verilog(config)
    print(f"fusemax verilog: {len(text)} bytes in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
    desc = describe(config)
    vpath = out / f"{TOP_NAME}.v"
    jpath = out / f"{TOP_NAME}.json"
    vpath.write_text(text)
    jpath.write_text(json.dumps(desc, indent=2) + "\n")
    summary = {"config": config.name, "config_digest": config.digest(), "verilog": str(vpath),
               "json": str(jpath), "verilog_bytes": len(text), "modules": text.count("\nmodule "),
               "on_chip_bytes": desc["on_chip_bytes"]}
    emit(args, summary,
         f"config {config.name} ({config.rows}x{config.cols}, digest {config.digest()}): "
         f"wrote {vpath} ({len(text)} bytes, {summary['modules']} modules) and {jpath}")
    return 0
