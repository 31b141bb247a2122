"""The reference CFF Vision Transformer (science.md §2.1) with SDPA attention and generator-driven init."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, N, C*p*p] raw pixel patches in the reference's (c, py, px) order."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


def _init_linear(layer: nn.Linear, gen: torch.Generator) -> None:
    # Same draws, in the same order, as nn.Linear.reset_parameters with the global RNG.
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
    if layer.bias is not None:
        bound = 1 / math.sqrt(layer.weight.shape[1]) if layer.weight.shape[1] > 0 else 0.0
        nn.init.uniform_(layer.bias, -bound, bound, generator=gen)


class Block(nn.Module):
    """Pre-LN transformer block: x + MHA(LN(x)), then + MLP(LN(.)); one fused qkv Linear and SDPA."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = dropout

    def reset_parameters(self, gen: torch.Generator) -> None:
        # nn.MultiheadAttention's order: out_proj's Linear init, then xavier on the stacked
        # in_proj weight, then both biases zeroed; the MLP Linears follow.
        _init_linear(self.proj, gen)
        nn.init.xavier_uniform_(self.qkv.weight, generator=gen)
        nn.init.zeros_(self.qkv.bias)
        nn.init.zeros_(self.proj.bias)
        for norm in (self.norm1, self.norm2):
            nn.init.ones_(norm.weight)
            nn.init.zeros_(norm.bias)
        _init_linear(self.fc1, gen)
        _init_linear(self.fc2, gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, n, d))
        h = F.gelu(self.fc1(self.norm2(x)))
        h = F.dropout(h, self.dropout, self.training)
        return x + F.dropout(self.fc2(h), self.dropout, self.training)


class Stem(nn.Module):
    """Layer 0: Linear(C*p*p -> E), ReLU, learned positional embedding (std 1), then a block."""

    def __init__(
        self, patch_dim: int, tokens: int, dim: int, heads: int, mlp_ratio: float, dropout: float
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(patch_dim, dim)
        self.pos = nn.Parameter(torch.empty(1, tokens, dim))
        self.block = Block(dim, heads, mlp_ratio, dropout)

    def reset_parameters(self, gen: torch.Generator) -> None:
        _init_linear(self.embed, gen)
        with torch.no_grad():
            self.pos.copy_(torch.randn(self.pos.shape, generator=gen, dtype=self.pos.dtype))
        self.block.reset_parameters(gen)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.block(F.relu(self.embed(patches)) + self.pos)


class Encoder(nn.Module):
    """The stack of locally trained layers; layer l maps layer l-1's (detached) tokens to its own."""

    def __init__(
        self,
        *,
        image_size: int,
        channels: int,
        patch: int,
        dim: int,
        heads: int,
        depth: int,
        mlp_ratio: float,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"patch size {patch} does not divide image size {image_size}")
        if dim % heads:
            raise ValueError(f"{heads} heads do not divide width {dim}")
        self.patch = patch
        self.tokens = (image_size // patch) ** 2
        self.dim = dim
        layers: list[nn.Module] = [
            Stem(channels * patch * patch, self.tokens, dim, heads, mlp_ratio, dropout)
        ]
        layers += [Block(dim, heads, mlp_ratio, dropout) for _ in range(depth - 1)]
        self.layers = nn.ModuleList(layers)

    def reset_parameters(self, gen: torch.Generator) -> None:
        for layer in self.layers:
            layer.reset_parameters(gen)  # type: ignore[operator]

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Final-layer token mean (the probe's feature); no gradient crosses layers."""
        h = patches
        for layer in self.layers:
            h = layer(h.detach())
        return h.mean(1)


class ProbeHead(nn.Module):
    """The stage-2 classifier: LayerNorm(E) -> Linear(E, classes)."""

    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, classes)

    def reset_parameters(self, gen: torch.Generator) -> None:
        nn.init.ones_(self.norm.weight)
        nn.init.zeros_(self.norm.bias)
        _init_linear(self.fc, gen)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(features))


def build_encoder(
    model_cfg: object,
    *,
    image_size: int,
    channels: int,
    gen: torch.Generator,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> Encoder:
    """An Encoder from a spec.ModelConfig, initialised from `gen` only (built on meta: no global RNG)."""
    with torch.device("meta"):
        enc = Encoder(
            image_size=image_size,
            channels=channels,
            patch=model_cfg.patch_size,  # type: ignore[attr-defined]
            dim=model_cfg.embed_dim,
            heads=model_cfg.heads,
            depth=model_cfg.depth,  # type: ignore[attr-defined]
            mlp_ratio=model_cfg.mlp_ratio,
            dropout=model_cfg.dropout,
        )  # type: ignore[attr-defined]
    enc = enc.to_empty(device="cpu")
    if dtype is not None:
        enc = enc.to(dtype)
    # Draw on CPU so the same seed gives the same weights on every device.
    enc.reset_parameters(gen)
    return enc.to(device)


def build_head(
    dim: int, classes: int, *, gen: torch.Generator, device: torch.device | str = "cpu"
) -> ProbeHead:
    with torch.device("meta"):
        head = ProbeHead(dim, classes)
    head = head.to_empty(device="cpu")
    head.reset_parameters(gen)
    return head.to(device)


def count_parameters(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())
