"""Tiny random image-conditioning model files in the real layouts: CLIP vision (transformers
`vision_model.*` and open_clip `visual.*`), T2I-Adapter style models (`style_embedding` ...), SD2.1-unCLIP
single files (`embedder.model.visual.*`, `noise_augmentor.*`, U-Net `label_emb`), InstructPix2Pix (8-channel U-Net)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from nodes.diffusion.checkpoint.layout import HINTS_KEY
from nodes.diffusion.checkpoint.writer import save_single_file
from nodes.diffusion.vision.style_model import StyleAdapter
from tests.tiny_models import tiny_components

HEADS = 2
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=HEADS, image_size=32,
              patch_size=8, projection_dim=24, hidden_act="gelu")
VISION_HINTS = {"num_attention_heads": HEADS, "hidden_act": "gelu"}


def _jitter(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return module.eval()


def tiny_clip_vision(seed: int = 0, projection_dim: int = VISION["projection_dim"]):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    return _jitter(CLIPVisionModelWithProjection(CLIPVisionConfig(**{**VISION, "projection_dim": projection_dim})), seed)


def to_open_clip(model, prefix: str = "visual.") -> dict[str, torch.Tensor]:
    """transformers vision tower -> open_clip's visual.* layout (fused in_proj, proj = the Linear's transpose)."""
    sd = model.state_dict()
    out = {prefix + "class_embedding": sd["vision_model.embeddings.class_embedding"],
           prefix + "conv1.weight": sd["vision_model.embeddings.patch_embedding.weight"],
           prefix + "positional_embedding": sd["vision_model.embeddings.position_embedding.weight"],
           prefix + "proj": sd["visual_projection.weight"].t().contiguous()}
    for ours, theirs in (("pre_layrnorm", "ln_pre"), ("post_layernorm", "ln_post")):
        for kind in ("weight", "bias"):
            out[f"{prefix}{theirs}.{kind}"] = sd[f"vision_model.{ours}.{kind}"]
    for i in range(model.config.num_hidden_layers):
        src, dst = f"vision_model.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat([sd[f"{src}self_attn.{p}_proj.{kind}"] for p in "qkv"])
            for ours, theirs in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"),
                                 ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                out[f"{dst}{theirs}.{kind}"] = sd[f"{src}{ours}.{kind}"]
    return out


def save_clip_vision(path: Path, model, layout: str = "transformers") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = to_open_clip(model) if layout == "open_clip" else \
        {k: v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata={HINTS_KEY: json.dumps(VISION_HINTS)})
    return path


def tiny_style_adapter(seed: int = 0, width: int = VISION["hidden_size"], context_dim: int = 32, tokens: int = 4):
    torch.manual_seed(seed)
    adapter = StyleAdapter(width, context_dim, num_head=HEADS, n_layers=2, num_token=tokens)
    with torch.no_grad():
        adapter.style_embedding.normal_(0, width ** -0.5)
        adapter.proj.normal_(0, width ** -0.5)
    return _jitter(adapter, seed)


def save_style_model(path: Path, adapter) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in adapter.state_dict().items()}, str(path),
              metadata={HINTS_KEY: json.dumps({"num_attention_heads": HEADS})})
    return path


def save_tiny_unclip(path: Path, seed: int = 0) -> tuple[Path, torch.nn.Module]:
    """An SD2.x-family single file with unCLIP's parts: class-embedding U-Net (label_emb of 2 x the image
    embedding width), embedder.model.visual.* (open_clip layout) and noise_augmentor.* schedule buffers."""
    from diffusers import UNet2DConditionModel

    parts = tiny_components("sd2", seed)
    dim = VISION["projection_dim"]
    torch.manual_seed(seed)
    unet = _jitter(UNet2DConditionModel(**{**dict(parts["unet"].config), "class_embed_type": "projection",
                                           "projection_class_embeddings_input_dim": 2 * dim}), seed)
    save_single_file(path, unet, parts["vae"], parts["text_encoder"], family="sd2", prediction_type="v")
    vision = tiny_clip_vision(seed + 7)
    with safe_open(str(path), "pt") as f:
        sd, meta = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())
    sd.update(to_open_clip(vision, "embedder.model.visual."))
    steps = torch.arange(1000, dtype=torch.float32)  # the schedule buffers the original files carry
    for name in ("betas", "alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod"):
        sd[f"noise_augmentor.{name}"] = steps / 1000
    hints = json.loads(meta[HINTS_KEY])
    hints["clip_vision"] = VISION_HINTS
    meta[HINTS_KEY] = json.dumps(hints)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=meta)
    return path, vision


def save_tiny_ip2p(path: Path, seed: int = 0) -> Path:
    """An SD1-family single file whose U-Net takes 8 channels (latent + source image latent)."""
    from diffusers import UNet2DConditionModel

    parts = tiny_components("sd1", seed)
    torch.manual_seed(seed)
    unet = _jitter(UNet2DConditionModel(**{**dict(parts["unet"].config), "in_channels": 8}), seed)
    return save_single_file(path, unet, parts["vae"], parts["text_encoder"], family="sd1")
