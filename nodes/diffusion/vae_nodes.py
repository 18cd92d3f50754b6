"""VAE nodes (ComfyUI names and inputs): pixels <-> latents, plain and tiled, and inpainting encode."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nodegraph import CONDITIONING, IMAGE, LATENT, MASK, VAE, Boolean, Input, Int, Output, node

VAE_BATCH = 4  # images per VAE call: bounds activation memory on big batches


def crop_to_multiple(pixels: torch.Tensor, multiple: int) -> torch.Tensor:
    """Centre-crop IMAGE [B,H,W,C] to multiples of the VAE's downscale (as ComfyUI does)."""
    h, w = (pixels.shape[1] // multiple) * multiple, (pixels.shape[2] // multiple) * multiple
    if (h, w) == tuple(pixels.shape[1:3]):
        return pixels
    if h == 0 or w == 0:
        raise ValueError(f"image {pixels.shape[2]}x{pixels.shape[1]} is smaller than the VAE's {multiple}-pixel cell")
    y0, x0 = (pixels.shape[1] % multiple) // 2, (pixels.shape[2] % multiple) // 2
    return pixels[:, y0:y0 + h, x0:x0 + w, :]


def _batched(fn, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([fn(x[i:i + VAE_BATCH]) for i in range(0, x.shape[0], VAE_BATCH)], dim=0)


@torch.no_grad()
def vae_encode(ctx, vae, pixels: torch.Tensor) -> torch.Tensor:
    with ctx.devices.use(vae) as model:
        pixels = crop_to_multiple(pixels, model.downscale)
        return _batched(model.encode, pixels).cpu()


@torch.no_grad()
def vae_decode(ctx, vae, latent: torch.Tensor) -> torch.Tensor:
    with ctx.devices.use(vae) as model:
        return _batched(model.decode, latent).cpu()


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """1-D blending weights of a tile: linear ramps over the overlap at edges shared with neighbours."""
    w = torch.ones(n)
    ramp = min(overlap, n)
    if ramp > 0:
        edge = (torch.arange(ramp, dtype=torch.float32) + 1) / (ramp + 1)
        if not at_start:
            w[:ramp] = torch.minimum(w[:ramp], edge)
        if not at_end:
            w[n - ramp:] = torch.minimum(w[n - ramp:], edge.flip(0))
    return w


def _starts(size: int, tile: int, stride: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return sorted(set(starts))


def tiled(fn, x: torch.Tensor, tile: int, overlap: int, scale: float, out_channels: int, ctx=None) -> torch.Tensor:
    """Apply fn (input tile [B,C,t,t] -> output [B,C',t*scale,t*scale]) tile by tile, blending overlaps."""
    b, _, h, w = x.shape
    tile = max(1, min(tile, max(h, w)))
    overlap = max(0, min(overlap, tile // 2))
    stride = max(1, tile - overlap)
    out_h, out_w = round(h * scale), round(w * scale)
    out = torch.zeros(b, out_channels, out_h, out_w)
    weight = torch.zeros(1, 1, out_h, out_w)
    ys, xs = _starts(h, tile, stride), _starts(w, tile, stride)
    total, done = len(ys) * len(xs), 0
    for y in ys:
        for x0 in xs:
            piece = fn(x[:, :, y:y + tile, x0:x0 + tile]).float().cpu()
            oy, ox = round(y * scale), round(x0 * scale)
            ph, pw = piece.shape[-2:]
            wy = _ramp(ph, round(overlap * scale), y == 0, y + tile >= h)
            wx = _ramp(pw, round(overlap * scale), x0 == 0, x0 + tile >= w)
            mask = (wy[:, None] * wx[None, :])[None, None]
            out[:, :, oy:oy + ph, ox:ox + pw] += piece * mask
            weight[:, :, oy:oy + ph, ox:ox + pw] += mask
            done += 1
            if ctx is not None:
                ctx.progress(done, total)
    return out / weight.clamp(min=1e-8)


@node(category="latent")
class VAEDecode:
    """Latents to images."""
    inputs = [Input("samples", LATENT), Input("vae", VAE)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, samples, vae):
        return vae_decode(ctx, vae, samples["samples"])


@node(category="latent")
class VAEEncode:
    """Images to latents (cropped to multiples of 8 pixels)."""
    inputs = [Input("pixels", IMAGE), Input("vae", VAE)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, pixels, vae):
        return ({"samples": vae_encode(ctx, vae, pixels)},)


@node(category="_for_testing")
class VAEDecodeTiled:
    """Decode in overlapping tiles (bounded memory for big images)."""
    inputs = [Input("samples", LATENT), Input("vae", VAE),
              Int("tile_size", 512, min=64, max=4096, step=32), Int("overlap", 64, min=0, max=4096, step=32),
              Int("temporal_size", 64, min=8, max=4096, step=4, optional=True),
              Int("temporal_overlap", 8, min=4, max=4096, step=4, optional=True)]
    outputs = [Output("IMAGE", IMAGE)]

    def run(self, ctx, samples, vae, tile_size, overlap, temporal_size=64, temporal_overlap=8):
        if tile_size < overlap * 4:
            overlap = tile_size // 4
        latent = samples["samples"]
        with ctx.devices.use(vae) as model:
            f = model.downscale

            def decode(t):
                with torch.no_grad():
                    return model.decode(t).movedim(-1, 1)

            images = tiled(decode, latent, tile_size // f, overlap // f, f, 3, ctx)
        return images.movedim(1, -1).clamp(0, 1)


@node(category="_for_testing")
class VAEEncodeTiled:
    """Encode in overlapping tiles (bounded memory for big images)."""
    inputs = [Input("pixels", IMAGE), Input("vae", VAE),
              Int("tile_size", 512, min=64, max=4096, step=64), Int("overlap", 64, min=0, max=4096, step=32),
              Int("temporal_size", 64, min=8, max=4096, step=4, optional=True),
              Int("temporal_overlap", 8, min=4, max=4096, step=4, optional=True)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, pixels, vae, tile_size, overlap, temporal_size=64, temporal_overlap=8):
        with ctx.devices.use(vae) as model:
            f = model.downscale
            pixels = crop_to_multiple(pixels, f)
            tile = max(f, tile_size // f * f)
            ov = min(overlap // f * f, tile // 2)

            def encode(t):
                with torch.no_grad():
                    return model.encode(t.movedim(1, -1))

            latent = tiled(encode, pixels.movedim(-1, 1), tile, ov, 1.0 / f, model.latent_channels, ctx)
        return ({"samples": latent},)


def crop_with_mask(pixels: torch.Tensor, mask: torch.Tensor, multiple: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mask resized (bilinear) to the image, then both centre-cropped to multiples of the VAE's cell:
    pixels [B,H,W,3] (a copy) and mask [B,1,H,W], as ComfyUI's inpainting encoders do."""
    mask = F.interpolate(mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float(),
                         size=(pixels.shape[1], pixels.shape[2]), mode="bilinear")
    h, w = (pixels.shape[1] // multiple) * multiple, (pixels.shape[2] // multiple) * multiple
    if h == 0 or w == 0:
        raise ValueError(f"image {pixels.shape[2]}x{pixels.shape[1]} is smaller than the VAE's {multiple}-pixel cell")
    y0, x0 = (pixels.shape[1] % multiple) // 2, (pixels.shape[2] % multiple) // 2
    return pixels[:, y0:y0 + h, x0:x0 + w, :3].clone(), mask[:, :, y0:y0 + h, x0:x0 + w]


def grey_out(pixels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pixels where the rounded mask is 1 become mid grey (0.5): the model sees nothing of them."""
    keep = (1.0 - mask.round()).squeeze(1)[..., None]
    return (pixels - 0.5) * keep + 0.5


@node(category="latent/inpaint")
class VAEEncodeForInpaint:
    """Encode with the masked area greyed out; the latent carries the (grown) mask as its noise mask."""
    inputs = [Input("pixels", IMAGE), Input("vae", VAE), Input("mask", MASK),
              Int("grow_mask_by", 6, min=0, max=64, step=1)]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, pixels, vae, mask, grow_mask_by):
        pixels, mask = crop_with_mask(pixels, mask, vae_downscale(ctx, vae))
        if grow_mask_by == 0:
            grown = mask
        else:  # grow a few pixels so the seam falls inside the repainted area in latent space
            kernel = torch.ones(1, 1, grow_mask_by, grow_mask_by)
            padding = math.ceil((grow_mask_by - 1) / 2)
            grown = torch.clamp(F.conv2d(mask.round(), kernel, padding=padding), 0, 1)
        latent = vae_encode(ctx, vae, grey_out(pixels, mask))
        h, w = pixels.shape[1:3]
        return ({"samples": latent, "noise_mask": grown[:, :, :h, :w].round()},)


@node(category="conditioning/inpaint")
class InpaintModelConditioning:
    """For inpainting models: the greyed-out image's latent and the mask go into the conditioning (the
    U-Net's extra input channels); the latent is the whole image's, with the mask as its noise mask
    unless noise_mask is off (then the sampler may change everything, guided by the model)."""
    inputs = [Input("positive", CONDITIONING), Input("negative", CONDITIONING), Input("vae", VAE),
              Input("pixels", IMAGE), Input("mask", MASK), Boolean("noise_mask", True)]
    outputs = [Output("positive", CONDITIONING), Output("negative", CONDITIONING), Output("latent", LATENT)]

    def run(self, ctx, positive, negative, vae, pixels, mask, noise_mask):
        cropped, mask = crop_with_mask(pixels, mask, vae_downscale(ctx, vae))
        concat_latent = vae_encode(ctx, vae, grey_out(cropped, mask))
        latent = {"samples": vae_encode(ctx, vae, pixels)}
        if noise_mask:
            latent["noise_mask"] = mask
        extras = {"concat_latent_image": concat_latent, "concat_mask": mask}
        conditioned = [[[item[0], {**(item[1] or {}), **extras}, *item[2:]] for item in c] for c in (positive, negative)]
        return conditioned[0], conditioned[1], latent


def vae_downscale(ctx, vae) -> int:
    with ctx.devices.use(vae) as model:
        return model.downscale
