"""Loader nodes and the MODEL handle (DiffusionModel) on tiny random checkpoints, through the executor."""
from __future__ import annotations

import pytest
import torch

from nodegraph.devices import ModelHandle
from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from nodegraph.node import Context
from nodegraph.registry import Registry
from nodegraph.validate import ValidationFailed
from nodes.diffusion.checkpoint.diffusers_folder import save_diffusers_folder
from nodes.diffusion.checkpoint.modules import clip_core
from nodes.diffusion.checkpoint.single_file import load_checkpoint
from nodes.diffusion.checkpoint.writer import save_single_file
from nodes.diffusion.models import DiffusionModel, scaled_linear_alphas_cumprod
from tests.tiny_models import save_tiny_checkpoint, tiny_components


def make_env(tmp_path, builtin_registry) -> Environment:
    registry = Registry(specs=dict(builtin_registry.specs),
                        model_folders={k: list(v) for k, v in builtin_registry.model_folders.items()})
    if "CheckpointLoaderSimple" not in registry:  # until the pack is an installed entry point
        registry.import_module("nodes.diffusion", "tests")
    assert not registry.problems, registry.problems
    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir(exist_ok=True)
    return Environment(registry=registry, folders=Folders(tmp_path))


def run_node(env, name: str, **inputs):
    spec = env.registry.get(name)
    ctx = Context(env, node_type=name)
    out = spec.cls().run(ctx, **inputs)
    return out if isinstance(out, tuple) else (out,)


@pytest.fixture
def env(tmp_path, builtin_registry):
    env = make_env(tmp_path, builtin_registry)
    save_tiny_checkpoint(tmp_path / "models" / "checkpoints" / "tiny_sd1.safetensors", "sd1", seed=1)
    save_tiny_checkpoint(tmp_path / "models" / "checkpoints" / "xl" / "tiny_sdxl.safetensors", "sdxl", seed=2)
    return env


def api_workflow(ckpt: str) -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a (red:1.2) circle", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 2}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "tiny", "images": ["8", 0]}},
        "10": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0], "conditioning_2": ["7", 0]}},
        "11": {"class_type": "PreviewAny", "inputs": {"source": ["10", 0]}},
    }


@pytest.mark.parametrize("ckpt", ["tiny_sd1.safetensors", "xl/tiny_sdxl.safetensors"])
def test_comfy_api_workflow_with_checkpoint_loader(env, ckpt):
    executor = Executor(env)
    result = executor.run(api_workflow(ckpt), outputs=["9", "11"])
    assert result.status == "success", result.errors
    assert result.value("8").shape == (2, 48, 64, 3)
    model, clip, vae = (result.value("4", i) for i in range(3))
    assert all(isinstance(h, ModelHandle) for h in (model, clip, vae))
    family = "sdxl" if "xl" in ckpt else "sd1"
    assert model.info["family"] == family and model.info["prediction_type"] == "eps"
    assert model.info["latent_channels"] == 4 and model.info["latent_downscale"] == 8
    [(cond, extras)] = result.value("6")
    assert cond.shape == (1, 77, 80 if family == "sdxl" else 32)
    assert extras["pooled_output"].shape == (1, 48 if family == "sdxl" else 32)
    assert len(result.value("10")) == 2
    again = executor.run(api_workflow(ckpt), outputs=["9", "11"])
    assert again.executed == []  # an identical re-run executes nothing


def test_missing_checkpoint_is_a_validation_error(env):
    with pytest.raises(ValidationFailed) as err:
        Executor(env).run(api_workflow("nope.safetensors"), outputs=["9"])
    assert "ckpt_name" in str(err.value.issues) and "tiny_sd1.safetensors" in str(err.value.issues)


def test_pack_declares_default_weights_folder(env):
    paths = env.folders.search_paths("checkpoints")
    assert any(p.as_posix().endswith("nodes/diffusion/weights") for p in paths)


