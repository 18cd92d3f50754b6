"""Discrete-time SD model sampling (sigmas, sigma <-> timestep, eps/v denoising) and the schedulers.

A discrete VP model trained on 1000 timesteps with cumulative alphas ᾱ_t is driven as a
k-diffusion VE denoiser: sigma_t = sqrt((1 - ᾱ_t) / ᾱ_t), the sampler state is x = x0 + sigma * eps,
and the U-Net sees c_in * x with c_in = 1 / sqrt(sigma² + sigma_data²) (Karras et al. 2022; k-diffusion's
DiscreteEpsDDPMDenoiser / DiscreteVDDPMDenoiser). Names and formulas of the schedulers are ComfyUI's
(comfy/samplers.py, comfy/k_diffusion/sampling.py), so the same settings give the same sigmas.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

SCHEDULER_NAMES = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
                   "linear_quadratic", "kl_optimal"]
# these samplers evaluate the model twice per step; ComfyUI plans one step more and drops the
# penultimate sigma so the last step goes straight to 0
DISCARD_PENULTIMATE_SIGMA_SAMPLERS = frozenset({"dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"})


def scaled_linear_alphas_cumprod(steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012) -> torch.Tensor:
    """SD's training schedule: betas linear in sqrt space, float64 (ldm's "linear" = diffusers' "scaled_linear")."""
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, steps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


