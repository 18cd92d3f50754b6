"""Shared fixtures: an Environment with temporary folders and the built-in packs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nodegraph.environment import Environment
from nodegraph.folders import Folders
from nodegraph.registry import default_registry

torch.set_num_threads(1)  # tiny models: more threads only add overhead on a shared 2-core machine

# Folders whose every test is long (browsers, every example rendered): marked slow here, once, so that
# `pytest -m "not slow"` is the inner loop. Long tests elsewhere carry @pytest.mark.slow themselves.
SLOW_FOLDERS = {"ui", "comfy_frontend", "golden"}
TESTS = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).relative_to(TESTS).parts
        if parts[0] in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def builtin_registry():
    registry = default_registry(plugins_dir=None)
    assert not registry.problems, registry.problems
    return registry


@pytest.fixture
def env(tmp_path, builtin_registry):
    """A fresh environment (own folders and cache) sharing the built-in registry."""
    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir()
    return Environment(registry=builtin_registry, folders=Folders(tmp_path))
