"""The variance analysis of one experiment: per-cell statistics, the variance comparison, ANOVAs, diagnostics."""

from __future__ import annotations

import itertools
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from cfftui.stats.anova import anova_type2
from cfftui.stats.bootstrap import bootstrap_variance_ratio, pooled_variance
from cfftui.stats.frames import PERCENT_METRICS, AnalysisError, StudyFrames, cell_label, load_frames
from cfftui.stats.strip import strip_plot

DEFAULT_BOOTSTRAP = 10_000
CONFIDENCE = 0.95

CLASS_FREQUENCIES: dict[str, tuple[float, int, str]] = {
    "cifar10": (0.1, 10, "10 balanced classes"),
    "fashion_mnist": (0.1, 10, "10 balanced classes"),
    "mnist": (0.1, 10, "10 classes, assumed balanced"),
    "cifar100": (0.01, 100, "100 balanced classes"),
    "svhn": (0.1146, 10, "SVHN train class frequencies, Σp² = 0.1146"),
}
"""Σ_k p_k², the number of classes and what is assumed, per built-in dataset (science.md §6)."""


def format_p(p: float | None) -> str:
    """'0.003', '0.71', '< 0.001'; two significant digits."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def p_clause(p: float | None) -> str:
    """'p = 0.003' or 'p < 0.001'."""
    text = format_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


@dataclass
class Analysis:
    """Every table of one experiment's analysis, with the settings that produced it."""

    experiment: str
    metric: str
    unit: str
    """'%' for accuracies (differences then in pp), '' otherwise."""
    compare: str
    """Dotted key of the compared factor."""
    compare_column: str
    levels: tuple[str, str]
    n_boot: int
    seed: int
    tables: dict[str, pl.DataFrame]
    """Every table by name; numbers stay numeric (formatting belongs to the renderers)."""
    notes: dict[str, str]
    """One line per table: what it holds, ddof, which test."""
    warnings: list[str] = field(default_factory=list)
    factors: tuple[str, ...] = ()
    """Factor columns in design order."""

    def overall(self) -> dict[str, Any]:
        """The comparison row over all strata."""
        return self.tables["comparison"].row(0, named=True)

    def headline(self) -> str:
        """'clamp / subtract variance ratio 5.90× [1.62, 15.80], Brown–Forsythe p = 0.003, means differ ...'."""
        row = self.overall()
        a, b = self.levels
        diff_unit = " pp" if self.unit == "%" else ""
        ci = _fmt_ci(row["ci_low"], row["ci_high"])
        return (f"{a} / {b} variance ratio {_fmt_ratio(row['variance_ratio'])}× {ci}, "
                f"Brown–Forsythe {p_clause(row['brown_forsythe_p'])}, means differ by "
                f"{row['mean_diff']:.1f}{diff_unit} (Welch {p_clause(row['welch_p'])})")

    def strip(self, width: int) -> str:
        """The per-seed strip plot of the finished runs, one line per cell labelled by its levels."""
        runs = self.tables["runs"].filter(pl.col("finished"))
        labelled = runs.with_columns(cell=pl.concat_str([pl.col(c) for c in self.factors], separator=" "))
        return strip_plot(labelled, self.metric, width)

    def short_headline(self) -> str:
        """'5.90× p = 0.003': the variance ratio and its Brown–Forsythe p, for narrow columns."""
        row = self.overall()
        return f"{_fmt_ratio(row['variance_ratio'])}× {p_clause(row['brown_forsythe_p'])}"


def _fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None or math.isnan(x) else ("∞" if math.isinf(x) else f"{x:.2f}")


def _fmt_ci(lo: float | None, hi: float | None) -> str:
    return f"[{_fmt_ratio(lo)}, {_fmt_ratio(hi)}]"


def _nan_to_null(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Float64).fill_nan(None))


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _class_assumption(dataset: str | None, num_classes: int | None) -> tuple[float | None, int | None, str]:
    if dataset in CLASS_FREQUENCIES:
        return CLASS_FREQUENCIES[dataset]
    if dataset == "synthetic" and num_classes:
        return 1.0 / num_classes, num_classes, f"{num_classes} balanced classes (synthetic)"
    return None, None, f"class frequencies of {dataset or 'the dataset'} unknown"


