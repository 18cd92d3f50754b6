"""Latent tools from the GAN literature: seeded z, lerp / slerp paths, vector arithmetic.

They work on any tensor batch: GAN z vectors [B, nz, 1, 1] and diffusion latents / initial noise
[B, C, h, w] alike. Interpolation is per batch item (each item flattened to one vector).
"""
from __future__ import annotations

import torch

METHODS = ("slerp", "lerp")


def seeded_normal(seed: int, shape: tuple[int, ...], truncation: float = 0.0) -> torch.Tensor:
    """Standard normal samples from a CPU generator (so a seed gives the same z on any device).

    truncation > 0 resamples every value with |v| > truncation (the truncation trick)."""
    generator = torch.Generator("cpu").manual_seed(int(seed))
    z = torch.randn(shape, generator=generator)
    if truncation > 0:
        for _ in range(1000):
            outside = z.abs() > truncation
            if not outside.any():
                break
            z[outside] = torch.randn(int(outside.sum()), generator=generator)
    return z


def lerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    if t == 0.0:
        return a.clone()
    if t == 1.0:
        return b.clone()
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: float, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation per batch item (White 2016); falls back to lerp for parallel vectors.

    Keeps the norm statistics of Gaussian vectors, which lerp shrinks towards the middle."""
    if t == 0.0:
        return a.clone()
    if t == 1.0:
        return b.clone()
    shape, dtype = a.shape, a.dtype
    fa = a.reshape(a.shape[0], -1).double()
    fb = b.reshape(b.shape[0], -1).double()
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(1e-30)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    parallel = sin.abs() < eps
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    wa = torch.where(parallel, torch.full_like(sin, 1.0 - t), torch.sin((1.0 - t) * omega) / safe)
    wb = torch.where(parallel, torch.full_like(sin, t), torch.sin(t * omega) / safe)
    out = wa[:, None] * fa + wb[:, None] * fb
    return out.reshape(shape).to(dtype)


def interpolate(a: torch.Tensor, b: torch.Tensor, steps: int, method: str = "slerp") -> torch.Tensor:
    """`steps` points from a to b inclusive, as one batch ordered by step: [steps * B, ...]."""
    if a.shape != b.shape:
        if a.shape[1:] == b.shape[1:] and 1 in (a.shape[0], b.shape[0]):
            a, b = torch.broadcast_tensors(a, b)
        else:
            raise ValueError(f"cannot interpolate between shapes {tuple(a.shape)} and {tuple(b.shape)}")
    if method not in METHODS:
        raise ValueError(f"unknown interpolation {method!r} (expected one of {METHODS})")
    fn = slerp if method == "slerp" else lerp
    ts = [k / (steps - 1) for k in range(steps)] if steps > 1 else [0.0]
    return torch.cat([fn(a, b, t) for t in ts], dim=0)


def arithmetic(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, average_batches: bool = False,
               strength: float = 1.0) -> torch.Tensor:
    """a - b + c (Radford et al.: "smiling woman" - "woman" + "man"), each input's batch optionally
    averaged first (they average three exemplars per concept). Batches of 1 broadcast."""
    if average_batches:
        a, b, c = (x.mean(0, keepdim=True) for x in (a, b, c))
    if not (a.shape[1:] == b.shape[1:] == c.shape[1:]):
        raise ValueError(f"latent shapes differ: {tuple(a.shape)}, {tuple(b.shape)}, {tuple(c.shape)}")
    sizes = {x.shape[0] for x in (a, b, c)} - {1}
    if len(sizes) > 1:
        raise ValueError(f"batch sizes {a.shape[0]}, {b.shape[0]}, {c.shape[0]} do not match (1 broadcasts)")
    return a + strength * (c - b)
