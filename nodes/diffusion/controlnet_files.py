"""ControlNet model files (original and diffusers layouts): key maps, config inference, reading and writing.
The CONTROL_NET value the sampler runs is in controlnet.py.

A ControlNet is a copy of a U-Net's encoder (input blocks + middle block) plus a small conv
net that turns the hint image into a feature map ("hint block") and one 1x1 "zero conv" per encoder
output. Two layouts exist:

  original (lllyasviel's cldm, what ComfyUI and A1111 load)      diffusers (ControlNetModel)
    [control_model.]time_embed.* / input_blocks.* / middle_block.*   time_embedding / conv_in / down_blocks / mid_block
    [control_model.]input_hint_block.{0,2,...,2n}                    controlnet_cond_embedding.{conv_in, blocks.k, conv_out}
    [control_model.]zero_convs.{i}.0                                 controlnet_down_blocks.{i}
    [control_model.]middle_block_out.0                               controlnet_mid_block

The encoder part uses the U-Net key map of checkpoint/to_ldm.py (unet_to_ldm); the hint block, zero convs
and middle output are mapped here. Every file is first brought to the original layout, the config
is inferred from tensor shapes (as checkpoint.config_inference.infer_unet_config does for U-Nets, with the same
rules for what shapes cannot tell: heads, GroupNorm groups, unless the file carries hints), and a
diffusers ControlNetModel is built on the meta device and filled strictly: a key that is missing
or left over is an error, never silently dropped.
"""
from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from nodegraph import read_weights

from .checkpoint.config_inference import groups_rule, walk_encoder
from .checkpoint.files import read_hints
from .checkpoint.layout import HINTS_KEY, CheckpointError, key_indices
from .checkpoint.modules import materialise
from .checkpoint.to_ldm import unet_to_ldm
from .checkpoint.writer import unet_hints

ORIGINAL_PREFIX = "control_model."


class ControlNetError(CheckpointError):
    """A ControlNet file that cannot be read or has an unsupported layout."""


# =============================================================================================
# Key maps
# =============================================================================================

def _hint_block_size(keys) -> int:
    """Number of convs between conv_in and conv_out of a diffusers hint embedding."""
    return len(key_indices(keys, "controlnet_cond_embedding.blocks."))


def diffusers_to_original(sd: Mapping[str, Any]) -> dict[str, Any]:
    """Rename a diffusers ControlNetModel state dict to the original layout (keys without
    'control_model.'). Values pass through untouched, so it maps key names as well."""
    keys = list(sd)
    per_level = len(key_indices(keys, "down_blocks.0.resnets."))
    if per_level == 0:
        raise ControlNetError("diffusers ControlNet without down_blocks.0.resnets.*")
    blocks = _hint_block_size(keys)
    out: dict[str, Any] = {}
    shared: dict[str, Any] = {}
    for key, value in sd.items():
        m = re.match(r"controlnet_cond_embedding\.(conv_in|conv_out|blocks\.(\d+))\.(weight|bias)$", key)
        if m:
            index = 0 if m.group(1) == "conv_in" else 2 * (blocks + 1) if m.group(1) == "conv_out" else 2 * (int(m.group(2)) + 1)
            out[f"input_hint_block.{index}.{m.group(3)}"] = value
            continue
        m = re.match(r"controlnet_down_blocks\.(\d+)\.(weight|bias)$", key)
        if m:
            out[f"zero_convs.{m.group(1)}.0.{m.group(2)}"] = value
            continue
        m = re.match(r"controlnet_mid_block\.(weight|bias)$", key)
        if m:
            out[f"middle_block_out.0.{m.group(1)}"] = value
            continue
        shared[key] = value
    try:  # the encoder: the U-Net's map (no decoder here, so no up blocks)
        out.update(unet_to_ldm(shared, {"layers_per_block": per_level, "up_block_types": []}))
    except CheckpointError as exc:
        raise ControlNetError(f"diffusers ControlNet: {exc}") from exc
    return out


def original_to_diffusers_names(module: torch.nn.Module) -> dict[str, str]:
    """{original key: diffusers key} for every weight of a ControlNetModel (built on meta is fine)."""
    names = {k: k for k in module.state_dict()}
    return diffusers_to_original(names)


# =============================================================================================
# Config inference (original layout, keys without the prefix)
# =============================================================================================

