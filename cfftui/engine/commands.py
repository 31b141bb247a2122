"""The engine's commands: `cfftui run`, `demo`, `plan`, `status` and `stop`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from cfftui.engine import control
from cfftui.engine.store import RunStore

OK, RUN_FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


def configure(name: str, parser: argparse.ArgumentParser) -> None:
    if name in ("run", "plan"):
        parser.add_argument("names", nargs="*", metavar="NAME", help="experiments (default: all in the file)")
    if name in ("run", "demo", "plan"):
        parser.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a key in every experiment (repeatable)",
        )
    if name in ("run", "demo"):
        parser.add_argument("--executor", choices=("local", "ray"), help="where workers run")
        parser.add_argument("--ray-address", metavar="ADDRESS",
                            help="the Ray cluster to run on (HOST:PORT, ray://HOST:PORT or auto)")
        parser.add_argument("--jobs", type=int, help="runs at once")
        parser.add_argument(
            "--retry-failed", action="store_true", help="give failed and lost runs a fresh retry budget"
        )
        parser.add_argument("--detach", action="store_true",
                            help="return once the supervisor runs (the default for run without --headless)")
    if name == "run":
        parser.add_argument(
            "--headless", action="store_true", help="report progress here, wait for the end, run the analysis"
        )
    if name == "plan":
        parser.add_argument("--json", action="store_true", help="machine-readable output")
    if name in ("status", "stop"):
        parser.add_argument("name", nargs="?", metavar="NAME", help="one experiment (default: all)")
    if name == "status":
        parser.add_argument("--json", action="store_true", help="machine-readable output")
    if name == "stop":
        parser.add_argument("--run", dest="run_id", metavar="ID", help="stop only this run")


def run(name: str, args: argparse.Namespace) -> int:
    handler = {"run": cmd_run, "demo": cmd_demo, "plan": cmd_plan, "status": cmd_status, "stop": cmd_stop}[
        name
    ]
    return handler(args)


def fail(message: str, code: int = USAGE) -> int:
    print(f"cfftui: {message}", file=sys.stderr)
    return code


def runs_dir_for(args: argparse.Namespace, study: Any = None) -> str:
    """--runs, else the study's [cfftui] runs setting, else ./runs."""
    if args.runs != "runs" or study is None or not getattr(study, "runs_dir", None):
        return str(args.runs)
    return str(study.runs_dir)


# --- run / demo ------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from cfftui.config import StudyError, default_study_text, load_study

    source = None
    try:
        if "demo" not in load_study(args.file).experiments:
            source = default_study_text()
    except StudyError:
        source = default_study_text()  # no usable ./experiments.toml: the shipped study has the demo
    args.names, args.headless = ["demo"], True
    return start_and_watch(args, source=source)


def cmd_run(args: argparse.Namespace) -> int:
    return start_and_watch(args)


def start_and_watch(args: argparse.Namespace, source: str | None = None) -> int:
    from cfftui.config import StudyError

    try:
        study, plans = control.load_plans(
            args.file, args.names, args.overrides, executor=args.executor, jobs=args.jobs, source=source,
            ray_address=args.ray_address,
        )
        control.check_executors(plans)
    except (StudyError, control.StartError) as e:
        return fail(str(e))
    runs_dir = runs_dir_for(args, study)
    pids = {}
    for exp, specs, meta in plans:
        attached = control.supervisor_alive(runs_dir, exp)
        try:
            pids[exp] = control.submit(runs_dir, exp, specs, meta, retry=args.retry_failed)
        except (control.StartError, OSError) as e:
            return fail(str(e), RUN_FAILED)
        how = "attached to the running supervisor" if attached else "supervisor started"
        print(f"{exp}: {len(specs)} runs; {how}, pid {pids[exp]}; runs in {Path(runs_dir) / exp}", flush=True)
    if args.detach or not args.headless:  # without --headless the study runs on its own; attach to watch
        print("detached: `cfftui attach NAME` or `cfftui status` watches, `cfftui stop NAME` stops it")
        return OK
    try:
        return watch(runs_dir, list(pids))
    except KeyboardInterrupt:
        print("\ndetached: the study keeps running (`cfftui stop NAME` stops it)", file=sys.stderr)
        return INTERRUPTED


def describe(run: control.RunSnapshot) -> str:
    st = run.status
    where = f" pid {st.pid}" + (f" gpu {st.gpu}" if st.gpu else "") if st.state == "running" else ""
    attempt = f" attempt {st.attempts}" if st.attempts > 1 else ""
    top1 = (
        f" top1 {run.result['top1']:.4f}"
        if run.result and st.state == "done" and "top1" in run.result
        else ""
    )
    error = (
        f": {st.error}"
        if st.error and st.state in ("failed", "lost", "diverged", "queued", "stopped")
        else ""
    )
    cell = " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in run.cell.items())
    return f"{run.run_id} [{cell} seed={run.seed}] {st.state}{where}{attempt}{top1}{error}"


