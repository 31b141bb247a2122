"""The detached supervisor of one experiment: launches workers, watches them, retries, outlives its UI.

`python -m cfftui.engine.supervisor RUNS_DIR EXPERIMENT` needs only the run
store: plan.json (with its execution settings) and each run's spec.json. It
holds runs/<experiment>/supervisor.lock for its whole life, so at most one
supervisor drives an experiment; a second one exits with status 3. Every
decision is written to status.json before it matters, so a supervisor killed
at any moment is replaced by a new one that re-adopts the live workers (found
by pid and creation time, or by their command line) and settles the rest from
their end events.

Tuning for tests and benchmarks (environment, seconds): CFFTUI_POLL_S (tick,
0.5), CFFTUI_HEARTBEAT_S (2), CFFTUI_KILL_GRACE_S (SIGTERM to SIGKILL for a
hung worker, 10), CFFTUI_STOP_GRACE_S (the same for a requested stop, 60).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import resource
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfftui.engine.executors import Executor, Exit, Handle, LaunchRequest, make_executor
from cfftui.engine.executors.local import find_workers
from cfftui.engine.store import RunStatus, RunStore, read_json
from cfftui.events import WorkerExit, decode_line

log = logging.getLogger("cfftui.supervisor")

REAL_WORKER = "cfftui.cff.worker"
FAKE_WORKER = "cfftui.fakeworker"
WORKER_MODULES = (REAL_WORKER, FAKE_WORKER)
LOCK_HELD = 3
"""Exit status of a supervisor that found the experiment already supervised."""


def setting(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


# --- the lock ---------------------------------------------------------------------------


def acquire_lock(path: Path, wait_s: float = 2.0) -> int | None:
    """Hold an exclusive flock on `path` for this process's life; None if another supervisor has it.

    Readers probe the lock with a brief shared flock (control.supervisor_alive), so a
    failed attempt is retried for `wait_s` before concluding that a supervisor is alive.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                return None
            time.sleep(0.05)
    # Written in place, not replaced: the flock belongs to this inode.
    os.ftruncate(fd, 0)
    os.pwrite(
        fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "t": time.time()}).encode(), 0
    )
    return fd


# --- reading what a worker left behind ----------------------------------------------------


