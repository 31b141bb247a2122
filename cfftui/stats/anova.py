"""Factorial ANOVA with type II sums of squares, by least squares on a treatment-coded design."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy import stats

ANOVA_SCHEMA = {"term": pl.String, "df": pl.Int64, "sum_sq": pl.Float64, "mean_sq": pl.Float64,
                "F": pl.Float64, "p": pl.Float64}


def _dummies(codes: np.ndarray, n_levels: int) -> np.ndarray:
    """Treatment coding: one indicator column per level after the first."""
    return (codes[:, None] == np.arange(1, n_levels)[None, :]).astype(float)


def _term_columns(term: tuple[int, ...], coded: list[np.ndarray]) -> np.ndarray:
    """Columns of an interaction term: every product of one dummy column of each of its factors."""
    blocks = [coded[f] for f in term]
    cols = [np.prod(np.stack(combo, axis=1), axis=1)
            for combo in itertools.product(*([b[:, j] for j in range(b.shape[1])] for b in blocks))]
    return np.stack(cols, axis=1) if cols else np.zeros((coded[0].shape[0], 0))


def _fit(y: np.ndarray, x: np.ndarray) -> tuple[float, int]:
    """Residual sum of squares and the rank of the design."""
    coef, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    return float(resid @ resid), int(rank)


def anova_type2(frame: pl.DataFrame, response: str, factors: Sequence[str]) -> pl.DataFrame:
    """Full-factorial ANOVA table (every main effect and interaction), type II sums of squares.

    Type II: a term's sum of squares is the drop in residual sum of squares when it is added to
    the model of all terms that do not contain it, so main effects are tested after each other
    but before their interactions; it does not depend on the coding and stays meaningful for
    unbalanced designs. Degrees of freedom are rank increments, so empty cells reduce them
    instead of breaking the fit. The last row is the residual.
    """
    data = frame.drop_nulls([response, *factors])
    y = data[response].to_numpy().astype(float)
    coded = []
    for f in factors:
        levels = data[f].unique(maintain_order=True).to_list()
        index = {v: i for i, v in enumerate(levels)}
        coded.append(_dummies(np.array([index[v] for v in data[f].to_list()]), len(levels)))
    terms = [t for k in range(1, len(factors) + 1) for t in itertools.combinations(range(len(factors)), k)]
    columns = {t: _term_columns(t, coded) for t in terms}
    intercept = np.ones((len(y), 1))

    def design(selected: Sequence[tuple[int, ...]]) -> np.ndarray:
        return np.hstack([intercept, *(columns[t] for t in selected)])

    rss_full, rank_full = _fit(y, design(terms))
    df_resid = len(y) - rank_full
    ms_resid = rss_full / df_resid if df_resid > 0 else float("nan")
    rows = []
    for term in terms:
        reduced = [t for t in terms if not set(term) <= set(t)]
        rss_without, rank_without = _fit(y, design(reduced))
        rss_with, rank_with = _fit(y, design([*reduced, term]))
        df = rank_with - rank_without
        ss = max(rss_without - rss_with, 0.0)
        if df > 0 and df_resid > 0 and ms_resid > 0:
            f_stat = (ss / df) / ms_resid
            p = float(stats.f.sf(f_stat, df, df_resid))
        else:
            f_stat, p = float("nan"), float("nan")
        rows.append({"term": ":".join(factors[i] for i in term), "df": df, "sum_sq": ss,
                     "mean_sq": ss / df if df else float("nan"), "F": f_stat, "p": p})
    rows.append({"term": "Residual", "df": df_resid, "sum_sq": rss_full, "mean_sq": ms_resid,
                 "F": None, "p": None})
    return pl.DataFrame(rows, schema=ANOVA_SCHEMA).with_columns(pl.col(pl.Float64).fill_nan(None))
