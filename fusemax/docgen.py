"""The README's (and docs/architecture.md's) reference sections, generated from the code (``python scripts/gen_docs.py``).

A Markdown file holds generated sections between marker comments::

    <!-- BEGIN generated:NAME -->
    ...                      (rewritten by the generator; do not edit by hand)
    <!-- END generated:NAME -->

:data:`SECTIONS` maps each NAME to the function that writes it: the configuration's parameters
(``fusemax/config.py``), the presets, the schedule format (``fusemax/sw/schedule.py``), an example
memory image (built by the compiler's own ``build_image``), the counters and error flags
(``fusemax/hw/top.py``) and the command line (the argparse tree of ``fusemax/cli.py``).
``--check`` exits 1 with a diff when a file differs from what the code generates
(``tests/test_readme.py`` runs it).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Files with generated sections.
FILES = ("README.md", "docs/architecture.md")
DIAGRAM = Path("docs/img/block_diagram.png")

_BLOCK = re.compile(r"(<!-- BEGIN generated:([\w-]+) -->\n)(.*?)(<!-- END generated:\2 -->)", re.S)


def _cell(text) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(head: list[str], rows: list[list], align: str | None = None) -> str:
    align = align or "-" * len(head)
    sep = ["--:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# configuration


def _comment_docs(cls) -> dict[str, str]:
    """``#:`` comments above the fields of a dataclass, by field name."""
    src = Path(inspect.getsourcefile(cls)).read_text().splitlines()
    tree = ast.parse("\n".join(src))
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    docs = {}
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            lines, i = [], stmt.lineno - 2
            while i >= 0 and src[i].strip().startswith("#:"):
                lines.insert(0, src[i].strip()[2:].strip())
                i -= 1
            if lines:
                docs[stmt.target.id] = " ".join(lines)
    return docs


