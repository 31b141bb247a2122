"""The `tui` and `attach` commands: bad names fail in one line before any UI; textual loads only inside run()."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cfftui.tui.app import CffApp
from cfftui.tui.screens.study import StudyScreen

from .storefill import finished_store


def test_command_module_imports_neither_textual_nor_torch() -> None:
    code = "import sys, cfftui.tui.command, cfftui.tui.feed; print(' '.join(sys.modules))"
    mods = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert not {m.split(".")[0] for m in mods} & {"textual", "torch"}


def test_the_console_never_imports_torch(tmp_path: Path) -> None:
    code = ("import sys, cfftui.tui.app, cfftui.tui.screens.run, cfftui.tui.screens.results; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_attach_to_an_unknown_experiment_is_one_line_and_exit_2(tmp_path: Path) -> None:
    finished_store(tmp_path / "runs")
    out = subprocess.run([sys.executable, "-m", "cfftui", "attach", "nope", "--runs", str(tmp_path / "runs"),
                          "--file", str(tmp_path / "experiments.toml")], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "nope" in out.stderr


async def test_attach_opens_the_live_study(tmp_path: Path) -> None:
    finished_store(tmp_path / "runs")
    app = CffApp(str(tmp_path / "experiments.toml"), str(tmp_path / "runs"), attach="margin", poll_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        while app.payloads < 2:
            await pilot.pause(0.05)
        assert isinstance(app.screen, StudyScreen) and app.screen.experiment == "margin"
        await pilot.press("escape")
        assert not isinstance(app.screen, StudyScreen)  # the experiments screen sits underneath
