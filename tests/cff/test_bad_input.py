"""Bad input to the worker: one line on stderr naming the problem, exit 2, and no file written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cfftui.events import WorkerExit

from .helpers import make_run, worker


def assert_rejected(run: Path, *needles: str) -> None:
    before = sorted(p.name for p in run.iterdir()) if run.is_dir() else None
    done = worker(run)
    assert done.returncode == WorkerExit.BAD_INPUT, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert done.stdout == ""
    after = sorted(p.name for p in run.iterdir()) if run.is_dir() else None
    assert after == before


def test_missing_run_dir(tmp_path: Path) -> None:
    assert_rejected(tmp_path / "nowhere", "nowhere", "does not exist")


def test_missing_spec(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    assert_rejected(tmp_path / "run", "spec.json", "missing")


def test_malformed_spec_json(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.json").write_text('{"experiment": "x", ')
    assert_rejected(run, "spec.json", "not valid JSON")


def test_heads_not_dividing_width(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run")
    spec = json.loads((run / "spec.json").read_text())
    spec["config"]["model"]["heads"] = 3
    (run / "spec.json").write_text(json.dumps(spec))
    assert_rejected(run, "spec.json", "config.model.heads", "do not divide")


def test_unknown_dataset(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", data={"dataset": "imagenet_tiny", "root": str(tmp_path)})
    assert_rejected(run, "data.dataset", "imagenet_tiny")


def test_missing_files_with_downloads_off(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", data={"dataset": "cifar10", "root": str(tmp_path / "empty")})
    assert_rejected(run, "data.dataset", "cifar10", "not found", "data.download")


def test_patch_not_dividing_a_local_dataset(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    for split, n in (("train", 20), ("test", 5)):
        np.savez(root / f"tiny-{split}.npz", x=np.zeros((n, 28, 28, 1), np.uint8), y=np.arange(n) % 2)
    run = make_run(tmp_path / "run", data={"dataset": "tiny", "root": str(root)}, model={"patch_size": 5})
    assert_rejected(run, "model.patch_size", "28")


@pytest.mark.parametrize("device", ["cuda:7", "tpu"])
def test_unavailable_device(tmp_path: Path, device: str) -> None:
    pytest.importorskip("torch")
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has the device")
    run = make_run(tmp_path / "run", runtime={"device": device})
    assert_rejected(run, "runtime.device", device)
