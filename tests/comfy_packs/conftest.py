"""A registry with the built-in packs and the ComfyUI test packs of packs/, and environments over it."""
from __future__ import annotations

from pathlib import Path

import pytest

from nodegraph.environment import Environment
from nodegraph.folders import Folders
from nodegraph.registry import default_registry

PACKS = Path(__file__).parent / "packs"


@pytest.fixture(scope="session")
def comfy_registry():
    return default_registry(PACKS)


@pytest.fixture
def comfy_env(tmp_path, comfy_registry):
    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir()
    return Environment(registry=comfy_registry, folders=Folders(tmp_path))