def summary(snap: control.ExperimentSnapshot) -> str:
    counts = " ".join(f"{s} {n}" for s, n in sorted(snap.counts.items()))
    eta = f", eta {snap.eta_s:.0f} s" if snap.eta_s else ""
    return f"{snap.experiment}: {counts} of {snap.total} ({snap.elapsed_s:.0f} s{eta})"


def watch(runs_dir: str, experiments: list[str]) -> int:
    """Report state changes (Rich bars on a TTY, plain lines otherwise) until every study is final."""
    interval = float(os.environ.get("CFFTUI_WATCH_S", 0.5))
    summary_every = float(os.environ.get("CFFTUI_SUMMARY_S", 30))
    cache = control.SnapshotCache()
    seen: dict[tuple[str, str], tuple[str, int]] = {}
    relaunched: dict[str, tuple[float, int]] = {}
    last_summary = time.monotonic()
    progress = None
    if sys.stdout.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
        )
        progress.start()
    say = progress.console.print if progress else (lambda text: print(text, flush=True))
    tasks: dict[str, Any] = {}
    try:
        while True:
            snaps = [control.snapshot(runs_dir, exp, cache) for exp in experiments]
            for snap in snaps:
                for r in snap.runs:
                    key = (snap.experiment, r.run_id)
                    mark = (r.state, r.status.attempts)
                    if seen.get(key) != mark:
                        seen[key] = mark
                        say(f"{time.strftime('%H:%M:%S')} {snap.experiment} {describe(r)}")
                settled = sum(n for s, n in snap.counts.items() if s not in control.ACTIVE_STATES)
                if progress is not None:
                    if snap.experiment not in tasks:
                        tasks[snap.experiment] = progress.add_task(
                            snap.experiment, total=snap.total, detail=""
                        )
                    eta = f"eta {snap.eta_s:.0f} s" if snap.eta_s else ""
                    progress.update(
                        tasks[snap.experiment],
                        completed=settled,
                        detail=f"running {snap.counts.get('running', 0)} {eta}",
                    )
                if not snap.alive and not snap.finished:
                    # The supervisor died (killed, machine trouble): workers run on; a new one adopts them.
                    last, tries = relaunched.get(snap.experiment, (-1e9, 0))
                    if tries >= 3:
                        log = RunStore(runs_dir).log_path(snap.experiment)
                        print(f"{snap.experiment}: the supervisor keeps dying; see {log}", file=sys.stderr)
                        return RUN_FAILED
                    if time.monotonic() - last > 5:
                        relaunched[snap.experiment] = (time.monotonic(), tries + 1)
                        say(f"{snap.experiment}: the supervisor is gone; starting a new one")
                        try:
                            control.launch_supervisor(runs_dir, snap.experiment)
                        except control.StartError as e:
                            say(str(e))
            if all(s.finished for s in snaps):
                break  # the final summary follows below
            if progress is None and time.monotonic() - last_summary >= summary_every:
                last_summary = time.monotonic()
                for snap in snaps:
                    say(summary(snap))
            time.sleep(interval)
    finally:
        if progress is not None:
            progress.stop()
    code = OK
    for snap in snaps:
        print(summary(snap))
        if any(n for s, n in snap.counts.items() if s != "done"):
            code = RUN_FAILED
        else:
            analyse(runs_dir, snap.experiment)
    return code


def analyse(runs_dir: str, experiment: str) -> None:
    """Print the headline and write the exports next to the runs."""
    from cfftui.stats import analyse as run_analysis
    from cfftui.stats import write_exports

    try:
        result = run_analysis(runs_dir, experiment)
        out_dir = RunStore(runs_dir).results_dir(experiment)
        write_exports(result, out_dir)
    except Exception as e:  # noqa: BLE001 - the runs are done; an analysis error must not hide that
        print(f"{experiment}: analysis failed: {type(e).__name__}: {e}", file=sys.stderr)
        return
    print(result.headline())
    print(f"{experiment}: tables in {out_dir}")


# --- plan ------------------------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace) -> int:
    from cfftui.config import StudyError
    from cfftui.plan import estimate_cost

    try:
        study, plans = control.load_plans(args.file, args.names, args.overrides)
    except (StudyError, control.StartError) as e:
        return fail(str(e))
    store = RunStore(runs_dir_for(args, study))
    report = {}
    for exp, specs, meta in plans:
        cost = estimate_cost(study.experiments[exp])
        states = {s.run_id: store.read_status(exp, s.run_id).state for s in specs}
        cells = len({tuple(s.cell.items()) for s in specs})
        report[exp] = {
            "cells": cells,
            "seeds": meta["seeds"],
            "runs": len(specs),
            "counts": {st: list(states.values()).count(st) for st in sorted(set(states.values()))},
            "cost": {k: v for k, v in cost.items() if k != "cells"},
            "run_list": [
                {"run_id": s.run_id, "cell": s.cell, "seed": s.seed, "state": states[s.run_id]} for s in specs
            ],
        }
    if args.json:
        print(json.dumps(report, indent=1))
        return OK
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for exp, info in report.items():
        table = Table(
            title=f"{exp}: {info['cells']} cells x {len(info['seeds'])} seeds = {info['runs']} runs",
            title_justify="left",
        )
        for col in ("run id", "cell", "seed", "state"):
            table.add_column(col)
        for r in info["run_list"]:
            table.add_row(
                r["run_id"],
                " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in r["cell"].items()),
                str(r["seed"]),
                r["state"],
            )
        console.print(table)
        counts = ", ".join(f"{n} {s}" for s, n in info["counts"].items())
        c = info["cost"]
        console.print(
            f"{exp}: {counts}; about {c['flops_total']:.3g} FLOP: "
            f"{c['cpu_hours_total']:.2f} h on this CPU, {c['h200_hours_total']:.3f} h on one H200"
        )
    return OK


