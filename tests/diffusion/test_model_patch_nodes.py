"""ComfyUI 0.8's model-patch and guidance nodes (comfy_extras/nodes_model_advanced.py, nodes_freelunch.py,
nodes_pag.py, nodes_sag.py, nodes_perpneg.py, nodes_cfg.py; comfy/model_sampling.py; comfy/samplers.py): their
declarations, their maths against references written again here from ComfyUI's formulas, and end-to-end runs on a
tiny SD U-Net showing each patch changes the sample while the unpatched MODEL's sample stays bit for bit the same."""
from __future__ import annotations

import copy
import math
import threading

import numpy as np
import pytest
import torch

from nodegraph.devices import ModelHandle
from nodegraph.executor import Executor
from nodes.diffusion import unet_patches
from nodes.diffusion.guidance_nodes import cfg_zero_star_scale, rescale_cfg
from nodes.diffusion.model_options import model_sampling, sampling_model
from nodes.diffusion.models import PLAYGROUND_2_5_LATENT_FORMAT, DiffusionModel, model_info
from nodes.diffusion.sampling import ModelSampling
from nodes.diffusion.sampling.guiders import perp_neg
from nodes.diffusion.sampling.model_sampling import (ContinuousEDMSampling, ContinuousVSampling, CosmosRFlowSampling,
                                                     DiscreteSampling, DistilledDiscreteSampling)
from nodes.diffusion.unet_patch_nodes import attention_with_scores, create_blur_map, freeu_patch, gaussian_blur_2d
from tests.diffusion.nodecall import run
from tests.tiny_models import save_tiny_checkpoint, tiny_components


@pytest.fixture(scope="module")
def tiny_unet():
    return tiny_components("sd1", seed=3)["unet"].eval()


@pytest.fixture(scope="module")
def tiny_model(tiny_unet):
    model = DiffusionModel(tiny_unet, "sd1")
    return ModelHandle(model, "tiny-sd1", info=model_info(model))


def conds(value: float):
    return [[torch.full((1, 77, 32), value), {}]]


POS, NEG, EMPTY = conds(1.0), conds(-0.5), conds(0.0)
LATENT = {"samples": torch.zeros(1, 4, 8, 8)}


def ksampler(env, model, cfg=5.0, sampler="euler", scheduler="normal", steps=4, seed=7):
    return run(env, "KSampler", model=model, seed=seed, steps=steps, cfg=cfg, sampler_name=sampler,
               scheduler=scheduler, positive=POS, negative=NEG, latent_image=LATENT, denoise=1.0)["samples"]


# --- declarations (ComfyUI 0.8: name, default, min, max, step; outputs; category) -------------------------------

F = "FLOAT"
DECLARATIONS = [
    ("ModelSamplingDiscrete", "advanced/model", [("model", None), ("sampling", "eps"), ("zsnr", False)], ["MODEL"]),
    ("ModelSamplingContinuousEDM", "advanced/model",
     [("model", None), ("sampling", "v_prediction"), ("sigma_max", 120.0, 0.0, 1000.0, 0.001),
      ("sigma_min", 0.002, 0.0, 1000.0, 0.001)], ["MODEL"]),
    ("ModelSamplingContinuousV", "advanced/model",
     [("model", None), ("sampling", "v_prediction"), ("sigma_max", 500.0, 0.0, 1000.0, 0.001),
      ("sigma_min", 0.03, 0.0, 1000.0, 0.001)], ["MODEL"]),
    ("RescaleCFG", "advanced/model", [("model", None), ("multiplier", 0.7, 0.0, 1.0, 0.01)], ["MODEL"]),
    ("FreeU", "model_patches/unet", [("model", None), ("b1", 1.1, 0.0, 10.0, 0.01), ("b2", 1.2, 0.0, 10.0, 0.01),
                                     ("s1", 0.9, 0.0, 10.0, 0.01), ("s2", 0.2, 0.0, 10.0, 0.01)], ["MODEL"]),
    ("FreeU_V2", "model_patches/unet", [("model", None), ("b1", 1.3, 0.0, 10.0, 0.01), ("b2", 1.4, 0.0, 10.0, 0.01),
                                        ("s1", 0.9, 0.0, 10.0, 0.01), ("s2", 0.2, 0.0, 10.0, 0.01)], ["MODEL"]),
    ("PerturbedAttentionGuidance", "model_patches/unet", [("model", None), ("scale", 3.0, 0.0, 100.0, 0.01)],
     ["MODEL"]),
    ("SelfAttentionGuidance", "_for_testing",
     [("model", None), ("scale", 0.5, -2.0, 5.0, 0.01), ("blur_sigma", 2.0, 0.0, 10.0, 0.1)], ["MODEL"]),
    ("PerpNeg", "_for_testing", [("model", None), ("empty_conditioning", None), ("neg_scale", 1.0, 0.0, 100.0, 0.01)],
     ["MODEL"]),
    ("PerpNegGuider", "_for_testing",
     [("model", None), ("positive", None), ("negative", None), ("empty_conditioning", None),
      ("cfg", 8.0, 0.0, 100.0, 0.1), ("neg_scale", 1.0, 0.0, 100.0, 0.01)], ["GUIDER"]),
    ("CFGZeroStar", "advanced/guidance", [("model", None)], ["patched_model"]),
    ("CFGNorm", "advanced/guidance", [("model", None), ("strength", 1.0, 0.0, 100.0, 0.01)], ["patched_model"]),
]


