"""Single-file checkpoints: full-size key sets (meta tensors), tiny round trips, diffusers folders, errors.

The full-size SD1.5 / SD2.1 / SDXL key sets are generated here from the ORIGINAL (ldm / sgm)
architecture description, independently of checkpoint/writer.py, so that loading them
proves the reader understands the real layout.
"""
from __future__ import annotations

import json

import pytest
import torch

from nodegraph import ModelFileError, read_weights
from nodes.diffusion.checkpoint.components import load_clip_file, load_unet_file, load_vae_file
from nodes.diffusion.checkpoint.diffusers_folder import save_diffusers_folder
from nodes.diffusion.checkpoint.layout import (HINTS_KEY, SD1_CLIP_PREFIX, SD2_CLIP_PREFIX, SDXL_CLIP_G_PREFIX,
                                              SDXL_CLIP_L_PREFIX, UNET_PREFIX, VAE_PREFIX, CheckpointError,
                                              reference_config)
from nodes.diffusion.checkpoint.modules import build_unet, clip_core
from nodes.diffusion.checkpoint.single_file import load_checkpoint, load_state_dict_checkpoint
from nodes.diffusion.checkpoint.to_ldm import clip_to_open_clip, unet_to_ldm, vae_to_ldm
from nodes.diffusion.checkpoint.writer import save_single_file
from tests.tiny_models import save_tiny_checkpoint, tiny_components

META = torch.device("meta")


# --------------------------------------------------------------------------------------------
# original-layout key sets, from the ldm/sgm module structure
# --------------------------------------------------------------------------------------------

class Shapes(dict):
    def add(self, key: str, *shape: int, dtype=torch.float16) -> None:
        self[key] = torch.empty(shape, dtype=dtype, device=META)

    def linear(self, key: str, out: int, inp: int, bias: bool = True) -> None:
        self.add(f"{key}.weight", out, inp)
        if bias:
            self.add(f"{key}.bias", out)

    def conv(self, key: str, out: int, inp: int, k: int) -> None:
        self.add(f"{key}.weight", out, inp, k, k)
        self.add(f"{key}.bias", out)

    def norm(self, key: str, ch: int) -> None:
        self.add(f"{key}.weight", ch)
        self.add(f"{key}.bias", ch)


def ldm_unet(prefix: str, mc: int, mult: list[int], res: int, attn_levels: set[int], depth: list[int],
             context: int, linear: bool, in_ch: int = 4, adm_in: int | None = None, mid_depth: int = 1) -> Shapes:
    s = Shapes()
    emb = mc * 4

    def resblock(p: str, cin: int, cout: int) -> None:
        s.norm(f"{p}.in_layers.0", cin)
        s.conv(f"{p}.in_layers.2", cout, cin, 3)
        s.linear(f"{p}.emb_layers.1", cout, emb)
        s.norm(f"{p}.out_layers.0", cout)
        s.conv(f"{p}.out_layers.3", cout, cout, 3)
        if cin != cout:
            s.conv(f"{p}.skip_connection", cout, cin, 1)

    def transformer(p: str, ch: int, n: int) -> None:
        s.norm(f"{p}.norm", ch)
        (s.linear if linear else (lambda k, o, i: s.conv(k, o, i, 1)))(f"{p}.proj_in", ch, ch)
        for d in range(n):
            b = f"{p}.transformer_blocks.{d}"
            for a, kv in (("attn1", ch), ("attn2", context)):
                s.linear(f"{b}.{a}.to_q", ch, ch, bias=False)
                s.linear(f"{b}.{a}.to_k", ch, kv, bias=False)
                s.linear(f"{b}.{a}.to_v", ch, kv, bias=False)
                s.linear(f"{b}.{a}.to_out.0", ch, ch)
            s.linear(f"{b}.ff.net.0.proj", ch * 8, ch)  # GEGLU: two halves of 4*ch
            s.linear(f"{b}.ff.net.2", ch, ch * 4)
            for k in (1, 2, 3):
                s.norm(f"{b}.norm{k}", ch)
        (s.linear if linear else (lambda k, o, i: s.conv(k, o, i, 1)))(f"{p}.proj_out", ch, ch)

    s.linear("time_embed.0", emb, mc)
    s.linear("time_embed.2", emb, emb)
    if adm_in:
        s.linear("label_emb.0.0", emb, adm_in)
        s.linear("label_emb.0.2", emb, emb)
    s.conv("input_blocks.0.0", mc, in_ch, 3)
    chans, ch, idx = [mc], mc, 1
    for level, m in enumerate(mult):
        for _ in range(res):
            resblock(f"input_blocks.{idx}.0", ch, m * mc)
            ch = m * mc
            if level in attn_levels:
                transformer(f"input_blocks.{idx}.1", ch, depth[level])
            chans.append(ch)
            idx += 1
        if level != len(mult) - 1:
            s.conv(f"input_blocks.{idx}.0.op", ch, ch, 3)
            chans.append(ch)
            idx += 1
    resblock("middle_block.0", ch, ch)
    transformer("middle_block.1", ch, mid_depth)
    resblock("middle_block.2", ch, ch)
    idx = 0
    for level in reversed(range(len(mult))):
        for i in range(res + 1):
            resblock(f"output_blocks.{idx}.0", ch + chans.pop(), mult[level] * mc)
            ch = mult[level] * mc
            slot = 1
            if level in attn_levels:
                transformer(f"output_blocks.{idx}.1", ch, depth[level])
                slot = 2
            if level and i == res:
                s.conv(f"output_blocks.{idx}.{slot}.conv", ch, ch, 3)
            idx += 1
    s.norm("out.0", ch)
    s.conv("out.2", 4, mc, 3)
    return Shapes({prefix + k: v for k, v in s.items()})


