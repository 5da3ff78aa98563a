"""``fusemax sim``: run a cascade on the generated RTL under Verilator + cocotb and compare."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from fusemax.cli import add_command, emit
from fusemax.config import PRESETS, load_config
from fusemax.sw.compiler import BINDINGS
from fusemax.errors import FuseMaxError


def register(subparsers) -> None:
    p = add_command(
        subparsers, "sim",
        help="simulate a cascade on the generated RTL (Verilator + cocotb) and compare",
        description="Compile the cascade for the inputs' shape, build the configuration's RTL "
        "with Verilator (once per configuration, cached under build/verilator/), run it under "
        "cocotb, and compare the output bit for bit with the golden model and against a float64 "
        "reference. Inputs: an .npz with Q (B,H,P,E), K (B,H,M,E), V (B,H,M,F) (B and H may be "
        "absent). Output: an .npz with O and O_codes (the raw output integers). The report "
        "(--report) holds cycles, per-array busy cycles and utilization, per-Einsum cycles, "
        "memory stalls, on-chip buffer sizes, error flags, the bit-exact verdict, the error "
        "against float64 and the wall times. Exit status 1 if the RTL is not bit-exact or its "
        "flags differ from the golden's. Attention variants the RTL runs with the host's help "
        "(docs/variants.md): attention-softmax1, attention-kbias, attention-kvbias (the bias "
        "token prepended as key 0; the inputs .npz also holds k_bias (E,) or (B,H,E) and, for "
        "kvbias, v_bias (F,) or (B,H,F); with --causal, P <= M + 1), attention-local (--window "
        "W: the sliding window's tiles and the WINDOW mask), attention-routing (--clusters C "
        "[--cluster-size w]: the host routes with k-means centroids, the .npz's optional means "
        "(C,E) or (H,C,E), gathers each cluster into contiguous rows, the RTL runs the diagonal "
        "tiles, the host scatters back; w must be a multiple of rows and cols), sigmoid-norm and "
        "sigmoid-nonorm (sigmoid scores, no host part; a config with the sigmoid unit, e.g. "
        "tiny-sigmoid), attention-entropy (attention and the entropy H of every query, no host "
        "part; a config with the entropy output, e.g. tiny-entropy; the output .npz also holds "
        "H (B,H,P) in nats and H_codes, and H is checked bit for bit too), flowformer-causal (causal Flow-Attention on the flow engine, token by "
        "token; a config with the flow unit, e.g. tiny-flow; P = M; --clamp 1, 5 or 10; no "
        "scale, no mask: causal by construction). For them the "
        "RTL is compared with the variant's bit-exact golden, O is the mechanism's output "
        "(scattered back for routing), O_codes the RTL's codes in its own layout (for routing "
        "(B,H,C*w,F), with index_q and index_k (B,H,C,w), the tokens gathered), and the error "
        "is measured against the variant's float64 reference. "
        f"Configs: {', '.join(PRESETS)} or a config .json file.",
        example="fusemax sim attention-1pass --config small --inputs in.npz --out out.npz "
                "--report report.json\n  "
                "fusemax sim attention-3pass --config tiny --inputs in.npz --out out.npz --native\n  "
                "fusemax sim attention-local --window 16 --config tiny --inputs in.npz --out out.npz --native\n  "
                "fusemax sim attention-routing --clusters 4 --config tiny --inputs in.npz --out out.npz --native\n  "
                "fusemax sim sigmoid-norm --causal --config tiny-sigmoid --inputs in.npz --out out.npz --native\n  "
                "fusemax sim attention-entropy --causal --config tiny-entropy --inputs in.npz --out out.npz --native\n  "
                "fusemax sim flowformer-causal --clamp 5 --config tiny-flow --inputs in.npz --out out.npz --native\n  "
                "fusemax sim attention-1pass --config tiny --inputs in.npz --out out.npz "
                "--waves build/waves/run --waves-window 0:400 --timeline build/waves/run/timeline.png",
    )
    p.add_argument("cascade", metavar="CASCADE",
                   help="cascade name: attention-1pass, attention-3pass (the 3-pass baseline), or "
                        "a variant the RTL runs with the host's "
                        "help: attention-softmax1, attention-kbias, attention-kvbias, "
                        "attention-local, attention-routing; sigmoid-norm, sigmoid-nonorm (a "
                        "config with the sigmoid unit); attention-entropy (a config with the "
                        "entropy output); flowformer-causal (a config with the flow unit)")
    p.add_argument("--config", required=True, metavar="NAME|FILE.json")
    p.add_argument("--inputs", required=True, metavar="IN.npz")
    p.add_argument("--out", required=True, metavar="OUT.npz")
    p.add_argument("--report", metavar="REPORT.json", help="write the full report as JSON")
    p.add_argument("--waves", metavar="DIR",
                   help="trace into DIR: dump.fst (dump.vcd without lz4/zlib), waves.gtkw (a "
                        "GTKWave layout made from the dump's hierarchy) and its filter files; "
                        "open the last one with scripts/waves.sh")
    p.add_argument("--waves-window", metavar="START:END", default=None,
                   help="trace only cycles [START, END) counted from the start pulse "
                        "(100:500, 100: or :500)")
    p.add_argument("--waves-scope", metavar="PATTERN[,...]", default=None,
                   help="trace only these instances (glob over instance paths below the DUT, e.g. "
                        "seq, 'array1d.lane_c*', 'array2d.pe_r0_*'; * within a level, ** across; "
                        "PATTERN:LEVELS for fewer levels), plus the overview the layout and "
                        "timeline need")
    p.add_argument("--waves-depth", metavar="N", type=int, default=None,
                   help="trace N levels below fusemax_sim (1: clock, control, memory bus; 3: the "
                        "blocks' own signals; ...), plus the overview")
    p.add_argument("--timeline", metavar="PNG", default=None,
                   help="Gantt chart of the Einsums on the 2D and 1D arrays over the cycles, from "
                        "the dump (without --waves: a minimal dump in a temporary directory)")
    p.add_argument("--timeline-window", metavar="START:END", default=None,
                   help="cycles the timeline shows (default: all dumped)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed of the simulation (cocotb) run")
    p.add_argument("--causal", action="store_true",
                   help="causal mask aligned at the end of the keys (query p sees key m <= p + M - P)")
    p.add_argument("--scale", type=float, default=None, help="softmax scale (default 1/sqrt(E))")
    p.add_argument("--binding", choices=BINDINGS, default="fusemax",
                   help="fusemax: tiles overlap (the paper's binding, default); architecture: every "
                        "tile runs alone (the +Architecture ablation), for comparison")
    p.add_argument("--mem-ready", type=int, default=100, metavar="PCT",
                   help="memory accepts a request in about PCT %% of the cycles (default 100)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="kill the simulator after this many seconds")
    p.add_argument("--window", type=int, default=None, metavar="W",
                   help="attention-local: query p sees the W keys p + M - P - W < m <= p + M - P")
    p.add_argument("--clusters", type=int, default=None, metavar="C",
                   help="attention-routing: number of clusters (default: the number of centroids "
                        "in the inputs' means)")
    p.add_argument("--cluster-size", type=int, default=None, metavar="w",
                   help="attention-routing: queries and keys per cluster (default min(P, M) // C; "
                        "a multiple of the array's rows and cols)")
    p.add_argument("--kmeans-seed", type=int, default=0, metavar="N",
                   help="attention-routing without means in the inputs: seed of the k-means "
                        "initialisation (Kmeans.init: random tokens, then 10 k-means steps)")
    p.add_argument("--clamp", type=float, default=None, metavar="C",
                   help="flowformer-causal: bound of the conserved source, one of Flowformer's "
                        "per-task bounds 1 (core Flow_Attention, default), 5 (NLP), 10 (RL)")
    p.add_argument("--native", action="store_true",
                   help="run under a Verilator C++ harness instead of cocotb (no Python in the "
                        "simulation loop; same results and report; no --waves)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_sim)


def cmd_sim(args: argparse.Namespace) -> int:
    from fusemax.sim.attention import report_json, simulate, summary_text
    from fusemax.sw.attention_io import load_attention_inputs, load_npz, save_attention_output
    from fusemax.sw.compiler import check_cascade_mappable
    from fusemax.sw.rtl_variants import RTL_VARIANTS, VARIANT_OPTIONS

    cascade = args.cascade if args.cascade in RTL_VARIANTS else check_cascade_mappable(args.cascade)
    config = load_config(args.config)
    q, k, v, had_batch = load_attention_inputs(args.inputs)
    options = {"window": args.window, "clusters": args.clusters, "cluster_size": args.cluster_size,
               "clamp": args.clamp}
    if cascade in RTL_VARIANTS:  # the variant's arrays from the inputs file
        data = load_npz(args.inputs)
        for name in ("k_bias", "v_bias", "means"):
            if cascade in VARIANT_OPTIONS[name] and name in data:
                options[name] = data[name]
        options["kmeans_seed"] = args.kmeans_seed
    if args.scale is not None and not (args.scale == args.scale and abs(args.scale) < float("inf")):
        raise FuseMaxError(f"--scale must be a finite number, got {args.scale}")

    from rich.console import Console

    console = Console(stderr=True, log_path=False)
    waves = _wave_options(args)
    temporary = waves is not None and not waves.record  # --timeline alone: a dump only for it
    try:
        with console.status(f"fusemax sim: {config.name}", spinner="dots") as status:
            def progress(msg: str) -> None:
                status.update(f"fusemax sim ({config.name}): {msg}")
                console.log(msg)

            report = simulate(config, q, k, v, scale=args.scale, causal=args.causal, waves=waves,
                              seed=args.seed, mem_ready_pct=args.mem_ready, progress=progress,
                              timeout_s=args.timeout, mode="native" if args.native else "cocotb",
                              binding=args.binding, cascade=cascade, **options)
        codes = report["output_codes"]
        if codes is not None:
            extra = {"O_codes": codes}
            for name in ("index_q", "index_k"):
                if name in report.get("variant_arrays", {}):
                    extra[name] = report["variant_arrays"][name]
            extra.update(report.get("extra_arrays", {}))  # attention-entropy: H, H_codes
            save_attention_output(args.out, report["output"], had_batch,
                                  extra={n: a if had_batch else a[0, 0] for n, a in extra.items()})
        data = report_json(report)
        data["out"] = args.out if codes is not None else None
        extra = _after_waves(args, report, data, waves)
    finally:  # also after a failure, a timeout or ^C: no temporary dump left behind
        if temporary:
            shutil.rmtree(waves.dir, ignore_errors=True)
    if temporary:
        data["waves"] = None
        data.pop("waves_info", None)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(json.dumps(data, indent=2) + "\n")
    emit(args, data, summary_text(report) + extra + (f"\nwrote {args.out}" if codes is not None else ""))
    ok = report["bit_exact"] and report["flags_match"] and not report["timeout"]
    return 0 if ok else 1


def _wave_options(args: argparse.Namespace):
    """WaveOptions from --waves* / --timeline (None: no trace)."""
    from fusemax.sim.waves import WaveOptions, parse_window

    limits = [o for o, v in (("--waves-window", args.waves_window), ("--waves-scope", args.waves_scope),
                             ("--waves-depth", args.waves_depth)) if v is not None]
    if limits and not (args.waves or args.timeline):
        raise FuseMaxError(f"{', '.join(limits)} need --waves DIR (or --timeline PNG)")
    if args.timeline_window is not None and not args.timeline:
        raise FuseMaxError("--timeline-window needs --timeline PNG")
    parse_window(args.timeline_window)  # check it before the run
    if not (args.waves or args.timeline):
        return None
    if args.native:
        raise FuseMaxError("--waves and --timeline need the cocotb run (not --native)")
    if args.waves:
        out, depth = Path(args.waves), args.waves_depth
    else:  # --timeline alone: the smallest dump that has the activity signals, not recorded as the last run
        import tempfile

        out, depth = Path(tempfile.mkdtemp(prefix="fusemax-timeline-")), args.waves_depth or 1
    return WaveOptions(out, window=parse_window(args.waves_window), scopes=args.waves_scope or "",
                       depth=depth, record=bool(args.waves))


def _after_waves(args: argparse.Namespace, report: dict, data: dict, waves) -> str:
    """The timeline (--timeline) and the text about the waves."""
    from fusemax.sim.waves import parse_window

    text = ""
    info = report["waves_info"]
    if args.waves and info:
        text += (f"\nwaves: {info['dump']} ({info['bytes'] / 1e6:.2f} MB), layout {info['gtkw']}"
                 f"\n  open: scripts/waves.sh   (or: {info['open']})")
        if info["format"] != "fst":
            text += f"\n  {info['format_note']}"
    elif args.waves:
        text += (f"\nwaves: nothing was dumped into {args.waves} (does --waves-window start "
                 f"after the run's {report['cycles']} cycles?)")
    if args.timeline:
        if not report["waves"]:
            raise FuseMaxError("no dump to draw the timeline from (the run produced none)")
        from fusemax.sim.timeline import gantt, read_activity

        # the Hierarchy waves.finish read for the layout, else the dump's path
        act = read_activity(getattr(info, "hierarchy", None) or report["waves"])
        tl = gantt(act, args.timeline, window=parse_window(args.timeline_window),
                   title=f"{report['config']} ({report['array']['rows']}x{report['array']['cols']})")
        full = waves.window is None
        diff = act.counter_diff(report["einsum_cycles"]) if full else None
        tl["matches_counters"] = not diff if full else None
        data["timeline"] = tl
        text += f"\ntimeline: wrote {args.timeline} (cycles {tl['window'][0]}..{tl['window'][1] - 1})"
        if full and not diff:
            text += "; per-Einsum cycles in the dump match the RTL counters"
        elif full:
            in_dump = {k: d for k, (d, _) in diff.items()}
            counters = {k: c for k, (_, c) in diff.items()}
            text += (f"; WARNING: per-Einsum cycles in the dump {in_dump} differ from the RTL "
                     f"counters {counters}")
    return text
