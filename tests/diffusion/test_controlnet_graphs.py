"""ControlNets inside the U-Net's CUDA graph (issue 15): the denoiser runs a plain full-schedule ControlNet
chain itself, within the graphed call, and the images equal those of the eager path (where the sampler
adds the residuals before the model call). On the CPU the same deferred code path runs without capture
(GraphRunner.usable is false for CPU tensors), so its images must be exactly the eager ones; the GPU test
(skipped without CUDA) checks the captured graph against eager and that a new strength re-captures."""
from __future__ import annotations

import math
from contextlib import contextmanager

import pytest
import torch

from nodegraph.devices import ModelHandle
from nodes.diffusion import cuda_graphs, unet_compile
from nodes.diffusion.controlnet import ControlNet, ControlNetModule, GraphedControl
from nodes.diffusion.controlnet_files import controlnet_from_unet
from nodes.diffusion.models import DiffusionModel
from nodes.diffusion.sampling import common_ksampler
from nodes.diffusion.sampling.schedules import ModelSampling
from tests.tiny_models import tiny_components


class Devices:
    """The device manager's use() for modules already where they run."""

    @contextmanager
    def use(self, handle):
        yield handle.module


def tiny_setup(device="cpu", dtype=torch.float32):
    unet = tiny_components("sd1", seed=5)["unet"].eval()
    nets = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        net = controlnet_from_unet(unet, conditioning_embedding_out_channels=(4, 4, 8, 8)).eval()
        with torch.no_grad():  # trained ControlNets have non-zero zero convs
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        nets.append(ControlNetModule(net).to(device, dtype))
    return DiffusionModel(unet.to(device, dtype), "sd1"), nets


def stacked(nets, strengths=(1.0, 0.6), window=(0.0, 1.0)):
    hint = torch.zeros(1, 3, 64, 64)
    hint[:, :, 8:40, 16:48] = 1.0
    control = None
    for net, strength in zip(nets, strengths):
        c = ControlNet(ModelHandle(net, "cn"), Devices()).set_cond_hint(hint, strength, window)
        control = c.set_previous_controlnet(control) if control is not None else c
    return control


def sample(model, control, seed=1):
    torch.manual_seed(0)
    dim = model.unet.config.cross_attention_dim
    cond = [[torch.randn(1, 77, dim), {"control": control}]]
    uncond = [[torch.zeros(1, 77, dim), {"control": control}]]
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    with torch.no_grad():
        return common_ksampler(model, seed, 4, 5.0, "euler", "normal", cond, uncond, latent)["samples"]


def test_deferred_control_gives_the_eager_images_exactly(monkeypatch):
    model, nets = tiny_setup()
    control = stacked(nets)
    eager = sample(model, control)
    deferred = []
    original = GraphedControl.residuals

    def spy(self, *args, **kw):
        deferred.append(len(self.chain))
        return original(self, *args, **kw)

    # a runner for CPU modules too: its calls run the graphed call's Python without capturing
    monkeypatch.setattr(cuda_graphs, "runner_for", lambda m: cuda_graphs.GraphRunner.for_module(m))
    monkeypatch.setattr(GraphedControl, "residuals", spy)
    cuda_graphs.set_enabled(True)
    try:
        fast = sample(model, control)
    finally:
        cuda_graphs.set_enabled(None)
        unet_compile.set_enabled(None)
    assert deferred and set(deferred) == {2}  # both controls ran inside the model call, every step
    assert torch.equal(fast, eager)
    assert not torch.equal(sample(model, stacked(nets, (1.0, 0.0))), eager)  # the control matters


def test_only_full_schedule_controlnets_of_the_same_model_sampling_are_graphed():
    _model, nets = tiny_setup()
    ms = ModelSampling()
    plain, windowed, silent = stacked(nets), stacked(nets, window=(0.0, 0.5)), stacked(nets, (0.0, 0.0))
    for c in (plain, windowed, silent):
        for link in c.chain():
            link.pre_run(None, ms)
    assert GraphedControl.supports(plain, ms)
    assert not GraphedControl.supports(plain, ModelSampling())  # another schedule: c_in/timestep differ
    assert not GraphedControl.supports(windowed, ms)  # a step window reads sigma on the host
    assert not GraphedControl.supports(silent, ms)  # strength 0 everywhere: nothing to run
    assert not GraphedControl.supports(object(), ms)  # T2I-Adapters and other controls stay eager
    assert len(GraphedControl(stacked(nets, (1.0, 0.0)), 2).chain) == 1


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = float(b.abs().max()) or 1.0
    mse = float(((a - b) / scale).pow(2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


@cuda
def test_cuda_graphed_controlnet_equals_eager_and_recaptures_on_a_new_strength():
    model, nets = tiny_setup("cuda", torch.float16)
    unet_compile.set_enabled(False)  # counts captures: no background compile re-capturing mid-test
    runner = cuda_graphs.GraphRunner.for_module(model.unet)
    control = stacked(nets)
    try:
        cuda_graphs.set_enabled(False)
        eager = [sample(model, control, seed) for seed in (1, 2)]
        cuda_graphs.set_enabled(True)
        before = runner.captures
        fast = [sample(model, control, seed) for seed in (1, 2)]
        assert runner.captures == before + 1 and runner.replays >= 6
        for e, f in zip(eager, fast):
            assert _psnr(f, e) >= 45
        weaker = stacked(nets, (0.3, 0.6))
        fast_weaker = sample(model, weaker)
        assert runner.captures == before + 2  # strength is baked into the graph: a new key
        cuda_graphs.set_enabled(False)
        assert _psnr(fast_weaker, sample(model, weaker)) >= 45
        assert _psnr(fast_weaker, fast[0]) < 45
    finally:
        cuda_graphs.set_enabled(None)
        unet_compile.set_enabled(None)
