"""Guidance and the KSampler pipeline on a toy model whose predictions are known.

The toy "U-Net" is the exact denoiser of Gaussian data N(mu, s²) where mu is read from the
context (its mean), so every prompt predicts a known x0; with s = 0 the prediction is mu itself.
It reads sigma back from the (nearest training) timestep, so exact checks use the "simple"
scheduler, whose sigmas are training sigmas.
"""
from __future__ import annotations

import math

import pytest
import torch

from nodes.diffusion.models import LatentFormat
from nodes.diffusion.sampling import (SAMPLER_NAMES, CFGDenoiser, ModelDenoiser, ModelSampling, calculate_sigmas, common_ksampler,
                                      prepare_conds, prepare_mask, prepare_noise, scaled_linear_alphas_cumprod)
from nodes.diffusion.sampling.guidance import add_matching_areas


class ToyModel:
    """Duck-types DiffusionModel: apply(x, timestep, context, extras) -> eps (or v) prediction."""

    def __init__(self, s: float = 0.0, prediction_type: str = "eps", channels: int = 4) -> None:
        self.s = s
        self.prediction_type = prediction_type
        self.alphas_cumprod = scaled_linear_alphas_cumprod()
        self.latent_format = LatentFormat(channels=channels)
        self.adm = self.inpaint = False
        self.device = torch.device("cpu")
        self.ms = ModelSampling(self.alphas_cumprod)
        self.calls: list[dict] = []

    def apply(self, x, timestep, context, extras=None):
        self.calls.append({"batch": x.shape[0], "shape": tuple(x.shape), "context": tuple(context.shape)})
        sigma = self.ms.sigma(timestep).view(-1, 1, 1, 1)
        mu = context.mean(dim=(1, 2)).view(-1, 1, 1, 1)
        x_ve = x * (sigma ** 2 + 1) ** 0.5
        x0 = mu + self.s ** 2 / (self.s ** 2 + sigma ** 2) * (x_ve - mu)
        if self.prediction_type == "v":
            alpha, sig = 1 / (1 + sigma ** 2) ** 0.5, sigma / (1 + sigma ** 2) ** 0.5
            return alpha * (x_ve - x0) / sigma - sig * x0
        return (x_ve - x0) / sigma


def cond(value: float, tokens: int = 77, **extras):
    return [[torch.full((1, tokens, 8), float(value)), dict(extras)]]


def guided(model, positive, negative, cfg, x, sigma=2.0):
    ms = ModelSampling.for_model(model)
    pos = prepare_conds(positive, model, ms, x)
    neg = prepare_conds(negative, model, ms, x)
    add_matching_areas(neg, pos)
    add_matching_areas(pos, neg)
    denoiser = CFGDenoiser(ModelDenoiser(model, ms), pos, neg, cfg)
    return denoiser(x, torch.full((x.shape[0],), ms.sigma(ms.timestep(torch.tensor(sigma)))))


# --- the denoiser and CFG ------------------------------------------------------------------------------

@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_model_denoiser_turns_predictions_into_x0(prediction):
    model = ToyModel(s=0.5, prediction_type=prediction)
    ms = ModelSampling.for_model(model)
    x = torch.randn(2, 4, 4, 4) * 3
    sigma = ms.sigma(torch.tensor([700.0, 100.0]))  # on the training grid: the toy reads sigma back exactly
    d = ModelDenoiser(model, ms)(x, sigma, {"context": torch.full((2, 77, 8), 1.5)})
    s = sigma.view(-1, 1, 1, 1)
    assert torch.allclose(d, 1.5 + 0.25 / (0.25 + s ** 2) * (x - 1.5), atol=1e-4)


def test_cfg_mixes_cond_and_uncond():
    x = torch.randn(2, 4, 8, 8)
    out = guided(ToyModel(), cond(2.0), cond(-1.0), 7.5, x)
    assert torch.allclose(out, torch.full_like(x, -1.0 + 7.5 * (2.0 - -1.0)), atol=1e-4)


def test_cond_and_uncond_run_in_one_forward_of_batch_2b():
    model = ToyModel()
    guided(model, cond(1.0), cond(0.0), 5.0, torch.randn(3, 4, 8, 8))
    assert [c["batch"] for c in model.calls] == [6]
    model.calls.clear()  # prompts of different lengths are tiled to a common length, still one forward
    guided(model, cond(1.0, tokens=154), cond(0.0), 5.0, torch.randn(3, 4, 8, 8))
    assert [(c["batch"], c["context"]) for c in model.calls] == [(6, (6, 154, 8))]
    model.calls.clear()  # cfg 1: no uncond at all
    out = guided(model, cond(1.0), cond(0.0), 1.0, torch.randn(3, 4, 8, 8))
    assert [c["batch"] for c in model.calls] == [3] and torch.allclose(out, torch.ones_like(out), atol=1e-4)


