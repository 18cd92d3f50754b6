"""workflows/controlnet-lora.json: the shipped ControlNet and the shipped silhouette LoRA together on
the default model: the LoRA's style (black shape on white) at the place the control image says."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from tests.diffusion.workflow_files import load_workflow
from training.default_world import read_image

from tests.diffusion.test_controlnet_default import control_centroid, distance, silhouette

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


@pytest.fixture(scope="module")
def go(tmp_path_factory, builtin_registry):
    folders = Folders(tmp_path_factory.mktemp("cn-lora"))
    folders.input.mkdir(parents=True)
    shutil.copy(WORKFLOWS / "controlnet-shape.png", folders.input / "controlnet-shape.png")
    executor = Executor(Environment(registry=builtin_registry, folders=folders))

    def run(**overrides):
        doc = load_workflow("controlnet-lora.json", **overrides)
        result = executor.run(doc)
        assert result.status == "success", result.errors
        return result.value("8")[0]

    run.input = folders.input
    return run


def test_lora_style_at_the_controlled_place(go):
    for name in ("controlnet-shape.png", silhouette("top-left.png", go.input, (0.3, 0.3))):
        target = control_centroid(go.input / name)
        reading = read_image(go(**{"10__image": name}))
        assert (reading.shape_color, reading.background) == ("black", "white"), name
        assert distance(reading.centroid, target) < 0.12, (name, reading.centroid, target)


def test_lora_strength_zero_gives_the_plain_controlnet_colours(go):
    reading = read_image(go(**{"20__strength_model": 0.0, "20__strength_clip": 0.0}))
    assert (reading.shape_color, reading.background) == ("red", "blue")
    assert distance(reading.centroid, control_centroid(go.input / "controlnet-shape.png")) < 0.1
