"""Run stores for the analysis tests, written to disk from chosen numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from .studies import write_study

MARGIN = "loss.margin_mode"
WIDTH = "model.embed_dim"

# CIFAR-like 2x2 with 7 seeds: clamp spreads wider than subtract, means close
PAPER_LIKE = {
    ("clamp", 128): [0.781, 0.802, 0.765, 0.812, 0.790, 0.771, 0.806],
    ("clamp", 256): [0.795, 0.821, 0.779, 0.826, 0.803, 0.788, 0.817],
    ("subtract", 128): [0.788, 0.792, 0.785, 0.795, 0.790, 0.787, 0.793],
    ("subtract", 256): [0.801, 0.806, 0.798, 0.809, 0.803, 0.800, 0.805],
}


@pytest.fixture
def study_2x2(tmp_path: Path) -> Path:
    """A finished 2x2 x 7 seeds study: runs/cifar_2x2."""
    return write_study(tmp_path / "runs", "cifar_2x2", {MARGIN: ["clamp", "subtract"], WIDTH: [128, 256]},
                       PAPER_LIKE)
