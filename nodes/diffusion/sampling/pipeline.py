"""One sampling run as ComfyUI's KSampler / KSamplerAdvanced / SamplerCustom do it (nodes.common_ksampler,
comfy.sample.sample, comfy.samplers.KSampler / CFGGuider / KSAMPLER), on a DiffusionModel.

    latent dict -> noise from the seed (CPU) -> sigmas (scheduler, denoise, step window)
      -> model space (latent_format.process_in, unless the latent is all zeros) -> conditioning
      -> x = latent + noise * sigma_0 (sqrt(1 + sigma_0²) at full denoise) -> sampler -> process_out
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from nodegraph import repeat_to_batch

from .guidance import (InpaintDenoiser, ModelDenoiser, add_matching_areas, prepare_conds, share_control_with_uncond,
                       unique_controls)
from .guiders import CFGGuidance
from .noise import prepare_noise
from .samplers import SamplerChoice, sampler_object
from .schedules import ModelSampling, ksampler_sigmas, trim_sigmas

StepCallback = Callable[[int, torch.Tensor, torch.Tensor, int], None]  # (step, x0, x, total_steps)


def prepare_mask(noise_mask: torch.Tensor, shape: torch.Size | tuple, device: torch.device) -> torch.Tensor:
    """A LATENT's noise_mask (any resolution, [B,1,H,W] / [B,H,W] / [H,W]) -> [B,C,h,w] on the latent grid."""
    mask = noise_mask.float().reshape(-1, 1, noise_mask.shape[-2], noise_mask.shape[-1])
    mask = F.interpolate(mask, size=tuple(shape[2:]), mode="bilinear")
    if mask.shape[1] < shape[1]:
        mask = mask.repeat(1, shape[1], 1, 1)[:, :shape[1]]
    return repeat_to_batch(mask, shape[0]).to(device)


def fix_empty_latent_channels(model, latent: torch.Tensor) -> torch.Tensor:
    """An empty (all zero) latent made for another channel count gets the model's channels."""
    channels = getattr(getattr(model, "latent_format", None), "channels", latent.shape[1])
    if latent.shape[1] != channels and torch.count_nonzero(latent) == 0:
        return torch.zeros(latent.shape[0], channels, *latent.shape[2:], dtype=latent.dtype)
    return latent


def model_device(model) -> torch.device:
    device = getattr(model, "device", None)
    if device is None:
        device = next(iter(model.parameters())).device
    return torch.device(device)


def sample_with_sigmas(model, noise: torch.Tensor, positive, negative, cfg: float, sampler_name: str,
                       sigmas: torch.Tensor, latent_image: torch.Tensor, **kw) -> torch.Tensor:
    """comfy.samplers.sample: KSampler's CFG guidance and sampler by name; raw latent in, raw latent out."""
    return sample_guided(model, noise, CFGGuidance(positive, negative, cfg), sampler_object(sampler_name), sigmas,
                         latent_image, **kw)


def sample_guided(model, noise: torch.Tensor, guidance, sampler: SamplerChoice, sigmas: torch.Tensor,
                  latent_image: torch.Tensor, *, denoise_mask: torch.Tensor | None = None, seed: int | None = None,
                  callback: StepCallback | None = None, check_interrupt: Callable[[], None] | None = None,
                  model_options: dict | None = None, ms: ModelSampling | None = None,
                  stats: dict | None = None) -> torch.Tensor:
    """comfy.samplers.CFGGuider.sample with any guidance (guiders.py) and sampler: raw latent in, raw latent out."""
    if sigmas.shape[-1] == 0:
        return latent_image
    ms = ms or ModelSampling.for_model(model)
    device = model_device(model)
    noise = noise.to(device=device, dtype=torch.float32)
    latent_image = latent_image.to(device=device, dtype=torch.float32)
    sigmas = sigmas.to(device)
    if denoise_mask is not None:
        denoise_mask = prepare_mask(denoise_mask, noise.shape, device)
    if torch.count_nonzero(latent_image) > 0:  # the empty latent is not shifted
        latent_image = model.latent_format.process_in(latent_image)

    sides = {name: prepare_conds(cond, model, ms, noise, latent_image, denoise_mask, seed, prompt_type=name)
             for name, cond in guidance.conds.items()}
    for name in sides:  # every area of one side gets a counterpart on the others
        for other in sides:
            if other != name:
                add_matching_areas(sides[other], sides[name])
    for name in sides:
        if name != "positive":
            share_control_with_uncond(sides["positive"], sides[name])
    controls = unique_controls(*sides.values())
    for control in controls:  # ControlNets: step window as sigmas of this model, hint caches
        if hasattr(control, "pre_run"):
            control.pre_run(model, ms)
    try:
        return _run_sampler(model, noise, guidance, sides, sampler, sigmas, latent_image, denoise_mask, seed,
                            callback, check_interrupt, model_options, ms, stats)
    finally:
        for control in controls:
            if hasattr(control, "cleanup"):
                control.cleanup()


