"""engine.watch: the one run-store reader, against real files and a real fake worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cfftui.engine.store import RunStatus, RunStore
from cfftui.engine.watch import COLD_TAIL_BYTES, ExperimentWatch, RunWatch
from cfftui.events import EventWriter, WorkerExit

from .helpers import fake_specs, meta


def make_experiment(runs: str, *, seeds: int = 1, epochs: int = 100, **execution: object) -> list[str]:
    store = RunStore(runs)
    specs = fake_specs(cells=("clamp",), seeds=seeds, epochs=epochs)
    entries = [{"run_id": s.run_id, "cell": s.cell, "seed": s.seed} for s in specs]
    store.write_plan("exp", entries, meta(**execution))
    for s in specs:
        store.run_dir("exp", s.run_id).mkdir()
        (store.run_dir("exp", s.run_id) / "spec.json").write_text(json.dumps(s.to_json()))
    return [s.run_id for s in specs]


def emit(path: Path, run_id: str, first: int, last: int, seconds: float = 0.5) -> None:
    with EventWriter(path, run_id) as out:
        for epoch in range(first, last + 1):
            out.emit("epoch", epoch=epoch, train_loss=[1.0 / epoch, 2.0], car=[0.5, None], seconds=seconds)


def test_a_run_follows_its_status_and_events_and_rebuilds_after_truncation(runs: str) -> None:
    [run_id] = make_experiment(runs)
    store = RunStore(runs)
    run = RunWatch(store.run_dir("exp", run_id), run_id, {"loss.margin_mode": "clamp"}, 0, history=50)
    assert run.epochs_total == 100 and not run.poll() and run.version == 0  # nothing on disk yet
    store.write_status("exp", run_id, RunStatus(state="running"))
    emit(store.metrics_path("exp", run_id), run_id, 1, 4)
    assert run.poll() and run.version == 1
    assert (run.state, run.epoch, run.depth, run.value("train_loss", -1), run.value("car", 1)) == \
        ("running", 4, 2, 2.0, None)
    assert run.series("train_loss", 0) == [1.0, 0.5, 1 / 3, 0.25] and list(run.epochs) == [1, 2, 3, 4]
    assert run.eta_s == 96 * 0.5
    assert not run.poll() and run.version == 1  # idle: no change reported, nothing recomputed
    checkpoint = os.path.getsize(store.metrics_path("exp", run_id))
    emit(store.metrics_path("exp", run_id), run_id, 5, 9, seconds=1.5)
    assert run.poll() and run.epoch == 9 and run.seconds_per_epoch == pytest.approx((3 * 0.5 + 5 * 1.5) / 8)
    os.truncate(store.metrics_path("exp", run_id), checkpoint)  # a resumed worker drops what came after
    assert run.poll() and run.epoch == 4 and len(run.series("car", 0)) == 4 and run.seconds_per_epoch == 0.5
    store.write_status("exp", run_id, RunStatus(state="done"))
    assert run.poll() and run.state == "done" and run.eta_s is None


def test_status_is_reread_only_when_replaced_and_kept_when_missing(runs: str) -> None:
    [run_id] = make_experiment(runs)
    store = RunStore(runs)
    run = RunWatch(store.run_dir("exp", run_id), run_id, {}, 0)
    store.write_status("exp", run_id, RunStatus(state="running", attempts=1))
    assert run.poll_status() and run.status.attempts == 1
    assert not run.poll_status()
    # a rewrite of the same size is seen: the stamp holds the inode, which each atomic rename changes
    store.write_status("exp", run_id, RunStatus(state="running", attempts=2))
    assert run.poll_status() and run.status.attempts == 2
    os.unlink(store.run_dir("exp", run_id) / "status.json")
    assert not run.poll_status() and run.status.attempts == 2


def test_without_history_a_cold_start_reads_only_the_tail(runs: str) -> None:
    [run_id] = make_experiment(runs, epochs=5000)
    path = RunStore(runs).metrics_path("exp", run_id)
    emit(path, run_id, 1, 3000)
    size = os.path.getsize(path)
    assert size > 4 * COLD_TAIL_BYTES
    cheap = RunWatch(path.parent, run_id, {}, 0)
    assert cheap.tail.offset >= size - COLD_TAIL_BYTES
    cheap.poll()
    assert cheap.epoch == 3000 and cheap.series("car", 0) == [] and not cheap.epochs
    full = RunWatch(path.parent, run_id, {}, 0, history=240)
    assert full.tail.offset == 0
    while full.tail.offset < size:  # the tail reads at most 1 MiB a call
        full.poll()
    assert full.epoch == 3000 and list(full.epochs) == list(range(2761, 3001))
    assert len(full.series("train_loss", 1)) == 240


def test_an_experiment_caches_its_plan_and_keeps_its_runs_across_plan_changes(runs: str) -> None:
    ids = make_experiment(runs, seeds=3, epochs=10, jobs=2)
    store = RunStore(runs)
    watch = ExperimentWatch(runs, "exp", clock=lambda: 1000.0)
    assert watch.poll() == set() and watch.exists and list(watch.runs) == ids and watch.structure_version == 1
    first = watch.runs[ids[0]]
    for i, run_id in enumerate(ids[:2]):
        store.write_status("exp", run_id, RunStatus(state="running", first_started_at=900.0 + i))
        emit(store.metrics_path("exp", run_id), run_id, 1, 4, seconds=2.0)
    assert watch.poll([ids[0]]) == {ids[0]}  # only the runs asked for are read
    assert watch.runs[ids[1]].epoch == 0
    assert watch.poll() == {ids[1]}
    assert watch.counts() == {"running": 2, "queued": 1}
    assert watch.elapsed() == 100.0
    assert watch.eta() == (6 + 6 + 10) * 2.0 / 2  # epochs left over two jobs
    plan = store.read_plan("exp") or {}
    kept = {k: v for k, v in plan.items() if k not in ("runs", "experiment")}
    store.write_plan("exp", plan["runs"][:2], kept)
    watch.poll()
    assert list(watch.runs) == ids[:2] and watch.runs[ids[0]] is first and watch.structure_version == 2
    for run_id in ids[:2]:
        store.write_status("exp", run_id, RunStatus(state="done", first_started_at=900.0, ended_at=950.0))
    watch.poll()
    assert watch.finished_runs and watch.eta() == 0.0 and watch.elapsed() == 50.0
    assert watch.elapsed(alive=True) == 100.0  # a live supervisor may still start something


def test_a_missing_experiment_is_reported_not_raised(runs: str) -> None:
    watch = ExperimentWatch(runs, "nope")
    assert watch.poll() == set() and not watch.exists and watch.eta() is None and watch.elapsed() is None


def test_follows_a_real_fake_worker_to_the_end(runs: str) -> None:
    [run_id] = make_experiment(runs, epochs=6)
    run_dir = RunStore(runs).run_dir("exp", run_id)
    run = RunWatch(run_dir, run_id, {}, 0, history=4)
    proc = subprocess.Popen([sys.executable, "-m", "cfftui.fakeworker", str(run_dir)])
    try:
        while proc.poll() is None:
            run.poll()
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.wait(5) == WorkerExit.DONE
    run.poll()
    assert run.epoch == 6 and list(run.epochs) == [3, 4, 5, 6] and run.depth == 2
    assert run.end is not None and run.end["state"] == "done" and run.end_reason
    assert run.top1 is not None and 0 < run.top1 <= (run.top5 or 0) <= 1