def test_model_handle_calls_the_unet(env):
    model, _, _ = run_node(env, "CheckpointLoaderSimple", ckpt_name="tiny_sd1.safetensors")
    x, ctx = torch.randn(2, 4, 8, 8), torch.randn(1, 77, 32)
    with env.devices.use(model) as m:
        assert isinstance(m, DiffusionModel)
        out = m.apply(x, torch.tensor([999.0, 10.5]), ctx)
        with torch.no_grad():
            ref = m.unet(x, torch.tensor([999.0, 10.5]), ctx.expand(2, -1, -1)).sample
        assert out.shape == x.shape and torch.allclose(out, ref, atol=1e-6)
        assert m.prediction_type == "eps" and m.latent_format.scale_factor == pytest.approx(0.18215)
        assert m.sigmas.shape == (1000,) and m.sigmas[0] < m.sigmas[-1]
        preview = m.latent_format.to_rgb(x)
        assert preview.shape == (2, 8, 8, 3) and 0 <= preview.min() and preview.max() <= 1


def test_sdxl_and_inpaint_extras(tmp_path):
    xl = load_checkpoint(save_tiny_checkpoint(tmp_path / "xl.safetensors", "sdxl"), parts=("unet",))
    model = DiffusionModel(xl.unet, "sdxl", config=xl.unet_config)
    assert model.adm and model.latent_format.scale_factor == pytest.approx(0.13025)
    x, ctx, pooled = torch.randn(1, 4, 8, 8), torch.randn(1, 77, 80), torch.randn(1, 48)
    with torch.no_grad():
        out = model.apply(x, 500, ctx, {"pooled_output": pooled, "width": 512, "height": 256})
        ids = torch.tensor([[256.0, 512, 0, 0, 256, 512]])
        ref = xl.unet(x, 500, ctx, added_cond_kwargs={"text_embeds": pooled, "time_ids": ids}).sample
        assert torch.allclose(out, ref, atol=1e-6)
        default = model.apply(x, 500, ctx, {"pooled_output": pooled})  # ComfyUI's 768x768 default
        assert not torch.allclose(default, out)
    inp = load_checkpoint(save_tiny_checkpoint(tmp_path / "inp.safetensors", "sd1", inpaint=True), parts=("unet",))
    assert inp.inpaint
    model = DiffusionModel(inp.unet, "sd1", config=inp.unet_config)
    latent_image, mask = torch.randn(1, 4, 8, 8), torch.zeros(1, 1, 64, 64)
    mask[..., :32, :] = 1
    concat = model.inpaint_concat(x, latent_image, mask)
    assert concat.shape == (1, 5, 8, 8) and concat[0, 0, :4].eq(1).all() and concat[0, 0, 4:].eq(0).all()
    assert torch.equal(concat[:, 1:], latent_image)
    blank = model.inpaint_concat(x)
    assert blank[0, 0].eq(1).all() and torch.allclose(blank[0, 1:, 0, 0], torch.tensor([0.8223, -0.6876, 0.6364, 0.1380]))
    with torch.no_grad():
        assert model.apply(x, 10, torch.randn(1, 77, 32), {"concat": concat}).shape == (1, 4, 8, 8)


def test_schedule_is_sds_scaled_linear():
    from diffusers import DDPMScheduler
    ours = scaled_linear_alphas_cumprod()
    ref = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).alphas_cumprod
    assert torch.allclose(ours.float(), ref, atol=1e-6)
    sigmas = ((1 - ours) / ours).sqrt()
    assert sigmas[0].item() == pytest.approx(0.0292, abs=1e-4) and sigmas[-1].item() == pytest.approx(14.6146, abs=1e-3)


