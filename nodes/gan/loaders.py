"""Detect a GAN checkpoint's architecture from keys and shapes, and build the network.

    weights = read_weights(path, wrappers=WRAPPER_KEYS)   # nodegraph's safe reader (ctx.models in nodes)
    arch, module = detect_and_build(weights.tensors)      # strict: no missing, unexpected or mis-shaped weights

Files: .safetensors (metadata may carry hints: resolution, gan_mode), or .pth/.pt/.ckpt loaded with
weights_only=True (a plain state dict, or one wrapped in "state_dict" / "params_ema" / "params";
a DataParallel "module." prefix is removed).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from nodegraph import read_weights

from .architectures import Architecture, architecture

WRAPPER_KEYS = ("state_dict", "params_ema", "params", "model_state_dict")
NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")

SUPPORTED = (
    "DCGAN generator ('main.0.weight' ConvTranspose stack) and discriminator ('main.0.weight' conv stack); "
    "pix2pix/CycleGAN UnetGenerator ('model.model.0.weight', nested 'model.model.1.model.3...'), "
    "ResnetGenerator ('model.1.weight' + 'model.N.conv_block.*'), PatchGAN NLayerDiscriminator "
    "('model.0.weight' ... ), PixelDiscriminator ('net.0.weight')"
)


class UnsupportedCheckpoint(ValueError):
    pass


def clean_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a DataParallel 'module.' prefix."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def _indices(sd: dict, prefix: str, suffix: str = ".weight") -> list[int]:
    """Sorted N of keys `{prefix}N{suffix}` whose tensor is 4-D (convolutions)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix) + "$")
    found = []
    for key, value in sd.items():
        m = pattern.match(key)
        if m and value.ndim == 4:
            found.append(int(m.group(1)))
    return sorted(found)


def _norm_kind(sd: dict, norm_prefix: str, conv_prefix: str) -> str:
    """batch if the norm layer holds an affine weight; instance if the conv has a bias (pix2pix gives
    convs a bias only with InstanceNorm, whose old files may still carry running stats); else none."""
    if f"{norm_prefix}.weight" in sd:
        return "batch"
    if f"{conv_prefix}.bias" in sd:
        return "instance"
    return "batch" if f"{norm_prefix}.running_mean" in sd else "none"


# --- family detectors: each returns candidate architectures (checked by shapes afterwards) ---------
def _detect_dcgan(sd: dict) -> list[Architecture]:
    convs = _indices(sd, "main.")
    if not convs or convs[0] != 0:
        return []
    if "main.1.weight" in sd:  # BatchNorm right after the first layer: the generator
        if convs != [3 * i for i in range(len(convs))]:
            return []
        widths = [sd["main.0.weight"].shape[0]] + [sd[f"main.{i}.weight"].shape[1] for i in convs]
        return [architecture("dcgan", "generator", widths[0], widths[-1], widths=widths)]
    # discriminator: conv at 0, then 2, 5, 8 ... and the final 1-channel conv
    if convs[1:] != [2 + 3 * i for i in range(len(convs) - 1)] or sd[f"main.{convs[-1]}.weight"].shape[0] != 1:
        return []
    widths = [sd["main.0.weight"].shape[1]] + [sd[f"main.{i}.weight"].shape[0] for i in convs[:-1]]
    return [architecture("dcgan", "discriminator", widths[0], 1, widths=widths)]


def _detect_unet(sd: dict) -> list[Architecture]:
    if "model.model.0.weight" not in sd or "model.model.3.weight" not in sd:
        return []
    block, num_downs = "model.model.1", 2  # outermost + its submodule, so far
    while f"{block}.model.3.model.1.weight" in sd:
        block = f"{block}.model.3"
        num_downs += 1
    first = sd["model.model.0.weight"]
    output_nc = sd["model.model.3.weight"].shape[1]
    norm = _norm_kind(sd, "model.model.1.model.2", "model.model.1.model.1")
    return [architecture("unet", "generator", first.shape[1], output_nc, num_downs=num_downs,
                         ngf=first.shape[0], norm=norm, use_dropout=False)]


