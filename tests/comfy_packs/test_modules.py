"""The ComfyUI modules packs import, against ComfyUI 0.8's folder_paths.py, comfy/utils.py,
comfy/model_management.py and node_helpers.py."""
from __future__ import annotations

import pickle

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F

from nodegraph.node import Context, Interrupted, RunControl


@pytest.fixture
def comfy(comfy_env):
    import comfy.model_management
    import comfy.utils
    import folder_paths
    import node_helpers

    return folder_paths, comfy.utils, comfy.model_management, node_helpers


def test_folder_paths_answers_from_our_folders(comfy_env, comfy, tmp_path):
    folder_paths = comfy[0]
    (comfy_env.folders.models / "checkpoints" / "sub").mkdir(parents=True)
    (comfy_env.folders.models / "checkpoints" / "sub" / "b.safetensors").write_bytes(b"x")
    (comfy_env.folders.models / "checkpoints" / "a.ckpt").write_bytes(b"x")
    (comfy_env.folders.models / "checkpoints" / "notes.txt").write_text("not a model")
    listed = folder_paths.get_filename_list("checkpoints")
    assert {"a.ckpt", "sub/b.safetensors"} <= set(listed) and "notes.txt" not in listed
    assert listed == sorted(comfy_env.folders.list("checkpoints"))  # what our CheckpointLoaderSimple offers
    assert folder_paths.get_full_path("checkpoints", "sub/b.safetensors") == \
        str(comfy_env.folders.models / "checkpoints" / "sub" / "b.safetensors")
    assert folder_paths.get_full_path("checkpoints", "../../escape.ckpt") is None
    assert folder_paths.get_input_directory() == str(comfy_env.folders.input.resolve())
    assert folder_paths.models_dir == str(comfy_env.folders.models.resolve())
    assert folder_paths.get_annotated_filepath("x.png [output]") == str(comfy_env.folders.output.resolve() / "x.png")
    assert folder_paths.get_annotated_filepath("x.png") == str(comfy_env.folders.input.resolve() / "x.png")
    # a pack's own folder kind reaches our Folders, so our own loaders see it too
    extra = tmp_path / "luts"
    extra.mkdir()
    (extra / "warm.cube").write_text("LUT")
    folder_paths.add_model_folder_path("luts", str(extra))
    assert extra in comfy_env.folders.search_paths("luts")
    assert folder_paths.get_filename_list("luts") == ["warm.cube"]  # a new kind lists every file, as ComfyUI
    assert "luts" in folder_paths.folder_names_and_paths
    out = comfy_env.folders.output
    (out / "ComfyUI_00004_.png").write_bytes(b"")
    folder, name, counter, sub, _ = folder_paths.get_save_image_path("ComfyUI", str(out), 8, 8)
    assert (name, counter, sub) == ("ComfyUI", 5, "")
    with pytest.raises(ValueError):
        folder_paths.get_save_image_path("../outside", str(out))


def test_common_upscale_matches_torch(comfy):
    utils = comfy[1]
    x = torch.rand(2, 3, 5, 7)
    for method in ("nearest-exact", "bilinear", "area", "bicubic"):
        assert torch.equal(utils.common_upscale(x, 14, 10, method, "disabled"), F.interpolate(x, size=(10, 14), mode=method))
    cropped = utils.common_upscale(x, 5, 5, "nearest-exact", "center")  # 7 wide -> cut 1 each side, as ComfyUI
    assert torch.equal(cropped, x[..., :, 1:6])
    assert utils.common_upscale(x, 14, 10, "lanczos", "disabled").shape == (2, 3, 10, 14)
    same = utils.common_upscale(x, 7, 5, "bislerp", "disabled")
    assert torch.allclose(same, x, atol=1e-5)  # same size: every sample lands on itself


def test_tiled_scale_reassembles(comfy):
    utils = comfy[1]
    x = torch.rand(1, 3, 40, 50)
    up = utils.tiled_scale(x, lambda t: F.interpolate(t, scale_factor=2, mode="nearest"), tile_x=16, tile_y=16,
                           overlap=4, upscale_amount=2)
    assert torch.allclose(up, F.interpolate(x, scale_factor=2, mode="nearest"), atol=1e-6)
    assert utils.get_tiled_scale_steps(50, 40, 16, 16, 4) == 3 * 4  # ceil((40-4)/12) rows, ceil((50-4)/12) columns


