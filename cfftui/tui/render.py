"""Pure formatting of run-store figures into short console strings (no Textual, tested by string equality)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

STATE_MARKS: dict[str, str] = {
    "queued": "·", "running": "▶", "done": "✓", "failed": "✗",
    "diverged": "≈", "stopped": "■", "lost": "?",
}
"""A one-character mark per state, readable without colour (NO_COLOR, monochrome terminals)."""

STATE_STYLES: dict[str, str] = {
    "queued": "dim", "running": "bold cyan", "done": "green", "failed": "bold red",
    "diverged": "bold magenta", "stopped": "yellow", "lost": "red",
}

DASH = "—"


def state_label(state: str) -> str:
    """'▶ running': the mark first so a narrow column still tells states apart."""
    return f"{STATE_MARKS.get(state, '?')} {state}"


def number(value: float | None, digits: int = 3) -> str:
    """A finite number with `digits` decimals, or a dash for missing / NaN / inf."""
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:.{digits}f}"


def percent(value: float | None, digits: int = 1) -> str:
    """A [0, 1] share as a percentage: 0.607 -> '60.7%'."""
    if value is None or not math.isfinite(value):
        return DASH
    return f"{100 * value:.{digits}f}%"


def rate(value: float | None) -> str:
    """Images per second, compact: 950 -> '950', 15300 -> '15.3k'."""
    if value is None or not math.isfinite(value):
        return DASH
    if value >= 1e6:
        return f"{value / 1e6:.1f}M"
    if value >= 1e4:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def duration(seconds: float | None) -> str:
    """'42s', '3m05s', '2h07m', '3d04h'; a dash when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return DASH
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def progress(epoch: int, total: int) -> str:
    """'12/600', or '12' when the total is unknown."""
    return f"{epoch}/{total}" if total else str(epoch)


def finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def mean_sd(values: Iterable[float | None], digits: int = 3) -> str:
    """Mean ± sample sd across seeds ('0.512±0.013'); the mean alone for one value; a dash for none."""
    xs = finite(values)
    if not xs:
        return DASH
    mean = statistics.fmean(xs)
    if len(xs) == 1:
        return number(mean, digits)
    return f"{mean:.{digits}f}±{statistics.stdev(xs):.{digits}f}"


def mean_sd_percent(values: Iterable[float | None], digits: int = 1) -> str:
    """mean_sd for [0, 1] shares, in percent ('60.7±1.2%')."""
    xs = finite(values)
    if not xs:
        return DASH
    mean = 100 * statistics.fmean(xs)
    if len(xs) == 1:
        return f"{mean:.{digits}f}%"
    return f"{mean:.{digits}f}±{100 * statistics.stdev(xs):.{digits}f}%"


def state_counts(counts: dict[str, int]) -> str:
    """'3✓ 2▶ 1·' for the states present, in a fixed order; '0' when there are no runs."""
    parts = [f"{counts[s]}{STATE_MARKS[s]}" for s in STATE_MARKS if counts.get(s)]
    return " ".join(parts) or "0"


def cell_label(cell: dict[str, str], width: int = 0) -> str:
    """Level labels joined by '/', cut to `width` with an ellipsis (0: no limit)."""
    text = "/".join(cell.values()) or "all"
    if width and len(text) > width:
        return text[: width - 1] + "…"
    return text


def plan_size(cells: int, seeds: int) -> str:
    """'4×7' (cells × seeds)."""
    return f"{cells}×{seeds}"


def tail_lines(text: str, limit: int) -> str:
    """The last `limit` lines of a text, without a partial first line when it was cut mid-line."""
    lines = text.splitlines()
    return "\n".join(lines[-limit:])


def series(values: Sequence[float | None]) -> list[float]:
    """Sparkline data: missing points dropped (the Sparkline widget needs numbers)."""
    return finite(values)
