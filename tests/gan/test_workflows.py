"""The GAN and evaluation workflows in workflows/ run with the shipped tiny models and do what they
say: GAN samples look like default-world pictures, interpolation strips start and end on the
seeds' images, the discriminator prefers real pictures to noise, pix2pix paints the mask in the
shape's colour, and FID orders image sets by how alike they are."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nodegraph.executor import Executor
from nodegraph.formats import load_workflow, parse_workflow
from training.default_world import COLORS, generate, nearest_color, read_image

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
WEIGHTS = ROOT / "nodes" / "gan" / "weights"


def run(env, name: str, edit=None):
    doc = json.loads((WORKFLOWS / name).read_text())
    if edit:
        edit(doc["nodes"])
    result = Executor(env).run(parse_workflow(doc, env.registry))
    assert result.status == "success", result.errors
    return result


def world_like(image: torch.Tensor) -> bool:
    """One flat shape on a plain background, both near palette colours."""
    img = image.numpy()
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    reading = read_image(img)
    if border.std(axis=0).mean() > 0.06 or reading.shape_color is None or not 0.01 < reading.shape_fraction < 0.5:
        return False
    palette = np.array(list(COLORS.values()))
    near = lambda rgb: np.sqrt(((palette - np.array(rgb)) ** 2).sum(-1)).min()  # noqa: E731
    return near(reading.background_rgb) < 0.15 and near(reading.shape_rgb) < 0.2


def save_pngs(folder: Path, images: torch.Tensor) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, image in enumerate(images):
        Image.fromarray((image.clamp(0, 1).numpy() * 255).round().astype(np.uint8)).save(folder / f"{k:03d}.png")


def test_workflows_parse(gan_registry):
    for name in ("gan-sample.json", "gan-interpolation.json", "gan-best-of-n.json", "pix2pix.json",
                 "evaluate-fid.json", "gan-best-of-n-diffusion.json", "stylegan-mixing.json"):
        load_workflow(WORKFLOWS / name, gan_registry)


def test_shipped_weights_fit_the_budget():
    files = sorted(WEIGHTS.glob("*.safetensors"))
    assert [f.name for f in files] == ["default-world-dcgan-G.safetensors", "default-world-patchgan-D.safetensors",
                                       "default-world-pix2pix-G.safetensors", "default-world-stylegan2-G.safetensors"]
    assert sum(f.stat().st_size for f in files) < 8 * 2**20


def plain_palette_background(image: torch.Tensor) -> str | None:
    """The palette name of a uniform border near a palette colour, else None."""
    img = image.numpy()
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    median = np.median(border, axis=0)
    palette = np.array(list(COLORS.values()))
    distance = np.sqrt(((palette - median) ** 2).sum(-1))
    if border.std(axis=0).mean() > 0.06 or distance.min() > 0.15:
        return None
    return list(COLORS)[int(distance.argmin())]


def test_gan_sample_looks_like_the_default_world(gan_env):
    result = run(gan_env, "gan-sample.json")
    assert result.value("3").shape == (8, 64, 64, 3)
    assert len(result.outputs["4"]["images"]) == 8
    # statistics over 64 samples (the tiny GAN draws blob-like shapes: see training/GAN.md)
    images = run(gan_env, "gan-sample.json", lambda n: n["2"]["inputs"].update(batch_size=64)).value("3")
    backgrounds = [plain_palette_background(im) for im in images]
    assert np.mean([b is not None for b in backgrounds]) >= 0.5  # plain backgrounds in palette colours
    assert len(set(backgrounds) - {None}) >= 8  # of 12: no collapse onto a few colours
    assert np.mean([world_like(im) for im in images]) >= 0.15  # one flat palette shape on them
    noise = torch.rand(64, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    assert not any(plain_palette_background(im) or world_like(im) for im in noise)


def test_gan_interpolation_strip_runs_from_one_seed_to_the_other(gan_env):
    strip = run(gan_env, "gan-interpolation.json").value("6")
    assert strip.shape == (1, 64, 8 * 64 + 7 * 2, 3)
    tiles = [strip[0, :, k * 66:k * 66 + 64] for k in range(8)]

    def seed_image(seed):
        def edit(nodes):
            nodes["2"]["inputs"].update(seed=seed, batch_size=1)
        return run(gan_env, "gan-sample.json", edit).value("3")[0]

    assert torch.allclose(tiles[0], seed_image(7), atol=1e-5)
    assert torch.allclose(tiles[-1], seed_image(26), atol=1e-5)
    steps = [float((a - b).abs().mean()) for a, b in zip(tiles, tiles[1:])]
    assert max(steps) < float((tiles[0] - tiles[-1]).abs().mean())  # a gradual path, not a jump


def test_discriminator_scores_real_pictures_above_noise(gan_env):
    world = generate(seed=123, count=12, size=64)
    save_pngs(gan_env.folders.input / "real", world.images_bhwc())
    save_pngs(gan_env.folders.input / "noise", torch.rand(12, 64, 64, 3, generator=torch.Generator().manual_seed(0)))
    doc = {"version": 1, "nodes": {
        "1": {"type": "DiscriminatorLoader", "inputs": {"discriminator_name": "default-world-patchgan-D.safetensors"}},
        "2": {"type": "LoadImagesFromFolder", "inputs": {"root": "input", "folder": "real"}},
        "3": {"type": "LoadImagesFromFolder", "inputs": {"root": "input", "folder": "noise"}},
        "4": {"type": "Discriminator", "inputs": {"discriminator": {"node": "1", "output": 0},
                                                  "images": {"node": "2", "output": 0}}},
        "5": {"type": "Discriminator", "inputs": {"discriminator": {"node": "1", "output": 0},
                                                  "images": {"node": "3", "output": 0}}},
        "6": {"type": "ImageBatch", "inputs": {"image1": {"node": "3", "output": 0}, "image2": {"node": "2", "output": 0}}},
        "7": {"type": "RankByDiscriminator", "inputs": {"discriminator": {"node": "1", "output": 0},
                                                        "images": {"node": "6", "output": 0}, "keep": 12}},
        "8": {"type": "PreviewImage", "inputs": {"images": {"node": "7", "output": 0}}},
        "9": {"type": "PreviewImage", "inputs": {"images": {"node": "4", "output": "heatmap"}}},
        "10": {"type": "PreviewImage", "inputs": {"images": {"node": "5", "output": "heatmap"}}},
        "11": {"type": "Discriminator", "inputs": {"discriminator": {"node": "1", "output": 0},
                                                   "images": {"node": "6", "output": 0}}},
        "12": {"type": "FilterByScore", "inputs": {"images": {"node": "6", "output": 0},
                                                   "scores": {"node": "11", "output": "SCORES"},
                                                   "keep": 0, "min_score": 0.2}},
        "13": {"type": "PreviewImage", "inputs": {"images": {"node": "12", "output": 0}}}}}
    result = Executor(gan_env).run(doc)
    assert result.status == "success", result.errors
    real, noise = result.value("4"), result.value("5")
    assert real.min() > noise.max()  # every real picture above every noise image
    assert real.mean() > 0.5 > noise.mean()
    patch = result.value("4", 1)
    assert patch.shape == (12, 64, 64) and 0 <= patch.min() and patch.max() <= 1
    # best-of-N over the mixed batch keeps exactly the real pictures
    kept = result.value("7")
    real_images = result.value("2")
    assert all(any(torch.allclose(k, r) for r in real_images) for k in kept)
    # a score threshold between noise and pictures keeps the 12 pictures
    filtered = result.value("12")
    assert filtered.shape[0] == 12 and all(any(torch.allclose(f, r) for r in real_images) for f in filtered)


def test_gan_best_of_n_keeps_the_best_scored(gan_env):
    result = run(gan_env, "gan-best-of-n.json")
    best, scores = result.value("5"), result.value("5", 1)
    assert best.shape == (4, 64, 64, 3)
    assert torch.all(scores[:-1] >= scores[1:])

    def score_all(nodes):
        nodes["5"]["inputs"]["keep"] = 16
    all_scores = run(gan_env, "gan-best-of-n.json", score_all).value("5", 1)
    assert torch.allclose(scores, all_scores[:4])


@pytest.mark.parametrize("shape,colour", [("star", "orange"), ("circle", "red"), ("square", "blue"),
                                          ("heart", "pink")])
def test_pix2pix_paints_the_mask_in_the_shapes_colour(gan_env, shape, colour):
    def edit(nodes):
        nodes["2"]["inputs"].update(shape=shape, center_x=0.45, center_y=0.55)
    result = run(gan_env, "pix2pix.json", edit)
    out, mask = result.value("4")[0], result.value("2")[0]
    assert out.shape == (256, 256, 3)
    inside, outside = mask > 0.5, mask < 0.5
    assert nearest_color(out[inside].median(0).values.numpy()) == colour
    assert nearest_color(out[outside].median(0).values.numpy()) == "white"
    painted = (out - torch.tensor(COLORS["white"])).norm(dim=-1) > 0.3
    iou = float((painted & inside).sum() / (painted | inside).sum())
    assert iou > 0.85


def test_evaluate_fid_orders_sets_by_likeness(gan_env):
    """As shipped: the built-in StyleGAN's samples against default-world pictures, both drawn in the
    workflow. Its generated set swapped for folders of other pictures orders them by likeness."""
    shipped = run(gan_env, "evaluate-fid.json")
    from_gan, kid_gan = shipped.value("6"), shipped.value("7")

    def evaluate(generated: torch.Tensor) -> tuple[float, float, tuple[float, float]]:
        folder = gan_env.folders.input / "generated"
        for old in folder.glob("*.png"):
            old.unlink()
        save_pngs(folder, generated)

        def from_folder(nodes):
            nodes["3"] = {"type": "LoadImagesFromFolder", "inputs": {"root": "input", "folder": "generated",
                                                                     "max_images": 0, "width": 0, "height": 0}}
        result = run(gan_env, "evaluate-fid.json", from_folder)
        return result.value("6"), result.value("7"), (result.value("8"), result.value("8", 1))

    same_world, kid_world, pr_world = evaluate(generate(seed=2, count=64, size=64).images_bhwc())
    noise, kid_noise, pr_noise = evaluate(torch.rand(64, 64, 64, 3, generator=torch.Generator().manual_seed(0)))
    assert same_world < from_gan < noise
    assert kid_world < kid_noise and kid_gan < kid_noise
    assert pr_world[0] > 0.8 and pr_world[1] > 0.8  # another draw of the world: faithful and covering
    assert pr_noise[1] < 0.1  # noise covers none of the real pictures (its precision with k=3 on 64 pictures says little)

    def same_pictures(nodes):  # the real set against itself: zero (to the eps regularisation)
        nodes["3"] = {"type": "DefaultWorldPictures", "inputs": dict(nodes["2"]["inputs"])}
    assert run(gan_env, "evaluate-fid.json", same_pictures).value("6") == pytest.approx(0.0, abs=1e-4)


def test_best_of_n_diffusion_ranks_clean_outputs_above_degraded_ones(gan_env):
    """The default model's candidates (a short run: 3 images, 6 steps) and blurred copies of them,
    ranked together by the discriminator: the three untouched outputs come first."""
    if "CheckpointLoaderSimple" not in gan_env.registry:
        pytest.skip("the diffusion pack is not installed")

    def edit(nodes):
        nodes["5"]["inputs"]["batch_size"] = 3
        nodes["3"]["inputs"]["steps"] = 6
        nodes["20"] = {"type": "ImageScaleBy", "inputs": {"image": {"node": "8", "output": 0},
                                                          "upscale_method": "bilinear", "scale_by": 0.125}}
        nodes["21"] = {"type": "ImageScale", "inputs": {"image": {"node": "20", "output": 0}, "upscale_method": "bilinear",
                                                        "width": 128, "height": 128, "crop": "disabled"}}
        nodes["22"] = {"type": "ImageBatch", "inputs": {"image1": {"node": "8", "output": 0},
                                                        "image2": {"node": "21", "output": 0}}}
        nodes["11"]["inputs"].update(images={"node": "22", "output": 0}, keep=3)

    result = run(gan_env, "gan-best-of-n-diffusion.json", edit)
    originals, kept, scores = result.value("8"), result.value("11"), result.value("11", 1)
    assert kept.shape == (3, 128, 128, 3) and torch.all(scores[:-1] >= scores[1:])
    assert all(any(torch.equal(k, o) for o in originals) for k in kept)
    assert len(result.outputs["9"]["images"]) == 3
