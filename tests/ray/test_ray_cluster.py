"""Studies end to end on a real two-node Ray cluster: CLI, lost actors and nodes, stop, resume, trainer."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import psutil
import pytest

from cfftui.engine import control
from cfftui.engine.store import RunStore
from cfftui.events import read_events
from tests.engine.helpers import assert_complete_stream, fake_specs, log_text, meta, wait_finished, wait_until
from tests.ray.conftest import STUDY, Cluster, cfftui

pytestmark = pytest.mark.ray

FAST = {"CFFTUI_POLL_S": "0.1", "CFFTUI_HEARTBEAT_S": "0.5", "CFFTUI_KILL_GRACE_S": "2",
        "CFFTUI_STOP_GRACE_S": "10", "CFFTUI_WATCH_S": "0.1", "CFFTUI_SUMMARY_S": "60"}



@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for k, v in FAST.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("CFFTUI_FAKE_FAULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    return str(tmp_path / "runs")


def nodes_used(runs: str, experiment: str) -> set[str]:
    return set(re.findall(r"runs on Ray node (\w+)", log_text(runs, experiment)))


def worker_of(cluster: Cluster, run_id: str) -> psutil.Process | None:
    """The worker process of a run, in its private folder on a node."""
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if cmd and any(part.startswith(str(cluster.scratch / f"cfftui-{run_id}-")) for part in cmd):
            return proc
    return None


def epochs_here(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    return [e["epoch"] for e in read_events(path) if e["event"] == "epoch"] if path.exists() else []


def test_cli_runs_a_study_on_the_cluster(ray_cluster: Cluster, runs: str, tmp_path: Path) -> None:
    (tmp_path / "experiments.toml").write_text(STUDY)
    out = cfftui(["run", "--headless", "--ray-address", ray_cluster.address], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    store = RunStore(runs)
    plan = store.read_plan("rayfake")
    assert plan["execution"]["executor"] == "ray"
    for r in plan["runs"]:
        st = store.read_status("rayfake", r["run_id"])
        assert (st.state, st.executor, st.attempts) == ("done", "ray", 1)
        assert_complete_stream(store.run_dir("rayfake", r["run_id"]), 6)
    assert len(nodes_used(runs, "rayfake")) == 2, "two one-CPU nodes hold the two concurrent runs"
    assert (store.results_dir("rayfake")).is_dir(), "the analysis ran on the streamed-back results"
    status = json.loads(cfftui(["status", "--json"], tmp_path).stdout)
    assert status["rayfake"]["counts"] == {"done": 4}
    # Every attempt released its actor and removed its private folder.
    wait_until(lambda: not list(ray_cluster.scratch.glob("cfftui-*")), 10, "private run dirs to go")


def test_lost_node_process_is_retried_from_its_checkpoint(ray_cluster: Cluster, runs: str) -> None:
    specs = fake_specs(cells=("clamp",), seeds=2, epochs=12, rate=6, checkpoint_every=2)
    control.submit(runs, "exp", specs, meta(executor="ray", ray_address=ray_cluster.address, jobs=0))
    victim = specs[0].run_id
    run_dir = Path(runs) / "exp" / victim
    wait_until(lambda: len(epochs_here(run_dir)) >= 5 and (run_dir / "fake_checkpoint.json").exists(), 40,
               "epochs and a checkpoint to stream back")
    worker = worker_of(ray_cluster, victim)
    assert worker is not None
    host = worker.parent()  # the Ray worker process that hosts the run's actor
    assert host is not None and "ray" in " ".join(host.cmdline()).lower()
    host.send_signal(signal.SIGKILL)
    wait_until(lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE, 10,
               "the orphaned worker to die with its actor")

    snap = wait_finished(runs, "exp", timeout=90)
    assert snap.counts == {"done": 2}
    st = RunStore(runs).read_status("exp", victim)
    assert (st.attempts, st.failures) == (2, 1)
    events = assert_complete_stream(run_dir, 12)
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 2
    assert starts[1]["resumed_from"] >= 4, "the retry resumed from the streamed checkpoint"
    assert f"{victim} running -> lost" in log_text(runs, "exp")
    placed = re.findall(rf"{victim} runs on Ray node (\w+)", log_text(runs, "exp"))
    assert len(placed) == 2, "each attempt reports the node Ray placed it on"
    print(f"attempt nodes: {[n[:8] for n in placed]}")


def test_stop_cancels_ray_work_and_run_resumes(ray_cluster: Cluster, runs: str) -> None:
    specs = fake_specs(cells=("subtract",), seeds=2, epochs=10, rate=4, checkpoint_every=5)
    control.submit(runs, "exp", specs, meta(executor="ray", ray_address=ray_cluster.address, jobs=0))
    dirs = [Path(runs) / "exp" / s.run_id for s in specs]
    wait_until(lambda: all(len(epochs_here(d)) >= 2 for d in dirs), 40, "both runs to stream epochs")
    control.stop(runs, "exp")
    snap = wait_finished(runs, "exp", timeout=60)
    assert snap.counts == {"stopped": 2}
    assert all(worker_of(ray_cluster, s.run_id) is None for s in specs), "no worker left on any node"
    for d in dirs:
        events = read_events(d / "metrics.jsonl")
        assert events[-1]["event"] == "end" and events[-1]["state"] == "stopped"
        assert (d / "fake_checkpoint.json").exists(), "the SIGTERM checkpoint came back"

    control.submit(runs, "exp", specs, meta(executor="ray", ray_address=ray_cluster.address, jobs=0))
    assert wait_finished(runs, "exp", timeout=60).counts == {"done": 2}
    for d in dirs:
        events = assert_complete_stream(d, 10)
        assert [e["resumed_from"] for e in events if e["event"] == "start"][-1] >= 2


def test_new_supervisor_readopts_running_actors(ray_cluster: Cluster, runs: str) -> None:
    specs = fake_specs(cells=("clamp",), seeds=1, epochs=10, rate=4, checkpoint_every=2)
    pid = control.submit(runs, "exp", specs, meta(executor="ray", ray_address=ray_cluster.address, jobs=0))
    run_dir = Path(runs) / "exp" / specs[0].run_id
    wait_until(lambda: len(epochs_here(run_dir)) >= 2, 40, "epochs")
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not control.supervisor_alive(runs, "exp"), 10, "the supervisor to die")
    control.launch_supervisor(runs, "exp")
    assert wait_finished(runs, "exp", timeout=60).counts == {"done": 1}
    st = RunStore(runs).read_status("exp", specs[0].run_id)
    assert st.attempts == 1, "the running actor was re-adopted, not replaced"
    assert_complete_stream(run_dir, 10)
    assert "re-adopted" in log_text(runs, "exp")


def test_real_trainer_runs_on_the_cluster(ray_cluster: Cluster, runs: str, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    study = """
[experiments.tiny]
description = "one tiny real CFF run on a Ray cluster"
dataset = "synthetic"
seeds = 1
data.image_size = 8
data.channels = 1
data.synthetic_train = 200
data.synthetic_test = 100
model.depth = 1
model.heads = 1
model.embed_dim = 8
model.patch_size = 4
train.epochs = 2
train.batch_size = 100
probe.epochs = 2
runtime.device = "cpu"
runtime.checkpoint_every = 1

