"""Random scenes of the default world: one coloured shape on a plain background, with a caption.

Sampling is vectorised with numpy and deterministic from a seed, so the training script can draw
hundreds of thousands of scenes in a fraction of a second, and a test can ask for the same ones.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .vocabulary import COLOR_NAMES, PALETTE, POSITION_NAMES, POSITIONS, SHAPES, SIZE_NAMES, SIZES

# How often a caption mentions each optional part.
P_MENTION_SIZE = 0.4  # only small/large are ever written
P_MENTION_POSITION = 0.5
P_MENTION_BACKGROUND = 0.85
P_MENTION_COLOR = 0.95
COLOR_JITTER = 0.03  # std of the per-image RGB jitter, so colours are a small distribution
EDGE_MARGIN = 0.02  # shapes stay this far (fraction of the side) from the image border


@dataclass(frozen=True)
class Scene:
    """One scene's layout, as plain values (fractions of the image side, y pointing down)."""

    shape: str
    color: str
    background: str
    center: tuple[float, float]
    radius: float
    size: str  # "small" | "medium" | "large"
    position: str  # the 3x3 cell phrase nearest the centre, mentioned in the caption or not
    caption: str

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1): the square the shape is drawn in."""
        x, y = self.center
        return (x - self.radius, y - self.radius, x + self.radius, y + self.radius)


@dataclass
class SceneBatch:
    """Scenes as arrays (index into the vocabulary tuples) plus their captions."""

    shape: np.ndarray  # int [B] into SHAPES
    color: np.ndarray  # int [B] into COLOR_NAMES
    background: np.ndarray  # int [B] into COLOR_NAMES, never equal to color
    shape_rgb: np.ndarray  # float32 [B, 3], jittered palette colour
    background_rgb: np.ndarray  # float32 [B, 3]
    center: np.ndarray  # float32 [B, 2] (x, y)
    radius: np.ndarray  # float32 [B]
    size: np.ndarray  # int [B] into SIZE_NAMES
    position: np.ndarray  # int [B] into POSITION_NAMES (nearest cell)
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)

    def scene(self, i: int) -> Scene:
        return Scene(
            shape=SHAPES[self.shape[i]],
            color=COLOR_NAMES[self.color[i]],
            background=COLOR_NAMES[self.background[i]],
            center=(float(self.center[i, 0]), float(self.center[i, 1])),
            radius=float(self.radius[i]),
            size=SIZE_NAMES[self.size[i]],
            position=POSITION_NAMES[self.position[i]],
            caption=self.captions[i],
        )

    def scenes(self) -> list[Scene]:
        return [self.scene(i) for i in range(len(self))]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def make_caption(
    shape: str, color: str | None, background: str | None, size: str | None = None, position: str | None = None
) -> str:
    """ "a small red circle at the top left on a blue background"; None leaves a part out."""
    words = []
    if size in ("small", "large"):
        words.append(size)
    if color:
        words.append(color)
    words.append(shape)
    text = f"{_article(words[0])} {' '.join(words)}"
    if position:
        text += f" {position}"
    if background:
        text += f" on {_article(background)} {background} background"
    return text


def sample_scenes(seed: int, count: int) -> SceneBatch:
    """`count` random scenes, a pure function of (seed, count)."""
    rng = np.random.default_rng(seed)
    n_colors = len(COLOR_NAMES)
    shape = rng.integers(0, len(SHAPES), count)
    color = rng.integers(0, n_colors, count)
    # background differs from the shape colour: draw among the other n-1 colours
    background = (color + rng.integers(1, n_colors, count)) % n_colors
    size = rng.integers(0, len(SIZE_NAMES), count)
    lo = np.array([SIZES[s][0] for s in SIZE_NAMES])[size]
    hi = np.array([SIZES[s][1] for s in SIZE_NAMES])[size]
    radius = lo + (hi - lo) * rng.random(count)

    mention_position = rng.random(count) < P_MENTION_POSITION
    cell = rng.integers(0, len(POSITION_NAMES), count)
    nominal = np.array([POSITIONS[p] for p in POSITION_NAMES])[cell]
    around_cell = nominal + rng.uniform(-0.06, 0.06, (count, 2))
    anywhere = rng.random((count, 2))
    lo_c = (radius + EDGE_MARGIN)[:, None]
    center = np.where(mention_position[:, None], around_cell, lo_c + anywhere * (1 - 2 * lo_c))
    center = np.clip(center, lo_c, 1 - lo_c)
    # the phrase that describes where the shape really is (after clipping / when unmentioned)
    grid = np.array([POSITIONS[p] for p in POSITION_NAMES])
    position = np.argmin(((center[:, None, :] - grid[None]) ** 2).sum(-1), axis=1)
    position = np.where(mention_position, cell, position)

    shape_rgb = np.clip(PALETTE[color] + rng.normal(0, COLOR_JITTER, (count, 3)), 0, 1)
    background_rgb = np.clip(PALETTE[background] + rng.normal(0, COLOR_JITTER, (count, 3)), 0, 1)

    mention_size = rng.random(count) < P_MENTION_SIZE
    mention_background = rng.random(count) < P_MENTION_BACKGROUND
    mention_color = rng.random(count) < P_MENTION_COLOR
    captions = [
        make_caption(
            SHAPES[shape[i]],
            COLOR_NAMES[color[i]] if mention_color[i] else None,
            COLOR_NAMES[background[i]] if mention_background[i] else None,
            SIZE_NAMES[size[i]] if mention_size[i] else None,
            POSITION_NAMES[position[i]] if mention_position[i] else None,
        )
        for i in range(count)
    ]
    return SceneBatch(
        shape=shape,
        color=color,
        background=background,
        shape_rgb=shape_rgb.astype(np.float32),
        background_rgb=background_rgb.astype(np.float32),
        center=center.astype(np.float32),
        radius=radius.astype(np.float32),
        size=size,
        position=position,
        captions=captions,
    )


def scene_batch_from(scenes: list[Scene]) -> SceneBatch:
    """A batch from explicit scenes (exact palette colours, no jitter), e.g. to render a layout."""
    shape = np.array([SHAPES.index(s.shape) for s in scenes])
    color = np.array([COLOR_NAMES.index(s.color) for s in scenes])
    background = np.array([COLOR_NAMES.index(s.background) for s in scenes])
    return SceneBatch(
        shape=shape,
        color=color,
        background=background,
        shape_rgb=PALETTE[color].copy(),
        background_rgb=PALETTE[background].copy(),
        center=np.array([s.center for s in scenes], dtype=np.float32).reshape(-1, 2),
        radius=np.array([s.radius for s in scenes], dtype=np.float32),
        size=np.array([SIZE_NAMES.index(s.size) for s in scenes]),
        position=np.array([POSITION_NAMES.index(s.position) for s in scenes]),
        captions=[s.caption for s in scenes],
    )
