"""The one incremental reader of the run store, shared by the engine's snapshots and the console's live views.

A `RunWatch` follows one run: it tails `metrics.jsonl` by byte offset
(`events.Tail`), re-reads `status.json` only when the file was replaced, and
rebuilds from the start of the file when a resumed worker truncated it
(`Tail.resets`). It keeps the latest epoch metrics, the probe, result and end
events, the last epoch times (for ETA) and, when asked, bounded per-block
histories for sparklines. An `ExperimentWatch` holds an experiment's plan
(re-read only when plan.json changes) and one RunWatch per planned run, and
summarises them: counts, elapsed time and ETA. No textual, no torch, no polars.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from cfftui.engine.store import FINAL_STATES, RunStatus, RunStore, read_json
from cfftui.events import Tail

Clock = Callable[[], float]

ACTIVE_STATES = ("queued", "running")
METRICS = ("train_loss", "val_loss", "car", "grad_norm")
"""The per-block lists of an epoch event that histories keep."""
COLD_TAIL_BYTES = 16 * 1024
"""Without histories, a watcher's first read of a metrics file covers at most its last 16 KiB."""
RECENT_EPOCHS = 8
"""Epoch times averaged for a run's ETA: recent enough to follow a change of pace (GPU packing, retries)."""

_Stamp = tuple[int, int, int]


def _stamp(path: Path) -> _Stamp | None:
    """(inode, mtime, size): an atomic rename always changes the inode, so no rewrite goes unseen."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def as_float(value: Any) -> float | None:
    """A JSON number as float; None for null, booleans and anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


class History:
    """Per metric, the per-block lists of the last `maxlen` epoch events, aligned with `epochs`.

    The values are kept as the events carried them and read block by block only when a series is
    asked for: appending is what happens thousands of times a second, reading a series is rare.
    They are kept as tuples, which the garbage collector stops tracking once it sees they hold only
    numbers; lists would be ~200k tracked objects at 200 runs and make each full collection a pause
    of ~50 ms for the console.
    """

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self.epochs: deque[int] = deque(maxlen=maxlen)
        self.values: dict[str, deque[tuple[Any, ...]]] = {m: deque(maxlen=maxlen) for m in METRICS}

    def clear(self) -> None:
        self.epochs.clear()
        for values in self.values.values():
            values.clear()

    def append(self, epoch: int, event: dict[str, Any]) -> None:
        self.epochs.append(epoch)
        for metric, values in self.values.items():
            per_block = event.get(metric)
            values.append(tuple(per_block) if isinstance(per_block, list) else ())

    def series(self, metric: str, block: int) -> list[float | None]:
        """One block's values, epoch by epoch (None where an epoch has no such block); [] if none has."""
        out = [as_float(v[block]) if -len(v) <= block < len(v) else None for v in self.values.get(metric, ())]
        return out if any(x is not None for x in out) else []


