"""Resizing: the nodes built on ComfyUI's common_upscale (nodes.py's ImageScale
and ImageScaleBy, comfy_extras' ImageScaleToTotalPixels and ResizeAndPadImage)."""
from __future__ import annotations

import math

import torch

from nodegraph import IMAGE, Choice, Float, Input, Int, Output, common_upscale, node

from .common import MAX_SIDE

__all__ = ["ImageScale", "ImageScaleBy", "ImageScaleToTotalPixels", "ImageScaleToMaxDimension", "ResizeAndPadImage"]

UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]


def resize(image: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """ComfyUI's common_upscale for an IMAGE batch [B,H,W,C]."""
    return common_upscale(image.movedim(-1, 1), width, height, method, crop).movedim(1, -1)


@node(category="image/upscaling", display_name="Upscale Image")
class ImageScale:
    """Resize to a size; a side of 0 keeps the aspect ratio; both 0 leaves the image as it is."""
    inputs = [Input("image", IMAGE), Choice("upscale_method", UPSCALE_METHODS),
              Int("width", 512, min=0, max=MAX_SIDE), Int("height", 512, min=0, max=MAX_SIDE),
              Choice("crop", ["disabled", "center"])]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, upscale_method, width, height, crop):
        if width == 0 and height == 0:
            return image
        h, w = image.shape[1:3]
        if width == 0:
            width = max(1, round(w * height / h))
        elif height == 0:
            height = max(1, round(h * width / w))
        return resize(image, width, height, upscale_method, crop)


@node(category="image/upscaling", display_name="Upscale Image By")
class ImageScaleBy:
    """Resize by a factor."""
    inputs = [Input("image", IMAGE), Choice("upscale_method", UPSCALE_METHODS),
              Float("scale_by", 1.0, min=0.01, max=8.0, step=0.01)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, upscale_method, scale_by):
        h, w = image.shape[1:3]
        return resize(image, max(1, round(w * scale_by)), max(1, round(h * scale_by)), upscale_method)


@node(category="image/upscaling", display_name="Scale Image to Total Pixels")
class ImageScaleToTotalPixels:
    """Resize, keeping the aspect ratio, to about `megapixels` × 1024² pixels; each side rounded to a
    multiple of resolution_steps."""
    inputs = [Input("image", IMAGE), Choice("upscale_method", UPSCALE_METHODS),
              Float("megapixels", 1.0, min=0.01, max=16.0, step=0.01), Int("resolution_steps", 1, min=1, max=256)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, upscale_method, megapixels, resolution_steps):
        h, w = image.shape[1:3]
        scale_by = math.sqrt(megapixels * 1024 * 1024 / (w * h))
        width = round(w * scale_by / resolution_steps) * resolution_steps
        height = round(h * scale_by / resolution_steps) * resolution_steps
        if width < 1 or height < 1:
            raise ValueError(f"ImageScaleToTotalPixels: {megapixels} megapixels in steps of {resolution_steps} "
                             f"gives {width}x{height} for a {w}x{h} image; lower resolution_steps")
        return resize(image, int(width), int(height), upscale_method)


@node(category="image/upscaling")
class ImageScaleToMaxDimension:
    """Resize so that the longer side is largest_size (aspect ratio kept, the other side rounded)."""
    # ComfyUI lists "bilinear" twice; the list is kept as it is so its workflows' values match
    inputs = [Input("image", IMAGE),
              Choice("upscale_method", ["area", "lanczos", "bilinear", "nearest-exact", "bilinear", "bicubic"]),
              Int("largest_size", 512, min=0, max=MAX_SIDE)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, upscale_method, largest_size):
        h, w = image.shape[1:3]
        if h > w:
            width, height = round(w / h * largest_size), largest_size
        elif w > h:
            width, height = largest_size, round(h / w * largest_size)
        else:
            width = height = largest_size
        if width < 1 or height < 1:
            raise ValueError(f"ImageScaleToMaxDimension: largest_size {largest_size} makes the {w}x{h} image "
                             f"{width}x{height} pixels")
        return resize(image, width, height, upscale_method)


@node(category="image/transform")
class ResizeAndPadImage:
    """Fit the image inside target_width × target_height (aspect ratio kept, sides truncated to whole
    pixels), centred on a white or black canvas of that size."""
    inputs = [Input("image", IMAGE),
              Int("target_width", 512, min=1, max=MAX_SIDE), Int("target_height", 512, min=1, max=MAX_SIDE),
              Choice("padding_color", ["white", "black"]),
              Choice("interpolation", ["area", "bicubic", "nearest-exact", "bilinear", "lanczos"])]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, target_width, target_height, padding_color, interpolation):
        b, h, w, c = image.shape
        scale = min(target_width / w, target_height / h)
        new_width, new_height = int(w * scale), int(h * scale)
        if new_width < 1 or new_height < 1:
            raise ValueError(f"ResizeAndPadImage: a {w}x{h} image fitted into {target_width}x{target_height} "
                             f"would be {new_width}x{new_height} pixels")
        resized = resize(image, new_width, new_height, interpolation)
        out = torch.full((b, target_height, target_width, c), 0.0 if padding_color == "black" else 1.0,
                         dtype=image.dtype, device=image.device)
        top, left = (target_height - new_height) // 2, (target_width - new_width) // 2
        out[:, top:top + new_height, left:left + new_width] = resized
        return out
