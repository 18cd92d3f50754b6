"""Read StyleGAN2 generators from the weight-only layouts people share, detecting the shape from keys.

- NVIDIA's official PyTorch layout (stylegan2-ada-pytorch, and stylegan3's StyleGAN2 networks): a
  `G_ema` state dict converted to safetensors (`tools/stylegan_pkl_to_safetensors.py`): `mapping.fc{i}.*`,
  `mapping.w_avg`, `synthesis.b{res}.{const,conv0,conv1,torgb}.*`. The "skip" synthesis only (the
  default of both papers' generators); unconditional only.
- rosinality's stylegan2-pytorch: the `g_ema` state dict of its training checkpoints (`.pt`, read with
  weights_only=True; the "g_ema" entry is taken from a full checkpoint) or the same tensors as
  safetensors: `style.{1..n}.*`, `input.input`, `conv1.*`, `to_rgb1.*`, `convs.{k}.*`, `to_rgbs.{k}.*`,
  `noises.noise_{i}`. Converted to the NVIDIA layout (conv weights take rosinality's 1/sqrt(fan_in),
  which demodulation makes equivalent; w_avg, absent from the file, is estimated from 10 000 seeded z).

Pickles (`.pkl`, NVIDIA's network snapshots) hold code and are never opened here.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from .stylegan import StyleGAN2Generator, StyleGANConfig, estimate_w_avg, np_filter_ok, setup_filter

CONVERTER = "tools/stylegan_pkl_to_safetensors.py"  # in the nodegraph repository
WRAPPERS = ("g_ema", "G_ema", "state_dict", "params_ema")


class StyleGANLayoutError(ValueError):
    pass


def pickle_message(name: str) -> str:
    return (f"{name} is a pickled network snapshot (.pkl), which can run arbitrary code when opened, so it is "
            f"never unpickled here. Convert it once, where you trust the file and have NVIDIA's stylegan2-ada-pytorch "
            f"or stylegan3 checkout on the Python path: `python {CONVERTER} {name} "
            f"{Path(name).with_suffix('.safetensors').name}` (it saves G_ema's weights), then load the .safetensors file")


def detect_layout(sd: dict[str, torch.Tensor]) -> str:
    if "mapping.fc0.weight" in sd and any(k.startswith("synthesis.") for k in sd):
        if any(k.startswith("synthesis.input.") or re.match(r"synthesis\.L\d+_", k) for k in sd):
            return "stylegan3"
        return "nvidia"
    if "style.1.weight" in sd and "input.input" in sd and "conv1.conv.weight" in sd:
        return "rosinality"
    return ""


def _nvidia_config(sd: dict) -> StyleGANConfig:
    if "mapping.embed.weight" in sd:
        raise StyleGANLayoutError("a class-conditional generator (mapping.embed.*): only unconditional "
                                  "StyleGAN2 generators are supported")
    if any(re.match(r"synthesis\.b\d+\.skip\.", k) for k in sd):
        raise StyleGANLayoutError("the 'resnet' synthesis architecture (synthesis.b*.skip.*): only the 'skip' "
                                  "architecture (the papers' generator default) is supported")
    resolutions = sorted({int(m.group(1)) for k in sd if (m := re.match(r"synthesis\.b(\d+)\.", k))})
    if not resolutions or f"synthesis.b{resolutions[0]}.const" not in sd:
        raise StyleGANLayoutError("no synthesis.b*.const: not a StyleGAN2 synthesis network")
    missing_rgb = [r for r in resolutions if f"synthesis.b{r}.torgb.weight" not in sd]
    if missing_rgb:
        raise StyleGANLayoutError(f"no ToRGB at {missing_rgb}: the 'orig' synthesis architecture is not supported")
    channels = {r: int(sd[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in resolutions}
    layers = sorted(int(m.group(1)) for k in sd if (m := re.match(r"mapping\.fc(\d+)\.weight$", k)))
    first = sd["mapping.fc0.weight"]
    last = sd[f"mapping.fc{layers[-1]}.weight"]
    hidden = int(first.shape[0]) if len(layers) > 1 else None
    return StyleGANConfig(z_dim=int(first.shape[1]), w_dim=int(last.shape[0]), mapping_layers=len(layers),
                          channels=channels, img_channels=int(sd[f"synthesis.b{resolutions[-1]}.torgb.weight"].shape[0]),
                          layer_features=hidden if hidden != int(last.shape[0]) else None)


def _rosinality_to_nvidia(sd: dict) -> tuple[StyleGANConfig, dict[str, torch.Tensor]]:
    """Rename and rescale rosinality's g_ema tensors into the NVIDIA layout."""
    mlp = sorted(int(m.group(1)) for k in sd if (m := re.match(r"style\.(\d+)\.weight$", k)))
    if mlp != list(range(1, len(mlp) + 1)):
        raise StyleGANLayoutError(f"mapping layers style.{mlp}: expected style.1 .. style.N")
    const = sd["input.input"]  # [1, C, r, r]
    start = int(const.shape[-1])
    pairs = sorted({int(m.group(1)) for k in sd if (m := re.match(r"convs\.(\d+)\.", k))})
    if len(pairs) % 2:
        raise StyleGANLayoutError("an odd number of convs.*: each resolution has an upsampling conv and a plain one")
    rgbs = sorted({int(m.group(1)) for k in sd if (m := re.match(r"to_rgbs\.(\d+)\.", k))})
    if len(rgbs) != len(pairs) // 2:
        raise StyleGANLayoutError(f"{len(rgbs)} to_rgbs for {len(pairs) // 2} resolutions")
    resolutions = [start * 2 ** i for i in range(len(rgbs) + 1)]
    out: dict[str, torch.Tensor] = {}
    for i, n in enumerate(mlp):
        out[f"mapping.fc{i}.weight"] = sd[f"style.{n}.weight"]
        out[f"mapping.fc{i}.bias"] = sd[f"style.{n}.bias"]
    out[f"synthesis.b{start}.const"] = const[0]
    noises = {int(m.group(1)): v for k, v in sd.items() if (m := re.match(r"noises\.noise_(\d+)$", k))}

    def styled_conv(src: str, dst: str, noise_index: int, resolution: int) -> None:
        weight = sd[f"{src}.conv.weight"][0]  # [O, I, k, k]
        out[f"{dst}.weight"] = weight / math.sqrt(weight[0].numel())  # rosinality's scale, folded in
        out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        out[f"{dst}.noise_strength"] = sd[f"{src}.noise.weight"].reshape([])
        out[f"{dst}.bias"] = sd[f"{src}.activate.bias"]
        noise = noises.get(noise_index)
        out[f"{dst}.noise_const"] = noise.reshape(resolution, resolution) if noise is not None \
            else torch.zeros(resolution, resolution)
        out[f"{dst}.resample_filter"] = setup_filter()
        kernel = sd.get(f"{src}.conv.blur.kernel")
        if kernel is not None and not np_filter_ok(kernel, 4.0):
            raise StyleGANLayoutError(f"{src}.conv.blur.kernel is not the [1,3,3,1] filter")

    def to_rgb(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]  # NVIDIA applies the 1/sqrt(fan_in) to the style
        out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(-1)
        kernel = sd.get(f"{src}.upsample.kernel")
        if kernel is not None and not np_filter_ok(kernel, 4.0):
            raise StyleGANLayoutError(f"{src}.upsample.kernel is not the [1,3,3,1] filter")

    styled_conv("conv1", f"synthesis.b{start}.conv1", 0, start)
    to_rgb("to_rgb1", f"synthesis.b{start}.torgb")
    out[f"synthesis.b{start}.resample_filter"] = setup_filter()
    for k, res in enumerate(resolutions[1:]):
        block = f"synthesis.b{res}"
        styled_conv(f"convs.{2 * k}", f"{block}.conv0", 2 * k + 1, res)
        styled_conv(f"convs.{2 * k + 1}", f"{block}.conv1", 2 * k + 2, res)
        to_rgb(f"to_rgbs.{k}", f"{block}.torgb")
        out[f"{block}.resample_filter"] = setup_filter()
    known = {k for k in sd if re.match(r"(style\.\d+|input|conv1|to_rgb1|convs\.\d+|to_rgbs\.\d+|noises)\.", k)}
    extra = sorted(set(sd) - known)
    if extra:
        raise StyleGANLayoutError(f"unexpected keys for rosinality's Generator: {extra[:5]}")
    channels = {res: int(out[f"synthesis.b{res}.conv1.weight"].shape[0]) for res in resolutions}
    w_dim = int(sd[f"style.{mlp[-1]}.weight"].shape[0])
    config = StyleGANConfig(z_dim=int(sd["style.1.weight"].shape[1]), w_dim=w_dim, mapping_layers=len(mlp),
                            channels=channels, img_channels=int(out[f"synthesis.b{start}.torgb.weight"].shape[0]))
    return config, out


