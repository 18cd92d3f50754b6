"""Text conditioning nodes (ComfyUI names and inputs).

CONDITIONING is a list of [cond tensor [1, 77*k, D], extras dict]; extras carry "pooled_output"
and, after the area nodes, "area" (h, w, y, x in latent cells), "strength", "set_area_to_bounds".
"""
from __future__ import annotations

import logging

import torch

from nodegraph import CLIP, CONDITIONING, Float, Input, Int, Output, String, node

log = logging.getLogger(__name__)
MAX_RESOLUTION = 16384


def encode_text(ctx, clip, text: str) -> list:
    """Run a CLIP handle on a prompt: [[cond, {"pooled_output": pooled}]]."""
    dirs = ctx.folders.search_paths("embeddings") if ctx is not None and ctx.env is not None else []
    with ctx.devices.use(clip) as model:
        with torch.no_grad():
            cond, pooled = model.encode(text, layer_idx=clip.info.get("layer_idx"), embedding_dirs=dirs)
    return [[cond, {"pooled_output": pooled}]]


@node(category="conditioning")
class CLIPTextEncode:
    """Encode a prompt with a CLIP model. Weights: (word:1.2), (word) x1.1; embedding:name for embeddings."""
    inputs = [String("text", multiline=True), Input("clip", CLIP)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, text, clip):
        return encode_text(ctx, clip, text)


@node(category="conditioning")
class CLIPSetLastLayer:
    """Use the output of an earlier text-encoder layer (-1 = last, -2 = penultimate, 'clip skip 2')."""
    inputs = [Input("clip", CLIP), Int("stop_at_clip_layer", -1, min=-24, max=-1)]
    outputs = [Output("CLIP", CLIP)]

    def run(self, ctx, clip, stop_at_clip_layer):
        twin = clip.clone()
        twin.info = {**clip.info, "layer_idx": int(stop_at_clip_layer)}
        return twin


@node(category="conditioning")
class ConditioningCombine:
    """Both conditionings (the sampler averages their predictions)."""
    inputs = [Input("conditioning_1", CONDITIONING), Input("conditioning_2", CONDITIONING)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning_1, conditioning_2):
        return list(conditioning_1) + list(conditioning_2)


@node(category="conditioning")
class ConditioningAverage:
    """Mix conditioning_to with the first entry of conditioning_from (token-wise, pooled too)."""
    inputs = [Input("conditioning_to", CONDITIONING), Input("conditioning_from", CONDITIONING),
              Float("conditioning_to_strength", 1.0, min=0.0, max=1.0, step=0.01)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning_to, conditioning_from, conditioning_to_strength):
        if len(conditioning_from) > 1:
            log.warning("ConditioningAverage: only the first entry of conditioning_from is used")
        cond_from = conditioning_from[0][0]
        pooled_from = conditioning_from[0][1].get("pooled_output")
        w = conditioning_to_strength
        out = []
        for cond_to, extras in conditioning_to:
            pooled_to = extras.get("pooled_output", pooled_from)
            t0 = cond_from[:, :cond_to.shape[1]]
            if t0.shape[1] < cond_to.shape[1]:  # pad the shorter prompt with zeros
                t0 = torch.cat([t0, torch.zeros(1, cond_to.shape[1] - t0.shape[1], cond_to.shape[2],
                                                dtype=t0.dtype)], dim=1)
            mixed = cond_to * w + t0 * (1.0 - w)
            new_extras = dict(extras)
            if pooled_from is not None and pooled_to is not None:
                new_extras["pooled_output"] = pooled_to * w + pooled_from * (1.0 - w)
            elif pooled_from is not None:
                new_extras["pooled_output"] = pooled_from
            out.append([mixed, new_extras])
        return out


@node(category="conditioning")
class ConditioningSetArea:
    """Restrict a conditioning to a rectangle of the image (pixels, multiples of 8)."""
    inputs = [Input("conditioning", CONDITIONING),
              Int("width", 64, min=64, max=MAX_RESOLUTION, step=8), Int("height", 64, min=64, max=MAX_RESOLUTION, step=8),
              Int("x", 0, min=0, max=MAX_RESOLUTION, step=8), Int("y", 0, min=0, max=MAX_RESOLUTION, step=8),
              Float("strength", 1.0, min=0.0, max=10.0, step=0.01)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning, width, height, x, y, strength):
        out = []
        for cond, extras in conditioning:
            new_extras = dict(extras)
            new_extras["area"] = (height // 8, width // 8, y // 8, x // 8)
            new_extras["strength"] = strength
            new_extras["set_area_to_bounds"] = False
            out.append([cond, new_extras])
        return out


@node(category="advanced/conditioning")
class ConditioningZeroOut:
    """All-zero conditioning (and pooled output) of the same shape."""
    inputs = [Input("conditioning", CONDITIONING)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning):
        out = []
        for cond, extras in conditioning:
            new_extras = dict(extras)
            if new_extras.get("pooled_output") is not None:
                new_extras["pooled_output"] = torch.zeros_like(new_extras["pooled_output"])
            out.append([torch.zeros_like(cond), new_extras])
        return out
