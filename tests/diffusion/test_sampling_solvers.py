"""The samplers ComfyUI 0.8 added after k-diffusion's set (ipndm_v, deis, res_multistep, gradient_estimation,
er_sde, seeds_2/3, exp_heun_2_x0, sa_solver), on the analytic Gaussian denoiser of test_sampling_samplers:

- the exact probability-flow ODE (closed form) for the deterministic ones, and their order of accuracy;
- the data distribution N(mu, s²) for the stochastic ones;
- single steps written again here from the papers' formulas, and identities between samplers that the
  formulas imply (ER-SDE with the ODE noise scale and one stage is DDIM = Euler; SEEDS-2 with eta 0, phi_1 and
  r 1/2 is DPM-Solver++(2S); SA-Solver of order 1 without corrector is DDIM; iPNDM-v on equal steps is iPNDM).
Formulas: comfy/k_diffusion/sampling.py, deis.py and sa_solver.py of ComfyUI 0.8 and the papers they cite.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import torch

from nodes.diffusion.sampling import SAMPLER_NAMES, ModelSampling, calculate_sigmas, get_sampler
from nodes.diffusion.sampling.samplers import KSAMPLER_NAMES
from nodes.diffusion.sampling.samplers.multistep import deis_coefficients, ipndm_v_weights
from nodes.diffusion.sampling.samplers.sa_solver import stochastic_adams_weights, tau_interval

from tests.diffusion.test_sampling_samplers import MU, S, Gaussian, start

# comfy/samplers.py (0.8.0): KSAMPLER_NAMES, then SAMPLER_NAMES = KSAMPLER_NAMES + ["ddim", "uni_pc", "uni_pc_bh2"]
COMFY_KSAMPLER_NAMES = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "exp_heun_2_x0",
    "exp_heun_2_x0_sde", "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm",
    "lcm", "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece"]

ODE_TOLERANCE = {"ipndm_v": 0.01, "deis": 0.01, "res_multistep": 0.02, "gradient_estimation": 0.08,
                 "exp_heun_2_x0": 0.01}
STOCHASTIC = ["er_sde", "seeds_2", "seeds_3", "res_multistep_ancestral", "exp_heun_2_x0_sde", "sa_solver",
              "sa_solver_pece"]


@pytest.fixture(scope="module")
def karras():
    ms = ModelSampling()
    return {n: calculate_sigmas(ms, "karras", n) for n in (5, 10, 30, 60)}


def test_sampler_names_and_order_are_comfyuis():
    assert KSAMPLER_NAMES == COMFY_KSAMPLER_NAMES
    assert SAMPLER_NAMES == COMFY_KSAMPLER_NAMES + ["ddim", "uni_pc", "uni_pc_bh2"]
    assert len(SAMPLER_NAMES) == 44


def flow_error(name, sigmas, **options):
    x = start()
    exact = Gaussian().exact(x, float(sigmas[0]), float(sigmas[-1]))
    return float((get_sampler(name)(Gaussian(), x, sigmas, **options) - exact).abs().max())


@pytest.mark.parametrize("name", list(ODE_TOLERANCE))
def test_deterministic_solvers_follow_the_exact_flow(name, karras):
    assert flow_error(name, karras[30][:-1]) < ODE_TOLERANCE[name]


def test_orders_of_accuracy(karras):
    """Halving the step divides a p-th order method's error by about 2^p: Euler ~2, these >= ~4."""
    euler = flow_error("euler", karras[30][:-1])
    for name in ("deis", "res_multistep", "exp_heun_2_x0"):
        coarse, fine = flow_error(name, karras[30][:-1]), flow_error(name, karras[60][:-1])
        assert coarse / fine > 3.5 and fine < euler / 10, (name, coarse, fine)
    ode_sde = {"ipndm_v": {"max_order": 3},  # see test_ipndm_v_weights_on_equal_steps for order 4
               "sa_solver": {"tau_func": lambda s: 0.0}, "seeds_3": {"eta": 0.0}, "seeds_2": {"eta": 0.0},
               "er_sde": {"s_noise": 0.0, "noise_scaler": lambda v: v}}  # their ODE settings
    for name, options in ode_sde.items():
        coarse, fine = flow_error(name, karras[30][:-1], **options), flow_error(name, karras[60][:-1], **options)
        assert coarse / fine > 3.5 and fine < euler / 10, (name, coarse, fine)
    # gradient estimation is a corrected Euler: smaller error, same order
    ge_coarse, ge_fine = flow_error("gradient_estimation", karras[30][:-1]), flow_error("gradient_estimation", karras[60][:-1])
    assert ge_coarse < euler and 1.5 < ge_coarse / ge_fine < 2.5


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_solvers_draw_from_the_data_distribution(name, karras):
    x = start(n=20000, seed=1)
    out = get_sampler(name)(Gaussian(), x, karras[30], seed=123)
    assert abs(float(out.mean()) - MU) < 0.02, name
    assert abs(float(out.std()) / S - 1) < 0.05, (name, float(out.std()))
    assert torch.equal(out, get_sampler(name)(Gaussian(), x, karras[30], seed=123))
    assert not torch.equal(out, get_sampler(name)(Gaussian(), x, karras[30], seed=124))


