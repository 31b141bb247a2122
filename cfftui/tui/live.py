"""The console's live views of the run store: the engine's watchers with bounded histories (no Textual here).

The console never holds training state of its own: everything is rebuilt from
`runs/` by `cfftui.engine.watch`, the same reader `cfftui status` uses, here
with per-block histories of HISTORY epochs for the sparklines, so memory stays
bounded however long a study runs. Only the watcher thread mutates these
objects; the UI receives immutable payloads built from them.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from cfftui.engine.watch import Clock, ExperimentWatch, RunWatch

HISTORY = 240
"""Epochs kept per series and run (sparklines are at most a terminal wide)."""
CELL_SERIES_S = 1.0
"""How stale a cell's mean sparkline may get while its seeds keep changing."""
LOG_TAIL_BYTES = 16 * 1024
"""How much of stdout.log / stderr.log the run screen reads (the end of each file)."""

Levels = tuple[str, ...]
"""A cell: its level labels in factor order."""
RunLive = RunWatch
"""What the console knows about one run (the engine's watcher, with a history)."""


class StudyTracker(ExperimentWatch):
    """One experiment's runs with histories, kept up to date by `poll()` (a few stat calls when idle)."""

    def __init__(self, runs_dir: str | os.PathLike[str], experiment: str, clock: Clock = time.time,
                 between_runs: Callable[[], None] | None = None) -> None:
        super().__init__(runs_dir, experiment, history=HISTORY, clock=clock, between_runs=between_runs)
        self._cells: tuple[int, dict[Levels, list[RunLive]]] = (-1, {})
        self._cell_series: dict[tuple[Levels, str, int], tuple[tuple[int, ...], float, list[float]]] = {}

    def supervisor_alive(self) -> bool:
        """Whether a supervisor holds this experiment (the engine's flock probe)."""
        from cfftui.engine.control import supervisor_alive

        return bool(supervisor_alive(str(self.store.root), self.experiment))

    def cells(self) -> dict[Levels, list[RunLive]]:
        """Runs grouped by cell, in plan order (regrouped only when the plan changes)."""
        if self._cells[0] != self.structure_version:
            groups: dict[Levels, list[RunLive]] = {}
            for run in self.runs.values():
                groups.setdefault(tuple(run.cell.values()), []).append(run)
            self._cells = (self.structure_version, groups)
        return self._cells[1]

    def cell_series(self, cell: Levels, metric: str, layer: int) -> list[float]:
        """The mean across the cell's seeds, epoch by epoch, of one per-block metric.

        It reads every seed's history, so under a stream of events it is recomputed at most every
        CELL_SERIES_S seconds; when nothing changed it is never recomputed.
        """
        runs = self.cells().get(cell, [])
        stamp = tuple(r.version for r in runs)
        key = (cell, metric, layer)
        cached = self._cell_series.get(key)
        now = time.monotonic()
        if cached is not None and (cached[0] == stamp or now - cached[1] < CELL_SERIES_S):
            return cached[2]
        series = self._mean_series(runs, metric, layer)
        self._cell_series[key] = (stamp, now, series)
        return series

    @staticmethod
    def _mean_series(runs: list[RunLive], metric: str, layer: int) -> list[float]:
        by_epoch: dict[int, list[float]] = {}
        for run in runs:
            for epoch, value in zip(run.epochs, run.series(metric, layer), strict=False):
                if value is not None:
                    by_epoch.setdefault(epoch, []).append(value)
        return [statistics.fmean(by_epoch[e]) for e in sorted(by_epoch)][-HISTORY:]


def read_log_tail(path: str | os.PathLike[str], limit: int = LOG_TAIL_BYTES) -> str:
    """The last `limit` bytes of a log file as text, starting at a line boundary ('' when missing)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(size - limit, 0))
            data = f.read(limit)
    except OSError:
        return ""
    if size > limit and b"\n" in data:
        data = data.split(b"\n", 1)[1]
    return data.decode("utf-8", errors="replace")