def test_a_batch_too_big_for_memory_runs_in_parts():
    model = ToyModel()
    x = torch.randn(2, 4, 8, 8)
    ms = ModelSampling()
    pos = prepare_conds(cond(1.0) + cond(3.0), model, ms, x)
    neg = prepare_conds(cond(0.0), model, ms, x)
    inner = ModelDenoiser(model, ms)

    def small_memory(xb, sigma, conds):
        if xb.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return inner(xb, sigma, conds)

    sigma = ms.sigma(torch.full((2,), 300.0))  # a training sigma: the toy reads it back exactly
    out = CFGDenoiser(small_memory, pos, neg, 2.0)(x, sigma)
    assert [c["batch"] for c in model.calls] == [2, 2, 2]  # 6 rows tried at once, then one chunk at a time
    assert torch.allclose(out, torch.full_like(out, 0.0 + 2.0 * (2.0 - 0.0)), atol=1e-4)


def test_combined_conds_are_averaged():
    out = guided(ToyModel(), cond(1.0) + cond(3.0), cond(0.0), 1.0, torch.randn(1, 4, 8, 8))
    assert torch.allclose(out, torch.full_like(out, 2.0), atol=1e-4)
    out = guided(ToyModel(), cond(1.0) + cond(3.0, strength=3.0), cond(0.0), 1.0, torch.randn(1, 4, 8, 8))
    assert torch.allclose(out, torch.full_like(out, (1 + 3 * 3) / 4), atol=1e-4)


def test_area_conditioning_weights_with_feathered_edge():
    """ConditioningSetArea (h, w, y, x) in latent cells: inside, the area prompt is averaged with the
    full one; its inner edges fade over min(8, size // 4) cells; outside, only the full prompt."""
    model = ToyModel()
    x = torch.randn(1, 4, 32, 32)
    area = cond(3.0, area=(16, 16, 0, 8), strength=1.0)  # rows 0..15, columns 8..23
    out = guided(model, cond(1.0) + area, cond(0.0), 1.0, x)[0, 0]
    assert torch.allclose(out[16:], torch.ones(16, 32), atol=1e-4)  # below the area
    assert torch.allclose(out[:, :8], torch.ones(32, 8), atol=1e-4) and torch.allclose(out[:, 24:], torch.ones(32, 8), atol=1e-4)
    assert out[8, 15] == pytest.approx(2.0, abs=1e-4)  # interior: (1 + 3) / 2
    # feather: 4 cells (16 // 4) at the left edge (offset 8), the right edge (24 < 32) and the bottom (16 < 32)
    weights = [0.25, 0.5, 0.75, 1.0]
    for t, w in enumerate(weights):
        assert out[8, 8 + t] == pytest.approx((1 + 3 * w) / (1 + w), abs=1e-4)
        assert out[8, 23 - t] == pytest.approx((1 + 3 * w) / (1 + w), abs=1e-4)
        assert out[15 - t, 15] == pytest.approx((1 + 3 * w) / (1 + w), abs=1e-4)
    assert out[0, 15] == pytest.approx(2.0, abs=1e-4)  # no feather at the image border (offset 0)
    # the negative side got a matching area entry (with the negative prompt) so CFG compares like with like
    ms = ModelSampling()
    pos = prepare_conds(cond(1.0) + area, model, ms, x)
    neg = prepare_conds(cond(0.0), model, ms, x)
    add_matching_areas(neg, pos)
    assert len(neg) == 2 and neg[1].area == (16, 16, 0, 8) and float(neg[1].context.mean()) == 0.0


def test_area_entries_of_equal_size_share_a_forward():
    model = ToyModel()
    left, right = cond(2.0, area=(8, 8, 0, 0)), cond(4.0, area=(8, 8, 0, 8))
    out = guided(model, left + right, cond(0.0), 1.0, torch.randn(1, 4, 8, 16))[0, 0]
    assert [c["shape"] for c in model.calls] == [(2, 4, 8, 8)]  # one forward for both areas
    assert out[4, 1] == pytest.approx(2.0, abs=1e-4) and out[4, 14] == pytest.approx(4.0, abs=1e-4)


