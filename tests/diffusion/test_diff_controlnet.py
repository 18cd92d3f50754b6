"""DiffControlNetLoader (ComfyUI 0.8 nodes.py, comfy/controlnet.py): a "difference" ControlNet file holds
control_model.X - unet.X for the weights the U-Net shares, plus a "difference" key; loading it with the
model gives the full ControlNet back, with no missing or unexpected keys, and it steers a sampler run."""
from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

from nodes.diffusion.checkpoint.layout import HINTS_KEY
from nodes.diffusion.checkpoint.to_ldm import unet_to_ldm
from nodes.diffusion.checkpoint.writer import unet_hints
from nodes.diffusion.controlnet_files import diffusers_to_original
from tests.diffusion.nodecall import run
from tests.diffusion.test_controlnet import conds, hint_image, put_files, sample, tiny  # noqa: F401


def difference_file(path, net, unet):
    base = unet_to_ldm(unet.state_dict(), unet.config)
    tensors, shared = {}, 0
    for key, value in diffusers_to_original(net.state_dict()).items():
        if key in base:
            value, shared = value - base[key], shared + 1
        tensors["control_model." + key] = value.detach().contiguous().clone()
    tensors["difference"] = torch.tensor([])
    # tiny head counts and norm groups are not in the shapes: the hints save_controlnet writes carry them
    save_file(tensors, str(path), metadata={HINTS_KEY: json.dumps({"controlnet": unet_hints(dict(net.config))})})
    return shared


def test_declaration_matches_comfyui(env):
    spec = env.registry.get("DiffControlNetLoader")
    assert [(i.name, i.type.name) for i in spec.inputs] == [("model", "MODEL"), ("control_net_name", "COMBO")]
    assert spec.inputs[1].folder == "controlnet" and spec.category == "loaders"
    assert [o.type.name for o in spec.outputs] == ["CONTROL_NET"]


def test_difference_controlnet_gets_the_model_added_back_and_steers_sampling(env, tiny):  # noqa: F811
    folder = put_files(env, tiny)
    net = tiny["nets"][0]
    shared = difference_file(folder / "diff.safetensors", net, tiny["model"].module.unet)
    assert shared > 10
    diff = run(env, "DiffControlNetLoader", model=tiny["model"], control_net_name="diff.safetensors")
    full = run(env, "ControlNetLoader", control_net_name="a.safetensors")
    got, want = diff.handle.module.state_dict(), full.handle.module.state_dict()
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6)
    positive, negative = conds(tiny)
    plain = sample(env, tiny, positive, negative)

    def steered(control):
        p, n = run(env, "ControlNetApplyAdvanced", positive=positive, negative=negative, control_net=control,
                   image=hint_image(8, 24), strength=1.0, start_percent=0.0, end_percent=1.0)
        return sample(env, tiny, p, n)

    with_diff = steered(diff)
    assert (with_diff - plain).abs().mean() > 1e-2
    torch.testing.assert_close(with_diff, steered(full), rtol=0, atol=1e-4)
    # a full ControlNet through DiffControlNetLoader loads unchanged, as in ComfyUI
    same = run(env, "DiffControlNetLoader", model=tiny["model"], control_net_name="a.safetensors")
    assert all(torch.equal(v, want[k]) for k, v in same.handle.module.state_dict().items())
