"""ComfyUI's custom-sampling scheduler and sigma nodes (comfy_extras/nodes_custom_sampler.py,
nodes_align_your_steps.py): each makes or edits a SIGMAS tensor (descending noise levels, usually ending at 0)
for SamplerCustom / SamplerCustomAdvanced. Names, inputs, defaults and ranges are ComfyUI's."""
from __future__ import annotations

import math
import re

import torch

from nodegraph import FLOAT, MODEL, SIGMAS, Boolean, Choice, Float, Input, Int, Output, String, node

from .model_options import model_sampling
from .sampling import SCHEDULER_NAMES, ModelSampling, calculate_sigmas
from .sampling.schedules import (align_your_steps_sigmas, beta_scheduler, exponential_sigmas, karras_sigmas,
                                 laplace_sigmas, polyexponential_sigmas, sd_turbo_sigmas, vp_sigmas)

__all__ = ["AlignYourStepsScheduler", "BasicScheduler", "BetaSamplingScheduler", "ExponentialScheduler",
           "ExtendIntermediateSigmas", "FlipSigmas", "KarrasScheduler", "LaplaceScheduler", "ManualSigmas",
           "PolyexponentialScheduler", "SDTurboScheduler", "SamplingPercentToSigma", "SetFirstSigma",
           "SplitSigmas", "SplitSigmasDenoise", "VPScheduler"]

SCHEDULERS = "sampling/custom_sampling/schedulers"
SIGMA_OPS = "sampling/custom_sampling/sigmas"
SD_SIGMA_MAX, SD_SIGMA_MIN = 14.614642, 0.0291675  # SD's training range, the defaults of the range inputs


def _model_sampling(model) -> ModelSampling:
    return model_sampling(model)  # the model's schedule, or the one a ModelSampling* node put on the handle


def _steps(default: int = 20) -> Input:
    return Int("steps", default, min=1, max=10000)


def _sigma_range() -> list[Input]:
    return [Float("sigma_max", SD_SIGMA_MAX, min=0.0, max=5000.0, step=0.01),
            Float("sigma_min", SD_SIGMA_MIN, min=0.0, max=5000.0, step=0.01)]


@node(category=SCHEDULERS)
class BasicScheduler:
    """The sigmas of a KSampler scheduler for the model; denoise < 1 keeps the last steps of a longer run."""
    inputs = [Input("model", MODEL), Choice("scheduler", SCHEDULER_NAMES), _steps(),
              Float("denoise", 1.0, min=0.0, max=1.0, step=0.01)]
    outputs = [Output("SIGMAS", SIGMAS)]

    def run(self, ctx, model, scheduler, steps, denoise):
        total = steps
        if denoise < 1.0:
            if denoise <= 0.0:
                return (torch.FloatTensor([]),)
            total = int(steps / denoise)
        return (calculate_sigmas(_model_sampling(model), scheduler, total).cpu()[-(steps + 1):],)


@node(category=SCHEDULERS)
class KarrasScheduler:
    """Karras et al.'s schedule: equal steps in sigma^(1/rho)."""
    inputs = [_steps()] + _sigma_range() + [Float("rho", 7.0, min=0.0, max=100.0, step=0.01)]
    outputs = [Output("SIGMAS", SIGMAS)]

    def run(self, ctx, steps, sigma_max, sigma_min, rho):
        return (karras_sigmas(steps, sigma_min, sigma_max, rho),)


@node(category=SCHEDULERS)
class ExponentialScheduler:
    """Equal steps in log sigma."""
    inputs = [_steps()] + _sigma_range()
    outputs = [Output("SIGMAS", SIGMAS)]

    def run(self, ctx, steps, sigma_max, sigma_min):
        return (exponential_sigmas(steps, sigma_min, sigma_max),)


@node(category=SCHEDULERS)
class PolyexponentialScheduler:
    """Log sigma falling as a power rho of the remaining fraction (rho 1: exponential)."""
    inputs = [_steps()] + _sigma_range() + [Float("rho", 1.0, min=0.0, max=100.0, step=0.01)]
    outputs = [Output("SIGMAS", SIGMAS)]

    def run(self, ctx, steps, sigma_max, sigma_min, rho):
        return (polyexponential_sigmas(steps, sigma_min, sigma_max, rho),)


