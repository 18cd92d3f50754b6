"""torch.compile of the U-Net in the background (issue 15): only signatures compiled on the background
thread ever reach the compiled forward, only inside a CUDA-graph call, only after swap_in (between jobs),
and `--no-compile` turns it off. The GPU test (skipped without CUDA) checks that the first image does not
wait for compiling and that the compiled graphs give the eager images (PSNR >= 45 dB)."""
from __future__ import annotations

import math
import time

import pytest
import torch

from nodegraph.cli import build_parser, main
from nodes.diffusion import cuda_graphs, unet_compile
from nodes.diffusion.models import DiffusionModel
from nodes.diffusion.sampling import common_ksampler
from tests.tiny_models import tiny_components


def test_signature_tells_shapes_dtypes_layout_and_structure_apart():
    x = torch.zeros(2, 4, 8, 8)
    base = unet_compile.signature((x, 1.0), {"encoder_hidden_states": torch.zeros(2, 77, 32), "return_dict": False})
    assert base == unet_compile.signature((torch.ones(2, 4, 8, 8), 1.0),
                                          {"return_dict": False, "encoder_hidden_states": torch.ones(2, 77, 32)})
    assert base != unet_compile.signature((torch.zeros(4, 4, 8, 8), 1.0),
                                          {"encoder_hidden_states": torch.zeros(2, 77, 32), "return_dict": False})
    assert base != unet_compile.signature((x.half(), 1.0),
                                          {"encoder_hidden_states": torch.zeros(2, 77, 32), "return_dict": False})
    nhwc = torch.zeros(2, 4, 8, 8).contiguous(memory_format=torch.channels_last)
    assert base != unet_compile.signature((nhwc, 1.0),
                                          {"encoder_hidden_states": torch.zeros(2, 77, 32), "return_dict": False})


def test_compiled_forward_only_for_swapped_in_signatures_inside_graph_calls(monkeypatch):
    monkeypatch.setenv(unet_compile.ENV, "1")
    module = torch.nn.Linear(3, 3)
    compiler = unet_compile.BackgroundCompiler(module, "default")  # never compiles: _compiled is a spy here
    used = []
    compiler._compiled = lambda *a, **k: used.append(a[0].shape) or module._call_impl(*a, **k)
    small, big = torch.randn(1, 3), torch.randn(5, 3)
    compiler._ready.add(unet_compile.signature((small,), {}))
    module(small)
    with unet_compile.graphed_call():
        module(small)
    assert used == []  # ready but not swapped in: a running job never changes kernels
    assert compiler.swap_in() and not compiler.swap_in()
    module(small)
    assert used == []  # outside a CUDA-graph call (the eager path): eager kernels
    with unet_compile.graphed_call():
        module(small)
        module(big)  # not compiled in the background: eager, dynamo never runs on a job
        unet_compile.set_enabled(False)
        try:
            module(small)
        finally:
            unet_compile.set_enabled(None)
    assert used == [small.shape]


def test_compile_is_opt_in_and_no_compile_flag_turns_it_off(monkeypatch):
    monkeypatch.delenv(unet_compile.ENV, raising=False)
    assert not unet_compile.enabled()
    monkeypatch.setenv(unet_compile.ENV, "1")
    assert unet_compile.enabled()
    for command, extra in (("run", ["w.json"]), ("serve", [])):
        assert build_parser().parse_args([command, *extra, "--no-compile"]).no_compile
    monkeypatch.setattr("nodegraph.cli.build_parser", lambda: _Parser())
    main(["run", "w.json", "--no-compile"])
    assert not unet_compile.enabled()


class _Parser:
    def parse_args(self, argv):
        import argparse
        return argparse.Namespace(no_compile="--no-compile" in argv, no_cuda_graphs=False, func=lambda a: 0)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = float(b.abs().max()) or 1.0
    mse = float(((a - b) / scale).pow(2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def _sample(model, seed):
    torch.manual_seed(0)
    cond = [[torch.randn(1, 77, model.unet.config.cross_attention_dim), {}]]
    uncond = [[torch.zeros(1, 77, model.unet.config.cross_attention_dim), {}]]
    with torch.no_grad():
        return common_ksampler(model, seed, 6, 7.0, "euler", "normal", cond, uncond,
                               {"samples": torch.zeros(2, 4, 16, 16)})["samples"]


@cuda
def test_cuda_background_compile_does_not_hold_the_first_image_and_gives_the_eager_images(monkeypatch):
    monkeypatch.setenv(unet_compile.MODE_ENV, "default")  # the tiny model's autotuning would only cost time
    unet = tiny_components("sd1", seed=4)["unet"].eval().to("cuda", torch.float16)
    model = DiffusionModel(unet, "sd1")
    unet_compile.set_enabled(True)
    try:
        cuda_graphs.set_enabled(False)
        eager = _sample(model, 1)
        cuda_graphs.set_enabled(True)
        t0 = time.perf_counter()
        first = _sample(model, 1)  # graphs captured; the compile starts in the background
        assert time.perf_counter() - t0 < 3.0
        compiler = unet_compile.BackgroundCompiler.existing(unet)
        assert compiler is not None
        compiler.wait()
        assert not compiler.failed, compiler.failed
        runner = cuda_graphs.GraphRunner.for_module(unet)
        before = runner.captures
        compiled = _sample(model, 1)  # between jobs the compiled kernels went in: re-captured over them
        assert compiler._active and runner.captures == before + 1
        assert _psnr(first, eager) >= 45 and _psnr(compiled, eager) >= 45
    finally:
        unet_compile.set_enabled(None)
        cuda_graphs.set_enabled(None)
