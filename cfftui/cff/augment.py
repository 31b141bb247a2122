"""Batched on-device augmentation: one gather crops, flips and selects a batch; per-image parameters.

Every random parameter is drawn per image from the caller's augmentation generator, on the
device that holds the uint8 dataset; nothing loops over images and nothing syncs with the host.
Normalisation ((x/255 - mean) / std with the dataset's constants) comes after the crop, so padded
pixels are black (0) before normalisation, as in the reference's zero-padded RandomCrop.

Levels (`data.augment`), with P the dataset's crop padding (cifar10 12, cifar100 4, svhn 4,
fashion_mnist and mnist 2, others side // 8) and flips only where the dataset allows them
(not svhn or mnist, whose digits are not mirror-symmetric):

- none:       the image as it is (the probe's test images always get this).
- standard:   random crop of the original size from the image zero-padded by P on every side,
              then a horizontal flip with probability 1/2 (the reference's train transform).
- strong:     standard with padding 2P, then brightness and contrast jitter: pixel values
              x in [0, 1] become clamp((x - mean_img) * c + mean_img + b, 0, 1) with contrast
              c ~ U(0.7, 1.3) and brightness b ~ U(-0.15, 0.15) per image.
- aggressive: standard with padding 3P, jitter with c ~ U(0.5, 1.5) and b ~ U(-0.3, 0.3), then
              cutout: one square of side = image side / 2, centred uniformly on the image
              (clipped at the border), set to black. This is the hard end of the SVHN sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LEVELS = ("none", "standard", "strong", "aggressive")
PAD_FACTOR = {"none": 0, "standard": 1, "strong": 2, "aggressive": 3}
JITTER = {"strong": (0.3, 0.15), "aggressive": (0.5, 0.3)}
"""Level -> (contrast half-range, brightness half-range)."""


def gather_crop_flip(
    data: torch.Tensor, index: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor, pad: int
) -> torch.Tensor:
    """data[index] zero-padded by `pad`, cropped at (dy, dx) of the padded image, flipped where `flip`.

    Returns [B, H, W, C] uint8 in one advanced-indexing gather: out-of-image reads are clamped
    to the border and then masked to 0, which equals cropping from a zero-padded copy.
    """
    _, _, h, w = data.shape
    rows = dy[:, None] - pad + torch.arange(h, device=data.device)
    ar = torch.arange(w, device=data.device)
    cols = dx[:, None] - pad + torch.where(flip[:, None], ar.flip(0), ar)
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    picked = data[index[:, None, None], :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]
    return picked * inside[..., None]


@dataclass
class Augmenter:
    """Turns dataset indices into normalised patch tensors [B, N, C*p*p] for one augmentation level."""

    data: torch.Tensor
    """The dataset's uint8 images [N, C, H, W], on the training device."""
    level: str
    crop_pad: int
    flip: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]
    patch: int

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"unknown augmentation level {self.level!r}")
        dev = self.data.device
        # Built once: a host-to-device copy per call would be a sync (and illegal in a graph).
        self._scale = 1.0 / (255.0 * torch.tensor(self.std, device=dev))
        self._shift = torch.tensor(self.mean, device=dev) / torch.tensor(self.std, device=dev)
        self.pad = self.crop_pad * PAD_FACTOR[self.level]

    def __call__(
        self, index: torch.Tensor, gen: torch.Generator | None, *, augment: bool = True
    ) -> torch.Tensor:
        level = self.level if augment else "none"
        b, dev = len(index), self.data.device
        _, c, h, w = self.data.shape
        if level == "none":
            images = self.data[index].permute(0, 2, 3, 1)
        else:
            pad = self.pad
            dy = torch.randint(0, 2 * pad + 1, (b,), device=dev, generator=gen)
            dx = torch.randint(0, 2 * pad + 1, (b,), device=dev, generator=gen)
            if self.flip:
                flip = torch.rand(b, device=dev, generator=gen) < 0.5
            else:
                flip = torch.zeros(b, dtype=torch.bool, device=dev)
            images = gather_crop_flip(self.data, index, dy, dx, flip, pad)
        x = images.float()  # [B, H, W, C], values 0..255
        if level in JITTER:
            x = self._jitter(x, gen, *JITTER[level])
        if level == "aggressive":
            x = self._cutout(x, gen)
        x = x * self._scale - self._shift
        p = self.patch
        x = x.reshape(b, h // p, p, w // p, p, c).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(b, (h // p) * (w // p), c * p * p)

    def _jitter(
        self, x: torch.Tensor, gen: torch.Generator | None, contrast: float, brightness: float
    ) -> torch.Tensor:
        b, dev = x.shape[0], x.device
        c = 1 + contrast * (2 * torch.rand(b, 1, 1, 1, device=dev, generator=gen) - 1)
        bright = 255 * brightness * (2 * torch.rand(b, 1, 1, 1, device=dev, generator=gen) - 1)
        mean_img = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean_img) * c + mean_img + bright).clamp(0, 255)

    def _cutout(self, x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        b, h, w, _ = x.shape
        dev, side = x.device, max(1, h // 2)
        cy = torch.randint(0, h, (b, 1), device=dev, generator=gen)
        cx = torch.randint(0, w, (b, 1), device=dev, generator=gen)
        ys, xs = torch.arange(h, device=dev), torch.arange(w, device=dev)
        in_y = (ys >= cy - side // 2) & (ys < cy - side // 2 + side)
        in_x = (xs >= cx - side // 2) & (xs < cx - side // 2 + side)
        hole = in_y[:, :, None] & in_x[:, None, :]
        return x * ~hole[..., None]
