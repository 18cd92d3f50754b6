"""Read upscaler files and build their networks through spandrel.

    state_dict = read_state_dict(path, "4x-UltraSharp.pth")       # tensors only, wrappers removed
    descriptor = build_descriptor(state_dict, "4x-UltraSharp.pth")  # spandrel ImageModelDescriptor
    handle = upscaler_handle(descriptor, "4x-UltraSharp", manager)  # a ModelHandle for the device manager

Files: .safetensors/.sft, or .pth/.pt/.ckpt/.bin loaded with torch.load(weights_only=True) (no
pickled code runs). Like ComfyUI, training wrappers are unwrapped ("params_ema" before "params",
BasicSR's layout, then "state_dict" ...) and a DataParallel "module." prefix is removed. Any
architecture spandrel detects works (ESRGAN old and new keys, Real-ESRGAN, SwinIR, SPAN, Compact,
HAT, DAT, OmniSR ...); models that are not image-to-image (e.g. LaMa inpainting, which also takes
a mask) are refused with a message naming the file.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nodegraph import ModelHandle

from .spandrel_import import import_spandrel

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
# tried in this order; BasicSR files hold both "params" and "params_ema", the EMA weights are the good ones
WRAPPER_KEYS = ("params_ema", "params-ema", "params", "state_dict", "model_state_dict", "model", "net")
PREFIXES = ("module.", "netG.")  # DataParallel / BasicSR generator prefixes


class UpscaleModelError(ValueError):
    """A file that cannot be used as an upscale model; the message names the file."""


def read_state_dict(path: str | Path, model_name: str) -> dict[str, torch.Tensor]:
    """The file's tensors on the CPU, unwrapped and without a common DataParallel prefix."""
    path = Path(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        from safetensors.torch import load_file

        try:
            obj = load_file(str(path), device="cpu")
        except Exception as exc:
            raise UpscaleModelError(f"{model_name}: not a readable safetensors file ({exc})") from exc
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise UpscaleModelError(
                f"{model_name}: cannot be read with torch.load(weights_only=True): the file is damaged, "
                f"not a PyTorch file, or holds pickled objects besides weights ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    return unwrap_state_dict(obj, model_name)


def unwrap_state_dict(obj, model_name: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict):
        raise UpscaleModelError(f"{model_name}: expected a state dict of weights, the file holds a {type(obj).__name__}")
    for key in WRAPPER_KEYS:
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    else:
        if len(obj) == 1 and isinstance(next(iter(obj.values())), dict):  # {"some_name": {...weights...}}
            obj = next(iter(obj.values()))
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UpscaleModelError(f"{model_name}: the file contains no weight tensors")
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def build_descriptor(state_dict: dict[str, torch.Tensor], model_name: str):
    """spandrel's descriptor for the detected architecture, in eval mode, frozen."""
    spandrel = import_spandrel()
    state_dict = spandrel.canonicalize_state_dict(state_dict)
    support = next((a for a in spandrel.MAIN_REGISTRY.architectures("detection") if a.detect(state_dict)), None)
    if support is None:
        sample = ", ".join(list(state_dict)[:4])
        raise UpscaleModelError(
            f"{model_name}: spandrel {spandrel.__version__} does not recognise this model's architecture "
            f"(first keys: {sample}). Supported include ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, SPAN, Compact, OmniSR.")
    arch = support.architecture
    try:
        descriptor = arch.load(state_dict)
    except Exception as exc:
        raise UpscaleModelError(f"{model_name}: detected as {arch.name} but its weights do not fit that "
                                f"architecture ({type(exc).__name__}: {exc})") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise UpscaleModelError(
            f"{model_name}: {arch.name} is not an image-to-image model: it takes an image and a mask "
            f"({descriptor.purpose}, {type(descriptor).__name__}), so it cannot upscale")
    descriptor.model.eval()
    for p in descriptor.model.parameters():
        p.requires_grad_(False)
    return descriptor


class SpandrelUpscaler(nn.Module):
    """A spandrel image model as one module: the device manager moves `model`; calls go through the
    descriptor, which pads inputs to the architecture's size requirements and clamps to 0..1."""

    def __init__(self, descriptor) -> None:
        super().__init__()
        self.model = descriptor.model
        self.descriptor = descriptor  # not a Module: not registered twice

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.descriptor(image)


def compute_dtype(descriptor, manager: DeviceManager) -> torch.dtype:
    """Upscalers compute in float32 whatever the manager's dtype, as ComfyUI does: they are small next to
    a U-Net, and bf16's 8-bit mantissa costs the shipped ESRGAN 2-4 dB of PSNR (training/UPSCALER.md)."""
    return torch.float32


def describe(descriptor) -> dict:
    req = descriptor.size_requirements
    return {
        "architecture": descriptor.architecture.name, "architecture_id": str(descriptor.architecture.id),
        "scale": int(descriptor.scale), "input_channels": int(descriptor.input_channels),
        "output_channels": int(descriptor.output_channels), "purpose": descriptor.purpose,
        "tags": list(descriptor.tags), "supports_half": bool(descriptor.supports_half),
        "supports_bfloat16": bool(descriptor.supports_bfloat16), "tiling": descriptor.tiling.name.lower(),
        "size_requirements": {"minimum": req.minimum, "multiple_of": req.multiple_of, "square": req.square},
    }


def upscaler_handle(descriptor, name: str, manager: DeviceManager) -> ModelHandle:
    return ModelHandle(SpandrelUpscaler(descriptor), name, dtype=compute_dtype(descriptor, manager),
                       info=describe(descriptor))


def load_upscaler(path: str | Path, model_name: str, manager: DeviceManager) -> ModelHandle:
    descriptor = build_descriptor(read_state_dict(path, model_name), model_name)
    return upscaler_handle(descriptor, Path(model_name).stem, manager)
