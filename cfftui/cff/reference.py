"""A loop written the way the reference implementation trains (science.md §2), for the benchmark's baseline.

Per-image torchvision transforms in a DataLoader, nn.MultiheadAttention with its default
need_weights output, one forward per view, the loss's masks rebuilt on every call, `.item()`
after every block and foreach AdamW, all in fp32. Only the benchmark and its tests use it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class RefBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim), nn.Dropout(0.0)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm1(x)
        x = x + self.attn(out, out, out)[0]  # need_weights=True: the averaged weights are discarded
        return x + self.mlp(self.norm2(x))


class PosEmbed(nn.Module):
    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, tokens, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pos


def build_reference(
    *,
    image_size: int,
    channels: int,
    patch: int,
    dim: int,
    heads: int,
    depth: int,
    mlp_ratio: float,
    seed: int,
) -> nn.ModuleList:
    """The reference's layers, initialised by the global RNG under manual_seed(seed) (then restored)."""
    tokens = (image_size // patch) ** 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = [
            nn.Sequential(
                nn.Linear(channels * patch * patch, dim),
                nn.ReLU(),
                PosEmbed(tokens, dim),
                RefBlock(dim, heads, mlp_ratio),
            )
        ]
        layers += [RefBlock(dim, heads, mlp_ratio) for _ in range(depth - 1)]
    return nn.ModuleList(layers)


RENAMES = (
    ("attn.in_proj_weight", "qkv.weight"),
    ("attn.in_proj_bias", "qkv.bias"),
    ("attn.out_proj.", "proj."),
    ("mlp.0.", "fc1."),
    ("mlp.3.", "fc2."),
)


def as_fast_state_dict(ref_layer: nn.Module, index: int) -> dict[str, torch.Tensor]:
    """A reference layer's weights under the names of cfftui.cff.model's layer `index`."""
    out = {}
    for key, value in ref_layer.state_dict().items():
        if index == 0:
            key = {"0.weight": "embed.weight", "0.bias": "embed.bias", "2.pos": "pos"}.get(key, key)
            key = "block." + key[2:] if key.startswith("3.") else key
        for old, new in RENAMES:
            key = key.replace(old, new)
        out[key] = value
    return out


def ref_supmcon(
    features: list[torch.Tensor], labels: torch.Tensor, *, temperature: float, margin: float, mode: str
) -> torch.Tensor:
    """The reference's SupMCon: masks built on every call, clamp applied in place before the softmax."""
    b = labels.shape[0]
    z = nn.functional.normalize(torch.cat(features), dim=1)
    labels = labels.view(-1, 1)
    mask = torch.eq(labels, labels.T).float().repeat(2, 2)
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(2 * b, device=z.device).view(-1, 1), 0)
    mask = mask * logits_mask
    sim = z @ z.T
    if mode == "clamp":
        sim = torch.where(mask > 0, torch.clamp(sim + margin, max=1.0), sim)
    logits = sim / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask.sum(1).clamp(min=1)
    if mode == "subtract":
        mean_log_prob_pos = mean_log_prob_pos - margin
    return -mean_log_prob_pos.view(2, b).mean()


def ref_optimizers(
    layers: nn.ModuleList, *, lr: float, weight_decay: float, betas: tuple[float, float]
) -> list[torch.optim.Optimizer]:
    return [
        torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay, betas=betas, foreach=True)
        for layer in layers
    ]


def ref_step(
    layers: nn.ModuleList,
    opts: list[torch.optim.Optimizer],
    x1: torch.Tensor,
    x2: torch.Tensor,
    labels: torch.Tensor,
    *,
    margins: list[float],
    temperature: float,
    mode: str,
) -> list[float]:
    """One reference stage-1 step: two forwards per layer, a host sync per layer."""
    losses = []
    h1, h2 = x1, x2
    for layer, opt, margin in zip(layers, opts, margins, strict=True):
        h1, h2 = layer(h1.detach()), layer(h2.detach())
        loss = ref_supmcon(
            [h1.mean(1), h2.mean(1)], labels, temperature=temperature, margin=margin, mode=mode
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


class TwoViews(Dataset[Any]):
    """The reference's CustomTensorDataset: per-image transforms, two independent views per sample."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        pad: int,
        flip: bool,
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> None:
        from torchvision.transforms import v2

        self.images, self.labels = images, labels
        steps: list[Any] = [v2.RandomCrop(images.shape[-1], padding=pad)]
        if flip:
            steps.append(v2.RandomHorizontalFlip())
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
        self.transform = v2.Compose(steps)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.images[i]
        return self.transform(x), self.transform(x), self.labels[i]


def ref_loader(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    pad: int,
    flip: bool,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    seed: int,
) -> DataLoader[Any]:
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(
        TwoViews(images, labels, pad=pad, flip=flip, mean=mean, std=std),
        batch_size=batch_size,
        shuffle=True,
        num_workers=0,
        generator=gen,
    )
