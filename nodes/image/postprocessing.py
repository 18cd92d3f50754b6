"""Pixel-wise adjustments: blending two images, inverting colours."""
from __future__ import annotations

import torch

from nodegraph import IMAGE, Choice, Float, Input, Output, node

from .scale import resize

__all__ = ["ImageBlend", "ImageInvert"]

BLEND_MODES = {
    "normal": lambda a, b: b,
    "multiply": lambda a, b: a * b,
    "screen": lambda a, b: 1 - (1 - a) * (1 - b),
    "overlay": lambda a, b: torch.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b)),
    "difference": lambda a, b: (a - b).abs(),
}


@node(category="image/postprocessing")
class ImageBlend:
    """Blend image2 over image1 by a factor (image2 is resized to image1 if needed)."""
    inputs = [Input("image1", IMAGE), Input("image2", IMAGE), Float("blend_factor", 0.5, min=0.0, max=1.0, step=0.01),
              Choice("blend_mode", list(BLEND_MODES))]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image1, image2, blend_factor, blend_mode):
        if image2.shape[1:3] != image1.shape[1:3]:
            image2 = resize(image2, image1.shape[2], image1.shape[1], "bicubic")
        blended = BLEND_MODES[blend_mode](image1, image2)
        return (image1 * (1 - blend_factor) + blended * blend_factor).clamp(0, 1)


@node(category="image")
class ImageInvert:
    """Invert the colours."""
    inputs = [Input("image", IMAGE)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image):
        return 1.0 - image
