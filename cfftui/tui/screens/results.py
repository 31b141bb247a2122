"""Results: the analysis tables of the statistics part and a per-seed strip plot of the metric per cell."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from cfftui.tui.widgets import SteadyFooter

MAX_ROWS = 500
"""Rows shown per analysis table (exports carry everything)."""


class ResultsScreen(Screen[None]):
    """The analysis of one experiment, computed in a thread when the screen opens (and on `a`)."""

    CSS_PATH = "results.tcss"
    BINDINGS = [
        Binding("e", "export", "Export"),
        Binding("a", "reanalyse", "Re-analyse"),
        Binding("escape,backspace", "app.pop_screen", "Back"),
    ]

    def __init__(self, experiment: str) -> None:
        super().__init__()
        self.experiment = experiment
        self.loaded = False
        """True once the analysis (or its error) is on screen."""

    def compose(self) -> ComposeResult:
        yield Static(f"results · {self.experiment}", id="results-title", classes="title-bar")
        with TabbedContent(id="results-tabs"):
            with TabPane("summary", id="summary"):
                with VerticalScroll():
                    yield Static("analysing…", id="headline")
                    yield Static("", id="strip")
                    yield Static("", id="warnings")
        yield SteadyFooter()

    def on_mount(self) -> None:
        app: Any = self.app
        app.request_view(("results", self.experiment))
        cached = app.analyses.get(self.experiment)
        if cached is not None:
            self._show(cached, None)
        else:
            app.analyse(self.experiment)

    def apply_analysis(self, message: Any) -> None:
        if message.experiment == self.experiment:
            self._show(message.view, message.error)

    def _show(self, view: Any, error: str | None) -> None:
        if view is None:
            self.query_one("#headline", Static).update(Text(f"No analysis for {self.experiment}: {error}"))
            self.loaded = True
            return
        self.query_one("#headline", Static).update(Text(view.headline, style="bold"))
        self.query_one("#strip", Static).update(Text(view.strip))
        warnings = "\n".join(f"! {w}" for w in view.warnings)
        self.query_one("#warnings", Static).update(Text(warnings, style="yellow"))
        self.call_after_refresh(self._add_tables, view.tables)

    async def _add_tables(self, tables: dict[str, Any]) -> None:
        tabs = self.query_one(TabbedContent)
        for index, (name, frame) in enumerate(tables.items()):
            pane_id = f"table-{index}"
            if tabs.query(f"#{pane_id}"):
                await tabs.remove_pane(pane_id)
            table: DataTable[str] = DataTable(cursor_type="row")
            await tabs.add_pane(TabPane(name, table, id=pane_id))
            columns = list(frame.columns)
            table.add_columns(*columns)
            for row in frame.head(MAX_ROWS).iter_rows():
                table.add_row(*(_fmt(v) for v in row))
        self.loaded = True

    def action_export(self) -> None:
        app: Any = self.app
        app.export_experiment(self.experiment)

    def action_reanalyse(self) -> None:
        app: Any = self.app
        self.loaded = False
        self.query_one("#headline", Static).update("analysing…")
        app.analyse(self.experiment)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "—"
    return str(value)
