"""The custom-node example in the README is real: load it as a plugin and run it."""
import re
from pathlib import Path

import torch

from nodegraph.environment import Environment
from nodegraph.executor import Executor
from nodegraph.folders import Folders
from nodegraph.registry import default_registry

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_custom_node_runs(tmp_path):
    code = re.search(r"```python\n(# custom_nodes/posterize.py.*?)```", README.read_text(), re.S).group(1)
    plugins = tmp_path / "custom_nodes"
    plugins.mkdir()
    (plugins / "posterize.py").write_text(code)
    registry = default_registry(plugins)
    assert "Posterize" in registry, registry.problems
    env = Environment(registry=registry, folders=Folders(tmp_path))
    doc = {"version": 1, "nodes": {
        "1": {"type": "EmptyImage", "inputs": {"width": 8, "height": 4, "color": 0x336699}},
        "2": {"type": "Posterize", "inputs": {"image": {"node": "1", "output": "IMAGE"}, "levels": 2}},
        "3": {"type": "PreviewImage", "inputs": {"images": {"node": "2", "output": 0}}}}}
    events = []
    result = Executor(env).run(doc, on_event=lambda name, data: events.append(name))
    assert result.status == "success"
    out = result.value("2")
    assert torch.equal(out[0, 0, 0], torch.tensor([0.0, 0.0, 1.0]))  # 0x33, 0x66 -> 0; 0x99 -> 1
    assert events.count("progress") == 4
