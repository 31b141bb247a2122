"""End to end in a real terminal: cfftui in tmux at 80×24 starts a study, shows it finish, opens results, quits,
and the study it left running keeps running."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cfftui.engine import control
from cfftui.engine.store import RunStore
from cfftui.events import last_epoch, read_events

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

CFFTUI = str(Path(sys.executable).with_name("cfftui"))


class Terminal:
    def __init__(self, name: str) -> None:
        self.name = name

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return out.stdout

    def wait_for(self, check: Callable[[str], bool], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if check(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed what was expected:\n{text}")
            time.sleep(0.25)

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], capture_output=True).returncode == 0


@pytest.fixture
def terminal(fake_study: Path) -> Iterator[Terminal]:
    name = f"cfftui-e2e-{fake_study.parent.name}"
    subprocess.run(["tmux", "new-session", "-d", "-x", "80", "-y", "24", "-s", name, "-c",
                    str(fake_study.parent), CFFTUI], check=True)
    yield Terminal(name)
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def epochs_so_far(runs: Path, experiment: str) -> int:
    store = RunStore(runs)
    plan = store.read_plan(experiment) or {}
    return sum(last_epoch(read_events(store.metrics_path(experiment, r["run_id"]))) for r in plan.get("runs", []))


def test_start_watch_results_quit_and_the_study_keeps_running(terminal: Terminal, fake_study: Path) -> None:
    runs = fake_study.parent / "runs"
    terminal.wait_for(lambda s: "quick" in s and "long" in s and "2×2" in s, timeout=30)
    terminal.keys("s")  # start 'quick'
    terminal.keys("Enter")
    terminal.wait_for(lambda s: "4✓" in s, timeout=90)  # the study row counts four done runs
    terminal.keys("R")
    results = terminal.wait_for(lambda s: "variance ratio" in s or "No analysis" in s, timeout=60)
    assert "variance ratio" in results, results
    terminal.keys("Escape")
    terminal.keys("Escape")
    terminal.keys("Down")
    terminal.keys("s")  # start 'long', then quit while it runs
    terminal.wait_for(lambda s: "started long" in s, timeout=30)
    assert control.supervisor_alive(str(runs), "long")
    terminal.keys("q")
    deadline = time.monotonic() + 10
    while terminal.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not terminal.alive(), "the console did not quit"
    before = epochs_so_far(runs, "long")
    time.sleep(2.0)
    assert control.supervisor_alive(str(runs), "long")
    assert epochs_so_far(runs, "long") > before  # runs progress with no console attached
