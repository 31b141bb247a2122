"""Immutable payloads for each screen, built in the watcher thread from the run store (no Textual here).

The app's watcher thread owns one `StoreFeed`; it polls the trackers, formats
only the rows whose run changed (a per-run version cache) and hands the
screens plain frozen data. A study payload carries every run's row, so the
screen filters it on a key press without waiting for the watcher; screens
diff rows against what they show and repaint only the cells that changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text

from cfftui.engine.store import RunStore
from cfftui.engine.watch import METRICS
from cfftui.spec import flatten
from cfftui.tui import render
from cfftui.tui.backend import StudyFile, load_study_file
from cfftui.tui.live import Clock, RunLive, StudyTracker, read_log_tail

Cell = str | Text

STUDY_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("name", "cell / run", 12), ("seed", "seed", 4), ("state", "state", 10), ("epoch", "epoch", 9),
    ("l0", "loss L0", 11), ("ll", "loss Ln", 11), ("car", "CAR L0", 10), ("val", "val Ln", 11),
    ("top1", "top1", 10), ("ips", "img/s", 6), ("eta", "ETA", 6),
)
"""(key, header, width): fixed widths keep the table calm while values grow (mean±sd of cell rows fits)."""
EXPERIMENT_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("name", "experiment", 16), ("plan", "plan", 5), ("done", "done", 4), ("running", "run", 4),
    ("queued", "queued", 6), ("failed", "failed", 6), ("elapsed", "elapsed", 8), ("eta", "ETA", 6),
    ("result", "result", 100),
)
LAYER_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("layer", "block", 5), ("train_loss", "train loss", 10), ("val_loss", "val loss", 10), ("car", "CAR", 7),
    ("grad_norm", "grad norm", 9),
)
FILTERS: tuple[str | None, ...] = (None, "running", "queued", "done", "failed", "stopped")
"""The state filters the study screen cycles through (None: every run)."""
FAILED_LIKE = frozenset({"failed", "diverged", "lost"})


def run_key(run_id: str) -> str:
    return f"r:{run_id}"


def cell_key(cell: tuple[str, ...]) -> str:
    return "c:" + "\x1f".join(cell)


@dataclass(frozen=True)
class ExperimentRow:
    name: str
    description: str
    cells: tuple[Cell, ...]
    """Formatted cells, in EXPERIMENT_COLUMNS order (the result column is filled in by the app)."""
    planned: int
    finished: bool
    """Every planned run is in a final state."""
    started: bool
    alive: bool
    in_file: bool


@dataclass(frozen=True)
class Overview:
    rows: tuple[ExperimentRow, ...]
    error: str | None
    """Why the study file cannot be used (shown on the experiments screen, never raised)."""


@dataclass(frozen=True)
class StudyPayload:
    experiment: str
    keys: tuple[str, ...]
    """Row keys in display order, under `state_filter`: a cell row, then its runs."""
    rows: dict[str, tuple[Cell, ...]]
    """Every cell's and every run's row, whatever the filter."""
    summary: str
    sparks: dict[str, list[float]]
    alive: bool
    states: dict[str, str] = field(default_factory=dict)
    """Run id -> state, for actions that depend on it."""
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(cell row key, its run ids) in plan order: what `filtered` selects from."""
    summary_head: str = ""
    """The summary without its filter part."""
    state_filter: str | None = None
    changed: int = 0
    """Runs whose files changed since the previous poll (the watcher paces itself by it)."""

    def filtered(self, state_filter: str | None) -> StudyPayload:
        """The same payload under another state filter: pure, so the UI thread can answer a key at once."""
        if state_filter == self.state_filter:
            return self
        return dataclasses.replace(self, keys=_shown_keys(self.groups, self.states, state_filter),
                                   state_filter=state_filter,
                                   summary=_with_filter(self.summary_head, state_filter))


@dataclass(frozen=True)
class RunPayload:
    experiment: str
    run_id: str
    title: str
    layers: tuple[tuple[Cell, ...], ...]
    series: dict[str, list[float]]
    """Metric -> the selected block's values over epochs."""
    stdout: str
    stderr: str
    spec: str
    status: str
    state: str


class StoreFeed:
    """Everything the console reads, polled from the watcher thread only."""

    def __init__(self, runs_dir: str | os.PathLike[str], study_file: str | os.PathLike[str],
                 clock: Clock = time.time, between_runs: Callable[[], None] | None = None) -> None:
        self.runs_dir = os.fspath(runs_dir)
        self.between_runs = between_runs
        """Passed to every tracker (StudyTracker.between_runs)."""
        self.study_file = os.fspath(study_file)
        self.clock = clock
        self.store = RunStore(runs_dir)
        self.trackers: dict[str, StudyTracker] = {}
        self.study = StudyFile()
        self._study_stamp: tuple[int, int] | None = None
        self._row_cache: dict[str, tuple[int, tuple[Cell, ...]]] = {}
        self._cell_cache: dict[tuple[str, ...], tuple[tuple[int, ...], tuple[Cell, ...]]] = {}
        self._log_cache: dict[Path, tuple[int, int, str]] = {}

    # --- sources ---------------------------------------------------------------
    def tracker(self, experiment: str) -> StudyTracker:
        if experiment not in self.trackers:
            self.trackers[experiment] = StudyTracker(self.runs_dir, experiment, self.clock, self.between_runs)
        return self.trackers[experiment]

    def refresh_study(self) -> None:
        try:
            st = os.stat(self.study_file)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (-1, -1)
        if stamp != self._study_stamp:
            self._study_stamp = stamp
            self.study = load_study_file(self.study_file)

    def experiment_names(self) -> list[str]:
        names = [e.name for e in self.study.experiments]
        return names + [n for n in self.store.experiments() if n not in names]

    # --- experiments screen ------------------------------------------------------
    def overview(self) -> Overview:
        self.refresh_study()
        infos = {e.name: e for e in self.study.experiments}
        rows = []
        for name in self.experiment_names():
            tracker = self.tracker(name)
            tracker.poll()
            info = infos.get(name)
            counts = tracker.counts()
            planned = len(tracker.runs) or (info.cells * info.seeds if info else 0)
            if tracker.runs:
                cells_n = len(tracker.cells())
                seeds_n = len({r.seed for r in tracker.runs.values()})
            else:
                cells_n, seeds_n = (info.cells, info.seeds) if info else (0, 0)
            finished = tracker.finished_runs
            alive = tracker.supervisor_alive()
            label = name if info else f"{name} (store)"
            failed = sum(counts[s] for s in FAILED_LIKE)
            cells: tuple[Cell, ...] = (
                Text(label, style="bold" if alive else ""),
                render.plan_size(cells_n, seeds_n),
                str(counts["done"]),
                str(counts["running"]),
                str(counts["queued"] if tracker.runs else planned),
                Text(str(failed), style="bold red" if failed else ""),
                render.duration(tracker.elapsed(alive=alive)),
                render.duration(tracker.eta()) if tracker.runs else render.DASH,
                render.DASH,
            )
            rows.append(ExperimentRow(name=name, description=info.description if info else "", cells=cells,
                                      planned=planned, finished=finished, started=bool(tracker.runs),
                                      alive=alive, in_file=info is not None))
        return Overview(rows=tuple(rows), error=self.study.error)

    # --- study screen -------------------------------------------------------------
    def study_view(self, experiment: str, *, selected: str | None = None,
                   state_filter: str | None = None, read: bool = True) -> StudyPayload:
        """The study table and the selection's sparklines; `read=False` builds them from what was read."""
        tracker = self.tracker(experiment)
        changed = tracker.poll() if read or not tracker.exists else set()
        rows: dict[str, tuple[Cell, ...]] = {}
        groups: list[tuple[str, tuple[str, ...]]] = []
        selected_cell: tuple[str, ...] | None = None
        for cell, runs in tracker.cells().items():
            ck = cell_key(cell)
            rows[ck] = self._cell_row(cell, runs)
            groups.append((ck, tuple(r.run_id for r in runs)))
            if selected == ck:
                selected_cell = cell
            for run in runs:
                rk = run_key(run.run_id)
                rows[rk] = self._run_row(run)
                if selected == rk:
                    selected_cell = cell
        sparks: dict[str, list[float]] = {}
        selected_run = tracker.runs.get(selected[2:]) if selected and selected.startswith("r:") else None
        if selected_run is not None:
            sparks["run_loss"] = render.series(selected_run.series("train_loss", 0))
            sparks["run_car"] = render.series(selected_run.series("car", 0))
        if selected_cell is not None:
            sparks["cell_loss"] = tracker.cell_series(selected_cell, "train_loss", 0)
            sparks["cell_car"] = tracker.cell_series(selected_cell, "car", 0)
        alive = tracker.supervisor_alive()
        head = " · ".join([
            f"{len(tracker.runs)} runs",
            render.state_counts(dict(tracker.counts())),
            f"elapsed {render.duration(tracker.elapsed(alive=alive))}",
            f"ETA {render.duration(tracker.eta())}",
            "supervisor alive" if alive else "no supervisor",
        ])
        states = {r.run_id: r.state for r in tracker.runs.values()}
        return StudyPayload(experiment=experiment, keys=_shown_keys(groups, states, state_filter), rows=rows,
                            summary=_with_filter(head, state_filter), sparks=sparks, alive=alive,
                            states=states, groups=tuple(groups), summary_head=head, state_filter=state_filter,
                            changed=len(changed))

    def _cell_row(self, cell: tuple[str, ...], runs: Sequence[RunLive]) -> tuple[Cell, ...]:
        stamp = tuple(r.version for r in runs)
        cached = self._cell_cache.get(cell)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        row = cell_row(cell, runs)
        self._cell_cache[cell] = (stamp, row)
        return row

    def _run_row(self, run: RunLive) -> tuple[Cell, ...]:
        cached = self._row_cache.get(run.run_id)
        # ETA depends on the clock only through epoch times, so a version match is enough
        if cached is not None and cached[0] == run.version:
            return cached[1]
        row = run_row(run)
        self._row_cache[run.run_id] = (run.version, row)
        return row

    # --- run screen -------------------------------------------------------------------
    def run_view(self, experiment: str, run_id: str, *, layer: int = 0,
                 read: bool = True) -> RunPayload | None:
        tracker = self.tracker(experiment)
        if read or not tracker.exists:
            tracker.poll([run_id])  # the other runs catch up when their screen asks for them
        run = tracker.runs.get(run_id)
        if run is None:
            return None
        depth = run.depth
        layers = tuple(
            (f"L{i}", render.number(run.value("train_loss", i)), render.number(run.value("val_loss", i)),
             render.percent(run.value("car", i)), render.number(run.value("grad_norm", i)))
            for i in range(depth))
        series = {m: render.series(run.series(m, layer)) for m in METRICS}
        run_dir = self.store.run_dir(experiment, run_id)
        spec = self.store.read_spec(experiment, run_id) or {}
        title = f"{experiment} / {render.cell_label(run.cell)} / seed {run.seed} / {run_id}"
        return RunPayload(experiment=experiment, run_id=run_id, title=title, layers=layers, series=series,
                          stdout=self._log(run_dir / "stdout.log"), stderr=self._log(run_dir / "stderr.log"),
                          spec=spec_text(spec), status=status_text(run), state=run.state)

    def _log(self, path: Path) -> str:
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            return ""
        cached = self._log_cache.get(path)
        if cached is not None and cached[:2] == stamp:
            return cached[2]
        text = render.tail_lines(read_log_tail(path), 200)
        self._log_cache[path] = (*stamp, text)
        return text


