"""The worker as a real subprocess: events, determinism, resume after SIGKILL and SIGTERM, divergence."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from cfftui.events import WorkerExit

from .helpers import events, make_run, start_worker, timeless, wait_for_epoch, worker

SCIENCE = ("epoch", "probe", "result")
LONGER = {"train": {"epochs": 8}, "data": {"synthetic_train": 600}}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = make_run(tmp_path_factory.mktemp("baseline") / "run", seed=1, **LONGER)
    done = worker(run)
    assert done.returncode == WorkerExit.DONE, done.stderr
    assert done.stdout == ""  # stdout carries nothing; human text goes to stderr
    return run


def test_event_sequence(baseline: Path) -> None:
    evts = events(baseline)
    kinds = [e["event"] for e in evts]
    assert kinds == ["start"] + ["epoch"] * 8 + ["probe"] * 3 + ["result", "end"]
    start, result, end = evts[0], evts[-2], evts[-1]
    assert start["device"] == "cpu" and start["precision"] == "fp32"
    assert (start["n_train"], start["n_val"], start["n_test"]) == (540, 60, 100)
    assert start["params"] == 5498 and start["resumed_from"] == 0 and start["attempt"] == 1
    assert 0 <= result["top1"] <= result["top5"] <= 1 and len(result["car"]) == 2
    assert end["state"] == "done"
    assert all(len(evts[1][k]) == 2 for k in ("train_loss", "val_loss", "car", "grad_norm"))
    assert (baseline / "checkpoint.pt").exists()


def test_same_seed_gives_identical_metrics_and_other_seeds_differ(tmp_path: Path, baseline: Path) -> None:
    again = make_run(tmp_path / "again", seed=1, **LONGER)
    other = make_run(tmp_path / "other", seed=2, **LONGER)
    assert worker(again).returncode == 0 and worker(other).returncode == 0
    assert timeless(events(again)) == timeless(events(baseline))
    assert timeless(events(other), SCIENCE) != timeless(events(baseline), SCIENCE)


def test_sigkill_then_restart_finishes_with_the_uninterrupted_metrics(tmp_path: Path, baseline: Path) -> None:
    run = make_run(tmp_path / "run", seed=1, **LONGER)
    proc = start_worker(run)
    wait_for_epoch(run, 3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (run / "checkpoint.pt").exists()
    done = worker(run)
    assert done.returncode == 0, done.stderr
    evts = events(run)
    assert [e["epoch"] for e in evts if e["event"] == "epoch"] == list(range(1, 9))
    assert [e["event"] for e in evts].count("start") == 2
    assert timeless(evts, SCIENCE) == timeless(events(baseline), SCIENCE)


def test_sigterm_stops_with_a_checkpoint_and_a_restart_resumes(tmp_path: Path, baseline: Path) -> None:
    run = make_run(tmp_path / "run", seed=1, **LONGER, runtime={"checkpoint_every": 100})
    proc = start_worker(run)
    wait_for_epoch(run, 2, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == WorkerExit.STOPPED, err
    assert events(run)[-1]["event"] == "end" and events(run)[-1]["state"] == "stopped"
    assert (run / "checkpoint.pt").exists()
    done = worker(run)
    assert done.returncode == 0, done.stderr
    assert "resuming after epoch" in done.stderr
    evts = events(run)
    assert [e["epoch"] for e in evts if e["event"] == "epoch"] == list(range(1, 9))
    assert timeless(evts, SCIENCE) == timeless(events(baseline), SCIENCE)


def test_finished_run_is_left_alone(baseline: Path) -> None:
    before = (baseline / "metrics.jsonl").read_bytes()
    again = worker(baseline)
    assert again.returncode == 0
    assert (baseline / "metrics.jsonl").read_bytes() == before


def test_huge_learning_rate_ends_diverged(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", train={"lr": 1e30, "epochs": 3})
    done = worker(run)
    assert done.returncode == WorkerExit.DIVERGED, done.stderr
    end = events(run)[-1]
    assert end["event"] == "end" and end["state"] == "diverged"
    assert not any(e["event"] == "result" for e in events(run))
