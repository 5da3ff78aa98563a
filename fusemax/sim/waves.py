"""Waveforms of an RTL run: a dump limited in time and hierarchy, and a GTKWave layout generated
from the dump's real hierarchy.

``fusemax sim ... --waves DIR`` (:func:`fusemax.sim.attention.run_program` with
``waves=WaveOptions(...)`` or a directory) writes into DIR:

``dump.fst``
    the trace (``dump.vcd`` where Verilator cannot build FST tracing here:
    :func:`fusemax.sim.toolchain.fst_available`, the lz4/zlib headers);
``waves.gtkw``
    a GTKWave save file made by reading the dump back (pywellen) and laying out what is really
    in it: control (clk, rst, start, busy, done, error, the cycle counter), the sequencer
    (``cur_insn`` shown as its mnemonic, the FSM state by name, stall), the per-Einsum activity
    (``act_*`` of :data:`fusemax.hw.sequencer.ACTIVITY`: BQK and SLNV interleaving cycle by
    cycle), the memory port (``mem_req_*``, ``mem_rsp_*``), the 1D lanes (RM, RM valid, RD, PRM,
    LM per lane) and the 2D rows (score, valid, SLN per PE; one collapsed group per row). Every
    path is relative: ``[dumpfile] "dump.fst"`` and the filter files next to it, so open it from
    DIR (``scripts/waves.sh`` does: ``cd DIR && gtkwave dump.fst waves.gtkw``);
``insn.filter``, ``fsm.filter``
    GTKWave translate filter files: every instruction word the dump holds -> its mnemonic
    (:func:`fusemax.sw.schedule.mnemonic`), every state code -> its name
    (:func:`fusemax.hw.sequencer.fsm_states`). A word filter is exact because it is written
    after the run from the words actually traced;
``waves.json``
    what was dumped (window, scopes, format, sizes) and the command that opens it.

The last run's directory is recorded in ``build/waves/last`` (one line, absolute) and
``build/waves/last.json``.

Fixed point. Operands are two's complement with a per-role number of fraction bits
(``config.numerics``: q, k, score, exp, rd, ...). GTKWave can show them as real numbers: its
"Fixed Point Shift" (trace flag ``fpdecshift`` with ``[fpshift_count] F``) prints a signed
(or unsigned) decimal value divided by 2**F. The layout uses it for the signals whose role is
known (score, RM, LM: ``score``; SLN, PRM: ``exp``; RD: ``rd``) and whose width matches the
format, and names the format in the alias (``s16:10`` = 16-bit two's complement, 10 fraction
bits; ``u16:15`` unsigned; no '.', which GTKWave takes for a hierarchy separator). Viewers that ignore ``[fpshift_count]`` (older GTKWave, Surfer)
show the signed integer code; divide it by 2**F. Formats with a negative or too large ``frac``
are shown as signed codes with the format in the alias.

How the dump is limited. cocotb's Verilator main can only trace everything from time 0
(``--trace``), Verilator 5.048 generates no code at all for ``$dumpoff`` (checked in the
generated C++) and ignores the scope and levels arguments of ``$dumpvars`` (documented). The
C++ side of the tracer does filter scopes (``VerilatedTrace::dumpvars(levels, scope)``, set
before ``open``). So a waves build of the simulation wrapper
(:func:`fusemax.sim.wrapper.wrapper_verilog` with ``waves=True``) opens and closes the dump
itself, through two DPI-C functions compiled into the model (:data:`DPI_CPP`):

* ``+fusemax_waves=PATH``: the dump; opened at time 0, or at the start of the window;
* ``+fusemax_waves_from=N``, ``+fusemax_waves_to=M``: cycles [N, M) counted from the start
  pulse (cycle 0 is the cycle after the clock edge that samples ``start``, the first cycle the
  ``cycles`` counter counts; the wrapper's ``waves_cycle`` shows the number, -1 before start);
* ``+fusemax_waves_scopes=SCOPE:LEVELS,...``: ``$dumpvars``-style filters (LEVELS 1 = the
  scope's own signals, 2 = one level of instances more, ...).

:class:`WaveOptions` ``scopes`` are glob patterns over the instance paths of the generated
Verilog (relative to the DUT, e.g. ``seq``, ``array1d.lane_c*``, ``array2d.pe_r0_*``, or
absolute from ``fusemax_sim``; ``*`` stays within one level, ``**`` crosses levels), with an
optional ``:LEVELS``; ``depth`` keeps that many levels
below ``fusemax_sim`` (1 = the wrapper: clock, control, memory bus). A limited dump always
keeps the overview (the wrapper's signals and the sequencer's own signals: ``cur_insn``, the FSM,
``act_*``), so the layout's control groups and the timeline (:mod:`fusemax.sim.timeline`) work
on any dump.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusemax.errors import FuseMaxError
from fusemax.hw import synth

__all__ = ["WaveOptions", "parse_window", "DPI_CPP", "dpi_source", "build_args", "instance_paths",
           "resolve_scopes", "plusargs", "dump_name", "format_note", "Hierarchy", "write_gtkw",
           "WavesInfo", "finish", "last_run", "last_record_dir", "open_command", "gtkw_traces",
           "trace_ref", "split_trace_ref",
           "signal_changes"]

#: Levels that mean "everything below".
ALL_LEVELS = 99


# ---------------------------------------------------------------------------------------------
# options


def parse_window(text: str | None) -> tuple[int, int | None] | None:
    """``"100:500"`` -> (100, 500); ``"100:"`` -> (100, None); ``":500"`` -> (0, 500); cycles
    counted from the start pulse, the end excluded."""
    if text is None or text == "":
        return None
    a, sep, b = str(text).partition(":")
    if not sep:
        raise FuseMaxError(f"a cycle window is START:END (e.g. 100:500, 100: or :500), got {text!r}")
    try:
        start = int(a) if a.strip() else 0
        end = int(b) if b.strip() else None
    except ValueError:
        raise FuseMaxError(f"a cycle window is START:END with integer cycles, got {text!r}") from None
    if start < 0 or (end is not None and end <= start):
        raise FuseMaxError(f"cycle window {text!r}: need 0 <= START < END")
    return start, end


@dataclass(frozen=True)
class WaveOptions:
    """What to trace and where.

    ``dir``: the output directory; ``window``: cycles [start, end) from the start pulse (end
    None: to the end of the run); ``scopes``: glob patterns of instance paths (``SCOPE`` or
    ``SCOPE:LEVELS``); ``depth``: levels below ``fusemax_sim`` (see the module docstring);
    ``record``: write ``build/waves/last`` (for ``scripts/waves.sh``).
    """

    dir: Path
    window: tuple[int, int | None] | None = None
    scopes: tuple[str, ...] = ()
    depth: int | None = None
    record: bool = True  #: note the directory as the last run's (build/waves/last)

    def __post_init__(self):
        object.__setattr__(self, "dir", Path(self.dir))
        if self.window is not None:
            w = tuple(self.window)
            if len(w) != 2 or w[0] < 0 or (w[1] is not None and w[1] <= w[0]):
                raise FuseMaxError(f"waves window must be (start, end) cycles with 0 <= start < end, "
                                   f"got {self.window!r}")
            object.__setattr__(self, "window", (int(w[0]), None if w[1] is None else int(w[1])))
        if isinstance(self.scopes, str):
            object.__setattr__(self, "scopes", tuple(s for s in self.scopes.split(",") if s.strip()))
        object.__setattr__(self, "scopes", tuple(s.strip() for s in self.scopes if s.strip()))
        if self.depth is not None and (int(self.depth) < 1):
            raise FuseMaxError(f"waves depth must be >= 1, got {self.depth}")

    @classmethod
    def of(cls, waves: "WaveOptions | str | os.PathLike | None") -> "WaveOptions | None":
        if waves is None or waves == "" or waves is False:
            return None
        if isinstance(waves, WaveOptions):
            return waves
        return cls(Path(waves))

    @property
    def limited(self) -> bool:
        return bool(self.scopes) or self.depth is not None

    def as_dict(self) -> dict[str, Any]:
        return {"dir": str(self.dir), "window": list(self.window) if self.window else None,
                "scopes": list(self.scopes), "depth": self.depth, "record": self.record}


# ---------------------------------------------------------------------------------------------
# the DPI-C side

#: C++ of the waves control's DPI-C functions; ``VPREFIX`` is replaced by the model prefix
#: (cocotb builds with ``--prefix Vtop``).
DPI_CPP = r"""// fusemax_waves_dpi.cpp -- generated by fusemax.sim.waves; do not edit.
// DPI-C functions of the waves control in fusemax_sim (fusemax.sim.wrapper, waves builds):
// open Verilator's own $dumpvars dumper with scope filters (VerilatedTrace::dumpvars, which
// $dumpvars does not pass on) and close it at the end of the cycle window ($dumpoff is a no-op
// in Verilator 5.048). Uses the symbol-table members Verilator generates when the design calls
// $dumpfile (__Vm_dumperp, __Vm_dumping, __Vm_dumperMutex, __Vm_modelp, _traceDumpClose).
#include <cstdlib>
#include <string>
#include <type_traits>

