"""ComfyUI-style model patches on MODEL handles: new handles carrying options, the shared model untouched.

A MODEL handle (nodegraph.devices.ModelHandle) shares its DiffusionModel with every handle cloned from it.
The model-patch nodes never change that module; like ComfyUI's ModelPatcher.clone() they return a clone
whose `info` carries:

    info["model_options"]   ComfyUI's model_options: "sampler_cfg_function", "sampler_post_cfg_function",
                            "disable_cfg1_optimization", "transformer_options" (U-Net patches, see
                            unet_patches.py). The samplers read them per model call (sampling/guidance.py).
    info["object_patches"]  ComfyUI's object patches: "model_sampling" (a ModelSampling replacing the
                            model's schedule and prediction type), "latent_format" (a LatentFormat).

Option dicts are copied on every change, so a handle's options never change after it is made (the cached
outputs of other nodes that hold it stay what they were).
"""
from __future__ import annotations

from typing import Any, Callable

from nodegraph import ModelHandle

from .sampling import ModelSampling

__all__ = ["PatchedDiffusion", "add_post_cfg_function", "add_unet_patch", "copy_options", "model_options",
           "model_sampling", "patched", "sampling_model", "set_attention_replace", "set_cfg_function"]


def model_options(handle: ModelHandle) -> dict:
    return handle.info.get("model_options") or {}


def copy_options(options: dict) -> dict:
    """Nested dicts and lists copied, functions and tensors shared (ComfyUI's copy_nested_dicts)."""
    def copy(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: copy(v) for k, v in value.items()}
        if isinstance(value, list):
            return [copy(v) for v in value]
        return value
    return copy(options)


def patched(handle: ModelHandle, change: Callable[[dict], None] | None = None, **objects: Any) -> ModelHandle:
    """A clone of the handle (same module, same weight patches) whose model options are this handle's after
    `change(options)`, and whose object patches include `objects`."""
    twin = handle.clone()
    options = copy_options(model_options(handle))
    if change is not None:
        change(options)
    twin.info["model_options"] = options
    if objects:
        twin.info["object_patches"] = {**handle.info.get("object_patches", {}), **objects}
    return twin


# --- ComfyUI's ModelPatcher setters, on an options dict ----------------------------------------------------

def set_cfg_function(options: dict, fn: Callable[[dict], Any], disable_cfg1_optimization: bool = False) -> None:
    options["sampler_cfg_function"] = fn
    if disable_cfg1_optimization:
        options["disable_cfg1_optimization"] = True


def add_post_cfg_function(options: dict, fn: Callable[[dict], Any], disable_cfg1_optimization: bool = False) -> None:
    options["sampler_post_cfg_function"] = list(options.get("sampler_post_cfg_function", [])) + [fn]
    if disable_cfg1_optimization:
        options["disable_cfg1_optimization"] = True


def add_unet_patch(options: dict, name: str, fn: Callable) -> None:
    """transformer_options["patches"][name] += [fn] (e.g. "output_block_patch")."""
    patches = options.setdefault("transformer_options", {}).setdefault("patches", {})
    patches[name] = list(patches.get(name, [])) + [fn]


def set_attention_replace(options: dict, fn: Callable, name: str, block_name: str, number: int,
                          transformer_index: int | None = None) -> dict:
    """A copy of the options with `fn` replacing attention `name` ("attn1" / "attn2") in the block
    (block_name, number[, transformer_index]) (ComfyUI's set_model_options_patch_replace)."""
    out = dict(options)
    transformer = dict(out.get("transformer_options", {}))
    replace = dict(transformer.get("patches_replace", {}))
    table = dict(replace.get(name, {}))
    key = (block_name, number) if transformer_index is None else (block_name, number, transformer_index)
    table[key] = fn
    replace[name] = table
    transformer["patches_replace"] = replace
    out["transformer_options"] = transformer
    return out


# --- object patches ------------------------------------------------------------------------------------------

class PatchedDiffusion:
    """A DiffusionModel as a handle's object patches change it: their model_sampling and latent_format,
    everything else the model's own."""

    def __init__(self, base: Any, objects: dict) -> None:
        self._base = base
        self.model_sampling = objects.get("model_sampling")
        self.latent_format = objects.get("latent_format") or base.latent_format

    def __getattr__(self, name: str) -> Any:  # only called for what is not set above
        return getattr(self._base, name)


def sampling_model(diffusion: Any, handle: ModelHandle) -> Any:
    """The module a sampler should drive for this handle: the DiffusionModel itself, or a view with the
    handle's object patches."""
    objects = handle.info.get("object_patches")
    return PatchedDiffusion(diffusion, objects) if objects else diffusion


def model_sampling(handle: ModelHandle) -> ModelSampling:
    """The handle's schedule and prediction type (the scheduler nodes' sigmas come from it)."""
    return ModelSampling.for_model(sampling_model(handle.module, handle))
