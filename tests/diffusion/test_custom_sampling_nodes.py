"""ComfyUI's custom-sampling nodes (comfy_extras/nodes_custom_sampler.py, nodes_align_your_steps.py of ComfyUI
0.8): their declarations, the sigmas of the scheduler nodes against the formulas written again here, and
SamplerCustom / SamplerCustomAdvanced giving KSampler's images for equivalent settings on a tiny SD model."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nodegraph.devices import ModelHandle
from nodegraph.executor import Executor
from nodegraph.validate import ValidationFailed
from nodes.diffusion.models import DiffusionModel, model_info
from nodes.diffusion.sampling import SAMPLER_NAMES, SCHEDULER_NAMES, ModelSampling, ksampler_sigmas, prepare_noise
from tests.diffusion.nodecall import run
from tests.tiny_models import save_tiny_checkpoint, tiny_components


@pytest.fixture(scope="module")
def tiny_model():
    unet = tiny_components("sd1", seed=3)["unet"].eval()
    model = DiffusionModel(unet, "sd1")
    return ModelHandle(model, "tiny-sd1", info=model_info(model))


def conds(value=0.5):
    return [[torch.full((1, 77, 32), value), {"pooled_output": torch.zeros(1, 32)}]]


POS, NEG = conds(1.0), conds(-0.5)
LATENT = {"samples": torch.zeros(1, 4, 8, 8)}


# --- declarations ------------------------------------------------------------------------------------

# (node, [(input, default)], [output types]) as ComfyUI 0.8 declares them
DECLARATIONS = [
    ("SamplerCustom", [("model", None), ("add_noise", True), ("noise_seed", 0), ("cfg", 8.0), ("positive", None),
                       ("negative", None), ("sampler", None), ("sigmas", None), ("latent_image", None)],
     [("output", "LATENT"), ("denoised_output", "LATENT")]),
    ("SamplerCustomAdvanced", [("noise", None), ("guider", None), ("sampler", None), ("sigmas", None),
                               ("latent_image", None)], [("output", "LATENT"), ("denoised_output", "LATENT")]),
    ("KSamplerSelect", [("sampler_name", "euler")], [("SAMPLER", "SAMPLER")]),
    ("BasicScheduler", [("model", None), ("scheduler", "simple"), ("steps", 20), ("denoise", 1.0)], [("SIGMAS", "SIGMAS")]),
    ("KarrasScheduler", [("steps", 20), ("sigma_max", 14.614642), ("sigma_min", 0.0291675), ("rho", 7.0)],
     [("SIGMAS", "SIGMAS")]),
    ("ExponentialScheduler", [("steps", 20), ("sigma_max", 14.614642), ("sigma_min", 0.0291675)], [("SIGMAS", "SIGMAS")]),
    ("PolyexponentialScheduler", [("steps", 20), ("sigma_max", 14.614642), ("sigma_min", 0.0291675), ("rho", 1.0)],
     [("SIGMAS", "SIGMAS")]),
    ("LaplaceScheduler", [("steps", 20), ("sigma_max", 14.614642), ("sigma_min", 0.0291675), ("mu", 0.0),
                          ("beta", 0.5)], [("SIGMAS", "SIGMAS")]),
    ("VPScheduler", [("steps", 20), ("beta_d", 19.9), ("beta_min", 0.1), ("eps_s", 0.001)], [("SIGMAS", "SIGMAS")]),
    ("BetaSamplingScheduler", [("model", None), ("steps", 20), ("alpha", 0.6), ("beta", 0.6)], [("SIGMAS", "SIGMAS")]),
    ("SDTurboScheduler", [("model", None), ("steps", 1), ("denoise", 1.0)], [("SIGMAS", "SIGMAS")]),
    ("AlignYourStepsScheduler", [("model_type", "SD1"), ("steps", 10), ("denoise", 1.0)], [("SIGMAS", "SIGMAS")]),
    ("SplitSigmas", [("sigmas", None), ("step", 0)], [("high_sigmas", "SIGMAS"), ("low_sigmas", "SIGMAS")]),
    ("SplitSigmasDenoise", [("sigmas", None), ("denoise", 1.0)], [("high_sigmas", "SIGMAS"), ("low_sigmas", "SIGMAS")]),
    ("FlipSigmas", [("sigmas", None)], [("SIGMAS", "SIGMAS")]),
    ("SetFirstSigma", [("sigmas", None), ("sigma", 136.0)], [("SIGMAS", "SIGMAS")]),
    ("ExtendIntermediateSigmas", [("sigmas", None), ("steps", 2), ("start_at_sigma", -1.0), ("end_at_sigma", 12.0),
                                  ("spacing", "linear")], [("SIGMAS", "SIGMAS")]),
    ("SamplingPercentToSigma", [("model", None), ("sampling_percent", 0.0), ("return_actual_sigma", False)],
     [("sigma_value", "FLOAT")]),
    ("CFGGuider", [("model", None), ("positive", None), ("negative", None), ("cfg", 8.0)], [("GUIDER", "GUIDER")]),
    ("BasicGuider", [("model", None), ("conditioning", None)], [("GUIDER", "GUIDER")]),
    ("DualCFGGuider", [("model", None), ("cond1", None), ("cond2", None), ("negative", None), ("cfg_conds", 8.0),
                       ("cfg_cond2_negative", 8.0), ("style", "regular")], [("GUIDER", "GUIDER")]),
    ("RandomNoise", [("noise_seed", 0)], [("NOISE", "NOISE")]),
    ("DisableNoise", [], [("NOISE", "NOISE")]),
    ("SamplerEulerAncestral", [("eta", 1.0), ("s_noise", 1.0)], [("SAMPLER", "SAMPLER")]),
    ("SamplerEulerAncestralCFGPP", [("eta", 1.0), ("s_noise", 1.0)], [("SAMPLER", "SAMPLER")]),
    ("SamplerLMS", [("order", 4)], [("SAMPLER", "SAMPLER")]),
    ("SamplerDPMPP_3M_SDE", [("eta", 1.0), ("s_noise", 1.0), ("noise_device", "gpu")], [("SAMPLER", "SAMPLER")]),
    ("SamplerDPMPP_2M_SDE", [("solver_type", "midpoint"), ("eta", 1.0), ("s_noise", 1.0), ("noise_device", "gpu")],
     [("SAMPLER", "SAMPLER")]),
    ("SamplerDPMPP_SDE", [("eta", 1.0), ("s_noise", 1.0), ("r", 0.5), ("noise_device", "gpu")], [("SAMPLER", "SAMPLER")]),
    ("SamplerDPMPP_2S_Ancestral", [("eta", 1.0), ("s_noise", 1.0)], [("SAMPLER", "SAMPLER")]),
    ("SamplerDPMAdaptative", [("order", 3), ("rtol", 0.05), ("atol", 0.0078), ("h_init", 0.05), ("pcoeff", 0.0),
                              ("icoeff", 1.0), ("dcoeff", 0.0), ("accept_safety", 0.81), ("eta", 0.0),
                              ("s_noise", 1.0)], [("SAMPLER", "SAMPLER")]),
    ("SamplerER_SDE", [("solver_type", "ER-SDE"), ("max_stage", 3), ("eta", 1.0), ("s_noise", 1.0)],
     [("SAMPLER", "SAMPLER")]),
    ("SamplerSASolver", [("model", None), ("eta", 1.0), ("sde_start_percent", 0.2), ("sde_end_percent", 0.8),
                         ("s_noise", 1.0), ("predictor_order", 3), ("corrector_order", 4), ("use_pece", False),
                         ("simple_order_2", False)], [("SAMPLER", "SAMPLER")]),
    ("SamplerSEEDS2", [("solver_type", "phi_1"), ("eta", 1.0), ("s_noise", 1.0), ("r", 0.5)], [("SAMPLER", "SAMPLER")]),
]


@pytest.mark.parametrize("name, inputs, outputs", DECLARATIONS, ids=[d[0] for d in DECLARATIONS])
def test_declarations_are_comfyuis(env, name, inputs, outputs):
    schema = env.registry.get(name).schema()
    assert [(i["name"], i.get("default")) for i in schema["inputs"]] == inputs
    assert [(o["name"], o["type"]) for o in schema["outputs"]] == outputs
    assert schema["category"].startswith(("sampling/custom_sampling", "_for_testing"))


def test_choice_lists(env):
    assert env.registry.get("KSamplerSelect").schema()["inputs"][0]["choices"] == SAMPLER_NAMES
    assert env.registry.get("BasicScheduler").schema()["inputs"][1]["choices"] == SCHEDULER_NAMES
    seed = env.registry.get("SamplerCustom").schema()["inputs"][2]
    assert seed["control_after_generate"] and seed["max"] == 2 ** 64 - 1
    by = {i["name"]: i for i in env.registry.get("SamplerER_SDE").schema()["inputs"]}
    assert by["solver_type"]["choices"] == ["ER-SDE", "Reverse-time SDE", "ODE"]
    assert env.registry.get("SamplerEulerAncestralCFGPP").schema()["display_name"] == "SamplerEulerAncestralCFG++"


# --- sigmas --------------------------------------------------------------------------------------------

def test_basic_scheduler_is_ksamplers_schedule(env, tiny_model):
    """KSampler's sigmas (without its penultimate-sigma rule for dpm_2 / uni_pc, which BasicScheduler cannot know),
    cut to the last steps + 1 as ComfyUI's BasicScheduler cuts them (ddim_uniform can make a few more)."""
    ms = ModelSampling()
    for scheduler in SCHEDULER_NAMES:
        for steps, denoise in ((7, 1.0), (10, 0.6), (4, 0.0)):
            ours = run(env, "BasicScheduler", model=tiny_model, scheduler=scheduler, steps=steps, denoise=denoise)
            want = ksampler_sigmas(ms, "euler", scheduler, steps, denoise)[-(steps + 1):]
            assert torch.equal(ours, want), (scheduler, denoise)


