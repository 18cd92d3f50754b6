"""What MODEL, CLIP and VAE handles carry: small nn.Modules around the diffusers/transformers parts.

The device manager (nodegraph.devices) moves these modules and applies weight patches to them,
so patch keys are their parameter names: "unet.<diffusers U-Net key>" for a DiffusionModel,
"encoders.<i>.<transformers key>" for a ClipModel, "vae.<diffusers key>" for a VAEModel.

    with ctx.devices.use(model_handle) as model:       # a DiffusionModel on the compute device
        out = model.apply(x, timestep, context, extras)  # raw eps or v prediction

Schedules, latent formats and other facts are plain attributes (never buffers), so moving the
module to bf16 does not round them.
"""
from __future__ import annotations

import functools

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from . import unet_patches
from .vision.unclip import NoiseAugmentor, unclip_adm

# latent -> RGB preview projections (ComfyUI's latent_formats: SD15 and SDXL)
SD15_RGB_FACTORS = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350),
                    (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177))
SDXL_RGB_FACTORS = ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068),
                    (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188))
SDXL_RGB_BIAS = (0.1084, -0.0175, -0.0011)
# an all-zero (black) image in SD latent space, model-scaled: the blank masked image for inpainting U-Nets
SD_BLANK_INPAINT_LATENT = (0.8223, -0.6876, 0.6364, 0.1380)


