"""VAE and latent nodes on a tiny random VAE (downscale 8, 4 latent channels, as SD)."""
from __future__ import annotations

import math

import pytest
import torch

from nodegraph.devices import ModelHandle
from nodegraph.executor import Executor
from nodegraph.validate import ValidationFailed
from nodegraph.images import bislerp, common_upscale
from nodes.diffusion.models import VAEModel
from tests.tiny_models import tiny_components
from tests.diffusion.nodecall import run


@pytest.fixture(scope="module")
def tiny_vae():
    vae = tiny_components("sd1", seed=11)["vae"]
    return ModelHandle(VAEModel(vae), "tiny-vae")




def latent(*shape, value=None):
    return {"samples": torch.randn(*shape) if value is None else torch.full(shape, float(value))}


# --- VAE -----------------------------------------------------------------------------------------

def test_encode_decode_shapes_and_crop(env, tiny_vae):
    pixels = torch.rand(2, 70, 53, 3)  # not multiples of 8: centre-cropped to 64x48
    lat = run(env, "VAEEncode", pixels=pixels, vae=tiny_vae)
    assert set(lat) == {"samples"} and lat["samples"].shape == (2, 4, 8, 6)
    with torch.no_grad():
        direct = tiny_vae.module.encode(pixels[:, 3:67, 2:50])
    assert torch.allclose(lat["samples"], direct, atol=1e-6)
    image = run(env, "VAEDecode", samples=lat, vae=tiny_vae)
    assert image.shape == (2, 64, 48, 3) and 0 <= image.min() and image.max() <= 1


def test_tiled_decode_and_encode_match_plain(env, tiny_vae):
    lat = latent(1, 4, 16, 24)
    plain = run(env, "VAEDecode", samples=lat, vae=tiny_vae)
    tiled = run(env, "VAEDecodeTiled", samples=lat, vae=tiny_vae, tile_size=64, overlap=32)
    assert tiled.shape == plain.shape == (1, 128, 192, 3)
    # tiles see other GroupNorm statistics and less context (as in ComfyUI): close, not equal
    assert torch.corrcoef(torch.stack([tiled.flatten(), plain.flatten()]))[0, 1] > 0.75
    one_tile = run(env, "VAEDecodeTiled", samples=lat, vae=tiny_vae, tile_size=512, overlap=64)
    assert torch.allclose(one_tile, plain, atol=1e-5)  # one tile covers it all: exact
    pixels = torch.rand(1, 128, 96, 3)
    enc = run(env, "VAEEncode", pixels=pixels, vae=tiny_vae)["samples"]
    enc_tiled = run(env, "VAEEncodeTiled", pixels=pixels, vae=tiny_vae, tile_size=64, overlap=32)["samples"]
    assert enc_tiled.shape == enc.shape == (1, 4, 16, 12)
    assert torch.corrcoef(torch.stack([enc_tiled.flatten(), enc.flatten()]))[0, 1] > 0.75
    enc_one = run(env, "VAEEncodeTiled", pixels=pixels, vae=tiny_vae, tile_size=512, overlap=64)["samples"]
    assert torch.allclose(enc_one, enc, atol=1e-5)


def test_tiling_blends_seams_exactly_for_local_functions():
    import torch.nn.functional as F
    from nodes.diffusion.vae_nodes import tiled
    x = torch.randn(2, 4, 16, 24)
    up = lambda t: F.interpolate(t[:, :3] * 2 + 1, scale_factor=8, mode="nearest")  # noqa: E731
    assert torch.allclose(tiled(up, x, 8, 4, 8, 3), up(x), atol=1e-5)
    pixels = torch.randn(2, 3, 128, 96)
    down = lambda t: F.avg_pool2d(t, 8)  # noqa: E731
    assert torch.allclose(tiled(down, pixels, 64, 32, 1 / 8, 3), down(pixels), atol=1e-5)


