"""Latent tools: seeded z, lerp/slerp paths (exact endpoints), arithmetic, diffusion noise paths."""
from __future__ import annotations

import pytest
import torch

from nodegraph.node import Context
from nodes.gan.latents import arithmetic, interpolate, lerp, seeded_normal, slerp


def test_slerp_endpoints_equal_the_inputs():
    a, b = seeded_normal(1, (3, 4, 8, 8)), seeded_normal(2, (3, 4, 8, 8))
    path = interpolate(a, b, 7, "slerp")
    assert path.shape == (21, 4, 8, 8)
    assert torch.equal(path[:3], a) and torch.equal(path[-3:], b)
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    # the float formula at t = 0 / 1 (not the shortcut) lands on the endpoints too
    assert torch.allclose(slerp(a, b, 1e-12), a, atol=1e-6) and torch.allclose(slerp(a, b, 1 - 1e-12), b, atol=1e-6)


def test_slerp_keeps_gaussian_norms_where_lerp_shrinks_them():
    a, b = seeded_normal(1, (16, 512)), seeded_normal(2, (16, 512))
    mid_s, mid_l = slerp(a, b, 0.5), lerp(a, b, 0.5)
    ratio_s = (mid_s.norm(dim=1) / a.norm(dim=1)).mean()
    ratio_l = (mid_l.norm(dim=1) / a.norm(dim=1)).mean()
    assert abs(ratio_s - 1) < 0.05 and abs(ratio_l - 0.707) < 0.05
    # between unit vectors, the slerp midpoint is a unit vector at equal angles from both ends
    a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    mid_s = slerp(a, b, 0.5)
    assert torch.allclose(mid_s.norm(dim=1), torch.ones(16), atol=1e-5)
    cos_a = torch.nn.functional.cosine_similarity(mid_s, a)
    cos_b = torch.nn.functional.cosine_similarity(mid_s, b)
    assert torch.allclose(cos_a, cos_b, atol=1e-5)


def test_slerp_of_parallel_vectors_falls_back_to_lerp():
    a = torch.ones(1, 4)
    assert torch.allclose(slerp(a, 2 * a, 0.5), 1.5 * a)


def test_arithmetic_and_seeds():
    a, b, c = (seeded_normal(s, (3, 8, 1, 1)) for s in (1, 2, 3))
    assert torch.allclose(arithmetic(a, b, c), a - b + c)
    averaged = arithmetic(a, b, c, average_batches=True)
    assert averaged.shape == (1, 8, 1, 1) and torch.allclose(averaged, (a - b + c).mean(0, keepdim=True), atol=1e-6)
    assert torch.equal(seeded_normal(5, (2, 3)), seeded_normal(5, (2, 3)))
    assert seeded_normal(5, (2, 3), truncation=0.5).abs().max() <= 0.5
    with pytest.raises(ValueError, match="batch sizes"):
        arithmetic(a, b[:2], c)


def test_noise_interpolate_starts_on_the_samplers_noise_for_the_seed():
    """Its ends are what a ComfyUI-style sampler draws for the seeds: randn from torch.manual_seed(seed)."""
    from nodes.gan.nodes import NoiseInterpolate

    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    (out,) = NoiseInterpolate().run(Context(), latent, 11, 12, 5, "slerp", 1.0)
    assert out["samples"].shape == (5, 4, 8, 8)
    assert torch.equal(out["samples"][0:1], torch.randn(1, 4, 8, 8, generator=torch.manual_seed(11)))
    assert torch.equal(out["samples"][4:5], torch.randn(1, 4, 8, 8, generator=torch.manual_seed(12)))


def test_latent_nodes():
    """Interpolate two diffusion-style latents; a - a + b is b."""
    from nodes.gan.nodes import GANLatentInterpolate, LatentArithmetic

    a = {"samples": seeded_normal(1, (1, 4, 4, 4))}
    b = {"samples": seeded_normal(2, (1, 4, 4, 4))}
    (path,) = GANLatentInterpolate().run(Context(), a, b, 4, "lerp")
    assert torch.allclose(path["samples"][1], a["samples"][0] * 2 / 3 + b["samples"][0] / 3, atol=1e-6)
    (moved,) = LatentArithmetic().run(Context(), a, a, b, 1.0, False)
    assert torch.allclose(moved["samples"], b["samples"])

