"""GLIGEN nodes against ComfyUI 0.8 (nodes.py GLIGENLoader / GLIGENTextBoxApply, comfy/gligen.py,
comfy/samplers.py's "middle_patch", ldm attention.py where it runs), on a tiny GLIGEN file written here
in the original key layout for the tiny SD1 U-Net of tests/tiny_models.py."""
from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from nodegraph import ModelHandle
from nodes.diffusion.vision.gligen import MAX_OBJS, fourier_embed
from tests.diffusion.nodecall import run
from tests.tiny_models import save_tiny_checkpoint

M = 16384
# the tiny SD1 U-Net's spatial transformers (LDM block, width): 2 levels (32, 64), attention on level 0 and mid
BLOCKS = [("input_blocks.1.1", 32), ("middle_block.1", 64), ("output_blocks.2.1", 32), ("output_blocks.3.1", 32)]
KEY_DIM = 32  # the tiny CLIP-L's width (768 in SD1.x)


def gligen_state_dict(seed: int = 0, gate: float = 1.0, prefix: str = "") -> dict[str, torch.Tensor]:
    """Random weights under GLIGEN's original key names (ldm gligen.py: GatedSelfAttentionDense fusers inside
    each transformer block, PositionNet with 8 Fourier frequencies and 512-wide linears)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    sd = {}
    for block, dim in BLOCKS:
        f = f"{prefix}{block}.transformer_blocks.0.fuser."
        sd.update({f + "linear.weight": r(dim, KEY_DIM), f + "linear.bias": r(dim),
                   f + "attn.to_q.weight": r(dim, dim), f + "attn.to_k.weight": r(dim, dim),
                   f + "attn.to_v.weight": r(dim, dim), f + "attn.to_out.0.weight": r(dim, dim),
                   f + "attn.to_out.0.bias": r(dim),
                   f + "ff.net.0.proj.weight": r(dim * 8, dim), f + "ff.net.0.proj.bias": r(dim * 8),
                   f + "ff.net.2.weight": r(dim, dim * 4), f + "ff.net.2.bias": r(dim),
                   f + "norm1.weight": 1 + r(dim), f + "norm1.bias": r(dim),
                   f + "norm2.weight": 1 + r(dim), f + "norm2.bias": r(dim),
                   f + "alpha_attn": torch.tensor(gate), f + "alpha_dense": torch.tensor(gate)})
    position_dim = 8 * 2 * 4
    sd.update({"position_net.linears.0.weight": r(512, KEY_DIM + position_dim), "position_net.linears.0.bias": r(512),
               "position_net.linears.2.weight": r(512, 512) * 0.2, "position_net.linears.2.bias": r(512),
               "position_net.linears.4.weight": r(KEY_DIM, 512), "position_net.linears.4.bias": r(KEY_DIM),
               "position_net.null_positive_feature": r(KEY_DIM), "position_net.null_position_feature": r(position_dim)})
    return sd


def save_gligen(path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(gligen_state_dict(**kw), str(path), metadata={"nodegraph.hints": json.dumps({"num_attention_heads": 2})})
    return path


def link(name, kind):
    return (name, kind, None, None, None, None)


# ComfyUI 0.8 nodes.py: (category, inputs, outputs)
COMFY = {
    "GLIGENLoader": ("loaders", [("gligen_name", "COMBO")], ["GLIGEN"]),
    "GLIGENTextBoxApply": ("conditioning/gligen", [
        link("conditioning_to", "CONDITIONING"), link("clip", "CLIP"), link("gligen_textbox_model", "GLIGEN"),
        ("text", "STRING", "", None, None, None),
        ("width", "INT", 64, 8, M, 8), ("height", "INT", 64, 8, M, 8),
        ("x", "INT", 0, 0, M, 8), ("y", "INT", 0, 0, M, 8)], ["CONDITIONING"]),
}


def declared(inp):
    if inp.folder is not None:
        return (inp.name, "COMBO")
    if inp.type.name not in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
        return (inp.name, inp.type.name, None, None, None, None)
    bounds = (inp.min, inp.max) if inp.type.name in ("INT", "FLOAT") else (None, None)
    return (inp.name, inp.type.name, inp.default, *bounds, inp.step if inp.type.name != "STRING" else None)


@pytest.mark.parametrize("name", sorted(COMFY))
def test_declared_as_comfyui(builtin_registry, name):
    spec = builtin_registry.get(name)
    category, inputs, outputs = COMFY[name]
    assert spec.category == category and spec.display_name == name
    assert [declared(i) for i in spec.inputs] == inputs
    assert [o.type.name for o in spec.outputs] == outputs
    assert all(i.multiline for i in spec.inputs if i.name == "text")


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_gligen_file_loads_every_key(env, prefix):
    sd = gligen_state_dict(seed=1, prefix=prefix)
    path = env.folders.models / "gligen" / "g.safetensors"
    path.parent.mkdir(parents=True)
    save_file(sd, str(path), metadata={"nodegraph.hints": json.dumps({"num_attention_heads": 2})})
    handle = run(env, "GLIGENLoader", gligen_name="g.safetensors")  # raises on any missing / unexpected key
    assert isinstance(handle, ModelHandle) and handle.info["fusers"] == 4 and handle.info["key_dim"] == KEY_DIM
    loaded = handle.module.state_dict()
    assert len(loaded) == len(sd)
    for i, (block, _dim) in enumerate(BLOCKS):  # fusers in U-Net order
        key = f"{prefix}{block}.transformer_blocks.0.fuser.attn.to_q.weight"
        assert torch.equal(loaded[f"module_list.{i}.attn.to_q.weight"], sd[key])
    assert torch.equal(loaded["position_net.linears.4.weight"], sd["position_net.linears.4.weight"])


def test_gligen_loader_rejects_other_files(env):
    save_tiny_checkpoint(env.folders.models / "gligen" / "sd.safetensors", "sd1")
    with pytest.raises(ValueError, match="sd.safetensors: not a GLIGEN model"):
        run(env, "GLIGENLoader", gligen_name="sd.safetensors")
    sd = gligen_state_dict()
    sd["input_blocks.1.1.transformer_blocks.0.fuser.extra.weight"] = torch.zeros(2)
    save_file(sd, str(env.folders.models / "gligen" / "extra.safetensors"),
              metadata={"nodegraph.hints": json.dumps({"num_attention_heads": 2})})
    with pytest.raises(ValueError, match="extra.safetensors: GLIGEN fuser keys do not match"):
        run(env, "GLIGENLoader", gligen_name="extra.safetensors")


def test_fourier_embedding_is_gligens():
    # FourierEmbedder(num_freqs=8, temperature=100): freq_i = 100 ** (i / 8); per frequency sin(f x), cos(f x)
    box = torch.tensor([[0.1, 0.25, 0.6, 0.9]])
    expected = []
    for i in range(8):
        f = 100 ** (i / 8)
        expected += [math.sin(f * v) for v in box[0].tolist()] + [math.cos(f * v) for v in box[0].tolist()]
    assert fourier_embed(box)[0].tolist() == pytest.approx(expected, abs=1e-5)


@pytest.fixture
def sd1(env):
    save_tiny_checkpoint(env.folders.models / "checkpoints" / "sd1.safetensors", "sd1", seed=4)
    return run(env, "CheckpointLoaderSimple", ckpt_name="sd1.safetensors")


def test_text_box_apply_builds_comfyuis_position_params(env, sd1):
    _model, clip, _vae = sd1
    gligen = run(env, "GLIGENLoader", gligen_name=save_gligen(env.folders.models / "gligen" / "g.safetensors").name)
    cond = run(env, "CLIPTextEncode", clip=clip, text="a scene")
    one = run(env, "GLIGENTextBoxApply", conditioning_to=cond, clip=clip, gligen_textbox_model=gligen,
              text="a red circle", width=36, height=64, x=8, y=16)
    two = run(env, "GLIGENTextBoxApply", conditioning_to=one, clip=clip, gligen_textbox_model=gligen,
              text="a cat", width=64, height=64, x=0, y=0)
    assert "gligen" not in cond[0][1] and len(one[0][1]["gligen"][2]) == 1
    kind, _ref, boxes = two[0][1]["gligen"]
    assert kind == "position" and [b[1:] for b in boxes] == [(8, 4, 2, 1), (8, 8, 0, 0)]  # (h, w, y, x) // 8
    # the phrase's pooled output (CLIP-L's pooled is not projected: as CLIPTextEncode's)
    pooled = run(env, "CLIPTextEncode", clip=clip, text="a red circle")[0][1]["pooled_output"]
    torch.testing.assert_close(boxes[0][0], pooled)
    # Gligen.set_position: boxes as (x1, y1, x2, y2) fractions of the latent, 30 slots, masks for the used ones
    objs = {}
    module = gligen.module
    module.position_net.forward = (lambda f: lambda b, m, e: objs.update(b=b, m=m, e=e) or f(b, m, e))(
        module.position_net.forward)
    module.set_position((2, 4, 8, 16), boxes, torch.device("cpu"))
    assert objs["b"].shape == (2, MAX_OBJS, 4) and objs["m"][0, :3].tolist() == [1, 1, 0]
    assert objs["b"][0, 0].tolist() == pytest.approx([1 / 16, 2 / 8, 5 / 16, 10 / 8])
    torch.testing.assert_close(objs["e"][1, 1], boxes[1][0][0])


def sample(env, model, positive, negative, seed=3):
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    return run(env, "KSampler", model=model, seed=seed, steps=3, cfg=4.0, sampler_name="euler", scheduler="normal",
               positive=positive, negative=negative, latent_image=latent, denoise=1.0)["samples"]


def test_boxes_steer_the_sampler_and_zero_gates_do_not(env, sd1):
    model, clip, _vae = sd1
    save_gligen(env.folders.models / "gligen" / "g.safetensors", seed=2)
    save_gligen(env.folders.models / "gligen" / "zero.safetensors", seed=2, gate=0.0)
    gligen = run(env, "GLIGENLoader", gligen_name="g.safetensors")
    zero = run(env, "GLIGENLoader", gligen_name="zero.safetensors")
    positive, negative = run(env, "CLIPTextEncode", clip=clip, text="a scene"), run(env, "CLIPTextEncode", clip=clip, text="")
    plain = sample(env, model, positive, negative)

    def boxed(g, x, y):
        return run(env, "GLIGENTextBoxApply", conditioning_to=positive, clip=clip, gligen_textbox_model=g,
                   text="a red circle", width=32, height=32, x=x, y=y)

    left, right = sample(env, model, boxed(gligen, 0, 0), negative), sample(env, model, boxed(gligen, 32, 32), negative)
    assert torch.equal(sample(env, model, boxed(gligen, 0, 0), negative), left)
    # tanh(0) gates: the fusers add nothing, whatever the boxes (up to float rounding: a GLIGEN cond runs in
    # its own forward, not batched with the uncond, as ComfyUI's can_concat_cond decides)
    gated_off = sample(env, model, boxed(zero, 0, 0), negative)
    torch.testing.assert_close(gated_off, plain, rtol=1e-4, atol=1e-3)
    rounding = (gated_off - plain).abs().mean()
    assert (left - plain).abs().mean() > 1000 * rounding and (left - right).abs().mean() > 1000 * rounding
    # the patch lives only in that call: the plain model is untouched afterwards
    assert torch.equal(sample(env, model, positive, negative), plain)