# --- status / stop ------------------------------------------------------------------------------------


def _experiments(args: argparse.Namespace, store: RunStore) -> list[str] | None:
    if args.name is None:
        return store.experiments()
    if store.read_plan(args.name) is None:
        return None
    return [args.name]


def _store_for(args: argparse.Namespace) -> RunStore:
    study = None
    if args.runs == "runs" and os.path.isfile(args.file):
        try:
            from cfftui.config import load_study

            study = load_study(args.file)
        except Exception:  # noqa: BLE001 - status works from the store alone; a broken study file is no reason to fail
            study = None
    return RunStore(runs_dir_for(args, study))


def cmd_status(args: argparse.Namespace) -> int:
    store = _store_for(args)
    names = _experiments(args, store)
    if names is None:
        return fail(f"{args.name}: no such experiment in {store.root}")
    snaps = [control.snapshot(str(store.root), n) for n in names]
    if args.json:
        out = {}
        for s in snaps:
            out[s.experiment] = {
                **{k: v for k, v in s.to_json().items() if k != "runs"},
                "runs": [
                    {
                        "run_id": r.run_id,
                        "cell": r.cell,
                        "seed": r.seed,
                        "state": r.state,
                        "attempts": r.status.attempts,
                        "pid": r.status.pid,
                        "host": r.status.host,
                        "gpu": r.status.gpu,
                        "epoch": r.epoch,
                        "epochs": r.epochs,
                        "eta_s": None if r.eta_s is None else round(r.eta_s, 1),
                        "error": r.status.error,
                        "top1": (r.result or {}).get("top1"),
                    }
                    for r in s.runs
                ],
            }
        print(json.dumps(out, indent=1))
        return OK
    if not snaps:
        print(f"no experiments in {store.root}")
        return OK
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for s in snaps:
        sup = (
            f"supervisor pid {s.supervisor.get('pid')} on {s.supervisor.get('host')}"
            if s.supervisor
            else "no supervisor running"
        )
        factors = " / ".join(f["key"].rsplit(".", 1)[-1] for f in s.plan.get("factors", []))
        table = Table(title=f"{summary(s)}; {sup}" + (f"\ncell = {factors}" if factors else ""),
                      title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for col in ("run id", "cell", "seed", "state", "where", "progress", "eta", "note"):
            table.add_column(col, no_wrap=col != "cell", overflow="ellipsis")
        for r in s.runs:
            st = r.status
            where = (
                f"{st.host}:{st.pid}" + (f" gpu {st.gpu}" if st.gpu else "") if st.state == "running" else ""
            )
            note = st.error or (f"top1 {100 * r.result['top1']:.1f}%" if r.result and "top1" in r.result else "")
            table.add_row(
                r.run_id,
                " / ".join(r.cell.values()),
                str(r.seed),
                r.state,
                where,
                f"{r.epoch}/{r.epochs}",
                "" if r.eta_s is None else f"{r.eta_s:.0f} s",
                note or "",
            )
        console.print(table)
    return OK


def cmd_stop(args: argparse.Namespace) -> int:
    store = _store_for(args)
    names = _experiments(args, store)
    if names is None:
        return fail(f"{args.name}: no such experiment in {store.root}")
    if args.run_id is not None:
        if len(names) != 1:
            return fail("--run needs the experiment NAME too")
        plan = store.read_plan(names[0]) or {}
        if args.run_id not in {r["run_id"] for r in plan.get("runs", [])}:
            return fail(f"--run: no run {args.run_id!r} in experiment {names[0]}")
    stopped = 0
    for exp in names:
        info = control.supervisor_info(str(store.root), exp)
        if info is None:
            if args.name is not None:
                print(f"{exp}: no supervisor running; nothing to stop")
            continue
        control.stop(str(store.root), exp, args.run_id)
        stopped += 1
        what = f"run {args.run_id}" if args.run_id else "every run"
        print(f"{exp}: stop requested for {what} (supervisor pid {info.get('pid')}); `cfftui run` resumes")
    if args.name is None and not stopped:
        print(f"nothing is running in {store.root}")
    return OK
