"""Loader nodes: checkpoints, diffusion models, text encoders, VAEs, diffusers folders (ComfyUI names)."""
from __future__ import annotations

from pathlib import Path

from nodegraph import CLIP, MODEL, VAE, Choice, ModelFile, ModelHandle, Output, WeightsFile, node, read_weights

from .checkpoint.components import load_clip_file, load_unet_file, load_vae_file
from .checkpoint.files import read_hints
from .checkpoint.layout import CheckpointError, LoadedCheckpoint
from .checkpoint.single_file import load_checkpoint
from .models import ClipModel, DiffusionModel, VAEModel, latent_format_for, model_info

# ComfyUI 0.8.0's choices (nodes.py), so its workflows validate against the same lists; the ones
# that need model families or weight formats nodegraph lacks are rejected by validate_inputs.
CLIP_TYPES = ["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos",
              "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image", "flux2", "ovis"]
DUAL_CLIP_TYPES = ["sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image", "hunyuan_video_15",
                   "kandinsky5", "kandinsky5_image", "ltxv", "newbie"]
WEIGHT_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]
NO_SUCH_FAMILY = "needs text encoders of a model family nodegraph does not have (SD1.x, SD2.x and SDXL work)"


def handles_from_checkpoint(ckpt: LoadedCheckpoint, name: str = "") -> tuple:
    """(MODEL, CLIP, VAE) handles for a loaded checkpoint; parts it lacks are None."""
    hints = read_hints(ckpt.metadata)
    vae_cfg = ckpt.vae_config or {}
    downscale = 2 ** (len(vae_cfg["block_out_channels"]) - 1) if vae_cfg else 8
    channels = int(vae_cfg.get("latent_channels") or (ckpt.unet_config or {}).get("out_channels", 4))
    fmt = latent_format_for(ckpt.family, channels, downscale, vae_cfg.get("scaling_factor"), hints)
    model = clip = vae = None
    if ckpt.unet is not None:
        diffusion = DiffusionModel(ckpt.unet, ckpt.family, ckpt.prediction_type, fmt, config=ckpt.unet_config)
        model = ModelHandle(diffusion, name or "model", info=model_info(diffusion))
    if ckpt.text_encoders:
        clip = ModelHandle(ClipModel(ckpt.text_encoders, ckpt.family), name or "clip",
                           info={"family": ckpt.family, "layer_idx": None})
    if ckpt.vae is not None:
        vae = ModelHandle(VAEModel(ckpt.vae, fmt), name or "vae", info={"family": ckpt.family})
    return model, clip, vae


def _only_runnable_choice(name: str, value: str, runnable: str, why: str, works: str) -> dict[str, str] | None:
    """validate_inputs' answer for a ComfyUI choice nodegraph cannot run: {input: the value, what works}."""
    if value == runnable:
        return None
    return {name: f"{value!r} {why}; use {runnable!r} ({works})"}


# Builders for the model-file service: each depends on the file alone (the name comes with it).
def checkpoint_handles(weights: WeightsFile) -> tuple:
    return handles_from_checkpoint(load_checkpoint(weights), Path(weights.name).stem)


def diffusers_handles(path: Path) -> tuple:
    if not path.is_dir():
        raise CheckpointError(f"{path.name}: not a diffusers folder")
    return handles_from_checkpoint(load_checkpoint(path), path.name)


def unet_handle(weights: WeightsFile) -> ModelHandle:
    return handles_from_checkpoint(load_unet_file(weights), Path(weights.name).stem)[0]


def clip_handle(weights: WeightsFile) -> ModelHandle:
    model, _config, open_clip = load_clip_file(weights)
    family = "sd2" if open_clip else "sd1"
    return ModelHandle(ClipModel([model], family), Path(weights.name).stem, info={"family": family, "layer_idx": None})


def vae_handle(weights: WeightsFile) -> ModelHandle:
    vae, config = load_vae_file(weights)
    family = "sdxl" if abs(config["scaling_factor"] - 0.13025) < 1e-6 else "sd1"
    downscale = 2 ** (len(config["block_out_channels"]) - 1)
    fmt = latent_format_for(family, config["latent_channels"], downscale, config["scaling_factor"])
    return ModelHandle(VAEModel(vae, fmt), Path(weights.name).stem, info={"family": family})


def dual_clip_handle(first: WeightsFile, second: WeightsFile) -> ModelHandle:
    loaded = [load_clip_file(first), load_clip_file(second)]
    # CLIP-L (transformers layout) first, bigG (open_clip layout, projection) second, whatever the order given
    loaded.sort(key=lambda item: item[2])
    if [item[2] for item in loaded] != [False, True]:
        raise CheckpointError(f"sdxl needs one CLIP-L and one OpenCLIP bigG file; got {first.name}, {second.name}")
    return ModelHandle(ClipModel([m for m, _, _ in loaded], "sdxl"), "sdxl-clip", info={"family": "sdxl", "layer_idx": None})


