"""CheckpointLoader (ComfyUI 0.8 nodes.py: config_name from the "configs" folder, then ckpt_name; category
advanced/loaders): the config is checked against the file and its parameterization wins."""
from __future__ import annotations

import pytest

from nodes.diffusion.checkpoint.layout import CheckpointError
from nodes.diffusion.model_options import model_sampling
from tests.diffusion.nodecall import run
from tests.tiny_models import save_tiny_checkpoint


def test_declaration_matches_comfyui(env):
    spec = env.registry.get("CheckpointLoader")
    assert [i.name for i in spec.inputs] == ["config_name", "ckpt_name"]
    assert [o.name for o in spec.outputs] == ["MODEL", "CLIP", "VAE"] and spec.category == "advanced/loaders"
    choices = spec.inputs[0].choices(env)
    assert {"v1-inference.yaml", "v2-inference-v.yaml", "v1-inpainting-inference.yaml"} <= set(choices)


def test_config_is_checked_and_its_parameterization_wins(env):
    folder = env.folders.models / "checkpoints"
    save_tiny_checkpoint(folder / "sd1.safetensors", "sd1", seed=1)
    save_tiny_checkpoint(folder / "sd2.safetensors", "sd2", seed=1)
    model, clip, vae = run(env, "CheckpointLoader", config_name="v1-inference.yaml", ckpt_name="sd1.safetensors")
    plain = run(env, "CheckpointLoaderSimple", ckpt_name="sd1.safetensors")
    assert (model, clip, vae) == plain  # a fitting config changes nothing
    with pytest.raises(CheckpointError, match="describes an sd2 U-Net, the file holds an sd1 one"):
        run(env, "CheckpointLoader", config_name="v2-inference.yaml", ckpt_name="sd1.safetensors")
    with pytest.raises(CheckpointError, match="takes 9 input channels, the file's 4"):
        run(env, "CheckpointLoader", config_name="v1-inpainting-inference.yaml", ckpt_name="sd1.safetensors")
    v_model, _, _ = run(env, "CheckpointLoader", config_name="v2-inference-v.yaml", ckpt_name="sd2.safetensors")
    assert model_sampling(v_model).prediction_type == "v"
    eps_model, _, _ = run(env, "CheckpointLoader", config_name="v2-inference.yaml", ckpt_name="sd2.safetensors")
    assert model_sampling(eps_model).prediction_type == "eps"


def test_a_user_config_in_the_models_folder_is_offered(env):
    (env.folders.models / "configs").mkdir()
    (env.folders.models / "configs" / "mine.yaml").write_text("model:\n  params:\n    parameterization: x0\n")
    assert "mine.yaml" in env.registry.get("CheckpointLoader").inputs[0].choices(env)
    save_tiny_checkpoint(env.folders.models / "checkpoints" / "sd1.safetensors", "sd1", seed=1)
    with pytest.raises(CheckpointError, match="parameterization 'x0' is not eps or v"):
        run(env, "CheckpointLoader", config_name="mine.yaml", ckpt_name="sd1.safetensors")
