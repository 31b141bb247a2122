"""SVG snapshots of every screen at 80×24 and 120×40, from run stores with fixed numbers and a frozen clock."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from cfftui.tui.app import CffApp

from .storefill import T0, finished_store, live_store

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.fixture
def make_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], CffApp]:
    def make() -> CffApp:
        # relative paths and a frozen clock: titles, elapsed and ETA read the same on every machine
        monkeypatch.chdir(tmp_path)
        finished_store(Path("runs"))
        live_store(Path("runs"))
        return CffApp("experiments.toml", "runs", clock=lambda: T0 + 300, poll_interval=0.05)

    return make


async def settle(pilot: Pilot, condition: Callable[[], bool] = lambda: True, payloads: int = 2) -> None:
    app = pilot.app
    assert isinstance(app, CffApp)
    target = app.payloads + payloads
    deadline = time.monotonic() + 30
    while app.payloads < target or not condition():
        assert time.monotonic() < deadline, "the console did not settle"
        await pilot.pause(0.05)
    app.request_view(("frozen",))  # no more payloads: the screenshot cannot race the watcher
    await pilot.pause(0.1)
    await pilot.wait_for_scheduled_animations()


def steps(*keys: str, condition: Callable[[CffApp], bool] | None = None) -> Callable[[Pilot], Awaitable[None]]:
    async def run_before(pilot: Pilot) -> None:
        app = pilot.app
        assert isinstance(app, CffApp)
        await settle(pilot, lambda: "margin" in app.headlines)
        for key in keys:
            await pilot.press(key)
            await settle(pilot, (lambda: condition(app)) if condition else (lambda: True))

    return run_before


@pytest.mark.parametrize("size", SIZES)
def test_experiments_screen(snap_compare, make_app, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), terminal_size=size, run_before=steps())


@pytest.mark.parametrize("size", SIZES)
def test_study_screen_live(snap_compare, make_app, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), terminal_size=size, run_before=steps("enter", "down"))


@pytest.mark.parametrize("size", SIZES)
def test_run_screen(snap_compare, make_app, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), terminal_size=size,
                        run_before=steps("down", "enter", "down", "enter"))


@pytest.mark.parametrize("size", SIZES)
def test_results_screen(snap_compare, make_app, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), terminal_size=size,
                        run_before=steps("down", "R", condition=lambda app: getattr(app.screen, "loaded", True)))


@pytest.mark.parametrize("size", SIZES)
def test_help_screen(snap_compare, make_app, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), terminal_size=size, run_before=steps("question_mark"))
