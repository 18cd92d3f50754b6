"""The default world: deterministic scenes whose captions describe their pictures."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from training.default_world import (
    COLOR_NAMES,
    POSITION_NAMES,
    POSITIONS,
    SHAPES,
    WORD_TOKENS,
    Scene,
    draw,
    generate,
    make_caption,
    nearest_color,
    read_image,
    sample_scenes,
    token_ids,
)
from training.default_world.vocabulary import caption_words, token_used_mask


@pytest.fixture(scope="module")
def batch():
    return generate(seed=3, count=96, size=64)


def test_same_seed_same_pictures_and_captions(batch):
    again = generate(seed=3, count=96, size=64)
    assert again.captions == batch.captions
    assert torch.equal(again.images, batch.images) and torch.equal(again.masks, batch.masks)
    other = generate(seed=4, count=96, size=64)
    assert other.captions != batch.captions
    assert not torch.equal(other.images, batch.images)


def test_shapes_and_colours_are_all_drawn():
    scenes = sample_scenes(0, 2000)
    assert set(scenes.shape.tolist()) == set(range(len(SHAPES)))
    assert set(scenes.color.tolist()) == set(range(len(COLOR_NAMES)))
    assert (scenes.color != scenes.background).all()


def test_pixels_have_the_colours_the_scene_names(batch):
    for image, mask, scene in zip(batch.images, batch.masks, batch.scenes):
        inside = mask[0] > 0.999
        outside = mask[0] < 0.001
        assert inside.sum() > 20, scene  # even a small shape covers some pixels fully
        shape_rgb = image[:, inside].mean(dim=1)
        background_rgb = image[:, outside].mean(dim=1)
        assert nearest_color(shape_rgb.numpy()) == scene.color, scene
        assert nearest_color(background_rgb.numpy()) == scene.background, scene


def test_captions_mention_only_what_is_true(batch):
    for scene in batch.scenes:
        words = scene.caption.split()
        assert set(words) <= caption_words(), scene.caption
        assert scene.shape in words
        assert words[0] == ("an" if words[1][0] in "aeiou" else "a")
        mentioned_colors = [w for w in words if w in COLOR_NAMES]
        if "background" in words:
            assert mentioned_colors[-1] == scene.background
            mentioned_colors = mentioned_colors[:-1]
        assert mentioned_colors in ([], [scene.color])
        after_shape = scene.caption.split(f"{scene.shape}", 1)[1].split(" on a", 1)[0].strip()
        assert after_shape in ("", scene.position), scene.caption
        if "small" in words or "large" in words:
            assert scene.size in words


def test_a_mentioned_position_is_where_the_shape_is():
    scenes = sample_scenes(11, 3000)
    grid = np.array([POSITIONS[p] for p in POSITION_NAMES])
    nearest = np.argmin(((scenes.center[:, None, :] - grid[None]) ** 2).sum(-1), axis=1)
    mentioned = np.array([any(p in c for p in POSITION_NAMES) for c in scenes.captions])
    assert mentioned.mean() > 0.3
    assert (nearest[mentioned] == scenes.position[mentioned]).all()
    # shapes stay inside the picture
    assert (scenes.center - scenes.radius[:, None] >= 0).all() and (scenes.center + scenes.radius[:, None] <= 1).all()


def test_reader_recovers_colours_and_position_of_drawn_layouts():
    scenes = []
    for i, (shape, color, background, position) in enumerate([
        ("circle", "red", "blue", "at the top left"), ("square", "green", "white", "at the bottom right"),
        ("star", "yellow", "black", "in the center"), ("heart", "purple", "pink", "on the left"),
        ("triangle", "cyan", "brown", "at the top"), ("diamond", "orange", "gray", "on the right"),
    ]):
        scenes.append(Scene(shape, color, background, POSITIONS[position], 0.15, "medium", position,
                            make_caption(shape, color, background, None, position)))
    drawn = draw(scenes, size=96)
    for image, scene in zip(drawn.images, scenes):
        reading = read_image(image)
        assert (reading.shape_color, reading.background, reading.position) == (scene.color, scene.background,
                                                                                 scene.position)
    # channels-last and PIL-style inputs read the same
    assert read_image(drawn.images_bhwc()[0]).shape_color == "red"


def test_masks_and_edges(batch):
    assert batch.masks.min() >= 0 and batch.masks.max() <= 1
    edges = batch.edges()
    assert edges.shape == batch.masks.shape
    interior = batch.masks > 0.999
    # edges sit on the outline: none deep inside the shape, some on every picture
    assert edges[interior & (torch.nn.functional.max_pool2d(1 - batch.masks, 5, 1, 2) == 0)].max() == 0
    assert (edges.flatten(1).amax(1) > 0.5).all()


def test_word_token_table_matches_the_clip_tokenizer():
    from nodes.diffusion.clip import get_tokenizer

    try:
        tokenizer = get_tokenizer()
    except FileNotFoundError as exc:  # vocabulary ships with open-clip-torch
        pytest.skip(str(exc))
    for word, ids in WORD_TOKENS.items():
        assert tuple(tokenizer.encode(word)) == ids, word
    for caption in generate(seed=5, count=40, size=32).captions + [""]:
        assert token_ids(caption) == tokenizer(caption), caption
        assert token_ids(caption, pad_token=0) == tokenizer(caption, pad=0), caption


def test_used_token_mask_covers_every_caption_token():
    used = token_used_mask()
    for caption in sample_scenes(8, 500).captions:
        assert used[token_ids(caption)].all()
    assert used.sum() < 60
