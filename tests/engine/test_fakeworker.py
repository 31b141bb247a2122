"""The fake worker as a real subprocess: its event stream, SIGTERM, resume without duplicates, faults."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from cfftui.events import WorkerExit, read_events

from .helpers import assert_complete_stream, fake_specs, wait_until


def write_spec(tmp_path: Path, **kw: object) -> Path:
    spec = fake_specs(**kw)[0]  # type: ignore[arg-type]
    run_dir = tmp_path / spec.run_id
    run_dir.mkdir()
    (run_dir / "spec.json").write_text(json.dumps(spec.to_json()))
    return run_dir


def worker(run_dir: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cfftui.fakeworker", str(run_dir)],
        stderr=subprocess.PIPE,
        env={**__import__("os").environ, **env},
    )


def test_emits_a_complete_realistic_stream(tmp_path: Path) -> None:
    run_dir = write_spec(tmp_path, epochs=5, rate=200.0)
    assert worker(run_dir).wait(10) == WorkerExit.DONE
    events = assert_complete_stream(run_dir, 5)
    start, epoch, result = events[0], events[1], events[-2]
    assert start["event"] == "start" and start["resumed_from"] == 0 and start["depth"] == 2
    assert len(epoch["train_loss"]) == len(epoch["car"]) == len(epoch["grad_norm"]) == 2
    assert 0 < result["top1"] <= result["top5"] <= 1


def test_sigterm_checkpoints_and_a_restart_resumes_without_duplicates(tmp_path: Path) -> None:
    run_dir = write_spec(tmp_path, epochs=40, rate=40.0, checkpoint_every=3)
    proc = worker(run_dir)
    wait_until(lambda: sum(e["event"] == "epoch" for e in read_events(run_dir / "metrics.jsonl")) >= 7, 10)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == WorkerExit.STOPPED
    events = read_events(run_dir / "metrics.jsonl")
    assert events[-1] == {**events[-1], "event": "end", "state": "stopped"}
    stopped_at = max(e["epoch"] for e in events if e["event"] == "epoch")
    fast = {"CFFTUI_ATTEMPT": "2"}
    spec = json.loads((run_dir / "spec.json").read_text())
    spec["config"]["runtime"]["fake_events_per_s"] = 400.0
    (run_dir / "spec.json").write_text(json.dumps(spec))
    assert worker(run_dir, **fast).wait(10) == WorkerExit.DONE
    events = assert_complete_stream(run_dir, 40)
    starts = [e for e in events if e["event"] == "start"]
    assert [s["attempt"] for s in starts] == [1, 2] and starts[1]["resumed_from"] == stopped_at


def test_faults_from_the_environment(tmp_path: Path) -> None:
    run_dir = write_spec(tmp_path, epochs=5, rate=200.0)
    faults = {"*": {"kind": "diverge", "epoch": 3}}
    proc = worker(run_dir, CFFTUI_FAKE_FAULTS=json.dumps(faults))
    assert proc.wait(10) == WorkerExit.DIVERGED
    assert read_events(run_dir / "metrics.jsonl")[-1]["state"] == "diverged"
    bad = worker(run_dir, CFFTUI_FAKE_FAULTS=json.dumps({"*": {"kind": "badinput"}}))
    assert bad.wait(10) == WorkerExit.BAD_INPUT
    assert b"fake bad input" in bad.stderr.read()  # type: ignore[union-attr]
    spent = worker(
        run_dir, CFFTUI_ATTEMPT="2", CFFTUI_FAKE_FAULTS=json.dumps({"*": {"kind": "fail", "attempts": 1}})
    )
    assert spent.wait(10) == WorkerExit.DONE  # the fault was for attempt 1 only


def test_bad_spec_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "spec.json").write_text(
        '{"experiment": "x", "seed": 0, "cell": {}, "config": {"train": {"epochs": 0}}}'
    )
    proc = worker(tmp_path)
    assert proc.wait(10) == WorkerExit.BAD_INPUT
    err = proc.stderr.read().decode().strip()  # type: ignore[union-attr]
    assert err.count("\n") == 0 and "config.train.epochs" in err
    assert not (tmp_path / "metrics.jsonl").exists()
