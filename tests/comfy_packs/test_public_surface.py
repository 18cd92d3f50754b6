"""The names popular public packs reach for beyond the basics (found by bench/comfy_packs_try.py),
through the test pack public_like/public_surface. Expected behaviour: ComfyUI 0.8's comfy/utils.py
(common_upscale, state_dict_prefix_replace, set_attr/get_attr), comfy/comfy_types/node_typing.py (IO),
comfy/k_diffusion/utils.py (FolderOfImages), server.py (BinaryEventTypes and send_sync of preview
images, app routes) and execution.py (PromptQueue.currently_running tuples)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from nodegraph.registry import default_registry

PUBLIC_LIKE = Path(__file__).parent / "public_like"


@pytest.fixture(scope="module")
def registry():
    return default_registry(PUBLIC_LIKE)


@pytest.fixture
def env(tmp_path, registry):
    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir()
    return Environment(registry=registry, folders=Folders(tmp_path))


def L(node, output=0):
    return {"node": node, "output": output}


def run(env, nodes, outputs=None):
    events = []
    result = Executor(env).run({"version": 1, "nodes": nodes}, outputs=outputs,
                               on_event=lambda e, d: events.append((e, d)))
    return result, events


def test_the_pack_imports_with_every_node(registry):
    assert [p.message for p in registry.problems] == []
    assert {"PublicResize", "PublicPreview", "PublicQueueInfo", "PublicRequeue", "PublicFolderCount"} <= set(registry.specs)
    assert registry.specs["PublicResize"].input_by_name["image"].type.name == "IMAGE"  # IO.IMAGE is "IMAGE"


def test_common_upscale_takes_comfyuis_keyword_names(env):
    result, _ = run(env, {
        "img": {"type": "EmptyImage", "inputs": {"width": 4, "height": 3, "batch_size": 1, "color": 0x3366CC}},
        "big": {"type": "PublicResize", "inputs": {"image": L("img"), "width": 8, "height": 6}},
        "show": {"type": "PreviewAny", "inputs": {"source": L("big")}}})
    assert result.status == "success", result.errors
    image = result.value("img")
    expected = F.interpolate(image.movedim(-1, 1), size=(6, 8), mode="bilinear").movedim(1, -1)
    assert torch.allclose(result.value("big"), expected)


def test_a_core_node_subclass_may_add_an_output(env):
    result, _ = run(env, {
        "img": {"type": "EmptyImage", "inputs": {"width": 4, "height": 3, "batch_size": 1, "color": 0x3366CC}},
        "inv": {"type": "PublicInvertWithNote", "inputs": {"image": L("img")}},
        "show": {"type": "PreviewAny", "inputs": {"source": L("inv", 1)}}})
    assert result.status == "success", result.errors
    assert torch.equal(result.value("inv"), 1.0 - result.value("img")) and result.value("inv", 1) == "inverted"


def test_int_widgets_declared_with_float_defaults_run_with_ints(env, registry):
    spec = registry.specs["PublicStep"]
    assert spec.input_by_name["start"].default == 1 and type(spec.input_by_name["start"].default) is int
    assert type(spec.input_by_name["scale"].default) is float
    result, _ = run(env, {"s": {"type": "PublicStep", "inputs": {}},
                          "show": {"type": "PreviewAny", "inputs": {"source": L("s")}}})
    assert result.status == "success", result.errors
    assert result.value("s") == 2 and type(result.value("s")) is int and result.value("s", 1) == 3.0


def test_the_input_directory_is_made_when_missing(registry, tmp_path):
    import folder_paths

    from nodegraph.comfy_compat import runtime

    env = SimpleNamespace(folders=Folders(tmp_path / "fresh"))
    with runtime.using_env(env):
        made = folder_paths.get_input_directory()  # ComfyUI's folder_paths makes it at import
    assert Path(made).is_dir() and Path(made) == (tmp_path / "fresh" / "input").resolve()


def test_comfy_extras_node_modules_answer_with_our_nodes(env, registry):
    import comfy_extras

    result, _ = run(env, {
        "dst": {"type": "EmptyImage", "inputs": {"width": 6, "height": 4, "batch_size": 1, "color": 0}},
        "src": {"type": "EmptyImage", "inputs": {"width": 2, "height": 2, "batch_size": 1, "color": 0x00FF00}},
        "c": {"type": "PublicComposite", "inputs": {"destination": L("dst"), "source": L("src"), "x": 1, "y": 1,
                                                    "resize_source": False}},
        "show": {"type": "PreviewAny", "inputs": {"source": L("c")}}})
    assert result.status == "success", result.errors
    out = result.value("c")
    assert out[0, 1, 1, 1] == 1.0 and out[0, 0, 0, 1] == 0.0 and out[0, 2, 2, 1] == 1.0 and out[0, 3, 3, 1] == 0.0
    with pytest.raises(AttributeError, match="uses comfy_extras.nodes_custom_sampler.Noise_NotANode"):
        comfy_extras.nodes_custom_sampler.Noise_NotANode
    with pytest.raises(ImportError):  # a module ComfyUI 0.8 does not have stays missing
        import comfy_extras.nodes_that_never_were  # noqa: F401


def test_what_a_node_without_outputs_returns_is_ignored(env, registry):
    result, _ = run(env, {"r": {"type": "PublicRemember", "inputs": {"text": "k:v"}}})
    assert result.status == "success", result.errors
    assert sys.modules[registry.specs["PublicRemember"].cls.__module__].PublicRemember.SEEN[-1] == "k:v"


def test_an_always_equal_any_type_is_a_link_of_any_type(env, registry):
    spec = registry.specs["PublicPassAny"]
    assert spec.input_by_name["value"].type.name == "*" and not spec.input_by_name["value"].is_widget  # not COMBO
    assert spec.outputs[0].type.name == "*"
    result, _ = run(env, {
        "img": {"type": "EmptyImage", "inputs": {"width": 3, "height": 2, "batch_size": 1, "color": 0}},
        "p": {"type": "PublicPassAny", "inputs": {"value": L("img")}},
        "inv": {"type": "ImageInvert", "inputs": {"image": L("p")}},
        "show": {"type": "PreviewAny", "inputs": {"source": L("inv")}}})
    assert result.status == "success", result.errors
    assert torch.equal(result.value("inv"), 1.0 - result.value("img"))


def test_core_scaling_classes_carry_their_method_lists(registry):
    """rgthree's Image Resize reads nodes.ImageScale.upscale_methods; lists as ComfyUI 0.8's nodes.py."""
    import nodes

    assert nodes.ImageScale.upscale_methods == ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
    assert nodes.ImageScale.crop_methods == ["disabled", "center"]
    assert nodes.ImageScaleBy.upscale_methods == nodes.ImageScale.upscale_methods
    if "LatentUpscale" in registry:  # the diffusion pack's
        assert nodes.LatentUpscale.upscale_methods == ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]


def test_binary_preview_events_become_the_nodes_previews(env):
    result, events = run(env, {
        "img": {"type": "EmptyImage", "inputs": {"width": 5, "height": 4, "batch_size": 1, "color": 0xFF0000}},
        "pv": {"type": "PublicPreview", "inputs": {"image": L("img")}}})
    assert result.status == "success", result.errors
    previews = [d for e, d in events if e == "preview"]
    assert [(p["node"], p["image_format"]) for p in previews] == [("pv", "JPEG"), ("pv", "PNG")]
    for p in previews:
        assert isinstance(p["image"], Image.Image) and p["image"].size == (5, 4)
        assert p["image"].convert("RGB").getpixel((2, 2))[0] > 240


def test_prompt_queue_shows_the_running_job_and_refuses_changes(env):
    result, _ = run(env, {"q": {"type": "PublicQueueInfo", "inputs": {"tag": "t"}},
                          "show": {"type": "PreviewAny", "inputs": {"source": L("q", 2)}}})
    assert result.status == "success", result.errors
    remaining, prompt_id, kinds = (result.value("q", i) for i in range(3))
    assert remaining == 1 and prompt_id == result.job_id and kinds == "PreviewAny,PublicQueueInfo"
    result, _ = run(env, {"r": {"type": "PublicRequeue", "inputs": {}}})
    [error] = result.errors
    assert error["exception_type"].endswith("UnsupportedComfyFeature")
    assert "pack 'public_surface' uses server.PromptServer.instance.prompt_queue.put" in error["exception_message"]


def test_folder_of_images_lists_images_recursively(env, tmp_path):
    folder = tmp_path / "frames"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.png", "sub/a.JPG", "notes.txt"):
        Image.new("RGB", (2, 2)).save(folder / name, format="PNG") if name != "notes.txt" else (folder / name).write_text("x")
    result, _ = run(env, {"c": {"type": "PublicFolderCount", "inputs": {"folder": str(folder)}},
                          "show": {"type": "PreviewAny", "inputs": {"source": L("c")}}})
    assert result.status == "success", result.errors
    assert result.value("c") == 2
    from comfy.k_diffusion.utils import FolderOfImages

    listed = FolderOfImages(folder)
    assert [p.name for p in listed.paths] == ["b.png", "a.JPG"] and listed[0][0].mode == "RGB"


def test_app_routes_and_static_folders_are_mounted(env, registry):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from nodegraph import comfy_compat

    app = Starlette()
    comfy_compat.mount_routes(app, SimpleNamespace(env=env, hub=None))
    client = TestClient(app)
    for prefix in ("", "/api"):
        assert client.get(prefix + "/public_surface/count").json() == {"count": 3}
        static = client.get(prefix + "/public_surface_static/hello.js")
        assert static.status_code == 200 and "static folder" in static.text
        assert client.get(prefix + "/web_only/ping").json() == {"pong": True}


def test_a_pack_with_only_a_web_folder_is_a_comfyui_pack(registry):
    [load] = [load for load in registry.loads if load.name == "web_only"]
    assert (load.kind, load.nodes, load.failed) == ("comfyui", 0, False)  # `server` was importable for it
    assert registry.web_directories["web_only"] == (PUBLIC_LIKE / "web_only" / "web").resolve()


def test_comfy_utils_state_dict_and_attribute_helpers(registry):
    import comfy.utils

    sd = {"model.a": 1, "model.b.c": 2, "other": 3}
    assert comfy.utils.state_dict_prefix_replace(sd, {"model.": "m."}) is sd  # in place, as ComfyUI
    assert sd == {"m.a": 1, "m.b.c": 2, "other": 3}
    filtered = comfy.utils.state_dict_prefix_replace({"x.1": 1, "y": 2}, {"x.": ""}, filter_keys=True)
    assert filtered == {"1": 1}
    net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    old = comfy.utils.set_attr(net, "0.bias", torch.nn.Parameter(torch.zeros(2)))
    assert comfy.utils.get_attr(net, "0.bias").sum() == 0 and old.shape == (2,)
    comfy.utils.set_attr_param(net, "0.weight", torch.ones(2, 2))
    assert isinstance(net[0].weight, torch.nn.Parameter) and not net[0].weight.requires_grad


def test_io_compares_as_comfyui_does(registry):
    from comfy.comfy_types.node_typing import IO

    assert IO.IMAGE == "IMAGE" and str(IO.ANY) == "*" and {IO.MASK: 1}["MASK"] == 1
    assert not (IO.ANY != "LATENT") and not (IO.NUMBER != "INT") and not (IO.INT != "FLOAT,INT")
    assert IO.IMAGE != "MASK" and IO.IMAGE != 3


def test_model_management_names(registry):
    import comfy.model_management as mm

    x = torch.ones(2, dtype=torch.float32)
    assert mm.cast_to(x) is x and mm.cast_to(x, dtype=torch.float16).dtype == torch.float16
    assert mm.should_use_fp16(torch.device("cpu")) is False and mm.is_directml_enabled() is False
    assert issubclass(mm.OOM_EXCEPTION, Exception)


def test_torchvision_stand_in_answers_find_spec_and_io():
    from nodegraph.comfy_compat import torchvision_stand_in

    modules = torchvision_stand_in.build()
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        assert importlib.util.find_spec("torchvision") is not None  # no ValueError for a spec-less module
        from torchvision import io  # transformers imports it when it sees torchvision

        with pytest.raises(AttributeError, match="uses torchvision.io.read_video, which torchvision is not installed"):
            io.read_video
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def test_torchvision_stand_in_masks_to_boxes_and_grayscale():
    """masquerade-nodes imports torchvision.ops.masks_to_boxes and TF.rgb_to_grayscale; expected values
    from torchvision's definitions (box of the non-zero pixels, inclusive; ITU-R 601-2 luma)."""
    from nodegraph.comfy_compat import torchvision_stand_in as tv

    masks = torch.zeros(2, 5, 6)
    masks[0, 1:3, 2:5] = 1
    masks[1, 4, 0] = 0.5
    assert tv.masks_to_boxes(masks).tolist() == [[2.0, 1.0, 4.0, 2.0], [0.0, 4.0, 0.0, 4.0]]
    assert tv.masks_to_boxes(torch.zeros(0, 3, 3)).shape == (0, 4)
    rgb = torch.tensor([1.0, 0.5, 0.25]).view(3, 1, 1).expand(3, 2, 2)
    grey = tv.rgb_to_grayscale(rgb)
    assert grey.shape == (1, 2, 2) and torch.allclose(grey, torch.tensor(0.2989 + 0.2935 + 0.0285))
    assert tv.rgb_to_grayscale(rgb, num_output_channels=3).shape == (3, 2, 2)
    as_bytes = tv.rgb_to_grayscale((rgb * 255).to(torch.uint8))
    assert as_bytes.dtype == torch.uint8 and int(as_bytes[0, 0, 0]) == round(0.2989 * 255 + 0.587 * 127 + 0.114 * 63)


