"""The console's one door to the study loader, the engine's control API and the statistics (imports deferred).

Every call here may block (disk, starting a supervisor, a bootstrap), so the
screens call them from thread workers only. Failures come back as
`BackendError` with one line a person can act on, which the app shows in a
notification: a console must never die because an action failed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
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
    try:
        from cfftui.config import StudyError, load_study
    except ImportError as exc:
        return StudyFile(error=f"the study loader is not available ({exc})")
    try:
        study = load_study(path)
    except StudyError as exc:
        return StudyFile(error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except (OSError, ValueError) as exc:
        return StudyFile(error=f"{path}: {exc}")
    infos = []
    for name, exp in study.experiments.items():
        cells = math.prod(len(f.levels) for f in exp.factors) if exp.factors else 1
        infos.append(ExperimentInfo(name=name, description=str(getattr(exp, "description", "") or ""),
                                    cells=cells, seeds=len(exp.seeds)))
    return StudyFile(experiments=tuple(infos), runs_dir=getattr(study, "runs_dir", None))


def _control() -> Any:
    try:
        from cfftui.engine import control
    except ImportError as exc:
        raise BackendError(f"the engine's control API is not available ({exc})") from None
    return control


def start(study_file: str, names: Sequence[str], runs_dir: str, *, retry_failed: bool = False) -> dict[str, int]:
    """Start or resume experiments through the engine's supervisor (which outlives the console)."""
    try:
        return dict(_control().start(study_file, list(names), runs_dir=runs_dir, retry_failed=retry_failed))
    except BackendError:
        raise
    except Exception as exc:  # noqa: BLE001 - the console reports every engine failure in one line
        raise BackendError(_one_line(exc)) from None


def stop(runs_dir: str, experiment: str, run_id: str | None = None) -> None:
    try:
        _control().stop(runs_dir, experiment, run_id)
    except BackendError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise BackendError(_one_line(exc)) from None


def retry_failed(runs_dir: str, experiment: str) -> None:
    try:
        _control().retry_failed(runs_dir, experiment)
    except BackendError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise BackendError(_one_line(exc)) from None


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
    from cfftui.stats import strip_plot

    try:
        analysis = analyse_store(runs_dir, experiment)
        tables = dict(analysis.tables)
        frame = _strip_frame(tables)
        strip = "" if frame is None else str(strip_plot(frame, analysis.metric, strip_width))
        return AnalysisView(headline=str(analysis.headline()), short=analysis.short_headline(), tables=tables,
                            warnings=tuple(str(w) for w in analysis.warnings), strip=strip, analysis=analysis)
    except Exception as exc:  # noqa: BLE001 - AnalysisError and anything else: one line
        raise BackendError(_one_line(exc)) from None


def _strip_frame(tables: dict[str, Any]) -> Any:
    """The per-run frame of the analysis (one row per seed and cell)."""
    if "runs" in tables:
        return tables["runs"]
    for frame in tables.values():
        if "seed" in getattr(frame, "columns", ()):
            return frame
    return None


def export(view: AnalysisView, out_dir: str | os.PathLike[str], formats: Sequence[str]) -> list[Path]:
    from cfftui.stats import write_exports
    try:
        return list(write_exports(view.analysis, Path(out_dir), list(formats)))
    except Exception as exc:  # noqa: BLE001
        raise BackendError(_one_line(exc)) from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