@node(category="loaders")
class CheckpointLoaderSimple:
    """Load a Stable Diffusion checkpoint (SD1.x, SD2.x, SDXL single file, original layout)."""
    inputs = [ModelFile("ckpt_name", folder="checkpoints")]
    outputs = [Output("MODEL", MODEL), Output("CLIP", CLIP), Output("VAE", VAE)]

    @classmethod
    def fingerprint(cls, env, ckpt_name):
        return env.models.fingerprint("checkpoints", ckpt_name)

    def run(self, ctx, ckpt_name):
        model, clip, vae = ctx.models.load("checkpoints", ckpt_name, checkpoint_handles)
        missing = [n for n, v in (("MODEL", model), ("CLIP", clip), ("VAE", vae)) if v is None]
        if missing:
            raise CheckpointError(f"{ckpt_name}: the checkpoint has no {', '.join(missing)} weights")
        return model, clip, vae


@node(category="advanced/loaders")
class DiffusersLoader:
    """Load a diffusers-format folder (model_index.json with unet/, vae/, text_encoder/ ...)."""
    inputs = [ModelFile("model_path", folder="diffusers")]
    outputs = [Output("MODEL", MODEL), Output("CLIP", CLIP), Output("VAE", VAE)]

    @classmethod
    def fingerprint(cls, env, model_path):
        return env.models.fingerprint("diffusers", model_path)

    def run(self, ctx, model_path):
        return ctx.models.load_path("diffusers", model_path, diffusers_handles)


@node(category="advanced/loaders")
class UNETLoader:
    """Load a diffusion model (U-Net) alone: original layout, with or without its prefix, or diffusers keys."""
    inputs = [ModelFile("unet_name", folder="diffusion_models"), Choice("weight_dtype", WEIGHT_DTYPES)]
    outputs = [Output("MODEL", MODEL)]

    @classmethod
    def validate_inputs(cls, weight_dtype="default", **_):
        return _only_runnable_choice("weight_dtype", weight_dtype, "default", "(fp8 weight storage) is not implemented",
                                     "weights in the device manager's dtype: bf16/fp16 on CUDA, fp32 on CPU")

    @classmethod
    def fingerprint(cls, env, unet_name, weight_dtype="default"):
        return env.models.fingerprint("diffusion_models", unet_name)

    def run(self, ctx, unet_name, weight_dtype="default"):
        return (ctx.models.load("diffusion_models", unet_name, unet_handle),)


@node(category="advanced/loaders")
class CLIPLoader:
    """Load a text encoder alone. stable_diffusion: CLIP-L (SD1.x) or OpenCLIP-H (SD2.x), told apart by the file."""
    inputs = [ModelFile("clip_name", folder="text_encoders"), Choice("type", CLIP_TYPES),
              Choice("device", ["default", "cpu"], optional=True)]
    outputs = [Output("CLIP", CLIP)]

    @classmethod
    def validate_inputs(cls, type="stable_diffusion", **_):
        return _only_runnable_choice("type", type, "stable_diffusion", NO_SUCH_FAMILY,
                                     "CLIP-L for SD1.x, OpenCLIP-H for SD2.x")

    @classmethod
    def fingerprint(cls, env, clip_name, type="stable_diffusion", device="default"):
        return env.models.fingerprint("text_encoders", clip_name)

    def run(self, ctx, clip_name, type="stable_diffusion", device="default"):
        return (ctx.models.load("text_encoders", clip_name, clip_handle),)  # device: the device manager places it


@node(category="advanced/loaders")
class DualCLIPLoader:
    """Load SDXL's two text encoders (CLIP-L and OpenCLIP bigG) from separate files."""
    inputs = [ModelFile("clip_name1", folder="text_encoders"), ModelFile("clip_name2", folder="text_encoders"),
              Choice("type", DUAL_CLIP_TYPES), Choice("device", ["default", "cpu"], optional=True)]
    outputs = [Output("CLIP", CLIP)]

    @classmethod
    def validate_inputs(cls, type="sdxl", **_):
        return _only_runnable_choice("type", type, "sdxl", NO_SUCH_FAMILY, "CLIP-L and OpenCLIP bigG")

    @classmethod
    def fingerprint(cls, env, clip_name1, clip_name2, type="sdxl", device="default"):
        return repr((env.models.fingerprint("text_encoders", clip_name1),
                     env.models.fingerprint("text_encoders", clip_name2)))

    def run(self, ctx, clip_name1, clip_name2, type="sdxl", device="default"):
        second = ctx.models.find("text_encoders", clip_name2)

        def with_second(first: WeightsFile) -> ModelHandle:
            return dual_clip_handle(first, read_weights(second, clip_name2))

        # one handle per pair of file versions: the second file's version is the variant of the first's
        return (ctx.models.load("text_encoders", clip_name1, with_second,
                                variant=("with", ctx.models.fingerprint("text_encoders", clip_name2))),)


@node(category="loaders")
class VAELoader:
    """Load a VAE alone (original layout, with or without 'first_stage_model.', or diffusers keys)."""
    inputs = [ModelFile("vae_name", folder="vae")]
    outputs = [Output("VAE", VAE)]

    @classmethod
    def fingerprint(cls, env, vae_name):
        return env.models.fingerprint("vae", vae_name)

    def run(self, ctx, vae_name):
        return (ctx.models.load("vae", vae_name, vae_handle),)
