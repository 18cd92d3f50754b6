import json

import pytest
import torch

from nodegraph.executor import Executor
from nodegraph.formats import WorkflowFormatError, comfy_api, detect_format, load_workflow, parse_workflow
from nodegraph.formats.png import read_png_workflow

COMFY_API = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 16, "batch_size": 1, "color": 0xFF0000}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "api"}},
    "4": {"class_type": "PrimitiveInt", "inputs": {"value": 20}},
    "5": {"class_type": "MathInt", "inputs": {"a": ["4", 0], "b": 22, "op": "add"}},
    "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}, "_meta": {"title": "Answer"}},
}


def test_comfy_api_workflow_runs(env):
    assert detect_format(COMFY_API) == "comfy_api"
    result = Executor(env).run(COMFY_API)
    assert result.status == "success"
    assert result.outputs["6"] == {"text": ["42"]}
    [image] = result.outputs["3"]["images"]
    assert image["filename"] == "api_00001_.png"
    saved = result.value("2")
    assert saved.shape == (1, 16, 32, 3)
    assert torch.allclose(saved[0, 0, 0], torch.tensor([0.0, 1.0, 1.0]))  # inverted red


def test_comfy_api_wrapped_prompt_and_export_roundtrip(env):
    workflow = parse_workflow({"prompt": COMFY_API, "client_id": "x"}, env.registry)
    assert workflow.nodes["6"].title == "Answer"
    assert workflow.nodes["2"].inputs["image"] == {"node": "1", "output": 0}
    exported = comfy_api.from_native(workflow, env.registry)
    assert {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in exported.items()} == \
        {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in COMFY_API.items()}


def test_native_named_outputs_export_as_indexes(env):
    doc = {"version": 1, "nodes": {
        "1": {"type": "LoadImage", "inputs": {"image": "x.png"}},
        "2": {"type": "MaskToImage", "inputs": {"mask": {"node": "1", "output": "MASK"}}},
        "3": {"type": "PreviewImage", "inputs": {"images": {"node": "2", "output": "IMAGE"}}}}}
    exported = comfy_api.from_native(parse_workflow(doc), env.registry)
    assert exported["2"]["inputs"]["mask"] == ["1", 1]


def comfy_ui_doc():
    """A UI-format document as ComfyUI's frontend saves it: reroute, primitive node, bypass, mute, note."""
    return {
        "last_node_id": 9, "last_link_id": 9,
        "nodes": [
            {"id": 1, "type": "EmptyImage", "mode": 0, "pos": [0, 0], "size": [300, 100],
             "inputs": [{"name": "width", "type": "INT", "widget": {"name": "width"}, "link": 7}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0}],
             "widgets_values": [64, 8, 1, 255]},
            {"id": 2, "type": "Reroute", "mode": 0, "inputs": [{"name": "", "type": "*", "link": 1}],
             "outputs": [{"name": "", "type": "IMAGE", "links": [2]}]},
            {"id": 3, "type": "ImageFlip", "mode": 4,
             "inputs": [{"name": "image", "type": "IMAGE", "link": 2}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [3]}],
             "widgets_values": ["x-axis: vertically"]},
            {"id": 4, "type": "ImageInvert", "mode": 0,
             "inputs": [{"name": "image", "type": "IMAGE", "link": 3}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [4]}]},
            {"id": 5, "type": "SaveImage", "mode": 0, "title": "Result",
             "inputs": [{"name": "images", "type": "IMAGE", "link": 4}], "widgets_values": ["ui"]},
            {"id": 6, "type": "PrimitiveNode", "mode": 0,
             "outputs": [{"name": "INT", "type": "INT", "links": [7], "widget": {"name": "width"}}],
             "widgets_values": [48, "fixed"]},
            {"id": 7, "type": "Note", "mode": 0, "widgets_values": ["a note"]},
            {"id": 8, "type": "RandomInt", "mode": 2, "widgets_values": [0, 5]},
            {"id": 9, "type": "Switch", "mode": 0, "widgets_values": [True],
             "inputs": [{"name": "on_true", "type": "*", "link": 9}],
             "outputs": [{"name": "output", "type": "*", "links": []}]},
            {"id": 10, "type": "PreviewAny", "mode": 0, "inputs": [{"name": "source", "type": "*", "link": 10}]},
            {"id": 11, "type": "PrimitiveInt", "mode": 0, "widgets_values": [5, "randomize"],
             "outputs": [{"name": "INT", "type": "INT", "links": [9, 10]}]},
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 3, 0, 4, 0, "IMAGE"],
                  [4, 4, 0, 5, 0, "IMAGE"], [7, 6, 0, 1, 0, "INT"], [9, 11, 0, 9, 1, "INT"],
                  [10, 11, 0, 10, 0, "INT"]],
        "groups": [{"title": "Main", "bounding": [0, 0, 500, 300]}],
        "version": 0.4,
    }


