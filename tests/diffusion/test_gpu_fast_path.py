"""The GPU fast path (issue 15): a sampling step that never reads GPU data on the host, step previews that
do not stall, CUDA graphs for the denoiser (equal images to eager; the GPU tests skip without CUDA), and the
switch that turns graphs off."""
from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from nodegraph.cli import build_parser, main
from tests import tiny_models as C  # tiny_components: the project's own random-weight models
from nodes.diffusion import cuda_graphs, unet_compile
from nodes.diffusion.models import DiffusionModel, LatentFormat, _constant
from nodes.diffusion.previews import StepPreviews
from nodes.diffusion.sampling import common_ksampler
from nodes.diffusion.sampling.guidance import CFGDenoiser, ModelDenoiser, prepare_conds
from nodes.diffusion.sampling.samplers import karras
from nodes.diffusion.sampling.schedules import ModelSampling, ksampler_sigmas


class HostRead(AssertionError):
    pass


class DeviceOnly(torch.Tensor):
    """Stands for a CUDA tensor on the CPU: reading a value on the host (item, float, bool, tolist, numpy,
    a copy to another device), which on a GPU waits for all queued work, raises."""

    FORBIDDEN = {torch.Tensor.item, torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.__bool__,
                 torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.cpu}

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in cls.FORBIDDEN:
            raise HostRead(f"host read of a device tensor: {getattr(func, '__name__', func)}")
        if func in (torch.Tensor.to,) and any(isinstance(a, (str, torch.device)) for a in args[1:]):
            raise HostRead("device copy inside a step")
        return super().__torch_function__(func, types, args, kwargs or {})


def device_only(t: torch.Tensor) -> torch.Tensor:
    return t.as_subclass(DeviceOnly)


class RecordingModel:
    """A DiffusionModel stand-in: eps = 0.1 x, and records what the step hands it."""

    latent_format = LatentFormat()
    adm = inpaint = False

    def __init__(self):
        self.calls = []

    def apply(self, x, timestep, context, extras):
        self.calls.append((x.shape, timestep, context.shape, extras))
        return x * 0.1


def test_a_guided_denoiser_step_reads_nothing_on_the_host():
    """CFG denoiser (cond + uncond in one batch) -> ModelDenoiser -> ModelSampling (sigma -> timestep, c_in,
    eps -> x0) with every tensor device-only: issue 15's float(sigma) in _chunk and the timestep's round trip
    through the CPU would raise here."""
    ms = ModelSampling()
    model = RecordingModel()
    x = device_only(torch.randn(2, 4, 8, 8))
    sigma = device_only(torch.full((2,), 3.5))
    conds = [[torch.randn(1, 77, 32), {}]]
    positive = prepare_conds(conds, model, ms, x)
    negative = prepare_conds([[torch.randn(1, 77, 32), {}]], model, ms, x)
    positive = [_device_entry(e) for e in positive]
    negative = [_device_entry(e) for e in negative]
    denoiser = CFGDenoiser(ModelDenoiser(model, ms), positive, negative, 7.0)
    out = denoiser(x, sigma)
    assert out.shape == x.shape
    (shape, timestep, _, _), = model.calls  # one forward: cond and uncond batched
    assert shape[0] == 4 and isinstance(timestep, DeviceOnly)
    # the timestep is ComfyUI's: the index of the nearest training sigma (computed on the CPU here for reference)
    expected = (ms.log_sigmas - math.log(3.5)).abs().argmin().float()
    assert torch.equal(timestep.as_subclass(torch.Tensor), expected.expand(4))


def _device_entry(entry):
    entry.context = device_only(entry.context)
    return entry


def test_an_euler_run_reads_nothing_on_the_host():
    """The sampler loop itself (sigmas on the device, as the pipeline puts them): no host reads either."""
    sigmas = device_only(torch.tensor([14.6, 5.0, 1.0, 0.0]))
    x = device_only(torch.randn(1, 4, 8, 8))
    seen = []

    def denoiser(x, sigma, **_):
        seen.append(sigma)
        return x * 0.5

    out = karras.sample_euler(denoiser, x, sigmas)
    assert len(seen) == 3 and out.shape == x.shape