def test_percentage_area_mask_and_bounds():
    model = ToyModel()
    x = torch.randn(1, 4, 16, 16)
    # ("percentage", h, w, y, x): the right half
    out = guided(model, cond(1.0) + cond(3.0, area=("percentage", 1.0, 0.5, 0.0, 0.5)), cond(0.0), 1.0, x)[0, 0]
    assert torch.allclose(out[:, :8], torch.ones(16, 8), atol=1e-4) and out[5, 12] == pytest.approx(2.0, abs=1e-4)
    # ConditioningSetMask: weights are the mask (any resolution), no feather
    mask = torch.zeros(1, 128, 128)
    mask[:, :, 64:] = 1.0
    out = guided(model, cond(1.0) + cond(3.0, mask=mask, mask_strength=2.0), cond(0.0), 1.0, x)[0, 0]
    assert torch.allclose(out[:, :7], torch.ones(16, 7), atol=1e-4)
    assert torch.allclose(out[:, 9:], torch.full((16, 7), (1 + 3 * 2) / 3), atol=1e-4)
    ms = ModelSampling()
    [entry] = prepare_conds(cond(3.0, mask=mask, set_area_to_bounds=True), model, ms, x)
    assert entry.area == (16, 8, 0, 8) and entry.mask.shape == (1, 16, 16)


def test_timestep_range_switches_a_prompt_on_and_off():
    model = ToyModel()
    x = torch.randn(1, 4, 8, 8)
    late = cond(3.0, start_percent=0.5, end_percent=1.0)  # only the second half of the run
    high = guided(model, cond(1.0) + late, cond(0.0), 1.0, x, sigma=10.0)
    low = guided(model, cond(1.0) + late, cond(0.0), 1.0, x, sigma=0.5)
    assert torch.allclose(high, torch.ones_like(high), atol=1e-4)
    assert torch.allclose(low, torch.full_like(low, 2.0), atol=1e-4)


# --- noise -------------------------------------------------------------------------------------------

def test_prepare_noise_is_comfyui_noise():
    latent = torch.zeros(3, 4, 8, 6)
    torch.manual_seed(0)
    torch.randn(5)  # global state before does not matter
    noise = prepare_noise(latent, 1234)
    torch.manual_seed(1234)
    assert torch.equal(noise, torch.randn(3, 4, 8, 6))
    # batch_index: one draw per index up to the largest; later images of a batch keep their noise
    picked = prepare_noise(latent, 1234, [2, 0, 2])
    torch.manual_seed(1234)
    draws = [torch.randn(1, 4, 8, 6) for _ in range(3)]
    assert torch.equal(picked, torch.cat([draws[2], draws[0], draws[2]]))
    assert torch.equal(prepare_noise(latent[:1], 2 ** 64 - 1), prepare_noise(latent[:1], 2 ** 64 - 1))
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    prepare_noise(latent, 99)
    assert torch.equal(torch.rand(3), expected)  # the global generator is left alone


def test_prepare_mask_resizes_and_repeats():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 32:] = 1
    m = prepare_mask(mask, (3, 4, 8, 8), torch.device("cpu"))
    assert m.shape == (3, 4, 8, 8) and m[:, :, :, :4].eq(0).all() and m[:, :, :, 4:].eq(1).all()
    assert prepare_mask(torch.ones(16, 16), (1, 4, 8, 8), torch.device("cpu")).shape == (1, 4, 8, 8)


# --- the pipeline ------------------------------------------------------------------------------------

def test_ksampler_equals_comfyui_pipeline_written_out():
    """noise from the seed, x = noise * sqrt(1 + sigma_0²), Euler on the CFG x0, divided by the scale factor."""
    model = ToyModel(s=0.4)
    latent = {"samples": torch.zeros(2, 4, 8, 8)}
    out = common_ksampler(model, 42, 6, 4.0, "euler", "simple", cond(0.5), cond(-0.2), latent)["samples"]
    ms = ModelSampling()
    sigmas = calculate_sigmas(ms, "simple", 6)
    torch.manual_seed(42)
    x = torch.randn(2, 4, 8, 8) * (1 + sigmas[0] ** 2) ** 0.5
    for i in range(6):
        s = sigmas[i]
        c = 0.5 + 0.16 / (0.16 + s ** 2) * (x - 0.5)
        u = -0.2 + 0.16 / (0.16 + s ** 2) * (x + 0.2)
        d = u + 4.0 * (c - u)
        x = x + (x - d) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
    assert torch.allclose(out, x / 0.18215, rtol=1e-5, atol=1e-5)
    assert model.calls and all(c["batch"] == 4 for c in model.calls) and len(model.calls) == 6


