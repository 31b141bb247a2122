"""The Ray executor: each attempt is a detached actor on some node; its files stream back to the run store.

cfftui never starts a cluster: it joins the one at `execution.ray_address`
("auto": the cluster `ray start` left on this machine, or RAY_ADDRESS). The
supervisor is the only driver. Each attempt is one `RunHost` actor (see
ray_node.py) asking for `cpus_per_run` CPUs and, for runs that use a GPU,
1/runs_per_gpu of one; it gets the run's spec, metrics so far and checkpoints,
runs the worker in a private folder on its node, and on every supervisor tick
answers one `poll` with what is new. Replies are written into the local run
store, so the console, `status`, hang detection and the analysis read the same
files as with the local executor. An actor that dies (its node or its Ray
worker process lost) ends its attempt with an unknown exit code: the supervisor
counts a lost attempt and retries it, from the checkpoint that came back, on
whichever node Ray picks. Actors are detached and named after the run dir, so a
new supervisor re-adopts the attempts of one that died.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import signal
import socket
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfftui.engine.executors.base import Exit, Handle, LaunchRequest
from cfftui.engine.executors.ray_node import METRICS, STDERR, STDOUT, RunHost, carried_files
from cfftui.engine.store import atomic_write_bytes

log = logging.getLogger("cfftui.supervisor")

NAMESPACE = "cfftui"
INSTALL_HINT = "pip install 'cfftui[ray]'"
CAPACITY_REFRESH_S = 5.0
TAIL_BYTES = 64
"""Bytes of the local metrics end sent with each poll: the node tells from them that its file was cut."""


class RayUnavailable(ValueError):
    """Ray is not installed, or the cluster cannot be reached; the message is one line."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f'executor "ray" needs Ray, which is not installed: {INSTALL_HINT}') from None
    return ray


def resolve_address(address: str | None) -> str:
    """The cluster's bootstrap address (host:port, or a ray:// client address) for `address`.

    None and "auto" mean RAY_ADDRESS, else the cluster last started with `ray start` on this
    machine. Never None: cfftui joins an existing cluster and never starts one.
    """
    import_ray()
    if address and address != "auto":
        # Given explicitly (HOST:PORT or ray://...): used as it is. Ray's canonicalisation would map a
        # loopback host to this machine's address, which a loopback-only cluster does not listen on.
        if "://" not in address and not address.rpartition(":")[2].isdigit():
            raise RayUnavailable(f"execution.ray_address: {address!r} is not a Ray address (HOST:PORT, "
                                 "ray://HOST:PORT or auto)")
        return address
    from ray._private.services import canonicalize_bootstrap_address

    try:
        found = canonicalize_bootstrap_address(address or "auto")
    except ValueError as e:
        raise RayUnavailable(f"execution.ray_address: {address!r} is not a Ray address ({e})") from None
    except ConnectionError:
        found = None
    if not found:
        raise RayUnavailable("execution.ray_address: no running Ray cluster found on this machine and "
                             "RAY_ADDRESS is not set; give the head's address (--ray-address HOST:PORT)")
    return found


def check_cluster(address: str | None, timeout_s: float = 3.0) -> str:
    """Before anything is written: Ray importable and the cluster's port answering; returns its address."""
    resolved = resolve_address(address)
    hostport = urllib.parse.urlsplit(resolved).netloc if "://" in resolved else resolved
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as e:
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
        shown = resolved if address in (None, "auto") or address == resolved else f"{address} ({resolved})"
        raise RayUnavailable(f"cannot reach the Ray cluster at {shown}: {why}") from None
    return resolved


def actor_prefix(run_dir: str) -> str:
    """Names of a run's actors: the host and folder of its run store, so two stores never collide."""
    digest = hashlib.sha256(f"{socket.gethostname()}:{run_dir}".encode()).hexdigest()[:16]
    return f"cfftui-{digest}-"


def common_line_prefix(old: bytes, new: bytes) -> int:
    """Length of the longest run of whole lines that `old` and `new` both start with."""
    shared = os.path.commonprefix([old, new])
    return shared.rfind(b"\n") + 1


@dataclass
class Attempt:
    handle: Handle
    actor: Any
    name: str
    run_dir: Path
    pending: Any = None
    """The one poll in flight, if any."""
    killed: bool = False
    node_id: str | None = None


