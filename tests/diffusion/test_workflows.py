"""Every diffusion workflow in workflows/ runs on the embedded default model and does what it says."""
import pytest
import torch

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from training.default_world.analyze import read_image
from tests.diffusion.workflow_files import load_workflow


@pytest.fixture(scope="module")
def run(tmp_path_factory, builtin_registry):
    """Run a workflow file (with optional input overrides) in one environment, so the model loads once."""
    env = Environment(registry=builtin_registry, folders=Folders(tmp_path_factory.mktemp("wf")))
    executor = Executor(env)

    def go(name, **overrides):
        doc = load_workflow(name, **overrides)
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


# workflows/inpaint.json, outpaint.json and hires-fix.json: tests/diffusion/test_inpaint.py, test_outpaint.py,
# test_hires_fix.py (they read the intermediate nodes too)
