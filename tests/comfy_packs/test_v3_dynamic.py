"""V3 dynamic inputs (the v3_dynamic test pack), as ComfyUI 0.8's comfy_api/latest/_io.py defines them:
- /object_info shows them as ComfyUI declares them: io types COMFY_AUTOGROW_V3 / COMFY_DYNAMICCOMBO_V3 /
  COMFY_MATCHTYPE_V3 with their template dicts, MultiType as the comma type "FLOAT,MASK" with the
  override's options and widgetType, output_matchtypes naming the template of MatchType outputs;
- the prompt names grown inputs "<id>.<name>" and a combo's option inputs "<combo>.<input>"; execute gets
  them nested (build_nested_inputs): images={"image0": ..}, mode={"mode": key, "amount": ..};
- the engine's own sockets: the grown inputs (required for the first `min`), the combo's keys, a
  MatchType input takes its allowed types and its output the type of what is linked (as ComfyUI's
  frontend resolves it); a "*" input takes a literal unchanged (execution.py validate_inputs)."""
from __future__ import annotations

import json

import pytest
import torch

from nodegraph.executor import Executor
from nodegraph.validate import ValidationFailed

from .test_cli_server import cli
from .test_v3_cli_server import saved_pixel


def L(node, output=0):
    return {"node": node, "output": output}


def red_and_blue():
    return {"red": {"type": "EmptyImage", "inputs": {"width": 4, "height": 2, "batch_size": 1, "color": 0xFF0000}},
            "blue": {"type": "EmptyImage", "inputs": {"width": 4, "height": 2, "batch_size": 1, "color": 0x0000FF}}}


def run(env, nodes):
    return Executor(env).run({"version": 1, "nodes": nodes})


def comfy_class(name):
    import comfy_api.latest as latest

    return next(c for c in latest.io.ComfyNode.__subclasses__() if c.__name__ == name)


def test_dynamic_nodes_load_and_object_info_has_comfyui_shapes(comfy_registry, comfy_env):
    assert not [p.message for p in comfy_registry.problems if p.source.endswith("v3_dynamic.py")]
    from nodegraph.comfy_compat.node_info import pack_node_info

    average = pack_node_info(comfy_registry.get("TestV3Average"), comfy_env)["input"]["required"]
    assert average["images"] == ("COMFY_AUTOGROW_V3", {"template": {
        "input": {"required": {"image": ("IMAGE", {})}}, "prefix": "image", "min": 2, "max": 4}})
    assert average["weight"] == ("FLOAT,MASK", {"default": 1.0, "widgetType": "FLOAT", "min": 0.0, "max": 4.0})
    pick = pack_node_info(comfy_registry.get("TestV3PickFirst"), comfy_env)
    assert pick["input"]["required"]["a"] == ("COMFY_MATCHTYPE_V3", {
        "template": {"template_id": "T", "allowed_types": "*"}})
    assert pick["output"] == ["COMFY_MATCHTYPE_V3"] and pick["output_name"] == ["MATCHTYPE"]
    assert pick["output_matchtypes"] == ["T"]
    adjust = pack_node_info(comfy_registry.get("TestV3Adjust"), comfy_env)["input"]["required"]["mode"]
    assert adjust == ("COMFY_DYNAMICCOMBO_V3", {"options": [
        {"key": "gain", "inputs": {"required": {"amount": ("FLOAT", {"default": 2.0, "min": 0.0, "max": 8.0})}}},
        {"key": "offset", "inputs": {"required": {"shift": ("FLOAT", {"default": 0.1, "min": -1.0, "max": 1.0})},
                                     "optional": {"where": ("MASK", {})}}}]})
    # the engine's sockets
    spec = comfy_registry.get("TestV3Average")
    assert [(i.name, i.type.name, i.optional) for i in spec.inputs] == [
        ("images.image0", "IMAGE", False), ("images.image1", "IMAGE", False), ("weight", "FLOAT,MASK", False),
        ("images.image2", "IMAGE", True), ("images.image3", "IMAGE", True)]
    combo = comfy_registry.get("TestV3Adjust").input_by_name["mode"]
    assert combo.type.name == "COMBO" and combo.choices(comfy_env) == ["gain", "offset"]