def test_comfy_ui_format_converts_and_runs(env):
    doc = comfy_ui_doc()
    assert detect_format(doc) == "comfy_ui"
    workflow = parse_workflow(doc, env.registry)
    nodes = workflow.nodes
    assert set(nodes) == {"1", "4", "5", "9", "10", "11"}  # frontend-only, bypassed and muted nodes gone
    assert nodes["1"].inputs == {"width": 48, "height": 8, "batch_size": 1, "color": 255}  # primitive wins
    assert nodes["4"].inputs["image"] == {"node": "1", "output": 0}  # through reroute and bypass
    assert nodes["5"].title == "Result" and nodes["1"].ui == {"pos": [0, 0], "size": [300, 100]}
    assert workflow.ui["groups"][0]["title"] == "Main"
    result = Executor(env).run(workflow)
    assert result.status == "success"
    assert result.value("4").shape == (1, 8, 48, 3)
    assert result.outputs["10"] == {"text": ["5"]}


def test_png_roundtrip_of_embedded_workflow(env):
    first = Executor(env).run(COMFY_API)
    image = first.outputs["3"]["images"][0]
    path = env.folders.output / image["filename"]
    embedded = read_png_workflow(path)
    assert embedded["nodes"]["3"]["type"] == "SaveImage"
    workflow = load_workflow(path, env.registry)
    env.cache.clear()
    second = Executor(env).run(workflow)
    assert second.status == "success"
    assert torch.equal(second.value("2"), first.value("2"))
    assert second.outputs["3"]["images"][0]["filename"] == "api_00002_.png"


def test_unrecognised_documents_get_a_clear_error():
    with pytest.raises(WorkflowFormatError, match="not a workflow"):
        parse_workflow({"hello": 1})
    with pytest.raises(WorkflowFormatError, match="invalid workflow document"):
        parse_workflow({"version": 1, "nodes": {"1": {"type": "X", "oops": 2}}})


def test_the_schema_knows_no_format_and_formats_import_on_their_own():
    """issue 14: detection, parsing and loading live in nodegraph.formats, which depends on the schema
    module; nodegraph.workflow imports no format (checked in a fresh interpreter, where nothing else
    could have imported it first)."""
    import subprocess
    import sys

    probe = ("import sys, nodegraph.workflow as w; "
             "assert not any(m.startswith('nodegraph.formats') for m in sys.modules), sorted(sys.modules); "
             "assert not any(hasattr(w, n) for n in ('parse_workflow', 'load_workflow', 'detect_format')); "
             "import nodegraph.formats as f; print(f.detect_format({'version': 1, 'nodes': {}}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "native"


def test_widget_values_follow_declarations(env):
    """Control values are skipped after inputs declared control_after_generate (Seed), whatever their
    name; 2023 files carry a true/false toggle there; a dict maps by name; ComfyUI's int() cast applies."""
    from nodegraph.formats.comfy_ui import widget_inputs

    ksampler = env.registry.get("KSampler")
    assert widget_inputs(ksampler, [5, True, 20, 8, "euler", "normal", 1])["steps"] == 20
    assert widget_inputs(ksampler, [5, "randomize", 20.0, 8, "euler", "normal", 1])["steps"] == 20
    assert widget_inputs(ksampler, [5, 20, 8, "euler", "normal", 1])["steps"] == 20  # files from before the control
    assert widget_inputs(env.registry.get("EmptyImage"), {"height": 8, "width": "16"}) == {"height": 8, "width": 16}
    plain = env.registry.get("MathInt")  # no control widget declared: nothing is skipped
    assert widget_inputs(plain, [1, "randomize", "add"]) == {"a": 1, "b": "randomize", "op": "add"}


def test_comfy_api_unwraps_boxed_lists_and_drops_undeclared_inputs(env):
    doc = comfy_api.to_native({"1": {"class_type": "PrimitiveString", "inputs": {"value": {"__value__": ["x"]}}},
                               "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0], "extra": ["1", 0]}}},
                              env.registry)
    assert doc["nodes"]["1"]["inputs"]["value"] == ["x"]
    assert doc["nodes"]["2"]["inputs"] == {"source": {"node": "1", "output": 0}}
    assert "link is ignored" in doc["meta"]["import_warnings"][0]["message"]
