"""The words of the default world: colours, shapes, positions, sizes, and their CLIP BPE token ids.

Captions are lower-case words separated by single spaces, and the CLIP BPE tokenizer encodes each
such word on its own, so a caption's token ids are the concatenation of its words' ids. The table
below was produced with the standard CLIP BPE vocabulary (bpe_simple_vocab_16e6) and is checked
against a real tokenizer by tests/training/test_default_world.py.
"""
from __future__ import annotations

import numpy as np

from nodes.gan.shapes import SHAPES  # the shapes the world draws (re-exported here with its words)

BOS_TOKEN = 49406  # <|startoftext|>
EOS_TOKEN = 49407  # <|endoftext|>
CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408

# name -> RGB in 0..1. Hues are far apart so that a nearest-palette lookup names them reliably.
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.08, 0.08),
    "orange": (1.00, 0.55, 0.00),
    "yellow": (0.98, 0.90, 0.10),
    "green": (0.10, 0.68, 0.15),
    "cyan": (0.10, 0.85, 0.90),
    "blue": (0.10, 0.25, 0.90),
    "purple": (0.55, 0.15, 0.75),
    "pink": (1.00, 0.50, 0.75),
    "brown": (0.50, 0.28, 0.10),
    "white": (0.97, 0.97, 0.97),
    "gray": (0.50, 0.50, 0.50),
    "black": (0.05, 0.05, 0.05),
}
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
PALETTE = np.array([COLORS[n] for n in COLOR_NAMES], dtype=np.float32)  # [n_colors, 3]


# Position phrase -> nominal centre (x, y) as fractions of the image, y pointing down.
POSITIONS: dict[str, tuple[float, float]] = {
    "at the top left": (0.27, 0.27),
    "at the top": (0.50, 0.27),
    "at the top right": (0.73, 0.27),
    "on the left": (0.27, 0.50),
    "in the center": (0.50, 0.50),
    "on the right": (0.73, 0.50),
    "at the bottom left": (0.27, 0.73),
    "at the bottom": (0.50, 0.73),
    "at the bottom right": (0.73, 0.73),
}
POSITION_NAMES: tuple[str, ...] = tuple(POSITIONS)

# Size name -> range of the shape's radius as a fraction of the image side. "medium" is never
# written in captions: an unsized caption may show any size.
SIZES: dict[str, tuple[float, float]] = {
    "small": (0.10, 0.15),
    "medium": (0.16, 0.23),
    "large": (0.25, 0.32),
}
SIZE_NAMES: tuple[str, ...] = tuple(SIZES)

# word -> CLIP BPE ids ("cyan" is two tokens, every other word is one).
WORD_TOKENS: dict[str, tuple[int, ...]] = {
    "a": (320,),
    "an": (550,),
    "on": (525,),
    "at": (536,),
    "in": (530,),
    "the": (518,),
    "background": (5994,),
    "top": (1253,),
    "bottom": (5931,),
    "left": (1823,),
    "right": (1155,),
    "center": (2119,),
    "small": (2442,),
    "medium": (8675,),
    "large": (3638,),
    "red": (736,),
    "orange": (4287,),
    "yellow": (4481,),
    "green": (1901,),
    "cyan": (1470, 550),
    "blue": (1746,),
    "purple": (5496,),
    "pink": (3360,),
    "brown": (2866,),
    "white": (1579,),
    "gray": (7048,),
    "black": (1449,),
    "circle": (7117,),
    "square": (3999,),
    "triangle": (14615,),
    "diamond": (6235,),
    "star": (1565,),
    "heart": (1936,),
}


def caption_words() -> set[str]:
    """Every word a caption of the world can contain."""
    words = {"a", "an", "on", "background"} | set(COLOR_NAMES) | set(SHAPES) | {"small", "large"}
    for phrase in POSITION_NAMES:
        words.update(phrase.split())
    return words


def token_ids(caption: str, pad_token: int = EOS_TOKEN) -> list[int]:
    """The 77 CLIP token ids of a world caption: BOS, words, EOS, then padding.

    Raises KeyError for a word outside the world (use the real tokenizer for free text).
    """
    ids = [BOS_TOKEN]
    for word in caption.lower().split():
        ids.extend(WORD_TOKENS[word])
    ids = ids[: CONTEXT_LENGTH - 1] + [EOS_TOKEN]
    return ids + [pad_token] * (CONTEXT_LENGTH - len(ids))


def token_used_mask() -> np.ndarray:
    """Boolean [VOCAB_SIZE]: the token ids the world's captions can produce (plus BOS/EOS and 0)."""
    used = np.zeros(VOCAB_SIZE, dtype=bool)
    for ids in WORD_TOKENS.values():
        used[list(ids)] = True
    used[[BOS_TOKEN, EOS_TOKEN, 0]] = True
    return used
