"""Building diffusers / transformers modules on the meta device and filling them strictly with weights."""
from __future__ import annotations

from typing import Any, Mapping

import torch

from .layout import CheckpointError

def clip_core(text_encoder: torch.nn.Module) -> torch.nn.Module:
    """The CLIP text transformer inside a CLIPTextModel / CLIPTextModelWithProjection (any transformers version)."""
    core = text_encoder
    while hasattr(core, "text_model"):
        core = core.text_model
    return core


def clip_projection(text_encoder: torch.nn.Module) -> torch.nn.Linear | None:
    return getattr(text_encoder, "text_projection", None)


def materialise(module: torch.nn.Module, sd: Mapping[str, torch.Tensor], what: str, name: str,
                 dtype: torch.dtype | None) -> None:
    """Assign converted weights to a module built on the meta device; strict, with readable errors."""
    if dtype is not None:
        sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{name}: {what} weights do not fit the inferred architecture; "
                              f"missing {missing[:8]}{'...' if len(missing) > 8 else ''} ({len(missing)}), "
                              f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''} ({len(unexpected)})")
    bad = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in own if sd[k].shape != own[k].shape]
    if bad:
        raise CheckpointError(f"{name}: {what} weight shapes do not fit: {'; '.join(bad[:5])}")
    module.load_state_dict(sd, strict=True, assign=True)
    for buf_name, buf in list(module.named_buffers()):
        if buf.is_meta:  # non-persistent buffers (CLIP's position_ids) are rebuilt
            owner_name, _, attr = buf_name.rpartition(".")
            owner = module.get_submodule(owner_name) if owner_name else module
            if attr == "position_ids":
                owner.register_buffer(attr, torch.arange(buf.shape[-1]).expand(buf.shape), persistent=False)
            else:
                raise CheckpointError(f"{name}: {what} buffer {buf_name} is not in the file")


def _build_on_meta(cls, config: Mapping[str, Any], what: str):
    try:
        with torch.device("meta"):
            return cls(**config)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"the {what} config {dict(config)} cannot be built: {exc}") from exc


def build_unet(config: Mapping[str, Any]):
    from diffusers import UNet2DConditionModel
    return _build_on_meta(UNet2DConditionModel, config, "U-Net")


def build_vae(config: Mapping[str, Any]):
    from diffusers import AutoencoderKL
    return _build_on_meta(AutoencoderKL, config, "VAE")


def build_clip(config: Mapping[str, Any], with_projection: bool | None = None):
    """CLIPTextModelWithProjection when the config has a projection_dim and with_projection is not False."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    config = dict(config)
    class_name = config.pop("_class_name", None)
    if with_projection is None:
        with_projection = class_name == "CLIPTextModelWithProjection" if class_name else "projection_dim" in config
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    with torch.device("meta"):
        model = cls(CLIPTextConfig(**config))
    return model.eval()
