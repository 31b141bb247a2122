"""Pilot tests: every screen navigated and every action performed, against a real supervisor running fake workers."""

from __future__ import annotations

import time
from pathlib import Path

from textual.filter import Monochrome, NoColor
from textual.message import Message
from textual.pilot import Pilot

from cfftui.engine import control
from cfftui.engine.store import RunStore
from cfftui.tui.app import CffApp
from cfftui.tui.screens.experiments import ExperimentsScreen
from cfftui.tui.screens.modals import ConfirmScreen, ExportScreen, HelpScreen
from cfftui.tui.screens.results import ResultsScreen
from cfftui.tui.screens.run import RunScreen
from cfftui.tui.screens.study import StudyScreen
from cfftui.tui.widgets import KeyedTable

from .storefill import finished_store, live_store


async def until(pilot: Pilot, condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await pilot.pause(0.05)


async def fresh(pilot: Pilot, app: CffApp, n: int = 2) -> None:
    """Wait for n more payloads from the watcher thread."""
    target = app.payloads + n
    await until(pilot, lambda: app.payloads >= target)


def finished(messages: list[Message], action: str) -> list[CffApp.ActionFinished]:
    return [m for m in messages if isinstance(m, CffApp.ActionFinished) and m.action == action]


async def test_navigates_every_screen(tmp_path: Path) -> None:
    finished_store(tmp_path / "runs")
    live_store(tmp_path / "runs")
    app = CffApp(str(tmp_path / "experiments.toml"), str(tmp_path / "runs"), poll_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await fresh(pilot, app)
        assert isinstance(app.screen, ExperimentsScreen)
        assert "no such study file" in str(app.screen.query_one("#study-error").render())
        assert app.screen.query_one(KeyedTable).row_count == 2
        await pilot.press("down", "enter")  # margin, the finished one
        await fresh(pilot, app)
        assert isinstance(app.screen, StudyScreen) and app.screen.experiment == "margin"
        table = app.screen.query_one(KeyedTable)
        assert table.row_count == 2 + 6
        await pilot.press("down", "enter")
        await fresh(pilot, app)
        assert isinstance(app.screen, RunScreen)
        assert app.screen.query_one("#layers", KeyedTable).row_count == 3
        await pilot.press("l")
        await fresh(pilot, app)
        assert "training 3 blocks" in "\n".join(str(line) for line in app.screen.query_one("#run-log").lines)
        await pilot.press("p", "escape", "f")  # back on the study screen: filter to running runs
        await fresh(pilot, app)
        assert isinstance(app.screen, StudyScreen) and app.screen.state_filter == "running"
        assert app.screen.query_one(KeyedTable).row_count == 0
        await pilot.press("right_square_bracket")  # next experiment: wraps to 'live'
        await fresh(pilot, app)
        assert app.screen.experiment == "live" and app.screen.query_one(KeyedTable).row_count == 2 + 2
        await pilot.press("left_square_bracket", "f", "f", "f", "f", "f")  # back to margin, filter 'all'
        await fresh(pilot, app)
        assert app.screen.experiment == "margin" and app.screen.state_filter is None
        await pilot.press("R")
        assert isinstance(app.screen, ResultsScreen)
        await until(pilot, lambda: app.screen.loaded)
        assert app.headlines["margin"]
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert app.screen.query_one("#help-table").row_count > 20
        await pilot.press("escape", "escape", "escape")
        assert isinstance(app.screen, ExperimentsScreen)


async def test_actions_against_a_real_supervisor(fake_study: Path) -> None:
    runs = fake_study.parent / "runs"
    messages: list[Message] = []
    app = CffApp(str(fake_study), str(runs), poll_interval=0.1)
    async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
        await fresh(pilot, app)
        assert [str(app.screen.query_one(KeyedTable).get_row_at(i)[0]) for i in range(2)] == ["quick", "long"]
        await pilot.press("s")  # start 'quick' from the experiments screen
        await until(pilot, lambda: finished(messages, "start"))
        assert finished(messages, "start")[0].ok, finished(messages, "start")[0].text
        await pilot.press("enter")
        assert isinstance(app.screen, StudyScreen)

        def quick_done() -> bool:
            payload = app.screen.payload
            return payload is not None and len(payload.states) == 4 and \
                all(s == "done" for s in payload.states.values())

        await until(pilot, quick_done, timeout=60)
        await pilot.press("r")  # retry failed runs: none failed, the request still goes through
        await until(pilot, lambda: finished(messages, "retry"))
        assert finished(messages, "retry")[0].ok
        await pilot.press("e")
        assert isinstance(app.screen, ExportScreen)
        await pilot.press("enter")  # csv and md are preselected
        await until(pilot, lambda: finished(messages, "export"), timeout=60)
        export = finished(messages, "export")[0]
        assert export.ok, export.text
        written = {p.suffix for p in (runs / "quick" / "results").iterdir()}
        assert {".csv", ".md"} <= written

        # switch to 'long' through the command palette, start it there, then stop one run and the rest
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.press(*"Start or resume long")
        await pilot.press("enter")
        await until(pilot, lambda: len(finished(messages, "start")) == 2)
        assert finished(messages, "start")[1].ok
        assert control.supervisor_alive(str(runs), "long")
        await pilot.press("down", "enter")
        assert isinstance(app.screen, StudyScreen) and app.screen.experiment == "long"

        def long_running() -> bool:
            payload = app.screen.payload
            return payload is not None and "running" in payload.states.values()

        await until(pilot, long_running, timeout=30)
        await pilot.press("down")  # the first run row
        await fresh(pilot, app)
        run_id = app.screen.selected_run
        assert run_id is not None
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # declined: nothing is stopped
        assert not finished(messages, "stop-run")
        await pilot.press("x", "y")
        await until(pilot, lambda: finished(messages, "stop-run"))
        await until(pilot, lambda: app.screen.payload.states.get(run_id) == "stopped", timeout=30)
        await pilot.press("X", "y")
        await until(pilot, lambda: finished(messages, "stop"))
        await until(pilot, lambda: not control.supervisor_alive(str(runs), "long"), timeout=30)
        states = {RunStore(runs).read_status("long", r).state for r in app.screen.payload.states}
        assert states <= {"stopped", "done"}


async def test_a_failed_action_is_a_notification_not_a_crash(tmp_path: Path) -> None:
    bad = tmp_path / "experiments.toml"
    bad.write_text("[experiments.x]\nseeds = 'many'\n")
    messages: list[Message] = []
    app = CffApp(str(bad), str(tmp_path / "runs"), poll_interval=0.05)
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await fresh(pilot, app)
        error = str(app.screen.query_one("#study-error").render())
        assert "experiments.toml" in error and "seeds" in error
        app.start_experiment("x")
        await until(pilot, lambda: finished(messages, "start"))
        assert not finished(messages, "start")[0].ok
        assert app.is_running and not (tmp_path / "runs").exists()


async def test_no_color_is_respected(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NO_COLOR", "1")
    finished_store(tmp_path / "runs")
    app = CffApp(str(tmp_path / "experiments.toml"), str(tmp_path / "runs"))
    assert app.no_color
    assert any(isinstance(f, (Monochrome, NoColor)) for f in app.get_line_filters())
    async with app.run_test(size=(80, 24)) as pilot:
        await fresh(pilot, app)
        await pilot.press("down", "enter")
        await fresh(pilot, app)
        # states stay readable without colour: each has its own mark
        assert str(app.screen.query_one(KeyedTable).get_row_at(1)[2]) == "✓ done"


async def test_messages_from_threads_after_the_app_closed_are_harmless(tmp_path: Path) -> None:
    # The watcher and the analysis run in threads: their last message can land while the app exits.
    live_store(tmp_path / "runs")
    app = CffApp(str(tmp_path / "experiments.toml"), str(tmp_path / "runs"), poll_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await fresh(pilot, app)
    app._consumed.clear()
    app.on_cff_app_polled(CffApp.Polled(app.feed.overview(), ("live",)))
    app.on_cff_app_analysis_ready(CffApp.AnalysisReady("live", None, "no runs"))
    assert app._consumed.is_set()  # the watcher is not left waiting
    assert app.headlines["live"][0] == "no analysis"
