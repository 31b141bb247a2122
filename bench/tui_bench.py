"""Console load test: N active runs each appending E events/s; the console's CPU, RSS and key-to-repaint latency.

The console runs as `cfftui attach bench` in a real terminal (tmux, 120×40), so
what is measured is the app process alone (psutil, over the whole window) and the
time from a key press to the pane showing its effect (capture-pane polling every
5 ms; the figure includes that resolution). Load comes from one of:

  --source engine   the engine's supervisor with the fake worker (runtime.fake = true,
                    runtime.fake_events_per_s = E), one process per run: the real thing
  --source writer   one process of this script appending epoch events to N metrics.jsonl
                    files at E lines/s each (for machines that cannot host N workers)

    .venv/bin/python bench/tui_bench.py --runs 200 --rate 10 --seconds 40 --source writer
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from cfftui.engine.store import RunStatus, RunStore
from cfftui.events import encode
from cfftui.spec import RunSpec, config_from_dict

EXPERIMENT = "bench"
FILTER_CYCLE = ("running", "queued", "done", "failed", "stopped", "all")


def study_text(runs: int, rate: float) -> str:
    seeds = runs // 2
    return f"""
[experiments.{EXPERIMENT}]
description = "console load test: {runs} fake runs at {rate:g} events/s"
dataset = "synthetic"
seeds = {seeds}
train.epochs = 1000000
runtime.fake = true
runtime.fake_events_per_s = {rate}

[experiments.{EXPERIMENT}.factors]
"loss.margin_mode" = ["clamp", "subtract"]

[experiments.{EXPERIMENT}.execution]
jobs = {runs}
retries = 0
"""


def writer_store(root: Path, runs: int) -> list[str]:
    """A plan of `runs` running runs whose events this script appends itself."""
    store = RunStore(root / "runs")
    specs = []
    for i in range(runs):
        level = ("clamp", "subtract")[i % 2]
        config = config_from_dict({"loss": {"margin_mode": level}, "train": {"epochs": 1_000_000},
                                   "data": {"dataset": "synthetic"}})
        specs.append(RunSpec(experiment=EXPERIMENT, cell={"loss.margin_mode": level}, seed=i // 2, config=config))
    store.write_plan(EXPERIMENT, [{"run_id": s.run_id, "cell": s.cell, "seed": s.seed} for s in specs],
                     {"description": "console load test (writer)", "seeds": sorted({s.seed for s in specs}),
                      "factors": [{"key": "loss.margin_mode", "levels": ["clamp", "subtract"]}]})
    now = time.time()
    for s in specs:
        d = store.run_dir(EXPERIMENT, s.run_id)
        d.mkdir(parents=True, exist_ok=True)
        (d / "spec.json").write_text(json.dumps(s.to_json()))
        store.write_status(EXPERIMENT, s.run_id, RunStatus(state="running", attempts=1, pid=os.getpid(),
                                                           started_at=now, first_started_at=now))
    return [s.run_id for s in specs]


def write_events(root: Path, run_ids: list[str], rate: float, seconds: float) -> None:
    """Append one epoch event per run every 1/rate s (all runs in one pass, like N workers in lockstep)."""
    store = RunStore(root / "runs")
    files = [open(store.metrics_path(EXPERIMENT, r), "a", encoding="utf-8") for r in run_ids]  # noqa: SIM115
    start, epoch = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        epoch += 1
        for run_id, f in zip(run_ids, files, strict=True):
            loss = [2.0 / (1 + 0.01 * epoch) + 0.1 * b for b in range(5)]
            f.write(encode({"v": 1, "event": "epoch", "t": time.time(), "run": run_id, "epoch": epoch,
                            "train_loss": loss, "val_loss": loss, "car": [0.6, 0.4, 0.3, 0.2, 0.1],
                            "grad_norm": [1.0] * 5, "lr": 0.004, "images_per_s": 5000.0,
                            "seconds": 1 / rate}) + "\n")
            f.flush()
        time.sleep(max(0.0, start + epoch / rate - time.monotonic()))
    for f in files:
        f.close()


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def wait_screen(session: str, needle: str, timeout: float) -> float:
    """Seconds until the pane shows `needle` (polled every 5 ms)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if needle in tmux("capture-pane", "-p", "-t", session):
            return time.perf_counter() - t0
        time.sleep(0.005)
    raise TimeoutError(f"the console never showed {needle!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="events per second per run")
    parser.add_argument("--seconds", type=float, default=40.0, help="measurement window")
    parser.add_argument("--presses", type=int, default=24, help="key presses timed")
    parser.add_argument("--source", choices=("engine", "writer"), default="engine")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("tui_bench: tmux is required", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="cfftui-bench-"))
    (root / "experiments.toml").write_text(study_text(args.runs, args.rate))
    cfftui = str(Path(sys.executable).with_name("cfftui"))
    writer = None
    if args.source == "writer":
        run_ids = writer_store(root, args.runs)
        writer = multiprocessing.Process(target=write_events,
                                         args=(root, run_ids, args.rate, args.seconds + 30), daemon=True)
        writer.start()
    else:
        subprocess.run([cfftui, "run", EXPERIMENT], cwd=root, check=True, capture_output=True)
    session = f"cfftui-bench-{os.getpid()}"
    tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", session, "-c", str(root), cfftui, "attach", EXPERIMENT)
    try:
        app = psutil.Process(int(tmux("display", "-p", "-t", session, "#{pane_pid}").strip()))
        wait_screen(session, f"{args.runs} runs", 60)
        time.sleep(3)  # let every run start and the first events be read
        app.cpu_percent(None)
        t0, rss = time.monotonic(), [app.memory_info().rss]
        latencies = []
        for i in range(args.presses):
            time.sleep(max(0.0, t0 + (i + 1) * args.seconds / (args.presses + 1) - time.monotonic()))
            tmux("send-keys", "-t", session, "f")
            latencies.append(wait_screen(session, f"filter: {FILTER_CYCLE[i % len(FILTER_CYCLE)]}", 10))
            rss.append(app.memory_info().rss)
        time.sleep(max(0.0, t0 + args.seconds - time.monotonic()))
        cpu = app.cpu_percent(None)
        window = time.monotonic() - t0
        rss.append(app.memory_info().rss)
        ms = sorted(1000 * x for x in latencies)
        print(json.dumps({
            "source": args.source, "runs": args.runs, "events_per_s_per_run": args.rate,
            "window_s": round(window, 1), "cpu_percent_of_one_core": round(cpu, 1),
            "rss_mb_max": round(max(rss) / 2**20, 1),
            "key_to_repaint_ms": {"median": round(statistics.median(ms), 1),
                                  "p90": round(ms[int(0.9 * (len(ms) - 1))], 1), "max": round(ms[-1], 1),
                                  "n": len(ms)},
        }, indent=1))
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        if args.source == "engine":
            subprocess.run([cfftui, "stop", EXPERIMENT], cwd=root, capture_output=True)
        if writer is not None:
            writer.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
