"""ComfyUI's V3 contract (comfy_api.latest): the v3_pack test pack loaded from its async entry point,
declarations as ComfyUI 0.8's _io.py gives them in V1 form (get_v1_info: options dicts, hidden,
output nodes' PROMPT/EXTRA_PNGINFO), execute as a classmethod with cls.hidden, NodeOutput with ui
helpers (_ui.py: PreviewText {"text": (value,)}, PreviewImage in temp as ComfyUI_temp_xxxxx_00001_.png)."""
from __future__ import annotations

import pytest
import torch

from nodegraph.executor import Executor
from nodegraph.validate import ValidationFailed


def L(node, output=0):
    return {"node": node, "output": output}


def run(env, nodes):
    return Executor(env).run({"version": 1, "nodes": nodes})


IMAGE = {"type": "EmptyImage", "inputs": {"width": 6, "height": 4, "batch_size": 1, "color": 0xFF8000}}


def test_v3_nodes_load_with_their_schema(comfy_registry):
    assert not [p.message for p in comfy_registry.problems if p.source.endswith("v3_pack.py")]
    spec = comfy_registry.get("TestV3Tint")
    assert spec is not None and spec.display_name == "Tint (V3 test)" and spec.category == "test_pack/v3"
    import comfy_api.latest as latest

    tint = latest.io.ComfyNode.__subclasses__()
    declared = next(c for c in tint if c.__name__ == "TestV3Tint").INPUT_TYPES()
    assert declared["required"]["channel"] == ("COMBO", {"default": "red", "multiselect": False,
                                                         "options": ["red", "green", "blue"]})
    assert declared["required"]["factor"] == ("FLOAT", {"default": 0.5, "min": 0.0, "max": 2.0, "step": 0.25})
    assert declared["optional"] == {"mask": ("MASK", {})}
    assert declared["hidden"] == {"unique_id": ("UNIQUE_ID",)}  # get_v1_info writes (hidden.value,)
    describe = next(c for c in tint if c.__name__ == "TestV3Describe")
    assert describe.INPUT_TYPES()["hidden"] == {"prompt": ("PROMPT",), "extra_pnginfo": ("EXTRA_PNGINFO",)}
    assert describe.OUTPUT_NODE and describe.RETURN_TYPES == ()
    assert [o.name for o in spec.outputs] == ["tinted", "width"]


def test_v3_execute_gets_inputs_hidden_values_and_gives_ui(comfy_env):
    result = run(comfy_env, {"img": IMAGE,
                             "tint": {"type": "TestV3Tint", "inputs": {"image": L("img"), "channel": "green",
                                                                        "factor": 0.5}},
                             "out": {"type": "TestV3Describe", "inputs": {"image": L("tint"), "label": "t"}}})
    assert result.status == "success", result.errors
    tinted = result.value("tint")
    assert torch.allclose(tinted[0, 0, 0], torch.tensor([1.0, 128 / 255 * 0.5, 0.0]), atol=1e-6)
    assert result.value("tint", 1) == 6
    assert result.outputs["out"] == {"text": ["t: (1, 4, 6, 3)"]}
    # the UNIQUE_ID hidden value reached cls.hidden; PreviewText's tuple became the list ComfyUI sends
    assert run(comfy_env, {"img": IMAGE, "tint": {"type": "TestV3Tint", "inputs": {
        "image": L("img"), "channel": "red", "factor": 1.0}}, "out": {"type": "TestV3Describe", "inputs": {
        "image": L("tint"), "label": "x"}}}).status == "success"


def test_v3_ui_preview_image_lands_in_temp(comfy_env):
    result = run(comfy_env, {"img": IMAGE, "out": {"type": "TestV3Describe",
                                                   "inputs": {"image": L("img"), "preview": True}}})
    assert result.status == "success", result.errors
    [saved] = result.outputs["out"]["images"]
    assert saved["type"] == "temp" and saved["filename"].startswith("ComfyUI_temp_")
    assert saved["filename"].endswith("_00001_.png") and result.outputs["out"]["animated"] == [False]
    assert (comfy_env.folders.temp / saved["subfolder"] / saved["filename"]).is_file()


def test_v3_values_are_validated_against_the_schema(comfy_env):
    with pytest.raises(ValidationFailed) as failed:
        run(comfy_env, {"img": IMAGE, "tint": {"type": "TestV3Tint", "inputs": {
            "image": L("img"), "channel": "purple", "factor": 3.0}},
            "out": {"type": "TestV3Describe", "inputs": {"image": L("tint")}}})
    text = str(failed.value)
    assert "channel" in text and "purple" in text and "factor" in text


def test_v3_ui_output_of_tint_carries_the_hidden_unique_id(comfy_env):
    executor = Executor(comfy_env)
    events = []
    executor.run({"version": 1, "nodes": {"img": IMAGE, "tint": {"type": "TestV3Tint", "inputs": {
        "image": L("img"), "channel": "blue", "factor": 1.0}}, "out": {"type": "TestV3Describe", "inputs": {
        "image": L("tint")}}}}, on_event=lambda e, d: events.append((e, d)))
    executed = {d["node"]: d["output"] for e, d in events if e == "executed"}
    assert executed["tint"] == {"text": ["tint:blue"]}
