"""End to end over real HTTP + websocket: submit, events, previews, images, errors, interrupt, queue."""
from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image

from tests.server.helpers import Events, L, picture_workflow, tiny_workflow


def submit(http, workflow, client_id=None, **kw) -> str:
    r = http.post("/v1/jobs", json={"workflow": workflow, "client_id": client_id, **kw})
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


def wait_status(http, job_id, statuses=("success", "error", "interrupted"), timeout=30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} stayed {job['status']}")


def test_submit_streams_progress_previews_and_outputs_then_image_is_served(server, http):
    events = Events(server.ws_url, "editor-1")
    try:
        assert events.read_until(lambda e, d: e == "status")[1]["sid"] == "editor-1"
        job_id = submit(http, picture_workflow(steps=3, size=16, red=200), "editor-1")
        mine = events.until_done(job_id)
    finally:
        events.close()
    names = [e for e, _ in mine]
    assert names[0] == "execution_start" and names[-1] == "executing"
    assert names.index("execution_start") < names.index("executing") < names.index("progress") \
        < names.index("executed") < names.index("execution_success")
    progress = [(d["node"], d["value"], d["max"]) for e, d in mine if e == "progress"]
    assert progress == [("1", 1, 3), ("1", 2, 3), ("1", 3, 3)]
    [executed] = [d for e, d in mine if e == "executed"]
    assert executed["node"] == "2"
    [image] = executed["output"]["images"]

    assert len(events.previews) == 3  # binary msgpack frames with PNG bytes
    for k, frame in enumerate(events.previews, start=1):
        assert frame["type"] == "preview" and frame["prompt_id"] == job_id and frame["node"] == "1"
        preview = Image.open(io.BytesIO(frame["image"]))
        assert preview.format == "PNG" and preview.getpixel((0, 0)) == (200, int(255 * k / 3), 0)

    r = http.get("/v1/view", params=image)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    png = Image.open(io.BytesIO(r.content))
    assert png.size == (16, 16) and png.convert("RGB").getpixel((5, 5)) == (200, 255, 0)
    assert '"GradientSteps"' in png.text["nodegraph"]  # the workflow is embedded

    job = http.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "success" and job["outputs"]["2"]["images"] == [image]
    assert job["workflow"]["nodes"]["1"]["type"] == "GradientSteps"
    assert job["created"] <= job["started"] <= job["finished"]
    history = http.get("/v1/history").json()
    assert history["total"] == 1 and history["items"][0]["job_id"] == job_id


def test_invalid_workflow_is_refused_at_once_with_every_error(server, http):
    workflow = {"version": 1, "nodes": {
        "1": {"type": "GradientStepz", "inputs": {}},                                   # unknown type
        "2": {"type": "GradientSteps", "inputs": {"steps": 0, "size": "big"}},          # below min, not an int
        "3": {"type": "EmptyImage", "inputs": {"width": 10**9, "height": 10**9}},       # absurd allocation
        "4": {"type": "ImageInvert", "inputs": {"image": L("99")}},                     # link to nowhere
        "5": {"type": "SaveImage", "inputs": {}},                                       # missing input
        "6": {"type": "SaveImage", "inputs": {"images": L("7")}},
        "7": {"type": "PrimitiveInt", "inputs": {"value": 3}},                          # INT into IMAGE
        "8": {"type": "SaveImage", "inputs": {"images": L("4")}},
        "9": {"type": "SaveImage", "inputs": {"images": L("3")}},
        "10": {"type": "SaveImage", "inputs": {"images": L("2")}},
    }}
    r = http.post("/v1/jobs", json={"workflow": workflow})
    assert r.status_code == 400
    found = {(e["node"], e["input"], e["kind"]) for e in r.json()["errors"]}
    assert {("1", None, "unknown_type"), ("2", "steps", "bad_value"), ("2", "size", "bad_value"),
            ("3", "width", "bad_value"), ("3", "height", "bad_value"), ("4", "image", "bad_link"),
            ("5", "images", "missing_input"), ("6", "images", "type_mismatch")} <= found
    assert "did you mean GradientSteps" in next(e["message"] for e in r.json()["errors"] if e["node"] == "1")
    assert http.get("/v1/queue").json()["pending"] == []  # nothing was queued

    r = http.post("/v1/validate", json={"workflow": workflow})
    assert r.status_code == 200 and r.json()["ok"] is False and len(r.json()["errors"]) == len(found)
    r = http.post("/v1/jobs", json={"workflow": {"not": "a workflow"}})
    assert r.status_code == 400 and r.json()["errors"][0]["kind"] == "format"


