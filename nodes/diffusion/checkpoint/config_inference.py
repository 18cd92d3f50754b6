"""diffusers / transformers configs inferred from tensor shapes (as ComfyUI's model detection does).

What shapes cannot tell comes from the file's hints, else from the rules the SD families follow.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, NamedTuple

import torch

from .layout import CheckpointError, key_indices

def heads_rule(width: int, linear: bool) -> int:
    """Heads when no hint says: SD2/SDXL (linear projections) use 64-channel heads, SD1 uses 8 heads."""
    if linear and width % 64 == 0:
        return width // 64
    if not linear and width % 8 == 0:
        return 8
    return 1


def groups_rule(widths: Iterable[int]) -> int:
    """GroupNorm groups when no hint says: SD's 32, or the largest power of two dividing every width."""
    widths = list(widths)
    return next(g for g in (32, 16, 8, 4, 2, 1) if all(w % g == 0 for w in widths))


class EncoderLayout(NamedTuple):
    widths: list[int]  # channels per level
    layers_per_block: int  # resblocks per level
    level_depth: list[int]  # transformer depth per level (0: no attention)
    mid_depth: int  # middle transformer depth
    layer_depths: list[int]  # diffusers' transformer_layers_per_block (the last level carries the middle's)
    context_dim: int  # cross-attention width
    linear: bool  # use_linear_projection

    @property
    def has_attn(self) -> list[bool]:
        return [d > 0 for d in self.level_depth]

    @property
    def transformer_layers(self) -> int | list[int]:
        return self.layer_depths[0] if len(set(self.layer_depths)) == 1 else self.layer_depths

    def attention_heads(self, hints: Mapping[str, Any]) -> int | list[int]:
        """The file's hint, else the SD rule from each level's width."""
        heads = hints.get("attention_head_dim")
        if heads is None:
            rule = [heads_rule(w, self.linear) for w in self.widths]
            heads = rule[0] if len(set(rule)) == 1 else rule
        return heads


def walk_encoder(sd: Mapping[str, torch.Tensor], model_channels: int, name: str, what: str = "U-Net",
                 error: type[Exception] = CheckpointError) -> EncoderLayout:
    """The encoder of an LDM U-Net or ControlNet state dict (keys without prefix), walked level by level:
    resblocks until a downsampler closes the level, then its attention layout. Shapes a diffusers
    config cannot express raise `error`."""
    keys = list(sd)

    def transformer_depth(prefix: str) -> int:
        return len(key_indices(keys, prefix + "transformer_blocks."))

    widths: list[int] = []
    res_counts: list[int] = []
    depths: list[list[int]] = []
    cur_res, cur_depths, cur_width = 0, [], model_channels
    for i in key_indices(keys, "input_blocks.")[1:]:
        if f"input_blocks.{i}.0.op.weight" in sd:
            widths.append(cur_width); res_counts.append(cur_res); depths.append(cur_depths)
            cur_res, cur_depths = 0, []
            continue
        if f"input_blocks.{i}.0.out_layers.3.weight" not in sd:
            raise error(f"{name}: unsupported {what} block input_blocks.{i} (neither resblock nor downsampler)")
        cur_width = int(sd[f"input_blocks.{i}.0.out_layers.3.weight"].shape[0])
        cur_res += 1
        cur_depths.append(transformer_depth(f"input_blocks.{i}.1."))
    widths.append(cur_width); res_counts.append(cur_res); depths.append(cur_depths)
    if len(set(res_counts)) != 1:
        raise error(f"{name}: {what} levels have different resblock counts {res_counts}; not supported")
    level_depth: list[int] = []
    for level, ds in enumerate(depths):
        if len(set(ds)) != 1:
            raise error(f"{name}: {what} level {level} mixes attention depths {ds}; not supported")
        level_depth.append(ds[0])
    mid_depth = transformer_depth("middle_block.1.")
    if mid_depth == 0:
        raise error(f"{name}: {what} without a middle transformer; not supported")
    context_dim = next((int(sd[k].shape[1]) for k in keys if k.endswith("attn2.to_k.weight")), None)
    proj_key = next((k for k in keys if k.endswith(".proj_in.weight")), None)
    if context_dim is None or proj_key is None:
        raise error(f"{name}: {what} has no cross-attention layers; not supported")
    # diffusers' mid block uses the last level's depth: put the middle depth there when that level has none
    if level_depth[-1] > 0 and level_depth[-1] != mid_depth:
        raise error(f"{name}: {what} middle transformer depth {mid_depth} differs from the last level's "
                    f"{level_depth[-1]}")
    layer_depths = [d if d > 0 else 1 for d in level_depth[:-1]] + [mid_depth]
    return EncoderLayout(widths, res_counts[0], level_depth, mid_depth, layer_depths, context_dim,
                         sd[proj_key].ndim == 2)


