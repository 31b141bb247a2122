"""Keys answered from what the UI holds: with the watcher thread stopped, filter, open and back still work."""

from __future__ import annotations

from pathlib import Path

from cfftui.engine.store import RunStore
from cfftui.tui.app import CffApp
from cfftui.tui.feed import StoreFeed, run_key
from cfftui.tui.screens.run import RunScreen
from cfftui.tui.screens.study import StudyScreen
from cfftui.tui.widgets import KeyedTable

from .storefill import T0, live_store
from .test_pilot import fresh


def test_a_payload_filtered_on_the_ui_side_equals_one_built_with_the_filter(tmp_path: Path) -> None:
    live_store(tmp_path, seeds=3, epochs=10)
    feed = StoreFeed(tmp_path, tmp_path / "none.toml", clock=lambda: T0 + 50)
    every = feed.study_view("live")
    assert len(every.rows) == 2 + 6 and every.state_filter is None
    for state in ("running", "queued", "failed", "done", None):
        built = feed.study_view("live", state_filter=state)
        local = every.filtered(state)
        assert (local.keys, local.summary) == (built.keys, built.summary), state
    assert every.filtered("done").keys == ()  # no run done: no cell row either


async def test_filter_and_screens_answer_without_the_watcher(tmp_path: Path) -> None:
    specs = live_store(tmp_path / "runs", seeds=2, epochs=10)
    runs = str(tmp_path / "runs")
    app = CffApp(str(tmp_path / "experiments.toml"), runs, attach="live", poll_interval=0.05)
    async with app.run_test(size=(100, 30)) as pilot:
        await fresh(pilot, app)
        screen = app.screen
        assert isinstance(screen, StudyScreen) and screen.query_one(KeyedTable).row_count == 2 + 4
        app.workers.cancel_group(app, "watcher")
        await pilot.pause(0.2)
        payloads = app.payloads
        # a run's metrics change on disk: nobody reads them now, so the table can only show what it held
        RunStore(tmp_path / "runs").metrics_path("live", specs[0].run_id).write_text("")
        await pilot.press("f")  # running: the two seed-0 runs and their cells
        table = screen.query_one(KeyedTable)
        assert screen.state_filter == "running" and table.row_count == 2 + 2
        assert "filter: running" in str(screen.query_one("#study-summary").render())
        await pilot.press("f", "f", "f")  # queued, done, failed
        assert table.row_count == 2 and table.selected_key is not None
        assert table.selected_key.startswith("c:")
        await pilot.press("f", "f")  # stopped (nothing), then every run again
        assert screen.state_filter is None and table.row_count == 2 + 4
        await pilot.press("down", "enter")
        assert isinstance(app.screen, RunScreen) and app.screen.run_id == specs[0].run_id
        await pilot.press("escape", "down", "down", "down", "enter")
        assert isinstance(app.screen, RunScreen) and table.selected_key == run_key(app.screen.run_id)
        await pilot.press("escape")
        assert app.screen is screen and app.payloads == payloads
