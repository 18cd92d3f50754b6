"""ComfyUI's model surface for packs on tiny checkpoints: the ModelPatcher / CLIP / VAE methods and the
comfy.samplers / comfy.sample / nodes.common_ksampler / latent_preview functions, checked numerically
against our own nodes with the same settings. Expected behaviour: ComfyUI 0.8 (comfy/model_patcher.py,
comfy/samplers.py, comfy/sample.py, comfy/sd.py, nodes.py common_ksampler, comfy_extras RescaleCFG)."""
from __future__ import annotations

import shutil
import sys

import pytest
import torch

from nodegraph.executor import Executor
from tests.tiny_models import save_tiny_checkpoint

SETTINGS = {"seed": 7, "steps": 3, "cfg": 6.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}


def L(node, output=0):
    return {"node": node, "output": output}


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", "sd1", seed=5)


@pytest.fixture
def env(comfy_env, tiny_ckpt):
    folder = comfy_env.folders.search_paths("checkpoints")[0]
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(tiny_ckpt, folder / "tiny.safetensors")
    return comfy_env


def base(loader="CheckpointLoaderSimple", size=32):
    return {"ckpt": {"type": loader, "inputs": {"ckpt_name": "tiny.safetensors"}},
            "pos": {"type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": L("ckpt", 1)}},
            "neg": {"type": "CLIPTextEncode", "inputs": {"text": "blue", "clip": L("ckpt", 1)}},
            "empty": {"type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}}}


def ksampler(model, pos=L("pos"), neg=L("neg"), latent=L("empty"), **overrides):
    return {"type": "KSampler", "inputs": {**SETTINGS, **overrides, "model": model, "positive": pos, "negative": neg,
                                           "latent_image": latent}}


def with_outputs(nodes: dict) -> dict:
    """Every node nothing reads from gets a PreviewAny, so it runs (a workflow runs what outputs need)."""
    linked = {v["node"] for n in nodes.values() for v in n["inputs"].values() if isinstance(v, dict) and "node" in v}
    leaves = [name for name in nodes if name not in linked]
    return {**nodes, **{f"show_{name}": {"type": "PreviewAny", "inputs": {"source": L(name)}} for name in leaves}}


def run(env, nodes):
    events = []
    result = Executor(env).run({"version": 1, "nodes": with_outputs(nodes)},
                               on_event=lambda e, d: events.append((e, d)))
    assert result.status == "success", result.errors
    return result, events


def samples(result, node):
    return result.value(node)["samples"]


# --- model_options hooks ---------------------------------------------------------------------------------

def test_pack_cfg_rescale_matches_ours_and_leaves_the_input_model_alone(env):
    advanced = {"type": "KSamplerAdvanced", "inputs": {  # KSampler's run under another cache key
        "model": L("ckpt"), "add_noise": "enable", "noise_seed": 7, "steps": 3, "cfg": 6.0, "sampler_name": "euler",
        "scheduler": "normal", "positive": L("pos"), "negative": L("neg"), "latent_image": L("empty"),
        "start_at_step": 0, "end_at_step": 10000, "return_with_leftover_noise": "disable"}}
    before, _ = run(env, {**base(), "plain": advanced})
    result, _ = run(env, {**base(),
                          "ours": {"type": "RescaleCFG", "inputs": {"model": L("ckpt"), "multiplier": 0.7}},
                          "theirs": {"type": "TestRescaleCFGPatch", "inputs": {"model": L("ckpt"), "multiplier": 0.7}},
                          "s_ours": ksampler(L("ours")), "s_theirs": ksampler(L("theirs"))})
    after, _ = run(env, {**base(), "plain": ksampler(L("ckpt"))})  # the same model, used unpatched afterwards
    assert torch.allclose(samples(result, "s_theirs"), samples(result, "s_ours"), atol=1e-5)
    assert (samples(result, "s_theirs") - samples(before, "plain")).abs().max() > 1e-3  # the hook changed the run
    assert torch.equal(samples(after, "plain"), samples(before, "plain"))  # and did not stay on the model
    model = result.value("ckpt")
    assert "sampler_cfg_function" not in (model.info.get("model_options") or {})  # nothing leaked back
    assert "sampler_cfg_function" in result.value("theirs").info["model_options"]
    assert result.value("theirs").module is model.module  # a clone: same weights, no copy


def test_old_three_argument_cfg_function_gives_the_cond_prediction(env):
    result, _ = run(env, {**base(), "patched": {"type": "TestOldStyleCFG", "inputs": {"model": L("ckpt")}},
                          "a": ksampler(L("patched")), "cfg1": ksampler(L("ckpt"), cfg=1.0)})
    assert torch.allclose(samples(result, "a"), samples(result, "cfg1"), atol=1e-4)


@pytest.mark.parametrize("scale", [3.0, 1.0])
def test_sampling_function_inside_a_cfg_hook_is_ksampler_at_that_scale(env, scale):
    # ComfyUI 0.8's comfy/samplers.py sampling_function: calc_cond_batch of [cond, uncond] (uncond skipped at
    # scale 1), pre-CFG hooks, then cfg_function; so the hook's run is KSampler's run at the hook's scale
    result, _ = run(env, {**base(), "p": {"type": "TestSamplingFunctionScale", "inputs": {"model": L("ckpt"),
                                                                                         "scale": scale}},
                          "a": ksampler(L("p")), "b": ksampler(L("ckpt"), cfg=scale)})
    assert torch.allclose(samples(result, "a"), samples(result, "b"), atol=1e-4)
    assert (samples(result, "a") - samples(run(env, {**base(), "c": ksampler(L("ckpt"))})[0], "c")).abs().max() > 1e-3


def test_unet_wrapper_scales_x0_and_sees_the_sides(env):
    seen = sys.modules["nodegraph_plugins.model_patches"].SEEN
    seen["cond_or_uncond"].clear()
    result, _ = run(env, {**base(),
                          "same": {"type": "TestUnetScale", "inputs": {"model": L("ckpt"), "scale": 1.0}},
                          "zero": {"type": "TestUnetScale", "inputs": {"model": L("ckpt"), "scale": 0.0}},
                          "a": ksampler(L("same")), "b": ksampler(L("ckpt")), "z": ksampler(L("zero"))})
    assert torch.allclose(samples(result, "a"), samples(result, "b"), atol=1e-6)
    # x0 = 0 at every Euler step: x shrinks by sigma_next / sigma, to exactly 0 at the last sigma
    assert samples(result, "z").abs().max() < 1e-4
    assert seen["cond_or_uncond"] and all(s == [1, 0] for s in seen["cond_or_uncond"])  # ComfyUI: 0 cond, 1 uncond, last first


def test_unet_wrapper_may_replace_c_crossattn(env):
    nodes = {**base(), "mute": {"type": "TestUnetScale", "inputs": {"model": L("ckpt"), "scale": 2.0}},
             "zp": {"type": "ConditioningZeroOut", "inputs": {"conditioning": L("pos")}},
             "zn": {"type": "ConditioningZeroOut", "inputs": {"conditioning": L("neg")}},
             "a": ksampler(L("mute")), "b": ksampler(L("ckpt"), pos=L("zp"), neg=L("zn"))}
    result, _ = run(env, nodes)
    assert torch.allclose(samples(result, "a"), samples(result, "b"), atol=1e-4)


def test_pre_cfg_function_swapping_the_predictions_is_swapping_the_prompts(env):
    result, _ = run(env, {**base(), "swap": {"type": "TestSwapPreCFG", "inputs": {"model": L("ckpt")}},
                          "a": ksampler(L("swap")), "b": ksampler(L("ckpt"), pos=L("neg"), neg=L("pos"))})
    assert torch.allclose(samples(result, "a"), samples(result, "b"), atol=1e-4)


def test_attn2_patch_reaches_the_unet(env):
    nodes = {**base(), "mute": {"type": "TestMuteCrossAttention", "inputs": {"model": L("ckpt")}},
             "zp": {"type": "ConditioningZeroOut", "inputs": {"conditioning": L("pos")}},
             "zn": {"type": "ConditioningZeroOut", "inputs": {"conditioning": L("neg")}},
             "a": ksampler(L("mute")), "b": ksampler(L("ckpt"), pos=L("zp"), neg=L("zn")), "c": ksampler(L("ckpt"))}
    result, _ = run(env, nodes)
    assert torch.allclose(samples(result, "a"), samples(result, "b"), atol=1e-4)  # no text reaches the U-Net
    assert (samples(result, "a") - samples(result, "c")).abs().max() > 1e-3


def test_denoise_mask_function(env):
    nodes = {**base(), "mask": {"type": "SolidMask", "inputs": {"value": 0.0, "width": 32, "height": 32}},
             "masked": {"type": "SetLatentNoiseMask", "inputs": {"samples": L("empty"), "mask": L("mask")}},
             "ignore": {"type": "TestIgnoreNoiseMask", "inputs": {"model": L("ckpt")}},
             "a": ksampler(L("ignore"), latent=L("masked")), "b": ksampler(L("ckpt")),
             "kept": ksampler(L("ckpt"), latent=L("masked"))}
    result, _ = run(env, nodes)
    assert torch.allclose(samples(result, "a"), samples(result, "b"), atol=1e-5)
    assert samples(result, "kept").abs().max() < 1e-4  # mask 0 everywhere: the empty latent is kept


@pytest.mark.parametrize("node", ["TestPostCFGHelper", "TestRecomputeCond"])
def test_post_cfg_hooks_giving_the_cond_prediction(env, node):
    result, _ = run(env, {**base(), "p": {"type": node, "inputs": {"model": L("ckpt")}},
                          "a": ksampler(L("p")), "cfg1": ksampler(L("ckpt"), cfg=1.0)})
    assert torch.allclose(samples(result, "a"), samples(result, "cfg1"), atol=1e-4)


# --- weights and facts -------------------------------------------------------------------------------------

def test_merge_through_key_patches_matches_model_merge_simple(env, tiny_ckpt, tmp_path):
    other = save_tiny_checkpoint(env.folders.search_paths("checkpoints")[0] / "other.safetensors", "sd1", seed=9)
    assert other.exists()
    nodes = {**base(), "ckpt2": {"type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "other.safetensors"}},
             "theirs": {"type": "TestMergeSimple", "inputs": {"model1": L("ckpt"), "model2": L("ckpt2"), "ratio": 0.3}},
             "ours": {"type": "ModelMergeSimple", "inputs": {"model1": L("ckpt"), "model2": L("ckpt2"), "ratio": 0.3}},
             "a": ksampler(L("theirs")), "b": ksampler(L("ours")), "c": ksampler(L("ckpt"))}
    result, _ = run(env, nodes)
    assert torch.allclose(samples(result, "a"), samples(result, "b"), rtol=1e-4, atol=1e-3)  # float order only
    assert (samples(result, "a") - samples(result, "c")).abs().max() > 1.0
    assert result.value("ckpt").patches == ()


def test_model_facts(env):
    result, _ = run(env, {**base(), "facts": {"type": "TestModelFacts", "inputs": {"model": L("ckpt")}}})
    facts = eval(result.value("facts"))  # noqa: S307 - our own repr of a dict of plain values
    assert facts["dtype"] == "torch.float32" and facts["load_device"] == "cpu" and facts["size"]
    assert facts["unet"] == "UNet2DConditionModel" and facts["t_max"] == 999.0
    assert facts["scale_factor"] == pytest.approx(0.18215)
    assert facts["x_in"] == pytest.approx(2 ** -0.5)  # eps: x / sqrt(sigma² + 1) at sigma 1
    assert result.value("facts", 1) == pytest.approx(0.0292, abs=1e-4)  # SD's sigma_min / sigma_max
    assert result.value("facts", 2) == pytest.approx(14.6146, abs=1e-3)
    assert result.value("facts", 3) == 4 and result.value("facts", 4) is True


def test_unsupported_setter_names_itself(env):
    result = Executor(env).run({"version": 1, "nodes": with_outputs({
        **base(), "bad": {"type": "TestUnsupportedPatch", "inputs": {"model": L("ckpt")}},
        "s": ksampler(L("bad"))})})
    assert result.status != "success"
    message = " ".join(str(e) for e in result.errors)
    assert "ModelPatcher.set_model_input_block_patch" in message and "nodegraph" in message


# --- samplers ----------------------------------------------------------------------------------------------

def custom(model, sampler, sigmas="sig", latent=L("empty"), cfg=6.0):
    return {"type": "SamplerCustom", "inputs": {"model": model, "add_noise": True, "noise_seed": 7, "cfg": cfg,
                                                "positive": L("pos"), "negative": L("neg"), "sampler": sampler,
                                                "sigmas": L(sigmas), "latent_image": latent}}


def test_python_sampler_in_sampler_custom_matches_ours(env):
    nodes = {**base(), "sig": {"type": "BasicScheduler", "inputs": {"model": L("ckpt"), "scheduler": "normal",
                                                                    "steps": 3, "denoise": 1.0}},
             "py": {"type": "TestPythonEulerSampler", "inputs": {"s_scale": 1.0}},
             "euler": {"type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
             "a": custom(L("ckpt"), L("py")), "b": custom(L("ckpt"), L("euler")), "k": ksampler(L("ckpt")),
             "noise": {"type": "RandomNoise", "inputs": {"noise_seed": 7}},
             "guider": {"type": "CFGGuider", "inputs": {"model": L("ckpt"), "positive": L("pos"), "negative": L("neg"),
                                                        "cfg": 6.0}},
             "adv": {"type": "SamplerCustomAdvanced", "inputs": {"noise": L("noise"), "guider": L("guider"),
                                                                 "sampler": L("py"), "sigmas": L("sig"),
                                                                 "latent_image": L("empty")}}}
    result, events = run(env, nodes)
    assert torch.allclose(samples(result, "a"), samples(result, "b"), atol=1e-5)
    assert torch.allclose(samples(result, "a"), samples(result, "k"), atol=1e-5)
    assert torch.allclose(samples(result, "adv"), samples(result, "a"), atol=1e-5)
    assert [(d["value"], d["max"]) for e, d in events if e == "progress" and d["node"] == "a"] == [(1, 3), (2, 3), (3, 3)]


def test_kdiffusion_function_inside_a_pack_sampler_matches_ours(env):
    nodes = {**base(), "sig": {"type": "BasicScheduler", "inputs": {"model": L("ckpt"), "scheduler": "karras",
                                                                    "steps": 3, "denoise": 1.0}},
             "kd": {"type": "TestKDiffusionSampler", "inputs": {}},
             "anc": {"type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}},
             "a": custom(L("ckpt"), L("kd")), "b": custom(L("ckpt"), L("anc"))}
    result, _ = run(env, nodes)
    assert torch.equal(samples(result, "a"), samples(result, "b"))


@pytest.mark.parametrize("node", ["TestCommonKSampler", "TestSampleAPI"])
def test_common_ksampler_and_comfy_sample_match_ksampler(env, node):
    settings = {**SETTINGS, "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 0.8}
    nodes = {**base(), "k": ksampler(L("ckpt"), **settings),
             "p": {"type": node, "inputs": {**settings, "model": L("ckpt"), "positive": L("pos"), "negative": L("neg"),
                                            "latent_image": L("empty")}}}
    result, events = run(env, nodes)
    assert torch.equal(samples(result, "p"), samples(result, "k"))
    progress = [(d["value"], d["max"]) for e, d in events if e == "progress" and d["node"] == "p"]
    assert progress == [(1, 3), (2, 3), (3, 3)]  # int(3 / 0.8) = 3 steps run
    assert any(e == "preview" and d.get("node") == "p" for e, d in events)


def test_custom_sample_api_and_calculate_sigmas(env):
    nodes = {**base(), "sig": {"type": "BasicScheduler", "inputs": {"model": L("ckpt"), "scheduler": "exponential",
                                                                    "steps": 4, "denoise": 1.0}},
             "euler": {"type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
             "a": {"type": "TestCustomSampleAPI", "inputs": {"model": L("ckpt"), "seed": 7, "steps": 4, "cfg": 6.0,
                                                             "scheduler": "exponential", "positive": L("pos"),
                                                             "negative": L("neg"), "latent_image": L("empty"),
                                                             "sampler": L("euler")}},
             "b": custom(L("ckpt"), L("euler"))}
    result, _ = run(env, nodes)
    assert torch.equal(result.value("a", 1), result.value("sig"))
    assert torch.equal(samples(result, "a"), samples(result, "b"))


def test_sampler_lists_are_ours(comfy_registry):
    import comfy.samplers

    from nodes.diffusion.sampling import SAMPLER_NAMES, SCHEDULER_NAMES
    assert comfy.samplers.KSampler.SAMPLERS == SAMPLER_NAMES
    assert comfy.samplers.KSampler.SCHEDULERS == SCHEDULER_NAMES == comfy.samplers.SCHEDULER_NAMES
    assert "sample_euler" in dir(__import__("comfy.k_diffusion.sampling", fromlist=["x"]))


# --- CLIP and VAE ------------------------------------------------------------------------------------------

def test_clip_methods_match_clip_text_encode(env):
    nodes = {**base(), "sched": {"type": "TestTextEncodeScheduled", "inputs": {"clip": L("ckpt", 1), "text": "a red circle"}},
             "pooled": {"type": "TestTextEncodePooled", "inputs": {"clip": L("ckpt", 1), "text": "a red circle",
                                                                   "layer": -2}},
             "last": {"type": "CLIPSetLastLayer", "inputs": {"clip": L("ckpt", 1), "stop_at_clip_layer": -2}},
             "ours2": {"type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": L("last")}},
             "again": {"type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": L("pooled", 1)}}}
    result, _ = run(env, nodes)
    (ours, ours_extra), = result.value("pos")
    (theirs, theirs_extra), = result.value("sched")
    assert torch.equal(ours, theirs) and torch.equal(ours_extra["pooled_output"], theirs_extra["pooled_output"])
    (layer2, extra2), = result.value("ours2")
    (pooled, pextra), = result.value("pooled")
    assert torch.equal(layer2, pooled) and torch.equal(extra2["pooled_output"], pextra["pooled_output"])
    assert not torch.equal(layer2, ours)
    assert torch.equal(result.value("again")[0][0], layer2)  # the returned CLIP keeps its layer
    assert result.value("ckpt", 1).info.get("layer_idx") is None  # the input CLIP did not change


@pytest.mark.parametrize("tiled", [False, True])
def test_vae_methods_match_vae_nodes(env, tiled):
    nodes = {**base(), "img": {"type": "EmptyImage", "inputs": {"width": 68, "height": 36, "batch_size": 2, "color": 0x3366CC}},
             "rt": {"type": "TestVAERoundTrip", "inputs": {"vae": L("ckpt", 2), "image": L("img"), "tiled": tiled}}}
    if tiled:
        nodes["enc"] = {"type": "VAEEncodeTiled", "inputs": {"pixels": L("img"), "vae": L("ckpt", 2), "tile_size": 64,
                                                             "overlap": 32}}
        nodes["dec"] = {"type": "VAEDecodeTiled", "inputs": {"samples": L("enc"), "vae": L("ckpt", 2), "tile_size": 64,
                                                             "overlap": 32}}
    else:
        nodes["enc"] = {"type": "VAEEncode", "inputs": {"pixels": L("img"), "vae": L("ckpt", 2)}}
        nodes["dec"] = {"type": "VAEDecode", "inputs": {"samples": L("enc"), "vae": L("ckpt", 2)}}
    result, _ = run(env, nodes)
    latent = result.value("rt")["samples"]
    assert latent.shape == (2, 4, 4, 8)  # cropped to a multiple of 8, as ComfyUI's VAE.encode
    assert torch.allclose(latent, result.value("enc")["samples"], atol=1e-5)
    image = result.value("rt", 1)
    assert image.shape == (2, 32, 64, 3) and image.device.type == "cpu"
    assert torch.allclose(image, result.value("dec"), atol=1e-5)
    assert (result.value("rt", 2), result.value("rt", 3), result.value("rt", 4)) == (8, 4, 8)


def test_pack_checkpoint_loader_gives_the_same_pixels(env):
    theirs = {**base("TestCheckpointLoader"), "k": ksampler(L("ckpt")),
              "dec": {"type": "VAEDecode", "inputs": {"samples": L("k"), "vae": L("ckpt", 2)}}}
    ours = {**base(), "k": ksampler(L("ckpt")), "dec": {"type": "VAEDecode", "inputs": {"samples": L("k"), "vae": L("ckpt", 2)}}}
    a, _ = run(env, theirs)
    b, _ = run(env, ours)
    assert torch.equal(a.value("dec"), b.value("dec"))


def test_clip_weight_patches(env):
    nodes = {**base(), "same": {"type": "TestCLIPWeightScale", "inputs": {"clip": L("ckpt", 1), "scale": 1.0}},
             "half": {"type": "TestCLIPWeightScale", "inputs": {"clip": L("ckpt", 1), "scale": 0.5}},
             "a": {"type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": L("same")}},
             "b": {"type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": L("half")}}}
    result, _ = run(env, nodes)
    assert torch.allclose(result.value("a")[0][0], result.value("pos")[0][0], atol=1e-5)
    assert not torch.allclose(result.value("b")[0][0], result.value("pos")[0][0], atol=1e-3)
    assert result.value("ckpt", 1).patches == ()


def test_cfg_guider_object_matches_sampler_custom(env):
    nodes = {**base(), "sig": {"type": "BasicScheduler", "inputs": {"model": L("ckpt"), "scheduler": "simple",
                                                                    "steps": 3, "denoise": 1.0}},
             "py": {"type": "TestPythonEulerSampler", "inputs": {"s_scale": 1.0}},
             "a": {"type": "TestGuiderSample", "inputs": {"model": L("ckpt"), "positive": L("pos"), "negative": L("neg"),
                                                          "cfg": 6.0, "sampler": L("py"), "sigmas": L("sig"),
                                                          "latent_image": L("empty"), "seed": 7}},
             "b": custom(L("ckpt"), L("py"))}
    result, events = run(env, nodes)
    assert torch.equal(samples(result, "a"), samples(result, "b"))
    assert [d["value"] for e, d in events if e == "progress" and d["node"] == "a"] == [1, 2, 3]


def test_lora_through_comfy_sd_matches_lora_loader(env):
    from nodes.diffusion.lora import save_lora
    from tests.diffusion.test_lora_nodes import kohya_lora

    loaded, _ = run(env, {**base()})
    model, clip = loaded.value("ckpt"), loaded.value("ckpt", 1)
    save_lora(env.folders.search_paths("loras")[0] / "a.safetensors", kohya_lora(model.module, clip.module, seed=1))
    lora = {"lora_name": "a.safetensors", "strength_model": 0.8, "strength_clip": 0.6}
    nodes = {"ckpt": base()["ckpt"], "empty": base()["empty"],
             "ours": {"type": "LoraLoader", "inputs": {"model": L("ckpt"), "clip": L("ckpt", 1), **lora}},
             "theirs": {"type": "TestLoraLoader", "inputs": {"model": L("ckpt"), "clip": L("ckpt", 1), **lora}}}
    for side in ("ours", "theirs"):
        nodes[f"pos_{side}"] = {"type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": L(side, 1)}}
        nodes[f"k_{side}"] = ksampler(L(side), pos=L(f"pos_{side}"), neg=L(f"pos_{side}"))
    nodes["plain_pos"] = {"type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": L("ckpt", 1)}}
    nodes["plain"] = ksampler(L("ckpt"), pos=L("plain_pos"), neg=L("plain_pos"))
    result, _ = run(env, nodes)
    assert torch.equal(result.value("pos_theirs")[0][0], result.value("pos_ours")[0][0])
    assert torch.equal(samples(result, "k_theirs"), samples(result, "k_ours"))
    assert (samples(result, "k_ours") - samples(result, "plain")).abs().max() > 1e-3


