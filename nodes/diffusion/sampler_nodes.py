"""Sampler nodes with ComfyUI's names, inputs, choices and defaults: KSampler, KSamplerAdvanced.

The MODEL is a device-managed handle of a DiffusionModel (models.py); the sampling itself is
nodes.diffusion.sampling.common_ksampler. Each step reports progress (which is also where an
interrupt stops the run) and, when the job wants previews, a cheap one: the step's x0 projected to
RGB by the model's latent format, no VAE. A handle may carry ComfyUI-style model options (CFG hooks,
U-Net patches) and object patches (model sampling, latent format); see model_options.py.
"""
from __future__ import annotations

import torch

from nodegraph import CONDITIONING, LATENT, MODEL, Choice, Float, Input, Int, Output, Seed, node

from .model_options import sampling_model
from .previews import StepPreviews
from .sampling import SAMPLER_NAMES, SCHEDULER_NAMES, common_ksampler
from .sampling.jobs_batch import SamplerRun, batch_key, sample_runs_together

__all__ = ["KSampler", "KSamplerAdvanced"]

MAX_STEPS = 10000


def _inputs_head(seed_name: str) -> list[Input]:
    return [
        Input("model", MODEL, tooltip="The diffusion model that denoises the latent."),
        Seed(seed_name, tooltip="Seed of the initial noise (and of the noise of ancestral/SDE samplers)."),
        Int("steps", 20, min=1, max=MAX_STEPS, tooltip="Denoising steps."),
        Float("cfg", 8.0, min=0.0, max=100.0, step=0.1,
              tooltip="Classifier-free guidance scale: how strongly the prompt is followed."),
        Choice("sampler_name", SAMPLER_NAMES, tooltip="The algorithm that integrates the denoising."),
        Choice("scheduler", SCHEDULER_NAMES, tooltip="How the noise levels of the steps are spaced."),
        Input("positive", CONDITIONING, tooltip="What the image should show."),
        Input("negative", CONDITIONING, tooltip="What the image should not show."),
        Input("latent_image", LATENT, tooltip="The latent to denoise (EmptyLatentImage for text-to-image)."),
    ]


PREVIEW_METHODS = ("none", "auto", "latent2rgb", "taesd")  # ComfyUI's LatentPreviewMethod values
PREVIEW_SIZE = 512  # ComfyUI's --preview-size default


def previews_wanted(ctx) -> bool:
    """ComfyUI's choice of preview (latent_preview.set_preview_method): the prompt's
    extra_data["preview_method"], unless absent, "default" or unknown; then the server's default,
    which the server puts in extra["default_preview_method"] ("none" for ComfyUI's routes, as
    ComfyUI's --preview-method; jobs that carry neither, e.g. our own API's, preview). auto,
    latent2rgb and taesd all project x0 with the latent format's factors: no TAESD decoder ships."""
    method = ctx.extra.get("preview_method")
    if method not in PREVIEW_METHODS:
        method = ctx.extra.get("default_preview_method")
    return method != "none"


def step_reporter(ctx, latent_format, last_x0: dict | None = None):
    """A sampling callback that reports progress, with a preview of the step's x0 when the job wants
    previews (a JPEG fitted to 512 pixels, as ComfyUI's prepare_callback), and keeps the last x0."""
    if not previews_wanted(ctx):
        return StepPreviews(ctx.progress, None, latent_format, last_x0)
    return StepPreviews(ctx.progress, lambda image: ctx.preview(image, "JPEG", PREVIEW_SIZE), latent_format, last_x0)


def run_sampler(ctx, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
                denoise=1.0, disable_noise=False, start_step=None, last_step=None, force_full_denoise=False) -> dict:
    """Sample on the model's device, reporting progress and previews through ctx. When jobs run together
    (nodegraph/batching.py), runs that can share a batch are sampled as one (sampling/jobs_batch.py)."""
    run = SamplerRun(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise,
                     disable_noise, start_step, last_step, force_full_denoise, check_interrupt=ctx.check_interrupt, ctx=ctx)
    return ctx.batch(batch_key(run), run, _sample_runs)


def _sample_runs(runs: list[SamplerRun]) -> list:
    first = runs[0]
    with first.ctx.devices.use(first.model) as diffusion:
        diffusion = sampling_model(diffusion, first.model)  # with the handle's model-sampling / latent-format patches
        for run in runs:
            run.callback = step_reporter(run.ctx, diffusion.latent_format)
        with torch.no_grad():  # not inference_mode: later nodes may update the latent in place
            if len(runs) > 1:
                return sample_runs_together(diffusion, runs)
            return [common_ksampler(diffusion, first.seed, first.steps, first.cfg, first.sampler_name, first.scheduler,
                                    first.positive, first.negative, first.latent, denoise=first.denoise,
                                    disable_noise=first.disable_noise, start_step=first.start_step,
                                    last_step=first.last_step, force_full_denoise=first.force_full_denoise,
                                    callback=first.callback, check_interrupt=first.check_interrupt,
                                    model_options=first.model.info.get("model_options"))]


@node(category="sampling")
class KSampler:
    """Denoise a latent with a diffusion model, guided by positive and negative conditioning."""
    inputs = _inputs_head("seed") + [
        Float("denoise", 1.0, min=0.0, max=1.0, step=0.01,
              tooltip="How much of the latent is replaced: below 1 keeps the structure of the input (img2img)."),
    ]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
            denoise=1.0):
        return (run_sampler(ctx, model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                            latent_image, denoise=denoise),)


@node(category="sampling")
class KSamplerAdvanced:
    """KSampler over a window of the steps, with or without adding noise (for multi-stage sampling)."""
    inputs = [Input("model", MODEL), Choice("add_noise", ["enable", "disable"])] + _inputs_head("noise_seed")[1:] + [
        Int("start_at_step", 0, min=0, max=MAX_STEPS),
        Int("end_at_step", 10000, min=0, max=MAX_STEPS),
        Choice("return_with_leftover_noise", ["disable", "enable"]),
    ]
    outputs = [Output("LATENT", LATENT)]

    def run(self, ctx, model, add_noise, noise_seed, steps, cfg, sampler_name, scheduler, positive, negative,
            latent_image, start_at_step, end_at_step, return_with_leftover_noise):
        return (run_sampler(ctx, model, noise_seed, steps, cfg, sampler_name, scheduler, positive, negative,
                            latent_image, disable_noise=add_noise == "disable",
                            start_step=start_at_step, last_step=end_at_step,
                            force_full_denoise=return_with_leftover_noise != "enable"),)