def _run_sampler(model, noise, guidance, sides, sampler, sigmas, latent_image, denoise_mask, seed,
                 callback, check_interrupt, model_options, ms, stats) -> torch.Tensor:
    apply_fn = ModelDenoiser(model, ms, check_interrupt)
    guided = guidance.denoiser(apply_fn, sides, model_options)
    if hasattr(guided, "sample_sigmas"):  # a pack's custom guider reads the run's sigmas (comfy_surface.sampling)
        guided.sample_sigmas = sigmas
    inpaint_noise = noise
    if sampler.random_inpaint_noise:  # ComfyUI's ddim: re-noise the kept region with other noise
        generator = torch.Generator(device="cpu").manual_seed(((41 if seed is None else int(seed)) + 1) % 2 ** 64)
        inpaint_noise = torch.randn(noise.shape, generator=generator, device="cpu").to(noise)
    denoiser = InpaintDenoiser(guided, latent_image, inpaint_noise, denoise_mask)
    denoiser.model_sampling = ms  # samplers that need the schedule itself (sa_solver's SDE window)
    denoiser.mask_function = (model_options or {}).get("denoise_mask_function")
    denoiser.sigmas = sigmas

    x = ms.noise_scaling(sigmas[0], noise, latent_image, ms.is_max_denoise(sigmas))
    total = len(sigmas) - 1
    k_callback = None
    if callback is not None:
        def k_callback(info: dict) -> None:
            callback(int(info["i"]), info["denoised"], info["x"], total)
    samples = sampler(denoiser, x, sigmas, extra_args={}, callback=k_callback, seed=seed)
    samples = ms.inverse_noise_scaling(sigmas[-1], samples)
    if stats is not None:
        stats["model_calls"] = apply_fn.calls
    return model.latent_format.process_out(samples.to(torch.float32))


def common_ksampler(model, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str, positive,
                    negative, latent: dict, denoise: float = 1.0, disable_noise: bool = False,
                    start_step: int | None = None, last_step: int | None = None, force_full_denoise: bool = False,
                    callback: StepCallback | None = None, check_interrupt: Callable[[], None] | None = None,
                    model_options: dict | None = None, stats: dict | None = None) -> dict[str, Any]:
    """KSampler (start/last None) and KSamplerAdvanced: a LATENT dict in, a LATENT dict out (on the CPU)."""
    ms = ModelSampling.for_model(model)
    latent_image = fix_empty_latent_channels(model, latent["samples"])
    if disable_noise:
        noise = torch.zeros(latent_image.shape, dtype=latent_image.dtype, device="cpu")
    else:
        noise = prepare_noise(latent_image, seed, latent.get("batch_index"))
    sigmas = ksampler_sigmas(ms, sampler_name, scheduler, steps, denoise)
    if stats is not None:
        stats["sigmas"] = sigmas
    sigmas = trim_sigmas(sigmas, start_step, last_step, force_full_denoise)
    if sigmas is None:  # the window starts after the last step: nothing to do
        samples = latent_image
    else:
        samples = sample_with_sigmas(model, noise, positive, negative, cfg, sampler_name, sigmas, latent_image,
                                     denoise_mask=latent.get("noise_mask"), seed=seed, callback=callback,
                                     check_interrupt=check_interrupt, model_options=model_options, ms=ms, stats=stats)
    out = dict(latent)
    out["samples"] = samples.cpu()
    return out