class RayExecutor:
    """Places each attempt as a detached actor on an existing Ray cluster and mirrors its files here."""

    name = "ray"

    def __init__(self, address: str | None, *, cpus_per_run: float = 1.0, runs_per_gpu: int = 1,
                 use_gpus: bool | None = None, jobs: int = 0, threads_per_run: int = 0) -> None:
        self.ray = import_ray()
        self.address = check_cluster(address)
        try:
            self.ray.init(address=self.address, namespace=NAMESPACE, log_to_driver=False,
                          logging_level=logging.WARNING)
        except Exception as e:  # noqa: BLE001 - Ray raises many kinds; all mean "cannot join"
            raise RayUnavailable(f"cannot join the Ray cluster at {self.address}: "
                                 f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self.cpus_per_run = cpus_per_run
        self.gpu_share = 1.0 / max(1, runs_per_gpu)
        self.use_gpus = use_gpus
        self.jobs = jobs
        self.threads = threads_per_run or max(1, math.floor(cpus_per_run))
        self.host = socket.gethostname()
        self.actor_class = self.ray.remote(RunHost)
        self.attempts: dict[str, Attempt] = {}
        self._capacity = 0
        self._capacity_at = -1e9

    # --- capacity ----------------------------------------------------------------------------
    def _gpus_wanted(self, run_dir: Path) -> bool:
        if self.use_gpus is False:
            return False
        from cfftui.engine.store import read_json

        device = str((((read_json(run_dir / "spec.json") or {}).get("config") or {}).get("runtime") or {})
                     .get("device", "auto"))
        if device == "cpu":
            return False
        if device.startswith("cuda"):
            return True
        return self.use_gpus is True or self._cluster().get("GPU", 0) > 0

    def _cluster(self) -> dict[str, float]:
        try:
            return dict(self.ray.cluster_resources())
        except Exception:  # noqa: BLE001 - a GCS hiccup: keep the last capacity
            return {}

    def capacity(self) -> int:
        """Attempts the cluster holds at once: its CPUs (and GPU shares) over one attempt's request."""
        now = time.monotonic()
        if now - self._capacity_at >= CAPACITY_REFRESH_S:
            resources = self._cluster()
            if resources:
                self._capacity_at = now
                slots = math.floor(resources.get("CPU", 0) / self.cpus_per_run + 1e-9)
                if self.use_gpus and resources.get("GPU", 0) > 0:
                    slots = min(slots, math.floor(resources["GPU"] / self.gpu_share + 1e-9))
                self._capacity = min(slots, self.jobs) if self.jobs > 0 else slots
        return self._capacity

    def free_slots(self) -> int:
        return max(0, self.capacity() - len(self.attempts))

    # --- placing attempts ----------------------------------------------------------------------
    def launch(self, request: LaunchRequest) -> Handle:
        if self.free_slots() <= 0:
            raise RuntimeError("no free slot on the Ray cluster")
        run_dir = Path(request.run_dir)
        self._kill_stale(request.run_dir)
        files = carried_files(run_dir)
        for log_name in (STDOUT, STDERR):
            (run_dir / log_name).touch()  # as the local executor leaves them: present from the first start
        gpu = self._gpus_wanted(run_dir)
        env = {**request.env, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads),
               "CFFTUI_THREADS": str(self.threads), "PYTHONUNBUFFERED": "1"}
        name = f"{actor_prefix(request.run_dir)}{request.env.get('CFFTUI_ATTEMPT', '1')}"
        actor = self.actor_class.options(
            name=name, namespace=NAMESPACE, lifetime="detached", max_restarts=0, max_task_retries=0,
            num_cpus=self.cpus_per_run, num_gpus=self.gpu_share if gpu else 0,
        ).remote(request.run_id, request.module, files, env)
        handle = Handle(run_id=request.run_id, pid=None, host=f"ray:{self.address}", executor=self.name,
                        threads=self.threads, gpu=f"{self.gpu_share:g}" if gpu else None)
        self.attempts[request.run_id] = Attempt(handle, actor, name, run_dir)
        return handle

    def _kill_stale(self, run_dir: str) -> None:
        """An attempt about to start replaces any earlier actor of the run (a lost supervisor's)."""
        for name in self._named(run_dir):
            try:
                self.ray.kill(self.ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
                log.info("killed a stale Ray actor %s", name)
            except Exception:  # noqa: BLE001 - it died on its own meanwhile
                pass

    def _named(self, run_dir: str) -> list[str]:
        from ray.util import list_named_actors

        prefix = actor_prefix(run_dir)
        names = [n for n in list_named_actors() if n.startswith(prefix)]
        return sorted(names, key=lambda n: int(n.rsplit("-", 1)[1]))

    def adopt(self, run_id: str, run_dir: str, pid: int, pid_start: float | None,
              gpu: str | None) -> Handle | None:
        names = self._named(run_dir)
        if not names:
            return None
        try:
            actor = self.ray.get_actor(names[-1], namespace=NAMESPACE)
            info = self.ray.get(actor.info.remote(), timeout=30)
        except Exception:  # noqa: BLE001 - gone, or not answering: the supervisor settles it as lost
            return None
        handle = Handle(run_id=run_id, pid=info["pid"], host=f"{info['host']} (ray)", executor=self.name,
                        threads=self.threads, gpu=gpu, adopted=True)
        self.attempts[run_id] = Attempt(handle, actor, names[-1], Path(run_dir), node_id=info.get("node_id"))
        return handle

    # --- watching --------------------------------------------------------------------------------
    def poll(self) -> list[tuple[Handle, Exit]]:
        for a in self.attempts.values():
            if a.pending is None:
                offset, tail = _local_end(a.run_dir / METRICS)
                a.pending = a.actor.poll.remote(offset, tail)
        refs = [a.pending for a in self.attempts.values()]
        if not refs:
            return []
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        ready_ids = {r.hex() for r in ready}
        ended: list[tuple[Handle, Exit]] = []
        for run_id, a in list(self.attempts.items()):
            if a.pending is None or a.pending.hex() not in ready_ids:
                continue
            ref, a.pending = a.pending, None
            exit_ = self._collect(a, ref)
            if exit_ is not None:
                del self.attempts[run_id]
                ended.append((a.handle, exit_))
        return ended

    def _collect(self, a: Attempt, ref: Any) -> Exit | None:
        from ray.exceptions import ActorUnavailableError, RayActorError

        try:
            reply = self.ray.get(ref)
        except ActorUnavailableError:
            return None  # unreachable for a moment (a restarting connection): ask again
        except RayActorError as e:
            if not a.killed:
                log.warning("%s the Ray actor of this attempt died (%s)", a.handle.run_id,
                            str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__)
            return Exit(code=None, signal=signal.SIGKILL if a.killed else None)
        if a.node_id != reply.get("node_id"):
            a.node_id = reply.get("node_id")
            a.handle.pid, a.handle.host = reply.get("pid"), f"{reply.get('host')} (ray)"
            log.info("%s runs on Ray node %s, host %s, worker pid %s", a.handle.run_id, a.node_id,
                     reply.get("host"), reply.get("pid"))
        apply_reply(a.run_dir, reply)
        code = reply.get("exit")
        if code is None:
            return None
        try:
            a.actor.release.remote()
        except Exception:  # noqa: BLE001 - already gone: nothing to free
            pass
        return Exit(code=code, signal=None) if code >= 0 else Exit(code=None, signal=-code)

    def terminate(self, handle: Handle) -> None:
        a = self.attempts.get(handle.run_id)
        if a is not None:
            a.actor.terminate.remote()

    def kill(self, handle: Handle) -> None:
        a = self.attempts.get(handle.run_id)
        if a is not None:
            a.killed = True
            try:
                self.ray.kill(a.actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already dead
                pass

    def close(self) -> None:
        # Running attempts are detached actors: they keep training, and the next supervisor re-adopts them.
        self.attempts.clear()
        try:
            self.ray.shutdown()
        except Exception:  # noqa: BLE001 - leaving anyway
            pass


def _local_end(path: Path) -> tuple[int, bytes]:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            return size, os.pread(f.fileno(), min(TAIL_BYTES, size), max(0, size - TAIL_BYTES))
    except FileNotFoundError:
        return 0, b""


def apply_reply(run_dir: Path, reply: Mapping[str, Any]) -> None:
    """Write one poll reply into the local run dir: metrics first, so a checkpoint never points past them."""
    data: bytes = reply.get("metrics") or b""
    at = int(reply.get("metrics_at") or 0)
    path = run_dir / METRICS
    if data or at == 0:
        with open(path, "a+b") as f:
            size = os.fstat(f.fileno()).st_size
            if at == 0 and size > 0:
                # The worker resumed and cut its file back to its checkpoint: mirror that, line for line.
                f.seek(0)
                keep = common_line_prefix(f.read(), data)
                f.truncate(keep)
                data = data[keep:]
            elif at != size:
                data = b""  # not where this copy ends (it cannot move on its own): the next poll resends
            f.write(data)
            f.flush()
    for name, content in (reply.get("files") or {}).items():
        atomic_write_bytes(run_dir / Path(name).name, content)
    for name, content in (reply.get("logs") or {}).items():
        if name in (STDOUT, STDERR):
            with open(run_dir / name, "ab") as f:
                f.write(content)


def from_execution(execution: Mapping[str, Any], *, cwd: str | None = None) -> RayExecutor:
    """The executor for a plan's execution table; raises ValueError (RayUnavailable) with one line."""
    gpus = execution.get("gpus")
    use_gpus = False if (isinstance(gpus, (list, tuple)) and not gpus) or gpus == 0 else None
    return RayExecutor(execution.get("ray_address"), cpus_per_run=float(execution.get("cpus_per_run") or 1.0),
                       runs_per_gpu=int(execution.get("runs_per_gpu") or 1), use_gpus=use_gpus,
                       jobs=int(execution.get("jobs") or 0),
                       threads_per_run=int(execution.get("threads_per_run") or 0))
