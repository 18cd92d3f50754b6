"""Mask nodes as ComfyUI's comfy_extras/nodes_mask.py: conversion from and to images, a colour as a
mask, solid and inverted masks, crop, growing, feathering, thresholds and combining masks."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nodegraph import IMAGE, MASK, Boolean, Choice, Float, Input, Int, Output, node, repeat_to_batch, save_images

from .common import MAX_SIDE

__all__ = ["ImageToMask", "MaskToImage", "ImageColorToMask", "SolidMask", "InvertMask", "CropMask", "GrowMask",
           "FeatherMask", "MaskComposite", "ThresholdMask", "MaskPreview"]

CHANNELS = ["red", "green", "blue", "alpha"]


@node(category="mask", display_name="Convert Image to Mask")
class ImageToMask:
    """One channel of an image as a mask."""
    inputs = [Input("image", IMAGE), Choice("channel", CHANNELS)]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, image, channel):
        index = CHANNELS.index(channel)
        if index >= image.shape[-1]:
            raise ValueError(f"ImageToMask: the image has no {channel} channel")
        return image[..., index].clone()


@node(category="mask", display_name="Convert Mask to Image")
class MaskToImage:
    """A mask as a grey image."""
    inputs = [Input("mask", MASK)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, mask):
        return mask.reshape(-1, *mask.shape[-2:])[..., None].expand(-1, -1, -1, 3).clone()


@node(category="mask")
class ImageColorToMask:
    """1 where a pixel's 8-bit colour (rounded) is exactly `color` (0xRRGGBB), else 0."""
    inputs = [Input("image", IMAGE), Int("color", 0, min=0, max=0xFFFFFF, display="number")]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, image, color):
        levels = (image[..., :3].clamp(0, 1) * 255.0).round().to(torch.int64)
        packed = (levels[..., 0] << 16) + (levels[..., 1] << 8) + levels[..., 2]
        return (packed == color).float()


@node(category="mask")
class SolidMask:
    """A mask of one value."""
    inputs = [Float("value", 1.0, min=0.0, max=1.0, step=0.01), Int("width", 512, min=1, max=MAX_SIDE),
              Int("height", 512, min=1, max=MAX_SIDE)]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, value, width, height):
        return torch.full((1, height, width), value)


@node(category="mask")
class InvertMask:
    """1 - mask."""
    inputs = [Input("mask", MASK)]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, mask):
        return 1.0 - mask


@node(category="mask")
class CropMask:
    """A width × height rectangle from (x, y) (cut at the mask's edges)."""
    inputs = [Input("mask", MASK), Int("x", 0, min=0, max=MAX_SIDE), Int("y", 0, min=0, max=MAX_SIDE),
              Int("width", 512, min=1, max=MAX_SIDE), Int("height", 512, min=1, max=MAX_SIDE)]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, mask, x, y, width, height):
        mask = mask.reshape(-1, *mask.shape[-2:])
        h, w = mask.shape[1:]
        if x >= w or y >= h:
            raise ValueError(f"CropMask: ({x}, {y}) lies outside the {w}x{h} mask, nothing would be left")
        return mask[:, y:y + height, x:x + width].clone()


@node(category="mask", display_name="Grow Mask")
class GrowMask:
    """Grow (positive) or shrink (negative) a mask by whole pixels."""
    inputs = [Input("mask", MASK), Int("expand", 0, min=-MAX_SIDE, max=MAX_SIDE), Boolean("tapered_corners", True)]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, mask, expand, tapered_corners):
        m = mask.reshape(-1, 1, *mask.shape[-2:]).float()
        kernel = torch.ones(1, 1, 3, 3)
        if tapered_corners:
            kernel[0, 0, 0, 0] = kernel[0, 0, 0, 2] = kernel[0, 0, 2, 0] = kernel[0, 0, 2, 2] = 0
        for _ in range(abs(expand)):
            ctx.check_interrupt()  # thousands of passes over a big mask take seconds
            if expand > 0:  # dilate: max over the neighbourhood
                m = torch.maximum(m, _neighbourhood_max(m, kernel))
            else:  # erode: min over the neighbourhood
                m = 1 - _neighbourhood_max(1 - m, kernel).maximum(1 - m)
        return m[:, 0]


