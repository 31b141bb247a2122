"""Seeded, cell-stratified bootstrap of the pooled variance ratio, with percentile and BCa intervals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri


def pooled_variance(cells: Sequence[np.ndarray]) -> tuple[float, int]:
    """Σ(n_c − 1)·s_c² / Σ(n_c − 1) with s_c² at ddof=1, and its degrees of freedom Σ(n_c − 1)."""
    df = sum(len(c) - 1 for c in cells)
    if df <= 0:
        return float("nan"), 0
    ss = sum(float(((c - c.mean()) ** 2).sum()) for c in cells if len(c) > 1)
    return ss / df, df


def variance_ratio(a_cells: Sequence[np.ndarray], b_cells: Sequence[np.ndarray]) -> float:
    """Pooled within-cell variance of level a over that of level b (inf when b has none, nan for 0/0)."""
    va, _ = pooled_variance(a_cells)
    vb, _ = pooled_variance(b_cells)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(va) / np.float64(vb))


@dataclass(frozen=True)
class RatioBootstrap:
    """The bootstrap distribution of the variance ratio and its 95 % intervals."""

    estimate: float
    distribution: np.ndarray
    """One ratio per resample (undefined 0/0 resamples removed)."""
    percentile: tuple[float, float]
    bca: tuple[float, float]
    z0: float
    """BCa bias correction: Φ⁻¹ of the (mid-rank) share of resamples below the estimate."""
    acceleration: float
    """BCa acceleration from the per-cell jackknife (Efron & Tibshirani eq. 15.36, several samples)."""
    n_resamples: int
    n_undefined: int
    """Resamples where both pooled variances were zero (every resampled cell constant)."""
    n_infinite: int
    """Resamples where only the denominator's pooled variance was zero."""


def _resampled_pooled_ss(cells: Sequence[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Σ_c (n_c − 1)·s_c*² for every resample: one [n_boot, n_c] index array per cell."""
    total = np.zeros(n_boot)
    for values in cells:
        n = len(values)
        # drawn even for n == 1 cells, so a cell's draws never depend on whether its neighbours vary
        idx = rng.integers(0, n, (n_boot, n))
        if n > 1:
            draws = values[idx]
            ss = draws.var(axis=1, ddof=1) * (n - 1)
            # a resample of one repeated run has no spread; rounding in its mean would otherwise
            # leave ~1e-32 behind, which depends on the data's offset and turns 0/0 into a ratio
            ss[(draws == draws[:, :1]).all(axis=1)] = 0.0
            total += ss
    return total


def _quantile(distribution: np.ndarray, q: float) -> float:
    """Linear-interpolated quantile (numpy's and SciPy's default); inf where the bound is infinite."""
    with np.errstate(invalid="ignore"):
        # inf - inf between two infinite neighbours gives nan: the bound itself is infinite
        return float(np.nan_to_num(np.quantile(distribution, q), nan=np.inf))


def bca_interval(estimate: float, distribution: np.ndarray, jackknife: Sequence[np.ndarray],
                 confidence: float = 0.95) -> tuple[tuple[float, float], float, float]:
    """BCa interval from a bootstrap distribution and per-sample jackknife estimates.

    `jackknife[j]` holds the statistic with each observation of sample (stratum) j left out in
    turn; the acceleration combines the samples as SciPy's `bootstrap` does for several samples.
    Returns ((low, high), z0, acceleration); nan bounds when the jackknife is degenerate.
    """
    b = len(distribution)
    below = np.count_nonzero(distribution < estimate) + np.count_nonzero(distribution <= estimate)
    with np.errstate(divide="ignore", invalid="ignore"):
        z0 = float(ndtri(below / (2 * b)))
        nums, dens = 0.0, 0.0
        for theta_i in jackknife:
            n = len(theta_i)
            if n == 0:
                continue
            u = (n - 1) * (theta_i.mean() - theta_i)
            nums += float((u ** 3).sum()) / n ** 3
            dens += float((u ** 2).sum()) / n ** 2
        accel = nums / (6 * dens ** 1.5) if dens > 0 else 0.0
    alpha = (1 - confidence) / 2
    bounds = []
    for z_alpha in (ndtri(alpha), ndtri(1 - alpha)):
        num = z0 + z_alpha
        level = float(ndtr(z0 + num / (1 - accel * num)))
        bounds.append(_quantile(distribution, level) if np.isfinite(level) else float("nan"))
    return (bounds[0], bounds[1]), z0, float(accel)


def _jackknife_ratios(a_cells: Sequence[np.ndarray], b_cells: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The ratio with each run left out in turn, one array per cell (a cells first)."""
    out = []
    for side, cells in ((0, a_cells), (1, b_cells)):
        for j, values in enumerate(cells):
            ratios = []
            for i in range(len(values)):
                reduced = list(cells)
                reduced[j] = np.delete(values, i)
                ratios.append(variance_ratio(reduced, b_cells) if side == 0 else variance_ratio(a_cells, reduced))
            out.append(np.asarray(ratios, dtype=float))
    return out


def bootstrap_variance_ratio(a_cells: Sequence[np.ndarray], b_cells: Sequence[np.ndarray], *,
                             n_boot: int, rng: np.random.Generator,
                             confidence: float = 0.95) -> RatioBootstrap:
    """Resample runs with replacement within every cell, recompute the pooled-variance ratio.

    Draws cell by cell (level a's cells, then level b's), each as one integer array of shape
    [n_boot, n_c] from `rng`; with one cell per level this is the resampling of
    scipy.stats.bootstrap((a, b), ...) for the same generator state.
    """
    a_cells = [np.asarray(c, dtype=float) for c in a_cells]
    b_cells = [np.asarray(c, dtype=float) for c in b_cells]
    df_a = sum(len(c) - 1 for c in a_cells)
    df_b = sum(len(c) - 1 for c in b_cells)
    num = _resampled_pooled_ss(a_cells, n_boot, rng) / df_a
    den = _resampled_pooled_ss(b_cells, n_boot, rng) / df_b
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = num / den
    undefined = np.isnan(ratios)
    dist = ratios[~undefined]
    estimate = variance_ratio(a_cells, b_cells)
    alpha = (1 - confidence) / 2
    if len(dist) == 0:
        nan2 = (float("nan"), float("nan"))
        return RatioBootstrap(estimate, dist, nan2, nan2, float("nan"), float("nan"), n_boot,
                              int(undefined.sum()), 0)
    pct = (_quantile(dist, alpha), _quantile(dist, 1 - alpha))
    bca, z0, accel = bca_interval(estimate, dist, _jackknife_ratios(a_cells, b_cells), confidence)
    return RatioBootstrap(estimate, dist, (pct[0], pct[1]), bca, z0, accel, n_boot,
                          int(undefined.sum()), int(np.isinf(dist).sum()))
