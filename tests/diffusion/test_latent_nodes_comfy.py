"""ComfyUI 0.8's latent nodes against references written here from its code (nodes.py, comfy_extras/
nodes_latent.py, nodes_mask.py, nodes_rebatch.py): each reference says which lines it restates."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from nodegraph.executor import Executor
from nodegraph import common_upscale

from tests.diffusion.nodecall import run


def latent(*shape, seed=0, **extra):
    return {"samples": torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), **extra}


# --- transform (nodes.py LatentRotate / LatentFlip / LatentCrop) ----------------------------------

def test_rotate_is_clockwise_rot90_over_dims_3_2(env):
    lat = latent(2, 4, 3, 5, noise_mask=torch.ones(1, 1, 24, 40))
    for rotation, k in (("none", 0), ("90 degrees", 1), ("180 degrees", 2), ("270 degrees", 3)):
        out = run(env, "LatentRotate", samples=lat, rotation=rotation)
        assert torch.equal(out["samples"], torch.rot90(lat["samples"], k=k, dims=[3, 2]))
        assert out["noise_mask"] is lat["noise_mask"]  # other keys pass through (ComfyUI copies the dict)
    corner = torch.zeros(1, 1, 2, 3)
    corner[0, 0, 0, 0] = 1  # top left goes to top right under a clockwise quarter turn
    assert run(env, "LatentRotate", samples={"samples": corner}, rotation="90 degrees")["samples"][0, 0, 0, -1] == 1


def test_flip(env):
    lat = latent(1, 4, 3, 5)
    assert torch.equal(run(env, "LatentFlip", samples=lat, flip_method="x-axis: vertically")["samples"],
                       lat["samples"].flip(2))
    assert torch.equal(run(env, "LatentFlip", samples=lat, flip_method="y-axis: horizontally")["samples"],
                       lat["samples"].flip(3))


def comfy_crop(s, width, height, x, y):
    """nodes.py LatentCrop.crop."""
    x, y = x // 8, y // 8
    if x > s.shape[3] - 8:
        x = s.shape[3] - 8
    if y > s.shape[2] - 8:
        y = s.shape[2] - 8
    return s[:, :, y:y + height // 8, x:x + width // 8]


@pytest.mark.parametrize("width, height, x, y", [(64, 64, 0, 0), (128, 64, 40, 16), (512, 512, 200, 200),
                                                 (64, 96, 120, 8)])
def test_crop(env, width, height, x, y):
    lat = latent(1, 4, 20, 24)
    out = run(env, "LatentCrop", samples=lat, width=width, height=height, x=x, y=y)["samples"]
    assert torch.equal(out, comfy_crop(lat["samples"], width, height, x, y))
    assert out.shape[2] >= min(8, height // 8) and out.shape[3] >= min(8, width // 8)  # the corner stays 8 cells in


# --- combining (comfy_extras/nodes_latent.py, nodes_mask.py) ----------------------------------------

def comfy_reshape_latent_to(target_shape, latent, repeat_batch=True):
    """nodes_latent.reshape_latent_to: bilinear, centre crop, then comfy.utils.repeat_to_batch_size."""
    if latent.shape[1:] != target_shape[1:]:
        latent = common_upscale(latent, target_shape[-1], target_shape[-2], "bilinear", "center")
    if repeat_batch:
        n = target_shape[0]
        if latent.shape[0] > n:
            return latent[:n]
        if latent.shape[0] < n:
            return latent.repeat(math.ceil(n / latent.shape[0]), 1, 1, 1)[:n]
    return latent


def test_add_subtract_multiply(env):
    a, b = latent(2, 4, 8, 8, seed=1), latent(1, 4, 6, 10, seed=2)
    b2 = comfy_reshape_latent_to(a["samples"].shape, b["samples"])
    assert b2.shape == (2, 4, 8, 8)
    assert torch.equal(run(env, "LatentAdd", samples1=a, samples2=b)["samples"], a["samples"] + b2)
    assert torch.equal(run(env, "LatentSubtract", samples1=a, samples2=b)["samples"], a["samples"] - b2)
    assert torch.equal(run(env, "LatentMultiply", samples=a, multiplier=-2.5)["samples"], a["samples"] * -2.5)


def comfy_interpolate(s1, s2, ratio):
    """nodes_latent.LatentInterpolate.execute, at batch 1 (where ComfyUI's [B,h,w] norms broadcast as meant)."""
    m1 = torch.linalg.vector_norm(s1, dim=(1))
    m2 = torch.linalg.vector_norm(s2, dim=(1))
    s1 = torch.nan_to_num(s1 / m1)
    s2 = torch.nan_to_num(s2 / m2)
    t = (s1 * ratio + s2 * (1.0 - ratio))
    mt = torch.linalg.vector_norm(t, dim=(1))
    st = torch.nan_to_num(t / mt)
    return st * (m1 * ratio + m2 * (1.0 - ratio))


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_interpolate_as_comfyui(env, ratio):
    a, b = latent(1, 4, 8, 8, seed=3), latent(1, 4, 8, 8, seed=4)
    b["samples"][..., 0, 0] = 0  # a zero vector: nan_to_num makes its direction 0
    out = run(env, "LatentInterpolate", samples1=a, samples2=b, ratio=ratio)["samples"]
    assert torch.allclose(out, comfy_interpolate(a["samples"], b["samples"], ratio), atol=1e-6)
    if ratio == 1.0:
        assert torch.allclose(out, a["samples"], atol=1e-5)
    # the norm of each cell is the linear mix of the two norms
    norms = ratio * a["samples"].norm(dim=1) + (1 - ratio) * b["samples"].norm(dim=1)
    assert torch.allclose(out.norm(dim=1), norms, atol=1e-5)


def test_interpolate_batches_cell_by_cell(env):
    a, b = latent(3, 4, 4, 4, seed=5), latent(3, 4, 4, 4, seed=6)
    out = run(env, "LatentInterpolate", samples1=a, samples2=b, ratio=0.4)["samples"]
    for k in range(3):
        assert torch.allclose(out[k:k + 1], comfy_interpolate(a["samples"][k:k + 1], b["samples"][k:k + 1], 0.4), atol=1e-6)


def comfy_composite(destination, source, x, y, mask=None, multiplier=8, resize_source=False):
    """nodes_mask.composite, restated."""
    if resize_source:
        source = F.interpolate(source, size=(destination.shape[-2], destination.shape[-1]), mode="bilinear")
    source = comfy_reshape_latent_to((destination.shape[0],) + tuple(source.shape[1:]), source)
    x = max(-source.shape[-1] * multiplier, min(x, destination.shape[-1] * multiplier))
    y = max(-source.shape[-2] * multiplier, min(y, destination.shape[-2] * multiplier))
    left, top = (x // multiplier, y // multiplier)
    right, bottom = (left + source.shape[-1], top + source.shape[-2],)
    if mask is None:
        mask = torch.ones_like(source)
    else:
        mask = F.interpolate(mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])), size=(source.shape[-2], source.shape[-1]),
                             mode="bilinear")
        mask = comfy_reshape_latent_to((source.shape[0],) + tuple(mask.shape[1:]), mask)
    visible_width, visible_height = (destination.shape[-1] - left + min(0, x), destination.shape[-2] - top + min(0, y),)
    mask = mask[:, :, :visible_height, :visible_width]
    inverse_mask = torch.ones_like(mask) - mask
    source_portion = mask * source[..., :visible_height, :visible_width]
    destination_portion = inverse_mask * destination[..., top:bottom, left:right]
    destination[..., top:bottom, left:right] = source_portion + destination_portion
    return destination


