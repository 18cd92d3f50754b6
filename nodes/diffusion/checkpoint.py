"""Stable Diffusion model files: single-file checkpoints (original layout) and diffusers folders.

Reading: `load_checkpoint(path)` detects the family (sd1, sd2, sdxl; inpainting U-Nets) from the
keys, INFERS the U-Net / VAE / text-encoder configs from tensor shapes (as ComfyUI's model
detection does), builds diffusers `UNet2DConditionModel` / `AutoencoderKL` and transformers
`CLIPTextModel(WithProjection)` from those configs and converts the weights with diffusers'
single-file converters. A tiny model in the same layout loads through the very same path.

Writing: `save_single_file(path, unet=..., vae=..., text_encoder=..., ...)` is the inverse: it
writes diffusers/transformers modules in the original single-file layout (safetensors).

What shapes cannot tell (attention head counts, GroupNorm groups, the text encoder's activation,
eps vs v prediction, the VAE scaling factor) comes from the family's known values, unless the
file carries "hints" in its safetensors metadata (save_single_file always writes them), so a
tiny model with unusual head counts or groups round-trips exactly.

Original key layout:
  U-Net   model.diffusion_model.*                      (input_blocks / middle_block / output_blocks)
  VAE     first_stage_model.*                          (encoder.down.N.block.M ...)
  SD1     cond_stage_model.transformer.text_model.*    (transformers CLIP layout)
  SD2     cond_stage_model.model.*                     (open_clip layout: transformer.resblocks.N)
  SDXL    conditioner.embedders.0.transformer.text_model.*  (CLIP-L) and conditioner.embedders.1.model.* (bigG)
"""
from __future__ import annotations

import inspect
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Mapping, NamedTuple

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer."
SD2_CLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
SDXL_CLIP_G_PREFIX = "conditioner.embedders.1.model."
HINTS_KEY = "nodegraph.hints"
CONFIG_DIR = Path(__file__).parent / "configs"