def ldm_vae(prefix: str, ch: int, mult: list[int], res: int, z: int = 4) -> Shapes:
    s = Shapes()

    def resnet(p: str, cin: int, cout: int) -> None:
        s.norm(f"{p}.norm1", cin)
        s.conv(f"{p}.conv1", cout, cin, 3)
        s.norm(f"{p}.norm2", cout)
        s.conv(f"{p}.conv2", cout, cout, 3)
        if cin != cout:
            s.conv(f"{p}.nin_shortcut", cout, cin, 1)

    def attention(p: str, c: int) -> None:
        s.norm(f"{p}.norm", c)
        for k in ("q", "k", "v", "proj_out"):
            s.conv(f"{p}.{k}", c, c, 1)

    s.conv("encoder.conv_in", ch, 3, 3)
    cin = ch
    for i, m in enumerate(mult):
        for b in range(res):
            resnet(f"encoder.down.{i}.block.{b}", cin, ch * m)
            cin = ch * m
        if i != len(mult) - 1:
            s.conv(f"encoder.down.{i}.downsample.conv", cin, cin, 3)
    for coder in ("encoder", "decoder"):
        c = ch * mult[-1]
        resnet(f"{coder}.mid.block_1", c, c)
        attention(f"{coder}.mid.attn_1", c)
        resnet(f"{coder}.mid.block_2", c, c)
    s.norm("encoder.norm_out", cin)
    s.conv("encoder.conv_out", 2 * z, cin, 3)
    s.conv("quant_conv", 2 * z, 2 * z, 1)
    s.conv("post_quant_conv", z, z, 1)
    s.conv("decoder.conv_in", cin, z, 3)
    for i in reversed(range(len(mult))):
        for b in range(res + 1):
            resnet(f"decoder.up.{i}.block.{b}", cin, ch * mult[i])
            cin = ch * mult[i]
        if i != 0:
            s.conv(f"decoder.up.{i}.upsample.conv", cin, cin, 3)
    s.norm("decoder.norm_out", cin)
    s.conv("decoder.conv_out", 3, cin, 3)
    return Shapes({prefix + k: v for k, v in s.items()})


def hf_clip(prefix: str, width: int, layers: int, inner: int, position_ids: bool = True) -> Shapes:
    s = Shapes()
    p = prefix + "text_model."
    s.add(p + "embeddings.token_embedding.weight", 49408, width)
    s.add(p + "embeddings.position_embedding.weight", 77, width)
    if position_ids:  # present in most SD1 checkpoints
        s.add(p + "embeddings.position_ids", 1, 77, dtype=torch.int64)
    for i in range(layers):
        b = f"{p}encoder.layers.{i}."
        for k in ("q", "k", "v", "out"):
            s.linear(f"{b}self_attn.{k}_proj", width, width)
        s.norm(b + "layer_norm1", width)
        s.norm(b + "layer_norm2", width)
        s.linear(b + "mlp.fc1", inner, width)
        s.linear(b + "mlp.fc2", width, inner)
    s.norm(p + "final_layer_norm", width)
    return s


