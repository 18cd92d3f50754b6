"""Fixtures for the GAN and evaluation packs: an environment whose registry has both packs
(added here until the project's entry points list them; adding twice is harmless)."""
from __future__ import annotations

import pytest

import nodes.eval
import nodes.gan
from nodegraph.environment import Environment
from nodegraph.folders import Folders
from nodegraph.registry import Registry


@pytest.fixture(scope="session")
def gan_registry(builtin_registry):
    registry = Registry(specs=dict(builtin_registry.specs),
                        model_folders={k: list(v) for k, v in builtin_registry.model_folders.items()})
    registry.add_module(nodes.gan, "tests")
    registry.add_module(nodes.eval, "tests")
    assert not registry.problems, registry.problems
    return registry


@pytest.fixture
def gan_env(tmp_path, gan_registry):
    for name in ("models", "output", "input", "temp"):
        (tmp_path / name).mkdir()
    (tmp_path / "models" / "gan").mkdir()
    return Environment(registry=gan_registry, folders=Folders(tmp_path))
