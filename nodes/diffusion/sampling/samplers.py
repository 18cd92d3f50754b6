"""Samplers: pure functions that integrate the probability-flow ODE (or the reverse SDE) of a denoiser.

Every sampler has the signature

    sampler(model, x, sigmas, *, extra_args=None, callback=None, noise_sampler=None, seed=None) -> x

- model(x, sigma[B], **extra_args) -> denoised x0 (the D(x; sigma) of Karras et al. 2022);
- x: the starting point, already noised to sigmas[0] (x = x0 + sigma * eps);
- sigmas: descending noise levels, usually ending with 0;
- callback({"x", "i", "sigma", "sigma_hat", "denoised"}) once per step, after its first model call;
- noise for ancestral / SDE steps: noise_sampler(sigma, sigma_next), or one built from seed as
  ComfyUI builds it (default_noise_sampler; a Brownian tree for the SDE samplers).

Formulas follow the papers in the form k-diffusion and ComfyUI use (names are ComfyUI's):
Euler / Heun: Karras et al. 2022, Algorithm 2 · DPM-2: the same with a DPM-Solver-2 midpoint ·
ancestral steps: DDPM/DDIM eta=1 split of the step into sigma_down and sigma_up · LMS: linear
multistep (Adams-Bashforth) in sigma · DPM-Solver++ 2S / 2M / SDE / 2M SDE / 3M SDE: Lu et al. 2022
(arXiv 2211.01095) in lambda = -log sigma · DDPM: Ho et al. 2020 ancestral step · LCM: Luo et al. 2023
· iPNDM: Zhang & Chen 2023 · DPM-Solver fast/adaptive: Lu et al. 2022 (arXiv 2206.00927) · CFG++: Chung et al. 2024
(the *_cfg_pp samplers need the guided denoiser's uncond x0) · UniPC: see unipc.py.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .noise import BrownianTreeNoiseSampler, NoiseSampler, default_noise_sampler

Model = Callable[..., torch.Tensor]
Callback = Callable[[dict], None] | None


def _append_dims(v: torch.Tensor, ndim: int) -> torch.Tensor:
    v = torch.as_tensor(v)
    return v[(...,) + (None,) * (ndim - v.ndim)]


def to_d(x: torch.Tensor, sigma: torch.Tensor, denoised: torch.Tensor) -> torch.Tensor:
    """The ODE derivative dx/dsigma = (x - D(x)) / sigma."""
    return (x - denoised) / _append_dims(sigma, x.ndim)


def get_ancestral_step(sigma_from, sigma_to, eta: float = 1.0):
    """Split a step sigma_from -> sigma_to into a deterministic step down to sigma_down and fresh
    noise of std sigma_up, with sigma_down² + sigma_up² = sigma_to² (eta = 1: DDPM's posterior)."""
    if not eta:
        return sigma_to, 0.0
    sigma_up = min(sigma_to, eta * (sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2) ** 0.5)
    sigma_down = (sigma_to ** 2 - sigma_up ** 2) ** 0.5
    return sigma_down, sigma_up


def _setup(x, extra_args, noise_sampler, seed):
    extra_args = {} if extra_args is None else extra_args
    if noise_sampler is None:
        noise_sampler = default_noise_sampler(x, seed=seed)
    return extra_args, noise_sampler, x.new_ones([x.shape[0]])


def _report(callback, x, i, sigma, denoised, sigma_hat=None) -> None:
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma if sigma_hat is None else sigma_hat,
                  "denoised": denoised})


def _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise):
    """Karras' stochastic churn: raise the noise to sigma_hat before the step (off by default)."""
    gamma = 0.0
    if s_churn > 0 and s_tmin <= sigmas[i] <= s_tmax:
        gamma = min(s_churn / (len(sigmas) - 1), 2 ** 0.5 - 1)
    sigma_hat = sigmas[i] * (gamma + 1)
    if gamma > 0:
        x = x + torch.randn_like(x) * s_noise * (sigma_hat ** 2 - sigmas[i] ** 2) ** 0.5
    return x, sigma_hat