class ModelSampling:
    """A discrete diffusion model seen as a denoiser D(x, sigma) -> x0.

    sigmas: the 1000 training sigmas, ascending, float32 (ComfyUI's ModelSamplingDiscrete buffers).
    quantize: sigma -> timestep picks the nearest training timestep (ComfyUI); False interpolates
    between the two neighbours in log-sigma (k-diffusion's sigma_to_t).
    prediction_type: what the network predicts (ComfyUI's model_sampling classes): "eps" (EPS), "v"
    (V_PREDICTION), "edm" (EDM), "x0" (X0), "img_to_img" (IMG_TO_IMG: x0, unscaled input), "lcm" (LCM's
    consistency boundary), "cosmos_rflow" (COSMOS_RFLOW). Other schedule families (zero-terminal-SNR,
    distilled, continuous EDM / V) are the subclasses in model_sampling.py, which ModelSamplingDiscrete
    and ModelSamplingContinuousEDM put on a MODEL handle.
    """

    PREDICTION_TYPES = ("eps", "v", "edm", "x0", "img_to_img", "lcm", "cosmos_rflow")

    def __init__(self, alphas_cumprod: torch.Tensor | None = None, prediction_type: str = "eps",
                 sigma_data: float = 1.0, quantize: bool = True) -> None:
        if prediction_type not in self.PREDICTION_TYPES:
            raise ValueError(f"prediction type must be one of {', '.join(self.PREDICTION_TYPES)}, "
                             f"not {prediction_type!r}")
        ac = (scaled_linear_alphas_cumprod() if alphas_cumprod is None else alphas_cumprod).double().cpu()
        self.set_sigmas(((1 - ac) / ac) ** 0.5)
        self.prediction_type = prediction_type
        self.sigma_data = float(sigma_data)
        self.quantize = quantize

    def set_sigmas(self, sigmas: torch.Tensor) -> None:
        """The schedule's sigmas, ascending (float32, log taken before rounding as ComfyUI's set_sigmas)."""
        self.sigmas = sigmas.float()
        self.log_sigmas = sigmas.log().float()
        self.num_timesteps = len(self.sigmas)
        self._log_sigmas_by_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def log_sigmas_on(self, device: torch.device) -> torch.Tensor:
        """log_sigmas on `device`, copied there once: sigma -> timestep then stays on the sigma's device,
        with no host round trip (a sync) in every model call."""
        device = torch.device(device)
        if device == self.log_sigmas.device:
            return self.log_sigmas
        cache = self.__dict__.setdefault("_log_sigmas_by_device", {})
        source, copy = cache.get(device, (None, None))
        if source is not self.log_sigmas:  # first use, or log_sigmas replaced since
            copy = self.log_sigmas.to(device)
            cache[device] = (self.log_sigmas, copy)
        return copy

    @classmethod
    def for_model(cls, model) -> "ModelSampling":
        """From a DiffusionModel (alphas_cumprod, prediction_type), or the model sampling a MODEL handle's
        patch put on it (model.model_sampling, see nodes.diffusion.model_options)."""
        override = getattr(model, "model_sampling", None)
        if override is not None:
            return override
        return cls(getattr(model, "alphas_cumprod", None), getattr(model, "prediction_type", "eps"))

    @property
    def sigma_min(self) -> torch.Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> torch.Tensor:
        return self.sigmas[-1]

    # --- sigma <-> timestep ----------------------------------------------------------------------
    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Training timestep (0..999) for each sigma, float32."""
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        log_sigma = sigma.log()
        log_sigmas = self.log_sigmas_on(sigma.device)
        dists = log_sigma.reshape(1, -1) - log_sigmas[:, None]
        if self.quantize:
            t = dists.abs().argmin(dim=0).float()
        else:
            low = dists.ge(0).cumsum(dim=0).argmax(dim=0).clamp(max=self.num_timesteps - 2)
            lo, hi = log_sigmas[low], log_sigmas[low + 1]
            w = ((lo - log_sigma.reshape(-1)) / (lo - hi)).clamp(0, 1)
            t = (1 - w) * low + w * (low + 1)
        return t.view(sigma.shape)

    def sigma(self, timestep: torch.Tensor | float) -> torch.Tensor:
        """Sigma at a (possibly fractional) timestep: linear interpolation of log sigma."""
        ts = torch.as_tensor(timestep)
        t = ts.float().to(self.log_sigmas.device).clamp(0, self.num_timesteps - 1)
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]
        return log_sigma.exp().to(ts.device)

    def percent_to_sigma(self, percent: float) -> float:
        """Sigma at a fraction of the sampling run (0 = start, 1 = end), as ComfyUI's timestep ranges."""
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return float(self.sigma(torch.tensor((1.0 - percent) * 999.0)))

    # --- the denoiser ------------------------------------------------------------------------------
    def _view(self, sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, device=like.device, dtype=like.dtype)
        return sigma.reshape(sigma.shape[:1] + (1,) * (like.ndim - 1)) if sigma.ndim else sigma

    def scalings(self, sigma: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(c_skip, c_out, c_in): x0 = c_skip * x + c_out * F(c_in * x), for eps and v prediction."""
        if self.prediction_type not in ("eps", "v"):
            raise ValueError(f"scalings are defined for eps and v prediction, not {self.prediction_type!r}")
        s = self._view(sigma, like)
        sd2 = self.sigma_data ** 2
        c_in = 1 / (s ** 2 + sd2) ** 0.5
        if self.prediction_type == "v":
            return sd2 / (s ** 2 + sd2), -s * self.sigma_data / (s ** 2 + sd2) ** 0.5, c_in
        return torch.ones_like(s), -s, c_in

    def calculate_input(self, sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        s = self._view(sigma, x)
        if self.prediction_type == "img_to_img":
            return x
        if self.prediction_type == "cosmos_rflow":
            t = s / (s + 1)
            return x * (1.0 - t)
        return x / (s ** 2 + self.sigma_data ** 2) ** 0.5

    def calculate_denoised(self, sigma: torch.Tensor, model_output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        s = self._view(sigma, model_output)
        kind, sd = self.prediction_type, self.sigma_data
        if kind == "v":
            return x * sd ** 2 / (s ** 2 + sd ** 2) - model_output * s * sd / (s ** 2 + sd ** 2) ** 0.5
        if kind == "edm":  # the network's output has the opposite sign of v (ComfyUI's EDM class)
            return x * sd ** 2 / (s ** 2 + sd ** 2) + model_output * s * sd / (s ** 2 + sd ** 2) ** 0.5
        if kind in ("x0", "img_to_img"):
            return model_output
        if kind == "cosmos_rflow":
            t = s / (s + 1)
            return x * (1.0 - t) - model_output * t
        x0 = x - model_output * s
        if kind == "lcm":  # the consistency model's boundary condition at timestep_scaling 10, sigma_data 0.5
            t = self._view(self.timestep(torch.as_tensor(sigma)), model_output) * 10.0
            c_skip, c_out = 0.25 / (t ** 2 + 0.25), t / (t ** 2 + 0.25) ** 0.5
            return c_out * x0 + c_skip * x
        return x0

    def noise_scaling(self, sigma: torch.Tensor, noise: torch.Tensor, latent_image: torch.Tensor,
                      max_denoise: bool = False) -> torch.Tensor:
        """The sampler's starting point. At full denoise ComfyUI scales by sqrt(1 + sigma²), the
        std of a VP sample at sigma_max seen in VE space, instead of sigma (not for cosmos_rflow)."""
        s = torch.as_tensor(sigma, device=noise.device, dtype=noise.dtype)
        scale = torch.sqrt(1.0 + s ** 2.0) if max_denoise and self.prediction_type != "cosmos_rflow" else s
        return noise * scale + latent_image

    def inverse_noise_scaling(self, sigma: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return latent

    def is_max_denoise(self, sigmas: torch.Tensor) -> bool:
        """Does the schedule start at (or above) the model's largest sigma?"""
        max_sigma, first = float(self.sigma_max), float(sigmas[0])
        return math.isclose(max_sigma, first, rel_tol=1e-05) or first > max_sigma


# =============================================================================================
# Schedulers: (model sampling, steps) -> sigmas [steps + 1], descending, ending at 0
# =============================================================================================

def append_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros([1])])


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) eq. 5: equal steps in sigma^(1/rho)."""
    ramp = torch.linspace(0, 1, n)
    min_inv_rho, max_inv_rho = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential_sigmas(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Equal steps in log sigma."""
    return append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def polyexponential_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    """Log sigma falls from log sigma_max to log sigma_min as (1 - ramp)^rho (rho 1: exponential)."""
    ramp = torch.linspace(1, 0, n) ** rho
    return append_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def vp_sigmas(n: int, beta_d: float = 19.9, beta_min: float = 0.1, eps_s: float = 1e-3) -> torch.Tensor:
    """The continuous VP SDE's sigma(t) = sqrt(exp(beta_d t²/2 + beta_min t) - 1) at t from 1 to eps_s."""
    t = torch.linspace(1, eps_s, n)
    return append_zero(torch.sqrt(torch.special.expm1(beta_d * t ** 2 / 2 + beta_min * t)))


