"""ComfyUI's reroutes on links (frontend ≥ 1.14: extra.reroutes + extra.linkExtensions in schema 0.4)
open as reroutes on the canvas, also in a file with a bypassed node, run, and are exported back in
ComfyUI's shape (litegraph's LGraph.serialize writes them there)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.slow

REROUTES = [{"id": 1, "pos": [330, 60], "linkIds": [1]},
            {"id": 2, "pos": [640, 160], "linkIds": [2]},
            {"id": 3, "parentId": 2, "pos": [760, 160], "linkIds": [2]}]
UI_DOC = {
    "last_node_id": 3, "last_link_id": 2, "version": 0.4, "groups": [], "config": {},
    "extra": {"ds": {"scale": 0.7, "offset": [40, 120]}, "reroutes": REROUTES,
              "linkExtensions": [{"id": 1, "parentId": 1}, {"id": 2, "parentId": 3}]},
    "nodes": [
        {"id": 1, "type": "EmptyImage", "pos": [0, 0], "size": [270, 130], "mode": 0, "flags": {}, "order": 0,
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}], "widgets_values": [40, 20, 1, 16711680]},
        {"id": 2, "type": "ImageInvert", "pos": [420, 0], "size": [180, 50], "mode": 4, "flags": {}, "order": 1,
         "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}]},
        {"id": 3, "type": "SaveImage", "pos": [860, 0], "size": [270, 270], "mode": 0, "flags": {}, "order": 2,
         "inputs": [{"name": "images", "type": "IMAGE", "link": 2}], "widgets_values": ["link-reroutes"]},
    ],
    "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
}


def test_link_reroutes_open_run_and_export(editor, artifacts, tmp_path):
    page = editor.page
    path = tmp_path / "link-reroutes.json"
    path.write_text(json.dumps(UI_DOC))
    page.set_input_files("[data-testid=open-file]", str(path))
    page.wait_for_function("() => window.nodegraph.graph().nodes.some(n => n.data.nodeType === 'SaveImage')")
    graph = editor.graph()
    reroutes = [n for n in graph["nodes"] if n.get("kind") == "reroute" or n.get("type") == "reroute"]
    assert len(reroutes) == 3, graph["nodes"]
    expect(page.locator(".react-flow__node-reroute")).to_have_count(3)
    expect(editor.node("2")).to_have_attribute("data-mode", "bypassed")
    wf = editor.workflow()
    assert wf["nodes"]["3"]["inputs"]["images"] == {"node": "2", "output": "IMAGE"}
    assert [r["comfy_reroute"] for r in wf["ui"]["reroutes"]] == [1, 2, 3]
    editor.screenshot(artifacts / "link-reroutes-01-opened.png")

    # it runs: the invert is bypassed, so the red canvas is saved as it is
    editor.press("Control+Enter")
    out = page.locator("[data-testid='output-3']").first
    expect(out).to_be_visible(timeout=20000)

    # Export → ComfyUI workflow: the same reroutes on the same links, no Reroute nodes
    page.click("[data-testid=menu-workflow]")
    with page.expect_download() as dl:
        page.click("[data-testid=menu-export-comfyui]")
    ui = json.loads(Path(dl.value.path()).read_text())
    assert not [n for n in ui["nodes"] if n["type"] == "Reroute"]
    ends = {l[0]: (l[1], l[3]) for l in ui["links"]}
    got = [{**r, "linkIds": [ends[i] for i in r["linkIds"]]} for r in ui["extra"]["reroutes"]]
    assert got == [{"id": 1, "pos": [330, 60], "linkIds": [(1, 2)]},
                   {"id": 2, "pos": [640, 160], "linkIds": [(2, 3)]},
                   {"id": 3, "parentId": 2, "pos": [760, 160], "linkIds": [(2, 3)]}]
    assert sorted((ends[e["id"]], e["parentId"]) for e in ui["extra"]["linkExtensions"]) == [((1, 2), 1), ((2, 3), 3)]
    assert next(n for n in ui["nodes"] if n["id"] == 2)["mode"] == 4
    editor.screenshot(artifacts / "link-reroutes-02-ran.png")
