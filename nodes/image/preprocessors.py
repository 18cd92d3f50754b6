"""ControlNet preprocessors that need no downloaded weights: Canny edges (ComfyUI's Canny node, the
kornia algorithm written in torch) and ScribbleThreshold (an image turned into a white-on-black
scribble-style control image).

Canny, as kornia.filters.canny (what ComfyUI's node calls) computes it:
  grey = 0.299 R + 0.587 G + 0.114 B  ->  5x5 Gaussian blur, sigma 1 (reflect border)
  -> unnormalised Sobel gradients (replicate border)  ->  magnitude sqrt(gx² + gy² + 1e-6)
  -> non-maximum suppression along the gradient direction rounded to 45° (ties kept only towards
     the right / down neighbour, as OpenCV)  ->  weak > low, strong > high  ->  hysteresis: weak
     pixels 8-connected to strong ones become strong, until nothing changes.
The thresholds compare against that (unnormalised) magnitude: a unit step blurred gives about 2.6.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nodegraph import IMAGE, Choice, Float, Input, Output, node

__all__ = ["Canny", "ScribbleThreshold", "canny_edges"]

_GREY = (0.299, 0.587, 0.114)
# neighbour offsets (dy, dx) of the 8 directions k*45°, k = 0..7 (angle of atan2(gy, gx), y down)
_DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))


def _gaussian_1d(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - size // 2
    if size % 2 == 0:
        x = x + 0.5
    w = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return w / w.sum()


def _blur(grey: torch.Tensor, size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    k = _gaussian_1d(size, sigma, grey.device, grey.dtype)
    pad = size // 2
    x = F.pad(grey, (pad, pad, pad, pad), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, size))
    return F.conv2d(x, k.view(1, 1, size, 1))


def _sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)
    g = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels)
    return g[:, :1], g[:, 1:]


def canny_edges(image: torch.Tensor, low_threshold: float = 0.1, high_threshold: float = 0.2,
                eps: float = 1e-6) -> torch.Tensor:
    """Canny edge map [B,1,H,W] of 0/1 for images [B,C,H,W] (C = 1 or 3), float32."""
    if image.ndim != 4 or image.shape[1] not in (1, 3):
        raise ValueError(f"canny expects [B,1|3,H,W] images, got {tuple(image.shape)}")
    x = image.float()
    if x.shape[1] == 3:  # multiply-adds in kornia's order, so ties between pixels come out the same
        w = torch.tensor(_GREY, dtype=x.dtype, device=x.device)
        x = torch.addcmul(torch.addcmul(x[:, 0] * w[0], x[:, 1], w[1]), x[:, 2], w[2]).unsqueeze(1)
    gx, gy = _sobel(_blur(x))
    magnitude = torch.sqrt(gx * gx + gy * gy + eps)
    gxp, gyp = F.pad(gx, (1, 1, 1, 1)), F.pad(gy, (1, 1, 1, 1))  # outside the image: no gradient
    padded = torch.sqrt(gxp * gxp + gyp * gyp + eps)
    h, w = magnitude.shape[-2:]
    neighbours = torch.stack([padded[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in _DIRECTIONS], 2)
    direction = (torch.nan_to_num(torch.atan2(gy, gx)) * (4 / math.pi)).round()
    forward = (direction % 8).long()
    backward = ((direction + 4) % 8).long()

    def beats(k: torch.Tensor) -> torch.Tensor:
        other = torch.gather(neighbours, 2, k.unsqueeze(2)).squeeze(2)
        tie_ok = (k == 0) | (k == 2)  # right and down neighbours: a tie keeps this pixel
        return (magnitude > other) | (tie_ok & (magnitude == other))

    keep = beats(forward) & beats(backward) & (magnitude > math.sqrt(eps))
    magnitude = magnitude * keep
    edges = ((magnitude > low_threshold).float() + (magnitude > high_threshold).float()) * 0.5
    ring = torch.ones(1, 1, 3, 3, device=x.device)
    ring[0, 0, 1, 1] = 0
    while True:  # hysteresis: weak pixels next to strong ones become strong
        strong = (edges == 1).float()
        grown = ((F.conv2d(strong, ring, padding=1) > 0) & (edges == 0.5)).float()
        if not grown.any():
            break
        edges = edges + grown * 0.5
    return (edges == 1).float()


@node(category="image/preprocessors")
class Canny:
    """Canny edges (white on black), as ComfyUI's Canny node; thresholds on kornia's gradient scale."""
    inputs = [Input("image", IMAGE),
              Float("low_threshold", 0.4, min=0.01, max=0.99, step=0.01),
              Float("high_threshold", 0.8, min=0.01, max=0.99, step=0.01)]
    outputs = [Output("IMAGE", IMAGE)]

    @classmethod
    def validate_inputs(cls, low_threshold=0.4, high_threshold=0.8, **_):
        if low_threshold > high_threshold:
            return f"low_threshold ({low_threshold}) must not be above high_threshold ({high_threshold})"
        return None

    def run(self, ctx, image, low_threshold, high_threshold):
        if low_threshold > high_threshold:
            raise ValueError(f"low_threshold ({low_threshold}) must not be above high_threshold ({high_threshold})")
        edges = canny_edges(image[..., :3].movedim(-1, 1), low_threshold, high_threshold)
        return (edges.repeat(1, 3, 1, 1).movedim(1, -1).contiguous(),)


@node(category="image/preprocessors")
class ScribbleThreshold:
    """A scribble-style control image: white strokes on black, from a drawing thresholded on its
    brightness. strokes "dark on light": pixels darker than threshold (pencil on paper) become white;
    "light on dark": pixels brighter than threshold do."""
    inputs = [Input("image", IMAGE), Float("threshold", 0.5, min=0.0, max=1.0, step=0.01),
              Choice("strokes", ["dark on light", "light on dark"])]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, threshold, strokes):
        rgb = image[..., :3]
        grey = rgb @ torch.tensor(_GREY, dtype=rgb.dtype) if rgb.shape[-1] == 3 else rgb[..., 0]
        lines = grey < threshold if strokes == "dark on light" else grey > threshold
        return (lines.float().unsqueeze(-1).expand(*lines.shape, 3).contiguous(),)