def test_previewer_projects_x0(comfy_registry):  # the registry installs the ComfyUI modules
    import latent_preview

    from nodes.diffusion.models import latent_format_for
    previewer = latent_preview.get_previewer("cpu", latent_format_for("sd1"))
    fmt, image, size = previewer.decode_latent_to_preview_image("JPEG", torch.zeros(2, 4, 8, 6))
    assert (fmt, image.size, size) == ("JPEG", (6, 8), 512)
    assert image.getpixel((0, 0)) == (127, 127, 127)  # zeros project to mid grey, truncated as ComfyUI


def test_pack_cfg_guider_in_sampler_custom_advanced(env):
    nodes = {**base(), "sig": {"type": "BasicScheduler", "inputs": {"model": L("ckpt"), "scheduler": "normal",
                                                                    "steps": 3, "denoise": 1.0}},
             "euler": {"type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
             "noise": {"type": "RandomNoise", "inputs": {"noise_seed": 7}},
             "theirs": {"type": "TestMakeGuider", "inputs": {"model": L("ckpt"), "positive": L("pos"),
                                                             "negative": L("neg"), "cfg": 6.0, "custom": False}},
             "ours": {"type": "CFGGuider", "inputs": {"model": L("ckpt"), "positive": L("pos"), "negative": L("neg"),
                                                      "cfg": 6.0}}}
    for side in ("theirs", "ours"):
        nodes[f"s_{side}"] = {"type": "SamplerCustomAdvanced", "inputs": {
            "noise": L("noise"), "guider": L(side), "sampler": L("euler"), "sigmas": L("sig"), "latent_image": L("empty")}}
    result, _ = run(env, nodes)
    assert torch.equal(samples(result, "s_theirs"), samples(result, "s_ours"))
    # a subclass's own predict_noise guides: HalfGuider's x0 is x / 2 at every step, so euler's steps are
    # x <- x + (x - x / 2) / sigma * (sigma_next - sigma) from the scaled noise, whatever the model says
    nodes["theirs"]["inputs"]["custom"] = True
    result, _ = run(env, nodes)
    sigmas = result.value("sig")
    # an EPS model's first noise scaling at full denoise is sqrt(1 + sigma^2) (ComfyUI's EPS.noise_scaling)
    x = result.value("noise").generate_noise({"samples": torch.zeros(1, 4, 4, 4)}) * (1 + sigmas[0] ** 2) ** 0.5
    for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:]):
        x = x + (x - x * 0.5) / sigma * (sigma_next - sigma)
    assert torch.allclose(samples(result, "s_theirs"), x / 0.18215, atol=1e-5)


