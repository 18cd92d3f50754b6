"""Render scenes of the default world: each shape's coverage (nodes.gan.shapes: signed distance
functions, anti-aliased) blends the shape colour over the background, on any torch device."""
from __future__ import annotations

import torch

from nodes.gan.shapes import shape_coverage

from .scenes import SceneBatch


def render(scenes: SceneBatch, size: int = 128, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Images [B, 3, size, size] in 0..1 and shape masks [B, 1, size, size] in 0..1 (soft edges)."""
    device = torch.device(device)
    b = len(scenes)
    mask = shape_coverage(torch.as_tensor(scenes.shape, device=device), torch.as_tensor(scenes.center, device=device),
                          torch.as_tensor(scenes.radius, device=device), size)
    fg = torch.as_tensor(scenes.shape_rgb, device=device).view(b, 3, 1, 1)
    bg = torch.as_tensor(scenes.background_rgb, device=device).view(b, 3, 1, 1)
    return bg + (fg - bg) * mask, mask


def mask_edges(masks: torch.Tensor) -> torch.Tensor:
    """Outline of soft masks [B, 1, H, W] -> [B, 1, H, W] in 0..1 (for edge/line ControlNets)."""
    padded = torch.nn.functional.pad(masks, (1, 1, 1, 1), mode="replicate")
    dx = padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]
    dy = padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]
    return (torch.sqrt(dx * dx + dy * dy) * 2).clamp(0, 1)
