"""Muted and bypassed nodes of a native workflow, resolved before validation (as ComfyUI's frontend
resolves modes 2 and 4 before it sends a prompt):
- a muted node does not run; an input linked from it is dropped, so a required one is reported
  as coming from a muted node (ComfyUI's backend sees the input missing);
- a bypassed node does not run; each consumer of its output gets the input that
  `formats.comfy_graph.bypass_input` picks (the same rule as for ComfyUI files), followed through
  chains of bypassed nodes; when none fits, or that input holds a literal, the consumer gets nothing.
"""
from __future__ import annotations

from .formats.comfy_graph import bypass_input
from .workflow import Workflow, is_link

MUTED, BYPASSED = "muted", "bypassed"


def _slots(entry, spec) -> dict:
    """A node in the litegraph shape bypass_input reads: typed inputs and outputs by index."""
    if spec is None:  # unknown type: only the names its links use; bypass falls back to the same index
        return {"inputs": [{"type": "*"} for _ in entry.inputs], "outputs": []}
    return {"inputs": [{"type": i.type.name} for i in spec.inputs],
            "outputs": [{"type": o.type.name} for o in spec.outputs]}


def apply_modes(workflow: Workflow, registry) -> tuple[Workflow, dict[tuple[str, str], str]]:
    """The workflow without its muted and bypassed nodes, consumers rewired; and for each dropped
    input (node id, input name) the muted (or dead-end bypassed) node it came from."""
    nodes = workflow.nodes
    skipped = {nid for nid, e in nodes.items() if e.mode in (MUTED, BYPASSED)}
    if not skipped:
        return workflow, {}
    specs = {nid: registry.get(nodes[nid].type) for nid in skipped}

    def source(value: dict, want: str | None, seen: set) -> tuple[dict | None, str | None]:
        """Where a link really comes from: (link, None), or (None, the skipped node that ends it)."""
        src = str(value["node"])
        entry = nodes.get(src)
        if entry is None or src not in skipped:
            return value, None
        if entry.mode == MUTED or src in seen:
            return None, src
        seen.add(src)
        spec = specs[src]
        out = value["output"]
        slot = out if isinstance(out, int) else (spec.output_index.get(out, -1) if spec is not None else -1)
        index = bypass_input(_slots(entry, spec), slot, want) if slot >= 0 else -1
        names = [i.name for i in spec.inputs] if spec is not None else list(entry.inputs)
        fed = entry.inputs.get(names[index]) if 0 <= index < len(names) else None
        if not is_link(fed):
            return None, src
        return source(fed, want, seen)

    dropped: dict[tuple[str, str], str] = {}
    kept = {}
    for nid, entry in nodes.items():
        if nid in skipped:
            continue
        spec = registry.get(entry.type)
        inputs = {}
        for name, value in entry.inputs.items():
            if not is_link(value):
                inputs[name] = value
                continue
            inp = spec.input_by_name.get(name) if spec is not None else None
            found, blocker = source(value, inp.type.name if inp is not None else None, set())
            if found is not None:
                inputs[name] = found
            else:
                dropped[(nid, name)] = blocker
        kept[nid] = entry.model_copy(update={"inputs": inputs}) if inputs != entry.inputs else entry
    outputs = [o for o in workflow.outputs if o not in skipped] if workflow.outputs is not None else None
    return workflow.model_copy(update={"nodes": kept, "outputs": outputs}), dropped