def test_pack_checkpoint_loader_shares_our_model_cache(env):
    result, _ = run(env, {**base("TestCheckpointLoader"), "ours": {"type": "CheckpointLoaderSimple",
                                                                   "inputs": {"ckpt_name": "tiny.safetensors"}}})
    assert result.value("ckpt").module is result.value("ours").module  # loaded once


def test_weight_patch_kinds_follow_comfyuis_calculate_weight():
    """ComfyUI's calculate_weight: weight * strength_model, then + strength_patch * diff, or = value for set."""
    from nodes.diffusion.comfy_surface.weight_patches import ComfyWeightPatch, comfy_patches

    w = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    diff = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.equal(w + ComfyWeightPatch("diff", diff, 0.5, 1.0)(w), w + 0.5 * diff)
    assert torch.allclose(w + ComfyWeightPatch("diff", diff, 0.5, 0.2)(w), w * 0.2 + 0.5 * diff)
    assert torch.equal(w + ComfyWeightPatch("set", diff, 1.0, 1.0)(w), diff)
    assert torch.equal(w + ComfyWeightPatch("diff", diff.reshape(4), 1.0, 1.0)(w), w + diff)  # same size: reshaped
    triples, accepted = comfy_patches({"diffusion_model.a": diff, "diffusion_model.b": (diff,),
                                       "diffusion_model.c": ("set", (diff,)), "unknown": diff},
                                      {"diffusion_model.a": "unet.a", "diffusion_model.b": "unet.b",
                                       "diffusion_model.c": "unet.c"}, set(), 1.0, 1.0)
    assert [t[0] for t in triples] == ["unet.a", "unet.b", "unet.c"]
    assert accepted == ["diffusion_model.a", "diffusion_model.b", "diffusion_model.c"]  # keys the model lacks: left out
    with pytest.raises(NotImplementedError, match="'lora'"):
        comfy_patches({"diffusion_model.a": ("lora", (diff, diff, None, None))}, {"diffusion_model.a": "unet.a"},
                      set(), 1.0, 1.0)


