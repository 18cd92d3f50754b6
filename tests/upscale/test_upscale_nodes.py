"""UpscaleModelLoader + ImageUpscaleWithModel with tiny random models of several spandrel architectures."""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from nodegraph import ModelFileError
from nodegraph.devices import DeviceManager
from nodegraph.folders import FolderError
from nodegraph.node import Context, Interrupted, RunControl
from nodes.upscale import nodes as upscale_nodes
from nodes.upscale.loading import UpscaleModelError
from nodes.upscale.tiling import tile_count, tile_starts, tiled_apply
from tests.upscale import models


def call(env, name, events=None, **inputs):
    emit = (lambda kind, data: events.append((kind, data))) if events is not None else None
    ctx = Context(env, node_type=name, emit=emit)
    return env.registry.get(name).cls().run(ctx, **inputs)


def save(env, name: str, state_dict: dict, torch_format: bool = False) -> str:
    folder = env.folders.models / "upscale_models"
    folder.mkdir(exist_ok=True)
    if torch_format:
        torch.save(state_dict, folder / name)
    else:
        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(folder / name))
    return name


def image(h: int, w: int, seed: int = 0, channels: int = 3) -> torch.Tensor:
    """A smooth test picture [1, h, w, C] with some edges."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, channels, max(2, h // 8), max(2, w // 8), generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).movedim(1, -1).contiguous()


# --- loading several architectures ---------------------------------------------------------------
@pytest.mark.parametrize("name, build, arch, scale", [
    ("esrgan-old-x4.pth", lambda: models.esrgan_old(scale=4), "ESRGAN", 4),
    ("esrgan-old-x2.safetensors", lambda: models.esrgan_old(scale=2), "ESRGAN", 2),
    ("compact-x2.safetensors", models.compact, "RealESRGAN Compact", 2),
    ("span-x2.safetensors", models.span, "SPAN", 2),
    ("swinir-x2.pth", lambda: {f"module.{k}": v for k, v in models.swinir().items()}, "SwinIR", 2),
])
def test_architectures_load_and_upscale_to_the_right_size(env, name, build, arch, scale):
    save(env, name, build(), torch_format=name.endswith(".pth"))
    handle = call(env, "UpscaleModelLoader", model_name=name)
    assert handle.info["architecture"] == arch and handle.info["scale"] == scale
    assert handle.info["input_channels"] == handle.info["output_channels"] == 3
    out = call(env, "ImageUpscaleWithModel", upscale_model=handle, image=image(21, 34))
    assert out.shape == (1, 21 * scale, 34 * scale, 3) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1 and out.std() > 0


@pytest.mark.parametrize("scale", [4, 2])
def test_real_esrgan_layout_matches_an_independent_forward(env, scale):
    """BasicSR keys (params_ema beside params, as its training saves them) map onto spandrel's ESRGAN."""
    net = models.esrgan_new(scale=scale)
    junk = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}  # the non-EMA weights must be ignored
    save(env, "realesrgan.pth", {"params_ema": net.state_dict(), "params": junk}, torch_format=True)
    handle = call(env, "UpscaleModelLoader", model_name="realesrgan.pth")
    assert (handle.info["architecture"], handle.info["scale"]) == ("ESRGAN", scale)
    x = image(24, 20, seed=3)
    out = call(env, "ImageUpscaleWithModel", upscale_model=handle, image=x)
    with torch.no_grad():
        expected = net(x.movedim(-1, 1)).clamp(0, 1).movedim(1, -1)
    assert out.shape == expected.shape == (1, 24 * scale, 20 * scale, 3)
    assert torch.allclose(out, expected, atol=1e-5)
    assert expected.std() > 0.01


def test_loader_is_cached_and_reloads_when_the_file_changes(env):
    save(env, "m.safetensors", models.esrgan_old(scale=2))
    first = call(env, "UpscaleModelLoader", model_name="m.safetensors")
    assert call(env, "UpscaleModelLoader", model_name="m.safetensors") is first
    fingerprint = env.registry.get("UpscaleModelLoader").cls.fingerprint(env, model_name="m.safetensors")
    save(env, "m.safetensors", models.esrgan_old(scale=4, seed=5))
    assert env.registry.get("UpscaleModelLoader").cls.fingerprint(env, model_name="m.safetensors") != fingerprint
    second = call(env, "UpscaleModelLoader", model_name="m.safetensors")
    assert second is not first and second.info["scale"] == 4


# --- tiling --------------------------------------------------------------------------------------
def test_tile_starts_cover_the_axis_with_the_overlap():
    assert tile_starts(100, 512, 32) == [0]
    for size, tile, overlap in [(1000, 512, 32), (513, 512, 32), (300, 128, 32), (129, 128, 32)]:
        starts = tile_starts(size, tile, overlap)
        assert starts[0] == 0 and starts[-1] == size - tile
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))  # neighbours share >= overlap
    assert tile_starts(1000, 512, 32) == [0, 244, 488]  # two would share only 24 px
    assert tile_count(1000, 300, 512, 32) == 3 * 1


