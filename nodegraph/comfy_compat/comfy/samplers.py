"""ComfyUI's comfy.samplers, as packs use it: the sampler and scheduler names, KSampler (names and a working
sample), KSAMPLER (a SAMPLER from a Python function), ksampler / sampler_object, calculate_sigmas, CFGGuider,
calc_cond_batch (for CFG hooks that call the model again), cfg_function and sampling_function (one guided
x0 prediction, as custom guiders' predict_noise and CFG hooks call it).

The sampling itself is the diffusion pack's (offered through nodegraph.provide, see model_surface.py),
so a pack sampling here gets the pixels of our KSampler with the same settings.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..model_surface import service
from ..surface import unsupported


def _sampling():
    return service().sampling


class _Names:
    """A class attribute read from the diffusion pack when asked (KSampler.SAMPLERS ...)."""

    def __init__(self, attr: str) -> None:
        self.attr = attr

    def __get__(self, obj, owner) -> list:
        return list(getattr(_sampling(), self.attr))


def calculate_sigmas(model_sampling, scheduler_name: str, steps: int) -> torch.Tensor:
    """The scheduler's sigmas [steps + 1] for a model sampling (patcher.get_model_object("model_sampling"))."""
    sampling = _sampling()
    return sampling.calculate_sigmas(sampling.model_sampling_of(model_sampling), scheduler_name, int(steps))


def calc_cond_batch(model, conds: list, x_in: torch.Tensor, timestep: torch.Tensor, model_options: dict) -> list:
    """The x0 prediction of each list of conds, as a cfg hook's args["model"] and args["input_cond"] give them
    (hooks such as self-attention guidance call the model again this way)."""
    return _sampling().calc_cond_batch(model, conds, x_in, timestep, model_options)


def cfg_function(model, cond_pred: torch.Tensor, uncond_pred: torch.Tensor, cond_scale: float, x: torch.Tensor,
                 timestep: torch.Tensor, model_options: dict | None = None, cond=None, uncond=None) -> torch.Tensor:
    """ComfyUI's cfg_function: uncond + scale (cond - uncond), or model_options' "sampler_cfg_function" (given
    noise predictions, returning one), then each "sampler_post_cfg_function" on the result."""
    mo = model_options or {}
    if "sampler_cfg_function" in mo:
        args = {"cond": x - cond_pred, "uncond": x - uncond_pred, "cond_scale": cond_scale, "timestep": timestep,
                "input": x, "sigma": timestep, "cond_denoised": cond_pred, "uncond_denoised": uncond_pred,
                "model": model, "model_options": mo, "input_cond": cond, "input_uncond": uncond}
        result = x - mo["sampler_cfg_function"](args)
    else:
        result = uncond_pred + (cond_pred - uncond_pred) * cond_scale
    for fn in mo.get("sampler_post_cfg_function", []):
        result = fn({"denoised": result, "cond": cond, "uncond": uncond, "cond_scale": cond_scale, "model": model,
                     "uncond_denoised": uncond_pred, "cond_denoised": cond_pred, "sigma": timestep,
                     "model_options": mo, "input": x})
    return result


def sampling_function(model, x: torch.Tensor, timestep: torch.Tensor, uncond, cond, cond_scale: float,
                      model_options: dict | None = None, seed: int | None = None) -> torch.Tensor:
    """ComfyUI's sampling_function: the guided x0 of x at sigma `timestep`. `model` and the cond lists are the
    ones the sampler hands to hooks (args["model"], args["input_cond"] / args["conds"]); at a scale of 1 the
    uncond is skipped unless model_options says "disable_cfg1_optimization"."""
    mo = model_options or {}
    skip_uncond = math.isclose(cond_scale, 1.0) and not mo.get("disable_cfg1_optimization", False)
    uncond_ = None if skip_uncond else uncond
    conds = [cond, uncond_]
    if "sampler_calc_cond_batch_function" in mo:
        out = mo["sampler_calc_cond_batch_function"]({"conds": conds, "input": x, "sigma": timestep, "model": model,
                                                      "model_options": mo})
    else:
        out = calc_cond_batch(model, conds, x, timestep, mo)
    for fn in mo.get("sampler_pre_cfg_function", []):
        out = fn({"conds": conds, "conds_out": out, "cond_scale": cond_scale, "timestep": timestep, "input": x,
                  "sigma": timestep, "model": model, "model_options": mo})
    return cfg_function(model, out[0], out[1], cond_scale, x, timestep, model_options=mo, cond=cond, uncond=uncond_)


def sampler_object(name: str):
    """A SAMPLER by name, as KSampler runs it ("ddim" is euler with fresh inpaint noise)."""
    return _sampling().sampler_object(name)


def ksampler(sampler_name: str, extra_options: dict | None = None, inpaint_options: dict | None = None):
    """A SAMPLER by name with options (ComfyUI's ksampler)."""
    return _sampling().ksampler(sampler_name, extra_options or {}, inpaint_options or {})


