"""The engine driving the real trainer (`python -m cfftui.cff.worker`) on the synthetic dataset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cfftui.engine.store import RunStore
from cfftui.events import read_events

from .helpers import wait_until

STUDY = """
[experiments.tiny]
description = "a demo-like 2-cell study, tiny enough for a CPU test"
dataset = "synthetic"
seeds = 2
data.image_size = 8
data.synthetic_train = 120
data.synthetic_test = 40
data.num_classes = 4
model.depth = 2
model.heads = 2
model.embed_dim = 16
train.epochs = 40
train.batch_size = 40
probe.epochs = 2
probe.batch_size = 40
runtime.device = "cpu"
runtime.checkpoint_every = 5

[experiments.tiny.factors]
"loss.margin_mode" = ["clamp", "subtract"]

[experiments.tiny.execution]
jobs = 2
retries = 1
"""


@pytest.mark.slow
def test_real_study_end_to_end_with_a_sigkilled_worker(tmp_path: Path, runs: str) -> None:
    (tmp_path / "study.toml").write_text(STUDY)
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cfftui",
            "run",
            "-f",
            str(tmp_path / "study.toml"),
            "--runs",
            runs,
            "--headless",
            "tiny",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = RunStore(runs)
    plan = wait_until(lambda: store.read_plan("tiny") or run.poll() is not None, 30, "the plan")
    assert run.poll() is None, run.communicate()
    victim = plan["runs"][0]["run_id"]

    def epochs() -> int:
        return sum(e["event"] == "epoch" for e in read_events(store.metrics_path("tiny", victim)))

    wait_until(lambda: epochs() >= 12, 90, "12 epochs of the real trainer")
    os.kill(store.read_status("tiny", victim).pid, signal.SIGKILL)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out + err
    assert "clamp / subtract" in out  # the analysis headline
    for entry in plan["runs"]:
        events = read_events(store.metrics_path("tiny", entry["run_id"]))
        assert [e["epoch"] for e in events if e["event"] == "epoch"] == list(range(1, 41))
        assert [e["event"] for e in events][-2:] == ["result", "end"] and events[-1]["state"] == "done"
        assert 0.0 <= events[-2]["top1"] <= 1.0
    starts = [e for e in read_events(store.metrics_path("tiny", victim)) if e["event"] == "start"]
    assert len(starts) == 2 and starts[1]["resumed_from"] >= 10  # from the checkpoint, not from scratch
    st = store.read_status("tiny", victim)
    assert (st.state, st.attempts, st.failures) == ("done", 2, 1)
    assert (
        f"{victim} running -> failed (killed by signal 9"
        in (Path(runs) / "tiny" / "supervisor.log").read_text()
    )
    assert (store.run_dir("tiny", victim) / "checkpoint.pt").is_file()
