"""Modal screens: confirm before stopping work, choose export formats, and the key-binding help."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, SelectionList, Static

from cfftui.tui.backend import EXPORT_FORMATS


class ConfirmScreen(ModalScreen[bool]):
    """Asks before any action that stops or destroys work; y/enter confirms, n/escape cancels."""

    CSS_PATH = "modals.tcss"
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("enter", "answer(True)", "Yes", show=False),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel", show=False),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-question")
            yield Static("[b]y[/b] yes   [b]n[/b] no", id="confirm-keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ExportScreen(ModalScreen[list[str] | None]):
    """Choose the export formats (space toggles, enter writes them to the experiment's results folder)."""

    CSS_PATH = "modals.tcss"
    BINDINGS = [
        Binding("enter", "export", "Export", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, experiment: str) -> None:
        super().__init__()
        self.experiment = experiment

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box"):
            yield Static(f"Export {self.experiment}: space toggles, enter writes", id="export-title")
            yield SelectionList[str](*[(fmt, fmt, fmt in ("csv", "md")) for fmt in EXPORT_FORMATS],
                                     id="export-formats")
        yield Footer()

    def action_export(self) -> None:
        chosen = list(self.query_one(SelectionList).selected)
        if not chosen:
            self.notify("choose at least one format", severity="warning")
            return
        self.dismiss(chosen)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Every key binding of every screen, generated from the screens' BINDINGS."""

    CSS_PATH = "modals.tcss"
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Static("Keys (ctrl+p opens the command palette with every action)", id="help-title")
            yield DataTable(id="help-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        from cfftui.tui.app import CffApp
        from cfftui.tui.screens.experiments import ExperimentsScreen
        from cfftui.tui.screens.results import ResultsScreen
        from cfftui.tui.screens.run import RunScreen
        from cfftui.tui.screens.study import StudyScreen

        table = self.query_one(DataTable)
        table.add_columns("screen", "key", "action")
        for where, cls in (("everywhere", CffApp), ("experiments", ExperimentsScreen), ("study", StudyScreen),
                           ("run", RunScreen), ("results", ResultsScreen), ("confirm", ConfirmScreen),
                           ("export", ExportScreen)):
            for binding in cls.BINDINGS:
                assert isinstance(binding, Binding)
                table.add_row(where, _key_label(binding.key), binding.description or binding.action)

    def action_close(self) -> None:
        self.dismiss(None)


def _key_label(key: str) -> str:
    names = {"question_mark": "?", "left_square_bracket": "[", "right_square_bracket": "]",
             "escape": "esc", "backspace": "backspace"}
    return ",".join(names.get(k, k) for k in key.split(","))