@node(category=SCHEDULERS)
class LaplaceScheduler:
    """Log sigma at the quantiles of a Laplace distribution: steps concentrated around exp(mu)."""
    inputs = [_steps()] + _sigma_range() + [Float("mu", 0.0, min=-10.0, max=10.0, step=0.1),
                                            Float("beta", 0.5, min=0.0, max=10.0, step=0.1)]
    outputs = [Output("SIGMAS", SIGMAS)]

    def run(self, ctx, steps, sigma_max, sigma_min, mu, beta):
        return (laplace_sigmas(steps, sigma_min, sigma_max, mu, beta),)


@node(category=SCHEDULERS)
class SDTurboScheduler:
    """SD-Turbo's timesteps (999, 899, ...) for 1 to 10 steps; denoise picks where to start."""
    inputs = [Input("model", MODEL), Int("steps", 1, min=1, max=10), Float("denoise", 1.0, min=0.0, max=1.0, step=0.01)]
    outputs = [Output("SIGMAS", SIGMAS)]

    def run(self, ctx, model, steps, denoise):
        return (sd_turbo_sigmas(_model_sampling(model), steps, denoise),)


@node(category=SCHEDULERS)
class BetaSamplingScheduler:
    """The beta scheduler with its alpha and beta exposed."""
    inputs = [Input("model", MODEL), _steps(), Float("alpha", 0.6, min=0.0, max=50.0, step=0.01),
              Float("beta", 0.6, min=0.0, max=50.0, step=0.01)]
    outputs = [Output("SIGMAS", SIGMAS)]

    def run(self, ctx, model, steps, alpha, beta):
        return (beta_scheduler(_model_sampling(model), steps, alpha=alpha, beta=beta),)


@node(category=SCHEDULERS)
class VPScheduler:
    """The continuous VP SDE's noise levels."""
    inputs = [_steps(), Float("beta_d", 19.9, min=0.0, max=5000.0, step=0.01),
              Float("beta_min", 0.1, min=0.0, max=5000.0, step=0.01),
              Float("eps_s", 0.001, min=0.0, max=1.0, step=0.0001)]
    outputs = [Output("SIGMAS", SIGMAS)]

    def run(self, ctx, steps, beta_d, beta_min, eps_s):
        return (vp_sigmas(steps, beta_d, beta_min, eps_s),)


@node(category=SCHEDULERS)
class AlignYourStepsScheduler:
    """NVIDIA's Align Your Steps noise levels for SD1, SDXL or SVD, interpolated to the step count."""
    inputs = [Choice("model_type", ["SD1", "SDXL", "SVD"]), _steps(10),
              Float("denoise", 1.0, min=0.0, max=1.0, step=0.01)]
    outputs = [Output("SIGMAS", SIGMAS)]

    def run(self, ctx, model_type, steps, denoise):
        return (align_your_steps_sigmas(model_type, steps, denoise),)


# --- editing sigmas ---------------------------------------------------------------------------------

@node(category=SIGMA_OPS)
class SplitSigmas:
    """Split at a step: high_sigmas run steps 0..step, low_sigmas the rest (they share sigmas[step])."""
    inputs = [Input("sigmas", SIGMAS), Int("step", 0, min=0, max=10000)]
    outputs = [Output("high_sigmas", SIGMAS), Output("low_sigmas", SIGMAS)]

    def run(self, ctx, sigmas, step):
        return sigmas[:step + 1], sigmas[step:]


@node(category=SIGMA_OPS)
class SplitSigmasDenoise:
    """Split so that low_sigmas keeps the last round(steps * denoise) steps."""
    inputs = [Input("sigmas", SIGMAS), Float("denoise", 1.0, min=0.0, max=1.0, step=0.01)]
    outputs = [Output("high_sigmas", SIGMAS), Output("low_sigmas", SIGMAS)]

    def run(self, ctx, sigmas, denoise):
        steps = max(sigmas.shape[-1] - 1, 0)
        total = round(steps * denoise)
        return sigmas[:-total], sigmas[-(total + 1):]  # total 0: nothing high, as ComfyUI slices


