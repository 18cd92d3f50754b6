"""diffusers pipeline folders (model_index.json + unet/ vae/ text_encoder/ [text_encoder_2/] scheduler/)."""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Iterable

import torch

from nodegraph import read_weights

from .layout import CheckpointError, LoadedCheckpoint, normalise_prediction
from .modules import build_clip, build_unet, build_vae, clip_core, materialise

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
            sd.update(read_weights(f).tensors)
        return sd

    def clean(cfg: dict) -> dict:
        return {k: v for k, v in cfg.items() if not k.startswith("_")}

    def diffusers_part(sub: str, cls, build, what: str):
        known = set(inspect.signature(cls.__init__).parameters)
        config = {k: v for k, v in clean(sub_config(sub)).items() if k in known}
        module = build(config)
        materialise(module, sub_weights(sub), what, path.name, dtype)
        return module.eval(), config

    te2 = (path / "text_encoder_2").is_dir()
    first_te = sub_config("text_encoder") if (path / "text_encoder").is_dir() else {}
    family = "sdxl" if te2 else ("sd2" if first_te.get("hidden_act") == "gelu" else "sd1")
    prediction = "eps"
    sched = path / "scheduler" / "scheduler_config.json"
    if sched.is_file():
        prediction = normalise_prediction(json.loads(sched.read_text()).get("prediction_type", "epsilon"))
    result = LoadedCheckpoint(family=family, prediction_type=prediction, source=path.name,
                              metadata={"model_index": json.dumps(index)})
    if "unet" in parts:
        from diffusers import UNet2DConditionModel
        result.unet, result.unet_config = diffusers_part("unet", UNet2DConditionModel, build_unet, "U-Net")
        result.inpaint = result.unet_config.get("in_channels") == 9
    if "vae" in parts:
        from diffusers import AutoencoderKL
        result.vae, result.vae_config = diffusers_part("vae", AutoencoderKL, build_vae, "VAE")
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
            materialise(model, weights, sub, path.name, dtype)
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
