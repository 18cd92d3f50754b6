"""The shipped 2x upscaler (training/train_upscaler.py) and workflows/upscale-with-model.json.

The upscaler must bring default-world pictures closer to their high-resolution truth than bicubic
does (PSNR), and the workflow (txt2img on the default model -> model upscale, beside a bicubic
upscale) must run end to end and give a larger picture that still shows what was prompted.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from nodegraph import read_weights
from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from training.default_world import Scene, draw, read_image
from nodes.upscale.loading import READ_OPTIONS
from tests.diffusion.nodecall import run

ROOT = Path(__file__).resolve().parents[2]
NAME = "2x-nodegraph-world-esrgan.safetensors"
WEIGHTS = ROOT / "nodes" / "upscale" / "weights" / NAME

# held-out scenes of every shape, several sizes and colour pairs (training draws random scenes)
SCENES = [Scene(shape, color, background, center, radius, size, "in the center", "")
          for shape, color, background, center, radius, size in [
              ("star", "red", "blue", (0.5, 0.5), 0.3, "medium"),
              ("heart", "yellow", "purple", (0.35, 0.6), 0.22, "medium"),
              ("triangle", "green", "white", (0.62, 0.4), 0.33, "large"),
              ("circle", "orange", "black", (0.3, 0.3), 0.14, "small"),
              ("diamond", "pink", "green", (0.55, 0.55), 0.25, "medium"),
              ("square", "blue", "yellow", (0.45, 0.5), 0.28, "medium")]]


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    mse = ((x.clamp(0, 1) - y) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse)


def test_shipped_file_is_a_small_esrgan_with_training_metadata(env):
    assert NAME in env.folders.list("upscale_models")
    assert WEIGHTS.stat().st_size <= 4 * 2**20
    with safe_open(str(WEIGHTS), "pt") as f:
        meta = f.metadata()
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes == {torch.float16}
    assert meta["nodegraph.trained_by"] == "training/train_upscaler.py"
    assert "default_world" in meta["nodegraph.dataset"] and "nodegraph.psnr" in meta
    keys = read_weights(WEIGHTS, NAME, **READ_OPTIONS).tensors
    assert "model.0.weight" in keys and "model.1.sub.0.RDB1.conv1.0.weight" in keys  # the original ESRGAN layout
    handle = run(env, "UpscaleModelLoader", model_name=NAME)
    assert (handle.info["architecture"], handle.info["scale"]) == ("ESRGAN", 2)


@pytest.mark.parametrize("low", [64, 128])
def test_upscaler_is_closer_to_the_truth_than_bicubic(env, low):
    truth = draw(SCENES, size=2 * low).images_bhwc()
    small = draw(SCENES, size=low).images_bhwc()  # the same scenes drawn at the low size
    handle = run(env, "UpscaleModelLoader", model_name=NAME)
    ours = run(env, "ImageUpscaleWithModel", upscale_model=handle, image=small)
    bicubic = run(env, "ImageScaleBy", image=small, upscale_method="bicubic", scale_by=2.0)
    lanczos = run(env, "ImageScaleBy", image=small, upscale_method="lanczos", scale_by=2.0)
    assert ours.shape == bicubic.shape == truth.shape == (len(SCENES), 2 * low, 2 * low, 3)
    p_ours, p_bicubic, p_lanczos = psnr(ours, truth), psnr(bicubic, truth), psnr(lanczos, truth)
    print(f"{low}->{2 * low}: model {p_ours.mean():.2f} dB, bicubic {p_bicubic.mean():.2f} dB, "
          f"lanczos {p_lanczos.mean():.2f} dB")
    assert torch.all(p_ours > p_bicubic), (p_ours, p_bicubic)
    assert p_ours.mean() > p_bicubic.mean() + 1.0 and p_ours.mean() > p_lanczos.mean() + 1.0


@pytest.fixture(scope="module")
def workflow_result(tmp_path_factory, builtin_registry):
    env = Environment(registry=builtin_registry, folders=Folders(tmp_path_factory.mktemp("upscale-wf")))
    doc = json.loads((ROOT / "workflows" / "upscale-with-model.json").read_text())
    result = Executor(env).run(doc)
    assert result.status == "success", result.errors
    return env, result


def test_upscale_workflow_runs_end_to_end(workflow_result):
    env, result = workflow_result
    source, ours, bicubic = result.value("8"), result.value("11"), result.value("12")
    assert source.shape == (1, 128, 128, 3) and ours.shape == bicubic.shape == (1, 256, 256, 3)
    files = [result.outputs[n]["images"][0]["filename"] for n in ("9", "13")]
    assert all((env.folders.output / f).is_file() for f in files)
    reading = read_image(ours[0])
    assert (reading.shape_color, reading.background) == ("red", "blue")  # still the prompted picture
    # the upscale keeps the picture: shrunk back it matches the 128 px source
    assert (F.avg_pool2d(ours.movedim(-1, 1), 2).movedim(1, -1) - source).abs().mean() < 0.02
    # and it is sharper than bicubic: more of the edge contrast sits in fewer pixels
    def edge_energy(img):
        x = img.movedim(-1, 1)
        return ((x[..., 1:, :] - x[..., :-1, :]) ** 2).mean() + ((x[..., :, 1:] - x[..., :, :-1]) ** 2).mean()
    assert edge_energy(ours) > 1.1 * edge_energy(bicubic.clamp(0, 1))


def test_a_comfyui_api_prompt_runs_unchanged(env):
    """ComfyUI's usual 'upscale with a model, then scale down' graph, as its API format writes it."""
    from PIL import Image

    from nodegraph.formats.comfy_api import to_native

    small = draw(SCENES[:1], size=64).images_bhwc()[0]
    Image.fromarray((small.numpy() * 255).round().astype("uint8")).save(env.folders.input / "star.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "star.png"}},
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": NAME}},
        "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
        "4": {"class_type": "ImageScaleBy", "inputs": {"image": ["3", 0], "upscale_method": "lanczos", "scale_by": 0.75}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "ComfyUI"}},
    }
    result = Executor(env).run(to_native(prompt))
    assert result.status == "success", result.errors
    assert result.value("3").shape == (1, 128, 128, 3) and result.value("4").shape == (1, 96, 96, 3)
    truth = draw(SCENES[:1], size=128).images_bhwc()
    bicubic = run(env, "ImageScaleBy", image=result.value("1"), upscale_method="bicubic", scale_by=2.0)
    assert psnr(result.value("3"), truth).item() > psnr(bicubic, truth).item() + 5  # through an 8-bit PNG too
