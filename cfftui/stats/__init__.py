"""The variance analysis of finished runs with Polars and SciPy, and its exports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cfftui.stats.analysis import Analysis, analyse
    from cfftui.stats.export import write_exports
    from cfftui.stats.frames import AnalysisError
    from cfftui.stats.strip import strip_plot

__all__ = ["Analysis", "AnalysisError", "analyse", "strip_plot", "write_exports"]

_LAZY = {"Analysis": "cfftui.stats.analysis", "analyse": "cfftui.stats.analysis",
         "write_exports": "cfftui.stats.export", "AnalysisError": "cfftui.stats.frames",
         "strip_plot": "cfftui.stats.strip"}


def __getattr__(name: str) -> Any:
    # polars and scipy load on first use, so `cfftui report --help` and the command router stay fast
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cfftui.stats' has no attribute {name!r}")
