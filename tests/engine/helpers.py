"""Helpers for the engine tests: fake-run specs, waiting, and stream checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cfftui.engine import control
from cfftui.events import read_events
from cfftui.spec import RunSpec, config_from_dict


def fake_specs(
    experiment: str = "exp",
    *,
    cells: tuple[str, ...] = ("clamp", "subtract"),
    seeds: int = 2,
    epochs: int = 6,
    rate: float = 60.0,
    checkpoint_every: int = 2,
    probe_epochs: int = 2,
) -> list[RunSpec]:
    specs = []
    for mode in cells:
        config = config_from_dict(
            {
                "model": {"depth": 2},
                "loss": {"margin_mode": mode},
                "train": {"epochs": epochs},
                "probe": {"epochs": probe_epochs},
                "runtime": {"fake": True, "fake_events_per_s": rate, "checkpoint_every": checkpoint_every},
            }
        )
        specs += [RunSpec(experiment, {"loss.margin_mode": mode}, seed, config) for seed in range(seeds)]
    return specs


def meta(**execution: Any) -> dict[str, Any]:
    return {
        "description": "test",
        "seeds": [],
        "factors": [{"key": "loss.margin_mode", "levels": ["clamp", "subtract"]}],
        "analysis": {},
        "execution": {"jobs": 2, "retries": 2, "hang_timeout_s": 0, **execution},
    }


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_finished(runs: str, experiment: str = "exp", timeout: float = 30.0) -> control.ExperimentSnapshot:
    cache = control.SnapshotCache()

    def done() -> control.ExperimentSnapshot | None:
        snap = control.snapshot(runs, experiment, cache)
        return snap if snap.finished else None

    return wait_until(done, timeout, f"{experiment} to finish")


def assert_complete_stream(run_dir: Path, epochs: int, probe_epochs: int = 2) -> list[dict[str, Any]]:
    """Every epoch exactly once and in order, the probe, one result, and a final end 'done'."""
    events = read_events(run_dir / "metrics.jsonl")
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == list(range(1, epochs + 1))
    assert [e["epoch"] for e in events if e["event"] == "probe"] == list(range(1, probe_epochs + 1))
    assert [e["event"] for e in events].count("result") == 1
    assert events[-1]["event"] == "end" and events[-1]["state"] == "done"
    assert [e["event"] for e in events].count("end") == 1
    return events


def log_text(runs: str, experiment: str = "exp") -> str:
    return (Path(runs) / experiment / "supervisor.log").read_text()
