"""ComfyUI custom node packs in nodegraph: discovery, the V1 node contract, the modules packs import.

The engine never imports this package, except the registry when it finds a ComfyUI pack in the
plugins folder (a module or package that exports NODE_CLASS_MAPPINGS, or the V3 entry point
comfy_entrypoint). Then:

1. install.py puts ComfyUI's module names into sys.modules (folder_paths, comfy.utils, server ...);
2. the pack is imported (with torchvision / aiohttp stand-ins if those cannot load);
3. v1.py turns each class of NODE_CLASS_MAPPINGS into a NodeSpec; a class whose declaration cannot
   be read is reported on its own, the pack's other nodes still load;
4. its WEB_DIRECTORY is recorded for /extensions/<pack>/, its HTTP routes are mounted when a server
   starts (routes.py), and PromptServer.send_sync reaches that server's websocket clients.

V3 packs (comfy_entrypoint) import comfy_api.latest (comfy_api/: io, ui, ComfyExtension); V3_LOADER
(v3.py) turns their io.ComfyNode classes into NodeSpecs through the V1 adapter.
"""
from __future__ import annotations

import importlib.util
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Callable

from . import runtime
from .install import install, stand_ins
from .surface import explain_import_error
from .v3 import load_extension

# the V3 contract (comfy_api.latest): (registry, module, pack, source) -> nodes added
V3_LOADER: Callable | None = load_extension


def is_comfy_module(module: ModuleType) -> bool:
    """A pack ComfyUI would load: nodes, or only a web folder (a frontend extension, which ComfyUI serves
    at /extensions/ even without NODE_CLASS_MAPPINGS)."""
    return (getattr(module, "NODE_CLASS_MAPPINGS", None) is not None or callable(getattr(module, "comfy_entrypoint", None))
            or isinstance(getattr(module, "WEB_DIRECTORY", None), str))


def load_pack(registry, path: Path, init_file: Path, module_name: str) -> None:
    """Import one ComfyUI pack from the plugins folder and register its nodes; every failure is
    reported against the pack, never raised."""
    install()
    pack = path.stem if path.suffix == ".py" else path.name
    source = str(path)
    started = time.perf_counter()
    with runtime.loading(registry, pack), stand_ins():
        try:
            if getattr(sys.modules.get("folder_paths"), "place_at_base", None) is not None:
                sys.modules["folder_paths"].place_at_base()  # ComfyUI's folder, as packs derive it
            spec = importlib.util.spec_from_file_location(
                module_name, init_file, submodule_search_locations=[str(path)] if path.is_dir() else None)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        except BaseException as exc:  # SystemExit from a pack's import must not stop nodegraph either
            sys.modules.pop(module_name, None)
            message = explain_import_error(exc, pack) or f"{type(exc).__name__}: {exc}"
            registry.report_load(pack, source, "comfyui", time.perf_counter() - started, 0,
                                 f"ComfyUI pack {pack} failed to import: {message}", traceback.format_exc())
            return
        register(registry, module, pack, source, started)


def register(registry, module: ModuleType, pack: str, source: str, started: float) -> int:
    """Register an imported ComfyUI pack's nodes, web folder and timing."""
    if not is_comfy_module(module):  # it only mentioned ComfyUI's names: a nodegraph plugin
        added = registry.add_module(module, source)
        registry.report_load(pack, source, "nodegraph", time.perf_counter() - started, added)
        return added
    install()
    runtime.remember_registry(registry)
    added = 0
    with runtime.loading(registry, pack):
        mappings = getattr(module, "NODE_CLASS_MAPPINGS", None)
        if mappings is not None:
            added = _register_v1(registry, module, mappings, pack, source)
        elif callable(getattr(module, "comfy_entrypoint", None)):
            if V3_LOADER is None:
                registry.report(source, f"ComfyUI pack {pack} declares its nodes with the V3 API (comfy_entrypoint), "
                                        "which nodegraph does not load yet")
            else:
                added = V3_LOADER(registry, module, pack, source)
    web = getattr(module, "WEB_DIRECTORY", None)
    if web:
        folder = (Path(module.__file__).parent / web).resolve()
        if folder.is_dir():
            registry.web_directories[pack] = folder
            from . import nodes_module

            nodes_module.EXTENSION_WEB_DIRS[pack] = str(folder)
    registry.loaded_modules.append(module.__name__)
    registry.report_load(pack, source, "comfyui", time.perf_counter() - started, added)
    if mount_routes not in registry.server_hooks:
        registry.server_hooks.append(mount_routes)
    if bind_environment not in registry.environment_hooks:
        registry.environment_hooks.append(bind_environment)
    return added


def _register_v1(registry, module, mappings, pack: str, source: str) -> int:
    from .v1 import adapt

    if not hasattr(mappings, "items"):
        registry.report(source, f"ComfyUI pack {pack}: NODE_CLASS_MAPPINGS must be a dict, got {type(mappings).__name__}")
        return 0
    names = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {}
    added = 0
    for name, cls in list(mappings.items()):
        try:
            adapted = adapt(str(name), cls, pack, display_name=names.get(name) if hasattr(names, "get") else None)
        except Exception as exc:
            registry.report(source, f"ComfyUI pack {pack}: node {name} skipped: "
                                    f"{explain_import_error(exc, pack) or f'{type(exc).__name__}: {exc}'}")
            continue
        if getattr(adapted, "__nodegraph_spec__", None) is None:
            registry.report(source, f"ComfyUI pack {pack}: node {name} skipped: {adapted.__nodegraph_error__}",
                            with_traceback=False)
            continue
        added += registry.add_class(adapted, source)
    return added


def bind_environment(env) -> None:
    """The environment folder_paths & co answer from outside a node run."""
    runtime.bind_env(env)


def mount_routes(app, state) -> None:
    """Serve packs' routes on a starting server and let PromptServer talk to its websocket clients."""
    from . import routes
    from .server_module import PromptServer

    runtime.bind_env(state.env)
    PromptServer.instance.hub = state.hub
    routes.mount(app, PromptServer.instance.routes)
    routes.mount(app, PromptServer.instance.app.route_defs)  # what packs added to ComfyUI's aiohttp app


__all__ = ["is_comfy_module", "load_pack", "register", "install", "V3_LOADER"]
