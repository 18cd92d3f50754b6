"""CLIP vision encoders as ComfyUI 0.8 loads and runs them (comfy/clip_vision.py, clip_model.py).

Files come in the OpenAI/transformers layout (`vision_model.*`, `visual_projection.weight`) or the open_clip
layout (`visual.*`, also inside unCLIP checkpoints as `embedder.model.visual.*`), which is converted to the
transformers one. The model is transformers' CLIPVisionModelWithProjection built from a config inferred from
tensor shapes; ComfyUI picks a shipped config by layer count instead, which gives the same config for the
real ViT-L/H/bigG files and lets tiny test models load too.
"""
from __future__ import annotations

import json
import logging
import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from nodegraph import ModelFileError, ModelHandle

# clip_preprocess' defaults: the OpenAI CLIP image statistics, 224 px
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
log = logging.getLogger(__name__)
HINTS_KEY = "nodegraph.hints"  # safetensors metadata: what shapes cannot tell (heads, activation)
_OPEN_CLIP_RENAMES = {
    "class_embedding": "vision_model.embeddings.class_embedding",
    "conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "ln_pre.weight": "vision_model.pre_layrnorm.weight", "ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "ln_post.weight": "vision_model.post_layernorm.weight", "ln_post.bias": "vision_model.post_layernorm.bias",
}
_OPEN_CLIP_BLOCK = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
                    "attn.out_proj": "self_attn.out_proj"}


class ClipVisionOutput:
    """CLIPVisionEncode's result; read by attribute or by key, as ComfyUI's Output allows."""

    def __init__(self, last_hidden_state: torch.Tensor, image_embeds: torch.Tensor,
                 penultimate_hidden_states: torch.Tensor) -> None:
        self.last_hidden_state = last_hidden_state
        self.image_embeds = image_embeds
        self.penultimate_hidden_states = penultimate_hidden_states
        self.mm_projected = None

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)


