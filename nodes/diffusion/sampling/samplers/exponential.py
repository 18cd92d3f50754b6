"""Stochastic exponential integrators in data prediction, in half log-SNR time lambda = -log sigma:
ER-SDE (Cui et al. 2023, arXiv 2309.06169: VP ER-SDE-Solver-3, up to three stages from earlier x0),
SEEDS-2 / SEEDS-3 (Gonzalez et al. 2023, arXiv 2305.14267: two / three model calls per step, the SDE noise
of the sub-steps carried as one Brownian path) and the exponential Heun method (SEEDS-2 with r = 1, phi_2)."""
from __future__ import annotations

import torch

from .common import Callback, Model, NoiseSampler, lambda_of, report, setup, sigma_of


def _h_phi_1(h):
    return torch.expm1(h)


def _h_phi_2(h):
    return (torch.expm1(h) - h) / h


def er_sde_noise_scaler(x):
    """ER-SDE's default noise scale function of er_lambda = sigma / alpha."""
    return x * ((x ** 0.3).exp() + 10.0)


@torch.no_grad()
def sample_er_sde(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                  noise_sampler: NoiseSampler | None = None, seed=None, s_noise=1.0, noise_scaler=None, max_stage=3):
    extra_args, noise_sampler, s_in = setup(x, extra_args, noise_sampler, seed)
    scale = er_sde_noise_scaler if noise_scaler is None else noise_scaler
    points = 200.0  # numerical integration of the stage 2/3 weights
    point_index = torch.arange(0, points, dtype=torch.float32, device=x.device)
    er_lambdas = lambda_of(sigmas).neg().exp()  # sigma / alpha
    old_denoised = old_denoised_d = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], denoised)
        stage = min(max_stage, i + 1)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            lam_s, lam_t = er_lambdas[i], er_lambdas[i + 1]
            alpha_s, alpha_t = sigmas[i] / lam_s, sigmas[i + 1] / lam_t
            r = scale(lam_t) / scale(lam_s)
            x = alpha_t / alpha_s * r * x + alpha_t * (1 - r) * denoised
            if stage >= 2:
                dt = lam_t - lam_s
                step = -dt / points
                positions = lam_t + point_index * step
                scaled = scale(positions)
                s = torch.sum(1 / scaled) * step
                denoised_d = (denoised - old_denoised) / (lam_s - er_lambdas[i - 1])
                x = x + alpha_t * (dt + s * scale(lam_t)) * denoised_d
                if stage >= 3:
                    s_u = torch.sum((positions - lam_s) / scaled) * step
                    denoised_u = (denoised_d - old_denoised_d) / ((lam_s - er_lambdas[i - 2]) / 2)
                    x = x + alpha_t * ((dt ** 2) / 2 + s_u * scale(lam_t)) * denoised_u
                old_denoised_d = denoised_d
            if s_noise > 0:
                spread = (lam_t ** 2 - lam_s ** 2 * r ** 2).sqrt().nan_to_num(nan=0.0)
                x = x + alpha_t * noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * spread
        old_denoised = denoised
    return x


class _BrownianSegments:
    """The SDE noise of one step split over sub-steps: each segment decays the noise so far and adds its own."""

    def __init__(self, noise_sampler, h, eta: float) -> None:
        self.noise_sampler, self.h, self.eta = noise_sampler, h, eta
        self.noise = None

    def first(self, r, sigma_from, sigma_to):
        self.noise = (-2 * r * self.h * self.eta).expm1().neg().sqrt() * self.noise_sampler(sigma_from, sigma_to)
        return self.noise

    def next(self, r_from, r_to, sigma_from, sigma_to):
        factor = (r_from - r_to) * self.h * self.eta
        self.noise = self.noise * factor.exp()
        self.noise = self.noise + factor.mul(2).expm1().neg().sqrt() * self.noise_sampler(sigma_from, sigma_to)
        return self.noise


