"""ComfyUI's `node_helpers`: small helpers many packs import."""
from __future__ import annotations

import hashlib

import torch
from PIL import ImageFile, UnidentifiedImageError

from .surface import unsupported


def conditioning_set_values(conditioning, values=None, append=False):
    """A copy of each [tensor, extras] pair with `values` set in extras (added to old ones if append)."""
    out = []
    for tensor, extras in conditioning:
        extras = extras.copy()
        for key, value in (values or {}).items():
            if append and extras.get(key) is not None:
                value = extras[key] + value
            extras[key] = value
        out.append([tensor, extras])
    return out


def pillow(fn, arg):
    """Call a PIL function, retrying with truncated images allowed (PIL issues with some files)."""
    try:
        return fn(arg)
    except (OSError, UnidentifiedImageError, ValueError):
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            return fn(arg)
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def hasher():
    return hashlib.sha256  # ComfyUI's default --default-hashing-function


def string_to_torch_dtype(string):
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(string)


def image_alpha_fix(destination, source):
    """Make two images' channel counts agree: cut source's alpha, or give destination an opaque one."""
    if destination.shape[-1] < source.shape[-1]:
        source = source[..., :destination.shape[-1]]
    elif destination.shape[-1] > source.shape[-1]:
        destination = torch.nn.functional.pad(destination, (0, 1))
        destination[..., -1] = 1.0
    return destination, source


__getattr__ = unsupported(__name__)
