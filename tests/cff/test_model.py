"""The reference ViT: parameter counts, shapes, and weights equal to an nn.MultiheadAttention copy."""

from __future__ import annotations

import math

import pytest
import torch

from cfftui.cff.model import build_encoder, build_head, count_parameters, patchify
from cfftui.cff.reference import as_fast_state_dict, build_reference
from cfftui.spec import ModelConfig, stage1_flops_per_image


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_reference_configuration_has_678410_parameters() -> None:
    enc = build_encoder(ModelConfig(), image_size=32, channels=3, gen=gen())
    head = build_head(128, 10, gen=gen())
    assert count_parameters(enc.layers[1]) == 132_480
    assert count_parameters(enc) == 676_864
    assert count_parameters(enc, head) == 678_410


@pytest.mark.parametrize(("size", "channels", "tokens", "patch_dim"), [(32, 3, 64, 48), (28, 1, 49, 16)])
def test_shapes_for_cifar_and_fashion_mnist(size: int, channels: int, tokens: int, patch_dim: int) -> None:
    cfg = ModelConfig(embed_dim=32, heads=4, depth=2)
    enc = build_encoder(cfg, image_size=size, channels=channels, gen=gen())
    patches = patchify(torch.rand(5, channels, size, size), 4)
    assert patches.shape == (5, tokens, patch_dim)
    assert enc.layers[0].embed.in_features == patch_dim
    h = enc.layers[0](patches)
    assert h.shape == (5, tokens, 32)
    assert enc(patches).shape == (5, 32)


def test_patchify_uses_channel_then_row_then_column_order() -> None:
    img = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    p = patchify(img, 2)
    # token 1 is the top-right patch; its first values are channel 0's 2x2 block, then channel 1's
    assert p[0, 1].tolist() == [2, 3, 6, 7, 18, 19, 22, 23]


def test_init_is_bitwise_equal_to_a_multihead_attention_copy_built_with_the_global_rng() -> None:
    cfg = ModelConfig(embed_dim=32, heads=4, depth=3)
    ours = build_encoder(cfg, image_size=16, channels=3, gen=gen(7))
    ref = build_reference(image_size=16, channels=3, patch=4, dim=32, heads=4, depth=3, mlp_ratio=2.0, seed=7)
    for i, (mine, theirs) in enumerate(zip(ours.layers, ref, strict=True)):
        expected = as_fast_state_dict(theirs, i)
        got = mine.state_dict()
        assert expected.keys() == got.keys()
        assert all(torch.equal(got[k], expected[k]) for k in got)


def test_forward_matches_the_multihead_attention_copy() -> None:
    cfg = ModelConfig(embed_dim=32, heads=4, depth=2)
    ours = build_encoder(cfg, image_size=16, channels=3, gen=gen(3), dtype=torch.float64)
    with torch.random.fork_rng(devices=[]):
        torch.set_default_dtype(torch.float64)
        try:
            ref = build_reference(
                image_size=16, channels=3, patch=4, dim=32, heads=4, depth=2, mlp_ratio=2.0, seed=3
            )
        finally:
            torch.set_default_dtype(torch.float32)
    x = torch.randn(4, 16, 48, dtype=torch.float64)
    a, b = x, x
    for mine, theirs in zip(ours.layers, ref, strict=True):
        a, b = mine(a), theirs(b)
        assert torch.allclose(a, b, atol=1e-12, rtol=0)


def test_the_init_draws_only_from_the_given_generator() -> None:
    before = torch.random.get_rng_state()
    build_encoder(ModelConfig(embed_dim=16, heads=2, depth=2), image_size=8, channels=1, gen=gen())
    assert torch.equal(before, torch.random.get_rng_state())


def test_flops_per_image_at_the_reference_configuration() -> None:
    mflop = stage1_flops_per_image(tokens=64, dim=128, depth=5, mlp_ratio=2.0, patch_dim=48, batch_size=512) / 1e6
    assert math.isclose(mflop, 578.8, abs_tol=0.1)
