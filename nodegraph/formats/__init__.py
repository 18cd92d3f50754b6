"""Reading and writing workflows in every supported format, as the native `Workflow` schema.

    workflow = load_workflow("picture.png", registry)     # .json of any format, or a PNG with one inside
    workflow = parse_workflow(json_document, registry)    # already parsed JSON of any format

Formats: native nodegraph JSON (nodegraph.workflow), ComfyUI API format (comfy_api), ComfyUI UI
(litegraph) format (comfy_ui, needs the registry to map widget values), and PNG text chunks
written by nodegraph or ComfyUI (png). The schema module knows none of them: this package
depends on it, never the other way round.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..workflow import Workflow
from . import comfy_api, comfy_ui
from .errors import WorkflowFormatError
from .png import read_png_workflow

__all__ = ["WorkflowFormatError", "detect_format", "parse_workflow", "load_workflow", "save_workflow"]


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


def parse_workflow(data: Any, registry=None, keep_modes: bool = False) -> Workflow:
    """Any supported document (already parsed JSON) as a native Workflow (keep_modes: see comfy_ui.to_native)."""
    kind = detect_format(data)
    if kind == "comfy_api":
        api = data["prompt"] if isinstance(data.get("prompt"), dict) and "class_type" not in data["prompt"] else data
        data = comfy_api.to_native(api, registry)
    elif kind == "comfy_ui":
        if registry is None:
            raise WorkflowFormatError("ComfyUI UI-format workflows need the node registry to convert")
        data = comfy_ui.to_native(data, registry, keep_modes)
    try:
        return Workflow.model_validate(data)
    except Exception as exc:
        raise WorkflowFormatError(f"invalid workflow document: {exc}") from exc


def load_workflow(path: str | Path, registry=None) -> Workflow:
    """Load a workflow from a .json file or a PNG with an embedded workflow."""
    path = Path(path)
    if path.suffix.lower() == ".png":
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
    """Write the native document, indented."""
    Path(path).write_text(json.dumps(workflow.to_json(), indent=2) + "\n", encoding="utf-8")
