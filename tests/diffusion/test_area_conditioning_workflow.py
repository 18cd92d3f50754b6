"""Area, mask and timestep-range conditioning on the embedded default model (128x128 scenes of coloured
shapes): the nodes' extras reach the sampler and change the picture where and when they say."""
from __future__ import annotations

import pytest
import torch

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders

RED_BG, GREEN_BG = "a white circle on a red background", "a white circle on a green background"


def link(node, output):
    return {"node": node, "output": output}


def text(node_id, prompt):
    return {node_id: {"type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": link("ckpt", "CLIP")}}}


def half_masks():
    """"left": ones on the left half of 128x128, "right": its inverse."""
    return {"ones": {"type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 128}},
            "zeros": {"type": "SolidMask", "inputs": {"value": 0.0, "width": 128, "height": 128}},
            "left": {"type": "MaskComposite", "inputs": {"destination": link("zeros", "MASK"), "source": link("ones", "MASK"),
                                                         "x": 0, "y": 0, "operation": "add"}},
            "right": {"type": "InvertMask", "inputs": {"mask": link("left", "MASK")}}}


def combine(node_id, a, b):
    return {node_id: {"type": "ConditioningCombine", "inputs": {"conditioning_1": link(a, "CONDITIONING"),
                                                                "conditioning_2": link(b, "CONDITIONING")}}}


@pytest.fixture(scope="module")
def draw(tmp_path_factory, builtin_registry):
    """Sample 128x128 (euler, 12 steps, seed 42, cfg 6) with the positive conditioning built by `nodes`."""
    env = Environment(registry=builtin_registry, folders=Folders(tmp_path_factory.mktemp("area")))
    executor = Executor(env)

    def go(nodes: dict, positive: str) -> torch.Tensor:
        doc = {"version": 1, "nodes": {
            "ckpt": {"type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "nodegraph-default.safetensors"}},
            "neg": {"type": "CLIPTextEncode", "inputs": {"text": "", "clip": link("ckpt", "CLIP")}},
            "empty": {"type": "EmptyLatentImage", "inputs": {"width": 128, "height": 128, "batch_size": 1}},
            "sample": {"type": "KSampler", "inputs": {
                "model": link("ckpt", "MODEL"), "seed": 42, "steps": 12, "cfg": 6.0, "sampler_name": "euler",
                "scheduler": "normal", "positive": link(positive, "CONDITIONING"), "negative": link("neg", "CONDITIONING"),
                "latent_image": link("empty", "LATENT"), "denoise": 1.0}},
            "decode": {"type": "VAEDecode", "inputs": {"samples": link("sample", "LATENT"), "vae": link("ckpt", "VAE")}},
            "show": {"type": "PreviewImage", "inputs": {"images": link("decode", "IMAGE")}},
            **nodes}}
        env.cache.clear()
        result = executor.run(doc)
        assert result.status == "success", result.errors
        return result.value("decode")[0]

    return go


def redness(image: torch.Tensor) -> float:
    """Median red minus median green of an image region [H, W, 3]."""
    median = image.reshape(-1, 3).median(dim=0).values
    return float(median[0] - median[1])


def masked_prompts(left_prompt, right_prompt, mode):
    nodes = {**half_masks(), **text("a", left_prompt), **text("b", right_prompt)}
    for node_id, source, mask in (("ma", "a", "left"), ("mb", "b", "right")):
        nodes[node_id] = {"type": "ConditioningSetMask", "inputs": {
            "conditioning": link(source, "CONDITIONING"), "mask": link(mask, "MASK"), "strength": 1.0,
            "set_cond_area": mode}}
    return {**nodes, **combine("pos", "ma", "mb")}


def test_mask_bounds_draw_each_prompt_on_its_half(draw):
    red_right = draw(masked_prompts(GREEN_BG, RED_BG, "mask bounds"), "pos")
    red_left = draw(masked_prompts(RED_BG, GREEN_BG, "mask bounds"), "pos")
    # each half is redder (less green) when the red-background prompt is the one masked onto it
    assert redness(red_left[:, :64]) > redness(red_right[:, :64]) + 0.15
    assert redness(red_right[:, 64:]) > redness(red_left[:, 64:]) + 0.15


def test_a_prompt_under_an_empty_mask_has_no_effect(draw):
    alone = draw(text("b", RED_BG), "b")
    nodes = {**text("a", GREEN_BG), **text("b", RED_BG),
             "nothing": {"type": "SolidMask", "inputs": {"value": 0.0, "width": 128, "height": 128}},
             "ma": {"type": "ConditioningSetMask", "inputs": {"conditioning": link("a", "CONDITIONING"),
                                                              "mask": link("nothing", "MASK"), "strength": 1.0,
                                                              "set_cond_area": "default"}}}
    masked_out = draw({**nodes, **combine("pos", "ma", "b")}, "pos")
    unmasked = draw({**nodes, **combine("pos", "a", "b")}, "pos")
    # weight 0 everywhere: only batching with the other prompt may change the last bits
    assert (masked_out - alone).abs().max() < 1e-3
    assert (unmasked - alone).abs().mean() > 0.05


def test_timestep_range_limits_a_prompt_to_part_of_the_run(draw):
    alone = draw(text("b", RED_BG), "b")

    def ranged(start, end):
        nodes = {**text("a", GREEN_BG), **text("b", RED_BG),
                 "ra": {"type": "ConditioningSetTimestepRange", "inputs": {"conditioning": link("a", "CONDITIONING"),
                                                                           "start": start, "end": end}}}
        return draw({**nodes, **combine("pos", "b", "ra")}, "pos")

    assert torch.equal(ranged(0.0, 0.0), alone)  # never active: the run is the other prompt's alone
    whole, early, late = ranged(0.0, 1.0), ranged(0.0, 0.5), ranged(0.5, 1.0)
    assert (whole - alone).abs().mean() > 0.05
    # the first half of the run decides the colours: a prompt active then moves the picture more than one active later
    assert (early - alone).abs().mean() > 1.5 * (late - alone).abs().mean()  # measured: 0.082 against 0.040


def test_area_in_percent_is_the_area_in_pixels(draw):
    def area(kind, **inputs):
        nodes = {**text("a", GREEN_BG), **text("b", RED_BG),
                 "aa": {"type": kind, "inputs": {"conditioning": link("a", "CONDITIONING"), "strength": 1.0, **inputs}}}
        return draw({**nodes, **combine("pos", "aa", "b")}, "pos")

    pixels = area("ConditioningSetArea", width=64, height=128, x=64, y=0)
    percent = area("ConditioningSetAreaPercentage", width=0.5, height=1.0, x=0.5, y=0.0)
    assert torch.equal(pixels, percent)
    assert redness(pixels[:, 64:]) < redness(pixels[:, :64])  # the green prompt's half is the less red one
