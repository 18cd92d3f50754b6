"""ComfyUI 0.8's conditioning nodes: the extras each one sets (nodes.py, through node_helpers.
conditioning_set_values), ConditioningConcat / ZeroOut, and the SDXL text encoders of comfy_extras/
nodes_clip_sdxl.py on a tiny random SDXL CLIP, down to the size ids the SDXL U-Net receives."""
from __future__ import annotations

import pytest
import torch

from nodegraph.devices import ModelHandle
from nodes.diffusion.models import ClipModel, DiffusionModel
from nodes.diffusion.sampling.guidance import prepare_conds
from nodes.diffusion.sampling.schedules import ModelSampling
from tests.tiny_models import tiny_components
from tests.diffusion.nodecall import run


def cond(value: float, tokens: int = 77, width: int = 4, **extras):
    return [[torch.full((1, tokens, width), value), {"pooled_output": torch.full((1, 3), value), **extras}]]


@pytest.mark.parametrize("name, inputs, expected", [
    ("ConditioningSetArea", dict(width=200, height=64, x=17, y=64, strength=2.5),
     {"area": (8, 25, 8, 2), "strength": 2.5, "set_area_to_bounds": False}),
    ("ConditioningSetAreaPercentage", dict(width=0.5, height=0.25, x=0.1, y=0.75, strength=0.5),
     {"area": ("percentage", 0.25, 0.5, 0.75, 0.1), "strength": 0.5, "set_area_to_bounds": False}),
    ("ConditioningSetAreaStrength", dict(strength=3.0), {"strength": 3.0}),
    ("ConditioningSetTimestepRange", dict(start=0.2, end=0.7), {"start_percent": 0.2, "end_percent": 0.7}),
])
def test_extras_as_comfyui_sets_them(env, name, inputs, expected):
    source = cond(1.0, area=(1, 1, 0, 0), other="kept") + cond(2.0)
    out = run(env, name, conditioning=source, **inputs)
    assert len(out) == 2
    for (c, extras), (c0, extras0) in zip(out, source):
        assert c is c0 and extras is not extras0  # a copy of the extras; the tensor shared
        assert extras == {**extras0, **expected}
    assert source[0][1]["area"] == (1, 1, 0, 0)  # the input is untouched


@pytest.mark.parametrize("mode, bounds", [("default", False), ("mask bounds", True)])
def test_set_mask(env, mode, bounds):
    mask = torch.rand(16, 24)
    out = run(env, "ConditioningSetMask", conditioning=cond(1.0), mask=mask, strength=0.7, set_cond_area=mode)
    [(_, extras)] = out
    assert extras["mask"].shape == (1, 16, 24) and torch.equal(extras["mask"][0], mask)  # 2-D masks get a batch dim
    assert extras["mask_strength"] == 0.7 and extras["set_area_to_bounds"] is bounds and "strength" not in extras


def test_concat_appends_the_first_entry_of_from(env):
    to = cond(1.0) + cond(2.0, tokens=154)
    out = run(env, "ConditioningConcat", conditioning_to=to, conditioning_from=cond(5.0) + cond(9.0))
    assert [c.shape[1] for c, _ in out] == [154, 231]
    assert torch.equal(out[1][0], torch.cat([to[1][0], torch.full((1, 77, 4), 5.0)], dim=1))
    assert torch.equal(out[0][1]["pooled_output"], to[0][1]["pooled_output"])  # extras stay conditioning_to's
    with pytest.raises(ValueError, match="conditioning_from"):
        run(env, "ConditioningConcat", conditioning_to=cond(1.0), conditioning_from=cond(1.0, width=8))


def test_zero_out_clears_lyrics_too(env):
    [(c, extras)] = run(env, "ConditioningZeroOut", conditioning=cond(3.0, conditioning_lyrics=torch.ones(1, 5)))
    assert c.abs().sum() == 0 and extras["pooled_output"].abs().sum() == 0 and extras["conditioning_lyrics"].abs().sum() == 0


# --- SDXL ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sdxl():
    parts = tiny_components("sdxl", seed=3)
    clip = ModelHandle(ClipModel([parts["text_encoder"], parts["text_encoder_2"]], "sdxl"), "tiny-sdxl-clip",
                       info={"family": "sdxl", "layer_idx": None})
    return clip, DiffusionModel(parts["unet"], "sdxl")


