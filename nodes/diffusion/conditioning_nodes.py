"""Text conditioning nodes (ComfyUI names and inputs): prompts to CONDITIONING, and CONDITIONING mixed.

CONDITIONING is a list of [cond tensor [1, 77*k, D], extras dict]; extras carry "pooled_output" and
whatever later nodes add (area and mask: conditioning_area_nodes.py; SDXL size ids: the SDXL encoders
here, read by DiffusionModel.sdxl_time_ids).
"""
from __future__ import annotations

import logging

import torch

from nodegraph import CLIP, CONDITIONING, Float, Input, Int, Output, String, node

log = logging.getLogger(__name__)
MAX_RESOLUTION = 16384


def set_values(conditioning, values: dict) -> list:
    """Each entry with `values` set in a copy of its extras (ComfyUI's node_helpers.conditioning_set_values)."""
    return [[item[0], {**item[1], **values}] for item in conditioning]


def _encode(ctx, clip, encode) -> tuple[torch.Tensor, torch.Tensor]:
    with ctx.devices.use(clip) as model:
        with torch.no_grad():
            return encode(model)


def _embedding_dirs(ctx) -> list:
    return ctx.folders.search_paths("embeddings") if ctx is not None and ctx.env is not None else []


def encode_text(ctx, clip, text: str, extras: dict | None = None) -> list:
    """Run a CLIP handle on a prompt: [[cond, {"pooled_output": pooled, **extras}]]."""
    dirs = _embedding_dirs(ctx)
    cond, pooled = _encode(ctx, clip, lambda m: m.encode(text, layer_idx=clip.info.get("layer_idx"), embedding_dirs=dirs))
    return [[cond, {"pooled_output": pooled, **(extras or {})}]]


@node(category="conditioning", display_name="CLIP Text Encode (Prompt)")
class CLIPTextEncode:
    """Encode a prompt with a CLIP model. Weights: (word:1.2), (word) x1.1; embedding:name for embeddings."""
    inputs = [String("text", multiline=True), Input("clip", CLIP)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, text, clip):
        return encode_text(ctx, clip, text)


@node(category="advanced/conditioning")
class CLIPTextEncodeSDXL:
    """SDXL's two text encoders on their own prompts (text_g for bigG, text_l for CLIP-L), with the size
    and crop ids the SDXL U-Net is conditioned on (ComfyUI's comfy_extras/nodes_clip_sdxl.py)."""
    inputs = [Input("clip", CLIP),
              Int("width", 1024, min=0, max=MAX_RESOLUTION), Int("height", 1024, min=0, max=MAX_RESOLUTION),
              Int("crop_w", 0, min=0, max=MAX_RESOLUTION), Int("crop_h", 0, min=0, max=MAX_RESOLUTION),
              Int("target_width", 1024, min=0, max=MAX_RESOLUTION), Int("target_height", 1024, min=0, max=MAX_RESOLUTION),
              String("text_g", multiline=True), String("text_l", multiline=True)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, clip, width, height, crop_w, crop_h, target_width, target_height, text_g, text_l):
        dirs = _embedding_dirs(ctx)

        def encode(model):
            names = [spec.name for spec in model.specs]
            if sorted(names) != ["g", "l"]:
                raise ValueError(f"clip: CLIPTextEncodeSDXL needs an SDXL CLIP (text encoders l and g); "
                                 f"this {model.family} CLIP has {', '.join(names)}")
            tokens = model.tokenize(text_g, dirs)
            tokens["l"] = model.tokenize(text_l, dirs)["l"]
            empty = model.tokenize("")
            while len(tokens["l"]) < len(tokens["g"]):  # both prompts as many 77-token chunks
                tokens["l"] += empty["l"]
            while len(tokens["l"]) > len(tokens["g"]):
                tokens["g"] += empty["g"]
            return model.encode_tokens(tokens, layer_idx=clip.info.get("layer_idx"))

        cond, pooled = _encode(ctx, clip, encode)
        sizes = {"width": width, "height": height, "crop_w": crop_w, "crop_h": crop_h,
                 "target_width": target_width, "target_height": target_height}
        return [[cond, {"pooled_output": pooled, **sizes}]]


