"""Bypass / mute / collapse / pin / colour, workflow tabs, and the smaller editor items of issue 19,
in a real browser against a real server. Shortcuts and file fields are ComfyUI's (Ctrl+B bypass,
Ctrl+M mute, Alt+C collapse; litegraph modes 2/4 written as native "muted"/"bypassed")."""
from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from playwright.sync_api import expect

pytestmark = pytest.mark.slow

CHAIN = {"version": 1, "nodes": {
    "1": {"type": "EmptyImage", "inputs": {"width": 48, "height": 32, "batch_size": 1, "color": 0},
          "ui": {"pos": [0, 0]}},
    "2": {"type": "ImageInvert", "inputs": {"image": {"node": "1", "output": "IMAGE"}}, "ui": {"pos": [320, 0]}},
    "3": {"type": "SaveImage", "inputs": {"images": {"node": "2", "output": "IMAGE"}, "filename_prefix": "modes"},
          "ui": {"pos": [640, 0]}}}}


def load(editor, doc, name="chain"):
    editor.page.evaluate("([d, n]) => window.nodegraph.loadDocument(d, n)", [doc, name])
    editor.page.wait_for_function("() => window.nodegraph.graph().nodes.length > 0")
    editor.page.wait_for_timeout(200)


def select(editor, node_id):
    editor.node(node_id).locator(".ng-node-header").click(position={"x": 12, "y": 12})


def saved_image(editor, node_id):
    out = editor.page.locator(f"[data-testid='output-{node_id}']").first
    expect(out).to_be_visible(timeout=20000)
    return Image.open(io.BytesIO(editor.server.get(out.get_attribute("src")))).convert("RGB")


def test_bypass_mute_collapse_pin_colour(editor, artifacts):
    page = editor.page
    load(editor, CHAIN)
    select(editor, "2")
    editor.press("Control+b")
    expect(editor.node("2")).to_have_attribute("data-mode", "bypassed")
    expect(editor.node("2").locator(".ng-badge-bypass")).to_be_visible()
    assert editor.workflow()["nodes"]["2"]["mode"] == "bypassed"
    # queued: the server skips the invert, so the black canvas is saved as it is
    editor.press("Control+Enter")
    assert saved_image(editor, "3").getpixel((5, 5)) == (0, 0, 0)
    editor.screenshot(artifacts / "modes-01-bypassed.png")

    # Ctrl+B again un-bypasses; Ctrl+M mutes: SaveImage's input then comes from a muted node
    editor.press("Control+b")
    expect(editor.node("2")).to_have_attribute("data-mode", "always")
    editor.press("Control+m")
    expect(editor.node("2")).to_have_attribute("data-mode", "muted")
    editor.press("Control+Enter")
    err = page.locator("[data-testid='error-3']")
    expect(err).to_contain_text("images")
    expect(err).to_contain_text("node 2 (ImageInvert), which is muted")
    editor.screenshot(artifacts / "modes-02-muted-error.png")
    editor.press("Control+m")
    expect(editor.node("2")).to_have_attribute("data-mode", "always")

    # Alt+C collapses to the title bar; the links still draw
    editor.press("Alt+c")
    expect(editor.node("2")).to_have_class(__import__("re").compile(r"\bcollapsed\b"))
    expect(editor.node("2").locator(".ng-node-body")).to_have_count(0)
    expect(page.locator(".react-flow__edge")).to_have_count(2)
    assert editor.workflow()["nodes"]["2"]["ui"]["collapsed"] is True

    # the node menu: pin and colour, acting on the selection
    editor.node("3").click(button="right", position={"x": 40, "y": 12})
    page.get_by_role("menuitem", name="Pin").click()
    editor.node("3").click(button="right", position={"x": 40, "y": 12})
    page.get_by_role("group", name="Colour").get_by_label("colour green").click()
    wf = editor.workflow()["nodes"]["3"]
    assert wf["ui"]["pinned"] is True and (wf["ui"]["color"], wf["ui"]["bgcolor"]) == ("#232", "#353")
    box = editor.node("3").bounding_box()
    pos = lambda: next((n["x"], n["y"]) for n in editor.graph()["nodes"] if n["id"] == "3")  # noqa: E731
    before = pos()
    page.mouse.move(box["x"] + 60, box["y"] + 12)
    page.mouse.down()
    page.mouse.move(box["x"] + 200, box["y"] + 150, steps=8)
    page.mouse.up()
    assert pos() == before, "a pinned node moved"  # (the drag pans the canvas instead, as in ComfyUI)
    editor.node("1").click(button="right", position={"x": 40, "y": 12})
    page.get_by_role("menuitem", name="Bypass").click()
    editor.screenshot(artifacts / "modes-03-looks.png")

    # the selection toolbox acts on every selected node
    select(editor, "2")
    editor.node("3").locator(".ng-node-header").click(position={"x": 12, "y": 12}, modifiers=["Control"])
    toolbox = page.locator(".ng-toolbox")
    expect(toolbox).to_be_visible()
    editor.screenshot(artifacts / "modes-03b-toolbox.png")
    toolbox.get_by_role("button", name="Mute").click()
    expect(editor.node("2")).to_have_attribute("data-mode", "muted")
    expect(editor.node("3")).to_have_attribute("data-mode", "muted")
    toolbox.get_by_role("button", name="Mute").click()
    expect(editor.node("3")).to_have_attribute("data-mode", "always")

    # all of it survives a reload (autosave) and reads back from the saved document
    page.wait_for_timeout(600)
    page.reload()
    editor.wait_ready()
    page.wait_for_function("() => window.nodegraph.graph().nodes.length === 3")
    expect(editor.node("1")).to_have_attribute("data-mode", "bypassed")
    nodes = editor.workflow()["nodes"]
    assert nodes["2"]["ui"]["collapsed"] is True and nodes["3"]["ui"]["pinned"] is True
    assert nodes["3"]["ui"]["bgcolor"] == "#353"