#include "svdpi.h"
#include "verilated.h"
#include "VPREFIX__Syms.h"

namespace {
VPREFIX__Syms* fusemax_waves_syms() {
    const VerilatedScope* scope = static_cast<const VerilatedScope*>(svGetScope());
    return scope ? dynamic_cast<VPREFIX__Syms*>(scope->symsp()) : nullptr;
}
}  // namespace

// scopes: "" (everything) or "top.a.b:LEVELS,top.c:LEVELS" ($dumpvars levels: 1 = the scope's
// own signals, 2 = one level of instances more, ...). 1: opened, 0: already open, -1: no scope.
extern "C" int fusemax_waves_open(const char* path, const char* scopes) {
    VPREFIX__Syms* syms = fusemax_waves_syms();
    if (!syms) return -1;
    using Dumper = std::remove_pointer_t<decltype(syms->__Vm_dumperp)>;
    const VerilatedLockGuard lock{syms->__Vm_dumperMutex};
    if (syms->__Vm_dumperp) return 0;
    Dumper* dumper = new Dumper;
    const std::string list = scopes ? scopes : "";
    size_t pos = 0;
    while (pos < list.size()) {
        size_t end = list.find(',', pos);
        if (end == std::string::npos) end = list.size();
        std::string item = list.substr(pos, end - pos);
        int levels = 99;
        const size_t colon = item.rfind(':');
        if (colon != std::string::npos) {
            levels = std::atoi(item.c_str() + colon + 1);
            item.erase(colon);
        }
        if (!item.empty() && levels > 0) dumper->dumpvars(levels, item);
        pos = end + 1;
    }
    syms->__Vm_modelp->trace(dumper, 99, 0);
    dumper->open(path);
    syms->__Vm_dumperp = dumper;
    syms->__Vm_dumping = true;
    return 1;
}

