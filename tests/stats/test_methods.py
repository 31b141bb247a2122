"""The hand-written statistics against independent implementations: statsmodels ANOVA, SciPy bootstrap and Levene."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy import stats

from cfftui.stats.anova import anova_type2
from cfftui.stats.bootstrap import bootstrap_variance_ratio, pooled_variance

sm = pytest.importorskip("statsmodels.api")
smf = pytest.importorskip("statsmodels.formula.api")


def design(rng: np.random.Generator, sizes: dict[tuple[str, str], int], interaction: float = 0.0) -> pl.DataFrame:
    rows = []
    for (a, b), n in sizes.items():
        shift = 0.7 * (a == "a1") + 0.3 * (b == "b1") + interaction * (a == "a1") * (b == "b1")
        rows += [{"A": a, "B": b, "y": float(rng.normal(shift, 1.0 + 0.5 * (a == "a1")))} for _ in range(n)]
    return pl.DataFrame(rows)


DESIGNS = {
    "balanced 2x2": {("a0", "b0"): 7, ("a0", "b1"): 7, ("a1", "b0"): 7, ("a1", "b1"): 7},
    "unbalanced 2x2": {("a0", "b0"): 7, ("a0", "b1"): 4, ("a1", "b0"): 6, ("a1", "b1"): 2},
    "unbalanced 2x3": {("a0", "b0"): 3, ("a0", "b1"): 5, ("a0", "b2"): 2, ("a1", "b0"): 6, ("a1", "b1"): 3,
                       ("a1", "b2"): 4},
    "unbalanced 3x2": {("a0", "b0"): 2, ("a0", "b1"): 3, ("a2", "b0"): 5, ("a2", "b1"): 2, ("a1", "b0"): 4,
                       ("a1", "b1"): 6},
}


@pytest.mark.parametrize("name", list(DESIGNS))
@pytest.mark.parametrize("interaction", [0.0, 1.5])
def test_type2_anova_equals_statsmodels(name: str, interaction: float) -> None:
    frame = design(np.random.default_rng(len(name) + int(10 * interaction)), DESIGNS[name], interaction)
    mine = anova_type2(frame, "y", ["A", "B"])
    ref = sm.stats.anova_lm(smf.ols("y ~ C(A) * C(B)", data=frame.to_pandas()).fit(), typ=2)
    assert mine["df"].to_list() == [int(v) for v in ref["df"]]
    np.testing.assert_allclose(mine["sum_sq"].to_numpy(), ref["sum_sq"].to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(mine["F"].to_numpy()[:3], ref["F"].to_numpy()[:3], rtol=1e-9)
    np.testing.assert_allclose(mine["p"].to_numpy()[:3], ref["PR(>F)"].to_numpy()[:3], rtol=1e-8)


def test_type2_anova_equals_statsmodels_for_three_factors() -> None:
    rng = np.random.default_rng(5)
    rows = [{"A": a, "B": b, "D": c, "y": float(rng.normal(a == "x", 1))}
            for a in "xy" for b in "pq" for c in "uvw" for _ in range(2 + (a == "x") + (c == "w"))]
    frame = pl.DataFrame(rows)
    mine = anova_type2(frame, "y", ["A", "B", "D"])
    ref = sm.stats.anova_lm(smf.ols("y ~ C(A) * C(B) * C(D)", data=frame.to_pandas()).fit(), typ=2)
    np.testing.assert_allclose(mine["sum_sq"].to_numpy(), ref["sum_sq"].to_numpy(), rtol=1e-9)


@pytest.mark.parametrize("method", ["percentile", "BCa"])
@pytest.mark.parametrize("sizes", [(9, 8), (7, 7), (5, 11)])
def test_bootstrap_interval_equals_scipy_for_one_cell_per_level(method: str, sizes: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(sizes))
    a, b = rng.normal(0, 2, sizes[0]), rng.normal(0, 1, sizes[1])

    def ratio(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.var(x, ddof=1, axis=axis) / np.var(y, ddof=1, axis=axis)

    ref = stats.bootstrap((a, b), ratio, n_resamples=4000, rng=np.random.default_rng(11), method=method,
                          vectorized=True).confidence_interval
    mine = bootstrap_variance_ratio([a], [b], n_boot=4000, rng=np.random.default_rng(11))
    got = mine.percentile if method == "percentile" else mine.bca
    np.testing.assert_allclose(got, (ref.low, ref.high), rtol=1e-10)


def test_bca_of_a_simple_statistic_equals_scipy_with_several_cells() -> None:
    """Two cells per level, checked against scipy with each cell as one of four samples."""
    rng = np.random.default_rng(3)
    cells = [rng.normal(0, s, n) for s, n in ((2, 6), (2.5, 8), (1, 7), (1.2, 5))]

    def ratio(c0: np.ndarray, c1: np.ndarray, c2: np.ndarray, c3: np.ndarray, axis: int = -1) -> np.ndarray:
        def ss(c: np.ndarray) -> np.ndarray:
            return np.var(c, ddof=1, axis=axis) * (c.shape[axis] - 1)
        def df(*cs: np.ndarray) -> int:
            return sum(c.shape[axis] - 1 for c in cs)
        return ((ss(c0) + ss(c1)) / df(c0, c1)) / ((ss(c2) + ss(c3)) / df(c2, c3))

    ref = stats.bootstrap(tuple(cells), ratio, n_resamples=3000, rng=np.random.default_rng(2), method="BCa",
                          vectorized=True).confidence_interval
    mine = bootstrap_variance_ratio(cells[:2], cells[2:], n_boot=3000, rng=np.random.default_rng(2))
    np.testing.assert_allclose(mine.bca, (ref.low, ref.high), rtol=1e-10)


def test_levene_on_residuals_is_the_anova_of_absolute_deviations() -> None:
    """Levene's W is the one-way F of |x - group centre|: an independent route to the same number."""
    rng = np.random.default_rng(8)
    a, b = rng.normal(0, 2, 9), rng.normal(1, 1, 6)
    for center, fn in (("mean", np.mean), ("median", np.median)):
        w = stats.levene(a, b, center=center).statistic
        dev = pd.DataFrame({"g": ["a"] * 9 + ["b"] * 6,
                            "d": np.concatenate([np.abs(a - fn(a)), np.abs(b - fn(b))])})
        f = sm.stats.anova_lm(smf.ols("d ~ C(g)", data=dev).fit(), typ=2)["F"].iloc[0]
        assert w == pytest.approx(f, rel=1e-10)


def test_pooled_variance_weights_cells_by_degrees_of_freedom() -> None:
    cells = [np.array([1.0, 2.0, 4.0]), np.array([10.0, 10.0]), np.array([5.0])]
    value, df = pooled_variance(cells)
    assert df == 3 and value == pytest.approx((2 * np.var(cells[0], ddof=1) + 0.0) / 3)


def test_bootstrap_of_a_28_run_study_takes_under_a_second() -> None:
    rng = np.random.default_rng(0)
    a_cells = [rng.normal(80, 1.5, 7) for _ in range(2)]
    b_cells = [rng.normal(80, 0.6, 7) for _ in range(2)]
    start = time.perf_counter()
    result = bootstrap_variance_ratio(a_cells, b_cells, n_boot=10_000, rng=np.random.default_rng(0))
    elapsed = time.perf_counter() - start
    assert result.distribution.shape == (10_000,) and np.isfinite(result.bca).all()
    assert elapsed < 1.0, f"bootstrap took {elapsed:.3f} s"
