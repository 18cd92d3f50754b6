"""GLIGEN nodes with ComfyUI 0.8's names, inputs and maths (nodes.py GLIGENLoader, GLIGENTextBoxApply)."""
from __future__ import annotations

import copy
import dataclasses

import torch

from nodegraph import CLIP, CONDITIONING, Input, Int, ModelFile, ModelHandle, Output, String, node

from .conditioning_nodes import MAX_RESOLUTION, _embedding_dirs
from .vision.gligen import Gligen, GligenRef, build_gligen
from .vision_types import GLIGEN

__all__ = ["GLIGENLoader", "GLIGENTextBoxApply"]


@node(category="loaders", display_name="GLIGENLoader")  # ComfyUI has no display name: the class name
class GLIGENLoader:
    """Load a GLIGEN model (position net and gated self-attention fusers, original layout)."""
    inputs = [ModelFile("gligen_name", folder="gligen")]
    outputs = [Output("GLIGEN", GLIGEN)]

    @classmethod
    def fingerprint(cls, env, gligen_name):
        return env.models.fingerprint("gligen", gligen_name)

    def run(self, ctx, gligen_name):
        return (ctx.models.load("gligen", gligen_name, build_gligen),)


def unprojected_pooled(ctx, clip, text: str) -> torch.Tensor:
    """The prompt's pooled text embedding before any text projection (ComfyUI's return_pooled="unprojected")."""
    with ctx.devices.use(clip) as model, torch.no_grad():
        plain = copy.copy(model)  # same encoders, pooled outputs not projected
        plain.specs = [dataclasses.replace(spec, project_pooled=False) for spec in model.specs]
        tokens = plain.tokenize(text, _embedding_dirs(ctx))
        return plain.encode_tokens(tokens, clip.info.get("layer_idx"))[1]


@node(category="conditioning/gligen", display_name="GLIGENTextBoxApply")
class GLIGENTextBoxApply:
    """Ground a phrase in a box of the image: the phrase's pooled embedding and the box (pixels; stored in
    latent cells) join every conditioning entry's GLIGEN boxes."""
    inputs = [Input("conditioning_to", CONDITIONING), Input("clip", CLIP), Input("gligen_textbox_model", GLIGEN),
              String("text", multiline=True),
              Int("width", 64, min=8, max=MAX_RESOLUTION, step=8), Int("height", 64, min=8, max=MAX_RESOLUTION, step=8),
              Int("x", 0, min=0, max=MAX_RESOLUTION, step=8), Int("y", 0, min=0, max=MAX_RESOLUTION, step=8)]
    outputs = [Output("CONDITIONING", CONDITIONING)]

    def run(self, ctx, conditioning_to, clip, gligen_textbox_model, text, width, height, x, y):
        if not isinstance(gligen_textbox_model, ModelHandle) or not isinstance(gligen_textbox_model.module, Gligen):
            raise ValueError(f"gligen_textbox_model: expected a GLIGEN model, got {type(gligen_textbox_model).__name__}")
        pooled = unprojected_pooled(ctx, clip, text)
        key_dim = gligen_textbox_model.info.get("key_dim")
        if key_dim is not None and pooled.shape[-1] != key_dim:
            raise ValueError(f"gligen_textbox_model: it takes {key_dim}-wide text embeddings, this CLIP gives "
                             f"{pooled.shape[-1]}; the GLIGEN model does not fit this text encoder")
        ref = GligenRef(gligen_textbox_model, ctx.devices)
        box = (pooled, height // 8, width // 8, y // 8, x // 8)
        out = []
        for cond, extras in conditioning_to:
            extras = dict(extras)
            previous = list(extras["gligen"][2]) if "gligen" in extras else []
            extras["gligen"] = ("position", ref, previous + [box])
            out.append([cond, extras])
        return (out,)
