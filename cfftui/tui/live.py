"""Incremental, bounded views of the run store that the console's watcher thread keeps (no Textual here).

The console never holds training state of its own: everything below is
rebuilt from `runs/` by tailing `metrics.jsonl` by byte offset
(`events.Tail`) and re-reading `status.json` only when its mtime changes.
Histories are `deque(maxlen=...)`, so memory stays bounded however long a
study runs. Only the watcher thread mutates these objects; the UI receives
immutable payloads built from them.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfftui.engine.store import FINAL_STATES, RunStatus, RunStore, read_json
from cfftui.events import Tail

Clock = Callable[[], float]

HISTORY = 240
"""Epochs kept per series and run (sparklines are at most a terminal wide)."""
METRICS = ("train_loss", "val_loss", "car", "grad_norm")
LOG_TAIL_BYTES = 16 * 1024
"""How much of stdout.log / stderr.log the run screen reads (the end of each file)."""
HEARTBEAT_STALE_S = 20.0


@dataclass
class RunLive:
    """What the console knows about one run, rebuilt from its files."""

    run_id: str
    cell: dict[str, str]
    seed: int
    status: RunStatus = field(default_factory=RunStatus)
    epochs_total: int = 0
    epoch: int = 0
    latest: dict[str, list[float | None]] = field(default_factory=dict)
    """Per-block values of the last epoch event, keyed by METRICS."""
    images_per_s: float | None = None
    epoch_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=8))
    top1: float | None = None
    top5: float | None = None
    end_reason: str | None = None
    epochs: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY))
    history: dict[str, list[deque[float | None]]] = field(default_factory=dict)
    """Per metric, per block: the values of the last HISTORY epochs (aligned with `epochs`)."""
    version: int = 0
    """Bumped on every change, so formatted rows are recomputed only when needed."""

    @property
    def state(self) -> str:
        return self.status.state

    def value(self, metric: str, layer: int) -> float | None:
        values = self.latest.get(metric) or []
        if not values:
            return None
        return values[layer] if -len(values) <= layer < len(values) else None

    def eta(self) -> float | None:
        """Seconds left for a running run from its recent epoch times; 0 when finished."""
        if self.state in FINAL_STATES:
            return 0.0
        if self.state != "running" or not self.epoch_seconds or not self.epochs_total:
            return None
        return max(self.epochs_total - self.epoch, 0) * statistics.fmean(self.epoch_seconds)

    def reset_metrics(self) -> None:
        self.epoch, self.latest, self.images_per_s = 0, {}, None
        self.top1 = self.top5 = None
        self.end_reason = None
        self.epoch_seconds.clear()
        self.epochs.clear()
        self.history = {}

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "start":
            self.epochs_total = int(event.get("epochs") or self.epochs_total)
        elif kind == "epoch":
            self._apply_epoch(event)
        elif kind == "result":
            self.top1, self.top5 = _float(event.get("top1")), _float(event.get("top5"))
        elif kind == "end":
            self.end_reason = str(event.get("reason") or event.get("state") or "")
        self.version += 1

    def _apply_epoch(self, event: dict[str, Any]) -> None:
        self.epoch = int(event.get("epoch") or self.epoch + 1)
        self.epochs.append(self.epoch)
        for metric in METRICS:
            values = [_float(v) for v in (event.get(metric) or [])]
            self.latest[metric] = values
            layers = self.history.setdefault(metric, [])
            while len(layers) < len(values):
                # a block that appears late is padded so its points stay aligned with `epochs`
                layers.append(deque([None] * (len(self.epochs) - 1), maxlen=HISTORY))
            for layer, series in enumerate(layers):
                series.append(values[layer] if layer < len(values) else None)
        self.images_per_s = _float(event.get("images_per_s"))
        seconds = _float(event.get("seconds"))
        if seconds is not None:
            self.epoch_seconds.append(seconds)

    def series(self, metric: str, layer: int) -> list[float | None]:
        layers = self.history.get(metric) or []
        if not layers:
            return []
        return list(layers[layer]) if -len(layers) <= layer < len(layers) else []

    def epoch_series(self, metric: str, layer: int) -> dict[int, float | None]:
        return dict(zip(self.epochs, self.series(metric, layer), strict=False))


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass
class _Watched:
    tail: Tail
    status_mtime: int = -1
    resets: int = 0


class StudyTracker:
    """One experiment's runs, kept up to date by `poll()` (cheap when nothing changed: a few stat calls)."""

    def __init__(self, runs_dir: str | os.PathLike[str], experiment: str, clock: Clock = time.time) -> None:
        self.store = RunStore(runs_dir)
        self.experiment = experiment
        self.clock = clock
        self.plan: dict[str, Any] = {}
        self.runs: dict[str, RunLive] = {}
        """Run id -> run, in plan order."""
        self._watched: dict[str, _Watched] = {}
        self._plan_mtime = -1
        self.structure_version = 0
        """Bumped when runs are added or the plan changes (the study table rebuilds its rows)."""

    # --- polling -----------------------------------------------------------
    def poll(self) -> set[str]:
        """Read what changed on disk; return the ids of runs that changed."""
        self._poll_plan()
        changed: set[str] = set()
        for run_id, run in self.runs.items():
            if self._poll_run(run_id, run):
                changed.add(run_id)
        return changed

    def _poll_plan(self) -> None:
        path = self.store.experiment_dir(self.experiment) / "plan.json"
        mtime = _mtime(path)
        if mtime == self._plan_mtime:
            return
        plan = read_json(path)
        if not isinstance(plan, dict):
            return
        self._plan_mtime = mtime
        self.plan = plan
        for entry in plan.get("runs") or []:
            run_id = str(entry.get("run_id", ""))
            if not run_id or run_id in self.runs:
                continue
            run = RunLive(run_id=run_id, cell={str(k): str(v) for k, v in (entry.get("cell") or {}).items()},
                          seed=int(entry.get("seed", 0)))
            spec = self.store.read_spec(self.experiment, run_id) or {}
            run.epochs_total = int(((spec.get("config") or {}).get("train") or {}).get("epochs") or 0)
            self.runs[run_id] = run
            self._watched[run_id] = _Watched(Tail(self.store.metrics_path(self.experiment, run_id)))
        self.structure_version += 1

    def _poll_run(self, run_id: str, run: RunLive) -> bool:
        watched = self._watched[run_id]
        changed = False
        status_path = self.store.run_dir(self.experiment, run_id) / "status.json"
        mtime = _mtime(status_path)
        if mtime != watched.status_mtime:
            watched.status_mtime = mtime
            run.status = self.store.read_status(self.experiment, run_id)
            run.version += 1
            changed = True
        events = watched.tail.read()
        if watched.tail.resets != watched.resets:
            # the worker resumed and cut its events back to the checkpoint: rebuild from the file
            watched.resets = watched.tail.resets
            run.reset_metrics()
            changed = True
        for event in events:
            run.apply(event)
            changed = True
        return changed

    # --- summaries ------------------------------------------------------------
    def counts(self) -> Counter[str]:
        return Counter(run.state for run in self.runs.values())

    def elapsed(self) -> float | None:
        """Seconds from the first start to now (or to the last end when nothing is running)."""
        starts = [r.status.first_started_at or r.status.started_at for r in self.runs.values()]
        starts = [s for s in starts if s]
        if not starts:
            return None
        if any(r.state == "running" for r in self.runs.values()):
            return self.clock() - min(starts)
        ends = [r.status.ended_at for r in self.runs.values() if r.status.ended_at]
        return (max(ends) if ends else self.clock()) - min(starts)

    def eta(self) -> float | None:
        """Remaining work in seconds divided by the runs in flight; 0 when every run is final."""
        runs = list(self.runs.values())
        if not runs:
            return None
        if all(r.state in FINAL_STATES for r in runs):
            return 0.0
        running = [r for r in runs if r.state == "running"]
        per_epoch = [statistics.fmean(r.epoch_seconds) for r in runs if r.epoch_seconds]
        if not running or not per_epoch:
            return None
        epoch_s = statistics.fmean(per_epoch)
        left = sum(max(r.epochs_total - r.epoch, 0) for r in runs if r.state not in FINAL_STATES)
        return left * epoch_s / len(running)

    def supervisor_alive(self) -> bool:
        """Whether a supervisor holds this experiment (the engine's flock probe; a fresh heartbeat otherwise)."""
        try:
            from cfftui.engine.control import supervisor_alive
        except ImportError:
            supervisor_alive = None
        if supervisor_alive is not None:
            return bool(supervisor_alive(str(self.store.root), self.experiment))
        beat = self.store.heartbeat(self.experiment)
        if not isinstance(beat, dict) or not isinstance(beat.get("t"), (int, float)):
            return False
        return time.time() - float(beat["t"]) < HEARTBEAT_STALE_S

    def cells(self) -> dict[tuple[str, ...], list[RunLive]]:
        """Runs grouped by cell, in plan order."""
        groups: dict[tuple[str, ...], list[RunLive]] = {}
        for run in self.runs.values():
            groups.setdefault(tuple(run.cell.values()), []).append(run)
        return groups

    def cell_series(self, cell: tuple[str, ...], metric: str, layer: int) -> list[float]:
        """The mean across the cell's seeds, epoch by epoch, of one per-block metric."""
        by_epoch: dict[int, list[float]] = {}
        for run in self.cells().get(cell, []):
            for epoch, value in run.epoch_series(metric, layer).items():
                if value is not None:
                    by_epoch.setdefault(epoch, []).append(value)
        return [statistics.fmean(by_epoch[e]) for e in sorted(by_epoch)][-HISTORY:]


def _mtime(path: Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


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