def test_encode_for_inpaint(env, tiny_vae):
    pixels = torch.rand(1, 64, 64, 3)
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:32, 16:32] = 1.0
    out = run(env, "VAEEncodeForInpaint", pixels=pixels, vae=tiny_vae, mask=mask, grow_mask_by=6)
    assert out["samples"].shape == (1, 4, 8, 8) and out["noise_mask"].shape == (1, 1, 64, 64)
    grown = out["noise_mask"][0, 0]
    assert grown[16:32, 16:32].eq(1).all() and grown[0, 0] == 0
    # a 6x6 kernel with ComfyUI's padding grows 2 px up/left and 3 px down/right
    assert [grown[r, 20].item() for r in (13, 14, 34, 35)] == [0, 1, 1, 0]
    greyed = pixels.clone()
    greyed[:, 16:32, 16:32] = 0.5
    with torch.no_grad():
        assert torch.allclose(out["samples"], tiny_vae.module.encode(greyed), atol=1e-6)
    none = run(env, "VAEEncodeForInpaint", pixels=pixels, vae=tiny_vae, mask=mask, grow_mask_by=0)
    assert torch.equal(none["noise_mask"][0, 0], mask[0])


# --- latents -------------------------------------------------------------------------------------

def test_empty_latent_image(env):
    out = run(env, "EmptyLatentImage", width=512, height=768, batch_size=3)
    assert out["samples"].shape == (3, 4, 96, 64) and out["samples"].abs().sum() == 0


@pytest.mark.parametrize("width, height", [(513, 512), (20000, 512), (8, 512)])
def test_empty_latent_rejects_bad_sizes(env, width, height):
    workflow = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
                "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    with pytest.raises(ValidationFailed, match="width"):
        Executor(env).run(workflow)


def test_latent_upscale(env):
    lat = latent(2, 4, 8, 16)
    assert run(env, "LatentUpscale", samples=lat, upscale_method="nearest-exact", width=0, height=0, crop="disabled") is lat
    out = run(env, "LatentUpscale", samples=lat, upscale_method="bilinear", width=256, height=128, crop="disabled")
    assert out["samples"].shape == (2, 4, 16, 32)
    keep_aspect = run(env, "LatentUpscale", samples=lat, upscale_method="bicubic", width=0, height=256, crop="disabled")
    assert keep_aspect["samples"].shape == (2, 4, 32, 64)
    cropped = run(env, "LatentUpscale", samples=lat, upscale_method="nearest-exact", width=64, height=64, crop="center")
    assert torch.equal(cropped["samples"], lat["samples"][..., 4:12])  # square centre crop, same size
    by = run(env, "LatentUpscaleBy", samples=lat, upscale_method="area", scale_by=1.5)
    assert by["samples"].shape == (2, 4, 12, 24)
    lat["noise_mask"] = torch.ones(1, 1, 64, 128)
    assert "noise_mask" in run(env, "LatentUpscaleBy", samples=lat, upscale_method="bislerp", scale_by=2.0)


def test_bislerp_properties():
    x = torch.randn(2, 4, 5, 7)
    assert torch.allclose(bislerp(x, 7, 5), x, atol=1e-5)  # same size: identity
    const = torch.randn(1, 4, 1, 1).expand(1, 4, 6, 6)
    up = bislerp(const, 13, 9)
    assert up.shape == (1, 4, 9, 13) and torch.allclose(up, const[..., :1, :1].expand(1, 4, 9, 13), atol=1e-5)
    # magnitudes interpolate linearly, directions spherically: the midpoint of orthogonal unit vectors has norm 1
    a = torch.zeros(1, 2, 1, 2)
    a[0, 0, 0, 0], a[0, 1, 0, 1] = 1.0, 1.0
    mid = bislerp(a, 4, 1)
    assert torch.allclose(mid.norm(dim=1), torch.ones(1, 1, 4), atol=1e-5)
    assert common_upscale(x, 14, 10, "bislerp", "disabled").shape == (2, 4, 10, 14)


