"""The local executor's placement rules, GPU discovery, pid identity, and the engine's import hygiene."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from cfftui.engine.executors import LaunchRequest, make_executor
from cfftui.engine.executors.local import LocalExecutor, discover_gpus, find_workers, worker_matches


def test_gpu_discovery_honours_cuda_visible_devices_and_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3,5")
    assert discover_gpus(None) == ["2", "3", "5"]
    assert discover_gpus("auto") == ["2", "3", "5"]
    assert discover_gpus(2) == ["2", "3"]
    assert discover_gpus([0, 1]) == ["0", "1"]
    assert discover_gpus(()) == [] and discover_gpus(0) == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert discover_gpus(None) == []


def test_gpu_discovery_without_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert discover_gpus(None) == []


def test_slots_and_threads() -> None:
    cpu = LocalExecutor(jobs=2, cores=8)
    assert (cpu.capacity, cpu.threads, cpu.gpus) == (2, 4, [])
    auto = LocalExecutor(jobs=0, threads_per_run=2, cores=8)
    assert (auto.capacity, auto.threads) == (4, 2)
    packed = LocalExecutor(jobs=0, gpus=["0", "1"], runs_per_gpu=3, cores=12)
    assert (packed.capacity, packed.threads) == (6, 2)
    capped = LocalExecutor(jobs=4, gpus=["0", "1"], runs_per_gpu=3, cores=12)
    assert capped.capacity == 4


def test_unknown_executor_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="executor 'slurm' is not available"):
        make_executor({"executor": "slurm"})


def test_launch_pins_and_caps_threads_and_identity_is_checked(tmp_path: Path) -> None:
    ex = LocalExecutor(jobs=2, gpus=["7"], runs_per_gpu=2, cores=4)
    # A stand-in worker module that reports the environment it was given, then waits.
    (tmp_path / "envdump.py").write_text(
        "import os, sys, time\n"
        "e = os.environ\n"
        "print(e['CUDA_VISIBLE_DEVICES'], e['OMP_NUM_THREADS'], e['CFFTUI_ATTEMPT'])\n"
        "time.sleep(float(os.environ.get('HOLD', '0')))\n"
    )
    ex.cwd = str(tmp_path)
    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    handle = ex.launch(LaunchRequest("r1", str(run_dir), "envdump", {"CFFTUI_ATTEMPT": "3", "HOLD": "5"}))
    assert handle.gpu == "7" and handle.threads == 2 and ex.free_slots() == 1
    proc = psutil.Process(handle.pid)
    assert worker_matches(proc, str(run_dir), handle.pid_start)
    assert not worker_matches(proc, str(run_dir), handle.pid_start + 100)  # same pid, another process
    assert not worker_matches(proc, str(tmp_path / "other"), None)
    assert find_workers([str(run_dir)], ["envdump"]) and not find_workers(
        [str(run_dir)], ["cfftui.fakeworker"]
    )
    assert psutil.Process(handle.pid).ppid() == os.getpid()
    assert proc.pid == os.getsid(proc.pid)  # its own session: a closed terminal cannot reach it
    deadline = time.monotonic() + 10
    while not (run_dir / "stdout.log").read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    ex.terminate(handle)
    deadline = time.monotonic() + 10
    ended = []
    while not ended and time.monotonic() < deadline:
        ended = ex.poll()
        time.sleep(0.02)
    ((done, exit_),) = ended
    assert done is handle and exit_.signal == 15 and ex.free_slots() == 2
    assert (run_dir / "stdout.log").read_text().split() == ["7", "2", "3"]


ENGINE_MODULES = [
    "cfftui.engine.control",
    "cfftui.engine.supervisor",
    "cfftui.engine.commands",
    "cfftui.engine.executors.local",
    "cfftui.fakeworker",
]


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_engine_modules_import_nothing_heavy(module: str) -> None:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert not {m.split(".")[0] for m in loaded} & {"torch", "textual", "polars", "scipy", "numpy"}