@node(category="advanced/conditioning")
class CLIPTextEncodeSDXLRefiner:
    """The SDXL refiner's prompt, with the aesthetic score and image size its U-Net is conditioned on."""
    inputs = [Float("ascore", 6.0, min=0.0, max=1000.0, step=0.01),
              Int("width", 1024, min=0, max=MAX_RESOLUTION), Int("height", 1024, min=0, max=MAX_RESOLUTION),
              String("text", multiline=True), Input("clip", CLIP)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, ascore, width, height, text, clip):
        return encode_text(ctx, clip, text, {"aesthetic_score": ascore, "width": width, "height": height})


@node(category="conditioning", display_name="CLIP Set Last Layer")
class CLIPSetLastLayer:
    """Use the output of an earlier text-encoder layer (-1 = last, -2 = penultimate, 'clip skip 2')."""
    inputs = [Input("clip", CLIP), Int("stop_at_clip_layer", -1, min=-24, max=-1)]
    outputs = [Output("CLIP", CLIP)]

    def run(self, ctx, clip, stop_at_clip_layer):
        twin = clip.clone()
        twin.info = {**clip.info, "layer_idx": int(stop_at_clip_layer)}
        return twin


@node(category="conditioning", display_name="Conditioning (Combine)")
class ConditioningCombine:
    """Both conditionings (the sampler averages their predictions)."""
    inputs = [Input("conditioning_1", CONDITIONING), Input("conditioning_2", CONDITIONING)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning_1, conditioning_2):
        return list(conditioning_1) + list(conditioning_2)


def _first_of(conditioning_from, node_name: str) -> list:
    if not conditioning_from:
        raise ValueError(f"conditioning_from: {node_name} got an empty conditioning")
    if len(conditioning_from) > 1:
        log.warning("%s: conditioning_from has %d entries; only the first is used", node_name, len(conditioning_from))
    return conditioning_from[0]


@node(category="conditioning")
class ConditioningAverage:
    """Mix conditioning_to with the first entry of conditioning_from (token-wise, pooled too):
    to * strength + from * (1 - strength), the shorter prompt padded with zeros."""
    inputs = [Input("conditioning_to", CONDITIONING), Input("conditioning_from", CONDITIONING),
              Float("conditioning_to_strength", 1.0, min=0.0, max=1.0, step=0.01)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning_to, conditioning_from, conditioning_to_strength):
        cond_from, extras_from = _first_of(conditioning_from, "ConditioningAverage")
        pooled_from = extras_from.get("pooled_output")
        w = conditioning_to_strength
        out = []
        for cond_to, extras in conditioning_to:
            pooled_to = extras.get("pooled_output", pooled_from)
            t0 = cond_from[:, :cond_to.shape[1]]
            if t0.shape[1] < cond_to.shape[1]:
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


@node(category="conditioning", display_name="Conditioning (Concat)")
class ConditioningConcat:
    """Append the tokens of conditioning_from's first entry to each entry of conditioning_to (one longer
    prompt whose parts do not attend to each other in the text encoder); extras stay conditioning_to's."""
    inputs = [Input("conditioning_to", CONDITIONING), Input("conditioning_from", CONDITIONING)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning_to, conditioning_from):
        cond_from = _first_of(conditioning_from, "ConditioningConcat")[0]
        out = []
        for cond_to, extras in conditioning_to:
            if cond_to.shape[2] != cond_from.shape[2]:
                raise ValueError(f"conditioning_from: token width {cond_from.shape[2]} differs from "
                                 f"conditioning_to's {cond_to.shape[2]} (prompts of different text encoders)")
            out.append([torch.cat((cond_to, cond_from.to(cond_to.dtype)), 1), dict(extras)])
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
            for key in ("pooled_output", "conditioning_lyrics"):  # ComfyUI zeroes both when present
                if new_extras.get(key) is not None:
                    new_extras[key] = torch.zeros_like(new_extras[key])
            out.append([torch.zeros_like(cond), new_extras])
        return out
