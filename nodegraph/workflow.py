"""The native workflow document, and loading any supported format into it.

    {
      "version": 1,
      "nodes": {
        "4": {"type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "nodegraph-default.safetensors"}},
        "6": {"type": "CLIPTextEncode", "inputs": {"text": "a red circle", "clip": {"node": "4", "output": "CLIP"}}}
      },
      "outputs": null,            # optional: the output nodes to run (default: every output node)
      "ui": {...}                 # optional: editor layout (positions, groups), kept as it is
    }

A link is an object {"node": id, "output": name or index}; anything else is a literal value.
ComfyUI's API and UI (litegraph) formats, and PNGs made by nodegraph or ComfyUI, are converted
on load by nodegraph.formats.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = 1


class NodeEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1)
    inputs: dict[str, Any] = Field(default_factory=dict)
    title: str | None = None
    ui: dict[str, Any] | None = None  # position, size, colour in the editor


class Workflow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = FORMAT_VERSION
    nodes: dict[str, NodeEntry]
    outputs: list[str] | None = None
    ui: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)


def is_link(value: Any) -> bool:
    return type(value) is dict and len(value) == 2 and "node" in value and "output" in value


def link(node: str, output: str | int) -> dict:
    return {"node": str(node), "output": output}


class WorkflowFormatError(ValueError):
    pass


def detect_format(data: Any) -> str:
    """'native', 'comfy_api' or 'comfy_ui'."""
    if not isinstance(data, dict):
        raise WorkflowFormatError(f"a workflow must be a JSON object, not {type(data).__name__}")
    nodes = data.get("nodes")
    if isinstance(nodes, dict) and ("version" in data or all(isinstance(n, dict) and "type" in n for n in nodes.values())):
        return "native"
    if isinstance(nodes, list) and "links" in data:
        return "comfy_ui"
    if "prompt" in data and isinstance(data["prompt"], dict):
        return "comfy_api"
    if data and all(isinstance(v, dict) and "class_type" in v for v in data.values()):
        return "comfy_api"
    raise WorkflowFormatError("not a workflow: expected nodegraph JSON ({'version', 'nodes': {...}}), "
                              "ComfyUI API format ({'1': {'class_type': ...}}) or ComfyUI UI format "
                              "({'nodes': [...], 'links': [...]})")


def parse_workflow(data: Any, registry=None) -> Workflow:
    """Any supported document (already parsed JSON) as a native Workflow."""
    from .formats import comfy_api, comfy_ui

    kind = detect_format(data)
    if kind == "comfy_api":
        api = data["prompt"] if isinstance(data.get("prompt"), dict) and "class_type" not in data["prompt"] else data
        data = comfy_api.to_native(api)
    elif kind == "comfy_ui":
        if registry is None:
            raise WorkflowFormatError("ComfyUI UI-format workflows need the node registry to convert")
        data = comfy_ui.to_native(data, registry)
    try:
        return Workflow.model_validate(data)
    except Exception as exc:
        raise WorkflowFormatError(f"invalid workflow document: {exc}") from exc


def load_workflow(path: str | Path, registry=None) -> Workflow:
    """Load a workflow from a .json file or a PNG with an embedded workflow."""
    path = Path(path)
    if path.suffix.lower() == ".png":
        from .formats.png import read_png_workflow

        data = read_png_workflow(path)
        if data is None:
            raise WorkflowFormatError(f"{path} holds no embedded workflow")
    else:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise WorkflowFormatError(f"{path} is not valid JSON: {exc}") from exc
    return parse_workflow(data, registry)


def save_workflow(workflow: Workflow, path: str | Path) -> None:
    Path(path).write_text(json.dumps(workflow.to_json(), indent=2) + "\n", encoding="utf-8")