def test_comfy_ui_file_keeps_modes_and_flags(editor, artifacts):
    doc = {"last_node_id": 3, "last_link_id": 2, "version": 0.4, "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
           "nodes": [
               {"id": 1, "type": "EmptyImage", "mode": 0, "pos": [0, 0], "size": [315, 130],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}], "widgets_values": [48, 32, 1, 0]},
               {"id": 2, "type": "ImageInvert", "mode": 4, "pos": [360, 0], "flags": {"collapsed": True},
                "color": "#323", "bgcolor": "#535",
                "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}]},
               {"id": 3, "type": "PreviewImage", "mode": 2, "pos": [620, 0], "flags": {"pinned": True},
                "inputs": [{"name": "images", "type": "IMAGE", "link": 2}]}]}
    editor.drop_file("comfy-modes.json", json.dumps(doc).encode(), "application/json")
    editor.page.wait_for_function("() => window.nodegraph.graph().nodes.length === 3")
    expect(editor.node("2")).to_have_attribute("data-mode", "bypassed")
    expect(editor.node("3")).to_have_attribute("data-mode", "muted")
    nodes = editor.workflow()["nodes"]
    assert nodes["2"]["ui"]["collapsed"] is True and nodes["2"]["ui"]["bgcolor"] == "#535"
    assert nodes["3"]["ui"]["pinned"] is True
    assert nodes["3"]["inputs"]["images"] == {"node": "2", "output": "IMAGE"}  # still wired through the bypassed node
    editor.screenshot(artifacts / "modes-04-comfy-import.png")


def tab_names(editor):
    return editor.page.locator("[data-testid=workflow-tab] .ng-wtab-name").all_inner_texts()


def expect_tab_names(editor, names: list[str]) -> None:
    """The tab bar shows these names, in order (it follows the store a frame later)."""
    expect(editor.page.locator("[data-testid=workflow-tab] .ng-wtab-name")).to_have_text(names)


