"""Node status inside subgraphs: the server expands an instance and reports its inner nodes by id path
("10:5", as ComfyUI's executor names expanded nodes). Inside the subgraph each inner node shows its own
progress / done / error; at the top level the instance node sums them up and names the failing node."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.slow


def _convert_invert_and_scale(editor, prefix: str = "subgraph-status") -> str:
    page = editor.page
    editor.open_example("image-basics")
    # a prefix of its own: the server caches a SaveImage that saw the same inputs, and other tests
    # wait for image-basics' own file
    editor.set_widget("4", "filename_prefix", prefix)
    editor.node("2").locator(".ng-node-header").click()
    editor.node("3").locator(".ng-node-header").click(modifiers=["Control"])
    editor.press("Control+Shift+E")
    page.wait_for_function("() => window.nodegraph.graph().nodes.filter(n => n.data.kind === 'op').length === 3")
    wf = editor.workflow()
    [definition] = wf["ui"]["subgraphs"]
    [instance] = [k for k, n in wf["nodes"].items() if n["type"] == definition["id"]]
    return instance


def _event(page, event: dict) -> None:
    page.evaluate("(e) => window.nodegraph._handleEvent(e)", event)


def test_status_of_inner_nodes_and_instance(editor, artifacts):
    page = editor.page
    instance = _convert_invert_and_scale(editor)
    inner = f"{instance}:3"

    # a real run: every node ends done, the instance too
    editor.press("Control+Enter")
    expect(editor.node("4")).to_have_class(re.compile(r"status-(done|cached)"), timeout=30000)
    expect(editor.node(instance)).to_have_class(re.compile(r"status-(done|cached)"))
    editor.node(instance).locator(".ng-node-header").dblclick()
    expect(page.locator("[data-testid=subgraph-bar]")).to_be_visible()
    expect(editor.node("3")).to_have_class(re.compile(r"status-(done|cached)"))
    expect(editor.node("2")).to_have_class(re.compile(r"status-(done|cached)"))
    page.click("[data-testid=crumb-0]")

    # live progress of an inner node (events as the server sends them for job "j")
    _event(page, {"type": "execution_start", "data": {"prompt_id": "j"}})
    _event(page, {"type": "executing", "data": {"node": inner, "prompt_id": "j"}})
    _event(page, {"type": "progress", "data": {"node": inner, "value": 3, "max": 4, "prompt_id": "j"}})
    expect(editor.node(instance)).to_have_class(re.compile("status-running"))
    expect(editor.node(instance).locator(".ng-badge-progress")).to_have_text("75%")
    editor.screenshot(artifacts / "subgraph-status-01-instance-running.png")
    editor.node(instance).locator(".ng-node-header").dblclick()
    expect(editor.node("3").locator(".ng-badge-progress")).to_have_text("75%")
    expect(editor.node("2")).not_to_have_class(re.compile("status-running"))
    editor.screenshot(artifacts / "subgraph-status-02-inner-running.png")

    # the inner node fails: inside, it shows the error; outside, the instance names it
    _event(page, {"type": "execution_error", "data": {
        "prompt_id": "j", "node_id": inner, "node_type": "ImageScaleBy", "exception_message": "scale went wrong",
        "exception_type": "RuntimeError", "traceback": []}})
    expect(editor.node("3")).to_have_class(re.compile("status-error"))
    expect(page.locator("[data-testid='error-3']")).to_contain_text("scale went wrong")
    editor.screenshot(artifacts / "subgraph-status-03-inner-error.png")
    page.click("[data-testid=crumb-0]")
    expect(editor.node(instance)).to_have_class(re.compile("status-error"))
    expect(page.locator(f"[data-testid='error-{instance}']")).to_contain_text("inside, node 3 (ImageScaleBy): scale went wrong")
    # the node with the same id at the top level is not the inner one
    expect(editor.node("3")).to_have_count(0)
    editor.screenshot(artifacts / "subgraph-status-04-instance-error.png")


def test_validation_error_inside_a_subgraph(editor, artifacts):
    """A value out of range inside: the server's 400 names the inner node by its path."""
    page = editor.page
    instance = _convert_invert_and_scale(editor)
    wf = editor.workflow()
    scale = next(n for n in wf["ui"]["subgraphs"][0]["nodes"] if n["type"] == "ImageScaleBy")
    scale["widgets_values"] = ["bilinear", 50]
    page.evaluate("([d, n]) => window.nodegraph.loadDocument(d, n)", [wf, "bad"])
    editor.press("Control+Enter")
    err = page.locator(f"[data-testid='error-{instance}']")
    expect(err).to_contain_text("inside, node 3 (ImageScaleBy), scale_by: 50.0 is above the maximum 8")
    editor.screenshot(artifacts / "subgraph-status-05-validation-instance.png")
    editor.node(instance).locator(".ng-node-header").dblclick()
    expect(page.locator("[data-testid='error-3']")).to_contain_text("scale_by")
    expect(editor.node("3").locator("[data-input='scale_by']")).to_have_class(re.compile("error"))
    editor.screenshot(artifacts / "subgraph-status-06-validation-inner.png")
