"""ComfyUI compatibility: its API client script unchanged, its routes, messages and binary previews."""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import websocket  # websocket-client, what ComfyUI's example scripts use
from PIL import Image

API_PROMPT = {
    "1": {"class_type": "GradientSteps", "inputs": {"steps": 3, "size": 12, "red": 50, "seed": 0, "delay": 0.0}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ComfyUI"}},
}


def comfy_socket(server, client_id):
    ws = websocket.WebSocket()
    ws.connect(f"{server.ws_url}/ws?clientId={client_id}", timeout=30)
    return ws


def read_until_done(ws, prompt_id):
    texts, binaries = [], []
    while True:
        out = ws.recv()
        if isinstance(out, bytes):
            binaries.append(out)
            continue
        message = json.loads(out)
        texts.append(message)
        data = message["data"]
        if message["type"] == "executing" and data["node"] is None and data["prompt_id"] == prompt_id:
            return texts, binaries


def test_comfyui_websocket_api_example_script_runs_unchanged(server, tmp_path):
    prompt_file = tmp_path / "prompt.json"
    prompt_file.write_text(json.dumps(API_PROMPT))
    script = Path(__file__).with_name("comfy_api_example.py")
    proc = subprocess.run([sys.executable, str(script), f"127.0.0.1:{server.port}", str(prompt_file)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    sizes = json.loads(proc.stdout)
    assert list(sizes) == ["2"] and len(sizes["2"]) == 1 and sizes["2"][0] > 60


def test_comfy_messages_previews_history_and_embedded_prompt(server, http):
    ws = comfy_socket(server, "comfy-client")
    hello = json.loads(ws.recv())
    assert hello == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "comfy-client"}}
    pnginfo = {"workflow": {"nodes": [], "links": [], "extra": {"ui": "saved by the frontend"}}}
    r = http.post("/prompt", content=json.dumps({"prompt": API_PROMPT, "client_id": "comfy-client",
                                                 "extra_data": {"extra_pnginfo": pnginfo}}))
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"prompt_id", "number", "node_errors"} and body["node_errors"] == {}
    prompt_id = body["prompt_id"]
    texts, binaries = read_until_done(ws, prompt_id)
    while not any(m["type"] == "status" and "sid" not in m["data"] for m in texts):
        texts.append(json.loads(ws.recv()))  # status changes are coalesced: one may come after the end
    ws.close()

    kinds = [m["type"] for m in texts]
    for kind in ("status", "execution_start", "execution_cached", "executing", "progress", "executed",
                 "execution_success"):
        assert kind in kinds
    status = next(m for m in texts if m["type"] == "status" and "sid" not in m["data"])
    assert set(status["data"]) == {"status"} and "queue_remaining" in status["data"]["status"]["exec_info"]
    progress = next(m["data"] for m in texts if m["type"] == "progress")
    assert {"value", "max", "prompt_id", "node"} <= set(progress)
    executed = next(m["data"] for m in texts if m["type"] == "executed")
    assert executed["node"] == "2" and executed["display_node"] == "2" and executed["prompt_id"] == prompt_id
    assert len(binaries) == 3
    for frame in binaries:  # ComfyUI's layout: event type 1, image type 2 (PNG), then the PNG
        assert struct.unpack(">II", frame[:8]) == (1, 2)
        assert Image.open(io.BytesIO(frame[8:])).size == (12, 12)

    history = http.get(f"/history/{prompt_id}").json()[prompt_id]
    number, pid, prompt, extra_data, outputs_to_execute = history["prompt"]
    assert pid == prompt_id and number == body["number"] and prompt == API_PROMPT and outputs_to_execute == ["2"]
    assert extra_data["client_id"] == "comfy-client"
    assert history["status"]["status_str"] == "success" and history["status"]["completed"] is True
    assert [m[0] for m in history["status"]["messages"]] == ["execution_start", "execution_cached",
                                                             "execution_success"]
    image = history["outputs"]["2"]["images"][0]
    png = Image.open(io.BytesIO(http.get("/view", params=image).content))
    assert json.loads(png.text["prompt"]) == API_PROMPT  # ComfyUI can load it back
    assert json.loads(png.text["workflow"]) == pnginfo["workflow"]
    assert "nodegraph" in png.text
    assert list(http.get("/history", params={"max_items": 1}).json()) == [prompt_id]
    assert http.get("/history/nope").json() == {}
    http.post("/history", json={"delete": [prompt_id]})
    assert http.get("/history").json() == {}


