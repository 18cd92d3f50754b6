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

Patches are small callables holding the low-rank factors: the full delta is computed only when the
device manager applies it, on the weight's device, in float32, so a LoRA costs its file size in RAM.
"""
from __future__ import annotations

import json
import logging
import math
import re
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from nodegraph import WeightsFile, read_weights

log = logging.getLogger(__name__)


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
# Patches: deltas computed where and when they are applied
# =============================================================================================

def _f32(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t.to(device=device, dtype=torch.float32)


def _tucker(core: torch.Tensor, in_factor: torch.Tensor, out_factor: torch.Tensor) -> torch.Tensor:
    """Conv weight [out, in, kh, kw] from a Tucker core [r_out, r_in, kh, kw], in factor [r_in, in] and
    out factor [out, r_out]."""
    return torch.einsum("ijkl,jr,pi->prkl", core, in_factor, out_factor)


class WeightPatch:
    """Base of the callable patches: `patch(weight) -> delta` shaped like the target weight."""

    shape: tuple[int, ...] = ()  # the target weight's shape (set when matched to a model)

    def natural_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def delta(self, device: torch.device) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        return self.delta(weight.device).reshape(weight.shape)


class LowRank(WeightPatch):
    """LoRA / LoCon: delta = scale * up @ down (conv: k x k down, 1x1 up; optional Tucker mid)."""

    __slots__ = ("up", "down", "mid", "scale", "shape")

    def __init__(self, up: torch.Tensor, down: torch.Tensor, mid: torch.Tensor | None, scale: float) -> None:
        self.up, self.down, self.mid, self.scale = up, down, mid, float(scale)
        self.shape = ()

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    def natural_shape(self) -> tuple[int, ...]:
        if self.mid is not None:
            return (self.up.shape[0], self.down.shape[1], *self.mid.shape[2:])
        if self.down.ndim == 4:
            return (self.up.shape[0], *self.down.shape[1:])
        return (self.up.shape[0], self.down.shape[1])

    def delta(self, device: torch.device) -> torch.Tensor:
        up = _f32(self.up, device).flatten(1)
        if self.mid is not None:
            d = _tucker(_f32(self.mid, device), _f32(self.down, device).flatten(1), up)
        else:
            d = up @ _f32(self.down, device).flatten(1)
        return d * self.scale


class LoHa(WeightPatch):
    """LyCORIS LoHa: delta = scale * (w1a @ w1b) * (w2a @ w2b) (Hadamard product; optional Tucker t1, t2)."""

    __slots__ = ("w1a", "w1b", "w2a", "w2b", "t1", "t2", "scale", "shape")

    def __init__(self, w1a, w1b, w2a, w2b, t1, t2, scale: float) -> None:
        self.w1a, self.w1b, self.w2a, self.w2b, self.t1, self.t2 = w1a, w1b, w2a, w2b, t1, t2
        self.scale = float(scale)
        self.shape = ()

    def natural_shape(self) -> tuple[int, ...]:
        if self.t1 is not None:
            return (self.w1a.shape[1], self.w1b.shape[1], *self.t1.shape[2:])
        return (self.w1a.shape[0], int(math.prod(self.w1b.shape[1:])))

    def delta(self, device: torch.device) -> torch.Tensor:
        f = lambda t: _f32(t, device)  # noqa: E731
        if self.t1 is not None:  # LyCORIS' Tucker LoHa: wa is [r, out], wb [r, in]
            w1 = torch.einsum("ijkl,jr,ip->prkl", f(self.t1), f(self.w1b), f(self.w1a))
            w2 = torch.einsum("ijkl,jr,ip->prkl", f(self.t2), f(self.w2b), f(self.w2a))
        else:
            w1 = f(self.w1a) @ f(self.w1b).flatten(1)
            w2 = f(self.w2a) @ f(self.w2b).flatten(1)
        return w1 * w2 * self.scale


class LoKr(WeightPatch):
    """LyCORIS LoKr: delta = scale * kron(w1, w2), each factor full or low-rank (w2 optionally Tucker)."""

    __slots__ = ("w1", "w1a", "w1b", "w2", "w2a", "w2b", "t2", "scale", "shape")

    def __init__(self, parts: Mapping[str, torch.Tensor], scale: float) -> None:
        for name in ("w1", "w1a", "w1b", "w2", "w2a", "w2b", "t2"):
            setattr(self, name, parts.get(name))
        self.scale = float(scale)
        self.shape = ()

    def _factors(self, device: torch.device | None) -> tuple[torch.Tensor, torch.Tensor]:
        def f(t):
            return t if device is None else _f32(t, device)
        w1 = f(self.w1) if self.w1 is not None else f(self.w1a) @ f(self.w1b)
        if self.w2 is not None:
            w2 = f(self.w2)
        elif self.t2 is not None:
            w2 = torch.einsum("ijkl,jr,ip->prkl", f(self.t2), f(self.w2b), f(self.w2a))
        else:
            w2 = f(self.w2a) @ f(self.w2b).flatten(1)
        return w1, w2

    def natural_shape(self) -> tuple[int, ...]:
        w1, w2 = self._factors(torch.device("meta"))
        return tuple(a * b for a, b in zip(w1.shape, w2.shape[:2])) + tuple(w2.shape[2:])

    def delta(self, device: torch.device) -> torch.Tensor:
        w1, w2 = self._factors(device)
        if w2.ndim == 4:
            w1 = w1[:, :, None, None]
        return torch.kron(w1, w2) * self.scale


class FullDelta(WeightPatch):
    """A stored full difference (.diff / .diff_b, or a peft lora_B bias) times a scale."""

    __slots__ = ("diff", "scale", "shape")

    def __init__(self, diff: torch.Tensor, scale: float = 1.0) -> None:
        self.diff, self.scale, self.shape = diff, float(scale), ()

    def natural_shape(self) -> tuple[int, ...]:
        return tuple(self.diff.shape)

    def delta(self, device: torch.device) -> torch.Tensor:
        return _f32(self.diff, device) * self.scale


class DoRA(WeightPatch):
    """Weight-decomposed LoRA: w' = magnitude * (w + d) / ||w + d||, the norm per output channel (peft's
    lora_magnitude_vector [out]) or per input column (kohya/LyCORIS dora_scale [1, in, ...]).
    The delta depends on the weight it is applied to (w' - w), so it needs the current weight."""

    __slots__ = ("inner", "magnitude", "shape")

    def __init__(self, inner: WeightPatch, magnitude: torch.Tensor) -> None:
        self.inner, self.magnitude, self.shape = inner, magnitude, ()

    def natural_shape(self) -> tuple[int, ...]:
        return self.inner.natural_shape()

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        w = weight.float()
        combined = w + self.inner.delta(weight.device).reshape(weight.shape)
        m = _f32(self.magnitude, weight.device)
        if m.numel() == combined.shape[0]:  # one magnitude per output channel
            norm = combined.reshape(combined.shape[0], -1).norm(dim=1)
            scaled = combined * (m.flatten() / (norm + 1e-8)).view(-1, *[1] * (combined.ndim - 1))
        else:  # one magnitude per input column: norm over the output axis
            norm = combined.transpose(0, 1).reshape(combined.shape[1], -1).norm(dim=1)
            view = [1, -1] + [1] * (combined.ndim - 2)
            scaled = combined * (m.reshape(view) / (norm.view(view) + 1e-8))
        return scaled - w


# =============================================================================================
# Key grammar: file key -> (module name, component)
# =============================================================================================

_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".lora_down.weight", "down"), (".lora_up.weight", "up"), (".lora_mid.weight", "mid"),
    (".lora_A.weight", "down"), (".lora_B.weight", "up"), (".lora_B.bias", "up_bias"),
    (".lora.down.weight", "down"), (".lora.up.weight", "up"),
    (".lora_linear_layer.down.weight", "down"), (".lora_linear_layer.up.weight", "up"),
    (".hada_w1_a", "hada_w1_a"), (".hada_w1_b", "hada_w1_b"), (".hada_w2_a", "hada_w2_a"),
    (".hada_w2_b", "hada_w2_b"), (".hada_t1", "hada_t1"), (".hada_t2", "hada_t2"),
    (".lokr_w1", "lokr_w1"), (".lokr_w1_a", "lokr_w1a"), (".lokr_w1_b", "lokr_w1b"),
    (".lokr_w2", "lokr_w2"), (".lokr_w2_a", "lokr_w2a"), (".lokr_w2_b", "lokr_w2b"), (".lokr_t2", "lokr_t2"),
    (".diff", "diff"), (".diff_b", "diff_b"),
    (".dora_scale", "dora"), (".lora_magnitude_vector", "dora"), (".lora_magnitude_vector.weight", "dora"),
    (".alpha", "alpha"),
    # LyCORIS parts with no patch here: reported as unsupported
    (".w_norm", "w_norm"), (".b_norm", "b_norm"), (".set_weight", "set_weight"), (".on_input", "on_input"),
    (".a1.weight", "glora"), (".a2.weight", "glora"), (".b1.weight", "glora"), (".b2.weight", "glora"),
    (".oft_blocks", "oft"), (".oft_diag", "oft"), (".rescale", "oft"),
)
# old diffusers attention-processor LoRA: <attn>.processor.to_q_lora.down.weight (U-Net) and
# <self_attn>.to_q_lora.down.weight (text encoder)
_OLD_PROCESSOR = re.compile(r"^(.*?)(\.processor)?\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$")
_PEFT_ADAPTER = re.compile(r"^(.*)\.lora_(A|B)\.[A-Za-z0-9_-]+\.weight$")  # peft in-memory: lora_A.<adapter>.weight
_TEXT_PROJ = {"to_q": "q_proj", "to_k": "k_proj", "to_v": "v_proj", "to_out": "out_proj"}
_UNSUPPORTED = {"w_norm", "b_norm", "set_weight", "on_input", "glora", "oft"}