def last_end_event(path: Path, since: float | None) -> dict[str, Any] | None:
    """The end event of the attempt that started at `since`, from the last bytes of metrics.jsonl."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            lines = f.read().split(b"\n")
    except OSError:
        return None
    for line in reversed(lines):
        event = decode_line(line)
        if event and event.get("event") == "end":
            return event if since is None or float(event.get("t", 0)) >= since else None
    return None


def last_line(path: Path) -> str:
    """The last non-empty line of a log (the traceback's message), or ''."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = [x.strip() for x in f.read().decode(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


@dataclass
class Active:
    """A worker attempt in flight, as the supervisor watches it."""

    handle: Handle
    metrics_size: int = -1
    active_at: float = 0.0
    """Monotonic time its metrics file last grew."""
    stop_requested: bool = False
    hung: bool = False
    term_at: float | None = None
    killed: bool = False


class Supervisor:
    """Drives one experiment's runs to final states; one tick at a time."""

    def __init__(self, store: RunStore, experiment: str, executor: Executor) -> None:
        self.store = store
        self.experiment = experiment
        self.executor = executor
        plan = store.read_plan(experiment) or {}
        self.execution: dict[str, Any] = plan.get("execution") or {}
        self.run_ids: list[str] = [r["run_id"] for r in plan.get("runs", [])]
        self.retries = int(self.execution.get("retries", 2))
        self.hang_timeout = float(self.execution.get("hang_timeout_s") or 0)
        self.poll_s = setting("CFFTUI_POLL_S", 0.5)
        self.heartbeat_s = setting("CFFTUI_HEARTBEAT_S", 2.0)
        self.kill_grace = setting("CFFTUI_KILL_GRACE_S", 10.0)
        self.stop_grace = setting("CFFTUI_STOP_GRACE_S", 60.0)
        self.status: dict[str, RunStatus] = {}
        self.modules: dict[str, str] = {}
        self.active: dict[str, Active] = {}
        self.dirty: set[str] = set()
        self.write_errors = 0
        self.stopping = False
        self.started = time.time()
        self.last_heartbeat = 0.0
        self.exit_requested = False

    def run_dir(self, run_id: str) -> str:
        return str(self.store.run_dir(self.experiment, run_id).resolve())

    # --- state changes ---------------------------------------------------------------------
    def set_state(self, run_id: str, state: str, **changes: Any) -> None:
        st = self.status[run_id]
        old = st.state
        st.state = state
        for k, v in changes.items():
            setattr(st, k, v)
        self.dirty.add(run_id)
        if old != state:
            extra = f" ({st.error})" if st.error and state in ("failed", "lost", "queued", "stopped") else ""
            log.info("%s %s -> %s%s", run_id, old, state, extra)

    def fail(self, run_id: str, state: str, error: str, *, retry: bool = True) -> None:
        """Record a failed or lost attempt and queue it again while its budget lasts."""
        st = self.status[run_id]
        st.failures += 1
        if retry and st.failures <= self.retries and not self.stopping:
            self.set_state(run_id, state, error=error)
            self.set_state(run_id, "queued", error=f"{error}; retry {st.failures} of {self.retries}")
        else:
            self.set_state(run_id, state, error=error)

    # --- startup -----------------------------------------------------------------------------
    def recover(self) -> None:
        """Load every status; re-adopt live workers; settle the ones that ended unsupervised."""
        for run_id in self.run_ids:
            spec = self.store.read_spec(self.experiment, run_id)
            fake = bool(((spec or {}).get("config") or {}).get("runtime", {}).get("fake"))
            self.modules[run_id] = FAKE_WORKER if fake else REAL_WORKER
            self.status[run_id] = self.store.read_status(self.experiment, run_id)
            if spec is None:
                self.set_state(run_id, "failed", error="spec.json is missing or unreadable")
        live = find_workers([self.run_dir(r) for r in self.run_ids], WORKER_MODULES)
        for run_id in self.run_ids:
            st = self.status[run_id]
            proc = live.get(self.run_dir(run_id))
            if proc is not None:
                self.readopt(run_id, proc.pid, proc.create_time())
            elif st.state == "running" and st.executor == self.executor.name != "local" \
                    and self.readopt(run_id, st.pid or 0, st.pid_start):
                pass  # a remote worker (Ray actor) that outlived the previous supervisor
            elif st.state == "running":
                self.settle(run_id, Exit(code=None), Active(Handle(run_id, st.pid, st.host or "", "local")))
            elif st.state == "stopped":
                self.set_state(run_id, "queued", error=None)
            # failed, lost and diverged runs stay so: their budget is spent (retry_failed resets it).
            if not (self.store.run_dir(self.experiment, run_id) / "status.json").exists():
                self.dirty.add(run_id)

    def readopt(self, run_id: str, pid: int, create_time: float | None) -> bool:
        st = self.status[run_id]
        handle = self.executor.adopt(run_id, self.run_dir(run_id), pid, create_time, st.gpu)
        if handle is None:
            return False
        self.active[run_id] = Active(handle, active_at=time.monotonic())
        how = "recorded pid" if st.pid == pid else "found by command line"
        log.info("%s re-adopted live worker pid %s (%s)", run_id, handle.pid, how)
        changes: dict[str, Any] = {"pid": handle.pid, "pid_start": handle.pid_start, "host": handle.host,
                                   "executor": handle.executor}
        if st.state != "running":
            # The previous supervisor started this worker and died before recording it: count the
            # attempt, and date it from the process so its end event is recognised as this attempt's.
            started = handle.pid_start or time.time()
            changes.update(attempts=st.attempts + 1, started_at=started, ended_at=None, exit_code=None,
                           signal=None, first_started_at=st.first_started_at or started)
        self.set_state(run_id, "running", **changes)
        return True

    # --- one tick ------------------------------------------------------------------------------
    def tick(self) -> None:
        self.read_control()
        for handle, exit_ in self.executor.poll():
            active = self.active.pop(handle.run_id, None)
            if active is not None:
                self.settle(handle.run_id, exit_, active)
        self.watch_activity()
        self.flush()  # endings first, so no reader ever sees more runs on a slot than it holds
        self.launch_queued()
        self.flush()
        if time.monotonic() - self.last_heartbeat >= self.heartbeat_s:
            self.heartbeat()

    def settle(self, run_id: str, exit_: Exit, active: Active) -> None:
        """Decide the state of an attempt that ended, from its exit status and its end event."""
        st = self.status[run_id]
        path = self.store.metrics_path(self.experiment, run_id)
        end = last_end_event(path, st.started_at)
        end_state = end.get("state") if end else None
        code = exit_.code
        common = {"pid": None, "ended_at": time.time(), "exit_code": code, "signal": exit_.signal}
        for k, v in common.items():
            setattr(st, k, v)
        if active.stop_requested and (
            code in (WorkerExit.STOPPED, None) or end_state == "stopped" or active.killed
        ):
            self.set_state(run_id, "stopped", error="stopped on request")
        elif end_state == "done" and code in (WorkerExit.DONE, None):
            self.set_state(run_id, "done", error=None)
        elif code == WorkerExit.DIVERGED or end_state == "diverged":
            self.set_state(run_id, "diverged", error=(end or {}).get("reason") or "diverged")
        elif code == WorkerExit.STOPPED or end_state == "stopped":
            self.set_state(run_id, "stopped", error=(end or {}).get("reason") or "stopped")
        elif code == WorkerExit.BAD_INPUT:
            stderr = last_line(self.store.run_dir(self.experiment, run_id) / "stderr.log")
            self.fail(run_id, "failed", f"bad input: {stderr or 'exit 2'}", retry=False)
        elif active.hung:
            self.fail(run_id, "failed", f"hung: no events for {self.hang_timeout:g} s; killed")
        elif code is None and exit_.signal is None and end is None:
            self.fail(run_id, "lost", "the worker vanished without an end event")
        else:
            why = (end or {}).get("reason") or (
                f"killed by signal {exit_.signal}" if exit_.signal else f"exit code {code}"
            )
            stderr = last_line(self.store.run_dir(self.experiment, run_id) / "stderr.log")
            self.fail(run_id, "failed", f"{why}: {stderr}" if stderr and stderr not in why else why)

    def watch_activity(self) -> None:
        """Hang detection by metrics file growth (one stat per run), and SIGKILL after a grace."""
        now = time.monotonic()
        for run_id, a in self.active.items():
            try:
                size = os.stat(self.store.metrics_path(self.experiment, run_id)).st_size
            except OSError:
                size = 0
            if size != a.metrics_size:
                a.metrics_size, a.active_at = size, now
            elif self.hang_timeout > 0 and a.term_at is None and now - a.active_at > self.hang_timeout:
                log.warning(
                    "%s no events for %.0f s: terminating pid %s", run_id, now - a.active_at, a.handle.pid
                )
                a.hung, a.term_at = True, now
                self.executor.terminate(a.handle)
            if a.term_at is not None and not a.killed:
                grace = self.kill_grace if a.hung else self.stop_grace
                if now - a.term_at > grace:
                    log.warning(
                        "%s still alive %.0f s after SIGTERM: killing pid %s", run_id, grace, a.handle.pid
                    )
                    a.killed = True
                    self.executor.kill(a.handle)

    def launch_queued(self) -> None:
        if self.stopping:
            return
        for run_id in self.run_ids:
            if self.executor.free_slots() <= 0:
                return
            if self.status[run_id].state != "queued" or run_id in self.active:
                continue
            st = self.status[run_id]
            st.attempts += 1
            request = LaunchRequest(
                run_id=run_id,
                run_dir=self.run_dir(run_id),
                module=self.modules[run_id],
                env={"CFFTUI_ATTEMPT": str(st.attempts)},
            )
            now = time.time()
            try:
                handle = self.executor.launch(request)
            except (OSError, RuntimeError, ValueError) as e:
                self.fail(run_id, "failed", f"could not start the worker: {e}")
                continue
            self.active[run_id] = Active(handle, active_at=time.monotonic())
            self.set_state(
                run_id,
                "running",
                pid=handle.pid,
                pid_start=handle.pid_start,
                host=handle.host,
                executor=handle.executor,
                gpu=handle.gpu,
                started_at=now,
                ended_at=None,
                exit_code=None,
                signal=None,
                first_started_at=st.first_started_at or now,
            )
            self.flush_one(run_id)  # the pid must be on disk before anything else can go wrong

    # --- requests ---------------------------------------------------------------------------------
    def read_control(self) -> None:
        d = self.store.control_dir(self.experiment)
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            return
        for name in names:
            if not name.endswith(".json"):
                continue
            path = d / name
            request = read_json(path)
            try:
                path.unlink()
            except OSError:
                pass
            if not isinstance(request, dict):
                continue
            action, run_id = request.get("action"), request.get("run_id")
            if action == "stop":
                if float(request.get("t", 0)) < self.started - 1.0:
                    log.info("ignoring a stop request older than this supervisor")
                    continue
                self.request_stop(run_id)
            elif action == "retry":
                self.reset_failed()

    def request_stop(self, run_id: str | None) -> None:
        targets = self.run_ids if run_id is None else [r for r in self.run_ids if r == run_id]
        if run_id is None:
            log.info("stop requested for the whole experiment")
            self.stopping = True
        for r in targets:
            if self.status[r].state == "queued":
                self.set_state(r, "stopped", error="stopped on request")
            a = self.active.get(r)
            if a is not None and a.term_at is None:
                a.stop_requested, a.term_at = True, time.monotonic()
                self.executor.terminate(a.handle)

    def reset_failed(self) -> None:
        for run_id in self.run_ids:
            st = self.status[run_id]
            if st.state in ("failed", "lost"):
                st.failures = 0
                self.set_state(run_id, "queued", error=f"retry requested after: {st.error}")

    # --- persistence -------------------------------------------------------------------------------
    def flush_one(self, run_id: str) -> None:
        try:
            self.store.write_status(self.experiment, run_id, self.status[run_id])
            self.dirty.discard(run_id)
        except OSError as e:
            self.write_errors += 1
            log.error("%s could not write status.json (%s); retrying next tick", run_id, e)

    def flush(self) -> None:
        for run_id in sorted(self.dirty):
            self.flush_one(run_id)

    def counts(self) -> dict[str, int]:
        return dict(Counter(st.state for st in self.status.values()))

    def heartbeat(self) -> None:
        self.last_heartbeat = time.monotonic()
        try:
            self.store.write_heartbeat(
                self.experiment,
                started_at=self.started,
                counts=self.counts(),
                executor=self.executor.name,
                stopping=self.stopping,
                write_errors=self.write_errors,
            )
        except OSError as e:
            log.error("could not write heartbeat.json (%s)", e)

    def finished(self) -> bool:
        if self.active or self.dirty:
            return False
        return self.stopping or not any(st.state == "queued" for st in self.status.values())

    def loop(self) -> None:
        while not self.exit_requested:
            try:
                self.tick()
            except OSError as e:  # a full or flaky disk: nothing is lost, the next tick tries again
                log.error("tick failed: %s; retrying", e)
            if self.finished():
                break
            time.sleep(self.poll_s)
        self.flush()
        self.heartbeat()
        self.executor.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cfftui.engine.supervisor",
        description="Supervise one experiment of a run store until it is finished.",
    )
    parser.add_argument("runs_dir")
    parser.add_argument("experiment")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format=f"%(asctime)s [{os.getpid()}] %(levelname)s %(message)s"
    )
    store = RunStore(args.runs_dir)
    plan = store.read_plan(args.experiment)
    if not plan:
        log.error("%s: no plan.json for experiment %r", store.root, args.experiment)
        return 2
    fd = acquire_lock(store.lock_path(args.experiment))
    if fd is None:
        holder = read_json(store.lock_path(args.experiment)) or {}
        log.info(
            "%s is already supervised by pid %s on %s", args.experiment, holder.get("pid"), holder.get("host")
        )
        return LOCK_HELD
    try:
        executor = make_executor(plan.get("execution") or {}, cwd=plan.get("cwd"))
    except ValueError as e:
        log.error("%s", e)
        return 2
    supervisor = Supervisor(store, args.experiment, executor)

    def leave(signum: int, _frame: object) -> None:
        # Workers keep running: the next supervisor re-adopts them.
        log.info("signal %d: leaving, workers keep running", signum)
        supervisor.exit_requested = True

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)
    log.info("supervising %s: %d runs, executor %s", args.experiment, len(supervisor.run_ids), executor.name)
    supervisor.recover()
    supervisor.loop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    log.info(
        "finished: %s; supervisor cpu %.3f s, max rss %.1f MB",
        supervisor.counts(),
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
