"""CheckpointSave / ModelSave / CLIPSave / VAESave (ComfyUI 0.8 comfy_extras/nodes_model_merging.py):
declarations, file names `<prefix>_<counter:05>_.safetensors`, ComfyUI's metadata, and the round trip
CheckpointSave -> CheckpointLoaderSimple giving the merged weights."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from nodegraph.node import Context
from tests.diffusion.nodecall import run
from tests.tiny_models import save_tiny_checkpoint


def weights(env, handle) -> dict[str, torch.Tensor]:
    with env.devices.use(handle) as m:
        return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _file(path):
    with safe_open(str(path), framework="pt") as f:
        return set(f.keys()), dict(f.metadata() or {})


@pytest.fixture
def two(env):
    folder = env.folders.models / "checkpoints"
    save_tiny_checkpoint(folder / "a.safetensors", "sd1", seed=1)
    save_tiny_checkpoint(folder / "b.safetensors", "sd1", seed=2)
    return (run(env, "CheckpointLoaderSimple", ckpt_name="a.safetensors"),
            run(env, "CheckpointLoaderSimple", ckpt_name="b.safetensors"))


def test_declarations_match_comfyui(env):
    expected = {"CheckpointSave": (["model", "clip", "vae", "filename_prefix"], "checkpoints/ComfyUI"),
                "ModelSave": (["model", "filename_prefix"], "diffusion_models/ComfyUI"),
                "CLIPSave": (["clip", "filename_prefix"], "clip/ComfyUI"),
                "VAESave": (["vae", "filename_prefix"], "vae/ComfyUI_vae")}
    for name, (names, default) in expected.items():
        spec = env.registry.get(name)
        assert [i.name for i in spec.inputs] == names and spec.inputs[-1].default == default, name
        assert spec.output_node and not spec.outputs and spec.category == "advanced/model_merging", name
    assert env.registry.get("CheckpointSave").display_name == "Save Checkpoint"


def test_checkpoint_save_round_trip_gives_the_merged_weights(env, two):
    (m1, c1, v1), (m2, c2, _) = two
    model = run(env, "ModelMergeSimple", model1=m1, model2=m2, ratio=0.3)
    clip = run(env, "CLIPMergeSimple", clip1=c1, clip2=c2, ratio=0.6)
    ctx = Context(env, node_type="CheckpointSave")
    ctx.extra["extra_pnginfo"] = {"workflow": {"nodes": []}}
    ctx.extra["metadata_text"] = {"prompt": {"1": {"class_type": "CheckpointSave"}}}
    env.registry.get("CheckpointSave").cls().run(ctx, model=model, clip=clip, vae=v1, filename_prefix="checkpoints/m")
    env.registry.get("CheckpointSave").cls().run(ctx, model=model, clip=clip, vae=v1, filename_prefix="checkpoints/m")
    out = env.folders.dir_for("output") / "checkpoints"
    assert sorted(p.name for p in out.iterdir()) == ["m_00001_.safetensors", "m_00002_.safetensors"]
    keys, metadata = _file(out / "m_00001_.safetensors")
    assert any(k.startswith("model.diffusion_model.input_blocks.") for k in keys)
    assert any(k.startswith("cond_stage_model.transformer.text_model.") for k in keys)
    assert any(k.startswith("first_stage_model.encoder.") for k in keys)
    assert metadata["modelspec.predict_key"] == "epsilon" and "modelspec.architecture" not in metadata  # SD1: none
    assert json.loads(metadata["prompt"]) == {"1": {"class_type": "CheckpointSave"}}
    assert json.loads(metadata["workflow"]) == {"nodes": []}
    # the saved file loads as a checkpoint whose weights are the merge
    (env.folders.models / "checkpoints" / "merged.safetensors").write_bytes((out / "m_00001_.safetensors").read_bytes())
    m3, c3, v3 = run(env, "CheckpointLoaderSimple", ckpt_name="merged.safetensors")
    for saved, loaded in ((model, m3), (clip, c3), (v1, v3)):
        want, got = weights(env, saved), weights(env, loaded)
        assert want.keys() == got.keys()
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6)


def test_sdxl_v_prediction_metadata_and_marker(env):
    save_tiny_checkpoint(env.folders.models / "checkpoints" / "xl.safetensors", "sdxl", seed=1, prediction_type="v")
    model, clip, vae = run(env, "CheckpointLoaderSimple", ckpt_name="xl.safetensors")
    run(env, "CheckpointSave", model=model, clip=clip, vae=vae, filename_prefix="xl")
    keys, metadata = _file(env.folders.dir_for("output") / "xl_00001_.safetensors")
    assert metadata["modelspec.architecture"] == "stable-diffusion-xl-v1-base"
    assert metadata["modelspec.sai_model_spec"] == "1.0.0" and metadata["modelspec.implementation"] == "sgm"
    assert metadata["modelspec.title"] == "xl 1" and metadata["modelspec.predict_key"] == "v"
    assert "v_pred" in keys and "ztsnr" not in keys
    assert any(k.startswith("conditioner.embedders.1.model.") for k in keys)


def test_model_clip_and_vae_save(env, two):
    (m1, c1, v1), _ = two
    run(env, "ModelSave", model=m1, filename_prefix="diffusion_models/u")
    run(env, "CLIPSave", clip=c1, filename_prefix="clip/t")
    run(env, "VAESave", vae=v1, filename_prefix="vae/v")
    out = env.folders.dir_for("output")
    keys, _ = _file(out / "diffusion_models" / "u_00001_.safetensors")
    assert keys and all(k.startswith("model.diffusion_model.") for k in keys)
    keys, metadata = _file(out / "clip" / "t_clip_l_00001_.safetensors")
    assert keys and all(k.startswith("text_model.") for k in keys) and metadata["format"] == "pt"
    keys, _ = _file(out / "vae" / "v_00001_.safetensors")
    assert "encoder.conv_in.weight" in keys and "decoder.mid.attn_1.q.weight" in keys
    # and each loads through its own loader
    for folder, name in (("diffusion_models", "u_00001_.safetensors"), ("text_encoders", "t_clip_l_00001_.safetensors"),
                         ("vae", "v_00001_.safetensors")):
        src = out / {"diffusion_models": "diffusion_models", "text_encoders": "clip", "vae": "vae"}[folder] / name
        (env.folders.models / folder).mkdir(exist_ok=True)
        (env.folders.models / folder / name).write_bytes(src.read_bytes())
    unet = run(env, "UNETLoader", unet_name="u_00001_.safetensors", weight_dtype="default")
    clip = run(env, "CLIPLoader", clip_name="t_clip_l_00001_.safetensors", type="stable_diffusion")
    vae = run(env, "VAELoader", vae_name="v_00001_.safetensors")
    for saved, loaded in ((m1, unet), (c1, clip), (v1, vae)):
        want, got = weights(env, saved), weights(env, loaded)
        assert all(torch.equal(got[k], want[k]) for k in want)


def test_bad_prefix_fails_validation(env):
    assert "climbs out" in env.registry.get("CheckpointSave").cls.validate_inputs(filename_prefix="../x")
