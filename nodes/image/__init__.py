"""Image pack: load/save/preview, resize/crop/flip/blend/invert, and mask operations.

Names and inputs follow ComfyUI's core nodes so its workflows run unchanged.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from nodegraph import IMAGE, MASK, Boolean, Choice, Float, Input, Int, Output, String, node
from nodegraph.images import center_crop_margins, pil_to_tensor, pixel_budget_problem, save_images

from .preprocessors import *  # noqa: F401,F403  (ControlNet preprocessors)

MAX_SIDE = 16384
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]


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


def resize(image: torch.Tensor, width: int, height: int, method: str, crop: str = "disabled") -> torch.Tensor:
    """Resize an IMAGE batch [B,H,W,C] as ComfyUI's common_upscale does: an optional centre crop to
    the target aspect ratio, then lanczos through PIL (8-bit, truncated like ComfyUI) or torch's
    interpolate (bilinear/bicubic with half-pixel centres). Not clamped: bicubic may overshoot 0..1
    slightly, as in ComfyUI (SaveImage clips)."""
    if crop == "center":
        image = center_crop_to(image, width, height)
    if method == "lanczos":
        return _lanczos(image, width, height)
    mode = {"nearest-exact": "nearest-exact", "bilinear": "bilinear", "area": "area", "bicubic": "bicubic"}[method]
    x = F.interpolate(image.movedim(-1, 1), size=(height, width), mode=mode)
    return x.movedim(1, -1)


def _lanczos(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    out = []
    for k in range(image.shape[0]):
        array = np.clip(image[k].float().cpu().numpy() * 255.0, 0, 255).astype(np.uint8)
        grey = array.shape[-1] == 1
        pil = Image.fromarray(array[..., 0] if grey else array).resize((width, height), Image.LANCZOS)
        resized = np.asarray(pil, dtype=np.float32) / 255.0
        out.append(torch.from_numpy(resized[..., None] if grey else resized))
    return torch.stack(out).to(image.device, image.dtype)


def center_crop_to(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Crop the centre to the aspect ratio of width:height (ComfyUI's offsets: the same margin,
    rounded, taken from both sides)."""
    h, w = image.shape[1:3]
    x, y = center_crop_margins(w, h, width, height)
    return image[:, y:h - y, x:w - x]


@node(category="image/upscaling", display_name="Upscale Image")
class ImageScale:
    """Resize to a size; a side of 0 keeps the aspect ratio; both 0 leaves the image as it is."""
    inputs = [Input("image", IMAGE), Choice("upscale_method", UPSCALE_METHODS),
              Int("width", 512, min=0, max=MAX_SIDE), Int("height", 512, min=0, max=MAX_SIDE),
              Choice("crop", ["disabled", "center"])]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, upscale_method, width, height, crop):
        if width == 0 and height == 0:
            return image
        h, w = image.shape[1:3]
        if width == 0:
            width = max(1, round(w * height / h))
        elif height == 0:
            height = max(1, round(h * width / w))
        return resize(image, width, height, upscale_method, crop)


@node(category="image/upscaling", display_name="Upscale Image By")
class ImageScaleBy:
    """Resize by a factor."""
    inputs = [Input("image", IMAGE), Choice("upscale_method", UPSCALE_METHODS),
              Float("scale_by", 1.0, min=0.01, max=8.0, step=0.01)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, upscale_method, scale_by):
        h, w = image.shape[1:3]
        return resize(image, max(1, round(w * scale_by)), max(1, round(h * scale_by)), upscale_method)


@node(category="image/transform")
class ImageCrop:
    """Crop a rectangle (clamped to the image)."""
    inputs = [Input("image", IMAGE), Int("width", 512, min=1, max=MAX_SIDE), Int("height", 512, min=1, max=MAX_SIDE),
              Int("x", 0, min=0, max=MAX_SIDE), Int("y", 0, min=0, max=MAX_SIDE)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, width, height, x, y):
        h, w = image.shape[1:3]
        x, y = min(x, w - 1), min(y, h - 1)
        return image[:, y:y + height, x:x + width].clone()


