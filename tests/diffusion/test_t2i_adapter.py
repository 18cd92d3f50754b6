"""T2I-Adapters through ControlNetLoader (ComfyUI 0.8 comfy/controlnet.py load_t2i_adapter): files in the original
full / light / SDXL layouts and diffusers' layout, written here from a diffusers T2IAdapter, load with every key
placed, give the same features as that adapter run directly, and steer a sampler run on a tiny SD U-Net
(strength 0 gives the plain sample)."""
from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import save_file

from tests.diffusion.nodecall import run
from tests.diffusion.test_controlnet import conds, hint_image, sample, tiny  # noqa: F401


def original_keys(sd: dict, kind: str) -> dict:
    """diffusers T2IAdapter keys -> TencentARC's (ComfyUI's prefix map, read the other way)."""
    out = {}
    for key, value in sd.items():
        key = key[len("adapter."):]
        if kind == "light":
            key = re.sub(r"^body\.(\d+)\.resnets\.(\d+)\.", r"body.\1.body.\2.", key)
        else:
            key = re.sub(r"^body\.(\d+)\.resnets\.(\d+)\.", lambda m: f"body.{2 * int(m[1]) + int(m[2])}.", key)
            key = re.sub(r"^body\.(\d+)\.in_conv\.", lambda m: f"body.{2 * int(m[1])}.in_conv.", key)
        out[key] = value.contiguous()
    return out


def adapter(kind: str, seed: int = 0):
    from diffusers import T2IAdapter
    torch.manual_seed(seed)
    if kind == "light":
        return T2IAdapter(3, [32, 64, 128], 4, 8, "light_adapter").eval()
    if kind == "xl":
        return T2IAdapter(1, [32, 64, 128, 128], 2, 16, "full_adapter_xl").eval()
    return T2IAdapter(3, [32, 64, 128, 128], 2, 8, "full_adapter").eval()


@pytest.mark.parametrize("kind,layout", [("full", "original"), ("light", "original"), ("xl", "original"),
                                         ("full", "diffusers"), ("full", "wrapped")])
def test_layouts_load_strictly_and_match_diffusers(env, kind, layout):
    net = adapter(kind)
    sd = net.state_dict()
    folder = env.folders.models / "controlnet"
    folder.mkdir(parents=True, exist_ok=True)
    if layout == "diffusers":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "t2i.safetensors"))
        name = "t2i.safetensors"
    elif layout == "wrapped":  # a .pth holding {"adapter": state dict}
        torch.save({"adapter": original_keys(sd, "full")}, folder / "t2i.pth")
        name = "t2i.pth"
    else:
        save_file(original_keys(sd, "light" if kind == "light" else "full"), str(folder / "t2i.safetensors"))
        name = "t2i.safetensors"
    control = run(env, "ControlNetLoader", control_net_name=name)
    loaded = control.handle.module.state_dict()
    assert loaded.keys() == sd.keys()
    for key in sd:
        assert torch.equal(loaded[key], sd[key]), key
    image = torch.rand(1, 64, 64, 3)
    applied = control.copy().set_cond_hint(image.movedim(-1, 1), 0.5)
    from nodes.diffusion.sampling import ModelSampling
    applied.pre_run(None, ModelSampling())
    out = applied.get_control(torch.zeros(1, 4, 8, 8), torch.tensor([1.0]), {}, 1)
    hint = image.movedim(-1, 1)
    if kind == "xl":  # 1-channel adapter: ComfyUI averages the hint's channels
        hint = hint.mean(1, keepdim=True)
    with torch.no_grad():
        want = [f * 0.5 for f in net(hint)]
    got = out["down_intrablock_additional_residuals"]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_adapter_steers_sampling_and_strength_zero_is_plain(env, tiny):  # noqa: F811
    folder = env.folders.models / "controlnet"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(original_keys(adapter("full", seed=3).state_dict(), "full"), str(folder / "t2i-full.safetensors"))
    control = run(env, "ControlNetLoader", control_net_name="t2i-full.safetensors")
    positive, negative = conds(tiny)
    plain = sample(env, tiny, positive, negative)

    def steered(strength):
        p, n = run(env, "ControlNetApplyAdvanced", positive=positive, negative=negative, control_net=control,
                   image=hint_image(8, 24), strength=strength, start_percent=0.0, end_percent=1.0)
        return sample(env, tiny, p, n)

    assert (steered(1.0) - plain).abs().mean() > 1e-2
    assert torch.equal(steered(0.0), plain)


def test_a_controlnet_file_is_not_taken_for_an_adapter():
    from nodes.diffusion.t2i_adapter import is_t2i_adapter
    assert not is_t2i_adapter(["conv_in.weight", "controlnet_cond_embedding.conv_in.weight"])
    assert not is_t2i_adapter(["control_model.zero_convs.0.0.weight", "control_model.input_blocks.0.0.weight"])
    assert is_t2i_adapter(["conv_in.weight", "body.0.block1.weight"])
