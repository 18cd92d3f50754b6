"""ComfyUI's websocket protocol, validation and files, against sequences written from ComfyUI 0.8's source
(each test says where). The fixture server runs the test plugin (plugin_source.py)."""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import websocket  # websocket-client, what ComfyUI's example scripts use
from PIL import Image

from nodegraph.node import Context

from .test_comfy import API_PROMPT

CLIENTS = Path(__file__).with_name("comfy_clients")
# what ComfyUI's frontend 1.58.1 announces (api.ts getClientFeatureFlags)
FRONTEND_FLAGS = {"supports_preview_metadata": True, "supports_manager_v4_ui": True,
                  "supports_progress_text_metadata": True}


class ComfySocket:
    def __init__(self, server, client_id: str, flags: dict | None = None) -> None:
        self.ws = websocket.WebSocket()
        self.ws.connect(f"{server.ws_url}/ws?clientId={client_id}", timeout=30)
        self.frames: list = []  # ("json", message) | ("bytes", frame)
        self.greeting = json.loads(self.ws.recv())
        if flags is not None:  # the frontend sends its flags as the first message
            self.ws.send(json.dumps({"type": "feature_flags", "data": flags}))

    def read_until_done(self, prompt_id: str) -> list:
        while True:
            out = self.ws.recv()
            if isinstance(out, bytes):
                self.frames.append(("bytes", out))
                continue
            message = json.loads(out)
            self.frames.append(("json", message))
            if (message["type"] == "executing" and message["data"]["node"] is None
                    and message["data"].get("prompt_id") == prompt_id):
                return self.frames

    def close(self) -> None:
        self.ws.close()


def post(http, prompt, **body):
    return http.post("/prompt", content=json.dumps({"prompt": prompt, **body}))


def collapse(names: list[str]) -> list[str]:
    """Consecutive status messages as one: how many go out for one queue change is not fixed."""
    out: list[str] = []
    for name in names:
        if not (name == "status" and out and out[-1] == "status"):
            out.append(name)
    return out


def test_feature_flags_handshake(server, http):
    """server.py websocket_handler: the first text message {"type": "feature_flags"} is stored for the
    socket and answered with the server's flags (the same as GET /features); later ones are not."""
    sock = ComfySocket(server, "flags", FRONTEND_FLAGS)
    assert sock.greeting["type"] == "status" and sock.greeting["data"]["sid"] == "flags"
    reply = json.loads(sock.ws.recv())
    assert reply == {"type": "feature_flags", "data": http.get("/features").json()}
    assert reply["data"]["supports_preview_metadata"] is True
    sock.ws.send(json.dumps({"type": "feature_flags", "data": {}}))  # not the first message: ignored
    sock.ws.settimeout(0.5)
    with pytest.raises(websocket.WebSocketTimeoutException):
        sock.ws.recv()
    sock.close()


