"""Latent nodes (ComfyUI names and inputs): make, resize, rotate, flip, crop latents and set their noise mask.
LATENT = {"samples": [B,C,h,w], "noise_mask"?, "batch_index"?}. Combining latents: latent_combine_nodes.py;
batches: latent_batch_nodes.py; .latent files: latent_file_nodes.py.

A LATENT is a dict, so run() returns it inside a 1-tuple (a bare dict would read as outputs by name).
Like ComfyUI, a node copies the dict and replaces "samples", so the other keys pass through unchanged.
"""
from __future__ import annotations

import torch

from nodegraph import LATENT, MASK, Choice, Float, Input, Int, Output, node
from nodegraph import common_upscale, pixel_budget_problem

MAX_RESOLUTION = 16384
# EmptyLatentImage has no model input: SD's latent space (4 channels, 1/8 of the pixels)
LATENT_CHANNELS = 4
LATENT_DOWNSCALE = 8
UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]
CROP_METHODS = ["disabled", "center"]


# --- nodes -------------------------------------------------------------------------------------

@node(category="latent", display_name="Empty Latent Image")
class EmptyLatentImage:
    """A batch of zero latents for text-to-image (SD: 4 channels, 1/8 of the image size)."""
    inputs = [Int("width", 512, min=16, max=MAX_RESOLUTION, step=8), Int("height", 512, min=16, max=MAX_RESOLUTION, step=8),
              Int("batch_size", 1, min=1, max=4096)]
    outputs = [Output("LATENT", LATENT)]

    @classmethod
    def validate_inputs(cls, width, height, batch_size):
        return pixel_budget_problem(width, height, batch_size)

    def run(self, ctx, width, height, batch_size):
        return ({"samples": torch.zeros(batch_size, LATENT_CHANNELS, height // LATENT_DOWNSCALE, width // LATENT_DOWNSCALE)},)


@node(category="latent", display_name="Upscale Latent")
class LatentUpscale:
    """Resize latents to a pixel size (0 keeps the aspect ratio from the other side)."""
    inputs = [Input("samples", LATENT), Choice("upscale_method", UPSCALE_METHODS),
              Int("width", 512, min=0, max=MAX_RESOLUTION, step=8), Int("height", 512, min=0, max=MAX_RESOLUTION, step=8),
              Choice("crop", CROP_METHODS)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, upscale_method, width, height, crop):
        if width == 0 and height == 0:
            return (samples,)
        x = samples["samples"]
        if width == 0:
            height = max(64, height)
            width = max(64, round(x.shape[-1] * height / x.shape[-2]))
        elif height == 0:
            width = max(64, width)
            height = max(64, round(x.shape[-2] * width / x.shape[-1]))
        else:
            width, height = max(64, width), max(64, height)
        out = dict(samples)
        out["samples"] = common_upscale(x, width // 8, height // 8, upscale_method, crop)
        return (out,)


@node(category="latent", display_name="Upscale Latent By")
class LatentUpscaleBy:
    """Resize latents by a factor."""
    inputs = [Input("samples", LATENT), Choice("upscale_method", UPSCALE_METHODS),
              Float("scale_by", 1.5, min=0.01, max=8.0, step=0.01)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, upscale_method, scale_by):
        x = samples["samples"]
        width, height = max(1, round(x.shape[-1] * scale_by)), max(1, round(x.shape[-2] * scale_by))
        out = dict(samples)
        out["samples"] = common_upscale(x, width, height, upscale_method, "disabled")
        return (out,)




@node(category="latent/transform", display_name="Rotate Latent")
class LatentRotate:
    """Rotate latents clockwise by a quarter turn, a half or three quarters."""
    inputs = [Input("samples", LATENT), Choice("rotation", ["none", "90 degrees", "180 degrees", "270 degrees"])]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, rotation):
        quarters = {"90": 1, "180": 2, "270": 3}.get(rotation.split(" ")[0], 0)
        # dims (w, h): torch's rotation from the second axis to the first is clockwise on screen
        return (dict(samples, samples=torch.rot90(samples["samples"], k=quarters, dims=[3, 2])),)


@node(category="latent/transform", display_name="Flip Latent")
class LatentFlip:
    """Mirror latents: x-axis flips top and bottom, y-axis left and right (ComfyUI's wording)."""
    inputs = [Input("samples", LATENT), Choice("flip_method", ["x-axis: vertically", "y-axis: horizontally"])]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, flip_method):
        dim = 2 if flip_method.startswith("x") else 3
        return (dict(samples, samples=torch.flip(samples["samples"], dims=[dim])),)


@node(category="latent/transform", display_name="Crop Latent")
class LatentCrop:
    """Cut a width x height rectangle at (x, y) (pixels, in steps of 8); the corner is kept at least
    8 cells (64 pixels) inside the right and bottom edges. The noise mask is left as it is, as in ComfyUI."""
    inputs = [Input("samples", LATENT),
              Int("width", 512, min=64, max=MAX_RESOLUTION, step=8), Int("height", 512, min=64, max=MAX_RESOLUTION, step=8),
              Int("x", 0, min=0, max=MAX_RESOLUTION, step=8), Int("y", 0, min=0, max=MAX_RESOLUTION, step=8)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, width, height, x, y):
        s = samples["samples"]
        x = min(x // 8, s.shape[3] - 8)
        y = min(y // 8, s.shape[2] - 8)
        x, y = max(x, 0), max(y, 0)  # a latent under 8 cells: ComfyUI's negative start would wrap around
        return (dict(samples, samples=s[:, :, y:y + height // 8, x:x + width // 8]),)


@node(category="latent/inpaint", display_name="Set Latent Noise Mask")
class SetLatentNoiseMask:
    """Only re-noise (and so repaint) where the mask is 1."""
    inputs = [Input("samples", LATENT), Input("mask", MASK)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, samples, mask):
        return (dict(samples, noise_mask=mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1])),)