@node(category="image/transform")
class ImageFlip:
    """Mirror an image (x-axis: upside down; y-axis: left-right)."""
    inputs = [Input("image", IMAGE), Choice("flip_method", ["x-axis: vertically", "y-axis: horizontally"])]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, flip_method):
        return image.flip(1 if flip_method.startswith("x") else 2)


BLEND_MODES = {
    "normal": lambda a, b: b,
    "multiply": lambda a, b: a * b,
    "screen": lambda a, b: 1 - (1 - a) * (1 - b),
    "overlay": lambda a, b: torch.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b)),
    "difference": lambda a, b: (a - b).abs(),
}


@node(category="image/postprocessing")
class ImageBlend:
    """Blend image2 over image1 by a factor (image2 is resized to image1 if needed)."""
    inputs = [Input("image1", IMAGE), Input("image2", IMAGE), Float("blend_factor", 0.5, min=0.0, max=1.0, step=0.01),
              Choice("blend_mode", list(BLEND_MODES))]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image1, image2, blend_factor, blend_mode):
        if image2.shape[1:3] != image1.shape[1:3]:
            image2 = resize(image2, image1.shape[2], image1.shape[1], "bicubic")
        blended = BLEND_MODES[blend_mode](image1, image2)
        return (image1 * (1 - blend_factor) + blended * blend_factor).clamp(0, 1)


@node(category="image")
class ImageInvert:
    """Invert the colours."""
    inputs = [Input("image", IMAGE)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image):
        return 1.0 - image


@node(category="image")
class ImageBatch:
    """Join two image batches (image2 resized to image1's size)."""
    inputs = [Input("image1", IMAGE), Input("image2", IMAGE)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image1, image2):
        if image2.shape[1:3] != image1.shape[1:3]:
            image2 = resize(image2, image1.shape[2], image1.shape[1], "bilinear")
        return torch.cat([image1, image2[..., :image1.shape[-1]]], dim=0)