def test_message_sequence_of_a_run_for_the_frontend(server, http):
    """The frames a metadata-capable client (the frontend) gets for GradientSteps(3 steps) -> SaveImage,
    from ComfyUI's sources:
    - main.py prompt_worker: the queue's get() sends status, then execute(); task_done() sends status,
      then `executing {node: None}`;
    - execution.py execute_async: execution_start, execution_cached; per node start_progress
      (progress_state) before `executing`, executed, then finish_progress (progress_state);
      execution_success after the last node;
    - main.py hook: update_progress (progress_state, and the event-4 preview for a client that supports
      metadata), then `progress`. Ours sends `progress` before the preview frame (our nodes report
      progress, then the preview); legacy clients get ComfyUI's order (test below)."""
    sock = ComfySocket(server, "front", FRONTEND_FLAGS)
    json.loads(sock.ws.recv())  # the feature_flags answer
    prompt_id = post(http, API_PROMPT, client_id="front").json()["prompt_id"]
    frames = sock.read_until_done(prompt_id)
    sock.close()
    names = collapse([m["type"] if kind == "json" else f"binary{struct.unpack('>I', m[:4])[0]}"
                      for kind, m in frames])
    step = ["progress_state", "progress", "binary4"]
    assert names == (["status", "execution_start", "execution_cached", "progress_state", "executing"] + step * 3
                     + ["progress_state", "progress_state", "executing", "executed", "progress_state",
                        "execution_success", "status", "executing"])
    texts = [m for kind, m in frames if kind == "json"]
    assert texts[-2] == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}}}
    assert texts[0]["data"] == {"status": {"exec_info": {"queue_remaining": 1}}}, [(m["type"], m["data"]) for m in texts[:4]]
    states = [m["data"] for m in texts if m["type"] == "progress_state"]
    # comfy_execution/progress.py WebUIProgressHandler: every non-pending node, with its ids
    assert states[0] == {"prompt_id": prompt_id, "nodes": {"1": {
        "value": 0.0, "max": 1.0, "state": "running", "node_id": "1", "prompt_id": prompt_id,
        "display_node_id": "1", "parent_node_id": None, "real_node_id": "1"}}}
    assert [(s["nodes"]["1"]["value"], s["nodes"]["1"]["max"]) for s in states[1:4]] == [(1, 3), (2, 3), (3, 3)]
    assert states[4]["nodes"]["1"]["state"] == "finished" and states[4]["nodes"]["1"]["value"] == 3
    assert states[5]["nodes"]["2"]["state"] == "running" and states[5]["nodes"]["1"]["state"] == "finished"
    assert {n: s["state"] for n, s in states[6]["nodes"].items()} == {"1": "finished", "2": "finished"}
    # server.py send_image_with_metadata: >I 4, >I length, JSON metadata, then the image
    previews = [m for kind, m in frames if kind == "bytes"]
    event, length = struct.unpack(">II", previews[0][:8])
    metadata = json.loads(previews[0][8:8 + length])
    assert event == 4 and metadata == {"node_id": "1", "prompt_id": prompt_id, "display_node_id": "1",
                                       "parent_node_id": None, "real_node_id": "1", "image_type": "image/png"}
    assert previews[0][8:8 + length].decode() == json.dumps(metadata)  # json.dumps' default separators
    assert Image.open(io.BytesIO(previews[0][8 + length:])).size == (12, 12)


def test_legacy_clients_get_type_prefixed_previews_and_others_get_none(server, http):
    """main.py hook: a client that did not announce supports_preview_metadata gets
    UNENCODED_PREVIEW_IMAGE, sent by server.py send_image as >I 1, >I image type (PNG 2), image,
    after the progress message. Previews go to the prompt's client only."""
    legacy = ComfySocket(server, "legacy")
    bystander = ComfySocket(server, "bystander", FRONTEND_FLAGS)
    prompt_id = post(http, API_PROMPT, client_id="legacy").json()["prompt_id"]
    frames = legacy.read_until_done(prompt_id)
    legacy.close()
    names = [m["type"] if kind == "json" else "binary" for kind, m in frames]
    first = names.index("progress")
    assert names[first - 1:first + 2] == ["progress_state", "progress", "binary"]
    binaries = [m for kind, m in frames if kind == "bytes"]
    assert len(binaries) == 3 and all(struct.unpack(">II", b[:8]) == (1, 2) for b in binaries)
    # a client-less prompt's previews go to no one (its events are broadcast)
    other = post(http, API_PROMPT | {"1": {**API_PROMPT["1"], "inputs": {**API_PROMPT["1"]["inputs"], "seed": 9}}})
    seen = bystander.read_until_done(other.json()["prompt_id"])
    bystander.close()
    assert not [m for kind, m in seen if kind == "bytes"]
    assert "progress" in [m["type"] for kind, m in seen if kind == "json"]


