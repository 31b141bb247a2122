"""The incremental run-store reader and the payloads built from it, against real files on disk."""

from __future__ import annotations

from pathlib import Path

from cfftui.engine.store import RunStatus, RunStore
from cfftui.tui.feed import StoreFeed, cell_key, run_key
from cfftui.tui.live import HISTORY, StudyTracker, read_log_tail

from .storefill import T0, epoch_event, finished_store, live_store, write_events


def test_tracker_reads_plan_status_and_events(tmp_path: Path) -> None:
    specs = finished_store(tmp_path, seeds=2, epochs=4)
    tracker = StudyTracker(tmp_path, "margin", clock=lambda: T0 + 1000)
    changed = tracker.poll()
    assert changed == {s.run_id for s in specs}
    run = tracker.runs[specs[0].run_id]
    assert (run.state, run.epoch, run.epochs_total, run.top1) == ("done", 4, 4, 0.5)
    assert run.series("train_loss", 0) == [1.9, 1.8, 1.7, 1.6]
    assert tracker.poll() == set()  # nothing changed on disk: nothing reported
    assert tracker.counts()["done"] == 4 and tracker.eta() == 0.0
    assert tracker.elapsed() == 60 + 2 * 4 + 2  # first start to last end


def test_tracker_follows_appends_torn_lines_and_truncation(tmp_path: Path) -> None:
    specs = live_store(tmp_path, seeds=1, epochs=10)
    tracker = StudyTracker(tmp_path, "live")
    tracker.poll()
    run_id = specs[0].run_id
    path = RunStore(tmp_path).metrics_path("live", run_id)
    line = '{"v":1,"event":"epoch","t":1,"run":"x","epoch":4,"train_loss":[1.0],"car":[0.5]}'
    with open(path, "a") as f:
        f.write(line[:30])  # a torn line: held back until its newline arrives
    assert tracker.poll() == set()
    with open(path, "a") as f:
        f.write(line[30:] + "\n")
    assert tracker.poll() == {run_id}
    assert tracker.runs[run_id].epoch == 4
    # a resumed worker cuts its events back to the checkpoint: the tracker rebuilds from the file
    path.write_text("")
    write_events(path, [epoch_event(run_id, 1, 0, 0, T0)])
    tracker.poll()
    assert tracker.runs[run_id].epoch == 1 and len(tracker.runs[run_id].series("train_loss", 0)) == 1


def test_histories_are_bounded(tmp_path: Path) -> None:
    specs = live_store(tmp_path, seeds=1, epochs=1000)
    path = RunStore(tmp_path).metrics_path("live", specs[0].run_id)
    write_events(path, [epoch_event(specs[0].run_id, e, 0, 0, T0 + e) for e in range(4, HISTORY + 100)])
    tracker = StudyTracker(tmp_path, "live")
    tracker.poll()
    run = tracker.runs[specs[0].run_id]
    # epochs 1..HISTORY+99 were written; only the last HISTORY are kept
    assert len(run.series("car", 2)) == HISTORY and run.epochs[0] == 100


def test_study_payload_rows_and_filters(tmp_path: Path) -> None:
    specs = live_store(tmp_path, seeds=2, epochs=10)
    feed = StoreFeed(tmp_path, tmp_path / "missing.toml", clock=lambda: T0 + 100)
    payload = feed.study_view("live", selected=run_key(specs[0].run_id))
    assert payload.keys[0] == cell_key(("clamp",)) and payload.keys[1] == run_key(specs[0].run_id)
    assert [str(c) for c in payload.rows[payload.keys[1]]][2:5] == ["▶ running", "3/10", "1.700"]
    assert payload.sparks["run_loss"] == [1.9, 1.8, 1.7]
    failed = feed.study_view("live", state_filter="failed")
    assert [k for k in failed.keys if k.startswith("r:")] == [run_key(specs[-1].run_id)]
    assert "filter: failed" in failed.summary


def test_overview_lists_store_experiments_and_file_errors(tmp_path: Path) -> None:
    finished_store(tmp_path / "runs")
    bad = tmp_path / "experiments.toml"
    bad.write_text("[experiments.x]\nseeds = 'many'\n")
    overview = StoreFeed(tmp_path / "runs", bad).overview()
    assert overview.error is not None and "experiments.toml" in overview.error
    assert overview.error.count("\n") == 0
    [row] = overview.rows
    assert row.finished and str(row.cells[0]) == "margin (store)" and str(row.cells[1]) == "2×3"


def test_run_payload_has_layers_logs_spec_status(tmp_path: Path) -> None:
    specs = finished_store(tmp_path, seeds=1, epochs=3)
    store = RunStore(tmp_path)
    store.write_status("margin", specs[0].run_id, RunStatus(state="failed", attempts=2, error="boom: bad"))
    payload = StoreFeed(tmp_path, tmp_path / "x.toml").run_view("margin", specs[0].run_id, layer=1)
    assert payload is not None
    assert [str(c) for c in payload.layers[1]] == ["L1", "1.900", "1.950", "39.0%", "0.250"]
    assert payload.series["car"] == [0.43, 0.41, 0.39]
    assert "seed 0: training 3 blocks" in payload.stderr
    assert "error     boom: bad" in payload.status and "attempts  2" in payload.status
    assert "loss.margin_mode = clamp" in payload.spec


def test_log_tail_is_bounded(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    log.write_text("".join(f"line {i}\n" for i in range(10000)))
    text = read_log_tail(log, limit=1000)
    assert len(text) <= 1000 and text.startswith("line ") and text.endswith("line 9999\n")
    assert read_log_tail(tmp_path / "none.log") == ""


def test_a_tracker_poll_can_be_abandoned_between_runs(tmp_path: Path) -> None:
    specs = finished_store(tmp_path, seeds=2, epochs=4)
    seen: list[int] = []

    class Moved(Exception):
        pass

    def between_runs() -> None:
        if len(seen) == 2:
            raise Moved
        seen.append(1)

    tracker = StudyTracker(tmp_path, "margin", between_runs=between_runs)
    try:
        tracker.poll()
    except Moved:
        pass
    read = [r for r in tracker.runs.values() if r.epoch == 4]
    assert len(read) == 2  # the two runs read before the abandon are whole, the rest untouched
    tracker.between_runs = None
    assert tracker.poll() == {s.run_id for s in specs} - {r.run_id for r in read}