def test_model_calls_per_step(karras):
    expected = {"ipndm_v": 10, "deis": 10, "res_multistep": 10, "gradient_estimation": 10, "er_sde": 10,
                "seeds_2": 19, "exp_heun_2_x0": 19, "seeds_3": 28, "sa_solver": 10, "sa_solver_pece": 19}
    for name, calls in expected.items():
        model, steps = Gaussian(), []
        get_sampler(name)(model, start(), karras[10], seed=0, callback=lambda d: steps.append(d["i"]))
        assert model.calls == calls and steps == list(range(10)), (name, model.calls)


def test_last_step_to_zero_is_the_denoised_sample():
    x = start(8)
    sigmas = torch.tensor([3.0, 0.0])
    d = Gaussian()(x, sigmas[:1])
    for name in ["ipndm_v", "res_multistep", "gradient_estimation", "er_sde", "seeds_2", "seeds_3",
                 "exp_heun_2_x0", "sa_solver", "sa_solver_pece"]:
        assert torch.allclose(get_sampler(name)(Gaussian(), x, sigmas, seed=1), d, atol=1e-5), name


# --- identities the formulas imply -------------------------------------------------------------------

def test_ipndm_v_on_equal_steps_is_ipndm_up_to_order_3():
    sigmas = torch.linspace(10.0, 1.0, 9)
    x = start(16)
    ours = get_sampler("ipndm_v")(Gaussian(), x, sigmas, max_order=3)
    assert torch.allclose(ours, get_sampler("ipndm")(Gaussian(), x, sigmas, max_order=3), atol=1e-5)


def test_ipndm_v_weights_on_equal_steps():
    """Orders 1-3 give Adams-Bashforth's weights, and sum to 1 for any steps. ComfyUI's order 4 (from
    zju-pi/diff-sampler) adds 1/12 of the third backward difference to AB4's (55, -59, 37, -9) / 24 and sums
    to 1 only where consecutive steps keep one ratio; kept as it is, for ComfyUI's images."""
    h = [-1.0] * 4
    assert ipndm_v_weights(2, h) == pytest.approx([3 / 2, -1 / 2])
    assert ipndm_v_weights(3, h) == pytest.approx([23 / 12, -16 / 12, 5 / 12])
    ab4 = np.array([55, -59, 37, -9]) / 24
    assert ipndm_v_weights(4, h) == pytest.approx(list(ab4 + np.array([1, -3, 3, -1]) / 12))
    assert sum(ipndm_v_weights(3, [-1.0, -0.5, -2.0])) == pytest.approx(1.0)
    assert sum(ipndm_v_weights(4, [-1.0, -2.0, -4.0, -8.0])) == pytest.approx(1.0)
    assert sum(ipndm_v_weights(4, [-1.0, -0.5, -2.0, -0.7])) != pytest.approx(1.0)


def test_er_sde_with_ode_noise_scale_and_one_stage_is_euler(karras):
    x = start(16)
    out = get_sampler("er_sde")(Gaussian(), x, karras[10], s_noise=0.0, noise_scaler=lambda v: v, max_stage=1)
    assert torch.allclose(out, get_sampler("euler")(Gaussian(), x, karras[10]), atol=1e-5)


def test_seeds_2_without_noise_is_dpmpp_2s(karras):
    x = start(16)
    out = get_sampler("seeds_2")(Gaussian(), x, karras[10], eta=0.0, solver_type="phi_1", r=0.5)
    ref = get_sampler("dpmpp_2s_ancestral")(Gaussian(), x, karras[10], eta=0.0)
    assert torch.allclose(out, ref, atol=1e-5)


def test_sa_solver_of_order_one_without_noise_is_euler(karras):
    x = start(16)
    out = get_sampler("sa_solver")(Gaussian(), x, karras[10], tau_func=lambda s: 0.0, predictor_order=1,
                                   corrector_order=0)
    assert torch.allclose(out, get_sampler("euler")(Gaussian(), x, karras[10]), atol=1e-5)


# --- single steps from the papers' formulas -----------------------------------------------------------

def test_res_multistep_second_step_by_hand():
    """RES 2-step (arXiv 2308.02157): x_{i+1} = e^-h x_i + h (b1 D_i + b2 D_{i-1}), b2 = phi2(-h) / c2,
    b1 = phi1(-h) - b2, c2 = (lambda_{i-1} - lambda_i) / h, phi1(z) = (e^z - 1) / z, phi2(z) = (phi1(z) - 1) / z."""
    x = start(8)
    sig = [10.0, 4.0, 1.5]
    model = Gaussian()
    d0 = model(x, torch.tensor([sig[0]]))
    x1 = x + (x - d0) / sig[0] * (sig[1] - sig[0])  # first step: Euler
    d1 = model(x1, torch.tensor([sig[1]]))
    lam = [-math.log(s) for s in sig]
    h = lam[2] - lam[1]
    c2 = (lam[0] - lam[1]) / h
    phi1 = math.expm1(-h) / -h
    phi2 = (phi1 - 1) / -h
    b2 = phi2 / c2
    b1 = phi1 - b2
    x2 = math.exp(-h) * x1 + h * (b1 * d1 + b2 * d0)
    assert torch.allclose(get_sampler("res_multistep")(Gaussian(), x, torch.tensor(sig)), x2, atol=1e-5)


