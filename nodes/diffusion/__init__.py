"""Stable Diffusion node pack: loaders, text encoders, VAE, latents (and samplers, from sampler_nodes)."""
from pathlib import Path

PACK_DIR = Path(__file__).parent

# the shipped default weights (filled by the default-model trainer) are found like user models
MODEL_FOLDERS = {"checkpoints": [PACK_DIR / "weights"]}
