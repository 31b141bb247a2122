"""A run: per-block tables and sparklines over epochs, the tail of its logs, its spec and status."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Log, Static, TabbedContent, TabPane

from cfftui.engine.watch import METRICS
from cfftui.tui.feed import LAYER_COLUMNS, RunPayload
from cfftui.tui.widgets import KeyedTable, LabelledSpark, SteadyFooter, update_if_changed

LOG_LINES = 400
"""The log view keeps at most this many lines (the feed reads only the end of each file)."""


class RunScreen(Screen[None]):
    """Everything about one run; updates as its events arrive."""

    CSS_PATH = "run.tcss"
    BINDINGS = [
        Binding("m", "tab('metrics')", "Metrics"),
        Binding("l", "tab('log')", "Log"),
        Binding("p", "tab('spec')", "Spec/status"),
        Binding("x", "stop_run", "Stop run"),
        Binding("escape,backspace", "app.pop_screen", "Back"),
    ]

    def __init__(self, experiment: str, run_id: str, *, tab: str = "metrics") -> None:
        super().__init__()
        self.experiment = experiment
        self.run_id = run_id
        self.initial_tab = tab
        self.block = 0
        self._log_text: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"{self.experiment} / {self.run_id}", id="run-title", classes="title-bar")
        with TabbedContent(initial=self.initial_tab):
            with TabPane("metrics", id="metrics"):
                yield KeyedTable(LAYER_COLUMNS, id="layers")
                yield Static("block L0", id="spark-title", classes="summary-bar")
                yield LabelledSpark("train loss", id="train_loss")
                yield LabelledSpark("val loss", id="val_loss")
                yield LabelledSpark("CAR", id="car", percent=True)
                yield LabelledSpark("grad norm", id="grad_norm")
            with TabPane("log", id="log"):
                yield Log(max_lines=LOG_LINES, id="run-log", auto_scroll=True)
            with TabPane("spec/status", id="spec"):
                with VerticalScroll():
                    yield Static("", id="run-status")
                    yield Static("", id="run-spec")
        yield SteadyFooter()

    def on_mount(self) -> None:
        self._request()

    def show_run(self, experiment: str, run_id: str, *, tab: str = "metrics") -> None:
        """Show another run in this (already composed) screen: the app reuses one, as composing costs more."""
        self.experiment, self.run_id, self.block = experiment, run_id, 0
        self._log_text = None
        update_if_changed(self.query_one("#run-title", Static), f"{experiment} / {run_id}")
        update_if_changed(self.query_one("#spark-title", Static), "block L0")
        self.query_one(KeyedTable).show_rows([], {})
        for metric in METRICS:
            self.query_one(f"#{metric}", LabelledSpark).show([])
        self.query_one(Log).clear()
        update_if_changed(self.query_one("#run-status", Static), "")
        update_if_changed(self.query_one("#run-spec", Static), "")
        self.action_tab(tab)

    def on_screen_resume(self) -> None:
        self._request()

    def _request(self) -> None:
        app: Any = self.app
        app.request_view(("run", self.experiment, self.run_id, self.block))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.block = event.cursor_row
        update_if_changed(self.query_one("#spark-title", Static), f"block L{self.block}")
        self._request()

    def apply_payload(self, payload: object) -> None:
        if not isinstance(payload, RunPayload) or payload.run_id != self.run_id:
            return
        update_if_changed(self.query_one("#run-title", Static), payload.title)
        keys = [str(row[0]) for row in payload.layers]
        self.query_one(KeyedTable).show_rows(keys, dict(zip(keys, payload.layers, strict=True)))
        for metric, values in payload.series.items():
            self.query_one(f"#{metric}", LabelledSpark).show(values)
        text = f"── stderr ──\n{payload.stderr}\n── stdout ──\n{payload.stdout}"
        if text != self._log_text:
            self._log_text = text
            log = self.query_one(Log)
            log.clear()
            log.write_lines(text.splitlines()[-LOG_LINES:])
        update_if_changed(self.query_one("#run-status", Static), Text(payload.status))
        update_if_changed(self.query_one("#run-spec", Static), Text(payload.spec))

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_stop_run(self) -> None:
        app: Any = self.app
        app.stop_run(self.experiment, self.run_id)