@pytest.mark.parametrize("x, y, resize, with_mask", [(0, 0, False, False), (24, 40, False, True),
                                                     (120, 8, False, True), (16, 16, True, True)])
def test_composite_masked(env, x, y, resize, with_mask):
    dest, src = latent(2, 4, 12, 16, seed=7), latent(1, 4, 6, 6, seed=8)
    mask = torch.rand(1, 48, 48, generator=torch.Generator().manual_seed(9)) if with_mask else None
    out = run(env, "LatentCompositeMasked", destination=dest, source=src, x=x, y=y, resize_source=resize, mask=mask)
    expected = comfy_composite(dest["samples"].clone(), src["samples"], x, y, mask, 8, resize)
    assert torch.allclose(out["samples"], expected, atol=1e-6)
    assert not torch.equal(out["samples"], dest["samples"])  # something was pasted; the input is untouched
    assert torch.equal(dest["samples"], latent(2, 4, 12, 16, seed=7)["samples"])


def test_composite_feather_uses_comfyui_ramp(env):
    to, src = {"samples": torch.zeros(1, 4, 16, 16)}, {"samples": torch.ones(1, 4, 8, 8)}
    out = run(env, "LatentComposite", samples_to=to, samples_from=src, x=32, y=32, feather=24)["samples"]
    ramp = [(1.0 / 3) * (t + 1) for t in range(3)]  # nodes.py: mask *= (1.0/feather) * (t + 1), on each inner side
    assert out[0, 0, 4 + 3, 4] == pytest.approx(ramp[0])  # the left column, 4 rows in: one ramp only
    assert out[0, 0, 4, 4] == pytest.approx(ramp[0] * ramp[0])  # a corner: top and left ramps multiply


