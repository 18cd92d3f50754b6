"""ImageScale / ImageScaleBy behave as ComfyUI's (common_upscale): sizes, crop offsets, lanczos, no clamp."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from tests.diffusion.nodecall import run


def picture(b=1, h=30, w=40, c=3, seed=0) -> torch.Tensor:
    return torch.rand(b, h, w, c, generator=torch.Generator().manual_seed(seed))


def comfy_reference(image: torch.Tensor, width: int, height: int, method: str, crop: str) -> torch.Tensor:
    """ComfyUI's documented arithmetic, written out on [B,C,H,W] (crop margins, PIL lanczos on uint8)."""
    s = image.movedim(-1, 1)
    if crop == "center":
        old_w, old_h = s.shape[3], s.shape[2]
        old_aspect, new_aspect = old_w / old_h, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
        s = s.narrow(-2, y, old_h - y * 2).narrow(-1, x, old_w - x * 2)
    if method == "lanczos":
        images = [Image.fromarray(np.clip(255.0 * im.movedim(0, -1).numpy(), 0, 255).astype(np.uint8)) for im in s]
        images = [im.resize((width, height), resample=Image.Resampling.LANCZOS) for im in images]
        s = torch.stack([torch.from_numpy(np.array(im).astype(np.float32) / 255.0).movedim(-1, 0) for im in images])
    else:
        s = F.interpolate(s, size=(height, width), mode=method)
    return s.movedim(1, -1)


@pytest.mark.parametrize("method", ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"])
@pytest.mark.parametrize("width, height, crop", [(64, 48, "disabled"), (50, 50, "center"), (20, 45, "center"),
                                                 (81, 30, "center")])
def test_image_scale_matches_comfyui(env, method, width, height, crop):
    image = picture()
    out = run(env, "ImageScale", image=image, upscale_method=method, width=width, height=height, crop=crop)
    assert out.shape == (1, height, width, 3)
    assert torch.allclose(out, comfy_reference(image, width, height, method, crop), atol=1e-6)


def test_zero_sides(env):
    image = picture(h=30, w=40)
    same = run(env, "ImageScale", image=image, upscale_method="bilinear", width=0, height=0, crop="disabled")
    assert same is image  # both 0: unchanged, as ComfyUI
    assert run(env, "ImageScale", image=image, upscale_method="bilinear", width=0, height=45, crop="disabled").shape \
        == (1, 45, 60, 3)
    assert run(env, "ImageScale", image=image, upscale_method="bilinear", width=20, height=0, crop="center").shape \
        == (1, 15, 20, 3)


def test_bicubic_is_not_clamped_like_comfyui(env):
    image = torch.zeros(1, 8, 8, 3)
    image[:, :, 4:] = 1.0  # a hard edge overshoots under bicubic
    out = run(env, "ImageScaleBy", image=image, upscale_method="bicubic", scale_by=2.0)
    assert out.max() > 1.0 and out.min() < 0.0
    assert torch.allclose(out, comfy_reference(image, 16, 16, "bicubic", "disabled"))


def test_image_scale_by_rounds_the_size(env):
    image = picture(b=2, h=30, w=40)
    out = run(env, "ImageScaleBy", image=image, upscale_method="lanczos", scale_by=1.55)
    assert out.shape == (2, round(30 * 1.55), round(40 * 1.55), 3)
    assert torch.allclose(out, comfy_reference(image, 62, 46, "lanczos", "disabled"), atol=1e-6)
    grey = run(env, "ImageScaleBy", image=image[..., :1], upscale_method="lanczos", scale_by=0.5)
    assert grey.shape == (2, 15, 20, 1)


def test_schema_matches_comfyui(env):
    scale = env.registry.get("ImageScale").schema(env)
    inputs = {i["name"]: i for i in scale["inputs"]}
    assert list(inputs) == ["image", "upscale_method", "width", "height", "crop"]
    assert inputs["upscale_method"]["choices"] == ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
    assert (inputs["width"]["default"], inputs["width"]["min"], inputs["width"]["max"]) == (512, 0, 16384)
    assert inputs["crop"]["choices"] == ["disabled", "center"]
    assert scale["display_name"] == "Upscale Image"
    by = {i["name"]: i for i in env.registry.get("ImageScaleBy").schema(env)["inputs"]}
    assert (by["scale_by"]["default"], by["scale_by"]["min"], by["scale_by"]["max"], by["scale_by"]["step"]) == \
        (1.0, 0.01, 8.0, 0.01)