def _custom_advanced(guider: str, sigmas, noise="noise") -> dict:
    return {"type": "SamplerCustomAdvanced", "inputs": {"noise": L(noise), "guider": L(guider),
                                                        "sampler": L("euler"), "sigmas": sigmas,
                                                        "latent_image": L("empty")}}


def test_custom_guider_with_its_own_predict_noise_reads_sample_sigmas(env):
    """TestWindowedCFGGuider (custom_guider pack) uses cfg only in its window of the run: over all of it, it is
    CFGGuider at cfg 6; over none, CFGGuider at 1; over the first two of three steps, it is our CFGGuider at 6
    for those steps, then at 1 on the rest without new noise (SplitSigmas at step 2 + DisableNoise)."""
    guide = {"model": L("ckpt"), "positive": L("pos"), "negative": L("neg")}
    nodes = {**base(), "sig": {"type": "BasicScheduler", "inputs": {"model": L("ckpt"), "scheduler": "normal",
                                                                    "steps": 3, "denoise": 1.0}},
             "split": {"type": "SplitSigmas", "inputs": {"sigmas": L("sig"), "step": 2}},
             "euler": {"type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
             "noise": {"type": "RandomNoise", "inputs": {"noise_seed": 7}},
             "no_noise": {"type": "DisableNoise", "inputs": {}},
             "all": {"type": "TestWindowedCFGGuider", "inputs": {**guide, "cfg": 6.0}},
             "none": {"type": "TestWindowedCFGGuider", "inputs": {**guide, "cfg": 6.0, "start_percent": 0.9}},
             "early": {"type": "TestWindowedCFGGuider", "inputs": {**guide, "cfg": 6.0, "end_percent": 0.5}},
             "cfg6": {"type": "CFGGuider", "inputs": {**guide, "cfg": 6.0}},
             "cfg1": {"type": "CFGGuider", "inputs": {**guide, "cfg": 1.0}}}
    for name in ("all", "none", "early", "cfg6", "cfg1"):
        nodes[f"s_{name}"] = _custom_advanced(name, L("sig"))
    nodes["s_first"] = _custom_advanced("cfg6", L("split", 0))
    nodes["s_then"] = {**_custom_advanced("cfg1", L("split", 1), "no_noise")}
    nodes["s_then"]["inputs"]["latent_image"] = L("s_first")
    result, _ = run(env, nodes)
    assert torch.allclose(samples(result, "s_all"), samples(result, "s_cfg6"), atol=1e-6)
    assert torch.allclose(samples(result, "s_none"), samples(result, "s_cfg1"), atol=1e-6)
    assert torch.allclose(samples(result, "s_early"), samples(result, "s_then"), atol=1e-5)
    assert not torch.allclose(samples(result, "s_early"), samples(result, "s_cfg6"), atol=1e-3)
