"""Several jobs' KSampler runs sampled as one batch, each with its own seed, prompt and CFG.

Used through ctx.batch (nodegraph/batching.py) when queued jobs are run together. Each job's
image must be the one it gets alone, so only runs that differ in what stays per row are merged:
the same model handle (weights, patches, no sampler hooks), latent shape and step window, sampler
and scheduler; per job the initial noise (its seed), the text conditioning (one entry, contexts of
equal length) and the CFG scale. The merged run is the single run's pipeline on the concatenated
latent: noise per seed, conditioning stacked row by row, CFG as a per-row scale. Samplers that
draw noise during sampling (ancestral, SDE) would draw it for the whole batch from one seed, so they
are not merged; neither are masks, areas, ControlNets or timestep ranges (their extras are objects).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from nodegraph import repeat_to_batch

from .guidance import calc_cond_batch
from .noise import prepare_noise
from .pipeline import fix_empty_latent_channels, sample_guided
from .samplers import sampler_object
from .schedules import ModelSampling, ksampler_sigmas, trim_sigmas

# samplers whose steps are a function of the model's predictions only (no noise, no seed)
NOISE_FREE_SAMPLERS = frozenset({"euler", "heun", "dpm_2", "lms", "dpmpp_2m", "ddim"})
_PLAIN = (int, float, str, bool, type(None))


@dataclass
class SamplerRun:
    """One job's KSampler call; `callback(step, x0, x, total)` and `check_interrupt` are its own."""

    model: Any  # the MODEL handle
    seed: int
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    positive: list
    negative: list
    latent: dict
    denoise: float = 1.0
    disable_noise: bool = False
    start_step: int | None = None
    last_step: int | None = None
    force_full_denoise: bool = False
    callback: Callable | None = None
    check_interrupt: Callable[[], None] | None = None
    ctx: Any = None  # the node's context (progress, previews, device manager)


def _cond_signature(conditioning) -> tuple | None:
    """What must be equal for two conditionings to be stacked row by row; None if this one can't be."""
    if not isinstance(conditioning, (list, tuple)) or len(conditioning) != 1:
        return None
    context, extras = conditioning[0][0], dict(conditioning[0][1] or {})
    plain = []
    for key, value in sorted(extras.items()):
        if key == "pooled_output" and isinstance(value, torch.Tensor):
            plain.append((key, tuple(value.shape[1:])))
        elif isinstance(value, _PLAIN) or (isinstance(value, tuple) and all(isinstance(v, _PLAIN) for v in value)):
            plain.append((key, value))
        else:  # masks, ControlNets, unCLIP or concat images: per-job objects
            return None
    return tuple(context.shape[1:]), str(context.dtype), tuple(plain)


def batch_key(run: SamplerRun) -> tuple | None:
    """Runs with equal keys can be sampled together; None: this run is sampled alone."""
    if run.sampler_name not in NOISE_FREE_SAMPLERS or run.model.info.get("model_options"):
        return None
    samples = run.latent.get("samples")
    if not isinstance(samples, torch.Tensor) or run.latent.get("noise_mask") is not None:
        return None
    positive, negative = _cond_signature(run.positive), _cond_signature(run.negative)
    if positive is None or negative is None:
        return None
    return ("KSampler", id(run.model), tuple(samples.shape[1:]), str(samples.dtype),
            bool(torch.count_nonzero(samples) == 0), run.steps, run.sampler_name, run.scheduler, float(run.denoise),
            run.disable_noise, run.start_step, run.last_step, run.force_full_denoise,
            math.isclose(run.cfg, 1.0), positive, negative)


def _stack(conds: list[list], sizes: list[int]) -> list:
    """One conditioning entry whose row i is the entry of the job owning latent row i."""
    contexts = [repeat_to_batch(c[0][0], b) for c, b in zip(conds, sizes)]
    extras = dict(conds[0][0][1] or {})
    if extras.get("pooled_output") is not None:
        extras["pooled_output"] = torch.cat([repeat_to_batch(c[0][1]["pooled_output"], b)
                                             for c, b in zip(conds, sizes)])
    return [(torch.cat(contexts), extras)]


