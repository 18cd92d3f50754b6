"""ComfyUI's own frontend (comfyui-frontend-package 1.58.1) against nodegraph: load, search,
run the SD1.5 default graph with our checkpoint, the Job Queue, a re-queue (cached run), settings
and saved workflows kept on the server, our workflows in the templates dialog."""
from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from tests.comfy_frontend.default_graph import sd15_default_graph

pytestmark = pytest.mark.slow
OUR_CHECKPOINT = "nodegraph-default.safetensors"


def _shot(page, tmp_path, name):
    path = tmp_path / name
    page.page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def test_app_loads_without_failing_requests_and_finds_ksampler(comfy_page, tmp_path):
    comfy_page.open()
    page = comfy_page.page
    page.wait_for_timeout(3000)  # the sidebars and the queue poll their routes after start
    assert comfy_page.bad_requests() == []
    paths = {p.split("?")[0] for _, p, _ in comfy_page.responses}
    for route in ("/api/object_info", "/api/settings", "/api/users", "/api/system_stats", "/api/extensions",
                  "/api/i18n", "/api/jobs", "/api/workflow_templates", "/api/experiment/models"):
        assert route in paths, f"the frontend did not call {route}"
    # node search: double-click the empty canvas, type, the result lists KSampler
    for _ in range(8):  # on a busy machine the canvas may not take the first double-click yet
        page.mouse.dblclick(500, 450)
        page.wait_for_timeout(800)
        if page.evaluate("document.activeElement && document.activeElement.tagName") in ("INPUT", "TEXTAREA"):
            break
    _shot(comfy_page, tmp_path, "search-open.png")
    page.keyboard.type("KSampler")
    option = page.get_by_text("KSampler", exact=True).first
    option.wait_for(state="visible")
    _shot(comfy_page, tmp_path, "search.png")
    page.keyboard.press("Escape")


def test_default_graph_runs_with_our_checkpoint_and_requeue_shows_it_again(comfy_page, comfy_server, tmp_path):
    comfy_page.open()
    page = comfy_page.page
    page.evaluate("(g) => window.app.loadGraphData(g)", sd15_default_graph())
    assert sorted(t for _, t in comfy_page.nodes()) == sorted(
        ["CheckpointLoaderSimple", "EmptyLatentImage", "CLIPTextEncode", "CLIPTextEncode", "KSampler", "VAEDecode",
         "SaveImage"])
    comfy_page.set_widget("CheckpointLoaderSimple", "ckpt_name", OUR_CHECKPOINT)
    for name, value in (("width", 64), ("height", 64)):  # a CPU-sized picture
        comfy_page.set_widget("EmptyLatentImage", name, value)
    comfy_page.set_widget("KSampler", "steps", 8)
    comfy_page.set_widget("KSampler", "control_after_generate", "fixed")
    with page.expect_response(lambda r: "/api/view?" in r.url and "ComfyUI_" in r.url, timeout=240000) as shown:
        page.get_by_role("button", name="Run").first.click()
    assert shown.value.status == 200
    picture = Image.open(io.BytesIO(shown.value.body()))
    assert picture.size == (64, 64)
    assert json.loads(picture.text["prompt"])["3"]["class_type"] == "KSampler"  # ComfyUI's PNG chunks
    assert json.loads(picture.text["workflow"])["nodes"]
    page.wait_for_timeout(1000)
    _shot(comfy_page, tmp_path, "run.png")

    # the Job Queue lists the finished job with its picture
    queue_button = page.get_by_role("button", name="active").first
    queue_button.click()
    filename = shown.value.url.split("filename=")[1].split("&")[0]
    page.get_by_text(filename).first.wait_for(state="visible")
    _shot(comfy_page, tmp_path, "queue.png")
    queue_button.click()  # closes the panel again

    # the same graph again: everything is cached, and the image still comes back (executed re-sent)
    with page.expect_response(lambda r: "/api/view?" in r.url and filename in r.url, timeout=60000) as again:
        with page.expect_response(lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST") as posted:
            page.get_by_role("button", name="Run").first.click()
        assert posted.value.status == 200
    assert again.value.status == 200
    jobs = json.loads(page.evaluate("() => fetch('/api/jobs?status=completed').then(r => r.text())"))["jobs"]
    assert len(jobs) == 2 and all(j["preview_output"]["filename"] == filename for j in jobs)
    assert comfy_page.bad_requests() == []


def test_a_changed_setting_survives_a_reload(comfy_page, comfy_server):
    comfy_page.open()
    page = comfy_page.page
    page.evaluate("() => window.app.extensionManager.setting.set('Comfy.LinkRenderMode', 0)")
    page.wait_for_timeout(500)
    stored = json.loads((comfy_server.base / "user" / "default" / "comfy.settings.json").read_text())
    assert stored["Comfy.LinkRenderMode"] == 0
    page.reload()
    comfy_page.open()
    assert page.evaluate("() => window.app.extensionManager.setting.get('Comfy.LinkRenderMode')") == 0
    assert comfy_page.bad_requests() == []


def test_a_saved_workflow_lands_in_userdata_and_reopens(comfy_page, comfy_server, tmp_path):
    comfy_page.open()
    page = comfy_page.page
    page.evaluate("(g) => window.app.loadGraphData(g)", sd15_default_graph())
    page.mouse.click(600, 650)  # focus the canvas, where the keybinding listens
    page.keyboard.press("Control+s")
    page.wait_for_timeout(800)
    _shot(comfy_page, tmp_path, "save-dialog.png")
    page.keyboard.press("Control+a")
    page.keyboard.type("saved-by-comfy-frontend")
    page.keyboard.press("Enter")
    saved = comfy_server.base / "user" / "default" / "workflows" / "saved-by-comfy-frontend.json"
    page.wait_for_timeout(1500)
    assert saved.is_file()
    assert len(json.loads(saved.read_text())["nodes"]) == 7
    page.reload()
    comfy_page.open()
    page.keyboard.press("w")  # the workflows sidebar
    page.get_by_text("saved-by-comfy-frontend").first.click()
    page.wait_for_timeout(1000)
    assert len(comfy_page.nodes()) == 7
    _shot(comfy_page, tmp_path, "reopened.png")
    assert comfy_page.bad_requests() == []


def test_templates_dialog_lists_our_workflows_and_opens_one(comfy_page, tmp_path):
    comfy_page.open()
    page = comfy_page.page
    page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    page.get_by_text("nodegraph").first.click()
    page.get_by_text("txt2img", exact=True).first.wait_for(state="visible")
    _shot(comfy_page, tmp_path, "templates.png")
    page.get_by_text("txt2img", exact=True).first.click()
    page.wait_for_function("() => window.app.graph.nodes.some(n => n.type === 'KSampler')", timeout=20000)
    assert {t for _, t in comfy_page.nodes()} >= {"CheckpointLoaderSimple", "KSampler", "SaveImage"}
    assert comfy_page.bad_requests() == []
