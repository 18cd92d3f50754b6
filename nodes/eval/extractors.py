"""Feature extractors for FID / KID / precision-recall.

- Inception-v3 in pytorch-fid's layout (pt_inception-2015-12-05-*.pth, or the same tensors as
  .safetensors): the standard FID network, when the user has the file in models/feature_extractors.
- A small convolutional extractor (`features.N.weight` / `.bias`, 3x3 stride-2 convs + ReLU, then a
  global average pool). The built-in one has fixed random weights drawn from a seed: random
  convolutional features separate image distributions well enough for relative comparisons and
  tests, at a fraction of Inception's cost. Numbers from different extractors are not comparable.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .inception import FIDInceptionV3

BUILTIN_RANDOM = "builtin: random-conv (seed 0)"
BUILTINS = [BUILTIN_RANDOM]


class SmallConvExtractor(nn.Module):
    """Images [B, 3, H, W] in 0..1 -> features [B, widths[-1]], at a fixed input size."""

    def __init__(self, widths: tuple[int, ...] = (3, 32, 64, 128, 256), input_size: int = 64) -> None:
        super().__init__()
        self.input_size = input_size
        layers: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.feature_dim = widths[-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False,
                          antialias=True)
        return self.features(2 * x - 1).mean(dim=(2, 3))


def random_extractor(seed: int = 0) -> SmallConvExtractor:
    """The built-in extractor: He-normal random weights from a CPU generator (same on every machine)."""
    module = SmallConvExtractor()
    generator = torch.Generator("cpu").manual_seed(seed)
    with torch.no_grad():
        for layer in module.features:
            if isinstance(layer, nn.Conv2d):
                fan_in = layer.weight[0].numel()
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                layer.bias.zero_()
    return module.eval().requires_grad_(False)


class UnsupportedExtractor(ValueError):
    pass


def extractor_from_state_dict(sd: dict[str, torch.Tensor], meta: dict[str, str] | None = None,
                              name: str = "file") -> tuple[nn.Module, str]:
    """Build and load an extractor from its tensors; returns (module, description)."""
    meta = meta or {}
    if "Mixed_7c.branch_pool.conv.weight" in sd:
        sd = {k: v for k, v in sd.items() if not k.startswith("AuxLogits.")}  # torchvision files carry these
        num_classes = sd["fc.weight"].shape[0] if "fc.weight" in sd else 1008
        module = FIDInceptionV3(num_classes)
        missing, unexpected = module.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]  # fc does not take part in the features
        if missing or unexpected:
            raise UnsupportedExtractor(f"{name}: an Inception-v3 state dict that does not match the FID network: "
                                       f"missing {missing[:5]}, unexpected {unexpected[:5]}")
        kind = "FID Inception-v3 (pytorch-fid)" if num_classes == 1008 else \
            f"Inception-v3 with {num_classes} classes (not the FID weights: numbers are not comparable to papers)"
        return module.eval().requires_grad_(False), kind
    conv_keys = sorted((k for k in sd if k.startswith("features.") and k.endswith(".weight")),
                       key=lambda k: int(k.split(".")[1]))
    if conv_keys:
        widths = (sd[conv_keys[0]].shape[1],) + tuple(sd[k].shape[0] for k in conv_keys)
        module = SmallConvExtractor(widths, int(meta.get("input_size", 64)))
        try:
            module.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise UnsupportedExtractor(f"{name}: small conv extractor layout, but: {exc}") from exc
        return module.eval().requires_grad_(False), f"small conv extractor {list(widths)}"
    shown = ", ".join(list(sd)[:5])
    raise UnsupportedExtractor(f"{name}: not a supported feature extractor (first keys: {shown}). Supported: "
                               "Inception-v3 in pytorch-fid's layout ('Conv2d_1a_3x3.conv.weight' ... "
                               "'Mixed_7c.*', 'fc.*'), or a small conv extractor ('features.N.weight')")

