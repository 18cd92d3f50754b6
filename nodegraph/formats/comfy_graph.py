"""Reading a ComfyUI UI (litegraph) document as nested graphs, and resolving where each input's data
comes from, as ComfyUI's frontend does when it turns a saved workflow into an API prompt.

Facts from ComfyUI's frontend (litegraph's ExecutableNodeDTO, SubgraphNode, graphToPrompt):
- a document is a root graph plus `definitions.subgraphs`; a node whose type is a definition's id
  is an instance of that subgraph. Inside a definition the virtual node -10 holds the subgraph's
  inputs and -20 its outputs; links from -10 / to -20 carry the slot index of that input / output;
- an expanded node's execution id is the chain of instance ids and its own id joined by ':';
- links are arrays [id, origin_id, origin_slot, target_id, target_slot, type] (version 0.4) or
  objects {id, origin_id, origin_slot, target_id, target_slot, type} (version 1, subgraphs);
- a bypassed node (mode 4) hands its consumer the input it finds by `bypass_input`; when none
  matches, or that input is unconnected, the consumer receives nothing. A muted node (mode 2) is
  not sent, and links out of it are dropped the same way;
- Reroute passes its input through; PrimitiveNode sets the widget it feeds; notes are dropped;
- an input of a subgraph that nothing outside connects takes the instance's promoted widget value
  (its `widgets_values`, one value per promoted input in definition order) or, when the instance
  stores none, the inner widget keeps its own value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import WorkflowFormatError

MUTED, BYPASSED = 2, 4
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = "-10", "-20"
REROUTE, PRIMITIVE = "Reroute", "PrimitiveNode"
FRONTEND_ONLY = {REROUTE, PRIMITIVE, "Note", "MarkdownNote"}


@dataclass(frozen=True)
class Link:
    id: str
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int
    type: str | None


def read_link(entry: Any) -> Link | None:
    """A link in either revision's shape; None for the null entries some files carry."""
    if isinstance(entry, dict):
        keys = ("id", "origin_id", "origin_slot", "target_id", "target_slot")
        if any(entry.get(k) is None for k in keys):
            return None
        return Link(str(entry["id"]), str(entry["origin_id"]), int(entry["origin_slot"]), str(entry["target_id"]),
                    int(entry["target_slot"]), entry.get("type"))
    if isinstance(entry, (list, tuple)) and len(entry) >= 5 and None not in entry[:5]:
        return Link(str(entry[0]), str(entry[1]), int(entry[2]), str(entry[3]), int(entry[4]),
                    entry[5] if len(entry) > 5 else None)
    return None


@dataclass
class Graph:
    """One level: the root workflow, or one subgraph definition."""

    id: str | None
    name: str | None
    nodes: dict[str, dict]
    links: dict[str, Link]
    inputs: list[dict] = field(default_factory=list)  # a definition's inputs (name, type, linkIds)
    outputs: list[dict] = field(default_factory=list)

    @classmethod
    def read(cls, doc: dict, where: str) -> "Graph":
        nodes_in = doc.get("nodes")
        if not isinstance(nodes_in, list):
            raise WorkflowFormatError(f"{where}: 'nodes' must be a list")
        nodes = {}
        for node in nodes_in:
            if not isinstance(node, dict) or node.get("id") is None or not isinstance(node.get("type"), str):
                raise WorkflowFormatError(f"{where}: every node needs an 'id' and a 'type', got {str(node)[:80]}")
            nodes[str(node["id"])] = node
        links = {}
        for entry in doc.get("links") or []:
            link = read_link(entry)
            if link is not None:
                links[link.id] = link
        return cls(doc.get("id"), doc.get("name"), nodes, links,
                   list(doc.get("inputs") or []), list(doc.get("outputs") or []))

    def output_link(self, slot: int) -> Link | None:
        """The link that feeds this definition's output `slot` (the first, as the frontend takes)."""
        for link_id in (self.outputs[slot].get("linkIds") or []) if slot < len(self.outputs) else []:
            link = self.links.get(str(link_id))
            if link is not None:
                return link
        return next((l for l in self.links.values()
                     if l.target_id == SUBGRAPH_OUTPUT and l.target_slot == slot), None)


@dataclass(frozen=True)
class Scope:
    """A graph as expanded at one place: the root, or inside a chain of subgraph instances."""

    graph: Graph
    path: tuple[str, ...] = ()  # instance node ids from the root
    trail: tuple[str, ...] = ()  # the subgraphs' names, for messages
    instance: dict | None = None  # the subgraph node this scope expands
    parent: "Scope | None" = None

    def flat_id(self, node_id: str) -> str:
        return ":".join(self.path + (str(node_id),))

    def where(self, node_id: str) -> str:
        """'subgraph 'Upscale' › node 12' (or 'node 12' at the root), naming the node as the user sees it."""
        return " › ".join([f"subgraph {name!r}" for name in self.trail] + [f"node {node_id}"])

    def enter(self, instance: dict, definition: Graph) -> "Scope":
        if definition.id in {s.graph.id for s in self.chain()}:
            raise WorkflowFormatError(f"{self.where(instance['id'])}: subgraph {definition.name!r} contains itself")
        return Scope(definition, self.path + (str(instance["id"]),),
                     self.trail + (definition.name or str(definition.id),), instance, self)

    def chain(self):
        scope: Scope | None = self
        while scope is not None:
            yield scope
            scope = scope.parent


def slot_types_connect(a: Any, b: Any) -> bool:
    """litegraph's isValidConnection: empty or '*' matches anything; comma lists match on any member."""
    if not a or not b or a == b or a == "*" or b == "*":
        return True
    left = {t.strip().lower() for t in str(a).split(",")}
    right = {t.strip().lower() for t in str(b).split(",")}
    return bool(left & right)


def bypass_input(node: dict, slot: int, want: Any) -> int:
    """Which input a bypassed node hands to the consumer of its output `slot` (-1: none).

    As the frontend: for an untyped consumer the same index (else the first input); otherwise the
    input at the same index when its type suits both the output and the consumer, else the first
    input of exactly the consumer's type, else the first that suits both."""
    inputs = node.get("inputs") or []
    outputs = node.get("outputs") or []
    out_type = outputs[slot].get("type") if slot < len(outputs) else None
    if want in (None, "", "*"):
        return slot if slot < len(inputs) else (0 if inputs else -1)
    if slot < len(inputs) and slot_types_connect(inputs[slot].get("type"), out_type) \
            and slot_types_connect(inputs[slot].get("type"), want):
        return slot
    for k, inp in enumerate(inputs):
        if inp.get("type") == want:
            return k
    for k, inp in enumerate(inputs):
        if slot_types_connect(inp.get("type"), out_type) and slot_types_connect(inp.get("type"), want):
            return k
    return -1
