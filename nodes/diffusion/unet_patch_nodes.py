"""ComfyUI's U-Net patches: FreeU and FreeU_V2 (comfy_extras/nodes_freelunch.py, Si et al. 2024),
PerturbedAttentionGuidance (nodes_pag.py, Ahn et al. 2024) and SelfAttentionGuidance (nodes_sag.py, Hong et al.
2023).

FreeU scales the backbone features and low-pass-attenuates the skip features where the up blocks join them;
PAG and SAG run the model once more per step with the middle block's self-attention replaced (PAG: by the
identity map) or degraded input (SAG: blurred where the uncond's attention concentrates) and guide away
from that prediction. All are model options on a new handle (model_options.py); the hooks into our diffusers
U-Net are unet_patches.py's.
"""
from __future__ import annotations

import logging
import math
import threading

import torch
import torch.nn.functional as F

from nodegraph import MODEL, Float, Input, Output, node

from .model_options import add_post_cfg_function, add_unet_patch, patched, set_attention_replace
from .sampling import calc_cond_batch
from .unet_patches import attention

__all__ = ["FreeU", "FreeU_V2", "PerturbedAttentionGuidance", "SelfAttentionGuidance"]

log = logging.getLogger(__name__)


def fourier_filter(x: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
    """Multiply the centred (lowest) 2·threshold square of x's 2-D spectrum by scale."""
    if scale == 1.0:  # the filter is the identity; skipping it keeps the features bit for bit
        return x
    freq = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    b, c, h, w = freq.shape
    mask = torch.ones((b, c, h, w), device=x.device)
    crow, ccol = h // 2, w // 2
    mask[..., crow - threshold:crow + threshold, ccol - threshold:ccol + threshold] = scale
    freq = torch.fft.ifftshift(freq * mask, dim=(-2, -1))
    return torch.fft.ifftn(freq, dim=(-2, -1)).real.to(x.dtype)


def _model_channels(model) -> int:
    config = getattr(model.module, "config", None) or {}
    channels = config.get("block_out_channels") or model.module.unet.config.block_out_channels
    return int(channels[0])


def freeu_patch(model_channels: int, b1: float, b2: float, s1: float, s2: float, v2: bool):
    """The output-block patch: at backbone width 4x / 2x model_channels, scale the first half of the backbone
    channels by b (v2: by 1 + (b - 1) times the per-sample min-max-normalised channel mean) and filter the skip
    features' lowest frequencies by s."""
    scales = {model_channels * 4: (b1, s1), model_channels * 2: (b2, s2)}
    cpu_only: set = set()  # devices whose torch.fft failed once

    def patch(h: torch.Tensor, hsp: torch.Tensor, transformer_options: dict):
        scale = scales.get(int(h.shape[1]))
        if scale is None:
            return h, hsp
        half = h.shape[1] // 2
        if v2:
            mean = h.mean(1).unsqueeze(1)
            flat = mean.view(mean.shape[0], -1)
            low = flat.min(dim=-1, keepdim=True)[0][..., None, None]
            high = flat.max(dim=-1, keepdim=True)[0][..., None, None]
            factor = (scale[0] - 1) * ((mean - low) / (high - low)) + 1
        else:
            factor = scale[0]
        h = torch.cat([h[:, :half] * factor, h[:, half:]], dim=1)
        if hsp.device not in cpu_only:
            try:
                return h, fourier_filter(hsp, 1, scale[1])
            except RuntimeError:
                log.warning("torch.fft fails on %s; FreeU filters on the CPU there", hsp.device)
                cpu_only.add(hsp.device)
        return h, fourier_filter(hsp.cpu(), 1, scale[1]).to(hsp.device)

    return patch


def _freeu_inputs(b1: float, b2: float) -> list[Input]:
    return [Input("model", MODEL), Float("b1", b1, min=0.0, max=10.0, step=0.01),
            Float("b2", b2, min=0.0, max=10.0, step=0.01), Float("s1", 0.9, min=0.0, max=10.0, step=0.01),
            Float("s2", 0.2, min=0.0, max=10.0, step=0.01)]


@node(category="model_patches/unet")
class FreeU:
    """FreeU: strengthen the U-Net's backbone features and damp its skip connections' low frequencies."""
    inputs = _freeu_inputs(1.1, 1.2)
    outputs = [Output("MODEL", MODEL)]

    def run(self, ctx, model, b1, b2, s1, s2):
        patch = freeu_patch(_model_channels(model), b1, b2, s1, s2, v2=False)
        return (patched(model, lambda o: add_unet_patch(o, "output_block_patch", patch)),)


@node(category="model_patches/unet")
class FreeU_V2:
    """FreeU v2: the backbone scaling follows each position's mean feature strength."""
    inputs = _freeu_inputs(1.3, 1.4)
    outputs = [Output("MODEL", MODEL)]

    def run(self, ctx, model, b1, b2, s1, s2):
        patch = freeu_patch(_model_channels(model), b1, b2, s1, s2, v2=True)
        return (patched(model, lambda o: add_unet_patch(o, "output_block_patch", patch)),)


def _perturbed_attention(q, k, v, extra_options, mask=None):
    return v  # every token attends to itself only


@node(category="model_patches/unet")
class PerturbedAttentionGuidance:
    """Guide away from the prediction the model makes with the middle block's self-attention made the identity."""
    inputs = [Input("model", MODEL), Float("scale", 3.0, min=0.0, max=100.0, step=0.01)]
    outputs = [Output("MODEL", MODEL)]

    def run(self, ctx, model, scale):
        def post_cfg_function(args):
            if scale == 0:
                return args["denoised"]
            options = set_attention_replace(args["model_options"], _perturbed_attention, "attn1", "middle", 0)
            (pag,) = calc_cond_batch(args["model"], [args["cond"]], args["input"], args["sigma"], options)
            return args["denoised"] + (args["cond_denoised"] - pag) * scale
        return (patched(model, lambda o: add_post_cfg_function(o, post_cfg_function)),)


# --- Self-attention guidance -------------------------------------------------------------------------------

def attention_with_scores(q, k, v, heads: int, attn_precision=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain attention that also returns the softmax scores [B * heads, Tq, Tk] (ComfyUI's
    attention_basic_with_sim)."""
    b, _, inner = q.shape
    d = inner // heads
    q, k, v = (t.reshape(b, -1, heads, d).permute(0, 2, 1, 3).reshape(b * heads, -1, d) for t in (q, k, v))
    if attn_precision == torch.float32:
        sim = torch.einsum("bid,bjd->bij", q.float(), k.float()) * d ** -0.5
    else:
        sim = torch.einsum("bid,bjd->bij", q, k) * d ** -0.5
    sim = sim.softmax(dim=-1)
    out = torch.einsum("bij,bjd->bid", sim.to(v.dtype), v)
    return out.reshape(b, heads, -1, d).permute(0, 2, 1, 3).reshape(b, -1, heads * d), sim


def gaussian_blur_2d(img: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, steps=kernel_size)
    pdf = torch.exp(-0.5 * (x / sigma).pow(2))
    kernel = (pdf / pdf.sum()).to(device=img.device, dtype=img.dtype)
    kernel2d = torch.mm(kernel[:, None], kernel[None, :]).expand(img.shape[-3], 1, kernel_size, kernel_size)
    pad = kernel_size // 2
    return F.conv2d(F.pad(img, [pad, pad, pad, pad], mode="reflect"), kernel2d, groups=img.shape[-3])


def create_blur_map(x0: torch.Tensor, attn: torch.Tensor, sigma: float = 3.0, threshold: float = 1.0) -> torch.Tensor:
    """x0 blurred where the attention map's mean received attention exceeds threshold (SAG's mask), reshaped
    from tokens to the attention layer's grid (aspect from x0) and upsampled (nearest) to x0's size."""
    _, hw1, hw2 = attn.shape
    b, _, lh, lw = x0.shape
    attn = attn.reshape(b, -1, hw1, hw2)
    mask = attn.mean(1, keepdim=False).sum(1, keepdim=False) > threshold
    total = mask.shape[-1]
    x = round(math.sqrt((lh / lw) * total))
    rows = None
    for i in range(0, math.floor(math.sqrt(total) / 2)):
        for j in (x + i, max(1, x - i)):
            if total % j == 0:
                rows = j
                break
        if rows is not None:
            break
    if rows is None:
        raise ValueError(f"SelfAttentionGuidance: no grid of {total} attention tokens fits a {lh}x{lw} latent")
    mask = mask.reshape(b, rows, total // rows).unsqueeze(1).type(attn.dtype)
    mask = F.interpolate(mask, (lh, lw))
    blurred = gaussian_blur_2d(x0, kernel_size=9, sigma=sigma)
    return blurred * mask + x0 * (1 - mask)


@node(category="_for_testing", display_name="Self-Attention Guidance")
class SelfAttentionGuidance:
    """Guide away from the prediction for the uncond x0 blurred where the middle block's self-attention
    concentrates (the uncond's attention map is recorded during the normal step)."""
    inputs = [Input("model", MODEL), Float("scale", 0.5, min=-2.0, max=5.0, step=0.01),
              Float("blur_sigma", 2.0, min=0.0, max=10.0, step=0.1)]
    outputs = [Output("MODEL", MODEL)]

    def run(self, ctx, model, scale, blur_sigma):
        if blur_sigma <= 0:
            raise ValueError(f"SelfAttentionGuidance: blur_sigma must be above 0 (got {blur_sigma}): a Gaussian "
                             "of width 0 has no kernel")
        recorded = threading.local()  # the uncond's attention scores of the step running in this thread

        def attn_and_record(q, k, v, extra_options):
            heads, cond_or_uncond = extra_options["n_heads"], extra_options["cond_or_uncond"]
            if 1 not in cond_or_uncond:
                return attention(q, k, v, heads)
            b = q.shape[0] // len(cond_or_uncond)
            out, sim = attention_with_scores(q, k, v, heads, extra_options["attn_precision"])
            n = heads * b
            index = cond_or_uncond.index(1)
            recorded.scores = sim[n * index:n * (index + 1)]
            return out

        def post_cfg_function(args):
            result, x, uncond_pred = args["denoised"], args["input"], args["uncond_denoised"]
            if min(result.shape[2:]) <= 4:  # too small to pad for the blur
                return result
            if args["uncond"] is None or getattr(recorded, "scores", None) is None:
                raise ValueError("SelfAttentionGuidance needs an uncond (negative) prediction each step: use it "
                                 "with a sampler or guider that has a negative conditioning")
            degraded = create_blur_map(uncond_pred, recorded.scores, blur_sigma, 1.0)
            recorded.scores = None
            (sag,) = calc_cond_batch(args["model"], [args["uncond"]], degraded + x - uncond_pred, args["sigma"],
                                     args["model_options"])
            return result + (degraded - sag) * scale

        def change(options):
            add_post_cfg_function(options, post_cfg_function, disable_cfg1_optimization=True)
            options.update(set_attention_replace(options, attn_and_record, "attn1", "middle", 0, 0))
        return (patched(model, change),)
