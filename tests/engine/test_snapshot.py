"""control.snapshot: incremental tails, rebuilds after a worker truncates, cold reads of long files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cfftui.engine import control
from cfftui.engine.store import RunStatus, RunStore
from cfftui.events import EventWriter

from .helpers import fake_specs, meta


def make_store(runs: str, epochs: int = 5000) -> tuple[RunStore, str, Path]:
    spec = fake_specs(cells=("clamp",), seeds=1, epochs=epochs)[0]
    store = RunStore(runs)
    store.write_plan("exp", [{"run_id": spec.run_id, "cell": spec.cell, "seed": spec.seed}], meta())
    store.run_dir("exp", spec.run_id).mkdir()
    (store.run_dir("exp", spec.run_id) / "spec.json").write_text(json.dumps(spec.to_json()))
    store.write_status("exp", spec.run_id, RunStatus(state="running", first_started_at=1.0))
    return store, spec.run_id, store.metrics_path("exp", spec.run_id)


def emit_epochs(path: Path, run_id: str, first: int, last: int) -> None:
    with EventWriter(path, run_id) as out:
        for epoch in range(first, last + 1):
            out.emit("epoch", epoch=epoch, train_loss=[1.0, 0.5], seconds=0.5)


def test_incremental_updates_and_rebuild_after_truncation(runs: str) -> None:
    store, run_id, path = make_store(runs)
    cache = control.SnapshotCache()
    emit_epochs(path, run_id, 1, 10)
    snap = control.snapshot(runs, "exp", cache)
    run = snap.runs[0]
    assert (run.state, run.epoch, run.epochs) == ("running", 10, 5000)
    assert run.seconds_per_epoch == 0.5 and run.eta_s == (5000 - 10) * 0.5
    assert not snap.alive and not snap.finished  # running on disk, no supervisor: not final
    checkpoint = os.path.getsize(path)
    emit_epochs(path, run_id, 11, 14)
    assert control.snapshot(runs, "exp", cache).runs[0].epoch == 14
    os.truncate(path, checkpoint)  # a resumed worker drops what came after its checkpoint
    assert control.snapshot(runs, "exp", cache).runs[0].epoch == 10
    emit_epochs(path, run_id, 11, 12)
    assert control.snapshot(runs, "exp", cache).runs[0].epoch == 12
    store.write_status("exp", run_id, RunStatus(state="done", first_started_at=1.0, ended_at=5.0))
    snap = control.snapshot(runs, "exp", cache)
    assert snap.finished and snap.counts == {"done": 1} and snap.elapsed_s == 4.0 and snap.eta_s == 0.0


def test_a_cold_snapshot_reads_only_the_end_of_a_long_file(runs: str) -> None:
    _, run_id, path = make_store(runs)
    emit_epochs(path, run_id, 1, 4000)
    assert os.path.getsize(path) > 4 * control.COLD_TAIL_BYTES
    cache = control.SnapshotCache()
    run = control.snapshot(runs, "exp", cache).runs[0]
    assert run.epoch == 4000 and run.metrics["epoch"] == 4000
    tail = next(iter(cache.runs.values())).tail
    assert tail.offset == os.path.getsize(path)
