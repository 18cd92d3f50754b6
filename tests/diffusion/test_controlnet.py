"""ControlNet: file layouts (original / diffusers), config inference, the exporter, and the control
applied during sampling (strength, step window, stacking, positive vs negative) on tiny models."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from nodes.diffusion.checkpoint.layout import reference_config
from nodes.diffusion.checkpoint.modules import build_unet
from nodes.diffusion.checkpoint.to_ldm import unet_to_ldm
from nodes.diffusion.controlnet import broadcast_hint, upscale_hint
from nodes.diffusion.controlnet_files import (ControlNetError, build_controlnet, controlnet_from_unet,
                                              diffusers_to_original, load_controlnet_file, save_controlnet)
from nodes.diffusion.models import DiffusionModel, model_info
from nodes.diffusion.sampling import ModelSampling
from nodegraph.devices import ModelHandle
from tests.diffusion.nodecall import run
from tests.tiny_models import tiny_components


# ----------------------------------------------------------------------------------------------
# The must-show: a full-size SD1.5 ControlNet in the original layout
# ----------------------------------------------------------------------------------------------

def sd15_original_layout() -> dict[str, torch.Tensor]:
    """An SD1.5 ControlNet's keys and shapes in lllyasviel's cldm layout, written down from cldm's
    definition (not from our key map): the U-Net's encoder (its LDM keys via checkpoint.unet_to_ldm),
    the hint block (convs 3->16->16->32->32->96->96->256->320 at Sequential indices 0, 2, ..., 14),
    12 zero convs (one per input block) and middle_block_out. fp16 torch.empty: no time spent on values."""
    config = reference_config("sd15_unet")
    unet = build_unet(config)  # meta device: shapes only
    ldm = unet_to_ldm(unet.state_dict(), config)
    shapes = {k: tuple(v.shape) for k, v in ldm.items() if k.startswith(("time_embed.", "input_blocks.", "middle_block."))}
    hint = [(16, 3), (16, 16), (32, 16), (32, 32), (96, 32), (96, 96), (256, 96), (320, 256)]
    for i, (cout, cin) in enumerate(hint):
        shapes[f"input_hint_block.{2 * i}.weight"] = (cout, cin, 3, 3)
        shapes[f"input_hint_block.{2 * i}.bias"] = (cout,)
    for i, c in enumerate([320] * 4 + [640] * 3 + [1280] * 5):
        shapes[f"zero_convs.{i}.0.weight"] = (c, c, 1, 1)
        shapes[f"zero_convs.{i}.0.bias"] = (c,)
    shapes["middle_block_out.0.weight"] = (1280, 1280, 1, 1)
    shapes["middle_block_out.0.bias"] = (1280,)
    return {k: torch.empty(s, dtype=torch.float16) for k, s in shapes.items()}


def test_sd15_original_layout_controlnet_loads_with_no_missing_or_unexpected_keys(env):
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
    sd = sd15_original_layout()
    # the layout written above is the real one: diffusers' own converter maps it onto ControlNetModel exactly
    reference = build_controlnet(reference_config("sd15_unet"))  # diffusers' ControlNetModel, on meta
    converted = convert_controlnet_checkpoint(dict(sd), {"layers_per_block": 2})
    assert set(converted) == set(reference.state_dict())
    del converted, reference
    sd["zero_convs.11.0.bias"] = torch.arange(1280, dtype=torch.float16)  # two sentinels
    sd["input_hint_block.14.bias"] = torch.arange(320, dtype=torch.float16)
    folder = env.folders.models / "controlnet"
    folder.mkdir(parents=True)
    save_file({"control_model." + k: v for k, v in sd.items()}, str(folder / "control_sd15_random.safetensors"))
    n_file = len(sd)
    del sd
    control = run(env, "ControlNetLoader", control_net_name="control_sd15_random.safetensors")
    net = control.handle.module.controlnet
    own = net.state_dict()
    assert len(own) == n_file  # strict: every file key became a weight and no weight is left unset
    assert not any(t.is_meta for t in own.values())
    assert 361.2e6 < sum(t.numel() for t in own.values()) < 361.4e6  # SD1.5 ControlNets: 1.45 GB in fp32
    assert torch.equal(own["controlnet_down_blocks.11.bias"], torch.arange(1280, dtype=torch.float16))
    assert torch.equal(own["controlnet_cond_embedding.conv_out.bias"], torch.arange(320, dtype=torch.float16))
    cfg = net.config
    assert (list(cfg.block_out_channels), cfg.layers_per_block, cfg.cross_attention_dim, cfg.attention_head_dim,
            list(cfg.conditioning_embedding_out_channels)) == ([320, 640, 1280, 1280], 2, 768, 8, [16, 32, 96, 256])
    assert control.handle.info["layout"] == "original"


# ----------------------------------------------------------------------------------------------
# Tiny models
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    parts = tiny_components("sd1", seed=5)
    unet = parts["unet"].eval()
    nets = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        net = controlnet_from_unet(unet, conditioning_embedding_out_channels=(4, 4, 8, 8)).eval()
        with torch.no_grad():  # trained ControlNets have non-zero zero convs
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        nets.append(net)
    model = DiffusionModel(unet, "sd1")
    return {"model": ModelHandle(model, "tiny", info=model_info(model)), "nets": nets,
            "context": torch.randn(1, 77, 32) * 0.5}


def put_files(env, tiny):
    folder = env.folders.models / "controlnet"
    folder.mkdir(parents=True, exist_ok=True)
    a, b = tiny["nets"]
    save_controlnet(folder / "a.safetensors", a, dtype=None)
    save_controlnet(folder / "b-noprefix.safetensors", b, dtype=None, prefix="")
    a.save_pretrained(folder / "a-diffusers")  # config.json + diffusion_pytorch_model.safetensors
    return folder


def hint_image(x0: int, y0: int, size: int = 64) -> torch.Tensor:
    image = torch.zeros(1, size, size, 3)
    image[:, y0:y0 + 16, x0:x0 + 16] = 1.0
    return image


def conds(tiny):
    return [[tiny["context"], {}]], [[torch.zeros(1, 77, 32), {}]]


def sample(env, tiny, positive, negative, steps=4, cfg=3.0, **kw):
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    out = run(env, "KSampler", model=tiny["model"], seed=1, steps=steps, cfg=cfg, sampler_name="euler",
              scheduler="normal", positive=positive, negative=negative, latent_image=latent, denoise=1.0, **kw)
    return out["samples"]


def test_node_schemas_match_comfyui(env):
    schema = {name: env.registry.get(name).schema(env) for name in
              ("ControlNetLoader", "ControlNetApply", "ControlNetApplyAdvanced")}
    assert [i["name"] for i in schema["ControlNetLoader"]["inputs"]] == ["control_net_name"]
    assert [o["type"] for o in schema["ControlNetLoader"]["outputs"]] == ["CONTROL_NET"]
    old = schema["ControlNetApply"]
    assert [i["name"] for i in old["inputs"]] == ["conditioning", "control_net", "image", "strength"]
    assert [o["type"] for o in old["outputs"]] == ["CONDITIONING"]
    adv = schema["ControlNetApplyAdvanced"]
    assert [(i["name"], i["required"]) for i in adv["inputs"]] == [
        ("positive", True), ("negative", True), ("control_net", True), ("image", True), ("strength", True),
        ("start_percent", True), ("end_percent", True), ("vae", False)]
    by = {i["name"]: i for i in adv["inputs"]}
    assert (by["strength"]["default"], by["strength"]["min"], by["strength"]["max"], by["strength"]["step"]) == (1.0, 0.0, 10.0, 0.01)
    assert (by["start_percent"]["default"], by["start_percent"]["step"]) == (0.0, 0.001)
    assert (by["end_percent"]["default"], by["end_percent"]["max"]) == (1.0, 1.0)
    assert [(o["name"], o["type"]) for o in adv["outputs"]] == [("positive", "CONDITIONING"), ("negative", "CONDITIONING")]


def test_original_and_diffusers_layouts_load_the_same_weights(env, tiny):
    put_files(env, tiny)
    names = env.folders.list("controlnet")
    assert "a.safetensors" in names and "a-diffusers/diffusion_pytorch_model.safetensors" in names
    original = run(env, "ControlNetLoader", control_net_name="a.safetensors")
    diffusers_file = run(env, "ControlNetLoader", control_net_name="a-diffusers/diffusion_pytorch_model.safetensors")
    diffusers_folder = run(env, "ControlNetLoader", control_net_name="a-diffusers")
    no_prefix = run(env, "ControlNetLoader", control_net_name="b-noprefix.safetensors")
    assert (original.handle.info["layout"], diffusers_file.handle.info["layout"]) == ("original", "diffusers")
    expected = tiny["nets"][0].state_dict()
    for control in (original, diffusers_file, diffusers_folder):
        got = control.handle.module.controlnet.state_dict()
        assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in expected)
    got_b = no_prefix.handle.module.controlnet.state_dict()
    assert all(torch.equal(got_b[k], v) for k, v in tiny["nets"][1].state_dict().items())
    # and the same output through the sampler
    positive, negative = conds(tiny)
    image = hint_image(8, 24)
    outs = []
    for control in (original, diffusers_file):
        p, n = run(env, "ControlNetApplyAdvanced", positive=positive, negative=negative, control_net=control,
                   image=image, strength=1.0, start_percent=0.0, end_percent=1.0)
        outs.append(sample(env, tiny, p, n))
    assert torch.equal(outs[0], outs[1])
    # cached: the same file loads once
    assert run(env, "ControlNetLoader", control_net_name="a.safetensors") is original


def test_exporter_round_trip_and_diffusers_converter_agree(tmp_path, tiny):
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
    net = tiny["nets"][0]
    path = save_controlnet(tmp_path / "cn.safetensors", net, {"nodegraph.training": "{}"}, dtype=None)
    loaded = load_controlnet_file(path)
    assert loaded.layout == "original" and loaded.config["norm_num_groups"] == 8  # from the hints
    expected = net.state_dict()
    got = loaded.module.state_dict()
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    # an independent reader of the original layout (diffusers' converter) gets the same weights back
    from safetensors.torch import load_file
    converted = convert_controlnet_checkpoint(load_file(str(path)), {"layers_per_block": 1})
    assert converted.keys() == expected.keys() and all(torch.equal(converted[k], expected[k]) for k in expected)
    # fp16 export halves the file and stays within fp16 rounding
    half = load_controlnet_file(save_controlnet(tmp_path / "half.safetensors", net))
    assert all(torch.allclose(half.module.state_dict()[k].float(), v, atol=1e-2, rtol=1e-3) for k, v in expected.items())


def test_non_controlnet_files_are_refused_clearly(tmp_path):
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, str(tmp_path / "lora.safetensors"))
    with pytest.raises(ControlNetError, match="no ControlNet.*original layout"):
        load_controlnet_file(tmp_path / "lora.safetensors")
    save_file({"control_model.input_hint_block.0.weight": torch.zeros(16, 3, 3, 3), "difference": torch.zeros(1)},
              str(tmp_path / "diff.safetensors"))
    with pytest.raises(ControlNetError, match="difference"):
        load_controlnet_file(tmp_path / "diff.safetensors")


def test_residuals_change_the_result_and_strength_zero_or_outside_the_window_does_not(env, tiny):
    put_files(env, tiny)
    control = run(env, "ControlNetLoader", control_net_name="a.safetensors")
    positive, negative = conds(tiny)
    plain = sample(env, tiny, positive, negative)
    image = hint_image(8, 24)

    def with_control(strength=1.0, start=0.0, end=1.0):
        p, n = run(env, "ControlNetApplyAdvanced", positive=positive, negative=negative, control_net=control,
                   image=image, strength=strength, start_percent=start, end_percent=end)
        return sample(env, tiny, p, n)

    full = with_control()
    assert (full - plain).abs().mean() > 1e-2
    assert torch.equal(with_control(strength=0.0), plain)
    assert torch.equal(with_control(start=0.0, end=0.0), plain)  # the window holds no step
    late = with_control(start=0.5, end=1.0)  # only the last steps
    assert (late - plain).abs().mean() > 1e-4 and (late - full).abs().mean() > 1e-4
    other_place = sample(env, tiny, *run(env, "ControlNetApplyAdvanced", positive=positive, negative=negative,
                                          control_net=control, image=hint_image(40, 8), strength=1.0,
                                          start_percent=0.0, end_percent=1.0))
    assert (other_place - full).abs().mean() > 1e-3  # the hint image matters


def test_two_controlnets_stack_their_residuals(env, tiny):
    put_files(env, tiny)
    a = run(env, "ControlNetLoader", control_net_name="a.safetensors")
    b = run(env, "ControlNetLoader", control_net_name="b-noprefix.safetensors")
    positive, negative = conds(tiny)
    img_a, img_b = hint_image(8, 8), hint_image(40, 40)
    p1, n1 = run(env, "ControlNetApplyAdvanced", positive=positive, negative=negative, control_net=a, image=img_a,
                 strength=0.7, start_percent=0.0, end_percent=1.0)
    p2, n2 = run(env, "ControlNetApplyAdvanced", positive=p1, negative=n1, control_net=b, image=img_b,
                 strength=1.3, start_percent=0.0, end_percent=1.0)
    stacked = p2[0][1]["control"]
    assert stacked.previous_controlnet is p1[0][1]["control"] and n2[0][1]["control"] is stacked

    # the residuals of the stack are the sum of each ControlNet's own residuals (each with its strength)
    only_b = b.copy().set_cond_hint(img_b.movedim(-1, 1), 1.3)
    ms = ModelSampling()
    for c in (stacked, only_b):
        c.pre_run(None, ms)
    x, sigma = torch.randn(2, 4, 8, 8), torch.tensor([3.0, 3.0])
    inputs = {"context": torch.cat([tiny["context"], torch.zeros(1, 77, 32)])}
    both = stacked.get_control(x, sigma, inputs, 2)
    ra, rb = stacked.previous_controlnet.get_control(x, sigma, inputs, 2), only_b.get_control(x, sigma, inputs, 2)
    for got, first, second in zip(both["down_block_additional_residuals"], ra["down_block_additional_residuals"],
                                  rb["down_block_additional_residuals"]):
        assert torch.allclose(got, first + second, atol=1e-6)
    assert torch.allclose(both["mid_block_additional_residual"],
                          ra["mid_block_additional_residual"] + rb["mid_block_additional_residual"], atol=1e-6)
    stacked.cleanup(), only_b.cleanup()

    # through the sampler: both are applied (different from either alone), and A at 0.4 + A at 0.6 = A at 1.0
    result = sample(env, tiny, p2, n2)
    alone_a = sample(env, tiny, p1, n1)
    alone_b = sample(env, tiny, *run(env, "ControlNetApplyAdvanced", positive=positive, negative=negative,
                                     control_net=b, image=img_b, strength=1.3, start_percent=0.0, end_percent=1.0))
    assert (result - alone_a).abs().mean() > 1e-3 and (result - alone_b).abs().mean() > 1e-3

    def apply(pos, neg, strength):
        return run(env, "ControlNetApplyAdvanced", positive=pos, negative=neg, control_net=a, image=img_a,
                   strength=strength, start_percent=0.0, end_percent=1.0)
    split = sample(env, tiny, *apply(*apply(positive, negative, 0.4), 0.6))
    whole = sample(env, tiny, *apply(positive, negative, 1.0))
    assert torch.allclose(split, whole, rtol=1e-4, atol=1e-3)


def test_positive_and_negative_may_carry_different_controls(env, tiny):
    put_files(env, tiny)
    a = run(env, "ControlNetLoader", control_net_name="a.safetensors")
    positive, negative = conds(tiny)
    image = hint_image(8, 24)
    p1, n1 = run(env, "ControlNetApplyAdvanced", positive=positive, negative=negative, control_net=a, image=image,
                 strength=1.0, start_percent=0.0, end_percent=1.0)
    assert p1[0][1]["control"] is n1[0][1]["control"]  # shared: cond and uncond run in one forward
    # a second ControlNet on the positive only (the negative keeps the first)
    p2, _ = run(env, "ControlNetApplyAdvanced", positive=p1, negative=negative, control_net=a,
                image=hint_image(40, 40), strength=1.0, start_percent=0.0, end_percent=1.0)
    assert p2[0][1]["control"] is not n1[0][1]["control"]
    different = sample(env, tiny, p2, n1)
    assert (different - sample(env, tiny, p1, n1)).abs().mean() > 1e-3
    # ControlNetApply (old) gives the negative the positive's control, like ControlNetApplyAdvanced on both
    old = run(env, "ControlNetApply", conditioning=positive, control_net=a, image=image, strength=1.0)
    assert old[0][1]["control_apply_to_uncond"] is True
    assert torch.equal(sample(env, tiny, old, negative), sample(env, tiny, p1, n1))


def test_hint_resize_and_batch_broadcast_follow_comfyui():
    hint = torch.arange(2 * 3 * 4 * 8, dtype=torch.float32).reshape(2, 3, 4, 8)
    square = upscale_hint(hint, 4, 4)  # wide -> square: centre crop of columns 2..5
    assert torch.equal(square, hint[:, :, :, 2:6])
    assert upscale_hint(hint, 16, 8).shape == (2, 3, 8, 16)
    one = torch.zeros(1, 3, 8, 8)
    assert broadcast_hint(one, 6, 2) is one  # broadcasts by itself
    three = torch.arange(3.0).view(3, 1, 1, 1)
    # 2 conditionings x batch 2: each chunk gets the first 2 hints
    assert broadcast_hint(three, 4, 2).flatten().tolist() == [0, 1, 0, 1]
    two = torch.arange(2.0).view(2, 1, 1, 1)
    assert broadcast_hint(two, 6, 2).flatten().tolist() == [0, 1, 0, 0, 1, 0]


def test_hint_channels_and_missing_pre_run_give_clear_errors(env, tiny):
    put_files(env, tiny)
    control = run(env, "ControlNetLoader", control_net_name="a.safetensors")
    positive, negative = conds(tiny)
    with pytest.raises(ValueError, match="image: has 1 channels"):
        run(env, "ControlNetApplyAdvanced", positive=positive, negative=negative, control_net=control,
            image=torch.zeros(1, 64, 64, 1), strength=1.0, start_percent=0.0, end_percent=1.0)
    applied = control.copy().set_cond_hint(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ControlNetError, match="pre_run"):
        applied.get_control(torch.zeros(1, 4, 8, 8), torch.tensor([1.0]), {"context": tiny["context"]}, 1)


def test_diffusers_to_original_key_map_is_one_to_one(tiny):
    keys = list(tiny["nets"][0].state_dict())
    mapped = diffusers_to_original({k: k for k in keys})
    assert len(mapped) == len(keys) and sorted(mapped.values()) == sorted(keys)
    assert mapped["middle_block_out.0.weight"] == "controlnet_mid_block.weight"
    assert mapped["input_hint_block.0.weight"] == "controlnet_cond_embedding.conv_in.weight"
    assert mapped["input_hint_block.14.bias"] == "controlnet_cond_embedding.conv_out.bias"
    assert mapped["zero_convs.3.0.weight"] == "controlnet_down_blocks.3.weight"
    assert json.dumps(sorted(mapped))  # plain strings


def test_sd15_diffusers_layout_without_hints_infers_the_sd15_config():
    """What the GPU benchmark writes (diffusers keys, no metadata) is read as SD1.5 again: shapes + SD1 rules."""
    from nodes.diffusion.controlnet_files import infer_controlnet_config
    reference = build_controlnet(reference_config("sd15_unet"))  # meta
    inferred = infer_controlnet_config(diffusers_to_original(reference.state_dict()))
    config = reference.config
    assert inferred["block_out_channels"] == list(config.block_out_channels)
    assert inferred["down_block_types"] == list(config.down_block_types)
    assert (inferred["attention_head_dim"], inferred["norm_num_groups"], inferred["cross_attention_dim"],
            inferred["layers_per_block"], inferred["use_linear_projection"]) == (8, 32, 768, 2, False)
    assert inferred["conditioning_embedding_out_channels"] == [16, 32, 96, 256]


def test_random_controlnet_for_benchmarks(env, tiny):
    from nodes.diffusion.controlnet import random_controlnet
    small = dict(block_out_channels=[32, 64, 64, 64], attention_head_dim=2, norm_num_groups=8, cross_attention_dim=32)
    control = random_controlnet(env.devices, "sd15_unet", seed=3, **small)
    again = random_controlnet(env.devices, "sd15_unet", seed=3, **small)
    a, b = control.handle.module.state_dict(), again.handle.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # seeded
    applied = control.copy().set_cond_hint(torch.rand(1, 3, 64, 64))
    applied.pre_run(None, ModelSampling())
    out = applied.get_control(torch.randn(2, 4, 8, 8), torch.tensor([2.0, 2.0]),
                              {"context": torch.randn(2, 77, 32)}, 2)
    assert len(out["down_block_additional_residuals"]) == 12  # SD1.5's 12 skip connections
    assert all(r.abs().sum() > 0 for r in out["down_block_additional_residuals"])  # zero convs are not zero
