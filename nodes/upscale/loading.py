"""Build upscaler networks through spandrel from the weights the model-file service reads.

    handle = ctx.models.load("upscale_models", name, build_upscaler, **READ_OPTIONS)
    handle = build_upscaler(read_weights(path, **READ_OPTIONS))   # the same, outside a node

Files: .safetensors/.sft, or .pth/.pt/.ckpt/.bin loaded with torch.load(weights_only=True) (no
pickled code runs). Like ComfyUI, training wrappers are unwrapped ("params_ema" before "params",
BasicSR's layout, then "state_dict" ...) and a DataParallel "module." prefix is removed. Any
architecture spandrel detects works (ESRGAN old and new keys, Real-ESRGAN, SwinIR, SPAN, Compact,
HAT, DAT, OmniSR ...); models that are not image-to-image (e.g. LaMa inpainting, which also takes
a mask) are refused with a message naming the file.
"""
from __future__ import annotations

import torch
from torch import nn

from nodegraph import ModelHandle, WeightsFile

from .spandrel_import import import_spandrel

READ_OPTIONS = {
    # tried in this order; BasicSR files hold both "params" and "params_ema", the EMA weights are the good ones
    "wrappers": ("params_ema", "params-ema", "params", "state_dict", "model_state_dict", "model", "net"),
    "prefixes": ("module.", "netG."),  # DataParallel / BasicSR generator prefixes
}


class UpscaleModelError(ValueError):
    """A file that cannot be used as an upscale model; the message names the file."""


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


# Upscalers compute in float32 whatever the device manager's dtype, as ComfyUI does: they are small next
# to a U-Net, and bf16's 8-bit mantissa costs the shipped ESRGAN 2-4 dB of PSNR (training/UPSCALER.md).
COMPUTE_DTYPE = torch.float32


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


def build_upscaler(weights: WeightsFile) -> ModelHandle:
    """A model handle for an upscaler file's weights (detected architecture, scale and channels in info)."""
    descriptor = build_descriptor(weights.tensors, weights.name)
    return ModelHandle(SpandrelUpscaler(descriptor), weights.path.stem, dtype=COMPUTE_DTYPE, info=describe(descriptor))
