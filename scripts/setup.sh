#!/usr/bin/env bash
# Set up a development environment for fusemax from nothing; cheap when already done.
#
#   * .venv/ in the repo root, made with python3 (>= 3.11; override with PYTHON=...),
#   * `pip install -e '.[dev]'`, re-run only when pyproject.toml changes
#     (its sha256 is kept in .venv/.fusemax-setup-stamp),
#   * Debian packages liblz4-dev and zlib1g-dev (headers for Verilator FST tracing),
#     ccache (faster Verilator builds) and gtkwave, xvfb, xauth (a test opens a save file in
#     GTKWave), installed only when missing and we are root with apt-get; otherwise a
#     warning (waves fall back to VCD, builds are slower, that test is skipped).
#
# Safe with CI=true and no stdin. Idempotent.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP="$VENV/.fusemax-setup-stamp"

say()  { printf 'setup: %s\n' "$*"; }
warn() { printf 'setup: WARNING: %s\n' "$*" >&2; }
die()  { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

py_ok() {  # $1: interpreter; true if it exists and is >= 3.11 with venv
    "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
        >/dev/null 2>&1 </dev/null
}

# --- 1. Debian packages (optional) -----------------------------------------------------
# liblz4-dev, zlib1g-dev: headers for Verilator FST tracing (else VCD is used);
# ccache: the Verilator runtime is the same C++ in every build dir, so ccache cuts a
#         per-configuration build from ~9 s to ~2 s (fusemax.sim.toolchain uses it if found).
need_pkgs=()
[ -f /usr/include/lz4.h ]  || need_pkgs+=(liblz4-dev)
[ -f /usr/include/zlib.h ] || need_pkgs+=(zlib1g-dev)
command -v ccache >/dev/null 2>&1 || need_pkgs+=(ccache)
# gtkwave, xvfb, xauth: the test that opens a run's save file in GTKWave itself (headless);
#         without them that one test is skipped.
command -v gtkwave >/dev/null 2>&1 || need_pkgs+=(gtkwave)
command -v xvfb-run >/dev/null 2>&1 || need_pkgs+=(xvfb xauth)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing ${need_pkgs[*]} (FST headers / compiler cache for Verilator builds / GTKWave for a test)"
        export DEBIAN_FRONTEND=noninteractive
        if apt-get update -qq </dev/null \
           && apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" </dev/null >/dev/null; then
            say "installed ${need_pkgs[*]}"
        else
            warn "apt-get could not install ${need_pkgs[*]}; without lz4/zlib headers waves are VCD, without ccache builds are slower, without gtkwave/xvfb one test is skipped"
        fi
    else
        warn "missing ${need_pkgs[*]} and not root with apt-get: without lz4/zlib headers waves are VCD (not FST), without ccache Verilator builds are slower."
        warn "  to install: sudo apt-get install ${need_pkgs[*]}"
    fi
fi

# --- 2. Python >= 3.11 -------------------------------------------------------------
if [ -x "$VENV/bin/python" ] && ! py_ok "$VENV/bin/python"; then
    warn "$VENV is broken or too old; recreating it"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    PY=""
    for cand in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$cand" >/dev/null 2>&1 && py_ok "$cand"; then PY="$cand"; break; fi
    done
    [ -n "$PY" ] || die "need Python >= 3.11 with the venv module (found: $(python3 --version 2>&1 || echo none)). Install it or set PYTHON=/path/to/python3.11"
    say "creating .venv with $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    "$PY" -m venv "$VENV"
fi

# --- 3. pip install -e '.[dev]' when pyproject.toml changed -------------------------
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $ROOT"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    say "installing fusemax and its dependencies (pip install -e '.[dev]')"
    rm -f "$STAMP"
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
    "$VENV/bin/python" -m pip install -q -e '.[dev]' </dev/null
    printf '%s\n' "$want" > "$STAMP"
    say "done"
else
    touch "$STAMP"   # keeps make's stamp newer than pyproject.toml
    say "up to date (.venv matches pyproject.toml)"
fi