def open_clip_to_transformers(sd: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """open_clip visual tower keys under `prefix` -> transformers CLIPVisionModelWithProjection keys."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix):]
        if rest in _OPEN_CLIP_RENAMES:
            out[_OPEN_CLIP_RENAMES[rest]] = value
        elif rest == "proj":  # open_clip multiplies x @ proj; a Linear holds the transpose
            out["visual_projection.weight"] = value.transpose(0, 1).contiguous()
        elif rest.startswith("transformer.resblocks."):
            index, inner = rest[len("transformer.resblocks."):].split(".", 1)
            base = f"vision_model.encoder.layers.{index}."
            if inner.startswith("attn.in_proj_"):
                kind = inner.rsplit("_", 1)[1]  # weight / bias
                for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                    out[f"{base}self_attn.{name}.{kind}"] = part.contiguous()
                continue
            for old, new in _OPEN_CLIP_BLOCK.items():
                if inner.startswith(old + "."):
                    out[base + new + inner[len(old):]] = value
                    break
            else:
                out[key] = value  # unknown: reported as unexpected by the load
        else:
            out[key] = value
    return out


def vision_state_dict(sd: Mapping[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The transformers-layout weights of a CLIP vision file (as comfy.clip_vision.load decides)."""
    if "visual.transformer.resblocks.0.attn.in_proj_weight" in sd:
        return open_clip_to_transformers(sd, "visual.")
    if "vision_model.embeddings.patch_embedding.weight" not in sd:
        raise ModelFileError(f"{name}: not a CLIP vision model (neither vision_model.* nor open_clip visual.* keys)")
    return {k: v for k, v in sd.items() if not k.endswith("position_ids")}


def infer_vision_config(sd: Mapping[str, torch.Tensor], hints: Mapping[str, Any] | None = None) -> dict:
    """transformers CLIPVisionConfig kwargs from transformers-layout weights."""
    hints = dict(hints or {})
    patch = sd["vision_model.embeddings.patch_embedding.weight"]
    hidden, channels, patch_size = int(patch.shape[0]), int(patch.shape[1]), int(patch.shape[2])
    positions = int(sd["vision_model.embeddings.position_embedding.weight"].shape[0])
    side = math.isqrt(positions - 1)
    if side * side != positions - 1:
        raise ModelFileError(f"CLIP vision position embedding of {positions} is not a square grid plus a class token")
    layers = 0
    while f"vision_model.encoder.layers.{layers}.layer_norm1.weight" in sd:
        layers += 1
    # OpenAI's ViT-L/14 (24 layers of 1024) uses quick_gelu; the open_clip H and bigG towers use gelu
    openai_l = layers == 24 and hidden == 1024
    config = {
        "hidden_size": hidden, "num_channels": channels, "patch_size": patch_size, "image_size": side * patch_size,
        "intermediate_size": int(sd["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0]),
        "num_hidden_layers": layers,
        "num_attention_heads": int(hints.get("num_attention_heads") or (hidden // 64 if hidden % 64 == 0 else 1)),
        "hidden_act": hints.get("hidden_act") or ("quick_gelu" if openai_l else "gelu"),
        "layer_norm_eps": float(hints.get("layer_norm_eps", 1e-5)),
    }
    if "visual_projection.weight" in sd:
        config["projection_dim"] = int(sd["visual_projection.weight"].shape[0])
    return config


class ClipVision(torch.nn.Module):
    """The CLIP_VISION value's module: a transformers vision tower plus ComfyUI's preprocessing facts."""

    def __init__(self, model: torch.nn.Module, config: dict) -> None:
        super().__init__()
        self.model = model
        self.config = dict(config)
        self.image_size = int(config["image_size"])
        self.image_mean, self.image_std = IMAGE_MEAN, IMAGE_STD

    def encode(self, image: torch.Tensor, crop: bool = True) -> ClipVisionOutput:
        device = next(self.model.parameters()).device
        dtype = next(self.model.parameters()).dtype
        pixels = clip_preprocess(image.to(device), self.image_size, self.image_mean, self.image_std, crop)
        out = self.model(pixel_values=pixels.to(dtype), output_hidden_states=True)
        embeds = out.image_embeds if hasattr(out, "image_embeds") else out.pooler_output
        return ClipVisionOutput(out.last_hidden_state.float().cpu(), embeds.float().cpu(),
                                out.hidden_states[-2].float().cpu())


def clip_preprocess(image: torch.Tensor, size: int = 224, mean=IMAGE_MEAN, std=IMAGE_STD,
                    crop: bool = True) -> torch.Tensor:
    """IMAGE [B,H,W,C] -> normalised pixels [B,3,size,size], as comfy.clip_model.clip_preprocess: resize the
    short side to `size` (crop) or both sides (no crop), bicubic with antialias, centre crop, round to 8 bits."""
    image = image[..., :3].float().movedim(-1, 1)
    if image.shape[2] != size or image.shape[3] != size:
        if crop:
            scale = size / min(image.shape[2], image.shape[3])
            target = (round(scale * image.shape[2]), round(scale * image.shape[3]))
        else:
            target = (size, size)
        image = F.interpolate(image, size=target, mode="bicubic", antialias=True)
        top, left = (image.shape[2] - size) // 2, (image.shape[3] - size) // 2
        image = image[:, :, top:top + size, left:left + size]
    image = torch.clip(255.0 * image, 0, 255).round() / 255.0
    mean_t = torch.tensor(mean, device=image.device, dtype=image.dtype).view(3, 1, 1)
    std_t = torch.tensor(std, device=image.device, dtype=image.dtype).view(3, 1, 1)
    return (image - mean_t) / std_t


def _hints(metadata: Mapping[str, str] | None) -> dict:
    raw = (metadata or {}).get(HINTS_KEY)
    if not raw:
        return {}
    data = json.loads(raw)
    return dict(data.get("clip_vision", data))


def build_clip_vision(sd: Mapping[str, torch.Tensor], name: str, metadata: Mapping[str, str] | None = None
                      ) -> tuple[ClipVision, list[str], list[str]]:
    """(module, missing keys, unexpected keys) for transformers-layout weights."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection

    config = infer_vision_config(sd, _hints(metadata))
    vision_config = CLIPVisionConfig(**config)
    # without a projection, image_embeds is the pooled output (ComfyUI's identity projection)
    model = (CLIPVisionModelWithProjection if "projection_dim" in config else CLIPVisionModel)(vision_config)
    missing, unexpected = model.load_state_dict(dict(sd), strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:
        raise ModelFileError(f"{name}: CLIP vision weights missing: {missing[:8]}")
    return ClipVision(model.eval(), config), missing, list(unexpected)


def load_clip_vision(weights) -> ModelHandle:
    """The CLIP_VISION handle for a WeightsFile (the model-file service's `build`)."""
    sd = vision_state_dict(weights.tensors, weights.name)
    module, _missing, unexpected = build_clip_vision(sd, weights.name, weights.metadata)
    if unexpected:  # ComfyUI loads non-strictly too (files may carry a text tower or a LLaVA projector)
        log.warning("%s: %d weights not used by the CLIP vision model: %s", weights.name, len(unexpected),
                    sorted(unexpected)[:8])
    return ModelHandle(module, weights.path.stem, info={"kind": "clip_vision", **module.config})
