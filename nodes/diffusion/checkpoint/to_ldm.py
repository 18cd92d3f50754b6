"""Key maps from diffusers / transformers modules to the original (LDM / open_clip) single-file layout."""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch

from .layout import CheckpointError
from .modules import clip_core, clip_projection

_RESNET_TO_LDM = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
                  ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"))
_UNET_FIXED_TO_LDM = {
    "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
    "class_embedding.linear_1": "label_emb.0.0", "class_embedding.linear_2": "label_emb.0.2",
}


def _resnet_to_ldm(rest: str) -> str:
    head, _, tail = rest.partition(".")
    for new, old in _RESNET_TO_LDM:
        if head == new:
            return f"{old}.{tail}"
    raise CheckpointError(f"unexpected U-Net resnet parameter {rest!r}")


def unet_to_ldm(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Rename a diffusers UNet2DConditionModel state dict to the original (LDM) key layout."""
    per_level = config["layers_per_block"]
    if not isinstance(per_level, int):
        raise CheckpointError("only U-Nets with the same layers_per_block on every level can be saved")
    attn_up = [t.startswith("CrossAttn") for t in config["up_block_types"]]
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        module, _, param = key.rpartition(".")
        if module in _UNET_FIXED_TO_LDM:
            out[f"{_UNET_FIXED_TO_LDM[module]}.{param}"] = value
            continue
        m = re.match(r"(down_blocks|up_blocks)\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)", key)
        if m:
            kind, block, part, index, rest = m.group(1), int(m.group(2)), m.group(3), int(m.group(4)), m.group(5)
            if kind == "down_blocks":
                base = 1 + block * (per_level + 1)
                if part == "resnets":
                    out[f"input_blocks.{base + index}.0.{_resnet_to_ldm(rest)}"] = value
                elif part == "attentions":
                    out[f"input_blocks.{base + index}.1.{rest}"] = value
                else:  # downsamplers.0.conv.*
                    out[f"input_blocks.{base + per_level}.0.op.{rest.removeprefix('conv.')}"] = value
            else:
                base = block * (per_level + 1)
                if part == "resnets":
                    out[f"output_blocks.{base + index}.0.{_resnet_to_ldm(rest)}"] = value
                elif part == "attentions":
                    out[f"output_blocks.{base + index}.1.{rest}"] = value
                else:  # upsamplers.0.conv.* sits after the attention, if the level has one
                    slot = 2 if attn_up[block] else 1
                    out[f"output_blocks.{base + per_level}.{slot}.{rest}"] = value
            continue
        m = re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", key)
        if m:
            part, index, rest = m.group(1), int(m.group(2)), m.group(3)
            if part == "resnets":
                out[f"middle_block.{2 * index}.{_resnet_to_ldm(rest)}"] = value
            else:
                out[f"middle_block.1.{rest}"] = value
            continue
        raise CheckpointError(f"U-Net parameter {key!r} has no place in the original layout")
    return out


_VAE_ATTN_TO_LDM = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_ldm(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Rename a diffusers AutoencoderKL state dict to the original (LDM) key layout."""
    levels = len(config["block_out_channels"])
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = key
        m = re.match(r"(encoder|decoder)\.(down_blocks|up_blocks)\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.+)", key)
        if m:
            coder, kind, block, part, index, rest = m.groups()
            block, index = int(block), int(index)
            level = block if kind == "down_blocks" else levels - 1 - block  # LDM numbers decoder levels by resolution
            ldm_kind = "down" if kind == "down_blocks" else "up"
            if part == "resnets":
                new = f"{coder}.{ldm_kind}.{level}.block.{index}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
            else:
                sampler = "downsample" if part == "downsamplers" else "upsample"
                new = f"{coder}.{ldm_kind}.{level}.{sampler}.{rest}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            coder, index, rest = m.groups()
            new = f"{coder}.mid.block_{int(index) + 1}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
            coder, module, param = m.groups()
            if module not in _VAE_ATTN_TO_LDM:
                raise CheckpointError(f"VAE parameter {key!r} has no place in the original layout")
            new = f"{coder}.mid.attn_1.{_VAE_ATTN_TO_LDM[module]}.{param}"
            if param == "weight" and module != "group_norm" and value.ndim == 2:
                value = value[:, :, None, None]  # LDM's attention uses 1x1 convolutions
        elif m := re.match(r"(encoder|decoder)\.conv_norm_out\.(.+)", key):
            new = f"{m.group(1)}.norm_out.{m.group(2)}"
        out[new] = value
    return out


def clip_state(text_encoder: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Text-encoder weights as {"text_model.<core key>": ..., "text_projection.weight": ...} (diffusers naming)."""
    out = {f"text_model.{k}": v for k, v in clip_core(text_encoder).state_dict().items()
           if not k.endswith("position_ids")}
    proj = clip_projection(text_encoder)
    if proj is not None:
        out["text_projection.weight"] = proj.weight
    return out


_CLIP_TO_OPEN = (("embeddings.token_embedding.weight", "token_embedding.weight"),
                 ("embeddings.position_embedding.weight", "positional_embedding"),
                 ("final_layer_norm.", "ln_final."))
_CLIP_LAYER_TO_OPEN = (("self_attn.out_proj.", "attn.out_proj."), ("layer_norm1.", "ln_1."),
                       ("layer_norm2.", "ln_2."), ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj."))


def clip_to_open_clip(text_encoder: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Text-encoder weights in the open_clip layout (SD2 / SDXL bigG), without the model prefix."""
    core = {k: v for k, v in clip_core(text_encoder).state_dict().items() if not k.endswith("position_ids")}
    out: dict[str, torch.Tensor] = {}
    for key, value in core.items():
        for new, old in _CLIP_TO_OPEN:
            if key.startswith(new):
                out[old + key[len(new):]] = value
                break
        else:
            m = re.match(r"encoder\.layers\.(\d+)\.(.+)", key)
            if not m:
                raise CheckpointError(f"text-encoder parameter {key!r} has no place in the open_clip layout")
            layer, rest = m.groups()
            prefix = f"transformer.resblocks.{layer}."
            qkv = re.match(r"self_attn\.(q|k|v)_proj\.(weight|bias)", rest)
            if qkv:
                if qkv.group(1) == "q":  # open_clip packs q, k, v into one in_proj tensor
                    param = qkv.group(2)
                    parts = [core[f"encoder.layers.{layer}.self_attn.{p}_proj.{param}"] for p in "qkv"]
                    out[f"{prefix}attn.in_proj_{param}"] = torch.cat(parts, dim=0)
                continue
            for new, old in _CLIP_LAYER_TO_OPEN:
                if rest.startswith(new):
                    out[prefix + old + rest[len(new):]] = value
                    break
            else:
                raise CheckpointError(f"text-encoder parameter {key!r} has no place in the open_clip layout")
    proj = clip_projection(text_encoder)
    if proj is not None:
        out["text_projection"] = proj.weight.T  # open_clip multiplies x @ text_projection
    return out