@pytest.mark.parametrize("name, category, inputs, outputs", DECLARATIONS, ids=[d[0] for d in DECLARATIONS])
def test_declarations_are_comfyuis(env, name, category, inputs, outputs):
    schema = env.registry.get(name).schema()
    assert schema["category"] == category
    got = [(i["name"], i.get("default")) + ((i["min"], i["max"], i["step"]) if i["type"] == F else ())
           for i in schema["inputs"]]
    assert got == [tuple(i) for i in inputs]
    assert [o["name"] for o in schema["outputs"]] == outputs


def test_choices_and_display_names(env):
    choices = lambda name: env.registry.get(name).schema()["inputs"][1]["choices"]  # noqa: E731
    assert choices("ModelSamplingDiscrete") == ["eps", "v_prediction", "lcm", "x0", "img_to_img"]
    assert choices("ModelSamplingContinuousEDM") == ["v_prediction", "edm", "edm_playground_v2.5", "eps",
                                                     "cosmos_rflow"]
    assert choices("ModelSamplingContinuousV") == ["v_prediction"]
    assert env.registry.get("SelfAttentionGuidance").schema()["display_name"] == "Self-Attention Guidance"
    assert env.registry.get("PerpNeg").schema()["display_name"] == "Perp-Neg (DEPRECATED by PerpNegGuider)"


# --- model sampling: comfy/model_sampling.py written again in numpy ---------------------------------------------

def sd_sigmas_np() -> np.ndarray:
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    ac = np.cumprod(1 - betas)
    return np.sqrt((1 - ac) / ac)


def test_zero_terminal_snr_schedule():
    """rescale_zero_terminal_snr_sigmas: sqrt(alpha_bar) shifted to end at 0, scaled to keep its start; the last
    alpha_bar is ComfyUI's 4.8973451890853435e-08."""
    a = np.sqrt(1 / (sd_sigmas_np() ** 2 + 1))
    a = (a - a[-1]) * (a[0] / (a[0] - a[-1]))
    ab = a ** 2
    ab[-1] = 4.8973451890853435e-08
    want = np.sqrt((1 - ab) / ab)
    ms = DiscreteSampling(prediction_type="v", zsnr=True)
    assert np.allclose(ms.sigmas.numpy(), want, rtol=1e-6)
    assert float(ms.sigma_max) == pytest.approx(4518.9, rel=1e-4) and ms.prediction_type == "v"
    assert torch.equal(DiscreteSampling().sigmas, ModelSampling().sigmas)  # zsnr off: the model's own schedule


def test_lcm_distilled_schedule_and_boundary():
    """ModelSamplingDiscreteDistilled keeps the training sigmas 19, 39, ... 999; timestep(sigma) is the index
    of the nearest * 20 + 19; LCM's x0 = c_out (x - sigma eps) + c_skip x at t = 10 * timestep, sigma_data 0.5."""
    base = ModelSampling().sigmas
    ms = DistilledDiscreteSampling()
    assert torch.equal(ms.sigmas, base[19::20]) and len(ms.sigmas) == 50
    assert ms.timestep(ms.sigmas).tolist() == [19.0 + 20 * k for k in range(50)]
    assert torch.allclose(ms.sigma(torch.tensor([19.0, 999.0, 29.0])),
                          torch.stack([base[19], base[999], (base[19].log() * 0.5 + base[39].log() * 0.5).exp()]))
    x, out = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    sigma = torch.tensor([float(base[999]), float(base[419])])
    t = torch.tensor([999.0, 419.0]).view(-1, 1, 1, 1) * 10
    s = sigma.view(-1, 1, 1, 1)
    want = t / (t ** 2 + 0.25) ** 0.5 * (x - out * s) + 0.25 / (t ** 2 + 0.25) * x
    assert torch.allclose(ms.calculate_denoised(sigma, out, x), want, atol=1e-6)


