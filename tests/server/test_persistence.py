"""Restarts: the queue and the history survive; a job running when the server died runs again."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.server.conftest import ServerThread
from tests.server.helpers import Events, picture_workflow, tiny_workflow

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout=30.0, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError("condition not reached")


def test_restart_keeps_queue_history_and_pause(server_env, tmp_path):
    data = tmp_path / "data"
    with ServerThread(server_env, data, ui_dir=tmp_path / "no-ui") as first, first.client() as http:
        events = Events(first.ws_url, "me")
        done = http.post("/v1/jobs", json={"workflow": picture_workflow(), "client_id": "me"}).json()["job_id"]
        events.until_done(done)
        events.close()
        http.post("/v1/queue/pause")
        waiting = [http.post("/v1/jobs", json={"workflow": tiny_workflow(k)}).json()["job_id"] for k in range(3)]
        http.post(f"/v1/queue/{waiting[2]}/front")
        before = http.get(f"/v1/jobs/{done}").json()

    with ServerThread(server_env, data, ui_dir=tmp_path / "no-ui") as second, second.client() as http:
        queue = http.get("/v1/queue").json()
        assert queue["paused"] is True
        assert [j["job_id"] for j in queue["pending"]] == [waiting[2], waiting[0], waiting[1]]
        assert http.get(f"/v1/jobs/{done}").json() == before
        history = http.get("/v1/history").json()
        assert history["total"] == 1 and history["items"][0]["outputs"] == before["outputs"]
        comfy = http.get(f"/history/{done}").json()[done]
        image = comfy["outputs"]["2"]["images"][0]
        assert http.get("/view", params=image).status_code == 200
        http.post("/v1/queue/resume")
        for job_id in waiting:
            wait_for(lambda: http.get(f"/v1/jobs/{job_id}").json()["status"] == "success")
        assert http.get("/v1/history").json()["total"] == 4


def test_clean_stop_requeues_the_running_job(server_env, tmp_path):
    data = tmp_path / "data"
    with ServerThread(server_env, data, ui_dir=tmp_path / "no-ui") as first, first.client() as http:
        job_id = http.post("/v1/jobs", json={"workflow": picture_workflow(steps=500, delay=0.02)}).json()["job_id"]
        wait_for(lambda: http.get(f"/v1/jobs/{job_id}").json()["status"] == "running")
    with ServerThread(server_env, data, ui_dir=tmp_path / "no-ui") as second, second.client() as http:
        http.post("/v1/queue/pause")  # look before it starts again
        job = http.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] in ("pending", "running")
        assert http.get("/v1/history").json()["total"] == 0  # not recorded as interrupted


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_process(base: Path, data: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nodegraph.server", "--port", str(port), "--base", str(base), "--plugins",
         str(base / "custom_nodes"), "--data-dir", str(data)],
        cwd=str(base), env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_job_running_when_the_server_is_killed_runs_again_after_restart(server_env, tmp_path):
    base = server_env.folders.output.parent  # the fixture's folders and plugin
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_process(base, data, port)
    try:
        wait_for(lambda: _up(url), timeout=60, every=0.2)
        slow = httpx.post(url + "/v1/jobs", json={"workflow": picture_workflow(steps=100, delay=0.05)}).json()
        queued = httpx.post(url + "/v1/jobs", json={"workflow": tiny_workflow(7)}).json()
        wait_for(lambda: httpx.get(url + f"/v1/jobs/{slow['job_id']}").json()["status"] == "running")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

        proc = start_process(base, data, port)
        wait_for(lambda: _up(url), timeout=60, every=0.2)
        for job in (slow, queued):
            wait_for(lambda: httpx.get(url + f"/v1/jobs/{job['job_id']}").json()["status"] == "success", timeout=60)
        history = httpx.get(url + "/v1/history").json()["items"]
        assert [j["job_id"] for j in history] == [queued["job_id"], slow["job_id"]]  # the killed one ran first
    finally:
        proc.kill()
        proc.wait(10)


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/v1/status", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
