"""Experiment -> runs: the cells x seeds plan with stable run ids, and what it will cost."""

from __future__ import annotations

import os
import zipfile
from glob import glob
from pathlib import Path
from typing import Any

from cfftui.config import Experiment
from cfftui.spec import RunConfig, RunSpec, flops_per_view, stage1_flops_per_image

# Image geometry (side, channels) and official train/test sizes of the built-in datasets.
DATASET_SHAPES: dict[str, tuple[int, int, int, int]] = {
    "cifar10": (32, 3, 50_000, 10_000),
    "cifar100": (32, 3, 50_000, 10_000),
    "svhn": (32, 3, 73_257, 26_032),
    "fashion_mnist": (28, 1, 60_000, 10_000),
    "mnist": (28, 1, 60_000, 10_000),
}

# Assumed sustained rates, FLOP/s (docs/performance.md). The CPU figure is one Zen 4 core running the
# reference model in fp32 (a B = 64 step of 64 x 577 MFLOP in 650 ms, section 5.1); more threads scale
# as threads**0.7 (2 threads: 400 ms). Every step also pays fixed host overhead (5-11 ms, section 5.1).
# The H200 figures are the performance targets of sections 0 and 3 (fp32-exact 45k img/s, bf16 150k
# img/s, TF32 between), times 578.8 MFLOP per image-step: estimates until measured on the machine.
CPU_FLOPS_PER_CORE = 57e9
CPU_THREAD_SCALING = 0.7
CPU_STEP_OVERHEAD_S = 0.008
WORKER_STARTUP_S = 3.0  # interpreter + torch import + dataset load, per run
H200_FLOPS = {"fp32": 26e12, "tf32": 40e12, "bf16": 87e12}


def plan(experiment: Experiment) -> list[RunSpec]:
    """Every (cell, seed) of an experiment: cells in cartesian order (first factor slowest), seeds inner."""
    runs: list[RunSpec] = []
    for cell in experiment.cells():
        config = experiment.config_for(cell)
        labels = {key: level.label for key, level in cell.items()}
        runs.extend(RunSpec(experiment.name, dict(labels), seed, config) for seed in experiment.seeds)
    return runs


def dataset_geometry(config: RunConfig) -> tuple[int, int, int, int]:
    """(image side, channels, training images, test images) after subsets, before the validation split."""
    data = config.data
    if data.dataset == "synthetic":
        side, channels = data.image_size, data.channels
        n_train, n_test = data.synthetic_train, data.synthetic_test
    elif data.dataset in DATASET_SHAPES:
        side, channels, n_train, n_test = DATASET_SHAPES[data.dataset]
    else:
        side, channels, n_train, n_test = _npz_geometry(Path(data.root), data.dataset)
    if data.train_subset:
        n_train = min(n_train, data.train_subset)
    if data.test_subset:
        n_test = min(n_test, data.test_subset)
    return side, channels, n_train, n_test


def run_flops(config: RunConfig) -> dict[str, float]:
    """FLOPs of one run by stage (multiply-add = 2), following performance.md section 1.1."""
    side, channels, n_train, n_test = dataset_geometry(config)
    m, t = config.model, config.train
    geometry = {"tokens": (side // m.patch_size) ** 2, "dim": m.embed_dim, "depth": m.depth,
                "mlp_ratio": m.mlp_ratio, "patch_dim": channels * m.patch_size**2}
    encoder_view = flops_per_view(**geometry)
    batch = min(t.batch_size, max(1, n_train))
    forward = stage1_flops_per_image(**geometry, batch_size=batch) / 3  # two views and the losses
    n_val = round(n_train * config.data.val_fraction)
    n_fit = n_train - n_val
    train = 3 * forward * n_fit * t.epochs
    val = forward * n_val * t.epochs
    probe = encoder_view * ((n_fit + n_val) * config.probe.epochs + n_test)
    steps = t.epochs * (-(-n_fit // batch) + -(-n_val // batch)) + config.probe.epochs * -(
        -(n_fit + n_val) // config.probe.batch_size)
    return {"train": train, "val": val, "probe": probe, "total": train + val + probe, "steps": float(steps)}


def estimate_cost(experiment: Experiment) -> dict[str, Any]:
    """FLOPs per run and rough hours on this machine's CPU and on one H200, with the rates assumed."""
    ex = experiment.execution
    cores = os.cpu_count() or 1
    threads = ex.threads_per_run or max(1, cores // max(1, ex.jobs or 1))
    parallel = max(1, min(ex.jobs or cores // threads, cores // threads))
    cpu_rate = CPU_FLOPS_PER_CORE * threads**CPU_THREAD_SCALING
    precision = experiment.base.runtime.precision
    gpu_rate = H200_FLOPS[precision]
    cells = []
    for cell in experiment.cells():
        flops = run_flops(experiment.config_for(cell))
        cpu_s = WORKER_STARTUP_S + flops["total"] / cpu_rate + flops["steps"] * CPU_STEP_OVERHEAD_S
        cells.append({"cell": {k: lv.label for k, lv in cell.items()}, "flops_per_run": flops["total"],
                      "flops_by_stage": {k: flops[k] for k in ("train", "val", "probe")},
                      "cpu_s_per_run": cpu_s, "h200_s_per_run": WORKER_STARTUP_S + flops["total"] / gpu_rate})
    seeds = len(experiment.seeds)
    total_flops = seeds * sum(c["flops_per_run"] for c in cells)
    cpu_total_s = seeds * sum(c["cpu_s_per_run"] for c in cells) / parallel
    # Packed runs share one GPU's throughput, so the study costs its total work at the GPU's rate.
    h200_total_s = total_flops / gpu_rate + seeds * len(cells) * WORKER_STARTUP_S / max(1, ex.runs_per_gpu)
    return {
        "runs": seeds * len(cells),
        "cells": cells,
        "flops_per_run": total_flops / max(1, seeds * len(cells)),
        "flops_total": total_flops,
        "cpu_hours_per_run": max(c["cpu_s_per_run"] for c in cells) / 3600,
        "cpu_hours_total": cpu_total_s / 3600,
        "h200_hours_per_run": max(c["h200_s_per_run"] for c in cells) / 3600,
        "h200_hours_total": h200_total_s / 3600,
        "assumptions": {
            "cpu_flops_per_s_per_run": cpu_rate, "cpu_threads_per_run": threads,
            "cpu_parallel_runs": parallel,
            "cpu_step_overhead_s": CPU_STEP_OVERHEAD_S, "worker_startup_s": WORKER_STARTUP_S,
            "h200_flops_per_s": gpu_rate, "precision": precision,
            "source": "docs/performance.md: CPU rates measured on 2 Zen 4 cores (section 5.1); H200 rates "
                      "are the optimized-implementation targets (sections 0, 3), not measurements",
        },
    }


def _npz_geometry(root: Path, name: str) -> tuple[int, int, int, int]:
    """Read shapes from the .npy headers inside NAME-train*.npz / NAME-test.npz without loading pixels."""
    import numpy as np  # only custom datasets need it, and only here

    def shape(path: str) -> tuple[int, ...]:
        with zipfile.ZipFile(path) as z, z.open("x.npy") as f:
            version = np.lib.format.read_magic(f)
            header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)(f)
            return tuple(header[0])

    train = [shape(p) for p in sorted(glob(str(root / f"{name}-train*.npz")))]
    test = shape(str(root / f"{name}-test.npz"))
    side, channels = test[1], test[3] if len(test) == 4 else 1
    return side, channels, sum(s[0] for s in train), test[0]