def repeat_to_batch(x: torch.Tensor, batch: int) -> torch.Tensor:
    """Cut or cycle a batch [B,...] to `batch` items (ComfyUI's repeat_to_batch_size)."""
    if x.shape[0] >= batch:
        return x[:batch]
    return x.repeat(-(-batch // x.shape[0]), *([1] * (x.ndim - 1)))[:batch]


@node(category="image")
class ImageCompositeMasked:
    """Paste source onto destination at (x, y), through an optional mask (ComfyUI's composite):
    the source batch is cycled to the destination's, the mask resized (bilinear) to the source."""
    inputs = [Input("destination", IMAGE), Input("source", IMAGE), Int("x", 0, min=0, max=MAX_SIDE, step=1),
              Int("y", 0, min=0, max=MAX_SIDE, step=1), Boolean("resize_source", False),
              Input("mask", MASK, optional=True)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, destination, source, x, y, resize_source, mask=None):
        if source.shape[-1] > destination.shape[-1]:  # extra alpha dropped; a missing one is opaque
            source = source[..., :destination.shape[-1]]
        elif source.shape[-1] < destination.shape[-1]:
            source = F.pad(source, (0, 1), value=1.0)
        out = destination.clone()
        if resize_source:
            source = resize(source, destination.shape[2], destination.shape[1], "bilinear")
        source = repeat_to_batch(source.to(out), out.shape[0])
        h = max(0, min(source.shape[1], out.shape[1] - y))
        w = max(0, min(source.shape[2], out.shape[2] - x))
        if h == 0 or w == 0:
            return out
        if mask is None:
            m = torch.ones(1, h, w, 1, dtype=out.dtype)
        else:
            m = F.interpolate(mask.reshape(-1, 1, *mask.shape[-2:]).to(out), size=source.shape[1:3], mode="bilinear")
            m = repeat_to_batch(m.movedim(1, -1)[:, :h, :w], out.shape[0])
        region = out[:, y:y + h, x:x + w]
        out[:, y:y + h, x:x + w] = region * (1 - m) + source[:, :h, :w] * m
        return out


@node(category="image/transform")
class ImagePadForOutpaint:
    """Put the image on a bigger mid-grey canvas; the mask is 1 on the new border and fades
    into the image over `feathering` pixels (quadratic, as ComfyUI) on the padded sides."""
    inputs = [Input("image", IMAGE),
              Int("left", 0, min=0, max=MAX_SIDE, step=8), Int("top", 0, min=0, max=MAX_SIDE, step=8),
              Int("right", 0, min=0, max=MAX_SIDE, step=8), Int("bottom", 0, min=0, max=MAX_SIDE, step=8),
              Int("feathering", 40, min=0, max=MAX_SIDE, step=1)]
    outputs = [Output("IMAGE", IMAGE), Output("MASK", MASK)]

    def run(self, ctx, image, left, top, right, bottom, feathering):
        b, h, w, c = image.shape
        problem = pixel_budget_problem(w + left + right, h + top + bottom, b)
        if problem:
            raise ValueError(f"ImagePadForOutpaint: the padded image is too big: {problem}")
        out = torch.full((b, h + top + bottom, w + left + right, c), 0.5, dtype=torch.float32)
        out[:, top:top + h, left:left + w] = image
        mask = torch.ones(h + top + bottom, w + left + right, dtype=torch.float32)
        mask[top:top + h, left:left + w] = outpaint_feather(h, w, left, top, right, bottom, feathering)
        return out, mask[None]


def outpaint_feather(h: int, w: int, left: int, top: int, right: int, bottom: int, feathering: int) -> torch.Tensor:
    """Mask values inside the original image: ((f - d) / f)² where the distance d to the nearest
    padded side is below f, else 0. Distances as ComfyUI counts them: row i is i from the top edge
    and h - i from the bottom one (so the first row is at 0, the last at 1). No feathering when the
    image is not wider and taller than twice the feathering."""
    if not (0 < feathering and feathering * 2 < h and feathering * 2 < w):
        return torch.zeros(h, w)
    rows = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float64)[None, :].expand(h, w)
    far_h, far_w = torch.full((h, w), float(h), dtype=torch.float64), torch.full((h, w), float(w), dtype=torch.float64)
    distance = torch.stack([rows if top else far_h, h - rows if bottom else far_h,
                            cols if left else far_w, w - cols if right else far_w]).amin(dim=0)
    rise = (feathering - distance) / feathering
    return torch.where(distance < feathering, rise * rise, torch.zeros_like(rise)).float()


# --- masks --------------------------------------------------------------------------------------
CHANNELS = ["red", "green", "blue", "alpha"]


@node(category="mask", display_name="Convert Image to Mask")
class ImageToMask:
    """One channel of an image as a mask."""
    inputs = [Input("image", IMAGE), Choice("channel", CHANNELS)]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, image, channel):
        index = CHANNELS.index(channel)
        if index >= image.shape[-1]:
            raise ValueError(f"ImageToMask: the image has no {channel} channel")
        return image[..., index].clone()


@node(category="mask", display_name="Convert Mask to Image")
class MaskToImage:
    """A mask as a grey image."""
    inputs = [Input("mask", MASK)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, mask):
        return mask.reshape(-1, *mask.shape[-2:])[..., None].expand(-1, -1, -1, 3).clone()


@node(category="mask")
class SolidMask:
    """A mask of one value."""
    inputs = [Float("value", 1.0, min=0.0, max=1.0, step=0.01), Int("width", 512, min=1, max=MAX_SIDE),
              Int("height", 512, min=1, max=MAX_SIDE)]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, value, width, height):
        return torch.full((1, height, width), value)


@node(category="mask")
class InvertMask:
    """1 - mask."""
    inputs = [Input("mask", MASK)]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, mask):
        return 1.0 - mask


