"""Writes real run stores (plan, spec, status, metrics, logs) with fixed numbers and times, for the console's tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cfftui.engine.store import RunStatus, RunStore
from cfftui.events import encode
from cfftui.spec import RunSpec, config_from_dict

T0 = 1_767_225_600.0
"""2026-01-01 00:00:00 UTC: every fixed time in these stores counts from here."""

FACTOR = "loss.margin_mode"
LEVELS = ("clamp", "subtract")


def run_specs(experiment: str, seeds: int, epochs: int) -> list[RunSpec]:
    specs = []
    for level in LEVELS:
        for seed in range(seeds):
            config = config_from_dict({"loss": {"margin_mode": level}, "train": {"epochs": epochs},
                                       "model": {"depth": 3, "embed_dim": 32},
                                       "data": {"dataset": "synthetic"}})
            specs.append(RunSpec(experiment=experiment, cell={FACTOR: level}, seed=seed, config=config))
    return specs


def write_plan(store: RunStore, experiment: str, specs: list[RunSpec]) -> None:
    seeds = sorted({s.seed for s in specs})
    store.write_plan(experiment, [{"run_id": s.run_id, "cell": s.cell, "seed": s.seed} for s in specs], {
        "description": "margin clamp vs subtract", "study_file": "experiments.toml", "seeds": seeds,
        "factors": [{"key": FACTOR, "levels": list(LEVELS)}],
        "analysis": {"compare": FACTOR, "metric": "top1", "levels": list(LEVELS), "bootstrap": 200, "seed": 0},
        "execution": {}})
    for spec in specs:
        d = store.run_dir(experiment, spec.run_id)
        d.mkdir(parents=True, exist_ok=True)
        (d / "spec.json").write_text(json.dumps(spec.to_json(), indent=1, sort_keys=True))


def epoch_event(run_id: str, epoch: int, level_index: int, seed: int, t: float, depth: int = 3) -> dict[str, Any]:
    base = 2.0 - 0.1 * epoch - 0.01 * seed
    return {"v": 1, "event": "epoch", "t": t, "run": run_id, "epoch": epoch,
            "train_loss": [round(base + 0.2 * layer + 0.05 * level_index, 4) for layer in range(depth)],
            "val_loss": [round(base + 0.25 * layer + 0.05 * level_index, 4) for layer in range(depth)],
            "car": [round(0.6 - 0.15 * layer - 0.02 * epoch + 0.01 * seed, 4) for layer in range(depth)],
            "grad_norm": [round(1.0 / (epoch + layer) + 0.01 * seed, 4) for layer in range(depth)],
            "lr": 0.004, "images_per_s": 1200.0 + 10 * seed, "seconds": 2.0}


def write_events(path: Path, events: list[dict[str, Any]]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        for event in events:
            f.write(encode(event) + "\n")


def finished_store(root: Path, experiment: str = "margin", seeds: int = 3, epochs: int = 5) -> list[RunSpec]:
    """A finished 2-cell study: every run done, fixed metrics and times, test accuracies that differ in spread."""
    store = RunStore(root)
    specs = run_specs(experiment, seeds, epochs)
    write_plan(store, experiment, specs)
    for spec in specs:
        level_index = LEVELS.index(spec.cell[FACTOR])
        start = T0 + 60 * spec.seed
        events = [{"v": 1, "event": "start", "t": start, "run": spec.run_id, "epochs": epochs, "depth": 3}]
        events += [epoch_event(spec.run_id, e, level_index, spec.seed, start + 2 * e) for e in range(1, epochs + 1)]
        top1 = 0.50 + (0.03 * spec.seed if level_index == 0 else 0.005 * spec.seed)
        events.append({"v": 1, "event": "result", "t": start + 2 * epochs + 1, "run": spec.run_id,
                       "top1": round(top1, 4), "top5": round(top1 + 0.3, 4), "best_epoch": epochs,
                       "car": [0.5, 0.3, 0.1], "car_final": [0.4, 0.2, 0.1], "grad_norm": [0.3, 0.2, 0.1]})
        events.append({"v": 1, "event": "end", "t": start + 2 * epochs + 2, "run": spec.run_id,
                       "state": "done", "reason": "finished"})
        d = store.run_dir(experiment, spec.run_id)
        write_events(d / "metrics.jsonl", events)
        (d / "stdout.log").write_text("")
        (d / "stderr.log").write_text(f"loading synthetic data\nseed {spec.seed}: training 3 blocks\ndone\n")
        status = RunStatus(state="done", attempts=1, pid=4000 + spec.seed, host="node1", executor="local",
                           exit_code=0, started_at=start, first_started_at=start,
                           ended_at=start + 2 * epochs + 2)
        store.write_status(experiment, spec.run_id, status)
    return specs


def live_store(root: Path, experiment: str = "live", seeds: int = 2, epochs: int = 10) -> list[RunSpec]:
    """A study in progress: seed 0 of each cell running at epoch 3, the rest queued; one failed run."""
    store = RunStore(root)
    specs = run_specs(experiment, seeds, epochs)
    write_plan(store, experiment, specs)
    for i, spec in enumerate(specs):
        level_index = LEVELS.index(spec.cell[FACTOR])
        d = store.run_dir(experiment, spec.run_id)
        if spec.seed == 0:
            start = T0
            events = [{"v": 1, "event": "start", "t": start, "run": spec.run_id, "epochs": epochs}]
            events += [epoch_event(spec.run_id, e, level_index, 0, start + 2 * e) for e in range(1, 4)]
            write_events(d / "metrics.jsonl", events)
            store.write_status(experiment, spec.run_id, RunStatus(
                state="running", attempts=1, pid=5000 + i, host="node1", started_at=start, first_started_at=start))
        elif i == len(specs) - 1:
            store.write_status(experiment, spec.run_id, RunStatus(
                state="failed", attempts=2, host="node1", exit_code=1, started_at=T0, first_started_at=T0,
                ended_at=T0 + 5, error="RuntimeError: out of memory"))
        else:
            store.write_status(experiment, spec.run_id, RunStatus(state="queued"))
    return specs
