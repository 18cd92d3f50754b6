"""Post-processing nodes against references written from ComfyUI 0.8's
comfy_extras/nodes_post_processing.py (ImageBlend, ImageBlur, ImageSharpen, ImageQuantize) and
nodes_morphology.py (Morphology, compared with kornia, which ComfyUI calls; kornia is a test
dependency only)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.diffusion.nodecall import run
from tests.upscale.test_image_scale import comfy_reference


def picture(b=1, h=30, w=40, c=3, seed=0) -> torch.Tensor:
    return torch.rand(b, h, w, c, generator=torch.Generator().manual_seed(seed))


# --- ImageBlend --------------------------------------------------------------------------------------

def comfy_blend_mode(a, b, mode):
    """ComfyUI's Blend.blend_mode, formula by formula."""
    if mode == "normal":
        return b
    if mode == "multiply":
        return a * b
    if mode == "screen":
        return 1 - (1 - a) * (1 - b)
    if mode == "overlay":
        return torch.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b))
    if mode == "soft_light":
        g = torch.where(a <= 0.25, ((16 * a - 12) * a + 4) * a, torch.sqrt(a))
        return torch.where(b <= 0.5, a - (1 - 2 * b) * a * (1 - a), a + (2 * b - 1) * (g - a))
    if mode == "difference":
        return a - b
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", ["normal", "multiply", "screen", "overlay", "soft_light", "difference"])
@pytest.mark.parametrize("factor", [0.0, 0.3, 1.0])
def test_image_blend_modes(env, mode, factor):
    a, b = picture(2, seed=1), picture(2, seed=2)
    out = run(env, "ImageBlend", image1=a, image2=b, blend_factor=factor, blend_mode=mode)
    expected = (a * (1 - factor) + comfy_blend_mode(a, b, mode) * factor).clamp(0, 1)
    assert torch.allclose(out, expected, atol=1e-6)


def test_image_blend_difference_is_signed_then_clamped(env):
    a, b = torch.full((1, 2, 2, 3), 0.2), torch.full((1, 2, 2, 3), 0.7)
    out = run(env, "ImageBlend", image1=a, image2=b, blend_factor=1.0, blend_mode="difference")
    assert out.eq(0).all()  # 0.2 - 0.7 < 0, clamped: not |0.2 - 0.7|


def test_image_blend_resizes_image2_centre_cropped_bicubic(env):
    a, b = picture(1, 30, 40, seed=1), picture(1, 45, 45, seed=2)
    out = run(env, "ImageBlend", image1=a, image2=b, blend_factor=0.5, blend_mode="multiply")
    b2 = comfy_reference(b, 40, 30, "bicubic", "center")
    assert torch.allclose(out, (a * 0.5 + a * b2 * 0.5).clamp(0, 1), atol=1e-6)


# --- ImageBlur, ImageSharpen ------------------------------------------------------------------------

def comfy_gaussian(size, sigma):
    x, y = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    g = torch.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    return g / g.sum()


