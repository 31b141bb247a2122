"""Run stores on disk built from chosen numbers: the real input of the analysis, written the way the engine does."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cfftui.engine.store import RunStatus, RunStore
from cfftui.events import EventWriter
from cfftui.spec import RunSpec, config_from_dict, unflatten

T0 = 1_700_000_000.0
"""Event times are pinned so that wall times, and with them the golden files, are reproducible."""


def write_study(root: Path, experiment: str, factors: Mapping[str, Sequence[Any]],
                top1: Mapping[tuple[Any, ...], Sequence[float | None]], *,
                states: Mapping[tuple[tuple[Any, ...], int], str] | None = None,
                analysis: Mapping[str, Any] | None = None, epochs: int = 3, depth: int = 3,
                base: Mapping[str, Any] | None = None) -> Path:
    """Write plan.json and one run per value: spec.json, status.json and metrics.jsonl.

    `top1[cell]` lists test top-1 accuracies in [0, 1], one per seed 0, 1, ...; None writes a run
    that ended without a result. `states[(cell, seed)]` overrides a run's state (its metrics then
    stop after the epochs, as a failed worker's would). Per-layer CAR and gradient norms are
    deterministic functions of the cell, seed, layer and epoch.
    """
    store = RunStore(root)
    keys = list(factors)
    states = states or {}
    base_flat = {"model.depth": depth, "train.epochs": epochs, "train.batch_size": 64,
                 "data.dataset": "cifar10", **(base or {})}
    runs = []
    max_n = max((len(v) for v in top1.values()), default=0)
    for ci, combo in enumerate(itertools.product(*(factors[k] for k in keys))):
        values = top1.get(combo, [])
        config = config_from_dict(unflatten({**base_flat, **dict(zip(keys, combo, strict=True))}))
        for seed, acc in enumerate(values):
            spec = RunSpec(experiment, {k: str(v) for k, v in zip(keys, combo, strict=True)}, seed, config)
            run_dir = store.run_dir(experiment, spec.run_id)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "spec.json").write_text(json.dumps(spec.to_json()))
            state = states.get((combo, seed), "done")
            clamp = config.loss.margin_mode == "clamp"
            with EventWriter(run_dir / "metrics.jsonl", spec.run_id) as w:
                w.emit("start", t=T0, attempt=1, spec_digest="x", device="cpu", precision="fp32",
                       params=1000, depth=depth, epochs=epochs, n_train=90, n_val=10, n_test=50,
                       resumed_from=0)
                cars, grads = [], []
                for ep in range(1, epochs + 1):
                    car = [round((0.6 if clamp else 0.5) / (layer + 1) - 0.02 * ep + 0.01 * seed
                                 + 0.005 * ci, 6) for layer in range(depth)]
                    grad = [round(1.0 / (layer + 1) + 0.1 * ep + 0.01 * seed, 6) for layer in range(depth)]
                    cars.append(car)
                    grads.append(grad)
                    w.emit("epoch", t=T0 + 10 * ep, epoch=ep, train_loss=[4.0 - 0.1 * ep] * depth,
                           val_loss=[4.1 - 0.1 * ep] * depth, car=car, grad_norm=grad, lr=0.004,
                           images_per_s=900.0, seconds=10.0)
                if state == "done" and acc is not None:
                    w.emit("probe", t=T0 + 10 * epochs + 1, epoch=1, train_loss=1.0, val_loss=1.1)
                    w.emit("result", t=T0 + 10 * epochs + 2, top1=acc, top5=min(1.0, acc + 0.2),
                           best_epoch=epochs - (seed % 2),
                           car=[round(sum(c[i] for c in cars) / epochs, 6) for i in range(depth)],
                           car_final=cars[-1],
                           grad_norm=[round(sum(g[i] for g in grads) / epochs, 6) for i in range(depth)])
                w.emit("end", t=T0 + 10 * epochs + 3, state=state, reason="")
            store.write_status(experiment, spec.run_id, RunStatus(state=state, attempts=1))
            runs.append({"run_id": spec.run_id, "cell": spec.cell, "seed": seed})
    meta = {"description": "test study", "study_file": "experiments.toml", "seeds": list(range(max_n)),
            "factors": [{"key": k, "levels": [str(v) for v in factors[k]]} for k in keys],
            "analysis": {"compare": keys[0], "metric": "top1", "levels": [str(v) for v in factors[keys[0]]][:2],
                         "bootstrap": 2000, "seed": 0, **(analysis or {})}}
    store.write_plan(experiment, runs, meta)
    return root