@node(category="mask")
class GrowMask:
    """Grow (positive) or shrink (negative) a mask by whole pixels."""
    inputs = [Input("mask", MASK), Int("expand", 0, min=-MAX_SIDE, max=MAX_SIDE), Boolean("tapered_corners", True)]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, mask, expand, tapered_corners):
        m = mask.reshape(-1, 1, *mask.shape[-2:]).float()
        kernel = torch.ones(1, 1, 3, 3)
        if tapered_corners:
            kernel[0, 0, 0, 0] = kernel[0, 0, 0, 2] = kernel[0, 0, 2, 0] = kernel[0, 0, 2, 2] = 0
        for _ in range(abs(expand)):
            if expand > 0:  # dilate: max over the neighbourhood
                m = torch.maximum(m, _neighbourhood_max(m, kernel))
            else:  # erode: min over the neighbourhood
                m = 1 - _neighbourhood_max(1 - m, kernel).maximum(1 - m)
        return m[:, 0]


def _neighbourhood_max(m: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Max of each pixel's neighbours selected by a 3x3 0/1 kernel."""
    padded = F.pad(m, (1, 1, 1, 1), value=0.0)
    out = torch.zeros_like(m)
    for dy in range(3):
        for dx in range(3):
            if kernel[0, 0, dy, dx]:
                out = torch.maximum(out, padded[:, :, dy:dy + m.shape[2], dx:dx + m.shape[3]])
    return out


@node(category="mask")
class FeatherMask:
    """Fade a mask's edges towards 0 over the given number of pixels on each side."""
    inputs = [Input("mask", MASK), Int("left", 0, min=0, max=MAX_SIDE), Int("top", 0, min=0, max=MAX_SIDE),
              Int("right", 0, min=0, max=MAX_SIDE), Int("bottom", 0, min=0, max=MAX_SIDE)]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, mask, left, top, right, bottom):
        out = mask.reshape(-1, *mask.shape[-2:]).clone()
        h, w = out.shape[1:]
        left, right, top, bottom = min(left, w), min(right, w), min(top, h), min(bottom, h)
        for k in range(left):  # ComfyUI's ramp: (k + 1) / n from the edge inwards, the last row untouched
            out[:, :, k] *= (k + 1) / left
        for k in range(right):
            out[:, :, w - 1 - k] *= (k + 1) / right
        for k in range(top):
            out[:, k, :] *= (k + 1) / top
        for k in range(bottom):
            out[:, h - 1 - k, :] *= (k + 1) / bottom
        return out


MASK_OPS = {"multiply": lambda a, b: a * b, "add": lambda a, b: a + b, "subtract": lambda a, b: a - b,
            # the logical operations work on the rounded (binary) masks, as ComfyUI's
            "and": lambda a, b: (a.round().bool() & b.round().bool()).float(),
            "or": lambda a, b: (a.round().bool() | b.round().bool()).float(),
            "xor": lambda a, b: (a.round().bool() ^ b.round().bool()).float()}


@node(category="mask")
class MaskComposite:
    """Combine source into destination at (x, y) with an operation."""
    inputs = [Input("destination", MASK), Input("source", MASK), Int("x", 0, min=0, max=MAX_SIDE),
              Int("y", 0, min=0, max=MAX_SIDE), Choice("operation", list(MASK_OPS))]
    outputs = [Output("MASK", MASK)]

    def run(self, ctx, destination, source, x, y, operation):
        out = destination.reshape(-1, *destination.shape[-2:]).clone()
        src = repeat_to_batch(source.reshape(-1, *source.shape[-2:]).to(out), out.shape[0])
        h = max(0, min(src.shape[1], out.shape[1] - y))
        w = max(0, min(src.shape[2], out.shape[2] - x))
        region = out[:, y:y + h, x:x + w]
        out[:, y:y + h, x:x + w] = MASK_OPS[operation](region, src[:, :h, :w])
        return out.clamp(0, 1)  # ComfyUI clamps the whole mask, not only the pasted region