def laplace_sigmas(n: int, sigma_min: float, sigma_max: float, mu: float = 0.0, beta: float = 0.5) -> torch.Tensor:
    """log sigma at the quantiles of a Laplace(mu, beta) distribution (Tiankai et al. 2024), clamped to
    [sigma_min, sigma_max]; no final 0 (as ComfyUI)."""
    x = torch.linspace(0, 1, n)
    log_sigma = mu - beta * torch.sign(0.5 - x) * torch.log(1 - 2 * torch.abs(0.5 - x) + 1e-5)
    return torch.clamp(torch.exp(log_sigma), min=sigma_min, max=sigma_max)


def sd_turbo_sigmas(ms: "ModelSampling", steps: int, denoise: float = 1.0) -> torch.Tensor:
    """SD-Turbo's timesteps 999, 899, ... 99: `steps` of them from the one that denoise selects."""
    start = 10 - int(10 * denoise)
    timesteps = torch.flip(torch.arange(1, 11) * 100 - 1, (0,))[start:start + steps]
    return append_zero(ms.sigma(timesteps))


# Align Your Steps (Sabour et al. 2024): NVIDIA's optimised 10-step noise levels per model family
AYS_NOISE_LEVELS = {
    "SD1": [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904,
            0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582],
    "SDXL": [14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141, 0.5550693289,
             0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582],
    "SVD": [700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002],
}


