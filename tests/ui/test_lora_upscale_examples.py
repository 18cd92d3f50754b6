"""The LoRA and upscaler examples opened from the editor's Workflow menu and queued in the browser:
the images that come back show the LoRA's style and the upscaler's size."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image
from playwright.sync_api import expect

from training.default_world import read_image


def run_example(editor, name: str, save_node: str, artifacts) -> Image.Image:
    page = editor.page
    editor.open_example(name)
    editor.press("Control+Enter")
    img = page.locator(f"[data-testid='output-{save_node}']").first
    expect(img).to_be_visible(timeout=240000)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    editor.screenshot(artifacts / f"20-example-{name}.png")
    return Image.open(io.BytesIO(editor.server.get(img.get_attribute("src")))).convert("RGB")


def test_lora_example_runs_from_the_menu(editor, artifacts):
    picture = run_example(editor, "lora", "9", artifacts)
    reading = read_image(np.asarray(picture, np.float32) / 255.0)
    assert picture.size == (128, 128)
    assert (reading.shape_color, reading.background) == ("black", "white")


def test_upscale_example_runs_from_the_menu(editor, artifacts):
    doc = editor.server.get("/v1/workflows/upscale-with-model")
    save = next(k for k, n in doc["nodes"].items() if n["type"] == "SaveImage"
                and n["inputs"]["images"]["node"] in {k2 for k2, n2 in doc["nodes"].items()
                                                      if n2["type"] == "ImageUpscaleWithModel"})
    picture = run_example(editor, "upscale-with-model", save, artifacts)
    assert picture.size == (256, 256)
