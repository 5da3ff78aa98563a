"""Attention on the generated RTL: compile, build (once per config), run under Verilator +
cocotb, compare with the golden model bit for bit and with float64, and report.

:func:`simulate` is the one call::

    report = simulate(preset("small"), q, k, v, causal=True)
    report["bit_exact"], report["cycles"], report["utilization"]["2d"]

The design is ``fusemax_top`` (``fusemax.hw.verilog.generate_verilog``) inside the generated
simulation wrapper (:mod:`fusemax.sim.wrapper`); the memory image travels as a ``$readmemh``
file and the outputs come back as a ``$writememh`` dump, so Python does no per-cycle work.

Outputs besides O (the entropy H of ``attention-entropy``: line F of each output block) are
decoded from the same dump and checked the same way: ``report["entropy"]`` holds their
bit-exact verdict and error, and the report's ``bit_exact`` needs them too.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from fusemax.config import FuseMaxConfig
from fusemax.errors import FuseMaxError
from fusemax.sw.compiler import Program, buffer_bytes, compile_attention, read_hex
from fusemax.sw.executor import ERROR_BITS, decode_errors

__all__ = ["CSR_NAMES", "EINSUM_COUNTERS", "design_verilog", "build_design", "run_program",
           "simulate", "expected_flags", "report_json", "BENCH", "MODES"]

BENCH = "tests.cocotb_benches.tb_attention"
#: Run modes: the cocotb bench, or the C++ harness of fusemax.sim.native.
MODES = ("cocotb", "native")

#: Counter names by CSR address (docs/architecture.md section 6).
CSR_NAMES = ("cycles", "busy_2d", "busy_1d", "stall", "instructions", "tiles", "BQK", "LM", "SLN",
             "SLD", "SLNV", "RM", "PRM", "RD", "RNV", "AV", "mem_lines_read", "mem_lines_written",
             "config_tag", "flow_busy", "entropy")
#: Einsum counters: name -> array.
EINSUM_COUNTERS = {"BQK": "2d", "LM": "2d", "SLN": "2d", "SLD": "2d", "SLNV": "2d",
                   "RM": "1d", "PRM": "1d", "RD": "1d", "RNV": "1d", "AV": "1d"}

Progress = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# the design


def design_verilog(config: FuseMaxConfig, *, waves: bool = False) -> str:
    """``fusemax_top`` of ``config`` and the simulation wrapper, as one Verilog text
    (``waves``: with the wrapper's waveform control, :mod:`fusemax.sim.waves`)."""
    try:
        from fusemax.hw.verilog import cached_verilog
    except ModuleNotFoundError as exc:
        raise FuseMaxError(f"the hardware generator is not available ({exc})") from None
    from fusemax.sim.wrapper import wrapper_verilog

    return cached_verilog(config) + "\n" + wrapper_verilog(config, waves=waves)


def build_design(config: FuseMaxConfig, *, waves: bool = False):
    """Build (or reuse) the Verilator model of ``config``; returns the runner's ``Build``."""
    from fusemax.sim.runner import build_verilator
    from fusemax.sim.wrapper import SIM_TOP

    return build_verilator(design_verilog(config), name=SIM_TOP, waves=waves)


# ---------------------------------------------------------------------------------------------
# one run


def run_program(config: FuseMaxConfig, program: Program, *, waves: str | Path | None = None,
                seed: int | None = None, mem_ready_pct: int = 100, timeout_s: float | None = None,
                timeout_cycles: int | None = None, progress: Progress | None = None,
                keep_dir: bool = False, mode: str = "cocotb") -> dict:
    """Run ``program`` (possibly compiled for another config) on the RTL of ``config``.

    ``mode``: ``"cocotb"`` (Verilator + the cocotb bench; waves possible) or ``"native"`` (the
    C++ harness of :mod:`fusemax.sim.native`, no Python in the loop; no waves). Both return the
    same keys: ``timeout``, ``error`` (flags), ``csr`` (all counters), ``counters`` (by name),
    ``output_codes`` (B,H,P,F, None on timeout), ``output_dump`` (the lines of
    ``program.output_range`` as (lines, mem_lanes) uint16, None on timeout; the entropy H
    lines included) and ``output_base`` (its first line), ``mode``, ``cycles``,
    ``sim_wall_s`` and ``sim_cycles_per_s``, wall times, build info.
    """
    from fusemax.sim.runner import _env_bool, build_root, run_cocotb
    from fusemax.sim.wrapper import SIM_TOP

    if mode not in MODES:
        raise FuseMaxError(f"simulation mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "native" and waves:
        raise FuseMaxError("waves need the cocotb mode (the native harness does not trace)")
    say = progress or (lambda msg: None)
    if not 1 <= int(mem_ready_pct) <= 100:
        raise FuseMaxError(f"memory ready percentage must be in 1..100, got {mem_ready_pct}")
    if program.layout.mem_lanes != config.mem_lanes:
        raise FuseMaxError(f"program has {program.layout.mem_lanes}-lane memory lines, config "
                           f"{config.name} {config.mem_lanes}")
    if program.layout.n_lines > (1 << config.mem_addr_width):
        raise FuseMaxError(f"program image ({program.layout.n_lines} lines) exceeds the memory of "
                           f"config {config.name}")
    from fusemax.sim import waves as wv
    wopts = wv.WaveOptions.of(waves)  # a directory or WaveOptions (window, scopes, depth)
    wave_args = wv.build_args() if wopts else []
    if wopts and not _env_bool("WAVES", True):
        raise FuseMaxError("WAVES=0 in the environment turns tracing off; unset it to record waves")
    t0 = time.monotonic()
    say(f"generating Verilog for {config.name}")
    verilog = design_verilog(config, waves=wopts is not None)
    t_gen = time.monotonic() - t0
    say(f"building the Verilator model of {config.name} (cached per configuration)")
    if mode == "native":
        from fusemax.sim.native import build_native
        build = build_native(verilog, top=SIM_TOP)
    else:
        from fusemax.sim.runner import build_verilator
        build = build_verilator(verilog, name=SIM_TOP, waves=bool(wopts), build_args=wave_args)

    jobs = build_root() / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    jdir = Path(tempfile.mkdtemp(prefix=f"{config.name}-", dir=jobs))
    try:
        say(f"writing the memory image ({program.layout.n_lines} lines)")
        image = program.write_hex(jdir / "image.hex")
        lo, hi = program.output_range
        dump = jdir / "dump.hex"
        results = jdir / "results.json"
        if timeout_cycles is None:
            timeout_cycles = program.schedule.cycle_bound()
        job = {"sched_base": program.sched_base, "timeout_cycles": int(timeout_cycles),
               "results": str(results), "csr_count": len(CSR_NAMES), "period_ns": 10}
        (jdir / "job.json").write_text(json.dumps(job, indent=2))
        plusargs = [f"+fusemax_image={image}", f"+fusemax_dump={dump}", f"+fusemax_dump_lo={lo}",
                    f"+fusemax_dump_hi={hi}", f"+fusemax_ready_pct={int(mem_ready_pct)}"]
        wave_dump = None
        if wopts:
            wopts.dir.mkdir(parents=True, exist_ok=True)
            wave_dump = wopts.dir / wv.dump_name()
            wave_dump.unlink(missing_ok=True)
            plusargs += wv.plusargs(wopts, wave_dump, verilog)
            say(f"waves into {wopts.dir}: {wv.format_note()}")
        say(f"simulating {len(program.instructions)} instructions, {program.schedule.tiles} tiles")
        t1 = time.monotonic()
        failure = None
        run = None
        if mode == "native":
            from fusemax.sim.native import run_native
            failure = run_native(build, results=results, timeout_cycles=job["timeout_cycles"],
                                 sched_base=job["sched_base"], csr_count=job["csr_count"],
                                 plusargs=plusargs, cwd=jdir, timeout_s=timeout_s)
        else:
            try:
                run = run_cocotb(None, name=SIM_TOP, test_module=BENCH, verilog=verilog,
                                 test_dir_name=f"attention-{config.name}",
                                 extra_env={"FUSEMAX_JOB": str(jdir / "job.json")},
                                 plusargs=plusargs, waves=bool(wopts), seed=seed,
                                 timeout_s=timeout_s, build_args=wave_args,
                                 sim_trace=wopts is None)
            except AssertionError as exc:  # the bench failed (a hang) or died
                failure = str(exc)
        run_s = time.monotonic() - t1
        if not results.is_file():
            raise FuseMaxError(f"the simulation produced no results: {failure}")
        res = json.loads(results.read_text())
        if failure and not res.get("timeout"):
            raise FuseMaxError(f"the simulation failed: {failure}")
        out_codes = out_dump = None
        if not res["timeout"] and dump.is_file():
            lines = read_hex(dump, config.mem_lanes)
            if lines.shape[0] == hi - lo:
                out_codes = program.decode_output(lines, base=lo)
                out_dump = lines
        wave_file = wave_info = None
        if wopts and wave_dump.is_file():
            say("writing the GTKWave layout from the dump's hierarchy")
            wave_file, wave_info = wave_dump, wv.finish(wopts, wave_dump, config)
        csr = res["csr"]
        sim_wall_s = float(res["sim_wall_s"])
        return {
            "mode": mode,
            "timeout": bool(res["timeout"]),
            "timeout_cycles": int(timeout_cycles),
            "failure": failure,
            "error": int(res["error"]),
            "done": int(res["done"]),
            "busy": int(res["busy"]),
            "csr": csr,
            "counters": dict(zip(CSR_NAMES, csr)),
            "output_codes": out_codes,
            "output_dump": out_dump,
            "output_base": lo,
            "cycles": int(csr[0]),
            "sim_wall_s": sim_wall_s,
            "sim_cycles_per_s": int(csr[0]) / sim_wall_s if sim_wall_s > 0 else None,
            "run_s": run_s,
            "verilog_s": t_gen,
            "build_s": build.build_s,
            "built": build.built,
            "build_dir": str(build.build_dir),
            "test_dir": str(run.test_dir) if run is not None else None,
            "waves": str(wave_file) if wave_file else None,
            "waves_info": wave_info,
        }
    finally:
        if not keep_dir and not os.environ.get("FUSEMAX_KEEP_JOBS"):
            shutil.rmtree(jdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the full flow


def design_buffers(config: FuseMaxConfig) -> dict[str, int]:
    """On-chip storage in bytes as the generated design has it (``fusemax.hw.verilog.describe``),
    plus the RM (+ valid) and RD registers of the 1D PEs and the optional units' storage; the
    compiler's config-only model
    (:func:`fusemax.sw.compiler.buffer_bytes`) without the hardware generator."""
    try:
        from fusemax.hw.verilog import describe
    except ImportError:
        return buffer_bytes(config)
    bufs = describe(config)["buffers"]
    model = buffer_bytes(config)
    out = {"q_buffer": int(bufs["q_buffer"]["bytes"]), "kv_buffer": int(bufs["kv_buffer"]["bytes"]),
           "rnv_regfile": int(bufs["rnv_register_files"]["bytes"])}
    # the rest (RM/RD state, the flow engine's memories, the entropy finisher's capture) as
    # the model counts them
    out.update({k: v for k, v in model.items() if k not in out and k != "total"})
    out["total"] = sum(out.values())
    return out


def _fetch_depth() -> int:
    """Instruction words the hardware may prefetch past END (read but never executed)."""
    try:
        from fusemax.hw.memport import FETCH_DEPTH
        return int(FETCH_DEPTH)
    except (ImportError, AttributeError):
        return 8


def expected_flags(gold) -> list[str]:
    """Error flags the hardware must raise for a golden result (saturation, divide by zero)."""
    s = gold.saturation
    want = []
    # (phi and flow: causal Flow-Attention's sigmoids and FLOW_FORMAT values, which the flow
    # engine reports as score and RNV saturation; rt and entropy: attention-entropy's RT
    # accumulator (an RNV entry) and its H output)
    for role, name in (("score", "score_saturated"), ("phi", "score_saturated"),
                       ("rd", "rd_saturated"), ("rnv", "rnv_saturated"), ("flow", "rnv_saturated"),
                       ("rt", "rnv_saturated"), ("out", "out_saturated"),
                       ("entropy", "out_saturated")):
        if s.get(role) and name not in want:
            want.append(name)
    if gold.div_by_zero:
        want.append("div_by_zero")
    order = list(ERROR_BITS.values())
    return sorted(want, key=order.index)


def simulate(config: FuseMaxConfig, q, k, v, scale: float | None = None, causal: bool = False,
             waves: str | Path | None = None, seed: int | None = None, *,
             mem_ready_pct: int = 100, progress: Progress | None = None,
             cascade: str = "attention-1pass", timeout_s: float | None = None,
             max_mismatches: int = 8, mode: str = "cocotb", binding: str = "fusemax",
             k_bias=None, v_bias=None, window: int | None = None, clusters: int | None = None,
             cluster_size: int | None = None, means=None, kmeans_seed: int = 0,
             clamp: float | None = None) -> dict:
    """Run attention of ``q`` (B,H,P,E), ``k`` (B,H,M,E), ``v`` (B,H,M,F) on the RTL of
    ``config`` and compare. Returns the report dict (see module docstring); the arrays are under
    ``output`` (floats) and ``output_codes`` (integers). ``mode``: see :func:`run_program`
    (the report's ``mode`` and ``sim_cycles_per_s`` say which ran and how fast).

    ``cascade`` may also name an attention variant the RTL runs with the host's help
    (:data:`fusemax.sw.rtl_variants.RTL_VARIANTS`: softmax-1, key / key+value bias, local,
    routing, sigmoid with or without the norm, causal Flow-Attention), with its options
    ``k_bias``, ``v_bias``, ``window``, ``clusters``, ``cluster_size``, ``means``,
    ``kmeans_seed``, ``clamp`` (:func:`fusemax.sw.rtl_variants.prepare`), or
    attention-entropy (a design with ``entropy_unit``). Then
    the RTL's codes are compared with the variant's bit-exact golden, ``output`` is the
    mechanism's output (scattered back for routing; ``output_codes`` stay in the RTL's layout),
    ``error`` is measured against the variant's float64 reference, and ``variant`` says what the
    host did and how many tiles ran. A variant's outputs besides O
    (:attr:`~fusemax.sw.rtl_variants.VariantRun.extra_outputs`; attention-entropy: ``entropy``,
    the H of every query) get a report entry of their own (``bit_exact``, ``mismatches``,
    ``first_mismatches``, ``error`` and ``golden_error`` against their float64 reference), their
    arrays in ``extra_arrays`` (``H``, ``H_codes``), and ``bit_exact`` needs them to match."""
    from fusemax.sw.golden import causal_mask, error_stats, golden_for, reference_attention
    from fusemax.sw.rtl_variants import RTL_VARIANTS, prepare

    say = progress or (lambda msg: None)
    t0 = time.monotonic()
    q = np.asarray(q, np.float64)
    k = np.asarray(k, np.float64)
    v = np.asarray(v, np.float64)
    options = {"k_bias": k_bias, "v_bias": v_bias, "window": window, "clusters": clusters,
               "cluster_size": cluster_size, "means": means, "clamp": clamp}
    variant = None
    if cascade in RTL_VARIANTS:
        say(f"host: preparing {cascade} ({RTL_VARIANTS[cascade]})")
        variant = prepare(cascade, q, k, v, causal=causal, rows=config.rows, cols=config.cols,
                          seed=kmeans_seed, **options)
        say("compiling the schedule and the memory image")
        program = compile_attention(config, variant.q, variant.k, variant.v, scale=scale,
                                    causal=variant.causal, cascade=variant.compile_cascade,
                                    binding=binding, pattern=variant.pattern,
                                    **variant.compile_options)
        causal = program.causal
    else:
        given = [name for name, value in options.items() if value is not None]
        if given:
            raise FuseMaxError(f"{', '.join(given)}: options of the attention variants "
                               f"({', '.join(RTL_VARIANTS)}), not of {cascade}")
        say("compiling the schedule and the memory image")
        program = compile_attention(config, q, k, v, scale=scale, causal=causal, cascade=cascade,
                                    binding=binding)
    s = program.shape
    flow = program.schedule.is_flow  # the flow engine: no tiles, no mask
    entropy = program.schedule.entropy  # MODE entropy=1: the finisher, F + 1 lines per block
    mask = causal_mask(s.P, s.M) if causal and not flow else None
    say("golden model")
    if variant is None:
        gold = golden_for(program.schedule.cascade)(q, k, v, config, scale=program.scale, mask=mask)
        gold_codes = gold.out_codes
    else:
        gold = variant.golden(config, program.scale)
        gold_codes = variant.golden_codes(gold)
    raw = run_program(config, program, waves=waves, seed=seed, mem_ready_pct=mem_ready_pct,
                      timeout_s=timeout_s, progress=progress, mode=mode)
    say("comparing")
    c = raw["counters"]
    cycles = int(c["cycles"])
    out_codes = raw["output_codes"]
    nc = config.numerics
    report: dict = {
        "cascade": program.schedule.cascade if variant is None else cascade,
        "config": config.name,
        "config_digest": config.digest(),
        "array": {"rows": config.rows, "cols": config.cols},
        "shape": s.as_dict(),
        "causal": bool(causal),
        "scale": program.scale,
        "tiling": {"M0": config.rows, "M1": program.layout.M1, "P0": config.cols, "P1": 1,
                   "P2": program.layout.P2, "tiles": program.schedule.tiles,
                   "tiles_skipped": program.schedule.tiles_skipped,
                   "flow_tokens": program.schedule.flow_tokens},
        "timeout": raw["timeout"],
        "cycles": cycles,
        "busy": {"2d": int(c["busy_2d"]), "1d": int(c["busy_1d"]),
                 **({"flow": int(c.get("flow_busy", 0))} if flow else {}),
                 **({"entropy": int(c.get("entropy", 0))} if entropy else {})},
        "utilization": {"2d": c["busy_2d"] / cycles if cycles else 0.0,
                        "1d": c["busy_1d"] / cycles if cycles else 0.0,
                        **({"flow": c.get("flow_busy", 0) / cycles if cycles else 0.0}
                           if flow else {}),
                        **({"entropy": c.get("entropy", 0) / cycles if cycles else 0.0}
                           if entropy else {})},
        "einsum_cycles": {name: int(c[name]) for name in EINSUM_COUNTERS},
        "stall_cycles": int(c["stall"]),
        # (MODE entropy: a tile's SLNV step takes F + 1 MAC cycles, the last one for RT)
        "mac_efficiency": (program.schedule.tiles * (s.E + s.F + int(entropy)) / cycles)
                          if cycles else 0.0,
        "binding": program.schedule.binding,
        "score_function": program.schedule.score_function,
        "model": (model_comparison(config, s, causal, program.schedule.binding, cycles,
                                   program.schedule.cascade)
                  if program.schedule.pattern is None and not flow else None),
        "counters": {name: int(val) for name, val in c.items()},
        "buffer_bytes": design_buffers(config),
        "error_bits": raw["error"],
        "error_flags": decode_errors(raw["error"]),
        "expected_error_flags": expected_flags(gold),
    }
    # checks of the counters the schedule determines
    L = program.layout
    data_read = s.B * s.H * L.P2 * s.E + program.schedule.tiles * (s.E + s.F)
    if flow:  # every K/V chunk once
        data_read = s.B * s.H * (L.P2 * s.E + L.M1 * (s.E + s.F))
    report["expected_counters"] = {
        "instructions": len(program.instructions), "tiles": program.schedule.tiles,
        "mem_lines_written": s.B * s.H * L.P2 * L.out_lines,  # F + 1 with the entropy H
        # data lines + one fetch per schedule line, plus up to the prefetch depth past END
        "mem_lines_read": [data_read + L.sched_lines, data_read + L.sched_lines + _fetch_depth()],
        "config_tag": int(config.digest(), 16) & 0xFFFF_FFFF,
    }
    if variant is not None:
        grid = s.B * s.H * L.P2 * L.M1
        report["variant"] = {
            "cascade": cascade, "how": variant.how, "params": variant.params,
            "rtl_shape": s.as_dict(), "golden": gold.name, "window": program.schedule.window,
            "pattern": program.schedule.pattern, "tiles_run": program.schedule.tiles,
            "tiles_total": grid, "tiles_skipped_fraction": 1.0 - program.schedule.tiles / grid,
        }
        if flow:  # tokens on the flow engine, no tiles
            report["variant"].update({"tiles_total": 0, "tiles_skipped_fraction": None,
                                      "flow_tokens": program.schedule.flow_tokens,
                                      "clamp": program.schedule.flow_clamp,
                                      "clamp_code": program.schedule.flow_clamp_code})
        report["variant_arrays"] = variant.arrays
    mismatches = None
    if out_codes is not None:
        bad = out_codes != gold_codes
        mismatches = int(np.count_nonzero(bad))
        first = [{"index": [int(x) for x in idx], "rtl": int(out_codes[tuple(idx)]),
                  "golden": int(gold_codes[tuple(idx)])}
                 for idx in np.argwhere(bad)[:max_mismatches]]
        out = nc.out.to_float(out_codes)
        if variant is None:
            ref = reference_attention(q, k, v, scale=program.scale, mask=mask)
            report["error"] = error_stats(out, ref)
            report["golden_error"] = error_stats(gold.out, ref)
        else:  # the mechanism's output (scattered back for routing) against its float64 reference
            ref = variant.reference(program.scale)
            out = variant.finish(out)
            report["error"] = error_stats(out, ref)
            report["golden_error"] = error_stats(variant.finish(gold.out), ref)
    else:
        first, out = [], None
    extras_ok = True
    extra_arrays: dict[str, np.ndarray] = {}
    dump = raw.get("output_dump")
    for name, x in (variant.extra_outputs.items() if variant is not None else ()):
        want = np.asarray(gold.extra[x.golden_key])
        entry: dict = {"what": x.what, "bit_exact": False, "mismatches": None,
                       "first_mismatches": []}
        if out_codes is not None and dump is not None:
            got = x.decode(program, dump, raw["output_base"])
            bad = got != want
            entry["mismatches"] = int(np.count_nonzero(bad))
            entry["bit_exact"] = entry["mismatches"] == 0
            entry["first_mismatches"] = [
                {"index": [int(i) for i in idx], "rtl": int(got[tuple(idx)]),
                 "golden": int(want[tuple(idx)])} for idx in np.argwhere(bad)[:max_mismatches]]
            ref = x.reference(program.scale)
            entry["error"] = error_stats(x.to_float(got), ref)
            entry["golden_error"] = error_stats(x.to_float(want), ref)
            extra_arrays.update({x.array: x.to_float(got), f"{x.array}_codes": got})
        extras_ok = extras_ok and entry["bit_exact"]
        report[name] = entry
    flags_ok = report["error_flags"] == report["expected_error_flags"]
    if out_codes is None or mismatches or not flags_ok or not extras_ok:
        # which side is wrong? the executor runs the same image on the NumPy twins
        from fusemax.sw.executor import execute

        say("diagnosing with the schedule executor")
        ex = execute(config, program.image, program.sched_base)
        ex_out = program.decode_output(ex.image)
        ex_ok = bool(np.array_equal(ex_out, gold_codes)) and all(
            np.array_equal(x.decode(program, ex.image, 0), gold.extra[x.golden_key])
            for x in (variant.extra_outputs.values() if variant is not None else ()))
        report["executor"] = {
            "bit_exact_with_golden": ex_ok, "error_flags": ex.error_flags, **ex.counts,
            "verdict": ("the RTL deviates from the architecture contract (the executor running the "
                        "same image matches the golden)") if ex_ok else
                       "the compiler or the image layout is wrong (the executor disagrees with the golden)",
        }
    report.update({
        "bit_exact": bool(out_codes is not None and mismatches == 0 and extras_ok),
        "mismatches": mismatches,
        "first_mismatches": first,
        "flags_match": flags_ok,
        "saturation": gold.saturation,
        "div_by_zero": gold.div_by_zero,
        "wall_s": {"total": time.monotonic() - t0, "verilog": raw["verilog_s"],
                   "build": raw["build_s"], "run": raw["run_s"], "sim": raw["sim_wall_s"]},
        "built": raw["built"],
        "mode": raw["mode"],
        "sim_cycles_per_s": raw["sim_cycles_per_s"],
        "waves": raw["waves"],
        "waves_info": raw["waves_info"],
        "build_dir": raw["build_dir"],
        "output": out,
        "output_codes": out_codes,
        # the variant's other outputs as the RTL stored them: values and codes (H, H_codes)
        "extra_arrays": extra_arrays,
    })
    return report


def report_json(report: dict) -> dict:
    """The report without its arrays (for report.json)."""
    def clean(x):
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if not isinstance(v, np.ndarray)}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (np.integer,)):
            return int(x)
        if isinstance(x, (np.floating, float)):
            return float(x) if math.isfinite(float(x)) else None
        return x
    return clean({k: v for k, v in report.items()
                  if k not in ("output", "output_codes", "variant_arrays", "extra_arrays")})


def model_comparison(config: FuseMaxConfig, shape, causal: bool, binding: str, cycles: int,
                     cascade: str = "attention-1pass") -> dict:
    """The analytical models' cycles for this run next to the measured ones: the paper's cost
    model (``predict_rtl``; the paper's FuseMax formula for the fusemax binding) and the model
    of our RTL's own binding (``rtl_binding_model``), with measured / model ratios. For
    attention-3pass (the paper's 3-pass designs, FLAT and unfused, run the softmax on the 1D
    array) and the sigmoid cascades the paper has no formula on this hardware, so only our model
    is given (for sigmoid: the per-tile cost of docs/variants.md section 5). Neither for
    attention-entropy: our model with a tile of E + F + 1 MAC cycles and the entropy finisher
    (:func:`_entropy_model`)."""
    from fusemax.sw.perfmodel import predict_rtl

    pred = predict_rtl(config, shape.as_dict(), causal=causal)
    paper = pred["bindings"][binding]
    key = {"attention-3pass": "three_pass", "sigmoid-norm": "sigmoid",
           "sigmoid-nonorm": "sigmoid", "attention-entropy": "entropy"}.get(cascade, "bindings")
    if key == "entropy":
        rtl = _entropy_model(config, shape, causal, binding, pred["rtl_binding"])
    else:
        rtl = pred["rtl_binding"][key][binding]
    if key != "bindings":
        paper = {"cycles": None, "util_2d": None, "util_2d_steady": None}
    return {
        "paper_model_cycles": paper["cycles"], "paper_model_util_2d": paper["util_2d"],
        "paper_model_util_2d_steady": paper["util_2d_steady"],
        "rtl_model_cycles": rtl["cycles"], "rtl_model_mac_efficiency": rtl["mac_efficiency"],
        "measured_over_rtl_model": cycles / rtl["cycles"] if rtl["cycles"] else None,
        "measured_over_paper_model": cycles / paper["cycles"] if paper["cycles"] else None,
        "cascade": cascade,
        "why": ("the paper's model runs SLN's exp on the 2D MACs (x cycles per tile) and charges "
                "LM, RM and SLD serially; our PEs have their own exp units, so only BQK and SLNV "
                "occupy the MACs (E + F per tile); the RTL model adds what the paper's ignores: "
                "the one memory port, which carries E + F K/V lines per tile plus the "
                "instructions, and per query block the Q block, the output and a load round "
                "trip; the start-up loads; for serial tiles the AV and the drains; for sigmoid "
                "scores a tile takes at least the sigmoid's latency + 1 "
                "(rtl_binding_model docstring)"
                + ("; with the entropy (MODE entropy=1) a tile's SLNV takes F + 1 MAC cycles, "
                   "a block stores F + 1 lines, and the entropy finisher (cols·(div + 3) + 1 "
                   "cycles per block) runs beside the next block's tiles, whose AV waits for it "
                   "(_entropy_model)" if key == "entropy" else "")),
    }


def _entropy_model(config: FuseMaxConfig, shape, causal: bool, binding: str,
                   rtl_binding: dict) -> dict:
    """Our RTL binding's model (``rtl_binding_model``) adapted to ``MODE entropy=1``: a tile's
    SLNV step takes F + 1 MAC cycles (the last for RT), so the fusemax binding's tile costs
    max(E + F + 1, E + F + 2/k, d + 7) (the MACs or the memory port) and a serial tile one
    cycle more; each query block stores one more line (the H line). The entropy finisher
    (:func:`fusemax.hw.entropy.finisher_cycles` T per block) runs beside the next block's
    tiles, whose AV waits for it: a block shorter than T takes T; the last block's T adds to
    the run."""
    from fusemax.hw.entropy import finisher_cycles
    from fusemax.sw.compiler import visible_chunks

    base = rtl_binding["bindings"][binding]
    s, d = shape, config.numerics.exp_degree
    k = rtl_binding["insns_per_line"]
    if binding == "fusemax":
        tile = max(s.E + s.F + 1, s.E + s.F + 2 / k, d + 7)
    else:
        tile = base["per_tile_cycles"] + 1
    U, blocks = rtl_binding["tiles"], rtl_binding["blocks"]
    block = base["block_overhead"] + 1
    fin = finisher_cycles(config)
    P2 = -(-s.P // config.cols)
    per_block = [visible_chunks(s, config.rows, config.cols, i, causal) for i in range(P2)]
    order = per_block * (s.B * s.H)  # blocks in schedule order
    waits = sum(max(0.0, fin - (t * tile + block)) for t in order[1:])
    cyc = base["start_cycles"] + blocks * block + U * tile + waits + fin
    return {"cycles": cyc, "per_tile_cycles": tile, "block_overhead": block,
            "start_cycles": base["start_cycles"], "tiles_run": U, "finisher_cycles": fin,
            "finisher_waits": waits,
            "mac_efficiency": U * (s.E + s.F + 1) / cyc if cyc else 0.0}


def model_text(model: dict | None) -> str:
    if model is None:
        return "model: none (the analytical models know dense and causal tile grids, not tile lists)"
    r, p = model["measured_over_rtl_model"], model["measured_over_paper_model"]
    if r is None:
        return "model: no tiles"
    ours = f"model: RTL binding {model['rtl_model_cycles']:.0f} cycles (measured/model {r:.3f})"
    if p is None:
        return ours + "; the paper's formulas do not cover this cascade on this hardware"
    return ours + f", paper's formula {model['paper_model_cycles']:.0f} (measured/model {p:.3f})"


def summary_text(report: dict) -> str:
    s = report["shape"]
    u = report["utilization"]
    lines = [
        f"{report['cascade']} on {report['config']} ({report['array']['rows']}x{report['array']['cols']}), "
        f"B={s['B']} H={s['H']} M={s['M']} P={s['P']} E={s['E']} F={s['F']}"
        + (" causal" if report["causal"] else ""),
        f"cycles {report['cycles']}: 2D busy {report['busy']['2d']} ({100 * u['2d']:.1f} %), "
        f"1D busy {report['busy']['1d']} ({100 * u['1d']:.1f} %), memory stalls {report['stall_cycles']}, "
        + (f"flow engine busy {report['busy']['flow']} ({100 * u['flow']:.1f} %), "
         f"{report['tiling']['flow_tokens']} tokens" if "flow" in report["busy"] else
         f"MAC efficiency {100 * report['mac_efficiency']:.1f} % ({report['binding']} binding)"),
        ("model: none (the analytical models cover tiles, not the flow engine)"
         if report["tiling"].get("flow_tokens") else model_text(report["model"])),
        "per Einsum: " + ", ".join(f"{k} {v}" for k, v in report["einsum_cycles"].items()),
        "on-chip buffers: " + ", ".join(f"{k} {v} B" for k, v in report["buffer_bytes"].items()),
    ]
    if "variant" in report:
        var = report["variant"]
        params = ", ".join(f"{k} {v}" for k, v in var["params"].items())
        runs = (f"; {var['flow_tokens']} tokens on the flow engine" if "flow_tokens" in var else
                f"; tiles run {var['tiles_run']} of {var['tiles_total']} "
                f"({100 * var['tiles_skipped_fraction']:.1f} % skipped)")
        lines.append(f"host: {var['how']} ({params}); RTL shape "
                     + ",".join(f"{k}={v}" for k, v in var["rtl_shape"].items()) + runs)
    if report["timeout"]:
        lines.append("TIMEOUT: done never rose")
    elif report["bit_exact"]:
        lines.append("bit-exact with the golden model"
                     + (f" ({report['variant']['golden']})" if "variant" in report else ""))
    elif report["mismatches"] == 0:
        lines.append("output bit-exact with the golden model, but not its other outputs (below)")
    else:
        lines.append(f"NOT bit-exact: {report['mismatches']} mismatching outputs; first: "
                     f"{report['first_mismatches'][:3]}")
    if "executor" in report:
        lines.append(f"diagnosis: {report['executor']['verdict']}")
    if "error" in report:
        e = report["error"]
        lines.append(f"error vs float64: max abs {e['max_abs']:.3g}, RMS {e['rms']:.3g}, "
                     f"RMS / ref RMS {e['rel_rms']:.3g}")
    if "entropy" in report:
        h = report["entropy"]
        if h["mismatches"] is None:
            text = "not read back"
        elif h["bit_exact"]:
            text = "bit-exact with the golden model"
        else:
            text = (f"NOT bit-exact: {h['mismatches']} mismatching H codes; first: "
                    f"{h['first_mismatches'][:3]}")
        if "error" in h:
            e = h["error"]
            text += (f"; error vs float64 (exact entropy): max abs {e['max_abs']:.3g} nats, "
                     f"RMS {e['rms']:.3g}, RMS / ref RMS {e['rel_rms']:.3g}")
        lines.append(f"entropy H ({report['busy'].get('entropy', 0)} finisher cycles): {text}")
    flags = ", ".join(report["error_flags"]) or "none"
    lines.append(f"error flags: {flags}" + ("" if report["flags_match"] else
                 f" (expected: {', '.join(report['expected_error_flags']) or 'none'})"))
    w = report["wall_s"]
    rate = report["sim_cycles_per_s"]
    lines.append(f"wall {w['total']:.1f} s (build {w['build']:.1f} s{'' if report['built'] else ', cached'}, "
                 f"simulation {w['sim']:.2f} s, {report['mode']}"
                 + (f", {rate / 1e3:.0f} k cycles/s" if rate else "") + ")")
    return "\n".join(lines)