def _docstring_fields(cls) -> dict[str, str]:
    """The numpydoc ``Fields`` section of a class docstring: ``name`` -> description."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    m = re.search(r"^Fields\n-+\n(.*)", doc, re.S | re.M)
    docs: dict[str, str] = {}
    names: list[str] = []
    for line in (m.group(1) if m else "").splitlines():
        head = re.match(r"^(\w[\w, ]*) : ", line)
        if head:
            names = [n.strip() for n in head.group(1).split(",")]
            for n in names:
                docs[n] = ""
        elif line.strip() and names:
            for n in names:
                docs[n] = (docs[n] + " " + line.strip()).strip()
    return docs


def _rst(text: str) -> str:
    """reST inline markup as Markdown: ``x`` -> `x`, :class:`X` -> `X`, :data:`A`[d] -> `A[d]`."""
    text = re.sub(r":\w+:`~?([^`]+)`(\[\w+\])?", lambda m: f"`{m.group(1).split('.')[-1]}{m.group(2) or ''}`", text)
    return text.replace("``", "`")


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        val = f.default
    elif f.default_factory is not dataclasses.MISSING:
        val = f.default_factory()
    else:
        return "required"
    if hasattr(val, "describe") and hasattr(val, "width"):
        return f"`{val.describe().split()[0]}`"
    if dataclasses.is_dataclass(val):
        return f"`{getattr(val, 'name', type(val).__name__)}`"
    return f"`{val!r}`" if isinstance(val, str) else f"`{val}`"


def _properties(cls, obj) -> list[list]:
    rows = []
    for name, attr in vars(cls).items():
        if isinstance(attr, property) and attr.__doc__:
            doc = " ".join(attr.__doc__.split())
            rows.append([f"`{name}`", f"`{getattr(obj, name)}`", _rst(doc)])
    return rows


def section_params() -> str:
    from fusemax.config import FuseMaxConfig, NumericsConfig, preset

    out = ["`FuseMaxConfig`: every artifact (Verilog, schedule, golden model, "
           "testbench) is derived from one. `--config` takes a preset name or a JSON file written by "
           "`FuseMaxConfig.to_json()`; a field left out of the JSON takes its default.\n"]
    docs = _comment_docs(FuseMaxConfig)
    rows = [[f"`{f.name}`", f"`{f.type}`", _default(f), _rst(docs.get(f.name, ""))]
            for f in dataclasses.fields(FuseMaxConfig)]
    ndocs = _docstring_fields(NumericsConfig)
    rows += [[f"`numerics.{f.name}`", f"`{f.type}`", _default(f), _rst(ndocs.get(f.name, ""))]
             for f in dataclasses.fields(NumericsConfig)]
    out.append(_table(["field", "type", "default", "meaning"], rows))
    cfg = preset("small")
    out.append(f"\nDerived (values for `{cfg.name}`, {cfg.rows}×{cfg.cols}, default numerics):\n")
    rows = _properties(FuseMaxConfig, cfg) + [[r[0].replace("`", "`numerics.", 1), *r[1:]]
                                              for r in _properties(NumericsConfig, cfg.numerics)]
    out.append(_table(["property", "value", "meaning"], rows))
    return "\n".join(out)


def section_presets() -> str:
    from fusemax.config import PRESETS
    from fusemax.sw.compiler import buffer_bytes
    from fusemax.sw.schedule import insns_per_line

    rows = []
    for name, c in PRESETS.items():
        n = c.numerics
        b = buffer_bytes(c)
        rows.append([f"`{name}`", c.rows, c.cols, f"`{n.name}`",
                     " / ".join(getattr(n, r).describe().split()[0] for r in ("q", "k", "v")),
                     f"{c.max_e} / {c.max_f}", f"{c.mem_lanes} × 16 bit", insns_per_line(c.mem_lanes),
                     f"{b['q_buffer']:,}", f"{b['kv_buffer']:,}", f"{b['rnv_regfile']:,}",
                     f"{b['rm_rd_state']:,}", f"{b['total']:,}"])
    return ("On-chip storage in bytes (`fusemax.sw.compiler.buffer_bytes`); none of it depends on "
            "the sequence length.\n\n" + _table(
                ["preset", "rows", "cols", "numerics", "Q / K / V", "max_e / max_f", "memory line",
                 "insns / line", "Q buffer", "K/V slots", "RNV files", "RM, RD", "total"], rows,
                "lrrllrlrrrrrr"))


# ---------------------------------------------------------------------------------------------
# schedule format


def _bits(lo: int, width: int) -> str:
    return f"[{lo}]" if width == 1 else f"[{lo + width - 1}:{lo}]"


def section_schedule() -> str:
    from fusemax.sw import schedule as sf

    rows = []
    for op in sf.OPCODES.values():
        segs = [f"{_bits(sf.OPCODE_LO, sf.OPCODE_WIDTH)} `{op.code:#04x}`"]
        top = sf.OPCODE_LO
        for name, (lo, width) in sorted(op.fields.items(), key=lambda kv: -kv[1][0]):
            if lo + width < top:
                segs.append(f"{_bits(lo + width, top - lo - width)} 0")
            segs.append(f"{_bits(lo, width)} **{name}**" + (" (signed)" if name in op.signed else ""))
            top = lo
        if top > 0:
            segs.append(f"{_bits(0, top)} 0")
        rows.append([f"`{op.code:#04x}`", f"`{op.name}`", " · ".join(segs), op.doc])
    lanes = [4, 8, 16, 32, 64]
    return (f"Version {sf.VERSION}. An instruction is a {sf.WORD_BITS}-bit word, the opcode in bits "
            f"{_bits(sf.OPCODE_LO, sf.OPCODE_WIDTH)}, fields unsigned unless marked, unused bits 0. "
            f"A memory line of 16 × `mem_lanes` bits holds k = `insns_per_line(mem_lanes)` "
            f"instructions, instruction i of a line in bits [64i+63:64i] (the first in the low "
            f"bits); K/V buffer slots: {sf.KV_SLOTS}.\n\n"
            + _table(["mem_lanes"] + [str(n) for n in lanes],
                     [["k"] + [sf.insns_per_line(n) for n in lanes]], "l" + "r" * len(lanes))
            + "\n" + _table(["opcode", "mnemonic", "bits, high to low", "what it does"], rows))


# ---------------------------------------------------------------------------------------------
# memory map


#: The shape of the example image: small enough to print whole, with padding on both sides.
EXAMPLE = ("tiny", "B=1,H=1,M=6,P=3,E=2,F=2")


def section_memory_map() -> str:
    import numpy as np

    from fusemax.config import preset
    from fusemax.sw import schedule as sf
    from fusemax.sw.compiler import Layout, build_image, compile_schedule, parse_shape

    cfg, s = preset(EXAMPLE[0]), parse_shape(EXAMPLE[1])
    sched = compile_schedule(cfg, s)
    L = sched.layout
    # distinct codes, so every lane of the image says which element it holds
    labels = {0: "0"}

    def codes(name: str, n_a: int, n_b: int, a: str, b: str) -> np.ndarray:
        arr = np.zeros((1, 1, n_a, n_b), np.int64)
        for i in range(n_a):
            for j in range(n_b):
                code = len(labels)
                arr[0, 0, i, j] = code
                labels[code] = f"{name}[{a}{i},{b}{j}]"
        return arr

    qc = codes("Q'", s.P, s.E, "p", "e")
    kc = codes("K", s.M, s.E, "m", "e")
    vc = codes("V", s.M, s.F, "m", "f")
    img = build_image(sched, qc, kc, vc)
    k = sf.insns_per_line(L.mem_lanes)
    region_of = {}
    for r in L.regions():
        for n in range(r["lines"]):
            region_of[r["addr"] + n] = (r, n)
    rows = []
    for line in range(L.n_lines):
        r, n = region_of[line]
        if r["kind"] == "schedule":
            words = [sum(int(img[line, 4 * i + w]) << (16 * w) for w in range(4)) for i in range(k)]
            what = "schedule: " + "; ".join(f"`{sf.mnemonic(w)}`" for w in words if w)
            lanes = [f"`{int(v):04x}`" for v in img[line]]
        elif r["kind"] == "out":
            what = f"output block {r['index']}, line f = {n}"
            lanes = [f"O[p{r['queries'][0] + c},f{n}]" if r["queries"][0] + c < r["queries"][1] else "0"
                     for c in range(L.mem_lanes)]
        else:
            if r["kind"] == "Q":
                what = f"Q block {r['index']}, line e = {n}"
            else:
                what = (f"K/V chunk {r['index']}, " + (f"K line e = {n}" if n < s.E else f"V line f = {n - s.E}"))
            lanes = [labels[int(v)] for v in img[line]]
        rows.append([line, what] + lanes)
    head = ["line", "region"] + [f"lane {i}" for i in range(L.mem_lanes)]
    doc = " ".join(inspect.cleandoc(Layout.__doc__).split("\n\n", 1)[1].split())
    return (f"{_rst(doc)} The compiler's listing (`fusemax compile ... --listing FILE`) gives every "
            f"region's address.\n\nThe whole image for config `{cfg.name}` ({cfg.rows}×{cfg.cols}, "
            f"{L.mem_lanes} lanes of 16 bits per line, {k} instruction per line) and shape "
            f"{s}, as `fusemax.sw.compiler.build_image` lays it out (M1 = {L.M1} chunks, "
            f"P2 = {L.P2} block; an instruction in hex, lane 0 = its bits [15:0]; "
            f"padding lanes are 0; the output lines are written by `AV`):\n\n"
            + _table(head, rows, "rl" + "l" * L.mem_lanes))


# ---------------------------------------------------------------------------------------------
# counters and flags


def section_counters() -> str:
    from fusemax.hw.top import COUNTER_DOC, COUNTERS, CSR_ADDR_WIDTH, ERROR_BITS, ERROR_DOC
    from fusemax.sim.attention import CSR_NAMES
    from fusemax.sw.executor import ERROR_BITS as REPORT_FLAGS

    rows = [[i, f"`ctr_{name}`", f"`{CSR_NAMES[i]}`", COUNTER_DOC[name]] for i, name in enumerate(COUNTERS)]
    flags = [[bit, f"`{name}`", f"`{REPORT_FLAGS[bit]}`", ERROR_DOC[name]]
             for name, bit in sorted(ERROR_BITS.items(), key=lambda kv: kv[1])]
    return (f"Counters (`fusemax/hw/top.py` `COUNTERS`): 64 bits, read through `csr_addr` "
            f"({CSR_ADDR_WIDTH} bits) / `csr_data`; `start` clears them, they count while `busy` "
            f"and stay frozen from `done`. `fusemax sim --report` holds them under `counters`.\n\n"
            + _table(["csr_addr", "RTL register", "report key", "counts"], rows, "rlll")
            + f"\nError flags (the {len(ERROR_BITS)}-bit `error` output, sticky until the next "
            "`start`; saturation and divide by zero only for real queries p < P):\n\n"
            + _table(["bit", "RTL name", "report name", "set by"], flags, "rlll"))


# ---------------------------------------------------------------------------------------------
# command line


def command_tree(parser: argparse.ArgumentParser | None = None, prefix: str = "fusemax"):
    """``(command, help, parser)`` for the parser and every subcommand below it, in order."""
    if parser is None:
        from fusemax.cli import build_parser

        parser = build_parser()
    out = [(prefix, parser.description or "", parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                tree = command_tree(sub, f"{prefix} {name}")
                out.append((tree[0][0], helps.get(name) or "", sub))
                out += tree[1:]
    return out


def examples(parser: argparse.ArgumentParser) -> list[str]:
    """The example lines of a parser's epilog."""
    text = (parser.epilog or "").partition("example:")[2]
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def section_cli() -> str:
    rows = []
    for cmd, help_, parser in command_tree()[1:]:
        ex = examples(parser)
        rows.append([f"`{cmd}`", help_, f"`{ex[0]}`" if ex else ""])
    return ("`fusemax COMMAND --help` gives every option and the examples; `--json` prints the "
            "result as JSON on stdout where a script wants it (progress goes to stderr).\n\n"
            + _table(["command", "what", "example"], rows))


