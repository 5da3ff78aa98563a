"""Build an Amaranth component with Verilator and run a cocotb test module against it.

The one entry point is :func:`run_cocotb`::

    from fusemax.sim.runner import run_cocotb

    def test_adder_rtl():
        run_cocotb(Adder(width=8), name="adder", test_module="tests.cocotb_benches.tb_adder")

It converts the component to Verilog (``emit_src=False``: no absolute paths), builds it once
per distinct configuration into ``build/verilator/<name>-<hash12>/`` (the hash covers the
Verilog, the control file, the build flags, tracing and the tool versions; concurrent builds
of the same hash are serialised with a lock file), runs the cocotb test module in a private
test directory under that build, parses cocotb's results XML into a :class:`RunResult`, and
raises :class:`AssertionError` listing the failed cocotb tests.

Only the top-level ports are visible to cocotb: the build passes ``--no-public-flat-rw`` and a
generated ``public.vlt`` instead of cocotb's default ``--public-flat-rw`` (several times
slower). Testbenches that need an internal signal pass ``public=["-module \\"pe\\" -var \\"acc\\""]``.

Environment knobs: ``WAVES=1`` turns tracing on (as in cocotb), ``FUSEMAX_BUILD_DIR`` moves
``build/``, ``FUSEMAX_SIM_TIMEOUT`` gives a default ``timeout_s``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fusemax.errors import FuseMaxError
from fusemax.sim import toolchain

__all__ = [
    "BuildError",
    "Build",
    "RunResult",
    "TestCaseResult",
    "build_root",
    "build_verilator",
    "cached_build",
    "run_cocotb",
    "top_ports",
]

#: Bump when the build recipe changes in a way the hash would not see.
_RECIPE_VERSION = 1

#: Verilator flags for every simulation build.
BUILD_ARGS: tuple[str, ...] = (
    "--no-public-flat-rw",  # cocotb adds --public-flat-rw; public.vlt lists what is visible
    "-Wno-fatal",  # Yosys output trips WIDTH*/UNUSED lint warnings; lint is a separate target
    "-Wno-lint",
    "-Wno-style",
    "-O3",
)

#: Make variables for the C++ compile of the model (``verilated.mk`` defaults to ``-Os``).
#: Measured on a 16x16 grid of 8-bit MACs with Python idle: -Os 0.76 M cycles/s, -O2 1.07 M,
#: -O3 1.08 M; the build takes ~9 s either way (mostly the Verilator runtime, see ccache).
MAKE_VARS: dict[str, str] = {"OPT_FAST": "-O2", "OPT_SLOW": "-O1", "OPT_GLOBAL": "-O1"}

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")


class BuildError(FuseMaxError):
    """Verilator could not build the design (the message ends with the build log's tail)."""


@dataclass
class TestCaseResult:
    """One cocotb test as reported in the results XML."""

    name: str
    status: str  #: ``"passed"``, ``"failed"``, ``"error"`` or ``"skipped"``
    message: str = ""
    wall_s: float = 0.0
    sim_time_ns: float | None = None


@dataclass
class RunResult:
    """What one :func:`run_cocotb` call did."""

    name: str
    build_dir: Path
    test_dir: Path
    results_xml: Path
    log: Path
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)  #: ``"test_name: message"`` per failure
    tests: list[TestCaseResult] = field(default_factory=list)
    waves: Path | None = None  #: ``dump.fst`` / ``dump.vcd`` when traced
    wall_s: float = 0.0  #: the whole call: conversion, build (if any) and simulation
    build_s: float = 0.0  #: time spent building; 0.0 when an existing build was reused
    built: bool = False  #: True if this call ran Verilator

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.passed > 0

    def test(self, name: str) -> TestCaseResult:
        for t in self.tests:
            if t.name == name or t.name.endswith("." + name):
                return t
        raise KeyError(name)


@dataclass(frozen=True)
class Build:
    """A finished Verilator build."""

    name: str
    build_dir: Path
    waves: str | None  #: ``"fst"``, ``"vcd"`` or None
    built: bool  #: True if this call built it, False if it was reused
    build_s: float


