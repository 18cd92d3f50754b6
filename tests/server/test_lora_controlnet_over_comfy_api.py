"""ComfyUI clients drive the LoRA + ControlNet pipeline unchanged: the example workflow exported to
ComfyUI's API format, its control image uploaded through /upload/image, the prompt queued on /prompt,
events read from /ws, the image fetched from /view. A LoRA with a key that matches nothing runs, and
its warning reaches the client and the job's history."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from nodegraph.formats import comfy_api
from nodegraph.formats import load_workflow
from training.default_world import read_image

from tests.server.conftest import ServerThread
from tests.server.test_comfy import comfy_socket, read_until_done

pytestmark = pytest.mark.slow  # the default model, LoRA and ControlNet sampled over ComfyUI's HTTP + websocket

ROOT = Path(__file__).resolve().parents[2]
LORA = ROOT / "nodes" / "diffusion" / "loras" / "nodegraph-silhouette.safetensors"


def test_controlnet_lora_prompt_from_a_comfyui_client(tmp_path, builtin_registry):
    from nodegraph.environment import Environment
    from nodegraph.folders import Folders

    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir()
    server_env = Environment(registry=builtin_registry, folders=Folders(tmp_path))  # with the shipped models
    with ServerThread(server_env, tmp_path / "data", ui_dir=tmp_path / "no-ui") as server, server.client() as http:
        run_and_check(server, server_env, http)


def run_and_check(server, server_env, http) -> None:
    prompt = comfy_api.from_native(load_workflow(ROOT / "workflows" / "controlnet-lora.json", server_env.registry),
                                   server_env.registry)
    assert {n["class_type"] for n in prompt.values()} >= {"LoraLoader", "ControlNetLoader", "ControlNetApplyAdvanced"}

    # the control image: a white square near the top left, uploaded as a ComfyUI client does
    control = np.zeros((128, 128, 3), np.uint8)
    control[20:60, 24:64] = 255
    buffer = io.BytesIO()
    Image.fromarray(control).save(buffer, format="PNG")
    r = http.post("/upload/image", files={"image": ("square.png", buffer.getvalue(), "image/png")})
    assert r.status_code == 200, r.text
    loader = next(k for k, n in prompt.items() if n["class_type"] == "LoadImage")
    prompt[loader]["inputs"]["image"] = r.json()["name"]

    # a copy of the shipped LoRA with one extra key that matches no weight
    lora = load_file(str(LORA))
    lora["lora_unet_no_such_layer.lora_down.weight"] = torch.zeros(4, 8, dtype=torch.float16)
    (server_env.folders.models / "loras").mkdir(parents=True, exist_ok=True)
    save_file(lora, str(server_env.folders.models / "loras" / "extra-key.safetensors"))
    lora_node = next(k for k, n in prompt.items() if n["class_type"] == "LoraLoader")
    prompt[lora_node]["inputs"]["lora_name"] = "extra-key.safetensors"

    ws = comfy_socket(server, "cn-lora")
    r = http.post("/prompt", json={"prompt": prompt, "client_id": "cn-lora"})
    assert r.status_code == 200 and r.json()["node_errors"] == {}, r.text
    prompt_id = r.json()["prompt_id"]
    texts, _ = read_until_done(ws, prompt_id)
    ws.close()
    kinds = [m["type"] for m in texts]
    assert "execution_success" in kinds, texts[-3:]
    warnings = [m["data"] for m in texts if m["type"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["node"] == lora_node
    assert "lora_unet_no_such_layer" in warnings[0]["message"]

    history = http.get(f"/history/{prompt_id}").json()[prompt_id]
    assert any(m[0] == "warning" for m in history["status"]["messages"])
    image_ref = next(iter(history["outputs"].values()))["images"][0]
    png = Image.open(io.BytesIO(http.get("/view", params=image_ref).content)).convert("RGB")
    reading = read_image(np.asarray(png, np.float32) / 255.0)
    assert (reading.shape_color, reading.background) == ("black", "white")  # the LoRA's style
    cx, cy = reading.centroid
    assert abs(cx - 44 / 128) < 0.12 and abs(cy - 40 / 128) < 0.12, reading.centroid  # where the control says
