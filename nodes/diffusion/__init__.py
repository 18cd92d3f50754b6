"""Stable Diffusion node pack: loaders, text encoders, VAE, latents, and samplers (sampler_nodes).

Node names and inputs are ComfyUI's, so ComfyUI API-format workflows run unchanged.
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path

from .conditioning_nodes import *  # noqa: F401,F403
from .latent_nodes import *  # noqa: F401,F403
from .loader_nodes import *  # noqa: F401,F403
from .vae_nodes import *  # noqa: F401,F403

from .sampler_nodes import *  # noqa: F401,F403

for _optional in ("lora_nodes", "controlnet_nodes"):  # being written; the pack loads without them
    try:
        globals().update({k: v for k, v in vars(importlib.import_module(f"{__name__}.{_optional}")).items()
                          if not k.startswith("_")})
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{_optional}":
            raise
        logging.getLogger(__name__).info("diffusion pack: %s not available yet", _optional)

PACK_DIR = Path(__file__).parent

# the shipped default weights are found like user models (ComfyUI's folder names)
MODEL_FOLDERS = {"checkpoints": [PACK_DIR / "weights"], "loras": [PACK_DIR / "loras"],
                 "controlnet": [PACK_DIR / "controlnet"]}
