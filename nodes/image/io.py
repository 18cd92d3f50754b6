"""Images in and out (ComfyUI's nodes.py): load an image or one channel of it as a mask from the input
folder, save or preview, and a solid-colour source."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence

from nodegraph import (IMAGE, MASK, Choice, Input, Int, Output, String, filename_prefix_problem, node,
                       pil_to_tensor, pixel_budget_problem, save_images)

from .common import MAX_SIDE

__all__ = ["LoadImage", "LoadImageOutput", "LoadImageMask", "SaveImage", "PreviewImage", "EmptyImage"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def input_images(env) -> list[str]:
    root = env.folders.input
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def output_images(env) -> list[str]:
    """The output folder's images as ComfyUI's frontend names them for LoadImageOutput: "name [output]"."""
    root = env.folders.output
    if not root.is_dir():
        return []
    return sorted(f"{p.relative_to(root).as_posix()} [output]" for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


ANNOTATIONS = {" [output]": "output", " [input]": "input", " [temp]": "temp"}


def annotated_path(folders, image: str, default: str = "input") -> Path:
    """ComfyUI's folder_paths.get_annotated_filepath: a trailing " [output]" / " [input]" / " [temp]"
    names the folder, else `default`; traversal out of the folder is refused."""
    for suffix, kind in ANNOTATIONS.items():
        if image.endswith(suffix):
            return folders.safe_path(kind, image[: -len(suffix)])
    return folders.safe_path(default, image)


def file_fingerprint(env, image: str, default: str = "input") -> str:
    return hashlib.sha256(annotated_path(env.folders, image, default).read_bytes()).hexdigest()


def _eight_bit(frame: Image.Image) -> Image.Image:
    """32-bit integer images (16-bit PNGs open so) scaled to 8 bits as ComfyUI does (÷ 255), not clipped."""
    return frame.point(lambda v: v * (1 / 255)) if frame.mode == "I" else frame


def _pixel_problem(limits, width: int, height: int, name: str) -> None:
    """Refuse an image (or frames) above the decoded-pixel limit, from its header: before decoding."""
    problem = limits.image_size_problem(width, height, f"{name!r}") if limits is not None else None
    if problem:
        raise ValueError(f"input 'image': {problem}")


def load_frames(path, limits=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every frame of an image file of the first frame's size (an animation becomes a batch; MPO
    files give their first picture only, as ComfyUI): IMAGE [B,H,W,3], MASK [B,H,W] = 1 - alpha.
    With `limits`, all frames together stay under its decoded-pixel limit."""
    images, masks = [], []
    with Image.open(path) as im:
        rows = 0  # decoded so far, counted as rows of the first frame's width
        for frame in ImageSequence.Iterator(im):
            rows += frame.height
            _pixel_problem(limits, frame.width, rows, Path(path).name)
            tensor = pil_to_tensor(_eight_bit(ImageOps.exif_transpose(frame)))
            if images and tensor.shape[1:3] != images[0].shape[1:3]:
                continue
            images.append(tensor[..., :3])
            masks.append(1.0 - tensor[..., 3] if tensor.shape[-1] == 4 else torch.zeros(tensor.shape[:3]))
            if im.format == "MPO":
                break
    return torch.cat(images).contiguous(), torch.cat(masks)


@node(category="image")
class LoadImage:
    """Load an image from the input folder; the mask is its inverted alpha (1 = transparent).
    Animated files load as a batch of their frames."""
    inputs = [Choice("image", input_images, display="image_upload")]
    outputs = [Output("IMAGE", IMAGE), Output("MASK", MASK)]

    @classmethod
    def fingerprint(cls, env, image):
        return file_fingerprint(env, image)

    def run(self, ctx, image):
        return load_frames(ctx.folders.safe_path("input", image), ctx.env.limits)


@node(category="image", display_name="Load Image (from Outputs)")
class LoadImageOutput:
    """Load an image from the output folder (ComfyUI's LoadImageOutput): pick a result of an earlier run
    and keep working on it. Names carry ComfyUI's " [output]" annotation."""
    inputs = [Choice("image", output_images, display="image_upload")]
    outputs = [Output("IMAGE", IMAGE), Output("MASK", MASK)]

    @classmethod
    def fingerprint(cls, env, image):
        return file_fingerprint(env, image, default="output")

    def run(self, ctx, image):
        return load_frames(annotated_path(ctx.folders, image, default="output"), ctx.env.limits)


@node(category="mask", display_name="Load Image (as Mask)")
class LoadImageMask:
    """One channel of an image in the input folder as a mask [1,H,W]; the alpha channel inverted
    (1 = transparent), so an image without alpha gives an empty mask."""
    inputs = [Choice("image", input_images, display="image_upload"), Choice("channel", ["alpha", "red", "green", "blue"])]
    outputs = [Output("MASK", MASK)]

    @classmethod
    def fingerprint(cls, env, image, channel=None):
        return file_fingerprint(env, image)

    def run(self, ctx, image, channel):
        with Image.open(ctx.folders.safe_path("input", image)) as im:
            _pixel_problem(ctx.env.limits, im.width, im.height, image)
            im = ImageOps.exif_transpose(im)
            if im.getbands() != ("R", "G", "B", "A"):
                im = _eight_bit(im).convert("RGBA")
            band = np.asarray(im.getchannel(channel[0].upper()), dtype=np.float32) / 255.0
        mask = torch.from_numpy(band.copy())
        return (1.0 - mask if channel == "alpha" else mask)[None]


@node(category="image", output_node=True)
class SaveImage:
    """Save images as PNG in the output folder, with the workflow embedded."""
    inputs = [Input("images", IMAGE), String("filename_prefix", "nodegraph")]
    outputs = []

    @classmethod
    def validate_inputs(cls, images=None, filename_prefix="nodegraph"):
        problem = filename_prefix_problem(filename_prefix)
        return {"filename_prefix": problem} if problem else None

    def run(self, ctx, images, filename_prefix):
        ctx.show(images=save_images(ctx, images, filename_prefix, "output"))


@node(category="image", output_node=True)
class PreviewImage:
    """Show images without keeping them (written to the temp folder)."""
    inputs = [Input("images", IMAGE)]
    outputs = []

    def run(self, ctx, images):
        # a node id is any string in a native workflow: only its plain characters name a file
        ctx.show(images=save_images(ctx, images, "preview_" + re.sub(r"[^A-Za-z0-9_.-]", "_", ctx.node_id)[:100],
                                    "temp"))


@node(category="image")
class EmptyImage:
    """A batch of images of one colour (0xRRGGBB)."""
    inputs = [Int("width", 512, min=1, max=MAX_SIDE), Int("height", 512, min=1, max=MAX_SIDE),
              Int("batch_size", 1, min=1, max=4096), Int("color", 0, min=0, max=0xFFFFFF, display="color")]
    outputs = [Output("IMAGE", IMAGE)]

    @classmethod
    def validate_inputs(cls, width, height, batch_size, color):
        return pixel_budget_problem(width, height, batch_size)

    def run(self, ctx, width, height, batch_size, color):
        rgb = torch.tensor([(color >> 16) & 255, (color >> 8) & 255, color & 255], dtype=torch.float32) / 255.0
        return rgb.expand(batch_size, height, width, 3).clone()
