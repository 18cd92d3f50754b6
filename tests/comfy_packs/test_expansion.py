"""Node expansion in ComfyUI packs (ComfyUI 0.8 execution.py / comfy_execution): a while loop that
copies its body through DYNPROMPT + GraphBuilder (loop_pack), subflow nodes that expand into
built-in nodes, V1 and V3 (subflow_pack), GraphBuilder's id scheme, DynamicPrompt's view."""
from __future__ import annotations

import pytest
import torch

from nodegraph.executor import Executor

from .workflows_expand import (LOOP, LOOP_COUNTER, LOOP_TOTAL, SUBFLOW, SUBFLOW_BLEND,
                               SUBFLOW_DOUBLED_INVERTED)


def test_while_loop_expands_its_body_until_the_condition_fails(comfy_env):
    events = []
    result = Executor(comfy_env).run(LOOP, on_event=lambda n, d: events.append((n, dict(d))))
    assert result.status == "success", result.errors
    assert result.outputs["12"] == {"text": [str(LOOP_COUNTER)]}
    assert result.outputs["13"] == {"text": [str(LOOP_TOTAL)]}
    image = result.value("11", 2)
    assert torch.allclose(image, torch.full((1, 4, 4, 3), 0.5), atol=1e-5)
    assert "9" not in result.executed  # lazy inputs of the copied switches held: the other branch never ran
    # four rounds expanded, each a level deeper, ids as GraphBuilder makes them: <parent>.<call>.<graph>.<local>
    deepest = "11" + ".0.0.Recurse" * (LOOP_COUNTER - 1)
    assert deepest in result.executed and deepest + ".0.0.Recurse" not in result.executed
    executing = {d["node"]: d["display_node"] for n, d in events if n == "executing" and d["node"]}
    # override_display_id, followed through copies of copies (ComfyUI: get_display_node_id)
    assert executing["11.0.0.7"] == "7" and executing["11.0.0.Recurse.0.0.11.0.0.8"] == "8"
    assert executing["11.0.0.Recurse"] == "11"


@pytest.mark.parametrize("inputs, expected", [({"remaining": 3}, 3),
                                              ({"remaining": 3, "initial_value0": {"node": "seven", "output": 0}}, 7)])
def test_expanded_nodes_take_values_unchecked_and_hidden_inputs_are_inputs(comfy_env, inputs, expected):
    # ComfyUI 0.8 execution.py validates only the prompt it received (validate_prompt), never the nodes an
    # expansion adds; and get_input_info finds an input under "hidden" too, so a prompt (or a copy a loop
    # makes) may set a pack's own hidden input such as initial_value0
    nodes = {"seven": {"type": "PrimitiveInt", "inputs": {"value": 7}},
             "head": {"type": "TestForLoopOpen", "inputs": inputs},
             "show": {"type": "TestShowInt", "inputs": {"value": {"node": "head", "output": 1}}}}
    result = Executor(comfy_env).run({"version": 1, "nodes": nodes})
    assert result.status == "success", result.errors
    assert result.outputs["show"] == {"text": [str(expected)]}
    assert "head.0.0.1" in result.executed  # the while-open got the INT as its condition


def test_loop_results_are_cached_as_the_close_nodes(comfy_env):
    executor = Executor(comfy_env)
    executor.run(LOOP)
    again = executor.run(LOOP)
    assert again.executed == [] and again.outputs["13"] == {"text": [str(LOOP_TOTAL)]}


def test_subflow_expands_into_built_in_nodes_v1_and_v3(comfy_env):
    events = []
    result = Executor(comfy_env).run(SUBFLOW, on_event=lambda n, d: events.append((n, dict(d))))
    assert result.status == "success", result.errors
    blended = result.value("2", 1)
    assert torch.allclose(blended[0, 0, 0], torch.tensor(SUBFLOW_BLEND), atol=1e-6)
    assert result.value("2", 0).shape == (1, 4, 6, 3)  # ImageScaleBy 2.0 inside the expansion
    assert torch.allclose(result.value("3")[0, 3, 5], torch.tensor(SUBFLOW_DOUBLED_INVERTED), atol=1e-6)
    saved_inside = [d for n, d in events if n == "executed" and d["node"].startswith("2.")]
    assert [(d["node"], d["display_node"]) for d in saved_inside] == [("2.0.0.3", "2")]
    assert saved_inside[0]["output"]["images"][0]["filename"] == "subflow_00001_.png"
    assert "3.0.0.1" in result.executed  # the V3 node's ImageInvert


