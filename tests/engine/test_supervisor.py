"""The supervisor with real fake-worker subprocesses: the happy path and every fault that loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from cfftui.engine import control
from cfftui.engine.store import RunStore, read_json
from cfftui.events import read_events

from .helpers import assert_complete_stream, fake_specs, log_text, meta, wait_finished, wait_until


def epochs_seen(runs: str, run_id: str) -> int:
    return sum(e["event"] == "epoch" for e in read_events(Path(runs) / "exp" / run_id / "metrics.jsonl"))


def test_plan_to_done(runs: str) -> None:
    specs = fake_specs(seeds=2, epochs=6)
    pid = control.submit(runs, "exp", specs, meta(jobs=2))
    assert pid > 0
    snap = wait_finished(runs)
    assert snap.counts == {"done": 4} and snap.eta_s == 0.0
    store = RunStore(runs)
    for spec in specs:
        st = store.read_status("exp", spec.run_id)
        assert (st.state, st.attempts, st.failures, st.pid) == ("done", 1, 0, None)
        assert st.exit_code == 0 and st.ended_at >= st.started_at
        assert_complete_stream(store.run_dir("exp", spec.run_id), 6)
    plan = store.read_plan("exp")
    assert [r["run_id"] for r in plan["runs"]] == [s.run_id for s in specs]
    assert plan["execution"]["jobs"] == 2 and plan["factors"][0]["key"] == "loss.margin_mode"
    assert not control.supervisor_alive(runs, "exp")
    # Planning again changes nothing: done runs are never rerun.
    control.submit(runs, "exp", specs, meta(jobs=2))
    assert wait_finished(runs).counts == {"done": 4}
    assert all(store.read_status("exp", s.run_id).attempts == 1 for s in specs)


def test_sigkill_of_a_worker_is_retried_from_its_checkpoint(runs: str) -> None:
    spec = fake_specs(cells=("clamp",), seeds=1, epochs=30, rate=25.0, checkpoint_every=4)[0]
    control.submit(runs, "exp", [spec], meta())
    store = RunStore(runs)
    wait_until(lambda: epochs_seen(runs, spec.run_id) >= 9, what="epoch 9")
    os.kill(store.read_status("exp", spec.run_id).pid, signal.SIGKILL)
    snap = wait_finished(runs)
    st = store.read_status("exp", spec.run_id)
    assert snap.counts == {"done": 1} and st.attempts == 2 and st.failures == 1
    events = assert_complete_stream(store.run_dir("exp", spec.run_id), 30)
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 2 and starts[1]["resumed_from"] >= 8  # resumed from the epoch-8 checkpoint
    assert "killed by signal 9" in log_text(runs)


def test_sigkill_of_the_supervisor_leaves_workers_running_and_a_new_one_readopts(runs: str) -> None:
    specs = fake_specs(seeds=1, epochs=30, rate=20.0, checkpoint_every=3)
    sup = control.submit(runs, "exp", specs, meta(jobs=2))
    store = RunStore(runs)
    wait_until(lambda: all(epochs_seen(runs, s.run_id) >= 3 for s in specs), what="both runs going")
    pids = {s.run_id: store.read_status("exp", s.run_id).pid for s in specs}
    os.kill(sup, signal.SIGKILL)
    wait_until(lambda: not control.supervisor_alive(runs, "exp"), what="the lock to be released")
    time.sleep(0.3)
    assert all(psutil.pid_exists(p) for p in pids.values())  # the workers did not notice
    # While unsupervised, one worker dies too: the new supervisor must call it lost and retry it.
    lost_id, kept_id = specs[0].run_id, specs[1].run_id
    os.kill(pids[lost_id], signal.SIGKILL)
    new = control.launch_supervisor(runs, "exp")
    assert new != sup
    wait_finished(runs)
    kept, lost = store.read_status("exp", kept_id), store.read_status("exp", lost_id)
    assert (kept.state, kept.attempts) == ("done", 1)  # re-adopted, never started twice
    assert (lost.state, lost.attempts, lost.failures) == ("done", 2, 1)
    for s in specs:
        assert_complete_stream(store.run_dir("exp", s.run_id), 30)
    log = log_text(runs)
    assert f"re-adopted live worker pid {pids[kept_id]} (recorded pid)" in log
    assert "vanished without an end event" in log


def test_a_supervisor_that_dies_before_the_launcher_looks_still_counts_as_started(
    runs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A starved launcher can miss a supervisor's whole life (CI saw this): the launcher
    # must report it as started, not as a failed start, so that the caller adopts the runs.
    specs = fake_specs(seeds=1, epochs=30, rate=20.0)
    store = RunStore(runs)
    real_info = control.supervisor_info

    def starved_poll(runs_dir: str, experiment: str) -> None:
        info = wait_until(lambda: real_info(runs_dir, experiment), what="the supervisor")
        os.kill(int(info["pid"]), signal.SIGKILL)
        wait_until(lambda: not control.supervisor_alive(runs_dir, experiment), what="it to die")
        return None

    monkeypatch.setattr(control, "supervisor_info", starved_poll)
    pid = control.submit(runs, "exp", specs, meta(jobs=2))
    assert (read_json(store.lock_path("exp")) or {}).get("pid") == pid
    monkeypatch.undo()
    assert not control.supervisor_alive(runs, "exp")
    assert control.launch_supervisor(runs, "exp") != pid
    wait_finished(runs)
    for s in specs:
        assert store.read_status("exp", s.run_id).state == "done"


def test_failed_runs_retry_within_budget_and_diverged_runs_do_not(
    runs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    once, always, diverges = fake_specs(cells=("clamp", "subtract", "none"), seeds=1, epochs=4)
    monkeypatch.setenv(
        "CFFTUI_FAKE_FAULTS",
        json.dumps(
            {
                once.run_id: {"kind": "fail", "epoch": 2, "attempts": 1},
                always.run_id: {"kind": "crash", "epoch": 3},
                diverges.run_id: {"kind": "diverge", "epoch": 2},
            }
        ),
    )
    control.submit(runs, "exp", [once, always, diverges], meta(jobs=3, retries=1))
    snap = wait_finished(runs)
    assert snap.counts == {"done": 1, "failed": 1, "diverged": 1}
    store = RunStore(runs)
    st = {s.run_id: store.read_status("exp", s.run_id) for s in (once, always, diverges)}
    assert (st[once.run_id].state, st[once.run_id].attempts) == ("done", 2)
    assert (st[always.run_id].state, st[always.run_id].attempts) == ("failed", 2)
    assert "exit code 1" in st[always.run_id].error
    assert (st[diverges.run_id].state, st[diverges.run_id].attempts) == ("diverged", 1)
    assert_complete_stream(store.run_dir("exp", once.run_id), 4)
    # retry_failed gives the failed run a fresh budget; without the fault it now finishes.
    monkeypatch.delenv("CFFTUI_FAKE_FAULTS")
    control.retry_failed(runs, "exp")
    snap = wait_finished(runs)
    assert snap.counts == {"done": 2, "diverged": 1}
    assert store.read_status("exp", always.run_id).attempts == 3


def test_a_hung_worker_is_killed_and_retried(runs: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = fake_specs(cells=("clamp",), seeds=1, epochs=6, rate=50.0, checkpoint_every=2)[0]
    monkeypatch.setenv("CFFTUI_FAKE_FAULTS", json.dumps({"*": {"kind": "hang", "epoch": 4, "attempts": 1}}))
    control.submit(runs, "exp", [spec], meta(hang_timeout_s=0.6))
    snap = wait_finished(runs)
    st = RunStore(runs).read_status("exp", spec.run_id)
    assert snap.counts == {"done": 1} and st.attempts == 2
    assert_complete_stream(RunStore(runs).run_dir("exp", spec.run_id), 6)
    log = log_text(runs)
    assert "no events for" in log and "killing pid" in log  # the hang ignored SIGTERM, so SIGKILL


FAILING_WRITES = """
import sys
import cfftui.engine.store as store
real, failures = store.atomic_write_json, [0]
def flaky(path, data):
    if str(path).endswith("status.json") and failures[0] < 5:
        failures[0] += 1
        raise OSError(28, "No space left on device")
    real(path, data)
