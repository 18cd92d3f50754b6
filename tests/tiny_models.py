"""Tiny random Stable Diffusion models for tests and smoke runs: the same layouts as the real
families (sd1, sd2, sdxl, sdxl_refiner; inpainting U-Nets), a few MB, built from seeds.

    from tests.tiny_models import save_tiny_checkpoint, tiny_components
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nodes.diffusion.checkpoint.layout import VAE_SCALING
from nodes.diffusion.checkpoint.writer import save_single_file


def tiny_components(family: str = "sd1", seed: int = 0, inpaint: bool = False, vocab_size: int = 49408) -> dict:
    """Random tiny diffusers/transformers parts of a family: {"unet", "vae", "text_encoder", "text_encoder_2"}.

    U-Net: 2 levels (32, 64), 1 resblock each, 2 heads; VAE: 4 levels (16, 16, 32, 32): downscale 8 as SD;
    CLIP: width 32 (CLIP-L stand-in) / 48 (open_clip stand-in), 3 layers, the full 49408-token vocabulary
    (so the real tokenizer's ids work). Weights get noise added so norms and biases are not trivial.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    width_l, width_g = 32, 48
    context = {"sd1": width_l, "sd2": width_g, "sdxl": width_l + width_g, "sdxl_refiner": width_g}[family]
    unet_kw: dict[str, Any] = dict(
        sample_size=8, in_channels=9 if inpaint else 4, out_channels=4, block_out_channels=[32, 64],
        layers_per_block=1, down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], cross_attention_dim=context,
        attention_head_dim=2, norm_num_groups=8, use_linear_projection=family != "sd1")
    if family == "sdxl":
        unet_kw.update(addition_embed_type="text_time", addition_time_embed_dim=8,
                       projection_class_embeddings_input_dim=width_g + 6 * 8,
                       down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
                       up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"], transformer_layers_per_block=[1, 2])
    if family == "sdxl_refiner":  # bigG's pooled output + 5 ids (size, crop, aesthetic score), attention everywhere
        unet_kw.update(addition_embed_type="text_time", addition_time_embed_dim=8,
                       projection_class_embeddings_input_dim=width_g + 5 * 8,
                       down_block_types=["CrossAttnDownBlock2D"] * 2, up_block_types=["CrossAttnUpBlock2D"] * 2)
    unet = UNet2DConditionModel(**unet_kw)
    vae = AutoencoderKL(block_out_channels=[16, 16, 32, 32], down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=1, norm_num_groups=8,
                        latent_channels=4, sample_size=32, scaling_factor=VAE_SCALING[family])

    def clip(width: int, projection: bool, act: str):
        cfg = CLIPTextConfig(vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=3,
                             num_attention_heads=2, max_position_embeddings=77, hidden_act=act, projection_dim=width,
                             pad_token_id=0 if projection else 49407)
        return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)

    parts: dict[str, Any] = {"unet": unet, "vae": vae, "text_encoder_2": None}
    if family == "sd1":
        parts["text_encoder"] = clip(width_l, False, "quick_gelu")
    elif family in ("sd2", "sdxl_refiner"):
        parts["text_encoder"] = clip(width_g, True, "gelu")
    else:
        parts["text_encoder"], parts["text_encoder_2"] = clip(width_l, False, "quick_gelu"), clip(width_g, True, "gelu")
    with torch.no_grad():
        for module in parts.values():
            if module is None:
                continue
            module.eval()
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    return parts


def save_tiny_checkpoint(path: str | Path, family: str = "sd1", seed: int = 0, prediction_type: str = "eps",
                         inpaint: bool = False) -> Path:
    """Write a tiny random checkpoint of a family in the original single-file layout."""
    parts = tiny_components(family, seed, inpaint)
    return save_single_file(path, parts["unet"], parts["vae"], parts["text_encoder"],
                            text_encoder_2=parts["text_encoder_2"], family=family, prediction_type=prediction_type)
