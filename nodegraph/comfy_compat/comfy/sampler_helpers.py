"""ComfyUI's comfy.sampler_helpers, the part packs use outside a sampler: prepare_mask."""
from __future__ import annotations

from ..surface import unsupported
from .utils import reshape_mask


def prepare_mask(noise_mask, shape, device):
    """A noise mask fitted to the noise's shape, on `device` (ComfyUI: reshape_mask, then .to(device))."""
    return reshape_mask(noise_mask, shape).to(device)


__getattr__ = unsupported(__name__)
