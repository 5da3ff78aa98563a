#!/usr/bin/env python3
"""Cost of the standalone log2 unit (``fusemax.hw.arith.log2.Log2``, the entropy's L = log2 RD):
Yosys cells, flip-flops and multipliers through the flow of docs/synthesis.md
(``fusemax.hw.synth.synthesize_component``), with its latency and formats, for the RD format of
the fx16 and int8 numerics.

    python scripts/log2_cost.py           # one Yosys run per distinct unit (~5 s)
    python scripts/log2_cost.py --json    # machine-readable

fx16 and int8 share the RD format (s36.15) and the rounding, so they build the same circuit:
it is synthesized once and reported for both. One Yosys run at a time.
"""

from __future__ import annotations

import argparse
import json
import sys

from fusemax.config import preset
from fusemax.hw.arith.log2 import Log2
from fusemax.hw.synth import synthesize_component
from fusemax.sw.golden_variants import LOG2_FRAC


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    def say(msg):
        print(f"[log2-cost] {msg}", file=sys.stderr, flush=True)

    rows = []
    for name in ("tiny", "tiny-int8"):
        nc = preset(name).numerics
        # what the circuit depends on: equal keys, equal Verilog
        key = (*Log2.formats_for(nc.rd.width, nc.rd.frac, LOG2_FRAC, nc.rounding), nc.rounding)
        same = next((r for r in rows if r["key"] == key), None)
        if same is None:
            unit = Log2(nc)
            syn = synthesize_component(unit, "log2", progress=say)  # one run at a time
            t = syn["total"]
            row = {"x": unit.x_format.describe(), "out": unit.out.describe(),
                   "horner_register_bits": unit.h_width, "latency": unit.LATENCY,
                   "cells": t["cells"], "flip_flops": t["flip_flops"],
                   "coarse_cells": t["coarse_cells"], "multipliers": t["multipliers"],
                   "multiplier_widths": syn["multiplier_widths"],
                   # the flow reports a signed multiply's operands sign-extended to the
                   # product's width; Yosys' wreduce (in synth) cuts them back to these
                   "multiplier_operands": f"h s{unit.h_width} x u u16",
                   "same_circuit_as": None,
                   "yosys_s": syn["time_s"]["yosys"]}
        else:
            row = {**same, "same_circuit_as": same["preset"]}
        rows.append({**row, "key": key, "preset": name, "numerics": nc.name,
                     "rounding": nc.rounding})
    for r in rows:
        del r["key"]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print("| numerics | x (RD) | y | latency | cells | FFs | multipliers |")
    print("|---|---|---|--:|--:|--:|---|")
    for r in rows:
        same = f" (= `{r['same_circuit_as']}`)" if r["same_circuit_as"] else ""
        print(f"| {r['numerics']} (`{r['preset']}`, {r['rounding']}){same} | {r['x']} | "
              f"{r['out']} | {r['latency']} | {r['cells']:,} | {r['flip_flops']} | "
              f"{r['multipliers']} ({r['multiplier_operands']}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
