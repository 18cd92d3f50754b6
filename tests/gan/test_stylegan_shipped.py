"""The shipped StyleGAN2-lite (nodes/gan/weights/default-world-stylegan2-G.safetensors, made by
training/train_stylegan.py; numbers in training/GAN.md) as a smoke test of the file: its layout and
shape, how many of its samples read as default-world pictures, its random-conv FID against the
world, truncation to the average image, and best-of-N with the shipped PatchGAN keeping a more
world-like quarter than the rest."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nodegraph import read_weights
from nodes.eval.extractors import random_extractor
from nodes.eval.metrics import fid_from_features
from nodes.gan.loaders import load_gan_file
from nodes.gan.stylegan_layouts import load_stylegan
from nodes.gan.stylegan_nodes import seeded_z
from nodes.gan.world import world_pictures
from training.train_gan import looks_like_world

WEIGHTS = Path(__file__).resolve().parents[2] / "nodes" / "gan" / "weights"
COUNT = 128


@pytest.fixture(scope="module")
def shipped():
    weights = read_weights(WEIGHTS / "default-world-stylegan2-G.safetensors")
    generator, info = load_stylegan(weights.tensors, weights.name)
    z = seeded_z(1000, COUNT, generator.z_dim)
    with torch.no_grad():
        images = torch.cat([generator(generator.map(z[k:k + 32])) for k in range(0, COUNT, 32)])
    return generator, info, weights.metadata, ((images + 1) / 2).clamp(0, 1)


def world_like(images01: torch.Tensor) -> np.ndarray:
    return np.array([looks_like_world(im) for im in images01])


def test_the_file_is_a_64px_stylegan2_in_nvidias_layout(shipped):
    generator, info, meta, images = shipped
    config = info["config"]
    assert info["layout"] == "nvidia" and info["w_avg"] == "file"
    assert (config.resolution, config.z_dim, config.w_dim, config.mapping_layers) == (64, 128, 128, 4)
    assert meta["trained_by"] == "training/train_stylegan.py" and images.shape == (COUNT, 3, 64, 64)


@pytest.mark.slow
def test_quality_as_reported(shipped):
    generator, _, _, images = shipped
    fraction = world_like(images).mean()
    assert fraction >= 0.2, fraction  # GAN.md: 31.6 % on 1024 samples (DCGAN: 19.5 %)
    real = world_pictures(seed=1, count=COUNT, size=64).movedim(-1, 1)
    other = world_pictures(seed=2, count=COUNT, size=64).movedim(-1, 1)
    noise = torch.rand(real.shape, generator=torch.Generator().manual_seed(0))
    extractor = random_extractor(0)
    with torch.no_grad():
        feats = {k: extractor(v).double().numpy() for k, v in
                 {"real": real, "other": other, "gen": images, "noise": noise}.items()}
    fid_gen = fid_from_features(feats["gen"], feats["real"])
    fid_noise = fid_from_features(feats["noise"], feats["real"])
    assert fid_from_features(feats["other"], feats["real"]) < fid_gen < fid_noise / 5


def test_psi_zero_is_the_average_image_for_every_seed(shipped):
    generator = shipped[0]
    with torch.no_grad():
        out = generator(generator.map(seeded_z(5, 4, generator.z_dim), psi=0.0))
    assert (out - out[:1]).abs().max() < 1e-5


@pytest.mark.slow
def test_best_of_n_keeps_a_more_world_like_quarter(shipped):
    images = shipped[3]
    discriminator = load_gan_file(WEIGHTS / "default-world-patchgan-D.safetensors")[1].float()
    with torch.no_grad():
        scores = torch.sigmoid(discriminator(images * 2 - 1)).mean(dim=(1, 2, 3)).numpy()
    order = np.argsort(-scores, kind="stable")
    good = world_like(images)
    kept, rest = good[order[:COUNT // 4]].mean(), good[order[COUNT // 4:]].mean()
    assert kept > rest + 0.05, (kept, rest)
