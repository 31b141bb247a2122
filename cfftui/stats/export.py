"""Write an Analysis as CSV, Parquet, JSON, Markdown and booktabs LaTeX (with a macros file)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from cfftui.engine.store import atomic_write_bytes, atomic_write_text
from cfftui.stats.analysis import Analysis
from cfftui.stats.frames import AnalysisError
from cfftui.stats.present import as_jsonable, display_tables, latex_table, macros_tex, markdown_report, settings_line

FORMATS = ("csv", "parquet", "json", "md", "latex")
DATA_ONLY = ("epochs",)
"""Tables too long for documents: written as CSV and Parquet only."""
SIGNIFICANT = 10
"""CSV and JSON numbers are rounded to this many significant digits, so that the last bits of a
least-squares fit on another machine cannot change an exported byte."""


def _rounded(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Float64).round_sig_figs(SIGNIFICANT))


def _csv(analysis: Analysis, name: str, frame: pl.DataFrame) -> bytes:
    header = [f"# cfftui {analysis.experiment} / {name}: {analysis.notes.get(name, '')}",
              f"# {settings_line(analysis)}"]
    header += [f"# warning: {w}" for w in analysis.warnings]
    return ("\n".join(header) + "\n" + _rounded(frame).write_csv(float_scientific=False)).encode()


def _parquet(analysis: Analysis, name: str, frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, metadata={"cfftui.experiment": analysis.experiment,
                                          "cfftui.note": analysis.notes.get(name, ""),
                                          "cfftui.settings": settings_line(analysis),
                                          "cfftui.warnings": json.dumps(analysis.warnings, ensure_ascii=False)})
    return buffer.getvalue()


def _json(analysis: Analysis) -> bytes:
    tables = {}
    for name, frame in analysis.tables.items():
        if name in DATA_ONLY:
            continue
        tables[name] = {"note": analysis.notes.get(name, ""), "columns": frame.columns,
                        "rows": [[as_jsonable(v) for v in row] for row in frame.iter_rows()]}
    doc = {"experiment": analysis.experiment, "headline": analysis.headline(),
           "settings": {"metric": analysis.metric, "unit": analysis.unit, "compare": analysis.compare,
                        "levels": list(analysis.levels), "bootstrap": analysis.n_boot, "seed": analysis.seed,
                        "ddof": 1, "confidence": 0.95, "sums_of_squares": "type II"},
           "warnings": analysis.warnings, "tables": tables}
    return (json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode()


def render_exports(analysis: Analysis, formats: Iterable[str] = FORMATS) -> dict[str, bytes]:
    """File name -> content for every requested format, built completely before anything is written."""
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise AnalysisError(f"unknown export format {unknown[0]!r} (formats: {', '.join(FORMATS)}, all)")
    files: dict[str, bytes] = {}
    for fmt in formats:
        if fmt == "csv":
            files.update({f"{n}.csv": _csv(analysis, n, f) for n, f in analysis.tables.items()})
        elif fmt == "parquet":
            files.update({f"{n}.parquet": _parquet(analysis, n, f) for n, f in analysis.tables.items()})
        elif fmt == "json":
            files["analysis.json"] = _json(analysis)
        elif fmt == "md":
            files["analysis.md"] = markdown_report(analysis).encode()
        elif fmt == "latex":
            files.update({f"{t.name}.tex": latex_table(analysis, t).encode() for t in display_tables(analysis)})
            files["macros.tex"] = macros_tex(analysis).encode()
    return files


def write_exports(analysis: Analysis, out_dir: str | Path,
                  formats: Iterable[str] = FORMATS) -> list[Path]:
    """Write every table in each format into out_dir; returns the paths written.

    Everything is rendered in memory first and each file is replaced atomically, so a bad
    format or a failing renderer writes nothing and a reader never sees half a file.
    CSV and Parquet hold every table (including the per-epoch one); JSON, Markdown and LaTeX
    hold the analysis tables. Notes and warnings travel with each table: `#` comment lines
    in CSV (read with comment_prefix="#"), key-value metadata in Parquet, text under tables.
    """
    files = render_exports(analysis, formats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files.items():
        path = out / name
        if name.endswith((".csv", ".json", ".md", ".tex")):
            atomic_write_text(path, data.decode())
        else:
            atomic_write_bytes(path, data)
        written.append(path)
    return written