def test_formula_schedulers(env):
    """k-diffusion's schedules (comfy/k_diffusion/sampling.py), written again in numpy."""
    n, smax, smin = 9, 14.614642, 0.0291675
    ramp = np.linspace(0, 1, n)
    karras = (smax ** (1 / 7) + ramp * (smin ** (1 / 7) - smax ** (1 / 7))) ** 7
    expo = np.exp(np.linspace(math.log(smax), math.log(smin), n))
    poly = np.exp(np.linspace(1, 0, n) ** 2.0 * (math.log(smax) - math.log(smin)) + math.log(smin))
    t = np.linspace(1, 1e-3, n)
    vp = np.sqrt(np.expm1(19.9 * t ** 2 / 2 + 0.1 * t))
    x = np.linspace(0, 1, n)
    laplace = np.clip(np.exp(0.3 - 0.5 * np.sign(0.5 - x) * np.log(1 - 2 * np.abs(0.5 - x) + 1e-5)), smin, smax)
    cases = [("KarrasScheduler", dict(rho=7.0), karras), ("ExponentialScheduler", {}, expo),
             ("PolyexponentialScheduler", dict(rho=2.0), poly), ("LaplaceScheduler", dict(mu=0.3, beta=0.5), laplace)]
    for name, extra, ref in cases:
        ours = run(env, name, steps=n, sigma_max=smax, sigma_min=smin, **extra)
        want = ref if name == "LaplaceScheduler" else np.append(ref, 0.0)  # Laplace has no final 0 (ComfyUI)
        assert np.allclose(ours.numpy(), want, rtol=1e-5, atol=1e-6), name
    ours = run(env, "VPScheduler", steps=n, beta_d=19.9, beta_min=0.1, eps_s=0.001)
    assert np.allclose(ours.numpy(), np.append(vp, 0.0), rtol=1e-5)