[experiments.tiny.factors]
"loss.margin_mode" = ["clamp", "subtract"]

[experiments.tiny.execution]
executor = "ray"
hang_timeout_s = 120
"""
    (tmp_path / "experiments.toml").write_text(study)
    out = cfftui(["run", "--headless", "--ray-address", ray_cluster.address], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    store = RunStore(runs)
    for run in store.read_plan("tiny")["runs"]:
        run_dir = store.run_dir("tiny", run["run_id"])
        events = assert_complete_stream(run_dir, 2, probe_epochs=2)
        result = next(e for e in events if e["event"] == "result")
        assert 0.0 <= result["top1"] <= 1.0
        assert (run_dir / "checkpoint.pt").stat().st_size > 0, "the final checkpoint came back"
        assert "cfftui worker: done" in (run_dir / "stderr.log").read_text(), "the worker's log came back"


def test_dead_node_run_is_retried_on_another_node(ray_cluster: Cluster, runs: str) -> None:
    """Last in this module: it takes the second node down for good (the cluster is one per module)."""
    specs = fake_specs(cells=("clamp",), seeds=2, epochs=12, rate=6, checkpoint_every=2)
    control.submit(runs, "exp", specs, meta(executor="ray", ray_address=ray_cluster.address, jobs=0))
    second_node = ray_cluster.groups[1]

    def run_on_second_node() -> tuple[str, psutil.Process] | None:
        for spec in specs:
            worker = worker_of(ray_cluster, spec.run_id)
            run_dir = Path(runs) / "exp" / spec.run_id
            try:  # its actor's process is a child of the node's raylet
                on_it = worker is not None and any(os.getpgid(p.pid) == second_node for p in worker.parents())
            except (ProcessLookupError, psutil.Error):
                on_it = False
            if on_it and len(epochs_here(run_dir)) >= 4 and (run_dir / "fake_checkpoint.json").exists():
                return spec.run_id, worker
        return None

    victim, worker = wait_until(run_on_second_node, 40, "a run with a checkpoint on the second node")
    # The machine is gone: its raylet and agents (the node's process group) and the Ray worker
    # process hosting the actor (Ray starts workers in groups of their own).
    host = worker.parent()
    os.killpg(second_node, signal.SIGKILL)
    if host is not None:
        host.send_signal(signal.SIGKILL)
    wait_until(lambda: not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE, 10,
               "the node's worker to die with it")

    snap = wait_finished(runs, "exp", timeout=120)
    assert snap.counts == {"done": 2}
    st = RunStore(runs).read_status("exp", victim)
    assert (st.attempts, st.failures) == (2, 1)
    events = assert_complete_stream(Path(runs) / "exp" / victim, 12)
    assert [e["resumed_from"] for e in events if e["event"] == "start"][1] >= 4
    placed = re.findall(rf"{victim} runs on Ray node (\w+)", log_text(runs, "exp"))
    assert len(placed) == 2 and placed[0] != placed[1], "the retry ran on the surviving node"
