"""Grey-scale morphology with a flat square kernel (ComfyUI's Morphology node, which calls
kornia.morphology; here in plain torch so kornia stays a test dependency).

Conventions, as kornia: the kernel's origin is (k // 2, k // 2); pixels outside the image are ignored
("geodesic" border: +inf for erosion, -inf for dilation); erosion takes the minimum over offsets
-o .. k-o-1 and dilation, the reflected kernel, the maximum over -(k-o-1) .. o (the two differ only for
an even k). A flat square is separable, so each is a 1-D pass over rows and one over columns.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nodegraph import IMAGE, Choice, Input, Int, Output, node

__all__ = ["Morphology"]


def _max_filter(x: torch.Tensor, k: int, before: int, after: int, fill: float) -> torch.Tensor:
    """Max over a k × k window at offsets -before .. after of each pixel of [B,C,H,W], `fill` outside."""
    x = F.pad(x, (before, after, before, after), value=fill)
    x = F.max_pool2d(x, (k, 1), stride=1)
    return F.max_pool2d(x, (1, k), stride=1)


def dilate(x: torch.Tensor, k: int) -> torch.Tensor:
    o = k // 2
    return _max_filter(x, k, k - o - 1, o, float("-inf"))


def erode(x: torch.Tensor, k: int) -> torch.Tensor:
    o = k // 2
    return -_max_filter(-x, k, o, k - o - 1, float("-inf"))


OPERATIONS = {
    "erode": erode,
    "dilate": dilate,
    "open": lambda x, k: dilate(erode(x, k), k),
    "close": lambda x, k: erode(dilate(x, k), k),
    "gradient": lambda x, k: dilate(x, k) - erode(x, k),
    "bottom_hat": lambda x, k: erode(dilate(x, k), k) - x,
    "top_hat": lambda x, k: x - dilate(erode(x, k), k),
}


@node(category="image/postprocessing", display_name="ImageMorphology")
class Morphology:
    """Erode, dilate, open, close, gradient, top hat or bottom hat with a kernel_size² square,
    on every channel."""
    inputs = [Input("image", IMAGE), Choice("operation", list(OPERATIONS)), Int("kernel_size", 3, min=3, max=999)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, operation, kernel_size):
        return OPERATIONS[operation](image.movedim(-1, 1), kernel_size).movedim(1, -1).contiguous()
