"""The engine's control API for the console and the commands: start, stop, retry, and cheap snapshots.

Everything here works through the run store: a supervisor is found by its
flock, requests reach it as files in runs/<experiment>/control/, and
`snapshot` reads the store through `engine.watch` (byte-offset tails kept in a
cache between calls), so that polling every second costs a few stat() calls
per run. No textual, no torch.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfftui.engine.store import RunStatus, RunStore, atomic_write_json, read_json

# ACTIVE_STATES and COLD_TAIL_BYTES are read from here by the commands and tests
from cfftui.engine.watch import ACTIVE_STATES, COLD_TAIL_BYTES, ExperimentWatch, RunWatch  # noqa: F401
from cfftui.spec import RunSpec

SUPERVISOR_MODULE = "cfftui.engine.supervisor"


class StartError(ValueError):
    """A request that cannot be started; the message is one line naming what is wrong."""


# --- supervisors -------------------------------------------------------------------------


def supervisor_alive(runs_dir: str, experiment: str) -> bool:
    """Whether a supervisor holds this experiment's lock (a brief shared-flock probe)."""
    path = RunStore(runs_dir).lock_path(experiment)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def supervisor_info(runs_dir: str, experiment: str) -> dict[str, Any] | None:
    """{pid, host, t} of the live supervisor, or None."""
    if not supervisor_alive(runs_dir, experiment):
        return None
    return read_json(RunStore(runs_dir).lock_path(experiment)) or {}


def launch_supervisor(
    runs_dir: str, experiment: str, *, env: Mapping[str, str] | None = None, wait_s: float = 10.0
) -> int:
    """Start a detached supervisor (own session, output to supervisor.log); return the live one's pid.

    If another supervisor already holds the experiment, the new one exits at once and
    the pid returned is the holder's. A supervisor that started and died before this
    call looked also counts as started: its pid is returned and the lock is free.
    """
    store = RunStore(runs_dir)
    plan = store.read_plan(experiment) or {}
    log_path = store.log_path(experiment)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", SUPERVISOR_MODULE, str(Path(runs_dir).resolve()), experiment],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            cwd=plan.get("cwd") or None,
            env=dict(env) if env is not None else None,
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        info = supervisor_info(runs_dir, experiment)
        if info and info.get("pid"):
            return int(info["pid"])
        rc = proc.poll()
        if rc == 0:
            return proc.pid  # it had nothing left to do
        if rc is not None and rc != 3:
            holder = read_json(store.lock_path(experiment)) or {}
            if holder.get("pid") == proc.pid:
                # It did start, and has died since (a slow poller can miss its whole life);
                # watchers notice that no supervisor holds the lock and start another.
                return proc.pid
            raise StartError(f"{experiment}: the supervisor exited with status {rc}; see {log_path}")
        time.sleep(0.02)
    raise StartError(f"{experiment}: the supervisor did not start within {wait_s:g} s; see {log_path}")


def _request(runs_dir: str, experiment: str, action: str, **fields: Any) -> None:
    d = RunStore(runs_dir).control_dir(experiment)
    d.mkdir(parents=True, exist_ok=True)
    name = f"{time.time():.6f}-{action}-{uuid.uuid4().hex[:6]}.json"
    atomic_write_json(d / name, {"action": action, "t": time.time(), **fields})


def stop(runs_dir: str, experiment: str, run_id: str | None = None) -> None:
    """Ask the supervisor to stop the experiment (or one run): SIGTERM, checkpoint, state stopped."""
    if RunStore(runs_dir).read_plan(experiment) is None:
        raise StartError(f"{experiment}: no such experiment in {runs_dir}")
    if supervisor_alive(runs_dir, experiment):  # with no supervisor nothing runs, so nothing to stop
        _request(runs_dir, experiment, "stop", run_id=run_id)


def retry_failed(runs_dir: str, experiment: str, *, env: Mapping[str, str] | None = None) -> None:
    """Reset the retry budget of failed and lost runs and (re)start the supervisor to run them."""
    if RunStore(runs_dir).read_plan(experiment) is None:
        raise StartError(f"{experiment}: no such experiment in {runs_dir}")
    _request(runs_dir, experiment, "retry")
    if not supervisor_alive(runs_dir, experiment):
        launch_supervisor(runs_dir, experiment, env=env)