# family -> latent scaling factor of its VAE
VAE_SCALING = {"sd1": 0.18215, "sd2": 0.18215, "sdxl": 0.13025}

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A model file that cannot be read or is not a supported Stable Diffusion layout."""


def reference_config(name: str) -> dict:
    """A shipped reference config ("sd15_unet", "sdxl_text_encoder_2" ...), without '_class_name'."""
    data = json.loads((CONFIG_DIR / f"{name}.json").read_text())
    data.pop("_class_name", None)
    return data


# =============================================================================================
# Writing: diffusers / transformers modules -> original single-file layout
# =============================================================================================

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


def clip_core(text_encoder: torch.nn.Module) -> torch.nn.Module:
    """The CLIP text transformer inside a CLIPTextModel / CLIPTextModelWithProjection (any transformers version)."""
    core = text_encoder
    while hasattr(core, "text_model"):
        core = core.text_model
    return core


def clip_projection(text_encoder: torch.nn.Module) -> torch.nn.Linear | None:
    return getattr(text_encoder, "text_projection", None)


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


def unet_hints(config: Mapping[str, Any]) -> dict:
    """What shapes cannot tell about a U-Net or ControlNet config, stored in the file's hints so a
    small model round-trips exactly."""
    hints = {"attention_head_dim": config.get("num_attention_heads") or config["attention_head_dim"],
             "norm_num_groups": config["norm_num_groups"],
             "upcast_attention": bool(config.get("upcast_attention", False))}
    if config.get("addition_time_embed_dim"):
        hints["addition_time_embed_dim"] = config["addition_time_embed_dim"]
    return hints


def _clip_hints(text_encoder: torch.nn.Module) -> dict:
    cfg = text_encoder.config
    return {"num_attention_heads": cfg.num_attention_heads, "hidden_act": cfg.hidden_act,
            "layer_norm_eps": cfg.layer_norm_eps}


def save_single_file(path: str | Path, unet: torch.nn.Module | None = None, vae: torch.nn.Module | None = None,
                     text_encoder: torch.nn.Module | None = None, metadata: Mapping[str, str] | None = None, *,
                     text_encoder_2: torch.nn.Module | None = None, family: str | None = None,
                     prediction_type: str | None = None, dtype: torch.dtype | None = None,
                     latent_rgb_factors: list[list[float]] | None = None,
                     latent_rgb_bias: list[float] | None = None) -> Path:
    """Write diffusers/transformers modules as ONE safetensors file in the original checkpoint layout.

    family: "sd1" (one CLIP text encoder in the transformers layout), "sd2" (one text encoder in the
    open_clip layout) or "sdxl" (text_encoder = CLIP-L, text_encoder_2 = bigG with projection).
    Default: "sdxl" when text_encoder_2 is given, else "sd1".
    prediction_type: "eps" (default) or "v". dtype: cast floating weights (e.g. torch.float16).
    metadata: extra str->str safetensors metadata; the loader's hints are added under "nodegraph.hints".
    latent_rgb_factors [channels][3] / latent_rgb_bias [3]: the preview projection (models.fit_latent_rgb).
    """
    family = family or ("sdxl" if text_encoder_2 is not None else "sd1")
    if family not in ("sd1", "sd2", "sdxl"):
        raise CheckpointError(f"unknown family {family!r} (expected sd1, sd2 or sdxl)")
    if family == "sdxl" and text_encoder is not None and text_encoder_2 is None:
        raise CheckpointError("an sdxl checkpoint needs text_encoder (CLIP-L) and text_encoder_2 (bigG)")
    prediction_type = _normalise_prediction(prediction_type or "eps")
    tensors: dict[str, torch.Tensor] = {}
    hints: dict[str, Any] = {"family": family, "prediction_type": prediction_type}
    if latent_rgb_factors is not None:
        hints["latent_rgb_factors"] = [[float(v) for v in row] for row in latent_rgb_factors]
        if latent_rgb_bias is not None:
            hints["latent_rgb_bias"] = [float(v) for v in latent_rgb_bias]
    if unet is not None:
        tensors.update({UNET_PREFIX + k: v for k, v in unet_to_ldm(unet.state_dict(), unet.config).items()})
        hints["unet"] = unet_hints(unet.config)
    if vae is not None:
        tensors.update({VAE_PREFIX + k: v for k, v in vae_to_ldm(vae.state_dict(), vae.config).items()})
        hints["vae"] = {"norm_num_groups": vae.config.norm_num_groups, "scaling_factor": vae.config.scaling_factor}
    encoders = [e for e in (text_encoder, text_encoder_2) if e is not None]
    if family == "sd1" and text_encoder is not None:
        tensors.update({SD1_CLIP_PREFIX + k: v for k, v in clip_state(text_encoder).items()
                        if not k.startswith("text_projection")})
    elif family == "sd2" and text_encoder is not None:
        tensors.update({SD2_CLIP_PREFIX + k: v for k, v in clip_to_open_clip(text_encoder).items()})
    elif family == "sdxl" and encoders:
        tensors.update({SDXL_CLIP_L_PREFIX + k: v for k, v in clip_state(text_encoder).items()
                        if not k.startswith("text_projection")})
        tensors.update({SDXL_CLIP_G_PREFIX + k: v for k, v in clip_to_open_clip(text_encoder_2).items()})
    if encoders:
        hints["text_encoders"] = [_clip_hints(e) for e in encoders]
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        value = value.detach()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        out[key] = value.to("cpu").contiguous().clone()  # safetensors refuses shared storage
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta[HINTS_KEY] = json.dumps(hints)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file
    save_file(out, str(path), metadata=meta)
    return path


# =============================================================================================
# Reading files
# =============================================================================================

def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a .safetensors file, or of a .ckpt/.pt/.bin loaded with weights_only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file {path} does not exist")
    if path.suffix.lower() in (".safetensors", ".sft"):
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                metadata = dict(f.metadata() or {})
                return {k: f.get_tensor(k) for k in f.keys()}, metadata
        except Exception as exc:
            raise CheckpointError(f"{path.name}: not a readable safetensors file ({exc})") from exc
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path.name}: could not be loaded safely with weights_only=True ({exc}); "
                              "convert it to .safetensors") from exc
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path.name}: holds a {type(data).__name__}, not a dict of tensors")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}, {}


def read_hints(metadata: Mapping[str, str]) -> dict:
    try:
        return json.loads(metadata.get(HINTS_KEY, "{}")) or {}
    except (TypeError, ValueError):
        return {}


def _strip(sd: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _normalise_prediction(value: str) -> str:
    value = value.lower()
    aliases = {"eps": "eps", "epsilon": "eps", "v": "v", "v_prediction": "v", "v-prediction": "v"}
    if value not in aliases:
        raise CheckpointError(f"unknown prediction type {value!r} (expected eps or v)")
    return aliases[value]


# =============================================================================================
# Config inference from shapes
# =============================================================================================

def _indices(keys: Iterable[str], prefix: str) -> list[int]:
    """Sorted distinct integers N of keys that start with prefix + 'N.'."""
    found = set()
    for k in keys:
        if k.startswith(prefix):
            head = k[len(prefix):].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def _heads_rule(width: int, linear: bool) -> int:
    """Heads when no hint says: SD2/SDXL (linear projections) use 64-channel heads, SD1 uses 8 heads."""
    if linear and width % 64 == 0:
        return width // 64
    if not linear and width % 8 == 0:
        return 8
    return 1


def _groups_rule(widths: Iterable[int]) -> int:
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
            rule = [_heads_rule(w, self.linear) for w in self.widths]
            heads = rule[0] if len(set(rule)) == 1 else rule
        return heads


def walk_encoder(sd: Mapping[str, torch.Tensor], model_channels: int, name: str, what: str = "U-Net",
                 error: type[Exception] = CheckpointError) -> EncoderLayout:
    """The encoder of an LDM U-Net or ControlNet state dict (keys without prefix), walked level by level:
    resblocks until a downsampler closes the level, then its attention layout. Shapes a diffusers
    config cannot express raise `error`."""
    keys = list(sd)

    def transformer_depth(prefix: str) -> int:
        return len(_indices(keys, prefix + "transformer_blocks."))

    widths: list[int] = []
    res_counts: list[int] = []
    depths: list[list[int]] = []
    cur_res, cur_depths, cur_width = 0, [], model_channels
    for i in _indices(keys, "input_blocks.")[1:]:
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
        return len(_indices(keys, prefix + "transformer_blocks."))

    layout = walk_encoder(sd, model_channels, name, "U-Net")
    widths, layers_per_block, level_depth = layout.widths, layout.layers_per_block, layout.level_depth
    # output blocks must mirror the input blocks
    up_depth: list[int] = []
    outs = _indices(keys, "output_blocks.")
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
        "norm_num_groups": int(hints.get("norm_num_groups") or _groups_rule(widths)),
        "upcast_attention": bool(hints.get("upcast_attention", family == "sd2")),  # SD2.1 ships with it on
    }
    time_dim = int(sd["time_embed.0.weight"].shape[0])
    if time_dim != widths[0] * 4:
        config["time_embedding_dim"] = time_dim
    if "label_emb.0.0.weight" in sd:
        adm_in = int(sd["label_emb.0.0.weight"].shape[1])
        if pooled_dim is None or (adm_in - pooled_dim) % 6:
            raise CheckpointError(f"{name}: U-Net has a class/ADM embedding ({adm_in} inputs) that fits no "
                                  "supported model (SDXL base: pooled text embedding + 6 size/crop ids)")
        config.update(addition_embed_type="text_time", addition_time_embed_dim=(adm_in - pooled_dim) // 6,
                      projection_class_embeddings_input_dim=adm_in)
    return config


def infer_vae_config(sd: Mapping[str, torch.Tensor], hints: Mapping[str, Any] | None = None,
                     scaling_factor: float = 0.18215, name: str = "checkpoint") -> dict:
    """diffusers AutoencoderKL config from an LDM VAE state dict (keys without the prefix)."""
    hints = hints or {}
    keys = list(sd)
    if "encoder.conv_in.weight" not in sd or "decoder.conv_out.weight" not in sd:
        raise CheckpointError(f"{name}: no VAE found (encoder.conv_in / decoder.conv_out missing)")
    levels = _indices(keys, "encoder.down.")
    blocks = _indices(keys, "encoder.down.0.block.")
    widths = []
    for level in levels:
        last = _indices(keys, f"encoder.down.{level}.block.")[-1]
        widths.append(int(sd[f"encoder.down.{level}.block.{last}.conv2.weight"].shape[0]))
    config = {
        "in_channels": int(sd["encoder.conv_in.weight"].shape[1]),
        "out_channels": int(sd["decoder.conv_out.weight"].shape[0]),
        "down_block_types": ["DownEncoderBlock2D"] * len(widths),
        "up_block_types": ["UpDecoderBlock2D"] * len(widths),
        "block_out_channels": widths, "layers_per_block": len(blocks),
        "latent_channels": int(sd["decoder.conv_in.weight"].shape[1]),
        "norm_num_groups": int(hints.get("norm_num_groups") or _groups_rule([int(sd["encoder.conv_in.weight"].shape[0]), *widths])),
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
        "num_hidden_layers": len(_indices(core, "text_model.encoder.layers.")),
        "num_attention_heads": heads, "max_position_embeddings": int(pos.shape[0]),
        "hidden_act": hints.get("hidden_act") or ("gelu" if open_clip else "quick_gelu"),
        "layer_norm_eps": float(hints.get("layer_norm_eps", 1e-5)),
        "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 0 if open_clip else 49407,
    }
    if "text_projection.weight" in core:
        config["projection_dim"] = int(core["text_projection.weight"].shape[0])
    return config


# =============================================================================================
# Conversion original -> diffusers (diffusers' converters) and module construction
# =============================================================================================

def _convert_unet(unet_sd: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
    return convert_ldm_unet_checkpoint({UNET_PREFIX + k: v for k, v in unet_sd.items()}, dict(config))


def _convert_vae(vae_sd: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    return convert_ldm_vae_checkpoint(dict(vae_sd), dict(config))  # keys already without first_stage_model.


def _convert_hf_clip(clip_sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers-layout CLIP (keys after the model prefix) -> 'text_model.*' keys."""
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
    fixed = {}
    for k, v in clip_sd.items():
        if k.endswith("position_ids"):
            continue
        fixed["cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k)] = v
    return convert_ldm_clip_checkpoint(fixed)


def _convert_open_clip(clip_sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip-layout text tower (keys after the model prefix) -> 'text_model.*' keys.

    A neutral prefix is used so that diffusers' SD2 rule that drops the last layer does not apply:
    we keep all layers (ComfyUI's CLIPSetLastLayer -1 on SD2 uses the last one).
    """
    from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
    width = int(clip_sd["token_embedding.weight"].shape[1]) if "token_embedding.weight" in clip_sd else 0
    model_stub = SimpleNamespace(config=SimpleNamespace(hidden_size=width))  # read only without text_projection
    return convert_open_clip_checkpoint(model_stub, {"te." + k: v for k, v in clip_sd.items()}, prefix="te.")


_OPEN_CLIP_IGNORED = ("logit_scale", "attn_mask")


def _materialise(module: torch.nn.Module, sd: Mapping[str, torch.Tensor], what: str, name: str,
                 dtype: torch.dtype | None) -> None:
    """Assign converted weights to a module built on the meta device; strict, with readable errors."""
    if dtype is not None:
        sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{name}: {what} weights do not fit the inferred architecture; "
                              f"missing {missing[:8]}{'...' if len(missing) > 8 else ''} ({len(missing)}), "
                              f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''} ({len(unexpected)})")
    bad = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in own if sd[k].shape != own[k].shape]
    if bad:
        raise CheckpointError(f"{name}: {what} weight shapes do not fit: {'; '.join(bad[:5])}")
    module.load_state_dict(sd, strict=True, assign=True)
    for buf_name, buf in list(module.named_buffers()):
        if buf.is_meta:  # non-persistent buffers (CLIP's position_ids) are rebuilt
            owner_name, _, attr = buf_name.rpartition(".")
            owner = module.get_submodule(owner_name) if owner_name else module
            if attr == "position_ids":
                owner.register_buffer(attr, torch.arange(buf.shape[-1]).expand(buf.shape), persistent=False)
            else:
                raise CheckpointError(f"{name}: {what} buffer {buf_name} is not in the file")


def build_unet(config: Mapping[str, Any]):
    from diffusers import UNet2DConditionModel
    try:
        with torch.device("meta"):
            return UNet2DConditionModel(**config)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"the U-Net config {dict(config)} cannot be built: {exc}") from exc


def build_vae(config: Mapping[str, Any]):
    from diffusers import AutoencoderKL
    try:
        with torch.device("meta"):
            return AutoencoderKL(**config)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"the VAE config {dict(config)} cannot be built: {exc}") from exc


def build_clip(config: Mapping[str, Any], with_projection: bool | None = None):
    """CLIPTextModelWithProjection when the config has a projection_dim and with_projection is not False."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    config = dict(config)
    class_name = config.pop("_class_name", None)
    if with_projection is None:
        with_projection = class_name == "CLIPTextModelWithProjection" if class_name else "projection_dim" in config
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    with torch.device("meta"):
        model = cls(CLIPTextConfig(**config))
    return model.eval()


# =============================================================================================
# Family detection and loading
# =============================================================================================

@dataclass
class LoadedCheckpoint:
    """The parts of a Stable Diffusion model file, as diffusers / transformers modules."""

    family: str  # "sd1" | "sd2" | "sdxl"
    prediction_type: str  # "eps" | "v"
    unet: Any = None  # diffusers UNet2DConditionModel
    vae: Any = None  # diffusers AutoencoderKL
    text_encoders: list = field(default_factory=list)  # [CLIP-L] / [open_clip H] / [CLIP-L, bigG]
    unet_config: dict | None = None
    vae_config: dict | None = None
    text_encoder_configs: list[dict] = field(default_factory=list)
    inpaint: bool = False  # 9-channel U-Net (latent + mask + masked-image latent)
    metadata: dict = field(default_factory=dict)
    source: str = ""
    unused_keys: list[str] = field(default_factory=list)  # file keys of a known part that no weight took

    @property
    def latent_channels(self) -> int:
        if self.vae_config:
            return int(self.vae_config["latent_channels"])
        return int(self.unet_config["out_channels"]) if self.unet_config else 4


def detect_family(sd: Mapping[str, torch.Tensor], hints: Mapping[str, Any] | None = None) -> str:
    """sd1 / sd2 / sdxl from which text-encoder layout (or U-Net shapes) the file has."""
    hints = hints or {}
    keys = sd.keys()
    if any(k.startswith("conditioner.embedders.") for k in keys):
        has_l = any(k.startswith(SDXL_CLIP_L_PREFIX) for k in keys)
        has_g = any(k.startswith(SDXL_CLIP_G_PREFIX) for k in keys)
        if has_l and has_g:
            return "sdxl"
        if any(k.startswith("conditioner.embedders.0.model.") for k in keys):
            raise CheckpointError("SDXL refiner checkpoints (one bigG text encoder, aesthetic-score U-Net) are not supported")
        raise CheckpointError("conditioner.embedders.* keys found, but not the SDXL pair "
                              "(embedders.0.transformer = CLIP-L, embedders.1.model = bigG)")
    if any(k.startswith(SD2_CLIP_PREFIX) for k in keys):
        return "sd2"
    if any(k.startswith(SD1_CLIP_PREFIX) for k in keys):
        return "sd1"
    if hints.get("family") in ("sd1", "sd2", "sdxl"):
        return hints["family"]
    # no text encoder in the file: decide from the U-Net
    unet = _strip(sd, UNET_PREFIX) or sd
    if "label_emb.0.0.weight" in unet:
        return "sdxl"
    ctx = next((int(v.shape[1]) for k, v in unet.items() if k.endswith("attn2.to_k.weight")), None)
    return {768: "sd1", 1024: "sd2", 2048: "sdxl"}.get(ctx, "sd1")


def detect_prediction_type(sd: Mapping[str, torch.Tensor], unet_sd: Mapping[str, torch.Tensor], family: str,
                           in_channels: int, hints: Mapping[str, Any] | None = None) -> str:
    """eps or v: a hint, a 'v_pred' marker key, or ComfyUI's SD2 heuristic (norm1 bias spread)."""
    hints = hints or {}
    if hints.get("prediction_type"):
        return _normalise_prediction(hints["prediction_type"])
    if "v_pred" in sd:
        return "v"
    if family == "sd2" and in_channels == 4:
        outs = _indices(unet_sd, "output_blocks.")
        if outs:
            bias = unet_sd.get(f"output_blocks.{outs[-1]}.1.transformer_blocks.0.norm1.bias")
            if bias is not None and not bias.is_meta and torch.std(bias.float(), unbiased=False) > 0.09:
                return "v"
    return "eps"


def _clip_parts(sd: Mapping[str, torch.Tensor], family: str) -> list[tuple[dict, bool]]:
    """(raw text-encoder weights after the prefix, is_open_clip) for each text encoder of the family."""
    if family == "sd1":
        parts = [(_strip(sd, SD1_CLIP_PREFIX), False)]
    elif family == "sd2":
        parts = [(_strip(sd, SD2_CLIP_PREFIX), True)]
    else:
        parts = [(_strip(sd, SDXL_CLIP_L_PREFIX), False), (_strip(sd, SDXL_CLIP_G_PREFIX), True)]
    return [p for p in parts if p[0]]


def _load_clip(raw: Mapping[str, torch.Tensor], open_clip: bool, hints: Mapping[str, Any] | None, name: str,
               dtype: torch.dtype | None, keep_projection: bool) -> tuple[Any, dict, list[str]]:
    raw = {k: v for k, v in raw.items() if not k.endswith(_OPEN_CLIP_IGNORED)}
    converted = _convert_open_clip(raw) if open_clip else _convert_hf_clip(raw)
    if not keep_projection:
        converted.pop("text_projection.weight", None)
    config = infer_clip_config(converted, hints, open_clip=open_clip, name=name)
    model = build_clip(config, with_projection="text_projection.weight" in converted)
    if clip_core(model) is model:  # plain CLIPTextModel: its own keys have no 'text_model.' prefix
        weights = {k.removeprefix("text_model."): v for k, v in converted.items()}
    else:
        weights = dict(converted)
        if hasattr(model.text_model, "text_model"):  # older transformers: two levels
            weights = {("text_model." + k if k.startswith("text_model.") else k): v for k, v in weights.items()}
    _materialise(model, weights, "text encoder", name, dtype)
    # keys the converter did not carry over (compare against the inverse conversion)
    written = set(clip_to_open_clip(model)) if open_clip else \
        {k.removeprefix("text_model.") for k in clip_state(model) if not k.startswith("text_projection")}
    given = {k.removeprefix("text_model.") for k in raw if not k.endswith("position_ids")}
    if not keep_projection:
        given.discard("text_projection")
    unused = sorted(given - written)
    return model, config, unused


def load_state_dict_checkpoint(sd: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None, *,
                               name: str = "checkpoint", dtype: torch.dtype | None = None,
                               parts: Iterable[str] = ("unet", "vae", "clip"),
                               pooled_dim: int | None = None) -> LoadedCheckpoint:
    """Load an original-layout state dict (may hold meta tensors: shapes are all that is needed then).

    pooled_dim: SDXL's pooled text width, when the file has no bigG text encoder to read it from."""
    metadata = dict(metadata or {})
    hints = read_hints(metadata)
    parts = set(parts)
    family = detect_family(sd, hints)
    unet_sd = _strip(sd, UNET_PREFIX)
    vae_sd = _strip(sd, VAE_PREFIX)
    if "unet" in parts and not unet_sd:
        raise CheckpointError(f"{name}: no U-Net weights (keys starting with {UNET_PREFIX!r}); found prefixes "
                              f"{_prefix_summary(sd)}")
    result = LoadedCheckpoint(family=family, prediction_type="eps", metadata=metadata, source=name)
    clip_hints = list(hints.get("text_encoders") or [])
    clip_parts = _clip_parts(sd, family)
    if "clip" in parts or family == "sdxl":
        for index, (raw, open_clip) in enumerate(clip_parts):
            keep_projection = open_clip  # SD1 / SDXL CLIP-L: pooled output is not projected
            if "clip" not in parts:
                if open_clip and "text_projection" in raw:
                    pooled_dim = int(raw["text_projection"].shape[1])
                continue
            model, config, unused = _load_clip(raw, open_clip, clip_hints[index] if index < len(clip_hints) else None,
                                               name, dtype, keep_projection)
            result.text_encoders.append(model)
            result.text_encoder_configs.append(config)
            result.unused_keys += [f"text_encoder[{index}].{k}" for k in unused]
            if open_clip:
                pooled_dim = config.get("projection_dim", config["hidden_size"])
        if "clip" in parts and not clip_parts:
            raise CheckpointError(f"{name}: no text encoder found (looked for {SD1_CLIP_PREFIX}, {SD2_CLIP_PREFIX}, "
                                  f"{SDXL_CLIP_L_PREFIX} + {SDXL_CLIP_G_PREFIX}); found prefixes {_prefix_summary(sd)}")
    if unet_sd:
        config = infer_unet_config(unet_sd, hints.get("unet"), pooled_dim=pooled_dim, name=name, family=family)
        result.unet_config = config
        result.inpaint = config["in_channels"] == 9
        if config["in_channels"] not in (4, 9) and not hints.get("unet"):
            log.warning("%s: U-Net with %d input channels", name, config["in_channels"])
        result.prediction_type = detect_prediction_type(sd, unet_sd, family, config["in_channels"], hints)
        if "unet" in parts:
            converted = _convert_unet(unet_sd, config)
            unet = build_unet(config)
            _materialise(unet, converted, "U-Net", name, dtype)
            result.unet = unet.eval()
            result.unused_keys += [f"unet.{k}" for k in sorted(set(unet_sd) - set(unet_to_ldm(converted, config)))]
    if vae_sd and "vae" in parts:
        config = infer_vae_config(vae_sd, hints.get("vae"), VAE_SCALING[family], name=name)
        converted = _convert_vae(vae_sd, config)
        vae = build_vae(config)
        _materialise(vae, converted, "VAE", name, dtype)
        result.vae, result.vae_config = vae.eval(), config
        ignored = {k for k in vae_sd if k.startswith("loss.")}  # training-only discriminator weights
        result.unused_keys += [f"vae.{k}" for k in sorted(set(vae_sd) - ignored - set(vae_to_ldm(converted, config)))]
    elif "vae" in parts:
        raise CheckpointError(f"{name}: no VAE weights (keys starting with {VAE_PREFIX!r})")
    if result.unused_keys:
        log.warning("%s: %d weights were not used: %s", name, len(result.unused_keys), result.unused_keys[:10])
    return result


def _prefix_summary(sd: Mapping[str, Any]) -> str:
    prefixes: dict[str, int] = {}
    for k in sd:
        head = ".".join(k.split(".")[:2])
        prefixes[head] = prefixes.get(head, 0) + 1
    items = sorted(prefixes.items(), key=lambda kv: -kv[1])[:8]
    return ", ".join(f"{p}.* ({n})" for p, n in items) or "none (empty file)"


def load_checkpoint(path: str | Path, *, dtype: torch.dtype | None = None,
                    parts: Iterable[str] = ("unet", "vae", "clip")) -> LoadedCheckpoint:
    """Load a single-file checkpoint (.safetensors / .ckpt) or a diffusers folder (model_index.json)."""
    path = Path(path)
    if path.is_dir():
        return load_diffusers_folder(path, dtype=dtype, parts=parts)
    sd, metadata = read_state_dict(path)
    try:
        return load_state_dict_checkpoint(sd, metadata, name=path.name, dtype=dtype, parts=parts)
    except CheckpointError as exc:
        if path.name in str(exc):
            raise
        raise CheckpointError(f"{path.name}: {exc}") from exc


# =============================================================================================
# Separate component files (UNETLoader / VAELoader / CLIPLoader)
# =============================================================================================

def load_unet_file(path: str | Path, *, dtype: torch.dtype | None = None) -> LoadedCheckpoint:
    """A diffusion-model-only file: original layout with or without 'model.diffusion_model.', or diffusers keys."""
    path = Path(path)
    sd, metadata = read_state_dict(path)
    hints = read_hints(metadata)
    if any(k.startswith(UNET_PREFIX) for k in sd):
        sd = _strip(sd, UNET_PREFIX)
    if "conv_in.weight" in sd:  # diffusers layout: go through the original layout so inference is shared
        layout = {"layers_per_block": len(_indices(sd, "down_blocks.0.resnets.")),
                  "up_block_types": ["CrossAttnUpBlock2D" if any(k.startswith(f"up_blocks.{i}.attentions.") for k in sd)
                                     else "UpBlock2D" for i in _indices(sd, "up_blocks.")]}
        sd = unet_to_ldm(sd, layout)
    if "input_blocks.0.0.weight" not in sd:
        raise CheckpointError(f"{path.name}: not a Stable Diffusion U-Net (no input_blocks.0.0.weight / conv_in.weight); "
                              f"found prefixes {_prefix_summary(sd)}")
    pooled_dim = None
    if "label_emb.0.0.weight" in sd:  # SDXL: ADM input = pooled text + 6 size/crop embeddings
        time_dim = int((hints.get("unet") or {}).get("addition_time_embed_dim", 256))
        pooled_dim = int(sd["label_emb.0.0.weight"].shape[1]) - 6 * time_dim
    return load_state_dict_checkpoint({UNET_PREFIX + k: v for k, v in sd.items()}, metadata, name=path.name,
                                      dtype=dtype, parts=("unet",), pooled_dim=pooled_dim)


def load_vae_file(path: str | Path, *, dtype: torch.dtype | None = None, family: str | None = None):
    """A VAE-only file: original layout (with or without 'first_stage_model.') or diffusers keys.
    Returns (AutoencoderKL, config)."""
    path = Path(path)
    sd, metadata = read_state_dict(path)
    hints = read_hints(metadata)
    if any(k.startswith(VAE_PREFIX) for k in sd):
        sd = _strip(sd, VAE_PREFIX)
    if "encoder.conv_norm_out.weight" in sd:  # diffusers layout
        levels = len(_indices(sd, "encoder.down_blocks."))
        sd = vae_to_ldm(sd, {"block_out_channels": [0] * levels})
    scaling = VAE_SCALING.get(family or hints.get("family", "sd1"), 0.18215)
    config = infer_vae_config(sd, hints.get("vae"), scaling, name=path.name)
    vae = build_vae(config)
    _materialise(vae, _convert_vae(sd, config), "VAE", path.name, dtype)
    return vae.eval(), config


def load_clip_file(path: str | Path, *, dtype: torch.dtype | None = None):
    """A text-encoder-only file (transformers layout, or open_clip layout). Returns (model, config, is_open_clip)."""
    path = Path(path)
    sd, metadata = read_state_dict(path)
    hints = read_hints(metadata)
    for prefix in (SD1_CLIP_PREFIX, SDXL_CLIP_L_PREFIX, SD2_CLIP_PREFIX, SDXL_CLIP_G_PREFIX):
        if any(k.startswith(prefix) for k in sd):
            sd = _strip(sd, prefix)
            break
    open_clip = any(k.startswith("transformer.resblocks.") for k in sd)
    if not open_clip and not any("encoder.layers." in k for k in sd):
        raise CheckpointError(f"{path.name}: not a CLIP text encoder; found prefixes {_prefix_summary(sd)}")
    sd = {k: v for k, v in sd.items() if not k.startswith(("vision_model.", "visual."))}
    text_hints = (hints.get("text_encoders") or [None])[0]
    keep = open_clip or "text_projection.weight" in sd
    if "text_projection.weight" in sd and not open_clip:  # transformers WithProjection file
        proj = sd.pop("text_projection.weight")
        model, config, _ = _load_clip(sd, False, text_hints, path.name, dtype, False)
        from transformers import CLIPTextModelWithProjection
        with torch.device("meta"):
            wrapped = CLIPTextModelWithProjection(model.config.__class__(**{**config, "projection_dim": int(proj.shape[0])}))
        weights = {f"text_model.{k}": v for k, v in model.state_dict().items() if not k.endswith("position_ids")}
        weights["text_projection.weight"] = proj
        _materialise(wrapped, weights, "text encoder", path.name, dtype)
        return wrapped.eval(), {**config, "projection_dim": int(proj.shape[0])}, False
    model, config, _ = _load_clip(sd, open_clip, text_hints, path.name, dtype, keep)
    return model, config, open_clip


# =============================================================================================
# diffusers folders
# =============================================================================================

def load_diffusers_folder(path: str | Path, *, dtype: torch.dtype | None = None,
                          parts: Iterable[str] = ("unet", "vae", "clip")) -> LoadedCheckpoint:
    """A diffusers pipeline folder (model_index.json + unet/ vae/ text_encoder/ [text_encoder_2/] scheduler/)."""
    path = Path(path)
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise CheckpointError(f"{path}: not a diffusers folder (no model_index.json)")
    index = json.loads(index_file.read_text())
    parts = set(parts)

    def sub_config(sub: str) -> dict:
        f = path / sub / "config.json"
        if not f.is_file():
            raise CheckpointError(f"{path.name}: {sub}/config.json missing")
        return json.loads(f.read_text())

    def sub_weights(sub: str) -> dict[str, torch.Tensor]:
        folder = path / sub
        files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
        if not files:
            raise CheckpointError(f"{path.name}: no weights in {sub}/ (expected *.safetensors or *.bin)")
        sd: dict[str, torch.Tensor] = {}
        for f in files:
            if f.name.endswith(".index.json"):
                continue
            sd.update(read_state_dict(f)[0])
        return sd

    def clean(cfg: dict) -> dict:
        return {k: v for k, v in cfg.items() if not k.startswith("_")}

    te2 = (path / "text_encoder_2").is_dir()
    first_te = sub_config("text_encoder") if (path / "text_encoder").is_dir() else {}
    family = "sdxl" if te2 else ("sd2" if first_te.get("hidden_act") == "gelu" else "sd1")
    prediction = "eps"
    sched = path / "scheduler" / "scheduler_config.json"
    if sched.is_file():
        prediction = _normalise_prediction(json.loads(sched.read_text()).get("prediction_type", "epsilon"))
    result = LoadedCheckpoint(family=family, prediction_type=prediction, source=path.name,
                              metadata={"model_index": json.dumps(index)})
    if "unet" in parts:
        from diffusers import UNet2DConditionModel
        config = clean(sub_config("unet"))
        known = set(inspect.signature(UNet2DConditionModel.__init__).parameters)
        config = {k: v for k, v in config.items() if k in known}
        unet = build_unet(config)
        _materialise(unet, sub_weights("unet"), "U-Net", path.name, dtype)
        result.unet, result.unet_config, result.inpaint = unet.eval(), config, config.get("in_channels") == 9
    if "vae" in parts:
        from diffusers import AutoencoderKL
        config = clean(sub_config("vae"))
        known = set(inspect.signature(AutoencoderKL.__init__).parameters)
        config = {k: v for k, v in config.items() if k in known}
        vae = build_vae(config)
        _materialise(vae, sub_weights("vae"), "VAE", path.name, dtype)
        result.vae, result.vae_config = vae.eval(), config
    if "clip" in parts:
        for sub in ("text_encoder", "text_encoder_2"):
            if not (path / sub).is_dir():
                continue
            config = clean(sub_config(sub))
            arch = (config.get("architectures") or ["CLIPTextModel"])[0]
            config = {k: v for k, v in config.items() if k not in ("architectures", "torch_dtype", "dtype", "transformers_version")}
            config["_class_name"] = arch
            model = build_clip(config)
            weights = sub_weights(sub)
            weights = {k: v for k, v in weights.items() if not k.endswith("position_ids")}
            if clip_core(model) is model:
                weights = {k.removeprefix("text_model."): v for k, v in weights.items()}
            _materialise(model, weights, sub, path.name, dtype)
            result.text_encoders.append(model)
            result.text_encoder_configs.append({k: v for k, v in config.items() if not k.startswith("_")})
    return result


def save_diffusers_folder(path: str | Path, ckpt: LoadedCheckpoint) -> Path:
    """Write a LoadedCheckpoint as a diffusers folder (used by tests and for export)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": "StableDiffusionXLPipeline" if ckpt.family == "sdxl" else "StableDiffusionPipeline"}
    if ckpt.unet is not None:
        ckpt.unet.save_pretrained(path / "unet")
        index["unet"] = ["diffusers", "UNet2DConditionModel"]
    if ckpt.vae is not None:
        ckpt.vae.save_pretrained(path / "vae")
        index["vae"] = ["diffusers", "AutoencoderKL"]
    for i, te in enumerate(ckpt.text_encoders):
        sub = "text_encoder" if i == 0 else "text_encoder_2"
        te.save_pretrained(path / sub)
        index[sub] = ["transformers", type(te).__name__]
    sched = path / "scheduler"
    sched.mkdir(exist_ok=True)
    (sched / "scheduler_config.json").write_text(json.dumps({
        "_class_name": "EulerDiscreteScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
        "beta_end": 0.012, "num_train_timesteps": 1000,
        "prediction_type": "v_prediction" if ckpt.prediction_type == "v" else "epsilon"}))
    (path / "model_index.json").write_text(json.dumps(index, indent=2))
    return path


# =============================================================================================
# Tiny random models (tests, smoke runs): same layouts as the real families, a few MB
# =============================================================================================

def tiny_components(family: str = "sd1", seed: int = 0, inpaint: bool = False, vocab_size: int = 49408) -> dict:
    """Random tiny diffusers/transformers parts of a family: {"unet", "vae", "text_encoder", "text_encoder_2"}.

    U-Net: 2 levels (32, 64), 1 resblock each, 2 heads; VAE: 4 levels (16, 16, 32, 32): downscale 8 as SD;
    CLIP: width 32 (CLIP-L stand-in) / 48 (open_clip stand-in), 3 layers, the full 49408-token vocabulary
    (so the real tokenizer's ids work). Weights get noise added so norms and biases are not trivial.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    width_l, width_g = 32, 48
    context = {"sd1": width_l, "sd2": width_g, "sdxl": width_l + width_g}[family]
    unet_kw: dict[str, Any] = dict(
        sample_size=8, in_channels=9 if inpaint else 4, out_channels=4, block_out_channels=[32, 64],
        layers_per_block=1, down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], cross_attention_dim=context,
        attention_head_dim=2, norm_num_groups=8, use_linear_projection=family != "sd1")
    if family == "sdxl":
        unet_kw.update(addition_embed_type="text_time", addition_time_embed_dim=8,
                       projection_class_embeddings_input_dim=width_g + 6 * 8,
                       down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
                       up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"], transformer_layers_per_block=[1, 2])
    unet = UNet2DConditionModel(**unet_kw)
    vae = AutoencoderKL(block_out_channels=[16, 16, 32, 32], down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=1, norm_num_groups=8,
                        latent_channels=4, sample_size=32, scaling_factor=VAE_SCALING[family])

    def clip(width: int, projection: bool, act: str):
        cfg = CLIPTextConfig(vocab_size=vocab_size, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=3,
                             num_attention_heads=2, max_position_embeddings=77, hidden_act=act, projection_dim=width,
                             pad_token_id=0 if projection else 49407)
        return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)

    parts: dict[str, Any] = {"unet": unet, "vae": vae, "text_encoder_2": None}
    if family == "sd1":
        parts["text_encoder"] = clip(width_l, False, "quick_gelu")
    elif family == "sd2":
        parts["text_encoder"] = clip(width_g, True, "gelu")
    else:
        parts["text_encoder"], parts["text_encoder_2"] = clip(width_l, False, "quick_gelu"), clip(width_g, True, "gelu")
    with torch.no_grad():
        for module in parts.values():
            if module is None:
                continue
            module.eval()
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    return parts


def save_tiny_checkpoint(path: str | Path, family: str = "sd1", seed: int = 0, prediction_type: str = "eps",
                         inpaint: bool = False) -> Path:
    """Write a tiny random checkpoint of a family in the original single-file layout."""
    parts = tiny_components(family, seed, inpaint)
    return save_single_file(path, parts["unet"], parts["vae"], parts["text_encoder"],
                            text_encoder_2=parts["text_encoder_2"], family=family, prediction_type=prediction_type)