@torch.no_grad()
def sample_seeds_2(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                   noise_sampler: NoiseSampler | None = None, seed=None, eta=1.0, s_noise=1.0, r=0.5,
                   solver_type="phi_1"):
    if solver_type not in ("phi_1", "phi_2"):
        raise ValueError("solver_type must be 'phi_1' or 'phi_2'")
    extra_args, noise_sampler, s_in = setup(x, extra_args, noise_sampler, seed)
    inject = eta > 0 and s_noise > 0
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lam_s, lam_t = lambda_of(sigmas[i]), lambda_of(sigmas[i + 1])
        h = lam_t - lam_s
        h_eta = h * (eta + 1)
        lam_1 = torch.lerp(lam_s, lam_t, r)
        sigma_1 = sigma_of(lam_1)
        alpha_1, alpha_t = sigma_1 * lam_1.exp(), sigmas[i + 1] * lam_t.exp()
        path = _BrownianSegments(noise_sampler, h, eta)
        # stage 1: to lambda_s + r h
        x_2 = sigma_1 / sigmas[i] * (-r * h * eta).exp() * x - alpha_1 * _h_phi_1(-r * h_eta) * denoised
        if inject:
            x_2 = x_2 + path.first(r, sigmas[i], sigma_1) * sigma_1 * s_noise
        denoised_2 = model(x_2, sigma_1 * s_in, **extra_args)
        # stage 2: the whole step
        if solver_type == "phi_1":
            mixed = torch.lerp(denoised, denoised_2, 1 / (2 * r))
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x - alpha_t * _h_phi_1(-h_eta) * mixed
        else:
            b2 = _h_phi_2(-h_eta) / r
            b1 = _h_phi_1(-h_eta) - b2
            x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x - alpha_t * (b1 * denoised + b2 * denoised_2)
        if inject:
            x = x + path.next(r, 1, sigma_1, sigmas[i + 1]) * sigmas[i + 1] * s_noise
    return x


def sample_exp_heun_2_x0(model, x, sigmas, *, solver_type="phi_2", **kw):
    """Deterministic exponential Heun (second order, x0 prediction, log-SNR time)."""
    kw.pop("noise_sampler", None)
    return sample_seeds_2(model, x, sigmas, eta=0.0, s_noise=0.0, r=1.0, solver_type=solver_type, **kw)


def sample_exp_heun_2_x0_sde(model, x, sigmas, *, eta=1.0, s_noise=1.0, solver_type="phi_2", **kw):
    """Stochastic exponential Heun."""
    return sample_seeds_2(model, x, sigmas, eta=eta, s_noise=s_noise, r=1.0, solver_type=solver_type, **kw)


@torch.no_grad()
def sample_seeds_3(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                   noise_sampler: NoiseSampler | None = None, seed=None, eta=1.0, s_noise=1.0, r_1=1 / 3, r_2=2 / 3):
    extra_args, noise_sampler, s_in = setup(x, extra_args, noise_sampler, seed)
    inject = eta > 0 and s_noise > 0
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lam_s, lam_t = lambda_of(sigmas[i]), lambda_of(sigmas[i + 1])
        h = lam_t - lam_s
        h_eta = h * (eta + 1)
        lam_1, lam_2 = torch.lerp(lam_s, lam_t, r_1), torch.lerp(lam_s, lam_t, r_2)
        sigma_1, sigma_2 = sigma_of(lam_1), sigma_of(lam_2)
        alpha_1, alpha_2 = sigma_1 * lam_1.exp(), sigma_2 * lam_2.exp()
        alpha_t = sigmas[i + 1] * lam_t.exp()
        path = _BrownianSegments(noise_sampler, h, eta)
        x_2 = sigma_1 / sigmas[i] * (-r_1 * h * eta).exp() * x - alpha_1 * _h_phi_1(-r_1 * h_eta) * denoised
        if inject:
            x_2 = x_2 + path.first(r_1, sigmas[i], sigma_1) * sigma_1 * s_noise
        denoised_2 = model(x_2, sigma_1 * s_in, **extra_args)
        a3_2 = r_2 / r_1 * _h_phi_2(-r_2 * h_eta)
        a3_1 = _h_phi_1(-r_2 * h_eta) - a3_2
        x_3 = sigma_2 / sigmas[i] * (-r_2 * h * eta).exp() * x - alpha_2 * (a3_1 * denoised + a3_2 * denoised_2)
        if inject:
            x_3 = x_3 + path.next(r_1, r_2, sigma_1, sigma_2) * sigma_2 * s_noise
        denoised_3 = model(x_3, sigma_2 * s_in, **extra_args)
        b3 = _h_phi_2(-h_eta) / r_2
        b1 = _h_phi_1(-h_eta) - b3
        x = sigmas[i + 1] / sigmas[i] * (-h * eta).exp() * x - alpha_t * (b1 * denoised + b3 * denoised_3)
        if inject:
            x = x + path.next(r_2, 1, sigma_2, sigmas[i + 1]) * sigmas[i + 1] * s_noise
    return x
