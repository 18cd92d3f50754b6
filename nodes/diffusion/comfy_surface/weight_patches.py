"""ComfyUI's add_patches / get_key_patches over our handles' weight patches.

ComfyUI names a MODEL's weights "diffusion_model.<LDM key>" and a CLIP's "clip_<l|g|h>.transformer.<key>";
our handles' patch keys are "unet.<diffusers key>" and "encoders.<i>.<key>" (models.py). A ComfyUI patch
value is a tensor or (tensor,) ("diff": added), ("diff", (tensor,)), ("set", (tensor,)), or the list
get_key_patches gives ([(weight, convert_func), ...]: that weight, with the patches after it applied).
ComfyUI then computes, per weight: weight * strength_model + strength_patch * value ("set": value).
Here each becomes a callable patch the device manager applies when the model is used, so nothing is
computed per sampling step and the base module stays untouched (as our LoRA path).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..merge import ldm_unet_names


def unet_key_map(handle) -> dict[str, str]:
    """ComfyUI key ("diffusion_model.<LDM key>") -> our patch key ("unet.<diffusers key>")."""
    cache = handle.module.__dict__.setdefault("_comfy_key_map", {})
    if "unet" not in cache:
        cache["unet"] = {f"diffusion_model.{ldm}": ours for ours, ldm in ldm_unet_names(handle).items()}
    return cache["unet"]


def clip_key_map(handle) -> dict[str, str]:
    """ComfyUI key ("clip_l.transformer.<transformers key>") -> ours ("encoders.<i>.<key>")."""
    cache = handle.module.__dict__.setdefault("_comfy_key_map", {})
    if "clip" not in cache:
        out = {}
        for i, spec in enumerate(handle.module.specs):
            prefix = f"encoders.{i}."
            for key, _ in handle.module.named_parameters():
                if key.startswith(prefix):
                    out[f"clip_{spec.name}.transformer.{key[len(prefix):]}"] = key
        cache["clip"] = out
    return cache["clip"]


def _value_of(value: Any, devices) -> tuple[str, Any]:
    """A ComfyUI patch value -> ("diff" | "set", tensor or a function of nothing giving one)."""
    if isinstance(value, torch.Tensor):
        return "diff", value
    if isinstance(value, list):  # get_key_patches' form: a base weight with its own patches
        first = value[0]
        weight = first[0] if isinstance(first, tuple) else first
        if len(value) > 1:
            raise NotImplementedError("a get_key_patches list with patches after its weight (ours never "
                                      "gives one: its weights come with their patches applied)")
        return "diff", weight
    if isinstance(value, tuple):
        if len(value) == 1 and isinstance(value[0], torch.Tensor):
            return "diff", value[0]
        if len(value) == 2 and value[0] in ("diff", "set"):
            return value[0], value[1][0]
        kind = value[0] if value and isinstance(value[0], str) else type(value).__name__
        raise NotImplementedError(f"ComfyUI weight patch kind {kind!r} is not supported by nodegraph's ComfyUI "
                                  "layer (tensors, 'diff', 'set' and get_key_patches lists are)")
    raise NotImplementedError(f"ComfyUI weight patch of type {type(value).__name__} is not supported by "
                              "nodegraph's ComfyUI layer (LoRA files go through comfy.sd.load_lora_for_models)")


class ComfyWeightPatch:
    """The delta that makes `acc` into acc * strength_model + strength_patch * value (or value, for set)."""

    def __init__(self, kind: str, value: torch.Tensor, strength_patch: float, strength_model: float) -> None:
        self.kind, self.value = kind, value
        self.strength_patch, self.strength_model = float(strength_patch), float(strength_model)

    def __call__(self, acc: torch.Tensor) -> torch.Tensor:
        value = self.value.to(device=acc.device, dtype=torch.float32)
        if value.shape != acc.shape:
            if value.numel() != acc.numel():  # ComfyUI skips such a patch with a warning
                return torch.zeros_like(acc)
            value = value.reshape(acc.shape)  # e.g. 1x1 conv in one layout, linear in the other
        if self.kind == "set":
            return value - acc
        delta = value * self.strength_patch
        if self.strength_model != 1.0:
            delta = delta + acc * (self.strength_model - 1.0)
        return delta


def comfy_patches(patches: dict, key_map: dict[str, str], own_keys: set[str], strength_patch: float,
                  strength_model: float, devices=None) -> tuple[list[tuple[str, float, Callable]], list]:
    """(our patch triples, the ComfyUI keys accepted). Keys the model lacks are left out, as ComfyUI."""
    triples, accepted = [], []
    for key, value in patches.items():
        name = key[0] if isinstance(key, tuple) else key  # (key, offset[, function]) forms: whole weight only
        if isinstance(key, tuple) and len(key) > 1 and key[1] is not None:
            raise NotImplementedError("ComfyUI weight patches with an offset are not supported by nodegraph")
        ours = key_map.get(name) or (name if name in own_keys else None)
        if ours is None:
            continue
        kind, tensor = _value_of(value, devices)
        triples.append((ours, 1.0, ComfyWeightPatch(kind, tensor, strength_patch, strength_model)))
        accepted.append(key)
    return triples, accepted


def key_patches(handle, devices, key_map: dict[str, str], filter_prefix: str | None = None) -> dict:
    """ComfyUI's get_key_patches: {ComfyUI key: [(weight with this handle's patches, convert_func)]}."""
    out = {}
    for comfy_key, ours in key_map.items():
        if filter_prefix is not None and not comfy_key.startswith(filter_prefix):
            continue
        out[comfy_key] = [(devices.patched_weight(handle, ours).cpu(), _identity)]
    return out


def _identity(weight, **_):
    return weight