def test_same_seed_same_result_other_seed_other_result():
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    run = lambda seed, sampler: common_ksampler(ToyModel(s=0.5), seed, 4, 3.0, sampler, "karras", cond(1.0),  # noqa: E731
                                                cond(0.0), latent)["samples"]
    for sampler in ("euler", "euler_ancestral", "dpmpp_2m_sde"):
        assert torch.equal(run(7, sampler), run(7, sampler)) and not torch.equal(run(7, sampler), run(8, sampler))


def test_denoise_below_one_starts_from_the_latent():
    torch.manual_seed(0)
    latent = {"samples": torch.randn(1, 4, 16, 16) * 3}
    stats = {}
    model = ToyModel(s=0.2)
    out = common_ksampler(model, 1, 10, 1.0, "euler", "normal", cond(0.0), cond(0.0), latent, denoise=0.4,
                          stats=stats)["samples"]
    assert len(stats["sigmas"]) == 11 and torch.equal(stats["sigmas"], calculate_sigmas(ModelSampling(), "normal", 25)[-11:])
    assert stats["model_calls"] == len(model.calls) == 10
    full = common_ksampler(ToyModel(s=0.2), 1, 10, 1.0, "euler", "normal", cond(0.0), cond(0.0), latent)["samples"]

    def corr(a):
        return float(torch.corrcoef(torch.stack([a.flatten(), latent["samples"].flatten()]))[0, 1])
    lighter = common_ksampler(ToyModel(s=0.2), 1, 10, 1.0, "euler", "normal", cond(0.0), cond(0.0), latent,
                              denoise=0.2)["samples"]
    # img2img keeps the input's structure, the more so the lower the denoise; txt2img does not
    assert corr(lighter) > 0.6 > corr(out) > 0.35 > 0.15 > abs(corr(full))
    zero = common_ksampler(ToyModel(), 1, 10, 1.0, "euler", "normal", cond(0.0), cond(0.0), latent, denoise=0.0)
    assert torch.equal(zero["samples"], latent["samples"])


@pytest.mark.parametrize("sampler", ["euler", "ddim", "dpmpp_2m_sde", "uni_pc"])
def test_noise_mask_keeps_the_unmasked_region(sampler):
    torch.manual_seed(0)
    latent = {"samples": torch.randn(2, 4, 8, 8), "noise_mask": torch.zeros(2, 1, 64, 64)}
    latent["noise_mask"][..., :, 32:] = 1.0  # repaint the right half only (mask at pixel resolution)
    out = common_ksampler(ToyModel(s=0.3), 3, 5, 2.0, sampler, "karras", cond(2.0), cond(0.0), latent)
    assert set(out) == {"samples", "noise_mask"}
    kept, repainted = out["samples"][..., :4], out["samples"][..., 4:]
    # UniPC stops at sigma 0.001 instead of 0 (ComfyUI): a trace of noise stays
    assert torch.allclose(kept, latent["samples"][..., :4], atol=0.05 if sampler == "uni_pc" else 1e-5)
    assert not torch.allclose(repainted, latent["samples"][..., 4:], atol=0.1)


def test_empty_latent_channels_and_batch_index_are_kept():
    latent = {"samples": torch.zeros(2, 16, 8, 8), "batch_index": [3, 4]}
    out = common_ksampler(ToyModel(s=0.5), 0, 2, 1.0, "euler", "simple", cond(1.0), cond(0.0), latent)
    assert out["samples"].shape == (2, 4, 8, 8) and out["batch_index"] == [3, 4]


def test_advanced_step_windows_compose():
    """Steps 0..4 with leftover noise, then 4..end without new noise == one run (deterministic sampler)."""
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    args = (ToyModel(s=0.5), 11, 8, 3.0, "euler", "karras", cond(1.0), cond(0.0))
    whole = common_ksampler(*args, latent)["samples"]
    first = common_ksampler(*args, latent, start_step=0, last_step=4, force_full_denoise=False)
    second = common_ksampler(*args, first, disable_noise=True, start_step=4, last_step=10000)["samples"]
    assert torch.allclose(second, whole, rtol=1e-4, atol=1e-4)
    forced = common_ksampler(*args, latent, start_step=0, last_step=4, force_full_denoise=True)["samples"]
    assert not torch.allclose(forced, first["samples"])  # jumps to sigma 0 at step 4
    past = common_ksampler(*args, first, start_step=8, last_step=10000)
    assert torch.equal(past["samples"], first["samples"])  # nothing left to run: the input