# ---------------------------------------------------------------------------------------------
# paths and locks


def repo_root() -> Path:
    """The checkout that holds this package (``fusemax/`` sits in it)."""
    return Path(__file__).resolve().parents[2]


def build_root() -> Path:
    """``$FUSEMAX_BUILD_DIR`` or ``<repo>/build``."""
    env = os.environ.get("FUSEMAX_BUILD_DIR")
    if env:
        return Path(env).resolve()
    root = repo_root()
    if (root / "pyproject.toml").is_file():
        return root / "build"
    return Path.cwd() / "build"


@contextlib.contextmanager
def _flock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Exclusive ``fcntl.flock`` on ``path``; yields False if non-blocking and busy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


def _sim_timeout(timeout_s: float | None) -> float | None:
    """``timeout_s``, or ``$FUSEMAX_SIM_TIMEOUT`` when None (None if that is unset too)."""
    if timeout_s is None and os.environ.get("FUSEMAX_SIM_TIMEOUT"):
        return float(os.environ["FUSEMAX_SIM_TIMEOUT"])
    return timeout_s


def _run_group(cmd: Sequence[str], *, cwd, stdout=None, timeout_s: float | None = None,
               env: Mapping[str, str] | None = None) -> int:
    """Run ``cmd`` in its own process group (stderr into ``stdout`` when given) and return its
    exit status. On a timeout, or any exception while waiting (^C), the whole group is killed.

    Raises:
        TimeoutError: it ran longer than ``timeout_s``.
    """
    proc = subprocess.Popen(
        list(cmd),
        cwd=cwd,
        env=env,
        stdout=stdout,
        stderr=None if stdout is None else subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # so a timeout can kill the whole group
    )
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise TimeoutError(f"{Path(str(cmd[0])).name} did not finish within {timeout_s} s") from None
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def _env_bool(name: str, default: bool) -> bool:
    """cocotb's reading of boolean environment variables (``WAVES``)."""
    val = os.environ.get(name, "").strip().lower()
    if val in ("1", "yes", "y", "on", "true", "enable"):
        return True
    if val in ("0", "no", "n", "off", "false", "disable"):
        return False
    return default


# ---------------------------------------------------------------------------------------------
# Verilog and the control file


def top_ports(verilog: str, name: str) -> list[str]:
    """Port names of module ``name`` in Yosys-written Verilog (ANSI header or not)."""
    m = re.search(
        rf"^\s*module\s+{re.escape(name)}\s*(?:#\s*\(.*?\)\s*)?\((.*?)\)\s*;", verilog, re.M | re.S
    )
    if not m:
        raise FuseMaxError(f"module {name!r} not found in the generated Verilog")
    ports = []
    for item in m.group(1).split(","):
        words = item.replace("\n", " ").split()
        if not words:
            continue
        word = words[-1]
        if word.startswith("\\"):
            word = word[1:]
        ports.append(word.rstrip(";"))
    return ports


def public_vlt(name: str, ports: Sequence[str], public: Sequence[str] = ()) -> str:
    """Verilator control file making the top-level ports (and ``public`` lines) visible."""
    lines = ["`verilator_config", "// generated by fusemax.sim.runner; only these are visible"]
    lines += [f'public_flat_rw -module "{name}" -var "{p}"' for p in ports]
    lines += [f"public_flat_rw {p}" for p in public]
    return "\n".join(lines) + "\n"


def to_verilog(component, name: str) -> str:
    """Amaranth component -> Verilog text, top module ``name``, no source paths."""
    from amaranth.back import verilog

    return verilog.convert(component, name=name, emit_src=False)


# ---------------------------------------------------------------------------------------------
# the runner