def test_bislerp_edge_cases_as_comfyui():
    """ComfyUI 0.8's comfy/utils.py bislerp: where the two neighbours point the same way (dot > 1 - 1e-5)
    it takes the left one as it is, norm included; a zero neighbour has no direction (its unit vector
    is 0, so omega = pi/2). Width 2 -> 4 reads at x = 0, 0.25, 0.75, 1 (half-pixel centres, clamped)."""
    v = torch.tensor([3.0, 4.0])
    parallel = torch.stack([v, 2 * v], dim=-1).reshape(1, 2, 1, 2)
    out = bislerp(parallel, 4, 1)[0, :, 0].T
    assert torch.equal(out, torch.stack([v, v, v, 2 * v]))
    from_zero = torch.stack([torch.zeros(2), v], dim=-1).reshape(1, 2, 1, 2)
    out = bislerp(from_zero, 4, 1)[0, :, 0].T
    unit = v / 5
    for k, r in enumerate([0.0, 0.25, 0.75]):  # sin(r pi/2) * unit * (|v| r)
        assert torch.allclose(out[k], math.sin(r * math.pi / 2) * unit * 5 * r, atol=1e-6)
    assert torch.equal(out[3], v)


def test_latent_composite(env):
    to, src = latent(1, 4, 16, 16, value=0), latent(1, 4, 8, 8, value=1)
    out = run(env, "LatentComposite", samples_to=to, samples_from=src, x=32, y=64, feather=0)["samples"]
    assert out[0, 0, 8:16, 4:12].eq(1).all() and out.sum() == 4 * 64
    assert to["samples"].sum() == 0  # input untouched
    edge = run(env, "LatentComposite", samples_to=to, samples_from=latent(1, 4, 32, 32, value=1), x=120, y=0,
               feather=0)["samples"]
    assert edge[0, 0, :, 15:].eq(1).all() and edge[0, 0, :, :15].eq(0).all()  # clipped at the border
    feathered = run(env, "LatentComposite", samples_to=to, samples_from=src, x=32, y=32, feather=16)["samples"]
    inner = feathered[0, 0, 4:12, 4:12]
    assert inner[0, 4] == pytest.approx(0.5) and inner[1, 4] == pytest.approx(1.0) and inner[4, 4] == 1.0


def test_latent_blend(env):
    a, b = latent(1, 4, 8, 8, value=1), latent(1, 4, 8, 8, value=3)
    out = run(env, "LatentBlend", samples1=a, samples2=b, blend_factor=0.25)["samples"]
    assert torch.allclose(out, torch.full((1, 4, 8, 8), 0.25 * 1 + 0.75 * 3))
    resized = run(env, "LatentBlend", samples1=a, samples2=latent(1, 4, 4, 4, value=3), blend_factor=0.5)["samples"]
    assert resized.shape == (1, 4, 8, 8) and torch.allclose(resized, torch.full((1, 4, 8, 8), 2.0), atol=1e-5)


def test_noise_mask_and_batches(env):
    lat = latent(2, 4, 8, 8)
    masked = run(env, "SetLatentNoiseMask", samples=lat, mask=torch.ones(2, 64, 64))
    assert masked["noise_mask"].shape == (2, 1, 64, 64) and "noise_mask" not in lat
    rep = run(env, "RepeatLatentBatch", samples=masked, amount=3)
    assert rep["samples"].shape == (6, 4, 8, 8) and rep["noise_mask"].shape == (6, 1, 64, 64)
    assert torch.equal(rep["samples"][2:4], lat["samples"])
    picked = run(env, "LatentFromBatch", samples=rep, batch_index=3, length=2)
    assert picked["samples"].shape == (2, 4, 8, 8) and picked["batch_index"] == [3, 4]
    assert torch.equal(picked["samples"][0], lat["samples"][1])
    again = run(env, "RepeatLatentBatch", samples=picked, amount=2)
    assert again["batch_index"] == [3, 4, 5, 6]
    clamped = run(env, "LatentFromBatch", samples=lat, batch_index=10, length=5)
    assert clamped["samples"].shape == (1, 4, 8, 8) and clamped["batch_index"] == [1]
