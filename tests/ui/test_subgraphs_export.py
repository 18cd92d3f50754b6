"""ComfyUI's file shapes in the editor: Export → ComfyUI workflow, saved PNGs with ComfyUI's "workflow" and
"prompt" chunks (and ours), dropping a ComfyUI PNG, notes, reroutes and control_after_generate."""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo
from playwright.sync_api import expect


def _text_chunks(data: bytes) -> dict[str, str]:
    at, out = 8, {}
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        if data[at + 4:at + 8] == b"tEXt":
            key, _, text = data[at + 8:at + 8 + length].partition(b"\0")
            out[key.decode("latin-1")] = text.decode("latin-1")
        at += 12 + length
    return out


def _wait_for_file(folder: Path, pattern: str, timeout: float = 30, before: set | None = None) -> Path:
    """The newest file matching `pattern` that was not there `before` (the server outlives one test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(set(folder.glob(pattern)) - (before or set()))
        if found:
            time.sleep(0.2)  # written atomically: a name that exists is complete
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no {pattern} in {folder}")


def _history_ids(editor) -> set:
    return {j["job_id"] for j in editor.server.get("/v1/history?limit=100")["items"]}


def _new_finished_job(editor, before: set, timeout: float = 30) -> dict:
    """The job that finished after `before` was taken (the server outlives one test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job in editor.server.get("/v1/history?limit=100")["items"]:
            if job["job_id"] not in before and job["status"] in ("success", "error", "interrupted"):
                return job
        time.sleep(0.2)
    raise AssertionError("no job finished")


def test_export_comfyui_and_png_chunks(editor, artifacts):
    page = editor.page
    editor.open_example("image-basics")
    # Export → ComfyUI workflow (.json): the UI-format document ComfyUI's frontend opens
    page.click("[data-testid=menu-workflow]")
    expect(page.locator(".ng-menu-head", has_text="Export")).to_be_visible()
    editor.screenshot(artifacts / "export-menu.png")
    with page.expect_download() as dl:
        page.click("[data-testid=menu-export-comfyui]")
    ui = json.loads(Path(dl.value.path()).read_text())
    assert dl.value.suggested_filename.endswith(".comfyui.json")
    assert ui["version"] == 0.4 and "ds" in ui["extra"]
    by_type = {n["type"]: n for n in ui["nodes"]}
    assert by_type["EmptyImage"]["widgets_values"] == [128, 96, 1, 16724787]
    assert by_type["EmptyImage"]["title"] == "Canvas"
    assert by_type["ImageScaleBy"]["widgets_values"] == ["bilinear", 0.5]
    assert len(ui["links"]) == 3 and all(len(link) == 6 for link in ui["links"])

    # a run: the saved PNG carries prompt (API), workflow (UI) and nodegraph (native)
    before = set((editor.server.base / "output").glob("image-basics_*.png"))
    # the server outlives one test: another test may have run this example, and its SaveImage would be cached
    assert page.request.post(editor.server.url + "/v1/free", data={"free_memory": True}).ok
    editor.press("Control+Enter")
    png = _wait_for_file(editor.server.base / "output", "image-basics_*.png", before=before)
    chunks = _text_chunks(png.read_bytes())
    assert {"prompt", "workflow", "nodegraph"} <= set(chunks)
    workflow = json.loads(chunks["workflow"])
    assert workflow["version"] == 0.4 and {n["type"] for n in workflow["nodes"]} == set(by_type)
    prompt = json.loads(chunks["prompt"])
    assert prompt["3"]["inputs"] == {"image": ["2", 0], "upscale_method": "bilinear", "scale_by": 0.5}

    # dropping that PNG back opens ComfyUI's "workflow"? no: ours is preferred, and both agree
    page.evaluate("() => window.nodegraph.loadDocument({version: 1, nodes: {}}, 'empty')")
    editor.drop_file(png.name, png.read_bytes(), "image/png")
    page.wait_for_function("() => window.nodegraph.graph().nodes.length === 4")
    assert editor.workflow()["nodes"]["3"]["inputs"]["scale_by"] == 0.5


def _comfy_png() -> bytes:
    """A PNG as ComfyUI saves it: only "prompt" and "workflow" chunks; the workflow has a Note, a
    MarkdownNote, a Reroute and a PrimitiveInt whose control_after_generate is "increment"."""
    workflow = {
        "id": "8c4a2a8e-0000-4000-8000-000000000001", "revision": 0, "last_node_id": 7, "last_link_id": 3,
        "version": 0.4, "config": {}, "groups": [], "extra": {"ds": {"scale": 1, "offset": [40, 60]}},
        "nodes": [
            {"id": 1, "type": "PrimitiveInt", "pos": [0, 0], "size": [270, 82], "flags": {}, "order": 0, "mode": 0,
             "inputs": [], "outputs": [{"name": "INT", "type": "INT", "links": [1]}],
             "properties": {"Node name for S&R": "PrimitiveInt"}, "widgets_values": [5, "increment"]},
            {"id": 2, "type": "Reroute", "pos": [330, 40], "size": [75, 26], "flags": {}, "order": 1, "mode": 0,
             "inputs": [{"name": "", "type": "*", "link": 1}], "outputs": [{"name": "", "type": "INT", "links": [2]}],
             "properties": {"showOutputText": False, "horizontal": False}},
            {"id": 3, "type": "MathInt", "pos": [460, 0], "size": [270, 110], "flags": {}, "order": 2, "mode": 0,
             "inputs": [{"name": "a", "type": "INT", "widget": {"name": "a"}, "link": 2}],
             "outputs": [{"name": "INT", "type": "INT", "links": [3]}], "properties": {}, "widgets_values": [0, 10, "add"]},
            {"id": 4, "type": "PreviewAny", "pos": [800, 0], "size": [240, 120], "flags": {}, "order": 3, "mode": 0,
             "inputs": [{"name": "source", "type": "*", "link": 3}], "outputs": [], "properties": {}},
            {"id": 6, "type": "Note", "pos": [0, 200], "size": [320, 110], "flags": {}, "order": 4, "mode": 0,
             "inputs": [], "outputs": [], "properties": {"text": ""}, "widgets_values": ["counts up after every queue"],
             "color": "#432", "bgcolor": "#653"},
            {"id": 7, "type": "MarkdownNote", "pos": [460, 200], "size": [320, 110], "flags": {}, "order": 5, "mode": 0,
             "inputs": [], "outputs": [], "properties": {}, "widgets_values": ["# Sum\n*a* + 10"],
             "color": "#432", "bgcolor": "#653"},
        ],
        "links": [[1, 1, 0, 2, 0, "*"], [2, 2, 0, 3, 0, "INT"], [3, 3, 0, 4, 0, "INT"]],
    }
    prompt = {"1": {"class_type": "PrimitiveInt", "inputs": {"value": 5}},
              "3": {"class_type": "MathInt", "inputs": {"a": ["1", 0], "b": 10, "op": "add"}},
              "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}}
    info = PngInfo()
    info.add_text("prompt", json.dumps(prompt))
    info.add_text("workflow", json.dumps(workflow))
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_drop_comfyui_png_keeps_notes_reroute_and_controls(editor, artifacts):
    page = editor.page
    editor.drop_file("ComfyUI_00001_.png", _comfy_png(), "image/png")
    page.wait_for_function("() => window.nodegraph.graph().nodes.some(n => n.data.nodeType === 'PreviewAny')")
    graph = editor.graph()
    kinds = sorted(n["kind"] for n in graph["nodes"])
    assert kinds == ["note", "note", "op", "op", "op", "reroute"]
    # the notes show their text and can be edited
    expect(page.locator("[data-testid='note-6'] textarea")).to_have_value("counts up after every queue")
    expect(page.locator("[data-testid='note-7']")).to_contain_text("Markdown Note")
    # the reroute is a dot with one input and one output, drawn between the two nodes
    assert sorted((e["source"], e["target"]) for e in graph["edges"]) == [("1", "2"), ("2", "3"), ("3", "4")]
    expect(page.locator("[data-testid='node-2'].ng-reroute")).to_be_visible()
    assert page.locator("[data-testid='node-2'] .react-flow__handle").count() == 2
    # control_after_generate came in as written
    expect(editor.node("1").get_by_label("control after generate")).to_have_value("increment")
    editor.screenshot(artifacts / "comfyui-png-dropped.png")

    page.locator("[data-testid='note-6'] textarea").fill("edited in nodegraph")
    wf = editor.workflow()
    assert [n["text"] for n in wf["ui"]["notes"]] == ["edited in nodegraph", "# Sum\n*a* + 10"]
    assert set(wf["nodes"]) == {"1", "3", "4"}  # notes and the reroute are not engine nodes
    assert wf["nodes"]["3"]["inputs"]["a"] == {"node": "1", "output": "INT"}

    # queue: the job runs 5 + 10, then the value moves on (increment), as ComfyUI's frontend does
    before = _history_ids(editor)
    editor.press("Control+Enter")
    page.wait_for_function("() => window.nodegraph.currentWorkflow().nodes['1'].inputs.value === 6")
    job = _new_finished_job(editor, before)
    assert job["status"] == "success"
    assert set(job["workflow"]["nodes"]) == {"1", "3", "4"}
    assert job["outputs"]["4"]["text"] == ["15"]
    # saved again in ComfyUI's format, the notes, the reroute and the control are there
    page.click("[data-testid=menu-workflow]")
    with page.expect_download() as dl:
        page.click("[data-testid=menu-export-comfyui]")
    ui = json.loads(Path(dl.value.path()).read_text())
    by_id = {n["id"]: n for n in ui["nodes"]}
    assert by_id[6]["type"] == "Note" and by_id[6]["widgets_values"] == ["edited in nodegraph"]
    assert by_id[7]["type"] == "MarkdownNote"
    assert by_id[2]["type"] == "Reroute" and by_id[2]["outputs"][0]["type"] == "INT"
    assert by_id[1]["widgets_values"] == [6, "increment"]
    editor.screenshot(artifacts / "comfyui-png-after-queue.png")


def test_add_note_from_the_canvas_menu(editor, artifacts):
    page = editor.page
    box = editor.canvas_box()
    page.mouse.click(box["x"] + 300, box["y"] + 200, button="right")
    page.get_by_role("menuitem", name="Add note", exact=True).click()
    note = page.locator(".ng-note").first
    expect(note).to_be_visible()
    note.locator("textarea").fill("remember the seed")
    wf = editor.workflow()
    assert wf["nodes"] == {}
    [saved] = wf["ui"]["notes"]
    assert saved["type"] == "Note" and saved["text"] == "remember the seed"
    editor.screenshot(artifacts / "note-added.png")
    # undo takes the text back, redo restores it
    editor.press("Control+z")
    page.wait_for_function("() => (window.nodegraph.currentWorkflow().ui?.notes?.[0]?.text ?? '') !== 'remember the seed'")


def test_subgraph_convert_enter_rename_exit_run_unpack(editor, artifacts):
    page = editor.page
    editor.open_example("image-basics")
    # select Invert and Scale By, Ctrl+Shift+E (ComfyUI's key for Convert Selection to Subgraph)
    editor.node("2").locator(".ng-node-header").click()
    editor.node("3").locator(".ng-node-header").click(modifiers=["Control"])
    editor.press("Control+Shift+E")
    page.wait_for_function("() => window.nodegraph.graph().nodes.filter(n => n.data.kind === 'op').length === 3")
    wf = editor.workflow()
    [definition] = wf["ui"]["subgraphs"]
    [instance] = [k for k, n in wf["nodes"].items() if n["type"] == definition["id"]]
    assert [(s["name"], s["type"]) for s in definition["inputs"]] == [("image", "IMAGE")]
    assert [(s["name"], s["type"]) for s in definition["outputs"]] == [("IMAGE", "IMAGE")]
    assert wf["nodes"][instance]["inputs"] == {"image": {"node": "1", "output": "IMAGE"}}
    assert wf["nodes"]["4"]["inputs"]["images"] == {"node": instance, "output": "IMAGE"}
    expect(editor.node(instance)).to_contain_text("New Subgraph")
    editor.screenshot(artifacts / "subgraph-converted.png")

    # double-click enters it: the breadcrumb shows the way back, the boundary nodes its inputs/outputs
    editor.node(instance).locator(".ng-node-header").dblclick()
    expect(page.locator("[data-testid=subgraph-breadcrumb]")).to_contain_text("New Subgraph")
    page.wait_for_function("() => window.nodegraph.graph().nodes.some(n => n.id === '-10')")
    assert sorted(n["type"] or "" for n in editor.graph()["nodes"]) == \
        sorted(["ImageInvert", "ImageScaleBy", "SubgraphInputs", "SubgraphOutputs"])
    # rename the input, change a value inside
    field = page.locator("[data-testid=sg-input-0]")
    field.fill("picture")
    field.press("Enter")
    expect(editor.node("-10")).to_contain_text("picture")
    editor.set_widget("3", "scale_by", 0.25)
    editor.screenshot(artifacts / "subgraph-inside.png")
    # the document saved from inside is the whole one
    assert editor.workflow()["nodes"][instance]["inputs"] == {"picture": {"node": "1", "output": "IMAGE"}}

    # out through the breadcrumb
    page.click("[data-testid=crumb-0]")
    expect(page.locator("[data-testid=subgraph-bar]")).to_have_count(0)
    wf = editor.workflow()
    [definition] = wf["ui"]["subgraphs"]
    assert definition["inputs"][0]["name"] == "picture"
    scale = next(n for n in definition["nodes"] if n["type"] == "ImageScaleBy")
    assert scale["widgets_values"] == ["bilinear", 0.25]

    # run it: the server expands the subgraph (128x96 inverted, scaled by 0.25)
    before = set((editor.server.base / "output").glob("image-basics_*.png"))
    # the server outlives one test: another test may have run this example, and its SaveImage would be cached
    assert page.request.post(editor.server.url + "/v1/free", data={"free_memory": True}).ok
    editor.press("Control+Enter")
    png = _wait_for_file(editor.server.base / "output", "image-basics_*.png", before=before)
    with Image.open(png) as im:
        assert im.size == (32, 24)
        pixel = im.convert("RGB").getpixel((5, 5))
    assert pixel == (0, 204, 204)  # 0xFF3333 inverted
    saved = json.loads(_text_chunks(png.read_bytes())["workflow"])
    assert saved["definitions"]["subgraphs"][0]["id"] == definition["id"]

    # Export → ComfyUI workflow carries definitions.subgraphs, the instance typed by its id
    page.click("[data-testid=menu-workflow]")
    with page.expect_download() as dl:
        page.click("[data-testid=menu-export-comfyui]")
    ui = json.loads(Path(dl.value.path()).read_text())
    assert [d["name"] for d in ui["definitions"]["subgraphs"]] == ["New Subgraph"]
    assert any(n["type"] == definition["id"] for n in ui["nodes"])

    # Esc leaves a subgraph too
    editor.node(instance).locator(".ng-node-header").dblclick()
    expect(page.locator("[data-testid=subgraph-bar]")).to_be_visible()
    editor.press("Escape")
    expect(page.locator("[data-testid=subgraph-bar]")).to_have_count(0)

    # unpack: the two nodes come back, wired as before, with the value set inside
    editor.node(instance).locator(".ng-node-header").click(button="right")
    page.get_by_role("menuitem", name="Unpack subgraph").click()
    page.wait_for_function("() => window.nodegraph.graph().nodes.filter(n => n.data.kind === 'op').length === 4")
    wf = editor.workflow()
    assert "subgraphs" not in wf.get("ui", {})
    by_type = {n["type"]: (k, n) for k, n in wf["nodes"].items()}
    inv_id, inv = by_type["ImageInvert"]
    scale_id, scale = by_type["ImageScaleBy"]
    assert inv["inputs"]["image"] == {"node": "1", "output": "IMAGE"}
    assert scale["inputs"] == {"image": {"node": inv_id, "output": "IMAGE"}, "upscale_method": "bilinear", "scale_by": 0.25}
    assert wf["nodes"]["4"]["inputs"]["images"] == {"node": scale_id, "output": "IMAGE"}
    editor.screenshot(artifacts / "subgraph-unpacked.png")


NESTED = Path(__file__).parents[1] / "comfy_workflows" / "ui_subgraphs_nested.json"


def test_comfyui_file_with_nested_subgraphs_opens_runs_and_saves_back(editor, artifacts, tmp_path):
    import pytest

    checkpoints = editor.server.get("/v1/models/checkpoints")
    if "nodegraph-default.safetensors" not in checkpoints:
        pytest.skip("the default checkpoint is not in the models folders")
    page = editor.page
    original = json.loads(NESTED.read_text())
    page.set_input_files("[data-testid=open-file]", str(NESTED))
    page.wait_for_function("() => window.nodegraph.graph().nodes.filter(n => n.data.kind === 'op').length === 5")
    generate = next(d for d in original["definitions"]["subgraphs"] if d["name"] == "Generate")
    expect(editor.node("10")).to_have_attribute("data-node-type", generate["id"])
    expect(editor.node("10")).to_contain_text("Red")  # the instance's title
    # the promoted widgets show the instance's values
    expect(editor.node("10").locator("[name=seed]")).to_have_value("42")
    expect(editor.node("11").locator("[name=text]")).to_have_value("a yellow square on a green background")
    editor.screenshot(artifacts / "nested-subgraphs-root.png")
    # into Generate, then into the Prompt inside it, and back to the root
    editor.node("10").locator(".ng-node-header").dblclick()
    expect(page.locator("[data-testid=subgraph-breadcrumb]")).to_contain_text("Generate")
    inner_prompt = next(n["id"] for n in generate["nodes"] if n["type"] != "KSampler" and n["type"] not in (
        "CLIPTextEncode", "EmptyLatentImage", "VAEDecode"))
    editor.node(str(inner_prompt)).locator(".ng-node-header").dblclick()
    expect(page.locator("[data-testid=subgraph-breadcrumb]")).to_contain_text("Prompt")
    editor.screenshot(artifacts / "nested-subgraphs-inner.png")
    page.click("[data-testid=crumb-0]")
    expect(page.locator("[data-testid=subgraph-bar]")).to_have_count(0)

    # run: the server expands both instances (red circle on blue, yellow square on green)
    before = set((editor.server.base / "output").glob("*.png"))
    editor.press("Control+Enter")
    deadline = time.monotonic() + 120
    while len(set((editor.server.base / "output").glob("*.png")) - before) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
    made = sorted(set((editor.server.base / "output").glob("*.png")) - before)
    assert len(made) == 2, made
    time.sleep(0.3)
    colours = {}
    for png in made:
        with Image.open(png) as im:
            rgb = im.convert("RGB")
            colours[png.name.split("_")[0]] = rgb.getpixel((2, 2))  # the background, in a corner
    assert colours["red"][2] > 150 and colours["red"][0] < 100, colours  # blue background
    assert colours["yellow"][1] > 100 and colours["yellow"][2] < 100, colours  # green background
    editor.screenshot(artifacts / "nested-subgraphs-ran.png")

    # saved back in ComfyUI's format: the definitions as they came, the instances typed by them
    page.click("[data-testid=menu-workflow]")
    with page.expect_download() as dl:
        page.click("[data-testid=menu-export-comfyui]")
    ui = json.loads(Path(dl.value.path()).read_text())
    assert ui["definitions"] == original["definitions"]
    assert [(n["id"], n["type"]) for n in ui["nodes"]] == [(n["id"], n["type"]) for n in original["nodes"]]
    by_id = {n["id"]: n for n in ui["nodes"]}
    assert by_id[10]["widgets_values"] == [42, "a red circle on a blue background"]
    assert by_id[11]["widgets_values"] == [7, "fixed", "a yellow square on a green background"]