class RowCFGGuidance:
    """CFGGuidance with a scale per latent row: uncond + cfg_row (cond - uncond). Without hooks (batch_key
    refuses them) this is cfg_function's formula, row by row, so each row equals its job run alone."""

    def __init__(self, positive: list, negative: list, cfg_rows: torch.Tensor, skip_uncond: bool) -> None:
        self.positive, self.negative, self.cfg_rows, self.skip_uncond = positive, negative, cfg_rows, skip_uncond

    @property
    def conds(self) -> dict[str, list]:
        return {"positive": self.positive, "negative": self.negative}

    def denoiser(self, apply_fn, sides, model_options):
        positive, negative = sides["positive"], None if self.skip_uncond else sides["negative"]
        cfg_rows = self.cfg_rows

        def guided(x: torch.Tensor, sigma: torch.Tensor, model_options: dict | None = None, **_: Any) -> torch.Tensor:
            cond, uncond = calc_cond_batch(apply_fn, [positive, negative], x, sigma, model_options)
            return uncond + (cond - uncond) * cfg_rows.to(x.device)

        return guided


def sample_runs_together(model, runs: list[SamplerRun]) -> list:
    """common_ksampler for runs with equal batch_key, in one batch: a LATENT dict (or the Exception that
    stopped it, e.g. its interrupt) per run."""
    ms = ModelSampling.for_model(model)
    first = runs[0]
    latents = [fix_empty_latent_channels(model, r.latent["samples"]) for r in runs]
    sizes = [lat.shape[0] for lat in latents]
    rows = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    sigmas = ksampler_sigmas(ms, first.sampler_name, first.scheduler, first.steps, first.denoise)
    sigmas = trim_sigmas(sigmas, first.start_step, first.last_step, first.force_full_denoise)
    if sigmas is None:  # the window starts after the last step: nothing to do
        return [{**r.latent, "samples": lat.cpu()} for r, lat in zip(runs, latents)]
    noise = torch.cat([torch.zeros(lat.shape, dtype=lat.dtype) if r.disable_noise
                       else prepare_noise(lat, r.seed, r.latent.get("batch_index")) for r, lat in zip(runs, latents)])
    cfg_rows = torch.cat([torch.full((b,), float(r.cfg), dtype=torch.float32) for r, b in zip(runs, sizes)])
    guidance = RowCFGGuidance(_stack([r.positive for r in runs], sizes), _stack([r.negative for r in runs], sizes),
                              cfg_rows.reshape(-1, 1, 1, 1), math.isclose(first.cfg, 1.0))
    stopped: list[Exception | None] = [None] * len(runs)

    def each_job(step: int, x0: torch.Tensor, x: torch.Tensor, total: int) -> None:
        for i, run in enumerate(runs):  # progress, previews and interrupts stay per job
            if run.callback is not None and stopped[i] is None:
                try:
                    run.callback(step, x0[rows[i]:rows[i + 1]], x[rows[i]:rows[i + 1]], total)
                except Exception as exc:
                    stopped[i] = exc

    def check_interrupt() -> None:
        for i, run in enumerate(runs):
            if run.check_interrupt is not None and stopped[i] is None:
                try:
                    run.check_interrupt()
                except Exception as exc:
                    stopped[i] = exc
        if all(s is not None for s in stopped):  # nobody waits for the rest any more
            raise stopped[0]

    samples = sample_guided(model, noise, guidance, sampler_object(first.sampler_name), sigmas, torch.cat(latents),
                            seed=first.seed, callback=each_job, check_interrupt=check_interrupt, ms=ms)
    return [stopped[i] if stopped[i] is not None
            else {**run.latent, "samples": samples[rows[i]:rows[i + 1]].to("cpu", copy=True)}
            for i, run in enumerate(runs)]
