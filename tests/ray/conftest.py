"""A real two-node Ray cluster on this machine for the Ray executor tests, one per test module."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

RAY = Path(sys.executable).with_name("ray")

STUDY = """
[experiments.rayfake]
description = "fake runs on a Ray cluster"
dataset = "synthetic"
seeds = 2
model.depth = 2
train.epochs = 6
probe.epochs = 2
runtime.fake = true
runtime.fake_events_per_s = 10
runtime.checkpoint_every = 2
runtime.device = "cpu"

[experiments.rayfake.factors]
"loss.margin_mode" = ["clamp", "subtract"]

[experiments.rayfake.execution]
executor = "ray"
hang_timeout_s = 60
"""
"""A 2x2 fake study that asks for the Ray executor (the Ray tests' experiments.toml)."""


def cfftui(args: list[str], cwd: Path, env: dict[str, str] | None = None,
           timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cfftui", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


@dataclass
class Cluster:
    address: str
    """What cfftui is given: 127.0.0.1:PORT (Ray maps it to this machine's address)."""
    base: Path
    scratch: Path
    """Where the nodes' actors make their private run dirs (CFFTUI_RAY_SCRATCH)."""
    groups: list[int]
    """Process groups of the head and the second node, as `ray start` left them."""


CLONE_NEWNET = 0x40000000


def loopback_only_network() -> bool:
    """Move this test process into a network namespace of its own that has only loopback.

    Ray maps 127.0.0.1 to the machine's own address for multi-node clusters, so its daemons would
    listen there. Inside a namespace whose only interface is `lo`, every socket the cluster opens is
    reachable from this namespace alone. Needs root (CAP_SYS_ADMIN) and iproute2; returns False, and
    changes nothing, where either is missing. The rest of the session stays in the namespace, which
    only ever uses loopback anyway.
    """
    if getattr(loopback_only_network, "active", False):
        return True
    ip = shutil.which("ip")
    if ip is None or os.geteuid() != 0:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return False
    subprocess.run([ip, "link", "set", "lo", "up"], check=True)
    loopback_only_network.active = True  # type: ignore[attr-defined]
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ray_start(args: list[str], env: dict[str, str], log: Path) -> int:
    """Run `ray start` as the leader of a new process group; its daemons stay in that group. Returns it."""
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(RAY), "start", *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        rc = proc.wait(timeout=120)
    if rc != 0:
        raise RuntimeError(f"ray start {' '.join(args)} exited {rc}: {log.read_text()[-2000:]}")
    return proc.pid


def end_groups(groups: list[int], grace_s: float = 2.0) -> None:
    """End exactly the processes this fixture started (not `ray stop`: it ends every Ray on the machine)."""
    def members() -> list[psutil.Process]:
        found = []
        for p in psutil.process_iter():
            try:
                if os.getpgid(p.pid) in groups and p.status() != psutil.STATUS_ZOMBIE:
                    found.append(p)
            except (ProcessLookupError, psutil.Error):
                pass
        return found

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for g in groups:
            try:
                os.killpg(g, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while members() and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    # CI installs the ray extra, so there these tests always run.
    pytest.importorskip("ray", reason="the ray extra is not installed")
    loopback_only_network()
    # A short base path: Ray's unix sockets live under it and must stay under 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="cfr", dir="/tmp"))
    scratch = base / "scratch"
    port = free_port()
    env = {**os.environ, "CFFTUI_RAY_SCRATCH": str(scratch), "RAY_USAGE_STATS_ENABLED": "0",
           # A dead node is noticed in about two seconds instead of half a minute.
           "RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_period_ms": "500",
           "RAY_health_check_timeout_ms": "500", "RAY_health_check_failure_threshold": "3"}
    common = ["--num-cpus=1", "--num-gpus=0", "--disable-usage-stats", f"--temp-dir={base / 't'}",
              "--object-store-memory=100000000"]
    groups: list[int] = []
    try:
        groups.append(ray_start(["--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                                 "--include-dashboard=false", *common], env, base / "head.log"))
        groups.append(ray_start([f"--address=127.0.0.1:{port}", *common], env, base / "node2.log"))
        yield Cluster(address=f"127.0.0.1:{port}", base=base, scratch=scratch, groups=groups)
    finally:
        end_groups(groups)
        shutil.rmtree(base, ignore_errors=True)