def test_a_timestep_window_reads_sigma_only_when_one_is_set():
    ms = ModelSampling()
    model = RecordingModel()
    x = device_only(torch.randn(1, 4, 8, 8))
    entries = prepare_conds([[torch.randn(1, 77, 32), {"start_percent": 0.0, "end_percent": 0.5}]], model, ms, x)
    denoiser = CFGDenoiser(ModelDenoiser(model, ms), [_device_entry(e) for e in entries], None, 1.0)
    with pytest.raises(HostRead):  # a window needs the value (as in ComfyUI, which reads it too)
        denoiser(x, device_only(torch.full((1,), 3.5)))


def test_timestep_log_sigmas_are_copied_once_per_device_and_follow_new_sigmas():
    ms = ModelSampling()
    first = ms.log_sigmas_on(torch.device("cpu"))
    assert first is ms.log_sigmas
    ms.set_sigmas(ms.sigmas * 2)
    assert ms.log_sigmas_on(torch.device("cpu")) is ms.log_sigmas
    assert torch.allclose(ms.timestep(ms.sigmas[10:13]), torch.tensor([10.0, 11.0, 12.0]))


def test_preview_constants_are_built_once():
    fmt = LatentFormat()
    a = _constant(fmt.rgb_factors, torch.device("cpu"), torch.float32)
    assert _constant(fmt.rgb_factors, torch.device("cpu"), torch.float32) is a
    assert _constant([list(r) for r in fmt.rgb_factors], torch.device("cpu"), torch.float32) is a
    assert fmt.to_rgb(torch.zeros(1, 4, 2, 2)).shape == (1, 2, 2, 3)


def test_step_previews_emit_one_preview_per_step_progress_first():
    events = []
    previews = StepPreviews(lambda v, t: events.append(("progress", v)), lambda im: events.append(("preview", im)),
                            LatentFormat(), last_x0={})
    for step in range(3):
        previews(step, torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8), 3)
    kinds = [k for k, _ in events]
    # each preview comes a step late (its copy has finished by then), the last at once
    assert kinds == ["progress", "progress", "preview", "progress", "preview", "preview"]
    assert all(isinstance(v, Image.Image) and v.size == (8, 8) for k, v in events if k == "preview")


# --- CUDA graphs: the parts that run anywhere ----------------------------------------------------------------

def test_graph_inputs_flatten_and_rebuild():
    a, b, c = torch.zeros(1), torch.ones(2), torch.ones(3)
    structure, tensors = cuda_graphs.flatten_inputs({"x": a, "res": [b, c], "none": None, "w": 512})
    assert tensors == [b, c, a] or len(tensors) == 3
    rebuilt = cuda_graphs.rebuild_inputs(structure, tensors)
    assert rebuilt["x"] is a and rebuilt["res"] == [b, c] and rebuilt["none"] is None and rebuilt["w"] == 512
    assert cuda_graphs.flatten_inputs({"opts": {"a": 1}}) is None  # not hashable: eager


def test_graphs_run_eagerly_off_cuda():
    unet = torch.nn.Linear(2, 2)
    assert cuda_graphs.runner_for(unet) is None  # CPU weights: no runner at all
    runner = cuda_graphs.GraphRunner.for_module(unet)
    runner.begin_run()
    calls = []
    out = runner(lambda ts: calls.append(1) or ts[0] * 2, "k", [torch.ones(3)])
    assert calls == [1] and torch.equal(out, torch.full((3,), 2.0)) and runner.captures == 0


def test_no_cuda_graphs_switch(monkeypatch):
    monkeypatch.delenv(cuda_graphs.ENV, raising=False)
    assert cuda_graphs.enabled()
    monkeypatch.setenv(cuda_graphs.ENV, "0")
    assert not cuda_graphs.enabled()
    cuda_graphs.set_enabled(True)
    try:
        assert cuda_graphs.enabled()
    finally:
        cuda_graphs.set_enabled(None)
    for command in ("run", "serve"):
        extra = ["wf.json"] if command == "run" else []
        assert build_parser().parse_args([command, *extra, "--no-cuda-graphs"]).no_cuda_graphs