def infer_unet_config(sd: Mapping[str, torch.Tensor], hints: Mapping[str, Any] | None = None,
                      pooled_dim: int | None = None, name: str = "checkpoint", family: str = "") -> dict:
    """diffusers UNet2DConditionModel config from an LDM U-Net state dict (keys without the prefix)."""
    hints = hints or {}
    keys = list(sd)
    if "input_blocks.0.0.weight" not in sd or "out.2.weight" not in sd:
        raise CheckpointError(f"{name}: no Stable Diffusion U-Net found (input_blocks.0.0.weight / out.2.weight missing)")
    conv_in = sd["input_blocks.0.0.weight"]
    model_channels, in_channels = int(conv_in.shape[0]), int(conv_in.shape[1])
    out_channels = int(sd["out.2.weight"].shape[0])

    def transformer_depth(prefix: str) -> int:
        return len(key_indices(keys, prefix + "transformer_blocks."))

    layout = walk_encoder(sd, model_channels, name, "U-Net")
    widths, layers_per_block, level_depth = layout.widths, layout.layers_per_block, layout.level_depth
    # output blocks must mirror the input blocks
    up_depth: list[int] = []
    outs = key_indices(keys, "output_blocks.")
    if len(outs) != len(widths) * (layers_per_block + 1):
        raise CheckpointError(f"{name}: {len(outs)} U-Net output blocks, expected {len(widths) * (layers_per_block + 1)}")
    for level in range(len(widths)):
        ds = {transformer_depth(f"output_blocks.{level * (layers_per_block + 1) + j}.1.")
              for j in range(layers_per_block + 1)}
        up_depth.append(ds.pop() if len(ds) == 1 else -1)
    if up_depth != level_depth[::-1]:
        raise CheckpointError(f"{name}: U-Net decoder attention depths {up_depth} do not mirror encoder {level_depth[::-1]}")
    has_attn = layout.has_attn
    config: dict[str, Any] = {
        "in_channels": in_channels, "out_channels": out_channels,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in has_attn],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in has_attn[::-1]],
        "block_out_channels": widths, "layers_per_block": layers_per_block,
        "cross_attention_dim": layout.context_dim, "attention_head_dim": layout.attention_heads(hints),
        "transformer_layers_per_block": layout.transformer_layers, "use_linear_projection": layout.linear,
        "norm_num_groups": int(hints.get("norm_num_groups") or groups_rule(widths)),
        "upcast_attention": bool(hints.get("upcast_attention", family == "sd2")),  # SD2.1 ships with it on
    }
    time_dim = int(sd["time_embed.0.weight"].shape[0])
    if time_dim != widths[0] * 4:
        config["time_embedding_dim"] = time_dim
    if "label_emb.0.0.weight" in sd and family in ("sd1", "sd2"):
        # SD2.1 unCLIP: the ADM input is a noise-augmented CLIP image embedding + its noise-level embedding
        config.update(class_embed_type="projection",
                      projection_class_embeddings_input_dim=int(sd["label_emb.0.0.weight"].shape[1]))
    elif "label_emb.0.0.weight" in sd:
        adm_in = int(sd["label_emb.0.0.weight"].shape[1])
        ids = 5 if family == "sdxl_refiner" else 6  # refiner: h, w, crop_h, crop_w, aesthetic score
        if pooled_dim is None or (adm_in - pooled_dim) % ids:
            raise CheckpointError(f"{name}: U-Net has a class/ADM embedding ({adm_in} inputs) that fits no "
                                  "supported model (SDXL base: pooled text embedding + 6 size/crop ids; "
                                  "refiner: + 5 ids with the aesthetic score)")
        config.update(addition_embed_type="text_time", addition_time_embed_dim=(adm_in - pooled_dim) // ids,
                      projection_class_embeddings_input_dim=adm_in)
    return config


