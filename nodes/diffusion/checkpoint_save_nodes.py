"""Saving models (ComfyUI 0.8's CheckpointSave, ModelSave, CLIPSave, VAESave in nodes_model_merging.py).

The handles' weights are written as their patches make them (merges, LoRAs), in the original single-file
layout, as `<prefix>_<counter:05>_.safetensors` in the output folder, with ComfyUI's metadata: the
modelspec entries for SDXL, "modelspec.predict_key", the prompt and extra_pnginfo as JSON, and the
"v_pred" / "ztsnr" marker tensors of v-prediction models.
"""
from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import torch
from safetensors.torch import save_file

from nodegraph import CLIP, MODEL, VAE, Input, String, filename_prefix_problem, node

from .checkpoint.to_ldm import clip_state, vae_to_ldm
from .checkpoint.writer import save_single_file
from .latent_file_nodes import file_metadata, next_counter
from .model_options import model_sampling

__all__ = ["CheckpointSave", "ModelSave", "CLIPSave", "VAESave"]

CATEGORY = "advanced/model_merging"


def output_file(ctx, filename_prefix: str, suffix: str = "") -> tuple[Path, str]:
    """(path of the next `<prefix><suffix>_<counter:05>_.safetensors`, its name), as ComfyUI numbers them."""
    problem = filename_prefix_problem(filename_prefix)
    if problem:
        raise ValueError(problem)
    prefix = Path(filename_prefix.replace("\\", "/"))
    folder = ctx.folders.dir_for("output") / prefix.parent
    folder.mkdir(parents=True, exist_ok=True)
    stem = prefix.name + suffix
    name = f"{stem}_{next_counter(folder, stem):05}_.safetensors"
    return folder / name, stem


def _prefix_input(default: str) -> Input:
    return String("filename_prefix", default)


class _SavesFile:
    @classmethod
    def validate_inputs(cls, filename_prefix="", **_):
        return filename_prefix_problem(filename_prefix)


def checkpoint_metadata(ctx, model, title: str) -> tuple[dict[str, str], dict[str, torch.Tensor], str]:
    """(ComfyUI's save_checkpoint metadata, its marker tensors, the prediction type to write)."""
    metadata: dict[str, str] = {}
    family = model.module.family
    if family == "sdxl":
        metadata.update({"modelspec.architecture": "stable-diffusion-xl-v1-base", "modelspec.sai_model_spec": "1.0.0",
                         "modelspec.implementation": "sgm", "modelspec.title": title})
    sampling = model_sampling(model)
    prediction = getattr(sampling, "prediction_type", model.module.prediction_type)
    extra: dict[str, torch.Tensor] = {}
    if prediction == "eps":
        metadata["modelspec.predict_key"] = "epsilon"
    elif prediction == "v":
        metadata["modelspec.predict_key"] = "v"
        extra["v_pred"] = torch.tensor([])
        if getattr(sampling, "zsnr", False):
            extra["ztsnr"] = torch.tensor([])
    metadata.update(file_metadata(ctx))
    written = prediction if prediction in ("eps", "v") else model.module.prediction_type
    return metadata, extra, written


def save_checkpoint(ctx, model, clip, vae, filename_prefix: str) -> Path:
    path, stem = output_file(ctx, filename_prefix)
    counter = int(path.name[len(stem) + 1:len(stem) + 6])
    metadata, extra, prediction = checkpoint_metadata(ctx, model, f"{stem} {counter}")
    fmt = model.module.latent_format
    with ExitStack() as stack:  # every part on the device with its patches applied while it is read
        unet = stack.enter_context(ctx.devices.use(model)).unet
        encoders = list(stack.enter_context(ctx.devices.use(clip)).encoders) if clip is not None else []
        vae_module = stack.enter_context(ctx.devices.use(vae)).vae if vae is not None else None
        save_single_file(path, unet, vae_module, encoders[0] if encoders else None, metadata,
                         text_encoder_2=encoders[1] if len(encoders) > 1 else None, family=model.module.family,
                         prediction_type=prediction, latent_rgb_factors=fmt.rgb_factors and list(fmt.rgb_factors),
                         latent_rgb_bias=fmt.rgb_bias and list(fmt.rgb_bias), extra_tensors=extra)
    return path


@node(category=CATEGORY, output_node=True, display_name="Save Checkpoint")
class CheckpointSave(_SavesFile):
    """Save a MODEL, CLIP and VAE (with their merges and LoRAs applied) as one checkpoint in the original layout."""
    inputs = [Input("model", MODEL), Input("clip", CLIP), Input("vae", VAE), _prefix_input("checkpoints/ComfyUI")]
    outputs = []

    def run(self, ctx, model, clip, vae, filename_prefix="checkpoints/ComfyUI"):
        save_checkpoint(ctx, model, clip, vae, filename_prefix)


@node(category=CATEGORY, output_node=True)
class ModelSave(_SavesFile):
    """Save a diffusion model alone (model.diffusion_model.* keys), with its patches applied."""
    inputs = [Input("model", MODEL), _prefix_input("diffusion_models/ComfyUI")]
    outputs = []

    def run(self, ctx, model, filename_prefix="diffusion_models/ComfyUI"):
        save_checkpoint(ctx, model, None, None, filename_prefix)


@node(category=CATEGORY, output_node=True)
class CLIPSave(_SavesFile):
    """Save each text encoder of a CLIP as its own file (<prefix>_clip_l, _clip_h, _clip_g), transformers layout."""
    inputs = [Input("clip", CLIP), _prefix_input("clip/ComfyUI")]
    outputs = []

    def run(self, ctx, clip, filename_prefix="clip/ComfyUI"):
        metadata = file_metadata(ctx)
        if metadata:
            metadata = {"format": "pt", **metadata}
        with ctx.devices.use(clip) as module:
            for encoder, spec in zip(module.encoders, module.specs):
                path, _ = output_file(ctx, filename_prefix, f"_clip_{spec.name}")
                tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in clip_state(encoder).items()}
                save_file(tensors, str(path), metadata=metadata)


@node(category=CATEGORY, output_node=True)
class VAESave(_SavesFile):
    """Save a VAE alone in the original layout (encoder.*, decoder.*, quant_conv ...)."""
    inputs = [Input("vae", VAE), _prefix_input("vae/ComfyUI_vae")]
    outputs = []

    def run(self, ctx, vae, filename_prefix="vae/ComfyUI_vae"):
        path, _ = output_file(ctx, filename_prefix)
        with ctx.devices.use(vae) as module:
            state = vae_to_ldm(module.vae.state_dict(), module.vae.config)
            tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
        save_file(tensors, str(path), metadata=file_metadata(ctx))