def open_clip(prefix: str, width: int, layers: int, inner: int, proj: int) -> Shapes:
    s = Shapes()
    s.add(prefix + "positional_embedding", 77, width)
    s.add(prefix + "token_embedding.weight", 49408, width)
    for i in range(layers):
        b = f"{prefix}transformer.resblocks.{i}."
        s.norm(b + "ln_1", width)
        s.add(b + "attn.in_proj_weight", 3 * width, width)
        s.add(b + "attn.in_proj_bias", 3 * width)
        s.linear(b + "attn.out_proj", width, width)
        s.norm(b + "ln_2", width)
        s.linear(b + "mlp.c_fc", inner, width)
        s.linear(b + "mlp.c_proj", width, inner)
    s.norm(prefix + "ln_final", width)
    s.add(prefix + "text_projection", width, proj)
    s.add(prefix + "logit_scale")
    return s


def training_leftovers() -> Shapes:
    """Keys real checkpoints carry that are no model weight (schedule buffers, EMA bookkeeping)."""
    s = Shapes()
    for k in ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod"):
        s.add(k, 1000, dtype=torch.float32)
    s.add("model_ema.decay", dtype=torch.float32)
    return s


def sd15_keys(in_ch: int = 4) -> Shapes:
    return Shapes({**ldm_unet(UNET_PREFIX, 320, [1, 2, 4, 4], 2, {0, 1, 2}, [1, 1, 1, 1], 768, False, in_ch),
                   **ldm_vae(VAE_PREFIX, 128, [1, 2, 4, 4], 2),
                   **hf_clip(SD1_CLIP_PREFIX, 768, 12, 3072), **training_leftovers()})


def sd21_keys() -> Shapes:
    return Shapes({**ldm_unet(UNET_PREFIX, 320, [1, 2, 4, 4], 2, {0, 1, 2}, [1, 1, 1, 1], 1024, True),
                   **ldm_vae(VAE_PREFIX, 128, [1, 2, 4, 4], 2),
                   **open_clip(SD2_CLIP_PREFIX, 1024, 24, 4096, 1024)})


def sdxl_keys() -> Shapes:
    return Shapes({**ldm_unet(UNET_PREFIX, 320, [1, 2, 4], 2, {1, 2}, [0, 2, 10], 2048, True, adm_in=2816, mid_depth=10),
                   **ldm_vae(VAE_PREFIX, 128, [1, 2, 4, 4], 2),
                   **hf_clip(SDXL_CLIP_L_PREFIX, 768, 12, 3072, position_ids=False),
                   **open_clip(SDXL_CLIP_G_PREFIX, 1280, 32, 5120, 1280)})


STRUCTURAL_UNET = ("in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels",
                   "layers_per_block", "cross_attention_dim", "attention_head_dim", "transformer_layers_per_block",
                   "use_linear_projection", "addition_embed_type", "addition_time_embed_dim",
                   "projection_class_embeddings_input_dim", "norm_num_groups", "upcast_attention")
STRUCTURAL_VAE = ("in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels",
                  "layers_per_block", "latent_channels", "norm_num_groups", "scaling_factor")
STRUCTURAL_CLIP = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                   "max_position_embeddings", "hidden_act")


def assert_matches_reference(inferred: dict, reference_name: str, fields) -> None:
    reference = reference_config(reference_name)
    for field in fields:
        assert inferred.get(field) == reference.get(field), (reference_name, field, inferred.get(field), reference.get(field))