def test_load_torch_file_is_weights_only(comfy, tmp_path):
    utils = comfy[1]
    sd = {"w": torch.arange(4.0)}
    safetensors.torch.save_file(sd, tmp_path / "m.safetensors", metadata={"format": "pt"})
    loaded, meta = utils.load_torch_file(str(tmp_path / "m.safetensors"), return_metadata=True)
    assert torch.equal(loaded["w"], sd["w"]) and meta == {"format": "pt"}
    torch.save({"state_dict": sd}, tmp_path / "m.ckpt")
    assert torch.equal(utils.load_torch_file(str(tmp_path / "m.ckpt"))["w"], sd["w"])

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"x": Payload()}))
    with pytest.raises(pickle.UnpicklingError):
        utils.load_torch_file(str(tmp_path / "evil.pt"), safe_load=False)


def test_model_management_follows_the_running_job(comfy_env, comfy):
    from nodegraph.comfy_compat import runtime

    mm = comfy[2]
    assert mm.get_torch_device() == comfy_env.devices.device
    assert mm.intermediate_device() == torch.device("cpu")
    control = RunControl()
    ctx = Context(comfy_env, node_id="7", control=control)
    with runtime.node_running(ctx, "pack"):
        assert not mm.processing_interrupted()
        mm.throw_exception_if_processing_interrupted()
        control.interrupt()
        assert mm.processing_interrupted()
        with pytest.raises(mm.InterruptProcessingException):
            mm.throw_exception_if_processing_interrupted()
    assert mm.InterruptProcessingException is Interrupted  # the executor treats it as an interrupt
    mm.load_models_gpu([object()])  # nothing to do: our device manager places models itself


def test_progress_bar_reports_through_the_node(comfy_env, comfy):
    from nodegraph.comfy_compat import runtime

    events = []
    ctx = Context(comfy_env, node_id="3", emit=lambda e, d: events.append((e, d)))
    with runtime.node_running(ctx, "pack"):
        bar = comfy[1].ProgressBar(4)
        bar.update(1)
        bar.update_absolute(9)  # clamped to the total, as ComfyUI
    assert [(d["value"], d["max"]) for _, d in events] == [(1, 4), (4, 4)]
    assert comfy[1].PROGRESS_BAR_ENABLED is True


def test_node_helpers(comfy):
    helpers = comfy[3]
    cond = [[torch.zeros(1), {"strength": 1.0}]]
    out = helpers.conditioning_set_values(cond, {"strength": 0.5}, append=True)
    assert out[0][1]["strength"] == 1.5 and cond[0][1]["strength"] == 1.0
    dest, src = helpers.image_alpha_fix(torch.zeros(1, 2, 2, 4), torch.ones(1, 2, 2, 3))
    assert dest.shape[-1] == 5 and bool((dest[..., -1] == 1).all())  # ComfyUI pads the destination
    assert helpers.string_to_torch_dtype("bf16") is torch.bfloat16


def test_torchvision_stand_in_only_while_packs_import(comfy):
    import sys

    from nodegraph.comfy_compat import torchvision_stand_in
    from nodegraph.comfy_compat.install import stand_ins

    with stand_ins():
        import torchvision.transforms.v2 as T

        image = T.ToPILImage()(torch.full((3, 2, 2), 0.5))
        assert image.size == (2, 2) and T.ToTensor()(image).shape == (3, 2, 2)
        with pytest.raises(AttributeError, match="torchvision is not installed"):
            T.ColorJitter
    if torchvision_stand_in.needed():
        assert "torchvision" not in sys.modules


def test_stand_in_gaussian_blur_is_a_normalised_separable_kernel():
    from nodegraph.comfy_compat.torchvision_stand_in import gaussian_blur

    flat = torch.full((1, 9, 9), 0.4)
    assert torch.allclose(gaussian_blur(flat, 5, 1.0), flat, atol=1e-6)  # weights sum to one, reflect padding
    dot = torch.zeros(1, 9, 9)
    dot[0, 4, 4] = 1.0
    blurred = gaussian_blur(dot, [5, 3], 1.0)
    assert abs(float(blurred.sum()) - 1.0) < 1e-6
    assert torch.allclose(blurred[0], blurred[0].flip(0)) and torch.allclose(blurred[0], blurred[0].flip(1))
    assert int((blurred[0, 4] > 0).sum()) == 5 and int((blurred[0, :, 4] > 0).sum()) == 3  # kernel_size is (x, y)
