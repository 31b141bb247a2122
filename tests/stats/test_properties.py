"""Invariances of the variance ratio and the bootstrap, checked with Hypothesis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from cfftui.stats import analyse
from cfftui.stats.bootstrap import bootstrap_variance_ratio, pooled_variance, variance_ratio

from .conftest import MARGIN, PAPER_LIKE, WIDTH
from .studies import write_study

# values on a coarse grid keep cells from being (nearly) constant, where ratios are undefined
value = st.integers(-500, 500).map(lambda k: k / 10)
cell = st.lists(value, min_size=3, max_size=7, unique=True).map(np.array)
level = st.lists(cell, min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(a=level, b=level, shifts=st.lists(st.floats(-1e3, 1e3), min_size=6, max_size=6))
def test_ratio_ignores_a_constant_shift_of_any_cell(a: list, b: list, shifts: list[float]) -> None:
    shifted_a = [c + s for c, s in zip(a, shifts, strict=False)]
    shifted_b = [c + s for c, s in zip(b, shifts[3:], strict=False)]
    assert variance_ratio(shifted_a, shifted_b) == pytest.approx(variance_ratio(a, b), rel=1e-6)
    boot = bootstrap_variance_ratio(a, b, n_boot=200, rng=np.random.default_rng(1))
    boot_shifted = bootstrap_variance_ratio(shifted_a, shifted_b, n_boot=200, rng=np.random.default_rng(1))
    # ratios of nearly constant resamples lose their digits to the shift's rounding; compare the
    # well-conditioned ones (resamples of one repeated run are exactly 0 in both)
    base, moved = boot.distribution, boot_shifted.distribution
    assert base.shape == moved.shape
    sane = (base > 1e-6) & (base < 1e6) & np.isfinite(moved)
    np.testing.assert_allclose(moved[sane], base[sane], rtol=1e-5)


@settings(max_examples=60, deadline=None)
@given(a=level, b=level, scale=st.floats(1e-3, 1e3))
def test_common_scaling_scales_each_pooled_variance_by_its_square(a: list, b: list, scale: float) -> None:
    for cells in (a, b):
        assert pooled_variance([c * scale for c in cells])[0] == pytest.approx(scale ** 2 * pooled_variance(cells)[0],
                                                                               rel=1e-9)
    assert variance_ratio([c * scale for c in a], [c * scale for c in b]) == pytest.approx(variance_ratio(a, b),
                                                                                           rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(a=level, b=level, seed=st.integers(0, 2 ** 32 - 1))
def test_bootstrap_is_reproducible_for_a_fixed_seed(a: list, b: list, seed: int) -> None:
    first = bootstrap_variance_ratio(a, b, n_boot=300, rng=np.random.default_rng(seed))
    second = bootstrap_variance_ratio(a, b, n_boot=300, rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(first.distribution, second.distribution)
    assert (first.percentile, first.bca) == (second.percentile, second.bca)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    values = {k: v[:4] for k, v in PAPER_LIKE.items()}
    return write_study(tmp_path_factory.mktemp("order") / "runs", "order",
                       {MARGIN: ["clamp", "subtract"], WIDTH: [128, 256]}, values)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(16)))
def test_row_order_of_the_plan_does_not_matter(small_store: Path, order: list[int]) -> None:
    plan_path = small_store / "order" / "plan.json"
    plan = json.loads(plan_path.read_text())
    original = plan["runs"]
    baseline = analyse(small_store, "order", n_boot=300)
    try:
        plan_path.write_text(json.dumps({**plan, "runs": [original[i] for i in order]}))
        shuffled = analyse(small_store, "order", n_boot=300)
    finally:
        plan_path.write_text(json.dumps({**plan, "runs": original}))
    for name in ("cells", "variance", "comparison", "tests", "anova_means", "anova_dispersion", "diagnostics",
                 "layers"):
        assert_frame_equal(shuffled.tables[name], baseline.tables[name], rel_tol=1e-9)
    assert shuffled.headline() == baseline.headline()
