"""Engine test fixtures: a fresh run store with fast supervisor timings, and cleanup of strays."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

FAST = {
    "CFFTUI_POLL_S": "0.05",
    "CFFTUI_HEARTBEAT_S": "0.2",
    "CFFTUI_KILL_GRACE_S": "1",
    "CFFTUI_STOP_GRACE_S": "5",
    "CFFTUI_WATCH_S": "0.1",
    "CFFTUI_SUMMARY_S": "1",
}


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh run store; fast supervisor timings; every process left behind under it is killed after."""
    for k, v in FAST.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("CFFTUI_FAKE_FAULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "runs"
    yield str(root)
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if proc.pid != os.getpid() and any(str(root) in part for part in cmd):
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass
