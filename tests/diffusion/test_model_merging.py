"""Model merging (ComfyUI 0.8 comfy_extras/nodes_model_merging.py, nodes_model_merging_model_specific.py) on
tiny real checkpoints: declarations, the maths against references computed here, block prefixes, exact
restore of the unmerged handles, and merges of handles that carry LoRA patches or share one base module.

ComfyUI's maths (ModelPatcher.add_patches(patches, strength_patch, strength_model) then
lora.calculate_weight: w = strength_model * w1 + strength_patch * w2):
  ModelMergeSimple  w = ratio * w1 + (1 - ratio) * w2      ModelMergeAdd       w = w1 + w2
  ModelMergeSubtract w = multiplier * (w1 - w2)             blocks: ratio of the longest matching key prefix
"""
from __future__ import annotations

import pytest
import torch

from nodes.diffusion.lora import save_lora
from nodes.diffusion.merge import ldm_unet_names
from tests.diffusion.nodecall import run
from tests.diffusion.test_lora_nodes import kohya_lora, unet_out
from tests.tiny_models import save_tiny_checkpoint


def weights(env, handle) -> dict[str, torch.Tensor]:
    with env.devices.use(handle) as m:
        return {k: v.detach().clone() for k, v in m.state_dict().items()}


@pytest.fixture
def two(env):
    folder = env.folders.models / "checkpoints"
    save_tiny_checkpoint(folder / "a.safetensors", "sd1", seed=1)
    save_tiny_checkpoint(folder / "b.safetensors", "sd1", seed=2)
    a = run(env, "CheckpointLoaderSimple", ckpt_name="a.safetensors")
    b = run(env, "CheckpointLoaderSimple", ckpt_name="b.safetensors")
    return a, b


def _decl(env, name):
    spec = env.registry.get(name)
    return spec, [(i.name, i.type.name, i.default, i.min, i.max, i.step) for i in spec.inputs]


def test_declarations_match_comfyui(env):
    ratio = lambda n: (n, "FLOAT", 1.0, 0.0, 1.0, 0.01)  # noqa: E731
    mult = ("multiplier", "FLOAT", 1.0, -10.0, 10.0, 0.01)
    models = [("model1", "MODEL"), ("model2", "MODEL")]
    clips = [("clip1", "CLIP"), ("clip2", "CLIP")]
    expected = {
        "ModelMergeSimple": (models, [ratio("ratio")], "MODEL"),
        "ModelMergeSubtract": (models, [mult], "MODEL"),
        "ModelMergeAdd": (models, [], "MODEL"),
        "ModelMergeBlocks": (models, [ratio("input"), ratio("middle"), ratio("out")], "MODEL"),
        "CLIPMergeSimple": (clips, [ratio("ratio")], "CLIP"),
        "CLIPMergeSubtract": (clips, [mult], "CLIP"),
        "CLIPMergeAdd": (clips, [], "CLIP"),
    }
    for name, (links, widgets, out) in expected.items():
        spec, inputs = _decl(env, name)
        assert [(n, t) for n, t, *_ in inputs[:2]] == links, name
        assert inputs[2:] == widgets, name
        assert [o.type.name for o in spec.outputs] == [out] and spec.category == "advanced/model_merging", name
    sd1 = (["time_embed.", "label_emb."] + [f"input_blocks.{i}." for i in range(12)]
           + [f"middle_block.{i}." for i in range(3)] + [f"output_blocks.{i}." for i in range(12)] + ["out."])
    sdxl = (["time_embed.", "label_emb."] + [f"input_blocks.{i}" for i in range(9)]
            + [f"middle_block.{i}" for i in range(3)] + [f"output_blocks.{i}" for i in range(9)] + ["out."])
    for name, names in (("ModelMergeSD1", sd1), ("ModelMergeSDXL", sdxl)):
        spec, inputs = _decl(env, name)
        assert inputs[2:] == [ratio(n) for n in names] and spec.category == "advanced/model_merging/model_specific"


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_simple_merge_is_the_weighted_sum(env, two, ratio):
    (m1, _, _), (m2, _, _) = two
    w1, w2 = weights(env, m1), weights(env, m2)
    merged = weights(env, run(env, "ModelMergeSimple", model1=m1, model2=m2, ratio=ratio))
    for key in w1:
        torch.testing.assert_close(merged[key], ratio * w1[key] + (1 - ratio) * w2[key], rtol=0, atol=1e-6)
    if ratio == 1.0:  # ComfyUI: ratio 1 is model1 itself
        assert all(torch.equal(merged[k], w1[k]) for k in w1)


def test_add_and_subtract(env, two):
    (m1, _, _), (m2, _, _) = two
    w1, w2 = weights(env, m1), weights(env, m2)
    added = weights(env, run(env, "ModelMergeAdd", model1=m1, model2=m2))
    diff = weights(env, run(env, "ModelMergeSubtract", model1=m1, model2=m2, multiplier=-2.5))
    for key in w1:
        torch.testing.assert_close(added[key], w1[key] + w2[key], rtol=0, atol=1e-6)
        torch.testing.assert_close(diff[key], -2.5 * (w1[key] - w2[key]), rtol=0, atol=1e-5)


def test_blocks_merge_only_their_prefixes(env, two):
    (m1, _, _), (m2, _, _) = two
    w1, w2 = weights(env, m1), weights(env, m2)
    ldm = ldm_unet_names(m1)
    assert ldm["unet.mid_block.resnets.0.norm1.weight"] == "middle_block.0.in_layers.0.weight"
    merged = weights(env, run(env, "ModelMergeBlocks", model1=m1, model2=m2, input=1.0, middle=0.0, out=1.0))
    for key in w1:
        expected = w2[key] if ldm[key].startswith("middle") else w1[key]
        torch.testing.assert_close(merged[key], expected, rtol=0, atol=1e-6)
    # keys outside input/middle/out (time_embed) take the first ratio input's value, as ComfyUI
    merged = weights(env, run(env, "ModelMergeBlocks", model1=m1, model2=m2, input=0.0, middle=1.0, out=1.0))
    assert torch.allclose(merged["unet.time_embedding.linear_1.weight"], w2["unet.time_embedding.linear_1.weight"], atol=1e-6)
    assert torch.equal(merged["unet.conv_out.weight"], w1["unet.conv_out.weight"])  # "out.2" matches "out"


def test_sd1_block_merge_uses_the_longest_prefix(env, two):
    (m1, _, _), (m2, _, _) = two
    w1, w2 = weights(env, m1), weights(env, m2)
    ldm = ldm_unet_names(m1)
    merged = weights(env, run(env, "ModelMergeSD1", model1=m1, model2=m2, **{"input_blocks.1.": 0.0}))
    changed = {k for k in w1 if not torch.equal(merged[k], w1[k])}
    assert changed and changed == {k for k in w1 if ldm[k].startswith("input_blocks.1.")}
    for key in changed:
        torch.testing.assert_close(merged[key], w2[key], rtol=0, atol=1e-6)


def test_unmerged_handles_stay_bit_exact_and_the_merge_changes_the_output(env, two):
    (m1, _, _), (m2, _, _) = two
    before1, before2 = weights(env, m1), weights(env, m2)
    out1 = unet_out(env, m1)
    merged = run(env, "ModelMergeSimple", model1=m1, model2=m2, ratio=0.5)
    assert not torch.allclose(unet_out(env, merged), out1)
    assert torch.equal(unet_out(env, m1), out1)
    for handle, before in ((m1, before1), (m2, before2)):
        after = weights(env, handle)
        assert all(torch.equal(after[k], before[k]) for k in before)


def test_model2_patches_count_even_on_the_same_base_module(env, two):
    """ComfyUI's get_key_patches hands model2's LoRA along; model2 may share model1's module."""
    (m1, c1, _), _ = two
    save_lora(env.folders.models / "loras" / "l.safetensors", kohya_lora(m1.module, c1.module, seed=3))
    lora_model, _ = run(env, "LoraLoader", model=m1, clip=c1, lora_name="l.safetensors", strength_model=1.0,
                        strength_clip=1.0)
    base, with_lora = weights(env, m1), weights(env, lora_model)
    assert any(not torch.equal(base[k], with_lora[k]) for k in base)
    merged = weights(env, run(env, "ModelMergeSimple", model1=m1, model2=lora_model, ratio=0.25))
    for key in base:
        torch.testing.assert_close(merged[key], 0.25 * base[key] + 0.75 * with_lora[key], rtol=0, atol=1e-6)
    # and the other way round: a LoRA on model1 stays under the merge (w = ratio * (w1 + lora) + ...)
    merged = weights(env, run(env, "ModelMergeSimple", model1=lora_model, model2=m1, ratio=0.25))
    for key in base:
        torch.testing.assert_close(merged[key], 0.25 * with_lora[key] + 0.75 * base[key], rtol=0, atol=1e-6)


def test_clip_merges(env, two):
    (_, c1, _), (_, c2, _) = two
    w1, w2 = weights(env, c1), weights(env, c2)
    simple = weights(env, run(env, "CLIPMergeSimple", clip1=c1, clip2=c2, ratio=0.4))
    added = weights(env, run(env, "CLIPMergeAdd", clip1=c1, clip2=c2))
    diff = weights(env, run(env, "CLIPMergeSubtract", clip1=c1, clip2=c2, multiplier=0.5))
    for key in w1:
        if key.endswith("position_ids"):  # left out as ComfyUI does
            assert torch.equal(simple[key], w1[key]) and torch.equal(added[key], w1[key])
            continue
        torch.testing.assert_close(simple[key], 0.4 * w1[key] + 0.6 * w2[key], rtol=0, atol=1e-6)
        torch.testing.assert_close(added[key], w1[key] + w2[key], rtol=0, atol=1e-6)
        torch.testing.assert_close(diff[key], 0.5 * (w1[key] - w2[key]), rtol=0, atol=1e-6)
    a = c1.module.encode("a red circle")[0]
    with env.devices.use(run(env, "CLIPMergeSimple", clip1=c1, clip2=c2, ratio=0.0)) as merged:
        assert not torch.allclose(merged.encode("a red circle")[0], a)


def test_merging_different_architectures_is_an_error_naming_the_inputs(env, two):
    (m1, c1, _), _ = two
    save_tiny_checkpoint(env.folders.models / "checkpoints" / "xl.safetensors", "sdxl", seed=1)
    xl, _, _ = run(env, "CheckpointLoaderSimple", ckpt_name="xl.safetensors")
    with pytest.raises(ValueError, match="model1 is an sd1 model and model2 an sdxl one"):
        run(env, "ModelMergeSimple", model1=m1, model2=xl, ratio=0.5)
    with pytest.raises(ValueError, match="model2 is a ClipModel"):
        run(env, "ModelMergeSimple", model1=m1, model2=c1, ratio=0.5)
