"""Every diffusion workflow in workflows/ runs on the embedded default model and does what it says."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from nodes.diffusion.default_world.analyze import read_image

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


@pytest.fixture(scope="module")
def run(tmp_path_factory, builtin_registry):
    """Run a workflow file (with optional input overrides) in one environment, so the model loads once."""
    env = Environment(registry=builtin_registry, folders=Folders(tmp_path_factory.mktemp("wf")))
    executor = Executor(env)

    def go(name, **overrides):
        doc = json.loads((WORKFLOWS / name).read_text())
        for key, value in overrides.items():
            node_id, input_name = key.split("__")
            doc["nodes"][node_id]["inputs"][input_name] = value
        result = executor.run(doc)
        assert result.status == "success", result.errors
        [saver] = [n for n, e in doc["nodes"].items() if e["type"] == "SaveImage"]
        assert len(result.outputs[saver]["images"]) >= 1
        return result.value(doc["nodes"][saver]["inputs"]["images"]["node"])

    return go


def test_txt2img_follows_the_prompt(run):
    image = run("txt2img.json")
    assert image.shape == (1, 128, 128, 3)
    reading = read_image(image[0])
    assert (reading.shape_color, reading.background) == ("red", "blue")
    other = read_image(run("txt2img.json", **{"6__text": "a yellow square on a green background"})[0])
    assert (other.shape_color, other.background) == ("yellow", "green")


def test_batch_gives_distinct_images_that_all_follow_the_prompt(run):
    images = run("batch.json")
    assert images.shape[0] == 4
    for k in range(4):
        reading = read_image(images[k])
        assert (reading.shape_color, reading.background) == ("yellow", "purple")
    assert all(not torch.allclose(images[0], images[k], atol=0.05) for k in range(1, 4))


def test_prompt_weighting_changes_the_image_and_keeps_the_subject(run):
    weighted = run("prompt-weighting.json")
    plain = run("prompt-weighting.json", **{"6__text": "a green square on a white background"})
    reading = read_image(weighted[0])
    assert (reading.shape_color, reading.background) == ("green", "white")
    assert (weighted - plain).abs().mean() > 0.002  # the weights are applied, not ignored


def test_img2img_keeps_the_canvas_and_adds_the_prompted_shape(run):
    reading = read_image(run("img2img.json")[0])
    assert (reading.shape_color, reading.background) == ("red", "green")


def test_inpaint_changes_only_the_masked_region(run):
    image = run("inpaint.json")[0].numpy()
    canvas = np.array([0x20, 0x40, 0xD0]) / 255.0
    outside = np.ones((128, 128), bool)
    outside[24:104, 24:104] = False  # the 64x64 mask at (32, 32), with a margin for the VAE's reach
    assert np.abs(image[outside] - canvas).mean() < 0.08
    def red_fraction(pixels):
        pixels = pixels.reshape(-1, 3)
        return np.mean((pixels[:, 0] > 0.6) & (pixels[:, 1] < 0.4) & (pixels[:, 2] < 0.4))

    assert red_fraction(image[32:96, 32:96]) > 0.03  # the prompted red square appeared in the mask
    assert red_fraction(image[outside]) < 0.002  # and nowhere else
