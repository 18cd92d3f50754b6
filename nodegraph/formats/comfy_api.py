"""ComfyUI API format: {"3": {"class_type": "KSampler", "inputs": {"model": ["4", 0], "seed": 5}}}.

Links are [node id, output index]; everything else is a literal. Exports resolve our named
outputs back to indexes through the registry.
"""
from __future__ import annotations

from typing import Any

from ..workflow import Workflow, is_link, link
from .comfy_names import comfy_name, native_name
from .comfy_ui import coerce_literal
from .errors import WorkflowFormatError


def _is_api_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def to_native(prompt: dict, registry=None) -> dict:
    """The native document of an API prompt. With the registry, inputs a node does not declare are
    dropped as ComfyUI ignores them (each noted in `meta.import_warnings`, reported as a warning
    event when the workflow runs) and literals are coerced as ComfyUI's backend does."""
    nodes, warnings = {}, []
    for node_id, entry in prompt.items():
        if not isinstance(entry, dict) or "class_type" not in entry:
            raise WorkflowFormatError(f"node {node_id}: a ComfyUI API node needs 'class_type' and 'inputs'")
        kind = native_name(entry["class_type"], registry)
        spec = registry.get(kind) if registry is not None and isinstance(kind, str) else None
        inputs = {}
        for name, v in (entry.get("inputs") or {}).items():
            if spec is not None and name not in spec.input_by_name:
                what = "link" if _is_api_link(v) else "value"
                warnings.append({"node": str(node_id), "node_type": kind,
                                 "message": f"node {node_id} ({kind}): input {name!r} is not an input of {kind}; "
                                            f"its {what} is ignored"})
                continue
            if _is_api_link(v):
                inputs[name] = link(str(v[0]), v[1])
            else:
                inputs[name] = coerce_literal(spec.input_by_name[name], v) if spec is not None else v
        title = (entry.get("_meta") or {}).get("title")
        nodes[str(node_id)] = {"type": kind, "inputs": inputs, **({"title": title} if title else {})}
    doc = {"version": 1, "nodes": nodes}
    if warnings:
        doc["meta"] = {"import_warnings": warnings}
    return doc


def from_native(workflow: Workflow, registry) -> dict:
    """An API prompt has no node modes: muted and bypassed nodes are resolved away first, as ComfyUI's
    frontend does before it sends a prompt."""
    from ..modes import apply_modes  # (nodegraph.modes imports this package)

    workflow, _ = apply_modes(workflow, registry)
    prompt: dict[str, Any] = {}
    for node_id, entry in workflow.nodes.items():
        inputs = {}
        for name, value in entry.inputs.items():
            if is_link(value):
                out = value["output"]
                if isinstance(out, str):
                    src = workflow.nodes.get(value["node"])
                    spec = registry.get(src.type) if src else None
                    if spec is None or out not in spec.output_index:
                        raise WorkflowFormatError(f"node {node_id}: input {name!r} links to unknown output {out!r}")
                    out = spec.output_index[out]
                inputs[name] = [value["node"], out]
            else:
                inputs[name] = value
        prompt[node_id] = {"class_type": comfy_name(entry.type), "inputs": inputs,
                           "_meta": {"title": entry.title or entry.type}}
    return prompt
