"""Inpainting: 9-channel inpainting checkpoints (tiny, random) get the mask and the masked image as their
extra input channels; on the embedded default model, workflows/inpaint.json repaints only the mask."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from training.default_world.analyze import read_image
from tests.diffusion.workflow_files import WorkflowRunner
from tests.tiny_models import save_tiny_checkpoint, tiny_components


class UNetInputs:
    """Records the sample tensor of every call of a 9-channel U-Net (a global forward pre-hook)."""

    def __init__(self) -> None:
        self.samples: list[torch.Tensor] = []

    def __enter__(self):
        def hook(module, args):
            config = getattr(module, "config", None)
            if type(module).__name__ == "UNet2DConditionModel" and getattr(config, "in_channels", 0) == 9:
                self.samples.append(args[0].detach().clone())
        self.handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def comfy_inpaint_workflow(ckpt: str, image: str, denoise: float = 1.0, for_inpaint: bool = True) -> dict:
    """ComfyUI's inpainting graph in its API format: LoadImage's alpha is the mask."""
    latent = {"class_type": "VAEEncodeForInpaint",
              "inputs": {"pixels": ["1", 0], "vae": ["4", 2], "mask": ["1", 1], "grow_mask_by": 6}}
    if not for_inpaint:
        latent = {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0], "vae": ["4", 2]}}
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": latent,
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 3, "steps": 3, "cfg": 5.0, "sampler_name": "euler",
                                                    "scheduler": "normal", "denoise": denoise, "model": ["4", 0],
                                                    "positive": ["6", 0], "negative": ["7", 0],
                                                    "latent_image": ["2", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "inpaint", "images": ["8", 0]}},
    }


@pytest.fixture
def tiny_inpaint_env(tmp_path, builtin_registry):
    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir()
    save_tiny_checkpoint(tmp_path / "models" / "checkpoints" / "tiny-inpainting.safetensors", "sd1", seed=5,
                           inpaint=True)
    rng = np.random.default_rng(0)
    rgba = np.concatenate([rng.integers(0, 256, (64, 64, 3)), np.full((64, 64, 1), 255)], axis=-1).astype(np.uint8)
    rgba[16:40, 24:56, 3] = 0  # transparent = the region to repaint (LoadImage's mask is 1 - alpha)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "input" / "photo.png")
    return Environment(registry=builtin_registry, folders=Folders(tmp_path))


def test_inpainting_checkpoint_gets_mask_and_masked_image_channels(tiny_inpaint_env):
    env = tiny_inpaint_env
    executor = Executor(env)
    with UNetInputs() as seen:
        result = executor.run(comfy_inpaint_workflow("tiny-inpainting.safetensors", "photo.png"))
    assert result.status == "success", result.errors
    model = result.value("4")
    assert model.info["inpaint"] is True  # detected from the 9 input channels of the checkpoint

    encoded = result.value("2")
    pixel_mask = encoded["noise_mask"]  # the grown mask, at pixel resolution
    assert pixel_mask.shape == (1, 1, 64, 64) and pixel_mask[0, 0, 16:40, 24:56].eq(1).all()
    latent_mask = F.interpolate(pixel_mask, size=(8, 8), mode="bilinear").round()
    assert 0 < latent_mask.sum() < 64
    masked_image = encoded["samples"] * model.info["scale_factor"]  # the greyed image, in model space

    assert len(seen.samples) == 3  # one batched (cond + uncond) call per step
    for sample in seen.samples:
        assert sample.shape == (2, 9, 8, 8)
        assert torch.equal(sample[:, 4:5], latent_mask.expand(2, 1, 8, 8))  # channel 4: the mask
        assert torch.allclose(sample[:, 5:], masked_image.expand(2, 4, 8, 8), atol=1e-6)  # 5..8: masked image

    # the result differs from the input latent only where the mask is (checked on latents: the VAE
    # decoder's attention block sees the whole latent, so decoded pixels move a little everywhere)
    out = result.value("3")["samples"]
    keep = latent_mask.expand_as(out) == 0
    assert torch.allclose(out[keep], encoded["samples"][keep], atol=1e-5)
    assert (out - encoded["samples"])[~keep].abs().mean() > 0.05
    assert result.value("8").shape == (1, 64, 64, 3)


def test_inpainting_checkpoint_without_a_mask_sees_the_blank_image(tiny_inpaint_env):
    """A plain VAEEncode latent (no noise mask): ComfyUI gives the U-Net an all-ones mask and the
    latent of a black image, so an inpainting model still does text-to-image."""
    with UNetInputs() as seen:
        result = Executor(tiny_inpaint_env).run(
            comfy_inpaint_workflow("tiny-inpainting.safetensors", "photo.png", for_inpaint=False))
    assert result.status == "success", result.errors
    assert len(seen.samples) == 3
    blank = torch.tensor([0.8223, -0.6876, 0.6364, 0.1380]).view(1, 4, 1, 1).expand(2, 4, 8, 8)
    for sample in seen.samples:
        assert sample[:, 4].eq(1).all() and torch.allclose(sample[:, 5:], blank)


def test_encode_for_inpaint_crops_odd_sizes_as_comfyui(tiny_inpaint_env):
    """75x70 pixels: image and mask centre-cropped to 72x64 (offsets 1 and 3), masked pixels grey,
    the noise mask grown by a 6x6 box (2 px up/left, 3 px down/right) and rounded."""
    from nodegraph.devices import ModelHandle
    from nodes.diffusion.models import VAEModel
    from tests.diffusion.nodecall import run
    vae = ModelHandle(VAEModel(tiny_components("sd1", seed=11)["vae"]), "tiny-vae")
    pixels = torch.rand(2, 70, 75, 3)
    mask = torch.zeros(1, 35, 25)  # half resolution: resized (bilinear) to the image first
    mask[:, 10:20, 5:15] = 1.0
    out = run(tiny_inpaint_env, "VAEEncodeForInpaint", pixels=pixels, vae=vae, mask=mask, grow_mask_by=6)
    full = F.interpolate(mask[:, None], size=(70, 75), mode="bilinear")[:, :, 3:67, 1:73]
    grown = (F.conv2d(full.round(), torch.ones(1, 1, 6, 6), padding=3).clamp(0, 1)[:, :, :64, :72]).round()
    assert out["samples"].shape == (2, 4, 8, 9)
    assert torch.equal(out["noise_mask"], grown)
    greyed = pixels[:, 3:67, 1:73].clone()
    greyed[full[:, 0].round().bool().expand(2, 64, 72)] = 0.5
    with torch.no_grad():
        assert torch.allclose(out["samples"], vae.module.encode(greyed), atol=1e-5)


def inpaint_model_conditioning_workflow(ckpt: str, image: str, noise_mask: bool) -> dict:
    """ComfyUI's newer inpainting graph: InpaintModelConditioning feeds the model's extra channels."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "2": {"class_type": "InpaintModelConditioning", "inputs": {"positive": ["6", 0], "negative": ["7", 0], "vae": ["4", 2],
                                                                   "pixels": ["1", 0], "mask": ["1", 1],
                                                                   "noise_mask": noise_mask}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 3, "steps": 3, "cfg": 5.0, "sampler_name": "euler",
                                                    "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                                    "positive": ["2", 0], "negative": ["2", 1], "latent_image": ["2", 2]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "inpaint", "images": ["8", 0]}},
    }


