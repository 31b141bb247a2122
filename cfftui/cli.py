"""The `cfftui` command: the console by default, and subcommands for everything it can do headless.

Each subcommand lives in a module that exposes `configure(parser)` and
`run(args) -> int`; this file only routes. Command modules import nothing
heavy (torch, textual, polars, scipy) at module level, so `cfftui plan` and
`cfftui status` start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line help). The order is the order of `cfftui --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "tui": ("cfftui.tui.command", "open the console (the default)"),
    "attach": ("cfftui.tui.command", "open the console on one experiment's live study"),
    "run": ("cfftui.engine.commands", "start or resume experiments (--headless waits and reports)"),
    "plan": ("cfftui.engine.commands", "show cells x seeds, run ids, progress and a cost estimate"),
    "status": ("cfftui.engine.commands", "what is running where, progress and ETA"),
    "stop": ("cfftui.engine.commands", "stop an experiment or one run gracefully"),
    "demo": ("cfftui.engine.commands", "run the built-in demo study headless"),
    "report": ("cfftui.stats.commands", "print an experiment's analysis"),
    "export": ("cfftui.stats.commands", "write an experiment's tables (csv, parquet, json, md, latex)"),
    "bench": ("cfftui.cff.commands", "measure training throughput against a reference-style loop"),
}


class ExitCode:
    """Exit statuses shared by every subcommand."""

    OK = 0
    RUN_FAILED = 1
    """A run failed or diverged."""
    USAGE = 2
    """Invalid input: a bad flag, an invalid experiments.toml, an unknown name."""
    INTERRUPTED = 130


def common_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--file", "-f", default=argparse.SUPPRESS,
                        help="the study file (default: ./experiments.toml)")
    parent.add_argument("--runs", default=argparse.SUPPRESS, help="the run store folder (default: ./runs)")
    return parent


def build_parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(prog="cfftui", parents=[common], description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, parents=[common], description=help_text)
        p.set_defaults(command=name, _module=module)
        importlib.import_module(module).configure(name, p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        args = parser.parse_args(["tui", *(argv if argv is not None else sys.argv[1:])])
    args.file = getattr(args, "file", "experiments.toml")
    args.runs = getattr(args, "runs", "runs")
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args.command, args) or 0)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
