"""What a Stable Diffusion model file holds: the original key layout, the families' fixed facts,
the loaded result, and small helpers on state-dict keys.

Original key layout:
  U-Net   model.diffusion_model.*                      (input_blocks / middle_block / output_blocks)
  VAE     first_stage_model.*                          (encoder.down.N.block.M ...)
  SD1     cond_stage_model.transformer.text_model.*    (transformers CLIP layout)
  SD2     cond_stage_model.model.*                     (open_clip layout: transformer.resblocks.N)
  SDXL    conditioner.embedders.0.transformer.text_model.*  (CLIP-L) and conditioner.embedders.1.model.* (bigG)
  SDXL refiner  conditioner.embedders.0.model.*        (bigG only; U-Net ADM: pooled + 5 ids with the aesthetic score)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer."
SD2_CLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
SDXL_CLIP_G_PREFIX = "conditioner.embedders.1.model."
SDXL_REFINER_CLIP_G_PREFIX = "conditioner.embedders.0.model."  # the refiner has only bigG
HINTS_KEY = "nodegraph.hints"
CONFIG_DIR = Path(__file__).parent.parent / "configs"  # nodes/diffusion/configs

# family -> latent scaling factor of its VAE
VAE_SCALING = {"sd1": 0.18215, "sd2": 0.18215, "sdxl": 0.13025, "sdxl_refiner": 0.13025}


class CheckpointError(ValueError):
    """A model file that cannot be read or is not a supported Stable Diffusion layout."""


def reference_config(name: str) -> dict:
    """A shipped reference config ("sd15_unet", "sdxl_text_encoder_2" ...), without '_class_name'."""
    data = json.loads((CONFIG_DIR / f"{name}.json").read_text())
    data.pop("_class_name", None)
    return data


@dataclass
class LoadedCheckpoint:
    """The parts of a Stable Diffusion model file, as diffusers / transformers modules."""

    family: str  # "sd1" | "sd2" | "sdxl" | "sdxl_refiner"
    prediction_type: str  # "eps" | "v"
    unet: Any = None  # diffusers UNet2DConditionModel
    vae: Any = None  # diffusers AutoencoderKL
    text_encoders: list = field(default_factory=list)  # [CLIP-L] / [open_clip H] / [CLIP-L, bigG]
    unet_config: dict | None = None
    vae_config: dict | None = None
    text_encoder_configs: list[dict] = field(default_factory=list)
    inpaint: bool = False  # 9-channel U-Net (latent + mask + masked-image latent)
    metadata: dict = field(default_factory=dict)
    source: str = ""
    unused_keys: list[str] = field(default_factory=list)  # file keys of a known part that no weight took

    @property
    def latent_channels(self) -> int:
        if self.vae_config:
            return int(self.vae_config["latent_channels"])
        return int(self.unet_config["out_channels"]) if self.unet_config else 4


def strip_prefix(sd: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def normalise_prediction(value: str) -> str:
    value = value.lower()
    aliases = {"eps": "eps", "epsilon": "eps", "v": "v", "v_prediction": "v", "v-prediction": "v"}
    if value not in aliases:
        raise CheckpointError(f"unknown prediction type {value!r} (expected eps or v)")
    return aliases[value]


def key_indices(keys: Iterable[str], prefix: str) -> list[int]:
    """Sorted distinct integers N of keys that start with prefix + 'N.'."""
    found = set()
    for k in keys:
        if k.startswith(prefix):
            head = k[len(prefix):].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def prefix_summary(sd: Mapping[str, Any]) -> str:
    """The most common two-part key prefixes with counts, for \"not a ... file\" messages."""
    prefixes: dict[str, int] = {}
    for k in sd:
        head = ".".join(k.split(".")[:2])
        prefixes[head] = prefixes.get(head, 0) + 1
    items = sorted(prefixes.items(), key=lambda kv: -kv[1])[:8]
    return ", ".join(f"{p}.* ({n})" for p, n in items) or "none (empty file)"
