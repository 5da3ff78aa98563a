"""The native run mode: the simulation toplevel under a Verilator C++ harness, no Python in the loop.

``run_program(..., mode="native")`` (:mod:`fusemax.sim.attention`) uses it; on its own::

    build = build_native(design_verilog(config))   # once per config, cached under build/verilator/
    failure = run_native(build, plusargs=[...], results=path, sched_base=0, timeout_cycles=10**6,
                         csr_count=len(CSR_NAMES))

The harness is ``native_main.cpp`` next to this file (package data): it does what the cocotb
bench ``tests/cocotb_benches/tb_attention.py`` does -- reset, one start pulse, clock until
``done`` rises or the cycle limit, read every counter through ``csr_addr``/``csr_data`` -- and
writes the same results JSON. The design is the same Verilog text as the cocotb flow's
(:func:`fusemax.sim.attention.design_verilog`), built with the same Verilator flags
(``runner.BUILD_ARGS``) and C++ optimisation (``runner.MAKE_VARS``), minus cocotb's VPI; the
build directory ``fusemax_sim_native-<hash12>`` is cached by :func:`fusemax.sim.runner.cached_build`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from fusemax.errors import FuseMaxError
from fusemax.sim import toolchain

__all__ = ["MAIN_CPP", "EXE", "TIMEOUT_EXIT", "build_native", "run_native", "main_cpp"]

#: The harness source (package data).
MAIN_CPP = Path(__file__).with_name("native_main.cpp")
#: Name of the harness executable inside the build directory.
EXE = "fusemax_native"
#: Exit status of the harness when ``done`` did not rise within the cycle limit.
TIMEOUT_EXIT = 3
#: Bump when the native build recipe changes in a way the hash would not see.
_RECIPE_VERSION = 1


def main_cpp() -> str:
    """Text of the C++ harness."""
    try:
        return MAIN_CPP.read_text()
    except OSError as exc:
        raise FuseMaxError(f"the native harness source is missing ({exc}); reinstall fusemax") from None


def _check_tools(env: dict[str, str]) -> None:
    """FuseMaxError naming what is missing: ``verilated.mk`` calls ``c++`` and ``make``."""
    missing = [t for t in ("c++", "make") if shutil.which(t, path=env.get("PATH")) is None]
    if missing:
        raise FuseMaxError(
            f"the native simulation needs a C++ compiler and make, but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not on PATH (Debian: apt-get install g++ make)")


def build_native(verilog: str, *, top: str | None = None, jobs: int | None = None):
    """Build (or reuse) the native harness around ``verilog`` (toplevel ``top``, default
    ``fusemax_sim``); returns a :class:`fusemax.sim.runner.Build` (``waves`` None).

    Raises:
        FuseMaxError: Verilator, the C++ compiler or make is missing.
        BuildError: Verilator or the C++ compile failed.
    """
    from fusemax.sim.runner import BUILD_ARGS, MAKE_VARS, Build, BuildError, _tail, cached_build
    from fusemax.sim.wrapper import SIM_TOP

    top = top or SIM_TOP
    tool = toolchain.find_verilator()  # FuseMaxError if missing
    cpp = main_cpp()
    args = list(BUILD_ARGS)
    blob = json.dumps({"recipe": _RECIPE_VERSION, "verilog": verilog, "top": top, "main": cpp,
                       "build_args": args, "make_vars": MAKE_VARS,
                       "verilator": [tool.version, str(tool.root)]}, sort_keys=True)
    key = hashlib.sha256(blob.encode()).hexdigest()
    stem = f"{top}_native"

    def build(bdir: Path) -> dict:
        env = toolchain.verilator_env(make_vars=MAKE_VARS)
        _check_tools(env)
        src = bdir / "src"
        src.mkdir(parents=True)
        (src / f"{top}.v").write_text(verilog)
        (src / MAIN_CPP.name).write_text(cpp)
        n_jobs = jobs or min(4, os.cpu_count() or 1)
        cmd = [str(tool.executable), "--cc", "--exe", "--build", "-j", str(n_jobs),
               "-Mdir", str(bdir), "--top-module", top, "--prefix", "Vtop", "-o", EXE,
               *args, str(src / MAIN_CPP.name), str(src / f"{top}.v")]
        log = bdir / "build.log"
        with log.open("w") as fh:
            fh.write(" ".join(cmd) + "\n")
            fh.flush()
            rc = subprocess.run(cmd, cwd=bdir, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL).returncode
        if rc != 0 or not (bdir / EXE).is_file():
            raise BuildError(f"native Verilator build of {top!r} failed (exit status {rc}); "
                             f"{toolchain.describe()}.\nlog: {log}\n{_tail(log)}")
        return {"name": stem, "mode": "native", "build_args": args, "make_vars": MAKE_VARS,
                "waves": None, "verilator": tool.version}

    bdir, built, build_s = cached_build(stem, key, build)
    return Build(stem, bdir, None, built=built, build_s=build_s)


def run_native(build, *, results: str | Path, timeout_cycles: int, csr_count: int,
               sched_base: int = 0, plusargs: Sequence[str] = (),
               cwd: str | Path | None = None, timeout_s: float | None = None) -> str | None:
    """Run the harness of ``build``; it writes the results JSON to ``results``.

    ``csr_count``: counters to read (the first ``csr_count`` of
    :data:`fusemax.sim.attention.CSR_NAMES`). Returns None if ``done`` rose, or a message if
    the cycle limit was reached first (the results then say ``"timeout": true``). The log is
    ``native.log`` in ``cwd`` (default: the directory of ``results``).

    Raises:
        TimeoutError: the harness ran longer than ``timeout_s`` (default
            ``$FUSEMAX_SIM_TIMEOUT`` or none); it is killed.
        FuseMaxError: the harness failed (bad arguments, a crash, ``$fatal``).
    """
    from fusemax.sim.runner import _run_group, _sim_timeout, _tail

    timeout_s = _sim_timeout(timeout_s)
    results = Path(results)
    wd = Path(cwd) if cwd is not None else results.parent
    exe = Path(build.build_dir) / EXE
    cmd = [str(exe), *plusargs, f"+fusemax_results={results}",
           f"+fusemax_timeout_cycles={int(timeout_cycles)}", f"+fusemax_sched_base={int(sched_base)}",
           f"+fusemax_csr_count={int(csr_count)}"]
    log = wd / "native.log"
    with log.open("w") as fh:
        try:
            rc = _run_group(cmd, cwd=wd, stdout=fh, timeout_s=timeout_s)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\nlog: {log}\n{_tail(log)}") from None
    if rc == 0:
        return None
    if rc == TIMEOUT_EXIT and results.is_file():
        return f"done did not rise within {int(timeout_cycles)} cycles\n{_tail(log, 5)}"
    try:
        how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
    except ValueError:
        how = f"exit status {rc}"
    raise FuseMaxError(f"the native simulation failed ({how})\nlog: {log}\n{_tail(log)}")
