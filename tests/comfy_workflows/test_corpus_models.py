"""More of the ComfyUI corpus: custom sampling (SamplerCustomAdvanced with its noise / guider / sampler /
sigmas nodes, and a SplitSigmas two-stage run), area composition, a model-patch chain (FreeU_V2 +
RescaleCFG), unCLIP with a CLIP vision encoding of a loaded image, and an SDXL prompt with its size
conditioning, and a GLIGEN text box. Each is a file in ComfyUI's UI or API shape, run end to end with a check of its effect.

Where the expected behaviour comes from: ComfyUI 0.8's comfy_extras/nodes_custom_sampler.py (SamplerCustomAdvanced
with RandomNoise + CFGGuider + KSamplerSelect + BasicScheduler is KSampler split into parts; DisableNoise adds
zero noise, so a second stage on SplitSigmas' low sigmas continues the first), nodes.py's ConditioningSetArea
(an area in pixels, applied to the latent area it covers), nodes_freelunch.py / nodes_model_advanced.py
(FreeU_V2 with b = s = 1 and RescaleCFG with multiplier 0 leave the model's prediction as it was), and the
frontend's bypass (a bypassed unCLIPConditioning passes its CONDITIONING input through).
"""
import copy
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from nodegraph.formats import parse_workflow
from training.default_world import read_image

HERE = Path(__file__).parent


