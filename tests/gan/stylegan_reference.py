"""Tiny random StyleGAN2 checkpoints in the two public layouts, and reference forwards written from
the papers' equations straight off each layout's keys (one image at a time, per-sample modulated
weights, the FIR filter read from the file as a dense 2-D kernel), deliberately unlike the pack's
network (batched input/output scaling, separable shifted sums, a layout converter).

Key names and conventions come from NVlabs/stylegan2-ada-pytorch training/networks.py (G_ema state
dicts) and rosinality/stylegan2-pytorch model.py (g_ema): equalised learning rate (weights scaled by
lr_mul / sqrt(fan_in), biases by lr_mul), modulation biases initialised to 1, noise strength per layer,
leaky ReLU 0.2 with gain sqrt(2), demodulation eps 1e-8, [1,3,3,1] FIR after upsampling.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CHANNELS = {4: 8, 8: 6, 16: 5}
Z, W, MLP, LR_MUL = 8, 8, 2, 0.01


def _rand(g):
    return lambda *shape: torch.randn(*shape, generator=g)


def fir_kernel(gain: float = 1.0) -> torch.Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = k[:, None] * k[None, :]
    return k / k.sum() * gain


def nvidia_checkpoint(seed: int = 0, channels=CHANNELS) -> dict[str, torch.Tensor]:
    r = _rand(torch.Generator().manual_seed(seed))
    sd = {}
    dims = [Z] + [W] * MLP
    for i in range(MLP):
        sd[f"mapping.fc{i}.weight"] = r(dims[i + 1], dims[i]) / LR_MUL
        sd[f"mapping.fc{i}.bias"] = r(dims[i + 1])
    sd["mapping.w_avg"] = r(W)

    def layer(prefix, cin, cout, res):
        sd[f"{prefix}.resample_filter"] = fir_kernel()
        sd[f"{prefix}.affine.weight"] = r(cin, W)
        sd[f"{prefix}.affine.bias"] = 1 + 0.2 * r(cin)
        sd[f"{prefix}.weight"] = r(cout, cin, 3, 3)
        sd[f"{prefix}.noise_const"] = r(res, res)
        sd[f"{prefix}.noise_strength"] = 0.5 * r(())
        sd[f"{prefix}.bias"] = 0.2 * r(cout)

    previous = 0
    for res, c in sorted(channels.items()):
        b = f"synthesis.b{res}"
        sd[f"{b}.resample_filter"] = fir_kernel()
        if previous == 0:
            sd[f"{b}.const"] = r(c, res, res)
        else:
            layer(f"{b}.conv0", previous, c, res)
        layer(f"{b}.conv1", c, c, res)
        sd[f"{b}.torgb.affine.weight"] = r(c, W)
        sd[f"{b}.torgb.affine.bias"] = 1 + 0.2 * r(c)
        sd[f"{b}.torgb.weight"] = r(3, c, 1, 1)
        sd[f"{b}.torgb.bias"] = 0.2 * r(3)
        previous = c
    return sd


def rosinality_checkpoint(seed: int = 0, channels=CHANNELS) -> dict[str, torch.Tensor]:
    r = _rand(torch.Generator().manual_seed(seed))
    sd = {}
    for i in range(1, MLP + 1):
        sd[f"style.{i}.weight"] = r(W, W) / LR_MUL  # rosinality's style_dim: z and w alike
        sd[f"style.{i}.bias"] = r(W)
    res = sorted(channels)

    def styled(prefix, cin, cout, up):
        sd[f"{prefix}.conv.weight"] = r(1, cout, cin, 3, 3)
        if up:
            sd[f"{prefix}.conv.blur.kernel"] = fir_kernel(4.0)
        sd[f"{prefix}.conv.modulation.weight"] = r(cin, W)
        sd[f"{prefix}.conv.modulation.bias"] = 1 + 0.2 * r(cin)
        sd[f"{prefix}.noise.weight"] = 0.5 * r(1)
        sd[f"{prefix}.activate.bias"] = 0.2 * r(cout)

    def rgb(prefix, cin, up):
        if up:
            sd[f"{prefix}.upsample.kernel"] = fir_kernel(4.0)
        sd[f"{prefix}.conv.weight"] = r(1, 3, cin, 1, 1)
        sd[f"{prefix}.conv.modulation.weight"] = r(cin, W)
        sd[f"{prefix}.conv.modulation.bias"] = 1 + 0.2 * r(cin)
        sd[f"{prefix}.bias"] = 0.2 * r(1, 3, 1, 1)

    sd["input.input"] = r(1, channels[res[0]], res[0], res[0])
    styled("conv1", channels[res[0]], channels[res[0]], False)
    rgb("to_rgb1", channels[res[0]], False)
    for k, size in enumerate(res[1:]):
        styled(f"convs.{2 * k}", channels[res[k]], channels[size], True)
        styled(f"convs.{2 * k + 1}", channels[size], channels[size], False)
        rgb(f"to_rgbs.{k}", channels[size], True)
    sizes = [res[0]] + [s for s in res[1:] for _ in range(2)]
    for i, size in enumerate(sizes):
        sd[f"noises.noise_{i}"] = r(1, 1, size, size)
    return sd


# --- the equations ---------------------------------------------------------------------------------
def act(x):
    return F.leaky_relu(x, 0.2) * math.sqrt(2)


def mapping(z: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """z [D] -> w [W]: pixel norm, then equalised-lr FC + lrelu per layer."""
    x = z / torch.sqrt((z * z).mean() + 1e-8)
    for weight, bias in layers:
        x = act(torch.einsum("oi,i->o", weight * (LR_MUL / math.sqrt(weight.shape[1])), x) + bias * LR_MUL)
    return x


def modulated_conv(x, weight, style, demodulate: bool, up: bool, kernel: torch.Tensor | None):
    """One image x [I, H, W]; weight [O, I, k, k] already carrying any fan-in scale; style [I]."""
    wm = weight * style[None, :, None, None]
    if demodulate:
        wm = wm / torch.sqrt((wm * wm).sum(dim=(1, 2, 3)) + 1e-8)[:, None, None, None]
    x = x[None]
    if up:
        # transposed conv = zero insertion, full padding and the flipped kernel (in/out swapped)
        c, h, w = x.shape[1:]
        spread = torch.zeros(1, c, 2 * h - 1, 2 * w - 1)
        spread[:, :, ::2, ::2] = x
        y = F.conv2d(F.pad(spread, [2, 2, 2, 2]), wm.flip([2, 3]))
        y = blur(y, kernel, pad=(1, 1))
    else:
        y = F.conv2d(x, wm, padding=wm.shape[-1] // 2)
    return y[0]


def blur(x: torch.Tensor, kernel: torch.Tensor, pad: tuple[int, int], up: int = 1) -> torch.Tensor:
    """upfirdn2d: zero-insert by `up`, pad, convolve (flipped kernel) each channel; x [1, C, H, W]."""
    if up > 1:
        c, h, w = x.shape[1:]
        spread = torch.zeros(1, c, h * up, w * up)
        spread[:, :, ::up, ::up] = x
        x = spread
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    c = x.shape[1]
    return F.conv2d(x, kernel.flip([0, 1])[None, None].repeat(c, 1, 1, 1), groups=c)


def _ws_for(sd_map_layers, z, num_ws, w_avg=None, psi=1.0, cutoff=None):
    w = mapping(z, sd_map_layers)
    ws = [w.clone() for _ in range(num_ws)]
    if psi != 1.0:
        n = num_ws if cutoff is None else cutoff
        for i in range(n):
            ws[i] = w_avg + psi * (ws[i] - w_avg)
    return ws


def nvidia_forward(sd, z: torch.Tensor, noise_mode: str = "const", psi: float = 1.0, cutoff=None,
                   ws_override=None) -> torch.Tensor:
    """Images [B, 3, R, R] from NVIDIA-layout keys."""
    layers = []
    while f"mapping.fc{len(layers)}.weight" in sd:
        layers.append((sd[f"mapping.fc{len(layers)}.weight"], sd[f"mapping.fc{len(layers)}.bias"]))
    resolutions = sorted({int(k.split(".")[1][1:]) for k in sd if k.startswith("synthesis.b")})
    num_ws = 2 * len(resolutions)
    images = []
    for n in range(z.shape[0] if ws_override is None else ws_override.shape[0]):
        ws = list(ws_override[n]) if ws_override is not None else \
            _ws_for(layers, z[n], num_ws, sd["mapping.w_avg"], psi, cutoff)
        w_dim = ws[0].shape[0]

        def layer(prefix, x, w, up):
            style = sd[f"{prefix}.affine.weight"] @ w / math.sqrt(w_dim) + sd[f"{prefix}.affine.bias"]
            y = modulated_conv(x, sd[f"{prefix}.weight"], style, True, up, sd[f"{prefix}.resample_filter"] * 4)
            if noise_mode == "const":
                y = y + sd[f"{prefix}.noise_const"][None] * sd[f"{prefix}.noise_strength"]
            return act(y + sd[f"{prefix}.bias"][:, None, None])

        def torgb(prefix, x, w):
            cin = sd[f"{prefix}.weight"].shape[1]
            style = (sd[f"{prefix}.affine.weight"] @ w / math.sqrt(w_dim) + sd[f"{prefix}.affine.bias"]) / math.sqrt(cin)
            return modulated_conv(x, sd[f"{prefix}.weight"], style, False, False, None) + sd[f"{prefix}.bias"][:, None, None]

        x = img = None
        index = 0
        for res in resolutions:
            b = f"synthesis.b{res}"
            if x is None:
                x = layer(f"{b}.conv1", sd[f"{b}.const"], ws[0], False)
                index = 1
            else:
                x = layer(f"{b}.conv0", x, ws[index], True)
                x = layer(f"{b}.conv1", x, ws[index + 1], False)
                index += 2
            y = torgb(f"{b}.torgb", x, ws[index])
            if img is not None:
                y = y + blur(img[None], sd[f"{b}.resample_filter"] * 4, pad=(2, 1), up=2)[0]
            img = y
        images.append(img)
    return torch.stack(images)


def rosinality_forward(sd, z: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
    """Images [B, 3, R, R] from rosinality-layout keys, with its conventions (fan-in scale on the conv
    weights, `noises.noise_i` as the constant noise, kernels read from the blur/upsample buffers)."""
    layers = []
    while f"style.{len(layers) + 1}.weight" in sd:
        i = len(layers) + 1
        layers.append((sd[f"style.{i}.weight"], sd[f"style.{i}.bias"]))
    pairs = len({k.split(".")[1] for k in sd if k.startswith("convs.")}) // 2
    num_ws = 2 * (pairs + 1)
    images = []
    for n in range(z.shape[0]):
        ws = _ws_for(layers, z[n], num_ws)
        w_dim = ws[0].shape[0]

        def styled(prefix, x, w, noise_index, up):
            weight = sd[f"{prefix}.conv.weight"][0]
            style = sd[f"{prefix}.conv.modulation.weight"] @ w / math.sqrt(w_dim) + sd[f"{prefix}.conv.modulation.bias"]
            fan_in = weight.shape[1] * weight.shape[2] * weight.shape[3]
            y = modulated_conv(x, weight / math.sqrt(fan_in), style, True, up, sd.get(f"{prefix}.conv.blur.kernel"))
            if noise_mode == "const":
                y = y + sd[f"{prefix}.noise.weight"] * sd[f"noises.noise_{noise_index}"][0]
            return act(y + sd[f"{prefix}.activate.bias"][:, None, None])

        def to_rgb(prefix, x, w):
            weight = sd[f"{prefix}.conv.weight"][0]
            style = sd[f"{prefix}.conv.modulation.weight"] @ w / math.sqrt(w_dim) + sd[f"{prefix}.conv.modulation.bias"]
            return modulated_conv(x, weight / math.sqrt(weight.shape[1]), style, False, False, None) + sd[f"{prefix}.bias"][0]

        x = styled("conv1", sd["input.input"][0], ws[0], 0, False)
        skip = to_rgb("to_rgb1", x, ws[1])
        for k in range(pairs):
            x = styled(f"convs.{2 * k}", x, ws[2 * k + 1], 2 * k + 1, True)
            x = styled(f"convs.{2 * k + 1}", x, ws[2 * k + 2], 2 * k + 2, False)
            up = blur(skip[None], sd[f"to_rgbs.{k}.upsample.kernel"], pad=(2, 1), up=2)[0]
            skip = to_rgb(f"to_rgbs.{k}", x, ws[2 * k + 3]) + up
        images.append(skip)
    return torch.stack(images)
