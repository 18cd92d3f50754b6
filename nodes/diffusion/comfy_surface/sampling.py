"""Sampling as ComfyUI's comfy.samplers / comfy.sample / nodes.common_ksampler / latent_preview give it to
packs, on our sampler code (so a pack's sampling gives the same pixels as our KSampler).

- A SAMPLER made by a pack from a Python function (comfy.samplers.KSAMPLER) runs inside our sampling
  like ours do: FunctionSampler calls it with ComfyUI's arguments (model, x, sigmas, extra_args,
  callback, disable, **extra_options), extra_args holding "seed" and "model_options".
- comfy.k_diffusion.sampling's functions are ours behind ComfyUI's signature (kdiffusion_function).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..model_options import sampling_model
from ..sampler_nodes import run_sampler, step_reporter
from ..sampling import (CFGGuidance, SCHEDULER_NAMES, SAMPLER_NAMES, DISCARD_PENULTIMATE_SIGMA_SAMPLERS,
                        SamplerChoice, calculate_sigmas, fix_empty_latent_channels, ksampler_sigmas, prepare_noise,
                        sample_guided, sampler_object, trim_sigmas)
from ..sampling.guidance import merge_model_options
from ..sampling import (BrownianTreeNoiseSampler, calc_cond_batch, default_noise_sampler,  # noqa: F401
                        get_ancestral_step, to_d)
from ..sampling.samplers import KSAMPLER_NAMES, SAMPLERS
from .patcher import ComfyModelPatcher

__all__ = ["FunctionSampler", "KSAMPLER_NAMES", "SAMPLER_NAMES", "SCHEDULER_NAMES", "DISCARD_PENULTIMATE_SIGMA_SAMPLERS",
           "calculate_sigmas", "common_ksampler", "guided_sample", "kdiffusion_function", "kdiffusion_names",
           "ksampler", "ksampler_sigmas", "PackGuiderGuidance", "prepare_noise", "sampler_object", "trim_sigmas", "prepare_callback",
           "fix_empty_latent_channels_of"]


class FunctionSampler:
    """comfy.samplers.KSAMPLER(sampler_function, extra_options, inpaint_options): a pack's sampler function
    as a SAMPLER our sampling runs (the denoiser it gets is ours: model(x, sigma * s_in, **extra_args))."""

    def __init__(self, sampler_function: Callable, extra_options: dict | None = None,
                 inpaint_options: dict | None = None) -> None:
        self.sampler_function = sampler_function
        self.extra_options = dict(extra_options or {})
        self.inpaint_options = dict(inpaint_options or {})
        self.name = getattr(sampler_function, "__name__", "custom")
        self.options = self.extra_options
        self.random_inpaint_noise = bool(self.inpaint_options.get("random", False))

    def __call__(self, model, x, sigmas, *, extra_args=None, callback=None, seed=None, **_: Any) -> torch.Tensor:
        # "model_options" starts empty: the model's own options are already in the denoiser, and what a
        # sampler adds there (a post-CFG hook, as CFG++ samplers do) is merged with them per call
        extra = {**(extra_args or {}), "seed": seed, "model_options": {}}
        return self.sampler_function(model, x, sigmas, extra_args=extra, callback=callback, disable=None,
                                     **self.extra_options)


def ksampler(sampler_name: str, extra_options: dict | None = None, inpaint_options: dict | None = None):
    """comfy.samplers.ksampler: one of our samplers by name, with options."""
    choice = sampler_object(sampler_name) if not extra_options else SamplerChoice(sampler_name, dict(extra_options))
    if (inpaint_options or {}).get("random"):
        choice.random_inpaint_noise = True
    return choice


def kdiffusion_names() -> list[str]:
    """comfy.k_diffusion.sampling's sample_* names that we have (ddim and uni_pc live elsewhere in ComfyUI)."""
    return [f"sample_{name}" for name in KSAMPLER_NAMES]


def kdiffusion_function(name: str) -> Callable:
    """Our sampler `name` with k-diffusion's signature: (model, x, sigmas, extra_args, callback, disable, **options)."""
    ours = SAMPLERS[name]

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
        extra = dict(extra_args or {})
        seed = extra.pop("seed", None)
        extra.pop("denoise_mask", None)
        return ours(model, x, sigmas, extra_args=extra, callback=callback, seed=seed, **options)

    sample.__name__ = sample.__qualname__ = f"sample_{name}"
    sample.__doc__ = ours.__doc__
    return sample


def _patcher(model: Any, what: str) -> ComfyModelPatcher:
    if not isinstance(model, ComfyModelPatcher):
        raise TypeError(f"{what} needs the MODEL a node received (a ModelPatcher), got {type(model).__name__}")
    return model


def _callback(callback: Callable | None):
    """ComfyUI's sample callbacks are callback(step, x0, x, total_steps), as ours."""
    return callback


