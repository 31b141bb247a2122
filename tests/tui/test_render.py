"""The console's pure renderers, compared as strings."""

from __future__ import annotations

import math

import pytest

from cfftui.tui import render


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "—"), (-1, "—"), (math.nan, "—"), (0, "0s"), (59.4, "59s"), (185, "3m05s"),
    (7620, "2h07m"), (273600, "3d04h"),
])
def test_duration(seconds: float | None, text: str) -> None:
    assert render.duration(seconds) == text


def test_numbers_and_missing_values() -> None:
    assert render.number(0.51234) == "0.512"
    assert render.number(None) == render.number(math.inf) == "—"
    assert render.percent(0.607) == "60.7%"
    assert render.rate(950) == "950" and render.rate(15300) == "15.3k" and render.rate(2.5e6) == "2.5M"
    assert render.progress(12, 600) == "12/600" and render.progress(3, 0) == "3"


def test_mean_sd_across_seeds() -> None:
    assert render.mean_sd([0.5, 0.6, None, math.nan]) == "0.550±0.071"
    assert render.mean_sd([0.5]) == "0.500"
    assert render.mean_sd([None]) == "—"
    assert render.mean_sd_percent([0.6, 0.62]) == "61.0±1.4%"


def test_state_marks_read_without_colour() -> None:
    assert render.state_label("running") == "▶ running"
    assert render.state_counts({"done": 3, "running": 2, "queued": 1}) == "1· 2▶ 3✓"
    assert render.state_counts({}) == "0"
    assert len(set(render.STATE_MARKS.values())) == len(render.STATE_MARKS)


def test_cell_label_and_tail() -> None:
    assert render.cell_label({"loss.margin_mode": "clamp", "data.augment": "strong"}) == "clamp/strong"
    assert render.cell_label({"a": "abcdefghij"}, width=6) == "abcde…"
    assert render.cell_label({}) == "all"
    assert render.tail_lines("a\nb\nc\n", 2) == "b\nc"
    assert render.series([1.0, None, math.nan, 2.0]) == [1.0, 2.0]