def test_no_cuda_graphs_flag_reaches_the_environment(monkeypatch):
    """The flag goes through the environment, so a worker process started by `serve` sees it too."""
    monkeypatch.delenv(cuda_graphs.ENV, raising=False)  # restored (removed) after the test
    monkeypatch.setattr("nodegraph.cli.cmd_run", lambda args: 0)
    main(["run", "wf.json"])
    assert cuda_graphs.enabled()
    main(["run", "wf.json", "--no-cuda-graphs"])
    assert not cuda_graphs.enabled()


# --- CUDA graphs on a GPU --------------------------------------------------------------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _no_background_compile():
    """These tests count graph captures: a background torch.compile finishing mid-test would re-capture
    (test_unet_compile.py covers that path)."""
    unet_compile.set_enabled(False)
    yield
    unet_compile.set_enabled(None)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = float(b.abs().max()) or 1.0
    mse = float(((a - b) / scale).pow(2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def _sample(model, seed, batch=1, cfg=7.0):
    torch.manual_seed(0)
    cond = [[torch.randn(1, 77, model.unet.config.cross_attention_dim), {}]]
    uncond = [[torch.zeros(1, 77, model.unet.config.cross_attention_dim), {}]]
    latent = {"samples": torch.zeros(batch, 4, 16, 16)}
    return common_ksampler(model, seed, 6, cfg, "euler", "normal", cond, uncond, latent)["samples"]


@cuda
def test_cuda_graphs_give_the_eager_images_and_are_reused_and_invalidated():
    unet = C.tiny_components("sd1", seed=3)["unet"].eval().to("cuda", torch.float16)
    model = DiffusionModel(unet, "sd1")
    runner = cuda_graphs.GraphRunner.for_module(unet)
    with torch.no_grad():
        cuda_graphs.set_enabled(False)
        eager = [_sample(model, seed) for seed in (1, 2)]
        cuda_graphs.set_enabled(True)
        fast = [_sample(model, seed) for seed in (1, 2)]
        assert runner.captures == 1 and runner.replays >= 9  # one capture, reused across steps and seeds
        for e, f in zip(eager, fast):
            assert _psnr(f, e) >= 45
        # a LoRA swaps patched weights in: the graph of the old weights must not be replayed
        weight = unet.conv_in.weight
        original = weight.data
        weight.data = original * 1.5
        try:
            patched_fast = _sample(model, 1)
            cuda_graphs.set_enabled(False)
            patched_eager = _sample(model, 1)
        finally:
            cuda_graphs.set_enabled(None)
            weight.data = original
        assert runner.captures == 2
        assert _psnr(patched_fast, patched_eager) >= 45 and _psnr(patched_fast, eager[0]) < 45


def test_sd15_and_sdxl_list_fp16_first_and_sd2_does_not():
    """ComfyUI 0.8.0 supported_models_base.BASE.supported_inference_dtypes = [fp16, bf16, fp32] for SD15 and
    SDXL; SD2 is fp16 there only with fp32 attention (attn_precision), which this U-Net lacks."""
    from nodes.diffusion.models import model_info
    for family, first in (("sd1", "float16"), ("sdxl", "float16"), ("sd2", "bfloat16")):
        model = DiffusionModel(C.tiny_components(family, seed=1)["unet"], family)
        assert model_info(model)["inference_dtypes"][0] == first


def test_channels_last_layout_keeps_the_prediction_and_goes_back():
    unet = C.tiny_components("sd1", seed=3)["unet"].eval()
    model = DiffusionModel(unet, "sd1")
    x, t, ctx = torch.randn(2, 4, 16, 16), torch.tensor([500.0, 20.0]), torch.randn(2, 77, unet.config.cross_attention_dim)
    with torch.no_grad():
        nchw = model.apply(x, t, ctx)
        cuda_graphs.prepare_layout(unet, True)
        assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
        assert not unet.conv_in.weight.is_contiguous()
        nhwc = model.apply(x.contiguous(memory_format=torch.channels_last), t, ctx)
        cuda_graphs.prepare_layout(unet, False)
        assert unet.conv_in.weight.is_contiguous()
    torch.testing.assert_close(nhwc, nchw, rtol=1e-4, atol=1e-4)