def load(name: str) -> dict:
    return json.loads((HERE / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def env(tmp_path_factory, builtin_registry):
    """One environment for the module, so that the default model loads once."""
    base = tmp_path_factory.mktemp("comfy-models")
    for name in ("models", "output", "input", "temp"):
        (base / name).mkdir()
    return Environment(registry=builtin_registry, folders=Folders(base))


def run(env, doc):
    env.cache.clear()  # every value asked for is computed, not found in the output cache
    result = Executor(env).run(doc)
    assert result.status == "success", result.errors
    return result


def ksampler_reference(env) -> torch.Tensor:
    """The default txt2img as a ComfyUI API prompt with the corpus' settings (euler/normal, 12 steps, cfg 6, seed 42)."""
    prompt = load("api_model_patches.json")
    prompt["3"]["inputs"]["model"] = ["4", 0]
    for patch in ("10", "11"):
        del prompt[patch]
    return run(env, prompt).value("8")


def test_custom_sampling_one_pass_and_split_sigmas_equal_ksampler(env):
    workflow = parse_workflow(load("ui_custom_sampling.json"), env.registry)
    assert workflow.nodes["20"].inputs == {"noise_seed": 42}  # the control value "fixed" is not an input
    assert workflow.nodes["23"].inputs["scheduler"] == "normal" and workflow.nodes["30"].inputs["step"] == 5
    assert workflow.nodes["33"].inputs["sigmas"] == {"node": "30", "output": 1}  # low_sigmas
    result = run(env, workflow)
    one_pass, two_stages = result.value("8"), result.value("34")
    reference = ksampler_reference(env)
    assert torch.equal(one_pass, reference)
    assert (two_stages - reference).abs().max() < 1e-4
    # the split is real: stage 1 stopped at sigma_5 of 12, its latent is still far from the end
    stage_one, final = result.value("31")["samples"], result.value("33")["samples"]
    assert (stage_one - final).abs().mean() > 0.1
    reading = read_image(one_pass[0])
    assert (reading.shape_color, reading.background) == ("red", "blue")


def shapes_by_half(image: torch.Tensor):
    """(shape colour, background) read on the left and the right 128x128 half of a 256x128 image."""
    return [(r.shape_color, r.background) for r in (read_image(image[:, :128]), read_image(image[:, 128:]))]


def test_area_composition_draws_each_prompt_in_its_area(env):
    doc = load("ui_area_composition.json")
    workflow = parse_workflow(doc, env.registry)
    assert {k: v for k, v in workflow.nodes["11"].inputs.items() if k != "conditioning"} == {
        "width": 128, "height": 128, "x": 128, "y": 0, "strength": 1.0}
    assert workflow.nodes["3"].inputs["seed"] == 42  # "randomize" acts after queueing, in the frontend
    image = run(env, workflow).value("8")[0]
    assert image.shape == (128, 256, 3)
    assert shapes_by_half(image) == [("red", "green"), ("yellow", "green")]
    left, right = (n for n in doc["nodes"] if n.get("title", "").endswith(" prompt"))
    left["widgets_values"], right["widgets_values"] = right["widgets_values"], left["widgets_values"]
    swapped = run(env, doc).value("8")[0]
    left_reading, right_reading = read_image(swapped[:, :128]), read_image(swapped[:, 128:])
    assert (left_reading.shape_color, left_reading.background) == ("yellow", "green")
    # the right shape turns from yellow to red-brown (measured green channel 0.80 -> 0.45; the edge blends a little)
    assert right_reading.shape_rgb[1] < read_image(image[:, 128:]).shape_rgb[1] - 0.2, right_reading


def test_model_patch_chain_changes_the_picture_and_neutral_settings_do_not(env):
    patched = run(env, load("api_model_patches.json")).value("8")
    reference = ksampler_reference(env)
    reading = read_image(patched[0])
    assert (reading.shape_color, reading.background) == ("red", "blue")
    assert (patched - reference).abs().mean() > 0.01
    neutral = load("api_model_patches.json")
    neutral["10"]["inputs"].update(b1=1.0, b2=1.0, s1=1.0, s2=1.0)
    neutral["11"]["inputs"]["multiplier"] = 0.0
    same = run(env, neutral).value("8")
    assert (same - reference).abs().max() < 1e-3


def test_unclip_image_steers_the_picture_and_bypass_passes_the_prompt(env):
    from tests.diffusion.tiny_vision import save_tiny_unclip

    save_tiny_unclip(env.folders.models / "checkpoints" / "corpus-unclip.safetensors", seed=2)
    picture = env.folders.input / "corpus-unclip-input.png"

    def draw(colour, mode=0):
        Image.new("RGB", (32, 32), colour).save(picture)
        doc = load("ui_unclip.json")
        next(n for n in doc["nodes"] if n["type"] == "unCLIPConditioning")["mode"] = mode
        return run(env, doc).value("8")

    red, blue = draw((255, 0, 0)), draw((0, 0, 255))
    bypassed = draw((255, 0, 0), mode=4)
    assert red.shape == blue.shape and red.shape[0] == 1
    assert (red - blue).abs().mean() > 1e-3  # the image's embedding reaches the U-Net's label_emb
    assert (red - bypassed).abs().mean() > 1e-3
    doc = load("ui_unclip.json")
    next(n for n in doc["nodes"] if n["type"] == "unCLIPConditioning")["widgets_values"] = [0, 0.3]
    assert torch.equal(run(env, doc).value("8"), bypassed)  # strength 0 leaves the text conditioning alone


def test_sdxl_prompt_with_size_conditioning_on_a_tiny_sdxl_model(env):
    from tests.tiny_models import save_tiny_checkpoint

    save_tiny_checkpoint(env.folders.models / "checkpoints" / "corpus-sdxl.safetensors", "sdxl", seed=4)
    prompt = load("api_sdxl.json")
    first = run(env, prompt).value("8")
    assert first.shape[0] == 1 and first.shape[-1] == 3
    again = copy.deepcopy(prompt)
    again["6"]["inputs"]["target_width"] = 512  # only the pooled size embedding (SDXL's adm) changes
    moved = run(env, again).value("8")
    assert (first - moved).abs().mean() > 1e-4
    same = copy.deepcopy(prompt)
    same["6"]["inputs"]["text_l"] = "a blue square"
    assert (first - run(env, same).value("8")).abs().mean() > 1e-4  # text_l reaches the first encoder


def test_sdxl_base_then_refiner_on_tiny_models(env):
    """ComfyUI's SDXL refiner example: the base's KSamplerAdvanced stops at step 4 of 6 with its leftover
    noise, the refiner (its own CLIP-G and aesthetic-score conditioning) does the rest without new noise."""
    from tests.tiny_models import save_tiny_checkpoint

    folder = env.folders.models / "checkpoints"
    save_tiny_checkpoint(folder / "corpus-sdxl.safetensors", "sdxl", seed=4)
    save_tiny_checkpoint(folder / "corpus-sdxl-refiner.safetensors", "sdxl_refiner", seed=5)
    prompt = load("api_sdxl_refiner.json")
    refined = run(env, prompt).value("11")["samples"]
    base_to_the_end = copy.deepcopy(prompt)
    base_to_the_end["10"]["inputs"].update(end_at_step=10000, return_with_leftover_noise="disable")
    assert (refined - run(env, base_to_the_end).value("10")["samples"]).abs().mean() > 1e-3  # the refiner did steps 4-6
    low_score = copy.deepcopy(prompt)
    low_score["15"]["inputs"]["ascore"] = 1.0  # the refiner's adm carries the aesthetic score
    assert (refined - run(env, low_score).value("11")["samples"]).abs().mean() > 1e-5
    assert run(env, prompt).value("17").shape[0] == 1


def test_gligen_box_steers_the_picture_and_a_zero_gate_does_not(env):
    """ComfyUI's GLIGEN workflow (nodes.py GLIGENLoader + GLIGENTextBoxApply on an SD1 checkpoint): the box's phrase
    reaches the U-Net through the gated fusers; tanh(0) gates add nothing, so a zero-gate file draws what the
    workflow draws with GLIGENTextBoxApply bypassed (its conditioning_to passes through)."""
    from tests.diffusion.test_gligen import save_gligen
    from tests.tiny_models import save_tiny_checkpoint

    save_tiny_checkpoint(env.folders.models / "checkpoints" / "corpus-gligen-sd1.safetensors", "sd1", seed=4)
    save_gligen(env.folders.models / "gligen" / "corpus-gligen.safetensors", seed=2)
    save_gligen(env.folders.models / "gligen" / "corpus-gligen-zero.safetensors", seed=2, gate=0.0)

    def draw(mode=0, gligen="corpus-gligen.safetensors", box=(32, 32, 0, 0)):
        doc = load("ui_gligen.json")
        nodes = {n["type"]: n for n in doc["nodes"]}
        nodes["GLIGENTextBoxApply"]["mode"] = mode
        nodes["GLIGENTextBoxApply"]["widgets_values"] = ["a red circle", *box]
        nodes["GLIGENLoader"]["widgets_values"] = [gligen]
        return run(env, doc).value("8")

    workflow = parse_workflow(load("ui_gligen.json"), env.registry)
    assert workflow.nodes["10"].inputs["text"] == "a red circle"
    assert [workflow.nodes["10"].inputs[k] for k in ("width", "height", "x", "y")] == [32, 32, 0, 0]
    assert workflow.nodes["10"].inputs["gligen_textbox_model"] == {"node": "2", "output": 0}
    boxed, bypassed = draw(), draw(mode=4)
    moved = draw(box=(32, 32, 32, 32))
    gated_off = draw(gligen="corpus-gligen-zero.safetensors")
    assert boxed.shape == bypassed.shape == (1, 64, 64, 3)
    # a GLIGEN cond runs in its own forward (not batched with the uncond), hence rounding, not equality
    torch.testing.assert_close(gated_off, bypassed, rtol=1e-4, atol=1e-3)
    rounding = (gated_off - bypassed).abs().mean()
    assert (boxed - bypassed).abs().mean() > 100 * rounding + 1e-4
    assert (boxed - moved).abs().mean() > 100 * rounding + 1e-4  # where the box is matters
