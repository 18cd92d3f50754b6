"""Widgets, quick-add search, reroutes, groups, and the queue panel (batch, cancel, clear, interrupt)."""
from __future__ import annotations

import io
import re

from PIL import Image
from playwright.sync_api import expect


def test_widgets_search_reroute_group(editor, tmp_path):
    page = editor.page
    # double-click on empty canvas opens the search box; Enter adds the best match there
    box = editor.canvas_box()
    page.mouse.dblclick(box["x"] + 80, box["y"] + 80)
    search = page.get_by_label("Search nodes")
    expect(search).to_be_focused()
    search.fill("empty image")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.nodegraph.graph().nodes.length === 1")
    empty = editor.graph()["nodes"][0]
    assert empty["type"] == "EmptyImage"

    # LoadImage: upload a picture from disk; it becomes the choice and shows on the node
    load = editor.drag_from_palette("LoadImage", 340, 40)
    picture = tmp_path / "photo.png"
    Image.new("RGB", (24, 16), (10, 200, 30)).save(picture)
    editor.node(load).locator("[data-testid=image-upload]").set_input_files(str(picture))
    expect(editor.node(load).locator("select[name=image]")).to_have_value(re.compile(r"photo.*\.png"))
    expect(editor.node(load).locator("img.ng-node-image")).to_be_visible()
    name = editor.node(load).locator("select[name=image]").input_value()
    assert (editor.server.base / "input" / name).is_file()

    # a toggle, and a multiline text
    comp = editor.drag_from_palette("ImageCompositeMasked", 40, 330)
    editor.node(comp).get_by_role("switch", name="resize_source").click()
    assert editor.workflow()["nodes"][comp]["inputs"]["resize_source"] is True
    text = editor.drag_from_palette("PrimitiveStringMultiline", 340, 330)
    editor.node(text).locator("textarea").fill("a red circle\non a blue background")
    assert editor.workflow()["nodes"][text]["inputs"]["value"] == "a red circle\non a blue background"

    # convert a widget to an input socket (context menu) and back
    eid = empty["id"]
    editor.node(eid).locator(".ng-node-header").click(button="right")
    page.get_by_role("menuitem", name="Convert width to input").click()
    expect(editor.node(eid).locator("[data-input=width]")).to_have_count(0)
    expect(editor.node(eid).locator(".ng-slot-in", has_text="width")).to_be_visible()
    assert "width" not in editor.workflow()["nodes"][eid]["inputs"]
    editor.node(eid).locator(".ng-node-header").click(button="right")
    page.get_by_role("menuitem", name="Convert width to widget").click()
    expect(editor.node(eid).locator("[data-input=width]")).to_be_visible()
    assert editor.workflow()["nodes"][eid]["inputs"]["width"] == 512

    # a reroute point on a link: the editor keeps it, the server gets the direct link
    editor.drag_link(eid, "IMAGE", comp, "destination")
    x, y = editor.edge_point(0)
    page.mouse.click(x, y, button="right")
    page.get_by_role("menuitem", name="Add reroute point here").click()
    g = editor.graph()
    reroutes = [n for n in g["nodes"] if n["kind"] == "reroute"]
    assert len(reroutes) == 1 and len(g["edges"]) == 2
    wf = editor.workflow()
    assert wf["nodes"][comp]["inputs"]["destination"] == {"node": eid, "output": "IMAGE"}
    assert wf["ui"]["reroutes"][0]["id"] == reroutes[0]["id"]

    # a group around two selected nodes; dragging its title moves them along
    editor.node(eid).locator(".ng-node-header").click()
    editor.node(load).locator(".ng-node-header").click(modifiers=["Control"])
    editor.press("Control+g")
    group = page.locator("[data-testid^=group-]")
    expect(group).to_have_count(1)
    assert editor.workflow()["ui"]["groups"][0]["title"] == "Group"
    before = {n["id"]: (n["x"], n["y"]) for n in editor.graph()["nodes"]}
    page.locator(".react-flow__pane").click(position={"x": 5, "y": 5})  # deselect
    editor.press(".")  # fit to view, so the group's title is well inside the canvas
    page.wait_for_timeout(400)
    title = group.locator(".ng-group-title")
    tb = title.bounding_box()
    page.mouse.move(tb["x"] + tb["width"] - 30, tb["y"] + 12)
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(tb["x"] + tb["width"] - 30 + 6 * k, tb["y"] + 12 + 4 * k)
    page.mouse.up()
    after = {n["id"]: (n["x"], n["y"]) for n in editor.graph()["nodes"]}
    for nid in (eid, load):
        assert after[nid][0] > before[nid][0] + 30 and after[nid][1] > before[nid][1] + 20, (before[nid], after[nid])
    assert after[comp] == before[comp]


