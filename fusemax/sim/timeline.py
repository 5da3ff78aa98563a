"""Timelines of RTL runs: which Einsum runs on which array, cycle by cycle (from a waveform
dump), and utilization against sequence length and array size (from the analytical model, with
measured points).

:func:`read_activity` samples the sequencer's activity signals (``act_*`` of
:data:`fusemax.hw.sequencer.ACTIVITY`, one per Einsum, each tagged with its array) and ``busy``
once per clock cycle, the way the RTL's own counters do: the value just before the rising edge
that ends the cycle. Cycles are numbered from the start pulse (cycle 0 is the first cycle the
``cycles`` counter counts): from the wrapper's ``waves_cycle`` when the dump has it (any dump
made by :mod:`fusemax.sim.waves`, windowed or not), else from the clock edge that sampled
``start``. So :meth:`Activity.busy_cycles` of a dump of the whole run equals the per-Einsum
counters of the run's report (``report["counters"]``), an independent check of the trace.

:func:`gantt` draws the chart in the style of the FuseMax paper's figure 4: one row per Einsum,
the 2D array's (BQK, LM, SLN, SLD, SLNV) above the 1D array's (RM, PRM, RD, RNV, AV), a bar
wherever the Einsum's hardware works (consecutive runs alternate in shade, so back-to-back tiles
stay apart), over a selectable window of cycles.

:func:`utilization_plot` draws the model's 2D and 1D utilization (:mod:`fusemax.sw.perfmodel`,
the RTL prediction of :func:`~fusemax.sw.perfmodel.predict_rtl`: compute cycles, memory never the
bound, for the bindings ``fusemax`` and ``architecture``) against the sequence length (keys M, the
shape's P queries) on the configuration's array, and against the array size (N x N) at the shape,
with the measured points of ``fusemax sim --report`` files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from fusemax.errors import FuseMaxError

if TYPE_CHECKING:
    from fusemax.sim.waves import Hierarchy

__all__ = ["Activity", "read_activity", "gantt", "utilization_plot", "model_utilization",
           "load_measured", "default_lengths", "default_arrays"]


@dataclass
class Activity:
    """Per-cycle samples of a dump.

    ``cycles``: cycle number of each sample (from the start pulse; negative before it);
    ``busy``: the accelerator's ``busy``; ``act``: Einsum name (``BQK``, ...) -> active;
    ``arrays``: Einsum -> ``"2d"`` / ``"1d"``; ``period``: dump time units per cycle.
    """

    cycles: np.ndarray
    busy: np.ndarray
    act: dict[str, np.ndarray]
    arrays: dict[str, str]
    period: int
    timescale: str
    source: str

    def window(self, start: int | None = None, end: int | None = None) -> "Activity":
        """The cycles in [start, end) (None: open)."""
        keep = np.ones(len(self.cycles), bool)
        if start is not None:
            keep &= self.cycles >= start
        if end is not None:
            keep &= self.cycles < end
        return Activity(self.cycles[keep], self.busy[keep], {k: v[keep] for k, v in self.act.items()},
                        self.arrays, self.period, self.timescale, self.source)

    @property
    def span(self) -> tuple[int, int]:
        """[first, last + 1) of the sampled cycles (0, 0 when empty)."""
        return (int(self.cycles[0]), int(self.cycles[-1]) + 1) if len(self.cycles) else (0, 0)

    @cached_property
    def _run(self) -> np.ndarray:
        """The cycles the RTL's counters count: busy, from the start pulse on."""
        return self.busy & (self.cycles >= 0)

    def busy_cycles(self) -> dict[str, int]:
        """Cycles (from the start pulse on) in which each Einsum's hardware works while busy, as
        the RTL's counters count them."""
        return {name: int(np.count_nonzero(a & self._run)) for name, a in self.act.items()}

    def counter_diff(self, einsum_cycles: dict[str, int]) -> dict[str, tuple[int | None, int | None]]:
        """Einsum -> (cycles in the dump, counter) wherever :meth:`busy_cycles` differs from the
        RTL's per-Einsum counters ``einsum_cycles`` (a report's ``einsum_cycles``); empty when
        they match."""
        got = self.busy_cycles()
        want = {k: int(v) for k, v in einsum_cycles.items()}
        return {k: (got.get(k), want.get(k)) for k in sorted(set(got) | set(want))
                if got.get(k) != want.get(k)}

    def array_busy(self) -> dict[str, int]:
        out = {}
        for arr in ("2d", "1d"):
            names = [n for n, a in self.arrays.items() if a == arr]
            any_ = np.zeros(len(self.cycles), bool)
            for n in names:
                any_ |= self.act[n]
            out[arr] = int(np.count_nonzero(any_ & self._run))
        return out

    def utilization(self) -> dict[str, float]:
        """Busy fraction of each array over the sampled cycles in which the accelerator is busy."""
        return self._shares(self.array_busy())

    def _shares(self, array_busy: dict[str, int]) -> dict[str, float]:
        n = int(np.count_nonzero(self._run))
        return {k: (v / n if n else 0.0) for k, v in array_busy.items()}

    def summary(self) -> dict[str, Any]:
        arrays = self.array_busy()
        return {"source": self.source, "cycles": list(self.span),
                "busy_cycles": int(np.count_nonzero(self._run)), "einsum_cycles": self.busy_cycles(),
                "array_busy": arrays, "utilization": self._shares(arrays)}