def split_key(key: str) -> tuple[str, str] | None:
    """(module name, component) of one file key, or None if it is no LoRA key we know."""
    m = _OLD_PROCESSOR.match(key)
    if m:
        base, processor, proj, part = m.groups()
        if processor or not base.endswith("self_attn"):
            module = f"{base}.{'to_out.0' if proj == 'to_out' else proj}"
        else:
            module = f"{base}.{_TEXT_PROJ[proj]}"
        return module, part
    for suffix, component in _SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], component
    m = _PEFT_ADAPTER.match(key)
    if m:
        return m.group(1), "down" if m.group(2) == "A" else "up"
    return None


# =============================================================================================
# Target names: every alias a LoRA file may use for a weight of our modules
# =============================================================================================

@dataclass(frozen=True)
class Target:
    side: str  # "model" or "clip"
    module: str  # module path inside the handle's module ("unet.down_blocks.0...to_q")
    weight_shape: tuple[int, ...]
    bias_shape: tuple[int, ...] | None


def _kohya(path: str) -> str:
    return path.replace(".", "_")


_UNET_TARGETS: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()
_CLIP_TARGETS: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def _module_params(module: torch.nn.Module) -> dict[str, tuple[tuple[int, ...], tuple[int, ...] | None]]:
    """module path -> (weight shape, bias shape or None) for every submodule with a weight."""
    shapes = {name: tuple(p.shape) for name, p in module.named_parameters()}
    out = {}
    for name, shape in shapes.items():
        if name.endswith(".weight"):
            path = name[: -len(".weight")]
            out[path] = (shape, shapes.get(path + ".bias"))
    return out