def infer_vae_config(sd: Mapping[str, torch.Tensor], hints: Mapping[str, Any] | None = None,
                     scaling_factor: float = 0.18215, name: str = "checkpoint") -> dict:
    """diffusers AutoencoderKL config from an LDM VAE state dict (keys without the prefix)."""
    hints = hints or {}
    keys = list(sd)
    if "encoder.conv_in.weight" not in sd or "decoder.conv_out.weight" not in sd:
        raise CheckpointError(f"{name}: no VAE found (encoder.conv_in / decoder.conv_out missing)")
    levels = key_indices(keys, "encoder.down.")
    blocks = key_indices(keys, "encoder.down.0.block.")
    widths = []
    for level in levels:
        last = key_indices(keys, f"encoder.down.{level}.block.")[-1]
        widths.append(int(sd[f"encoder.down.{level}.block.{last}.conv2.weight"].shape[0]))
    config = {
        "in_channels": int(sd["encoder.conv_in.weight"].shape[1]),
        "out_channels": int(sd["decoder.conv_out.weight"].shape[0]),
        "down_block_types": ["DownEncoderBlock2D"] * len(widths),
        "up_block_types": ["UpDecoderBlock2D"] * len(widths),
        "block_out_channels": widths, "layers_per_block": len(blocks),
        "latent_channels": int(sd["decoder.conv_in.weight"].shape[1]),
        "norm_num_groups": int(hints.get("norm_num_groups") or groups_rule([int(sd["encoder.conv_in.weight"].shape[0]), *widths])),
        "scaling_factor": float(hints.get("scaling_factor", scaling_factor)),
        "use_quant_conv": "quant_conv.weight" in sd, "use_post_quant_conv": "post_quant_conv.weight" in sd,
        "mid_block_add_attention": "encoder.mid.attn_1.q.weight" in sd,
    }
    return config


def infer_clip_config(core: Mapping[str, torch.Tensor], hints: Mapping[str, Any] | None = None,
                      open_clip: bool = False, name: str = "checkpoint") -> dict:
    """transformers CLIPTextConfig kwargs from converted text-encoder weights ('text_model.' keys)."""
    hints = hints or {}
    try:
        tok = core["text_model.embeddings.token_embedding.weight"]
        pos = core["text_model.embeddings.position_embedding.weight"]
        fc1 = core["text_model.encoder.layers.0.mlp.fc1.weight"]
    except KeyError as exc:
        raise CheckpointError(f"{name}: text encoder incomplete, {exc.args[0]} missing") from exc
    hidden = int(tok.shape[1])
    heads = int(hints.get("num_attention_heads") or (hidden // 64 if hidden % 64 == 0 else 1))
    config = {
        "vocab_size": int(tok.shape[0]), "hidden_size": hidden, "intermediate_size": int(fc1.shape[0]),
        "num_hidden_layers": len(key_indices(core, "text_model.encoder.layers.")),
        "num_attention_heads": heads, "max_position_embeddings": int(pos.shape[0]),
        "hidden_act": hints.get("hidden_act") or ("gelu" if open_clip else "quick_gelu"),
        "layer_norm_eps": float(hints.get("layer_norm_eps", 1e-5)),
        "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 0 if open_clip else 49407,
    }
    if "text_projection.weight" in core:
        config["projection_dim"] = int(core["text_projection.weight"].shape[0])
    return config
