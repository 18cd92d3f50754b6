"""LoRA files -> weight patches for MODEL and CLIP handles (the device manager applies them).

    lora = read_lora(path)                                   # tensors + metadata
    patches = build_patches(lora, model=diffusion_model, clip=clip_model)
    model_handle.add_patches(patches.model, strength)        # keys: "unet.<diffusers key>"
    clip_handle.add_patches(patches.clip, strength)          # keys: "encoders.<i>.<transformers key>"
    patches.unmatched                                         # file keys that match no weight (report them)

Formats (one file may mix them):
  kohya / A1111   lora_unet_<module path with '_'>  (diffusers names, as sd-scripts writes for SD1/SD2, or
                  original LDM names: input_blocks / middle_block / output_blocks, as SDXL files and others),
                  lora_te_ (SD1/SD2), lora_te1_ / lora_te2_ (SDXL) + text_model_encoder_layers_...
                  components .lora_down.weight / .lora_up.weight / .alpha, LoCon convs (k x k down, 1x1 up),
                  .lora_mid.weight (Tucker), LyCORIS LoHa (hada_*), LoKr (lokr_*), full .diff / .diff_b,
                  DoRA .dora_scale
  diffusers/peft  unet.<key>.lora_A.weight / lora_B.weight (also lora.down / lora.up, lora_linear_layer),
                  text_encoder.<key>, text_encoder_2.<key>, base_model.model.<key>, the old attention-processor
                  form (attn1.processor.to_q_lora.up.weight), peft alpha from `.alpha` tensors or the
                  "lora_adapter_metadata" that diffusers writes (lora_alpha, alpha_pattern, use_rslora)
  ComfyUI         diffusion_model.<LDM key>.lora_down.weight ...

Modules: lora_keys (key grammar, target aliases), lora_patches (the patch kinds); this one reads files,
maps their keys to patches (build_patches) and writes LoRAs.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from nodegraph import WeightsFile, read_weights

from .lora_keys import PEFT_PREFIX, UNSUPPORTED_PARTS, clip_targets, is_clip_name, split_key, unet_targets
from .lora_patches import DoRA, FullDelta, LoHa, LoKr, LowRank, WeightPatch


class LoraError(ValueError):
    """A LoRA file that cannot be read or holds no LoRA weights."""


# =============================================================================================
# Reading
# =============================================================================================

@dataclass
class LoraFile:
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]
    name: str = ""

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


def lora_from_weights(weights: WeightsFile) -> LoraFile:
    """The model-file service's builder: a LoRA is its tensors and metadata."""
    return LoraFile(weights.tensors, weights.metadata, weights.name)


def read_lora(path: str | Path) -> LoraFile:
    """Tensors and metadata of a LoRA file (.safetensors, or .pt/.ckpt/.bin read with weights_only)."""
    return lora_from_weights(read_weights(path))


# =============================================================================================
# Building patches
# =============================================================================================


@dataclass
class LoraPatches:
    model: dict[str, WeightPatch] = field(default_factory=dict)  # "unet.<key>" -> patch
    clip: dict[str, WeightPatch] = field(default_factory=dict)  # "encoders.<i>.<key>" -> patch
    unmatched: list[str] = field(default_factory=list)  # file keys naming no weight of the given modules
    unsupported: list[str] = field(default_factory=list)  # keys of kinds no patch exists for here
    mismatched: list[str] = field(default_factory=list)  # keys whose delta shape does not fit the weight
    clip_keys: list[str] = field(default_factory=list)  # text-encoder keys met without a CLIP to patch

    def problems(self, what: str) -> list[str]:
        """Human messages for the unmatched / unsupported / mismatched keys (empty if none)."""
        out = []
        for keys, why in ((self.unmatched, f"match no weight of the {what}"),
                          (self.unsupported, "are of a kind not supported here (LyCORIS norm/GLoRA/OFT/set)"),
                          (self.mismatched, "have shapes that do not fit the weights they name")):
            if keys:
                shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
                out.append(f"{len(keys)} key{'s' if len(keys) > 1 else ''} {why}: {shown}")
        return out


def _adapter_metadata(metadata: Mapping[str, str]) -> dict[str, Any]:
    raw = metadata.get("lora_adapter_metadata")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
        return data if isinstance(data, dict) else {}
    except ValueError:
        return {}


def _peft_scale(module_name: str, rank: int, adapter: Mapping[str, Any]) -> float:
    """alpha / r (or / sqrt(r) with rsLoRA) from diffusers' lora_adapter_metadata, 1 if absent."""
    for part in ("unet", "text_encoder_2", "text_encoder", "transformer"):
        if module_name.startswith(part + ".") and f"{part}.lora_alpha" in adapter:
            alpha = float(adapter[f"{part}.lora_alpha"])
            inner = module_name[len(part) + 1:]
            for pattern, value in (adapter.get(f"{part}.alpha_pattern") or {}).items():
                if re.match(rf"(.*\.)?({pattern})$", inner):
                    alpha = float(value)
            root = math.sqrt(rank) if adapter.get(f"{part}.use_rslora") else rank
            return alpha / root
    return 1.0