def test_workflow_tabs(editor, artifacts):
    page = editor.page
    expect(page.locator("[data-testid=workflow-tab]")).to_have_count(1)
    load(editor, CHAIN, "first")
    # a second tab with its own document
    page.get_by_label("New workflow tab").click()
    expect(page.locator("[data-testid=workflow-tab]")).to_have_count(2)
    assert editor.graph()["nodes"] == []
    second = dict(CHAIN, nodes={k: v for k, v in CHAIN["nodes"].items() if k != "2"})
    second = json.loads(json.dumps(second))
    second["nodes"]["3"]["inputs"]["images"] = {"node": "1", "output": "IMAGE"}
    load(editor, second, "second")
    expect_tab_names(editor, ["first", "second"])
    # edit the second (dirty), switch to the first: each keeps its own graph and undo log
    editor.set_widget("1", "width", 64)
    expect(page.locator("[data-testid=workflow-tab].active.dirty")).to_have_count(1)
    page.locator("[data-testid=workflow-tab]").nth(0).click()
    page.wait_for_function("() => window.nodegraph.graph().nodes.length === 3")
    assert editor.workflow()["nodes"]["1"]["inputs"]["width"] == 48
    page.locator("[data-testid=workflow-tab]").nth(1).click()
    page.wait_for_function("() => window.nodegraph.graph().nodes.length === 2")
    assert editor.workflow()["nodes"]["1"]["inputs"]["width"] == 64
    editor.press("Control+z")
    assert editor.workflow()["nodes"]["1"]["inputs"]["width"] == 48
    editor.press("Control+y")
    editor.screenshot(artifacts / "tabs-01-two-tabs.png")

    # tabs, their contents and which one is active come back after a reload
    page.wait_for_timeout(600)
    page.reload()
    editor.wait_ready()
    page.wait_for_function("() => window.nodegraph.graph().nodes.length === 2")
    expect_tab_names(editor, ["first", "second"])
    expect(page.locator("[data-testid=workflow-tab]").nth(1)).to_have_attribute("aria-selected", "true")
    assert editor.workflow()["nodes"]["1"]["inputs"]["width"] == 64

    # closing a dirty tab asks; dismissing keeps it
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.get_by_label("Close second").click()
    assert asked and "unsaved changes" in asked[0]
    expect(page.locator("[data-testid=workflow-tab]")).to_have_count(2)
    # closing the first (clean: loaded, never edited) asks nothing; then the second, accepted
    page.get_by_label("Close first").click()
    expect(page.locator("[data-testid=workflow-tab]")).to_have_count(1)
    page.once("dialog", lambda d: d.accept())
    page.get_by_label("Close second").click()
    expect(page.locator("[data-testid=workflow-tab]")).to_have_count(1)
    assert tab_names(editor) == ["Untitled"] and editor.graph()["nodes"] == []
    editor.screenshot(artifacts / "tabs-02-after-close.png")


SAVED_DIRTY = """(name) => Object.keys(localStorage).some((k) => {
    if (!k.startsWith('nodegraph:tab:')) return false;
    const slot = JSON.parse(localStorage.getItem(k));
    return slot.name === name && slot.dirty;
})"""


def test_two_browser_tabs_lose_nothing(editor, browser_context):
    """Issue 19: closing browser tab A then B lost A's unsaved graph (they shared one slot)."""
    page_a = editor.page
    load(editor, CHAIN, "from-a")
    page_a.evaluate("() => window.nodegraph.editor.set({dirty: true})")  # unsaved work
    page_a.wait_for_function(SAVED_DIRTY, arg="from-a")  # autosaved (debounced)
    page_b = browser_context.new_page()
    page_b.goto(editor.server.url + "/")
    page_b.wait_for_selector("[data-testid=workflow-tab]")  # the tabs are restored (a tab, not just the bar)
    page_b.get_by_label("New workflow tab").click()
    page_b.evaluate("([d, n]) => window.nodegraph.loadDocument(d, n)", [CHAIN, "from-b"])
    page_b.evaluate("() => window.nodegraph.editor.set({dirty: true})")
    expect(page_b.locator("[data-testid=workflow-tab].active .ng-wtab-name")).to_have_text("from-b")
    page_b.wait_for_function(SAVED_DIRTY, arg="from-b")
    page_a.close()
    page_b.close()
    page_c = browser_context.new_page()
    page_c.goto(editor.server.url + "/")
    page_c.wait_for_selector("[data-testid=workflow-tab]")
    tab_names_c = page_c.locator("[data-testid=workflow-tab] .ng-wtab-name")
    for name in ("from-a", "from-b"):  # restored tabs may appear one after another
        expect(tab_names_c.filter(has_text=name)).to_have_count(1)
    names = tab_names_c.all_inner_texts()
    page_c.close()
    assert "from-a" in names and "from-b" in names, names