def test_sd_turbo_and_beta_and_percent(env, tiny_model):
    ms = ModelSampling()
    ours = run(env, "SDTurboScheduler", model=tiny_model, steps=3, denoise=1.0)
    assert torch.allclose(ours, torch.cat([ms.sigma(torch.tensor([999, 899, 799])), torch.zeros(1)]))
    ours = run(env, "SDTurboScheduler", model=tiny_model, steps=2, denoise=0.5)  # starts 5 of 10 steps in
    assert torch.allclose(ours, torch.cat([ms.sigma(torch.tensor([499, 399])), torch.zeros(1)]))
    from nodes.diffusion.sampling.schedules import beta_scheduler
    assert torch.equal(run(env, "BetaSamplingScheduler", model=tiny_model, steps=12, alpha=0.6, beta=0.6),
                       beta_scheduler(ms, 12))
    pct = lambda p, actual=False: run(env, "SamplingPercentToSigma", model=tiny_model, sampling_percent=p,  # noqa: E731
                                      return_actual_sigma=actual)
    assert pct(0.0) == 999999999.9 and pct(1.0) == 0.0
    assert pct(0.0, True) == pytest.approx(14.6146, abs=1e-4) and pct(1.0, True) == pytest.approx(0.0292, abs=1e-4)
    assert pct(0.5) == pytest.approx(float(ms.sigma(torch.tensor(499.5))), rel=1e-6)


