"""Model sampling and schedulers: ComfyUI's formulas, written again here independently (numpy),
and cross-checked with diffusers' schedulers where those compute the same thing."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from nodes.diffusion.sampling import (SCHEDULER_NAMES, ModelSampling, calculate_sigmas, ksampler_sigmas,
                                      scaled_linear_alphas_cumprod, trim_sigmas)

STEPS = [1, 2, 7, 10, 20, 33]


@pytest.fixture(scope="module")
def ms():
    return ModelSampling()


def reference_sigmas() -> np.ndarray:
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    ac = np.cumprod(1.0 - betas)
    return np.sqrt((1 - ac) / ac)


def log_interp_sigma(t: float, log_sigmas: np.ndarray) -> float:
    lo, hi = math.floor(t), math.ceil(t)
    w = t - lo
    return math.exp((1 - w) * log_sigmas[lo] + w * log_sigmas[hi])


# --- model sampling --------------------------------------------------------------------------------

def test_sigmas_are_sd_scaled_linear_schedule(ms):
    ref = reference_sigmas()
    assert torch.allclose(ms.sigmas, torch.tensor(ref, dtype=torch.float32))
    assert ms.sigmas.dtype == torch.float32 and len(ms.sigmas) == 1000
    assert float(ms.sigma_min) == pytest.approx(0.0292, abs=1e-4)
    assert float(ms.sigma_max) == pytest.approx(14.6146, abs=1e-4)
    from diffusers import EulerDiscreteScheduler  # diffusers' name for the same betas
    sched = EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    ac = sched.alphas_cumprod  # computed in float32 by diffusers, float64 by ComfyUI and here
    assert torch.allclose(((1 - ac) / ac) ** 0.5, ms.sigmas, rtol=1e-4)


def test_sigma_timestep_mapping(ms):
    log_sigmas = np.log(reference_sigmas()).astype(np.float32)
    # sigma(t): log-linear interpolation between training sigmas
    for t in [0.0, 17.0, 17.25, 500.5, 998.9, 999.0]:
        assert float(ms.sigma(torch.tensor(t))) == pytest.approx(log_interp_sigma(t, log_sigmas), rel=1e-5)
    # timestep(sigma): nearest training step (ComfyUI) ...
    ts = torch.tensor([999.0, 0.0, 354.0, 17.0])
    assert torch.equal(ms.timestep(ms.sigma(ts)), ts)
    sig = torch.tensor([1.0, 5.0, 0.5])
    nearest = [float(np.argmin(np.abs(np.log(s) - log_sigmas))) for s in sig.tolist()]
    assert ms.timestep(sig).tolist() == nearest
    # ... or the interpolated one of k-diffusion: inverse of sigma(t)
    cont = ModelSampling(quantize=False)
    expected = np.interp(np.log(sig.numpy()), log_sigmas, np.arange(1000))
    assert np.allclose(cont.timestep(sig).numpy(), expected, atol=1e-3)
    assert torch.allclose(cont.sigma(cont.timestep(sig)), sig, rtol=1e-4)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_denoiser_recovers_x0_from_the_exact_prediction(prediction):
    ms = ModelSampling(prediction_type=prediction)
    torch.manual_seed(0)
    x0, eps = torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5)
    sigma = torch.tensor([0.1, 1.0, 14.0])
    s = sigma.view(-1, 1, 1, 1)
    x = x0 + s * eps  # VE state
    alpha_t, sigma_t = 1 / (1 + s ** 2).sqrt(), s / (1 + s ** 2).sqrt()  # the VP view of the same state
    assert torch.allclose(ms.calculate_input(sigma, x), alpha_t * x)  # the U-Net sees the VP sample
    target = eps if prediction == "eps" else alpha_t * eps - sigma_t * x0  # what the U-Net was trained on
    assert torch.allclose(ms.calculate_denoised(sigma, target, x), x0, atol=1e-5)
    # k-diffusion's scalings: x0 = c_skip x + c_out F(c_in x)
    c_skip, c_out, c_in = ms.scalings(sigma, x)
    assert torch.allclose(c_skip * x + c_out * target, x0, atol=1e-5)
    if prediction == "eps":
        assert torch.equal(c_skip, torch.ones_like(s)) and torch.allclose(c_out, -s)
    else:
        assert torch.allclose(c_skip, 1 / (s ** 2 + 1)) and torch.allclose(c_out, -s / (s ** 2 + 1) ** 0.5)
    assert torch.allclose(c_in, 1 / (s ** 2 + 1) ** 0.5)


def test_noise_scaling_and_max_denoise(ms):
    noise, latent = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    full = calculate_sigmas(ms, "karras", 10)
    assert ms.is_max_denoise(full) and not ms.is_max_denoise(full[3:])
    s = full[0]
    assert torch.allclose(ms.noise_scaling(s, noise, latent, True), latent + noise * (1 + s ** 2) ** 0.5)
    assert torch.allclose(ms.noise_scaling(s, noise, latent, False), latent + noise * s)
    assert ms.percent_to_sigma(0.0) > 1e8 and ms.percent_to_sigma(1.0) == 0.0
    assert ms.percent_to_sigma(0.5) == pytest.approx(float(ms.sigma(torch.tensor(499.5))))


# --- schedulers: reference formulas ------------------------------------------------------------------

def ref_schedule(name: str, n: int) -> list[float]:
    sig = reference_sigmas().astype(np.float32)  # the float32 table the schedulers index
    log_sigmas = np.log(reference_sigmas()).astype(np.float32)
    smin, smax = float(sig[0]), float(sig[-1])
    if name == "karras":
        ramp = np.linspace(0, 1, n)
        return list((smax ** (1 / 7) + ramp * (smin ** (1 / 7) - smax ** (1 / 7))) ** 7) + [0.0]
    if name == "exponential":
        return list(np.exp(np.linspace(math.log(smax), math.log(smin), n))) + [0.0]
    if name in ("normal", "sgm_uniform"):
        ts = np.linspace(999, 0, n + 1)[:-1] if name == "sgm_uniform" else np.linspace(999, 0, n)
        return [log_interp_sigma(t, log_sigmas) for t in ts] + [0.0]
    if name == "simple":
        return [float(sig[999 - int(k * 1000 / n)]) for k in range(n)] + [0.0]
    if name == "ddim_uniform":
        return [float(sig[t]) for t in range(1, 1000, max(1000 // n, 1))][::-1] + [0.0]
    if name == "beta":
        ts = np.rint(scipy.stats.beta.ppf(1 - np.arange(n) / n, 0.6, 0.6) * 999).astype(int)
        keep = [t for k, t in enumerate(ts) if k == 0 or t != ts[k - 1]]
        return [float(sig[t]) for t in keep] + [0.0]
    if name == "kl_optimal":
        ramp = np.arange(n) / max(n - 1, 1)
        return list(np.tan(ramp * math.atan(smin) + (1 - ramp) * math.atan(smax))) + [0.0]
    raise KeyError(name)


@pytest.mark.parametrize("name", ["karras", "exponential", "normal", "sgm_uniform", "simple", "ddim_uniform",
                                  "beta", "kl_optimal"])
@pytest.mark.parametrize("steps", STEPS)
def test_scheduler_matches_reference_formula(ms, name, steps):
    got = calculate_sigmas(ms, name, steps)
    ref = ref_schedule(name, steps)
    assert got.dtype == torch.float32
    assert got.tolist() == pytest.approx(ref, rel=2e-5, abs=1e-6)
    assert got[-1] == 0 and bool(torch.all(got[:-1] > got[1:]))  # descending to zero


def test_scheduler_step_counts(ms):
    for steps in STEPS:
        for name in SCHEDULER_NAMES:
            n = len(calculate_sigmas(ms, name, steps)) - 1
            if name == "ddim_uniform":
                assert n == len(range(1, 1000, 1000 // steps))  # DDIM's grid: may be one more
            elif name == "beta":
                assert 1 <= n <= steps  # repeated timesteps are dropped
            else:
                assert n == steps, name
    assert len(calculate_sigmas(ms, "beta", 1000)) - 1 < 1000


def test_linear_quadratic_is_a_fraction_of_sigma_max(ms):
    s = calculate_sigmas(ms, "linear_quadratic", 10) / ms.sigma_max
    assert s[0] == pytest.approx(1.0) and s[-1] == 0 and bool(torch.all(s[:-1] >= s[1:]))
    assert s[1] == pytest.approx(1 - 0.025 / 5)  # linear part: threshold_noise / linear_steps per step


def test_unknown_scheduler_is_reported(ms):
    with pytest.raises(ValueError, match="unknown scheduler 'nope'.*karras"):
        calculate_sigmas(ms, "nope", 10)


# --- cross-checks with diffusers ---------------------------------------------------------------------

def _diffusers(cls, **kw):
    return cls(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000, **kw)


@pytest.mark.parametrize("steps", [5, 10, 20])
def test_karras_and_exponential_match_diffusers(ms, steps):
    from diffusers import EulerDiscreteScheduler
    for flag, name in (("use_karras_sigmas", "karras"), ("use_exponential_sigmas", "exponential")):
        sched = _diffusers(EulerDiscreteScheduler, **{flag: True})
        sched.set_timesteps(steps)
        assert torch.allclose(sched.sigmas.float(), calculate_sigmas(ms, name, steps), rtol=1e-4), name


@pytest.mark.parametrize("steps", [4, 10, 20, 25])
def test_simple_is_diffusers_trailing_spacing(ms, steps):
    from diffusers import EulerDiscreteScheduler
    sched = _diffusers(EulerDiscreteScheduler, timestep_spacing="trailing")
    sched.set_timesteps(steps)
    assert torch.allclose(sched.sigmas.float(), calculate_sigmas(ms, "simple", steps), rtol=1e-5)


@pytest.mark.parametrize("steps", [4, 10, 20])
def test_ddim_uniform_is_diffusers_ddim_leading_timesteps(ms, steps):
    from diffusers import DDIMScheduler
    sched = _diffusers(DDIMScheduler, steps_offset=1, timestep_spacing="leading")
    sched.set_timesteps(steps)
    sigmas = calculate_sigmas(ms, "ddim_uniform", steps)
    assert torch.allclose(sigmas[:-1], ms.sigmas[sched.timesteps]) and sigmas[-1] == 0


# --- KSampler's sigmas: denoise, samplers that drop the penultimate sigma, step windows ---------------

def test_denoise_takes_the_tail_of_a_longer_schedule(ms):
    full = calculate_sigmas(ms, "karras", 20)
    assert torch.equal(ksampler_sigmas(ms, "euler", "karras", 20, 1.0), full)
    half = ksampler_sigmas(ms, "euler", "karras", 10, 0.5)  # int(10 / 0.5) = 20 planned, last 11 kept
    assert len(half) == 11 and torch.equal(half, full[-11:])
    odd = ksampler_sigmas(ms, "euler", "normal", 7, 0.3)  # int(7 / 0.3) = 23
    assert len(odd) == 8 and torch.equal(odd, calculate_sigmas(ms, "normal", 23)[-8:])
    assert len(ksampler_sigmas(ms, "euler", "karras", 10, 0.0)) == 0
    assert torch.equal(ksampler_sigmas(ms, "euler", "normal", 10, 0.99995), calculate_sigmas(ms, "normal", 10))


@pytest.mark.parametrize("sampler", ["dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"])
def test_two_eval_samplers_drop_the_penultimate_sigma(ms, sampler):
    sigmas = ksampler_sigmas(ms, sampler, "karras", 10)
    longer = calculate_sigmas(ms, "karras", 11)
    assert len(sigmas) == 11 and torch.equal(sigmas, torch.cat([longer[:-2], longer[-1:]]))
    assert len(ksampler_sigmas(ms, "euler", "karras", 10)) == 11


def test_step_window(ms):
    sigmas = calculate_sigmas(ms, "normal", 10)
    assert torch.equal(trim_sigmas(sigmas, 0, 10000), sigmas)
    first = trim_sigmas(sigmas, 0, 4, force_full_denoise=False)
    assert torch.equal(first, sigmas[:5])
    forced = trim_sigmas(sigmas, 0, 4, force_full_denoise=True)
    assert torch.equal(forced[:-1], sigmas[:4]) and forced[-1] == 0 and sigmas[4] != 0  # a copy
    assert torch.equal(trim_sigmas(sigmas, 4, 10000), sigmas[4:])
    assert torch.equal(trim_sigmas(sigmas, 2, 6), sigmas[2:7])
    assert trim_sigmas(sigmas, 10, 10000) is None and trim_sigmas(sigmas, 12, 10000) is None


def test_alphas_cumprod_is_float64_and_monotone():
    ac = scaled_linear_alphas_cumprod()
    assert ac.dtype == torch.float64 and bool(torch.all(ac[1:] < ac[:-1]))
    assert float(ac[0]) == pytest.approx(1 - 0.00085)
