"""``fusemax golden``: the bit-exact hardware result of a cascade, and its error against float64."""

from __future__ import annotations

import argparse
import time

from fusemax.cli import add_command, emit
from fusemax.config import PRESETS, load_config
from fusemax.errors import FuseMaxError
from fusemax.sw.golden import causal_mask, error_stats, golden_for, reference_attention


def register(subparsers) -> None:
    p = add_command(
        subparsers, "golden",
        help="bit-exact NumPy model of the hardware (what the RTL must output)",
        description="Run the bit-exact golden model of a cascade in a configuration's number "
        "format. Inputs: an .npz with Q (B,H,P,E), K (B,H,M,E), V (B,H,M,F) (B and H may be "
        "absent). Output: an .npz with O (same leading dims as the inputs) and O_codes (the raw "
        "output integers the RTL writes). Also prints the error against a float64 reference "
        "(direct softmax(scale*Q*K^T)*V) and the per-role saturation counts. "
        f"Configs: {', '.join(PRESETS)} or a config .json file.",
        example="fusemax golden --config small --inputs in.npz --out out.npz --json",
    )
    p.add_argument("--config", required=True, metavar="NAME|FILE.json",
                   help="configuration preset or JSON file")
    p.add_argument("--inputs", required=True, metavar="IN.npz")
    p.add_argument("--out", required=True, metavar="OUT.npz")
    p.add_argument("--cascade", default="attention-1pass", metavar="NAME",
                   help="cascade to model (default attention-1pass)")
    p.add_argument("--scale", type=float, default=None,
                   help="softmax scale folded into Q (default 1/sqrt(E))")
    p.add_argument("--causal", action="store_true",
                   help="causal mask aligned at the end of the key sequence (as with a KV cache): "
                   "query p sees key m iff m <= p + M - P")
    p.add_argument("--intermediates", metavar="FILE.npz",
                   help="also write every chunk's integer intermediates (BQK, LM, RM, SLN, SLD, "
                   "SLNV, PRM, SPD, RD, SPNV, RNV, valid flags), stacked as (chunk, [B, H,] P, ...)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=cmd_golden)


def cmd_golden(args: argparse.Namespace) -> int:
    from fusemax.sw.attention_io import load_attention_inputs, save_attention_output

    fn = golden_for(args.cascade)
    config = load_config(args.config)
    q, k, v, had_batch = load_attention_inputs(args.inputs)
    if args.scale is not None and not (args.scale == args.scale and abs(args.scale) < float("inf")):
        raise FuseMaxError(f"--scale must be a finite number, got {args.scale}")
    mask = causal_mask(q.shape[2], k.shape[2]) if args.causal else None
    t0 = time.perf_counter()
    result = fn(q, k, v, config, scale=args.scale, mask=mask, trace=bool(args.intermediates))
    seconds = time.perf_counter() - t0
    save_attention_output(args.out, result.out, had_batch,
                          extra={"O_codes": result.out_codes if had_batch else result.out_codes[0, 0]})
    if args.intermediates:
        import numpy as np

        arrays = result.trace_arrays()
        if not had_batch:
            arrays = {n: (a[:, 0, 0] if a.ndim >= 3 else a) for n, a in arrays.items()}
        np.savez(args.intermediates, **arrays)
    ref = reference_attention(q, k, v, scale=result.scale, mask=mask)
    err = error_stats(result.out, ref)
    B, H, P, E = q.shape
    M, F = k.shape[2], v.shape[3]
    summary = {
        "cascade": args.cascade,
        "config": config.name,
        "config_digest": config.digest(),
        "shape": {"B": B, "H": H, "P": P, "M": M, "E": E, "F": F},
        "scale": result.scale,
        "causal": bool(args.causal),
        "error": err,
        "saturation": result.saturation,
        "div_by_zero": result.div_by_zero,
        "seconds": round(seconds, 3),
        "out": args.out,
        "intermediates": args.intermediates,
    }
    sat = ", ".join(f"{r} {n}" for r, n in result.saturation.items() if n) or "none"
    text = (f"{args.cascade} on {config.name} (B={B} H={H} P={P} M={M} E={E} F={F}"
            f"{', causal' if args.causal else ''}): wrote O "
            f"{tuple(result.out.shape if had_batch else result.out.shape[2:])} to {args.out}\n"
            f"error vs float64: max abs {err['max_abs']:.3g}, RMS {err['rms']:.3g}, "
            f"RMS / ref RMS {err['rel_rms']:.3g}\n"
            f"saturated: {sat}; divide by zero: {result.div_by_zero}; {seconds:.2f} s")
    emit(args, summary, text)
    return 0