def test_align_your_steps(env):
    """NVIDIA's 10-step SD1 levels as given; other counts interpolate log sigma linearly over the step index."""
    sd1 = [14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904,
           0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582]
    ours = run(env, "AlignYourStepsScheduler", model_type="SD1", steps=10, denoise=1.0)
    assert np.allclose(ours.numpy(), sd1[:-1] + [0.0])
    ours = run(env, "AlignYourStepsScheduler", model_type="SD1", steps=20, denoise=1.0)
    log_levels = np.log(sd1)
    ref = [math.exp(np.interp(k / 20 * 10, np.arange(11), log_levels)) for k in range(21)]
    assert len(ours) == 21 and np.allclose(ours.numpy()[:-1], ref[:-1], rtol=1e-5) and ours[-1] == 0
    part = run(env, "AlignYourStepsScheduler", model_type="SDXL", steps=10, denoise=0.5)
    assert len(part) == 6 and float(part[0]) == pytest.approx(0.8620721141) and part[-1] == 0
    assert len(run(env, "AlignYourStepsScheduler", model_type="SVD", steps=10, denoise=0.0)) == 0


def test_sigma_editing_nodes(env):
    sigmas = torch.tensor([10.0, 5.0, 2.0, 1.0, 0.0])
    high, low = run(env, "SplitSigmas", sigmas=sigmas, step=2)
    assert high.tolist() == [10.0, 5.0, 2.0] and low.tolist() == [2.0, 1.0, 0.0]
    high, low = run(env, "SplitSigmasDenoise", sigmas=sigmas, denoise=0.5)  # the last round(4 * 0.5) steps
    assert high.tolist() == [10.0, 5.0, 2.0] and low.tolist() == [2.0, 1.0, 0.0]
    assert run(env, "FlipSigmas", sigmas=sigmas).tolist() == pytest.approx([0.0001, 1.0, 2.0, 5.0, 10.0])
    assert sigmas[0] == 10.0  # inputs are not changed
    assert run(env, "SetFirstSigma", sigmas=sigmas, sigma=20.0).tolist() == [20.0, 5.0, 2.0, 1.0, 0.0]
    ext = run(env, "ExtendIntermediateSigmas", sigmas=sigmas, steps=2, start_at_sigma=-1.0, end_at_sigma=2.0,
              spacing="linear")
    assert ext.tolist() == [10.0, 7.5, 5.0, 3.5, 2.0, 1.5, 1.0, 0.0]  # midpoints of steps starting in [2, inf]
    ext = run(env, "ExtendIntermediateSigmas", sigmas=torch.tensor([4.0, 0.0]), steps=4, start_at_sigma=-1.0,
              end_at_sigma=0.0, spacing="cosine")
    expected = [4.0] + [4.0 - 4.0 * math.sin(f * math.pi / 2) for f in (0.25, 0.5, 0.75)] + [0.0]
    assert np.allclose(ext.numpy(), expected)
    assert run(env, "ManualSigmas", sigmas="14.6, 7, 3.5 1, 0").tolist() == pytest.approx([14.6, 7, 3.5, 1, 0])


# --- same images as KSampler ----------------------------------------------------------------------------

def ksampler(env, model, sampler, scheduler, steps=4, cfg=5.0, seed=7, denoise=1.0, latent=LATENT):
    return run(env, "KSampler", model=model, seed=seed, steps=steps, cfg=cfg, sampler_name=sampler, scheduler=scheduler,
               positive=POS, negative=NEG, latent_image=latent, denoise=denoise)["samples"]


