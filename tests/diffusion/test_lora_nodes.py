"""LoraLoader / LoraLoaderModelOnly on a tiny real checkpoint: strengths, stacking, exact restore,
CLIP patches, warnings and errors."""
from __future__ import annotations

import os

import pytest
import torch

from nodegraph import ModelFileError
from nodegraph.node import Context
from nodes.diffusion.checkpoint.modules import clip_core
from nodes.diffusion.lora import LoraError, save_lora
from tests.diffusion.nodecall import run
from tests.diffusion.test_lora_formats import KOHYA_TEXT_BLOCKS, KOHYA_UNET_BLOCKS, factors, text_path, trained_layers
from tests.tiny_models import save_tiny_checkpoint


def kohya_lora(model, clip, seed: int, rank: int = 2, unet: bool = True, text: bool = True) -> dict:
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    groups = []
    if unet:
        groups.append(("lora_unet_", trained_layers(model.unet, KOHYA_UNET_BLOCKS)))
    if text:
        core = clip_core(clip.encoders[0])
        groups.append(("lora_te_", {text_path(k): v for k, v in trained_layers(core, KOHYA_TEXT_BLOCKS).items()}))
    for prefix, layers in groups:
        for path, m in layers.items():
            name = prefix + path.replace(".", "_")
            tensors.update({f"{name}.lora_{c}.weight": t * 3 for c, t in factors(m, rank, g).items()})
            tensors[f"{name}.alpha"] = torch.tensor(float(rank))
    return tensors


@pytest.fixture
def loaded(env):
    save_tiny_checkpoint(env.folders.models / "checkpoints" / "tiny.safetensors", "sd1", seed=11)
    model, clip, vae = run(env, "CheckpointLoaderSimple", ckpt_name="tiny.safetensors")
    loras = env.folders.models / "loras"
    save_lora(loras / "a.safetensors", kohya_lora(model.module, clip.module, seed=1))
    save_lora(loras / "b.safetensors", kohya_lora(model.module, clip.module, seed=2))
    return model, clip


def unet_out(env, handle) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    with env.devices.use(handle) as m, torch.no_grad():
        return m.apply(x, torch.tensor([500.0]), ctx)


def weights(env, handle) -> dict[str, torch.Tensor]:
    with env.devices.use(handle) as m:
        return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_node_declarations_match_comfyui(env):
    spec = env.registry.get("LoraLoader")
    assert [i.name for i in spec.inputs] == ["model", "clip", "lora_name", "strength_model", "strength_clip"]
    assert [o.name for o in spec.outputs] == ["MODEL", "CLIP"]
    for inp in spec.inputs[3:]:
        assert (inp.type.name, inp.default, inp.min, inp.max, inp.step) == ("FLOAT", 1.0, -100.0, 100.0, 0.01)
    assert spec.input_by_name["lora_name"].folder == "loras"
    only = env.registry.get("LoraLoaderModelOnly")
    assert [i.name for i in only.inputs] == ["model", "lora_name", "strength_model"]
    assert [o.type.name for o in only.outputs] == ["MODEL"]


def test_strength_zero_is_no_lora_exactly(env, loaded):
    model, clip = loaded
    base = unet_out(env, model)
    m0, c0 = run(env, "LoraLoader", model=model, clip=clip, lora_name="a.safetensors", strength_model=0.0, strength_clip=0.0)
    assert m0 is model and c0 is clip
    m1 = run(env, "LoraLoader", model=model, clip=clip, lora_name="a.safetensors", strength_model=1.0, strength_clip=0.0)[0]
    assert not torch.allclose(unet_out(env, m1), base, atol=1e-4)  # the LoRA does change the model
    assert torch.equal(unet_out(env, run(env, "LoraLoaderModelOnly", model=model, lora_name="a.safetensors",
                                          strength_model=0.0)), base)
    assert torch.equal(unet_out(env, model), base)  # and the base handle is still the base


def test_stacking_adds_the_deltas_and_removing_one_restores_exactly(env, loaded):
    model, clip = loaded
    base_w = weights(env, model)
    a = run(env, "LoraLoaderModelOnly", model=model, lora_name="a.safetensors", strength_model=0.7)
    ab = run(env, "LoraLoaderModelOnly", model=a, lora_name="b.safetensors", strength_model=-0.4)
    a_w, ab_w = weights(env, a), weights(env, ab)
    key = "unet.down_blocks.0.resnets.0.conv1.weight"
    da, db = dict((k, p) for k, _, p in a.patches)[key], dict((k, p) for k, _, p in ab.patches[len(a.patches):])[key]
    torch.testing.assert_close(ab_w[key], base_w[key] + 0.7 * da(base_w[key]) - 0.4 * db(base_w[key]))
    torch.testing.assert_close(a_w[key], base_w[key] + 0.7 * da(base_w[key]))
    assert not torch.equal(ab_w[key], a_w[key])
    again = weights(env, a)  # dropping b after using the stack: exactly the single-LoRA weights
    assert all(torch.equal(again[k], a_w[k]) for k in a_w)
    restored = weights(env, model)  # and the base, bit for bit
    assert all(torch.equal(restored[k], base_w[k]) for k in base_w)
    assert len(ab.patches) == len(a.patches) * 2 and model.patches == ()