def test_tiling_a_pointwise_model_is_exact():
    x = torch.rand(1, 3, 150, 97)
    fn = lambda t: F.interpolate(t, scale_factor=3, mode="nearest")  # noqa: E731
    tiled = tiled_apply(x, fn, 3, tile=40, overlap=8, out_channels=3)
    assert torch.allclose(tiled, fn(x), atol=1e-6)


def test_tiled_equals_untiled_within_tolerance(env, monkeypatch):
    save(env, "m.safetensors", models.esrgan_old(scale=2))
    handle = call(env, "UpscaleModelLoader", model_name="m.safetensors")
    x = image(150, 110, seed=7)
    whole = call(env, "ImageUpscaleWithModel", upscale_model=handle, image=x)
    monkeypatch.setattr(upscale_nodes, "TILE", 64)
    events = []
    tiled = call(env, "ImageUpscaleWithModel", events=events, upscale_model=handle, image=x)
    tiles = tile_count(150, 110, 64, upscale_nodes.OVERLAP)
    assert tiles == 4 * 3
    assert [d["value"] for k, d in events if k == "progress"] == list(range(1, tiles + 1))  # progress per tile
    diff = (tiled - whole).abs()
    assert whole.std() > 0.02
    assert diff.mean() < 1e-4 and diff.max() < 5e-3, (diff.mean(), diff.max())  # measured 3e-6 and 1.4e-4


def test_interrupt_stops_between_tiles(env, monkeypatch):
    save(env, "m.safetensors", models.esrgan_old(scale=2))
    handle = call(env, "UpscaleModelLoader", model_name="m.safetensors")
    monkeypatch.setattr(upscale_nodes, "TILE", 64)
    control = RunControl()
    events = []

    def emit(kind, data):
        events.append(kind)
        control.interrupt()  # after the first tile

    ctx = Context(env, node_type="ImageUpscaleWithModel", emit=emit, control=control)
    with pytest.raises(Interrupted):
        upscale_nodes.ImageUpscaleWithModel().run(ctx, upscale_model=handle, image=image(150, 110))
    assert events == ["progress"]


def test_out_of_memory_halves_the_tile_down_to_128(env, monkeypatch):
    save(env, "m.safetensors", models.esrgan_old(scale=2))
    handle = call(env, "UpscaleModelLoader", model_name="m.safetensors")
    tried = []
    real = upscale_nodes.upscale_batch

    def flaky(ctx, h, x, tile):
        tried.append(tile)
        if tile > 128:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(ctx, h, x, tile)

    monkeypatch.setattr(upscale_nodes, "upscale_batch", flaky)
    events = []
    out = call(env, "ImageUpscaleWithModel", events=events, upscale_model=handle, image=image(40, 40))
    assert tried == [512, 256, 128] and out.shape == (1, 80, 80, 3)
    assert sum(1 for k, _ in events if k == "warning") == 2
    monkeypatch.setattr(upscale_nodes, "upscale_batch", lambda *a: (_ for _ in ()).throw(torch.OutOfMemoryError("oom")))
    with pytest.raises(torch.OutOfMemoryError):
        call(env, "ImageUpscaleWithModel", upscale_model=handle, image=image(40, 40))


# --- channels, batches, dtype -----------------------------------------------------------------------
def test_batches_alpha_and_grey_images(env):
    save(env, "m.safetensors", models.esrgan_old(scale=2))
    handle = call(env, "UpscaleModelLoader", model_name="m.safetensors")
    batch = torch.cat([image(16, 12, seed=1), image(16, 12, seed=2)])
    out = call(env, "ImageUpscaleWithModel", upscale_model=handle, image=batch)
    single = call(env, "ImageUpscaleWithModel", upscale_model=handle, image=batch[1:])
    assert out.shape == (2, 32, 24, 3) and torch.allclose(out[1:], single, atol=1e-6)
    rgba = torch.cat([batch[:1], torch.full((1, 16, 12, 1), 0.25)], dim=-1)
    out = call(env, "ImageUpscaleWithModel", upscale_model=handle, image=rgba)
    assert out.shape == (1, 32, 24, 4) and torch.allclose(out[..., 3], torch.tensor(0.25))
    first = call(env, "ImageUpscaleWithModel", upscale_model=handle, image=batch[:1])
    assert torch.allclose(out[..., :3], first)  # the colour goes through the model as without alpha
    grey = call(env, "ImageUpscaleWithModel", upscale_model=handle, image=batch[:1, ..., :1])
    assert grey.shape == (1, 32, 24, 3)


