"""ComfyUI's custom sampling (comfy_extras/nodes_custom_sampler.py): sampling split into typed parts.

    NOISE  (RandomNoise, DisableNoise)        the initial noise
    GUIDER (CFGGuider, BasicGuider, DualCFGGuider)  the model and how conditionings guide it
    SAMPLER (KSamplerSelect, Sampler* option nodes) the integration method
    SIGMAS (the scheduler nodes)              the noise levels
    SamplerCustom / SamplerCustomAdvanced     put them together; outputs "output" and "denoised_output"
                                              (the last step's x0), both LATENT.

With equal settings they give KSampler's sigmas and images (same noise, guidance and sampler code).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nodegraph import CONDITIONING, LATENT, MODEL, NOISE, SIGMAS, Boolean, Choice, Float, Input, Output, Seed, node

from .model_options import sampling_model
from .sampler_nodes import step_reporter
from .sampling import (CFGGuidance, DualCFGGuidance, EmptyNoise, RandomNoise as RandomNoiseSource,
                       fix_empty_latent_channels, sample_guided)
from .sampling_types import GUIDER, SAMPLER

__all__ = ["BasicGuider", "CFGGuider", "DisableNoise", "DualCFGGuider", "Guider", "RandomNoise", "SamplerCustom",
           "SamplerCustomAdvanced"]

CUSTOM = "sampling/custom_sampling"


@dataclass
class Guider:
    """A GUIDER: the MODEL handle and its guidance (sampling.guiders)."""

    model: Any
    guidance: Any


def _cfg(default: float = 8.0, name: str = "cfg") -> Input:
    return Float(name, default, min=0.0, max=100.0, step=0.1)


def sample_custom(ctx, model, noise, guidance, sampler, sigmas: torch.Tensor, latent_image: dict, seed):
    """(output, denoised_output) LATENTs: sample on the model's device, reporting progress and previews."""
    with ctx.devices.use(model) as diffusion:
        diffusion = sampling_model(diffusion, model)  # with the handle's model-sampling / latent-format patches
        latent = dict(latent_image)
        latent["samples"] = fix_empty_latent_channels(diffusion, latent["samples"])
        last_x0: dict = {}
        with torch.no_grad():  # not inference_mode: later nodes may update the latent in place
            samples = sample_guided(diffusion, noise.generate_noise(latent), guidance, sampler, sigmas,
                                    latent["samples"], denoise_mask=latent.get("noise_mask"), seed=seed,
                                    callback=step_reporter(ctx, diffusion.latent_format, last_x0),
                                    check_interrupt=ctx.check_interrupt,
                                    model_options=model.info.get("model_options"))
        out = dict(latent)
        out["samples"] = samples.cpu()
        denoised = out
        if "x0" in last_x0:
            denoised = dict(latent)
            denoised["samples"] = diffusion.latent_format.process_out(last_x0["x0"].cpu())
    return out, denoised


@node(category=CUSTOM)
class SamplerCustom:
    """Sample with a chosen sampler and sigmas, CFG-guided; also returns the last step's denoised estimate."""
    inputs = [Input("model", MODEL), Boolean("add_noise", True), Seed("noise_seed"), _cfg(),
              Input("positive", CONDITIONING), Input("negative", CONDITIONING), Input("sampler", SAMPLER),
              Input("sigmas", SIGMAS), Input("latent_image", LATENT)]
    outputs = [Output("output", LATENT), Output("denoised_output", LATENT)]

    def run(self, ctx, model, add_noise, noise_seed, cfg, positive, negative, sampler, sigmas, latent_image):
        noise = RandomNoiseSource(noise_seed) if add_noise else EmptyNoise()
        return sample_custom(ctx, model, noise, CFGGuidance(positive, negative, cfg), sampler, sigmas,
                             latent_image, seed=noise_seed)


@node(category=CUSTOM)
class SamplerCustomAdvanced:
    """Sample with separate noise, guider, sampler and sigmas."""
    inputs = [Input("noise", NOISE), Input("guider", GUIDER), Input("sampler", SAMPLER), Input("sigmas", SIGMAS),
              Input("latent_image", LATENT)]
    outputs = [Output("output", LATENT), Output("denoised_output", LATENT)]

    def run(self, ctx, noise, guider, sampler, sigmas, latent_image):
        return sample_custom(ctx, guider.model, noise, guider.guidance, sampler, sigmas, latent_image,
                             seed=noise.seed)


@node(category=CUSTOM + "/guiders")
class CFGGuider:
    """Classifier-free guidance of the positive over the negative conditioning."""
    inputs = [Input("model", MODEL), Input("positive", CONDITIONING), Input("negative", CONDITIONING), _cfg()]
    outputs = [Output("GUIDER", GUIDER)]

    def run(self, ctx, model, positive, negative, cfg):
        return (Guider(model, CFGGuidance(positive, negative, cfg)),)


@node(category=CUSTOM + "/guiders")
class BasicGuider:
    """The conditioning alone, no negative (for models without CFG, or cfg 1)."""
    inputs = [Input("model", MODEL), Input("conditioning", CONDITIONING)]
    outputs = [Output("GUIDER", GUIDER)]

    def run(self, ctx, model, conditioning):
        return (Guider(model, CFGGuidance(conditioning)),)


@node(category=CUSTOM + "/guiders")
class DualCFGGuider:
    """Guidance with two scales: cond1 over cond2 (cfg_conds) and cond2 over the negative (cfg_cond2_negative)."""
    inputs = [Input("model", MODEL), Input("cond1", CONDITIONING), Input("cond2", CONDITIONING),
              Input("negative", CONDITIONING), _cfg(8.0, "cfg_conds"), _cfg(8.0, "cfg_cond2_negative"),
              Choice("style", ["regular", "nested"])]
    outputs = [Output("GUIDER", GUIDER)]

    def run(self, ctx, model, cond1, cond2, negative, cfg_conds, cfg_cond2_negative, style):
        guidance = DualCFGGuidance(cond1, cond2, negative, cfg_conds, cfg_cond2_negative, nested=style == "nested")
        return (Guider(model, guidance),)


@node(category=CUSTOM + "/noise")
class RandomNoise:
    """The initial noise of a seed (as KSampler draws it)."""
    inputs = [Seed("noise_seed")]
    outputs = [Output("NOISE", NOISE)]

    def run(self, ctx, noise_seed):
        return (RandomNoiseSource(noise_seed),)


@node(category=CUSTOM + "/noise")
class DisableNoise:
    """No initial noise: sample the latent as it is (e.g. the second stage of a split run)."""
    inputs: list = []
    outputs = [Output("NOISE", NOISE)]

    def run(self, ctx):
        return (EmptyNoise(),)