def test_torchvision_stand_in_box_operations():
    """segment_anything (the Impact Pack imports it) takes batched_nms and box_area from
    torchvision.ops.boxes; expected values worked out by hand from torchvision's definitions."""
    from nodegraph.comfy_compat import torchvision_stand_in as tv

    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert tv.box_area(boxes).tolist() == [100.0, 100.0, 100.0, 100.0]
    assert torch.allclose(tv.box_iou(boxes[:1], boxes[1:2]), torch.tensor([[81 / 119]]))
    assert tv.nms(boxes, scores, 0.5).tolist() == [3, 2]  # 0 and 1 overlap 3 (IoU 1 and 81/119)
    assert tv.nms(boxes, scores, 0.7).tolist() == [3, 1, 2]  # 81/119 = 0.68 is kept at 0.7
    assert tv.batched_nms(boxes, scores, torch.tensor([0, 0, 0, 1]), 0.5).tolist() == [3, 0, 2]
    assert tv.batched_nms(boxes[:0], scores[:0], torch.tensor([], dtype=torch.int64), 0.5).shape == (0,)


def test_custom_sampler_noise_objects(registry):
    """The Impact Pack imports Noise_RandomNoise from comfy_extras.nodes_custom_sampler: ComfyUI's
    RandomNoise draws comfy.sample.prepare_noise(latent, seed, batch_index); DisableNoise gives zeros."""
    import comfy.sample
    from comfy_extras.nodes_custom_sampler import Noise_EmptyNoise, Noise_RandomNoise

    latent = {"samples": torch.zeros(2, 4, 3, 5)}
    noise = Noise_RandomNoise(42).generate_noise(latent)
    assert torch.equal(noise, comfy.sample.prepare_noise(latent["samples"], 42, None)) and noise.std() > 0.5
    assert Noise_RandomNoise(42).seed == 42
    assert torch.equal(Noise_EmptyNoise().generate_noise(latent), torch.zeros(2, 4, 3, 5))
