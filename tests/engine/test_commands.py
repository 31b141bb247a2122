"""The engine's commands through the real `cfftui` executable: run --headless/--detach, status, stop, plan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cfftui.engine import control
from cfftui.engine.store import RunStore
from cfftui.events import read_events

from .helpers import assert_complete_stream, wait_until

STUDY = """
[experiments.fake]
description = "fake runs for the engine tests"
dataset = "synthetic"
seeds = 2
model.depth = 2
model.heads = 2
model.embed_dim = 16
train.epochs = {epochs}
probe.epochs = 2
runtime.fake = true
runtime.fake_events_per_s = {rate}
runtime.checkpoint_every = 2

[experiments.fake.factors]
"loss.margin_mode" = ["clamp", "subtract"]

[experiments.fake.execution]
jobs = 2
retries = 0
"""


def study(tmp_path: Path, epochs: int = 6, rate: float = 60.0) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(STUDY.format(epochs=epochs, rate=rate))
    return path


def cfftui(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cfftui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def cfftui_bg(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cfftui", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_headless_run_to_done_exits_0_and_analyses(tmp_path: Path, runs: str) -> None:
    out = cfftui("run", "-f", str(study(tmp_path)), "--runs", runs, "--headless", "fake")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("fake: 4 runs; supervisor started, pid")
    assert sum(" done top1 " in line for line in lines) == 4
    assert any(line.startswith("fake: done 4 of 4") for line in lines)
    assert "analysis" in out.stdout + out.stderr or (RunStore(runs).results_dir("fake")).is_dir()
    plan = RunStore(runs).read_plan("fake")
    assert (
        plan["study_file"] == str(tmp_path / "study.toml")
        and plan["analysis"]["compare"] == "loss.margin_mode"
    )
    for r in plan["runs"]:
        assert_complete_stream(RunStore(runs).run_dir("fake", r["run_id"]), 6)


def test_headless_exits_1_when_a_run_fails(tmp_path: Path, runs: str) -> None:
    faults = json.dumps({"*": {"kind": "fail", "epoch": 2}})
    out = cfftui(
        "run", "-f", str(study(tmp_path)), "--runs", runs, "--headless", env={"CFFTUI_FAKE_FAULTS": faults}
    )
    assert out.returncode == 1
    assert out.stdout.count(" failed: RuntimeError: fake failure") == 4


@pytest.mark.parametrize(
    ("text", "args", "needle"),
    [
        ("[experiments.fake]\ntrain.epochs = 0\n", ["fake"], "train.epochs"),
        (None, ["nosuch"], "nosuch"),
        (None, ["--set", "model.depthh=2"], "model.depth"),
        (None, ["--jobs", "0"], "--jobs"),
    ],
    ids=["bad-value", "unknown-experiment", "bad-override", "bad-jobs"],
)
def test_invalid_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, runs: str, text: str | None, args: list[str], needle: str
) -> None:
    path = study(tmp_path)
    if text is not None:
        path.write_text(text)
    out = cfftui("run", "-f", str(path), "--runs", runs, "--headless", *args)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and needle in out.stderr
    assert not Path(runs).exists()


def test_detach_status_stop_and_resume(tmp_path: Path, runs: str) -> None:
    path = study(tmp_path, epochs=60, rate=15.0)
    out = cfftui("run", "-f", str(path), "--runs", runs, "--detach", "fake")
    assert out.returncode == 0 and "detached" in out.stdout
    store = RunStore(runs)
    ids = [r["run_id"] for r in store.read_plan("fake")["runs"]]
    wait_until(
        lambda: sum(len(read_events(store.metrics_path("fake", i))) > 2 for i in ids) >= 2,
        what="two runs going",
    )
    status = cfftui("status", "--runs", runs, "--json")
    assert status.returncode == 0
    info = json.loads(status.stdout)["fake"]
    assert info["alive"] and info["total"] == 4 and info["counts"]["running"] == 2
    running = [r for r in info["runs"] if r["state"] == "running"]
    assert all(r["pid"] and r["host"] and r["epochs"] == 60 and r["epoch"] >= 1 for r in running)
    assert info["eta_s"] is not None and info["eta_s"] > 0
    human = cfftui("status", "fake", "--runs", runs)
    assert human.returncode == 0 and "supervisor pid" in human.stdout and "running" in human.stdout
    stop = cfftui("stop", "fake", "--runs", runs)
    assert stop.returncode == 0 and "stop requested" in stop.stdout
    wait_until(
        lambda: (
            json.loads(cfftui("status", "--runs", runs, "--json").stdout)["fake"]["counts"] == {"stopped": 4}
        ),
        what="everything stopped",
    )
    assert cfftui("status", "nosuch", "--runs", runs).returncode == 2
    assert cfftui("stop", "fake", "--runs", runs, "--run", "nope").returncode == 2
    path.write_text(
        path.read_text().replace(
            "fake_events_per_s = 15.0", 'fake_events_per_s = 15.0\nruntime.device = "cpu"'
        )
    )
    # runtime.device is a placement key: the run ids stay, the stopped runs resume where they were.
    for i in ids:
        spec_path = store.run_dir("fake", i) / "spec.json"
        spec = json.loads(spec_path.read_text())
        spec["config"]["runtime"]["fake_events_per_s"] = 500.0
        spec_path.write_text(json.dumps(spec))
    out = cfftui("run", "-f", str(path), "--runs", runs, "--headless", "fake")
    assert out.returncode == 0, out.stdout + out.stderr
    for i in ids:
        assert_complete_stream(store.run_dir("fake", i), 60)


def test_two_concurrent_runs_share_one_supervisor(tmp_path: Path, runs: str) -> None:
    path = study(tmp_path, epochs=20, rate=20.0)
    first = cfftui_bg("run", "-f", str(path), "--runs", runs, "--headless", "fake")
    second = cfftui_bg("run", "-f", str(path), "--runs", runs, "--headless", "fake")
    outs = [p.communicate(timeout=60) for p in (first, second)]
    assert first.returncode == second.returncode == 0, outs
    pids = {line.rsplit("pid ", 1)[1].split(";")[0] for out, _ in outs for line in out.splitlines()[:1]}
    assert len(pids) == 1  # the same supervisor
    store = RunStore(runs)
    for r in store.read_plan("fake")["runs"]:
        assert store.read_status("fake", r["run_id"]).attempts == 1
        events = assert_complete_stream(store.run_dir("fake", r["run_id"]), 20)
        assert sum(e["event"] == "start" for e in events) == 1


def test_plan_shows_runs_states_and_cost(tmp_path: Path, runs: str) -> None:
    path = study(tmp_path)
    out = cfftui("plan", "-f", str(path), "--runs", runs, "--json")
    assert out.returncode == 0
    info = json.loads(out.stdout)["fake"]
    assert info["runs"] == 4 and info["cells"] == 2 and info["counts"] == {"queued": 4}
    assert info["cost"]["flops_total"] > 0
    human = cfftui("plan", "-f", str(path), "--runs", runs)
    assert "2 cells x 2 seeds = 4 runs" in human.stdout and info["run_list"][0]["run_id"] in human.stdout
    assert not Path(runs).exists()  # planning writes nothing


def test_headless_outlives_a_killed_supervisor(tmp_path: Path, runs: str) -> None:
    path = study(tmp_path, epochs=30, rate=15.0)
    run = cfftui_bg("run", "-f", str(path), "--runs", runs, "--headless", "fake")
    store = RunStore(runs)
    info = wait_until(lambda: control.supervisor_info(runs, "fake"), what="the supervisor")
    wait_until(
        lambda: any(
            store.read_status("fake", r["run_id"]).state == "running" for r in store.read_plan("fake")["runs"]
        ),
        what="a run going",
    )
    os.kill(int(info["pid"]), signal.SIGKILL)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, out + err
    assert "the supervisor is gone; starting a new one" in out
    for r in store.read_plan("fake")["runs"]:
        assert store.read_status("fake", r["run_id"]).attempts == 1  # re-adopted, not restarted
        assert_complete_stream(store.run_dir("fake", r["run_id"]), 30)


def test_demo_uses_the_shipped_study_when_there_is_no_demo_here(tmp_path: Path, runs: str) -> None:
    out = cfftui(
        "demo",
        "--runs",
        runs,
        "--set",
        "runtime.fake=true",
        "--set",
        "seeds=2",
        "--set",
        "runtime.fake_events_per_s=100.0",
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("demo: 8 runs; supervisor started")
    assert "demo: done 8 of 8" in out.stdout and "clamp / subtract" in out.stdout
