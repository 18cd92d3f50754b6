"""What every sampler shares: the ODE derivative, ancestral step split, noise samplers, callbacks,
log-SNR time, and the tap on the guided denoiser that the CFG++ samplers read the uncond x0 from.

Every sampler has the signature

    sampler(model, x, sigmas, *, extra_args=None, callback=None, noise_sampler=None, seed=None, **options) -> x

- model(x, sigma[B], **extra_args) -> denoised x0 (the D(x; sigma) of Karras et al. 2022);
- x: the starting point, already noised to sigmas[0] (x = x0 + sigma * eps);
- sigmas: descending noise levels, usually ending with 0;
- callback({"x", "i", "sigma", "sigma_hat", "denoised"}) once per step, after its first model call;
- noise for ancestral / SDE steps: noise_sampler(sigma, sigma_next), or one built from seed as
  ComfyUI builds it (default_noise_sampler; a Brownian tree for the DPM++ SDE samplers);
- options: the sampler's own settings (eta, s_noise, order ...), as ComfyUI's sampler option nodes set them.

The samplers that need the model's noise schedule itself (sa_solver's default SDE window) read it from
`model.model_sampling` (the pipeline's denoiser carries it); a bare denoiser gets SD's schedule.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..noise import BrownianTreeNoiseSampler, NoiseSampler, default_noise_sampler
from ..schedules import ModelSampling

Model = Callable[..., torch.Tensor]
Callback = Callable[[dict], None] | None

__all__ = ["Callback", "Model", "NoiseSampler", "UncondTap", "append_dims", "brownian_noise", "churn",
           "get_ancestral_step", "lambda_of", "model_sampling_of", "report", "setup", "sigma_of", "to_d"]


def append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    v = torch.as_tensor(v)
    return v[(...,) + (None,) * (ndim - v.ndim)]


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The ODE derivative dx/dsigma = (x - D(x)) / sigma."""
    return (x - denoised) / append_dims(sigma, x.ndim)


def get_ancestral_step(sigma_from, sigma_to, eta: float = 1.0):
    """Split a step sigma_from -> sigma_to into a deterministic step down to sigma_down and fresh
    noise of std sigma_up, with sigma_down² + sigma_up² = sigma_to² (eta = 1: DDPM's posterior)."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
    return sigma_down, sigma_up


def lambda_of(sigma):
    """Half log-SNR of a VE/eps model: lambda = log(alpha / sigma_vp) = -log sigma."""
    return sigma.log().neg()


def sigma_of(lam):
    return lam.neg().exp()


def model_sampling_of(model) -> ModelSampling:
    ms = getattr(model, "model_sampling", None)
    return ms if ms is not None else ModelSampling()


def setup(x, extra_args, noise_sampler, seed):
    """(extra_args, noise sampler, ones[B]) with ComfyUI's seeded default noise."""
    extra_args = {} if extra_args is None else extra_args
    if noise_sampler is None:
        noise_sampler = default_noise_sampler(x, seed=seed)
    return extra_args, noise_sampler, x.new_ones([x.shape[0]])


def report(callback, x, i, sigma, denoised, sigma_hat=None) -> None:
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma if sigma_hat is None else sigma_hat,
                  "denoised": denoised})


def churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise):
    """Karras' stochastic churn: raise the noise to sigma_hat before the step (off by default)."""
    gamma = 0.0
    if s_churn > 0 and s_tmin <= sigmas[i] <= s_tmax:
        gamma = min(s_churn / (len(sigmas) - 1), 2 ** 0.5 - 1)
    sigma_hat = sigmas[i] * (gamma + 1)
    if gamma > 0:
        x = x + torch.randn_like(x) * s_noise * (sigma_hat ** 2 - sigmas[i] ** 2) ** 0.5
    return x, sigma_hat


def brownian_noise(x, sigmas, noise_sampler, seed, cpu: bool):
    """The given noise sampler, or a Brownian tree over the schedule's range (DPM++ SDE samplers)."""
    if noise_sampler is not None:
        return noise_sampler
    positive = sigmas[sigmas > 0]
    return BrownianTreeNoiseSampler(x, positive.min(), sigmas.max(), seed=seed, cpu=cpu)


class UncondTap:
    """Asks the guided denoiser to run the uncond pass even at cfg 1 and keeps its x0 (CFG++)."""

    def __init__(self, extra_args: dict | None) -> None:
        self.uncond: torch.Tensor | None = None
        extra_args = dict(extra_args or {})
        options = dict(extra_args.get("model_options") or {})
        options["sampler_post_cfg_function"] = list(options.get("sampler_post_cfg_function", [])) + [self._keep]
        options["disable_cfg1_optimization"] = True
        extra_args["model_options"] = options
        self.extra_args = extra_args

    def _keep(self, args: dict) -> torch.Tensor:
        self.uncond = args["uncond_denoised"]
        return args["denoised"]

    def get(self) -> torch.Tensor:
        if self.uncond is None:
            raise RuntimeError("CFG++ samplers need a classifier-free guided denoiser (it reports the uncond x0)")
        return self.uncond
