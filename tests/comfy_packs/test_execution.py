"""Workflows that mix our nodes and ComfyUI pack nodes, run in-process. Expected semantics: ComfyUI
0.8's execution.py (_async_map_node_over_list, merge_result_data, IS_CHANGED, VALIDATE_INPUTS,
check_lazy_status, hidden inputs)."""
from __future__ import annotations

import pytest
import torch

from nodegraph.executor import Executor
from nodegraph.validate import ValidationFailed

RED, GREEN = 0xFF0000, 0x00FF00


def L(node, output=0):
    return {"node": node, "output": output}


def run(env, nodes, **kw):
    events = []
    result = Executor(env).run({"version": 1, "nodes": nodes}, on_event=lambda e, d: events.append((e, d)), **kw)
    return result, events


def two_colour_batch():
    return {"r": {"type": "EmptyImage", "inputs": {"width": 8, "height": 4, "batch_size": 1, "color": RED}},
            "g": {"type": "EmptyImage", "inputs": {"width": 8, "height": 4, "batch_size": 1, "color": GREEN}},
            "batch": {"type": "ImageBatch", "inputs": {"image1": L("r"), "image2": L("g")}}}


def test_lists_run_per_item_and_join_back(comfy_env):
    result, events = run(comfy_env, {
        **two_colour_batch(),
        "split": {"type": "TestImageListFromBatch", "inputs": {"images": L("batch")}},
        "dim": {"type": "TestImageBrightness", "inputs": {"image": L("split"), "factor": 0.5}},
        "join": {"type": "TestImageBatchFromList", "inputs": {"images": L("dim"), "reverse": True}},
        "show": {"type": "PreviewImage", "inputs": {"images": L("join")}}})
    assert result.status == "success", result.errors
    assert len(result.values["split"][0]) == 2 and len(result.values["dim"][0]) == 2  # ran once per item
    joined = result.value("join")
    assert joined.shape == (2, 4, 8, 3) and joined.dtype == torch.float32 and joined.device.type == "cpu"
    assert torch.allclose(joined[0, 0, 0], torch.tensor([0.0, 0.5, 0.0]))  # reversed: green first
    assert torch.allclose(joined[1, 0, 0], torch.tensor([0.5, 0.0, 0.0]))
    assert result.value("join", 1) == 2
    progress = [d for e, d in events if e == "progress" and d["node"] == "join"]
    assert [(p["value"], p["max"]) for p in progress] == [(1, 2), (2, 2)]  # comfy.utils.ProgressBar


def test_image_passes_between_our_nodes_and_pack_nodes_unchanged(comfy_env):
    result, _ = run(comfy_env, {
        "img": {"type": "EmptyImage", "inputs": {"width": 6, "height": 5, "batch_size": 2, "color": RED}},
        "any": {"type": "TestPassAny", "inputs": {"value": L("img")}},
        "inv": {"type": "ImageInvert", "inputs": {"image": L("any")}},
        "show": {"type": "PreviewImage", "inputs": {"images": L("inv")}}})
    assert result.status == "success", result.errors
    assert result.value("any") is result.value("img")
    assert torch.equal(result.value("inv"), 1.0 - result.value("img"))