def _cocotb_runner_class():
    from cocotb_tools.runner import Verilator as _CocotbVerilator

    class _Runner(_CocotbVerilator):
        """cocotb's Verilator runner with our toolchain env, PYTHONPATH and a timeout."""

        def __init__(self, extra_env: Mapping[str, str], timeout_s: float | None):
            super().__init__()
            self._fm_extra_env = dict(extra_env)
            self._fm_timeout_s = timeout_s

        def _simulator_in_path_build_only(self) -> None:
            self.executable = str(toolchain.find_verilator().executable)

        def _set_env_common(self) -> None:
            super()._set_env_common()  # copies os.environ over self.env
            env = toolchain.verilator_env(self.env, make_vars=MAKE_VARS)
            env.update(self._fm_extra_env)  # the caller wins over os.environ
            paths = [str(repo_root())] + [
                p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(repo_root())
            ]
            env["PYTHONPATH"] = os.pathsep.join(paths)
            self.env = env

        def _execute_cmds(self, cmds, cwd, stdout=None) -> None:
            __tracebackhide__ = True
            for cmd in cmds:
                self.log.debug("Running %s in %s", cmd, cwd)
                rc = _run_group([str(c) for c in cmd], cwd=cwd, stdout=stdout,
                                timeout_s=self._fm_timeout_s, env=self.env)
                if rc != 0:
                    raise subprocess.CalledProcessError(rc, cmd)

    return _Runner