def _shown_keys(groups: Sequence[tuple[str, Sequence[str]]], states: dict[str, str],
                state_filter: str | None) -> tuple[str, ...]:
    """Each cell row whose runs match the filter, followed by those runs' rows."""
    keys: list[str] = []
    for cell, run_ids in groups:
        shown = [run_key(r) for r in run_ids if _matches(states.get(r, ""), state_filter)]
        if shown:
            keys += [cell, *shown]
    return tuple(keys)


def _with_filter(summary_head: str, state_filter: str | None) -> str:
    return f"{summary_head} · filter: {state_filter or 'all'}"


def _matches(state: str, state_filter: str | None) -> bool:
    if state_filter is None:
        return True
    if state_filter == "failed":
        return state in FAILED_LIKE
    return state == state_filter


def run_row(run: RunLive) -> tuple[Cell, ...]:
    """One study-table row for a run, in STUDY_COLUMNS order."""
    return (
        Text("  " + run.run_id[:10], style="dim"),
        str(run.seed),
        Text(render.state_label(run.state), style=render.STATE_STYLES.get(run.state, "")),
        render.progress(run.epoch, run.epochs_total),
        render.number(run.value("train_loss", 0)),
        render.number(run.value("train_loss", -1)),
        render.percent(run.value("car", 0)),
        render.number(run.value("val_loss", -1)),
        render.percent(run.top1),
        render.rate(run.images_per_s) if run.state == "running" else render.DASH,
        render.duration(run.eta_s) if run.state == "running" else render.DASH,
    )


