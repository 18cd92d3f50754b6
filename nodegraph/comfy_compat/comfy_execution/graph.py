"""comfy_execution.graph: DynamicPrompt (the prompt a node sees through the hidden DYNPROMPT input,
with the nodes expansions added so far) and the errors packs catch."""
from __future__ import annotations

from ...expansion import ExecutionBlocker

__all__ = ["DynamicPrompt", "ExecutionBlocker", "DependencyCycleError", "NodeInputError", "NodeNotFoundError"]


class DependencyCycleError(Exception):
    pass


class NodeInputError(Exception):
    pass


class NodeNotFoundError(Exception):
    pass


class DynamicPrompt:
    """The API prompt of the job plus the ephemeral nodes of the run's graph (ctx.graph), each
    {"class_type", "inputs"} with links as [node id, output index], as ComfyUI's DynamicPrompt."""

    def __init__(self, original_prompt: dict, run_graph=None) -> None:
        self.original_prompt = original_prompt
        self.ephemeral_prompt: dict[str, dict] = {}
        self.ephemeral_parents: dict[str, str] = {}
        self.ephemeral_display: dict[str, str] = {}
        if run_graph is not None:
            for node_id, entry in run_graph.added.items():
                self.ephemeral_prompt[node_id] = _as_comfy(entry)
            self.ephemeral_parents.update(run_graph.parents)
            self.ephemeral_display.update(run_graph.displays)

    def get_node(self, node_id):
        if node_id in self.ephemeral_prompt:
            return self.ephemeral_prompt[node_id]
        if node_id in self.original_prompt:
            return self.original_prompt[node_id]
        raise NodeNotFoundError(f"Node {node_id} not found")

    def has_node(self, node_id) -> bool:
        return node_id in self.original_prompt or node_id in self.ephemeral_prompt

    def add_ephemeral_node(self, node_id, node_info, parent_id, display_id) -> None:
        self.ephemeral_prompt[node_id] = node_info
        self.ephemeral_parents[node_id] = parent_id
        self.ephemeral_display[node_id] = display_id

    def get_real_node_id(self, node_id):
        while node_id in self.ephemeral_parents:
            node_id = self.ephemeral_parents[node_id]
        return node_id

    def get_parent_node_id(self, node_id):
        return self.ephemeral_parents.get(node_id)

    def get_display_node_id(self, node_id):
        while node_id in self.ephemeral_display:
            node_id = self.ephemeral_display[node_id]
        return node_id

    def all_node_ids(self) -> set:
        return set(self.original_prompt) | set(self.ephemeral_prompt)

    def get_original_prompt(self) -> dict:
        return self.original_prompt


def _as_comfy(entry: dict) -> dict:
    """A run-graph entry (native links {"node", "output": index}) in ComfyUI's prompt form."""
    inputs = {}
    for name, value in (entry.get("inputs") or {}).items():
        if type(value) is dict and set(value) == {"node", "output"}:
            value = [value["node"], value["output"]]
        inputs[name] = value
    return {"class_type": entry["type"], "inputs": inputs}
