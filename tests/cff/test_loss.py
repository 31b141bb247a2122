"""The margin SupCon loss: Proposition 4.1, clamp saturation, CAR, numerical safety."""

from __future__ import annotations

import itertools

import pytest
import torch

from cfftui.cff.loss import PairMasks, margin_supcon, margin_supcon_from_similarity
from cfftui.cff.reference import ref_supmcon


def draw(
    gen: torch.Generator, b: int = 12, d: int = 8, classes: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    feats = torch.randn(2 * b, d, generator=gen, dtype=torch.float64)
    labels = torch.randint(classes, (b,), generator=gen)
    return feats, labels


def loss_and_grad(
    feats: torch.Tensor, labels: torch.Tensor, mode: str, margin: float
) -> tuple[float, torch.Tensor]:
    f = feats.clone().requires_grad_(True)
    loss, _ = margin_supcon(f, PairMasks.from_labels(labels), temperature=0.15, margin=margin, mode=mode)
    loss.backward()
    return loss.item(), f.grad


def test_subtract_and_none_have_identical_gradients_and_losses_differ_by_the_margin() -> None:
    gen = torch.Generator().manual_seed(0)
    for draw_no in range(200):
        feats, labels = draw(
            gen,
            b=int(torch.randint(2, 20, (1,), generator=gen)),
            classes=int(torch.randint(1, 6, (1,), generator=gen)),
        )
        margin = float(torch.rand(1, generator=gen, dtype=torch.float64)) * 0.8
        loss_sub, grad_sub = loss_and_grad(feats, labels, "subtract", margin)
        loss_none, grad_none = loss_and_grad(feats, labels, "none", margin)
        assert torch.equal(grad_sub, grad_none), draw_no
        assert loss_sub - loss_none == pytest.approx(margin, abs=1e-12)


def test_clamp_gives_saturated_positive_pairs_exactly_zero_gradient() -> None:
    gen = torch.Generator().manual_seed(1)
    feats, labels = draw(gen, b=10, classes=2)
    z = torch.nn.functional.normalize(feats, dim=1)
    sim = (z @ z.T).detach().requires_grad_(True)
    masks = PairMasks.from_labels(labels)
    margin = 0.9  # large enough that some positives saturate and some do not
    loss, _ = margin_supcon_from_similarity(sim, masks, temperature=0.15, margin=margin, mode="clamp")
    loss.backward()
    saturated = masks.pos & (sim.detach() + margin >= 1)
    free = masks.pos & ~saturated
    assert saturated.any() and free.any()
    assert torch.all(sim.grad[saturated] == 0)
    assert torch.all(sim.grad[free] != 0)


def test_car_equals_a_brute_force_count_in_every_mode() -> None:
    gen = torch.Generator().manual_seed(2)
    for mode in ("clamp", "subtract", "none"):
        feats, labels = draw(gen, b=9, classes=3)
        margin = 0.7
        _, car = margin_supcon(
            feats, PairMasks.from_labels(labels), temperature=0.15, margin=margin, mode=mode
        )
        z = torch.nn.functional.normalize(feats, dim=1)
        both = torch.cat([labels, labels]).tolist()
        positives = active = 0
        for i, a in itertools.permutations(range(len(both)), 2):  # ordered pairs, self excluded
            if both[i] == both[a]:
                positives += 1
                active += float(z[i] @ z[a]) + margin >= 1
        assert car.item() == pytest.approx(active / positives, abs=1e-12)


@pytest.mark.parametrize("mode", ["clamp", "subtract", "none"])
def test_loss_equals_the_reference_formula(mode: str) -> None:
    gen = torch.Generator().manual_seed(3)
    feats, labels = draw(gen, b=16, classes=4)
    ours, _ = margin_supcon(feats, PairMasks.from_labels(labels), temperature=0.15, margin=0.4, mode=mode)
    ref = ref_supmcon([feats[:16], feats[16:]], labels, temperature=0.15, margin=0.4, mode=mode)
    assert ours.item() == pytest.approx(ref.item(), abs=1e-12)


def test_anchors_without_positives_give_no_nan() -> None:
    # One view per image would leave singletons; with two views use a zero margin and all-distinct
    # labels, then also a degenerate zero feature vector.
    feats = torch.zeros(8, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.arange(4)
    masks = PairMasks.from_labels(labels)
    masks_no_pos = PairMasks(
        eye=masks.eye,
        pos=torch.zeros_like(masks.pos),
        pos_count=torch.ones(8),
        has_pos=torch.zeros(8, dtype=torch.bool),
        pos_total=torch.tensor(1),
    )
    for m in (masks, masks_no_pos):
        loss, car = margin_supcon(feats, m, temperature=0.15, margin=0.4, mode="clamp")
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(car) and torch.isfinite(feats.grad).all()


def test_low_precision_features_are_scored_in_fp32() -> None:
    feats = torch.randn(16, 8).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = margin_supcon(
            feats, PairMasks.from_labels(torch.arange(8) % 3), temperature=0.15, margin=0.4, mode="clamp"
        )
    assert loss.dtype == torch.float32
