"""Engine overhead: supervisor CPU per run over 1,000 quick fake runs, and the load of 200 live runs.

    .venv/bin/python bench/engine_bench.py [--launch-runs 1000] [--live-runs 200] [--seconds 30]

Part 1 plans N fake runs that each emit one epoch and finish at once, and reads the
supervisor's own CPU time and peak RSS (getrusage, logged when it exits). Part 2 keeps
M fake runs each appending 10 events per second, then samples the supervisor's CPU
(% of one core) and RSS with psutil for S seconds, times `cfftui status --json`, and
the in-process `control.snapshot()` that the console calls every second.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from cfftui.engine import control
from cfftui.spec import RunSpec, config_from_dict


def specs(n: int, *, epochs: int, rate: float) -> list[RunSpec]:
    config = config_from_dict(
        {
            "model": {"depth": 2},
            "train": {"epochs": epochs},
            "probe": {"epochs": 1},
            "runtime": {"fake": True, "fake_events_per_s": rate, "checkpoint_every": 50},
        }
    )
    return [RunSpec("bench", {}, seed, config) for seed in range(n)]


def meta(jobs: int) -> dict:
    return {
        "description": "engine benchmark",
        "seeds": [],
        "factors": [],
        "analysis": {},
        "execution": {"jobs": jobs, "retries": 0, "hang_timeout_s": 0},
    }


def wait_finished(runs: str, timeout: float) -> control.ExperimentSnapshot:
    cache = control.SnapshotCache()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = control.snapshot(runs, "bench", cache)
        if snap.finished:
            return snap
        time.sleep(1.0)
    raise SystemExit("benchmark timed out")


def launch_overhead(root: Path, n: int, jobs: int) -> dict[str, float]:
    runs = str(root / "launch")
    os.environ["CFFTUI_POLL_S"] = "0.1"
    t0 = time.monotonic()
    control.submit(runs, "bench", specs(n, epochs=1, rate=1000.0), meta(jobs))
    snap = wait_finished(runs, 3600)
    wall = time.monotonic() - t0
    del os.environ["CFFTUI_POLL_S"]
    assert snap.counts == {"done": n}, snap.counts
    log = (Path(runs) / "bench" / "supervisor.log").read_text()
    cpu, rss = map(float, re.findall(r"supervisor cpu ([\d.]+) s, max rss ([\d.]+) MB", log)[-1])
    return {
        "runs": n,
        "jobs": jobs,
        "wall_s": wall,
        "runs_per_s": n / wall,
        "supervisor_cpu_s": cpu,
        "supervisor_cpu_ms_per_run": 1000 * cpu / n,
        "supervisor_max_rss_mb": rss,
    }


def live_load(root: Path, n: int, seconds: float) -> dict[str, float]:
    runs = str(root / "live")
    pid = control.submit(runs, "bench", specs(n, epochs=100000, rate=10.0), meta(n))
    cache = control.SnapshotCache()
    deadline = time.monotonic() + 300
    while control.snapshot(runs, "bench", cache).counts.get("running", 0) < n:
        if time.monotonic() > deadline:
            raise SystemExit("the live runs did not all start")
        time.sleep(1.0)
    time.sleep(3.0)  # let the last starts settle
    sup = psutil.Process(pid)
    sup.cpu_percent(None)
    rss = []
    snap_cpu = []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        c0 = time.process_time()
        snap = control.snapshot(runs, "bench", cache)
        snap_cpu.append(time.process_time() - c0)
        rss.append(sup.memory_info().rss)
        time.sleep(1.0)
    sup_pct = sup.cpu_percent(None)
    events = sum(r.epoch for r in snap.runs)
    status_cpu, status_wall = [], []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "cfftui", "status", "--runs", runs, "--json"],
            check=True,
            capture_output=True,
        )
        status_wall.append(time.monotonic() - w0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        status_cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    status_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    control.stop(runs, "bench")
    final = wait_finished(runs, 300)
    return {
        "runs": n,
        "seconds": seconds,
        "events_seen": events,
        "supervisor_cpu_pct_of_one_core": sup_pct,
        "supervisor_rss_mb_max": max(rss) / 2**20,
        "status_json_cpu_s": sum(status_cpu) / 3,
        "status_json_wall_s": sum(status_wall) / 3,
        "status_max_rss_mb": status_rss,
        "snapshot_cpu_ms_per_call": 1000 * sum(snap_cpu[1:]) / max(1, len(snap_cpu) - 1),
        "stopped": final.counts.get("stopped", 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--launch-runs", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--live-runs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cfftui-engine-bench-") as tmp:
        if args.launch_runs:
            r = launch_overhead(Path(tmp), args.launch_runs, args.jobs)
            print(
                f"launch: {r['runs']} fake runs, jobs {r['jobs']}: {r['wall_s']:.1f} s wall "
                f"({r['runs_per_s']:.1f} runs/s); supervisor {r['supervisor_cpu_s']:.2f} CPU s = "
                f"{r['supervisor_cpu_ms_per_run']:.2f} ms per run; "
                f"max RSS {r['supervisor_max_rss_mb']:.1f} MB",
                flush=True,
            )
        if args.live_runs:
            r = live_load(Path(tmp), args.live_runs, args.seconds)
            print(
                f"live: {r['runs']} runs x 10 events/s for {r['seconds']:.0f} s: supervisor "
                f"{r['supervisor_cpu_pct_of_one_core']:.2f}% of one core, "
                f"RSS {r['supervisor_rss_mb_max']:.1f} MB; "
                f"`cfftui status --json` {r['status_json_cpu_s']:.2f} CPU s "
                f"({r['status_json_wall_s']:.2f} s wall), max RSS {r['status_max_rss_mb']:.1f} MB; "
                f"snapshot() {r['snapshot_cpu_ms_per_call']:.1f} ms CPU "
                f"per call; {r['stopped']} stopped cleanly",
                flush=True,
            )


if __name__ == "__main__":
    main()
