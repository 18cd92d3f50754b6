"""ComfyUI workflows written here in the shapes ComfyUI's frontend saves (UI format 0.4 and 1, with
subgraphs, reroutes, primitive nodes, notes, groups, bypassed and muted nodes) and ComfyUI's API
format, each imported and run end to end on the embedded default model, with a check of its effect.

Where the expected import behaviour comes from: ComfyUI_frontend's graphToPrompt and litegraph's
ExecutableNodeDTO / SubgraphNode (execution ids "instance:inner", bypass slot matching, promoted
widget values), and ComfyUI 0.8's execution.py (undeclared inputs ignored, int()/float() casts).
"""
import copy
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from nodegraph.validate import ValidationFailed
from nodegraph.formats import parse_workflow
from training.default_world import read_image

HERE = Path(__file__).parent


def load(name: str) -> dict:
    return json.loads((HERE / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def env(tmp_path_factory, builtin_registry):
    """One environment for the module, so that the default model loads once."""
    base = tmp_path_factory.mktemp("comfy")
    for name in ("models", "output", "input", "temp"):
        (base / name).mkdir()
    return Environment(registry=builtin_registry, folders=Folders(base))


def run(env, doc, events=None):
    result = Executor(env).run(doc, on_event=(lambda e, d: events.append((e, d))) if events is not None else None)
    assert result.status == "success", result.errors
    return result


def test_frontend_only_nodes_reroute_primitive_bypass_mute(env):
    doc = load("ui_frontend_nodes.json")
    workflow = parse_workflow(doc, env.registry)
    assert set(workflow.nodes) == {"4", "6", "7", "5", "3", "8", "9"}  # reroute, primitive, notes, bypass, muted gone
    assert workflow.nodes["6"].inputs["text"] == "a red circle on a blue background"  # the primitive wins
    assert workflow.nodes["3"].inputs["model"] == {"node": "4", "output": 0}  # through the reroute
    assert workflow.nodes["3"].inputs["latent_image"] == {"node": "5", "output": 0}  # through the bypassed upscale
    assert workflow.ui["groups"][0]["title"] == "Sampling"
    result = run(env, workflow)
    image = result.value("8")
    assert image.shape == (1, 128, 128, 3)  # the bypassed LatentUpscaleBy did not run
    reading = read_image(image[0])
    assert (reading.shape_color, reading.background) == ("red", "blue")
    assert "22" not in result.executed  # the muted preview


def test_nested_subgraphs_expand_with_promoted_widgets_per_instance(env):
    doc = load("ui_subgraphs_nested.json")
    workflow = parse_workflow(doc, env.registry)
    # ComfyUI's execution ids: instance path, then the inner id
    assert {"10:2:1", "10:3", "10:4", "10:5", "10:6", "11:2:1", "11:5", "4", "12", "13"} <= set(workflow.nodes)
    assert workflow.nodes["10:2:1"].inputs["text"] == "a red circle on a blue background"
    assert workflow.nodes["11:2:1"].inputs["text"] == "a yellow square on a green background"
    assert workflow.nodes["10:5"].inputs["seed"] == 42
    assert workflow.nodes["11:5"].inputs["seed"] == 7  # the legacy control value after the seed is skipped
    assert workflow.nodes["10:5"].inputs["model"] == {"node": "4", "output": 0}
    assert workflow.nodes["12"].inputs["images"] == {"node": "10:6", "output": 0}
    assert workflow.meta["origins"]["10:2:1"] == "subgraph 'Generate' › subgraph 'Prompt' › node 1"
    result = run(env, workflow)
    red, yellow = read_image(result.value("10:6")[0]), read_image(result.value("11:6")[0])
    assert (red.shape_color, red.background) == ("red", "blue")
    assert (yellow.shape_color, yellow.background) == ("yellow", "green")


def test_subgraph_instance_without_values_keeps_the_inner_widgets(env):
    doc = load("ui_subgraphs_nested.json")
    doc["nodes"][1]["widgets_values"] = []
    workflow = parse_workflow(doc, env.registry)
    assert workflow.nodes["10:2:1"].inputs["text"] == "a green square on a white background"
    assert workflow.nodes["10:5"].inputs["seed"] == 0


def test_errors_inside_subgraphs_name_the_subgraph_and_inner_node(env):
    doc = load("ui_subgraphs_nested.json")
    generate = doc["definitions"]["subgraphs"][1]
    generate["nodes"][3]["widgets_values"][2] = 0  # KSampler steps below the minimum
    with pytest.raises(ValidationFailed) as failed:
        Executor(env).run(doc)
    messages = [str(i) for i in failed.value.issues]
    assert any(m.startswith("subgraph 'Generate' › node 5 [10:5] (KSampler) input 'steps'") for m in messages), messages
    assert {i.node for i in failed.value.issues} == {"10:5", "11:5"}


def test_muted_and_bypassed_subgraph_instances(env):
    doc = load("ui_subgraphs_nested.json")
    doc["nodes"][2]["mode"] = 2  # the yellow instance muted: its inner nodes go with it
    doc["nodes"][4]["mode"] = 2  # and its saver
    workflow = parse_workflow(doc, env.registry)
    assert not any(n.startswith("11:") for n in workflow.nodes) and "13" not in workflow.nodes
    doc = load("ui_subgraphs_nested.json")
    doc["nodes"][2]["mode"] = 4  # bypassed: no IMAGE input to pass, so the saver receives nothing
    workflow = parse_workflow(doc, env.registry)
    assert "images" not in workflow.nodes["13"].inputs
    assert not any(n.startswith("11:") for n in workflow.nodes)


def test_bypass_into_optional_input_gives_nothing_and_muted_primitive_leaves_the_widget(env):
    workflow = parse_workflow(load("ui_bypass_mute_image.json"), env.registry)
    composite = workflow.nodes["3"].inputs
    assert "mask" not in composite  # the bypassed ImageToMask has no MASK input to pass on
    assert workflow.nodes["2"].inputs["width"] == 32  # the muted PrimitiveInt's 64 does not arrive
    assert workflow.nodes["7"].inputs["images"] == {"node": "3", "output": 0}  # through the bypassed invert
    result = run(env, workflow)
    image = result.value("3")
    assert image.shape == (1, 16, 32, 3)
    # without a mask the source (blue) covers everything; the bypassed ImageToMask ("blue" channel of
    # a red image = 0) would have kept the red destination, and a running ImageInvert would give yellow
    assert torch.allclose(image[0, 8, 16], torch.tensor([0.0, 0.0, 1.0]))


def test_api_prompt_hires_fix_with_an_undeclared_input(env):
    events = []
    result = run(env, load("api_hires_fix.json"), events)
    image = result.value("8")
    assert image.shape == (1, 192, 192, 3)  # 128 latent pixels upscaled by 1.5
    reading = read_image(image[0])
    assert (reading.shape_color, reading.background) == ("red", "blue")
    warnings = [d for e, d in events if e == "warning"]
    assert len(warnings) == 1 and warnings[0]["node"] == "6" and "'clip_skip'" in warnings[0]["message"]


def test_ui_version_1_with_link_objects_img2img(env):
    Image.new("RGB", (128, 128), (0, 160, 0)).save(env.folders.input / "corpus-canvas.png")
    workflow = parse_workflow(load("ui_img2img_v1_links.json"), env.registry)
    assert workflow.nodes["3"].inputs["denoise"] == 0.8 and workflow.nodes["3"].inputs["steps"] == 12
    reading = read_image(run(env, workflow).value("8")[0])
    assert (reading.shape_color, reading.background) == ("red", "green")


def test_undefined_link_is_tolerated_with_a_warning(env):
    doc = copy.deepcopy(load("ui_bypass_mute_image.json"))
    doc["links"] = [entry for entry in doc["links"] if entry[0] != 4]  # the mask link's record lost
    workflow = parse_workflow(doc, env.registry)
    assert "mask" not in workflow.nodes["3"].inputs
    [warning] = workflow.meta["import_warnings"]
    assert "link 4" in warning["message"] and warning["node"] == "3"
