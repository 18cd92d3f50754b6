"""Model merging as weight patches (ComfyUI's comfy_extras/nodes_model_merging.py maths).

ComfyUI merges by giving model1 a patch per weight: `w = keep * w1 + take * w2`, where w1 is model1's
weight with the patches it already had and w2 is model2's weight with *its* patches (its LoRAs count).
Simple: keep = ratio, take = 1 - ratio (ratio 1 is model1).  Add: keep = take = 1.
Subtract: keep = multiplier, take = -multiplier (multiplier * (w1 - w2)).

Here each merged weight is a callable patch: when the device manager applies model1's patches it asks
the patch for its delta, `(keep - 1) * w1 + take * w2`, and the patch reads w2 from model2's base
weights plus model2's patches at that moment, on the device. Nothing is copied when the node runs, the
base modules stay cached and unmerged handles keep their exact weights.
"""
from __future__ import annotations

from typing import Callable, Mapping

import torch

from nodegraph import ModelHandle

from .checkpoint.to_ldm import unet_to_ldm

# ComfyUI leaves these out of CLIP merges (position ids are indices, logit_scale is not a text weight)
CLIP_SKIPPED_SUFFIXES = (".position_ids", ".logit_scale")


class MergeError(ValueError):
    """Two models that cannot be merged; the message names the node input at fault."""


class MergePatch:
    """The delta that turns w1 into keep * w1 + take * w2 for one weight (see the module notes)."""

    def __init__(self, devices, other: ModelHandle, key: str, keep: float, take: float) -> None:
        self.devices, self.other, self.key = devices, other, key
        self.keep, self.take = float(keep), float(take)

    def __call__(self, acc: torch.Tensor) -> torch.Tensor:
        other = self.devices.patched_weight(self.other, self.key).to(acc.device)
        delta = other.mul_(self.take)
        if self.keep != 1.0:
            delta.add_(acc, alpha=self.keep - 1.0)
        return delta


def _weights(handle: ModelHandle) -> dict[str, torch.Tensor]:
    module = handle.module
    found = dict(module.named_parameters())
    found.update(dict(module.named_buffers()))
    return found


def mergeable_keys(model1: ModelHandle, model2: ModelHandle, skip: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(keys both have with the same shape, keys of model2 whose shape differs in model1). Keys only model2
    has are ignored, as ComfyUI's add_patches ignores keys its model lacks."""
    mine, theirs = _weights(model1), _weights(model2)
    same, differ = [], []
    for key, tensor in theirs.items():
        if key.endswith(skip) or key not in mine:
            continue
        (same if mine[key].shape == tensor.shape else differ).append(key)
    return same, differ


def merged(ctx, model1: ModelHandle, model2: ModelHandle, ratio_of: Callable[[str], tuple[float, float]],
           what: tuple[str, str] = ("model1", "model2"), skip: tuple[str, ...] = ()) -> ModelHandle:
    """model1 with a merge patch per weight shared with model2; ratio_of(key) gives (keep, take)."""
    if type(model1.module) is not type(model2.module):
        raise MergeError(f"{what[1]} is a {type(model2.module).__name__}, {what[0]} a {type(model1.module).__name__}: "
                         "only models of one kind merge")
    families = (model1.info.get("family"), model2.info.get("family"))
    if None not in families and families[0] != families[1]:
        raise MergeError(f"{what[0]} is an {families[0]} model and {what[1]} an {families[1]} one: models of "
                         "different families do not merge")
    keys, differ = mergeable_keys(model1, model2, skip)
    if not keys:
        raise MergeError(f"{what[0]} and {what[1]} share no weight of the same shape: they are different "
                         f"architectures ({model1.info.get('family', '?')} and {model2.info.get('family', '?')})")
    if differ:
        ctx.warn(f"{what[1]}: {len(differ)} weights have other shapes than in {what[0]} and are not merged, "
                 f"e.g. {differ[0]!r}")
    patches = {}
    for key in keys:
        keep, take = ratio_of(key)
        patches[key] = MergePatch(ctx.devices, model2, key, keep, take)
    return model1.add_patches(patches, 1.0)


def ldm_unet_names(handle: ModelHandle) -> dict[str, str]:
    """Patch key ("unet.<diffusers key>") -> the key in the original layout ("input_blocks.1.1.norm.weight"),
    which ComfyUI's block merges match their prefixes against."""
    diffusion = handle.module
    config = dict(getattr(diffusion, "config", None) or {})
    unet_keys = [k for k in _weights(handle) if k.startswith("unet.")]
    renamed = unet_to_ldm({k[len("unet."):]: k for k in unet_keys}, config)
    return {patch_key: ldm for ldm, patch_key in renamed.items()}


def block_ratio(ldm_key: str, ratios: Mapping[str, float], default: float) -> float:
    """ComfyUI's ModelMergeBlocks rule: the ratio of the longest input name that prefixes the key,
    else the first input's ratio."""
    best, ratio = 0, default
    for prefix, value in ratios.items():
        if ldm_key.startswith(prefix) and len(prefix) > best:
            best, ratio = len(prefix), value
    return ratio


def sd1_block_names() -> list[str]:
    """ModelMergeSD1's ratio inputs, in ComfyUI's order."""
    return (["time_embed.", "label_emb."] + [f"input_blocks.{i}." for i in range(12)]
            + [f"middle_block.{i}." for i in range(3)] + [f"output_blocks.{i}." for i in range(12)] + ["out."])


def sdxl_block_names() -> list[str]:
    """ModelMergeSDXL's ratio inputs, in ComfyUI's order (no trailing dot after the block number there)."""
    return (["time_embed.", "label_emb."] + [f"input_blocks.{i}" for i in range(9)]
            + [f"middle_block.{i}" for i in range(3)] + [f"output_blocks.{i}" for i in range(9)] + ["out."])
