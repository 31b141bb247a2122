"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CFFTUI_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The real CIFAR-10 / Fashion-MNIST .npz files beside the checkout (../shared/data)."""
    if not (SHARED_DATA / "fashion_mnist-train.npz").is_file():
        pytest.skip(f"real datasets not found in {SHARED_DATA} (set CFFTUI_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def python() -> str:
    """The interpreter that runs the tests, for starting real subprocesses."""
    return sys.executable