def test_execution_error_fields_and_error_state(server, http):
    """execution.py handle_execution_error: execution_error {prompt_id, node_id, node_type, executed,
    exception_message, exception_type, traceback, current_inputs, current_outputs}; current_inputs are
    format_value'd lists per input."""
    prompt = {"1": {"class_type": "GradientSteps", "inputs": {"steps": 1, "size": 4, "red": 0, "seed": 0, "delay": 0.0}},
              "2": {"class_type": "Explode", "inputs": {"image": ["1", 0], "message": "boom"}},
              "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "x"}}}
    sock = ComfySocket(server, "err")
    prompt_id = post(http, prompt, client_id="err").json()["prompt_id"]
    frames = sock.read_until_done(prompt_id)
    sock.close()
    [error] = [m["data"] for kind, m in frames if kind == "json" and m["type"] == "execution_error"]
    assert set(error) == {"prompt_id", "node_id", "node_type", "executed", "exception_message", "exception_type",
                          "traceback", "current_inputs", "current_outputs", "timestamp"}
    assert error["node_id"] == "2" and error["node_type"] == "Explode" and error["executed"] == ["1"]
    assert error["exception_type"] == "RuntimeError" and error["exception_message"] == "boom"
    assert error["current_inputs"]["message"] == ["boom"] and isinstance(error["current_inputs"]["image"][0], str)
    assert error["current_outputs"] == [] and isinstance(error["traceback"], list)
    states = [m["data"]["nodes"] for kind, m in frames if kind == "json" and m["type"] == "progress_state"]
    assert states[-1]["2"]["state"] == "running"  # ComfyUI leaves it so until the run ends
    history = http.get(f"/history/{prompt_id}").json()[prompt_id]
    assert history["status"]["status_str"] == "error"
    assert history["status"]["messages"][-1][1]["executed"] == ["1"]


def test_reconnecting_client_hears_the_running_node(server, http):
    """server.py websocket_handler: a client reconnecting while its prompt runs gets status, then
    `executing {node}` for the node running now."""
    slow = {"1": {"class_type": "GradientSteps", "inputs": {"steps": 40, "delay": 0.02}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}
    first = ComfySocket(server, "again")
    prompt_id = post(http, slow, client_id="again").json()["prompt_id"]
    while json.loads(first.ws.recv())["type"] != "executing":
        pass
    again = ComfySocket(server, "again")
    assert again.greeting["type"] == "status"
    assert json.loads(again.ws.recv()) == {"type": "executing", "data": {"node": "1"}}
    again.read_until_done(prompt_id)
    first.close()
    again.close()


# --- validation ---------------------------------------------------------------------------------
def test_partially_valid_prompt_runs_its_valid_outputs(server, http):
    """execution.py validate_prompt + server.py post_prompt: the valid outputs are queued (the queue item's
    outputs_to_execute), the answer is 200 with node_errors for the invalid ones and the outputs they
    would have fed (dependent_outputs)."""
    prompt = {**API_PROMPT,
              "3": {"class_type": "GradientSteps", "inputs": {"steps": 5000, "size": 4, "red": 0, "seed": 0,
                                                              "delay": 0.0}},
              "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "bad"}}}
    r = post(http, prompt)
    assert r.status_code == 200
    body = r.json()
    assert body["node_errors"] == {"3": {"errors": [{
        "type": "value_bigger_than_max", "message": "Value 5000 bigger than max of 1000", "details": "steps",
        "extra_info": {"input_name": "steps", "input_config": ["INT", {"default": 3, "min": 1, "max": 1000, "step": 1}],
                       "received_value": 5000}}],
        "dependent_outputs": ["4"], "class_type": "GradientSteps"}}
    prompt_id = body["prompt_id"]
    deadline = time.monotonic() + 30
    while prompt_id not in (history := http.get(f"/history/{prompt_id}").json()) and time.monotonic() < deadline:
        time.sleep(0.05)
    entry = history[prompt_id]
    assert list(entry["outputs"]) == ["2"] and entry["prompt"][4] == ["2"] and entry["prompt"][2] == prompt


@pytest.mark.parametrize("node, expected", [
    # a missing widget input takes its default here (ComfyUI would report it too); a missing link cannot
    ({"class_type": "ImageInvert", "inputs": {}}, ("required_input_missing", "Required input is missing",
                                                   "image", {"input_name": "image"})),
    ({"class_type": "GradientSteps", "inputs": {"steps": "many"}},
     ("invalid_input_type", "Failed to convert an input value to a INT value", None,
      {"input_name": "steps", "received_value": "many"})),
    ({"class_type": "GradientSteps", "inputs": {"steps": ["9", 0]}},
     ("return_type_mismatch", "Return type mismatch between linked nodes",
      "steps, received_type(IMAGE) mismatch input_type(INT)", {"input_name": "steps", "received_type": "IMAGE",
                                                               "linked_node": ["9", 0]})),
])
def test_error_vocabulary(server, http, node, expected):
    """execution.py validate_inputs: type, message, details and extra_info of each kind of error."""
    widgets = {"size": 4, "red": 0, "seed": 0, "delay": 0.0} if node["class_type"] == "GradientSteps" else {}
    prompt = {"1": {**node, "inputs": {**widgets, **node["inputs"]}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
              "9": {"class_type": "GradientSteps", "inputs": {"steps": 1}}}
    r = post(http, prompt)
    assert r.status_code == 400 and r.json()["error"]["type"] == "prompt_outputs_failed_validation"
    [error] = r.json()["node_errors"]["1"]["errors"]
    kind, message, details, extra = expected
    assert error["type"] == kind and error["message"] == message
    if details is not None:
        assert error["details"] == details
    assert extra.items() <= error["extra_info"].items()


def test_choice_errors_and_comfy_leniency(server, http):
    """validate_inputs: value_not_in_list with the choices in details; literals converted with int()/float()
    and undeclared inputs ignored, as ComfyUI does; partial_execution_targets picks the outputs."""
    prompt = {"1": {"class_type": "GradientSteps", "inputs": {"steps": "2", "size": 4.0, "red": 0, "seed": 0,
                                                              "delay": 0, "not_an_input": 1}},
              "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "blurry",
                                                           "width": 8, "height": 8, "crop": "disabled"}},
              "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}},
              "4": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}
    r = post(http, prompt, partial_execution_targets=["3"])
    assert r.status_code == 400
    [error] = r.json()["node_errors"]["2"]["errors"]
    assert error["type"] == "value_not_in_list" and error["message"] == "Value not in list"
    assert error["details"].startswith("upscale_method: 'blurry' not in ['nearest-exact', ")
    assert error["extra_info"]["received_value"] == "blurry" and error["extra_info"]["input_config"][0][0] == "nearest-exact"
    r = post(http, prompt, partial_execution_targets=["4"])
    assert r.status_code == 200 and r.json()["node_errors"] == {}
    queued = r.json()["prompt_id"]
    deadline = time.monotonic() + 30
    while queued not in (history := http.get(f"/history/{queued}").json()) and time.monotonic() < deadline:
        time.sleep(0.05)
    number, _, stored, _, outputs = history[queued]["prompt"]
    assert outputs == ["4"] and stored["1"]["inputs"]["steps"] == 2 and stored["1"]["inputs"]["size"] == 4
    assert stored["1"]["inputs"]["not_an_input"] == 1  # kept in the prompt, as ComfyUI stores it
    assert http.post("/prompt", json={"prompt": prompt, "partial_execution_targets": ["2"]}).json()["error"][
        "type"] == "prompt_no_outputs"


def test_front_jobs_are_numbered_negative(server, http):
    """server.py post_prompt: number = the counter, negated for front=True."""
    slow = {"1": {"class_type": "GradientSteps", "inputs": {"steps": 60, "delay": 0.05}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}}}
    first = post(http, slow).json()
    deadline = time.monotonic() + 20  # the first job must be running, so the queue holds only the second
    while not http.get("/queue").json()["queue_running"] and time.monotonic() < deadline:
        time.sleep(0.02)
    second = post(http, API_PROMPT, front=True).json()
    assert second["number"] == -(first["number"] + 1)
    queue = http.get("/queue").json()
    assert [item[0] for item in queue["queue_pending"]] == [second["number"]]
    http.post("/interrupt")


# --- files --------------------------------------------------------------------------------------
def test_save_image_truncates_as_comfyui(env, tmp_path):
    """nodes.py SaveImage: Image.fromarray(np.clip(255. * i, 0, 255).astype(np.uint8)) — truncation."""
    from nodegraph.images import save_images

    values = torch.tensor([0.0, 0.5, 0.999, 1.0, 1.5, -0.2, 0.1, 0.7])
    image = values.reshape(1, 1, 8, 1).expand(1, 1, 8, 3).contiguous()
    ctx = Context(env, node_id="9", node_type="SaveImage")
    [saved] = save_images(ctx, image, "trunc")
    pixels = np.asarray(Image.open(env.folders.dir_for("output") / saved["filename"]))[0, :, 0]
    expected = np.clip(255.0 * values.numpy(), 0, 255).astype(np.uint8)
    assert pixels.tolist() == expected.tolist() == [0, 127, 254, 255, 255, 0, 25, 178]


def test_sampler_previews_follow_the_preview_method(env):
    """latent_preview.py: no previewer for "none"; set_preview_method takes the prompt's
    extra_data["preview_method"] unless "default" (or unknown), else the server's --preview-method;
    prepare_callback sends JPEG fitted to --preview-size (512)."""
    from nodes.diffusion.models import LatentFormat
    from nodes.diffusion.sampler_nodes import step_reporter

    def previews(extra):
        seen = []
        ctx = Context(env, node_id="3", node_type="KSampler", extra=extra, emit=lambda e, d: seen.append((e, d)))
        on_step = step_reporter(ctx, LatentFormat())
        on_step(0, torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8), 1)  # the last step: its preview at once
        assert seen[0][0] == "progress"
        return [d for e, d in seen if e == "preview"]

    server_none = {"default_preview_method": "none"}
    assert previews(server_none) == []
    assert previews({**server_none, "preview_method": "default"}) == []
    assert previews({**server_none, "preview_method": "bogus"}) == []
    assert previews({"default_preview_method": "latent2rgb", "preview_method": "none"}) == []
    for extra in ({**server_none, "preview_method": "latent2rgb"}, {**server_none, "preview_method": "auto"},
                  {**server_none, "preview_method": "taesd"}, {"default_preview_method": "auto"}, {}):
        [preview] = previews(extra)
        assert preview["image_format"] == "JPEG" and preview["max_size"] == 512 and preview["image"].size == (8, 8)


