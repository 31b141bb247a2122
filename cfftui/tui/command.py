"""`cfftui` / `cfftui tui` opens the console on a study file; `cfftui attach NAME` opens one experiment live."""

from __future__ import annotations

import argparse
import sys

from cfftui.engine.store import RunStore


def configure(name: str, parser: argparse.ArgumentParser) -> None:
    if name == "attach":
        parser.add_argument("experiment", help="the experiment to show (in the study file or the run store)")


def run(name: str, args: argparse.Namespace) -> int:
    attach = getattr(args, "experiment", None) if name == "attach" else None
    if args.runs == "runs":
        from cfftui.tui.backend import load_study_file

        # a study file that names its run store ([cfftui] runs = ...) wins over the default folder
        args.runs = load_study_file(args.file).runs_dir or args.runs
    if attach is not None and not _known(attach, args.file, args.runs):
        print(f"cfftui attach: no experiment {attach!r} in {args.file} or in {args.runs}/", file=sys.stderr)
        return 2
    from cfftui.tui.app import CffApp  # textual only now: the other commands never pay for it

    app = CffApp(args.file, args.runs, attach=attach)
    app.run()
    return int(app.return_code or 0)


def _known(experiment: str, study_file: str, runs_dir: str) -> bool:
    if experiment in RunStore(runs_dir).experiments():
        return True
    from cfftui.tui.backend import load_study_file

    return any(e.name == experiment for e in load_study_file(study_file).experiments)