def test_graph_builder_ids_and_prefixes():
    from comfy_execution.graph_utils import GraphBuilder, add_graph_prefix, is_link

    GraphBuilder.set_default_prefix("7", 2, 0)
    first, second = GraphBuilder(), GraphBuilder()
    assert (first.prefix, second.prefix) == ("7.2.0.", "7.2.1.")
    a = first.node("ImageInvert", image=["3", 0])
    b = first.node("ImageBlur", "blur", image=a.out(0))
    assert first.node("Whatever", "blur") is b  # an id given twice is the same node
    b.set_input("blur_radius", 2)
    b.set_input("sigma", None)
    first.replace_node_output("1", 0, ["9", 1])
    assert first.finalize() == {"7.2.0.1": {"class_type": "ImageInvert", "inputs": {"image": ["3", 0]}},
                                "7.2.0.blur": {"class_type": "ImageBlur",
                                               "inputs": {"image": ["9", 1], "blur_radius": 2}}}
    assert is_link(["1", 0]) and is_link(["1", 0.0]) and not is_link([1, 0]) and not is_link(["1", "0"])
    graph, outputs = add_graph_prefix({"1": {"class_type": "X", "inputs": {"a": ["1", 0], "v": 3}}}, (["1", 0], 5), "p.")
    assert graph == {"p.1": {"class_type": "X", "inputs": {"a": ["p.1", 0], "v": 3}}} and outputs == (["p.1", 0], 5)


def test_a_bad_expansion_names_the_pack_node(comfy_env):
    from comfy_execution.graph_utils import GraphBuilder

    class Broken:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": ("IMAGE",)}}

        RETURN_TYPES = ("IMAGE",)
        FUNCTION = "go"

        def go(self, image):
            graph = GraphBuilder()
            node = graph.node("ImageBlur", image=image, blur_radius="wide")
            return {"result": (node.out(0),), "expand": graph.finalize()}

    from nodegraph.comfy_compat.v1 import adapt

    comfy_env.registry.add_class(adapt("TestBrokenExpansion", Broken, "inline"), "test")
    result = Executor(comfy_env).run({"1": SUBFLOW["1"], "2": {"class_type": "TestBrokenExpansion",
                                                               "inputs": {"image": ["1", 0]}},
                                      "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}})
    [error] = result.errors
    assert error["node_id"] == "2" and error["node_type"] == "TestBrokenExpansion"
    assert error["exception_message"].startswith("the expansion of node 2 (TestBrokenExpansion): node 2.0.0.1 "
                                                 "(ImageBlur): input 'blur_radius': ")


def test_a_node_called_once_per_item_expands_once_per_call(comfy_env):
    """ComfyUI sets GraphBuilder's prefix to <node>.<call index>.0. before each call and joins the
    calls' resolved results (execution.py merge_result_data)."""
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 2, "height": 2, "batch_size": 2, "color": 0}},
              "2": {"class_type": "TestImageListFromBatch", "inputs": {"images": ["1", 0]}},
              "3": {"class_type": "TestSubflowV3Invert", "inputs": {"image": ["2", 0]}},
              "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}}}
    result = Executor(comfy_env).run(prompt)
    assert result.status == "success", result.errors
    assert {"3.0.0.1", "3.1.0.1"} <= set(result.executed)
    inverted = result.values["3"][0]
    assert len(inverted) == 2 and all(torch.equal(i, torch.ones(1, 2, 2, 3)) for i in inverted)
