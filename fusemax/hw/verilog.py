"""Verilog generation for a configuration, and the JSON description that goes with it.

:func:`generate_verilog` converts :class:`~fusemax.hw.top.FuseMaxTop` to Verilog (module
``fusemax_top``, ``emit_src=False``: no source paths, so the text depends on the config only).
:func:`describe` is the machine-readable companion (``fusemax_top.json``): ports with widths
and directions, parameters, buffer sizes, the memory image layout, the counters and the error
bits.
"""

from __future__ import annotations

import functools
import os
import re

from fusemax.config import FuseMaxConfig
from fusemax.sw.schedule import VERSION, config_tag

TOP_NAME = "fusemax_top"


def generate_verilog(config: FuseMaxConfig, dedupe: bool = True) -> str:
    """Verilog text of ``fusemax_top`` for ``config`` (deterministic, no absolute paths).

    Amaranth writes one module per instance (256 copies of the PE for a 16 x 16 array);
    with ``dedupe`` (the default) identical modules are written once, under the name of their
    first instance (:func:`dedupe_modules`), which shrinks the text and lets Verilator compile
    one copy of each PE's code. Instance names, hence the waveform hierarchy, are unchanged.
    """
    from amaranth.back import verilog

    from fusemax.hw.top import FuseMaxTop

    text = verilog.convert(FuseMaxTop(config), name=TOP_NAME, emit_src=False)
    return dedupe_modules(text) if dedupe else text


_NAME = r"(\\\S+|[A-Za-z_][A-Za-z0-9_$]*)"
_MOD_LINE = re.compile(r"^module " + _NAME + r"[ (]")
_INST_LINE = re.compile(r"^  " + _NAME + r"( +\S+ \()$")
_DUMP_REG = re.compile(r"dump_module\$\d+")


def _generator_digest() -> str:
    """Hash of everything the generated Verilog depends on besides the config: the hardware
    generator's sources, the schedule format, the numerics twins and the Amaranth version."""
    import hashlib
    from pathlib import Path

    import amaranth

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(amaranth.__version__.encode())
    files = sorted((root / "hw").rglob("*.py")) + [root / "sw" / "schedule.py",
                                                   root / "config.py", root / "sw" / "numerics.py"]
    for f in files:
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=16)
def _cached(config_json: str) -> str:
    import hashlib

    from fusemax.sim.runner import build_root

    config = FuseMaxConfig.from_json(config_json)
    key = hashlib.sha256((config_json + _generator_digest()).encode()).hexdigest()[:16]
    cache = build_root() / "verilog" / f"{config.name}-{key}.v"
    if cache.is_file():
        return cache.read_text()
    text = generate_verilog(config)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, cache)
    return text


def cached_verilog(config: FuseMaxConfig) -> str:
    """:func:`generate_verilog`, kept under ``build/verilog/`` per (config, generator sources):
    Amaranth's conversion takes longer than a simulation (about a minute for 16 x 16)."""
    return _cached(config.to_json())


def dedupe_modules(text: str) -> str:
    """Merge modules of Amaranth/Yosys Verilog that differ only in their names.

    Two modules are the same when their texts are equal after replacing the module's own
    name, the instantiated modules' names (by their canonical names, so merging proceeds
    bottom-up to a fixed point), the Yosys-numbered ``dump_module$N`` dummy register, and
    sorting the header's port list (Yosys connects instances by port name). Every duplicate is
    removed and its instances refer to the first module of its kind. Deterministic.
    """
    blocks: list[list] = []  # [module name or None, lines]
    cur = None
    pending: list[str] = []
    for ln in text.split("\n"):
        if cur is None:
            mm = _MOD_LINE.match(ln)
            if mm:
                attrs = []
                while pending and pending[-1].startswith("(*"):
                    attrs.insert(0, pending.pop())
                if pending:
                    blocks.append([None, pending])
                pending = []
                cur = [mm.group(1), attrs + [ln]]
            else:
                pending.append(ln)
        else:
            cur[1].append(ln)
            if ln == "endmodule":
                blocks.append(cur)
                cur = None
    if cur is not None:  # not Verilog as Yosys writes it: leave it alone
        return text
    if pending:
        blocks.append([None, pending])
    names = {b[0] for b in blocks if b[0] is not None}

    def key_of(name: str, lines: list[str], remap: dict[str, str]) -> str:
        out = []
        for ln in lines:
            mi = _INST_LINE.match(ln)
            if mi and mi.group(1) in names:
                ln = "  " + remap.get(mi.group(1), mi.group(1)) + mi.group(2)
            out.append(ln)
        body = "\n".join(out)
        i = body.index("module ")  # the header may span lines; it ends at the first ';'
        j = body.index(";", i)
        ports = body[body.index("(", i) + 1: body.rindex(")", i, j)]
        body = body[:i] + "module (" + ",".join(sorted(p.strip() for p in ports.split(","))) + ")" + body[j:]
        return _DUMP_REG.sub("dump_module$0", body)

    remap: dict[str, str] = {}
    while True:
        seen: dict[str, str] = {}
        new: dict[str, str] = {}
        for name, lines in blocks:
            if name is None or name in remap:
                continue
            k = key_of(name, lines, remap)
            if k in seen:
                new[name] = seen[k]
            else:
                seen[k] = name
        if not new:
            break
        remap.update(new)
    out = []
    for name, lines in blocks:
        if name is not None and name in remap:
            continue
        for ln in lines:
            mi = _INST_LINE.match(ln) if name is not None else None
            if mi and mi.group(1) in remap:
                ln = "  " + remap[mi.group(1)] + mi.group(2)
            out.append(ln)
    return "\n".join(out)


