"""KSampler / KSamplerAdvanced nodes on tiny random checkpoints: schema, progress + previews,
interrupt, and ComfyUI API-format workflows through the executor."""
from __future__ import annotations

import inspect

import pytest
import torch
from PIL import Image

from nodegraph.devices import ModelHandle
from nodegraph.executor import Executor
from nodegraph.node import Context, Interrupted, RunControl
from nodes.diffusion.checkpoint.single_file import load_checkpoint
from nodes.diffusion.models import DiffusionModel, model_info
from nodes.diffusion.sampling import SAMPLER_NAMES, SCHEDULER_NAMES
from tests.tiny_models import save_tiny_checkpoint, tiny_components


@pytest.fixture(scope="module")
def tiny_model():
    unet = tiny_components("sd1", seed=3)["unet"].eval()
    model = DiffusionModel(unet, "sd1")
    return ModelHandle(model, "tiny-sd1", info=model_info(model))


class Events:
    def __init__(self):
        self.items: list[tuple[str, dict]] = []

    def __call__(self, name, data):
        self.items.append((name, dict(data)))

    def of(self, name):
        return [d for n, d in self.items if n == name]


def context(env, emit=None, control=None):
    return Context(env, node_id="3", node_type="KSampler", emit=emit, control=control)


def conds(value=0.5, width=32):
    return [[torch.full((1, 77, width), value), {"pooled_output": torch.zeros(1, width)}]]


# --- declaration ----------------------------------------------------------------------------------

def test_schema_is_comfyuis(env):
    ks = env.registry.get("KSampler").schema()
    assert [i["name"] for i in ks["inputs"]] == ["model", "seed", "steps", "cfg", "sampler_name", "scheduler",
                                                 "positive", "negative", "latent_image", "denoise"]
    by = {i["name"]: i for i in ks["inputs"]}
    assert by["seed"]["control_after_generate"] and by["seed"]["max"] == 2 ** 64 - 1 and by["seed"]["default"] == 0
    assert (by["steps"]["default"], by["steps"]["min"], by["steps"]["max"]) == (20, 1, 10000)
    assert (by["cfg"]["default"], by["cfg"]["min"], by["cfg"]["max"]) == (8.0, 0.0, 100.0)
    assert (by["denoise"]["default"], by["denoise"]["min"], by["denoise"]["max"]) == (1.0, 0.0, 1.0)
    assert by["sampler_name"]["choices"] == SAMPLER_NAMES and by["scheduler"]["choices"] == SCHEDULER_NAMES
    for name in ["euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2s_ancestral",
                 "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde", "ddpm", "ddim", "uni_pc"]:
        assert name in SAMPLER_NAMES
    assert {"normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta"} <= set(SCHEDULER_NAMES)
    assert [o["type"] for o in ks["outputs"]] == ["LATENT"] and ks["category"] == "sampling"
    adv = env.registry.get("KSamplerAdvanced").schema()
    assert [i["name"] for i in adv["inputs"]] == [
        "model", "add_noise", "noise_seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative",
        "latent_image", "start_at_step", "end_at_step", "return_with_leftover_noise"]
    by = {i["name"]: i for i in adv["inputs"]}
    assert by["add_noise"]["choices"] == ["enable", "disable"] and by["add_noise"]["default"] == "enable"
    assert by["return_with_leftover_noise"]["choices"] == ["disable", "enable"]
    assert (by["end_at_step"]["default"], by["end_at_step"]["max"]) == (10000, 10000)
    # every parameter of run is a declared input (KSamplerAdvanced had an unfed denoise)
    for name in ("KSampler", "KSamplerAdvanced"):
        params = list(inspect.signature(env.registry.get(name).cls.run).parameters)[2:]
        assert params == [i["name"] for i in env.registry.get(name).schema()["inputs"]], name


# --- running the node -------------------------------------------------------------------------------

def test_ksampler_reports_progress_with_previews(env, tiny_model):
    events = Events()
    node = env.registry.get("KSampler").cls()
    latent = {"samples": torch.zeros(2, 4, 8, 8)}
    (out,) = node.run(context(env, events), tiny_model, 5, 4, 6.0, "dpmpp_2m", "karras", conds(1.0), conds(0.0), latent)
    assert out["samples"].shape == (2, 4, 8, 8) and out["samples"].device.type == "cpu"
    assert bool(torch.isfinite(out["samples"]).all()) and out["samples"].std() > 0.5
    assert [(d["value"], d["max"]) for d in events.of("progress")] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    previews = events.of("preview")
    assert len(previews) == 4 and all(isinstance(p["image"], Image.Image) and p["image"].size == (8, 8) for p in previews)
    (again,) = node.run(context(env), tiny_model, 5, 4, 6.0, "dpmpp_2m", "karras", conds(1.0), conds(0.0), latent)
    assert torch.equal(again["samples"], out["samples"])
    (other,) = node.run(context(env), tiny_model, 6, 4, 6.0, "dpmpp_2m", "karras", conds(1.0), conds(0.0), latent)
    assert not torch.allclose(other["samples"], out["samples"])