def _sample(times: list[int], values: list[int], at: np.ndarray, default: int = 0) -> np.ndarray:
    """Value of a piecewise-constant signal at times ``at`` (``default`` before its first change)."""
    if not times:
        return np.full(len(at), default, dtype=np.int64)
    t = np.asarray(times, dtype=np.int64)
    v = np.asarray(values, dtype=np.int64)
    idx = np.searchsorted(t, at, side="right") - 1
    out = np.where(idx >= 0, v[np.clip(idx, 0, None)], default)
    return out


def read_activity(dump: str | os.PathLike | Hierarchy) -> Activity:
    """Sample ``busy`` and every ``act_*`` once per cycle (see the module docstring); ``dump``
    is a path or its :class:`fusemax.sim.waves.Hierarchy` (e.g. the one
    :func:`fusemax.sim.waves.finish` read)."""
    from fusemax.hw.sequencer import ACTIVITY
    from fusemax.sim.waves import Hierarchy, signal_changes
    from fusemax.sim.wrapper import WAVES_CYCLE

    h = dump if isinstance(dump, Hierarchy) else Hierarchy(dump)
    dump = h.path
    top = h.first("clk", "busy")
    if top is None:
        raise FuseMaxError(f"{dump}: no scope with clk and busy (is this a fusemax_sim dump?)")
    scope = h.activity_scope()
    if scope is None:
        missing = [n for n in ACTIVITY if not any(n in s.vars for s in h.scopes)]
        raise FuseMaxError(f"{dump}: the activity signals are not in the dump "
                           f"(missing: {', '.join(missing) or 'none in one scope'}); trace the "
                           f"sequencer (fusemax sim --waves keeps it in every limited dump)")
    want = {"clk": top.vars["clk"], "busy": top.vars["busy"]}
    if "start" in top.vars:
        want["start"] = top.vars["start"]
    if WAVES_CYCLE in top.vars:
        want["cycle"] = top.vars[WAVES_CYCLE]
    for n in ACTIVITY:
        want[n] = scope.vars[n]
    ch = signal_changes(h, want)
    ct, cv = ch["clk"]
    clk = np.asarray(cv, dtype=np.int64)
    rising = clk == 1
    rising[1:] &= clk[:-1] == 0
    edges = np.asarray(ct, dtype=np.int64)[rising]
    if len(edges) < 2:
        raise FuseMaxError(f"{dump}: fewer than two clock edges")
    at = edges[1:] - 1  # just before the edge that ends each cycle: what the counters sample
    if ct[-1] > edges[-1]:  # the last cycle's closing edge is not dumped: its falling edge is
        at = np.append(at, ct[-1])
    if "cycle" in ch:
        width = want["cycle"].bitwidth
        t, v = ch["cycle"]
        if width == 64:  # two's complement: the same bits as int64
            signed = np.asarray(v, np.uint64).view(np.int64)
        else:
            signed = [x - (1 << width) if x >= (1 << (width - 1)) else x for x in v]
        cycles = _sample(t, signed, at, -1)
        pre = np.flatnonzero(cycles < 0)  # before the start pulse the counter holds -1
        if len(pre) and pre[-1] == len(pre) - 1:
            cycles[: len(pre)] = np.arange(-len(pre), 0)
    else:
        st = _sample(*ch["start"], edges - 1) if "start" in ch else np.zeros(len(edges), np.int64)
        hits = np.flatnonzero(st[:-1] == 1)
        k0 = int(hits[0]) if len(hits) else 0
        cycles = np.arange(len(at), dtype=np.int64) - k0
    busy = _sample(*ch["busy"], at).astype(bool)
    einsum = {n: (n[4:] if n.startswith("act_") else n).upper() for n in ACTIVITY}
    act = {einsum[n]: _sample(*ch[n], at).astype(bool) for n in ACTIVITY}
    arrays = {einsum[n]: a for n, a in ACTIVITY.items()}
    period = int(np.median(np.diff(edges)))
    return Activity(cycles.astype(np.int64), busy, act, arrays, period, str(h.wave.timescale), str(dump))