@pytest.mark.parametrize("sampler, scheduler, denoise", [("euler", "normal", 1.0), ("dpmpp_2m", "karras", 1.0),
                                                         ("euler_ancestral", "simple", 1.0), ("dpm_2", "karras", 1.0),
                                                         ("dpmpp_sde", "exponential", 1.0), ("heun", "normal", 0.6),
                                                         ("res_multistep", "beta", 1.0)])
def test_sampler_custom_matches_ksampler(env, tiny_model, sampler, scheduler, denoise):
    latent = LATENT if denoise == 1.0 else {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))}
    want = ksampler(env, tiny_model, sampler, scheduler, denoise=denoise, latent=latent)
    if sampler == "dpm_2":  # KSampler drops the penultimate sigma of these; the custom path takes sigmas as given
        full = run(env, "BasicScheduler", model=tiny_model, scheduler=scheduler, steps=5, denoise=1.0)
        sigmas = torch.cat([full[:-2], full[-1:]])
    else:
        sigmas = run(env, "BasicScheduler", model=tiny_model, scheduler=scheduler, steps=4, denoise=denoise)
    chosen = run(env, "KSamplerSelect", sampler_name=sampler)
    out, denoised = run(env, "SamplerCustom", model=tiny_model, add_noise=True, noise_seed=7, cfg=5.0, positive=POS,
                        negative=NEG, sampler=chosen, sigmas=sigmas, latent_image=latent)
    assert torch.equal(out["samples"], want)
    guider = run(env, "CFGGuider", model=tiny_model, positive=POS, negative=NEG, cfg=5.0)
    adv, adv_denoised = run(env, "SamplerCustomAdvanced", noise=run(env, "RandomNoise", noise_seed=7), guider=guider,
                            sampler=chosen, sigmas=sigmas, latent_image=latent)
    assert torch.equal(adv["samples"], want) and torch.equal(adv_denoised["samples"], denoised["samples"])
    if sampler in ("euler", "dpmpp_2m", "res_multistep"):  # their last step to sigma 0 lands on its x0 estimate
        assert torch.allclose(denoised["samples"], out["samples"], atol=1e-4)
    assert not torch.equal(denoised["samples"], torch.zeros_like(denoised["samples"]))


def test_denoised_output_is_the_last_x0_not_the_sample(env, tiny_model):
    """One Euler step sigma_0 -> sigma_1 from x (the noise scaled to sigma_0) lands on x r + x0 (1 - r),
    r = sigma_1 / sigma_0: denoised_output must be that x0 (all in raw latent units, process_out being linear)."""
    sigma_0 = float(ModelSampling().sigma_max)
    chosen = run(env, "KSamplerSelect", sampler_name="euler")
    out, denoised = run(env, "SamplerCustom", model=tiny_model, add_noise=True, noise_seed=3, cfg=5.0, positive=POS,
                        negative=NEG, sampler=chosen, sigmas=torch.tensor([sigma_0, 5.0]), latent_image=LATENT)
    x = prepare_noise(LATENT["samples"], 3) * math.sqrt(1 + sigma_0 ** 2) / 0.18215  # full denoise start
    r = 5.0 / sigma_0
    assert torch.allclose(out["samples"], x * r + denoised["samples"] * (1 - r), rtol=1e-4, atol=1e-3)
    assert not torch.allclose(out["samples"], denoised["samples"], atol=1.0)
    out, denoised = run(env, "SamplerCustom", model=tiny_model, add_noise=False, noise_seed=3, cfg=5.0, positive=POS,
                        negative=NEG, sampler=chosen, sigmas=torch.tensor([]), latent_image=LATENT)
    assert torch.equal(out["samples"], LATENT["samples"]) and denoised is out  # nothing ran: no x0