def describe(config: FuseMaxConfig) -> dict:
    """JSON-ready description of the generated design for ``config``."""
    from fusemax.hw.memport import FETCH_DEPTH, kv_slot_lines
    from fusemax.hw.pe1d import rf_depth
    from fusemax.hw.pe2d import operand_widths
    from fusemax.hw.sequencer import ACTIVITY, ERROR_BITS, fsm_states, max_e_effective
    from fusemax.hw.top import COUNTERS, top_ports
    from fusemax.sw.schedule import KV_SLOTS, insns_per_line

    nc = config.numerics
    w = operand_widths(config)
    ports = [{"name": "clk", "direction": "in", "width": 1},
             {"name": "rst", "direction": "in", "width": 1}]
    ports += [{"name": n, "direction": d, "width": wd} for n, (d, wd) in top_ports(config).items()]
    rnv_bits = config.cols * rf_depth(config) * nc.rnv.width
    buffers = {
        "q_buffer": {"lines": config.max_e, "values_per_line": config.cols, "value_bits": w["q"],
                     "bytes": config.max_e * config.cols * w["q"] // 8},
        "kv_buffer": {"slots": KV_SLOTS, "lines_per_slot": kv_slot_lines(config),
                      "values_per_line": config.rows, "value_bits": w["kv"],
                      "bytes": KV_SLOTS * kv_slot_lines(config) * config.rows * w["kv"] // 8},
        "rnv_register_files": {"lanes": config.cols, "entries": rf_depth(config), "bits": nc.rnv.width,
                               "bytes": rnv_bits // 8},
        "instruction_prefetch": {"lines": FETCH_DEPTH, "instructions_per_line": insns_per_line(config.mem_lanes),
                                 "bits": FETCH_DEPTH * insns_per_line(config.mem_lanes) * 64},
    }
    return {
        "module": TOP_NAME,
        "config": config.name,
        "config_digest": config.digest(),
        "config_tag": f"{config_tag(config.digest()):08x}",
        "schedule_version": VERSION,
        "parameters": {
            "rows": config.rows, "cols": config.cols, "max_e": config.max_e,
            "max_e_accepted": max_e_effective(config), "max_f": config.max_f,
            "mem_addr_width": config.mem_addr_width, "mem_lanes": config.mem_lanes,
            "mem_line_bits": config.mem_line_bits, "mem_latency_model": config.mem_latency,
            "numerics": nc.to_dict(),
            "exp_cycles": nc.exp_cycles, "div_cycles": nc.div_cycles,
            "tile_cycles": "E + F (steady state of the FuseMax binding: BQK of one tile, then SLNV of "
                           "the previous one on the same MACs, exps and 1D work hidden behind them)",
            "av_cycles": "F + max(F, div_cycles + 1) + 1: F divide issues, then the stores follow the "
                         "write-backs; plus store back-pressure",
        },
        "ports": ports,
        "clock": {"clk": "rising edge", "rst": "synchronous, active high"},
        "buffers": buffers,
        "on_chip_bytes": sum(b.get("bytes", 0) for b in buffers.values()),
        "memory": {
            "word_bits": 16, "line_words": config.mem_lanes,
            "addressing": "line addresses; lane i of a line in bits [16i+15:16i]",
            "schedule": f"{insns_per_line(config.mem_lanes)} 64-bit instruction(s) per line, "
                        "instruction i in bits [64i+63:64i], from sched_base",
            "regions_per_bh": [
                {"region": "Q block i", "lines": "E", "line": "e: Q'[i*cols + c, e] in lane c"},
                {"region": "K/V chunk j", "lines": "E + F",
                 "line": "e < E: K[j*rows + r, e] in lane r; E + f: V[j*rows + r, f] in lane r"},
                {"region": "output block i", "lines": "F", "line": "f: out[i*cols + c, f] in lane c"},
            ],
        },
        "csr": {"addr_width": 5, "data_width": 64,
                "counters": {name: i for i, name in enumerate(COUNTERS)}},
        "error_bits": dict(ERROR_BITS),
        "debug": {
            "instance_names": {
                "sequencer": "seq", "memory_port": "memport", "array_2d": "array2d",
                "array_1d": "array1d", "pe_2d": "array2d.pe_r{r}_c{c}", "pe_1d": "array1d.lane_c{c}",
                "lm_tree_node": "array2d.lm_c{c}_l{level}_{i}", "q_buffer": "qbuf", "kv_buffer": "kvbuf",
            },
            "current_instruction": "seq.cur_insn",
            "fsm_state": "seq.seq_state",
            "fsm_states": fsm_states(config),
            "paths": "relative to fusemax_top; the activity wires are fusemax_top's own",
            "activity": {name: name for name in ACTIVITY},
            "activity_array": dict(ACTIVITY),
        },
    }
