"""Fixtures of the console's tests: study files for the fake worker, and supervisors that are always stopped."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cfftui.engine.store import RunStore, read_json

FAKE_STUDY = """
[experiments.quick]
description = "fake worker: clamp vs subtract, finishes in seconds"
dataset = "synthetic"
seeds = 2
train.epochs = {quick_epochs}
probe.epochs = 1
runtime.fake = true
runtime.fake_events_per_s = 20

[experiments.quick.factors]
"loss.margin_mode" = ["clamp", "subtract"]

[experiments.quick.analysis]
bootstrap = 1000

[experiments.quick.execution]
jobs = 4

[experiments.long]
description = "fake worker: runs long enough to be stopped"
dataset = "synthetic"
seeds = 2
train.epochs = 2000
runtime.fake = true
runtime.fake_events_per_s = 4

[experiments.long.factors]
"loss.margin_mode" = ["clamp", "subtract"]

[experiments.long.execution]
jobs = 2
"""


@pytest.fixture
def fake_study(tmp_path: Path) -> Iterator[Path]:
    """A study file of two fake-worker experiments in tmp_path; every supervisor it starts is stopped after."""
    path = tmp_path / "experiments.toml"
    path.write_text(FAKE_STUDY.format(quick_epochs=12))
    yield path
    stop_supervisors(tmp_path / "runs")


def stop_supervisors(runs: Path) -> None:
    """Ask each supervisor to stop, then end the ones that remain (by their own pid, from their lock file)."""
    from cfftui.engine import control

    store = RunStore(runs)
    for name in store.experiments():
        if control.supervisor_alive(str(runs), name):
            control.stop(str(runs), name)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(control.supervisor_alive(str(runs), n) for n in store.experiments()):
        time.sleep(0.2)
    for name in store.experiments():
        info = read_json(store.lock_path(name)) or {}
        if control.supervisor_alive(str(runs), name) and info.get("pid"):
            os.kill(int(info["pid"]), signal.SIGKILL)