def _param_count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("variant", ["sd15", "sd15_inpaint"])
def test_full_size_sd15_layout_loads_into_reference_architecture(variant):
    keys = sd15_keys(9 if variant == "sd15_inpaint" else 4)
    ckpt = load_state_dict_checkpoint(keys, name=f"{variant}.safetensors")  # strict: raises on missing/unexpected
    assert ckpt.family == "sd1" and ckpt.prediction_type == "eps"
    assert ckpt.inpaint == (variant == "sd15_inpaint")
    assert ckpt.unused_keys == []  # every U-Net / VAE / text-encoder weight of the file found a home
    assert_matches_reference(ckpt.unet_config, f"{variant}_unet", STRUCTURAL_UNET)
    assert_matches_reference(ckpt.vae_config, "sd15_vae", STRUCTURAL_VAE)
    assert_matches_reference(ckpt.text_encoder_configs[0], "sd15_text_encoder", STRUCTURAL_CLIP)
    # the reference architecture built from the shipped config has exactly the converted keys
    reference = build_unet(reference_config(f"{variant}_unet"))
    assert set(reference.state_dict()) == set(ckpt.unet.state_dict())
    assert _param_count(ckpt.unet) == _param_count(reference)
    assert 859_000_000 < _param_count(ckpt.unet) < 860_600_000  # SD1.5 U-Net: 859.5M parameters
    assert all(p.is_meta for p in ckpt.unet.parameters())  # nothing was materialised


def test_full_size_sd21_layout_loads_all_24_text_layers():
    keys = sd21_keys()
    ckpt = load_state_dict_checkpoint(keys, name="sd21.safetensors")
    assert ckpt.family == "sd2" and ckpt.unused_keys == []
    assert_matches_reference(ckpt.unet_config, "sd21_unet", STRUCTURAL_UNET)
    assert_matches_reference(ckpt.text_encoder_configs[0], "sd21_text_encoder", STRUCTURAL_CLIP + ("projection_dim",))
    assert set(build_unet(reference_config("sd21_unet")).state_dict()) == set(ckpt.unet.state_dict())


def test_sd2_v_prediction_detection():
    keys = sd21_keys()
    bias_key = UNET_PREFIX + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
    keys[bias_key] = torch.randn(320) * 0.5  # a trained v model's spread (ComfyUI's heuristic: std > 0.09)
    assert load_state_dict_checkpoint(keys, parts=("unet",)).prediction_type == "v"
    keys[bias_key] = torch.randn(320) * 0.01
    assert load_state_dict_checkpoint(keys, parts=("unet",)).prediction_type == "eps"
    keys["v_pred"] = torch.empty(0)  # ComfyUI's marker key wins
    assert load_state_dict_checkpoint(keys, parts=("unet",)).prediction_type == "v"


def test_full_size_sdxl_layout_loads_into_reference_architecture():
    keys = sdxl_keys()
    ckpt = load_state_dict_checkpoint(keys, name="sdxl.safetensors")
    assert ckpt.family == "sdxl" and ckpt.unused_keys == []
    assert_matches_reference(ckpt.unet_config, "sdxl_unet", STRUCTURAL_UNET)
    assert_matches_reference(ckpt.vae_config, "sdxl_vae", STRUCTURAL_VAE)
    assert_matches_reference(ckpt.text_encoder_configs[0], "sdxl_text_encoder", STRUCTURAL_CLIP)
    assert_matches_reference(ckpt.text_encoder_configs[1], "sdxl_text_encoder_2", STRUCTURAL_CLIP + ("projection_dim",))
    reference = build_unet(reference_config("sdxl_unet"))
    assert set(reference.state_dict()) == set(ckpt.unet.state_dict())
    assert 2_560_000_000 < _param_count(ckpt.unet) < 2_570_000_000  # SDXL base U-Net: 2.567B parameters
    assert type(ckpt.text_encoders[1]).__name__ == "CLIPTextModelWithProjection"


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_writer_produces_the_original_layout(family):
    """save_single_file's keys and shapes equal the ldm description of the same (tiny) architecture."""
    parts = tiny_components(family)
    sd: dict = {}
    unet_cfg = parts["unet"].config
    sd.update({UNET_PREFIX + k: v for k, v in unet_to_ldm(parts["unet"].state_dict(), unet_cfg).items()})
    sd.update({VAE_PREFIX + k: v for k, v in vae_to_ldm(parts["vae"].state_dict(), parts["vae"].config).items()})
    attn = {i for i, t in enumerate(unet_cfg.down_block_types) if t.startswith("CrossAttn")}
    depth = unet_cfg.transformer_layers_per_block
    depth = depth if isinstance(depth, (list, tuple)) else [depth] * 2
    expected = Shapes({
        **ldm_unet(UNET_PREFIX, 32, [1, 2], 1, attn, [d if i in attn else 0 for i, d in enumerate(depth)],
                   unet_cfg.cross_attention_dim, family != "sd1", adm_in=unet_cfg.projection_class_embeddings_input_dim,
                   mid_depth=depth[-1]),
        **ldm_vae(VAE_PREFIX, 16, [1, 1, 2, 2], 1)})
    assert {k: tuple(v.shape) for k, v in sd.items()} == {k: tuple(v.shape) for k, v in expected.items()}
    te = parts["text_encoder"]
    if family == "sd2":
        got = {SD2_CLIP_PREFIX + k: tuple(v.shape) for k, v in clip_to_open_clip(te).items()}
        want = {k: tuple(v.shape) for k, v in open_clip(SD2_CLIP_PREFIX, 48, 3, 96, 48).items() if not k.endswith("logit_scale")}
        assert got == want


