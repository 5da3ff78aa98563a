"""The block diagram of the generated accelerator (``docs/img/block_diagram.png``), drawn with
matplotlib from a configuration: array sizes, buffer depths, formats and latencies come from the
code (``python scripts/gen_docs.py`` redraws it; ``python -m fusemax.diagram --config medium``
draws another preset)."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_CONFIG = "small"


def facts(config) -> dict:
    """Everything the drawing prints, from the generator's own definitions."""
    from fusemax.hw.memport import FETCH_DEPTH, MemPort, kv_slot_lines
    from fusemax.hw.top import COUNTERS
    from fusemax.sw.compiler import buffer_bytes
    from fusemax.sw.schedule import KV_SLOTS, OPCODES, insns_per_line

    n = config.numerics
    fmt = {r: getattr(n, r).describe().split()[0] for r in ("q", "k", "v", "score", "exp", "rd", "rnv", "out")}
    return {
        "config": config.name, "rows": config.rows, "cols": config.cols,
        "max_e": config.max_e, "max_f": config.max_f, "lanes": config.mem_lanes,
        "addr_bits": config.mem_addr_width, "k": insns_per_line(config.mem_lanes),
        "fetch_depth": FETCH_DEPTH, "tag_depth": MemPort(config).tag_depth,
        "slots": KV_SLOTS, "slot_lines": kv_slot_lines(config), "fmt": fmt,
        "exp_cycles": n.exp_cycles, "div_cycles": n.div_cycles,
        "opcodes": list(OPCODES), "counters": len(COUNTERS), "bytes": buffer_bytes(config)["total"],
    }


