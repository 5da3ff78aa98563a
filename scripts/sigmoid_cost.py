#!/usr/bin/env python3
"""Cost of the standalone sigmoid unit (docs/variants.md, "Sigmoid unit (standalone)"): Yosys
cells of ``Sigmoid`` and of ``Exp2`` alone through the flow of docs/synthesis.md
(``fusemax.hw.synth.synthesize_component``), next to the 2D PE, for fx16 and int8 numerics.

    python scripts/sigmoid_cost.py            # Sigmoid and Exp2 alone (~1 min: 4 Yosys runs)
    python scripts/sigmoid_cost.py --pe       # also the 2D PE (fusemax synth --top pe_r0_c0)
    python scripts/sigmoid_cost.py --json     # machine-readable

One Yosys run at a time. The 2D PE is synthesized from the whole design's Verilog (cached under
build/verilog), as ``fusemax synth --config NAME --top pe_r0_c0``; without ``--pe`` the figures
of docs/synthesis.md are used (5,407 cells fx16, 3,910 int8).
"""

from __future__ import annotations

import argparse
import json
import sys

from fusemax.config import preset
from fusemax.hw.arith import Exp2
from fusemax.hw.arith.sigmoid import Sigmoid
from fusemax.hw.synth import synthesize, synthesize_component

#: 2D PE cells of docs/synthesis.md (whole-design runs, commit c1f1df6).
PE_DOCS = {"tiny": 5407, "tiny-int8": 3910}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pe", action="store_true", help="also synthesize the 2D PE (pe_r0_c0)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    def say(msg):
        print(f"[sigmoid-cost] {msg}", file=sys.stderr, flush=True)

    rows = []
    for name in ("tiny", "tiny-int8"):
        cfg = preset(name)
        nc = cfg.numerics
        unit = Sigmoid(nc)
        sig = synthesize_component(unit, "sigmoid", progress=say)
        exp = synthesize_component(Exp2(nc), "exp2", progress=say)
        if args.pe:
            r = synthesize(cfg, top="pe_r0_c0", progress=say)
            pe, pe_src = r["total"]["cells"], "synthesized (--top pe_r0_c0)"
        else:
            pe, pe_src = PE_DOCS[name], "docs/synthesis.md"
        s_cells, e_cells = sig["total"]["cells"], exp["total"]["cells"]
        extra = s_cells - sig["parts"]["exp"]  # what a PE that already has Exp2 adds
        rows.append({
            "preset": name, "numerics": nc.name,
            "sigmoid": {"cells": s_cells, "flip_flops": sig["total"]["flip_flops"],
                        "multipliers": sig["total"]["multipliers"], "parts": sig["parts"],
                        "latency": unit.LATENCY},
            "exp2": {"cells": e_cells, "flip_flops": exp["total"]["flip_flops"],
                     "multipliers": exp["total"]["multipliers"], "latency": nc.exp_cycles},
            "reciprocal_cells": extra,
            "pe2d": {"cells": pe, "source": pe_src},
            "pe_increase": round(extra / pe, 4),
            "sigmoid_over_exp2": round(s_cells / e_cells, 3),
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| numerics | Sigmoid cells (FFs) | of which Exp2 | reciprocal + control | Exp2 alone "
          "(FFs) | 2D PE | PE + sigmoid | per-PE increase | latency (Exp2 → Sigmoid) |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|---|")
    for r in rows:
        s, e = r["sigmoid"], r["exp2"]
        print(f"| {r['numerics']} (`{r['preset']}`) | {s['cells']:,} ({s['flip_flops']}) | "
              f"{s['parts']['exp']:,} | {r['reciprocal_cells']:,} | {e['cells']:,} ({e['flip_flops']}) | "
              f"{r['pe2d']['cells']:,} | {r['pe2d']['cells'] + r['reciprocal_cells']:,} | "
              f"+{100 * r['pe_increase']:.1f} % | {e['latency']} → {s['latency']} cycles |")
    print(f"\n2D PE figures: {rows[0]['pe2d']['source']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