def test_queue_panel_batch_cancel_clear_interrupt(editor):
    page = editor.page
    page.evaluate("""() => window.nodegraph.loadDocument({version: 1, nodes: {
        "1": {type: "EmptyImage", inputs: {width: 16, height: 16, batch_size: 1, color: 255}, ui: {pos: [0, 0]}},
        "2": {type: "UITestSteps", inputs: {image: {node: "1", output: "IMAGE"}, steps: 40, delay: 0.1, seed: 1},
              ui: {pos: [300, 0], controls: {seed: "increment"}}},
        "3": {type: "PreviewImage", inputs: {images: {node: "2", output: "IMAGE"}}, ui: {pos: [600, 0]}}}}, "slow")""")
    page.get_by_label("Batch count").fill("4")
    page.click("[data-testid=queue-button]")
    page.click("[data-testid=tab-queue]")
    expect(page.locator("[data-testid=job-running]")).to_have_count(1, timeout=10000)
    expect(page.locator("[data-testid=job-pending]")).to_have_count(3)
    # the seed moved on once per queued job
    assert editor.workflow()["nodes"]["2"]["inputs"]["seed"] == 5
    page.locator("[data-testid=job-pending] [data-testid=cancel-job]").first.click()
    expect(page.locator("[data-testid=job-pending]")).to_have_count(2)
    page.click("[data-testid=clear-queue]")
    expect(page.locator("[data-testid=job-pending]")).to_have_count(0)
    # the running job is stopped by Interrupt, and says so
    expect(page.locator("[data-testid='node-2'].status-running")).to_be_visible()
    page.click("[data-testid=interrupt]")
    expect(page.locator("[data-testid=toast]", has_text="Interrupted")).to_be_visible(timeout=10000)
    expect(page.locator("[data-testid=job-running]")).to_have_count(0)
    page.click("[data-testid=tab-history]")
    expect(page.locator("[data-testid=job-interrupted]").first).to_be_visible()


def test_node_failure_shows_on_node(editor, artifacts):
    page = editor.page
    page.evaluate("""() => window.nodegraph.loadDocument({version: 1, nodes: {
        "1": {type: "EmptyImage", inputs: {width: 16, height: 16, batch_size: 1, color: 255}, ui: {pos: [0, 0]}},
        "2": {type: "UITestSteps", inputs: {image: {node: "1", output: "IMAGE"}, steps: 4, delay: 0.05, seed: 7, fail: true},
              ui: {pos: [300, 0]}},
        "3": {type: "SaveImage", inputs: {images: {node: "2", output: "IMAGE"}, filename_prefix: "fails"}, ui: {pos: [600, 0]}}}}, "failing")""")
    editor.press("Control+Enter")
    err = page.locator("[data-testid=error-2]")
    expect(err).to_be_visible(timeout=20000)
    expect(err).to_contain_text("asked to fail (at step 3 of 4)")
    expect(page.locator("[data-testid=toast]", has_text="failed")).to_be_visible()
    expect(page.locator("[data-testid='node-1'].status-done, [data-testid='node-1'].status-cached")).to_be_visible()
    page.click("[data-testid=tab-history]")
    expect(page.locator("[data-testid=job-error]").first).to_be_visible()
    editor.press(".")
    page.wait_for_timeout(400)
    editor.screenshot(artifacts / "05b-node-failed.png")
    # turning the failure off and running again clears the error
    editor.node("2").get_by_role("switch", name="fail").click()
    editor.press("Control+Enter")
    expect(page.locator("[data-testid='output-3']").first).to_be_visible(timeout=20000)
    expect(err).to_have_count(0)


def test_workers_tab_shows_the_worker_its_device_and_jobs(editor, artifacts):
    """Issue 16: the side panel shows /v1/cluster — backend, each worker's device, jobs run, current job."""
    page = editor.page
    page.click("[data-testid=tab-workers]")
    worker = page.locator("[data-testid=worker]")
    expect(worker).to_have_count(1)
    expect(page.locator("[data-testid=worker-device]")).to_contain_text("cpu")
    before = int(page.locator("[data-testid=worker-summary]").inner_text().split()[0])
    page.evaluate("""() => window.nodegraph.loadDocument({version: 1, nodes: {
        "1": {type: "EmptyImage", inputs: {width: 16, height: 16, batch_size: 1, color: 255}, ui: {pos: [0, 0]}},
        "2": {type: "UITestSteps", inputs: {image: {node: "1", output: "IMAGE"}, steps: 30, delay: 0.1, seed: 3},
              ui: {pos: [300, 0]}},
        "3": {type: "PreviewImage", inputs: {images: {node: "2", output: "IMAGE"}}, ui: {pos: [600, 0]}}}}, "workers")""")
    page.click("[data-testid=queue-button]")
    expect(worker).to_contain_text("busy", timeout=10000)  # polled every 2 s while the tab is open
    expect(worker).to_contain_text("running")
    editor.screenshot(artifacts / "16-workers-tab.png")
    expect(worker).to_contain_text("idle", timeout=20000)
    expect(page.locator("[data-testid=worker-summary]")).to_contain_text(f"{before + 1} job")
