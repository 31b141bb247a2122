"""The dataset registry: .npz layout, synthetic images, subsets and the seeded split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cfftui.cff.data import DataError, load_arrays, split_indices
from cfftui.spec import DataConfig


def test_npz_parts_are_concatenated_and_geometry_comes_from_the_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for part in ("part1", "part2"):
        np.savez(
            tmp_path / f"mine-train-{part}.npz",
            x=rng.integers(0, 256, (6, 12, 12, 2), dtype=np.uint8),
            y=np.arange(6) % 3,
        )
    np.savez(
        tmp_path / "mine-test.npz", x=rng.integers(0, 256, (4, 12, 12, 2), dtype=np.uint8), y=np.arange(4) % 3
    )
    a = load_arrays(DataConfig(dataset="mine", root=str(tmp_path)))
    assert a.x_train.shape == (12, 2, 12, 12) and a.x_test.shape == (4, 2, 12, 12)
    assert a.num_classes == 3 and a.channels == 2 and a.image_size == 12 and len(a.mean) == 2
    assert a.crop_pad == 1 and a.source.startswith("npz:")


def test_missing_test_file_is_named(tmp_path: Path) -> None:
    np.savez(tmp_path / "mine-train.npz", x=np.zeros((4, 8, 8, 1), np.uint8), y=np.zeros(4, np.int64))
    with pytest.raises(DataError, match="mine-test.npz is missing"):
        load_arrays(DataConfig(dataset="mine", root=str(tmp_path)))


def test_malformed_archive_is_named(tmp_path: Path) -> None:
    np.savez(tmp_path / "mine-train.npz", images=np.zeros((4, 8, 8, 1), np.uint8))
    np.savez(tmp_path / "mine-test.npz", x=np.zeros((4, 8, 8, 1), np.uint8), y=np.zeros(4, np.int64))
    with pytest.raises(DataError, match="mine-train.npz"):
        load_arrays(DataConfig(dataset="mine", root=str(tmp_path)))


def test_synthetic_is_the_same_for_every_run_and_class_structured() -> None:
    cfg = DataConfig(
        dataset="synthetic", image_size=8, channels=3, num_classes=4, synthetic_train=200, synthetic_test=50
    )
    a, b = load_arrays(cfg), load_arrays(cfg)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.x_train.dtype == torch.uint8 and a.x_train.shape == (200, 3, 8, 8) and a.num_classes == 4
    # class means differ more than images of one class differ from their own mean would suggest
    means = torch.stack([a.x_train[a.y_train == k].float().mean(0) for k in range(4)])
    assert (means[0] - means[1]).abs().mean() > 5


def test_split_and_subsets_follow_the_seed() -> None:
    cfg = DataConfig(train_subset=50, test_subset=20, val_fraction=0.1)
    one = split_indices(100, 40, cfg, torch.Generator().manual_seed(1))
    same = split_indices(100, 40, cfg, torch.Generator().manual_seed(1))
    other = split_indices(100, 40, cfg, torch.Generator().manual_seed(2))
    assert (len(one.train), len(one.val), len(one.test)) == (45, 5, 20)
    assert not set(one.train.tolist()) & set(one.val.tolist())
    assert torch.equal(one.train, same.train) and torch.equal(one.test, same.test)
    assert not torch.equal(one.train, other.train)


def test_fashion_mnist_from_shared_data(shared_data: Path) -> None:
    a = load_arrays(DataConfig(dataset="fashion_mnist", root=str(shared_data)))
    assert a.x_train.shape == (60000, 1, 28, 28) and a.num_classes == 10
    assert a.mean == (0.2860,) and a.crop_pad == 2 and a.flip
