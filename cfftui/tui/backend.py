"""The console's one door to the study loader, the engine's control API and the statistics (imports deferred).

Every call here may block (disk, starting a supervisor, a bootstrap), so the
screens call them from thread workers only. Failures come back as
`BackendError` with one line a person can act on, which the app shows in a
notification: a console must never die because an action failed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXPORT_FORMATS = ("csv", "parquet", "json", "md", "latex")


class BackendError(Exception):
    """An action or a read that failed; str() is one line for the user."""


@dataclass(frozen=True)
class ExperimentInfo:
    """One experiment of the study file, as the experiments screen lists it."""

    name: str
    description: str
    cells: int
    seeds: int


@dataclass(frozen=True)
class StudyFile:
    """What the study file says, or why it cannot be read."""

    experiments: tuple[ExperimentInfo, ...] = ()
    error: str | None = None
    runs_dir: str | None = None
    """The run store the file names ([cfftui] runs), if it names one."""


def load_study_file(path: str | os.PathLike[str]) -> StudyFile:
    """Read and validate the study file; errors are returned, never raised (the screen shows them)."""
    if not Path(path).is_file():
        return StudyFile(error=f"{path}: no such study file")
    from cfftui.config import StudyError, load_study

    try:
        study = load_study(path)
    except StudyError as exc:
        return StudyFile(error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except (OSError, ValueError) as exc:
        return StudyFile(error=f"{path}: {exc}")
    infos = []
    for name, exp in study.experiments.items():
        cells = math.prod(len(f.levels) for f in exp.factors) if exp.factors else 1
        infos.append(ExperimentInfo(name=name, description=exp.description, cells=cells, seeds=len(exp.seeds)))
    return StudyFile(experiments=tuple(infos), runs_dir=study.runs_dir)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Any failure inside becomes a BackendError whose text is its first line."""
    try:
        yield
    except BackendError:
        raise
    except Exception as exc:  # noqa: BLE001 - the console reports every failure in one line
        raise BackendError(_one_line(exc)) from None


def start(study_file: str, names: Sequence[str], runs_dir: str, *, retry_failed: bool = False) -> dict[str, int]:
    """Start or resume experiments through the engine's supervisor (which outlives the console)."""
    from cfftui.engine import control

    with one_line_errors():
        return dict(control.start(study_file, list(names), runs_dir=runs_dir, retry_failed=retry_failed))


def stop(runs_dir: str, experiment: str, run_id: str | None = None) -> None:
    from cfftui.engine import control

    with one_line_errors():
        control.stop(runs_dir, experiment, run_id)


def retry_failed(runs_dir: str, experiment: str) -> None:
    from cfftui.engine import control

    with one_line_errors():
        control.retry_failed(runs_dir, experiment)


@dataclass(frozen=True)
class AnalysisView:
    """The analysis as the results screen shows it: headline, tables, warnings and a strip plot."""

    headline: str
    short: str
    """The ratio and its p-value, for the experiments table's narrow result column."""
    tables: dict[str, Any]
    """Table name -> polars.DataFrame."""
    warnings: tuple[str, ...]
    strip: str
    analysis: Any


def analyse(runs_dir: str, experiment: str, strip_width: int = 60) -> AnalysisView:
    from cfftui.stats import analyse as analyse_store

    with one_line_errors():
        analysis = analyse_store(runs_dir, experiment)
        tables = dict(analysis.tables)
        return AnalysisView(headline=analysis.headline(), short=analysis.short_headline(), tables=tables,
                            warnings=tuple(analysis.warnings),
                            strip=analysis.strip(strip_width), analysis=analysis)


def export(view: AnalysisView, out_dir: str | os.PathLike[str], formats: Sequence[str]) -> list[Path]:
    from cfftui.stats import write_exports

    with one_line_errors():
        return list(write_exports(view.analysis, Path(out_dir), list(formats)))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
