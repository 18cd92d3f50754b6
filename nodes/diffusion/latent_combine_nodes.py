"""Latent nodes that combine two latents (ComfyUI's nodes.py and comfy_extras/nodes_latent.py, nodes_mask.py):
paste, masked paste, blend, add, subtract, scale, interpolate.

Where the second latent has another size it is resized to the first's ("bilinear", centre-cropped to its
aspect; "bicubic" for LatentBlend) and, except in LatentBlend, cut or tiled to its batch size, as ComfyUI does.
"""
from __future__ import annotations

import torch

from nodegraph import (LATENT, MASK, Boolean, Float, Input, Int, Output, common_upscale, composite, node,
                       repeat_to_batch)

from .latent_nodes import MAX_RESOLUTION


def reshape_latent_to(shape: torch.Size, latent: torch.Tensor, repeat_batch: bool = True) -> torch.Tensor:
    """ComfyUI's reshape_latent_to: another size is resized (bilinear, centre crop), then the batch matched."""
    if latent.shape[1:] != shape[1:]:
        if latent.shape[1] != shape[1]:
            raise ValueError(f"samples2 has {latent.shape[1]} latent channels, samples1 {shape[1]} "
                             "(latents of different model families)")
        latent = common_upscale(latent, shape[-1], shape[-2], "bilinear", "center")
    return repeat_to_batch(latent, shape[0]) if repeat_batch else latent


@node(category="latent", display_name="Latent Composite")
class LatentComposite:
    """Paste samples_from into samples_to at (x, y) pixels, with an optional feathered edge (feather
    pixels of linear ramp on the sides that lie inside samples_to)."""
    inputs = [Input("samples_to", LATENT), Input("samples_from", LATENT),
              Int("x", 0, min=0, max=MAX_RESOLUTION, step=8), Int("y", 0, min=0, max=MAX_RESOLUTION, step=8),
              Int("feather", 0, min=0, max=MAX_RESOLUTION, step=8)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples_to, samples_from, x, y, feather):
        x, y, feather = x // 8, y // 8, feather // 8
        target = samples_to["samples"]
        out_samples = target.clone()
        source = repeat_to_batch(samples_from["samples"], target.shape[0])
        source = source[:, :, :max(0, target.shape[2] - y), :max(0, target.shape[3] - x)]
        h, w = source.shape[2], source.shape[3]
        if h == 0 or w == 0:
            return (dict(samples_to, samples=out_samples),)
        if feather == 0:
            out_samples[:, :, y:y + h, x:x + w] = source
        else:
            mask = torch.ones_like(source)
            for t in range(feather):
                ramp = (1.0 / feather) * (t + 1)  # ComfyUI's product order: the same float32 values
                if y != 0:
                    mask[:, :, t:t + 1, :] *= ramp
                if y + h < target.shape[2]:
                    mask[:, :, h - 1 - t:h - t, :] *= ramp
                if x != 0:
                    mask[:, :, :, t:t + 1] *= ramp
                if x + w < target.shape[3]:
                    mask[:, :, :, w - 1 - t:w - t] *= ramp
            region = out_samples[:, :, y:y + h, x:x + w]
            out_samples[:, :, y:y + h, x:x + w] = source * mask + region * (torch.ones_like(mask) - mask)
        return (dict(samples_to, samples=out_samples),)


@node(category="latent")
class LatentCompositeMasked:
    """Paste source into destination at (x, y) pixels where the mask is (the mask is resized to the
    source; without one, everywhere); resize_source first scales source to destination's size."""
    inputs = [Input("destination", LATENT), Input("source", LATENT),
              Int("x", 0, min=0, max=MAX_RESOLUTION, step=8), Int("y", 0, min=0, max=MAX_RESOLUTION, step=8),
              Boolean("resize_source", False), Input("mask", MASK, optional=True)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, destination, source, x, y, resize_source, mask=None):
        target = destination["samples"]
        if source["samples"].shape[1] != target.shape[1]:
            raise ValueError(f"source has {source['samples'].shape[1]} latent channels, destination {target.shape[1]}")
        pasted = composite(target.clone(), source["samples"].to(target), x, y, mask, 8, resize_source)
        return (dict(destination, samples=pasted),)


@node(category="_for_testing", display_name="Latent Blend")
class LatentBlend:
    """samples1 * blend_factor + samples2 * (1 - blend_factor); samples2 of another size is resized to
    samples1's (bicubic, centre crop) first."""
    inputs = [Input("samples1", LATENT), Input("samples2", LATENT), Float("blend_factor", 0.5, min=0.0, max=1.0, step=0.01)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples1, samples2, blend_factor):
        a, b = samples1["samples"], samples2["samples"]
        if a.shape != b.shape:
            b = common_upscale(b, a.shape[3], a.shape[2], "bicubic", "center")
        if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
            raise ValueError(f"samples2: a batch of {b.shape[0]} does not blend with samples1's {a.shape[0]}")
        return (dict(samples1, samples=a * blend_factor + b * (1 - blend_factor)),)


@node(category="latent/advanced")
class LatentAdd:
    """samples1 + samples2."""
    inputs = [Input("samples1", LATENT), Input("samples2", LATENT)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples1, samples2):
        s1 = samples1["samples"]
        return (dict(samples1, samples=s1 + reshape_latent_to(s1.shape, samples2["samples"])),)


@node(category="latent/advanced")
class LatentSubtract:
    """samples1 - samples2."""
    inputs = [Input("samples1", LATENT), Input("samples2", LATENT)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples1, samples2):
        s1 = samples1["samples"]
        return (dict(samples1, samples=s1 - reshape_latent_to(s1.shape, samples2["samples"])),)


@node(category="latent/advanced")
class LatentMultiply:
    """samples * multiplier."""
    inputs = [Input("samples", LATENT), Float("multiplier", 1.0, min=-10.0, max=10.0, step=0.01)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, multiplier):
        return (dict(samples, samples=samples["samples"] * multiplier),)


@node(category="latent/advanced")
class LatentInterpolate:
    """Between samples2 (ratio 0) and samples1 (ratio 1), keeping the size of the latent vectors: the
    directions (unit channel vectors of each cell) are mixed and renormalised, the lengths mixed linearly."""
    inputs = [Input("samples1", LATENT), Input("samples2", LATENT), Float("ratio", 1.0, min=0.0, max=1.0, step=0.01)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples1, samples2, ratio):
        s1 = samples1["samples"]
        s2 = reshape_latent_to(s1.shape, samples2["samples"])
        # norms over the channels, kept as [B,1,h,w]. ComfyUI drops the dim, which broadcasts as intended only
        # for a batch of 1 (any other batch fails there, or mixes up batch and channel when B = C)
        m1 = torch.linalg.vector_norm(s1, dim=1, keepdim=True)
        m2 = torch.linalg.vector_norm(s2, dim=1, keepdim=True)
        u1, u2 = torch.nan_to_num(s1 / m1), torch.nan_to_num(s2 / m2)
        t = u1 * ratio + u2 * (1.0 - ratio)
        direction = torch.nan_to_num(t / torch.linalg.vector_norm(t, dim=1, keepdim=True))
        return (dict(samples1, samples=direction * (m1 * ratio + m2 * (1.0 - ratio))),)