def test_preview_encoding_as_comfyui_server():
    """server.py send_image: ImageOps.contain to max_size (bilinear; small images grow), JPEG quality 95."""
    from nodegraph.server.worker import encode_preview

    small = Image.new("RGB", (8, 4), (200, 10, 10))
    jpeg = encode_preview(small, "JPEG", 512)
    assert jpeg[:2] == b"\xff\xd8" and Image.open(io.BytesIO(jpeg)).size == (512, 256)
    png = encode_preview(small, "PNG", None)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(io.BytesIO(png)).size == (8, 4)


# --- ComfyUI's script_examples patterns, run unchanged ------------------------------------------
def run_client(script: str, server, prompt: dict, tmp_path) -> dict:
    prompt_file = tmp_path / "prompt.json"
    prompt_file.write_text(json.dumps(prompt))
    proc = subprocess.run([sys.executable, str(CLIENTS / script), f"127.0.0.1:{server.port}", str(prompt_file)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_basic_api_example_pattern_polling_history(server, tmp_path):
    """script_examples/basic_api_example.py queues without a client id; the result is read from /history."""
    sizes = run_client("basic_api_polling.py", server, API_PROMPT, tmp_path)
    assert list(sizes) == ["2"] and len(sizes["2"]) == 1 and sizes["2"][0] > 60


def test_websocket_images_example_pattern_with_save_image_websocket(server, tmp_path):
    """script_examples/websockets_api_example_ws_images.py + custom_nodes/websocket_image_save.py: the images
    come as binary frames while the SaveImageWebsocket node executes; frame[8:] is the PNG (no metadata)."""
    prompt = {"1": {"class_type": "GradientSteps", "inputs": {"steps": 2, "size": 6, "red": 77, "seed": 0,
                                                              "delay": 0.0}},
              "2": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["1", 0]}},
              "save_image_websocket_node": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["2", 0]}}}
    written = run_client("websocket_images.py", server, prompt, tmp_path)
    assert list(written) == ["save_image_websocket_node"] and len(written["save_image_websocket_node"]) == 2
    for name in written["save_image_websocket_node"]:
        image = Image.open(tmp_path / name)
        assert image.format == "PNG" and image.size == (6, 6) and not image.text
        # GradientSteps makes red 77/255, green 1.0: truncated as SaveImage would
        assert image.getpixel((0, 0)) == (int(np.float32(255.0) * np.float32(77 / 255.0)), 255, 0)
    # the node is never cached (IS_CHANGED returns time.time()): a second run sends the images again
    assert len(run_client("websocket_images.py", server, prompt, tmp_path)["save_image_websocket_node"]) == 2
