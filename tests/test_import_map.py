"""The import map (README, Layout): who may import whom.

    nodegraph (the engine)  <-  nodes/<pack> (plugins)  <-  training/, bench/, tests/, scripts/

- The engine imports no pack and no application (training, bench, tests, scripts).
- A pack imports the engine only through its public API, the names `nodegraph/__init__.py` exports
  (`from nodegraph import ModelHandle`, never `nodegraph.devices`), and no other pack, nor any
  application: it is a plugin like any third party's.
Imports anywhere in a file count, lazy ones inside functions too. Read with `ast`, nothing is imported.
"""
from __future__ import annotations

import ast
from pathlib import Path

import nodegraph

ROOT = Path(__file__).resolve().parents[1]
APPLICATIONS = ("training", "tests", "bench", "scripts")

# Crossings another change is removing; each must still exist (so the entry is dropped when it goes).
PENDING: set[tuple[str, str]] = set()  # known crossings being removed (none now)


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[str, list[str]]]:
    """(absolute module, names imported from it) for every import statement of a module's source."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                absolute = ".".join(base + ([node.module] if node.module else []))
                if not node.module:  # `from .. import x`: x may be a module of that package
                    found += [(f"{absolute}.{name}" if absolute else name, []) for name in names]
                    continue
                found.append((absolute, names))
            else:
                found.append((node.module or "", names))
    return found


def owner(module: str) -> str:
    """'engine', 'pack:<name>', 'nodes' (the packs' namespace), an application's name, or '' (outside)."""
    top = module.split(".")
    if top[0] == "nodegraph":
        return "engine"
    if top[0] == "nodes":
        return f"pack:{top[1]}" if len(top) > 1 else "nodes"
    return top[0] if top[0] in APPLICATIONS else ""


def pack_violations(source: str, module: str, is_package: bool) -> list[str]:
    """What a pack module imports that it may not."""
    mine = owner(module)
    problems = []
    for target, names in imported_modules(source, module, is_package):
        whose = owner(target)
        if whose == "engine":
            if target != "nodegraph":
                problems.append(target)  # an engine module beside the public API
            else:
                problems += [f"nodegraph.{name}" for name in names if name not in nodegraph.__all__]
        elif whose and whose != mine:
            problems.append(target)
    return problems


def source_files(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "node_modules" not in p.parts)


def test_packs_import_only_the_public_api_and_their_own_pack():
    crossings = set()
    for path in source_files("nodes"):
        module = module_of(path)
        if owner(module) == "nodes":
            continue  # nodes/__init__.py: the namespace itself
        for target in pack_violations(path.read_text(), module, path.name == "__init__.py"):
            crossings.add((path.relative_to(ROOT).as_posix(), target))
    assert crossings == PENDING, (
        f"new crossings: {sorted(crossings - PENDING)}; pending entries that are gone (drop them from "
        f"PENDING): {sorted(PENDING - crossings)}")


def test_the_engine_imports_no_pack_and_no_application():
    crossings = []
    for path in source_files("nodegraph"):
        module = module_of(path)
        for target, _ in imported_modules(path.read_text(), module, path.name == "__init__.py"):
            if owner(target) not in ("", "engine"):
                crossings.append(f"{path.relative_to(ROOT)} imports {target}")
    assert crossings == []


def test_the_public_api_lists_only_what_it_defines():
    assert all(hasattr(nodegraph, name) for name in nodegraph.__all__)
    assert len(set(nodegraph.__all__)) == len(nodegraph.__all__)


def test_the_checker_sees_every_kind_of_crossing():
    source = '''
from __future__ import annotations
import torch
from nodegraph import ModelHandle, node
from nodegraph import Executor
from nodegraph.devices import run_in_chunks
import nodegraph.images
from .loaders import detect_and_build
from ..diffusion import clip
from .. import upscale
from nodes.gan.architectures import Architecture
import training.train_gan


def lazy():
    from nodes.eval.extractors import random_extractor
    from tests.gan.public_layouts import unet_keys
'''
    found = pack_violations(source, "nodes.gan.nodes", is_package=False)
    assert found == ["nodegraph.Executor", "nodegraph.devices", "nodegraph.images", "nodes.diffusion",
                     "nodes.upscale", "training.train_gan", "nodes.eval.extractors", "tests.gan.public_layouts"]
    assert pack_violations("from . import nodes\nfrom .nodes import GAN\n", "nodes.gan", is_package=True) == []