def align_your_steps_sigmas(model_type: str, steps: int, denoise: float = 1.0) -> torch.Tensor:
    """The family's levels, interpolated log-linearly to steps + 1 when needed; denoise < 1 keeps the last
    round(steps * denoise) steps; the last sigma is 0."""
    import numpy as np

    total = steps
    if denoise < 1.0:
        if denoise <= 0.0:
            return torch.zeros(0)
        total = round(steps * denoise)
    levels = np.array(AYS_NOISE_LEVELS[model_type])
    if steps + 1 != len(levels):
        xs = np.linspace(0, 1, len(levels))
        levels = np.exp(np.interp(np.linspace(0, 1, steps + 1), xs, np.log(levels[::-1])))[::-1].copy()
    levels = levels[-(total + 1):]
    levels[-1] = 0
    return torch.FloatTensor(levels)


def kl_optimal_sigmas(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """Equal steps in arctan(sigma) (AYS/"KL optimal", A1111 PR 15608)."""
    ramp = torch.arange(n, dtype=torch.float) / (n - 1) if n > 1 else torch.zeros(1)
    sigmas = torch.zeros(n + 1)
    sigmas[:-1] = (ramp * math.atan(sigma_min) + (1 - ramp) * math.atan(sigma_max)).tan()
    return sigmas


def normal_scheduler(ms: ModelSampling, steps: int, sgm: bool = False) -> torch.Tensor:
    """Timesteps evenly spaced from the last to the first training step (sgm: leaving out the end)."""
    start = ms.timestep(ms.sigma_max)
    end = ms.timestep(ms.sigma_min)
    append = True
    if sgm:
        timesteps = torch.linspace(float(start), float(end), steps + 1)[:-1]
    else:
        if math.isclose(float(ms.sigma(end)), 0, abs_tol=0.00001):  # a schedule reaching sigma 0
            steps += 1
            append = False
        timesteps = torch.linspace(float(start), float(end), steps)
    sigs = [float(ms.sigma(t)) for t in timesteps]
    return torch.tensor(sigs + ([0.0] if append else []), dtype=torch.float32)


def simple_scheduler(ms: ModelSampling, steps: int) -> torch.Tensor:
    """Every (1000/steps)-th training sigma, from the top."""
    stride = len(ms.sigmas) / steps
    sigs = [float(ms.sigmas[-(1 + int(k * stride))]) for k in range(steps)]
    return torch.tensor(sigs + [0.0], dtype=torch.float32)


def ddim_uniform_scheduler(ms: ModelSampling, steps: int) -> torch.Tensor:
    """DDIM's uniform timesteps: training sigmas 1, 1 + k, 1 + 2k, ... (k = 1000 // steps), reversed."""
    sigs: list[float] = []
    index = 1
    if math.isclose(float(ms.sigmas[index]), 0, abs_tol=0.00001):
        steps += 1
    else:
        sigs = [0.0]
    stride = max(len(ms.sigmas) // steps, 1)
    while index < len(ms.sigmas):
        sigs.append(float(ms.sigmas[index]))
        index += stride
    return torch.tensor(sigs[::-1], dtype=torch.float32)


def beta_scheduler(ms: ModelSampling, steps: int, alpha: float = 0.6, beta: float = 0.6) -> torch.Tensor:
    """Timesteps at the quantiles of a Beta(alpha, beta) distribution (Lee et al. 2024, arXiv 2407.12173);
    repeated neighbours are dropped, so it may return fewer steps."""
    import numpy as np
    import scipy.stats

    total = len(ms.sigmas) - 1
    ts = np.rint(scipy.stats.beta.ppf(1 - np.linspace(0, 1, steps, endpoint=False), alpha, beta) * total)
    sigs, last = [], -1.0
    for t in ts:
        if t != last:
            sigs.append(float(ms.sigmas[int(t)]))
        last = t
    return torch.tensor(sigs + [0.0], dtype=torch.float32)


def linear_quadratic_scheduler(ms: ModelSampling, steps: int, threshold_noise: float = 0.025,
                               linear_steps: int | None = None) -> torch.Tensor:
    """Mochi's schedule: linear, then quadratic, in 0..1, scaled by sigma_max."""
    if steps == 1:
        schedule = [1.0, 0.0]
    else:
        linear_steps = steps // 2 if linear_steps is None else linear_steps
        linear = [i * threshold_noise / linear_steps for i in range(linear_steps)]
        diff = linear_steps - threshold_noise * steps
        quadratic_steps = steps - linear_steps
        quad_coef = diff / (linear_steps * quadratic_steps ** 2)
        lin_coef = threshold_noise / linear_steps - 2 * diff / (quadratic_steps ** 2)
        const = quad_coef * (linear_steps ** 2)
        quadratic = [quad_coef * (i ** 2) + lin_coef * i + const for i in range(linear_steps, steps)]
        schedule = [1.0 - v for v in linear + quadratic + [1.0]]
    return torch.tensor(schedule, dtype=torch.float32) * ms.sigma_max


SCHEDULERS: dict[str, Callable[[ModelSampling, int], torch.Tensor]] = {
    "simple": simple_scheduler,
    "sgm_uniform": lambda ms, n: normal_scheduler(ms, n, sgm=True),
    "karras": lambda ms, n: karras_sigmas(n, float(ms.sigma_min), float(ms.sigma_max)),
    "exponential": lambda ms, n: exponential_sigmas(n, float(ms.sigma_min), float(ms.sigma_max)),
    "ddim_uniform": ddim_uniform_scheduler,
    "beta": beta_scheduler,
    "normal": normal_scheduler,
    "linear_quadratic": linear_quadratic_scheduler,
    "kl_optimal": lambda ms, n: kl_optimal_sigmas(n, float(ms.sigma_min), float(ms.sigma_max)),
}
assert list(SCHEDULERS) == SCHEDULER_NAMES


def calculate_sigmas(ms: ModelSampling, scheduler: str, steps: int) -> torch.Tensor:
    try:
        fn = SCHEDULERS[scheduler]
    except KeyError:
        raise ValueError(f"unknown scheduler {scheduler!r}; expected one of {', '.join(SCHEDULER_NAMES)}") from None
    return fn(ms, steps)


def ksampler_sigmas(ms: ModelSampling, sampler: str, scheduler: str, steps: int, denoise: float | None = 1.0) -> torch.Tensor:
    """The sigmas ComfyUI's KSampler runs: denoise < 1 keeps the last `steps` steps of a schedule
    of int(steps / denoise) steps (img2img / SDEdit); denoise <= 0 runs nothing."""

    def plan(n: int) -> torch.Tensor:
        if sampler in DISCARD_PENULTIMATE_SIGMA_SAMPLERS:
            sigmas = calculate_sigmas(ms, scheduler, n + 1)
            return torch.cat([sigmas[:-2], sigmas[-1:]])
        return calculate_sigmas(ms, scheduler, n)

    if denoise is None or denoise > 0.9999:
        return plan(steps)
    if denoise <= 0.0:
        return torch.zeros(0)
    return plan(int(steps / denoise))[-(steps + 1):]


def trim_sigmas(sigmas: torch.Tensor, start_step: int | None = None, last_step: int | None = None,
                force_full_denoise: bool = False) -> torch.Tensor | None:
    """KSamplerAdvanced's step window. None when start_step leaves nothing to run."""
    if last_step is not None and last_step < len(sigmas) - 1:
        sigmas = sigmas[:last_step + 1].clone()
        if force_full_denoise:
            sigmas[-1] = 0
    if start_step is not None:
        if start_step < len(sigmas) - 1:
            sigmas = sigmas[start_step:]
        else:
            return None
    return sigmas
