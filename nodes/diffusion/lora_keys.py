"""LoRA key names: the grammar of a file key (module name + component, for kohya/A1111, diffusers/peft,
LyCORIS and ComfyUI files) and every alias a file may use for a weight of our U-Net and text encoders."""
from __future__ import annotations

import logging
import re
import weakref
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


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
    # LyCORIS parts with no patch here (UNSUPPORTED_PARTS): reported as unsupported
    (".w_norm", "w_norm"), (".b_norm", "b_norm"), (".set_weight", "set_weight"), (".on_input", "on_input"),
    (".a1.weight", "glora"), (".a2.weight", "glora"), (".b1.weight", "glora"), (".b2.weight", "glora"),
    (".oft_blocks", "oft"), (".oft_diag", "oft"), (".rescale", "oft"),
)
# old diffusers attention-processor LoRA: <attn>.processor.to_q_lora.down.weight (U-Net) and
# <self_attn>.to_q_lora.down.weight (text encoder)
_OLD_PROCESSOR = re.compile(r"^(.*?)(\.processor)?\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$")
_PEFT_ADAPTER = re.compile(r"^(.*)\.lora_(A|B)\.[A-Za-z0-9_-]+\.weight$")  # peft in-memory: lora_A.<adapter>.weight
_TEXT_PROJ = {"to_q": "q_proj", "to_k": "k_proj", "to_v": "v_proj", "to_out": "out_proj"}
UNSUPPORTED_PARTS = {"w_norm", "b_norm", "set_weight", "on_input", "glora", "oft"}


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
PEFT_PREFIX = "base_model.model."


def is_clip_name(name: str) -> bool:
    return bool(_CLIP_HINT.match(name.removeprefix(PEFT_PREFIX)))