def KSAMPLER(sampler_function, extra_options: dict | None = None, inpaint_options: dict | None = None):  # noqa: N802
    """A SAMPLER from a Python function sampler_function(model, x, sigmas, extra_args=, callback=, disable=,
    **extra_options), which our SamplerCustom / SamplerCustomAdvanced and comfy.sample.sample_custom run."""
    return _sampling().FunctionSampler(sampler_function, extra_options, inpaint_options)


class KSampler:
    """ComfyUI's KSampler object: sigmas from (model, steps, scheduler, denoise), and sample()."""

    SCHEDULERS = _Names("SCHEDULER_NAMES")
    SAMPLERS = _Names("SAMPLER_NAMES")
    DISCARD_PENULTIMATE_SIGMA_SAMPLERS = _Names("DISCARD_PENULTIMATE_SIGMA_SAMPLERS")

    def __init__(self, model, steps: int, device=None, sampler: str | None = None, scheduler: str | None = None,
                 denoise: float | None = None, model_options: dict | None = None) -> None:
        self.model, self.device = model, device
        self.sampler, self.scheduler = sampler, scheduler
        self.model_options = model_options or {}
        self.set_steps(steps, denoise)

    def calculate_sigmas(self, steps: int) -> torch.Tensor:
        sampling = _sampling()
        return sampling.ksampler_sigmas(sampling.model_sampling_of(self.model), self.sampler, self.scheduler, steps)

    def set_steps(self, steps: int, denoise: float | None = None) -> None:
        self.steps = steps
        sampling = _sampling()
        self.sigmas = sampling.ksampler_sigmas(sampling.model_sampling_of(self.model), self.sampler, self.scheduler,
                                               steps, 1.0 if denoise is None else denoise)

    def sample(self, noise, positive, negative, cfg, latent_image=None, start_step=None, last_step=None,
               force_full_denoise=False, denoise_mask=None, sigmas=None, callback=None, disable_pbar=False,
               seed=None) -> torch.Tensor:
        sampling = _sampling()
        sigmas = sampling.trim_sigmas(self.sigmas if sigmas is None else sigmas, start_step, last_step,
                                      force_full_denoise)
        if latent_image is None:
            latent_image = torch.zeros_like(noise)
        if sigmas is None:  # the window starts after the last step
            return latent_image
        return sampling.guided_sample(self.model, noise, sampling.cfg_guidance(positive, negative, cfg),
                                      sampler_object(self.sampler), sigmas, latent_image, denoise_mask, callback, seed,
                                      what="comfy.samplers.KSampler.sample")


class CFGGuider:
    """ComfyUI's CFGGuider for packs that sample with it directly (set_conds, set_cfg, sample)."""

    def __init__(self, model_patcher) -> None:
        self.model_patcher = model_patcher
        self.model_options = getattr(model_patcher, "model_options", {})
        self.original_conds: dict[str, Any] = {}
        self.conds: dict[str, Any] = {}  # each side's prepared conds while sampling (predict_noise reads them)
        self.inner_model = None  # the model sampling_function takes, while sampling
        self.cfg = 1.0

    def set_conds(self, positive, negative) -> None:
        self.inner_set_conds({"positive": positive, "negative": negative})

    def set_cfg(self, cfg: float) -> None:
        self.cfg = cfg

    def inner_set_conds(self, conds: dict) -> None:
        self.original_conds.update(conds)

    # As a GUIDER output it goes to our SamplerCustomAdvanced, which reads the model handle and the guidance
    @property
    def model(self):
        from ..model_surface import unwrap
        return unwrap(self.model_patcher)

    @property
    def guidance(self):
        if type(self).predict_noise is not CFGGuider.predict_noise:  # a custom guider: its predict_noise guides
            return _sampling().PackGuiderGuidance(self)
        return _sampling().cfg_guidance(self.original_conds.get("positive"), self.original_conds.get("negative"),
                                        self.cfg)

    def predict_noise(self, x, timestep, model_options=None, seed=None):
        """ComfyUI's: the guided x0 of x at sigma `timestep` (inner_model and conds are set while sampling)."""
        return sampling_function(self.inner_model, x, timestep, self.conds.get("negative"),
                                 self.conds.get("positive"), self.cfg, model_options=model_options or {}, seed=seed)

    def sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False,
               seed=None) -> torch.Tensor:
        sampling = _sampling()
        guidance = self.guidance
        return sampling.guided_sample(self.model_patcher, noise, guidance, sampler, sigmas, latent_image,
                                      denoise_mask, callback, seed, what="comfy.samplers.CFGGuider.sample")


_LAZY = {"SAMPLER_NAMES": "SAMPLER_NAMES", "SCHEDULER_NAMES": "SCHEDULER_NAMES", "KSAMPLER_NAMES": "KSAMPLER_NAMES"}
_missing = unsupported(__name__)


def __getattr__(name: str):
    if name in _LAZY:
        return list(getattr(_sampling(), _LAZY[name]))
    return _missing(name)
