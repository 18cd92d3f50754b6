"""Image batches: joining two batches."""
from __future__ import annotations

import torch

from nodegraph import IMAGE, Input, Output, node

from .scale import resize

__all__ = ["ImageBatch"]


@node(category="image")
class ImageBatch:
    """Join two image batches (image2 resized to image1's size)."""
    inputs = [Input("image1", IMAGE), Input("image2", IMAGE)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image1, image2):
        if image2.shape[1:3] != image1.shape[1:3]:
            image2 = resize(image2, image1.shape[2], image1.shape[1], "bilinear")
        return torch.cat([image1, image2[..., :image1.shape[-1]]], dim=0)
