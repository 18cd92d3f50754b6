"""Loader nodes: checkpoints, diffusion models, text encoders, VAEs, diffusers folders (ComfyUI names)."""
from __future__ import annotations

from pathlib import Path

from nodegraph import CLIP, MODEL, VAE, Choice, ModelFile, Output, node
from nodegraph import ModelHandle

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


def file_stamp(path: Path) -> tuple:
    """What makes a cached load stale: the resolved path, size and modification time."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return (str(path.resolve()), tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def _fingerprint(env, kind: str, name: str):
    try:
        return repr(file_stamp(env.folders.find(kind, name)))
    except Exception:
        return None  # validation / run reports the missing file


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


def _only_runnable_choice(name: str, value: str, runnable: str, why: str, works: str) -> str | None:
    """validate_inputs' answer for a ComfyUI choice nodegraph cannot run: the input, the value, what works."""
    if value == runnable:
        return None
    return f"input {name!r}: {value!r} {why}; use {runnable!r} ({works})"


def _cached(ctx, key, loader):
    return ctx.devices.load_cached(key, loader)


@node(category="loaders")
class CheckpointLoaderSimple:
    """Load a Stable Diffusion checkpoint (SD1.x, SD2.x, SDXL single file, original layout)."""
    inputs = [ModelFile("ckpt_name", folder="checkpoints")]
    outputs = [Output("MODEL", MODEL), Output("CLIP", CLIP), Output("VAE", VAE)]

    @classmethod
    def fingerprint(cls, env, ckpt_name):
        return _fingerprint(env, "checkpoints", ckpt_name)

    def run(self, ctx, ckpt_name):
        path = ctx.folders.find("checkpoints", ckpt_name)

        def load():
            return handles_from_checkpoint(load_checkpoint(path), Path(ckpt_name).stem)

        model, clip, vae = _cached(ctx, ("checkpoint", file_stamp(path)), load)
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
        return _fingerprint(env, "diffusers", model_path)

    def run(self, ctx, model_path):
        path = ctx.folders.find("diffusers", model_path)
        if not path.is_dir():
            raise CheckpointError(f"{model_path}: not a diffusers folder")
        return _cached(ctx, ("diffusers", file_stamp(path)),
                       lambda: handles_from_checkpoint(load_checkpoint(path), Path(model_path).name))


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
        return _fingerprint(env, "diffusion_models", unet_name)

    def run(self, ctx, unet_name, weight_dtype="default"):
        path = ctx.folders.find("diffusion_models", unet_name)
        return _cached(ctx, ("unet", file_stamp(path)),
                       lambda: handles_from_checkpoint(load_unet_file(path), Path(unet_name).stem)[0])


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
        return _fingerprint(env, "text_encoders", clip_name)

    def run(self, ctx, clip_name, type="stable_diffusion", device="default"):
        path = ctx.folders.find("text_encoders", clip_name)

        def load():
            model, _config, open_clip = load_clip_file(path)
            family = "sd2" if open_clip else "sd1"
            return ModelHandle(ClipModel([model], family), Path(clip_name).stem, info={"family": family, "layer_idx": None})

        return _cached(ctx, ("clip", file_stamp(path)), load)  # device: placement is the device manager's


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
        return repr((_fingerprint(env, "text_encoders", clip_name1), _fingerprint(env, "text_encoders", clip_name2)))

    def run(self, ctx, clip_name1, clip_name2, type="sdxl", device="default"):
        paths = [ctx.folders.find("text_encoders", n) for n in (clip_name1, clip_name2)]

        def load():
            loaded = [load_clip_file(p) for p in paths]
            # CLIP-L (transformers layout) first, bigG (open_clip layout, projection) second, whatever the order given
            loaded.sort(key=lambda item: item[2])
            if [item[2] for item in loaded] != [False, True]:
                raise CheckpointError(f"sdxl needs one CLIP-L and one OpenCLIP bigG file; got {clip_name1}, {clip_name2}")
            return ModelHandle(ClipModel([m for m, _, _ in loaded], "sdxl"), "sdxl-clip",
                               info={"family": "sdxl", "layer_idx": None})

        return _cached(ctx, ("dualclip", *map(file_stamp, paths)), load)


@node(category="loaders")
class VAELoader:
    """Load a VAE alone (original layout, with or without 'first_stage_model.', or diffusers keys)."""
    inputs = [ModelFile("vae_name", folder="vae")]
    outputs = [Output("VAE", VAE)]

    @classmethod
    def fingerprint(cls, env, vae_name):
        return _fingerprint(env, "vae", vae_name)

    def run(self, ctx, vae_name):
        path = ctx.folders.find("vae", vae_name)

        def load():
            vae, config = load_vae_file(path)
            family = "sdxl" if abs(config["scaling_factor"] - 0.13025) < 1e-6 else "sd1"
            downscale = 2 ** (len(config["block_out_channels"]) - 1)
            fmt = latent_format_for(family, config["latent_channels"], downscale, config["scaling_factor"])
            return ModelHandle(VAEModel(vae, fmt), Path(vae_name).stem, info={"family": family})

        return _cached(ctx, ("vae", file_stamp(path)), load)
