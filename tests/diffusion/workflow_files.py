"""Run the example workflows in workflows/ and read every node's value (for the workflow effect tests)."""
from __future__ import annotations

import json
from pathlib import Path

from nodegraph.environment import Environment
from nodegraph.executor import Executor, RunResult
from nodegraph.folders import Folders

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"


def load_workflow(name: str, **overrides) -> dict:
    """A workflow file as JSON; overrides are NODE__INPUT=value (e.g. `**{"6__text": "a red circle"}`)."""
    doc = json.loads((WORKFLOWS / name).read_text())
    for key, value in overrides.items():
        node_id, input_name = key.split("__")
        doc["nodes"][node_id]["inputs"][input_name] = value
    return doc


class WorkflowRunner:
    """One environment for several runs (the model loads once); the output cache is cleared before each
    run so that every node executes and every node's value is in the result."""

    def __init__(self, base: Path, registry) -> None:
        self.env = Environment(registry=registry, folders=Folders(base))
        self.executor = Executor(self.env)

    def __call__(self, name: str, **overrides) -> RunResult:
        self.env.cache.clear()
        result = self.executor.run(load_workflow(name, **overrides))
        assert result.status == "success", result.errors
        return result
