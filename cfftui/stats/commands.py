"""`cfftui report` and `cfftui export`: an experiment's analysis in the terminal or as files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXPORT_FORMATS = ("csv", "parquet", "json", "md", "latex")
USAGE_ERROR = 2


def configure(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the experiment (a folder of the run store)")
    parser.add_argument("--metric", help="the per-run column to analyse (default: the plan's, top1)")
    parser.add_argument("--compare", help="the factor whose two levels are compared (default: the plan's)")
    parser.add_argument("--levels", nargs=2, metavar=("A", "B"), help="the two levels to compare, A / B")
    parser.add_argument("--bootstrap", type=int, metavar="N", help="bootstrap resamples (default: the plan's)")
    parser.add_argument("--seed", type=int, help="bootstrap seed (default: the plan's)")
    parser.add_argument("--min-cell-runs", type=int, default=2, metavar="N",
                        help="refuse cells with fewer finished runs (default 2; 1 pools single-run cells)")
    if name == "export":
        parser.add_argument("--format", action="append", choices=[*EXPORT_FORMATS, "all"], dest="formats",
                            help="csv, parquet, json, md, latex or all (repeatable; default: all)")
        parser.add_argument("--out", help="output folder (default: RUNS/NAME/results)")
        parser.add_argument("--figures", action="store_true",
                            help="also write the figures as SVG and PNG (needs matplotlib)")


def run(name: str, args: argparse.Namespace) -> int:
    from cfftui.stats.analysis import analyse
    from cfftui.stats.frames import AnalysisError

    try:
        analysis = analyse(args.runs, args.name, metric=args.metric, compare=args.compare,
                           levels=tuple(args.levels) if args.levels else None, n_boot=args.bootstrap,
                           seed=args.seed, min_cell_runs=args.min_cell_runs)
        if name == "report":
            from cfftui.stats.report import print_report
            print_report(analysis)
            return 0
        from cfftui.stats.export import write_exports
        formats = args.formats or ["all"]
        formats = list(EXPORT_FORMATS) if "all" in formats else formats
        out = Path(args.out) if args.out else Path(args.runs) / args.name / "results"
        paths = []
        if args.figures:
            from cfftui.stats.figures import write_figures
            paths += write_figures(analysis, out)  # first, so a missing matplotlib writes nothing
        paths = write_exports(analysis, out, formats) + paths
    except AnalysisError as e:
        print(f"cfftui {name}: {e}", file=sys.stderr)
        return USAGE_ERROR
    print(analysis.headline())
    print(f"wrote {len(paths)} files to {out}")
    return 0
