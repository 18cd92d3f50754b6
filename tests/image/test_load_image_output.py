"""LoadImageOutput (ComfyUI 0.8 nodes.py, EXPERIMENTAL): LoadImage reading the output folder. Its names
carry the " [output]" annotation that ComfyUI's folder_paths.get_annotated_filepath reads."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nodegraph.executor import Executor


def save(folder, name, rgb):
    Image.fromarray(np.full((8, 12, 3), rgb, dtype=np.uint8)).save(folder / name)


def test_lists_output_images_annotated_and_loads_them(env):
    save(env.folders.output, "result_00001_.png", (200, 10, 30))
    spec = env.registry.specs["LoadImageOutput"]
    [image_input] = spec.inputs
    assert image_input.name == "image" and spec.display_name == "Load Image (from Outputs)"
    assert image_input.choices(env) == ["result_00001_.png [output]"]
    result = Executor(env).run({"version": 1, "nodes": {
        "load": {"type": "LoadImageOutput", "inputs": {"image": "result_00001_.png [output]"}},
        "show": {"type": "PreviewImage", "inputs": {"images": {"node": "load", "output": "IMAGE"}}}}})
    assert result.status == "success", result.errors
    image = result.value("load")
    assert image.shape == (1, 8, 12, 3)
    assert image[0, 0, 0].tolist() == pytest.approx([200 / 255, 10 / 255, 30 / 255])


def test_annotation_is_honoured_and_traversal_refused(env):
    from nodes.image.io import annotated_path

    save(env.folders.output, "a.png", (1, 2, 3))
    assert annotated_path(env.folders, "a.png [output]") == (env.folders.output / "a.png").resolve()
    assert annotated_path(env.folders, "a.png") == (env.folders.input / "a.png").resolve()
    assert annotated_path(env.folders, "a.png", default="output") == (env.folders.output / "a.png").resolve()
    with pytest.raises(Exception, match="outside the output folder"):
        annotated_path(env.folders, "../secret.png [output]")
