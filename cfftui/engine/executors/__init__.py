"""Executors place worker processes; `make_executor` builds the one an experiment's execution asks for."""

from __future__ import annotations

import importlib
from typing import Any

from cfftui.engine.executors.base import Executor, Exit, Handle, LaunchRequest

__all__ = ["Executor", "Exit", "Handle", "LaunchRequest", "make_executor"]


def make_executor(execution: dict[str, Any], *, cwd: str | None = None) -> Executor:
    """The executor named by execution["executor"] ('local' unless said otherwise).

    Other executors live in cfftui.engine.executors.<name> and expose
    `from_execution(execution, cwd=...) -> Executor`.
    """
    name = str(execution.get("executor") or "local")
    if name == "local":
        from cfftui.engine.executors.local import LocalExecutor, discover_gpus

        return LocalExecutor(
            jobs=int(execution.get("jobs") or 0),
            gpus=discover_gpus(execution.get("gpus", "auto")),
            runs_per_gpu=int(execution.get("runs_per_gpu") or 1),
            threads_per_run=int(execution.get("threads_per_run") or 0),
            cwd=cwd,
        )
    try:
        module = importlib.import_module(f"cfftui.engine.executors.{name}")
    except ImportError as e:
        raise ValueError(f"executor {name!r} is not available: {e}") from None
    return module.from_execution(execution, cwd=cwd)