def test_comfy_validation_errors_use_node_errors(server, http):
    """ComfyUI's validate_prompt: an unknown class refuses the prompt as invalid_prompt; a prompt whose
    only output fails validation is refused with node_errors in validate_inputs' vocabulary."""
    bad = {"1": {"class_type": "GradientSteps", "inputs": {"steps": 0}},
           "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}
    r = http.post("/prompt", json={"prompt": {**bad, "3": {"class_type": "NoSuchNode", "inputs": {}}}})
    assert r.status_code == 400
    assert r.json() == {"error": {"type": "invalid_prompt", "message": "Cannot execute because node NoSuchNode "
                                  "does not exist.", "details": "Node ID '#3'", "extra_info": {}}, "node_errors": {}}
    r = http.post("/prompt", json={"prompt": bad})
    assert r.status_code == 400
    body = r.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["node_errors"]["1"]["class_type"] == "GradientSteps"
    assert body["node_errors"]["1"]["dependent_outputs"] == ["2"]
    [error] = body["node_errors"]["1"]["errors"]
    assert error["type"] == "value_smaller_than_min" and error["message"] == "Value 0 smaller than min of 1"
    assert error["extra_info"]["input_name"] == "steps" and error["extra_info"]["received_value"] == 0
    r = http.post("/prompt", content=b"{not json")
    assert r.status_code == 400
    r = http.post("/prompt", json={"prompt": {"1": {"inputs": {}}}})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_prompt"
    r = http.post("/prompt", json={"prompt": {"1": {"class_type": "PrimitiveInt", "inputs": {}}}})
    assert r.status_code == 400 and r.json()["error"]["type"] == "prompt_no_outputs"


def test_comfy_queue_interrupt_and_client_chosen_prompt_id(server, http):
    slow = {"1": {"class_type": "GradientSteps", "inputs": {"steps": 300, "delay": 0.02}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}
    r = http.post("/prompt", json={"prompt": slow, "client_id": "x", "prompt_id": "my-own-id"})
    assert r.json()["prompt_id"] == "my-own-id"
    assert http.post("/prompt", json={"prompt": slow, "prompt_id": "my-own-id"}).status_code == 400  # taken
    queued = [http.post("/prompt", json={"prompt": API_PROMPT}).json()["prompt_id"] for _ in range(3)]
    deadline = time.monotonic() + 10
    while not http.get("/queue").json()["queue_running"] and time.monotonic() < deadline:
        time.sleep(0.02)
    queue = http.get("/queue").json()
    [running] = queue["queue_running"]
    assert running[1] == "my-own-id" and running[3]["client_id"] == "x" and running[4] == ["2"]
    assert [item[1] for item in queue["queue_pending"]] == queued
    assert http.get("/prompt").json() == {"exec_info": {"queue_remaining": 4}}
    http.post("/queue", json={"delete": [queued[0]]})
    assert [item[1] for item in http.get("/queue").json()["queue_pending"]] == queued[1:]
    http.post("/queue", json={"clear": True})
    assert http.get("/queue").json()["queue_pending"] == []
    assert http.post("/interrupt", json={"prompt_id": "other"}).status_code == 200
    assert http.get("/api/jobs/my-own-id").json()["status"] == "in_progress"  # ComfyUI's jobs API
    assert http.post("/interrupt").status_code == 200  # no body, as ComfyUI's frontend sends it
    deadline = time.monotonic() + 10
    while http.get("/api/jobs/my-own-id").json()["status"] == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.02)
    history = http.get("/history/my-own-id").json()["my-own-id"]
    assert history["status"]["status_str"] == "error" and history["status"]["completed"] is False
    assert history["status"]["messages"][-1][0] == "execution_interrupted"


def test_object_info_layout(server, http):
    info = http.get("/object_info").json()
    steps = info["GradientSteps"]
    assert steps["input"]["required"]["steps"] == ["INT", {"default": 3, "min": 1, "max": 1000, "step": 1}]
    assert steps["input"]["required"]["delay"][0] == "FLOAT"
    assert steps["output"] == ["IMAGE"] and steps["output_name"] == ["IMAGE"] and steps["output_is_list"] == [False]
    assert steps["name"] == "GradientSteps" and steps["category"] == "test" and steps["output_node"] is False
    assert steps["description"].startswith("An image made") and steps["display_name"] == "Gradient Steps"
    assert info["SaveImage"]["output_node"] is True and info["SaveImage"]["output"] == []
    scale = http.get("/object_info/ImageScale").json()["ImageScale"]
    choices, options = scale["input"]["required"]["upscale_method"]
    assert "bilinear" in choices and options["default"] == "nearest-exact"
    assert scale["input_order"]["required"][0] == "image" and scale["input"]["required"]["image"] == ["IMAGE"]
    load = info["LoadImage"]["input"]["required"]["image"]
    assert isinstance(load[0], list) and load[1]["image_upload"] is True
    assert http.get("/object_info/Nope").json() == {}
    composite = info["ImageCompositeMasked"]["input"]
    assert composite["optional"]["mask"] == ["MASK"]


def test_comfy_misc_routes(server, http):
    stats = http.get("/system_stats").json()
    assert {"os", "ram_total", "ram_free", "python_version", "pytorch_version"} <= set(stats["system"])
    assert {"name", "type", "index", "vram_total", "vram_free"} <= set(stats["devices"][0])
    assert "checkpoints" in http.get("/models").json()
    assert http.get("/models/checkpoints").json() == []
    assert http.get("/embeddings").json() == [] and http.get("/extensions").json() == []
    assert http.post("/free", json={"unload_models": True}).status_code == 200
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    r = http.post("/upload/image", files={"image": ("c.png", buffer.getvalue(), "image/png")},
                  data={"type": "input", "overwrite": "true"})
    assert r.json() == {"name": "c.png", "subfolder": "", "type": "input"}
    assert http.get("/view", params={"filename": "c.png", "type": "input", "channel": "a"}).status_code == 200
