"""GAN node pack: StyleGAN2 generators (mapping, truncation, style mixing, W-space tools), DCGAN and
pix2pix/CycleGAN generators, discriminators (DCGAN, PatchGAN) for
scoring and best-of-N ranking, latent tools (seeded z, lerp/slerp, arithmetic, noise paths).

Shipped weights (nodes/gan/weights, made by training/train_gan.py) are found in the "gan" model
folder next to the user's models/gan files.
"""
from __future__ import annotations

from pathlib import Path

from .nodes import *  # noqa: F401,F403
from .nodes import DISCRIMINATOR, GAN, SCORES
from .stylegan_nodes import *  # noqa: F401,F403
from .stylegan_nodes import STYLEGAN
from .world import DefaultWorldPictures  # noqa: F401

PACK_DIR = Path(__file__).parent
MODEL_FOLDERS = {"gan": [PACK_DIR / "weights"]}

__all__ = ["MODEL_FOLDERS", "GAN", "DISCRIMINATOR", "SCORES", "STYLEGAN"]