def guided_sample(model: Any, noise: torch.Tensor, guidance, sampler, sigmas: torch.Tensor,
                  latent_image: torch.Tensor, denoise_mask: torch.Tensor | None = None, callback=None,
                  seed: int | None = None, what: str = "comfy.sample") -> torch.Tensor:
    """Raw latent in, raw latent out (CPU): our sample_guided on the patcher's model, options and patches."""
    patcher = _patcher(model, what)
    handle, ctx = patcher.to_handle(), patcher.ctx
    if not hasattr(sampler, "random_inpaint_noise"):
        raise TypeError(f"{what}: the sampler must be a SAMPLER (comfy.samplers.sampler_object / KSAMPLER), "
                        f"got {type(sampler).__name__}")
    with ctx.devices.use(handle) as diffusion:
        diffusion = sampling_model(diffusion, handle)
        latent_image = fix_empty_latent_channels(diffusion, latent_image)
        with torch.no_grad():
            samples = sample_guided(diffusion, noise, guidance, sampler, torch.as_tensor(sigmas).float(),
                                    latent_image, denoise_mask=denoise_mask, seed=seed, callback=_callback(callback),
                                    check_interrupt=ctx.check_interrupt,
                                    model_options=handle.info.get("model_options"))
    return samples.cpu()


def cfg_guidance(positive, negative, cfg: float):
    return CFGGuidance(positive, negative, cfg)


class PackGuiderGuidance:
    """A pack's comfy.samplers.CFGGuider subclass with its own predict_noise (KJNodes' ScheduledCFGGuidance),
    as guidance for our samplers: at each model call predict_noise(x, sigma, model_options, seed) gives the
    x0, with guider.inner_model and guider.conds set as ComfyUI's sampling sets them (what sampling_function
    and calc_cond_batch take: the model hooks see and each side's prepared conds)."""

    def __init__(self, guider) -> None:
        self.guider = guider

    @property
    def conds(self) -> dict[str, list]:
        return {name: cond for name, cond in self.guider.original_conds.items() if cond is not None}

    def denoiser(self, apply_fn, sides: dict, model_options: dict | None):
        return PackGuiderDenoiser(self.guider, apply_fn, sides, model_options)


class PackGuiderDenoiser:
    def __init__(self, guider, apply_fn, sides: dict, model_options: dict | None) -> None:
        self.guider, self.apply_fn, self.sides = guider, apply_fn, sides
        self.model_options = dict(model_options or {})
        self.sample_sigmas = None  # set by the pipeline before sampling

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, model_options: dict | None = None, seed=None,
                 **_: Any) -> torch.Tensor:
        mo = merge_model_options(self.model_options, model_options)
        # as ComfyUI's CFGGuider.inner_sample: the run's sigmas in transformer_options
        mo["transformer_options"] = {**(mo.get("transformer_options") or {}), "sample_sigmas": self.sample_sigmas}
        self.guider.inner_model, self.guider.conds = self.apply_fn, dict(self.sides)
        return self.guider.predict_noise(x, sigma, model_options=mo, seed=seed)


def fix_empty_latent_channels_of(model: Any, latent_image: torch.Tensor) -> torch.Tensor:
    return fix_empty_latent_channels(_patcher(model, "comfy.sample.fix_empty_latent_channels").handle.module,
                                     latent_image)


def model_sampling_of(model: Any):
    """A ModelPatcher's model sampling, or the model sampling itself (comfy.samplers.calculate_sigmas takes that)."""
    if isinstance(model, ComfyModelPatcher):
        return model.get_model_object("model_sampling")
    return model


def common_ksampler(model: Any, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str, positive,
                    negative, latent: dict, denoise: float = 1.0, disable_noise: bool = False,
                    start_step: int | None = None, last_step: int | None = None,
                    force_full_denoise: bool = False) -> tuple[dict]:
    """nodes.common_ksampler: exactly our KSampler / KSamplerAdvanced run (progress and previews included)."""
    patcher = _patcher(model, "nodes.common_ksampler")
    out = run_sampler(patcher.ctx, patcher.to_handle(), seed, steps, cfg, sampler_name, scheduler, positive,
                      negative, latent, denoise=denoise, disable_noise=disable_noise, start_step=start_step,
                      last_step=last_step, force_full_denoise=force_full_denoise)
    return (out,)


def prepare_callback(model: Any, steps: int, x0_output_dict: dict | None = None):
    """latent_preview.prepare_callback: progress (and previews when the job wants them) of the running node;
    x0_output_dict["x0"] gets each step's x0."""
    patcher = _patcher(model, "latent_preview.prepare_callback")
    fmt = patcher.get_model_object("latent_format")
    return step_reporter(patcher.ctx, fmt, x0_output_dict)
