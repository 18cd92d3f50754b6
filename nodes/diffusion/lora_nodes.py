"""LoRA nodes (ComfyUI names): LoraLoader (MODEL + CLIP) and LoraLoaderModelOnly.

The LoRA becomes weight patches on new handles; the base model stays cached and unpatched, so
stacking LoRAs is chaining loaders and dropping one gives the base weights back exactly.
"""
from __future__ import annotations

from nodegraph import CLIP, MODEL, Float, Input, ModelFile, Output, node
from nodegraph import ModelHandle

from .lora import LoraError, LoraFile, LoraPatches, build_patches, lora_from_weights, split_key

__all__ = ["LoraLoader", "LoraLoaderModelOnly"]


def _strength(name: str, tooltip: str):
    return Float(name, default=1.0, min=-100.0, max=100.0, step=0.01, tooltip=tooltip)


def _patches(ctx, lora_name: str, model: ModelHandle | None, clip: ModelHandle | None) -> LoraPatches:
    lora: LoraFile = ctx.models.load("loras", lora_name, lora_from_weights, size=lambda lora: lora.nbytes)
    if not any(split_key(k) for k in lora.tensors):
        raise LoraError(f"lora_name {lora_name!r}: not a LoRA file (none of its {len(lora.tensors)} keys is a "
                        f"LoRA weight, e.g. {next(iter(lora.tensors))!r})")
    patches = build_patches(lora, model=model.module if model is not None else None,
                            clip=clip.module if clip is not None else None)
    # as ComfyUI: keys that do not fit are reported and the rest is applied
    for message in patches.problems("model" if clip is None else "model or CLIP"):
        ctx.warn(f"{lora_name}: {message}")
    if not patches.model and patches.clip_keys and clip is None:
        ctx.warn(f"{lora_name}: only text-encoder weights ({len(patches.clip_keys)} keys); nothing to apply to "
                 "the MODEL (LoraLoader applies them to a CLIP)")
    return patches


@node(category="loaders", display_name="Load LoRA")
class LoraLoader:
    """Apply a LoRA to a diffusion model and its text encoder (kohya/A1111, diffusers/peft, LyCORIS files)."""
    inputs = [Input("model", MODEL, tooltip="The diffusion model the LoRA will be applied to."),
              Input("clip", CLIP, tooltip="The CLIP model the LoRA will be applied to."),
              ModelFile("lora_name", folder="loras", tooltip="The name of the LoRA."),
              _strength("strength_model", "How strongly to modify the diffusion model. This value can be negative."),
              _strength("strength_clip", "How strongly to modify the CLIP model. This value can be negative.")]
    outputs = [Output("MODEL", MODEL), Output("CLIP", CLIP)]

    @classmethod
    def fingerprint(cls, env, lora_name, **_):
        return env.models.fingerprint("loras", lora_name)

    def run(self, ctx, model, clip, lora_name, strength_model=1.0, strength_clip=1.0):
        if strength_model == 0 and strength_clip == 0:
            return model, clip
        patches = _patches(ctx, lora_name, model, clip)
        new_model = model if strength_model == 0 else model.add_patches(patches.model, strength_model)
        new_clip = clip if strength_clip == 0 else clip.add_patches(patches.clip, strength_clip)
        return new_model, new_clip


@node(category="loaders")
class LoraLoaderModelOnly:
    """Apply a LoRA to a diffusion model only (its text-encoder weights, if any, are left out)."""
    inputs = [Input("model", MODEL), ModelFile("lora_name", folder="loras"),
              _strength("strength_model", "How strongly to modify the diffusion model. This value can be negative.")]
    outputs = [Output("MODEL", MODEL)]

    @classmethod
    def fingerprint(cls, env, lora_name, **_):
        return env.models.fingerprint("loras", lora_name)

    def run(self, ctx, model, lora_name, strength_model=1.0):
        if strength_model == 0:
            return (model,)
        patches = _patches(ctx, lora_name, model, None)
        return (model.add_patches(patches.model, strength_model),)
