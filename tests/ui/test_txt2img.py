"""txt2img built by hand in the browser, with the Stable Diffusion pack and the shipped default
checkpoint: drag the seven nodes from the palette, wire them, queue, watch the sampler's progress
and live previews, and check the picture follows the prompt."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

NEEDED = ["CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage"]


def test_txt2img_by_dragging(editor, artifacts):
    schemas = editor.server.get("/v1/nodes")
    missing = [n for n in NEEDED if n not in schemas]
    if missing:
        pytest.skip(f"the Stable Diffusion pack is not available yet (missing {', '.join(missing)})")
    checkpoints = editor.server.get("/v1/models/checkpoints")
    if not checkpoints:
        pytest.skip("no checkpoint in the models folders (the default model ships with the diffusion pack)")
    ckpt_name = "nodegraph-default.safetensors" if "nodegraph-default.safetensors" in checkpoints else checkpoints[0]
    page = editor.page
    page.click("[data-testid=toggle-panel]")  # room for seven nodes
    page.get_by_role("button", name="Zoom Out").click()
    page.get_by_role("button", name="Zoom Out").click()
    page.wait_for_timeout(300)

    ids = {
        "ckpt": editor.drag_from_palette("CheckpointLoaderSimple", 20, 30),
        "latent": editor.drag_from_palette("EmptyLatentImage", 20, 300),
        "pos": editor.drag_from_palette("CLIPTextEncode", 250, 20),
        "neg": editor.drag_from_palette("CLIPTextEncode", 250, 280),
        "ks": editor.drag_from_palette("KSampler", 500, 20),
        "dec": editor.drag_from_palette("VAEDecode", 740, 20),
        "save": editor.drag_from_palette("SaveImage", 740, 160),
    }
    editor.set_any_widget(ids["ckpt"], "ckpt_name", ckpt_name)
    editor.set_any_widget(ids["pos"], "text", "a red circle on a blue background")
    editor.set_any_widget(ids["neg"], "text", "")
    editor.set_any_widget(ids["latent"], "width", 64)
    editor.set_any_widget(ids["latent"], "height", 64)
    editor.set_any_widget(ids["ks"], "steps", 12)
    editor.set_any_widget(ids["ks"], "cfg", 5)
    editor.set_any_widget(ids["ks"], "seed", 1)
    editor.node(ids["ks"]).get_by_label("control after generate").select_option("fixed")

    out = lambda key, t: editor.output_of_type(ids[key], t)  # noqa: E731
    editor.drag_link(ids["ckpt"], out("ckpt", "MODEL"), ids["ks"], "model")
    editor.drag_link(ids["ckpt"], out("ckpt", "CLIP"), ids["pos"], "clip")
    editor.drag_link(ids["ckpt"], out("ckpt", "CLIP"), ids["neg"], "clip")
    editor.drag_link(ids["pos"], out("pos", "CONDITIONING"), ids["ks"], "positive")
    editor.drag_link(ids["neg"], out("neg", "CONDITIONING"), ids["ks"], "negative")
    editor.drag_link(ids["latent"], out("latent", "LATENT"), ids["ks"], "latent_image")
    editor.drag_link(ids["ks"], out("ks", "LATENT"), ids["dec"], "samples")
    editor.drag_link(ids["ckpt"], out("ckpt", "VAE"), ids["dec"], "vae")
    editor.drag_link(ids["dec"], out("dec", "IMAGE"), ids["save"], "images")
    assert len(editor.graph()["edges"]) == 9

    page.click("[data-testid=queue-button]")
    # the sampler runs with a progress bar and live previews on it
    expect(page.locator(f"[data-testid='node-{ids['ks']}'].status-running")).to_be_visible(timeout=240000)
    bar = page.locator(f"[data-testid='progress-{ids['ks']}'] > div")
    page.wait_for_function("(el) => parseFloat(el.style.width) > 0", arg=bar.element_handle(), timeout=60000)
    expect(page.locator(f"[data-testid='preview-{ids['ks']}']")).to_be_visible(timeout=60000)
    editor.screenshot(artifacts / "07-txt2img-running.png")
    img = page.locator(f"[data-testid='output-{ids['save']}']").first
    expect(img).to_be_visible(timeout=120000)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    editor.press(".")
    page.wait_for_timeout(400)
    editor.screenshot(artifacts / "08-txt2img-after-run.png")

    picture = Image.open(io.BytesIO(editor.server.get(img.get_attribute("src")))).convert("RGB")
    assert picture.size == (64, 64)
    rgb = np.asarray(picture).astype(int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    red = int(((r > 150) & (r > b + 60) & (r > g + 60)).sum())
    blue = int(((b > 120) & (b > r + 40)).sum())
    assert red > 40 and blue > r.size // 3, (red, blue)
