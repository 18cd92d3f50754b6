"""DPM-Solver (Lu et al. 2022, arXiv 2206.00927) in noise prediction: dpm_fast (fixed budget of model calls
in third order steps of equal size in lambda) and dpm_adaptive (embedded 2/3 pair, PID step size control)."""
from __future__ import annotations

import math

import torch

from .common import Callback, Model, NoiseSampler, get_ancestral_step, lambda_of, setup, sigma_of


class _DPMSolver:
    """Single-step DPM-Solver-1/2/3 in t = -log sigma, on eps = (x - D(x)) / sigma (cached per step)."""

    def __init__(self, model: Model, extra_args: dict, callback: Callback) -> None:
        self.model, self.extra_args, self.callback = model, extra_args, callback

    def eps(self, cache: dict, key: str, x, t):
        if key not in cache:
            sigma = sigma_of(t)
            cache[key] = (x - self.model(x, sigma * x.new_ones([x.shape[0]]), **self.extra_args)) / sigma
        return cache[key]

    def step_1(self, x, t, t_next, cache):
        h = t_next - t
        return x - sigma_of(t_next) * h.expm1() * self.eps(cache, "eps", x, t)

    def step_2(self, x, t, t_next, cache, r1=1 / 2):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1 = t + r1 * h
        u1 = x - sigma_of(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        return x - sigma_of(t_next) * h.expm1() * eps - sigma_of(t_next) / (2 * r1) * h.expm1() * (eps_r1 - eps)

    def step_3(self, x, t, t_next, cache, r1=1 / 3, r2=2 / 3):
        h = t_next - t
        eps = self.eps(cache, "eps", x, t)
        s1, s2 = t + r1 * h, t + r2 * h
        u1 = x - sigma_of(s1) * (r1 * h).expm1() * eps
        eps_r1 = self.eps(cache, "eps_r1", u1, s1)
        u2 = (x - sigma_of(s2) * (r2 * h).expm1() * eps
              - sigma_of(s2) * (r2 / r1) * ((r2 * h).expm1() / (r2 * h) - 1) * (eps_r1 - eps))
        eps_r2 = self.eps(cache, "eps_r2", u2, s2)
        return x - sigma_of(t_next) * h.expm1() * eps - sigma_of(t_next) / r2 * (h.expm1() / h - 1) * (eps_r2 - eps)

    def report(self, x, i, t, cache):
        if self.callback is not None:
            denoised = x - sigma_of(t) * self.eps(cache, "eps", x, t)
            self.callback({"x": x, "i": i, "sigma": sigma_of(t), "sigma_hat": sigma_of(t), "denoised": denoised})


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
    extra_args, noise_sampler, _ = setup(x, extra_args, noise_sampler, seed)
    sigma_max, sigma_min = _sigma_range(sigmas)
    nfe = len(sigmas) - 1
    solver = _DPMSolver(model, extra_args, callback)
    t_start, t_end = lambda_of(sigma_max).to(x.device), lambda_of(sigma_min).to(x.device)
    m = nfe // 3 + 1
    ts = torch.linspace(float(t_start), float(t_end), m + 1, device=x.device)
    orders = [3] * (m - 2) + [2, 1] if nfe % 3 == 0 else [3] * (m - 1) + [nfe % 3]
    for i, order in enumerate(orders):
        cache: dict = {}
        t, t_next = ts[i], ts[i + 1]
        su = 0.0
        t_target = t_next
        if eta:
            sd, _ = get_ancestral_step(sigma_of(t), sigma_of(t_next), eta)
            t_target = torch.minimum(t_end, lambda_of(sd))
            su = (sigma_of(t_next) ** 2 - sigma_of(t_target) ** 2) ** 0.5
        solver.report(x, i, t, cache)
        step = {1: solver.step_1, 2: solver.step_2, 3: solver.step_3}[order]
        x = step(x, t, t_target, cache)
        if eta:
            x = x + su * s_noise * noise_sampler(sigma_of(t), sigma_of(t_next))
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
    extra_args, noise_sampler, _ = setup(x, extra_args, noise_sampler, seed)
    sigma_max, sigma_min = _sigma_range(sigmas)
    solver = _DPMSolver(model, extra_args, callback)
    s, t_end = lambda_of(sigma_max).to(x.device), lambda_of(sigma_min).to(x.device)
    controller = _PID(abs(h_init), pcoeff, icoeff, dcoeff, 1.5 if eta else order, accept_safety)
    atol_t, rtol_t = torch.tensor(atol), torch.tensor(rtol)
    x_prev, steps = x, 0
    while s < t_end - 1e-5:
        cache: dict = {}
        t = torch.minimum(t_end, s + controller.h)
        t_target, su = t, 0.0
        if eta:
            sd, _ = get_ancestral_step(sigma_of(s), sigma_of(t), eta)
            t_target = torch.minimum(t_end, lambda_of(sd))
            su = (sigma_of(t) ** 2 - sigma_of(t_target) ** 2) ** 0.5
        solver.report(x, steps, s, cache)
        if order == 2:
            x_low, x_high = solver.step_1(x, s, t_target, cache), solver.step_2(x, s, t_target, cache)
        else:
            x_low, x_high = solver.step_2(x, s, t_target, cache, r1=1 / 3), solver.step_3(x, s, t_target, cache)
        delta = torch.maximum(atol_t, rtol_t * torch.maximum(x_low.abs(), x_prev.abs()))
        error = torch.linalg.norm((x_low - x_high) / delta) / x.numel() ** 0.5
        if controller.propose_step(error):
            x_prev = x_low
            x = x_high + (su * s_noise * noise_sampler(sigma_of(s), sigma_of(t)) if eta else 0)
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