def test_continuous_schedules():
    edm = ContinuousEDMSampling(0.002, 120.0, 0.5, "edm")
    want = np.exp(np.linspace(math.log(0.002), math.log(120.0), 1000))
    assert np.allclose(edm.sigmas.numpy(), want, rtol=1e-5)
    s = torch.tensor([0.01, 1.0, 80.0])
    assert torch.allclose(edm.timestep(s), 0.25 * s.log()) and torch.allclose(edm.sigma(edm.timestep(s)), s)
    assert edm.percent_to_sigma(0.5) == pytest.approx(math.sqrt(0.002 * 120.0), rel=1e-5)
    assert edm.percent_to_sigma(0.0) == 999999999.9 and edm.percent_to_sigma(1.0) == 0.0
    v = ContinuousVSampling(0.03, 500.0, 1.0, "v")
    assert torch.allclose(v.timestep(s), s.atan() * 2 / math.pi)
    assert torch.allclose(v.sigma(v.timestep(s)), s, rtol=1e-4)
    cosmos = CosmosRFlowSampling(0.002, 80.0)
    assert torch.allclose(cosmos.timestep(s), s / (s + 1))
    assert torch.allclose(cosmos.sigma(torch.tensor([0.5, 0.999])), torch.tensor([1.0, 80.0]))


@pytest.mark.parametrize("kind", ["edm", "x0", "img_to_img", "cosmos_rflow"])
def test_prediction_types(kind):
    """comfy/model_sampling.py EDM, X0, IMG_TO_IMG and COSMOS_RFLOW: the U-Net's input and x0 from its output."""
    ms = ContinuousEDMSampling(0.002, 120.0, 0.5, kind)
    x, out = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    sigma = torch.tensor([0.3, 7.0])
    s = sigma.view(-1, 1, 1, 1)
    if kind == "edm":
        want_in = x / (s ** 2 + 0.25) ** 0.5
        want_x0 = x * 0.25 / (s ** 2 + 0.25) + out * s * 0.5 / (s ** 2 + 0.25) ** 0.5
    elif kind == "cosmos_rflow":
        t = s / (s + 1)
        want_in, want_x0 = x * (1 - t), x * (1 - t) - out * t
    else:
        want_in, want_x0 = (x if kind == "img_to_img" else x / (s ** 2 + 0.25) ** 0.5), out
    assert torch.allclose(ms.calculate_input(sigma, x), want_in, atol=1e-6)
    assert torch.allclose(ms.calculate_denoised(sigma, out, x), want_x0, atol=1e-6)
    noise, latent = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    scale = 7.0 if kind == "cosmos_rflow" else math.sqrt(1 + 49.0)  # cosmos has no full-denoise rescale
    assert torch.allclose(ms.noise_scaling(torch.tensor(7.0), noise, latent, True), noise * scale + latent)


def test_playground_latent_format():
    """ComfyUI's SDXL_Playground_2_5: (latent - mean) * 0.5 / std in, and back."""
    latent = torch.randn(1, 4, 3, 3)
    mean = torch.tensor([-1.6574, 1.886, -1.383, 2.5155]).view(1, 4, 1, 1)
    std = torch.tensor([8.4927, 5.9022, 6.5498, 5.2299]).view(1, 4, 1, 1)
    fmt = PLAYGROUND_2_5_LATENT_FORMAT
    assert torch.allclose(fmt.process_in(latent), (latent - mean) * 0.5 / std)
    assert torch.allclose(fmt.process_out(fmt.process_in(latent)), latent, atol=1e-6)


def test_model_sampling_nodes_patch_the_handle_only(env, tiny_model):
    v = run(env, "ModelSamplingDiscrete", model=tiny_model, sampling="v_prediction", zsnr=True)
    assert v.module is tiny_model.module and "object_patches" not in tiny_model.info
    assert model_sampling(v).prediction_type == "v" and float(model_sampling(v).sigma_max) > 4000
    assert float(model_sampling(tiny_model).sigma_max) == pytest.approx(14.6146, abs=1e-4)
    sigmas = run(env, "BasicScheduler", model=v, scheduler="karras", steps=4, denoise=1.0)
    assert float(sigmas[0]) == pytest.approx(float(model_sampling(v).sigma_max))
    edm = run(env, "ModelSamplingContinuousEDM", model=tiny_model, sampling="edm_playground_v2.5", sigma_max=120.0,
              sigma_min=0.002)
    view = sampling_model(edm.module, edm)
    assert view.latent_format is PLAYGROUND_2_5_LATENT_FORMAT and view.model_sampling.sigma_data == 0.5
    assert sampling_model(tiny_model.module, tiny_model) is tiny_model.module
    assert float(run(env, "SamplingPercentToSigma", model=edm, sampling_percent=0.5, return_actual_sigma=False)) == \
        pytest.approx(math.sqrt(0.24), rel=1e-5)
    with pytest.raises(ValueError, match="sigma_min must be above 0"):
        run(env, "ModelSamplingContinuousEDM", model=tiny_model, sampling="edm", sigma_max=120.0, sigma_min=0.0)


