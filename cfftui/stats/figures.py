"""Paper figures as SVG and PNG: per-seed strip plot, per-layer CAR and gradient-norm curves, sweep ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from cfftui.stats.analysis import Analysis
from cfftui.stats.frames import AnalysisError


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise AnalysisError("figures need matplotlib, which is not installed "
                            "(pip install 'cfftui[plot]')") from None
    matplotlib.use("Agg")  # files only: never open a window, work over SSH
    import matplotlib.pyplot as plt
    plt.rcParams["svg.hashsalt"] = "cfftui"  # stable ids inside the SVG
    return plt


def _save(fig: Any, out: Path, stem: str) -> list[Path]:
    paths = []
    for ext, extra in (("png", {"dpi": 150}), ("svg", {"metadata": {"Date": None}})):
        path = out / f"{stem}.{ext}"
        fig.savefig(path, bbox_inches="tight", **extra)
        paths.append(path)
    return paths


def _metric_label(analysis: Analysis) -> str:
    names = {"top1": "test top-1 accuracy", "top5": "test top-5 accuracy"}
    return names.get(analysis.metric, analysis.metric) + (" (%)" if analysis.unit == "%" else "")


def strip_figure(analysis: Analysis, out: Path, plt: Any) -> list[Path]:
    runs = analysis.tables["runs"].filter(pl.col("finished") & pl.col(analysis.metric).is_not_null())
    cells = analysis.tables["cells"]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * cells.height, 3.6))
    for i, row in enumerate(cells.iter_rows(named=True)):
        vals = np.sort(runs.filter(pl.col("cell") == row["cell"])[analysis.metric].to_numpy())
        if len(vals) == 0:
            continue
        # deterministic jitter: spread each cell's runs evenly across a narrow band
        jitter = np.linspace(-0.15, 0.15, len(vals)) if len(vals) > 1 else np.zeros(1)
        color = "C0" if row[analysis.compare_column] == analysis.levels[0] else "C1"
        ax.scatter(i + jitter, vals, s=18, color=color, alpha=0.8, zorder=3)
        if row["ci_low"] is not None:
            ax.errorbar(i + 0.3, row["mean"], yerr=[[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]],
                        fmt="_", color="black", capsize=3, zorder=4)
        else:
            ax.plot(i + 0.3, row["mean"], "_", color="black")
    ax.set_xticks(range(cells.height))
    ax.set_xticklabels([" ".join(str(r[c]) for c in analysis.factors) for r in cells.iter_rows(named=True)],
                       rotation=20, ha="right")
    ax.set_ylabel(_metric_label(analysis))
    ax.set_title(f"{analysis.experiment}: runs per cell, mean and 95% CI")
    ax.grid(axis="y", alpha=0.3)
    paths = _save(fig, out, "strip")
    plt.close(fig)
    return paths


def curves_figure(analysis: Analysis, out: Path, plt: Any) -> list[Path]:
    epochs = analysis.tables["epochs"]
    finished = analysis.tables["runs"].filter(pl.col("finished"))["run_id"].to_list()
    epochs = epochs.filter(pl.col("run_id").is_in(finished) & pl.col("cfg_margin_mode").is_not_null())
    layers = sorted(int(c.rsplit("_l", 1)[1]) for c in epochs.columns if c.startswith("car_l"))
    if epochs.height == 0 or not layers:
        return []
    modes = epochs["cfg_margin_mode"].unique(maintain_order=True).to_list()
    means = epochs.group_by("cfg_margin_mode", "epoch").agg(
        *(pl.col(f"{k}_l{i}").mean() for k in ("car", "grad_norm") for i in layers)).sort("epoch")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    styles = ["-", "--", ":", "-."]
    for ax, key, label in ((axes[0], "car", "clamp activation rate"), (axes[1], "grad_norm", "gradient norm")):
        for li, layer in enumerate(layers):
            for mi, mode in enumerate(modes):
                part = means.filter(pl.col("cfg_margin_mode") == mode)
                ax.plot(part["epoch"], part[f"{key}_l{layer}"], styles[mi % len(styles)],
                        color=f"C{li % 10}", label=f"L{layer} {mode}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_title("CAR per layer (mean over runs)")
    axes[1].set_title("gradient norm per layer (mean over runs)")
    axes[1].legend(fontsize=7, ncol=max(1, len(modes)), loc="best")
    fig.tight_layout()
    paths = _save(fig, out, "layers")
    plt.close(fig)
    return paths


def sweep_figure(analysis: Analysis, out: Path, plt: Any) -> list[Path]:
    comp = analysis.tables["comparison"].filter(pl.col("stratum") != "all")
    if comp.height < 2:
        return []
    fig, ax = plt.subplots(figsize=(1.5 + 1.1 * comp.height, 3.6))
    x = np.arange(comp.height)
    ratio = comp["variance_ratio"].to_numpy()
    upper_cap = np.nanmax(ratio) * 50 if np.isfinite(np.nanmax(ratio)) else 1e3
    lo = np.clip(comp["ci_low"].fill_null(np.nan).to_numpy(), 1e-3, None)
    hi = np.minimum(comp["ci_high"].fill_null(np.nan).to_numpy(), upper_cap)
    ax.errorbar(x, ratio, yerr=[ratio - lo, hi - ratio], fmt="o", color="C3", capsize=4)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(comp["stratum"].to_list(), rotation=20, ha="right")
    a, b = analysis.levels
    ax.set_ylabel(f"variance ratio {a} / {b}")
    ax.set_title(f"{analysis.experiment}: variance ratio per level, 95% bootstrap CI")
    ax.grid(axis="y", alpha=0.3, which="both")
    paths = _save(fig, out, "sweep")
    plt.close(fig)
    return paths


def write_figures(analysis: Analysis, out_dir: str | Path) -> list[Path]:
    """strip.{png,svg}, layers.{png,svg} and, with more than one stratum, sweep.{png,svg}."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = strip_figure(analysis, out, plt) + curves_figure(analysis, out, plt) + sweep_figure(analysis, out, plt)
    return paths
