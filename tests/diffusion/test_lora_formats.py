"""LoRA key mapping: kohya/A1111, diffusers/peft and LyCORIS files -> weight patches.

The full-size tests build SD1.5's U-Net and CLIP-L on the meta device (no weight memory) and write
LoRA files the way kohya's sd-scripts and diffusers/peft name them, for every layer those trainers
touch (LoCon convs included): every key must map, and every patch must fit its weight.
"""
from __future__ import annotations

import json

import pytest
import torch

from nodes.diffusion.checkpoint.layout import reference_config
from nodes.diffusion.checkpoint.modules import build_clip, build_unet, clip_core
from nodes.diffusion.checkpoint.to_ldm import unet_to_ldm
from nodes.diffusion.lora import build_patches, read_lora, save_lora
from nodes.diffusion.lora_keys import split_key, unet_targets
from nodes.diffusion.lora_patches import DoRA, LoHa, LoKr, LowRank
from nodes.diffusion.models import ClipModel, DiffusionModel
from tests.tiny_models import tiny_components

# the modules kohya's LoCon trains (sd-scripts' UNET_TARGET_REPLACE_MODULE + the conv 3x3 set) and its
# text-encoder set
KOHYA_UNET_BLOCKS = {"Transformer2DModel", "ResnetBlock2D", "Downsample2D", "Upsample2D"}
KOHYA_TEXT_BLOCKS = {"CLIPAttention", "CLIPMLP"}


def trained_layers(root: torch.nn.Module, blocks: set[str]) -> dict[str, torch.nn.Module]:
    out = {}
    for name, module in root.named_modules():
        if type(module).__name__ in blocks:
            for sub, m in module.named_modules():
                if sub and isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                    out[f"{name}.{sub}"] = m
    return out


def factors(m: torch.nn.Module, rank: int, g: torch.Generator, tucker: bool = False) -> dict[str, torch.Tensor]:
    """kohya-shaped factors: linear [r, in] / [out, r]; conv k x k down, 1x1 up (LoCon); Tucker: 1x1 down,
    k x k mid."""
    def rnd(*shape):
        return (torch.randn(*shape, generator=g) * 0.1).half()
    if isinstance(m, torch.nn.Linear):
        return {"down": rnd(rank, m.in_features), "up": rnd(m.out_features, rank)}
    k = m.kernel_size
    if tucker and k != (1, 1):
        return {"down": rnd(rank, m.in_channels, 1, 1), "mid": rnd(rank, rank, *k), "up": rnd(m.out_channels, rank, 1, 1)}
    return {"down": rnd(rank, m.in_channels, *k), "up": rnd(m.out_channels, rank, 1, 1)}


def text_path(core_relative: str) -> str:
    return "text_model." + core_relative  # as transformers 4 / kohya / diffusers name CLIPTextModel's layers


@pytest.fixture(scope="module")
def sd15():
    """Full-size SD1.5 MODEL and CLIP modules on the meta device."""
    unet = build_unet(reference_config("sd15_unet"))
    text = build_clip(reference_config("sd15_text_encoder"), with_projection=False)
    return DiffusionModel(unet, "sd1", config=reference_config("sd15_unet")), ClipModel([text], "sd1")


def shapes_of(module: torch.nn.Module) -> dict[str, tuple]:
    return {k: tuple(p.shape) for k, p in module.named_parameters()}


def assert_patches_fit(patches: dict, module: torch.nn.Module) -> None:
    shapes = shapes_of(module)
    for key, patch in patches.items():
        assert key in shapes, key
        assert tuple(patch.shape) == shapes[key], key
        # the delta as the device manager computes it, on a meta weight: shape only, no memory
        assert tuple(patch(torch.empty(shapes[key], device="meta")).shape) == shapes[key], key


