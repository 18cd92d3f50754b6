"""Mask, alpha and loading nodes against references written from ComfyUI 0.8: nodes.py (LoadImage,
LoadImageMask), comfy_extras/nodes_mask.py (ImageColorToMask, CropMask, ThresholdMask, SolidMask,
InvertMask) and nodes_compositing.py (SplitImageWithAlpha, JoinImageWithAlpha)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.diffusion.nodecall import run


def picture(b=1, h=30, w=40, c=3, seed=0) -> torch.Tensor:
    return torch.rand(b, h, w, c, generator=torch.Generator().manual_seed(seed))


# --- LoadImageMask, LoadImage ------------------------------------------------------------------------

def rgba_file(env, name="m.png", mode="RGBA"):
    pixels = np.random.default_rng(0).integers(0, 256, size=(12, 9, 4), dtype=np.uint8)
    Image.fromarray(pixels, "RGBA").convert(mode).save(env.folders.input / name)
    return np.asarray(Image.open(env.folders.input / name).convert("RGBA"), dtype=np.float32) / 255.0


@pytest.mark.parametrize("channel, index", [("alpha", 3), ("red", 0), ("green", 1), ("blue", 2)])
def test_load_image_mask_channels(env, channel, index):
    pixels = rgba_file(env)
    mask = run(env, "LoadImageMask", image="m.png", channel=channel)
    expected = torch.from_numpy(pixels[..., index])
    if channel == "alpha":
        expected = 1.0 - expected  # ComfyUI inverts the alpha: 1 where transparent
    assert mask.shape == (1, 12, 9) and torch.equal(mask[0], expected)


def test_load_image_mask_of_an_image_without_alpha_is_empty(env):
    rgba_file(env, "rgb.png", "RGB")
    assert run(env, "LoadImageMask", image="rgb.png", channel="alpha").eq(0).all()
    grey = run(env, "LoadImageMask", image="rgb.png", channel="green")
    rgb = np.asarray(Image.open(env.folders.input / "rgb.png"), dtype=np.float32) / 255.0
    assert torch.equal(grey[0], torch.from_numpy(rgb[..., 1]))


def test_load_image_mask_is_refingerprinted_when_the_file_changes(env):
    rgba_file(env)
    spec = env.registry.get("LoadImageMask")
    before = spec.cls.fingerprint(env, image="m.png", channel="red")
    Image.new("RGBA", (3, 3)).save(env.folders.input / "m.png")
    assert spec.cls.fingerprint(env, image="m.png", channel="red") != before


def test_load_image_reads_every_frame_of_an_animation(env):
    frames = [Image.new("RGB", (8, 6), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(env.folders.input / "anim.gif", save_all=True, append_images=frames[1:])
    image, mask = run(env, "LoadImage", image="anim.gif")
    assert image.shape == (3, 6, 8, 3) and mask.shape == (3, 6, 8)
    assert [tuple(image[k, 0, 0].round().tolist()) for k in range(3)] == [(1, 0, 0), (0, 1, 0), (0, 0, 1)]


def test_load_image_scales_32_bit_integer_pixels_as_comfyui(env):
    Image.fromarray(np.full((4, 5), 255 * 128, dtype=np.int32), "I").save(env.folders.input / "deep.tif")
    image, _ = run(env, "LoadImage", image="deep.tif")
    # ComfyUI: i.point(lambda i: i * (1 / 255)) before RGB, so 255·128 becomes 128 (not clipped to 255)
    assert torch.allclose(image, torch.full((1, 4, 5, 3), 128 / 255))


def test_load_image_keeps_alpha_as_inverted_mask(env):
    pixels = rgba_file(env)
    image, mask = run(env, "LoadImage", image="m.png")
    assert torch.equal(image[0], torch.from_numpy(pixels[..., :3]))
    assert torch.equal(mask[0], 1.0 - torch.from_numpy(pixels[..., 3]))


# --- ImageColorToMask --------------------------------------------------------------------------------

def test_image_color_to_mask(env):
    image = torch.tensor([[[1.0, 0.2, 0.2], [1.0, 0.2 + 0.001, 0.2], [0.0, 0.0, 0.0], [1.2, 0.2, 0.2]]])[None]
    color = (255 << 16) + (51 << 8) + 51  # 0.2 * 255 = 51
    mask = run(env, "ImageColorToMask", image=image, color=color)
    # ComfyUI: round(clamp(x, 0, 1) * 255) per channel, packed R << 16 | G << 8 | B, compared exactly
    levels = (image.clamp(0, 1) * 255).round().long()
    packed = (levels[..., 0] << 16) + (levels[..., 1] << 8) + levels[..., 2]
    assert torch.equal(mask, (packed == color).float())
    assert mask.tolist() == [[[1.0, 1.0, 0.0, 1.0]]]  # 0.201 still rounds to 51; 1.2 is clamped to 255


# --- CropMask, ThresholdMask, SolidMask, InvertMask --------------------------------------------------

@pytest.mark.parametrize("x, y, w, h", [(0, 0, 512, 512), (3, 4, 5, 6), (10, 0, 100, 2)])
def test_crop_mask(env, x, y, w, h):
    mask = torch.rand(2, 12, 15)
    assert torch.equal(run(env, "CropMask", mask=mask, x=x, y=y, width=w, height=h), mask[:, y:y + h, x:x + w])


def test_crop_mask_outside_is_a_clear_error(env):
    with pytest.raises(ValueError, match="CropMask: \\(20, 0\\) lies outside the 15x12 mask"):
        run(env, "CropMask", mask=torch.rand(1, 12, 15), x=20, y=0, width=4, height=4)


def test_threshold_solid_and_invert_masks(env):
    mask = torch.tensor([[[0.1, 0.5, 0.51, 0.9]]])
    assert run(env, "ThresholdMask", mask=mask, value=0.5).tolist() == [[[0.0, 0.0, 1.0, 1.0]]]  # strictly above
    solid = run(env, "SolidMask", value=0.25, width=7, height=3)
    assert solid.shape == (1, 3, 7) and solid.dtype == torch.float32 and solid.eq(0.25).all()
    assert torch.equal(run(env, "InvertMask", mask=mask), 1.0 - mask)


# --- SplitImageWithAlpha, JoinImageWithAlpha ---------------------------------------------------------

def test_split_image_with_alpha(env):
    rgba = picture(2, c=4)
    image, mask = run(env, "SplitImageWithAlpha", image=rgba)
    assert torch.equal(image, rgba[..., :3]) and torch.equal(mask, 1.0 - rgba[..., 3])
    image, mask = run(env, "SplitImageWithAlpha", image=picture(1))
    assert image.shape == (1, 30, 40, 3) and mask.eq(0).all()  # no alpha: opaque, so an empty mask


def test_join_image_with_alpha(env):
    image, alpha = picture(3, 30, 40), torch.rand(2, 15, 20)
    out = run(env, "JoinImageWithAlpha", image=image, alpha=alpha)
    # ComfyUI: the mask resized bilinearly to the image, inverted, as the fourth channel; min of the batches
    resized = F.interpolate(alpha[:, None], size=(30, 40), mode="bilinear")[:, 0]
    assert out.shape == (2, 30, 40, 4)
    assert torch.equal(out[..., :3], image[:2]) and torch.allclose(out[..., 3], 1.0 - resized)


def test_split_then_join_round_trips(env):
    rgba = picture(2, c=4)
    image, mask = run(env, "SplitImageWithAlpha", image=rgba)
    assert torch.allclose(run(env, "JoinImageWithAlpha", image=image, alpha=mask), rgba, atol=1e-6)


# --- MaskPreview -------------------------------------------------------------------------------------

def test_mask_preview_writes_the_mask_as_a_grey_picture(env):
    from nodegraph.executor import Executor
    workflow = {"version": 1, "nodes": {
        "1": {"type": "SolidMask", "inputs": {"value": 0.0, "width": 7, "height": 6}},
        "2": {"type": "SolidMask", "inputs": {"value": 1.0, "width": 3, "height": 2}},
        "3": {"type": "MaskComposite", "inputs": {"destination": {"node": "1", "output": "MASK"},
                                                  "source": {"node": "2", "output": "MASK"},
                                                  "x": 3, "y": 2, "operation": "add"}},
        "4": {"type": "MaskPreview", "inputs": {"mask": {"node": "3", "output": "MASK"}}}}}
    result = Executor(env).run(workflow)
    assert result.status == "success", result.errors
    [record] = result.outputs["4"]["images"]
    assert record["type"] == "temp"
    pixels = np.asarray(Image.open(env.folders.temp / record["subfolder"] / record["filename"]))
    expected = np.zeros((6, 7), np.uint8)
    expected[2:4, 3:6] = 255
    assert pixels.shape == (6, 7, 3) and all(np.array_equal(pixels[..., c], expected) for c in range(3))