def _assert_same_weights(a, b):
    sa = {k: v for k, v in a.state_dict().items() if not k.endswith("position_ids")}
    sb = {k: v for k, v in b.state_dict().items() if not k.endswith("position_ids")}
    assert set(sa) == set(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_tiny_round_trip_identical_weights_and_outputs(tmp_path, family):
    parts = tiny_components(family, seed=3)
    path = save_single_file(tmp_path / f"{family}.safetensors", unet=parts["unet"], vae=parts["vae"],
                              text_encoder=parts["text_encoder"], text_encoder_2=parts["text_encoder_2"],
                              family=family, prediction_type="v" if family == "sd2" else None,
                              metadata={"title": "tiny"})
    ckpt = load_checkpoint(path)
    assert ckpt.family == family and ckpt.unused_keys == []
    assert ckpt.prediction_type == ("v" if family == "sd2" else "eps")
    assert ckpt.metadata["title"] == "tiny"
    _assert_same_weights(parts["unet"], ckpt.unet)
    _assert_same_weights(parts["vae"], ckpt.vae)
    for original, loaded in zip([parts["text_encoder"], parts["text_encoder_2"]], ckpt.text_encoders):
        _assert_same_weights(original, loaded)
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)
    ctx = torch.randn(2, 77, parts["unet"].config.cross_attention_dim)
    added = None
    if family == "sdxl":
        added = {"text_embeds": torch.randn(2, 48), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]] * 2)}
    ids = torch.randint(0, 49406, (2, 77))
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(parts["unet"](x, 500, ctx, added_cond_kwargs=added).sample,
                           ckpt.unet(x, 500, ctx, added_cond_kwargs=added).sample)
        assert torch.equal(parts["vae"].decode(x).sample, ckpt.vae.decode(x).sample)
        assert torch.equal(parts["vae"].encode(image).latent_dist.mean, ckpt.vae.encode(image).latent_dist.mean)
        for original, loaded in zip([parts["text_encoder"], parts["text_encoder_2"]], ckpt.text_encoders):
            assert torch.equal(original(ids).last_hidden_state, loaded(ids).last_hidden_state)


def test_fp16_save_and_dtype_on_load(tmp_path):
    parts = tiny_components("sd1")
    path = save_single_file(tmp_path / "half.safetensors", parts["unet"], parts["vae"], parts["text_encoder"],
                              dtype=torch.float16)
    ckpt = load_checkpoint(path)
    assert next(ckpt.unet.parameters()).dtype == torch.float16
    ckpt32 = load_checkpoint(path, dtype=torch.float32)
    assert next(ckpt32.unet.parameters()).dtype == torch.float32
    assert torch.allclose(ckpt32.unet.conv_in.weight, parts["unet"].conv_in.weight, atol=1e-3)


def test_diffusers_folder_round_trip(tmp_path):
    ckpt = load_checkpoint(save_tiny_checkpoint(tmp_path / "a.safetensors", "sdxl", prediction_type="v"))
    folder = save_diffusers_folder(tmp_path / "pipe", ckpt)
    assert (folder / "model_index.json").is_file()
    again = load_checkpoint(folder)
    assert again.family == "sdxl" and again.prediction_type == "v"
    _assert_same_weights(ckpt.unet, again.unet)
    _assert_same_weights(ckpt.vae, again.vae)
    for a, b in zip(ckpt.text_encoders, again.text_encoders):
        _assert_same_weights(a, b)


