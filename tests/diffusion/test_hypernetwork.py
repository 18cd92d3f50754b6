"""HypernetworkLoader (ComfyUI 0.8 comfy_extras/nodes_hypernetwork.py): the declaration, A1111's file layout
({width: [key net, value net], "activation_func": ..., "is_layer_norm": ...} saved with torch.save) read through
the model-file service with every tensor used, ComfyUI's formula k/v = x + strength * net(x) written out again
here, and sampler runs on a tiny SD U-Net: the patch changes the sample, strength 0 gives the plain sample."""
from __future__ import annotations

import pytest
import torch

from nodes.diffusion.hypernetwork_nodes import HypernetworkPatch, build_hypernetwork
from nodegraph.model_files import read_weights
from tests.diffusion.nodecall import run
from tests.diffusion.test_model_patch_nodes import ksampler, tiny_model, tiny_unet  # noqa: F401


def net(width: int, layer_norm: bool, seed: int) -> dict:
    """One A1111 net of layer structure [1, 2, 1]: linear.0 and linear.2 (linear.1 / linear.3 layer norms)."""
    g = torch.Generator().manual_seed(seed)
    sd = {"linear.0.weight": torch.randn(2 * width, width, generator=g) * 0.3,
          "linear.0.bias": torch.randn(2 * width, generator=g) * 0.1}
    if layer_norm:
        sd.update({"linear.1.weight": 1 + torch.randn(2 * width, generator=g) * 0.1,
                   "linear.1.bias": torch.randn(2 * width, generator=g) * 0.1})
    sd.update({"linear.2.weight": torch.randn(width, 2 * width, generator=g) * 0.3,
               "linear.2.bias": torch.randn(width, generator=g) * 0.1})
    if layer_norm:
        sd.update({"linear.3.weight": 1 + torch.randn(width, generator=g) * 0.1,
                   "linear.3.bias": torch.randn(width, generator=g) * 0.1})
    return sd


def hypernetwork_file(path, layer_norm=False, activation="relu"):
    tree = {w: [net(w, layer_norm, 2 * w), net(w, layer_norm, 2 * w + 1)] for w in (32, 64)}
    tree.update({"activation_func": activation, "is_layer_norm": layer_norm, "use_dropout": False,
                 "activate_output": False, "last_layer_dropout": False, "layer_structure": [1, 2, 1],
                 "name": "tiny", "step": 100})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tree, path)
    return tree


def test_declaration_matches_comfyui(env):
    spec = env.registry.get("HypernetworkLoader")
    assert [(i.name, i.type.name) for i in spec.inputs] == [("model", "MODEL"), ("hypernetwork_name", "COMBO"),
                                                            ("strength", "FLOAT")]
    assert spec.inputs[1].folder == "hypernetworks" and spec.category == "loaders"
    s = spec.inputs[2]
    assert (s.default, s.min, s.max, s.step) == (1.0, -10.0, 10.0, 0.01)
    assert [o.type.name for o in spec.outputs] == ["MODEL"]


@pytest.mark.parametrize("layer_norm", [False, True])
def test_file_layout_loads_every_tensor_and_follows_comfyuis_formula(tmp_path, layer_norm):
    tree = hypernetwork_file(tmp_path / "h.pt", layer_norm)
    nets = build_hypernetwork(read_weights(tmp_path / "h.pt", nested=True))
    assert sorted(nets) == [32, 64]
    for w in (32, 64):  # every tensor of the file is a parameter of the built nets, nothing else is
        for index in (0, 1):
            got = dict(nets[w][index].named_parameters())
            assert len(got) == len(tree[w][index])
    # ComfyUI: Linear, activation unless last in the weight list (which counts layer norms), layer norm
    def reference(sd, x):
        h = torch.relu(x @ sd["linear.0.weight"].T + sd["linear.0.bias"])
        if layer_norm:
            h = torch.nn.functional.layer_norm(h, h.shape[-1:], sd["linear.1.weight"], sd["linear.1.bias"])
        h = h @ sd["linear.2.weight"].T + sd["linear.2.bias"]
        if layer_norm:
            h = torch.nn.functional.layer_norm(torch.relu(h), h.shape[-1:], sd["linear.3.weight"], sd["linear.3.bias"])
        return h
    q, k, v = torch.randn(2, 5, 64), torch.randn(2, 7, 64), torch.randn(2, 7, 64)
    q2, k2, v2 = HypernetworkPatch(nets, 0.7)(q, k, v, {})
    assert q2 is q
    torch.testing.assert_close(k2, k + 0.7 * reference(tree[64][0], k), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(v2, v + 0.7 * reference(tree[64][1], v), rtol=1e-5, atol=1e-5)
    other = torch.randn(1, 3, 48)  # no net of that width: unchanged
    assert HypernetworkPatch(nets, 0.7)(q, other, other, {})[1] is other


def test_unknown_activation_is_a_clear_error(tmp_path):
    hypernetwork_file(tmp_path / "bad.pt", activation="gelu2")
    with pytest.raises(ValueError, match="activation_func 'gelu2'"):
        build_hypernetwork(read_weights(tmp_path / "bad.pt", nested=True))


def test_identity_input_patch_keeps_the_unet_output(tiny_model):  # noqa: F811
    """The patched attention path (projections and SDPA done in unet_patches) equals diffusers' processor."""
    from nodes.diffusion import unet_patches
    x, t, ctx = torch.randn(1, 4, 8, 8), torch.tensor([500.0]), torch.randn(1, 77, 32)
    unet = tiny_model.module.unet
    plain = tiny_model.module.apply(x, t, ctx)
    options = {"patches": {"attn1_patch": [lambda n, c, v, e: (n, c, v)], "attn2_patch": [lambda n, c, v, e: (n, c, v)]}}
    assert unet_patches.has_patches(options)
    patched = tiny_model.module.apply(x, t, ctx, {"transformer_options": options})
    torch.testing.assert_close(patched, plain, rtol=1e-5, atol=1e-5)


def test_sampler_run_changes_with_the_hypernetwork_and_strength_zero_is_plain(env, tiny_model):  # noqa: F811
    hypernetwork_file(env.folders.models / "hypernetworks" / "tiny.pt", layer_norm=True)
    plain = ksampler(env, tiny_model)
    hyper = run(env, "HypernetworkLoader", model=tiny_model, hypernetwork_name="tiny.pt", strength=1.0)
    assert (ksampler(env, hyper) - plain).abs().mean() > 1e-3
    zero = run(env, "HypernetworkLoader", model=tiny_model, hypernetwork_name="tiny.pt", strength=0.0)
    assert torch.equal(ksampler(env, zero), plain)
    assert torch.equal(ksampler(env, tiny_model), plain)  # the base handle is untouched