def load_stylegan(sd: dict[str, torch.Tensor], name: str = "checkpoint") -> tuple[StyleGAN2Generator, dict]:
    """(generator in eval mode, info: layout, config, w_avg source). Raises StyleGANLayoutError."""
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    layout = detect_layout(sd)
    try:
        if layout == "stylegan3":
            raise StyleGANLayoutError("a StyleGAN3 (alias-free: synthesis.input / synthesis.L*_*) generator; only "
                                      "StyleGAN2 / StyleGAN2-ADA synthesis networks are supported")
        if layout == "nvidia":
            config, tensors = _nvidia_config(sd), dict(sd)
        elif layout == "rosinality":
            config, tensors = _rosinality_to_nvidia(sd)
        else:
            shown = ", ".join(list(sd)[:5])
            raise StyleGANLayoutError(f"not a StyleGAN2 generator (first keys: {shown}); expected NVIDIA's "
                                      "layout (mapping.fc0.weight, synthesis.b4.const ...) or rosinality's "
                                      "g_ema (style.1.weight, input.input, conv1.conv.weight ...)")
        odd = [k for k, v in tensors.items() if k.endswith("resample_filter") and not np_filter_ok(v, 1.0)]
        if odd:
            raise StyleGANLayoutError(f"{odd[0]} is not the [1,3,3,1] low-pass filter (the only one supported)")
        generator = config.build()
        w_avg_source = "file"
        if "mapping.w_avg" not in tensors:
            tensors["mapping.w_avg"] = torch.zeros(config.w_dim)
            w_avg_source = "estimated"
        expected = generator.state_dict()
        missing = [k for k in expected if k not in tensors]
        unexpected = [k for k in tensors if k not in expected]
        shapes = [f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items()
                  if k in tensors and tuple(tensors[k].shape) != tuple(v.shape)]
        if missing or unexpected or shapes:
            raise StyleGANLayoutError(f"{config.describe()}: missing {missing[:4]}, unexpected {unexpected[:4]}, "
                                      f"shape mismatch {shapes[:3]}")
        generator.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except StyleGANLayoutError as exc:
        raise StyleGANLayoutError(f"{name}: {exc}") from None
    generator.eval().requires_grad_(False)
    if w_avg_source == "estimated":
        generator.mapping.w_avg.copy_(estimate_w_avg(generator))
    return generator, {"layout": layout, "config": config, "w_avg": w_avg_source}