def test_upscalers_compute_in_float32_even_under_a_bf16_manager(tmp_path, builtin_registry):
    from nodegraph.environment import Environment
    from nodegraph.folders import Folders

    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir()
    env = Environment(registry=builtin_registry, folders=Folders(tmp_path),
                      devices=DeviceManager(device="cpu", dtype=torch.bfloat16))
    save(env, "m.safetensors", models.esrgan_old(scale=2))
    handle = call(env, "UpscaleModelLoader", model_name="m.safetensors")
    assert handle.dtype == torch.float32
    out = call(env, "ImageUpscaleWithModel", upscale_model=handle, image=image(16, 16))
    assert out.dtype == torch.float32 and out.shape == (1, 32, 32, 3)
    assert next(handle.module.parameters()).dtype == torch.float32


# --- bad files -------------------------------------------------------------------------------------
def test_missing_file_names_the_folder(env):
    with pytest.raises(FolderError, match="upscale_models file 'nope.pth' not found"):
        call(env, "UpscaleModelLoader", model_name="nope.pth")


def test_garbage_and_truncated_files_give_clear_errors(env):
    folder = env.folders.models / "upscale_models"
    folder.mkdir()
    (folder / "garbage.pth").write_bytes(b"this is not a torch file" * 10)
    with pytest.raises(ModelFileError, match=r"garbage.pth: cannot be read with torch.load\(weights_only=True\)"):
        call(env, "UpscaleModelLoader", model_name="garbage.pth")
    save(env, "good.safetensors", models.compact())
    data = (folder / "good.safetensors").read_bytes()
    (folder / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="cut.safetensors: not a readable safetensors file"):
        call(env, "UpscaleModelLoader", model_name="cut.safetensors")


class Pickled:  # an object that torch.load(weights_only=True) must refuse to rebuild
    pass


def test_pickled_code_is_refused(env):
    save(env, "evil.pth", {"model": Pickled(), "w": torch.zeros(1)}, torch_format=True)
    with pytest.raises(ModelFileError, match="evil.pth: .*weights_only"):
        call(env, "UpscaleModelLoader", model_name="evil.pth")


def test_unknown_architecture_and_wrong_shapes(env):
    save(env, "mystery.safetensors", {"encoder.layer.0.weight": torch.zeros(4, 4)})
    with pytest.raises(UpscaleModelError, match="mystery.safetensors: spandrel .* does not recognise"):
        call(env, "UpscaleModelLoader", model_name="mystery.safetensors")
    broken = models.esrgan_old(scale=2)
    broken["model.1.sub.0.RDB1.conv2.0.weight"] = torch.zeros(5, 5, 3, 3)
    save(env, "broken.safetensors", broken)
    with pytest.raises(UpscaleModelError, match="broken.safetensors: detected as ESRGAN but its weights do not fit"):
        call(env, "UpscaleModelLoader", model_name="broken.safetensors")
    save(env, "empty.pth", {"epoch": 3, "note": "no weights"}, torch_format=True)
    with pytest.raises(ModelFileError, match="empty.pth: the file contains no weight tensors"):
        call(env, "UpscaleModelLoader", model_name="empty.pth")


def test_image_plus_mask_models_are_refused(env, monkeypatch):
    """An architecture spandrel loads as a MaskedImageModelDescriptor (LaMa, MAT) is not an upscaler."""
    spandrel = models.import_spandrel()

    class Inpainter(spandrel.Architecture):
        def __init__(self):
            super().__init__(id="TinyInpaint", detect=lambda sd: set(sd) == {"weight", "bias"} and sd["weight"].shape[1] == 4)

        def load(self, state_dict):
            conv = torch.nn.Conv2d(4, 3, 1)
            return spandrel.MaskedImageModelDescriptor(conv, state_dict, architecture=self, purpose="Inpainting",
                                                       tags=[], supports_half=True, supports_bfloat16=True,
                                                       input_channels=3, output_channels=3)

    registry = spandrel.MAIN_REGISTRY.copy()
    registry.add(spandrel.ArchSupport.from_architecture(Inpainter()))
    monkeypatch.setattr(spandrel, "MAIN_REGISTRY", registry)
    save(env, "lama-like.safetensors", {"weight": torch.zeros(3, 4, 1, 1), "bias": torch.zeros(3)})
    with pytest.raises(UpscaleModelError, match="lama-like.safetensors: TinyInpaint is not an image-to-image model: "
                                                "it takes an image and a mask"):
        call(env, "UpscaleModelLoader", model_name="lama-like.safetensors")


def test_wrong_inputs_to_the_upscaler(env):
    with pytest.raises(ValueError, match="upscale_model: expected a model from UpscaleModelLoader"):
        call(env, "ImageUpscaleWithModel", upscale_model=object(), image=image(8, 8))
    save(env, "m.safetensors", models.esrgan_old(scale=2))
    handle = call(env, "UpscaleModelLoader", model_name="m.safetensors")
    with pytest.raises(ValueError, match="image: 2 channels cannot feed this upscale model, which takes 3"):
        call(env, "ImageUpscaleWithModel", upscale_model=handle, image=torch.rand(1, 8, 8, 2))