def test_interrupt_stops_the_running_job_while_the_api_stays_responsive(server, http):
    events = Events(server.ws_url, "c1")
    try:
        slow = submit(http, picture_workflow(steps=400, delay=0.02), "c1")
        after = submit(http, picture_workflow(steps=2, red=10, prefix="after"), "c1")
        events.read_until(lambda e, d: e == "progress" and d["prompt_id"] == slow)
        worst = 0.0
        for _ in range(10):  # the HTTP side answers while the worker runs the job
            t = time.perf_counter()
            queue = http.get("/v1/queue").json()
            worst = max(worst, time.perf_counter() - t)
        assert worst < 1.0
        assert [j["job_id"] for j in queue["running"]] == [slow]
        assert [j["job_id"] for j in queue["pending"]] == [after]
        assert http.post("/v1/interrupt", json={"job_id": "someone-else"}).json() == {"interrupted": False}
        t = time.perf_counter()
        assert http.post("/v1/interrupt").json() == {"interrupted": True}
        _, data = events.read_until(lambda e, d: e == "execution_interrupted")
        assert time.perf_counter() - t < 2.0 and data["prompt_id"] == slow and data["node_id"] == "1"
        events.until_done(after)
    finally:
        events.close()
    assert http.get(f"/v1/jobs/{slow}").json()["status"] == "interrupted"
    assert http.get(f"/v1/jobs/{after}").json()["status"] == "success"  # the queue went on


def test_failing_node_reports_an_error_and_the_server_goes_on(server, http):
    events = Events(server.ws_url, "c1")
    try:
        bad = submit(http, {"version": 1, "nodes": {
            "1": {"type": "GradientSteps", "inputs": {"steps": 1}},
            "2": {"type": "Explode", "inputs": {"image": L("1"), "message": "it blew up"}},
            "3": {"type": "SaveImage", "inputs": {"images": L("2")}},
            "4": {"type": "SaveImage", "inputs": {"images": L("1"), "filename_prefix": "independent"}}}}, "c1")
        good = submit(http, tiny_workflow(5), "c1")
        mine = events.until_done(bad)
        events.until_done(good)
    finally:
        events.close()
    [error] = [d for e, d in mine if e == "execution_error"]
    assert error["node_id"] == "2" and error["node_type"] == "Explode" and error["exception_message"] == "it blew up"
    assert any("RuntimeError" in line for line in error["traceback"])
    job = http.get(f"/v1/jobs/{bad}").json()
    assert job["status"] == "error" and job["errors"][0]["node_id"] == "2"
    assert "4" in job["outputs"]  # the independent branch still finished
    assert http.get(f"/v1/jobs/{good}").json()["status"] == "success"
    assert http.get("/v1/status").json()["worker_alive"] is True


