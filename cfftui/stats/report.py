"""The analysis in the terminal with Rich: the headline first, then every table with its note and warnings."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from cfftui.stats.analysis import Analysis
from cfftui.stats.present import DisplayTable, display_tables, settings_line


def _width(columns: list[str], rows: list[list[str]]) -> int:
    return sum(max(len(c), *(len(r[i]) for r in rows)) + 3 for i, c in enumerate(columns)) if rows else 0


def rich_table(table: DisplayTable, caption: str, width: int) -> Table:
    """A Rich table; transposed (one row per column) when that is what fits the terminal."""
    columns, rows, align = table.columns, table.rows, table.align
    if rows and _width(columns, rows) > width and len(columns) > len(rows) + 1:
        first = columns[0]
        columns = [first, *(r[0] for r in rows)]
        rows = [[name, *(r[i] for r in table.rows)] for i, name in enumerate(table.columns) if i]
        align = "l" + "r" * len(table.rows)
    out = Table(title=table.title, caption=caption, caption_justify="left", title_justify="left",
                header_style="bold", expand=False)
    for name, a in zip(columns, align, strict=True):
        out.add_column(name, justify="right" if a == "r" else "left", overflow="fold")
    for row in rows:
        out.add_row(*row)
    return out


def report_renderable(analysis: Analysis, width: int = 100) -> RenderableType:
    """Headline, settings, warnings (once), the strip plot, then every table with its note."""
    parts: list[RenderableType] = [Text(analysis.headline(), style="bold"),
                                   Text(settings_line(analysis), style="dim")]
    parts += [Text(f"warning: {w}", style="yellow") for w in analysis.warnings]
    strip = analysis.strip(width)
    if strip:
        parts += [Text(""), Text(f"{analysis.metric} per run (● run, ┃ mean, ─ 95% CI)", style="bold"),
                  Text(strip)]
    reminder = f"\n{len(analysis.warnings)} warning(s) above apply." if analysis.warnings else ""
    for table in display_tables(analysis):
        parts += [Text(""), rich_table(table, table.note + reminder, width)]
    return Group(*parts)


def print_report(analysis: Analysis, console: Console | None = None) -> None:
    console = console or Console()
    console.print(report_renderable(analysis, width=min(console.width, 160)))
