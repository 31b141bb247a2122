"""The margin supervised contrastive loss (clamp / subtract / none) and its clamp activation rate."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOW_PRECISION = (torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class PairMasks:
    """Label masks of one step's 2B anchors (view 1 then view 2), built once and shared by every layer."""

    eye: torch.Tensor
    """[2B, 2B] bool: the self pairs."""
    pos: torch.Tensor
    """[2B, 2B] bool: same class, self excluded (the other view of the same image included)."""
    pos_count: torch.Tensor
    """[2B] float: positives per anchor, at least 1 so anchors without positives give 0, not NaN."""
    has_pos: torch.Tensor
    """[2B] bool: the anchor has a positive."""
    pos_total: torch.Tensor
    """0-dim int: ordered positive pairs in the batch (at least 1)."""

    @classmethod
    def from_labels(cls, labels: torch.Tensor) -> PairMasks:
        both = torch.cat([labels, labels])
        eye = torch.eye(len(both), dtype=torch.bool, device=labels.device)
        pos = (both[:, None] == both[None, :]) & ~eye
        count = pos.sum(1).float()
        return cls(
            eye=eye,
            pos=pos,
            pos_count=count.clamp(min=1),
            has_pos=count > 0,
            pos_total=pos.sum().clamp(min=1),
        )


def margin_supcon_from_similarity(
    sim: torch.Tensor, masks: PairMasks, *, temperature: float, margin: float, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and clamp activation rate from a cosine-similarity matrix (science.md §3.1, §8.2-3).

    clamp:    positives' similarities become min(s + m, 1), inside the softmax too (the reference);
    subtract: plain log-probabilities, then m subtracted from each anchor's mean over positives;
    none:     plain SupCon (Khosla et al. L_out).
    CAR is the share of ordered positive pairs with s + m >= 1, measured in every mode.
    """
    saturated = masks.pos & (sim + margin >= 1)
    car = saturated.sum().to(sim.dtype) / masks.pos_total.to(sim.dtype)
    if mode == "clamp":
        sim = torch.where(masks.pos, torch.clamp(sim + margin, max=1.0), sim)
    elif mode not in ("subtract", "none"):
        raise ValueError(f"unknown margin mode {mode!r}")
    logits = sim / temperature
    # The row max only keeps exp() in range; it cancels in the log-probability, so no gradient.
    logits = logits - logits.max(1, keepdim=True).values.detach()
    log_den = torch.logsumexp(logits.masked_fill(masks.eye, float("-inf")), dim=1, keepdim=True)
    log_prob = logits - log_den
    mean_pos = (log_prob * masks.pos).sum(1) / masks.pos_count
    if mode == "subtract":
        mean_pos = torch.where(masks.has_pos, mean_pos - margin, mean_pos)
    return -mean_pos.mean(), car.detach()


@contextmanager
def _ieee_matmul(device: torch.device) -> Iterator[None]:
    """TF32 off for the similarity matmul on CUDA (a no-op elsewhere)."""
    if device.type != "cuda" or not torch.backends.cuda.matmul.allow_tf32:
        yield
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = True


def margin_supcon(
    features: torch.Tensor, masks: PairMasks, *, temperature: float, margin: float, mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of one layer on its [2B, D] token means, always in at least fp32 (performance.md §3.2).

    Autocast (or TF32) would run the similarity matmul at low precision and flip clamp decisions
    near s = 1 - m, so both are switched off here and low-precision inputs are promoted.
    """
    with torch.autocast(device_type=features.device.type, enabled=False), _ieee_matmul(features.device):
        if features.dtype in LOW_PRECISION:
            features = features.float()
        z = F.normalize(features, dim=1)
        return margin_supcon_from_similarity(
            z @ z.T, masks, temperature=temperature, margin=margin, mode=mode
        )
