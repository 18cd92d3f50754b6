"""Node registry and plugin discovery.

Built-in packs and third-party packs load the same way: Python entry points in the group
"nodegraph.nodes" (each names a module), and a plugins folder (default ./custom_nodes) whose
.py files and packages are imported. Every class decorated with @node that a plugin module
defines (or lists in a module-level NODES) is registered. A plugin that fails to import, or
declares a broken node, is reported with its traceback and skipped; a second node with a name
already taken is reported and skipped, never silently overwrites the first.

ComfyUI custom node packs in the plugins folder (a module or package exporting NODE_CLASS_MAPPINGS,
or the V3 comfy_entrypoint) are handed to nodegraph.comfy_compat, imported only then; they load
beside our own plugins and their failures are reported the same way. Every plugin of the folder
gets a PackLoad record (kind, import time, nodes added, failure) for the "import times" listing.

A plugin module may also declare MODEL_FOLDERS = {"checkpoints": [path, ...]} to add search
paths for model files (the built-in packs ship their default weights that way). Its own socket types,
`SocketType("NAME", "#colour")` constants, are found among its module-level names and its nodes'
sockets: the registry keeps the first colour declared for each name, and node schemas carry it to
the editor.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from .node import NodeSpec
from .types import SocketType, common_types

ENTRY_POINT_GROUP = "nodegraph.nodes"


@dataclass
class PluginProblem:
    source: str  # entry point or file the plugin came from
    message: str
    traceback: str = ""


@dataclass
class PackLoad:
    """One plugin of the plugins folder: what it is, how long its import took, what it added."""
    name: str
    source: str
    kind: str  # "nodegraph" | "comfyui"
    seconds: float
    nodes: int
    failed: bool = False


@dataclass
class Registry:
    specs: dict[str, NodeSpec] = field(default_factory=dict)
    problems: list[PluginProblem] = field(default_factory=list)
    model_folders: dict[str, list[Path]] = field(default_factory=dict)
    socket_types: dict[str, SocketType] = field(default_factory=dict)  # declared by packs, by name
    loaded_modules: list[str] = field(default_factory=list)
    loads: list[PackLoad] = field(default_factory=list)
    web_directories: dict[str, Path] = field(default_factory=dict)  # pack -> its web folder (/extensions/<pack>/)
    # called with each Environment made from this registry, and with (app, server state) by each server
    environment_hooks: list[Callable[[Any], None]] = field(default_factory=list)
    server_hooks: list[Callable[[Any, Any], None]] = field(default_factory=list)

    def __contains__(self, name: str) -> bool:
        return name in self.specs

    def get(self, name: str) -> NodeSpec | None:
        return self.specs.get(name)

    # --- adding nodes -------------------------------------------------------------------------
    def add_class(self, cls: type, source: str) -> bool:
        spec = getattr(cls, "__nodegraph_spec__", None)
        if spec is None:
            error = getattr(cls, "__nodegraph_error__", None) or f"{cls!r} is not declared with @node"
            self.problems.append(PluginProblem(source, f"node {cls.__name__} skipped: {error}"))
            return False
        taken = self.specs.get(spec.name)
        if taken is not None and taken.cls is not cls:
            self.problems.append(PluginProblem(
                source, f"node {spec.name} skipped: the name is already registered by {taken.module}"))
            return False
        self.specs[spec.name] = spec
        return True

    def add_module(self, module: ModuleType, source: str) -> int:
        """Register every node class of a plugin module (and its submodules' exported NODES)."""
        classes = getattr(module, "NODES", None)
        if classes is None:
            classes = [obj for obj in vars(module).values()
                       if isinstance(obj, type) and hasattr(obj, "__nodegraph_spec__")
                       and obj.__module__.startswith(module.__name__)]
        added = sum(self.add_class(c, source) for c in classes)
        for kind, paths in (getattr(module, "MODEL_FOLDERS", None) or {}).items():
            self.model_folders.setdefault(kind, []).extend(Path(p) for p in paths)
        self._add_socket_types(module, classes)
        self.loaded_modules.append(module.__name__)
        return added

    def _add_socket_types(self, module: ModuleType, classes) -> None:
        """The types a pack declares with a colour: module-level constants of the plugin module, and the
        sockets of its nodes (a package may declare them in a submodule). The first colour per name wins."""
        declared = [v for v in vars(module).values() if isinstance(v, SocketType)]
        for cls in classes:
            spec = getattr(cls, "__nodegraph_spec__", None)
            if spec is not None:
                declared += [socket.type for socket in (*spec.inputs, *spec.outputs)]
        common = common_types()
        for t in declared:
            if t.color and t.name not in common:
                self.socket_types.setdefault(t.name, t)

    def import_module(self, module_name: str, source: str) -> None:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            self._report(source, f"plugin {module_name} failed to import: {exc}")
            return
        self.add_module(module, source)

    def load_entry_points(self, only: set[str] | None = None) -> None:
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if only is not None and ep.name not in only:
                continue
            self.import_module(ep.value, f"entry point {ep.name}")

    def load_folder(self, folder: str | Path) -> None:
        """Import each plugin (a .py file or a package directory) in a custom nodes folder."""
        folder = Path(folder)
        if not folder.is_dir():
            return
        for path in sorted(folder.iterdir()):
            if path.name.startswith((".", "_")):
                continue
            if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists()):
                self.load_plugin(path)

    def load_plugin(self, path: str | Path) -> None:
        """Import one plugin of a custom nodes folder: a .py file, or a package directory. A ComfyUI pack
        (it names NODE_CLASS_MAPPINGS or comfy_entrypoint) goes through nodegraph.comfy_compat."""
        path = Path(path)
        init = path / "__init__.py" if path.is_dir() else path
        module_name = f"nodegraph_plugins.{path.stem}"
        if "nodegraph_plugins" not in sys.modules:  # parent package, so relative imports work
            sys.modules["nodegraph_plugins"] = ModuleType("nodegraph_plugins")
            sys.modules["nodegraph_plugins"].__path__ = []
        if _mentions_comfy(init):  # ComfyUI's modules must be in place before the pack imports
            from . import comfy_compat

            comfy_compat.load_pack(self, path, init, module_name)
            return
        started = time.perf_counter()
        try:
            spec = importlib.util.spec_from_file_location(
                module_name, init, submodule_search_locations=[str(path)] if path.is_dir() else None)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            self.report_load(path.stem, str(path), "nodegraph", time.perf_counter() - started, 0,
                             f"plugin {path.name} failed to import: {exc}", traceback.format_exc())
            return
        if getattr(module, "NODE_CLASS_MAPPINGS", None) is not None:  # a ComfyUI pack after all
            from . import comfy_compat

            comfy_compat.register(self, module, path.stem, str(path), started)
            return
        added = self.add_module(module, str(path))
        self.report_load(path.stem, str(path), "nodegraph", time.perf_counter() - started, added)

    # --- reports ------------------------------------------------------------------------------
    def report(self, source: str, message: str, with_traceback: bool = True) -> None:
        """A problem with a plugin (called inside an except block when with_traceback)."""
        self.problems.append(PluginProblem(source, message, traceback.format_exc() if with_traceback else ""))

    def report_load(self, name: str, source: str, kind: str, seconds: float, nodes: int,
                    failure: str | None = None, trace: str = "") -> None:
        """Record a plugin's import (and its failure, if it failed)."""
        if failure is not None:
            self.problems.append(PluginProblem(source, failure, trace))
        self.loads.append(PackLoad(name, source, kind, seconds, nodes, failure is not None))

    def import_times(self) -> list[str]:
        """ComfyUI's "Import times for custom nodes" listing, slowest first."""
        lines = []
        for load in sorted(self.loads, key=lambda x: -x.seconds):
            flag = " (IMPORT FAILED)" if load.failed else ""
            kind = "ComfyUI pack" if load.kind == "comfyui" else "plugin"
            lines.append(f"{load.seconds:6.1f} seconds{flag}: {load.source} ({kind}, {load.nodes} node(s))")
        return lines

    def _report(self, source: str, message: str) -> None:
        self.problems.append(PluginProblem(source, message, traceback.format_exc()))

    def type_color(self, name: str) -> str | None:
        """The editor colour of a socket type: the engine's, else the first a pack declared."""
        known = common_types().get(name) or self.socket_types.get(name)
        return known.color if known is not None else None

    def schemas(self, env=None) -> dict[str, dict]:
        return {name: spec.schema(env) for name, spec in sorted(self.specs.items())}


def _mentions_comfy(init: Path) -> bool:
    """Does a plugin's top module name ComfyUI's entry points? (read, not imported)"""
    try:
        text = init.read_bytes()
    except OSError:
        return False
    return b"NODE_CLASS_MAPPINGS" in text or b"comfy_entrypoint" in text or b"WEB_DIRECTORY" in text


def default_registry(plugins_dir: str | Path | None = "custom_nodes", builtins: bool = True) -> Registry:
    registry = Registry()
    if builtins:
        registry.load_entry_points()
    if plugins_dir is not None:
        registry.load_folder(plugins_dir)
    return registry
