"""The ``fusemax`` command line.

Each area of the package contributes its subcommands through a ``register(subparsers)``
function in the module listed in :data:`COMMAND_MODULES`; this file only wires them up, so a
subcommand lives next to the code it drives.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from fusemax.errors import FuseMaxError

#: Modules that provide subcommands, in the order ``fusemax --help`` lists them.
COMMAND_MODULES = [
    "fusemax.sw.cascade_cli",
    "fusemax.sw.golden_cli",
    "fusemax.sw.compile_cli",
    "fusemax.hw.verilog_cli",
    "fusemax.sim.sim_cli",
    "fusemax.sim.timeline_cli",
    "fusemax.sw.model_cli",
    "fusemax.hw.synth_cli",
]


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples in epilogs as written."""


def add_command(subparsers, name: str, *, help: str, example: str, description: str | None = None):
    """Add a subcommand whose ``--help`` ends with a runnable example."""
    return subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=f"example:\n  {example}",
        formatter_class=_Formatter,
    )


def emit(args: argparse.Namespace, result: Any, text: str) -> None:
    """Print ``result`` as JSON when ``--json`` was given, else the human-readable ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, sort_keys=False))
    else:
        print(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusemax",
        description="FuseMax: attention cascades -> control schedules -> RTL simulation.",
        formatter_class=_Formatter,
        epilog="example:\n  fusemax cascade list\n  fusemax cascade passes attention-1pass --json",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # an area not built yet must not break the rest
            if exc.name != module_name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except FuseMaxError as exc:
        print(f"fusemax {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `fusemax ... | head` closed the pipe: not an error of ours
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
