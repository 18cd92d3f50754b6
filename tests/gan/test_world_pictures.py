"""DefaultWorldPictures draws what training/default_world draws: the same palette, sizes, positions
and jitter (the pack cannot import training/, so the constants are mirrored and checked here), and
its pictures read as default-world pictures."""
from __future__ import annotations

import numpy as np

from nodes.gan import world
from training.default_world import scenes, vocabulary
from training.train_gan import looks_like_world


def test_constants_mirror_the_default_world():
    assert world.PALETTE == vocabulary.COLORS
    assert world.RADII == tuple(vocabulary.SIZES[name] for name in vocabulary.SIZE_NAMES)
    assert {(x, y) for x in world.GRID for y in world.GRID} == set(vocabulary.POSITIONS.values())
    assert (world.COLOR_JITTER, world.EDGE_MARGIN, world.P_NEAR_GRID) == \
        (scenes.COLOR_JITTER, scenes.EDGE_MARGIN, scenes.P_MENTION_POSITION)


def test_pictures_are_world_like_seeded_and_varied():
    images = world.world_pictures(seed=3, count=64, size=64)
    assert images.shape == (64, 64, 64, 3) and images.min() >= 0 and images.max() <= 1
    assert np.mean([looks_like_world(im.permute(2, 0, 1)) for im in images]) > 0.95
    assert (world.world_pictures(seed=3, count=64, size=64) == images).all()
    backgrounds = {tuple(np.round(im[0, 0].numpy(), 1)) for im in images}
    assert len(backgrounds) >= 8
