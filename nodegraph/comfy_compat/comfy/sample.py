"""ComfyUI's comfy.sample: prepare_noise, fix_empty_latent_channels, sample (KSampler's run on tensors) and
sample_custom (a SAMPLER and sigmas), on the diffusion pack's sampling (model_surface.py)."""
from __future__ import annotations

import torch

from ..model_surface import service
from ..surface import unsupported


def prepare_noise(latent_image: torch.Tensor, seed: int, noise_inds=None) -> torch.Tensor:
    """KSampler's initial noise: CPU, float32 draws of the seed, per batch_index when given."""
    return service().sampling.prepare_noise(latent_image, seed, noise_inds)


def fix_empty_latent_channels(model, latent_image: torch.Tensor) -> torch.Tensor:
    return service().sampling.fix_empty_latent_channels_of(model, latent_image)


def sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise=1.0,
           disable_noise=False, start_step=None, last_step=None, force_full_denoise=False, noise_mask=None,
           sigmas=None, callback=None, disable_pbar=False, seed=None) -> torch.Tensor:
    """Raw latent in, raw latent out (CPU), as ComfyUI's comfy.sample.sample."""
    from .samplers import KSampler

    sampler = KSampler(model, steps=steps, sampler=sampler_name, scheduler=scheduler, denoise=denoise)
    return sampler.sample(noise, positive, negative, cfg=cfg, latent_image=latent_image, start_step=start_step,
                          last_step=last_step, force_full_denoise=force_full_denoise, denoise_mask=noise_mask,
                          sigmas=sigmas, callback=callback, disable_pbar=disable_pbar, seed=seed)


def sample_custom(model, noise, cfg, sampler, sigmas, positive, negative, latent_image, noise_mask=None,
                  callback=None, disable_pbar=False, seed=None) -> torch.Tensor:
    sampling = service().sampling
    return sampling.guided_sample(model, noise, sampling.cfg_guidance(positive, negative, cfg), sampler, sigmas,
                                  latent_image, noise_mask, callback, seed, what="comfy.sample.sample_custom")


__getattr__ = unsupported(__name__)
