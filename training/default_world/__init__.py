"""The default world: pictures of one coloured shape on a plain background, with captions.

The project's own small models (the embedded default text-to-image checkpoint, and later LoRA,
ControlNet, upscaler and GAN examples) are trained on it, and tests use it to check that images
follow prompts. Everything is deterministic from a seed.

    from training.default_world import generate
    batch = generate(seed=0, count=8, size=128)
    batch.images      # [8, 3, 128, 128] float in 0..1
    batch.masks       # [8, 1, 128, 128] shape coverage in 0..1
    batch.scenes[0]   # Scene(shape='star', color='red', ..., caption='a red star on a blue background')
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .analyze import Reading, nearest_color, read_image
from .render import mask_edges, render
from .scenes import Scene, SceneBatch, make_caption, sample_scenes, scene_batch_from
from .vocabulary import (
    BOS_TOKEN,
    COLOR_NAMES,
    COLORS,
    CONTEXT_LENGTH,
    EOS_TOKEN,
    POSITION_NAMES,
    POSITIONS,
    SHAPES,
    SIZE_NAMES,
    WORD_TOKENS,
    token_ids,
)


@dataclass
class WorldBatch:
    images: torch.Tensor  # [B, 3, H, W] in 0..1 (channels first; IMAGE sockets want [B, H, W, 3])
    masks: torch.Tensor  # [B, 1, H, W] in 0..1
    scenes: list[Scene]

    @property
    def captions(self) -> list[str]:
        return [s.caption for s in self.scenes]

    def images_bhwc(self) -> torch.Tensor:
        return self.images.permute(0, 2, 3, 1).contiguous()

    def edges(self) -> torch.Tensor:
        return mask_edges(self.masks)


def generate(seed: int, count: int, size: int = 128, device: str | torch.device = "cpu") -> WorldBatch:
    """`count` random captioned pictures, a pure function of (seed, count, size)."""
    batch = sample_scenes(seed, count)
    images, masks = render(batch, size=size, device=device)
    return WorldBatch(images=images, masks=masks, scenes=batch.scenes())


def draw(scenes: list[Scene], size: int = 128, device: str | torch.device = "cpu") -> WorldBatch:
    """Render explicit scenes with exact palette colours."""
    images, masks = render(scene_batch_from(scenes), size=size, device=device)
    return WorldBatch(images=images, masks=masks, scenes=list(scenes))


__all__ = [
    "BOS_TOKEN", "COLOR_NAMES", "COLORS", "CONTEXT_LENGTH", "EOS_TOKEN", "POSITION_NAMES", "POSITIONS",
    "SHAPES", "SIZE_NAMES", "WORD_TOKENS", "Reading", "Scene", "SceneBatch", "WorldBatch", "draw", "generate",
    "make_caption", "mask_edges", "nearest_color", "read_image", "render", "sample_scenes", "scene_batch_from",
    "token_ids",
]