# --- the smaller items of issue 19 -------------------------------------------------------------------

def open_search(editor, x, y):
    """Double-click the canvas (a first click leaves whatever had the focus, as a person's would)."""
    editor.page.mouse.click(x, y)
    editor.page.wait_for_timeout(300)
    editor.page.mouse.dblclick(x, y)


def gallery_count(editor):
    badge = editor.page.locator("[data-testid=tab-gallery] .ng-count")
    return int(badge.inner_text()) if badge.count() else 0


def test_link_drop_ranking_placement_latent_size_palette(editor, artifacts):
    page = editor.page
    # a new Empty Latent Image is sized for the default checkpoint (the shipped model draws 128×128)
    latent = editor.drag_from_palette("EmptyLatentImage", 40, 60)
    values = next(n["values"] for n in editor.graph()["nodes"] if n["id"] == latent)
    assert (values["width"], values["height"]) == (128, 128)
    # dropping its LATENT link on empty canvas: VAE Decode first (not alphabetical), the list not capped
    editor.node(latent).hover()
    sx, sy = editor._center(editor.handle(latent, "o:LATENT"))
    box = editor.canvas_box()
    drop = (box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.5)
    page.mouse.move(sx, sy)
    page.mouse.down()
    page.mouse.move(*drop, steps=12)
    page.mouse.up()
    items = page.locator(".ng-search-item[data-testid^=search-]")
    expect(items.first).to_have_attribute("data-testid", "search-VAEDecode")
    names = [t.removeprefix("search-") for t in items.evaluate_all("els => els.map(e => e.dataset.testid)")]
    assert names[1:3] == ["KSampler", "KSamplerAdvanced"] and len(names) > 14, names
    editor.screenshot(artifacts / "small-01-link-drop.png")
    items.first.click()
    decode = editor.node_ids_of("VAEDecode")[0]
    # the new node is centred on the drop point and wired to the link
    nb = editor.node(decode).bounding_box()
    assert abs(nb["x"] + nb["width"] / 2 - drop[0]) < 40 and abs(nb["y"] + nb["height"] / 2 - drop[1]) < 80, (nb, drop)
    assert any(e["target"] == decode and e["targetHandle"] == "i:samples" for e in editor.graph()["edges"])

    # near the right edge a new node stays inside the canvas, never under the side panel
    edge = (box["x"] + box["width"] - 8, box["y"] + 120)
    open_search(editor, *edge)
    page.get_by_label("Search nodes").fill("Save Image")
    page.locator("[data-testid=search-SaveImage]").click()
    save = editor.node_ids_of("SaveImage")[0]
    sb = editor.node(save).bounding_box()
    assert sb["x"] + sb["width"] <= box["x"] + box["width"], (sb, box)
    editor.screenshot(artifacts / "small-02-placement.png")

    # _for_testing nodes are not in the palette (the canvas search still finds them)
    page.get_by_label("Filter nodes").fill("Latent Blend")
    expect(page.locator("[data-testid=palette-LatentBlend]")).to_have_count(0)
    page.get_by_label("Filter nodes").fill("")
    expect(page.locator(".ng-palette-cat-head", has_text="_for_testing")).to_have_count(0)
    open_search(editor, box["x"] + 150, box["y"] + box["height"] * 0.85)
    page.get_by_label("Search nodes").fill("Latent Blend")
    expect(page.locator("[data-testid=search-LatentBlend]")).to_be_visible()
    page.keyboard.press("Escape")


