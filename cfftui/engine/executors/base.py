"""The executor interface: how the supervisor starts, watches and stops workers, wherever they run.

The supervisor owns the run store and all decisions (what to launch, retries,
states); an executor only places worker processes and reports their exits. A
worker is always `python -m <module> RUN_DIR`: it reads RUN_DIR/spec.json and
appends its events to RUN_DIR/metrics.jsonl. An executor that runs workers on
other machines (Ray) must make those events appear in the local
RUN_DIR/metrics.jsonl (stream them back and append them, flushing per line),
because the supervisor's hang detection, the UI and the analysis read only the
local run store.

Contract, per method:
- `free_slots()`: how many more workers may start now (concurrency, GPU packing).
- `launch(request)`: start one worker; return its Handle at once (never wait for it).
- `poll()`: the handles whose worker has ended since the last call, each with its Exit.
  Called every supervisor tick (about twice a second), so it must be cheap.
- `terminate(handle)`: ask the worker to stop (SIGTERM: it checkpoints and exits 4).
- `kill(handle)`: end it now (SIGKILL), for hung workers and expired grace periods.
- `adopt(...)`: take over a worker that a previous supervisor started and that still
  runs; return None when the process is not that worker any more.
- `close()`: release resources; running workers are left running (they outlive supervisors).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class LaunchRequest:
    """Everything an executor needs to start one worker attempt."""

    run_id: str
    run_dir: str
    """Absolute path of the run's folder (spec.json inside)."""
    module: str
    """The worker module: cfftui.cff.worker, or cfftui.fakeworker for fake runs."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment for the worker (CFFTUI_ATTEMPT...); the executor adds placement variables."""


@dataclass
class Handle:
    """One live worker attempt as its executor placed it."""

    run_id: str
    pid: int | None
    host: str
    executor: str
    pid_start: float | None = None
    """Process creation time, recorded so that a later supervisor can verify the pid."""
    gpu: str | None = None
    """CUDA_VISIBLE_DEVICES given to the worker, or None on CPU."""
    threads: int | None = None
    adopted: bool = False
    """Started by an earlier supervisor: no exit code will be known, only the end event."""


@dataclass(frozen=True)
class Exit:
    """How a worker attempt ended, as far as the executor can tell."""

    code: int | None
    """Exit status, or None when unknown (an adopted process, a remote worker that vanished)."""
    signal: int | None = None
    """The signal that killed it, if any."""


class Executor(Protocol):
    name: str

    def free_slots(self) -> int: ...

    def launch(self, request: LaunchRequest) -> Handle: ...

    def poll(self) -> list[tuple[Handle, Exit]]: ...

    def terminate(self, handle: Handle) -> None: ...

    def kill(self, handle: Handle) -> None: ...

    def adopt(
        self, run_id: str, run_dir: str, pid: int, pid_start: float | None, gpu: str | None
    ) -> Handle | None: ...

    def close(self) -> None: ...
