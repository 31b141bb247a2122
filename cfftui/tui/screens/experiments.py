"""The experiments screen: every experiment of the study file with plan size, progress, elapsed, ETA and result."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static

from cfftui.tui.feed import EXPERIMENT_COLUMNS, Overview
from cfftui.tui.widgets import KeyedTable, SteadyFooter, update_if_changed


class ExperimentsScreen(Screen[None]):
    """The home screen; validation errors of the study file are shown here, never raised."""

    CSS_PATH = "experiments.tcss"
    BINDINGS = [
        Binding("enter", "open", "Open", priority=True),
        Binding("s", "start", "Start/resume"),
        Binding("x", "stop", "Stop"),
        Binding("r", "retry", "Retry failed"),
        Binding("R", "results", "Results"),
        Binding("e", "export", "Export"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.overview: Overview | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="experiments-title", classes="title-bar")
        yield Static("", id="study-error", classes="error-panel hidden")
        yield KeyedTable(EXPERIMENT_COLUMNS, id="experiments")
        yield Static("", id="experiment-detail")
        yield SteadyFooter()

    def on_mount(self) -> None:
        app: Any = self.app
        update_if_changed(self.query_one("#experiments-title", Static), 
            f"cfftui · {app.study_file} · run store {app.runs_dir}")

    def on_screen_resume(self) -> None:
        self.app_request()

    def app_request(self) -> None:
        app: Any = self.app
        app.request_view(("overview",))

    def apply_payload(self, payload: object) -> None:
        if not isinstance(payload, Overview):
            return
        self.overview = payload
        app: Any = self.app
        error = self.query_one("#study-error", Static)
        error.set_class(payload.error is None, "hidden")
        if payload.error:
            update_if_changed(error, Text(payload.error))
        rows = {}
        for row in payload.rows:
            cells = list(row.cells)
            if row.name in app.headlines:
                cells[-1] = app.headlines[row.name][0]
            rows[row.name] = tuple(cells)
        self.query_one(KeyedTable).show_rows([r.name for r in payload.rows], rows)
        self._show_detail()

    def apply_analysis(self, message: object) -> None:
        """A headline arrived: show it now rather than on the next poll."""
        if self.overview is not None:
            self.apply_payload(self.overview)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        name = self.selected
        detail = self.query_one("#experiment-detail", Static)
        if self.overview is None or name is None:
            update_if_changed(detail, "No experiments yet: write experiments.toml, or open one with --file."
                          if self.overview is not None and not self.overview.rows else "")
            return
        row = next((r for r in self.overview.rows if r.name == name), None)
        if row is None:
            return
        app: Any = self.app
        state = "supervisor running" if row.alive else ("not started" if not row.started else "no supervisor")
        lines = [f"{row.name}: {row.planned} runs · {state}"]
        if row.name in app.headlines:
            lines.append(app.headlines[row.name][1])
        lines.append(row.description or "(no description)")
        update_if_changed(detail, Text("\n".join(lines)))

    @property
    def selected(self) -> str | None:
        return self.query_one(KeyedTable).selected_key

    def _with_selected(self, action: str) -> None:
        name = self.selected
        if name is None:
            self.notify("no experiment selected", severity="warning")
            return
        getattr(self.app, action)(name)

    def action_open(self) -> None:
        self._with_selected("open_study")

    def action_start(self) -> None:
        self._with_selected("start_experiment")

    def action_stop(self) -> None:
        self._with_selected("stop_experiment")

    def action_retry(self) -> None:
        self._with_selected("retry_failed")

    def action_results(self) -> None:
        self._with_selected("open_results")

    def action_export(self) -> None:
        self._with_selected("export_experiment")
