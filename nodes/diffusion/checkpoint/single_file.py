"""Loading a single-file checkpoint: detect the family (sd1, sd2, sdxl; inpainting U-Nets) from the
keys, infer every part's config from tensor shapes, build diffusers `UNet2DConditionModel` /
`AutoencoderKL` and transformers `CLIPTextModel(WithProjection)` and convert the weights with
diffusers' single-file converters. A tiny model in the same layout loads through the very same path.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from .config_inference import infer_clip_config, infer_unet_config, infer_vae_config
from .diffusers_folder import load_diffusers_folder
from nodegraph import WeightsFile

from .files import read_hints, weights_of
from .from_ldm import convert_hf_clip, convert_open_clip, convert_unet, convert_vae
from .layout import (SD1_CLIP_PREFIX, SD2_CLIP_PREFIX, SDXL_CLIP_G_PREFIX, SDXL_CLIP_L_PREFIX,
                     SDXL_REFINER_CLIP_G_PREFIX, UNET_PREFIX,
                     VAE_PREFIX, VAE_SCALING, CheckpointError, LoadedCheckpoint, key_indices, normalise_prediction,
                     prefix_summary, strip_prefix)
from .modules import build_clip, build_unet, build_vae, clip_core, materialise
from .to_ldm import clip_state, clip_to_open_clip, unet_to_ldm, vae_to_ldm

log = logging.getLogger(__name__)

_OPEN_CLIP_IGNORED = ("logit_scale", "attn_mask")


def detect_family(sd: Mapping[str, torch.Tensor], hints: Mapping[str, Any] | None = None) -> str:
    """sd1 / sd2 / sdxl / sdxl_refiner from which text-encoder layout (or U-Net shapes) the file has."""
    hints = hints or {}
    keys = sd.keys()
    if any(k.startswith("conditioner.embedders.") for k in keys):
        has_l = any(k.startswith(SDXL_CLIP_L_PREFIX) for k in keys)
        has_g = any(k.startswith(SDXL_CLIP_G_PREFIX) for k in keys)
        if has_l and has_g:
            return "sdxl"
        if any(k.startswith(SDXL_REFINER_CLIP_G_PREFIX) for k in keys):
            return "sdxl_refiner"  # ComfyUI's SDXLRefiner: bigG alone, aesthetic-score U-Net
        raise CheckpointError("conditioner.embedders.* keys found, but not the SDXL pair "
                              "(embedders.0.transformer = CLIP-L, embedders.1.model = bigG)")
    if any(k.startswith(SD2_CLIP_PREFIX) for k in keys):
        return "sd2"
    if any(k.startswith(SD1_CLIP_PREFIX) for k in keys):
        return "sd1"
    if hints.get("family") in ("sd1", "sd2", "sdxl", "sdxl_refiner"):
        return hints["family"]
    # no text encoder in the file: decide from the U-Net
    unet = strip_prefix(sd, UNET_PREFIX) or sd
    if "label_emb.0.0.weight" in unet:
        return "sdxl"
    ctx = next((int(v.shape[1]) for k, v in unet.items() if k.endswith("attn2.to_k.weight")), None)
    return {768: "sd1", 1024: "sd2", 2048: "sdxl"}.get(ctx, "sd1")


def detect_prediction_type(sd: Mapping[str, torch.Tensor], unet_sd: Mapping[str, torch.Tensor], family: str,
                           in_channels: int, hints: Mapping[str, Any] | None = None) -> str:
    """eps or v: a hint, a 'v_pred' marker key, or ComfyUI's SD2 heuristic (norm1 bias spread)."""
    hints = hints or {}
    if hints.get("prediction_type"):
        return normalise_prediction(hints["prediction_type"])
    if "v_pred" in sd:
        return "v"
    if family in ("sd1", "sd2") and "label_emb.0.0.weight" in unet_sd:
        return "v"  # SD2.1 unCLIP (ComfyUI's SD21UNCLIP is always v-prediction)
    if family == "sd2" and in_channels == 4:
        outs = key_indices(unet_sd, "output_blocks.")
        if outs:
            bias = unet_sd.get(f"output_blocks.{outs[-1]}.1.transformer_blocks.0.norm1.bias")
            if bias is not None and not bias.is_meta and torch.std(bias.float(), unbiased=False) > 0.09:
                return "v"
    return "eps"


def _clip_parts(sd: Mapping[str, torch.Tensor], family: str) -> list[tuple[dict, bool]]:
    """(raw text-encoder weights after the prefix, is_open_clip) for each text encoder of the family."""
    if family == "sd1":
        parts = [(strip_prefix(sd, SD1_CLIP_PREFIX), False)]
    elif family == "sd2":
        parts = [(strip_prefix(sd, SD2_CLIP_PREFIX), True)]
    elif family == "sdxl_refiner":
        parts = [(strip_prefix(sd, SDXL_REFINER_CLIP_G_PREFIX), True)]
    else:
        parts = [(strip_prefix(sd, SDXL_CLIP_L_PREFIX), False), (strip_prefix(sd, SDXL_CLIP_G_PREFIX), True)]
    return [p for p in parts if p[0]]


