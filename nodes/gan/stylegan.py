"""StyleGAN2 generators (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN").

The module layout is NVIDIA's official PyTorch one (stylegan2-ada-pytorch / stylegan3's StyleGAN2
`Generator`: `mapping.fc{i}`, `mapping.w_avg`, `synthesis.b{res}.{const,conv0,conv1,torgb}`), so a
`G_ema` state dict loads key for key; rosinality's stylegan2-pytorch `g_ema` layout is converted to
it (`from_rosinality`). Pieces, as the papers define them:

- mapping: z -> pixel norm -> `num_layers` equalised-lr fully connected layers (lr multiplier 0.01,
  leaky ReLU 0.2 with gain sqrt 2) -> w; W+ is w repeated once per synthesis input (`num_ws`);
  truncation: w_avg + psi (w - w_avg) on the first `cutoff` of them.
- synthesis (the "skip" architecture): a learned 4x4 constant, then per resolution an upsampling
  modulated 3x3 conv and a plain one, each followed by noise (per-pixel, scaled by a learned
  strength), bias and leaky ReLU; a 1x1 modulated (not demodulated) ToRGB per resolution whose
  outputs are summed, upsampled through the [1,3,3,1] FIR filter.
- modulated conv: style s = affine(w) (bias initialised to 1); weights w'_oikk = w_oikk s_i and,
  with demodulation, divided by sqrt(sum_ikk w'^2 + 1e-8). Here computed as scale-input, shared
  conv, scale-output (the same numbers, and cuDNN-friendly for training).
Images come out in about -1..1.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FIR = (1.0, 3.0, 3.0, 1.0)
NOISE_MODES = ("const", "random", "none")
LRELU_GAIN = math.sqrt(2.0)


def setup_filter(taps=FIR) -> torch.Tensor:
    """The separable low-pass filter as a 2-D kernel normalised to sum 1."""
    f = torch.tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def fir(x: torch.Tensor, up: int = 1, pad: tuple[int, int] = (0, 0), gain: float = 1.0) -> torch.Tensor:
    """Upsample by zero insertion, pad, and filter each channel with the [1,3,3,1] low-pass (upfirdn2d
    without down). The filter is separable and symmetric: two passes of shifted sums."""
    b, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(b, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(b, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    taps = [t / sum(FIR) for t in FIR]
    n = len(taps) - 1
    width, height = x.shape[-1] - n, x.shape[-2] - n
    x = sum(t * x[..., k:k + width] for k, t in enumerate(taps))
    x = sum(t * x[..., k:k + height, :] for k, t in enumerate(taps))
    return x * gain if gain != 1.0 else x


def lrelu(x: torch.Tensor, clamp: float | None = None) -> torch.Tensor:
    x = F.leaky_relu(x, 0.2) * LRELU_GAIN
    return x.clamp(-clamp, clamp) if clamp is not None else x


class FullyConnected(nn.Module):
    """Equalised learning rate: weights stored as N(0, 1)/lr_mul, scaled by lr_mul/sqrt(fan_in)."""

    def __init__(self, in_features: int, out_features: int, activation: bool = False, lr_multiplier: float = 1.0,
                 bias_init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.activation = activation
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return lrelu(x) if self.activation else x


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, num_layers: int, lr_multiplier: float = 0.01,
                 layer_features: int | None = None) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_layers = z_dim, w_dim, num_layers
        widths = [z_dim] + [layer_features or w_dim] * (num_layers - 1) + [w_dim]
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnected(widths[i], widths[i + 1], activation=True,
                                                   lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = normalize_2nd_moment(z.float())
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling 2x) + noise + bias + leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.resolution, self.up, self.conv_clamp = resolution, up, conv_clamp
        self.register_buffer("resample_filter", setup_filter())  # the layout's; computed with FIR (checked on load)
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const",
                generator: torch.Generator | None = None) -> torch.Tensor:
        styles = self.affine(w)  # [B, I]
        weight = self.weight
        # sum_ikk (w_oikk s_i)^2 = sum_i s_i^2 sum_kk w_oikk^2: one small matmul, not a [B,O,I,k,k] tensor
        demod = (styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()  # [B, O]
        x = x * styles[:, :, None, None]
        if self.up == 2:  # transposed conv (stride 2), then the FIR filter: 3x3 on 2x the resolution
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
            x = fir(x, pad=(1, 1), gain=4.0)
        else:
            x = F.conv2d(x, weight, padding=1)
        x = x * demod[:, :, None, None]
        noise = self.noise(x.shape[0], noise_mode, generator, x.device, x.dtype)
        if noise is not None:
            x = x + noise
        return lrelu(x + self.bias[None, :, None, None], self.conv_clamp)

    def noise(self, batch, mode, generator, device, dtype) -> torch.Tensor | None:
        if mode == "none":
            return None
        if mode == "const":
            return (self.noise_const * self.noise_strength).to(dtype)
        if mode != "random":
            raise ValueError(f"unknown noise mode {mode!r} (expected one of {NOISE_MODES})")
        shape = (batch, 1, self.resolution, self.resolution)
        if generator is not None:  # seeded on its own device (the CPU for nodes: same noise anywhere)
            n = torch.randn(shape, generator=generator, device=generator.device).to(device, dtype)
        else:
            n = torch.randn(shape, device=device, dtype=dtype)
        return n * self.noise_strength


class ToRGB(nn.Module):
    """1x1 modulated conv without demodulation (style scaled by 1/sqrt(fan_in)) + bias."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)
        self.conv_clamp = conv_clamp

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = F.conv2d(x * styles[:, :, None, None], self.weight) + self.bias[None, :, None, None]
        return x.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else x


class SynthesisBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        self.register_buffer("resample_filter", setup_filter())
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGB(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2

    def forward(self, x, img, ws, noise_mode="const", generator=None):
        """ws: [B, num_conv + 1, w_dim] (the ToRGB's w is the next block's first)."""
        if self.in_channels == 0:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0], noise_mode, generator)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, generator)
            x = self.conv1(x, ws[:, 1], noise_mode, generator)
        y = self.torgb(x, ws[:, self.num_conv])
        if img is not None:
            img = fir(img, up=2, pad=(2, 1), gain=4.0)
            y = img + y
        return x, y


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, channels: dict[int, int], img_channels: int = 3,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.w_dim, self.img_channels = w_dim, img_channels
        self.resolutions = sorted(channels)
        self.channels = dict(channels)
        self.num_ws = 0
        previous = 0
        for res in self.resolutions:
            block = SynthesisBlock(previous, channels[res], w_dim, res, img_channels, conv_clamp)
            setattr(self, f"b{res}", block)
            self.num_ws += block.num_conv
            previous = channels[res]
        self.num_ws += 1  # the last ToRGB's w

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", generator: torch.Generator | None = None):
        x = img = None
        index = 0
        for res in self.resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, index:index + block.num_conv + 1], noise_mode, generator)
            index += block.num_conv
        return img


@dataclass(frozen=True)
class StyleGANConfig:
    """A StyleGAN2 generator's shape, as read from a checkpoint's keys."""
    z_dim: int
    w_dim: int
    mapping_layers: int
    channels: dict = field(default_factory=dict)  # resolution -> channels, from 4 up
    img_channels: int = 3
    lr_multiplier: float = 0.01
    layer_features: int | None = None
    conv_clamp: float | None = None

    @property
    def resolution(self) -> int:
        return max(self.channels)

    @property
    def num_ws(self) -> int:
        return 2 * len(self.channels)

    def build(self) -> "StyleGAN2Generator":
        return StyleGAN2Generator(self)

    def describe(self) -> str:
        widths = "-".join(str(self.channels[r]) for r in sorted(self.channels))
        return (f"StyleGAN2 generator {self.resolution}x{self.resolution} (z {self.z_dim}, w {self.w_dim}, "
                f"{self.mapping_layers} mapping layers, widths {widths}, {self.num_ws} ws)")

    def as_dict(self) -> dict:
        return asdict(self)


class StyleGAN2Generator(nn.Module):
    """z -> (mapping) -> W+ -> (synthesis) -> image in about -1..1."""

    def __init__(self, config: StyleGANConfig) -> None:
        super().__init__()
        self.config = config
        self.z_dim, self.w_dim = config.z_dim, config.w_dim
        self.mapping = MappingNetwork(config.z_dim, config.w_dim, config.mapping_layers, config.lr_multiplier,
                                      config.layer_features)
        self.synthesis = SynthesisNetwork(config.w_dim, config.channels, config.img_channels, config.conv_clamp)
        self.num_ws = self.synthesis.num_ws

    def map(self, z: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
        """W+ [B, num_ws, w_dim], truncated towards w_avg by psi on the first `cutoff` ws (all if None)."""
        return truncate(self.mapping(z)[:, None].repeat(1, self.num_ws, 1), self.mapping.w_avg, psi, cutoff)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", generator: torch.Generator | None = None):
        if ws.ndim == 2:
            ws = ws[:, None].expand(-1, self.num_ws, -1)
        return self.synthesis(ws.float(), noise_mode, generator)


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float, cutoff: int | None = None) -> torch.Tensor:
    if psi == 1.0:
        return ws
    ws = ws.clone()
    n = ws.shape[1] if cutoff is None else min(int(cutoff), ws.shape[1])
    ws[:, :n] = w_avg.to(ws) + psi * (ws[:, :n] - w_avg.to(ws))
    return ws


def mix(ws_a: torch.Tensor, ws_b: torch.Tensor, crossover: int) -> torch.Tensor:
    """W+ with the first `crossover` ws (coarse: the low resolutions) from a, the rest (fine) from b."""
    if ws_a.shape[1:] != ws_b.shape[1:]:
        raise ValueError(f"W+ shapes differ: {tuple(ws_a.shape)} vs {tuple(ws_b.shape)}")
    ws_a, ws_b = torch.broadcast_tensors(ws_a, ws_b) if ws_a.shape[0] != ws_b.shape[0] else (ws_a, ws_b)
    out = ws_b.clone()
    out[:, :crossover] = ws_a[:, :crossover]
    return out


@torch.no_grad()
def estimate_w_avg(generator: StyleGAN2Generator, samples: int = 10_000, seed: int = 0) -> torch.Tensor:
    """The mean of w over seeded z (for files that do not store w_avg, e.g. rosinality's g_ema)."""
    g = torch.Generator("cpu").manual_seed(seed)
    z = torch.randn(samples, generator.z_dim, generator=g)
    return generator.mapping(z.to(generator.mapping.w_avg.device)).mean(0)


def np_filter_ok(kernel: torch.Tensor, gain: float) -> bool:
    return kernel.shape == (4, 4) and np.allclose(kernel.float().numpy(), (setup_filter() * gain).numpy(), atol=1e-6)
