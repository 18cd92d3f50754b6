"""Latent nodes (ComfyUI names and inputs). LATENT = {"samples": [B,C,h,w], "noise_mask"?, "batch_index"?}.

A LATENT is a dict, so run() returns it inside a 1-tuple (a bare dict would read as outputs by name).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nodegraph import LATENT, MASK, Choice, Float, Input, Int, Output, node
from nodegraph.images import center_crop_margins, pixel_budget_problem

MAX_RESOLUTION = 16384
# EmptyLatentImage has no model input: SD's latent space (4 channels, 1/8 of the pixels)
LATENT_CHANNELS = 4
LATENT_DOWNSCALE = 8
UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]
CROP_METHODS = ["disabled", "center"]


# --- resizing ---------------------------------------------------------------------------------

def _bilinear_coords(old: int, new: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source index pairs and ratios of a bilinear (half-pixel) resize of one axis."""
    pos = (torch.arange(new, dtype=torch.float64) + 0.5) * old / new - 0.5
    pos = pos.clamp(0, old - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=old - 1)
    return lo, hi, (pos - lo).float()


def _slerp(a: torch.Tensor, b: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of channel vectors (dim 1), magnitudes interpolated linearly."""
    na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    ua, ub = a / na.clamp(min=1e-12), b / nb.clamp(min=1e-12)
    dot = (ua * ub).sum(dim=1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    near = so.abs() < 1e-5  # (anti)parallel: fall back to linear direction interpolation
    wa = torch.where(near, 1.0 - ratio, torch.sin((1.0 - ratio) * omega) / so.where(~near, torch.ones_like(so)))
    wb = torch.where(near, ratio, torch.sin(ratio * omega) / so.where(~near, torch.ones_like(so)))
    return (wa * ua + wb * ub) * (na * (1.0 - ratio) + nb * ratio)


def bislerp(samples: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Resize [B,C,h,w] with slerp between neighbouring latent vectors (along x, then y)."""
    x = samples.float()
    lo, hi, r = _bilinear_coords(x.shape[-1], width)
    x = _slerp(x[..., lo], x[..., hi], r.view(1, 1, 1, -1))
    lo, hi, r = _bilinear_coords(x.shape[-2], height)
    x = _slerp(x[..., lo, :], x[..., hi, :], r.view(1, 1, -1, 1))
    return x.to(samples.dtype)


def common_upscale(samples: torch.Tensor, width: int, height: int, method: str, crop: str) -> torch.Tensor:
    """Resize [B,C,h,w] to (height, width), optionally centre-cropping to the new aspect first."""
    if crop == "center":
        old_w, old_h = samples.shape[-1], samples.shape[-2]
        x, y = center_crop_margins(old_w, old_h, width, height)
        samples = samples[..., y:old_h - y, x:old_w - x]
    if method == "bislerp":
        return bislerp(samples, width, height)
    kwargs = {"align_corners": False} if method in ("bilinear", "bicubic") else {}
    return F.interpolate(samples, size=(height, width), mode=method, **kwargs)


def _repeat_to(x: torch.Tensor, n: int) -> torch.Tensor:
    if x.shape[0] >= n:
        return x[:n]
    return x.repeat(math.ceil(n / x.shape[0]), *([1] * (x.ndim - 1)))[:n]


# --- nodes -------------------------------------------------------------------------------------

@node(category="latent")
class EmptyLatentImage:
    """A batch of zero latents for text-to-image (SD: 4 channels, 1/8 of the image size)."""
    inputs = [Int("width", 512, min=16, max=MAX_RESOLUTION, step=8), Int("height", 512, min=16, max=MAX_RESOLUTION, step=8),
              Int("batch_size", 1, min=1, max=4096)]
    outputs = [Output("LATENT", LATENT)]

    @classmethod
    def validate_inputs(cls, width, height, batch_size):
        return pixel_budget_problem(width, height, batch_size)

    def run(self, ctx, width, height, batch_size):
        return ({"samples": torch.zeros(batch_size, LATENT_CHANNELS, height // LATENT_DOWNSCALE, width // LATENT_DOWNSCALE)},)


@node(category="latent")
class LatentUpscale:
    """Resize latents to a pixel size (0 keeps the aspect ratio from the other side)."""
    inputs = [Input("samples", LATENT), Choice("upscale_method", UPSCALE_METHODS),
              Int("width", 512, min=0, max=MAX_RESOLUTION, step=8), Int("height", 512, min=0, max=MAX_RESOLUTION, step=8),
              Choice("crop", CROP_METHODS)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, upscale_method, width, height, crop):
        if width == 0 and height == 0:
            return (samples,)
        x = samples["samples"]
        if width == 0:
            height = max(64, height)
            width = max(64, round(x.shape[-1] * height / x.shape[-2]))
        elif height == 0:
            width = max(64, width)
            height = max(64, round(x.shape[-2] * width / x.shape[-1]))
        else:
            width, height = max(64, width), max(64, height)
        out = dict(samples)
        out["samples"] = common_upscale(x, width // 8, height // 8, upscale_method, crop)
        return (out,)


@node(category="latent")
class LatentUpscaleBy:
    """Resize latents by a factor."""
    inputs = [Input("samples", LATENT), Choice("upscale_method", UPSCALE_METHODS),
              Float("scale_by", 1.5, min=0.01, max=8.0, step=0.01)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, upscale_method, scale_by):
        x = samples["samples"]
        width, height = max(1, round(x.shape[-1] * scale_by)), max(1, round(x.shape[-2] * scale_by))
        out = dict(samples)
        out["samples"] = common_upscale(x, width, height, upscale_method, "disabled")
        return (out,)


@node(category="latent")
class LatentComposite:
    """Paste samples_from into samples_to at (x, y) pixels, with an optional feathered edge."""
    inputs = [Input("samples_to", LATENT), Input("samples_from", LATENT),
              Int("x", 0, min=0, max=MAX_RESOLUTION, step=8), Int("y", 0, min=0, max=MAX_RESOLUTION, step=8),
              Int("feather", 0, min=0, max=MAX_RESOLUTION, step=8)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples_to, samples_from, x, y, feather):
        x, y, feather = x // 8, y // 8, feather // 8
        target = samples_to["samples"]
        out_samples = target.clone()
        source = _repeat_to(samples_from["samples"], target.shape[0])
        source = source[:, :, :max(0, target.shape[2] - y), :max(0, target.shape[3] - x)]
        h, w = source.shape[2], source.shape[3]
        if h == 0 or w == 0:
            return (dict(samples_to, samples=out_samples),)
        if feather == 0:
            out_samples[:, :, y:y + h, x:x + w] = source
        else:
            mask = torch.ones_like(source)
            for t in range(feather):
                ramp = (t + 1) / feather
                if y != 0:
                    mask[:, :, t:t + 1, :] *= ramp
                if y + h < target.shape[2]:
                    mask[:, :, h - 1 - t:h - t, :] *= ramp
                if x != 0:
                    mask[:, :, :, t:t + 1] *= ramp
                if x + w < target.shape[3]:
                    mask[:, :, :, w - 1 - t:w - t] *= ramp
            region = out_samples[:, :, y:y + h, x:x + w]
            out_samples[:, :, y:y + h, x:x + w] = source * mask + region * (1.0 - mask)
        return (dict(samples_to, samples=out_samples),)


@node(category="_for_testing")
class LatentBlend:
    """samples1 * blend_factor + samples2 * (1 - blend_factor) (samples2 resized to samples1 if needed)."""
    inputs = [Input("samples1", LATENT), Input("samples2", LATENT),
              Float("blend_factor", 0.5, min=0.0, max=1.0, step=0.01),
              Choice("blend_mode", ["normal"], optional=True)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples1, samples2, blend_factor, blend_mode="normal"):
        a, b = samples1["samples"], samples2["samples"]
        if a.shape != b.shape:
            b = common_upscale(b, a.shape[3], a.shape[2], "bicubic", "center")
            b = _repeat_to(b, a.shape[0])
        return (dict(samples1, samples=a * blend_factor + b * (1.0 - blend_factor)),)


@node(category="latent/inpaint")
class SetLatentNoiseMask:
    """Only re-noise (and so repaint) where the mask is 1."""
    inputs = [Input("samples", LATENT), Input("mask", MASK)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, mask):
        return (dict(samples, noise_mask=mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1])),)


@node(category="latent/batch")
class RepeatLatentBatch:
    """Repeat the batch `amount` times."""
    inputs = [Input("samples", LATENT), Int("amount", 1, min=1, max=64)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, amount):
        x = samples["samples"]
        out = dict(samples)
        out["samples"] = x.repeat(amount, 1, 1, 1)
        masks = samples.get("noise_mask")
        if masks is not None and masks.shape[0] > 1:
            out["noise_mask"] = _repeat_to(masks, x.shape[0]).repeat(amount, 1, 1, 1)
        if "batch_index" in samples:
            index = list(samples["batch_index"])
            offset = max(index) - min(index) + 1
            out["batch_index"] = index + [i + k * offset for k in range(1, amount) for i in index]
        return (out,)


@node(category="latent/batch")
class LatentFromBatch:
    """Take `length` latents from `batch_index` on."""
    inputs = [Input("samples", LATENT), Int("batch_index", 0, min=0, max=63), Int("length", 1, min=1, max=64)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, batch_index, length):
        x = samples["samples"]
        batch_index = min(x.shape[0] - 1, batch_index)
        length = min(x.shape[0] - batch_index, length)
        out = dict(samples)
        out["samples"] = x[batch_index:batch_index + length].clone()
        masks = samples.get("noise_mask")
        if masks is not None:
            if masks.shape[0] == 1:
                out["noise_mask"] = masks.clone()
            else:
                out["noise_mask"] = _repeat_to(masks, x.shape[0])[batch_index:batch_index + length].clone()
        if "batch_index" in samples:
            out["batch_index"] = list(samples["batch_index"])[batch_index:batch_index + length]
        else:
            out["batch_index"] = list(range(batch_index, batch_index + length))
        return (out,)
