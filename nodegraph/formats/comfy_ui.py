"""ComfyUI UI (litegraph) format -> native workflow, on the server side.

ComfyUI converts its saved UI workflows to executable graphs only in its browser frontend; we do
it here so saved UI workflows also run headless (CLI, server, and the editor's import, which calls
the server's /api/convert). What the frontend does, we do (see comfy_graph for the facts):
- subgraphs (`definitions.subgraphs`, nested too) expand into plain nodes whose ids are the
  frontend's execution ids ("12:5" is node 5 inside instance 12); their inputs, outputs and
  promoted widgets resolve as the frontend resolves them; `meta.origins` says where each expanded
  node came from ("subgraph 'Upscale' › node 5"), so errors stay traceable;
- widgets_values are positional: they map onto the node type's widget inputs in declaration
  order; an input declared with a control-after-generate widget (e.g. `Seed(...)`) may be followed
  by the control's value ("randomize" ...), which is skipped; a dict maps by name;
- Reroute, PrimitiveNode, Note and MarkdownNote are resolved away (the root's notes are kept in
  `ui.notes` and seeds' control values in each node's `ui.controls`, for the editor); muted nodes are dropped;
  bypassed nodes pass an input of the matching type through, or nothing.
Values are coerced as ComfyUI's backend does (int() for INT, float() for FLOAT widgets).
Problems that ComfyUI's frontend tolerates (a link id that is not defined ...) become warnings in
`meta.import_warnings`, reported as warning events when the workflow runs.
"""
from __future__ import annotations

from typing import Any

from ..workflow import link
from .errors import WorkflowFormatError
from .comfy_names import native_name
from .comfy_graph import (BYPASSED, FRONTEND_ONLY, MUTED, PRIMITIVE, REROUTE, SUBGRAPH_INPUT, Graph, Scope,
                          bypass_input)

CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
NOTES = {"Note", "MarkdownNote"}


def to_native(doc: dict, registry, keep_modes: bool = False) -> dict:
    """keep_modes (the editor's import): muted and bypassed nodes stay, with their native `mode`,
    and links into them stay links (validation resolves them as the frontend would); otherwise
    they are resolved away here."""
    return _Converter(doc, registry, keep_modes).run()


NATIVE_MODES = {MUTED: "muted", BYPASSED: "bypassed"}


