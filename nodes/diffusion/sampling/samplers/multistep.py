"""Multistep samplers that reuse the slopes or x0 of earlier steps (one model call per step):
iPNDM with fixed and with variable step coefficients (Zhang & Chen 2023), DEIS (Zhang & Chen 2022, the
"tab" form: Adams-Bashforth on the exponential integrator, coefficients by quadrature), RES multistep
(Zhang et al. 2023, arXiv 2308.02157; plain, ancestral and CFG++) and gradient estimation (Permenter &
Yuan 2024; plain and CFG++)."""
from __future__ import annotations

import torch

from .common import (Callback, Model, NoiseSampler, UncondTap, get_ancestral_step, lambda_of, report, setup,
                     sigma_of, to_d)


def _keep_last(history: list, value, size: int) -> None:
    history.append(value)
    if len(history) > size:
        del history[:len(history) - size]


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
        report(callback, x, i, t_cur, denoised)
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
        _keep_last(history, d_cur, max_order - 1)
        x = x_next
    return x


def ipndm_v_weights(order: int, h: list):
    """Weights of the current and earlier slopes for a step of size h[0] = sigma_next - sigma, given the
    earlier step sizes h[1] = sigma - sigma_prev, h[2], h[3] (the variable-step iPNDM of diff-solvers)."""
    if order == 1:
        return [1.0]
    r1 = h[0] / h[1]
    if order == 2:
        return [(2 + r1) / 2, -r1 / 2]
    q1 = h[1] / h[2]
    # third order correction, shared by orders 3 and 4
    c3 = (1 - h[0] / (3 * (h[0] + h[1])) * (h[0] * (h[0] + h[1])) / (h[1] * (h[1] + h[2]))) / 2
    if order == 3:
        return [(2 + r1) / 2 + c3, -r1 / 2 - (1 + q1) * c3, c3 * q1]
    ratio = h[1] * (h[1] + h[2]) / (h[2] * (h[2] + h[3]))
    c4 = (((1 - h[0] / (3 * (h[0] + h[1]))) / 2 + (1 - h[0] / (2 * (h[0] + h[1]))) * h[0] / (6 * (h[0] + h[1] + h[2])))
          * (h[0] * (h[0] + h[1]) * (h[0] + h[1] + h[2])) / (h[1] * (h[1] + h[2]) * (h[1] + h[2] + h[3])))
    return [(2 + r1) / 2 + c3 + c4,
            -r1 / 2 - (1 + q1) * c3 - (1 + q1 + ratio) * c4,
            c3 * q1 + (q1 + ratio * (1 + h[2] / h[3])) * c4,
            -c4 * ratio * q1]


@torch.no_grad()
def sample_ipndm_v(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None, noise_sampler=None,
                   seed=None, max_order=4):
    """iPNDM with coefficients for the actual (non-uniform) step sizes."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    history: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        t_cur, t_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, t_cur * s_in, **extra_args)
        report(callback, x, i, t_cur, denoised)
        d_cur = (x - denoised) / t_cur
        order = min(max_order, i + 1)
        if t_next == 0:
            x_next = denoised
        else:
            steps = [t_next - t_cur] + [sigmas[i - k] - sigmas[i - k - 1] for k in range(order - 1)]
            weights = ipndm_v_weights(order, steps)
            slopes = [d_cur] + history[::-1][:order - 1]
            x_next = x + (t_next - t_cur) * sum(w * d for w, d in zip(weights, slopes))
        _keep_last(history, d_cur, max_order - 1)
        x = x_next
    return x


# --- DEIS ----------------------------------------------------------------------------------------

def _edm_vp_time(sigmas: torch.Tensor, eps_s: float = 1e-3, sigma_min: float = 0.002, sigma_max: float = 80.0):
    """DEIS's time variable: sigma -> t of the VP SDE whose sigma(t) = sqrt(exp(beta_d t²/2 + beta_min t) - 1)
    spans EDM's range [0.002, 80] over t in [eps_s, 1]. Returns (t, beta_0, beta_1)."""
    log_min = torch.log(torch.tensor(sigma_min) ** 2 + 1)
    log_max = torch.log(torch.tensor(sigma_max) ** 2 + 1)
    beta_d = 2 * (log_min / eps_s - log_max) / (eps_s - 1)
    beta_min = log_max - 0.5 * beta_d
    t = ((beta_min ** 2 + 2 * beta_d * (sigmas.detach().cpu() ** 2 + 1).log()).sqrt() - beta_min) / beta_d
    return t, beta_min, beta_d + beta_min


def deis_coefficients(sigmas: torch.Tensor, max_order: int = 3, points: int = 10000) -> list[list[torch.Tensor]]:
    """Per step, the weights of the current and earlier slopes eps = dx/dsigma: the integral over the step of
    dsigma/dt times each Lagrange basis polynomial through the last `order` times (a left Riemann sum)."""
    t, beta_0, beta_1 = _edm_vp_time(sigmas)
    coeffs: list[list[torch.Tensor]] = []
    for i in range(len(t) - 1):
        order = min(i + 1, max_order)
        if order == 1 or sigmas[i + 1] <= 0:  # Euler steps need none
            coeffs.append([])
            continue
        taus = torch.linspace(float(t[i]), float(t[i + 1]), points)
        dtau = (t[i + 1] - t[i]) / points
        log_alpha_slope = -taus * (beta_1 - beta_0) - beta_0  # d/dt of log alpha(t) = -t²/2 (b1 - b0) - t b0
        alpha = torch.exp(-0.5 * taus ** 2 * (beta_1 - beta_0) - taus * beta_0)
        dsigma_dt = -0.5 * log_alpha_slope / torch.sqrt(alpha * (1 - alpha))
        nodes = t[[i - k for k in range(order)]]
        row = []
        for j in range(order):
            basis = torch.ones_like(taus)
            for k in range(order):
                if k != j:
                    basis = basis * ((taus - nodes[k]) / (nodes[j] - nodes[k]))
            row.append(torch.sum(dsigma_dt * basis) * dtau)
        coeffs.append(row)
    return coeffs