class RunWatch:
    """What the files of one run say now, kept up to date by `poll()` (one or two stat() calls when idle)."""

    def __init__(self, run_dir: Path, run_id: str, cell: dict[str, str], seed: int, *,
                 history: int = 0) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self.cell = cell
        self.seed = seed
        self.tail = Tail(run_dir / "metrics.jsonl")
        self.status = RunStatus()
        self._status_stamp: _Stamp | None = None
        spec = read_json(run_dir / "spec.json") or {}
        self.epochs_total = int(((spec.get("config") or {}).get("train") or {}).get("epochs") or 0)
        """Stage-1 epochs planned (the spec's, or the start event's when it says)."""
        self.history = History(history) if history > 0 else None
        self.epoch_seconds: deque[float] = deque(maxlen=RECENT_EPOCHS)
        self.version = 0
        """Bumped on every change, so what is formatted from a run is recomputed only when needed."""
        self.reset()
        if self.history is None:
            self._skip_history()

    def reset(self) -> None:
        """Forget what the events said (the file was truncated: it is read again from the start)."""
        self.epoch = 0
        self.metrics: dict[str, Any] | None = None
        """The last epoch event."""
        self.probe: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None
        self.epoch_seconds.clear()
        if self.history is not None:
            self.history.clear()

    def _skip_history(self) -> None:
        """Start near the end of a long file: without histories, progress needs only the latest events."""
        try:
            size = os.stat(self.tail.path).st_size
        except OSError:
            return
        if size <= COLD_TAIL_BYTES:
            return
        with open(self.tail.path, "rb") as f:
            f.seek(size - COLD_TAIL_BYTES)
            f.readline()  # the rest of a line cut in half
            self.tail.offset = f.tell()

    # --- reading ---------------------------------------------------------------------------
    def poll(self) -> bool:
        """Read what changed on disk; True when anything did."""
        changed = self.poll_status()
        resets = self.tail.resets
        events = self.tail.read()
        if self.tail.resets != resets:
            self.reset()  # a resumed worker cut its events back to its checkpoint
            changed = True
        for event in events:
            self.apply(event)
        if events or changed:
            self.version += 1
            return True
        return False

    def poll_status(self) -> bool:
        stamp = _stamp(self.run_dir / "status.json")
        if stamp is None or stamp == self._status_stamp:
            return False
        data = read_json(self.run_dir / "status.json")
        if data is None:
            return False  # vanished between stat and open: the next poll sees the new file
        self.status, self._status_stamp = RunStatus.from_json(data), stamp
        return True

    def apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "epoch":
            self.epoch = int(event.get("epoch") or self.epoch + 1)
            self.metrics = event
            seconds = as_float(event.get("seconds"))
            if seconds is not None:
                self.epoch_seconds.append(seconds)
            if self.history is not None:
                self.history.append(self.epoch, event)
        elif kind == "start":
            self.epochs_total = int(event.get("epochs") or self.epochs_total)
            self.end = None
        elif kind == "probe":
            self.probe = event
        elif kind == "result":
            self.result = event
        elif kind == "end":
            self.end = event

    # --- what it says ------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self.status.state

    @property
    def seconds_per_epoch(self) -> float | None:
        return statistics.fmean(self.epoch_seconds) if self.epoch_seconds else None

    @property
    def eta_s(self) -> float | None:
        """Seconds of training left for a queued or running run, from its recent epoch times."""
        spe = self.seconds_per_epoch
        if self.state not in ACTIVE_STATES or spe is None or not self.epochs_total:
            return None
        return max(0, self.epochs_total - self.epoch) * spe

    def value(self, metric: str, block: int) -> float | None:
        """A per-block metric of the last epoch event (negative blocks count from the last)."""
        values = (self.metrics or {}).get(metric) or []
        return as_float(values[block]) if -len(values) <= block < len(values) else None

    @property
    def depth(self) -> int:
        """Blocks in the last epoch event."""
        metrics = self.metrics or {}
        return max((len(metrics.get(m) or ()) for m in METRICS), default=0)

    @property
    def images_per_s(self) -> float | None:
        return as_float((self.metrics or {}).get("images_per_s"))

    @property
    def top1(self) -> float | None:
        return as_float((self.result or {}).get("top1"))

    @property
    def top5(self) -> float | None:
        return as_float((self.result or {}).get("top5"))

    @property
    def end_reason(self) -> str | None:
        if self.end is None:
            return None
        return str(self.end.get("reason") or self.end.get("state") or "")

    @property
    def epochs(self) -> deque[int]:
        """The epoch numbers the history holds (empty without a history)."""
        return self.history.epochs if self.history is not None else deque()

    def series(self, metric: str, block: int) -> list[float | None]:
        return self.history.series(metric, block) if self.history is not None else []

    def epoch_series(self, metric: str, block: int) -> dict[int, float | None]:
        return dict(zip(self.epochs, self.series(metric, block), strict=False))


