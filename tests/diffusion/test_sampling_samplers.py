"""Samplers as pure functions, on analytic denoisers whose answers are known.

- Gaussian data N(mu, s²) per element: the exact denoiser is D(x, sigma) = mu + s²/(s² + sigma²) (x - mu)
  and the probability-flow ODE has the closed form x(sigma) = mu + sqrt((s² + sigma²)/(s² + sigma_0²)) (x_0 - mu).
- diffusers' k-diffusion-style schedulers run the same step equations on the same sigmas and noise.
"""
from __future__ import annotations

import math

import pytest
import torch

from nodes.diffusion.sampling import (SAMPLER_NAMES, ModelSampling, calculate_sigmas, default_noise_sampler,
                                      get_ancestral_step, get_sampler)
from nodes.diffusion.sampling.noise import BrownianTreeNoiseSampler

MU, S = 0.6, 0.3
ODE_SAMPLERS = ["euler", "heun", "heunpp2", "dpm_2", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2m", "ipndm", "uni_pc",
                "uni_pc_bh2", "ddim"]
STOCHASTIC_SAMPLERS = ["euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_sde_gpu",
                       "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_3m_sde", "ddpm", "lcm"]


class Gaussian:
    """The exact denoiser of N(mu, s²) data; counts its calls."""

    def __init__(self, mu=MU, s=S):
        self.mu, self.s, self.calls = mu, s, 0

    def __call__(self, x, sigma, **_):
        self.calls += 1
        sig = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        return self.mu + self.s ** 2 / (self.s ** 2 + sig ** 2) * (x - self.mu)

    def exact(self, x_start, sigma_start, sigma_end=0.0):
        return self.mu + math.sqrt((self.s ** 2 + sigma_end ** 2) / (self.s ** 2 + sigma_start ** 2)) * (x_start - self.mu)


@pytest.fixture(scope="module")
def karras():
    ms = ModelSampling()
    return {n: calculate_sigmas(ms, "karras", n) for n in (5, 10, 30)}


def start(n=64, seed=0, sigma=14.6146):
    g = torch.Generator().manual_seed(seed)
    return MU + torch.randn(1, n, generator=g) * math.sqrt(S ** 2 + sigma ** 2)


# --- convergence -----------------------------------------------------------------------------------

def test_every_sampler_name_resolves():
    required = {"euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2s_ancestral",
                "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde", "ddpm", "ddim", "uni_pc"}
    assert required <= set(SAMPLER_NAMES)
    assert set(ODE_SAMPLERS) | set(STOCHASTIC_SAMPLERS) <= set(SAMPLER_NAMES)
    with pytest.raises(ValueError, match="unknown sampler 'dpm_magic'"):
        get_sampler("dpm_magic")


def flow_errors(sigmas, names=ODE_SAMPLERS):
    """Max error against the closed-form ODE solution, on a schedule stopping at sigma_min (the final
    jump to 0 is a one-step denoise whose own error would hide the integration order)."""
    x = start()
    exact = Gaussian().exact(x, float(sigmas[0]), float(sigmas[-1]))
    return {n: float((get_sampler(n)(Gaussian(), x, sigmas) - exact).abs().max()) for n in names}


@pytest.mark.parametrize("name", ODE_SAMPLERS)
def test_ode_samplers_follow_the_exact_flow(name, karras):
    err = flow_errors(karras[30][:-1], [name])[name]
    limit = {"euler": 0.08, "ddim": 0.08, "heunpp2": 0.08, "dpm_adaptive": 0.03}.get(name, 0.01)  # adaptive: rtol 0.05
    assert err < limit, (name, err)