@pytest.mark.parametrize("noise_mask", [True, False])
def test_inpaint_model_conditioning(tiny_inpaint_env, noise_mask):
    env = tiny_inpaint_env
    with UNetInputs() as seen:
        result = Executor(env).run(inpaint_model_conditioning_workflow("tiny-inpainting.safetensors", "photo.png",
                                                                       noise_mask))
    assert result.status == "success", result.errors
    positive, negative, latent = (result.value("2", k) for k in range(3))
    pixels, mask = result.value("1", 0), result.value("1", 1)
    scale = result.value("4").info["scale_factor"]
    vae = result.value("4", 2)
    greyed = pixels.clone()
    greyed[mask.bool()] = 0.5
    with env.devices.use(vae) as model, torch.no_grad():
        assert torch.allclose(latent["samples"], model.encode(pixels), atol=1e-6)  # the whole image, not greyed
        concat_image = model.encode(greyed)
    for cond in (positive, negative):
        assert torch.allclose(cond[0][1]["concat_latent_image"], concat_image, atol=1e-6)
        assert torch.equal(cond[0][1]["concat_mask"], mask[:, None])
        assert "pooled_output" in cond[0][1]  # the text conditioning's own extras are kept
    assert ("noise_mask" in latent) == noise_mask
    latent_mask = F.interpolate(mask[:, None], size=(8, 8), mode="bilinear").round()
    assert len(seen.samples) == 3
    for sample in seen.samples:
        assert torch.equal(sample[:, 4:5], latent_mask.expand(2, 1, 8, 8))
        assert torch.allclose(sample[:, 5:], (concat_image * scale).expand(2, 4, 8, 8), atol=1e-6)
    out = result.value("3")["samples"]
    keep = (latent_mask == 0).expand_as(out)
    kept = torch.allclose(out[keep], latent["samples"][keep], atol=1e-5)
    assert kept == noise_mask  # without the noise mask the sampler repaints everything


