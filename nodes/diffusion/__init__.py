"""Stable Diffusion node pack: loaders, text encoders, VAE, latents, and samplers (sampler_nodes).

Node names and inputs are ComfyUI's, so ComfyUI API-format workflows run unchanged.
"""
from __future__ import annotations

import logging
from pathlib import Path

from .conditioning_nodes import *  # noqa: F401,F403
from .latent_nodes import *  # noqa: F401,F403
from .loader_nodes import *  # noqa: F401,F403
from .vae_nodes import *  # noqa: F401,F403

try:  # written by another engineer; the pack loads without it
    from .sampler_nodes import *  # noqa: F401,F403
except ModuleNotFoundError as exc:
    if exc.name != f"{__name__}.sampler_nodes":
        raise
    logging.getLogger(__name__).info("diffusion pack: sampler_nodes not available yet")

PACK_DIR = Path(__file__).parent

# the shipped default weights (filled by the default-model trainer) are found like user models
MODEL_FOLDERS = {"checkpoints": [PACK_DIR / "weights"]}
