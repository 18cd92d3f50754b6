"""Adding a subgraph input/output by dropping a link on the boundary node's empty slot (as ComfyUI's
frontend does on its input/output nodes inside a subgraph), and removing one from the subgraph bar."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.ui.test_subgraph_status import _convert_invert_and_scale

pytestmark = pytest.mark.slow


def _definition(editor) -> dict:
    [definition] = editor.workflow()["ui"]["subgraphs"]
    return definition


def test_add_and_remove_subgraph_slots(editor, artifacts):
    page = editor.page
    instance = _convert_invert_and_scale(editor, "subgraph-slots")
    editor.node(instance).locator(".ng-node-header").dblclick()
    expect(page.locator("[data-testid=subgraph-bar]")).to_be_visible()
    page.wait_for_function("() => window.nodegraph.graph().nodes.some(n => n.id === '-20')")

    # the invert's output dropped on the Outputs node's empty slot: a second output, typed IMAGE
    editor.drag_link("2", "IMAGE", "-20", "+")
    page.wait_for_function("() => window.nodegraph.currentWorkflow().ui.subgraphs[0].outputs.length === 2")
    assert [(o["name"], o["type"]) for o in _definition(editor)["outputs"]] == [("IMAGE", "IMAGE"), ("IMAGE_1", "IMAGE")]
    expect(page.locator("[data-testid=sg-output-1]")).to_have_value("IMAGE_1")
    # from the Inputs node's empty slot to the scale's image: a new input named after it
    editor.drag_link("-10", "+", "3", "image")
    page.wait_for_function("() => window.nodegraph.currentWorkflow().ui.subgraphs[0].inputs.length === 2")
    assert [(i["name"], i["type"]) for i in _definition(editor)["inputs"]] == [("image", "IMAGE"), ("image_1", "IMAGE")]
    edges = {(e["source"], e["sourceHandle"], e["target"], e["targetHandle"]) for e in editor.graph()["edges"]}
    assert ("-10", "o:image_1", "3", "i:image") in edges
    assert ("2", "o:IMAGE", "-20", "i:IMAGE_1") in edges
    editor.screenshot(artifacts / "subgraph-slots-01-added.png")

    # outside: the instance has the new input and output
    page.click("[data-testid=crumb-0]")
    expect(editor.handle(instance, "i:image_1")).to_have_count(1)
    expect(editor.handle(instance, "o:IMAGE_1")).to_have_count(1)
    editor.drag_link("1", "IMAGE", instance, "image_1")
    assert editor.workflow()["nodes"][instance]["inputs"]["image_1"] == {"node": "1", "output": "IMAGE"}
    editor.screenshot(artifacts / "subgraph-slots-02-instance.png")

    # back in: remove the new input; its link inside and the one feeding the instance go
    editor.node(instance).locator(".ng-node-header").dblclick()
    page.click("[data-testid=sg-remove-input-1]")
    page.wait_for_function("() => window.nodegraph.currentWorkflow().ui.subgraphs[0].inputs.length === 1")
    assert not [e for e in editor.graph()["edges"] if e["sourceHandle"] == "o:image_1"]
    assert "image_1" not in editor.workflow()["nodes"][instance]["inputs"]
    page.click("[data-testid=sg-remove-output-1]")
    page.wait_for_function("() => window.nodegraph.currentWorkflow().ui.subgraphs[0].outputs.length === 1")
    # the scale lost its feed with the input: wire the invert back in
    editor.drag_link("2", "IMAGE", "3", "image")
    editor.screenshot(artifacts / "subgraph-slots-03-removed.png")
    page.click("[data-testid=crumb-0]")
    expect(editor.handle(instance, "i:image_1")).to_have_count(0)
    expect(editor.handle(instance, "o:IMAGE_1")).to_have_count(0)
    # it still runs: the picture comes out as before
    editor.press("Control+Enter")
    expect(page.locator("[data-testid='output-4']").first).to_be_visible(timeout=30000)