def test_pack_type_flows_between_its_nodes_and_is_checked(comfy_env):
    nodes = {"img": {"type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
             "paint": {"type": "ImageCompositeMasked", "inputs": {
                 "destination": L("img"), "source": L("src"), "x": 2, "y": 1, "resize_source": False}},
             "src": {"type": "EmptyImage", "inputs": {"width": 3, "height": 4, "batch_size": 1, "color": GREEN}},
             "mask": {"type": "TestMaskFromImage", "inputs": {"image": L("paint"), "channel": "green"}},
             "bbox": {"type": "TestMaskBBox", "inputs": {"mask": L("mask")}},
             "crop": {"type": "TestCropToBBox", "inputs": {"image": L("paint"), "bbox": L("bbox")}},
             "show": {"type": "PreviewImage", "inputs": {"images": L("crop")}}}
    result, _ = run(comfy_env, nodes)
    assert result.status == "success", result.errors
    assert result.value("bbox") == (2, 1, 5, 5)
    assert result.value("crop").shape == (1, 4, 3, 3) and float(result.value("crop")[..., 1].min()) == 1.0
    nodes["show"]["inputs"]["images"] = L("bbox")
    with pytest.raises(ValidationFailed) as failure:
        run(comfy_env, nodes)
    [issue] = failure.value.issues
    assert issue.kind == "type_mismatch" and "gives BBOX" in issue.message


def test_lazy_switch_runs_only_the_branch_it_asks_for(comfy_env):
    from nodegraph_plugins.lazy_switch import TestCountingImage

    nodes = {"a": {"type": "TestCountingImage", "inputs": {"value": 0.25}},
             "b": {"type": "TestCountingImage", "inputs": {"value": 0.75}},
             "switch": {"type": "TestLazySwitch", "inputs": {"select_a": False, "a": L("a"), "b": L("b")}},
             "show": {"type": "PreviewImage", "inputs": {"images": L("switch")}}}
    before = TestCountingImage.runs
    result, _ = run(comfy_env, nodes)
    assert result.status == "success", result.errors
    assert "a" not in result.executed and "b" in result.executed
    assert float(result.value("switch").mean()) == 0.75
    again, _ = run(comfy_env, nodes)  # IS_CHANGED returns NaN: ComfyUI re-runs such a node every time
    assert "b" in again.executed and TestCountingImage.runs == before + 2


def test_is_changed_and_validate_inputs(comfy_env):
    note = comfy_env.folders.input / "note.txt"
    note.write_text("first")
    nodes = {"load": {"type": "TestLoadText", "inputs": {"file": "note.txt"}},
             "show": {"type": "TestShowText", "inputs": {"text": L("load")}}}
    first, _ = run(comfy_env, nodes)
    assert first.status == "success", first.errors
    assert first.outputs["show"]["text"] == ["first"]
    assert run(comfy_env, nodes)[0].executed == []  # same file hash: everything cached
    note.write_text("second")
    changed, _ = run(comfy_env, nodes)
    assert changed.executed == ["load", "show"] and changed.value("show") == "SECOND"
    nodes["load"]["inputs"]["file"] = "missing.txt"
    with pytest.raises(ValidationFailed) as failure:
        run(comfy_env, nodes)
    [issue] = failure.value.issues
    assert issue.node == "load" and issue.message == "custom validation failed: Invalid text file: missing.txt"


def test_choices_and_ranges_are_validated(comfy_env):
    spec = comfy_env.registry.get("TestMaskFromImage")
    assert comfy_env.registry.schemas(comfy_env)["TestMaskFromImage"]["inputs"][1]["choices"] == ["red", "green", "blue"]
    with pytest.raises(ValidationFailed):  # a value outside the declared range is still refused
        run(comfy_env, {"m": {"type": "TestMaskFromImage", "inputs": {"image": L("i"), "threshold": 2.0}},
                        "i": {"type": "EmptyImage", "inputs": {}},
                        "s": {"type": "MaskPreview", "inputs": {"mask": L("m")}}})
    assert spec.input_by_name["threshold"].max == 1.0


def test_hidden_inputs_and_ui_results(comfy_env):
    (comfy_env.folders.input / "t.txt").write_text("hey")
    result, events = run(comfy_env, {"text": {"type": "TestLoadText", "inputs": {"file": "t.txt"}},
                                     "show": {"type": "TestShowText", "inputs": {"text": L("text")}}})
    assert result.status == "success", result.errors
    ui = result.outputs["show"]
    assert ui["text"] == ["hey"] and ui["unique_id"] == ["show"]
    assert ui["prompt_types"] == ["TestLoadText", "TestShowText"]  # PROMPT: the job as a ComfyUI API prompt
    executed = [d for e, d in events if e == "executed"]
    assert executed[0]["node"] == "show" and executed[0]["output"]["text"] == ["hey"]


def test_unsupported_surface_fails_the_node_with_a_clear_message(comfy_env):
    result, _ = run(comfy_env, {"x": {"type": "TestUsesMissing", "inputs": {"x": 2}},
                                "p": {"type": "PreviewAny", "inputs": {"source": L("x")}}})
    [error] = result.errors
    assert error["node_id"] == "x" and error["exception_type"] == "nodegraph.comfy_compat.surface.UnsupportedComfyFeature"  # full name, as ComfyUI reports it
    assert error["exception_message"].startswith(
        "pack 'broken_declaration' uses comfy.model_management.a_name_comfyui_never_had, which nodegraph's")


def test_common_upscale_as_packs_call_it(comfy_env):
    torch.manual_seed(0)
    result, _ = run(comfy_env, {
        "img": {"type": "EmptyImage", "inputs": {"width": 4, "height": 3, "batch_size": 1, "color": 0x336699}},
        "up": {"type": "TestUpscale", "inputs": {"image": L("img"), "method": "nearest-exact", "scale": 2}},
        "show": {"type": "PreviewImage", "inputs": {"images": L("up")}}})
    assert result.status == "success", result.errors
    up, img = result.value("up"), result.value("img")
    assert up.shape == (1, 6, 8, 3) and torch.equal(up[:, ::2, ::2], img)