def _detect_resnet(sd: dict) -> list[Architecture]:
    blocks = sorted({int(m.group(1)) for k in sd if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    if "model.1.weight" not in sd or not blocks:
        return []
    first_block = blocks[0]
    if (first_block - 4) % 3 or blocks != list(range(first_block, first_block + len(blocks))):
        return []
    n_down = (first_block - 4) // 3
    b = f"model.{first_block}.conv_block"

    def is_conv(index: int) -> bool:
        weight = sd.get(f"{b}.{index}.weight")
        return weight is not None and weight.ndim == 4

    # reflect/replicate padding puts a pad layer before each conv; the second conv moves one
    # further along when a Dropout follows the first ReLU
    if is_conv(1):
        padding, dropout = "reflect", is_conv(6)
    elif is_conv(0):
        padding, dropout = "zero", is_conv(4)
    else:
        return []
    head = sd["model.1.weight"]
    last = max(_indices(sd, "model."))
    norm = _norm_kind(sd, "model.2", "model.1")
    return [architecture("resnet", "generator", head.shape[1], sd[f"model.{last}.weight"].shape[0],
                         ngf=head.shape[0], norm=norm, n_blocks=len(blocks), use_dropout=dropout,
                         padding_type=padding, n_downsampling=n_down)]


def _detect_patchgan(sd: dict) -> list[Architecture]:
    convs = _indices(sd, "model.")
    if not convs or convs[0] != 0 or any(".conv_block." in k or k.startswith("model.model.") for k in sd):
        return []
    first = sd["model.0.weight"]
    if first.shape[-1] != 4 or sd[f"model.{convs[-1]}.weight"].shape[0] != 1:
        return []
    norm = _norm_kind(sd, "model.3", "model.2") if len(convs) > 2 else "none"
    # n_layers 0 and 1 have the same number of convolutions: offer both, the shapes decide
    n = len(convs) - 2
    return [architecture("patchgan", "discriminator", first.shape[1], 1, ndf=first.shape[0], n_layers=k, norm=norm)
            for k in sorted({n, max(n - 1, 0)}, reverse=True)]


def _detect_pixel(sd: dict) -> list[Architecture]:
    if "net.0.weight" not in sd or "net.5.weight" not in sd:
        return []
    first = sd["net.0.weight"]
    return [architecture("pixel", "discriminator", first.shape[1], 1, ndf=first.shape[0],
                         norm=_norm_kind(sd, "net.3", "net.2"))]


DETECTORS = (_detect_dcgan, _detect_unet, _detect_resnet, _detect_patchgan, _detect_pixel)


def _prepare(module: nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Adapt old files as the pix2pix loader does: InstanceNorm layers have no running stats (files
    saved before PyTorch 0.4 carry them), and BatchNorm's num_batches_tracked may be absent."""
    out = dict(sd)
    expected = module.state_dict()
    for name, sub in module.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(sub, nn.InstanceNorm2d) and not sub.track_running_stats:
            for stat in NORM_STATS:
                out.pop(prefix + stat, None)
        if isinstance(sub, nn.BatchNorm2d) and prefix + "num_batches_tracked" not in out:
            if prefix + "running_mean" in out:
                out[prefix + "num_batches_tracked"] = expected[prefix + "num_batches_tracked"]
    return out


def compare(module: nn.Module, sd: dict[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mis-shaped) keys of a state dict against a module."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    return missing, unexpected, shapes


def _summary(sd: dict) -> str:
    keys = list(sd)
    shown = ", ".join(f"{k} {tuple(sd[k].shape)}" for k in keys[:6])
    return f"{len(keys)} tensors; first keys: {shown}{' ...' if len(keys) > 6 else ''}"


def detect_architecture(sd: dict[str, torch.Tensor], name: str = "checkpoint") -> Architecture:
    """The architecture a state dict was saved from (its exact configuration), or a clear error."""
    arch, _ = detect_and_build(sd, name)
    return arch


def detect_and_build(sd: dict[str, torch.Tensor], name: str = "checkpoint") -> tuple[Architecture, nn.Module]:
    """Detect, build and load (strict). Raises UnsupportedCheckpoint saying what was found."""
    sd = clean_state_dict(sd)
    candidates = [arch for detect in DETECTORS for arch in detect(sd)]
    if not candidates:
        raise UnsupportedCheckpoint(f"{name}: not a supported GAN checkpoint ({_summary(sd)}). Supported: {SUPPORTED}")
    problems = []
    for arch in candidates:
        try:
            module = arch.build()
        except ValueError as exc:
            problems.append(f"{arch.describe()}: {exc}")
            continue
        prepared = _prepare(module, sd)
        missing, unexpected, shapes = compare(module, prepared)
        if not (missing or unexpected or shapes):
            module.load_state_dict(prepared, strict=True)
            return arch, module.eval().requires_grad_(False)
        problems.append(f"{arch.describe()}: " + "; ".join(
            part for part in (
                f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}" if missing else "",
                f"unexpected {unexpected[:4]}{' ...' if len(unexpected) > 4 else ''}" if unexpected else "",
                f"shape mismatch {shapes[:3]}" if shapes else "") if part))
    raise UnsupportedCheckpoint(f"{name}: looks like " + " | ".join(problems) + f" ({_summary(sd)})")


def load_gan_file(path: str | Path) -> tuple[Architecture, nn.Module, dict[str, str]]:
    """Architecture, network and (safetensors) metadata of a GAN file, outside a node (training)."""
    weights = read_weights(path, wrappers=WRAPPER_KEYS)
    arch, module = detect_and_build(weights.tensors, weights.name)
    return arch, module, weights.metadata