# =============================================================================================
# First and second order ODE samplers (Karras et al. 2022)
# =============================================================================================

@torch.no_grad()
def sample_euler(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None, noise_sampler=None,
                 seed=None, s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0):
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigmas[i], denoised, sigma_hat)
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_euler_ancestral(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                           noise_sampler: NoiseSampler | None = None, seed=None, eta=1.0, s_noise=1.0):
    extra_args, noise_sampler, s_in = _setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        _report(callback, x, i, sigmas[i], denoised)
        if sigma_down == 0:
            x = denoised
        else:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_heun(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None, noise_sampler=None,
                seed=None, s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0):
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigmas[i], denoised, sigma_hat)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == 0:  # Euler for the last step (the derivative at sigma 0 is undefined)
            x = x + d * dt
        else:  # trapezoid rule: average the slopes at both ends
            x_2 = x + d * dt
            d_2 = to_d(x_2, sigmas[i + 1], model(x_2, sigmas[i + 1] * s_in, **extra_args))
            x = x + (d + d_2) / 2 * dt
    return x


@torch.no_grad()
def sample_heunpp2(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None, noise_sampler=None,
                   seed=None, s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0):
    """Heun++ (sd-webui-samplers-scheduler): up to three slopes, weighted by sigma / sigma_0."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    s_end = sigmas[-1]
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigmas[i], denoised, sigma_hat)
        dt = sigmas[i + 1] - sigma_hat
        if sigmas[i + 1] == s_end:
            x = x + d * dt
        elif sigmas[i + 2] == s_end:
            x_2 = x + d * dt
            d_2 = to_d(x_2, sigmas[i + 1], model(x_2, sigmas[i + 1] * s_in, **extra_args))
            w2 = sigmas[i + 1] / (2 * sigmas[0])
            x = x + (d * (1 - w2) + d_2 * w2) * dt
        else:
            x_2 = x + d * dt
            d_2 = to_d(x_2, sigmas[i + 1], model(x_2, sigmas[i + 1] * s_in, **extra_args))
            x_3 = x_2 + d_2 * (sigmas[i + 2] - sigmas[i + 1])
            d_3 = to_d(x_3, sigmas[i + 2], model(x_3, sigmas[i + 2] * s_in, **extra_args))
            w2, w3 = sigmas[i + 1] / (3 * sigmas[0]), sigmas[i + 2] / (3 * sigmas[0])
            x = x + ((1 - w2 - w3) * d + w2 * d_2 + w3 * d_3) * dt
    return x


@torch.no_grad()
def sample_dpm_2(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None, noise_sampler=None,
                 seed=None, s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0):
    """Second order: the slope at the log-midpoint sigma carries the whole step (DPM-Solver-2)."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        x, sigma_hat = _churn(x, sigmas, i, s_churn, s_tmin, s_tmax, s_noise)
        denoised = model(x, sigma_hat * s_in, **extra_args)
        d = to_d(x, sigma_hat, denoised)
        _report(callback, x, i, sigmas[i], denoised, sigma_hat)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigma_hat)
        else:
            sigma_mid = sigma_hat.log().lerp(sigmas[i + 1].log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigma_hat)
            d_2 = to_d(x_2, sigma_mid, model(x_2, sigma_mid * s_in, **extra_args))
            x = x + d_2 * (sigmas[i + 1] - sigma_hat)
    return x


