"""Tiny upscalers with random weights in public key layouts, built in the tests (no downloads).

- ESRGAN, original layout (`model.0.weight`, `model.1.sub.0.RDB1.conv1.0.weight` ...): spandrel's RRDBNet.
- Real-ESRGAN / BasicSR layout (`conv_first`, `body.N.rdbK.convJ`, `conv_body`, `conv_up1/2`, `conv_hr`,
  `conv_last`), written here from the published architecture so the test checks spandrel's key mapping
  against an independent forward pass; x2 models use pixel-unshuffle at the input, as Real-ESRGAN x2.
- Compact (SRVGGNetCompact, Real-ESRGAN's small model), SPAN and SwinIR: spandrel's classes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nodes.upscale.spandrel_import import import_spandrel

import_spandrel()
from spandrel.architectures.Compact import Compact  # noqa: E402
from spandrel.architectures.ESRGAN import ESRGAN  # noqa: E402
from spandrel.architectures.SPAN import SPAN  # noqa: E402
from spandrel.architectures.SwinIR import SwinIR  # noqa: E402


def seeded(seed: int):
    torch.manual_seed(seed)


def esrgan_old(scale: int = 4, nf: int = 8, nb: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    seeded(seed)
    return near_identity(ESRGAN(in_nc=3, out_nc=3, num_filters=nf, num_blocks=nb, scale=scale)).state_dict()


@torch.no_grad()
def near_identity(model: nn.Module) -> nn.Module:
    """Shrink random weights so outputs stay in a useful range instead of saturating at 0 or 1."""
    for name, p in model.named_parameters():
        if name.endswith("weight"):
            p.mul_(0.5)
    return model


class ResidualDenseBlock(nn.Module):
    def __init__(self, nf: int, gc: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)

    def forward(self, x):
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        x1 = act(self.conv1(x))
        x2 = act(self.conv2(torch.cat((x, x1), 1)))
        x3 = act(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = act(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, nf: int, gc: int = 32) -> None:
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (ResidualDenseBlock(nf, gc) for _ in range(3))

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class BasicSRRRDBNet(nn.Module):
    """Real-ESRGAN's RRDBNet (BasicSR key names); x2 unshuffles the input by 2 and upsamples by 4."""

    def __init__(self, scale: int = 4, nf: int = 8, nb: int = 1, gc: int = 32) -> None:
        super().__init__()
        self.scale = scale
        in_ch = 3 * (4 if scale == 2 else 1)
        self.conv_first = nn.Conv2d(in_ch, nf, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(nf, gc) for _ in range(nb)])
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)

    def forward(self, x):
        act = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
        feat = F.pixel_unshuffle(x, 2) if self.scale == 2 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = act(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = act(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(act(self.conv_hr(feat)))


def esrgan_new(scale: int = 4, seed: int = 1) -> BasicSRRRDBNet:
    seeded(seed)
    return near_identity(BasicSRRRDBNet(scale=scale)).eval()


def compact(scale: int = 2, seed: int = 2) -> dict[str, torch.Tensor]:
    seeded(seed)
    return near_identity(Compact(num_feat=8, num_conv=2, upscale=scale)).state_dict()


def span(scale: int = 2, seed: int = 3) -> dict[str, torch.Tensor]:
    seeded(seed)
    return SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=scale).state_dict()


def swinir(scale: int = 2, seed: int = 4) -> dict[str, torch.Tensor]:
    seeded(seed)
    return SwinIR(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, mlp_ratio=2.0,
                  upscale=scale, upsampler="pixelshuffle").state_dict()