def test_clip_lora_changes_the_conditioning(env, loaded):
    model, clip = loaded
    [(base, _)] = run(env, "CLIPTextEncode", clip=clip, text="a red circle")
    _, lclip = run(env, "LoraLoader", model=model, clip=clip, lora_name="a.safetensors", strength_model=1.0,
                   strength_clip=1.0)
    [(patched, _)] = run(env, "CLIPTextEncode", clip=lclip, text="a red circle")
    assert (patched - base).abs().max() > 1e-3
    _, zero = run(env, "LoraLoader", model=model, clip=clip, lora_name="a.safetensors", strength_model=1.0,
                  strength_clip=0.0)
    [(same, _)] = run(env, "CLIPTextEncode", clip=zero, text="a red circle")
    assert torch.equal(same, base)


def warnings_of(env, name, **inputs) -> tuple[object, list[str]]:
    events = []
    ctx = Context(env, node_id="7", node_type=name, emit=lambda kind, data: events.append((kind, data)))
    out = env.registry.get(name).cls().run(ctx, **inputs)
    return out, [d["message"] for kind, d in events if kind == "warning"]


def test_unmatched_keys_give_a_warning_and_the_rest_applies(env, loaded):
    model, clip = loaded
    tensors = kohya_lora(model.module, clip.module, seed=3, text=False)
    tensors.update({f"lora_unet_down_blocks_7_attentions_{i}_proj_in.lora_down.weight": torch.zeros(1, 4) for i in range(7)})
    save_lora(env.folders.models / "loras" / "partly.safetensors", tensors)
    out, messages = warnings_of(env, "LoraLoaderModelOnly", model=model, lora_name="partly.safetensors", strength_model=1.0)
    [message] = messages
    assert "partly.safetensors" in message and "7 keys match no weight" in message
    assert "lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight" in message
    assert len(out[0].patches) == len(trained_layers(model.module.unet, KOHYA_UNET_BLOCKS))
    _, clean = warnings_of(env, "LoraLoader", model=model, clip=clip, lora_name="a.safetensors",
                           strength_model=1.0, strength_clip=1.0)
    assert clean == []
    save_lora(env.folders.models / "loras" / "te_only.safetensors", kohya_lora(model.module, clip.module, 4, unet=False))
    out, messages = warnings_of(env, "LoraLoaderModelOnly", model=model, lora_name="te_only.safetensors", strength_model=1.0)
    assert out[0].patches == () and "only text-encoder weights" in messages[0]


def test_bad_files_give_errors_naming_the_lora(env, loaded):
    model, clip = loaded
    (env.folders.models / "loras" / "broken.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(ModelFileError, match="broken.safetensors: not a readable safetensors file"):
        run(env, "LoraLoader", model=model, clip=clip, lora_name="broken.safetensors", strength_model=1.0, strength_clip=1.0)
    save_lora(env.folders.models / "loras" / "checkpoint.safetensors", {"model.diffusion_model.out.2.weight": torch.zeros(2)})
    with pytest.raises(LoraError, match="checkpoint.safetensors.*not a LoRA"):
        run(env, "LoraLoaderModelOnly", model=model, lora_name="checkpoint.safetensors", strength_model=1.0)


def test_files_are_cached_by_stamp_and_reread_when_changed(env, loaded):
    model, clip = loaded
    spec = env.registry.get("LoraLoader")
    before = spec.cls.fingerprint(env, lora_name="a.safetensors")
    m1 = run(env, "LoraLoaderModelOnly", model=model, lora_name="a.safetensors", strength_model=1.0)
    m2 = run(env, "LoraLoaderModelOnly", model=model, lora_name="a.safetensors", strength_model=1.0)
    assert m1.patches[0][2].up is m2.patches[0][2].up  # one read, shared
    path = env.folders.models / "loras" / "a.safetensors"
    save_lora(path, kohya_lora(model.module, clip.module, seed=9))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert spec.cls.fingerprint(env, lora_name="a.safetensors") != before
    m3 = run(env, "LoraLoaderModelOnly", model=model, lora_name="a.safetensors", strength_model=1.0)
    assert not torch.equal(m3.patches[0][2].up, m1.patches[0][2].up)
