"""On-device augmentation: the one-gather crop+flip equals a straightforward per-image pipeline."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cfftui.cff.augment import LEVELS, Augmenter, gather_crop_flip
from cfftui.cff.model import patchify


def per_image(
    data: torch.Tensor, index: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int
) -> torch.Tensor:
    out = []
    _, _, h, w = data.shape
    for i, y0, x0, f in zip(index.tolist(), dy.tolist(), dx.tolist(), flip.tolist(), strict=True):
        img = F.pad(data[i], (pad, pad, pad, pad))[:, y0 : y0 + h, x0 : x0 + w]
        out.append(img.flip(-1) if f else img)
    return torch.stack(out)


@pytest.mark.parametrize(("channels", "size", "pad"), [(3, 32, 12), (1, 28, 2), (3, 8, 3)])
def test_gather_crop_flip_is_pixel_identical_to_pad_crop_flip(channels: int, size: int, pad: int) -> None:
    g = torch.Generator().manual_seed(0)
    data = torch.randint(1, 256, (40, channels, size, size), generator=g, dtype=torch.uint8)
    index = torch.randint(0, 40, (64,), generator=g)
    dy = torch.randint(0, 2 * pad + 1, (64,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (64,), generator=g)
    flip = torch.rand(64, generator=g) < 0.5
    got = gather_crop_flip(data, index, dy, dx, flip, pad).permute(0, 3, 1, 2)
    assert torch.equal(got, per_image(data, index, dy, dx, flip, pad))


def test_none_level_is_the_normalised_image_in_patches() -> None:
    data = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    aug = Augmenter(data, "none", 2, True, mean, std, patch=4)
    expected = (data.float() / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(aug(torch.arange(6), None), patchify(expected, 4), atol=1e-5)


@pytest.mark.parametrize("level", LEVELS)
def test_levels_are_deterministic_per_generator_and_vary_per_image(level: str) -> None:
    data = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8).repeat(32, 1, 1, 1)
    aug = Augmenter(data, level, 2, True, (0.5,) * 3, (0.25,) * 3, patch=4)
    index = torch.arange(32)
    a = aug(index, torch.Generator().manual_seed(1))
    b = aug(index, torch.Generator().manual_seed(1))
    assert a.shape == (32, 16, 48) and torch.equal(a, b)
    distinct = len({tuple(row.flatten().tolist()) for row in a})
    assert distinct == 1 if level == "none" else distinct > 16


def test_no_flip_for_digit_datasets() -> None:
    data = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    aug = Augmenter(data, "standard", 0, False, (0.5,), (0.25,), patch=4)
    plain = Augmenter(data, "none", 0, False, (0.5,), (0.25,), patch=4)
    index = torch.arange(16)
    assert torch.equal(aug(index, torch.Generator().manual_seed(0)), plain(index, None))
