"""Model-merging nodes (ComfyUI 0.8's comfy_extras/nodes_model_merging.py and
nodes_model_merging_model_specific.py): names, inputs, order, defaults, ranges and maths as ComfyUI.

Each returns model1 (clip1) with merge patches on a new handle; see merge.py for the maths.
"""
from __future__ import annotations

from nodegraph import CLIP, MODEL, Float, Input, Output, node

from .merge import CLIP_SKIPPED_SUFFIXES, block_ratio, ldm_unet_names, merged, sd1_block_names, sdxl_block_names

__all__ = ["ModelMergeSimple", "ModelMergeBlocks", "ModelMergeSubtract", "ModelMergeAdd", "ModelMergeSD1",
           "ModelMergeSDXL", "CLIPMergeSimple", "CLIPMergeSubtract", "CLIPMergeAdd"]

CATEGORY = "advanced/model_merging"


def _ratio(name: str) -> Input:
    return Float(name, default=1.0, min=0.0, max=1.0, step=0.01)


def _multiplier() -> Input:
    return Float("multiplier", default=1.0, min=-10.0, max=10.0, step=0.01)


def _simple(keep: float, take: float):
    return lambda key: (keep, take)


@node(category=CATEGORY)
class ModelMergeSimple:
    """model1 * ratio + model2 * (1 - ratio), weight by weight (ratio 1 gives model1)."""
    inputs = [Input("model1", MODEL), Input("model2", MODEL), _ratio("ratio")]
    outputs = [Output("MODEL", MODEL)]

    def run(self, ctx, model1, model2, ratio=1.0):
        return (merged(ctx, model1, model2, _simple(ratio, 1.0 - ratio)),)


@node(category=CATEGORY)
class ModelMergeSubtract:
    """(model1 - model2) * multiplier: the difference of two models, e.g. what a fine-tune added."""
    inputs = [Input("model1", MODEL), Input("model2", MODEL), _multiplier()]
    outputs = [Output("MODEL", MODEL)]

    def run(self, ctx, model1, model2, multiplier=1.0):
        return (merged(ctx, model1, model2, _simple(multiplier, -multiplier)),)


@node(category=CATEGORY)
class ModelMergeAdd:
    """model1 + model2, weight by weight (e.g. a base plus a difference from ModelMergeSubtract)."""
    inputs = [Input("model1", MODEL), Input("model2", MODEL)]
    outputs = [Output("MODEL", MODEL)]

    def run(self, ctx, model1, model2):
        return (merged(ctx, model1, model2, _simple(1.0, 1.0)),)


class _BlockMerge:
    """ComfyUI's ModelMergeBlocks: each weight takes the ratio of the longest ratio-input name that
    prefixes its original-layout key, else the first ratio input's value."""

    def run(self, ctx, model1, model2, **ratios):
        names = [i.name for i in self.inputs[2:]]
        values = {name: float(ratios.get(name, 1.0)) for name in names}
        default = values[names[0]]
        ldm = ldm_unet_names(model1)

        def ratio_of(key):
            ratio = block_ratio(ldm.get(key, key), values, default)
            return ratio, 1.0 - ratio

        return (merged(ctx, model1, model2, ratio_of),)


@node(category=CATEGORY)
class ModelMergeBlocks(_BlockMerge):
    """Merge with one ratio for the input blocks, one for the middle block and one for the output blocks."""
    inputs = [Input("model1", MODEL), Input("model2", MODEL), _ratio("input"), _ratio("middle"), _ratio("out")]
    outputs = [Output("MODEL", MODEL)]


@node(category=CATEGORY + "/model_specific")
class ModelMergeSD1(_BlockMerge):
    """Merge SD1.x/SD2.x U-Nets with a ratio per block (ComfyUI's input names are the key prefixes)."""
    inputs = [Input("model1", MODEL), Input("model2", MODEL)] + [_ratio(n) for n in sd1_block_names()]
    outputs = [Output("MODEL", MODEL)]


@node(category=CATEGORY + "/model_specific")
class ModelMergeSDXL(_BlockMerge):
    """Merge SDXL U-Nets with a ratio per block (ComfyUI's input names are the key prefixes)."""
    inputs = [Input("model1", MODEL), Input("model2", MODEL)] + [_ratio(n) for n in sdxl_block_names()]
    outputs = [Output("MODEL", MODEL)]


def _clip_merge(ctx, clip1, clip2, keep, take):
    return merged(ctx, clip1, clip2, _simple(keep, take), what=("clip1", "clip2"), skip=CLIP_SKIPPED_SUFFIXES)


@node(category=CATEGORY)
class CLIPMergeSimple:
    """clip1 * ratio + clip2 * (1 - ratio), text-encoder weight by weight."""
    inputs = [Input("clip1", CLIP), Input("clip2", CLIP), _ratio("ratio")]
    outputs = [Output("CLIP", CLIP)]

    def run(self, ctx, clip1, clip2, ratio=1.0):
        return (_clip_merge(ctx, clip1, clip2, ratio, 1.0 - ratio),)


@node(category=CATEGORY)
class CLIPMergeSubtract:
    """(clip1 - clip2) * multiplier."""
    inputs = [Input("clip1", CLIP), Input("clip2", CLIP), _multiplier()]
    outputs = [Output("CLIP", CLIP)]

    def run(self, ctx, clip1, clip2, multiplier=1.0):
        return (_clip_merge(ctx, clip1, clip2, multiplier, -multiplier),)


@node(category=CATEGORY)
class CLIPMergeAdd:
    """clip1 + clip2."""
    inputs = [Input("clip1", CLIP), Input("clip2", CLIP)]
    outputs = [Output("CLIP", CLIP)]

    def run(self, ctx, clip1, clip2):
        return (_clip_merge(ctx, clip1, clip2, 1.0, 1.0),)
