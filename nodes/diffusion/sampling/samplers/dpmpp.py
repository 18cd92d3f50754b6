"""DPM-Solver++ (Lu et al. 2022, arXiv 2211.01095) in lambda = -log sigma: 2S ancestral, SDE (single step,
Brownian noise), 2M, 2M SDE (midpoint / heun correction) and 3M SDE."""
from __future__ import annotations

import torch

from .common import (Callback, Model, NoiseSampler, brownian_noise, get_ancestral_step, lambda_of, report, setup,
                     sigma_of, to_d)


@torch.no_grad()
def sample_dpmpp_2s_ancestral(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                              noise_sampler: NoiseSampler | None = None, seed=None, eta=1.0, s_noise=1.0):
    extra_args, noise_sampler, s_in = setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        report(callback, x, i, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:  # single-step second order: a half step in lambda, then the full step from its x0
            t, t_next = lambda_of(sigmas[i]), lambda_of(sigma_down)
            h = t_next - t
            s = t + h / 2
            x_2 = (sigma_of(s) / sigma_of(t)) * x - (-h / 2).expm1() * denoised
            denoised_2 = model(x_2, sigma_of(s) * s_in, **extra_args)
            x = (sigma_of(t_next) / sigma_of(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x



@torch.no_grad()
def sample_dpmpp_sde(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                     noise_sampler: NoiseSampler | None = None, seed=None, eta=1.0, s_noise=1.0, r=1 / 2,
                     cpu_noise: bool = True):
    """DPM-Solver++ (stochastic, single step): an ancestral sub-step to lambda_s + r h, then the full step."""
    if len(sigmas) <= 1:
        return x
    extra_args = extra_args or {}
    noise_sampler = brownian_noise(x, sigmas, noise_sampler, seed, cpu_noise)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lambda_s, lambda_t = lambda_of(sigmas[i]), lambda_of(sigmas[i + 1])
        h = lambda_t - lambda_s
        lambda_s1 = lambda_s + r * h
        fac = 1 / (2 * r)
        sigma_s1 = sigma_of(lambda_s1)
        # step 1: to lambda_s1, ancestrally
        sd, su = get_ancestral_step(sigma_of(lambda_s), sigma_s1, eta)
        h_ = lambda_of(sd) - lambda_s
        x_2 = (-h_).exp() * x - (-h_).expm1() * denoised
        if eta > 0 and s_noise > 0:
            x_2 = x_2 + noise_sampler(sigmas[i], sigma_s1) * s_noise * su
        denoised_2 = model(x_2, sigma_s1 * s_in, **extra_args)
        # step 2: the full step with the blended x0
        sd, su = get_ancestral_step(sigma_of(lambda_s), sigma_of(lambda_t), eta)
        h_ = lambda_of(sd) - lambda_s
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (-h_).exp() * x - (-h_).expm1() * denoised_d
        if eta > 0 and s_noise > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * su
    return x


@torch.no_grad()
def sample_dpmpp_2m(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None, noise_sampler=None,
                    seed=None):
    """DPM-Solver++(2M): second order from the previous step's x0 (multistep)."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], denoised)
        t, t_next = lambda_of(sigmas[i]), lambda_of(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (sigma_of(t_next) / sigma_of(t)) * x - (-h).expm1() * denoised
        else:
            r = (t - lambda_of(sigmas[i - 1])) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (sigma_of(t_next) / sigma_of(t)) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


@torch.no_grad()
def sample_dpmpp_2m_sde(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                        noise_sampler: NoiseSampler | None = None, seed=None, eta=1.0, s_noise=1.0,
                        solver_type="midpoint", cpu_noise: bool = True):
    """DPM-Solver++(2M) SDE (midpoint or heun correction)."""
    if len(sigmas) <= 1:
        return x
    if solver_type not in ("heun", "midpoint"):
        raise ValueError("solver_type must be 'heun' or 'midpoint'")
    extra_args = extra_args or {}
    noise_sampler = brownian_noise(x, sigmas, noise_sampler, seed, cpu_noise)
    s_in = x.new_ones([x.shape[0]])
    old_denoised, h, h_last = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = lambda_of(sigmas[i + 1]) - lambda_of(sigmas[i])
            h_eta = h * (eta + 1)
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x + (-h_eta).expm1().neg() * denoised
            if old_denoised is not None:
                r = h_last / h
                if solver_type == "heun":
                    x = x + ((-h_eta).expm1().neg() / (-h_eta) + 1) * (1 / r) * (denoised - old_denoised)
                else:
                    x = x + 0.5 * (-h_eta).expm1().neg() * (1 / r) * (denoised - old_denoised)
            if eta > 0 and s_noise > 0:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        old_denoised = denoised
        h_last = h
    return x


@torch.no_grad()
def sample_dpmpp_3m_sde(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                        noise_sampler: NoiseSampler | None = None, seed=None, eta=1.0, s_noise=1.0,
                        cpu_noise: bool = True):
    """DPM-Solver++(3M) SDE: third order from the two previous x0 predictions."""
    if len(sigmas) <= 1:
        return x
    extra_args = extra_args or {}
    noise_sampler = brownian_noise(x, sigmas, noise_sampler, seed, cpu_noise)
    s_in = x.new_ones([x.shape[0]])
    denoised_1 = denoised_2 = None
    h = h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = lambda_of(sigmas[i + 1]) - lambda_of(sigmas[i])
            h_eta = h * (eta + 1)
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x + (-h_eta).expm1().neg() * denoised
            phi_2 = h_eta.neg().expm1() / h_eta + 1
            if h_2 is not None:
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                phi_3 = phi_2 / h_eta - 0.5
                x = x + phi_2 * d1 - phi_3 * d2
            elif h_1 is not None:
                x = x + phi_2 * (denoised - denoised_1) / (h_1 / h)
            if eta > 0 and s_noise > 0:
                x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


def sample_dpmpp_2m_sde_heun(model, x, sigmas, **kw):
    return sample_dpmpp_2m_sde(model, x, sigmas, solver_type="heun", **kw)
