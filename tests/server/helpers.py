"""Workflows and websocket helpers shared by the server tests."""
from __future__ import annotations

import json
import time

import msgpack
from websockets.sync.client import connect


def L(node: str, output=0) -> dict:
    return {"node": node, "output": output}


def picture_workflow(steps: int = 3, size: int = 16, red: int = 200, seed: int = 0, delay: float = 0.0,
                     prefix: str = "e2e") -> dict:
    return {"version": 1, "nodes": {
        "1": {"type": "GradientSteps", "inputs": {"steps": steps, "size": size, "red": red, "seed": seed,
                                                  "delay": delay}},
        "2": {"type": "SaveImage", "inputs": {"images": L("1"), "filename_prefix": prefix}}}}


def tiny_workflow(seed: int) -> dict:
    """A small job that always executes (its literal differs) and shows a value."""
    return {"version": 1, "nodes": {
        "1": {"type": "PrimitiveInt", "inputs": {"value": seed}},
        "2": {"type": "PreviewAny", "inputs": {"source": L("1")}}}}


class Events:
    """A native websocket (/v1/ws) reader: JSON text frames and msgpack binary previews."""

    def __init__(self, ws_url: str, client_id: str, token: str | None = None) -> None:
        query = f"client_id={client_id}" + (f"&token={token}" if token else "")
        self.ws = connect(f"{ws_url}/v1/ws?{query}", max_size=None).__enter__()
        self.client_id = client_id
        self.events: list[tuple[str, dict]] = []
        self.previews: list[dict] = []

    def read_until(self, predicate, timeout: float = 30.0) -> tuple[str, dict]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching event; got {[e for e, _ in self.events][-20:]}")
            frame = self.ws.recv(timeout=left)
            if isinstance(frame, bytes):
                self.previews.append(msgpack.unpackb(frame))
                continue
            message = json.loads(frame)
            item = (message["type"], message["data"])
            self.events.append(item)
            if predicate(*item):
                return item

    def until_done(self, job_id: str, timeout: float = 30.0) -> list[tuple[str, dict]]:
        self.read_until(lambda e, d: e == "executing" and d.get("node") is None and d.get("prompt_id") == job_id,
                        timeout)
        return [(e, d) for e, d in self.events if d.get("prompt_id") == job_id]

    def close(self) -> None:
        self.ws.close()


def submit(http, workflow, client="tests") -> str:
    """POST a native workflow to /v1/jobs; its job id."""
    r = http.post("/v1/jobs", json={"workflow": workflow, "client_id": client})
    assert r.status_code == 200, r.text
    return r.json()["job_id"]


def wait_finished(http, job_id, timeout=120.0) -> dict:
    """Poll /v1/jobs/{id} until the job left pending/running; the job record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] not in ("pending", "running"):
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} did not finish")
