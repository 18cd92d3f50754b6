"""Node expansion: a node may answer with a sub-graph that replaces it at run time.

    @node
    class Twice:
        inputs = [Input("image", IMAGE)]
        outputs = [Output("image", IMAGE)]

        def run(self, ctx, image):
            first = f"{ctx.node_id}.blur1"          # ids must be new in the run: prefix them with your own
            second = f"{ctx.node_id}.blur2"
            return Expansion(
                nodes={first: {"type": "ImageBlur", "inputs": {"image": image, "blur_radius": 2}},
                       second: {"type": "ImageBlur", "inputs": {"image": link(first, 0), "blur_radius": 2}}},
                outputs=(link(second, 0),))

The executor adds the nodes to the run (each validated as a workflow node is, except that an input
may hold any computed value, such as the tensor above), runs what the outputs link to and every
output node among them, then gives the expanding node those values as its own outputs and caches
them under its own cache key. Expanded nodes have their own cache keys, lazy inputs, progress and
errors; an error names the expanded node, the node that expanded into it (its parent) and the
workflow node it stands for. Links may also point at any node already in the run. ComfyUI's
`{"expand": graph, "result": ...}` (GraphBuilder) is adapted onto this (nodegraph/comfy_compat).

ExecutionBlocker: a value that stops whatever receives it; the receiving node does not run and its
outputs are blockers too. With a message, the node that received it reports an error event
(ComfyUI's "Execution Blocked"); with None it is silent.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .workflow import is_link


@dataclass
class Expansion:
    """A node's answer that is a sub-graph: `nodes` as in a native workflow (id -> {"type", "inputs"},
    optional "display": the node id the editor shows it as), `outputs` one per declared output: a link
    {"node", "output"} into the run's graph or a value."""
    nodes: dict[str, dict]
    outputs: tuple = ()


class ExecutionBlocker:
    """Returned as a node output: every node that receives it is blocked (see the module doc)."""

    def __init__(self, message: str | None) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"ExecutionBlocker({self.message!r})"


class ExpansionError(Exception):
    """An expansion that cannot be added to the run; the message names the expanded node."""


class RunGraph:
    """The graph of one run as it grows: the workflow's nodes plus the nodes expansions added,
    with each added node's parent (the node that expanded) and display node (the workflow node the
    editor shows it as). Nodes read it through `ctx.graph`."""

    def __init__(self, workflow) -> None:
        self.workflow = workflow
        self.added: dict[str, dict] = {}  # id -> {"type", "inputs"} with links {"node", "output": index}
        self.parents: dict[str, str] = {}
        self.displays: dict[str, str] = {}

    def entry(self, node_id: str) -> dict | None:
        if node_id in self.added:
            return self.added[node_id]
        entry = self.workflow.nodes.get(node_id)
        return None if entry is None else {"type": entry.type, "inputs": entry.inputs}

    def parent(self, node_id: str) -> str | None:
        return self.parents.get(node_id)

    def display(self, node_id: str) -> str:
        """The workflow node that stands for this node (itself for a workflow node)."""
        seen = set()
        while node_id in self.displays and node_id not in seen:
            seen.add(node_id)
            node_id = self.displays[node_id]
        return node_id

    def real(self, node_id: str) -> str:
        """The workflow node whose expansion (maybe nested) made this node (itself for a workflow node)."""
        while node_id in self.parents:
            node_id = self.parents[node_id]
        return node_id


def is_json_value(value: Any) -> bool:
    """Whether a literal came from a document (so its repr can key a cache) or was computed."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json_value(v) for k, v in value.items())
    return False


def topological(nodes: dict[str, dict]) -> list[str]:
    """The order to plan an expansion's nodes in (links among them first); raises on a cycle."""
    indegree = dict.fromkeys(nodes, 0)
    children: dict[str, list[str]] = {}
    for node_id, entry in nodes.items():
        for value in (entry.get("inputs") or {}).values():
            if is_link(value) and value["node"] in nodes:
                indegree[node_id] += 1
                children.setdefault(value["node"], []).append(node_id)
    ready = [n for n, d in indegree.items() if d == 0]
    order = []
    while ready:
        node_id = ready.pop(0)
        order.append(node_id)
        for child in children.get(node_id, ()):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if len(order) != len(nodes):
        raise ExpansionError("its links form a cycle through nodes " + ", ".join(sorted(set(nodes) - set(order))))
    return order