def test_model_sampling_discrete_samples_as_that_prediction_type(env, tiny_model, tiny_unet):
    """ModelSamplingDiscrete v_prediction on an eps model samples exactly as the same U-Net loaded as a v model;
    eps without zsnr is the model's own sampling, bit for bit."""
    as_v = DiffusionModel(tiny_unet, "sd1", prediction_type="v")
    want = ksampler(env, ModelHandle(as_v, "tiny-v", info=model_info(as_v)))
    patched = run(env, "ModelSamplingDiscrete", model=tiny_model, sampling="v_prediction", zsnr=False)
    assert torch.equal(ksampler(env, patched), want)
    same = run(env, "ModelSamplingDiscrete", model=tiny_model, sampling="eps", zsnr=False)
    assert torch.equal(ksampler(env, same), ksampler(env, tiny_model))


# --- guidance maths ----------------------------------------------------------------------------------------------

def test_rescale_cfg_formula():
    """RescaleCFG (nodes_model_advanced.py): v = (x/(s²+1) - (x - eps_pred)) sqrt(s²+1) / s for cond and uncond,
    v_cfg = v_u + g (v_c - v_u), rescaled to std(v_c) / std(v_cfg) per sample, mixed by the multiplier, back to
    the noise prediction x - (x/(s²+1) - v_final s / sqrt(s²+1))."""
    rng = np.random.default_rng(0)
    x, cond, uncond = (rng.standard_normal((2, 4, 3, 3)) for _ in range(3))
    sigma = np.array([0.7, 9.0])
    s = sigma.reshape(-1, 1, 1, 1)
    xs = x / (s * s + 1)
    vc = (xs - (x - cond)) * np.sqrt(s * s + 1) / s
    vu = (xs - (x - uncond)) * np.sqrt(s * s + 1) / s
    vcfg = vu + 6.0 * (vc - vu)
    std = lambda a: a.reshape(2, -1).std(axis=1, ddof=1).reshape(-1, 1, 1, 1)  # noqa: E731  (torch.std: unbiased)
    final = 0.7 * vcfg * std(vc) / std(vcfg) + 0.3 * vcfg
    want = x - (xs - final * s / np.sqrt(s * s + 1))
    args = {"cond": torch.tensor(cond), "uncond": torch.tensor(uncond), "cond_scale": 6.0, "sigma": torch.tensor(sigma),
            "input": torch.tensor(x)}
    assert np.allclose(rescale_cfg(args, 0.7).numpy(), want, atol=1e-10)


def test_cfg_zero_star_and_cfg_norm_formulas(env, tiny_model):
    rng = np.random.default_rng(1)
    x, cp, up, den = (torch.tensor(rng.standard_normal((2, 4, 3, 3))) for _ in range(4))
    vc, vu = (x - cp).reshape(2, -1).numpy(), (x - up).reshape(2, -1).numpy()
    alpha = ((vc * vu).sum(1) / ((vu ** 2).sum(1) + 1e-8)).reshape(-1, 1, 1, 1)
    assert np.allclose(cfg_zero_star_scale(x - cp, x - up).numpy(), alpha)
    args = {"input": x, "cond_denoised": cp, "uncond_denoised": up, "denoised": den, "cond_scale": 5.0}
    zero_star = run(env, "CFGZeroStar", model=tiny_model).info["model_options"]["sampler_post_cfg_function"][0]
    want = den.numpy() + up.numpy() * (alpha - 1) + 5.0 * up.numpy() * (1 - alpha)
    assert np.allclose(zero_star(args).numpy(), want)
    norm = run(env, "CFGNorm", model=tiny_model, strength=0.8).info["model_options"]["sampler_post_cfg_function"][0]
    ratio = np.clip(np.linalg.norm(cp.numpy(), axis=1, keepdims=True) /
                    (np.linalg.norm(den.numpy(), axis=1, keepdims=True) + 1e-8), 0, 1)
    assert np.allclose(norm(args).numpy(), den.numpy() * ratio * 0.8)


def test_perp_neg_formula():
    """perp_neg (nodes_perpneg.py): pos, neg relative to the empty prompt; neg's part perpendicular to pos (one
    projection over the whole batch) is guided away from."""
    rng = np.random.default_rng(2)
    pos, neg, empty = (rng.standard_normal((2, 4, 3, 3)) for _ in range(3))
    p, n = pos - empty, neg - empty
    perp = n - (n * p).sum() / (np.linalg.norm(p.ravel()) ** 2) * p
    want = empty + 7.0 * (p - 0.8 * perp)
    got = perp_neg(torch.zeros(1), torch.tensor(pos), torch.tensor(neg), torch.tensor(empty), 0.8, 7.0)
    assert np.allclose(got.numpy(), want)
    assert abs(float(((perp * p).sum()))) < 1e-9  # perpendicular indeed


