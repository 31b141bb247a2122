"""The node side of the Ray executor: an actor per attempt runs the worker in a private folder on its node.

`RunHost` is made a Ray actor by the executor (`ray.remote(RunHost)`), so this
module imports Ray only where an actor must end itself. Run as a module,
`python -m cfftui.engine.executors.ray_node PARENT_PID MODULE RUN_DIR` is the
launcher of the worker: it asks Linux to kill it when the actor's process dies
(a node or Ray worker lost mid-run must not leave a headless worker training
into a folder nobody reads) and then becomes `python -m MODULE RUN_DIR`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SPEC, METRICS, STDOUT, STDERR = "spec.json", "metrics.jsonl", "stdout.log", "stderr.log"
STREAMED = frozenset({SPEC, METRICS, STDOUT, STDERR, "status.json"})
"""Run-dir files that are not carried as whole files (spec goes out once; the rest are streams or local)."""
LOCAL_ONLY = frozenset({STDOUT, STDERR, "status.json"})
"""Run-dir files that never travel to a node (the logs are per attempt; status is the supervisor's)."""
MAX_CHUNK = 8 << 20
"""Bytes of one stream per poll, so one reply stays small; the rest comes with the next poll."""
ORPHAN_AFTER_S = float(os.environ.get("CFFTUI_RAY_ORPHAN_S", 900))
"""An attempt whose worker has ended and that nobody polled for this long frees its resources."""


def carried_files(run_dir: Path) -> dict[str, bytes]:
    """The whole files of a run dir that travel with an attempt: spec, metrics so far, checkpoints."""
    out: dict[str, bytes] = {}
    for path in sorted(run_dir.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.name not in LOCAL_ONLY:
            out[path.name] = path.read_bytes()
    return out


def complete_lines(data: bytes) -> bytes:
    """`data` up to and including its last newline: a torn last line waits for its end."""
    return data[: data.rfind(b"\n") + 1]


class RunHost:
    """One attempt of one run on whichever node Ray placed it."""

    def __init__(self, run_id: str, module: str, files: dict[str, bytes], env: dict[str, str]) -> None:
        base = os.environ.get("CFFTUI_RAY_SCRATCH") or tempfile.gettempdir()
        Path(base).mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"cfftui-{run_id}-", dir=base))
        for name, data in files.items():
            (self.dir / Path(name).name).write_bytes(data)
        self.sent_stamps: dict[str, tuple[int, int]] = {
            name: self._stamp(name) for name in files if name not in STREAMED}
        self.log_offsets = {STDOUT: 0, STDERR: 0}
        with open(self.dir / STDOUT, "ab") as out, open(self.dir / STDERR, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(os.getpid()), module, str(self.dir)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.dir, close_fds=True,
                env={**os.environ, **env}, start_new_session=True)
        self.host = socket.gethostname()
        self.last_poll = time.monotonic()
        self.lock = threading.Lock()
        threading.Thread(target=self._watch_orphan, daemon=True).start()

    # --- what the executor calls --------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.proc.pid, "actor_pid": os.getpid(), "dir": str(self.dir),
                "node_id": _node_id()}

    def poll(self, metrics_offset: int, metrics_tail: bytes) -> dict[str, Any]:
        """What is new since the caller's copy, which ends at `metrics_offset` with `metrics_tail`.

        Read in the order that keeps the caller consistent: the exit status first (so that
        a final reply holds everything), then checkpoints, then metrics (so that a
        checkpoint never points past the metrics that come with it).
        """
        with self.lock:
            self.last_poll = time.monotonic()
            code = self.proc.poll()
            files, files_pending = self._changed_files()
            at, metrics, metrics_pending = self._metrics_since(metrics_offset, metrics_tail)
            logs, logs_pending = self._logs()
            final = code is not None and not (files_pending or metrics_pending or logs_pending)
            return {"host": self.host, "pid": self.proc.pid, "node_id": _node_id(), "files": files,
                    "metrics_at": at, "metrics": metrics, "logs": logs, "exit": code if final else None}

    def terminate(self) -> None:
        """SIGTERM: the worker checkpoints, writes its end event and exits 4."""
        self._signal(signal.SIGTERM)

    def release(self) -> None:
        """The executor has everything: remove the private run dir and end this actor."""
        self._signal(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)
        import ray

        ray.actor.exit_actor()

    # --- helpers ----------------------------------------------------------------------------------
    def _signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)  # the worker leads its own group: its helpers go too
            except ProcessLookupError:
                pass

    def _stamp(self, name: str) -> tuple[int, int]:
        st = os.stat(self.dir / name)
        return st.st_mtime_ns, st.st_size

    def _changed_files(self) -> tuple[dict[str, bytes], bool]:
        out: dict[str, bytes] = {}
        size = 0
        for path in sorted(self.dir.iterdir()):
            name = path.name
            if name in STREAMED or name.startswith(".") or not path.is_file():
                continue
            try:
                stamp = self._stamp(name)
                if self.sent_stamps.get(name) == stamp:
                    continue
                if out and size + stamp[1] > MAX_CHUNK:
                    return out, True
                out[name] = path.read_bytes()
            except FileNotFoundError:
                continue  # replaced between listing and reading: the next poll sees the new one
            size += len(out[name])
            self.sent_stamps[name] = stamp
        return out, False

    def _metrics_since(self, offset: int, tail: bytes) -> tuple[int, bytes, bool]:
        """(where the bytes go, complete lines, whether more are waiting).

        When the caller's copy is no longer a prefix of the file (a resumed worker
        truncated it to its checkpoint), the whole file comes back from offset 0.
        """
        path = self.dir / METRICS
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return offset, b"", False
        with f:
            size = os.fstat(f.fileno()).st_size
            start = offset
            if offset > size or (tail and os.pread(f.fileno(), len(tail), offset - len(tail)) != tail):
                start = 0
            f.seek(start)
            data = f.read(min(size - start, MAX_CHUNK))
        lines = complete_lines(data)
        return start, lines, start + len(data) < size

    def _logs(self) -> tuple[dict[str, bytes], bool]:
        out: dict[str, bytes] = {}
        pending = False
        for name, offset in self.log_offsets.items():
            with open(self.dir / name, "rb") as f:
                f.seek(offset)
                data = f.read(MAX_CHUNK)
                pending = pending or os.fstat(f.fileno()).st_size > offset + len(data)
            if data:
                out[name] = data
                self.log_offsets[name] = offset + len(data)
        return out, pending

    def _watch_orphan(self) -> None:
        while True:
            time.sleep(min(30.0, ORPHAN_AFTER_S))
            with self.lock:
                idle = time.monotonic() - self.last_poll
                if self.proc.poll() is not None and idle > ORPHAN_AFTER_S:
                    # Detached actors outlive their supervisor; with nobody left to collect, free the node.
                    shutil.rmtree(self.dir, ignore_errors=True)
                    os._exit(0)


def _node_id() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - informative only
        return None


def _die_with_parent(parent_pid: int) -> None:
    """PR_SET_PDEATHSIG(SIGKILL): this process (and what it execs) dies when its parent does."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def main(argv: list[str]) -> None:
    parent, module, run_dir = argv
    if sys.platform.startswith("linux"):
        _die_with_parent(int(parent))
    os.execv(sys.executable, [sys.executable, "-m", module, run_dir])


if __name__ == "__main__":
    main(sys.argv[1:])
