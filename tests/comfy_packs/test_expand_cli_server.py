"""The expansion test packs end to end: the CLI (`nodegraph run` in a subprocess) and the server
(ComfyUI's /prompt and /ws with websocket-client, as ComfyUI's example scripts talk to it). Message
order for expanded nodes as ComfyUI 0.8's execution.py sends it: `executing` {node, display_node}
for each node an expansion added, none when the expanding node finishes, `executed` for output
nodes inside the expansion under their own id."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image
from tests.server.conftest import ServerThread
from tests.server.test_comfy_protocol import ComfySocket, post

from nodegraph.environment import Environment
from nodegraph.folders import Folders

from .test_cli_server import cli
from .workflows_expand import (LOOP, LOOP_COUNTER, LOOP_PIXEL, LOOP_TOTAL, SUBFLOW, SUBFLOW_BLEND,
                               SUBFLOW_DOUBLED_INVERTED)


def pixel(path) -> tuple:
    return tuple(int(v) for v in np.asarray(Image.open(path).convert("RGB"))[0, 0])


def truncated(values) -> tuple:
    return tuple(int(v * 255) for v in values)  # SaveImage keeps ComfyUI's truncation


def test_cli_runs_the_loop_and_the_subflow(tmp_path):
    (tmp_path / "loop.json").write_text(json.dumps(LOOP))
    (tmp_path / "subflow.json").write_text(json.dumps(SUBFLOW))
    loop = cli("run", "loop.json", "--output-dir", "out", cwd=tmp_path)
    assert loop.returncode == 0, loop.stderr
    assert f"node 12: {LOOP_COUNTER}" in loop.stdout and f"node 13: {LOOP_TOTAL}" in loop.stdout
    assert "▶ 11.0.0.7 (expanded, in node 7)" in loop.stderr
    assert pixel(tmp_path / "out" / "loop_00001_.png") == (LOOP_PIXEL,) * 3
    subflow = cli("run", "subflow.json", "--output-dir", "out", cwd=tmp_path)
    assert subflow.returncode == 0, subflow.stderr
    assert "node 2.0.0.3: wrote out/subflow_00001_.png" in subflow.stdout
    assert pixel(tmp_path / "out" / "subflow_00001_.png") == truncated(SUBFLOW_BLEND)
    doubled = Image.open(tmp_path / "out" / "doubled_00001_.png")
    assert doubled.size == (6, 4) and pixel(tmp_path / "out" / "doubled_00001_.png") == truncated(SUBFLOW_DOUBLED_INVERTED)


def history_of(http, prompt_id) -> dict:
    deadline = time.monotonic() + 30
    while not (history := http.get(f"/history/{prompt_id}").json()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return history[prompt_id]


@pytest.mark.parametrize("in_process", [True, pytest.param(False, marks=pytest.mark.slow)])  # False: the
def test_server_runs_them_with_comfyuis_messages(tmp_path, comfy_registry, in_process):    # worker process
    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir()
    env = Environment(registry=comfy_registry, folders=Folders(tmp_path))
    with ServerThread(env, tmp_path, in_process=in_process) as server, server.client() as http:
        socket = ComfySocket(server, "expand-client")
        try:
            answer = post(http, SUBFLOW, client_id="expand-client").json()
            messages = [m for kind, m in socket.read_until_done(answer["prompt_id"]) if kind == "json"]
            answer_loop = post(http, LOOP, client_id="expand-client").json()
            socket.frames.clear()
            loop_messages = [m for kind, m in socket.read_until_done(answer_loop["prompt_id"]) if kind == "json"]
        finally:
            socket.close()
        executing = [(m["data"]["node"], m["data"].get("display_node")) for m in messages if m["type"] == "executing"]
        assert executing == [("1", "1"), ("2", "2"), ("2.0.0.1", "2"), ("2.0.0.2", "2"), ("2.0.0.3", "2"),
                             ("2.0.0.4", "2"), ("3", "3"), ("3.0.0.1", "3"), ("4", "4"), (None, None)]
        executed = [m["data"] for m in messages if m["type"] == "executed"]
        assert [(d["node"], d["display_node"]) for d in executed] == [("2.0.0.3", "2"), ("4", "4")]
        assert executed[0]["output"] == {"images": [{"filename": "subflow_00001_.png", "subfolder": "",
                                                     "type": "output"}]}
        entry = history_of(http, answer["prompt_id"])
        assert entry["status"]["status_str"] == "success"
        assert set(entry["outputs"]) == {"2.0.0.3", "4"}
        assert pixel(tmp_path / "output" / "subflow_00001_.png") == truncated(SUBFLOW_BLEND)

        loop_entry = history_of(http, answer_loop["prompt_id"])
        assert loop_entry["outputs"]["12"] == {"text": [str(LOOP_COUNTER)]}
        assert loop_entry["outputs"]["13"] == {"text": [str(LOOP_TOTAL)]}
        assert pixel(tmp_path / "output" / "loop_00001_.png") == (LOOP_PIXEL,) * 3
        seen = {m["data"]["node"]: m["data"]["display_node"] for m in loop_messages if m["type"] == "executing"
                and m["data"]["node"]}
        assert seen["11.0.0.Recurse"] == "11" and seen["11.0.0.5"] == "5"
        assert "execution_success" in [m["type"] for m in loop_messages]