def _state_summary(runs: pl.DataFrame) -> str:
    counts = Counter(runs["state"].to_list())
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


class _Study:
    """The resolved settings and the finished runs the tables are computed from."""

    def __init__(self, frames: StudyFrames, metric: str | None, compare: str | None,
                 levels: tuple[str, str] | None, n_boot: int | None, seed: int | None,
                 min_cell_runs: int) -> None:
        self.frames = frames
        exp = frames.experiment
        settings = frames.plan.get("analysis") or {}
        self.metric = metric or settings.get("metric") or "top1"
        numeric = [c for c, t in frames.runs.schema.items() if t.is_numeric() and c != "seed"]
        if self.metric not in numeric:
            raise AnalysisError(f"experiment {exp!r} has no metric {self.metric!r} "
                                f"(metrics: {', '.join(numeric)})")
        if not frames.factors:
            raise AnalysisError(f"experiment {exp!r} has no factors: there is nothing to compare")
        default_compare = next((f.key for f in frames.factors if f.key == "loss.margin_mode"),
                               frames.factors[0].key)
        self.factor = frames.factor(compare or settings.get("compare") or default_compare)
        chosen = levels or settings.get("levels") or (self.factor.levels if len(self.factor.levels) == 2
                                                       else None)
        if len(self.factor.levels) < 2:
            raise AnalysisError(f"factor {self.factor.key} of experiment {exp!r} has one level only "
                                f"({self.factor.levels[0]}): a variance comparison needs two")
        if chosen is None:
            raise AnalysisError(f"factor {self.factor.key} has {len(self.factor.levels)} levels "
                                f"({', '.join(self.factor.levels)}); name the two to compare")
        chosen = tuple(str(v) for v in chosen)
        if len(chosen) != 2 or chosen[0] == chosen[1]:
            raise AnalysisError(f"compare needs two different levels of {self.factor.key}, got "
                                f"{', '.join(chosen) or 'none'}")
        for level in chosen:
            if level not in self.factor.levels:
                raise AnalysisError(f"{self.factor.key} has no level {level!r} "
                                    f"(levels: {', '.join(self.factor.levels)})")
        self.levels: tuple[str, str] = (chosen[0], chosen[1])
        self.n_boot = int(n_boot if n_boot is not None else settings.get("bootstrap") or DEFAULT_BOOTSTRAP)
        if self.n_boot < 1:
            raise AnalysisError(f"bootstrap resamples must be at least 1, got {self.n_boot}")
        self.seed = int(seed if seed is not None else settings.get("seed", 0))

        runs = frames.runs
        self.finished = runs.filter(pl.col("finished") & pl.col(self.metric).is_not_null()
                                    & pl.col(self.metric).is_finite())
        if self.finished.height == 0:
            raise AnalysisError(f"experiment {exp!r} has no finished runs with {self.metric} "
                                f"({runs.height} planned: {_state_summary(runs) or 'none'})")
        self.no_metric = runs.filter(pl.col("finished") & ~pl.col("run_id").is_in(self.finished["run_id"].to_list()))
        col = self.factor.column
        self.data = self.finished.filter(pl.col(col).is_in(list(self.levels)))
        for level in self.levels:
            if self.data.filter(pl.col(col) == level).height == 0:
                raise AnalysisError(f"level {level!r} of {self.factor.key} has no finished runs "
                                    f"with {self.metric}")
        self.n_by_cell = dict(self.finished.group_by("cell").len().iter_rows())
        for cell in frames.cells:
            n = self.n_by_cell.get(cell, 0)
            if 0 < n < min_cell_runs and cell in set(self.data["cell"].to_list()):
                raise AnalysisError(f"cell '{cell}' has {n} finished run(s); the variance analysis "
                                    f"needs at least {min_cell_runs} per cell (min_cell_runs)")
        for level in self.levels:
            cells = self.cell_values(self.data.filter(pl.col(col) == level))
            if pooled_variance(cells)[1] == 0:
                raise AnalysisError(f"level {level!r} of {self.factor.key} has no within-cell "
                                    f"replication (every cell has one run): its variance is undefined")

    def cell_values(self, frame: pl.DataFrame) -> list[np.ndarray]:
        """The metric per non-empty cell in design order, sorted so that row order cannot matter."""
        groups = {c: np.sort(frame.filter(pl.col("cell") == c)[self.metric].to_numpy().astype(float))
                  for c in frame["cell"].unique().to_list()}
        return [groups[c] for c in self.frames.cells if c in groups]