def test_interrupt_stops_the_sampler(env, tiny_model):
    control = RunControl()
    seen = []

    def emit(name, data):
        if name == "progress":
            seen.append(data["value"])
            control.interrupt()  # after the first step

    node = env.registry.get("KSampler").cls()
    with pytest.raises(Interrupted):
        node.run(context(env, emit, control), tiny_model, 0, 10, 5.0, "euler", "normal", conds(), conds(0.0),
                 {"samples": torch.zeros(1, 4, 8, 8)})
    assert seen == [1]


def test_advanced_two_stages_equal_one_run(env, tiny_model):
    adv = env.registry.get("KSamplerAdvanced").cls()
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    common = (tiny_model, 9, 6, 4.0, "euler", "simple", conds(1.0), conds(0.0))
    (whole,) = adv.run(context(env), tiny_model, "enable", *common[1:], latent, 0, 10000, "disable")
    (ks,) = env.registry.get("KSampler").cls().run(context(env), *common, latent, 1.0)
    assert torch.equal(whole["samples"], ks["samples"])
    (first,) = adv.run(context(env), tiny_model, "enable", *common[1:], latent, 0, 3, "enable")
    (second,) = adv.run(context(env), tiny_model, "disable", *common[1:], first, 3, 10000, "disable")
    assert torch.allclose(second["samples"], whole["samples"], atol=1e-4)


def test_sdxl_and_inpainting_models_sample(env, tmp_path):
    for family, inpaint in (("sdxl", False), ("sd1", True)):
        ckpt = load_checkpoint(save_tiny_checkpoint(tmp_path / f"{family}{inpaint}.safetensors", family,
                                                       inpaint=inpaint), parts=("unet",))
        model = DiffusionModel(ckpt.unet, family, config=ckpt.unet_config)
        handle = ModelHandle(model, family, info=model_info(model))
        width = 80 if family == "sdxl" else 32
        pos = [[torch.randn(1, 77, width), {"pooled_output": torch.randn(1, 48 if family == "sdxl" else 32)}]]
        latent = {"samples": torch.randn(1, 4, 8, 8)}
        if inpaint:
            latent["noise_mask"] = torch.zeros(1, 1, 64, 64)
            latent["noise_mask"][..., 32:] = 1
        (out,) = env.registry.get("KSampler").cls().run(context(env), handle, 1, 3, 5.0, "euler_ancestral", "normal",
                                                         pos, pos, latent, 1.0)
        assert out["samples"].shape == (1, 4, 8, 8) and bool(torch.isfinite(out["samples"]).all())
        if inpaint:
            assert torch.allclose(out["samples"][..., :4], latent["samples"][..., :4], atol=1e-5)


# --- through the executor, in ComfyUI's API format --------------------------------------------------

def txt2img(ckpt: str, seed: int = 1, sampler: str = "euler_ancestral", steps: int = 3) -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": seed, "steps": steps, "cfg": 8, "sampler_name": sampler,
                                                    "scheduler": "normal", "denoise": 1, "model": ["4", 0],
                                                    "positive": ["6", 0], "negative": ["7", 0],
                                                    "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    }


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_comfy_api_txt2img_workflow(env, tmp_path, family):
    save_tiny_checkpoint(tmp_path / "models" / "checkpoints" / f"tiny_{family}.safetensors", family, seed=4)
    executor = Executor(env)
    events = Events()
    result = executor.run(txt2img(f"tiny_{family}.safetensors"), on_event=events)
    assert result.status == "success", result.errors
    assert result.value("3")["samples"].shape == (1, 4, 8, 8)
    assert result.value("8").shape == (1, 64, 64, 3)
    progress = [(d["value"], d["max"]) for d in events.of("progress") if d["node"] == "3"]
    assert progress == [(1, 3), (2, 3), (3, 3)]
    assert len([p for p in events.of("preview") if p["node"] == "3"]) == 3
    # only the seed changed: the sampler and what follows run again, the loader and encoders come from the cache
    again = executor.run(txt2img(f"tiny_{family}.safetensors", seed=2))
    assert set(again.executed) == {"3", "8", "9"} and not torch.equal(again.value("3")["samples"],
                                                                      result.value("3")["samples"])
