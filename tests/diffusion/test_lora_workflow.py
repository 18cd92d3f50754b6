"""workflows/lora.json on the embedded default model with the shipped silhouette LoRA
(nodes/diffusion/loras/nodegraph-silhouette.safetensors, trained by training/train_lora.py):
the LoRA turns the prompted colours into a black shape on a white background, and strength 0 is
exactly no LoRA."""
import json
from pathlib import Path

import pytest
import torch

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from tests.diffusion.workflow_files import load_workflow
from training.default_world.analyze import read_image
from nodes.diffusion.lora import read_lora

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "nodes/diffusion/loras/nodegraph-silhouette.safetensors"


@pytest.fixture(scope="module")
def run(tmp_path_factory, builtin_registry):
    env = Environment(registry=builtin_registry, folders=Folders(tmp_path_factory.mktemp("lora-wf")))
    executor = Executor(env)
    images = {}  # an identical re-run is all cached and keeps no values: remember the images

    def go(name, **overrides):
        key = (name, tuple(sorted(overrides.items())))
        if key in images:
            return images[key]
        doc = load_workflow(name, **overrides)
        result = executor.run(doc)
        assert result.status == "success", result.errors
        images[key] = result.value("8")[0]
        return images[key]

    return go


def test_the_shipped_lora_is_small_and_says_how_it_was_trained():
    assert SHIPPED.stat().st_size <= 2 * 10**6
    lora = read_lora(SHIPPED)
    info = json.loads(lora.metadata["nodegraph.training"])
    assert info["script"] == "training/train_lora.py" and "silhouette" in info["style"]
    assert lora.metadata["ss_network_module"] == "networks.lora"
    assert all(t.dtype == torch.float16 for t in lora.tensors.values())


def test_lora_workflow_draws_the_prompt_as_a_silhouette(run):
    base = run("txt2img.json")
    styled = run("lora.json")
    assert (read_image(base).shape_color, read_image(base).background) == ("red", "blue")
    reading = read_image(styled)
    assert (reading.shape_color, reading.background) == ("black", "white")
    assert 0.3 < reading.shape_fraction / read_image(base).shape_fraction < 3  # a shape of about the same size
    other = read_image(run("lora.json", **{"6__text": "a yellow square on a green background"}))
    assert (other.shape_color, other.background) == ("black", "white")


def test_strength_zero_is_exactly_no_lora(run):
    base = run("txt2img.json")
    zero = run("lora.json", **{"10__strength_model": 0.0, "10__strength_clip": 0.0})
    assert torch.equal(zero, base)