# --- the embedded default model: workflows/inpaint.json ------------------------------------------------

MASK = (slice(48, 112), slice(32, 96))  # the 64x64 mask of workflows/inpaint.json, at (32, 48)


@pytest.fixture(scope="module")
def run_workflow(tmp_path_factory, builtin_registry):
    return WorkflowRunner(tmp_path_factory.mktemp("inpaint"), builtin_registry)


def test_inpaint_workflow_repaints_only_the_mask(run_workflow):
    result = run_workflow("inpaint.json")
    source, decoded, final = result.value("21")[0], result.value("8")[0], result.value("24")[0]
    assert final.shape == (128, 128, 3)
    inside = torch.zeros(128, 128, dtype=torch.bool)
    inside[MASK] = True
    # the sampler changed the latent only under the (grown) noise mask ...
    encoded, sampled = result.value("2"), result.value("3")["samples"]
    latent_mask = F.interpolate(encoded["noise_mask"], size=sampled.shape[-2:], mode="bilinear")
    keep = (latent_mask == 0).expand_as(sampled)
    assert 0 < keep.float().mean() < 1
    assert torch.allclose(sampled[keep], encoded["samples"][keep], atol=1e-5)
    # ... but the VAE round trip alone moves every pixel a little (measured: 0.06-0.08 mean away from the mask),
    away = torch.ones(128, 128, dtype=torch.bool)
    away[40:120, 24:104] = False
    assert (decoded - source).abs()[away].mean() < 0.12
    # so the workflow pastes the repainted square back: outside the mask the picture is the source, exactly
    assert torch.equal(final[~inside], source[~inside])
    assert final[8:32, 96:120].sub(torch.tensor([0xF0, 0xD0, 0x20]) / 255).abs().max() < 1e-6  # the yellow block
    # inside, the prompt's big red square on the blue canvas
    reading = read_image(final[MASK])
    assert (reading.shape_color, reading.background) == ("red", "blue") and reading.shape_fraction > 0.3
    assert red_fraction(final[~inside]) == 0


def red_fraction(pixels: torch.Tensor) -> float:
    p = pixels.reshape(-1, 3)
    return float(((p[:, 0] > 0.6) & (p[:, 1] < 0.4) & (p[:, 2] < 0.4)).float().mean())


def test_inpaint_workflow_follows_the_prompt(run_workflow):
    result = run_workflow("inpaint.json", **{"6__text": "an orange square on a blue background"})
    source, final = result.value("21")[0], result.value("24")[0]
    assert read_image(final[MASK]).shape_color == "orange"
    outside = torch.ones(128, 128, dtype=torch.bool)
    outside[MASK] = False
    assert torch.equal(final[outside], source[outside])
