"""The editor in a real browser against a real server: build, connect, run, errors, files, undo."""
from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image
from playwright.sync_api import expect

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "ui" / "tests" / "fixtures"


def test_empty_editor(editor, artifacts):
    page = editor.page
    expect(page.get_by_text("Start a workflow")).to_be_visible()
    expect(page.locator("[data-testid='palette-SaveImage']")).to_be_visible()
    expect(page.locator(".ng-conn.on")).to_be_visible()  # the event socket is connected
    editor.screenshot(artifacts / "01-empty.png")


def build_image_graph(editor) -> dict[str, str]:
    """EmptyImage → ImageInvert → UITestSteps → SaveImage, by dragging from the palette and between sockets."""
    ids = {
        "empty": editor.drag_from_palette("EmptyImage", 30, 40),
        "invert": editor.drag_from_palette("ImageInvert", 300, 40),
        "steps": editor.drag_from_palette("UITestSteps", 30, 300),
        "save": editor.drag_from_palette("SaveImage", 300, 300),
    }
    editor.set_widget(ids["empty"], "width", 48)
    editor.set_widget(ids["empty"], "height", 32)
    editor.set_widget(ids["steps"], "steps", 6)
    editor.set_widget(ids["steps"], "delay", 0.25)
    editor.drag_link(ids["empty"], "IMAGE", ids["invert"], "image")
    editor.drag_link(ids["invert"], "IMAGE", ids["steps"], "image")
    editor.drag_link(ids["steps"], "IMAGE", ids["save"], "images")
    edges = {(e["source"], e["target"], e["targetHandle"]) for e in editor.graph()["edges"]}
    assert edges == {(ids["empty"], ids["invert"], "i:image"), (ids["invert"], ids["steps"], "i:image"),
                     (ids["steps"], ids["save"], "i:images")}
    return ids


def test_build_by_dragging_and_run(editor, artifacts):
    page = editor.page
    ids = build_image_graph(editor)
    wf = editor.workflow()
    assert wf["nodes"][ids["empty"]]["inputs"]["width"] == 48
    assert wf["nodes"][ids["save"]]["inputs"]["images"] == {"node": ids["steps"], "output": "IMAGE"}

    editor.press("Control+Enter")
    # the running node is highlighted, its progress bar fills and live previews show on it
    steps = editor.node(ids["steps"])
    expect(page.locator(f"[data-testid='node-{ids['steps']}'].status-running")).to_be_visible(timeout=15000)
    expect(page.locator(f"[data-testid='preview-{ids['steps']}']")).to_be_visible(timeout=10000)
    bar = page.locator(f"[data-testid='progress-{ids['steps']}'] > div")
    page.wait_for_function(
        "(el) => parseFloat(el.style.width) > 0 && parseFloat(el.style.width) < 100", arg=bar.element_handle(), timeout=10000)
    expect(steps.locator(".ng-badge-progress")).to_be_visible()
    editor.screenshot(artifacts / "02-running.png")

    # the final image shows on the SaveImage node, and in the gallery
    out = page.locator(f"[data-testid='output-{ids['save']}']").first
    expect(out).to_be_visible(timeout=20000)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=out.element_handle())
    src = out.get_attribute("src")
    png = Image.open(io.BytesIO(editor.server.get(src))).convert("RGB")
    assert png.size == (48, 32)
    # black canvas, inverted to white, then UITestSteps halves green
    r, g, b = png.getpixel((10, 10))
    assert r > 250 and b > 250 and 120 < g < 135, (r, g, b)
    expect(page.locator(f"[data-testid='node-{ids['steps']}'].status-running")).to_have_count(0)
    expect(page.locator(".ng-node.status-done").first).to_be_visible()
    page.click("[data-testid=tab-gallery]")
    expect(page.locator("[data-testid=gallery] img")).to_have_count(1)
    page.click("[data-testid=tab-history]")
    expect(page.locator("[data-testid=job-success]").first).to_be_visible()
    editor.screenshot(artifacts / "03-after-run.png")

    # seed control "randomize" moved the seed on after queueing
    seed = editor.graph()["nodes"]
    seed_value = next(n for n in seed if n["id"] == ids["steps"])["values"]["seed"]
    assert seed_value != 0