def test_two_stage_split_sigmas_equal_ksampler_advanced(env, tiny_model):
    """KSamplerAdvanced steps 0-2 with leftover noise, then 2-end without noise == SplitSigmas at step 2 fed to
    SamplerCustomAdvanced with RandomNoise, then DisableNoise."""
    common = dict(model=tiny_model, cfg=5.0, sampler_name="euler", scheduler="karras", positive=POS, negative=NEG,
                  steps=5)
    first = run(env, "KSamplerAdvanced", add_noise="enable", noise_seed=9, latent_image=LATENT, start_at_step=0,
                end_at_step=2, return_with_leftover_noise="enable", **common)
    want = run(env, "KSamplerAdvanced", add_noise="disable", noise_seed=9, latent_image=first, start_at_step=2,
               end_at_step=10000, return_with_leftover_noise="disable", **common)["samples"]
    sigmas = run(env, "BasicScheduler", model=tiny_model, scheduler="karras", steps=5, denoise=1.0)
    high, low = run(env, "SplitSigmas", sigmas=sigmas, step=2)
    guider = run(env, "CFGGuider", model=tiny_model, positive=POS, negative=NEG, cfg=5.0)
    euler = run(env, "KSamplerSelect", sampler_name="euler")
    stage1, _ = run(env, "SamplerCustomAdvanced", noise=run(env, "RandomNoise", noise_seed=9), guider=guider,
                    sampler=euler, sigmas=high, latent_image=LATENT)
    stage2, _ = run(env, "SamplerCustomAdvanced", noise=run(env, "DisableNoise"), guider=guider, sampler=euler,
                    sigmas=low, latent_image=stage1)
    assert torch.equal(stage1["samples"], first["samples"]) and torch.equal(stage2["samples"], want)


def custom(env, model, guider, sampler, sigmas=None, seed=7):
    sigmas = run(env, "BasicScheduler", model=model, scheduler="karras", steps=4, denoise=1.0) if sigmas is None else sigmas
    return run(env, "SamplerCustomAdvanced", noise=run(env, "RandomNoise", noise_seed=seed), guider=guider,
               sampler=sampler, sigmas=sigmas, latent_image=LATENT)[0]["samples"]


def test_guiders(env, tiny_model):
    """BasicGuider is cfg 1 without a negative; DualCFGGuider with cond2 == negative is plain CFG at cfg_conds
    ("regular") or at cfg_conds * cfg_cond2_negative ("nested"), by their formulas."""
    euler = run(env, "KSamplerSelect", sampler_name="euler")
    basic = custom(env, tiny_model, run(env, "BasicGuider", model=tiny_model, conditioning=POS), euler)
    assert torch.equal(basic, ksampler(env, tiny_model, "euler", "karras", cfg=1.0))
    cfg = lambda c: custom(env, tiny_model, run(env, "CFGGuider", model=tiny_model, positive=POS, negative=NEG, cfg=c),  # noqa: E731
                           euler)
    dual = lambda style, c1, c2: custom(env, tiny_model, run(env, "DualCFGGuider", model=tiny_model, cond1=POS,  # noqa: E731
                                                             cond2=NEG, negative=NEG, cfg_conds=c1,
                                                             cfg_cond2_negative=c2, style=style), euler)
    assert torch.allclose(dual("regular", 4.0, 3.0), cfg(4.0), atol=1e-4)
    assert torch.allclose(dual("nested", 4.0, 1.5), cfg(6.0), atol=1e-3)
    assert not torch.allclose(dual("regular", 4.0, 3.0), cfg(3.0), atol=1e-2)