def load_text_encoder(raw: Mapping[str, torch.Tensor], open_clip: bool, hints: Mapping[str, Any] | None, name: str,
               dtype: torch.dtype | None, keep_projection: bool) -> tuple[Any, dict, list[str]]:
    raw = {k: v for k, v in raw.items() if not k.endswith(_OPEN_CLIP_IGNORED)}
    converted = convert_open_clip(raw) if open_clip else convert_hf_clip(raw)
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
    materialise(model, weights, "text encoder", name, dtype)
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
    unet_sd = strip_prefix(sd, UNET_PREFIX)
    vae_sd = strip_prefix(sd, VAE_PREFIX)
    if "unet" in parts and not unet_sd:
        raise CheckpointError(f"{name}: no U-Net weights (keys starting with {UNET_PREFIX!r}); found prefixes "
                              f"{prefix_summary(sd)}")
    result = LoadedCheckpoint(family=family, prediction_type="eps", metadata=metadata, source=name)
    clip_hints = list(hints.get("text_encoders") or [])
    clip_parts = _clip_parts(sd, family)
    if "clip" in parts or family in ("sdxl", "sdxl_refiner"):  # the U-Net's ADM width needs bigG's pooled width
        for index, (raw, open_clip) in enumerate(clip_parts):
            keep_projection = open_clip  # SD1 / SDXL CLIP-L: pooled output is not projected
            if "clip" not in parts:
                if open_clip and "text_projection" in raw:
                    pooled_dim = int(raw["text_projection"].shape[1])
                continue
            model, config, unused = load_text_encoder(raw, open_clip, clip_hints[index] if index < len(clip_hints) else None,
                                               name, dtype, keep_projection)
            result.text_encoders.append(model)
            result.text_encoder_configs.append(config)
            result.unused_keys += [f"text_encoder[{index}].{k}" for k in unused]
            if open_clip:
                pooled_dim = config.get("projection_dim", config["hidden_size"])
        if "clip" in parts and not clip_parts:
            raise CheckpointError(f"{name}: no text encoder found (looked for {SD1_CLIP_PREFIX}, {SD2_CLIP_PREFIX}, "
                                  f"{SDXL_CLIP_L_PREFIX} + {SDXL_CLIP_G_PREFIX}); found prefixes {prefix_summary(sd)}")
    if unet_sd:
        config = infer_unet_config(unet_sd, hints.get("unet"), pooled_dim=pooled_dim, name=name, family=family)
        result.unet_config = config
        result.inpaint = config["in_channels"] == 9
        if config["in_channels"] not in (4, 9) and not hints.get("unet"):
            log.warning("%s: U-Net with %d input channels", name, config["in_channels"])
        result.prediction_type = detect_prediction_type(sd, unet_sd, family, config["in_channels"], hints)
        if "unet" in parts:
            converted = convert_unet(unet_sd, config)
            unet = build_unet(config)
            materialise(unet, converted, "U-Net", name, dtype)
            result.unet = unet.eval()
            result.unused_keys += [f"unet.{k}" for k in sorted(set(unet_sd) - set(unet_to_ldm(converted, config)))]
    if vae_sd and "vae" in parts:
        config = infer_vae_config(vae_sd, hints.get("vae"), VAE_SCALING[family], name=name)
        converted = convert_vae(vae_sd, config)
        vae = build_vae(config)
        materialise(vae, converted, "VAE", name, dtype)
        result.vae, result.vae_config = vae.eval(), config
        ignored = {k for k in vae_sd if k.startswith("loss.")}  # training-only discriminator weights
        result.unused_keys += [f"vae.{k}" for k in sorted(set(vae_sd) - ignored - set(vae_to_ldm(converted, config)))]
    elif "vae" in parts:
        raise CheckpointError(f"{name}: no VAE weights (keys starting with {VAE_PREFIX!r})")
    if result.unused_keys:
        log.warning("%s: %d weights were not used: %s", name, len(result.unused_keys), result.unused_keys[:10])
    return result


def load_checkpoint(source: str | Path | WeightsFile, *, dtype: torch.dtype | None = None,
                    parts: Iterable[str] = ("unet", "vae", "clip")) -> LoadedCheckpoint:
    """Load a single-file checkpoint (.safetensors / .ckpt, or the service's WeightsFile of one) or a
    diffusers folder (model_index.json)."""
    if not isinstance(source, WeightsFile) and Path(source).is_dir():
        return load_diffusers_folder(source, dtype=dtype, parts=parts)
    weights = weights_of(source)
    name = weights.path.name
    try:
        return load_state_dict_checkpoint(weights.tensors, weights.metadata, name=name, dtype=dtype, parts=parts)
    except CheckpointError as exc:
        if name in str(exc):
            raise
        raise CheckpointError(f"{name}: {exc}") from exc
