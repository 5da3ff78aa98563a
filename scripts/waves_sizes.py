"""Dump sizes with and without the waveform limits (README, "Waves").

Runs one long attention workload on `tiny` (B=1 H=1 M=4096 P=8 E=F=8) four times with
`--waves`: the whole run, a window of 1 000 cycles, depth 1, and both; prints the cycles,
the dump file and its size for each.

    .venv/bin/python scripts/waves_sizes.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fusemax.config import preset  # noqa: E402
from fusemax.sim.attention import simulate  # noqa: E402
from fusemax.sim.waves import WaveOptions  # noqa: E402


def main() -> int:
    cfg = preset("tiny")
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 1, n, 8)) for n in (8, 4096, 4096))
    cases = {"full run": {}, "window 20000:21000": {"window": (20000, 21000)},
             "depth 1": {"depth": 1}, "window + depth 1": {"window": (20000, 21000), "depth": 1}}
    with tempfile.TemporaryDirectory(prefix="fusemax-waves-sizes-") as tmp:
        for label, opts in cases.items():
            wdir = Path(tmp) / label.replace(" ", "_").replace(":", "-").replace("+", "")
            rep = simulate(cfg, q, k, v, waves=WaveOptions(wdir, record=False, **opts))
            dumps = [p for p in wdir.iterdir() if p.name.startswith("dump.")]
            size = sum(p.stat().st_size for p in dumps)
            print(f"{label:20s} {rep['cycles']:7d} cycles  {', '.join(p.name for p in dumps):10s} "
                  f"{size / 1e6:8.2f} MB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