def test_interrupt_stops_sampling():
    class Stop(Exception):
        pass

    calls = []

    def check():
        calls.append(1)
        if len(calls) > 2:
            raise Stop()

    with pytest.raises(Stop):
        common_ksampler(ToyModel(), 0, 10, 2.0, "euler", "normal", cond(1.0), cond(0.0),
                        {"samples": torch.zeros(1, 4, 8, 8)}, check_interrupt=check)
    assert len(calls) == 3


def test_callback_reports_every_step_with_x0():
    seen = []
    common_ksampler(ToyModel(), 0, 7, 1.0, "heun", "simple", cond(2.0), cond(0.0), {"samples": torch.zeros(1, 4, 8, 8)},
                    callback=lambda i, x0, x, total: seen.append((i, total, float(x0.mean()))))
    assert [(i, t) for i, t, _ in seen] == [(i, 7) for i in range(7)]
    assert all(m == pytest.approx(2.0, abs=1e-3) for _, _, m in seen)  # the toy's x0 (model space)


@pytest.mark.parametrize("base", ["euler", "euler_ancestral", "dpmpp_2m", "dpmpp_2s_ancestral", "res_multistep",
                                  "res_multistep_ancestral", "gradient_estimation"])
def test_cfg_pp_samplers_step_along_the_uncond_prediction(base):
    """CFG++ moves x along the uncond x0's direction: with cond == uncond it is the base sampler; it
    runs the uncond pass even at cfg 1."""
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    run = lambda name, neg, model=None: common_ksampler(model or ToyModel(s=0.5), 3, 5, 1.0, name, "simple",  # noqa: E731
                                                        cond(1.0), neg, latent)["samples"]
    same = torch.allclose(run(base + "_cfg_pp", cond(1.0)), run(base, cond(1.0)), atol=1e-4)
    # ComfyUI's 2S CFG++ reads the uncond x0 of the midpoint call in its final update: not the base sampler
    assert same == (base != "dpmpp_2s_ancestral")
    model = ToyModel(s=0.5)
    pp = run(base + "_cfg_pp", cond(-1.0), model)
    assert model.calls[0]["batch"] == 2 and not torch.allclose(pp, run(base, cond(-1.0)), atol=1e-2)
    from nodes.diffusion.sampling import get_sampler
    with pytest.raises(RuntimeError, match="CFG\\+\\+ samplers need"):
        get_sampler(base + "_cfg_pp")(lambda x, s, **kw: x * 0, torch.ones(1, 4), torch.tensor([2.0, 1.0, 0.0]))


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_every_sampler_runs_through_the_pipeline(name):
    """Each of ComfyUI's 44 sampler names samples a latent end to end: finite, seeded, one callback per step,
    and (cond x0 mean 1, uncond 0, cfg 3) near the guided mean 3 in model space. The CFG++ samplers step
    along the uncond x0, so they land elsewhere (their formulas: test_cfg_pp_samplers_step_along_...)."""
    cfg_pp = name.endswith("_cfg_pp")
    cfg = 1.0 if cfg_pp else 3.0  # CFG++'s scale is meant to stay within 0..1
    latent = {"samples": torch.zeros(1, 4, 8, 8)}

    def run(seed):
        steps = []
        out = common_ksampler(ToyModel(s=0.5), seed, 4, cfg, name, "karras", cond(1.0), cond(0.0), latent,
                              callback=lambda i, x0, x, total: steps.append((i, total)))["samples"]
        return out * LatentFormat.scale_factor, steps

    out, steps = run(5)
    assert bool(torch.isfinite(out).all()) and (cfg_pp or abs(float(out.mean()) - cfg) < 0.75), (name, float(out.mean()))
    assert torch.equal(out, run(5)[0]), name
    if name == "dpm_fast":  # reports its two solver steps (third + first order)
        assert steps == [(0, 4), (1, 4)]
    elif name != "dpm_adaptive":  # adaptive: as many as its controller takes
        assert steps == [(i, 4) for i in range(4)], (name, steps)
