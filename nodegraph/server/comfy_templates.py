"""Our example workflows as ComfyUI's frontend loads templates: its UI (litegraph) format.

The frontend only loads UI-format documents from the templates dialog, so a native workflow is
laid out as one: node ids kept (numeric ones as numbers), linked inputs as input slots with
their link ids, widget values in the node type's widget order with the extra "control after
generate" value after seed-like widgets (what formats/comfy_ui.py reads back), and positions
from the workflow's own "ui" data or, without it, columns by depth in the graph.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..formats import load_workflow

COLUMN, ROW, WIDTH = 360, 60, 320


def _is_link(value: Any) -> bool:
    return isinstance(value, dict) and "node" in value and "output" in value


def _seed_like(inp) -> bool:
    return inp.control_after_generate or inp.name in ("seed", "noise_seed")


def to_ui_workflow(native: dict, registry) -> dict:
    nodes_in = native.get("nodes") or {}
    ids = {nid: int(nid) if str(nid).isdigit() else k + 1 for k, nid in enumerate(nodes_in)}
    if len(set(ids.values())) != len(ids):  # mixed ids collide: number them all
        ids = {nid: k + 1 for k, nid in enumerate(nodes_in)}

    depth: dict[str, int] = {}

    def depth_of(nid: str, seen=()) -> int:
        if nid not in depth:
            sources = [v["node"] for v in nodes_in[nid].get("inputs", {}).values()
                       if _is_link(v) and v["node"] in nodes_in and v["node"] not in seen]
            depth[nid] = 1 + max((depth_of(s, (*seen, nid)) for s in sources), default=-1)
        return depth[nid]

    for nid in nodes_in:
        depth_of(nid)
    rows: dict[int, int] = {}
    nodes, links = [], []
    outputs_by_node: dict[str, list[dict]] = {}
    for order, (nid, node) in enumerate(sorted(nodes_in.items(), key=lambda kv: depth[kv[0]])):
        spec = registry.get(node["type"])
        values = node.get("inputs", {})
        inputs, widgets = [], []
        if spec is not None:
            for inp in spec.inputs:
                value = values.get(inp.name)
                if inp.is_widget:
                    literal = value if (inp.name in values and not _is_link(value)) else \
                        (inp.default if inp.has_default else None)
                    widgets.append(literal)
                    if _seed_like(inp) and inp.type.name == "INT":
                        widgets.append("fixed")
                    if _is_link(value):
                        inputs.append({"name": inp.name, "type": inp.type.name, "widget": {"name": inp.name},
                                       "link": None, "_from": value})
                else:
                    inputs.append({"name": inp.name, "type": inp.type.name, "link": None,
                                   **({"_from": value} if _is_link(value) else {})})
            outputs = [{"name": o.name, "type": o.type.name, "links": [], "slot_index": k}
                       for k, o in enumerate(spec.outputs)]
        else:
            outputs = []
        outputs_by_node[nid] = outputs
        ui = node.get("ui") or {}
        column = depth[nid]
        row = rows.get(column, 0)
        rows[column] = row + 1
        height = ROW + 26 * (len(inputs) + len(widgets))
        entry = {"id": ids[nid], "type": node["type"],
                 "pos": list(ui.get("pos") or [40 + COLUMN * column, 40 + row * 260]),
                 "size": list(ui.get("size") or [WIDTH, height]), "flags": {}, "order": order, "mode": 0,
                 "inputs": inputs, "outputs": outputs, "properties": {"Node name for S&R": node["type"]},
                 "widgets_values": widgets}
        if node.get("title"):
            entry["title"] = node["title"]
        nodes.append(entry)
    for entry in nodes:
        for slot_index, slot in enumerate(entry["inputs"]):
            source = slot.pop("_from", None)
            if source is None or source["node"] not in nodes_in:
                continue
            spec = registry.get(nodes_in[source["node"]]["type"])
            out = source["output"]
            out_index = out if isinstance(out, int) else (spec.output_index.get(out, 0) if spec else 0)
            link_id = len(links) + 1
            links.append([link_id, ids[source["node"]], out_index, entry["id"], slot_index, slot["type"]])
            slot["link"] = link_id
            outs = outputs_by_node.get(source["node"]) or []
            if out_index < len(outs):
                outs[out_index]["links"].append(link_id)
    return {"last_node_id": max((n["id"] for n in nodes), default=0), "last_link_id": len(links),
            "nodes": nodes, "links": links, "groups": [], "config": {}, "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
            "version": 0.4}


def template_json(path: Path, registry, env=None) -> dict:
    """A workflow file (any format we read) as a UI-format template."""
    return to_ui_workflow(load_workflow(path, registry).to_json(), registry)