def test_autogrow_multitype_matchtype_and_dynamic_combo_run(comfy_env):
    nodes = red_and_blue() | {
        "avg": {"type": "TestV3Average", "inputs": {"images.image0": L("red"), "images.image1": L("blue"),
                                                      "weight": 0.5}},
        "pick": {"type": "TestV3PickFirst", "inputs": {"a": L("avg"), "b": L("red"), "first": True}},
        "gain": {"type": "TestV3Adjust", "inputs": {"image": L("pick"), "mode": "gain", "mode.amount": 3.0,
                                                    "mode.shift": 0.9}},
        "show": {"type": "TestV3ShowAny", "inputs": {"value": L("gain")}}}
    result = run(comfy_env, nodes)
    assert result.status == "success", result.errors
    # mean of (1,0,0) and (0,0,1) times 0.5, then gain 3 (the other option's shift is dropped)
    assert torch.allclose(result.value("avg")[0, 0, 0], torch.tensor([0.25, 0.0, 0.25]))
    assert result.value("avg", 1) == 2
    assert torch.allclose(result.value("gain")[0, 0, 0], torch.tensor([0.75, 0.0, 0.75]))
    # three grown inputs, the MultiType weight as a MASK, the offset option with its optional mask
    nodes["avg"]["inputs"] |= {"images.image2": L("red"), "weight": L("half")}
    nodes["half"] = {"type": "SolidMask", "inputs": {"value": 0.5, "width": 4, "height": 2}}
    nodes["gain"]["inputs"] = {"image": L("pick"), "mode": "offset", "mode.shift": 0.5, "mode.where": L("half")}
    result = run(comfy_env, nodes)
    assert result.status == "success", result.errors
    assert result.value("avg", 1) == 3
    assert torch.allclose(result.value("avg")[0, 0, 0], torch.tensor([1 / 3, 0.0, 1 / 6]))
    assert torch.allclose(result.value("gain")[0, 0, 0], torch.tensor([1 / 3 + 0.25, 0.25, 1 / 6 + 0.25]))


def test_dynamic_inputs_are_validated_by_name(comfy_env):
    with pytest.raises(ValidationFailed) as failed:
        run(comfy_env, red_and_blue() | {
            "avg": {"type": "TestV3Average", "inputs": {"images.image0": L("red"), "images.image4": L("blue"),
                                                          "weight": 9.0}},
            "adj": {"type": "TestV3Adjust", "inputs": {"image": L("avg"), "mode": "tint"}},
            "show": {"type": "TestV3ShowAny", "inputs": {"value": L("adj")}}})
    issues = {(i.node, i.input, i.kind) for i in failed.value.issues}
    assert ("avg", "images.image1", "missing_input") in issues  # min=2
    assert ("avg", "images.image4", "unknown_input") in issues  # max=4: image0..image3
    assert ("avg", "weight", "bad_value") in issues  # the FLOAT widget's max of 4
    assert ("adj", "mode", "bad_value") in issues  # not an option's key


def test_matchtype_output_has_the_type_of_its_linked_input(comfy_env):
    """A MatchType output fed by an IMAGE is an IMAGE: it cannot feed a MASK input, and fed by a MASK it can."""
    nodes = red_and_blue() | {
        "half": {"type": "SolidMask", "inputs": {"value": 0.5, "width": 4, "height": 2}},
        "pick": {"type": "TestV3PickFirst", "inputs": {"a": L("red"), "b": L("blue")}},
        "adj": {"type": "TestV3Adjust", "inputs": {"image": L("red"), "mode": "offset", "mode.where": L("pick")}},
        "show": {"type": "TestV3ShowAny", "inputs": {"value": L("adj")}}}
    with pytest.raises(ValidationFailed) as failed:
        run(comfy_env, nodes)
    [issue] = failed.value.issues
    assert (issue.node, issue.input, issue.kind) == ("adj", "mode.where", "type_mismatch")
    assert "gives IMAGE" in str(failed.value)
    nodes["pick"]["inputs"] = {"a": L("half"), "b": L("half"), "first": False}
    result = run(comfy_env, nodes)
    assert result.status == "success", result.errors
    assert torch.allclose(result.value("adj")[0, 0, 0], torch.tensor([1.05, 0.05, 0.05]).clamp(0, 1))


