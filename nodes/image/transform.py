"""Geometry: crop, flip, rotate, stitching two images side by side, and padding a canvas for
outpainting (ComfyUI's comfy_extras/nodes_images.py and nodes.py's ImagePadForOutpaint)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nodegraph import IMAGE, MASK, Boolean, Choice, Input, Int, Output, node, pixel_budget_problem

from .common import MAX_SIDE
from .scale import resize

__all__ = ["ImageCrop", "ImageFlip", "ImageRotate", "ImageStitch", "ImagePadForOutpaint"]


@node(category="image/transform", display_name="Image Crop")
class ImageCrop:
    """Crop a rectangle (clamped to the image)."""
    inputs = [Input("image", IMAGE), Int("width", 512, min=1, max=MAX_SIDE), Int("height", 512, min=1, max=MAX_SIDE),
              Int("x", 0, min=0, max=MAX_SIDE), Int("y", 0, min=0, max=MAX_SIDE)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, width, height, x, y):
        h, w = image.shape[1:3]
        x, y = min(x, w - 1), min(y, h - 1)
        return image[:, y:y + height, x:x + width].clone()


@node(category="image/transform")
class ImageFlip:
    """Mirror an image (x-axis: upside down; y-axis: left-right)."""
    inputs = [Input("image", IMAGE), Choice("flip_method", ["x-axis: vertically", "y-axis: horizontally"])]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, flip_method):
        return image.flip(1 if flip_method.startswith("x") else 2)


@node(category="image/transform")
class ImageRotate:
    """Rotate clockwise by a quarter turn, a half or three quarters."""
    inputs = [Input("image", IMAGE), Choice("rotation", ["none", "90 degrees", "180 degrees", "270 degrees"])]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, rotation):
        quarters = {"none": 0, "90 degrees": 1, "180 degrees": 2, "270 degrees": 3}[rotation]
        return torch.rot90(image, k=quarters, dims=[2, 1])


STITCH_COLORS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "red": (1.0, 0.0, 0.0),
                 "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}


def _pad_centred(image: torch.Tensor, dim: int, size: int, value: float) -> torch.Tensor:
    """Pad dimension 1 (height) or 2 (width) of [B,H,W,C] to `size`, half before and half after
    (the odd pixel after), every channel with `value`."""
    extra = size - image.shape[dim]
    if extra <= 0:
        return image
    before, after = extra // 2, extra - extra // 2
    pad = (0, 0, 0, 0, before, after) if dim == 1 else (0, 0, before, after)
    return F.pad(image, pad, value=value)


@node(category="image/transform", display_name="Image Stitch")
class ImageStitch:
    """Stitch image2 to image1 in the given direction (without image2: image1 unchanged), with an
    optional band of colour between them. match_image_size resizes image2 (lanczos, aspect kept) to
    image1's height (left/right) or width (up/down); otherwise the smaller one is padded, centred.
    The shorter batch repeats its last image; a missing alpha channel is opaque."""
    inputs = [Input("image1", IMAGE), Choice("direction", ["right", "down", "left", "up"]),
              Boolean("match_image_size", True), Int("spacing_width", 0, min=0, max=1024, step=2),
              Choice("spacing_color", list(STITCH_COLORS)), Input("image2", IMAGE, optional=True)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image1, direction, match_image_size, spacing_width, spacing_color, image2=None):
        if image2 is None:
            return image1
        image2 = image2.to(image1)
        batch = max(image1.shape[0], image2.shape[0])
        image1, image2 = (torch.cat([x, x[-1:].repeat(batch - x.shape[0], 1, 1, 1)]) for x in (image1, image2))
        sideways = direction in ("left", "right")
        if match_image_size:
            h1, w1 = image1.shape[1:3]
            h2, w2 = image2.shape[1:3]
            aspect = w2 / h2
            width, height = (int(h1 * aspect), h1) if sideways else (w1, int(w1 / aspect))
            if width < 1 or height < 1:
                raise ValueError(f"ImageStitch: image2 ({w2}x{h2}) matched to image1 ({w1}x{h1}) "
                                 f"would be {width}x{height} pixels")
            image2 = resize(image2, width, height, "lanczos")
        else:  # pad the other dimension, with white or black (0 for the colours, as ComfyUI)
            value = {"white": 1.0}.get(spacing_color, 0.0)
            dim = 1 if sideways else 2
            size = max(image1.shape[dim], image2.shape[dim])
            image1, image2 = _pad_centred(image1, dim, size, value), _pad_centred(image2, dim, size, value)
        channels = max(image1.shape[-1], image2.shape[-1])
        image1, image2 = (F.pad(x, (0, channels - x.shape[-1]), value=1.0) for x in (image1, image2))
        parts = [image2, image1] if direction in ("left", "up") else [image1, image2]
        if spacing_width > 0:
            spacing_width += spacing_width % 2
            if sideways:
                shape = (batch, max(image1.shape[1], image2.shape[1]), spacing_width, channels)
            else:
                shape = (batch, spacing_width, max(image1.shape[2], image2.shape[2]), channels)
            band = torch.zeros(shape, dtype=image1.dtype, device=image1.device)
            rgb = STITCH_COLORS[spacing_color][:channels]
            band[..., :len(rgb)] = torch.tensor(rgb, dtype=band.dtype)
            if channels == 4:
                band[..., 3] = 1.0
            parts.insert(1, band)
        return torch.cat(parts, dim=2 if sideways else 1)


@node(category="image", display_name="Pad Image for Outpainting")
class ImagePadForOutpaint:
    """Put the image on a bigger mid-grey canvas; the mask is 1 on the new border and fades
    into the image over `feathering` pixels (quadratic, as ComfyUI) on the padded sides."""
    inputs = [Input("image", IMAGE),
              Int("left", 0, min=0, max=MAX_SIDE, step=8), Int("top", 0, min=0, max=MAX_SIDE, step=8),
              Int("right", 0, min=0, max=MAX_SIDE, step=8), Int("bottom", 0, min=0, max=MAX_SIDE, step=8),
              Int("feathering", 40, min=0, max=MAX_SIDE, step=1)]
    outputs = [Output("IMAGE", IMAGE), Output("MASK", MASK)]

    def run(self, ctx, image, left, top, right, bottom, feathering):
        b, h, w, c = image.shape
        problem = pixel_budget_problem(w + left + right, h + top + bottom, b)
        if problem:
            raise ValueError(f"ImagePadForOutpaint: the padded image is too big: {problem}")
        out = torch.full((b, h + top + bottom, w + left + right, c), 0.5, dtype=torch.float32)
        out[:, top:top + h, left:left + w] = image
        mask = torch.ones(h + top + bottom, w + left + right, dtype=torch.float32)
        mask[top:top + h, left:left + w] = outpaint_feather(h, w, left, top, right, bottom, feathering)
        return out, mask[None]


def outpaint_feather(h: int, w: int, left: int, top: int, right: int, bottom: int, feathering: int) -> torch.Tensor:
    """Mask values inside the original image: ((f - d) / f)² where the distance d to the nearest
    padded side is below f, else 0. Distances as ComfyUI counts them: row i is i from the top edge
    and h - i from the bottom one (so the first row is at 0, the last at 1). No feathering when the
    image is not wider and taller than twice the feathering."""
    if not (0 < feathering and feathering * 2 < h and feathering * 2 < w):
        return torch.zeros(h, w)
    rows = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float64)[None, :].expand(h, w)
    far_h, far_w = torch.full((h, w), float(h), dtype=torch.float64), torch.full((h, w), float(w), dtype=torch.float64)
    distance = torch.stack([rows if top else far_h, h - rows if bottom else far_h,
                            cols if left else far_w, w - cols if right else far_w]).amin(dim=0)
    rise = (feathering - distance) / feathering
    return torch.where(distance < feathering, rise * rise, torch.zeros_like(rise)).float()