# --- FreeU ----------------------------------------------------------------------------------------------------

def fourier_np(x: np.ndarray, scale: float) -> np.ndarray:
    freq = np.fft.fftshift(np.fft.fftn(x, axes=(-2, -1)), axes=(-2, -1))
    h, w = x.shape[-2:]
    mask = np.ones(x.shape)
    mask[..., h // 2 - 1:h // 2 + 1, w // 2 - 1:w // 2 + 1] = scale
    return np.fft.ifftn(np.fft.ifftshift(freq * mask, axes=(-2, -1)), axes=(-2, -1)).real


@pytest.mark.parametrize("v2", [False, True])
def test_freeu_patch_formula(v2):
    """nodes_freelunch.py: at backbone width 4 * model_channels (b1, s1) or 2 * (b2, s2) the first half of the
    backbone channels is scaled (v2: by 1 + (b - 1) * the channel mean min-max normalised per sample) and the skip
    features' central 2x2 frequencies by s; other widths pass unchanged."""
    patch = freeu_patch(8, b1=1.5, b2=1.2, s1=0.5, s2=0.3, v2=v2)
    rng = np.random.default_rng(3)
    h = rng.standard_normal((2, 32, 6, 6)).astype(np.float32)
    hsp = rng.standard_normal((2, 16, 6, 6)).astype(np.float32)
    got_h, got_hsp = patch(torch.tensor(h), torch.tensor(hsp), {})
    if v2:
        mean = h.mean(1, keepdims=True)
        low, high = mean.min(axis=(1, 2, 3), keepdims=True), mean.max(axis=(1, 2, 3), keepdims=True)
        factor = 0.5 * (mean - low) / (high - low) + 1
    else:
        factor = 1.5
    want_h = h.copy()
    want_h[:, :16] = h[:, :16] * factor
    assert np.allclose(got_h.numpy(), want_h, atol=1e-6)
    assert np.allclose(got_hsp.numpy(), fourier_np(hsp, 0.5), atol=1e-5)
    other = torch.randn(1, 24, 4, 4)  # 3 * model_channels: not a FreeU stage
    assert patch(other, other, {})[0] is other


def test_output_block_patch_acts_where_skips_join(tiny_model):
    """The hook hands a patch ComfyUI's (h, hsp) at every output block: the tiny U-Net (channel_mult 1, 2; one
    resnet per level) has output blocks 0-3 with backbone widths 64, 64, 64, 32 and skips 64, 32, 32, 32; what
    the patch returns is what the resnet gets."""
    seen, inputs = [], []

    def patch(h, hsp, options):
        seen.append((options["block"], h.shape[1], hsp.shape[1], options["cond_or_uncond"]))
        return h * 2, hsp + 1

    def record(module, args):
        inputs.append(args[0])

    unet = tiny_model.module.unet
    unet_patches._install(unet)
    sites = unet_patches.unet_sites(unet)
    handles = [resnet.register_forward_pre_hook(record) for resnet, _, _ in sites.skips]
    captured = []
    try:
        def wrapped(h, hsp, options):
            captured.append((h.clone(), hsp.clone()))
            return patch(h, hsp, options)
        options = {"patches": {"output_block_patch": [wrapped]}, "cond_or_uncond": [0]}
        x = torch.randn(1, 4, 8, 8)
        with torch.no_grad():
            tiny_model.module.apply(x, torch.tensor([500.0]), torch.randn(1, 77, 32), {"transformer_options": options})
    finally:
        for handle in handles:
            handle.remove()
    assert seen == [(("output", 0), 64, 64, [0]), (("output", 1), 64, 32, [0]), (("output", 2), 64, 32, [0]),
                    (("output", 3), 32, 32, [0])]
    for (h, hsp), given in zip(captured, inputs):
        assert torch.equal(given, torch.cat([h * 2, hsp + 1], dim=1))


# --- attention replacement (PAG, SAG) --------------------------------------------------------------------------

class ValueOnly:
    """A diffusers processor whose attention is the identity map (PAG's perturbed attention), written directly."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        return attn.to_out[1](attn.to_out[0](attn.to_v(hidden_states))) / attn.rescale_output_factor


@pytest.mark.parametrize("family, key, blocks", [("sd1", ("middle", 0), [0]), ("sdxl", ("middle", 0), [0, 1]),
                                                 ("sdxl", ("middle", 0, 1), [1])])
def test_attention_replace_matches_a_replaced_processor(family, key, blocks):
    """A replacement keyed (block, id) acts on every transformer block of the middle block, (block, id, index) on
    one; the result equals a copy of the U-Net whose processors there compute to_out(to_v(x)). A replacement that
    computes ordinary attention gives the unpatched U-Net's output."""
    unet = tiny_components(family, seed=5)["unet"].eval()
    model = DiffusionModel(unet, family)
    reference = copy.deepcopy(unet)
    for i in blocks:
        reference.mid_block.attentions[0].transformer_blocks[i].attn1.set_processor(ValueOnly())
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([300.0, 700.0])
    ctx = torch.randn(2, 77, 80 if family == "sdxl" else 32)
    extras = {"pooled_output": torch.randn(2, 48)} if family == "sdxl" else {}
    with torch.no_grad():
        plain = model.apply(x, t, ctx, extras)
        options = {"patches_replace": {"attn1": {key: lambda q, k, v, extra: v}}, "cond_or_uncond": [0, 1]}
        patched = model.apply(x, t, ctx, {**extras, "transformer_options": options})
        want = DiffusionModel(reference, family).apply(x, t, ctx, extras)
        same = {"patches_replace": {"attn1": {key: lambda q, k, v, extra: unet_patches.attention(q, k, v,
                                                                                             extra["n_heads"])}}}
        again = model.apply(x, t, ctx, {**extras, "transformer_options": same})
    assert torch.allclose(patched, want, atol=1e-5) and not torch.allclose(patched, plain, atol=1e-3)
    assert torch.allclose(again, plain, atol=1e-5)
    with torch.no_grad():
        assert torch.equal(model.apply(x, t, ctx, extras), plain)  # hooks installed, no call active: untouched


def test_patches_are_scoped_to_the_calling_thread(tiny_model):
    """While one thread runs a patched call, the same U-Net called from another thread is the plain one."""
    model = tiny_model.module
    x, t, ctx = torch.randn(1, 4, 8, 8), torch.tensor([400.0]), torch.randn(1, 77, 32)
    with torch.no_grad():
        plain = model.apply(x, t, ctx)
    results = {}
    options = {"patches": {"output_block_patch": [lambda h, hsp, o: (h * 3, hsp)]}}
    with torch.no_grad(), unet_patches.active(model.unet, options):
        results["patched"] = model.unet(x, t, encoder_hidden_states=ctx, return_dict=False)[0]
        worker = threading.Thread(target=lambda: results.update(
            other=model.unet(x, t, encoder_hidden_states=ctx, return_dict=False)[0]))
        worker.start()
        worker.join()
    assert torch.equal(results["other"], plain) and not torch.allclose(results["patched"], plain)


def test_sag_helpers():
    """attention_basic_with_sim's output is ordinary attention and its scores are softmax rows; gaussian_blur_2d
    is a 9-tap separable Gaussian with reflected borders; create_blur_map blurs where the mean attention a token
    receives exceeds the threshold."""
    q, k, v = torch.randn(2, 16, 8), torch.randn(2, 16, 8), torch.randn(2, 16, 8)
    out, sim = attention_with_scores(q, k, v, heads=2)
    assert torch.allclose(out, unet_patches.attention(q, k, v, 2), atol=1e-5)
    assert sim.shape == (4, 16, 16) and torch.allclose(sim.sum(-1), torch.ones(4, 16))
    img = torch.randn(1, 2, 10, 10, dtype=torch.float64)
    taps = np.exp(-0.5 * (np.linspace(-4, 4, 9) / 1.5) ** 2)
    taps /= taps.sum()
    padded = np.pad(img.numpy(), ((0, 0), (0, 0), (4, 4), (4, 4)), mode="reflect")
    rows = sum(taps[i] * padded[:, :, i:i + 10, :] for i in range(9))
    want = sum(taps[j] * rows[:, :, :, j:j + 10] for j in range(9))
    assert np.allclose(gaussian_blur_2d(img, 9, 1.5).numpy(), want)
    x0 = torch.randn(1, 4, 8, 8)
    scores = torch.full((2, 16, 16), 1 / 16)  # 2 heads, a 4x4 token grid; tokens 0 and 5 draw all attention
    scores[:, :8] = 0
    scores[:, :8, 0] = 1.0
    scores[:, 8:] = 0
    scores[:, 8:, 5] = 1.0
    mask = torch.zeros(16)
    mask[[0, 5]] = 1
    mask = torch.nn.functional.interpolate(mask.view(1, 1, 4, 4), (8, 8))
    blurred = gaussian_blur_2d(x0, 9, 2.0)
    assert torch.allclose(create_blur_map(x0, scores, 2.0, 1.0), blurred * mask + x0 * (1 - mask))


# --- end to end: every patch on KSampler / the custom sampler ------------------------------------------------------

PATCHES = [
    ("FreeU", dict(b1=1.1, b2=1.2, s1=0.9, s2=0.2)),
    ("FreeU_V2", dict(b1=1.3, b2=1.4, s1=0.9, s2=0.2)),
    ("PerturbedAttentionGuidance", dict(scale=3.0)),
    ("SelfAttentionGuidance", dict(scale=0.5, blur_sigma=2.0)),
    ("RescaleCFG", dict(multiplier=0.7)),
    ("CFGZeroStar", {}),
    ("CFGNorm", dict(strength=0.9)),
    ("PerpNeg", dict(empty_conditioning=EMPTY, neg_scale=1.0)),
    ("ModelSamplingDiscrete", dict(sampling="v_prediction", zsnr=True)),
    ("ModelSamplingDiscrete", dict(sampling="lcm", zsnr=False)),
    ("ModelSamplingDiscrete", dict(sampling="x0", zsnr=False)),
    ("ModelSamplingContinuousEDM", dict(sampling="edm_playground_v2.5", sigma_max=120.0, sigma_min=0.002)),
    ("ModelSamplingContinuousEDM", dict(sampling="v_prediction", sigma_max=120.0, sigma_min=0.002)),
    ("ModelSamplingContinuousEDM", dict(sampling="cosmos_rflow", sigma_max=80.0, sigma_min=0.002)),
    ("ModelSamplingContinuousV", dict(sampling="v_prediction", sigma_max=500.0, sigma_min=0.03)),
]


@pytest.mark.parametrize("name, params", PATCHES, ids=[f"{n}-{p.get('sampling', '')}" for n, p in PATCHES])
def test_patch_changes_the_sample_and_leaves_the_model_alone(env, tiny_model, name, params):
    base = ksampler(env, tiny_model)
    patched = run(env, name, model=tiny_model, **params)
    assert patched is not tiny_model and patched.module is tiny_model.module
    out = ksampler(env, patched)
    assert torch.isfinite(out).all() and not torch.allclose(out, base, atol=1e-3)
    assert torch.equal(ksampler(env, tiny_model), base)  # the unpatched handle samples as before, bit for bit
    assert "model_options" not in tiny_model.info and "object_patches" not in tiny_model.info


def test_neutral_settings_give_ksamplers_exact_tensors(env, tiny_model):
    """RescaleCFG at multiplier 0 and FreeU / FreeU_V2 with every factor 1 (their hook in the U-Net running) are
    plain KSampler."""
    base = ksampler(env, tiny_model)
    assert torch.equal(ksampler(env, run(env, "RescaleCFG", model=tiny_model, multiplier=0.0)), base)
    for name in ("FreeU", "FreeU_V2"):
        freeu = run(env, name, model=tiny_model, b1=1.0, b2=1.0, s1=1.0, s2=1.0)
        assert freeu.info["model_options"]["transformer_options"]["patches"]["output_block_patch"]
        assert torch.equal(ksampler(env, freeu), base)
    assert torch.equal(ksampler(env, run(env, "PerturbedAttentionGuidance", model=tiny_model, scale=0.0)), base)
    # SAG at scale 0 still records attention with its own (non-SDPA) attention: equal up to rounding (the tiny
    # random model's latents run to the hundreds, hence a relative tolerance)
    sag = run(env, "SelfAttentionGuidance", model=tiny_model, scale=0.0, blur_sigma=2.0)
    assert torch.allclose(ksampler(env, sag), base, rtol=1e-5, atol=1e-3)


def test_patches_stack_and_compose_with_custom_sampling(env, tiny_model):
    """Patched handles chain (FreeU then PAG then RescaleCFG: each keeps the earlier options) and the guiders of the
    custom-sampling nodes use them as KSampler does."""
    freeu = run(env, "FreeU", model=tiny_model, b1=1.1, b2=1.2, s1=0.9, s2=0.2)
    pag = run(env, "PerturbedAttentionGuidance", model=freeu, scale=2.0)
    both = run(env, "RescaleCFG", model=pag, multiplier=0.5)
    options = both.info["model_options"]
    assert len(options["transformer_options"]["patches"]["output_block_patch"]) == 1
    assert len(options["sampler_post_cfg_function"]) == 1 and "sampler_cfg_function" in options
    assert "sampler_cfg_function" not in pag.info["model_options"]  # earlier handles keep their options
    out = ksampler(env, both, scheduler="karras")
    for partial in (freeu, pag):
        assert not torch.allclose(out, ksampler(env, partial, scheduler="karras"), atol=1e-3)
    sigmas = run(env, "BasicScheduler", model=both, scheduler="karras", steps=4, denoise=1.0)
    guider = run(env, "CFGGuider", model=both, positive=POS, negative=NEG, cfg=5.0)
    custom, _ = run(env, "SamplerCustomAdvanced", noise=run(env, "RandomNoise", noise_seed=7), guider=guider,
                    sampler=run(env, "KSamplerSelect", sampler_name="euler"), sigmas=sigmas, latent_image=LATENT)
    assert torch.equal(custom["samples"], out)


def test_perp_neg_node_and_guider_agree(env, tiny_model):
    """The deprecated PerpNeg model patch and PerpNegGuider compute the same guidance (the guider batches the three
    predictions); with neg_scale 0 Perp-Neg is CFG from the empty prompt."""
    sigmas = run(env, "BasicScheduler", model=tiny_model, scheduler="normal", steps=4, denoise=1.0)
    euler = run(env, "KSamplerSelect", sampler_name="euler")

    def custom(guider):
        return run(env, "SamplerCustomAdvanced", noise=run(env, "RandomNoise", noise_seed=7), guider=guider,
                   sampler=euler, sigmas=sigmas, latent_image=LATENT)[0]["samples"]

    node = ksampler(env, run(env, "PerpNeg", model=tiny_model, empty_conditioning=EMPTY, neg_scale=0.7))
    guided = custom(run(env, "PerpNegGuider", model=tiny_model, positive=POS, negative=NEG, empty_conditioning=EMPTY,
                        cfg=5.0, neg_scale=0.7))
    assert torch.allclose(node, guided, atol=1e-4)
    zero = custom(run(env, "PerpNegGuider", model=tiny_model, positive=POS, negative=NEG, empty_conditioning=EMPTY,
                      cfg=5.0, neg_scale=0.0))
    cfg_from_empty = custom(run(env, "CFGGuider", model=tiny_model, positive=POS, negative=EMPTY, cfg=5.0))
    assert torch.allclose(zero, cfg_from_empty, atol=1e-4) and not torch.allclose(zero, guided, atol=1e-3)


def test_sag_needs_an_uncond(env, tiny_model):
    sag = run(env, "SelfAttentionGuidance", model=tiny_model, scale=0.5, blur_sigma=2.0)
    guider = run(env, "BasicGuider", model=sag, conditioning=POS)
    with pytest.raises(ValueError, match="needs an uncond"):
        run(env, "SamplerCustomAdvanced", noise=run(env, "RandomNoise", noise_seed=1), guider=guider,
            sampler=run(env, "KSamplerSelect", sampler_name="euler"),
            sigmas=torch.tensor([14.6, 3.0, 0.0]), latent_image=LATENT)
    with pytest.raises(ValueError, match="blur_sigma must be above 0"):
        run(env, "SelfAttentionGuidance", model=tiny_model, scale=0.5, blur_sigma=0.0)


def test_comfy_api_workflow_with_patches(env, tmp_path):
    """An API-format prompt as ComfyUI's frontend writes it: checkpoint -> FreeU_V2 -> PAG -> RescaleCFG ->
    KSampler beside a plain KSampler on the same checkpoint; the plain branch keeps the plain workflow's cached
    result."""
    save_tiny_checkpoint(tmp_path / "models" / "checkpoints" / "tiny.safetensors", "sd1", seed=4)
    sampler = lambda model: {"class_type": "KSampler", "inputs": {  # noqa: E731
        "seed": 3, "steps": 3, "cfg": 6, "sampler_name": "euler", "scheduler": "normal", "denoise": 1,
        "model": model, "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}}
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "10": {"class_type": "FreeU_V2", "inputs": {"b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2, "model": ["4", 0]}},
        "11": {"class_type": "PerturbedAttentionGuidance", "inputs": {"scale": 3, "model": ["10", 0]}},
        "12": {"class_type": "RescaleCFG", "inputs": {"multiplier": 0.7, "model": ["11", 0]}},
        "3": sampler(["12", 0]),
        "13": sampler(["4", 0]),
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "patched", "images": ["8", 0]}},
        "14": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["4", 2]}},
        "15": {"class_type": "SaveImage", "inputs": {"filename_prefix": "plain", "images": ["14", 0]}},
    }
    executor = Executor(env)
    alone = executor.run({k: v for k, v in prompt.items() if k in ("4", "5", "6", "7", "13", "14", "15")})
    assert alone.status == "success", alone.errors
    result = executor.run(prompt)
    assert result.status == "success", result.errors
    assert {"10", "11", "12", "3"} <= set(result.executed) and "15" in result.cached  # the plain branch is reused
    assert not torch.allclose(result.value("3")["samples"], alone.value("13")["samples"], atol=1e-3)