def _runs(mask: np.ndarray, cycles: np.ndarray) -> list[tuple[int, int]]:
    """(first cycle, length) of each run of True."""
    if not len(mask):
        return []
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(int(cycles[s]), int(e - s)) for s, e in zip(starts, ends)]


def gantt(activity: Activity, out: str | os.PathLike, *, window: tuple[int, int | None] | None = None,
          title: str | None = None) -> dict[str, Any]:
    """Draw the Einsum timeline of ``activity`` (cycles ``window``, default all) into ``out``
    (PNG). Returns what it drew (window, per-Einsum cycles, utilization)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a = activity.window(*window) if window else activity
    if not len(a.cycles):
        raise FuseMaxError(f"no dumped cycle in the window {window} (dumped: {activity.span})")
    rows = [n for arr_ in ("2d", "1d") for n, arr in a.arrays.items() if arr == arr_]
    rows += [n for n in a.arrays if n not in rows]
    lo, hi = a.span
    span = hi - lo
    width = float(min(24.0, max(9.0, span / 12.0)))
    fig, ax = plt.subplots(figsize=(width, 0.42 * len(rows) + 1.9))
    cmap = plt.get_cmap("tab10")
    n = len(rows)
    ylim = (-0.7, n - 0.3)
    for i, name in enumerate(rows):
        y = n - 1 - i
        runs = _runs(a.act[name] & a.busy, a.cycles)
        base = cmap(i % 10)
        light = tuple(0.55 * c + 0.45 for c in base[:3]) + (1.0,)
        for shade, alternate in ((base, runs[0::2]), (light, runs[1::2])):  # consecutive runs alternate
            if alternate:
                ax.broken_barh(alternate, (y - 0.38, 0.76), facecolors=shade, edgecolors="none")
    n2 = sum(1 for r in rows if a.arrays.get(r) == "2d")
    if 0 < n2 < n:
        ax.axhline(n - n2 - 0.5, color="0.3", lw=0.8)
    labels = [f"{r}" for r in rows]
    ax.set_yticks(range(n - 1, -1, -1), labels)
    groups = [(arr, n - 1 - first - (count - 1) / 2) for arr, first, count in
              (("2D array", 0, n2), ("1D array", n2, n - n2)) if count]
    side = ax.twinx()  # the arrays' names on the right
    side.set_ylim(*ylim)
    side.set_yticks([y for _, y in groups], [a for a, _ in groups], rotation=90, va="center",
                    fontsize=9, color="0.25")
    side.tick_params(length=0)
    idle = _runs(~a.busy, a.cycles)
    if idle:  # over the whole height (the limits are fixed below)
        ax.broken_barh(idle, (ylim[0], ylim[1] - ylim[0]), facecolors="0.93", edgecolors="none",
                       linewidth=0, zorder=0)
    ax.set_xlim(lo, hi)
    ax.set_ylim(*ylim)
    ax.set_xlabel("cycle (from the start pulse)")
    ax.grid(axis="x", color="0.85", lw=0.5)
    ax.set_axisbelow(True)
    info = a.summary()
    u = info["utilization"]
    head = title or "Einsums on the arrays"
    ax.set_title(f"{head}: cycles {lo}..{hi - 1}; 2D busy {100 * u['2d']:.1f} %, "
                 f"1D busy {100 * u['1d']:.1f} % (grey: not busy)", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    info["png"] = str(out)
    info["window"] = [lo, hi]
    return info


# ---------------------------------------------------------------------------------------------
# utilization against sequence length and array size


def model_utilization(config, shape, *, rows: int | None = None, cols: int | None = None,
                      causal: bool = False) -> dict[str, dict[str, float]]:
    """binding -> {"2d", "1d"} utilization of the model's RTL prediction (compute cycles, as
    :func:`fusemax.sw.perfmodel.predict_rtl`), optionally on another array size."""
    from fusemax.sw import perfmodel as pm

    hw = pm.rtl_hardware(config)
    if rows is not None:
        hw = hw.replace(rows=int(rows), cols=int(cols or rows))
    w = pm.Workload.of(shape)
    out = {}
    for b in pm.RTL_BINDINGS:
        r = pm.evaluate(b, w, hw, causal)
        cyc = r.compute_cycles
        out[b] = {"2d": r.busy_2d / cyc, "1d": r.busy_1d / cyc}
    return out


def default_lengths(config) -> list[int]:
    lo = max(config.rows, config.cols)
    return [n for n in (2 ** k for k in range(2, 21)) if lo <= n <= 1 << 16]


def default_arrays() -> list[int]:
    return [4, 8, 16, 32, 64, 128, 256]


def load_measured(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """Measured points from ``fusemax sim --report`` files: array, shape, utilization."""
    pts = []
    for p in paths:
        try:
            r = json.loads(Path(p).read_text())
        except (OSError, ValueError) as exc:
            raise FuseMaxError(f"cannot read the report {p}: {exc}") from None
        try:
            pts.append({"file": str(p), "config": r.get("config"), "rows": int(r["array"]["rows"]),
                        "cols": int(r["array"]["cols"]), "shape": dict(r["shape"]),
                        "causal": bool(r.get("causal")), "util_2d": float(r["utilization"]["2d"]),
                        "util_1d": float(r["utilization"]["1d"])})
        except (KeyError, TypeError, ValueError):
            raise FuseMaxError(f"{p} is not a `fusemax sim --report` file (needs array, shape, "
                               f"utilization)") from None
    return pts


def utilization_plot(config, shape, out: str | os.PathLike, *, lengths: list[int] | None = None,
                     arrays: list[int] | None = None, measured: list[dict[str, Any]] = (),
                     causal: bool = False) -> dict[str, Any]:
    """Two panels into ``out`` (PNG): utilization against the sequence length (keys M, with
    ``shape``'s B, H, P, E, F) on ``config``'s array, and against the array size N x N at
    ``shape``; the model's bindings as lines (2D solid, 1D dashed), ``measured`` points as
    markers: on the length panel when their array, P, E and F are the config's and the shape's,
    on the array panel when their M, P, E and F are the shape's. Returns the plotted numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fusemax.sw import perfmodel as pm

    w = pm.Workload.of(shape)
    lengths = sorted(set(lengths or default_lengths(config)))
    arrays = sorted(set(arrays or default_arrays()))
    by_len = {n: model_utilization(config, {**w.as_dict(), "M": n}, causal=causal) for n in lengths}
    by_arr = {n: model_utilization(config, w, rows=n, cols=n, causal=causal) for n in arrays}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    colors = {"fusemax": "tab:blue", "architecture": "tab:red"}
    for b in pm.RTL_BINDINGS:
        for arr, style in (("2d", "-"), ("1d", "--")):
            ax1.plot(lengths, [100 * by_len[n][b][arr] for n in lengths], style, color=colors.get(b),
                     marker="o", ms=3, label=f"model {b}, {arr.upper()}")
            ax2.plot(arrays, [100 * by_arr[n][b][arr] for n in arrays], style, color=colors.get(b),
                     marker="o", ms=3, label=f"model {b}, {arr.upper()}")
    def same(p, keys):
        return all(p["shape"].get(k, getattr(w, k)) == getattr(w, k) for k in keys)

    on_len = [p for p in measured if (p["rows"], p["cols"]) == (config.rows, config.cols)
              and same(p, "PEF")]
    on_arr = [p for p in measured if same(p, "MPEF") and p["rows"] == p["cols"]]
    for ax, pts, key in ((ax1, on_len, lambda p: p["shape"]["M"]), (ax2, on_arr, lambda p: p["rows"])):
        if pts:
            ax.plot([key(p) for p in pts], [100 * p["util_2d"] for p in pts], "k*", ms=10,
                    label="measured (RTL), 2D")
            ax.plot([key(p) for p in pts], [100 * p["util_1d"] for p in pts], "kx", ms=8,
                    label="measured (RTL), 1D")
    ax1.set_xscale("log", base=2)
    ax2.set_xscale("log", base=2)
    ax1.set_xlabel(f"sequence length: keys M (P = {w.P} queries)")
    ax2.set_xlabel("array size N (N x N PEs)")
    for ax in (ax1, ax2):
        ax.set_ylabel("utilization (%)")
        ax.set_ylim(0, 105)
        ax.grid(True, color="0.88")
        ax.legend(fontsize=7, loc="best")
    ax1.set_title(f"config {config.name} ({config.rows}x{config.cols}), B={w.B} H={w.H} P={w.P} "
                  f"E={w.E} F={w.F}" + (" causal" if causal else ""), fontsize=9)
    ax2.set_title(f"M = {w.M}, P = {w.P}, E={w.E} F={w.F}; numerics of {config.name}", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return {"png": str(out), "by_length": {str(n): v for n, v in by_len.items()},
            "by_array": {str(n): v for n, v in by_arr.items()},
            "measured": {"length_panel": len(on_len), "array_panel": len(on_arr)}}
