"""GAN architectures in the public checkpoint layouts.

- DCGAN (the PyTorch examples' dcgan): generator `main.0..` ConvTranspose stack z -> image, and
  discriminator `main.0..` Conv stack ending in a 4x4 valid conv and a sigmoid. Widths are free
  (read from the checkpoint), so 32x32 or 64x64 variants load too.
- pix2pix / CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py`): UnetGenerator
  built from nested UnetSkipConnectionBlocks (`model.model.1.model.3...`), ResnetGenerator
  (`model.10.conv_block.1.weight`), NLayerDiscriminator (PatchGAN, `model.0..`) and
  PixelDiscriminator (`net.0..`), each with BatchNorm, InstanceNorm or no norm.

Module attribute names and Sequential indices reproduce those layouts exactly, so their
state dicts load with no missing or unexpected keys. Every network maps images in [-1, 1].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

NORMS = ("batch", "instance", "none")


def make_norm(kind: str, channels: int) -> nn.Module:
    """The norm layers of pix2pix's get_norm_layer: affine BatchNorm, plain InstanceNorm, or none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r} (expected one of {NORMS})")


def uses_bias(norm: str) -> bool:
    # pix2pix gives convolutions a bias only when the norm is InstanceNorm (BatchNorm has its own)
    return norm == "instance"


# --- DCGAN ----------------------------------------------------------------------------------------
class DCGANGenerator(nn.Module):
    """z [B, nz, 1, 1] -> image [B, nc, R, R], R = 4 * 2**(layers - 1)."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        if len(widths) < 2:
            raise ValueError("a DCGAN generator needs at least one layer")
        layers: list[nn.Module] = []
        last = len(widths) - 2
        for i in range(len(widths) - 1):
            first = i == 0
            layers.append(nn.ConvTranspose2d(widths[i], widths[i + 1], 4, 1 if first else 2, 0 if first else 1,
                                             bias=False))
            if i < last:
                layers += [nn.BatchNorm2d(widths[i + 1]), nn.ReLU(True)]
        layers.append(nn.Tanh())
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class DCGANDiscriminator(nn.Module):
    """image [B, nc, R, R] -> probability [B, 1, 1, 1], R = 4 * 2**(len(widths) - 1)."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        if len(widths) < 2:
            raise ValueError("a DCGAN discriminator needs at least one strided layer")
        layers: list[nn.Module] = [nn.Conv2d(widths[0], widths[1], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for i in range(1, len(widths) - 1):
            layers += [nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1, bias=False), nn.BatchNorm2d(widths[i + 1]),
                       nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


# --- pix2pix / CycleGAN generators -----------------------------------------------------------------
class UnetSkipConnectionBlock(nn.Module):
    """x -> cat(x, up(sub(down(x)))) ; the outermost block returns up(...) alone, through tanh."""

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False, innermost: bool = False,
                 norm: str = "batch", use_dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        bias = uses_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, 2, 1, bias=bias)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1)
            layers = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, make_norm(norm, outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), downconv, make_norm(norm, inner_nc), submodule,
                      nn.ReLU(True), upconv, make_norm(norm, outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """pix2pix's U-Net: num_downs halvings (an image of 2**num_downs pixels reaches 1x1)."""

    def __init__(self, input_nc: int, output_nc: int, num_downs: int, ngf: int = 64, norm: str = "batch",
                 use_dropout: bool = False) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"the pix2pix UnetGenerator has at least 5 downsamplings, not {num_downs}")
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True,
                                             norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