def test_wrong_connection_is_refused(editor, artifacts):
    page = editor.page
    a = editor.drag_from_palette("EmptyImage", 40, 60)
    b = editor.drag_from_palette("EmptyImage", 340, 60)
    shots = []

    def look(p):
        # while over the refusing socket, the line is drawn red
        expect(p.locator(".ng-connection.invalid")).to_have_count(1)
        p.screenshot(path=str(artifacts / "04-wrong-connection-drag.png"))
        shots.append(1)

    editor.drag_link(a, "IMAGE", b, "width", hold=look)
    assert shots
    assert editor.graph()["edges"] == []
    toast = page.locator("[data-testid=toast]", has_text="Cannot connect")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text("IMAGE cannot connect to width (INT)")
    # a right one next to it is accepted; a widget input takes a link of its type
    i = editor.drag_from_palette("PrimitiveInt", 40, 320)
    editor.drag_link(i, "INT", b, "width")
    assert len(editor.graph()["edges"]) == 1
    expect(editor.node(b).locator("[data-input=width].linked")).to_be_visible()
    assert editor.workflow()["nodes"][b]["inputs"]["width"] == {"node": i, "output": "INT"}


def test_invalid_value_shows_on_node(editor, artifacts):
    page = editor.page
    editor.open_example("image-basics")
    canvas = editor.node("1")
    editor.set_widget("1", "width", 0)
    # flagged at once, before the server is asked
    expect(canvas.locator("[data-input=width].error")).to_be_visible()
    editor.press("Control+Enter")
    err = page.locator("[data-testid=error-1]")
    expect(err).to_be_visible(timeout=10000)
    expect(err).to_contain_text("width")
    expect(canvas).to_have_class(__import__("re").compile(r"has-error"))
    expect(page.locator("[data-testid=toast]").first).to_contain_text("problem")
    page.wait_for_timeout(300)
    editor.screenshot(artifacts / "05-error.png")
    # fixing the value clears the error, and the run goes through
    editor.set_widget("1", "width", 40)
    expect(err).to_have_count(0)
    editor.press("Control+Enter")
    expect(page.locator("[data-testid='output-4']").first).to_be_visible(timeout=20000)


def test_drop_png_loads_its_workflow(editor):
    page = editor.page
    # run the example so that the server writes a PNG with the workflow embedded ...
    editor.open_example("image-basics")
    editor.set_widget("1", "width", 30)
    editor.press("Control+Enter")
    out = page.locator("[data-testid='output-4']").first
    expect(out).to_be_visible(timeout=20000)
    png = editor.server.get(out.get_attribute("src"))
    saved = editor.workflow()
    # ... start afresh, and drop it onto the canvas
    page.evaluate("() => window.nodegraph.loadDocument({version: 1, nodes: {}}, 'empty')")
    expect(page.get_by_text("Start a workflow")).to_be_visible()
    editor.drop_file("result.png", png, "image/png")
    page.wait_for_function("() => window.nodegraph.graph().nodes.length === 4")
    loaded = editor.workflow()
    assert {k: (v["type"], v["inputs"]) for k, v in loaded["nodes"].items()} == \
           {k: (v["type"], v["inputs"]) for k, v in saved["nodes"].items()}
    assert loaded["nodes"]["1"]["inputs"]["width"] == 30
    # positions came back too (the PNG holds the editor's layout)
    assert [loaded["nodes"][k]["ui"]["pos"] for k in "1234"] == [saved["nodes"][k]["ui"]["pos"] for k in "1234"]

    # a PNG with only ComfyUI's API prompt converts through the server
    editor.drop_file("comfy.png", (FIXTURES / "pil-prompt-only.png").read_bytes(), "image/png")
    page.wait_for_function("() => window.nodegraph.graph().nodes.some(n => n.data.nodeType === 'EmptyImage' && n.data.values.width === 64)")
    assert editor.workflow()["nodes"]["2"]["inputs"]["images"] == {"node": "1", "output": "IMAGE"}