def test_kohya_file_for_full_size_sd15_maps_every_key(sd15, tmp_path):
    model, clip = sd15
    g = torch.Generator().manual_seed(0)
    unet_layers = trained_layers(model.unet, KOHYA_UNET_BLOCKS)
    text_layers = trained_layers(clip.encoders[0], KOHYA_TEXT_BLOCKS)
    # SD1.5: 16 transformers x 12 layers; 22 resnets x 3 + 14 shortcuts + 6 down/up-sampling convs; 12 x 6 text layers
    assert len(unet_layers) == 192 + 86 and len(text_layers) == 72
    tensors = {}
    for prefix, layers in (("lora_unet_", unet_layers), ("lora_te_", {text_path(k): v for k, v in text_layers.items()})):
        for i, (path, m) in enumerate(layers.items()):
            name = prefix + path.replace(".", "_")
            parts = factors(m, 1 + i % 2, g, tucker=prefix == "lora_unet_" and path.startswith("down_blocks.1."))
            tensors.update({f"{name}.lora_{c}.weight": t for c, t in parts.items()})
            tensors[f"{name}.alpha"] = torch.tensor(1.0 + i % 2, dtype=torch.float16)
    assert any(".lora_mid." in k for k in tensors)
    path = save_lora(tmp_path / "kohya.safetensors", tensors, {"ss_network_module": "lycoris.kohya"})
    patches = build_patches(read_lora(path), model=model, clip=clip)
    assert patches.unmatched == [] and patches.unsupported == [] and patches.mismatched == []
    assert len(patches.model) == len(unet_layers) and len(patches.clip) == len(text_layers)
    assert_patches_fit(patches.model, model)
    assert_patches_fit(patches.clip, clip)
    q = patches.model["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"]
    assert isinstance(q, LowRank) and q.scale == 1.0  # alpha / rank


def test_diffusers_peft_file_for_full_size_sd15_maps_every_key(sd15, tmp_path):
    model, clip = sd15
    g = torch.Generator().manual_seed(1)
    tensors = {}
    for prefix, layers in (("unet.", trained_layers(model.unet, KOHYA_UNET_BLOCKS)),
                           ("text_encoder.", {text_path(k): v for k, v in
                                              trained_layers(clip.encoders[0], KOHYA_TEXT_BLOCKS).items()})):
        for path, m in layers.items():
            parts = factors(m, 2, g)
            tensors[f"{prefix}{path}.lora_A.weight"] = parts["down"]
            tensors[f"{prefix}{path}.lora_B.weight"] = parts["up"]
    meta = {"lora_adapter_metadata": json.dumps({"unet.r": 2, "unet.lora_alpha": 4, "text_encoder.r": 2,
                                                 "text_encoder.lora_alpha": 1,
                                                 "text_encoder.alpha_pattern": {"fc1": 8}})}
    patches = build_patches(read_lora(save_lora(tmp_path / "pytorch_lora_weights.safetensors", tensors, meta)),
                            model=model, clip=clip)
    assert patches.unmatched == [] and patches.unsupported == [] and patches.mismatched == []
    assert len(patches.model) + len(patches.clip) == len(tensors) // 2
    assert_patches_fit(patches.model, model)
    assert_patches_fit(patches.clip, clip)
    assert patches.model["unet.mid_block.resnets.0.conv1.weight"].scale == 2.0  # lora_alpha / r
    assert patches.clip["encoders.0.encoder.layers.3.mlp.fc2.weight"].scale == 0.5
    assert patches.clip["encoders.0.encoder.layers.3.mlp.fc1.weight"].scale == 4.0  # alpha_pattern


