"""UniPC (Zhao et al. 2023, arXiv 2302.04867): multistep predictor-corrector, data prediction, B(h) variants.

Run as ComfyUI runs it: in VP space with the noise level itself as the time variable
(alpha = 1/sqrt(1+sigma²), std = sigma/sqrt(1+sigma²), lambda = -log sigma), order min(3, steps - 1),
lower order for the final steps, no corrector after the last step, and a final sigma of 0
replaced by 0.001. One ComfyUI quirk kept for identical images: a single step returns the input.
"""
from __future__ import annotations

import torch


def _log_alpha(sigma: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.log(1 / (sigma * sigma + 1))


def _alpha(sigma):
    return torch.exp(_log_alpha(sigma))


def _std(sigma):
    return torch.sqrt(1.0 - torch.exp(2.0 * _log_alpha(sigma)))


def _lambda(sigma):
    la = _log_alpha(sigma)
    return la - 0.5 * torch.log(1.0 - torch.exp(2.0 * la))


def _view(v: torch.Tensor, ndim: int) -> torch.Tensor:
    return v[(...,) + (None,) * (ndim - 1)]


class _UniPC:
    def __init__(self, model, extra_args: dict, variant: str) -> None:
        if variant not in ("bh1", "bh2"):
            raise ValueError(f"UniPC variant must be 'bh1' or 'bh2', not {variant!r}")
        self.model, self.extra_args, self.variant = model, extra_args, variant

    def data_prediction(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """x0 from a VP state x at noise level sigma [B] (the denoiser works in VE space)."""
        s = _view(sigma, x.ndim)
        x_ve = x * (s ** 2 + 1.0) ** 0.5
        eps = (x_ve - self.model(x_ve, sigma, **self.extra_args)) / s
        return (x - _view(_std(sigma), x.ndim) * eps) / _view(_alpha(sigma), x.ndim)

    def update(self, x, model_prev: list, t_prev: list, t: torch.Tensor, order: int, use_corrector: bool):
        """One UniP step to t (B(h) variant), corrected by UniC when use_corrector."""
        ndim = x.ndim
        t_prev_0, m_prev_0 = t_prev[-1], model_prev[-1]
        lambda_prev_0, lambda_t = _lambda(t_prev_0), _lambda(t)
        sigma_prev_0, sigma_t = _std(t_prev_0), _std(t)
        alpha_t = _alpha(t)
        h = lambda_t - lambda_prev_0

        rks, d1s = [], []
        for i in range(1, order):
            rk = ((_lambda(t_prev[-(i + 1)]) - lambda_prev_0) / h)[0]
            rks.append(rk)
            d1s.append((model_prev[-(i + 1)] - m_prev_0) / rk)
        rks.append(1.0)
        rks = torch.tensor(rks, device=x.device)

        hh = -h[0]  # data prediction
        h_phi_1 = torch.expm1(hh)
        b_h = hh if self.variant == "bh1" else torch.expm1(hh)
        # the b recurrence cancels badly for small h: float64 on the CPU
        hh64 = hh.detach().cpu().double()
        h_phi_k = torch.expm1(hh64) / hh64 - 1
        b_h64 = hh64 if self.variant == "bh1" else torch.expm1(hh64)
        R, b, factorial = [], [], 1
        for i in range(1, order + 1):
            R.append(torch.pow(rks, i - 1))
            b.append(float(h_phi_k * factorial / b_h64))
            factorial *= i + 1
            h_phi_k = h_phi_k / hh64 - 1 / factorial
        R = torch.stack(R)
        b = torch.tensor(b, device=x.device, dtype=hh.dtype)

        d1s_t = torch.stack(d1s, dim=1) if d1s else None
        rhos_p = None
        if d1s_t is not None:
            rhos_p = torch.tensor([0.5], device=x.device) if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
        rhos_c = None
        if use_corrector:
            rhos_c = torch.tensor([0.5], device=x.device) if order == 1 else torch.linalg.solve(R, b)

        x_t_ = _view(sigma_t / sigma_prev_0, ndim) * x - _view(alpha_t * h_phi_1, ndim) * m_prev_0
        pred_res = torch.tensordot(d1s_t, rhos_p, dims=([1], [0])) if d1s_t is not None else 0
        x_t = x_t_ - _view(alpha_t * b_h, ndim) * pred_res
        model_t = None
        if use_corrector:
            model_t = self.data_prediction(x_t, t)
            corr_res = torch.tensordot(d1s_t, rhos_c[:-1], dims=([1], [0])) if d1s_t is not None else 0
            x_t = x_t_ - _view(alpha_t * b_h, ndim) * (corr_res + rhos_c[-1] * (model_t - m_prev_0))
        return x_t, model_t


@torch.no_grad()
def sample_unipc(model, x, sigmas, *, extra_args=None, callback=None, noise_sampler=None, seed=None,
                 variant: str = "bh1"):
    extra_args = extra_args or {}
    timesteps = sigmas.clone()
    if timesteps[-1] == 0:
        timesteps[-1] = 0.001
    x = x / torch.sqrt(1.0 + timesteps[0] ** 2.0)  # VE -> VP
    solver = _UniPC(model, extra_args, variant)
    steps = len(timesteps) - 1
    order = min(3, len(timesteps) - 2)
    batch = x.shape[0]
    model_prev: list[torch.Tensor] = []
    t_prev: list[torch.Tensor] = []
    for step_index in range(steps):
        if step_index == 0:
            vec_t = timesteps[0].expand(batch)
            model_prev, t_prev = [solver.data_prediction(x, vec_t)], [vec_t]
        elif step_index < order:  # warm-up with lower orders
            vec_t = timesteps[step_index].expand(batch)
            x, model_x = solver.update(x, model_prev, t_prev, vec_t, step_index, use_corrector=True)
            if model_x is None:
                model_x = solver.data_prediction(x, vec_t)
            model_prev.append(model_x)
            t_prev.append(vec_t)
        else:
            last = step_index + (2 if step_index == steps - 1 else 1)
            for step in range(step_index, last):
                vec_t = timesteps[step].expand(batch)
                step_order = min(order, steps + 1 - step)  # lower order at the end
                use_corrector = step != steps  # no model call after the last step
                x, model_x = solver.update(x, model_prev, t_prev, vec_t, step_order, use_corrector)
                for i in range(order - 1):
                    t_prev[i], model_prev[i] = t_prev[i + 1], model_prev[i + 1]
                t_prev[-1] = vec_t
                if step < steps:
                    if model_x is None:
                        model_x = solver.data_prediction(x, vec_t)
                    model_prev[-1] = model_x
        if callback is not None:
            callback({"x": x, "i": step_index, "sigma": sigmas[step_index], "sigma_hat": sigmas[step_index],
                      "denoised": model_prev[-1]})
    return x / _alpha(timesteps[-1])  # VP -> VE