def _cells_table(study: _Study) -> pl.DataFrame:
    frames, m = study.frames, study.metric
    agg = study.finished.group_by("cell").agg(
        n=pl.len(), mean=pl.col(m).mean(), sd=pl.col(m).std(ddof=1), variance=pl.col(m).var(ddof=1),
        median=pl.col(m).median(), min=pl.col(m).min(), max=pl.col(m).max())
    planned = frames.runs.group_by("cell").agg(n_planned=pl.len(),
                                               n_excluded=(~pl.col("finished")).sum().cast(pl.Int64))
    combos = list(itertools.product(*(f.levels for f in frames.factors)))
    base = pl.DataFrame({"cell": list(frames.cells),
                         **{f.column: [c[i] for c in combos] for i, f in enumerate(frames.factors)}},
                        schema={"cell": pl.String, **{f.column: pl.String for f in frames.factors}})
    table = (base.join(planned, on="cell", how="left").join(agg, on="cell", how="left")
             .with_columns(pl.col("n").fill_null(0).cast(pl.Int64),
                           pl.col("n_planned").fill_null(0).cast(pl.Int64),
                           pl.col("n_excluded").fill_null(0).cast(pl.Int64)))
    half = [float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * sd / math.sqrt(n)) if n >= 2 and sd is not None
            else None for n, sd in zip(table["n"], table["sd"], strict=True)]
    table = table.with_columns(pl.Series("half", half, dtype=pl.Float64)).with_columns(
        ci_low=pl.col("mean") - pl.col("half"), ci_high=pl.col("mean") + pl.col("half")).drop("half")
    return _nan_to_null(table.select("cell", *(f.column for f in frames.factors), "n", "n_planned",
                                     "n_excluded", "mean", "sd", "variance", "median", "min", "max",
                                     "ci_low", "ci_high"))


def _strata(study: _Study) -> list[tuple[str, pl.DataFrame]]:
    """('all', every analysed run), then one stratum per combination of the other factors' levels."""
    others = [f for f in study.frames.factors if f.key != study.factor.key]
    strata = [("all", study.data)]
    if not others:
        return strata
    combos = study.data.select(*(f.column for f in others)).unique(maintain_order=True)
    order = {f.column: {v: i for i, v in enumerate(f.levels)} for f in others}
    keyed = sorted(combos.iter_rows(named=True), key=lambda r: tuple(order[c][r[c]] for c in order))
    if len(keyed) < 2:
        return strata
    for combo in keyed:
        label = cell_label({f.key: combo[f.column] for f in others})
        subset = study.data.filter(pl.all_horizontal(pl.col(c) == v for c, v in combo.items()))
        strata.append((label, subset))
    return strata


