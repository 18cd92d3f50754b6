"""The schedule families of ComfyUI's comfy/model_sampling.py besides SD's plain discrete one, for the model
sampling nodes (ModelSamplingDiscrete, ModelSamplingContinuousEDM, ModelSamplingContinuousV) to put on a MODEL.

    DiscreteSampling           the training schedule, optionally rescaled to zero terminal SNR (zsnr)
    DistilledDiscreteSampling  LCM: 50 of the 1000 timesteps (ComfyUI's ModelSamplingDiscreteDistilled)
    ContinuousEDMSampling      1000 sigmas log-spaced in [sigma_min, sigma_max], timestep = log(sigma) / 4
    ContinuousVSampling        the same sigmas, timestep = 2 atan(sigma) / pi
    CosmosRFlowSampling        the same sigmas, timestep = sigma / (sigma + 1)

The prediction type (eps, v, edm, x0, ...) is ModelSampling's; these only change the sigmas and the
sigma <-> timestep maps, so every scheduler and sampler works on them unchanged.
"""
from __future__ import annotations

import math

import torch

from .schedules import ModelSampling, scaled_linear_alphas_cumprod

__all__ = ["ContinuousEDMSampling", "ContinuousVSampling", "CosmosRFlowSampling", "DiscreteSampling",
           "DistilledDiscreteSampling", "rescale_zero_terminal_snr_sigmas"]

ZSNR_LAST_ALPHA_CUMPROD = 4.8973451890853435e-08  # ComfyUI's stand-in for 0, so the last sigma stays finite


def rescale_zero_terminal_snr_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2024 ("Common diffusion noise schedules and sample steps are flawed", algorithm 1) on sigmas:
    shift and scale sqrt(alpha_bar) so the last timestep has zero signal and the first keeps its value."""
    alphas_bar_sqrt = (1 / (sigmas * sigmas + 1)).sqrt()
    first, last = alphas_bar_sqrt[0].clone(), alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * (first / (first - last))
    alphas_bar = alphas_bar_sqrt ** 2
    alphas_bar[-1] = ZSNR_LAST_ALPHA_CUMPROD
    return ((1 - alphas_bar) / alphas_bar) ** 0.5


class DiscreteSampling(ModelSampling):
    """A model's discrete training schedule with a chosen prediction type, zero-terminal-SNR if zsnr."""

    def __init__(self, alphas_cumprod: torch.Tensor | None = None, prediction_type: str = "eps",
                 zsnr: bool = False) -> None:
        super().__init__(alphas_cumprod, prediction_type)
        self.zsnr = zsnr
        if zsnr:
            ac = (scaled_linear_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod).double().cpu()
            self.set_sigmas(rescale_zero_terminal_snr_sigmas(((1 - ac) / ac) ** 0.5))


class DistilledDiscreteSampling(DiscreteSampling):
    """LCM's schedule: the 50 timesteps 19, 39, ... 999 of the 1000 (every skip_steps-th, from the top)."""

    original_timesteps = 50

    def __init__(self, alphas_cumprod: torch.Tensor | None = None, prediction_type: str = "lcm",
                 zsnr: bool = False) -> None:
        super().__init__(alphas_cumprod, prediction_type, zsnr)
        n = self.num_timesteps
        self.skip_steps = n // self.original_timesteps
        valid = torch.zeros(self.original_timesteps, dtype=torch.float32)
        for k in range(self.original_timesteps):
            valid[self.original_timesteps - 1 - k] = self.sigmas[n - 1 - k * self.skip_steps]
        self.set_sigmas(valid)

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        dists = sigma.log().reshape(1, -1) - self.log_sigmas_on(sigma.device)[:, None]
        index = dists.abs().argmin(dim=0).float()
        return (index * self.skip_steps + (self.skip_steps - 1)).view(sigma.shape)

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        ts = torch.as_tensor(timestep)
        t = ((ts.float().to(self.log_sigmas.device) - (self.skip_steps - 1)) / self.skip_steps)
        t = t.clamp(0, len(self.sigmas) - 1)
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp().to(ts.device)


class ContinuousEDMSampling(ModelSampling):
    """A continuous-time model (EDM, Karras et al. 2022): any sigma in [sigma_min, sigma_max] is a valid
    noise level; the 1000 log-spaced sigmas are there for the schedulers. timestep = log(sigma) / 4."""

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 120.0, sigma_data: float = 1.0,
                 prediction_type: str = "v") -> None:
        if not (sigma_min > 0 and sigma_max > 0):
            raise ValueError(f"sigma_min and sigma_max must be positive (got {sigma_min}, {sigma_max}): "
                             "the schedule is log-spaced")
        super().__init__(prediction_type=prediction_type, sigma_data=sigma_data)
        self.set_sigmas(torch.linspace(math.log(sigma_min), math.log(sigma_max), 1000).exp())

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        return 0.25 * torch.as_tensor(sigma, dtype=torch.float32).log()

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        return (torch.as_tensor(timestep, dtype=torch.float32) / 0.25).exp()

    def percent_to_sigma(self, percent: float) -> float:
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        log_min = math.log(float(self.sigma_min))
        return math.exp((math.log(float(self.sigma_max)) - log_min) * (1.0 - percent) + log_min)


class ContinuousVSampling(ContinuousEDMSampling):
    """Continuous v-prediction (ComfyUI's ModelSamplingContinuousV): timestep = 2 atan(sigma) / pi."""

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(sigma, dtype=torch.float32).atan() / math.pi * 2

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        return (torch.as_tensor(timestep, dtype=torch.float32) * math.pi / 2).tan()


class CosmosRFlowSampling(ContinuousEDMSampling):
    """Cosmos' rectified flow seen in EDM sigmas: timestep = sigma / (sigma + 1), capped at sigma_max."""

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 120.0, sigma_data: float = 1.0,
                 prediction_type: str = "cosmos_rflow") -> None:
        super().__init__(sigma_min, sigma_max, sigma_data, prediction_type)

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        return sigma / (sigma + 1)

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        t = torch.as_tensor(timestep, dtype=torch.float32)
        sigma_max = self.sigma_max.to(t.device)
        return torch.where(t >= sigma_max / (sigma_max + 1), sigma_max, t / (1 - t))
