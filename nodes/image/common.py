"""What several modules of the image pack share: the size limit and batch cycling."""
from __future__ import annotations

import torch

MAX_SIDE = 16384  # ComfyUI's MAX_RESOLUTION


def repeat_to_batch(x: torch.Tensor, batch: int) -> torch.Tensor:
    """Cut or cycle a batch [B,...] to `batch` items (ComfyUI's repeat_to_batch_size)."""
    if x.shape[0] >= batch:
        return x[:batch]
    return x.repeat(-(-batch // x.shape[0]), *([1] * (x.ndim - 1)))[:batch]
