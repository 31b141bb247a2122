"""A study, live: a row per cell (mean ± sd across seeds) above a row per run, and sparklines of the selection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import DataTable, Static

from cfftui.tui.feed import FILTERS, STUDY_COLUMNS, StudyPayload
from cfftui.tui.widgets import KeyedTable, LabelledSpark, SteadyFooter, update_if_changed


class StudyScreen(Screen[None]):
    """One experiment's runs, updated cell by cell as their metric streams grow."""

    CSS_PATH = "study.tcss"
    BINDINGS = [
        Binding("enter", "open_run", "Open run", priority=True),
        Binding("s", "start", "Start/resume"),
        Binding("x", "stop_run", "Stop run"),
        Binding("X", "stop_experiment", "Stop all"),
        Binding("r", "retry", "Retry failed"),
        Binding("f", "filter", "Filter"),
        Binding("l", "log", "Log"),
        Binding("R", "results", "Results"),
        Binding("e", "export", "Export"),
        Binding("left_square_bracket", "switch(-1)", "Prev exp", show=False),
        Binding("right_square_bracket", "switch(1)", "Next exp", show=False),
        Binding("escape,backspace", "app.pop_screen", "Back"),
    ]

    def __init__(self, experiment: str) -> None:
        super().__init__()
        self.experiment = experiment
        self.state_filter: str | None = None
        self.payload: StudyPayload | None = None

    def compose(self) -> ComposeResult:
        yield Static(self.experiment, id="study-title", classes="title-bar")
        yield Static("", id="study-summary", classes="summary-bar")
        yield KeyedTable(STUDY_COLUMNS, id="runs")
        with Grid(id="sparks"):
            yield LabelledSpark("run loss L0", id="run_loss")
            yield LabelledSpark("cell loss L0", id="cell_loss")
            yield LabelledSpark("run CAR L0", id="run_car", percent=True)
            yield LabelledSpark("cell CAR L0", id="cell_car", percent=True)
        yield SteadyFooter()

    def on_mount(self) -> None:
        self._request()

    def on_screen_resume(self) -> None:
        self._request()

    def _request(self) -> None:
        app: Any = self.app
        selected = self.query_one(KeyedTable).selected_key
        app.request_view(("study", self.experiment, selected))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._request()

    def apply_payload(self, payload: object) -> None:
        if not isinstance(payload, StudyPayload) or payload.experiment != self.experiment:
            return
        # the filter is applied here, not in the watcher, so a filter key never waits for a poll
        payload = payload.filtered(self.state_filter)
        self.payload = payload
        update_if_changed(self.query_one("#study-summary", Static), payload.summary)
        table = self.query_one(KeyedTable)
        table.show_rows(payload.keys, payload.rows)
        for spark_id in ("run_loss", "cell_loss", "run_car", "cell_car"):
            self.query_one(f"#{spark_id}", LabelledSpark).show(payload.sparks.get(spark_id, []))
        if table.selected_key is not None and table.selected_key != _selected_in(self.app):
            self._request()

    # --- actions --------------------------------------------------------------------
    @property
    def selected_run(self) -> str | None:
        key = self.query_one(KeyedTable).selected_key
        return key[2:] if key and key.startswith("r:") else None

    def _need_run(self) -> str | None:
        run_id = self.selected_run
        if run_id is None:
            self.notify("select a run row (not a cell row)", severity="warning")
        return run_id

    def action_open_run(self) -> None:
        if (run_id := self._need_run()) is not None:
            self._app.open_run(self.experiment, run_id)

    def action_log(self) -> None:
        if (run_id := self._need_run()) is not None:
            self._app.open_run(self.experiment, run_id, tab="log")

    def action_stop_run(self) -> None:
        if (run_id := self._need_run()) is not None:
            self._app.stop_run(self.experiment, run_id)

    def action_start(self) -> None:
        self._app.start_experiment(self.experiment)

    def action_stop_experiment(self) -> None:
        self._app.stop_experiment(self.experiment)

    def action_retry(self) -> None:
        self._app.retry_failed(self.experiment)

    def action_results(self) -> None:
        self._app.open_results(self.experiment)

    def action_export(self) -> None:
        self._app.export_experiment(self.experiment)

    def action_filter(self) -> None:
        self.set_filter(FILTERS[(FILTERS.index(self.state_filter) + 1) % len(FILTERS)])

    def set_filter(self, state: str | None) -> None:
        self.state_filter = state
        self.notify(f"showing {state or 'all'} runs", timeout=2)
        if self.payload is not None:
            self.apply_payload(self.payload)

    def action_switch(self, step: int) -> None:
        target = self._app.switch_experiment(self.experiment, step)
        if target is None or target == self.experiment:
            return
        self.experiment = target
        self.payload = None
        update_if_changed(self.query_one("#study-title", Static), target)
        self.query_one(KeyedTable).show_rows([], {})
        self._request()

    def palette_commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        commands: list[tuple[str, str, Callable[[], Any]]] = [
            (f"Filter runs: {state or 'all'}", f"show {state or 'every'} run(s) of {self.experiment}",
             _partial(self.set_filter, state)) for state in FILTERS]
        if self.selected_run:
            commands += [("Stop selected run", "asks first", self.action_stop_run),
                         ("Open selected run's log", "stdout and stderr tail", self.action_log)]
        return commands

    @property
    def _app(self) -> Any:
        return self.app


def _selected_in(app: Any) -> str | None:
    request = app.view_request
    return request[2] if request and request[0] == "study" else None


def _partial(fn: Callable[[str | None], None], state: str | None) -> Callable[[], None]:
    def call() -> None:
        fn(state)

    return call