def test_blend_broadcasts_batches_as_comfyui(env):
    a, b = latent(1, 4, 8, 8, seed=1), latent(2, 4, 8, 8, seed=2)
    out = run(env, "LatentBlend", samples1=a, samples2=b, blend_factor=0.25)["samples"]
    assert out.shape == (2, 4, 8, 8) and torch.allclose(out, a["samples"] * 0.25 + b["samples"] * 0.75)
    with pytest.raises(ValueError, match="samples2"):
        run(env, "LatentBlend", samples1=latent(2, 4, 8, 8), samples2=latent(3, 4, 8, 8), blend_factor=0.5)


# --- batches ---------------------------------------------------------------------------------------

def test_latent_batch(env):
    a, b = latent(2, 4, 8, 8, seed=1), latent(1, 4, 4, 6, seed=2, batch_index=[5])
    out = run(env, "LatentBatch", samples1=a, samples2=b)
    resized = common_upscale(b["samples"], 8, 8, "bilinear", "center")
    assert torch.equal(out["samples"], torch.cat([a["samples"], resized]))
    assert out["batch_index"] == [0, 1, 5]  # nodes_latent.LatentBatch: each side's batch_index or range(n)


def test_seed_behavior(env):
    lat = latent(3, 4, 4, 4, batch_index=[4, 5, 6])
    assert run(env, "LatentBatchSeedBehavior", samples=lat, seed_behavior="fixed")["batch_index"] == [4, 4, 4]
    assert "batch_index" not in run(env, "LatentBatchSeedBehavior", samples=lat, seed_behavior="random")
    assert run(env, "LatentBatchSeedBehavior", samples=latent(2, 4, 4, 4), seed_behavior="fixed")["batch_index"] == [0, 0]
    # the sampler's noise follows batch_index (ComfyUI's prepare_noise): "fixed" gives every latent one noise
    from nodes.diffusion.sampling.noise import prepare_noise
    noise = prepare_noise(lat["samples"], 42, [4, 4, 4])
    assert torch.equal(noise[0], noise[2]) and torch.equal(noise[0], prepare_noise(lat["samples"], 42, [4, 5, 6])[0])


def test_repeat_latent_batch_repeats_masks_as_given(env):
    lat = latent(4, 4, 2, 2, noise_mask=torch.arange(3.0).reshape(3, 1, 1, 1).expand(3, 1, 16, 16))
    out = run(env, "RepeatLatentBatch", samples=lat, amount=2)
    assert out["samples"].shape[0] == 8
    # nodes.py: the masks are tiled to the batch into a variable that is then unused
    assert out["noise_mask"][:, 0, 0, 0].tolist() == [0, 1, 2, 0, 1, 2]


