"""ComfyUI's websocket protocol: how an event becomes ComfyUI's frame, the feature-flags handshake,
and the progress_state messages derived from the event stream.

Sources (ComfyUI 0.8): server.py (websocket_handler, send_image, send_image_with_metadata,
encode_bytes, get_queue_info), protocol.py (BinaryEventTypes), comfy_api/feature_flags.py,
comfy_execution/progress.py (ProgressRegistry, WebUIProgressHandler), execution.py (where
start_progress / finish_progress are called), main.py (the progress hook).

progress_state: ComfyUI's executor marks a node running before its `executing` message, updates it
at each progress step (before the `progress` message), and marks it finished once it completed
(after its `executed` message, if any); a cached output node is marked finished when its UI is
re-sent. Each change sends {"prompt_id", "nodes": {id: state}} with every node that is not pending.
Our executor does not announce the end of a node that shows nothing, so its "finished" goes out
just before the next node starts or the run succeeds — the same order ComfyUI's messages have.
A node that failed is marked "error" (ComfyUI's NodeState.Error) since our run goes on with
independent branches, where ComfyUI's stops.
"""
from __future__ import annotations

import json
import struct

PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA = 1, 4  # protocol.BinaryEventTypes
IMAGE_TYPE_NUMBERS = {"JPEG": 1, "PNG": 2}  # server.send_image: anything else is 1
PNG_MIME, JPEG_MIME = "image/png", "image/jpeg"


# --- frames -------------------------------------------------------------------------------------
def encode(event: str, data: dict, preview: bytes | None, preview_metadata: bool) -> str | bytes:
    """One event as ComfyUI's server sends it."""
    if preview is not None:
        return preview_frame(data, preview, preview_metadata)
    if event == "status":
        body = {"status": {"exec_info": {"queue_remaining": data.get("queue_remaining", 0)}}}
        if "sid" in data:
            body["sid"] = data["sid"]
        return _json("status", body)
    return _json(event, data)


def preview_frame(data: dict, image: bytes, with_metadata: bool) -> bytes:
    """A preview image: event 4 with a JSON metadata block for a client that supports it
    (send_image_with_metadata), else event 1 with the image type number (send_image)."""
    mime = data.get("image_type", PNG_MIME)
    if not with_metadata:
        kind = IMAGE_TYPE_NUMBERS["PNG"] if mime == PNG_MIME else IMAGE_TYPE_NUMBERS["JPEG"]
        return struct.pack(">II", PREVIEW_IMAGE, kind) + image
    node = data.get("node")
    metadata = {"node_id": node, "prompt_id": data.get("prompt_id"), "display_node_id": node,
                "parent_node_id": None, "real_node_id": node, "image_type": mime}
    block = json.dumps(metadata).encode("utf-8")  # json.dumps' default separators, as ComfyUI's
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(block)) + block + image


def _json(event: str, data: dict) -> str:
    return json.dumps({"type": event, "data": data}, default=str, separators=(",", ":"))


def client_feature_flags(text: str) -> tuple[bool, dict | None]:
    """(is JSON, the flags) of a client's message; flags only for {"type": "feature_flags"}."""
    try:
        message = json.loads(text)
    except ValueError:
        return False, None
    if not isinstance(message, dict) or message.get("type") != "feature_flags":
        return True, None
    flags = message.get("data", {})
    return True, flags if isinstance(flags, dict) else {}


# --- progress_state -----------------------------------------------------------------------------
class RunProgress:
    """The node states of one running prompt (ComfyUI's ProgressRegistry)."""

    def __init__(self, prompt_id: str, client_id: str | None) -> None:
        self.prompt_id = prompt_id
        self.client_id = client_id
        self.nodes: dict[str, dict] = {}  # node id -> {state, value, max}; none is pending
        self.running: str | None = None

    def message(self) -> tuple[str, dict]:
        nodes = {node: {"value": s["value"], "max": s["max"], "state": s["state"], "node_id": node,
                        "prompt_id": self.prompt_id, "display_node_id": node, "parent_node_id": None,
                        "real_node_id": node}
                 for node, s in self.nodes.items()}
        return "progress_state", {"prompt_id": self.prompt_id, "nodes": nodes}

    def start(self, node: str) -> list:
        self.running = node
        self.nodes[node] = {"state": "running", "value": 0.0, "max": 1.0}
        return [self.message()]

    def update(self, node: str, value, maximum) -> list:
        self.nodes[node] = {"state": "running", "value": value, "max": maximum}
        return [self.message()]

    def finish(self, node: str | None) -> list:
        if node is None:
            return []
        if self.running == node:
            self.running = None
        entry = self.nodes.setdefault(node, {"state": "pending", "value": 0, "max": 1})
        entry["state"], entry["value"] = "finished", entry["max"]
        return [self.message()]

    def fail(self, node: str | None) -> None:
        if node is not None and node in self.nodes:
            self.nodes[node]["state"] = "error"
        if self.running == node:
            self.running = None


class ProgressStates:
    """progress_state messages for every prompt running now, fed with the hub's events in order."""

    def __init__(self) -> None:
        self.runs: dict[str, RunProgress] = {}

    def around(self, event: str, data: dict, client_id: str | None) -> tuple[list, list]:
        """The progress_state messages (event, data) that go before and after this event."""
        prompt_id = data.get("prompt_id")
        if prompt_id is None:
            return [], []
        if event == "execution_start":
            self.runs[prompt_id] = RunProgress(prompt_id, client_id)
            return [], []
        run = self.runs.get(prompt_id)
        if run is None:
            return [], []
        node = data.get("node")
        if event == "executing":
            if node is None:  # the prompt is done
                self.runs.pop(prompt_id, None)
                return [], []
            return run.finish(run.running) + run.start(node), []
        if event == "progress" and node is not None:
            return run.update(node, data.get("value", 0), data.get("max", 1)), []
        if event == "executed" and node is not None:
            return [], run.finish(node)
        if event == "execution_success":
            return run.finish(run.running), []
        if event == "execution_error":
            run.fail(data.get("node_id"))
        elif event == "execution_interrupted":
            run.running = None
        return [], []

    def running_node_of(self, client_id: str) -> str | None:
        for run in self.runs.values():
            if run.client_id == client_id and run.running is not None:
                return run.running
        return None