class ExperimentWatch:
    """An experiment's plan and its runs, in plan order, kept up to date by `poll()`."""

    def __init__(self, runs_dir: str | os.PathLike[str], experiment: str, *, history: int = 0,
                 clock: Clock = time.time, between_runs: Callable[[], None] | None = None) -> None:
        self.store = RunStore(runs_dir)
        self.between_runs = between_runs
        """Called before each run is read; it may raise to abandon a poll (the console does, when the
        user moves on), and every run read so far stays consistent."""
        self.experiment = experiment
        self.history = history
        self.clock = clock
        self.plan_path = self.store.experiment_dir(experiment) / "plan.json"
        self.plan: dict[str, Any] = {}
        self.runs: dict[str, RunWatch] = {}
        """Run id -> run, in plan order."""
        self._plan_stamp: _Stamp | None = None
        self.structure_version = 0
        """Bumped when the plan changes (views that group runs rebuild)."""

    @property
    def exists(self) -> bool:
        """Whether plan.json was found (at the last poll)."""
        return self._plan_stamp is not None

    def poll_plan(self) -> bool:
        """Re-read plan.json if it changed; True when the set of runs may have changed."""
        stamp = _stamp(self.plan_path)
        if stamp == self._plan_stamp:
            return False
        self._plan_stamp = stamp
        plan = read_json(self.plan_path) if stamp is not None else None
        if not isinstance(plan, dict):
            return False  # missing or unreadable: keep what was read before
        self.plan = plan
        runs: dict[str, RunWatch] = {}
        for entry in plan.get("runs") or []:
            run_id = str(entry.get("run_id", ""))
            if not run_id:
                continue
            runs[run_id] = self.runs.get(run_id) or RunWatch(
                self.store.run_dir(self.experiment, run_id), run_id,
                {str(k): str(v) for k, v in (entry.get("cell") or {}).items()}, int(entry.get("seed", 0)),
                history=self.history)
        self.runs = runs
        self.structure_version += 1
        return True

    def poll(self, run_ids: Iterable[str] | None = None) -> set[str]:
        """Read what changed on disk (every run, or only those named); return the ids of runs that changed."""
        self.poll_plan()
        changed = set()
        for run_id in list(self.runs) if run_ids is None else run_ids:
            if self.between_runs is not None:
                self.between_runs()
            run = self.runs.get(run_id)
            if run is not None and run.poll():
                changed.add(run_id)
        return changed

    # --- summaries -------------------------------------------------------------------------
    def counts(self) -> Counter[str]:
        return Counter(run.state for run in self.runs.values())

    def elapsed(self, *, alive: bool = False) -> float | None:
        """Seconds from the first start to now, or to the last end once nothing is active nor supervised."""
        starts = [s for r in self.runs.values() if (s := r.status.first_started_at or r.status.started_at)]
        if not starts:
            return None
        active = any(r.state in ACTIVE_STATES for r in self.runs.values())
        ends = [r.status.ended_at for r in self.runs.values() if r.status.ended_at]
        end = self.clock() if alive or active or not ends else max(ends)
        return max(0.0, end - min(starts))

    def eta(self) -> float | None:
        """Epochs left of queued and running runs at the mean recent pace, over the parallelism; 0 if none."""
        runs = list(self.runs.values())
        if not runs:
            return None
        pending = [r for r in runs if r.state in ACTIVE_STATES]
        if not pending:
            return 0.0
        paces = [p for r in runs if (p := r.seconds_per_epoch)]
        if not paces:
            return None
        running = sum(1 for r in pending if r.state == "running")
        jobs = int((self.plan.get("execution") or {}).get("jobs") or 0) or running or 1
        parallel = max(1, min(jobs, len(pending)), running)
        left = sum(max(0, r.epochs_total - r.epoch) for r in pending)
        return left * statistics.fmean(paces) / parallel

    @property
    def finished_runs(self) -> bool:
        """Every planned run is in a final state."""
        return bool(self.runs) and all(r.state in FINAL_STATES for r in self.runs.values())
