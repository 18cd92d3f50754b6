"""The names KJNodes and the Impact Pack import (bench/comfy_packs_try.py found them), through the test pack
public_like/finish_surface. Expected behaviour: ComfyUI 0.8's comfy/cli_args.py (defaults, LatentPreviewMethod),
comfy/patcher_extension.py (kind names), comfy/sampler_helpers.py + comfy/utils.py (prepare_mask /
reshape_mask), comfy_extras/nodes_mask.py (composite, as ImageCompositeMasked calls it),
comfy/ldm/modules/attention.py (attention_pytorch, wrap_attn), comfy/ldm/flux/math.py (apply_rope),
latent_preview.py (Latent2RGBPreviewer), server.py (add_on_prompt_handler / trigger_on_prompt),
comfy_api/latest/_util/video_types.py, and torchvision's center_crop."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import torch

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from nodegraph.registry import default_registry
from tests.server.conftest import ServerThread

PACK = Path(__file__).parent / "public_like" / "finish_surface"


@pytest.fixture(scope="module")
def registry():
    return default_registry(PACK.parent)  # the public_like packs folder


@pytest.fixture
def env(tmp_path, registry):
    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir()
    return Environment(registry=registry, folders=Folders(tmp_path))


def L(node, output=0):
    return {"node": node, "output": output}


def run(env, nodes, extra=None):
    result = Executor(env).run({"version": 1, "nodes": nodes}, extra=extra)
    assert result.status == "success", result.errors
    return result


def gradient(w: int, h: int, color: int) -> dict:
    return {"type": "EmptyImage", "inputs": {"width": w, "height": h, "batch_size": 1, "color": color}}


def test_the_pack_imports_with_every_node(registry):
    assert [p.message for p in registry.problems] == []
    assert {"FinishCenterCrop", "FinishComposite", "FinishArgs", "FinishVideoSchema"} <= set(registry.specs)


def test_comfyui_folder_is_the_base_path_not_nodegraphs_package(registry):
    # packs take dirname(folder_paths.__file__) as ComfyUI's folder (BadCafeCode's demo copies its JS into
    # web/extensions there): the folders' base path, as folder_paths.base_path, never nodegraph's package
    import folder_paths
    import nodegraph

    comfy_path = Path(sys.modules["nodegraph_plugins.finish_surface"].COMFY_PATH)
    assert comfy_path == Path(folder_paths.base_path)
    assert Path(nodegraph.__file__).parent not in (comfy_path, *comfy_path.parents)


def test_center_crop_takes_the_middle_and_pads_with_zeros(env):
    stand_in = sys.modules["nodegraph.comfy_compat.torchvision_stand_in"]
    x = torch.arange(5 * 6, dtype=torch.float32).reshape(1, 1, 5, 6)
    # torchvision: top = round((5 - 3) / 2) = 1, left = round((6 - 2) / 2) = 2
    assert torch.equal(stand_in.center_crop(x, (3, 2)), x[..., 1:4, 2:4])
    bigger = stand_in.center_crop(x, 7)  # larger than the picture: zero border, the picture in the middle
    assert bigger.shape[-2:] == (7, 7) and torch.equal(bigger[..., 1:6, 0:6], x) and bigger[..., 0, :].abs().sum() == 0
    result = run(env, {"img": gradient(6, 5, 0x3366CC),
                       "crop": {"type": "FinishCenterCrop", "inputs": {"image": L("img"), "height": 3, "width": 2}},
                       "show": {"type": "PreviewAny", "inputs": {"source": L("crop")}}})
    assert result.value("crop").shape == (1, 3, 2, 3)


def test_composite_is_image_composite_masked(env):
    nodes = {"dest": gradient(8, 6, 0x3366CC), "src": gradient(4, 4, 0xFF8800),
             "mask": {"type": "SolidMask", "inputs": {"value": 0.75, "width": 3, "height": 3}},
             "ours": {"type": "ImageCompositeMasked", "inputs": {"destination": L("dest"), "source": L("src"),
                                                                 "x": 6, "y": 3, "resize_source": False,
                                                                 "mask": L("mask")}},
             "theirs": {"type": "FinishComposite", "inputs": {"destination": L("dest"), "source": L("src"),
                                                              "x": 6, "y": 3, "mask": L("mask")}}}
    nodes.update({f"show_{n}": {"type": "PreviewAny", "inputs": {"source": L(n)}} for n in ("ours", "theirs")})
    result = run(env, nodes)
    assert torch.allclose(result.value("theirs"), result.value("ours"), atol=1e-6)
    dest = result.value("dest")
    changed = (result.value("theirs") - dest).abs().sum(dim=-1)[0] > 0
    assert changed[3:, 6:].all() and not changed[:3].any() and not changed[:, :6].any()  # clipped at the border


def test_cli_args_defaults_and_our_settings(env, tmp_path):
    from comfy.cli_args import LatentPreviewMethod, args

    assert args.port == 8188 and args.listen == "127.0.0.1" and args.preview_size == 512 and args.fast == set()
    assert LatentPreviewMethod.from_string("taesd") is LatentPreviewMethod.TAESD
    nodes = {"a": {"type": "FinishArgs", "inputs": {}}, "show": {"type": "PreviewAny", "inputs": {"source": L("a")}}}
    plain = run(env, nodes)
    assert plain.value("a", 0) == str((tmp_path / "output").resolve())
    assert plain.value("a", 1) is False and plain.value("a", 2) == "none"  # ComfyUI's defaults


def test_cli_args_follow_the_job(env):
    # our --disable-metadata (the job's no_metadata) and the prompt's preview method
    nodes = {"b": {"type": "FinishArgs", "inputs": {}}, "show": {"type": "PreviewAny", "inputs": {"source": L("b")}}}
    result = run(env, nodes, extra={"no_metadata": True, "preview_method": "latent2rgb"})
    assert result.value("b", 1) is True and result.value("b", 2) == "latent2rgb"


def test_model_code_names(env):
    from comfy.ldm.flux.math import apply_rope
    from comfy.ldm.modules.attention import attention_pytorch, optimized_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 5, 4 * 8) for _ in range(3))
    heads = q.view(2, 5, 4, 8).transpose(1, 2), k.view(2, 5, 4, 8).transpose(1, 2), v.view(2, 5, 4, 8).transpose(1, 2)
    weights = torch.softmax(heads[0] @ heads[1].transpose(-1, -2) / 8 ** 0.5, dim=-1)
    expected = (weights @ heads[2]).transpose(1, 2).reshape(2, 5, 32)
    assert torch.allclose(attention_pytorch(q, k, v, 4), expected, atol=1e-5)
    seen = []
    override = {"optimized_attention_override": lambda fn, *a, **kw: seen.append(fn) or fn(*a, **kw)}
    assert torch.allclose(optimized_attention(q, k, v, 4, transformer_options=override), expected, atol=1e-5)
    assert seen == [attention_pytorch.__wrapped__]
    # a rotation by 90 degrees of each pair: (a, b) -> (-b, a)
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]]).expand(1, 1, 3, 2, 2)
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    out, _ = apply_rope(x, x, rot.reshape(1, 1, 3, 1, 2, 2).expand(1, 1, 3, 2, 2, 2).reshape(1, 1, 3, 2, 2, 2))
    pairs = x.reshape(1, 1, 3, 2, 2)
    assert torch.equal(out.reshape(1, 1, 3, 2, 2), torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1))
    nodes = {"m": {"type": "FinishModelInternal", "inputs": {}}, "show": {"type": "PreviewAny", "inputs": {"source": L("m")}}}
    result = Executor(env).run({"version": 1, "nodes": nodes})
    assert result.status != "success"
    assert "comfy.ldm.lumina.model.FeedForward" in str(result.errors) and "finish_surface" in str(result.errors)


def test_prepare_mask_and_previewer():
    from comfy.sampler_helpers import prepare_mask
    from latent_preview import Latent2RGBPreviewer

    mask = torch.zeros(1, 8, 8)
    mask[:, :, 4:] = 1
    fitted = prepare_mask(mask, (2, 4, 4, 4), "cpu")
    assert fitted.shape == (2, 4, 4, 4) and torch.equal(fitted[:, :, :, 2:], torch.ones(2, 4, 4, 2))
    factors = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    x0 = torch.zeros(1, 4, 2, 2)
    x0[0, 0] = 1.0  # red at +1 -> 255; green and blue at 0 -> 127 (truncated, as ComfyUI)
    image = Latent2RGBPreviewer(factors).decode_latent_to_preview(x0)
    assert image.size == (2, 2) and image.getpixel((0, 0)) == (255, 127, 127)


def test_video_names_in_a_v3_schema(env):
    nodes = {"v": {"type": "FinishVideoSchema", "inputs": {"format": "mp4"}},
             "show": {"type": "PreviewAny", "inputs": {"source": L("v")}}}
    assert run(env, nodes).value("v") == "mp4"
    choices = env.registry.specs["FinishVideoSchema"].input_by_name["format"].choices
    assert (choices(env) if callable(choices) else choices) == ["auto", "mp4"]


def test_on_prompt_handler_rewrites_the_posted_prompt(env, tmp_path):
    with ServerThread(env, tmp_path) as server, server.client() as http:
        job = http.post("/prompt", json={"prompt": {
            "1": {"class_type": "FinishEcho", "inputs": {"text": "__finish_wildcard__"}}}}).json()
        deadline = time.monotonic() + 30
        while not (history := http.get(f"/history/{job['prompt_id']}").json()) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert history[job["prompt_id"]]["outputs"]["1"] == {"text": ["filled by the handler"]}
