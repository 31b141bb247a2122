"""Small console widgets: a one-line sparkline, a table that repaints only changed cells, a calm footer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Sparkline, Static

Cell = str | Text


def update_if_changed(widget: Static, content: str | Text) -> None:
    """Static.update repaints even for equal content; a calm console repaints only what changed."""
    if getattr(widget, "_cfftui_shown", None) != content:
        widget._cfftui_shown = content  # type: ignore[attr-defined]
        widget.update(content)


class SteadyFooter(Footer):
    """A Footer that recomposes only when the keys it shows change.

    Textual's Footer rebuilds its key widgets on every bindings signal (each screen switch, each
    focus change); on a study screen that is a third of the cost of answering `enter` or `escape`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._shown_bindings: object = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        shown = tuple(
            (binding.key, binding.description, binding.action, enabled, tooltip)
            for _, binding, enabled, tooltip in screen.active_bindings.values() if binding.show
        )
        if shown == self._shown_bindings and self.children:
            return
        super().bindings_changed(screen)
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self._shown_bindings = shown  # the conditions under which Footer recomposes


class LabelledSpark(Horizontal):
    """A label, a sparkline and the latest value, one line high."""

    DEFAULT_CSS = """
    LabelledSpark { height: 1; }
    LabelledSpark > .spark-label { width: 13; color: $text-muted; }
    LabelledSpark > Sparkline { width: 1fr; }
    LabelledSpark > .spark-last { width: 8; text-align: right; }
    """

    def __init__(self, label: str, *, id: str | None = None, percent: bool = False) -> None:
        super().__init__(id=id)
        self._label = label
        self._percent = percent

    def compose(self) -> ComposeResult:
        yield Label(self._label, classes="spark-label")
        yield Sparkline([], summary_function=max)
        yield Label("", classes="spark-last")

    def show(self, values: Sequence[float]) -> None:
        spark = self.query_one(Sparkline)
        data = list(values)
        if list(spark.data or []) != data:
            spark.data = data
        # an empty Sparkline still draws a flat line, which reads as "all minimal"
        spark.visible = bool(data)
        last = "" if not data else (f"{100 * data[-1]:.1f}%" if self._percent else f"{data[-1]:.3f}")
        update_if_changed(self.query_one(".spark-last", Label), last)


class KeyedTable(DataTable[Cell]):
    """A DataTable fed whole keyed row sets; it rebuilds when the keys change and otherwise updates changed cells."""

    def __init__(self, columns: Sequence[tuple[str, str, int]], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self._columns = list(columns)
        self._column_keys = [key for key, _, _ in columns]
        self._shown: dict[str, tuple[Cell, ...]] = {}
        self._order: tuple[str, ...] = ()
        self.cell_updates = 0
        """Cells repainted by update_cell since mount (the benchmark and tests read it)."""

    def on_mount(self) -> None:
        self._ensure_columns()

    def _ensure_columns(self) -> None:
        # a payload can arrive before on_mount: rows added to a table without columns would lose their widths
        if not self.columns:
            for key, label, width in self._columns:
                self.add_column(label, key=key, width=width)

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # noqa: BLE001 - an empty or just-cleared table has no cursor row
            return None

    def show_rows(self, keys: Sequence[str], rows: Mapping[str, tuple[Cell, ...]]) -> None:
        self._ensure_columns()
        keys = tuple(keys)
        if keys != self._order:
            selected = self.selected_key
            self.clear()
            for key in keys:
                self.add_row(*rows[key], key=key)
            new_rows = getattr(self, "_new_rows", None)
            if isinstance(new_rows, set) and not any(c.auto_width for c in self.columns.values()):
                # every column has a fixed width, so DataTable's measuring of each new cell (on idle)
                # would change nothing; on a 400-row table it costs ~40 ms of the UI thread
                new_rows.clear()
            self._order = keys
            self._shown = {k: rows[k] for k in keys}
            if selected in self._shown:
                self.move_cursor(row=keys.index(selected), animate=False)
            return
        for key in keys:
            new, old = rows[key], self._shown.get(key)
            if new == old:
                continue
            for column, (a, b) in enumerate(zip(new, old or (), strict=False)):
                if a != b:
                    self.update_cell(key, self._column_keys[column], a)
                    self.cell_updates += 1
            self._shown[key] = new
