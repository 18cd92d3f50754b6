"""Noise schedules, samplers and guidance for the diffusion pack (ComfyUI's names and results).

    schedules  ModelSampling (sigmas from alphas_cumprod, sigma <-> timestep, eps/v denoising),
               the schedulers (normal, karras, exponential, sgm_uniform, simple, ddim_uniform, beta ...)
    samplers   all of ComfyUI's samplers (euler ... dpmpp_* ... sa_solver, uni_pc) as pure functions, by family
    noise      seeded initial noise (prepare_noise) and ancestral / Brownian-tree noise samplers
    guidance   conditioning areas, masks, strengths, batched classifier-free guidance, inpainting
    guiders    CFG, basic, dual-CFG and Perp-Neg guidance (the GUIDER of the custom-sampling nodes)
    model_sampling  the other schedule families (zero-terminal-SNR, LCM, continuous EDM / V) for model patches
    pipeline   common_ksampler: one KSampler / KSamplerAdvanced run; sample_guided: any guidance and sampler
"""
from .guidance import CFGDenoiser, CondEntry, InpaintDenoiser, ModelDenoiser, calc_cond_batch, prepare_conds
from .guiders import CFGGuidance, DualCFGGuidance, PerpNegGuidance
from .noise import BrownianTreeNoiseSampler, EmptyNoise, RandomNoise, default_noise_sampler, prepare_noise
from .pipeline import common_ksampler, fix_empty_latent_channels, prepare_mask, sample_guided, sample_with_sigmas
from .samplers import SAMPLER_NAMES, SAMPLERS, SamplerChoice, get_ancestral_step, get_sampler, sampler_object, to_d
from .schedules import (DISCARD_PENULTIMATE_SIGMA_SAMPLERS, SCHEDULER_NAMES, SCHEDULERS, ModelSampling,
                        calculate_sigmas, karras_sigmas, ksampler_sigmas, scaled_linear_alphas_cumprod, trim_sigmas)

__all__ = [
    "BrownianTreeNoiseSampler", "CFGDenoiser", "CFGGuidance", "CondEntry", "DualCFGGuidance", "EmptyNoise",
    "PerpNegGuidance", "RandomNoise", "SamplerChoice", "fix_empty_latent_channels", "sample_guided", "sampler_object", "DISCARD_PENULTIMATE_SIGMA_SAMPLERS", "InpaintDenoiser",
    "ModelDenoiser", "ModelSampling", "SAMPLERS", "SAMPLER_NAMES", "SCHEDULERS", "SCHEDULER_NAMES",
    "calc_cond_batch", "calculate_sigmas", "common_ksampler", "default_noise_sampler", "get_ancestral_step",
    "get_sampler", "karras_sigmas", "ksampler_sigmas", "prepare_conds", "prepare_mask", "prepare_noise",
    "sample_with_sigmas", "scaled_linear_alphas_cumprod", "to_d", "trim_sigmas",
]