def infer_controlnet_config(sd: Mapping[str, torch.Tensor], hints: Mapping[str, Any] | None = None,
                            name: str = "controlnet") -> dict:
    """diffusers ControlNetModel config from an original-layout ControlNet state dict."""
    hints = hints or {}
    keys = list(sd)
    for needed in ("input_blocks.0.0.weight", "input_hint_block.0.weight", "zero_convs.0.0.weight",
                   "middle_block_out.0.weight", "time_embed.0.weight"):
        if needed not in sd:
            raise ControlNetError(f"{name}: not a ControlNet ({needed} missing)")
    conv_in = sd["input_blocks.0.0.weight"]
    model_channels, in_channels = int(conv_in.shape[0]), int(conv_in.shape[1])

    layout = walk_encoder(sd, model_channels, name, "ControlNet", ControlNetError)
    zero_convs = key_indices(keys, "zero_convs.")
    if len(zero_convs) != len(key_indices(keys, "input_blocks.")):
        raise ControlNetError(f"{name}: {len(zero_convs)} zero convs for {len(key_indices(keys, 'input_blocks.'))} "
                              "input blocks")

    hint = key_indices(keys, "input_hint_block.")
    if len(hint) < 2 or hint != list(range(0, 2 * len(hint), 2)) or (len(hint) - 2) % 2:
        raise ControlNetError(f"{name}: unexpected hint block layout (conv indices {hint})")
    hint_w = [sd[f"input_hint_block.{i}.weight"] for i in hint]
    embedding = [int(hint_w[0].shape[0])] + [int(w.shape[0]) for w in hint_w[1:-1][1::2]]
    if int(hint_w[-1].shape[0]) != model_channels:
        raise ControlNetError(f"{name}: hint block ends with {hint_w[-1].shape[0]} channels, the encoder "
                              f"starts with {model_channels}")

    config: dict[str, Any] = {
        "in_channels": in_channels, "conditioning_channels": int(hint_w[0].shape[1]),
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in layout.has_attn],
        "block_out_channels": layout.widths, "layers_per_block": layout.layers_per_block,
        "cross_attention_dim": layout.context_dim, "attention_head_dim": layout.attention_heads(hints),
        "transformer_layers_per_block": layout.transformer_layers, "use_linear_projection": layout.linear,
        "norm_num_groups": int(hints.get("norm_num_groups") or groups_rule(layout.widths)),
        "upcast_attention": bool(hints.get("upcast_attention", False)),
        "conditioning_embedding_out_channels": embedding,
    }
    if "label_emb.0.0.weight" in sd:  # SDXL: pooled text embedding + 6 size/crop ids
        adm_in = int(sd["label_emb.0.0.weight"].shape[1])
        time_dim = int(hints.get("addition_time_embed_dim", 256))
        if adm_in <= 6 * time_dim:
            raise ControlNetError(f"{name}: class/ADM embedding of {adm_in} inputs fits no supported model")
        config.update(addition_embed_type="text_time", addition_time_embed_dim=time_dim,
                      projection_class_embeddings_input_dim=adm_in)
    return config


# =============================================================================================
# Building, reading, writing
# =============================================================================================

def accepted_config(config: Mapping[str, Any]) -> dict:
    """The entries of a config that diffusers' ControlNetModel takes (tuples as lists)."""
    from diffusers import ControlNetModel
    known = set(inspect.signature(ControlNetModel.__init__).parameters)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items() if k in known}


def build_controlnet(config: Mapping[str, Any]):
    """A ControlNetModel on the meta device (weights assigned by the loader)."""
    from diffusers import ControlNetModel
    try:
        with torch.device("meta"):
            return ControlNetModel(**accepted_config(config))
    except (ValueError, TypeError) as exc:
        raise ControlNetError(f"the ControlNet config {dict(config)} cannot be built: {exc}") from exc


@dataclass
class LoadedControlNet:
    module: Any  # diffusers ControlNetModel
    config: dict
    layout: str  # "original" | "diffusers"
    metadata: dict = field(default_factory=dict)
    ignored_keys: list[str] = field(default_factory=list)  # non-ControlNet keys of a full original .pth


def _is_diffusers(keys) -> bool:
    return "controlnet_cond_embedding.conv_in.weight" in keys


