from __future__ import annotations

from nodegraph.environment import Environment
from nodegraph.folders import Folders
from nodegraph.registry import Registry

from tests.engine import testnodes


def make_env(tmp_path, builtin_registry) -> Environment:
    registry = Registry(specs=dict(builtin_registry.specs))
    registry.add_module(testnodes, "tests")
    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir(exist_ok=True)
    return Environment(registry=registry, folders=Folders(tmp_path))


def L(node: str, output=0) -> dict:
    return {"node": node, "output": output}


def wf(**nodes) -> dict:
    return {"version": 1, "nodes": {k.lstrip("n"): v for k, v in nodes.items()}}


class Recorder:
    def __init__(self):
        self.events: list[tuple[str, dict]] = []

    def __call__(self, name, data):
        self.events.append((name, dict(data)))

    def names(self):
        return [n for n, _ in self.events]

    def of(self, name):
        return [d for n, d in self.events if n == name]
