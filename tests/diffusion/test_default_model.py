"""The shipped default checkpoint: SD1 single-file layout, small, and it follows colour prompts on a CPU."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from nodes.diffusion.checkpoint.files import read_hints
from nodes.diffusion.checkpoint.single_file import load_checkpoint
from training.default_world import read_image

WEIGHTS = Path(__file__).resolve().parents[2] / "nodes" / "diffusion" / "weights" / "nodegraph-default.safetensors"
pytestmark = pytest.mark.skipif(not WEIGHTS.is_file(), reason="default weights not shipped in this checkout")


@pytest.fixture(scope="module")
def checkpoint():
    return load_checkpoint(WEIGHTS, dtype=torch.float32)


@pytest.fixture(scope="module")
def handles(checkpoint):
    from nodes.diffusion.loader_nodes import handles_from_checkpoint

    return tuple(h.module for h in handles_from_checkpoint(checkpoint, "nodegraph-default"))


def test_file_is_small_and_in_the_original_layout():
    assert WEIGHTS.stat().st_size <= 30 * 10**6
    with safe_open(str(WEIGHTS), "pt") as f:
        keys = list(f.keys())
        metadata = f.metadata()
        dtypes = {f.get_slice(k).get_dtype() for k in keys}
    assert dtypes == {"F16"}
    prefixes = {k.split(".")[0] for k in keys}
    assert prefixes == {"model", "first_stage_model", "cond_stage_model"}
    assert any(k.startswith("model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.") for k in keys)
    assert any(k.startswith("cond_stage_model.transformer.text_model.encoder.layers.0.") for k in keys)
    assert float(metadata["nodegraph.latent_scale"]) > 0
    assert read_hints(metadata)["family"] == "sd1"
    json.loads(metadata["nodegraph.training"])


def test_loads_with_every_key_used(checkpoint):
    assert checkpoint.family == "sd1"
    assert checkpoint.prediction_type == "eps"
    assert checkpoint.unused_keys == []
    assert checkpoint.unet is not None and checkpoint.vae is not None and len(checkpoint.text_encoders) == 1
    with safe_open(str(WEIGHTS), "pt") as f:
        scale = float(f.metadata()["nodegraph.latent_scale"])
    vae = checkpoint.vae_config
    assert len(vae["block_out_channels"]) == 4 and vae["latent_channels"] == 4  # downscale 8, as SD
    assert vae["scaling_factor"] == pytest.approx(scale)
    text = checkpoint.text_encoder_configs[0]
    assert text["vocab_size"] == 49408 and text["max_position_embeddings"] == 77
    assert checkpoint.unet_config["cross_attention_dim"] == text["hidden_size"]


def test_model_handles_describe_a_128px_sd1_model(handles):
    model, clip, vae = handles
    assert vae.downscale == 8 and vae.latent_channels == 4
    assert model.latent_format.scale_factor == pytest.approx(vae.latent_format.scale_factor)
    cond, pooled = clip.encode("a red circle on a blue background")
    assert cond.shape == (1, 77, 64) and pooled.shape == (1, 64)


def txt2img(handles, prompt: str, seed: int, steps: int = 12) -> torch.Tensor:
    from nodes.diffusion.sampling import common_ksampler

    model, clip, vae = handles
    with torch.inference_mode():
        cond, pooled = clip.encode(prompt)
        empty, empty_pooled = clip.encode("")
        latent = {"samples": torch.zeros(1, 4, 16, 16)}
        out = common_ksampler(model, seed=seed, steps=steps, cfg=7.0, sampler_name="euler", scheduler="normal",
                              positive=[[cond, {"pooled_output": pooled}]],
                              negative=[[empty, {"pooled_output": empty_pooled}]], latent=latent)
        return vae.decode(out["samples"])[0]  # [128, 128, 3] in 0..1


@pytest.mark.parametrize("prompt, shape_color, background, seed", [
    ("a red circle on a blue background", "red", "blue", 0),
    ("a yellow square on a black background", "yellow", "black", 1),
    ("a green star on a white background", "green", "white", 2),
])
def test_txt2img_follows_the_colours_of_the_prompt(handles, prompt, shape_color, background, seed):
    image = txt2img(handles, prompt, seed)
    assert image.shape == (128, 128, 3)
    reading = read_image(image)
    assert (reading.shape_color, reading.background) == (shape_color, background), reading
    assert 0.02 < reading.shape_fraction < 0.6, reading  # one shape, not a smear or an empty picture


def test_the_colour_changes_with_the_prompt_not_with_the_seed(handles):
    red = read_image(txt2img(handles, "a red circle on a white background", seed=5))
    blue = read_image(txt2img(handles, "a blue circle on a white background", seed=5))
    assert (red.shape_color, blue.shape_color) == ("red", "blue")
    assert red.shape_rgb[0] > red.shape_rgb[2] and blue.shape_rgb[2] > blue.shape_rgb[0]
