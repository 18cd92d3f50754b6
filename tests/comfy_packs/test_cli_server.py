"""ComfyUI test packs through the CLI (a real subprocess) and the server (a real uvicorn): workflows
run, pack routes answer at their path and under /api (ComfyUI 0.8 serves both), send_sync reaches
the submitting client's websocket, /object_info shows pack nodes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.server.conftest import ServerThread
from tests.server.helpers import Events

from nodegraph.environment import Environment
from nodegraph.folders import Folders

from .conftest import PACKS

ROOT = Path(__file__).resolve().parents[2]


def L(node, output=0):
    return {"node": node, "output": output}


MIXED = {"version": 1, "nodes": {
    "r": {"type": "EmptyImage", "inputs": {"width": 8, "height": 4, "batch_size": 1, "color": 0xFF0000}},
    "g": {"type": "EmptyImage", "inputs": {"width": 8, "height": 4, "batch_size": 1, "color": 0x00FF00}},
    "batch": {"type": "ImageBatch", "inputs": {"image1": L("r"), "image2": L("g")}},
    "split": {"type": "TestImageListFromBatch", "inputs": {"images": L("batch")}},
    "dim": {"type": "TestImageBrightness", "inputs": {"image": L("split"), "factor": 0.5}},
    "join": {"type": "TestImageBatchFromList", "inputs": {"images": L("dim"), "reverse": True}},
    "save": {"type": "SaveImage", "inputs": {"images": L("join"), "filename_prefix": "mixed"}}}}


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nodegraph.cli", "--plugins", str(PACKS), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_lists_import_times_and_runs_a_mixed_workflow(tmp_path):
    listing = cli("nodes", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "Import times for custom nodes:" in listing.stdout
    assert "(IMPORT FAILED): " in listing.stdout and "broken_import (ComfyUI pack, 0 node(s))" in listing.stdout
    assert "TestImageBrightness(image, factor) -> IMAGE" in listing.stdout
    assert "not loaded:" in listing.stdout and "a_dependency_nobody_installed" in listing.stdout

    workflow = tmp_path / "mixed.json"
    workflow.write_text(json.dumps(MIXED))
    proc = cli("run", str(workflow), "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    first, second = sorted((tmp_path / "out").glob("mixed_*.png"))
    assert tuple(np.asarray(Image.open(first).convert("RGB"))[0, 0]) == (0, 127, 0)  # reversed: dimmed green first (0.5 saved as ComfyUI does: truncated)
    assert tuple(np.asarray(Image.open(second).convert("RGB"))[0, 0]) == (127, 0, 0)


def test_server_serves_pack_routes_nodes_and_messages(tmp_path, comfy_registry):
    serve_packs(tmp_path, comfy_registry, in_process=True)


@pytest.mark.slow  # a worker process that imports torch and the packs again costs seconds
def test_server_runs_packs_in_its_worker_process(tmp_path, comfy_registry):
    """The default server: jobs run in a worker process that loads the packs again from the plugins
    folder (EnvRecipe), and send_sync there reaches the server's websocket clients over the pipe."""
    serve_packs(tmp_path, comfy_registry, in_process=False)


def serve_packs(tmp_path, registry, in_process: bool) -> None:
    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir()
    env = Environment(registry=registry, folders=Folders(tmp_path))
    with ServerThread(env, tmp_path, in_process=in_process) as server, server.client() as http:
        for prefix in ("", "/api"):
            answer = http.get(f"{prefix}/web_routes/hello/ada", params={"loud": "1"})
            assert answer.status_code == 200 and answer.json() == {"hello": "ada", "loud": True}
        bad = http.post("/web_routes/greet", json={})
        assert bad.status_code == 400 and bad.text == "name is required"
        assert http.post("/web_routes/greet", json={"name": "bo"}).text == "greeted bo"

        info = http.get("/object_info/TestImageBrightness").json()["TestImageBrightness"]
        assert info["input"]["required"]["factor"][1]["max"] == 4.0
        assert info["display_name"] == "Image Brightness (test)" and info["category"] == "test_pack/image"

        events = Events(server.ws_url, "client-1")
        try:
            job = http.post("/v1/jobs", json={"workflow": {"version": 1, "nodes": {
                "n": {"type": "TestNotify", "inputs": {"message": "ping"}}}}, "client_id": "client-1"}).json()
            events.read_until(lambda e, d: e == "web_routes.notice")
            done = events.until_done(job["job_id"])
        finally:
            events.ws.close()
        notice = [d for e, d in events.events if e == "web_routes.notice"]
        assert notice == [{"node": "n", "message": "ping"}]
        assert any(e == "executed" and d["output"] == {"text": ["ping"]} for e, d in done)

        job = http.post("/prompt", json={"prompt": {
            "1": {"class_type": "EmptyImage", "inputs": {"width": 4, "height": 4, "batch_size": 2, "color": 0}},
            "2": {"class_type": "TestImageListFromBatch", "inputs": {"images": ["1", 0]}},
            "3": {"class_type": "TestImageBatchFromList", "inputs": {"images": ["2", 0], "reverse": False}},
            "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}}}}).json()
        deadline = time.monotonic() + 30
        while not (history := http.get(f"/history/{job['prompt_id']}").json()) and time.monotonic() < deadline:
            time.sleep(0.05)
        entry = history[job["prompt_id"]]
        assert entry["status"]["status_str"] == "success"
        assert "2" in json.dumps(entry["outputs"]["4"])  # INPUT_IS_LIST joined both items
