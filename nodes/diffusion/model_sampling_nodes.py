"""ComfyUI's model-sampling nodes (comfy_extras/nodes_model_advanced.py): a MODEL with another noise schedule and
prediction type, for checkpoints whose own ones the loader cannot know (v-prediction SD1 fine-tunes, zero-
terminal-SNR models, LCM distillations, EDM models such as CosXL or Playground v2.5).

Each returns a new handle with an object patch "model_sampling" (and "latent_format" for Playground v2.5);
the shared model is unchanged (model_options.py). Schedulers, samplers and ControlNets read the patched
schedule (timestep = what the U-Net is given for a sigma; calculate_denoised = how its output becomes x0).
"""
from __future__ import annotations

from nodegraph import MODEL, Boolean, Choice, Float, Input, Output, node

from .model_options import patched
from .models import PLAYGROUND_2_5_LATENT_FORMAT
from .sampling.model_sampling import (ContinuousEDMSampling, ContinuousVSampling, CosmosRFlowSampling,
                                      DiscreteSampling, DistilledDiscreteSampling)

__all__ = ["ModelSamplingContinuousEDM", "ModelSamplingContinuousV", "ModelSamplingDiscrete"]

CATEGORY = "advanced/model"
# ComfyUI's choice -> our prediction type
DISCRETE_PREDICTIONS = {"eps": "eps", "v_prediction": "v", "lcm": "lcm", "x0": "x0", "img_to_img": "img_to_img"}


def _sigma(name: str, default: float) -> Input:
    return Float(name, default, min=0.0, max=1000.0, step=0.001)


def _positive_range(node: str, sigma_max: float, sigma_min: float) -> None:
    if sigma_min <= 0 or sigma_max <= 0:
        bad = "sigma_min" if sigma_min <= 0 else "sigma_max"
        raise ValueError(f"{node}: {bad} must be above 0 (the schedule is spaced in log sigma), got "
                         f"{sigma_min if bad == 'sigma_min' else sigma_max}")


@node(category=CATEGORY)
class ModelSamplingDiscrete:
    """Sample the model as a discrete-time model of another prediction type (eps, v, LCM, x0 ...), optionally
    with its schedule rescaled to zero terminal SNR."""
    inputs = [Input("model", MODEL), Choice("sampling", list(DISCRETE_PREDICTIONS)), Boolean("zsnr", False)]
    outputs = [Output("MODEL", MODEL)]

    def run(self, ctx, model, sampling, zsnr):
        alphas_cumprod = getattr(model.module, "alphas_cumprod", None)
        kind = DistilledDiscreteSampling if sampling == "lcm" else DiscreteSampling
        return (patched(model, model_sampling=kind(alphas_cumprod, DISCRETE_PREDICTIONS[sampling], zsnr=zsnr)),)


@node(category=CATEGORY)
class ModelSamplingContinuousEDM:
    """Sample the model as a continuous-time EDM-style model (CosXL, Playground v2.5 ...) over
    [sigma_min, sigma_max]."""
    inputs = [Input("model", MODEL),
              Choice("sampling", ["v_prediction", "edm", "edm_playground_v2.5", "eps", "cosmos_rflow"]),
              _sigma("sigma_max", 120.0), _sigma("sigma_min", 0.002)]
    outputs = [Output("MODEL", MODEL)]

    def run(self, ctx, model, sampling, sigma_max, sigma_min):
        _positive_range("ModelSamplingContinuousEDM", sigma_max, sigma_min)
        objects = {}
        if sampling == "cosmos_rflow":
            ms = CosmosRFlowSampling(sigma_min, sigma_max, 1.0)
        else:
            prediction = {"v_prediction": "v", "eps": "eps"}.get(sampling, "edm")
            sigma_data = 0.5 if prediction == "edm" else 1.0
            ms = ContinuousEDMSampling(sigma_min, sigma_max, sigma_data, prediction)
            if sampling == "edm_playground_v2.5":
                objects["latent_format"] = PLAYGROUND_2_5_LATENT_FORMAT
        return (patched(model, model_sampling=ms, **objects),)


@node(category=CATEGORY)
class ModelSamplingContinuousV:
    """Sample the model as a continuous-time v-prediction model (timestep = 2 atan(sigma) / pi)."""
    inputs = [Input("model", MODEL), Choice("sampling", ["v_prediction"]), _sigma("sigma_max", 500.0),
              _sigma("sigma_min", 0.03)]
    outputs = [Output("MODEL", MODEL)]

    def run(self, ctx, model, sampling, sigma_max, sigma_min):
        _positive_range("ModelSamplingContinuousV", sigma_max, sigma_min)
        return (patched(model, model_sampling=ContinuousVSampling(sigma_min, sigma_max, 1.0, "v")),)