def _neighbourhood_max(m: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Max of each pixel's neighbours selected by a 3x3 0/1 kernel."""
    padded = F.pad(m, (1, 1, 1, 1), value=0.0)
    out = torch.zeros_like(m)
    for dy in range(3):
        for dx in range(3):
            if kernel[0, 0, dy, dx]:
                out = torch.maximum(out, padded[:, :, dy:dy + m.shape[2], dx:dx + m.shape[3]])
    return out


@node(category="mask")
class FeatherMask:
    """Fade a mask's edges towards 0 over the given number of pixels on each side."""
    inputs = [Input("mask", MASK), Int("left", 0, min=0, max=MAX_SIDE), Int("top", 0, min=0, max=MAX_SIDE),
              Int("right", 0, min=0, max=MAX_SIDE), Int("bottom", 0, min=0, max=MAX_SIDE)]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, mask, left, top, right, bottom):
        out = mask.reshape(-1, *mask.shape[-2:]).clone()
        h, w = out.shape[1:]
        left, right, top, bottom = min(left, w), min(right, w), min(top, h), min(bottom, h)
        # ComfyUI's ramps, multiplied in its order: (k + 1) / n at index k from the left / top edge, and
        # at index -k from the right / bottom one, where -0 is the *first* column / row: so the right
        # ramp gives column 0 a factor 1/n and runs from 2/n at the last column to 1 at column w - n + 1.
        for k in range(left):
            out[:, :, k] *= (k + 1) / left
        for k in range(right):
            out[:, :, -k] *= (k + 1) / right
        for k in range(top):
            out[:, k, :] *= (k + 1) / top
        for k in range(bottom):
            out[:, -k, :] *= (k + 1) / bottom
        return out


MASK_OPS = {"multiply": lambda a, b: a * b, "add": lambda a, b: a + b, "subtract": lambda a, b: a - b,
            # the logical operations work on the rounded (binary) masks, as ComfyUI's
            "and": lambda a, b: (a.round().bool() & b.round().bool()).float(),
            "or": lambda a, b: (a.round().bool() | b.round().bool()).float(),
            "xor": lambda a, b: (a.round().bool() ^ b.round().bool()).float()}


@node(category="mask")
class MaskComposite:
    """Combine source into destination at (x, y) with an operation."""
    inputs = [Input("destination", MASK), Input("source", MASK), Int("x", 0, min=0, max=MAX_SIDE),
              Int("y", 0, min=0, max=MAX_SIDE), Choice("operation", list(MASK_OPS))]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, destination, source, x, y, operation):
        out = destination.reshape(-1, *destination.shape[-2:]).clone()
        src = repeat_to_batch(source.reshape(-1, *source.shape[-2:]).to(out), out.shape[0])
        h = max(0, min(src.shape[1], out.shape[1] - y))
        w = max(0, min(src.shape[2], out.shape[2] - x))
        region = out[:, y:y + h, x:x + w]
        out[:, y:y + h, x:x + w] = MASK_OPS[operation](region, src[:, :h, :w])
        return out.clamp(0, 1)  # ComfyUI clamps the whole mask, not only the pasted region


@node(category="mask")
class ThresholdMask:
    """1 where the mask is above value, else 0 (ComfyUI's ThresholdMask)."""
    inputs = [Input("mask", MASK), Float("value", 0.5, min=0.0, max=1.0, step=0.01)]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, mask, value):
        return ((mask > value).float(),)


@node(category="mask", display_name="Preview Mask", output_node=True)
class MaskPreview:
    """Show a mask as a grey image without keeping it (written to the temp folder)."""
    inputs = [Input("mask", MASK)]
    outputs = []

    def run(self, ctx, mask):
        grey = mask.reshape(-1, *mask.shape[-2:])[..., None].expand(-1, -1, -1, 3)
        ctx.show(images=save_images(ctx, grey, f"preview_mask_{ctx.node_id}", "temp"))
