"""Batch, size and geometry nodes against references written from ComfyUI 0.8's code: nodes.py
(ImageBatch), comfy_extras/nodes_images.py (ImageFromBatch, RepeatImageBatch, GetImageSize, ImageCrop,
ImageRotate, ImageStitch, ResizeAndPadImage) and nodes_post_processing.py (ImageScaleToTotalPixels).
Resizing is comfy.utils.common_upscale, checked on its own in tests/upscale/test_image_scale.py and
used here as `comfy_reference`."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.diffusion.nodecall import run
from tests.upscale.test_image_scale import comfy_reference


def picture(b=1, h=30, w=40, c=3, seed=0) -> torch.Tensor:
    return torch.rand(b, h, w, c, generator=torch.Generator().manual_seed(seed))


# --- ImageBatch (nodes.py) ---------------------------------------------------------------------------

def test_image_batch_same_size_concatenates(env):
    a, b = picture(2, seed=1), picture(3, seed=2)
    assert torch.equal(run(env, "ImageBatch", image1=a, image2=b), torch.cat([a, b]))


def test_image_batch_resizes_image2_centre_cropped_bilinear(env):
    a, b = picture(1, 30, 40), picture(2, 50, 50, seed=3)
    out = run(env, "ImageBatch", image1=a, image2=b)
    # ComfyUI: common_upscale(image2, w1, h1, "bilinear", "center")
    assert torch.allclose(out[1:], comfy_reference(b, 40, 30, "bilinear", "center"), atol=1e-6)
    assert torch.equal(out[:1], a)


def test_image_batch_gives_the_image_without_alpha_an_opaque_one(env):
    rgb, rgba = picture(1, c=3), picture(1, c=4, seed=5)
    out = run(env, "ImageBatch", image1=rgb, image2=rgba)
    assert out.shape == (2, 30, 40, 4) and out[0, ..., 3].eq(1).all() and torch.equal(out[1], rgba[0])
    out = run(env, "ImageBatch", image1=rgba, image2=rgb)
    assert out.shape == (2, 30, 40, 4) and out[1, ..., 3].eq(1).all() and torch.equal(out[1, ..., :3], rgb[0])


# --- ImageFromBatch, RepeatImageBatch, GetImageSize (nodes_images.py) ---------------------------------

@pytest.mark.parametrize("index, length", [(0, 1), (1, 2), (3, 5), (9, 1), (2, 4096)])
def test_image_from_batch_clamps_as_comfyui(env, index, length):
    images = picture(4)
    start = min(images.shape[0] - 1, index)  # ComfyUI: the index, then the length, clamped to the batch
    count = min(images.shape[0] - start, length)
    out = run(env, "ImageFromBatch", image=images, batch_index=index, length=length)
    assert torch.equal(out, images[start:start + count])


def test_repeat_image_batch_repeats_the_whole_batch(env):
    images = picture(2)
    out = run(env, "RepeatImageBatch", image=images, amount=3)
    assert torch.equal(out, torch.cat([images] * 3))  # image.repeat((amount, 1, 1, 1)): 0 1 0 1 0 1


def test_repeat_image_batch_refuses_an_absurd_batch(env):
    with pytest.raises(ValueError, match="RepeatImageBatch: amount 4096"):
        run(env, "RepeatImageBatch", image=torch.zeros(1, 1, 1, 3).expand(1, 16384, 16384, 3), amount=4096)


def test_get_image_size(env):
    assert run(env, "GetImageSize", image=picture(3, 17, 29)) == (29, 17, 3)


# --- ImageCrop, ImageRotate ------------------------------------------------------------------------

@pytest.mark.parametrize("x, y, w, h", [(0, 0, 512, 512), (5, 7, 10, 4), (39, 29, 8, 8), (100, 100, 3, 3)])
def test_image_crop_as_comfyui(env, x, y, w, h):
    image = picture()
    x0, y0 = min(x, image.shape[2] - 1), min(y, image.shape[1] - 1)  # ComfyUI clamps the corner only
    out = run(env, "ImageCrop", image=image, width=w, height=h, x=x, y=y)
    assert torch.equal(out, image[:, y0:y0 + h, x0:x0 + w])


@pytest.mark.parametrize("rotation, quarters", [("none", 0), ("90 degrees", 1), ("180 degrees", 2), ("270 degrees", 3)])
def test_image_rotate_clockwise(env, rotation, quarters):
    image = picture(2, 3, 5)
    out = run(env, "ImageRotate", image=image, rotation=rotation)
    expected = image
    for _ in range(quarters):  # a clockwise quarter turn: new[r, c] = old[h - 1 - c, r]
        expected = expected.flip(1).transpose(1, 2)
    assert torch.equal(out, expected)


# --- ImageScaleToTotalPixels (nodes_post_processing.py) ----------------------------------------------

@pytest.mark.parametrize("megapixels, steps, method", [(0.01, 1, "bilinear"), (0.02, 8, "area"), (0.005, 64, "lanczos"),
                                                        (0.003, 1, "nearest-exact")])
def test_scale_to_total_pixels(env, megapixels, steps, method):
    image = picture(1, 30, 40)
    scale = math.sqrt(megapixels * 1024 * 1024 / (40 * 30))
    width, height = round(40 * scale / steps) * steps, round(30 * scale / steps) * steps
    out = run(env, "ImageScaleToTotalPixels", image=image, upscale_method=method, megapixels=megapixels,
              resolution_steps=steps)
    assert out.shape == (1, height, width, 3)
    assert torch.allclose(out, comfy_reference(image, width, height, method, "disabled"), atol=1e-6)


def test_scale_to_total_pixels_says_when_the_steps_leave_nothing(env):
    with pytest.raises(ValueError, match="ImageScaleToTotalPixels.*resolution_steps"):
        run(env, "ImageScaleToTotalPixels", image=picture(1, 30, 400), upscale_method="area", megapixels=0.01,
            resolution_steps=256)


# --- ResizeAndPadImage -------------------------------------------------------------------------------

@pytest.mark.parametrize("size, colour, method", [((64, 64), "white", "area"), ((20, 50), "black", "bicubic"),
                                                  ((100, 31), "white", "lanczos"), ((40, 30), "black", "bilinear")])
def test_resize_and_pad(env, size, colour, method):
    image = picture(2, 30, 40)
    tw, th = size
    scale = min(tw / 40, th / 30)
    nw, nh = int(40 * scale), int(30 * scale)  # truncated, as ComfyUI
    out = run(env, "ResizeAndPadImage", image=image, target_width=tw, target_height=th, padding_color=colour,
              interpolation=method)
    expected = torch.full((2, th, tw, 3), 1.0 if colour == "white" else 0.0)
    top, left = (th - nh) // 2, (tw - nw) // 2
    expected[:, top:top + nh, left:left + nw] = comfy_reference(image, nw, nh, method, "disabled")
    assert torch.allclose(out, expected, atol=1e-6)


# --- ImageStitch -------------------------------------------------------------------------------------

def comfy_stitch(image1, image2, direction, match, spacing, colour):
    """ComfyUI's ImageStitch, step by step: repeat the shorter batch's last image; match image2's size
    (lanczos, aspect kept) or pad the other dimension centred; pad channels with ones; add the band."""
    n = max(image1.shape[0], image2.shape[0])
    image1 = torch.cat([image1, image1[-1:].repeat(n - image1.shape[0], 1, 1, 1)])
    image2 = torch.cat([image2, image2[-1:].repeat(n - image2.shape[0], 1, 1, 1)])
    across = direction in ("left", "right")
    if match:
        h1, w1 = image1.shape[1:3]
        ratio = image2.shape[2] / image2.shape[1]
        w, h = (int(h1 * ratio), h1) if across else (w1, int(w1 / ratio))
        image2 = comfy_reference(image2, w, h, "lanczos", "disabled")
    else:
        value = 1.0 if colour == "white" else 0.0
        dim = 1 if across else 2
        target = max(image1.shape[dim], image2.shape[dim])
        padded = []
        for im in (image1, image2):
            extra = target - im.shape[dim]
            pad = [0, 0, 0, 0, extra // 2, extra - extra // 2] if across else [0, 0, extra // 2, extra - extra // 2]
            padded.append(F.pad(im, pad, value=value) if extra else im)
        image1, image2 = padded
    c = max(image1.shape[-1], image2.shape[-1])
    image1 = torch.cat([image1, torch.ones(*image1.shape[:-1], c - image1.shape[-1])], -1)
    image2 = torch.cat([image2, torch.ones(*image2.shape[:-1], c - image2.shape[-1])], -1)
    parts = [image2, image1] if direction in ("left", "up") else [image1, image2]
    if spacing:
        spacing += spacing % 2
        shape = (n, image1.shape[1], spacing, c) if across else (n, spacing, image1.shape[2], c)
        band = torch.zeros(shape)
        rgb = {"white": (1, 1, 1), "black": (0, 0, 0), "red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1)}[colour]
        for k, v in enumerate(rgb[:c]):
            band[..., k] = v
        if c == 4:
            band[..., 3] = 1.0
        parts.insert(1, band)
    return torch.cat(parts, dim=2 if across else 1)


@pytest.mark.parametrize("direction", ["right", "down", "left", "up"])
@pytest.mark.parametrize("match", [True, False])
@pytest.mark.parametrize("spacing, colour", [(0, "white"), (4, "red"), (6, "black")])
def test_image_stitch(env, direction, match, spacing, colour):
    image1, image2 = picture(2, 30, 40, seed=1), picture(1, 21, 17, c=4, seed=2)
    out = run(env, "ImageStitch", image1=image1, image2=image2, direction=direction, match_image_size=match,
              spacing_width=spacing, spacing_color=colour)
    expected = comfy_stitch(image1, image2, direction, match, spacing, colour)
    assert out.shape == expected.shape and torch.allclose(out, expected, atol=1e-6)


def test_image_stitch_without_image2_passes_image1(env):
    image = picture()
    assert run(env, "ImageStitch", image1=image, direction="right", match_image_size=True, spacing_width=0,
               spacing_color="white") is image


# --- ImageScaleToMaxDimension (nodes_images.py) ------------------------------------------------------

@pytest.mark.parametrize("h, w", [(30, 40), (40, 30), (25, 25)])
@pytest.mark.parametrize("method", ["area", "lanczos", "bicubic"])
def test_scale_to_max_dimension(env, h, w, method):
    image = picture(1, h, w)
    if h > w:  # ComfyUI: the longer side becomes largest_size, the other round(ratio × largest_size)
        width, height = round(w / h * 64), 64
    elif w > h:
        width, height = 64, round(h / w * 64)
    else:
        width = height = 64
    out = run(env, "ImageScaleToMaxDimension", image=image, upscale_method=method, largest_size=64)
    assert torch.allclose(out, comfy_reference(image, width, height, method, "disabled"), atol=1e-6)
