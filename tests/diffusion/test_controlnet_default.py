"""The shipped shape ControlNet on the embedded default model: workflows/controlnet.json puts the
shape where the control image says (silhouette or Canny outline), the default model alone does not."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from tests.diffusion.workflow_files import load_workflow
from training.default_world import Scene, draw, read_image

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
SHIPPED = ROOT / "nodes" / "diffusion" / "controlnet" / "nodegraph-default-shape-controlnet.safetensors"


@pytest.fixture(scope="module")
def go(tmp_path_factory, builtin_registry):
    """Run workflows/controlnet.json (with input overrides and extra nodes) in one environment."""
    folders = Folders(tmp_path_factory.mktemp("cn"))
    folders.input.mkdir(parents=True)
    shutil.copy(WORKFLOWS / "controlnet-shape.png", folders.input / "controlnet-shape.png")
    executor = Executor(Environment(registry=builtin_registry, folders=folders))

    def run(extra_nodes=None, **overrides):
        doc = load_workflow("controlnet.json", **overrides)
        doc["nodes"].update(extra_nodes or {})
        result = executor.run(doc)
        assert result.status == "success", result.errors
        assert len(result.outputs["9"]["images"]) == 1
        return result.value("8")[0]

    run.input = folders.input
    return run


def silhouette(name: str, folder: Path, center: tuple[float, float], shape: str = "circle", radius: float = 0.2):
    scene = Scene(shape=shape, color="white", background="black", center=center, radius=radius, size="medium",
                  position="in the center", caption="")  # position: unused by drawing
    mask = (draw([scene], size=128).masks[0, 0] > 0.5).numpy().astype(np.uint8) * 255
    Image.fromarray(np.stack([mask] * 3, -1)).save(folder / name)
    return name


def control_centroid(path: Path) -> tuple[float, float]:
    mask = np.asarray(Image.open(path).convert("L")) > 127
    ys, xs = np.nonzero(mask)
    return (xs.mean() + 0.5) / mask.shape[1], (ys.mean() + 0.5) / mask.shape[0]


def distance(a, b) -> float:
    return float(np.hypot(a[0] - b[0], a[1] - b[1]))


def test_the_controlnet_is_shipped_small_with_its_training_metadata():
    from safetensors import safe_open
    assert SHIPPED.stat().st_size < 10e6
    with safe_open(str(SHIPPED), "pt") as f:
        meta = f.metadata()
        assert all(k.startswith("control_model.") for k in f.keys())
    training = json.loads(meta["nodegraph.training"])
    assert training["base_model"] == "nodegraph-default.safetensors" and training["steps"] > 0


def test_controlnet_workflow_puts_the_shape_where_the_control_image_says(go):
    shipped = control_centroid(WORKFLOWS / "controlnet-shape.png")  # a star at the bottom right
    image = go()
    assert image.shape == (128, 128, 3)
    reading = read_image(image)
    assert (reading.shape_color, reading.background) == ("red", "blue")
    assert distance(reading.centroid, shipped) < 0.1, (reading.centroid, shipped)

    other = silhouette("top-left.png", go.input, (0.3, 0.3))  # a second, distant position
    target = control_centroid(go.input / other)
    assert distance(target, shipped) > 0.4
    moved = read_image(go(**{"10__image": other, "6__text": "a yellow circle on a purple background"}))
    assert (moved.shape_color, moved.background) == ("yellow", "purple")
    assert distance(moved.centroid, target) < 0.1, (moved.centroid, target)


def test_strength_zero_is_no_controlnet_and_the_position_is_not_followed(go):
    plain = go(**{"3__positive": {"node": "6", "output": "CONDITIONING"},  # ControlNet bypassed
                  "3__negative": {"node": "7", "output": "CONDITIONING"}})
    other = silhouette("bottom-left.png", go.input, (0.28, 0.72))
    off = {name: go(**{"10__image": name, "12__strength": 0.0}) for name in ("controlnet-shape.png", other)}
    assert all(torch.equal(image, plain) for image in off.values())  # strength 0 = no ControlNet, exactly
    # the default model alone puts the shape somewhere of its own: far from the shipped control's star
    shipped = control_centroid(go.input / "controlnet-shape.png")
    assert distance(read_image(plain).centroid, shipped) > 0.15


def test_canny_outline_of_a_drawing_also_places_the_shape(go):
    drawing = silhouette("diamond.png", go.input, (0.3, 0.65), shape="diamond", radius=0.22)
    target = control_centroid(go.input / drawing)
    canny = {"13": {"type": "Canny", "inputs": {"image": {"node": "10", "output": "IMAGE"},
                                                "low_threshold": 0.4, "high_threshold": 0.8}}}
    image = go(canny, **{"10__image": drawing, "12__image": {"node": "13", "output": "IMAGE"},
                         "6__text": "a green diamond on a white background"})
    reading = read_image(image)
    assert reading.shape_color == "green"
    assert distance(reading.centroid, target) < 0.12, (reading.centroid, target)