def test_resize_scrub_errors_json_lightbox_gallery(editor, artifacts):
    page = editor.page
    load(editor, CHAIN)
    # number scrubbing: drag sideways on the widget's label, one step per 6 px
    label = editor.node("1").locator("[data-scrub=width]")
    label.hover()  # (the step arrows show on hover and move the label)
    lb = label.bounding_box()
    x0, y0 = lb["x"] + lb["width"] / 2, lb["y"] + lb["height"] / 2
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 60, y0, steps=10)
    page.mouse.up()
    assert editor.workflow()["nodes"]["1"]["inputs"]["width"] == 48 + 10
    editor.press("Control+z")  # one undo step for the whole drag
    assert editor.workflow()["nodes"]["1"]["inputs"]["width"] == 48

    # resize: the handle of a selected node; the size is saved and comes back after a reload
    select(editor, "3")
    handle = page.locator(".react-flow__node[data-id='3'] .react-flow__resize-control.handle.bottom.right")
    hb = handle.bounding_box()
    before = editor.node("3").bounding_box()
    page.mouse.move(hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2)
    page.mouse.down()
    page.mouse.move(hb["x"] + 120, hb["y"] + 90, steps=10)
    page.mouse.up()
    size = editor.workflow()["nodes"]["3"]["ui"]["size"]
    assert size[0] > before["width"] + 80, (size, before)
    editor.screenshot(artifacts / "small-03-resized.png")
    page.wait_for_timeout(600)
    page.reload()
    editor.wait_ready()
    page.wait_for_function("() => window.nodegraph.graph().nodes.length === 3")
    assert editor.workflow()["nodes"]["3"]["ui"]["size"] == size

    # the gallery count grows after a run (it was history's images before, this run's only after)
    page.click("[data-testid=tab-gallery]")
    before_count = gallery_count(editor)
    editor.press("Control+Enter")
    expect(page.locator("[data-testid='output-3']").first).to_be_visible(timeout=20000)
    page.wait_for_timeout(500)
    assert gallery_count(editor) >= before_count + 1

    # Esc closes the lightbox
    page.locator("[data-testid=gallery] img").first.click()
    expect(page.locator(".ng-lightbox")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator(".ng-lightbox")).to_have_count(0)

    # several errors on one node: each names its input
    bad = json.loads(json.dumps(CHAIN))
    bad["nodes"]["1"]["inputs"].update(width=0, height=-5)
    load(editor, bad, "bad")
    editor.press("Control+Enter")
    err = page.locator("[data-testid='error-1']")
    expect(err.locator(".ng-node-error-item")).to_have_count(2)
    expect(err.locator(".ng-node-error-item").nth(0)).to_contain_text("width:")
    expect(err.locator(".ng-node-error-item").nth(1)).to_contain_text("height:")
    editor.screenshot(artifacts / "small-04-stacked-errors.png")

    # a malformed JSON file: the toast says where
    editor.drop_file("broken.json", b'{\n  "version": 1,\n  "nodes": {,}\n}', "application/json")
    toast = page.locator("[data-testid=toast]", has_text="broken.json")
    expect(toast).to_contain_text("line 3, column 13")
    editor.screenshot(artifacts / "small-05-json-toast.png")


def test_tabs_keep_their_own_subgraphs(editor, artifacts):
    """Each tab's subgraph definitions and open level go with it (state/subgraphs.ts keeps them per tab)."""
    page = editor.page
    load(editor, CHAIN, "with-subgraph")
    select(editor, "2")
    editor.press("Control+Shift+E")
    page.wait_for_function("() => window.nodegraph.graph().nodes.filter(n => n.data.kind === 'op').length === 3")
    [instance] = [k for k, n in editor.workflow()["nodes"].items() if n["type"] not in ("EmptyImage", "SaveImage")]
    editor.node(instance).locator(".ng-node-header").dblclick()  # inside the subgraph
    expect(page.locator("[data-testid=subgraph-breadcrumb]")).to_be_visible()
    page.get_by_label("New workflow tab").click()
    load(editor, CHAIN, "plain")
    assert "subgraphs" not in (editor.workflow().get("ui") or {})
    expect(page.locator("[data-testid=subgraph-breadcrumb]")).to_have_count(0)
    page.locator("[data-testid=workflow-tab]").nth(0).click()
    # back inside the subgraph, where the tab was left
    expect(page.locator("[data-testid=subgraph-breadcrumb]")).to_be_visible()
    page.wait_for_function("() => window.nodegraph.graph().nodes.some(n => n.id === '-10')")
    assert len(editor.workflow()["ui"]["subgraphs"]) == 1
    editor.screenshot(artifacts / "tabs-03-subgraph-tab.png")
    page.locator("[data-testid=workflow-tab]").nth(1).click()
    page.wait_for_function("() => window.nodegraph.graph().nodes.length === 3")
    assert "subgraphs" not in (editor.workflow().get("ui") or {})
