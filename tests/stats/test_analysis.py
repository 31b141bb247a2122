"""analyse() on run stores written to disk: the numbers against hand computation, and every refusal."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from cfftui.stats import AnalysisError, analyse

from .conftest import MARGIN, PAPER_LIKE, WIDTH
from .studies import write_study


def pooled(cells: list[list[float]]) -> float:
    return sum((len(c) - 1) * np.var(c, ddof=1) for c in cells) / sum(len(c) - 1 for c in cells)


def test_variance_comparison_matches_hand_computation(study_2x2: Path) -> None:
    a = analyse(study_2x2, "cifar_2x2", n_boot=2000)
    pct = {k: [100 * v for v in vals] for k, vals in PAPER_LIKE.items()}
    clamp = [pct[("clamp", 128)], pct[("clamp", 256)]]
    sub = [pct[("subtract", 128)], pct[("subtract", 256)]]
    row = a.overall()
    assert row["variance_ratio"] == pytest.approx(pooled(clamp) / pooled(sub), rel=1e-12)
    assert row["naive_ratio"] == pytest.approx(np.var(sum(clamp, []), ddof=1) / np.var(sum(sub, []), ddof=1))
    resid = {k: [x - np.mean(c) for c in cells for x in c] for k, cells in (("a", clamp), ("b", sub))}
    assert row["brown_forsythe_p"] == pytest.approx(stats.levene(resid["a"], resid["b"], center="median").pvalue)
    assert row["levene_p"] == pytest.approx(stats.levene(resid["a"], resid["b"], center="mean").pvalue)
    welch = stats.ttest_ind(sum(clamp, []), sum(sub, []), equal_var=False)
    assert row["welch_p"] == pytest.approx(welch.pvalue)
    assert row["mean_diff"] == pytest.approx(np.mean(sum(clamp, [])) - np.mean(sum(sub, [])))
    assert row["ci_low"] < row["variance_ratio"] < row["ci_high"]
    assert row["bca_low"] < row["bca_high"]
    cells = a.tables["cells"]
    first = cells.row(0, named=True)
    vals = pct[("clamp", 128)]
    half = stats.t.ppf(0.975, 6) * np.std(vals, ddof=1) / math.sqrt(7)
    assert (first["n"], first["sd"], first["variance"]) == (7, pytest.approx(np.std(vals, ddof=1)),
                                                           pytest.approx(np.var(vals, ddof=1)))
    assert first["ci_low"] == pytest.approx(np.mean(vals) - half)
    # per-level strata of the other factor, as in a sweep table
    assert a.tables["comparison"]["stratum"].to_list() == ["all", "embed_dim=128", "embed_dim=256"]
    per_level = a.tables["comparison"].row(1, named=True)
    assert per_level["variance_ratio"] == pytest.approx(np.var(pct[("clamp", 128)], ddof=1)
                                                        / np.var(pct[("subtract", 128)], ddof=1))
    assert a.warnings == []
    head = a.headline()
    assert head.startswith("clamp / subtract variance ratio ") and "Brown–Forsythe p" in head and "pp (Welch p" in head


def test_frames_hold_every_run_and_epoch_and_diagnostics(study_2x2: Path) -> None:
    a = analyse(study_2x2, "cifar_2x2", n_boot=200)
    runs, epochs = a.tables["runs"], a.tables["epochs"]
    assert runs.height == 28 and epochs.height == 28 * 3
    assert {"margin_mode", "embed_dim", "top1", "top5", "best_epoch", "car_l0", "car_final_l2",
            "grad_norm_l1", "grad_norm_final_l0", "wall_s"} <= set(runs.columns)
    assert runs["wall_s"].to_list() == [33.0] * 28  # start t0 .. end t0 + 33 in the fixture
    diag = a.tables["diagnostics"].row(0, named=True)
    # B = 64 with 10 balanced classes: 2 * 63 * 0.1 + 1 positives per anchor
    assert diag["expected_positives"] == pytest.approx(13.6) and diag["class_assumption"] == "10 balanced classes"
    assert a.tables["layers"].height == 4 * 3
    assert set(a.tables["anova_means"]["term"]) == {"margin_mode", "embed_dim", "margin_mode:embed_dim", "Residual"}


def test_unfinished_runs_are_excluded_and_reported(tmp_path: Path) -> None:
    values = {k: list(v) for k, v in PAPER_LIKE.items()}
    root = write_study(tmp_path / "runs", "e", {MARGIN: ["clamp", "subtract"], WIDTH: [128, 256]}, values,
                       states={(("clamp", 128), 0): "failed", (("subtract", 256), 3): "diverged",
                               (("subtract", 256), 4): "running"})
    a = analyse(root, "e", n_boot=200)
    excluded = a.tables["excluded"]
    assert sorted(excluded["state"].to_list()) == ["diverged", "failed", "running"]
    assert a.tables["cells"]["n"].to_list() == [6, 7, 7, 5]
    assert any("3 of 28 planned runs excluded" in w for w in a.warnings)
    assert any(w.startswith("unequal runs per cell (6, 7, 7, 5)") for w in a.warnings)
    assert a.overall()["n_a"] == 13 and a.overall()["n_b"] == 12


def test_one_factor_study_has_the_comparison_only(tmp_path: Path) -> None:
    root = write_study(tmp_path / "runs", "f", {MARGIN: ["clamp", "subtract"]},
                       {("clamp",): [0.5, 0.6, 0.7], ("subtract",): [0.55, 0.6, 0.62, 0.58]})
    a = analyse(root, "f", n_boot=300)
    assert "anova_means" not in a.tables and a.tables["comparison"].height == 1
    assert a.overall()["variance_ratio"] == pytest.approx(np.var([50, 60, 70], ddof=1)
                                                          / np.var([55, 60, 62, 58], ddof=1))


def test_three_level_factor_compares_the_chosen_levels_per_sweep_level(tmp_path: Path) -> None:
    aug = "data.augment"
    values = {(m, lv): [0.8 + 0.01 * i * (2 if m == "clamp" else 1) - 0.1 * j for i in range(3)]
              for m in ("clamp", "subtract") for j, lv in enumerate(("none", "standard", "aggressive"))}
    root = write_study(tmp_path / "runs", "sweep", {MARGIN: ["clamp", "subtract"], aug: ["none", "standard",
                                                                                        "aggressive"]}, values)
    a = analyse(root, "sweep", n_boot=300)
    assert a.tables["comparison"]["stratum"].to_list() == ["all", "augment=none", "augment=standard",
                                                          "augment=aggressive"]
    assert a.tables["comparison"]["variance_ratio"].to_list() == pytest.approx([4.0] * 4)
    assert a.tables["anova_means"].filter(pl.col("term") == "augment")["df"].item() == 2


@pytest.mark.parametrize(("kwargs", "setup", "message"), [
    ({}, "unknown", "no experiment 'nope' in run store"),
    ({"metric": "accuracy"}, "ok", "has no metric 'accuracy'"),
    ({"levels": ("clamp", "none")}, "ok", "has no level 'none'"),
    ({"compare": "model.depth"}, "ok", "has no factor 'model.depth'"),
    ({}, "one_level", "has one level only"),
    ({}, "single_run_cell", "has 1 finished run(s); the variance analysis needs at least 2"),
    ({"min_cell_runs": 1}, "single_runs_only", "has no within-cell replication"),
    ({}, "nothing_finished", "has no finished runs with top1 (4 planned: 4 failed)"),
])
def test_input_that_cannot_be_analysed_gets_one_clear_line(tmp_path: Path, kwargs: dict, setup: str,
                                                          message: str) -> None:
    root = tmp_path / "runs"
    exp = "nope" if setup == "unknown" else "x"
    if setup in ("ok", "unknown"):
        write_study(root, "x", {MARGIN: ["clamp", "subtract"]}, {("clamp",): [0.5, 0.6], ("subtract",): [0.5, 0.7]})
    elif setup == "one_level":
        write_study(root, "x", {MARGIN: ["clamp"]}, {("clamp",): [0.5, 0.6]})
    elif setup == "single_run_cell":
        write_study(root, "x", {MARGIN: ["clamp", "subtract"], WIDTH: [128, 256]},
                    {("clamp", 128): [0.5, 0.6], ("clamp", 256): [0.5], ("subtract", 128): [0.5, 0.6],
                     ("subtract", 256): [0.5, 0.7]})
    elif setup == "single_runs_only":
        write_study(root, "x", {MARGIN: ["clamp", "subtract"]}, {("clamp",): [0.5], ("subtract",): [0.5, 0.7]})
    elif setup == "nothing_finished":
        write_study(root, "x", {MARGIN: ["clamp", "subtract"]}, {("clamp",): [0.5, 0.6], ("subtract",): [0.5, 0.7]},
                    states={((m,), s): "failed" for m in ("clamp", "subtract") for s in (0, 1)})
    with pytest.raises(AnalysisError) as err:
        analyse(root, exp, n_boot=100, **kwargs)
    text = str(err.value)
    assert message in text and "\n" not in text
