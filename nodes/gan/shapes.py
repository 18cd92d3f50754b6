"""The shapes of the default world (the pictures the built-in models were trained on), drawn as
anti-aliased coverage masks with signed distance functions, on any torch device.

Each shape is a 2D signed distance function in a frame where the shape fits the square [-1, 1]^2
(y pointing up); coverage of a pixel is 0.5 - distance (in pixels), clamped to 0..1, which gives
smooth edges without supersampling. Formulas follow the well-known exact 2D SDFs (circle, box,
rhombus, equilateral triangle, 5-point star, heart).

ShapeMask draws one; training/default_world draws its scenes with the same function, so a mask
from the node covers exactly the pixels of the shape the models saw.
"""
from __future__ import annotations

import math

import torch

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "heart")

_SQRT3 = math.sqrt(3.0)


def _length(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(x * x + y * y)


def _circle(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _length(x, y) - 0.95


def _square(x: torch.Tensor, y: torch.Tensor, half: float = 0.82) -> torch.Tensor:
    dx, dy = x.abs() - half, y.abs() - half
    outside = _length(dx.clamp(min=0), dy.clamp(min=0))
    inside = torch.maximum(dx, dy).clamp(max=0)
    return outside + inside


def _diamond(x: torch.Tensor, y: torch.Tensor, bx: float = 0.75, by: float = 1.0) -> torch.Tensor:
    px, py = x.abs(), y.abs()
    # h locates the closest point along the edge from (bx, 0) to (0, by)
    h = (((bx - 2 * px) * bx - (by - 2 * py) * by) / (bx * bx + by * by)).clamp(-1, 1)
    d = _length(px - 0.5 * bx * (1 - h), py - 0.5 * by * (1 + h))
    return d * torch.sign(px * by + py * bx - bx * by)


def _triangle(x: torch.Tensor, y: torch.Tensor, r: float = 1.0) -> torch.Tensor:
    # equilateral, pointing up, half side r; shifted so its bounding box is centred
    y = y + 0.5 * r / _SQRT3
    px = x.abs() - r
    py = y + r / _SQRT3
    fold = px + _SQRT3 * py > 0
    qx = torch.where(fold, (px - _SQRT3 * py) / 2, px)
    qy = torch.where(fold, (-_SQRT3 * px - py) / 2, py)
    qx = qx - qx.clamp(-2 * r, 0)
    return -_length(qx, qy) * torch.sign(qy)


def _star(x: torch.Tensor, y: torch.Tensor, r: float = 1.0, inner: float = 0.45) -> torch.Tensor:
    # five points, one pointing up; shifted down a little so the bounding box is centred
    y = y + 0.095
    k1x, k1y = 0.809016994375, -0.587785252292
    k2x, k2y = -k1x, k1y
    px = x.abs()
    py = y
    d1 = (k1x * px + k1y * py).clamp(min=0)
    px, py = px - 2 * d1 * k1x, py - 2 * d1 * k1y
    d2 = (k2x * px + k2y * py).clamp(min=0)
    px, py = px - 2 * d2 * k2x, py - 2 * d2 * k2y
    px = px.abs()
    py = py - r
    bax, bay = inner * -k1y, inner * k1x - 1.0
    h = ((px * bax + py * bay) / (bax * bax + bay * bay)).clamp(0, r)
    return _length(px - bax * h, py - bay * h) * torch.sign(py * bax - px * bay)


def _heart(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # the classic heart spans x in [-0.6, 0.6], y in [0, 1.1] with its tip at the origin:
    # scale it by 1.6 to fill [-1, 1]^2 and move the tip to the bottom
    s = 1.0 / 1.6
    px = (x * s).abs()
    py = y * s + 0.55
    upper = py + px > 1.0
    lobe = _length(px - 0.25, py - 0.75) - math.sqrt(2.0) / 4.0
    m = (px + py).clamp(min=0) * 0.5
    lower = torch.sqrt(torch.minimum(px**2 + (py - 1.0) ** 2, (px - m) ** 2 + (py - m) ** 2)) * torch.sign(px - py)
    return torch.where(upper, lobe, lower) / s


_SDF = {"circle": _circle, "square": _square, "triangle": _triangle, "diamond": _diamond, "star": _star, "heart": _heart}
assert tuple(_SDF) == SHAPES



def shape_coverage(kinds: torch.Tensor, center: torch.Tensor, radius: torch.Tensor, size: int) -> torch.Tensor:
    """Coverage masks [B, 1, size, size] in 0..1 (soft edges) of shapes `kinds` [B] (indices into
    SHAPES) centred at `center` [B, 2] (x, y as fractions of the side, y down) with `radius` [B]
    (fraction of the side), on the device of `center`."""
    device = center.device
    b = kinds.shape[0]
    coords = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
    u = coords.view(1, 1, size).expand(b, size, size)  # x, to the right
    v = coords.view(1, size, 1).expand(b, size, size)  # y, downwards
    radius = radius.view(b, 1, 1)
    x = (u - center[:, 0].view(b, 1, 1)) / radius
    y = -(v - center[:, 1].view(b, 1, 1)) / radius  # y up inside the shape frame
    distance = torch.empty(b, size, size, device=device)
    for k, name in enumerate(SHAPES):
        idx = (kinds == k).nonzero(as_tuple=True)[0]
        if idx.numel():
            distance[idx] = _SDF[name](x[idx], y[idx])
    pixels = distance * radius * size  # signed distance in pixels
    return (0.5 - pixels).clamp(0, 1).unsqueeze(1)