def _constant(values: Sequence, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A small constant tensor built once per device: a fresh torch.tensor(..., device="cuda") in every
    preview or process_in is a host-to-device copy that waits for the GPU."""
    frozen = tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in values)
    return _cached_constant(frozen, torch.device(device), dtype)


@functools.lru_cache(maxsize=64)
def _cached_constant(values: tuple, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(values, device=device, dtype=dtype)


@dataclass(frozen=True)
class LatentFormat:
    """How the VAE's latents relate to the diffusion model's space and to pixels.

    LATENT values in the graph are raw VAE latents (as in ComfyUI); the sampler works on
    `process_in(latent)` and returns `process_out(x)`.
    """

    channels: int = 4
    downscale: int = 8  # pixels per latent cell
    scale_factor: float = 0.18215
    shift_factor: float = 0.0
    rgb_factors: tuple[tuple[float, ...], ...] | None = SD15_RGB_FACTORS  # [channels][3]
    rgb_bias: tuple[float, float, float] | None = None
    # per-channel statistics some VAEs normalise by (Playground v2.5) instead of one shift
    latents_mean: tuple[float, ...] | None = None
    latents_std: tuple[float, ...] | None = None

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = _constant(self.latents_mean, like.device, like.dtype).view(1, -1, 1, 1)
        std = _constant(self.latents_std, like.device, like.dtype).view(1, -1, 1, 1)
        return mean, std

    def process_in(self, latent: torch.Tensor) -> torch.Tensor:
        if self.latents_mean is not None:
            mean, std = self._stats(latent)
            return (latent - mean) * self.scale_factor / std
        return (latent - self.shift_factor) * self.scale_factor

    def process_out(self, latent: torch.Tensor) -> torch.Tensor:
        if self.latents_mean is not None:
            mean, std = self._stats(latent)
            return latent * std / self.scale_factor + mean
        return latent / self.scale_factor + self.shift_factor

    # ComfyUI's latent_formats names, for ComfyUI packs
    @property
    def latent_channels(self) -> int:
        return self.channels

    @property
    def latent_dimensions(self) -> int:
        return 2

    @property
    def latent_rgb_factors(self):
        return [list(row) for row in self.rgb_factors] if self.rgb_factors is not None else None

    @property
    def latent_rgb_factors_bias(self):
        return list(self.rgb_bias) if self.rgb_bias is not None else None

    def to_rgb(self, x: torch.Tensor) -> torch.Tensor:
        """Cheap preview of model-space latents [B,C,h,w] -> images [B,h,w,3] in 0..1 (no VAE)."""
        x = x.float()
        if self.rgb_factors is not None and len(self.rgb_factors) == x.shape[1]:
            factors = _constant(self.rgb_factors, x.device, torch.float32)
            rgb = torch.einsum("bchw,cr->bhwr", x, factors)
            if self.rgb_bias is not None:
                rgb = rgb + _constant(self.rgb_bias, x.device, torch.float32)
        else:  # unknown projection: the first three channels, normalised
            rgb = x[:, :3].movedim(1, -1)
            if rgb.shape[-1] < 3:
                rgb = rgb.expand(*rgb.shape[:-1], 3) if rgb.shape[-1] == 1 else F.pad(rgb, (0, 3 - rgb.shape[-1]))
            rgb = rgb / rgb.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-6)
        return ((rgb + 1.0) / 2.0).clamp(0.0, 1.0)


# ComfyUI's latent_formats.SDXL_Playground_2_5 (ModelSamplingContinuousEDM's "edm_playground_v2.5")
PLAYGROUND_2_5_LATENT_FORMAT = LatentFormat(
    scale_factor=0.5, latents_mean=(-1.6574, 1.886, -1.383, 2.5155), latents_std=(8.4927, 5.9022, 6.5498, 5.2299),
    rgb_factors=((0.3920, 0.4054, 0.4549), (-0.2634, -0.0196, 0.0653), (0.0568, 0.1687, -0.0755),
                 (-0.3112, -0.2359, -0.2076)))


def latent_format_for(family: str, channels: int = 4, downscale: int = 8, scale_factor: float | None = None,
                      hints: dict | None = None) -> LatentFormat:
    hints = hints or {}
    if family in ("sdxl", "sdxl_refiner"):
        factors, bias, default_scale = SDXL_RGB_FACTORS, SDXL_RGB_BIAS, 0.13025
    else:
        factors, bias, default_scale = SD15_RGB_FACTORS, None, 0.18215
    if hints.get("latent_rgb_factors"):
        factors = tuple(tuple(float(v) for v in row) for row in hints["latent_rgb_factors"])
        bias = tuple(hints["latent_rgb_bias"]) if hints.get("latent_rgb_bias") else None
    if len(factors) != channels:
        factors, bias = None, None
    return LatentFormat(channels=channels, downscale=downscale,
                        scale_factor=float(scale_factor if scale_factor is not None else default_scale),
                        rgb_factors=factors, rgb_bias=bias)


def scaled_linear_alphas_cumprod(steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> torch.Tensor:
    """SD's training schedule: betas linear in sqrt space; float64 like ComfyUI/ldm."""
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, steps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def _resize(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return x if x.shape[-2:] == (h, w) else F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


def _to_batch(x: torch.Tensor, n: int) -> torch.Tensor:
    if x.shape[0] == n:
        return x
    reps = math.ceil(n / x.shape[0])
    return x.repeat(reps, *([1] * (x.ndim - 1)))[:n]


class DiffusionModel(torch.nn.Module):
    """The MODEL: a diffusers U-Net plus what a sampler needs to drive it.

    Attributes:
      prediction_type  "eps" or "v" (what `apply` returns)
      alphas_cumprod   [1000] float64 training schedule (scaled_linear 0.00085..0.012)
      latent_format    LatentFormat (channels, downscale, scale factor, preview projection)
      family           "sd1" | "sd2" | "sdxl";  inpaint: 9-channel U-Net;  adm: SDXL size/crop conditioning
      ip2p             8-channel InstructPix2Pix U-Net (latent + the source image's latent)
      unclip           SD2.1 unCLIP: a class-embedding input `y` of adm_channels (image embedding + noise level)
    """

    def __init__(self, unet: torch.nn.Module, family: str, prediction_type: str = "eps",
                 latent_format: LatentFormat | None = None, alphas_cumprod: torch.Tensor | None = None,
                 config: dict | None = None) -> None:
        super().__init__()
        self.unet = unet
        self.family = family
        self.prediction_type = prediction_type
        cfg = dict(config or getattr(unet, "config", {}) or {})
        self.config = cfg
        self.in_channels = int(cfg.get("in_channels", 4))
        self.inpaint = self.in_channels == 9
        self.adm = cfg.get("addition_embed_type") == "text_time"
        self.refiner = family == "sdxl_refiner"  # ADM ids: size, crop and aesthetic score
        self.ip2p = self.in_channels == 8
        self.unclip = cfg.get("class_embed_type") == "projection"
        self.adm_channels = int(cfg.get("projection_class_embeddings_input_dim") or 0)
        # a plain attribute (no buffers): moving the module to bf16 must not round its tables
        self.noise_augmentor = NoiseAugmentor(self.adm_channels // 2) if self.unclip else None
        self.latent_format = latent_format or latent_format_for(family, int(cfg.get("out_channels", 4)))
        self.alphas_cumprod = (alphas_cumprod if alphas_cumprod is not None else scaled_linear_alphas_cumprod()).double()

    # --- schedule ------------------------------------------------------------------------------
    @property
    def sigmas(self) -> torch.Tensor:
        """k-diffusion sigmas of the 1000 training timesteps, ascending (float32)."""
        return ((1 - self.alphas_cumprod) / self.alphas_cumprod).sqrt().float()

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    # --- conditioning helpers -----------------------------------------------------------------
    def sdxl_time_ids(self, extras: dict, batch: int, device: torch.device) -> torch.Tensor:
        """SDXL size/crop ids (height, width, crop_h, crop_w, target_height, target_width) from the
        conditioning's extras; ComfyUI's defaults (768, 768, 0, 0, width, height). The refiner's
        (model_base.SDXLRefiner): (height, width, crop_h, crop_w, aesthetic_score), the score 6 by
        default, 2.5 for the negative prompt ("prompt_type")."""
        width, height = extras.get("width", 768), extras.get("height", 768)
        ids = [height, width, extras.get("crop_h", 0), extras.get("crop_w", 0)]
        if self.refiner:
            ids.append(extras.get("aesthetic_score", 2.5 if extras.get("prompt_type") == "negative" else 6.0))
        else:
            ids += [extras.get("target_height", height), extras.get("target_width", width)]
        return torch.tensor([ids], dtype=torch.float32, device=device).expand(batch, len(ids))

    def blank_inpaint_latent(self, like: torch.Tensor) -> torch.Tensor:
        values = torch.tensor(SD_BLANK_INPAINT_LATENT[: like.shape[1]], device=like.device, dtype=like.dtype)
        return torch.ones_like(like) * values.view(1, -1, 1, 1)

    def inpaint_concat(self, noise: torch.Tensor, latent_image: torch.Tensor | None = None,
                       denoise_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The 5 extra input channels of an inpainting U-Net, as ComfyUI builds them: the mask
        (1 = repaint) and the masked image's latent (MODEL space, i.e. after process_in).
        Without a mask: all ones and a blank (black) image."""
        b, _, h, w = noise.shape
        if denoise_mask is None or latent_image is None:
            return torch.cat([torch.ones_like(noise[:, :1]), self.blank_inpaint_latent(noise[:, :4])], dim=1)
        mask = denoise_mask
        if mask.ndim == 4:
            mask = mask[:, :1]
        mask = mask.reshape(-1, 1, *mask.shape[-2:]).to(noise)
        mask = _to_batch(_resize(mask, h, w).round(), b)
        image = _to_batch(_resize(latent_image.to(noise), h, w), b)
        return torch.cat([mask, image], dim=1)

    def unclip_y(self, unclip_conditioning: list | None, device: torch.device, seed: int | None) -> torch.Tensor:
        """unCLIP's `y` for an entry's "unclip_conditioning" (zeros without one), as SD21UNCLIP.encode_adm."""
        if not unclip_conditioning:
            return torch.zeros(1, self.adm_channels, device=device)
        return unclip_adm(unclip_conditioning, self.noise_augmentor, device, seed)

    def ip2p_concat(self, noise: torch.Tensor, image: torch.Tensor | None) -> torch.Tensor:
        """InstructPix2Pix's 4 extra channels: the source image's raw latent (zeros without one), resized
        and repeated to the noise (ComfyUI's IP2P.concat_cond for SD1.x / diffusers-style SDXL ip2p)."""
        if image is None:
            return torch.zeros_like(noise)
        image = _resize(image.to(noise), noise.shape[2], noise.shape[3])
        return _to_batch(image, noise.shape[0])

    # --- the call the sampler makes -----------------------------------------------------------
    def apply(self, x: torch.Tensor, timestep: torch.Tensor | float, context: torch.Tensor,
              extras: dict[str, Any] | None = None) -> torch.Tensor:
        """Raw U-Net prediction (eps or v, see prediction_type) for model-space input x [B,C,h,w].

        timestep: [B] or scalar, in 0..999 (may be fractional). context: [B, T, D] text states.
        extras (all optional):
          "pooled_output" [B, P]   SDXL pooled text embedding (zeros if absent)
          "width"/"height"/"crop_w"/"crop_h"/"target_width"/"target_height"  SDXL size ids
          "time_ids" [B, 6]        SDXL ids given directly
          "concat" [B, 5, h, w]    inpainting channels (see inpaint_concat); default: no mask
                                   (InstructPix2Pix U-Nets: [B, 4, h, w], see ip2p_concat; default zeros)
          "y" [B, adm_channels]    unCLIP's class-embedding input (see unclip_y; default zeros)
          "down_block_additional_residuals" / "mid_block_additional_residual"  ControlNet residuals
          "down_intrablock_additional_residuals"  T2I-Adapter features (added inside the encoder)
          "transformer_options"    ComfyUI's per-call U-Net patches (FreeU's output-block patch, attention
                                   replacements of PAG / SAG ...) and cond_or_uncond; see unet_patches.py
        The input is cast to the U-Net's dtype and the output back to x's dtype.
        """
        extras = extras or {}
        b = x.shape[0]
        dtype, device = self.dtype, x.device
        x_in = x
        if self.inpaint:
            concat = extras.get("concat")
            if concat is None:
                concat = self.inpaint_concat(x)
            x_in = torch.cat([x, _to_batch(concat.to(x), b)], dim=1)
        elif self.ip2p:
            concat = extras.get("concat")
            x_in = torch.cat([x, torch.zeros_like(x) if concat is None else _to_batch(concat.to(x), b)], dim=1)
        t = torch.as_tensor(timestep, device=device, dtype=torch.float32)
        t = t.expand(b) if t.ndim == 0 else _to_batch(t.reshape(-1), b)
        context = _to_batch(context.to(device), b)
        kwargs: dict[str, Any] = {}
        if self.adm:
            pooled = extras.get("pooled_output")
            width = self.config.get("projection_class_embeddings_input_dim", 0) - \
                (5 if self.refiner else 6) * self.config.get("addition_time_embed_dim", 256)
            pooled = torch.zeros(b, width, device=device) if pooled is None else _to_batch(pooled.to(device), b)
            time_ids = extras.get("time_ids")
            time_ids = self.sdxl_time_ids(extras, b, device) if time_ids is None else _to_batch(time_ids.to(device), b)
            kwargs["added_cond_kwargs"] = {"text_embeds": pooled.to(dtype), "time_ids": time_ids.to(dtype)}
        if self.unclip:
            y = extras.get("y")
            y = torch.zeros(b, self.adm_channels, device=device) if y is None else _to_batch(y.to(device), b)
            kwargs["class_labels"] = y.to(dtype)
        for key in ("down_block_additional_residuals", "mid_block_additional_residual",
                    "down_intrablock_additional_residuals"):
            if extras.get(key) is not None:
                value = extras[key]
                kwargs[key] = [r.to(dtype) for r in value] if isinstance(value, (list, tuple)) else value.to(dtype)
        options = extras.get("transformer_options")
        with unet_patches.active(self.unet, options) if unet_patches.has_patches(options) else nullcontext():
            out = self.unet(x_in.to(dtype), t, encoder_hidden_states=context.to(dtype), return_dict=False,
                            **kwargs)[0]
        return out.to(x.dtype)

    def forward(self, x, timestep, context, extras=None):  # so the module is callable like the U-Net
        return self.apply(x, timestep, context, extras)


class VAEModel(torch.nn.Module):
    """The VAE: IMAGE [B,H,W,C] 0..1 <-> raw latents [B,c,H/8,W/8] (not scaled, as ComfyUI's LATENT)."""

    def __init__(self, vae: torch.nn.Module, latent_format: LatentFormat | None = None) -> None:
        super().__init__()
        self.vae = vae
        cfg = vae.config
        downscale = 2 ** (len(cfg.block_out_channels) - 1)
        self.latent_format = latent_format or latent_format_for("sd1", cfg.latent_channels, downscale, cfg.scaling_factor)

    @property
    def downscale(self) -> int:
        return self.latent_format.downscale

    @property
    def latent_channels(self) -> int:
        return self.latent_format.channels

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """IMAGE [B,H,W,C] (H, W multiples of the downscale) -> latent mean [B,c,h,w] float32."""
        x = pixels[..., :3].movedim(-1, 1).to(self.device, self.dtype) * 2.0 - 1.0
        dist = self.vae.encode(x).latent_dist
        return dist.mean.float()

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Raw latent [B,c,h,w] -> IMAGE [B,H,W,3] float32 in 0..1."""
        out = self.vae.decode(latent.to(self.device, self.dtype)).sample
        return ((out.float() + 1.0) / 2.0).clamp(0.0, 1.0).movedim(1, -1)


@dataclass(frozen=True)
class EncoderSpec:
    """How one text encoder of a CLIP is used (ComfyUI's per-model settings)."""

    name: str  # "l", "h", "g"
    pad_token: int
    default_layer: int | None  # None: final output; -2: penultimate hidden state
    layer_norm_hidden: bool  # apply the final LayerNorm to a hidden-layer output
    embedding_key: str
    project_pooled: bool = True


def encoder_specs(family: str) -> list[EncoderSpec]:
    if family == "sd2":
        return [EncoderSpec("h", 0, -2, True, "clip_h")]
    if family == "sdxl":
        return [EncoderSpec("l", 49407, -2, False, "clip_l"), EncoderSpec("g", 0, -2, False, "clip_g")]
    if family == "sdxl_refiner":  # ComfyUI's SDXLRefinerClipModel: bigG alone
        return [EncoderSpec("g", 0, -2, False, "clip_g")]
    return [EncoderSpec("l", 49407, None, True, "clip_l")]


class ClipModel(torch.nn.Module):
    """The CLIP: one (SD1, SD2) or two (SDXL) text encoders and how to turn a prompt into conditioning."""

    def __init__(self, encoders: Sequence[torch.nn.Module], family: str,
                 specs: Sequence[EncoderSpec] | None = None) -> None:
        super().__init__()
        self.encoders = torch.nn.ModuleList(encoders)
        self.family = family
        self.specs = list(specs or encoder_specs(family))
        if specs is None and family == "sd2" and encoders[0].config.num_hidden_layers == 23:
            # diffusers' SD2 text encoder already dropped the last layer: its final output is the penultimate
            self.specs = [EncoderSpec("h", 0, None, True, "clip_h")]
        if len(self.specs) != len(self.encoders):
            raise ValueError(f"{family} CLIP needs {len(self.specs)} text encoders, got {len(self.encoders)}")

    def encode(self, text: str, layer_idx: int | None = None, embedding_dirs: Sequence = (),
               square_brackets: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt -> (cond [1, 77*chunks, D], pooled [1, P]) on the CPU, float32.

        layer_idx: CLIPSetLastLayer's value (None = the model's default: SD1 last, SD2/SDXL -2).
        """
        return self.encode_tokens(self.tokenize(text, embedding_dirs, square_brackets), layer_idx)

    def tokenize(self, text: str, embedding_dirs: Sequence = (),
                 square_brackets: bool | None = None) -> dict[str, list]:
        """Prompt -> {encoder name ("l", "g", "h"): weighted chunks}, as ComfyUI's clip.tokenize, so a
        node may give each encoder its own text (CLIPTextEncodeSDXL)."""
        from .clip import tokenize_with_weights
        return {spec.name: tokenize_with_weights(text, self._options(encoder, spec), embedding_dirs,
                                                 square_brackets=square_brackets)
                for encoder, spec in zip(self.encoders, self.specs)}

    def encode_tokens(self, tokens: dict[str, list], layer_idx: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """tokenize()'s chunks -> (cond, pooled), as encode."""
        from .clip import encode_weighted
        conds, pooled = [], None
        for encoder, spec in zip(self.encoders, self.specs):
            if spec.name not in tokens:
                raise ValueError(f"no tokens for this CLIP's text encoder {spec.name!r} (got {sorted(tokens)})")
            layer = spec.default_layer if layer_idx is None else layer_idx
            cond, pool = encode_weighted(encoder, tokens[spec.name], self._options(encoder, spec), layer,
                                         spec.layer_norm_hidden, spec.project_pooled)
            conds.append(cond.cpu())
            pooled = pool.cpu()  # the last encoder's pooled output (SDXL: bigG), as ComfyUI
        cut = min(c.shape[1] for c in conds)
        return torch.cat([c[:, :cut] for c in conds], dim=-1), pooled

    @staticmethod
    def _options(encoder: torch.nn.Module, spec: EncoderSpec):
        from .checkpoint.modules import clip_core
        from .clip import TokenizerOptions
        core = clip_core(encoder)
        return TokenizerOptions(pad_token=spec.pad_token, embedding_width=core.config.hidden_size,
                                embedding_key=spec.embedding_key, length=core.config.max_position_embeddings)


@torch.no_grad()
def fit_latent_rgb(vae: "VAEModel", pixels: torch.Tensor) -> tuple[list[list[float]], list[float]]:
    """Least-squares latent -> RGB projection for previews (LatentFormat.rgb_factors / rgb_bias):
    model-space latents of `pixels` [B,H,W,3] against the images averaged over each latent cell, in -1..1.
    Store the result with save_single_file(..., latent_rgb_factors=..., latent_rgb_bias=...)."""
    latents = vae.latent_format.process_in(vae.encode(pixels)).float().cpu()
    f = vae.downscale
    target = F.avg_pool2d(pixels[..., :3].movedim(-1, 1).float().cpu(), f) * 2 - 1
    x = latents.movedim(1, -1).reshape(-1, latents.shape[1])
    y = target.movedim(1, -1).reshape(-1, 3)
    design = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1)
    solution = torch.linalg.lstsq(design, y).solution  # [C+1, 3]
    return solution[:-1].tolist(), solution[-1].tolist()


# U-Net compute dtypes, best first, as ComfyUI 0.8.0's supported_models.py lists them (its BASE default,
# fp16 first, for SD15 and SDXL). SD2 runs its attention in fp32 in ComfyUI when in fp16 (attn_precision);
# this U-Net has no such upcast, so SD2 stays in bf16.
INFERENCE_DTYPES = {"sd1": ("float16", "bfloat16", "float32"), "sdxl": ("float16", "bfloat16", "float32"),
                    "sd2": ("bfloat16", "float32")}


def model_info(model: DiffusionModel) -> dict:
    """Facts for ModelHandle.info (readable without touching the module)."""
    return {"family": model.family, "inference_dtypes": INFERENCE_DTYPES.get(model.family, ()),
            "prediction_type": model.prediction_type, "inpaint": model.inpaint,
            "latent_channels": model.latent_format.channels, "latent_downscale": model.latent_format.downscale,
            "scale_factor": model.latent_format.scale_factor}
