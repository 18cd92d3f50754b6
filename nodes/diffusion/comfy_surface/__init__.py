"""The ComfyUI model surface of this pack's MODEL, CLIP and VAE values, offered to nodegraph's ComfyUI
layer (nodegraph.comfy_compat) through nodegraph.provide("comfy.models", ...).

The layer calls wrap(value, ctx) on every value a ComfyUI pack node receives and unwrap(value) on what
it returns: a MODEL handle is seen as ComfyUI's ModelPatcher (patcher.py), a CLIP handle as comfy.sd.CLIP
and a VAE handle as comfy.sd.VAE (clip_vae.py); they go back to handles on the way out. comfy.samplers,
comfy.sample, nodes.common_ksampler and latent_preview call sampling.py.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from nodegraph import ModelHandle, provide

from ..models import ClipModel, DiffusionModel, VAEModel
from . import sampling
from .clip_vae import ComfyCLIP, ComfyVAE
from .patcher import ComfyModelPatcher, UnsupportedSurface

__all__ = ["ComfyCLIP", "ComfyModelPatcher", "ComfyVAE", "UnsupportedSurface", "unwrap", "wrap"]

_SURFACES = ((DiffusionModel, ComfyModelPatcher), (ClipModel, ComfyCLIP), (VAEModel, ComfyVAE))
WRAPPED = (ComfyModelPatcher, ComfyCLIP, ComfyVAE)


def wrap(value: Any, ctx) -> Any:
    """A handle as the ComfyUI object a pack expects; anything else unchanged."""
    if isinstance(value, ModelHandle):
        for module_type, surface in _SURFACES:
            if isinstance(value.module, module_type):
                return surface(value, ctx)
    return value


def unwrap(value: Any) -> Any:
    """A ComfyUI object of ours back to the handle it stands for now; anything else unchanged."""
    if isinstance(value, WRAPPED):
        return value.to_handle()
    return value


def load_checkpoint(ctx, ckpt_path: str, output_vae: bool = True, output_clip: bool = True,
                    output_model: bool = True) -> tuple:
    """comfy.sd.load_checkpoint_guess_config: (MODEL, CLIP, VAE, None) of a single-file checkpoint (or a
    diffusers folder), through the model cache as CheckpointLoaderSimple loads."""
    from pathlib import Path

    from nodegraph import read_weights

    from ..loader_nodes import checkpoint_handles, diffusers_handles

    path = Path(ckpt_path).resolve()
    name = _name_in(ctx.folders.search_paths("checkpoints"), path)
    if name is not None:  # in a checkpoints folder: the very load CheckpointLoaderSimple shares
        build = diffusers_handles if path.is_dir() else checkpoint_handles
        model, clip, vae = (ctx.models.load_path if path.is_dir() else ctx.models.load)("checkpoints", name, build)
    else:
        key = ("comfy.sd.load_checkpoint_guess_config", str(path), path.stat().st_mtime_ns)
        build_any = (lambda: diffusers_handles(path)) if path.is_dir() else (lambda: checkpoint_handles(read_weights(path)))
        model, clip, vae = ctx.devices.load_cached(key, build_any)
    return (wrap(model, ctx) if output_model else None, wrap(clip, ctx) if output_clip else None,
            wrap(vae, ctx) if output_vae else None, None)


def _name_in(folders, path) -> str | None:
    for folder in folders:
        try:
            return path.relative_to(folder.resolve()).as_posix()
        except ValueError:
            continue
    return None


def load_lora_for_models(model: Any, clip: Any, lora: dict, strength_model: float, strength_clip: float) -> tuple:
    """comfy.sd.load_lora_for_models: clones of model / clip with the LoRA state dict's patches (our LoRA code)."""
    from ..lora import build_patches

    patches = build_patches(lora, model=model.handle.module if model is not None else None,
                            clip=clip.handle.module if clip is not None else None)
    new_model = new_clip = None
    if model is not None:
        new_model = model.clone()
        if strength_model != 0:
            new_model.weight_patches += [(k, float(strength_model), p) for k, p in patches.model.items()]
    if clip is not None:
        new_clip = clip.clone()
        if strength_clip != 0:
            new_clip.weight_patches += [(k, float(strength_clip), p) for k, p in patches.clip.items()]
    return new_model, new_clip


provide("comfy.models", SimpleNamespace(
    wrap=wrap, unwrap=unwrap, sampling=sampling, ModelPatcher=ComfyModelPatcher, CLIP=ComfyCLIP, VAE=ComfyVAE,
    load_checkpoint=load_checkpoint, load_lora_for_models=load_lora_for_models, UnsupportedSurface=UnsupportedSurface))