#: Section name -> generator.
SECTIONS = {
    "params": section_params,
    "presets": section_presets,
    "schedule": section_schedule,
    "memory-map": section_memory_map,
    "counters": section_counters,
    "cli": section_cli,
}


# ---------------------------------------------------------------------------------------------
# files


def render(text: str) -> str:
    """``text`` with every generated section rewritten."""
    def one(m: re.Match) -> str:
        name = m.group(2)
        if name not in SECTIONS:
            raise KeyError(f"unknown generated section {name!r}; known: {', '.join(SECTIONS)}")
        body = SECTIONS[name]().rstrip("\n") + "\n"
        return m.group(1) + body + m.group(4)

    return _BLOCK.sub(one, text)


def check(files=FILES, root: Path = ROOT) -> list[str]:
    """Unified diffs of every file that differs from its generated form (empty: up to date)."""
    diffs = []
    for name in files:
        old = (root / name).read_text(encoding="utf-8")
        new = render(old)
        if new != old:
            diffs.append("".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                      f"{name} (on disk)", f"{name} (generated)")))
    return diffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="gen_docs.py", description="Rewrite the generated sections of the README (and the "
        "block diagram) from the code.",
        epilog="example:\n  python scripts/gen_docs.py --check", formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true",
                    help="change nothing; exit 1 with a diff if a file is not up to date")
    ap.add_argument("--no-diagram", action="store_true", help="do not redraw " + str(DIAGRAM))
    args = ap.parse_args(argv)
    if args.check:
        diffs = check()
        for d in diffs:
            sys.stdout.write(d)
        if diffs:
            print("generated sections are out of date: run python scripts/gen_docs.py", file=sys.stderr)
        return 1 if diffs else 0
    for name in FILES:
        path = ROOT / name
        old = path.read_text(encoding="utf-8")
        new = render(old)
        if new != old:
            path.write_text(new, encoding="utf-8")
        print(f"{name}: {'rewritten' if new != old else 'up to date'}", file=sys.stderr)
    if not args.no_diagram:
        from fusemax.diagram import draw

        info = draw(out=ROOT / DIAGRAM)
        print(f"{DIAGRAM}: drawn for config {info['config']}", file=sys.stderr)
    return 0
