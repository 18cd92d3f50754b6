"""Images in and out: load from the input folder, save or preview, and a solid-colour source."""
from __future__ import annotations

import hashlib

import torch
from PIL import Image, ImageOps

from nodegraph import IMAGE, MASK, Choice, Input, Int, Output, String, node
from nodegraph.images import pil_to_tensor, pixel_budget_problem, save_images

from .common import MAX_SIDE

__all__ = ["LoadImage", "SaveImage", "PreviewImage", "EmptyImage"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def input_images(env) -> list[str]:
    root = env.folders.input
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


@node(category="image")
class LoadImage:
    """Load an image from the input folder; the mask is its inverted alpha (1 = transparent)."""
    inputs = [Choice("image", input_images, display="image_upload")]
    outputs = [Output("IMAGE", IMAGE), Output("MASK", MASK)]

    @classmethod
    def fingerprint(cls, env, image):
        path = env.folders.safe_path("input", image)
        return hashlib.sha256(path.read_bytes()).hexdigest()

    def run(self, ctx, image):
        path = ctx.folders.safe_path("input", image)
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            tensor = pil_to_tensor(im)
        if tensor.shape[-1] == 4:
            mask = 1.0 - tensor[..., 3]
        else:
            mask = torch.zeros(tensor.shape[:3])
        return tensor[..., :3].contiguous(), mask


@node(category="image", output_node=True)
class SaveImage:
    """Save images as PNG in the output folder, with the workflow embedded."""
    inputs = [Input("images", IMAGE), String("filename_prefix", "nodegraph")]
    outputs = []

    def run(self, ctx, images, filename_prefix):
        ctx.show(images=save_images(ctx, images, filename_prefix, "output"))


@node(category="image", output_node=True)
class PreviewImage:
    """Show images without keeping them (written to the temp folder)."""
    inputs = [Input("images", IMAGE)]
    outputs = []

    def run(self, ctx, images):
        ctx.show(images=save_images(ctx, images, f"preview_{ctx.node_id}", "temp"))


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
