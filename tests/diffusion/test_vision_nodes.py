"""CLIP vision, style model, unCLIP and InstructPix2Pix nodes against ComfyUI 0.8 (nodes.py,
comfy/clip_vision.py + clip_model.clip_preprocess, comfy/sd.load_style_model, model_base.SD21UNCLIP /
unclip_adm, ldm/modules/encoders/noise_aug_modules.py, comfy_extras/nodes_ip2p.py), on tiny random files
in the real layouts (tests/diffusion/tiny_vision.py)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nodegraph import ModelHandle, read_weights
from nodes.diffusion.vision.clip_vision import ClipVisionOutput, build_clip_vision, vision_state_dict
from nodes.diffusion.vision.unclip import NoiseAugmentor, timestep_embedding
from tests.diffusion.nodecall import run
from tests.diffusion.tiny_vision import (save_clip_vision, save_style_model, save_tiny_ip2p, save_tiny_unclip,
                                         tiny_clip_vision, tiny_style_adapter)
from tests.tiny_models import save_tiny_checkpoint

M = 16384


def link(name, kind):
    return (name, kind, None, None, None, None)


# ComfyUI 0.8 nodes.py / nodes_ip2p.py: (category, inputs, outputs)
COMFY = {
    "CLIPVisionLoader": ("loaders", [("clip_name", "COMBO")], ["CLIP_VISION"]),
    "CLIPVisionEncode": ("conditioning", [link("clip_vision", "CLIP_VISION"), link("image", "IMAGE"),
                                          ("crop", "COMBO", "center", None, None, ["center", "none"])],
                         ["CLIP_VISION_OUTPUT"]),
    "StyleModelLoader": ("loaders", [("style_model_name", "COMBO")], ["STYLE_MODEL"]),
    "StyleModelApply": ("conditioning/style_model", [
        link("conditioning", "CONDITIONING"), link("style_model", "STYLE_MODEL"),
        link("clip_vision_output", "CLIP_VISION_OUTPUT"), ("strength", "FLOAT", 1.0, 0.0, 10.0, 0.001),
        ("strength_type", "COMBO", "multiply", None, None, ["multiply", "attn_bias"])], ["CONDITIONING"]),
    "unCLIPConditioning": ("conditioning", [
        link("conditioning", "CONDITIONING"), link("clip_vision_output", "CLIP_VISION_OUTPUT"),
        ("strength", "FLOAT", 1.0, -10.0, 10.0, 0.01), ("noise_augmentation", "FLOAT", 0.0, 0.0, 1.0, 0.01)],
        ["CONDITIONING"]),
    "unCLIPCheckpointLoader": ("loaders", [("ckpt_name", "COMBO")], ["MODEL", "CLIP", "VAE", "CLIP_VISION"]),
    "InstructPixToPixConditioning": ("conditioning/instructpix2pix", [
        link("positive", "CONDITIONING"), link("negative", "CONDITIONING"), link("vae", "VAE"),
        link("pixels", "IMAGE")], ["CONDITIONING", "CONDITIONING", "LATENT"]),
}
DISPLAY = {"CLIPVisionLoader": "Load CLIP Vision", "CLIPVisionEncode": "CLIP Vision Encode",
           "StyleModelLoader": "Load Style Model", "StyleModelApply": "Apply Style Model"}


def declared(inp):
    if inp.folder is not None:
        return (inp.name, "COMBO")  # a model file list
    widget = inp.type.name in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
    if not widget:
        return (inp.name, inp.type.name, None, None, None, None)
    extra = inp.choices if inp.type.name == "COMBO" else inp.step
    bounds = (inp.min, inp.max) if inp.type.name in ("INT", "FLOAT") else (None, None)
    return (inp.name, inp.type.name, inp.default, *bounds, extra)


@pytest.mark.parametrize("name", sorted(COMFY))
def test_declared_as_comfyui(builtin_registry, name):
    spec = builtin_registry.get(name)
    category, inputs, outputs = COMFY[name]
    assert spec.category == category
    assert [declared(i) for i in spec.inputs] == inputs
    assert not any(i.optional for i in spec.inputs)
    assert [o.type.name for o in spec.outputs] == outputs
    assert spec.display_name == DISPLAY.get(name, name)


# ---------------------------------------------------------------------------------------------- CLIP vision

def comfy_preprocess(image, size, crop):
    """comfy.clip_model.clip_preprocess written out: short side to `size` (or both sides), bicubic with
    antialias, centre crop, 8-bit rounding, OpenAI CLIP mean/std."""
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
    x = image[..., :3].movedim(-1, 1)
    h, w = x.shape[2:]
    if crop:
        s = size / min(h, w)
        target = (round(s * h), round(s * w))
    else:
        target = (size, size)
    x = F.interpolate(x, size=target, mode="bicubic", antialias=True)
    top, left = (x.shape[2] - size) // 2, (x.shape[3] - size) // 2
    x = x[:, :, top:top + size, left:left + size]
    x = torch.clip(255.0 * x, 0, 255).round() / 255.0
    return (x - mean) / std


@pytest.mark.parametrize("layout", ["transformers", "open_clip"])
def test_clip_vision_layouts_load_every_key(tmp_path, layout):
    model = tiny_clip_vision(3)
    weights = read_weights(save_clip_vision(tmp_path / "cv.safetensors", model, layout))
    sd = vision_state_dict(weights.tensors, weights.name)
    module, missing, unexpected = build_clip_vision(sd, weights.name, weights.metadata)
    assert missing == [] and unexpected == []
    for key, value in model.state_dict().items():
        if not key.endswith("position_ids"):
            assert torch.equal(module.model.state_dict()[key], value), key


@pytest.mark.parametrize("crop", ["center", "none"])
@pytest.mark.parametrize("layout", ["transformers", "open_clip"])
def test_clip_vision_encode_matches_transformers_with_comfy_preprocessing(env, layout, crop):
    model = tiny_clip_vision(4)
    save_clip_vision(env.folders.models / "clip_vision" / "cv.safetensors", model, layout)
    clip_vision = run(env, "CLIPVisionLoader", clip_name="cv.safetensors")
    assert isinstance(clip_vision, ModelHandle)
    image = torch.rand(2, 45, 70, 4)  # not square, with alpha: cropped/resized, alpha dropped
    out = run(env, "CLIPVisionEncode", clip_vision=clip_vision, image=image, crop=crop)
    assert isinstance(out, ClipVisionOutput)
    with torch.no_grad():
        ref = model(pixel_values=comfy_preprocess(image, 32, crop == "center"), output_hidden_states=True)
    torch.testing.assert_close(out.image_embeds, ref.image_embeds, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["last_hidden_state"], ref.last_hidden_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.penultimate_hidden_states, ref.hidden_states[-2], atol=1e-5, rtol=1e-5)
    other = run(env, "CLIPVisionEncode", clip_vision=clip_vision, image=image,
                crop="none" if crop == "center" else "center")
    assert not torch.allclose(other.image_embeds, out.image_embeds)


def test_clip_vision_loader_rejects_other_files(env):
    save_tiny_checkpoint(env.folders.models / "clip_vision" / "sd.safetensors", "sd1")
    with pytest.raises(ValueError, match="sd.safetensors: not a CLIP vision model"):
        run(env, "CLIPVisionLoader", clip_name="sd.safetensors")


# ---------------------------------------------------------------------------------------------- style models

@pytest.fixture
def vision_output(env):
    save_clip_vision(env.folders.models / "clip_vision" / "cv.safetensors", tiny_clip_vision(5))
    clip_vision = run(env, "CLIPVisionLoader", clip_name="cv.safetensors")
    return run(env, "CLIPVisionEncode", clip_vision=clip_vision, image=torch.rand(1, 32, 32, 3), crop="center")


def test_style_model_apply_appends_the_adapters_tokens(env, vision_output):
    adapter = tiny_style_adapter(6)
    save_style_model(env.folders.models / "style_models" / "style.safetensors", adapter)
    style = run(env, "StyleModelLoader", style_model_name="style.safetensors")
    with torch.no_grad():
        tokens = adapter(vision_output.last_hidden_state)  # [1, 4, 32]
    text = torch.randn(1, 77, 32)
    cond = [[text, {"pooled_output": torch.ones(1, 32)}]]
    [(out, extras)] = run(env, "StyleModelApply", conditioning=cond, style_model=style, clip_vision_output=vision_output,
                          strength=0.5, strength_type="multiply")
    assert out.shape == (1, 81, 32) and torch.equal(out[:, :77], text)
    torch.testing.assert_close(out[:, 77:], tokens * 0.5)
    assert "attention_mask" not in extras and extras["pooled_output"] is cond[0][1]["pooled_output"]
    [(zero, _)] = run(env, "StyleModelApply", conditioning=cond, style_model=style, clip_vision_output=vision_output,
                      strength=0.0, strength_type="multiply")
    assert torch.count_nonzero(zero[:, 77:]) == 0
    # attn_bias: the tokens unscaled, attention to them biased by log(strength) in a [B, 81, 81] mask
    [(biased, extras)] = run(env, "StyleModelApply", conditioning=cond, style_model=style,
                             clip_vision_output=vision_output, strength=0.5, strength_type="attn_bias")
    torch.testing.assert_close(biased[:, 77:], tokens)
    mask = extras["attention_mask"]
    assert mask.shape == (1, 82, 82) and extras["attention_mask_img_shape"] == (1, 1)  # + one reference cell
    assert torch.allclose(mask[:, :77, 77:81].float(), torch.tensor(math.log(0.5)).half().float())
    assert torch.count_nonzero(mask[:, :, :77]) == 0 and torch.count_nonzero(mask[:, :, 81:]) == 0


def test_style_model_loader_checks_the_layout(env):
    adapter = tiny_style_adapter(1)
    sd = adapter.state_dict()
    del sd["ln_post.weight"]
    from safetensors.torch import save_file
    path = env.folders.models / "style_models" / "broken.safetensors"
    path.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    with pytest.raises(ValueError, match="broken.safetensors: style model keys.*ln_post.weight"):
        run(env, "StyleModelLoader", style_model_name="broken.safetensors")


# ---------------------------------------------------------------------------------------------- sampling helpers

def encode(env, clip, text):
    return run(env, "CLIPTextEncode", clip=clip, text=text)


def sample(env, model, positive, negative, latent, seed=3, cfg=4.0):
    return run(env, "KSampler", model=model, seed=seed, steps=3, cfg=cfg, sampler_name="euler", scheduler="normal",
               positive=positive, negative=negative, latent_image=latent, denoise=1.0)["samples"]


# ---------------------------------------------------------------------------------------------- unCLIP

def test_noise_augmentor_is_comfyuis():
    aug = NoiseAugmentor(8)
    # squaredcos_cap_v2: alpha_bar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2, beta capped at 0.999
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    acp = 1.0
    for i in range(3):
        acp *= 1 - min(1 - f((i + 1) / 1000) / f(i / 1000), 0.999)
    assert aug.sqrt_alphas_cumprod[2].item() == pytest.approx(math.sqrt(acp), rel=1e-6)
    assert aug.level(0.0) == 0 and aug.level(1.0) == 999 and aug.level(0.5) == 500  # round(999 * 0.5)
    emb = timestep_embedding(torch.tensor([10.0]), 8)
    freqs = [math.exp(-math.log(10000) * i / 4) for i in range(4)]
    assert emb[0].tolist() == pytest.approx([math.cos(10 * f) for f in freqs] + [math.sin(10 * f) for f in freqs], abs=1e-6)
    x = torch.randn(8)
    z, _ = aug(x, 300, torch.Generator().manual_seed(-7 % 2 ** 64))
    noise = torch.randn(1, 8, generator=torch.manual_seed(-7))
    torch.testing.assert_close(z, aug.sqrt_alphas_cumprod[300] * x[None] + aug.sqrt_one_minus_alphas_cumprod[300] * noise)


@pytest.fixture
def unclip(env):
    save_tiny_unclip(env.folders.models / "checkpoints" / "unclip.safetensors", seed=2)
    return run(env, "unCLIPCheckpointLoader", ckpt_name="unclip.safetensors")


def test_unclip_checkpoint_loads_its_parts(env, unclip):
    model, clip, vae, clip_vision = unclip
    assert model.module.unclip and model.module.adm_channels == 48 and model.info["prediction_type"] == "v"
    assert model.module.unet.config.class_embed_type == "projection"
    assert clip_vision.module.config["projection_dim"] == 24
    weights = read_weights(env.folders.models / "checkpoints" / "unclip.safetensors")
    from nodes.diffusion.vision.clip_vision import open_clip_to_transformers
    sd = open_clip_to_transformers(weights.tensors, "embedder.model.visual.")
    _module, missing, unexpected = build_clip_vision(sd, "unclip", weights.metadata)
    assert missing == [] and unexpected == []
    save_tiny_checkpoint(env.folders.models / "checkpoints" / "plain.safetensors", "sd2")
    with pytest.raises(ValueError, match="ckpt_name: plain.safetensors has no unCLIP image encoder"):
        run(env, "unCLIPCheckpointLoader", ckpt_name="plain.safetensors")


def test_unclip_conditioning_steers_the_sampler(env, unclip):
    model, clip, _vae, clip_vision = unclip
    positive, negative = encode(env, clip, "a red circle"), encode(env, clip, "")
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    red = run(env, "CLIPVisionEncode", clip_vision=clip_vision, image=torch.ones(1, 32, 32, 3) * torch.tensor([1.0, 0, 0]),
              crop="center")
    blue = run(env, "CLIPVisionEncode", clip_vision=clip_vision, image=torch.ones(1, 32, 32, 3) * torch.tensor([0, 0, 1.0]),
               crop="center")
    plain = sample(env, model, positive, negative, latent)
    with_red = run(env, "unCLIPConditioning", conditioning=positive, clip_vision_output=red, strength=1.0,
                   noise_augmentation=0.0)
    assert with_red[0][1]["unclip_conditioning"][0]["clip_vision_output"] is red and "unclip_conditioning" not in positive[0][1]
    a = sample(env, model, with_red, negative, latent)
    b = sample(env, model, run(env, "unCLIPConditioning", conditioning=positive, clip_vision_output=blue, strength=1.0,
                               noise_augmentation=0.0), negative, latent)
    assert not torch.allclose(a, plain, atol=1e-4) and not torch.allclose(a, b, atol=1e-4)
    assert torch.equal(sample(env, model, with_red, negative, latent), a)  # the augmentation noise is seeded
    unchanged = run(env, "unCLIPConditioning", conditioning=positive, clip_vision_output=red, strength=0.0,
                    noise_augmentation=0.3)
    assert unchanged is positive
    assert torch.equal(sample(env, model, unchanged, negative, latent), plain)


def test_unclip_y_is_comfyuis_adm(env, unclip):
    model = unclip[0].module
    out = ClipVisionOutput(torch.zeros(1, 17, 32), torch.randn(2, 24), torch.zeros(1, 17, 32))
    entries = [{"clip_vision_output": out, "strength": 0.7, "noise_augmentation": 0.25}]
    y = model.unclip_y(entries, torch.device("cpu"), seed=42)
    aug = model.noise_augmentor
    level = round(999 * 0.25)
    noise = torch.randn(1, 24, generator=torch.manual_seed(32))  # seed - 10, re-seeded per embedding
    per = [torch.cat([aug.sqrt_alphas_cumprod[level] * e[None] + aug.sqrt_one_minus_alphas_cumprod[level] * noise,
                      timestep_embedding(torch.tensor([level]), 24)], 1) * 0.7 for e in out.image_embeds]
    summed = per[0] + per[1]  # two embeddings: summed, augmented again at 0.05 with the stream's next draw
    gen = torch.manual_seed(32)
    torch.randn(1, 24, generator=gen)
    merge = round(999 * 0.05)
    expected = torch.cat([aug.sqrt_alphas_cumprod[merge] * summed[:, :24] + aug.sqrt_one_minus_alphas_cumprod[merge]
                          * torch.randn(1, 24, generator=gen), timestep_embedding(torch.tensor([merge]), 24)], 1)
    torch.testing.assert_close(y, expected)
    assert torch.equal(model.unclip_y(None, torch.device("cpu"), 42), torch.zeros(1, 48))


# ---------------------------------------------------------------------------------------------- InstructPix2Pix

def test_instruct_pix2pix_conditioning_reaches_the_unet(env):
    from tests.diffusion.test_checkpoint_nodes import run_node
    save_tiny_ip2p(env.folders.models / "checkpoints" / "ip2p.safetensors", seed=4)
    model, clip, vae = run_node(env, "CheckpointLoaderSimple", ckpt_name="ip2p.safetensors")
    assert model.module.ip2p and model.module.in_channels == 8
    positive, negative = encode(env, clip, "make it red"), encode(env, clip, "")
    pixels = torch.rand(1, 70, 67, 3)  # cropped to 64 x 64 as ComfyUI does
    pos, neg, latent = run_node(env, "InstructPixToPixConditioning", positive=positive, negative=negative, vae=vae,
                                pixels=pixels)
    concat = pos[0][1]["concat_latent_image"]
    assert concat.shape == (1, 4, 8, 8) and neg[0][1]["concat_latent_image"] is concat
    assert torch.equal(latent["samples"], torch.zeros(1, 4, 8, 8))
    assert "concat_latent_image" not in positive[0][1]
    plain = sample(env, model, positive, negative, latent)
    edited = sample(env, model, pos, neg, latent)
    other_pos, other_neg, _ = run_node(env, "InstructPixToPixConditioning", positive=positive, negative=negative,
                                       vae=vae, pixels=torch.rand(1, 64, 64, 3))
    other = sample(env, model, other_pos, other_neg, latent)
    assert not torch.allclose(edited, plain, atol=1e-4) and not torch.allclose(edited, other, atol=1e-4)
    # without the conditioning the U-Net gets zeros, as ComfyUI's IP2P.concat_cond
    zeros = [[positive[0][0], {**positive[0][1], "concat_latent_image": torch.zeros(1, 4, 8, 8)}]]
    zeros_neg = [[negative[0][0], {**negative[0][1], "concat_latent_image": torch.zeros(1, 4, 8, 8)}]]
    assert torch.equal(sample(env, model, zeros, zeros_neg, latent), plain)