PADDINGS = ("reflect", "replicate", "zero")


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, padding_type: str, norm: str, use_dropout: bool, bias: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for second in (False, True):
            p = 0
            if padding_type == "reflect":
                layers.append(nn.ReflectionPad2d(1))
            elif padding_type == "replicate":
                layers.append(nn.ReplicationPad2d(1))
            else:
                p = 1
            layers += [nn.Conv2d(dim, dim, 3, padding=p, bias=bias), make_norm(norm, dim)]
            if not second:
                layers.append(nn.ReLU(True))
                if use_dropout:
                    layers.append(nn.Dropout(0.5))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator (Johnson et al.): 7x7 conv, downsamplings, residual blocks, back up."""

    def __init__(self, input_nc: int, output_nc: int, ngf: int = 64, norm: str = "batch", use_dropout: bool = False,
                 n_blocks: int = 9, padding_type: str = "reflect", n_downsampling: int = 2) -> None:
        super().__init__()
        bias = uses_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, padding=0, bias=bias),
                                   make_norm(norm, ngf), nn.ReLU(True)]
        for i in range(n_downsampling):
            mult = 2**i
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                       make_norm(norm, ngf * mult * 2), nn.ReLU(True)]
        mult = 2**n_downsampling
        layers += [ResnetBlock(ngf * mult, padding_type, norm, use_dropout, bias) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1,
                                          bias=bias),
                       make_norm(norm, ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# --- pix2pix / CycleGAN discriminators -------------------------------------------------------------
class NLayerDiscriminator(nn.Module):
    """PatchGAN: a map of real/fake logits, one per overlapping patch (70x70 for n_layers=3)."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        bias = uses_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(input_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=bias), make_norm(norm, ndf * mult),
                       nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=bias), make_norm(norm, ndf * mult),
                   nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: a real/fake logit per pixel."""

    def __init__(self, input_nc: int, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        bias = uses_bias(norm)
        self.net = nn.Sequential(nn.Conv2d(input_nc, ndf, 1, 1, 0), nn.LeakyReLU(0.2, True),
                                 nn.Conv2d(ndf, ndf * 2, 1, 1, 0, bias=bias), make_norm(norm, ndf * 2),
                                 nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * 2, 1, 1, 1, 0, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --- configurations: what a loader detects, and how to build it -------------------------------------
@dataclass(frozen=True)
class Architecture:
    """A detected architecture. `role` is generator or discriminator; `kind` names the family."""

    kind: str
    role: str
    input_nc: int  # channels in (for a DCGAN generator: nz)
    output_nc: int  # channels out (for discriminators: 1)
    params: tuple[tuple[str, object], ...]  # the family's constructor arguments

    @property
    def args(self) -> dict:
        return dict(self.params)

    @property
    def conditional(self) -> bool:
        """An image-to-image generator (as opposed to z -> image)."""
        return self.role == "generator" and self.kind != "dcgan"

    @property
    def resolution(self) -> int | None:
        """The one input/output size the network works at, if it has one (DCGAN)."""
        if self.kind == "dcgan":
            return 4 * 2 ** (len(self.args["widths"]) - 2 + (self.role == "discriminator"))
        return None

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (fully convolutional networks)."""
        if self.kind == "unet":
            return 2 ** self.args["num_downs"]
        if self.kind == "resnet":
            return 2 ** self.args["n_downsampling"]
        return 1

    def build(self) -> nn.Module:
        a = self.args
        if self.kind == "dcgan":
            cls = DCGANGenerator if self.role == "generator" else DCGANDiscriminator
            return cls(tuple(a["widths"]))
        if self.kind == "unet":
            return UnetGenerator(self.input_nc, self.output_nc, a["num_downs"], a["ngf"], a["norm"], a["use_dropout"])
        if self.kind == "resnet":
            return ResnetGenerator(self.input_nc, self.output_nc, a["ngf"], a["norm"], a["use_dropout"],
                                   a["n_blocks"], a["padding_type"], a["n_downsampling"])
        if self.kind == "patchgan":
            return NLayerDiscriminator(self.input_nc, a["ndf"], a["n_layers"], a["norm"])
        if self.kind == "pixel":
            return PixelDiscriminator(self.input_nc, a["ndf"], a["norm"])
        raise ValueError(f"unknown architecture kind {self.kind!r}")

    def describe(self) -> str:
        a = self.args
        if self.kind == "dcgan":
            what = "DCGAN generator" if self.role == "generator" else "DCGAN discriminator"
            return f"{what} {self.resolution}x{self.resolution}, widths {list(a['widths'])}"
        if self.kind == "unet":
            return (f"pix2pix UnetGenerator (num_downs={a['num_downs']}, ngf={a['ngf']}, norm={a['norm']}, "
                    f"{self.input_nc}->{self.output_nc} channels)")
        if self.kind == "resnet":
            return (f"ResnetGenerator (n_blocks={a['n_blocks']}, ngf={a['ngf']}, norm={a['norm']}, "
                    f"n_downsampling={a['n_downsampling']}, padding={a['padding_type']}, "
                    f"{self.input_nc}->{self.output_nc} channels)")
        if self.kind == "patchgan":
            return (f"PatchGAN NLayerDiscriminator (n_layers={a['n_layers']}, ndf={a['ndf']}, norm={a['norm']}, "
                    f"{self.input_nc} input channels)")
        return f"PixelDiscriminator (ndf={a['ndf']}, norm={a['norm']}, {self.input_nc} input channels)"

    def to_json(self) -> dict:
        d = asdict(self)
        d["params"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.params}
        return d


def architecture(kind: str, role: str, input_nc: int, output_nc: int, **params) -> Architecture:
    return Architecture(kind, role, input_nc, output_nc,
                        tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in params.items())))


# shorthands used by the training script and tests
def dcgan_generator(nz: int = 100, ngf: int = 64, nc: int = 3, resolution: int = 64) -> Architecture:
    """The PyTorch example's generator scaled to a resolution: ngf*2**k ... ngf, then nc."""
    n_up = (resolution // 4).bit_length() - 1  # 64 -> 4 strided layers
    widths = [nz] + [ngf * 2 ** (n_up - 1 - i) for i in range(n_up)] + [nc]
    return architecture("dcgan", "generator", nz, nc, widths=widths)


def dcgan_discriminator(nc: int = 3, ndf: int = 64, resolution: int = 64) -> Architecture:
    n_down = (resolution // 4).bit_length() - 1
    widths = [nc] + [ndf * 2**i for i in range(n_down)]
    return architecture("dcgan", "discriminator", nc, 1, widths=widths)


def unet_generator(input_nc: int = 3, output_nc: int = 3, num_downs: int = 8, ngf: int = 64, norm: str = "batch",
                   use_dropout: bool = False) -> Architecture:
    return architecture("unet", "generator", input_nc, output_nc, num_downs=num_downs, ngf=ngf, norm=norm,
                        use_dropout=use_dropout)


def resnet_generator(input_nc: int = 3, output_nc: int = 3, ngf: int = 64, norm: str = "instance",
                     n_blocks: int = 9, use_dropout: bool = False, padding_type: str = "reflect",
                     n_downsampling: int = 2) -> Architecture:
    return architecture("resnet", "generator", input_nc, output_nc, ngf=ngf, norm=norm, n_blocks=n_blocks,
                        use_dropout=use_dropout, padding_type=padding_type, n_downsampling=n_downsampling)


def patchgan_discriminator(input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> Architecture:
    return architecture("patchgan", "discriminator", input_nc, 1, ndf=ndf, n_layers=n_layers, norm=norm)


def pixel_discriminator(input_nc: int = 3, ndf: int = 64, norm: str = "batch") -> Architecture:
    return architecture("pixel", "discriminator", input_nc, 1, ndf=ndf, norm=norm)
