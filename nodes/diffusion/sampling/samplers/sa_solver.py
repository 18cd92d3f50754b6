"""SA-Solver (Xue et al. 2023, arXiv 2309.05019): stochastic Adams predictor-corrector in data prediction
and half log-SNR time. The predictor extrapolates the last x0 predictions with Lagrange polynomials in lambda,
integrated exactly against the SDE's exponential weight; the corrector re-integrates the step with the new
x0 included. tau(sigma) sets the stochasticity (0: the ODE); PECE evaluates the model again after correcting."""
from __future__ import annotations

from typing import Callable

import torch

from .common import Callback, Model, NoiseSampler, lambda_of, model_sampling_of, report, setup


def exponential_moments(s: torch.Tensor, t: torch.Tensor, order: int, tau: float) -> torch.Tensor:
    """k * exp(-k t) * integral_s^t exp(k x) x^p dx for p = 0 .. order-1, k = 1 + tau²
    (integration by parts: J_p = t^p - s^p exp(-k h) - (p / k) J_(p-1))."""
    k = 1 + tau ** 2
    decay = (-k * (t - s)).exp()
    moments = []
    for p in range(order):
        term = t ** p - s ** p * decay
        if p:
            term = term - (p / k) * moments[-1]
        moments.append(term)
    return torch.stack(moments)


def stochastic_adams_weights(sigma_next, lambdas: torch.Tensor, lambda_s, lambda_t, tau: float,
                             simple_order_2: bool = False, corrector: bool = False) -> torch.Tensor:
    """Weights b_j of the x0 predictions at `lambdas` for the step lambda_s -> lambda_t (eqs. 15 and 18):
    alpha_t times the integrals of the Lagrange basis polynomials against the exponential weight."""
    n = lambdas.shape[0]
    k = 1 + tau ** 2
    h = lambda_t - lambda_s
    alpha_t = sigma_next * lambda_t.exp()
    if simple_order_2 and n == 2:  # the paper's simplified order-2 coefficients (appendix D)
        if corrector:
            b_1 = alpha_t * (0.5 * k * h)
            b_2 = alpha_t * (-h * k).expm1().neg() - b_1
        else:
            b_2 = alpha_t * (0.5 * k * h ** 2) / (lambdas[-2] - lambda_s)
            b_1 = alpha_t * (-h * k).expm1().neg() - b_2
        return torch.stack([b_2, b_1])
    moments = exponential_moments(lambda_s, lambda_t, n, tau)
    # sum_j l_j(x) lambda_j^p = x^p: the basis integrals solve a transposed Vandermonde system
    vandermonde_t = torch.vander(lambdas, n, increasing=True).T
    return alpha_t * torch.linalg.solve(vandermonde_t, moments)


def tau_interval(start_sigma: float, end_sigma: float, eta: float = 1.0) -> Callable[[torch.Tensor | float], float]:
    """Stochasticity eta while start_sigma >= sigma >= end_sigma, the ODE elsewhere."""
    def tau(sigma) -> float:
        if eta <= 0:
            return 0.0
        value = float(sigma)
        return eta if start_sigma >= value >= end_sigma else 0.0
    return tau


@torch.no_grad()
def sample_sa_solver(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                     noise_sampler: NoiseSampler | None = None, seed=None, tau_func=None, s_noise=1.0,
                     predictor_order=3, corrector_order=4, use_pece=False, simple_order_2=False):
    if len(sigmas) <= 1:
        return x
    extra_args, noise_sampler, s_in = setup(x, extra_args, noise_sampler, seed)
    lambdas = lambda_of(sigmas)
    if tau_func is None:  # SDE over the middle 60% of the run
        ms = model_sampling_of(model)
        tau_func = tau_interval(ms.percent_to_sigma(0.2), ms.percent_to_sigma(0.8), eta=1.0)
    history = max(predictor_order, corrector_order)
    x_pred = x
    h, tau, noise = 0.0, 0.0, 0.0
    preds: list[torch.Tensor] = []
    lower_order_to_end = float(sigmas[-1]) == 0  # lower orders near the end for stability
    for i in range(len(sigmas) - 1):
        denoised = model(x_pred, sigmas[i] * s_in, **extra_args)
        report(callback, x_pred, i, sigmas[i], denoised)
        preds = (preds + [denoised])[-history:]
        p_order = min(predictor_order, len(preds))
        c_order = 0 if i == 0 or (sigmas[i + 1] == 0 and not use_pece) else min(corrector_order, len(preds))
        if lower_order_to_end:
            p_order = min(p_order, len(sigmas) - 2 - i)
            c_order = min(c_order, len(sigmas) - 1 - i)
        if c_order == 0:
            x = x_pred
        else:  # correct the last step with the new prediction included
            b = stochastic_adams_weights(sigmas[i], lambdas[i - c_order + 1:i + 1], lambdas[i - 1], lambdas[i], tau,
                                         simple_order_2, corrector=True)
            correction = torch.tensordot(torch.stack(preds[-c_order:], dim=1), b, dims=([1], [0]))
            x = sigmas[i] / sigmas[i - 1] * (-(tau ** 2) * h).exp() * x + correction
            if tau > 0 and s_noise > 0:
                x = x + noise  # the same noise the predictor added
            if use_pece:
                denoised = model(x, sigmas[i] * s_in, **extra_args)
                preds[-1] = denoised
        if sigmas[i + 1] == 0:
            x_pred = denoised
        else:
            tau = tau_func(sigmas[i + 1])
            b = stochastic_adams_weights(sigmas[i + 1], lambdas[i - p_order + 1:i + 1], lambdas[i], lambdas[i + 1],
                                         tau, simple_order_2, corrector=False)
            prediction = torch.tensordot(torch.stack(preds[-p_order:], dim=1), b, dims=([1], [0]))
            h = lambdas[i + 1] - lambdas[i]
            x_pred = sigmas[i + 1] / sigmas[i] * (-(tau ** 2) * h).exp() * x + prediction
            if tau > 0 and s_noise > 0:
                noise = (noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1]
                         * (-2 * tau ** 2 * h).expm1().neg().sqrt() * s_noise)
                x_pred = x_pred + noise
    return x_pred


def sample_sa_solver_pece(model, x, sigmas, **kw):
    return sample_sa_solver(model, x, sigmas, use_pece=True, **kw)