# --- starting a study -------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Dataclasses and tuples as JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def plan_meta(experiment: Any, study_file: str) -> dict[str, Any]:
    """plan.json's description of an Experiment (store.py's docstring): all the analysis needs."""
    factors = [{"key": f.key, "levels": [lv.label for lv in f.levels]} for f in experiment.factors]
    return {
        "description": experiment.description,
        "study_file": os.path.abspath(study_file),
        "seeds": list(experiment.seeds),
        "factors": factors,
        "analysis": _plain(experiment.analysis),
        "execution": _plain(experiment.execution),
    }


def submit(
    runs_dir: str,
    experiment: str,
    specs: Sequence[RunSpec],
    meta: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    retry: bool = False,
) -> int:
    """Write the plan and the specs (unless a supervisor already runs it) and start its supervisor.

    Returns the pid of the experiment's live supervisor (an existing one is attached to).
    """
    if supervisor_alive(runs_dir, experiment):
        if retry:
            _request(runs_dir, experiment, "retry")
        return int((supervisor_info(runs_dir, experiment) or {}).get("pid") or 0)
    store = RunStore(runs_dir)
    store.write_plan(
        experiment,
        [{"run_id": s.run_id, "cell": dict(s.cell), "seed": s.seed} for s in specs],
        {"cwd": os.getcwd(), **meta},
    )
    for spec in specs:
        d = store.run_dir(experiment, spec.run_id)
        d.mkdir(parents=True, exist_ok=True)
        if not (d / "spec.json").exists():
            atomic_write_json(d / "spec.json", spec.to_json())
    if retry:
        _request(runs_dir, experiment, "retry")
    return launch_supervisor(runs_dir, experiment, env=env)


def load_plans(
    study_file: str,
    names: Sequence[str],
    overrides: Sequence[str] = (),
    *,
    executor: str | None = None,
    jobs: int | None = None,
    source: str | None = None,
    ray_address: str | None = None,
) -> tuple[Any, list[tuple[str, list[RunSpec], dict[str, Any]]]]:
    """Validate the study and plan the named experiments (all when none are named); writes nothing.

    Returns (study, [(name, specs, plan meta)]). Raises cfftui.config.StudyError or StartError,
    each with a one-line message.
    """
    from cfftui.config import load_study
    from cfftui.plan import plan

    if executor not in (None, "local", "ray"):
        raise StartError(f"--executor: {executor!r} is not one of local, ray")
    if jobs is not None and jobs < 1:
        raise StartError(f"--jobs: must be at least 1, got {jobs}")
    study = load_study(study_file, overrides, source=source)
    out = []
    for exp in study.select(names):
        meta = plan_meta(exp, study_file)
        if executor is not None:
            meta["execution"]["executor"] = executor
        if jobs is not None:
            meta["execution"]["jobs"] = jobs
        if ray_address is not None:
            meta["execution"]["ray_address"] = ray_address
        out.append((exp.name, plan(exp), meta))
    return study, out


def check_executors(plans: Sequence[tuple[str, Sequence[RunSpec], dict[str, Any]]]) -> None:
    """Before anything is written: Ray importable and its cluster answering, for plans that run on Ray.

    The address found ("auto" resolved) is written into the plan, so the supervisor joins that cluster.
    """
    from cfftui.engine.executors.ray import RayUnavailable, check_cluster

    for name, _, meta in plans:
        execution = meta["execution"]
        if execution.get("executor") == "ray":
            try:
                execution["ray_address"] = check_cluster(execution.get("ray_address"))
            except RayUnavailable as e:
                raise StartError(f"{name}: {e}") from None