def test_gradient_estimation_two_steps_by_hand():
    """Euler, then Euler plus (gamma - 1)(d_i - d_{i-1}) dt (Permenter & Yuan, gamma = 2)."""
    x = start(8)
    sig = [10.0, 4.0, 1.5]
    model = Gaussian()
    d0 = (x - model(x, torch.tensor([sig[0]]))) / sig[0]
    x1 = x + d0 * (sig[1] - sig[0])
    d1 = (x1 - model(x1, torch.tensor([sig[1]]))) / sig[1]
    x2 = x1 + d1 * (sig[2] - sig[1]) + (d1 - d0) * (sig[2] - sig[1])
    assert torch.allclose(get_sampler("gradient_estimation")(Gaussian(), x, torch.tensor(sig)), x2, atol=1e-5)


def test_er_sde_first_step_with_noise_by_hand():
    """VP ER-SDE stage 1 (arXiv 2309.06169, eq. 19), eps model (alpha = 1, lambda = sigma):
    x_t = r x_s + (1 - r) D + sqrt(lambda_t² - lambda_s² r²) z, r = f(lambda_t) / f(lambda_s), f(v) = v (e^(v^0.3) + 10)."""
    x = start(8)
    s0, s1 = 8.0, 3.0
    z = torch.randn(1, 8)
    f = lambda v: v * (math.exp(v ** 0.3) + 10)  # noqa: E731
    r = f(s1) / f(s0)
    ref = r * x + (1 - r) * Gaussian()(x, torch.tensor([s0])) + math.sqrt(s1 ** 2 - s0 ** 2 * r ** 2) * z
    out = get_sampler("er_sde")(Gaussian(), x, torch.tensor([s0, s1]), noise_sampler=lambda a, b: z)
    assert torch.allclose(out, ref, atol=1e-5)


def test_deis_coefficients_integrate_dsigma_dt():
    """DEIS (tab) weights are integrals of dsigma/dt times Lagrange basis polynomials in DEIS's time t, so
    they sum to sigma_next - sigma (the basis sums to 1) and are exact for a slope polynomial in t."""
    sigmas = calculate_sigmas(ModelSampling(), "karras", 12)
    coeffs = deis_coefficients(sigmas, max_order=3)
    assert coeffs[0] == [] and coeffs[-1] == [] and [len(c) for c in coeffs[1:-1]] == [2] + [3] * 9
    for i, row in enumerate(coeffs[1:-1], start=1):
        assert float(sum(row)) == pytest.approx(float(sigmas[i + 1] - sigmas[i]), rel=2e-3)


def test_sa_solver_weights_are_exponentially_weighted_lagrange_integrals():
    """b_j = alpha_t (1 + tau²) * integral over [lambda_s, lambda_t] of exp(-(1 + tau²)(lambda_t - l)) L_j(l) dl
    (SA-Solver eq. 15 in data prediction; alpha_t = 1 for an eps model), checked by quadrature."""
    lambdas = torch.tensor([-2.0, -1.4, -0.9], dtype=torch.float64)
    lam_s, lam_t = lambdas[-1], torch.tensor(-0.3, dtype=torch.float64)
    sigma_t = torch.exp(-lam_t)
    for tau in (0.0, 1.0):
        k = 1 + tau ** 2
        b = stochastic_adams_weights(sigma_t, lambdas, lam_s, lam_t, tau)
        nodes = lambdas.numpy()
        for j in range(3):
            basis = lambda v, j=j: np.prod([(v - nodes[m]) / (nodes[j] - nodes[m]) for m in range(3) if m != j])  # noqa: E731
            ref = scipy.integrate.quad(lambda v: k * math.exp(-k * (float(lam_t) - v)) * basis(v),
                                       float(lam_s), float(lam_t))[0]
            assert float(b[j]) == pytest.approx(ref, rel=1e-6, abs=1e-9), (tau, j)


def test_sa_solver_sde_window_follows_percent_of_the_run():
    ms = ModelSampling()
    tau = tau_interval(ms.percent_to_sigma(0.2), ms.percent_to_sigma(0.8), eta=1.0)
    assert tau(ms.sigma_max) == 0.0 and tau(torch.tensor(1.0)) == 1.0 and tau(ms.sigma_min) == 0.0
    assert tau_interval(10.0, 0.1, eta=0.0)(1.0) == 0.0