store.atomic_write_json = flaky
from cfftui.engine.supervisor import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_status_write_errors_are_logged_and_retried(runs: str) -> None:
    specs = fake_specs(seeds=1, epochs=4)
    store = RunStore(runs)
    store.write_plan("exp", [{"run_id": s.run_id, "cell": s.cell, "seed": s.seed} for s in specs], meta())
    for s in specs:
        store.run_dir("exp", s.run_id).mkdir()
        (store.run_dir("exp", s.run_id) / "spec.json").write_text(json.dumps(s.to_json()))
    sup = subprocess.run(
        [sys.executable, "-c", FAILING_WRITES, str(Path(runs).resolve()), "exp"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sup.returncode == 0, sup.stderr
    assert sup.stderr.count("could not write status.json") == 5
    assert all(store.read_status("exp", s.run_id).state == "done" for s in specs)


def test_stop_then_resume(runs: str) -> None:
    specs = fake_specs(seeds=1, epochs=40, rate=20.0, checkpoint_every=5)
    control.submit(runs, "exp", specs + fake_specs(cells=("none",), seeds=1, epochs=40), meta(jobs=2))
    store = RunStore(runs)
    wait_until(lambda: all(epochs_seen(runs, s.run_id) >= 3 for s in specs), what="runs going")
    control.stop(runs, "exp")
    snap = wait_finished(runs)
    assert snap.counts == {"stopped": 3}  # two running and one still queued
    for s in specs:
        assert read_events(store.metrics_path("exp", s.run_id))[-1]["state"] == "stopped"
    all_specs = specs + fake_specs(cells=("none",), seeds=1, epochs=40)
    for s in all_specs:
        spec = json.loads((store.run_dir("exp", s.run_id) / "spec.json").read_text())
        spec["config"]["runtime"]["fake_events_per_s"] = 400.0  # a placement-free speedup for the rest
        (store.run_dir("exp", s.run_id) / "spec.json").write_text(json.dumps(spec))
    control.submit(runs, "exp", all_specs, meta(jobs=3))
    assert wait_finished(runs).counts == {"done": 3}
    for s in all_specs:
        assert_complete_stream(store.run_dir("exp", s.run_id), 40)
    assert [store.read_status("exp", s.run_id).attempts for s in all_specs] == [2, 2, 1]


def test_stop_one_run(runs: str) -> None:
    slow, fast = fake_specs(seeds=1, epochs=20, rate=15.0)
    control.submit(runs, "exp", [slow, fast], meta(jobs=2))
    wait_until(lambda: epochs_seen(runs, slow.run_id) >= 2, what="slow run going")
    control.stop(runs, "exp", slow.run_id)
    snap = wait_finished(runs)
    assert {r.run_id: r.state for r in snap.runs} == {slow.run_id: "stopped", fast.run_id: "done"}


def test_a_stale_stop_request_is_ignored(runs: str) -> None:
    specs = fake_specs(seeds=1, epochs=3)
    RunStore(runs).control_dir("exp").mkdir(parents=True)
    (RunStore(runs).control_dir("exp") / "0-stop.json").write_text(json.dumps({"action": "stop", "t": 1.0}))
    control.submit(runs, "exp", specs, meta())
    assert wait_finished(runs).counts == {"done": 2}


def test_one_supervisor_per_experiment(runs: str) -> None:
    specs = fake_specs(seeds=2, epochs=36, rate=12.0)  # 3 s: longer than a loser waits for the lock
    first = control.submit(runs, "exp", specs, meta(jobs=4))
    second = control.submit(runs, "exp", specs, meta(jobs=4))  # attaches
    third = control.launch_supervisor(runs, "exp")  # a racing supervisor exits at once
    assert first == second == third
    wait_finished(runs)
    store = RunStore(runs)
    for s in specs:
        assert store.read_status("exp", s.run_id).attempts == 1
        events = assert_complete_stream(store.run_dir("exp", s.run_id), 36)
        assert sum(e["event"] == "start" for e in events) == 1
    assert "already supervised by pid" in log_text(runs)


def test_gpu_pinning_and_packing(runs: str) -> None:
    specs = fake_specs(cells=("clamp", "subtract", "none"), seeds=2, epochs=8, rate=30.0)
    control.submit(runs, "exp", specs, meta(jobs=0, gpus=["0", "1"], runs_per_gpu=2))
    store = RunStore(runs)
    peak: dict[str, int] = {}
    cache = control.SnapshotCache()
    while not (snap := control.snapshot(runs, "exp", cache)).finished:
        running = [r.status.gpu for r in snap.runs if r.state == "running"]
        for gpu in set(running):
            peak[gpu] = max(peak.get(gpu, 0), running.count(gpu))
        time.sleep(0.03)
    assert snap.counts == {"done": 6}
    assert peak == {"0": 2, "1": 2}
    for s in specs:
        st = store.read_status("exp", s.run_id)
        start = read_events(store.metrics_path("exp", s.run_id))[0]
        assert start["device"] == f"fake:{st.gpu}"