@node(category=SIGMA_OPS)
class FlipSigmas:
    """Reverse the sigmas (for unsampling: noise an image back up); a leading 0 becomes 0.0001."""
    inputs = [Input("sigmas", SIGMAS)]
    outputs = [Output("SIGMAS", SIGMAS)]

    def run(self, ctx, sigmas):
        if len(sigmas) == 0:
            return (sigmas,)
        sigmas = sigmas.flip(0)
        if sigmas[0] == 0:
            sigmas[0] = 0.0001
        return (sigmas,)


@node(category=SIGMA_OPS)
class SetFirstSigma:
    """Replace the first sigma."""
    inputs = [Input("sigmas", SIGMAS), Float("sigma", 136.0, min=0.0, max=20000.0, step=0.001)]
    outputs = [Output("SIGMAS", SIGMAS)]

    def run(self, ctx, sigmas, sigma):
        sigmas = sigmas.clone()
        sigmas[0] = sigma
        return (sigmas,)


_SPACINGS = {"linear": lambda x: x, "cosine": lambda x: torch.sin(x * math.pi / 2),
             "sine": lambda x: 1 - torch.cos(x * math.pi / 2)}


@node(category=SIGMA_OPS)
class ExtendIntermediateSigmas:
    """Insert steps - 1 sigmas inside every step whose sigma lies in [end_at_sigma, start_at_sigma]
    (start -1: no upper bound), spaced linearly, or eased (cosine: denser at the end, sine: at the start)."""
    inputs = [Input("sigmas", SIGMAS), Int("steps", 2, min=1, max=100),
              Float("start_at_sigma", -1.0, min=-1.0, max=20000.0, step=0.01),
              Float("end_at_sigma", 12.0, min=0.0, max=20000.0, step=0.01),
              Choice("spacing", ["linear", "cosine", "sine"])]
    outputs = [Output("SIGMAS", SIGMAS)]

    def run(self, ctx, sigmas, steps, start_at_sigma, end_at_sigma, spacing):
        upper = float("inf") if start_at_sigma < 0 else start_at_sigma
        fractions = _SPACINGS[spacing](torch.linspace(0, 1, steps + 1, device=sigmas.device)[1:-1])
        extended: list[float] = []
        for current, following in zip(sigmas[:-1], sigmas[1:]):
            extended.append(float(current))
            if end_at_sigma <= current <= upper:
                extended.extend((fractions * (following - current) + current).tolist())
        if len(sigmas) > 0:
            extended.append(float(sigmas[-1]))
        return (torch.FloatTensor(extended),)


@node(category=SIGMA_OPS)
class SamplingPercentToSigma:
    """The model's sigma at a fraction of the sampling run (0 = start); the interval-check values at 0 and 1
    unless return_actual_sigma."""
    inputs = [Input("model", MODEL), Float("sampling_percent", 0.0, min=0.0, max=1.0, step=0.0001),
              Boolean("return_actual_sigma", False, tooltip="Return the actual sigma value instead of the value "
                      "used for interval checks.\nThis only affects results at 0.0 and 1.0.")]
    outputs = [Output("sigma_value", FLOAT)]

    def run(self, ctx, model, sampling_percent, return_actual_sigma):
        ms = _model_sampling(model)
        sigma = ms.percent_to_sigma(sampling_percent)
        if return_actual_sigma and sampling_percent == 0.0:
            sigma = float(ms.sigma_max)
        elif return_actual_sigma and sampling_percent == 1.0:
            sigma = float(ms.sigma_min)
        return (sigma,)


@node(category="_for_testing/custom_sampling")
class ManualSigmas:
    """Sigmas typed as a list of numbers ("14.6, 7, 3, 0")."""
    inputs = [String("sigmas", "1, 0.5")]
    outputs = [Output("SIGMAS", SIGMAS)]

    def run(self, ctx, sigmas):
        return (torch.FloatTensor([float(v) for v in re.findall(r"[-+]?(?:\d*\.*\d+)", sigmas)]),)