def test_ckpt_pickle_loads_with_weights_only(tmp_path):
    src = save_tiny_checkpoint(tmp_path / "x.safetensors", "sd1")
    sd = read_weights(src).tensors
    torch.save({"state_dict": sd, "global_step": 7}, tmp_path / "x.ckpt")
    ckpt = load_checkpoint(tmp_path / "x.ckpt")
    assert ckpt.family == "sd1" and ckpt.unet is not None


def test_component_files(tmp_path):
    from safetensors.torch import save_file
    parts = tiny_components("sd1", seed=1)
    unet_ldm = unet_to_ldm(parts["unet"].state_dict(), parts["unet"].config)
    # U-Net alone: with the prefix, without it, and in diffusers naming
    for name, sd in {"prefixed": {UNET_PREFIX + k: v for k, v in unet_ldm.items()}, "bare": unet_ldm,
                     "diffusers": parts["unet"].state_dict()}.items():
        save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / f"{name}.safetensors"),
                  metadata={HINTS_KEY: json.dumps({"unet": {"attention_head_dim": 2, "norm_num_groups": 8}})})
        loaded = load_unet_file(tmp_path / f"{name}.safetensors")
        _assert_same_weights(parts["unet"], loaded.unet)
    # an SDXL U-Net alone: the pooled text width comes from its ADM input size
    xl = tiny_components("sdxl", seed=2)["unet"]
    save_single_file(tmp_path / "xl_unet.safetensors", unet=xl, family="sdxl")
    loaded = load_unet_file(tmp_path / "xl_unet.safetensors")
    assert loaded.family == "sdxl" and loaded.unet_config["addition_time_embed_dim"] == 8
    _assert_same_weights(xl, loaded.unet)
    # VAE alone, diffusers naming
    save_file({k: v.contiguous() for k, v in parts["vae"].state_dict().items()}, str(tmp_path / "vae.safetensors"),
              metadata={HINTS_KEY: json.dumps({"vae": {"norm_num_groups": 8}})})
    vae, config = load_vae_file(tmp_path / "vae.safetensors")
    _assert_same_weights(parts["vae"], vae)
    assert config["scaling_factor"] == pytest.approx(0.18215)
    # CLIP alone, transformers naming (as text_encoder/model.safetensors of a diffusers repo)
    te = parts["text_encoder"]
    save_file({f"text_model.{k}": v.contiguous() for k, v in clip_core(te).state_dict().items()},
              str(tmp_path / "clip.safetensors"))
    model, config, is_open_clip = load_clip_file(tmp_path / "clip.safetensors")
    assert not is_open_clip and config["num_hidden_layers"] == 3
    # heads are not in the shapes: with no hint the width/64 rule gives 1 head; weights still identical
    _assert_same_weights(te, model)


def test_errors_name_the_file_and_what_was_found(tmp_path):
    from safetensors.torch import save_file
    save_file({"foo.bar.weight": torch.zeros(2), "foo.baz.weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match=r"other\.safetensors.*U-Net.*foo\.bar"):
        load_checkpoint(tmp_path / "other.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelFileError, match="broken.safetensors: not a readable safetensors file"):
        load_checkpoint(tmp_path / "broken.safetensors")
    with pytest.raises(ModelFileError, match="missing.safetensors: no such file"):
        load_checkpoint(tmp_path / "missing.safetensors")
    refiner = {"conditioner.embedders.0.model.ln_final.weight": torch.zeros(2),
               UNET_PREFIX + "input_blocks.0.0.weight": torch.zeros(4, 4, 3, 3)}
    with pytest.raises(CheckpointError, match="text encoder incomplete"):  # a refiner layout (bigG alone), cut
        load_state_dict_checkpoint(refiner)
    # a U-Net whose weights disagree with its inferred architecture
    keys = sd15_keys()
    del keys[UNET_PREFIX + "middle_block.1.proj_out.weight"]
    with pytest.raises(CheckpointError, match="missing"):
        load_state_dict_checkpoint(keys, name="cut.safetensors", parts=("unet",))


def test_hints_are_written(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "t.safetensors", "sd1")
    metadata = read_weights(path).metadata
    hints = json.loads(metadata[HINTS_KEY])
    assert hints["family"] == "sd1" and hints["prediction_type"] == "eps"
    assert hints["unet"]["attention_head_dim"] == 2 and hints["unet"]["norm_num_groups"] == 8
    assert hints["text_encoders"][0]["num_attention_heads"] == 2