extern "C" void fusemax_waves_close() {
    VPREFIX__Syms* syms = fusemax_waves_syms();
    if (syms && syms->__Vm_dumping) syms->_traceDumpClose();
}
"""


def dpi_source(prefix: str = "Vtop") -> Path:
    """The DPI-C source for a model built with ``--prefix PREFIX``, written once under
    ``build/waves/`` with its content hash in the name (so the build hash covers the content)."""
    from fusemax.sim.runner import build_root

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise FuseMaxError(f"model prefix {prefix!r} must be a C++ identifier")
    text = DPI_CPP.replace("VPREFIX", prefix)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = build_root() / "waves" / f"fusemax_waves_dpi-{digest}.cpp"
    if not path.is_file():  # the name holds the content hash
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def build_args(prefix: str = "Vtop") -> list[str]:
    """Extra Verilator arguments of a waves build (the DPI-C source)."""
    return [str(dpi_source(prefix))]


# ---------------------------------------------------------------------------------------------
# the hierarchy of the generated Verilog (for --waves-scope patterns)


def instance_paths(verilog: str, top: str | None = None) -> dict[str, str]:
    """Instance path (dotted, from ``top``) -> module name, for every instance below ``top``
    (default the simulation wrapper ``fusemax_sim``), read from the Verilog text."""
    from fusemax.sim.wrapper import SIM_TOP

    return _instance_paths(synth.split_modules(verilog), top or SIM_TOP)


def _instance_paths(mods: dict[str, str], top: str) -> dict[str, str]:
    """:func:`instance_paths` of the modules ``mods`` (:func:`fusemax.hw.synth.split_modules`)."""
    if top not in mods:
        raise FuseMaxError(f"module {top!r} not found in the Verilog")
    return dict(sorted(synth.instance_paths(top, synth.module_children(mods))))


def _declares(body: str, signal: str) -> bool:
    return re.search(rf"\b(?:reg|wire|logic|input|output)\b[^;]*?\b{re.escape(signal)}\b", body) is not None


def sequencer_path(verilog: str, paths: dict[str, str] | None = None) -> str | None:
    """Instance path of the sequencer: the deepest instance whose module declares ``cur_insn``."""
    from fusemax.sim.wrapper import SIM_TOP

    mods = synth.split_modules(verilog)
    return _sequencer_path(mods, paths if paths is not None else _instance_paths(mods, SIM_TOP))


def _sequencer_path(mods: dict[str, str], paths: dict[str, str]) -> str | None:
    """:func:`sequencer_path` of the modules ``mods`` and their instance ``paths``."""
    owners = {name for name, body in mods.items() if _declares(body, "cur_insn")}
    hits = [p for p, mod in paths.items() if mod in owners]
    return max(hits, key=lambda p: (p.count("."), p)) if hits else None


def _glob(pattern: str) -> re.Pattern:
    """An instance-path glob: ``*`` and ``?`` stay within one level, ``**`` crosses levels."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append(r"[^.]*")
            i += 1
        elif pattern[i] == "?":
            out.append(r"[^.]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def resolve_scopes(verilog: str, opts: WaveOptions) -> str:
    """The ``+fusemax_waves_scopes`` value for ``opts`` ("" = everything)."""
    from fusemax.sim.wrapper import DUT, SIM_TOP

    if not opts.limited:
        return ""
    mods = synth.split_modules(verilog)  # parsed once for both
    paths = _instance_paths(mods, SIM_TOP)
    seq = _sequencer_path(mods, paths)
    items = [f"{SIM_TOP}:{int(opts.depth or 1)}"]
    if seq:
        items.append(f"{seq}:1")
    else:  # no sequencer found: keep three levels (wrapper, top, blocks)
        items.append(f"{SIM_TOP}:3")
    rel_base = f"{SIM_TOP}.{DUT}."
    for pattern in opts.scopes:
        pat, sep, lv = pattern.partition(":")
        try:
            levels = int(lv) if sep else ALL_LEVELS
        except ValueError:
            raise FuseMaxError(f"waves scope {pattern!r}: LEVELS after ':' must be an integer") from None
        if levels < 1:
            raise FuseMaxError(f"waves scope {pattern!r}: LEVELS must be >= 1")
        rx = _glob(pat)
        hits = [p for p in paths
                if rx.match(p) or (p.startswith(rel_base) and rx.match(p[len(rel_base):]))]
        if not hits:
            near = [p[len(rel_base):] for p in paths if p.startswith(rel_base) and p.count(".") <= 3]
            raise FuseMaxError(f"waves scope {pat!r} matches no instance; instance paths (relative "
                               f"to {SIM_TOP}.{DUT}) include: {', '.join(near[:12])}")
        items += [f"{p}:{levels}" for p in hits]
    return ",".join(dict.fromkeys(items))


def dump_name() -> str:
    """``dump.fst`` where Verilator can build FST tracing here, else ``dump.vcd``."""
    from fusemax.sim import toolchain

    return "dump.fst" if toolchain.fst_available() else "dump.vcd"


def format_note() -> str:
    """Why the dump is FST or VCD."""
    from fusemax.sim import toolchain

    if toolchain.fst_available():
        return "FST"
    return ("VCD, not FST: the C++ compiler finds no lz4.h/zlib.h, which Verilator's FST writer "
            "needs (Debian: apt-get install liblz4-dev zlib1g-dev; `make setup` does it)")


def plusargs(opts: WaveOptions, dump: Path, verilog: str) -> list[str]:
    """Simulator plusargs of the waves control for ``opts``, dumping to ``dump``."""
    args = [f"+fusemax_waves={Path(dump).resolve()}"]
    if opts.window:
        start, end = opts.window
        args.append(f"+fusemax_waves_from={start}")
        if end is not None:
            args.append(f"+fusemax_waves_to={end}")
    scopes = resolve_scopes(verilog, opts)
    if scopes:
        args.append(f"+fusemax_waves_scopes={scopes}")
    return args


# ---------------------------------------------------------------------------------------------
# reading a dump back


@dataclass
class Scope:
    """A scope of the dump: full name, local name, depth, its variables by local name."""

    full: str
    name: str
    depth: int
    vars: dict[str, Any] = field(default_factory=dict)


def _natural_key(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


class Hierarchy:
    """The scopes and variables of a dump (pywellen), with finders by local signal names."""

    def __init__(self, path: str | os.PathLike):
        try:
            import pywellen
        except ImportError as exc:  # pragma: no cover
            raise FuseMaxError(f"reading waves needs pywellen ({exc}); `make setup`") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise FuseMaxError(f"no waveform dump at {self.path}")
        try:
            self.wave = pywellen.Waveform(str(self.path))
        except Exception as exc:  # noqa: BLE001 (pywellen raises plain exceptions)
            raise FuseMaxError(f"cannot read the waveform dump {self.path}: {exc}") from None
        self.scopes: list[Scope] = []
        self.vars: dict[str, Any] = {}

        def walk(s, depth: int) -> None:
            sc = Scope(s.full_name, s.name, depth)
            for v in s.vars():
                sc.vars.setdefault(v.name, v)
                self.vars.setdefault(v.full_name, v)
            self.scopes.append(sc)
            for c in s.scopes():
                walk(c, depth + 1)

        for s in self.wave.scopes():
            if not s.name.startswith("$"):
                walk(s, 0)

    def with_vars(self, *names: str) -> list[Scope]:
        """Scopes holding every one of ``names``, shallowest first, then in natural order."""
        return sorted((s for s in self.scopes if all(n in s.vars for n in names)),
                      key=lambda s: (s.depth, _natural_key(s.full)))

    def first(self, *names: str) -> Scope | None:
        hits = self.with_vars(*names)
        return hits[0] if hits else None

    def activity_scope(self) -> Scope | None:
        """The scope of the per-Einsum activity signals (:data:`fusemax.hw.sequencer.ACTIVITY`):
        the sequencer's (the scope of ``cur_insn``) when it has them all, else the first scope
        that has them all."""
        from fusemax.hw.sequencer import ACTIVITY

        seq = self.first("cur_insn")
        return seq if seq is not None and all(n in seq.vars for n in ACTIVITY) else self.first(*ACTIVITY)


def _int(value) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(str(value), 2)
    except ValueError:
        return 0  # x / z


def signal_changes(h: Hierarchy, variables: dict[str, Any]) -> dict[str, tuple[list[int], list[int]]]:
    """key -> (times, values) of every change of ``variables`` (key -> pywellen Var), in one pass
    over the dump; x/z read as 0."""
    by_id: dict[str, list[str]] = {}
    for key, var in variables.items():
        by_id.setdefault(str(var.signal_id), []).append(key)
    out: dict[str, tuple[list[int], list[int]]] = {k: ([], []) for k in variables}
    if not variables:
        return out

    def cb(t, sid, value):
        keys = by_id.get(str(sid))
        if keys:
            v = _int(value)
            for k in keys:
                ts, vs = out[k]
                ts.append(t)
                vs.append(v)

    h.wave.stream_changes(cb, list(variables.values()))
    return out


# ---------------------------------------------------------------------------------------------
# the GTKWave save file

#: Signals whose number format is a config role (the PEs' ports).
FIXED_ROLES = {"score": "score", "rm": "score", "rm_new": "score", "lm": "score",
               "sln": "exp", "prm": "exp", "rd": "rd"}


def _fmt_tag(fmt) -> str:
    # no '.': GTKWave shortens a displayed name to what follows its last '.'
    return f"{'s' if fmt.signed else 'u'}{fmt.width}:{fmt.frac}"


@dataclass
class _Trace:
    name: str
    alias: str | None = None
    datafmt: str = "hex"
    shift: int = 0
    filter: str | None = None
    color: Any = None


class _Layout:
    """Collects the groups, then writes them with pyvcd's GTKWSave."""

    def __init__(self):
        self.items: list = []  # ("trace", _Trace) | ("begin", name, closed) | ("end", name, closed)

    def trace(self, t: _Trace):
        self.items.append(("trace", t))

    def begin(self, name: str, closed: bool = False):
        self.items.append(("begin", name, closed))

    def end(self, name: str, closed: bool = False):
        self.items.append(("end", name, closed))

    def traces(self) -> list[_Trace]:
        return [it[1] for it in self.items if it[0] == "trace"]


def _fixed(config, var, local: str) -> tuple[str, int, str]:
    """(datafmt, fpshift, format tag) for a PE signal, or plain signed decimal."""
    role = FIXED_ROLES.get(local)
    if role is None or config is None:
        return ("dec" if var.bitwidth <= 1 else "signed"), 0, ""
    fmt = getattr(config.numerics, role)
    tag = f"{role} {_fmt_tag(fmt)}"
    if var.bitwidth != fmt.width:
        return "signed", 0, f"{tag}? width {var.bitwidth}"
    datafmt = "signed" if fmt.signed else "dec"
    shift = fmt.frac if 0 < fmt.frac < 63 else 0
    return datafmt, shift, tag


def _write_filter(path: Path, entries: list[tuple[int, str]], size: int) -> None:
    from vcd.gtkw import make_translation_filter

    path.write_text(make_translation_filter(sorted(set(entries)), datafmt="hex", size=size) + "\n")


def write_gtkw(dump: str | os.PathLike | Hierarchy, config=None,
               out_dir: str | os.PathLike | None = None, *, save_name: str = "waves.gtkw") -> dict[str, Any]:
    """Write the GTKWave save file (and its filter files) for ``dump`` (a path or its
    :class:`Hierarchy`) into ``out_dir`` (default: the dump's directory). Only traces found in
    the dump are named; every path in the file is relative to ``out_dir``. Returns
    ``{"gtkw", "filters", "traces", "groups"}``."""
    from vcd.gtkw import GTKWColor, GTKWFlag, GTKWSave

    from fusemax.hw.sequencer import ACTIVITY
    from fusemax.sw.schedule import mnemonic

    h = dump if isinstance(dump, Hierarchy) else Hierarchy(dump)
    dump = h.path
    out = Path(out_dir) if out_dir is not None else dump.parent
    out.mkdir(parents=True, exist_ok=True)
    lay = _Layout()
    filters: dict[str, str] = {}
    groups: list[str] = []

    # --- control ---
    top = h.first("clk", "start", "done", "busy")
    ctrl = []
    if top is not None:
        for n in ("clk", "rst", "start", "busy", "done", "error"):
            if n in top.vars:
                v = top.vars[n]
                ctrl.append(_Trace(v.full_name, None, "hex" if v.bitwidth > 1 else "bin"))
        from fusemax.sim.wrapper import WAVES_CYCLE

        if WAVES_CYCLE in top.vars:
            ctrl.append(_Trace(top.vars[WAVES_CYCLE].full_name, "cycle (from start)", "signed"))
    if ctrl:
        groups.append("control")
        lay.begin("control")
        for t in ctrl:
            lay.trace(t)
        lay.end("control")

    # --- sequencer ---
    seq = h.first("cur_insn")
    if seq is not None:
        groups.append("sequencer")
        lay.begin("sequencer")
        ci = seq.vars["cur_insn"]
        words = set(signal_changes(h, {"w": ci})["w"][1])
        fpath = out / "insn.filter"
        _write_filter(fpath, [(w, mnemonic(w) if w else "(none)") for w in words], ci.bitwidth)
        filters["insn"] = fpath.name
        lay.trace(_Trace(ci.full_name, "cur_insn (mnemonic)", "hex", filter=fpath.name))
        lay.trace(_Trace(ci.full_name, "cur_insn", "hex"))
        state = _fsm_var(seq)
        if state is not None:
            codes = _fsm_codes(config)
            if codes:
                fpath = out / "fsm.filter"
                _write_filter(fpath, [(c, n) for n, c in codes.items() if c < (1 << state.bitwidth)],
                              state.bitwidth)
                filters["fsm"] = fpath.name
                lay.trace(_Trace(state.full_name, f"{state.name} (state)", "hex", filter=fpath.name))
            else:
                lay.trace(_Trace(state.full_name, None, "hex"))
        for n in ("stall", "insn_fire", "tile_fire", "E", "F", "M", "P", "causal", "window"):
            if n in seq.vars:
                v = seq.vars[n]
                lay.trace(_Trace(v.full_name, None, "bin" if v.bitwidth == 1 else "dec"))
        lay.end("sequencer")

    # --- per-Einsum activity ---
    act = h.activity_scope()
    if act is not None:
        groups.append("activity")
        lay.begin("activity (per Einsum)")
        for n, arr in ACTIVITY.items():
            color = GTKWColor.green if arr == "2d" else GTKWColor.orange
            lay.trace(_Trace(act.vars[n].full_name, f"{n[4:].upper()} ({arr.upper()})", "bin",
                             color=color))
        for s in h.with_vars("busy_2d", "busy_1d")[:1]:
            lay.trace(_Trace(s.vars["busy_2d"].full_name, "2D busy", "bin", color=GTKWColor.green))
            lay.trace(_Trace(s.vars["busy_1d"].full_name, "1D busy", "bin", color=GTKWColor.orange))
        lay.end("activity (per Einsum)")

    # --- memory port ---
    mem = h.first("mem_req_valid")
    if mem is not None:
        order = ["mem_req_valid", "mem_req_ready", "mem_req_we", "mem_req_addr", "mem_req_wdata",
                 "mem_rsp_valid", "mem_rsp_data"]
        mvars = sorted((n for n in mem.vars if n.startswith(("mem_req_", "mem_rsp_"))),
                       key=lambda n: (order.index(n) if n in order else len(order), n))
        groups.append("memory port")
        lay.begin("memory port")
        for n in mvars:
            v = mem.vars[n]
            lay.trace(_Trace(v.full_name, None, "bin" if v.bitwidth == 1 else "hex"))
        lay.end("memory port")

    # --- 1D lanes ---
    lanes = h.with_vars("rm", "rd")
    if lanes:
        groups.append("1D lanes")
        lay.begin("1D lanes")
        for i, s in enumerate(sorted(lanes, key=lambda s: _natural_key(s.full))):
            label = f"lane {_index(s.name, i)}"
            lay.begin(label, closed=True)
            for n in ("rm", "rm_valid", "rd", "prm", "lm"):
                if n in s.vars:
                    lay.trace(_pe_trace(config, s, n, label))
            lay.end(label, closed=True)
        lay.end("1D lanes")

    # --- 2D rows ---
    pes = h.with_vars("score", "sln", "valid")
    if pes:
        rows: dict[Any, list[tuple[Scope, re.Match | None]]] = {}
        for s in sorted(pes, key=lambda s: _natural_key(s.full)):
            rc = re.search(r"r(\d+)\D+c(\d+)", s.name)
            rows.setdefault(int(rc.group(1)) if rc else 0, []).append((s, rc))
        groups.append("2D rows")
        lay.begin("2D rows")
        for r, members in sorted(rows.items()):
            label = f"row {r}"
            lay.begin(label, closed=True)
            for s, rc in members:
                pe = f"PE({rc.group(1)},{rc.group(2)})" if rc else s.name
                for n in ("score", "valid", "sln"):
                    if n in s.vars:
                        lay.trace(_pe_trace(config, s, n, pe))
            lay.end(label, closed=True)
        lay.end("2D rows")

    # --- write ---
    gtkw_path = out / save_name
    with open(gtkw_path, "w") as f:
        g = GTKWSave(f)
        g.comment(f"generated by fusemax.sim.waves from {dump.name} (its real hierarchy); "
                  "open from this directory: gtkwave " + f"{dump.name} {save_name}")
        g.comment("fixed point: traces with a format in their alias (sW:F / uW:F: W bits, F fraction "
                  "bits) use GTKWave's Fixed Point Shift by F; viewers without it show the integer "
                  "code (divide by 2**F)")
        g.dumpfile(os.path.relpath(dump, out), abspath=False)
        g.sst_expanded(True)
        g.signals_width(320)
        shift = 0  # GTKWave applies [fpshift_count] to every trace read after it
        for it in lay.items:
            if it[0] == "begin":
                g.begin_group(it[1], closed=it[2])
            elif it[0] == "end":
                g.end_group(it[1], closed=it[2])
            else:
                t: _Trace = it[1]
                if t.shift != shift:
                    g._p(f"[fpshift_count] {t.shift}")
                    shift = t.shift
                g.trace(trace_ref(t.name, h.vars[t.name].bitwidth), alias=t.alias, datafmt=t.datafmt,
                        color=t.color,
                        extraflags=GTKWFlag.fpdecshift if t.shift else GTKWFlag(0),
                        translate_filter_file=t.filter)
    return {"gtkw": str(gtkw_path), "filters": filters,
            "traces": [t.name for t in lay.traces()], "groups": groups}


def _index(name: str, default: int) -> int:
    m = re.search(r"(\d+)$", name)
    return int(m.group(1)) if m else default


def _pe_trace(config, scope: Scope, local: str, owner: str) -> _Trace:
    v = scope.vars[local]
    if v.bitwidth == 1:
        return _Trace(v.full_name, f"{owner} {local}", "bin")
    datafmt, shift, tag = _fixed(config, v, local)
    alias = f"{owner} {local.upper() if local in ('rm', 'rd', 'lm', 'prm', 'sln') else local}"
    return _Trace(v.full_name, f"{alias} [{tag}]" if tag else alias, datafmt, shift)


def _fsm_var(seq: Scope):
    """The sequencer's FSM state variable: ``<fsm>_state`` (Amaranth's naming), ``seq_state`` first."""
    if "seq_state" in seq.vars:
        return seq.vars["seq_state"]
    cands = sorted(n for n in seq.vars if n.endswith("_state") and not n.startswith("$"))
    return seq.vars[cands[0]] if cands else None


def _fsm_codes(config) -> dict[str, int]:
    if config is None:
        return {}
    try:
        from fusemax.hw.sequencer import fsm_states

        return {str(k): int(v) for k, v in fsm_states(config).items()}
    except Exception:  # noqa: BLE001 (no filter rather than no layout)
        return {}


def trace_ref(name: str, width: int) -> str:
    """How a GTKWave save file names a signal: a vector with its bit range (``a.b[19:0]``;
    GTKWave silently drops a vector named without it), a single bit by its name."""
    return f"{name}[{width - 1}:0]" if width > 1 else name


def split_trace_ref(ref: str) -> tuple[str, int | None]:
    """``(name, width)`` of a :func:`trace_ref` (width None without a bit range)."""
    m = re.fullmatch(r"(.*)\[(\d+):(\d+)\]", ref)
    if not m:
        return ref, None
    return m.group(1), int(m.group(2)) - int(m.group(3)) + 1


def gtkw_traces(path: str | os.PathLike) -> list[str]:
    """The signal references of a GTKWave save file's traces, as written (aliases stripped;
    vectors with their bit range, see :func:`split_trace_ref`)."""
    names = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "@[-^*#>!":
            continue
        if line.startswith("+{"):
            line = line[line.index("}") + 1:].strip()
        line = re.sub(r"^\(\d+\)", "", line)
        names.append(line)
    return names


# ---------------------------------------------------------------------------------------------
# after a run


def open_command(out_dir: str | os.PathLike, dump_name_: str, save: str = "waves.gtkw") -> str:
    return f"cd {shlex.quote(str(Path(out_dir).resolve()))} && gtkwave {dump_name_} {save}"


class WavesInfo(dict):
    """The ``waves_info`` dict of a run; ``hierarchy`` is the :class:`Hierarchy` of the dump that
    :func:`finish` read (not part of the dict, so not in any JSON), for reuse, e.g. by
    :func:`fusemax.sim.timeline.read_activity`."""

    hierarchy: Hierarchy | None = None


def finish(opts: WaveOptions, dump: Path, config=None) -> WavesInfo:
    """After a run: the save file and filters next to ``dump``, ``waves.json``, and (when
    ``opts.record``) ``build/waves/last``. Returns the ``waves_info`` of a run's results (its
    ``hierarchy`` attribute holds the dump's :class:`Hierarchy`)."""
    dump = Path(dump)
    if not dump.is_file() or dump.stat().st_size == 0:
        raise FuseMaxError(f"the simulation wrote no waveform dump at {dump}")
    info = WavesInfo({"dir": str(opts.dir.resolve()), "dump": str(dump.resolve()),
                      "format": dump.suffix.lstrip("."), "format_note": format_note(),
                      "bytes": dump.stat().st_size,
                      "options": opts.as_dict()})
    info.hierarchy = Hierarchy(dump)
    layout = write_gtkw(info.hierarchy, config, opts.dir)
    info.update({k: v for k, v in layout.items() if k != "traces"})
    info["n_traces"] = len(layout["traces"])
    info["open"] = open_command(opts.dir, dump.name)
    info["viewer"] = shutil.which("gtkwave") or shutil.which("surfer")
    meta = dict(info, config=getattr(config, "name", None))
    (opts.dir / "waves.json").write_text(json.dumps(meta, indent=2) + "\n")
    if opts.record:
        d = last_record_dir()
        d.mkdir(parents=True, exist_ok=True)
        (d / "last").write_text(str(opts.dir.resolve()) + "\n")
        (d / "last.json").write_text(json.dumps(meta, indent=2) + "\n")
    return info


def last_record_dir() -> Path:
    """Where the last waves run is recorded: ``build/waves/`` (``last``, ``last.json``)."""
    from fusemax.sim.runner import build_root

    return build_root() / "waves"


def last_run() -> dict[str, Any] | None:
    """``build/waves/last.json`` of the last waves run, or None."""
    p = last_record_dir() / "last.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None
