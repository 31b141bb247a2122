"""Run directories and worker subprocesses for the cff tests."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cfftui.events import read_events
from cfftui.spec import RunSpec, config_from_dict

TINY: dict[str, Any] = {
    "model": {"embed_dim": 16, "heads": 2, "depth": 2, "patch_size": 4},
    "data": {
        "dataset": "synthetic",
        "image_size": 8,
        "channels": 3,
        "synthetic_train": 300,
        "synthetic_test": 100,
    },
    "train": {"epochs": 3, "batch_size": 32},
    "probe": {"epochs": 3, "batch_size": 64},
    "runtime": {"device": "cpu", "checkpoint_every": 1, "threads": 1},
}
TIME_FIELDS = {"t", "seconds", "images_per_s"}


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) for k, v in base.items()}
    for section, values in over.items():
        out.setdefault(section, {}).update(values)
    return out


def make_run(run_dir: Path, seed: int = 1, **sections: dict[str, Any]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = RunSpec("test", {}, seed, config_from_dict(merge(TINY, sections)))
    (run_dir / "spec.json").write_text(json.dumps(spec.to_json()))
    return run_dir


def worker(run_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cfftui.cff.worker", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_worker(run_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cfftui.cff.worker", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_epoch(run_dir: Path, epoch: int, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = read_events(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").exists() else []
        if any(e["event"] == "epoch" and e["epoch"] >= epoch for e in events):
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"worker exited early: {proc.returncode} {proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(0.005)
    raise AssertionError(f"no epoch {epoch} within {timeout}s")


def events(run_dir: Path) -> list[dict[str, Any]]:
    return read_events(run_dir / "metrics.jsonl")


def timeless(
    evts: list[dict[str, Any]], kinds: tuple[str, ...] = ("start", "epoch", "probe", "result", "end")
) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in TIME_FIELDS} for e in evts if e["event"] in kinds]