class _Converter:
    def __init__(self, doc: dict, registry, keep_modes: bool = False) -> None:
        self.doc = doc
        self.registry = registry
        self.keep_modes = keep_modes
        self.definitions: dict[str, Graph] = {}
        for entry in ((doc.get("definitions") or {}).get("subgraphs") or []):
            if isinstance(entry, dict) and entry.get("id") is not None:
                name = entry.get("name") or entry["id"]
                self.definitions[str(entry["id"])] = Graph.read(entry, f"subgraph {name!r}")
        self.root = Scope(Graph.read(doc, "workflow"))
        self.nodes: dict[str, dict] = {}
        self.origins: dict[str, str] = {}
        self.warnings: list[dict] = []
        self._promoted: dict[str, list[tuple[int, bool]]] = {}

    def run(self) -> dict:
        self.expand(self.root)
        out: dict[str, Any] = {"version": 1, "nodes": self.nodes}
        ui = {}
        if self.doc.get("groups"):
            ui["groups"] = self.doc["groups"]
        notes = [note_doc(n) for n in self.root.graph.nodes.values() if n["type"] in NOTES]
        if notes:
            ui["notes"] = notes  # shown by the editor, never run
        if ui:
            out["ui"] = ui
        meta = {}
        if self.origins:
            meta["origins"] = self.origins
        if self.warnings:
            meta["import_warnings"] = self.warnings
        if meta:
            out["meta"] = meta
        return out

    def warn(self, scope: Scope, node: dict | None, message: str) -> None:
        where = scope.where(node["id"]) + ": " if node is not None else ""
        self.warnings.append({"node": scope.flat_id(node["id"]) if node is not None else None,
                              "node_type": node.get("type") if node is not None else None,
                              "message": where + message})

    # --- expansion ------------------------------------------------------------------------------
    def expand(self, scope: Scope) -> None:
        for node in scope.graph.nodes.values():
            kind = node["type"]
            if kind in FRONTEND_ONLY:
                continue
            if node.get("mode") in (MUTED, BYPASSED) and (kind in self.definitions or not self.keep_modes):
                continue  # a muted or bypassed subgraph takes its inner nodes with it
            if kind in self.definitions:
                self.expand(scope.enter(node, self.definitions[kind]))
                continue
            flat = scope.flat_id(node["id"])
            self.nodes[flat] = self.convert(scope, node)
            if scope.path:
                self.origins[flat] = scope.where(node["id"])

    def convert(self, scope: Scope, node: dict) -> dict:
        node = {**node, "type": native_name(node["type"], self.registry)}
        spec = self.registry.get(node["type"])
        inputs: dict[str, Any] = {}
        values = node.get("widgets_values")
        controls = {}
        if spec is not None and values is not None:
            literal, controls = _read_widgets(spec, values)
            inputs.update(literal)
        for k, slot in enumerate(node.get("inputs") or []):
            if not isinstance(slot, dict) or slot.get("link") is None:
                continue
            name = (slot.get("widget") or {}).get("name") or slot.get("name")
            got = self.resolve_input(scope, node, k, slot.get("type"), set())
            if got is None:
                continue  # nothing reaches it: a widget keeps its own value, an optional input gets nothing
            if got[0] == "link":
                inputs[name] = link(got[1], got[2])
            else:
                inp = spec.input_by_name.get(name) if spec is not None else None
                inputs[name] = coerce_literal(inp, got[1]) if inp is not None else got[1]
        entry: dict[str, Any] = {"type": node["type"], "inputs": inputs}
        if node.get("title"):
            entry["title"] = node["title"]
        if node.get("mode") in NATIVE_MODES:
            entry["mode"] = NATIVE_MODES[node["mode"]]
        ui = {k: node[k] for k in ("pos", "size", "color", "bgcolor") if k in node}
        flags = node.get("flags") if isinstance(node.get("flags"), dict) else {}
        ui.update({k: True for k in ("collapsed", "pinned") if flags.get(k)})
        if scope.instance is not None and "pos" in ui:
            ui["pos"] = self._placed(scope, node)
        if controls:
            ui["controls"] = controls
        if ui:
            entry["ui"] = ui
        return entry

    def _placed(self, scope: Scope, node: dict) -> list:
        """Inner nodes land where their instance stood, keeping their layout inside the subgraph."""
        inner = [n["pos"] for n in scope.graph.nodes.values() if _is_pos(n.get("pos"))]
        base = scope.instance.get("pos") if _is_pos(scope.instance.get("pos")) else [0, 0]
        if not inner or not _is_pos(node.get("pos")):
            return list(base)
        left, top = min(p[0] for p in inner), min(p[1] for p in inner)
        return [base[0] + node["pos"][0] - left, base[1] + node["pos"][1] - top]

    # --- where an input's data comes from -------------------------------------------------------
    def resolve_input(self, scope: Scope, node: dict, slot: int, want: Any, seen: set):
        """('link', flat id, output index), ('value', v) or None (nothing connected)."""
        key = (scope.path, str(node["id"]), "in", slot)
        if key in seen:
            raise WorkflowFormatError(f"{scope.where(node['id'])}: links loop through reroutes or bypassed nodes")
        seen.add(key)
        inputs = node.get("inputs") or []
        if slot >= len(inputs) or inputs[slot].get("link") is None:
            return None
        link_id = str(inputs[slot]["link"])
        found = scope.graph.links.get(link_id)
        if found is None:
            self.warn(scope, node, f"input {inputs[slot].get('name')!r} names link {link_id}, which is not "
                                   "defined; treated as unconnected")
            return None
        want = want or inputs[slot].get("type")
        if found.origin_id == SUBGRAPH_INPUT:
            return self.resolve_subgraph_input(scope, found.origin_slot, want, seen)
        origin = scope.graph.nodes.get(found.origin_id)
        if origin is None:
            self.warn(scope, node, f"input {inputs[slot].get('name')!r} is linked from node {found.origin_id}, "
                                   "which does not exist; treated as unconnected")
            return None
        return self.resolve_output(scope, origin, found.origin_slot, want, seen)

    def resolve_output(self, scope: Scope, node: dict, slot: int, want: Any, seen: set):
        key = (scope.path, str(node["id"]), "out", slot)
        if key in seen:
            raise WorkflowFormatError(f"{scope.where(node['id'])}: links loop through reroutes or bypassed nodes")
        seen.add(key)
        kind, mode = node["type"], node.get("mode")
        if mode in NATIVE_MODES and self.keep_modes and kind not in self.definitions and kind not in FRONTEND_ONLY:
            return "link", scope.flat_id(node["id"]), slot
        if mode == BYPASSED:
            index = bypass_input(node, slot, want)
            return None if index < 0 else self.resolve_input(scope, node, index, None, seen)
        if mode == MUTED:
            return None
        if kind in self.definitions:
            inner = scope.enter(node, self.definitions[kind])
            found = inner.graph.output_link(slot)
            if found is None:
                return None
            if found.origin_id == SUBGRAPH_INPUT:  # an input wired straight to an output
                return self.resolve_subgraph_input(inner, found.origin_slot, want, seen)
            origin = inner.graph.nodes.get(found.origin_id)
            if origin is None:
                self.warn(inner, None, f"output {slot} of subgraph {inner.trail[-1]!r} comes from missing "
                                       f"node {found.origin_id}")
                return None
            return self.resolve_output(inner, origin, found.origin_slot, want, seen)
        if kind == REROUTE:
            return self.resolve_input(scope, node, 0, want, seen)
        if kind == PRIMITIVE:
            values = node.get("widgets_values")
            if isinstance(values, list) and values:
                return "value", values[0]
            return None
        if kind in FRONTEND_ONLY:
            return None
        return "link", scope.flat_id(node["id"]), slot

    def resolve_subgraph_input(self, scope: Scope, index: int, want: Any, seen: set):
        """An inner link from the subgraph's input `index`: the instance's outer link, else its promoted value."""
        instance, definition = scope.instance, scope.graph
        if instance is None or index >= len(definition.inputs):
            raise WorkflowFormatError(f"subgraph {definition.name!r}: a link comes from its input {index}, "
                                      "which it does not declare")
        name = definition.inputs[index].get("name")
        outer = instance.get("inputs") or []
        k = next((k for k, s in enumerate(outer) if isinstance(s, dict) and s.get("name") == name), None)
        if k is not None and outer[k].get("link") is not None:
            return self.resolve_input(scope.parent, instance, k, want, seen)
        values = self.promoted_values(scope)
        if name in values:
            return "value", values[name]
        return None

    # --- promoted widgets -----------------------------------------------------------------------
    def promoted_values(self, scope: Scope) -> dict[str, Any]:
        """The instance's values of its promoted widgets, by subgraph input name."""
        values = scope.instance.get("widgets_values")
        names = [i.get("name") for i in scope.graph.inputs]
        if isinstance(values, dict):
            return {n: values[n] for n in names if n in values}
        if not isinstance(values, list) or not values:
            return {}
        promoted = self.promoted(scope.graph)
        # older frontends wrote an extra value after a promoted seed-like widget, as its node does
        with_controls = len(values) > len(promoted)
        out, k = {}, 0
        for index, has_control in promoted:
            if k >= len(values):
                break
            if values[k] is not None:
                out[names[index]] = values[k]
            k += 2 if with_controls and has_control else 1
        return out

    def promoted(self, definition: Graph, depth: int = 0) -> list[tuple[int, bool]]:
        """(input index, has a control-after-generate widget) for each input that reaches a widget."""
        if definition.id in self._promoted:
            return self._promoted[definition.id]
        out = []
        for index, inp in enumerate(definition.inputs):
            source = self._widget_source(definition, inp, depth)
            if source is not None:
                out.append((index, source))
        self._promoted[definition.id] = out
        return out

    def _widget_source(self, definition: Graph, inp: dict, depth: int) -> bool | None:
        """None if the input feeds no widget; else whether that widget is seed-like (declared so)."""
        for link_id in inp.get("linkIds") or []:
            found = definition.links.get(str(link_id))
            target = definition.nodes.get(found.target_id) if found else None
            slots = (target or {}).get("inputs") or []
            if target is None or found.target_slot >= len(slots):
                continue
            slot = slots[found.target_slot]
            if slot.get("widget"):
                spec = self.registry.get(target["type"])
                declared = spec.input_by_name.get(slot["widget"].get("name")) if spec is not None else None
                return bool(declared is not None and declared.control_after_generate)
            nested = self.definitions.get(target["type"])
            if nested is not None and depth < 32:
                names = [i.get("name") for i in nested.inputs]
                for index, control in self.promoted(nested, depth + 1):
                    if names[index] == slot.get("name"):
                        return control
        return None


