"""Read a picture of the default world back: background colour, shape colour, where the shape is.

Used by tests (of the model, of workflows) to check that an image follows its prompt, and by the
training script to score sample grids. Works on any image; the answers are only meaningful for
one shape on a plain background.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .vocabulary import COLOR_NAMES, PALETTE, POSITION_NAMES, POSITIONS


@dataclass(frozen=True)
class Reading:
    background: str  # nearest palette name of the background
    shape_color: str | None  # nearest palette name of the shape pixels; None if no shape found
    background_rgb: tuple[float, float, float]
    shape_rgb: tuple[float, float, float] | None
    shape_fraction: float  # share of the pixels that differ from the background
    centroid: tuple[float, float] | None  # (x, y) fractions of the image, y down
    position: str | None  # nearest 3x3 cell phrase of the centroid


def nearest_color(rgb) -> str:
    """Name of the palette colour closest to an RGB triple in 0..1."""
    rgb = np.asarray(rgb, dtype=np.float32).reshape(1, 3)
    return COLOR_NAMES[int(np.argmin(((PALETTE - rgb) ** 2).sum(-1)))]


def _as_hwc(image) -> np.ndarray:
    """Accept [H,W,3] / [3,H,W] / [1,...] arrays or tensors in 0..1, or a PIL image."""
    if hasattr(image, "detach"):
        image = image.detach().float().cpu().numpy()
    elif not isinstance(image, np.ndarray):
        image = np.asarray(image, dtype=np.float32) / 255.0
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 4:
        image = image[0]
    if image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    return image


def read_image(image, threshold: float = 0.2) -> Reading:
    """Background = median of the border pixels; shape = pixels farther than `threshold` from it."""
    img = _as_hwc(image)
    h, w, _ = img.shape
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    bg = np.median(border, axis=0)
    distance = np.sqrt(((img - bg) ** 2).sum(-1))
    shape_pixels = distance > threshold
    fraction = float(shape_pixels.mean())
    if shape_pixels.sum() < max(4, 0.002 * h * w):
        return Reading(nearest_color(bg), None, tuple(map(float, bg)), None, fraction, None, None)
    fg = np.median(img[shape_pixels], axis=0)
    ys, xs = np.nonzero(shape_pixels)
    centroid = ((xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h)
    grid = np.array([POSITIONS[p] for p in POSITION_NAMES])
    position = POSITION_NAMES[int(np.argmin(((grid - np.array(centroid)) ** 2).sum(-1)))]
    return Reading(
        background=nearest_color(bg),
        shape_color=nearest_color(fg),
        background_rgb=tuple(map(float, bg)),
        shape_rgb=tuple(map(float, fg)),
        shape_fraction=fraction,
        centroid=(float(centroid[0]), float(centroid[1])),
        position=position,
    )