def test_component_loader_nodes(env, tmp_path):
    from safetensors.torch import save_file
    parts = tiny_components("sd1", seed=4)
    models = tmp_path / "models"
    save_single_file(models / "diffusion_models" / "u.safetensors", unet=parts["unet"])
    save_single_file(models / "vae" / "v.safetensors", vae=parts["vae"])
    save_single_file(models / "text_encoders" / "l.safetensors", text_encoder=parts["text_encoder"])
    xl = tiny_components("sdxl", seed=4)
    save_single_file(models / "text_encoders" / "g.safetensors", text_encoder=xl["text_encoder_2"], family="sd2")
    save_file({f"text_model.{k}": v.contiguous() for k, v in clip_core(xl["text_encoder"]).state_dict().items()},
              str(models / "text_encoders" / "xl_l.safetensors"))
    (model,) = run_node(env, "UNETLoader", unet_name="u.safetensors", weight_dtype="default")
    with env.devices.use(model) as m:
        assert torch.equal(m.unet.conv_in.weight, parts["unet"].conv_in.weight)
    (vae,) = run_node(env, "VAELoader", vae_name="v.safetensors")
    with env.devices.use(vae) as v:
        assert torch.equal(v.vae.decoder.conv_out.weight, parts["vae"].decoder.conv_out.weight)
    (clip,) = run_node(env, "CLIPLoader", clip_name="l.safetensors", type="stable_diffusion")
    assert clip.info["family"] == "sd1"
    (clip_h,) = run_node(env, "CLIPLoader", clip_name="g.safetensors", type="stable_diffusion")
    assert clip_h.info["family"] == "sd2"
    (dual,) = run_node(env, "DualCLIPLoader", clip_name1="g.safetensors", clip_name2="xl_l.safetensors", type="sdxl")
    (cond,) = run_node(env, "CLIPTextEncode", text="a cat", clip=dual)
    assert cond[0][0].shape == (1, 77, 80) and cond[0][1]["pooled_output"].shape == (1, 48)


# ComfyUI 0.8.0 nodes.py: UNETLoader.weight_dtype, CLIPLoader.type and DualCLIPLoader.type, in its order
COMFY_WEIGHT_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]
COMFY_CLIP_TYPES = ["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos",
                    "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image", "flux2",
                    "ovis"]
COMFY_DUAL_CLIP_TYPES = ["sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image", "hunyuan_video_15",
                         "kandinsky5", "kandinsky5_image", "ltxv", "newbie"]
RUNNABLE = {("UNETLoader", "weight_dtype"): "default", ("CLIPLoader", "type"): "stable_diffusion",
            ("DualCLIPLoader", "type"): "sdxl"}


def test_loader_choices_are_comfyuis(env):
    def choices(node, name):
        return next(i for i in env.registry.get(node).inputs if i.name == name).choices

    assert choices("UNETLoader", "weight_dtype") == COMFY_WEIGHT_DTYPES
    assert choices("CLIPLoader", "type") == COMFY_CLIP_TYPES
    assert choices("DualCLIPLoader", "type") == COMFY_DUAL_CLIP_TYPES


@pytest.mark.parametrize("node,name,value", [("UNETLoader", "weight_dtype", v) for v in COMFY_WEIGHT_DTYPES[1:]]
                         + [("CLIPLoader", "type", v) for v in COMFY_CLIP_TYPES[1:]]
                         + [("DualCLIPLoader", "type", v) for v in COMFY_DUAL_CLIP_TYPES[1:]])