def widget_inputs(spec, values) -> dict[str, Any]:
    """Literal inputs from a node's widgets_values (a list in widget order, or a dict by name)."""
    return _read_widgets(spec, values)[0]


def widget_controls(spec, values) -> dict[str, str]:
    """The control_after_generate values ("randomize" ...) written after seed-like widgets, by input
    name, for the editor (which applies them after each queue as ComfyUI's frontend does)."""
    return _read_widgets(spec, values)[1]


def _read_widgets(spec, values) -> tuple[dict[str, Any], dict[str, str]]:
    widgets = [i for i in spec.inputs if i.is_widget]
    if isinstance(values, dict):
        return {i.name: coerce_literal(i, values[i.name]) for i in widgets if i.name in values}, {}
    if not isinstance(values, list):
        return {}, {}
    out: dict[str, Any] = {}
    controls: dict[str, str] = {}
    k = 0
    for n, inp in enumerate(widgets):
        if k >= len(values):
            break
        out[inp.name] = coerce_literal(inp, values[k])
        k += 1
        if inp.control_after_generate and k < len(values) and _is_control_value(values[k], widgets[n + 1:]):
            if values[k] in CONTROL_VALUES:
                controls[inp.name] = values[k]
            k += 1
    return out, controls


def _is_control_value(value: Any, following: list) -> bool:
    """The control widget's value after a seed: "randomize" ..., or in 2023 files a true/false
    "random seed after every generation" toggle (when the next widget is not itself a boolean)."""
    if isinstance(value, str):
        return value in CONTROL_VALUES
    return isinstance(value, bool) and not (following and following[0].type.name == "BOOLEAN")


