"""Image batches and sizes: join, pick, repeat, measure (ComfyUI's nodes.py ImageBatch and
comfy_extras/nodes_images.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nodegraph import IMAGE, INT, Input, Int, Output, node, pixel_budget_problem

from .scale import resize

__all__ = ["ImageBatch", "ImageFromBatch", "RepeatImageBatch", "GetImageSize"]


def add_alpha(image: torch.Tensor) -> torch.Tensor:
    """An RGB image with an opaque alpha channel (ComfyUI pads the image with fewer channels so)."""
    return F.pad(image, (0, 1), value=1.0)


@node(category="image", display_name="Batch Images")
class ImageBatch:
    """Join two image batches. The one without alpha gets an opaque alpha if the other has one;
    image2 is centre-cropped to image1's aspect ratio and resized (bilinear) to its size."""
    inputs = [Input("image1", IMAGE), Input("image2", IMAGE)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image1, image2):
        if image1.shape[-1] > image2.shape[-1]:
            image2 = add_alpha(image2)
        elif image1.shape[-1] < image2.shape[-1]:
            image1 = add_alpha(image1)
        if image2.shape[1:3] != image1.shape[1:3]:
            image2 = resize(image2, image1.shape[2], image1.shape[1], "bilinear", "center")
        return torch.cat([image1, image2.to(image1)], dim=0)


@node(category="image/batch")
class ImageFromBatch:
    """`length` images from `batch_index` on (both clamped to the batch)."""
    inputs = [Input("image", IMAGE), Int("batch_index", 0, min=0, max=4095), Int("length", 1, min=1, max=4096)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, batch_index, length):
        start = min(image.shape[0] - 1, batch_index)
        length = min(image.shape[0] - start, length)
        return image[start:start + length].clone()


@node(category="image/batch")
class RepeatImageBatch:
    """The whole batch repeated `amount` times (1 2 1 2 for a batch of two, amount 2)."""
    inputs = [Input("image", IMAGE), Int("amount", 1, min=1, max=4096)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, amount):
        b, h, w = image.shape[:3]
        problem = pixel_budget_problem(w, h, b * amount)
        if problem:
            raise ValueError(f"RepeatImageBatch: amount {amount} makes the batch too big: {problem}")
        return image.repeat(amount, 1, 1, 1)


@node(category="image", display_name="Get Image Size")
class GetImageSize:
    """Width, height and batch size of an image."""
    inputs = [Input("image", IMAGE)]
    outputs = [Output("width", INT), Output("height", INT), Output("batch_size", INT)]

    def run(self, ctx, image):
        return int(image.shape[2]), int(image.shape[1]), int(image.shape[0])