def _original_part(sd: dict[str, torch.Tensor], name: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The ControlNet keys of an original-layout file, without 'control_model.' (a training
    checkpoint also holds the base model, which is left out and listed)."""
    if "difference" in sd:
        raise ControlNetError(f"{name}: a 'difference' ControlNet (stored as a delta to its base model) is "
                              "not supported; convert it to a full ControlNet")
    if any(k.startswith(ORIGINAL_PREFIX) for k in sd):
        ignored = sorted(k for k in sd if not k.startswith(ORIGINAL_PREFIX))
        return {k[len(ORIGINAL_PREFIX):]: v for k, v in sd.items() if k.startswith(ORIGINAL_PREFIX)}, ignored
    return dict(sd), []


def _diagnose(sd: Mapping[str, torch.Tensor], name: str) -> ControlNetError:
    keys = list(sd)
    if "lora_controlnet" in sd:
        what = "a Control-LoRA"
    elif any(k.startswith(("adapter.", "body.", "conv_in.weight")) for k in keys) and "time_embed.0.weight" not in sd:
        what = "a T2I-Adapter"
    else:
        heads = sorted({k.split(".")[0] for k in keys})
        what = f"no ControlNet (top-level keys: {', '.join(heads[:8])}{'...' if len(heads) > 8 else ''})"
    return ControlNetError(f"{name}: {what}; ControlNetLoader reads ControlNets in the original layout "
                           "(control_model.* / input_hint_block / zero_convs) or the diffusers layout "
                           "(controlnet_cond_embedding / controlnet_down_blocks)")


def _folder_config(path: Path) -> dict | None:
    """config.json of a diffusers ControlNet folder (the folder itself, or the folder of a weights file)."""
    folder = path if path.is_dir() else path.parent
    f = folder / "config.json"
    if not f.is_file():
        return None
    try:
        config = json.loads(f.read_text())
    except ValueError:
        return None
    if config.get("_class_name") not in (None, "ControlNetModel"):
        return None
    return {k: v for k, v in config.items() if not k.startswith("_")}


def load_controlnet_state_dict(sd: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None, *,
                               name: str = "controlnet", config: Mapping[str, Any] | None = None,
                               dtype: torch.dtype | None = None) -> LoadedControlNet:
    """Any supported layout -> a ControlNetModel, all weights assigned (strict)."""
    metadata = dict(metadata or {})
    sd = dict(sd)
    ignored: list[str] = []
    if _is_diffusers(sd):
        layout = "diffusers"
        sd = diffusers_to_original(sd)
    elif "input_hint_block.0.weight" in sd or f"{ORIGINAL_PREFIX}input_hint_block.0.weight" in sd:
        layout = "original"
        sd, ignored = _original_part(sd, name)
    else:
        raise _diagnose(sd, name)
    if config is None:
        config = infer_controlnet_config(sd, read_hints(metadata).get("controlnet"), name)
    module = build_controlnet(config)
    names = original_to_diffusers_names(module)
    unknown = sorted(set(sd) - set(names))
    if unknown:
        raise ControlNetError(f"{name}: {len(unknown)} ControlNet weights have no place in the inferred "
                              f"architecture: {unknown[:8]}{'...' if len(unknown) > 8 else ''}")
    materialise(module, {names[k]: v for k, v in sd.items()}, "ControlNet", name, dtype)
    return LoadedControlNet(module.eval(), dict(accepted_config(config)), layout, metadata, ignored)


def load_controlnet_file(path: str | Path, *, dtype: torch.dtype | None = None) -> LoadedControlNet:
    """A .safetensors / .ckpt / .pth / .bin ControlNet file, or a diffusers ControlNet folder."""
    path = Path(path)
    config = _folder_config(path)
    if path.is_dir():
        files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
        if config is None or not files:
            raise ControlNetError(f"{path.name}: not a diffusers ControlNet folder (config.json and "
                                  "diffusion_pytorch_model.safetensors expected)")
        sd: dict[str, torch.Tensor] = {}
        metadata: dict[str, str] = {}
        for f in files:
            part = read_weights(f)
            sd.update(part.tensors)
            metadata.update(part.metadata)
    else:
        file = read_weights(path)
        sd, metadata = file.tensors, file.metadata
        if not _is_diffusers(sd):
            config = None  # a config.json beside an original-layout file is not its config
    return load_controlnet_state_dict(sd, metadata, name=path.name, config=config, dtype=dtype)


def save_controlnet(path: str | Path, module: torch.nn.Module, metadata: Mapping[str, str] | None = None, *,
                    dtype: torch.dtype | None = torch.float16, prefix: str = ORIGINAL_PREFIX) -> Path:
    """Write a diffusers ControlNetModel in the original single-file layout (safetensors), with the
    loader's hints in the metadata under "nodegraph.hints"."""
    from safetensors.torch import save_file
    tensors = diffusers_to_original(module.state_dict())
    out = {}
    for key, value in tensors.items():
        value = value.detach()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        out[prefix + key] = value.to("cpu").contiguous().clone()
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta[HINTS_KEY] = json.dumps({"controlnet": unet_hints(dict(module.config))})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(path), metadata=meta)
    return path


def controlnet_from_unet(unet: torch.nn.Module, conditioning_channels: int = 3,
                         conditioning_embedding_out_channels: tuple[int, ...] = (16, 32, 96, 256)):
    """diffusers' ControlNetModel.from_unet: the U-Net's encoder weights, zero convs at zero."""
    from diffusers import ControlNetModel
    return ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=conditioning_embedding_out_channels,
                                     conditioning_channels=conditioning_channels)