def start(
    study_file: str,
    names: Sequence[str],
    *,
    runs_dir: str = "runs",
    overrides: Sequence[str] = (),
    retry_failed: bool = False,
    executor: str | None = None,
    jobs: int | None = None,
    source: str | None = None,
    ray_address: str | None = None,
) -> dict[str, int]:
    """Validate, then start (or find) one detached supervisor per experiment; returns name -> pid."""
    _, plans = load_plans(study_file, names, overrides, executor=executor, jobs=jobs, source=source,
                          ray_address=ray_address)
    check_executors(plans)
    return {name: submit(runs_dir, name, specs, meta, retry=retry_failed) for name, specs, meta in plans}


# --- snapshots ------------------------------------------------------------------------------------


@dataclass
class RunSnapshot:
    """One run as the store shows it now."""

    run_id: str
    cell: dict[str, str]
    seed: int
    status: RunStatus
    epoch: int = 0
    """Last epoch recorded in metrics.jsonl."""
    epochs: int = 0
    """Stage-1 epochs planned."""
    metrics: dict[str, Any] | None = None
    """The last epoch event."""
    probe: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    seconds_per_epoch: float | None = None
    eta_s: float | None = None

    @property
    def state(self) -> str:
        return self.status.state

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "state": self.state}


@dataclass
class ExperimentSnapshot:
    """An experiment's plan, every run's status and progress, counts by state, elapsed time and ETA."""

    experiment: str
    plan: dict[str, Any]
    runs: list[RunSnapshot]
    counts: dict[str, int]
    alive: bool
    supervisor: dict[str, Any] | None
    """The heartbeat (pid, host, t, counts) when a supervisor is alive."""
    elapsed_s: float
    eta_s: float | None
    t: float = field(default_factory=time.time)

    @property
    def total(self) -> int:
        return len(self.runs)

    @property
    def finished(self) -> bool:
        """No supervisor and nothing queued or running: the outcome is final."""
        return not self.alive and not any(self.counts.get(s) for s in ACTIVE_STATES)

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "alive": self.alive,
            "supervisor": self.supervisor,
            "counts": self.counts,
            "total": self.total,
            "elapsed_s": round(self.elapsed_s, 3),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            "t": self.t,
            "runs": [r.to_json() for r in self.runs],
        }


class SnapshotCache:
    """The watchers kept between snapshot() calls: one per experiment, each with its runs' tails."""

    def __init__(self) -> None:
        self.experiments: dict[tuple[str, str], ExperimentWatch] = {}

    def watch(self, runs_dir: str, experiment: str) -> ExperimentWatch:
        key = (os.path.abspath(runs_dir), experiment)
        if key not in self.experiments:
            self.experiments[key] = ExperimentWatch(runs_dir, experiment)
        return self.experiments[key]

    @property
    def runs(self) -> dict[Path, RunWatch]:
        """Every watched run by its folder."""
        return {run.run_dir: run for watch in self.experiments.values() for run in watch.runs.values()}


_DEFAULT_CACHE = SnapshotCache()


def snapshot(runs_dir: str, experiment: str, cache: SnapshotCache | None = None) -> ExperimentSnapshot:
    """Plan, status and progress of every run; incremental, so it is cheap to call every second."""
    watch = (cache or _DEFAULT_CACHE).watch(runs_dir, experiment)
    watch.poll()
    if not watch.exists:
        raise StartError(f"{experiment}: no such experiment in {runs_dir}")
    runs = [
        RunSnapshot(
            run_id=run.run_id,
            cell=dict(run.cell),
            seed=run.seed,
            status=run.status,
            epoch=run.epoch,
            epochs=run.epochs_total,
            metrics=run.metrics,
            probe=run.probe,
            result=run.result,
            end=run.end,
            seconds_per_epoch=run.seconds_per_epoch,
            eta_s=run.eta_s,
        )
        for run in watch.runs.values()
    ]
    alive = supervisor_alive(runs_dir, experiment)
    return ExperimentSnapshot(
        experiment=experiment,
        plan=watch.plan,
        runs=runs,
        counts=dict(watch.counts()),
        alive=alive,
        supervisor=watch.store.heartbeat(experiment) if alive else None,
        elapsed_s=watch.elapsed(alive=alive) or 0.0,
        eta_s=watch.eta(),
        t=watch.clock(),
    )
