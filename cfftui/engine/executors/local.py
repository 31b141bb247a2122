"""The local executor: workers as subprocesses of this machine, pinned to GPUs or sharing the cores."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import psutil

from cfftui.engine.executors.base import Exit, Handle, LaunchRequest


def discover_gpus(requested: object = "auto") -> list[str]:
    """GPU ids to use, found without importing torch.

    `requested`: "auto"/None (every visible GPU), an int N (the first N; 0 means CPU only),
    or a list of ids. Visible GPUs are CUDA_VISIBLE_DEVICES when set, else nvidia-smi's list.
    """
    if isinstance(requested, (list, tuple)):
        return [str(g) for g in requested]
    if requested == 0 or requested == "none":
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        found = [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    else:
        found = _nvidia_smi_gpus()
    if isinstance(requested, int) and not isinstance(requested, bool) and requested > 0:
        return found[:requested]
    return found


def _nvidia_smi_gpus() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split(",")[0].strip() for line in out.splitlines() if line.strip()]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_matches(proc: psutil.Process, run_dir: str, pid_start: float | None) -> bool:
    """Whether `proc` is a live worker of `run_dir` (same command line, same creation time)."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if run_dir not in proc.cmdline():
            return False
        return pid_start is None or abs(proc.create_time() - pid_start) < 0.5
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def find_workers(run_dirs: Sequence[str], modules: Sequence[str]) -> dict[str, psutil.Process]:
    """Live worker processes of these run dirs on this machine, found by their command lines.

    The safety net for re-adoption: a worker started by a supervisor that died before it could
    record the pid is still found, so it is never started a second time.
    """
    wanted = set(run_dirs)
    found: dict[str, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info.get("cmdline") or []
        if len(cmd) >= 4 and cmd[-3] == "-m" and cmd[-2] in modules and cmd[-1] in wanted:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found[cmd[-1]] = proc
            except psutil.Error:
                pass
    return found


class LocalExecutor:
    """Runs workers here: each in its own session, logs to the run dir, GPU-pinned or thread-capped."""

    name = "local"

    def __init__(
        self,
        *,
        jobs: int = 0,
        gpus: Sequence[str] = (),
        runs_per_gpu: int = 1,
        threads_per_run: int = 0,
        cores: int | None = None,
        cwd: str | None = None,
    ) -> None:
        self.gpus = list(gpus)
        self.runs_per_gpu = max(1, runs_per_gpu)
        self.cores = cores or usable_cores()
        self.cwd = cwd
        if self.gpus:
            gpu_slots = len(self.gpus) * self.runs_per_gpu
            self.capacity = min(jobs, gpu_slots) if jobs > 0 else gpu_slots
            self.threads = threads_per_run or max(1, self.cores // self.capacity)
        else:
            self.capacity = jobs if jobs > 0 else max(1, self.cores // max(1, threads_per_run))
            # CPU-only: the cores are divided between the concurrent workers.
            self.threads = threads_per_run or max(1, self.cores // self.capacity)
        self.host = socket.gethostname()
        self._children: dict[int, tuple[Handle, subprocess.Popen[bytes]]] = {}
        self._adopted: dict[int, tuple[Handle, psutil.Process]] = {}
        self._gpu_load: dict[str, int] = {g: 0 for g in self.gpus}

    def running(self) -> int:
        return len(self._children) + len(self._adopted)

    def free_slots(self) -> int:
        return max(0, self.capacity - self.running())

    def _pick_gpu(self) -> str | None:
        if not self.gpus:
            return None
        gpu = min(self.gpus, key=lambda g: self._gpu_load[g])
        return gpu if self._gpu_load[gpu] < self.runs_per_gpu else None

    def launch(self, request: LaunchRequest) -> Handle:
        if self.free_slots() <= 0:
            raise RuntimeError("no free slot")
        gpu = self._pick_gpu()
        if self.gpus and gpu is None:
            raise RuntimeError("every GPU is full")
        env = {
            **os.environ,
            **request.env,
            "OMP_NUM_THREADS": str(self.threads),
            "MKL_NUM_THREADS": str(self.threads),
            "CFFTUI_THREADS": str(self.threads),
            "PYTHONUNBUFFERED": "1",
        }
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        run_dir = Path(request.run_dir)
        with open(run_dir / "stdout.log", "ab") as out, open(run_dir / "stderr.log", "ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", request.module, request.run_dir],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
                close_fds=True,
            )
        try:
            pid_start = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            pid_start = None
        handle = Handle(
            run_id=request.run_id,
            pid=proc.pid,
            host=self.host,
            executor=self.name,
            pid_start=pid_start,
            gpu=gpu,
            threads=self.threads,
        )
        self._children[proc.pid] = (handle, proc)
        if gpu is not None:
            self._gpu_load[gpu] += 1
        return handle

    def adopt(
        self, run_id: str, run_dir: str, pid: int, pid_start: float | None, gpu: str | None
    ) -> Handle | None:
        try:
            proc = psutil.Process(pid)
        except psutil.Error:
            return None
        if not worker_matches(proc, run_dir, pid_start):
            return None
        handle = Handle(
            run_id=run_id,
            pid=pid,
            host=self.host,
            executor=self.name,
            pid_start=proc.create_time(),
            gpu=gpu,
            adopted=True,
        )
        self._adopted[pid] = (handle, proc)
        if gpu in self._gpu_load:
            self._gpu_load[gpu] += 1
        return handle

    def poll(self) -> list[tuple[Handle, Exit]]:
        ended: list[tuple[Handle, Exit]] = []
        for pid, (handle, proc) in list(self._children.items()):
            rc = proc.poll()
            if rc is not None:
                del self._children[pid]
                ended.append((handle, Exit(code=rc if rc >= 0 else None, signal=-rc if rc < 0 else None)))
        for pid, (handle, ps) in list(self._adopted.items()):
            try:
                alive = ps.is_running() and ps.status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                alive = False
            if not alive:
                del self._adopted[pid]
                ended.append((handle, Exit(code=None)))
        for handle, _ in ended:
            if handle.gpu in self._gpu_load:
                self._gpu_load[handle.gpu] -= 1
        return ended

    def _signal(self, handle: Handle, sig: int) -> None:
        if handle.pid is None:
            return
        if handle.adopted:
            entry = self._adopted.get(handle.pid)
            if entry is None or not entry[1].is_running():
                return  # never signal a pid that may now belong to someone else
        try:
            os.killpg(handle.pid, sig)  # the worker leads its own group: its helpers go too
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(handle.pid, sig)

    def terminate(self, handle: Handle) -> None:
        self._signal(handle, signal.SIGTERM)

    def kill(self, handle: Handle) -> None:
        self._signal(handle, signal.SIGKILL)

    def close(self) -> None:
        self._children.clear()
        self._adopted.clear()