def unet_targets(model: torch.nn.Module) -> dict[str, list[Target]]:
    """Aliases of every U-Net weight of a DiffusionModel (or anything with `.unet` and `.config`)."""
    cached = _UNET_TARGETS.get(model)
    if cached is not None:
        return cached
    from .checkpoint.layout import CheckpointError
    from .checkpoint.to_ldm import unet_to_ldm
    unet = model.unet
    params = _module_params(unet)
    ldm: dict[str, str] = {}
    try:
        renamed = unet_to_ldm({f"{p}.weight": p for p in params}, dict(getattr(model, "config", None) or unet.config))
        ldm = {diffusers: key[: -len(".weight")] for key, diffusers in renamed.items()}
    except (CheckpointError, KeyError, TypeError) as exc:  # an unusual U-Net: diffusers names only
        log.info("LoRA: no LDM names for this U-Net (%s)", exc)
    table: dict[str, list[Target]] = {}
    for path, (wshape, bshape) in params.items():
        target = Target("model", f"unet.{path}", wshape, bshape)
        names = [f"lora_unet_{_kohya(path)}", f"unet.{path}", path]
        if path in ldm:
            names += [f"lora_unet_{_kohya(ldm[path])}", f"diffusion_model.{ldm[path]}",
                      f"model.diffusion_model.{ldm[path]}"]
        for name in names:
            table.setdefault(name, []).append(target)
    _UNET_TARGETS[model] = table
    return table


def clip_targets(clip: torch.nn.Module) -> dict[str, list[Target]]:
    """Aliases of every text-encoder weight of a ClipModel (encoders.<i>)."""
    cached = _CLIP_TARGETS.get(clip)
    if cached is not None:
        return cached
    from .checkpoint.modules import clip_core
    table: dict[str, list[Target]] = {}
    encoders = list(clip.encoders)
    for i, encoder in enumerate(encoders):
        core = clip_core(encoder)
        core_path = next(name for name, m in encoder.named_modules() if m is core)
        prefix = f"encoders.{i}." + (f"{core_path}." if core_path else "")
        entries = {f"text_model.{p}": (prefix + p, s) for p, s in _module_params(core).items()}
        if getattr(encoder, "text_projection", None) is not None:
            entries["text_projection"] = (f"encoders.{i}.text_projection", (tuple(encoder.text_projection.weight.shape), None))
        kohya = ["lora_te_", f"lora_te{i + 1}_"] if i == 0 else [f"lora_te{i + 1}_"]
        diffusers = ["text_encoder."] if i == 0 else [f"text_encoder_{i + 1}."]
        spec = clip.specs[i].name if hasattr(clip, "specs") else ""
        comfy = [f"text_encoders.clip_{spec}.transformer."] if spec else []
        for path, (module, (wshape, bshape)) in entries.items():
            target = Target("clip", module, wshape, bshape)
            names = [k + _kohya(path) for k in kohya] + [d + path for d in diffusers] + [c + path for c in comfy] + [path]
            for name in names:
                table.setdefault(name, []).append(target)
    _CLIP_TARGETS[clip] = table
    return table


_CLIP_HINT = re.compile(r"^(lora_te\d?_|text_encoder(_\d)?\.|text_encoders\.|text_model\.|te\d?\.|clip_[lgh]\.)")
_PEFT_PREFIX = "base_model.model."


def _is_clip_name(name: str) -> bool:
    return bool(_CLIP_HINT.match(name.removeprefix(_PEFT_PREFIX)))


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
        if _UNSUPPORTED & set(parts):
            result.unsupported += keys
            continue
        lookup = module_name.removeprefix(_PEFT_PREFIX)
        candidates = [t for table in tables for t in table.get(lookup, ())]
        if not candidates:
            if clip is None and _is_clip_name(module_name):
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
