"""Post-processing as ComfyUI's comfy_extras/nodes_post_processing.py: blending two images, blur,
sharpen, colour quantisation; and adding noise (nodes_images.py), inverting colours (nodes.py)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nodegraph import IMAGE, Choice, Float, Input, Int, Output, Seed, node, repeat_to_batch

from .scale import resize

__all__ = ["ImageBlend", "ImageBlur", "ImageSharpen", "ImageQuantize", "ImageAddNoise", "ImageInvert"]


def _soft_light(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The W3C soft-light formula (ComfyUI's): darken below b = 0.5, lighten towards g(a) above."""
    g = torch.where(a <= 0.25, ((16 * a - 12) * a + 4) * a, torch.sqrt(a))
    return torch.where(b <= 0.5, a - (1 - 2 * b) * a * (1 - a), a + (2 * b - 1) * (g - a))


BLEND_MODES = {
    "normal": lambda a, b: b,
    "multiply": lambda a, b: a * b,
    "screen": lambda a, b: 1 - (1 - a) * (1 - b),
    "overlay": lambda a, b: torch.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b)),
    "soft_light": _soft_light,
    "difference": lambda a, b: a - b,  # signed, as ComfyUI: the final clamp cuts what goes below 0
}


@node(category="image/postprocessing", display_name="Image Blend")
class ImageBlend:
    """Blend image2 over image1 by a factor; image2 is centre-cropped and resized (bicubic) to image1
    if their sizes differ."""
    inputs = [Input("image1", IMAGE), Input("image2", IMAGE), Float("blend_factor", 0.5, min=0.0, max=1.0, step=0.01),
              Choice("blend_mode", list(BLEND_MODES))]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image1, image2, blend_factor, blend_mode):
        if image2.shape[-1] > image1.shape[-1]:  # extra alpha dropped, as ComfyUI's image_alpha_fix
            image2 = image2[..., :image1.shape[-1]]
        elif image2.shape[-1] < image1.shape[-1]:
            image2 = F.pad(image2, (0, 1), value=1.0)
        image2 = image2.to(image1)
        if image2.shape[1:3] != image1.shape[1:3]:
            image2 = resize(image2, image1.shape[2], image1.shape[1], "bicubic", "center")
        image2 = repeat_to_batch(image2, image1.shape[0])
        blended = BLEND_MODES[blend_mode](image1, image2)
        return (image1 * (1 - blend_factor) + blended * blend_factor).clamp(0, 1)


