"""Geometry without resampling: crop, flip, and padding a canvas for outpainting."""
from __future__ import annotations

import torch

from nodegraph import IMAGE, MASK, Choice, Input, Int, Output, node
from nodegraph.images import pixel_budget_problem

from .common import MAX_SIDE

__all__ = ["ImageCrop", "ImageFlip", "ImagePadForOutpaint"]


@node(category="image/transform")
class ImageCrop:
    """Crop a rectangle (clamped to the image)."""
    inputs = [Input("image", IMAGE), Int("width", 512, min=1, max=MAX_SIDE), Int("height", 512, min=1, max=MAX_SIDE),
              Int("x", 0, min=0, max=MAX_SIDE), Int("y", 0, min=0, max=MAX_SIDE)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, width, height, x, y):
        h, w = image.shape[1:3]
        x, y = min(x, w - 1), min(y, h - 1)
        return image[:, y:y + height, x:x + width].clone()


@node(category="image/transform")
class ImageFlip:
    """Mirror an image (x-axis: upside down; y-axis: left-right)."""
    inputs = [Input("image", IMAGE), Choice("flip_method", ["x-axis: vertically", "y-axis: horizontally"])]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, flip_method):
        return image.flip(1 if flip_method.startswith("x") else 2)


@node(category="image/transform")
class ImagePadForOutpaint:
    """Put the image on a bigger mid-grey canvas; the mask is 1 on the new border and fades
    into the image over `feathering` pixels (quadratic, as ComfyUI) on the padded sides."""
    inputs = [Input("image", IMAGE),
              Int("left", 0, min=0, max=MAX_SIDE, step=8), Int("top", 0, min=0, max=MAX_SIDE, step=8),
              Int("right", 0, min=0, max=MAX_SIDE, step=8), Int("bottom", 0, min=0, max=MAX_SIDE, step=8),
              Int("feathering", 40, min=0, max=MAX_SIDE, step=1)]
    outputs = [Output("IMAGE", IMAGE), Output("MASK", MASK)]

    def run(self, ctx, image, left, top, right, bottom, feathering):
        b, h, w, c = image.shape
        problem = pixel_budget_problem(w + left + right, h + top + bottom, b)
        if problem:
            raise ValueError(f"ImagePadForOutpaint: the padded image is too big: {problem}")
        out = torch.full((b, h + top + bottom, w + left + right, c), 0.5, dtype=torch.float32)
        out[:, top:top + h, left:left + w] = image
        mask = torch.ones(h + top + bottom, w + left + right, dtype=torch.float32)
        mask[top:top + h, left:left + w] = outpaint_feather(h, w, left, top, right, bottom, feathering)
        return out, mask[None]


def outpaint_feather(h: int, w: int, left: int, top: int, right: int, bottom: int, feathering: int) -> torch.Tensor:
    """Mask values inside the original image: ((f - d) / f)² where the distance d to the nearest
    padded side is below f, else 0. Distances as ComfyUI counts them: row i is i from the top edge
    and h - i from the bottom one (so the first row is at 0, the last at 1). No feathering when the
    image is not wider and taller than twice the feathering."""
    if not (0 < feathering and feathering * 2 < h and feathering * 2 < w):
        return torch.zeros(h, w)
    rows = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float64)[None, :].expand(h, w)
    far_h, far_w = torch.full((h, w), float(h), dtype=torch.float64), torch.full((h, w), float(w), dtype=torch.float64)
    distance = torch.stack([rows if top else far_h, h - rows if bottom else far_h,
                            cols if left else far_w, w - cols if right else far_w]).amin(dim=0)
    rise = (feathering - distance) / feathering
    return torch.where(distance < feathering, rise * rise, torch.zeros_like(rise)).float()