@pytest.mark.parametrize("kohya, diffusers", [
    # SD1.5 original (LDM) names, as A1111-era and SDXL-style kohya files write them
    ("input_blocks_1_1_transformer_blocks_0_attn1_to_q", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"),
    ("input_blocks_3_0_op", "down_blocks.0.downsamplers.0.conv"),
    ("input_blocks_4_0_in_layers_2", "down_blocks.1.resnets.0.conv1"),
    ("input_blocks_4_0_skip_connection", "down_blocks.1.resnets.0.conv_shortcut"),
    ("middle_block_1_proj_out", "mid_block.attentions.0.proj_out"),
    ("middle_block_2_emb_layers_1", "mid_block.resnets.1.time_emb_proj"),
    ("output_blocks_2_1_conv", "up_blocks.0.upsamplers.0.conv"),
    ("output_blocks_5_2_conv", "up_blocks.1.upsamplers.0.conv"),
    ("output_blocks_11_1_transformer_blocks_0_ff_net_2", "up_blocks.3.attentions.2.transformer_blocks.0.ff.net.2"),
    ("output_blocks_3_0_out_layers_3", "up_blocks.1.resnets.0.conv2"),
    ("time_embed_0", "time_embedding.linear_1"),
    # diffusers names (kohya's SD1 naming)
    ("down_blocks_2_attentions_1_transformer_blocks_0_attn2_to_out_0", "down_blocks.2.attentions.1.transformer_blocks.0.attn2.to_out.0"),
])
def test_known_kohya_unet_names(sd15, kohya, diffusers):
    model, _ = sd15
    [target] = unet_targets(model)[f"lora_unet_{kohya}"]
    assert target.module == f"unet.{diffusers}"


def test_split_key_grammar():
    assert split_key("lora_unet_x_to_q.lora_down.weight") == ("lora_unet_x_to_q", "down")
    assert split_key("unet.a.attn1.processor.to_out_lora.up.weight") == ("unet.a.attn1.to_out.0", "up")
    assert split_key("text_encoder.text_model.encoder.layers.0.self_attn.to_k_lora.down.weight") == \
        ("text_encoder.text_model.encoder.layers.0.self_attn.k_proj", "down")
    assert split_key("text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_linear_layer.up.weight") == \
        ("text_encoder.text_model.encoder.layers.0.mlp.fc1", "up")
    assert split_key("base_model.model.down_blocks.0.attentions.0.proj_in.lora_A.default.weight") == \
        ("base_model.model.down_blocks.0.attentions.0.proj_in", "down")
    assert split_key("lora_unet_a.hada_w1_a") == ("lora_unet_a", "hada_w1_a")
    assert split_key("lora_unet_a.diff_b") == ("lora_unet_a", "diff_b")
    assert split_key("something_else") is None


# --------------------------------------------------------------------------------- tiny real models

@pytest.fixture(scope="module")
def tiny():
    parts = tiny_components("sd1", seed=3)
    model = DiffusionModel(parts["unet"], "sd1", config=dict(parts["unet"].config))
    return model, ClipModel([parts["text_encoder"]], "sd1")


def deltas(patches: dict, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    params = dict(module.named_parameters())
    return {k: p(params[k].detach().float()) for k, p in patches.items()}


def kohya_tensors(model, clip, seed=0, rank=2, ldm=False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    unet_layers = trained_layers(model.unet, KOHYA_UNET_BLOCKS)
    names = dict(zip(unet_layers, unet_layers))
    if ldm:
        names = {d: k.removesuffix(".weight") for k, d in
                 unet_to_ldm({f"{p}.weight": p for p in unet_layers}, model.config).items()}
    tensors = {}
    for path, m in unet_layers.items():
        name = "lora_unet_" + names[path].replace(".", "_")
        parts = factors(m, rank, g)
        tensors.update({f"{name}.lora_{c}.weight": t for c, t in parts.items()})
        tensors[f"{name}.alpha"] = torch.tensor(float(rank) / 2)
    for path, m in trained_layers(clip.encoders[0], KOHYA_TEXT_BLOCKS).items():
        name = "lora_te_" + text_path(path).replace(".", "_")
        parts = factors(m, rank, g)
        tensors.update({f"{name}.lora_{c}.weight": t for c, t in parts.items()})
    return tensors


def test_ldm_and_diffusers_names_give_the_same_patches(tiny):
    model, clip = tiny
    a = build_patches(kohya_tensors(model, clip, ldm=False), model=model, clip=clip)
    b = build_patches(kohya_tensors(model, clip, ldm=True), model=model, clip=clip)
    assert not a.unmatched and not b.unmatched and a.model.keys() == b.model.keys()
    da, db = deltas(a.model, model), deltas(b.model, model)
    assert all(torch.equal(da[k], db[k]) for k in da)
    assert len(a.clip) == 3 * 6  # 3 layers x (q, k, v, out, fc1, fc2), scale 1 without alpha


def test_the_low_rank_delta_is_up_times_down_times_alpha_over_rank(tiny):
    model, clip = tiny
    lin = model.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k
    conv = model.unet.down_blocks[0].resnets[0].conv1
    down, up = torch.randn(4, lin.in_features), torch.randn(lin.out_features, 4)
    cdown, cup = torch.randn(4, conv.in_channels, 3, 3), torch.randn(conv.out_channels, 4, 1, 1)
    p = build_patches({"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": down,
                       "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": up,
                       "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.alpha": torch.tensor(2.0),
                       "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight": cdown,
                       "lora_unet_down_blocks_0_resnets_0_conv1.lora_up.weight": cup}, model=model)
    d = deltas(p.model, model)
    torch.testing.assert_close(d["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"], up @ down * 0.5)
    # a LoCon conv delta is the composition of the two convs: check it on an input
    x = torch.randn(1, conv.in_channels, 6, 6)
    composed = torch.nn.functional.conv2d(torch.nn.functional.conv2d(x, cdown, padding=1), cup)
    torch.testing.assert_close(torch.nn.functional.conv2d(x, d["unet.down_blocks.0.resnets.0.conv1.weight"], padding=1),
                               composed, atol=1e-4, rtol=1e-4)


def test_diffusers_old_forms_and_peft_prefix_match_the_peft_keys(tiny):
    model, clip = tiny
    g = torch.Generator().manual_seed(5)
    attn = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"
    te = "text_model.encoder.layers.1.self_attn"
    q = model.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    o = clip.encoders[0].encoder.layers[1].self_attn.out_proj if hasattr(clip.encoders[0], "encoder") else \
        clip.encoders[0].text_model.encoder.layers[1].self_attn.out_proj
    fq, fo = factors(q, 2, g), factors(o, 2, g)
    peft = {f"unet.{attn}.to_q.lora_A.weight": fq["down"], f"unet.{attn}.to_q.lora_B.weight": fq["up"],
            f"text_encoder.{te}.out_proj.lora_A.weight": fo["down"], f"text_encoder.{te}.out_proj.lora_B.weight": fo["up"]}
    old = {f"unet.{attn}.processor.to_q_lora.down.weight": fq["down"], f"unet.{attn}.processor.to_q_lora.up.weight": fq["up"],
           f"text_encoder.{te}.to_out_lora.down.weight": fo["down"], f"text_encoder.{te}.to_out_lora.up.weight": fo["up"]}
    unet_peft = {f"base_model.model.{attn}.to_q.lora_A.weight": fq["down"],
                 f"base_model.model.{attn}.to_q.lora_B.weight": fq["up"]}
    text_peft = {f"base_model.model.{te}.out_proj.lora_A.weight": fo["down"],
                 f"base_model.model.{te}.out_proj.lora_B.weight": fo["up"]}
    ref = build_patches(peft, model=model, clip=clip)
    assert len(ref.model) == 1 and len(ref.clip) == 1 and not ref.unmatched
    for other in (old, unet_peft, text_peft):
        p = build_patches(other, model=model, clip=clip)
        assert not p.unmatched
        for side, module in (("model", model), ("clip", clip)):
            got = deltas(getattr(p, side), module)
            want = deltas(getattr(ref, side), module)
            assert all(torch.equal(got[k], want[k]) for k in got) and set(got) <= set(want)


def test_sdxl_kohya_te1_te2_and_ldm_unet_names():
    parts = tiny_components("sdxl", seed=4)
    model = DiffusionModel(parts["unet"], "sdxl", config=dict(parts["unet"].config))
    clip = ClipModel([parts["text_encoder"], parts["text_encoder_2"]], "sdxl")
    g = torch.Generator().manual_seed(6)
    tensors = {}
    layers = trained_layers(model.unet, KOHYA_UNET_BLOCKS)
    ldm = {d: k.removesuffix(".weight") for k, d in unet_to_ldm({f"{p}.weight": p for p in layers}, model.config).items()}
    for path, m in layers.items():
        tensors.update({f"lora_unet_{ldm[path].replace('.', '_')}.lora_{c}.weight": t for c, t in factors(m, 1, g).items()})
    for i, encoder in enumerate(clip.encoders):
        core = clip_core(encoder)
        for path, m in trained_layers(core, KOHYA_TEXT_BLOCKS).items():
            name = f"lora_te{i + 1}_" + text_path(path).replace(".", "_")
            tensors.update({f"{name}.lora_{c}.weight": t for c, t in factors(m, 1, g).items()})
    p = build_patches(tensors, model=model, clip=clip)
    assert not p.unmatched and not p.mismatched
    assert len(p.model) == len(layers) and len(p.clip) == 2 * 3 * 6
    assert {k.split(".")[1] for k in p.clip} == {"0", "1"}  # both encoders patched


def test_lycoris_loha_lokr_full_diff_and_dora(tiny):
    model, clip = tiny
    lin = model.unet.down_blocks[0].attentions[0].transformer_blocks[0].ff.net[2]  # Linear 128 -> 32
    conv = model.unet.down_blocks[0].resnets[0].conv2  # Conv 32 -> 32, 3x3
    out, inn = lin.weight.shape
    w1a, w1b, w2a, w2b = torch.randn(out, 2), torch.randn(2, inn), torch.randn(out, 2), torch.randn(2, inn)
    k1, k2a, k2b = torch.randn(4, 4), torch.randn(8, 2), torch.randn(2, 8 * 9)  # conv kron: (4*8) x (4*8) x 3 x 3
    diff = torch.randn_like(conv.bias)
    magnitude = torch.rand(out) + 0.5
    ff = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_ff_net_2"
    rc = "lora_unet_down_blocks_0_resnets_0_conv2"
    loha = {f"{ff}.hada_w1_a": w1a, f"{ff}.hada_w1_b": w1b, f"{ff}.hada_w2_a": w2a, f"{ff}.hada_w2_b": w2b,
            f"{ff}.alpha": torch.tensor(1.0)}
    lokr = {f"{rc}.lokr_w1": k1, f"{rc}.lokr_w2_a": k2a, f"{rc}.lokr_w2_b": k2b, f"{rc}.alpha": torch.tensor(1.0),
            f"{rc}.diff_b": diff}
    p = build_patches({**loha, **lokr}, model=model)
    assert not p.unmatched and not p.mismatched
    assert isinstance(p.model[f"unet.{'down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2'}.weight"], LoHa)
    assert isinstance(p.model["unet.down_blocks.0.resnets.0.conv2.weight"], LoKr)
    d = deltas(p.model, model)
    torch.testing.assert_close(d["unet.down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight"],
                               (w1a @ w1b) * (w2a @ w2b) * 0.5)
    torch.testing.assert_close(d["unet.down_blocks.0.resnets.0.conv2.weight"],
                               torch.kron(k1[:, :, None, None], (k2a @ k2b).reshape(8, 8, 3, 3)) * 0.5)
    torch.testing.assert_close(d["unet.down_blocks.0.resnets.0.conv2.bias"], diff)
    # DoRA (peft: one magnitude per output row): w' = m * (w + BA) / ||w + BA||_row
    down, up = torch.randn(2, inn), torch.randn(out, 2) * 0.1
    p = build_patches({f"{ff}.lora_down.weight": down, f"{ff}.lora_up.weight": up, f"{ff}.dora_scale": magnitude},
                      model=model)
    patch = p.model["unet.down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight"]
    assert isinstance(patch, DoRA)
    w = lin.weight.detach().float()
    combined = w + up @ down
    want = magnitude[:, None] * combined / combined.norm(dim=1, keepdim=True)
    torch.testing.assert_close(w + patch(w), want, atol=1e-5, rtol=1e-5)


def test_unknown_and_unsupported_keys_are_reported_not_dropped(tiny):
    model, clip = tiny
    g = torch.Generator().manual_seed(7)
    q = model.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    good = {f"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_{c}.weight": t
            for c, t in factors(q, 1, g).items()}
    bad = {"lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight": torch.zeros(1, 4),
           "lora_unet_down_blocks_9_attentions_0_proj_in.lora_up.weight": torch.zeros(4, 1),
           "lora_unet_mid_block_attentions_0_norm.w_norm": torch.zeros(4),
           "some.random.tensor": torch.zeros(1),
           "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k.lora_down.weight": torch.zeros(1, 7),
           "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k.lora_up.weight": torch.zeros(32, 1),
           "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.zeros(1, 32),
           "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": torch.zeros(64, 1)}
    p = build_patches({**good, **bad}, model=model)
    assert len(p.model) == 1
    assert sorted(p.unmatched) == sorted([k for k in bad if "blocks_9" in k] + ["some.random.tensor"])
    assert p.unsupported == ["lora_unet_mid_block_attentions_0_norm.w_norm"]
    assert len(p.mismatched) == 2 and len(p.clip_keys) == 2  # to_k's rank-1 factors do not fit; te keys without a CLIP
    messages = p.problems("model")
    assert len(messages) == 3 and "3 keys match no weight of the model" in messages[0]
