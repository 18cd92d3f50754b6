"""Key conversion from the original layout to diffusers / transformers names, by diffusers' own
single-file converters (the inverse of to_ldm)."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping

import torch

from .layout import UNET_PREFIX

def convert_unet(unet_sd: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
    return convert_ldm_unet_checkpoint({UNET_PREFIX + k: v for k, v in unet_sd.items()}, dict(config))


def convert_vae(vae_sd: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    return convert_ldm_vae_checkpoint(dict(vae_sd), dict(config))  # keys already without first_stage_model.


def convert_hf_clip(clip_sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers-layout CLIP (keys after the model prefix) -> 'text_model.*' keys."""
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
    fixed = {}
    for k, v in clip_sd.items():
        if k.endswith("position_ids"):
            continue
        fixed["cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k)] = v
    return convert_ldm_clip_checkpoint(fixed)


def convert_open_clip(clip_sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip-layout text tower (keys after the model prefix) -> 'text_model.*' keys.

    A neutral prefix is used so that diffusers' SD2 rule that drops the last layer does not apply:
    we keep all layers (ComfyUI's CLIPSetLastLayer -1 on SD2 uses the last one).
    """
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    width = int(clip_sd["token_embedding.weight"].shape[1]) if "token_embedding.weight" in clip_sd else 0
    model_stub = SimpleNamespace(config=SimpleNamespace(hidden_size=width))  # read only without text_projection
    return convert_open_clip_checkpoint(model_stub, {"te." + k: v for k, v in clip_sd.items()}, prefix="te.")