def _compare(study: _Study, warns: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    col = study.factor.column
    a, b = study.levels
    children = np.random.SeedSequence(study.seed).spawn(len(_strata(study)))
    variance_rows, compare_rows, test_rows = [], [], []
    for (label, subset), child in zip(_strata(study), children, strict=True):
        cells = {lv: study.cell_values(subset.filter(pl.col(col) == lv)) for lv in (a, b)}
        raw = {lv: np.concatenate(cells[lv]) if cells[lv] else np.array([]) for lv in (a, b)}
        resid = {lv: np.concatenate([c - c.mean() for c in cells[lv]]) if cells[lv] else np.array([])
                 for lv in (a, b)}
        pooled = {lv: pooled_variance(cells[lv]) for lv in (a, b)}
        for lv in (a, b):
            naive = float(np.var(raw[lv], ddof=1)) if len(raw[lv]) > 1 else None
            variance_rows.append({"stratum": label, "level": lv, "n_runs": len(raw[lv]),
                                  "n_cells": len(cells[lv]), "df": pooled[lv][1],
                                  "mean": _finite(raw[lv].mean()) if len(raw[lv]) else None,
                                  "pooled_var": _finite(pooled[lv][0]),
                                  "pooled_sd": _finite(math.sqrt(pooled[lv][0])) if pooled[lv][1] else None,
                                  "naive_var": naive})
        if pooled[a][1] == 0 or pooled[b][1] == 0:
            warns.append(f"stratum '{label}': a level has no within-cell replication; no comparison")
            compare_rows.append({"stratum": label, "level_a": a, "level_b": b,
                                 "n_a": len(raw[a]), "n_b": len(raw[b]), "n_boot": study.n_boot})
            continue
        boot = bootstrap_variance_ratio(cells[a], cells[b], n_boot=study.n_boot,
                                        rng=np.random.Generator(np.random.PCG64(child)),
                                        confidence=CONFIDENCE)
        if boot.n_undefined or boot.n_infinite:
            warns.append(f"stratum '{label}': {boot.n_undefined + boot.n_infinite} of {study.n_boot} "
                         f"bootstrap resamples had zero pooled variance at a level")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant groups give nan statistics, reported as n/a
            tests = {}
            for data_name, values in (("residuals", resid), ("raw", raw)):
                for test, center in (("Levene", "mean"), ("Brown–Forsythe", "median")):
                    res = stats.levene(values[a], values[b], center=center)
                    tests[(test, data_name)] = res
                    test_rows.append({"stratum": label, "test": test, "center": center, "data": data_name,
                                      "statistic": _finite(res.statistic), "df1": 1,
                                      "df2": len(values[a]) + len(values[b]) - 2,
                                      "p": _finite(res.pvalue)})
            welch = stats.ttest_ind(raw[a], raw[b], equal_var=False)
        naive_a = np.var(raw[a], ddof=1)
        naive_b = np.var(raw[b], ddof=1)
        compare_rows.append({
            "stratum": label, "level_a": a, "level_b": b, "n_a": len(raw[a]), "n_b": len(raw[b]),
            "variance_ratio": _finite(boot.estimate) if not math.isinf(boot.estimate) else boot.estimate,
            "ci_low": boot.percentile[0], "ci_high": boot.percentile[1],
            "bca_low": boot.bca[0], "bca_high": boot.bca[1],
            "naive_ratio": float(naive_a / naive_b) if naive_b > 0 else None,
            "levene_p": _finite(tests[("Levene", "residuals")].pvalue),
            "brown_forsythe_p": _finite(tests[("Brown–Forsythe", "residuals")].pvalue),
            "mean_a": float(raw[a].mean()), "mean_b": float(raw[b].mean()),
            "mean_diff": float(raw[a].mean() - raw[b].mean()),
            "welch_t": _finite(welch.statistic), "welch_df": _finite(welch.df), "welch_p": _finite(welch.pvalue),
            "n_boot": study.n_boot})
    variance_schema = {"stratum": pl.String, "level": pl.String, "n_runs": pl.Int64, "n_cells": pl.Int64,
                       "df": pl.Int64, "mean": pl.Float64, "pooled_var": pl.Float64, "pooled_sd": pl.Float64,
                       "naive_var": pl.Float64}
    compare_schema = {"stratum": pl.String, "level_a": pl.String, "level_b": pl.String, "n_a": pl.Int64,
                      "n_b": pl.Int64, **{k: pl.Float64 for k in (
                          "variance_ratio", "ci_low", "ci_high", "bca_low", "bca_high", "naive_ratio",
                          "levene_p", "brown_forsythe_p", "mean_a", "mean_b", "mean_diff", "welch_t",
                          "welch_df", "welch_p")}, "n_boot": pl.Int64}
    tests_schema = {"stratum": pl.String, "test": pl.String, "center": pl.String, "data": pl.String,
                    "statistic": pl.Float64, "df1": pl.Int64, "df2": pl.Int64, "p": pl.Float64}
    return (_nan_to_null(pl.DataFrame(variance_rows, schema=variance_schema)),
            _nan_to_null(pl.DataFrame(compare_rows, schema=compare_schema)),
            _nan_to_null(pl.DataFrame(test_rows, schema=tests_schema)))


def _anovas(study: _Study, cells: pl.DataFrame, warns: list[str]) -> dict[str, pl.DataFrame]:
    factors = study.frames.factors
    if len(factors) < 2:
        return {}
    columns = [f.column for f in factors]
    missing = cells.filter(pl.col(study.factor.column).is_in(list(study.levels)) & (pl.col("n") == 0))["cell"]
    if missing.len():
        warns.append(f"factorial ANOVA skipped: no finished runs in {', '.join(repr(c) for c in missing.to_list())}")
        return {}
    m = study.metric
    data = study.data.with_columns(abs_resid=(pl.col(m) - pl.col(m).mean().over("cell")).abs())
    return {"anova_means": anova_type2(data, m, columns),
            "anova_dispersion": anova_type2(data, "abs_resid", columns)}


def _diagnostics(study: _Study) -> tuple[pl.DataFrame, pl.DataFrame]:
    frames = study.frames
    rows, layer_rows = [], []
    for cell in frames.cells:
        runs = study.finished.filter(pl.col("cell") == cell)
        dataset = runs["cfg_dataset"].drop_nulls().first() if runs.height else None
        batch = runs["cfg_batch_size"].drop_nulls().first() if runs.height else None
        classes = runs["cfg_num_classes"].drop_nulls().first() if runs.height else None
        sum_p2, n_classes, assumption = _class_assumption(dataset, classes)
        expected = 2 * (batch - 1) * sum_p2 + 1 if batch and sum_p2 is not None else None
        rows.append({"cell": cell, "n": runs.height, "dataset": dataset, "batch_size": batch,
                     "classes": n_classes, "sum_p2": sum_p2, "class_assumption": assumption,
                     "expected_positives": expected,
                     "positive_share": expected / (2 * batch - 1) if expected is not None else None,
                     "car_l0": runs["car_l0"].mean() if frames.depth and runs.height else None,
                     "car_l0_sd": runs["car_l0"].std(ddof=1) if frames.depth and runs.height > 1 else None,
                     "grad_norm_l0": runs["grad_norm_l0"].mean() if frames.depth and runs.height else None})
        for layer in range(frames.depth):
            def mean(name: str, _runs: pl.DataFrame = runs, _layer: int = layer) -> float | None:
                return _runs[f"{name}_l{_layer}"].mean() if _runs.height else None  # type: ignore[return-value]
            layer_rows.append({"cell": cell, "layer": layer, "n": runs.height, "car": mean("car"),
                               "car_sd": runs[f"car_l{layer}"].std(ddof=1) if runs.height > 1 else None,
                               "car_final": mean("car_final"), "grad_norm": mean("grad_norm"),
                               "grad_norm_final": mean("grad_norm_final")})
    diag_schema = {"cell": pl.String, "n": pl.Int64, "dataset": pl.String, "batch_size": pl.Int64,
                   "classes": pl.Int64, "sum_p2": pl.Float64, "class_assumption": pl.String,
                   "expected_positives": pl.Float64, "positive_share": pl.Float64, "car_l0": pl.Float64,
                   "car_l0_sd": pl.Float64, "grad_norm_l0": pl.Float64}
    layer_schema = {"cell": pl.String, "layer": pl.Int64, "n": pl.Int64, "car": pl.Float64,
                    "car_sd": pl.Float64, "car_final": pl.Float64, "grad_norm": pl.Float64,
                    "grad_norm_final": pl.Float64}
    return (_nan_to_null(pl.DataFrame(rows, schema=diag_schema)),
            _nan_to_null(pl.DataFrame(layer_rows, schema=layer_schema)))


def _study_warnings(study: _Study, cells: pl.DataFrame) -> list[str]:
    warns = []
    for cell, n in cells.select("cell", "n").iter_rows():
        if n == 0:
            warns.append(f"cell '{cell}' has no finished runs")
        elif n < 3:
            warns.append(f"cell '{cell}' has {n} finished run{'s' if n != 1 else ''} (fewer than 3)")
    counts = [n for n in cells["n"].to_list() if n > 0]
    if len(set(counts)) > 1:
        warns.append(f"unequal runs per cell ({', '.join(map(str, counts))}): pooled variances weight "
                     f"cells by n − 1, the ANOVAs use type II sums of squares")
    runs = study.frames.runs
    excluded = runs.filter(~pl.col("finished"))
    if excluded.height:
        warns.append(f"{excluded.height} of {runs.height} planned runs excluded from the tests "
                     f"({_state_summary(excluded)}); see the excluded table")
    if study.no_metric.height:
        warns.append(f"{study.no_metric.height} finished run(s) have no {study.metric} and are left out")
    return warns


NOTES = {
    "cells": "Per cell over finished runs: sd and variance with ddof=1; 95% CI of the mean t-based "
             "(mean ± t(0.975, n−1)·sd/√n).",
    "variance": "Per level: pooled within-cell variance Σ(n_c−1)·s_c²/Σ(n_c−1) with ddof=1; naive: "
                "variance of the level's runs pooled (ddof=1).",
    "comparison": "Variance ratio of pooled within-cell variances (level a / level b); 95% CIs from a "
                  "bootstrap stratified by cell (percentile and BCa); Levene (mean-centred) and "
                  "Brown–Forsythe (median-centred) p on within-cell residuals; Welch t-test on raw values.",
    "tests": "scipy.stats.levene on within-cell residuals (run minus its cell mean) and on raw values.",
    "anova_means": "Two-way ANOVA of the metric, full factorial, type II sums of squares (least squares, "
                   "treatment coding).",
    "anova_dispersion": "Dispersion effects: the same type II ANOVA on absolute within-cell residuals "
                        "|run − cell mean|.",
    "diagnostics": "Expected positives per anchor 2(B−1)·Σp²+1 under uniform sampling, and their share of "
                   "the 2B−1 contrasts (science.md §6); class frequencies as assumed in class_assumption; "
                   "CAR and gradient norm at layer 0: cell mean of run means (sd ddof=1).",
    "layers": "Per cell and layer: clamp activation rate and gradient norm, run mean over training and at "
              "the final epoch, averaged over the cell's finished runs (car_sd with ddof=1).",
    "excluded": "Planned runs left out of every test, with the reason.",
    "runs": "One row per planned run (accuracies in %, CAR as a fraction, wall and train time in s).",
    "epochs": "One row per run and recorded epoch, per-layer columns _l0 (first block) onwards.",
}


def analyse(runs_dir: str | Path, experiment: str, *, metric: str | None = None, compare: str | None = None,
            levels: tuple[str, str] | None = None, n_boot: int | None = None, seed: int | None = None,
            min_cell_runs: int = 2) -> Analysis:
    """Analyse one experiment of a run store; defaults come from plan.json's analysis table.

    Raises AnalysisError (one line) for input that cannot be analysed: an unknown experiment or
    metric, a compared factor with one level, no finished runs, or a cell with fewer than
    `min_cell_runs` finished runs (set it to 1 to pool single-run cells, which add no degrees of
    freedom; a level whose cells all have one run still cannot be compared).
    """
    frames = load_frames(runs_dir, experiment)
    study = _Study(frames, metric, compare, levels, n_boot, seed, min_cell_runs)
    cells = _cells_table(study)
    warns = _study_warnings(study, cells)
    variance, comparison, tests = _compare(study, warns)
    anovas = _anovas(study, cells, warns)
    diagnostics, layers = _diagnostics(study)
    tables = {"cells": cells, "variance": variance, "comparison": comparison, "tests": tests, **anovas,
              "diagnostics": diagnostics, "layers": layers, "excluded": frames.excluded,
              "runs": frames.runs.drop("reason"), "epochs": frames.epochs}
    return Analysis(experiment=experiment, metric=study.metric,
                    unit="%" if study.metric in PERCENT_METRICS else "", compare=study.factor.key,
                    compare_column=study.factor.column, levels=study.levels, n_boot=study.n_boot,
                    seed=study.seed, tables=tables, notes={k: NOTES[k] for k in tables}, warnings=warns,
                    factors=tuple(f.column for f in frames.factors))
