"""A per-seed strip plot as plain text: one line per cell, every run a dot, the mean and its 95 % CI."""

from __future__ import annotations

import math

import polars as pl
from scipy import stats

RUN, MEAN, SPAN = "●", "┃", "─"
"""A run (a digit 2-9 when runs share a column, + for more), the cell mean, the t-based 95 % CI."""


def _column(value: float, lo: float, hi: float, width: int) -> int:
    return min(width - 1, max(0, round((value - lo) / (hi - lo) * (width - 1))))


def strip_plot(frame: pl.DataFrame, metric: str, width: int) -> str:
    """Render `metric` per cell of a runs frame (columns `cell` and `metric`) in `width` characters.

    Cells keep their first-appearance order; rows with a null metric are skipped. The last line
    is the axis with its end values. Returns '' when no row has the metric.
    """
    if "cell" not in frame.columns or metric not in frame.columns:
        raise ValueError(f"strip_plot needs columns 'cell' and {metric!r}")
    data = frame.filter(pl.col(metric).is_not_null() & pl.col(metric).is_finite())
    if data.height == 0:
        return ""
    groups = data.group_by("cell", maintain_order=True).agg(pl.col(metric))
    values = data[metric].cast(pl.Float64)
    lo, hi = float(values.min()), float(values.max())  # type: ignore[arg-type]
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    labels = groups["cell"].to_list()
    label_w = min(max(len(s) for s in labels), max(8, width // 3))
    suffixes = []
    for vals in groups[metric].to_list():
        mean = sum(vals) / len(vals)
        sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else float("nan")
        suffixes.append((mean, sd, len(vals)))
    suffix_text = [f"{m:.2f} ± {s:.2f} n={n}" if n > 1 else f"{m:.2f} n=1" for m, s, n in suffixes]
    suffix_w = max(len(s) for s in suffix_text)
    plot_w = max(10, width - label_w - suffix_w - 2)
    lines = []
    for label, vals, (mean, sd, n), text in zip(labels, groups[metric].to_list(), suffixes, suffix_text,
                                                strict=True):
        row = [" "] * plot_w
        if n > 1:
            half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
            for i in range(_column(mean - half, lo, hi, plot_w), _column(mean + half, lo, hi, plot_w) + 1):
                row[i] = SPAN
        row[_column(mean, lo, hi, plot_w)] = MEAN
        counts: dict[int, int] = {}
        for v in vals:
            col = _column(v, lo, hi, plot_w)
            counts[col] = counts.get(col, 0) + 1
        for col, k in counts.items():
            row[col] = RUN if k == 1 else (str(k) if k < 10 else "+")
        name = label if len(label) <= label_w else label[: label_w - 1] + "…"
        lines.append(f"{name.ljust(label_w)} {''.join(row)} {text}")
    left, right = f"{lo:.4g}", f"{hi:.4g}"
    axis = left + " " * max(1, plot_w - len(left) - len(right)) + right
    lines.append(" " * (label_w + 1) + axis)
    return "\n".join(lines)