@torch.no_grad()
def sample_dpm_2_ancestral(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                           noise_sampler: NoiseSampler | None = None, seed=None, eta=1.0, s_noise=1.0):
    extra_args, noise_sampler, s_in = _setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        _report(callback, x, i, sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
        else:
            sigma_mid = sigmas[i].log().lerp(sigma_down.log(), 0.5).exp()
            x_2 = x + d * (sigma_mid - sigmas[i])
            d_2 = to_d(x_2, sigma_mid, model(x_2, sigma_mid * s_in, **extra_args))
            x = x + d_2 * (sigma_down - sigmas[i])
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def linear_multistep_coeff(order: int, t, i: int, j: int) -> float:
    """Integral over [t_i, t_i+1] of the Lagrange basis polynomial of node t_(i-j) (nodes t_i .. t_(i-order+1))."""
    from scipy import integrate

    if order - 1 > i:
        raise ValueError(f"order {order} too high for step {i}")

    def basis(tau: float) -> float:
        prod = 1.0
        for k in range(order):
            if j != k:
                prod *= (tau - t[i - k]) / (t[i - j] - t[i - k])
        return prod

    return integrate.quad(basis, t[i], t[i + 1], epsrel=1e-4)[0]


@torch.no_grad()
def sample_lms(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None, noise_sampler=None,
               seed=None, order=4):
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    sigmas_cpu = sigmas.detach().cpu().numpy()
    ds: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        ds.append(to_d(x, sigmas[i], denoised))
        if len(ds) > order:
            ds.pop(0)
        _report(callback, x, i, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            cur_order = min(i + 1, order)
            coeffs = [linear_multistep_coeff(cur_order, sigmas_cpu, i, j) for j in range(cur_order)]
            x = x + sum(c * d for c, d in zip(coeffs, reversed(ds)))
    return x


# =============================================================================================
# DPM-Solver (Lu et al. 2022, arXiv 2206.00927): noise prediction, fixed or adaptive steps
# =============================================================================================

class _DPMSolver:
    """Single-step DPM-Solver-1/2/3 in t = -log sigma, on eps = (x - D(x)) / sigma (cached per step)."""

    def __init__(self, model: Model, extra_args: dict, callback: Callback) -> None:
        self.model, self.extra_args, self.callback = model, extra_args, callback

    def eps(self, cache: dict, key: str, x, t):
        if key not in cache:
            sigma = _sigma(t)
            cache[key] = (x - self.model(x, sigma * x.new_ones([x.shape[0]]), **self.extra_args)) / sigma
        return cache[key]

    def step_1(self, x, t, t_next, cache):
        h = t_next - t
        return x - _sigma(t_next) * h.expm1() * self.eps(cache, "eps", x, t)

    def step_2(self, x, t, t_next, cache, r1=1 / 2):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - _sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        return x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)

    def step_3(self, x, t, t_next, cache, r1=1 / 3, r2=2 / 3):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1, s2 = t + r1 * h, t + r2 * h
        u1 = x - _sigma(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        u2 = (x - _sigma(s2) * (r2 * h).expm1() * eps
              - _sigma(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps))
        eps_r2 = self.eps(cache, "eps_r2", u2, s2)
        return x - _sigma(t_next) * h.expm1() * eps - _sigma(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)

    def report(self, x, i, t, cache):
        if self.callback is not None:
            denoised = x - _sigma(t) * self.eps(cache, "eps", x, t)
            self.callback({"x": x, "i": i, "sigma": _sigma(t), "sigma_hat": _sigma(t), "denoised": denoised})


def _sigma_range(sigmas):
    """ComfyUI runs the DPM-Solvers from sigmas[0] to the last non-zero sigma (no final denoise)."""
    sigma_min = sigmas[-1] if sigmas[-1] > 0 else sigmas[-2]
    return torch.as_tensor(sigmas[0]).float(), torch.as_tensor(sigma_min).float()


@torch.no_grad()
def sample_dpm_fast(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                    noise_sampler: NoiseSampler | None = None, seed=None, eta=0.0, s_noise=1.0):
    """DPM-Solver-fast: len(sigmas) - 1 model calls spread over third order steps of equal size in t."""
    if len(sigmas) <= 1:
        return x
    extra_args, noise_sampler, _ = _setup(x, extra_args, noise_sampler, seed)
    sigma_max, sigma_min = _sigma_range(sigmas)
    nfe = len(sigmas) - 1
    solver = _DPMSolver(model, extra_args, callback)
    t_start, t_end = _t(sigma_max).to(x.device), _t(sigma_min).to(x.device)
    m = nfe // 3 + 1
    ts = torch.linspace(float(t_start), float(t_end), m + 1, device=x.device)
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    for i, order in enumerate(orders):
        cache: dict = {}
        t, t_next = ts[i], ts[i + 1]
        su = 0.0
        t_target = t_next
        if eta:
            sd, _ = get_ancestral_step(_sigma(t), _sigma(t_next), eta)
            t_target = torch.minimum(t_end, _t(sd))
            su = (_sigma(t_next) ** 2 - _sigma(t_target) ** 2) ** 0.5
        solver.report(x, i, t, cache)
        step = {1: solver.step_1, 2: solver.step_2, 3: solver.step_3}[order]
        x = step(x, t, t_target, cache)
        if eta:
            x = x + su * s_noise * noise_sampler(_sigma(t), _sigma(t_next))
    return x


@torch.no_grad()
def sample_dpm_adaptive(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                        noise_sampler: NoiseSampler | None = None, seed=None, order=3, rtol=0.05, atol=0.0078,
                        h_init=0.05, pcoeff=0.0, icoeff=1.0, dcoeff=0.0, accept_safety=0.81, eta=0.0, s_noise=1.0):
    """DPM-Solver-23: embedded 2nd/3rd order pair, step size from a PID controller on the local error."""
    if len(sigmas) <= 1:
        return x
    if order not in (2, 3):
        raise ValueError("order should be 2 or 3")
    extra_args, noise_sampler, _ = _setup(x, extra_args, noise_sampler, seed)
    sigma_max, sigma_min = _sigma_range(sigmas)
    solver = _DPMSolver(model, extra_args, callback)
    s, t_end = _t(sigma_max).to(x.device), _t(sigma_min).to(x.device)
    controller = _PID(abs(h_init), pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
    atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
    x_prev, steps = x, 0
    while s < t_end - 1e-5:
        cache: dict = {}
        t = torch.minimum(t_end, s + controller.h)
        t_target, su = t, 0.0
        if eta:
            sd, _ = get_ancestral_step(_sigma(s), _sigma(t), eta)
            t_target = torch.minimum(t_end, _t(sd))
            su = (_sigma(t) ** 2 - _sigma(t_target) ** 2) ** 0.5
        solver.report(x, steps, s, cache)
        if order == 2:
            x_low, x_high = solver.step_1(x, s, t_target, cache), solver.step_2(x, s, t_target, cache)
        else:
            x_low, x_high = solver.step_2(x, s, t_target, cache, r1=1 / 3), solver.step_3(x, s, t_target, cache)
        delta = torch.maximum(atol_t, rtol_t * torch.maximum(x_low.abs(), x_prev.abs()))
        error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
        if controller.propose_step(error):
            x_prev = x_low
            x = x_high + (su * s_noise * noise_sampler(_sigma(s), _sigma(t)) if eta else 0)
            s = t
        steps += 1
    return x


class _PID:
    """PID step size controller for the adaptive solver (Söderlind's digital filter form)."""

    def __init__(self, h, pcoeff, icoeff, dcoeff, order=1, accept_safety=0.81, eps=1e-8):
        self.h = h
        self.b1 = (pcoeff + icoeff + dcoeff) / order
        self.b2 = -(pcoeff + 2 * dcoeff) / order
        self.b3 = dcoeff / order
        self.accept_safety, self.eps = accept_safety, eps
        self.errs: list[float] = []

    def propose_step(self, error) -> bool:
        inv_error = 1 / (float(error) + self.eps)
        if not self.errs:
            self.errs = [inv_error] * 3
        self.errs[0] = inv_error
        factor = self.errs[0] ** self.b1 * self.errs[1] ** self.b2 * self.errs[2] ** self.b3
        factor = 1 + math.atan(factor - 1)  # limiter
        accept = factor >= self.accept_safety
        if accept:
            self.errs[2], self.errs[1] = self.errs[1], self.errs[0]
        self.h *= factor
        return accept


# =============================================================================================
# DPM-Solver++ (Lu et al. 2022), in t = lambda = -log sigma
# =============================================================================================

def _t(sigma):
    return sigma.log().neg()


def _sigma(t):
    return t.neg().exp()


@torch.no_grad()
def sample_dpmpp_2s_ancestral(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                              noise_sampler: NoiseSampler | None = None, seed=None, eta=1.0, s_noise=1.0):
    extra_args, noise_sampler, s_in = _setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        _report(callback, x, i, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:  # single-step second order: a half step in lambda, then the full step from its x0
            t, t_next = _t(sigmas[i]), _t(sigma_down)
            h = t_next - t
            s = t + h / 2
            x_2 = (_sigma(s) / _sigma(t)) * x - (-h / 2).expm1() * denoised
            denoised_2 = model(x_2, _sigma(s) * s_in, **extra_args)
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


def _brownian(x, sigmas, noise_sampler, seed, cpu: bool):
    if noise_sampler is not None:
        return noise_sampler
    positive = sigmas[sigmas > 0]
    return BrownianTreeNoiseSampler(x, positive.min(), sigmas.max(), seed=seed, cpu=cpu)


@torch.no_grad()
def sample_dpmpp_sde(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                     noise_sampler: NoiseSampler | None = None, seed=None, eta=1.0, s_noise=1.0, r=1 / 2,
                     cpu_noise: bool = True):
    """DPM-Solver++ (stochastic, single step): an ancestral sub-step to lambda_s + r h, then the full step."""
    if len(sigmas) <= 1:
        return x
    extra_args = extra_args or {}
    noise_sampler = _brownian(x, sigmas, noise_sampler, seed, cpu_noise)
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        lambda_s, lambda_t = _t(sigmas[i]), _t(sigmas[i + 1])
        h = lambda_t - lambda_s
        lambda_s1 = lambda_s + r * h
        fac = 1 / (2 * r)
        sigma_s1 = _sigma(lambda_s1)
        # step 1: to lambda_s1, ancestrally
        sd, su = get_ancestral_step(_sigma(lambda_s), sigma_s1, eta)
        h_ = _t(sd) - lambda_s
        x_2 = (-h_).exp() * x - (-h_).expm1() * denoised
        if eta > 0 and s_noise > 0:
            x_2 = x_2 + noise_sampler(sigmas[i], sigma_s1) * s_noise * su
        denoised_2 = model(x_2, sigma_s1 * s_in, **extra_args)
        # step 2: the full step with the blended x0
        sd, su = get_ancestral_step(_sigma(lambda_s), _sigma(lambda_t), eta)
        h_ = _t(sd) - lambda_s
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
        _report(callback, x, i, sigmas[i], denoised)
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised
        else:
            r = (t - _t(sigmas[i - 1])) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
            x = (_sigma(t_next) / _sigma(t)) * x - (-h).expm1() * denoised_d
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
    noise_sampler = _brownian(x, sigmas, noise_sampler, seed, cpu_noise)
    s_in = x.new_ones([x.shape[0]])
    old_denoised, h, h_last = None, None, None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = _t(sigmas[i + 1]) - _t(sigmas[i])
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
    noise_sampler = _brownian(x, sigmas, noise_sampler, seed, cpu_noise)
    s_in = x.new_ones([x.shape[0]])
    denoised_1 = denoised_2 = None
    h = h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            h = _t(sigmas[i + 1]) - _t(sigmas[i])
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


# =============================================================================================
# CFG++ (Chung et al. 2024, arXiv 2406.08070): step along the unconditional prediction
# =============================================================================================

class _UncondTap:
    """Asks the guided denoiser to run the uncond pass even at cfg 1 and keeps its x0."""

    def __init__(self, extra_args: dict | None) -> None:
        self.uncond: torch.Tensor | None = None
        extra_args = dict(extra_args or {})
        options = dict(extra_args.get("model_options") or {})
        options["sampler_post_cfg_function"] = list(options.get("sampler_post_cfg_function", [])) + [self._keep]
        options["disable_cfg1_optimization"] = True
        extra_args["model_options"] = options
        self.extra_args = extra_args

    def _keep(self, args: dict) -> torch.Tensor:
        self.uncond = args["uncond_denoised"]
        return args["denoised"]

    def get(self) -> torch.Tensor:
        if self.uncond is None:
            raise RuntimeError("CFG++ samplers need a classifier-free guided denoiser (it reports the uncond x0)")
        return self.uncond


@torch.no_grad()
def sample_euler_ancestral_cfg_pp(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                                  noise_sampler: NoiseSampler | None = None, seed=None, eta=1.0, s_noise=1.0):
    _, noise_sampler, s_in = _setup(x, extra_args, noise_sampler, seed)
    tap = _UncondTap(extra_args)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **tap.extra_args)
        _report(callback, x, i, sigmas[i], denoised)
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
    _, noise_sampler, s_in = _setup(x, extra_args, noise_sampler, seed)
    tap = _UncondTap(extra_args)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **tap.extra_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        _report(callback, x, i, sigmas[i], denoised)
        if sigma_down == 0:
            x = denoised + to_d(x, sigmas[i], tap.get()) * sigma_down
        else:
            t, t_next = _t(sigmas[i]), _t(sigma_down)
            h = t_next - t
            s = t + h / 2
            x_2 = (_sigma(s) / _sigma(t)) * (x + (denoised - tap.get())) - (-h / 2).expm1() * denoised
            denoised_2 = model(x_2, _sigma(s) * s_in, **tap.extra_args)
            x = (_sigma(t_next) / _sigma(t)) * (x + (denoised - tap.get())) - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_2m_cfg_pp(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                           noise_sampler=None, seed=None):
    s_in = x.new_ones([x.shape[0]])
    tap = _UncondTap(extra_args)
    old_uncond = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **tap.extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        uncond = tap.get()
        h = _t(sigmas[i + 1]) - _t(sigmas[i])
        if old_uncond is None or sigmas[i + 1] == 0:
            mix = -torch.exp(-h) * uncond
        else:
            r = (_t(sigmas[i]) - _t(sigmas[i - 1])) / h
            mix = -torch.exp(-h) * uncond - torch.expm1(-h) * (1 / (2 * r)) * (denoised - old_uncond)
        x = denoised + mix + torch.exp(-h) * x
        old_uncond = uncond
    return x


# =============================================================================================
# DDPM, LCM, iPNDM
# =============================================================================================

def _ddpm_step(x_vp, sigma, sigma_next, eps, noise_sampler):
    """One ancestral DDPM step in VP space (Ho et al. 2020, eq. 11 + posterior std)."""
    ac = 1 / (sigma * sigma + 1)
    ac_prev = 1 / (sigma_next * sigma_next + 1)
    alpha = ac / ac_prev
    mu = (1.0 / alpha).sqrt() * (x_vp - (1 - alpha) * eps / (1 - ac).sqrt())
    if sigma_next > 0:
        mu = mu + ((1 - alpha) * (1.0 - ac_prev) / (1.0 - ac)).sqrt() * noise_sampler(sigma, sigma_next)
    return mu


@torch.no_grad()
def sample_ddpm(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                noise_sampler: NoiseSampler | None = None, seed=None):
    extra_args, noise_sampler, s_in = _setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        x = _ddpm_step(x / torch.sqrt(1.0 + sigmas[i] ** 2.0), sigmas[i], sigmas[i + 1],
                       (x - denoised) / sigmas[i], noise_sampler)
        if sigmas[i + 1] != 0:
            x = x * torch.sqrt(1.0 + sigmas[i + 1] ** 2.0)
    return x


@torch.no_grad()
def sample_lcm(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
               noise_sampler: NoiseSampler | None = None, seed=None):
    """Latent consistency: jump to x0, then re-noise to the next sigma with fresh noise."""
    extra_args, noise_sampler, s_in = _setup(x, extra_args, noise_sampler, seed)
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * sigmas[i + 1]
    return x


@torch.no_grad()
def sample_ipndm(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None, noise_sampler=None,
                 seed=None, max_order=4):
    """Improved PNDM: Adams-Bashforth in sigma with fixed (uniform-step) coefficients, order up to 4."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    history: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        t_cur, t_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, t_cur * s_in, **extra_args)
        _report(callback, x, i, t_cur, denoised)
        d_cur = (x - denoised) / t_cur
        order = min(max_order, i + 1)
        if t_next == 0:
            x_next = denoised
        elif order == 1:
            x_next = x + (t_next - t_cur) * d_cur
        elif order == 2:
            x_next = x + (t_next - t_cur) * (3 * d_cur - history[-1]) / 2
        elif order == 3:
            x_next = x + (t_next - t_cur) * (23 * d_cur - 16 * history[-1] + 5 * history[-2]) / 12
        else:
            x_next = x + (t_next - t_cur) * (55 * d_cur - 59 * history[-1] + 37 * history[-2] - 9 * history[-3]) / 24
        history.append(d_cur)
        if len(history) > max_order - 1:
            history.pop(0)
        x = x_next
    return x


def _sde_gpu(fn):
    """The *_gpu variants: the Brownian tree lives on the latent's device."""
    def sampler(model, x, sigmas, **kw):
        return fn(model, x, sigmas, cpu_noise=False, **kw)
    sampler.__name__ = fn.__name__ + "_gpu"
    sampler.__doc__ = (fn.__doc__ or "") + " (Brownian tree on the latent's device)"
    return sampler


def sample_dpmpp_2m_sde_heun(model, x, sigmas, **kw):
    return sample_dpmpp_2m_sde(model, x, sigmas, solver_type="heun", **kw)


def _uni_pc(variant: str):
    def sampler(model, x, sigmas, **kw):
        from .unipc import sample_unipc
        return sample_unipc(model, x, sigmas, variant=variant, **kw)
    sampler.__name__ = f"sample_unipc_{variant}"
    return sampler


# ComfyUI's sampler names, in its order. "ddim" is euler with fresh inpaint noise (see pipeline).
SAMPLERS: dict[str, Callable[..., Any]] = {
    "euler": sample_euler,
    "euler_cfg_pp": sample_euler_cfg_pp,
    "euler_ancestral": sample_euler_ancestral,
    "euler_ancestral_cfg_pp": sample_euler_ancestral_cfg_pp,
    "heun": sample_heun,
    "heunpp2": sample_heunpp2,
    "dpm_2": sample_dpm_2,
    "dpm_2_ancestral": sample_dpm_2_ancestral,
    "lms": sample_lms,
    "dpm_fast": sample_dpm_fast,
    "dpm_adaptive": sample_dpm_adaptive,
    "dpmpp_2s_ancestral": sample_dpmpp_2s_ancestral,
    "dpmpp_2s_ancestral_cfg_pp": sample_dpmpp_2s_ancestral_cfg_pp,
    "dpmpp_sde": sample_dpmpp_sde,
    "dpmpp_sde_gpu": _sde_gpu(sample_dpmpp_sde),
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_2m_cfg_pp": sample_dpmpp_2m_cfg_pp,
    "dpmpp_2m_sde": sample_dpmpp_2m_sde,
    "dpmpp_2m_sde_gpu": _sde_gpu(sample_dpmpp_2m_sde),
    "dpmpp_2m_sde_heun": sample_dpmpp_2m_sde_heun,
    "dpmpp_2m_sde_heun_gpu": _sde_gpu(sample_dpmpp_2m_sde_heun),
    "dpmpp_3m_sde": sample_dpmpp_3m_sde,
    "dpmpp_3m_sde_gpu": _sde_gpu(sample_dpmpp_3m_sde),
    "ddpm": sample_ddpm,
    "lcm": sample_lcm,
    "ipndm": sample_ipndm,
    "ddim": sample_euler,
    "uni_pc": _uni_pc("bh1"),
    "uni_pc_bh2": _uni_pc("bh2"),
}
SAMPLER_NAMES = list(SAMPLERS)


def get_sampler(name: str) -> Callable[..., torch.Tensor]:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; expected one of {', '.join(SAMPLER_NAMES)}") from None
