"""Compositing: pasting one image onto another through a mask (comfy_extras/nodes_mask.py), and
splitting an image's alpha into a mask or joining a mask as alpha (nodes_compositing.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nodegraph import IMAGE, MASK, Boolean, Input, Int, Output, node, repeat_to_batch

from .common import MAX_SIDE
from .scale import resize

__all__ = ["ImageCompositeMasked", "SplitImageWithAlpha", "JoinImageWithAlpha"]


@node(category="image")
class ImageCompositeMasked:
    """Paste source onto destination at (x, y), through an optional mask (ComfyUI's composite):
    the source batch is cycled to the destination's, the mask resized (bilinear) to the source."""
    inputs = [Input("destination", IMAGE), Input("source", IMAGE), Int("x", 0, min=0, max=MAX_SIDE, step=1),
              Int("y", 0, min=0, max=MAX_SIDE, step=1), Boolean("resize_source", False),
              Input("mask", MASK, optional=True)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, destination, source, x, y, resize_source, mask=None):
        if source.shape[-1] > destination.shape[-1]:  # extra alpha dropped; a missing one is opaque
            source = source[..., :destination.shape[-1]]
        elif source.shape[-1] < destination.shape[-1]:
            source = F.pad(source, (0, 1), value=1.0)
        out = destination.clone()
        if resize_source:
            source = resize(source, destination.shape[2], destination.shape[1], "bilinear")
        source = repeat_to_batch(source.to(out), out.shape[0])
        h = max(0, min(source.shape[1], out.shape[1] - y))
        w = max(0, min(source.shape[2], out.shape[2] - x))
        if h == 0 or w == 0:
            return out
        if mask is None:
            m = torch.ones(1, h, w, 1, dtype=out.dtype)
        else:
            m = F.interpolate(mask.reshape(-1, 1, *mask.shape[-2:]).to(out), size=source.shape[1:3], mode="bilinear")
            m = repeat_to_batch(m.movedim(1, -1)[:, :h, :w], out.shape[0])
        region = out[:, y:y + h, x:x + w]
        out[:, y:y + h, x:x + w] = region * (1 - m) + source[:, :h, :w] * m
        return out


@node(category="mask/compositing", display_name="Split Image with Alpha")
class SplitImageWithAlpha:
    """The colour channels, and the alpha as a mask (inverted, 1 = transparent; opaque without alpha)."""
    inputs = [Input("image", IMAGE)]
    outputs = [Output("IMAGE", IMAGE), Output("MASK", MASK)]

    def run(self, ctx, image):
        alpha = image[..., 3] if image.shape[-1] > 3 else torch.ones_like(image[..., 0])
        return image[..., :3].clone(), 1.0 - alpha


@node(category="mask/compositing", display_name="Join Image with Alpha")
class JoinImageWithAlpha:
    """An RGBA image: the colour channels, and 1 - the mask (resized bilinearly to the image) as alpha.
    The output has as many images as the shorter of the two batches."""
    inputs = [Input("image", IMAGE), Input("alpha", MASK)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, alpha):
        batch = min(image.shape[0], alpha.reshape(-1, *alpha.shape[-2:]).shape[0])
        alpha = F.interpolate(alpha.reshape(-1, 1, *alpha.shape[-2:]).to(image), size=image.shape[1:3], mode="bilinear")
        return torch.cat([image[:batch, ..., :3], 1.0 - alpha[:batch, 0, ..., None]], dim=-1)