def test_open_comfy_ui_json_and_export(editor, tmp_path):
    page = editor.page
    ui_doc = {
        "last_node_id": 3, "last_link_id": 2, "version": 0.4, "groups": [{"title": "Made in ComfyUI", "bounding": [0, -60, 700, 260]}],
        "nodes": [
            {"id": 1, "type": "EmptyImage", "pos": [0, 0], "widgets_values": [40, 20, 1, 0]},
            {"id": 2, "type": "Reroute", "pos": [300, 40], "inputs": [{"name": "", "type": "*", "link": 1}]},
            {"id": 3, "type": "SaveImage", "pos": [420, 0], "inputs": [{"name": "images", "type": "IMAGE", "link": 2}],
             "widgets_values": ["from-comfy"]},
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
    }
    path = tmp_path / "comfy-ui.json"
    path.write_text(json.dumps(ui_doc))
    page.set_input_files("[data-testid=open-file]", str(path))
    page.wait_for_function("() => window.nodegraph.graph().nodes.some(n => n.data.nodeType === 'SaveImage')")
    wf = editor.workflow()
    assert wf["nodes"]["3"]["inputs"] == {"images": {"node": "1", "output": "IMAGE"}, "filename_prefix": "from-comfy"}
    expect(page.locator(".ng-group-title", has_text="Made in ComfyUI")).to_be_visible()
    # save as native JSON
    page.click("[data-testid=menu-workflow]")
    with page.expect_download() as dl:
        page.click("[data-testid=menu-save]")
    saved = json.loads(Path(dl.value.path()).read_text())
    assert saved["version"] == 1 and saved["nodes"]["1"]["inputs"]["width"] == 40
    expect(page.locator("[data-testid=dirty]")).to_have_count(0)
    # export for ComfyUI: links as [id, output index]
    page.click("[data-testid=menu-workflow]")
    with page.expect_download() as dl:
        page.click("[data-testid=menu-export-api]")
    api = json.loads(Path(dl.value.path()).read_text())
    assert api["3"]["class_type"] == "SaveImage"
    assert api["3"]["inputs"] == {"images": ["1", 0], "filename_prefix": "from-comfy"}


def test_undo_redo_copy_paste(editor, artifacts):
    page = editor.page
    editor.open_example("image-basics")
    before = editor.graph()
    assert len(before["edges"]) == 3
    # select the middle node and delete it: its two links go with it
    editor.node("2").locator(".ng-node-header").click()
    editor.press("Delete")
    g = editor.graph()
    assert [n["id"] for n in g["nodes"]] == ["1", "3", "4"] and len(g["edges"]) == 1
    editor.press("Control+z")
    assert editor.graph()["edges"] == before["edges"]
    assert [n["id"] for n in editor.graph()["nodes"]] == ["1", "2", "3", "4"]
    expect(page.locator(".react-flow__edge")).to_have_count(3)
    editor.press("Control+y")
    assert len(editor.graph()["edges"]) == 1
    editor.press("Control+z")
    assert len(editor.graph()["edges"]) == 3
    # a value edit is one step too
    editor.set_widget("1", "width", 77)
    editor.press("Control+z")
    assert editor.workflow()["nodes"]["1"]["inputs"]["width"] == 128
    editor.press("Control+Shift+z")
    assert editor.workflow()["nodes"]["1"]["inputs"]["width"] == 77
    # copy two linked nodes and paste them: the link between them is pasted too
    editor.node("1").locator(".ng-node-header").click()
    editor.node("2").locator(".ng-node-header").click(modifiers=["Control"])
    page.keyboard.press("Control+c")
    page.mouse.move(500, 600)
    page.keyboard.press("Control+v")
    g = editor.graph()
    assert sorted(n["id"] for n in g["nodes"]) == ["1", "2", "3", "4", "5", "6"]
    assert {"source": "5", "sourceHandle": "o:IMAGE", "target": "6", "targetHandle": "i:image"} in g["edges"]
    editor.press("Control+a")
    assert page.locator(".react-flow__node.selected").count() == 6
    editor.press("Control+z")
    assert len(editor.graph()["nodes"]) == 4
    # unsaved work survives a reload
    page.reload()
    editor.wait_ready()
    page.wait_for_function("() => window.nodegraph.graph().nodes.length === 4")
    assert editor.workflow()["nodes"]["1"]["inputs"]["width"] == 77