def comfy_rebatch(latents, batch_size):
    """nodes_rebatch.LatentRebatch.execute for latents of one size (its loop, flattened)."""
    samples, masks, index, processed = [], [], [], 0
    for lat in latents:
        s = lat["samples"]
        m = lat.get("noise_mask", torch.ones(s.shape[0], 1, s.shape[2] * 8, s.shape[3] * 8))
        if m.shape[0] < s.shape[0]:
            m = m.repeat((s.shape[0] - 1) // m.shape[0] + 1, 1, 1, 1)[:s.shape[0]]
        samples.append(s)
        masks.append(m)
        index += lat.get("batch_index", [x + processed for x in range(s.shape[0])])
        processed += s.shape[0]
    samples, masks = torch.cat(samples), torch.cat(masks)
    out = []
    for start in range(0, samples.shape[0], batch_size):
        b = {"samples": samples[start:start + batch_size], "noise_mask": masks[start:start + batch_size],
             "batch_index": index[start:start + batch_size]}
        if b["noise_mask"].mean() == 1.0:
            del b["noise_mask"]
        out.append(b)
    return out


def test_rebatch_latents(env):
    mask = torch.zeros(1, 1, 32, 32)
    latents = [latent(3, 4, 4, 4, seed=1), latent(2, 4, 4, 4, seed=2, noise_mask=mask), latent(1, 4, 4, 4, seed=3)]
    out = run(env, "RebatchLatents", latents=latents, batch_size=[4])
    expected = comfy_rebatch(latents, 4)
    assert len(out) == len(expected) == 2
    for got, want in zip(out, expected):
        assert got.keys() == want.keys() and got["batch_index"] == want["batch_index"]
        assert torch.equal(got["samples"], want["samples"])
        if "noise_mask" in want:
            assert torch.equal(got["noise_mask"], want["noise_mask"])
    assert out[0]["batch_index"] == [0, 1, 2, 3] and out[1]["batch_index"] == [4, 5]
    assert out[1]["noise_mask"][:, 0, 0, 0].tolist() == [0, 1]  # the masked latent's mask, then an all-ones one
    plain = run(env, "RebatchLatents", latents=[latent(3, 4, 4, 4)], batch_size=[2])
    assert [sorted(b) for b in plain] == [["batch_index", "samples"]] * 2  # all-ones masks are dropped
    # a latent of another size starts a new batch
    sizes = run(env, "RebatchLatents", latents=[latent(1, 4, 4, 4), latent(1, 4, 8, 8), latent(1, 4, 8, 8)], batch_size=[4])
    assert [b["samples"].shape[0] for b in sizes] == [1, 2]


def test_rebatch_in_a_workflow_runs_downstream_once_per_batch(env):
    workflow = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 5}},
                "2": {"class_type": "RebatchLatents", "inputs": {"latents": ["1", 0], "batch_size": 2}},
                "3": {"class_type": "LatentMultiply", "inputs": {"samples": ["2", 0], "multiplier": 2.0}},
                "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}}
    result = Executor(env).run(workflow)
    assert result.status == "success", result.errors
    assert [v["samples"].shape[0] for v in result.values["3"][0]] == [2, 2, 1]


# --- .latent files (nodes.py SaveLatent / LoadLatent) -------------------------------------------------

def test_save_latent_writes_comfyui_layout_and_load_reads_it(env):
    from nodegraph.node import Context
    lat = latent(2, 4, 8, 8, seed=11)
    ctx = Context(env, node_type="SaveLatent", workflow={"nodes": {}}, extra={"metadata_text": {"prompt": {"1": {}}}})
    env.registry.get("SaveLatent").cls().run(ctx, samples=lat, filename_prefix="latents/test")
    env.registry.get("SaveLatent").cls().run(ctx, samples=lat, filename_prefix="latents/test")
    assert [r["filename"] for r in ctx.ui["latents"]] == ["test_00001_.latent", "test_00002_.latent"]
    assert ctx.ui["latents"][0] == {"filename": "test_00001_.latent", "subfolder": "latents", "type": "output"}
    path = env.folders.output / "latents" / "test_00001_.latent"
    tensors = load_file(str(path))
    assert set(tensors) == {"latent_tensor", "latent_format_version_0"} and tensors["latent_format_version_0"].numel() == 0
    assert torch.equal(tensors["latent_tensor"], lat["samples"])
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        assert json.loads(f.metadata()["prompt"]) == {"1": {}}
    (env.folders.input / "new.latent").write_bytes(path.read_bytes())
    loaded = run(env, "LoadLatent", latent="new.latent")
    assert set(loaded) == {"samples"} and torch.equal(loaded["samples"], lat["samples"])


def test_load_latent_rescales_files_without_the_version_marker(env):
    old = torch.randn(1, 4, 8, 8)
    save_file({"latent_tensor": old.half()}, str(env.folders.input / "old.latent"))
    loaded = run(env, "LoadLatent", latent="old.latent")["samples"]
    assert loaded.dtype == torch.float32 and torch.allclose(loaded, old.half().float() * (1.0 / 0.18215))
    assert env.registry.get("LoadLatent").inputs[0].choices(env) == ["old.latent"]


def test_save_latent_refuses_prefixes_outside_the_output_folder(env):
    with pytest.raises(ValueError, match="filename_prefix"):
        run(env, "SaveLatent", samples=latent(1, 4, 2, 2), filename_prefix="../escape")