def _build_key(verilog: str, vlt: str, build_args: Sequence[str], waves: str | None) -> str:
    import cocotb

    tool = toolchain.find_verilator()
    blob = json.dumps(
        {
            "recipe": _RECIPE_VERSION,
            "verilog": verilog,
            "vlt": vlt,
            "build_args": list(build_args),
            "make_vars": MAKE_VARS,
            "waves": waves,
            "verilator": [tool.version, str(tool.root)],
            "cocotb": cocotb.__version__,
            "python": sys.version,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def build_verilator(
    verilog: str,
    *,
    name: str,
    waves: bool = False,
    public: Sequence[str] = (),
    build_args: Sequence[str] = (),
) -> Build:
    """Build ``verilog`` (top module ``name``) for cocotb, or reuse an identical build.

    Raises:
        BuildError: Verilator or the C++ compile failed.
    """
    if not _IDENT.match(name):
        raise FuseMaxError(f"name {name!r} must be a plain Verilog identifier")
    tool = toolchain.find_verilator()  # FuseMaxError if missing
    trace = (("fst" if toolchain.fst_available() else "vcd") if waves else None)
    vlt = public_vlt(name, top_ports(verilog, name), public)
    args = list(BUILD_ARGS) + list(build_args)
    if trace == "fst":
        args += ["--trace-fst", "--trace-structs"]
    elif trace == "vcd":
        args += ["--trace", "--trace-structs"]
    key = _build_key(verilog, vlt, args, trace)

    def build(bdir: Path) -> dict:
        src = bdir / "src"
        src.mkdir(parents=True)
        (src / f"{name}.v").write_text(verilog)
        (src / "public.vlt").write_text(vlt)
        log = bdir / "build.log"
        runner = _cocotb_runner_class()(extra_env={}, timeout_s=None)
        try:
            runner.build(
                # the .vlt must not be last: cocotb takes the language from the last source
                sources=[src / "public.vlt", src / f"{name}.v"],
                hdl_toplevel=name,
                build_dir=bdir,
                build_args=args,
                waves=bool(trace),
                always=True,
                log_file=log,
            )
        except (RuntimeError, subprocess.CalledProcessError, SystemExit) as exc:
            raise BuildError(
                f"Verilator build of {name!r} failed ({exc}); {toolchain.describe()}.\n"
                f"log: {log}\n{_tail(log)}"
            ) from None
        return {"name": name, "build_args": args, "make_vars": MAKE_VARS, "waves": trace,
                "verilator": tool.version}

    bdir, built, build_s = cached_build(name, key, build)
    return Build(name, bdir, trace, built=built, build_s=build_s)


def cached_build(stem: str, key: str, build) -> tuple[Path, bool, float]:
    """The build cache: ``build_root()/verilator/<stem>-<key[:12]>/``, made once per ``key``.

    Reuses a finished directory (marked ``.fusemax-build-ok``); otherwise, under a lock file
    (concurrent builds of the same key wait for each other), starts it clean, calls
    ``build(bdir)`` (which raises on failure and returns a dict for ``build.json``), writes
    ``build.json`` (plus ``hash`` and ``build_s``) and the marker. Returns
    ``(bdir, built, build_s)``; ``built`` is False and ``build_s`` 0.0 for a reused build.
    """
    root = build_root() / "verilator"
    bdir = root / f"{stem}-{key[:12]}"
    done = bdir / ".fusemax-build-ok"
    if done.is_file():
        return bdir, False, 0.0

    lock = root / f".{stem}-{key[:12]}.lock"
    with contextlib.ExitStack() as held:
        if not held.enter_context(_flock(lock, blocking=False)):
            _progress(f"waiting for another process building {_shown(bdir)}")
            held.enter_context(_flock(lock))
        if done.is_file():  # somebody else built it while we waited
            return bdir, False, 0.0
        if bdir.exists():  # an interrupted build: start clean
            shutil.rmtree(bdir)
        bdir.mkdir(parents=True)
        _progress(f"building the Verilator model {stem} in {_shown(bdir)} (once per design)...")
        t0 = time.monotonic()
        info = dict(build(bdir))
        build_s = time.monotonic() - t0
        _progress(f"built {_shown(bdir)} in {build_s:.1f} s")
        info.update({"hash": key, "build_s": round(build_s, 2)})
        (bdir / "build.json").write_text(json.dumps(info, indent=2))
        done.write_text(key + "\n")
    return bdir, True, build_s


def _progress(msg: str) -> None:
    """A progress line for long work (a Verilator build), on stderr only: stdout stays the
    caller's (``--json``)."""
    print(f"fusemax: {msg}", file=sys.stderr, flush=True)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@contextlib.contextmanager
def _claim_test_dir(base: Path, stem: str) -> Iterator[Path]:
    """A test directory ``base/stem`` (or ``stem-2``, ...) that no other process is using."""
    for i in range(1, 1000):
        d = base / (stem if i == 1 else f"{stem}-{i}")
        with _flock(base / f".{d.name}.lock", blocking=False) as got:
            if not got:
                continue
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
            yield d
            return
    raise RuntimeError(f"no free test directory for {stem} under {base}")


def _parse_results(xml_path: Path) -> list[TestCaseResult]:
    tests = []
    for tc in ET.parse(xml_path).getroot().iter("testcase"):
        status, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            el = tc.find(tag)
            if el is not None:
                status = "failed" if tag == "failure" else tag
                message = (el.get("message") or el.text or "").strip()
                break
        props = {p.get("name"): p.get("value") for p in tc.iter("property")}
        sim_ns = props.get("sim_time_duration") if props.get("sim_time_unit") == "ns" else None
        tests.append(
            TestCaseResult(
                name=tc.get("name", "?"),
                status=status,
                message=message,
                wall_s=float(tc.get("time") or 0.0),
                sim_time_ns=float(sim_ns) if sim_ns not in (None, "") else None,
            )
        )
    return tests


def run_cocotb(
    component,
    *,
    name: str,
    test_module: str,
    test_dir_name: str | None = None,
    extra_env: dict[str, str] | None = None,
    waves: bool = False,
    testcase: str | None = None,
    timeout_s: float | None = None,
    seed: int | None = None,
    public: Sequence[str] = (),
    build_args: Sequence[str] = (),
    verilog: str | None = None,
    plusargs: Sequence[str] = (),
    sim_trace: bool = True,
) -> RunResult:
    """Build ``component`` with Verilator (once per configuration) and run a cocotb test module.

    Args:
        component: an Amaranth ``wiring.Component`` (the top level; its ports should be flat).
        name: Verilog top module name; also names the build directory.
        test_module: dotted module of cocotb tests, e.g. ``"tests.cocotb_benches.tb_runner_smoke"``
            (the repo root is put on the simulator's ``PYTHONPATH``).
        test_dir_name: name of the run directory under the build (default: from ``test_module``
            and ``testcase``); if another process uses it, ``-2``, ``-3``... is appended.
        extra_env: environment for the bench (e.g. a path to a config JSON); wins over
            ``os.environ``.
        waves: trace FST (VCD if the lz4/zlib headers are missing); a separate build.
            ``WAVES=1``/``WAVES=0`` in the environment overrides it, as in cocotb.
        testcase: run only this cocotb test (comma-separated names allowed).
        timeout_s: kill the simulator after this many seconds (``TimeoutError``); default
            ``$FUSEMAX_SIM_TIMEOUT`` or none.
        seed: ``COCOTB_RANDOM_SEED`` for the run.
        public: extra ``public_flat_rw`` control lines, e.g. ``'-module "pe" -var "acc"'``.
        build_args: extra Verilator arguments (part of the build hash).
        verilog: already converted Verilog to use instead of converting ``component``
            (it may hold several modules, e.g. a simulation wrapper around the design; ``name``
            is then the wrapper, and ``component`` may be None).
        plusargs: simulator plusargs, e.g. ``["+fusemax_image=/path/image.hex"]`` (not part of
            the build hash).
        sim_trace: with ``waves``, let the simulator's main trace everything into
            ``dump.fst``/``dump.vcd`` from time 0 (cocotb's ``--trace``). False builds with
            tracing but leaves opening a dump to the design (:mod:`fusemax.sim.waves`: a window
            of cycles, a part of the hierarchy); ``RunResult.waves`` is then None.

    Returns:
        A :class:`RunResult`.

    Raises:
        AssertionError: a cocotb test failed, or the simulator died without results.
        BuildError: the Verilator build failed.
        FuseMaxError: Verilator is not installed, or ``name`` is not an identifier.
        TimeoutError: the simulation ran longer than ``timeout_s``.
    """
    __tracebackhide__ = True
    t0 = time.monotonic()
    waves = _env_bool("WAVES", waves)
    timeout_s = _sim_timeout(timeout_s)
    if verilog is None:
        verilog = to_verilog(component, name)
    build = build_verilator(verilog, name=name, waves=waves, public=public, build_args=build_args)

    stem = test_dir_name or (test_module.rsplit(".", 1)[-1] + (f"-{testcase}" if testcase else ""))
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)
    with _claim_test_dir(build.build_dir / "runs", stem) as test_dir:
        results_xml = test_dir / "results.xml"
        log = test_dir / "sim.log"
        runner = _cocotb_runner_class()(extra_env=extra_env or {}, timeout_s=timeout_s)
        exit_note = ""
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=name,
                hdl_toplevel_lang="verilog",
                build_dir=build.build_dir,
                test_dir=test_dir,
                testcase=testcase,
                seed=seed,
                waves=bool(build.waves) and sim_trace,
                results_xml=str(results_xml),
                plusargs=list(plusargs),
                log_file=log,
            )
        except SystemExit as exc:  # cocotb's runner exits when run under pytest and tests fail
            exit_note = f" (simulator exit status {exc.code})" if exc.code else ""
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; {name} / {test_module}\nlog: {log}\n{_tail(log)}") from None

        if not results_xml.is_file():
            raise AssertionError(
                f"cocotb run of {test_module} on {name} ended without results{exit_note}.\n"
                f"log: {log}\n{_tail(log)}"
            )
        tests = _parse_results(results_xml)
        wave_file = None
        if build.waves:
            cand = test_dir / f"dump.{build.waves}"
            wave_file = cand if cand.is_file() else None

        result = RunResult(
            name=name,
            build_dir=build.build_dir,
            test_dir=test_dir,
            results_xml=results_xml,
            log=log,
            passed=sum(t.status == "passed" for t in tests),
            failed=sum(t.status in ("failed", "error") for t in tests),
            skipped=sum(t.status == "skipped" for t in tests),
            failures=[f"{t.name}: {t.message}" for t in tests if t.status in ("failed", "error")],
            tests=tests,
            waves=wave_file,
            wall_s=time.monotonic() - t0,
            build_s=build.build_s,
            built=build.built,
        )
    if result.failed:
        raise AssertionError(
            f"{result.failed} of {len(tests)} cocotb test(s) failed in {test_module} on {name}"
            f"{exit_note}:\n  " + "\n  ".join(result.failures) + f"\nlog: {log}"
        )
    if not tests:
        raise AssertionError(
            f"no cocotb test ran from {test_module} (testcase={testcase!r}){exit_note}\nlog: {log}"
            f"\n{_tail(log)}"
        )
    return result
