"""The V3 test pack end to end (CLI and server), and /object_info of pack nodes as ComfyUI 0.8's
server.py node_info writes them (V1: the class's INPUT_TYPES with every frontend-only option kept,
optional keys only when the class has them; V3: every field of comfy_api's NodeInfoV1)."""
from __future__ import annotations

import json
import time

import numpy as np
from PIL import Image
from tests.server.conftest import ServerThread
from tests.server.test_comfy_protocol import ComfySocket, post

from nodegraph.environment import Environment
from nodegraph.folders import Folders

from .test_cli_server import cli

V3 = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 6, "height": 4, "batch_size": 1, "color": 0xFF8000}},
    "2": {"class_type": "TestV3Tint", "inputs": {"image": ["1", 0], "channel": "green", "factor": 0.5}},
    "3": {"class_type": "TestV3Describe", "inputs": {"image": ["2", 0], "label": "t", "preview": False}},
    "4": {"class_type": "TestV3Describe", "inputs": {"image": ["2", 0], "label": "p", "preview": True}},
    "5": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "v3"}},
}
# SaveImage's pixel: 255 * value in float32, truncated (ComfyUI nodes.py SaveImage)
GREEN = int(np.float32(255.0) * (np.float32(128 / 255) * np.float32(0.5)))
TINTED = (255, GREEN, 0)


def saved_pixel(path) -> tuple:
    return tuple(int(v) for v in np.asarray(Image.open(path).convert("RGB"))[0, 0])


def test_cli_runs_the_v3_pack(tmp_path):
    (tmp_path / "v3.json").write_text(json.dumps(V3))
    proc = cli("run", "v3.json", "--output-dir", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "node 2: 2:green" in proc.stdout  # TestV3Tint's ui.PreviewText with its UNIQUE_ID
    assert "node 3: t: (1, 4, 6, 3)" in proc.stdout
    assert saved_pixel(tmp_path / "out" / "v3_00001_.png") == TINTED


def test_server_runs_the_v3_pack_with_ui_in_messages_and_history(tmp_path, comfy_registry):
    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir()
    env = Environment(registry=comfy_registry, folders=Folders(tmp_path))
    with ServerThread(env, tmp_path) as server, server.client() as http:
        socket = ComfySocket(server, "v3-client")
        try:
            answer = post(http, V3, client_id="v3-client").json()
            frames = socket.read_until_done(answer["prompt_id"])
        finally:
            socket.close()
        executed = {m["data"]["node"]: m["data"]["output"] for kind, m in frames
                    if kind == "json" and m["type"] == "executed"}
        assert executed["2"] == {"text": ["2:green"]} and executed["3"] == {"text": ["t: (1, 4, 6, 3)"]}
        [preview] = executed["4"]["images"]
        assert preview["type"] == "temp" and preview["filename"].startswith("ComfyUI_temp_")
        assert executed["5"] == {"images": [{"filename": "v3_00001_.png", "subfolder": "", "type": "output"}]}
        deadline = time.monotonic() + 30
        while not (history := http.get(f"/history/{answer['prompt_id']}").json()) and time.monotonic() < deadline:
            time.sleep(0.05)
        entry = history[answer["prompt_id"]]
        assert entry["status"]["status_str"] == "success"
        assert entry["outputs"] == executed
        assert saved_pixel(tmp_path / "output" / "v3_00001_.png") == TINTED
        assert saved_pixel(tmp_path / "temp" / preview["filename"]) == TINTED
        view = http.get("/view", params={"filename": preview["filename"], "type": "temp"})
        assert view.status_code == 200 and view.headers["content-type"] == "image/png"

        v1 = http.get("/object_info/TestSubflowInvertBlend").json()["TestSubflowInvertBlend"]
        v3 = http.get("/api/object_info").json()["TestV3Tint"]
    assert v1 == {
        "input": {"required": {
            "image": ["IMAGE"],
            "factor": ["FLOAT", {"default": 0.25, "min": 0.0, "max": 1.0, "step": 0.05, "round": 0.01,
                                 "display": "slider"}],
            "filename_prefix": ["STRING", {"default": "subflow", "placeholder": "file name prefix",
                                           "dynamicPrompts": False, "tooltip": "where the blend is saved"}]}},
        "input_order": {"required": ["image", "factor", "filename_prefix"]},
        "output": ["IMAGE", "IMAGE"], "output_is_list": [False, False], "output_name": ["doubled", "blended"],
        "name": "TestSubflowInvertBlend", "display_name": "TestSubflowInvertBlend",
        "description": "Blends an image with its inverse, saves it, and doubles it.",
        "python_module": "custom_nodes.subflow_pack", "category": "test_pack/subflow", "output_node": False,
        "output_tooltips": ["the blend at twice the size", "the blend"]}
    assert v3 == {
        "input": {"required": {"image": ["IMAGE", {}],
                               "channel": ["COMBO", {"default": "red", "multiselect": False,
                                                     "options": ["red", "green", "blue"]}],
                               "factor": ["FLOAT", {"default": 0.5, "min": 0.0, "max": 2.0, "step": 0.25}]},
                  "optional": {"mask": ["MASK", {}]}, "hidden": {"unique_id": ["UNIQUE_ID"]}},
        "input_order": {"required": ["image", "channel", "factor"], "optional": ["mask"], "hidden": ["unique_id"]},
        "output": ["IMAGE", "INT"], "output_is_list": [False, False],
        "output_name": ["tinted", "INT"],  # display name, else the type (not the id)
        "output_tooltips": [None, None], "output_matchtypes": None,
        "name": "TestV3Tint", "display_name": "Tint (V3 test)", "description": "Multiplies one channel of an image.",
        "python_module": "custom_nodes.v3_pack", "category": "test_pack/v3", "output_node": False,
        "deprecated": False, "experimental": False, "api_node": False}
