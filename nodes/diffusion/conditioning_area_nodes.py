"""Where and when a conditioning applies (ComfyUI's nodes.py): an area, a mask, a strength, a part of the
sampling run. The nodes only set extras; the sampler's guidance (sampling/guidance.py) reads them:

  "area"               (h, w, y, x) in latent cells, or ("percentage", h, w, y, x) as fractions
  "strength"           weight of the entry's prediction where it applies
  "mask"               [B, H, W] (resized to the latent), "mask_strength" its weight
  "set_area_to_bounds" the area becomes the mask's bounding box
  "start_percent"/"end_percent"  the part of the run (0 = first step) in which the entry is used
"""
from __future__ import annotations

from nodegraph import CONDITIONING, MASK, Choice, Float, Input, Int, Output, node

from .conditioning_nodes import MAX_RESOLUTION, set_values


@node(category="conditioning", display_name="Conditioning (Set Area)")
class ConditioningSetArea:
    """Restrict a conditioning to a rectangle of the image (pixels, multiples of 8)."""
    inputs = [Input("conditioning", CONDITIONING),
              Int("width", 64, min=64, max=MAX_RESOLUTION, step=8), Int("height", 64, min=64, max=MAX_RESOLUTION, step=8),
              Int("x", 0, min=0, max=MAX_RESOLUTION, step=8), Int("y", 0, min=0, max=MAX_RESOLUTION, step=8),
              Float("strength", 1.0, min=0.0, max=10.0, step=0.01)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning, width, height, x, y, strength):
        return set_values(conditioning, {"area": (height // 8, width // 8, y // 8, x // 8), "strength": strength,
                                         "set_area_to_bounds": False})


@node(category="conditioning", display_name="Conditioning (Set Area with Percentage)")
class ConditioningSetAreaPercentage:
    """Restrict a conditioning to a rectangle given as fractions of the image (works at any size)."""
    inputs = [Input("conditioning", CONDITIONING),
              Float("width", 1.0, min=0.0, max=1.0, step=0.01), Float("height", 1.0, min=0.0, max=1.0, step=0.01),
              Float("x", 0.0, min=0.0, max=1.0, step=0.01), Float("y", 0.0, min=0.0, max=1.0, step=0.01),
              Float("strength", 1.0, min=0.0, max=10.0, step=0.01)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning, width, height, x, y, strength):
        return set_values(conditioning, {"area": ("percentage", height, width, y, x), "strength": strength,
                                         "set_area_to_bounds": False})


@node(category="conditioning")
class ConditioningSetAreaStrength:
    """Set only the strength (weight of this conditioning's prediction where it applies)."""
    inputs = [Input("conditioning", CONDITIONING), Float("strength", 1.0, min=0.0, max=10.0, step=0.01)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning, strength):
        return set_values(conditioning, {"strength": strength})


@node(category="conditioning", display_name="Conditioning (Set Mask)")
class ConditioningSetMask:
    """Apply a conditioning where the mask is (weighted by it); "mask bounds" also crops the model's view
    to the mask's bounding box, so the prompt is drawn whole inside it."""
    inputs = [Input("conditioning", CONDITIONING), Input("mask", MASK),
              Float("strength", 1.0, min=0.0, max=10.0, step=0.01), Choice("set_cond_area", ["default", "mask bounds"])]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning, mask, strength, set_cond_area):
        if mask.ndim < 3:
            mask = mask.unsqueeze(0)
        return set_values(conditioning, {"mask": mask, "set_area_to_bounds": set_cond_area != "default",
                                         "mask_strength": strength})


@node(category="advanced/conditioning")
class ConditioningSetTimestepRange:
    """Use a conditioning only from `start` to `end` of the sampling run (0 = first step, 1 = last)."""
    inputs = [Input("conditioning", CONDITIONING), Float("start", 0.0, min=0.0, max=1.0, step=0.001),
              Float("end", 1.0, min=0.0, max=1.0, step=0.001)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning, start, end):
        return set_values(conditioning, {"start_percent": start, "end_percent": end})