def test_dpm_solver_fast_and_adaptive_budgets(karras):
    """dpm_fast spends exactly the schedule's number of model calls; dpm_adaptive only uses its ends."""
    for n in (10, 30):
        model, steps = Gaussian(), []
        get_sampler("dpm_fast")(model, start(), karras[n], callback=lambda d: steps.append(d["i"]))
        assert model.calls == n and steps == list(range(n // 3 + 1))
    a = get_sampler("dpm_adaptive")(Gaussian(), start(), karras[10])
    b = get_sampler("dpm_adaptive")(Gaussian(), start(), karras[30])
    assert torch.equal(a, b)


def test_higher_order_samplers_converge_faster(karras):
    err = flow_errors(karras[30][:-1])
    for name in ("heun", "dpm_2", "dpmpp_2m", "lms", "ipndm", "uni_pc", "uni_pc_bh2"):
        assert err[name] < err["euler"] / 5, (name, err)
    assert err["uni_pc"] < err["dpmpp_2m"] / 5 and err["uni_pc_bh2"] < err["heun"] / 5  # third order
    assert err["ddim"] == err["euler"]
    coarse = flow_errors(karras[10][:-1], ["euler", "heun"])
    assert coarse["euler"] / err["euler"] < 4 < coarse["heun"] / err["heun"]  # first vs second order


@pytest.mark.parametrize("name", STOCHASTIC_SAMPLERS)
def test_stochastic_samplers_draw_from_the_data_distribution(name, karras):
    """Mean and spread of N(mu, s²). First-order ancestral steps lose spread with few steps (each step
    uses one x0 guess instead of the posterior over x0), so they get more steps; LCM keeps the shrinkage
    of its final denoise by design (it is meant for distilled models)."""
    x = start(n=20000, seed=1)
    first_order = name in ("euler_ancestral", "ddpm")
    sigmas = calculate_sigmas(ModelSampling(), "karras", 300) if first_order else karras[30]
    out = get_sampler(name)(Gaussian(), x, sigmas, seed=123)
    assert abs(float(out.mean()) - MU) < 0.02, name
    if name == "lcm":
        assert 0.5 * S < float(out.std()) < S
    else:
        assert abs(float(out.std()) / S - 1) < 0.04, (name, float(out.std()))
    assert torch.equal(out, get_sampler(name)(Gaussian(), x, sigmas, seed=123))  # seeded: reproducible
    assert not torch.equal(out, get_sampler(name)(Gaussian(), x, sigmas, seed=124))


def test_euler_ancestral_is_ddpm_ancestral_sampling(karras):
    x = start(n=256)
    a = get_sampler("euler_ancestral")(Gaussian(), x, karras[10], seed=5)
    b = get_sampler("ddpm")(Gaussian(), x, karras[10], seed=5)
    assert torch.allclose(a, b, atol=1e-4)


def test_model_calls_and_callback(karras):
    sigmas = karras[10]
    expected_calls = {"euler": 10, "heun": 19, "dpm_2": 19, "dpm_2_ancestral": 19, "dpmpp_2s_ancestral": 19,
                      "dpmpp_sde": 19, "lms": 10, "dpmpp_2m": 10, "uni_pc": 10, "ddpm": 10}
    for name, calls in expected_calls.items():
        model, steps = Gaussian(), []
        get_sampler(name)(model, start(), sigmas, seed=0, callback=lambda d: steps.append((d["i"], d["denoised"].shape)))
        assert model.calls == calls, name
        assert [i for i, _ in steps] == list(range(10)) and all(s == (1, 64) for _, s in steps), name


# --- step equations ----------------------------------------------------------------------------------

def test_one_euler_and_one_ancestral_step_by_hand():
    x = start(8)
    s0, s1 = torch.tensor(10.0), torch.tensor(4.0)
    sigmas = torch.stack([s0, s1])
    d0 = Gaussian()(x, s0.reshape(1))
    assert torch.allclose(get_sampler("euler")(Gaussian(), x, sigmas), x + (x - d0) / s0 * (s1 - s0))
    # ancestral: deterministic step to sigma_down, then noise of std sigma_up; sigma_down² + sigma_up² = s1²
    sigma_up = (s1 ** 2 * (s0 ** 2 - s1 ** 2) / s0 ** 2) ** 0.5
    sigma_down = (s1 ** 2 - sigma_up ** 2) ** 0.5
    assert get_ancestral_step(s0, s1) == (pytest.approx(float(sigma_down)), pytest.approx(float(sigma_up)))
    noise = torch.randn(1, 8)
    out = get_sampler("euler_ancestral")(Gaussian(), x, sigmas, noise_sampler=lambda a, b: noise)
    assert torch.allclose(out, x + (x - d0) / s0 * (sigma_down - s0) + noise * sigma_up, atol=1e-6)


def test_one_dpmpp_2s_ancestral_step_by_hand():
    """DPM-Solver++(2S): half a step in lambda = -log sigma from x0, then the full step from the midpoint's x0."""
    x = start(8)
    s0, s1 = torch.tensor(8.0), torch.tensor(2.0)
    noise = torch.randn(1, 8)
    out = get_sampler("dpmpp_2s_ancestral")(Gaussian(), x, torch.stack([s0, s1]), noise_sampler=lambda a, b: noise)
    down, up = get_ancestral_step(s0, s1)
    h = math.log(s0 / down)
    s_mid = float(s0) * math.exp(-h / 2)
    x_mid = (s_mid / s0) * x + (1 - math.exp(-h / 2)) * Gaussian()(x, s0.reshape(1))
    x_new = (down / s0) * x + (1 - math.exp(-h)) * Gaussian()(x_mid, torch.tensor([s_mid]))
    assert torch.allclose(out, x_new + noise * up, atol=1e-5)


def test_final_step_to_zero_returns_the_denoised_sample():
    x = start(8)
    sigmas = torch.tensor([3.0, 0.0])
    d = Gaussian()(x, sigmas[:1])
    for name in ["euler", "euler_ancestral", "heun", "lms", "dpmpp_2m", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde",
                 "ddpm", "lcm", "ipndm", "dpm_2"]:
        assert torch.allclose(get_sampler(name)(Gaussian(), x, sigmas, seed=1), d, atol=1e-5), name


def test_uni_pc_single_step_keeps_comfyui_quirk():
    """ComfyUI's UniPC with one step evaluates the model once and returns its input (order 0)."""
    x = start(8)
    model = Gaussian()
    out = get_sampler("uni_pc")(model, x, torch.tensor([14.6146, 0.0]))
    assert model.calls == 1
    assert torch.allclose(out, x / math.sqrt(1 + 14.6146 ** 2) * math.sqrt(1 + 0.001 ** 2), rtol=1e-5)


# --- the same steps as diffusers' schedulers -------------------------------------------------------

def _diffusers(cls, **kw):
    return cls(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000, **kw)


def run_diffusers(sched, x, model, *, vp=False, sigma_of=None, generator=None, stop=None):
    """Drive a diffusers scheduler with the eps prediction of `model` (a VE denoiser)."""
    sample = x / (1 + float(sched.sigmas[0]) ** 2) ** 0.5 if vp else x
    for i, t in enumerate(sched.timesteps[:stop]):
        sched.scale_model_input(sample, t)
        sigma = float(sigma_of(sched, i) if sigma_of else sched.sigmas[i])
        x_ve = sample * (1 + sigma ** 2) ** 0.5 if vp else sample
        eps = (x_ve - model(x_ve, torch.tensor([sigma]))) / sigma
        kw = {"generator": generator} if generator is not None else {}
        sample = sched.step(eps, t, sample, **kw).prev_sample
    return sample


def _dedup(sigmas):
    """Interleaved second-order sigmas [s0, s1, s1, s2, s2, ..., 0] -> [s0, s1, ..., 0]."""
    return torch.cat([sigmas[:1], sigmas[1:-1:2], sigmas[-1:]])


@pytest.mark.parametrize("steps", [6, 12])
def test_euler_heun_match_diffusers(steps):
    from diffusers import EulerDiscreteScheduler, HeunDiscreteScheduler
    x = start(16)
    sched = _diffusers(EulerDiscreteScheduler, use_karras_sigmas=True)
    sched.set_timesteps(steps)
    ours = get_sampler("euler")(Gaussian(), x, sched.sigmas.float())
    assert torch.allclose(ours, run_diffusers(sched, x, Gaussian()), atol=1e-5)

    sched = _diffusers(HeunDiscreteScheduler, use_karras_sigmas=True)
    sched.set_timesteps(steps)
    ours = get_sampler("heun")(Gaussian(), x, _dedup(sched.sigmas.float()))
    ref = run_diffusers(sched, x, Gaussian(), sigma_of=lambda s, i: s.sigmas[s.step_index])
    assert torch.allclose(ours, ref, atol=1e-5)


def test_euler_ancestral_matches_diffusers_with_the_same_noise():
    from diffusers import EulerAncestralDiscreteScheduler
    x = start(16)
    sched = _diffusers(EulerAncestralDiscreteScheduler)
    sched.set_timesteps(10)
    sigmas = sched.sigmas.float()
    g = torch.Generator().manual_seed(7)
    ours = get_sampler("euler_ancestral")(Gaussian(), x, sigmas, noise_sampler=lambda a, b: torch.randn(x.shape, generator=g))
    ref = run_diffusers(sched, x, Gaussian(), generator=torch.Generator().manual_seed(7))
    assert torch.allclose(ours, ref, atol=1e-5)


def test_lms_and_dpm_2_match_diffusers_before_the_last_step():
    """ComfyUI ends LMS with x = denoised and diffusers with one more LMS step; compare up to sigma_min."""
    from diffusers import KDPM2DiscreteScheduler, LMSDiscreteScheduler
    x = start(16)
    sched = _diffusers(LMSDiscreteScheduler, use_karras_sigmas=True)
    sched.set_timesteps(10)
    ours = get_sampler("lms")(Gaussian(), x, sched.sigmas.float()[:-1])
    assert torch.allclose(ours, run_diffusers(sched, x, Gaussian(), stop=9), atol=1e-5)

    sched = _diffusers(KDPM2DiscreteScheduler, use_karras_sigmas=True)
    sched.set_timesteps(10)
    sigma_of = lambda s, i: s.sigmas[s.step_index] if s.state_in_first_order else s.sigmas_interpol[s.step_index]  # noqa: E731
    ref = run_diffusers(sched, x, Gaussian(), sigma_of=sigma_of, stop=18)
    sigmas = torch.cat([sched.sigmas[:1], sched.sigmas[1:-1:2]]).float()  # [s0, s1, s1, ..., 0, 0, 0] -> [s0, ..., 0]
    assert len(sigmas) == 11 and sigmas[-1] == 0
    ours = get_sampler("dpm_2")(Gaussian(), x, sigmas[:-1])
    assert torch.allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("steps", [8, 20])
def test_dpmpp_2m_and_2m_sde_match_diffusers(steps):
    from diffusers import DPMSolverMultistepScheduler
    x = start(16)
    sched = _diffusers(DPMSolverMultistepScheduler, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True)
    sched.set_timesteps(steps)
    ours = get_sampler("dpmpp_2m")(Gaussian(), x, sched.sigmas.float())
    assert torch.allclose(ours, run_diffusers(sched, x, Gaussian(), vp=True), atol=1e-4)

    sched = _diffusers(DPMSolverMultistepScheduler, algorithm_type="sde-dpmsolver++", solver_order=2,
                       use_karras_sigmas=True)
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(3)
    ours = get_sampler("dpmpp_2m_sde")(Gaussian(), x, sched.sigmas.float(),
                                         noise_sampler=lambda a, b: torch.randn(x.shape, generator=g))
    ref = run_diffusers(sched, x, Gaussian(), vp=True, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(ours, ref, atol=1e-4)


@pytest.mark.parametrize("steps", [10, 20])
def test_uni_pc_bh2_matches_diffusers(steps):
    """diffusers' UniPC (bh2, order 3, lower order at the end) ends at sigma 0 where ComfyUI's ends at
    0.001: equal up to that last sliver. (diffusers' bh1 is undefined at sigma 0: B(h) = h = -inf.)"""
    from diffusers import UniPCMultistepScheduler
    x = start(16)
    sched = _diffusers(UniPCMultistepScheduler, use_karras_sigmas=True, solver_type="bh2", solver_order=3,
                       final_sigmas_type="zero")
    sched.set_timesteps(steps)
    ours = get_sampler("uni_pc_bh2")(Gaussian(), x, sched.sigmas.float())
    assert torch.allclose(ours, run_diffusers(sched, x, Gaussian(), vp=True), atol=1e-3)


def test_dpmpp_sde_matches_diffusers_brownian_tree():
    """Same step equations and the same torchsde Brownian tree (seeded): the same result."""
    from diffusers import DPMSolverSDEScheduler
    x = start(16)
    sched = _diffusers(DPMSolverSDEScheduler, use_karras_sigmas=True, noise_sampler_seed=42)
    sched.set_timesteps(8)
    sigma_of = lambda s, i: s.sigmas[s.step_index] if s.state_in_first_order else s.mid_point_sigma  # noqa: E731
    ref = run_diffusers(sched, x, Gaussian(), sigma_of=sigma_of)
    ours = get_sampler("dpmpp_sde")(Gaussian(), x, _dedup(sched.sigmas.float()), seed=42)
    assert torch.allclose(ours, ref, atol=1e-4)


def test_ddim_is_euler_and_matches_diffusers_ddim():
    """Euler on the DDIM timesteps is DDIM (eta 0): x0 + sigma_next * eps in both parametrisations."""
    from diffusers import DDIMScheduler
    x = start(16)
    sched = _diffusers(DDIMScheduler, steps_offset=1, timestep_spacing="leading", set_alpha_to_one=True,
                       clip_sample=False)
    sched.set_timesteps(10)
    ac = sched.alphas_cumprod[sched.timesteps]
    sigmas = torch.cat([((1 - ac) / ac) ** 0.5, torch.zeros(1)]).float()
    ours = get_sampler("ddim")(Gaussian(), x, sigmas)
    sample = x / (1 + float(sigmas[0]) ** 2) ** 0.5
    for i, t in enumerate(sched.timesteps):
        s = float(sigmas[i])
        x_ve = sample * (1 + s * s) ** 0.5
        sample = sched.step((x_ve - Gaussian()(x_ve, torch.tensor([s]))) / s, t, sample).prev_sample
    assert torch.allclose(ours, sample, atol=1e-5)


def test_ddpm_matches_diffusers_ddpm():
    from diffusers import DDPMScheduler
    x = start(16)
    sched = _diffusers(DDPMScheduler, timestep_spacing="trailing", clip_sample=False)
    sched.set_timesteps(10)
    ac = sched.alphas_cumprod[sched.timesteps]
    sigmas = torch.cat([((1 - ac) / ac) ** 0.5, torch.zeros(1)]).float()
    g = torch.Generator().manual_seed(5)
    ours = get_sampler("ddpm")(Gaussian(), x, sigmas, noise_sampler=lambda a, b: torch.randn(x.shape, generator=g))
    g_ref = torch.Generator().manual_seed(5)
    sample = x / (1 + float(sigmas[0]) ** 2) ** 0.5
    for i, t in enumerate(sched.timesteps):
        s = float(sigmas[i])
        x_ve = sample * (1 + s * s) ** 0.5
        sample = sched.step((x_ve - Gaussian()(x_ve, torch.tensor([s]))) / s, t, sample, generator=g_ref).prev_sample
    assert torch.allclose(ours, sample, atol=1e-4)


# --- noise samplers ----------------------------------------------------------------------------------

def test_default_noise_sampler_is_comfyui_seeded():
    x = torch.zeros(2, 3)
    ns = default_noise_sampler(x, seed=99)
    g = torch.Generator().manual_seed(100)  # +1 on the CPU, as ComfyUI (not the initial noise again)
    assert torch.equal(ns(1.0, 0.5), torch.randn(2, 3, generator=g))
    assert torch.equal(ns(0.5, 0.1), torch.randn(2, 3, generator=g))
    assert default_noise_sampler(x, seed=2 ** 64 - 1)(1.0, 0.5).shape == (2, 3)  # no overflow
    # the ancestral samplers use it when given a seed
    sigmas = torch.tensor([5.0, 2.0, 0.0])
    noise = default_noise_sampler(torch.zeros(1, 8), seed=4)
    a = get_sampler("euler_ancestral")(Gaussian(), torch.ones(1, 8), sigmas, seed=4)
    b = get_sampler("euler_ancestral")(Gaussian(), torch.ones(1, 8), sigmas, noise_sampler=noise)
    assert torch.equal(a, b)


def test_brownian_tree_noise_is_one_brownian_motion():
    x = torch.zeros(1, 20000)
    ns = BrownianTreeNoiseSampler(x, 0.1, 10.0, seed=8)
    n_ac = ns(torch.tensor(8.0), torch.tensor(1.0))
    assert abs(float(n_ac.std()) - 1) < 0.03 and abs(float(n_ac.mean())) < 0.03
    # W(8 -> 1) = W(8 -> 3) + W(3 -> 1): increments of the same path, whatever the step split
    n_ab, n_bc = ns(torch.tensor(8.0), torch.tensor(3.0)), ns(torch.tensor(3.0), torch.tensor(1.0))
    assert torch.allclose(n_ac * 7 ** 0.5, n_ab * 5 ** 0.5 + n_bc * 2 ** 0.5, atol=1e-4)
    again = BrownianTreeNoiseSampler(x, 0.1, 10.0, seed=8)(torch.tensor(3.0), torch.tensor(1.0))
    assert torch.allclose(again, n_bc, atol=1e-6)
    assert not torch.allclose(BrownianTreeNoiseSampler(x, 0.1, 10.0, seed=9)(torch.tensor(3.0), torch.tensor(1.0)), n_bc)