def test_queue_pause_reorder_delete_clear_resume(server, http):
    assert http.post("/v1/queue/pause").json()["paused"] is True
    a, b, c, d = (submit(http, tiny_workflow(k)) for k in range(4))
    queue = http.get("/v1/queue").json()
    assert queue["paused"] and [j["job_id"] for j in queue["pending"]] == [a, b, c, d]
    assert http.post(f"/v1/queue/{c}/front").json() == {"ok": True}
    assert http.delete(f"/v1/queue/{b}").json() == {"deleted": True, "interrupted": False}
    assert http.delete(f"/v1/queue/{b}").status_code == 404
    assert http.post("/v1/queue/nope/front").status_code == 404
    assert [j["job_id"] for j in http.get("/v1/queue").json()["pending"]] == [c, a, d]
    time.sleep(0.3)
    assert http.get(f"/v1/jobs/{c}").json()["status"] == "pending"  # paused: nothing ran
    assert http.post("/v1/queue/resume").json()["paused"] is False
    for job_id in (c, a, d):
        wait_status(http, job_id)
    order = [j["job_id"] for j in http.get("/v1/history").json()["items"]]
    assert order == [d, a, c]  # newest first: they ran as c, a, d

    http.post("/v1/queue/pause")
    submit(http, tiny_workflow(10))
    submit(http, tiny_workflow(11))
    assert http.post("/v1/queue/clear").json() == {"count": 2}
    assert http.get("/v1/queue").json()["pending"] == []
    http.post("/v1/queue/resume")


def test_batch_count_queues_that_many_runs_and_history_pages(server, http):
    r = http.post("/v1/jobs", json={"workflow": picture_workflow(steps=1, size=4), "number": 3})
    job_ids = r.json()["job_ids"]
    assert len(job_ids) == 3 and r.json()["job_id"] == job_ids[0]
    for job_id in job_ids:
        assert wait_status(http, job_id)["status"] == "success"
    page = http.get("/v1/history", params={"offset": 1, "limit": 1}).json()
    assert page["total"] == 3 and [j["job_id"] for j in page["items"]] == [job_ids[1]]
    assert http.delete(f"/v1/history/{job_ids[0]}").json() == {"ok": True}
    assert http.post("/v1/history/clear").json() == {"count": 2}
    assert http.get("/v1/jobs/unknown").status_code == 404


def test_events_are_scoped_to_the_submitting_client(server, http):
    alice, bob = Events(server.ws_url, "alice"), Events(server.ws_url, "bob")
    try:
        job_a = submit(http, tiny_workflow(1), "alice")
        job_b = submit(http, tiny_workflow(2), "bob")
        alice.until_done(job_a)
        bob.until_done(job_b)
        for events in (alice, bob):  # the queue status after the jobs reaches everyone (as in ComfyUI, it
            # goes out just before a job's final `executing`, so it may have been read already)
            idle = lambda e, d: e == "status" and "sid" not in d and d["queue_remaining"] == 0  # noqa: E731
            if not any(idle(e, d) for e, d in events.events[2:]):
                events.read_until(idle)
        time.sleep(0.2)
        alice.ws.close()
        bob.ws.close()
    finally:
        alice.close()
        bob.close()
    for events, own in ((alice, job_a), (bob, job_b)):
        ids = {d.get("prompt_id") for e, d in events.events if e != "status"}
        assert ids == {own}