def test_sdxl_encoder_gives_each_text_encoder_its_prompt(env, sdxl):
    clip, _ = sdxl
    model = clip.module
    out = run(env, "CLIPTextEncodeSDXL", clip=clip, width=1024, height=768, crop_w=8, crop_h=16, target_width=512,
              target_height=640, text_g="a red circle", text_l="a blue square")
    [(c, extras)] = out
    with torch.no_grad():
        expected, pooled = model.encode_tokens({"g": model.tokenize("a red circle")["g"],
                                                "l": model.tokenize("a blue square")["l"]})
        g_only = model.encode("a red circle")
    assert c.shape == (1, 77, 32 + 48) and torch.allclose(c, expected)
    assert torch.allclose(c[..., 32:], g_only[0][..., 32:])  # the bigG half is text_g's
    assert not torch.allclose(c[..., :32], g_only[0][..., :32])  # the CLIP-L half is not
    assert torch.allclose(extras["pooled_output"], pooled)  # bigG's pooled output, as ComfyUI
    assert {k: v for k, v in extras.items() if k != "pooled_output"} == {
        "width": 1024, "height": 768, "crop_w": 8, "crop_h": 16, "target_width": 512, "target_height": 640}
    same = run(env, "CLIPTextEncodeSDXL", clip=clip, width=1024, height=1024, crop_w=0, crop_h=0, target_width=1024,
               target_height=1024, text_g="a red circle", text_l="a red circle")
    assert torch.allclose(same[0][0], run(env, "CLIPTextEncode", text="a red circle", clip=clip)[0][0])


def test_sdxl_encoder_pads_the_shorter_prompt_with_empty_chunks(env, sdxl):
    clip, _ = sdxl
    model = clip.module
    long_text = " ".join(["red"] * 100)  # two 77-token chunks
    [(c, _)] = run(env, "CLIPTextEncodeSDXL", clip=clip, width=1024, height=1024, crop_w=0, crop_h=0,
                   target_width=1024, target_height=1024, text_g=long_text, text_l="a circle")
    assert c.shape == (1, 154, 80)
    with torch.no_grad():
        empty_l = model.encode_tokens({"l": model.tokenize("")["l"], "g": model.tokenize("")["g"]})[0][..., :32]
    assert torch.allclose(c[:, 77:, :32], empty_l)  # ComfyUI appends clip.tokenize("")'s chunk to "l"


def test_sdxl_encoder_wants_an_sdxl_clip(env):
    parts = tiny_components("sd1", seed=1)
    sd1 = ModelHandle(ClipModel([parts["text_encoder"]], "sd1"), "tiny-sd1", info={"family": "sd1", "layer_idx": None})
    with pytest.raises(ValueError, match="clip: CLIPTextEncodeSDXL needs an SDXL CLIP"):
        run(env, "CLIPTextEncodeSDXL", clip=sd1, width=1024, height=1024, crop_w=0, crop_h=0, target_width=1024,
            target_height=1024, text_g="a", text_l="b")


def time_ids(model, conditioning, latent_hw=(8, 8)):
    noise = torch.zeros(1, 4, *latent_hw)
    [entry] = prepare_conds(conditioning, model, ModelSampling(), noise)
    return entry.model_conds["time_ids"][0].tolist()


def test_sdxl_size_extras_reach_the_unet_ids(env, sdxl):
    clip, unet = sdxl
    base = run(env, "CLIPTextEncodeSDXL", clip=clip, width=1024, height=768, crop_w=8, crop_h=16, target_width=512,
               target_height=640, text_g="a", text_l="b")
    # comfy/model_base.py SDXL.encode_adm: [height, width, crop_h, crop_w, target_height, target_width]
    assert time_ids(unet, base) == [768, 1024, 16, 8, 640, 512]
    refiner = run(env, "CLIPTextEncodeSDXLRefiner", ascore=2.5, width=640, height=320, text="a", clip=clip)
    assert refiner[0][1]["aesthetic_score"] == 2.5
    assert time_ids(unet, refiner) == [320, 640, 0, 0, 320, 640]  # targets default to the size
    plain = run(env, "CLIPTextEncode", text="a", clip=clip)
    assert time_ids(unet, plain, (12, 10)) == [96, 80, 0, 0, 96, 80]  # samplers.py: the latent's pixel size
