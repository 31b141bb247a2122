"""The run store: the on-disk layout every part of cfftui reads and writes.

    runs/<experiment>/
        plan.json           the planned runs: [{run_id, cell, seed}], in plan order
        supervisor.lock     held (flock) by the live supervisor of this experiment; {pid, host, t} inside
        supervisor.log      the supervisor's own log (state changes, errors), appended
        heartbeat.json      {pid, host, t, started_at, counts}: rewritten every few seconds
        control/            requests to the supervisor (stop, retry), one JSON file each
        results/            analysis tables and exports
        <run_id>/
            spec.json       the RunSpec the worker runs (written once, before the first start)
            status.json     state, attempts, pid, host, exit code or signal, times, last error
            metrics.jsonl   the worker's events (cfftui.events), append-only
            stdout.log, stderr.log
            checkpoint.pt   the worker's latest checkpoint (atomic)

plan.json holds what the analysis needs without the study file:
    {"experiment", "description", "study_file", "seeds": [...],
     "factors": [{"key": "loss.margin_mode", "levels": ["clamp", "subtract"]}, ...],
     "analysis": {"compare": "loss.margin_mode", "metric": "top1", "levels": ["clamp", "subtract"],
                  "bootstrap": 10000, "seed": 0},
     "execution": {...}, "runs": [{"run_id", "cell": {factor key: level label}, "seed"}]}

A resumed worker truncates metrics.jsonl back to the byte offset stored in its
checkpoint (so no epoch is recorded twice); tailers notice the file shrinking
(`events.Tail.resets`) and rebuild.

Status files are written atomically (temporary file, fsync, rename), so a
reader never sees half of one. Only the supervisor writes status.json; the
worker writes metrics.jsonl and its checkpoint.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATES = ("queued", "running", "done", "failed", "diverged", "stopped", "lost")
FINAL_STATES = frozenset({"done", "failed", "diverged", "stopped"})
"""States the engine does not leave on its own (failed runs may still be retried by request)."""


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write a whole file so that readers see the old or the new content, never a mix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any | None:
    """The parsed file, or None when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, ValueError, OSError):
        return None


@dataclass
class RunStatus:
    """The content of status.json."""

    state: str = "queued"
    attempts: int = 0
    """Worker starts so far (the first start is attempt 1)."""
    pid: int | None = None
    host: str | None = None
    executor: str | None = None
    gpu: str | None = None
    """The CUDA_VISIBLE_DEVICES value the worker was pinned to, if any."""
    exit_code: int | None = None
    signal: int | None = None
    started_at: float | None = None
    """Unix time of the current (or last) attempt's start."""
    ended_at: float | None = None
    first_started_at: float | None = None
    error: str | None = None
    """Last error in one line (exit reason, traceback tail, lost process...)."""
    pid_start: float | None = None
    """The worker process's creation time (psutil), so a new supervisor re-adopts the same process,
    never another one that reused its pid."""
    failures: int = 0
    """Failed or lost attempts since the retry budget was last reset; retried while <= retries."""
    updated_at: float = field(default_factory=time.time)

    @classmethod
    def from_json(cls, data: Any) -> RunStatus:
        if not isinstance(data, dict):
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class RunStore:
    """Paths and atomic reads/writes of one runs/ folder."""

    def __init__(self, root: str | os.PathLike[str] = "runs") -> None:
        self.root = Path(root)

    # --- layout -----------------------------------------------------------
    def experiment_dir(self, experiment: str) -> Path:
        return self.root / experiment

    def run_dir(self, experiment: str, run_id: str) -> Path:
        return self.root / experiment / run_id

    def experiments(self) -> list[str]:
        """Experiments that have a plan in this store."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "plan.json").is_file())

    # --- plan -------------------------------------------------------------
    def write_plan(self, experiment: str, plan: list[dict[str, Any]], meta: dict[str, Any]) -> None:
        d = self.experiment_dir(experiment)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_json(d / "plan.json", {"experiment": experiment, **meta, "runs": plan})

    def read_plan(self, experiment: str) -> dict[str, Any] | None:
        return read_json(self.experiment_dir(experiment) / "plan.json")

    # --- runs -------------------------------------------------------------
    def read_spec(self, experiment: str, run_id: str) -> dict[str, Any] | None:
        return read_json(self.run_dir(experiment, run_id) / "spec.json")

    def read_status(self, experiment: str, run_id: str) -> RunStatus:
        data = read_json(self.run_dir(experiment, run_id) / "status.json")
        return RunStatus.from_json(data) if data is not None else RunStatus()

    def write_status(self, experiment: str, run_id: str, status: RunStatus) -> None:
        status.updated_at = time.time()
        atomic_write_json(self.run_dir(experiment, run_id) / "status.json", asdict(status))

    def metrics_path(self, experiment: str, run_id: str) -> Path:
        return self.run_dir(experiment, run_id) / "metrics.jsonl"

    # --- supervisor -------------------------------------------------------
    def heartbeat(self, experiment: str) -> dict[str, Any] | None:
        return read_json(self.experiment_dir(experiment) / "heartbeat.json")

    def write_heartbeat(self, experiment: str, **extra: Any) -> None:
        atomic_write_json(self.experiment_dir(experiment) / "heartbeat.json",
                          {"pid": os.getpid(), "host": socket.gethostname(), "t": time.time(), **extra})

    def results_dir(self, experiment: str) -> Path:
        return self.experiment_dir(experiment) / "results"

    def lock_path(self, experiment: str) -> Path:
        return self.experiment_dir(experiment) / "supervisor.lock"

    def log_path(self, experiment: str) -> Path:
        return self.experiment_dir(experiment) / "supervisor.log"

    def control_dir(self, experiment: str) -> Path:
        return self.experiment_dir(experiment) / "control"