def draw(config=None, out: str | Path = "docs/img/block_diagram.png") -> dict:
    """Draw the block diagram of ``config`` (a preset name or FuseMaxConfig) into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, Polygon, Rectangle

    from fusemax.config import FuseMaxConfig, load_config

    if not isinstance(config, FuseMaxConfig):
        config = load_config(config or DEFAULT_CONFIG)
    f = facts(config)
    R, C = f["rows"], f["cols"]
    fmt = f["fmt"]

    fig, ax = plt.subplots(figsize=(16, 10.4), dpi=110)
    ax.set_xlim(0, 20.8)
    ax.set_ylim(1.0, 13)
    ax.set_axis_off()
    col = {"mem": "#e8eef7", "port": "#dfe9f3", "seq": "#fdf1dc", "buf": "#e6f4ea",
           "pe": "#fbe3e1", "tree": "#efe3f7", "lane": "#fff4c2", "edge": "#444444"}

    def box(x0, y0, x1, y1, color, text=None, size=10, weight="normal", va="center", dy=0.0, **kw):
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor=color, edgecolor=col["edge"],
                               linewidth=1.0, **kw))
        if text:
            y = (y0 + y1) / 2 if va == "center" else y1 - 0.12
            ax.text((x0 + x1) / 2 + 0.0, y + dy, text, ha="center", va=va, fontsize=size,
                    weight=weight, linespacing=1.25)

    def arrow(x0, y0, x1, y1, text=None, both=False, color="#333333", tx=None, ty=None, size=8.5,
              ha="center", rad=0.0, lw=1.4):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="<|-|>" if both else "-|>",
                                     mutation_scale=11, color=color, linewidth=lw,
                                     connectionstyle=f"arc3,rad={rad}"))
        if text:
            ax.text(tx if tx is not None else (x0 + x1) / 2, ty if ty is not None else (y0 + y1) / 2 + 0.13,
                    text, ha=ha, va="bottom", fontsize=size, color=color)

    ax.text(10, 12.75, f"FuseMax accelerator (fusemax_top), config '{f['config']}': {R}×{C} 2D array, "
            f"{C}-PE 1D array, max_e = {f['max_e']}, max_f = {f['max_f']}, "
            f"{f['bytes']:,} bytes on chip", ha="center", va="center", fontsize=13, weight="bold")

    # ---- external memory and memory port ----
    box(0.2, 1.2, 2.6, 11.4, col["mem"])
    ax.text(1.4, 11.15, "external memory", ha="center", va="top", fontsize=10, weight="bold")
    ax.text(1.4, 10.6, f"lines of {f['lanes']} × 16 bit\n2^{f['addr_bits']} lines\n(sim: ext_mem.sv,\n$readmemh image)",
            ha="center", va="top", fontsize=8.5)
    bands = [("schedule", 8.2, 9.0), ("Q blocks\n(E lines each)", 6.6, 8.0),
             ("K/V chunks\n(E + F lines each)", 4.0, 6.4), ("output blocks\n(F lines each)", 2.4, 3.8)]
    for label, y0, y1 in bands:
        box(0.45, y0, 2.35, y1, "white", label, size=8.5)
    ax.text(1.4, 1.55, "per (b, h)", ha="center", fontsize=8, style="italic")

    box(3.2, 1.2, 5.3, 11.4, col["port"])
    ax.text(4.25, 11.15, "memory port", ha="center", va="top", fontsize=10.5, weight="bold")
    ax.text(4.25, 10.6, "1 request / cycle\nin-order responses\n\npriority:\nstore >\nQ load >\nfetch >\nK/V load\n\n"
            f"read-tag FIFO:\n{f['tag_depth']} entries", ha="center", va="top", fontsize=8.5)
    arrow(2.6, 6.6, 3.2, 6.6, both=True)
    ax.text(2.9, 6.75, "req /\nrsp", ha="center", va="bottom", fontsize=7.5)

    # ---- sequencer ----
    box(6.0, 10.55, 20.6, 12.2, col["seq"])
    ax.text(6.2, 12.0, "sequencer", ha="left", va="top", fontsize=10.5, weight="bold")
    ax.text(6.2, 11.6, f"instruction prefetch: {f['fetch_depth']} lines × {f['k']} instructions  →  decode "
            + " ".join(f["opcodes"]) + "\n"
            "tile engine: A (BQK, E cycles) · X (score, LM, RM_new) · Z (exps: SLN, PRM, "
            f"{f['exp_cycles']} cycles) · B (SLNV, F cycles);  epoch = A of tile t + B of tile t − 1\n"
            f"{f['counters']} counters (csr_addr / csr_data) · 8 sticky error flags · start / busy / done",
            ha="left", va="top", fontsize=8.8, linespacing=1.45)
    arrow(5.3, 11.2, 6.0, 11.2, "fetch", tx=5.65)

    # ---- buffers ----
    gx0, gx1, gy0, gy1 = 9.2, 16.2, 4.7, 8.9  # the 2D array
    box(gx0, 9.25, gx1, 10.1, col["buf"],
        f"Q buffer: {f['max_e']} lines × {C} Q' values ({fmt['q']})\nthe resident query block", size=9)
    box(6.0, gy0, 8.4, gy1 + 0.1, col["buf"])
    ax.text(7.2, gy1 - 0.05, f"K/V buffer\n{f['slots']} slots × {f['slot_lines']} lines\n"
            f"({f['max_e']} K + {f['max_f']} V)\n× {R} values", ha="center", va="top", fontsize=8.6)
    for s in range(f["slots"]):
        y0 = gy0 + 0.2 + s * 0.75
        box(6.25, y0, 8.15, y0 + 0.6, "white", f"slot {s}", size=8)
    arrow(5.3, 9.7, gx0, 9.7, "Q lines", tx=6.5, ty=9.75)
    arrow(5.3, 6.0, 6.0, 6.0, "K/V", tx=5.65)
    arrow(6.4, 3.2, 5.3, 3.2, color="#a0522d")  # stores
    ax.text(5.85, 3.05, "store\nAV lines", ha="center", va="top", fontsize=7.5, color="#a0522d")

    # ---- 2D array ----
    pw, ph = (gx1 - gx0) / C, (gy1 - gy0) / R
    for r in range(R):
        for c in range(C):
            x, y = gx0 + c * pw, gy1 - (r + 1) * ph
            ax.add_patch(Rectangle((x + 0.08 * pw, y + 0.1 * ph), 0.84 * pw, 0.8 * ph,
                                   facecolor=col["pe"], edgecolor="#9c4a44", linewidth=0.8))
    for c in range(C):  # Q broadcast down each column
        x = gx0 + (c + 0.5) * pw
        ax.plot([x, x], [9.25, gy0 + 0.1 * ph], color="#2e7d32", linewidth=0.6, alpha=0.6, zorder=0)
    for r in range(R):  # K/V broadcast along each row
        y = gy1 - (r + 0.5) * ph
        ax.plot([8.4, gx1 - 0.08 * pw], [y, y], color="#2e7d32", linewidth=0.6, alpha=0.6, zorder=0)
    ax.text(8.8, gy1 + 0.08, "K, V rows", ha="center", va="bottom", fontsize=7.5, color="#2e7d32")
    ax.text(gx1 + 0.1, gy1 + 0.12, f"2D array: {R} × {C} PEs\nrow r: key m0 = r\ncolumn c: query p0 = c",
            ha="left", va="bottom", fontsize=8.8, weight="bold")
    arrow(12.9, 10.55, 12.9, 10.1, color="#b26a00")
    ax.text(13.0, 10.27, "control", ha="left", va="center", fontsize=7.5, color="#b26a00")

    # PE detail
    px0, px1, py0, py1 = 17.3, 20.6, 5.6, 8.4
    box(px0, py0, px1, py1, col["pe"])
    ax.text((px0 + px1) / 2, py1 - 0.12, "PE(r, c)", ha="center", va="top", fontsize=9.5, weight="bold")
    ax.text(px0 + 0.12, py1 - 0.5,
            "MAC, shared:\n  BQK = Q'·K  (E cycles)\n  SLNV = SLN·V[f]  (F cycles)\n"
            f"Requant → score {fmt['score']}\nSub + Exp2 → SLN {fmt['exp']}\nvalid bit (mask: m < M, causal)",
            ha="left", va="top", fontsize=8.2, linespacing=1.35)
    ax.plot([gx1 - 0.1 * pw, px0], [gy1 - 0.1 * ph, py1], color="#9c4a44", linestyle=":", linewidth=1)

    # ---- column trees ----
    ty0, ty1 = 3.55, 4.55
    for c in range(C):
        x0 = gx0 + c * pw
        ax.add_patch(Polygon([(x0 + 0.1 * pw, ty1), (x0 + 0.9 * pw, ty1), (x0 + 0.5 * pw, ty0)],
                             closed=True, facecolor=col["tree"], edgecolor="#6a3d9a", linewidth=0.8))
    ax.text(gx0 - 0.05, (ty0 + ty1) / 2, "column trees\nLM max, SLD +,\nSLNV + (exact)",
            ha="right", va="center", fontsize=8.2)

    # ---- 1D array ----
    ly0, ly1 = 1.7, 3.25
    for c in range(C):
        x0 = gx0 + c * pw
        box(x0 + 0.06 * pw, ly0, x0 + 0.94 * pw, ly1, col["lane"])
        ax.text(x0 + 0.5 * pw, (ly0 + ly1) / 2, f"lane\n{c}", ha="center", va="center", fontsize=7.5)
    ax.text(gx0 - 0.05, (ly0 + ly1) / 2, f"1D array\n{C} PEs: running\nstate of query c",
            ha="right", va="center", fontsize=8.2, weight="bold")
    xc = gx0 + (C - 0.5) * pw
    arrow(xc + 0.28 * pw, ly1, xc + 0.28 * pw, gy0 + 0.1 * ph, color="#c62828", lw=1.2)
    ax.text(gx1 + 0.08, (ty0 + ty1) / 2, "RM_new up\ncolumn c", ha="left", va="center",
            fontsize=7.5, color="#c62828")
    ax.text((gx0 + gx1) / 2, 1.25, f"outputs AV written back over RNV[f], stored one line per f",
            ha="center", va="center", fontsize=8, color="#a0522d")
    ax.plot([gx0, 6.4], [ly0 + 0.3, ly0 + 0.3], color="#a0522d", linewidth=1.3)
    ax.plot([6.4, 6.4], [ly0 + 0.3, 3.2], color="#a0522d", linewidth=1.3)

    # 1D PE detail
    qx0, qx1, qy0, qy1 = 17.3, 20.6, 1.3, 4.6
    box(qx0, qy0, qx1, qy1, col["lane"])
    ax.text((qx0 + qx1) / 2, qy1 - 0.12, "1D PE (lane c)", ha="center", va="top", fontsize=9.5, weight="bold")
    ax.text(qx0 + 0.12, qy1 - 0.5,
            f"RM: MaxValid (running max)\nPRM: Sub + Exp2 ({f['exp_cycles']} cyc)\n"
            f"RD: Rescale + Requant\n   {fmt['rd']}\nRNV[f]: register file\n   {f['max_f']} × {fmt['rnv']}\n"
            f"AV: pipelined divider\n   {f['div_cycles']} cycles → {fmt['out']}",
            ha="left", va="top", fontsize=8.2, linespacing=1.35)
    ax.plot([gx1 - 0.06 * pw, qx0], [ly0 + 0.4, ly0 + 0.4], color="#8d6e00", linestyle=":", linewidth=1)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return {"config": config.name, "out": str(out), **{k: f[k] for k in ("rows", "cols")}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fusemax.diagram", description=__doc__,
                                 epilog="example:\n  python -m fusemax.diagram --config medium -o /tmp/medium.png",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=DEFAULT_CONFIG, metavar="NAME|FILE.json")
    ap.add_argument("-o", "--out", default="docs/img/block_diagram.png", metavar="PNG")
    args = ap.parse_args(argv)
    info = draw(args.config, args.out)
    print(f"wrote {info['out']} (config {info['config']}, {info['rows']}×{info['cols']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