def comfy_filter(image, kernel, radius):
    """ComfyUI's convolution: reflect-pad by the radius, conv2d with zero padding, cut the border off."""
    c = image.shape[-1]
    x = F.pad(image.permute(0, 3, 1, 2), (radius,) * 4, "reflect")
    out = F.conv2d(x, kernel.repeat(c, 1, 1).unsqueeze(1), padding=kernel.shape[0] // 2, groups=c)
    return out[:, :, radius:-radius, radius:-radius].permute(0, 2, 3, 1)


@pytest.mark.parametrize("radius, sigma", [(1, 1.0), (3, 0.5), (7, 2.5), (12, 10.0)])
def test_image_blur(env, radius, sigma):
    image = picture(2, 30, 40, c=4)
    out = run(env, "ImageBlur", image=image, blur_radius=radius, sigma=sigma)
    expected = comfy_filter(image, comfy_gaussian(2 * radius + 1, sigma), radius)
    assert out.shape == image.shape and torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("radius, sigma, alpha", [(1, 1.0, 1.0), (2, 0.3, 0.5), (5, 3.0, 2.0), (1, 1.0, 0.0)])
def test_image_sharpen(env, radius, sigma, alpha):
    image = picture(1, 30, 40)
    size = 2 * radius + 1
    kernel = comfy_gaussian(size, sigma) * -(alpha * 10)
    kernel[size // 2, size // 2] = kernel[size // 2, size // 2] - kernel.sum() + 1.0
    expected = comfy_filter(image, kernel, radius).clamp(0, 1)
    out = run(env, "ImageSharpen", image=image, sharpen_radius=radius, sigma=sigma, alpha=alpha)
    assert torch.allclose(out, expected, atol=1e-5)
    if alpha == 0:
        assert torch.allclose(out, image, atol=1e-6)  # the kernel is then the identity


@pytest.mark.parametrize("name, radius_input", [("ImageBlur", "blur_radius"), ("ImageSharpen", "sharpen_radius")])
def test_filter_radius_larger_than_the_image_is_a_clear_error(env, name, radius_input):
    extra = {"sigma": 1.0} if name == "ImageBlur" else {"sigma": 1.0, "alpha": 1.0}
    with pytest.raises(ValueError, match=f"{name}: {radius_input} \\(8\\)"):
        run(env, name, image=picture(1, 8, 20), **{radius_input: 8}, **extra)


# --- ImageQuantize -----------------------------------------------------------------------------------

def classic_bayer(order):
    """The textbook Bayer index matrix (0 .. order² - 1): B(2n) = [[4B, 4B + 2], [4B + 3, 4B + 1]]."""
    b = np.zeros((1, 1))
    while b.shape[0] < order:
        b = np.block([[4 * b, 4 * b + 2], [4 * b + 3, 4 * b + 1]])
    return b


@pytest.mark.parametrize("order", [2, 4, 8, 16])
def test_bayer_matrix_is_the_normalised_classic_one(order):
    from nodes.image.postprocessing import bayer_matrix
    n2 = order * order  # ComfyUI's normalized_bayer_matrix is the index matrix centred on 0, in 1/n² steps
    assert np.allclose(bayer_matrix(order), (classic_bayer(order) - (n2 - 1) / 2) / n2)


def comfy_quantize(image, colors, dither):
    """ComfyUI's Quantize.execute through PIL (8 bits truncated; a median-cut palette first)."""
    out = torch.zeros_like(image)
    for k in range(image.shape[0]):
        im = Image.fromarray((image[k] * 255).to(torch.uint8).numpy())
        palette = im.quantize(colors=colors)
        if dither == "none":
            q = im.quantize(palette=palette, dither=Image.Dither.NONE)
        elif dither == "floyd-steinberg":
            q = im.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
        else:
            order = int(dither.split("-")[-1])
            n2 = order * order
            spread = 2 * 256 / (len(palette.getpalette()) // 3)
            threshold = spread * ((classic_bayer(order) - (n2 - 1) / 2) / n2) + 0.5
            pixels = np.array(im).astype(np.float32)
            tiled = np.tile(threshold, (-(-pixels.shape[0] // order), -(-pixels.shape[1] // order)))
            pixels = np.clip(pixels + tiled[:pixels.shape[0], :pixels.shape[1], None].astype(np.float32), 0, 255)
            q = Image.fromarray(pixels.astype(np.uint8)).quantize(palette=palette, dither=Image.Dither.NONE)
        out[k] = torch.from_numpy(np.array(q.convert("RGB"))).float() / 255
    return out


@pytest.mark.parametrize("dither", ["none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16"])
@pytest.mark.parametrize("colors", [2, 7, 256])
def test_image_quantize(env, dither, colors):
    y, x = torch.meshgrid(torch.linspace(0, 1, 30), torch.linspace(0, 1, 40), indexing="ij")
    image = torch.stack([x, y, (x + y) / 2], -1)[None].repeat(2, 1, 1, 1)  # smooth gradients show dithering
    image[1] = picture(1, 30, 40)[0]
    out = run(env, "ImageQuantize", image=image, colors=colors, dither=dither)
    assert torch.equal(out, comfy_quantize(image, colors, dither))
    for k in range(2):
        assert len(torch.unique(out[k].reshape(-1, 3), dim=0)) <= colors


def test_image_quantize_keeps_alpha(env):
    image = picture(1, 10, 12, c=4)
    out = run(env, "ImageQuantize", image=image, colors=4, dither="none")
    assert torch.equal(out[..., 3], image[..., 3])
    assert torch.equal(out[..., :3], comfy_quantize(image[..., :3].contiguous(), 4, "none"))


# --- Morphology (kornia.morphology, which ComfyUI calls) --------------------------------------------

@pytest.mark.parametrize("operation", ["erode", "dilate", "open", "close", "gradient", "bottom_hat", "top_hat"])
@pytest.mark.parametrize("kernel_size", [3, 4, 5, 10])
def test_morphology_equals_kornia(env, operation, kernel_size):
    kornia_morphology = pytest.importorskip("kornia.morphology")
    reference = {"erode": kornia_morphology.erosion, "dilate": kornia_morphology.dilation,
                 "open": kornia_morphology.opening, "close": kornia_morphology.closing,
                 "gradient": kornia_morphology.gradient, "top_hat": kornia_morphology.top_hat,
                 "bottom_hat": kornia_morphology.bottom_hat}[operation]
    image = picture(2, 23, 31)
    image[0, 5:15, 8:20] = 1.0  # a block, so opening and closing have shapes to keep or remove
    out = run(env, "Morphology", image=image, operation=operation, kernel_size=kernel_size)
    expected = reference(image.movedim(-1, 1), torch.ones(kernel_size, kernel_size)).movedim(1, -1)
    assert out.shape == image.shape and torch.equal(out, expected)


def test_morphology_kernel_bigger_than_the_image(env):
    image = picture(1, 6, 5)
    out = run(env, "Morphology", image=image, operation="dilate", kernel_size=15)
    assert torch.equal(out, image.amax(dim=(1, 2), keepdim=True).expand_as(image))  # the window covers it all


# --- ImageInvert -------------------------------------------------------------------------------------

def test_image_invert(env):
    image = picture()
    assert torch.equal(run(env, "ImageInvert", image=image), 1.0 - image)


# --- ImageAddNoise (nodes_images.py) -----------------------------------------------------------------

def test_image_add_noise_draws_comfyuis_noise(env):
    image = picture(2, 8, 9)
    out = run(env, "ImageAddNoise", image=image, seed=123, strength=0.3)
    torch.manual_seed(123)  # ComfyUI: torch.manual_seed(seed), randn(image.size()) on the CPU
    expected = torch.clip(image + 0.3 * torch.randn(image.size()), 0.0, 1.0)
    assert torch.equal(out, expected)
    assert not torch.equal(out, run(env, "ImageAddNoise", image=image, seed=124, strength=0.3))
