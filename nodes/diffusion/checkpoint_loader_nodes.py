"""CheckpointLoader (ComfyUI 0.8 nodes.py, deprecated there): a checkpoint with an original (ldm) inference
config. The config is checked against what the file says (family by context_dim, inpainting by
in_channels); its parameterization wins, as ComfyUI builds the model from the config (v2-inference-v.yaml
samples a checkpoint as v-prediction). Configs are .yaml files of the "configs" model folder; the
common ones ship with the pack."""
from __future__ import annotations

from pathlib import Path

import yaml

from nodegraph import CLIP, MODEL, VAE, Choice, ModelFile, Output, node

from .checkpoint.layout import CheckpointError
from .loader_nodes import CheckpointLoaderSimple
from .model_options import patched
from .sampling.model_sampling import DiscreteSampling

__all__ = ["CheckpointLoader"]

CONFIG_SUFFIXES = (".yaml", ".yml")
FAMILY_BY_CONTEXT = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
PREDICTION = {"eps": "eps", "v": "v"}


def config_names(env) -> list[str]:
    names: list[str] = []
    for root in env.folders.search_paths("configs"):
        if root.is_dir():
            names += [p.relative_to(root).as_posix() for p in sorted(root.rglob("*"))
                      if p.suffix.lower() in CONFIG_SUFFIXES and p.relative_to(root).as_posix() not in names]
    return names


def read_config(path: Path, name: str) -> dict:
    """{"prediction", "in_channels", "family"} of an ldm inference config; a missing entry is None."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
        params = data["model"].get("params") or {}
    except (yaml.YAMLError, KeyError, AttributeError, TypeError) as exc:
        raise CheckpointError(f"config_name {name!r}: not an ldm inference config (model.params expected): {exc}")
    unet = ((params.get("unet_config") or {}).get("params")) or {}
    parameterization = params.get("parameterization", "eps")
    if parameterization not in PREDICTION:
        raise CheckpointError(f"config_name {name!r}: parameterization {parameterization!r} is not eps or v")
    context = unet.get("context_dim")
    return {"prediction": PREDICTION[parameterization], "in_channels": unet.get("in_channels"),
            "family": FAMILY_BY_CONTEXT.get(context) if context is not None else None}


def config_problems(config: dict, info: dict) -> list[str]:
    problems = []
    if config["family"] and config["family"] != info.get("family"):
        problems.append(f"the config describes an {config['family']} U-Net, the file holds an {info.get('family')} one")
    channels = 9 if info.get("inpaint") else 4
    if config["in_channels"] is not None and config["in_channels"] != channels:
        problems.append(f"the config's U-Net takes {config['in_channels']} input channels, the file's {channels}")
    return problems


@node(category="advanced/loaders", display_name="Load Checkpoint With Config (DEPRECATED)")
class CheckpointLoader:
    """Load a checkpoint with an ldm inference config (.yaml); prefer CheckpointLoaderSimple."""
    inputs = [Choice("config_name", config_names), ModelFile("ckpt_name", folder="checkpoints")]
    outputs = [Output("MODEL", MODEL), Output("CLIP", CLIP), Output("VAE", VAE)]

    @classmethod
    def fingerprint(cls, env, config_name, ckpt_name):
        config = next((root / config_name for root in env.folders.search_paths("configs")
                       if (root / config_name).is_file()), None)
        stamp = config.read_text() if config is not None else None
        return repr((stamp, env.models.fingerprint("checkpoints", ckpt_name)))

    def run(self, ctx, config_name, ckpt_name):
        path = next((root / config_name for root in ctx.folders.search_paths("configs")
                     if (root / config_name).is_file()), None)
        if path is None:
            raise CheckpointError(f"config_name {config_name!r}: no such file in the configs folders "
                                  f"({', '.join(str(p) for p in ctx.folders.search_paths('configs'))})")
        config = read_config(path, config_name)
        model, clip, vae = CheckpointLoaderSimple().run(ctx, ckpt_name)
        problems = config_problems(config, model.info)
        if problems:
            raise CheckpointError(f"config_name {config_name!r} does not fit ckpt_name {ckpt_name!r}: "
                                  + "; ".join(problems))
        if config["prediction"] != model.info.get("prediction_type"):
            alphas = model.module.alphas_cumprod
            model = patched(model, model_sampling=DiscreteSampling(alphas, config["prediction"]))
        return model, clip, vae
