"""Every export format, byte for byte, against files in tests/stats/golden/.

Regenerate after an intended change with
    CFFTUI_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/stats/test_golden.py
and review the diff. Parquet is compared through a canonical text dump (schema, key-value
metadata, rows as CSV), since its bytes also encode the writer's version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from cfftui.stats import analyse, write_exports

from .conftest import MARGIN, WIDTH
from .studies import write_study

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("CFFTUI_UPDATE_GOLDEN") == "1"


def awkward(root: Path) -> Path:
    """Ties, negative values, unequal n and a failed run."""
    return write_study(root, "awkward_2x2", {MARGIN: ["clamp", "subtract"], WIDTH: [128, 256]}, {
        ("clamp", 128): [0.10, 0.10, -0.05, 0.20, 0.10],
        ("clamp", 256): [-0.20, 0.00, 0.30, 0.30],
        ("subtract", 128): [0.05, 0.06, 0.05, 0.07, 0.06, 0.05],
        ("subtract", 256): [0.01, -0.01, 0.02, 0.00, 0.015],
    }, states={(("subtract", 256), 4): "failed"}, analysis={"bootstrap": 1000, "seed": 7})


def single_run_cell(root: Path) -> Path:
    """One cell with a single run (analysed with min_cell_runs=1)."""
    return write_study(root, "single_2x2", {MARGIN: ["clamp", "subtract"], WIDTH: [128, 256]}, {
        ("clamp", 128): [0.71, 0.75, 0.69],
        ("clamp", 256): [0.74],
        ("subtract", 128): [0.72, 0.73, 0.71],
        ("subtract", 256): [0.735, 0.74, 0.73],
    }, analysis={"bootstrap": 1000, "seed": 3})


def canonical(path: Path) -> bytes:
    """A parquet file as text: its key-value metadata, schema and rows."""
    if path.suffix != ".parquet":
        return path.read_bytes()
    meta = {k.decode(): v.decode() for k, v in (pq.read_metadata(path).metadata or {}).items()
            if k.decode().startswith("cfftui.")}
    frame = pl.read_parquet(path)
    schema = {name: str(dtype) for name, dtype in frame.schema.items()}
    body = frame.with_columns(pl.col(pl.Float64).round_sig_figs(10)).write_csv()
    return (json.dumps({"metadata": meta, "schema": schema}, indent=1, sort_keys=True) + "\n" + body).encode()


@pytest.mark.parametrize(("builder", "kwargs"), [(awkward, {}), (single_run_cell, {"min_cell_runs": 1})],
                         ids=["awkward", "single_run_cell"])
def test_exports_match_golden_files(tmp_path: Path, builder, kwargs: dict) -> None:
    root = builder(tmp_path / "runs")
    experiment = next(p.name for p in root.iterdir())
    analysis = analyse(root, experiment, **kwargs)
    written = write_exports(analysis, tmp_path / "out")
    golden_dir = GOLDEN / experiment
    produced = {p.name + (".txt" if p.suffix == ".parquet" else ""): canonical(p) for p in written}
    if UPDATE:
        golden_dir.mkdir(parents=True, exist_ok=True)
        for old in golden_dir.iterdir():
            old.unlink()
        for name, data in produced.items():
            (golden_dir / name).write_bytes(data)
    expected = {p.name: p.read_bytes() for p in golden_dir.iterdir()}
    assert sorted(produced) == sorted(expected)
    for name, data in produced.items():
        assert data == expected[name], f"{name} differs from {golden_dir / name} (CFFTUI_UPDATE_GOLDEN=1 rewrites)"


def test_exports_carry_warnings_in_every_table(tmp_path: Path) -> None:
    root = awkward(tmp_path / "runs")
    analysis = analyse(root, "awkward_2x2")
    assert any("excluded" in w for w in analysis.warnings)
    out = tmp_path / "out"
    write_exports(analysis, out)
    for tex in out.glob("*.tex"):
        if tex.name != "macros.tex":
            assert r"\toprule" in tex.read_text() and "Warning: 1 of 20 planned runs excluded" in tex.read_text()
    for csv in out.glob("*.csv"):
        assert "# warning: 1 of 20 planned runs excluded" in csv.read_text()
        pl.read_csv(csv, comment_prefix="#")  # still plain CSV for any reader that skips comments
    doc = json.loads((out / "analysis.json").read_text())
    assert doc["settings"]["ddof"] == 1 and doc["warnings"] == analysis.warnings
    assert pq.read_metadata(out / "cells.parquet").metadata[b"cfftui.warnings"].decode() == json.dumps(
        analysis.warnings, ensure_ascii=False)
    macros = (out / "macros.tex").read_text()
    assert r"\newcommand{\cffAwkwardTwoByTwoVarianceRatio}{" in macros
    names = [line.split("{", 2)[1].rstrip("}") for line in macros.splitlines() if line.startswith(r"\newcommand")]
    assert len(names) == len(set(names)) and all(n[1:].isalpha() for n in names)


def test_a_bad_format_writes_nothing(tmp_path: Path) -> None:
    root = awkward(tmp_path / "runs")
    analysis = analyse(root, "awkward_2x2")
    from cfftui.stats import AnalysisError
    with pytest.raises(AnalysisError, match="unknown export format 'xlsx'"):
        write_exports(analysis, tmp_path / "out", formats=("csv", "xlsx"))
    assert not (tmp_path / "out").exists()
