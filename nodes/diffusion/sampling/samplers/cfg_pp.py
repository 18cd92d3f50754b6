"""CFG++ (Chung et al. 2024, arXiv 2406.08070): the step moves x along the unconditional x0's direction
while landing on the guided x0. Needs the guided denoiser's uncond prediction (UncondTap)."""
from __future__ import annotations

import torch

from .common import (Callback, Model, NoiseSampler, UncondTap, get_ancestral_step, lambda_of, report, setup,
                     sigma_of, to_d)


@torch.no_grad()
def sample_euler_ancestral_cfg_pp(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                                  noise_sampler: NoiseSampler | None = None, seed=None, eta=1.0, s_noise=1.0):
    _, noise_sampler, s_in = setup(x, extra_args, noise_sampler, seed)
    tap = UncondTap(extra_args)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **tap.extra_args)
        report(callback, x, i, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            d = to_d(x, sigmas[i], tap.get())
            sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
            x = denoised + sigma_down * d
            if eta > 0 and s_noise > 0:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def sample_euler_cfg_pp(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None, noise_sampler=None,
                        seed=None):
    return sample_euler_ancestral_cfg_pp(model, x, sigmas, extra_args=extra_args, callback=callback,
                                         noise_sampler=noise_sampler, seed=seed, eta=0.0, s_noise=0.0)


@torch.no_grad()
def sample_dpmpp_2s_ancestral_cfg_pp(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                                     noise_sampler: NoiseSampler | None = None, seed=None, eta=1.0, s_noise=1.0):
    _, noise_sampler, s_in = setup(x, extra_args, noise_sampler, seed)
    tap = UncondTap(extra_args)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **tap.extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        report(callback, x, i, sigmas[i], denoised)
        if sigma_down == 0:
            x = denoised + to_d(x, sigmas[i], tap.get()) * sigma_down
        else:
            t, t_next = lambda_of(sigmas[i]), lambda_of(sigma_down)
            h = t_next - t
            s = t + h / 2
            x_2 = (sigma_of(s) / sigma_of(t)) * (x + (denoised - tap.get())) - (-h / 2).expm1() * denoised
            denoised_2 = model(x_2, sigma_of(s) * s_in, **tap.extra_args)
            x = (sigma_of(t_next) / sigma_of(t)) * (x + (denoised - tap.get())) - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_2m_cfg_pp(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                           noise_sampler=None, seed=None):
    s_in = x.new_ones([x.shape[0]])
    tap = UncondTap(extra_args)
    old_uncond = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **tap.extra_args)
        report(callback, x, i, sigmas[i], denoised)
        uncond = tap.get()
        h = lambda_of(sigmas[i + 1]) - lambda_of(sigmas[i])
        if old_uncond is None or sigmas[i + 1] == 0:
            mix = -torch.exp(-h) * uncond
        else:
            r = (lambda_of(sigmas[i]) - lambda_of(sigmas[i - 1])) / h
            mix = -torch.exp(-h) * uncond - torch.expm1(-h) * (1 / (2 * r)) * (denoised - old_uncond)
        x = denoised + mix + torch.exp(-h) * x
        old_uncond = uncond
    return x
