"""Stable Diffusion node pack: loaders, text encoders, VAE, latents, samplers, LoRA, ControlNet, model patches
and image conditioning (CLIP vision, style models, unCLIP, InstructPix2Pix).

Node names and inputs are ComfyUI's, so ComfyUI API-format workflows run unchanged.
"""
from __future__ import annotations

from pathlib import Path

from .checkpoint_loader_nodes import *  # noqa: F401,F403
from .checkpoint_save_nodes import *  # noqa: F401,F403
from .conditioning_area_nodes import *  # noqa: F401,F403
from .conditioning_nodes import *  # noqa: F401,F403
from .controlnet_nodes import *  # noqa: F401,F403
from .custom_sampler_nodes import *  # noqa: F401,F403
from .diff_controlnet_nodes import *  # noqa: F401,F403
from .gligen_nodes import *  # noqa: F401,F403
from .guidance_nodes import *  # noqa: F401,F403
from .hypernetwork_nodes import *  # noqa: F401,F403
from .latent_batch_nodes import *  # noqa: F401,F403
from .latent_combine_nodes import *  # noqa: F401,F403
from .latent_file_nodes import *  # noqa: F401,F403
from .latent_nodes import *  # noqa: F401,F403
from .loader_nodes import *  # noqa: F401,F403
from .lora_nodes import *  # noqa: F401,F403
from .merge_nodes import *  # noqa: F401,F403
from .model_sampling_nodes import *  # noqa: F401,F403
from .sampler_nodes import *  # noqa: F401,F403
from .sampler_select_nodes import *  # noqa: F401,F403
from .scheduler_nodes import *  # noqa: F401,F403
from .unet_patch_nodes import *  # noqa: F401,F403
from .vae_nodes import *  # noqa: F401,F403
from .vision_nodes import *  # noqa: F401,F403
from . import comfy_surface  # noqa: F401,E402 - offers ComfyUI packs the ModelPatcher/CLIP/VAE surface

PACK_DIR = Path(__file__).parent

# the shipped default weights are found like user models (ComfyUI's folder names)
MODEL_FOLDERS = {"checkpoints": [PACK_DIR / "weights"], "loras": [PACK_DIR / "loras"],
                 "controlnet": [PACK_DIR / "controlnet"], "configs": [PACK_DIR / "ldm_configs"]}
