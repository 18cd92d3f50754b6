"""Writing diffusers / transformers modules as ONE safetensors file in the original checkpoint layout.

What shapes cannot tell (attention head counts, GroupNorm groups, the text encoder's activation,
eps vs v prediction, the VAE scaling factor) is stored as "hints" in the safetensors metadata, so
a small model with unusual head counts or groups round-trips exactly.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch

from .layout import (HINTS_KEY, SD1_CLIP_PREFIX, SD2_CLIP_PREFIX, SDXL_CLIP_G_PREFIX, SDXL_CLIP_L_PREFIX,
                     SDXL_REFINER_CLIP_G_PREFIX, UNET_PREFIX, VAE_PREFIX, CheckpointError, normalise_prediction)
from .to_ldm import clip_state, clip_to_open_clip, unet_to_ldm, vae_to_ldm

def unet_hints(config: Mapping[str, Any]) -> dict:
    """What shapes cannot tell about a U-Net or ControlNet config, stored in the file's hints so a
    small model round-trips exactly."""
    hints = {"attention_head_dim": config.get("num_attention_heads") or config["attention_head_dim"],
             "norm_num_groups": config["norm_num_groups"],
             "upcast_attention": bool(config.get("upcast_attention", False))}
    if config.get("addition_time_embed_dim"):
        hints["addition_time_embed_dim"] = config["addition_time_embed_dim"]
    return hints


def _clip_hints(text_encoder: torch.nn.Module) -> dict:
    cfg = text_encoder.config
    return {"num_attention_heads": cfg.num_attention_heads, "hidden_act": cfg.hidden_act,
            "layer_norm_eps": cfg.layer_norm_eps}


def save_single_file(path: str | Path, unet: torch.nn.Module | None = None, vae: torch.nn.Module | None = None,
                     text_encoder: torch.nn.Module | None = None, metadata: Mapping[str, str] | None = None, *,
                     text_encoder_2: torch.nn.Module | None = None, family: str | None = None,
                     prediction_type: str | None = None, dtype: torch.dtype | None = None,
                     latent_rgb_factors: list[list[float]] | None = None,
                     latent_rgb_bias: list[float] | None = None,
                     extra_tensors: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write diffusers/transformers modules as ONE safetensors file in the original checkpoint layout.

    family: "sd1" (one CLIP text encoder in the transformers layout), "sd2" (one text encoder in the
    open_clip layout), "sdxl" (text_encoder = CLIP-L, text_encoder_2 = bigG with projection) or
    "sdxl_refiner" (text_encoder = bigG with projection, alone).
    Default: "sdxl" when text_encoder_2 is given, else "sd1".
    prediction_type: "eps" (default) or "v". dtype: cast floating weights (e.g. torch.float16).
    metadata: extra str->str safetensors metadata; the loader's hints are added under "nodegraph.hints".
    latent_rgb_factors [channels][3] / latent_rgb_bias [3]: the preview projection (models.fit_latent_rgb).
    extra_tensors: marker keys written as they are (ComfyUI's "v_pred" / "ztsnr" empty tensors).
    """
    family = family or ("sdxl" if text_encoder_2 is not None else "sd1")
    if family not in ("sd1", "sd2", "sdxl", "sdxl_refiner"):
        raise CheckpointError(f"unknown family {family!r} (expected sd1, sd2, sdxl or sdxl_refiner)")
    if family == "sdxl" and text_encoder is not None and text_encoder_2 is None:
        raise CheckpointError("an sdxl checkpoint needs text_encoder (CLIP-L) and text_encoder_2 (bigG)")
    prediction_type = normalise_prediction(prediction_type or "eps")
    tensors: dict[str, torch.Tensor] = {}
    hints: dict[str, Any] = {"family": family, "prediction_type": prediction_type}
    if latent_rgb_factors is not None:
        hints["latent_rgb_factors"] = [[float(v) for v in row] for row in latent_rgb_factors]
        if latent_rgb_bias is not None:
            hints["latent_rgb_bias"] = [float(v) for v in latent_rgb_bias]
    if unet is not None:
        tensors.update({UNET_PREFIX + k: v for k, v in unet_to_ldm(unet.state_dict(), unet.config).items()})
        hints["unet"] = unet_hints(unet.config)
    if vae is not None:
        tensors.update({VAE_PREFIX + k: v for k, v in vae_to_ldm(vae.state_dict(), vae.config).items()})
        hints["vae"] = {"norm_num_groups": vae.config.norm_num_groups, "scaling_factor": vae.config.scaling_factor}
    encoders = [e for e in (text_encoder, text_encoder_2) if e is not None]
    if family == "sd1" and text_encoder is not None:
        tensors.update({SD1_CLIP_PREFIX + k: v for k, v in clip_state(text_encoder).items()
                        if not k.startswith("text_projection")})
    elif family == "sdxl_refiner" and text_encoder is not None:
        tensors.update({SDXL_REFINER_CLIP_G_PREFIX + k: v for k, v in clip_to_open_clip(text_encoder).items()})
    elif family == "sd2" and text_encoder is not None:
        tensors.update({SD2_CLIP_PREFIX + k: v for k, v in clip_to_open_clip(text_encoder).items()})
    elif family == "sdxl" and encoders:
        tensors.update({SDXL_CLIP_L_PREFIX + k: v for k, v in clip_state(text_encoder).items()
                        if not k.startswith("text_projection")})
        tensors.update({SDXL_CLIP_G_PREFIX + k: v for k, v in clip_to_open_clip(text_encoder_2).items()})
    if encoders:
        hints["text_encoders"] = [_clip_hints(e) for e in encoders]
    tensors.update(extra_tensors or {})
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        value = value.detach()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        out[key] = value.to("cpu").contiguous().clone()  # safetensors refuses shared storage
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta[HINTS_KEY] = json.dumps(hints)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file
    save_file(out, str(path), metadata=meta)
    return path