def test_choices_nodegraph_cannot_run_are_rejected_at_validation(env, tmp_path, node, name, value):
    """A choice that needs a model family (or fp8 storage) nodegraph lacks fails validation, naming the
    node, the input and what does work; the same node with the runnable choice beside it is fine."""
    for folder, file in (("diffusion_models", "u.safetensors"), ("text_encoders", "a.safetensors"),
                         ("text_encoders", "b.safetensors")):
        (tmp_path / "models" / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / "models" / folder / file).write_bytes(b"")  # validation never opens the file
    files = {"UNETLoader": {"unet_name": "u.safetensors"}, "CLIPLoader": {"clip_name": "a.safetensors"},
             "DualCLIPLoader": {"clip_name1": "a.safetensors", "clip_name2": "b.safetensors"}}[node]
    workflow = {"bad": {"class_type": node, "inputs": {**files, name: value}},
                "good": {"class_type": node, "inputs": {**files, name: RUNNABLE[(node, name)]}},
                "show_bad": {"class_type": "PreviewAny", "inputs": {"source": ["bad", 0]}},
                "show_good": {"class_type": "PreviewAny", "inputs": {"source": ["good", 0]}}}
    with pytest.raises(ValidationFailed) as err:
        Executor(env).run(workflow, outputs=["show_bad", "show_good"])
    [issue] = err.value.issues
    assert (issue.node, issue.node_type, issue.input) == ("bad", node, name)  # the record names the input
    assert repr(value) in issue.message and str(issue).startswith(f"node bad ({node}) input {name!r}: ")
    assert repr(RUNNABLE[(node, name)]) in issue.message  # says what works


def test_diffusers_loader_node(env, tmp_path):
    ckpt = load_checkpoint(tmp_path / "models" / "checkpoints" / "tiny_sd1.safetensors")
    save_diffusers_folder(tmp_path / "models" / "diffusers" / "tiny_pipe", ckpt)
    assert "tiny_pipe" in env.folders.list("diffusers")
    model, clip, vae = run_node(env, "DiffusersLoader", model_path="tiny_pipe")
    with env.devices.use(model) as m:
        assert torch.equal(m.unet.conv_out.bias, ckpt.unet.conv_out.bias)
    (cond,) = run_node(env, "CLIPTextEncode", text="a red circle", clip=clip)
    (cond_ckpt,) = run_node(env, "CLIPTextEncode", text="a red circle",
                            clip=run_node(env, "CheckpointLoaderSimple", ckpt_name="tiny_sd1.safetensors")[1])
    assert torch.allclose(cond[0][0], cond_ckpt[0][0], atol=1e-6)


def test_preview_projection_is_fitted_and_stored(tmp_path):
    from nodes.diffusion.loader_nodes import handles_from_checkpoint
    from nodes.diffusion.models import VAEModel, fit_latent_rgb
    parts = tiny_components("sd1", seed=6)
    vae = VAEModel(parts["vae"])
    torch.manual_seed(0)
    pixels = torch.rand(4, 64, 64, 3)
    factors, bias = fit_latent_rgb(vae, pixels)
    assert len(factors) == 4 and all(len(row) == 3 for row in factors) and len(bias) == 3
    path = save_single_file(tmp_path / "p.safetensors", parts["unet"], parts["vae"], parts["text_encoder"],
                              latent_rgb_factors=factors, latent_rgb_bias=bias)
    model, _, vae_handle = handles_from_checkpoint(load_checkpoint(path))
    fmt = model.module.latent_format
    assert torch.allclose(torch.tensor(fmt.rgb_factors), torch.tensor(factors)) and fmt.rgb_bias == tuple(bias)
    # the fitted projection predicts the cell colours better than the SD1.5 default does
    with torch.no_grad():
        z = fmt.process_in(vae.encode(pixels))
    target = torch.nn.functional.avg_pool2d(pixels.movedim(-1, 1), 8).movedim(1, -1)
    default = load_checkpoint(save_tiny_checkpoint(tmp_path / "d.safetensors", "sd1", seed=6))
    default_fmt = handles_from_checkpoint(default)[0].module.latent_format
    assert (fmt.to_rgb(z) - target).abs().mean() < (default_fmt.to_rgb(z) - target).abs().mean()


def test_diffusers_sd2_text_encoder_with_23_layers_uses_its_last_layer():
    from nodes.diffusion.models import ClipModel
    te = tiny_components("sd2")["text_encoder"]
    full = ClipModel([te], "sd2")
    assert full.specs[0].default_layer == -2
    te.config.num_hidden_layers = 23  # what a diffusers SD2 folder holds
    assert ClipModel([te], "sd2").specs[0].default_layer is None
