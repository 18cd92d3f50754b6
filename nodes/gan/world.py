"""Default-world pictures as a node: the reference set the built-in GANs are measured against.

The pictures follow the rules of training/default_world (the pictures every built-in model was
trained on): one of six shapes in one of twelve palette colours (jittered a little) on a plain
background of another, a small / medium / large radius, centred near one of nine grid positions or
anywhere, kept off the border. The constants mirror training/default_world's (a test checks they
agree); the draws come from a torch generator, so a seed gives the same pictures on any device.
"""
from __future__ import annotations

import torch

from nodegraph import IMAGE, Int, Output, Seed, node

from .shapes import SHAPES, shape_coverage

PALETTE = {
    "red": (0.86, 0.08, 0.08), "orange": (1.00, 0.55, 0.00), "yellow": (0.98, 0.90, 0.10),
    "green": (0.10, 0.68, 0.15), "cyan": (0.10, 0.85, 0.90), "blue": (0.10, 0.25, 0.90),
    "purple": (0.55, 0.15, 0.75), "pink": (1.00, 0.50, 0.75), "brown": (0.50, 0.28, 0.10),
    "white": (0.97, 0.97, 0.97), "gray": (0.50, 0.50, 0.50), "black": (0.05, 0.05, 0.05),
}
RADII = ((0.10, 0.15), (0.16, 0.23), (0.25, 0.32))  # small, medium, large (fractions of the side)
GRID = (0.27, 0.50, 0.73)  # the nine nominal positions are GRID x GRID
GRID_JITTER = 0.06
P_NEAR_GRID = 0.5
COLOR_JITTER = 0.03
EDGE_MARGIN = 0.02


def world_pictures(seed: int, count: int, size: int) -> torch.Tensor:
    """IMAGE [count, size, size, 3] in 0..1."""
    g = torch.Generator("cpu").manual_seed(int(seed))
    palette = torch.tensor(list(PALETTE.values()))
    n = len(palette)
    kind = torch.randint(0, len(SHAPES), (count,), generator=g)
    color = torch.randint(0, n, (count,), generator=g)
    background = (color + torch.randint(1, n, (count,), generator=g)) % n  # never the shape's colour
    lo, hi = torch.tensor(RADII).T
    size_class = torch.randint(0, len(RADII), (count,), generator=g)
    radius = lo[size_class] + (hi - lo)[size_class] * torch.rand(count, generator=g)
    grid = torch.tensor(GRID)
    cell = grid[torch.randint(0, 3, (count, 2), generator=g)]
    near_grid = cell + (torch.rand(count, 2, generator=g) * 2 - 1) * GRID_JITTER
    margin = (radius + EDGE_MARGIN)[:, None]
    anywhere = margin + torch.rand(count, 2, generator=g) * (1 - 2 * margin)
    center = torch.where(torch.rand(count, 1, generator=g) < P_NEAR_GRID, near_grid, anywhere)
    center = torch.minimum(torch.maximum(center, margin), 1 - margin)
    fg = (palette[color] + torch.randn(count, 3, generator=g) * COLOR_JITTER).clamp(0, 1)
    bg = (palette[background] + torch.randn(count, 3, generator=g) * COLOR_JITTER).clamp(0, 1)
    mask = shape_coverage(kind, center, radius, size)  # [B, 1, H, W]
    images = bg[:, :, None, None] + (fg - bg)[:, :, None, None] * mask
    return images.movedim(1, -1).contiguous()


@node(category="gan/eval")
class DefaultWorldPictures:
    """Random default-world pictures (one flat shape on a plain background), the pictures the built-in
    models were trained on: a reference set for FID/KID/precision-recall against generated images."""
    inputs = [Seed("seed", 0), Int("batch_size", 64, min=1, max=4096), Int("size", 64, min=16, max=1024, step=8)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, seed, batch_size, size):
        return world_pictures(seed, batch_size, size)