@pytest.mark.parametrize("literal", [3, "text", [1, 2], {"k": 1.5}])
def test_any_input_takes_a_literal_unchanged(comfy_env, literal):
    result = run(comfy_env, {"show": {"type": "TestV3ShowAny", "inputs": {"value": literal}}})
    assert result.status == "success", result.errors
    assert result.outputs["show"] == {"text": [f"{type(literal).__name__} {literal!r}"]}


def test_named_grown_inputs_of_several_literal_types(comfy_env):
    """TemplateNames a, b, c with min 2: a and b required, each takes an INT, FLOAT or BOOLEAN literal."""
    result = run(comfy_env, {"sum": {"type": "TestV3SumVariables", "inputs": {
        "variables.a": 2, "variables.b": 0.5, "variables.c": True}}})
    assert result.status == "success", result.errors
    assert result.outputs["sum"] == {"text": ["['a', 'b', 'c'] 3.5"]}
    with pytest.raises(ValidationFailed) as failed:
        run(comfy_env, {"sum": {"type": "TestV3SumVariables", "inputs": {"variables.a": "x"}}})
    issues = {(i.input, i.kind) for i in failed.value.issues}
    assert issues == {("variables.a", "bad_value"), ("variables.b", "missing_input")}


API_PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 6, "height": 4, "batch_size": 1, "color": 0xFF0000}},
    "2": {"class_type": "EmptyImage", "inputs": {"width": 6, "height": 4, "batch_size": 1, "color": 0x0000FF}},
    "3": {"class_type": "TestV3Average", "inputs": {"images.image0": ["1", 0], "images.image1": ["2", 0],
                                                    "weight": 1.0}},
    "4": {"class_type": "TestV3PickFirst", "inputs": {"a": ["3", 0], "b": ["1", 0], "first": True}},
    "5": {"class_type": "TestV3Adjust", "inputs": {"image": ["4", 0], "mode": "gain", "mode.amount": 1.5}},
    "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0], "filename_prefix": "dyn"}},
    "7": {"class_type": "TestV3ShowAny", "inputs": {"value": 7}},
}


def test_cli_runs_an_api_prompt_with_dynamic_inputs(tmp_path):
    (tmp_path / "dyn.json").write_text(json.dumps(API_PROMPT))
    proc = cli("run", "dyn.json", "--output-dir", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "node 7: int 7" in proc.stdout
    # (0.5 * 1.5) = 0.75 for red and blue; SaveImage truncates 255 * value in float32
    level = int(torch.tensor(0.5, dtype=torch.float32) * 1.5 * 255)
    assert saved_pixel(tmp_path / "out" / "dyn_00001_.png") == (level, 0, level)


def test_server_runs_the_api_prompt_and_lists_the_dynamic_inputs(tmp_path, comfy_registry):
    from tests.server.conftest import ServerThread
    from tests.server.test_comfy_protocol import ComfySocket, post

    from nodegraph.environment import Environment
    from nodegraph.folders import Folders

    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir()
    env = Environment(registry=comfy_registry, folders=Folders(tmp_path))
    with ServerThread(env, tmp_path) as server, server.client() as http:
        info = http.get("/object_info/TestV3Adjust").json()["TestV3Adjust"]
        assert info["input"]["required"]["mode"][0] == "COMFY_DYNAMICCOMBO_V3"
        socket = ComfySocket(server, "dyn-client")
        try:
            answer = post(http, API_PROMPT, client_id="dyn-client").json()
            frames = socket.read_until_done(answer["prompt_id"])
        finally:
            socket.close()
        executed = {m["data"]["node"]: m["data"]["output"] for kind, m in frames
                    if kind == "json" and m["type"] == "executed"}
        assert executed["7"] == {"text": ["int 7"]}
        assert executed["6"]["images"][0]["filename"] == "dyn_00001_.png"
    level = int(torch.tensor(0.5, dtype=torch.float32) * 1.5 * 255)
    assert saved_pixel(tmp_path / "output" / "dyn_00001_.png") == (level, 0, level)