def gaussian_kernel(size: int, sigma: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """ComfyUI's 2-D Gaussian: sample points spread over [-1, 1] whatever the size (so sigma is in
    units of the radius), normalised to sum 1."""
    axis = torch.linspace(-1, 1, size, device=device)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    d = torch.sqrt(x * x + y * y)
    g = torch.exp(-(d * d) / (2.0 * sigma * sigma))
    return (g / g.sum()).to(dtype)


def filter_image(image: torch.Tensor, kernel: torch.Tensor, node: str, radius_input: str) -> torch.Tensor:
    """Convolve each channel with a square kernel over the image mirrored at its edges (reflect)."""
    radius = kernel.shape[0] // 2
    h, w = image.shape[1:3]
    if radius >= h or radius >= w:
        raise ValueError(f"{node}: {radius_input} ({radius}) must be smaller than the image's width and "
                         f"height ({w}x{h}): the border is mirrored")
    c = image.shape[-1]
    x = F.pad(image.movedim(-1, 1), (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(x, kernel.to(x).expand(c, 1, *kernel.shape), groups=c)
    return out.movedim(1, -1)


@node(category="image/postprocessing", display_name="Image Blur")
class ImageBlur:
    """Gaussian blur over (2 × blur_radius + 1)² pixels."""
    inputs = [Input("image", IMAGE), Int("blur_radius", 1, min=1, max=31), Float("sigma", 1.0, min=0.1, max=10.0, step=0.1)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, blur_radius, sigma):
        kernel = gaussian_kernel(blur_radius * 2 + 1, sigma, image.device)
        return filter_image(image, kernel, "ImageBlur", "blur_radius")


@node(category="image/postprocessing", display_name="Image Sharpen")
class ImageSharpen:
    """Unsharp mask: the image minus alpha × 10 times its Gaussian blur, renormalised; clamped to 0..1."""
    inputs = [Input("image", IMAGE), Int("sharpen_radius", 1, min=1, max=31),
              Float("sigma", 1.0, min=0.1, max=10.0, step=0.01), Float("alpha", 1.0, min=0.0, max=5.0, step=0.01)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, sharpen_radius, sigma, alpha):
        size = sharpen_radius * 2 + 1
        kernel = gaussian_kernel(size, sigma, image.device, image.dtype) * -(alpha * 10)
        centre = size // 2
        kernel[centre, centre] = kernel[centre, centre] - kernel.sum() + 1.0  # the kernel sums to 1
        return filter_image(image, kernel, "ImageSharpen", "sharpen_radius").clamp(0, 1)


def bayer_matrix(order: int) -> np.ndarray:
    """The ordered-dither threshold matrix of size order × order, normalised around 0 (ComfyUI's
    normalized_bayer_matrix): M(0) = [[0]], M(n) = [[m - 1.5, m + 0.5], [m + 1.5, m - 0.5]] / 4^n
    with m = 4^n × M(n-1)."""
    m = np.zeros((1, 1), np.float32)
    for n in range(1, int(math.log2(order)) + 1):
        q = 4 ** n
        m = q * m
        m = np.block([[m - 1.5, m + 0.5], [m + 1.5, m - 0.5]]) / q
    return m


def _bayer_quantize(im: Image.Image, palette: Image.Image, order: int) -> Image.Image:
    """Add the Bayer threshold (spread over two palette steps) to the 8-bit pixels, then map to the
    palette without dithering."""
    spread = 2 * 256 / (len(palette.getpalette()) // 3)
    threshold = torch.from_numpy(spread * bayer_matrix(order) + 0.5)
    pixels = torch.from_numpy(np.array(im).astype(np.float32))
    reps = (math.ceil(pixels.shape[0] / order), math.ceil(pixels.shape[1] / order))
    tiled = threshold.tile(*reps).unsqueeze(-1)[:pixels.shape[0], :pixels.shape[1]]
    pixels.add_(tiled).clamp_(0, 255)
    return Image.fromarray(pixels.to(torch.uint8).numpy()).quantize(palette=palette, dither=Image.Dither.NONE)


@node(category="image/postprocessing", display_name="Image Quantize")
class ImageQuantize:
    """Reduce to at most `colors` colours (PIL's median cut), with no dithering, Floyd-Steinberg or
    ordered (Bayer) dithering. An alpha channel is kept as it is."""
    inputs = [Input("image", IMAGE), Int("colors", 256, min=1, max=256),
              Choice("dither", ["none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16"])]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, colors, dither):
        result = image.clone()
        for b in range(image.shape[0]):
            ctx.check_interrupt()
            # 8 bits truncated, as ComfyUI (not rounded)
            im = Image.fromarray((image[b, ..., :3].float().cpu() * 255).to(torch.uint8).numpy())
            palette = im.quantize(colors=colors)  # PIL needs a palette image to map onto (Pillow #5836)
            if dither == "none":
                quantized = im.quantize(palette=palette, dither=Image.Dither.NONE)
            elif dither == "floyd-steinberg":
                quantized = im.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
            else:
                quantized = _bayer_quantize(im, palette, int(dither.split("-")[-1]))
            rgb = torch.from_numpy(np.array(quantized.convert("RGB"))).float() / 255
            result[b, ..., :3] = rgb.to(result)
        return result


@node(category="image")
class ImageAddNoise:
    """Add Gaussian noise × strength, clamped to 0..1. The noise is drawn on the CPU from the seed, as
    ComfyUI draws it (torch.manual_seed, then randn of the image's shape), so the same seed gives the
    same noise."""
    inputs = [Input("image", IMAGE), Seed("seed", 0), Float("strength", 0.5, min=0.0, max=1.0, step=0.01)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image, seed, strength):
        generator = torch.Generator("cpu").manual_seed(seed)  # a private generator: the global one is left alone
        noise = torch.randn(image.shape, generator=generator, device="cpu").to(image)
        return (image + strength * noise).clamp(0, 1)


@node(category="image", display_name="Invert Image")
class ImageInvert:
    """Invert the colours."""
    inputs = [Input("image", IMAGE)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, image):
        return 1.0 - image