def coerce_literal(inp, value: Any) -> Any:
    """ComfyUI's backend casts INT and FLOAT widget values with int() / float(), and unwraps the
    {"__value__": [...]} box its frontend puts around list values; do the same, leaving anything
    that does not convert for validation to report."""
    if isinstance(value, dict) and set(value) == {"__value__"}:
        value = value["__value__"]
    kind = inp.type.name
    if isinstance(value, bool) or inp.force_input:
        return value
    try:
        if kind == "INT" and isinstance(value, (float, str)):
            return int(value)
        if kind == "FLOAT" and isinstance(value, str):
            return float(value)
    except (ValueError, OverflowError):
        return value
    return value


def note_doc(node: dict) -> dict:
    """A Note / MarkdownNote as the native document keeps it ("ui.notes", the editor's NoteDoc)."""
    values = node.get("widgets_values")
    text = values[0] if isinstance(values, list) and values else (node.get("properties") or {}).get("text", "")
    doc = {"id": str(node["id"]), "type": node["type"], "pos": list(node["pos"][:2]) if _is_pos(node.get("pos")) else [0, 0],
           "text": str(text)}
    if _is_pos(node.get("size")):
        doc["size"] = list(node["size"][:2])
    for key in ("title", "color", "bgcolor"):
        if isinstance(node.get(key), str):
            doc[key] = node[key]
    return doc


def _is_pos(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) >= 2 and all(isinstance(v, (int, float)) for v in value[:2])


def describe(workflow_meta: dict | None, node_id: str) -> str:
    """How a user finds a node: 'subgraph 'Upscale' › node 12' for expanded nodes, else 'node 12'."""
    origins = (workflow_meta or {}).get("origins") or {}
    return origins.get(str(node_id), f"node {node_id}")