def test_sampler_option_nodes(env, tiny_model):
    by_name = lambda name: run(env, "KSamplerSelect", sampler_name=name)  # noqa: E731
    guider = run(env, "CFGGuider", model=tiny_model, positive=POS, negative=NEG, cfg=5.0)
    go = lambda sampler: custom(env, tiny_model, guider, sampler)  # noqa: E731
    assert torch.equal(go(run(env, "SamplerEulerAncestral", eta=1.0, s_noise=1.0)), go(by_name("euler_ancestral")))
    assert torch.allclose(go(run(env, "SamplerEulerAncestral", eta=0.0, s_noise=1.0)), go(by_name("euler")), atol=1e-5)
    assert torch.equal(go(run(env, "SamplerDPMPP_2M_SDE", solver_type="heun", eta=1.0, s_noise=1.0,
                              noise_device="cpu")), go(by_name("dpmpp_2m_sde_heun")))
    assert torch.equal(go(run(env, "SamplerDPMPP_SDE", eta=1.0, s_noise=1.0, r=0.5, noise_device="cpu")),
                       go(by_name("dpmpp_sde")))
    assert torch.equal(go(run(env, "SamplerDPMPP_3M_SDE", eta=1.0, s_noise=1.0, noise_device="gpu")),
                       go(by_name("dpmpp_3m_sde_gpu")))
    assert torch.equal(go(run(env, "SamplerDPMPP_2S_Ancestral", eta=1.0, s_noise=1.0)), go(by_name("dpmpp_2s_ancestral")))
    assert torch.equal(go(run(env, "SamplerLMS", order=4)), go(by_name("lms")))
    assert not torch.equal(go(run(env, "SamplerLMS", order=1)), go(by_name("lms")))
    assert torch.equal(go(run(env, "SamplerSEEDS2", solver_type="phi_1", eta=1.0, s_noise=1.0, r=0.5)),
                       go(by_name("seeds_2")))
    assert torch.equal(go(run(env, "SamplerER_SDE", solver_type="ER-SDE", max_stage=3, eta=1.0, s_noise=1.0)),
                       go(by_name("er_sde")))
    ode = go(run(env, "SamplerER_SDE", solver_type="ODE", max_stage=3, eta=1.0, s_noise=1.0))
    assert torch.equal(ode, go(run(env, "SamplerER_SDE", solver_type="Reverse-time SDE", max_stage=3, eta=0.0,
                                   s_noise=1.0)))
    sa = dict(model=tiny_model, eta=1.0, sde_start_percent=0.2, sde_end_percent=0.8, s_noise=1.0, predictor_order=3,
              corrector_order=4, use_pece=False, simple_order_2=False)
    assert torch.equal(go(run(env, "SamplerSASolver", **sa)), go(by_name("sa_solver")))
    assert torch.equal(go(run(env, "SamplerSASolver", **{**sa, "use_pece": True})), go(by_name("sa_solver_pece")))
    assert not torch.equal(go(run(env, "SamplerSASolver", **{**sa, "eta": 0.0})), go(by_name("sa_solver")))
    adaptive = run(env, "SamplerDPMAdaptative", order=3, rtol=0.05, atol=0.0078, h_init=0.05, pcoeff=0.0, icoeff=1.0,
                   dcoeff=0.0, accept_safety=0.81, eta=0.0, s_noise=1.0)
    assert torch.equal(go(adaptive), go(by_name("dpm_adaptive")))


# --- a ComfyUI API-format workflow through the executor ------------------------------------------------

def test_custom_sampling_workflow_runs_like_ksampler(env, tmp_path):
    save_tiny_checkpoint(tmp_path / "models" / "checkpoints" / "tiny.safetensors", "sd1", seed=4)
    base = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    }
    custom_wf = dict(base, **{
        "10": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
        "11": {"class_type": "CFGGuider", "inputs": {"model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
                                                     "cfg": 6.0}},
        "12": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}},
        "13": {"class_type": "BasicScheduler", "inputs": {"model": ["4", 0], "scheduler": "karras", "steps": 3,
                                                          "denoise": 1.0}},
        "3": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["10", 0], "guider": ["11", 0],
                                                                "sampler": ["12", 0], "sigmas": ["13", 0],
                                                                "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 1], "vae": ["4", 2]}},
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}},
    })
    ks_wf = dict(base, **{
        "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 3, "cfg": 6.0, "sampler_name": "dpmpp_2m",
                                                   "scheduler": "karras", "denoise": 1.0, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0]}},
        "9": {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    })
    executor = Executor(env)
    ours, ref = executor.run(custom_wf), executor.run(ks_wf)
    assert ours.status == "success" and ref.status == "success", (ours.errors, ref.errors)
    assert torch.equal(ours.value("3")["samples"], ref.value("3")["samples"])
    # a SAMPLER cannot feed a GUIDER input: validation names the node and input
    bad = dict(custom_wf)
    bad["3"] = {"class_type": "SamplerCustomAdvanced", "inputs": dict(custom_wf["3"]["inputs"], guider=["12", 0])}
    with pytest.raises(ValidationFailed, match="input 'guider': expects GUIDER.*gives SAMPLER"):
        executor.run(bad)
