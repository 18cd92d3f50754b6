"""comfy_execution.graph_utils: building the graphs a node expands into (ComfyUI 0.8's names and id scheme).

A node returns {"result": (...), "expand": graph.finalize()}; the result may hold links
[node_id, output_index] into the graph. GraphBuilder ids are "<prefix><local id>" with the default
prefix "<expanding node id>.<call index>.<graph index>.", so that ids stay unique across nested and
repeated expansions; the V1 adapter sets the default prefix before each call, as ComfyUI does.
"""
from __future__ import annotations

import threading

from ...expansion import ExecutionBlocker

__all__ = ["is_link", "GraphBuilder", "Node", "add_graph_prefix", "ExecutionBlocker"]

_prefix = threading.local()  # per thread: runs on other threads keep their own counters


def is_link(obj) -> bool:
    """ComfyUI's link: a list [node id (str), output index (int or float)]."""
    return (isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], str)
            and isinstance(obj[1], (int, float)) and not isinstance(obj[1], bool))


class Node:
    """One node of a GraphBuilder graph."""

    def __init__(self, id: str, class_type: str, inputs: dict) -> None:
        self.id = id
        self.class_type = class_type
        self.inputs = inputs
        self.override_display_id = None

    def out(self, index: int) -> list:
        return [self.id, index]

    def set_input(self, key: str, value) -> None:
        """Set an input; None removes it (an unconnected optional input)."""
        if value is None:
            self.inputs.pop(key, None)
        else:
            self.inputs[key] = value

    def get_input(self, key: str):
        return self.inputs.get(key)

    def set_override_display_id(self, override_display_id) -> None:
        self.override_display_id = override_display_id

    def serialize(self) -> dict:
        entry = {"class_type": self.class_type, "inputs": self.inputs}
        if self.override_display_id is not None:
            entry["override_display_id"] = self.override_display_id
        return entry


class GraphBuilder:
    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = GraphBuilder.alloc_prefix() if prefix is None else prefix
        self.nodes: dict[str, Node] = {}
        self.id_gen = 1

    @classmethod
    def set_default_prefix(cls, prefix_root, call_index, graph_index=0) -> None:
        _prefix.root, _prefix.call_index, _prefix.graph_index = prefix_root, call_index, graph_index

    @classmethod
    def alloc_prefix(cls, root=None, call_index=None, graph_index=None) -> str:
        root = getattr(_prefix, "root", "") if root is None else root
        call_index = getattr(_prefix, "call_index", 0) if call_index is None else call_index
        if graph_index is None:
            graph_index = getattr(_prefix, "graph_index", 0)
        _prefix.graph_index = getattr(_prefix, "graph_index", 0) + 1  # the next builder gets the next index
        return f"{root}.{call_index}.{graph_index}."

    def node(self, class_type: str, id: str | None = None, **kwargs) -> Node:
        if id is None:
            id = str(self.id_gen)
            self.id_gen += 1
        full_id = self.prefix + id
        if full_id not in self.nodes:
            self.nodes[full_id] = Node(full_id, class_type, kwargs)
        return self.nodes[full_id]

    def lookup_node(self, id: str) -> Node | None:
        return self.nodes.get(self.prefix + id)

    def finalize(self) -> dict:
        return {node_id: node.serialize() for node_id, node in self.nodes.items()}

    def replace_node_output(self, node_id: str, index: int, new_value) -> None:
        """Point every input linked to that output at `new_value` instead (None: disconnect them)."""
        target = [self.prefix + node_id, index]
        for node in self.nodes.values():
            for key, value in list(node.inputs.items()):
                if is_link(value) and value[0] == target[0] and value[1] == index:
                    node.set_input(key, new_value)

    def remove_node(self, id: str) -> None:
        del self.nodes[self.prefix + id]


def add_graph_prefix(graph: dict, outputs, prefix: str) -> tuple[dict, tuple]:
    """The graph with `prefix` on every node id and every link among them (and on the outputs' links)."""
    def moved(value):
        return [prefix + value[0], value[1]] if is_link(value) else value

    new_graph = {prefix + node_id: {"class_type": entry["class_type"],
                                    "inputs": {k: moved(v) for k, v in (entry.get("inputs") or {}).items()}}
                 for node_id, entry in graph.items()}
    return new_graph, tuple(moved(o) for o in outputs)