def test_upload_load_and_mask(server, http):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 20, 30)).save(buffer, format="PNG")
    r = http.post("/v1/upload/image", files={"image": ("pic.png", buffer.getvalue(), "image/png")})
    assert r.json() == {"name": "pic.png", "subfolder": "", "type": "input"}
    again = http.post("/v1/upload/image", files={"image": ("pic.png", b"x" + buffer.getvalue()[1:], "image/png")})
    assert again.status_code == 400  # not a readable image
    other = io.BytesIO()
    Image.new("RGB", (8, 6), (99, 20, 30)).save(other, format="PNG")
    r = http.post("/v1/upload/image", files={"image": ("pic.png", other.getvalue(), "image/png")},
                  data={"subfolder": "sub"})
    assert r.json() == {"name": "pic.png", "subfolder": "sub", "type": "input"}
    r = http.post("/v1/upload/image", files={"image": ("pic.png", other.getvalue(), "image/png")})
    assert r.json()["name"] == "pic (1).png"  # a different file under a taken name is renamed

    job_id = submit(http, {"version": 1, "nodes": {
        "1": {"type": "LoadImage", "inputs": {"image": "pic.png"}},
        "2": {"type": "ImageInvert", "inputs": {"image": L("1", "IMAGE")}},
        "3": {"type": "SaveImage", "inputs": {"images": L("2"), "filename_prefix": "inverted"}}}})
    job = wait_status(http, job_id)
    assert job["status"] == "success", job["errors"]
    image = job["outputs"]["3"]["images"][0]
    pixels = np.asarray(Image.open(io.BytesIO(http.get("/v1/view", params=image).content)).convert("RGB"))
    assert tuple(pixels[0, 0]) == (245, 235, 225)

    mask = Image.new("RGBA", (8, 6), (0, 0, 0, 0))
    mask.putpixel((1, 1), (0, 0, 0, 255))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    r = http.post("/v1/upload/mask", files={"image": ("masked.png", buffer.getvalue(), "image/png")},
                  data={"original_ref": '{"filename": "pic.png", "subfolder": "", "type": "input"}'})
    assert r.status_code == 200, r.text
    view = Image.open(io.BytesIO(http.get("/v1/view", params={"filename": "masked.png", "type": "input"}).content))
    assert view.mode == "RGBA" and view.getpixel((1, 1)) == (10, 20, 30, 255) and view.getpixel((0, 0))[3] == 0


def test_nodes_models_workflows_convert_export(server, http):
    nodes = http.get("/v1/nodes").json()
    assert nodes["GradientSteps"]["inputs"][0] == {"name": "steps", "type": "INT", "required": True, "widget": True,
                                                   "default": 3, "min": 1, "max": 1000, "step": 1, "color": "#7fb069"}
    assert "SaveImage" in nodes and "LoadImage" in nodes
    (server.state.env.folders.models / "checkpoints").mkdir()
    (server.state.env.folders.models / "checkpoints" / "tiny.safetensors").write_bytes(b"0")
    assert "tiny.safetensors" in http.get("/v1/models/checkpoints").json()
    assert "checkpoints" in http.get("/v1/models").json()
    assert http.get("/v1/models/..").status_code == 404

    names = http.get("/v1/workflows").json()
    assert "image-basics" in names
    example = http.get("/v1/workflows/image-basics").json()
    assert example["version"] == 1 and example["nodes"]
    assert http.get("/v1/workflows/..%2Fpyproject").status_code == 404

    api_prompt = {"1": {"class_type": "GradientSteps", "inputs": {"steps": 2}},
                  "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    native = http.post("/v1/convert", json={"workflow": api_prompt}).json()["workflow"]
    assert native["nodes"]["2"]["inputs"]["images"] == {"node": "1", "output": 0}
    ui_doc = {"last_node_id": 2, "last_link_id": 1, "links": [[1, 1, 0, 2, 0, "IMAGE"]], "nodes": [
        {"id": 1, "type": "GradientSteps", "widgets_values": [4, 8, 100, 7, "fixed", 0.0], "inputs": [],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}], "pos": [0, 0]},
        {"id": 2, "type": "SaveImage", "widgets_values": ["ui"], "inputs": [{"name": "images", "type": "IMAGE",
                                                                              "link": 1}], "pos": [300, 0]}]}
    native = http.post("/v1/convert", json={"workflow": ui_doc}).json()["workflow"]
    assert native["nodes"]["1"]["inputs"]["steps"] == 4 and native["nodes"]["2"]["inputs"]["images"]["node"] == "1"
    r = http.post("/v1/convert", json={"workflow": {"nodes": 5}})
    assert r.status_code == 400 and r.json()["detail"]
    exported = http.post("/v1/export/comfy_api", json={"workflow": picture_workflow()}).json()
    assert exported["2"] == {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "e2e"},
                             "_meta": {"title": "SaveImage"}}
    assert http.post("/v1/validate", json={"workflow": picture_workflow()}).json() == {"ok": True, "errors": []}


