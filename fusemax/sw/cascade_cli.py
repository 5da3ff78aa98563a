"""``fusemax cascade ...``: list, show, check, analyse and evaluate cascades."""

from __future__ import annotations

import argparse

import numpy as np

from fusemax.cli import add_command, emit
from fusemax.errors import FuseMaxError
from fusemax.sw.attention_io import bind_dims, check_array, load_npz
from fusemax.sw.cascade.printer import format_cascade
from fusemax.sw.library import builtin_names, load_cascade
from fusemax.sw.passes import analyse_passes, passes_json
from fusemax.sw.reference import evaluate


def register(subparsers) -> None:
    cascade = add_command(subparsers, "cascade", help="work with cascades of extended Einsums",
                          example="fusemax cascade show attention-1pass --unicode")
    sub = cascade.add_subparsers(dest="cascade_command", metavar="ACTION", required=True)

    p = add_command(sub, "list", help="list the built-in cascades",
                    example="fusemax cascade list --json")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = add_command(sub, "show", help="print a cascade in canonical form (checks it first)",
                    example="fusemax cascade show attention-1pass --unicode")
    p.add_argument("cascade", metavar="NAME|FILE")
    p.add_argument("--unicode", action="store_true", help="use the paper's glyphs (× ⋁ ⋄ −∞)")
    p.set_defaults(func=cmd_show)

    p = add_command(sub, "passes", help="passes over each rank the cascade needs, and why",
                    example="fusemax cascade passes attention-3pass --json")
    p.add_argument("cascade", metavar="NAME|FILE")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_passes)

    p = add_command(sub, "eval", help="evaluate a cascade in float64 on arrays from an .npz",
                    description="Evaluate a cascade in float64. Inputs are read from an .npz "
                    "under their file names in their stored order (attention: Q (B,H,P,E), "
                    "K (B,H,M,E), V (B,H,M,F); B and H may be absent); outputs are written the "
                    "same way (attention: O (B,H,P,F)).",
                    example="fusemax cascade eval attention-1pass --inputs in.npz --out out.npz")
    p.add_argument("cascade", metavar="NAME|FILE")
    p.add_argument("--inputs", required=True, metavar="IN.npz")
    p.add_argument("--out", required=True, metavar="OUT.npz")
    p.add_argument("--scale", type=float, help="replace the prescale factor (default: the "
                   "cascade's own, 1/sqrt(E) for attention)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=N",
                   help="override a param, e.g. --param M0=8 (repeatable)")
    p.add_argument("--intermediates", metavar="FILE.npz",
                   help="also write every tensor (empty coordinates as NaN, with NAME.ranks)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_eval)


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for name in builtin_names():
        checked = load_cascade(name)
        passes = {r: x.passes for r, x in analyse_passes(checked).items()}
        rows.append({"name": name, "title": checked.cascade.title, "passes": passes})
    width = max(len(r["name"]) for r in rows)
    passes = [" ".join(f"{k}:{v}" for k, v in r["passes"].items()) for r in rows]
    pwidth = max(16, *(len(x) for x in passes))
    text = "\n".join(f"{r['name']:<{width}}  {p:<{pwidth}}  {r['title']}"
                     for r, p in zip(rows, passes))
    emit(args, rows, text)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    print(format_cascade(load_cascade(args.cascade).cascade, unicode=args.unicode), end="")
    return 0


def cmd_passes(args: argparse.Namespace) -> int:
    checked = load_cascade(args.cascade)
    analysis = analyse_passes(checked)
    lines = [f"{checked.name}: " + ", ".join(f"{r} {x.passes} pass{'es' if x.passes != 1 else ''}"
                                              for r, x in analysis.items())]
    for rank, x in analysis.items():
        for extra in x.chain:
            lines.append(f"  {rank} {extra.describe()}")
    emit(args, passes_json(checked, analysis), "\n".join(lines))
    return 0


def parse_params(items: list[str]) -> dict[str, int]:
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise FuseMaxError(f"--param {item!r}: expected NAME=N with N a whole number")
        params[name.strip()] = int(value)
    return params


def cmd_eval(args: argparse.Namespace) -> int:
    checked = load_cascade(args.cascade)
    cascade = checked.cascade
    data = load_npz(args.inputs)
    missing = [d.file_name for d in cascade.inputs if d.file_name not in data]
    if missing:
        want = ", ".join(f"{d.file_name} ({','.join(d.file_ranks)})" for d in cascade.inputs)
        raise FuseMaxError(f"{args.inputs}: missing array(s) {', '.join(missing)}; "
                           f"{cascade.name} reads {want}")
    arrays, batched = {}, {}
    for d in cascade.inputs:
        raw = data[d.file_name]
        batched[d.file_name] = raw.ndim == len(d.file_ranks) + 2
        arrays[d.file_name] = check_array(d.file_name, raw, d.file_ranks, source=args.inputs)
    if len(set(batched.values())) > 1:
        raise FuseMaxError(f"{args.inputs}: some inputs carry B,H dimensions and some do not")
    bind_dims(arrays, {d.file_name: d.file_ranks for d in cascade.inputs}, source=args.inputs)
    result = evaluate(checked, arrays, params=parse_params(args.param), scale=args.scale)
    had_batch = all(batched.values())
    out = {name: (value if had_batch else value[0, 0]) for name, value in result.outputs.items()}
    np.savez(args.out, **out)
    if args.intermediates:
        tensors = {}
        for name, t in result.tensors.items():
            values = np.where(t.present, t.values, np.nan)
            tensors[name] = values if had_batch else values[0, 0]
            ranks = checked.tensors[name].ranks
            tensors[f"{name}.ranks"] = np.array((["B", "H"] if had_batch else []) + list(ranks))
        np.savez(args.intermediates, **tensors)
    summary = {
        "cascade": checked.name,
        "sizes": result.sizes,
        "outputs": {name: list(value.shape) for name, value in out.items()},
        "empty_outputs": result.empty_outputs,
        "out": args.out,
    }
    text = (f"{checked.name}: wrote {', '.join(f'{n} {tuple(v.shape)}' for n, v in out.items())} "
            f"to {args.out} (sizes {', '.join(f'{k}={v}' for k, v in result.sizes.items())})")
    for name, count in result.empty_outputs.items():
        if count:
            text += f"\nwarning: {count} coordinates of {name} have no value (written as 0)"
    emit(args, summary, text)
    return 0
