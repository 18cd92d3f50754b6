"""SDXL refiner checkpoints as ComfyUI 0.8 loads and conditions them (comfy/supported_models.py SDXLRefiner:
bigG alone under conditioner.embedders.0.model.*; model_base.SDXLRefiner.encode_adm: pooled bigG output +
Timestep(256) embeddings of height, width, crop_h, crop_w and the aesthetic score, 6 by default and 2.5
for the negative prompt), on a tiny refiner-layout file written by tests/tiny_models.py."""
from __future__ import annotations

import math

import pytest
import torch

from nodes.diffusion.checkpoint.layout import SDXL_REFINER_CLIP_G_PREFIX, UNET_PREFIX
from nodes.diffusion.checkpoint.single_file import detect_family, load_checkpoint
from tests.diffusion.nodecall import run
from tests.tiny_models import save_tiny_checkpoint


@pytest.fixture
def refiner_path(env):
    return save_tiny_checkpoint(env.folders.models / "checkpoints" / "refiner.safetensors", "sdxl_refiner", seed=5)


def test_refiner_file_loads_every_key(refiner_path):
    from safetensors import safe_open
    with safe_open(str(refiner_path), "pt") as f:
        keys = list(f.keys())
    assert any(k.startswith(SDXL_REFINER_CLIP_G_PREFIX) for k in keys)
    assert not any(k.startswith("conditioner.embedders.1.") for k in keys)
    loaded = load_checkpoint(refiner_path)  # materialising raises on any missing weight
    assert loaded.family == "sdxl_refiner" and loaded.unused_keys == [] and len(loaded.text_encoders) == 1
    cfg = loaded.unet_config
    assert cfg["addition_embed_type"] == "text_time" and cfg["addition_time_embed_dim"] == 8
    assert cfg["projection_class_embeddings_input_dim"] == 48 + 5 * 8  # pooled bigG + 5 ids
    with safe_open(str(refiner_path), "pt") as f:
        assert detect_family(dict.fromkeys(keys)) == "sdxl_refiner"
        assert f.get_slice(UNET_PREFIX + "label_emb.0.0.weight").get_shape()[1] == 88


def timestep_embedding(t: float, dim: int) -> list[float]:
    """ComfyUI's Timestep(dim): cos then sin of t * exp(-ln(10000) * i / half)."""
    half = dim // 2
    freqs = [math.exp(-math.log(10000) * i / half) for i in range(half)]
    return [math.cos(t * f) for f in freqs] + [math.sin(t * f) for f in freqs]


def encode_adm(pooled: torch.Tensor, width, height, crop_w=0, crop_h=0, ascore=None, negative=False) -> torch.Tensor:
    """model_base.SDXLRefiner.encode_adm written out (embedder width: the file's, 256 in the real refiner)."""
    if ascore is None:
        ascore = 2.5 if negative else 6.0
    flat = []
    for value in (height, width, crop_h, crop_w, ascore):
        flat += timestep_embedding(value, 8)
    return torch.cat([pooled.reshape(1, -1), torch.tensor([flat])], dim=1)


def captured_adm(env, model, conditioning, negative, latent):
    """The U-Net's ADM input (the add_embedding's input) for each forward of one sampler step."""
    seen = []
    unet = model.module.unet
    hook = unet.add_embedding.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    try:
        run(env, "KSampler", model=model, seed=1, steps=1, cfg=2.0, sampler_name="euler", scheduler="normal",
            positive=conditioning, negative=negative, latent_image=latent, denoise=1.0)
    finally:
        hook.remove()
    return seen


