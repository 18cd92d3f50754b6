"""State dicts in the public checkpoint layouts, enumerated key by key from the published network
definitions (pytorch-CycleGAN-and-pix2pix models/networks.py, PyTorch examples' dcgan) — written
independently of nodes.gan.architectures, so that loading them checks our modules' layouts."""
from __future__ import annotations

import torch

Shapes = dict[str, tuple[int, ...]]


def _conv(keys: Shapes, prefix: str, shape: tuple[int, ...], bias: bool) -> None:
    keys[f"{prefix}.weight"] = shape
    if bias:
        keys[f"{prefix}.bias"] = (shape[0],)


def _convT(keys: Shapes, prefix: str, cin: int, cout: int, k: int, bias: bool) -> None:
    keys[f"{prefix}.weight"] = (cin, cout, k, k)
    if bias:
        keys[f"{prefix}.bias"] = (cout,)


def _norm(keys: Shapes, prefix: str, channels: int, norm: str) -> None:
    if norm == "batch":
        for name in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{prefix}.{name}"] = (channels,)
        keys[f"{prefix}.num_batches_tracked"] = ()


def unet_keys(input_nc: int, output_nc: int, num_downs: int, ngf: int, norm: str) -> Shapes:
    """UnetGenerator: outermost block, then (ngf, 2ngf), (2ngf, 4ngf), (4ngf, 8ngf), num_downs-5 blocks
    of (8ngf, 8ngf), and the innermost (8ngf, 8ngf); as (outer_nc, inner_nc)."""
    bias = norm == "instance"
    keys: Shapes = {}
    seq = "model.model"
    _conv(keys, f"{seq}.0", (ngf, input_nc, 4, 4), bias)  # outermost downconv
    _convT(keys, f"{seq}.3", ngf * 2, output_nc, 4, True)  # outermost upconv always has a bias
    inner = [(ngf, ngf * 2), (ngf * 2, ngf * 4), (ngf * 4, ngf * 8)] + [(ngf * 8, ngf * 8)] * (num_downs - 5)
    seq = f"{seq}.1.model"
    for outer_nc, inner_nc in inner:
        _conv(keys, f"{seq}.1", (inner_nc, outer_nc, 4, 4), bias)
        _norm(keys, f"{seq}.2", inner_nc, norm)
        _convT(keys, f"{seq}.5", inner_nc * 2, outer_nc, 4, bias)
        _norm(keys, f"{seq}.6", outer_nc, norm)
        seq = f"{seq}.3.model"
    _conv(keys, f"{seq}.1", (ngf * 8, ngf * 8, 4, 4), bias)  # innermost
    _convT(keys, f"{seq}.3", ngf * 8, ngf * 8, 4, bias)
    _norm(keys, f"{seq}.4", ngf * 8, norm)
    return keys


def resnet_keys(input_nc: int, output_nc: int, ngf: int, norm: str, n_blocks: int) -> Shapes:
    """ResnetGenerator with reflect padding, no dropout, two downsamplings."""
    bias = norm == "instance"
    keys: Shapes = {}
    _conv(keys, "model.1", (ngf, input_nc, 7, 7), bias)
    _norm(keys, "model.2", ngf, norm)
    _conv(keys, "model.4", (ngf * 2, ngf, 3, 3), bias)
    _norm(keys, "model.5", ngf * 2, norm)
    _conv(keys, "model.7", (ngf * 4, ngf * 2, 3, 3), bias)
    _norm(keys, "model.8", ngf * 4, norm)
    for b in range(10, 10 + n_blocks):
        for conv, nrm in ((1, 2), (5, 6)):
            _conv(keys, f"model.{b}.conv_block.{conv}", (ngf * 4, ngf * 4, 3, 3), bias)
            _norm(keys, f"model.{b}.conv_block.{nrm}", ngf * 4, norm)
    up = 10 + n_blocks
    _convT(keys, f"model.{up}", ngf * 4, ngf * 2, 3, bias)
    _norm(keys, f"model.{up + 1}", ngf * 2, norm)
    _convT(keys, f"model.{up + 3}", ngf * 2, ngf, 3, bias)
    _norm(keys, f"model.{up + 4}", ngf, norm)
    _conv(keys, f"model.{up + 7}", (output_nc, ngf, 7, 7), True)
    return keys


def nlayer_keys(input_nc: int, ndf: int, n_layers: int, norm: str) -> Shapes:
    bias = norm == "instance"
    keys: Shapes = {}
    _conv(keys, "model.0", (ndf, input_nc, 4, 4), True)
    idx, mult = 2, 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2**n, 8)
        _conv(keys, f"model.{idx}", (ndf * mult, ndf * prev, 4, 4), bias)
        _norm(keys, f"model.{idx + 1}", ndf * mult, norm)
        idx += 3
    _conv(keys, f"model.{idx}", (1, ndf * mult, 4, 4), True)
    return keys


def dcgan_keys(nz: int = 100, ngf: int = 64, ndf: int = 64, nc: int = 3) -> tuple[Shapes, Shapes]:
    """The PyTorch examples' 64x64 DCGAN (netG, netD)."""
    g: Shapes = {}
    widths = [nz, ngf * 8, ngf * 4, ngf * 2, ngf, nc]
    for i in range(5):
        g[f"main.{3 * i}.weight"] = (widths[i], widths[i + 1], 4, 4)
        if i < 4:
            _norm(g, f"main.{3 * i + 1}", widths[i + 1], "batch")
    d: Shapes = {"main.0.weight": (ndf, nc, 4, 4)}
    for i, idx in enumerate((2, 5, 8)):
        d[f"main.{idx}.weight"] = (ndf * 2 ** (i + 1), ndf * 2**i, 4, 4)
        _norm(d, f"main.{idx + 1}", ndf * 2 ** (i + 1), "batch")
    d["main.11.weight"] = (1, ndf * 8, 4, 4)
    return g, d


def random_state_dict(shapes: Shapes, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[key] = torch.randn(shape, generator=g) * 0.05
    return sd
