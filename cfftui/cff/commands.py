"""`cfftui bench`: stage-1 throughput of cfftui's trainer against a reference-style loop."""

from __future__ import annotations

import argparse
import json
import sys


def configure(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-size", type=int, default=64, help="images per step, two views each (default 64)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument(
        "--precision",
        choices=("fp32", "tf32", "bf16"),
        default="fp32",
        help="cfftui's precision; the reference loop always runs fp32",
    )
    parser.add_argument("--margin-mode", choices=("clamp", "subtract", "none"), default="clamp")
    parser.add_argument("--embed-dim", type=int, default=128)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--reps", type=int, default=7, help="interleaved timed steps of each loop")
    parser.add_argument("--epoch-batches", type=int, default=6, help="batches in the end-to-end mini-epoch")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=790.0,
        help="accelerator peak for MFU (default: H200 dense bf16, measured)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    parser.add_argument("--smoke", action="store_true", help="a tiny model and few steps: runs in seconds")


def run(name: str, args: argparse.Namespace) -> int:
    for flag, value in (
        ("--batch-size", args.batch_size),
        ("--reps", args.reps),
        ("--depth", args.depth),
        ("--epoch-batches", args.epoch_batches),
        ("--embed-dim", args.embed_dim),
        ("--heads", args.heads),
    ):
        if value < 1 or (flag == "--batch-size" and value < 2):
            print(
                f"cfftui bench: {flag} must be at least {2 if flag == '--batch-size' else 1}, got {value}",
                file=sys.stderr,
            )
            return 2
    if args.embed_dim % args.heads:
        print(
            f"cfftui bench: --heads {args.heads} does not divide --embed-dim {args.embed_dim}",
            file=sys.stderr,
        )
        return 2
    import dataclasses

    import torch

    from cfftui.cff.bench import SMOKE, BenchConfig, run_bench
    from cfftui.cff.train import resolve_device

    try:
        device = resolve_device(args.device)
    except ValueError as e:
        print(f"cfftui bench: --device: {str(e).split(': ', 1)[-1]}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.precision == "tf32" and device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    if args.smoke:
        cfg = SMOKE
    else:
        cfg = dataclasses.replace(
            BenchConfig(),
            batch_size=args.batch_size,
            reps=args.reps,
            dim=args.embed_dim,
            depth=args.depth,
            heads=args.heads,
            epoch_batches=args.epoch_batches,
        )
    cfg = dataclasses.replace(cfg, mode=args.margin_mode)
    result = run_bench(cfg, device, args.precision, args.peak_tflops)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
    print(
        json.dumps(
            {k: result[k] for k in ("ratio_steps", "ratio_epoch", "images_per_s", "passed") if k in result}
        )
    )
    if not result["passed"]:
        print("cfftui bench: the equivalence gate failed; no timings taken", file=sys.stderr)
        return 1
    return 0
