"""Long-format Polars frames of one experiment, read from the run store alone."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from cfftui.engine.store import RunStore, read_json
from cfftui.events import read_events


class AnalysisError(ValueError):
    """Input that cannot be analysed; the message is one line naming what is wrong and where."""


RUN_COLUMNS = ("experiment", "cell", "seed", "run_id", "state", "finished", "top1", "top5",
               "best_epoch", "epochs", "train_s", "wall_s", "cfg_dataset", "cfg_batch_size",
               "cfg_num_classes", "cfg_margin_mode", "cfg_depth")
"""Fixed per-run columns; factor columns follow `cell`, per-layer columns come last."""

PERCENT_METRICS = frozenset({"top1", "top5"})
"""Accuracies are stored in [0, 1] by the worker and analysed in percent (differences in pp)."""


@dataclass(frozen=True)
class Factor:
    """One factor of the design: its dotted configuration key, its frame column and its levels."""

    key: str
    column: str
    levels: tuple[str, ...]


@dataclass(frozen=True)
class StudyFrames:
    """Everything the analysis reads about one experiment."""

    experiment: str
    plan: dict[str, Any]
    factors: tuple[Factor, ...]
    cells: tuple[str, ...]
    """Cell labels in design order (the cartesian product of the factors' levels)."""
    depth: int
    """The most blocks any run has; per-layer columns run from 0 to depth - 1."""
    runs: pl.DataFrame
    """One row per planned run, finished or not."""
    epochs: pl.DataFrame
    """One row per run and recorded epoch."""

    @property
    def excluded(self) -> pl.DataFrame:
        """Planned runs left out of the tests, with the reason."""
        return (self.runs.filter(~pl.col("finished"))
                .select("cell", "seed", "run_id", "state", "reason"))

    def factor(self, name: str) -> Factor:
        """A factor by dotted key, short name or column; AnalysisError if there is none."""
        for f in self.factors:
            if name in (f.key, f.column, f.key.rsplit(".", 1)[-1]):
                return f
        known = ", ".join(f.key for f in self.factors) or "none"
        raise AnalysisError(f"experiment {self.experiment!r} has no factor {name!r} (factors: {known})")


def cell_label(cell: dict[str, str]) -> str:
    """'margin_mode=clamp embed_dim=128', the same label as RunSpec.cell_label."""
    return " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in cell.items()) or "all"


def _factor_columns(keys: list[str]) -> dict[str, str]:
    """Short factor names as columns, the dotted key with underscores where a short name is ambiguous."""
    short = [k.rsplit(".", 1)[-1] for k in keys]
    taken = set(RUN_COLUMNS) | {"reason"}
    out = {}
    for key, name in zip(keys, short, strict=True):
        out[key] = name if short.count(name) == 1 and name not in taken else key.replace(".", "_")
    return out


def _read_plan(store: RunStore, experiment: str) -> dict[str, Any]:
    plan_path = store.experiment_dir(experiment) / "plan.json"
    if not plan_path.is_file():
        known = store.experiments()
        hint = f" (experiments there: {', '.join(known)})" if known else " (it holds no experiments)"
        raise AnalysisError(f"no experiment {experiment!r} in run store {store.root}{hint}")
    plan = read_json(plan_path)
    if not isinstance(plan, dict) or not isinstance(plan.get("runs"), list):
        raise AnalysisError(f"{plan_path}: not a plan (expected a JSON object with a 'runs' list)")
    factors = plan.get("factors", [])
    if not isinstance(factors, list) or not all(
            isinstance(f, dict) and isinstance(f.get("key"), str) and isinstance(f.get("levels"), list)
            for f in factors):
        raise AnalysisError(f"{plan_path}: 'factors' must be a list of {{key, levels}} objects")
    for i, run in enumerate(plan["runs"]):
        if not (isinstance(run, dict) and isinstance(run.get("run_id"), str)
                and isinstance(run.get("cell"), dict) and isinstance(run.get("seed"), int)):
            raise AnalysisError(f"{plan_path}: runs[{i}] must be an object with run_id, cell and seed")
    return plan


def _per_layer(prefix: str, values: Any, depth: int) -> dict[str, float | None]:
    values = values if isinstance(values, list) else []
    return {f"{prefix}_l{i}": (float(values[i]) if i < len(values) and values[i] is not None else None)
            for i in range(depth)}


def _mean_over_epochs(epochs: list[dict[str, Any]], field: str) -> list[float | None]:
    """Per-layer mean of an epoch list field (used when a result event lacks the run means)."""
    rows = [e.get(field) for e in epochs if isinstance(e.get(field), list)]
    if not rows:
        return []
    width = max(len(r) for r in rows)
    out: list[float | None] = []
    for i in range(width):
        vals = [r[i] for r in rows if i < len(r) and r[i] is not None]
        out.append(sum(vals) / len(vals) if vals else None)
    return out


def _run_record(store: RunStore, experiment: str, entry: dict[str, Any]) -> tuple[dict[str, Any],
                                                                                 list[dict[str, Any]]]:
    """The per-run fields (depth-independent part) and the run's epoch events."""
    run_id = entry["run_id"]
    run_dir = store.run_dir(experiment, run_id)
    events = read_events(run_dir / "metrics.jsonl") if (run_dir / "metrics.jsonl").is_file() else []
    by_epoch: dict[int, dict[str, Any]] = {}
    result: dict[str, Any] | None = None
    start: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    for e in events:
        kind = e.get("event")
        if kind == "epoch" and isinstance(e.get("epoch"), int):
            by_epoch[e["epoch"]] = e  # a resumed worker may repeat an epoch: the last one counts
        elif kind == "result":
            result = e
        elif kind == "start" and start is None:
            start = e
        elif kind == "end":
            end = e
    epochs = [by_epoch[k] for k in sorted(by_epoch)]

    status_data = read_json(run_dir / "status.json")
    if isinstance(status_data, dict) and isinstance(status_data.get("state"), str):
        state = status_data["state"]
    elif end is not None and isinstance(end.get("state"), str):
        state = end["state"]
    else:
        state = "queued" if not run_dir.is_dir() else "unknown"

    spec = read_json(run_dir / "spec.json")
    config = spec.get("config", {}) if isinstance(spec, dict) else {}
    data, train = config.get("data", {}), config.get("train", {})
    top1 = result.get("top1") if result else None
    top5 = result.get("top5") if result else None
    if state != "done":
        reason = f"state {state}"
    elif result is None:
        reason = "no result event"
    elif top1 is None:
        reason = "result without top1"
    else:
        reason = ""

    wall_s = None
    if start is not None and events:
        wall_s = float(events[-1]["t"]) - float(start["t"])
    elif isinstance(status_data, dict) and status_data.get("ended_at") and status_data.get("started_at"):
        wall_s = float(status_data["ended_at"]) - float(status_data["started_at"])

    record = {
        "seed": entry["seed"], "run_id": run_id, "state": state, "finished": reason == "",
        "reason": reason,
        "top1": 100.0 * top1 if top1 is not None else None,
        "top5": 100.0 * top5 if top5 is not None else None,
        "best_epoch": result.get("best_epoch") if result else None,
        "epochs": len(epochs),
        "train_s": sum(float(e.get("seconds") or 0.0) for e in epochs) if epochs else None,
        "wall_s": wall_s,
        "cfg_dataset": data.get("dataset"), "cfg_batch_size": train.get("batch_size"),
        "cfg_num_classes": data.get("num_classes"),
        "cfg_margin_mode": config.get("loss", {}).get("margin_mode"),
        "cfg_depth": config.get("model", {}).get("depth"),
        "_car": (result or {}).get("car") or _mean_over_epochs(epochs, "car"),
        "_car_final": (result or {}).get("car_final") or (epochs[-1].get("car") if epochs else None),
        "_grad_norm": (result or {}).get("grad_norm") or _mean_over_epochs(epochs, "grad_norm"),
        "_grad_norm_final": epochs[-1].get("grad_norm") if epochs else None,
    }
    return record, epochs


LAYER_FIELDS_RUN = (("car", "_car"), ("car_final", "_car_final"), ("grad_norm", "_grad_norm"),
                    ("grad_norm_final", "_grad_norm_final"))
LAYER_FIELDS_EPOCH = ("train_loss", "val_loss", "car", "grad_norm")


def load_frames(runs_dir: str | Path, experiment: str) -> StudyFrames:
    """Read plan.json, every run's spec, status and metrics into per-run and per-epoch frames."""
    store = RunStore(runs_dir)
    plan = _read_plan(store, experiment)
    keys = [f["key"] for f in plan.get("factors", [])]
    columns = _factor_columns(keys)
    factors = tuple(Factor(f["key"], columns[f["key"]], tuple(str(v) for v in f["levels"]))
                    for f in plan.get("factors", []))
    cells = tuple(cell_label(dict(zip(keys, combo, strict=True)))
                  for combo in itertools.product(*(f.levels for f in factors)))

    records, epoch_lists = [], []
    for entry in plan["runs"]:
        record, epochs = _run_record(store, experiment, entry)
        cell = {k: str(entry["cell"].get(k, "")) for k in keys}
        record.update({"experiment": experiment, "cell": cell_label(cell),
                       **{columns[k]: v for k, v in cell.items()}})
        records.append(record)
        epoch_lists.append(epochs)

    depth = max([len(r[src]) for r in records for _, src in LAYER_FIELDS_RUN if isinstance(r[src], list)]
                + [len(e.get(f) or []) for es in epoch_lists for e in es for f in LAYER_FIELDS_EPOCH]
                + [0])
    factor_cols = [f.column for f in factors]
    schema: dict[str, Any] = {
        "experiment": pl.String, "cell": pl.String, **{c: pl.String for c in factor_cols},
        "seed": pl.Int64, "run_id": pl.String, "state": pl.String, "finished": pl.Boolean,
        "reason": pl.String, "top1": pl.Float64, "top5": pl.Float64, "best_epoch": pl.Int64,
        "epochs": pl.Int64, "train_s": pl.Float64, "wall_s": pl.Float64, "cfg_dataset": pl.String,
        "cfg_batch_size": pl.Int64, "cfg_num_classes": pl.Int64, "cfg_margin_mode": pl.String,
        "cfg_depth": pl.Int64,
    }
    for name, _ in LAYER_FIELDS_RUN:
        schema.update({f"{name}_l{i}": pl.Float64 for i in range(depth)})
    rows = []
    for r in records:
        row = {k: r.get(k) for k in schema if k in r}
        for name, src in LAYER_FIELDS_RUN:
            row.update(_per_layer(name, r[src], depth))
        rows.append(row)
    runs = pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)

    epoch_schema: dict[str, Any] = {
        "experiment": pl.String, "cell": pl.String, **{c: pl.String for c in factor_cols},
        "seed": pl.Int64, "run_id": pl.String, "cfg_margin_mode": pl.String, "epoch": pl.Int64,
        **{f"{f}_l{i}": pl.Float64 for f in LAYER_FIELDS_EPOCH for i in range(depth)},
        "lr": pl.Float64, "images_per_s": pl.Float64, "seconds": pl.Float64,
    }
    epoch_rows = []
    for r, epochs in zip(records, epoch_lists, strict=True):
        for e in epochs:
            row = {k: r.get(k) for k in ("experiment", "cell", *factor_cols, "seed", "run_id",
                                         "cfg_margin_mode")}
            row["epoch"] = e["epoch"]
            for f in LAYER_FIELDS_EPOCH:
                row.update(_per_layer(f, e.get(f), depth))
            for f in ("lr", "images_per_s", "seconds"):
                row[f] = float(e[f]) if isinstance(e.get(f), (int, float)) else None
            epoch_rows.append(row)
    epochs_frame = (pl.DataFrame(epoch_rows, schema=epoch_schema) if epoch_rows
                    else pl.DataFrame(schema=epoch_schema))
    return StudyFrames(experiment=experiment, plan=plan, factors=factors, cells=cells, depth=depth,
                       runs=runs, epochs=epochs_frame)