def cell_row(cell: Sequence[str], runs: Sequence[RunLive]) -> tuple[Cell, ...]:
    """The cell's row: mean ± sd across its seeds of each run's latest value."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.state] = counts.get(r.state, 0) + 1
    epochs = [r.epoch for r in runs]
    total = max((r.epochs_total for r in runs), default=0)
    running = [r for r in runs if r.state == "running"]
    etas = [e for r in runs if (e := r.eta_s) is not None]
    return (
        Text("/".join(cell) or "all", style="bold"),
        f"n={len(runs)}",
        render.state_counts(counts),
        render.progress(round(statistics.fmean(epochs)) if epochs else 0, total),
        render.mean_sd(r.value("train_loss", 0) for r in runs),
        render.mean_sd(r.value("train_loss", -1) for r in runs),
        render.mean_sd_percent(r.value("car", 0) for r in runs),
        render.mean_sd(r.value("val_loss", -1) for r in runs),
        render.mean_sd_percent(r.top1 for r in runs),
        render.rate(sum(r.images_per_s or 0.0 for r in running)) if running else render.DASH,
        render.duration(max(etas)) if running and etas else render.DASH,
    )


def spec_text(spec: dict[str, Any]) -> str:
    """The resolved configuration as 'dotted.key = value' lines."""
    if not spec:
        return "(no spec.json)"
    head = [f"run_id = {spec.get('run_id', '')}", f"seed = {spec.get('seed', '')}"]
    head += [f"cell.{k} = {v}" for k, v in (spec.get("cell") or {}).items()]
    body = [f"{k} = {v}" for k, v in flatten(spec.get("config") or {}).items()]
    return "\n".join(head + [""] + body)


def _when(t: float | None) -> str:
    if not t:
        return render.DASH
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def status_text(run: RunLive) -> str:
    s = run.status
    lines = [
        f"state     {render.state_label(s.state)}",
        f"attempts  {s.attempts}",
        f"host      {s.host or render.DASH}   pid {s.pid or render.DASH}   executor {s.executor or render.DASH}"
        + (f"   gpu {s.gpu}" if s.gpu else ""),
        f"exit      code {render.DASH if s.exit_code is None else s.exit_code}"
        f"   signal {render.DASH if s.signal is None else s.signal}",
        f"started   {_when(s.started_at)}   first {_when(s.first_started_at)}",
        f"ended     {_when(s.ended_at)}",
        f"epoch     {render.progress(run.epoch, run.epochs_total)}   top1 {render.percent(run.top1)}"
        f"   top5 {render.percent(run.top5)}",
    ]
    if s.error:
        lines.append(f"error     {s.error}")
    if run.end_reason:
        lines.append(f"end       {run.end_reason}")
    return "\n".join(lines)
