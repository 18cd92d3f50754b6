"""Separate component files, as UNETLoader / VAELoader / CLIPLoader read them: a U-Net, a VAE or a
text encoder alone, in the original layout (with or without its prefix) or with diffusers keys."""
from __future__ import annotations

from pathlib import Path

import torch

from nodegraph import WeightsFile

from .config_inference import infer_vae_config
from .files import read_hints, weights_of
from .from_ldm import convert_vae
from .layout import (SD1_CLIP_PREFIX, SD2_CLIP_PREFIX, SDXL_CLIP_G_PREFIX, SDXL_CLIP_L_PREFIX, UNET_PREFIX,
                     VAE_PREFIX, VAE_SCALING, CheckpointError, LoadedCheckpoint, key_indices, prefix_summary,
                     strip_prefix)
from .modules import build_vae, materialise
from .single_file import load_state_dict_checkpoint, load_text_encoder
from .to_ldm import unet_to_ldm, vae_to_ldm

def load_unet_file(source: str | Path | WeightsFile, *, dtype: torch.dtype | None = None) -> LoadedCheckpoint:
    """A diffusion-model-only file: original layout with or without 'model.diffusion_model.', or diffusers keys."""
    file = weights_of(source)
    path, sd, metadata = file.path, file.tensors, file.metadata
    hints = read_hints(metadata)
    if any(k.startswith(UNET_PREFIX) for k in sd):
        sd = strip_prefix(sd, UNET_PREFIX)
    if "conv_in.weight" in sd:  # diffusers layout: go through the original layout so inference is shared
        layout = {"layers_per_block": len(key_indices(sd, "down_blocks.0.resnets.")),
                  "up_block_types": ["CrossAttnUpBlock2D" if any(k.startswith(f"up_blocks.{i}.attentions.") for k in sd)
                                     else "UpBlock2D" for i in key_indices(sd, "up_blocks.")]}
        sd = unet_to_ldm(sd, layout)
    if "input_blocks.0.0.weight" not in sd:
        raise CheckpointError(f"{path.name}: not a Stable Diffusion U-Net (no input_blocks.0.0.weight / conv_in.weight); "
                              f"found prefixes {prefix_summary(sd)}")
    pooled_dim = None
    if "label_emb.0.0.weight" in sd:  # SDXL: ADM input = pooled text + 6 size/crop embeddings
        time_dim = int((hints.get("unet") or {}).get("addition_time_embed_dim", 256))
        pooled_dim = int(sd["label_emb.0.0.weight"].shape[1]) - 6 * time_dim
    return load_state_dict_checkpoint({UNET_PREFIX + k: v for k, v in sd.items()}, metadata, name=path.name,
                                      dtype=dtype, parts=("unet",), pooled_dim=pooled_dim)


def load_vae_file(source: str | Path | WeightsFile, *, dtype: torch.dtype | None = None, family: str | None = None):
    """A VAE-only file: original layout (with or without 'first_stage_model.') or diffusers keys.
    Returns (AutoencoderKL, config)."""
    file = weights_of(source)
    path, sd, metadata = file.path, file.tensors, file.metadata
    hints = read_hints(metadata)
    if any(k.startswith(VAE_PREFIX) for k in sd):
        sd = strip_prefix(sd, VAE_PREFIX)
    if "encoder.conv_norm_out.weight" in sd:  # diffusers layout
        levels = len(key_indices(sd, "encoder.down_blocks."))
        sd = vae_to_ldm(sd, {"block_out_channels": [0] * levels})
    scaling = VAE_SCALING.get(family or hints.get("family", "sd1"), 0.18215)
    config = infer_vae_config(sd, hints.get("vae"), scaling, name=path.name)
    vae = build_vae(config)
    materialise(vae, convert_vae(sd, config), "VAE", path.name, dtype)
    return vae.eval(), config


def load_clip_file(source: str | Path | WeightsFile, *, dtype: torch.dtype | None = None):
    """A text-encoder-only file (transformers layout, or open_clip layout). Returns (model, config, is_open_clip)."""
    file = weights_of(source)
    path, sd, metadata = file.path, file.tensors, file.metadata
    hints = read_hints(metadata)
    for prefix in (SD1_CLIP_PREFIX, SDXL_CLIP_L_PREFIX, SD2_CLIP_PREFIX, SDXL_CLIP_G_PREFIX):
        if any(k.startswith(prefix) for k in sd):
            sd = strip_prefix(sd, prefix)
            break
    open_clip = any(k.startswith("transformer.resblocks.") for k in sd)
    if not open_clip and not any("encoder.layers." in k for k in sd):
        raise CheckpointError(f"{path.name}: not a CLIP text encoder; found prefixes {prefix_summary(sd)}")
    sd = {k: v for k, v in sd.items() if not k.startswith(("vision_model.", "visual."))}
    text_hints = (hints.get("text_encoders") or [None])[0]
    keep = open_clip or "text_projection.weight" in sd
    if "text_projection.weight" in sd and not open_clip:  # transformers WithProjection file
        proj = sd.pop("text_projection.weight")
        model, config, _ = load_text_encoder(sd, False, text_hints, path.name, dtype, False)
        from transformers import CLIPTextModelWithProjection
        with torch.device("meta"):
            wrapped = CLIPTextModelWithProjection(model.config.__class__(**{**config, "projection_dim": int(proj.shape[0])}))
        weights = {f"text_model.{k}": v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
        weights["text_projection.weight"] = proj
        materialise(wrapped, weights, "text encoder", path.name, dtype)
        return wrapped.eval(), {**config, "projection_dim": int(proj.shape[0])}, False
    model, config, _ = load_text_encoder(sd, open_clip, text_hints, path.name, dtype, keep)
    return model, config, open_clip