@torch.no_grad()
def sample_deis(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None, noise_sampler=None,
                seed=None, max_order=3):
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    coeffs = deis_coefficients(sigmas, max_order)
    history: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        report(callback, x, i, sigmas[i], denoised)
        d_cur = (x - denoised) / sigmas[i]
        order = 1 if sigmas[i + 1] <= 0 else min(max_order, i + 1)
        if order == 1:
            x_next = x + (sigmas[i + 1] - sigmas[i]) * d_cur
        else:
            x_next = x
            for c, d in zip(coeffs[i], [d_cur] + history[::-1][:order - 1]):
                x_next = x_next + c.to(x) * d
        _keep_last(history, d_cur, max_order - 1)
        x = x_next
    return x


# --- RES multistep ------------------------------------------------------------------------------

def _phi1(t):
    return torch.expm1(t) / t


def _phi2(t):
    return (_phi1(t) - 1.0) / t


@torch.no_grad()
def res_multistep(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                  noise_sampler: NoiseSampler | None = None, seed=None, s_noise=1.0, eta=1.0, cfg_pp=False):
    """Second order exponential multistep in lambda from the previous x0 (Euler for the first and last steps);
    eta > 0 steps ancestrally to sigma_down and adds noise; cfg_pp steps along the uncond x0."""
    extra_args, noise_sampler, s_in = setup(x, extra_args, noise_sampler, seed)
    tap = UncondTap(extra_args) if cfg_pp else None
    call_args = tap.extra_args if tap else extra_args
    old_denoised = old_sigma_down = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **call_args)
        sigma_down, sigma_up = get_ancestral_step(sigmas[i], sigmas[i + 1], eta=eta)
        report(callback, x, i, sigmas[i], denoised)
        uncond = tap.get() if tap else None
        if sigma_down == 0 or old_denoised is None:
            if tap:
                x = denoised + to_d(x, sigmas[i], uncond) * sigma_down
            else:
                x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            lam, lam_old, lam_next = lambda_of(sigmas[i]), lambda_of(old_sigma_down), lambda_of(sigma_down)
            h = lam_next - lam
            c2 = (lambda_of(sigmas[i - 1]) - lam_old) / h
            phi1, phi2 = _phi1(-h), _phi2(-h)
            b1 = torch.nan_to_num(phi1 - phi2 / c2, nan=0.0)
            b2 = torch.nan_to_num(phi2 / c2, nan=0.0)
            if tap:
                x = sigma_of(h) * (x + (denoised - uncond)) + h * (b1 * uncond + b2 * old_denoised)
            else:
                x = sigma_of(h) * x + h * (b1 * denoised + b2 * old_denoised)
        if sigmas[i + 1] > 0:
            x = x + noise_sampler(sigmas[i], sigmas[i + 1]) * s_noise * sigma_up
        old_denoised = uncond if tap else denoised
        old_sigma_down = sigma_down
    return x


def sample_res_multistep(model, x, sigmas, *, s_noise=1.0, **kw):
    return res_multistep(model, x, sigmas, s_noise=s_noise, eta=0.0, cfg_pp=False, **kw)


def sample_res_multistep_cfg_pp(model, x, sigmas, *, s_noise=1.0, **kw):
    return res_multistep(model, x, sigmas, s_noise=s_noise, eta=0.0, cfg_pp=True, **kw)


def sample_res_multistep_ancestral(model, x, sigmas, *, eta=1.0, s_noise=1.0, **kw):
    return res_multistep(model, x, sigmas, s_noise=s_noise, eta=eta, cfg_pp=False, **kw)


def sample_res_multistep_ancestral_cfg_pp(model, x, sigmas, *, eta=1.0, s_noise=1.0, **kw):
    return res_multistep(model, x, sigmas, s_noise=s_noise, eta=eta, cfg_pp=True, **kw)


# --- gradient estimation --------------------------------------------------------------------------

@torch.no_grad()
def sample_gradient_estimation(model: Model, x, sigmas, *, extra_args=None, callback: Callback = None,
                               noise_sampler=None, seed=None, ge_gamma=2.0, cfg_pp=False):
    """Euler plus (ge_gamma - 1) times the change of the slope since the last step (a momentum-like
    correction of the denoiser's error)."""
    extra_args = extra_args or {}
    s_in = x.new_ones([x.shape[0]])
    tap = UncondTap(extra_args) if cfg_pp else None
    call_args = tap.extra_args if tap else extra_args
    old_d = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **call_args)
        d = to_d(x, sigmas[i], tap.get() if tap else denoised)
        report(callback, x, i, sigmas[i], denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            x = denoised + d * sigmas[i + 1] if tap else x + d * dt
            if i >= 1:
                x = x + (ge_gamma - 1) * (d - old_d) * dt
        old_d = d
    return x


def sample_gradient_estimation_cfg_pp(model, x, sigmas, *, ge_gamma=2.0, **kw):
    return sample_gradient_estimation(model, x, sigmas, ge_gamma=ge_gamma, cfg_pp=True, **kw)
