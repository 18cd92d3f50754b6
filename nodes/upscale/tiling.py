"""Run an image model over overlapping tiles and blend the seams, so large images fit in memory.

Tiles are `tile` pixels square (smaller only when the image is): as few as cover each axis with
neighbours sharing at least `overlap` pixels, spread evenly from edge to edge. In the output each tile is weighted by a linear ramp
over the `overlap * scale` pixels of each side it shares with a neighbour (weight 1 elsewhere, and
at the image border), and the weighted sum is divided by the summed weights: seams fade instead
of showing the zero padding every convolution sees at a tile's edge. An image that fits in one
tile is processed whole, so tiling changes nothing for small images.
"""
from __future__ import annotations

import math
from typing import Callable

import torch


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis covering 0..size with tiles of `tile` overlapping by >= `overlap`."""
    if size <= tile:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be at least 0 and smaller than the tile size {tile}")
    count = math.ceil((size - overlap) / (tile - overlap))
    return [round(k * (size - tile) / (count - 1)) for k in range(count)]


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))


def _ramp(length: int, ramp: int, rise: bool, fall: bool) -> torch.Tensor:
    """Weights along one axis of a tile: up over `ramp` pixels at a shared start, down at a shared end."""
    w = torch.ones(length)
    ramp = min(ramp, length // 2)
    if ramp > 0:
        steps = (torch.arange(ramp, dtype=torch.float32) + 0.5) / ramp  # never 0: every pixel counts
        if rise:
            w[:ramp] = steps
        if fall:
            w[length - ramp:] = steps.flip(0)
    return w


def tiled_apply(image: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], scale: int, tile: int,
                overlap: int, out_channels: int, on_tile: Callable[[], None] | None = None) -> torch.Tensor:
    """fn over tiles of one image [1, C, H, W] -> [1, out_channels, H*scale, W*scale], float32 on the CPU.

    fn gets a [1, C, h, w] tile and returns [1, out_channels, h*scale, w*scale]; on_tile is called after
    each tile (progress and interrupt).
    """
    _, _, h, w = image.shape
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    if len(ys) == 1 and len(xs) == 1:
        out = fn(image).float().cpu()
        if on_tile:
            on_tile()
        return out
    out = torch.zeros(1, out_channels, h * scale, w * scale)
    weight = torch.zeros(1, 1, h * scale, w * scale)
    ramp = overlap * scale
    for iy, y in enumerate(ys):
        th = min(tile, h - y)
        wy = _ramp(th * scale, ramp, rise=iy > 0, fall=iy < len(ys) - 1)
        for ix, x in enumerate(xs):
            tw = min(tile, w - x)
            wx = _ramp(tw * scale, ramp, rise=ix > 0, fall=ix < len(xs) - 1)
            result = fn(image[:, :, y:y + th, x:x + tw]).float().cpu()
            if result.shape[-2:] != (th * scale, tw * scale):
                raise RuntimeError(f"the model returned a {tuple(result.shape[-2:])} tile for a {(th, tw)} input "
                                   f"at scale {scale}")
            mask = wy[:, None] * wx[None, :]
            region = (slice(None), slice(None), slice(y * scale, (y + th) * scale), slice(x * scale, (x + tw) * scale))
            out[region] += result * mask
            weight[region] += mask
            if on_tile:
                on_tile()
    return out / weight
