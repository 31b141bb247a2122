"""The Ray executor without a cluster: one-line refusals that write nothing, and the node-side streaming."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cfftui.engine.executors.ray import apply_reply, common_line_prefix
from cfftui.engine.executors.ray_node import RunHost, carried_files
from cfftui.engine.store import atomic_write_json
from cfftui.events import read_events
from tests.engine.helpers import assert_complete_stream, fake_specs
from tests.ray.conftest import STUDY, cfftui


def test_ray_not_installed_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "experiments.toml").write_text(STUDY)
    shadow = tmp_path / "shadow" / "ray"
    shadow.mkdir(parents=True)
    # A Python without Ray, as far as `import ray` can tell.
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    out = cfftui(["run", "--headless", "--ray-address", "127.0.0.1:6379"], tmp_path,
                 {"PYTHONPATH": str(tmp_path / "shadow")})
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "cfftui: rayfake: executor \"ray\" needs Ray, which is not installed: pip install 'cfftui[ray]'"]
    assert not (tmp_path / "runs").exists()


def test_unreachable_cluster_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    (tmp_path / "experiments.toml").write_text(STUDY.replace('executor = "ray"', 'executor = "local"'))
    out = cfftui(["run", "--headless", "--executor", "ray", "--ray-address", "127.0.0.1:1"], tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("cfftui: rayfake: cannot reach the Ray cluster at 127.0.0.1:1")
    assert "refused" in lines[0]
    assert not (tmp_path / "runs").exists()
    (tmp_path / "experiments.toml").write_text(STUDY)
    assert cfftui(["plan"], tmp_path).returncode == 0, "planning a Ray study must not need the cluster"
    assert not (tmp_path / "runs").exists()


def test_common_line_prefix_keeps_whole_lines_only() -> None:
    old = b'{"event":"start"}\n{"event":"epoch","epoch":1}\n{"event":"epoch","epoch":2}\n'
    new = b'{"event":"start"}\n{"event":"epoch","epoch":1}\n{"event":"start","resumed_from":1}\n'
    assert common_line_prefix(old, new) == len(b'{"event":"start"}\n{"event":"epoch","epoch":1}\n')
    assert common_line_prefix(old, b"") == 0
    assert common_line_prefix(old, old) == len(old)


def drive(host: RunHost, local: Path, timeout: float = 30.0) -> int:
    """What the executor does each tick, until the attempt's final reply."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = local / "metrics.jsonl"
        data = metrics.read_bytes() if metrics.exists() else b""
        reply = host.poll(len(data), data[-64:])
        apply_reply(local, reply)
        if reply["exit"] is not None:
            return int(reply["exit"])
        time.sleep(0.05)
    raise AssertionError("the attempt did not end")


def test_resumed_attempt_mirrors_the_truncation_so_no_epoch_appears_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attempt 1 crashes after its epoch-4 checkpoint; attempt 2 gets the files elsewhere and resumes."""
    monkeypatch.setenv("CFFTUI_RAY_SCRATCH", str(tmp_path / "node"))
    spec = fake_specs(seeds=1, cells=("clamp",), epochs=8, rate=200, checkpoint_every=4)[0]
    local = tmp_path / "runs" / "exp" / spec.run_id
    local.mkdir(parents=True)
    atomic_write_json(local / "spec.json", spec.to_json())
    crash = {"CFFTUI_FAKE_FAULTS": json.dumps({"*": {"kind": "crash", "epoch": 6, "attempts": 1}}),
             "CFFTUI_ATTEMPT": "1"}
    first = RunHost(spec.run_id, "cfftui.fakeworker", carried_files(local), crash)
    assert drive(first, local) == 1
    events = read_events(local / "metrics.jsonl")
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2, 3, 4, 5]
    assert json.loads((local / "fake_checkpoint.json").read_text())["epoch"] == 4

    second = RunHost(spec.run_id, "cfftui.fakeworker", carried_files(local), {**crash, "CFFTUI_ATTEMPT": "2"})
    assert Path(second.info()["dir"]) != Path(first.info()["dir"])
    assert drive(second, local) == 0
    events = assert_complete_stream(local, 8)
    starts = [e for e in events if e["event"] == "start"]
    assert [s["resumed_from"] for s in starts] == [0, 4]
