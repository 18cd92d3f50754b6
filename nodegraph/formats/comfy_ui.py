"""ComfyUI UI (litegraph) format -> native workflow, on the server side.

ComfyUI converts its saved UI workflows to executable graphs only in its browser frontend;
we do it here so saved UI workflows also run headless. What the frontend does, we do:
- widgets_values are positional: they map onto the node type's widget inputs in declaration
  order, skipping the extra "control after generate" value that follows seed-like widgets;
- frontend-only nodes are resolved away: Reroute (pass-through), PrimitiveNode (its value goes
  into the widget it feeds), Note / MarkdownNote (dropped);
- muted nodes (mode 2) are dropped and bypassed nodes (mode 4) pass their first input of the
  matching type through.
"""
from __future__ import annotations

from typing import Any

from ..types import socket_type
from ..workflow import link
from .errors import WorkflowFormatError

FRONTEND_ONLY = {"Reroute", "PrimitiveNode", "Note", "MarkdownNote"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
MUTED, BYPASSED = 2, 4


def to_native(doc: dict, registry) -> dict:
    nodes_by_id = {int(n["id"]): n for n in doc.get("nodes", [])}
    links = {}
    for entry in doc.get("links", []):
        if isinstance(entry, dict):  # newer frontends may write links as objects
            entry = [entry["id"], entry["origin_id"], entry["origin_slot"], entry["target_id"],
                     entry["target_slot"], entry.get("type")]
        links[int(entry[0])] = entry

    def source_of(link_id: int, want_type: str | None, seen: set[int]) -> tuple[str, Any]:
        """Follow a link back through frontend-only and bypassed nodes: ('link', (id, slot)) or ('value', v)."""
        entry = links.get(int(link_id))
        if entry is None:
            raise WorkflowFormatError(f"link {link_id} is referenced but not defined")
        origin_id, origin_slot = int(entry[1]), int(entry[2])
        if origin_id in seen:
            raise WorkflowFormatError(f"link {link_id} loops through frontend-only nodes")
        origin = nodes_by_id.get(origin_id)
        if origin is None:
            raise WorkflowFormatError(f"link {link_id} comes from missing node {origin_id}")
        kind = origin.get("type")
        link_type = want_type or entry[5]
        if kind == "Reroute" or origin.get("mode") == BYPASSED:
            for slot in origin.get("inputs") or []:
                if slot.get("link") is not None and (kind == "Reroute" or _types_match(slot.get("type"), link_type)):
                    return source_of(slot["link"], link_type, seen | {origin_id})
            raise WorkflowFormatError(f"node {origin_id} ({kind}) passes nothing through to link {link_id}")
        if kind == "PrimitiveNode":
            values = origin.get("widgets_values") or []
            if not values:
                raise WorkflowFormatError(f"PrimitiveNode {origin_id} has no value")
            return "value", values[0]
        return "link", (str(origin_id), origin_slot)

    native: dict[str, dict] = {}
    for node_id, node in nodes_by_id.items():
        kind = node.get("type")
        if kind in FRONTEND_ONLY or node.get("mode") in (MUTED, BYPASSED):
            continue
        inputs: dict[str, Any] = {}
        spec = registry.get(kind)
        values = node.get("widgets_values")
        if spec is not None and values is not None:
            inputs.update(_widget_inputs(spec, values))
        for slot in node.get("inputs") or []:
            if slot.get("link") is None:
                continue
            name = (slot.get("widget") or {}).get("name") or slot.get("name")
            how, what = source_of(slot["link"], slot.get("type"), {node_id})
            inputs[name] = link(*what) if how == "link" else what
        entry: dict[str, Any] = {"type": kind, "inputs": inputs}
        if node.get("title"):
            entry["title"] = node["title"]
        ui = {k: node[k] for k in ("pos", "size", "color", "bgcolor") if k in node}
        if ui:
            entry["ui"] = ui
        native[str(node_id)] = entry
    # links into dropped (muted) nodes vanish with them; links out of them are reported by validation
    ui = {"groups": doc["groups"]} if doc.get("groups") else None
    return {"version": 1, "nodes": native, **({"ui": ui} if ui else {})}


def _widget_inputs(spec, values) -> dict[str, Any]:
    widgets = [i for i in spec.inputs if i.is_widget]
    if isinstance(values, dict):
        return {i.name: values[i.name] for i in widgets if i.name in values}
    out: dict[str, Any] = {}
    k = 0
    for inp in widgets:
        if k >= len(values):
            break
        out[inp.name] = values[k]
        k += 1
        if (inp.control_after_generate or inp.name in ("seed", "noise_seed")) and k < len(values) \
                and isinstance(values[k], str) and values[k] in CONTROL_VALUES:
            k += 1
    return out


def _types_match(a: str | None, b: str | None) -> bool:
    """Socket compatibility as validation judges it; an untyped slot matches anything."""
    return not a or not b or socket_type(a).accepts(socket_type(b))
