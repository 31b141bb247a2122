"""Console load test: N active runs each appending E events/s; the console's CPU, RSS and key-to-repaint latency.

The console runs as `cfftui attach bench` in a real terminal (tmux, 120×40), so
what is measured is the app process alone (psutil, over the whole window) and the
time from a key press to the pane showing its effect (capture-pane polling every
5 ms; the figure includes that resolution and tmux's own latency). Each round
times these keys on the study screen: `f` six times (every state filter, the
table rebuilt each time), `down` (the cursor row moves), `enter` (the run screen
is painted, then its block table shows data), and back to the study screen with `escape`
and, after opening the run again, with `backspace`. A lone ESC reaches a Textual app only
after its input thread's next 100 ms tick (it must tell the key from the start of an escape
sequence), so `back_escape` includes ~100 ms that no console code can shorten; backspace
does the same without it.
Load comes from one of:

  --source engine   the engine's supervisor with the fake worker (runtime.fake = true,
                    runtime.fake_events_per_s = E), one process per run: the real thing
  --source writer   one process of this script appending epoch events to N metrics.jsonl
                    files at E lines/s each (for machines that cannot host N workers)

    .venv/bin/python bench/tui_bench.py --runs 200 --rate 10 --seconds 40 --source writer
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import re
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


SGR = re.compile(r"\x1b\[([0-9;]*)m")


def painted_lines(session: str) -> list[tuple[str | None, str]]:
    """(background at the line's first character, text) for each line of the pane.

    tmux writes an SGR only where the style changes, so the background carries over from line to line.
    """
    background: str | None = None
    out = []
    for line in tmux("capture-pane", "-p", "-e", "-t", session).splitlines():
        first: str | None = None
        seen_text = False
        for i, part in enumerate(SGR.split(line)):
            if i % 2:  # SGR parameters
                codes = part.split(";") if part else ["0"]
                j = 0
                while j < len(codes):
                    if codes[j] in ("0", "49"):
                        background = None
                    elif codes[j] == "48":
                        n = 3 if codes[j + 1] == "5" else 5
                        background = ";".join(codes[j:j + n])
                        j += n - 1
                    elif codes[j] == "38":
                        j += 2 if codes[j + 1] == "5" else 4
                    j += 1
            elif part and not seen_text:
                first, seen_text = background, True
        out.append((first, SGR.sub("", line)))
    return out


def cursor_row(session: str, cursor_bg: str) -> str | None:
    """The first word of the table row painted in the cursor's background."""
    lines = painted_lines(session)
    header = next((i for i, (_, text) in enumerate(lines) if text.strip().startswith("cell / run")), None)
    if header is None:
        return None
    for bg, text in lines[header + 1:]:
        if bg == cursor_bg and text.split():
            return text.split()[0]
    return None


def wait_cursor_moved(session: str, cursor_bg: str, before: str | None, timeout: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        row = cursor_row(session, cursor_bg)
        if row is not None and row != before:
            return time.perf_counter() - t0
        time.sleep(0.005)
    raise TimeoutError("the cursor row never moved")


def press(session: str, key: str) -> None:
    tmux("send-keys", "-t", session, key)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="events per second per run")
    parser.add_argument("--seconds", type=float, default=40.0, help="measurement window")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of timed keys (10 keys each)")
    parser.add_argument("--code", type=Path, default=None,
                        help="run the console from this checkout instead (a before/after comparison)")
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
    code = ["-e", f"PYTHONPATH={args.code.resolve()}"] if args.code else []
    tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", session, *code, "-c", str(root),
         cfftui, "attach", EXPERIMENT)
    try:
        app = psutil.Process(int(tmux("display", "-p", "-t", session, "#{pane_pid}").strip()))
        wait_screen(session, f"{args.runs} runs", 60)
        time.sleep(3)  # let every run start and the first events be read
        lines = painted_lines(session)
        header = next(i for i, (_, text) in enumerate(lines) if text.strip().startswith("cell / run"))
        cursor_bg = lines[header + 1][0] or ""  # the cursor starts on the first row
        app.cpu_percent(None)
        t0, rss = time.monotonic(), [app.memory_info().rss]
        latencies: dict[str, list[float]] = {}

        def timed(name: str, seconds: float) -> None:
            latencies.setdefault(name, []).append(1000 * seconds)
            time.sleep(0.3)  # one key at a time, as a person types

        for i in range(args.rounds):
            time.sleep(max(0.0, t0 + (i + 0.5) * args.seconds / args.rounds - time.monotonic()))
            for state in FILTER_CYCLE:  # ends on 'all'
                press(session, "f")
                timed("filter", wait_screen(session, f"filter: {state}", 10))
            before = cursor_row(session, cursor_bg)
            press(session, "Down")
            timed("cursor", wait_cursor_moved(session, cursor_bg, before, 10))
            if not (cursor_row(session, cursor_bg) or "").startswith(("clamp", "subtract")):
                press(session, "Enter")
                paint = wait_screen(session, "spec/status", 10)
                data = paint + wait_screen(session, " L1 ", 10)  # both from the key press
                timed("open_run_paint", paint)
                timed("open_run_data", data)
                press(session, "Escape")
                timed("back_escape", wait_screen(session, "filter: all", 10))
                press(session, "Enter")
                wait_screen(session, "spec/status", 10)
                press(session, "BSpace")
                timed("back_backspace", wait_screen(session, "filter: all", 10))
            rss.append(app.memory_info().rss)
        time.sleep(max(0.0, t0 + args.seconds - time.monotonic()))
        cpu = app.cpu_percent(None)
        window = time.monotonic() - t0
        rss.append(app.memory_info().rss)

        def stats(values: list[float]) -> dict[str, float]:
            ms = sorted(values)
            p90 = ms[max(0, math.ceil(0.9 * len(ms)) - 1)]  # nearest rank
            return {"median": round(statistics.median(ms), 1), "p90": round(p90, 1), "max": round(ms[-1], 1),
                    "n": len(ms)}

        print(json.dumps({
            "source": args.source, "code": str(args.code or Path(__file__).resolve().parents[1]),
            "runs": args.runs, "events_per_s_per_run": args.rate,
            "window_s": round(window, 1), "cpu_percent_of_one_core": round(cpu, 1),
            "rss_mb_max": round(max(rss) / 2**20, 1),
            "rss_mb_samples": [round(r / 2**20, 1) for r in rss],
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "key_to_repaint_ms": {name: stats(values) for name, values in latencies.items()},
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