def _make_patch(parts: dict[str, torch.Tensor], module_name: str, adapter: Mapping[str, Any]
                ) -> tuple[WeightPatch | None, WeightPatch | None, list[str]]:
    """(weight patch, bias patch, problems) for one module's components."""
    alpha = float(parts["alpha"].float().item()) if "alpha" in parts else None
    weight = None
    if "down" in parts and "up" in parts:
        rank = int(parts["down"].shape[0])
        scale = alpha / rank if alpha is not None else _peft_scale(module_name, rank, adapter)
        weight = LowRank(parts["up"], parts["down"], parts.get("mid"), scale)
    elif all(f"hada_w{i}_{ab}" in parts for i in (1, 2) for ab in "ab"):
        rank = int(parts["hada_w1_b"].shape[0])
        weight = LoHa(parts["hada_w1_a"], parts["hada_w1_b"], parts["hada_w2_a"], parts["hada_w2_b"],
                      parts.get("hada_t1"), parts.get("hada_t2"), alpha / rank if alpha is not None else 1.0)
    elif any(k.startswith("lokr_") for k in parts):
        lokr = {k[len("lokr_"):]: v for k, v in parts.items() if k.startswith("lokr_")}
        if ("w1" in lokr or {"w1a", "w1b"} <= set(lokr)) and ("w2" in lokr or {"w2a", "w2b"} <= set(lokr)):
            rank = lokr["w1b"].shape[0] if "w1" not in lokr else (lokr["w2b"].shape[0] if "w2" not in lokr else None)
            scale = alpha / int(rank) if alpha is not None and rank is not None else 1.0
            weight = LoKr(lokr, scale)
    elif "diff" in parts:
        weight = FullDelta(parts["diff"])
    if weight is not None and "dora" in parts:
        weight = DoRA(weight, parts["dora"])
    bias = None
    if "diff_b" in parts:
        bias = FullDelta(parts["diff_b"])
    elif "up_bias" in parts and isinstance(weight, (LowRank, DoRA)):
        low = weight.inner if isinstance(weight, DoRA) else weight
        bias = FullDelta(parts["up_bias"], low.scale)
    problems = []
    if weight is None and bias is None:
        problems.append("incomplete")
    return weight, bias, problems


def _fits(patch: WeightPatch, shape: tuple[int, ...] | None) -> bool:
    if shape is None:
        return False
    natural = patch.natural_shape()
    return math.prod(natural) == math.prod(shape) and (len(shape) < 1 or natural[0] == shape[0])


def build_patches(lora: LoraFile | Mapping[str, torch.Tensor], model: torch.nn.Module | None = None,
                  clip: torch.nn.Module | None = None) -> LoraPatches:
    """Map a LoRA's keys to patches for a DiffusionModel and/or ClipModel. Every key of the file ends
    up in a patch or in one of the report lists (unmatched, unsupported, mismatched, clip_keys)."""
    tensors = lora.tensors if isinstance(lora, LoraFile) else dict(lora)
    metadata = lora.metadata if isinstance(lora, LoraFile) else {}
    adapter = _adapter_metadata(metadata)
    groups: dict[str, dict[str, torch.Tensor]] = {}
    keys_of: dict[str, list[str]] = {}
    result = LoraPatches()
    for key, value in tensors.items():
        split = split_key(key)
        if split is None:
            result.unmatched.append(key)
            continue
        module, component = split
        groups.setdefault(module, {})[component] = value
        keys_of.setdefault(module, []).append(key)
    tables = []
    if model is not None:
        tables.append(unet_targets(model))
    if clip is not None:
        tables.append(clip_targets(clip))
    for module_name, parts in groups.items():
        keys = keys_of[module_name]
        if UNSUPPORTED_PARTS & set(parts):
            result.unsupported += keys
            continue
        lookup = module_name.removeprefix(PEFT_PREFIX)
        candidates = [t for table in tables for t in table.get(lookup, ())]
        if not candidates:
            if clip is None and is_clip_name(module_name):
                result.clip_keys += keys
            else:
                result.unmatched += keys
            continue
        weight, bias, problems = _make_patch(parts, module_name, adapter)
        if problems:
            result.unmatched += keys
            continue
        target = next((t for t in candidates if weight is None or _fits(weight, t.weight_shape)), None)
        if target is None or (bias is not None and not _fits(bias, target.bias_shape)):
            result.mismatched += keys
            continue
        side = result.model if target.side == "model" else result.clip
        if weight is not None:
            weight.shape = target.weight_shape
            side[f"{target.module}.weight"] = weight
        if bias is not None:
            bias.shape = target.bias_shape
            side[f"{target.module}.bias"] = bias
    return result


# =============================================================================================
# Writing (tests, training, benchmarks)
# =============================================================================================

def save_lora(path: str | Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any] | None = None) -> Path:
    """Write LoRA tensors as safetensors; metadata values that are not strings are JSON-encoded."""
    from safetensors.torch import save_file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def count_layers(keys: Iterable[str]) -> int:
    """Number of distinct modules a set of LoRA keys touches."""
    return len({s[0] for s in map(split_key, keys) if s is not None})