def test_free_and_system_stats(server, http):
    submit(http, tiny_workflow(1))
    stats = http.get("/v1/system_stats").json()
    assert stats["system"]["pytorch_version"] and stats["system"]["ram_total"] > 0
    assert stats["devices"][0]["type"] in ("cpu", "cuda", "mps")
    assert {"entries", "bytes"} <= set(stats["cache"]) and "queue" in stats and "device_manager" in stats
    deadline = time.monotonic() + 10
    while http.get("/v1/status").json()["queue_remaining"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.state.env.cache) > 0
    r = http.post("/v1/free", json={"unload_models": True, "free_memory": True}).json()
    assert r["deferred"] is False and r["cache_entries_cleared"] > 0
    assert len(server.state.env.cache) == 0


def test_missing_editor_build_gives_a_clear_page_and_a_build_is_served(server, http, server_env, tmp_path):
    page = http.get("/")
    assert page.status_code == 200 and "npm run build" in page.text
    from tests.server.conftest import ServerThread

    ui = tmp_path / "dist"
    (ui / "assets").mkdir(parents=True)
    (ui / "index.html").write_text("<html>editor</html>")
    (ui / "assets" / "app.js").write_text("console.log(1)")
    with ServerThread(server_env, tmp_path / "data2", ui_dir=ui) as other, other.client() as client:
        assert client.get("/").text == "<html>editor</html>"
        assert client.get("/assets/app.js").text == "console.log(1)"
        assert client.get("/v1/status").status_code == 200


def test_malformed_documents_and_non_json_numbers_are_400_never_500(server, http):
    import json as _json

    ui_like = [{"nodes": [{"id": 1, "type": "Reroute", "inputs": [{"link": 1}]}], "links": [[1, 1, 0, 1, 0, "*"]]},
               {"nodes": [{"id": "x"}], "links": [[None]]},
               {"nodes": [{"id": 1, "type": "SaveImage", "inputs": [{"link": 5}]}], "links": [{"id": 5}]},
               {"nodes": [1, 2], "links": []}]
    chain = [{"id": k, "type": "Reroute", "inputs": [{"link": k}]} for k in range(1, 3000)]
    ui_like.append({"nodes": chain + [{"id": 5000, "type": "SaveImage", "inputs": [{"name": "images", "link": 2999}]}],
                    "links": [[k, k + 1, 0, k, 0, "*"] for k in range(1, 2999)] + [[2999, 1, 0, 5000, 0, "IMAGE"]]})
    for doc in ui_like:
        for route in ("/v1/convert", "/v1/jobs", "/v1/validate", "/v1/export/comfy_api"):
            r = http.post(route, json={"workflow": doc})
            assert r.status_code in (200, 400), (route, r.status_code, r.text[:200])
        assert http.post("/prompt", json={"prompt": doc}).status_code == 400
    body = '{"workflow": {"version": 1, "nodes": {"1": {"type": "PrimitiveInt", "inputs": {"value": 1}}, ' \
           '"2": {"type": "PreviewAny", "inputs": {"source": {"node": "1", "output": 0}}}}, "ui": {"x": NaN}}}'
    http.post("/v1/queue/pause")
    r = http.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200  # the workflow's NaN becomes null when it is normalised
    assert http.get(f"/v1/jobs/{r.json()['job_id']}").json()["workflow"]["ui"] == {"x": None}
    r = http.post("/v1/jobs", content=body.replace('"ui"', '"ui": {}}, "extra": {"x": NaN}, "_": {"y"'),
                  headers={"content-type": "application/json"})
    assert r.status_code in (400, 422)
    body = body[:-1] + ', "extra": {"x": Infinity}}'
    r = http.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["detail"]
    assert len(_json.loads(http.get("/v1/queue").text)["pending"]) == 1
    http.post("/v1/queue/clear")
    http.post("/v1/queue/resume")