def test_refiner_adm_is_comfyuis_encode_adm(env, refiner_path):
    model, clip, _vae = run(env, "CheckpointLoaderSimple", ckpt_name="refiner.safetensors")
    assert model.info["family"] == "sdxl_refiner" and model.module.refiner
    positive = run(env, "CLIPTextEncodeSDXLRefiner", ascore=7.5, width=640, height=512, text="a red circle", clip=clip)
    negative = run(env, "CLIPTextEncode", clip=clip, text="blurry")  # no score: the negative default 2.5
    latent = {"samples": torch.zeros(1, 4, 8, 16)}
    (batch,) = captured_adm(env, model, positive, negative, latent)  # cond and uncond in one forward
    pos_adm = encode_adm(positive[0][1]["pooled_output"], 640, 512, ascore=7.5)
    neg_adm = encode_adm(negative[0][1]["pooled_output"], 128, 64, negative=True)  # sizes default to the latent's
    # the sampler batches in ComfyUI's order (last compatible chunk first): uncond, then cond
    torch.testing.assert_close(batch, torch.cat([neg_adm, pos_adm]), atol=1e-5, rtol=1e-5)
    # a positive prompt without a score gets 6
    (plain,) = captured_adm(env, model, run(env, "CLIPTextEncode", clip=clip, text="a red circle"), negative, latent)
    torch.testing.assert_close(plain[1:], encode_adm(positive[0][1]["pooled_output"], 128, 64), atol=1e-5, rtol=1e-5)


def test_refiner_text_encoder_is_bigg_alone(env, refiner_path):
    _model, clip, _vae = run(env, "CheckpointLoaderSimple", ckpt_name="refiner.safetensors")
    cond = run(env, "CLIPTextEncode", clip=clip, text="a cat")
    assert cond[0][0].shape == (1, 77, 48) and cond[0][1]["pooled_output"].shape == (1, 48)


def test_base_then_refiner_two_stage_workflow(env, refiner_path):
    save_tiny_checkpoint(env.folders.models / "checkpoints" / "base.safetensors", "sdxl", seed=6)
    base, base_clip, vae = run(env, "CheckpointLoaderSimple", ckpt_name="base.safetensors")
    refiner, refiner_clip, _ = run(env, "CheckpointLoaderSimple", ckpt_name="refiner.safetensors")
    latent = {"samples": torch.zeros(1, 4, 8, 8)}

    def base_stage(end):
        return run(env, "KSamplerAdvanced", model=base, add_noise="enable", noise_seed=11, steps=6, cfg=5.0,
                   sampler_name="euler", scheduler="normal",
                   positive=run(env, "CLIPTextEncode", clip=base_clip, text="a red circle"),
                   negative=run(env, "CLIPTextEncode", clip=base_clip, text=""), latent_image=latent,
                   start_at_step=0, end_at_step=end, return_with_leftover_noise="enable" if end < 6 else "disable")

    def refine(leftover, ascore):
        positive = run(env, "CLIPTextEncodeSDXLRefiner", ascore=ascore, width=64, height=64, text="a red circle",
                       clip=refiner_clip)
        negative = run(env, "CLIPTextEncodeSDXLRefiner", ascore=2.5, width=64, height=64, text="", clip=refiner_clip)
        return run(env, "KSamplerAdvanced", model=refiner, add_noise="disable", noise_seed=11, steps=6, cfg=5.0,
                   sampler_name="euler", scheduler="normal", positive=positive, negative=negative,
                   latent_image=leftover, start_at_step=4, end_at_step=10000, return_with_leftover_noise="disable")

    leftover = base_stage(4)
    refined = refine(leftover, 6.0)
    base_only = base_stage(6)
    assert refined["samples"].shape == base_only["samples"].shape == (1, 4, 8, 8)
    assert torch.isfinite(refined["samples"]).all()
    assert not torch.allclose(refined["samples"], base_only["samples"], atol=1e-3)  # the refiner did the last steps
    assert not torch.allclose(refine(leftover, 9.0)["samples"], refined["samples"], atol=1e-4)  # the score matters
    image = run(env, "VAEDecode", samples=refined, vae=vae)
    assert image.shape == (1, 64, 64, 3)
